"""Why rectification: sign confusion and grey-scale reversal (Chapter 2).

Kuo (2016), the answer to "why a nonlinear activation?", as restated in the book's Chapter 2:

* **Sign confusion** in a two-layer cascade z = b^T Rec(A x): without the rectifier, a
  positive first-layer response times a negative weight cannot be told from a negative
  response times a positive weight (``toy_cascade``, ``toy_sweep``).
* A grey image x and its negative x_r = 255 - x are antipodal after mean removal:
  x_r - mu_r 1 = -(x - mu 1), correlation -1 (``mean_removed_correlation``).
* **Grey-scale reversal identity.** On the networks' input scale (x / 255 in [0, 1]) the
  reversal is x_r = 1 - x, and for every patch

      (-a)^T x_r + (b + sum_n a_n) = a^T x + b,

  so the first layer with anchors a_r = -a and biases b_r = b + sum_n a_n responds to the
  reversed image exactly as the original layer to the original image. The border padding
  p is reversed too (p_r = 1 - p): a reversed digit is padded with white
  (``reversal_identity``, ``negate_first_layer``).
* **Paired anchors.** Keeping each anchor with its reversed twin, conv1 = [a, -a] with
  biases [b, b + sum a], makes reversal swap the two members of every pair exactly when the
  border is padded with mid-grey 0.5, the one value reversal leaves unchanged
  (``paired_conv1``, ``paired_lenet``, ``build_paired``, ``pair_swap_error``). A conv2
  filter is reversal-invariant only if it weighs both members of a pair alike
  (``pair_symmetry``); with b = -sum(a)/2 the pair's sum is |a^T (x - 1/2)|, the ``abs``
  activation.
* The **activation ablation** of Sec. 2.8 is in :mod:`recos_utils.chapters.ch2_ablation`; the paper's
  claims are judged in :mod:`recos_utils.core.claims`.

The networks are trained with :mod:`recos_utils.core.train`; this module holds the helpers the
chapter's experiments need. The reversal test itself, ``accuracy_pair`` (accuracy on the
test digits and on their reversals), is a reading the appendix (Chapter 7) applies too: it
lives in :mod:`recos_utils.core.readings` and is imported from there.
"""
from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from recos_utils.core.data import reverse_grey
from recos_utils.core.models import LeNet5
from recos_utils.core.readings import accuracy_pair
from recos_utils.core.results import mean_std
from recos_utils.core.device import resolve_device, workers
from recos_utils.core.train import Recipe, TrainConfig, fit, train_data
from recos_utils.core.trainer import Kind, Spec, entry

__all__ = [
    "toy_cascade", "toy_example", "toy_sweep", "grey_photo", "mean_removed_correlation",
    "reversal_identity", "negate_first_layer", "with_padding", "twin_score",
    "identity_errors",
    "paired_conv1", "paired_lenet", "PAIRED", "paired_specs",
    "pair_swap_error", "pair_symmetry", "accuracy_pairs",
    "summarize", "arm", "training_end",
]


# --------------------------------------------------------------------------- toy cascade

def toy_cascade(x: torch.Tensor, A: torch.Tensor, b: torch.Tensor,
                rectify: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-layer cascade z = b^T R(A x), R = ReLU or (``rectify=False``) the identity.

    ``x`` is ... x N, ``A`` (first-layer anchors as rows) K x N, ``b`` (second-layer
    weights) K. Returns (first-layer responses y, ... x K; output z, ...).
    """
    y = x @ A.T
    if rectify:
        y = torch.relu(y)
    return y, y @ b


def toy_example(anchors=((0.6, 0.8), (-0.8, 0.6)), weights=(1.0, -1.0)) -> dict:
    """The sign-confusion example on the unit circle.

    Two orthogonal unit anchors a_1, a_2 and a second-layer unit with weights ``weights``
    (+1 on a_1, -1 on a_2: "like a_1, unlike a_2"). The "similar" input is x = a_2
    (positive response times a negative weight); the "opposite" input is x = -a_1
    (negative response times a positive weight). Returns anchors, inputs (and their
    angles in degrees) and, for the ``linear`` and ``relu`` cascades, the first-layer
    responses y and the outputs z of both inputs.
    """
    A = torch.tensor(anchors, dtype=torch.float64)
    b = torch.tensor(weights, dtype=torch.float64)
    xs = torch.stack([A[1], -A[0]])
    deg = lambda v: math.degrees(math.atan2(float(v[1]), float(v[0]))) % 360
    out = {"anchors": A, "weights": b, "inputs": xs, "input_deg": [deg(v) for v in xs],
           "anchor_deg": [deg(v) for v in A]}
    for name, rect in (("linear", False), ("relu", True)):
        y, z = toy_cascade(xs, A, b, rectify=rect)
        out[name] = {"y": y, "z": z}
    return out


def toy_sweep(A: torch.Tensor, b: torch.Tensor, n: int = 361) -> dict:
    """Output z of the linear and the rectified cascade for inputs all around the circle."""
    deg = torch.linspace(0, 360, n, dtype=torch.float64)
    x = torch.stack([torch.cos(torch.deg2rad(deg)), torch.sin(torch.deg2rad(deg))], dim=1)
    return {"deg": deg, "linear": toy_cascade(x, A, b, False)[1],
            "relu": toy_cascade(x, A, b, True)[1]}


# --------------------------------------------------------------------------- grey images

def grey_photo(name: str = "chelsea") -> torch.Tensor:
    """A photograph from ``skimage.data`` in grey levels, float64 in [0, 1] (H x W), read
    by :func:`recos_utils.core.photos.grey`. The default is Chelsea the cat, standing in for the
    paper's white/black cat (Fig. 4)."""
    from recos_utils.core import photos

    return torch.from_numpy(np.ascontiguousarray(photos.grey(name), dtype=np.float64))


def mean_removed_correlation(x: torch.Tensor, y: torch.Tensor) -> float:
    """cos of the angle between x - mean(x) and y - mean(y) (flattened): Pearson's r."""
    u = x.flatten().double()
    v = y.flatten().double()
    u = u - u.mean()
    v = v - v.mean()
    return float(u @ v / (u.norm() * v.norm()))


# --------------------------------------------------------------------------- the identity

def reversal_identity(weight: torch.Tensor, bias: torch.Tensor,
                      white: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchors and biases that respond to x_r = white - x as (weight, bias) respond to x.

    a_r = -a, b_r = b + white * sum_n a_n (the sum over each filter's in-channels and taps).
    """
    s = weight.reshape(weight.shape[0], -1).sum(dim=1)
    return -weight, bias + white * s


def negate_first_layer(model: LeNet5, white: float = 1.0) -> LeNet5:
    """A copy of ``model`` whose conv1 obeys the reversal identity, padding reversed too.

    For every input x, ``negate_first_layer(m)(white - x) == m(x)`` up to rounding (the
    padded border p becomes white - p), and so ``negate_first_layer(m)(x) == m(white - x)``:
    the negated network is the original network looking at the reversed image.
    """
    m = copy.deepcopy(model)
    w, b = reversal_identity(model.conv1.weight.detach(), model.conv1.bias.detach(), white)
    with torch.no_grad():
        m.conv1.weight.copy_(w)
        m.conv1.bias.copy_(b)
    m.pad_value = white - model.pad_value
    return m.eval()


def with_padding(model: LeNet5, value: float) -> LeNet5:
    """A copy of ``model`` that pads its input with ``value`` (1: white) instead."""
    m = copy.deepcopy(model)
    m.pad_value = float(value)
    return m.eval()


def twin_score(weight: torch.Tensor) -> float:
    """How far a layer's anchors come in reversal pairs: mean over anchors a_k of the
    largest cos(a_k, -a_j), j != k (1: every anchor has an exact negative twin)."""
    a = F.normalize(weight.detach().reshape(weight.shape[0], -1).double(), dim=1)
    c = -(a @ a.T)
    c.fill_diagonal_(-math.inf)
    return float(c.max(dim=1).values.mean())


@torch.no_grad()
def identity_errors(model: LeNet5, images: torch.Tensor, white: float = 1.0) -> dict:
    """How exactly the identity holds on ``images`` (float N x 1 x H x W in [0, white]).

    Compares the negated network on reversed images with the original on the originals:
    largest absolute differences of the conv1 pre-activations, of relu1 and of the logits,
    with the largest magnitudes for scale, and the fraction of equal predictions.
    """
    neg = negate_first_layer(model, white)
    f = model.features(images)
    g = neg.features(reverse_grey(images, white))
    err = {f"{k}_max_abs_err": (f[k] - g[k]).abs().max().item() for k in ("conv1", "relu1", "logits")}
    err.update(conv1_max_abs=f["conv1"].abs().max().item(),
               logits_max_abs=f["logits"].abs().max().item(),
               same_prediction=(f["logits"].argmax(1) == g["logits"].argmax(1)).float().mean().item())
    return err


# --------------------------------------------------------------------------- paired anchors

def paired_conv1(weight: torch.Tensor, bias: torch.Tensor, white: float = 1.0) -> nn.Conv2d:
    """conv1 with 2K filters: the K anchors a and their reversal twins -a.

    Biases [b, b + white * sum a] (the reversal identity), so that reversal of the input
    swaps filter k and filter K + k when the border is padded with white / 2.
    """
    k = weight.shape[0]
    w_r, b_r = reversal_identity(weight, bias, white)
    conv = nn.Conv2d(weight.shape[1], 2 * k, weight.shape[-1])
    with torch.no_grad():
        conv.weight.copy_(torch.cat([weight, w_r]))
        conv.bias.copy_(torch.cat([bias, b_r]))
    for p in conv.parameters():
        p.requires_grad_(False)
    return conv


def paired_lenet(conv1_weight: torch.Tensor, conv1_bias: torch.Tensor, seed: int = 0,
                 activation: str = "relu", pool: str = "max", pad_value: float = 0.5) -> LeNet5:
    """LeNet-5 whose conv1 is the fixed pair [a, -a] (then ``activation``); the rest fresh.

    conv2 takes the 2K paired maps; everything after conv1 is initialised from ``seed``
    and trainable. The default padding 0.5 makes reversal swap each pair exactly.
    """
    torch.manual_seed(seed)
    m = LeNet5(activation, pool, pad_value=pad_value)
    m.conv1 = paired_conv1(conv1_weight, conv1_bias)
    m.conv2 = nn.Conv2d(m.conv1.out_channels, m.conv2.out_channels, m.conv2.kernel_size)
    return m


def _train_paired(config: dict, device: str, data_dir, conv1_weight: torch.Tensor,
                  conv1_bias: torch.Tensor) -> dict:
    """Train one paired-anchor LeNet-5 (the ``PAIRED`` kind of ``train_all``).

    ``config`` holds dataset, train_on, n_train, recipe, seed, activation, pool and
    pad_value; the fixed conv1 comes from the base model.
    """
    ds = train_data(config["dataset"], config["train_on"], config["n_train"], data_dir)
    model = paired_lenet(conv1_weight, conv1_bias, config["seed"], config["activation"],
                         config["pool"], config["pad_value"])
    hist = fit(model, ds.images, ds.labels, recipe=Recipe.from_dict(config["recipe"]),
               seed=config["seed"],
               device=resolve_device(device),
               desc=f"paired LeNet-5 ({config['train_on']}) seed {config['seed']}")
    return entry(model, hist)


def _rebuild_paired(config: dict, e: dict, conv1_weight, conv1_bias) -> LeNet5:
    m = paired_lenet(conv1_weight, conv1_bias, config["seed"], config["activation"],
                     config["pool"], config["pad_value"])
    m.load_state_dict(e["state_dict"])
    return m.eval()


#: A LeNet-5 whose conv1 is a trained base model's anchors and their negatives, fixed.
PAIRED = Kind("lenet5_paired", _train_paired, _rebuild_paired)


def paired_specs(bases: list[tuple[TrainConfig, LeNet5]], train_on: str,
                 pad_value: float = 0.5) -> list[Spec]:
    """``train_all`` specs: one paired network per trained base model (its conv1 is reused).

    Each trains on the base model's data (dataset, first ``n_train`` images) with the base
    model's recipe, on ``train_on`` = original | both. The key holds the full config and
    the base model's config, which fixes the anchors.
    """
    specs = []
    for cfg, model in bases:
        config = {"base": dataclasses.asdict(cfg), "dataset": cfg.dataset,
                  "train_on": train_on, "n_train": cfg.n_train,
                  "recipe": dataclasses.asdict(cfg.recipe), "seed": cfg.seed,
                  "activation": cfg.activation, "pool": cfg.pool, "pad_value": pad_value}
        specs.append(Spec(PAIRED, config, (model.conv1.weight.detach().cpu().clone(),
                                           model.conv1.bias.detach().cpu().clone())))
    return specs


@torch.no_grad()
def pair_swap_error(model: LeNet5, images: torch.Tensor, white: float = 1.0) -> dict:
    """Reversal swaps the pairs: compare conv1 of reversed images with swapped conv1 of originals.

    Returns the largest absolute difference and the largest response (for scale).
    """
    k = model.conv1.out_channels // 2
    c = model.features(images)["conv1"]
    cr = model.features(reverse_grey(images, white))["conv1"]
    swapped = torch.cat([c[:, k:], c[:, :k]], dim=1)
    return {"max_abs_err": (cr - swapped).abs().max().item(), "max_abs": c.abs().max().item()}


def pair_symmetry(model: LeNet5) -> float:
    """Cosine between conv2's weights on the first members of the pairs and on their twins.

    1 means conv2 weights each anchor and its twin alike: the layer after the pairs is then
    blind to which member fired, i.e. to reversal (it sees Rec(t) + Rec(t')).
    """
    w = model.conv2.weight.detach()
    k = w.shape[1] // 2
    u, v = w[:, :k].flatten(), w[:, k:].flatten()
    return float(u @ v / (u.norm() * v.norm()))


# --------------------------------------------------------------------------- evaluation

def _accuracy_job(model, images, labels, batch_size):
    torch.set_num_threads(1)
    return accuracy_pair(model, images, labels, "cpu", batch_size)


def accuracy_pairs(models: list[nn.Module], images: torch.Tensor, labels: torch.Tensor,
                   device="cpu", batch_size: int = 500) -> list[tuple[float, float]]:
    """:func:`recos_utils.core.readings.accuracy_pair` of every model; on the CPU in
    parallel worker processes.

    One thread per model, as in training (``device.workers()`` processes): faster than one
    process with several threads for these small networks, and deterministic.
    """
    dev = resolve_device(device) if isinstance(device, str) else device
    if dev.type != "cpu" or len(models) < 2 or workers() < 2:
        return [accuracy_pair(m, images, labels, dev, batch_size) for m in models]
    from joblib import Parallel, delayed

    run = Parallel(n_jobs=min(workers(), len(models)), backend="loky")
    return run(delayed(_accuracy_job)(m.cpu(), images, labels, batch_size) for m in models)


def summarize(pairs: list[tuple[float, float]]) -> dict:
    """Mean and sample std over seeds of (acc_original, acc_reversed) pairs."""
    o = mean_std([p[0] for p in pairs])
    r = mean_std([p[1] for p in pairs])
    return {"acc_original": o["mean"], "acc_reversed": r["mean"], "std_original": o["std"],
            "std_reversed": r["std"], "n": o["n"]}


def arm(summary: dict, test: str = "original") -> dict:
    """One arm of a comparison, in the layout of :func:`recos_utils.core.results.mean_std`
    that :func:`recos_utils.core.claims.compare_arms` reads: the accuracy on the ``test``
    set ("original" or "reversed") of a :func:`summarize` summary, as ``{"mean", "std",
    "n"}`` over seeds."""
    return {"mean": summary["acc_" + test], "std": summary["std_" + test], "n": summary["n"]}


def training_end(histories: list[dict]) -> dict:
    """How training ended, as means over seeds: the final training loss and accuracy
    (the last quarter epoch's mini-batches, ``train.fit``)."""
    n = len(histories)
    return {"train_loss_final": sum(h["train_loss_final"] for h in histories) / n,
            "train_acc_final": sum(h["train_acc_final"] for h in histories) / n}


