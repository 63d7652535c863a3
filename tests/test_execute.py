"""The execution step: scratch stores, the content-hash cache, failures, timeouts, warnings."""

from pathlib import Path

import nbformat
import pytest

from mlops_course.execute import (
    METADATA_KEY, NotebookExecutionError, execute_book, execute_notebook, source_hash,
)
from mlops_course.testing import write_notebook

@pytest.fixture
def repo(tmp_path) -> Path:
    """A miniature course repository: requirements.txt and a notebooks/ folder."""
    (tmp_path / "requirements.txt").write_text("nbformat\n")
    return tmp_path


def executed_names(results) -> list[str]:
    return [r.name for r in results if r.executed]


def test_parameters_point_at_a_scratch_store_in_the_working_folder(repo):
    source = write_notebook(
        repo / "notebooks/01_where.ipynb",
        "import os, mlflow\nfrom pathlib import Path\n"
        "assert tracking_uri == 'sqlite:///' + os.path.join(os.getcwd(), 'mlflow.db')\n"
        "assert os.environ['MLFLOW_TRACKING_URI'] == tracking_uri\n"
        "assert port != 5000\n"
        "print('scratch ok')\n"
        # The store starts migrated and empty; its first open adds Default, stored here.
        "(default,) = mlflow.search_experiments()\n"
        "assert Path(default.artifact_location) == Path('mlruns', '0').resolve()\n",
    )
    scratch = repo / "build-store"  # a name the code does not mention: not a shared input
    execute_notebook(source, repo / "out/01_where.ipynb", scratch_dir=scratch, repo_dir=repo)
    result = nbformat.read(repo / "out/01_where.ipynb", as_version=4)
    assert "scratch ok" in result.cells[-1].outputs[0]["text"]
    assert (scratch / "mlflow.db").read_bytes()[:16] == b"SQLite format 3\0"
    text = nbformat.writes(result)
    assert "injected-parameters" not in text and '"papermill": {' not in text, "no build trace"
    assert str(scratch) not in text and str(repo) not in text, "no build path"
    assert "warnings" not in result.cells[0].source, "the setup cell is dropped"
    assert result.metadata[METADATA_KEY]["source_hash"] == source_hash(source, repo)


def test_cache_executes_only_what_changed(repo):
    first = write_notebook(repo / "notebooks/01_a.ipynb", "x = 1")
    second = write_notebook(repo / "notebooks/02_b.ipynb", "y = 2")
    out = repo / "book/notebooks"
    assert executed_names(execute_book([first, second], out, log=lambda _: None)) == \
        ["01_a.ipynb", "02_b.ipynb"]
    assert executed_names(execute_book([first, second], out, log=lambda _: None)) == []
    write_notebook(first, "x = 10")
    assert executed_names(execute_book([first, second], out, log=lambda _: None)) == ["01_a.ipynb"]
    forced = execute_book([first, second], out, force=True, log=lambda _: None)
    assert executed_names(forced) == ["01_a.ipynb", "02_b.ipynb"]


def test_a_prose_edit_rerenders_the_page_without_executing(repo):
    source = write_notebook(repo / "notebooks/01_a.ipynb", "print('computed')")
    out = repo / "book/notebooks"
    execute_book([source], out, log=lambda _: None)
    nb = nbformat.read(source, as_version=4)
    nb.cells[0].source = "# A test notebook, with a typo fixed"
    nb.cells[-1].metadata["tags"] = ["remove-input"]  # how it shows, not what it computes
    nbformat.write(nb, source)
    logged = []
    assert executed_names(execute_book([source], out, log=logged.append)) == []
    assert "1 with edited prose" in logged[0]
    page = nbformat.read(out / "01_a.ipynb", as_version=4)
    assert page.cells[0].source.endswith("typo fixed")
    assert page.cells[-1].metadata.tags == ["remove-input"]
    assert page.cells[-1].outputs[0]["text"] == "computed\n", "the cached output is kept"
    assert executed_names(execute_book([source], out, log=lambda _: None)) == []


def test_a_shared_file_reexecutes_only_the_chapters_that_use_it(repo):
    (repo / "conda_env").mkdir()
    (repo / "conda_env/train.py").write_text("from mlops_course.data import load\n")
    (repo / "src/mlops_course").mkdir(parents=True)
    (repo / "src/mlops_course/data.py").write_text("def load(): pass\n")
    uses = write_notebook(repo / "notebooks/01_uses.ipynb", "project = 'conda_env'")
    other = write_notebook(repo / "notebooks/02_other.ipynb", "x = 1")
    out = repo / "book/notebooks"
    execute_book([uses, other], out, log=lambda _: None)
    (repo / "conda_env/train.py").write_text("from mlops_course.data import load  # v2\n")
    assert executed_names(execute_book([uses, other], out, log=lambda _: None)) == \
        ["01_uses.ipynb"]
    (repo / "src/mlops_course/data.py").write_text("def load(): return 2\n")  # via train.py
    assert executed_names(execute_book([uses, other], out, log=lambda _: None)) == \
        ["01_uses.ipynb"]


def test_changed_pins_execute_everything_again(repo):
    source = write_notebook(repo / "notebooks/01_a.ipynb", "x = 1")
    out = repo / "book/notebooks"
    execute_book([source], out, log=lambda _: None)
    (repo / "requirements.txt").write_text("nbformat\npapermill\n")
    assert executed_names(execute_book([source], out, log=lambda _: None)) == ["01_a.ipynb"]


def test_executed_copies_of_removed_notebooks_are_deleted(repo):
    source = write_notebook(repo / "notebooks/01_a.ipynb", "x = 1")
    out = repo / "book/notebooks"
    write_notebook(out / "09_gone.ipynb", "pass")
    execute_book([source], out, log=lambda _: None)
    assert sorted(p.name for p in out.iterdir()) == ["01_a.ipynb"]


def test_a_failing_cell_names_the_notebook_the_cell_and_the_traceback(repo):
    source = write_notebook(repo / "notebooks/03_broken.ipynb", "a = 1", "b = a / 0")
    destination = repo / "out/03_broken.ipynb"
    with pytest.raises(NotebookExecutionError) as error:
        execute_notebook(source, destination, repo_dir=repo)
    message = str(error.value)
    assert "03_broken.ipynb failed in cell 4 (of 4)" in message
    assert "b = a / 0" in message and "ZeroDivisionError" in message
    assert not destination.exists(), "no executed copy that looks fine"


def test_every_failing_notebook_is_reported_and_the_others_still_run(repo):
    good = write_notebook(repo / "notebooks/01_good.ipynb", "x = 1")
    divides = write_notebook(repo / "notebooks/02_divides.ipynb", "1 / 0")
    refuses = write_notebook(repo / "notebooks/03_refuses.ipynb", "raise ValueError('no')")
    out = repo / "book/notebooks"
    with pytest.raises(NotebookExecutionError) as error:
        execute_book([good, divides, refuses], out, log=lambda _: None)
    assert "02_divides.ipynb failed in cell 3" in str(error.value)
    assert "03_refuses.ipynb failed in cell 3" in str(error.value)
    assert sorted(p.name for p in out.glob("*.ipynb")) == ["01_good.ipynb"]


def test_a_notebook_that_runs_too_long_is_stopped(repo):
    source = write_notebook(repo / "notebooks/04_slow.ipynb", "import time\ntime.sleep(60)")
    with pytest.raises(NotebookExecutionError, match="04_slow.ipynb") as error:
        execute_notebook(source, repo / "out/04_slow.ipynb", timeout=5, repo_dir=repo)
    assert "Timed out: a cell may run for 5 s at most" in str(error.value)
    assert "time.sleep(60)" in str(error.value)


def test_deprecated_mlflow_calls_fail(repo):
    source = write_notebook(
        repo / "notebooks/05_old.ipynb",
        "from mlflow.models.rag_signatures import Message\nMessage(role='user', content='hi')",
    )
    with pytest.raises(NotebookExecutionError, match="FutureWarning.*deprecated"):
        execute_notebook(source, repo / "out/05_old.ipynb", repo_dir=repo)


def test_a_notebook_without_parameters_cell_is_refused(repo):
    path = repo / "06_plain.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), path)
    with pytest.raises(NotebookExecutionError, match="parameters"):
        execute_notebook(path, repo / "out/06_plain.ipynb", repo_dir=repo)


def test_finalize_keeps_a_progress_bars_text_and_drops_its_widget():
    from mlops_course.execute import WIDGET_VIEW, finalize

    bar = nbformat.v4.new_output("display_data", data={
        "text/plain": "Evaluating: 100%|██████████| 3/3", WIDGET_VIEW: {"model_id": "abc"}})
    nb = nbformat.v4.new_notebook(metadata={"widgets": {"state": {}}}, cells=[
        nbformat.v4.new_code_cell("setup"), nbformat.v4.new_code_cell("evaluate()", outputs=[bar])])
    finalize(nb, "hash", 1.0)
    (cell,) = nb.cells
    assert cell.outputs[0]["data"] == {"text/plain": "Evaluating: 100%|██████████| 3/3"}
    assert "widgets" not in nb.metadata
