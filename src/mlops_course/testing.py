"""Test helpers: execute a course notebook against a scratch store and look inside the store."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import PIL.Image
import pytest
from mlflow import MlflowClient

from mlops_course.execute import (
    FORCE_ENV_VAR, REPO_DIR, NotebookExecutionError, execute_notebook,
)
from mlops_course.screenshots import SIZE as SCREENSHOT_SIZE
from mlops_course.screenshots import chromium_path
from mlops_course.servers import environment

NOTEBOOKS_DIR = REPO_DIR / "notebooks"
BOOK_EXECUTED = REPO_DIR / "book" / "notebooks"  # the build's cache of executed notebooks
# Metrics that measure time or the machine are allowed to differ between two executions.
TIMING_SUFFIXES = ("_seconds", "_ms", "_per_second")
SYSTEM_PREFIX = "system/"  # MLflow's system metrics (CPU, memory, ...)


def notebook_path(name: str) -> Path:
    """The committed notebook called name (with or without .ipynb)."""
    return NOTEBOOKS_DIR / (name if name.endswith(".ipynb") else f"{name}.ipynb")


def write_notebook(path: Path, *sources: str) -> Path:
    """A small course-shaped notebook: a title, a parameters cell, then one cell per source."""
    parameters = nbformat.v4.new_code_cell("tracking_uri = None  # set by papermill\nport = 5000")
    parameters.metadata["tags"] = ["parameters"]
    cells = [nbformat.v4.new_markdown_cell("# A test notebook"), parameters]
    nb = nbformat.v4.new_notebook(cells=cells + [nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def run_summaries(client: MlflowClient) -> dict[str, tuple]:
    """Every run in the store: run id -> (experiment, run name, deterministic metrics)."""
    summaries = {}
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id], max_results=5000):
            metrics = {
                key: round(value, 10)
                for key, value in sorted(run.data.metrics.items())
                if not key.endswith(TIMING_SUFFIXES) and not key.startswith(SYSTEM_PREFIX)
            }
            summaries[run.info.run_id] = (experiment.name, run.info.run_name, metrics)
    return summaries


@dataclass
class ExecutedNotebook:
    """A notebook executed twice against one scratch store, with what each pass logged."""

    name: str
    scratch_dir: Path
    first_pass: dict[str, tuple]
    second_pass: dict[str, tuple]

    @property
    def tracking_uri(self) -> str:
        """The scratch store's URI."""
        return f"sqlite:///{self.scratch_dir / 'mlflow.db'}"

    def copy(self, attempt: int) -> Path:
        """The executed copy of pass 1 or 2 (outputs, screenshots)."""
        return self.scratch_dir.parent / f"pass{attempt}-{self.name}.ipynb"

    @property
    def first_copy(self) -> Path:
        """The executed copy of the first pass, the one the book shows."""
        return self.copy(1)

    def client(self) -> MlflowClient:
        """A client on the scratch store."""
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def first_runs(self, experiment: str) -> dict[str, str]:
        """Run name -> run id of the first pass's runs in one experiment."""
        return {name: run_id for run_id, (exp, name, _) in self.first_pass.items()
                if exp == experiment}


SecondPass = Callable[[Path, Path, Path], None]  # (notebook, executed copy, scratch folder)


def execute_twice(name: str, scratch_dir: Path, output_dir: Path,
                  book_dir: Path | None = None,
                  second_pass: SecondPass | None = None) -> ExecutedNotebook:
    """Execute a notebook twice against one store; record the runs each pass added.

    The first pass runs on an empty store, as the book build does: with book_dir, its copy
    also goes to the book's executed folder, so that a later build does not execute it again.
    second_pass, if given, runs the second pass instead of papermill (e.g. run_as_learner).
    """
    source = notebook_path(name)
    passes: list[dict[str, tuple]] = []
    before: dict[str, tuple] = {}
    for attempt in (1, 2):
        copy = output_dir / f"pass{attempt}-{source.name}"
        if attempt == 2 and second_pass:
            second_pass(source, copy, scratch_dir)
        else:
            execute_notebook(source, copy, scratch_dir=scratch_dir)
        if attempt == 1 and book_dir:
            book_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(copy, book_dir / source.name)
        # The client is made only now: the notebook created the store with artifact
        # folders under scratch_dir, where a client made earlier would not have put them.
        client = MlflowClient(tracking_uri=f"sqlite:///{scratch_dir / 'mlflow.db'}")
        after = run_summaries(client)
        passes.append({k: v for k, v in after.items() if k not in before})
        before = after
    return ExecutedNotebook(source.stem, scratch_dir, *passes)


def run_as_learner(source: Path, copy: Path, folder: Path) -> None:
    """Run the notebook as a learner does: `jupyter execute` in folder, no parameters given,
    no MLflow variables set, so that the notebook uses MLflow's default store there."""
    folder.mkdir(parents=True, exist_ok=True)
    env = environment()  # as in the activated course environment
    for variable in [v for v in env if v.startswith("MLFLOW_")] + [FORCE_ENV_VAR]:
        env.pop(variable, None)
    notebook = folder / source.name
    shutil.copyfile(source, notebook)
    run = subprocess.run(
        [sys.executable, "-m", "jupyter", "execute", "--kernel_name=python3",
         f"--output={copy.stem}", notebook.name],
        cwd=folder, env=env, capture_output=True, text=True, timeout=900, check=False,
    )
    notebook.unlink()
    if run.returncode != 0:
        raise NotebookExecutionError(f"{source.name}, run as a learner:\n{run.stderr[-4000:]}")
    (folder / f"{copy.stem}.ipynb").replace(copy)


def output_texts(nb: nbformat.NotebookNode) -> Iterator[tuple[int, str]]:
    """(cell number, text) for every output of an executed notebook (images left out)."""
    for number, cell in enumerate(nb.cells, start=1):
        for output in cell.get("outputs", []):
            texts = [output.get("text", ""), *output.get("traceback", [])]
            texts += [value if isinstance(value, str) else json.dumps(value)
                      for mime, value in output.get("data", {}).items()
                      if mime.startswith("text/") or mime.endswith("json")]
            yield number, "\n".join(texts)


def outputs_text(executed_ipynb: Path) -> str:
    """Every text a reader sees in an executed notebook's outputs (images left out)."""
    nb = nbformat.read(executed_ipynb, as_version=4)
    return "\n".join(text for _, text in output_texts(nb))


def check_screenshots(shots: dict[str, dict], expected: dict[str, str]) -> None:
    """Check each expected picture (name -> the text its page had to show first): it waited
    for that text and was taken. Without Chromium it skips, except in CI."""
    for name, text in expected.items():
        assert shots[name]["waited_for"] == text, name
    if chromium_path() is None and not os.environ.get("CI"):
        pytest.skip("no Chromium here to take the pictures (CI has one)")
    for name in expected:
        assert shots[name]["png"], f"the picture {name!r} was not taken"
        check_screenshot(shots[name]["png"])


def check_screenshot(png: bytes) -> None:
    """Assert png is a picture of the browser window's size that shows more than one colour."""
    image = PIL.Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == SCREENSHOT_SIZE, image.size
    colours = image.convert("L").getcolors(maxcolors=256 * 256) or []
    assert len(colours) > 20, "the screenshot is blank"
