"""The algebra of the cascade and the anchor-position vectors (Chapter 4, Sec. 4.3 and 4.7).

Kuo (2016), Sec. 4: linearised (no rectifier), two layers compute ``z = B^T A^T x = C^T x``
with ``C = A B`` (the columns of A and B are the anchor vectors of the two layers): one
layer's family. The second layer weighs input positions through the **anchor-position
vectors** ``alpha_n = A^T e_n`` (the n-th element of every first-layer anchor):
``c_nl = alpha_n . b_l``. This module holds

* :func:`linear_cascade_check` (both identities, in double precision) and
  :func:`rectifier_gap` (how far the rectified cascade is from its linearisation), Sec. 4.3;
* :func:`position_variance` (the variance of ``alpha_n`` per position, as a map) and the
  figure :func:`plot_position_variance`, Sec. 4.3;
* the paper's explanation measured, Sec. 4.7: :func:`position_split` (digit and background
  positions of the 5x5 grid), :func:`variance_split`, :func:`anchor_position_variance` (over
  networks and seeds, plain dicts) and :func:`ratio_vs_one` (the ratio against 1, by the
  registry's one rule for two arms).

All are built on :func:`recos_utils.core.recos.anchors` / ``anchor_position_vectors``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from recos_utils.core import recos
from recos_utils.core.claims import compare_arms
from recos_utils.chapters.ch4_cascade import NETS, TRAIN_SETS
from recos_utils.chapters.ch4_clutter import digit_mask, layer_masks
from recos_utils.core.results import mean_std

__all__ = ["linear_cascade_check", "rectifier_gap", "position_variance", "position_split",
           "variance_split", "anchor_position_variance", "ratio_vs_one",
           "plot_position_variance"]


def linear_cascade_check(first: nn.Module, second: nn.Module, x: torch.Tensor) -> dict:
    """Check z = B^T (A^T x) = C^T x with C = A B, and c_nl = alpha_n . b_l.

    ``first`` and ``second`` are consecutive linear layers (A: N x K, columns the K anchors
    of ``first``; B: K x L); ``x`` is M x N. Computed in double precision. Returns the
    largest absolute errors of the two identities and the scale of z.
    """
    A = recos.anchors(first).double().T            # N x K
    B = recos.anchors(second).double().T           # K x L
    x = x.double()
    z2 = (x @ A) @ B                               # rows: B^T A^T x
    C = A @ B
    z1 = x @ C                                     # rows: C^T x
    alpha = recos.anchor_position_vectors(recos.anchors(first).double())  # N x K: alpha_n = A^T e_n
    c_from_alpha = torch.stack([alpha[n] @ B for n in range(A.shape[0])])
    return {"z_max_abs_err": float((z2 - z1).abs().max()), "z_scale": float(z2.abs().max()),
            "c_max_abs_err": float((c_from_alpha - C).abs().max()),
            "shape_A": list(A.shape), "shape_B": list(B.shape), "shape_C": list(C.shape)}


@torch.no_grad()
def rectifier_gap(first: nn.Module, second: nn.Module, x: torch.Tensor) -> float:
    """How far the rectified cascade is from its linearisation, relative (0: identical).

    ``||B^T Rec(A^T x + a) - B^T (A^T x + a)|| / ||B^T (A^T x + a)||`` over the rows of
    ``x``, with the layers' own biases ``a``; the output bias of ``second`` cancels.
    """
    h = first(x)
    lin = second(h) - second.bias
    rec = second(torch.relu(h)) - second.bias
    return float((rec - lin).norm() / lin.norm().clamp_min(1e-12))


def position_variance(layer: nn.Module, channels: int, side: int) -> torch.Tensor:
    """Variance of the anchor-position vectors, as a map over input positions.

    ``layer``'s anchors have dimension ``channels * side * side`` (layout channel, row,
    column). Each input element n gives alpha_n = A^T e_n (one entry per anchor); its
    variance over the anchors is averaged over channels, giving a side x side map.
    """
    a = recos.anchors(layer)                               # K x (C s s)
    alpha = recos.anchor_position_vectors(a)               # (C s s) x K
    var = alpha.var(dim=1)                                 # per element n
    return var.reshape(channels, side, side).mean(0)


def position_split(model: nn.Module, digits: torch.Tensor, dilate: int = 1) -> torch.Tensor:
    """Boolean map of the last pooled layer (5x5): True where the digit usually is.

    The digit region of each image (:func:`digit_mask`) is carried to the pooled map
    (:func:`layer_masks`) and averaged over the images; a position counts as a digit
    position when at least half of the images have ink at its centre.
    """
    masks = layer_masks(model, digit_mask(digits, dilate))
    last = "pool2" if "pool2" in masks else "pool1"
    return masks[last].mean(0)[0] >= 0.5


def variance_split(var_map: torch.Tensor, digit_positions: torch.Tensor) -> dict:
    """Mean anchor-position variance at digit and at background positions, and their ratio."""
    d, b = float(var_map[digit_positions].mean()), float(var_map[~digit_positions].mean())
    return {"digit": d, "background": b, "ratio": b / d,
            "n_digit": int(digit_positions.sum()), "n_background": int((~digit_positions).sum())}


def anchor_position_variance(fresh: dict, models: dict, seeds: list[int],
                             digit_pos: torch.Tensor) -> dict:
    """Sec. 4.7's table: the C5 anchor-position variance at digit and background positions.

    ``fresh`` maps a network name to an untrained network, ``models`` ``(net, train_set,
    seed)`` to a trained one. Returns ``{"init": {net: variance_split}, train_set: {net:
    {"digit", "background", "ratio": mean_std over the seeds}}}``.
    """
    def split(m):
        return variance_split(position_variance(m.net.fc1, 16, 5), digit_pos)

    out = {"init": {net: split(fresh[net]) for net in NETS}}
    for ts in TRAIN_SETS:
        out[ts] = {}
        for net in NETS:
            splits = [split(models[(net, ts, s)]) for s in seeds]
            out[ts][net] = {k: mean_std([sp[k] for sp in splits])
                            for k in ("digit", "background", "ratio")}
    return out


def ratio_vs_one(ratio: dict) -> str:
    """Sec. 4.7: the background / digit variance ratio (``{"mean", "std", "n"}`` over seeds)
    against 1 (no difference between the two kinds of position), by the book's one rule for
    two arms, :func:`recos_utils.core.claims.compare_arms`, with the exact reference
    ``{"mean": 1.0, "std": 0.0, "n": n}``: ``GREATER`` (background positions vary more),
    ``LESS`` or ``LEVEL``."""
    return compare_arms(ratio, {"mean": 1.0, "std": 0.0, "n": ratio["n"]})


def plot_position_variance(maps: dict, digit_pos: torch.Tensor):
    """Sec. 4.3's figure: the anchor-position variance per position, conv1 -> conv2 (over
    a C3 anchor's 5x5 window) and S4 -> C5 (over the 5x5 grid, digit positions outlined),
    for each network of ``maps`` (title -> LeNet-5)."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(2, len(maps), figsize=(2.5 * len(maps), 5.0), squeeze=False)
    for j, (title, m) in enumerate(maps.items()):
        for i, (layer, ch, name) in enumerate([(m.net.conv2, 6, "conv1 -> conv2 (150 x 16)"),
                                               (m.net.fc1, 16, "S4 -> C5 (400 x 120)")]):
            ax = axes[i, j]
            im = ax.imshow(position_variance(layer, ch, 5).numpy(), cmap="viridis",
                           interpolation="nearest")
            if i == 1:
                ys, xs = np.nonzero(digit_pos.numpy())
                ax.scatter(xs, ys, marker="s", s=120, facecolors="none", edgecolors="white",
                           lw=0.8)
            ax.set_title(f"{title}\n{name}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    fig.suptitle("Variance of the anchor-position vectors per position (white squares: digit "
                 "positions)", fontsize=9)
    fig.tight_layout()
    return fig
