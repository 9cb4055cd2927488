"""How anchors form, conv1 anchors initialised by k-means, and probes of a trained net (Ch. 3).

Two experiments of Chapter 3 need training runs that record more than the trainer does:

* **formation**: the angle theta_k(t) = arccos(cos(a_k(t), a_k(T))) between each anchor
  a_k at step t and its final position a_k(T), for every layer (conv1, conv2, fc1 = C5,
  fc2 = F6). Anchors are snapshotted with ``fit``'s ``on_step`` hook at a modest,
  geometrically spaced set of steps; only the angle curves (and the small conv1
  snapshots) are stored, not the weights of every snapshot;
* **initialisation**: conv1's anchors initialised from the spherical k-means centroids of
  mean-removed unit 5x5 patches (``sphere.spherical_kmeans``), each rescaled to the norm the
  default PyTorch initialisation gave that filter for the same seed, against the default
  random initialisation. All other parameters (conv1 biases included) and the batch order
  are those of the same seed, so the two arms of a seed differ only in the *directions* of
  the six conv1 anchors. Test accuracy on a fixed subset is recorded every few steps.

``INIT_RUN`` is the kind of model these runs are for ``train_all`` (``init_specs``): its
store key holds the whole config, the data checksum and the package's code version.

Two probes of a trained LeNet-5 complete the chapter: ``top_patches`` (the input patches
each conv1 anchor responds to most) and ``zeroed_fraction`` (per layer, the share of
responses y_k = Rec(a_k . x + b_k) that rectification sets to zero, Chapter 1's eq.
y = Rec(Ax)).

The readings other chapters apply too live in :mod:`recos_utils.core.readings` and are
imported from there: ``LAYERS``, ``PatchConfig``, ``patch_set``, ``cluster``,
``patch_centroids`` and ``zeroed_fraction``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from recos_utils.core import recos, sphere
from recos_utils.core.data import load_dataset
from recos_utils.core.device import resolve_device
from recos_utils.core.kinds import lenet_cost
from recos_utils.core.readings import (LAYERS, PatchConfig, cluster, patch_centroids, patch_set,
                                       zeroed_fraction)
from recos_utils.core.train import RECIPE, Recipe, TrainConfig, evaluate, fit, to_input
from recos_utils.core.trainer import Kind, Spec, entry

__all__ = ["InitConfig", "kmeans_init_conv1", "snapshot_steps", "AnchorRecorder", "build_init_run",
           "INIT_RUN", "init_specs", "top_patches", "steps_to"]

@torch.no_grad()
def kmeans_init_conv1(model: nn.Module, centroids) -> nn.Module:
    """Set conv1's anchors to the unit ``centroids`` (K x 25), each scaled to the norm of
    the filter it replaces (the default init's norm for this seed). Biases are kept."""
    w = model.conv1.weight
    c = torch.as_tensor(np.asarray(centroids), dtype=w.dtype).reshape(w.shape)
    norms = w.flatten(1).norm(dim=1)
    c = c / c.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    w.copy_(c * norms.view(-1, 1, 1, 1))
    return model


def snapshot_steps(total: int, n: int = 30) -> list[int]:
    """About ``n`` steps from 0 to ``total``, geometrically spaced (dense early on)."""
    g = np.unique(np.round(np.geomspace(1, total, n)).astype(int))
    return [0] + [int(s) for s in g]


class AnchorRecorder:
    """``on_step`` hook: keeps the anchors of ``LAYERS`` at the chosen steps (in memory)."""

    def __init__(self, steps: list[int]):
        self.steps = set(steps)
        self.taken: list[int] = []
        self.anchors: dict[str, list[torch.Tensor]] = {name: [] for name in LAYERS}

    def __call__(self, step: int, model: nn.Module) -> None:
        if step in self.steps:
            self.taken.append(step)
            for name in LAYERS:
                self.anchors[name].append(recos.anchors(getattr(model, name)).cpu())

    def angles_to_final(self) -> dict[str, torch.Tensor]:
        """Per layer: snapshots x K angles (degrees) of each anchor to its last snapshot."""
        out = {}
        for name, snaps in self.anchors.items():
            final = snaps[-1].numpy()
            out[name] = torch.tensor(np.stack([sphere.angles(s.numpy(), final) for s in snaps]),
                                     dtype=torch.float32)
        return out


@dataclass(frozen=True)
class InitConfig:
    """One run of the initialisation / formation experiment (its hash is the cache key)."""

    dataset: str = "mnist"
    init: str = "random"       # random (PyTorch default) | kmeans (conv1 from centroids)
    seed: int = 0
    n_train: int | None = None
    recipe: Recipe = RECIPE
    eval_every: int = 25       # steps between evaluations on the test subset
    n_eval: int = 2000         # the first n_eval test images
    n_snapshots: int = 30
    patches: PatchConfig = field(default_factory=PatchConfig)

    def lenet(self) -> TrainConfig:
        """The LeNet-5 config whose initialisation and batch order this run shares."""
        return TrainConfig(dataset=self.dataset, n_train=self.n_train, seed=self.seed,
                           recipe=self.recipe)


def build_init_run(cfg: InitConfig, device: str, data_dir=None) -> dict:
    """Train one LeNet-5 of the experiment; return state, history, formation and init anchors."""
    if cfg.init not in ("random", "kmeans"):
        raise ValueError(f"unknown init {cfg.init!r}; allowed: random, kmeans")
    train = load_dataset(cfg.dataset, "train", data_dir)
    test = load_dataset(cfg.dataset, "test", data_dir)
    model = cfg.lenet().model()
    if cfg.init == "kmeans":
        km, _ = patch_centroids(cfg.dataset, cfg.patches, images=train.images)
        kmeans_init_conv1(model, km.centroids)
    ds = train.subset(cfg.n_train)
    rec = AnchorRecorder(snapshot_steps(cfg.recipe.steps(len(ds)), cfg.n_snapshots))
    rec(0, model)
    hist = fit(model, ds.images, ds.labels, recipe=cfg.recipe, seed=cfg.seed,
               device=resolve_device(device),
               eval_sets={"test": (test.images[:cfg.n_eval], test.labels[:cfg.n_eval])},
               eval_every=cfg.eval_every, on_step=rec, desc=f"{cfg.init} init seed {cfg.seed}")
    model.cpu()
    return entry(model, hist, test_acc=evaluate(model, test.images, test.labels),
                 snapshot_steps=torch.tensor(rec.taken), angles_to_final=rec.angles_to_final(),
                 conv1_snapshots=torch.stack(rec.anchors["conv1"]))


def _rebuild_init(cfg: InitConfig, e: dict) -> nn.Module:
    model = cfg.lenet().model()
    model.load_state_dict(e["state_dict"])
    return model.eval()


#: One run of the initialisation / formation experiment: a LeNet-5 with its anchor
#: snapshots, evaluations and final test accuracy (``entry`` holds them).
INIT_RUN = Kind("ch3_anchor_init", build_init_run, _rebuild_init, cost=lenet_cost)


def init_specs(configs: list[InitConfig]) -> list[Spec]:
    """One ``train_all`` spec per run of the experiment."""
    return [Spec(INIT_RUN, c) for c in configs]


@torch.no_grad()
def top_patches(model: nn.Module, images: torch.Tensor, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """For each conv1 anchor, the ``n`` input patches (one per image) that respond most.

    Each image contributes at most its best position, so the patches come from ``n``
    different images. Returns (K x n x 5 x 5 patches of the padded input, K x n responses
    before rectification).
    """
    x = F.pad(to_input(images), (2, 2, 2, 2), value=getattr(model, "pad_value", 0.0))
    r = model.conv1(x)                                   # B x K x H x W
    B, K, H, W = r.shape
    k = model.conv1.kernel_size[0]
    best, pos = r.flatten(2).max(dim=2)                  # B x K: best position per image
    val, img = best.T.topk(min(n, B), dim=1)             # K x n
    where = pos.T.gather(1, img)
    out = torch.stack([torch.stack([x[b, 0, w // W:w // W + k, w % W:w % W + k]
                                    for b, w in zip(img[j].tolist(), where[j].tolist())])
                       for j in range(K)])
    return out, val


def steps_to(history: dict, target: float, name: str = "test") -> int | None:
    """The first evaluated step at which accuracy reaches ``target``; None if it never does."""
    for step, acc in zip(history["eval_step"], history["eval"][name]):
        if acc >= target:
            return int(step)
    return None
