"""benchmarks/room_load.py works: a small room, its figures counted right (speed is the
benchmark's to measure, not this test's)."""

import importlib.util

import pytest

from mlops_course.execute import REPO_DIR

pytestmark = pytest.mark.slow


def load_benchmark():
    spec = importlib.util.spec_from_file_location("room_load",
                                                  REPO_DIR / "benchmarks" / "room_load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_small_room_logs_every_value_with_the_cache_on():
    row = load_benchmark().measure(learners=3, runs=2, steps=4, workers=1, cache_seconds=300)
    assert row["values"] == 3 * 2 * (2 + 4)
    assert row["requests"] == 3 * (1 + 2 * (1 + 2 + 4 + 1))
    assert row["values_per_second"] > 0 and row["p95_ms"] >= row["median_ms"] > 0


def test_with_the_cache_on_a_worker_forgets_a_changed_or_removed_password(tmp_path):
    """The worker that serves a password change drops that user's cached credentials
    (mlflow/server/auth/__init__.py, _invalidate_user_auth_cache); other workers do not,
    which no test can show reliably (the kernel picks the worker), so the guide cites it."""
    import requests

    bench = load_benchmark()
    admin = ("admin", "admin-" + "x" * 12)
    with bench.start_room(tmp_path, 1, 300, admin[1]) as server:
        ((name, password),) = bench.create_learners(server.origin, admin, 1)
        url = f"{server.origin}/api/2.0/mlflow/experiments/search"

        def statuses(secret, times=3):
            return {requests.get(url, params={"max_results": 1}, auth=(name, secret),
                                 timeout=30).status_code for _ in range(times)}

        assert statuses(password) == {200}  # cached after the first
        assert statuses(password + "?") == {401}
        changed = requests.patch(f"{server.origin}/api/2.0/mlflow/users/update-password",
                                 auth=admin, json={"username": name, "password": "new" + password},
                                 timeout=30)
        assert changed.status_code == 200
        assert statuses("new" + password) == {200} and statuses(password) == {401}
        removed = requests.delete(f"{server.origin}/api/2.0/mlflow/users/delete", auth=admin,
                                  json={"username": name}, timeout=30)
        assert removed.status_code == 200
        assert 200 not in statuses(password) | statuses("new" + password), "a removed learner"
