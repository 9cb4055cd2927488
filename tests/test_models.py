"""LeNet-5 family and activations (Chapters 1-4)."""
import pytest
import torch
import torch.nn.functional as F

from recos_utils.core.models import (ACTIVATIONS, MONOTONE, LeNet5, MaxPool2x2, TReLU,
                                     make_activation, trelu)


def test_lenet5_shapes_and_parameter_count():
    m = LeNet5()
    x = torch.rand(4, 1, 28, 28)
    f = m.features(x)
    assert f["conv1"].shape == (4, 6, 28, 28)      # 28 padded to 32, 5x5 -> 28
    assert f["pool1"].shape == (4, 6, 14, 14)
    assert f["conv2"].shape == (4, 16, 10, 10)
    assert f["pool2"].shape == (4, 16, 5, 5)
    assert f["fc1"].shape == (4, 120) and f["fc2"].shape == (4, 84)
    torch.testing.assert_close(f["logits"], m(x))
    expected = (6 * 25 + 6) + (16 * 150 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    assert sum(p.numel() for p in m.parameters()) == expected


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_every_activation_and_pool_runs_and_backpropagates(name, pool):
    torch.manual_seed(0)
    m = LeNet5(name, pool)
    out = m(torch.rand(3, 1, 28, 28))
    out.sum().backward()
    assert out.shape == (3, 10) and torch.isfinite(out).all()
    assert m.conv1.weight.grad is not None


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_fast_forward_is_the_textbook_network(name, pool):
    """forward() pools before a non-decreasing activation; values and gradients must equal
    the textbook order conv -> activation -> pool that features() computes."""
    torch.manual_seed(1)
    m = LeNet5(name, pool)
    x = torch.rand(16, 1, 28, 28) * 4 - 1          # wide range: saturates tanh/sigmoid
    assert m.pool_first == (pool == "max" and name not in ("abs", "trelu"))
    assert m.pool_first == (pool == "max" and name in MONOTONE)
    fast = m(x)
    g_fast = torch.autograd.grad(fast.square().sum(), list(m.parameters()))
    slow = m.features(x)["logits"]
    g_slow = torch.autograd.grad(slow.square().sum(), list(m.parameters()))
    torch.testing.assert_close(fast, slow, rtol=1e-6, atol=1e-6)
    for a, b in zip(g_fast, g_slow):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_activation_definitions():
    x = torch.linspace(-2, 2, 41)
    torch.testing.assert_close(make_activation("relu")(x), F.relu(x))
    torch.testing.assert_close(make_activation("abs")(x), x.abs())
    torch.testing.assert_close(make_activation("identity")(x), x)
    c = torch.linspace(-1, 1, 41)
    z = 0.5
    want = torch.where(c < z, torch.zeros_like(c), (c - z) / (1 - z))
    torch.testing.assert_close(trelu(c, z), want)
    torch.testing.assert_close(trelu(c, 0.0), F.relu(c))
    assert trelu(torch.tensor(1.0), 0.7) == 1.0  # (1 - z) / (1 - z): the map fixes 1


def _direct_trelu(x, layer, z):
    """The 2017 threshold on the rectified cosine, one patch at a time (no shortcuts):
    y = ||x''|| ||a''|| TReLU_z(cos(x'', a'')), x'' = (1, patch), a'' = (b, a)."""
    x, w, b = x.double(), layer.weight.detach().double(), layer.bias.detach().double()
    if isinstance(layer, torch.nn.Conv2d):
        k = w.shape[-1]
        p = F.unfold(x, k).transpose(1, 2)                     # B x L x (C k k)
        side = x.shape[-1] - k + 1
    else:
        p = x[:, None, :]
    out = torch.empty(*p.shape[:2], w.shape[0], dtype=torch.float64)
    for i in range(p.shape[0]):
        for j in range(p.shape[1]):
            xa = torch.cat([torch.ones(1, dtype=torch.float64), p[i, j]])
            for kk in range(w.shape[0]):
                aa = torch.cat([b[kk:kk + 1], w[kk].flatten()])
                cos = xa @ aa / (xa.norm() * aa.norm())
                out[i, j, kk] = xa.norm() * aa.norm() * trelu(cos, z)
    if isinstance(layer, torch.nn.Conv2d):
        return out.transpose(1, 2).reshape(x.shape[0], w.shape[0], side, side)
    return out[:, 0]


@pytest.mark.parametrize("z", [0.25, 0.45])
def test_trelu_thresholds_the_cosine_as_a_direct_per_patch_computation(z):
    """Every TReLU layer of the network equals the per-patch definition (float64)."""
    torch.manual_seed(3)
    m = LeNet5("trelu", "max", trelu_z=z).double()
    with torch.no_grad():   # inputs are >= 0: positive anchors lie near them (cos ~ 0.75,
        for layer in (m.conv1, m.conv2, m.fc1, m.fc2):        # passes), negative ones far (cut)
            w = layer.weight.abs()
            w[1::2] *= -1
            layer.weight.copy_(w)
            layer.bias.copy_(w.flatten(1).mean(1))
    x = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    with torch.no_grad():
        f = m.features(x)
        padded = F.pad(x, (2, 2, 2, 2))
        for name, inp, layer in (("relu1", padded, m.conv1), ("relu2", f["pool1"], m.conv2),
                                 ("relu3", f["pool2"].flatten(1), m.fc1),
                                 ("relu4", f["relu3"], m.fc2)):
            want = _direct_trelu(inp, layer, z)
            torch.testing.assert_close(f[name], want, rtol=1e-9, atol=1e-9)
            assert 0 < (want > 0).double().mean() < 1, name     # the threshold does cut
        torch.testing.assert_close(m(x), f["logits"])


def test_trelu_with_z_zero_is_the_relu_network_exactly():
    torch.manual_seed(0)
    relu = LeNet5("relu", "max")
    t0 = LeNet5("trelu", "max", trelu_z=0.0)
    t0.load_state_dict(relu.state_dict())
    x = torch.rand(8, 1, 28, 28)
    assert torch.equal(t0.features(x)["logits"], relu.features(x)["logits"])


def test_identity_avgpool_lenet_is_affine_but_maxpool_is_not():
    """Max pooling rectifies on its own: max(a, b) = b + relu(a - b) (Chapter 2)."""
    torch.manual_seed(1)
    x1, x2 = torch.rand(2, 1, 28, 28), torch.rand(2, 1, 28, 28)
    for pool, linear in (("avg", True), ("max", False)):
        m = LeNet5("identity", pool)
        with torch.no_grad():
            f0 = m(torch.zeros(2, 1, 28, 28))
            lhs = m(x1 + x2) - f0
            rhs = (m(x1) - f0) + (m(x2) - f0)
        assert torch.allclose(lhs, rhs, atol=1e-5) == linear


def test_bad_names_are_clear_errors():
    with pytest.raises(ValueError, match="unknown activation 'relu6'.*allowed"):
        LeNet5("relu6")
    with pytest.raises(ValueError, match="unknown pooling 'min'"):
        LeNet5(pool="min")
    with pytest.raises(ValueError, match="0 <= z < 1"):
        TReLU(1.0)
    with pytest.raises(ValueError, match="0 <= z < 1"):
        LeNet5("trelu", trelu_z=-0.1)


def test_pad_value_pads_the_input():
    m = LeNet5(pad_value=1.0)
    f = m.features(torch.ones(1, 1, 28, 28))
    # an all-white input padded with white is a flat 32x32 image: every conv1 output is equal
    c = f["conv1"][0]
    assert torch.allclose(c, c[:, :1, :1].expand_as(c), atol=1e-6)


@pytest.mark.parametrize("shape", [(64, 6, 28, 28), (5, 16, 10, 10), (3, 6, 27, 29), (6, 14, 14)])
@pytest.mark.parametrize("layout", ["channels_last", "contiguous"])
def test_fast_max_pool_is_the_kernel_bit_for_bit(shape, layout):
    """MaxPool2x2 without gradients: the same bits and memory layout as F.max_pool2d, on
    ties (rounded values, many equal maxima), NaN, odd sizes and an unbatched map."""
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(shape, generator=g) * 2).round().clamp(min=0)  # ties in most windows
    x.view(-1)[::97] = float("nan")
    if layout == "channels_last" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    want = F.max_pool2d(x, 2)
    with torch.no_grad():
        got = MaxPool2x2()(x.requires_grad_())
    assert torch.equal(got.isnan(), want.isnan())
    assert torch.equal(got.nan_to_num(), want.nan_to_num())
    assert got.stride() == want.stride()
    assert MaxPool2x2()(x.detach()).stride() == want.stride()      # input needs no gradient


def test_fast_max_pool_trains_with_the_kernels_gradient():
    """With a gradient asked for, the gradient goes to the first maximum of each window, as
    nn.MaxPool2d's does (ties included), and LeNet-5 uses the class."""
    x = torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]], requires_grad=True)
    MaxPool2x2()(x).sum().backward()
    assert x.grad.flatten().tolist() == [1.0, 0.0, 0.0, 0.0]
    assert isinstance(LeNet5("relu", "max").pool1, MaxPool2x2)
    assert not isinstance(LeNet5("relu", "avg").pool1, MaxPool2x2)
