"""Train an ElasticNet on the red wine data and log it to MLflow.

Usage: python train.py [alpha] [l1_ratio]   (each defaults to 0.5)
"""

import sys

import mlflow
import numpy as np
from mlflow.models import infer_signature
from sklearn.linear_model import ElasticNet
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split

from mlops_course.data import TARGET, load_wine_quality

SEED = 42


def train(alpha: float = 0.5, l1_ratio: float = 0.5) -> dict[str, float]:
    """Fit one model, log its parameters, metrics and the model; return the metrics."""
    data = load_wine_quality()
    train_set, test_set = train_test_split(data, test_size=0.25, random_state=SEED)
    x_train, y_train = train_set.drop(columns=TARGET), train_set[TARGET]
    x_test, y_test = test_set.drop(columns=TARGET), test_set[TARGET]

    with mlflow.start_run():
        model = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, random_state=SEED)
        model.fit(x_train, y_train)
        predicted = model.predict(x_test)
        metrics = {
            "rmse": float(np.sqrt(mean_squared_error(y_test, predicted))),
            "mae": float(mean_absolute_error(y_test, predicted)),
            "r2": float(r2_score(y_test, predicted)),
        }
        mlflow.log_params({"alpha": alpha, "l1_ratio": l1_ratio})
        mlflow.log_metrics(metrics)
        mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(x_test, predicted),
            input_example=x_test.head(3),
        )
    return metrics


if __name__ == "__main__":
    alpha = float(sys.argv[1]) if len(sys.argv) > 1 else 0.5
    l1_ratio = float(sys.argv[2]) if len(sys.argv) > 2 else 0.5
    scores = train(alpha, l1_ratio)
    print(f"alpha={alpha} l1_ratio={l1_ratio} "
          + " ".join(f"{name}={value:.4f}" for name, value in scores.items()))
