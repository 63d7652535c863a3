"""UI screenshots: taken by headless Chromium once the page shows the awaited text."""

import base64
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import nbformat
import pytest
import requests

from mlops_course import screenshots, servers
from mlops_course.build_kernel import description
from mlops_course.execute import execute_notebook
from mlops_course.screenshots import screenshots as screenshots_in
from mlops_course.testing import NOTEBOOKS_DIR, check_screenshot, write_notebook

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


@pytest.fixture(scope="module")
def sign_in_page():
    """PAGE behind HTTP basic auth, as MLflow's sign-in server asks for it; its credentials."""
    credentials = ("admin", "a-test-password")
    expected = "Basic " + base64.b64encode(":".join(credentials).encode()).decode()

    class SignIn(BaseHTTPRequestHandler):
        def do_GET(self):
            signed_in = self.headers.get("Authorization") == expected
            self.send_response(200 if signed_in else 401)
            if not signed_in:
                self.send_header("WWW-Authenticate", 'Basic realm="mlflow"')
            self.end_headers()
            self.wfile.write(PAGE.encode() if signed_in else b"")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), SignIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/", credentials
    server.shutdown()


def test_capture_signs_in_with_credentials_and_not_without(sign_in_page):
    require_chromium()
    url, credentials = sign_in_page
    check_screenshot(screenshots.capture(url, "hello-run", credentials=credentials))
    with pytest.raises(Exception, match="ERR_INVALID_AUTH_CREDENTIALS"):
        screenshots.capture(url, "hello-run", timeout=2)


def test_capture_signs_in_as_mlflows_client_does(sign_in_page, monkeypatch):
    require_chromium()
    url, credentials = sign_in_page
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", credentials[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", credentials[1])
    check_screenshot(screenshots.capture(url, "hello-run"))


def test_the_ui_of_a_tracking_server_is_that_server():
    with screenshots.mlflow_ui("https://mlflow.team.internal/") as ui:
        ui.wait_until_answers()
        assert ui.origin == "https://mlflow.team.internal", "no second server started"


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
    assert description(shot["png"]) == shot["alt"], "the PNG carries its alt text"
    assert "runs page" in shot["alt"] and "hello-run" in shot["alt"]


def test_alt_text_says_which_page_and_what_it_waited_for():
    origin = "http://127.0.0.1:5123"
    run = "0123456789abcdef0123456789abcdef"
    assert screenshots.page_of(f"{origin}/#/experiments/4/runs?searchFilter=x") == (
        "the runs table of experiment 4")
    assert screenshots.page_of(f"{origin}/#/experiments/4/runs/{run}/model-metrics") == (
        "the model metrics tab of run 01234567…")
    assert screenshots.page_of(f"{origin}/#/models/wine%20quality/versions/2") == (
        "version 2 of registered model wine quality")
    assert screenshots.page_of(f"{origin}/#/") == "the home page"
    alt = screenshots.alt_text(f"{origin}/#/", "01-concepts", "first visit", first_visit=True)
    assert "GenAI" in alt and "01-concepts" in alt and origin not in alt
    runs = screenshots.alt_text(f"{origin}/#/experiments/4/runs", "rmse", "runs table")
    assert "in Model training mode" in runs
    traces = screenshots.alt_text(f"{origin}/#/experiments/4/traces", "grade", "traces tab",
                                  settings={"mlflow.workflowType_v1": "genai"})
    assert "the Traces tab of experiment 4, in GenAI mode" in traces, "the mode it was taken in"


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


def sidebar_entries(page) -> list[str]:
    """The texts of the UI's sidebar links, once the page has drawn them."""
    page.get_by_text("Experiments").first.wait_for(timeout=60_000)
    return page.locator("nav a, aside a").all_inner_texts()


def test_the_ui_opens_in_genai_mode_without_model_registry_and_the_preset_shows_it(tmp_path):
    """What chapter 1 and the troubleshooting page tell a learner about a first visit."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with screenshots.mlflow_ui(f"sqlite:///{tmp_path / 'mlflow.db'}") as ui, \
            sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=screenshots.chromium_path(),
                                             args=screenshots.CHROMIUM_ARGS)
        first = browser.new_page()
        first.goto(f"{ui.origin}/#/")
        first_entries = " ".join(sidebar_entries(first))
        assert first.get_by_text("Model training", exact=True).first.is_visible()
        assert first.get_by_text("GenAI", exact=True).first.is_visible()
        assert "Prompts" in first_entries and "Model registry" not in first_entries
        preset = browser.new_page()
        preset.add_init_script(
            f"Object.entries({json.dumps(screenshots.UI_SETTINGS)}).forEach("
            "([key, value]) => localStorage.setItem(key, JSON.stringify(value)));")
        preset.goto(f"{ui.origin}/#/")
        assert "Model registry" in " ".join(sidebar_entries(preset))
        browser.close()


NOTEBOOK = "01_concepts"  # the chapter where a learner first opens the UI


@pytest.mark.slow
def test_the_first_chapter_that_opens_the_ui_shows_it_as_first_met(executed):
    chapters = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    opens_ui = [path.stem for path in chapters
                if any("mlflow ui" in cell.source for cell in nbformat.read(path, 4).cells
                       if cell.cell_type == "markdown")]
    assert opens_ui[0] == NOTEBOOK, f"the first chapter that opens the UI is {opens_ui[0]}"
    shots = screenshots_in(executed(NOTEBOOK).first_copy)
    [first] = [shot for shot in shots if shot.get("first_visit")]
    assert first["url"].endswith("/#/"), "the home page, where http://127.0.0.1:5000 opens"
    assert "GenAI" in first["alt"] and "Model training" in first["alt"]
    if chromium_missing_here():
        pytest.skip("no Chromium here to take the picture (CI has one)")
    check_screenshot(first["png"])


def chromium_missing_here() -> bool:
    """True on a learner's machine without Chromium; in CI a missing Chromium fails."""
    if screenshots.chromium_path():
        return False
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed; .ci/run installs it")
    return True
