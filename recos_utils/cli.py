"""``recos-book run``: execute every chapter with papermill, then build the HTML book.

Execution and rendering are separate steps, as in the QuantEcon lecture books:

1. each chapter ``book/NN_topic.ipynb`` is executed by papermill into
   ``OUT/executed/NN_topic.ipynb`` with the parameters ``QUICK``, ``DEVICE`` and
   ``RESULTS_DIR=OUT/results`` (chapters write ``OUT/results/NN_topic.json``);
2. the book sources (``_config.yml``, ``_toc.yml``, ``book/*.md``) and the executed
   notebooks are staged in ``OUT/site`` and built by Jupyter Book with execution off and
   warnings as errors; the HTML lands in ``OUT/html`` (open ``OUT/html/index.html``).

A failing cell names the chapter and the cell; a build warning fails the build. Ctrl-C
stops cleanly and says which chapters finished; trained models are cached, so a second
run reuses them.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["main", "find_root", "chapters", "execute_chapter", "build_book"]


class BookError(RuntimeError):
    """A chapter or the book build failed; the message says where."""


def find_root(start: Path | None = None) -> Path:
    """The project root: the nearest folder above ``start`` holding _config.yml and book/."""
    here = (start or Path.cwd()).resolve()
    for p in [here, *here.parents]:
        if (p / "_config.yml").is_file() and (p / "book").is_dir():
            return p
    pkg_root = Path(__file__).resolve().parent.parent
    if (pkg_root / "_config.yml").is_file():
        return pkg_root
    raise BookError(f"no book found: run recos-book from the project folder (the one with "
                    f"_config.yml and book/); searched upwards from {here}")


def chapters(root: Path) -> list[Path]:
    """The chapter notebooks, in order (``book/NN_*.ipynb``)."""
    return sorted(p for p in (root / "book").glob("[0-9][0-9]_*.ipynb"))


def select(all_chapters: list[Path], only: list[str] | None) -> list[Path]:
    """Chapters matching ``only`` (by number ``02``, stem or file name); all when empty."""
    if not only:
        return all_chapters
    picked = []
    for want in only:
        w = Path(want).stem
        hits = [c for c in all_chapters if c.stem == w or c.stem.split("_")[0] == w.zfill(2)]
        if not hits:
            names = ", ".join(c.stem for c in all_chapters)
            raise BookError(f"--only {want!r} matches no chapter; chapters are: {names}")
        picked += [h for h in hits if h not in picked]
    return sorted(picked)


def execute_chapter(nb: Path, out_dir: Path, *, quick: bool, device: str,
                    data_dir: str | None = None, extra: dict | None = None) -> Path:
    """Execute one chapter with papermill; raise :class:`BookError` naming a failing cell."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from .kernel_fixes import poll_in_slices

    poll_in_slices()  # a lost wake-up on the shell socket must not hang the run
    executed = out_dir / "executed" / nb.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    params = {"QUICK": quick, "DEVICE": device,
              "RESULTS_DIR": str((out_dir / "results").resolve())}
    if data_dir is not None:
        params["DATA_DIR"] = data_dir
    params.update(extra or {})
    try:
        pm.execute_notebook(str(nb), str(executed), parameters=params, cwd=str(nb.parent),
                            progress_bar=False, log_output=False, kernel_name="python3")
    except PapermillExecutionError as e:
        # papermill's index counts its injected cell; name the cell of the source notebook
        src_index = _source_index(nb, e.source, e.cell_index)
        first = (e.source or "").strip().splitlines()[:1] or [""]
        raise BookError(f"chapter {nb.stem} failed in cell {src_index} of {nb.name} (counting "
                        f"from 0; it begins {first[0][:60]!r}): {e.ename}: {e.evalue}\n  the "
                        f"executed notebook with the traceback: {executed}") from None
    _tidy_executed(executed)
    return executed


def _source_index(nb: Path, source: str, fallback: int) -> int:
    """Index of the cell with ``source`` in the source notebook (papermill counts its own)."""
    import nbformat

    for i, c in enumerate(nbformat.read(nb, as_version=4).cells):
        if c.cell_type == "code" and c.source == source:
            return i
    return fallback


def _tidy_executed(path: Path) -> None:
    """Hide papermill's injected-parameters cell in the rendered page."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell["metadata"]["tags"] = tags + ["remove-cell"]
    nbformat.write(nb, path)


def _stage(root: Path, out_dir: Path, executed: list[Path]) -> Path:
    """Lay out the book sources with executed notebooks in ``OUT/site``."""
    import yaml

    site = out_dir / "site"
    if site.exists():
        shutil.rmtree(site)
    (site / "book").mkdir(parents=True)
    for name in ("_config.yml", "references.bib"):
        if (root / name).exists():
            shutil.copy2(root / name, site / name)
    for p in (root / "book").iterdir():
        if p.suffix in (".md", ".bib", ".png", ".svg") or (p.is_dir() and p.name == "_static"):
            (shutil.copytree if p.is_dir() else shutil.copy2)(p, site / "book" / p.name)
    for nb in executed:
        shutil.copy2(nb, site / "book" / nb.name)
    keep = {f"book/{nb.stem}" for nb in executed}
    toc = yaml.safe_load((root / "_toc.yml").read_text())

    def prune(entries):
        out = []
        for e in entries:
            f = e.get("file", "")
            if Path(f).name[:2].isdigit() and f not in keep:
                continue
            if "sections" in e:
                e = dict(e, sections=prune(e["sections"]))
            out.append(e)
        return out

    for key in ("chapters", "parts"):
        if key in toc:
            if key == "parts":
                toc["parts"] = [dict(p, chapters=prune(p["chapters"])) for p in toc["parts"]]
            else:
                toc["chapters"] = prune(toc["chapters"])
    (site / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    pages = root / "recos_utils" / "pages.py"
    if pages.exists():
        from . import pages as pages_mod

        pages_mod.write_pages(site, out_dir / "results")
    return site


def build_book(root: Path, out_dir: Path, executed: list[Path]) -> Path:
    """Build the HTML book from executed notebooks (execution off, warnings as errors)."""
    site = _stage(root, out_dir, executed)
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(site), "--builder",
           "html", "-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log = out_dir / "build.log"
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stdout + proc.stderr).splitlines()
                 if "WARNING" in ln or "ERROR" in ln or "Error" in ln]
        first = "\n  ".join(lines[:10]) or (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise BookError(f"the book build failed (warnings are errors):\n  {first}\n  full log: {log}")
    html = out_dir / "html"
    if html.exists():
        shutil.rmtree(html)
    shutil.move(str(site / "_build" / "html"), str(html))
    return html / "index.html"


def run(args) -> int:
    root = find_root()
    out_dir = Path(args.out).resolve()
    for var in ("RECOS_DATA_DIR", "RECOS_CACHE_DIR"):  # kernels run in book/: pin relative paths
        if os.environ.get(var):
            os.environ[var] = str(Path(os.environ[var]).expanduser().resolve())
    if args.data_dir is not None:
        args.data_dir = str(Path(args.data_dir).expanduser().resolve())
    selected = select(chapters(root), args.only)
    if args.device == "cuda":
        from .train import DeviceError, resolve_device

        try:
            resolve_device("cuda")
        except DeviceError as e:
            print(f"recos-book: {e}", file=sys.stderr)
            return 2
    done, timings = [], {}
    executed = []
    try:
        for nb in selected:
            t0 = time.perf_counter()
            print(f"[recos-book] executing {nb.stem} ({args.mode} mode, device {args.device}) ...",
                  flush=True)
            executed.append(execute_chapter(nb, out_dir, quick=args.mode == "quick",
                                            device=args.device, data_dir=args.data_dir))
            timings[nb.stem] = round(time.perf_counter() - t0, 1)
            done.append(nb.stem)
            print(f"[recos-book]   done in {timings[nb.stem]} s", flush=True)
        if args.no_build:
            return 0
        print("[recos-book] building the HTML book (execution off, warnings as errors) ...",
              flush=True)
        index = build_book(root, out_dir, executed)
    except BookError as e:
        print(f"recos-book: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        left = [c.stem for c in selected if c.stem not in done]
        print(f"\nrecos-book: interrupted. Finished: {', '.join(done) or 'none'}; not finished: "
              f"{', '.join(left)}. Trained models are cached: run the same command again to "
              f"resume.", file=sys.stderr)
        return 130
    (out_dir / "timings.json").write_text(json.dumps(
        {"mode": args.mode, "device": args.device, "seconds": timings}, indent=2) + "\n")
    print(f"[recos-book] the book is at {index}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="recos-book", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute the chapters with papermill and build the book")
    r.add_argument("--mode", choices=("quick", "full"), default="full",
                   help="full: the faithful run (default); quick: small and fast, for CI")
    r.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    r.add_argument("--only", nargs="+", metavar="CHAPTER",
                   help="chapters to run, by number (02) or name (02_sign_confusion)")
    r.add_argument("--out", default="_build", help="output folder (default: _build)")
    r.add_argument("--data-dir", default=None,
                   help="data root (default: $RECOS_DATA_DIR, else the per-user cache)")
    r.add_argument("--no-build", action="store_true", help="execute only; skip the HTML build")
    args = ap.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
