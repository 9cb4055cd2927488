"""Chapter 1, Sec. 1.6: batch normalisation on the sphere (the networks, summaries, figure).

The measurements are :mod:`recos_utils.core.bn_sphere`'s; this module asks the one trainer
for the plain and the batch-normalised LeNet-5s, summarises the measures over seeds in the
book's one layout (``results.mean_std``), builds the table rows and draws the figure. Nothing
here judges: the claim ``bn_sphere`` is judged by the registry (``core.claims``).
"""
from __future__ import annotations

import dataclasses
import math

import matplotlib.pyplot as plt
import torch

from recos_utils.core import bn_sphere
from recos_utils.core.kinds import lenet_specs
from recos_utils.core.results import fmt_mean_std, mean_std
from recos_utils.core.train import TrainConfig, evaluate, to_input
from recos_utils.core.trainer import train_all

__all__ = ["N_IMAGES", "MEASURES", "bn_configs", "train_arms", "measure_arms", "summarise",
           "table_rows", "circle_angles", "circle_figure"]

#: MNIST test digits whose layer inputs are measured (the first ones of the test set).
N_IMAGES = 300
#: The measures shown in the table: key -> (label, scale, unit) for ``fmt_mean_std``.
MEASURES = {"norm_cv": ("CV of lengths", 1.0, ""), "resultant": ("mean resultant length", 1.0, ""),
            "orthant_share": ("in the non-negative orthant", 100.0, "%"),
            "octant_share": ("octants occupied (3-D projection)", 100.0, "%"),
            "cos_pos_share": ("cosines to anchors > 0", 100.0, "%"),
            "angle_q50": ("median angle to anchors (deg)", 1.0, "")}


def bn_configs(n_train: int | None, recipe, seeds: list[int]) -> dict[str, list[TrainConfig]]:
    """The two arms: Chapter 2's baseline LeNet-5 per seed (the same config, so the store
    shares it) and the same network with batch normalisation of every layer's input."""
    plain = [TrainConfig(dataset="mnist", n_train=n_train, seed=s, recipe=recipe) for s in seeds]
    return {"plain": plain, "bn": [dataclasses.replace(c, batchnorm=True) for c in plain]}


def train_arms(configs: dict[str, list[TrainConfig]], device: str = "cpu",
               data_dir=None) -> dict[str, list]:
    """Both arms from the one trainer, in one pass of its worker pool: ``{arm: [model]}``."""
    flat = [c for arm in configs.values() for c in arm]
    models = [t.model for t in train_all(lenet_specs(flat), device=device, data_dir=data_dir)]
    out, i = {}, 0
    for arm, cfgs in configs.items():
        out[arm], i = models[i:i + len(cfgs)], i + len(cfgs)
    return out


def measure_arms(models: dict[str, list], test, seed: int = 0,
                 n_images: int = N_IMAGES) -> dict[str, list[dict]]:
    """Per arm and network: the test accuracy and ``bn_sphere.network_measures`` on the
    first ``n_images`` test digits: ``{arm: [{"test_acc", "layers": {layer: measures}}]}``."""
    images = to_input(test.images[:n_images])
    return {arm: [{"test_acc": evaluate(m, test.images, test.labels),
                   "layers": bn_sphere.network_measures(m.cpu(), images, seed)} for m in ms]
            for arm, ms in models.items()}


def summarise(measured: dict[str, list[dict]], seeds: list[int], n_images: int) -> dict:
    """The results entry: per arm, ``test_acc`` and every measure of every layer as
    ``mean_std`` over the seeds; with the seeds and the protocol."""
    out = {"seeds": list(seeds), "protocol": {"n_seeds": len(seeds), "n_images": n_images,
                                              "layers": list(bn_sphere.LAYERS)}}
    for arm, runs in measured.items():
        layers = {name: {k: mean_std([r["layers"][name][k] for r in runs])
                         for k in runs[0]["layers"][name] if k != "n_points"}
                  for name in bn_sphere.LAYERS}
        for name in layers:
            layers[name]["n_points"] = runs[0]["layers"][name]["n_points"]
        out[arm] = {"test_acc": mean_std([r["test_acc"] for r in runs]), "layers": layers}
    return out


def table_rows(summary: dict) -> list[list[str]]:
    """One row per layer and measure: the plain network's value, the BN network's."""
    rows = []
    for name in bn_sphere.LAYERS:
        for key, (label, scale, unit) in MEASURES.items():
            digits = 1 if unit == "%" or key.startswith("angle") else 3
            rows.append([name, label] + [fmt_mean_std(summary[arm]["layers"][name][key], scale,
                                                      digits, unit) for arm in ("plain", "bn")])
    return rows


@torch.no_grad()
def circle_angles(model, images: torch.Tensor, layer: str = "fc1") -> torch.Tensor:
    """``bn_sphere.circle_points`` of ``layer``'s inputs for float ``images`` (eval mode)."""
    x = model.eval().features(images)[bn_sphere.LAYERS[layer]]
    return bn_sphere.circle_points(bn_sphere.layer_points(x, getattr(model, layer)))


def circle_figure(angles: dict[str, torch.Tensor], layer: str, resultant: dict[str, float]):
    """Two unit circles side by side: the directions of ``layer``'s inputs without and with
    batch normalisation (``bn_sphere.circle_points``), and the mean direction as an arrow
    whose length is the mean resultant length of the 2-D points."""
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.8))
    titles = {"plain": "plain LeNet-5", "bn": "with batch normalisation"}
    for ax, (arm, th) in zip(axes, angles.items()):
        t = torch.linspace(0, 2 * math.pi, 200)
        ax.plot(torch.cos(t), torch.sin(t), color="0.7", lw=0.8)
        jitter = 1 + 0.04 * torch.randn(len(th), generator=torch.Generator().manual_seed(0))
        ax.scatter(torch.cos(th) * jitter, torch.sin(th) * jitter, s=3, alpha=0.25)
        c, s = torch.cos(th).mean().item(), torch.sin(th).mean().item()
        ax.annotate("", xy=(c, s), xytext=(0, 0), arrowprops={"arrowstyle": "->", "lw": 1.5})
        ax.set_title(f"{titles[arm]}\nresultant length (all dims) {resultant[arm]:.2f}",
                     fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlim(-1.25, 1.25)
        ax.set_ylim(-1.25, 1.25)
        ax.set_axis_off()
    fig.suptitle(f"Directions of the {layer} inputs on the circle (top two principal "
                 "directions)", fontsize=10)
    return fig
