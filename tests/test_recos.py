"""RECOS math (Chapter 1) against PyTorch references and exact identities."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from recos_utils.core import recos



@pytest.fixture(autouse=True)
def _float64():
    """These checks run in double precision; the default is restored for other modules."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


@pytest.mark.parametrize("cin,cout,k,pad,stride,h", [(1, 6, 5, 0, 1, 32), (6, 16, 5, 0, 1, 14),
                                                      (3, 4, 3, 1, 1, 9), (2, 5, 3, 1, 2, 11)])
def test_recos_layer_equals_conv2d_relu(cin, cout, k, pad, stride, h):
    torch.manual_seed(cin * 100 + k)
    conv = nn.Conv2d(cin, cout, k, padding=pad, stride=stride).double()
    x = torch.randn(3, cin, h, h)
    ref = torch.relu(conv(x))
    got = recos.recos_layer(x, conv)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)


def test_patches_match_conv_layout():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 8, 8)
    w = torch.randn(4, 3, 3, 3)
    p = recos.patches(x, 3)                      # 2 x 36 x 27
    a = w.reshape(4, -1)
    y = (p @ a.T).transpose(1, 2).reshape(2, 4, 6, 6)
    torch.testing.assert_close(y, F.conv2d(x, w), rtol=0, atol=1e-12)


def test_magnitude_times_rectified_cosine_is_the_response():
    torch.manual_seed(2)
    x, a = torch.randn(50, 26), torch.randn(7, 26)
    mag, rcos = recos.magnitude_cosine(x, a)
    torch.testing.assert_close(mag * rcos, torch.relu(x @ a.T), rtol=0, atol=1e-12)
    assert (rcos >= 0).all() and (rcos <= 1 + 1e-12).all()
    # the rectified cosine is scale-invariant: scaling x scales only the magnitude
    mag2, rcos2 = recos.magnitude_cosine(3.5 * x, a)
    torch.testing.assert_close(rcos2, rcos, rtol=0, atol=1e-12)
    torch.testing.assert_close(mag2, 3.5 * mag, rtol=1e-12, atol=0)


def test_augmented_vectors_remove_the_mean_and_silence_flat_patches():
    torch.manual_seed(3)
    x, a = torch.rand(100, 25) * 255, torch.randn(6, 25)
    xa, aa = recos.augment(x, a)
    assert xa.shape == (100, 26) and aa.shape == (6, 26)
    centred, mu = recos.remove_mean(x)
    torch.testing.assert_close(xa @ aa.T, centred @ a.T, rtol=0, atol=1e-9)
    torch.testing.assert_close(centred + mu[:, None], x, rtol=0, atol=1e-12)
    for level in (0.0, 17.0, 255.0):
        flat = torch.full((1, 25), level)
        xf, af = recos.augment(flat, a)
        assert (xf @ af.T).abs().max() < 1e-9
    # the tied bias makes every augmented anchor sum to zero over its pixels
    torch.testing.assert_close(aa.sum(-1), torch.zeros(6), rtol=0, atol=1e-12)


def test_geodesic_distance_is_a_metric_on_the_sphere():
    torch.manual_seed(4)
    u, v, w = (F.normalize(torch.randn(200, 10), dim=1) for _ in range(3))
    d = recos.geodesic_distance
    assert torch.allclose(d(u, u), torch.zeros(200), atol=1e-6)
    torch.testing.assert_close(d(u, v), d(v, u))
    assert (d(u, w) <= d(u, v) + d(v, w) + 1e-9).all()
    torch.testing.assert_close(d(u, -u), torch.full((200,), math.pi), atol=1e-6, rtol=0)
    # chord length on the unit sphere is 2 sin(theta / 2)
    torch.testing.assert_close((u - v).norm(dim=1), 2 * torch.sin(d(u, v) / 2), atol=1e-12, rtol=0)


def test_anchor_position_vectors_give_the_cascade_coefficients():
    torch.manual_seed(5)
    A, B = torch.randn(4, 9), torch.randn(3, 4)   # layer 1: 4 anchors in R^9; layer 2: 3 in R^4
    alpha = recos.anchor_position_vectors(A)      # 9 x 4: alpha_n = A^T e_n
    assert alpha.shape == (9, 4)
    for n in range(9):                            # alpha_n is the n-th entry of every anchor
        e_n = torch.zeros(9)
        e_n[n] = 1.0
        assert [float(v) for v in alpha[n]] == [float(A[k] @ e_n) for k in range(4)]
    # the linearised two-layer anchors c_nl = alpha_n . b_l, against explicit sums
    # c_nl = sum_k A_kn B_lk and against two bias-free nn.Linear layers applied in turn
    C = alpha @ B.T
    ref = torch.tensor([[sum(float(A[k, n]) * float(B[l, k]) for k in range(4)) for l in range(3)]
                        for n in range(9)])
    torch.testing.assert_close(C, ref, rtol=0, atol=1e-12)
    lin1, lin2 = nn.Linear(9, 4, bias=False), nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        lin1.weight.copy_(A)
        lin2.weight.copy_(B)
    x = torch.randn(5, 9)
    torch.testing.assert_close(lin2(lin1(x)), x @ C, rtol=0, atol=1e-12)


def test_unit_circle_example_matches_cosines():
    c = recos.unit_circle_example(40, [75, 0, 175])
    want = torch.tensor([math.cos(math.radians(d)) for d in (35, 40, 135)], dtype=c["correlation"].dtype)
    torch.testing.assert_close(c["correlation"], want, atol=1e-6, rtol=0)
    assert c["rectified"][2] == 0 and (c["rectified"][:2] > 0).all()


def test_anchors_of_conv_and_linear_layers():
    conv, lin = nn.Conv2d(6, 16, 5), nn.Linear(400, 120)
    assert recos.anchors(conv).shape == (16, 150)
    assert recos.anchors(lin).shape == (120, 400)
    a = recos.anchors(conv)
    a += 1  # a copy: the layer is untouched
    assert not torch.equal(a, recos.anchors(conv))
