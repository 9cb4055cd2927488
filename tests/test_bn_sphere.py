"""Batch normalisation on the sphere (Chapter 1, Sec. 1.6): the measures, on hand-computed
cases; LeNet-5's ``batchnorm`` option, which must leave the plain network untouched."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from recos_utils.core import bn_sphere, claims
from recos_utils.core.models import LeNet5
from recos_utils.core.train import Recipe, TrainConfig, fit


# ------------------------------------------------------------------ the measures, by hand
def test_identical_points_have_resultant_one_and_no_length_spread():
    x = torch.tensor([[3.0, 4.0]]).repeat(5, 1)
    assert bn_sphere.norm_cv(x) == pytest.approx(0.0, abs=1e-12)
    assert bn_sphere.resultant_length(x) == pytest.approx(1.0)


def test_antipodal_points_have_resultant_zero():
    x = torch.tensor([[1.0, 2.0, 2.0], [-2.0, -4.0, -4.0]] * 3)
    assert bn_sphere.resultant_length(x) == pytest.approx(0.0, abs=1e-12)
    # lengths 3 and 6: mean 4.5, population std 1.5
    assert bn_sphere.norm_cv(x) == pytest.approx(1.5 / 4.5)


def test_orthogonal_unit_points_resultant():
    x = torch.eye(4)             # mean of the four unit vectors is (1/4, ..., 1/4): length 1/2
    assert bn_sphere.resultant_length(x) == pytest.approx(0.5)
    assert bn_sphere.orthant_share(x) == 1.0


def test_orthant_share_and_zero_points():
    x = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, -1.0], [-1.0, -1.0], [2.0, 3.0]])
    assert bn_sphere.orthant_share(x) == pytest.approx(2 / 4)      # the zero point left out
    m = bn_sphere.sphere_measures(x, torch.eye(2))
    assert m["zero_share"] == pytest.approx(1 / 5) and m["n_points"] == 5
    # the zero point counts in the lengths: 1, 0, sqrt 2, sqrt 2, sqrt 13
    n = torch.tensor([1.0, 0.0, math.sqrt(2), math.sqrt(2), math.sqrt(13)], dtype=torch.float64)
    assert m["norm_cv"] == pytest.approx((n.std(correction=0) / n.mean()).item())


def test_octant_share_counts_occupied_octants():
    one = torch.tensor([[1.0, 2.0, 3.0, 4.0]]).repeat(50, 1)
    assert bn_sphere.octant_share(one) == 1 / 8                   # one direction: one octant
    assert bn_sphere.octant_share(torch.cat([one, -one])) == 2 / 8
    # a cloud of Gaussian directions fills all eight; a single stray point does not count
    g = torch.randn(4000, 10, generator=torch.Generator().manual_seed(1))
    assert bn_sphere.octant_share(g) == 1.0
    assert bn_sphere.octant_share(torch.cat([one.repeat(4, 1), -one[:1]])) == 1 / 8


def test_anchor_angles_and_quantiles():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    a = torch.tensor([[1.0, 1.0], [-3.0, 0.0]])
    cos = bn_sphere.anchor_angles(x, a)
    s = 1 / math.sqrt(2)
    torch.testing.assert_close(cos, torch.tensor([[s, -1.0], [s, 0.0]], dtype=torch.float64))
    m = bn_sphere.sphere_measures(x, a)
    assert m["cos_pos_share"] == pytest.approx(2 / 4)             # cos = 0 is not > 0
    assert m["angle_q50"] == pytest.approx(67.5)                  # angles 45, 45, 90, 180


def test_unfold_patches_equal_a_manual_slice():
    x = torch.randn(2, 3, 7, 6, generator=torch.Generator().manual_seed(0))
    p = bn_sphere.unfold_patches(x, 5)                            # 2 x (3 x 2) positions
    assert p.shape == (2 * 3 * 2, 3 * 25)
    for b in range(2):
        for i in range(3):
            for j in range(2):
                want = x[b, :, i:i + 5, j:j + 5].reshape(-1)
                torch.testing.assert_close(p[b * 6 + i * 2 + j], want, rtol=0, atol=0)
    conv = nn.Conv2d(3, 4, 5)
    out = conv(x).detach()                                        # patches @ anchors = conv
    y = bn_sphere.layer_points(x, conv) @ conv.weight.detach().flatten(1).T + conv.bias.detach()
    torch.testing.assert_close(y, out.permute(0, 2, 3, 1).reshape(-1, 4), rtol=1e-5, atol=1e-5)


def test_circle_points_of_one_direction_sit_at_angle_zero():
    x = torch.tensor([[1.0, 1.0, 0.0]]).repeat(10, 1) * torch.arange(1, 11)[:, None]
    th = bn_sphere.circle_points(x)
    torch.testing.assert_close(th, torch.zeros(10, dtype=torch.float64), atol=1e-9, rtol=0)


# ------------------------------------------------------------- LeNet-5's batchnorm option
class _PlainLeNet5(nn.Module):
    """The plain LeNet-5 as it was before the option (ReLU, max pooling), for reference."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(F.pad(x, (2, 2, 2, 2)))), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2).flatten(1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def test_without_batchnorm_the_network_is_the_plain_one():
    torch.manual_seed(7)
    ref = _PlainLeNet5()
    torch.manual_seed(7)
    m = LeNet5()
    assert not m.batchnorm
    assert list(m.state_dict()) == list(ref.state_dict())
    for k, v in ref.state_dict().items():
        assert torch.equal(m.state_dict()[k], v), k
    x = torch.rand(6, 1, 28, 28)
    torch.testing.assert_close(m(x), ref(x), rtol=0, atol=0)
    torch.testing.assert_close(m.features(x)["logits"], ref(x), rtol=1e-6, atol=1e-6)
    assert not any(isinstance(mod, nn.modules.batchnorm._BatchNorm) for mod in m.modules())
    # TrainConfig's default builds the same network
    assert TrainConfig(seed=7).batchnorm is False
    assert list(TrainConfig(seed=7).model().state_dict()) == list(ref.state_dict())


def test_batchnorm_keeps_the_layers_initialisation_and_adds_only_buffers():
    torch.manual_seed(3)
    plain = LeNet5()
    m = TrainConfig(seed=3, batchnorm=True).model()
    sd = m.state_dict()
    for k, v in plain.state_dict().items():
        assert torch.equal(sd[k], v), k
    assert {k.split(".")[0] for k in set(sd) - set(plain.state_dict())} == {"bn1", "bn2", "bn3",
                                                                            "bn4"}
    assert sum(p.numel() for p in m.parameters()) == sum(p.numel() for p in plain.parameters())


@pytest.mark.parametrize("activation,pool", [("relu", "max"), ("relu", "avg"), ("abs", "max")])
def test_batchnorm_fast_forward_is_the_textbook_network(activation, pool):
    torch.manual_seed(2)
    m = LeNet5(activation, pool, batchnorm=True)
    x = torch.rand(16, 1, 28, 28)
    for mode in (m.train, m.eval):
        mode()
        fast, slow = m(x), m.features(x)["logits"]
        torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)


def test_batchnorm_eval_mode_normalises_each_layer_input_with_the_training_stats():
    torch.manual_seed(0)
    m = LeNet5(batchnorm=True)
    for bn in (m.bn1, m.bn2, m.bn3, m.bn4):
        bn.momentum = 1.0                    # running stats := the last training batch's
    # 256 images: the running variance is the unbiased one and the layers downstream see
    # eval-mode inputs, so the statistics match those of training to about 1 / 256
    x = torch.rand(256, 1, 28, 28)
    with torch.no_grad():
        m.train()(x)
        f = m.eval().features(x)
    for key in ("in_conv1", "in_conv2", "in_fc1", "in_fc2"):
        v = f[key].transpose(0, 1).flatten(1)                       # channel x values
        torch.testing.assert_close(v.mean(1), torch.zeros(len(v)), atol=1e-2, rtol=0)
        live = v.var(1) > 1e-3                                      # a channel that varies
        assert live.any(), key
        torch.testing.assert_close(v.var(1)[live], torch.ones(int(live.sum())), atol=3e-2,
                                   rtol=0)


def test_fit_trains_the_batchnorm_statistics_and_leaves_eval_mode():
    torch.manual_seed(0)
    m = LeNet5(batchnorm=True)
    images = torch.randint(0, 256, (128, 28, 28), dtype=torch.uint8)
    labels = torch.randint(0, 10, (128,))
    fit(m, images, labels, recipe=Recipe(epochs=1, batch_size=64), seed=0)
    assert not m.training and int(m.bn3.num_batches_tracked) == 2
    # two updates with momentum 0.1 from 0 towards the padded images' mean (about 0.38)
    assert 0.05 < m.bn1.running_mean.item() < 0.1


def test_network_measures_cover_the_four_layers():
    torch.manual_seed(0)
    out = bn_sphere.network_measures(LeNet5(batchnorm=True), torch.rand(4, 1, 28, 28))
    assert list(out) == ["conv1", "conv2", "fc1", "fc2"]
    assert out["conv1"]["n_points"] == 4 * 28 * 28 and out["conv2"]["n_points"] == 4 * 100
    assert out["fc1"]["n_points"] == 4 and out["fc2"]["n_points"] == 4


# --------------------------------------------------------------------------- the claim
def _arm(cv, res, std=0.01, n=3):
    return {layer: {"norm_cv": {"mean": cv, "std": std, "n": n},
                    "resultant": {"mean": res, "std": std, "n": n}} for layer in ("conv2", "fc1")}


def test_claim_holds_only_when_both_measures_fall_clearly_in_every_layer():
    base = {"layers": ["conv2", "fc1"], "n": 3, "plain": _arm(0.5, 0.9)}
    assert claims.judge("bn_sphere", {**base, "bn": _arm(0.2, 0.3)})["verdict"] == claims.HOLDS
    # the resultant unchanged (0.9 vs 0.9): within the noise, so not distinguishable
    assert claims.judge("bn_sphere", {**base, "bn": _arm(0.2, 0.9)})["verdict"] == claims.LEVEL
    # the resultant clearly up with BN (0.95 vs 0.9, se = 0.0082): the claim fails
    assert claims.judge("bn_sphere", {**base, "bn": _arm(0.2, 0.95)})["verdict"] == claims.FAILS
    one = {**base, "bn": _arm(0.2, 0.3)}
    one["bn"]["fc1"]["norm_cv"]["mean"] = 0.49                      # within the noise
    assert claims.judge("bn_sphere", one)["verdict"] == claims.LEVEL
    c = claims.CLAIMS["bn_sphere"]
    assert c.chapter == "01" and c.source == claims.RESTATED and "XinDongol" in c.note
