"""Retrain the wine model on a new batch and promote it only through the validation gate.

    python pipeline/retrain.py --data batch.csv --eval-data holdout.csv \\
        --tracking-uri http://127.0.0.1:5000 --model-name wine-quality

1. Check both files: every column present, numbers only, no gaps. Bad input stops here,
   before anything is trained or written to MLflow (exit code 2).
2. Find the current `champion`: only "no such alias" and "no such model" mean there is
   none yet; any other answer (403, 5xx, timeout) stops the pipeline (exit code 1). Then
   check what the signed-in user may do (check_permissions). Both before anything is
   written.
3. Measure drift: a two-sample Kolmogorov-Smirnov statistic per feature, batch against
   the evaluation data, logged with the training run.
4. Train a challenger as a project run: the `train` entry point of pipeline/MLproject
   (pipeline/train.py), launched with mlflow.projects.run. The run records the batch as
   its training dataset (source: --data-source, version: a sha256 of the file), the drift
   metrics, system metrics and the model. Register that model as a new version.
5. Evaluate that version and the champion's version (by number, not by alias) on the same
   evaluation data with `mlflow.models.evaluate`, and validate the challenger with
   `mlflow.validate_evaluation_results`: an absolute RMSE floor always, and the gains
   over the champion when there is one.
6. Move `champion` only if the gate passes and `champion` still points where it did (the
   old one becomes `previous-champion`); record the decision on the version (tag
   `validation_status`) and in a `gate` run.

A challenger that fails the gate is a normal outcome (exit code 0): it stays registered,
tagged `rejected`, and the champion does not move. Exit code 1 means something else failed.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
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
# What the CI user needs, and nothing more (the workflow's comment says the same).
NEEDED = {"experiment": "EDIT", "registered_model": "EDIT"}
# The sign-in app's permission lookup and its levels, lowest first, as in MLflow's
# mlflow/server/auth/routes.py (GET_USER_PERMISSION) and permissions.py
# (PERMISSION_PRIORITY). Its client, mlflow.server.auth.client, would import the whole
# server package first: four seconds more for every run of this script.
PERMISSION_PATH = "/api/3.0/mlflow/users/permissions/get"
LEVELS = {"DENY": -1, "NO_PERMISSIONS": 0, "READ": 1, "USE": 2, "EDIT": 3, "MANAGE": 4}
# Error codes that mean "no champion yet"; every other error stops the pipeline.
NO_CHAMPION = {"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST"}


class BadInput(Exception):
    """A data file the pipeline refuses to train on; the message names the problem."""


class Stop(Exception):
    """The pipeline cannot go on safely; the message says why. Nothing has moved."""


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
    if len(frame.columns) == 1 and "," in frame.columns[0]:
        raise BadInput(f"{path.name}: looks comma-separated; the wine files use `;`")
    for column in COLUMNS:
        if column not in frame.columns:
            found = [str(c) for c in frame.columns]
            lower = {name.lower(): name for name in found}  # 'ph' is close to 'pH'
            close = [lower[name] for name in difflib.get_close_matches(
                column.lower(), lower, n=3, cutoff=0.6)]
            hint = f"closest found: {close}" if close else f"found: {found}"
            raise BadInput(f"{path.name}: column {column!r} is missing; {hint}")
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


def content_version(path: Path) -> str:
    """The file's version: its sha256, cut to 32 hex digits (MLflow keeps up to 36)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:32]


def wine_dataset(frame: pd.DataFrame, path: Path, source: str | None):
    """frame as an MLflow dataset: named after the file, versioned by its content."""
    import mlflow.data

    # MLflow 3.17 finds two equal sources for a local file, and says so: not news here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return mlflow.data.from_pandas(
            frame,
            source=source or str(path.resolve()),
            name=path.stem,
            targets=TARGET,
            digest=content_version(path),
        )


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
        help="held-out data both models are judged on: it must look like current traffic",
    )
    parser.add_argument(
        "--data-source", help="where the batch came from (a URL); default: its path"
    )
    parser.add_argument(
        "--eval-source", help="where the evaluation data came from; default: its path"
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
        "--max-rmse",
        type=float,
        default=0.85,
        help="the floor: no model with a higher RMSE is promoted, not even the first",
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
    from mlflow.exceptions import MlflowException
    from mlflow.projects import ExecutionException

    try:
        return retrain(args, batch, evaluation)
    except (Stop, MlflowException, ExecutionException) as error:
        print(f"retrain.py: stopped, exit code 1.\n  {error}", file=sys.stderr)
        return 1


def absolute(uri: str) -> str:
    """The URI of a SQLite store with its path made absolute: the training step runs in
    pipeline/, where a relative path would name another file."""
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///") :]).is_absolute():
        return "sqlite:///" + Path(uri[len("sqlite:///") :]).resolve().as_posix()
    return uri


def check_permissions(client, uri: str, experiment: str, model: str,
                      champion: str | None) -> None:
    """Raise Stop unless the signed-in user holds what the pipeline needs on what exists.

    EDIT on the experiment and on the registered model; READ on the experiment that logged
    @champion's model (to evaluate it). Asked only of a server with MLflow's basic-auth
    app; what does not exist yet the pipeline creates, as any signed-in user may.
    """
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if not user or not uri.startswith(("http://", "https://")):
        return  # no sign-in: nothing to ask
    from mlflow.exceptions import MlflowException
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    def require(kind: str, resource: str, label: str, permission: str) -> None:
        asked = {"username": user, "resource_type": kind, "resource_id": resource}
        try:  # what AuthServiceClient.get_user_permission sends, and how it checks it
            reply = http_request(get_default_host_creds(uri), PERMISSION_PATH, "GET",
                                 params=asked)
            held = verify_rest_response(reply, PERMISSION_PATH).json()["permission"]
        except MlflowException as error:
            if error.get_http_status_code() == 404:
                return  # no basic-auth permission API on this server: it checks each call
            raise
        if LEVELS[held] < LEVELS[permission]:
            raise Stop(f"user {user!r} holds {held} on the {label}; the pipeline needs "
                       f"{permission} on it")

    if found := client.get_experiment_by_name(experiment):
        require("experiment", found.experiment_id, f"experiment {experiment!r}", "EDIT")
    if champion is None and not client.search_registered_models(f"name = '{model}'"):
        return  # a new model: the pipeline creates it, and owns it
    require("registered_model", model, f"registered model {model!r}", "EDIT")
    if champion:
        version = client.get_model_version(model, champion)
        source = version.model_id or version.source.removeprefix("models:/")
        try:
            where = client.get_logged_model(source).experiment_id
        except MlflowException as error:
            raise Stop(f"user {user!r} cannot read the model of {model}@champion "
                       f"({error.error_code}); the pipeline needs READ on the experiment "
                       "that logged it") from None
        require("experiment", where, "experiment that logged @champion", "READ")


def find_champion(client, name: str) -> str | None:
    """The champion's version; None only when the alias or the model does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, "champion").version
    except MlflowException as error:
        if error.error_code in NO_CHAMPION:
            return None
        raise Stop(
            f"could not look up {name}@champion ({error.error_code}): {error.message}"
        ) from None


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
            "data_source": args.data_source or "",
            "alpha": args.alpha,
            "l1_ratio": args.l1_ratio,
        },
        experiment_name=args.experiment,
        run_name=run_name,
        env_manager="local",
    )  # waits for the run; raises ExecutionException if it fails
    return submitted.run_id


def retrain(args: argparse.Namespace, batch: pd.DataFrame, evaluation: pd.DataFrame) -> int:
    """Check access, train, register, evaluate against the champion, move the aliases."""
    # A short, quiet log: no links, INFO lines or progress bars from MLflow, and system
    # metrics sampled every 0.2 s so that a run of a few seconds records some (a demo
    # setting: the default, 10 s, sends 50 times fewer rows to the team's server).
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import MetricThreshold
    from mlflow.models.evaluation.validation import ModelValidationFailedException

    uri = absolute(args.tracking_uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    name, stem = args.model_name, args.data.stem

    # 2. Before anything is written: may this user do the job, and who is champion?
    champion = find_champion(client, name)
    check_permissions(client, uri, args.experiment, name, champion)
    experiment = mlflow.set_experiment(args.experiment)

    ks = drift(batch, evaluation)
    drifted = sorted(f for f, value in ks.items() if value > args.drift_threshold)
    print(
        f"drift: {len(drifted)} of {len(FEATURES)} features differ from the evaluation "
        f"data (KS > {args.drift_threshold}); the gate decides"
    )

    # 4. Train the challenger as a project run; find the model it logged and register it.
    run_id = train(args, f"train-{stem}")
    (logged,) = mlflow.search_logged_models(
        experiment_ids=[experiment.experiment_id],
        filter_string=f"source_run_id = '{run_id}'",
        output_format="list",
    )
    version = mlflow.register_model(f"models:/{logged.model_id}", name).version
    print(
        f"trained: project run train-{stem} (entry point train), "
        f"registered {name} version {version}"
    )

    # 5. Evaluate both versions, by number, on the same data; validate the challenger.
    eval_data = wine_dataset(evaluation, args.eval_data, args.eval_source)
    floor = MetricThreshold(threshold=args.max_rmse, greater_is_better=False)
    thresholds = {
        "root_mean_squared_error": MetricThreshold(
            threshold=args.max_rmse,
            min_absolute_change=args.min_rmse_gain,
            min_relative_change=args.min_rmse_gain_ratio,
            greater_is_better=False,
        ),
        "mean_absolute_error": MetricThreshold(
            min_relative_change=0.0, greater_is_better=False
        ),
    }
    candidates = {"challenger": version, **({"champion": champion} if champion else {})}
    with mlflow.start_run(run_name=f"gate-{stem}") as gate:
        results = {}
        for role, number in candidates.items():
            with mlflow.start_run(run_name=f"evaluate-{role}-{stem}", nested=True):
                results[role] = mlflow.models.evaluate(
                    f"models:/{name}/{number}",
                    data=eval_data,
                    model_type="regressor",
                    evaluator_config={"log_model_explainability": False},
                )
        for role, result in results.items():
            mlflow.log_metrics(
                {
                    f"{role}_rmse": result.metrics["root_mean_squared_error"],
                    f"{role}_mae": result.metrics["mean_absolute_error"],
                }
            )
        try:
            if champion:
                mlflow.validate_evaluation_results(
                    thresholds, results["challenger"], results["champion"]
                )
                reason = "it beats the champion"
            else:
                mlflow.validate_evaluation_results(
                    {"root_mean_squared_error": floor}, results["challenger"]
                )
                reason = f"the first champion, RMSE under the floor {args.max_rmse}"
            passed = True
        except ModelValidationFailedException as failure:
            passed, reason = False, failure.message
        mlflow.set_tags(
            {
                "gate.decision": "promoted" if passed else "rejected",
                "gate.challenger_version": version,
                "gate.champion_version": champion or "none",
            }
        )

    # 6. Move the aliases only through the gate, and record the decision on the version.
    client.set_model_version_tag(name, version, "gate_run_id", gate.info.run_id)
    rmse = {
        role: round(r.metrics["root_mean_squared_error"], 4) for role, r in results.items()
    }
    print(f"gate: RMSE on {args.eval_data.name}: {rmse}")
    if passed and find_champion(client, name) != champion:
        client.set_model_version_tag(name, version, "validation_status", "stale")
        raise Stop(f"@champion moved during the evaluation; version {version} stays unpromoted")
    client.set_model_version_tag(
        name, version, "validation_status", "approved" if passed else "rejected"
    )
    if passed:
        if champion:
            client.set_registered_model_alias(name, "previous-champion", champion)
        client.set_registered_model_alias(name, "champion", version)
        print(f"decision: promoted version {version} to @champion ({reason})")
    else:
        kept = f"version {champion}" if champion else "unset"
        print(f"decision: rejected version {version}; @champion stays {kept}")
        print("  " + reason.replace("\n", "\n  "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
