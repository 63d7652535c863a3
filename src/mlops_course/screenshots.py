"""Screenshots of the MLflow UI, taken by headless Chromium (Playwright) during the build."""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from IPython.display import Image, Markdown, display

from mlops_course import servers
from mlops_course.build_kernel import with_description

BROWSER_ENV_VAR = "MLOPS_COURSE_CHROMIUM"  # a Chromium or Chrome executable to use
SIZE = (1280, 800)  # CSS pixels of the browser window, and so of the picture
# Chromium's connections to its own services fail offline; these flags keep it quiet.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
METADATA_KEY = "mlops_course"
CLIENT_CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
# The UI's own settings, as a learner who picked "Model training" and closed the assistant
# has them: without these it opens in GenAI mode with pop-ups over the page.
UI_SETTINGS = {
    "mlflow.workflowType_v1": "machine_learning",
    "mlflow.assistant.panelOpen_v1": False,
    "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": True,
    "mlflow.detectIssues.guidanceShown_v1": True,
}


class BrowserMissing(RuntimeError):
    """No Chromium to take screenshots with."""


def chromium_path() -> str | None:
    """$MLOPS_COURSE_CHROMIUM, else a Chromium or Chrome on PATH; None lets Playwright choose."""
    if os.environ.get(BROWSER_ENV_VAR):
        return os.environ[BROWSER_ENV_VAR]
    names = ("chromium", "chromium-browser", "google-chrome", "chrome")
    return next((found for name in names if (found := shutil.which(name))), None)


def capture(url: str, wait_for: str, *, timeout: float = 60, full_page: bool = False,
            exact: bool = False, settings: dict | None = None,
            first_visit: bool = False, credentials: tuple[str, str] | None = None) -> bytes:
    """PNG of url once its page shows the text wait_for; raises BrowserMissing without a browser.

    exact: wait_for must be a whole element's text. settings: more of the UI's local
    storage (see runs_table_columns). first_visit: the UI as a learner first meets it
    (GenAI mode, pop-ups), without UI_SETTINGS. credentials: (user, password) the browser
    answers a sign-in server's challenge with; by default, those MLflow's client signs in
    with (client_credentials). Runs in a thread of its own: Playwright's
    sync API refuses to run inside Jupyter's asyncio loop.
    """
    storage = ui_storage(settings, first_visit)
    credentials = credentials or client_credentials()
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_capture, url, wait_for, timeout, full_page, exact, storage,
                           credentials).result()


def ui_storage(settings: dict | None = None, first_visit: bool = False) -> dict:
    """The UI's local storage for a capture: UI_SETTINGS (none on a first visit), then settings."""
    return {**({} if first_visit else UI_SETTINGS), **(settings or {})}


def client_credentials() -> tuple[str, str] | None:
    """The user and password MLflow's client signs in with (its two variables), if both set."""
    user, password = (os.environ.get(name) for name in CLIENT_CREDENTIALS)
    return (user, password) if user and password else None


def _capture(url: str, wait_for: str, timeout: float, full_page: bool, exact: bool,
             storage: dict, credentials: tuple[str, str] | None) -> bytes:
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=chromium_path(), args=CHROMIUM_ARGS
            )
        except Error as error:
            raise BrowserMissing(str(error).splitlines()[0]) from None
        try:
            sign_in = dict(zip(("username", "password"), credentials)) if credentials else None
            page = browser.new_page(viewport=dict(zip(("width", "height"), SIZE)),
                                    http_credentials=sign_in)
            page.add_init_script(
                f"Object.entries({json.dumps(storage)}).forEach("
                "([key, value]) => localStorage.setItem(key, JSON.stringify(value)));"
            )
            page.goto(url)
            page.get_by_text(wait_for, exact=exact).first.wait_for(timeout=timeout * 1000)
            return page.screenshot(full_page=full_page)
        finally:
            browser.close()


def runs_table_columns(experiment_ids: list[str], columns: list[str]) -> dict:
    """The UI setting that shows these columns (e.g. "metrics.`rmse`") in the runs table,
    as a learner ticks them under Columns: pass it to show(..., settings=...)."""
    page = json.dumps(list(experiment_ids))
    key = f"MLflowLocalStorage-1.1-ExperimentPage-{page}-ReactComponentState"
    return {key: {"selectedColumns": columns}}


@dataclass
class TrackingServer:
    """A tracking server already running (a team's or a room's): it serves the UI itself."""

    origin: str

    def wait_until_answers(self, *_, **__) -> None:
        """It is up: the notebook has been using it."""

    def stop(self) -> None:
        """Not ours to stop."""

    def __enter__(self) -> TrackingServer:
        return self

    def __exit__(self, *_) -> None:
        pass


def mlflow_ui(tracking_uri: str, timeout: float = 120,
              wait: bool = True) -> servers.Server | TrackingServer:
    """`mlflow server` over a store, on a free port of 127.0.0.1, for the UI only (no jobs);
    for a tracking server's URI (http, https), that server itself.

    wait=False: see servers.start (it starts while the notebook goes on)."""
    if urlsplit(tracking_uri).scheme in ("http", "https"):
        return TrackingServer(tracking_uri.rstrip("/"))
    port = servers.free_port()
    command = (f"mlflow server --backend-store-uri {shlex.quote(tracking_uri)} "
               f"--host 127.0.0.1 --port {port} --workers 1")
    env = servers.environment(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    return servers.start(command, f"http://127.0.0.1:{port}/health", env=env, timeout=timeout,
                         wait=wait)


def page_of(url: str) -> str:
    """What the MLflow UI shows at url, in words ("the run page of run 1a2b3c4d…")."""
    route = url.split("#", 1)[1].split("?", 1)[0].strip("/") if "#" in url else ""
    pages = [  # (route pattern, description), most specific first
        (r"experiments/([^/]+)/runs/(\w{8})\w*/model-metrics", "the model metrics tab of run {1}…"),
        (r"experiments/([^/]+)/runs/(\w{8})\w*", "the run page of run {1}…"),
        (r"experiments/([^/]+)/runs", "the runs table of experiment {0}"),
        (r"experiments/([^/]+)/models/([^/]+)", "the page of logged model {1}"),
        (r"experiments/([^/]+)/models", "the logged models of experiment {0}"),
        (r"experiments/([^/]+)/traces", "the Traces tab of experiment {0}"),
        (r"models/([^/]+)/versions/([^/]+)", "version {1} of registered model {0}"),
        (r"models/([^/]+)", "the registered model {0}"),
        (r"compare-runs", "the run comparison page"),
        (r"", "the home page"),
    ]
    for pattern, words in pages:
        if match := re.fullmatch(pattern, route):
            return words.format(*map(unquote, match.groups()))
    return f"the page /#/{route}"


def alt_text(url: str, wait_for: str, name: str, first_visit: bool = False,
             settings: dict | None = None) -> str:
    """A screenshot's alt text, from what the capture asked for: page, mode, awaited text."""
    workflow = ui_storage(settings, first_visit).get("mlflow.workflowType_v1", "genai")
    if first_visit and workflow == "genai":
        mode = ("as first opened: GenAI mode, with the GenAI / Model training switch in the "
                "sidebar")
    else:
        mode = "in GenAI mode" if workflow == "genai" else "in Model training mode"
    return (f"Screenshot of the MLflow UI ({name}): {page_of(url)}, {mode}, "
            f"showing “{wait_for}”.")


def show(url: str, wait_for: str, name: str, **options) -> None:
    """Display a screenshot of url in the notebook, or say once why it could not be taken.

    The output's metadata names the picture and the text waited for (the tests check both);
    the PNG carries its alt text (alt_text), which the book's build puts on the image.
    """
    alt = alt_text(url, wait_for, name, options.get("first_visit", False),
                   options.get("settings"))
    info = {"screenshot": name, "url": url, "waited_for": wait_for, "alt": alt,
            "first_visit": options.get("first_visit", False)}
    try:
        png = with_description(capture(url, wait_for, **options), alt)
    except BrowserMissing as error:
        route = url.split("#", 1)[1] if "#" in url else urlsplit(url).path
        note = (f"*Screenshot “{name}” not taken: no Chromium on this machine. With "
                f"`mlflow ui` running, open `http://127.0.0.1:5000/#{route}` to see it.*")
        display(Markdown(note), metadata={METADATA_KEY: {**info, "missing": str(error)}})
        return
    display(Image(data=png, width=SIZE[0] * 0.6), metadata={METADATA_KEY: info})


def screenshots(executed: Path) -> list[dict]:
    """The UI screenshots an executed notebook shows: metadata, plus the PNG bytes if taken."""
    import nbformat  # here, not at the top: it costs a notebook 2 s to import (jsonschema)

    found = []
    for cell in nbformat.read(executed, as_version=4).cells:
        for output in cell.get("outputs", []):
            info = output.get("metadata", {}).get(METADATA_KEY)
            if info:
                png = output.get("data", {}).get("image/png")
                found.append({**info, "png": base64.b64decode(png) if png else None})
    return found

