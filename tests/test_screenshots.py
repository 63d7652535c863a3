"""UI screenshots: taken by headless Chromium once the page shows the awaited text."""

import os
import sys

import pytest
import requests

from mlops_course import screenshots, servers
from mlops_course.execute import execute_notebook
from mlops_course.screenshots import screenshots as screenshots_in
from mlops_course.testing import check_screenshot, write_notebook

PAGE = "<html><body><h1>Runs</h1><p style='color:#2272b4'>hello-run 0.7</p></body></html>"


def require_chromium() -> None:
    """Chromium is required in CI; elsewhere a test without it is skipped."""
    if not screenshots.chromium_path():
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it")
        pytest.skip("chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def page_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("site")
    (folder / "index.html").write_text(PAGE)
    port = servers.free_port()
    command = f"{sys.executable} -m http.server {port} --bind 127.0.0.1"
    with servers.start(command, f"http://127.0.0.1:{port}/", cwd=folder) as server:
        yield server


def test_capture_waits_for_the_text_and_returns_a_window_sized_png(page_server):
    require_chromium()
    check_screenshot(screenshots.capture(page_server.origin, "hello-run"))


def test_capture_fails_when_the_text_never_shows(page_server):
    require_chromium()
    with pytest.raises(Exception, match="Timeout"):
        screenshots.capture(page_server.origin, "no such run", timeout=2)


def test_show_in_a_notebook_records_the_picture_and_the_text_waited_for(page_server, tmp_path):
    require_chromium()
    source = write_notebook(
        tmp_path / "notebooks/01_shot.ipynb",
        "from mlops_course.screenshots import show\n"
        f"show({page_server.origin!r}, 'hello-run', 'runs page')",
    )
    execute_notebook(source, tmp_path / "out.ipynb", repo_dir=tmp_path)
    [shot] = screenshots_in(tmp_path / "out.ipynb")
    assert shot["screenshot"] == "runs page" and shot["waited_for"] == "hello-run"
    check_screenshot(shot["png"])


def test_without_a_browser_the_page_says_which_picture_is_missing(monkeypatch, page_server):
    monkeypatch.setenv(screenshots.BROWSER_ENV_VAR, "/nonexistent/chromium")
    outputs = []
    monkeypatch.setattr(screenshots, "display", lambda obj, metadata: outputs.append(
        (obj, metadata)))
    screenshots.show(page_server.origin, "hello-run", "runs page")
    [(note, metadata)] = outputs
    assert "runs page" in note.data and "not taken" in note.data
    assert "http://127.0.0.1:5000/#" in note.data, "where the reader's own `mlflow ui` shows it"
    assert page_server.origin not in note.data, "no build-time port"
    assert metadata["mlops_course"]["missing"]


def test_mlflow_ui_serves_the_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with screenshots.mlflow_ui(uri) as ui:
        assert ui.running()
        assert requests.get(f"{ui.origin}/api/2.0/mlflow/experiments/search",
                            params={"max_results": 10}, timeout=10).ok
    assert not ui.processes()
