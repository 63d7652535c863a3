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


def test_with_the_cache_on_an_old_password_outlives_its_change_on_other_workers(tmp_path):
    """MLflow drops a user's cached credentials only in the worker that served the change
    (mlflow/server/auth/__init__.py, _invalidate_user_auth_cache): why the guide keeps the
    cache off, or short, on a room server."""
    import requests

    bench = load_benchmark()
    admin = ("admin", "admin-" + "x" * 12)
    with bench.start_room(tmp_path, 2, 300, admin[1]) as server:
        ((name, password),) = bench.create_learners(server.origin, admin, 1)
        url = f"{server.origin}/api/2.0/mlflow/experiments/search"

        def statuses(secret, times=30):
            return {requests.get(url, params={"max_results": 1}, auth=(name, secret),
                                 timeout=30).status_code for _ in range(times)}

        assert statuses(password) == {200}  # both workers now hold it in their cache
        assert statuses(password + "?", times=5) == {401}
        changed = requests.patch(f"{server.origin}/api/2.0/mlflow/users/update-password",
                                 auth=admin, json={"username": name, "password": "new" + password},
                                 timeout=30)
        assert changed.status_code == 200
        assert statuses("new" + password) == {200}
        assert 200 in statuses(password), "the other worker still accepts the old password"
        removed = requests.delete(f"{server.origin}/api/2.0/mlflow/users/delete", auth=admin,
                                  json={"username": name}, timeout=30)
        assert removed.status_code == 200
        assert 200 not in statuses(password) | statuses("new" + password), "a removed learner"
