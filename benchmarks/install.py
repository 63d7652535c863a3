"""Measure a learner's install: packages, download size, installed size and install time.

For each requirements file (by default the learner environment, requirements.txt, and the
whole development environment, requirements-dev.txt), pip resolves it as for a fresh
machine, and the files it would download are summed; then a new virtual environment
installs it, timed. --before REV measures the files as they were at a git revision too
(e.g. the commit before the requirements split), from a copy of the repository.

Usage: python benchmarks/install.py [--requirements requirements.txt ...] [--before REV]
                                    [--json results.json]

pip downloads from wherever it is configured to (PyPI, or a local wheelhouse), without its
cache: the install time includes the downloads, so it depends on the network as much as on
the machine.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlsplit

import requests

REPO = Path(__file__).resolve().parents[1]


def download_bytes(url: str) -> int | None:
    """Size of a file pip would fetch (a local wheelhouse's, or what its index says), or None."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        return Path(unquote(parts.path)).stat().st_size
    length = requests.head(url, allow_redirects=True, timeout=30).headers.get("Content-Length")
    return int(length) if length else None


def resolve(requirements: Path, folder: Path) -> dict:
    """What pip would install on a fresh machine: package count and download size (MB)."""
    report = folder / "report.json"
    subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet",
                    "--ignore-installed", "--report", str(report), "-r", requirements.name],
                   cwd=requirements.parent, check=True)
    installs = json.loads(report.read_text())["install"]
    with ThreadPoolExecutor(max_workers=8) as pool:  # one request per file: at once
        sizes = list(pool.map(download_bytes, [i["download_info"]["url"] for i in installs]))
    known = [size for size in sizes if size is not None]
    return {"packages": len(installs), "download_mb": round(sum(known) / 1e6, 1),
            "sizes_unknown": len(sizes) - len(known)}


def folder_mb(folder: Path) -> float:
    return round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6, 1)


def install(requirements: Path, folder: Path) -> dict:
    """Install into a new virtual environment: seconds and installed size (MB)."""
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    started = time.perf_counter()
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-cache-dir", "-r",
                    requirements.name],
                   cwd=requirements.parent, check=True)
    seconds = time.perf_counter() - started
    return {"install_seconds": round(seconds, 1), "installed_mb": folder_mb(venv)}


def measure(requirements: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="install-benchmark-") as work:
        return {**resolve(requirements, Path(work)), **install(requirements, Path(work))}


def checkout(revision: str, destination: Path) -> Path:
    """A copy of the repository's files at revision (for its requirements and package)."""
    archive = subprocess.run(["git", "archive", revision], cwd=REPO, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(destination)], input=archive, check=True)
    return destination


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requirements", nargs="+",
                        default=["requirements.txt", "requirements-dev.txt"])
    parser.add_argument("--before", metavar="REV", help="also measure them at this revision")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    results = {}
    sources = [("now", REPO)]
    with tempfile.TemporaryDirectory(prefix="install-before-") as before:
        if args.before:
            sources.append((args.before, checkout(args.before, Path(before))))
        for label, root in sources:
            for name in args.requirements:
                if (root / name).is_file():
                    results[f"{name} ({label})"] = figures = measure(root / name)
                    print(f"{name} ({label}): {figures}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
