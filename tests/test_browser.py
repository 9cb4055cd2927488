"""The built book in a real browser: headless Chromium (Debian's ``chromium`` with
``chromium-driver``, driven by selenium) opens every page of the quick book from a local
HTTP server and checks what a reader would see: no console errors, nothing fetched from
outside the book, math typeset by the MathJax served from the book, every image loaded,
glued numbers in place, widgets rendered. Screenshots of every page are written to
``<book>/screenshots/`` (``NAME.png``: the first screen; ``NAME_full.png``: the whole page,
cut at 16,000 px).

The book is the ``quick_book`` fixture's; set ``RECOS_BOOK_DIR`` to the output folder of an
earlier ``recos-book run`` to check that book instead (no run then).
"""
from __future__ import annotations

import ast
import json
import os
import re
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from browser_support import NO_CHROMIUM, chromium, offline_driver, serve

FULL_PAGE_MAX_PX = 16000
SKIP_DIRS = {"_static", "_sources", "_images", "screenshots"}
GLUE_ROLE = re.compile(r"\{glue(?::(text|any))?\}`([^`<>]+?)(?::([^`:]+))?`")


@pytest.fixture(scope="module")
def book_dir(request) -> Path:
    if chromium() is None:
        pytest.skip(NO_CHROMIUM)
    if os.environ.get("RECOS_BOOK_DIR"):
        return Path(os.environ["RECOS_BOOK_DIR"]).resolve()
    return request.getfixturevalue("quick_book")


@pytest.fixture(scope="module")
def server(book_dir):
    """The book's html/ folder on a local HTTP server (127.0.0.1, a free port)."""
    html = book_dir / "html"
    assert (html / "index.html").is_file(), f"no built book in {html}"
    yield from serve(html)


@pytest.fixture(scope="module")
def driver():
    yield from offline_driver("1280,900", page_load_timeout=120)


def book_pages(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html")
                  if not SKIP_DIRS & set(p.relative_to(html).parts[:-1]))


def expected_glue(book_dir: Path, page: Path, html: Path) -> list[tuple[str, str | None]]:
    """``(name, expected text or None)`` for each ``{glue:text}``/``{glue}`` role in the
    executed notebook behind ``page``; the text is known where the value is a number or a
    string."""
    rel = page.relative_to(html).with_suffix(".ipynb")
    nb_path = next((p for p in (book_dir / "site" / rel, book_dir / "executed" / rel.name)
                    if p.is_file()), None)
    if nb_path is None:
        return []
    nb = json.loads(nb_path.read_text())
    values = {}
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            name = out.get("metadata", {}).get("scrapbook", {}).get("name")
            plain = out.get("data", {}).get("application/papermill.record/text/plain")
            if name and plain is not None:
                values[name] = "".join(plain) if isinstance(plain, list) else plain
    want = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for _role, name, spec in GLUE_ROLE.findall("".join(cell["source"])):
            text = None
            try:
                value = ast.literal_eval(values.get(name, ""))
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    text = format(value, spec) if spec else str(value)
                elif isinstance(value, str) and not spec:
                    text = value.strip()  # glue:text shows a string without its quotes
            except (ValueError, SyntaxError, TypeError):
                pass
            want.append((name, text))
    return want


_WAIT_MATHJAX = """
const done = arguments[arguments.length - 1];
const t0 = Date.now();
(function poll() {
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) {
    mj.startup.promise.then(() => done("typeset"), (e) => done("error: " + e));
  } else if (Date.now() - t0 > 5000) {
    done(mj ? "MathJax not started" : "no MathJax");
  } else { setTimeout(poll, 50); }
})();
"""

_WAIT_IMAGES = """
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.images);
imgs.forEach((im) => { im.loading = "eager"; im.scrollIntoView(); });
const t0 = Date.now();
(function poll() {
  if (imgs.every((im) => im.complete) || Date.now() - t0 > 15000) {
    window.scrollTo(0, 0);
    done(imgs.map((im) => [im.currentSrc || im.src, im.complete, im.naturalWidth,
                           im.naturalHeight, im.clientWidth, im.clientHeight]));
  } else { setTimeout(poll, 100); }
})();
"""

_OBSERVE = """
const q = (s) => Array.from(document.querySelectorAll(s));
const maths = q(".math");
const main = document.querySelector("main") || document.body;
const views = q('script[type="application/vnd.jupyter.widget-view+json"]');
return {
  mathjax: window.MathJax && window.MathJax.version ? window.MathJax.version : null,
  math: maths.length,
  math_typeset: maths.filter((m) => m.querySelector("mjx-container")).length,
  math_errors: q("mjx-merror").length,
  raw_tex: maths.filter((m) => !m.querySelector("mjx-container")
                               && /\\\\[(\\[]/.test(m.textContent)).length,
  text: main.innerText,
  pasted: q(".pasted-text, .pasted-inline").map((e) => e.textContent.trim()),
  widget_views: views.length,
  widgets_rendered: views.filter((s) => s.parentElement.querySelector(".jupyter-widgets")).length,
  resources: performance.getEntriesByType("resource").map((r) => r.name),
};
"""


def _screenshots(drv, folder: Path, name: str) -> None:
    """The first screen, then the whole page (the window stretched to the page's height)."""
    folder.mkdir(parents=True, exist_ok=True)
    drv.save_screenshot(str(folder / f"{name}.png"))
    width, height = drv.get_window_size()["width"], drv.get_window_size()["height"]
    inner = drv.execute_script("return window.innerHeight")
    page_h = drv.execute_script("return document.documentElement.scrollHeight")
    drv.set_window_size(width, min(page_h, FULL_PAGE_MAX_PX) + (height - inner))
    time.sleep(0.3)
    drv.save_screenshot(str(folder / f"{name}_full.png"))
    drv.set_window_size(width, height)


@pytest.fixture(scope="module")
def visits(book_dir, server, driver) -> dict[str, dict]:
    """Every page opened once; what the browser saw, by page path (``book/intro.html``)."""
    html = book_dir / "html"
    pages = book_pages(html)
    assert pages, f"no pages in {html}"
    shots = book_dir / "screenshots"
    out = {}
    for page in pages:
        rel = page.relative_to(html).as_posix()
        driver.get_log("browser"), driver.get_log("performance")  # drop earlier entries
        t0 = time.perf_counter()
        driver.get(f"{server}/{rel}")
        mathjax = driver.execute_async_script(_WAIT_MATHJAX)
        images = driver.execute_async_script(_WAIT_IMAGES)
        if "widget-view+json" in page.read_text():
            time.sleep(1.0)  # the widget manager renders after the load event
        seen = driver.execute_script(_OBSERVE)
        requests, failed = [], []
        for entry in driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg["method"] == "Network.requestWillBeSent":
                requests.append(msg["params"]["request"]["url"])
            elif msg["method"] == "Network.responseReceived" \
                    and msg["params"]["response"]["status"] >= 400:
                failed.append(msg["params"]["response"]["url"])
        seen.update(mathjax_state=mathjax, images=images, requests=requests, failed=failed,
                    console=driver.get_log("browser"), seconds=time.perf_counter() - t0,
                    glue=expected_glue(book_dir, page, html))
        _screenshots(driver, shots, rel.removesuffix(".html").replace("/", "__"))
        out[rel] = seen
    return out


def _plain(text: str) -> str:
    """Text with the typographic quotes and dashes of Sphinx's smartquotes made plain."""
    for fancy, plain in (("\u2018", "'"), ("\u2019", "'"), ("\u201c", '"'), ("\u201d", '"'),
                         ("\u2014", "---"), ("\u2013", "--"), ("\u2026", "...")):
        text = text.replace(fancy, plain)
    return " ".join(text.split())


def _report(problems: dict[str, list]) -> str:
    return "\n".join(f"{page}: {p}" for page, ps in problems.items() for p in ps)


def test_every_page_of_the_book_was_opened(visits, book_dir):
    html = book_dir / "html"
    assert set(visits) == {p.relative_to(html).as_posix() for p in book_pages(html)}
    assert "book/intro.html" in visits and "book/paper_vs_book.html" in visits
    chapters = [p for p in visits if re.match(r"book/\d\d_", p)]
    assert chapters, "no chapter page was built"


def test_no_console_errors(visits):
    problems = {p: [e["message"] for e in v["console"] if e["level"] == "SEVERE"]
                for p, v in visits.items()}
    problems = {p: e for p, e in problems.items() if e}
    assert not problems, "console errors:\n" + _report(problems)


def test_nothing_is_fetched_from_outside_the_book(visits, server):
    host = urlparse(server).netloc
    problems = {}
    for page, v in visits.items():
        urls = v["requests"] + v["resources"]
        outside = sorted({u for u in urls if urlparse(u).scheme in ("http", "https", "ws", "wss")
                          and urlparse(u).netloc != host})
        if outside or v["failed"]:
            problems[page] = outside + [f"HTTP error: {u}" for u in v["failed"]]
    assert not problems, "requests leaving the book or failing:\n" + _report(problems)


def test_the_html_loads_no_script_style_or_image_from_a_network(book_dir):
    """Static view of the same: no src/href of a script, stylesheet or image points outside."""
    tag = re.compile(r"<(script|img|link|source|iframe)\b[^>]*>", re.I)
    attr = re.compile(r"\b(src|href)\s*=\s*[\"']([^\"']+)", re.I)
    problems = {}
    html = book_dir / "html"
    for page in book_pages(html):
        bad = []
        for m in tag.finditer(page.read_text()):
            t = m.group(0)
            if m.group(1).lower() == "link" and not re.search(r"stylesheet|preload|icon", t):
                continue
            bad += [u for _, u in attr.findall(t) if re.match(r"(https?:)?//", u)]
        if bad:
            problems[page.relative_to(html).as_posix()] = bad
    assert not problems, _report(problems)


def _allowed_links() -> list[str]:
    """External pages a link may point to: the works the book cites (their DOI, arXiv and
    URL entries in references.bib; the paper's among them). Nothing else."""
    bib = (Path(__file__).resolve().parent.parent / "references.bib").read_text()
    out = [f"https://doi.org/{d}" for d in re.findall(r"doi\s*=\s*\{([^}]+)\}", bib)]
    out += [f"https://arxiv.org/abs/{a}" for a in re.findall(r"arXiv:(\d{4}\.\d{4,5})", bib)]
    out += re.findall(r"url\s*=\s*\{([^}]+)\}", bib)
    return out


def test_no_link_points_outside_the_book_or_to_a_missing_page(book_dir):
    """Every <a href> of every page leads to a file of the built book, or to a cited work
    (the allow-list); a repository or launch button without a configured repository, or a
    link to a page the build does not have, fails here."""
    allowed = _allowed_links()
    href = re.compile(r"<a\b[^>]*\bhref\s*=\s*[\"']([^\"']+)", re.I)
    html, problems = book_dir / "html", {}
    for page in book_pages(html):
        bad = []
        for u in href.findall(page.read_text()):
            u = u.replace("&amp;", "&")
            parts = urlparse(u)
            if parts.scheme in ("http", "https") or u.startswith("//"):
                if not any(u.rstrip("/") == a.rstrip("/") for a in allowed):
                    bad.append(u)
            elif parts.scheme in ("", "file") and parts.path:
                target = (page.parent / parts.path).resolve()
                if not target.exists():
                    bad.append(u)
            elif parts.scheme not in ("", "mailto", "javascript"):
                bad.append(u)
        if bad:
            problems[page.relative_to(html).as_posix()] = sorted(set(bad))
    assert not problems, "links to outside the book or to missing pages:\n" + _report(problems)


def test_math_is_typeset_by_the_mathjax_served_with_the_book(visits):
    with_math = {p: v for p, v in visits.items() if v["math"]}
    assert with_math, "no page has math: the check would be empty"
    problems = {}
    for page, v in with_math.items():
        issues = []
        if v["mathjax_state"] != "typeset" or not str(v["mathjax"]).startswith("3."):
            issues.append(f"MathJax {v['mathjax']}: {v['mathjax_state']}")
        if v["math_typeset"] != v["math"]:
            issues.append(f"{v['math'] - v['math_typeset']} of {v['math']} formulas not typeset")
        if v["math_errors"] or v["raw_tex"]:
            issues.append(f"{v['math_errors']} TeX errors, {v['raw_tex']} raw TeX left")
        if issues:
            problems[page] = issues
    assert not problems, _report(problems)
    mathjax = [u for v in with_math.values() for u in v["requests"] if "mathjax" in u.lower()]
    assert mathjax and all("/_static/mathjax/" in u for u in mathjax), mathjax


def test_every_image_loads(visits):
    problems = {p: [src for src, complete, width, *_ in v["images"] if not complete or width <= 0]
                for p, v in visits.items()}
    problems = {p: s for p, s in problems.items() if s}
    assert not problems, "images that did not load:\n" + _report(problems)
    figures = sum(1 for v in visits.values() for src, *_ in v["images"] if "/_images/" in src)
    assert figures > 0, "no figure on any page: the check would be empty"


def test_figures_keep_their_shape_and_are_sharp(visits):
    """Cell-output figures are drawn at twice their display resolution ("retina") and shown
    undistorted: the width a narrow column imposes must not leave the height as it was."""
    problems, checked = {}, 0
    for page, v in visits.items():
        issues = []
        for src, _, nw, nh, cw, ch in v["images"]:
            if "/_images/" not in src or not cw or not nh:
                continue
            checked += 1
            name = src.rsplit("/", 1)[-1][:12]
            if abs((cw / ch) / (nw / nh) - 1) > 0.03:
                issues.append(f"{name}: shown {cw}x{ch}, drawn {nw}x{nh} (distorted)")
            if nw < 1.9 * cw:
                issues.append(f"{name}: shown {cw} px wide from only {nw} px (blurred on "
                              f"high-density screens)")
        if issues:
            problems[page] = issues
    assert checked > 0, "no figure shown on any page: the check would be empty"
    assert not problems, _report(problems)


def test_glued_numbers_are_present(visits):
    problems, checked = {}, 0
    for page, v in visits.items():
        issues = []
        if "{glue" in v["text"]:
            issues.append("raw {glue ...} role text on the page")
        if len(v["pasted"]) < len(v["glue"]):
            issues.append(f"{len(v['glue'])} glue roles in the notebook, "
                          f"{len(v['pasted'])} pasted values on the page")
        empty_ok = sum(1 for _, text in v["glue"] if text == "")
        if sum(1 for t in v["pasted"] if not t) > empty_ok:
            issues.append("an empty pasted value where the notebook glued no empty string")
        pasted = {_plain(t) for t in v["pasted"]}
        for name, text in v["glue"]:
            if text is not None:
                checked += 1
                if _plain(text) not in pasted:
                    issues.append(f"glue {name}: {text!r} not among the pasted values")
        if issues:
            problems[page] = issues
    assert not problems, _report(problems)
    assert checked > 0, "no glued value was checked"


def test_widgets_render_offline(visits):
    problems = {p: [f"{v['widgets_rendered']} of {v['widget_views']} widgets rendered"]
                for p, v in visits.items() if v["widgets_rendered"] != v["widget_views"]}
    assert not problems, _report(problems)


def test_screenshots_are_written(visits, book_dir):
    shots = book_dir / "screenshots"
    for page in visits:
        name = page.removesuffix(".html").replace("/", "__")
        for suffix in ("", "_full"):
            png = shots / f"{name}{suffix}.png"
            assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
            assert png.stat().st_size > 5000, f"{png} looks blank"
