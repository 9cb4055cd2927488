"""Which activation? The ablation of Chapter 2, Sec. 2.8.

Each activation replaces ReLU in every layer of LeNet-5, with max pooling (the baseline's)
and with average pooling; the threshold ReLU of the 2017 note (``models.TReLU``, on the
cosine) is swept over z with max pooling. Max pooling is itself a rectifier,
max(a, b) = b + Rec(a - b), so only with average pooling and no activation is the network
linear. ``ablation_grid`` lays out the networks (all on the baseline's recipe and data),
``ablation_tables`` summarises them (accuracy on original and reversed digits, how training
ended, dead units), ``check_predictions`` tests RECOS's predictions for the book's own
ablation, and the figures show them. The paper's claims that this ablation bears on (a
nonlinearity is essential; TReLU peaks near z = 0.5) are judged once, in
:mod:`recos_utils.core.claims`.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from recos_utils.core.claims import GREATER, LESS, compare_arms, trained
from recos_utils.core.models import LeNet5
from recos_utils.core.plots import COLORS
from recos_utils.chapters.ch2_sign_confusion import accuracy_pairs, arm, summarize
from recos_utils.core.train import Recipe, TrainConfig, to_input

__all__ = ["ablation_name", "ablation_configs", "ablation_grid", "ablation_tables",
           "active_fraction", "dead_fraction", "ablation_figure", "trelu_figure",
           "ablation_numbers", "ablation_comparisons", "check_predictions"]


@torch.no_grad()
def active_fraction(model: LeNet5, images: torch.Tensor) -> list[float]:
    """Fraction of units with a nonzero output after each of the four activations."""
    f = model.eval().features(images)
    return [(f[f"relu{i}"] != 0).float().mean().item() for i in range(1, 5)]


@torch.no_grad()
def dead_fraction(model: LeNet5, images: torch.Tensor) -> float:
    """Share of units (conv channels and fc neurons of the four rectified layers) that
    output zero for every input of ``images`` and at every position: units that never
    fire cannot pass a gradient either, so a network of dead units cannot train."""
    f = model.eval().features(images)
    dead = total = 0
    for i in range(1, 5):
        y = f[f"relu{i}"]
        fires = (y != 0).transpose(0, 1).flatten(1).any(1)     # per channel / neuron
        dead += int((~fires).sum())
        total += fires.numel()
    return dead / total


def ablation_tables(abl: list[tuple[str, str, TrainConfig]], trained: list[tuple[LeNet5, dict]],
                    images: torch.Tensor, labels: torch.Tensor, device="cpu",
                    probe: int = 500) -> dict[str, dict[str, dict]]:
    """The ablation's results: pool -> result name -> summary over seeds.

    ``abl`` is :func:`ablation_configs`' list and ``trained`` the matching (model, history)
    pairs. Each summary holds the accuracies on the original and reversed test images
    (:func:`summarize`) and how training ended, as means over seeds: the final training
    loss and accuracy (``train.fit``'s last quarter epoch) and the share of dead units on
    the first ``probe`` test images (:func:`dead_fraction`).
    """
    accs = accuracy_pairs([t[0] for t in trained], images, labels, device)
    probe_x = to_input(images[:probe])
    groups: dict[str, dict[str, list]] = {}
    for (pool, name, _), (model, hist, *_), acc in zip(abl, trained, accs):
        groups.setdefault(pool, {}).setdefault(name, []).append(
            (acc, hist["train_loss_final"], hist["train_acc_final"], dead_fraction(model, probe_x)))
    tables = {}
    for pool, by_name in groups.items():
        tables[pool] = {}
        for name, rows in by_name.items():
            t = summarize([r[0] for r in rows])
            for j, key in enumerate(("train_loss_final", "train_acc_final", "dead_units"), 1):
                t[key] = sum(r[j] for r in rows) / len(rows)
            tables[pool][name] = t
    return tables


def ablation_name(activation: str, z: float | None = None) -> str:
    """Result key of an activation: its name, or ``trelu_<z>`` for the threshold ReLU."""
    return f"trelu_{z:.1f}" if activation == "trelu" else activation


def ablation_configs(activations, trelu_z, pools, seeds, *, dataset: str,
                     n_train: int | None, recipe: Recipe) -> list[tuple[str, str, TrainConfig]]:
    """(pool, result name, config) for every activation x pool x seed of the ablation."""
    out = []
    for pool in pools:
        for act in activations:
            zs = trelu_z if act == "trelu" else [None]
            for z in zs:
                for seed in seeds:
                    cfg = TrainConfig(dataset=dataset, activation=act, pool=pool, seed=seed,
                                      n_train=n_train, recipe=recipe,
                                      **({"trelu_z": float(z)} if z is not None else {}))
                    out.append((pool, ablation_name(act, z), cfg))
    return out


def ablation_grid(activations, trelu_z, seeds, *, dataset: str, n_train: int | None,
                  recipe: Recipe) -> list[tuple[str, str, TrainConfig]]:
    """The ablation of Sec. 2.8: every activation with max and with average pooling, and
    the TReLU sweep over ``trelu_z`` with max pooling; every network with every seed and
    the same data and recipe (the baseline's: ReLU with max pooling *is* the baseline)."""
    kw = dict(dataset=dataset, n_train=n_train, recipe=recipe)
    return (ablation_configs(list(activations) + ["trelu"], trelu_z, ["max"], seeds, **kw)
            + ablation_configs(list(activations), [], ["avg"], seeds, **kw))


def ablation_figure(tables: dict[str, dict], order: list[str], title: str):
    """Grouped bars: accuracy on original and reversed test sets per activation, one panel
    per pooling (``tables``: pool -> name -> summary)."""
    fig, axes = plt.subplots(1, len(tables), figsize=(5.2 * len(tables), 3.4), squeeze=False,
                             sharey=True)
    for ax, (pool, tab) in zip(axes[0], tables.items()):
        names = [n for n in order if n in tab]
        x = np.arange(len(names))
        for j, (key, label) in enumerate((("original", "original test set"),
                                          ("reversed", "reversed test set"))):
            ax.bar(x + (j - 0.5) * 0.38, [tab[n]["acc_" + key] for n in names], 0.38,
                   yerr=[tab[n]["std_" + key] for n in names], color=COLORS[j], label=label,
                   capsize=2)
        ax.set_xticks(x, [n.replace("_", " ") for n in names], rotation=45, ha="right",
                      fontsize=8)
        ax.set_ylim(0, 1.18)
        ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.axhline(0.1, color="0.4", lw=0.8, ls=":")
        ax.set_title(f"{pool} pooling")
        ax.legend(fontsize=8, loc="upper center", ncol=2)
    axes[0][0].set_ylabel("accuracy")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def trelu_figure(tables: dict[str, dict], title: str):
    """Accuracy on the original test set against the TReLU threshold z (z = 0 is ReLU),
    mean and std over seeds, one line per pooling that has a TReLU sweep."""
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    for j, (pool, tab) in enumerate(tables.items()):
        zz = sorted(float(n.split("_")[1]) for n in tab if n.startswith("trelu_"))
        if not zz:
            continue
        names = ["relu"] + [ablation_name("trelu", z) for z in zz]
        ax.errorbar([0.0] + zz, [tab[n]["acc_original"] for n in names],
                    yerr=[tab[n]["std_original"] for n in names], marker="o", capsize=2,
                    color=COLORS[j], label=f"{pool} pooling")
    ax.axhline(0.1, color="0.4", lw=0.8, ls=":")
    ax.set_xlabel("threshold z of TReLU on the cosine (z = 0: ReLU)")
    ax.set_ylabel("accuracy, original test set")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(title, fontsize=10)
    return fig


def ablation_numbers(tables: dict[str, dict], trelu_z) -> dict:
    """The numbers the chapter's reading of the ablation quotes (Sec. 2.8); the prose that
    reads them is the notebook's.

    A network that did not train (:func:`recos_utils.core.claims.trained`, the book's one
    test) is left out of the TReLU comparison: ``trelu_best_z`` is the best of ReLU (z = 0)
    and the thresholds that trained, on the original test set. ``best_rev`` is the best
    accuracy on reversed images over every network of the ablation.
    """
    tmax, tavg = tables["max"], tables["avg"]
    relu = tmax["relu"]
    names = [ablation_name("trelu", z) for z in trelu_z]
    alive = [(z, n) for z, n in zip(trelu_z, names) if trained(tmax[n])]
    best_z, best = max([(0.0, "relu")] + alive, key=lambda t: tmax[t[1]]["acc_original"])
    return {"lin_acc": tavg["identity"]["acc_original"],
            "reluavg_acc": tavg["relu"]["acc_original"],
            "idmax_acc": tmax["identity"]["acc_original"], "relumax_acc": relu["acc_original"],
            "sigmoid_acc": tmax["sigmoid"]["acc_original"],
            "sigmoid_train_acc": tmax["sigmoid"]["train_acc_final"],
            "best_rev": max(t["acc_reversed"] for tab in tables.values() for t in tab.values()),
            "trelu_best_z": best_z, "trelu_best_acc": tmax[best]["acc_original"],
            "trelu_n_trained": len(alive), "trelu_n": len(names),
            "relu_dead_units": relu["dead_units"]}


def ablation_comparisons(tables: dict[str, dict]) -> dict[str, str]:
    """The max-pooled network without activation against ReLU (max pooling) and against the
    linear network (identity, average pooling), on the original test set: the registry's
    words (:func:`recos_utils.core.claims.compare_arms`: ``clearly greater``, ``clearly
    less`` or ``not distinguishable``, the first network named first)."""
    tmax, tavg = tables["max"], tables["avg"]
    idm = arm(tmax["identity"])
    return {"idmax_vs_relu": compare_arms(idm, arm(tmax["relu"])),
            "idmax_vs_linear": compare_arms(idm, arm(tavg["identity"]))}


def _pct(s: dict, key: str = "original") -> str:
    return f"{100 * s['acc_' + key]:.1f}%"


def check_predictions(tab_max: dict, tab_avg: dict, trelu_z) -> list[dict]:
    """RECOS's predictions for the activation ablation, checked against the results.

    ``tab_max`` / ``tab_avg``: result name -> summary (see :func:`summarize`) for max and
    average pooling. A comparison counts only beyond 2 standard errors of the difference
    (:func:`recos_utils.core.claims.compare_arms`).
    Networks that did not train (:func:`recos_utils.core.claims.trained`) are left out of
    the comparisons; a prediction about them alone is reported as not tested (held None).
    The two predictions that are the paper's own claims (the linear network falls short of
    ReLU; TReLU peaks near z = 0.5) are not here: :mod:`recos_utils.core.claims` judges them.
    Returns rows {activation, prediction, observed, held (True, False or None)}.
    """
    relu, rows = tab_max["relu"], []
    ok = lambda n: trained(tab_max[n])
    rect = ["relu", "leaky_relu"] + [ablation_name("trelu", z) for z in trelu_z]
    rect = [n for n in rect if n in tab_max and ok(n)]
    worst = max(tab_max[n]["acc_reversed"] for n in rect)
    rows.append({"activation": "rectifiers that trained (ReLU, leaky ReLU, TReLU), max pool",
                 "prediction": "learn the originals; fail on reversed images (below 50%)",
                 "observed": f"originals {min(tab_max[n]['acc_original'] for n in rect):.1%} or "
                             f"more; reversed at most {worst:.1%}",
                 "held": worst < 0.5})
    lin = tab_avg["identity"]
    rows.append({"activation": "identity, average pool (a linear network)",
                 "prediction": "reversed logits = constant - original logits: below chance (10%)",
                 "observed": f"reversed {_pct(lin, 'reversed')}",
                 "held": lin["acc_reversed"] < 0.1})
    idm = tab_max["identity"]
    rows.append({"activation": "identity, max pool",
                 "prediction": "max pooling rectifies: above the linear network",
                 "observed": f"{_pct(idm)} vs linear {_pct(lin)} (ReLU {_pct(relu)})",
                 "held": compare_arms(arm(idm), arm(lin)) == GREATER})
    for n in ("tanh", "sigmoid"):
        if n in tab_max:
            rows.append({"activation": f"{n}, max pool",
                         "prediction": "negative correlations pass: below ReLU on the originals",
                         "observed": f"{_pct(tab_max[n])} vs ReLU {_pct(relu)}",
                         "held": compare_arms(arm(tab_max[n]), arm(relu)) == LESS})
    ab = tab_max["abs"]
    rows.append({"activation": "abs, max pool",
                 "prediction": "merges similar and opposite: below ReLU on the originals",
                 "observed": f"{_pct(ab)} vs ReLU {_pct(relu)}",
                 "held": compare_arms(arm(ab), arm(relu)) == LESS})
    rows.append({"activation": "abs, max pool",
                 "prediction": "blind to polarity: above ReLU on reversed images",
                 "observed": f"reversed {_pct(ab, 'reversed')} vs ReLU {_pct(relu, 'reversed')}",
                 "held": compare_arms(arm(ab, "reversed"), arm(relu, "reversed")) == GREATER})
    return rows
