"""Run every notebook in notebooks/ as a learner does, one after another, in book order.

Each runs where it lies, with `jupyter nbconvert --execute` (outputs go to a temporary
folder, not into the committed notebook), no parameters and no MLflow variables, so all
chapters share MLflow's default store in notebooks/, as on a learner's laptop. That catches
what the test run cannot: a chapter that relies on a fresh store (the test run gives each
notebook its own). It executes every notebook a third time, so it is not part of the test
run; run it before a release (about 8 minutes on 2 cores):

    .venv/bin/python tests/learner_run.py

It refuses to start when notebooks/ already holds git-ignored files (a store of your own),
deletes what the run wrote afterwards, and fails if git sees any other change.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO_DIR / "notebooks"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO_DIR, capture_output=True, text=True,
                          check=True).stdout


def main() -> int:
    if leftovers := git("clean", "-Xdn", "notebooks/"):
        print("notebooks/ holds files of an earlier run; move them away or delete them with\n"
              f"  git clean -Xdf notebooks/\n{leftovers}", file=sys.stderr)
        return 2
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLOPS_COURSE_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    failed = []
    with tempfile.TemporaryDirectory(prefix="learner-run-") as outputs:
        for notebook in sorted(NOTEBOOKS.glob("[0-9]*.ipynb")):
            started = time.perf_counter()
            run = subprocess.run(
                [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                 "--output-dir", outputs, "--ExecutePreprocessor.timeout=900", notebook.name],
                cwd=NOTEBOOKS, env=env, capture_output=True, text=True, check=False)
            seconds = time.perf_counter() - started
            print(f"{notebook.name:28} {'ok' if run.returncode == 0 else 'FAILED'}"
                  f" in {seconds:.0f} s", flush=True)
            if run.returncode != 0:
                failed.append(f"{notebook.name}:\n{run.stderr[-3000:]}")
    git("clean", "-Xdfq", "notebooks/")
    changed = git("status", "--porcelain")
    if changed:
        failed.append(f"the run changed files git does not ignore:\n{changed}")
    print("\n\n".join(failed) or "every notebook ran; git status is clean")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
