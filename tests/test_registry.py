"""Chapter 8: what the registry notebook leaves in its store after running twice."""


import nbformat
import pytest

from mlops_course.screenshots import screenshots
from mlops_course.testing import check_screenshots, notebook_path

pytestmark = pytest.mark.slow

NOTEBOOK = "08_registry"
EXPERIMENT = "08-registry"
MODEL = "08-wine-quality"
RUN_NAMES = ["baseline", "challenger", "weak-challenger"]


def runs_of(pass_runs: dict[str, tuple]) -> dict[str, str]:
    """Run name -> run id of one pass's runs in the chapter's experiment."""
    return {name: run_id for run_id, (exp, name, _) in pass_runs.items() if exp == EXPERIMENT}


def versions_by_run(result) -> list[dict[str, int]]:
    """For each pass: run name -> the one version of MODEL that run's model became."""
    client = result.client()
    passes = []
    for pass_runs in (result.first_pass, result.second_pass):
        found = {}
        for name, run_id in runs_of(pass_runs).items():
            versions = client.search_model_versions(f"name = '{MODEL}' AND run_id = '{run_id}'")
            assert len(versions) == 1, f"run {name} should have become exactly one version"
            found[name] = int(versions[0].version)
        passes.append(found)
    return passes


def test_each_pass_registers_three_consecutive_versions(executed):
    first, second = versions_by_run(executed(NOTEBOOK))
    for found in (first, second):
        assert sorted(found) == sorted(RUN_NAMES)
        start = found["baseline"]
        assert [found[name] for name in RUN_NAMES] == [start, start + 1, start + 2]
    assert second["baseline"] == first["weak-challenger"] + 1, "a re-run adds versions"


def test_versions_lead_back_to_their_run_and_logged_model(executed):
    result = executed(NOTEBOOK)
    client = result.client()
    for name, run_id in runs_of(result.second_pass).items():
        (version,) = client.search_model_versions(f"name = '{MODEL}' AND run_id = '{run_id}'")
        assert version.source.startswith("models:/m-"), name
        logged = client.get_logged_model(version.source.removeprefix("models:/"))
        assert logged.source_run_id == run_id, name


def test_champion_is_the_last_challenger_and_the_old_one_stays_reachable(executed):
    result = executed(NOTEBOOK)
    _, second = versions_by_run(result)
    aliases = result.client().get_registered_model(MODEL).aliases
    assert aliases == {"champion": second["challenger"],
                       "previous-champion": second["baseline"]}


def test_promotion_decisions_are_recorded_as_version_tags(executed):
    result = executed(NOTEBOOK)
    client = result.client()
    expected = {"baseline": "pending", "challenger": "approved", "weak-challenger": "rejected"}
    for found in versions_by_run(result):
        for name, status in expected.items():
            tags = client.get_model_version(MODEL, found[name]).tags
            assert tags["validation_status"] == status, name
        champion_rmse = float(client.get_model_version(MODEL, found["challenger"])
                              .tags["test_rmse"])
        assert champion_rmse < float(client.get_model_version(MODEL, found["baseline"])
                                     .tags["test_rmse"])


def test_descriptions_and_tags(executed):
    result = executed(NOTEBOOK)
    client = result.client()
    model = client.get_registered_model(MODEL)
    assert model.description.startswith("Predicts red wine quality")
    assert model.tags == {"task": "regression", "data": "winequality-red"}
    _, second = versions_by_run(result)
    assert client.get_model_version(MODEL, second["baseline"]).description.startswith("Baseline")
    assert client.get_model_version(MODEL, second["challenger"]).description.startswith("Less")


def test_only_the_main_model_is_left(executed):
    names = {m.name for m in executed(NOTEBOOK).client().search_registered_models()}
    assert names == {MODEL}, "the scratch model is renamed and deleted on every run"


def test_no_code_cell_is_over_20_lines():
    nb = nbformat.read(notebook_path(NOTEBOOK), as_version=4)
    long = [c.source.splitlines()[0] for c in nb.cells
            if c.cell_type == "code" and len(c.source.splitlines()) > 20]
    assert not long, f"split these cells: {long}"


# The UI pictures the chapter shows: name -> the text the page had to show first.
SCREENSHOTS = {"registered model page": "previous-champion",
               "model version page": "Less regularised"}


def test_ui_screenshots_show_the_registered_model_and_the_champion_version(executed):
    result = executed(NOTEBOOK)
    first, _ = versions_by_run(result)
    shots = {s["screenshot"]: s for s in screenshots(result.first_copy)}
    assert set(shots) == set(SCREENSHOTS)
    assert shots["registered model page"]["url"].endswith(f"/#/models/{MODEL}")
    assert shots["model version page"]["url"].endswith(
        f"/#/models/{MODEL}/versions/{first['challenger']}"), "the champion's page"
    check_screenshots(shots, SCREENSHOTS)


def test_second_pass_ran_as_a_learner_runs_the_notebook(executed):
    # conftest.LEARNER_SECOND_PASS: `jupyter execute` in the store's folder, no parameters,
    # no MLflow variables; MLflow's default store there is the first pass's store.
    result = executed(NOTEBOOK)
    second = nbformat.read(result.copy(2), as_version=4)
    assert "mlops_course" not in second.metadata, "the second pass was not papermill's"
    assert all(c.execution_count for c in second.cells if c.cell_type == "code")
    assert runs_of(result.second_pass), "the learner's run logged to the same store"
