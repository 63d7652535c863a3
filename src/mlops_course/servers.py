"""Start a command in the background on 127.0.0.1, wait until it answers, stop all it started.

Works on Linux, macOS and Windows: psutil finds and stops the whole process tree.
"""

from __future__ import annotations

import atexit
import errno
import os
import re
import shlex
import socket
import subprocess
import sysconfig
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import requests


# "Address already in use": errno.EADDRINUSE (98 on Linux, 48 on macOS), Windows' 10048.
WSAEADDRINUSE = 10048
PORT_TAKEN_ERRNOS = frozenset({errno.EADDRINUSE, WSAEADDRINUSE})
# How a server's output says it: the errno's text on Linux and macOS, Windows' own words.
PORT_TAKEN_OUTPUT = re.compile(
    r"address already in use|only one usage of each socket address"
    r"|\[(?:Errno|WinError) (?:48|98|10048)\]",
    re.IGNORECASE,
)


class ServerError(RuntimeError):
    """A server could not start: the port is taken, it exited, or it never answered."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def is_port_taken(error: OSError) -> bool:
    """True when error says "address already in use", on Linux, macOS or Windows."""
    return error.errno in PORT_TAKEN_ERRNOS or getattr(error, "winerror", None) == WSAEADDRINUSE


def says_port_taken(output: str) -> bool:
    """True when a program's output reports that its port is taken, in any system's words."""
    return PORT_TAKEN_OUTPUT.search(output) is not None


def port_taken_message(port: int) -> str:
    """What to do when port is taken."""
    return (f"Port {port} is already in use on 127.0.0.1. Stop the program that uses it, "
            "or choose another port, and run this again.")


def port_in_use(port: int) -> bool:
    """True when a server could not listen on 127.0.0.1:port: a bind fails, or something answers."""
    with socket.socket() as probe:
        # Bind as servers do: over a closed connection's leftovers, but never sharing (Windows).
        option = socket.SO_EXCLUSIVEADDRUSE if os.name == "nt" else socket.SO_REUSEADDR
        probe.setsockopt(socket.SOL_SOCKET, option, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            if is_port_taken(error):
                return True
            raise
    with socket.socket() as probe:
        probe.settimeout(1)  # a refused connection takes about 2 s on Windows
        return probe.connect_ex(("127.0.0.1", port)) == 0


def environment(**variables: str) -> dict[str, str]:
    """This process's environment plus variables, with this Python's scripts first on PATH.

    As in an activated environment: `mlflow`, `python` and `uvicorn` are this kernel's own.
    """
    path = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path, **variables}


class Server:
    """A command running in the background; `stop()` ends it and every process it started."""

    def __init__(self, command: str, url: str, log_path: Path, process: subprocess.Popen,
                 temporary_log: bool = False):
        self.command, self.url, self.log_path, self.process = command, url, log_path, process
        self.temporary_log = temporary_log  # start() made the log: stop() removes it

    def processes(self) -> list[psutil.Process]:
        """The command's process and all its descendants that are still running."""
        try:
            root = psutil.Process(self.process.pid)
            family = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        return [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    @property
    def origin(self) -> str:
        """Scheme, host and port of url: where the server's pages start."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    def running(self) -> bool:
        """True while the command has not exited."""
        return self.process.poll() is None

    def log(self) -> str:
        """What the command printed so far (stdout and stderr); a temporary log is gone
        once the server is stopped."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 20) -> None:
        """Ask every process of the server to stop, wait, then kill what is left."""
        family = self.processes()
        for process in family:
            try:
                process.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(family, timeout=timeout)
        for process in alive:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=timeout)
        self.process.wait(timeout=timeout)  # reap the direct child
        if self.temporary_log:
            self.log_path.unlink(missing_ok=True)

    def wait_until_answers(self, timeout: float = 90, status: int | None = 200) -> None:
        """Return once url answers (with status); stop the server and raise ServerError if
        the command exits or time runs out."""
        try:
            wait_until_answers(self, timeout, status)
        except BaseException:
            self.stop()
            raise

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running() else f"exited ({self.process.returncode})"
        return f"<Server {self.command!r} on {self.url}, {state}>"


def start(
    command: str,
    url: str,
    *,
    timeout: float = 90,
    env: dict[str, str] | None = None,
    cwd: Path | str | None = None,
    log_path: Path | str | None = None,
    status: int | None = 200,
    wait: bool = True,
) -> Server:
    """Run command in the background and return once url answers (with status, if given).

    wait=False returns at once, so that the server starts while other work goes on: call
    server.wait_until_answers() before using it.

    Raises ServerError, with the command's last output, if the port is already taken (before
    the start, or the command says so), the command exits, or url gives no answer within
    timeout seconds. The server is stopped when the Python process exits, even after an
    error in a later notebook cell.
    """
    port = urlsplit(url).port
    if port and port_in_use(port):
        raise ServerError(port_taken_message(port))
    temporary_log = log_path is None
    if temporary_log:
        handle, log_path = tempfile.mkstemp(prefix="server-", suffix=".log")
        os.close(handle)
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command if os.name == "nt" else shlex.split(command), env=env or environment(),
            cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    server = Server(command, url, log_path, process, temporary_log)
    atexit.register(server.stop)
    if wait:
        server.wait_until_answers(timeout, status)
    return server


def wait_until_answers(server: Server, timeout: float, status: int | None) -> None:
    """Poll server.url until it answers; raise ServerError if the command exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.running():
            output = server.log()
            port = urlsplit(server.url).port
            cause = port_taken_message(port) + " " if port and says_port_taken(output) else ""
            raise ServerError(
                f"{cause}`{server.command}` exited with code {server.process.returncode}. "
                f"Its last output:\n{output[-2000:]}"
            )
        try:
            reply = requests.get(server.url, timeout=5)
            if status is None or reply.status_code == status:
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)
    raise ServerError(
        f"No answer from {server.url} within {timeout:.0f} s. "
        f"The last output of `{server.command}`:\n{server.log()[-2000:]}"
    )
