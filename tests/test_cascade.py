"""Tests of Chapter 4's modules (cascade, cascade_algebra, bg_accuracy, clutter) and of the
chapter's results file."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from recos_utils.chapters import ch4_bg_accuracy as bg_accuracy

from recos_utils.chapters import ch4_cascade as cascade

from recos_utils.chapters import ch4_cascade_algebra as cascade_algebra

from recos_utils.core import claims

from recos_utils.chapters import ch4_clutter as clutter
from recos_utils.core.models import LeNet5
from recos_utils.core.train import Recipe

from conftest import needs_mnist


def linear_params(n_in, n_out):
    return n_out * (n_in + 1)


# Parameter counts from the layer sizes (weights + biases), independent of the code.
LENET5 = (linear_params(25, 6) + linear_params(6 * 25, 16) + linear_params(400, 120)
          + linear_params(120, 84) + linear_params(84, 10))
ONE_LAYER = (linear_params(13 * 13, 16) + linear_params(400, 120) + linear_params(120, 84)
             + linear_params(84, 10))


def test_parameter_counts_match_the_layer_sizes():
    two = cascade.build_model(cascade.NetConfig(net="two_layer"))
    one = cascade.build_model(cascade.NetConfig(net="one_layer"))
    assert cascade.count_params(two) == LENET5
    assert cascade.count_params(one) == ONE_LAYER
    assert cascade.conv_params(two) == linear_params(25, 6) + linear_params(150, 16)
    assert cascade.conv_params(one) == linear_params(169, 16)
    # the known values: LeNet-5 with these layer sizes has 61,706 parameters; the one-layer
    # counterpart 61,854, a budget within 1 % of it (the real networks, not the formula)
    assert (cascade.count_params(two), cascade.count_params(one)) == (61706, 61854)
    counts = cascade.network_counts({"two": two, "one": one})
    assert abs(counts["one"]["params"] - counts["two"]["params"]) / counts["two"]["params"] < 0.01
    assert (counts["two"]["conv_layers"], counts["one"]["conv_layers"]) == (2, 1)


def _impulse_support(model, layer):
    """Input pixels that change the centre unit of ``layer``: one-pixel impulses sent
    forward, one at a time, through the real layers (no autograd). Conv weights are set to
    one and the input to a constant, so every unit the impulse reaches grows and becomes
    the maximum of its pooling window: no rectifier or max pooling hides a pixel."""
    import copy

    net = copy.deepcopy(model.net).double().eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0)
                m.bias.zero_()
        x0 = torch.ones(1, 1, 28, 28, dtype=torch.float64)
        y0 = net.features(x0)[layer]
        h, w = y0.shape[-2:]
        xs = x0.repeat(28 * 28, 1, 1, 1)
        idx = torch.arange(28 * 28)
        xs.view(28 * 28, -1)[idx, idx] += 1.0
        ys = net.features(xs)[layer][:, :, h // 2, w // 2]       # every channel
    moved = (ys - y0[:, :, h // 2, w // 2]).abs().amax(1) > 1e-9
    return moved.reshape(28, 28)


@pytest.mark.parametrize("net,layer", [("two_layer", "relu1"), ("two_layer", "relu2"),
                                       ("one_layer", "relu1")])
def test_receptive_field_matches_forward_impulses(net, layer):
    model = cascade.build_model(cascade.NetConfig(net=net))
    support = _impulse_support(model, layer)
    rows, cols = support.any(1).nonzero(), support.any(0).nonzero()
    side = int(rows.max() - rows.min() + 1)
    assert side == int(cols.max() - cols.min() + 1)
    assert int(support.sum()) == side * side               # a full square, no holes
    assert cascade.receptive_field(model, layer) == side


def test_receptive_fields_follow_the_layer_geometry():
    two = cascade.build_model(cascade.NetConfig(net="two_layer"))
    one = cascade.build_model(cascade.NetConfig(net="one_layer"))
    # r_out = r_in + (k - 1) * jump: conv 5 (jump 1) -> pool 2 (jump becomes 2) -> conv 5
    assert cascade.receptive_field(two, "relu1") == 5
    assert cascade.receptive_field(two) == 5 + (2 - 1) * 1 + (5 - 1) * 2
    assert cascade.receptive_field(one) == 13


def test_one_layer_net_shapes():
    net = cascade.OneLayerNet()
    f = net.features(torch.rand(3, 1, 28, 28))
    assert f["relu1"].shape == (3, 16, 20, 20)
    assert f["pool1"].shape == (3, 16, 5, 5)     # what LeNet-5's S4 hands to C5
    assert f["logits"].shape == (3, 10)
    x = torch.zeros(2, 1, 28, 28)
    assert torch.equal(net(x), net.features(x)["logits"])


def test_normalisation_invariances():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 28, 28)
    mean_net = cascade.Normalised(LeNet5(), "mean")
    std_net = cascade.Normalised(LeNet5(), "standardise")
    with torch.no_grad():
        # mean removal: adding a constant brightness changes nothing
        assert torch.allclose(mean_net(x), mean_net(x + 0.3), atol=1e-5)
        # standardisation: any positive contrast and brightness change changes nothing
        assert torch.allclose(std_net(x), std_net(2.5 * x + 0.1), atol=1e-4)
        z = std_net.normalise(x)
        assert torch.allclose(z.mean(dim=(1, 2, 3)), torch.zeros(4), atol=1e-5)
        assert torch.allclose(z.std(dim=(1, 2, 3)), torch.ones(4), atol=1e-5)
        plain = cascade.Normalised(LeNet5(), "none")
        assert torch.equal(plain.normalise(x), x)
    with pytest.raises(ValueError, match="norm"):
        cascade.Normalised(LeNet5(), "whiten")


def test_net_config_is_validated():
    with pytest.raises(ValueError, match="net"):
        cascade.NetConfig(net="three_layer")
    with pytest.raises(ValueError, match="train_set"):
        cascade.NetConfig(train_set="noisy")


def test_linear_cascade_identity_holds_numerically():
    torch.manual_seed(1)
    first, second = nn.Linear(400, 120), nn.Linear(120, 84)
    x = torch.randn(64, 400)
    out = cascade_algebra.linear_cascade_check(first, second, x)
    assert out["shape_A"] == [400, 120] and out["shape_B"] == [120, 84]
    assert out["shape_C"] == [400, 84]
    assert out["z_max_abs_err"] <= 1e-12 * max(out["z_scale"], 1.0)
    assert out["c_max_abs_err"] <= 1e-13
    # and z = B^T A^T x is what the bias-free layers compute
    with torch.no_grad():
        z = (x.double() @ first.weight.double().T) @ second.weight.double().T
    assert out["z_scale"] == pytest.approx(z.abs().max().item(), rel=1e-12)


def test_rectifier_gap_vanishes_only_when_nothing_is_rectified():
    torch.manual_seed(2)
    first, second = nn.Linear(10, 6), nn.Linear(6, 3)
    x = torch.randn(32, 10)
    assert cascade_algebra.rectifier_gap(first, second, x) > 0.05
    with torch.no_grad():
        first.bias.fill_(100.0)          # every pre-activation positive: ReLU is the identity
    assert cascade_algebra.rectifier_gap(first, second, x) < 1e-6


def test_position_variance_is_the_variance_of_each_anchor_position_vector():
    torch.manual_seed(3)
    layer = nn.Linear(16 * 25, 120)
    v = cascade_algebra.position_variance(layer, 16, 5)
    w = layer.weight.detach()                     # 120 anchors x 400
    ref = torch.stack([w[:, n].var() for n in range(400)]).reshape(16, 5, 5).mean(0)
    assert v.shape == (5, 5)
    assert torch.allclose(v, ref, rtol=1e-5)


def _centre_block(model, layer, i, j):
    """Input pixels at the centre of unit (i, j)'s receptive field, found by autograd."""
    import copy

    net = copy.deepcopy(model.net).double()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0)
    x = torch.rand(1, 1, 28, 28, dtype=torch.float64, requires_grad=True)
    net.features(x)[layer][0, 0, i, j].backward()
    support = (x.grad[0, 0] != 0).nonzero()
    lo, hi = support.min(0).values, support.max(0).values
    rows = sorted({int((lo[0] + hi[0]) // 2), int((lo[0] + hi[0] + 1) // 2)})
    cols = sorted({int((lo[1] + hi[1]) // 2), int((lo[1] + hi[1] + 1) // 2)})
    return rows, cols


@pytest.mark.parametrize("net,layer,unit", [("two_layer", "relu1", (7, 12)),
                                            ("two_layer", "relu2", (4, 6)),
                                            ("one_layer", "relu1", (9, 3))])
def test_layer_masks_are_aligned_with_receptive_field_centres(net, layer, unit):
    model = cascade.build_model(cascade.NetConfig(net=net))
    rows, cols = _centre_block(model, layer, *unit)
    mask = torch.zeros(1, 1, 28, 28)
    for r in rows:
        for c in cols:
            mask[0, 0, r, c] = 1.0
    m = clutter.layer_masks(model, mask)[layer][0, 0]
    assert m[unit] == pytest.approx(1.0)
    assert m.sum() == pytest.approx(1.0)   # and no other unit has its centre there


def test_energy_share_on_pure_background_and_by_hand():
    torch.manual_seed(4)
    model = cascade.build_model(cascade.NetConfig(net="two_layer"))
    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    empty = torch.zeros(3, 28, 28, dtype=torch.uint8)     # no digit: everything is background
    for layer, v in clutter.energy_share(model, images, empty).items():
        assert v["area"] == 1.0 and v["energy"] == pytest.approx(1.0)
    digits = torch.zeros(3, 28, 28, dtype=torch.uint8)
    digits[:, 6:22, 12:16] = 255
    share = clutter.energy_share(model, images, digits, dilate=0)
    with torch.no_grad():
        f = model.features(images.float().div(255).unsqueeze(1))
    masks = clutter.layer_masks(model, (digits > 0).float().unsqueeze(1))
    for layer in ("relu1", "relu2"):
        e = f[layer].pow(2).sum(1, keepdim=True)
        bg = masks[layer] < 0.5
        ref = (e * bg).sum().item() / e.sum().item()
        assert share[layer]["energy"] == pytest.approx(ref, rel=1e-5)
        assert share[layer]["area"] == pytest.approx(bg.float().mean().item())
        E, A = share[layer]["energy"], share[layer]["area"]
        assert share[layer]["ratio"] == pytest.approx((E / A) / ((1 - E) / (1 - A)), rel=1e-6)


def test_clutter_change_is_zero_without_clutter_and_matches_by_hand():
    torch.manual_seed(5)
    model = cascade.build_model(cascade.NetConfig(net="one_layer"))
    digits = torch.zeros(4, 28, 28, dtype=torch.uint8)
    digits[:, 8:20, 12:16] = 255
    assert clutter.clutter_change(model, digits, digits) == {"relu1": 0.0}
    noisy = torch.maximum(digits, torch.randint(0, 200, (4, 28, 28), dtype=torch.uint8))
    with torch.no_grad():
        fy = model.features(noisy.float().div(255).unsqueeze(1))["relu1"]
        fx = model.features(digits.float().div(255).unsqueeze(1))["relu1"]
    ref = ((fy - fx) ** 2).sum() / (fx ** 2).sum()
    got = clutter.clutter_change(model, noisy, digits)["relu1"]
    assert got == pytest.approx(ref.item(), rel=1e-5)


class _Constant(nn.Module):
    """Predicts class 0 for every input."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        out = torch.zeros(len(x), 10)
        out[:, 0] = 1.0
        return out + 0 * self.w


def test_accuracy_by_hidden_bins():
    labels = torch.tensor([0, 1, 0, 0, 1, 1])
    hidden = torch.tensor([0.0, 0.0, 0.05, 0.5, 1.0, 0.2])
    images = torch.zeros(6, 28, 28, dtype=torch.uint8)
    bins = bg_accuracy.accuracy_by_hidden(_Constant(), images, labels, hidden,
                                      edges=(0.0, 1e-6, 0.1, 0.3, 1.0))
    assert [b["n"] for b in bins] == [2, 1, 1, 2]
    assert [b["acc"] for b in bins] == [0.5, 1.0, 0.0, 0.5]


def test_gap_summary():
    rows = {"short": {"reference": 0.99, "background": 0.95, "visible": 0.985},
            "long": {"reference": 0.992, "background": 0.97, "visible": 0.99}}
    v = bg_accuracy.gap_summary(rows)
    assert v["best"] == "long"
    assert v["gap_pp"] == pytest.approx(2.2) and v["gap_visible_pp"] == pytest.approx(0.2)
    assert v["gaps_pp"] == pytest.approx({"short": 4.0, "long": 2.2})
    assert set(v) == {"best", "gap_pp", "gap_visible_pp", "gaps_pp"}     # numbers, no verdict
    # the visible gap is taken against the clean-trained accuracy on the same digits
    rows["long"]["reference_visible"] = 0.999
    assert bg_accuracy.gap_summary(rows)["gap_visible_pp"] == pytest.approx(0.9)
    above = bg_accuracy.gap_summary({"x": {"reference": 0.5, "background": 0.6, "visible": 0.6}})
    assert above["gap_pp"] == pytest.approx(-10.0)


def test_accuracy_table_and_one_vs_two():
    acc = {(net, ts, s): {"clean": 0.9 + 0.01 * s + (0.05 if net == "two_layer" else 0.0),
                          "background": 0.8 - (0.1 if ts == "clean" else 0.0) + 0.02 * s}
           for net in cascade.NETS for ts in cascade.TRAIN_SETS for s in (0, 1, 2)}
    table = bg_accuracy.accuracy_table(acc, [0, 1, 2], ["clean", "background"])
    ms = table["two_layer"]["clean"]["clean"]
    assert ms["mean"] == pytest.approx(0.96) and ms["std"] == pytest.approx(0.01) and ms["n"] == 3
    table["two_layer"]["background"]["background_unseen"] = {"mean": 0.7}
    table["one_layer"]["background"]["background_unseen"] = {"mean": 0.75}
    d = bg_accuracy.one_vs_two(table)
    assert d["two_minus_one_background"] == pytest.approx(0.0)
    assert d["two_minus_one_background_unseen"] == pytest.approx(-0.05)
    assert d["clean_trained_drop_on_background"]["two_layer"] == pytest.approx(0.96 - 0.72)
    assert d["clean_trained_drop_on_background"]["one_layer"] == pytest.approx(0.91 - 0.72)


def test_energy_reading_compares_by_the_one_rule():
    def layer(ratio, change, std=0.0):
        return {"ratio": {"mean": ratio}, "clutter_change": {"mean": change, "std": std, "n": 4}}

    # relu2 0.2 +- 0.02 (SE 0.01) against relu1 0.4 +- 0: clearly less; against the one-layer
    # 0.21 +- 0: 0.01 < 2 * 0.01, level; against clean-trained 0.1 +- 0: clearly greater
    bg = {"two_layer": {"relu1": layer(0.5, 0.4), "relu2": layer(0.8, 0.2, 0.02)},
          "one_layer": {"relu1": layer(0.6, 0.21)}}
    cl = {"two_layer": {"relu1": layer(0.5, 0.4), "relu2": layer(0.8, 0.1)}}
    r = clutter.energy_reading(bg, cl)
    assert r["ratio_relu2"] == 0.8 and r["change_one_layer"] == 0.21
    assert r["change_relu2_clean_trained"] == 0.1
    assert r["compare"] == {"relu2_vs_relu1": "clearly less",
                            "relu2_vs_one_layer": "not distinguishable",
                            "relu2_vs_clean_trained": "clearly greater"}


def test_ratio_vs_one():
    # 1.3 +- 0.2 over 4 seeds: SE 0.1, 0.3 > 0.2: greater; 1.1 +- 0.2: level; exact 0.9: less
    assert cascade_algebra.ratio_vs_one({"mean": 1.3, "std": 0.2, "n": 4}) == "clearly greater"
    assert cascade_algebra.ratio_vs_one({"mean": 1.1, "std": 0.2, "n": 4}) == "not distinguishable"
    assert cascade_algebra.ratio_vs_one({"mean": 0.9, "std": 0.0, "n": 1}) == "clearly less"


def test_position_split_marks_the_centre_of_centred_digits():
    model = cascade.build_model(cascade.NetConfig(net="two_layer"))
    digits = torch.zeros(5, 28, 28, dtype=torch.uint8)
    digits[:, 8:20, 8:20] = 255
    split = cascade_algebra.position_split(model, digits, dilate=0)
    assert split.shape == (5, 5)
    assert split[2, 2] and not split[0, 0] and not split[4, 4]
    v = cascade_algebra.variance_split(torch.arange(25.0).reshape(5, 5), split)
    assert v["n_digit"] + v["n_background"] == 25
    assert v["ratio"] == pytest.approx(v["background"] / v["digit"])


@needs_mnist
def test_training_is_deterministic_and_cached():
    cfg = cascade.NetConfig(net="one_layer", train_set="background", n_train=256,
                            recipe=Recipe(epochs=1, batch_size=64), seed=5)
    from recos_utils.core.trainer import train_all

    train = lambda **kw: train_all(cascade.net_specs([cfg]), device="cpu", **kw)[0].model
    a, b = train(use_cache=False), train(use_cache=False)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    fresh = cascade.build_model(cfg)
    assert not torch.equal(fresh.net.conv1.weight, a.net.conv1.weight)   # it did train
    from recos_utils.core import cache

    before = set(cache.cache_dir().glob("*.pt"))
    c = train()                                                         # trains and stores
    added = set(cache.cache_dir().glob("*.pt")) - before
    d = train()                                                         # loads
    assert len(added) == 1 and set(cache.cache_dir().glob("*.pt")) - before == added
    for k, v in a.state_dict().items():
        assert torch.equal(v, c.state_dict()[k]) and torch.equal(v, d.state_dict()[k]), k


def test_chapter_results_file(quick_book):
    res = json.loads((quick_book / "results" / "04_one_vs_two_layers.json").read_text())
    for net in cascade.NETS:
        for ts in cascade.TRAIN_SETS:
            for test in ("clean", "background", "background_unseen"):
                s = res[net][ts][test]
                assert 0.0 <= s["mean"] <= 1.0 and s["std"] >= 0.0 and s["n"] >= 1
        layers = ["relu1", "relu2"] if net == "two_layer" else ["relu1"]
        assert sorted(res["background_energy_share"][net]) == layers
        for layer in layers:
            e = res["background_energy_share"][net][layer]
            assert 0.0 <= e["energy"]["mean"] <= 1.0 and 0.0 < e["area"] < 1.0
    assert res["two_layer"]["params"] == LENET5 and res["one_layer"]["params"] == ONE_LAYER
    assert res["photos"]["train_test_shared_pixels"] == 0
    assert res["algebra"]["z_max_abs_err"] <= 1e-9 * max(res["algebra"]["z_scale"], 1.0)
    assert res["algebra"]["apv_shape_s4_c5"] == [400, 120]
    # the chapter's claims are judged by the registry alone, on the file's own numbers
    assert set(res["claims"]) == {"almost_same", "two_beats_one"}
    for cid, c in res["claims"].items():
        again = claims.judge(cid, claims.CLAIMS[cid].extract(res), quick=res["quick"],
                             dataset=res["dataset"])
        assert c["verdict"] == again["verdict"] and c["numbers"] == again["numbers"]
    inv = res["investigation"]
    v = inv["verdict"]
    assert "holds" not in v and "text" not in v          # no second verdict on the claim
    row = inv["variants"][v["best"]]
    assert v["gap_pp"] == pytest.approx(100 * (row["reference_clean"] - row["background"]),
                                        abs=1e-3)
    assert v["gap_pp"] == min(v["gaps_pp"].values())
    d = res["one_vs_two"]["two_minus_one_background"]
    assert d == pytest.approx(res["two_layer"]["background"]["background"]["mean"]
                              - res["one_layer"]["background"]["background"]["mean"], abs=1e-5)
