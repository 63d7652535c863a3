"""The data loader: explicit path, environment variable, cache, download, and clear errors."""

import datetime
import http.server
import os
import shutil
import socket
import ssl
import threading
import urllib.request
from pathlib import Path

import pytest

from mlops_course.data import (
    CACHE_ENV_VAR, PATH_ENV_VAR, ROWS, ROWS_BY_COLOUR, TARGET, WineDataError, cache_path,
    download, load_wine_quality,
)


@pytest.fixture
def real_csv() -> Path:
    """The offline copy of the data set the tests run against."""
    path = Path(os.environ[PATH_ENV_VAR])
    assert path.is_file(), f"{PATH_ENV_VAR} should point at winequality-red.csv"
    return path


@pytest.fixture
def no_copy(monkeypatch, tmp_path) -> Path:
    """No explicit path and an empty cache folder; returns where the cache file would go."""
    monkeypatch.delenv(PATH_ENV_VAR, raising=False)
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "cache"))
    return cache_path()


@pytest.fixture
def http_server(tmp_path):
    """A static file server on 127.0.0.1 serving tmp_path/www; yields its base URL."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: a download that fails at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/winequality-red.csv"


def test_explicit_path_argument(real_csv, monkeypatch):
    monkeypatch.delenv(PATH_ENV_VAR)
    wine = load_wine_quality(real_csv)
    assert wine.shape == (ROWS, 12)
    assert round(wine[TARGET].mean(), 3) == 5.636
    assert round(wine["alcohol"].mean(), 3) == 10.423


def test_environment_variable(real_csv):
    assert load_wine_quality().shape == (ROWS, 12)


def test_explicit_path_that_does_not_exist(tmp_path):
    with pytest.raises(WineDataError, match="does not exist"):
        load_wine_quality(tmp_path / "missing.csv")


def test_cache_is_read_without_a_download(real_csv, no_copy):
    no_copy.parent.mkdir(parents=True)
    shutil.copy(real_csv, no_copy)
    assert load_wine_quality(url=closed_port_url()).shape == (ROWS, 12)


def test_download_fills_the_cache(real_csv, no_copy, http_server):
    root, base_url = http_server
    shutil.copy(real_csv, root / "winequality-red.csv")
    wine = load_wine_quality(url=f"{base_url}/winequality-red.csv")
    assert wine.shape == (ROWS, 12)
    assert no_copy.read_bytes() == real_csv.read_bytes()
    (root / "winequality-red.csv").unlink()
    assert load_wine_quality(url=closed_port_url()).equals(wine), "second load uses the cache"


def test_offline_without_a_copy_says_what_to_do(no_copy):
    with pytest.raises(WineDataError) as error:
        load_wine_quality(url=closed_port_url())
    message = str(error.value)
    assert PATH_ENV_VAR in message and str(no_copy) in message and "internet" in message
    assert "Connection refused" in message or "10061" in message, "the real cause is named"
    assert not no_copy.exists()


@pytest.fixture
def no_proxy(monkeypatch):
    """No proxy variables, whatever the machine sets."""
    for name in ["http_proxy", "https_proxy", "all_proxy", "no_proxy"]:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no authority signed, and its key (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert, key_file = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert, key_file


def test_a_certificate_failure_is_named_with_its_fix(real_csv, no_copy, http_server, no_proxy):
    root, base_url = http_server
    shutil.copy(real_csv, root / "winequality-red.csv")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed_certificate(no_copy.parent.parent))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(WineDataError) as error:
            load_wine_quality(url=f"https://127.0.0.1:{server.server_port}/winequality-red.csv")
    finally:
        server.shutdown()
        server.server_close()
    message = str(error.value)
    assert "CERTIFICATE_VERIFY_FAILED" in message and "Install Certificates.command" in message
    assert "SSL_CERT_FILE" in message and "offline" not in message
    assert not no_copy.exists()


def test_a_failing_proxy_is_named(no_copy, no_proxy, monkeypatch):
    proxy = closed_port_url().rsplit("/", 1)[0]
    monkeypatch.setenv("HTTP_PROXY", proxy)
    urllib.request.install_opener(None)  # urlopen reads the proxy variables again
    try:
        with pytest.raises(WineDataError, match=f"(?s)through the proxy {proxy}.*HTTPS_PROXY"):
            load_wine_quality(url="http://archive.ics.uci.edu/winequality-red.csv")
    finally:
        urllib.request.install_opener(None)  # ... and forgets this one


def test_a_name_that_cannot_be_looked_up_means_offline_or_a_proxy(no_copy, no_proxy,
                                                                   monkeypatch):
    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(WineDataError, match="(?s)could not be looked up.*offline.*proxy"):
        load_wine_quality(url="https://archive.ics.uci.edu/winequality-red.csv")


def test_a_server_that_never_answers_is_named(tmp_path, no_proxy):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/winequality-red.csv"
        with pytest.raises(WineDataError, match="did not answer in time"):
            download(url, tmp_path / "winequality-red.csv", timeout=0.5)


def test_missing_file_on_the_server(no_copy, http_server):
    _, base_url = http_server
    with pytest.raises(WineDataError, match="download .* failed"):
        load_wine_quality(url=f"{base_url}/winequality-red.csv")


def test_corrupt_download_is_refused_and_not_cached(real_csv, no_copy, http_server):
    root, base_url = http_server
    (root / "winequality-red.csv").write_bytes(real_csv.read_bytes()[:5000])
    with pytest.raises(WineDataError, match="truncated"):
        load_wine_quality(url=f"{base_url}/winequality-red.csv")
    assert not no_copy.exists()


@pytest.mark.parametrize(
    "damage, phrase",
    [
        (lambda data: data[: len(data) // 2], "truncated"),  # cut in the middle of a line
        (lambda data: data[: data.index(b"\n", 20000) + 1], "rows"),  # cut at a line end
        (lambda data: data.replace(b";", b","), "columns"),  # wrong separator
        (lambda data: b"\x00\xff" * 500, "not"),  # not a CSV at all
        (lambda data: b"", "not a readable"),  # empty file
    ],
    ids=["cut-mid-line", "cut-at-line-end", "comma-separated", "binary", "empty"],
)
def test_damaged_file_gives_a_clear_error(real_csv, tmp_path, damage, phrase):
    damaged = tmp_path / "winequality-red.csv"
    damaged.write_bytes(damage(real_csv.read_bytes()))
    with pytest.raises(WineDataError, match=phrase) as error:
        load_wine_quality(damaged)
    assert str(damaged) in str(error.value)


def test_damaged_cache_names_the_file_to_delete(real_csv, no_copy):
    no_copy.parent.mkdir(parents=True)
    no_copy.write_bytes(real_csv.read_bytes()[:3000])
    with pytest.raises(WineDataError, match="Delete it") as error:
        load_wine_quality(url=closed_port_url())
    assert str(no_copy) in str(error.value)


def test_white_wine_is_read_from_beside_the_red_file(real_csv):
    white = load_wine_quality(colour="white")
    assert white.shape == (ROWS_BY_COLOUR["white"], 12)
    assert list(white.columns) == list(load_wine_quality().columns)


def test_white_wine_missing_beside_the_red_file(real_csv, tmp_path, monkeypatch):
    lonely = tmp_path / "winequality-red.csv"
    shutil.copy(real_csv, lonely)
    monkeypatch.setenv(PATH_ENV_VAR, str(lonely))
    with pytest.raises(WineDataError, match="winequality-white.csv does not exist"):
        load_wine_quality(colour="white")


def test_white_wine_download_fills_its_own_cache(real_csv, no_copy, http_server):
    root, base_url = http_server
    shutil.copy(real_csv.with_name("winequality-white.csv"), root / "winequality-white.csv")
    white = load_wine_quality(url=f"{base_url}/winequality-white.csv", colour="white")
    assert white.shape == (ROWS_BY_COLOUR["white"], 12)
    assert cache_path("white").is_file() and not no_copy.exists()


def test_unknown_colour_is_refused():
    with pytest.raises(ValueError, match="rosé"):
        load_wine_quality(colour="rosé")
