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
:mod:`recos_utils.claims`.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

from .claims import trained
from .models import LeNet5
from .plots import COLORS
from .sign_confusion import accuracy_pairs, differs, summarize
from .train import Recipe, TrainConfig, to_input

__all__ = ["ablation_name", "ablation_configs", "ablation_grid", "ablation_tables",
           "active_fraction", "dead_fraction", "ablation_figure", "trelu_figure",
           "ablation_reading", "check_predictions"]


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
    accs = accuracy_pairs([m for m, _ in trained], images, labels, device)
    probe_x = to_input(images[:probe])
    groups: dict[str, dict[str, list]] = {}
    for (pool, name, _), (model, hist), acc in zip(abl, trained, accs):
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


def ablation_reading(tables: dict[str, dict], trelu_z) -> dict:
    """What the ablation says, as numbers and the words the chapter shows (Sec. 2.8).

    Comparisons use :func:`differs` (two standard errors of the seed-to-seed spread). A
    network that did not train (:func:`recos_utils.claims.trained`, the book's one test)
    is left out of the comparisons; for the TReLU thresholds that did not train, the share
    of dead units in the trained networks says why.
    """
    tmax, tavg = tables["max"], tables["avg"]
    lin, relu_avg, id_max, relu = tavg["identity"], tavg["relu"], tmax["identity"], tmax["relu"]
    d_max = differs(id_max, relu)
    names = [ablation_name("trelu", z) for z in trelu_z]
    dead = [z for z, n in zip(trelu_z, names) if not trained(tmax[n])]
    alive = [(z, n) for z, n in zip(trelu_z, names) if z not in dead]
    best_z, best = max([(0.0, "relu")] + alive, key=lambda t: tmax[t[1]]["acc_original"])
    rev_best = max(t["acc_reversed"] for tab in tables.values() for t in tab.values())
    out = {"lin_acc": lin["acc_original"], "reluavg_acc": relu_avg["acc_original"],
           "idmax_acc": id_max["acc_original"], "relumax_acc": relu["acc_original"],
           "sigmoid_acc": tmax["sigmoid"]["acc_original"],
           "sigmoid_train_acc": tmax["sigmoid"]["train_acc_final"],
           "best_rev": rev_best, "trelu_best_z": best_z,
           "trelu_best_acc": tmax[best]["acc_original"], "trelu_n_trained": len(alive),
           "trelu_n": len(names), "relu_dead_units": relu["dead_units"]}
    out["maxpool_verdict"] = ("matches ReLU within the noise" if d_max == 0
                              else "falls short of ReLU" if d_max < 0 else "beats ReLU")
    out["maxpool_reading"] = (
        "The rectification the paper asks for need not sit in the activation: max pooling "
        "supplies it, and read through RECOS the claim is about rectification somewhere "
        "between the correlations, not about the activation function as such."
        if d_max >= 0 and differs(id_max, lin) > 0 else
        "Max pooling supplies some rectification, but not all that an activation gives.")
    out["rev_reading"] = (
        "No activation makes the network read reversed images: polarity is decided by which "
        "anchors the first layer has (Secs. 2.5-2.7), not by the shape of the rectifier."
        if rev_best < 0.5 else
        "Some activation lets the network read reversed images without ever seeing one.")
    trained_txt = (f"{len(alive)} of the {len(names)} thresholds trained" if alive
                   else "No threshold z > 0 trained")
    if dead:
        du = sum(tmax[ablation_name("trelu", z)]["dead_units"] for z in dead) / len(dead)
        why = (f"; z = {', '.join(f'{z:.1f}' for z in dead)} did not (at most "
               f"{max(tmax[ablation_name('trelu', z)]['acc_original'] for z in dead):.1%}): in "
               f"those trained networks {du:.0%} of the units never fire on test images "
               f"(ReLU: {relu['dead_units']:.0%}), so no gradient reaches them. A patch passes "
               f"only within arccos z of an anchor, and at initialisation few patches lie so "
               f"close to a random anchor (table below).")
    else:
        why = "."
    out["trelu_reading"] = trained_txt + why
    return out


def _pct(s: dict, key: str = "original") -> str:
    return f"{100 * s['acc_' + key]:.1f}%"


def check_predictions(tab_max: dict, tab_avg: dict, trelu_z) -> list[dict]:
    """RECOS's predictions for the activation ablation, checked against the results.

    ``tab_max`` / ``tab_avg``: result name -> summary (see :func:`summarize`) for max and
    average pooling. A comparison counts only beyond 2 standard errors (:func:`differs`).
    Networks that did not train (:func:`recos_utils.claims.trained`) are left out of
    the comparisons; a prediction about them alone is reported as not tested (held None).
    The two predictions that are the paper's own claims (the linear network falls short of
    ReLU; TReLU peaks near z = 0.5) are not here: :mod:`recos_utils.claims` judges them.
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
                 "held": differs(idm, lin) > 0})
    for n in ("tanh", "sigmoid"):
        if n in tab_max:
            rows.append({"activation": f"{n}, max pool",
                         "prediction": "negative correlations pass: below ReLU on the originals",
                         "observed": f"{_pct(tab_max[n])} vs ReLU {_pct(relu)}",
                         "held": differs(tab_max[n], relu) < 0})
    ab = tab_max["abs"]
    rows.append({"activation": "abs, max pool",
                 "prediction": "merges similar and opposite: below ReLU on the originals",
                 "observed": f"{_pct(ab)} vs ReLU {_pct(relu)}",
                 "held": differs(ab, relu) < 0})
    rows.append({"activation": "abs, max pool",
                 "prediction": "blind to polarity: above ReLU on reversed images",
                 "observed": f"reversed {_pct(ab, 'reversed')} vs ReLU {_pct(relu, 'reversed')}",
                 "held": differs(ab, relu, "acc_reversed") > 0})
    return rows
