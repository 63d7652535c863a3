"""Sphinx extension: execute changed notebooks before the book is read, then list the timings."""

from __future__ import annotations

from pathlib import Path

import nbformat
import yaml
from docutils import nodes
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError
from sphinx.util import logging

from mlops_course.build_kernel import description
from mlops_course.execute import METADATA_KEY, NotebookExecutionError, execute_book
from mlops_course.screenshots import screenshots
from mlops_course.workshop import guide_fragment

logger = logging.getLogger(__name__)
REPORT_PAGE = "appendix/execution-report.md"
WORKSHOP_MINUTES = "appendix/workshop-minutes.md"  # included by the workshop guide


def execution_report(executed_dir: Path) -> str:
    """A Markdown page: when each executed notebook ran and for how long."""
    rows = []
    for path in sorted(executed_dir.glob("*.ipynb")):
        info = nbformat.read(path, as_version=4).metadata.get(METADATA_KEY, {})
        rows.append(f"| `{path.name}` | {info.get('seconds', '?')} | {info.get('executed_at', '?')} |")
    return "\n".join([
        "# Execution report",
        "",
        "Every output in this book was produced by running the notebook during the build.",
        "This table says when each notebook last ran and how long it took. A notebook runs",
        "again only when it, the pinned library versions or the course's shared code change.",
        "",
        "| Notebook | Seconds | Executed at (UTC) |",
        "| --- | ---: | --- |",
        *rows,
        "",
    ])


def write_if_changed(path: Path, text: str) -> None:
    """Write text to path unless it already holds it (so Sphinx keeps its cache)."""
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def toc_pages(book_dir: Path) -> list[str]:
    """Every page _toc.yml lists, in book order, without suffix ("intro", "notebooks/03_x")."""
    files: list[str] = []

    def collect(node) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if key in node:
                    files.append(str(Path(node[key]).with_suffix("")))
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for item in node:
                collect(item)

    collect(yaml.safe_load((book_dir / "_toc.yml").read_text()))
    return files


def toc_notebooks(book_dir: Path) -> list[Path]:
    """The committed notebooks (in ../notebooks) that _toc.yml lists as notebooks/NAME."""
    names = [p.removeprefix("notebooks/") for p in toc_pages(book_dir) if p.startswith("notebooks/")]
    return [book_dir.parent / "notebooks" / f"{name}.ipynb" for name in names]


def execute_notebooks(app: Sphinx, config: Config) -> None:
    """Execute the notebooks the table of contents lists into the book's notebooks/ folder."""
    book_dir = Path(app.srcdir)
    executed_dir = book_dir / "notebooks"
    try:
        execute_book(toc_notebooks(book_dir), executed_dir, log=logger.info)
    except NotebookExecutionError as error:
        raise ExtensionError(f"A notebook failed, so the book was not built.\n{error}") from None
    write_if_changed(book_dir / REPORT_PAGE, execution_report(executed_dir))
    write_if_changed(book_dir / WORKSHOP_MINUTES,
                     guide_fragment(toc_notebooks(book_dir), executed_dir))
    missing = missing_screenshots(executed_dir)
    if missing:  # said once; not a warning, so that a build without Chromium succeeds
        logger.info("Screenshots not taken (no Chromium on this machine; CI takes them all): "
                    + "; ".join(missing))


def missing_screenshots(executed_dir: Path) -> list[str]:
    """'notebook: picture' for every UI screenshot the executed notebooks could not take."""
    return [f"{path.stem}: {shot['screenshot']}"
            for path in sorted(executed_dir.glob("*.ipynb"))
            for shot in screenshots(path) if shot["png"] is None]


def describe_images(app: Sphinx, doctree: nodes.document) -> None:
    """Give each PNG output without an alt text the description it carries (build_kernel)."""
    for image in doctree.findall(nodes.image):
        if image.get("alt") or not image["uri"].endswith(".png"):
            continue
        # Sphinx's image collector has made the uri relative to the source folder.
        path = Path(app.srcdir, image.get("candidates", {}).get("*", image["uri"]))
        if path.is_file() and (text := description(path.read_bytes())):
            image["alt"] = text


def setup(app: Sphinx) -> dict:
    """Register the execution step (before Sphinx reads any page) and the images' alt texts."""
    app.connect("config-inited", execute_notebooks, priority=100)
    app.connect("doctree-read", describe_images)
    # A new env_version makes Sphinx read every page again (so each image gets its alt).
    return {"parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
