"""LeNet-5 family and activations (Chapters 1-4)."""
import pytest
import torch
import torch.nn.functional as F

from recos_utils.models import ACTIVATIONS, LeNet5, TReLU, make_activation


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
    assert m.pool_first == (pool == "max" and name != "abs")
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
    z = 0.5
    t = TReLU(z)(x)
    want = torch.where(x < z, torch.zeros_like(x), (x - z) / (1 - z))
    torch.testing.assert_close(t, want)
    torch.testing.assert_close(TReLU(0.0)(x), F.relu(x))
    assert TReLU(z)(torch.tensor(1.0)) == 1.0  # (1 - z) / (1 - z): the map fixes 1


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


def test_pad_value_pads_the_input():
    m = LeNet5(pad_value=1.0)
    f = m.features(torch.ones(1, 1, 28, 28))
    # an all-white input padded with white is a flat 32x32 image: every conv1 output is equal
    c = f["conv1"][0]
    assert torch.allclose(c, c[:, :1, :1].expand_as(c), atol=1e-6)
