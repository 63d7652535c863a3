"""Chapter 4: what the training notebook leaves in its store."""

import itertools
import json
import os
import urllib.parse
from pathlib import Path

import pandas as pd
import pytest
from mlflow.utils.file_utils import local_file_uri_to_path

from mlops_course.screenshots import screenshots
from mlops_course.testing import check_screenshots

pytestmark = pytest.mark.slow

NOTEBOOK = "04_training"
TRAINING = "04-wine-training"
SPEED = "04-logging-speed"
GRID = ["0.25", "0.5", "0.75"]


def children_of(client, parent_id):
    """The runs whose parent is parent_id."""
    parent = client.get_run(parent_id)
    return client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'"
    )


def test_sweep_is_one_parent_with_nine_children_one_value_per_metric(executed):
    result = executed(NOTEBOOK)
    client = result.client()
    parent_id = result.first_runs(TRAINING)["sweep"]
    children = children_of(client, parent_id)
    assert len(children) == 9
    assert {(c.data.params["alpha"], c.data.params["l1_ratio"]) for c in children} == set(
        itertools.product(GRID, GRID)
    )
    for child in children:
        assert child.info.status == "FINISHED"
        assert set(child.data.metrics) == {"rmse", "mae", "r2"}
        for key in ("rmse", "mae", "r2"):
            assert len(client.get_metric_history(child.info.run_id, key)) == 1
    parent = client.get_run(parent_id)
    assert "mlflow.parentRunId" not in parent.data.tags
    best = min(children, key=lambda c: c.data.metrics["rmse"])
    assert parent.data.metrics["best_rmse"] == best.data.metrics["rmse"]
    assert (
        parent.data.tags["best_run"] == best.info.run_name == "alpha=0.25 l1_ratio=0.25"
    )


def test_every_pass_makes_its_own_sweep(executed):
    result = executed(NOTEBOOK)
    client = result.client()
    experiment = client.get_experiment_by_name(TRAINING)
    parents = client.search_runs(
        [experiment.experiment_id], "attributes.run_name = 'sweep'"
    )
    assert len(parents) == 2, "each execution should add one sweep parent"
    assert [len(children_of(client, p.info.run_id)) for p in parents] == [9, 9]


def test_defaults_apply_and_the_script_lands_in_the_same_experiment(executed):
    result = executed(NOTEBOOK)
    client = result.client()
    runs = result.first_runs(TRAINING)
    defaults, script = client.get_run(runs["defaults"]), client.get_run(runs["train.py"])
    assert (
        defaults.data.params == script.data.params == {"alpha": "0.5", "l1_ratio": "0.5"}
    )
    assert defaults.data.metrics == pytest.approx(script.data.metrics, abs=1e-12)
    assert script.data.tags["mlflow.source.name"].endswith("train.py")
    assert len(script.outputs.model_outputs) == 1, "train.py logs its model"
    assert not defaults.outputs.model_outputs, "train() logs no model"


def test_autolog_run_has_every_parameter_training_metrics_and_one_model(executed):
    result = executed(NOTEBOOK)
    client = result.client()
    runs = result.first_runs(TRAINING)
    run = client.get_run(runs["autolog"])
    assert len(run.data.params) == 11
    assert run.data.params["random_state"] == "42"
    assert "training_root_mean_squared_error" in run.data.metrics
    assert run.data.tags["estimator_name"] == "ElasticNet"
    assert len(run.outputs.model_outputs) == 1


def test_autolog_logged_the_test_rmse_and_a_skops_model(executed):
    result = executed(NOTEBOOK)
    client = result.client()
    runs = result.first_runs(TRAINING)
    run = client.get_run(runs["autolog"])
    by_hand = client.get_run(runs["defaults"]).data.metrics["rmse"]
    assert run.data.metrics["root_mean_squared_error_x_test"] == pytest.approx(by_hand)
    model = client.get_logged_model(run.outputs.model_outputs[0].model_id)
    folder = Path(local_file_uri_to_path(model.artifact_location))
    assert (folder / "model.skops").is_file() and not (folder / "model.pkl").exists()


def test_speed_runs_hold_all_thousand_values_and_no_timings(executed):
    result = executed(NOTEBOOK)
    client = result.client()
    runs = result.first_runs(SPEED)
    for name in ("one-call-per-value", "log-batch", "async"):
        history = client.get_metric_history(runs[name], "loss")
        assert sorted(m.step for m in history) == list(range(1000)), name
    assert len(client.get_metric_history(runs["async-everywhere"], "accuracy")) == 200
    experiment = client.get_experiment_by_name(SPEED)
    logged_keys = {
        key
        for run in client.search_runs([experiment.experiment_id])
        for key in run.data.metrics
    }
    assert logged_keys == {"loss", "accuracy"}, "timings stay out of MLflow's metrics"


def test_sweep_table_exported_to_csv_in_the_working_folder(executed):
    result = executed(NOTEBOOK)
    table = pd.read_csv(result.scratch_dir / "04-training" / "sweep_runs.csv")
    assert len(table) == 9
    assert (table["metrics.rmse"] < 0.8).all()
    assert table["metrics.rmse"].is_monotonic_increasing


def test_timings_are_described_from_the_machine_not_hard_coded(executed):
    text = executed(NOTEBOOK).first_copy.read_text()
    assert "build machine" not in text
    assert f"{os.cpu_count()} CPU cores" in text


def test_ui_pictures_show_the_filtered_sweep_and_the_compare_view(executed):
    result = executed(NOTEBOOK)
    client = result.client()
    children = children_of(client, result.first_runs(TRAINING)["sweep"])
    best = min(children, key=lambda c: c.data.metrics["rmse"])
    worst_rmse = max(c.data.metrics["rmse"] for c in children)
    expected = {
        "filtered runs": best.info.run_name,
        "compare view": f"{worst_rmse:.5f}",  # the top of the plot's rmse axis
    }
    shots = {s["screenshot"]: s for s in screenshots(result.first_copy)}
    assert set(shots) == set(expected)
    runs_url = urllib.parse.unquote(shots["filtered runs"]["url"])
    assert "searchFilter=metrics.rmse < 0.8" in runs_url
    compared = urllib.parse.parse_qs(shots["compare view"]["url"].split("?", 1)[1])
    assert set(json.loads(compared["runs"][0])) == {c.info.run_id for c in children}
    check_screenshots(shots, expected)
