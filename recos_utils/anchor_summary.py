"""Chapter 3's measurements of anchors, reduced to plain dicts and short phrases (Ch. 3).

The chapter's cells measure; these functions turn the measurements into the numbers its
results file holds and the few words its prose chooses by a result. Every threshold that
chooses words is a named constant here, glued into the chapter's prose with its rule.

* Sec. 3.2: ``top_patch_cos``, the mean cosine cos(a~_k, x~) between each mean-removed
  conv1 anchor a~_k = a_k - mean(a_k) 1 and its strongest (mean-removed) input patches x~;
* Sec. 3.3: ``match_summary`` (one K of the optimal anchor-to-centroid matching
  max_pi (1/6) sum_k cos(a~_k, c_pi(k)), against random and untrained anchors),
  ``match_verdict`` (the book's verdict on that match), ``dc_share`` (the share
  N mean(a)^2 / ||a||^2 of an anchor's squared norm that is its mean);
* Sec. 3.4: ``geometry_layer`` (pairwise-angle statistics of a layer's anchors),
  ``spread_ratios``, ``sparsity_summary`` (the share of responses a_k^T x + b_k <= 0);
* Sec. 3.5: ``angle_band`` and ``formation_summary`` (the angle theta_k(t) of each anchor
  to its final position);
* Sec. 3.6: ``arm_summary`` (one arm of the initialisation experiment), ``seed_race``
  (per seed: which arm reaches the target first) and ``steps_text``. The claim that the
  k-means start converges faster is judged only by ``claims`` (``kmeans_faster``).
"""
from __future__ import annotations

import numpy as np

from . import sphere
from .anchor_training import steps_to
from .results import mean_std

__all__ = ["TOP_CLOSE", "TOP_RESEMBLE", "MATCH_Q", "MATCH_CLOSE_DEG", "GAP_TOL", "DC_SMALL",
           "SPREAD_WIDE", "SPARSITY_TOL", "EARLY_SHARE", "top_patch_cos", "top_phrase",
           "match_summary", "match_verdict", "gap_trend", "dc_phrase", "dc_share", "geometry_layer",
           "spread_ratios", "sparsity_summary", "angle_band", "formation_summary",
           "early_step", "steps_summary", "arm_summary", "seed_race", "move_phrase",
           "steps_text"]

#: Sec. 3.2: top patches "are close copies of" their anchor above TOP_CLOSE mean cosine,
#: "resemble" it above TOP_RESEMBLE, else "only loosely resemble" it.
TOP_CLOSE, TOP_RESEMBLE = 0.7, 0.4
#: Sec. 3.3: a match is above chance if it beats this quantile of the random anchor sets
#: (and the untrained networks); it "holds" if its mean angle is also below MATCH_CLOSE_DEG.
MATCH_Q, MATCH_CLOSE_DEG = 0.95, 30.0
#: Sec. 3.3: the gap (trained minus random) "widens" / "narrows" by more than GAP_TOL.
GAP_TOL = 0.02
#: Sec. 3.3: removing the anchors' means "changes little" if their DC share is below this.
DC_SMALL = 0.1
#: Sec. 3.4: anchors are "no longer random directions" if some layer's spread of pairwise
#: angles exceeds SPREAD_WIDE times that of random vectors.
SPREAD_WIDE = 1.5
#: Sec. 3.4: a layer is "sparser" / "denser" when trained if its zeroed share moves by more.
SPARSITY_TOL = 0.02
#: Sec. 3.5: anchors "find their direction early" if, in every layer, the median anchor has
#: covered half its turn within this share of the run.
EARLY_SHARE = 0.25


def top_patch_cos(patches, anchors) -> float:
    """Mean cosine between each anchor (K x D) and its top patches (K x n x ...), both mean-
    removed (Sec. 3.2)."""
    p = np.asarray(patches, dtype=np.float64)
    k, n = p.shape[:2]
    u = sphere.unit_rows(sphere.center_rows(p.reshape(k * n, -1)))
    a = sphere.unit_rows(sphere.center_rows(np.asarray(anchors, dtype=np.float64)))
    return float((u * np.repeat(a, n, axis=0)).sum(1).mean())


def top_phrase(cos: float) -> str:
    """The words for how the top patches relate to their anchor (thresholds above)."""
    return ("are close copies of" if cos > TOP_CLOSE else
            "resemble" if cos > TOP_RESEMBLE else "only loosely resemble")


def match_summary(trained: list, untrained: list, centroids, *, n_random: int = 1000,
                  seed: int = 0) -> dict:
    """One K of Sec. 3.3's matching: the mean matched cosine (signed, and |cos|) of the
    mean-removed conv1 anchors of each trained / untrained network (lists of K x 25) with
    the ``centroids``, against ``n_random`` sets of random Gaussian anchors."""
    def ms(nets, signed):
        return mean_std([sphere.match(a, centroids, signed=signed).mean_score for a in nets])

    learned, init = ms(trained, True), ms(untrained, True)
    m = len(trained[0])
    rand = sphere.random_match_scores(m, centroids, draws=n_random, seed=seed)
    rand_abs = sphere.random_match_scores(m, centroids, draws=n_random, seed=seed, signed=False)
    return {"mean_cos_learned": learned["mean"], "mean_cos_learned_std": learned["std"],
            "mean_cos_untrained": init["mean"], "mean_cos_untrained_std": init["std"],
            "mean_cos_random": float(rand.mean()), "mean_cos_random_std": float(rand.std()),
            "mean_cos_random_q95": float(np.quantile(rand, MATCH_Q)),
            "frac_random_ge_learned": float((rand >= learned["mean"]).mean()),
            "mean_cos_learned_abs": ms(trained, False)["mean"],
            "mean_cos_untrained_abs": ms(untrained, False)["mean"],
            "mean_cos_random_abs": float(rand_abs.mean())}


def match_verdict(m: dict) -> dict:
    """The book's verdict on its own match (Sec. 3.3; not a registry claim): ``holds`` if
    the trained match beats the random sets' MATCH_Q quantile and the untrained networks
    and its mean angle is below MATCH_CLOSE_DEG; ``holds only loosely`` if only the first
    two; else ``does not hold``."""
    above = m["mean_cos_learned"] > m["mean_cos_random_q95"] and \
        m["mean_cos_learned"] > m["mean_cos_untrained"]
    deg = float(np.degrees(np.arccos(np.clip(m["mean_cos_learned"], -1.0, 1.0))))
    claim = ("holds" if above and deg < MATCH_CLOSE_DEG else
             "holds only loosely" if above else "does not hold")
    return {"above_chance": above, "learned_deg": deg, "claim": claim,
            "chance_phrase": "far better than" if above else "no better than"}


def gap_trend(by_k: dict, k0, k1) -> str:
    """How the gap (trained minus random mean cosine) moves from K = k0 to K = k1."""
    g0, g1 = (by_k[k]["mean_cos_learned"] - by_k[k]["mean_cos_random"] for k in (k0, k1))
    return "widens" if g1 > g0 + GAP_TOL else "narrows" if g1 < g0 - GAP_TOL else "stays"


def dc_phrase(share: float) -> str:
    """What removing the anchors' means does: ``changes little`` below DC_SMALL."""
    return "changes little" if share < DC_SMALL else "matters"


def dc_share(anchor_sets: list) -> float:
    """Mean over networks and anchors of N mean(a)^2 / ||a||^2 (each set K x N)."""
    out = []
    for a in anchor_sets:
        a = np.asarray(a, dtype=np.float64)
        out.append((a.mean(1) ** 2 * a.shape[1] / (a ** 2).sum(1)).mean())
    return float(np.mean(out))


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
    return {"ratios": r, "widest": widest, "widest_ratio": r[widest],
            "phrase": "are no longer" if r[widest] > SPREAD_WIDE else "stay close to"}


def sparsity_summary(trained: list, untrained: list) -> dict:
    """Sec. 3.4: per layer, mean / std over networks of the zeroed share (dicts layer ->
    share, one per network), the untrained mean, and which layers training made sparser."""
    names = list(trained[0])
    tr = {n: mean_std([z[n] for z in trained]) for n in names}
    un = {n: mean_std([z[n] for z in untrained])["mean"] for n in names}
    diff = {n: tr[n]["mean"] - un[n] for n in names}
    groups = {"sparser": [n for n in names if diff[n] > SPARSITY_TOL],
              "denser": [n for n in names if diff[n] < -SPARSITY_TOL],
              "about as sparse as before": [n for n in names if abs(diff[n]) <= SPARSITY_TOL]}
    mean = {n: tr[n]["mean"] for n in names}
    lo, hi = min(mean, key=mean.get), max(mean, key=mean.get)
    return {"mean": mean, "std": {n: tr[n]["std"] for n in names}, "untrained": un,
            "groups": groups, "lo": lo, "hi": hi,
            "phrase": "; ".join(f"{' and '.join(v)} {w}" for w, v in groups.items() if v)}


def angle_band(ang) -> dict:
    """Median and 10 / 90 % quantiles over anchors (columns) of a snapshots x anchors array."""
    ang = np.asarray(ang)
    lo, hi = np.quantile(ang, [0.1, 0.9], axis=1)
    return {"median": np.median(ang, axis=1), "q10": lo, "q90": hi}


def formation_summary(steps, runs: list, layers) -> dict:
    """Sec. 3.5, for the runs of one arm: per layer, the mean initial angle to the final
    anchor, the first snapshot step at which the median angle is at most half its start,
    and the median curve; plus ``early``: that step is within EARLY_SHARE of the run in
    every layer."""
    steps = np.asarray(steps)
    out = {}
    for name in layers:
        ang = np.concatenate([np.asarray(r["angles_to_final"][name]) for r in runs], axis=1)
        med = angle_band(ang)["median"]
        out[name] = {"initial_angle_deg": float(ang[0].mean()),
                     "half_way_step": int(steps[np.argmax(med <= med[0] / 2)]),
                     "median_angle_deg": med.tolist()}
    early = all(f["half_way_step"] <= EARLY_SHARE * int(steps[-1]) for f in out.values())
    return {"layers": out, "early": early,
            "phrase": "find their direction early" if early else "keep turning late"}


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
    and ``n_reached_<key>`` (``anchor_training.steps_to`` per run)."""
    fin = mean_std([r["test_acc"] for r in runs])
    acc = mean_std([r["history"]["eval"]["test"][r["history"]["eval_step"].index(early)]
                    for r in runs])
    turn = mean_std([float(np.asarray(r["angles_to_final"]["conv1"][0]).mean()) for r in runs])
    out = {"final_acc": fin["mean"], "final_acc_std": fin["std"], "n_seeds": fin["n"],
           "early_acc": acc["mean"], "early_acc_std": acc["std"], "early_step": early,
           "conv1_angle_change_deg": turn["mean"], "conv1_angle_change_deg_std": turn["std"]}
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


def move_phrase(init: dict) -> str:
    """Whether the k-means conv1 anchors turn less during training than the random ones."""
    k, r = (init[a]["conv1_angle_change_deg"] for a in ("kmeans", "random"))
    return "move less" if k < r else "move no less"


def steps_text(r: dict, key: str) -> str:
    """``steps_to_<key>`` of an arm, in words: mean ± std, never, or in how many seeds."""
    if r[f"steps_to_{key}"] is not None:
        return f"{r[f'steps_to_{key}']:.0f} ± {r[f'steps_to_{key}_std']:.0f} steps"
    if r[f"n_reached_{key}"] == 0:
        return "never, within the run"
    return f"only in {r[f'n_reached_{key}']} of {r['n_seeds']} seeds"
