"""`mlops-course check`: is this machine ready for the course, or for one chapter of it?

One line per check, PASS, WARN (optional) or FAIL, each failure with its fix for this
operating system. Nothing is installed or changed.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from mlops_course import data, servers
from mlops_course.execute import REPO_DIR

CHAPTERS = range(1, 15)
MIN_PYTHON = (3, 11)
MIN_JAVA = 17
MIN_FREE_GB = 3
UI_PORT, SERVE_PORT = 5000, 1234


@dataclass
class Result:
    """The outcome of one check."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    optional: bool = False

    @property
    def status(self) -> str:
        """PASS, WARN (an optional check failed) or FAIL."""
        return "PASS" if self.ok else "WARN" if self.optional else "FAIL"

    def line(self) -> str:
        """The line the command prints."""
        text = f"{self.status}  {self.name}: {self.detail}"
        return f"{text}\n      fix: {self.fix}" if not self.ok and self.fix else text


def _os() -> str:
    """'macos', 'windows' or 'linux': which form of a fix to print."""
    return {"darwin": "macos", "win32": "windows"}.get(sys.platform, "linux")


def per_os(linux: str, macos: str, windows: str) -> str:
    """The fix for this operating system."""
    return {"linux": linux, "macos": macos, "windows": windows}[_os()]


INSTALL = per_os(".venv/bin/pip install -r requirements.txt",
                 ".venv/bin/pip install -r requirements.txt",
                 r".venv\Scripts\pip install -r requirements.txt")


def check_python() -> Result:
    """Python 3.11 or newer."""
    found = ".".join(map(str, sys.version_info[:3]))
    return Result("python", sys.version_info[:2] >= MIN_PYTHON, f"Python {found}",
                  "install Python 3.11 or newer (python.org, or your package manager), "
                  "then create the course's .venv again")


def pinned_packages(requirements: Path) -> dict[str, str]:
    """name -> version of each `name==version` line of a requirements file."""
    found = re.findall(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)",
                       requirements.read_text(), flags=re.MULTILINE)
    return dict(found)


def check_packages(requirements: Path = REPO_DIR / "requirements.txt") -> Result:
    """Every package pinned in requirements.txt installed at its pinned version."""
    if not requirements.is_file():
        return Result("packages", False, f"{requirements} not found",
                      "run this from a clone of the course repository")
    wrong = []
    for name, pinned in pinned_packages(requirements).items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if installed != pinned:
            wrong.append(f"{name} {installed} (pinned {pinned})")
    detail = "all pinned versions installed" if not wrong else ", ".join(wrong[:3]) + (
        f" and {len(wrong) - 3} more" if len(wrong) > 3 else "")
    return Result("packages", not wrong, detail, INSTALL)


def check_git() -> Result:
    """git on PATH (chapter 6 runs a project from a git repository)."""
    found = shutil.which("git")
    return Result("git", found is not None, found or "git is not on PATH", per_os(
        "sudo apt-get install git  (Fedora: sudo dnf install git)",
        "xcode-select --install  (or: brew install git)",
        "winget install --id Git.Git -e"))


def java_executable() -> str | None:
    """$JAVA_HOME's java, else the java on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home:
        for name in ("java", "java.exe"):
            if (candidate := Path(home, "bin", name)).is_file():
                return str(candidate)
    return shutil.which("java")


def java_major(version_text: str) -> int | None:
    """17 from 'openjdk version "17.0.15"', 8 from 'java version "1.8.0_402"'."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_text)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def check_java() -> Result:
    """A Java runtime, version 17 or newer, for Spark (chapter 11)."""
    fix = per_os("sudo apt-get install default-jre-headless  (or set JAVA_HOME)",
                 "brew install openjdk@21, then set JAVA_HOME to "
                 "$(brew --prefix openjdk@21)/libexec/openjdk.jdk/Contents/Home",
                 "winget install EclipseAdoptium.Temurin.21.JRE, then open a new terminal")
    java = java_executable()
    if java is None:
        return Result("java", False, "no java on JAVA_HOME or PATH", fix)
    try:
        output = subprocess.run([java, "-version"], capture_output=True, text=True,
                                timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return Result("java", False, f"{java} does not run ({error})", fix)
    major = java_major(output.stderr + output.stdout)
    ok = major is not None and major >= MIN_JAVA
    return Result("java", ok, f"{java} is Java {major}" if major else f"{java}: no version",
                  fix)


def check_postgres() -> Result:
    """PostgreSQL's server programs (the pip wheel or a system install), chapters 9 and 13."""
    from mlops_course import services

    found = services.postgres_bin()
    return Result("postgresql", found is not None,
                  str(found) if found else "no PostgreSQL server programs found", INSTALL)


def check_caddy() -> Result:
    """Caddy, chapter 13's TLS proxy (a program pip cannot install)."""
    from mlops_course.proxy import caddy_path

    found = caddy_path()
    fix = per_os("sudo apt-get install caddy", "brew install caddy",
                 "winget install CaddyServer.Caddy, then open a new terminal")
    return Result("caddy", found is not None, found or "no caddy on PATH", fix)


def check_browser() -> Result:
    """A Chromium or Chrome for the build's screenshots (optional)."""
    from mlops_course.screenshots import chromium_path

    found = chromium_path()
    return Result("browser", found is not None, found or "no Chromium or Chrome found",
                  ".venv/bin/playwright install chromium  (only the book's screenshots need it)",
                  optional=True)


def check_data(colour: str) -> Result:
    """The wine data of one colour, from a path, the cache or a download."""
    try:
        frame = data.load_wine_quality(colour=colour)
    except data.WineDataError as error:
        return Result(f"{colour} wine data", False, str(error).splitlines()[0],
                      f"set {data.PATH_ENV_VAR} to your copy of winequality-red.csv, with "
                      "winequality-white.csv beside it")
    return Result(f"{colour} wine data", True, f"{len(frame)} rows")


def check_port(port: int) -> Result:
    """Nothing listens on port of 127.0.0.1 yet."""
    held = servers.port_in_use(port)
    detail = f"port {port} is {'in use' if held else 'free'}"
    fix = f"stop what listens on {port}, or use another port (mlflow ... --port)"
    if port == UI_PORT:
        fix = "set MLFLOW_PORT=5001 before `mlflow ui`, or stop what listens on 5000"
        if held and _os() == "macos":
            detail += " (on macOS, usually the AirPlay Receiver)"
            fix = ("turn off AirPlay Receiver (System Settings > General > AirDrop & "
                   "Handoff), or export MLFLOW_PORT=5001")
    return Result(f"port {port}", not held, detail, fix)


def check_disk(folder: Path = REPO_DIR) -> Result:
    """At least 3 GB free where the course lives."""
    free = shutil.disk_usage(folder).free / 1e9
    return Result("disk", free >= MIN_FREE_GB, f"{free:.1f} GB free in {folder}",
                  f"free at least {MIN_FREE_GB} GB on this disk")


def check_red_data() -> Result:
    """The red wine data every chapter trains on."""
    return check_data("red")


def check_white_data() -> Result:
    """The white wine data of chapters 11 and 12."""
    return check_data("white")


def check_ui_port() -> Result:
    """Port 5000, where `mlflow ui` listens."""
    return check_port(UI_PORT)


def check_serve_port() -> Result:
    """Port 1234, where chapter 7 serves a model."""
    return check_port(SERVE_PORT)


# What every chapter needs, then what some chapters need on top.
EVERY_CHAPTER = [check_python, check_packages, check_red_data, check_ui_port, check_disk]
BY_CHAPTER: dict[int, list[Callable[[], Result]]] = {
    6: [check_git],
    7: [check_serve_port],
    9: [check_postgres],
    11: [check_java, check_white_data],
    12: [check_white_data],
    13: [check_postgres, check_caddy],
}


def checks_for(chapter: int | None) -> list[Callable[[], Result]]:
    """The checks one chapter needs, or (None) the whole course, each once; browser last."""
    wanted = list(EVERY_CHAPTER)
    for number in CHAPTERS if chapter is None else [chapter]:
        wanted += [check for check in BY_CHAPTER.get(number, []) if check not in wanted]
    return [*wanted, check_browser]


def run_checks(chapter: int | None = None) -> list[Result]:
    """Run the checks for one chapter or for the whole course."""
    return [check() for check in checks_for(chapter)]


def report(results: list[Result], tracking_uri: str, name: str) -> str:
    """Log the results as one run of experiment 00-readiness on tracking_uri; its id.

    Through a client of its own, so that no tracking URI is left set for the caller.
    """
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("00-readiness")
    experiment_id = (experiment.experiment_id if experiment
                     else client.create_experiment("00-readiness"))
    run = client.create_run(experiment_id, run_name=name)
    now = int(time.time() * 1000)
    failed = sum(result.status == "FAIL" for result in results)
    client.log_batch(
        run.info.run_id,
        metrics=[Metric("failed", failed, now, 0)],
        params=[Param(result.name, result.status) for result in results],
        tags=[RunTag("os", platform.platform()), RunTag("python", platform.python_version())],
    )
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def ready(results: list[Result]) -> bool:
    """True when no required check failed."""
    return all(result.status != "FAIL" for result in results)
