"""Chapter 3: what the tracking notebook leaves in its store."""

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_hello_world_run_holds_param_metric_history_tag_and_artifact(executed):
    result = executed("03_tracking")
    client = result.client()
    run_id = result.first_runs("03-tracking-by-hand")["hello-world"]
    run = client.get_run(run_id)
    assert run.data.params == {"param1": "5"}
    assert [m.value for m in client.get_metric_history(run_id, "foo")] == [1, 2, 3]
    assert run.data.tags["chapter"] == "03"
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    assert (artifacts / "hello.txt").read_text() == "Hello world!"


def test_hand_started_run_was_ended(executed):
    result = executed("03_tracking")
    run_id = result.first_runs("03-tracking-by-hand")["by-hand"]
    assert result.client().get_run(run_id).info.status == "FINISHED"


def test_artifacts_stay_in_the_scratch_folder(executed):
    result = executed("03_tracking")
    files = {p.name for p in (result.scratch_dir / "mlruns").rglob("hello.txt")}
    assert files == {"hello.txt"}
