"""A CNN as a cascade of RECOS units, d = B_L ... B_1 x with B_l = R o A_l (Chapter 5).

Kuo (2016), last section, as restated in Kuo (2017): a CNN is the cascade

    d = B_L B_{L-1} ... B_1 x,      B_l = R o A_l,

where A_l correlates its input with the l-th layer's anchor vectors (the rows of the weight
matrix, plus the bias) and R is the rectifier. The paper illustrates this on AlexNet
(Krizhevsky et al. 2012). This module provides, for Chapter 5:

* **weights**: torchvision's AlexNet with the ImageNet weights ``IMAGENET1K_V1`` through
  torchvision's own weights API (``load_imagenet_alexnet``: the file is looked for in the
  torch hub cache, ``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth``, and downloaded
  if absent). Where they cannot be had (offline), ``load_networks("auto")`` falls back to
  :class:`MiniAlexNet`, AlexNet's layer pattern (5 conv + 3 fc) scaled down to 28x28 grey
  images and *trained here* on MNIST or Fashion-MNIST (cached, several seeds in parallel
  through ``train_all``). Which weights were used is always reported
  (:attr:`Networks.weights`); random weights are never presented as trained ones.
* **inputs and outputs**: ``photographs`` (scikit-image's bundled photos, through
  :mod:`recos_utils.core.photos`), ``prepare_imagenet`` / ``prepare_grey`` (a photo as either
  network's input), ``topk`` (top classes of an input and of its grey-scale reversal),
  ``anchor_images`` (conv1's anchors as images).

The rest of Chapter 5 lives beside the concepts it uses: the cascade's stages and hooks in
:mod:`recos_utils.core.recos` (``recos_stages``, ``record_cascade``, ``stage_errors``,
``zero_fractions``), the anchors on the sphere in :mod:`recos_utils.core.sphere` and
:mod:`recos_utils.core.sphere_null`, the chapter's readings in :mod:`recos_utils.chapters.ch5_alexnet_report`
and its figures in :mod:`recos_utils.chapters.ch5_alexnet_figures`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn as nn

from recos_utils.core import photos as _photos
from recos_utils.core.data import load_dataset, reverse_grey
from recos_utils.core.device import resolve_device
from recos_utils.core.train import RECIPE, Recipe, evaluate, fit
from recos_utils.core.trainer import Kind, Spec, entry, train_all

__all__ = [
    "IMAGENET", "WeightsUnavailable", "imagenet_weights", "imagenet_file", "sha256_matches",
    "load_imagenet_alexnet", "MiniAlexNet", "fallback_config", "FALLBACK",
    "Networks", "load_networks", "PHOTOS", "photographs", "grey_image", "prepare_imagenet",
    "prepare_grey", "topk", "anchor_images",
]

#: The name of torchvision's ImageNet weights for AlexNet.
IMAGENET = "IMAGENET1K_V1"


# --------------------------------------------------------------------------- weights
class WeightsUnavailable(RuntimeError):
    """The ImageNet weights could not be loaded; the message names the file and the fix.

    ``reason`` is the short why (file name and error, no folder), for a chapter's text."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


def imagenet_weights():
    """torchvision's ``AlexNet_Weights.IMAGENET1K_V1`` (url, transforms, meta["categories"])."""
    from torchvision.models import AlexNet_Weights

    return AlexNet_Weights.IMAGENET1K_V1


def imagenet_file() -> Path:
    """Where torchvision looks for the weights: ``<torch hub dir>/checkpoints/<url file name>``.

    The hub dir is ``$TORCH_HOME/hub`` (default ``~/.cache/torch/hub``), exactly as
    ``torch.hub.load_state_dict_from_url`` computes it.
    """
    name = os.path.basename(urlparse(imagenet_weights().url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def sha256_matches(path: Path) -> bool | None:
    """Does the file's SHA-256 start with the hash prefix in its name (``-7be5be79.``)?

    torch.hub checks this prefix only while downloading, never for a file already in the
    cache, so a file put there by hand is checked here. ``None`` if the name has no prefix.
    """
    m = torch.hub.HASH_REGEX.search(path.name)
    if not m:
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest().startswith(m.group(1))


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(before)


def _fix_text(path: Path) -> str:
    return (f"Fix: run once with network access (torchvision downloads "
            f"{imagenet_weights().url}), or copy that file to {path} (the folder is "
            f"$TORCH_HOME/hub/checkpoints, default ~/.cache/torch/hub/checkpoints); or set "
            f"WEIGHTS='auto' (falls back to a network trained here) or WEIGHTS='fallback'.")


def load_imagenet_alexnet(download: bool = True, timeout: float = 30.0):
    """torchvision's AlexNet with the ImageNet weights, loaded through the weights API.

    Calls ``torchvision.models.alexnet(weights=AlexNet_Weights.IMAGENET1K_V1)``, which reads
    :func:`imagenet_file` and downloads it first if it is absent (``download=False`` refuses
    to try). Returns ``(model in eval mode, info)`` with ``info = {"file": name,
    "sha256_ok": bool | None}``. Raises :class:`WeightsUnavailable` naming the file
    expected and the fix when the file is absent and cannot be downloaded, or unreadable.
    """
    import torchvision

    path = imagenet_file()
    if not path.is_file() and not download:
        raise WeightsUnavailable(f"the ImageNet weights of AlexNet ({IMAGENET}) are not in the "
                                 f"torch hub cache: {path} does not exist. {_fix_text(path)}",
                                 f"{path.name} is not in the torch hub cache (no download "
                                 f"was tried)")
    try:
        with _socket_timeout(timeout), contextlib.redirect_stdout(io.StringIO()):
            model = torchvision.models.alexnet(weights=imagenet_weights(), progress=False)
    except Exception as e:  # offline (URLError), refused, corrupted or foreign file ...
        why = f"{type(e).__name__}: {e}".splitlines()[0]
        state = "is present but could not be loaded" if path.is_file() else "is absent and " \
            "could not be downloaded"
        raise WeightsUnavailable(f"the ImageNet weights of AlexNet ({IMAGENET}) are not "
                                 f"available: {path} {state} ({why}). {_fix_text(path)}",
                                 f"{path.name} {state} ({why})") from e
    return model.eval(), {"file": path.name, "sha256_ok": sha256_matches(path)}


# --------------------------------------------------------------------------- the fallback
class MiniAlexNet(nn.Module):
    """AlexNet's layer pattern at 28x28 grey input: the fallback when ImageNet weights are absent.

    Same structure as ``torchvision.models.AlexNet`` (``features``, ``avgpool``,
    ``classifier``): conv1-conv5, each followed by ReLU, overlapping 3x3/2 max pooling after
    conv1, conv2 and conv5; then fc6, fc7 (each with ReLU) and the classifier fc8. Scaled
    down: 5x5 kernels (stride 1) in conv1/conv2 instead of 11x11/4 and 5x5, 3x3 in
    conv3-conv5 as in AlexNet, channel widths 16-32-48-32-32 instead of 64-192-384-256-256,
    256-unit fc layers instead of 4096, and no dropout (it trains for only a few epochs).
    Input: float N x 1 x 28 x 28 in [0, 1] (``train.to_input``).
    """

    def __init__(self, widths=(16, 32, 48, 32, 32), hidden: int = 256, n_classes: int = 10):
        super().__init__()
        w = list(widths)
        self.widths, self.hidden = tuple(w), hidden
        self.features = nn.Sequential(
            nn.Conv2d(1, w[0], 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),        # 28 -> 13
            nn.Conv2d(w[0], w[1], 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),     # 13 -> 6
            nn.Conv2d(w[1], w[2], 3, padding=1), nn.ReLU(),
            nn.Conv2d(w[2], w[3], 3, padding=1), nn.ReLU(),
            nn.Conv2d(w[3], w[4], 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),     # 6 -> 2
        )
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(
            nn.Linear(w[4] * 4, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def fallback_config(dataset: str = "fashion-mnist", recipe: Recipe = RECIPE,
                    n_train: int | None = None, seed: int = 0,
                    n_test: int | None = None) -> dict:
    """The full config (and cache key) of one fallback network."""
    return {"widths": [16, 32, 48, 32, 32],
            "hidden": 256, "dataset": dataset, "recipe": dataclasses.asdict(recipe),
            "n_train": n_train, "seed": seed, "n_test": n_test}


def _build_fallback(config: dict, device: str, data_dir) -> dict:
    """Train one MiniAlexNet (the ``FALLBACK`` kind); also measure its test accuracy on the
    original and the grey-scale-reversed test set, so that both are cached with it."""
    dev = resolve_device(device)
    ds = load_dataset(config["dataset"], "train", data_dir).subset(config["n_train"])
    torch.manual_seed(config["seed"])
    model = MiniAlexNet(config["widths"], config["hidden"])
    hist = fit(model, ds.images, ds.labels, recipe=Recipe.from_dict(config["recipe"]),
               seed=config["seed"],
               device=dev, desc=f"MiniAlexNet seed {config['seed']}")
    test = load_dataset(config["dataset"], "test", data_dir).subset(config["n_test"])
    hist["test_acc"] = evaluate(model, test.images, test.labels)
    hist["test_acc_reversed"] = evaluate(model, reverse_grey(test.images), test.labels)
    return entry(model, hist)


def _rebuild_fallback(config: dict, e: dict) -> MiniAlexNet:
    model = MiniAlexNet(config["widths"], config["hidden"])
    model.load_state_dict(e["state_dict"])
    return model.eval()


#: The stand-in network, trained here when AlexNet's ImageNet weights cannot be had.
FALLBACK = Kind("mini_alexnet", _build_fallback, _rebuild_fallback)


@dataclass
class Networks:
    """The networks a chapter analyses, and which weights they carry."""

    weights: str                      # "IMAGENET1K_V1" or "fallback:MiniAlexNet/<dataset>"
    kind: str                         # "imagenet" or "fallback"
    models: list[nn.Module]           # one (ImageNet) or one per seed (fallback)
    categories: list[str]             # class names
    note: str                         # why the fallback was used, or the file loaded (short)
    sha256_ok: bool | None = None     # ImageNet file checksum matches torchvision's url
    histories: list[dict] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    dataset: str | None = None

    @property
    def grey(self) -> bool:
        """True for the fallback (28x28 grey input), False for ImageNet AlexNet (224 RGB)."""
        return self.kind == "fallback"


_CLASSES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                      "Shirt", "Sneaker", "Bag", "Ankle boot"],
}


def load_networks(weights: str = "auto", *, dataset: str = "fashion-mnist", seeds=(0,),
                  recipe: Recipe = RECIPE, n_train: int | None = None, n_test: int | None = None,
                  device: str = "cpu", data_dir=None, download: bool = True) -> Networks:
    """The networks for ``weights`` = "auto" | "imagenet" | "fallback".

    "imagenet": torchvision's AlexNet with ImageNet weights, or :class:`WeightsUnavailable`.
    "fallback": MiniAlexNet trained here on ``dataset``, one per seed.
    "auto": ImageNet weights where they can be had, else the fallback, with the reason.
    """
    if weights not in ("auto", "imagenet", "fallback"):
        raise ValueError(f"unknown weights {weights!r}; allowed: auto, imagenet, fallback")
    note = ""
    if weights in ("auto", "imagenet"):
        try:
            model, info = load_imagenet_alexnet(download=download)
        except WeightsUnavailable as e:
            if weights == "imagenet":
                raise
            note = e.reason
        else:
            dev = resolve_device(device)
            return Networks(IMAGENET, "imagenet", [model.to(dev)],
                            list(imagenet_weights().meta["categories"]),
                            f"loaded {info['file']} through torchvision's weights API",
                            info["sha256_ok"])
    specs = [Spec(FALLBACK, fallback_config(dataset, recipe, n_train, s, n_test=n_test))
             for s in seeds]
    runs = train_all(specs, device=device, data_dir=data_dir)
    return Networks(f"fallback:MiniAlexNet/{dataset}", "fallback", [r.model for r in runs],
                    _CLASSES[dataset], note or "WEIGHTS='fallback' was requested",
                    None, [r.history for r in runs], list(seeds), dataset)


# --------------------------------------------------------------------------- photographs
#: Photographs bundled with scikit-image (they load offline); the cat comes first.
PHOTOS = ("chelsea", "astronaut", "coffee", "camera", "rocket", "coins", "moon", "clock",
          "grass", "gravel", "brick", "hubble_deep_field")


def photographs(names=PHOTOS) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Load scikit-image's photographs as float RGB arrays (H x W x 3, values in [0, 1]).

    Grey photographs are repeated into three channels (``photos.rgb``). Returns
    ``(photos, skipped)``: ``skipped`` maps a name that did not load (some need a
    download) to the reason.
    """
    from skimage.util import img_as_float

    photos, skipped = {}, {}
    for name in names:
        try:
            img = _photos.rgb(name)
        except Exception as e:  # missing optional download (pooch), no network ...
            skipped[name] = f"{type(e).__name__}: {e}".splitlines()[0]
            continue
        photos[name] = np.ascontiguousarray(img_as_float(img))
    return photos, skipped


def grey_image(photo: np.ndarray) -> np.ndarray:
    """The luminance of an RGB photograph (H x W, in [0, 1]): ``photos.luminance``."""
    return _photos.luminance(photo)


def prepare_imagenet(photo: np.ndarray, grey: bool = False, reverse: bool = False) -> torch.Tensor:
    """A photograph as AlexNet's input (3 x 224 x 224) through the weights' own transforms
    (resize 256, centre crop 224, ImageNet normalisation). ``grey`` keeps only the
    luminance (three equal channels); ``reverse`` applies the grey-scale reversal 1 - x
    (x -> 255 - x on a 0-255 scale) before the normalisation."""
    img = np.repeat(grey_image(photo)[:, :, None], 3, axis=2) if grey else photo
    if reverse:
        img = reverse_grey(img)
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float()
    return imagenet_weights().transforms()(t)


def prepare_grey(photo: np.ndarray, size: int = 28, reverse: bool = False) -> torch.Tensor:
    """A photograph as the fallback's input (1 x size x size in [0, 1]): the luminance, its
    central square crop, resized with anti-aliasing (a grey thumbnail of the photo)."""
    from skimage.transform import resize

    g = grey_image(photo)
    h, w = g.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    g = resize(g[top:top + s, left:left + s], (size, size), anti_aliasing=True)
    g = np.clip(g, 0.0, 1.0)
    if reverse:
        g = reverse_grey(g)
    return torch.from_numpy(np.ascontiguousarray(g)).float()[None]


@torch.no_grad()
def topk(model: nn.Module, x: torch.Tensor, categories: list[str], k: int = 5):
    """The ``k`` most probable classes of each input: ``[[(name, probability), ...], ...]``."""
    dev = next(model.parameters()).device
    model.eval()
    prob = torch.softmax(model(x.to(dev)).double(), dim=1).cpu()
    p, i = prob.topk(k, dim=1)
    return [[(categories[j], float(q)) for q, j in zip(pr, ir.tolist())] for pr, ir in zip(p, i)]


def anchor_images(conv: nn.Conv2d) -> torch.Tensor:
    """conv1's anchors as images: K x k x k x 3 in [0, 1] (RGB, each rescaled to its own
    range) for colour input, K x k x k (raw values, for a zero-centred colour map) for grey."""
    w = conv.weight.detach().cpu()
    if w.shape[1] == 1:
        return w[:, 0]
    lo = w.amin(dim=(1, 2, 3), keepdim=True)
    hi = w.amax(dim=(1, 2, 3), keepdim=True)
    return ((w - lo) / (hi - lo).clamp_min(1e-12)).permute(0, 2, 3, 1)
