"""The LeNet-5 kind of :func:`recos_utils.core.trainer.train_all` (Chapters 1-4 and 6).

``Spec(LENET5, TrainConfig(...))`` asks for a LeNet-5 trained by the book's recipe. TReLU
configs that differ only in z form a group and train as one wide network
(:mod:`recos_utils.core.stacked`, Chapter 2's sweep): the same training, about 1.75x faster
per network on the CPU. Every other config trains alone, one per worker process.
"""
from __future__ import annotations

import dataclasses
import math

from recos_utils.core.device import resolve_device
from recos_utils.core.stacked import train_stack
from recos_utils.core.train import RECIPE, TrainConfig, fit, train_data
from recos_utils.core.trainer import Kind, Spec, entry

__all__ = ["LENET5", "lenet_cost", "lenet_specs"]


def lenet_cost(config) -> float:
    """Relative training time of a LeNet-5-sized network: optimiser steps x (batch + 40).

    On one core a step costs about 4 ms plus 0.11 ms per sample (measured with batch 32,
    64 and 128), i.e. a fixed cost worth about 40 samples. ``config`` has ``recipe``,
    ``n_train`` and (optionally) ``train_on``, as fields or keys.
    """
    get = (lambda k, d=None: config.get(k, d)) if isinstance(config, dict) else \
        (lambda k, d=None: getattr(config, k, d))
    n = (get("n_train") or 60000) * (2 if get("train_on") == "both" else 1)
    recipe = get("recipe") or RECIPE
    r = recipe if isinstance(recipe, dict) else dataclasses.asdict(recipe)
    return r["epochs"] * math.ceil(n / r["batch_size"]) * (r["batch_size"] + 40)


def _train(config: TrainConfig, device: str, data_dir) -> dict:
    ds = train_data(config.dataset, config.train_on, config.n_train, data_dir)
    model = config.model()
    hist = fit(model, ds.images, ds.labels, recipe=config.recipe, seed=config.seed,
               device=resolve_device(device),
               desc=f"LeNet-5/{config.activation} seed {config.seed}")
    return entry(model, hist)


def _rebuild(config: TrainConfig, e: dict):
    model = config.model()
    model.load_state_dict(e["state_dict"])
    return model.eval()


def _group(config: TrainConfig):
    """TReLU configs sharing everything but z train together; others alone (None)."""
    return dataclasses.replace(config, trelu_z=0.5) if config.activation == "trelu" else None


#: A LeNet-5 trained by the book's recipe on ``TrainConfig``'s data.
LENET5 = Kind("lenet5", _train, _rebuild, cost=lenet_cost, group=_group,
              train_group=train_stack)


def lenet_specs(configs: list[TrainConfig]) -> list[Spec]:
    """One ``train_all`` spec per LeNet-5 config."""
    return [Spec(LENET5, c) for c in configs]
