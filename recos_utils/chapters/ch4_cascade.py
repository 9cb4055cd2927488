"""One conv layer against two: the two networks and their training (Chapter 4, Sec. 4.2).

Kuo (2016), Sec. 4, asks what a two-layer cascade gives that one layer cannot. Chapter 4
answers with an experiment on digits on natural backgrounds (:mod:`recos_utils.core.backgrounds`)
and two networks that end their convolutional part with the same 16 rectified maps of 5x5:

* LeNet-5 (:class:`recos_utils.core.models.LeNet5`, two conv layers) and :class:`OneLayerNet`, its
  one-conv-layer counterpart (a 13x13 layer of 16 anchors: receptive field 13 against
  LeNet-5's 14, 61,854 parameters against 61,706; :func:`receptive_field` and
  :func:`count_params` compute both, :func:`network_counts` tabulates them);
* :class:`Normalised`, which puts an input normalisation (per-image mean removal, or
  standardisation, Sec. 4.5) in front of either network;
* ``NET``, the kind of these networks for :func:`recos_utils.core.trainer.train_all`
  (``net_specs``): trained on clean or on background digits with the book's one recipe.

The algebra of the cascade (Sec. 4.3, 4.7) is in :mod:`recos_utils.chapters.ch4_cascade_algebra`, the
accuracy tables and the investigation of the gap (Sec. 4.4-4.5) in
:mod:`recos_utils.chapters.ch4_bg_accuracy`, the clutter measurements on the layers (Sec. 4.6) in
:mod:`recos_utils.chapters.ch4_clutter`.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from recos_utils.core import backgrounds

from recos_utils.core import photos
from recos_utils.core.backgrounds import on_backgrounds
from recos_utils.core.data import load_dataset
from recos_utils.core.models import LeNet5
from recos_utils.core.device import resolve_device
from recos_utils.core.kinds import lenet_cost
from recos_utils.core.train import RECIPE, Recipe, fit
from recos_utils.core.trainer import Kind, Spec, entry

__all__ = ["OneLayerNet", "Normalised", "NetConfig", "build_model", "build_entry",
           "NET", "net_specs", "count_params", "conv_params", "receptive_field", "rectified_layers",
           "network_counts", "NETS", "TRAIN_SETS", "NORMS"]

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
    """Train one network (the ``NET`` kind of ``train_all``)."""
    ds = _training_set(config, data_dir)
    model = build_model(config)
    hist = fit(model, ds.images, ds.labels, recipe=config.recipe, seed=config.seed,
               device=resolve_device(device), desc=config.name)
    return entry(model, hist)


def _rebuild(config: NetConfig, e: dict) -> Normalised:
    m = build_model(config)
    m.load_state_dict(e["state_dict"])
    return m.eval()


def _cost(config: NetConfig) -> float:
    """Relative training time: LeNet-5's (``kinds.lenet_cost``), about 2/3 of it for the
    one-layer net."""
    return lenet_cost(config) * (1.0 if config.net == "two_layer" else 0.65)


#: One network of Chapter 4 (two-layer LeNet-5 or the one-layer net, clean or background).
NET = Kind("ch4_net", build_entry, _rebuild, cost=_cost)


def net_specs(configs: list[NetConfig]) -> list[Spec]:
    """One ``train_all`` spec per network config."""
    return [Spec(NET, c) for c in configs]


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


def network_counts(models: dict[str, nn.Module]) -> dict[str, dict[str, int]]:
    """Sec. 4.2's table: per network name, ``{"params", "conv_params", "receptive_field",
    "conv_layers"}`` (the receptive field of the last rectified conv map, in pixels)."""
    return {net: {"params": count_params(m), "conv_params": conv_params(m),
                  "receptive_field": receptive_field(m),
                  "conv_layers": len(rectified_layers(m))} for net, m in models.items()}
