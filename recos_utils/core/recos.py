"""The RECOS model's math: anchors, patches, rectified correlations (Chapter 1).

Notation follows Kuo (2016), Sec. 2 as restated in the book's Chapter 1:

* a layer holds K anchor vectors a_k in R^N (the filter weights), ``anchors(layer)``;
* an input is a patch x in R^N (``patches``), optionally with its mean mu removed;
* a RECOS unit responds y_k = Rec(a_k . x + b_k), with Rec(t) = max(0, t) (eq. y = Rec(Ax));
* with mean removal and the augmented vectors x' = (mu, x), a'_k = (a_k0, a_k), where
  a_k0 = -sum_n a_kn, the response Rec(a'_k . x') vanishes on a flat patch
  (``augment``, ``tied_bias``);
* by positive homogeneity, Rec(a . x) = ||a|| ||x|| Rec(cos theta)
  (``magnitude_cosine``);
* anchor-position vectors alpha_n = A^T e_n (Chapter 4, ``anchor_position_vectors``);
* a CNN as the cascade d = B_L ... B_1 x, B_l = R o A_l (Chapter 5, Sec. 5.5):
  ``recos_stages`` names a network's stages (:class:`Stage`: the correlating layer A_l and
  its rectifier R), ``record_cascade`` records x_l, A_l x_l and B_l x_l with forward hooks,
  ``stage_errors`` recomputes every stage the RECOS way above (``recos_layer``,
  ``rectified_correlation``), ``zero_fractions`` counts what each rectifier sets to zero.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["anchors", "patches", "remove_mean", "rectified_correlation", "recos_layer",
           "magnitude_cosine", "augment", "tied_bias", "geodesic_distance", "cosine",
           "anchor_position_vectors", "unit_circle_example", "Stage", "recos_stages",
           "record_cascade", "stage_errors", "zero_fractions"]


def anchors(layer: nn.Module) -> torch.Tensor:
    """The K anchor vectors of a conv or linear layer as rows of a K x N matrix."""
    w = layer.weight.detach()
    return w.reshape(w.shape[0], -1).clone()


def patches(x: torch.Tensor, kernel_size: int, padding: int = 0, stride: int = 1) -> torch.Tensor:
    """All k x k patches of ``x`` (B x C x H x W) as vectors: B x L x (C k k).

    The vector layout matches ``anchors(conv)`` (channel, row, column), so that
    ``patches @ anchors.T`` is the convolution (cross-correlation) output.
    """
    cols = F.unfold(x, kernel_size, padding=padding, stride=stride)  # B x (C k k) x L
    return cols.transpose(1, 2)


def remove_mean(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split patches into (mean-removed part, mean mu): p = (p - mu 1) + mu 1."""
    mu = p.mean(dim=-1, keepdim=True)
    return p - mu, mu.squeeze(-1)


def cosine(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """cos of the angle between the last-dimension vectors of a and b (broadcast)."""
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(eps)


def geodesic_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Geodesic distance on the unit sphere, theta = arccos(x_i . x_j) (in radians)."""
    return torch.arccos(cosine(a, b).clamp(-1.0, 1.0))


def rectified_correlation(x: torch.Tensor, a: torch.Tensor,
                          b: torch.Tensor | None = None) -> torch.Tensor:
    """Rec(a_k . x + b_k) for every input row of x (... x N) and anchor row of a (K x N)."""
    y = x @ a.T
    if b is not None:
        y = y + b
    return torch.relu(y)


def recos_layer(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """A conv layer + ReLU computed the RECOS way: unfold, correlate with anchors, rectify.

    Returns B x K x H' x W', equal to ``relu(conv(x))`` (checked in the tests).
    """
    k = conv.kernel_size[0]
    pad = conv.padding[0] if isinstance(conv.padding, tuple) else 0
    p = patches(x, k, padding=pad, stride=conv.stride[0])
    y = rectified_correlation(p, anchors(conv), None if conv.bias is None else conv.bias.detach())
    h = (x.shape[2] + 2 * pad - k) // conv.stride[0] + 1
    return y.transpose(1, 2).reshape(x.shape[0], -1, h, y.shape[1] // h)


def magnitude_cosine(x: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The decomposition Rec(a . x) = (||a|| ||x||) * Rec(cos theta).

    Returns (magnitude ||a|| ||x||, rectified cosine Rec(cos theta)), each ... x K.
    """
    mag = x.norm(dim=-1, keepdim=True) * a.norm(dim=-1)
    cos = (x @ a.T) / mag.clamp_min(1e-12)
    return mag, torch.relu(cos)


def tied_bias(a: torch.Tensor) -> torch.Tensor:
    """a_k0 = -sum_n a_kn: the bias that makes a flat patch give zero response."""
    return -a.sum(dim=-1)


def augment(x: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The augmented vectors of the mean-removal section.

    x' = (mu, x_1..x_N) with mu the patch mean and a'_k = (a_k0, a_k1..a_kN) with the tied
    bias a_k0 = -sum_n a_kn, so that a'_k . x' = a_k . x - mu sum_n a_kn = a_k . (x - mu 1):
    the augmented correlation is the correlation with the mean-removed patch, and a flat
    patch (x = mu 1) gives exactly zero. Returns (x', a').
    """
    mu = x.mean(dim=-1, keepdim=True)
    xa = torch.cat([mu, x], dim=-1)
    aa = torch.cat([tied_bias(a).unsqueeze(-1), a], dim=-1)
    return xa, aa


def anchor_position_vectors(a: torch.Tensor) -> torch.Tensor:
    """alpha_n = A^T e_n: the n-th element of every anchor, as rows (N x K) (Chapter 4)."""
    return a.T.contiguous()


def unit_circle_example(theta_x: float, anchor_angles: list[float]) -> dict:
    """The paper's Fig. 3 on the unit circle: correlations and their rectification.

    Angles in degrees. Returns x, anchors, correlations cos(theta_k - theta_x), rectified.
    """
    rad = [math.radians(t) for t in anchor_angles]
    x = torch.tensor([math.cos(math.radians(theta_x)), math.sin(math.radians(theta_x))])
    a = torch.tensor([[math.cos(r), math.sin(r)] for r in rad])
    corr = a @ x
    return {"x": x, "anchors": a, "correlation": corr, "rectified": torch.relu(corr),
            "angle_deg": torch.tensor([abs(t - theta_x) for t in anchor_angles])}


# --------------------------------------------------------------------------- the cascade (Ch. 5)
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

    Convolutions are recomputed with ``recos_layer`` (unfold into patches, correlate
    with the anchors, add the bias, rectify), linear layers with
    ``rectified_correlation``; both use only the recorded input x_l and the weights.
    """
    err = {}
    for st in stages:
        rec = records[st.name]
        x = rec["input"]
        if isinstance(st.layer, nn.Conv2d):
            y = recos_layer(x, st.layer)
        else:
            b = None if st.layer.bias is None else st.layer.bias.detach()
            y = rectified_correlation(x, anchors(st.layer), b)
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
