"""One conv layer against two: the cascade, its algebra and its response to clutter (Chapter 4).

Kuo (2016), Sec. 4, asks what a two-layer cascade gives that one layer cannot. Linearised
(no rectifier), two layers compute ``z = B^T A^T x = C^T x`` with ``C = A B`` (the columns of
A and B are the anchor vectors of the two layers), one layer ``z = D^T x``: algebraically
the same family. The difference lies in the rectifier between them and in the
**anchor-position vectors** ``alpha_n = A^T e_n`` (the n-th element of every first-layer
anchor), through which the second layer weighs positions: ``c_nl = alpha_n . b_l``.

This module holds

* :class:`OneLayerNet`, the one-conv-layer counterpart of LeNet-5 (a 13x13 layer of 16
  anchors: receptive field 13 against LeNet-5's 14, 61,854 parameters against 61,706;
  :func:`receptive_field` and :func:`count_params` compute both), and :class:`Normalised`,
  which puts an input normalisation (per-image mean removal, or standardisation) in front
  of either network;
* the training job for :func:`recos_utils.train.run_jobs` (:func:`build_entry`, a
  module-level function) and :func:`train_nets`, which trains a list of configs in one
  parallel call, on clean or on background digits (:mod:`recos_utils.backgrounds`);
* the linear algebra check ``B^T A^T x = (A B)^T x`` (:func:`linear_cascade_check`), the
  anchor-position vectors and their variance per position (:func:`position_variance`),
  both built on :func:`recos_utils.recos.anchors` / ``anchor_position_vectors``;
* the layer geometry (:func:`layer_masks`: which units of a layer look at digit pixels),
  :func:`energy_share` (the share of rectified response energy on background units) and
  :func:`clutter_change` (how much the background changes a rectified map);
* the investigation of the "almost the same accuracy" claim: :func:`accuracy_by_hidden`
  and :func:`almost_same_verdict`, and the figure :func:`plot_responses`.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import recos
from .backgrounds import on_backgrounds
from .data import load_dataset
from .models import LeNet5
from .plots import html_table  # noqa: F401 (re-exported for Chapter 4)
from .train import RECIPE, Recipe, fit, lenet_cost, resolve_device, run_jobs

__all__ = ["OneLayerNet", "Normalised", "NetConfig", "build_model", "build_entry",
           "train_nets", "count_params", "conv_params", "receptive_field", "rectified_layers",
           "layer_masks", "energy_share", "clutter_change", "linear_cascade_check",
           "position_variance", "digit_mask", "accuracy_by_hidden", "almost_same_verdict",
           "position_split", "variance_split", "plot_responses", "rectifier_gap", "compare",
           "html_table",
           "NETS", "TRAIN_SETS", "NORMS"]

NETS = ("two_layer", "one_layer")
TRAIN_SETS = ("clean", "background")
NORMS = ("none", "mean", "standardise")


class OneLayerNet(nn.Module):
    """One conv layer + the LeNet-5 head: the one-layer counterpart of Chapter 4.

    The 28x28 input is padded to 32x32 like LeNet-5's, then ``conv1`` holds 16 anchors of
    size ``kernel`` x ``kernel`` (13: a receptive field like that of LeNet-5's C3 units,
    14x14), ReLU, max pooling by 4 down to 16 maps of 5x5 - the same 400 numbers that
    LeNet-5's S4 hands to C5 - and the same head: fc1 (C5, 120), fc2 (F6, 84), fc3 (10).
    """

    def __init__(self, kernel: int = 13, channels: int = 16, pool: int = 4):
        super().__init__()
        side = (32 - kernel + 1) // pool
        self.conv1 = nn.Conv2d(1, channels, kernel)
        self.pool1 = nn.MaxPool2d(pool)
        self.fc1 = nn.Linear(channels * side * side, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)
        self.pad_value = 0.0

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every stage's output by name (conv1, relu1, pool1, fc1, relu3, fc2, relu4, logits)."""
        out = {}
        x = F.pad(x, (2, 2, 2, 2), value=self.pad_value)
        out["conv1"] = x = self.conv1(x)
        out["relu1"] = x = F.relu(x)
        out["pool1"] = x = self.pool1(x)
        out["fc1"] = x = self.fc1(x.flatten(1))
        out["relu3"] = x = F.relu(x)
        out["fc2"] = x = self.fc2(x)
        out["relu4"] = x = F.relu(x)
        out["logits"] = self.fc3(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)["logits"]


class Normalised(nn.Module):
    """``net`` behind a per-image input normalisation (no parameters).

    ``"mean"``: remove each image's mean (RECOS mean removal, for the whole 28x28 image);
    ``"standardise"``: remove the mean and divide by the image's standard deviation;
    ``"none"``: pass the [0, 1] image through.
    """

    def __init__(self, net: nn.Module, norm: str = "none"):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; allowed: {', '.join(NORMS)}")
        self.net, self.norm = net, norm

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm == "none":
            return x
        x = x - x.mean(dim=(1, 2, 3), keepdim=True)
        if self.norm == "standardise":
            x = x / x.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3)
        return x

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net.features(self.normalise(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalise(x))


@dataclass(frozen=True)
class NetConfig:
    """Everything that determines one trained network of Chapter 4 (its cache key)."""

    net: str = "two_layer"          # two_layer (LeNet-5) | one_layer (OneLayerNet)
    train_set: str = "clean"        # clean | background (mnist-back-image recipe)
    norm: str = "none"              # none | mean | standardise (per image, see Normalised)
    dataset: str = "mnist"
    n_train: int | None = None      # first n training images; None = all
    recipe: Recipe = RECIPE         # how it is trained (the book's one recipe)
    seed: int = 0                   # initialisation and batch order
    bg_seed: int = 0                # which backgrounds the training digits get

    def __post_init__(self):
        for field, allowed in (("net", NETS), ("train_set", TRAIN_SETS), ("norm", NORMS)):
            if getattr(self, field) not in allowed:
                raise ValueError(f"NetConfig {field}={getattr(self, field)!r} is not allowed; "
                                 f"allowed: {', '.join(allowed)}")

    @property
    def name(self) -> str:
        return f"{self.net}/{self.train_set}/{self.norm}/{self.recipe.epochs:g}ep/seed{self.seed}"


def build_model(config: NetConfig) -> Normalised:
    """A freshly initialised network for ``config`` (seeded)."""
    torch.manual_seed(config.seed)
    net = LeNet5("relu", "max") if config.net == "two_layer" else OneLayerNet()
    return Normalised(net, config.norm)


def _code_hash() -> str:
    """Hash of the code that determines a trained network here: part of every cache key.

    The source of the background generator and of this module's model and training
    definitions (not of its analysis functions, whose edits need no retraining);
    models.py, train.py and data.py enter through :func:`recos_utils.cache.config_key`.
    """
    import inspect

    from . import backgrounds

    h = hashlib.sha256(Path(backgrounds.__file__).read_bytes())
    for obj in (OneLayerNet, Normalised, NetConfig, build_model, _training_set, build_entry):
        h.update(inspect.getsource(obj).encode())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=2)
def _training_set_cached(dataset: str, n_train, train_set: str, bg_seed: int, data_dir):
    ds = load_dataset(dataset, "train", data_dir).subset(n_train)
    if train_set == "background":
        ds, _ = on_backgrounds(ds, "train", bg_seed)
    return ds


def _training_set(config: NetConfig, data_dir=None):
    """The training set of a network; a worker process that trains several networks on the
    same digits on backgrounds builds them once (they are the same for every seed)."""
    return _training_set_cached(config.dataset, config.n_train, config.train_set,
                                config.bg_seed, None if data_dir is None else str(data_dir))


def build_entry(config: NetConfig, device: str, data_dir=None) -> dict:
    """Train one network (the job run by :func:`recos_utils.train.run_jobs`)."""
    ds = _training_set(config, data_dir)
    model = build_model(config)
    hist = fit(model, ds.images, ds.labels, recipe=config.recipe, seed=config.seed,
               device=resolve_device(device), desc=config.name)
    return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
            "history": hist}


def train_nets(configs: list[NetConfig], *, device: str = "cpu", data_dir=None,
               use_cache: bool = True) -> list[Normalised]:
    """Train (or load from the cache) every network of ``configs`` in one parallel call.

    Returns the models on the CPU in eval mode, in the order of ``configs``.
    """
    dev = str(resolve_device(device))
    code = _code_hash()
    jobs = [(dict(dataclasses.asdict(c), kind="ch4-cascade", code=code), build_entry,
             (c, dev, data_dir)) for c in configs]
    models = []
    for c, entry in zip(configs, run_jobs(jobs, device=dev, use_cache=use_cache, cost=_cost)):
        m = build_model(c)
        m.load_state_dict(entry["state_dict"])
        models.append(m.eval())
    return models


def _cost(config: dict) -> float:
    """Relative training time of a job: LeNet-5's (``train.lenet_cost``), about 2/3 of it
    for the one-layer net."""
    return lenet_cost(config) * (1.0 if config["net"] == "two_layer" else 0.65)


# --- counting -------------------------------------------------------------------------

def _inner(model: nn.Module) -> nn.Module:
    return model.net if isinstance(model, Normalised) else model


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters (weights and biases)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def conv_params(model: nn.Module) -> int:
    """Parameters of the conv layers only (the part where the two networks differ)."""
    return sum(p.numel() for m in model.modules() if isinstance(m, nn.Conv2d)
               for p in m.parameters())


def rectified_layers(model: nn.Module) -> list[str]:
    """The rectified conv maps of a network, by name: relu1, relu2 (two-layer) or relu1."""
    return ["relu1", "relu2"] if isinstance(_inner(model), LeNet5) else ["relu1"]


def receptive_field(model: nn.Module, layer: str | None = None) -> int:
    """Side (pixels) of the input region that one unit of ``layer`` depends on, measured.

    Computed by autograd: the gradient of one central unit with respect to the input is
    non-zero exactly on its receptive field (weights are replaced by ones so no
    coincidental zero hides a pixel). ``layer`` defaults to the last rectified conv map.
    """
    import copy

    net = copy.deepcopy(_inner(model)).double()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0)
                m.bias.fill_(1.0)
    layer = layer or rectified_layers(model)[-1]
    x = torch.rand(1, 1, 28, 28, dtype=torch.float64, requires_grad=True)
    y = net.features(x)[layer]
    h, w = y.shape[-2:]
    y[0, 0, h // 2, w // 2].backward()
    support = x.grad[0, 0] != 0
    rows = support.any(1).nonzero()
    return int(rows.max() - rows.min() + 1)


# --- geometry: digit and background units --------------------------------------------

def digit_mask(digits: torch.Tensor, dilate: int = 1) -> torch.Tensor:
    """Float mask (N x 1 x 28 x 28) of the digit region: ink (> 0) dilated by ``dilate`` px."""
    m = (digits > 0).float().unsqueeze(1) if digits.dim() == 3 else (digits > 0).float()
    if dilate > 0:
        m = F.max_pool2d(m, 2 * dilate + 1, stride=1, padding=dilate)
    return m


def layer_masks(model: nn.Module, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """The input ``mask`` carried to every conv and pooling map of ``model``.

    A unit is given the mask value at the centre of its receptive field: the network's own
    padding, kernel sizes and pooling are applied with centre-tap (delta) kernels and
    average pooling, so the result is aligned exactly with the maps of ``features``
    (N x 1 x H x W, values in [0, 1]): relu1, pool1 (and relu2, pool2 for LeNet-5).
    """
    net = _inner(model)

    def centre(m, conv):
        k = conv.kernel_size[0]
        delta = torch.zeros(1, 1, k, k, dtype=m.dtype)
        delta[0, 0, k // 2, k // 2] = 1.0
        return F.conv2d(m, delta)

    def pool(m, layer):
        k = layer.kernel_size if isinstance(layer.kernel_size, int) else layer.kernel_size[0]
        return F.avg_pool2d(m, k)

    out = {}
    m = F.pad(mask, (2, 2, 2, 2), value=0.0)
    out["relu1"] = m = centre(m, net.conv1)
    out["pool1"] = m = pool(m, net.pool1)
    if isinstance(net, LeNet5):
        out["relu2"] = m = centre(m, net.conv2)
        out["pool2"] = pool(m, net.pool2)
    return out


@torch.no_grad()
def energy_share(model: nn.Module, images: torch.Tensor, digits: torch.Tensor,
                 dilate: int = 1) -> dict[str, dict[str, float]]:
    """Share of rectified response energy that falls on background units, per layer.

    ``images`` are the network inputs (uint8, e.g. digits on backgrounds), ``digits`` the
    clean digits they were made from, which define the digit region (:func:`digit_mask`).
    A unit counts as background when the centre of its receptive field lies outside the
    digit region. Returns, per rectified layer, ``{"energy": share of sum y^2 on background
    units, "area": share of background units, "ratio": mean energy of a background unit
    over that of a digit unit}``. The ratio compares layers of different geometry: 1 means
    no preference, below 1 the layer's responses crowd onto the digit.
    """
    from .train import to_input

    feats = model.features(to_input(images))
    masks = layer_masks(model, digit_mask(digits, dilate))
    out = {}
    for layer in rectified_layers(model):
        bg = (masks[layer] < 0.5).float()
        e = feats[layer].pow(2).sum(1, keepdim=True)
        e_bg, e_all = float((e * bg).sum()), float(e.sum())
        a_bg = float(bg.mean())
        share = e_bg / max(e_all, 1e-12)
        ratio = (share / a_bg) / max((1 - share) / max(1 - a_bg, 1e-12), 1e-12) \
            if 0 < a_bg < 1 else float("nan")
        out[layer] = {"energy": share, "area": a_bg, "ratio": ratio}
    return out


@torch.no_grad()
def clutter_change(model: nn.Module, images: torch.Tensor, digits: torch.Tensor) -> dict:
    """How much the background changes each rectified map, relative to the clean digit's.

    ``sum ||y(image) - y(digit)||^2 / sum ||y(digit)||^2`` per rectified layer, over the
    images (uint8 ``images`` on backgrounds, ``digits`` the same digits clean). Unlike
    :func:`energy_share` it needs no digit/background split of the units, so layers with
    different receptive fields compare fairly: 0 means the layer ignores the background.
    """
    from .train import to_input

    fy, fx = model.features(to_input(images)), model.features(to_input(digits))
    return {layer: float((fy[layer] - fx[layer]).pow(2).sum()
                         / fx[layer].pow(2).sum().clamp_min(1e-12))
            for layer in rectified_layers(model)}


@torch.no_grad()
def accuracy_by_hidden(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                       hidden: torch.Tensor, edges=(0.0, 0.01, 0.1, 0.3, 1.0)) -> list[dict]:
    """Accuracy on the images whose hidden-stroke share lies in each bin [lo, hi).

    The last bin includes its upper edge. Returns ``[{"lo", "hi", "n", "acc"}, ...]``
    (``acc`` None for an empty bin).
    """
    from .train import predict

    ok = (predict(model, images) == labels).float()
    out = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        last = i == len(edges) - 2
        sel = (hidden >= lo) & ((hidden <= hi) if last else (hidden < hi))
        n = int(sel.sum())
        out.append({"lo": float(lo), "hi": float(hi), "n": n,
                    "acc": float(ok[sel].mean()) if n else None})
    return out


def _below(gap_pp: float) -> str:
    """'1.23 points below' / '0.40 points above' for an accuracy gap in points."""
    return f"{abs(gap_pp):.2f} points {'below' if gap_pp >= 0 else 'above'}"


def compare(ratio: float, spread: float = 0.0, tol: float = 0.05) -> str:
    """'higher', 'lower' or 'about the same': ``ratio`` against 1, beyond ``tol`` and twice
    the seed-to-seed ``spread`` (a ratio within both of 1 is 'about the same')."""
    margin = max(tol, 2.0 * spread)
    if ratio > 1.0 + margin:
        return "higher"
    if ratio < 1.0 - margin:
        return "lower"
    return "about the same"


def almost_same_verdict(rows: dict[str, dict[str, float]], threshold_pp: float) -> dict:
    """Does retraining on backgrounds give "almost the same" accuracy as clean digits?

    ``rows`` maps a training variant to ``{"reference": clean-trained accuracy on clean
    test digits (same training length), "background": its accuracy on background test
    digits, "visible": the same on the test digits whose strokes the background does not
    hide, "reference_visible": the clean-trained accuracy on those digits, clean}``
    (``reference_visible`` defaults to ``reference``). "Almost the same" is the book's
    reading: a gap of at most ``threshold_pp`` percentage points. Returns the best variant
    (smallest gap), its gaps (points), whether the claim holds overall and on visible
    digits, and a sentence saying so.
    """
    gaps = {k: 100.0 * (r["reference"] - r["background"]) for k, r in rows.items()}
    best = min(gaps, key=lambda k: (gaps[k], k))
    gap = gaps[best]
    r = rows[best]
    gap_vis = 100.0 * (r.get("reference_visible", r["reference"]) - r["visible"])
    holds, holds_vis = gap <= threshold_pp, gap_vis <= threshold_pp
    where, where_vis = _below(gap), _below(gap_vis)
    same = "the clean-trained one's accuracy on those digits without background"
    thr = f"(the book's threshold: {threshold_pp:g} percentage points)"
    if holds:
        text = (f"The claim holds: the best background-trained LeNet-5 ({best}) is {where} the "
                f"clean-trained one's clean accuracy {thr}.")
    elif holds_vis:
        text = (f"The claim holds only for the digits the background leaves visible: overall "
                f"the best background-trained LeNet-5 ({best}) is {where} the clean-trained "
                f"one's clean accuracy, but on the digits with no hidden stroke pixel it is "
                f"{where_vis} {same} {thr}.")
    else:
        text = (f"The claim does not hold in these runs: the best background-trained LeNet-5 "
                f"({best}) is {where} the clean-trained one's clean accuracy; even on the "
                f"digits with no hidden stroke pixel it is {where_vis} {same} {thr}.")
    return {"best": best, "gap_pp": gap, "gap_visible_pp": gap_vis, "gaps_pp": gaps,
            "holds": holds, "holds_visible": holds_vis, "text": text}


# --- the algebra of the cascade -------------------------------------------------------

def linear_cascade_check(first: nn.Module, second: nn.Module, x: torch.Tensor) -> dict:
    """Check z = B^T (A^T x) = C^T x with C = A B, and c_nl = alpha_n . b_l.

    ``first`` and ``second`` are consecutive linear layers (A: N x K, columns the K anchors
    of ``first``; B: K x L); ``x`` is M x N. Computed in double precision. Returns the
    largest absolute errors of the two identities and the scale of z.
    """
    A = recos.anchors(first).double().T            # N x K
    B = recos.anchors(second).double().T           # K x L
    x = x.double()
    z2 = (x @ A) @ B                               # rows: B^T A^T x
    C = A @ B
    z1 = x @ C                                     # rows: C^T x
    alpha = recos.anchor_position_vectors(recos.anchors(first).double())  # N x K: alpha_n = A^T e_n
    c_from_alpha = torch.stack([alpha[n] @ B for n in range(A.shape[0])])
    return {"z_max_abs_err": float((z2 - z1).abs().max()), "z_scale": float(z2.abs().max()),
            "c_max_abs_err": float((c_from_alpha - C).abs().max()),
            "shape_A": list(A.shape), "shape_B": list(B.shape), "shape_C": list(C.shape)}


@torch.no_grad()
def rectifier_gap(first: nn.Module, second: nn.Module, x: torch.Tensor) -> float:
    """How far the rectified cascade is from its linearisation, relative (0: identical).

    ``||B^T Rec(A^T x + a) - B^T (A^T x + a)|| / ||B^T (A^T x + a)||`` over the rows of
    ``x``, with the layers' own biases ``a``; the output bias of ``second`` cancels.
    """
    h = first(x)
    lin = second(h) - second.bias
    rec = second(torch.relu(h)) - second.bias
    return float((rec - lin).norm() / lin.norm().clamp_min(1e-12))


def position_variance(layer: nn.Module, channels: int, side: int) -> torch.Tensor:
    """Variance of the anchor-position vectors, as a map over input positions.

    ``layer``'s anchors have dimension ``channels * side * side`` (layout channel, row,
    column). Each input element n gives alpha_n = A^T e_n (one entry per anchor); its
    variance over the anchors is averaged over channels, giving a side x side map.
    """
    a = recos.anchors(layer)                               # K x (C s s)
    alpha = recos.anchor_position_vectors(a)               # (C s s) x K
    var = alpha.var(dim=1)                                 # per element n
    return var.reshape(channels, side, side).mean(0)


def position_split(model: nn.Module, digits: torch.Tensor, dilate: int = 1) -> torch.Tensor:
    """Boolean map of the last pooled layer (5x5): True where the digit usually is.

    The digit region of each image (:func:`digit_mask`) is carried to the pooled map
    (:func:`layer_masks`) and averaged over the images; a position counts as a digit
    position when at least half of the images have ink at its centre.
    """
    masks = layer_masks(model, digit_mask(digits, dilate))
    last = "pool2" if "pool2" in masks else "pool1"
    return masks[last].mean(0)[0] >= 0.5


def variance_split(var_map: torch.Tensor, digit_positions: torch.Tensor) -> dict:
    """Mean anchor-position variance at digit and at background positions, and their ratio."""
    d, b = float(var_map[digit_positions].mean()), float(var_map[~digit_positions].mean())
    return {"digit": d, "background": b, "ratio": b / d,
            "n_digit": int(digit_positions.sum()), "n_background": int((~digit_positions).sum())}


def plot_responses(model: nn.Module, one_layer: nn.Module, images: torch.Tensor,
                   digit: torch.Tensor, row_titles: list[str]):
    """The paper's layer-response figure: conv1, relu1, conv2, relu2 maps, per input row.

    ``images`` (uint8, R x 28 x 28) are one digit on R backgrounds; ``digit`` is the clean
    digit, which picks the channels shown (the one with the most rectified energy on it).
    The last column adds the one-layer network's rectified map for comparison.
    """
    import matplotlib.pyplot as plt

    from .train import to_input

    with torch.no_grad():
        f2 = model.features(to_input(images))
        f1 = one_layer.features(to_input(images))
        c2 = model.features(to_input(digit[None]))
        c1 = one_layer.features(to_input(digit[None]))
    k1 = int(c2["relu1"][0].pow(2).sum((1, 2)).argmax())
    k2 = int(c2["relu2"][0].pow(2).sum((1, 2)).argmax())
    k3 = int(c1["relu1"][0].pow(2).sum((1, 2)).argmax())
    cols = [("input", lambda i: images[i].float(), "gray"),
            (f"conv1 [{k1}]", lambda i: f2["conv1"][i, k1], "RdBu_r"),
            (f"relu1 [{k1}]", lambda i: f2["relu1"][i, k1], "magma"),
            (f"conv2 [{k2}]", lambda i: f2["conv2"][i, k2], "RdBu_r"),
            (f"relu2 [{k2}]", lambda i: f2["relu2"][i, k2], "magma"),
            (f"one-layer relu1 [{k3}]", lambda i: f1["relu1"][i, k3], "magma")]
    fig, axes = plt.subplots(len(images), len(cols), figsize=(1.45 * len(cols),
                                                              1.5 * len(images) + 0.4),
                             squeeze=False)
    for j, (title, get, cmap) in enumerate(cols):
        maps = [get(i).numpy() for i in range(len(images))]
        hi = max(float(abs(m).max()) for m in maps) or 1.0
        for i, m in enumerate(maps):
            ax = axes[i, j]
            lo = -hi if cmap == "RdBu_r" else 0.0
            ax.imshow(m, cmap=cmap, vmin=lo, vmax=hi if j else 255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if i == 0:
                ax.set_title(title, fontsize=8)
            if j == 0:
                ax.set_ylabel(row_titles[i], fontsize=8)
    fig.tight_layout(pad=0.3)
    return fig
