"""TReLU networks of one seed trained as one wide network (Chapter 2, Sec. 2.8, at speed).

The TReLU sweep trains, for every seed, one LeNet-5 per threshold z on the same data: the
same initial weights (``TrainConfig.model`` seeds them), the same mini-batches in the same
order (``train.fit`` draws them from the seed) and the same learning-rate schedule. Only z
differs. Such a group trains as **one** network whose layers hold the M members side by
side:

* conv1: one convolution with 6M output channels (every member reads the same image);
* conv2: a grouped convolution, 16M channels in M groups (member m reads only its maps);
* fc1-fc3: batched matrix products, one matrix per member;
* the activation with a per-channel threshold, Chapter 1's cosine form of ``models.TReLU``:
  Rec(a''.x'' - z ||x''|| ||a''||) / (1 - z).

The loss is the sum of the members' losses, so each member's gradient is its own, and Adam
is elementwise: every member follows the trajectory it would follow alone, up to float
rounding in the wider layers (``tests/test_stacked.py`` checks it in float64). On one CPU
thread a stack of nine trains about 1.75x faster per member than nine separate networks
(``benchmarks/RESULTS.md``). Stacks of *different* activations were measured too: splitting
and re-joining the channels per activation costs more than the wide layers save, so only
members with the same activation stack (the LeNet-5 kind, :mod:`recos_utils.core.kinds`,
groups the TReLU sweep).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from recos_utils.core.device import resolve_device
from recos_utils.core.models import LeNet5, TReLU
from recos_utils.core.train import TrainConfig, fit, train_data

__all__ = ["StackedLeNet5", "train_stack"]
_LINEAR = ("fc1", "fc2", "fc3")


class StackedLeNet5(nn.Module):
    """M LeNet-5s (same pooling and padding) as one network; output M x N x 10."""

    def __init__(self, members: list[LeNet5]):
        super().__init__()
        first = members[0]
        if any((m.activation, m.pool_kind, m.pad_value) != (first.activation, first.pool_kind,
                                                             first.pad_value) for m in members):
            raise ValueError("a stack needs members with the same activation, pooling and "
                             "padding (only TReLU's z may differ)")
        self.m, self.pool_kind, self.pad_value = len(members), first.pool_kind, first.pad_value
        cat = lambda name, attr: torch.cat([getattr(getattr(m, name), attr).detach()
                                            for m in members])
        self.conv1 = nn.Conv2d(1, 6 * self.m, 5)
        self.conv2 = nn.Conv2d(6 * self.m, 16 * self.m, 5, groups=self.m)
        with torch.no_grad():
            for name in ("conv1", "conv2"):
                getattr(self, name).weight.copy_(cat(name, "weight"))
                getattr(self, name).bias.copy_(cat(name, "bias"))
        for name in _LINEAR:                      # weight M x in x out, bias M x 1 x out
            w = torch.stack([getattr(m, name).weight.detach().t() for m in members])
            b = torch.stack([getattr(m, name).bias.detach()[None] for m in members])
            setattr(self, name + "_w", nn.Parameter(w.clone()))
            setattr(self, name + "_b", nn.Parameter(b.clone()))
        self.act = first.act1
        z = [getattr(m.act1, "z", 0.0) for m in members]
        self.register_buffer("z", torch.tensor(z, dtype=torch.float64), persistent=False)
        self.pool = first.pool1

    def _act(self, pre, x, layer: str, width: int):
        """The members' activation of ``pre`` (6M or 16M channels of maps, or M x N x F
        vectors; ``width`` = channels per member); TReLU with each member's own z:
        Rec(pre - ||x''|| (z ||a''||)) / (1 - z), with the per-member factors broadcast over
        a view of ``pre`` (N x M x width x H x W) rather than repeated per channel."""
        if not isinstance(self.act, TReLU):
            return self.act(pre)
        z = self.z.to(pre.dtype)
        if layer in _LINEAR:                       # pre, x: M x N x features
            w, b = getattr(self, layer + "_w"), getattr(self, layer + "_b")
            a = (w.pow(2).sum(1, keepdim=True) + b.pow(2)).sqrt()            # M x 1 x out
            x_norm = (1.0 + x.pow(2).sum(-1, keepdim=True)).sqrt()           # M x N x 1
            za, inv = z.view(-1, 1, 1) * a, (1.0 / (1.0 - z)).view(-1, 1, 1)
            return F.relu(pre - x_norm * za) * inv
        conv = getattr(self, layer)
        a = (conv.weight.flatten(1).pow(2).sum(1) + conv.bias.pow(2)).sqrt().view(self.m, width)
        za = (z.view(-1, 1) * a).view(1, self.m, width, 1, 1)
        inv = (1.0 / (1.0 - z)).view(1, self.m, 1, 1, 1)
        x_norm = self._x_norms(x, layer).unsqueeze(2)            # N x (1 or M) x 1 x H x W
        y = F.relu(pre.unflatten(1, (self.m, width)) - x_norm * za) * inv
        return y.flatten(1, 2)

    def _x_norms(self, x, layer: str):
        """||x''|| of every patch of a conv layer's input, per member (1 map for conv1,
        which every member reads alike; M maps for conv2)."""
        if layer == "conv1":
            box = torch.ones((1, 1, 5, 5), dtype=x.dtype, device=x.device)
            return (1.0 + F.conv2d(x * x, box)).sqrt()
        box = torch.ones((self.m, 6, 5, 5), dtype=x.dtype, device=x.device)
        return (1.0 + F.conv2d(x * x, box, groups=self.m)).sqrt()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (2, 2, 2, 2), value=self.pad_value)
        x = self.pool(self._act(self.conv1(x), x, "conv1", 6))
        x = self.pool(self._act(self.conv2(x), x, "conv2", 16))
        x = x.reshape(x.shape[0], self.m, 400).transpose(0, 1)               # M x N x 400
        for name in _LINEAR:
            h = torch.baddbmm(getattr(self, name + "_b"), x, getattr(self, name + "_w"))
            x = self._act(h, x, name, 1) if name != "fc3" else h
        return x

    def unstack(self) -> list[dict[str, torch.Tensor]]:
        """The members' weights as ``LeNet5`` state dicts."""
        out = []
        for i in range(self.m):
            sd = {}
            for name, per in (("conv1", 6), ("conv2", 16)):
                conv = getattr(self, name)
                sd[f"{name}.weight"] = conv.weight.detach()[i * per:(i + 1) * per].clone()
                sd[f"{name}.bias"] = conv.bias.detach()[i * per:(i + 1) * per].clone()
            for name in _LINEAR:
                sd[f"{name}.weight"] = getattr(self, name + "_w").detach()[i].t().contiguous()
                sd[f"{name}.bias"] = getattr(self, name + "_b").detach()[i, 0].clone()
            out.append({k: v.contiguous() for k, v in sd.items()})
        return out


def train_stack(configs: list[TrainConfig], device: str, data_dir) -> list[dict]:
    """Train ``configs`` (TReLU LeNet-5s sharing everything but z) as one stack; return one
    store entry per member, with its own history (``stacked_with``: the stack's size)."""
    c0 = configs[0]
    ds = train_data(c0.dataset, c0.train_on, c0.n_train, data_dir)
    net = StackedLeNet5([c.model() for c in configs])
    hist = fit(net, ds.images, ds.labels, recipe=c0.recipe, seed=c0.seed,
               device=resolve_device(device), desc=f"{len(configs)} TReLU LeNet-5s, seed {c0.seed}")
    per = [{**hist, "loss": [row[i] for row in hist["loss"]],
            "train_loss_final": hist["train_loss_final"][i],
            "train_acc_final": hist["train_acc_final"][i], "stacked_with": len(configs)}
           for i in range(len(configs))]
    return [{"state_dict": {k: v.cpu() for k, v in sd.items()}, "history": h}
            for sd, h in zip(net.cpu().unstack(), per)]
