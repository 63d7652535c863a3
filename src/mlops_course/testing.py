"""Test helpers: execute a course notebook against a scratch store and look inside the store."""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat
import PIL.Image
from mlflow import MlflowClient

from mlops_course.execute import REPO_DIR, execute_notebook
from mlops_course.screenshots import SIZE as SCREENSHOT_SIZE

NOTEBOOKS_DIR = REPO_DIR / "notebooks"
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

    @property
    def first_copy(self) -> Path:
        """The executed copy of the first pass (outputs, screenshots)."""
        return self.scratch_dir.parent / f"pass1-{self.name}.ipynb"

    def client(self) -> MlflowClient:
        """A client on the scratch store."""
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def first_runs(self, experiment: str) -> dict[str, str]:
        """Run name -> run id of the first pass's runs in one experiment."""
        return {name: run_id for run_id, (exp, name, _) in self.first_pass.items()
                if exp == experiment}


def execute_twice(name: str, scratch_dir: Path, output_dir: Path,
                  book_dir: Path | None = None) -> ExecutedNotebook:
    """Execute a notebook twice against one store; record the runs each pass added.

    The first pass runs on an empty store, as the book build does: with book_dir, its copy
    also goes to the book's executed folder, so that a later build does not execute it again.
    """
    source = notebook_path(name)
    passes: list[dict[str, tuple]] = []
    before: dict[str, tuple] = {}
    for attempt in (1, 2):
        copy = output_dir / f"pass{attempt}-{source.name}"
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


def check_screenshot(png: bytes) -> None:
    """Assert png is a picture of the browser window's size that shows more than one colour."""
    image = PIL.Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == SCREENSHOT_SIZE, image.size
    colours = image.convert("L").getcolors(maxcolors=256 * 256) or []
    assert len(colours) > 20, "the screenshot is blank"
