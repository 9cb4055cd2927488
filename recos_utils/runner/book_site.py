"""The book's sources laid out for Jupyter Book (``recos-book run``, its second step).

``stage`` copies ``_config.yml``, ``_toc.yml``, ``references.bib`` and ``book/`` into
``OUT/site`` with the executed notebooks, and on the way:

* every chapter page gets a line that says which mode produced it (quick or full), on
  which device and when (``run_banner``), a warning for a quick run;
* the front page (``book/intro.md``) gets a table of the chapters in this build with the
  same facts, and says plainly when they come from different modes (``build_table``);
* the table of contents keeps only the chapters that have a finished executed notebook,
  and the explorer page only when Chapter 2 exported its weights;
* the repository and launch buttons appear only when a real repository is configured,
  through the one setting ``RECOS_REPOSITORY_URL`` (``repository_config``; a GitHub, GitLab
  or Bitbucket address, which is what the theme's buttons know): without it the built
  book has no such buttons, so no link points to a repository that does not exist;
* the front page "Paper vs this book" is written from the results files (``pages``).
"""
from __future__ import annotations

import datetime
import os
import shutil
from pathlib import Path

__all__ = ["REPOSITORY_ENV", "stage", "run_banner", "build_table", "repository_config"]

REPOSITORY_ENV = "RECOS_REPOSITORY_URL"
_MODE_WORDS = {"full": "full mode (the faithful run)",
               "quick": "quick mode (subsets of the data, for CI: not faithful)"}


def _when(iso: str) -> str:
    t = datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ")
    return f"{t.day} {t.strftime('%B %Y, %H:%M')} UTC"


def run_banner(rec: dict) -> str:
    """The MyST line at the top of a chapter page: mode, device, date of its run."""
    text = (f"This page was executed in **{_MODE_WORDS[rec['mode']]}** on device "
            f"`{rec['device']}`, {_when(rec['finished'])}.")
    if rec["mode"] == "quick":
        return (":::{admonition} Quick run\n:class: warning run-info\n" + text +
                " Its numbers show that the code runs end to end; build the book with "
                "`recos-book run --mode full` for the faithful numbers.\n:::")
    return f":::{{admonition}} Full run\n:class: note run-info\n{text}\n:::"


def build_table(records: dict[str, dict], titles: dict[str, str]) -> str:
    """The front page's section on this build: each chapter with its mode and the date of
    its run, and a warning when the chapters come from different modes."""
    modes = sorted({r["mode"] for r in records.values()})
    out = ["", "## This build", ""]
    if len(modes) > 1:
        out += [":::{warning}", "The chapters of this build come from **different modes**: "
                + ", ".join(f"{sum(r['mode'] == m for r in records.values())} from {m} runs"
                            for m in modes)
                + ". Numbers from quick runs are not faithful; run `recos-book run --mode "
                  "full` to rebuild every chapter alike.", ":::", ""]
    elif modes:
        out += [f"Every chapter of this build was executed in {_MODE_WORDS[modes[0]]}.", ""]
    out += ["| chapter | mode | device | executed |", "|---|---|---|---|"]
    for stem, r in records.items():
        out.append(f"| {{doc}}`{titles.get(stem, stem)} <{stem}>` | {r['mode']} | "
                   f"`{r['device']}` | {_when(r['finished'])} |")
    return "\n".join(out) + "\n"


def repository_config(config: dict, url: str | None) -> dict:
    """``_config.yml`` with the repository and launch buttons set from ``url``, or with no
    such buttons when ``url`` is empty (the default: the book has no public repository)."""
    config = dict(config)
    html = dict(config.get("html") or {})
    for key in ("repository", "launch_buttons"):
        config.pop(key, None)
    if url:
        config["repository"] = {"url": url, "path_to_book": "", "branch": "main"}
        config["launch_buttons"] = {"notebook_interface": "classic",
                                    "binderhub_url": "https://mybinder.org",
                                    "colab_url": "https://colab.research.google.com"}
    for key in ("use_repository_button", "use_issues_button", "use_edit_page_button"):
        html[key] = bool(url) and key == "use_repository_button"
    config["html"] = html
    return config


def _insert_after_title(nb_path: Path, text: str) -> None:
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    cell = nbformat.v4.new_markdown_cell(text)
    cell.metadata["tags"] = ["run-info"]
    cell["id"] = "run-info"          # a fixed id: the same run stages the same bytes
    nb.cells.insert(1, cell)
    nbformat.write(nb, nb_path)


def _prune(entries: list, keep: set, drop: set) -> list:
    out = []
    for e in entries:
        f = e.get("file", "")
        if (Path(f).name[:2].isdigit() and f not in keep) or f in drop:
            continue
        if "sections" in e:
            e = dict(e, sections=_prune(e["sections"], keep, drop))
        out.append(e)
    return out


def stage(root: Path, out_dir: Path, executed: list[Path], records: dict[str, dict]) -> Path:
    """Lay out the book sources with the executed notebooks in ``OUT/site``; ``records``:
    chapter stem -> its run record (``run_state``), for the banners and the front page."""
    import nbformat
    import yaml

    site = out_dir / "site"
    if site.exists():
        shutil.rmtree(site)
    (site / "book").mkdir(parents=True)
    if (root / "references.bib").exists():
        shutil.copy2(root / "references.bib", site / "references.bib")
    config = yaml.safe_load((root / "_config.yml").read_text())
    config = repository_config(config, os.environ.get(REPOSITORY_ENV, "").strip() or None)
    (site / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    for p in (root / "book").iterdir():
        if p.suffix in (".md", ".bib", ".png", ".svg") or (p.is_dir() and p.name == "_static"):
            (shutil.copytree if p.is_dir() else shutil.copy2)(p, site / "book" / p.name)
    titles = {}
    for nb in executed:
        shutil.copy2(nb, site / "book" / nb.name)
        if nb.stem in records:
            _insert_after_title(site / "book" / nb.name, run_banner(records[nb.stem]))
        first = nbformat.read(nb, as_version=4).cells[0].source.splitlines()[:1] or [nb.stem]
        titles[nb.stem] = first[0].lstrip("# ").strip()
    intro = site / "book" / "intro.md"
    shown = {nb.stem: records[nb.stem] for nb in executed if nb.stem in records}
    if intro.exists() and shown:
        intro.write_text(intro.read_text() + build_table(shown, titles))
    # the explorer page runs the weights Chapter 2 exported; without them it is left out
    weights = out_dir / "results" / "explorer" / "explorer_data.js"
    drop = set()
    if weights.is_file():
        shutil.copy2(weights, site / "book" / "_static" / "explorer" / weights.name)
    else:
        drop.add("book/explore")
        (site / "book" / "explore.md").unlink(missing_ok=True)
    keep = {f"book/{nb.stem}" for nb in executed}
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    if "chapters" in toc:
        toc["chapters"] = _prune(toc["chapters"], keep, drop)
    if "parts" in toc:
        toc["parts"] = [dict(p, chapters=_prune(p["chapters"], keep, drop)) for p in toc["parts"]]
    (site / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    if (root / "recos_utils" / "runner" / "pages.py").exists():   # the book's own project, not a test's
        from recos_utils.runner import pages

        pages.write_pages(site, out_dir / "results")
    return site
