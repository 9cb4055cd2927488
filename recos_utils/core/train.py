"""The book's recipe and training loop: in-memory tensors, time to accuracy (Ch. 1-6).

In the spirit of airbench: the whole training set stays a uint8 tensor on the device; each
epoch draws one seeded permutation and slices mini-batches out of it, so there is no
per-sample Dataset/DataLoader work. How a network is trained is one :class:`Recipe`, the
same for every network of the book (``RECIPE``): Adam with a one-cycle learning rate and
label smoothing, 1.25 passes over the training set (``benchmarks/RESULTS.md`` records how it
was found and what it reaches). On the CPU the networks run in channels-last memory layout,
which oneDNN's small convolutions and pooling serve faster.

``fit`` trains one model (or a stack of them, whose output is M x N x classes: Chapter 2's
TReLU sweep, :mod:`recos_utils.core.stacked`) in place; ``TrainConfig`` names everything
that determines a trained LeNet-5. Training many models, caching them and loading them
again is :func:`recos_utils.core.trainer.train_all`'s job (with the LeNet-5 kind of
:mod:`recos_utils.core.kinds`).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from recos_utils.core.data import Dataset, load_dataset, reverse_grey
from recos_utils.core.device import threads_for
from recos_utils.core.models import LeNet5
from recos_utils.core.progress import bar as progress

__all__ = ["to_input", "Recipe", "RECIPE", "fit", "evaluate", "predict", "TrainConfig",
           "train_data"]


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 N x 28 x 28 -> float N x 1 x 28 x 28 in [0, 1], the networks' input."""
    if images.dtype == torch.uint8:
        images = images.float().div_(255.0)
    return images.unsqueeze(1) if images.dim() == 3 else images


def _layout(x: torch.Tensor) -> torch.Tensor:
    """Image batches in channels-last layout on the CPU (faster there, same values)."""
    if x.device.type == "cpu" and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Predicted labels of uint8 (or float) images, in batches, on the model's device.

    On the CPU the model is put in channels-last layout and fed batches of 500: together
    2.6x faster than contiguous batches of 2000 (the activations stay in cache)."""
    model.eval()
    dev = next(model.parameters()).device
    if dev.type == "cpu":
        model.to(memory_format=torch.channels_last)
    out = [model(_layout(to_input(images[i:i + batch_size].to(dev)))).argmax(1).cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out)


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy (0..1) of ``model`` on the given images and labels."""
    return (predict(model, images) == labels).float().mean().item()


@dataclass(frozen=True)
class Recipe:
    """How a network is trained: the book's time-to-accuracy recipe (every chapter).

    Adam on mini-batches drawn from one seeded permutation per epoch, cross-entropy with
    label smoothing, and a one-cycle learning rate: it rises linearly from ``lr / 10`` to
    the peak ``lr`` over the first ``warmup`` share of the steps, then falls linearly to
    ``lr / final_div``. ``epochs`` counts passes over the training set and may be
    fractional (1.25: one pass and a quarter of a second one). Found and measured in
    ``benchmarks/RESULTS.md``: LeNet-5 reaches 99.06 % on MNIST (mean of 10 seeds, every
    seed at least 98.97 %) in 1.25 passes.
    """

    epochs: float = 1.25
    batch_size: int = 64
    lr: float = 7e-3
    betas: tuple[float, float] = (0.9, 0.99)
    warmup: float = 0.2
    final_div: float = 100.0
    label_smoothing: float = 0.1
    weight_decay: float = 0.0

    def __post_init__(self):
        if not self.epochs > 0 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError(f"a recipe needs epochs > 0, batch_size >= 1 and lr > 0; got "
                             f"epochs={self.epochs!r}, batch_size={self.batch_size!r}, "
                             f"lr={self.lr!r}")

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        """The recipe stored in a config dict (``dataclasses.asdict`` of one)."""
        return cls(**{**d, "betas": tuple(d["betas"])})

    def lr_at(self, step: int, total: int) -> float:
        """The learning rate of optimiser step ``step`` (0-based) of ``total``."""
        w = max(1, round(self.warmup * total))
        if step < w:
            return self.lr * (0.1 + 0.9 * step / w)
        p = (step - w) / max(1, total - w)
        return self.lr * (1.0 - p * (1.0 - 1.0 / self.final_div))

    def steps(self, n: int) -> int:
        """Optimiser steps of the whole run on ``n`` training images."""
        return max(1, round(self.epochs * math.ceil(n / self.batch_size)))


#: The recipe every network of the book trains with.
RECIPE = Recipe()


def fit(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
        recipe: Recipe = RECIPE, seed: int = 0, device: torch.device | str = "cpu",
        params: list | None = None,
        eval_sets: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
        eval_every: int | None = None, on_step: Callable[[int, nn.Module], None] | None = None,
        threads: int | None = 1, desc: str = "train") -> dict:
    """Train ``model`` in place on uint8 ``images`` and int ``labels`` held in memory.

    ``recipe`` says how (:class:`Recipe`). ``params`` restricts what is trained (e.g. all
    but a frozen first layer). ``eval_sets`` (name -> (images, labels)) are evaluated
    every ``eval_every`` steps (default: each epoch) and at the end, and recorded in the
    history. ``on_step(step, model)`` is called after every optimiser step (used to record
    anchors during training, Chapter 3). ``threads``: CPU threads while training; 1 (the
    default) gives the same bits on any machine, ``None`` keeps torch's setting.

    Returns the history: ``{"step": [...], "loss": [...]`` (mean cross-entropy, without
    smoothing, of every 50 steps), ``"eval": {name: [...]}, "eval_step": [...],
    "eval_train_s": [...]`` (training seconds before each evaluation, evaluations not
    counted), ``"steps"``, ``"seconds"`` (wall time), ``"eval_seconds"``,
    ``"train_loss_final", "train_acc_final"}``: the mean loss and the accuracy over the
    mini-batches of the last quarter epoch, which show that the run converged at no extra
    cost (the learning rate is near zero by then).
    """
    device = torch.device(device)
    if device.type == "cpu":
        model.to(memory_format=torch.channels_last)
    model.to(device).train()
    g = torch.Generator().manual_seed(seed)
    x_all, y_all = images.to(device), labels.to(device)
    steps_per_epoch = math.ceil(len(y_all) / recipe.batch_size)
    total = recipe.steps(len(y_all))
    trainable = params if params is not None else [p for p in model.parameters()
                                                    if p.requires_grad]
    opt = torch.optim.Adam(trainable, lr=recipe.lr, betas=tuple(recipe.betas),
                           weight_decay=recipe.weight_decay, fused=True)
    hist = {"step": [], "loss": [], "eval_step": [], "eval_train_s": [],
            "eval": {k: [] for k in eval_sets or {}}, "eval_seconds": 0.0}
    t0 = time.perf_counter()
    bar = progress(total, desc)
    with threads_for(device, threads):
        _loop(model, x_all, y_all, g, opt, recipe, hist, bar, steps_per_epoch, total,
              eval_sets, eval_every or steps_per_epoch, on_step, t0)
    bar.close()
    model.eval()
    hist["steps"] = total
    hist["seconds"] = time.perf_counter() - t0
    return hist


def _loss_stats(out: torch.Tensor, y: torch.Tensor, smoothing: float):
    """The training loss, and per member the plain cross-entropy and the correct count.

    ``out`` is N x classes, or M x N x classes for M models trained as one
    (``stacked.StackedLeNet5``): their loss is the sum of the members' losses.
    """
    out3 = out if out.dim() == 3 else out[None]
    m, n, k = out3.shape
    flat, yy = out3.reshape(m * n, k), y.repeat(m)
    loss = F.cross_entropy(flat, yy, label_smoothing=smoothing) * m
    with torch.no_grad():
        ce = F.cross_entropy(flat, yy, reduction="none").view(m, n).mean(1)
        correct = (out3.argmax(2) == y).sum(1)
    return loss, ce, correct


def _loop(model, x_all, y_all, g, opt, recipe, hist, bar, steps_per_epoch, total, eval_sets,
          eval_every, on_step, t0):
    n, step, device, bs = len(y_all), 0, x_all.device, recipe.batch_size
    running, tail_loss, tail_ok, tail_n = 0.0, 0.0, 0, 0     # tail: the last quarter epoch
    tail_from = total - max(1, steps_per_epoch // 4)
    while step < total:
        perm = torch.randperm(n, generator=g).to(device)
        for i in range(min(steps_per_epoch, total - step)):
            for group in opt.param_groups:
                group["lr"] = recipe.lr_at(step, total)
            idx = perm[i * bs:(i + 1) * bs]
            out = model(_layout(to_input(x_all[idx])))
            loss, ce, correct = _loss_stats(out, y_all[idx], recipe.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step >= tail_from:
                tail_loss, tail_ok, tail_n = tail_loss + ce * len(idx), tail_ok + correct, tail_n + len(idx)
            step += 1
            running = running + ce
            if on_step is not None:
                on_step(step, model)
            if step % 50 == 0 or step == total:
                mean = (running / (step % 50 or 50)).tolist()
                hist["step"].append(step)
                hist["loss"].append(mean[0] if out.dim() == 2 else mean)
                running = 0.0
                bar.set_postfix(loss=f"{sum(mean) / len(mean):.3f}", refresh=False)
            if eval_sets and (step % eval_every == 0 or step == total):
                te = time.perf_counter()
                hist["eval_step"].append(step)
                hist["eval_train_s"].append(te - t0 - hist["eval_seconds"])
                for name, (xe, ye) in eval_sets.items():
                    hist["eval"][name].append(evaluate(model, xe, ye))
                model.train()
                hist["eval_seconds"] += time.perf_counter() - te
            bar.update(1)
    final = ((tail_loss / tail_n).tolist(), (tail_ok.double() / tail_n).tolist())
    hist["train_loss_final"], hist["train_acc_final"] = (
        final if out.dim() == 3 else (final[0][0], final[1][0]))


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained LeNet-5; its hash is the cache key."""

    dataset: str = "mnist"
    train_on: str = "original"      # original | reversed | both (original + reversed)
    n_train: int | None = None      # first n training examples; None = all 60,000
    activation: str = "relu"
    pool: str = "max"
    trelu_z: float = 0.5
    seed: int = 0
    recipe: Recipe = RECIPE
    batchnorm: bool = False         # batch normalisation of each layer's input (Chapter 1)

    def model(self) -> LeNet5:
        """A freshly initialised model for this config (seeded)."""
        torch.manual_seed(self.seed)
        return LeNet5(self.activation, self.pool, self.trelu_z, batchnorm=self.batchnorm)


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
