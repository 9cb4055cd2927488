"""Chapter 5 (recos_utils.chapters.ch5_alexnet, the cascade hooks of recos_utils.core.recos): the real ImageNet
weight-loading path with a weight file in torchvision's format written here, the cascade
recorded by hooks against a manual forward, rectifier counts, photographs and inputs.
The random-direction statistics are tested in test_sphere.py."""
import json
import math
import urllib.error

import nbformat

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from recos_utils.chapters import ch5_alexnet as alexnet

from recos_utils.core import recos
from recos_utils.core.train import Recipe

from conftest import needs_mnist


# --------------------------------------------------------------------------- weights
@pytest.fixture(scope="module")
def torch_home_with_weights(tmp_path_factory):
    """A TORCH_HOME whose hub cache holds an AlexNet state dict in torchvision's format,
    under the exact file name torchvision's IMAGENET1K_V1 weights expect (random values:
    the file format is real, the numbers are not ImageNet's)."""
    home = tmp_path_factory.mktemp("torch_home")
    name = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    path = home / "hub" / "checkpoints" / name
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    state = torchvision.models.alexnet(weights=None).state_dict()
    torch.save(state, path)
    return home, path, state


@pytest.fixture
def no_download(monkeypatch):
    """Any download attempt fails as it does offline (and is recorded)."""
    calls = []

    def fail(url, dst, *a, **k):
        calls.append(url)
        raise urllib.error.URLError("no network in the tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fail)
    return calls


def test_loader_reads_a_torchvision_format_file_through_the_weights_api(
        torch_home_with_weights, monkeypatch, no_download):
    home, path, state = torch_home_with_weights
    monkeypatch.setenv("TORCH_HOME", str(home))
    assert alexnet.imagenet_file() == path      # the same path torch.hub computes
    net = alexnet.load_networks("imagenet", device="cpu")
    assert no_download == []                    # found in the cache, nothing downloaded
    assert net.weights == "IMAGENET1K_V1" and net.kind == "imagenet"
    assert not net.grey and len(net.models) == 1
    got = net.models[0].state_dict()
    assert set(got) == set(state)
    for k in state:
        assert torch.equal(got[k], state[k]), k
    meta = torchvision.models.AlexNet_Weights.IMAGENET1K_V1.meta["categories"]
    assert net.categories == list(meta) and len(net.categories) == 1000
    # torchvision checks the hash only when downloading; the loader checks it and reports
    # that these (random) weights are not the published file
    assert net.sha256_ok is False
    # "auto" takes the same path when the file is there
    auto = alexnet.load_networks("auto", device="cpu")
    assert auto.weights == "IMAGENET1K_V1"


def test_imagenet_unavailable_is_a_clear_error_naming_file_and_fix(tmp_path, monkeypatch,
                                                                   no_download):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    with pytest.raises(alexnet.WeightsUnavailable) as e:
        alexnet.load_networks("imagenet", download=False)
    assert str(expected) in str(e.value) and "Fix:" in str(e.value)
    assert no_download == []
    with pytest.raises(alexnet.WeightsUnavailable) as e:
        alexnet.load_networks("imagenet")          # tries torchvision's download, which fails
    msg = str(e.value)
    assert no_download == [torchvision.models.AlexNet_Weights.IMAGENET1K_V1.url]
    assert str(expected) in msg and "could not be downloaded" in msg and "URLError" in msg
    assert "WEIGHTS='fallback'" in msg and str(tmp_path) not in e.value.reason
    assert not expected.exists()


def test_a_foreign_file_under_the_expected_name_is_reported(tmp_path, monkeypatch, no_download):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = alexnet.imagenet_file()
    path.parent.mkdir(parents=True)
    torch.save({"conv.weight": torch.zeros(2)}, path)
    with pytest.raises(alexnet.WeightsUnavailable, match="present but could not be loaded"):
        alexnet.load_networks("imagenet")
    with pytest.raises(ValueError, match="allowed: auto, imagenet, fallback"):
        alexnet.load_networks("random")


def test_sha256_prefix_check(tmp_path):
    import hashlib

    data = b"some weights"
    prefix = hashlib.sha256(data).hexdigest()[:8]
    good, bad, plain = (tmp_path / f"net-{prefix}.pth", tmp_path / "net-0badbad0.pth",
                        tmp_path / "net.pth")
    for p in (good, bad, plain):
        p.write_bytes(data)
    assert alexnet.sha256_matches(good) is True
    assert alexnet.sha256_matches(bad) is False
    assert alexnet.sha256_matches(plain) is None


@needs_mnist
def test_auto_falls_back_to_a_network_trained_here(tmp_path, monkeypatch, no_download):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    net = alexnet.load_networks("auto", dataset="mnist", seeds=[0], recipe=Recipe(epochs=1), n_train=4096,
                                n_test=500, device="cpu")
    assert net.weights == "fallback:MiniAlexNet/mnist" and net.kind == "fallback" and net.grey
    assert "alexnet-owt-7be5be79.pth" in net.note and "URLError" in net.note
    h = net.histories[0]
    assert h["steps"] == 4096 // 64 and 0.0 <= h["test_acc_reversed"] <= 1.0
    print("fallback test accuracy", h["test_acc"], "reversed", h["test_acc_reversed"])
    # trained, not the initialisation: the weights moved and it beats chance (10%) clearly
    torch.manual_seed(0)
    init = alexnet.MiniAlexNet()
    assert not torch.equal(init.features[0].weight, net.models[0].features[0].weight)
    assert h["test_acc"] > 0.25
    # cached: asking again gives the identical network
    again = alexnet.load_networks("fallback", dataset="mnist", seeds=[0], recipe=Recipe(epochs=1),
                                  n_train=4096, n_test=500, device="cpu")
    for k, v in net.models[0].state_dict().items():
        assert torch.equal(v, again.models[0].state_dict()[k])


# --------------------------------------------------------------------------- the cascade
def test_stage_names_follow_alexnet():
    tv = torchvision.models.alexnet(weights=None)
    names = [s.name for s in recos.recos_stages(tv)]
    assert names == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]
    every = recos.recos_stages(tv, rectified_only=False)
    assert every[-1].name == "fc8" and every[-1].rectifier is None
    assert [s.name for s in recos.recos_stages(alexnet.MiniAlexNet())] == names


def _manual_forward(model, x, convs):
    """AlexNet-like forward written out with functional ops from the weights alone."""
    feats = [m for m in model.features if isinstance(m, nn.Conv2d)]
    pools_after = {0, 1, 4}
    fcs = [m for m in model.classifier if isinstance(m, nn.Linear)]
    out = {}
    for i, c in enumerate(feats):
        pre = F.conv2d(x, c.weight, c.bias, stride=c.stride, padding=c.padding)
        post = torch.clamp(pre, min=0)
        out[f"conv{i + 1}"] = (x, pre, post)
        x = F.max_pool2d(post, 3, 2) if i in pools_after else post
    x = torch.flatten(model.avgpool(x), 1)
    for j, lin in enumerate(fcs[:-1]):
        pre = x @ lin.weight.T + lin.bias
        post = torch.clamp(pre, min=0)
        out[f"fc{6 + j}"] = (x, pre, post)
        x = post
    return out, x @ fcs[-1].weight.T + fcs[-1].bias


@pytest.mark.parametrize("kind", ["mini", "torchvision"])
def test_hooks_record_the_stages_of_a_manual_forward(kind):
    torch.manual_seed(3)
    if kind == "mini":
        model, x = alexnet.MiniAlexNet().double().eval(), torch.rand(3, 1, 28, 28).double()
    else:  # torchvision's AlexNet uses in-place ReLUs, which the hooks must not be fooled by
        model = torchvision.models.alexnet(weights=None).double().eval()
        x = torch.randn(2, 3, 67, 67).double()
    ref, logits = _manual_forward(model, x, None)
    stages = recos.recos_stages(model)
    records, out = recos.record_cascade(model, x)
    torch.testing.assert_close(out, logits, rtol=1e-10, atol=1e-10)
    assert list(records) == list(ref)
    for name, (xin, pre, post) in ref.items():
        torch.testing.assert_close(records[name]["input"], xin, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(records[name]["pre"], pre, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(records[name]["post"], post, rtol=1e-10, atol=1e-10)
    assert (records["conv1"]["pre"] < 0).any()   # not overwritten by the in-place ReLU
    # every stage is a RECOS unit: unfold / correlate / add bias / rectify
    errors = recos.stage_errors(records, stages)
    assert max(errors.values()) < 1e-10
    assert not model.training


def test_zero_fractions_equal_a_direct_count():
    torch.manual_seed(4)
    model = alexnet.MiniAlexNet().eval()
    x = torch.rand(10, 1, 28, 28)
    fz = recos.zero_fractions(model, x, batch_size=3)     # batches must not matter
    ref, _ = _manual_forward(model, x, None)
    for name, (_, pre, post) in ref.items():
        direct = (post == 0).flatten(1).float().mean(1)
        assert fz[name].shape == (10,)
        torch.testing.assert_close(fz[name], direct, rtol=0, atol=1e-6)
        assert ((pre <= 0) == (post == 0)).all()


# --------------------------------------------------------------------------- photographs
def test_photographs_load_offline_and_prepare():
    photos, skipped = alexnet.photographs(("chelsea", "camera", "no_such_photo"))
    assert list(photos) == ["chelsea", "camera"] and "no_such_photo" in skipped
    for p in photos.values():
        assert p.ndim == 3 and p.shape[2] == 3 and 0 <= p.min() and p.max() <= 1
    g = alexnet.prepare_grey(photos["chelsea"])
    assert g.shape == (1, 28, 28) and 0 <= g.min() and g.max() <= 1
    torch.testing.assert_close(alexnet.prepare_grey(photos["chelsea"], reverse=True), 1 - g)
    x = alexnet.prepare_imagenet(photos["chelsea"])
    assert x.shape == (3, 224, 224)
    # grey input: three equal channels before normalisation; reversal is 1 - x before it
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    grey = alexnet.prepare_imagenet(photos["chelsea"], grey=True) * std + mean
    rev = alexnet.prepare_imagenet(photos["chelsea"], grey=True, reverse=True) * std + mean
    torch.testing.assert_close(grey[0], grey[1], rtol=0, atol=1e-5)
    torch.testing.assert_close(rev, 1 - grey, rtol=0, atol=1e-5)


def test_topk_matches_softmax_and_category_names():
    torch.manual_seed(9)
    model = alexnet.MiniAlexNet().eval()
    x = torch.rand(4, 1, 28, 28)
    cats = [f"class {i}" for i in range(10)]
    tops = alexnet.topk(model, x, cats, 3)
    prob = torch.softmax(model(x).double(), 1)
    for row, p in zip(tops, prob):
        idx = p.argsort(descending=True)[:3]
        assert [c for c, _ in row] == [cats[i] for i in idx]
        assert [q for _, q in row] == pytest.approx(p[idx].tolist())


def test_anchor_images():
    rgb = alexnet.anchor_images(nn.Conv2d(3, 8, 11))
    assert rgb.shape == (8, 11, 11, 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert torch.allclose(rgb.flatten(1).amax(1), torch.ones(8))
    conv = nn.Conv2d(1, 5, 5)
    torch.testing.assert_close(alexnet.anchor_images(conv), conv.weight.detach()[:, 0])


# --------------------------------------------------------------------------- the chapter
def test_results_file_of_the_quick_book(quick_book):
    r = json.loads((quick_book / "results" / "05_alexnet.json").read_text())
    assert r["weights"] == "IMAGENET1K_V1" or r["weights"].startswith("fallback:MiniAlexNet/")
    html = (quick_book / "html" / "book" / "05_alexnet.html").read_text()
    assert r["weights"] in html                                 # the page says which weights
    assert list(r["layers"]) == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]
    for name, e in r["layers"].items():
        for key in ("n_anchors", "dim", "mean_abs_cos", "mean_abs_cos_random", "frac_zeroed"):
            assert key in e, (name, key)
        assert e["n_anchors"] > 0 and e["dim"] > 0
        assert 0 <= e["mean_abs_cos"] <= 1 and 0 <= e["mean_abs_cos_random"] <= 1
        assert e["mean_abs_cos_random"] == pytest.approx(e["expected_abs_cos_random"], rel=0.25)
        assert 0 <= e["frac_zeroed"] <= 1 and e["frac_zeroed_std"] >= 0
    assert max(r["cascade"]["stage_max_abs_err"].values()) < 1e-3
    assert "chelsea" in r["photos"]
    if r["weights"].startswith("fallback"):
        acc = r["fallback"]["test_acc"]
        assert acc["mean"] > 0.2 and acc["std"] >= 0      # trained: well above 10% chance
        assert 0 <= r["fallback"]["test_acc_reversed"]["mean"] <= 1


def test_chapter_runs_end_to_end_on_imagenet_format_weights(torch_home_with_weights, tmp_path,
                                                            monkeypatch):
    """Chapter 5 executed by papermill in quick mode with ``-p WEIGHTS imagenet`` on the
    torchvision-format file written here: every ImageNet-branch cell runs (no MNIST needed).
    The network is made unreachable (proxies pointing at a closed local port)."""
    from recos_utils.runner import cli

    home, path, _ = torch_home_with_weights
    monkeypatch.setenv("TORCH_HOME", str(home))
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    before = sorted(p.name for p in path.parent.iterdir())
    nb = cli.find_root() / "book" / "05_alexnet.ipynb"
    executed = cli.execute_chapter(nb, tmp_path, quick=True, device="cpu",
                                   extra={"WEIGHTS": "imagenet"})
    assert sorted(p.name for p in path.parent.iterdir()) == before     # nothing downloaded
    r = json.loads((tmp_path / "results" / "05_alexnet.json").read_text())
    assert r["weights"] == "IMAGENET1K_V1" and "alexnet-owt-7be5be79.pth" in r["weights_note"]
    assert r["sha256_ok"] is False and "fallback" not in r    # random weights, reported as such
    assert list(r["layers"]) == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]
    dims = {"conv1": (64, 3 * 11 * 11), "conv2": (192, 64 * 25), "conv3": (384, 192 * 9),
            "conv4": (256, 384 * 9), "conv5": (256, 256 * 9)}
    for name, (k, n) in dims.items():
        e = r["layers"][name]
        assert (e["n_anchors"], e["dim"]) == (k, n)
        exact = math.exp(math.lgamma(n / 2) - math.lgamma((n + 1) / 2)) / math.sqrt(math.pi)
        assert e["expected_abs_cos_random"] == pytest.approx(exact, rel=1e-5)
        assert 0 < e["mean_abs_cos"] < 1 and 0 <= e["frac_zeroed"] <= 1
    ratios = r["claims"]["deeper_clusters"]["numbers"]["ratios"]
    want = [r["layers"][c]["mean_abs_cos"] / r["layers"][c]["mean_abs_cos_random"] for c in dims]
    assert ratios == pytest.approx(want, rel=1e-4)
    assert r["claims"]["deeper_clusters"]["verdict"].endswith("(quick run)")
    cascade = r["cascade"]
    assert max(cascade["stage_max_abs_err"].values()) < 1e-3 * max(cascade["max_response"], 1)
    rev = r["reversal"]
    assert len(rev["top5_grey"]) == 5 and len(rev["top5_reversed"]) == 5
    assert 0 <= rev["top5_overlap"] <= 5 and 0 <= rev["top1_kept_fraction"] <= 1
    assert rev["top1_kept"]["mean"] == pytest.approx(rev["top1_kept_fraction"])
    assert rev["original_vs_reversed"] in ("clearly greater", "clearly less", "not distinguishable")
    out = nbformat.read(executed, as_version=4)
    assert not [o for c in out.cells if c.cell_type == "code" for o in c.get("outputs", [])
                if o.output_type == "error"]
