"""Shared fixtures: the data set for offline runs, and notebooks executed once per session."""

import os
from pathlib import Path

import pytest

from mlops_course.data import PATH_ENV_VAR
from mlops_course.execute import REPO_DIR
from mlops_course.testing import ExecutedNotebook, execute_twice

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared/data/winequality-red.csv"
BOOK_EXECUTED = REPO_DIR / "book" / "notebooks"  # the build's cache of executed notebooks
# Build the book after the notebook tests, so that it reuses their first passes: each
# notebook then executes twice in the whole run, not three times.
BOOK_TESTS = ("test_book.py", "test_site.py", "test_downloads.py")


def pytest_collection_modifyitems(items) -> None:
    """Run the tests that build the book last."""
    items.sort(key=lambda item: item.path.name in BOOK_TESTS)


@pytest.fixture(scope="session", autouse=True)
def wine_data() -> None:
    """Point the loader at the shared offline copy when nothing else was chosen."""
    if not os.environ.get(PATH_ENV_VAR) and SHARED_DATA.is_file():
        os.environ[PATH_ENV_VAR] = str(SHARED_DATA)


@pytest.fixture(scope="session")
def executed(tmp_path_factory):
    """executed(name): the notebook run twice against one scratch store (once per session)."""
    done: dict[str, ExecutedNotebook] = {}

    def run(name: str) -> ExecutedNotebook:
        if name not in done:
            folder = tmp_path_factory.mktemp(name)
            done[name] = execute_twice(name, folder / "store", folder, BOOK_EXECUTED)
        return done[name]

    return run
