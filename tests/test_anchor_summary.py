"""Tests of recos_utils.chapters.ch3_anchor_summary (Chapter 3's plain-dict summaries), against values
computed by hand."""
from __future__ import annotations

import numpy as np
import pytest

from recos_utils.chapters import ch3_anchor_summary as summ


def test_top_patch_cos_is_mean_of_centred_cosines():
    a = np.array([[1.0, 0.0, 0.0, -1.0], [0.0, 2.0, 0.0, 0.0]])
    # anchor 0 (mean 0): a copy (cos 1) and its negative (cos -1); anchor 1 centred is
    # (-.5, 1.5, -.5, -.5): its own copy plus a constant (cos 1) and itself again (cos 1)
    p = np.array([[[2.0, 0.0, 0.0, -2.0], [-1.0, 0.0, 0.0, 1.0]],
                  [[5.0, 7.0, 5.0, 5.0], [0.0, 2.0, 0.0, 0.0]]])
    assert summ.top_patch_cos(p, a) == pytest.approx((1 - 1 + 1 + 1) / 4)
    assert summ.top_patch_cos(p[:1, :1], a[:1]) == pytest.approx(1.0)


def test_match_summary_of_exact_and_negated_anchors():
    c = np.eye(6, 25)                                # six orthonormal "centroids"
    m = summ.match_summary([c, c], [-c], c, n_random=50, seed=0)
    assert m["mean_cos_learned"] == pytest.approx(1.0) and m["mean_cos_learned_std"] == 0
    # -c_i against c_j: -1 on the diagonal, 0 elsewhere; the best one-to-one match avoids
    # the diagonal (signed: 0), |cos| takes it (1)
    assert m["mean_cos_untrained"] == pytest.approx(0.0)
    assert m["mean_cos_untrained_abs"] == pytest.approx(1.0)
    assert m["frac_random_ge_learned"] == 0.0
    assert m["mean_cos_random"] < m["mean_cos_random_q95"] < 1.0
    assert m["mean_cos_random_abs"] > m["mean_cos_random"]
    assert m["learned"]["n"] == 2 and m["untrained"]["n"] == 1 and m["n_random"] == 50


def test_match_comparison_by_the_one_rule():
    # learned 0.80 +- 0.02 over 4 seeds (SE 0.01); random 0.50 +- 0.10 over 100 sets (SE 0.01):
    # difference 0.30 against 2 * sqrt(0.01^2 + 0.01^2) = 0.028 -> clearly greater
    m = {"mean_cos_learned": 0.8, "learned": {"mean": 0.8, "std": 0.02, "n": 4},
         "untrained": {"mean": 0.79, "std": 0.02, "n": 4},       # 0.01 < 2 * 0.0141: level
         "mean_cos_random": 0.5, "mean_cos_random_std": 0.1, "n_random": 100}
    c = summ.match_comparison(m)
    assert c["vs_random"] == "clearly greater" and c["vs_untrained"] == "not distinguishable"
    assert c["learned_deg"] == pytest.approx(np.degrees(np.arccos(0.8)))
    m["untrained"] = {"mean": 0.9, "std": 0.0, "n": 4}           # 0.1 > 2 * 0.01: less
    assert summ.match_comparison(m)["vs_untrained"] == "clearly less"


def test_match_gap():
    by_k = {6: {"mean_cos_learned": 0.6, "mean_cos_random": 0.3},
            48: {"mean_cos_learned": 0.6, "mean_cos_random": 0.45}}
    assert summ.match_gap(by_k, 6) == pytest.approx(0.3)
    assert summ.match_gap(by_k, 48) == pytest.approx(0.15)


def test_dc_share():
    # (1, 1, 1, 1): all DC (1); (1, -1, 0, 0): none (0); (2, 0, 0, 0): 4 * 0.25 / 4 = 0.25
    sets = [np.array([[1.0, 1, 1, 1], [1, -1, 0, 0]]), np.array([[2.0, 0, 0, 0]])]
    assert summ.dc_share(sets) == pytest.approx((0.5 + 0.25) / 2)


def test_geometry_layer_and_spread():
    g = summ.geometry_layer([80.0, 100.0], [90.0, 90.0], [85.0, 95.0], n_anchors=2, dim=3)
    assert g["n_anchors"] == 2 and g["dim"] == 3
    assert g["learned_mean_deg"] == 90 and g["learned_std_deg"] == pytest.approx(10.0)
    assert g["learned_min_deg"] == 80 and g["untrained_std_deg"] == 0
    assert g["random_std_deg"] == pytest.approx(5.0)
    s = summ.spread_ratios({"a": g, "b": {**g, "learned_std_deg": 6.0}})
    assert s["ratios"] == pytest.approx({"a": 2.0, "b": 1.2})
    assert s["widest"] == "a" and s["widest_ratio"] == pytest.approx(2.0)


def test_sparsity_summary():
    tr = [{"c1": 0.5, "c2": 0.3, "f1": 0.8}, {"c1": 0.7, "c2": 0.3, "f1": 0.8}]
    un = [{"c1": 0.5, "c2": 0.5, "f1": 0.79}, {"c1": 0.5, "c2": 0.5, "f1": 0.81}]
    s = summ.sparsity_summary(tr, un)
    assert s["mean"] == pytest.approx({"c1": 0.6, "c2": 0.3, "f1": 0.8})
    assert s["std"]["c1"] == pytest.approx(np.std([0.5, 0.7], ddof=1)) and s["std"]["c2"] == 0
    assert s["untrained"] == pytest.approx({"c1": 0.5, "c2": 0.5, "f1": 0.8})
    assert (s["lo"], s["hi"]) == ("c2", "f1")
    # c1: 0.6 +- 0.141 (SE 0.1) vs 0.5 +- 0: 0.1 < 2 * 0.1, level; c2: 0.3 vs 0.5, both
    # exact: clearly less; f1: 0.8 vs 0.8: level
    assert s["compare"] == {"c1": "not distinguishable", "c2": "clearly less",
                            "f1": "not distinguishable"}
    assert s["stats"]["c1"]["values"] == [0.5, 0.7] and s["stats_untrained"]["f1"]["n"] == 2


def test_angle_band_and_formation_summary():
    # two runs of one layer with 2 anchors each; 4 snapshots at steps 0, 1, 10, 100
    steps = [0, 1, 10, 100]
    r1 = {"angles_to_final": {"L": np.array([[80.0, 60], [70, 50], [30, 20], [0, 0]])}}
    r2 = {"angles_to_final": {"L": np.array([[100.0, 40], [90, 30], [40, 10], [0, 0]])}}
    band = summ.angle_band(np.array([[1.0, 2, 3, 4, 5]]))
    assert band["median"][0] == 3 and band["q10"][0] == pytest.approx(1.4)
    f = summ.formation_summary(steps, [r1, r2], ["L"])
    L = f["layers"]["L"]
    # medians over the 4 anchors: 70, 60, 25, 0; half of 70 first reached at step 10
    assert L["median_angle_deg"] == [70, 60, 25, 0] and L["half_way_step"] == 10
    assert L["initial_angle_deg"] == pytest.approx(70.0)
    assert L["half_way_share"] == pytest.approx(0.1) and f["latest_half_way_share"] == 0.1
    late = summ.formation_summary([0, 1, 10, 30], [r1, r2], ["L"])
    assert late["latest_half_way_share"] == pytest.approx(1 / 3)


def _run(accs, acc, turn):
    return {"history": {"eval_step": [5, 10, 15, 20], "eval": {"test": accs}},
            "test_acc": acc, "angles_to_final": {"conv1": np.array([[turn, turn + 2.0]])}}


def test_arm_summary_steps_and_race():
    runs = [_run([0.5, 0.9, 0.97, 0.98], 0.98, 40.0), _run([0.6, 0.95, 0.96, 0.97], 0.99, 50.0)]
    early = summ.early_step(runs[0]["history"], index=1)
    assert early == 10 and summ.early_step(runs[0]["history"], index=9) == 20
    r = summ.arm_summary(runs, early, {"97": 0.97, "95": 0.95})
    assert r["final_acc"] == pytest.approx(0.985) and r["n_seeds"] == 2
    assert r["early_acc"] == pytest.approx(0.925) and r["early_step"] == 10
    assert r["conv1_angle_change_deg"] == pytest.approx(46.0)
    assert r["steps_to_97_per_seed"] == [15, 20] and r["steps_to_97"] == pytest.approx(17.5)
    assert r["steps_to_97_std"] == pytest.approx(np.std([15, 20], ddof=1))
    assert r["steps_to_95_per_seed"] == [15, 10] and r["n_reached_95"] == 2
    r99 = summ.arm_summary(runs, early, {"99": 0.99})
    assert r99["steps_to_99"] is None and r99["n_reached_99"] == 0
    assert summ.steps_cell(r99["steps_to_99_per_seed"]) == "—, —"
    assert summ.steps_cell([1500, 20]) == "1,500, 20"
    assert r["stats"]["final_acc"]["values"] == [0.98, 0.99]
    assert r["stats"]["conv1_angle_change_deg"]["mean"] == pytest.approx(46.0)
    part = summ.steps_summary([15, None])
    assert part == {"mean": None, "std": None, "per_seed": [15, None], "n_reached": 1}
    assert summ.steps_cell(part["per_seed"]) == "15, —"
    assert summ.seed_race([10, None, 30, None], [20, 5, 30, None]) == {"n_sooner": 1,
                                                                       "n_later": 1}
    assert summ.seed_race([10, 40], [None, 30]) == {"n_sooner": 1, "n_later": 1}
