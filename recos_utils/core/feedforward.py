"""Saak and Saab stages, least-squares layers: CNNs designed without backprop (Chapter 6).

Saak (Kuo & Chen 2017, arXiv:1710.04176): a stage projects non-overlapping 2x2 windows on
the DC kernel 1/sqrt(d) and all d - 1 AC kernels, the principal components of mean-removed
windows (no labels), and pairs each AC kernel with its negative, c -> (Rec(c), Rec(-c)); as
the kernels are orthonormal and Rec(c) - Rec(-c) = c, a transposed convolution inverts it.
AC kernels are orthogonal to the constant, so reversal x -> 1 - x negates every AC
coefficient: the pairs swap exactly, DC becomes sqrt(d) - DC, and stage 2 sees the swap as
a new input (``reversal_report``). Saab, the FF-designed LeNet-5 (Kuo, Zhang, Li, Duan,
Chen, JVCI 2019, arXiv:1810.02786): conv layers are the DC kernel plus the leading AC
components, stride 1, with one bias b = max ||x|| over the training windows, so a . x + b
>= 0 for unit kernels a and ReLU changes nothing; FC layers are least squares to one-hot
k-means pseudo-labels found inside each class (120, then 84) + ReLU; the output is least
squares to one-hot classes. Choices left open: PCA centres over the sample too, on
``max_windows`` windows drawn with replacement, in float64 on the complement of the
constant; each kernel's largest |entry| is positive; k-means is Euclidean on the raw
features (standardised measured no better); a layer's bias stays (the next AC kernels are
blind to it, least squares absorbs it). Design convolutions run in float32, the rest in
float64. Deterministic for a given seed (layer i uses seed + i).
"""
from __future__ import annotations

import functools
import itertools
import math
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from recos_utils.core import recos, sphere
from recos_utils.core.data import reverse_grey

__all__ = ["FeedforwardError", "prepare", "sample_windows", "pca_kernels", "SaakStage",
           "SaakCascade", "saak_cascade", "reversal_report", "SaabLayer",
           "max_window_norm", "lstsq_layer", "kmeans", "cluster_counts",
           "pseudo_labels", "FFConfig", "FFLeNet5", "conv_stage", "design_lenet5", "features", "logits",
           "predict", "to_state", "from_state"]


class FeedforwardError(ValueError):
    """A feed-forward design parameter is impossible; the message names it and the limit."""


def _need(ok: bool, msg: str) -> None:
    """Raise :class:`FeedforwardError` with ``msg`` unless ``ok``."""
    if not ok:
        raise FeedforwardError(msg)


def _kernel_limit(n, d: int, shape: str, what: str) -> None:
    """At most d orthonormal kernels exist on d-dimensional windows."""
    _need(isinstance(n, int) and not isinstance(n, bool) and n >= 1,
          f"{what}={n!r} must be a positive integer")
    _need(n <= d, f"{what}={n} exceeds the window dimension {d} ({shape}): at most {d} "
                  f"kernels exist; use {what} <= {d}")


def _check_layer(x: torch.Tensor, k: int, n_kernels, stride: int = 1, padding: int = 0,
                 what: str = "n_kernels") -> None:
    """Input N x C x H x W, a window that tiles it, at most C k k kernels."""
    _need(x.dim() == 4 and len(x) >= 1, f"expected images N x C x H x W, got {tuple(x.shape)}")
    h, w = x.shape[2] + 2 * padding, x.shape[3] + 2 * padding
    _need(isinstance(k, int) and 1 <= k <= min(h, w) and (h - k) % stride == (w - k) % stride
          == 0, f"window={k!r}, stride={stride} does not tile the (padded) input {h}x{w}")
    if n_kernels is not None:
        _kernel_limit(n_kernels, x.shape[1] * k * k, f"{k}x{k}x{x.shape[1]}", what)


def prepare(images: torch.Tensor, pad: int = 2, dtype=torch.float64) -> torch.Tensor:
    """uint8 digits (N x 28 x 28 or N x 1 x H x W) -> floats in [0, 1], zero-padded by ``pad``."""
    x = images.to(dtype) / 255.0 if images.dtype == torch.uint8 else images.to(dtype)
    return F.pad(x.unsqueeze(1) if x.dim() == 3 else x, (pad,) * 4)


def sample_windows(x: torch.Tensor, k: int, n: int | None = None, seed: int = 0,
                   stride: int = 1) -> torch.Tensor:
    """``n`` k x k windows of ``x`` (N x C x H x W) as float64 rows in conv layout, drawn
    uniformly with replacement (seeded); all windows, in order, if ``n`` is None or more."""
    N, C, H, W = x.shape
    ho, wo = (H - k) // stride + 1, (W - k) // stride + 1
    if n is None or n >= N * ho * wo:
        return recos.patches(x, k, stride=stride).reshape(-1, C * k * k).double()
    idx = torch.randint(N * ho * wo, (n,), generator=torch.Generator().manual_seed(seed))
    img, pos, off = idx // (ho * wo), idx % (ho * wo), torch.arange(k)
    rows, cols = ((pos // wo) * stride)[:, None] + off, ((pos % wo) * stride)[:, None] + off
    win = x[img[:, None, None, None], torch.arange(C)[None, :, None, None],
            rows[:, None, :, None], cols[:, None, None, :]]
    return win.reshape(n, -1).double()


def _ac_basis(d: int) -> torch.Tensor:
    """Orthonormal basis (d x d-1) of 1-perp: columns 2..d of the Householder H e_1 = 1/sqrt(d)."""
    eye = torch.eye(d, dtype=torch.float64)
    v = eye[0] - d ** -0.5  # e_1 - 1/sqrt(d); 0 for d = 1, where H = I
    return (eye - 2 * torch.outer(v, v) / (v @ v).clamp_min(1e-300))[:, 1:]


def pca_kernels(windows: torch.Tensor, n_ac: int | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(kernels (1 + n_ac) x d: DC, then the ``n_ac`` (default d - 1) leading AC kernels; AC
    eigenvalues) of ``windows`` (n x d), mean-removed, centred, by float64 ``eigh``."""
    X = windows.double()
    n, d = X.shape
    n_ac = d - 1 if n_ac is None else n_ac
    _need(0 <= n_ac <= d - 1, f"n_ac={n_ac} AC kernels asked for, {d - 1} exist (d={d})")
    _need(n >= 2, f"PCA needs at least 2 windows, got {n}")
    X = X - X.mean(1, keepdim=True)
    mu, Q = X.mean(0), _ac_basis(d)
    evals, V = torch.linalg.eigh(Q.T @ ((X.T @ X - n * torch.outer(mu, mu)) / (n - 1)) @ Q)
    evals, ac = evals.flip(0)[:n_ac], (Q @ V.flip(1)).T[:n_ac]
    ac = ac * torch.sign(ac.gather(1, ac.abs().argmax(1, keepdim=True)))
    return torch.cat([torch.full((1, d), d ** -0.5, dtype=torch.float64), ac]), evals.clamp_min(0)


# --------------------------------------------------------------------------- Saak
@dataclass
class SaakStage:
    """One Saak stage: kernels ((1 + n_ac) x C x w x w, float64, orthonormal), stride w."""

    kernels: torch.Tensor
    eigenvalues: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor, window: int = 2, n_ac: int | None = None,
            max_windows: int | None = 200_000, seed: int = 0) -> "SaakStage":
        """Fit on ``x`` (N x C x H x W): PCA of non-overlapping window x window windows."""
        _check_layer(x, window, None if n_ac is None else n_ac + 1, window, 0, "1 + n_ac")
        kern, ev = pca_kernels(sample_windows(x, window, max_windows, seed, window), n_ac)
        return cls(kern.reshape(-1, x.shape[1], window, window), ev)

    def coefficients(self, x: torch.Tensor) -> torch.Tensor:
        """The projections (DC, then AC), N x (1 + n_ac) x H/w x W/w."""
        return F.conv2d(x, self.kernels.to(x.dtype), stride=self.kernels.shape[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[DC, Rec(c_1..c_m), Rec(-c_1..-c_m)]: each AC kernel and its negative, rectified."""
        c = self.coefficients(x)
        return torch.cat([c[:, :1], c[:, 1:].relu(), (-c[:, 1:]).relu()], 1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """Back to the input: c = Rec(c) - Rec(-c), then the transposed convolution."""
        dc, p, n = y.tensor_split([1, len(self.kernels)], 1)
        return F.conv_transpose2d(torch.cat([dc, p - n], 1), self.kernels.to(y.dtype),
                                  stride=self.kernels.shape[-1])


class SaakCascade(list):
    """A list of Saak stages, each fitted on the previous stage's output."""

    def outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every stage's output, first stage first."""
        return list(itertools.accumulate(self, lambda v, s: s.forward(v), initial=x))[1:]

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        """From the last stage's output back through every stage to the (padded) images."""
        return functools.reduce(lambda v, s: s.inverse(v), reversed(self), y)


def saak_cascade(images: torch.Tensor, stages: int = 2, window: int = 2,
                 max_windows: int | None = 200_000, seed: int = 0) -> SaakCascade:
    """Fit ``stages`` complete Saak stages (seed + i) on N x C x H x W or uint8 digits."""
    _need(isinstance(stages, int) and stages >= 1, f"stages={stages!r} must be >= 1")
    x, fitted = (prepare(images) if images.dtype == torch.uint8 else images.double()), []
    for i in range(stages):
        fitted.append(SaakStage.fit(x, window, None, max_windows, seed + i))
        x = fitted[-1].forward(x)
    return SaakCascade(fitted)


def reversal_report(cascade: SaakCascade, x: torch.Tensor, x_rev: torch.Tensor | None = None,
                    tol: float = 1e-9) -> dict:
    """Per stage (1, 2), how far reversal x_rev (default 1 - x) is from swapping each AC
    kernel's output with its negative's: max and relative |r' - swap(r)| over the pair
    outputs r (0 for a swap), the fraction of AC coefficients |c|, |c'| > ``tol`` whose sign
    flips (1 for a swap, ~1/2 by chance), max |DC' - DC|, max |DC' - (sqrt(d) - DC)|."""
    out, a, b = {}, x, (reverse_grey(x) if x_rev is None else x_rev)
    for i, s in enumerate(cascade[:2], start=1):
        c, cr, y, yr = (f(v) for f in (s.coefficients, s.forward) for v in (a, b))
        m, r, rr, dc, dcr = len(s.kernels) - 1, y[:, 1:], yr[:, 1:], c[:, 0], cr[:, 0]
        dev = rr - torch.cat([r[:, m:], r[:, :m]], 1)
        big = (c[:, 1:].abs() > tol) & (cr[:, 1:].abs() > tol)
        out[f"stage{i}"] = {
            "max_swap_dev": dev.abs().max().item(), "rel_swap_dev": (dev.norm() / r.norm()).item(),
            "frac_pairs_swapped": ((c * cr)[:, 1:] < 0)[big].double().mean().item(),
            "dc_max_change": (dcr - dc).abs().max().item(),
            "dc_identity_dev": (dcr + dc - s.kernels[0].numel() ** 0.5).abs().max().item()}
        a, b = y, yr
    return out


# --------------------------------------------------------------------------- Saab
def max_window_norm(x: torch.Tensor, k: int, padding: int = 0, batch: int = 1000) -> float:
    """max ||x|| over all k x k windows of ``x``: float64 box sums of x^2, in batches."""
    best = 0.0
    for i in range(0, len(x), batch):
        s = F.pad(x[i:i + batch].double().square().sum(1), (padding,) * 4)
        best = max(best, s.unfold(2, k, 1).sum(-1).unfold(1, k, 1).sum(-1).max().item())
    return math.sqrt(best)


@dataclass
class SaabLayer:
    """Saab conv: kernels (K x C x k x k, float64, DC first, orthonormal), one bias b, stride 1."""

    kernels: torch.Tensor
    bias: float
    padding: int = 0
    eigenvalues: torch.Tensor = field(default_factory=lambda: torch.zeros(0))

    @classmethod
    def fit(cls, x: torch.Tensor, window: int = 5, n_kernels: int = 6, padding: int = 0,
            max_windows: int | None = 200_000, seed: int = 0, batch: int = 1000) -> "SaabLayer":
        """Fit on ``x`` (N x C x H x W): DC + (n_kernels - 1) PCA kernels, b = max ||x||."""
        _check_layer(x, window, n_kernels, 1, padding)
        kern, ev = pca_kernels(sample_windows(F.pad(x, (padding,) * 4), window, max_windows,
                                              seed), n_kernels - 1)
        return cls(kern.reshape(n_kernels, x.shape[1], window, window),
                   max_window_norm(x, window, padding, batch), padding, ev)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """conv2d(x, kernels) + b: non-negative on the fitting data, so ReLU is the identity."""
        return F.conv2d(x, self.kernels.to(x.dtype), padding=self.padding) + self.bias


# --------------------------------------------------------------------------- least squares
def lstsq_layer(features: torch.Tensor, targets: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(W, b) minimising ||[X 1] [W; b] - T|| in float64 (LAPACK gelsd, the SVD solver)."""
    X, T = features.double(), targets.double()
    _need(len(X) == len(T) >= 1, f"{len(X)} feature rows but {len(T)} target rows")
    sol = torch.linalg.lstsq(F.pad(X, (0, 1), value=1.0), T, driver="gelsd").solution
    return sol[:-1], sol[-1]


def kmeans(x: torch.Tensor, k: int, seed: int = 0, iters: int = 20
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean k-means in float64 -> (centroids k x d, labels): seeded k-means++, then at
    most ``iters`` Lloyd rounds; an empty cluster takes the point farthest from its centroid."""
    X = x.double()
    _need(1 <= k <= len(X), f"k={k} clusters asked for {len(X)} points")
    g = torch.Generator().manual_seed(seed)
    draw = lambda w: int(torch.multinomial(torch.ones(len(X)) if w is None else w,
                                           1, generator=g)[0])
    C = X[sphere.kmeanspp(k, lambda j: (X - X[j]).square().sum(1), draw)]  # distance^2
    labels = None
    for _ in range(iters):
        new = (X @ C.T - 0.5 * C.square().sum(1)).argmax(1)
        if labels is not None and torch.equal(new, labels):
            break
        labels, onehot = new, F.one_hot(new, k).double()
        C = (onehot.T @ X) / (counts := onehot.sum(0)).clamp_min(1)[:, None]
        empty = torch.nonzero(counts == 0).flatten()
        C[empty] = X[(X - C[labels]).square().sum(1).topk(len(empty)).indices]
    return C, (X @ C.T - 0.5 * C.square().sum(1)).argmax(1)


def cluster_counts(n_total: int, classes) -> list[int]:
    """Clusters per class of ``classes`` (a count, or class sizes, then checked): n_total //
    n_classes each, one more for the first n_total % n_classes (84 over 10: 9,9,9,9,8,...)."""
    sizes = [n_total] * classes if isinstance(classes, int) else list(classes)
    _need(isinstance(n_total, int) and n_total >= len(sizes) >= 1,
          f"n_clusters_total={n_total!r} must be at least the number of classes {len(sizes)}")
    q, r = divmod(n_total, len(sizes))
    counts = [q + (c < r) for c in range(len(sizes))]
    for c, (k, m) in enumerate(zip(counts, sizes)):
        _need(k <= m, f"{n_total} pseudo-labels give class {c} {k} clusters, but it has "
                      f"only {m} samples; use fewer clusters or more training images")
    return counts


def pseudo_labels(features: torch.Tensor, labels: torch.Tensor, n_clusters_total: int,
                  seed: int = 0, iters: int = 20) -> torch.Tensor:
    """One-hot targets (N x n_clusters_total, float64): k-means inside each class c (seed
    ``seed + c``) with ``cluster_counts`` clusters, numbered after class c-1's clusters."""
    counts = cluster_counts(n_clusters_total, torch.bincount(labels).tolist())
    T, start = torch.zeros(len(labels), n_clusters_total, dtype=torch.float64), 0
    for c, k in enumerate(counts):
        idx = torch.nonzero(labels == c).flatten()
        T[idx, start + kmeans(features[idx], k, seed + c, iters)[1]] = 1.0
        start += k
    return T


# --------------------------------------------------------------------------- FF LeNet-5
@dataclass(frozen=True)
class FFConfig:
    """The FF-designed LeNet-5: kernels per conv layer, window, FC widths, windows per PCA,
    k-means rounds, seed, first ``n_train`` images (None: all), images per conv batch."""

    conv: tuple[int, ...] = (6, 16)
    window: int = 5
    fc: tuple[int, ...] = (120, 84)
    max_windows: int = 200_000
    kmeans_iters: int = 20
    seed: int = 0
    n_train: int | None = None
    batch: int = 500

    def check(self, labels: torch.Tensor) -> None:
        """Raise one FeedforwardError, before any work, if the design is impossible."""
        ints = {"window": self.window, "max_windows": self.max_windows, "batch": self.batch,
                "kmeans_iters": self.kmeans_iters, "n_train": self.n_train or 1,
                **{f"fc[{i}]": k for i, k in enumerate(self.fc)}}
        for name, v in ints.items():
            _need(isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                  f"{name}={v!r} must be a positive integer")
        _need(isinstance(self.seed, int) and self.seed >= 0 and self.n_train != 0,
              f"seed={self.seed!r} must be >= 0 and n_train={self.n_train!r} None or >= 1")
        c, h, w = 1, 32, self.window
        for i, k in enumerate(self.conv):
            _kernel_limit(k, c * w * w, f"{w}x{w}x{c}", f"conv[{i}]")
            c, h = k, (h - w + 1) // 2
            _need(h >= 1, f"window={w}: conv layer {i + 1}'s output vanishes")
        for n in self.fc:
            cluster_counts(n, torch.bincount(labels[:self.n_train]).tolist())


@dataclass
class FFLeNet5:
    """Saab conv layers, FC (W, b) pairs (the last to the classes), config, seconds per stage."""

    conv: list[SaabLayer]
    fc: list[tuple[torch.Tensor, torch.Tensor]]
    config: FFConfig
    times: dict = field(default_factory=dict)
    min_response: dict = field(default_factory=dict)   # per conv layer, on the design data


def conv_stage(layer: SaabLayer, x: torch.Tensor, batch: int, lows: list | None = None):
    """ReLU(Saab(x)) then 2x2 max pooling, in batches, in the dtype of ``x``; each batch's
    smallest response (before the ReLU) is appended to ``lows`` if given."""
    out = []
    for i in range(0, len(x), batch):
        r = layer.transform(x[i:i + batch])
        lows is None or lows.append(r.min().item())
        out.append(F.max_pool2d(r.relu(), 2))
    return torch.cat(out)


def features(model: FFLeNet5, images: torch.Tensor) -> list[torch.Tensor]:
    """The conv features of uint8 digits (N x 400, float64), then each FC layer's output."""
    x = functools.reduce(lambda v, layer: conv_stage(layer, v, model.config.batch),
                         model.conv, prepare(images, 2, torch.float32))
    out = [x.flatten(1).double()]
    for j, (W, b) in enumerate(model.fc):
        out.append(out[-1] @ W + b if j == len(model.fc) - 1 else (out[-1] @ W + b).relu())
    return out


def design_lenet5(images: torch.Tensor, labels: torch.Tensor,
                  cfg: FFConfig = FFConfig()) -> FFLeNet5:
    """LeNet-5 designed on uint8 digits: conv1 Saab 5x5 on the 32x32 padded input, ReLU
    (identity), 2x2 max pool; conv2 likewise -> 400 features; FC: least squares to
    ``cfg.fc`` k-means pseudo-labels + ReLU; output: least squares to one-hot classes."""
    cfg.check(labels)
    images, labels = images[:cfg.n_train], labels[:cfg.n_train]
    x, convs, times, t0 = prepare(images, 2, torch.float32), [], {}, time.perf_counter()
    mins = {}
    for i, k in enumerate(cfg.conv):
        convs.append(SaabLayer.fit(x, cfg.window, k, 0, cfg.max_windows, cfg.seed + i,
                                   2 * cfg.batch))
        x = conv_stage(convs[-1], x, cfg.batch, lows := [])
        mins[f"conv{i + 1}"] = min(lows)
        times[f"conv{i + 1}"], t0 = time.perf_counter() - t0, time.perf_counter()
    f, fc, x = x.flatten(1).double(), [], None
    for j, m in enumerate(cfg.fc):
        T = pseudo_labels(f, labels, m, cfg.seed + len(cfg.conv) + j, cfg.kmeans_iters)
        fc.append(lstsq_layer(f, T))
        f = (f @ fc[-1][0] + fc[-1][1]).relu()
        times[f"fc{j + 1}"], t0 = time.perf_counter() - t0, time.perf_counter()
    fc.append(lstsq_layer(f, F.one_hot(labels).double()))
    times["output"] = time.perf_counter() - t0
    return FFLeNet5(convs, fc, cfg, times, mins)


def logits(model: FFLeNet5, images: torch.Tensor) -> torch.Tensor:
    """Class scores (N x classes, float64) of uint8 digits."""
    return features(model, images)[-1]


def predict(model: FFLeNet5, images: torch.Tensor) -> torch.Tensor:
    """Predicted classes: argmax of ``logits``."""
    return logits(model, images).argmax(1)


def to_state(model: FFLeNet5) -> dict:
    """A dict of tensors, lists and numbers (for the model cache); ``from_state`` inverts it."""
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(model.config).items()}
    return {"config": cfg, "conv": [asdict(c) for c in model.conv],
            "fc": [list(p) for p in model.fc], "times": dict(model.times),
            "min_response": dict(model.min_response)}


def from_state(state: dict) -> FFLeNet5:
    """Rebuild an ``FFLeNet5`` from ``to_state``'s dict."""
    cfg = {k: (tuple(v) if isinstance(v, list) else v) for k, v in state["config"].items()}
    return FFLeNet5([SaabLayer(**c) for c in state["conv"]], [tuple(p) for p in state["fc"]],
                    FFConfig(**cfg), dict(state["times"]), dict(state["min_response"]))
