"""The model store: atomic writes, checksums, weights-only loading, concurrency."""
import multiprocessing
import os
import warnings

import pytest
import torch

from recos_utils.core import cache
from recos_utils.core.trainer import Kind, Spec, spec_key, train_all


def cached(config, build, use_cache=True):
    """The store through the one entry point: a toy kind whose training is ``build()``."""
    kind = Kind("toy", lambda c, device, data_dir: build(), lambda c, e: e, datasets=lambda c: [])
    return train_all([Spec(kind, config)], use_cache=use_cache, n_workers=1)[0].entry


def stored(folder):
    """What the store folder holds besides its claim locks (``.locks``, empty lock files)."""
    return [p for p in folder.iterdir() if p.name != ".locks"] if folder.exists() else []


def key(config):
    return spec_key(Spec(Kind("toy", None, None, datasets=lambda c: []), config))


@pytest.fixture
def cdir(tmp_path, monkeypatch):
    monkeypatch.setenv("RECOS_CACHE_DIR", str(tmp_path / "c"))
    return tmp_path / "c"


def payload(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"state_dict": {"w": torch.randn(3, 4, generator=g), "b": torch.zeros(4)},
            "history": {"loss": [1.0, 0.5], "steps": 2}}


def test_round_trip_loads_with_weights_only(cdir):
    calls = []

    def build():
        calls.append(1)
        return payload()

    a = cached({"x": 1}, build)
    b = cached({"x": 1}, build)
    assert len(calls) == 1
    torch.testing.assert_close(a["state_dict"]["w"], b["state_dict"]["w"])
    assert b["history"] == {"loss": [1.0, 0.5], "steps": 2}
    files = stored(cdir)
    assert len(files) == 1 and files[0].suffix == ".pt"


def test_weights_only_refuses_arbitrary_objects(cdir, tmp_path):
    """An entry holding a pickled object (not tensors/containers) is refused and rebuilt."""
    path = cdir / (key({"evil": 1}) + ".pt")
    cdir.mkdir(parents=True)
    import hashlib
    import io
    buf = io.BytesIO()
    torch.save({"obj": Exotic()}, buf)
    data = buf.getvalue()
    path.write_bytes(hashlib.sha256(data).hexdigest().encode() + b"\n" + data)
    with pytest.warns(cache.CacheWarning, match="unreadable"):
        entry = cached({"evil": 1}, payload)
    assert "state_dict" in entry


class Exotic:
    pass


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "garbage"])
def test_corrupted_entry_is_detected_and_rebuilt(cdir, damage):
    cached({"x": 2}, payload)
    (path,) = stored(cdir)
    blob = bytearray(path.read_bytes())
    if damage == "flip":
        blob[-10] ^= 0xFF
    elif damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "empty":
        blob = bytearray()
    else:
        blob = bytearray(b"hello\nworld")
    path.write_bytes(bytes(blob))
    with pytest.warns(cache.CacheWarning, match="corrupted"):
        entry = cached({"x": 2}, lambda: payload(seed=5))
    torch.testing.assert_close(entry["state_dict"]["w"], payload(5)["state_dict"]["w"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = cached({"x": 2}, lambda: pytest.fail("must not rebuild"))
    torch.testing.assert_close(again["state_dict"]["w"], entry["state_dict"]["w"])


def test_failure_while_saving_leaves_nothing(cdir, monkeypatch):
    def boom(src, dst):
        raise KeyboardInterrupt  # e.g. Ctrl-C between write and rename

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        cached({"x": 3}, payload)
    assert stored(cdir) == []


def test_leftovers_of_a_killed_writer_are_swept_but_a_live_writers_file_is_not(cdir):
    path = cdir / f"{key({'x': 5})}.pt"
    cdir.mkdir(parents=True)
    old, live = path.with_name(path.name + ".abc.tmp"), path.with_name(path.name + ".def.tmp")
    other = cdir / "0123.pt.ghi.tmp"          # another entry's leftover is not ours to judge
    for f in (old, live, other):
        f.write_bytes(b"half-written")
    two_hours_ago = os.path.getmtime(old) - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    os.utime(other, (two_hours_ago, two_hours_ago))
    cached({"x": 5}, payload)
    assert path.exists() and not old.exists() and live.exists() and other.exists()


def test_failure_while_training_leaves_nothing(cdir):
    def build():
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        cached({"x": 4}, build)
    assert stored(cdir) == []


def _writer(cache_dir, seed, n):
    os.environ["RECOS_CACHE_DIR"] = cache_dir
    for _ in range(n):
        cache.save_entry(cache.cache_dir() / "shared.pt", payload(seed))


def test_concurrent_writers_never_leave_a_broken_entry(cdir):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(cdir), s, 30)) for s in (1, 2)]
    for p in procs:
        p.start()
    seen = 0
    while any(p.is_alive() for p in procs):
        entry = cache.load_entry(cdir / "shared.pt")  # must never warn or fail
        seen += entry is not None
    for p in procs:
        p.join()
        assert p.exitcode == 0
    entry = cache.load_entry(cdir / "shared.pt")
    w = entry["state_dict"]["w"]
    assert any(torch.equal(w, payload(s)["state_dict"]["w"]) for s in (1, 2))
    assert [p.name for p in stored(cdir)] == ["shared.pt"]  # no temporary files left


def test_disabled_cache_always_builds(cdir):
    calls = []
    for _ in range(2):
        cached({"x": 5}, lambda: calls.append(1) or payload(), use_cache=False)
    assert len(calls) == 2 and not cdir.exists()
