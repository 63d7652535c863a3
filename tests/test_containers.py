"""Chapter 10: the container files are safe and valid, and the chapter proves their commands."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
import psutil
import pytest
import yaml

from mlops_course.execute import REPO_DIR

NOTEBOOK = "10_containers"
CONTAINERS = REPO_DIR / "containers"
DOCKERFILES = sorted(p for p in CONTAINERS.rglob("Dockerfile*") if p.suffix != ".dockerignore")
# Every Dockerfile of the repository (generated folders left out), for hadolint.
SKIP = {".venv", ".git", "_build", "notebooks", "node_modules"}
ALL_DOCKERFILES = sorted(
    p for p in REPO_DIR.rglob("Dockerfile*")
    if p.is_file() and p.suffix != ".dockerignore"
    and not SKIP & set(p.relative_to(REPO_DIR).parts)
)
DEVCONTAINER = REPO_DIR / ".devcontainer" / "devcontainer.json"
DOCKER_PROJECT = CONTAINERS / "docker_project"
COMPOSE = REPO_DIR / "team_server" / "docker-compose.yml"
EXPERIMENT = "10-containers"
# An exact release of the course's Python, with the digest of its content.
PINNED_BASE = re.compile(r"python:(\d+\.\d+)\.\d+-slim-[a-z]+@sha256:[0-9a-f]{64}")
# The requirements file each image installs (copied into it as requirements.txt).
REQUIREMENTS = {"dev": "requirements.txt",
                "docker_project": "containers/docker_project/requirements.txt"}
LITERAL_PASSWORD = re.compile(r"(?i)passw(or)?d\w*\s*[:=]\s*(?![\s$]|\{)\S")


def tool(name: str) -> str:
    """A test tool from this environment (requirements-dev.txt)."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    assert found, f"{name} is missing: pip install -r requirements-dev.txt"
    return found


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    lines = [line.strip() for line in joined.splitlines()]
    return [tuple(line.split(maxsplit=1)) for line in lines if line and line[0] != "#"]


def container_files() -> list[Path]:
    """Every file that builds or runs a container in the repository."""
    files = [p for p in CONTAINERS.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    files += [DEVCONTAINER, REPO_DIR / ".dockerignore"]
    return files + ([COMPOSE] if COMPOSE.is_file() else [])


def test_there_are_two_images():
    assert [p.relative_to(CONTAINERS).as_posix() for p in DOCKERFILES] == [
        "dev/Dockerfile", "docker_project/Dockerfile"]


@pytest.mark.parametrize("dockerfile", ALL_DOCKERFILES,
                         ids=lambda p: p.relative_to(REPO_DIR).as_posix())
def test_dockerfile_passes_hadolint_without_any_finding(dockerfile):
    lint = subprocess.run([tool("hadolint"), "--no-color", "-f", "json", str(dockerfile)],
                          capture_output=True, text=True, timeout=60)
    findings = json.loads(lint.stdout or "[]")
    assert findings == [], f"hadolint: {findings}"
    assert lint.returncode == 0, lint.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_image_is_pinned_runs_as_a_user_and_installs_the_course_pins(dockerfile):
    steps = instructions(dockerfile)
    bases = [args for name, args in steps if name == "FROM"]
    assert len(bases) == 1
    pinned = PINNED_BASE.fullmatch(bases[0])
    assert pinned, f"pin an exact release and its digest: {bases}"
    python_env = yaml.safe_load((REPO_DIR / "conda_env/python_env.yaml").read_text())
    assert pinned[1] == python_env["python"], "the course's Python version"
    users = [args for name, args in steps if name == "USER"]
    assert users and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]), "a numeric non-root USER"
    install = next(a for n, a in steps if n == "RUN" and "pip install" in a)
    assert "pip install --no-cache-dir -r requirements.txt" in install
    copied = {s.rstrip("/") for n, a in steps if n == "COPY" for s in a.split()[:-1]
              if not s.startswith("--")}
    assert copied == {REQUIREMENTS[dockerfile.parent.name], "pyproject.toml", "src"}


def test_both_images_share_the_base_and_the_user():
    first, second = ([a for n, a in instructions(p) if n in ("FROM", "USER")]
                     for p in DOCKERFILES)
    assert first == second


def test_training_requirements_are_the_course_pins_train_py_needs():
    slim = [line for line in (DOCKER_PROJECT / "requirements.txt").read_text().splitlines()
            if line and not line.startswith("#")]
    course = set((REPO_DIR / "requirements.txt").read_text().splitlines())
    assert [line for line in slim if line not in course] == [], "pinned as in requirements.txt"
    assert {line.split("==")[0] for line in slim} == {"mlflow", "scikit-learn", "pandas", "numpy"}
    train_py = (DOCKER_PROJECT / "train.py").read_text()
    imported = set(re.findall(r"^\s*(?:from|import) (\w+)", train_py, flags=re.M))
    assert imported - {"argparse", "sys", "pathlib"} == {"mlflow", "numpy", "sklearn",
                                                         "mlops_course"}
    assert "pip install --no-cache-dir --no-deps ." in (DOCKER_PROJECT / "Dockerfile").read_text()


def test_development_image_has_what_every_chapter_needs():
    steps = instructions(CONTAINERS / "dev" / "Dockerfile")
    apt = next(a for n, a in steps if n == "RUN" and "apt-get install" in a)
    assert {"git", "default-jre-headless", "chromium"} <= set(apt.split())
    assert "--no-install-recommends" in apt and "rm -rf /var/lib/apt/lists/*" in apt
    env = " ".join(a for n, a in steps if n == "ENV")
    venv = "/home/course/venv"  # in the home, which Dev Containers re-own with the user
    assert f"VIRTUAL_ENV={venv}" in env and f"PATH={venv}/bin:$PATH" in env
    assert f"python -m venv {venv}" in next(a for n, a in steps if "pip install" in a)
    # The user owns the environment, so postCreateCommand can install into it.
    user_at = next(i for i, (n, _) in enumerate(steps) if n == "USER")
    venv_at = next(i for i, (_, a) in enumerate(steps) if "python -m venv" in a)
    assert user_at < venv_at


def test_development_image_runs_jupyter_with_a_token_behind_a_published_port():
    dockerfile = CONTAINERS / "dev" / "Dockerfile"
    steps = dict(instructions(dockerfile))
    command = json.loads(steps["CMD"])  # exec form: no shell between Docker and Jupyter
    assert command[:2] == ["jupyter", "lab"] and "--no-browser" in command
    assert command[command.index("--ip") + 1] == "0.0.0.0"
    assert steps["EXPOSE"] == command[command.index("--port") + 1] == "8888"
    text = dockerfile.read_text()
    assert "-p 127.0.0.1:8888:8888" in text and "-e JUPYTER_TOKEN" in text
    assert not re.search(r"(?i)(token|password)\s*=", " ".join(command))


def test_jupyterlab_in_the_image_is_the_one_the_chapter_runs():
    requirements = (REPO_DIR / "requirements.txt").read_text()
    assert re.search(r"^jupyterlab==[\w.]+$", requirements, flags=re.M), "pinned once, there"


def test_no_ssh_server_and_no_literal_password_in_any_container_file():
    for path in container_files():
        text = path.read_text()
        for word in ("openssh-server", "sshd", "chpasswd"):
            assert word not in text, f"{path.name}: {word}"
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        code = re.sub(r"\$\{[^}]*\}", "${}", code)  # ${VARIABLE...}: a value from elsewhere
        assert not LITERAL_PASSWORD.search(code), f"{path}: a literal password"


def test_dockerignore_lets_in_only_what_the_images_copy():
    lines = (REPO_DIR / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and line[0] != "#"]
    assert patterns[0] == "*", "deny everything, then allow what the images need"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    for dockerfile in DOCKERFILES:
        for name, args in instructions(dockerfile):
            if name == "COPY":
                sources = [s for s in args.split()[:-1] if not s.startswith("--")]
                assert {s.rstrip("/") for s in sources} <= allowed, (dockerfile, sources)
    assert not {".venv", "mlruns", "mlflow.db", ".git"} & allowed


def test_devcontainer_json_builds_the_development_image():
    config = json.loads(DEVCONTAINER.read_text())  # plain JSON: no comments
    folder = DEVCONTAINER.parent
    assert (folder / config["build"]["dockerfile"]).resolve() == CONTAINERS / "dev/Dockerfile"
    assert (folder / config["build"]["context"]).resolve() == REPO_DIR
    assert config["remoteUser"] == "course"
    assert config["workspaceFolder"] in config["workspaceMount"]
    assert "runArgs" not in config and "appPort" not in config, "no port on every interface"
    # Dev Containers replace the image's command unless told not to (the spec's
    # overrideCommand, default true for an image or a Dockerfile): Jupyter must start.
    assert config["overrideCommand"] is False
    install, tests = config["postCreateCommand"].split(" && ")
    assert install == "pip install -r requirements-dev.txt", "the README's install"
    assert tests == 'python -m pytest -m "not slow"', "the quick tests"
    # A login shell's /etc/profile resets PATH; the editor's shells and the commands above
    # must still find the image's environment first.
    assert config["remoteEnv"]["PATH"].startswith("/home/course/venv/bin:")


# The keys of the dev container specification (containers.dev, devContainer.base.schema.json)
# this file may use, with their types. No copy of the schema is available offline, so the
# test holds this allow-list, read from the specification, instead.
DEVCONTAINER_KEYS = {
    "name": str, "build": dict, "workspaceMount": str, "workspaceFolder": str,
    "remoteUser": str, "remoteEnv": dict, "overrideCommand": bool, "postCreateCommand": str,
    "forwardPorts": list, "portsAttributes": dict, "customizations": dict,
}


def test_devcontainer_json_uses_only_keys_of_the_specification():
    config = json.loads(DEVCONTAINER.read_text())
    unknown = set(config) - set(DEVCONTAINER_KEYS)
    assert not unknown, f"not in the allow-list (check the spec, then add): {unknown}"
    for key, value in config.items():
        assert isinstance(value, DEVCONTAINER_KEYS[key]), f"{key}: {type(value).__name__}"
    assert set(config["build"]) <= {"dockerfile", "context", "args", "target", "cacheFrom"}
    assert all(isinstance(p, int) and 0 < p < 65536 for p in config["forwardPorts"])
    assert set(config["portsAttributes"]) <= {str(p) for p in config["forwardPorts"]}
    for attributes in config["portsAttributes"].values():
        assert set(attributes) <= {"label", "onAutoForward", "protocol", "requireLocalPort",
                                   "elevateIfNeeded"}


def test_docker_project_is_chapter_6s_project_in_a_container():
    spec = yaml.safe_load((DOCKER_PROJECT / "MLproject").read_text())
    chapter6 = yaml.safe_load((REPO_DIR / "conda_env/MLproject").read_text())
    assert set(spec) == {"name", "docker_env", "entry_points"}
    assert spec["entry_points"] == chapter6["entry_points"]
    image = spec["docker_env"]["image"]
    assert f"-t {image} ." in (DOCKER_PROJECT / "Dockerfile").read_text(), "how to build it"
    assert f"-t {image} ." in (DOCKER_PROJECT / "MLproject").read_text()
    # The image holds no code: MLflow 3 adds the project folder only with --build-image.
    assert "--build-image" in (DOCKER_PROJECT / "MLproject").read_text()
    for volume in spec["docker_env"]["volumes"]:
        name, target = volume.split(":", 1)
        assert re.fullmatch(r"[\w.-]+", name) and target.startswith("/"), "a named volume"
    for variable in spec["docker_env"]["environment"]:
        assert isinstance(variable, list) and len(variable) == 2, "[name, value] pairs"
    assert "-A env-file=credentials.env" in (DOCKER_PROJECT / "MLproject").read_text()
    assert (DOCKER_PROJECT / "train.py").read_text() == (REPO_DIR / "conda_env/train.py").read_text()


def test_mlflow_accepts_the_docker_project():
    from mlflow.projects._project_spec import load_project
    from mlflow.projects.docker import validate_docker_env

    project = load_project(str(DOCKER_PROJECT))
    validate_docker_env(project)
    assert project.docker_env["image"] == "wine-quality-train:3.17.2"
    assert project.get_entry_point("main").compute_command({"alpha": "0.5"}, None) == \
        "python train.py 0.5 0.1"


@pytest.mark.skipif(not COMPOSE.is_file(), reason="team_server/docker-compose.yml not written")
def test_compose_file_matches_the_compose_specification():
    check = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
                            str(COMPOSE)], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr


# The chapter itself (two passes, identical metrics: tests/test_notebooks.py) ---------------

@pytest.mark.slow
def test_the_docker_project_entry_command_finished_its_run(executed):
    result = executed(NOTEBOOK)
    client = result.client()
    run = client.get_run(result.first_runs(EXPERIMENT)["docker-entry"])
    assert run.info.status == "FINISHED"
    assert run.data.params == {"alpha": "0.5", "l1_ratio": "0.1"}
    assert {"rmse", "mae", "r2"} <= set(run.data.metrics)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    models = client.search_logged_models(experiment_ids=[experiment.experiment_id],
                                         filter_string=f"source_run_id = '{run.info.run_id}'")
    assert len(models) == 1
    assert client.get_experiment_by_name("path-trap") is None, "the trap used its own stores"


@pytest.mark.slow
def test_the_chapter_left_the_trap_and_the_server_stores(executed):
    work = executed(NOTEBOOK).scratch_dir / "10-containers"
    assert (work / "host-clone" / "mlflow.db").is_file()
    assert not (work / "container-work").exists(), "moved away: the recorded path is gone"
    assert (work / "server" / "mlflow.db").is_file() and (work / "server" / "artifacts").is_dir()
    assert (work / "serving-image" / "Dockerfile").is_file()


@pytest.mark.slow
def test_no_jupyter_or_mlflow_process_outlives_the_chapter(executed):
    scratch = executed(NOTEBOOK).scratch_dir
    left = []
    for process in psutil.process_iter(["cmdline", "cwd", "status"]):
        command = " ".join(process.info["cmdline"] or [])
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        inside = process.info["cwd"] and Path(process.info["cwd"]).is_relative_to(scratch)
        if ("jupyter" in command or "mlflow" in command) and (inside or str(scratch) in command):
            left.append(f"{process.pid}: {command}")
    assert left == []


@pytest.mark.slow
def test_outputs_hold_no_build_paths_and_no_token(executed):
    result = executed(NOTEBOOK)
    nb = nbformat.read(result.first_copy, as_version=4)
    texts = [output.get("text", "") + json.dumps(output.get("data", {}))
             for cell in nb.cells if cell.cell_type == "code" for output in cell.outputs]
    printed = "\n".join(texts)
    for build_path in (str(result.scratch_dir.parent), str(REPO_DIR)):
        assert build_path not in printed, f"a build path in the outputs: {build_path}"
    assert not re.search(r"\b[0-9a-f]{48}\b", printed), "a token (48 hex digits) was printed"
    assert "Traceback" not in printed


# The `docker run` command MLflow builds for the project (mlflow/projects/backend/local.py,
# _get_docker_command), with a stand-in for the image: no container engine needed. ------

SECRET = "a-password-that-must-not-reach-any-command-line"
IMAGE = SimpleNamespace(tags=["wine-quality-docker:0000000"])


def options(argv: list[str], flag: str) -> list[str]:
    """The values given after each `flag` in a command."""
    return [argv[i + 1] for i, token in enumerate(argv[:-1]) if token == flag]


def docker_command(tracking_uri: str, run, **arguments) -> list[str]:
    """MLflow's docker run command for the project, under tracking_uri."""
    from mlflow.projects.backend.local import _get_docker_command
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    spec = yaml.safe_load((DOCKER_PROJECT / "MLproject").read_text())["docker_env"]
    # MLflow's own context manager: afterwards, no URI is left set for the tests that follow.
    with _use_tracking_uri(tracking_uri):
        return _get_docker_command(IMAGE, run, volumes=spec["volumes"],
                                   user_env_vars=arguments.pop("env", spec["environment"]),
                                   **arguments)


@pytest.fixture
def credentials(monkeypatch):
    """A signed-in user's variables, and S3 keys, in this process's environment."""
    for name in ("MLFLOW_TRACKING_PASSWORD", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, SECRET)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")


def test_against_a_server_credentials_reach_the_container_by_name_only(credentials):
    run_id = "0" * 32
    run = SimpleNamespace(info=SimpleNamespace(
        run_id=run_id, experiment_id="1", artifact_uri=f"mlflow-artifacts:/1/{run_id}/artifacts"))
    server = "http://127.0.0.1:5000"
    argv = docker_command(server, run, docker_args={"network": "host",
                                                    "env-file": "credentials.env"})
    project_volumes = yaml.safe_load((DOCKER_PROJECT / "MLproject").read_text())[
        "docker_env"]["volumes"]
    assert options(argv, "-v") == project_volumes, "nothing of your disk is mounted"
    variables = dict(pair.split("=", 1) for pair in options(argv, "-e"))
    assert variables == {"MLFLOW_RUN_ID": run_id, "MLFLOW_TRACKING_URI": server,
                         "MLFLOW_EXPERIMENT_ID": "1",
                         "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    assert options(argv, "--env-file") == ["credentials.env"]
    # MLflow joins the tokens into one `bash -c` string: neither holds a secret or a user.
    command = " ".join(argv)
    assert SECRET not in command and "alice" not in command
    names = [line.strip() for line in (DOCKER_PROJECT / "credentials.env").read_text()
             .splitlines() if line.strip() and not line.startswith("#")]
    assert names == ["MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"], "names only"
    # With proxied artifacts MLflow copies no storage keys; for S3 artifacts it would put
    # them on the command line as values (_get_s3_artifact_cmd_and_envs).
    assert "AWS_SECRET_ACCESS_KEY" not in variables
    from mlflow.projects.backend.local import _get_s3_artifact_cmd_and_envs
    assert _get_s3_artifact_cmd_and_envs(None)[1]["AWS_SECRET_ACCESS_KEY"] == SECRET


def test_a_bare_name_under_environment_puts_its_value_on_the_command_line(credentials):
    run = SimpleNamespace(info=SimpleNamespace(
        run_id="0" * 32, experiment_id="1", artifact_uri="mlflow-artifacts:/1/x/artifacts"))
    argv = docker_command("http://127.0.0.1:5000", run, env=["MLFLOW_TRACKING_PASSWORD"])
    assert f"MLFLOW_TRACKING_PASSWORD={SECRET}" in options(argv, "-e"), (
        "MLflow copies the value itself: why credentials.env exists")


# A closer stand-in than a bare run: the entry command in a bubblewrap sandbox that gets only
# what MLflow's `docker run` command gives Docker (its mounts, its variables, the names of
# --env-file, the host network), as uid 1000 without capabilities, in a user namespace
# (Linux, run as root; bubblewrap is Debian's). -----------------------------------------

SANDBOX_TOOLS = sys.platform == "linux" and shutil.which("bwrap")


def sandboxed(argv: list[str], command: str, extra_env: dict[str, str]) -> list[str]:
    """The docker run argv as a bwrap command; this Python's files, read-only, are the image."""
    image_at = argv.index(IMAGE.tags[0])
    python_home = Path(sys.executable).resolve().parents[1]  # the interpreter's own prefix
    folders = {str(f): str(f) for f in ("/usr", "/etc", python_home, REPO_DIR)}
    # A file named by a variable (the data), at the path the variable gives, links or not.
    folders |= {str(Path(v).absolute().parent): str(Path(v).resolve().parent)
                for v in extra_env.values() if Path(v).is_file()}
    image = [arg for target, source in folders.items() if Path(source).is_dir()
             for arg in ("--ro-bind", source, target)]
    image += [arg for link in ("bin", "lib", "lib64", "sbin") if Path("/", link).is_symlink()
              for arg in ("--symlink", os.readlink(Path("/", link)), f"/{link}")]
    sandbox = ["bwrap", *image, "--dev", "/dev", "--proc", "/proc",
               "--tmpfs", "/tmp", "--dir", "/home/course",
               "--unshare-all", "--uid", "1000", "--gid", "1000", "--cap-drop", "ALL",
               "--die-with-parent",
               "--clearenv", "--setenv", "HOME", "/home/course",
               "--setenv", "PATH", f"{Path(sys.executable).parent}:/usr/bin:/bin"]
    options_at = iter(range(3, image_at))
    for i in options_at:
        flag, value = argv[i], argv[i + 1] if i + 1 < image_at else None
        if flag == "--network" and value == "host":
            sandbox.append("--share-net")
        elif flag == "-e":
            sandbox += ["--setenv", *value.split("=", 1)]
        elif flag == "--env-file":  # Docker copies each bare name's value from its own env
            for name in (DOCKER_PROJECT / value).read_text().split():
                if not name.startswith("#") and name in os.environ:
                    sandbox += ["--setenv", name, os.environ[name]]
        elif flag == "-v":
            source, target = value.rsplit(":", 1)
            sandbox += ["--dir", target] if re.fullmatch(r"[\w.-]+", source) else [
                "--bind", source, target]
        else:
            raise AssertionError(f"no stand-in for docker run {flag}")
        next(options_at, None)
    for name, value in extra_env.items():
        sandbox += ["--setenv", name, value]
    sandbox += ["--ro-bind", str(DOCKER_PROJECT), "/mlflow/projects/code",
                "--chdir", "/mlflow/projects/code", "sh", "-c", command]
    return sandbox


@pytest.mark.slow
def test_the_project_trains_in_a_sandbox_with_only_what_docker_would_get(tmp_path, credentials):
    if not SANDBOX_TOOLS or os.geteuid() != 0:
        assert not os.environ.get("CI"), "CI needs Debian's bubblewrap, and root"
        pytest.skip("needs Linux, bubblewrap and root")
    from mlflow import MlflowClient
    from mlops_course.data import PATH_ENV_VAR
    from mlops_course.servers import free_port, start

    port = free_port()
    server = start(f"mlflow server --backend-store-uri sqlite:///mlflow.db --serve-artifacts "
                   f"--artifacts-destination ./artifacts --host 127.0.0.1 --port {port} "
                   "--workers 1", f"http://127.0.0.1:{port}/health", cwd=tmp_path,
                   log_path=tmp_path / "server.log", timeout=300)
    try:
        client = MlflowClient(tracking_uri=server.origin)
        run = client.create_run(client.create_experiment("sandbox"))
        client.log_param(run.info.run_id, "alpha", "0.5")
        client.log_param(run.info.run_id, "l1_ratio", "0.1")
        argv = docker_command(server.origin, run, docker_args={"network": "host",
                                                               "env-file": "credentials.env"})
        # The credentials arrived by name; then the entry command, as in the container.
        command = '[ "$MLFLOW_TRACKING_PASSWORD" = "$EXPECTED" ] && python train.py 0.5 0.1'
        data = {name: os.environ[name] for name in (PATH_ENV_VAR, "PYTHONPATH")
                if os.environ.get(name)}  # the offline data, and this checkout's package
        trained = subprocess.run(sandboxed(argv, command, {"EXPECTED": SECRET, **data}),
                                 capture_output=True, text=True, timeout=600, check=False)
        assert trained.returncode == 0, trained.stderr[-3000:]
        assert client.get_run(run.info.run_id).info.status == "FINISHED"
        (model,) = client.search_logged_models(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"source_run_id = '{run.info.run_id}'")
        assert model.artifact_location.startswith("mlflow-artifacts:/")
        assert (tmp_path / "artifacts").is_dir(), "the server stored the model"
    finally:
        server.stop()
