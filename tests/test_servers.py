"""The server helper: starts a command on 127.0.0.1, waits for it, stops all it started."""

import socket
import sys

import pytest
import requests

from mlops_course import servers

# A web server that starts a child process of its own, as `mlflow server` does.
PARENT_AND_CHILD = (
    "import subprocess, sys, http.server\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "http.server.test(HandlerClass=http.server.SimpleHTTPRequestHandler, "
    "port=int(sys.argv[1]), bind='127.0.0.1')\n"
)


def python_command(tmp_path, code: str, *args) -> str:
    script = tmp_path / "server.py"
    script.write_text(code)
    return " ".join([sys.executable, str(script), *map(str, args)])


def test_start_waits_for_the_url_and_stop_ends_every_process(tmp_path):
    port = servers.free_port()
    command = python_command(tmp_path, PARENT_AND_CHILD, port)
    with servers.start(command, f"http://127.0.0.1:{port}/", cwd=tmp_path) as server:
        assert requests.get(server.origin, timeout=5).status_code == 200
        family = server.processes()
        assert len(family) == 2, "the server and the child it started"
    assert not server.running() and not server.processes()
    assert not any(p.is_running() for p in family)
    assert not servers.port_in_use(port)


def test_a_taken_port_is_refused_with_a_plain_message(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as blocker:
        port = blocker.getsockname()[1]
        with pytest.raises(servers.ServerError, match=f"Port {port} is already in use"):
            servers.start(python_command(tmp_path, "pass"), f"http://127.0.0.1:{port}/")


def test_a_command_that_exits_is_reported_with_its_output(tmp_path):
    command = python_command(tmp_path, "print('bad config'); raise SystemExit(3)")
    url = f"http://127.0.0.1:{servers.free_port()}/"
    with pytest.raises(servers.ServerError, match=r"exited with code 3(.|\n)*bad config"):
        servers.start(command, url, log_path=tmp_path / "server.log")


def test_no_answer_in_time_stops_the_command(tmp_path):
    command = python_command(tmp_path, "import time; time.sleep(600)")
    url = f"http://127.0.0.1:{servers.free_port()}/"
    with pytest.raises(servers.ServerError, match="No answer"):
        servers.start(command, url, timeout=2)


def test_environment_puts_this_python_first_on_path():
    env = servers.environment(EXTRA="1")
    assert env["EXTRA"] == "1"
    assert env["PATH"].split(servers.os.pathsep)[0] == servers.sysconfig.get_path("scripts")
