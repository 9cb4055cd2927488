"""One way to train and cache any model of the book: ``train_all(specs)`` (every chapter).

A model is asked for as a :class:`Spec`: its :class:`Kind` (how a model of that kind is
trained and rebuilt) and its config (a frozen dataclass or a JSON-able dict holding every
field that changes the trained model). ``train_all`` returns one :class:`Trained` per spec,
in order, loading what the store already holds and training the rest:

* **One content hash keys the store**: the kind's name, the config, the checksum of every
  data file the model was trained on (:func:`recos_utils.core.data.dataset_id`, which also
  checks the files, so a truncated file stops the chapter even when its models are cached)
  and the code version of the whole package (:func:`recos_utils.core.fingerprints.code_hash`).
  A different training file can never return a model trained on another one.
* **Several at once**: on the CPU the missing models train in a pool of worker processes,
  one thread each (``device.workers()``), longest first (``Kind.cost``); on a GPU one after
  another. Specs whose kind groups them (``Kind.group``: same key) train together as one
  batched model (``Kind.train_group``), e.g. Chapter 2's TReLU sweep; a group trains whole
  whenever one of its members is missing, so its members never depend on the cache's state.
* **Once**, even for two chapters at a time: each training unit claims its store entries
  (:func:`recos_utils.core.cache.claim`); a unit another process is training is waited
  for and loaded.
* **Progress** is a callback: each finished model is reported through
  :func:`recos_utils.core.progress.report`.

A kind's ``train(config, device, data_dir, *args)`` is a module-level function (the worker
processes import it by name) returning an entry: a dict of tensors, lists and numbers,
usually ``entry(model, history, ...)``. ``rebuild(config, entry, *args)`` turns an entry
back into a model. ``args`` carries inputs that the config already determines but that
are costly to derive again (Chapter 2's paired networks get their base model's conv1).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import torch

from recos_utils.core import cache
from recos_utils.core.data import dataset_id
from recos_utils.core.device import resolve_device, workers
from recos_utils.core.fingerprints import code_hash
from recos_utils.core.progress import WorkBar, report

__all__ = ["Kind", "Spec", "Trained", "train_all", "entry", "spec_key"]


@dataclass(frozen=True)
class Kind:
    """A kind of trained model (LeNet-5, the one-layer net, an FF design, ...)."""

    name: str
    train: Callable[..., dict]                       # (config, device, data_dir, *args) -> entry
    rebuild: Callable[..., Any]                      # (config, entry, *args) -> model
    datasets: Callable[[Any], list[str]] = lambda c: [_field(c, "dataset")]
    cost: Callable[[Any], float] = lambda c: 1.0     # relative training time (longest first)
    group: Callable[[Any], Any] | None = None        # same key -> trained together
    train_group: Callable[..., list[dict]] | None = None  # (configs, device, data_dir) -> entries
    cpu_only: bool = False                           # trains on the CPU whatever the device


@dataclass(frozen=True)
class Spec:
    """One model to train: its kind, its config and (not hashed) costly derived inputs."""

    kind: Kind
    config: Any
    args: tuple = field(default=(), compare=False)


class Trained(NamedTuple):
    """A trained model (on the CPU, eval mode), its training history and its whole entry."""

    model: Any
    history: dict
    entry: dict


def _field(config, name):
    return config[name] if isinstance(config, dict) else getattr(config, name)


def _as_json(config) -> Any:
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config


def entry(model: torch.nn.Module, history: dict, **extra) -> dict:
    """A store entry: the model's ``state_dict`` on the CPU, its training history and any
    ``extra`` tensors, lists or numbers measured with it."""
    return {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "history": history, **extra}


def spec_key(spec: Spec, data_dir=None) -> str:
    """The store key of ``spec``: SHA-256 of the kind, the config, the data files' checksums
    and the package's code version (canonical JSON)."""
    data = {name: dataset_id(name, data_dir) for name in spec.kind.datasets(spec.config)}
    blob = json.dumps({"kind": spec.kind.name, "config": _as_json(spec.config), "data": data,
                       "code": code_hash()}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _fit(kind: Kind, configs: list, args: tuple, device: str, data_dir) -> list[dict]:
    if len(configs) > 1:
        return kind.train_group(configs, device, data_dir)
    return [kind.train(configs[0], device, data_dir, *args)]


def _train(kind: Kind, configs: list, args: tuple, device: str, data_dir,
           paths: list | None) -> list[dict] | None:
    """Train one model (or one group) and store its entries under ``paths``; returned only
    when there is no store. Runs in a worker process or in this one. The entries are
    claimed first: when another process (a chapter running beside this one) trained them
    meanwhile, they are loaded, not trained again."""
    if paths is None:
        return _fit(kind, configs, args, device, data_dir)
    with cache.claim(paths):
        if all(cache.load_entry(p) is not None for p in paths):
            return None
        for path, e in zip(paths, _fit(kind, configs, args, device, data_dir)):
            cache.save_entry(path, e)
    return None


def _in_worker(*job) -> None:
    os.environ["RECOS_PROGRESS"] = "0"
    torch.set_num_threads(1)
    return _train(*job)


def _groups(specs: list[Spec], todo: list[int]) -> list[list[int]]:
    """The missing specs in training units: a kind's group key joins specs (in order)."""
    units: dict[Any, list[int]] = {}
    for i in todo:
        g = specs[i].kind.group
        gk = g(specs[i].config) if g else None
        units.setdefault(i if gk is None else (specs[i].kind.name, gk), []).append(i)
    return list(units.values())


def train_all(specs: list[Spec], *, device: str = "cpu", data_dir=None,
              use_cache: bool = True, n_workers: int | None = None) -> list[Trained]:
    """Train (or load from the store) every model of ``specs``; return them in order.

    A spec listed twice is trained once. ``use_cache=False`` trains everything afresh and
    stores nothing. See the module docstring for how the store is keyed.
    """
    dev = resolve_device(device)
    t0 = time.perf_counter()
    keys = [spec_key(s, data_dir) for s in specs]
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    entries: dict[int, dict | None] = {}
    for k, i in first.items():
        entries[i] = cache.load_entry(cache.cache_dir() / f"{k}.pt") if use_cache else None
    # a group trains whole when any member is missing
    missing = {i for i, e in entries.items() if e is None}
    grouped = _groups(specs, list(first.values()))
    units = [u for u in grouped if missing.intersection(u)]

    def cost(u):
        return sum(specs[i].kind.cost(specs[i].config) for i in u)

    units.sort(key=lambda u: -cost(u))
    jobs = []
    for u in units:
        kind = specs[u[0]].kind
        unit_dev = "cpu" if kind.cpu_only else str(dev)
        paths = [cache.cache_dir() / f"{keys[i]}.pt" for i in u] if use_cache else None
        jobs.append((kind, [specs[i].config for i in u], specs[u[0]].args, unit_dev,
                     None if data_dir is None else str(data_dir), paths))
    n = min(n_workers or workers(), len(jobs))
    desc = "training" + (f" on {n} processes" if n > 1 else "")
    progress = WorkBar([cost(u) for u in units], desc, sizes=[len(u) for u in units])
    if n > 1 and all(j[3] == "cpu" for j in jobs):
        from joblib import Parallel, delayed

        run = Parallel(n_jobs=n, backend="loky", return_as="generator")
        results = run(delayed(_in_worker)(*j) for j in jobs)
    else:
        results = (_train(*j) for j in jobs)
    for done, (u, out) in enumerate(zip(units, results), 1):
        for j, i in enumerate(u):
            entries[i] = out[j] if out is not None else cache.load_entry(jobs[done - 1][5][j])
        progress.advance()
        report(progress.done, progress.total, desc, time.perf_counter() - t0, progress.share)
    progress.close()
    out = []
    for s, k in zip(specs, keys):
        e = entries[first[k]]
        out.append(Trained(s.kind.rebuild(s.config, e, *s.args), e.get("history", {}), e))
    return out
