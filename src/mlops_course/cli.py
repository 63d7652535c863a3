"""The `mlops-course` command: `check` a machine before the day, `reset` a learner's store,
and, for a facilitator, a room's accounts (`roster`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlops_course import roster
from mlops_course.check import CHAPTERS, ready, report, run_checks
from mlops_course.execute import REPO_DIR
from mlops_course.reset import reset_store, restore_hint


def check(args: argparse.Namespace) -> int:
    """Print one line per check; 0 only when everything asked for is ready."""
    results = run_checks(args.chapter)
    for result in results:
        print(result.line())
    scope = f"chapter {args.chapter}" if args.chapter else "the whole course"
    is_ready = ready(results)
    print(f"{'Ready' if is_ready else 'Not ready'} for {scope}.")
    if args.report:
        run_id = report(results, args.report, args.name)
        print(f"Reported to {args.report} (experiment 00-readiness, run {run_id}).")
    return 0 if is_ready else 1


def default_store_folder() -> Path:
    """The current folder if it holds a store, else the course's notebooks/ folder."""
    here = Path.cwd()
    return here if (here / "mlflow.db").exists() or (here / "mlruns").exists() else (
        REPO_DIR / "notebooks")


def reset(args: argparse.Namespace) -> int:
    """Move the store aside and say how to get it back."""
    folder = Path(args.folder) if args.folder else default_store_folder()
    backup, moved = reset_store(folder)
    if backup is None:
        print(f"No MLflow store in {folder}: nothing to move.")
        return 0
    print(f"Moved {', '.join(moved)} from {folder} to {backup}. Other files are untouched.")
    print(restore_hint(folder, backup, moved))
    return 0


def accounts(args: argparse.Namespace) -> int:
    """Create, reset or remove learners' accounts; passwords appear only on the cards."""
    if args.action == "create":
        cards, existing = roster.create(args.server, roster.read_roster(Path(args.target)))
        print("".join(card.text() for card in cards), end="")
        print(f"Created {len(cards)} accounts on {args.server}.")
        if existing:
            print(f"Already there, left as they are: {', '.join(existing)} "
                  "(`roster reset NAME` gives a new password).")
    elif args.action == "reset":
        print(roster.reset(args.server, args.target).text(), end="")
    else:
        roster.remove(args.server, args.target)
        print(f"Removed {args.target} from {args.server}: their password is refused now.")
    return 0


def parser() -> argparse.ArgumentParser:
    """The command line."""
    import getpass

    top = argparse.ArgumentParser(prog="mlops-course", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)
    checking = commands.add_parser("check", help="is this machine ready for the course?")
    checking.add_argument("--chapter", type=int, choices=CHAPTERS, metavar="N",
                          help="check only what chapter N needs (1-14)")
    checking.add_argument("--report", metavar="URL",
                          help="log the result as a run on the room's tracking server")
    checking.add_argument("--name", default=getpass.getuser(),
                          help="the run's name with --report (default: your login)")
    checking.set_defaults(handler=check)
    resetting = commands.add_parser("reset", help="move your MLflow store to a backup folder")
    resetting.add_argument("--folder", help="where the store is (default: notebooks/)")
    resetting.set_defaults(handler=reset)
    room = commands.add_parser("roster", help="learners' accounts on the room's server "
                               "(as its admin: MLFLOW_TRACKING_USERNAME/PASSWORD)")
    room.add_argument("action", choices=["create", "reset", "remove"])
    room.add_argument("target", help="create: a CSV with a username column; else a username")
    room.add_argument("--server", required=True, metavar="URL", help="the room's server")
    room.set_defaults(handler=accounts)
    return top


def main(argv: list[str] | None = None) -> int:
    """Run the command; its exit code."""
    args = parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
