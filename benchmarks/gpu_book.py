"""Benchmark: every chapter's code on a GPU, in full mode, chapter by chapter (issue 25).

The device machines this project is lent now and then hold PyTorch but not the notebook
stack (papermill, Jupyter, myst-nb) and cannot install it. This script therefore executes
each chapter's code cells in order in one Python process, with the parameters cell's
``DEVICE`` set to ``cuda`` (``QUICK`` as asked), and with stand-ins for the display-only
modules (``IPython.display``, ``myst_nb.glue``, ``ipywidgets``), which do no work that
takes time. Training, evaluation and analysis are the chapters' own code. Each chapter's
wall time, the number of cells and the results file it wrote are recorded in
``--out/gpu_book.json`` after every chapter, so a run that is stopped keeps what it did.

Usage (from the project folder, with ``RECOS_DATA_DIR`` set)::

    python benchmarks/gpu_book.py --out /tmp/gpu [--quick] [--only 01 02]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent


def _stub_display_modules() -> None:
    for name in ("IPython", "IPython.display", "ipywidgets", "myst_nb"):
        sys.modules[name] = mock.MagicMock(name=name)
    sys.modules["myst_nb"].glue = lambda *a, **k: None
    sys.modules["IPython"].version_info = (9, 0)          # matplotlib asks; no shell runs
    sys.modules["IPython"].get_ipython = lambda: None


def _parameters(nb: dict, quick: bool, device: str, results: Path) -> str:
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    return "".join(cell["source"]) + (f"\nQUICK = {quick!r}\nDEVICE = {device!r}\n"
                                      f"RESULTS_DIR = {str(results)!r}\n")


def run_chapter(path: Path, quick: bool, device: str, results: Path) -> dict:
    nb = json.loads(path.read_text())
    ns: dict = {"__name__": "__main__"}
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"
             and "parameters" not in c["metadata"].get("tags", [])]
    os.chdir(ROOT / "book")
    t0 = time.perf_counter()
    exec(compile(_parameters(nb, quick, device, results), f"{path.stem}:parameters", "exec"), ns)
    slow = []
    for i, c in enumerate(cells):
        t = time.perf_counter()
        exec(compile("".join(c["source"]), f"{path.stem}:cell{i}", "exec"), ns)
        slow.append((round(time.perf_counter() - t, 2), "".join(c["source"])[:60]))
    import matplotlib.pyplot as plt

    plt.close("all")
    return {"seconds": round(time.perf_counter() - t0, 1), "cells": len(cells),
            "slowest": sorted(slow, reverse=True)[:3]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--device", default="cuda", help="cuda (the point), or cpu to try it")
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    _stub_display_modules()
    import torch

    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
              "torch": torch.__version__, "quick": args.quick, "chapters": {}}
    chapters = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        chapters = [c for c in chapters if c.name[:2] in args.only]
    t0 = time.perf_counter()
    for path in chapters:
        print(f"[gpu_book] {path.stem} ...", flush=True)
        try:
            report["chapters"][path.stem] = run_chapter(path, args.quick, args.device,
                                                         args.out / "results")
        except Exception as e:  # record and go on: one chapter's failure is a finding
            import traceback

            traceback.print_exc()
            report["chapters"][path.stem] = {"error": f"{type(e).__name__}: {e}"}
        report["total_s"] = round(time.perf_counter() - t0, 1)
        (args.out / "gpu_book.json").write_text(json.dumps(report, indent=1))
        print(f"[gpu_book] {path.stem}: {report['chapters'][path.stem]}", flush=True)


if __name__ == "__main__":
    main()
