"""Benchmark: the book's in-memory trainer vs a plain torchvision DataLoader loop.

Trains LeNet-5 on full MNIST three ways in one run and prints one JSON object:

* ``naive``: torchvision's MNIST dataset with ``ToTensor``, a shuffling DataLoader with batch
  64, the usual loop, and LeNet-5 in the textbook order conv -> ReLU -> pool (one epoch, all
  CPU threads);
* ``fast``: ``recos_utils.train.fit`` on uint8 tensors held in memory (no per-sample work),
  the book's batch size and LeNet-5 (which max-pools before the ReLU), fused Adam, all CPU
  threads (``threads=None``), ``--epochs`` epochs; its test accuracy is reported;
* ``fast_textbook``: the same trainer on the textbook-order network (one epoch), to show
  how much of the speed-up is the trainer and how much the pooling order;
* ``fast_pool``: as the book trains several models: ``train_lenets`` on two seeds at once,
  one thread per model in worker processes, two epochs each; wall seconds per model-epoch
  (process start and data loading included).

``speedup`` = naive / fast seconds per epoch. ``--record`` writes benchmarks/train_speed.json.
Usage: RECOS_DATA_DIR=<root> python benchmarks/train_speed.py [--epochs N] [--record]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def naive_epoch(root: str, batch_size: int = 64, max_steps: int | None = None) -> float:
    import torchvision
    from torchvision import transforms

    from recos_utils.models import LeNet5

    ds = torchvision.datasets.MNIST(root, train=True, transform=transforms.ToTensor())
    dl = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True)
    torch.manual_seed(0)
    model = LeNet5()
    model.pool_first = False      # the textbook order conv -> ReLU -> pool
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    t0, steps = time.perf_counter(), 0
    for x, y in dl:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
        if max_steps and steps >= max_steps:
            break
    dt = time.perf_counter() - t0
    return dt * len(dl) / steps


def main() -> None:
    from book_time import lenet5_flops_per_sample, matmul_gflops  # the same FLOP accounting
    from recos_utils.data import data_roots, load_dataset
    from recos_utils.models import LeNet5
    from recos_utils.train import TrainConfig, evaluate, fit, train_lenets

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    ap.add_argument("--record", action="store_true", help="write benchmarks/train_speed.json")
    args = ap.parse_args()
    os.environ.setdefault("RECOS_PROGRESS", "0")
    cfg = TrainConfig(epochs=args.epochs)
    train, test = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    root = next(str(r) for r in data_roots() if (r / "MNIST" / "raw").is_dir())

    naive = naive_epoch(root)

    model = cfg.model()
    hist = fit(model, train.images, train.labels, epochs=cfg.epochs, batch_size=cfg.batch_size,
               lr=cfg.lr, seed=cfg.seed, threads=None, desc="fast")
    fast = hist["seconds"] / cfg.epochs
    acc = evaluate(model, test.images, test.labels)

    textbook = cfg.model()
    textbook.pool_first = False
    hist_tb = fit(textbook, train.images, train.labels, epochs=1, batch_size=cfg.batch_size,
                  lr=cfg.lr, seed=cfg.seed, threads=None, desc="fast, textbook order")

    t0 = time.perf_counter()
    pool = train_lenets([TrainConfig(epochs=2, seed=s) for s in (0, 1)], use_cache=False)
    pool_s = (time.perf_counter() - t0) / 4
    flops = lenet5_flops_per_sample()["flop_counter_train_step"] * len(train.labels)
    roof = matmul_gflops(torch.get_num_threads(), repeats=10)
    out = {
        "train_gflop_per_epoch": round(flops / 1e9, 2),
        "fast_gflops": round(flops / fast / 1e9, 2),
        "matmul_gflops": round(roof, 1),
        "fast_fraction_of_matmul": round(flops / fast / 1e9 / roof, 3),
        "fast_s_per_epoch": round(fast, 3),
        "naive_s_per_epoch": round(naive, 3),
        "speedup": round(naive / fast, 2),
        "fast_textbook_s_per_epoch": round(hist_tb["seconds"], 3),
        "speedup_trainer_only": round(naive / hist_tb["seconds"], 2),
        "fast_pool_s_per_model_epoch": round(pool_s, 3),
        "speedup_pool": round(naive / pool_s, 2),
        "test_acc": round(acc, 4),
        "epochs": cfg.epochs,
        "batch_size_fast": cfg.batch_size,
        "batch_size_naive": 64,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "pool_accs": [round(evaluate(m, test.images, test.labels), 4) for m, _ in pool],
    }
    print(json.dumps(out))
    if args.record:
        path = Path(__file__).with_name("train_speed.json")
        path.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
