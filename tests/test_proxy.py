"""The TLS helper of chapter 13: a throw-away CA, a server certificate, Caddy in front."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from cryptography import x509

from mlops_course import proxy, servers


def need_caddy() -> None:
    """Skip (or, in CI, fail) when Caddy is missing."""
    if proxy.caddy_path() is None:
        message = "Caddy is not installed (Debian: apt-get install caddy)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; .ci/run must install it")
        pytest.skip(message)


def test_certificate_names_and_issuer(tmp_path):
    ca, ca_key = proxy.make_ca(tmp_path)
    cert, key = proxy.make_server_cert(ca, ca_key, ["mlflow.team.internal", "127.0.0.1"], tmp_path)
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    names = loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mlflow.team.internal"]
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert loaded.issuer == x509.load_pem_x509_certificate(ca.read_bytes()).subject
    if os.name != "nt":
        assert oct(key.stat().st_mode & 0o777) == "0o600" == oct(ca_key.stat().st_mode & 0o777)


def test_a_caddyfile_that_would_touch_the_trust_store_is_refused(tmp_path):
    need_caddy()
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text("{\n\tadmin off\n}\n")
    with pytest.raises(servers.ServerError, match="skip_install_trust"):
        proxy.start_caddy(caddyfile, "https://127.0.0.1:1/", tmp_path / "ca.pem")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """`mlflow server` (SQLite) behind Caddy with a notebook-style CA, both on 127.0.0.1."""
    need_caddy()
    folder = tmp_path_factory.mktemp("tls")
    ca, ca_key = proxy.make_ca(folder)
    proxy.make_server_cert(ca, ca_key, ["127.0.0.1"], folder)
    proxy_port, server_port = servers.free_port(), servers.free_port()
    (folder / "Caddyfile").write_text(
        "{\n\tadmin off\n\tauto_https off\n\tskip_install_trust\n}\n"
        f"https://127.0.0.1:{proxy_port} {{\n\tbind 127.0.0.1\n\ttls server.pem server-key.pem\n"
        f"\treverse_proxy 127.0.0.1:{server_port}\n}}\n")
    server = servers.start(
        f"mlflow server --backend-store-uri sqlite:///{(folder / 'mlflow.db').as_posix()} "
        f"--host 127.0.0.1 --port {server_port} --workers 1",
        f"http://127.0.0.1:{server_port}/health", timeout=240, cwd=folder,
        env=servers.environment(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"))
    caddy = proxy.start_caddy(folder / "Caddyfile", f"https://127.0.0.1:{proxy_port}/health", ca)
    yield f"https://127.0.0.1:{proxy_port}", proxy_port, ca
    caddy.stop()
    server.stop()
    assert not caddy.processes() + server.processes()


def client(uri: str, code: str, ca: Path | None = None) -> subprocess.CompletedProcess:
    """Run MLflow client code in a fresh Python against uri, trusting ca if given."""
    variables = servers.environment(MLFLOW_TRACKING_URI=uri, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    variables.pop("MLFLOW_TRACKING_SERVER_CERT_PATH", None)
    if ca:
        variables["MLFLOW_TRACKING_SERVER_CERT_PATH"] = str(ca)
    return subprocess.run([sys.executable, "-c", code], env=variables, capture_output=True,
                          text=True, timeout=300, check=False)


LOG_A_RUN = """
import mlflow
mlflow.set_experiment("tls")
with mlflow.start_run() as run:
    mlflow.log_metric("m", 1.5)
print(mlflow.get_run(run.info.run_id).data.metrics["m"])
"""


def test_the_proxy_answers_only_over_tls(tls_server):
    uri, port, ca = tls_server
    plain = requests.get(f"http://127.0.0.1:{port}/health", timeout=10)
    assert plain.status_code == 400 and "HTTPS" in plain.text
    assert requests.get(f"{uri}/health", verify=ca, timeout=10).text == "OK"


def test_a_client_with_the_ca_logs_a_run(tls_server):
    uri, _, ca = tls_server
    done = client(uri, LOG_A_RUN, ca)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "1.5"


def test_a_client_without_the_ca_is_refused_naming_the_certificate(tls_server):
    uri, _, _ = tls_server
    done = client(uri, LOG_A_RUN)
    assert done.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in done.stderr, done.stderr[-2000:]
