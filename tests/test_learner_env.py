"""The learner environment (requirements.txt alone) holds everything the chapters import.

The build's and the tests' tools (requirements-book.txt, requirements-dev.txt) must not be
needed to run a chapter: a learner installs only requirements.txt.
"""

import ast
import subprocess
import sys
from importlib import metadata

import nbformat
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mlops_course.execute import REPO_DIR

NOTEBOOKS = sorted((REPO_DIR / "notebooks").glob("[0-9][0-9]_*.ipynb"))
BOOK_ONLY = ("papermill", "jupyter_book", "sphinx_exercise", "sphinx", "myst_nb", "pytest")


def imported_modules(notebook) -> set[str]:
    """Top-level modules a notebook's code cells import (shell and magic lines left out)."""
    found = set()
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        code = "\n".join(line for line in cell.source.splitlines()
                         if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def learner_distributions() -> set[str]:
    """Every distribution requirements.txt installs: its lines, then what they require."""
    wanted = []
    for line in (REPO_DIR / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line == "-e .":
            wanted.append(Requirement("mlops-course"))
        elif line and not line.startswith("-"):
            wanted.append(Requirement(line))
    seen: set[str] = set()
    while wanted:
        requirement = wanted.pop()
        name = canonicalize_name(requirement.name)
        extras = requirement.extras
        key = f"{name}[{','.join(sorted(extras))}]"
        if key in seen:
            continue
        seen |= {key, name}
        for text in metadata.requires(requirement.name) or []:
            needed = Requirement(text)
            if needed.marker is None or any(needed.marker.evaluate({"extra": e})
                                            for e in (extras or {""})):
                wanted.append(needed)
    return {key for key in seen if "[" not in key}


def test_every_notebook_import_comes_from_requirements_txt():
    installs = learner_distributions()
    owners = metadata.packages_distributions()
    missing = {}
    for notebook in NOTEBOOKS:
        for module in sorted(imported_modules(notebook)):
            if module in sys.stdlib_module_names:
                continue
            distributions = {canonicalize_name(d) for d in owners.get(module, [])}
            if module == "mlops_course":
                distributions = {"mlops-course"}
            if not distributions & installs:
                missing.setdefault(notebook.stem, []).append(module)
    assert not missing, f"imported but not installed by requirements.txt: {missing}"
    assert not {canonicalize_name(n) for n in BOOK_ONLY} & installs, (
        "a build or test tool is in the learner environment")


BLOCKER = """
import importlib.abc, sys
class BookTools(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is not in the learner environment")
sys.meta_path.insert(0, BookTools())
"""


# The course package's modules a learner's notebook or command uses (sphinx_ext is the
# build's, testing the tests').
COURSE_MODULES = sorted(f"mlops_course.{path.stem}" for path in
                        (REPO_DIR / "src" / "mlops_course").glob("[a-z]*.py")
                        if path.stem not in ("sphinx_ext", "testing"))


def test_the_chapters_imports_work_without_the_build_tools():
    modules = sorted({m for nb in NOTEBOOKS for m in imported_modules(nb)} - set(
        sys.stdlib_module_names))
    script = BLOCKER.format(blocked=set(BOOK_ONLY)) + "".join(
        f"import {module}\n" for module in [*modules, *COURSE_MODULES])
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert len(modules) > 10 and "mlops_course.check" in COURSE_MODULES


def test_the_blocker_blocks():
    script = BLOCKER.format(blocked=set(BOOK_ONLY)) + "import papermill\n"
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=False)
    assert "papermill is not in the learner environment" in run.stderr
