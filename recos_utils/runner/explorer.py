"""Export Chapter 2's networks for the in-browser explorer page (``book/explore.md``).

The page runs LeNet-5 in the reader's browser, with no kernel: ``book/_static/explorer/
recos_explorer.js`` repeats :class:`recos_utils.core.models.LeNet5`'s forward pass (pad 28 -> 32
with ``pad_value``, conv1 5x5, rectifier, 2x2 pool, conv2 5x5, rectifier, pool, flatten in
channel-row-column order, fc1/fc2 with rectifiers, fc3) on weights written by
:func:`export` into ``explorer_data.js``, a script that assigns ``window.RECOS_EXPLORER_DATA``
(so it loads from ``file://`` too, with no fetch).

What the page shows mirrors the book:

* Chapter 1, Sec. 1.4: with the bias as an augmented coordinate, x'' = (1, x) and
  a''_k = (b_k, a_k), a conv1 response is y = Rec(a''.x'') = ||x''|| ||a''|| Rec(cos theta)
  (the hover readout; ``recos.magnitude_cosine`` on these vectors, as Chapter 1 checks it);
* Chapter 5 / ``recos.zero_fractions``: the share of each layer's responses that its
  rectifier sets to zero (pre-activation <= 0);
* Chapter 2: the four networks of :data:`NETWORKS`, and grey-scale reversal x -> 1 - x;
* Chapter 4, Sec. 4.1 (``backgrounds.combine``): a digit on a natural background is
  ``max(digit, patch)``, with patches from :func:`background_crops` (the "seen" test regime).
  The page reverses *after* combining: reversal is of the whole image the network sees.

Tensors travel as base64 of little-endian float32 (weights) or uint8 (digits, patches).
:func:`html_fragment` is the page's HTML mount; ``book/explore.md`` holds the same text
(a test keeps the two equal).

The reader's own network: ``recos-book export-weights CHECKPOINT OUT.json`` (:func:`export_weights`)
turns a LeNet-5 ``state_dict`` saved with ``torch.save`` into one network entry of the same
structure (``{"kind": READER_KIND, "format", "description", "arch", "meta", "tensors"}``), a
plain JSON file the page's file picker loads (FileReader, offline) and runs beside the book's
networks. Anything else is refused with one :class:`WeightsError` naming the problem and the fix.
"""
from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

__all__ = ["NETWORKS", "DATA_FILE", "MAX_BYTES", "MAX_DIGITS", "BACKGROUND_PHOTOS",
           "META_KEYS", "encode_tensor", "decode_tensor", "encode_uint8", "decode_uint8",
           "architecture", "background_crops", "export", "read_data", "html_fragment",
           "LENET5_SHAPES", "READER_KIND", "READER_MAX_BYTES", "WeightsError",
           "load_state_dict", "reader_entry", "export_weights"]

#: The networks the page offers, by the names the JavaScript API takes, with Chapter 2's
#: description of each (and the section it comes from).
NETWORKS = {
    "baseline": "LeNet-5, ReLU and max pooling, trained on original digits (Sec. 2.4)",
    "negated": "the baseline with its conv1 anchors negated, bias and padding reversed "
               "(Sec. 2.5)",
    "paired": "paired anchors: conv1 holds each baseline anchor and its negative, "
              "trained on both polarities (Sec. 2.6b)",
    "both": "LeNet-5 trained on original and reversed digits (Sec. 2.7)",
}
#: The data file written by :func:`export`, next to the page's script.
DATA_FILE = "explorer_data.js"
#: Largest data file allowed (bytes): the page's weight budget.
MAX_BYTES = 2_000_000
#: At most this many test digits are exported.
MAX_DIGITS = 100
#: Photographs whose patches :func:`background_crops` cuts by default (Chapter 4's seen ones).
BACKGROUND_PHOTOS = ("camera", "coins", "brick", "grass")
#: Keys of ``meta``: the required ones, then the optional ones.
META_KEYS = {"required": ("seed", "mode", "dataset"),
             "optional": ("n_train", "accuracy", "chapter")}

_ACTIVATIONS = ("relu", "identity", "leaky_relu", "tanh", "sigmoid", "abs")  # those the JS has
_POOLS = ("max", "avg")
_LAYERS = ("conv1", "conv2", "fc1", "fc2", "fc3")
_PREFIX = "window.RECOS_EXPLORER_DATA = "

#: The state_dict of the book's LeNet-5 (``recos_utils.core.models.LeNet5``, no batch
#: normalisation), in order: what ``export-weights`` accepts.
LENET5_SHAPES = {"conv1.weight": (6, 1, 5, 5), "conv1.bias": (6,),
                 "conv2.weight": (16, 6, 5, 5), "conv2.bias": (16,),
                 "fc1.weight": (120, 400), "fc1.bias": (120,),
                 "fc2.weight": (84, 120), "fc2.bias": (84,),
                 "fc3.weight": (10, 84), "fc3.bias": (10,)}
#: The ``kind`` of a reader's network file (the page checks it).
READER_KIND = "recos-explorer-network"
#: Largest reader's network file the page accepts (bytes); an export is about 0.33 MB.
READER_MAX_BYTES = 5_000_000


def encode_tensor(t: torch.Tensor) -> dict:
    """``{"shape", "dtype": "float32", "b64"}``: a tensor as base64 little-endian float32.

    Raises ``ValueError`` if it holds a NaN or an infinity (the page would show nonsense).
    """
    a = np.ascontiguousarray(t.detach().cpu().to(torch.float32).numpy(), dtype="<f4")
    if not np.isfinite(a).all():
        raise ValueError(f"tensor of shape {list(a.shape)} holds non-finite values")
    return {"shape": list(a.shape), "dtype": "float32",
            "b64": base64.b64encode(a.tobytes()).decode("ascii")}


def decode_tensor(d: dict) -> torch.Tensor:
    """The tensor of an :func:`encode_tensor` dict (float32, exactly the encoded bits)."""
    a = np.frombuffer(base64.b64decode(d["b64"]), dtype="<f4").reshape(d["shape"])
    return torch.from_numpy(a.astype(np.float32))


def encode_uint8(a) -> dict:
    """``{"shape", "dtype": "uint8", "b64"}`` of a uint8 array or tensor (images 0..255)."""
    arr = a.cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    if arr.dtype != np.uint8:
        raise TypeError(f"expected uint8 images (0..255), got {arr.dtype}")
    arr = np.ascontiguousarray(arr)
    return {"shape": list(arr.shape), "dtype": "uint8",
            "b64": base64.b64encode(arr.tobytes()).decode("ascii")}


def decode_uint8(d: dict) -> np.ndarray:
    """The uint8 array of an :func:`encode_uint8` dict."""
    return np.frombuffer(base64.b64decode(d["b64"]), dtype=np.uint8).reshape(d["shape"]).copy()


def architecture(model: nn.Module) -> dict:
    """What the page needs to run ``model`` (a LeNet-5 of :mod:`recos_utils.core.models`).

    Returns pad_value, activation, pool and the layer sizes; raises ``ValueError`` for a
    network the page cannot run (an activation it lacks, such as TReLU, or other layers).
    """
    act = getattr(model, "activation", None)
    pool = getattr(model, "pool_kind", None)
    if act not in _ACTIVATIONS:
        raise ValueError(f"the explorer runs LeNet-5 with activation {', '.join(_ACTIVATIONS)}; "
                         f"got {act!r}")
    if pool not in _POOLS:
        raise ValueError(f"the explorer runs LeNet-5 with pool {' or '.join(_POOLS)}; got {pool!r}")
    missing = [n for n in _LAYERS if not hasattr(model, n)]
    if missing:
        raise ValueError(f"not a LeNet-5: no layer {', '.join(missing)}")
    c1, c2 = model.conv1, model.conv2
    if c1.in_channels != 1 or c1.kernel_size != (5, 5) or c2.kernel_size != (5, 5) \
            or c1.padding != (0, 0) or c2.padding != (0, 0) or c2.in_channels != c1.out_channels:
        raise ValueError("not a LeNet-5: conv1 must be 1 -> K channels and conv2 K -> L, 5x5, "
                         "no padding")
    return {"pad_value": float(model.pad_value), "activation": act, "pool": pool,
            "leaky_slope": 0.01, "conv1_channels": c1.out_channels,
            "conv2_channels": c2.out_channels, "kernel": 5,
            "fc": [model.fc1.out_features, model.fc2.out_features, model.fc3.out_features]}


def background_crops(names=BACKGROUND_PHOTOS, seed: int = 0) -> dict[str, np.ndarray]:
    """One 28x28 grey uint8 patch per photograph, as Chapter 4 cuts them.

    ``backgrounds.sample_patches`` in the "seen" test regime (a place inside a dark
    chessboard block, pixel variance >= ``VAR_MIN``), seeded; the photographs load offline.
    """
    from recos_utils.core import backgrounds

    return {n: backgrounds.sample_patches(1, "seen", seed, photos=(n,))["patches"][0].numpy()
            for n in names}


def _check_meta(meta: dict, names) -> dict:
    """``meta`` validated: required keys present, no unknown key, accuracy per network."""
    known = META_KEYS["required"] + META_KEYS["optional"]
    missing = [k for k in META_KEYS["required"] if k not in meta]
    unknown = [k for k in meta if k not in known]
    if missing or unknown:
        raise ValueError(f"meta needs {', '.join(META_KEYS['required'])} and may hold "
                         f"{', '.join(META_KEYS['optional'])}; missing: {missing}, "
                         f"unknown: {unknown}")
    acc = meta.get("accuracy") or {}
    bad = [k for k in acc if k not in names]
    if bad:
        raise ValueError(f"meta['accuracy'] names networks not exported: {bad}")
    for name, a in acc.items():
        if not set(a) <= {"original", "reversed"} or not all(
                isinstance(v, (int, float)) and 0 <= v <= 1 for v in a.values()):
            raise ValueError(f"meta['accuracy'][{name!r}] must map 'original' and/or "
                             f"'reversed' to a fraction in [0, 1]; got {a!r}")
    out = {k: meta[k] for k in known if k in meta}
    out["chapter"] = out.get("chapter", "Chapter 2")
    return json.loads(json.dumps(out))  # plain JSON values only (fails early otherwise)


def _network_entry(name: str, model: nn.Module, meta: dict) -> dict:
    acc = (meta.get("accuracy") or {}).get(name)
    return {"description": NETWORKS[name], "arch": architecture(model),
            "meta": {**{k: v for k, v in meta.items() if k != "accuracy"},
                     "network": name, "accuracy": acc},
            "tensors": {k: encode_tensor(v) for k, v in model.state_dict().items()}}


def export(networks: dict[str, nn.Module], meta: dict, out_dir, *, test_images=None,
           test_labels=None, photos=None) -> Path:
    """Write ``out_dir/explorer_data.js`` for the explorer page; returns its path.

    ``networks``: name -> trained LeNet-5, names among :data:`NETWORKS` (Chapter 2:
    baseline, negated, paired, both). ``meta``: ``seed``, ``mode`` ("quick"/"full"),
    ``dataset``; optionally ``n_train``, ``chapter`` and ``accuracy`` = {name: {"original":
    fraction, "reversed": fraction}} (test-set accuracies the page prints).
    ``test_images``: uint8 N x 28 x 28 test digits (the first :data:`MAX_DIGITS` are kept)
    with ``test_labels``. ``photos``: name -> uint8 28 x 28 background patch; ``None``:
    :func:`background_crops`, ``{}``: none. Raises ``ValueError`` if the file would exceed
    :data:`MAX_BYTES`.
    """
    unknown = [n for n in networks if n not in NETWORKS]
    if not networks or unknown:
        raise ValueError(f"network names must be among {', '.join(NETWORKS)}; got "
                         f"{list(networks)}")
    meta = _check_meta(meta, networks)
    data = {"format": 1, "meta": meta,
            "networks": {n: _network_entry(n, networks[n], meta)
                         for n in NETWORKS if n in networks}}
    if test_images is not None:
        imgs = test_images[:MAX_DIGITS]
        if tuple(imgs.shape[1:]) != (28, 28):
            raise ValueError(f"test_images must be N x 28 x 28; got {tuple(test_images.shape)}")
        labels = [] if test_labels is None else [int(v) for v in test_labels[:len(imgs)]]
        if labels and len(labels) != len(imgs):
            raise ValueError("test_labels must hold a label per test image")
        data["digits"] = {**encode_uint8(imgs), "labels": labels}
    photos = background_crops() if photos is None else photos
    for name, p in photos.items():
        if tuple(np.shape(p)) != (28, 28):
            raise ValueError(f"background {name!r} must be 28 x 28; got {np.shape(p)}")
    data["backgrounds"] = {n: encode_uint8(p) for n, p in photos.items()}
    text = (f"// The RECOS explorer's weights and inputs (recos_utils.runner.explorer.export).\n"
            f"{_PREFIX}{json.dumps(data, allow_nan=False, separators=(',', ':'))};\n")
    if len(text) > MAX_BYTES:
        raise ValueError(f"explorer data is {len(text):,} bytes, over the page budget of "
                         f"{MAX_BYTES:,}: export fewer networks or digits")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / DATA_FILE
    path.write_text(text, encoding="ascii")
    return path


class WeightsError(ValueError):
    """A checkpoint ``export-weights`` cannot turn into a page network; the message says
    what is wrong and how to fix it."""


_SAVE_HINT = ("save the network's weights with torch.save(model.state_dict(), PATH), "
              "model being recos_utils.core.models.LeNet5")


def _shape(shape) -> str:
    return "x".join(str(int(n)) for n in shape)


def load_state_dict(path) -> dict[str, torch.Tensor]:
    """The LeNet-5 ``state_dict`` in the checkpoint at ``path``, checked.

    Loads with ``torch.load(path, map_location="cpu", weights_only=True)`` (no code from the
    file runs); a dict with a ``"state_dict"`` key (a training checkpoint) is unwrapped.
    Raises :class:`WeightsError` for a missing file, a file ``weights_only`` refuses or cannot
    read, or weights of another architecture (naming the first missing or mismatching layer
    with its shape, expected vs found)."""
    import pickle

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"no checkpoint at {path}{' (a folder)' if path.is_dir() else ''}: "
                           f"give the path of a file written by torch.save")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" not in str(e).lower() and "weights_only" not in str(e).lower():
            raise WeightsError(f"{path} is not a PyTorch checkpoint that torch.load can read "
                               f"({str(e).splitlines()[0][:160]}): {_SAVE_HINT}") from None
        raise WeightsError(f"{path} holds more than weights (torch.load with weights_only=True "
                           f"refuses it: it pickles Python objects, which could run code): "
                           f"{_SAVE_HINT}") from None
    except Exception as e:  # noqa: BLE001 - a corrupt or foreign file: one message
        first = (str(e).splitlines() or [type(e).__name__])[0][:160]
        raise WeightsError(f"{path} is not a PyTorch checkpoint that torch.load can read "
                           f"({type(e).__name__}: {first}): {_SAVE_HINT}") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        what = type(obj).__name__ if not isinstance(obj, dict) else "a dict of other things"
        raise WeightsError(f"{path} holds {what}, not a state_dict (layer name -> tensor): "
                           f"{_SAVE_HINT}")
    for name, want in LENET5_SHAPES.items():
        if name not in obj:
            raise WeightsError(f"{path} is not the book's LeNet-5: layer {name} (expected shape "
                               f"{_shape(want)}) is missing (the file has {len(obj)} "
                               f"tensors{': ' if obj else ''}{', '.join(list(obj)[:6])}"
                               f"{', ...' if len(obj) > 6 else ''}); "
                               f"{_SAVE_HINT}")
        got = tuple(obj[name].shape)
        if got != want:
            raise WeightsError(f"{path} is not the book's LeNet-5: layer {name} has shape "
                               f"{_shape(got)}, expected {_shape(want)}. The explorer runs "
                               f"LeNet-5 as recos_utils.core.models.LeNet5 builds it (conv1 "
                               f"6x1x5x5, conv2 16x6x5x5, fc1 120x400, fc2 84x120, fc3 10x84)")
    extra = [k for k in obj if k not in LENET5_SHAPES]
    if extra:
        raise WeightsError(f"{path} is not the book's plain LeNet-5: it also holds "
                           f"{', '.join(extra[:4])}{', ...' if len(extra) > 4 else ''} (batch "
                           f"normalisation or other layers the explorer cannot run): export a "
                           f"LeNet5 built with batchnorm=False")
    for name in LENET5_SHAPES:
        t = obj[name]
        if not t.is_floating_point():
            raise WeightsError(f"{path}: layer {name} holds {t.dtype} values, not floating "
                               f"point: {_SAVE_HINT}")
        if not torch.isfinite(t).all():
            raise WeightsError(f"{path}: layer {name} holds NaN or infinite values: export a "
                               f"network whose training did not diverge")
    return {k: obj[k].detach().to(torch.float32).contiguous() for k in LENET5_SHAPES}


def reader_entry(state_dict: dict, *, activation: str = "relu", pool: str = "max",
                 pad_value: float = 0.0, source: str = "") -> dict:
    """A reader's LeNet-5 as the page's network entry (:func:`export`'s per-network
    structure, plus ``kind`` and ``format``)."""
    from recos_utils.core.models import LeNet5

    if activation not in _ACTIVATIONS or pool not in _POOLS:
        raise WeightsError(f"activation must be one of {', '.join(_ACTIVATIONS)} and pool one "
                           f"of {', '.join(_POOLS)}; got {activation!r}, {pool!r}")
    if not math.isfinite(pad_value):
        raise WeightsError(f"pad_value must be a finite number; got {pad_value}")
    model = LeNet5(activation, pool, pad_value=pad_value)
    model.load_state_dict(state_dict)
    return {"kind": READER_KIND, "format": 1,
            "description": f"your LeNet-5 ({activation}, {pool} pooling)",
            "arch": architecture(model),
            "meta": {"network": "yours", "source": source, "exported_by":
                     "recos-book export-weights"},
            "tensors": {k: encode_tensor(v) for k, v in model.state_dict().items()}}


def export_weights(checkpoint, out, *, activation: str = "relu", pool: str = "max",
                   pad_value: float = 0.0) -> Path:
    """``recos-book export-weights``: write the LeNet-5 in ``checkpoint`` (a ``state_dict``
    saved by ``torch.save``) to ``out`` as JSON for the explorer page's file picker.

    Checks with :func:`load_state_dict` (raises :class:`WeightsError`), then writes a
    temporary file next to ``out`` and renames it: ``out`` is whole or untouched."""
    import os
    import tempfile

    sd = load_state_dict(checkpoint)
    entry = reader_entry(sd, activation=activation, pool=pool, pad_value=pad_value,
                         source=Path(checkpoint).name)
    text = json.dumps(entry, allow_nan=False, separators=(",", ":")) + "\n"
    if len(text) > READER_MAX_BYTES:  # cannot happen for LeNet-5's 61,706 weights
        raise WeightsError(f"the export is {len(text):,} bytes, over the page's limit of "
                           f"{READER_MAX_BYTES:,}")
    out = Path(out)
    if out.is_dir():
        raise WeightsError(f"{out} is a folder: give the path of the JSON file to write, "
                           f"such as {out / 'my_lenet5.json'}")
    if not out.parent.is_dir():
        raise WeightsError(f"the folder {out.parent} does not exist: create it or write "
                           f"elsewhere")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from a web server
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def read_data(path) -> dict:
    """The dict an exported ``explorer_data.js`` assigns (for tests and checks)."""
    text = Path(path).read_text(encoding="ascii")
    start = text.index(_PREFIX) + len(_PREFIX)
    return json.loads(text[start:].rstrip().rstrip(";"))


def html_fragment(static: str = "../_static") -> str:
    """The page's HTML mount: style sheet, the element the script fills, data and script.

    ``static`` is the ``_static`` folder relative to the page (``../_static`` for
    ``html/book/explore.html``). ``book/explore.md`` holds exactly this text.
    """
    s = f"{static}/explorer"
    return "\n".join([
        f'<link rel="stylesheet" href="{s}/explorer.css">',
        '<div id="recos-explorer" class="recos-explorer">',
        '  <p class="rx-message">Loading the explorer&hellip; (it needs JavaScript)</p>',
        "</div>",
        f'<script src="{s}/{DATA_FILE}"></script>',
        f'<script src="{s}/recos_explorer.js"></script>',
    ])
