"""Execute the course notebooks with papermill against scratch MLflow stores, with a cache."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import nbformat
import psutil

from mlops_course.servers import environment, free_port

REPO_DIR = Path(__file__).resolve().parents[2]
FORCE_ENV_VAR = "MLOPS_COURSE_EXECUTE"  # "force": execute every notebook again
TIMEOUT_ENV_VAR = "MLOPS_COURSE_TIMEOUT"  # seconds a notebook, or one of its cells, may run
WORKERS_ENV_VAR = "MLOPS_COURSE_WORKERS"  # notebooks executed at once (default: cores, max 2)
METADATA_KEY = "mlops_course"
# Live widgets (tqdm's progress bars under Jupyter) need scripts from a CDN; pages stay static.
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

# Run first, hidden: MLflow's deprecation warnings (FutureWarning, raised from mlflow or
# attributed to the notebook's own call), its deprecation log lines and deprecated calls in
# the notebook become errors; every Matplotlib PNG carries a description (its alt text).
STRICT_WARNINGS_CELL = """\
import warnings
warnings.filterwarnings("error", category=FutureWarning, module=r"(mlflow|__main__)")
warnings.filterwarnings("error", category=DeprecationWarning, module=r"__main__")
from mlops_course import build_kernel
build_kernel.fail_on_deprecation_logs()
build_kernel.describe_figures()
"""
BUILD_KERNEL = Path(__file__).with_name("build_kernel.py")  # what that cell runs
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
CELL_TIMED_OUT = "nbclient.exceptions.CellTimeoutError"  # what papermill ends with then


# `python -m papermill`, less one optional import: where rfc3987-syntax is installed (the
# Jupyter stack installs it), jsonschema imports it to check IRI strings, and it builds its
# grammar on import, 2 s for each notebook. The notebook schema checks no such string.
PAPERMILL = ("import sys; sys.modules['rfc3987_syntax'] = None; "
             "from papermill.cli import papermill; papermill()")
# Run in a subprocess: the tables and migrations of MLflow's store on an empty database, and
# no rows. mlflow/store/tracking/sqlalchemy_store.py runs the same on a store's first open,
# then adds the Default experiment (with the artifact root of whoever opens it).
EMPTY_STORE_SCRIPT = """\
import sys, sqlalchemy
from mlflow.store.db.utils import _initialize_tables
engine = sqlalchemy.create_engine(sys.argv[1])
_initialize_tables(engine)
engine.dispose()
"""
_empty_store_lock = threading.Lock()


class NotebookExecutionError(RuntimeError):
    """A notebook failed or timed out; the message names the notebook, the cell and the traceback."""


@dataclass
class ExecutionResult:
    """What happened to one notebook in a build."""

    name: str
    executed: bool
    seconds: float


def installed_versions(requirements: Path) -> str:
    """The installed version of each package pinned in requirements, one per line."""
    lines = []
    for line in requirements.read_text().splitlines():
        name = re.split(r"[=<>!~\[ ;]", line.strip(), maxsplit=1)[0]
        if name and not name.startswith(("#", "-")):
            try:
                lines.append(f"{name}=={metadata.version(name)}")
            except metadata.PackageNotFoundError:
                lines.append(f"{name} missing")
    return "\n".join(lines)


# Tags that change how a cell is shown, not what it computes: editing them executes nothing.
RENDER_TAGS = {"remove-input", "remove-output", "remove-cell", "hide-input", "hide-output",
               "hide-cell", "full-width", "margin"}
# Top-level folders that are never a notebook's shared input.
NOT_SHARED = {"notebooks", "book", "src", "tests", "benchmarks", ".git", ".venv", ".ci"}
MODULE_USE = re.compile(r"mlops_course\.(\w+)|from mlops_course import ([\w, ]+)")


def code_cells(nb: nbformat.NotebookNode) -> list[str]:
    """What each code cell computes: its source and the tags that are not about rendering."""
    return [cell.source + "\0" + ",".join(sorted(set(cell.metadata.get("tags", [])) - RENDER_TAGS))
            for cell in nb.cells if cell.cell_type == "code"]


def dependencies(notebook: Path, repo_dir: Path = REPO_DIR) -> list[Path]:
    """The shared files a notebook uses: course modules it imports (and what they import),
    and every file of a top-level folder its code names (e.g. conda_env/)."""
    code = "\n".join(code_cells(nbformat.read(notebook, as_version=4)))
    folders = [d for d in sorted(repo_dir.iterdir()) if d.is_dir()
               and d.name not in NOT_SHARED and not d.name.endswith("cache")
               and re.search(rf"(?<![\w.]){re.escape(d.name)}(?![\w])", code)]
    found = [f for d in folders for f in sorted(d.rglob("*"))
             if f.is_file() and "__pycache__" not in f.parts]
    texts, modules = [code, *(f.read_text(errors="ignore") for f in found)], set()
    while texts:
        for match in MODULE_USE.finditer(texts.pop()):
            for name in re.split(r"[, ]+", match.group(1) or match.group(2)):
                module = repo_dir / "src" / "mlops_course" / f"{name}.py"
                if name and module.is_file() and module not in modules:
                    modules.add(module)
                    texts.append(module.read_text())
    return found + sorted(modules)


def source_hash(notebook: Path, repo_dir: Path = REPO_DIR) -> str:
    """Hash of what an executed notebook's outputs depend on: its code cells, its kernel, the
    pinned versions and the shared files it uses. Prose is not part of it."""
    requirements = repo_dir / "requirements.txt"
    pinned = [path for path in (requirements, repo_dir / "requirements-book.txt") if path.is_file()]
    versions = "\n".join(installed_versions(path) for path in pinned)
    nb = nbformat.read(notebook, as_version=4)
    digest = hashlib.sha256()
    for cell in code_cells(nb):
        digest.update(cell.encode() + b"\0")
    digest.update(nb.metadata.get("kernelspec", {}).get("name", "").encode())
    for path in [*pinned, *dependencies(notebook, repo_dir)]:
        if path.is_file():
            name = path.relative_to(repo_dir).as_posix()
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(versions.encode())
    digest.update(STRICT_WARNINGS_CELL.encode() + BUILD_KERNEL.read_bytes())
    digest.update(EMPTY_STORE_SCRIPT.encode())
    return digest.hexdigest()


def page_hash(notebook: Path) -> str:
    """Hash of the whole notebook file: prose and rendering tags included."""
    return hashlib.sha256(notebook.read_bytes()).hexdigest()


def rerender(source: Path, executed: Path) -> None:
    """Rewrite an executed copy with the source's cells (new prose, tags) and its old outputs.

    Only valid when the code is unchanged (equal source_hash): code cells pair up in order.
    """
    cached = nbformat.read(executed, as_version=4)
    nb = nbformat.read(source, as_version=4)
    old = iter([c for c in cached.cells if c.cell_type == "code"])
    for cell in nb.cells:
        if cell.cell_type == "code":
            done = next(old)
            cell.outputs, cell.execution_count = done.outputs, done.execution_count
    nb.metadata = cached.metadata
    nb.metadata[METADATA_KEY]["page_hash"] = page_hash(source)
    write_atomically(nb, executed)


def write_atomically(nb: nbformat.NotebookNode, destination: Path) -> None:
    """Write a notebook so that a reader never sees half of it."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_suffix(".partial")
    nbformat.write(nb, partial)
    partial.replace(destination)


def cached_hashes(executed: Path) -> tuple[str | None, str | None]:
    """The source and page hashes recorded in an executed copy (None, None without one)."""
    try:
        nb = nbformat.read(executed, as_version=4)
    except (OSError, ValueError):
        return None, None
    info = nb.metadata.get(METADATA_KEY, {})
    return info.get("source_hash"), info.get("page_hash")


def empty_store() -> bytes:
    """An MLflow SQLite database with every table and migration and no experiment, made once
    per process: a scratch store starts as a learner's store is after their first chapter,
    and its first open skips the migrations (4 s)."""
    with _empty_store_lock:  # the build's two workers ask at once: make it only once
        return _make_empty_store()


@functools.cache
def _make_empty_store() -> bytes:
    with tempfile.TemporaryDirectory(prefix="mlops-course-store-") as work:
        path = Path(work, "mlflow.db")
        subprocess.run([sys.executable, "-c", EMPTY_STORE_SCRIPT, f"sqlite:///{path.as_posix()}"],
                       check=True, capture_output=True,
                       env={**os.environ, "MLFLOW_LOGGING_LEVEL": "WARNING"})
        return path.read_bytes()


def kill_tree(pid: int) -> None:
    """Kill a process and everything it started (the kernel, its servers), on any OS."""
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for process in family:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=30)


def parameter_names(nb: nbformat.NotebookNode) -> set[str]:
    """Names assigned in the cell tagged `parameters`."""
    for cell in nb.cells:
        if "parameters" in cell.metadata.get("tags", []):
            return set(re.findall(r"^(\w+)\s*=", cell.source, flags=re.M))
    raise NotebookExecutionError("the notebook has no cell tagged 'parameters'")


def describe_failure(executed: nbformat.NotebookNode, name: str,
                     papermill_output: str) -> str:
    """Name the cell that raised (numbered as in the committed notebook), its source and
    traceback; if none raised, what papermill said."""
    added = {"injected-parameters", "papermill-error-cell-tag"}  # papermill's own cells
    original = [c for c in executed.cells
                if c.source != STRICT_WARNINGS_CELL and not added & set(c.metadata.get("tags", []))]
    for number, cell in enumerate(original, start=1):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                traceback = ANSI_ESCAPE.sub("", "\n".join(output.get("traceback", [])))
                return f"{name} failed in cell {number} (of {len(original)}):\n{cell.source}\n\n{traceback}"
    return f"{name} failed before any cell raised; papermill said:\n{papermill_output[-3000:]}"


def execute_notebook(
    source: Path,
    destination: Path,
    *,
    timeout: float = 600,
    scratch_dir: Path | None = None,
    repo_dir: Path = REPO_DIR,
    parameters: dict | None = None,
) -> float:
    """Execute source with papermill in a scratch folder and store; write destination. Seconds.

    parameters: values for the notebook's parameters cell, on top of the scratch store's.
    """
    # Of what runs, even if the notebook is edited meanwhile.
    executed_hash, executed_page = source_hash(source, repo_dir), page_hash(source)
    nb = nbformat.read(source, as_version=4)
    declared = parameter_names(nb)
    if unknown := sorted(set(parameters or {}) - declared):
        raise NotebookExecutionError(f"{source.name} has no parameter {', '.join(unknown)}")
    setup = nbformat.v4.new_code_cell(STRICT_WARNINGS_CELL)
    nb.cells.insert(0, setup)
    with tempfile.TemporaryDirectory(prefix="mlops-course-") as work:
        scratch = Path(scratch_dir or Path(work) / "scratch").resolve()
        scratch.mkdir(parents=True, exist_ok=True)
        store = scratch / "mlflow.db"
        if not store.exists():
            store.write_bytes(empty_store())
        tracking_uri = f"sqlite:///{store}"
        offered = {"tracking_uri": tracking_uri, "repo_dir": str(repo_dir), "port": free_port()}
        given = {k: v for k, v in offered.items() if k in declared} | (parameters or {})
        staged, executed = Path(work, "input.ipynb"), Path(work, "output.ipynb")
        nbformat.write(nb, staged)
        Path(work, "parameters.json").write_text(json.dumps(given))
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": tracking_uri,
            "MLFLOW_LOGGING_LEVEL": "WARNING",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            "JUPYTER_PREFER_ENV_PATH": "1",
            "PYTHONHASHSEED": "0",
            # The build is offline: MLflow's usage telemetry would look up its config host
            # (mlflow/telemetry/utils.py). A learner's own run keeps MLflow's default.
            "MLFLOW_DISABLE_TELEMETRY": "true",
            # As in an activated environment: `python` and `mlflow` are this interpreter's.
            "PATH": environment()["PATH"],  # its scripts folder: bin/, or Scripts on Windows
        }
        command = [
            sys.executable, "-c", PAPERMILL, str(staged), str(executed),
            "-f", str(Path(work, "parameters.json")), "--cwd", str(scratch),
            "--kernel", "python3", "--execution-timeout", str(int(timeout)),
            # Write the executed copy once, at the end (or at the failing cell), not at the
            # start and end of every cell: each write validates the whole notebook.
            "--no-progress-bar", "--no-request-save-on-cell-execute",
        ]
        started = time.perf_counter()
        # A timeout stops papermill, the kernel and what the kernel started (kill_tree).
        papermill = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            _, stderr = papermill.communicate(timeout=timeout + 60)
        except subprocess.TimeoutExpired as error:
            kill_tree(papermill.pid)
            papermill.communicate()
            raise NotebookExecutionError(
                f"{source.name} did not finish within {timeout:.0f} s"
            ) from error
        seconds = time.perf_counter() - started
        if papermill.returncode != 0:
            if executed.exists():
                message = describe_failure(
                    nbformat.read(executed, as_version=4), source.name, stderr
                )
            elif CELL_TIMED_OUT in stderr:  # papermill stops there, without writing a copy
                message = (f"{source.name}: Timed out: a cell may run for {timeout:.0f} s at "
                           f"most (set {TIMEOUT_ENV_VAR} to change it).\n{stderr[-3000:]}")
            else:
                message = f"{source.name} could not be executed:\n{stderr[-3000:]}"
            raise NotebookExecutionError(message)
        result = nbformat.read(executed, as_version=4)
    finalize(result, executed_hash, seconds)
    result.metadata[METADATA_KEY]["page_hash"] = executed_page
    write_atomically(result, destination)
    return seconds


def finalize(nb: nbformat.NotebookNode, executed_hash: str, seconds: float) -> None:
    """Drop the setup cell, papermill's parameters and metadata, and live widgets; record
    hash and timing.

    What is left runs on a reader's machine as it is: the build's paths were only in
    what is dropped.
    """
    nb.cells = [cell for cell in nb.cells[1:]
                if "injected-parameters" not in cell.metadata.get("tags", [])]
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)  # a widget's state makes the page load its scripts
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        for output in cell.get("outputs", []):  # a progress bar keeps its text form
            output.get("data", {}).pop(WIDGET_VIEW, None)
    nb.metadata[METADATA_KEY] = {
        "source_hash": executed_hash,
        "seconds": round(seconds, 2),
        "executed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def execute_book(
    sources: list[Path],
    output_dir: Path,
    *,
    force: bool | None = None,
    workers: int | None = None,
    timeout: float | None = None,
    log=print,
) -> list[ExecutionResult]:
    """Execute each source notebook whose inputs changed since its executed copy; reuse the rest."""
    force = os.environ.get(FORCE_ENV_VAR) == "force" if force is None else force
    workers = workers or int(os.environ.get(WORKERS_ENV_VAR) or min(2, os.cpu_count() or 1))
    timeout = timeout or float(os.environ.get(TIMEOUT_ENV_VAR) or 600)
    repo_dir = sources[0].resolve().parents[1] if sources else REPO_DIR
    wanted = {source.name for source in sources}
    for stale in output_dir.glob("*.ipynb"):
        if stale.name not in wanted:
            stale.unlink()
    results: dict[str, ExecutionResult] = {}
    todo = []
    rerendered = 0
    for source in sources:
        destination = output_dir / source.name
        code, page = cached_hashes(destination)
        if force or code != source_hash(source, repo_dir):
            todo.append(source)
            continue
        if page != page_hash(source):  # prose or rendering tags edited: keep the outputs
            rerender(source, destination)
            rerendered += 1
        results[source.name] = ExecutionResult(source.name, False, 0.0)
    log(f"notebooks: {len(todo)} to execute, {len(results)} unchanged (cached; "
        f"{rerendered} with edited prose, re-rendered without executing)")

    def run(source: Path) -> ExecutionResult:
        log(f"executing {source.name} ...")
        seconds = execute_notebook(
            source, output_dir / source.name, timeout=timeout, repo_dir=repo_dir
        )
        log(f"executed {source.name} in {seconds:.1f} s")
        return ExecutionResult(source.name, True, seconds)

    failures = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(run, source) for source in todo]:
            try:
                result = future.result()
                results[result.name] = result
            except NotebookExecutionError as error:
                failures.append(str(error))
    if failures:
        raise NotebookExecutionError("\n\n".join(failures))
    return [results[s.name] for s in sources]
