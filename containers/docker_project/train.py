"""Train an ElasticNet on the red wine data and log it to MLflow.

Usage: python train.py [alpha] [l1_ratio]   (each defaults to 0.5)
"""

import argparse
import sys
from pathlib import Path

import mlflow
import numpy as np
from mlflow.models import infer_signature
from sklearn.linear_model import ElasticNet
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split

try:
    from mlops_course.data import TARGET, load_wine_quality
except ModuleNotFoundError:
    # `mlflow run` with the conda, virtualenv or uv manager builds a fresh environment
    # from conda.yaml, which holds the libraries but not the course package. The package's
    # source sits beside this folder in the course repository (src/), so load it from there.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from mlops_course.data import TARGET, load_wine_quality

SEED = 42


def train(alpha: float = 0.5, l1_ratio: float = 0.5) -> dict[str, float]:
    """Fit one model, log its parameters, metrics and the model; return the metrics."""
    data = load_wine_quality()
    train_set, test_set = train_test_split(data, test_size=0.25, random_state=SEED)
    x_train, y_train = train_set.drop(columns=TARGET), train_set[TARGET]
    x_test, y_test = test_set.drop(columns=TARGET), test_set[TARGET]

    with mlflow.start_run() as run:
        model = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, random_state=SEED)
        model.fit(x_train, y_train)
        predicted = model.predict(x_test)
        metrics = {
            "rmse": float(np.sqrt(mean_squared_error(y_test, predicted))),
            "mae": float(mean_absolute_error(y_test, predicted)),
            "r2": float(r2_score(y_test, predicted)),
        }
        # Under `mlflow run` the run already holds the parameters as they were typed
        # (`-P alpha=1` is stored as "1"); logging 1.0 over it would be refused.
        chosen = {"alpha": alpha, "l1_ratio": l1_ratio}
        mlflow.log_params({k: v for k, v in chosen.items() if k not in run.data.params})
        mlflow.log_metrics(metrics)
        mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(x_test, predicted),
            input_example=x_test.head(3),
            # Name what the model needs instead of letting MLflow infer it, which starts
            # a second Python process and costs several seconds per run.
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
        )
    return metrics


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read alpha and l1_ratio from the command line; a value that is not a number is an error."""
    parser = argparse.ArgumentParser(description="Train the wine quality ElasticNet.")
    parser.add_argument("alpha", type=float, nargs="?", default=0.5,
                        help="strength of the penalty (default 0.5)")
    parser.add_argument("l1_ratio", type=float, nargs="?", default=0.5,
                        help="share of the L1 penalty, from 0 to 1 (default 0.5)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    scores = train(args.alpha, args.l1_ratio)
    print(f"alpha={args.alpha} l1_ratio={args.l1_ratio} "
          + " ".join(f"{name}={value:.4f}" for name, value in scores.items()))
