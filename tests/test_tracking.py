"""Chapter 3: what the tracking notebook leaves in its store."""

from pathlib import Path

import nbformat
import pytest
from mlflow import MlflowClient
from mlflow.utils.file_utils import local_file_uri_to_path

from mlops_course.screenshots import screenshots
from mlops_course.testing import check_screenshots

pytestmark = pytest.mark.slow
NOTEBOOK = "03_tracking"


def test_hello_world_run_holds_param_metric_history_tag_and_artifact(executed):
    result = executed(NOTEBOOK)
    client = result.client()
    run_id = result.first_runs("03-tracking-by-hand")["hello-world"]
    run = client.get_run(run_id)
    assert run.data.params == {"param1": "5"}
    assert [m.value for m in client.get_metric_history(run_id, "foo")] == [1, 2, 3]
    assert run.data.tags["chapter"] == "03"
    artifacts = Path(local_file_uri_to_path(run.info.artifact_uri))
    assert (artifacts / "hello.txt").read_text() == "Hello world!"
    assert (artifacts / "outputs" / "test.txt").read_text() == "hello world!", (
        "log_artifacts(folder, artifact_path='outputs') keeps the folder's files together"
    )


def test_the_migrated_old_project_keeps_its_mlruns_and_its_run(executed):
    old_project = executed(NOTEBOOK).scratch_dir / "03-tracking" / "old-project"
    assert (old_project / "mlruns").is_dir() and (old_project / "mlflow.db").is_file()
    runs = MlflowClient(f"sqlite:///{(old_project / 'mlflow.db').as_posix()}").search_runs(["0"])
    assert [run.info.run_name for run in runs] == ["from-mlflow-2"]


def test_hand_started_run_was_ended(executed):
    result = executed(NOTEBOOK)
    run_id = result.first_runs("03-tracking-by-hand")["by-hand"]
    assert result.client().get_run(run_id).info.status == "FINISHED"


def test_artifacts_stay_in_the_scratch_folder(executed):
    result = executed(NOTEBOOK)
    files = {p.name for p in (result.scratch_dir / "mlruns").rglob("hello.txt")}
    assert files == {"hello.txt"}


def test_ui_rest_call_used_the_public_api(executed):
    copy = executed(NOTEBOOK).first_copy
    code = "\n".join(
        c.source for c in nbformat.read(copy, 4).cells if c.cell_type == "code"
    )
    assert "/api/2.0/mlflow/" in code and "ajax-api" not in code, (
        "only the public REST path"
    )
    assert "GET /api/2.0/mlflow/experiments/search: 200 OK" in copy.read_text()


UI_PICTURES = {
    "experiment page": "hello-world",
    "run page": "learning the tracking API",
    "metric chart": "Step",  # the x axis title, drawn with the chart itself
}


def test_ui_pictures_show_the_experiment_the_run_and_the_foo_chart(executed):
    result = executed(NOTEBOOK)
    experiment = result.client().get_experiment_by_name("03-tracking-by-hand")
    run_id = result.first_runs("03-tracking-by-hand")["hello-world"]
    shots = {s["screenshot"]: s for s in screenshots(result.first_copy)}
    assert set(shots) == set(UI_PICTURES)
    assert shots["experiment page"]["url"].endswith(
        f"/#/experiments/{experiment.experiment_id}/runs"
    )
    assert shots["run page"]["url"].endswith(f"/runs/{run_id}")
    assert shots["metric chart"]["url"].endswith(f"/runs/{run_id}/model-metrics")
    check_screenshots(shots, UI_PICTURES)
