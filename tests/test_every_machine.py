"""Every learner's machine: the course imports as on Windows, and a download says what it needs.

Both run in a fresh Python (a subprocess), so that what this test process has imported hides
nothing. Quick: no notebook runs past its first cells.
"""

import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

from mlops_course.testing import NOTEBOOKS_DIR

REPO_DIR = NOTEBOOKS_DIR.parent
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
MODULES = sorted(f"mlops_course.{p.stem}" for p in (REPO_DIR / "src" / "mlops_course").glob("*.py")
                 if p.stem != "__init__") + ["mlops_course"]
# Standard-library modules that exist only on POSIX systems.
POSIX_ONLY = ["crypt", "fcntl", "grp", "posix", "pty", "pwd", "resource", "syslog", "termios",
              "tty"]

# As on Windows: an `import` of a POSIX-only module fails when the course's code or a
# notebook's cell (__main__) makes it. Libraries keep theirs (they pick their Windows code by
# sys.platform), and a module another library imported first is refused too: the hook is
# __import__, which every import statement calls, not a finder that a cached module skips.
AS_ON_WINDOWS = """
import builtins, importlib, json, os, sys

BLOCKED, real_import = set(sys.argv[1].split(",")), builtins.__import__

def windows_import(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__") or ""
    if level == 0 and name.split(".")[0] in BLOCKED and (
            importer == "__main__" or importer.startswith("mlops_course")):
        raise ModuleNotFoundError(f"No module named {name!r} (as on Windows)", name=name)
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = windows_import
failures = {}
for module in sys.argv[2].split(","):
    try:
        importlib.import_module(module)
    except Exception as error:
        failures[module] = f"{type(error).__name__}: {error}"
os.chdir(sys.argv[3])
for path in sys.argv[4:]:
    cells = []
    for cell in json.load(open(path, encoding="utf-8"))["cells"]:
        if "parameters" in cell["metadata"].get("tags", []):
            break
        if cell["cell_type"] == "code":
            cells.append("".join(cell["source"]))
    namespace = {"__name__": "__main__"}
    for number, source in enumerate(cells, start=1):
        try:
            exec(compile(source, f"{path}, code cell {number}", "exec"), namespace)
        except Exception as error:
            failures[path] = f"code cell {number}: {type(error).__name__}: {error}"
            break
print(json.dumps(failures))
"""


@pytest.fixture(scope="module")
def as_on_windows() -> dict[str, str]:
    """What failed (module or notebook -> error) with POSIX-only modules made unavailable."""
    run = subprocess.run(
        [sys.executable, "-c", AS_ON_WINDOWS, ",".join(POSIX_ONLY), ",".join(MODULES),
         str(NOTEBOOKS_DIR), *map(str, NOTEBOOKS)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.splitlines()[-1])


@pytest.mark.parametrize("module", MODULES)
def test_every_course_module_imports_without_posix_only_modules(as_on_windows, module):
    assert module not in as_on_windows, as_on_windows.get(module)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebooks_first_cells_run_without_posix_only_modules(as_on_windows, notebook):
    assert str(notebook) not in as_on_windows, as_on_windows.get(str(notebook))


def test_path_is_built_with_the_systems_separator_and_scripts_folder():
    # On Windows PATH is split by ";" and a venv's programs are in Scripts\, not bin/.
    sources = {p.name: p.read_text() for p in (REPO_DIR / "src" / "mlops_course").glob("*.py")}
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        sources[path.name] = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    posix_only = re.compile(r"""PATH.*(['"]:['"]|\}:\{|executable\)\.parent)""")
    found = [f"{name}: {line.strip()}" for name, text in sources.items()
             for line in text.splitlines() if posix_only.search(line)]
    assert not found, "build PATH with servers.environment() (os.pathsep, sysconfig):\n" + \
        "\n".join(found)


# --- A notebook downloaded from the site, run where the course is not installed ---

# Run each notebook's first cells in an empty folder, in a Python with the course's
# libraries (MLflow, ...) but not the course: `-S` skips site-packages' .pth files, so the
# editable install of mlops_course is not on the path; PYTHONPATH gives the libraries.
AS_A_DOWNLOAD = """
import importlib.util, json, os, shutil, sys

assert importlib.util.find_spec("mlflow"), "the libraries should be there"
endings = {"course": bool(importlib.util.find_spec("mlops_course"))}
for path in sys.argv[2:]:
    folder = os.path.join(sys.argv[1], os.path.basename(path)[:-6], "downloads")
    os.makedirs(folder)
    shutil.copy(path, folder)
    os.chdir(folder)
    namespace = {"__name__": "__main__"}
    cells = json.load(open(path, encoding="utf-8"))["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    for number, source in enumerate(code, start=1):
        try:
            exec(compile(source, f"code cell {number}", "exec"), namespace)
        except BaseException as error:
            endings[path] = [number, type(error).__name__, str(error)]
            break
    else:
        endings[path] = [None, None, "ran to the end"]
print(json.dumps(endings))
"""


def run_as_a_download(tmp_path: Path, notebooks: list[Path], extra_path: str = "") -> dict:
    """path -> [code cell number, exception name, message] of where each notebook stopped;
    "course" -> whether that Python finds mlops_course."""
    path = [extra_path, sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    run = subprocess.run(
        [sys.executable, "-S", "-c", AS_A_DOWNLOAD, str(tmp_path), *map(str, notebooks)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))},
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.splitlines()[-1])


def folders_named(notebook: Path) -> list[str]:
    """The repository folders the notebook's first code cell checks for."""
    first = next(c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code")
    match = re.search(r"for folder in \[(.*?)\]", first.source)
    return re.findall(r'"(\w+)"', match.group(1)) if match else []


def test_a_download_without_the_course_stops_in_its_first_cell_with_one_sentence(tmp_path):
    endings = run_as_a_download(tmp_path, NOTEBOOKS)
    assert not endings["course"], "the course package should not be importable"
    for notebook in NOTEBOOKS:
        number, name, message = endings[str(notebook)]
        assert (number, name) == (1, "RuntimeError"), f"{notebook.name}: {endings[str(notebook)]}"
        assert message.startswith("This notebook needs the course package (mlops_course)")
        for folder in folders_named(notebook):
            assert f"the repository's {folder}/ folder" in message, notebook.name
        for command in ["git clone", ".venv/bin/pip install -r requirements.txt",
                        r".venv\Scripts\pip install", "notebooks/ folder"]:
            assert command in message, f"{notebook.name}: {command!r} missing"
        assert message.endswith(".") and not re.search(r"\.\s+[A-Z]", message), "one sentence"


def test_a_download_with_the_course_installed_elsewhere_names_the_missing_folder(tmp_path):
    # The course package without its checkout (as from a wheel): only the folders are missing.
    package = tmp_path / "site" / "mlops_course"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    with_folders = [p for p in NOTEBOOKS if folders_named(p)]
    assert with_folders, "chapters 2, 4, 6, 10 and 12 read repository folders"
    endings = run_as_a_download(tmp_path / "runs", with_folders, str(tmp_path / "site"))
    assert endings["course"], "the stand-in course package should be importable"
    for notebook in with_folders:
        number, name, message = endings[str(notebook)]
        assert (number, name) == (1, "RuntimeError"), f"{notebook.name}: {endings[str(notebook)]}"
        assert message.startswith(f"This notebook needs the repository's {folders_named(notebook)[0]}/")
        assert "course package" not in message
