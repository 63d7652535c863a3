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
    assert not server.log_path.exists(), "the log start() made in the temp folder is gone"


def test_without_waiting_start_returns_at_once_and_the_server_is_waited_for_later(tmp_path):
    port = servers.free_port()
    command = python_command(tmp_path, "import time\ntime.sleep(2)\n" + PARENT_AND_CHILD, port)
    with servers.start(command, f"http://127.0.0.1:{port}/", cwd=tmp_path, wait=False) as server:
        assert server.running() and not servers.port_in_use(port), "Still starting."
        server.wait_until_answers(timeout=30)
        assert requests.get(server.origin, timeout=5).status_code == 200


def test_a_server_waited_for_later_that_exits_is_reported_and_stopped(tmp_path):
    command = python_command(tmp_path, "print('bad config'); raise SystemExit(3)")
    server = servers.start(command, f"http://127.0.0.1:{servers.free_port()}/", wait=False)
    with pytest.raises(servers.ServerError, match=r"exited with code 3(.|\n)*bad config"):
        server.wait_until_answers()
    assert not server.running() and not server.processes()


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


# What uvicorn prints when its port is taken, on each system (the errno and its text).
BIND_FAILURES = {
    "linux": "[Errno 98] error while attempting to bind on address ('127.0.0.1', 1234): "
             "address already in use",
    "macos": "[Errno 48] error while attempting to bind on address ('127.0.0.1', 1234): "
             "address already in use",
    "windows": "[Errno 10048] error while attempting to bind on address ('127.0.0.1', 1234): "
               "only one usage of each socket address (protocol/network address/port) is "
               "normally permitted",
}


@pytest.mark.parametrize("system", BIND_FAILURES)
def test_a_taken_port_is_recognised_in_every_systems_words(system):
    assert servers.says_port_taken(BIND_FAILURES[system])
    assert not servers.says_port_taken("[Errno 111] Connection refused")


def test_a_taken_port_is_recognised_by_its_error_number():
    assert servers.is_port_taken(OSError(servers.errno.EADDRINUSE, "Address already in use"))
    assert servers.is_port_taken(OSError(10048, "Only one usage of each socket address"))
    assert not servers.is_port_taken(OSError(servers.errno.ECONNREFUSED, "Connection refused"))


def test_a_bound_port_that_does_not_listen_yet_counts_as_taken():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        assert servers.port_in_use(holder.getsockname()[1])
    assert not servers.port_in_use(servers.free_port())


def test_a_command_that_finds_its_port_taken_is_reported_as_such(tmp_path):
    # The port is free when start() checks; the command itself then fails to bind it.
    port = servers.free_port()
    code = ("import socket, sys\n"
            "address = ('127.0.0.1', int(sys.argv[1]))\n"
            "first = socket.socket()\n"
            "first.bind(address)\n"
            "socket.socket().bind(address)\n")
    with pytest.raises(servers.ServerError, match=f"^Port {port} is already in use") as error:
        servers.start(python_command(tmp_path, code, port), f"http://127.0.0.1:{port}/")
    assert "exited with code 1" in str(error.value)
