"""The RECOS model's math: anchors, patches, rectified correlations (Chapter 1).

Notation follows Kuo (2016), Sec. 2 as restated in the book's Chapter 1:

* a layer holds K anchor vectors a_k in R^N (the filter weights), ``anchors(layer)``;
* an input is a patch x in R^N (``patches``), optionally with its mean mu removed;
* a RECOS unit responds y_k = Rec(a_k . x + b_k), with Rec(t) = max(0, t) (eq. y = Rec(Ax));
* with mean removal and the augmented vectors x' = (mu, x), a'_k = (a_k0, a_k), where
  a_k0 = -sum_n a_kn, the response Rec(a'_k . x') vanishes on a flat patch
  (``augment``, ``tied_bias``);
* by positive homogeneity, Rec(a . x) = ||a|| ||x|| Rec(cos theta)
  (``magnitude_cosine``);
* anchor-position vectors alpha_n = A^T e_n (Chapter 4, ``anchor_position_vectors``).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["anchors", "patches", "remove_mean", "rectified_correlation", "recos_layer",
           "magnitude_cosine", "augment", "tied_bias", "geodesic_distance", "cosine",
           "anchor_position_vectors", "unit_circle_example"]


def anchors(layer: nn.Module) -> torch.Tensor:
    """The K anchor vectors of a conv or linear layer as rows of a K x N matrix."""
    w = layer.weight.detach()
    return w.reshape(w.shape[0], -1).clone()


def patches(x: torch.Tensor, kernel_size: int, padding: int = 0, stride: int = 1) -> torch.Tensor:
    """All k x k patches of ``x`` (B x C x H x W) as vectors: B x L x (C k k).

    The vector layout matches ``anchors(conv)`` (channel, row, column), so that
    ``patches @ anchors.T`` is the convolution (cross-correlation) output.
    """
    cols = F.unfold(x, kernel_size, padding=padding, stride=stride)  # B x (C k k) x L
    return cols.transpose(1, 2)


def remove_mean(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split patches into (mean-removed part, mean mu): p = (p - mu 1) + mu 1."""
    mu = p.mean(dim=-1, keepdim=True)
    return p - mu, mu.squeeze(-1)


def cosine(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """cos of the angle between the last-dimension vectors of a and b (broadcast)."""
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(eps)


def geodesic_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Geodesic distance on the unit sphere, theta = arccos(x_i . x_j) (in radians)."""
    return torch.arccos(cosine(a, b).clamp(-1.0, 1.0))


def rectified_correlation(x: torch.Tensor, a: torch.Tensor,
                          b: torch.Tensor | None = None) -> torch.Tensor:
    """Rec(a_k . x + b_k) for every input row of x (... x N) and anchor row of a (K x N)."""
    y = x @ a.T
    if b is not None:
        y = y + b
    return torch.relu(y)


def recos_layer(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """A conv layer + ReLU computed the RECOS way: unfold, correlate with anchors, rectify.

    Returns B x K x H' x W', equal to ``relu(conv(x))`` (checked in the tests).
    """
    k = conv.kernel_size[0]
    pad = conv.padding[0] if isinstance(conv.padding, tuple) else 0
    p = patches(x, k, padding=pad, stride=conv.stride[0])
    y = rectified_correlation(p, anchors(conv), None if conv.bias is None else conv.bias.detach())
    h = (x.shape[2] + 2 * pad - k) // conv.stride[0] + 1
    return y.transpose(1, 2).reshape(x.shape[0], -1, h, y.shape[1] // h)


def magnitude_cosine(x: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The decomposition Rec(a . x) = (||a|| ||x||) * Rec(cos theta).

    Returns (magnitude ||a|| ||x||, rectified cosine Rec(cos theta)), each ... x K.
    """
    mag = x.norm(dim=-1, keepdim=True) * a.norm(dim=-1)
    cos = (x @ a.T) / mag.clamp_min(1e-12)
    return mag, torch.relu(cos)


def tied_bias(a: torch.Tensor) -> torch.Tensor:
    """a_k0 = -sum_n a_kn: the bias that makes a flat patch give zero response."""
    return -a.sum(dim=-1)


def augment(x: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The augmented vectors of the mean-removal section.

    x' = (mu, x_1..x_N) with mu the patch mean and a'_k = (a_k0, a_k1..a_kN) with the tied
    bias a_k0 = -sum_n a_kn, so that a'_k . x' = a_k . x - mu sum_n a_kn = a_k . (x - mu 1):
    the augmented correlation is the correlation with the mean-removed patch, and a flat
    patch (x = mu 1) gives exactly zero. Returns (x', a').
    """
    mu = x.mean(dim=-1, keepdim=True)
    xa = torch.cat([mu, x], dim=-1)
    aa = torch.cat([tied_bias(a).unsqueeze(-1), a], dim=-1)
    return xa, aa


def anchor_position_vectors(a: torch.Tensor) -> torch.Tensor:
    """alpha_n = A^T e_n: the n-th element of every anchor, as rows (N x K) (Chapter 4)."""
    return a.T.contiguous()


def unit_circle_example(theta_x: float, anchor_angles: list[float]) -> dict:
    """The paper's Fig. 3 on the unit circle: correlations and their rectification.

    Angles in degrees. Returns x, anchors, correlations cos(theta_k - theta_x), rectified.
    """
    rad = [math.radians(t) for t in anchor_angles]
    x = torch.tensor([math.cos(math.radians(theta_x)), math.sin(math.radians(theta_x))])
    a = torch.tensor([[math.cos(r), math.sin(r)] for r in rad])
    corr = a @ x
    return {"x": x, "anchors": a, "correlation": corr, "rectified": torch.relu(corr),
            "angle_deg": torch.tensor([abs(t - theta_x) for t in anchor_angles])}

