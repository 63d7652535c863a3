"""The workshop guide's minutes and timetables come from the notebooks (mlops_course.workshop)."""

from datetime import datetime

import nbformat
import pytest
from book_fixtures import BOOK

from mlops_course import workshop
from mlops_course.sphinx_ext import toc_notebooks

WORDS = "word " * 300


def chapter(tmp_path, extra_words: str = "", name: str = "03_demo.ipynb"):
    """A small chapter: a title, two sections, one exercise, three code cells a learner sees."""
    nb = nbformat.v4.new_notebook()
    exercise = "```{exercise}\n:label: demo-1\nDo it in the MLflow UI.\n```"
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# A demo chapter\n\n{WORDS}{extra_words}"),
        nbformat.v4.new_code_cell("tracking_uri = None", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_markdown_cell("## One\n\n## Two"),
        *(nbformat.v4.new_code_cell(f"x = {i}") for i in range(3)),
        nbformat.v4.new_code_cell("plumbing()", metadata={"tags": ["remove-cell"]}),
        nbformat.v4.new_markdown_cell(exercise),
    ]
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def test_minutes_are_read_from_the_notebook(tmp_path):
    plan = workshop.plan_of(chapter(tmp_path), seconds=90)
    assert (plan.number, plan.title) == (3, "A demo chapter")
    assert plan.talk == 5  # two sections, at least five minutes
    assert plan.reading == 3  # 304 words outside the exercise, 150 a minute
    assert plan.doing == 3  # three cells shown (not the parameters, not the hidden one) + 1.5 min
    assert (plan.exercises, plan.exercise_count) == (5, 1)
    assert plan.total == 20


def test_a_longer_chapter_changes_the_guide(tmp_path):
    executed = tmp_path / "executed"
    before = workshop.guide_fragment([chapter(tmp_path)], executed)
    after = workshop.guide_fragment([chapter(tmp_path, extra_words=WORDS * 2)], executed)
    assert "| 3 A demo chapter | 5 | 3 |" in before
    assert "| 3 A demo chapter | 5 | 7 |" in after


def test_the_build_time_counts(tmp_path):
    executed = tmp_path / "executed"
    executed.mkdir()
    nb = nbformat.v4.new_notebook(metadata={"mlops_course": {"seconds": 600}})
    nbformat.write(nb, executed / "03_demo.ipynb")
    assert workshop.build_seconds(executed / "03_demo.ipynb") == 600
    assert workshop.build_seconds(executed / "missing.ipynb") == 0
    assert workshop.plan_of(chapter(tmp_path), 600).doing == 12


def clock(text):
    return datetime.strptime(text, "%H:%M")


@pytest.fixture(scope="module")
def plans():
    """The course's own chapters, with the build times left out (0 s)."""
    return [workshop.plan_of(nb, 0) for nb in toc_notebooks(BOOK)]


def test_timetables_keep_the_day_and_every_break(plans):
    for chapters, days in ((plans[:8], 1), (plans, 2)):
        schedule, left = workshop.timetable(chapters, days)
        assert len(schedule) <= days
        placed = [row for day in schedule for _, row in day if row[:2].strip().isdigit()]
        assert len(placed) + len(left) == len(chapters), "every chapter placed or left"
        for day in schedule:
            assert clock(day[-1][0]) <= clock(workshop.DAY_END), day
            if len(placed) > 3:
                assert "Lunch" in [what for _, what in day], day


def test_the_guide_includes_the_computed_minutes():
    guide = (BOOK / "appendix" / "workshop.md").read_text()
    assert "```{include} workshop-minutes.md" in guide
    assert "| Minutes |" not in guide, "minutes are computed, never typed"
