"""Datasets in memory, grey-scale reversal, and clear errors for missing or bad files."""
import gzip
import struct

import numpy as np
import pytest
import torch

from recos_utils.core import data
from recos_utils.core.data import DataError, load_dataset, read_idx, reverse_grey
from conftest import needs_mnist

# Label counts of the original files (Y. LeCun et al.), an independent check of parsing.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@needs_mnist
def test_mnist_loads_as_uint8_tensors_with_the_published_label_counts():
    tr, te = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    assert tr.images.shape == (60000, 28, 28) and tr.images.dtype == torch.uint8
    assert te.images.shape == (10000, 28, 28) and te.labels.dtype == torch.int64
    assert tr.labels.bincount().tolist() == TRAIN_COUNTS
    assert te.labels.bincount().tolist() == TEST_COUNTS
    # digits are white on black: the border is background
    assert te.images[:, 0, :].float().mean() < 1 and te.images.float().mean() > 20


def test_reverse_grey_is_an_involution_mapping_0_to_255():
    x = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    r = reverse_grey(x)
    assert r.dtype == torch.uint8
    assert torch.equal(reverse_grey(r), x)
    assert torch.equal(r.int() + x.int(), torch.full_like(x, 255, dtype=torch.int32))
    f = x.float() / 255
    assert torch.allclose(reverse_grey(f), (255 - x).float() / 255, atol=1e-6)   # same map on [0, 1]
    assert torch.equal(reverse_grey(f, 2.0), 2.0 - f)
    with pytest.raises(TypeError, match="uint8"):
        reverse_grey(x.int())
    with pytest.raises(TypeError, match="against 255"):
        reverse_grey(x, 1.0)


def _idx_bytes(arr: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 8, arr.ndim) + b"".join(
        struct.pack(">I", d) for d in arr.shape) + arr.astype(np.uint8).tobytes()


def write_fake_dataset(root, n_train=60000, n_test=10000, gz=False):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    files = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
             "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
             "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
             "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test)}
    for name, arr in files.items():
        blob = _idx_bytes(arr)
        if gz:
            (raw / (name + ".gz")).write_bytes(gzip.compress(blob))
        else:
            (raw / name).write_bytes(blob)
    return files


def test_read_idx_plain_and_gz_roundtrip(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(_idx_bytes(arr))
    (tmp_path / "a.gz").write_bytes(gzip.compress(_idx_bytes(arr)))
    for p in ("a", "a.gz"):
        np.testing.assert_array_equal(read_idx(tmp_path / p, expect_dims=3, expect_n=2), arr)


@pytest.mark.parametrize("fault,match", [
    ("truncate", "truncated"), ("magic", "not a uint8 idx file"), ("count", "holds 3 items"),
    ("extra", "longer than its header"), ("empty", "truncated"), ("badgz", "cannot read")])
def test_read_idx_names_the_file_and_the_fault(tmp_path, fault, match):
    arr = np.zeros((3, 28, 28), np.uint8)
    blob = _idx_bytes(arr)
    path = tmp_path / ("f.gz" if fault == "badgz" else "f")
    blob = {"truncate": blob[:-100], "magic": b"\x00\x00\x09\x03" + blob[4:], "count": blob,
            "extra": blob + b"xx", "empty": b"", "badgz": b"not gzip at all"}[fault]
    path.write_bytes(blob)
    with pytest.raises(DataError, match=match) as e:
        read_idx(path, expect_dims=3, expect_n=5 if fault == "count" else 3)
    assert str(path) in str(e.value) and ("delete" in str(e.value) or "restore" in str(e.value))


def test_checksum_catches_a_flipped_byte(tmp_path):
    arr = np.zeros((3, 28, 28), np.uint8)
    (tmp_path / "f").write_bytes(_idx_bytes(arr))
    import hashlib
    good = hashlib.md5(_idx_bytes(arr)).hexdigest()
    read_idx(tmp_path / "f", expect_dims=3, md5=good)
    arr[1, 5, 5] = 1
    (tmp_path / "f").write_bytes(_idx_bytes(arr))
    with pytest.raises(DataError, match="corrupted"):
        read_idx(tmp_path / "f", expect_dims=3, md5=good)


def test_root_argument_env_and_cache_order(tmp_path, monkeypatch):
    monkeypatch.setenv("RECOS_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    roots = data.data_roots(tmp_path / "arg")
    assert roots == [tmp_path / "arg", tmp_path / "env", tmp_path / "xdg" / "recos_book" / "data"]


def test_loads_from_a_root_in_torchvision_layout_gz_too(tmp_path, monkeypatch):
    monkeypatch.delenv("RECOS_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "_MD5", {})  # fake files: no published checksum applies
    files = write_fake_dataset(tmp_path / "root", gz=True)
    te = load_dataset("mnist", "test", tmp_path / "root", download=False)
    np.testing.assert_array_equal(te.images.numpy(), files["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(te.labels.numpy(), files["t10k-labels-idx1-ubyte"])


def test_missing_data_is_one_clear_error_naming_the_folders(tmp_path, monkeypatch):
    monkeypatch.delenv("RECOS_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    calls = []

    def offline(name, root):
        calls.append(root)
        return "URLError: no network"

    monkeypatch.setattr(data, "_download", offline)
    with pytest.raises(DataError) as e:
        load_dataset("mnist", "train", tmp_path / "nowhere")
    msg = str(e.value)
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in msg
    assert str(tmp_path / "xdg" / "recos_book" / "data" / "MNIST" / "raw") in msg
    assert "no network" in msg and "RECOS_DATA_DIR" in msg
    # the download goes to the per-user cache, never into a data root
    assert calls == [tmp_path / "xdg" / "recos_book" / "data"]
    assert not (tmp_path / "nowhere").exists()


def test_unknown_dataset_or_split():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'.*mnist, fashion-mnist"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match="unknown split"):
        load_dataset("mnist", "valid")
