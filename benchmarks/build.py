"""Measure the book build: cold, no change, one notebook changed. Prints a table.

A first cold build executes one notebook at a time: the sum of its per-notebook seconds is
the notebooks' own execution time, the yardstick for the (parallel) cold build.

Usage: python benchmarks/build.py [--notebook 03_tracking] [--json results.json]

Works on a copy of the repository in a temporary folder, so the checkout is untouched.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"


def copy_repository(destination: Path) -> None:
    """Copy the files git knows about (committed or not ignored), as they are now."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, destination / name)


def build(book: Path, workers: int | None = None) -> dict:
    """One `jupyter-book build -W`: wall seconds, notebooks executed, seconds per notebook."""
    env = {**os.environ, **({"MLOPS_COURSE_WORKERS": str(workers)} if workers else {})}
    started = time.perf_counter()
    run = subprocess.run([str(JUPYTER_BOOK), "build", str(book), "-W"],
                         capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        sys.exit(f"build failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    executed = dict(re.findall(r"executed (\S+\.ipynb) in ([\d.]+) s", run.stdout))
    return {"seconds": round(seconds, 1),
            "executed": {name: float(s) for name, s in executed.items()}}


def change_one_notebook(path: Path) -> None:
    """Edit one markdown cell, as an author fixing a sentence would."""
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "markdown")
    cell.source += "\n\n(Edited by the benchmark.)"
    nbformat.write(nb, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", default="03_tracking", help="the one to change")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="book-benchmark-") as folder:
        copy = Path(folder)
        copy_repository(copy)
        results = {"cold, one at a time": build(copy / "book", workers=1)}
        for generated in ("_build", "notebooks"):
            shutil.rmtree(copy / "book" / generated)
        results["cold"] = build(copy / "book")
        results["no change"] = build(copy / "book")
        change_one_notebook(copy / "notebooks" / f"{args.notebook}.ipynb")
        results["one notebook changed"] = build(copy / "book")
    own = sum(results["cold, one at a time"]["executed"].values())
    print(f"Book build benchmark on {os.cpu_count()} cores "
          f"({len(results['cold']['executed'])} notebooks)\n")
    print(f"{'build':<22}{'seconds':>9}{'executed':>10}")
    for name, result in results.items():
        print(f"{name:<22}{result['seconds']:>9.1f}{len(result['executed']):>10}")
    print(f"\nnotebooks' own execution time (sum): {own:.1f} s; "
          f"cold build / that = {results['cold']['seconds'] / own:.2f}")
    print("\nseconds per notebook (executed one at a time):")
    for name, seconds in sorted(results["cold, one at a time"]["executed"].items()):
        print(f"  {name:<28}{seconds:>7.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
