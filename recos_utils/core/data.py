"""Datasets as in-memory uint8 tensors (all chapters), and grey-scale reversal (Chapter 2).

The book trains on whole tensors held in memory, so a dataset is just two tensors:
``images`` (uint8, N x 28 x 28, 0 = black) and ``labels`` (int64, N).

Where the files are looked for, in order:

1. the ``root`` argument (a chapter's ``DATA_DIR`` parameter),
2. the environment variable ``RECOS_DATA_DIR``,
3. a per-user cache, ``$XDG_CACHE_HOME/recos_book/data`` (``~/.cache/recos_book/data``).

Under a root the files sit in torchvision's layout, ``<root>/MNIST/raw/`` and
``<root>/FashionMNIST/raw/``, uncompressed or gzipped. Fashion-MNIST is also found where
Debian's ``dataset-fashion-mnist`` package puts it. A root is only ever read: when the
files are missing, they are downloaded through torchvision's dataset classes into the
per-user cache (never into a data root), and where that fails one error names every
folder searched and how to fix it.

Files are parsed by :func:`read_idx`, which checks the magic number, the shape and the
size, and for the published MNIST files their checksums, so a truncated or corrupted
file is reported by name rather than as a reshape error.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "DATASETS", "DataError", "Dataset", "load_dataset", "read_idx", "reverse_grey",
    "data_roots", "user_cache_dir", "dataset_id",
]

#: Known datasets: the folder torchvision uses, the torchvision class, and system folders.
DATASETS = {
    "mnist": {"folder": "MNIST", "tv_class": "MNIST", "system": []},
    "fashion-mnist": {"folder": "FashionMNIST", "tv_class": "FashionMNIST",
                      "system": ["/usr/share/datasets/fashion-mnist"]},
}

_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}

# md5 of the uncompressed original files, where known (MNIST: LeCun et al.; the
# Fashion-MNIST files: Zalando Research, as shipped by Debian's dataset-fashion-mnist).
_MD5 = {
    ("mnist", "train-images-idx3-ubyte"): "6bbc9ace898e44ae57da46a324031adb",
    ("mnist", "train-labels-idx1-ubyte"): "a25bea736e30d166cdddb491f175f624",
    ("mnist", "t10k-images-idx3-ubyte"): "2646ac647ad5339dbf082846283269ea",
    ("mnist", "t10k-labels-idx1-ubyte"): "27ae3e4e09519cfbb04c329615203637",
    ("fashion-mnist", "train-images-idx3-ubyte"): "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    ("fashion-mnist", "train-labels-idx1-ubyte"): "9018921c3c673c538a1fc5bad174d6f9",
    ("fashion-mnist", "t10k-images-idx3-ubyte"): "8181f5470baa50b63fa0f6fddb340f0a",
    ("fashion-mnist", "t10k-labels-idx1-ubyte"): "15d484375f8d13e6eb1aabb0c3f46965",
}

_N = {"train": 60000, "test": 10000}


class DataError(RuntimeError):
    """A dataset file is missing, truncated or corrupted; the message says how to fix it."""


@dataclass(frozen=True)
class Dataset:
    """One split of a dataset, held in memory."""

    images: torch.Tensor  # uint8, N x 28 x 28
    labels: torch.Tensor  # int64, N
    name: str
    split: str

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int | None) -> "Dataset":
        """The first ``n`` examples (all of them for ``None``)."""
        if n is None or n >= len(self):
            return self
        return Dataset(self.images[:n], self.labels[:n], self.name, self.split)


def user_cache_dir() -> Path:
    """Per-user cache folder of the book (``$XDG_CACHE_HOME/recos_book``)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "recos_book"


def data_roots(root: str | os.PathLike | None = None) -> list[Path]:
    """The data roots searched, in order: ``root``, ``$RECOS_DATA_DIR``, the user cache."""
    roots = []
    if root is not None:
        roots.append(Path(root).expanduser())
    env = os.environ.get("RECOS_DATA_DIR")
    if env:
        roots.append(Path(env).expanduser())
    roots.append(user_cache_dir() / "data")
    return roots


def reverse_grey(images, white: float | None = None):
    """Grey-scale reversal, the book's one copy (Chapter 2, the black and the white cat):
    ``x -> 255 - x`` for uint8 images (0..255), ``x -> white - x`` for float images or
    arrays (``white`` = 1 on the networks' input scale [0, 1], the default)."""
    if isinstance(images, torch.Tensor) and images.dtype == torch.uint8:
        if white not in (None, 255):
            raise TypeError(f"uint8 images are reversed against 255, not white={white!r}")
        return 255 - images
    if isinstance(images, torch.Tensor) and not images.is_floating_point():
        raise TypeError(f"reverse_grey expects uint8 (0..255) or float images, got "
                        f"{images.dtype}")
    return (1.0 if white is None else white) - images


def read_idx(path: str | os.PathLike, *, expect_dims: int, expect_n: int | None = None,
             md5: str | None = None) -> np.ndarray:
    """Parse one idx file (plain or ``.gz``) into a uint8 array, checking it fully.

    Raises :class:`DataError` naming the file when the magic number, the number of
    dimensions, the item count, the size or the checksum is wrong.
    """
    path = Path(path)
    fix = (f"delete {path} and run again to download a fresh copy, or restore the original "
           f"file from its source")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"cannot read dataset file {path} ({e}); {fix}") from None
    if len(raw) < 4 + 4 * expect_dims:
        raise DataError(f"dataset file {path} is truncated ({len(raw)} bytes, no complete "
                        f"header); {fix}")
    zero, dtype_code, ndim = raw[0] << 8 | raw[1], raw[2], raw[3]
    if zero != 0 or dtype_code != 0x08 or ndim != expect_dims:
        raise DataError(f"dataset file {path} is not a uint8 idx file with {expect_dims} "
                        f"dimension(s) (magic bytes {raw[:4].hex()}); {fix}")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    if expect_n is not None and dims[0] != expect_n:
        raise DataError(f"dataset file {path} holds {dims[0]} items, expected {expect_n}; {fix}")
    need = 4 + 4 * ndim + int(np.prod(dims))
    if len(raw) != need:
        kind = "truncated" if len(raw) < need else "longer than its header says"
        raise DataError(f"dataset file {path} is {kind} ({len(raw)} bytes, expected {need}); "
                        f"{fix}")
    if md5 is not None and hashlib.md5(raw).hexdigest() != md5:
        raise DataError(f"dataset file {path} is corrupted (md5 {hashlib.md5(raw).hexdigest()}"
                        f", expected {md5}); {fix}")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _find(name: str, fname: str, roots: list[Path]) -> tuple[Path | None, list[Path]]:
    info = DATASETS[name]
    folders = [r / info["folder"] / "raw" for r in roots] + [Path(s) for s in info["system"]]
    for folder in folders:
        for candidate in (folder / fname, folder / (fname + ".gz")):
            if candidate.is_file():
                return candidate, folders
    return None, folders


def _download(name: str, cache_root: Path) -> str | None:
    """Try torchvision's download into the per-user cache; return an error text or None."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, DATASETS[name]["tv_class"])
    try:
        cache_root.mkdir(parents=True, exist_ok=True)
        for train in (True, False):
            cls(str(cache_root), train=train, download=True)
    except Exception as e:  # no network, refused, disk full ...
        return f"{type(e).__name__}: {e}".splitlines()[0]
    return None


def _locate(name: str, fname: str, roots: list[Path], download: bool) -> Path:
    """The path of one file of ``name``, downloading into the user cache where it can;
    else one :class:`DataError` naming every folder searched and the fix."""
    path, folders = _find(name, fname, roots)
    err = None
    if path is None and download:
        err = _download(name, roots[-1])
        path, folders = _find(name, fname, roots)
    if path is None:
        searched = "\n  ".join(str(f) for f in folders)
        why = f" Download through torchvision failed ({err})." if err else ""
        raise DataError(
            f"{name} file {fname} was not found. Searched:\n  {searched}\n{why} "
            f"Fix: put the four original {name} idx files (plain or .gz) under "
            f"<root>/{DATASETS[name]['folder']}/raw/ and pass that root as DATA_DIR or "
            f"set RECOS_DATA_DIR=<root>, or run once with network access.")
    return path


def _read(name: str, split: str, part: str, path: Path) -> np.ndarray:
    fname = _FILES[(split, part)]
    return read_idx(path, expect_dims=3 if part == "images" else 1, expect_n=_N[split],
                    md5=_MD5.get((name, fname)))


@functools.lru_cache(maxsize=16)
def _checked_id(name: str, stats: tuple) -> str:
    h = hashlib.sha256()
    for (split, part), (path, _size, _mtime) in zip(_FILES, stats):
        raw = _read(name, split, part, Path(path))       # every check of read_idx
        h.update(hashlib.sha256(raw.tobytes()).digest())
    return h.hexdigest()[:16]


def dataset_id(name: str = "mnist", root: str | os.PathLike | None = None, *,
               download: bool = True) -> str:
    """Checksum of the four files of dataset ``name`` (every chapter; what a cached model
    was trained on). Each file is checked as :func:`load_dataset` checks it (header, size,
    the published checksum where known), so a truncated or corrupted file raises the same
    :class:`DataError` here, even when every model is already in the store. Remembered per
    file path, size and modification time."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
    roots = data_roots(root)
    stats = []
    for key in _FILES:
        path = _locate(name, _FILES[key], roots, download)
        st = path.stat()
        stats.append((str(path.resolve()), st.st_size, st.st_mtime_ns))
    return _checked_id(name, tuple(stats))


def load_dataset(name: str = "mnist", split: str = "train",
                 root: str | os.PathLike | None = None, *, download: bool = True) -> Dataset:
    """Load ``split`` ("train" or "test") of dataset ``name`` ("mnist", "fashion-mnist").

    Returns uint8 images (N x 28 x 28) and int64 labels as a :class:`Dataset`.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
    if split not in _N:
        raise ValueError(f"unknown split {split!r}; allowed: train, test")
    roots = data_roots(root)
    arrays = {part: _read(name, split, part, _locate(name, _FILES[(split, part)], roots, download))
              for part in ("images", "labels")}
    labels = arrays["labels"]
    if labels.max() > 9:
        raise DataError(f"{name} {split} labels hold a value {int(labels.max())} > 9: the "
                        f"labels file is corrupted; delete it and download a fresh copy")
    return Dataset(torch.from_numpy(arrays["images"].copy()),
                   torch.from_numpy(labels.astype(np.int64)), name, split)
