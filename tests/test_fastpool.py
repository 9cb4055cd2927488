"""The compiled 2x2 max pooling for training (core.fastpool): PyTorch's kernel, bit for bit."""
import shutil

import pytest
import torch
import torch.nn.functional as F

from recos_utils.core import fastpool
from recos_utils.core.models import LeNet5, MaxPool2x2
from recos_utils.core.train import Recipe, fit

needs_cc = pytest.mark.skipif(not shutil.which(fastpool.compiler() or "cc"),
                              reason="no C compiler ($CC, cc or gcc): the book uses PyTorch's "
                                     "kernel here")
CL = torch.channels_last


def bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bits (NaN payloads and the sign of zero included), in logical order."""
    return t.contiguous().view(torch.int32)


@pytest.fixture
def fresh_build(tmp_path, monkeypatch):
    """An empty user cache and a process that has not loaded the library yet."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("RECOS_NATIVE", raising=False)
    saved = dict(fastpool._state)
    fastpool._state.clear()
    yield tmp_path / "recos_book" / "native"
    fastpool._state.clear()
    fastpool._state.update(saved)


def awkward(shape, layout, seed=0):
    """Values with ties in most windows, NaN (two in some windows, with different payloads),
    infinities and both signed zeros."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g) * 1.5).round()
    flat = x.view(-1)
    flat[::7] = 0.0
    flat[3::11] = -0.0
    flat[::89] = float("-inf")
    flat[5::97] = float("inf")
    flat[::101] = float("nan")
    flat[1::101] = -float("nan")                   # the sign bit set: another payload
    return x.contiguous(memory_format=CL) if layout == "channels_last" else x


@needs_cc
@pytest.mark.parametrize("shape", [(64, 6, 28, 28), (5, 16, 10, 10), (2, 3, 4, 6), (3, 7, 2, 2)])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_forward_and_backward_are_the_kernels_bits(fresh_build, shape, layout):
    x = awkward(shape, layout).requires_grad_()
    assert fastpool.supports(x)
    g = torch.randn(shape[0], shape[1], shape[2] // 2, shape[3] // 2)
    g.view(-1)[::3] = -0.0                         # the kernel's backward turns -0 into +0
    g.view(-1)[1::5] = 0.0
    g = g.contiguous(memory_format=CL if layout == "channels_last" else torch.contiguous_format)
    want = F.max_pool2d(x, 2)
    (want_grad,) = torch.autograd.grad(want, x, g)
    got = fastpool.max_pool2x2(x)
    (got_grad,) = torch.autograd.grad(got, x, g)
    assert torch.equal(bits(got), bits(want)) and got.stride() == want.stride()
    assert torch.equal(bits(got_grad), bits(want_grad)) and got_grad.stride() == want_grad.stride()
    assert fresh_build.is_dir() and [p.suffix for p in fresh_build.iterdir()] == [".so"]


@needs_cc
def test_gradients_of_any_layout_and_through_a_sum(fresh_build):
    """An expanded gradient (a sum's) and a gradient in the other layout are handled."""
    x = awkward((4, 6, 8, 8), "channels_last").requires_grad_()
    for make in (lambda y: y.sum(), lambda y: (y.contiguous() * torch.arange(16.0).view(4, 4)).sum()):
        (want,) = torch.autograd.grad(make(F.max_pool2d(x, 2)), x)
        (got,) = torch.autograd.grad(make(fastpool.max_pool2x2(x)), x)
        assert torch.equal(bits(got), bits(want))


@needs_cc
def test_lenet5_trains_to_the_same_bits_with_and_without_it(fresh_build, monkeypatch):
    """A LeNet-5 run (black borders: many tied windows) ends with the same weights and
    history whichever pooling trained it, and the compiled loop did the pooling."""
    g = torch.Generator().manual_seed(3)
    images = torch.randint(0, 256, (640, 28, 28), dtype=torch.uint8, generator=g)
    images[:, :5], images[:, :, -5:] = 0, 0
    labels = torch.randint(0, 10, (640,), generator=g)
    calls = []
    real = fastpool._MaxPool2x2.forward
    monkeypatch.setattr(fastpool._MaxPool2x2, "forward",
                        staticmethod(lambda ctx, x: calls.append(1) or real(ctx, x)))
    runs = {}
    for flag in ("0", "1"):
        monkeypatch.setenv("RECOS_NATIVE", flag)
        torch.manual_seed(0)
        model = LeNet5()
        hist = fit(model, images, labels, recipe=Recipe(epochs=1.5, batch_size=32), seed=1)
        runs[flag] = (model.state_dict(), hist["loss"], hist["train_acc_final"])
        assert len(calls) == (0 if flag == "0" else 2 * hist["steps"])
    (w0, loss0, acc0), (w1, loss1, acc1) = runs["0"], runs["1"]
    assert all(torch.equal(bits(w0[k]), bits(w1[k])) for k in w0)
    assert loss0 == loss1 and acc0 == acc1


@needs_cc
def test_the_library_is_built_once_and_reused(fresh_build):
    assert fastpool.enabled() and fastpool.status().startswith("compiled")
    (lib,) = fresh_build.iterdir()
    stamp = lib.stat().st_mtime_ns
    fastpool._state.clear()
    assert fastpool.enabled() and lib.stat().st_mtime_ns == stamp
    assert list(fresh_build.iterdir()) == [lib]


def test_without_a_compiler_the_kernel_pools_and_says_why(fresh_build, monkeypatch):
    monkeypatch.setenv("CC", str(fresh_build.parent / "no-such-compiler"))
    assert not fastpool.enabled()
    assert "no-such-compiler" in fastpool.status() and "kernel" in fastpool.status()
    assert not fresh_build.exists() or list(fresh_build.iterdir()) == []  # nothing half-written
    x = awkward((2, 6, 8, 8), "channels_last").requires_grad_()
    assert not fastpool.supports(x)
    y = MaxPool2x2()(x)
    assert torch.equal(bits(y), bits(F.max_pool2d(x, 2)))
    with pytest.raises(ValueError, match="no-such-compiler"):
        fastpool.max_pool2x2(x)


def test_a_broken_compiler_leaves_nothing_behind(fresh_build, monkeypatch, tmp_path):
    fake = tmp_path / "cc"
    fake.write_text("#!/bin/sh\necho 'cc: error: out of cheese' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CC", str(fake))
    assert not fastpool.enabled() and "out of cheese" in fastpool.status()
    assert list(fresh_build.iterdir()) == []


def test_the_switch_is_checked(monkeypatch):
    monkeypatch.setenv("RECOS_NATIVE", "0")
    assert not fastpool.enabled() and "RECOS_NATIVE=0" in fastpool.status()
    monkeypatch.setenv("RECOS_NATIVE", "yes")
    with pytest.raises(ValueError, match="set it to 1 .* or 0"):
        fastpool.enabled()


@needs_cc
@pytest.mark.parametrize("x", [
    torch.randn(2, 6, 7, 8),                                      # odd height
    torch.randn(2, 6, 8, 8, dtype=torch.float64),                 # not float32
    torch.randn(2, 1, 8, 8),                                      # one channel: layout ambiguous
    torch.randn(2, 6, 16, 8)[:, :, ::2],                          # not dense
    torch.randn(6, 8, 8),                                         # unbatched
], ids=["odd", "float64", "one-channel", "strided", "unbatched"])
def test_other_inputs_use_the_kernel(fresh_build, x):
    x.requires_grad_()
    assert not fastpool.supports(x)
    y = MaxPool2x2()(x)
    (gy,) = torch.autograd.grad(y.sum(), x)
    want = F.max_pool2d(x, 2)
    (gw,) = torch.autograd.grad(want.sum(), x)
    assert torch.equal(y, want) and torch.equal(gy, gw)
