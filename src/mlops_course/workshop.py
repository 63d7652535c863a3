"""The workshop guide's minutes and timetables, computed from the notebooks and the build.

Each chapter's time is read from what a room does with it: a short talk per section,
reading the prose, reading and running each code cell a learner sees, waiting for the
notebook's own execution time (from the build's executed copy), and the exercises.
The rates are for a mixed room; the build prints the result into the guide.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import nbformat

from mlops_course.execute import METADATA_KEY

WORDS_PER_MINUTE = 150  # technical prose on a screen, with the code beside it
MINUTES_PER_CELL = 0.5  # read a cell, run it, look at what it printed
MINUTES_PER_EXERCISE = 5  # try it, then open the solution together
TALK_MINUTES_PER_SECTION = 1  # the facilitator's few words before each "##" section
HIDDEN = {"remove-cell", "remove-input"}
EXERCISE = re.compile(r"```\{exercise\}.*?```|```\{solution-start\}.*?```\{solution-end\}\n```",
                      re.DOTALL)
FIRST_HEADING = re.compile(r"^# (.+)$", re.MULTILINE)

DAY_START, DAY_END = "09:00", "17:00"
BREAKS = (("10:30", 15, "Break"), ("12:30", 60, "Lunch"), ("15:00", 15, "Break"))


@dataclass(frozen=True)
class Plan:
    """One chapter's minutes in the room."""

    number: int
    title: str
    talk: int
    reading: int
    doing: int
    exercises: int
    exercise_count: int

    @property
    def total(self) -> int:
        """Rounded up to the next five minutes, as a timetable needs."""
        return 5 * math.ceil((self.talk + self.reading + self.doing + self.exercises) / 5)


def plan_of(notebook: Path, seconds: float) -> Plan:
    """The minutes a mixed room needs for a chapter whose notebook runs in `seconds`."""
    nb = nbformat.read(notebook, as_version=4)
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    exercises = len(re.findall(r"```\{exercise\}", prose))
    reading_words = len(EXERCISE.sub(" ", prose).split())
    sections = len(re.findall(r"^## ", prose, re.MULTILINE))
    shown = [c for c in nb.cells if c.cell_type == "code"
             and not HIDDEN & set(c.metadata.get("tags", []))
             and "parameters" not in c.metadata.get("tags", [])]
    title = FIRST_HEADING.search(prose)
    return Plan(
        number=int(notebook.name[:2]),
        title=title.group(1).strip() if title else notebook.stem,
        talk=max(5, TALK_MINUTES_PER_SECTION * sections),
        reading=math.ceil(reading_words / WORDS_PER_MINUTE),
        doing=math.ceil(len(shown) * MINUTES_PER_CELL + seconds / 60),
        exercises=MINUTES_PER_EXERCISE * exercises,
        exercise_count=exercises,
    )


def build_seconds(executed: Path) -> float:
    """How long the build took to execute a notebook (its executed copy's metadata); 0 if unknown."""
    if not executed.is_file():
        return 0.0
    info = nbformat.read(executed, as_version=4).metadata.get(METADATA_KEY, {})
    return float(info.get("seconds") or 0)


def minutes_table(plans: list[Plan]) -> str:
    """The guide's per-chapter table: talk, reading, doing, exercises, total."""
    rows = [f"| {p.number} {p.title} | {p.talk} | {p.reading} | {p.doing} | {p.exercises} "
            f"| **{p.total}** |" for p in plans]
    return "\n".join([
        "| Chapter | Talk | Reading | Doing | Exercises | Minutes |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        f"| All {len(plans)} chapters | | | | | **{sum(p.total for p in plans)}** |",
    ])


def _clock(text: str) -> datetime:
    return datetime.strptime(text, "%H:%M")


def timetable(plans: list[Plan], days: int) -> tuple[list[list[tuple[str, str]]], list[Plan]]:
    """`days` of (start time, what) rows, and the chapters left for self-study.

    Chapters run in order, each with one exercise in the room (the others are homework);
    a break comes before a chapter that would otherwise run more than half past its time;
    a chapter that would end after DAY_END starts the next day.
    """
    schedule: list[list[tuple[str, str]]] = []
    pending = list(plans)
    while pending and len(schedule) < days:
        now, day, breaks = _clock(DAY_START), [], list(BREAKS)
        while pending:
            plan = pending[0]
            minutes = plan.total - MINUTES_PER_EXERCISE * max(0, plan.exercise_count - 1)
            half = timedelta(minutes=minutes / 2)
            due = [b for b in breaks if now + half > _clock(b[0])]
            start = now + timedelta(minutes=sum(length for _, length, _ in due))
            if day and start + timedelta(minutes=minutes) > _clock(DAY_END):
                break
            for taken in due:
                day.append((now.strftime("%H:%M"), taken[2]))
                now += timedelta(minutes=taken[1])
                breaks.remove(taken)
            day.append((now.strftime("%H:%M"), f"{plan.number} {plan.title} ({minutes} min)"))
            now += timedelta(minutes=minutes)
            pending.pop(0)
        day.append((now.strftime("%H:%M"), "End"))
        schedule.append(day)
    return schedule, pending


def timetable_markdown(schedule: list[list[tuple[str, str]]], left: list[Plan]) -> str:
    """One table per day, then what is left for self-study."""
    parts = []
    for number, day in enumerate(schedule, start=1):
        parts += [f"**Day {number}**", "", "| Time | |", "| --- | --- |",
                  *(f"| {at} | {what} |" for at, what in day), ""]
    if left:
        names = "; ".join(f"{p.number} {p.title}" for p in left)
        parts += [f"Left for self-study after the workshop: {names}.", ""]
    return "\n".join(parts)


def guide_fragment(notebooks: list[Path], executed_dir: Path) -> str:
    """The part of the workshop guide the build writes: the minutes and two timetables."""
    plans = [plan_of(nb, build_seconds(executed_dir / nb.name)) for nb in notebooks]
    return "\n".join([
        "<!-- Written by the book build (mlops_course.workshop): edit the notebooks, not this. -->",
        "",
        (f"Computed by the build from each notebook: {TALK_MINUTES_PER_SECTION} minute of talk "
        f"per section (at least 5), reading at {WORDS_PER_MINUTE} words a minute, "
        f"{MINUTES_PER_CELL} of a minute for each code cell a learner reads and runs plus the "
        f"notebook's own execution time in this build, and {MINUTES_PER_EXERCISE} minutes per "
        "exercise; each total rounded up to five minutes. In the timetables each chapter "
        "keeps one exercise in the room (the one in the UI) and the others are homework."),
        "",
        minutes_table(plans),
        "",
        "### One day: chapters 1 to 8",
        "",
        timetable_markdown(*timetable([p for p in plans if p.number <= 8], days=1)),
        "### Two days: the whole course",
        "",
        timetable_markdown(*timetable(plans, days=2)),
    ])
