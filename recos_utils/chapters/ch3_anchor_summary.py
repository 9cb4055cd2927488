"""Chapter 3's measurements of anchors, reduced to plain dicts (Ch. 3).

The chapter's cells measure; these functions turn the measurements into the numbers its
results file holds. Nothing here chooses words by a result: where the chapter compares two
arms it uses the registry's one rule, :func:`recos_utils.core.claims.compare_arms`
(:func:`match_comparison`, :func:`sparsity_summary`), and every other reading is prose with
glued numbers in the notebook.

* Sec. 3.2: ``top_patch_cos``, the mean cosine cos(a~_k, x~) between each mean-removed
  conv1 anchor a~_k = a_k - mean(a_k) 1 and its strongest (mean-removed) input patches x~;
* Sec. 3.3: ``match_summary`` (one K of the optimal anchor-to-centroid matching
  max_pi (1/6) sum_k cos(a~_k, c_pi(k)), against random and untrained anchors),
  ``match_comparison`` (the trained match against both references, by the one rule),
  ``match_gap`` (trained minus random), ``dc_share`` (the share N mean(a)^2 / ||a||^2 of
  an anchor's squared norm that is its mean);
* Sec. 3.4: ``geometry_layer`` (pairwise-angle statistics of a layer's anchors),
  ``spread_ratios``, ``sparsity_summary`` (the share of responses a_k^T x + b_k <= 0);
* Sec. 3.5: ``angle_band`` and ``formation_summary`` (the angle theta_k(t) of each anchor
  to its final position);
* Sec. 3.6: ``arm_summary`` (one arm of the initialisation experiment), ``seed_race``
  (per seed: which arm reaches the target first) and ``steps_cell`` (steps per seed, for
  the table). The claim that the k-means start converges faster is judged only by
  ``claims`` (``kmeans_faster``).

``match_summary``, ``MATCH_Q`` and ``dc_share`` are readings the appendix (Chapter 7)
applies too: they live in :mod:`recos_utils.core.readings` and are imported from there.
"""
from __future__ import annotations

import numpy as np

from recos_utils.core import sphere
from recos_utils.core.claims import compare_arms
from recos_utils.chapters.ch3_anchor_training import steps_to
from recos_utils.core.readings import MATCH_Q, dc_share, match_summary
from recos_utils.core.results import mean_std

__all__ = ["NOT_REACHED", "top_patch_cos", "match_comparison",
           "match_gap", "geometry_layer", "spread_ratios", "sparsity_summary",
           "angle_band", "formation_summary", "early_step", "steps_summary", "arm_summary",
           "seed_race", "steps_cell"]

#: Sec. 3.6: how a seed that never reached an accuracy level shows in the table.
NOT_REACHED = "—"


def top_patch_cos(patches, anchors) -> float:
    """Mean cosine between each anchor (K x D) and its top patches (K x n x ...), both mean-
    removed (Sec. 3.2)."""
    p = np.asarray(patches, dtype=np.float64)
    k, n = p.shape[:2]
    u = sphere.unit_rows(sphere.center_rows(p.reshape(k * n, -1)))
    a = sphere.unit_rows(sphere.center_rows(np.asarray(anchors, dtype=np.float64)))
    return float((u * np.repeat(a, n, axis=0)).sum(1).mean())


def random_stat(m: dict) -> dict:
    """The random anchor sets' match as a ``{"mean", "std", "n"}`` arm (n: the sets)."""
    return {"mean": m["mean_cos_random"], "std": m["mean_cos_random_std"], "n": m["n_random"]}


def match_comparison(m: dict) -> dict:
    """Sec. 3.3: the trained match (``m`` as :func:`match_summary`) against the random sets
    and against the untrained networks, each by the registry's one rule for two arms
    (:func:`recos_utils.core.claims.compare_arms`), and its mean angle in degrees."""
    deg = float(np.degrees(np.arccos(np.clip(m["mean_cos_learned"], -1.0, 1.0))))
    return {"vs_random": compare_arms(m["learned"], random_stat(m)),
            "vs_untrained": compare_arms(m["learned"], m["untrained"]), "learned_deg": deg}


def match_gap(by_k: dict, k) -> float:
    """Trained minus random mean matched cosine at ``K = k`` (``by_k``: K -> match_summary)."""
    return by_k[k]["mean_cos_learned"] - by_k[k]["mean_cos_random"]


def geometry_layer(learned, untrained, random, n_anchors: int, dim: int) -> dict:
    """Sec. 3.4: mean / std / min (degrees) of pairwise anchor angles, per population."""
    out = {"n_anchors": n_anchors, "dim": dim}
    for key, v in (("learned", learned), ("untrained", untrained), ("random", random)):
        st = sphere.angle_stats(np.asarray(v))
        out.update({f"{key}_{s}_deg": st[s] for s in ("mean", "std", "min")})
    return out


def spread_ratios(geometry: dict) -> dict:
    """Per layer: the trained spread of pairwise angles over the random one; and the widest."""
    r = {n: g["learned_std_deg"] / g["random_std_deg"] for n, g in geometry.items()}
    widest = max(r, key=r.get)
    return {"ratios": r, "widest": widest, "widest_ratio": r[widest]}


def sparsity_summary(trained: list, untrained: list) -> dict:
    """Sec. 3.4: per layer, the zeroed share over the trained and over the untrained
    networks (dicts layer -> share, one per network) as ``results.mean_std`` statistics,
    their means and stds, the layers zeroing least and most, and per layer the trained
    share against the untrained one by the one rule (``compare``: ``claims.compare_arms``)."""
    names = list(trained[0])
    tr = {n: mean_std([z[n] for z in trained]) for n in names}
    un = {n: mean_std([z[n] for z in untrained]) for n in names}
    mean = {n: tr[n]["mean"] for n in names}
    lo, hi = min(mean, key=mean.get), max(mean, key=mean.get)
    return {"mean": mean, "std": {n: tr[n]["std"] for n in names},
            "untrained": {n: un[n]["mean"] for n in names}, "stats": tr,
            "stats_untrained": un, "lo": lo, "hi": hi,
            "compare": {n: compare_arms(tr[n], un[n]) for n in names}}


def angle_band(ang) -> dict:
    """Median and 10 / 90 % quantiles over anchors (columns) of a snapshots x anchors array."""
    ang = np.asarray(ang)
    lo, hi = np.quantile(ang, [0.1, 0.9], axis=1)
    return {"median": np.median(ang, axis=1), "q10": lo, "q90": hi}


def formation_summary(steps, runs: list, layers) -> dict:
    """Sec. 3.5, for the runs of one arm: per layer, the mean initial angle to the final
    anchor, the first snapshot step at which the median angle is at most half its start,
    the same step as a share of the run (``half_way_share``), and the median curve."""
    steps = np.asarray(steps)
    out = {}
    for name in layers:
        ang = np.concatenate([np.asarray(r["angles_to_final"][name]) for r in runs], axis=1)
        med = angle_band(ang)["median"]
        half = int(steps[np.argmax(med <= med[0] / 2)])
        out[name] = {"initial_angle_deg": float(ang[0].mean()), "half_way_step": half,
                     "half_way_share": half / int(steps[-1]),
                     "median_angle_deg": med.tolist()}
    return {"layers": out,
            "latest_half_way_share": max(f["half_way_share"] for f in out.values())}


def early_step(history: dict, index: int = 3) -> int:
    """The ``index``-th evaluated step of a run (the last one if the run is shorter)."""
    s = history["eval_step"]
    return s[min(index, len(s) - 1)]


def steps_summary(per_seed: list) -> dict:
    """Steps to a level over seeds (None: not reached): mean / std only if every seed did."""
    reached = [s for s in per_seed if s is not None]
    ms = mean_std(reached) if reached and len(reached) == len(per_seed) else None
    return {"mean": ms["mean"] if ms else None, "std": ms["std"] if ms else None,
            "per_seed": list(per_seed), "n_reached": len(reached)}


def arm_summary(runs: list, early: int, levels: dict) -> dict:
    """Sec. 3.6, one arm: final and early (at step ``early``) test accuracy, the conv1
    anchors' mean turn from start to end, and for each ``levels`` item (key -> accuracy)
    ``steps_to_<key>`` (mean, None unless every seed got there), ``_std``, ``_per_seed``
    and ``n_reached_<key>`` (``anchor_training.steps_to`` per run); ``stats`` holds the
    final and early accuracy and the turn as ``results.mean_std`` statistics."""
    fin = mean_std([r["test_acc"] for r in runs])
    acc = mean_std([r["history"]["eval"]["test"][r["history"]["eval_step"].index(early)]
                    for r in runs])
    turn = mean_std([float(np.asarray(r["angles_to_final"]["conv1"][0]).mean()) for r in runs])
    out = {"final_acc": fin["mean"], "final_acc_std": fin["std"], "n_seeds": fin["n"],
           "early_acc": acc["mean"], "early_acc_std": acc["std"], "early_step": early,
           "conv1_angle_change_deg": turn["mean"], "conv1_angle_change_deg_std": turn["std"],
           "stats": {"final_acc": fin, "early_acc": acc, "conv1_angle_change_deg": turn}}
    for key, level in levels.items():
        s = steps_summary([steps_to(r["history"], level) for r in runs])
        out.update({f"steps_to_{key}": s["mean"], f"steps_to_{key}_std": s["std"],
                    f"steps_to_{key}_per_seed": s["per_seed"], f"n_reached_{key}": s["n_reached"]})
    return out


def seed_race(a: list, b: list) -> dict:
    """Per seed, steps to the target of arm ``a`` against arm ``b`` (None: never reached,
    counted as infinitely many): how many seeds ``a`` reached it sooner and later."""
    inf = float("inf")
    pairs = [(inf if x is None else x, inf if y is None else y) for x, y in zip(a, b)]
    return {"n_sooner": sum(x < y for x, y in pairs), "n_later": sum(x > y for x, y in pairs)}


def steps_cell(per_seed: list) -> str:
    """Steps to a level, seed by seed, for a table cell: ``"240, 280"``; a seed that never
    reached the level shows as :data:`NOT_REACHED`."""
    return ", ".join(NOT_REACHED if s is None else f"{s:,}" for s in per_seed)
