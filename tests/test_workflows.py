"""Every GitHub workflow in .github/workflows/: valid, least privilege, and red on failure.

GitHub runs a `run:` step with `bash -e {0}` when it names no shell (no pipefail: the
status of `a | b` is b's) and with `bash --noprofile --norc -eo pipefail {0}` for
`shell: bash`. Each step runs here under that shell with every command except a few pipe
helpers taken off PATH: a step that still succeeds would hide a failure. The retraining
step also runs for real, against bad input and a refused request.
"""

import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlops_course.data import FEATURES, PATH_ENV_VAR, TARGET
from mlops_course.execute import REPO_DIR

WORKFLOWS = sorted((REPO_DIR / ".github" / "workflows").glob("*.y*ml"))
RETRAIN = REPO_DIR / ".github" / "workflows" / "retrain.yml"
# GitHub's shells on Linux runners (docs: jobs.<job_id>.steps[*].shell).
SHELLS = {None: ["bash", "-e", "{0}"], "bash": ["bash", "--noprofile", "--norc", "-eo",
                                                "pipefail", "{0}"], "sh": ["sh", "-e", "{0}"]}
PIPE_HELPERS = ("tee", "cat", "mkdir")  # stay on PATH; every other command is "not found"
SHA_PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def load(path: Path) -> dict:
    """A workflow as YAML data (PyYAML reads the key `on` as True)."""
    return yaml.safe_load(path.read_text())


def run_steps() -> list[tuple[str, str, dict, dict]]:
    """(workflow file, job id, job, step) for every `run:` step of every workflow."""
    found = []
    for path in WORKFLOWS:
        for job_id, job in load(path)["jobs"].items():
            found += [(path.name, job_id, job, s) for s in job.get("steps", []) if "run" in s]
    return found


def shell_of(workflow: dict, job: dict, step: dict) -> str | None:
    """The shell GitHub uses for step: its own, else the job's or workflow's default."""
    for level in (step, job.get("defaults", {}).get("run", {}),
                  workflow.get("defaults", {}).get("run", {})):
        if "shell" in level:
            return level["shell"]
    return None


def run_step(script: str, shell: str | None, cwd: Path, env: dict[str, str]):
    """Run script as GitHub would: written to a file, passed to the shell's command."""
    if shell not in SHELLS:
        pytest.skip(f"shell {shell!r}: only bash and sh steps are run here")
    script_file = cwd / "step.sh"
    script_file.write_text(script)
    summary = cwd / "summary.md"
    program, *options = SHELLS[shell]
    command = [shutil.which(program)] + [o.replace("{0}", str(script_file)) for o in options]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**env, "GITHUB_STEP_SUMMARY": str(summary)})


STEPS = run_steps()
STEP_IDS = [f"{name}:{job_id}:{step.get('name', step['run'][:30])}"
            for name, job_id, _, step in STEPS]


# --- Static checks -----------------------------------------------------------------------

@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_githubs_schema(path):
    check = subprocess.run(
        [str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema",
         "vendor.github-workflows", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_by_commit_sha(path):
    for job in load(path)["jobs"].values():
        for step in job.get("steps", []):
            uses = step.get("uses")
            if uses and not uses.startswith("./"):
                assert SHA_PINNED.match(uses), f"{path.name}: {uses} is not pinned by SHA"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_secrets_reach_only_the_steps_that_use_them(path):
    workflow = load(path)
    assert "secrets." not in yaml.safe_dump(workflow.get("env", {})), \
        f"{path.name}: secrets in the workflow's env reach every step"
    for job_id, job in workflow["jobs"].items():
        assert "secrets." not in yaml.safe_dump(job.get("env", {})), \
            f"{path.name}, job {job_id}: secrets in the job's env reach every step"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_only_jobs_that_run_no_code_may_write(path):
    workflow = load(path)
    top = workflow.get("permissions", {})
    assert isinstance(top, dict) and set(top.values()) <= {"read", "none"}, \
        f"{path.name}: the workflow's default permissions must be read-only"
    for job_id, job in workflow["jobs"].items():
        granted = job.get("permissions", {})
        writes = [k for k, v in granted.items() if v == "write"] if isinstance(
            granted, dict) else [granted]
        runs_code = any("run" in step for step in job.get("steps", []))
        assert not (writes and runs_code), \
            f"{path.name}, job {job_id}: {writes} granted to a job that runs code"


@pytest.mark.parametrize("name, job_id, job, step", STEPS, ids=STEP_IDS)
def test_run_steps_use_no_expressions_and_pipe_under_pipefail(name, job_id, job, step):
    # ${{ }} in a script is pasted into it before the shell runs (an injection risk);
    # values reach scripts through env: instead.
    assert "${{" not in step["run"], f"{name}, {job_id}: pass the value through env:"
    pipes = re.search(r"(?<![|])\|(?![|])", step["run"])
    if pipes:
        assert shell_of(load(REPO_DIR / ".github" / "workflows" / name), job, step) == "bash", \
            f"{name}, {job_id}: a step that pipes needs `shell: bash` (pipefail)"


# --- Each run: step, made to fail -------------------------------------------------------

@pytest.mark.parametrize("name, job_id, job, step", STEPS, ids=STEP_IDS)
def test_a_step_fails_when_a_command_in_it_fails(tmp_path, name, job_id, job, step):
    helpers = tmp_path / "bin"
    helpers.mkdir()
    for tool in PIPE_HELPERS:
        (helpers / tool).symlink_to(shutil.which(tool))
    shell = shell_of(load(REPO_DIR / ".github" / "workflows" / name), job, step)
    done = run_step(step["run"], shell, tmp_path, {"PATH": str(helpers), "HOME": str(tmp_path)})
    if "not found" in done.stderr:  # a command of the step failed ...
        assert done.returncode != 0, f"{name}, {job_id}: the step hid a failure:\n{done.stderr}"


def the_retrain_step() -> dict:
    """The workflow's step that runs pipeline/retrain.py."""
    (step,) = [s for s in load(RETRAIN)["jobs"]["retrain"]["steps"]
               if "retrain.py" in s.get("run", "")]
    return step


@pytest.fixture
def workspace(tmp_path) -> Path:
    """A checkout as the job sees it: pipeline/ and data/ (a comma-separated batch)."""
    (tmp_path / "pipeline").symlink_to(REPO_DIR / "pipeline")
    (tmp_path / "data").mkdir()
    red = pd.read_csv(os.environ[PATH_ENV_VAR], sep=";")[FEATURES + [TARGET]]
    red.to_csv(tmp_path / "data" / "holdout.csv", sep=";", index=False)
    red.to_csv(tmp_path / "data" / "batch.csv", index=False)  # commas: bad input
    return tmp_path


def step_env(**values: str) -> dict[str, str]:
    """This environment with the job's Python and package first, plus the step's values."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])
    return {**os.environ, "PATH": path, "PYTHONPATH": str(REPO_DIR / "src"),
            "MODEL_NAME": "wine-quality", "BATCH_URL": "https://example.org/batch.csv",
            "HOLDOUT_URL": "https://example.org/holdout.csv", **values}


def test_the_retrain_step_fails_on_bad_input(workspace):
    step = the_retrain_step()
    env = step_env(MLFLOW_TRACKING_URI=f"sqlite:///{workspace / 'mlflow.db'}")
    done = run_step(step["run"], step.get("shell"), workspace, env)
    assert done.returncode == 2, done.stderr
    assert "looks comma-separated" in done.stderr
    unsafe = run_step(step["run"], None, workspace, env)  # the shell without `shell:`
    assert unsafe.returncode == 0, "bash -e without pipefail reports tee's status"
    assert not (workspace / "mlflow.db").exists(), "nothing written to MLflow"


def refusing(status: int, code: str) -> type[http.server.BaseHTTPRequestHandler]:
    """A tracking server that answers every request with status (403: no access; 503: down)."""

    class Refusing(http.server.BaseHTTPRequestHandler):
        def refuse(self):
            body = f'{{"error_code": "{code}", "message": "refused by the test"}}'.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = refuse

        def log_message(self, *args):
            pass

    return Refusing


# After its retries, MLflow's client reports a 503 as INTERNAL_ERROR ("too many 503 error
# responses"): an error that is not "no alias" or "no model", so the gate must stop.
@pytest.mark.parametrize("status, code, reported", [
    (403, "PERMISSION_DENIED", "PERMISSION_DENIED"),
    (503, "TEMPORARILY_UNAVAILABLE", "INTERNAL_ERROR"),
])
def test_the_retrain_step_fails_when_the_server_refuses(workspace, status, code, reported):
    red = pd.read_csv(workspace / "data" / "holdout.csv", sep=";")
    red.to_csv(workspace / "data" / "batch.csv", sep=";", index=False)  # good input now
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), refusing(status, code))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        step = the_retrain_step()
        env = step_env(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{server.server_port}",
                       MLFLOW_TRACKING_USERNAME="ci", MLFLOW_TRACKING_PASSWORD="not-a-secret",
                       MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")  # no backoff in a test
        done = run_step(step["run"], step.get("shell"), workspace, env)
    finally:
        server.shutdown()
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"could not look up wine-quality@champion ({reported})" in done.stderr, done.stderr
    assert "not-a-secret" not in done.stdout + done.stderr
    assert "trained:" not in done.stdout, "stopped before training"


def test_the_pipeline_installs_a_slim_environment_pinned_like_the_course():
    def pins(path: Path) -> dict[str, str]:
        lines = [ln.split("#")[0].strip() for ln in path.read_text().splitlines()]
        return dict(ln.split("==") for ln in lines if "==" in ln)

    from importlib.metadata import version

    slim, course = pins(REPO_DIR / "pipeline" / "requirements.txt"), pins(
        REPO_DIR / "requirements.txt")
    assert {"mlflow", "scikit-learn", "pandas", "scipy"} <= set(slim)
    for name, pinned in slim.items():
        assert pinned == course.get(name, version(name)), f"{name} pinned otherwise"
    assert not {"jupyter-book", "pyspark", "playwright"} & set(slim)
    install = next(s for s in load(RETRAIN)["jobs"]["retrain"]["steps"]
                   if "pip install" in s.get("run", ""))
    assert "-r pipeline/requirements.txt" in install["run"]
    assert "--no-deps ." in install["run"], "the course package without the book's packages"
