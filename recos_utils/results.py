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

__all__ = ["to_plain", "results_dir", "write_results", "read_results", "mean_std"]


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
    """``{"mean", "std", "n"}`` of a list of numbers (std: sample std, 0 for one value)."""
    v = [float(x) for x in values]
    m = sum(v) / len(v)
    s = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return {"mean": m, "std": s, "n": len(v)}
