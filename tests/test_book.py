"""The whole book builds with warnings as errors, with executed outputs a browser can show."""

import os
import re
import shutil
import subprocess
from html import unescape

import pytest

from book_fixtures import BOOK, JUPYTER_BOOK, built_book  # noqa: F401
from mlops_course import workshop
from mlops_course.sphinx_ext import toc_notebooks
from mlops_course.testing import write_notebook

pytestmark = pytest.mark.slow


def test_every_chapter_page_exists_with_executed_outputs(built_book):
    for notebook in toc_notebooks(BOOK):
        page = (built_book / "notebooks" / f"{notebook.stem}.html").read_text()
        assert 'class="cell_output' in page, f"{notebook.stem} has no executed outputs"
        assert "Traceback" not in page, f"{notebook.stem} shows a traceback"
        assert not re.search(r"(?<![\w.~-])/tmp/", page), f"{notebook.stem} shows a build path"


def test_tracking_page_shows_what_the_run_logged(built_book):
    page = (built_book / "notebooks" / "03_tracking.html").read_text()
    assert "Hello world!" in page and "(2, 3.0)" in page


def test_the_concepts_diagram_is_an_image_in_the_site(built_book):
    page = (built_book / "notebooks" / "01_concepts.html").read_text()
    images = re.findall(r'<img[^>]+src="([^"]+)"', page)
    assert images and all(not src.startswith("http") for src in images)
    assert all((built_book / "notebooks" / src).resolve().is_file() for src in images)


def test_execution_report_lists_every_notebook(built_book):
    report = (built_book / "appendix" / "execution-report.html").read_text()
    for notebook in toc_notebooks(BOOK):
        assert notebook.name in report


def test_the_workshop_guide_shows_the_minutes_this_build_measured(built_book):
    html = (built_book / "appendix" / "workshop.html").read_text()
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())
    for notebook in toc_notebooks(BOOK):
        seconds = workshop.build_seconds(BOOK / "notebooks" / notebook.name)
        plan = workshop.plan_of(notebook, seconds)
        assert seconds > 0, f"{notebook.name}: no execution time in its executed copy"
        row = (f"{plan.number} {plan.title} {plan.talk} {plan.reading} {plan.doing} "
               f"{plan.exercises} {plan.total}")
        assert row in text, row
    assert "Day 2" in text and "Lunch" in text


def test_a_no_change_rebuild_executes_nothing(built_book):
    build = subprocess.run([JUPYTER_BOOK, "build", str(BOOK), "-W"],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0
    assert re.search(r"notebooks: 0 to execute, \d+ unchanged", build.stdout)


def test_a_failing_notebook_fails_the_build_and_says_where(tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    shutil.copy(BOOK / "_config.yml", book / "_config.yml")
    (book / "intro.md").write_text("# A broken book\n")
    (book / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n  - file: notebooks/01_broken\n")
    (tmp_path / "requirements.txt").write_text("nbformat\n")
    write_notebook(tmp_path / "notebooks/01_broken.ipynb", "ratio = 1 / 0")
    build = subprocess.run([JUPYTER_BOOK, "build", str(book), "-W"],
                           capture_output=True, text=True, timeout=600)
    output = build.stdout + build.stderr
    assert build.returncode != 0
    assert "01_broken.ipynb failed in cell 3" in output and "ZeroDivisionError" in output
    assert not (book / "_build/html/notebooks/01_broken.html").exists()


def chromium() -> str:
    """Debian's Chromium; required in CI, optional on a learner's machine."""
    found = shutil.which("chromium")
    if not found:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def test_a_browser_renders_the_tracking_page(built_book, tmp_path):
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update",
               "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    page = (built_book / "notebooks" / "03_tracking.html").as_uri()
    dom = subprocess.run(command + ["--dump-dom", page], capture_output=True, text=True,
                         timeout=120)
    assert "Tracking experiments by hand" in dom.stdout and "Hello world!" in dom.stdout
    shot = tmp_path / "tracking.png"
    subprocess.run(command + [f"--screenshot={shot}", "--window-size=1280,2000", page],
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 10_000, "the screenshot should show a rendered page"
