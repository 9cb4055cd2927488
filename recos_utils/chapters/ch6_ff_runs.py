"""Chapter 6's experiments as plain dicts: Saak measured, Saab checked, LeNet-5 designed
without backpropagation against LeNet-5 trained by it.

The mathematics is in :mod:`recos_utils.core.feedforward`; this module runs it the way the
chapter needs:

* ``saak_report``: a Saak cascade fitted on training digits and measured on test digits:
  the largest reconstruction error of the inverse (Sec. 6.1, invertibility), and what
  grey-scale reversal does at the first stage (an exact swap of each kernel with its
  negative) and at the second (``feedforward.reversal_report``);
* ``design_networks``: FF-designed LeNet-5s, one per seed, designed and cached through
  the book's one train-and-cache path (``train_all``, the ``FF_DESIGN`` kind), so that they
  are designed side by side in worker processes on one thread each, like the backprop
  networks are trained; each entry holds the test accuracy on original and reversed
  digits, the design time and the smallest Saab response over the training set;
* ``bp_networks``: the backprop LeNet-5s of Chapter 2 (the same configs, so the book's
  cache serves them), measured the same way;
* ``compare``: the two arms as mean ± std over seeds, with the same test images for both;
  ``stat`` gives one accuracy of an arm in the layout that ``claims.compare_arms`` and
  ``results.fmt_mean_std`` read;
* ``anchor_match``: Saab conv1 kernels against backprop conv1 anchors, matched optimally
  on |cos| (a PCA kernel's sign is a convention), against random directions (Chapter 3's
  test, ``sphere.match`` / ``sphere.random_match_scores``).
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from recos_utils.core import feedforward as ff
from recos_utils.core import sphere
from recos_utils.core.data import load_dataset, reverse_grey
from recos_utils.core.device import resolve_device
from recos_utils.core.kinds import lenet_specs
from recos_utils.core.results import mean_std
from recos_utils.core.train import Recipe, TrainConfig, evaluate
from recos_utils.core.trainer import Kind, Spec, train_all

__all__ = ["saak_report", "FF_DESIGN", "design_networks", "bp_networks", "compare", "stat",
           "anchor_match"]


def saak_report(train_images: torch.Tensor, test_images: torch.Tensor, *, stages: int = 2,
                window: int = 2, max_windows: int | None = 200_000, seed: int = 0) -> dict:
    """Fit a complete Saak cascade on ``train_images`` (uint8 digits, padded to 32x32) and
    measure it on ``test_images``: reconstruction error, reversal at stages 1 and 2, and
    the first stage's kernels and channel counts (for the figure)."""
    cascade = ff.saak_cascade(train_images, stages, window, max_windows, seed)
    x = ff.prepare(test_images)
    outs = cascade.outputs(x)
    back = cascade.inverse(outs[-1])
    rev = ff.reversal_report(cascade, x)
    s1, s2 = rev["stage1"], rev.get("stage2", {})
    return {"stages": stages, "window": window, "n_test": len(test_images),
            "channels": [int(o.shape[1]) for o in outs],
            "sizes": [int(o.shape[-1]) for o in outs],
            "reconstruction_max_abs_err": (back - x).abs().max().item(),
            "swap_max_abs_err": s1["max_swap_dev"],
            "stage1": s1, "stage2": s2,
            "kernels": cascade[0].kernels.reshape(len(cascade[0].kernels), window, window)}


def _measure(model, test) -> dict:
    """Test accuracy on original and reversed digits, and the smallest Saab response of
    each conv layer over every window of the training images (recorded by the design)."""
    acc = lambda imgs: (ff.predict(model, imgs) == test.labels).double().mean().item()
    return {"test_acc": acc(test.images), "test_acc_reversed": acc(reverse_grey(test.images)),
            "min_response": dict(model.min_response)}


def _build_ff(config: dict, device: str, data_dir=None) -> dict:
    """Design one LeNet-5 feed-forward (the ``FF_DESIGN`` kind; on the CPU)."""
    dataset, n_test, cfg = _split(config)
    train = load_dataset(dataset, "train", data_dir).subset(cfg.n_train)
    test = load_dataset(dataset, "test", data_dir).subset(n_test)
    t0 = time.perf_counter()
    model = ff.design_lenet5(train.images, train.labels, cfg)
    seconds = time.perf_counter() - t0
    return {"state": ff.to_state(model), "history": {"seconds": seconds},
            **_measure(model, test)}


def _split(config: dict) -> tuple[str, int | None, ff.FFConfig]:
    rest = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()
            if k not in ("dataset", "n_test")}
    return config["dataset"], config["n_test"], ff.FFConfig(**rest)


def _rebuild_ff(config: dict, e: dict):
    return ff.from_state(e["state"])


#: One LeNet-5 designed feed-forward (Saab + least squares); its entry holds the test
#: accuracy on original and reversed digits, the design time and the smallest responses.
FF_DESIGN = Kind("ff_lenet5", _build_ff, _rebuild_ff, cpu_only=True)


def design_networks(jobs: list[tuple[str, ff.FFConfig]], *, n_test: int | None = None,
                    device: str = "cpu", data_dir=None) -> list[dict]:
    """Design (or load from the store) one FF LeNet-5 per ``(dataset, config)``, all in one
    pass of the worker pool (several datasets at once keep every worker busy).

    Returns ``[{"model", "test_acc", "test_acc_reversed", "seconds", "min_response"}]``.
    The design runs on the CPU whatever ``device`` is (it is least squares and PCA).
    """
    resolve_device(device)                       # an unavailable device is still an error
    specs = [Spec(FF_DESIGN, {"dataset": d, "n_test": n_test, **dataclasses.asdict(c)})
             for d, c in jobs]
    return [{"model": r.model, "test_acc": r.entry["test_acc"],
             "test_acc_reversed": r.entry["test_acc_reversed"], "seconds": r.history["seconds"],
             "min_response": r.entry["min_response"]}
            for r in train_all(specs, device=device, data_dir=data_dir)]


def bp_networks(datasets: list[str], seeds: list[int], *, n_train: int | None, recipe: Recipe,
                n_test: int | None = None, device: str = "cpu", data_dir=None) -> dict:
    """The backprop LeNet-5s (ReLU, max pooling) of Chapter 2's protocol, one per dataset and
    seed, trained in one pass and measured like the FF networks: ``{dataset: [{"model",
    "test_acc", "test_acc_reversed", "seconds"}]}`` (``seconds``: the training time recorded
    when the network was trained)."""
    configs = [TrainConfig(dataset=d, n_train=n_train, seed=s, recipe=recipe)
               for d in datasets for s in seeds]
    tests = {d: load_dataset(d, "test", data_dir).subset(n_test) for d in datasets}
    out = {d: [] for d in datasets}
    for c, (model, hist, _) in zip(configs, train_all(lenet_specs(configs), device=device,
                                                     data_dir=data_dir)):
        test = tests[c.dataset]
        out[c.dataset].append({
            "model": model, "test_acc": evaluate(model, test.images, test.labels),
            "test_acc_reversed": evaluate(model, reverse_grey(test.images), test.labels),
            "seconds": hist["seconds"]})
    return out


def compare(runs: list[dict]) -> dict:
    """One arm over its seeds: accuracy on original and reversed digits (mean, std) and the
    mean time per network, in the results-file layout of Chapter 6."""
    o = mean_std([r["test_acc"] for r in runs])
    r = mean_std([r["test_acc_reversed"] for r in runs])
    return {"acc_original": o["mean"], "acc_original_std": o["std"], "acc_reversed": r["mean"],
            "acc_reversed_std": r["std"], "n": o["n"],
            "seconds": float(np.mean([x["seconds"] for x in runs]))}


def stat(arm: dict, test: str = "original") -> dict:
    """One accuracy of an arm (a :func:`compare` result) on the ``test`` set ("original" or
    "reversed") as ``{"mean", "std", "n"}`` over seeds: the layout of
    :func:`recos_utils.core.results.mean_std` that :func:`recos_utils.core.claims.compare_arms`
    and :func:`recos_utils.core.results.fmt_mean_std` read."""
    return {"mean": arm[f"acc_{test}"], "std": arm[f"acc_{test}_std"], "n": arm["n"]}


def anchor_match(saab_kernels: torch.Tensor, bp_anchors: torch.Tensor, *, draws: int = 1000,
                 seed: int = 0) -> dict:
    """Saab conv1 kernels (K x 1 x k x k) against backprop conv1 anchors (K x 1 x k x k):
    the optimal one-to-one matching on |cos| (``pairs``: [backprop anchor, Saab kernel];
    ``bp_for_kernel`` / ``deg_for_kernel``: the matched anchor and the angle of each Saab
    kernel, in kernel order), its mean, and the same for ``draws`` sets of random Gaussian
    directions (the chance level of Chapter 3)."""
    a = saab_kernels.reshape(len(saab_kernels), -1).double().numpy()
    b = bp_anchors.reshape(len(bp_anchors), -1).detach().double().numpy()
    m = sphere.match(b, a, signed=False)
    rnd = sphere.random_match_scores(len(b), a, draws=draws, seed=seed, signed=False,
                                     center=False)
    deg = np.degrees(np.arccos(np.clip(m.score, 0.0, 1.0)))
    by_kernel = np.argsort(m.cols)                  # the pairs in Saab-kernel order
    return {"mean_abs_cos": m.mean_score, "angles_deg": deg.tolist(),
            "pairs": [[int(i), int(j)] for i, j in zip(m.rows, m.cols)],
            "bp_for_kernel": m.rows[by_kernel].tolist(), "deg_for_kernel": deg[by_kernel].tolist(),
            "random_mean": float(rnd.mean()), "random_q99": float(np.quantile(rnd, 0.99)),
            "draws": draws}
