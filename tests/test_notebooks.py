"""Every notebook: committed clean, runs top to bottom twice against one store, same metrics."""

import ast
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mlops_course.testing import NOTEBOOKS_DIR

NOTEBOOKS = sorted(p.stem for p in NOTEBOOKS_DIR.glob("*.ipynb"))
# Chapter 9's second pass runs against a stack its own tests start (tests/test_team_server.py).
OWN_TWICE = [name for name in NOTEBOOKS if name != "09_team_server"]


def test_notebooks_are_numbered_in_book_order():
    assert NOTEBOOKS, "no notebooks found"
    numbers = [int(name.split("_", 1)[0]) for name in NOTEBOOKS]
    assert numbers == sorted(set(numbers)), f"numbers must be unique: {NOTEBOOKS}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_without_outputs_and_with_parameters(name):
    nb = nbformat.read(NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not [c for c in code if c.outputs or c.execution_count], "strip the outputs"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell must be tagged 'parameters'"
    statements = ast.parse(tagged[0].source).body
    assert statements and all(isinstance(s, ast.Assign) for s in statements), \
        "the parameters cell holds plain assignments only"
    assert nb.metadata.kernelspec.name == "python3"
    assert nb.cells[0].source.startswith("# "), "a notebook opens with its title"


def test_code_cells_are_formatted_to_fit_the_page():
    ruff = Path(sys.executable).parent / "ruff"
    check = subprocess.run([str(ruff), "format", "--check", "--diff", str(NOTEBOOKS_DIR)],
                           capture_output=True, text=True)
    assert check.returncode == 0, f"run: ruff format notebooks\n{check.stdout[-3000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("name", OWN_TWICE)
def test_runs_twice_against_one_store_with_identical_metrics(executed, name):
    result = executed(name)

    def logged(runs):
        return sorted((exp, run, sorted(m.items())) for exp, run, m in runs.values())

    assert logged(result.second_pass) == logged(result.first_pass)
