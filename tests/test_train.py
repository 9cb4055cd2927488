"""The fast trainer: learns, is deterministic, caches, and trains in parallel bit-identically."""
import pytest
import torch

from recos_utils.core import train
from recos_utils.core.models import LeNet5
from recos_utils.core.device import DeviceError, resolve_device
from recos_utils.core.kinds import lenet_cost, lenet_specs
from recos_utils.core.train import RECIPE, Recipe, TrainConfig, evaluate, fit
from recos_utils.core.trainer import train_all
from conftest import needs_mnist


def toy_data(n=512, seed=0):
    """Two classes a linear model can separate: bright top half vs bright bottom half."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randint(0, 60, (n, 28, 28), generator=g, dtype=torch.uint8)
    x[y == 0, :14] += 150
    x[y == 1, 14:] += 150
    return x, y


def test_fit_learns_and_records_history():
    x, y = toy_data()
    torch.manual_seed(0)
    m = LeNet5()
    before = evaluate(m, x, y)
    h = fit(m, x, y, recipe=Recipe(epochs=4, batch_size=32, lr=2e-3), seed=0,
            eval_sets={"train": (x, y)})
    assert evaluate(m, x, y) > max(before, 0.95)
    assert h["steps"] == 4 * 16 and h["eval_step"] == [16, 32, 48, 64]
    assert h["eval"]["train"][-1] == evaluate(m, x, y)
    assert h["loss"][-1] < h["loss"][0]
    # the last quarter epoch's mini-batches: its accuracy is that of the trained model
    assert h["train_acc_final"] > 0.95 and h["train_loss_final"] < h["loss"][0]
    assert len(h["eval_train_s"]) == 4 and h["eval_train_s"] == sorted(h["eval_train_s"])
    assert h["eval_train_s"][-1] + h["eval_seconds"] <= h["seconds"]


def test_fractional_epochs_stop_mid_epoch_and_the_schedule_is_one_cycle():
    x, y = toy_data(n=320)
    r = Recipe(epochs=1.5, batch_size=32, lr=1e-2, warmup=0.2, final_div=100)
    lrs = []
    h = fit(LeNet5(), x, y, recipe=r, on_step=lambda s, m: lrs.append(s))
    assert h["steps"] == r.steps(320) == 15 == lrs[-1]
    sched = [r.lr_at(s, 15) for s in range(15)]
    assert sched[0] == pytest.approx(1e-3)                     # lr / 10 at the start
    assert max(sched) == pytest.approx(1e-2) == sched[3]       # the peak after 20 %
    assert sched[-1] == pytest.approx(1e-2 * (1 - 11 / 12 * 0.99))  # falling towards lr / 100
    assert all(a >= b for a, b in zip(sched[3:], sched[4:]))
    with pytest.raises(ValueError, match="epochs > 0"):
        Recipe(epochs=0)


def test_same_seed_same_bits_other_seed_other_bits():
    x, y = toy_data()
    states = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        m = LeNet5()
        fit(m, x, y, recipe=Recipe(epochs=1, batch_size=32), seed=seed)
        states.append(m.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not torch.equal(states[0]["conv1.weight"], states[2]["conv1.weight"])


def test_frozen_parameters_stay_put():
    x, y = toy_data()
    m = LeNet5()
    w = m.conv1.weight.detach().clone()
    fit(m, x, y, recipe=Recipe(epochs=1),
        params=[p for n, p in m.named_parameters() if not n.startswith("conv1")])
    assert torch.equal(m.conv1.weight, w)


def test_on_step_sees_every_step():
    x, y = toy_data(n=256)
    seen = []
    fit(LeNet5(), x, y, recipe=Recipe(epochs=2, batch_size=64), on_step=lambda s, m: seen.append(s))
    assert seen == list(range(1, 9))


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA GPU"):
            resolve_device("cuda")


@needs_mnist
def test_parallel_training_is_bit_identical_to_training_alone_and_cached(monkeypatch):
    """Two models in worker processes = the same models trained here, one thread each."""
    cfgs = [TrainConfig(n_train=1024, seed=s, recipe=Recipe(epochs=1, batch_size=128)) for s in (0, 1)]
    monkeypatch.setenv("RECOS_WORKERS", "2")
    pooled = train_all(lenet_specs(cfgs))
    for c, (m, h, _) in zip(cfgs, pooled):
        alone = train_all(lenet_specs([c]), use_cache=False, n_workers=1)[0].model
        for k, v in alone.state_dict().items():
            assert torch.equal(v, m.state_dict()[k]), k
        assert h["steps"] == 8
    # second time: loaded from the cache, no training at all
    monkeypatch.setattr(train, "fit", lambda *a, **k: pytest.fail("retrained a cached model"))
    again = train_all(lenet_specs(cfgs))
    assert torch.equal(again[1][0].conv1.weight, pooled[1][0].conv1.weight)


@needs_mnist
def test_train_on_reversed_and_both():
    ds = train.train_data("mnist", "both", n_train=100)
    assert len(ds) == 200
    assert torch.equal(ds.images[100:], 255 - ds.images[:100])
    assert torch.equal(ds.labels[100:], ds.labels[:100])
    with pytest.raises(ValueError, match="unknown train_on"):
        train.train_data("mnist", "sideways")


def test_lenet_cost_counts_steps_and_images():
    import dataclasses

    def cost(**kw):
        recipe = kw.pop("recipe", RECIPE)
        return lenet_cost(dataclasses.asdict(TrainConfig(recipe=recipe, **kw)))

    r = Recipe(epochs=2)
    assert cost(recipe=Recipe(epochs=1), train_on="both") == pytest.approx(cost(recipe=r), rel=1e-3)
    assert cost(recipe=Recipe(epochs=1, batch_size=32), n_train=12000) > \
        cost(recipe=Recipe(epochs=1, batch_size=128), n_train=12000)        # more steps
    assert cost(recipe=r) == 2 * cost(recipe=Recipe(epochs=1))
