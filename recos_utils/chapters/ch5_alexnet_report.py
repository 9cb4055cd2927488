"""Chapter 5's readings of AlexNet as the RECOS cascade d = B_L ... B_1 x: plain dicts.

Each function turns measurements made with :mod:`recos_utils.chapters.ch5_alexnet` (the networks),
:mod:`recos_utils.core.recos` (the cascade's stages) and :mod:`recos_utils.core.sphere_null` (anchors
against random directions) into the numbers the chapter writes to its results file and
glues into its prose:

* ``protocol`` (Sec. 5.1): which weights, how they were obtained, the fallback's training;
* ``layer_summary``, ``chance_summary`` (Sec. 5.3): per-layer anchor statistics averaged
  over networks, and which layers lie above chance (z > :data:`Z_ABOVE`);
* ``pair_cosines``, ``tsne_maps`` (Sec. 5.3-5.4): the data of the chapter's figures;
* ``zeroed_summary`` (Sec. 5.6): the fraction of responses each rectifier zeroes;
* ``reversal_imagenet``, ``reversal_fallback`` (Sec. 5.7): sign confusion under the
  grey-scale reversal x -> 255 - x: originals against reversals by the registry's one rule
  for two arms (:func:`recos_utils.core.claims.compare_arms`).

The claim ``deeper_clusters`` is judged only by :mod:`recos_utils.core.claims`; nothing here
judges it.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from recos_utils.core import recos
from recos_utils.core.data import reverse_grey
from recos_utils.core.train import to_input
from recos_utils.core.claims import compare_arms
from recos_utils.chapters.ch5_alexnet import Networks, grey_image, prepare_imagenet, topk
from recos_utils.core.results import fmt_mean_std, mean_std
from recos_utils.core.sphere import abs_cos_pairs, subsample
from recos_utils.core.sphere_null import Z_ABOVE, gaussian_like, layer_stats, tsne_with_random

__all__ = ["protocol", "layer_summary",
           "chance_summary", "pair_cosines", "tsne_maps", "zeroed_summary",
           "reversal_imagenet", "reversal_fallback"]

#: A layer's anchors count as further from orthogonal than chance above this z.

def protocol(net: Networks, seeds: list[int], epochs: float, n_train: int | None) -> dict:
    """Which weights a run used and how (Sec. 5.1).

    Returns ``{"results": keys for the results file, "kind": a short phrase,
    "sha256": a short phrase, "rows": (quantity, value) rows of the protocol table}``.
    """
    res: dict = {"weights": net.weights, "weights_note": net.note}
    rows = [("weights", net.weights), ("how", net.note)]
    if net.kind == "imagenet":
        res["sha256_ok"] = net.sha256_ok
        sha = "matches" if net.sha256_ok else "does NOT match"
        rows += [("trained here", "nothing: the published network as is"),
                 ("input", "a 224x224 colour crop of each photograph (the weights' transforms)")]
        return {"results": res, "kind": "torchvision's AlexNet with its ImageNet weights",
                "sha256": sha, "rows": rows}
    acc = mean_std([h["test_acc"] for h in net.histories])
    acc_rev = mean_std([h["test_acc_reversed"] for h in net.histories])
    n_used = n_train or 60000
    res["fallback"] = {"dataset": net.dataset, "epochs": epochs, "n_train": n_used,
                       "seeds": list(seeds), "test_acc": acc, "test_acc_reversed": acc_rev}
    rows += [("trained here", f"{len(seeds)} MiniAlexNets, seeds {seeds[0]}-{seeds[-1]}"),
             ("training images", f"{n_used:,} ({net.dataset})"),
             ("passes over them", f"{epochs:g}, with the book's recipe"),
             ("test accuracy", fmt_mean_std(acc)),
             ("input", "grey 28x28 thumbnails: luminance, central square, resized")]
    return {"results": res, "kind": "NOT the ImageNet weights but the fallback trained here",
            "sha256": "not applicable (no ImageNet file)", "rows": rows}


def layer_summary(models: list[nn.Module], max_rows: int, seed: int) -> dict[str, dict]:
    """``layer_stats`` of every stage of every network, averaged over the networks.

    Counts (ints) come from the first network, every float is the mean over networks, and
    ``mean_abs_cos_std`` / ``mean_nn_cos_std`` are the spreads over networks."""
    per_model = [{s.name: layer_stats(s.layer, max_rows, seed=seed)
                  for s in recos.recos_stages(m)} for m in models]
    layers = {}
    for name, first in per_model[0].items():
        rows = [pm[name] for pm in per_model]
        entry = {k: v for k, v in first.items() if isinstance(v, int)}
        for k, v in first.items():
            if isinstance(v, float):
                entry[k] = mean_std([r[k] for r in rows])["mean"]
        for k in ("mean_abs_cos", "mean_nn_cos"):
            entry[f"{k}_std"] = mean_std([r[k] for r in rows])["std"]
        layers[name] = entry
    return layers


def chance_summary(layers: dict[str, dict], z: float = Z_ABOVE) -> dict:
    """Which layers' anchors lie more than ``z`` null standard deviations above the exact
    random |cos|; the largest excess (mean |cos| / exact random value); and, as a
    description, the nearest-neighbour cosine relative to random vectors of the same shape
    for conv1, conv3 and conv5."""
    above = [n for n, e in layers.items() if e["abs_cos_z"] > z]
    ratio = {n: e["mean_abs_cos"] / e["expected_abs_cos_random"] for n, e in layers.items()}
    nn_ratio = {n: e["mean_nn_cos"] / e["mean_nn_cos_random"] for n, e in layers.items()}
    deep = [n for n in ("conv1", "conv3", "conv5") if n in nn_ratio]
    top = max(ratio, key=ratio.get)
    return {"z": z, "above": above, "below": [n for n in layers if n not in above],
            "max_ratio_layer": top, "max_ratio": ratio[top],
            "nn_ratios": {n: nn_ratio[n] for n in deep}}


def pair_cosines(model: nn.Module, max_rows: int, seed: int):
    """Per stage: pairwise |cos| of the (subsampled) anchors and of Gaussian random vectors
    of the same shape, ``(anchors, random)``: the data of the histogram figure."""
    pairs, rpairs = {}, {}
    for s in recos.recos_stages(model):
        v = subsample(recos.anchors(s.layer).cpu(), max_rows, seed)
        pairs[s.name] = abs_cos_pairs(v)
        rpairs[s.name] = abs_cos_pairs(gaussian_like(v, seed + 1))
    return pairs, rpairs


def tsne_maps(model: nn.Module, points: int, seed: int, max_iter: int) -> dict:
    """Per stage, t-SNE maps of its anchors and anchor-position vectors among random ones."""
    maps = {}
    for s in recos.recos_stages(model):
        a = recos.anchors(s.layer).cpu()
        maps[s.name] = {"anchors": tsne_with_random(a, points, seed, max_iter),
                        "apv": tsne_with_random(recos.anchor_position_vectors(a), points,
                                                seed, max_iter)}
    return maps


def zeroed_summary(models: list[nn.Module], x: torch.Tensor, layers: dict[str, dict]) -> dict:
    """Fraction of responses each rectifier zeroes on inputs ``x``, per network.

    Adds ``frac_zeroed`` and ``frac_zeroed_std`` (mean and spread over networks) to
    ``layers``; returns the per-input fractions of the first network (``first``), the stages
    that zero most and least, and the overall mean."""
    fz = [recos.zero_fractions(m, x, stages=recos.recos_stages(m)) for m in models]
    for name in layers:
        ms = mean_std([f[name].mean().item() for f in fz])
        layers[name]["frac_zeroed"], layers[name]["frac_zeroed_std"] = ms["mean"], ms["std"]
    frac = {n: layers[n]["frac_zeroed"] for n in layers}
    most, least = max(frac, key=frac.get), min(frac, key=frac.get)
    return {"first": {n: fz[0][n].numpy() for n in layers}, "most": most,
            "most_frac": frac[most], "least": least, "least_frac": frac[least],
            "overall": float(np.mean(list(frac.values())))}


def reversal_imagenet(model: nn.Module, photos: dict[str, np.ndarray], categories: list[str],
                      example: str = "chelsea") -> dict:
    """Sign confusion with ImageNet weights: top classes of each grey photograph and of its
    reversal. ``compare``: the share of photographs whose top-1 class the reversal keeps
    (``results.mean_std`` of 1 / 0 per photograph) against the originals' (all of them,
    1 exactly), by :func:`recos_utils.core.claims.compare_arms`."""
    grey = torch.stack([prepare_imagenet(p, grey=True) for p in photos.values()])
    rev = torch.stack([prepare_imagenet(p, grey=True, reverse=True) for p in photos.values()])
    top_g, top_r = topk(model, grey, categories, 5), topk(model, rev, categories, 5)
    kept_stat = mean_std([float(g[0][0] == r[0][0]) for g, r in zip(top_g, top_r)])
    kept = kept_stat["mean"]
    compare = compare_arms({"mean": 1.0, "std": 0.0, "n": kept_stat["n"]}, kept_stat)
    i = list(photos).index(example)
    overlap = len({c for c, _ in top_g[i]} & {c for c, _ in top_r[i]})
    g = np.asarray(grey_image(photos[example]))
    return {"results": {"top5_grey": top_g[i], "top5_reversed": top_r[i],
                        "top5_overlap": overlap, "top1_kept_fraction": kept,
                        "top1_kept": kept_stat, "original_vs_reversed": compare},
            "example": f"the grey {example} photograph", "tops": [top_g[i], top_r[i]],
            "images": [g, reverse_grey(g)], "titles": ["grey photograph", "grey-scale reversal"],
            "compare": compare, "measure": "the top-1 class, the same as on the grey photograph",
            "rows": [("top-5 classes shared by the example and its reversal", f"{overlap} of 5"),
                     ("photographs whose top-1 class survives the reversal",
                      f"{kept:.0%} of {len(photos)}")]}


def reversal_fallback(model: nn.Module, net: Networks, test_images: torch.Tensor,
                      test_label: int, acc: dict, acc_rev: dict) -> dict:
    """Sign confusion for the fallback: its accuracy on the reversed test set (``acc_rev``
    against ``acc``, ``results.mean_std`` over seeds, compared by
    :func:`recos_utils.core.claims.compare_arms`) and the top classes of one test image
    (uint8, 1 x H x W) and its reversal."""

    x0, xr = to_input(test_images[:1]), to_input(reverse_grey(test_images[:1]))
    tops = topk(model, torch.cat([x0, xr]), net.categories, 3)
    compare = compare_arms(acc, acc_rev)
    return {"results": {"top3_original": tops[0], "top3_reversed": tops[1],
                        "original_vs_reversed": compare},
            "example": f"the first test image (true class '{net.categories[test_label]}')",
            "tops": tops, "images": [x0[0, 0].numpy(), xr[0, 0].numpy()],
            "titles": ["test image", "grey-scale reversal"], "compare": compare,
            "measure": "the test accuracy",
            "rows": [(f"test accuracy, original {net.dataset}", fmt_mean_std(acc)),
                     ("test accuracy, reversed (chance: 10%)", fmt_mean_std(acc_rev))]}
