"""Chapter 12: the MLOps loop's store, its pipeline script, its CI workflow and its webhooks."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import requests
import yaml

from mlops_course.data import FEATURES, PATH_ENV_VAR, TARGET
from mlops_course.execute import REPO_DIR
from mlops_course.screenshots import screenshots
from mlops_course.servers import environment, free_port, start
from mlops_course.testing import check_screenshots

NOTEBOOK = "12_mlops_loop"
EXPERIMENT = "12-mlops-loop"
PIPELINE_EXPERIMENT = "12-pipeline"
MODEL = "12-wine-quality"
RETRAIN = REPO_DIR / "pipeline" / "retrain.py"
RECEIVER = REPO_DIR / "pipeline" / "receiver.py"
WORKFLOW = REPO_DIR / ".github" / "workflows" / "retrain.yml"
SCREENSHOTS = {"12-registered-model": "previous-champion"}  # name -> text waited for
# Training run -> the gate's verdict on the version it registered, in every pass.
BATCH_URL = "https://example.org/wine/batch.csv"
VERDICTS = {"weak-challenger": "rejected", "train-white-batch": "approved",
            "train-red-train": "rejected"}


def wine_files(folder: Path) -> dict[str, Path]:
    """Red and white wine as the chapter writes them: semicolon-separated, course columns."""
    red_file = Path(os.environ[PATH_ENV_VAR])
    files = {}
    for colour in ("red", "white"):
        frame = pd.read_csv(red_file.with_name(f"winequality-{colour}.csv"), sep=";")
        files[colour] = folder / f"{colour}.csv"
        frame[FEATURES + [TARGET]].to_csv(files[colour], sep=";", index=False)
    return files


def retrain(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run pipeline/retrain.py from the command line."""
    return subprocess.run([sys.executable, str(RETRAIN), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def assert_project_training_run(run, name: str, data: str) -> None:
    """run is the `train` entry point's project run, and logged what training must log."""
    tags, metrics = run.data.tags, run.data.metrics
    assert run.info.run_name == name and run.info.status == "FINISHED"
    assert tags["mlflow.source.type"] == "PROJECT", "trained in a project run"
    assert tags["mlflow.project.entryPoint"] == "train"
    assert tags["mlflow.project.backend"] == "local"
    assert {"data", "eval_data", "data_source", "alpha", "l1_ratio"} == set(run.data.params)
    assert run.data.params["alpha"] == "0.1" and run.data.params["l1_ratio"] == "0.1"
    ((dataset, context),) = [(e.dataset, {t.key: t.value for t in e.tags}
                              ["mlflow.data.context"]) for e in run.inputs.dataset_inputs]
    assert (dataset.name, context) == (data, "training")
    assert len(dataset.digest) == 32, "the content version: a sha256 of the file, cut"
    assert len([k for k in metrics if k.startswith("drift_ks/")]) == len(FEATURES)
    assert "system/cpu_utilization_percentage" in metrics
    assert len(run.outputs.model_outputs) == 1, "one model, logged by the training run"


# --- The workflow and the script, on their own ---------------------------------------------

def test_retrain_workflow_runs_the_pipeline_on_a_schedule():
    # Schema, shells, secrets and pinning of every workflow: tests/test_workflows.py.
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert {"schedule", "workflow_dispatch"} <= set(workflow[True])  # YAML reads `on` as True
    text = WORKFLOW.read_text()
    assert "python pipeline/retrain.py --data" in text
    assert "--data-source \"$BATCH_URL\"" in text, "runs record the batch's URL"
    assert "secrets.MLFLOW_TRACKING_URI" in text, "the server comes from a secret"


@pytest.mark.parametrize("breakage, message", [
    ("commas", "commas.csv: looks comma-separated; the wine files use `;`"),
    ("renamed-column", "column 'pH' is missing; closest found: ['ph']"),
    ("missing-column", "column 'alcohol' is missing; found: ['fixed acidity', "),
    ("not-a-number", "column 'pH', data row 3, is not a number: '3,3O'"),
    ("gap", "column 'density', data row 2, is empty"),
    ("no-file", "no-file.csv: no such file"),
    ("empty", "not a semicolon-separated CSV file"),
])
def test_bad_input_stops_before_training_and_changes_nothing(tmp_path, breakage, message):
    white = pd.read_csv(wine_files(tmp_path)["white"], sep=";")
    bad = tmp_path / f"{breakage}.csv"
    if breakage == "commas":
        white.to_csv(bad, index=False)
    elif breakage == "renamed-column":
        white.rename(columns={"pH": "ph"}).to_csv(bad, sep=";", index=False)
    elif breakage == "missing-column":
        white.drop(columns="alcohol").to_csv(bad, sep=";", index=False)
    elif breakage == "not-a-number":
        white.astype({"pH": object}).assign(pH=lambda f: f["pH"].mask(f.index == 2, "3,3O")) \
            .to_csv(bad, sep=";", index=False)
    elif breakage == "gap":
        white.astype({"density": object}).assign(
            density=lambda f: f["density"].mask(f.index == 1, "")
        ).to_csv(bad, sep=";", index=False)
    elif breakage == "empty":
        bad.write_text("")
    store = tmp_path / "mlflow.db"
    done = retrain("--data", bad, "--eval-data", tmp_path / "white.csv",
                   "--tracking-uri", f"sqlite:///{store}", "--model-name", "m", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "stopped before training; the registry is unchanged" in done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not store.exists(), "no run, no version: the store is not even opened"


def test_the_pipeline_asks_the_sign_in_app_as_its_own_client_does():
    """retrain.py calls the permission route itself, to spare the server package's import;
    the route and the levels' order must stay MLflow's."""
    with warnings.catch_warnings(action="ignore"):  # a Starlette notice inside MLflow
        from mlflow.server.auth.permissions import PERMISSION_PRIORITY
        from mlflow.server.auth.routes import GET_USER_PERMISSION

    sys.path.insert(0, str(REPO_DIR / "pipeline"))
    import retrain

    assert retrain.PERMISSION_PATH == GET_USER_PERMISSION
    assert retrain.LEVELS == PERMISSION_PRIORITY


def test_mlflow_digest_misses_a_late_edit_the_content_version_does_not(tmp_path):
    from mlflow.data.digest_utils import MAX_ROWS, compute_pandas_digest

    sys.path.insert(0, str(REPO_DIR / "pipeline"))
    from retrain import content_version

    files = wine_files(tmp_path)
    both = pd.concat([pd.read_csv(files[c], sep=";") for c in ("red", "white")] * 2,
                     ignore_index=True)
    assert len(both) == 2 * 6497 > MAX_ROWS == 10_000
    edited = both.copy()
    edited.loc[MAX_ROWS + 500, "alcohol"] += 0.1
    both.to_csv(tmp_path / "a.csv", sep=";", index=False)
    edited.to_csv(tmp_path / "b.csv", sep=";", index=False)
    assert compute_pandas_digest(both) == compute_pandas_digest(edited)
    assert content_version(tmp_path / "a.csv") != content_version(tmp_path / "b.csv")
    assert compute_pandas_digest(both) != compute_pandas_digest(both.set_axis(both.index + 1))
    assert len(compute_pandas_digest(both)) == 8


def signed(secret: str, body: bytes, delivery_id: str) -> dict[str, str]:
    """Headers as MLflow's webhook delivery sets them (mlflow/webhooks/delivery.py)."""
    timestamp = str(int(time.time()))
    mac = hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.".encode() + body,
                   hashlib.sha256).digest()
    return {"X-MLflow-Delivery-Id": delivery_id, "X-MLflow-Timestamp": timestamp,
            "X-MLflow-Signature": "v1," + base64.b64encode(mac).decode(),
            "Content-Type": "application/json"}


def test_the_receiver_acts_once_on_a_replayed_delivery(tmp_path):
    secret, port, events = "a-test-secret", free_port(), tmp_path / "events.jsonl"
    body = json.dumps({"entity": "model_version_alias", "action": "created",
                       "data": {"name": "m", "alias": "champion", "version": "3"}}).encode()
    with start(f"{sys.executable} {RECEIVER} --port {port} --events {events}",
               f"http://127.0.0.1:{port}/", env=environment(WEBHOOK_SECRET=secret),
               log_path=tmp_path / "receiver.log"):
        headers = signed(secret, body, "delivery-1")
        answers = [requests.post(f"http://127.0.0.1:{port}/", data=body, headers=headers,
                                 timeout=10).status_code for _ in range(2)]
    assert answers == [200, 200], "a repeat is accepted, so MLflow stops retrying it"
    reactions = [json.loads(line)["reaction"] for line in events.read_text().splitlines()]
    assert reactions == ["deploy version 3", "duplicate"]


@pytest.mark.slow
def test_pipeline_on_its_own_promotes_a_first_model_then_refuses_a_worse_one(tmp_path):
    from mlflow import MlflowClient

    files = wine_files(tmp_path)
    white = pd.read_csv(files["white"], sep=";")
    white.iloc[:3600].to_csv(tmp_path / "batch.csv", sep=";", index=False)
    white.iloc[3600:].to_csv(tmp_path / "holdout.csv", sep=";", index=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = ["--eval-data", "holdout.csv", "--tracking-uri", uri, "--model-name", "wine"]

    # Both runs name the batch's URL: MLflow keeps one dataset per name and digest in an
    # experiment (mlflow/store/tracking/sqlalchemy_store.py), with its first source.
    batch = ["--data", "batch.csv", "--data-source", BATCH_URL]
    floored = retrain(*batch, *common, "--max-rmse", "0.5", cwd=tmp_path)
    assert floored.returncode == 0, floored.stderr
    assert "decision: rejected version 1; @champion stays unset" in floored.stdout
    assert "root_mean_squared_error value threshold check failed" in floored.stdout
    first = retrain(*batch, *common, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "decision: promoted version 2 to @champion (the first champion" in first.stdout
    second = retrain("--data", files["red"], *common, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "decision: rejected version 3; @champion stays version 2" in second.stdout
    assert "root_mean_squared_error minimum relative change check failed" in second.stdout

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for version, data in (("2", "batch"), ("3", "red")):
        source = client.get_model_version("wine", version).source  # models:/<model id>
        run = client.get_run(client.get_logged_model(
            source.removeprefix("models:/")).source_run_id)
        assert_project_training_run(run, f"train-{data}", data)
        (entry,) = run.inputs.dataset_inputs
        if data == "batch":
            assert json.loads(entry.dataset.source) == {"url": BATCH_URL}, "the batch's URL"
    logged = client.get_logged_model(
        client.get_model_version("wine", "2").source.removeprefix("models:/"))
    folder = Path(logged.artifact_location.removeprefix("file://"))
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    assert {"signature", "saved_input_example_info"} <= set(mlmodel)
    assert (folder / "requirements.txt").is_file(), "the model names its pip requirements"
    aliases = client.get_registered_model("wine").aliases
    assert {alias: str(v) for alias, v in aliases.items()} == {"champion": "2"}
    assert [client.get_model_version("wine", v).tags["validation_status"]
            for v in ("1", "2", "3")] == ["rejected", "approved", "rejected"]


# --- The chapter, executed twice against one store -----------------------------------------

def runs_named(result, experiment: str) -> list[dict[str, str]]:
    """For each pass: run name -> run id of that pass's runs in experiment."""
    return [{name: run_id for run_id, (exp, name, _) in runs.items() if exp == experiment}
            for runs in (result.first_pass, result.second_pass)]


def versions_by_run(result) -> dict[str, object]:
    """Run id -> the first version of MODEL registered from the model that run logged.

    (Exercise 1 registers the champion's model a second time, as a later version.)
    """
    client = result.client()
    found = {}
    for version in sorted(client.search_model_versions(f"name = '{MODEL}'"),
                          key=lambda v: int(v.version)):
        logged = client.get_logged_model(version.source.removeprefix("models:/"))
        found.setdefault(logged.source_run_id, version)
    return found


@pytest.mark.slow
def test_each_step_of_the_loop_logged_its_run(executed):
    # Two passes, identical metrics: tests/test_notebooks.py checks it for every chapter.
    result = executed(NOTEBOOK)
    names = {name for _, name, _ in result.first_pass.values()}
    assert {"red-champion", "weak-challenger", "monitor-white", "train-white-batch",
            "gate-white-batch", "train-red-train", "gate-red-train"} <= names


@pytest.mark.slow
def test_runs_record_their_datasets_and_system_metrics(executed):
    result = executed(NOTEBOOK)
    client = result.client()
    for chapter, pipeline in zip(runs_named(result, EXPERIMENT),
                                 runs_named(result, PIPELINE_EXPERIMENT)):
        champion = client.get_run(chapter["red-champion"])
        contexts = {entry.dataset.name: {t.key: t.value for t in entry.tags}
                    ["mlflow.data.context"] for entry in champion.inputs.dataset_inputs}
        assert contexts == {"red-train": "training", "red-test": "evaluation"}
        assert any(k.startswith("system/cpu") for k in champion.data.metrics)
        assert "system/system_memory_usage_megabytes" in champion.data.metrics
        digests = {}
        for name in ("red-champion", "train-red-train"):
            run = client.get_run(chapter.get(name) or pipeline[name])
            (training,) = [e.dataset for e in run.inputs.dataset_inputs if e.dataset.name
                           == "red-train"]
            digests[name] = training.digest
        assert digests["red-champion"] == digests["train-red-train"], \
            "one file, one digest, whether the notebook or the pipeline logged it"
        white = client.get_run(pipeline["train-white-batch"])
        assert [e.dataset.name for e in white.inputs.dataset_inputs] == ["white-batch"]


@pytest.mark.slow
def test_the_pipeline_trains_in_project_runs(executed):
    result = executed(NOTEBOOK)
    client = result.client()
    versions = versions_by_run(result)
    for pipeline in runs_named(result, PIPELINE_EXPERIMENT):
        for data in ("white-batch", "red-train"):
            run = client.get_run(pipeline[f"train-{data}"])
            assert_project_training_run(run, f"train-{data}", data)
            registered = versions[run.info.run_id].source.removeprefix("models:/")
            assert registered == run.outputs.model_outputs[0].model_id


@pytest.mark.slow
def test_monitoring_run_records_drift_and_the_decision(executed):
    result = executed(NOTEBOOK)
    for runs in runs_named(result, EXPERIMENT):
        monitor = result.client().get_run(runs["monitor-white"])
        metrics = monitor.data.metrics
        assert metrics["rmse_white"] > 1.1 * metrics["rmse_red_test"]
        assert metrics["drift_ks/chlorides"] > 0.5 and metrics["drift_ks/alcohol"] < 0.1
        assert metrics["drifted_features"] == 10
        assert monitor.data.tags["decision"] == "retrain"


@pytest.mark.slow
def test_the_gate_decides_and_only_its_winners_hold_champion(executed):
    result = executed(NOTEBOOK)
    client = result.client()
    versions = versions_by_run(result)
    for chapter, pipeline in zip(runs_named(result, EXPERIMENT),
                                 runs_named(result, PIPELINE_EXPERIMENT)):
        runs = {**chapter, **pipeline}
        for name, verdict in VERDICTS.items():
            assert versions[runs[name]].tags["validation_status"] == verdict, name
        for data, decision in (("white-batch", "promoted"), ("red-train", "rejected")):
            gate = client.get_run(pipeline[f"gate-{data}"])
            assert gate.data.tags["gate.decision"] == decision
            children = client.search_runs(
                [gate.info.experiment_id], f"tags.mlflow.parentRunId = '{gate.info.run_id}'")
            assert {c.info.run_name for c in children} == {
                f"evaluate-challenger-{data}", f"evaluate-champion-{data}"}
    last_chapter = runs_named(result, EXPERIMENT)[1]
    last_pipeline = runs_named(result, PIPELINE_EXPERIMENT)[1]
    aliases = client.get_registered_model(MODEL).aliases
    assert {alias: str(v) for alias, v in aliases.items()} == {
        "champion": str(versions[last_pipeline["train-white-batch"]].version),
        "previous-champion": str(versions[last_chapter["red-champion"]].version),
    }, "after the last pass: the white-wine model, with the red one a rollback away"


@pytest.mark.slow
def test_the_receiver_got_signed_events_and_refused_a_forged_one(executed):
    result = executed(NOTEBOOK)
    lines = (result.scratch_dir / "12-mlops-loop" / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]  # the second pass's
    assert [e for e in events if not e["signature_valid"]] == [
        {"event": "model_version_alias.created", "data": {"alias": "champion"},
         "signature_valid": False, "reaction": "refused"}
    ]
    signed = [e for e in events if e["signature_valid"]]
    kinds = [e["event"] for e in signed]
    # test_webhook's example, then champion, weak challenger, two pipeline runs, exercise 1
    assert kinds.count("model_version.created") == 1 + 5
    champions = [e["data"]["version"] for e in signed
                 if e["data"].get("alias") == "champion"]
    assert len(champions) == 2 and all(e["reaction"] != "refused" for e in signed)
    assert not result.client().list_webhooks(), "the notebook deletes its webhook"


@pytest.mark.slow
def test_outputs_show_no_build_paths_and_the_screenshot(executed):
    result = executed(NOTEBOOK)
    nb = nbformat.read(result.first_copy, as_version=4)
    text = json.dumps([c.get("outputs", []) for c in nb.cells])
    for path in (str(result.scratch_dir), str(REPO_DIR), "/tmp/"):
        assert path not in text, f"an output shows {path}"
    assert "Traceback" not in text
    shots = {s["screenshot"]: s for s in screenshots(result.first_copy)}
    check_screenshots(shots, SCREENSHOTS)


@pytest.mark.slow
def test_weaker_grants_are_refused_by_name_before_anything_moves(executed):
    # The chapter's own checks assert the registry and the runs unchanged; here, the words.
    result = executed(NOTEBOOK)
    nb = nbformat.read(result.first_copy, as_version=4)
    text = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert f"could not look up {MODEL}@champion (PERMISSION_DENIED)" in text
    assert (f"user 'ci' holds READ on the registered model '{MODEL}'; "
            "the pipeline needs EDIT on it") in text
    assert "decision: promoted version" in text, "then, with the stated grants, it runs"
