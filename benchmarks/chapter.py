"""Measure chapters alone: each notebook executed twice against one scratch store, one at a time.

The seconds are those the book build records (papermill's run, kernel start included), on
a machine doing nothing else; the build itself runs two notebooks at once.

Usage: python benchmarks/chapter.py 13_operating 14_tracing [--json results.json]
"""

import argparse
import json
import tempfile
from pathlib import Path

from mlops_course.execute import execute_notebook
from mlops_course.testing import notebook_path


def measure(name: str) -> list[float]:
    """Seconds of each of two passes of the notebook over one store."""
    with tempfile.TemporaryDirectory(prefix=f"chapter-{name}-") as work:
        store = Path(work, "store")
        return [round(execute_notebook(notebook_path(name), Path(work, f"pass{n}.ipynb"),
                                       scratch_dir=store), 1) for n in (1, 2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", help="names such as 13_operating")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    results = {}
    for name in args.notebooks:
        results[name] = measure(name)
        print(f"{name}: {results[name][0]} s, then {results[name][1]} s", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
