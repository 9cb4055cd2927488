"""A fast trainer on in-memory tensors, seeded, cached and parallel (all chapters).

In the spirit of airbench: the whole training set stays a uint8 tensor on the device; each
epoch draws one seeded permutation and slices mini-batches out of it, so there is no
per-sample Dataset/DataLoader work. Adam with a linear warm-down of the learning rate.

Several models at once: LeNet-5 is too small for one model to keep even two CPU cores
busy, and stacking models into grouped convolutions or ``torch.vmap`` was measured to be
*slower* on the CPU (see ``benchmarks/RESULTS.md``). So on the CPU every model trains on one
thread, and ``run_jobs`` / ``train_lenets`` train several models side by side in a pool of
worker processes, one per core. One thread per model also makes the weights bit-identical
for a given seed whatever the number of cores. On a GPU, models train one after another.

``train_lenet(TrainConfig(...))`` (one model) and ``train_lenets([...])`` (many) are the
entry points the chapters use: they train LeNet-5 (``models.LeNet5``) on a dataset from
``data.load_dataset``, cache the result by the hash of the full config (``cache.cached``)
and return the models with their histories.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import cache
from .data import Dataset, load_dataset, reverse_grey
from .models import LeNet5

__all__ = ["DeviceError", "resolve_device", "to_input", "fit", "evaluate", "predict",
           "TrainConfig", "train_lenet", "train_lenets", "train_data", "run_jobs", "workers",
           "lenet_cost"]


class DeviceError(RuntimeError):
    """The requested device is not available."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda if available else cpu; ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("DEVICE='cuda' was requested but no CUDA GPU is available to "
                              "PyTorch here (torch.cuda.is_available() is False); use "
                              "DEVICE='cpu' or DEVICE='auto'")
        return torch.device("cuda")
    raise ValueError(f"unknown device {name!r}; allowed: auto, cpu, cuda")


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 N x 28 x 28 -> float N x 1 x 28 x 28 in [0, 1], the networks' input."""
    if images.dtype == torch.uint8:
        images = images.float().div_(255.0)
    return images.unsqueeze(1) if images.dim() == 3 else images


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    """Predicted labels of uint8 (or float) images, in batches, on the model's device."""
    model.eval()
    dev = next(model.parameters()).device
    out = [model(to_input(images[i:i + batch_size].to(dev))).argmax(1).cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out)


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy (0..1) of ``model`` on the given images and labels."""
    return (predict(model, images) == labels).float().mean().item()


def _progress(total: int, desc: str):
    from tqdm.std import tqdm

    disable = os.environ.get("RECOS_PROGRESS", "1") == "0"
    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr, disable=disable,
                mininterval=0.5)


@contextlib.contextmanager
def threads_for(device: torch.device, threads: int | None):
    """Train on ``threads`` CPU threads (1: bit-identical results whatever the core count)."""
    if device.type != "cpu" or threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epochs: int,
        batch_size: int = 128, lr: float = 2e-3, weight_decay: float = 0.0, seed: int = 0,
        device: torch.device | str = "cpu", params: list | None = None,
        eval_sets: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
        eval_every: int | None = None, on_step: Callable[[int, nn.Module], None] | None = None,
        threads: int | None = 1, desc: str = "train") -> dict:
    """Train ``model`` in place on uint8 ``images`` and int ``labels`` held in memory.

    ``params`` restricts what is trained (e.g. all but a frozen first layer). ``eval_sets``
    (name -> (images, labels)) are evaluated every ``eval_every`` steps (default: each
    epoch) and recorded in the history. ``on_step(step, model)`` is called after every
    optimiser step (used to record anchors during training, Chapter 3). ``threads``: CPU
    threads while training; 1 (the default) gives the same bits on any machine, ``None``
    keeps torch's setting (faster for a lone model, e.g. in the benchmark).

    Returns the history: ``{"step": [...], "loss": [...], "eval": {name: [...]},
    "eval_step": [...], "steps": total, "seconds": wall time}``.
    """
    device = torch.device(device)
    g = torch.Generator().manual_seed(seed)
    model.to(device).train()
    x_all, y_all = images.to(device), labels.to(device)
    n = len(y_all)
    steps_per_epoch = (n + batch_size - 1) // batch_size
    total = epochs * steps_per_epoch
    trainable = params if params is not None else [p for p in model.parameters()
                                                    if p.requires_grad]
    opt = torch.optim.Adam(trainable, lr=lr, weight_decay=weight_decay, fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / max(total, 1))
    eval_every = eval_every or steps_per_epoch
    hist = {"step": [], "loss": [], "eval_step": [], "eval": {k: [] for k in eval_sets or {}}}
    t0 = time.perf_counter()
    bar = _progress(total, desc)
    with threads_for(device, threads):
        _loop(model, x_all, y_all, g, opt, sched, hist, bar, epochs, steps_per_epoch,
              batch_size, total, eval_sets, eval_every, on_step)
    bar.close()
    model.eval()
    hist["steps"] = total
    hist["seconds"] = time.perf_counter() - t0
    return hist


def _loop(model, x_all, y_all, g, opt, sched, hist, bar, epochs, steps_per_epoch, batch_size,
          total, eval_sets, eval_every, on_step):
    n, step, running, device = len(y_all), 0, 0.0, x_all.device
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g).to(device)
        for i in range(steps_per_epoch):
            idx = perm[i * batch_size:(i + 1) * batch_size]
            loss = F.cross_entropy(model(to_input(x_all[idx])), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            running += loss.item()
            if on_step is not None:
                on_step(step, model)
            if step % 50 == 0 or step == total:
                k = step % 50 or 50
                hist["step"].append(step)
                hist["loss"].append(running / k)
                running = 0.0
                bar.set_postfix(loss=f"{hist['loss'][-1]:.3f}", refresh=False)
            if eval_sets and (step % eval_every == 0 or step == total):
                hist["eval_step"].append(step)
                for name, (xe, ye) in eval_sets.items():
                    hist["eval"][name].append(evaluate(model, xe, ye))
                model.train()
            bar.update(1)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained LeNet-5; its hash is the cache key."""

    dataset: str = "mnist"
    train_on: str = "original"      # original | reversed | both (original + reversed)
    n_train: int | None = None      # first n training examples; None = all 60,000
    activation: str = "relu"
    pool: str = "max"
    trelu_z: float = 0.5
    epochs: int = 6
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.0
    seed: int = 0

    def model(self) -> LeNet5:
        """A freshly initialised model for this config (seeded)."""
        torch.manual_seed(self.seed)
        return LeNet5(self.activation, self.pool, self.trelu_z)


def train_data(dataset: str, train_on: str = "original", n_train: int | None = None,
               root=None) -> Dataset:
    """The training tensors for ``train_on`` = original | reversed | both."""
    ds = load_dataset(dataset, "train", root).subset(n_train)
    if train_on == "original":
        return ds
    if train_on == "reversed":
        return Dataset(reverse_grey(ds.images), ds.labels, ds.name, "train-reversed")
    if train_on == "both":
        return Dataset(torch.cat([ds.images, reverse_grey(ds.images)]),
                       torch.cat([ds.labels, ds.labels]), ds.name, "train-both")
    raise ValueError(f"unknown train_on {train_on!r}; allowed: original, reversed, both")


def workers() -> int:
    """Worker processes for ``run_jobs``: ``$RECOS_WORKERS``, else the number of CPU cores."""
    env = os.environ.get("RECOS_WORKERS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _job(fn: Callable[..., dict], args: tuple, config: dict, use_cache: bool) -> dict | None:
    """Run one job in a worker: build and store the entry (returned only without a cache)."""
    os.environ["RECOS_PROGRESS"] = "0"
    torch.set_num_threads(1)
    if use_cache:
        cache.cached(config, lambda: fn(*args))
        return None
    return fn(*args)


def run_jobs(jobs: list[tuple[dict, Callable[..., dict], tuple]], *, device="cpu",
             use_cache: bool = True, n_workers: int | None = None,
             cost: Callable[[dict], float] | None = None) -> list[dict]:
    """Build cache entries for ``jobs``, several at once; return the entries in order.

    A job is ``(config, fn, args)``: ``config`` is the full cache key (a JSON-able dict),
    ``fn(*args)`` a module-level function (picklable) that trains and returns the entry
    (a dict of tensors, lists and numbers). Entries already cached are loaded; the missing
    ones are built in a pool of worker processes on the CPU (``workers()`` of them, one
    thread each) or one after another in this process on a GPU. ``cost(config)``, if given,
    estimates a job's running time: the missing jobs then start longest first, so that the
    workers finish at about the same time (each job is seeded, so the order never changes
    an entry; the entries are still returned in the order of ``jobs``).
    """
    dev = resolve_device(device) if isinstance(device, str) else device
    entries: list[dict | None] = [None] * len(jobs)
    if use_cache:
        for i, (config, _, _) in enumerate(jobs):
            entries[i] = cache.load_entry(cache.cache_dir() / f"{cache.config_key(config)}.pt")
    todo = [i for i, e in enumerate(entries) if e is None]
    if cost is not None:
        todo.sort(key=lambda i: -cost(jobs[i][0]))
    n = min(n_workers or workers(), len(todo))
    if dev.type == "cpu" and n > 1:
        from joblib import Parallel, delayed

        bar = _progress(len(todo), f"training {len(todo)} models on {n} processes")
        run = Parallel(n_jobs=n, backend="loky", return_as="generator")
        for i, entry in zip(todo, run(delayed(_job)(jobs[i][1], jobs[i][2], jobs[i][0],
                                                    use_cache) for i in todo)):
            entries[i] = entry
            bar.update(1)
        bar.close()
        if use_cache:
            for i in todo:
                entries[i] = cache.cached(jobs[i][0], lambda i=i: jobs[i][1](*jobs[i][2]))
    else:
        for i in todo:
            config, fn, args = jobs[i]
            entries[i] = cache.cached(config, lambda: fn(*args), use_cache=use_cache)
    return entries


def _build_lenet(config: "TrainConfig", device: str, data_dir) -> dict:
    ds = train_data(config.dataset, config.train_on, config.n_train, data_dir)
    model = config.model()
    hist = fit(model, ds.images, ds.labels, epochs=config.epochs,
               batch_size=config.batch_size, lr=config.lr, weight_decay=config.weight_decay,
               seed=config.seed, device=resolve_device(device),
               desc=f"LeNet-5/{config.activation} seed {config.seed}")
    return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
            "history": hist}


def lenet_cost(config: dict) -> float:
    """Relative training time of a LeNet-5 job, for ``run_jobs(cost=...)``.

    Optimiser steps x (batch + 40): on one core a step costs about 4 ms plus 0.11 ms per
    sample (measured with batch 32, 64 and 128), i.e. a fixed cost worth about 40 samples.
    """
    n = (config.get("n_train") or 60000) * (2 if config.get("train_on") == "both" else 1)
    batch = config.get("batch_size", 128)
    return config.get("epochs", 1) * math.ceil(n / batch) * (batch + 40)


def train_lenets(configs: list[TrainConfig], *, device: str = "cpu", data_dir=None,
                 use_cache: bool = True) -> list[tuple[LeNet5, dict]]:
    """Train (or load from the cache) every LeNet-5 in ``configs``, several at once.

    The data root does not enter the cache key: the files are checksummed on load instead.
    Returns ``[(model on CPU in eval mode, history), ...]`` in the order of ``configs``.
    """
    dev = str(resolve_device(device))
    jobs = [(dict(dataclasses.asdict(c), kind="lenet5"), _build_lenet, (c, dev, data_dir))
            for c in configs]
    out = []
    for c, entry in zip(configs, run_jobs(jobs, device=dev, use_cache=use_cache, cost=lenet_cost)):
        model = c.model()
        model.load_state_dict(entry["state_dict"])
        out.append((model.eval(), entry["history"]))
    return out


def train_lenet(config: TrainConfig, *, device: str = "cpu", data_dir=None,
                use_cache: bool = True) -> tuple[LeNet5, dict]:
    """Train (or load from the cache) the one LeNet-5 described by ``config``."""
    return train_lenets([config], device=device, data_dir=data_dir, use_cache=use_cache)[0]
