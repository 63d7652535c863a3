"""The build's kernel: MLflow's deprecation log lines are errors; every picture is described."""

import base64
import io
import logging

import matplotlib
import nbformat
import pytest

from mlops_course import build_kernel
from mlops_course.execute import NotebookExecutionError, execute_notebook
from mlops_course.testing import write_notebook

matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture
def strict_logging():
    """fail_on_deprecation_logs for one test; the record factory is restored after it."""
    factory = logging.getLogRecordFactory()
    build_kernel.fail_on_deprecation_logs()
    yield
    logging.setLogRecordFactory(factory)


def test_a_deprecation_logged_by_mlflow_raises(strict_logging):
    with pytest.raises(build_kernel.DeprecationLogged, match="artifact_path"):
        logging.getLogger("mlflow.models.model").warning(
            "`artifact_path` is deprecated. Please use `name` instead.")


def test_other_log_lines_pass(strict_logging):
    logging.getLogger("mlflow.tracking").warning("Run finished.")
    logging.getLogger("somebody.else").warning("this option is deprecated")
    logging.getLogger("mlflow.models").debug("debug lines about deprecated things pass")


def test_a_chart_is_described_by_its_title_axes_and_legend():
    figure, axes = plt.subplots()
    axes.plot([1, 2], [3, 4], label="l1_ratio = 0.25")
    axes.set(title="Test RMSE by alpha", xlabel="alpha", ylabel="RMSE (points)")
    axes.legend()
    assert build_kernel.describe_figure(figure) == (
        "Chart: Test RMSE by alpha. x axis: alpha. y axis: RMSE (points). "
        "series: l1_ratio = 0.25.")
    plt.close(figure)


def test_a_diagram_is_described_by_its_title_and_box_texts():
    figure, axes = plt.subplots()
    axes.text(0, 0, "mlflow server\n(holds all secrets)")
    axes.annotate("", (1, 1), (0, 0), arrowprops={"arrowstyle": "->"})
    axes.text(1, 1, "PostgreSQL")
    axes.axis("off")
    axes.set_title("The team stack")
    assert build_kernel.describe_figure(figure) == (
        "Diagram: The team stack. mlflow server (holds all secrets); PostgreSQL.")
    plt.close(figure)


def test_a_description_survives_in_the_png():
    figure, _ = plt.subplots()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    png = build_kernel.with_description(buffer.getvalue(), "A chart of nothing.")
    assert build_kernel.description(png) == "A chart of nothing."
    plt.close(figure)


PLOT = """\
import matplotlib.pyplot as plt
figure, axes = plt.subplots()
axes.plot([0, 1], [1, 0])
axes.set(title="Loss by step", xlabel="step", ylabel="loss")
plt.show()"""


@pytest.mark.slow
def test_the_build_describes_a_notebook_plot_and_fails_on_a_logged_deprecation(tmp_path):
    source = write_notebook(tmp_path / "notebooks/01_plot.ipynb", PLOT)
    execute_notebook(source, tmp_path / "out.ipynb", repo_dir=tmp_path)
    [png] = [o["data"]["image/png"] for c in nbformat.read(tmp_path / "out.ipynb", 4).cells
             for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert build_kernel.description(base64.b64decode(png)) == (
        "Chart: Loss by step. x axis: step. y axis: loss.")
    deprecated = write_notebook(
        tmp_path / "notebooks/02_deprecated.ipynb",
        "import logging\nlogging.getLogger('mlflow.models.model').warning("
        "'`artifact_path` is deprecated. Please use `name` instead.')")
    with pytest.raises(NotebookExecutionError, match="artifact_path` is deprecated"):
        execute_notebook(deprecated, tmp_path / "out2.ipynb", repo_dir=tmp_path)
