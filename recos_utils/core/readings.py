"""The book's RECOS readings of a trained network, shared by the chapters (Chapters 2, 3, 7).

Each reading was first written for one chapter and moved here so that the appendix
(Chapter 7, the reader's own network) applies *the same function*, not a copy:

* ``accuracy_pair`` (Chapter 2, Sec. 2.4): accuracy on the test digits and on their
  grey-scale reversals x_r = 255 - x (the paper's sign-confusion experiment);
* ``zeroed_fraction`` (Chapter 3, Sec. 3.4; Chapter 1's y = Rec(Ax)): per LeNet-5 layer,
  the share of responses y_k = Rec(a_k^T x + b_k) that the rectifier sets to zero;
* ``PatchConfig``, ``patch_set``, ``cluster``, ``patch_centroids`` (Chapter 3, Sec. 3.3):
  the frequent patterns, spherical k-means centroids of mean-removed unit 5x5 patches;
* ``match_summary`` (Chapter 3, Sec. 3.3): the optimal matching
  max_pi (1/K) sum_k cos(a~_k, c_pi(k)) of mean-removed anchors a~_k = a_k - mean(a_k) 1
  with the centroids, against random Gaussian anchor sets (``core.sphere.match``);
* ``dc_share`` (Chapter 3, Sec. 3.3): the share N mean(a)^2 / ||a||^2 of an anchor's
  squared norm that is its mean, the part mean removal sets aside (Chapter 1's
  x = (x - mu 1) + mu 1).

The rest of the readings are in the modules of their concept: anchors and the cascade in
:mod:`recos_utils.core.recos`, the sphere in :mod:`recos_utils.core.sphere` and the null
model of random directions in :mod:`recos_utils.core.sphere_null`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from recos_utils.core import sphere
from recos_utils.core.data import load_dataset, reverse_grey
from recos_utils.core.device import resolve_device
from recos_utils.core.results import mean_std
from recos_utils.core.train import predict, to_input

__all__ = ["LAYERS", "accuracy_pair", "zeroed_fraction", "PatchConfig", "patch_set", "cluster",
           "patch_centroids", "MATCH_Q", "match_summary", "dc_share"]

#: The RECOS layers of LeNet-5 (``core.models.LeNet5``), with their names in the paper.
LAYERS = {"conv1": "C1", "conv2": "C3", "fc1": "C5", "fc2": "F6"}

#: Chapter 3, Sec. 3.3: the quantile of the random anchor sets' match that is reported.
MATCH_Q = 0.95


# --------------------------------------------------------------------------- Chapter 2

def accuracy_pair(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                  device="cpu", batch_size: int = 500) -> tuple[float, float]:
    """(accuracy on uint8 ``images``, accuracy on their reversals 255 - images).

    Chapter 2, Sec. 2.4: the grey-scale reversal x_r = 255 - x of the paper's LeNet-5
    experiment. Batches of 500 keep the activations in cache (faster than large batches
    on a CPU).
    """
    dev = resolve_device(device) if isinstance(device, str) else device
    model.to(dev)
    acc = [(predict(model, x, batch_size) == labels).float().mean().item()
           for x in (images, reverse_grey(images))]
    model.to("cpu")
    return acc[0], acc[1]


# --------------------------------------------------------------------------- Chapter 3

@torch.no_grad()
def zeroed_fraction(model: nn.Module, images: torch.Tensor,
                    batch_size: int = 1000) -> dict[str, float]:
    """Per layer (conv1, conv2, fc1, fc2): the fraction of responses the rectifier sets to
    zero, i.e. of pre-activations a_k^T x + b_k <= 0 (Chapter 1's y = Rec(Ax); Chapter 3,
    Sec. 3.4), over ``images`` (and every position for conv layers). ``model`` is a
    LeNet-5 (its ``features``).
    """
    model.eval()
    zero = {name: 0.0 for name in LAYERS}
    count = {name: 0 for name in LAYERS}
    for i in range(0, len(images), batch_size):
        f = model.features(to_input(images[i:i + batch_size]))
        for name in LAYERS:
            zero[name] += float((f[name] <= 0).sum())
            count[name] += f[name].numel()
    return {name: zero[name] / count[name] for name in LAYERS}


@dataclass(frozen=True)
class PatchConfig:
    """Where the k-means centroids come from: patches of the first training images."""

    k: int = 6
    n_images: int = 1000       # first training images the patches are cut from
    n_patches: int = 30000     # patches drawn (seeded) from the non-flat ones
    min_norm: float = 0.25     # drop patches whose mean-removed norm is below this
    n_init: int = 3
    max_iter: int = 100
    seed: int = 0


def patch_set(images: torch.Tensor, pc: PatchConfig) -> tuple[np.ndarray, dict]:
    """The mean-removed unit 5x5 patches of the first ``pc.n_images`` images (see
    PatchConfig; Chapter 3, Sec. 3.3: the patches conv1 sees, on the unit sphere)."""
    return sphere.unit_patches(images[:pc.n_images], min_norm=pc.min_norm, n=pc.n_patches,
                               seed=pc.seed)


def cluster(X: np.ndarray, pc: PatchConfig) -> sphere.KMeansResult:
    """Spherical k-means of the patches ``X`` with the settings of ``pc`` (Chapter 3,
    Sec. 3.3: maximise sum_i c_l(i)^T x_i over unit centroids)."""
    return sphere.spherical_kmeans(X, pc.k, n_init=pc.n_init, max_iter=pc.max_iter, seed=pc.seed)


def patch_centroids(dataset: str, pc: PatchConfig, data_dir=None,
                    images: torch.Tensor | None = None) -> tuple[sphere.KMeansResult, dict]:
    """Spherical k-means centroids of mean-removed unit 5x5 patches of ``dataset``
    (Chapter 3, Sec. 3.3's frequent patterns).

    Deterministic for a given config; returns (k-means result, patch counts).
    """
    if images is None:
        images = load_dataset(dataset, "train", data_dir).images
    X, info = patch_set(images, pc)
    return cluster(X, pc), info


def match_summary(trained: list, untrained: list, centroids, *, n_random: int = 1000,
                  seed: int = 0) -> dict:
    """One K of Chapter 3, Sec. 3.3's matching, max_pi (1/K) sum_k cos(a~_k, c_pi(k)): the
    mean matched cosine (signed, and |cos|) of the mean-removed first-layer anchors of each
    trained / untrained network (lists of K x N) with the ``centroids``, against
    ``n_random`` sets of random Gaussian anchors. ``learned`` and ``untrained`` hold the
    signed statistics over networks (``results.mean_std``)."""
    def ms(nets, signed):
        return mean_std([sphere.match(a, centroids, signed=signed).mean_score for a in nets])

    learned, init = ms(trained, True), ms(untrained, True)
    m = len(trained[0])
    rand = sphere.random_match_scores(m, centroids, draws=n_random, seed=seed)
    rand_abs = sphere.random_match_scores(m, centroids, draws=n_random, seed=seed, signed=False)
    return {"mean_cos_learned": learned["mean"], "mean_cos_learned_std": learned["std"],
            "mean_cos_untrained": init["mean"], "mean_cos_untrained_std": init["std"],
            "mean_cos_random": float(rand.mean()), "mean_cos_random_std": float(rand.std()),
            "mean_cos_random_q95": float(np.quantile(rand, MATCH_Q)),
            "frac_random_ge_learned": float((rand >= learned["mean"]).mean()),
            "mean_cos_learned_abs": ms(trained, False)["mean"],
            "mean_cos_untrained_abs": ms(untrained, False)["mean"],
            "mean_cos_random_abs": float(rand_abs.mean()), "n_random": n_random,
            "learned": learned, "untrained": init}


def dc_share(anchor_sets: list) -> float:
    """Mean over networks and anchors of N mean(a)^2 / ||a||^2 (each set K x N): the share
    of an anchor's squared norm that is its mean (Chapter 3, Sec. 3.3)."""
    out = []
    for a in anchor_sets:
        a = np.asarray(a, dtype=np.float64)
        out.append((a.mean(1) ** 2 * a.shape[1] / (a ** 2).sum(1)).mean())
    return float(np.mean(out))
