"""Measure the book build: cold, no change, prose edited, code edited, shared file changed.

A first cold build executes one notebook at a time: the sum of its per-notebook seconds is
the notebooks' own execution time, the yardstick for the (parallel) cold build.

Usage: python benchmarks/build.py [--notebook 03_tracking] [--shared pipeline/retrain.py]
                                 [--json results.json]

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


def edit_notebook(path: Path, cell_type: str) -> None:
    """Edit the first cell of a kind: a sentence in markdown, a comment in code."""
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == cell_type
                and "parameters" not in c.metadata.get("tags", []))
    cell.source += "\n\n(Edited by the benchmark.)" if cell_type == "markdown" else \
        "\n# edited by the benchmark"
    nbformat.write(nb, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebook", default="03_tracking", help="the one to change")
    parser.add_argument("--shared", default="pipeline/retrain.py",
                        help="a shared file one chapter uses, to change")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--no-serial", action="store_true",
                        help="skip the cold build one notebook at a time (the yardstick)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="book-benchmark-") as folder:
        copy = Path(folder)
        copy_repository(copy)
        notebook = copy / "notebooks" / f"{args.notebook}.ipynb"
        results = {}
        if not args.no_serial:
            results["cold, one at a time"] = build(copy / "book", workers=1)
            for generated in ("_build", "notebooks"):
                shutil.rmtree(copy / "book" / generated)
        results["cold"] = build(copy / "book")
        results["no change"] = build(copy / "book")
        edit_notebook(notebook, "markdown")
        results["prose edited in one notebook"] = build(copy / "book")
        edit_notebook(notebook, "code")
        results["code edited in one notebook"] = build(copy / "book")
        with open(copy / args.shared, "a") as shared:
            shared.write("\n# changed by the benchmark\n")
        results[f"{args.shared} changed"] = build(copy / "book")
    serial = results.get("cold, one at a time", results["cold"])  # seconds per notebook
    own = sum(serial["executed"].values())
    print(f"Book build benchmark on {os.cpu_count()} cores "
          f"({len(results['cold']['executed'])} notebooks)\n")
    print(f"{'build':<34}{'seconds':>9}  notebooks executed")
    for name, result in results.items():
        executed = sorted(Path(n).stem.split("_")[0] for n in result["executed"])
        print(f"{name:<34}{result['seconds']:>9.1f}  {len(executed)}: {' '.join(executed)}")
    what = "sum of seconds per notebook, two at a time" if args.no_serial else \
        "notebooks' own execution time (sum)"
    print(f"\n{what}: {own:.1f} s; cold build / that = {results['cold']['seconds'] / own:.2f}")
    print(f"\nseconds per notebook ({'two at a time' if args.no_serial else 'one at a time'}):")
    for name, seconds in sorted(serial["executed"].items()):
        print(f"  {name:<28}{seconds:>7.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
