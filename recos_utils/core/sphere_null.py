"""The null model of Chapter 5, Sec. 5.3-5.4: anchors against random directions.

Are a layer's anchor vectors placed on the unit sphere like random directions, or do they
cluster? For K random directions in R^N the cosine t of a pair has density proportional to
(1 - t^2)^((N-3)/2) on [-1, 1], so that (Chapter 5, Sec. 5.3)

    E|cos| = Gamma(N/2) / (sqrt(pi) Gamma((N+1)/2))  ~  sqrt(2 / (pi N)),

and the mean over the M = K(K-1)/2 pairs has standard deviation sqrt((1/N - E|cos|^2) / M).

* ``expected_abs_cos``, ``null_abs_cos``: these exact values;
* ``gaussian_like``: Gaussian random vectors of a given shape (the sampled null);
* ``layer_stats``: one layer's anchors a_k and anchor-position vectors alpha_n = A^T e_n
  (Chapter 4) against both nulls, with :mod:`recos_utils.core.sphere`'s ``mean_abs_cos`` and
  ``mean_nn_cos``;
* ``tsne_with_random``: a joint 2-D t-SNE map of a set of unit vectors and as many random
  directions (Sec. 5.4).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from recos_utils.core import recos
from recos_utils.core.sphere import mean_abs_cos, mean_nn_cos, subsample, unit_tensor_rows

__all__ = ["Z_ABOVE", "expected_abs_cos", "null_abs_cos", "gaussian_like", "layer_stats",
           "tsne_with_random"]

#: A layer's anchors lie "above chance" when their mean |cos| exceeds the null model's by
#: more than Z_ABOVE of its standard deviations (Chapters 5 and 7).
Z_ABOVE = 3.0


def expected_abs_cos(n: int) -> float:
    """E|cos| between two independent uniformly random directions in R^n (n >= 2).

    The cosine t has density proportional to (1 - t^2)^((n-3)/2) on [-1, 1], so
    E|t| = Gamma(n/2) / (sqrt(pi) Gamma((n+1)/2)), about sqrt(2 / (pi n)) for large n.
    """
    return math.exp(math.lgamma(n / 2) - math.lgamma((n + 1) / 2)) / math.sqrt(math.pi)


def null_abs_cos(n: int, k: int) -> tuple[float, float]:
    """Mean and standard deviation of ``mean_abs_cos`` for k independent random directions
    in R^n: the chance level an anchor set is compared with.

    For independent isotropic vectors the K(K-1)/2 pair cosines are pairwise independent
    (given u_i, cos(u_i, u_j) and cos(u_i, u_k) are functions of independent u_j, u_k whose
    laws do not depend on u_i), so Var(mean) = Var(|t|) / M with M = K(K-1)/2 pairs and
    Var(|t|) = E[t^2] - (E|t|)^2 = 1/n - (E|t|)^2.
    """
    e = expected_abs_cos(n)
    m = k * (k - 1) // 2
    return e, math.sqrt(max(1.0 / n - e * e, 0.0) / max(m, 1))


def gaussian_like(v: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Gaussian random vectors of the same shape as ``v`` (seeded, double precision)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(v.shape, generator=g, dtype=torch.float64)


def layer_stats(layer: nn.Module, max_rows: int = 1024, seed: int = 0) -> dict:
    """Anchors and anchor-position vectors of one layer against Gaussian random vectors.

    Anchors: the K rows a_k of A (K x N). Anchor-position vectors: the N rows
    alpha_n = A^T e_n (N x K). Each set is subsampled to ``max_rows`` rows and compared with
    Gaussian random vectors of the same shape: mean pairwise |cos| and mean cosine to the
    nearest neighbour. ``expected_abs_cos_random`` is the exact value for random directions
    and ``abs_cos_z`` how many null standard deviations (``null_abs_cos``) above it the
    anchors lie.
    """
    a = recos.anchors(layer).cpu()
    apv = recos.anchor_position_vectors(a)
    out = {"n_anchors": a.shape[0], "dim": a.shape[1]}
    for key, v in (("", a), ("apv_", apv)):
        v = subsample(v, max_rows, seed)
        r = gaussian_like(v, seed + 1)
        out[f"{key}n_used"] = len(v)
        out[f"{key}mean_abs_cos"] = mean_abs_cos(v)
        out[f"{key}mean_abs_cos_random"] = mean_abs_cos(r)
        e, sd = null_abs_cos(v.shape[1], len(v))
        out[f"{key}expected_abs_cos_random"] = e
        out[f"{key}abs_cos_z"] = (out[f"{key}mean_abs_cos"] - e) / sd
        out[f"{key}mean_nn_cos"] = mean_nn_cos(v)
        out[f"{key}mean_nn_cos_random"] = mean_nn_cos(r)
    return out


def tsne_with_random(v: torch.Tensor, max_points: int = 150, seed: int = 0,
                     max_iter: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """A joint 2-D t-SNE map of the unit vectors of ``v``'s rows and of as many Gaussian
    random vectors of the same dimension. Returns (points of v, points of the random set).

    Both sets are normalised to the unit sphere, so map distances reflect angles (the chord
    2 sin(theta/2) of Chapter 1). Perplexity is min(30, (n - 1) / 3) for n points in all.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    v = subsample(v.detach().cpu(), max_points, seed)
    r = gaussian_like(v, seed + 1)
    x = torch.cat([unit_tensor_rows(v), unit_tensor_rows(r)]).numpy()
    perplexity = float(min(30.0, (len(x) - 1) / 3))
    # one thread: deterministic, and many times faster than oversubscribed OpenMP on a
    # busy machine (measured: 22 s -> 1.4 s for 300 points)
    with threadpool_limits(1):
        emb = TSNE(2, perplexity=perplexity, init="pca", random_state=seed,
                   max_iter=max_iter, n_jobs=1).fit_transform(x)
    return emb[:len(v)], emb[len(v):]
