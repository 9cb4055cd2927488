"""Reliability (issue 8): bad parameters, killed or concurrent training, determinism, safety.

Other faults are tested beside the code they concern: data files (test_data.py), cache
corruption and interrupted saves (test_cache.py), Ctrl-C and `cuda` without a GPU
(test_cli.py), parameter validation itself (test_params.py).
"""
import ast
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import needs_mnist

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))


def execute(nb: Path, out: Path, **params):
    import papermill as pm

    return pm.execute_notebook(str(nb), str(out), parameters=params, cwd=str(nb.parent),
                               progress_bar=False, kernel_name="python3")


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.stem)
@pytest.mark.parametrize("bad,match", [({"QUICK": "yes"}, "QUICK='yes'.*True or False"),
                                       ({"SEED": -3}, "SEED=-3"),
                                       ({"DEVICE": "tpu"}, "DEVICE='tpu'"),
                                       ({"EPOCS": 3}, "unknown parameter EPOCS")])
def test_bad_chapter_parameters_stop_before_any_work(nb, bad, match, tmp_path):
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError) as e:
        execute(nb, tmp_path / "out.ipynb", RESULTS_DIR=str(tmp_path / "r"), **bad)
    assert e.value.ename == "ParameterError"
    import re
    assert re.search(match, e.value.evalue), e.value.evalue
    assert "validate(globals()" in e.value.source          # failed in the validation cell
    assert not (tmp_path / "r").exists()                     # nothing written


@needs_mnist
def test_killed_training_leaves_no_cache_entry(tmp_path):
    env = dict(os.environ, RECOS_CACHE_DIR=str(tmp_path / "c"), RECOS_PROGRESS="0")
    code = ("from recos_utils.core.train import Recipe, TrainConfig\n"
            "from recos_utils.core.kinds import lenet_specs\n"
            "from recos_utils.core.trainer import train_all\n"
            "print('start', flush=True)\n"
            "train_all(lenet_specs([TrainConfig(n_train=20000, recipe=Recipe(epochs=50))]))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "start"
    time.sleep(4)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    entries = list((tmp_path / "c").glob("*.pt")) if (tmp_path / "c").exists() else []
    assert entries == []


@needs_mnist
def test_two_processes_sharing_the_cache_agree(tmp_path):
    env = dict(os.environ, RECOS_CACHE_DIR=str(tmp_path / "c"), RECOS_PROGRESS="0",
               RECOS_WORKERS="1")
    code = ("import hashlib, torch\n"
            "from recos_utils.core.train import Recipe, TrainConfig\n"
            "from recos_utils.core.kinds import lenet_specs\n"
            "from recos_utils.core.trainer import train_all\n"
            "m, h, _ = train_all(lenet_specs([TrainConfig(n_train=2000, seed=7, recipe=Recipe(epochs=1))]))[0]\n"
            "print(hashlib.sha256(m.conv1.weight.detach().numpy().tobytes()).hexdigest(), h['seconds'])\n")
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    digests = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    # one trained it, the other waited on its claim and loaded it: the same weights and the
    # same training history, down to the wall time of the one training run
    assert digests[0] == digests[1] and len(digests[0].split()[0]) == 64
    third = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert third.stdout.strip() == digests[0] and "corrupted" not in third.stderr
    assert len(list((tmp_path / "c").glob("*.pt"))) == 1


@needs_mnist
def test_same_seed_gives_byte_identical_results_files(tmp_path, monkeypatch):
    """Chapter 1 run twice, each time training afresh into its own cache."""
    nb = ROOT / "book" / "01_recos_model.ipynb"
    blobs = []
    for run in range(2):
        monkeypatch.setenv("RECOS_CACHE_DIR", str(tmp_path / f"cache{run}"))
        execute(nb, tmp_path / f"out{run}.ipynb", QUICK=True, DEVICE="cpu",
                RESULTS_DIR=str(tmp_path / f"r{run}"))
        blobs.append((tmp_path / f"r{run}" / "01_recos_model.json").read_bytes())
    assert blobs[0] == blobs[1]
    assert b"test_acc" in blobs[0]


def test_checkpoints_load_weights_only_and_nothing_unpickles():
    """Every torch.load passes weights_only=True; no pickle/joblib loading of files."""
    paths = sorted((ROOT / "recos_utils").rglob("*.py"))
    assert len(paths) > 30                              # every layer is read
    for path in paths:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                name = node.func.attr
                owner = getattr(node.func.value, "id", "")
                if owner == "torch" and name == "load":
                    kw = {k.arg: k.value for k in node.keywords}
                    assert "weights_only" in kw and getattr(kw["weights_only"], "value", None) is True, \
                        f"{path.name}:{node.lineno} torch.load without weights_only=True"
                if owner in ("pickle", "dill", "cloudpickle") and name in ("load", "loads"):
                    pytest.fail(f"{path.name}:{node.lineno} unpickles data")


@needs_mnist
@pytest.mark.parametrize("nb", [p for p in CHAPTERS if p.stem.startswith(("01", "02"))],
                         ids=lambda p: p.stem)
def test_truncated_training_file_stops_a_chapter_even_with_a_warm_store(nb, tmp_path):
    """Issue 27: the chapter checks its data files in its first cell, so a truncated file
    stops it (exit non-zero, the file named) whether or not its models are stored."""
    import shutil

    from papermill.exceptions import PapermillExecutionError

    from recos_utils.core import data

    src = data._locate("mnist", "train-images-idx3-ubyte", data.data_roots(), False).parent
    root = tmp_path / "data"
    shutil.copytree(src, root / "MNIST" / "raw")
    bad = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    bad.chmod(0o644)                                  # the copy of a read-only data root
    with open(bad, "r+b") as f:
        f.truncate(1_000_000)
    with pytest.raises(PapermillExecutionError) as e:
        execute(nb, tmp_path / "out.ipynb", QUICK=True, DATA_DIR=str(root),
                RESULTS_DIR=str(tmp_path / "r"))
    assert e.value.ename == "DataError"
    assert str(bad) in e.value.evalue and "is truncated" in e.value.evalue
    assert "validate(globals()" in e.value.source          # the first cell, before any work
    assert not (tmp_path / "r").exists()                     # nothing written
