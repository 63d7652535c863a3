"""What a reader takes home: the site's .ipynb downloads and the executed outputs."""

import json
import re
import tempfile
from pathlib import Path

import nbformat
import pytest

from book_fixtures import BOOK, built_book, chapters  # noqa: F401
from mlops_course.execute import REPO_DIR, code_cells
from mlops_course.testing import output_texts

pytestmark = pytest.mark.slow


def build_paths() -> dict[str, str]:
    """Patterns of what only makes sense on the build machine -> what it is, for messages.

    A path counts where it starts (not inside another path: "/mlflow/tmp/" in a container
    is not the build's /tmp/).
    """
    start = r"(?<![\w.~-])"
    temp = tempfile.gettempdir().rstrip("/\\")
    paths = {
        start + re.escape(str(REPO_DIR)): "the repository path",
        start + re.escape(str(REPO_DIR.resolve())): "the repository path",
        start + re.escape(str(Path.home())) + r"(?![\w.-])": "the home folder",
        start + r"/tmp/": "a temporary path",
        start + re.escape(temp) + r"[/\\]": "a temporary path",
        re.escape(temp) + r"[/\\]mlops-course-": "the build's scratch folder",
    }
    return dict(paths.items())


def build_paths_in(text: str) -> list[str]:
    """The build paths text holds, with a little context around each."""
    found = []
    for pattern, what in build_paths().items():
        match = re.search(pattern, text)
        if match and not any(line.startswith(what) for line in found):
            at = match.start()
            found.append(f"{what}: ...{text[max(0, at - 60):match.end() + 40]!r}...")
    return found


def download(built_book: Path, chapter: str) -> Path:
    """The .ipynb the chapter's page offers for download."""
    page = (built_book / "notebooks" / f"{chapter}.html").read_text()
    assert f'href="../_sources/notebooks/{chapter}.ipynb"' in page, (
        f"{chapter}'s page offers no .ipynb download"
    )
    return built_book / "_sources" / "notebooks" / f"{chapter}.ipynb"


def without_images(nb: nbformat.NotebookNode) -> str:
    """The notebook's JSON with image data left out (base64 can spell anything)."""
    copy = nbformat.from_dict(json.loads(nbformat.writes(nb)))
    for cell in copy.cells:
        for output in cell.get("outputs", []):
            for mime in [m for m in output.get("data", {}) if m.startswith("image/")]:
                output.data[mime] = ""
    return nbformat.writes(copy)


def test_downloaded_notebooks_carry_no_build_path_and_no_injected_cell(built_book):
    problems = []
    for chapter in chapters():
        path = download(built_book, chapter)
        nb = nbformat.read(path, as_version=4)
        problems += [f"{chapter}: {p}" for p in build_paths_in(without_images(nb))]
        if any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells):
            problems.append(f"{chapter}: papermill's injected parameters cell")
        if "papermill" in nb.metadata or any("papermill" in c.metadata for c in nb.cells):
            problems.append(f"{chapter}: papermill metadata")
    assert not problems, "\n".join(problems)


def test_no_executed_output_shows_a_build_path(built_book):
    problems = []
    for executed in sorted((BOOK / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(executed, as_version=4)
        for number, text in output_texts(nb):
            problems += [f"{executed.stem}, cell {number}: {p}" for p in build_paths_in(text)]
    assert not problems, "\n".join(problems)


def test_downloads_hold_the_committed_code(built_book):
    # What the tests execute is the committed notebook; chapter 8's second pass runs it as a
    # learner runs a download (conftest.LEARNER_SECOND_PASS), so the two must hold one code.
    for chapter in chapters():
        downloaded = nbformat.read(download(built_book, chapter), as_version=4)
        committed = nbformat.read(REPO_DIR / "notebooks" / f"{chapter}.ipynb", as_version=4)
        assert code_cells(downloaded) == code_cells(committed), f"{chapter}: code differs"
