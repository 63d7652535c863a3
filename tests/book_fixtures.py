"""The built book, shared by the book, site and download tests.

A test module uses it with `from book_fixtures import built_book  # noqa: F401`. The build
runs once per session however many modules import the fixture.
"""

import functools
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_course import sphinx_ext
from mlops_course.execute import REPO_DIR

BOOK = REPO_DIR / "book"
HTML = BOOK / "_build" / "html"
NOTEBOOKS = REPO_DIR / "notebooks"
JUPYTER_BOOK = str(Path(sys.executable).parent / "jupyter-book")


@functools.cache
def build_book() -> subprocess.CompletedProcess:
    """Build the book as a learner would (the cache makes a repeat build quick)."""
    return subprocess.run([JUPYTER_BOOK, "build", str(BOOK), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True, timeout=3000)


@pytest.fixture(scope="session")
def built_book() -> Path:
    """The site's folder (book/_build/html), after a build that succeeded."""
    build = build_book()
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    return HTML


def toc_pages() -> list[str]:
    """Every page of the table of contents in book order, as in _toc.yml ("notebooks/03_x")."""
    return sphinx_ext.toc_pages(BOOK)


def chapters() -> list[str]:
    """The chapter notebooks in toc order, by stem ("01_concepts", ...)."""
    return [Path(page).name for page in toc_pages() if page.startswith("notebooks/")]
