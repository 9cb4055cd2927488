"""The book's photographs: scikit-image's bundled pictures, by name (Chapters 2, 4, 5).

The paper shows its points on natural images (the cat of its sign-confusion figure, the
photographs behind the digits of its background experiment, AlexNet's inputs). The book
uses the photographs that ship inside scikit-image (``skimage.data``); the ones listed in
the chapters load **without network access** (others are fetched with pooch on first use).
This module is the one place that loads them:

* ``read(name)``: the photograph as scikit-image stores it, uint8, H x W (grey) or
  H x W x 3 (colour; an alpha channel is dropped); ``stereo_motorcycle``, a stereo pair,
  gives its left view;
* ``rgb(name)``: the same as RGB uint8, H x W x 3 (a grey photograph repeated into three
  channels);
* ``grey(name)``: its luminance as float64 in [0, 1], H x W (``luminance``: the ITU-R 709
  weights of ``skimage.color.rgb2gray``).

Arrays returned by ``read`` are cached and read-only; ``rgb`` and ``grey`` return new arrays.
"""
from __future__ import annotations

import functools

import numpy as np

__all__ = ["read", "rgb", "grey", "luminance"]


@functools.lru_cache(maxsize=None)
def read(name: str) -> np.ndarray:
    """``skimage.data.<name>()`` as uint8, H x W or H x W x 3 (read-only, cached).

    Raises ``ValueError`` for a photograph that is not 8-bit, and whatever scikit-image
    raises for one it cannot load (an unknown name, a download that fails offline).
    """
    import skimage.data

    if name == "stereo_motorcycle":
        img = skimage.data.stereo_motorcycle()[0]
    else:
        img = getattr(skimage.data, name)()
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise ValueError(f"photograph {name!r} is not an 8-bit image ({img.dtype})")
    if img.ndim == 3:
        img = img[..., :3]
    img = np.ascontiguousarray(img)
    img.setflags(write=False)
    return img


def rgb(name: str) -> np.ndarray:
    """The photograph as RGB uint8, H x W x 3 (grey ones repeated into three channels)."""
    img = read(name)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.array(img)


def luminance(image: np.ndarray) -> np.ndarray:
    """The luminance of an image, float64 H x W in [0, 1] (``skimage.color.rgb2gray``).

    Takes uint8 or float in [0, 1], grey (H x W, returned as float) or RGB (H x W x 3).
    """
    from skimage.color import rgb2gray
    from skimage.util import img_as_float

    img = img_as_float(np.asarray(image))
    if img.ndim == 3:
        img = rgb2gray(img[..., :3])
    return np.ascontiguousarray(img, dtype=np.float64)


def grey(name: str) -> np.ndarray:
    """The photograph's luminance, float64 H x W in [0, 1]."""
    return luminance(read(name))
