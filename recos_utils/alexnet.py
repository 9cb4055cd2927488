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
  through ``train.run_jobs``). Which weights were used is always reported
  (:attr:`Networks.weights`); random weights are never presented as trained ones.
* **the cascade**: ``recos_stages`` names the stages (conv1..conv5, fc6, fc7: the layers
  followed by a rectifier; fc8 is the linear classifier), ``record_cascade`` records the
  input x_l, the correlations A_l x_l and the rectified output B_l x_l of every stage with
  forward hooks, ``stage_errors`` checks each recorded stage against the RECOS computation
  of Chapter 1 (``recos.recos_layer``, ``recos.rectified_correlation``).
* **anchors on the sphere**: ``mean_abs_cos`` (pairwise |cos| of anchors),
  ``expected_abs_cos`` (the exact value for random directions in R^N), ``layer_stats``
  (anchors and anchor-position vectors alpha_n = A^T e_n against Gaussian random vectors of
  the same shape), ``tsne_with_random`` (a 2-D t-SNE map of both).
* **rectification on real photographs**: ``photographs`` (scikit-image's bundled photos),
  ``prepare_imagenet`` / ``prepare_grey``, ``zero_fractions`` (fraction of responses each
  rectifier sets to zero), ``topk`` (top classes of a photo and of its grey-scale reversal).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import io
import math
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn as nn

from . import recos
from .data import load_dataset, reverse_grey
from .train import RECIPE, Recipe, evaluate, fit, resolve_device, run_jobs, to_input

__all__ = [
    "IMAGENET", "WeightsUnavailable", "imagenet_weights", "imagenet_file", "sha256_matches",
    "load_imagenet_alexnet", "MiniAlexNet", "fallback_config", "train_fallback",
    "Networks", "load_networks", "Stage", "recos_stages", "record_cascade", "stage_errors",
    "zero_fractions", "abs_cos_pairs", "mean_abs_cos", "mean_nn_cos", "expected_abs_cos",
    "null_abs_cos", "subsample", "gaussian_like", "layer_stats", "tsne_with_random", "PHOTOS",
    "photographs", "grey_image", "prepare_imagenet", "prepare_grey", "topk", "anchor_images",
    "cos_histograms", "tsne_grid", "cascade_figure", "zeroed_figure", "topk_figure",
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


def _arch_hash() -> str:
    """Hash of the fallback's source (enters the cache key: a changed network retrains)."""
    src = inspect.getsource(MiniAlexNet) + inspect.getsource(_build_fallback)
    return hashlib.sha256(src.encode()).hexdigest()[:16]


def fallback_config(dataset: str = "fashion-mnist", recipe: Recipe = RECIPE,
                    n_train: int | None = None, seed: int = 0,
                    n_test: int | None = None) -> dict:
    """The full config (and cache key) of one fallback network."""
    return {"kind": "mini_alexnet", "arch": _arch_hash(), "widths": [16, 32, 48, 32, 32],
            "hidden": 256, "dataset": dataset, "recipe": dataclasses.asdict(recipe),
            "n_train": n_train, "seed": seed, "n_test": n_test}


def _build_fallback(config: dict, device: str, data_dir) -> dict:
    """Train one MiniAlexNet (a ``run_jobs`` job); also measure its test accuracy on the
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
    return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "history": hist}


def train_fallback(dataset: str, seeds, *, recipe: Recipe = RECIPE, n_train: int | None = None,
                   n_test: int | None = None, device: str = "cpu", data_dir=None,
                   use_cache: bool = True) -> list[tuple[MiniAlexNet, dict]]:
    """Train (or load from the cache) one MiniAlexNet per seed, several at once."""
    dev = str(resolve_device(device))
    configs = [fallback_config(dataset, recipe, n_train, s, n_test=n_test) for s in seeds]
    entries = run_jobs([(c, _build_fallback, (c, dev, data_dir)) for c in configs],
                       device=dev, use_cache=use_cache)
    out = []
    for c, e in zip(configs, entries):
        model = MiniAlexNet(c["widths"], c["hidden"])
        model.load_state_dict(e["state_dict"])
        out.append((model.eval(), e["history"]))
    return out


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
    pairs = train_fallback(dataset, list(seeds), recipe=recipe, n_train=n_train,
                           n_test=n_test, device=device, data_dir=data_dir)
    return Networks(f"fallback:MiniAlexNet/{dataset}", "fallback", [m for m, _ in pairs],
                    _CLASSES[dataset], note or "WEIGHTS='fallback' was requested",
                    None, [h for _, h in pairs], list(seeds), dataset)


# --------------------------------------------------------------------------- the cascade
@dataclass
class Stage:
    """One stage B_l = R o A_l: the correlating layer A_l and its rectifier R (or None)."""

    name: str
    layer: nn.Module
    rectifier: nn.Module | None


def recos_stages(model: nn.Module, rectified_only: bool = True) -> list[Stage]:
    """The layers of an AlexNet-like network in forward order, named as in AlexNet.

    Convolutions are conv1, conv2, ...; linear layers continue the count (fc6, fc7, fc8 in
    AlexNet). A layer's rectifier is the ReLU module that directly follows it. With
    ``rectified_only`` the last layer (the classifier, no rectifier) is left out.
    """
    mods = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.ReLU))]
    stages, n = [], 0
    for i, m in enumerate(mods):
        if isinstance(m, nn.ReLU):
            continue
        n += 1
        name = f"conv{n}" if isinstance(m, nn.Conv2d) else f"fc{n}"
        rect = mods[i + 1] if i + 1 < len(mods) and isinstance(mods[i + 1], nn.ReLU) else None
        if rect is not None or not rectified_only:
            stages.append(Stage(name, m, rect))
    return stages


@torch.no_grad()
def record_cascade(model: nn.Module, x: torch.Tensor, stages: list[Stage] | None = None):
    """Run ``model`` on ``x``, recording every stage with forward hooks.

    Returns ``(records, output)`` with ``records[name] = {"input": x_l, "pre": A_l x_l,
    "post": R(A_l x_l) = B_l x_l}`` (copies: AlexNet's in-place ReLU would otherwise
    overwrite ``pre``) and the network's output.
    """
    stages = recos_stages(model) if stages is None else stages
    records: dict[str, dict[str, torch.Tensor]] = {}
    handles = []

    def on_layer(rec):
        def hook(mod, inp, out):
            rec["input"] = inp[0].detach().clone()
            rec["pre"] = out.detach().clone()
        return hook

    def on_rect(rec):
        def hook(mod, inp, out):
            rec["post"] = out.detach().clone()
        return hook

    for st in stages:
        rec = records.setdefault(st.name, {})
        handles.append(st.layer.register_forward_hook(on_layer(rec)))
        if st.rectifier is not None:
            handles.append(st.rectifier.register_forward_hook(on_rect(rec)))
    was_training = model.training
    model.eval()
    try:
        out = model(x.to(next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return records, out


@torch.no_grad()
def stage_errors(records: dict, stages: list[Stage]) -> dict[str, float]:
    """Largest |difference| between each recorded B_l x_l and the RECOS computation of it.

    Convolutions are recomputed with ``recos.recos_layer`` (unfold into patches, correlate
    with the anchors, add the bias, rectify), linear layers with
    ``recos.rectified_correlation``; both use only the recorded input x_l and the weights.
    """
    err = {}
    for st in stages:
        rec = records[st.name]
        x = rec["input"]
        if isinstance(st.layer, nn.Conv2d):
            y = recos.recos_layer(x, st.layer)
        else:
            b = None if st.layer.bias is None else st.layer.bias.detach()
            y = recos.rectified_correlation(x, recos.anchors(st.layer), b)
        err[st.name] = (y - rec["post"]).abs().max().item()
    return err


@torch.no_grad()
def zero_fractions(model: nn.Module, x: torch.Tensor, batch_size: int = 256,
                   stages: list[Stage] | None = None) -> dict[str, torch.Tensor]:
    """Per input, the fraction of each stage's responses that its rectifier sets to zero.

    A response is zeroed when its correlation A_l x_l is <= 0. Returns ``{name: tensor of
    len(x)}``; inputs are float tensors (the network's input format), run in batches on the
    model's device.
    """
    stages = recos_stages(model) if stages is None else stages
    dev = next(model.parameters()).device
    parts: dict[str, list[torch.Tensor]] = {s.name: [] for s in stages}
    for i in range(0, len(x), batch_size):
        records, _ = record_cascade(model, x[i:i + batch_size].to(dev), stages)
        for s in stages:
            pre = records[s.name]["pre"]
            parts[s.name].append((pre <= 0).flatten(1).float().mean(1).cpu())
    return {k: torch.cat(v) for k, v in parts.items()}


# --------------------------------------------------------------------------- anchors on the sphere
def _unit(v: torch.Tensor) -> torch.Tensor:
    v = v.double()
    return v / v.norm(dim=1, keepdim=True).clamp_min(1e-300)


def abs_cos_pairs(v: torch.Tensor) -> torch.Tensor:
    """|cos| of every pair i < j of rows of ``v`` (K x N), as a vector of K(K-1)/2 values."""
    u = _unit(v)
    g = u @ u.T
    i, j = torch.triu_indices(len(u), len(u), offset=1)
    return g[i, j].abs()


def mean_abs_cos(v: torch.Tensor) -> float:
    """Mean |cos| over all pairs of rows of ``v`` (K x N): 0 for orthogonal anchors."""
    return abs_cos_pairs(v).mean().item()


def mean_nn_cos(v: torch.Tensor) -> float:
    """Mean over rows of the cosine to the nearest other row (how tightly rows cluster)."""
    u = _unit(v)
    g = u @ u.T
    g.fill_diagonal_(-2.0)
    return g.max(dim=1).values.mean().item()


def expected_abs_cos(n: int) -> float:
    """E|cos| between two independent uniformly random directions in R^n (n >= 2).

    The cosine t has density proportional to (1 - t^2)^((n-3)/2) on [-1, 1], so
    E|t| = Gamma(n/2) / (sqrt(pi) Gamma((n+1)/2)), about sqrt(2 / (pi n)) for large n.
    """
    return math.exp(math.lgamma(n / 2) - math.lgamma((n + 1) / 2)) / math.sqrt(math.pi)


def null_abs_cos(n: int, k: int) -> tuple[float, float]:
    """Mean and standard deviation of ``mean_abs_cos`` for k independent random directions
    in R^n: the chance level an anchor set is compared with.

    For independent isotropic vectors the K(K-1)/2 pair cosines are pairwise independent
    (given u_i, cos(u_i, u_j) and cos(u_i, u_k) are functions of independent u_j, u_k whose
    laws do not depend on u_i), so Var(mean) = Var(|t|) / M with M = K(K-1)/2 pairs and
    Var(|t|) = E[t^2] - (E|t|)^2 = 1/n - (E|t|)^2.
    """
    e = expected_abs_cos(n)
    m = k * (k - 1) // 2
    return e, math.sqrt(max(1.0 / n - e * e, 0.0) / max(m, 1))


def subsample(v: torch.Tensor, max_rows: int, seed: int = 0) -> torch.Tensor:
    """At most ``max_rows`` rows of ``v``, chosen at random (seeded) if there are more."""
    if len(v) <= max_rows:
        return v
    g = torch.Generator().manual_seed(seed)
    return v[torch.randperm(len(v), generator=g)[:max_rows].sort().values]


def gaussian_like(v: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Gaussian random vectors of the same shape as ``v`` (seeded, double precision)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(v.shape, generator=g, dtype=torch.float64)


def layer_stats(layer: nn.Module, max_rows: int = 1024, seed: int = 0) -> dict:
    """Anchors and anchor-position vectors of one layer against Gaussian random vectors.

    Anchors: the K rows a_k of A (K x N). Anchor-position vectors: the N rows
    alpha_n = A^T e_n (N x K). Each set is subsampled to ``max_rows`` rows and compared with
    Gaussian random vectors of the same shape: mean pairwise |cos| and mean cosine to the
    nearest neighbour. ``expected_abs_cos_random`` is the exact value for random directions
    and ``abs_cos_z`` how many null standard deviations (``null_abs_cos``) above it the
    anchors lie.
    """
    a = recos.anchors(layer).cpu()
    apv = recos.anchor_position_vectors(a)
    out = {"n_anchors": a.shape[0], "dim": a.shape[1]}
    for key, v in (("", a), ("apv_", apv)):
        v = subsample(v, max_rows, seed)
        r = gaussian_like(v, seed + 1)
        out[f"{key}n_used"] = len(v)
        out[f"{key}mean_abs_cos"] = mean_abs_cos(v)
        out[f"{key}mean_abs_cos_random"] = mean_abs_cos(r)
        e, sd = null_abs_cos(v.shape[1], len(v))
        out[f"{key}expected_abs_cos_random"] = e
        out[f"{key}abs_cos_z"] = (out[f"{key}mean_abs_cos"] - e) / sd
        out[f"{key}mean_nn_cos"] = mean_nn_cos(v)
        out[f"{key}mean_nn_cos_random"] = mean_nn_cos(r)
    return out


def tsne_with_random(v: torch.Tensor, max_points: int = 150, seed: int = 0,
                     max_iter: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """A joint 2-D t-SNE map of the unit vectors of ``v``'s rows and of as many Gaussian
    random vectors of the same dimension. Returns (points of v, points of the random set).

    Both sets are normalised to the unit sphere, so map distances reflect angles (the chord
    2 sin(theta/2) of Chapter 1). Perplexity is min(30, (n - 1) / 3) for n points in all.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    v = subsample(v.detach().cpu(), max_points, seed)
    r = gaussian_like(v, seed + 1)
    x = torch.cat([_unit(v), _unit(r)]).numpy()
    perplexity = float(min(30.0, (len(x) - 1) / 3))
    # one thread: deterministic, and many times faster than oversubscribed OpenMP on a
    # busy machine (measured: 22 s -> 1.4 s for 300 points)
    with threadpool_limits(1):
        emb = TSNE(2, perplexity=perplexity, init="pca", random_state=seed,
                   max_iter=max_iter, n_jobs=1).fit_transform(x)
    return emb[:len(v)], emb[len(v):]


# --------------------------------------------------------------------------- photographs
#: Photographs bundled with scikit-image (they load offline); the cat comes first.
PHOTOS = ("chelsea", "astronaut", "coffee", "camera", "rocket", "coins", "moon", "clock",
          "grass", "gravel", "brick", "hubble_deep_field")


def photographs(names=PHOTOS) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Load scikit-image's photographs as float RGB arrays (H x W x 3, values in [0, 1]).

    Grey photographs are repeated into three channels. Returns ``(photos, skipped)``:
    ``skipped`` maps a name that did not load (some need a download) to the reason.
    """
    import skimage.data
    from skimage.util import img_as_float

    photos, skipped = {}, {}
    for name in names:
        try:
            img = getattr(skimage.data, name)()
        except Exception as e:  # missing optional download (pooch), no network ...
            skipped[name] = f"{type(e).__name__}: {e}".splitlines()[0]
            continue
        img = img_as_float(np.asarray(img))
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        photos[name] = np.ascontiguousarray(img[:, :, :3])
    return photos, skipped


def grey_image(photo: np.ndarray) -> np.ndarray:
    """The luminance of an RGB photograph (H x W, in [0, 1])."""
    from skimage.color import rgb2gray

    return rgb2gray(photo)


def prepare_imagenet(photo: np.ndarray, grey: bool = False, reverse: bool = False) -> torch.Tensor:
    """A photograph as AlexNet's input (3 x 224 x 224) through the weights' own transforms
    (resize 256, centre crop 224, ImageNet normalisation). ``grey`` keeps only the
    luminance (three equal channels); ``reverse`` applies the grey-scale reversal 1 - x
    (x -> 255 - x on a 0-255 scale) before the normalisation."""
    img = np.repeat(grey_image(photo)[:, :, None], 3, axis=2) if grey else photo
    if reverse:
        img = 1.0 - img
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
        g = 1.0 - g
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


# --------------------------------------------------------------------------- figures
def _plt():
    import matplotlib.pyplot as plt

    from .plots import COLORS

    return plt, COLORS


def cos_histograms(pairs: dict[str, torch.Tensor], random_pairs: dict[str, torch.Tensor],
                   title: str):
    """One panel per layer: histograms of pairwise |cos| of the anchors and of Gaussian
    random vectors of the same shape (means marked); returns the figure."""
    plt, colors = _plt()
    names = list(pairs)
    fig, axes = plt.subplots(1, len(names), figsize=(1.75 * len(names), 2.3), sharey=False)
    for ax, name in zip(np.atleast_1d(axes), names):
        a, r = pairs[name].numpy(), random_pairs[name].numpy()
        bins = np.linspace(0, max(a.max(), r.max(), 1e-3), 25)
        ax.hist(r, bins=bins, density=True, color="0.6", alpha=0.6, label="random")
        ax.hist(a, bins=bins, density=True, color=colors[0], alpha=0.6, label="anchors")
        ax.axvline(r.mean(), color="0.3", lw=1, ls="--")
        ax.axvline(a.mean(), color=colors[0], lw=1.2)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("|cos|", fontsize=8)
        ax.set_yticks([])
        ax.tick_params(labelsize=7)
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def tsne_grid(maps: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], title: str):
    """Rows: anchors, anchor-position vectors; columns: layers. Each panel is a t-SNE map
    of the layer's unit vectors (colour) and as many Gaussian random directions (grey)."""
    plt, colors = _plt()
    names = list(maps)
    rows = [("anchors", "anchors $a_k$"), ("apv", r"anchor-position $\alpha_n$")]
    fig, axes = plt.subplots(2, len(names), figsize=(1.75 * len(names), 3.9), squeeze=False)
    for j, name in enumerate(names):
        for i, (key, label) in enumerate(rows):
            ax = axes[i, j]
            emb, emb_r = maps[name][key]
            ax.scatter(emb_r[:, 0], emb_r[:, 1], s=5, color="0.65", label="random")
            ax.scatter(emb[:, 0], emb[:, 1], s=5, color=colors[i * 3], label=label)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if i == 0:
                ax.set_title(name, fontsize=9)
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def cascade_figure(image: np.ndarray, records: dict, stages: list[Stage], title: str):
    """The cascade on one input: the input, then for each conv stage B_l x the map of its
    most active channel, and the fc stages' response vectors (sorted)."""
    plt, colors = _plt()
    convs = [s.name for s in stages if isinstance(s.layer, nn.Conv2d)]
    fcs = [s.name for s in stages if not isinstance(s.layer, nn.Conv2d)]
    fig = plt.figure(figsize=(1.45 * (len(convs) + 1), 3.9))
    gs = fig.add_gridspec(2, len(convs) + 1, height_ratios=[1.1, 1])
    ax = fig.add_subplot(gs[0, 0])
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
    ax.set_title("input x", fontsize=8)
    ax.axis("off")
    for j, name in enumerate(convs, start=1):
        post = records[name]["post"][0]
        k = int(post.flatten(1).mean(1).argmax())
        ax = fig.add_subplot(gs[0, j])
        ax.imshow(post[k].cpu().numpy(), cmap="magma")
        ax.set_title(f"$B_{j}$ ({name})\nchannel {k}, "
                     f"{post.shape[-2]}x{post.shape[-1]}", fontsize=7)
        ax.axis("off")
    half = (len(convs) + 1) // 2
    spans = [slice(0, half), slice(half, len(convs) + 1)]
    for (name, span), c in zip(zip(fcs, spans), colors):
        ax = fig.add_subplot(gs[1, span])
        post = records[name]["post"][0].cpu()
        v = post.sort(descending=True).values.numpy()
        ax.bar(np.arange(len(v)), v, width=1.0, color=c)
        zero = float((post == 0).float().mean())
        ax.set_title(f"$B_{len(convs) + fcs.index(name) + 1}$ ({name}): {len(v)} responses, "
                     f"sorted; {zero:.0%} are zero", fontsize=8)
        ax.set_xticks([])
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def zeroed_figure(fractions: dict[str, np.ndarray], labels: list[str], title: str):
    """Bars: per stage, the mean fraction of responses its rectifier zeroes; dots: each
    input (one row of ``fractions[name]`` per input)."""
    plt, colors = _plt()
    names = list(fractions)
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    means = [float(np.mean(fractions[n])) for n in names]
    ax.bar(names, means, color=colors[0], alpha=0.5, label="mean over photographs")
    rng = np.random.default_rng(0)
    for i, n in enumerate(names):
        f = np.asarray(fractions[n])
        ax.scatter(i + rng.uniform(-0.2, 0.2, len(f)), f, s=10, color=colors[3], zorder=3,
                   label="one photograph" if i == 0 else None)
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction zeroed by R")
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def topk_figure(images: list[np.ndarray], tops: list[list[tuple[str, float]]],
                titles: list[str], suptitle: str):
    """Each input above its top-k classes (horizontal bars of probability)."""
    plt, colors = _plt()
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(3.0 * n, 4.2), height_ratios=[1.2, 1],
                             squeeze=False)
    for j in range(n):
        ax = axes[0, j]
        img = images[j]
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
        ax.set_title(titles[j], fontsize=9)
        ax.axis("off")
        ax = axes[1, j]
        names = [t[0][:22] for t in tops[j]][::-1]
        probs = [t[1] for t in tops[j]][::-1]
        ax.barh(names, probs, color=colors[j % len(colors)])
        ax.set_xlim(0, 1)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("probability", fontsize=8)
    fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig
