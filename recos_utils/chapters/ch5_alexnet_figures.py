"""The figures of Chapter 5 (AlexNet as a cascade of RECOS units), one function each.

* ``cos_histograms`` (Sec. 5.3): pairwise |cos| of each layer's anchors against Gaussian
  random vectors of the same shape (:mod:`recos_utils.core.sphere_null`);
* ``tsne_grid`` (Sec. 5.4): t-SNE maps of anchors and anchor-position vectors among random
  directions;
* ``cascade_figure`` (Sec. 5.5): the stages B_l x of d = B_L ... B_1 x on one photograph,
  as recorded by ``recos.record_cascade``;
* ``zeroed_figure`` (Sec. 5.6): the fraction of responses each rectifier sets to zero;
* ``topk_figure`` (Sec. 5.7): an input and its grey-scale reversal, with their top classes;
* ``layer_table`` (Sec. 5.3), ``rows_table``: the per-layer statistics and the short
  (quantity, value) tables of Sec. 5.1 and 5.7, as HTML.

Every function returns its figure (or HTML); none computes a result the chapter reports.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from recos_utils.core.plots import html_table
from recos_utils.core.recos import Stage

__all__ = ["cos_histograms", "tsne_grid", "cascade_figure", "zeroed_figure", "topk_figure",
           "layer_table", "rows_table"]


def _plt():
    import matplotlib.pyplot as plt

    from recos_utils.core.plots import COLORS

    return plt, COLORS


def cos_histograms(pairs: dict[str, torch.Tensor], random_pairs: dict[str, torch.Tensor],
                   title: str):
    """One panel per layer: histograms of pairwise |cos| of the anchors and of Gaussian
    random vectors of the same shape (means marked); returns the figure."""
    plt, colors = _plt()
    names = list(pairs)
    fig, axes = plt.subplots(1, len(names), figsize=(1.75 * len(names), 2.3), sharey=False)
    for ax, name in zip(np.atleast_1d(axes), names):
        a, r = pairs[name].numpy(), random_pairs[name].numpy()
        bins = np.linspace(0, max(a.max(), r.max(), 1e-3), 25)
        ax.hist(r, bins=bins, density=True, color="0.6", alpha=0.6, label="random")
        ax.hist(a, bins=bins, density=True, color=colors[0], alpha=0.6, label="anchors")
        ax.axvline(r.mean(), color="0.3", lw=1, ls="--")
        ax.axvline(a.mean(), color=colors[0], lw=1.2)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("|cos|", fontsize=8)
        ax.set_yticks([])
        ax.tick_params(labelsize=7)
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def tsne_grid(maps: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], title: str):
    """Rows: anchors, anchor-position vectors; columns: layers. Each panel is a t-SNE map
    of the layer's unit vectors (colour) and as many Gaussian random directions (grey)."""
    plt, colors = _plt()
    names = list(maps)
    rows = [("anchors", "anchors $a_k$"), ("apv", r"anchor-position $\alpha_n$")]
    fig, axes = plt.subplots(2, len(names), figsize=(1.75 * len(names), 3.9), squeeze=False)
    for j, name in enumerate(names):
        for i, (key, label) in enumerate(rows):
            ax = axes[i, j]
            emb, emb_r = maps[name][key]
            ax.scatter(emb_r[:, 0], emb_r[:, 1], s=5, color="0.65", label="random")
            ax.scatter(emb[:, 0], emb[:, 1], s=5, color=colors[i * 3], label=label)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if i == 0:
                ax.set_title(name, fontsize=9)
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def cascade_figure(image: np.ndarray, records: dict, stages: list[Stage], title: str):
    """The cascade on one input: the input, then for each conv stage B_l x the map of its
    most active channel, and the fc stages' response vectors (sorted)."""
    plt, colors = _plt()
    convs = [s.name for s in stages if isinstance(s.layer, nn.Conv2d)]
    fcs = [s.name for s in stages if not isinstance(s.layer, nn.Conv2d)]
    fig = plt.figure(figsize=(1.45 * (len(convs) + 1), 3.9))
    gs = fig.add_gridspec(2, len(convs) + 1, height_ratios=[1.1, 1])
    ax = fig.add_subplot(gs[0, 0])
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
    ax.set_title("input x", fontsize=8)
    ax.axis("off")
    for j, name in enumerate(convs, start=1):
        post = records[name]["post"][0]
        k = int(post.flatten(1).mean(1).argmax())
        ax = fig.add_subplot(gs[0, j])
        ax.imshow(post[k].cpu().numpy(), cmap="magma")
        ax.set_title(f"$B_{j}$ ({name})\nchannel {k}, "
                     f"{post.shape[-2]}x{post.shape[-1]}", fontsize=7)
        ax.axis("off")
    half = (len(convs) + 1) // 2
    spans = [slice(0, half), slice(half, len(convs) + 1)]
    for (name, span), c in zip(zip(fcs, spans), colors):
        ax = fig.add_subplot(gs[1, span])
        post = records[name]["post"][0].cpu()
        v = post.sort(descending=True).values.numpy()
        ax.bar(np.arange(len(v)), v, width=1.0, color=c)
        zero = float((post == 0).float().mean())
        ax.set_title(f"$B_{len(convs) + fcs.index(name) + 1}$ ({name}): {len(v)} responses, "
                     f"sorted; {zero:.0%} are zero", fontsize=8)
        ax.set_xticks([])
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def zeroed_figure(fractions: dict[str, np.ndarray], labels: list[str], title: str):
    """Bars: per stage, the mean fraction of responses its rectifier zeroes; dots: each
    input (one row of ``fractions[name]`` per input)."""
    plt, colors = _plt()
    names = list(fractions)
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    means = [float(np.mean(fractions[n])) for n in names]
    ax.bar(names, means, color=colors[0], alpha=0.5, label="mean over photographs")
    rng = np.random.default_rng(0)
    for i, n in enumerate(names):
        f = np.asarray(fractions[n])
        ax.scatter(i + rng.uniform(-0.2, 0.2, len(f)), f, s=10, color=colors[3], zorder=3,
                   label="one photograph" if i == 0 else None)
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction zeroed by R")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def topk_figure(images: list[np.ndarray], tops: list[list[tuple[str, float]]],
                titles: list[str], suptitle: str):
    """Each input above its top-k classes (horizontal bars of probability)."""
    plt, colors = _plt()
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(3.0 * n, 4.2), height_ratios=[1.2, 1],
                             squeeze=False)
    for j in range(n):
        ax = axes[0, j]
        img = images[j]
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(titles[j], fontsize=9)
        ax.axis("off")
        ax = axes[1, j]
        names = [t[0][:22] for t in tops[j]][::-1]
        probs = [t[1] for t in tops[j]][::-1]
        ax.barh(names, probs, color=colors[j % len(colors)])
        ax.set_xlim(0, 1)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("probability", fontsize=8)
    fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def layer_table(layers: dict[str, dict]) -> str:
    """The per-layer anchor statistics of Sec. 5.3 (``alexnet_report.layer_summary``) as
    an HTML table: |cos| against both nulls, z, nearest-neighbour cosines, and the same for
    the anchor-position vectors."""
    cols = ["layer", "anchors K", "dim N", "mean |cos|", "random (sampled)", "random (exact)",
            "z", "nearest-neighbour cos", "random", "APV mean |cos|", "APV random"]
    rows = [[n, e["n_anchors"], e["dim"],
             f"{e['mean_abs_cos']:.3f} ± {e['mean_abs_cos_std']:.3f}",
             f"{e['mean_abs_cos_random']:.3f}", f"{e['expected_abs_cos_random']:.3f}",
             f"{e['abs_cos_z']:.1f}", f"{e['mean_nn_cos']:.3f}", f"{e['mean_nn_cos_random']:.3f}",
             f"{e['apv_mean_abs_cos']:.3f}", f"{e['apv_mean_abs_cos_random']:.3f}"]
            for n, e in layers.items()]
    return html_table(cols, rows)


def rows_table(rows: list[tuple[str, str]], header=("quantity", "value")) -> str:
    """A two-column HTML table of (quantity, value) rows (protocol, reversal readings)."""
    return html_table(list(header), [list(r) for r in rows])
