"""Shared fixtures: the data set for offline runs, and notebooks executed once per session."""

import os
from pathlib import Path

import pytest

from mlops_course.data import PATH_ENV_VAR
from mlops_course.testing import ExecutedNotebook, execute_twice

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared/data/winequality-red.csv"


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
            done[name] = execute_twice(name, folder / "store", folder)
        return done[name]

    return run
