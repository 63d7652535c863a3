"""Shared fixtures: the data set for offline runs, and notebooks executed once per session."""

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from mlops_course.data import PATH_ENV_VAR
from mlops_course.execute import WORKERS_ENV_VAR
from mlops_course.testing import BOOK_EXECUTED, ExecutedNotebook, execute_twice, run_as_learner

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared/data/winequality-red.csv"
# Build the book after the notebook tests, so that it reuses their first passes: each
# notebook then executes twice in the whole run, not three times.
BOOK_TESTS = ("test_book.py", "test_site.py", "test_downloads.py")
# Chapters whose second pass runs as a learner runs the notebook (tests/test_downloads.py
# checks that the site's download holds the same code).
LEARNER_SECOND_PASS = {"08_registry"}
NEEDED = pytest.StashKey[list[str]]()


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected what will not run
def pytest_collection_modifyitems(config, items) -> None:
    """Run the tests that build the book last; note which notebooks the tests execute."""
    items.sort(key=lambda item: item.path.name in BOOK_TESTS)
    needed = []
    for item in items:
        if "executed" in getattr(item, "fixturenames", ()):
            params = getattr(item, "callspec", None)
            name = params.params.get("name") if params else getattr(item.module, "NOTEBOOK", None)
            if name and name not in needed:
                needed.append(name)
    config.stash[NEEDED] = needed


@pytest.fixture(scope="session", autouse=True)
def wine_data() -> None:
    """Point the loader at the shared offline copy when nothing else was chosen."""
    if not os.environ.get(PATH_ENV_VAR) and SHARED_DATA.is_file():
        os.environ[PATH_ENV_VAR] = str(SHARED_DATA)


@pytest.fixture(scope="session")
def executed(request, tmp_path_factory, wine_data):
    """executed(name): the notebook run twice against one scratch store (once per session).

    On first use, every notebook the collected tests ask for starts executing in the
    background, two at a time (each in its own folder and store), in the order the tests
    need them; executed(name) waits for its own.
    """
    workers = int(os.environ.get(WORKERS_ENV_VAR) or min(2, os.cpu_count() or 1))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="notebook")
    futures: dict[str, Future[ExecutedNotebook]] = {}

    def submit(name: str) -> None:
        if name not in futures:
            folder = tmp_path_factory.mktemp(name)
            second = run_as_learner if name in LEARNER_SECOND_PASS else None
            futures[name] = pool.submit(execute_twice, name, folder / "store", folder,
                                        BOOK_EXECUTED, second)

    for name in request.config.stash.get(NEEDED, []):
        submit(name)

    def run(name: str) -> ExecutedNotebook:
        submit(name)
        return futures[name].result()

    yield run
    pool.shutdown(wait=True, cancel_futures=True)
