"""A stack of LeNet-5s is the same networks side by side (recos_utils.core.stacked)."""
import dataclasses

import pytest
import torch

from recos_utils.core.models import LeNet5
from recos_utils.core.stacked import StackedLeNet5
from recos_utils.core.trainer import _groups
from recos_utils.core.kinds import lenet_specs
from recos_utils.core.train import Recipe, TrainConfig, fit
from recos_utils.core.trainer import train_all

from conftest import needs_mnist

def members(pool, act="trelu", zs=(0.1, 0.3, 0.5, 0.6, 0.9)):
    out = []
    for z in zs:
        torch.manual_seed(len(out))                  # different weights per member
        out.append(LeNet5(act, pool, z))
    return out


@pytest.mark.parametrize("pool,act", [("max", "trelu"), ("avg", "trelu"), ("max", "tanh"),
                                      ("avg", "abs")])
def test_stacked_forward_equals_members(pool, act):
    nets = members(pool, act)
    stack = StackedLeNet5(nets)
    x = torch.rand(7, 1, 28, 28, dtype=torch.float64)
    stack.double()
    got = stack(x)
    for i, net in enumerate(nets):
        ref = net.double()(x)
        torch.testing.assert_close(got[i], ref, rtol=1e-10, atol=1e-10)


def test_unstack_round_trip():
    nets = members("max")
    for net, sd in zip(nets, StackedLeNet5(nets).unstack()):
        for k, v in net.state_dict().items():
            assert torch.equal(sd[k], v), k


def test_stacked_training_follows_each_member(monkeypatch):
    """fit on the stack == fit on every member alone (same batches, same init, summed loss).

    In float64, so that the comparison is not swamped by Adam amplifying float32 rounding
    in near-zero gradients (in float32 the weights agree to about 1e-4)."""
    from recos_utils.core import train

    monkeypatch.setattr(train, "to_input", lambda im: im.double().div(255.0).unsqueeze(1))
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (192, 28, 28), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (192,), generator=g)
    recipe = Recipe(epochs=2, batch_size=32, lr=3e-3)
    nets = [n.double() for n in members("max")]
    stack = StackedLeNet5(nets).double()
    hs = fit(stack, images, labels, recipe=recipe, seed=3)
    for i, (net, sd) in enumerate(zip(nets, stack.unstack())):
        h = fit(net, images, labels, recipe=recipe, seed=3)
        for k, v in net.state_dict().items():
            torch.testing.assert_close(sd[k], v.contiguous(), rtol=1e-9, atol=1e-11, msg=k)
        assert hs["train_acc_final"][i] == h["train_acc_final"]
        assert hs["train_loss_final"][i] == pytest.approx(h["train_loss_final"], rel=1e-9)
        assert hs["loss"][-1][i] == pytest.approx(h["loss"][-1], rel=1e-9)


def test_stack_needs_one_activation():
    with pytest.raises(ValueError, match="same activation"):
        StackedLeNet5([LeNet5("trelu"), LeNet5("relu")])


def test_stack_groups_share_everything_but_z():
    t = TrainConfig(n_train=100, activation="trelu", recipe=Recipe(epochs=1))
    cfgs = [dataclasses.replace(t, trelu_z=0.3), TrainConfig(n_train=100), t,
            dataclasses.replace(t, seed=1), dataclasses.replace(t, pool="avg", trelu_z=0.2),
            dataclasses.replace(t, trelu_z=0.7), TrainConfig(n_train=100, activation="tanh")]
    assert _groups(lenet_specs(cfgs), list(range(len(cfgs)))) == [[0, 2, 5], [1], [3], [4], [6]]


@needs_mnist
def test_train_lenets_stacks_the_trelu_sweep(tmp_path, monkeypatch):
    monkeypatch.setenv("RECOS_CACHE_DIR", str(tmp_path))
    r = Recipe(epochs=1, batch_size=64)
    cfgs = [TrainConfig(n_train=256, activation="trelu", trelu_z=z, recipe=r) for z in (0.1, 0.4)]
    cfgs.insert(1, TrainConfig(n_train=256, recipe=r))
    out = train_all(lenet_specs(cfgs), n_workers=1)
    again = train_all(lenet_specs(cfgs))                        # from the store
    assert len(list(tmp_path.glob("*.pt"))) == 3               # one entry per network
    for (m, h, _), (m2, *_), c in zip(out, again, cfgs):
        assert isinstance(m, LeNet5) and (m.activation, getattr(m.act1, "z", None)) == (
            c.activation, c.trelu_z if c.activation == "trelu" else None)
        assert h.get("stacked_with", 1) == (2 if c.activation == "trelu" else 1)
        assert len(h["loss"]) == len(h["step"]) and 0.0 <= h["train_acc_final"] <= 1.0
        for k, v in m.state_dict().items():
            assert torch.equal(v, m2.state_dict()[k])
    assert not torch.equal(out[0][0].fc3.weight, out[2][0].fc3.weight)
