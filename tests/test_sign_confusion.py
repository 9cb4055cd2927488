"""Tests of recos_utils.chapters.ch2_sign_confusion (Chapter 2): the reversal identity, paired anchors,
the toy cascade, and the chapter's results file."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from recos_utils.core.data import reverse_grey

from recos_utils.chapters import ch2_ablation as ablation
from recos_utils.chapters import ch2_sign_confusion as sc
from recos_utils.core import readings
from recos_utils.core.models import LeNet5
from recos_utils.core.results import mean_std
from recos_utils.core.train import Recipe, TrainConfig, evaluate, fit, to_input
from recos_utils.core.trainer import train_all

from conftest import needs_mnist


def _images(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g)


def _lenet(seed=0, **kw):
    torch.manual_seed(seed)
    return LeNet5(**kw).eval()


# ----------------------------------------------------------------------- toy cascade

def test_toy_example_linear_confuses_relu_separates():
    toy = sc.toy_example()
    lin, rel = toy["linear"], toy["relu"]
    # the two inputs are 90 degrees apart yet the linear cascade gives the same output
    assert torch.dot(toy["inputs"][0], toy["inputs"][1]).abs() < 1e-12
    assert torch.allclose(lin["z"][0], lin["z"][1])
    assert (rel["z"][0] - rel["z"][1]).abs() > 0.5
    # "positive response x negative weight" vs "negative response x positive weight"
    b = toy["weights"]
    assert lin["y"][0, 1] > 0 and b[1] < 0 and lin["y"][1, 0] < 0 and b[0] > 0
    # the cascade is b^T R(A x)
    A = toy["anchors"]
    assert torch.allclose(rel["z"], torch.relu(toy["inputs"] @ A.T) @ b)


def test_toy_sweep_linear_is_antisymmetric_and_sinusoidal():
    toy = sc.toy_example()
    s = sc.toy_sweep(toy["anchors"], toy["weights"], n=361)   # 1-degree steps
    lin = s["linear"]
    # z(theta + 180) = -z(theta) for the linear cascade, not for the rectified one
    assert torch.allclose(lin[:180], -lin[180:360], atol=1e-12)
    assert not torch.allclose(s["relu"][:180], -s["relu"][180:360], atol=1e-3)
    # a single sinusoid of amplitude ||A^T b||
    amp = (toy["anchors"].T @ toy["weights"]).norm()
    assert lin.abs().max() == pytest.approx(float(amp), rel=1e-4)
    # the rectified cascade is silent wherever both correlations are negative
    th = torch.deg2rad(s["deg"])
    x = torch.stack([torch.cos(th), torch.sin(th)], 1)
    both_neg = ((x @ toy["anchors"].T) < 0).all(1)
    assert both_neg.any() and (s["relu"][both_neg] == 0).all()


# ----------------------------------------------------------------------- grey images

def test_mean_removed_correlation_matches_pearson_and_negative_is_antipodal():
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(40, 30, generator=g), torch.rand(40, 30, generator=g)
    r = np.corrcoef(x.flatten().numpy(), y.flatten().numpy())[0, 1]
    assert sc.mean_removed_correlation(x, y) == pytest.approx(r, abs=1e-6)
    assert sc.mean_removed_correlation(x, reverse_grey(x)) == pytest.approx(-1.0, abs=1e-12)
    assert sc.mean_removed_correlation(x, 3 * x + 2) == pytest.approx(1.0, abs=1e-12)


def test_grey_photo_is_a_grey_image_in_unit_range():
    cat = sc.grey_photo("chelsea")
    assert cat.dim() == 2 and cat.dtype == torch.float64
    assert 0.0 <= float(cat.min()) < float(cat.max()) <= 1.0
    assert sc.mean_removed_correlation(cat, reverse_grey(cat)) == pytest.approx(-1.0, abs=1e-12)


# ----------------------------------------------------------------------- the identity

def test_reversal_identity_on_a_conv_layer_double_precision():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 5).double()
    x = torch.rand(4, 3, 12, 12, dtype=torch.float64) * 255
    w, b = sc.reversal_identity(conv.weight.detach(), conv.bias.detach(), white=255.0)
    assert torch.equal(w, -conv.weight.detach())
    y = conv(x)
    y_r = F.conv2d(255.0 - x, w, b)
    assert (y - y_r).abs().max() < 1e-9 * y.abs().max()


def test_negated_network_on_reversed_input_is_the_original_network():
    m = _lenet(0)
    x = _images()
    neg = sc.negate_first_layer(m)
    assert neg.pad_value == 1.0 and m.pad_value == 0.0          # the original is untouched
    with torch.no_grad():
        f, g = m.features(x), neg.features(1 - x)
        assert (f["conv1"] - g["conv1"]).abs().max() < 1e-5
        assert (m(x) - neg(1 - x)).abs().max() < 1e-5
        # and the negated network on the original is the original on the reversal
        assert (neg(x) - m(1 - x)).abs().max() < 1e-5


def test_identity_needs_the_reversed_padding():
    """Without flipping the padding value the identity breaks at the border."""
    m = _lenet(0)
    x = _images()
    neg = sc.negate_first_layer(m)
    neg.pad_value = 0.0
    with torch.no_grad():
        d = (m.features(x)["conv1"] - neg.features(1 - x)["conv1"]).abs()
    assert d[..., 2:-2, 2:-2].max() < 1e-5       # interior: fine
    assert d.max() > 1e-2                        # border: broken


@needs_mnist
def test_identity_on_a_trained_lenet_to_float_precision():
    from recos_utils.core.data import load_dataset

    test = load_dataset("mnist", "test")
    torch.manual_seed(0)
    m = LeNet5()
    fit(m, test.images[:1000], test.labels[:1000], recipe=Recipe(epochs=1), seed=0)
    x = to_input(test.images[1000:1256])
    err = sc.identity_errors(m, x)
    assert err["conv1_max_abs_err"] < 1e-5 * max(1.0, err["conv1_max_abs"])
    assert err["logits_max_abs_err"] < 1e-4 * max(1.0, err["logits_max_abs"])
    assert err["same_prediction"] == 1.0
    # accuracies swap exactly between the network and its negated copy
    imgs, labels = test.images[1000:2000], test.labels[1000:2000]
    o, r = readings.accuracy_pair(m, imgs, labels)
    no, nr = readings.accuracy_pair(sc.negate_first_layer(m), imgs, labels)
    assert (no, nr) == (r, o)
    assert o == pytest.approx(evaluate(m, imgs, labels))


def test_with_padding_changes_only_the_border_value():
    m = _lenet(0)
    w = sc.with_padding(m, 1.0)
    x = _images(2)
    with torch.no_grad():
        pad1 = F.pad(x, (2, 2, 2, 2), value=1.0)
        assert torch.allclose(w.features(x)["conv1"], m.conv1(pad1), atol=1e-6)
    assert m.pad_value == 0.0


# ----------------------------------------------------------------------- paired anchors

def test_paired_conv1_reversal_swaps_the_pairs_exactly_with_grey_padding():
    base = _lenet(0)
    pm = sc.paired_lenet(base.conv1.weight.detach(), base.conv1.bias.detach(), seed=1)
    assert pm.conv1.out_channels == 12 and pm.conv2.in_channels == 12
    assert not any(p.requires_grad for p in pm.conv1.parameters())
    assert torch.equal(pm.conv1.weight[:6], base.conv1.weight)
    assert torch.equal(pm.conv1.weight[6:], -base.conv1.weight)
    x = _images()
    err = sc.pair_swap_error(pm, x)
    assert err["max_abs_err"] < 1e-5 * max(1.0, err["max_abs"])
    pm.pad_value = 0.0                            # black padding: the swap breaks at the border
    assert sc.pair_swap_error(pm, x)["max_abs_err"] > 1e-2


def test_pair_sum_is_abs_for_anchors_centred_on_mid_grey():
    torch.manual_seed(0)
    w = torch.randn(4, 1, 5, 5)
    b = -0.5 * w.flatten(1).sum(1)             # b = -sum(a)/2: anchor centred on grey 0.5
    conv = sc.paired_conv1(w, b)
    x = torch.rand(3, 1, 9, 9)
    y = torch.relu(conv(x))
    t = F.conv2d(x - 0.5, w)
    assert torch.allclose(y[:, :4] + y[:, 4:], t.abs(), atol=1e-5)


def test_pair_symmetry_extremes():
    m = sc.paired_lenet(torch.randn(6, 1, 5, 5), torch.randn(6))
    w = torch.randn(16, 6, 5, 5)
    with torch.no_grad():
        m.conv2.weight.copy_(torch.cat([w, w], 1))
        assert sc.pair_symmetry(m) == pytest.approx(1.0, abs=1e-6)
        m.conv2.weight.copy_(torch.cat([w, -w], 1))
        assert sc.pair_symmetry(m) == pytest.approx(-1.0, abs=1e-6)


def test_twin_score():
    a = torch.randn(3, 1, 5, 5)
    assert sc.twin_score(torch.cat([a, -2 * a])) == pytest.approx(1.0, abs=1e-9)
    e = torch.eye(6).reshape(6, 1, 2, 3)        # orthogonal anchors: no twins
    assert sc.twin_score(e) == pytest.approx(0.0, abs=1e-12)


@needs_mnist
def test_train_paired_keeps_conv1_fixed_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("RECOS_CACHE_DIR", str(tmp_path))
    cfg = TrainConfig(n_train=256, recipe=Recipe(epochs=1))
    base = _lenet(0)
    specs = sc.paired_specs([(cfg, base)], "both")
    assert specs[0].config["base"]["seed"] == cfg.seed and specs[0].config["train_on"] == "both"
    (m, hist, _), = train_all(specs)
    assert torch.equal(m.conv1.weight[:6], base.conv1.weight)
    assert hist["steps"] == math.ceil(512 / cfg.recipe.batch_size)          # 256 originals + reversals
    assert len(list(tmp_path.glob("*.pt"))) == 1
    (m2, _, _), = train_all(specs)                                  # loaded from the cache
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))


# ----------------------------------------------------------------------- summaries, ablation

def test_accuracy_pair_on_a_constant_classifier():
    class Const(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return F.one_hot(torch.full((len(x),), 3), 10).float() + 0 * self.w

    labels = torch.tensor([3, 1, 3, 3, 0, 3, 2, 3])
    imgs = torch.randint(0, 256, (8, 28, 28), dtype=torch.uint8)
    assert readings.accuracy_pair(Const(), imgs, labels) == (0.625, 0.625)


def test_summarize_and_arm():
    pairs = [(0.9, 0.1), (0.92, 0.2), (0.94, 0.3)]
    s = sc.summarize(pairs)
    assert s["acc_original"] == pytest.approx(0.92) and s["acc_reversed"] == pytest.approx(0.2)
    assert s["std_original"] == pytest.approx(0.02)          # sample std of 0.90, 0.92, 0.94
    assert s["std_reversed"] == pytest.approx(0.1) and s["n"] == 3
    assert sc.arm(s) == {"mean": s["acc_original"], "std": s["std_original"], "n": 3}
    assert sc.arm(s, "reversed") == {"mean": s["acc_reversed"], "std": s["std_reversed"], "n": 3}


def test_arms_compared_in_the_registrys_words_hand_computed():
    """``arm`` feeds ``claims.compare_arms``: two standard errors of the difference.
    0.60 vs 0.50 with std 0.03 over 2 seeds each: se = sqrt(0.03^2/2 * 2) = 0.03, and
    0.10 > 2 * 0.03, clearly greater; with std 0.06, se = 0.06 and 0.10 < 0.12, level."""
    from recos_utils.core import claims

    def summary(acc, std, n=2):
        return {"acc_original": acc, "std_original": std, "acc_reversed": 1 - acc,
                "std_reversed": std, "n": n}

    hi, lo = summary(0.60, 0.03), summary(0.50, 0.03)
    assert claims.compare_arms(sc.arm(hi), sc.arm(lo)) == claims.GREATER == "clearly greater"
    assert claims.compare_arms(sc.arm(lo), sc.arm(hi)) == claims.LESS
    # on the reversed set the order flips (0.40 against 0.50)
    assert claims.compare_arms(sc.arm(hi, "reversed"), sc.arm(lo, "reversed")) == claims.LESS
    noisy_hi, noisy_lo = summary(0.60, 0.06), summary(0.50, 0.06)
    assert claims.compare_arms(sc.arm(noisy_hi), sc.arm(noisy_lo)) == claims.LEVEL
    # one seed each: any difference counts
    assert claims.compare_arms(sc.arm(summary(0.501, 0.0, 1)), sc.arm(summary(0.5, 0.0, 1))) \
        == claims.GREATER


def test_ablation_configs_cover_the_grid():
    acts = ["identity", "relu", "trelu"]
    cfgs = ablation.ablation_configs(acts, [0.1, 0.5], ["max", "avg"], [0, 1], dataset="mnist",
                               n_train=100, recipe=Recipe(epochs=1, batch_size=32))
    assert len(cfgs) == (2 + 2) * 2 * 2
    names = {n for _, n, _ in cfgs}
    assert names == {"identity", "relu", "trelu_0.1", "trelu_0.5"}
    for pool, name, c in cfgs:
        assert c.pool == pool and c.recipe.batch_size == 32 and c.n_train == 100
        if name.startswith("trelu"):
            assert c.activation == "trelu" and f"{c.trelu_z:.1f}" == name.split("_")[1]
    assert len({json.dumps(dataclasses.asdict(c), sort_keys=True) for _, _, c in cfgs}) == len(cfgs)


def _tab(**accs):
    return {k: {"acc_original": o, "acc_reversed": r, "std_original": 0.001,
                "std_reversed": 0.001, "n": 3, "train_acc_final": o} for k, (o, r) in accs.items()}


def test_check_predictions_follow_the_numbers():
    z = [0.3, 0.5]
    good_max = _tab(relu=(0.97, 0.05), leaky_relu=(0.97, 0.05), identity=(0.95, 0.05),
                    tanh=(0.96, 0.05), sigmoid=(0.90, 0.05), abs=(0.96, 0.3),
                    **{"trelu_0.3": (0.975, 0.05), "trelu_0.5": (0.98, 0.04)})
    good_avg = _tab(relu=(0.96, 0.05), identity=(0.90, 0.02))
    rows = ablation.check_predictions(good_max, good_avg, z)
    assert all(r["held"] for r in rows)
    bad_max = _tab(relu=(0.97, 0.6), leaky_relu=(0.97, 0.05), identity=(0.80, 0.05),
                   tanh=(0.99, 0.05), sigmoid=(0.99, 0.05), abs=(0.99, 0.01),
                   **{"trelu_0.3": (0.90, 0.05), "trelu_0.5": (0.90, 0.04)})
    bad_avg = _tab(relu=(0.96, 0.05), identity=(0.99, 0.5))
    rows = ablation.check_predictions(bad_max, bad_avg, z)
    assert not any(r["held"] for r in rows)


def test_check_predictions_leave_untrained_networks_out():
    z = [0.5]
    tab = _tab(relu=(0.97, 0.05), leaky_relu=(0.97, 0.05), identity=(0.95, 0.05),
               tanh=(0.96, 0.05), sigmoid=(0.90, 0.05), abs=(0.96, 0.3),
               **{"trelu_0.5": (0.1135, 0.1135)})
    rows = ablation.check_predictions(tab, _tab(relu=(0.96, 0.05), identity=(0.90, 0.02)), z)
    assert rows[0]["held"] is True and "97.0%" in rows[0]["observed"]   # dead TReLU left out
    # "trained" is judged on the training accuracy (claims.trained), not on the test set
    tab["trelu_0.5"]["train_acc_final"] = 0.9
    rows = ablation.check_predictions(tab, _tab(relu=(0.96, 0.05), identity=(0.90, 0.02)), z)
    assert "11.3%" in rows[0]["observed"]
    # the paper's own claims are judged once, in recos_utils.core.claims, not here
    assert not any("TReLU sweep" in r["activation"] or "below ReLU on the originals (sign"
                   in r["prediction"] for r in rows)


def _ablation_tables():
    """A hand-made ablation: TReLU 0.3 trained and beats ReLU, TReLU 0.5 is better on the
    test set but did not train (training accuracy 0.2), so it is left out of the best z."""
    tmax = _tab(relu=(0.97, 0.05), leaky_relu=(0.97, 0.06), identity=(0.95, 0.07),
                tanh=(0.96, 0.05), sigmoid=(0.11, 0.12), abs=(0.96, 0.30),
                **{"trelu_0.3": (0.975, 0.04), "trelu_0.5": (0.99, 0.08)})
    tmax["trelu_0.5"]["train_acc_final"] = 0.2
    tmax["sigmoid"]["train_acc_final"] = 0.1
    for i, t in enumerate(tmax.values()):
        t["dead_units"] = 0.01 * i
    tavg = _tab(relu=(0.96, 0.05), identity=(0.90, 0.02))
    return {"max": tmax, "avg": tavg}


def test_ablation_numbers_hand_computed():
    nums = ablation.ablation_numbers(_ablation_tables(), [0.3, 0.5])
    assert nums == {"lin_acc": 0.90, "reluavg_acc": 0.96, "idmax_acc": 0.95,
                    "relumax_acc": 0.97, "sigmoid_acc": 0.11, "sigmoid_train_acc": 0.1,
                    "best_rev": 0.30,                      # abs, max pooling
                    "trelu_best_z": 0.3, "trelu_best_acc": 0.975,   # 0.5 did not train
                    "trelu_n_trained": 1, "trelu_n": 2, "relu_dead_units": 0.0}
    # no sentence is built in code: every value is a number
    assert all(isinstance(v, (int, float)) for v in nums.values())
    # when no threshold trained, ReLU (z = 0) is the best
    tabs = _ablation_tables()
    tabs["max"]["trelu_0.3"]["train_acc_final"] = 0.3
    nums = ablation.ablation_numbers(tabs, [0.3, 0.5])
    assert (nums["trelu_best_z"], nums["trelu_best_acc"], nums["trelu_n_trained"]) == (0.0, 0.97, 0)


def test_ablation_comparisons_use_the_registrys_words():
    from recos_utils.core import claims

    # std 0.001 over 3 seeds: se of a difference = 0.001 * sqrt(2/3) = 0.00082
    tabs = _ablation_tables()           # identity max 0.95 vs ReLU 0.97, vs linear 0.90
    assert ablation.ablation_comparisons(tabs) == {"idmax_vs_relu": claims.LESS,
                                                   "idmax_vs_linear": claims.GREATER}
    tabs["max"]["identity"]["acc_original"] = 0.9705      # 0.0005 above ReLU: < 2 se
    assert ablation.ablation_comparisons(tabs)["idmax_vs_relu"] == claims.LEVEL
    tabs["max"]["identity"]["acc_original"] = 0.975       # 0.005 above ReLU: > 2 se
    assert ablation.ablation_comparisons(tabs)["idmax_vs_relu"] == claims.GREATER


def test_accuracy_pairs_parallel_matches_sequential(monkeypatch):
    monkeypatch.setenv("RECOS_WORKERS", "2")
    models = [_lenet(s) for s in range(3)]
    imgs = torch.randint(0, 256, (300, 28, 28), dtype=torch.uint8)
    labels = torch.randint(0, 10, (300,))
    par = sc.accuracy_pairs(models, imgs, labels)
    seq = [readings.accuracy_pair(m, imgs, labels) for m in models]
    assert par == seq


def test_active_fraction_relu_vs_threshold():
    x = _images(8)
    relu = ablation.active_fraction(_lenet(0), x)
    dead = ablation.active_fraction(_lenet(0, activation="trelu", trelu_z=0.5), x)
    assert all(0.0 < f < 1.0 for f in relu)
    assert all(d <= r for d, r in zip(dead, relu)) and dead[-1] < relu[-1]


def test_html_table_escapes():
    t = __import__("recos_utils.core.plots", fromlist=["html_table"]).html_table(["a", "b<"], [[1, "x & y"]])
    assert "<th>b&lt;</th>" in t and "<td>x &amp; y</td>" in t


# ----------------------------------------------------------------------- the chapter

def test_chapter_results_file(quick_book):
    res = json.loads((quick_book / "results" / "02_sign_confusion.json").read_text())
    assert res["baseline"]["n"] == len(res["seeds"]) >= 1
    # the ablation's ReLU/max-pool arm is the baseline's config: the same stored networks,
    # so the same accuracies to the last digit (an independent path through the store)
    for k in ("acc_original", "acc_reversed", "std_original", "std_reversed"):
        assert res["ablation"]["relu"][k] == res["baseline"][k], k
    for key in ("original_only", "both"):
        assert set(res["paired"][key]) >= {"acc_original", "acc_reversed"}
    # negating the anchors swaps the two test sets exactly
    assert res["negated"]["acc_original"] == res["baseline"]["acc_reversed"]
    assert res["negated"]["acc_reversed"] == res["baseline"]["acc_original"]
    assert res["identity"]["logits_max_abs_err"] < 1e-4 * max(1.0, res["identity"]["logits_max_abs"])
    assert res["paired"]["swap_max_abs_err"] < 1e-4
    assert res["photo"]["mean_removed_correlation"] == pytest.approx(-1.0, abs=1e-9)
    for tab in ("ablation", "ablation_avgpool"):
        assert {"identity", "relu", "leaky_relu", "tanh", "sigmoid", "abs"} <= set(res[tab])
        # the TReLU sweep (z = 0, 0.1, ..., 0.9) is run with max pooling only
        assert any(k.startswith("trelu_") for k in res[tab]) == (tab == "ablation")
    html = (quick_book / "html" / "book" / "02_sign_confusion.html").read_text()
    # glued numbers are rendered into the prose
    assert 'after mean removal is <span class="pasted-text">-1.0000</span>' in html
