"""Where a layer's inputs lie on the sphere, with and without batch normalisation.

Chapter 1, Sec. 1.6, batch normalisation on the sphere. RECOS reads a layer's response as a
magnitude times a rectified cosine (Sec. 1.4); the cosine is informative only if the inputs
are spread over the sphere. A public re-implementation of the paper's experiments
(XinDongol/RECOS, ``exp1/batchnormal.py``, attributed there to the paper's Fig. 2) shows the
inputs of a layer crowding one orthant with very different lengths, and batch normalisation
giving them about equal lengths spread over the sphere. These functions measure that, as
plain dicts, on the points a layer actually correlates with its anchors:

* ``layer_points``: those points: every k x k patch of a convolution's input
  (``torch.nn.functional.unfold``, the layout of ``recos.anchors``), the whole vector of a
  fully connected layer's input;
* ``sphere_measures``: the coefficient of variation of their lengths, the mean resultant
  length of their directions, the share in the non-negative orthant, the share of the 8
  octants a seeded random 3-D projection occupies, and their angles to the layer's anchors
  (the weight rows);
* ``network_measures``: all of it for conv1, conv2, fc1 and fc2 of a LeNet-5;
* ``circle_points``: a 2-D picture of the directions (top two principal directions, then
  onto the unit circle), for the chapter's figure.

Points of length zero (black background patches of a digit) have no direction: they count
in the length statistics and in ``zero_share``, and are left out of every direction measure.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["LAYERS", "ANGLE_QUANTILES", "OCTANT_MIN_SHARE", "unfold_patches", "layer_points",
           "norm_cv", "resultant_length", "orthant_share", "octant_share", "anchor_angles",
           "sphere_measures", "network_measures", "circle_points"]

#: The RECOS layers measured, and the key of ``LeNet5.features`` holding each one's input.
LAYERS = {"conv1": "in_conv1", "conv2": "in_conv2", "fc1": "in_fc1", "fc2": "in_fc2"}
#: Quantiles of the input-to-anchor angle that are reported (``angle_q10`` ...).
ANGLE_QUANTILES = (0.10, 0.25, 0.50, 0.75, 0.90)
#: An octant counts as occupied when it holds at least this share of the points.
OCTANT_MIN_SHARE = 0.01
_EPS = 1e-12


def unfold_patches(x: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Every ``kernel_size`` x ``kernel_size`` patch of ``x`` (B x C x H x W) as a row:
    (B L) x (C k k), in the (channel, row, column) layout of a convolution's weight rows."""
    return F.unfold(x, kernel_size).transpose(1, 2).reshape(-1, x.shape[1] * kernel_size ** 2)


def layer_points(x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """The points ``layer`` correlates with its anchors for input ``x``: the patches of a
    convolution (stride 1, no padding: LeNet-5's), the rows of a linear layer's input."""
    if isinstance(layer, nn.Conv2d):
        return unfold_patches(x, layer.kernel_size[0])
    return x.flatten(1)


def _nonzero_units(x: torch.Tensor) -> torch.Tensor:
    n = x.norm(dim=1)
    return x[n > _EPS] / n[n > _EPS, None]


def norm_cv(x: torch.Tensor) -> float:
    """std / mean of the lengths ||x_i|| (population std; every point counts)."""
    n = x.double().norm(dim=1)
    return (n.std(correction=0) / n.mean()).item()


def resultant_length(x: torch.Tensor) -> float:
    """The mean resultant length ||mean_i x_i / ||x_i|| ||: 1 when every direction is the
    same, near 0 when they spread evenly over the sphere (or cancel)."""
    return _nonzero_units(x.double()).mean(0).norm().item()


def orthant_share(x: torch.Tensor) -> float:
    """The share of the (nonzero) points with every coordinate >= 0."""
    u = _nonzero_units(x.double())
    return (u >= 0).all(1).double().mean().item()


def octant_share(x: torch.Tensor, seed: int = 0, min_share: float = OCTANT_MIN_SHARE) -> float:
    """The share of the 8 octants of a seeded random 3-D projection (Gaussian, the same for
    a given seed and dimension) that hold at least ``min_share`` of the unit vectors."""
    u = _nonzero_units(x.double())
    r = torch.randn(u.shape[1], 3, generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64)
    p = u @ r
    code = ((p >= 0).long() * torch.tensor([1, 2, 4])).sum(1)
    counts = torch.bincount(code, minlength=8).double()
    return ((counts / len(u)) >= min_share).double().mean().item()


def anchor_angles(x: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """The cosines between every nonzero point and every anchor (rows of ``anchors``):
    n x K, in float64."""
    return _nonzero_units(x.double()) @ F.normalize(anchors.double(), dim=1).T


def sphere_measures(x: torch.Tensor, anchors: torch.Tensor, seed: int = 0) -> dict:
    """Every measure of the points ``x`` (n x N) against the layer's ``anchors`` (K x N):
    ``norm_cv``, ``resultant``, ``orthant_share``, ``octant_share``, ``cos_pos_share`` (the
    share of input-anchor cosines > 0, i.e. of correlations the rectifier passes),
    ``angle_q10`` ... ``angle_q90`` (degrees), ``zero_share`` and ``n_points``."""
    cos = anchor_angles(x, anchors)
    deg = torch.rad2deg(torch.arccos(cos.clamp(-1, 1))).flatten()
    if deg.numel() > 2 ** 24:               # torch.quantile's limit: an even subsample
        deg = deg[:: deg.numel() // 2 ** 23 + 1]
    q = torch.quantile(deg, torch.tensor(ANGLE_QUANTILES, dtype=torch.float64))
    out = {"norm_cv": norm_cv(x), "resultant": resultant_length(x),
           "orthant_share": orthant_share(x), "octant_share": octant_share(x, seed),
           "cos_pos_share": (cos > 0).double().mean().item()}
    out.update({f"angle_q{round(100 * p):02d}": v.item() for p, v in zip(ANGLE_QUANTILES, q)})
    out.update(zero_share=(x.double().norm(dim=1) <= _EPS).double().mean().item(),
               n_points=int(x.shape[0]))
    return out


@torch.no_grad()
def network_measures(model: nn.Module, images: torch.Tensor, seed: int = 0) -> dict:
    """``sphere_measures`` of the inputs of conv1, conv2, fc1 and fc2 of a LeNet-5 (in eval
    mode: a batch-normalised network uses its running statistics) on float ``images``
    (N x 1 x 28 x 28): ``{layer: measures}``."""
    f = model.eval().features(images)
    out = {}
    for name, key in LAYERS.items():
        layer = getattr(model, name)
        out[name] = sphere_measures(layer_points(f[key], layer), layer.weight.flatten(1), seed)
    return out


def circle_points(x: torch.Tensor, n_max: int = 2000, seed: int = 0) -> torch.Tensor:
    """Angles (radians) on the unit circle of up to ``n_max`` nonzero points of ``x``: each
    unit vector projected on the top two principal directions of the unit vectors (right
    singular vectors, not centred, so that a common direction stays visible), the first
    oriented towards their mean, then normalised onto the circle."""
    u = _nonzero_units(x.double())
    if len(u) > n_max:
        u = u[torch.randperm(len(u), generator=torch.Generator().manual_seed(seed))[:n_max]]
    v = torch.linalg.svd(u, full_matrices=False).Vh[:2]
    if (u @ v[0]).mean() < 0:
        v[0] = -v[0]
    p = u @ v.T
    return torch.atan2(p[:, 1], p[:, 0])
