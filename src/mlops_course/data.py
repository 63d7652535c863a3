"""The course's data: UCI wine quality (red, and white for drift and scale), from a path, a
cache or the web."""

from __future__ import annotations

import io
import os
import socket
import ssl
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd

BASE_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/wine-quality/"
DATA_URL = BASE_URL + "winequality-red.csv"
PATH_ENV_VAR = "WINE_QUALITY_CSV"  # the red file; the white one is looked for beside it
CACHE_ENV_VAR = "MLOPS_COURSE_CACHE"
FEATURES = [
    "fixed acidity", "volatile acidity", "citric acid", "residual sugar",
    "chlorides", "free sulfur dioxide", "total sulfur dioxide", "density",
    "pH", "sulphates", "alcohol",
]
TARGET = "quality"
ROWS_BY_COLOUR = {"red": 1599, "white": 4898}
ROWS = ROWS_BY_COLOUR["red"]


class WineDataError(RuntimeError):
    """The wine data could not be found, downloaded or read."""


def file_name(colour: str = "red") -> str:
    """The UCI file name of one colour: winequality-red.csv or winequality-white.csv."""
    if colour not in ROWS_BY_COLOUR:
        raise ValueError(f"colour must be one of {sorted(ROWS_BY_COLOUR)}, not {colour!r}")
    return f"winequality-{colour}.csv"


def cache_path(colour: str = "red") -> Path:
    """Where a downloaded copy is kept: $MLOPS_COURSE_CACHE, else the user cache folder."""
    folder = os.environ.get(CACHE_ENV_VAR) or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    ) / "mlops-course"
    return Path(folder) / file_name(colour)


def parse_wine_csv(source: str | Path | io.BytesIO, origin: str, rows: int = ROWS) -> pd.DataFrame:
    """Read the semicolon-separated file and check it is the whole, intact data set."""
    try:
        frame = pd.read_csv(source, sep=";")
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        raise WineDataError(f"{origin} is not a readable wine quality CSV: {error}") from error
    missing = [c for c in FEATURES + [TARGET] if c not in frame.columns]
    if missing:
        raise WineDataError(
            f"{origin} is not the wine quality CSV: columns {missing} are missing "
            f"(found {list(frame.columns)[:4]}...). Delete it and load again."
        )
    if frame.isna().any().any():
        raise WineDataError(
            f"{origin} has missing values, so it is probably truncated or corrupt. "
            "Delete it and load again."
        )
    if len(frame) != rows:
        raise WineDataError(
            f"{origin} has {len(frame)} rows, not {rows}: it is truncated or a different "
            "file. Delete it and load again."
        )
    return frame[FEATURES + [TARGET]]


def download_failure(error: OSError, url: str) -> tuple[str, str]:
    """Why a download failed, and what fixes it: certificates, a proxy, the network or the server."""
    reason = getattr(error, "reason", error)  # URLError wraps the cause
    host = urlsplit(url).hostname
    proxy = urllib.request.getproxies().get(urlsplit(url).scheme)
    if isinstance(error, urllib.error.HTTPError):
        return f"{host} answered {error.code} {error.reason}", "check the URL and run again"
    if isinstance(reason, ssl.SSLCertVerificationError):
        return (
            f"Python could not verify {host}'s certificate "
            f"(CERTIFICATE_VERIFY_FAILED: {reason.verify_message})",
            "with python.org's Python on macOS, run its `Install Certificates.command` "
            "(in /Applications/Python 3.x/); behind a proxy that inspects HTTPS, set "
            "SSL_CERT_FILE to the proxy's CA certificate; then run again",
        )
    if proxy and not urllib.request.proxy_bypass(host or ""):
        return (
            f"the request went through the proxy {proxy} and failed ({reason})",
            "check the proxy (HTTPS_PROXY, HTTP_PROXY) and run again",
        )
    if isinstance(reason, socket.gaierror):
        return (
            f"{host} could not be looked up ({reason}): you are offline, or your network "
            "needs a proxy",
            "connect to the internet (or set HTTPS_PROXY to your proxy) and run again",
        )
    if isinstance(reason, TimeoutError):
        return (
            f"{host} did not answer in time: the network is slow, or a firewall blocks it",
            "try again later, or on another network",
        )
    return str(reason), "connect to the internet and run again"


def download(url: str, destination: Path, rows: int = ROWS, timeout: float = 30) -> pd.DataFrame:
    """Fetch the CSV from url, check it, and save it atomically at destination."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            payload = response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        cause, fix = download_failure(error, url)
        raise WineDataError(
            f"No copy of the wine data was found and the download from {url} failed: "
            f"{cause}.\nFix it one of three ways:\n"
            f"  * set {PATH_ENV_VAR}=/path/to/winequality-red.csv, with "
            f"winequality-white.csv beside it (or pass the file's path),\n"
            f"  * copy the file to {destination},\n"
            f"  * {fix}."
        ) from error
    frame = parse_wine_csv(io.BytesIO(payload), f"The download from {url}", rows)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=destination.parent, delete=False) as partial:
        partial.write(payload)
    Path(partial.name).replace(destination)
    return frame


def load_wine_quality(
    path: str | Path | None = None, url: str | None = None, *, colour: str = "red"
) -> pd.DataFrame:
    """Return the red (or white) wine data from path, $WINE_QUALITY_CSV, the cache, or a
    download. $WINE_QUALITY_CSV names the red file; the white one is read from beside it."""
    name, rows = file_name(colour), ROWS_BY_COLOUR[colour]
    explicit = path or os.environ.get(PATH_ENV_VAR)
    if explicit and not path and colour != "red":
        explicit = Path(explicit).with_name(name)
    if explicit:
        if not Path(explicit).is_file():
            raise WineDataError(f"The wine data file {explicit} does not exist.")
        return parse_wine_csv(explicit, str(explicit), rows)
    cached = cache_path(colour)
    if cached.is_file():
        return parse_wine_csv(cached, f"The cached copy {cached}", rows)
    return download(url or BASE_URL + name, cached, rows)
