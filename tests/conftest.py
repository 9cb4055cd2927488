"""Shared fixtures: a hermetic model cache, and the whole book executed once in quick mode."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def _hermetic_cache(tmp_path_factory):
    """Every test session trains into a fresh model cache (never the user's)."""
    old = os.environ.get("RECOS_CACHE_DIR")
    os.environ["RECOS_CACHE_DIR"] = str(tmp_path_factory.mktemp("model_cache"))
    os.environ.setdefault("RECOS_PROGRESS", "0")
    yield
    if old is None:
        os.environ.pop("RECOS_CACHE_DIR", None)
    else:
        os.environ["RECOS_CACHE_DIR"] = old


def have_mnist() -> bool:
    from recos_utils.core.data import DataError, load_dataset

    try:
        load_dataset("mnist", "test", download=False)
    except DataError:
        return False
    return True


# Locally a missing MNIST skips the tests that need it; in CI (CI=true) they must run.
_SKIP_NO_MNIST = not have_mnist() and not os.environ.get("CI")
needs_mnist = pytest.mark.skipif(_SKIP_NO_MNIST, reason="MNIST not found: set RECOS_DATA_DIR")


@pytest.fixture(scope="session")
def quick_book(tmp_path_factory):
    """Run `recos-book run --mode quick --device cpu` once: every chapter through papermill,
    then the HTML build with warnings as errors. Returns the output folder
    (executed/, results/, html/, build.log, timings.json)."""
    if _SKIP_NO_MNIST:
        pytest.skip("MNIST not found: set RECOS_DATA_DIR")
    out = tmp_path_factory.mktemp("quick_book")
    proc = subprocess.run([sys.executable, "-m", "recos_utils.runner.cli", "run", "--mode", "quick",
                           "--device", "cpu", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"recos-book run failed:\n{proc.stdout}\n{proc.stderr[-5000:]}"
    return out
