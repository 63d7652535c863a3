"""The compose stack in team_server/ (static checks: no container engine runs in the build).

Least privilege, fail-closed secrets, the TLS proxy as the only way in, and a stack ready
for webhooks: what chapters 9 and 13 teach, checked in the files a team deploys.
"""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

from mlops_course.check import pinned_packages
from mlops_course.execute import REPO_DIR

STACK_DIR = REPO_DIR / "team_server"
COMPOSE_TEXT = (STACK_DIR / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
ROOT_STORAGE_VARIABLES = ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD")


def requirement_pins() -> dict[str, str]:
    """name -> version of each `name==version` line of requirements.txt (lowercase names)."""
    found = pinned_packages(REPO_DIR / "requirements.txt")
    return {name.lower(): version for name, version in found.items()}


def env_example() -> dict[str, str]:
    """Variable -> value of each assignment in .env.example."""
    lines = (STACK_DIR / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_compose_file_matches_the_compose_spec():
    check = subprocess.run(
        [str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema",
         "vendor.compose-spec", str(STACK_DIR / "docker-compose.yml")],
        capture_output=True, text=True, check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_compose_images_are_pinned_and_services_have_health_checks():
    assert {"proxy", "postgres", "minio", "create-bucket", "mlflow"} <= set(SERVICES)
    for name, service in SERVICES.items():
        image = service["image"]
        tag = image.split("@")[0].rsplit(":", 1)
        assert len(tag) == 2 and tag[1] not in ("latest", ""), f"{name}: pin {image}"
        assert re.fullmatch(r"[^:@]+:[^@]+(@sha256:[0-9a-f]{64})?", image), f"{name}: {image}"
    for name in ("postgres", "minio", "mlflow"):
        assert SERVICES[name]["healthcheck"]["test"], f"{name} needs a health check"
    assert "docker buildx imagetools inspect" in COMPOSE_TEXT, "the file says where digests come from"
    dockerfile = (STACK_DIR / "Dockerfile").read_text()
    pins = requirement_pins()
    assert f"ghcr.io/mlflow/mlflow:v{pins['mlflow']}" in dockerfile
    for package in ("psycopg", "boto3", "flask-wtf"):
        assert re.search(rf"{package}(\[binary\])?=={re.escape(pins[package])}", dockerfile,
                         flags=re.IGNORECASE), f"the image pins {package} as requirements.txt does"


def test_archived_minio_image_says_so():
    assert "no longer maintained" in COMPOSE_TEXT and "chapter 13" in COMPOSE_TEXT


def test_compose_data_lives_on_named_volumes():
    named = set(COMPOSE["volumes"])
    mounts = {name: [v.split(":")[0] for v in s.get("volumes", [])] for name, s in SERVICES.items()}
    assert "pgdata" in mounts["postgres"] and "miniodata" in mounts["minio"]
    assert "authdata" in mounts["mlflow"], "the auth database has a volume of its own to back up"
    used = {m for ms in mounts.values() for m in ms if not m.startswith(".")}
    assert used <= named, "every volume that is not a bind mount is declared"


def test_compose_creates_bucket_and_scoped_user_before_the_server_starts():
    script = " ".join(SERVICES["create-bucket"]["command"])
    assert "set -e" in script and "mc mb --ignore-existing team/mlflow" in script
    assert "mc admin policy create team mlflow-bucket /etc/mlflow/storage-policy.json" in script
    assert 'mc admin policy attach team mlflow-bucket --user "$$MLFLOW_S3_ACCESS_KEY"' in script
    depends = SERVICES["mlflow"]["depends_on"]
    assert depends["create-bucket"]["condition"] == "service_completed_successfully"
    assert depends["postgres"]["condition"] == "service_healthy"


def test_storage_policy_is_the_one_chapter_13_enforces():
    policy = json.loads((STACK_DIR / "storage-policy.json").read_text())
    resources = {r for s in policy["Statement"] for r in [s["Resource"]]}
    assert resources == {"arn:aws:s3:::mlflow", "arn:aws:s3:::mlflow/*"}, "one bucket only"
    assert all(s["Effect"] == "Allow" and "*" not in "".join(s["Action"])
               for s in policy["Statement"]), "named actions, no wildcards"
    nb = nbformat.read(REPO_DIR / "notebooks" / "13_operating.ipynb", as_version=4)
    cell = next(c.source for c in nb.cells if c.source.startswith("BUCKET_POLICY = "))
    assigned = ast.parse(cell).body[0]
    assert ast.literal_eval(assigned.value) == policy


def test_database_superuser_is_not_the_servers_role():
    postgres = SERVICES["postgres"]["environment"]
    assert postgres["POSTGRES_USER"] == "postgres"
    uri = SERVICES["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"]
    assert uri.startswith("postgresql+psycopg://mlflow:"), "the server logs in as role mlflow"
    assert "POSTGRES_SUPERUSER_PASSWORD" not in json.dumps(SERVICES["mlflow"])
    init = (STACK_DIR / "initdb" / "10-mlflow-role.sh").read_text()
    assert "CREATE ROLE mlflow LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE" in init
    assert "CREATE DATABASE mlflow OWNER mlflow" in init
    assert "REVOKE ALL ON DATABASE mlflow FROM PUBLIC" in init
    assert "./initdb:/docker-entrypoint-initdb.d:ro" in SERVICES["postgres"]["volumes"]


def test_no_root_storage_keys_in_the_servers_environment():
    server = json.dumps(SERVICES["mlflow"])
    for variable in ROOT_STORAGE_VARIABLES:
        assert variable not in server, f"{variable} must stay out of the server"
    env = SERVICES["mlflow"]["environment"]
    assert env["AWS_ACCESS_KEY_ID"].startswith("${MLFLOW_S3_ACCESS_KEY:?")
    assert env["AWS_SECRET_ACCESS_KEY"].startswith("${MLFLOW_S3_SECRET_KEY:?")


def test_server_is_reachable_only_through_the_tls_proxy():
    mlflow = SERVICES["mlflow"]
    assert "ports" not in mlflow, "the server publishes no port"
    command = " ".join(mlflow["command"])
    for option in ("--app-name=basic-auth", "--artifacts-destination=s3://mlflow/artifacts",
                   "--allowed-hosts=${MLFLOW_PUBLIC_HOST:?",
                   "--cors-allowed-origins=https://${MLFLOW_PUBLIC_HOST:?"):
        assert option in command, option
    proxy = SERVICES["proxy"]
    assert proxy["ports"] == ["${MLFLOW_PROXY_BIND:-127.0.0.1}:443:443"], "TLS only, local by default"
    caddyfile = (STACK_DIR / "Caddyfile").read_text()
    assert "https://{$MLFLOW_PUBLIC_HOST}" in caddyfile and "reverse_proxy mlflow:5000" in caddyfile
    assert "skip_install_trust" in caddyfile and "admin off" in caddyfile
    assert "tls/*.pem" in (STACK_DIR / ".gitignore").read_text().split()


def test_a_rooms_server_needs_only_two_optional_settings():
    command = " ".join(SERVICES["mlflow"]["command"])
    assert "--workers=${MLFLOW_WORKERS:-2}" in command
    assert SERVICES["proxy"]["ports"] == ["${MLFLOW_PROXY_BIND:-127.0.0.1}:443:443"]
    example = (STACK_DIR / ".env.example").read_text().splitlines()
    assert {"# MLFLOW_PROXY_BIND=", "# MLFLOW_WORKERS="} <= set(example), "documented, unset"


def test_webhook_encryption_key_is_shared_by_every_worker():
    env = SERVICES["mlflow"]["environment"]
    assert env["MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"].startswith(
        "${MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY:?")
    assert "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY" in env_example()
    assert "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS" not in COMPOSE_TEXT, "SSRF protection stays on"


def test_every_secret_comes_from_an_empty_placeholder_that_stops_compose():
    example = env_example()
    assert example and all(value == "" for value in example.values()), (
        "placeholders must be empty, so that a forgotten one cannot become a password")
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE_TEXT))
    assert required == set(example), "each variable of .env.example is required by compose"
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if re.search("PASSWORD|SECRET|KEY", key):
                assert re.fullmatch(r"\$\{\w+:\?[^}]*\}", str(value)), f"{name}.{key}"
    assert ".env" in (STACK_DIR / ".gitignore").read_text().split()
    assert not (STACK_DIR / ".env").exists() or ".env" in subprocess.run(
        ["git", "check-ignore", ".env"], cwd=STACK_DIR, capture_output=True, text=True, check=False).stdout



def test_chapter_13s_compose_commands_match_the_stack():
    nb = nbformat.read(REPO_DIR / "notebooks" / "13_operating.ipynb", as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    commands = [" ".join(line.split()) for line in text.replace("\\\n", " ").splitlines()
                if line.startswith("docker compose ")]
    wanted = ("exec -T postgres pg_dump -U postgres", "exec -T postgres pg_restore -U mlflow",
              "run --rm mlflow sh -c 'mlflow db upgrade \"$MLFLOW_BACKEND_STORE_URI\"'",
              "/var/lib/mlflow-auth/basic_auth.db", "stop mlflow", "up -d --wait")
    for part in wanted:
        assert any(part in command for command in commands), part
    for command in commands:
        words = command.split()
        if words[2] in ("exec", "run", "stop"):
            service = next(w for w in words[3:] if not w.startswith("-") and w not in
                           ("--rm", "sh") and "/" not in w and ":" not in w)
            assert service in SERVICES, command
    assert "MLFLOW_BACKEND_STORE_URI" in SERVICES["mlflow"]["environment"]
    assert "authdata:/var/lib/mlflow-auth" in SERVICES["mlflow"]["volumes"]
    auth_ini = (STACK_DIR / "basic_auth.ini").read_text()
    assert "sqlite:////var/lib/mlflow-auth/basic_auth.db" in auth_ini
