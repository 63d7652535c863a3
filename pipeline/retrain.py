"""Retrain the wine model on a new batch and promote it only through the validation gate.

    python pipeline/retrain.py --data batch.csv --eval-data holdout.csv \\
        --tracking-uri http://127.0.0.1:5000 --model-name wine-quality

1. Check both files: every column present, numbers only, no gaps. Bad input stops here,
   before anything is trained or written to MLflow (exit code 2).
2. Measure drift: a two-sample Kolmogorov-Smirnov statistic per feature, batch against
   the evaluation data, logged with the training run.
3. Train a challenger as a project run: the `train` entry point of pipeline/MLproject
   (pipeline/train.py), launched with mlflow.projects.run. The run records the batch as
   its training dataset, the drift metrics, system metrics and the model. Register that
   model with the alias `challenger`.
4. Evaluate challenger and `champion` on the same evaluation data with
   `mlflow.models.evaluate`, and validate the challenger against the champion with
   `mlflow.validate_evaluation_results`.
5. Move `champion` only if the gate passes (the old one becomes `previous-champion`);
   record the decision on the version (tag `validation_status`) and in a `gate` run.

A challenger that fails the gate is a normal outcome (exit code 0): it stays registered,
tagged `rejected`, and the champion does not move. Exit code 1 means something else failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import pandas as pd

from mlops_course.data import FEATURES, TARGET

COLUMNS = FEATURES + [TARGET]
PROJECT_DIR = Path(__file__).resolve().parent  # holds MLproject
MIN_ROWS = 100  # fewer rows than this is not a batch worth training on
SEED = 42


class BadInput(Exception):
    """A data file the pipeline refuses to train on; the message names the problem."""


def check_data(path: Path) -> pd.DataFrame:
    """Read a semicolon-separated wine file; refuse it unless every column holds numbers."""
    if not path.is_file():
        raise BadInput(f"{path.name}: no such file")
    try:
        frame = pd.read_csv(path, sep=";")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise BadInput(
            f"{path.name}: not a semicolon-separated CSV file ({error})"
        ) from None
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise BadInput(f"{path.name}: column {missing[0]!r} is missing")
    for column in COLUMNS:
        numbers = pd.to_numeric(frame[column], errors="coerce")
        if numbers.isna().any():
            row = int(numbers.isna().to_numpy().argmax())
            value = frame[column].iloc[row]
            problem = "is empty" if pd.isna(value) else f"is not a number: {value!r}"
            raise BadInput(
                f"{path.name}: column {column!r}, data row {row + 1}, {problem}"
            )
    if len(frame) < MIN_ROWS:
        raise BadInput(f"{path.name}: {len(frame)} rows, fewer than {MIN_ROWS}")
    return frame[COLUMNS].astype(float)


def checked_inputs(args: argparse.Namespace, script: str) -> tuple | None:
    """The batch and the evaluation data, checked; None, said on stderr, if either is bad."""
    try:
        return check_data(args.data), check_data(args.eval_data)
    except BadInput as error:
        print(
            f"{script}: bad input, stopped before training; the registry is unchanged.\n"
            f"  {error}",
            file=sys.stderr,
        )
        return None


def drift(batch: pd.DataFrame, reference: pd.DataFrame) -> dict[str, float]:
    """Kolmogorov-Smirnov statistic (0: same distribution, 1: disjoint) of each feature."""
    from scipy.stats import ks_2samp

    return {
        feature: float(ks_2samp(batch[feature], reference[feature]).statistic)
        for feature in FEATURES
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Retrain the wine model and promote it only through the validation gate."
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="the new batch to train on"
    )
    parser.add_argument(
        "--eval-data",
        type=Path,
        required=True,
        help="held-out data both models are judged on",
    )
    parser.add_argument(
        "--tracking-uri", required=True, help="the MLflow tracking server"
    )
    parser.add_argument("--model-name", required=True, help="the registered model")
    parser.add_argument("--experiment", default="12-pipeline")
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--l1-ratio", type=float, default=0.1)
    parser.add_argument(
        "--drift-threshold",
        type=float,
        default=0.1,
        help="KS statistic above which a feature counts as drifted",
    )
    parser.add_argument(
        "--min-rmse-gain",
        type=float,
        default=0.01,
        help="RMSE must drop by this much (absolute) ...",
    )
    parser.add_argument(
        "--min-rmse-gain-ratio",
        type=float,
        default=0.01,
        help="... and by this fraction of the champion's RMSE",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (inputs := checked_inputs(args, "retrain.py")):
        return 2
    batch, evaluation = inputs
    print(
        f"data: {args.data.name} ({len(batch)} rows) to train, "
        f"{args.eval_data.name} ({len(evaluation)} rows) to evaluate"
    )
    ks = drift(batch, evaluation)
    drifted = sorted(f for f, value in ks.items() if value > args.drift_threshold)
    print(
        f"drift: {len(drifted)} of {len(FEATURES)} features differ from the evaluation "
        f"data (KS > {args.drift_threshold}); the gate decides"
    )
    return retrain(args, evaluation)


def absolute(uri: str) -> str:
    """The URI of a SQLite store with its path made absolute: the training step runs in
    pipeline/, where a relative path would name another file."""
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_absolute():
        return "sqlite:///" + Path(uri[len("sqlite:///") :]).resolve().as_posix()
    return uri


def train(args: argparse.Namespace, run_name: str) -> str:
    """Run the `train` entry point of pipeline/MLproject; return the run's ID."""
    import mlflow.projects

    # `local`: the step runs in this environment, whose Python the command's `python` is.
    os.environ["PATH"] = os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ["PATH"]]
    )
    submitted = mlflow.projects.run(
        str(PROJECT_DIR),
        entry_point="train",
        parameters={
            "data": str(args.data),
            "eval_data": str(args.eval_data),
            "alpha": args.alpha,
            "l1_ratio": args.l1_ratio,
        },
        experiment_name=args.experiment,
        run_name=run_name,
        env_manager="local",
    )  # waits for the run; raises ExecutionException if it fails
    return submitted.run_id


def retrain(args: argparse.Namespace, evaluation: pd.DataFrame) -> int:
    """Train, register, evaluate against the champion and move the aliases."""
    # A short, quiet log: no links, INFO lines or progress bars from MLflow, and system
    # metrics sampled often enough that a run of a few seconds records some.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.models import MetricThreshold
    from mlflow.models.evaluation.validation import ModelValidationFailedException

    mlflow.set_tracking_uri(absolute(args.tracking_uri))
    experiment = mlflow.set_experiment(args.experiment)
    client = MlflowClient()
    name, stem = args.model_name, args.data.stem
    # MLflow 3.17 finds two equal sources for a local file, and says so: not news here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        eval_data = mlflow.data.from_pandas(
            evaluation,
            source=str(args.eval_data.resolve()),
            name=args.eval_data.stem,
            targets=TARGET,
        )

    # 3. Train the challenger as a project run; find the model it logged and register it.
    run_id = train(args, f"train-{stem}")
    (logged,) = mlflow.search_logged_models(
        experiment_ids=[experiment.experiment_id],
        filter_string=f"source_run_id = '{run_id}'",
        output_format="list",
    )
    version = mlflow.register_model(f"models:/{logged.model_id}", name).version
    client.set_registered_model_alias(name, "challenger", version)
    print(
        f"trained: project run train-{stem} (entry point train), "
        f"registered {name} version {version} as @challenger"
    )

    # 4. Evaluate both on the same data, then validate the challenger against the champion.
    try:
        champion = client.get_model_version_by_alias(name, "champion").version
    except MlflowException:
        champion = None
    thresholds = {
        "root_mean_squared_error": MetricThreshold(
            min_absolute_change=args.min_rmse_gain,
            min_relative_change=args.min_rmse_gain_ratio,
            greater_is_better=False,
        ),
        "mean_absolute_error": MetricThreshold(
            min_relative_change=0.0, greater_is_better=False
        ),
    }
    with mlflow.start_run(run_name=f"gate-{stem}") as gate:
        results = {}
        for alias in ["challenger"] + (["champion"] if champion else []):
            with mlflow.start_run(run_name=f"evaluate-{alias}-{stem}", nested=True):
                results[alias] = mlflow.models.evaluate(
                    f"models:/{name}@{alias}",
                    data=eval_data,
                    model_type="regressor",
                    evaluator_config={"log_model_explainability": False},
                )
        for alias, result in results.items():
            mlflow.log_metrics(
                {
                    f"{alias}_rmse": result.metrics["root_mean_squared_error"],
                    f"{alias}_mae": result.metrics["mean_absolute_error"],
                }
            )
        try:
            if champion:
                mlflow.validate_evaluation_results(
                    thresholds, results["challenger"], results["champion"]
                )
            passed = True
            reason = "it beats the champion" if champion else "there is no champion yet"
        except ModelValidationFailedException as failure:
            passed, reason = False, failure.message
        mlflow.set_tags(
            {
                "gate.decision": "promoted" if passed else "rejected",
                "gate.challenger_version": version,
                "gate.champion_version": champion or "none",
            }
        )

    # 5. Move the aliases only through the gate, and record the decision on the version.
    client.set_model_version_tag(
        name, version, "validation_status", "approved" if passed else "rejected"
    )
    client.set_model_version_tag(name, version, "gate_run_id", gate.info.run_id)
    client.delete_registered_model_alias(name, "challenger")
    rmse = {
        alias: round(r.metrics["root_mean_squared_error"], 4)
        for alias, r in results.items()
    }
    print(f"gate: RMSE on {args.eval_data.name}: {rmse}")
    if passed:
        if champion:
            client.set_registered_model_alias(name, "previous-champion", champion)
        client.set_registered_model_alias(name, "champion", version)
        print(f"decision: promoted version {version} to @champion ({reason})")
    else:
        print(f"decision: rejected version {version}; @champion stays version {champion}")
        print("  " + reason.replace("\n", "\n  "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
