"""Chapter 11: Spark batch scoring and a parallel search, inspected from outside the notebook."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow.pyfunc
import nbformat
import numpy as np
import pandas as pd
import psutil
import pytest

from mlops_course.data import FEATURES, ROWS_BY_COLOUR, load_wine_quality
from mlops_course.screenshots import screenshots
from mlops_course.testing import TIMING_SUFFIXES, check_screenshots

NOTEBOOK = "11_scaling"
EXPERIMENT = "11-scaling"
MODEL = "11-wine-quality"
TRIALS = 8  # the notebook's default `trials`
SIZES = [10_000, 100_000, 1_000_000]  # the notebook's default `sizes`
SOURCE = Path(__file__).resolve().parents[1] / "notebooks" / f"{NOTEBOOK}.ipynb"


def java_check(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """The chapter's imports cell and Java check, run in a Python with only env set."""
    cells = [c.source for c in nbformat.read(SOURCE, as_version=4).cells if c.cell_type == "code"]
    imports = next(source for source in cells if source.startswith("import "))
    at = next(i for i, source in enumerate(cells) if "def java_major" in source)
    script = tmp_path / "java_check.py"
    script.write_text("\n".join([imports, cells[at], cells[at + 1]]))  # imports, check
    return subprocess.run([sys.executable, str(script)], env={"SYSTEMROOT": "C:\\Windows", **env},
                          capture_output=True, text=True, timeout=120, check=False)


def assert_names_every_fix(stderr: str) -> None:
    for fix in ("apt-get install default-jre-headless", "brew install openjdk@21",
                "winget install EclipseAdoptium.Temurin.21.JRE",
                "conda install -c conda-forge openjdk=21.0.10", "JAVA_HOME"):
        assert fix in stderr, fix
    assert "Traceback" not in stderr, "one message, not a traceback"


def test_java_check_stops_with_the_fix_when_java_home_points_at_nothing(tmp_path):
    empty = tmp_path / "no-java"
    empty.mkdir()
    checked = java_check(tmp_path, JAVA_HOME=str(empty), PATH=str(empty))
    assert checked.returncode == 1
    assert f"no working java on JAVA_HOME={empty}" in checked.stderr
    assert_names_every_fix(checked.stderr)


def test_java_check_stops_with_the_fix_when_path_has_no_java(tmp_path):
    checked = java_check(tmp_path, PATH=str(tmp_path))
    assert checked.returncode == 1 and "no working java on PATH" in checked.stderr
    assert_names_every_fix(checked.stderr)


@pytest.mark.skipif(os.name == "nt", reason="the stand-in java is a POSIX shell script")
def test_java_check_refuses_java_11(tmp_path):
    fake = tmp_path / "bin" / "java"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho \'openjdk version "11.0.22" 2024-01-16\' >&2\n')
    fake.chmod(0o755)
    checked = java_check(tmp_path, PATH=f"{fake.parent}{os.pathsep}/usr/bin{os.pathsep}/bin")
    assert checked.returncode == 1 and f"{fake} is Java 11" in checked.stderr
    assert_names_every_fix(checked.stderr)


@pytest.mark.skipif(not (os.environ.get("JAVA_HOME") or shutil.which("java")),
                    reason="no Java on this machine (chapter 11 needs one)")
def test_java_check_passes_with_this_machines_java(tmp_path):
    env = {k: v for k in ("JAVA_HOME", "PATH") if (v := os.environ.get(k))}
    checked = java_check(tmp_path, **env)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("Java ")


def second_pass_run(result, run_name: str) -> str:
    """The id of the second pass's run called run_name in the chapter's experiment."""
    (run_id,) = [run_id for run_id, (exp, name, _) in result.second_pass.items()
                 if exp == EXPERIMENT and name == run_name]
    return run_id


def searches(result) -> list[tuple[str, dict[str, str]]]:
    """For each pass: the search's parent run id and its children (run name -> run id)."""
    client = result.client()
    found = []
    for pass_runs in (result.first_pass, result.second_pass):
        names = {run_id: name for run_id, (exp, name, _) in pass_runs.items()
                 if exp == EXPERIMENT}
        (parent_id,) = [run_id for run_id, name in names.items() if name == "search"]
        children = {name: run_id for run_id, name in names.items()
                    if client.get_run(run_id).data.tags.get("mlflow.parentRunId") == parent_id}
        found.append((parent_id, children))
    return found


@pytest.mark.slow
def test_each_pass_logs_its_runs_and_identical_metrics(executed):
    result = executed(NOTEBOOK)
    expected = {"wine-model", "scoring-benchmark", "search",
                *(f"trial-{i:02d}" for i in range(TRIALS))}
    for pass_runs in (result.first_pass, result.second_pass):
        names = [name for exp, name, _ in pass_runs.values() if exp == EXPERIMENT]
        assert sorted(names) == sorted(expected)

    def logged(runs):
        return sorted((exp, name, sorted(m.items())) for exp, name, m in runs.values())

    assert logged(result.first_pass) == logged(result.second_pass), \
        "seeded trials and the model should log the same non-timing metrics twice"


@pytest.mark.slow
def test_search_has_one_child_per_trial_under_one_parent(executed):
    result = executed(NOTEBOOK)
    client = result.client()
    for parent_id, children in searches(result):
        assert sorted(children) == [f"trial-{i:02d}" for i in range(TRIALS)]
        parent = client.get_run(parent_id)
        rmse = {name: client.get_run(run_id).data.metrics["rmse"]
                for name, run_id in children.items()}
        assert parent.data.metrics["best_rmse"] == min(rmse.values())
        assert parent.data.tags["best_trial"] == min(rmse, key=rmse.get)
        params = {client.get_run(run_id).data.params["alpha"] for run_id in children.values()}
        assert len(params) == TRIALS, "each trial tries its own alpha"


@pytest.mark.slow
def test_challenger_is_the_best_trial_and_champion_the_wine_model(executed):
    result = executed(NOTEBOOK)
    client = result.client()
    parent_id, children = searches(result)[1]
    best_id = min(children.values(), key=lambda run_id: client.get_run(run_id).data.metrics["rmse"])
    challenger = client.get_model_version_by_alias(MODEL, "challenger")
    assert challenger.run_id == best_id
    assert challenger.tags["search_run"] == parent_id
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.run_id == second_pass_run(result, "wine-model")
    assert int(challenger.version) == int(champion.version) + 1


@pytest.mark.slow
def test_timing_metrics_carry_a_timing_suffix(executed):
    result = executed(NOTEBOOK)
    client = result.client()
    runs = result.first_runs(EXPERIMENT)
    benchmark = client.get_run(runs["scoring-benchmark"]).data.metrics
    assert set(benchmark) == {f"{engine}_{rows}_rows_per_second"
                              for engine in ("spark", "pandas") for rows in SIZES}
    assert all(value > 0 for value in benchmark.values())
    search = client.get_run(runs["search"]).data.metrics
    assert {k for k in search if k.endswith(TIMING_SUFFIXES)} == \
        {"search_seconds", "trials_total_seconds"}


@pytest.mark.slow
def test_spark_wrote_one_prediction_per_red_and_white_wine(executed):
    folder = executed(NOTEBOOK).scratch_dir / "11-scaling"
    predictions = pd.read_parquet(folder / "predictions").sort_values("wine_id")
    rows = sum(ROWS_BY_COLOUR.values())
    assert len(predictions) == rows, "one prediction per red and white wine"
    assert predictions["wine_id"].tolist() == list(range(rows))
    assert predictions["colour"].value_counts().to_dict() == ROWS_BY_COLOUR
    red_first = ["red"] * ROWS_BY_COLOUR["red"] + ["white"] * ROWS_BY_COLOUR["white"]
    assert predictions["colour"].tolist() == red_first, "wine_id follows red, then white"
    assert list(folder.glob("bench-*")) == [], "the large benchmark files are deleted"


@pytest.mark.slow
def test_spark_predictions_equal_the_champion_predicting_both_colours(executed):
    """The Parquet, read from outside, equals the champion's own predict on red + white."""
    result = executed(NOTEBOOK)
    client = result.client()
    champion = client.get_model_version_by_alias(MODEL, "champion")
    model_id = champion.source.removeprefix("models:/")  # the version's logged model
    model = mlflow.pyfunc.load_model(client.get_logged_model(model_id).artifact_location)
    wines = pd.concat([load_wine_quality(colour=c)[FEATURES] for c in ROWS_BY_COLOUR],
                      ignore_index=True)
    predictions = pd.read_parquet(result.scratch_dir / "11-scaling" / "predictions")
    from_spark = predictions.sort_values("wine_id")["prediction"].to_numpy()
    assert np.abs(from_spark - model.predict(wines)).max() < 1e-9


@pytest.mark.slow
def test_fleet_of_registered_models(executed):
    client = executed(NOTEBOOK).client()
    names = {m.name for m in client.search_registered_models(max_results=1000)}
    fleet = {n for n in names if n != MODEL}
    assert len(fleet) == 36 and MODEL in names
    quality = client.search_registered_models("tags.team = 'quality'")
    assert len(quality) == 12


@pytest.mark.slow
def test_outputs_show_no_spark_noise_or_build_paths(executed):
    result = executed(NOTEBOOK)
    text = []
    for cell in nbformat.read(result.first_copy, as_version=4).cells:
        for output in cell.get("outputs", []):
            text.append(output.get("text", "") + str(output.get("data", {}).get("text/plain", "")))
    shown = "\n".join(text)
    for noise in ("log4j", "WARN ", "NativeCodeLoader", "FutureWarning", "Stage 0",
                  str(result.scratch_dir), "/tmp/", "Traceback"):
        assert noise not in shown, f"{noise!r} appears in the outputs"
    assert "On this machine Spark" in shown, "the interpretation is printed from the numbers"
    assert "white: mean prediction" in shown, "the per-colour gap is printed from the numbers"


@pytest.mark.slow
def test_no_java_or_worker_process_survives(executed):
    """Spark's JVM and Python workers and joblib's workers all run in the scratch folder."""
    scratch = executed(NOTEBOOK).scratch_dir
    left = []
    for process in psutil.process_iter(["name", "cmdline", "cwd", "status"]):
        info = process.info
        if info["status"] == psutil.STATUS_ZOMBIE or not info["cwd"]:
            continue
        if Path(info["cwd"]).is_relative_to(scratch):
            left.append(f"{process.pid}: {' '.join(info['cmdline'] or [])[:200]}")
    assert left == [], f"still running: {left}"


@pytest.mark.slow
def test_screenshot_of_the_search_runs(executed):
    shots = {s["screenshot"]: s for s in screenshots(executed(NOTEBOOK).first_copy)}
    check_screenshots(shots, {"search-runs": "scoring-benchmark"})
