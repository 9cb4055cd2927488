"""Benchmark: ways to train several LeNet-5s at once on the CPU (why the book uses a process pool).

Measures seconds per model for 100 training steps (batch 128) of M models:
``single`` (one model, one thread, the baseline), ``vmap`` (torch.func over stacked
parameters), ``grouped`` (the M models as one network with grouped convolutions and
batched matmuls) and ``pool`` (M models in M worker processes at once, one thread each, as
``recos_utils.core.trainer.train_all`` does). Prints one JSON object; ``--record`` writes
benchmarks/stacking.json.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

STEPS, BS = 100, 128


def batches():
    from recos_utils.core.data import load_dataset
    from recos_utils.core.train import to_input

    tr = load_dataset("mnist", "train")
    return [(to_input(tr.images[i * BS:(i + 1) * BS]), tr.labels[i * BS:(i + 1) * BS])
            for i in range(STEPS)]


def single(data) -> float:
    from recos_utils.core.models import LeNet5

    m = LeNet5()
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    t = time.perf_counter()
    for x, y in data:
        loss = F.cross_entropy(m(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t


def vmapped(data, M) -> float:
    from torch.func import functional_call, stack_module_state

    from recos_utils.core.models import LeNet5

    models = [LeNet5() for _ in range(M)]
    params, bufs = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    f = lambda p, b, x: functional_call(base, (p, b), (x,))  # noqa: E731
    opt = torch.optim.Adam(params.values(), lr=2e-3)
    t = time.perf_counter()
    for x, y in data:
        out = torch.vmap(f, in_dims=(0, 0, None))(params, bufs, x)
        loss = F.cross_entropy(out.reshape(-1, 10), y.repeat(M)) * M
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t) / M


class Grouped(nn.Module):
    """M LeNet-5s as one network: grouped convolutions and batched matmuls."""

    def __init__(self, M):
        super().__init__()
        self.M = M
        self.c1 = nn.Conv2d(M, 6 * M, 5, groups=M)
        self.c2 = nn.Conv2d(6 * M, 16 * M, 5, groups=M)
        self.w = nn.ParameterList([nn.Parameter(torch.randn(M, i, o) * i ** -0.5)
                                   for i, o in ((400, 120), (120, 84), (84, 10))])
        self.b = nn.ParameterList([nn.Parameter(torch.zeros(M, 1, o)) for o in (120, 84, 10)])

    def forward(self, x):
        B = x.shape[0]
        x = F.pad(x, (2, 2, 2, 2)).expand(B, self.M, 32, 32)
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2).reshape(B, self.M, 400).transpose(0, 1)
        x = F.relu(torch.baddbmm(self.b[0], x, self.w[0]))
        x = F.relu(torch.baddbmm(self.b[1], x, self.w[1]))
        return torch.baddbmm(self.b[2], x, self.w[2])


def grouped(data, M) -> float:
    g = Grouped(M)
    opt = torch.optim.Adam(g.parameters(), lr=2e-3)
    t = time.perf_counter()
    for x, y in data:
        loss = F.cross_entropy(g(x).reshape(-1, 10), y.repeat(M)) * M
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - t) / M


def pool(M) -> float:
    """M single-thread processes at once (data loading excluded from the timing)."""
    code = ("import torch, sys; torch.set_num_threads(1); sys.path.insert(0, %r); "
            "import stacking as s; d = s.batches(); s.single(d[:5]); print(s.single(d))"
            % str(Path(__file__).parent))
    t = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
             for _ in range(M)]
    times = [float(p.communicate()[0]) for p in procs]
    return max(times) / M


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=int, default=2)
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    data = batches()
    M = args.models
    out = {"steps": STEPS, "batch": BS, "models": M, "cpus": os.cpu_count()}
    torch.set_num_threads(1)
    single(data[:5])
    out["single_1thread_s"] = round(single(data), 3)
    torch.set_num_threads(os.cpu_count() or 1)
    out["single_allthreads_s"] = round(single(data), 3)
    out["vmap_allthreads_s_per_model"] = round(vmapped(data, M), 3)
    out["grouped_allthreads_s_per_model"] = round(grouped(data, M), 3)
    out["pool_1thread_each_s_per_model"] = round(pool(M), 3)
    print(json.dumps(out))
    if args.record:
        Path(__file__).with_name("stacking.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
