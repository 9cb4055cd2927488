"""Accuracy on clean and background digits, and the investigation of the gap (Chapter 4,
Sec. 4.4 and 4.5).

Kuo (2016), Sec. 4, reports that LeNet-5 retrained on digits on natural backgrounds is
"almost" as accurate as on clean digits, and argues that one layer cannot cope with such
clutter. The chapter judges both claims only through :mod:`recos_utils.core.claims`
(``almost_same``, ``two_beats_one``); this module gives the numbers, as plain dicts:

* :func:`accuracy_table` (mean and std over seeds per network, training set and test set)
  and :func:`one_vs_two` (the two-layer minus one-layer differences; the accuracy that
  clean-trained networks lose on backgrounds), Sec. 4.4, with the figure
  :func:`plot_accuracy`;
* the investigation of why the background costs accuracy, Sec. 4.5, the book's own
  reading: :func:`accuracy_by_hidden` (accuracy per share of hidden strokes),
  :func:`gap_summary` (each variant's gap to clean accuracy) and :func:`investigate` (the
  whole table, numbers only), and :func:`plot_by_hidden`.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from recos_utils.chapters.ch4_cascade import NETS, TRAIN_SETS
from recos_utils.core.results import mean_std

__all__ = ["accuracy_table", "one_vs_two", "accuracy_by_hidden", "gap_summary", "investigate",
           "investigation_rows", "plot_accuracy", "plot_by_hidden", "HIDDEN_EDGES"]

#: Bins of the hidden-stroke share in Sec. 4.5: none, (0, 10%), [10%, 30%), [30%, 100%].
HIDDEN_EDGES = (0.0, 1e-6, 0.1, 0.3, 1.0)
HIDDEN_LABELS = ["none", "(0, 10%)", "[10%, 30%)", "[30%, 100%]"]


def accuracy_table(acc: dict, seeds: list[int], tests) -> dict:
    """Sec. 4.4's table: ``{net: {train_set: {test: mean_std over seeds}}}`` from ``acc``,
    which maps ``(net, train_set, seed)`` to ``{test: accuracy}``."""
    return {net: {ts: {t: mean_std([acc[(net, ts, s)][t] for s in seeds]) for t in tests}
                  for ts in TRAIN_SETS} for net in NETS}


def one_vs_two(table: dict) -> dict:
    """The numbers of Sec. 4.4 beyond the table (``table`` as :func:`accuracy_table`).

    Two-layer minus one-layer mean accuracy, both trained on backgrounds, on each
    background regime, and per network the clean-trained accuracy lost on background
    digits (clean test minus seen-photograph test). Fractions, not points.
    """
    two, one = table["two_layer"]["background"], table["one_layer"]["background"]
    return {"two_minus_one_background": two["background"]["mean"] - one["background"]["mean"],
            "two_minus_one_background_unseen": (two["background_unseen"]["mean"]
                                                - one["background_unseen"]["mean"]),
            "clean_trained_drop_on_background": {
                net: (table[net]["clean"]["clean"]["mean"]
                      - table[net]["clean"]["background"]["mean"]) for net in NETS}}


@torch.no_grad()
def accuracy_by_hidden(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                       hidden: torch.Tensor, edges=(0.0, 0.01, 0.1, 0.3, 1.0)) -> list[dict]:
    """Accuracy on the images whose hidden-stroke share lies in each bin [lo, hi).

    The last bin includes its upper edge. Returns ``[{"lo", "hi", "n", "acc"}, ...]``
    (``acc`` None for an empty bin).
    """
    from recos_utils.core.train import predict

    ok = (predict(model, images) == labels).float()
    out = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        last = i == len(edges) - 2
        sel = (hidden >= lo) & ((hidden <= hi) if last else (hidden < hi))
        n = int(sel.sum())
        out.append({"lo": float(lo), "hi": float(hi), "n": n,
                    "acc": float(ok[sel].mean()) if n else None})
    return out


def gap_summary(rows: dict[str, dict[str, float]]) -> dict:
    """Each variant's gap to clean accuracy, in percentage points, and the smallest.

    ``rows`` maps a training variant to ``{"reference": clean-trained accuracy on clean test
    digits (same training length), "background": its accuracy on background test digits,
    "visible": the same on the test digits whose strokes the background does not hide,
    "reference_visible": the clean-trained accuracy on those digits, clean}``
    (``reference_visible`` defaults to ``reference``). Returns ``{"best": the variant with
    the smallest gap, "gap_pp", "gap_visible_pp": its gaps, "gaps_pp": every variant's}``.
    Numbers only: the claim itself is judged by :mod:`recos_utils.core.claims`.
    """
    gaps = {k: 100.0 * (r["reference"] - r["background"]) for k, r in rows.items()}
    best = min(gaps, key=lambda k: (gaps[k], k))
    r = rows[best]
    gap_vis = 100.0 * (r.get("reference_visible", r["reference"]) - r["visible"])
    return {"best": best, "gap_pp": gaps[best], "gap_visible_pp": gap_vis, "gaps_pp": gaps}


def investigate(variants: dict, trained: dict, evals: dict, seen, test, hidden: torch.Tensor,
                clean_models: list[nn.Module], reference: float) -> dict:
    """Sec. 4.5: LeNet-5 variants trained on backgrounds, against clean accuracy.

    ``variants`` maps a name to a :class:`recos_utils.chapters.ch4_cascade.NetConfig` (norm ``none``,
    ``mean`` and ``standardise``), ``trained`` / ``evals`` a config to its network / its
    ``{test set: accuracy}``; ``seen`` / ``test`` are the seen-photograph and the clean test
    sets, ``hidden`` the hidden-stroke share of each seen test digit, ``clean_models`` the
    clean-trained LeNet-5s (one per seed) and ``reference`` their mean clean accuracy.
    Returns the results' ``investigation`` object: the variants' rows, the share of visible
    digits, :func:`gap_summary` (``verdict``: numbers only) and, under ``levers``, the
    numbers of the chapter's reading: the best variant's accuracy per hidden-stroke bin
    (``acc_by_hidden``; first and last as ``acc_no_hidden`` / ``acc_most_hidden``) and each
    input normalisation's gap to clean accuracy (one seed each: no verdict).
    """
    from recos_utils.core.train import evaluate

    visible = hidden == 0
    ref_vis = sum(evaluate(m, test.images[visible], test.labels[visible])
                  for m in clean_models) / len(clean_models)
    rows = {}
    for name, c in variants.items():
        m = trained[c]
        rows[name] = {"epochs": c.recipe.epochs, "norm": c.norm, **evals[c],
                      "visible": evaluate(m, seen.images[visible], seen.labels[visible]),
                      "reference_clean": reference, "reference_visible": ref_vis,
                      "by_hidden": accuracy_by_hidden(m, seen.images, seen.labels, hidden,
                                                      edges=HIDDEN_EDGES)}
    verdict = gap_summary({k: {"reference": r["reference_clean"], "background": r["background"],
                               "visible": r["visible"], "reference_visible": r["reference_visible"]}
                           for k, r in rows.items()})
    accs = [b["acc"] for b in rows[verdict["best"]]["by_hidden"] if b["acc"] is not None]
    by_norm = {rows[k]["norm"]: g for k, g in verdict["gaps_pp"].items()}
    levers = {"acc_no_hidden": accs[0], "acc_most_hidden": accs[-1], "acc_by_hidden": accs,
              "gap_plain_pp": by_norm["none"], "gap_mean_pp": by_norm["mean"],
              "gap_standardised_pp": by_norm["standardise"]}
    return {"variants": rows, "visible_share": float(visible.float().mean()), "verdict": verdict,
            "levers": levers}


def investigation_rows(rows: dict) -> tuple[list[str], list[list[str]]]:
    """Sec. 4.5's table (header, rows) for :func:`recos_utils.core.plots.html_table`."""
    header = ["LeNet-5 trained on backgrounds", "clean test (%)", "background, seen (%)",
              "background, unseen (%)", "seen, no stroke hidden (%)",
              "clean-trained: clean test (%)", "clean-trained: same digits (%)", "gap (points)"]
    tests = ("clean", "background", "background_unseen", "visible", "reference_clean",
             "reference_visible")
    return header, [[k] + [f"{100 * r[t]:.2f}" for t in tests]
                    + [f"{100 * (r['reference_clean'] - r['background']):.2f}"]
                    for k, r in rows.items()]


def plot_accuracy(table: dict, tests, n_seeds: int, epochs: float):
    """Sec. 4.4's figure: test accuracy (mean ± std over seeds) of the four networks."""
    import matplotlib.pyplot as plt
    import numpy as np

    from recos_utils.core.plots import COLORS

    fig, ax = plt.subplots(figsize=(7, 3.2))
    width, x = 0.2, np.arange(len(tests))
    runs = [(n, t) for n in NETS for t in TRAIN_SETS]
    for i, (net, ts) in enumerate(runs):
        ax.bar(x + (i - 1.5) * width, [100 * table[net][ts][t]["mean"] for t in tests], width,
               yerr=[100 * table[net][ts][t]["std"] for t in tests], capsize=2,
               label=f"{net.replace('_', '-')}, trained {ts}", color=COLORS[i])
    ax.set_xticks(x, ["clean test", "background, seen photos", "background, unseen photos"])
    ax.set_ylabel("test accuracy (%)")
    low = min(100 * table[n][t][s]["mean"] for n, t in runs for s in tests)
    ax.set_ylim(max(0, low - 5), 100)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    ax.set_title(f"Test accuracy, mean ± std over {n_seeds} seed(s), {epochs:g} passes")
    return fig


def plot_by_hidden(rows: dict):
    """Sec. 4.5's figure: each variant's accuracy per bin of the hidden-stroke share."""
    import matplotlib.pyplot as plt
    import numpy as np

    from recos_utils.core.plots import COLORS

    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    for i, (k, r) in enumerate(rows.items()):
        ax.plot(HIDDEN_LABELS, [100 * b["acc"] if b["acc"] is not None else np.nan
                                for b in r["by_hidden"]], marker="o", label=k, color=COLORS[i])
    for j, b in enumerate(next(iter(rows.values()))["by_hidden"]):
        ax.annotate(f"{b['n']} digits", (j, 0), xycoords=("data", "axes fraction"),
                    xytext=(0, 4), textcoords="offset points", ha="center", fontsize=7,
                    color="0.4")
    ax.set_xlabel("share of the test digit's stroke pixels hidden by the background")
    ax.set_ylabel("accuracy (%), seen photographs")
    ax.legend(fontsize=7)
    ax.set_title("Where the background-trained LeNet-5 fails: hidden strokes")
    return fig
