"""Points on the unit sphere: patches, spherical k-means, anchor matching, angles (Chapter 3).

Chapter 3 tests the paper's claim that trained filters are anchor vectors that "represent
frequently occurring patterns". Everything happens on the unit sphere
S = {x : ||x|| = 1} of Chapter 1, where the geodesic distance between two points is the
angle theta = arccos(x_i . x_j) (Kuo 2016, Sec. 2, as restated in Chapter 1):

* ``unit_patches``: mean-removed, unit-norm k x k image patches, the inputs of the
  mean-removal section (x - mu 1, scaled onto S); near-flat patches, whose direction is
  noise, are dropped;
* ``spherical_kmeans``: k-means with the cosine as similarity; a centroid is the
  normalised mean of its cluster, the direction that best represents its members
  (it maximises the sum of their cosines);
* ``match``: the optimal one-to-one assignment of anchors to centroids
  (``scipy.optimize.linear_sum_assignment``) on the *signed* cosine by default: under
  rectification an anchor a and its negative -a respond to disjoint sets of inputs, so
  they are different anchors and must not count as a match (``signed=False`` uses |cos|);
* ``angles``, ``pairwise_angles``, ``random_pairwise_angles``, ``angle_stats``: the
  geodesic distances among anchors, and the same statistics for random Gaussian vectors
  of the same dimension (whose angles concentrate around 90 degrees, cos ~ N(0, 1/N));
* ``abs_cos_pairs``, ``mean_abs_cos``, ``mean_nn_cos``, ``subsample`` (Chapter 5, Sec. 5.3):
  how far from orthogonal a set of vectors is (mean pairwise |cos|) and how tightly it
  clusters (mean cosine to the nearest other vector), on torch tensors in float64. Their
  chance levels for random directions are in :mod:`recos_utils.core.sphere_null`.

Everything is float64 and deterministic for a given seed. Nothing here knows about
models or training.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from recos_utils.core import recos

__all__ = ["kmeanspp", "unit_rows", "unit_patches", "KMeansResult", "spherical_kmeans", "Match", "match",
           "brute_force_match", "random_match_scores", "angles", "pairwise_angles",
           "random_unit_vectors", "random_pairwise_angles", "angle_stats", "center_rows",
           "unit_tensor_rows",
           "abs_cos_pairs", "mean_abs_cos", "mean_nn_cos", "subsample"]


def _np(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def unit_rows(a, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``a`` scaled to unit length (float64); zero rows stay zero."""
    a = _np(a)
    n = np.linalg.norm(a, axis=-1, keepdims=True)
    return a / np.maximum(n, eps)


def center_rows(a) -> np.ndarray:
    """Rows of ``a`` with their mean removed (float64): the part a mean-removed patch sees."""
    a = _np(a)
    return a - a.mean(axis=-1, keepdims=True)


def unit_patches(images: torch.Tensor, size: int = 5, pad: int = 2, min_norm: float = 0.25,
                 n: int | None = None, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Mean-removed, unit-norm ``size`` x ``size`` patches of uint8 images, as rows.

    Images are scaled to [0, 1] and zero-padded by ``pad`` (LeNet-5 pads 28x28 to 32x32
    before conv1, so these are exactly the patches conv1 sees). A patch whose mean-removed
    norm is below ``min_norm`` (in [0, 1] pixel units) is near-flat: its direction on the
    sphere is dominated by rounding, so it is dropped. If ``n`` is given, ``n`` of the kept
    patches are drawn without replacement (seeded). Returns (X: n x size^2 float64,
    info dict with the counts).
    """
    x = images.float().div(255.0).unsqueeze(1) if images.dtype == torch.uint8 else images
    if x.dim() == 3:
        x = x.unsqueeze(1)
    p = recos.patches(F.pad(x, (pad,) * 4), size).reshape(-1, x.shape[1] * size * size)
    centred, _ = recos.remove_mean(p)
    norms = centred.norm(dim=1)
    keep = torch.nonzero(norms >= min_norm).squeeze(1)
    total, n_kept = len(p), len(keep)
    if n is not None and n < n_kept:
        g = torch.Generator().manual_seed(seed)
        keep = keep[torch.randperm(n_kept, generator=g)[:n].sort().values]
    X = unit_rows(centred[keep])
    return X, {"n_total": total, "n_kept": n_kept, "frac_kept": n_kept / max(total, 1),
               "n_used": len(X), "min_norm": min_norm}


@dataclass(frozen=True)
class KMeansResult:
    """Spherical k-means: unit centroids (k x d, largest cluster first) and the fit."""

    centroids: np.ndarray
    labels: np.ndarray
    sizes: np.ndarray
    objective: float       # mean cosine of each point with its centroid
    n_iter: int


def kmeanspp(k: int, dist_to, draw) -> list[int]:
    """k-means++ seeding (Arthur and Vassilvitskii, 2007), the book's one copy (Chapters 3
    and 6): the indices of ``k`` seeds. ``dist_to(j)`` gives every point's distance to
    point ``j`` (a numpy array or a torch tensor); ``draw(weights)`` draws one index with
    probability proportional to ``weights``, or uniformly for ``None``. The first seed is
    drawn uniformly, each next one in proportion to the distance to the nearest seed so
    far (uniformly again when every point already coincides with a seed)."""
    idx = [draw(None)]
    d = dist_to(idx[0])
    for _ in range(1, k):
        idx.append(draw(d if d.sum() > 0 else None))
        new = dist_to(idx[-1])
        closer = new < d
        d[closer] = new[closer]
    return idx


def _kmeanspp(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding on the sphere, with 1 - cos (half the squared chord) as distance."""
    def draw(w):
        return int(rng.integers(len(X))) if w is None else int(rng.choice(len(X), p=w / w.sum()))

    return X[kmeanspp(k, lambda j: np.clip(1.0 - X @ X[j], 0.0, None), draw)].copy()


def _lloyd(X: np.ndarray, C: np.ndarray, max_iter: int,
           tol: float) -> tuple[np.ndarray, np.ndarray, int]:
    labels = None
    it = 0
    k, d = C.shape
    cols = np.arange(d)
    for it in range(1, max_iter + 1):
        S = X @ C.T
        new = S.argmax(1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        sums = np.bincount((labels[:, None] * d + cols).ravel(), weights=X.ravel(),
                           minlength=k * d).reshape(k, d)
        norms = np.linalg.norm(sums, axis=1)
        empty = norms < 1e-12
        if empty.any():  # re-seed an empty cluster with the worst-fitting points
            worst = np.argsort(S[np.arange(len(X)), labels], kind="stable")
            sums[empty] = X[worst[:int(empty.sum())]]
            norms = np.linalg.norm(sums, axis=1)
        new_C = sums / norms[:, None]
        shift = float(np.max(1.0 - (new_C * C).sum(1)))
        C = new_C
        if shift < tol:
            break
    labels = (X @ C.T).argmax(1)
    return C, labels, it


def spherical_kmeans(X, k: int, *, n_init: int = 3, max_iter: int = 100, tol: float = 1e-6,
                     seed: int = 0) -> KMeansResult:
    """Cluster unit rows ``X`` (n x d) into ``k`` directions (spherical k-means).

    Each round assigns a point to the centroid of largest cosine and moves each centroid to
    the normalised sum of its points, until no label changes or no centroid moves by more
    than ``tol`` in 1 - cos. ``n_init`` k-means++ starts (seeded from ``seed``);
    the one with the largest mean cosine wins. Centroids are returned largest cluster first.
    BLAS runs on one thread, so the result is the same bit for bit on every machine.
    """
    from threadpoolctl import threadpool_limits

    X = unit_rows(X)
    if not 1 <= k <= len(X):
        raise ValueError(f"k={k} must be between 1 and the number of points ({len(X)})")
    rng = np.random.default_rng(seed)
    best = None
    with threadpool_limits(1):  # one BLAS thread: bit-identical results on any machine
        for _ in range(n_init):
            C, labels, it = _lloyd(X, _kmeanspp(X, k, rng), max_iter, tol)
            obj = float((X * C[labels]).sum(1).mean())
            if best is None or obj > best[0] + 1e-12:
                best = (obj, C, labels, it)
    obj, C, labels, it = best
    sizes = np.bincount(labels, minlength=k)
    order = np.argsort(-sizes, kind="stable")
    remap = np.empty(k, dtype=np.int64)
    remap[order] = np.arange(k)
    return KMeansResult(C[order], remap[labels], sizes[order], obj, it)


@dataclass(frozen=True)
class Match:
    """An optimal one-to-one matching of anchors (rows) to centroids (cols)."""

    rows: np.ndarray       # anchor indices
    cols: np.ndarray       # matched centroid indices
    cos: np.ndarray        # signed cosine of each matched pair
    score: np.ndarray      # what was maximised: cos (signed) or |cos|
    signed: bool

    @property
    def mean_cos(self) -> float:
        return float(self.cos.mean())

    @property
    def mean_score(self) -> float:
        return float(self.score.mean())

    @property
    def angles_deg(self) -> np.ndarray:
        return np.degrees(np.arccos(np.clip(self.cos, -1.0, 1.0)))


def _cos_matrix(a, b) -> np.ndarray:
    return unit_rows(a) @ unit_rows(b).T


def match(anchors, centroids, *, signed: bool = True) -> Match:
    """Match each anchor to a distinct centroid maximising the total (signed or |.|) cosine.

    ``anchors`` is m x d, ``centroids`` n x d; with m <= n every anchor gets a centroid.
    Rows need not be unit length (cosines are taken).
    """
    cos = _cos_matrix(anchors, centroids)
    score = cos if signed else np.abs(cos)
    from scipy.optimize import linear_sum_assignment

    r, c = linear_sum_assignment(score, maximize=True)
    return Match(r, c, cos[r, c], score[r, c], signed)


def random_match_scores(m: int, centroids, *, draws: int = 1000, seed: int = 0,
                        signed: bool = True, center: bool = True) -> np.ndarray:
    """Mean matched cosine of ``draws`` sets of ``m`` random Gaussian anchors (the chance level).

    ``center`` removes each random anchor's mean first, as is done for learned anchors
    compared with mean-removed patches.
    """
    rng = np.random.default_rng(seed)
    d = unit_rows(centroids).shape[1]
    out = np.empty(draws)
    for i in range(draws):
        a = rng.standard_normal((m, d))
        out[i] = match(center_rows(a) if center else a, centroids, signed=signed).mean_score
    return out


def brute_force_match(anchors, centroids, *, signed: bool = True) -> float:
    """Largest total score over all one-to-one matchings, by enumeration (tests only)."""
    cos = _cos_matrix(anchors, centroids)
    score = cos if signed else np.abs(cos)
    m, n = score.shape
    if m > n:
        score, m, n = score.T, n, m
    return max(score[np.arange(m), list(p)].sum() for p in itertools.permutations(range(n), m))


def angles(a, b) -> np.ndarray:
    """Angle in degrees between matching rows of ``a`` and ``b`` (broadcast).

    Computed as 2 atan2(||u - v||, ||u + v||) on the unit vectors u, v, which is exact near
    0 and 180 degrees (arccos of a rounded dot product is not).
    """
    u, v = unit_rows(a), unit_rows(b)
    return np.degrees(2 * np.arctan2(np.linalg.norm(u - v, axis=-1),
                                     np.linalg.norm(u + v, axis=-1)))


def pairwise_angles(a) -> np.ndarray:
    """Angles in degrees between all pairs i < j of rows of ``a`` (K(K-1)/2 values)."""
    u = unit_rows(a)
    i, j = np.triu_indices(len(u), k=1)
    return angles(u[i], u[j])


def random_unit_vectors(n: int, d: int, seed: int = 0) -> np.ndarray:
    """``n`` i.i.d. uniform points on the unit sphere in R^d (normalised Gaussians)."""
    return unit_rows(np.random.default_rng(seed).standard_normal((n, d)))


def random_pairwise_angles(k: int, d: int, draws: int = 20, seed: int = 0) -> np.ndarray:
    """Pairwise angles among ``k`` random Gaussian vectors in R^d, pooled over ``draws`` sets."""
    rng = np.random.default_rng(seed)
    return np.concatenate([pairwise_angles(rng.standard_normal((k, d))) for _ in range(draws)])


def angle_stats(deg) -> dict:
    """Summary of a set of angles (degrees): mean, std, min, 5% quantile, median, count."""
    deg = _np(deg).ravel()
    return {"mean": float(deg.mean()), "std": float(deg.std()), "min": float(deg.min()),
            "q05": float(np.quantile(deg, 0.05)), "median": float(np.median(deg)),
            "n_pairs": int(deg.size)}


# --------------------------------------------------------------------------- |cos| of a set (Ch. 5)
def unit_tensor_rows(v: torch.Tensor) -> torch.Tensor:
    """Rows of a tensor scaled to unit length, in float64 (zero rows stay zero)."""
    v = v.double()
    return v / v.norm(dim=1, keepdim=True).clamp_min(1e-300)


def abs_cos_pairs(v: torch.Tensor) -> torch.Tensor:
    """|cos| of every pair i < j of rows of ``v`` (K x N), as a vector of K(K-1)/2 values."""
    u = unit_tensor_rows(v)
    g = u @ u.T
    i, j = torch.triu_indices(len(u), len(u), offset=1)
    return g[i, j].abs()


def mean_abs_cos(v: torch.Tensor) -> float:
    """Mean |cos| over all pairs of rows of ``v`` (K x N): 0 for orthogonal anchors."""
    return abs_cos_pairs(v).mean().item()


def mean_nn_cos(v: torch.Tensor) -> float:
    """Mean over rows of the cosine to the nearest other row (how tightly rows cluster)."""
    u = unit_tensor_rows(v)
    g = u @ u.T
    g.fill_diagonal_(-2.0)
    return g.max(dim=1).values.mean().item()


def subsample(v: torch.Tensor, max_rows: int, seed: int = 0) -> torch.Tensor:
    """At most ``max_rows`` rows of ``v``, chosen at random (seeded) if there are more."""
    if len(v) <= max_rows:
        return v
    g = torch.Generator().manual_seed(seed)
    return v[torch.randperm(len(v), generator=g)[:max_rows].sort().values]
