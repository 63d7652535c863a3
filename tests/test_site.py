"""The site as a reader uses it (headless Chromium), and the spine every chapter follows."""

import os
import re
import sys
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

import nbformat
import pytest
import requests

from book_fixtures import BOOK, NOTEBOOKS, built_book, chapters, toc_pages  # noqa: F401
from mlops_course import screenshots, servers

MAX_CODE_LINES = 20
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CHAPTER_NUMBER = re.compile(
    r"\bchapters?\s+(\d+)(?:\s*(?:to|and|or|through|-|–)\s*(\d+))?", re.IGNORECASE
)


def markdown_of(chapter: str) -> list[str]:
    """The markdown cells of a committed chapter notebook."""
    nb = nbformat.read(NOTEBOOKS / f"{chapter}.ipynb", as_version=4)
    return [cell.source for cell in nb.cells if cell.cell_type == "markdown"]


# --- The spine of every chapter (reads the committed notebooks; no build needed) ---


@pytest.mark.parametrize("chapter", chapters())
def test_each_chapter_ends_with_a_next_link(chapter):
    order = chapters()
    last = markdown_of(chapter)[-1]
    links = [urldefrag(target)[0] for target in LINK.findall(last)]
    ends_with_next = "next" in last.lower() and bool(links)
    assert ends_with_next, f"{chapter} should end with a 'Next' link"
    if chapter != order[-1]:
        wanted = f"{order[order.index(chapter) + 1]}.ipynb"
        assert wanted in links, f"{chapter}'s last cell should link to {wanted}: {links}"
    else:  # the last chapter hands over to a page of the book that is not a chapter
        pages = {str(Path(page)) for page in toc_pages() if not page.startswith("notebooks/")}
        targets = {os.path.normpath(f"notebooks/{Path(link).with_suffix('')}") for link in links}
        assert targets & pages, f"{chapter} should link to an appendix or the welcome page"


def exercises(chapter: str) -> dict[str, str]:
    """label -> text of each {exercise} directive in a chapter."""
    text = "\n".join(markdown_of(chapter))
    found = re.findall(r"```\{exercise\}[^\n]*\n:label:\s*(\S+)\n(.*?)```", text, re.S)
    return dict(found)


@pytest.mark.parametrize("chapter", chapters())
def test_each_chapter_has_three_exercises_with_solutions(chapter):
    text = "\n".join(markdown_of(chapter))
    labels = list(exercises(chapter))
    assert len(labels) >= 3, f"{chapter} has {len(labels)} exercises; the spine wants three"
    for label in labels:
        assert re.search(r"```\{solution(-start)?\}\s+" + re.escape(label) + r"\b", text), (
            f"{chapter}: exercise {label} has no solution"
        )


@pytest.mark.parametrize("chapter", chapters())
def test_one_exercise_per_chapter_is_done_in_the_mlflow_ui(chapter):
    in_ui = [label for label, text in exercises(chapter).items()
             if re.search(r"mlflow ui|MLflow UI|\bthe UI\b|127\.0\.0\.1:\d+/#", text)]
    assert in_ui, f"{chapter}: no exercise says what to find or do in the MLflow UI"


@pytest.mark.parametrize("chapter", chapters())
def test_no_code_cell_is_over_20_lines(chapter):
    nb = nbformat.read(NOTEBOOKS / f"{chapter}.ipynb", as_version=4)
    long = [(number, len(cell.source.splitlines()))
            for number, cell in enumerate(nb.cells, start=1)
            if cell.cell_type == "code" and len(cell.source.splitlines()) > MAX_CODE_LINES
            and not cell.source.startswith("%%writefile")  # the learner's own script
            and "training-code" not in cell.metadata.get("tags", [])]  # ... or training code
    assert not long, f"{chapter}: code cells over {MAX_CODE_LINES} lines (cell, lines): {long}"


# Code that draws a diagram (boxes, arrows, no axes) is plumbing, not what a chapter teaches.
DRAWING = re.compile(r"FancyBboxPatch|arrowprops|\.axis\(\s*[\"']off[\"']\s*\)")
HIDDEN = {"remove-input", "remove-cell", "hide-input", "hide-cell"}


@pytest.mark.parametrize("chapter", chapters())
def test_diagram_drawing_code_is_hidden_by_a_cell_tag(chapter):
    nb = nbformat.read(NOTEBOOKS / f"{chapter}.ipynb", as_version=4)
    shown = [number for number, cell in enumerate(nb.cells, start=1)
             if cell.cell_type == "code" and any(
                 DRAWING.search(line) for line in cell.source.splitlines()
                 if not line.startswith(("import ", "from ")))
             and not HIDDEN & set(cell.metadata.get("tags", []))]
    assert not shown, (f"{chapter}: cells {shown} draw a diagram; tag them remove-input "
                       "(the picture stays) or remove-cell (helpers), as chapter 1 does")


def prose_pages() -> dict[str, str]:
    """name -> text of every page a reader reads: chapters' markdown, the book's .md pages."""
    pages = {f"notebooks/{c.name}": "\n".join(markdown_of(c.stem))
             for c in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))}
    generated = {BOOK / "appendix" / "execution-report.md", BOOK / "appendix" / "workshop-minutes.md"}
    for path in sorted(BOOK.rglob("*.md")):
        if "_build" not in path.parts and path not in generated:
            pages[str(path.relative_to(BOOK))] = path.read_text()
    return pages


FENCED = re.compile(r"^```([\w-]+)\n(.*?)^```", re.S | re.M)


def test_every_fenced_block_lexes_in_its_language():
    """Sphinx warns (and -W fails the build) on a block its lexer cannot read: this says which."""
    from pygments.lexers import get_lexer_by_name
    from pygments.token import Error
    from pygments.util import ClassNotFound

    unreadable = []
    for page, text in prose_pages().items():
        for language, block in FENCED.findall(text):
            try:
                lexer = get_lexer_by_name(language)
            except ClassNotFound:  # a MyST directive or a language Sphinx shows as text
                continue
            errors = [value for token, value in lexer.get_tokens(block) if token is Error]
            if errors:
                unreadable.append((page, language, errors[:3], block.splitlines()[0]))
    assert not unreadable, unreadable


def test_no_page_mentions_a_chapter_that_does_not_exist():
    numbers = {0} | {int(name[:2]) for name in chapters()}
    files = {f"{name}.ipynb" for name in chapters()}
    wrong = []
    for page, text in prose_pages().items():
        for match in CHAPTER_NUMBER.finditer(text):
            low, high = int(match[1]), int(match[2] or match[1])
            if not set(range(low, high + 1)) <= numbers:
                wrong.append(f"{page}: '{match[0]}'")
        for target in LINK.findall(text):
            name = Path(urldefrag(target)[0]).name
            if re.fullmatch(r"\d\d_\w+\.ipynb", name) and name not in files:
                wrong.append(f"{page}: link to {target}")
    assert not wrong, "Chapters that are not in the book: " + "; ".join(wrong)


# --- The built site in a browser ---


@pytest.fixture(scope="module")
def site(built_book):
    """The built site served on 127.0.0.1, as a static web server would serve it."""
    port = servers.free_port()
    url = f"http://127.0.0.1:{port}/"
    command = f"{sys.executable} -m http.server {port} --bind 127.0.0.1"
    with servers.start(command, url, cwd=built_book) as server:
        yield server.origin


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's); required in CI, optional on a learner's machine."""
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(
                executable_path=screenshots.chromium_path(), args=screenshots.CHROMIUM_ARGS
            )
        except Error as error:
            message = f"no Chromium to test the site with: {str(error).splitlines()[0]}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        yield chromium
        chromium.close()


def open_page(browser, url: str, *, offline_origin: str | None = None):
    """A new page at url; with offline_origin, every request elsewhere is refused."""
    page = browser.new_page()
    page.problems = []
    page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.on("response", lambda r: r.status >= 400 and page.problems.append(f"{r.status} {r.url}"))
    if offline_origin:
        page.blocked = []

        def route(route):
            if route.request.url.startswith(offline_origin):
                return route.continue_()
            page.blocked.append(route.request.url)
            return route.abort()

        page.route("**/*", route)
    page.goto(url, wait_until="load")
    return page


slow = pytest.mark.slow


@slow
def test_every_page_in_the_toc_loads_without_console_errors(site, browser):
    problems = []
    for name in toc_pages():
        page = open_page(browser, f"{site}/{name}.html")
        page.wait_for_timeout(300)  # let deferred scripts run
        assert page.locator("main h1:visible").first.is_visible(), f"{name} shows no title"
        problems += [f"{name}: {p}" for p in page.problems]
        page.close()
    assert not problems, "\n".join(problems)


@slow
def test_every_internal_link_and_image_resolves(site, browser):
    broken, checked = [], {}
    for name in toc_pages():
        page = open_page(browser, f"{site}/{name}.html")
        targets = page.eval_on_selector_all(
            "a[href], img[src], link[href], script[src]",
            "nodes => nodes.map(n => n.href || n.src)",
        )
        page.close()
        for target in targets:
            url, fragment = urldefrag(target)
            if not url.startswith(site):
                continue  # another site, or a learner's own server on another port
            if url not in checked:
                checked[url] = requests.get(url, timeout=30)
            if checked[url].status_code != 200:
                broken.append(f"{name}: {target} ({checked[url].status_code})")
            elif fragment and url.endswith(".html"):
                if f'id="{fragment}"' not in checked[url].text:
                    broken.append(f"{name}: {target} (no such anchor)")
    assert checked, "no internal links found"
    assert not broken, "\n".join(broken)


@slow
def test_the_search_page_finds_alias(site, browser):
    page = open_page(browser, f"{site}/search.html?q=alias")
    results = page.locator("ul.search li")
    results.first.wait_for(timeout=30_000)
    links = results.locator("a").evaluate_all("nodes => nodes.map(n => n.href)")
    assert any("08_registry" in link for link in links), links
    page.close()


@slow
def test_a_solution_opens_on_click(site, browser):
    page = open_page(browser, f"{site}/notebooks/01_concepts.html")
    solution = page.locator("div.solution.dropdown").first
    body = solution.locator("section").first
    assert not body.is_visible(), "solutions start folded"
    solution.locator(".admonition-title").first.click()
    body.wait_for(state="visible", timeout=5_000)
    page.close()


@slow
def test_core_content_renders_offline(site, browser):
    blocked, problems = set(), []
    for name in toc_pages():
        page = open_page(browser, f"{site}/{name}.html", offline_origin=site)
        title = page.locator("main h1:visible").first
        if not title.is_visible() or len(page.locator("main").inner_text()) < 200:
            problems.append(f"{name} renders no main text offline")
        blocked |= {urlsplit(u).netloc for u in page.blocked}
        page.close()
    assert not problems, "\n".join(problems)
    assert not blocked, f"pages ask for resources from other hosts: {sorted(blocked)}"


# WCAG 2.0 and 2.1, levels A and AA: the rules axe-core tags so.
WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def accessibility_problems(page) -> list[str]:
    """axe-core's serious and critical WCAG A/AA violations on an open page, one line each."""
    from axe_playwright_python.sync_playwright import Axe

    options = {"runOnly": {"type": "tag", "values": WCAG_AA}, "resultTypes": ["violations"]}
    found = Axe().run(page, options=options).response["violations"]
    return [f"{v['id']} ({v['impact']}): {v['help']}; e.g. {v['nodes'][0]['target']}"
            f" {v['nodes'][0].get('failureSummary', '')[:200]!r}"
            for v in found if v["impact"] in ("serious", "critical")]


def image_alt_problems(page) -> list[str]:
    """Images whose alt text is missing, empty or only a file name."""
    images = page.eval_on_selector_all(
        "main img", "nodes => nodes.map(n => [n.getAttribute('src'), n.getAttribute('alt')])")
    return [f"{src}: alt={alt!r}" for src, alt in images
            if not (alt or "").strip() or re.fullmatch(r"[\w.-]+\.(png|jpe?g|svg|gif)", alt)
            or alt == src or len(alt.split()) < 3]


@slow
def test_every_page_passes_axe_and_every_image_says_what_it_shows(site, browser):
    problems = []
    for name in toc_pages():
        page = open_page(browser, f"{site}/{name}.html")
        problems += [f"{name}: {p}" for p in accessibility_problems(page)]
        problems += [f"{name}: image without a real alt text, {p}"
                     for p in image_alt_problems(page)]
        page.close()
    assert not problems, "\n".join(problems)


def test_an_image_with_a_file_name_for_alt_fails_the_check(browser):
    page = browser.new_page()
    page.set_content("<main><img src='a.png' alt='3f9c.png'><img src='b.png' alt=''>"
                     "<img src='c.png' alt='A chart of RMSE by alpha.'></main>")
    assert [p.split(":")[0] for p in image_alt_problems(page)] == ["a.png", "b.png"]
    page.close()


def test_axe_reports_low_contrast_text(browser):
    page = browser.new_page()
    page.set_content("<html lang='en'><head><title>t</title></head><body><main>"
                     "<p style='color:#bbb;background:#fff'>faint text</p></main></body></html>")
    assert any(p.startswith("color-contrast") for p in accessibility_problems(page))
    page.close()
