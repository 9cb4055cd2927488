"""Tests of the appendix on the reader's own network (Chapter 7, issue 26): the loader's
checks, the readings on a LeNet-5 and on a torchvision architecture (weights written by the
test, never downloaded), the functions moved into ``core.readings``, and the notebook run
through papermill in quick mode (test names with ``chapter``: the slow ones)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from recos_utils.chapters import ch2_sign_confusion as sc
from recos_utils.chapters import ch3_anchor_summary as summ
from recos_utils.chapters import ch3_anchor_training as at
from recos_utils.chapters import ch7_your_network as yn
from recos_utils.core import readings, recos
from recos_utils.core.models import LeNet5
from recos_utils.core.params import ParameterError

from conftest import needs_mnist

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "book" / "07_your_network.ipynb"


def _lenet(seed: int = 7) -> LeNet5:
    torch.manual_seed(seed)
    return LeNet5()


@pytest.fixture
def lenet_file(tmp_path):
    path = tmp_path / "my_lenet.pt"
    torch.save(_lenet().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory):
    import torchvision

    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("tv") / "alexnet.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    return path


# --------------------------------------------------------------------------- moved functions

def test_moved_functions_are_the_core_ones():
    """The chapters use the readings of the core, not copies of them."""
    assert sc.accuracy_pair is readings.accuracy_pair
    for name in ("zeroed_fraction", "PatchConfig", "patch_set", "cluster", "patch_centroids",
                 "LAYERS"):
        assert getattr(at, name) is getattr(readings, name)
    for name in ("match_summary", "dc_share", "MATCH_Q"):
        assert getattr(summ, name) is getattr(readings, name)
    assert readings.MATCH_Q == 0.95 and readings.LAYERS == {"conv1": "C1", "conv2": "C3",
                                                            "fc1": "C5", "fc2": "F6"}


def test_dc_share_and_match_summary_values():
    a = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 1.0, -1.0]])
    assert readings.dc_share([a]) == pytest.approx(0.5)          # all mean, then none
    c = np.eye(3, 4) - 0.25
    m = readings.match_summary([c], [-c], c, n_random=20, seed=0)
    assert m["mean_cos_learned"] == pytest.approx(1.0)
    assert m["mean_cos_untrained"] < m["mean_cos_learned"] and m["n_random"] == 20


# --------------------------------------------------------------------------- loading

def test_loads_a_lenet_state_dict_and_a_wrapped_one(lenet_file, tmp_path):
    ref = _lenet()
    m = yn.load_network(str(lenet_file), None)
    assert isinstance(m, LeNet5) and torch.equal(m.conv1.weight, ref.conv1.weight)
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": ref.state_dict(), "epoch": 3}, wrapped)
    assert torch.equal(yn.load_network(str(wrapped), None).fc2.weight, ref.fc2.weight)


def test_missing_file_is_named_with_the_fix(tmp_path):
    path = str(tmp_path / "nowhere.pt")
    with pytest.raises(yn.CheckpointError, match="no such file") as e:
        yn.load_network(path, None)
    assert path in str(e.value) and "torch.save(model.state_dict(), path)" in str(e.value)
    assert isinstance(e.value, ParameterError) and isinstance(e.value, ValueError)


def test_a_pickled_model_is_refused_with_how_to_save_a_state_dict(tmp_path):
    path = tmp_path / "model_object.pt"
    torch.save(_lenet(), path)                         # the whole model: a pickle of code
    with pytest.raises(yn.CheckpointError, match="weights_only=True") as e:
        yn.load_network(str(path), None)
    assert "save a plain state_dict" in str(e.value)


def test_another_architecture_names_the_first_mismatching_layer(tmp_path, alexnet_file):
    state = _lenet().state_dict()
    state["conv2.weight"] = torch.zeros(8, 6, 5, 5)
    path = tmp_path / "wide.pt"
    torch.save(state, path)
    with pytest.raises(yn.CheckpointError,
                       match=r"'conv2.weight' has shape \(8, 6, 5, 5\), expected \(16, 6, 5, 5\)"):
        yn.load_network(str(path), None)
    with pytest.raises(yn.CheckpointError, match=r"'conv1.weight' is missing .*\(6, 1, 5, 5\)"):
        yn.load_network(str(alexnet_file), None)         # AlexNet weights, read as a LeNet-5


def test_unknown_architecture_lists_allowed_names(lenet_file):
    with pytest.raises(yn.CheckpointError, match="not a torchvision architecture") as e:
        yn.load_network(str(lenet_file), "lenet")
    assert "alexnet" in str(e.value) and "resnet18" in str(e.value)
    with pytest.raises(yn.CheckpointError, match="needs CHECKPOINT"):
        yn.load_network(None, "alexnet")


# --------------------------------------------------------------------------- readings

def test_lenet_layer_readings_against_direct_computation():
    m = _lenet()
    layers = yn.layers(m)
    assert list(layers) == ["conv1", "conv2", "fc1", "fc2"]
    for name, layer in layers.items():
        r = yn.layer_reading(layer, max_rows=256, seed=0)
        w = layer.weight.detach().double().flatten(1)
        assert r["norm_mean"] == pytest.approx(float(w.norm(dim=1).mean()))
        assert r["centred_norm_mean"] == pytest.approx(
            float((w - w.mean(1, keepdim=True)).norm(dim=1).mean()))
        assert r["dc_share"] == pytest.approx(float((w.mean(1) ** 2 * w.shape[1]
                                                     / (w ** 2).sum(1)).mean()))
        assert (r["n_anchors"], r["dim"]) == tuple(w.shape)


def test_torchvision_path(alexnet_file):
    import torchvision

    m = yn.load_network(str(alexnet_file), "alexnet")
    torch.manual_seed(3)
    ref = torchvision.models.alexnet(weights=None)
    assert torch.equal(m.features[0].weight, ref.features[0].weight)
    layers = yn.layers(m)
    assert list(layers) == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    r = yn.layer_reading(layers["conv1"], max_rows=64, seed=0)
    assert r["norm_mean"] == pytest.approx(
        float(m.features[0].weight.detach().double().flatten(1).norm(dim=1).mean()))
    inputs = yn.photo_inputs("alexnet", names=("chelsea", "camera"))
    assert inputs["colour"].shape == (2, 3, 224, 224) and inputs["names"] == ["chelsea", "camera"]
    rev = yn.photo_reversal(m, inputs)
    assert rev["n"] == 2 and 0 <= rev["reversed"] <= 1
    zeroed = yn.zeroed_shares(m, inputs["colour"])
    assert set(zeroed) == {"conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"}
    X, info = yn.first_layer_patches(inputs["colour"], layers["conv1"], 300, 1.0, 0)
    assert X.shape[1] == 3 * 11 * 11 and len(X) == info["n_used"] <= 300
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-6)


# --------------------------------------------------------------------------- the notebook

def _run(tmp_path, *params) -> dict:
    out = tmp_path / "results"
    cmd = [sys.executable, "-m", "papermill", str(NOTEBOOK), str(tmp_path / "out.ipynb"),
           "-p", "QUICK", "True", "-p", "DEVICE", "cpu", "-p", "RESULTS_DIR", str(out),
           *params, "--cwd", str(NOTEBOOK.parent)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((out / "07_your_network.json").read_text())


@needs_mnist
def test_chapter_default_quick(tmp_path):
    r = _run(tmp_path)
    assert r["quick"] and r["network"]["architecture"] == "lenet5"
    assert list(r["layers"]) == ["conv1", "conv2", "fc1", "fc2"] == list(r["zeroed"])
    assert r["reversal"]["original"] > 0.8 > r["reversal"]["reversed"]
    assert r["kmeans_match"]["k"] == 6


@needs_mnist
def test_chapter_on_a_checkpoint(tmp_path, lenet_file):
    r = _run(tmp_path, "-p", "CHECKPOINT", str(lenet_file))
    w = _lenet().conv1.weight.detach().flatten(1)
    np.testing.assert_allclose(r["first_layer"]["anchor_norms"], w.norm(dim=1).numpy(),
                               rtol=1e-5)
    for name, layer in yn.layers(_lenet()).items():
        assert r["layers"][name]["norm_mean"] == pytest.approx(
            float(recos.anchors(layer).norm(dim=1).mean()), rel=1e-5)
    assert r["network"]["checkpoint"] == str(lenet_file)


@needs_mnist
def test_chapter_refuses_a_bad_checkpoint_before_any_work(tmp_path):
    out = tmp_path / "out.ipynb"
    proc = subprocess.run([sys.executable, "-m", "papermill", str(NOTEBOOK), str(out), "-p",
                           "CHECKPOINT", str(tmp_path / "missing.pt"), "--cwd",
                           str(NOTEBOOK.parent)], capture_output=True, text=True)
    assert proc.returncode != 0 and "CheckpointError" in proc.stderr
    assert "missing.pt: no such file" in proc.stderr.replace("'", "")
