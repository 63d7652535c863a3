"""Execute the course notebooks with papermill against scratch MLflow stores, with a cache."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import nbformat

REPO_DIR = Path(__file__).resolve().parents[2]
FORCE_ENV_VAR = "MLOPS_COURSE_EXECUTE"  # "force": execute every notebook again
TIMEOUT_ENV_VAR = "MLOPS_COURSE_TIMEOUT"  # seconds a notebook, or one of its cells, may run
WORKERS_ENV_VAR = "MLOPS_COURSE_WORKERS"  # notebooks executed at once (default: cores, max 2)
METADATA_KEY = "mlops_course"

# Run first, hidden: MLflow's deprecation warnings (FutureWarning, raised from mlflow or
# attributed to the notebook's own call) and deprecated calls in the notebook become errors.
STRICT_WARNINGS_CELL = """\
import warnings
warnings.filterwarnings("error", category=FutureWarning, module=r"(mlflow|__main__)")
warnings.filterwarnings("error", category=DeprecationWarning, module=r"__main__")
"""
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


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


def source_hash(notebook: Path, repo_dir: Path = REPO_DIR) -> str:
    """Hash of everything an executed notebook depends on: itself, pins, versions, shared code."""
    requirements = repo_dir / "requirements.txt"
    versions = installed_versions(requirements) if requirements.is_file() else ""
    digest = hashlib.sha256()
    shared = [requirements, repo_dir / "src/mlops_course/data.py"]
    shared += sorted(p for p in (repo_dir / "conda_env").glob("*") if p.is_file())
    for path in [notebook, *(p for p in shared if p.is_file())]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(versions.encode())
    digest.update(STRICT_WARNINGS_CELL.encode())
    return digest.hexdigest()


def cached_hash(executed: Path) -> str | None:
    """The source hash recorded in an executed copy, or None when there is no usable copy."""
    try:
        nb = nbformat.read(executed, as_version=4)
    except (OSError, ValueError):
        return None
    return nb.metadata.get(METADATA_KEY, {}).get("source_hash")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def parameter_names(nb: nbformat.NotebookNode) -> set[str]:
    """Names assigned in the cell tagged `parameters`."""
    for cell in nb.cells:
        if "parameters" in cell.metadata.get("tags", []):
            return set(re.findall(r"^(\w+)\s*=", cell.source, flags=re.M))
    raise NotebookExecutionError("the notebook has no cell tagged 'parameters'")


def describe_failure(executed: nbformat.NotebookNode, name: str, timeout: float) -> str:
    """Name the cell that raised (numbered as in the committed notebook), its source and traceback."""
    added = {"injected-parameters", "papermill-error-cell-tag"}  # papermill's own cells
    original = [c for c in executed.cells
                if c.source != STRICT_WARNINGS_CELL and not added & set(c.metadata.get("tags", []))]
    for number, cell in enumerate(original, start=1):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                traceback = ANSI_ESCAPE.sub("", "\n".join(output.get("traceback", [])))
                if output.get("ename") == "KeyboardInterrupt":  # papermill's timeout interrupt
                    traceback = (f"Timed out: a cell may run for {timeout:.0f} s at most "
                                 f"(set {TIMEOUT_ENV_VAR} to change it).\n{traceback}")
                return f"{name} failed in cell {number} (of {len(original)}):\n{cell.source}\n\n{traceback}"
    return f"{name} failed before any cell raised (see the papermill log above)"


def execute_notebook(
    source: Path,
    destination: Path,
    *,
    timeout: float = 600,
    scratch_dir: Path | None = None,
    repo_dir: Path = REPO_DIR,
) -> float:
    """Execute source with papermill in a scratch folder and store; write destination. Seconds."""
    executed_hash = source_hash(source, repo_dir)  # of what runs, even if edited meanwhile
    nb = nbformat.read(source, as_version=4)
    declared = parameter_names(nb)
    setup = nbformat.v4.new_code_cell(STRICT_WARNINGS_CELL)
    nb.cells.insert(0, setup)
    with tempfile.TemporaryDirectory(prefix="mlops-course-") as work:
        scratch = Path(scratch_dir or Path(work) / "scratch").resolve()
        scratch.mkdir(parents=True, exist_ok=True)
        tracking_uri = f"sqlite:///{scratch / 'mlflow.db'}"
        offered = {"tracking_uri": tracking_uri, "repo_dir": str(repo_dir), "port": free_port()}
        parameters = {k: v for k, v in offered.items() if k in declared}
        staged, executed = Path(work, "input.ipynb"), Path(work, "output.ipynb")
        nbformat.write(nb, staged)
        Path(work, "parameters.json").write_text(json.dumps(parameters))
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": tracking_uri,
            "MLFLOW_LOGGING_LEVEL": "WARNING",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            "JUPYTER_PREFER_ENV_PATH": "1",
            "PYTHONHASHSEED": "0",
            # As in an activated environment: `python` and `mlflow` are this interpreter's.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        command = [
            sys.executable, "-m", "papermill", str(staged), str(executed),
            "-f", str(Path(work, "parameters.json")), "--cwd", str(scratch),
            "--kernel", "python3", "--execution-timeout", str(int(timeout)),
            "--no-progress-bar",
        ]
        started = time.perf_counter()
        # Its own process group, so that a timeout stops the kernel and what it started too.
        papermill = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            _, stderr = papermill.communicate(timeout=timeout + 60)
        except subprocess.TimeoutExpired as error:
            os.killpg(papermill.pid, signal.SIGKILL)
            papermill.communicate()
            raise NotebookExecutionError(
                f"{source.name} did not finish within {timeout:.0f} s"
            ) from error
        seconds = time.perf_counter() - started
        if papermill.returncode != 0:
            if executed.exists():
                message = describe_failure(
                    nbformat.read(executed, as_version=4), source.name, timeout
                )
            else:
                message = f"{source.name} could not be executed:\n{stderr[-3000:]}"
            raise NotebookExecutionError(message)
        result = nbformat.read(executed, as_version=4)
    finalize(result, executed_hash, seconds)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_suffix(".partial")
    nbformat.write(result, partial)
    partial.replace(destination)
    return seconds


def finalize(nb: nbformat.NotebookNode, executed_hash: str, seconds: float) -> None:
    """Drop the setup cell and papermill's parameters and metadata; record hash and timing.

    What is left runs on a reader's machine as it is: the build's paths were only in
    what is dropped.
    """
    nb.cells = [cell for cell in nb.cells[1:]
                if "injected-parameters" not in cell.metadata.get("tags", [])]
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
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
    for source in sources:
        destination = output_dir / source.name
        if not force and cached_hash(destination) == source_hash(source, repo_dir):
            results[source.name] = ExecutionResult(source.name, False, 0.0)
        else:
            todo.append(source)
    log(f"notebooks: {len(todo)} to execute, {len(results)} unchanged (cached)")

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
