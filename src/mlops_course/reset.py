"""`mlops-course reset`: move a learner's MLflow store aside, into a dated backup folder.

Only the store moves (mlflow.db, mlruns/, mlartifacts/); every other file stays where it is.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

STORE = ("mlflow.db", "mlruns", "mlartifacts")  # MLflow's default local store and artifacts


def reset_store(folder: Path, now: datetime | None = None) -> tuple[Path | None, list[str]]:
    """Move the store in folder to folder/.backup-<date-time>/; (backup folder, names moved)."""
    present = [name for name in STORE if (folder / name).exists()]
    if not present:
        return None, []
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    backup = folder / f".backup-{stamp}"
    backup.mkdir()
    for name in present:
        shutil.move(folder / name, backup / name)
    return backup, present


def restore_hint(folder: Path, backup: Path, names: list[str]) -> str:
    """The commands that move the store back (POSIX and PowerShell)."""
    posix = " ".join(f'"{backup / name}"' for name in names)
    powershell = ", ".join(f'"{backup / name}"' for name in names)
    return (f"To get it back, remove the new store first, then:\n"
            f"  mv {posix} \"{folder}\"\n"
            f"  PowerShell: Move-Item {powershell} \"{folder}\"")
