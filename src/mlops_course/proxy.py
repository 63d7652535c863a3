"""TLS for the team server chapter: a throw-away certificate authority and a Caddy proxy.

The CA and the server certificate are made with `cryptography` (installed with MLflow);
Caddy (Debian's `caddy` package, or any on PATH) terminates TLS on 127.0.0.1.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
from pathlib import Path
from unittest import mock

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mlops_course import servers

VALID_DAYS = 7  # throw-away certificates: a week is plenty


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def make_ca(folder: Path, name: str = "Team server CA") -> tuple[Path, Path]:
    """A self-signed CA in folder: (ca.pem, ca-key.pem). The .pem is what clients trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    ca_path, key_path = folder / "ca.pem", folder / "ca-key.pem"
    ca_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return ca_path, key_path


def make_server_cert(ca_path: Path, ca_key_path: Path, names: list[str],
                     folder: Path) -> tuple[Path, Path]:
    """A server certificate for names (DNS names or IP addresses), signed by the CA:
    (server.pem, server-key.pem) in folder."""
    ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())

    def san(name: str) -> x509.GeneralName:
        try:
            return x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            return x509.DNSName(name)

    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(names[0])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName([san(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = folder / "server.pem", folder / "server-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return cert_path, key_path


def caddy_path() -> str | None:
    """Where the `caddy` program is, or None."""
    return shutil.which("caddy")


def start_caddy(caddyfile: Path, url: str, ca_path: Path, timeout: float = 60) -> servers.Server:
    """`caddy run` with caddyfile; returns once url answers over TLS to a client trusting ca_path.

    Caddy runs in caddyfile's folder (relative paths start there) and keeps its state
    (autosave, certificate cache) in it, not in your home folder.
    """
    if caddy_path() is None:
        raise servers.ServerError(
            "Caddy is not installed. Install it (Debian/Ubuntu: apt-get install caddy; macOS: "
            "brew install caddy; Windows: winget install CaddyServer.Caddy) and run this again."
        )
    if "skip_install_trust" not in caddyfile.read_text():
        raise servers.ServerError(
            f"{caddyfile.name} lacks the global option `skip_install_trust`: without it Caddy "
            "installs its own root certificate into this machine's trust store."
        )
    state = caddyfile.parent / "caddy-state"
    env = servers.environment(XDG_DATA_HOME=str(state), XDG_CONFIG_HOME=str(state),
                              HOME=str(state))
    command = f"caddy run --adapter caddyfile --config {caddyfile.as_posix()}"
    # servers.start polls url with requests, which trusts REQUESTS_CA_BUNDLE.
    with mock.patch.dict(os.environ, {"REQUESTS_CA_BUNDLE": str(ca_path)}):
        return servers.start(command, url, env=env, timeout=timeout, cwd=caddyfile.parent,
                             log_path=caddyfile.parent / "caddy.log", status=None)
