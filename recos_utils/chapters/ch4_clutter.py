"""Where the clutter goes in the layers: digit and background units (Chapter 4, Sec. 4.6).

Kuo (2016), Sec. 4, shows on digits on natural backgrounds that by LeNet-5's second layer
(relu2) the background is largely suppressed. Chapter 4, Sec. 4.6, turns the paper's
layer-response figure (:func:`plot_responses`) into numbers:

* the layer geometry: :func:`digit_mask` (the digit's ink, widened) and :func:`layer_masks`
  (which units of a map have the centre of their receptive field on the digit);
* :func:`energy_share`: the share of rectified response energy ``sum y^2`` on background
  units, and per unit against digit units;
* :func:`clutter_change`: ``sum ||y(digit on background) - y(clean digit)||^2 /
  sum ||y(clean digit)||^2``, a measure that needs no split of the units;
* :func:`energy_summary` (both measures over the seeds, as plain dicts),
  :func:`energy_reading` (the numbers of the chapter's reading, compared by the one rule) and the
  figure :func:`plot_energy`.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from recos_utils.chapters.ch4_cascade import NETS, _inner, rectified_layers
from recos_utils.core.claims import compare_arms
from recos_utils.core.models import LeNet5
from recos_utils.core.results import mean_std

__all__ = ["digit_mask", "layer_masks", "energy_share", "clutter_change", "energy_summary",
           "energy_reading", "plot_energy", "plot_responses"]


def digit_mask(digits: torch.Tensor, dilate: int = 1) -> torch.Tensor:
    """Float mask (N x 1 x 28 x 28) of the digit region: ink (> 0) dilated by ``dilate`` px."""
    m = (digits > 0).float().unsqueeze(1) if digits.dim() == 3 else (digits > 0).float()
    if dilate > 0:
        m = F.max_pool2d(m, 2 * dilate + 1, stride=1, padding=dilate)
    return m


def layer_masks(model: nn.Module, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """The input ``mask`` carried to every conv and pooling map of ``model``.

    A unit is given the mask value at the centre of its receptive field: the network's own
    padding, kernel sizes and pooling are applied with centre-tap (delta) kernels and
    average pooling, so the result is aligned exactly with the maps of ``features``
    (N x 1 x H x W, values in [0, 1]): relu1, pool1 (and relu2, pool2 for LeNet-5).
    """
    net = _inner(model)

    def centre(m, conv):
        k = conv.kernel_size[0]
        delta = torch.zeros(1, 1, k, k, dtype=m.dtype)
        delta[0, 0, k // 2, k // 2] = 1.0
        return F.conv2d(m, delta)

    def pool(m, layer):
        k = layer.kernel_size if isinstance(layer.kernel_size, int) else layer.kernel_size[0]
        return F.avg_pool2d(m, k)

    out = {}
    m = F.pad(mask, (2, 2, 2, 2), value=0.0)
    out["relu1"] = m = centre(m, net.conv1)
    out["pool1"] = m = pool(m, net.pool1)
    if isinstance(net, LeNet5):
        out["relu2"] = m = centre(m, net.conv2)
        out["pool2"] = pool(m, net.pool2)
    return out


@torch.no_grad()
def energy_share(model: nn.Module, images: torch.Tensor, digits: torch.Tensor,
                 dilate: int = 1) -> dict[str, dict[str, float]]:
    """Share of rectified response energy that falls on background units, per layer.

    ``images`` are the network inputs (uint8, e.g. digits on backgrounds), ``digits`` the
    clean digits they were made from, which define the digit region (:func:`digit_mask`).
    A unit counts as background when the centre of its receptive field lies outside the
    digit region. Returns, per rectified layer, ``{"energy": share of sum y^2 on background
    units, "area": share of background units, "ratio": mean energy of a background unit
    over that of a digit unit}``. The ratio compares layers of different geometry: 1 means
    no preference, below 1 the layer's responses crowd onto the digit.
    """
    from recos_utils.core.train import to_input

    feats = model.features(to_input(images))
    masks = layer_masks(model, digit_mask(digits, dilate))
    out = {}
    for layer in rectified_layers(model):
        bg = (masks[layer] < 0.5).float()
        e = feats[layer].pow(2).sum(1, keepdim=True)
        e_bg, e_all = float((e * bg).sum()), float(e.sum())
        a_bg = float(bg.mean())
        share = e_bg / max(e_all, 1e-12)
        ratio = (share / a_bg) / max((1 - share) / max(1 - a_bg, 1e-12), 1e-12) \
            if 0 < a_bg < 1 else float("nan")
        out[layer] = {"energy": share, "area": a_bg, "ratio": ratio}
    return out


@torch.no_grad()
def clutter_change(model: nn.Module, images: torch.Tensor, digits: torch.Tensor) -> dict:
    """How much the background changes each rectified map, relative to the clean digit's.

    ``sum ||y(image) - y(digit)||^2 / sum ||y(digit)||^2`` per rectified layer, over the
    images (uint8 ``images`` on backgrounds, ``digits`` the same digits clean). Unlike
    :func:`energy_share` it needs no digit/background split of the units, so layers with
    different receptive fields compare fairly: 0 means the layer ignores the background.
    """
    from recos_utils.core.train import to_input

    fy, fx = model.features(to_input(images)), model.features(to_input(digits))
    return {layer: float((fy[layer] - fx[layer]).pow(2).sum()
                         / fx[layer].pow(2).sum().clamp_min(1e-12))
            for layer in rectified_layers(model)}


def energy_summary(models: dict, train_set: str, seeds: list[int], images: torch.Tensor,
                   digits: torch.Tensor) -> dict:
    """Sec. 4.6's numbers for the networks trained on ``train_set``, over the seeds.

    ``models`` maps ``(net, train_set, seed)`` to a trained network; ``images`` are digits on
    backgrounds, ``digits`` the same digits clean. Returns ``{net: {layer: {"energy",
    "ratio", "clutter_change": mean_std over seeds, "area": share of background units}}}``.
    """
    out = {}
    for net in NETS:
        per_seed = [energy_share(models[(net, train_set, s)], images, digits) for s in seeds]
        change = [clutter_change(models[(net, train_set, s)], images, digits) for s in seeds]
        out[net] = {layer: {"energy": mean_std([p[layer]["energy"] for p in per_seed]),
                            "ratio": mean_std([p[layer]["ratio"] for p in per_seed]),
                            "area": per_seed[0][layer]["area"],
                            "clutter_change": mean_std([c[layer] for c in change])}
                    for layer in per_seed[0]}
    return out


def energy_reading(energy: dict, energy_clean_trained: dict) -> dict:
    """The numbers Sec. 4.6 reads, and its comparisons by the one rule.

    Per-unit ratios (``ratio_*``) and clutter changes (``change_*``) of LeNet-5's relu1 and
    relu2 and of the one-layer network's relu1 (trained on backgrounds), LeNet-5's relu2
    change when trained on clean digits, and under ``compare`` LeNet-5's relu2 change
    against its relu1's, against the one-layer layer's and against the clean-trained
    relu2's, each the registry's word (:func:`recos_utils.core.claims.compare_arms` on the
    ``mean_std`` statistics over seeds; "clearly less": relu2 passes less of the clutter).
    """
    two, one = energy["two_layer"], energy["one_layer"]
    c1, c2 = two["relu1"]["clutter_change"], two["relu2"]["clutter_change"]
    c_one = one["relu1"]["clutter_change"]
    c2_clean = energy_clean_trained["two_layer"]["relu2"]["clutter_change"]
    return {"ratio_relu1": two["relu1"]["ratio"]["mean"],
            "ratio_relu2": two["relu2"]["ratio"]["mean"],
            "ratio_one_layer": one["relu1"]["ratio"]["mean"],
            "change_relu1": c1["mean"], "change_relu2": c2["mean"],
            "change_one_layer": c_one["mean"], "change_relu2_clean_trained": c2_clean["mean"],
            "compare": {"relu2_vs_relu1": compare_arms(c2, c1),
                        "relu2_vs_one_layer": compare_arms(c2, c_one),
                        "relu2_vs_clean_trained": compare_arms(c2, c2_clean)}}


def plot_energy(energy: dict, energy_clean_trained: dict):
    """Sec. 4.6's figure: background share of the rectified energy (with the share of
    background units), the per-unit ratio and the clutter change, for LeNet-5's relu1 and
    relu2 and the one-layer network's relu1, trained on backgrounds and on clean digits."""
    import matplotlib.pyplot as plt
    import numpy as np

    from recos_utils.core.plots import COLORS

    fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.3))
    cols = [("two_layer", "relu1"), ("two_layer", "relu2"), ("one_layer", "relu1")]
    names = ["two-layer\nrelu1", "two-layer\nrelu2", "one-layer\nrelu1"]
    x = np.arange(len(cols))
    runs = [("trained on backgrounds", energy), ("trained on clean", energy_clean_trained)]
    for ax, key, scale in zip(axes, ("energy", "ratio", "clutter_change"), (100, 1, 1)):
        for i, (tag, e) in enumerate(runs):
            ax.bar(x + (i - 0.5) * 0.35, [scale * e[n][lay][key]["mean"] for n, lay in cols],
                   0.35, yerr=[scale * e[n][lay][key]["std"] for n, lay in cols], capsize=2,
                   label=tag, color=COLORS[i])
    axes[0].scatter(x, [100 * energy[n][lay]["area"] for n, lay in cols], marker="_", s=600,
                    color="black", zorder=3, label="share of background units")
    axes[1].axhline(1, color="0.5", lw=0.8)
    for ax, ylabel, title in zip(axes, ["background share of energy (%)", "ratio per unit",
                                        "relative change"],
                                 ["Rectified energy on the background",
                                  "Per-unit background / digit energy",
                                  "What the background changes in the map"]):
        ax.set_xticks(x, names)
        ax.legend(fontsize=7)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
    fig.suptitle("Digits on seen-photograph backgrounds", fontsize=10)
    fig.tight_layout()
    return fig


def plot_responses(model: nn.Module, one_layer: nn.Module, images: torch.Tensor,
                   digit: torch.Tensor, row_titles: list[str]):
    """The paper's layer-response figure: conv1, relu1, conv2, relu2 maps, per input row.

    ``images`` (uint8, R x 28 x 28) are one digit on R backgrounds; ``digit`` is the clean
    digit, which picks the channels shown (the one with the most rectified energy on it).
    The last column adds the one-layer network's rectified map for comparison.
    """
    import matplotlib.pyplot as plt

    from recos_utils.core.train import to_input

    with torch.no_grad():
        f2 = model.features(to_input(images))
        f1 = one_layer.features(to_input(images))
        c2 = model.features(to_input(digit[None]))
        c1 = one_layer.features(to_input(digit[None]))
    k1 = int(c2["relu1"][0].pow(2).sum((1, 2)).argmax())
    k2 = int(c2["relu2"][0].pow(2).sum((1, 2)).argmax())
    k3 = int(c1["relu1"][0].pow(2).sum((1, 2)).argmax())
    cols = [("input", lambda i: images[i].float(), "gray"),
            (f"conv1 [{k1}]", lambda i: f2["conv1"][i, k1], "RdBu_r"),
            (f"relu1 [{k1}]", lambda i: f2["relu1"][i, k1], "magma"),
            (f"conv2 [{k2}]", lambda i: f2["conv2"][i, k2], "RdBu_r"),
            (f"relu2 [{k2}]", lambda i: f2["relu2"][i, k2], "magma"),
            (f"one-layer relu1 [{k3}]", lambda i: f1["relu1"][i, k3], "magma")]
    fig, axes = plt.subplots(len(images), len(cols), figsize=(1.45 * len(cols),
                                                              1.5 * len(images) + 0.4),
                             squeeze=False)
    for j, (title, get, cmap) in enumerate(cols):
        maps = [get(i).numpy() for i in range(len(images))]
        hi = max(float(abs(m).max()) for m in maps) or 1.0
        for i, m in enumerate(maps):
            ax = axes[i, j]
            lo = -hi if cmap == "RdBu_r" else 0.0
            ax.imshow(m, cmap=cmap, vmin=lo, vmax=hi if j else 255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if i == 0:
                ax.set_title(title, fontsize=8)
            if j == 0:
                ax.set_ylabel(row_titles[i], fontsize=8)
    fig.tight_layout(pad=0.3)
    return fig
