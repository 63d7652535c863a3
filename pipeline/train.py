"""The pipeline's training step: the `train` entry point of pipeline/MLproject.

    mlflow run pipeline -e train -P data=batch.csv -P eval_data=holdout.csv --env-manager local

`mlflow run` (or retrain.py, through mlflow.projects.run) starts the run, logs the entry
point's parameters in it and runs this script, which continues that run: it records the
batch as the training dataset (its source and content version), the drift of each feature against the evaluation data, the
system metrics of the training, and the model with its signature, input example and pip
requirements. Bad input stops it before training (exit code 2), as in retrain.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from retrain import (  # pipeline/retrain.py, beside this
    SEED,
    checked_inputs,
    drift,
    wine_dataset,
)

from mlops_course.data import FEATURES, TARGET


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train the wine model on one batch.")
    parser.add_argument("--data", type=Path, required=True, help="the batch to train on")
    parser.add_argument(
        "--eval-data", type=Path, required=True, help="the reference for drift"
    )
    parser.add_argument("--data-source", help="where the batch came from; default: its path")
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--l1-ratio", type=float, default=0.1)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (inputs := checked_inputs(args, "train.py")):
        return 2
    batch, evaluation = inputs
    train(args, batch, drift(batch, evaluation))
    return 0


def train(args: argparse.Namespace, batch, ks: dict[str, float]) -> None:
    """Fit the ElasticNet in the project's run; log dataset, drift, system metrics, model."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import ElasticNet

    train_data = wine_dataset(batch, args.data, args.data_source)
    # Under `mlflow run` this continues the project's run (MLFLOW_RUN_ID), which already
    # holds the parameters; logging them again with another spelling ("1" vs "1.0") fails.
    with mlflow.start_run(log_system_metrics=True) as run:
        if "alpha" not in run.data.params:  # run on its own, outside a project run
            mlflow.log_params({"alpha": args.alpha, "l1_ratio": args.l1_ratio})
        mlflow.log_input(train_data, context="training")
        mlflow.log_metrics({f"drift_ks/{f.replace(' ', '_')}": v for f, v in ks.items()})
        model = ElasticNet(alpha=args.alpha, l1_ratio=args.l1_ratio, random_state=SEED)
        model.fit(batch[FEATURES], batch[TARGET])
        mlflow.sklearn.log_model(
            model,
            name="model",
            input_example=batch[FEATURES].head(3),
            signature=infer_signature(batch[FEATURES], model.predict(batch[FEATURES])),
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(
                include_skops=True
            ),
        )


if __name__ == "__main__":
    sys.exit(main())
