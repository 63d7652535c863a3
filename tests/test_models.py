"""Chapter 5: what the models notebook leaves in its store."""

import json
from pathlib import Path

import mlflow
import nbformat
import numpy as np
import pytest
import sklearn
import yaml
from mlflow.utils.file_utils import local_file_uri_to_path
from sklearn.linear_model import ElasticNet
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import train_test_split

from mlops_course.data import FEATURES, TARGET, load_wine_quality
from mlops_course.screenshots import screenshots
from mlops_course.testing import check_screenshots, notebook_path

pytestmark = pytest.mark.slow

NOTEBOOK = "05_models"
EXPERIMENT = "05-models"


def models_of(result, run_name):
    """The logged models of one first-pass run: name -> LoggedModel."""
    client = result.client()
    run_id = result.first_runs(EXPERIMENT)[run_name]
    experiment = client.get_experiment_by_name(EXPERIMENT)
    models = client.search_logged_models([experiment.experiment_id])
    return {m.name: m for m in models if m.source_run_id == run_id}


def folder(logged_model) -> Path:
    """The local folder a logged model's files are stored in (file:// URIs too, on any OS)."""
    return Path(local_file_uri_to_path(logged_model.artifact_location))


def wine_split():
    """The chapter's 75/25 split of the wine data."""
    return train_test_split(load_wine_quality(), test_size=0.25, random_state=42)


def test_wine_model_is_skops_with_signature_examples_and_pinned_environment(executed):
    result = executed(NOTEBOOK)
    models = models_of(result, "elasticnet")
    assert set(models) == {"wine-model"}
    model_dir = folder(models["wine-model"])
    assert model_dir.is_relative_to(result.scratch_dir / "mlruns")
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    assert set(mlmodel["flavors"]) == {"python_function", "sklearn"}
    assert mlmodel["flavors"]["sklearn"]["serialization_format"] == "skops"
    assert (model_dir / "model.skops").is_file() and not (model_dir / "model.pkl").exists()
    inputs = [column["name"] for column in json.loads(mlmodel["signature"]["inputs"])]
    assert inputs == FEATURES
    example = json.loads((model_dir / "input_example.json").read_text())
    serving = json.loads((model_dir / "serving_input_example.json").read_text())
    assert serving == {"dataframe_split": example} and len(example["data"]) == 3
    requirements = (model_dir / "requirements.txt").read_text().split()
    assert f"scikit-learn=={sklearn.__version__}" in requirements
    assert f"mlflow=={mlflow.__version__}" in requirements
    assert "-r requirements.txt" in (model_dir / "python_env.yaml").read_text()


def test_evaluation_logged_metrics_plot_and_test_set_on_the_run(executed):
    result = executed(NOTEBOOK)
    client = result.client()
    run = client.get_run(result.first_runs(EXPERIMENT)["elasticnet"])
    train, test = wine_split()
    model = ElasticNet(alpha=0.5, l1_ratio=0.5, random_state=42)
    model.fit(train[FEATURES], train[TARGET])
    rmse = np.sqrt(mean_squared_error(test[TARGET], model.predict(test[FEATURES])))
    assert run.data.params == {"alpha": "0.5", "l1_ratio": "0.5"}
    assert run.data.metrics["root_mean_squared_error"] == pytest.approx(rmse)
    assert run.data.metrics["example_count"] == len(test)
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["wine-test"]
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["residuals.png"]
    metrics = client.get_logged_model(models_of(result, "elasticnet")["wine-model"].model_id).metrics
    assert {m.key for m in metrics} >= {"root_mean_squared_error", "r2_score"}


def test_custom_grade_model_is_self_contained_and_returns_grades_3_to_9(executed):
    result = executed(NOTEBOOK)
    models = models_of(result, "wine-grade")
    assert set(models) == {"wine-grade"}
    grade_dir = folder(models["wine-grade"])
    assert (grade_dir / "wine_grade.py").is_file(), "the model's code is stored with it"
    assert (grade_dir / "artifacts" / "model.skops").is_file(), "the regressor is copied in"
    assert not (grade_dir / "python_model.pkl").exists(), "logged from code, not pickled"

    grader = mlflow.pyfunc.load_model(str(grade_dir))
    train, test = wine_split()
    model = ElasticNet(alpha=0.5, l1_ratio=0.5, random_state=42)
    model.fit(train[FEATURES], train[TARGET])
    grades = np.asarray(grader.predict(test[FEATURES]))
    assert grades.tolist() == np.clip(np.rint(model.predict(test[FEATURES])), 3, 9).astype(int).tolist()
    assert grades.min() >= 3 and grades.max() <= 9


def test_grade_model_was_evaluated_in_the_exercise(executed):
    result = executed(NOTEBOOK)
    run = result.client().get_run(result.first_runs(EXPERIMENT)["wine-grade"])
    assert run.data.metrics["example_count"] == 400
    assert run.data.metrics["root_mean_squared_error"] > 0


def test_no_code_cell_is_over_20_lines():
    nb = nbformat.read(notebook_path("05_models"), as_version=4)
    long = [c.source.splitlines()[0] for c in nb.cells
            if c.cell_type == "code" and len(c.source.splitlines()) > 20]
    assert not long, f"split these cells: {long}"


def test_the_1x_run_uri_still_finds_the_model_but_the_run_folder_holds_nothing(executed):
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    result = executed(NOTEBOOK)
    run_id = result.first_runs(EXPERIMENT)["elasticnet"]
    model = models_of(result, "elasticnet")["wine-model"]

    def names(uri):
        return {Path(f.path).name for f in mlflow.artifacts.list_artifacts(uri)}

    # MLflow resolves runs:/<id>/<name> through the default store, whatever client asks.
    with _use_tracking_uri(result.tracking_uri):
        assert "MLmodel" in names(f"runs:/{run_id}/wine-model")
        assert names(f"runs:/{run_id}/wine-model") == names(f"models:/{model.model_id}")
    run_files = [a.path for a in result.client().list_artifacts(run_id)]
    assert run_files == ["residuals.png"], "no model among the run's files, only evaluate's plot"
    assert not (folder(model).parents[2] / run_id / "artifacts" / "wine-model").exists()


def test_a_broken_input_example_only_warns_and_the_model_is_logged(executed):
    result = executed(NOTEBOOK)
    (broken,) = models_of(result, "broken-example").values()
    assert broken.name == "broken-example" and str(broken.status) == "READY"
    example = json.loads((folder(broken) / "input_example.json").read_text())
    alcohol = example["columns"].index("alcohol")
    assert [row[alcohol] for row in example["data"]] == ["high", "medium", "low"]
    nb = nbformat.read(result.first_copy, as_version=4)
    cell = next(c for c in nb.cells if c.source.startswith("broken_example = "))
    shown = "".join(o.get("text", "") for o in cell.outputs)
    assert "Failed to validate serving input example" in shown
    assert "status: READY" in shown


def test_the_model_holds_each_evaluated_metric_with_one_value(executed):
    result = executed(NOTEBOOK)
    run = result.client().get_run(result.first_runs(EXPERIMENT)["elasticnet"])
    model = result.client().get_logged_model(models_of(result, "elasticnet")["wine-model"].model_id)
    values = {}
    for metric in model.metrics:
        values.setdefault(metric.key, set()).add(metric.value)
    assert set(values) == set(run.data.metrics), "the model and the run hold the same metrics"
    assert all(found == {run.data.metrics[key]} for key, found in values.items())


def test_loads_by_model_id_leave_a_registered_model_meta_naming_no_model(executed):
    result = executed(NOTEBOOK)
    model_dir = folder(models_of(result, "elasticnet")["wine-model"])
    meta = yaml.safe_load((model_dir / "registered_model_meta").read_text())
    assert meta == {"model_name": None, "model_version": None}


# The UI pictures the chapter shows: name -> the text the page had to show first.
SCREENSHOTS = {"logged models tab": "wine-grade", "logged model page": "root_mean_squared_error"}


def test_ui_screenshots_show_the_logged_models(executed):
    result = executed(NOTEBOOK)
    shots = {s["screenshot"]: s for s in screenshots(result.first_copy)}
    assert set(shots) == set(SCREENSHOTS)
    model = models_of(result, "elasticnet")["wine-model"]
    experiment_id = model.experiment_id
    assert shots["logged models tab"]["url"].endswith(f"/#/experiments/{experiment_id}/models")
    assert shots["logged model page"]["url"].endswith(
        f"/#/experiments/{experiment_id}/models/{model.model_id}")
    check_screenshots(shots, SCREENSHOTS)
