"""Writing a chapter's key numbers to ``RESULTS_DIR/<chapter>.json`` (every chapter).

Deterministic by construction: keys sorted, floats rounded to 6 significant digits,
tensors and numpy scalars converted, no timings or paths unless a chapter puts them in.
The file is written atomically, so a failed run leaves the previous file or none.
The "paper vs this book" page is built from these files.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["to_plain", "results_dir", "write_results", "read_results", "mean_std", "fmt_mean_std", "LAYOUTS",
           "ResultsLayoutError", "check_layout"]

#: The keys of each chapter's results file that other code reads: the claims registry
#: (``claims``), the front page (``pages``) and the tests. Dotted paths; each must be
#: present when the file is written. A chapter may write more keys than these.
LAYOUTS: dict[str, list[str]] = {
    "01_recos_model": ["quick", "conv1_frac_zeroed", "conv_relu_equals_recos.conv1_max_abs_err",
                       "conv_relu_equals_recos.conv2_max_abs_err",
                       "conv_relu_equals_recos.magnitude_cosine_max_abs_err", "claims",
                       "bn_sphere.seeds", "bn_sphere.protocol.n_seeds",
                       "bn_sphere.protocol.layers", "bn_sphere.plain.layers",
                       "bn_sphere.bn.layers"],
    "02_sign_confusion": [
        "quick", "dataset", "seeds", "claims", "protocol.epochs", "protocol.n_train",
        "protocol.ablation_epochs", "protocol.ablation_n_train", "protocol.n_test",
        "protocol.trelu_z", *(f"{k}.{m}" for k in ("baseline", "negated", "both_trained")
                              for m in ("acc_original", "acc_reversed", "std_original",
                                        "std_reversed")),
        "baseline.n", "negated.max_abs_diff_from_swapped_baseline",
        *(f"paired.{k}.{m}" for k in ("original_only", "both")
          for m in ("acc_original", "acc_reversed")),
        "ablation.relu", "ablation.identity", "ablation.abs", "ablation_avgpool.relu",
        "ablation_avgpool.identity"],
    "03_anchor_vectors": [
        "quick", "dataset", "claims", "init.target_acc", "sparsity",
        *(f"init.{a}.{m}" for a in ("kmeans", "random")
          for m in ("steps_to_target", "final_acc", "n_seeds")),
        *(f"kmeans_match.mean_cos_{w}" for w in ("learned", "untrained", "random"))],
    "04_one_vs_two_layers": [
        "quick", "dataset", "claims", "protocol.n_seeds", "background_energy_share",
        "two_layer.params", "one_layer.params",
        *(f"{net}.{tr}.{te}" for net in ("two_layer", "one_layer") for tr in ("clean", "background")
          for te in ("clean", "background", "background_unseen"))],
    "05_alexnet": ["quick", "claims", "weights", "layers"],
    "06_feedforward_design": [
        "quick", "dataset", "seeds", "claims", "saak.reconstruction_max_abs_err",
        "saak.swap_max_abs_err", "saab.min_response", "ff.acc_original", "ff.acc_reversed",
        "ff.fashion_mnist.acc_original", "bp.acc_original", "bp.acc_reversed",
        "bp.fashion_mnist.acc_original", "ff.design_s", "bp.train_s"],
    "07_your_network": ["quick", "network.architecture", "network.layers", "layers", "zeroed",
                        "first_layer.anchor_norms", "reversal.original", "reversal.reversed",
                        "kmeans_match.mean_cos_learned", "kmeans_match.mean_cos_untrained",
                        "kmeans_match.mean_cos_random"],
}


class ResultsLayoutError(ValueError):
    """A chapter's results miss keys of its documented layout (:data:`LAYOUTS`)."""


def check_layout(chapter: str, results: dict) -> None:
    """Raise :class:`ResultsLayoutError` naming every key of ``LAYOUTS[chapter]`` that
    ``results`` lacks (chapters without a documented layout pass)."""
    missing = []
    for path in LAYOUTS.get(chapter, []):
        node = results
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                missing.append(path)
                break
            node = node[part]
    if missing:
        raise ResultsLayoutError(
            f"results of {chapter} lack {', '.join(missing)}: the layout in "
            f"recos_utils.core.results.LAYOUTS says other code reads them; write them (or update "
            f"LAYOUTS and its readers together)")


def to_plain(obj: Any, digits: int = 6) -> Any:
    """JSON-ready copy of ``obj`` with floats rounded to ``digits`` significant digits."""
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # tensors, numpy
        obj = obj.tolist()
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, float):
        if not math.isfinite(obj):
            return None
        return float(f"{obj:.{digits}g}")
    if isinstance(obj, dict):
        return {str(k): to_plain(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v, digits) for v in obj]
    raise TypeError(f"cannot write {type(obj).__name__} to a results file")


def results_dir(value: str | os.PathLike | None = None) -> Path:
    """Where results go: ``value`` if given, else ``_build/results`` of the project folder
    (the nearest folder upwards holding ``_config.yml``), else ``./results``."""
    if value is not None:
        return Path(value)
    here = Path.cwd().resolve()
    for p in [here, *here.parents]:
        if (p / "_config.yml").is_file() and (p / "book").is_dir():
            return p / "_build" / "results"
    return here / "results"


def write_results(folder: str | os.PathLike | None, chapter: str, results: dict) -> Path:
    """Write ``results`` to ``<folder>/<chapter>.json`` atomically; return the path.

    ``folder`` None means :func:`results_dir`'s default."""
    check_layout(chapter, results)
    path = results_dir(folder) / f"{chapter}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_plain(results), sort_keys=True, indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_results(folder: str | os.PathLike | None, chapter: str) -> dict:
    """Read a chapter's results file."""
    return json.loads((results_dir(folder) / f"{chapter}.json").read_text())


def mean_std(values) -> dict:
    """The book's one statistics layout: ``{"mean", "std", "n", "values"}`` of a list of
    numbers, one per seed (std: sample std, 0 for one value)."""
    v = [float(x) for x in values]
    m = sum(v) / len(v)
    s = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return {"mean": m, "std": s, "n": len(v), "values": v}


def fmt_mean_std(stat: dict, scale: float = 100.0, digits: int = 2, unit: str = "%") -> str:
    """The book's one rendering of a statistic: "mean ± std over n seeds" (e.g.
    ``99.00 ± 0.04 % over 3 seeds``; one seed: ``99.00 % (one seed)``)."""
    m, s, n = stat["mean"] * scale, stat["std"] * scale, stat["n"]
    if n == 1:
        return f"{m:.{digits}f}{' ' if unit else ''}{unit} (one seed)"
    return f"{m:.{digits}f} ± {s:.{digits}f}{' ' if unit else ''}{unit} over {n} seeds"
