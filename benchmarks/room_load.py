"""Load a classroom server: N signed-in learners logging the way the chapters do.

Starts `mlflow server --app-name basic-auth` (SQLite, on 127.0.0.1) with the password
check's cache off and then on (`auth_cache_ttl_seconds` in the auth settings file, read by
mlflow/server/auth/config.py; 0, the default, is off), creates one account per learner, and
has every learner at once create runs and log parameters and metrics one request at a time,
as chapters 3 and 4 do. Prints logged values per second and request latency (median, p95).

Usage: python benchmarks/room_load.py [--learners 30] [--runs 3] [--steps 20] [--workers 2]
                                      [--json results.json]
"""

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from mlops_course import services

API = "/api/2.0/mlflow"


def start_room(folder: Path, workers: int, cache_seconds: int, admin_password: str):
    """A basic-auth server on SQLite with the cache setting; the running server."""
    return services.start_sign_in_server(
        folder, admin_password, workers=workers,
        auth_settings=f"auth_cache_ttl_seconds = {cache_seconds}\n")


def create_learners(origin: str, admin: tuple[str, str], count: int) -> list[tuple[str, str]]:
    """`count` accounts with random passwords, made through MLflow's auth API."""
    learners = [(f"learner{n:02d}", secrets.token_urlsafe(12)) for n in range(1, count + 1)]
    for name, password in learners:
        made = requests.post(f"{origin}/api/2.0/mlflow/users/create", auth=admin, timeout=60,
                             json={"username": name, "password": password})
        made.raise_for_status()
    return learners


def learner_session(origin: str, learner: tuple[str, str], runs: int, steps: int) -> dict:
    """One learner's work: an experiment, runs with two parameters and a metric per step."""
    session = requests.Session()
    session.auth = learner
    latencies: list[float] = []

    def call(path: str, body: dict) -> dict:
        started = time.perf_counter()
        answer = session.post(f"{origin}{API}/{path}", json=body, timeout=120)
        latencies.append(time.perf_counter() - started)
        answer.raise_for_status()
        return answer.json()

    experiment = call("experiments/create", {"name": f"room-{learner[0]}"})["experiment_id"]
    values = 0
    for number in range(runs):
        run = call("runs/create", {"experiment_id": experiment,
                                   "start_time": int(time.time() * 1000)})["run"]["info"]
        for key, value in (("alpha", "0.5"), ("l1_ratio", str(number / 10))):
            call("runs/log-parameter", {"run_id": run["run_id"], "key": key, "value": value})
        for step in range(steps):
            call("runs/log-metric", {"run_id": run["run_id"], "key": "rmse", "step": step,
                                     "value": 1 / (step + 1),
                                     "timestamp": int(time.time() * 1000)})
        call("runs/update", {"run_id": run["run_id"], "status": "FINISHED"})
        values += 2 + steps
    return {"values": values, "latencies": latencies}


def measure(learners: int, runs: int, steps: int, workers: int, cache_seconds: int) -> dict:
    """One load: every learner at once; values per second and latency figures."""
    admin = ("admin", secrets.token_urlsafe(16))
    with tempfile.TemporaryDirectory(prefix="room-load-") as scratch, \
            start_room(Path(scratch), workers, cache_seconds, admin[1]) as server:
        accounts = create_learners(server.origin, admin, learners)
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=learners) as pool:
            results = list(pool.map(
                lambda account: learner_session(server.origin, account, runs, steps),
                accounts))
        seconds = time.perf_counter() - started
    latencies = sorted(x for result in results for x in result["latencies"])
    values = sum(result["values"] for result in results)
    return {
        "auth_cache_ttl_seconds": cache_seconds,
        "learners": learners,
        "workers": workers,
        "requests": len(latencies),
        "values": values,
        "seconds": round(seconds, 1),
        "values_per_second": round(values / seconds, 1),
        "median_ms": round(1000 * statistics.median(latencies)),
        "p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = [measure(args.learners, args.runs, args.steps, args.workers, cache)
            for cache in (0, 300)]
    print("| auth cache | learners | workers | requests | values/s | median ms | p95 ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        cache = "off" if row["auth_cache_ttl_seconds"] == 0 else "on (300 s)"
        print(f"| {cache} | {row['learners']} | {row['workers']} | {row['requests']} | "
              f"{row['values_per_second']} | {row['median_ms']} | {row['p95_ms']} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
