"""Chapter 14: the traces, evaluations and prompts the tracing notebook leaves in its store."""

import json
import os
import re
import secrets
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import nbformat
import pytest
from mlflow import MlflowClient
from mlflow.entities import Trace
from test_serving import server_processes_of

from mlops_course import roster, services
from mlops_course.execute import REPO_DIR, execute_notebook
from mlops_course.screenshots import CLIENT_CREDENTIALS, screenshots
from mlops_course.testing import check_screenshots, notebook_path, outputs_text

pytestmark = pytest.mark.slow

NOTEBOOK = "14_tracing"
EXPERIMENT = "14-tracing"
MODEL_ID, SOURCE, SOURCE_RUN = "mlflow.modelId", "mlflow.source.name", "mlflow.sourceRun"
FULL = ("grade", "check_input", "score", "clip")  # the spans of one successful prediction
# What one pass leaves under its traced-wine model: (name, state, spans, process) -> count.
MODEL_TRACES = {
    ("grade", "OK", FULL, "notebook"): 1 + 20,  # the first prediction, the timed calls
    ("grade", "ERROR", ("grade", "check_input"), "notebook"): 1,
    ("score_batch", "OK", ("score_batch",), "notebook"): 1,
    ("grade", "OK", FULL, "server"): 1,
    ("grade", "ERROR", ("grade", "check_input"), "server"): 1,
}
APP_SPANS = [("advise", "CHAIN"), ("find_wines", "RETRIEVER"), ("stand_in_llm", "LLM")]
WINE_IDS = {"Which wine has the most alcohol?": "652", "I would like a sweet wine.": "480",
            "Something with plenty of acid, please.": "652",
            "Which wine has the most sulphates?": "151", "Which wine is the least sweet?": "1017"}
QUESTIONS = list(WINE_IDS)
# Each scorer's verdict on each question: the retriever does not understand "least".
SCORES = {"right_wine": {q: "least" not in q for q in QUESTIONS},
          "grounded": dict.fromkeys(QUESTIONS, True)}
SCREENSHOTS = {"traces tab": "Which wine has the most alcohol?"}


def traces(client: MlflowClient, filter_string: str | None = None,
           experiment: str = EXPERIMENT) -> list[Trace]:
    """Every trace of the chapter's experiment that matches the filter, page by page."""
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    found, token = [], None
    while True:
        page = client.search_traces(locations=[experiment_id], max_results=200,
                                    filter_string=filter_string, page_token=token)
        found += page
        token = page.token
        if not token:
            return found


def traced_models(client: MlflowClient, experiment: str = EXPERIMENT) -> list[str]:
    """IDs of the traced-wine models, one per pass, oldest first."""
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    models = client.search_logged_models(experiment_ids=[experiment_id],
                                         filter_string="name = 'traced-wine'")
    return [m.model_id for m in sorted(models, key=lambda m: m.creation_timestamp)]


def of_model(client: MlflowClient, model_id: str, experiment: str = EXPERIMENT) -> list[Trace]:
    """The traces linked to one logged model, oldest first."""
    found = traces(client, f"metadata.`{MODEL_ID}` = '{model_id}'", experiment)
    return sorted(found, key=lambda t: t.info.request_time)


def summary(trace: Trace) -> tuple:
    """(trace name, state, span names, the process that made it)."""
    process = "server" if "uvicorn" in trace.info.trace_metadata[SOURCE] else "notebook"
    return (trace.info.tags["mlflow.traceName"], trace.info.state,
            tuple(span.name for span in trace.data.spans), process)


def span(trace: Trace, name: str):
    """The span of a trace with this name."""
    return trace.search_spans(name=name)[0]


def run_id(result, attempt: int, run_name: str) -> str:
    """The ID of a run of pass 1 or 2 in the chapter's experiment."""
    runs = result.first_pass if attempt == 1 else result.second_pass
    return next(i for i, (exp, name, _) in runs.items() if (exp, name) == (EXPERIMENT, run_name))


def test_each_pass_left_the_same_traces_under_its_model(executed):
    client = executed(NOTEBOOK).client()
    models = traced_models(client)
    assert len(models) == 2, "one traced-wine model per pass"
    for model_id in models:
        assert Counter(map(summary, of_model(client, model_id))) == Counter(MODEL_TRACES)


def test_spans_carry_their_attributes_and_the_exception(executed):
    client = executed(NOTEBOOK).client()
    for model_id in traced_models(client):
        first, failed = of_model(client, model_id)[:2]
        assert span(first, "check_input").attributes["rows"] == 3
        assert span(first, "clip").attributes["clipped"] == 0
        assert 3 < span(first, "score").attributes["highest"] < 9
        assert failed.info.state == "ERROR"
        check = span(failed, "check_input")
        assert check.status.status_code.value == "ERROR"
        [event] = check.events
        assert event.name == "exception"
        assert event.attributes["exception.type"] == "ValueError"
        assert event.attributes["exception.message"] == (
            "Measurements cannot be negative: ['alcohol']")


def test_the_client_traced_its_rest_calls_without_a_model(executed):
    calls = sorted(traces(executed(NOTEBOOK).client(), "trace.name = 'ask_server'"),
                   key=lambda t: t.info.request_time)
    assert [t.info.state for t in calls] == ["OK", "ERROR"] * 2, "two calls per pass"
    assert not any(MODEL_ID in t.info.trace_metadata for t in calls)
    event = span(calls[1], "ask_server").events[0]
    assert "HTTPError" in event.attributes["exception.type"]
    assert "400 Client Error" in event.attributes["exception.message"]


@pytest.mark.parametrize("attempt", [1, 2])
def test_evaluations_scored_each_row_and_left_assessments(executed, attempt):
    result = executed(NOTEBOOK)
    client = result.client()
    for run_name in ("eval-production", "eval-challenger"):
        run = client.get_run(run_id(result, attempt, run_name))
        assert run.data.metrics == {"right_wine/mean": 0.8, "grounded/mean": 1.0}, run_name
        # The rows run in parallel: each trace is matched to its row by its question.
        rows = {json.loads(t.data.request)["question"]: t
                for t in traces(client, f"metadata.`{SOURCE_RUN}` = '{run.info.run_id}'")}
        assert list(rows) and set(rows) == set(SCORES["right_wine"]), run_name
        for question, trace in rows.items():
            assert [(s.name, s.span_type) for s in trace.data.spans] == APP_SPANS
            verdicts = {(a.name, a.source.source_type): a.value for a in trace.info.assessments}
            expected = {(name, "CODE"): values[question] for name, values in SCORES.items()}
            expected["wine_id", "HUMAN"] = WINE_IDS[question]  # the row's expectation
            assert verdicts == expected, (run_name, question)
    labelled = client.get_run(run_id(result, attempt, "eval-traces"))
    assert labelled.data.metrics == {"right_wine/mean": 1.0, "grounded/mean": 1.0}
    quality = client.get_run(run_id(result, attempt, "eval-traces-quality"))
    assert quality.data.metrics["gives_quality/mean"] == 1.0


def test_labelled_traces_hold_their_expectations_and_feedback(executed):
    result = executed(NOTEBOOK)
    advice = traces(result.client(), "trace.name = 'advise'")
    asked = [t for t in advice if SOURCE_RUN not in t.info.trace_metadata]  # not evaluate's
    labelled = [t for t in asked if any(a.name == "wine_id" for a in t.info.assessments)]
    assert len(labelled) == 2 * 2, "two labelled traces per pass"
    for trace in labelled:
        names = Counter(a.name for a in trace.info.assessments)
        # The label, and feedback from the evaluation and from the exercise's.
        assert names == {"wine_id": 1, "right_wine": 2, "grounded": 2, "gives_quality": 1}
        expectation = next(a for a in trace.info.assessments if a.name == "wine_id")
        assert expectation.value == WINE_IDS[json.loads(trace.data.request)["question"]]
        assert expectation.source.source_type == "HUMAN"


def test_prompt_versions_and_the_production_alias(executed):
    result = executed(NOTEBOOK)
    client = result.client()
    versions = sorted(client.search_prompt_versions("wine-advisor"), key=lambda v: v.version)
    assert [v.version for v in versions] == [1, 2, 3, 4], "two versions per pass"
    templates = [v.template for v in versions]
    assert templates[0] == templates[2] and templates[1] == templates[3] != templates[0]
    assert versions[1].commit_message == "Ask for the quality too"
    production = client.get_prompt_version_by_alias("wine-advisor", "production")
    assert production.version == 4, "the alias moved to the challenger of the last pass"
    assert {"question", "wines"} == production.variables


def test_the_cost_of_tracing_is_printed_from_its_numbers(executed):
    result = executed(NOTEBOOK)
    shown = outputs_text(result.first_copy)
    run = result.client().get_run(run_id(result, 1, "tracing-cost"))
    traced, untraced = (run.data.metrics[f"{m}_predict_ms"] for m in ("traced", "untraced"))
    assert run.data.params["calls"] == "20"
    assert re.fullmatch(r".+ .+, \d+ CPUs", run.data.params["machine"])
    assert traced > untraced > 0
    assert f"one traced predict takes {traced:.2f} ms, an untraced one {untraced:.2f} ms" \
        in shown
    assert f"tracing adds {traced - untraced:.2f} ms per call" in shown


def test_outputs_show_no_machine_paths_and_no_widget(executed):
    result = executed(NOTEBOOK)
    nb = nbformat.read(result.first_copy, as_version=4)
    shown = outputs_text(result.first_copy)
    for path in [str(REPO_DIR), str(result.scratch_dir), "/tmp/", str(Path.home())]:
        assert path not in shown, f"an output shows {path}"
    # evaluate's progress bar is a widget: the page hides those cells' outputs.
    shown_cells = [c for c in nb.cells if "remove-output" not in c.metadata.get("tags", [])]
    kinds = {mime for cell in shown_cells for out in cell.get("outputs", [])
             for mime in out.get("data", {})}
    assert not any("mlflow.trace" in kind or "widget" in kind for kind in kinds), kinds
    hidden = [c for c in nb.cells if c not in shown_cells]
    assert hidden and all("mlflow.genai.evaluate(" in c.source for c in hidden)
    assert "default judge model: openai:/gpt-4.1-mini" in shown


def test_the_traces_tab_was_pictured_in_genai_mode(executed):
    result = executed(NOTEBOOK)
    shots = {s["screenshot"]: s for s in screenshots(result.first_copy)}
    alt = shots["traces tab"]["alt"]
    assert "the Traces tab of experiment" in alt and "in GenAI mode" in alt, alt
    check_screenshots(shots, SCREENSHOTS)


def test_no_server_outlives_the_notebook_and_files_stay_in_its_folder(executed):
    result = executed(NOTEBOOK)
    assert server_processes_of(result.scratch_dir) == []
    assert {p.name for p in result.scratch_dir.iterdir()} <= {"mlflow.db", "mlruns",
                                                             "14-tracing"}


# The notebook's first code cell, then offline GenAI work: a traced app evaluated with code
# scorers, and the prompt registry. The audit hook records every name lookup and connection.
OFFLINE_SCRIPT = """\
import sys, time
attempts = []
sys.addaudithook(lambda event, args: attempts.append(args[0])
                 if event in ("socket.getaddrinfo", "socket.connect") else None)
{first_cell}
import mlflow
from mlflow.genai.scorers import scorer
mlflow.set_tracking_uri("sqlite:///mlflow.db")
mlflow.set_experiment("offline")
mlflow.genai.register_prompt(name="p", template="Say {{{{x}}}}")
mlflow.genai.set_prompt_alias("p", alias="production", version=1)

@mlflow.trace
def app(x):
    return mlflow.genai.load_prompt("prompts:/p@production").format(x=x)

@scorer
def says(outputs):
    return outputs.startswith("Say")

mlflow.genai.evaluate(data=[{{"inputs": {{"x": "hi"}}}}], scorers=[says], predict_fn=app)
for _ in range(300):  # give a background thread the time to try the network
    if attempts:
        break
    time.sleep(0.1)
print("ATTEMPTS", [a for a in attempts if a not in ("127.0.0.1", "localhost")])
"""


@pytest.mark.parametrize("opted_out", [True, False])
def test_genai_work_attempts_no_network_once_telemetry_is_off(tmp_path, opted_out):
    """With the chapter's telemetry cell, nothing is looked up; without it, MLflow's telemetry
    is (so the hook does see attempts). CI and pytest variables are removed, as MLflow
    switches telemetry off by itself when it sees them."""
    nb = nbformat.read(notebook_path(NOTEBOOK), as_version=4)
    first_cell = next(c.source for c in nb.cells
                      if c.cell_type == "code" and "MLFLOW_DISABLE_TELEMETRY" in c.source)
    script = OFFLINE_SCRIPT.format(first_cell=first_cell if opted_out else "")
    keep = ("PATH", "HOME", "PYTHONPATH", "SYSTEMROOT", "TEMP", "TMP")
    env = {k: v for k, v in os.environ.items() if k in keep}
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], check=False,
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    attempts = run.stdout.rsplit("ATTEMPTS", 1)[1].strip()
    if opted_out:
        assert attempts == "[]", f"network attempts: {attempts}"
    else:
        assert "mlflow-telemetry.io" in attempts, attempts


def test_spine_three_exercises_one_in_the_ui_and_a_next_link():
    nb = nbformat.read(notebook_path(NOTEBOOK), as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    exercises = re.findall(r"```\{exercise\}\n:label: (\S+)\n(.*?)```", text, re.DOTALL)
    assert len(exercises) == 3, [label for label, _ in exercises]
    assert sum("MLflow UI" in body for _, body in exercises) == 1, "one exercise in the UI"
    assert text.count("{solution-start}") == text.count("{solution-end}") == 3
    assert "[Next: migrating from MLflow 1.x tutorials](../appendix/migration.md)" in text
    assert text.count("did not run when this page was built") == 1, "marked once"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for removed in ("mlflow.register_prompt(", "mlflow.load_prompt(", "mlflow.set_prompt_alias(",
                    "experiment_ids=", "extract_fields="):
        assert removed not in code, f"{removed} is deprecated in MLflow 3.17"


def test_a_learner_runs_the_chapter_on_the_rooms_sign_in_server(tmp_path, monkeypatch):
    """As in a workshop: the learner signs in with their roster card and sets participant;
    the admin then finds the chapter's traces, prompt and picture under the learner's names."""
    admin_password = secrets.token_urlsafe(16)

    def sign_in(user: str, password: str) -> None:
        """As a learner's shell does: MLflow's two client variables."""
        for name, value in zip(CLIENT_CREDENTIALS, (user, password)):
            monkeypatch.setenv(name, value)

    # The room guide's password cache: without it each of the chapter's requests waits
    # for the slow hash (158 s here instead of about 40).
    with services.start_sign_in_server(tmp_path, admin_password,
                                       auth_settings="auth_cache_ttl_seconds = 60\n") as server:
        sign_in("admin", admin_password)
        [card], _ = roster.create(server.origin, ["ana"])
        sign_in("ana", card.password)
        copy = tmp_path / "ana.ipynb"
        execute_notebook(notebook_path(NOTEBOOK), copy, scratch_dir=tmp_path / "laptop",
                         parameters={"tracking_uri": server.origin, "participant": "ana"})
        sign_in("admin", admin_password)
        admin = MlflowClient(tracking_uri=server.origin)
        assert {e.name for e in admin.search_experiments()} == {"Default", "14-tracing-ana"}
        [model_id] = traced_models(admin, "14-tracing-ana")
        found = of_model(admin, model_id, "14-tracing-ana")
        assert Counter(map(summary, found)) == Counter(MODEL_TRACES), "the server's too"
        assert [p.name for p in admin.search_prompts()] == ["wine-advisor-ana"]
        assert admin.get_prompt_version_by_alias("wine-advisor-ana", "production").version == 2
    assert admin_password not in copy.read_text() and card.password not in copy.read_text()
    check_screenshots({s["screenshot"]: s for s in screenshots(copy)}, SCREENSHOTS)
