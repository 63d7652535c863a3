"""The course's one data set: UCI red wine quality, from a path, a cache or the web."""

from __future__ import annotations

import io
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd

DATA_URL = (
    "https://archive.ics.uci.edu/ml/machine-learning-databases/"
    "wine-quality/winequality-red.csv"
)
PATH_ENV_VAR = "WINE_QUALITY_CSV"
CACHE_ENV_VAR = "MLOPS_COURSE_CACHE"
FILE_NAME = "winequality-red.csv"
FEATURES = [
    "fixed acidity", "volatile acidity", "citric acid", "residual sugar",
    "chlorides", "free sulfur dioxide", "total sulfur dioxide", "density",
    "pH", "sulphates", "alcohol",
]
TARGET = "quality"
ROWS = 1599


class WineDataError(RuntimeError):
    """The wine data could not be found, downloaded or read."""


def cache_path() -> Path:
    """Where a downloaded copy is kept: $MLOPS_COURSE_CACHE, else the user cache folder."""
    folder = os.environ.get(CACHE_ENV_VAR) or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    ) / "mlops-course"
    return Path(folder) / FILE_NAME


def parse_wine_csv(source: str | Path | io.BytesIO, origin: str) -> pd.DataFrame:
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
    if len(frame) != ROWS:
        raise WineDataError(
            f"{origin} has {len(frame)} rows, not {ROWS}: it is truncated or a different "
            "file. Delete it and load again."
        )
    return frame[FEATURES + [TARGET]]


def download(url: str, destination: Path, timeout: float = 30) -> pd.DataFrame:
    """Fetch the CSV from url, check it, and save it atomically at destination."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            payload = response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise WineDataError(
            f"No copy of the wine data was found and the download from {url} failed "
            f"({error}).\nFix it one of three ways:\n"
            f"  * set {PATH_ENV_VAR}=/path/to/{FILE_NAME} (or pass data_path=...),\n"
            f"  * copy the file to {destination},\n"
            "  * connect to the internet and run again."
        ) from error
    frame = parse_wine_csv(io.BytesIO(payload), f"The download from {url}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=destination.parent, delete=False) as partial:
        partial.write(payload)
    Path(partial.name).replace(destination)
    return frame


def load_wine_quality(path: str | Path | None = None, url: str = DATA_URL) -> pd.DataFrame:
    """Return the red wine data from path, $WINE_QUALITY_CSV, the cache, or a download."""
    explicit = path or os.environ.get(PATH_ENV_VAR)
    if explicit:
        if not Path(explicit).is_file():
            raise WineDataError(f"The wine data file {explicit} does not exist.")
        return parse_wine_csv(explicit, str(explicit))
    cached = cache_path()
    if cached.is_file():
        return parse_wine_csv(cached, f"The cached copy {cached}")
    return download(url, cached)
