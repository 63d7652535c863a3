"""Train an ElasticNet on the red wine data and log it to MLflow.

Usage: python train.py [alpha] [l1_ratio]   (defaults: alpha 0.5; l1_ratio 0.1, as in MLproject)
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

# The data loader comes from src/ beside this folder, in the same checkout: so a run of
# `mlflow run ... --version v1.0` uses v1.0's loader too, and a fresh conda, virtualenv or uv
# environment (which lacks the course package) finds it. Without that folder (this folder
# copied alone, a container), the installed course package is used.
SOURCE = Path(__file__).resolve().parents[1] / "src"
if (SOURCE / "mlops_course").is_dir():
    sys.path.insert(0, str(SOURCE))
from mlops_course.data import TARGET, load_wine_quality

SEED = 42
L1_RATIO = 0.1  # the default share of the L1 penalty, as in MLproject


def train(alpha: float = 0.5, l1_ratio: float = L1_RATIO) -> dict[str, float]:
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
    parser.add_argument("l1_ratio", type=float, nargs="?", default=L1_RATIO,
                        help=f"share of the L1 penalty, from 0 to 1 (default {L1_RATIO})")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    scores = train(args.alpha, args.l1_ratio)
    print(f"alpha={args.alpha} l1_ratio={args.l1_ratio} "
          + " ".join(f"{name}={value:.4f}" for name, value in scores.items()))
