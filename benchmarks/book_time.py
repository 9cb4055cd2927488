"""Benchmark: how long the whole book takes, chapter by chapter, and how fast it trains.

1. **Book wall time.** Runs ``recos-book run`` in quick and/or full mode, each with a fresh,
   empty model cache (``RECOS_CACHE_DIR`` in a temporary folder), so that training is
   measured, not cache loads. Per chapter it records the wall time ``recos-book`` measured
   (``OUT/timings.json``), papermill's duration of the executed notebook, the wall time of
   its training (``train_all`` calls, which ``recos-book`` writes into the executed
   notebook's metadata) and its slowest cells (the cell durations papermill stores in the
   notebook metadata); the HTML build time is the rest of the wall time. Targets on 2 CPU
   cores (issue 25): full book <= 10 min, quick book <= 90 s. ``--before-from`` takes the
   runs of another ``book_time.json`` (made on a clone of the commit before a change, by its
   own copy of this script) as the "before", shown side by side with this run's chapters.
2. **Training FLOP rate.** The FLOPs of one LeNet-5 training step per sample (forward +
   backward, counted analytically and cross-checked with
   ``torch.utils.flop_counter.FlopCounterMode``; only convolutions and matrix products
   count, as usual) times the samples per second the book's trainer (``train.fit``)
   achieves, on one thread and on all cores (``trainer.train_all``: one model per worker
   process, as the chapters train), against a large float32 matrix product on the same
   machine, on one thread and on all threads.

Results go to ``benchmarks/book_time.json`` (a run of one mode keeps the other mode's
entry) and a summary to ``benchmarks/BOOK_TIME.md``. The machine should be otherwise idle.

Usage (from the project folder, with ``RECOS_DATA_DIR`` set)::

    python benchmarks/book_time.py                    # quick and full book, FLOP rates
    python benchmarks/book_time.py --modes quick --only 01
    python benchmarks/book_time.py --flops-only
    python benchmarks/book_time.py --before-from /tmp/old/benchmarks/book_time.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
JSON_PATH = ROOT / "benchmarks" / "book_time.json"
MD_PATH = ROOT / "benchmarks" / "BOOK_TIME.md"
TARGETS_S = {"quick": 90, "full": 10 * 60}


# ----------------------------------------------------------------------------- machine
def machine() -> dict:
    import torch

    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                  .splitlines() if ln.startswith("model name")), platform.processor()) \
        if Path("/proc/cpuinfo").exists() else platform.processor()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return {"cpu": model, "cores": cores, "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "load_avg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}


# ----------------------------------------------------------------------------- the book
def _first_line(src) -> str:
    """A cell's label: its first code line, or the line that trains if it trains.

    Training is most of a slow cell's time, and a training cell often begins with loading
    or configs (Chapter 2's read as ``test = load_dataset(...)``), so the line that calls
    the one trainer, ``train_all(``, names the cell where there is one."""
    text = "".join(src) if isinstance(src, list) else src
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and not ln.strip().startswith("#")]
    trains = [ln for ln in lines if "train_all(" in ln]
    return ((trains or lines)[0] if lines else "")[:80]


def notebook_timing(path: Path, top: int = 3) -> dict:
    """papermill's total and per-cell durations of an executed notebook."""
    nb = json.loads(path.read_text())
    cells = []
    for i, cell in enumerate(nb.get("cells", [])):
        d = cell.get("metadata", {}).get("papermill", {}).get("duration")
        if d is not None and cell.get("cell_type") == "code":
            cells.append({"cell": i, "seconds": round(d, 2), "code": _first_line(cell["source"])})
    cells.sort(key=lambda c: -c["seconds"])
    total = nb.get("metadata", {}).get("papermill", {}).get("duration")
    return {"papermill_s": round(total, 2) if total is not None else None,
            "code_cells_s": round(sum(c["seconds"] for c in cells), 2),
            "training_s": nb.get("metadata", {}).get("recos_book", {}).get("training_s"),
            "slowest_cells": cells[:top]}


#: What the budget cost and what runs where (prose, kept by hand): the end of BOOK_TIME.md.
NOTES_PATH = ROOT / "benchmarks" / "book_time_notes.md"


def gpu_section(path: Path = ROOT / "benchmarks" / "gpu_book.json") -> list[str]:
    """The GPU times recorded by ``benchmarks/gpu_book.py`` (on a lent device machine)."""
    lines = ["## On a GPU", ""]
    if not path.is_file():
        return lines + ["No GPU time is recorded yet (`benchmarks/gpu_book.py` writes it).", ""]
    g = json.loads(path.read_text())
    lines += [f"Full mode, `DEVICE=\"cuda\"`, on one {g['device']} (PyTorch {g['torch']}), "
              f"{g.get('date', '')}, by `benchmarks/gpu_book.py`: every chapter's cells in one "
              f"process, fresh model store. {g.get('note', '')}", "",
              "| Chapter | wall s | slowest cell (s) |", "|---|---:|---|"]
    for stem, c in g["chapters"].items():
        slow = c.get("slowest") or [[None, c.get("error", "")]]
        lines.append(f"| {stem} | {c.get('seconds', 'failed')} | "
                     f"{slow[0][0]} `{str(slow[0][1]).splitlines()[0][:60]}` |")
    lines += ["", f"Chapters 1-6: {g['total_s_chapters_1_to_6']} s. The models train one "
              "after another on the GPU (Chapter 6's designs on the CPU, in a pool of "
              "workers), so small LeNet-5s leave the GPU mostly idle: Chapter 2's 72 networks "
              "are most of the time.", ""]
    return lines


def run_book(mode: str, *, device: str = "cpu", only: list[str] | None = None,
             keep: Path | None = None, jobs: int | None = None) -> dict:
    """``recos-book run`` once with a fresh model cache; wall times per chapter."""
    work = Path(tempfile.mkdtemp(prefix=f"book_time_{mode}_"))
    out = keep / mode if keep else work / "out"
    if out.exists():
        shutil.rmtree(out)
    env = dict(os.environ, RECOS_CACHE_DIR=str(work / "cache"), RECOS_PROGRESS="0")
    cmd = [sys.executable, "-m", "recos_utils.runner.cli", "run", "--mode", mode, "--device", device,
           "--out", str(out)] + (["--only", *only] if only else []) \
        + (["--jobs", str(jobs)] if jobs else [])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    res = {"mode": mode, "device": device, "only": only or "all", "returncode": proc.returncode,
           "wall_s": round(wall, 1), "fresh_cache": True, "chapters": {}}
    timings = out / "timings.json"
    told = json.loads(timings.read_text()) if timings.exists() else {}
    seconds = told.get("seconds", {})
    for nb in sorted((out / "executed").glob("*.ipynb")):
        entry = {"wall_s": seconds.get(nb.stem)}
        entry.update(notebook_timing(nb))
        res["chapters"][nb.stem] = entry
    # chapters side by side overlap: recos-book measures the span of their execution
    ch_total = told.get("executing_s", sum(v["wall_s"] or 0 for v in res["chapters"].values()))
    res["chapters_s"], res["jobs"] = round(ch_total, 1), told.get("jobs", 1)
    res["build_and_overhead_s"] = round(wall - ch_total, 1) if proc.returncode == 0 else None
    if proc.returncode != 0:
        res["error"] = (proc.stderr or proc.stdout)[-2000:]
    else:   # the same command again, nothing changed: every chapter and the build reused
        t0 = time.perf_counter()
        again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        res["rerun"] = {"wall_s": round(time.perf_counter() - t0, 1),
                        "returncode": again.returncode,
                        "chapters_reused": again.stdout.count(": unchanged, reused"),
                        "build_reused": "book is unchanged" in again.stdout}
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return res


# ----------------------------------------------------------------------------- FLOP rates
def lenet5_flops_per_sample() -> dict:
    """FLOPs of one training step per sample (2 per multiply-add), analytic and counted."""
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from recos_utils.core.models import LeNet5

    # multiply-adds of each layer's forward pass on a 28x28 input padded to 32x32
    macs = {"conv1": 6 * 28 * 28 * 1 * 5 * 5, "conv2": 16 * 10 * 10 * 6 * 5 * 5,
            "fc1": 400 * 120, "fc2": 120 * 84, "fc3": 84 * 10}
    fwd = 2 * sum(macs.values())
    # backward: a weight gradient for every layer (as many FLOPs as its forward pass) and an
    # input gradient for every layer but the first (its input needs none)
    bwd = 2 * sum(macs.values()) + 2 * sum(v for k, v in macs.items() if k != "conv1")
    batch = 128
    model = LeNet5()
    x, y = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    with FlopCounterMode(display=False) as fc:
        F.cross_entropy(model(x), y).backward()
    counted = fc.get_total_flops() / batch
    return {"forward": fwd, "backward": bwd, "train_step": fwd + bwd,
            "flop_counter_train_step": counted,
            "agree": abs(counted - (fwd + bwd)) <= 0.01 * (fwd + bwd)}


def matmul_gflops(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """Best float32 GFLOP/s of an n x n matrix product on ``threads`` threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b  # warm-up
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    return 2 * n ** 3 / best / 1e9


def training_rates(flops_per_sample: float, n_train: int = 20000) -> dict:
    """Samples/s and GFLOP/s of the book's trainer: one model on one thread, and one model
    per core in worker processes (as the chapters train)."""
    from recos_utils.core.data import DataError, Dataset, load_dataset
    import dataclasses

    from recos_utils.core import fastpool
    from recos_utils.core.device import workers
    from recos_utils.core.kinds import lenet_specs
    from recos_utils.core.train import RECIPE, TrainConfig, fit
    from recos_utils.core.trainer import train_all

    try:
        ds = load_dataset("mnist", "train").subset(n_train)
        data = "MNIST (first %d training digits)" % n_train
    except DataError:
        import torch

        g = torch.Generator().manual_seed(0)
        ds = Dataset(torch.randint(0, 256, (n_train, 28, 28), dtype=torch.uint8, generator=g),
                     torch.randint(0, 10, (n_train,), generator=g), "random", "train")
        data = f"random uint8 digits ({n_train}; MNIST not found)"
    recipe = dataclasses.replace(RECIPE, epochs=1.0)   # the book's recipe, one pass
    cfg = TrainConfig(n_train=n_train, recipe=recipe)

    def rate(native: str) -> float:
        """Samples/s of one run of ``fit`` on one thread; RECOS_NATIVE=0 pools with PyTorch's
        kernel (the path before the compiled pooling), 1 with the compiled loop."""
        with mock.patch.dict(os.environ, RECOS_NATIVE=native):
            hist = fit(cfg.model(), ds.images, ds.labels, recipe=recipe, seed=0, threads=1,
                       desc="flops")
        return n_train / hist["seconds"]

    # old and new side by side, interleaved, best of three each
    rates = {"0": [], "1": []}
    for _ in range(3):
        for flag in rates:
            rates[flag].append(rate(flag))
    one, old = max(rates["1"]), max(rates["0"])
    out = {"data": data, "batch_size": recipe.batch_size, "pooling": fastpool.status(),
           "one_thread": {"samples_per_s": round(one, 1),
                          "gflops": round(one * flops_per_sample / 1e9, 3)},
           "one_thread_kernel_pool": {"samples_per_s": round(old, 1),
                                      "gflops": round(old * flops_per_sample / 1e9, 3),
                                      "speedup_of_new": round(one / old, 3)}}
    n = workers()
    if data.startswith("MNIST") and n > 1:
        t0 = time.perf_counter()
        runs = train_all(lenet_specs([TrainConfig(n_train=n_train, recipe=recipe, seed=s)
                                      for s in range(n)]), use_cache=False)
        wall = time.perf_counter() - t0
        in_fit = sum(n_train / r.history["seconds"] for r in runs)
        out["all_cores"] = {"models": n, "wall_s": round(wall, 2),
                            "samples_per_s_wall": round(n * n_train / wall, 1),
                            "gflops_wall": round(n * n_train / wall * flops_per_sample / 1e9, 3),
                            "samples_per_s_in_fit": round(in_fit, 1),
                            "gflops_in_fit": round(in_fit * flops_per_sample / 1e9, 3)}
    return out


def flop_report() -> dict:
    import torch

    fl = lenet5_flops_per_sample()
    mm1 = matmul_gflops(1)
    mm_all = matmul_gflops(torch.get_num_threads())
    tr = training_rates(fl["train_step"])
    tr["one_thread"]["fraction_of_matmul_1_thread"] = round(tr["one_thread"]["gflops"] / mm1, 4)
    if "all_cores" in tr:
        tr["all_cores"]["fraction_of_matmul_all_threads"] = round(
            tr["all_cores"]["gflops_wall"] / mm_all, 4)
    return {"lenet5_flops_per_sample": fl,
            "matmul_float32_2048": {"gflops_1_thread": round(mm1, 2),
                                    "gflops_all_threads": round(mm_all, 2),
                                    "threads": torch.get_num_threads()},
            "training": tr}


# ----------------------------------------------------------------------------- report
def say_time(seconds: float) -> str:
    """A target as a reader says it: "90 s", "10 min"."""
    return f"{seconds // 60:.0f} min" if seconds % 60 == 0 else f"{seconds:.0f} s"


def before_after(data: dict) -> list[str]:
    """Each chapter's wall time before and after a change, for the modes measured both ways."""
    before = data.get("before", {})
    lines = []
    for mode, old in before.get("book", {}).items():
        new = data.get("book", {}).get(mode)
        if not new:
            continue
        lines += [f"## {mode.capitalize()} book, before and after", "",
                  f"Before: {before.get('what', '?')}, measured {old.get('date', '?')}. "
                  f"After: this run, measured {new.get('date', '?')}. Both on a fresh model "
                  "cache, same machine. With chapters side by side, a chapter's wall time "
                  "counts the time it shared the cores with another.", "",
                  "| Chapter | before s | after s |", "|---|---:|---:|"]
        for stem in sorted(set(old["chapters"]) | set(new["chapters"])):
            o, n = old["chapters"].get(stem, {}), new["chapters"].get(stem, {})
            lines.append(f"| {stem} | {o.get('wall_s', '-')} | {n.get('wall_s', '-')} |")
        lines += [f"| HTML build and start-up | {old.get('build_and_overhead_s', '-')} | "
                  f"{new.get('build_and_overhead_s', '-')} |",
                  f"| **whole command** | **{old['wall_s']}** | **{new['wall_s']}** |", ""]
    return lines


def markdown(data: dict) -> str:
    lines = ["# Whole-book speed", "",
             "Written by `benchmarks/book_time.py` from `benchmarks/book_time.json`; do not edit.",
             ""]
    for mode in ("quick", "full"):
        run = data.get("book", {}).get(mode)
        if not run:
            lines += [f"## {mode.capitalize()} book", "", "Not measured yet.", ""]
            continue
        m = run.get("machine", {})
        target = TARGETS_S[mode]
        whole = run["only"] == "all"
        if run["returncode"] != 0:
            verdict = f"the run **failed** (exit {run['returncode']})"
        elif not whole:
            verdict = (f"only chapters {', '.join(run['only'])} ran, so the target "
                       f"({say_time(target)} for the whole book) is not assessed")
        else:
            verdict = ("within" if run["wall_s"] <= target else "**over**") + \
                f" the target of {say_time(target)}"
        lines += [f"## {mode.capitalize()} book", "",
                  f"{run['wall_s']:.0f} s in all ({run['wall_s'] / 60:.1f} min), fresh model "
                  f"cache, device {run['device']}, measured {run.get('date', '?')} on "
                  f"{m.get('cores', '?')} cores ({m.get('cpu', '?')}; 1-min load average "
                  f"{m.get('load_avg_1min', '?')} at the start): {verdict}. Executing the "
                  f"chapters took {run.get('chapters_s', '?')} s, "
                  f"{run.get('jobs', 1)} at a time.", "",
                  "| Chapter | wall s | papermill s | training s | slowest cells (s) |",
                  "|---|---:|---:|---:|---|"]
        for stem, c in run["chapters"].items():
            slow = "; ".join(f"{s['seconds']:.1f} `{s['code'].replace('|', '/')}`"
                             for s in c["slowest_cells"])
            train = c.get("training_s")
            lines.append(f"| {stem} | {c['wall_s'] if c['wall_s'] is not None else '-'} | "
                         f"{c['papermill_s']} | {'-' if train is None else train} | {slow} |")
        if run.get("build_and_overhead_s") is not None:
            lines.append(f"| HTML build and start-up | {run['build_and_overhead_s']} | | | |")
        lines += ["", "*training s*: wall time inside the chapter's `train_all` calls (its worker "
                  "processes training networks not yet in the store); the rest of *papermill s* "
                  "is evaluation, readings, figures and imports, and *wall s* less *papermill s* "
                  "is the kernel's start and shutdown.", ""]
        if run.get("rerun"):
            r = run["rerun"]
            ok = r["wall_s"] <= 30 and r["wall_s"] <= run["wall_s"] / 4
            lines += [f"The same command again, nothing changed: {r['wall_s']:.1f} s "
                      f"({r['chapters_reused']} of {len(run['chapters'])} chapters reused, "
                      f"the build {'reused' if r['build_reused'] else 'run again'}): "
                      + ("within" if ok else "**over**")
                      + " the target of 30 s and a quarter of the first run.", ""]
    fr = data.get("flops")
    lines += ["## Training FLOP rate", ""]
    if not fr:
        lines += ["Not measured yet.", ""]
    else:
        fl, mm, tr = fr["lenet5_flops_per_sample"], fr["matmul_float32_2048"], fr["training"]
        lines += [f"LeNet-5 training step: {fl['train_step'] / 1e6:.3f} MFLOP per sample "
                  f"(forward {fl['forward'] / 1e6:.3f}, backward {fl['backward'] / 1e6:.3f}; "
                  f"FlopCounterMode counts {fl['flop_counter_train_step'] / 1e6:.3f}). "
                  f"Trainer: `train.fit`, batch {tr['batch_size']}, {tr['data']}; measured "
                  f"{fr.get('date', '?')}.", "",
                  "| | GFLOP/s | share of float32 matmul |", "|---|---:|---:|",
                  f"| matmul 2048x2048, 1 thread | {mm['gflops_1_thread']} | |",
                  f"| matmul 2048x2048, {mm['threads']} threads | {mm['gflops_all_threads']} | |",
                  f"| LeNet-5 training, 1 thread ({tr['one_thread']['samples_per_s']:.0f} "
                  f"samples/s) | {tr['one_thread']['gflops']} | "
                  f"{100 * tr['one_thread']['fraction_of_matmul_1_thread']:.1f} % of 1 thread |"]
        if "one_thread_kernel_pool" in tr:
            k = tr["one_thread_kernel_pool"]
            lines.append(f"| the same with PyTorch's max-pool kernel, the path before "
                         f"(`RECOS_NATIVE=0`; {k['samples_per_s']:.0f} samples/s) | {k['gflops']} | "
                         f"{100 * k['gflops'] / mm['gflops_1_thread']:.1f} % of 1 thread |")
        if "all_cores" in tr:
            a = tr["all_cores"]
            lines.append(f"| LeNet-5 training, {a['models']} models in {a['models']} processes "
                         f"({a['samples_per_s_wall']:.0f} samples/s, wall clock incl. start-up) "
                         f"| {a['gflops_wall']} | "
                         f"{100 * a['fraction_of_matmul_all_threads']:.1f} % of all threads |")
            lines.append(f"| the same, inside `fit` only (no process start-up or data loading) "
                         f"| {a['gflops_in_fit']} | "
                         f"{100 * a['gflops_in_fit'] / mm['gflops_all_threads']:.1f} % of all "
                         "threads |")
        if "one_thread_kernel_pool" in tr:
            lines += ["", f"Pooling in the new path: {tr['pooling']}. Old and new ran side by "
                      f"side in one process (interleaved, best of three each): the compiled "
                      f"pooling trains {tr['one_thread_kernel_pool']['speedup_of_new']:.2f}x "
                      "the images per second on one thread, with the same bits."]
        share = 100 * tr["one_thread"]["fraction_of_matmul_1_thread"]
        lines += ["", f"One LeNet-5 training step is {fl['train_step'] / 1e6:.1f} MFLOP per "
                  f"sample, spread over small convolutions, pooling and the optimiser, so the "
                  f"trainer reaches {share:.0f} % of what one thread does in a large matrix "
                  "product: the rest is per-operation overhead, not arithmetic. This is why "
                  "the book trains one model per core (several models side by side) rather "
                  "than one model on all cores.", ""]
    notes = NOTES_PATH.read_text().splitlines() + [""] if NOTES_PATH.is_file() else []
    lines += before_after(data) + notes + gpu_section()
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modes", nargs="+", choices=("quick", "full"), default=["quick", "full"])
    ap.add_argument("--only", nargs="+", metavar="CHAPTER", help="chapters, as for recos-book")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    ap.add_argument("--keep", type=Path, help="keep each run's output in KEEP/<mode>")
    ap.add_argument("--jobs", type=int, help="chapters at once (recos-book run --jobs)")
    ap.add_argument("--before-from", type=Path, metavar="JSON",
                    help="another book_time.json whose book runs are the 'before' of a change")
    ap.add_argument("--before-what", default="the previous commit",
                    help="what the 'before' runs measured (shown in BOOK_TIME.md)")
    ap.add_argument("--no-flops", action="store_true", help="skip the FLOP-rate measurement")
    ap.add_argument("--flops-only", action="store_true", help="only the FLOP-rate measurement")
    ap.add_argument("--render-only", action="store_true",
                    help="only rewrite BOOK_TIME.md from the JSON file (e.g. after editing the notes)")
    ap.add_argument("--json", type=Path, default=JSON_PATH)
    ap.add_argument("--md", type=Path, default=MD_PATH)
    args = ap.parse_args(argv)
    os.environ.setdefault("RECOS_PROGRESS", "0")

    data = json.loads(args.json.read_text()) if args.json.exists() else {}
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rc = 0
    if args.before_from:
        data["before"] = {"book": json.loads(args.before_from.read_text())["book"],
                          "what": args.before_what}
    if args.render_only:
        args.md.write_text(markdown(data))
        return 0
    if not args.flops_only:
        for mode in args.modes:
            print(f"[book_time] {mode} book ...", flush=True)
            info = machine()
            run = run_book(mode, device=args.device, only=args.only, keep=args.keep,
                           jobs=args.jobs)
            run.update(date=stamp, machine=info)
            data.setdefault("book", {})[mode] = run
            print(f"[book_time]   {run['wall_s']} s, exit {run['returncode']}", flush=True)
            rc = rc or run["returncode"]
    if not args.no_flops:
        print("[book_time] FLOP rates ...", flush=True)
        data["flops"] = dict(flop_report(), date=stamp, machine=machine())
    args.json.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    args.md.write_text(markdown(data))
    print(f"[book_time] wrote {args.json} and {args.md}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
