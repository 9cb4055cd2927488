"""``train_all``, the one way to train and cache a model (issues 24 and 27).

The store key follows the config, the code and the data: a truncated training file stops
a run even when the store is warm; a changed (valid) training file retrains; an unchanged
one reuses. Missing models start longest first and come back in order; a group trains
whole.
"""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from recos_utils.core import data as data_mod
from recos_utils.core import fingerprints
from recos_utils.core.data import DataError, dataset_id, load_dataset
from recos_utils.core.kinds import lenet_specs
from recos_utils.core.models import LeNet5
from recos_utils.core.train import Recipe, TrainConfig
from recos_utils.core.trainer import Kind, Spec, entry, spec_key, train_all
from conftest import needs_mnist

CALLS: list = []


def _toy_train(config, device, data_dir):
    """A 'model' that reads its training set: the mean of the first images."""
    CALLS.append(config["id"])
    ds = load_dataset(config["dataset"], "train", data_dir).subset(config.get("n", 10))
    return {"history": {"id": config["id"]}, "mean": float(ds.images.float().mean())}


def _toy_group(configs, device, data_dir):
    CALLS.append(tuple(c["id"] for c in configs))
    return [{"history": {"id": c["id"], "group": len(configs)}} for c in configs]


TOY = Kind("toy", _toy_train, lambda c, e: e, cost=lambda c: c.get("cost", 1.0))
NO_DATA = Kind("toy_nodata", lambda c, d, r: (CALLS.append(c["id"]) or {"history": {"id": c["id"]}}),
               lambda c, e: e, datasets=lambda c: [], cost=lambda c: c["cost"],
               group=lambda c: c.get("g"), train_group=_toy_group)


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("RECOS_CACHE_DIR", str(tmp_path / "store"))
    CALLS.clear()
    return tmp_path / "store"


@pytest.fixture
def own_root(tmp_path, monkeypatch):
    """A private copy of the MNIST files in a new data root (writable, unlike the real one)."""
    src = data_mod._locate("mnist", "train-images-idx3-ubyte", data_mod.data_roots(), False).parent
    root = tmp_path / "data"
    shutil.copytree(src, root / "MNIST" / "raw")
    for f in (root / "MNIST" / "raw").iterdir():
        f.chmod(0o644)                                # a data root may be read-only; its copy not
    monkeypatch.delenv("RECOS_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))        # no fallback root
    return root


def _train_file(root):
    return root / "MNIST" / "raw" / "train-images-idx3-ubyte"


def test_missing_models_start_longest_first_and_come_back_in_order(store):
    specs = [Spec(NO_DATA, {"id": i, "cost": c}) for i, c in enumerate([1, 6, 3, 6])]
    out = train_all(specs, n_workers=1)
    assert [t.history["id"] for t in out] == [0, 1, 2, 3]
    assert CALLS == [1, 3, 2, 0]                          # stable among equal costs
    CALLS.clear()
    assert [t.history["id"] for t in train_all(specs, n_workers=1)] == [0, 1, 2, 3]
    assert CALLS == []                                    # all from the store


def test_a_group_trains_whole_when_one_member_is_missing(store):
    specs = [Spec(NO_DATA, {"id": i, "cost": 1, "g": "a"}) for i in range(3)]
    train_all(specs, n_workers=1)
    assert CALLS == [(0, 1, 2)]
    victim = store / f"{spec_key(specs[1])}.pt"
    victim.unlink()
    CALLS.clear()
    out = train_all(specs, n_workers=1)
    assert CALLS == [(0, 1, 2)] and [t.history["group"] for t in out] == [3, 3, 3]


def test_progress_reports_models_and_the_share_of_the_work_done(store, tmp_path, monkeypatch):
    # a group of three costing 3 each (9) and one model of cost 1: after the group,
    # 3 of 4 models and 90 % of the work, not 1 of 2 jobs
    log = tmp_path / "progress.jsonl"
    monkeypatch.setenv("RECOS_PROGRESS_FILE", str(log))
    specs = [Spec(NO_DATA, {"id": i, "cost": 3, "g": "a"}) for i in range(3)]
    train_all(specs + [Spec(NO_DATA, {"id": 9, "cost": 1})], n_workers=1)
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [(x["done"], x["total"]) for x in lines] == [(3, 4), (4, 4)]
    assert [x["share"] for x in lines] == pytest.approx([0.9, 1.0])


def test_a_spec_listed_twice_trains_once(store):
    s = Spec(NO_DATA, {"id": 7, "cost": 1})
    a, b = train_all([s, s], n_workers=1)
    assert CALLS == [7] and a.entry == b.entry


def test_the_key_names_kind_config_code_and_data(monkeypatch):
    s = Spec(NO_DATA, {"id": 1, "cost": 1})
    k = spec_key(s)
    assert k == spec_key(Spec(NO_DATA, {"cost": 1, "id": 1}))          # key order is free
    assert spec_key(Spec(NO_DATA, {"id": 2, "cost": 1})) != k
    assert spec_key(Spec(TOY.__class__("other", None, None, datasets=lambda c: []),
                         {"id": 1, "cost": 1})) != k
    monkeypatch.setattr(fingerprints, "code_hash", lambda: "another code version")
    import recos_utils.core.trainer as tr
    monkeypatch.setattr(tr, "code_hash", lambda: "another code version")
    assert spec_key(s) != k


def test_code_hash_covers_every_module_of_the_package():
    import hashlib

    fingerprints.code_hash.cache_clear()             # remembered per process: read afresh
    h = hashlib.sha256()
    for p in sorted(fingerprints.PACKAGE.rglob("*.py")):
        h.update(str(p.relative_to(fingerprints.PACKAGE)).encode() + b"\0" + p.read_bytes())
    assert fingerprints.code_hash() == h.hexdigest()[:16]
    assert {"core", "chapters", "runner"} <= {p.parent.name for p in fingerprints.PACKAGE.rglob("*.py")}


def test_entry_holds_the_state_on_the_cpu_and_what_was_measured():
    torch.manual_seed(0)
    model = LeNet5()
    e = entry(model, {"loss": [1.0]}, test_acc=0.5)
    assert set(e) == {"state_dict", "history", "test_acc"} and e["test_acc"] == 0.5
    for k, v in model.state_dict().items():
        assert torch.equal(e["state_dict"][k], v) and e["state_dict"][k].device.type == "cpu"


# ------------------------------------------------------------- issue 27: models follow the data

@needs_mnist
def test_unchanged_file_reuses_the_stored_model(store, own_root):
    spec = Spec(TOY, {"id": 1, "dataset": "mnist"})
    first = train_all([spec], data_dir=own_root, n_workers=1)[0]
    again = train_all([spec], data_dir=own_root, n_workers=1)[0]
    assert CALLS == [1] and again.entry["mean"] == first.entry["mean"]


@needs_mnist
def test_truncated_training_file_with_a_warm_store_fails_naming_the_file(store, own_root):
    cfg = TrainConfig(n_train=256, recipe=Recipe(epochs=1, batch_size=64))
    train_all(lenet_specs([cfg]), data_dir=own_root, n_workers=1)       # warm the store
    path = _train_file(own_root)
    with open(path, "r+b") as f:
        f.truncate(1_000_000)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte is truncated") as e:
        train_all(lenet_specs([cfg]), data_dir=own_root, n_workers=1)
    assert str(path) in str(e.value) and "delete" in str(e.value)       # names the fix


@needs_mnist
def test_changed_valid_training_file_retrains(store, own_root, monkeypatch):
    """A file with other (valid) digits is another dataset: the store must not answer with
    a model trained on the old one. (MNIST's published checksums would reject any change,
    so they are set aside here, as for a dataset without known checksums.)"""
    monkeypatch.setattr(data_mod, "_MD5", {})
    spec = Spec(TOY, {"id": 1, "dataset": "mnist", "n": 10})
    before = train_all([spec], data_dir=own_root, n_workers=1)[0].entry["mean"]
    path = _train_file(own_root)
    raw = bytearray(path.read_bytes())
    raw[16:16 + 784] = bytes(255 - b for b in raw[16:16 + 784])         # reverse digit 0
    path.write_bytes(bytes(raw))
    after = train_all([spec], data_dir=own_root, n_workers=1)[0].entry["mean"]
    assert CALLS == [1, 1] and after != before
    assert after == pytest.approx(float(load_dataset("mnist", "train", own_root)
                                        .images[:10].float().mean()))


@needs_mnist
def test_dataset_id_follows_content_and_checks_every_file(own_root, monkeypatch):
    monkeypatch.setattr(data_mod, "_MD5", {})
    a = dataset_id("mnist", own_root)
    labels = own_root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    raw = bytearray(labels.read_bytes())
    raw[8] = (raw[8] + 1) % 10
    labels.write_bytes(bytes(raw))
    assert dataset_id("mnist", own_root) != a
    labels.write_bytes(bytes(raw[:-5]))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte is truncated"):
        dataset_id("mnist", own_root)


@needs_mnist
def test_a_chapter_checks_its_data_at_the_start(own_root):
    """``params.validate`` (every chapter's first cell) checks the files, cached or not."""
    from recos_utils.core.params import validate

    ns = dict(QUICK=True, DEVICE="cpu", SEED=0, DATA_DIR=str(own_root), RESULTS_DIR=None)
    assert validate(ns).DATA_DIR == str(own_root)
    with open(_train_file(own_root), "r+b") as f:
        f.truncate(1_000_000)
    with pytest.raises(DataError, match="truncated"):
        validate(ns)


def test_a_unit_another_process_is_training_is_waited_for_and_loaded_not_retrained(store):
    """Two chapters side by side (``recos-book run --jobs 2``) ask for one model: the one that
    claims its store entry trains it; the other waits on the claim, then loads the entry."""
    import threading

    from recos_utils.core import cache, trainer

    spec = Spec(NO_DATA, {"id": "shared", "cost": 1.0})
    path = store / f"{spec_key(spec)}.pt"
    done = threading.Event()
    with cache.claim([path]):                         # "the other chapter" is training it
        t = threading.Thread(target=lambda: (trainer._train(NO_DATA, [spec.config], (), "cpu",
                                                            None, [path]), done.set()))
        t.start()
        assert not done.wait(1.0)                     # blocked on the claim, not training
        cache.save_entry(path, {"history": {"id": "shared", "by": "the other chapter"}})
    t.join(30)
    assert done.is_set() and CALLS == []              # loaded what the other one wrote
    got = train_all([spec], n_workers=1)[0]
    assert got.history["by"] == "the other chapter" and CALLS == []
    # without an entry behind the claim, the unit trains (once) when the claim is released
    path.unlink()
    trainer._train(NO_DATA, [spec.config], (), "cpu", None, [path])
    assert CALLS == ["shared"] and cache.load_entry(path)["history"] == {"id": "shared"}
