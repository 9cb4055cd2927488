"""``recos-book run``: execute the chapters with papermill, then build the HTML book.

Execution and rendering are separate steps, as in the QuantEcon lecture books:

1. each chapter ``book/NN_topic.ipynb`` is executed by papermill into
   ``OUT/executed/NN_topic.ipynb`` with the parameters ``QUICK``, ``DEVICE`` and
   ``RESULTS_DIR=OUT/results`` (chapters write ``OUT/results/NN_topic.json``), unless
   nothing it depends on changed since its last finished run (``run_state``): then its
   executed notebook and results file are reused ("unchanged, reused"); ``--force`` runs
   it anyway. Up to ``--jobs`` chapters execute at once, each in its own process
   (``lanes``; default two in quick mode, one in full mode). While a chapter runs, the
   terminal shows the cell and the training going on (``run_progress``);
2. the book sources and every chapter's last finished executed notebook (the chapters of
   ``--only`` and the others alike) are staged in ``OUT/site`` (``book_site``) and built
   by Jupyter Book with execution off and warnings as errors; the HTML lands in
   ``OUT/html`` (open ``OUT/html/index.html``). A staged site identical to the last one
   built is not built again.

A failing cell names the chapter and the cell; a build warning fails the build. Ctrl-C
stops cleanly and says which chapters finished; trained models are cached, so a second
run reuses them. A notebook a stopped run left half-written is never shown as finished:
it is run again when selected, and otherwise left out of the book with a warning.

``recos-book export-weights CHECKPOINT OUT.json`` writes a reader's LeNet-5 ``state_dict`` as
JSON for the explore page's file picker (:func:`recos_utils.runner.explorer.export_weights`);
a checkpoint it cannot use gets one message and exit status 2, and no file.
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

__all__ = ["main", "find_root", "chapters", "execute_chapter", "build_book", "plan"]


class BookError(RuntimeError):
    """A chapter or the book build failed; the message says where."""


def find_root(start: Path | None = None) -> Path:
    """The project root: the nearest folder above ``start`` holding _config.yml and book/."""
    here = (start or Path.cwd()).resolve()
    for p in [here, *here.parents]:
        if (p / "_config.yml").is_file() and (p / "book").is_dir():
            return p
    pkg_root = Path(__file__).resolve().parents[2]
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
                    data_dir: str | None = None, extra: dict | None = None,
                    lane: int = 0) -> Path:
    """Execute one chapter with papermill; raise :class:`BookError` naming a failing cell.
    ``lane``: the line of its progress in a terminal, when chapters run side by side."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from recos_utils.runner.kernel_fixes import KERNEL_ARGS, poll_in_slices

    poll_in_slices()  # a lost wake-up on the shell socket must not hang the run
    executed = out_dir / "executed" / nb.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    params = {"QUICK": quick, "DEVICE": device,
              "RESULTS_DIR": str((out_dir / "results").resolve())}
    if data_dir is not None:
        params["DATA_DIR"] = data_dir
    params.update(extra or {})
    import nbformat

    from recos_utils.runner.run_progress import ChapterProgress, install_engine

    n_cells = len(nbformat.read(nb, as_version=4).cells) + 1      # + papermill's parameters
    try:
        with ChapterProgress(nb.stem, n_cells, position=lane) as progress:
            pm.execute_notebook(str(nb), str(executed), parameters=params, cwd=str(nb.parent),
                                progress_bar=False, log_output=False, kernel_name="python3",
                                engine_name=install_engine(), extra_arguments=list(KERNEL_ARGS))
    except PapermillExecutionError as e:
        # papermill's index counts its injected cell; name the cell of the source notebook
        src_index = _source_index(nb, e.source, e.cell_index)
        first = (e.source or "").strip().splitlines()[:1] or [""]
        raise BookError(f"chapter {nb.stem} failed in cell {src_index} of {nb.name} (counting "
                        f"from 0; it begins {first[0][:60]!r}): {e.ename}: {e.evalue}\n  the "
                        f"executed notebook with the traceback: {executed}") from None
    _tidy_executed(executed, training_s=progress.training_s)
    return executed


def _source_index(nb: Path, source: str, fallback: int) -> int:
    """Index of the cell with ``source`` in the source notebook (papermill counts its own)."""
    import nbformat

    for i, c in enumerate(nbformat.read(nb, as_version=4).cells):
        if c.cell_type == "code" and c.source == source:
            return i
    return fallback


def _tidy_executed(path: Path, training_s: float | None = None) -> None:
    """Hide papermill's injected-parameters cell in the rendered page; record the wall
    seconds the chapter spent training (``metadata.recos_book.training_s``, read by
    ``benchmarks/book_time.py``)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    if training_s is not None:
        nb.metadata.setdefault("recos_book", {})["training_s"] = round(training_s, 2)
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell["metadata"]["tags"] = tags + ["remove-cell"]
    nbformat.write(nb, path)


def build_book(root: Path, out_dir: Path, executed: list[Path], records: dict | None = None,
               *, last: str | None = None) -> tuple[Path, str | None]:
    """Build the HTML book from executed notebooks (execution off, warnings as errors).

    Returns ``(index.html, the staged site's checksum)``; when that checksum equals
    ``last`` and the HTML is there, the build is skipped (the site is what was built)."""
    from recos_utils.runner import book_site
    from recos_utils.runner import run_state

    site = book_site.stage(root, out_dir, executed, records or {})
    digest = run_state.tree_sha256(site)
    html = out_dir / "html"
    if last is not None and digest == last and (html / "index.html").is_file():
        print("[recos-book] the book is unchanged since its last build: reused", flush=True)
        return html / "index.html", digest
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
    if html.exists():
        shutil.rmtree(html)
    shutil.move(str(site / "_build" / "html"), str(html))
    return html / "index.html", digest


def plan(selected: list[Path], out_dir: Path, state: dict, fingerprints: dict[str, str],
         force: bool = False) -> dict[str, str]:
    """What to do with each selected chapter: ``"run"`` or ``"reuse"``, and why
    (``{stem: reason}`` for the runs; reused chapters map to ``"reuse"``)."""
    from recos_utils.runner import run_state

    out = {}
    for nb in selected:
        rec = state["chapters"].get(nb.stem)
        executed = out_dir / "executed" / nb.name
        results = out_dir / "results" / f"{nb.stem}.json"
        if force:
            out[nb.stem] = "--force"
        elif rec is None:
            out[nb.stem] = "no finished run on record" if not executed.exists() else \
                "its executed notebook is incomplete (a stopped run?)"
        elif not executed.is_file() or not run_state.results_intact(rec, results):
            out[nb.stem] = (f"its executed notebook or results file is missing from "
                            f"{out_dir} or changed (deleted?)")
        elif not run_state.is_complete(state, nb.stem, executed):
            out[nb.stem] = "its executed notebook changed since its run"
        elif rec["fingerprint"] != fingerprints[nb.stem]:
            out[nb.stem] = "its notebook, parameters, data, code or torch versions changed"
        else:
            out[nb.stem] = "reuse"
    return out


def run(args) -> int:
    from recos_utils.runner import lanes, run_state

    root = find_root()
    out_dir = Path(args.out).resolve()
    for var in ("RECOS_DATA_DIR", "RECOS_CACHE_DIR"):  # kernels run in book/: pin relative paths
        if os.environ.get(var):
            os.environ[var] = str(Path(os.environ[var]).expanduser().resolve())
    if args.data_dir is not None:
        args.data_dir = str(Path(args.data_dir).expanduser().resolve())
    all_chapters = chapters(root)
    try:
        selected = select(all_chapters, args.only)
    except BookError as e:
        print(f"recos-book: {e}", file=sys.stderr)
        return 2
    if args.jobs is not None and args.jobs < 1:
        print(f"recos-book: --jobs {args.jobs} is not allowed: give at least 1 (chapters "
              f"executed at once)", file=sys.stderr)
        return 2
    if args.device == "cuda":
        from recos_utils.core.device import DeviceError, resolve_device

        try:
            resolve_device("cuda")
        except DeviceError as e:
            print(f"recos-book: {e}", file=sys.stderr)
            return 2
    state = run_state.load(out_dir)
    data = run_state.data_checksum(args.data_dir)
    params = {"mode": args.mode, "device": args.device,
              "data_dir": args.data_dir or os.environ.get("RECOS_DATA_DIR")}
    prints = {nb.stem: run_state.fingerprint(nb, params, data) for nb in selected}
    todo = plan(selected, out_dir, state, prints, force=args.force)
    done, timings, started = [], {}, {}
    runs = [nb for nb in selected if todo[nb.stem] != "reuse"]
    for nb in selected:
        if todo[nb.stem] == "reuse":
            rec = state["chapters"][nb.stem]
            print(f"[recos-book] {nb.stem}: unchanged, reused (its {rec['mode']} run of "
                  f"{rec['finished']})", flush=True)

    def on_start(nb: Path) -> None:
        started[nb.stem] = time.perf_counter()
        print(f"[recos-book] executing {nb.stem} ({args.mode} mode, device {args.device}; "
              f"{todo[nb.stem]}) ...", flush=True)
        state["chapters"].pop(nb.stem, None)   # until it finishes, it has no record
        run_state.save(out_dir, state)

    def on_done(nb: Path, executed: Path) -> None:
        timings[nb.stem] = round(time.perf_counter() - started[nb.stem], 1)
        run_state.record(state, nb.stem, executed, fingerprint=prints[nb.stem],
                         mode=args.mode, device=args.device, seconds=timings[nb.stem],
                         results=out_dir / "results" / f"{nb.stem}.json")
        run_state.save(out_dir, state)
        done.append(nb.stem)
        print(f"[recos-book]   {nb.stem} done in {timings[nb.stem]} s", flush=True)

    kwargs = dict(quick=args.mode == "quick", device=args.device, data_dir=args.data_dir)
    jobs = min(args.jobs or lanes.default_jobs(args.mode == "quick"), max(1, len(runs)))
    if jobs > 1:
        print(f"[recos-book] {len(runs)} chapters to execute, {jobs} at a time", flush=True)
    t_start = time.perf_counter()
    try:
        lanes.run_side_by_side([(nb, execute_chapter, (nb, out_dir), kwargs) for nb in runs],
                               jobs, on_start, on_done, lane_arg="lane")
        t_built = time.perf_counter()
        if args.no_build:
            return 0
        book = []
        for nb in all_chapters:
            ex = out_dir / "executed" / nb.name
            if run_state.is_complete(state, nb.stem, ex):
                book.append(ex)
            elif ex.exists():
                print(f"recos-book: warning: {ex} is incomplete (a stopped run?) and is left "
                      f"out of the book; run `recos-book run --only {nb.stem[:2]}` to finish "
                      f"it", file=sys.stderr)
        print(f"[recos-book] building the HTML book from {len(book)} chapters (execution off, "
              f"warnings as errors) ...", flush=True)
        index, state["build"] = build_book(root, out_dir, book, state["chapters"],
                                           last=None if args.force else state.get("build"))
        run_state.save(out_dir, state)
    except (BookError, lanes.LaneError) as e:     # a failing cell or build; a dead process
        print(f"recos-book: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        left = [c.stem for c in selected if c.stem not in done and todo[c.stem] != "reuse"]
        print(f"\nrecos-book: interrupted. Finished: {', '.join(done) or 'none'}; not finished: "
              f"{', '.join(left)}. Trained models are cached: run the same command again to "
              f"resume.", file=sys.stderr)
        return 130
    (out_dir / "timings.json").write_text(json.dumps(
        {"mode": args.mode, "device": args.device, "seconds": timings, "jobs": jobs,
         "executing_s": round(t_built - t_start, 1),
         "build_s": round(time.perf_counter() - t_built, 1)}, indent=2) + "\n")
    print(f"[recos-book] the book is at {index}")
    return 0


def export_weights(args) -> int:
    """``recos-book export-weights``: a LeNet-5 checkpoint -> JSON for the explorer page."""
    from recos_utils.runner import explorer

    try:
        out = explorer.export_weights(args.checkpoint, args.out, activation=args.activation,
                                      pool=args.pool, pad_value=args.pad_value)
    except explorer.WeightsError as e:
        print(f"recos-book export-weights: {e}", file=sys.stderr)
        return 2
    print(f"[recos-book] wrote {out} ({out.stat().st_size:,} bytes): on the explore page, "
          f"load it with \"Your network\"")
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
    r.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="chapters executed at once, each in its own process (default: 2 in "
                        "quick mode, 1 in full mode); the numbers do not depend on it")
    r.add_argument("--force", action="store_true",
                   help="execute the chapters (and build) even when nothing they depend on "
                        "changed since their last run")
    e = sub.add_parser("export-weights",
                       help="write a LeNet-5 checkpoint as JSON for the explore page",
                       description="Write the LeNet-5 state_dict in CHECKPOINT (torch.save of "
                                   "recos_utils.core.models.LeNet5().state_dict(), or a dict "
                                   "with a 'state_dict' key) to OUT as JSON, for the explore "
                                   "page's \"Your network\" file picker.")
    e.add_argument("checkpoint", metavar="CHECKPOINT", help="the .pt file torch.save wrote")
    e.add_argument("out", metavar="OUT.json", help="the JSON file to write")
    e.add_argument("--activation", default="relu",
                   choices=("relu", "identity", "leaky_relu", "tanh", "sigmoid", "abs"),
                   help="the network's activation (default: relu)")
    e.add_argument("--pool", default="max", choices=("max", "avg"),
                   help="its pooling (default: max)")
    e.add_argument("--pad-value", type=float, default=0.0,
                   help="the value LeNet5 pads the 28x28 input with (default: 0)")
    args = ap.parse_args(argv)
    return export_weights(args) if args.cmd == "export-weights" else run(args)


if __name__ == "__main__":
    sys.exit(main())
