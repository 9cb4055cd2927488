"""RECOS on the reader's own network (Chapter 7, an appendix; issue 26).

The chapter reads a network the reader brings, layer by layer, with the readings the book
already uses (:mod:`recos_utils.core.readings`, :mod:`recos_utils.core.recos`,
:mod:`recos_utils.core.sphere_null`); this module only loads and checks the network and
arranges those readings for it:

* **loading** (``load_network``): a LeNet-5 ``state_dict`` of
  :class:`recos_utils.core.models.LeNet5`, or the weights of a torchvision architecture in
  torchvision's ``state_dict`` format, read with ``torch.load(..., map_location="cpu",
  weights_only=True)`` (a dict holding ``"state_dict"`` is accepted too). Every bad input
  is one :class:`CheckpointError` raised before any work: an unknown architecture (some
  allowed names listed), a missing file (named, with the fix), a pickle that
  ``weights_only=True`` refuses (and how to save a plain state_dict), a checkpoint of
  another architecture (the first missing or mismatching entry, expected vs found shape);
* **layers** (``layers``): LeNet-5's conv1, conv2, fc1, fc2 (``readings.LAYERS``), or every
  convolution and linear layer of a torchvision network (``recos.recos_stages``);
* **readings** (``layer_reading``, ``zeroed_shares``, ``photo_reversal``,
  ``first_layer_patches``): anchor norms and mean-removed anchors, the share of responses
  each rectifier zeroes, the angle statistics against random directions, the grey-scale
  reversal test and the patches whose frequent directions the first layer's anchors are
  matched with.
"""
from __future__ import annotations

import os
import pickle

import numpy as np
import torch
import torch.nn as nn

from recos_utils.core import photos, recos, sphere, sphere_null
from recos_utils.core.data import reverse_grey
from recos_utils.core.models import LeNet5
from recos_utils.core.params import ParameterError
from recos_utils.core.sphere_null import Z_ABOVE
from recos_utils.core.readings import LAYERS, dc_share

__all__ = ["CheckpointError", "LENET", "architectures", "read_state", "check_state",
           "reference_network", "load_network", "layers", "layer_reading", "zeroed_shares",
           "PHOTOS", "photo_inputs", "photo_reversal", "first_layer_patches", "WORDS"]

#: A layer's anchors lie above chance when their mean |cos| exceeds the random directions'
#: value by more than this many null standard deviations (``sphere_null.layer_stats``'s z).

#: The name the results use for the book's LeNet-5.
LENET = "lenet5"

#: scikit-image photographs that load offline (Chapter 5's set).
PHOTOS = ("chelsea", "astronaut", "coffee", "camera", "rocket", "coins", "moon", "clock",
          "grass", "gravel", "brick", "hubble_deep_field")

#: What the reversal reading measures, per kind of network (for the chapter's prose).
WORDS = {
    LENET: {"reversal": "accuracy on the MNIST test digits",
            "original": "the digits", "reversed": "their grey-scale reversals",
            "patches": "5x5 patches of MNIST training digits"},
    "torchvision": {"reversal": "top-1 agreement with the class of the colour photograph",
                    "original": "the grey photographs", "reversed": "their grey-scale reversals",
                    "patches": "patches of scikit-image's photographs"},
}


class CheckpointError(ParameterError):
    """The network given by CHECKPOINT / ARCHITECTURE cannot be read; the message says why
    and how to fix it."""


# --------------------------------------------------------------------------- loading

def architectures() -> list[str]:
    """The torchvision classification architectures ``ARCHITECTURE`` may name."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _check_architecture(name: str) -> None:
    names = architectures()
    if name not in names:
        some = [n for n in ("alexnet", "vgg11", "vgg16", "resnet18", "resnet50") if n in names]
        raise CheckpointError(
            f"ARCHITECTURE={name!r} is not a torchvision architecture; allowed are "
            f"{', '.join(some)} and the other {len(names) - len(some)} names of "
            f"torchvision.models.list_models(), or None for a LeNet-5 checkpoint")


def _first_sentence(e: Exception) -> str:
    """The first sentence of an error's message, without terminal colour codes."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
    return text.split(". ")[0].splitlines()[0][:160].rstrip(".")


def read_state(path: str) -> dict:
    """The ``state_dict`` in the file ``path`` (or its ``"state_dict"`` entry), read with
    ``torch.load(path, map_location="cpu", weights_only=True)``."""
    if not os.path.isfile(path):
        raise CheckpointError(
            f"CHECKPOINT={path!r}: no such file. Fix: give the path of a file written by "
            f"torch.save(model.state_dict(), path) (a relative path is read from the book/ "
            f"folder), or CHECKPOINT=None for the book's own LeNet-5")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"CHECKPOINT={path!r} holds Python objects that torch.load(..., weights_only=True) "
            f"refuses to unpickle (it reads tensors and plain containers only, never code: "
            f"{_first_sentence(e)}). Fix: save a plain state_dict, "
            f"torch.save(model.state_dict(), path), not the model object") from None
    except Exception as e:  # truncated, not a torch file ...
        raise CheckpointError(f"CHECKPOINT={path!r} could not be read as a PyTorch checkpoint "
                              f"({type(e).__name__}: {_first_sentence(e)}). Fix: "
                              f"save it with torch.save(model.state_dict(), path)") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"CHECKPOINT={path!r} does not hold a state_dict (a dict of "
                              f"tensors, or a dict with one under 'state_dict'). Fix: "
                              f"torch.save(model.state_dict(), path)")
    if obj and all(k.startswith("module.") for k in obj):       # saved from DataParallel
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def check_state(state: dict, reference: nn.Module, what: str, path: str) -> None:
    """Raise :class:`CheckpointError` at the first entry of ``reference``'s state_dict that
    ``state`` lacks or holds with another shape, or at an entry ``reference`` lacks."""
    expected = reference.state_dict()
    for key, value in expected.items():
        if key not in state:
            raise CheckpointError(
                f"CHECKPOINT={path!r} is not a {what}: layer {key!r} is missing (expected "
                f"shape {tuple(value.shape)}). Give ARCHITECTURE the network it was saved from")
        if tuple(state[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"CHECKPOINT={path!r} is not a {what}: layer {key!r} has shape "
                f"{tuple(state[key].shape)}, expected {tuple(value.shape)}. Give "
                f"ARCHITECTURE the network it was saved from")
    extra = [k for k in state if k not in expected]
    if extra:
        raise CheckpointError(
            f"CHECKPOINT={path!r} is not a {what}: it holds {extra[0]!r} (shape "
            f"{tuple(state[extra[0]].shape)}), which a {what} has not. Give ARCHITECTURE "
            f"the network it was saved from")


def reference_network(architecture: str | None, activation: str = "relu", pool: str = "max",
                      seed: int = 0) -> nn.Module:
    """An untrained network of the given shape, initialised from ``seed``: LeNet-5
    (``architecture`` None) or torchvision's ``architecture`` (``weights=None``, no
    download)."""
    torch.manual_seed(seed)
    if architecture is None:
        return LeNet5(activation, pool).eval()
    import torchvision

    return torchvision.models.get_model(architecture, weights=None).eval()


def load_network(checkpoint: str | None, architecture: str | None, activation: str = "relu",
                 pool: str = "max") -> nn.Module:
    """The reader's network from ``checkpoint``, checked against ``architecture`` (None:
    LeNet-5 with ``activation`` and ``pool``); every bad input is one CheckpointError."""
    if architecture is not None:
        _check_architecture(architecture)
    if checkpoint is None:
        raise CheckpointError(f"ARCHITECTURE={architecture!r} needs CHECKPOINT, the file "
                              f"holding its weights (torchvision is never asked to download)")
    state = read_state(checkpoint)
    model = reference_network(architecture, activation, pool)
    what = "LeNet-5 state_dict (recos_utils.core.models.LeNet5)" if architecture is None \
        else f"torchvision {architecture} state_dict"
    check_state(state, model, what, checkpoint)
    model.load_state_dict(state)
    return model.eval()


# --------------------------------------------------------------------------- readings

def layers(model: nn.Module) -> dict[str, nn.Module]:
    """The RECOS layers read, in forward order: LeNet-5's conv1, conv2, fc1, fc2, or every
    convolution and linear layer of another network (``recos.recos_stages``)."""
    if isinstance(model, LeNet5):
        return {name: getattr(model, name) for name in LAYERS}
    return {s.name: s.layer for s in recos.recos_stages(model, rectified_only=False)}


def layer_reading(layer: nn.Module, max_rows: int, seed: int) -> dict:
    """One layer's anchors (``recos.anchors``): their norms ||a_k||, the norms of the
    mean-removed anchors a_k - mean(a_k) 1 (``recos.remove_mean``), the share of the
    squared norm that is the mean (``readings.dc_share``), and the angle statistics
    against random directions (``sphere_null.layer_stats``)."""
    a = recos.anchors(layer).double()
    centred, _ = recos.remove_mean(a)
    norms, cnorms = a.norm(dim=1), centred.norm(dim=1)
    st = sphere_null.layer_stats(layer, max_rows=max_rows, seed=seed)
    return {"n_anchors": a.shape[0], "dim": a.shape[1], "norm_mean": float(norms.mean()),
            "norm_min": float(norms.min()), "norm_max": float(norms.max()),
            "centred_norm_mean": float(cnorms.mean()), "dc_share": dc_share([a.numpy()]),
            **{k: st[k] for k in ("mean_abs_cos", "expected_abs_cos_random", "abs_cos_z",
                                  "mean_nn_cos", "mean_nn_cos_random", "n_used")}}


def zeroed_shares(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """For a network other than LeNet-5: per rectified layer, the mean over the inputs ``x``
    of the share of its correlations A_l x_l <= 0 (``recos.zero_fractions``)."""
    return {k: float(v.mean()) for k, v in recos.zero_fractions(model, x, batch_size=4).items()}


def _transforms(architecture: str):
    """torchvision's preprocessing of the architecture's default weights (no download)."""
    import torchvision

    return torchvision.models.get_model_weights(architecture).DEFAULT.transforms()


def _as_input(img: np.ndarray, transform) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))
    t = t.permute(2, 0, 1) if t.dim() == 3 else t.expand(3, *t.shape)
    return transform(t)


def photo_inputs(architecture: str, names=PHOTOS) -> dict:
    """scikit-image's photographs as the network's input (its weights' transforms): colour,
    grey (the luminance, ``photos.grey``) and grey reversed (``data.reverse_grey``), each
    N x 3 x H x W; ``skipped`` maps a photograph that did not load to the reason."""
    tf = _transforms(architecture)
    out = {"colour": [], "grey": [], "reversed": [], "names": [], "skipped": {}}
    for name in names:
        try:
            rgb, grey = photos.rgb(name) / 255.0, photos.grey(name)
        except Exception as e:  # an optional download that cannot be had
            out["skipped"][name] = f"{type(e).__name__}: {e}".splitlines()[0]
            continue
        out["names"].append(name)
        for key, img in (("colour", rgb), ("grey", grey), ("reversed", reverse_grey(grey))):
            out[key].append(_as_input(img, tf))
    for key in ("colour", "grey", "reversed"):
        out[key] = torch.stack(out[key]) if out[key] else torch.empty(0)
    return out


@torch.no_grad()
def photo_reversal(model: nn.Module, inputs: dict) -> dict:
    """Chapter 5's reversal test on photographs: the share of photographs whose top-1 class
    for the grey photograph (``original``) and for its reversal (``reversed``) is the
    network's class for the colour photograph, and the share whose top-1 class the reversal
    keeps (``top1_kept_fraction``, Chapter 5's measure)."""
    model.eval()
    top = {k: torch.cat([model(x[None]).argmax(1) for x in inputs[k]])
           for k in ("colour", "grey", "reversed")}
    agree = lambda a, b: float((top[a] == top[b]).float().mean())
    return {"original": agree("grey", "colour"), "reversed": agree("reversed", "colour"),
            "top1_kept_fraction": agree("reversed", "grey"), "n": len(inputs["names"]),
            "photos": inputs["names"], "skipped": inputs["skipped"]}


def first_layer_patches(x: torch.Tensor, conv: nn.Conv2d, n: int, min_norm: float,
                        seed: int) -> tuple[np.ndarray, dict]:
    """Mean-removed unit patches of the inputs ``x`` (N x C x H x W) of conv's shape
    (C x k x k), as ``sphere.unit_patches`` cuts them: ``n`` seeded random crops of k x k,
    one patch each (cutting every patch of a photograph would not fit in memory)."""
    k = conv.kernel_size[0]
    g = torch.Generator().manual_seed(seed)
    i = torch.randint(len(x), (n,), generator=g)
    r = torch.randint(x.shape[2] - k + 1, (n,), generator=g)
    c = torch.randint(x.shape[3] - k + 1, (n,), generator=g)
    crops = torch.stack([x[a, :, b:b + k, d:d + k] for a, b, d in
                         zip(i.tolist(), r.tolist(), c.tolist())])
    return sphere.unit_patches(crops, size=k, pad=0, min_norm=min_norm, seed=seed)
