"""Digits on natural backgrounds, the mnist-back-image recipe (Chapter 4, Sec. 4.3).

Kuo (2016) retrains LeNet-5 on MNIST digits pasted on natural-image backgrounds (his figure
of one "2" on ten photographs) and reports accuracy "almost the same" as on clean digits.
The book rebuilds such data with the recipe of the "mnist-back-image" variation of
Larochelle et al. (2007):

1. cut a 28x28 patch out of a grey photograph at a random place;
2. reject the patch if its pixel variance (0..255 scale, population variance) is under
   :data:`VAR_MIN` = 1000, i.e. if it is nearly flat;
3. combine pixel-wise, ``image = max(digit, patch)`` (white ink stays white; the
   background can only brighten a pixel, never darken it).

The photographs are the ones that ship inside scikit-image and load **without network
access** (``skimage.data``; some of its images are fetched with pooch on first use and
fail offline: eagle, lily, kidney, brain, human_mitosis, skin, palisades_of_vogt, vortex,
nickel_solidification, protein_transport are therefore not used). Colour photographs are
converted to grey with the ITU-R 709 luma weights (those of ``skimage.color.rgb2gray``) and
rounded to uint8. ``skimage.data.cat`` is the same photograph as ``chelsea`` and is not
listed twice; ``stereo_motorcycle`` contributes its left view only.

Two test regimes, as Chapter 4 asks:

* ``"seen"``: backgrounds cut from the photographs of :data:`SEEN_PHOTOS`, the ones used
  for training, but from places no training patch touches. Each photograph is tiled into
  :data:`BLOCK` x :data:`BLOCK` blocks coloured like a chessboard; training patches lie
  inside white blocks, test patches inside black ones, so their pixels are disjoint;
* ``"unseen"``: backgrounds cut anywhere from the photographs of :data:`UNSEEN_PHOTOS`,
  which training never sees.

Everything is deterministic given a seed (``numpy.random.default_rng`` on a seed sequence
that includes the regime). :func:`hidden_fraction` measures how often the recipe hides the
digit: the share of stroke pixels whose background value equals or exceeds the ink.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from recos_utils.core import photos as _photos
from recos_utils.core.data import Dataset

__all__ = ["SEEN_PHOTOS", "UNSEEN_PHOTOS", "VAR_MIN", "SIZE", "BLOCK", "STROKE", "REGIMES",
           "photo", "patch_variance", "positions", "sample_patches", "combine",
           "on_backgrounds", "hidden_fraction", "hidden_stats", "acceptance", "coverage",
           "photo_summary", "plot_photos"]

#: Photographs whose patches are used for training (and, at other places, for the "seen" test).
SEEN_PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "coins", "brick", "grass", "rocket")
#: Photographs held out: only the "unseen" test regime cuts patches from them.
UNSEEN_PHOTOS = ("stereo_motorcycle", "gravel", "clock", "moon")
#: Patches with pixel variance below this (0..255 scale) are rejected (mnist-back-image).
VAR_MIN = 1000.0
#: Patch side (pixels): the MNIST image size.
SIZE = 28
#: Side of the chessboard blocks that keep training and "seen" test patches apart.
BLOCK = 64
#: A digit pixel counts as stroke (ink) from this value on (0..255).
STROKE = 128
#: Regimes of :func:`sample_patches`: (photographs, chessboard part).
REGIMES = {"train": (SEEN_PHOTOS, "white"), "seen": (SEEN_PHOTOS, "black"),
           "unseen": (UNSEEN_PHOTOS, "all")}

_LUMA = np.array([0.2125, 0.7154, 0.0721])


@functools.lru_cache(maxsize=None)
def photo(name: str) -> np.ndarray:
    """The grey uint8 version of ``skimage.data.<name>()`` (read-only array).

    Loaded by :func:`recos_utils.core.photos.read` (the left view of ``stereo_motorcycle``);
    colour photographs become ``rint(RGB @ _LUMA)`` (ITU-R 709 luma), grey ones are kept.
    """
    img = _photos.read(name)
    if img.ndim == 3:
        img = np.clip(np.rint(img.astype(np.float64) @ _LUMA), 0, 255).astype(np.uint8)
        img.setflags(write=False)
    return img


def patch_variance(img: np.ndarray, size: int = SIZE) -> np.ndarray:
    """Pixel variance of every ``size`` x ``size`` patch, indexed by its top-left corner.

    Exact (integer sums via integral images, population variance, ddof=0); returns a float64
    array of shape (H - size + 1, W - size + 1).
    """
    x = np.asarray(img, dtype=np.int64)
    s1 = np.pad(x.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    s2 = np.pad((x * x).cumsum(0).cumsum(1), ((1, 0), (1, 0)))

    def box(s):
        return s[size:, size:] - s[:-size, size:] - s[size:, :-size] + s[:-size, :-size]

    n = size * size
    b1, b2 = box(s1), box(s2)
    return (n * b2 - b1 * b1) / float(n * n)


def _in_part(r: np.ndarray, c: np.ndarray, part: str, size: int, block: int) -> np.ndarray:
    """Top-left corners (r, c) whose whole patch lies in one block of the given colour."""
    if part == "all":
        return np.ones(r.shape, dtype=bool)
    same_block = (r // block == (r + size - 1) // block) & (c // block == (c + size - 1) // block)
    white = ((r // block + c // block) % 2) == 0
    if part == "white":
        return same_block & white
    if part == "black":
        return same_block & ~white
    raise ValueError(f"unknown part {part!r}; allowed: white, black, all")


@functools.lru_cache(maxsize=None)
def positions(name: str, part: str = "all", size: int = SIZE, block: int = BLOCK,
              var_min: float = VAR_MIN) -> np.ndarray:
    """Top-left corners (K x 2, rows of (r, c)) of the accepted patches of one photograph.

    Accepted: pixel variance >= ``var_min`` and, for ``part`` "white" / "black", the whole
    patch inside one chessboard block of that colour ("all": anywhere).
    """
    v = _photo_variance(name, size)
    r, c = np.indices(v.shape)
    ok = (v >= var_min) & _in_part(r, c, part, size, block)
    out = np.stack([r[ok], c[ok]], axis=1)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=None)
def _photo_variance(name: str, size: int) -> np.ndarray:
    return patch_variance(photo(name), size)


def acceptance(name: str, size: int = SIZE, var_min: float = VAR_MIN) -> float:
    """Share of all patch places of a photograph that pass the variance rule."""
    return float((_photo_variance(name, size) >= var_min).mean())


def sample_patches(n: int, regime: str = "train", seed: int = 0, size: int = SIZE,
                   photos: tuple[str, ...] | None = None) -> dict:
    """``n`` background patches for ``regime`` ("train", "seen" or "unseen"), seeded.

    Each patch picks a photograph uniformly, then one of its accepted places uniformly.
    Returns ``{"patches": uint8 tensor n x size x size, "photo": int64 tensor n (index into
    "photos"), "corner": int64 tensor n x 2, "photos": the photograph names}``.
    """
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; allowed: {', '.join(REGIMES)}")
    names, part = REGIMES[regime]
    names = tuple(photos) if photos is not None else names
    rng = np.random.default_rng(np.random.SeedSequence([seed, list(REGIMES).index(regime)]))
    which = rng.integers(0, len(names), size=n)
    out = np.empty((n, size, size), dtype=np.uint8)
    corner = np.empty((n, 2), dtype=np.int64)
    for k, name in enumerate(names):
        idx = np.flatnonzero(which == k)
        if len(idx) == 0:
            continue
        pos = positions(name, part, size)
        if len(pos) == 0:
            raise ValueError(f"photograph {name!r} has no accepted {size}x{size} patch in "
                             f"part {part!r}")
        pick = pos[rng.integers(0, len(pos), size=len(idx))]
        img = photo(name)
        rows = pick[:, 0, None, None] + np.arange(size)[None, :, None]
        cols = pick[:, 1, None, None] + np.arange(size)[None, None, :]
        out[idx] = img[rows, cols]
        corner[idx] = pick
    return {"patches": torch.from_numpy(out), "photo": torch.from_numpy(which.astype(np.int64)),
            "corner": torch.from_numpy(corner), "photos": list(names)}


def combine(digits: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
    """The mnist-back-image combination: pixel-wise ``max(digit, patch)`` (uint8)."""
    if digits.dtype != torch.uint8 or patches.dtype != torch.uint8:
        raise TypeError("combine expects uint8 digits and patches (0..255)")
    return torch.maximum(digits, patches)


def hidden_fraction(digits: torch.Tensor, patches: torch.Tensor,
                    stroke: int = STROKE) -> torch.Tensor:
    """Per image: share of stroke pixels (digit >= ``stroke``) where the patch >= the ink.

    At such a pixel ``max(digit, patch)`` shows the background, so that part of the stroke
    is hidden. Images without stroke pixels give 0.
    """
    ink = digits >= stroke
    hidden = ink & (patches >= digits)
    n_ink = ink.flatten(1).sum(1)
    return hidden.flatten(1).sum(1).float() / n_ink.clamp_min(1).float()


def on_backgrounds(ds: Dataset, regime: str, seed: int = 0) -> tuple[Dataset, dict]:
    """``ds`` with every image put on a background of ``regime``; also returns the patches.

    The second value is :func:`sample_patches`' dict plus ``"hidden"`` (per-image
    :func:`hidden_fraction`).
    """
    bg = sample_patches(len(ds), regime, seed)
    bg["hidden"] = hidden_fraction(ds.images, bg["patches"])
    images = combine(ds.images, bg["patches"])
    return Dataset(images, ds.labels, ds.name, f"{ds.split}-background-{regime}"), bg


def coverage(name: str, part: str, size: int = SIZE) -> np.ndarray:
    """Boolean map of the pixels of a photograph that some accepted patch of ``part`` covers."""
    pos = positions(name, part, size)
    hits = np.zeros(photo(name).shape, dtype=np.int64)
    corners = np.zeros((hits.shape[0] + 1, hits.shape[1] + 1), dtype=np.int64)
    np.add.at(corners, (pos[:, 0], pos[:, 1]), 1)
    # a pixel is covered when some corner lies in the size x size window above-left of it
    s = np.pad(corners.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    r, c = np.indices(hits.shape)
    r0, c0 = np.maximum(r - size + 1, 0), np.maximum(c - size + 1, 0)
    count = s[r + 1, c + 1] - s[r0, c + 1] - s[r + 1, c0] + s[r0, c0]
    return count > 0


def photo_summary() -> dict:
    """Per photograph: regime, size, share of places passing the variance rule, the number
    of accepted places for training and for its test regime, and the pixels that training
    and test patches share (0 by construction)."""
    out = {}
    for name in SEEN_PHOTOS + UNSEEN_PHOTOS:
        seen = name in SEEN_PHOTOS
        out[name] = {
            "regime": "seen" if seen else "unseen", "shape": list(photo(name).shape),
            "acceptance": acceptance(name),
            "train_places": len(positions(name, "white")) if seen else 0,
            "test_places": len(positions(name, "black" if seen else "all")),
            "shared_pixels": int((coverage(name, "white") & coverage(name, "black")).sum())
            if seen else 0,
        }
    return out


def hidden_stats(hidden: torch.Tensor) -> dict:
    """Summary of per-image hidden-stroke shares: mean, and the share of images with none,
    >= 10 %, >= 30 % and >= 50 % of their stroke pixels hidden."""
    h = hidden.float()
    return {"mean": float(h.mean()), "none": float((h == 0).float().mean()),
            "ge_10": float((h >= 0.1).float().mean()), "ge_30": float((h >= 0.3).float().mean()),
            "ge_50": float((h >= 0.5).float().mean())}


def plot_photos(block: int = BLOCK, ncol: int = 4):
    """The photographs, with the chessboard that splits the seen ones; returns the figure.

    Seen photographs show their "seen"-test (black) blocks darkened and tinted; the training
    patches come from the untouched blocks. Unseen photographs are shown as they are.
    """
    import matplotlib.pyplot as plt

    names = list(SEEN_PHOTOS) + list(UNSEEN_PHOTOS)
    nrow = int(np.ceil(len(names) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.0 * ncol, 1.9 * nrow + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, name in zip(axes.flat, names):
        img = photo(name).astype(np.float64)
        rgb = np.repeat(img[..., None], 3, axis=2) / 255.0
        if name in SEEN_PHOTOS:
            r, c = np.indices(img.shape)
            black = ((r // block + c // block) % 2) == 1
            rgb[black] = 0.55 * rgb[black] + 0.45 * np.array([0.0, 0.45, 0.7])
        ax.imshow(rgb, interpolation="nearest")
        kind = "seen" if name in SEEN_PHOTOS else "unseen"
        ax.set_title(f"{name}\n({kind}, {acceptance(name):.0%} pass)", fontsize=7, pad=2)
    fig.tight_layout(pad=0.2)
    return fig
