"""Where models train: the device, CPU threads, and worker processes (every chapter).

``resolve_device`` turns the chapters' ``DEVICE`` parameter into a device (or one clear
error). Every trained model of the book, whatever its kind (LeNet-5, a TReLU stack, the
one-layer net, paired anchors, k-means-initialised, the AlexNet stand-in), is trained and
cached the same way: ``job(kind, config, build, args, code=...)`` makes its cache key (the
full config, the kind and ``source_hash`` of the code that builds it), ``build(*args)``
returns ``entry(model, history, ...)``, and ``run_jobs`` builds cache entries for a list
of training jobs: already-cached ones are loaded, the rest are built on the CPU in a pool
of worker processes, one thread each (``workers()`` of them), or one after another on a GPU. LeNet-5 is too small for one model
to keep two cores busy, so the book trains several models side by side rather than one
model on all cores; one thread per model also makes the weights bit-identical for a seed
whatever the number of cores (``benchmarks/RESULTS.md``).
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import sys
import time
from typing import Callable

import torch

from . import cache
from .run_progress import report

__all__ = ["DeviceError", "resolve_device", "threads_for", "progress", "workers", "source_hash",
           "job", "entry", "run_jobs"]


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


def progress(total: int, desc: str):
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


def workers() -> int:
    """Worker processes for ``run_jobs``: ``$RECOS_WORKERS``, else the number of CPU cores."""
    env = os.environ.get("RECOS_WORKERS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def source_hash(*objects) -> str:
    """The one code hash of the book's cache keys: SHA-256 (16 hex digits) of the source of
    ``objects`` (functions, classes or whole modules), in order. It names the code that
    decides what a model becomes; ``models.py``, ``train.py``, ``data.py`` and ``cache.py``
    enter every key anyway (``cache.code_version``). Editing an analysis function that is
    not listed needs no retraining."""
    h = hashlib.sha256()
    for obj in objects:
        h.update(inspect.getsource(obj).encode())
    return h.hexdigest()[:16]


def job(kind: str, config: dict, build: Callable[..., dict], args: tuple,
        code: tuple = ()) -> tuple[dict, Callable[..., dict], tuple]:
    """One ``run_jobs`` job: its cache key is ``config`` (JSON-able: every field that
    changes the trained model) plus ``kind`` and the ``source_hash`` of ``build`` and of
    ``code``, the other functions, classes or modules that decide the model."""
    key = dict(config, kind=kind, code=source_hash(build, *code))
    return key, build, args


def entry(model: torch.nn.Module, history: dict, **extra) -> dict:
    """A cache entry: the model's ``state_dict`` on the CPU, its training history and any
    ``extra`` tensors, lists or numbers measured with it."""
    return {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "history": history, **extra}


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
    t0 = time.perf_counter()
    keys = [cache.config_key(config) for config, _, _ in jobs]
    first = {}                                  # a job listed twice is built once
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    entries: list[dict | None] = [None] * len(jobs)
    if use_cache:
        for k, i in first.items():
            entries[i] = cache.load_entry(cache.cache_dir() / f"{k}.pt")
    todo = [i for i in first.values() if entries[i] is None]
    if cost is not None:
        todo.sort(key=lambda i: -cost(jobs[i][0]))
    n = min(n_workers or workers(), len(todo))
    if dev.type == "cpu" and n > 1:
        from joblib import Parallel, delayed

        desc = f"training {len(todo)} models on {n} processes"
        bar = progress(len(todo), desc)
        run = Parallel(n_jobs=n, backend="loky", return_as="generator")
        for done, (i, entry) in enumerate(zip(todo, run(delayed(_job)(
                jobs[i][1], jobs[i][2], jobs[i][0], use_cache) for i in todo)), 1):
            entries[i] = entry
            bar.update(1)
            report(done, len(todo), desc, time.perf_counter() - t0)
        bar.close()
        if use_cache:
            for i in todo:
                entries[i] = cache.cached(jobs[i][0], lambda i=i: jobs[i][1](*jobs[i][2]))
    else:
        for done, i in enumerate(todo, 1):
            config, fn, args = jobs[i]
            entries[i] = cache.cached(config, lambda: fn(*args), use_cache=use_cache)
            report(done, len(todo), f"training {len(todo)} models", time.perf_counter() - t0)
    return [entries[first[k]] for k in keys]
