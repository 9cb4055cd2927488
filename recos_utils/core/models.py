"""The LeNet-5 family and activations chosen by name (Chapters 1-4).

LeNet-5 as in LeCun et al. (1998) and as the paper uses it: the 28x28 digit is padded to
32x32, then C1 6@5x5, S2 pool, C3 16@5x5, S4 pool, C5 120 (a 5x5 layer on the 5x5 maps,
i.e. 120 anchors of dimension 400), F6 84, output 10. Every layer but the last is followed
by the activation, which is the paper's rectifier ``R`` in ``B_l = R o A_l`` (Chapter 5,
eq. d = B_L ... B_1 x); Chapter 2 swaps it to test why rectification is needed.

Inputs are float images in [0, 1] (uint8 / 255), N x 1 x 28 x 28. The padding value is a
parameter (``pad_value``) so that the grey-scale reversal identity of Chapter 2 can hold
exactly at the border: a reversed image is padded with white (1) rather than black (0).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from recos_utils.core import fastpool

__all__ = ["ACTIVATIONS", "MONOTONE", "trelu", "TReLU", "augmented_norms", "Abs",
           "make_activation", "MaxPool2x2", "LeNet5"]

#: Activation names accepted everywhere in the book.
ACTIVATIONS = ("relu", "identity", "leaky_relu", "tanh", "sigmoid", "abs", "trelu")
#: The non-decreasing elementwise ones: for these, max pooling commutes with the activation.
#: (TReLU thresholds a cosine that depends on each patch's norm, so it is not elementwise.)
MONOTONE = ("relu", "identity", "leaky_relu", "tanh", "sigmoid")
POOLS = ("max", "avg")


def trelu(c: torch.Tensor, z: float) -> torch.Tensor:
    """The threshold ReLU of Kuo (2017) on a cosine: 0 for c < z, (c - z) / (1 - z) otherwise.

    The map sends [z, 1] onto [0, 1] (it fixes 1), so it is meant for a correlation of unit
    vectors; z = 0 is ReLU (Chapter 2, Sec. 2.8).
    """
    return F.relu(c - z) / (1.0 - z)


class TReLU(nn.Module):
    """Threshold ReLU applied to the rectified cosine of Chapter 1 (Kuo 2017; Chapter 2).

    Chapter 1, Sec. 1.4: with the bias as an augmented coordinate, x'' = (1, x) and
    a'' = (b, a), a response is y = ||x''|| ||a''|| Rec(cos theta). The threshold z applies
    to that cosine, not to the raw pre-activation (whose scale depends on the
    initialisation):

        y = ||x''|| ||a''|| TReLU_z(cos theta) = Rec(a''.x'' - z ||x''|| ||a''||) / (1 - z).

    ``forward(pre, x, layer)`` takes the layer's output ``pre = a.x + b``, its input ``x``
    (already padded, for a convolution) and the layer itself, whose weights give ||a''||;
    ||x''|| is computed per patch with a convolution of x^2 by a box of ones. With z = 0
    it is exactly ReLU.
    """

    def __init__(self, z: float = 0.5):
        super().__init__()
        if not 0.0 <= z < 1.0:
            raise ValueError(f"trelu threshold z={z!r} is out of range; allowed: 0 <= z < 1")
        self.z = float(z)

    def forward(self, pre: torch.Tensor, x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
        if self.z == 0.0:
            return F.relu(pre)
        return F.relu(pre - self.z * augmented_norms(x, layer)) / (1.0 - self.z)

    def extra_repr(self) -> str:
        return f"z={self.z}"


def augmented_norms(x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """||x''|| ||a''|| for every response of ``layer`` on input ``x`` (Chapter 1, Sec. 1.4).

    x'' = (1, patch) and a''_k = (b_k, a_k); the result has the shape of ``layer(x)``.
    """
    w = layer.weight
    b = layer.bias if layer.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype,
                                                              device=w.device)
    a_norm = (w.flatten(1).pow(2).sum(1) + b.pow(2)).sqrt()
    if isinstance(layer, nn.Conv2d):
        box = torch.ones((1, *w.shape[1:]), dtype=x.dtype, device=x.device)
        x_sq = F.conv2d(x * x, box, stride=layer.stride, padding=layer.padding,
                        dilation=layer.dilation)
        return (1.0 + x_sq).sqrt() * a_norm.view(1, -1, 1, 1)
    x_norm = (1.0 + (x * x).sum(-1, keepdim=True)).sqrt()
    return x_norm * a_norm


class Abs(nn.Module):
    """|x|: keeps the magnitude, drops the sign (Chapter 2: the paired-anchor view)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs()


def make_activation(name: str, z: float = 0.5) -> nn.Module:
    """The activation module called ``name`` (one of :data:`ACTIVATIONS`)."""
    table = {
        "relu": nn.ReLU, "identity": nn.Identity, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
        "leaky_relu": lambda: nn.LeakyReLU(0.01), "abs": Abs, "trelu": lambda: TReLU(z),
    }
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; allowed: {', '.join(ACTIVATIONS)}")
    return table[name]()


class MaxPool2x2(nn.MaxPool2d):
    """2x2 max pooling with stride 2 (LeNet-5's S2 and S4): ``nn.MaxPool2d(2)``, faster when
    no gradient is asked for.

    Evaluation and the chapters' readings need only the values: the largest of the four
    strided quarter grids x[0::2, 0::2], x[0::2, 1::2], x[1::2, 0::2], x[1::2, 1::2] is
    the pooled map exactly (a maximum does no arithmetic, so not a bit changes; NaN
    propagates as in the kernel), in the input's memory layout. On one CPU thread it is
    5-6x faster than the kernel for LeNet-5's 6 channels in channels-last layout
    (``benchmarks/RESULTS.md``). Training (a gradient asked for) uses the compiled loop of
    :mod:`recos_utils.core.fastpool`, the kernel's forward and backward bit for bit and about
    3x faster, where a C compiler is found; PyTorch's kernel otherwise.
    """

    def __init__(self):
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and torch.is_grad_enabled():
            return fastpool.max_pool2x2(x) if fastpool.supports(x) else super().forward(x)
        h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2   # floor: an odd last row is dropped
        x = x[..., :h, :w]
        return torch.maximum(torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2]),
                             torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2]))


def _pool(kind: str) -> nn.Module:
    if kind == "max":
        return MaxPool2x2()
    if kind == "avg":
        return nn.AvgPool2d(2)
    raise ValueError(f"unknown pooling {kind!r}; allowed: {', '.join(POOLS)}")


class LeNet5(nn.Module):
    """LeNet-5 with a chosen activation and pooling.

    Layers are named as in the paper's figures: ``conv1`` (C1), ``conv2`` (C3),
    ``fc1`` (C5, 120 units on the 16x5x5 maps), ``fc2`` (F6), ``fc3`` (output).
    ``batchnorm=True`` normalises the input of conv1, conv2, fc1 and fc2 by batch
    normalisation (``bn1`` .. ``bn4``, no learned scale or shift; Chapter 1, Sec. 1.6); with
    the default ``False`` the network, its parameters and its ``state_dict`` are the plain one.
    """

    def __init__(self, activation: str = "relu", pool: str = "max", trelu_z: float = 0.5,
                 pad_value: float = 0.0, batchnorm: bool = False):
        super().__init__()
        self.activation, self.pool_kind, self.pad_value = activation, pool, float(pad_value)
        self.batchnorm = bool(batchnorm)
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)
        if self.batchnorm:
            # Chapter 1, Sec. 1.6: batch normalisation of the data points *feeding* each
            # RECOS layer (its input, not its output), without a learned scale and shift:
            # the padded image for conv1, the pooled maps for conv2, the 400-vector for fc1,
            # the 120 rectified responses for fc2. Created after the layers and drawing no
            # random numbers, so the layers' initialisation is the plain network's.
            self.bn1 = nn.BatchNorm2d(1, affine=False)
            self.bn2 = nn.BatchNorm2d(6, affine=False)
            self.bn3 = nn.BatchNorm1d(16 * 5 * 5, affine=False)
            self.bn4 = nn.BatchNorm1d(120, affine=False)
        self.act1, self.act2, self.act3, self.act4 = (make_activation(activation, trelu_z)
                                                      for _ in range(4))
        self.pool1, self.pool2 = _pool(pool), _pool(pool)
        # max(f(a), f(b)) == f(max(a, b)) for a non-decreasing f, so ``forward`` may pool
        # first and apply the activation to a quarter of the values: the same function,
        # about 10% faster to train on the CPU (benchmarks/RESULTS.md). ``features`` keeps
        # the textbook order, conv -> activation -> pool, for the chapters' analyses.
        self.pool_first = pool == "max" and activation in MONOTONE

    def _act(self, act: nn.Module, pre: torch.Tensor, x: torch.Tensor,
             layer: nn.Module) -> torch.Tensor:
        """The activation of ``layer``'s output ``pre`` (TReLU also needs its input ``x``)."""
        return act(pre, x, layer) if isinstance(act, TReLU) else act(pre)

    def _bn(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """The batch normalisation of layer ``i``'s input (1: conv1 ... 4: fc2), or ``x``."""
        return getattr(self, f"bn{i}")(x) if self.batchnorm else x

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every stage's output, by name (conv1, relu1, pool1, conv2, relu2, pool2, ...),
        and the input each RECOS layer correlates with its anchors (``in_conv1``: the padded
        image, ``in_conv2``, ``in_fc1``: the flattened 400-vector, ``in_fc2``), after the
        batch normalisation when the network has it."""
        out = {}
        x = F.pad(x, (2, 2, 2, 2), value=self.pad_value)
        out["in_conv1"] = x = self._bn(1, x)
        out["conv1"] = h = self.conv1(x)
        out["relu1"] = h = self._act(self.act1, h, x, self.conv1)
        out["pool1"] = x = self.pool1(h)
        out["in_conv2"] = x = self._bn(2, x)
        out["conv2"] = h = self.conv2(x)
        out["relu2"] = h = self._act(self.act2, h, x, self.conv2)
        out["pool2"] = x = self.pool2(h)
        out["in_fc1"] = x = self._bn(3, x.flatten(1))
        out["fc1"] = h = self.fc1(x)
        out["relu3"] = x = self._act(self.act3, h, x, self.fc1)
        out["in_fc2"] = x = self._bn(4, x)
        out["fc2"] = h = self.fc2(x)
        out["relu4"] = x = self._act(self.act4, h, x, self.fc2)
        out["logits"] = self.fc3(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.pool_first:
            return self.features(x)["logits"]
        # The normalisation acts on each layer's input, i.e. after the previous activation
        # and pooling, so pooling first is still the same function.
        x = self._bn(1, F.pad(x, (2, 2, 2, 2), value=self.pad_value))
        x = self._bn(2, self.act1(self.pool1(self.conv1(x))))
        x = self._bn(3, self.act2(self.pool2(self.conv2(x))).flatten(1))
        x = self._bn(4, self.act3(self.fc1(x)))
        x = self.act4(self.fc2(x))
        return self.fc3(x)
