"""The `mlops-course` command: `check` made to fail in each way, `reset` keeping a learner's files."""

import os
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import mlflow
from mlflow import MlflowClient

from mlops_course import check, cli, servers
from mlops_course.data import PATH_ENV_VAR
from mlops_course.reset import reset_store


def by_name(results: list[check.Result]) -> dict[str, check.Result]:
    """The results keyed by check name."""
    return {result.name: result for result in results}


def test_java_missing_fails_with_its_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    result = check.check_java()
    assert result.status == "FAIL" and "no java" in result.detail
    assert "JAVA_HOME" in result.line() or "Temurin" in result.line()
    assert cli.main(["check", "--chapter", "11"]) == 1


@pytest.mark.parametrize("system, fix", [("linux", "apt-get install caddy"),
                                         ("darwin", "brew install caddy"),
                                         ("win32", "winget install CaddyServer.Caddy")])
def test_caddy_missing_fails_chapter_13_with_its_fix(monkeypatch, tmp_path, system, fix):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(check.sys, "platform", system)
    result = check.check_caddy()
    assert result.status == "FAIL" and fix in result.fix
    assert check.check_caddy in check.checks_for(13) and check.check_caddy not in check.checks_for(9)


@pytest.mark.parametrize("text, major", [('openjdk version "17.0.15" 2025-04-15', 17),
                                         ('java version "1.8.0_402"', 8),
                                         ('openjdk version "21" 2023-09-19', 21)])
def test_java_versions_are_read(text, major):
    assert check.java_major(text) == major


def test_old_java_fails(monkeypatch):
    monkeypatch.setattr(check, "java_executable", lambda: sys.executable)
    monkeypatch.setattr(check.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 0, "", 'java version "1.8.0_402"'))
    result = check.check_java()
    assert result.status == "FAIL" and "Java 8" in result.detail


def test_a_held_port_fails_naming_it():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = check.check_port(port)
    assert result.status == "FAIL" and str(port) in result.detail and str(port) in result.fix


def test_port_5000_on_macos_names_airplay(monkeypatch):
    monkeypatch.setattr(check.sys, "platform", "darwin")
    monkeypatch.setattr(check.servers, "port_in_use", lambda port: True)
    result = check.check_ui_port()
    assert "AirPlay" in result.detail and "MLFLOW_PORT=5001" in result.fix


def test_missing_white_wine_fails_naming_the_variable(monkeypatch, tmp_path):
    red = tmp_path / "winequality-red.csv"
    red.write_bytes(Path(os.environ[PATH_ENV_VAR]).read_bytes())
    monkeypatch.setenv(PATH_ENV_VAR, str(red))
    assert check.check_red_data().ok
    result = check.check_white_data()
    assert result.status == "FAIL" and "winequality-white.csv" in result.detail
    assert PATH_ENV_VAR in result.fix
    assert cli.main(["check", "--chapter", "12"]) == 1


def test_a_missing_browser_only_warns(monkeypatch, capsys):
    monkeypatch.setattr("mlops_course.screenshots.chromium_path", lambda: None)
    result = check.check_browser()
    assert result.status == "WARN" and check.ready([result])


def test_chapters_ask_for_what_they_use():
    assert check.check_java in check.checks_for(11)
    assert check.check_java not in check.checks_for(3)
    assert check.check_postgres in check.checks_for(9)
    whole = check.checks_for(None)
    assert len(whole) == len(set(whole)) and check.check_white_data in whole


def test_a_ready_chapter_exits_0(capsys):
    assert cli.main(["check", "--chapter", "3"]) == 0, capsys.readouterr().out
    output = capsys.readouterr().out
    assert "PASS  red wine data" in output and "Ready for chapter 3." in output


def test_check_runs_without_posix_only_modules():
    """As on Windows: pwd and grp do not exist (the libraries below need the rest here)."""
    code = ("import sys\n"
            "for name in ('pwd', 'grp'): sys.modules[name] = None\n"
            "from mlops_course import check\n"
            "print(check.check_postgres().status, check.check_git().status)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_report_logs_a_run_on_the_room_server(tmp_path):
    port = servers.free_port()
    store = f"sqlite:///{(tmp_path / 'room.db').as_posix()}"
    command = (f"mlflow server --host 127.0.0.1 --port {port} --backend-store-uri {store} "
               f"--artifacts-destination {(tmp_path / 'artifacts').as_uri()}")
    with servers.start(command, f"http://127.0.0.1:{port}/health", cwd=tmp_path,
                       timeout=300) as server:
        results = [check.Result("git", True, "found"), check.Result("java", False, "none")]
        before = (mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI"))
        check.report(results[:1], server.origin, "learner-06")
        run_id = check.report(results, server.origin, "learner-07")  # the same experiment
        assert (mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI")) == before
        client = MlflowClient(server.origin)
        run = client.get_run(run_id)
        runs = client.search_runs([run.info.experiment_id])
    assert run.info.run_name == "learner-07" and run.info.status == "FINISHED"
    assert sorted(r.info.run_name for r in runs) == ["learner-06", "learner-07"]
    assert run.data.params == {"git": "PASS", "java": "FAIL"}
    assert run.data.metrics["failed"] == 1


def test_reset_moves_the_store_and_nothing_else(tmp_path, capsys):
    (tmp_path / "mlflow.db").write_text("store")
    (tmp_path / "mlruns" / "1").mkdir(parents=True)
    own = {"winequality-red.csv": "a;b", "my_notes.ipynb": "{}", "07-serving/x.json": "{}"}
    for name, text in own.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cli.main(["reset", "--folder", str(tmp_path)]) == 0
    output = capsys.readouterr().out
    backups = list(tmp_path.glob(".backup-*"))
    assert len(backups) == 1 and (backups[0] / "mlflow.db").read_text() == "store"
    assert (backups[0] / "mlruns" / "1").is_dir()
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
    assert all((tmp_path / name).read_text() == text for name, text in own.items())
    assert "Move-Item" in output and "mv " in output and str(backups[0]) in output
    assert cli.main(["reset", "--folder", str(tmp_path)]) == 0
    assert "nothing to move" in capsys.readouterr().out


def test_reset_twice_in_a_second_keeps_both(tmp_path):
    moment = datetime(2026, 12, 1, 9, 0, 0)
    (tmp_path / "mlflow.db").write_text("first")
    reset_store(tmp_path, moment)
    (tmp_path / "mlflow.db").write_text("second")
    with pytest.raises(FileExistsError):
        reset_store(tmp_path, moment)
    assert (tmp_path / "mlflow.db").read_text() == "second"
