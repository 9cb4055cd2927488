"""Benchmark: the feedforward design of Chapter 6 (``recos_utils.core.feedforward``), its time and
peak memory, on the whole MNIST training set.

For each seed, in a fresh process (so that peak memory is that of one design): load the
60,000 training digits, design the LeNet-5 (Saab conv layers, k-means pseudo-labels, least
squares) on one thread, as the book's worker processes do, and on all cores; test it on the
10,000 test digits. Peak memory is the process's maximum resident set size
(``resource.getrusage``), which includes Python, torch and the data. Targets (issue 16):
the chapter's full run <= 3 min and <= 8 GB peak on 2 cores; the chapter designs two
networks at a time (one per worker process), so its peak is about twice one design's.

Results go to ``benchmarks/ff_design.json``. Usage, with ``RECOS_DATA_DIR`` set::

    python benchmarks/ff_design.py            # seeds 0, 1, 2
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JSON_PATH = ROOT / "benchmarks" / "ff_design.json"

_ONE = """
import json, resource, sys, time, torch
threads, seed = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(threads)
from recos_utils.core import feedforward as ff
from recos_utils.core.data import load_dataset
train, test = load_dataset("mnist", "train"), load_dataset("mnist", "test")
t0 = time.perf_counter()
model = ff.design_lenet5(train.images, train.labels, ff.FFConfig(seed=seed))
design = time.perf_counter() - t0
acc = (ff.predict(model, test.images) == test.labels).double().mean().item()
print(json.dumps({"threads": threads, "seed": seed, "design_s": round(design, 2),
                  "stages_s": {k: round(v, 2) for k, v in model.times.items()},
                  "test_acc": acc, "peak_rss_mb": round(resource.getrusage(
                      resource.RUSAGE_SELF).ru_maxrss / 1024)}))
"""


def main() -> int:
    runs = []
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    for threads in (1, cores):
        for seed in (0, 1, 2):
            out = subprocess.run([sys.executable, "-c", _ONE, str(threads), str(seed)],
                                 cwd=ROOT, capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(runs[-1], flush=True)
    data = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cores": cores,
            "load_avg_1min": round(os.getloadavg()[0], 2), "runs": runs,
            "peak_rss_mb_max": max(r["peak_rss_mb"] for r in runs)}
    JSON_PATH.write_text(json.dumps(data, indent=1) + "\n")
    print(f"written {JSON_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
