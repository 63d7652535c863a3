"""Chapter 13: the operating drills, run twice on the notebook's own throw-away stack.

The stack is gone after each pass; what the tests check from outside is what each pass
left: the drills' run in the laptop store (counts before and after the restore and gc,
the permission table as an artifact) and the executed notebooks' outputs.
"""

import json
import re
from pathlib import Path

import pytest

from mlops_course.testing import outputs_text

pytestmark = pytest.mark.slow

NOTEBOOK = "13_operating"
EXPECTED_TABLE = {
    "READ": {"read": 200, "update": 403, "delete": 403, "manage": 403},
    "USE": {"read": 200, "update": 403, "delete": 403, "manage": 403},
    "EDIT": {"read": 200, "update": 200, "delete": 403, "manage": 403},
    "MANAGE": {"read": 200, "update": 200, "delete": 200, "manage": 200},
    "NO_PERMISSIONS": {"read": 403, "update": 403, "delete": 403, "manage": 403},
    "DENY": {"read": 403, "update": 403, "delete": 403, "manage": 403},
}


def drills(result, pass_runs):
    """The drills run of one pass: (metrics, permission table)."""
    (run_id,) = [r for r, (exp, name, _) in pass_runs.items()
                 if exp == "13-operating" and name == "drills"]
    client = result.client()
    metrics = client.get_run(run_id).data.metrics
    table = json.loads(Path(client.download_artifacts(run_id, "permission_table.json")).read_text())
    return metrics, table


def test_both_passes_log_identical_drill_results(executed):
    result = executed(NOTEBOOK)
    first, second = (drills(result, p) for p in (result.first_pass, result.second_pass))
    assert first == second, "the same metrics and table on the second run"


def test_permission_table_each_level_against_the_running_server(executed):
    result = executed(NOTEBOOK)
    for pass_runs in (result.first_pass, result.second_pass):
        _, table = drills(result, pass_runs)
        assert table == EXPECTED_TABLE


def test_restore_brings_back_every_row_and_gc_removes_only_the_deleted(executed):
    result = executed(NOTEBOOK)
    metrics, _ = drills(result, result.first_pass)
    for name in ("runs", "metric_rows", "registered_models", "model_versions", "logged_models"):
        assert metrics[f"restored_{name}"] > 0, name
    assert metrics["restored_registered_models"] == 2  # the team's model and Erin's
    assert metrics["restored_model_versions"] == 1
    assert 0 < metrics["bucket_objects_after_gc"] < metrics["bucket_objects_before_gc"]
    for attempt in (1, 2):
        shown = outputs_text(result.copy(attempt))
        before = re.search(r"- before: (\{.*?\})", shown).group(1)
        assert f"- after: {before}" in shown, "counts after the restore equal those before"
        assert "files left: {'champion model': 5, 'rejected model': 0, 'scratch run': 0}" in shown


def test_tls_cors_storage_and_refusals_are_shown(executed):
    shown = outputs_text(executed(NOTEBOOK).copy(1))
    for expected in (
        "plain HTTP to the TLS port: 400",
        "TLS without the CA: certificate verify failed",
        "straight to the server's port: 403 Invalid Host header",
        "a client without the CA: certificate verify failed",
        "the UI creates an experiment: (403, 'Cross-origin request blocked') - created: False",
        "'list finance': 'AccessDenied', 'write finance': 'AccessDenied'",
        "with the role: {'gina': 200, 'hal': 200} - Gina after leaving it: 403",
        "Hal with the role and a DENY: 403 - DENY revoked: 200",
        "her permission on it: MANAGE",
        "Erin signs in: 401",
        "{'old password': 401, 'new password': 200}",
        "{'edited .env password': 401, 'rotated password': 200}",
        "the UI creates an experiment: (200",
        ("webhook after the restart (success, signature ok): ([True, True, True, True], "
         "[True, True, True, True])"),
        "with another key: InvalidToken",
        "credentials in the log: 0",
    ):
        assert expected in shown, expected


def test_no_secret_path_or_warning_in_the_outputs(executed):
    for attempt in (1, 2):
        shown = outputs_text(executed(NOTEBOOK).copy(attempt))
        assert "/tmp/" not in shown and "PASSWORD=" not in shown
        assert "://mlflow:" not in shown, "no database URI with its password"
        assert "Warning" not in shown, "no warnings in the outputs"
