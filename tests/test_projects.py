"""Chapter 6: what the projects notebook leaves in its store, and train.py outside the course env."""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest
import yaml

from mlops_course.execute import REPO_DIR
from mlops_course.testing import notebook_path, outputs_text

NOTEBOOK = "06_projects"
EXPERIMENT = "06-projects"
PROJECT_DIR = REPO_DIR / "conda_env"
GRID = {"parallel-1": ("0.05", "0.1"), "parallel-2": ("0.2", "0.5"), "parallel-3": ("0.8", "0.9")}


@pytest.mark.slow
def test_each_pass_adds_the_named_runs_and_nothing_for_the_missing_alpha(executed):
    result = executed(NOTEBOOK)
    names = [name for exp, name, _ in result.first_pass.values() if exp == EXPERIMENT]
    assert sorted(names) == sorted(["first-project-run", "bad-alpha", "from-git", *GRID])
    second = [name for exp, name, _ in result.second_pass.values() if exp == EXPERIMENT]
    assert sorted(second) == sorted(names), "the second pass adds the same runs again"


@pytest.mark.slow
def test_first_run_holds_params_metrics_model_and_project_tags(executed):
    result = executed(NOTEBOOK)
    run = result.client().get_run(result.first_runs(EXPERIMENT)["first-project-run"])
    assert run.info.status == "FINISHED"
    assert run.data.params == {"alpha": "1.0", "l1_ratio": "1.0"}
    assert run.data.metrics["rmse"] == pytest.approx(0.7842, abs=1e-4)
    assert set(run.data.metrics) == {"rmse", "mae", "r2"}
    assert run.data.tags["mlflow.source.type"] == "PROJECT"
    assert run.data.tags["mlflow.project.entryPoint"] == "main"
    assert run.data.tags["mlflow.project.backend"] == "local"
    assert len(run.outputs.model_outputs) == 1, "train.py logs its model"


@pytest.mark.slow
def test_bad_alpha_is_recorded_as_a_failed_run_without_metrics(executed):
    result = executed(NOTEBOOK)
    run = result.client().get_run(result.first_runs(EXPERIMENT)["bad-alpha"])
    assert run.info.status == "FAILED"
    assert run.data.params == {"alpha": "abc", "l1_ratio": "0.1"}
    assert run.data.metrics == {}


@pytest.mark.slow
def test_git_run_records_the_tagged_commit_of_a_clone_that_is_gone(executed):
    result = executed(NOTEBOOK)
    run = result.client().get_run(result.first_runs(EXPERIMENT)["from-git"])
    assert run.info.status == "FINISHED"
    assert run.data.params == {"alpha": "0.5", "l1_ratio": "0.1"}, "v1.0's default l1_ratio"
    commit = run.data.tags["mlflow.source.git.commit"]
    assert len(commit) == 40 and int(commit, 16) >= 0
    assert run.data.tags["mlflow.source.name"] == "wine-v1#conda_env", "run from the clone"
    # The clone's remote is the stand-in team repository, in a temporary folder now gone.
    repo = Path(urlparse(run.data.tags["mlflow.source.git.repoURL"]).path)
    assert repo.name == "wine-project"
    assert not repo.is_relative_to(REPO_DIR) and not repo.is_relative_to(result.scratch_dir)
    assert not repo.exists(), "the temporary git repositories must be removed"


@pytest.mark.slow
def test_parallel_runs_finished_with_their_own_parameters(executed):
    result = executed(NOTEBOOK)
    client = result.client()
    runs = result.first_runs(EXPERIMENT)
    for name, (alpha, l1_ratio) in GRID.items():
        run = client.get_run(runs[name])
        assert run.info.status == "FINISHED", name
        assert run.data.params == {"alpha": alpha, "l1_ratio": l1_ratio}, name
        assert set(run.data.metrics) == {"rmse", "mae", "r2"}, name


@pytest.mark.slow
def test_running_the_project_writes_nothing_into_it(executed):
    executed(NOTEBOOK)
    allowed = {"MLproject", "conda.yaml", "python_env.yaml", "train.py", "__pycache__"}
    assert {p.name for p in PROJECT_DIR.iterdir()} <= allowed


def test_train_py_finds_the_loader_in_src_when_the_course_package_is_not_installed():
    # `python -S` skips the .pth files of site-packages, so the editable install of the
    # course package is invisible, as in a fresh conda or virtualenv environment.
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    probe = subprocess.run([sys.executable, "-S", "-c", "import mlops_course"],
                           env=env, capture_output=True, text=True)
    if probe.returncode == 0:
        pytest.skip("the course package is installed in site-packages, not editable")
    shown = subprocess.run([sys.executable, "-S", str(PROJECT_DIR / "train.py"), "--help"],
                           env=env, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "usage: train.py" in shown.stdout


@pytest.mark.slow
def test_outputs_show_no_machine_paths_and_no_repository_url(executed):
    result = executed(NOTEBOOK)
    shown = outputs_text(result.first_copy)
    for path in [str(REPO_DIR), str(result.scratch_dir), "/tmp/", str(Path.home())]:
        assert path not in shown, f"an output shows {path}"
    assert "repoURL" not in shown, "the repository URL can be a path on the build machine"


@pytest.mark.slow
def test_the_chapter_writes_only_into_the_store(executed):
    result = executed(NOTEBOOK)
    assert {p.name for p in result.scratch_dir.iterdir()} <= {"mlflow.db", "mlruns"}


def test_page_warns_about_version_and_no_conda_and_says_what_did_not_run():
    nb = nbformat.read(notebook_path(NOTEBOOK), as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "in place" in text and "detached HEAD" in text, "warn: --version checks out in place"
    assert "`mlflow models serve`" in text and "still accepts `--no-conda`" in text
    assert "did not run when the book was built" in text
    assert "2-core" not in text and "build machine" not in text


def test_spine_three_exercises_one_in_the_ui_and_a_next_link():
    nb = nbformat.read(notebook_path(NOTEBOOK), as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    exercises = re.findall(r"```\{exercise\}\n:label: (\S+)\n(.*?)```", text, re.S)
    assert len(exercises) == 3, [label for label, _ in exercises]
    assert sum("MLflow UI" in body for _, body in exercises) == 1, "one exercise in the UI"
    assert text.count("{solution-start}") == text.count("{solution-end}") == 3
    assert "[Next: serving a model over REST](07_serving.ipynb)" in text
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert max(len(source.splitlines()) for source in code) <= 20, "a code cell is too long"


def test_train_py_and_mlproject_share_one_default_l1_ratio():
    spec = yaml.safe_load((PROJECT_DIR / "MLproject").read_text())
    default = spec["entry_points"]["main"]["parameters"]["l1_ratio"]["default"]
    shown = subprocess.run([sys.executable, str(PROJECT_DIR / "train.py"), "--help"],
                           capture_output=True, text=True, check=True).stdout
    assert f"(default {default})" in " ".join(shown.split()), shown


def test_train_py_loads_the_loader_of_its_own_checkout_before_the_installed_one(tmp_path):
    """A checkout at another version: its train.py must use that checkout's src/, even though
    the course package is installed (editable, pointing at the working copy)."""
    shutil.copytree(PROJECT_DIR, tmp_path / "conda_env",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO_DIR / "src" / "mlops_course", tmp_path / "src" / "mlops_course",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = "import train, mlops_course.data as loader; print(loader.__file__)"
    found = subprocess.run([sys.executable, "-c", where], cwd=tmp_path / "conda_env", env=env,
                           capture_output=True, text=True, check=False)
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()).resolve().is_relative_to(tmp_path.resolve())
