"""The repository's environment files agree, stay portable, and the workflow is valid."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

from mlops_course.execute import REPO_DIR

PIN = re.compile(r"^\s*([A-Za-z0-9_.-]+)==([^\s#;]+)")


def pins(lines) -> dict[str, str]:
    """name -> version of every `name==version` line."""
    return {m[1].lower(): m[2] for m in map(PIN.match, lines) if m}


def requirement_pins() -> dict[str, str]:
    return pins((REPO_DIR / "requirements.txt").read_text().splitlines())


def test_core_libraries_are_pinned_and_the_build_tools_apart():
    learner = requirement_pins()
    book = pins((REPO_DIR / "requirements-book.txt").read_text().splitlines())
    for name in ("mlflow", "scikit-learn", "pandas", "numpy", "jupyterlab"):
        assert name in learner, f"{name} must be pinned in requirements.txt"
    for name in ("jupyter-book", "papermill", "sphinx-exercise"):
        assert name in book and name not in learner, f"{name}: requirements-book.txt only"
    assert learner["mlflow"].startswith("3.") and book["jupyter-book"].startswith("1.")
    chain = [(REPO_DIR / name).read_text().splitlines()[:4] for name in
             ("requirements-book.txt", "requirements-dev.txt")]
    assert "-r requirements.txt" in chain[0] and "-r requirements-book.txt" in chain[1]


def test_conda_yaml_is_portable_and_agrees_with_requirements():
    spec = yaml.safe_load((REPO_DIR / "conda_env/conda.yaml").read_text())
    plain = [d for d in spec["dependencies"] if isinstance(d, str)]
    assert not [d for d in plain if d.count("=") > 1], "no build strings (name=version=build)"
    pip_section = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
    conda_pins = pins(pip_section)
    assert set(conda_pins) >= {"mlflow", "scikit-learn", "pandas", "numpy"}
    pinned = requirement_pins()
    assert {n: v for n, v in conda_pins.items() if pinned.get(n) != v} == {}


def test_python_env_yaml_matches_conda_yaml():
    conda = yaml.safe_load((REPO_DIR / "conda_env/conda.yaml").read_text())
    python_env = yaml.safe_load((REPO_DIR / "conda_env/python_env.yaml").read_text())
    conda_python = next(d for d in conda["dependencies"] if isinstance(d, str)
                        and d.startswith("python="))
    assert conda_python == f"python={python_env['python']}"
    conda_pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert pins(python_env["dependencies"]) == pins(conda_pip)


def test_mlproject_declares_the_entry_point():
    project = yaml.safe_load((REPO_DIR / "conda_env/MLproject").read_text())
    main = project["entry_points"]["main"]
    assert project["conda_env"] == "conda.yaml"
    assert main["parameters"]["alpha"] == "float"
    assert main["parameters"]["l1_ratio"] == {"type": "float", "default": 0.1}
    assert "train.py" in main["command"]


def test_publish_workflow_matches_the_github_schema():
    workflows = sorted((REPO_DIR / ".github/workflows").glob("*.yml"))
    assert workflows
    check = subprocess.run(
        [str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema",
         "vendor.github-workflows", *map(str, workflows)],
        capture_output=True, text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_no_data_files_or_outputs_are_committed():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO_DIR, capture_output=True,
                             text=True, check=True).stdout.split()
    assert not [f for f in tracked if f.endswith((".csv", ".db"))]
    assert not [f for f in tracked if f.startswith(("mlruns/", "book/_build/", "book/notebooks/"))]
