"""The in-browser explorer (book/explore.md): the export of Chapter 2's networks
(recos_utils.runner.explorer) and the page itself in headless Chromium, offline.

The page is built without the book: a temporary folder with ``book/explore.html`` holding
the same HTML fragment as ``book/explore.md`` and ``_static/explorer/`` holding the style
sheet, the script and an ``explorer_data.js`` exported from real networks (trained through
the book's cached trainer on all of MNIST, seed 0, like Chapter 2's first seed), served on
127.0.0.1. The page's forward pass must equal PyTorch's to 1e-4 on 100 test digits and
their reversals, for every network.

The reader's own network (``recos-book export-weights``, the page's file picker) and the
page at a phone's width (390 CSS pixels) are checked on a page with untrained networks, so
they need neither MNIST nor training.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from browser_support import NO_CHROMIUM, chromium, offline_driver, serve
from conftest import needs_mnist
from recos_utils.runner import explorer
from recos_utils.chapters import ch2_sign_confusion as sc
from recos_utils.core.models import LeNet5

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "book" / "_static" / "explorer"
N_DIGITS = 100
META = {"seed": 0, "mode": "full", "dataset": "MNIST", "n_train": 60000}


needs_chromium = pytest.mark.skipif(chromium() is None, reason=NO_CHROMIUM)


def _random_nets(seed: int = 0) -> dict:
    """Untrained networks of the four kinds (for export checks that need no data)."""
    torch.manual_seed(seed)
    base = LeNet5()
    return {"baseline": base, "negated": sc.negate_first_layer(base),
            "paired": sc.paired_lenet(base.conv1.weight.detach(), base.conv1.bias.detach(), seed),
            "both": LeNet5()}


def write_site(folder: Path, data: Path | None) -> Path:
    """The test page: ``folder/book/explore.html`` with the book's fragment, and
    ``folder/_static/explorer/`` with the css, the script and (if given) the data file."""
    static = folder / "_static" / "explorer"
    static.mkdir(parents=True, exist_ok=True)
    for name in ("explorer.css", "recos_explorer.js"):
        shutil.copy2(STATIC / name, static / name)
    if data is not None:
        shutil.copy2(data, static / explorer.DATA_FILE)
    (folder / "book").mkdir(exist_ok=True)
    (folder / "book" / "explore.html").write_text(
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,"><title>RECOS explorer (test)</title></head>\n'
        f"<body>\n{explorer.html_fragment()}\n</body></html>\n")
    return folder


# ------------------------------------------------------------------- export, no browser
def test_the_fragment_in_explore_md_is_html_fragment():
    md = (ROOT / "book" / "explore.md").read_text()
    m = re.search(r"```\{raw\} html\n(.*?)\n```", md, re.S)
    assert m, "book/explore.md has no ```{raw} html``` block"
    assert m.group(1) == explorer.html_fragment()


def test_export_round_trips_every_state_dict_exactly(tmp_path):
    nets = _random_nets()
    digits = torch.randint(0, 256, (7, 28, 28), dtype=torch.uint8)
    path = explorer.export(nets, META, tmp_path, test_images=digits,
                           test_labels=list(range(7)), photos={})
    data = explorer.read_data(path)
    assert list(data["networks"]) == ["baseline", "negated", "paired", "both"]
    for name, model in nets.items():
        entry = data["networks"][name]
        sd = model.state_dict()
        assert list(entry["tensors"]) == list(sd)
        for k, t in sd.items():
            got = explorer.decode_tensor(entry["tensors"][k])
            assert got.dtype == torch.float32 and torch.equal(got, t), (name, k)
        assert entry["arch"]["pad_value"] == model.pad_value
        assert entry["meta"]["network"] == name and entry["meta"]["seed"] == 0
    assert data["networks"]["paired"]["arch"]["conv1_channels"] == 12
    assert data["networks"]["negated"]["arch"]["pad_value"] == 1.0
    assert data["networks"]["paired"]["arch"]["pad_value"] == 0.5
    assert np.array_equal(explorer.decode_uint8(data["digits"]), digits.numpy())
    assert data["digits"]["labels"] == list(range(7))


def test_export_refuses_what_the_page_cannot_show(tmp_path):
    nets = _random_nets()
    with pytest.raises(ValueError, match="network names must be among"):
        explorer.export({"base": nets["baseline"]}, META, tmp_path, photos={})
    with pytest.raises(ValueError, match="missing: \\['mode'\\]"):
        explorer.export(nets, {"seed": 0, "dataset": "MNIST"}, tmp_path, photos={})
    with pytest.raises(ValueError, match="unknown: \\['sede'\\]"):
        explorer.export(nets, dict(META, sede=1), tmp_path, photos={})
    with pytest.raises(ValueError, match="activation"):
        explorer.export({"baseline": LeNet5("trelu")}, META, tmp_path, photos={})
    bad = LeNet5()
    with torch.no_grad():
        bad.fc1.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        explorer.export({"baseline": bad}, META, tmp_path, photos={})
    assert not (tmp_path / explorer.DATA_FILE).exists()


def test_background_crops_follow_chapter_4():
    from recos_utils.core import backgrounds

    crops = explorer.background_crops()
    assert list(crops) == list(explorer.BACKGROUND_PHOTOS)
    for name, p in crops.items():
        assert p.shape == (28, 28) and p.dtype == np.uint8
        assert p.astype(np.float64).var() >= backgrounds.VAR_MIN, name


# ------------------------------------------------------------------- trained networks
@pytest.fixture(scope="module")
def nets():
    """Chapter 2's networks, seed 0, trained on all of MNIST by the book's cached trainer."""
    from recos_utils.core.kinds import lenet_specs
    from recos_utils.core.train import TrainConfig
    from recos_utils.core.trainer import train_all

    cfgs = [TrainConfig(dataset="mnist", seed=0), TrainConfig(dataset="mnist", seed=0,
                                                             train_on="both")]
    base, both = (t.model for t in train_all(lenet_specs(cfgs)))
    paired = train_all(sc.paired_specs([(cfgs[0], base)], "both"))[0].model
    return {"baseline": base, "negated": sc.negate_first_layer(base), "paired": paired,
            "both": both}


@pytest.fixture(scope="module")
def digits():
    from recos_utils.core.data import load_dataset

    test = load_dataset("mnist", "test")
    return test.images[:N_DIGITS], test.labels[:N_DIGITS]


@pytest.fixture(scope="module")
def data_file(nets, digits, tmp_path_factory) -> Path:
    return explorer.export(nets, META, tmp_path_factory.mktemp("explorer_data"),
                           test_images=digits[0], test_labels=digits[1])


@needs_mnist
def test_the_data_file_is_small_and_finite(data_file, nets):
    size = data_file.stat().st_size
    assert size < 2_000_000, f"explorer_data.js is {size:,} bytes"
    text = data_file.read_text()
    assert not re.search(r"NaN|Infinity", re.sub(r'"b64":"[^"]*"', "", text))
    data = explorer.read_data(data_file)
    for name, entry in data["networks"].items():
        for k, t in entry["tensors"].items():
            got = explorer.decode_tensor(t)
            assert torch.isfinite(got).all() and torch.equal(got, nets[name].state_dict()[k])
    assert len(data["digits"]["labels"]) == N_DIGITS
    assert set(data["backgrounds"]) == set(explorer.BACKGROUND_PHOTOS)


# ------------------------------------------------------------------- the page
@pytest.fixture(scope="module")
def site(data_file, tmp_path_factory) -> Path:
    return write_site(tmp_path_factory.mktemp("explorer_site"), data_file)


@pytest.fixture(scope="module")
def server(site):
    yield from serve(site)


@pytest.fixture(scope="module")
def driver():
    if chromium() is None:
        pytest.skip(NO_CHROMIUM)
    yield from offline_driver("1280,1000", page_load_timeout=60)


def open_page(driver, url: str) -> None:
    driver.get(f"{url}/book/explore.html")
    t0 = time.time()
    while not driver.execute_script("return !!(window.recosExplorer && "
                                    "document.querySelector('.rx-bars, .rx-missing'))"):
        assert time.time() - t0 < 20, "the explorer did not start"
        time.sleep(0.05)


@pytest.fixture
def page(driver, server):
    open_page(driver, server)
    return driver


def js(driver, body: str, *args):
    return driver.execute_script(body, *args)


def state(driver) -> dict:
    return js(driver, "return window.recosExplorer.state()")


def pixels(images: torch.Tensor) -> list[list[float]]:
    """uint8 N x 28 x 28 -> the network's float32 input values, 784 per image."""
    return (images.float() / 255.0).reshape(len(images), -1).tolist()


@pytest.fixture(scope="module")
def page_logits(driver, server, digits) -> dict:
    """The page's logits of the 100 test digits and their reversals, for every network."""
    open_page(driver, server)
    x = pixels(digits[0]) + pixels(255 - digits[0])
    out = js(driver, "const X = arguments[0]; const api = window.recosExplorer; const out = {};"
                     "for (const n of api.networks()) out[n] = X.map((p) => api.logits(p, n));"
                     "return out;", x)
    return {k: torch.tensor(v, dtype=torch.float64) for k, v in out.items()}


@needs_mnist
@needs_chromium
def test_the_page_computes_pytorchs_logits(page_logits, nets, digits):
    x = digits[0].float().div(255).unsqueeze(1)
    inputs = torch.cat([x, 1 - x])
    assert set(page_logits) == set(nets)
    for name, model in nets.items():
        with torch.no_grad():
            want = model.eval()(inputs).double()
        got = page_logits[name]
        assert got.shape == (2 * N_DIGITS, 10)
        err = (got - want).abs().max().item()
        assert err < 1e-4, f"{name}: page logits differ from PyTorch's by {err:.2e}"


@needs_mnist
@needs_chromium
def test_accuracy_on_the_page(page_logits, digits):
    labels = digits[1]
    acc = lambda name, rev: (page_logits[name][N_DIGITS * rev:N_DIGITS * (rev + 1)].argmax(1)
                             == labels).double().mean().item()
    assert acc("baseline", 0) >= 0.97
    assert acc("negated", 1) >= 0.95
    assert acc("paired", 0) >= 0.95 and acc("paired", 1) >= 0.95
    assert acc("both", 0) >= 0.95 and acc("both", 1) >= 0.95
    assert acc("baseline", 1) < 0.8, "the baseline should fail on reversed digits"


@needs_mnist
@needs_chromium
def test_weights_and_responses_are_pytorchs(page, nets, digits):
    w = js(page, "return window.recosExplorer.weights('paired')")
    sd = nets["paired"].state_dict()
    assert set(w) == set(sd)
    for k, t in sd.items():
        assert w[k]["shape"] == list(t.shape)
        assert torch.equal(torch.tensor(w[k]["data"], dtype=torch.float32), t.flatten()), k
    x = digits[0][:1].float().div(255).unsqueeze(1)
    for name in ("baseline", "paired"):
        r = js(page, "return window.recosExplorer.responses(arguments[0], arguments[1])",
               pixels(digits[0][:1])[0], name)
        with torch.no_grad():
            f = nets[name].features(x)
        for page_key, key in [("conv1_pre", "conv1"), ("conv1_post", "relu1"), ("pool1", "pool1"),
                              ("conv2_pre", "conv2"), ("conv2_post", "relu2"),
                              ("fc1_post", "relu3"), ("fc2_post", "relu4")]:
            assert r[page_key]["shape"] == list(f[key].shape[1:]), page_key
            got = torch.tensor(r[page_key]["data"], dtype=torch.float64)
            assert (got - f[key].flatten().double()).abs().max() < 1e-4, (name, page_key)
        for layer in ("conv1", "conv2", "fc1", "fc2"):
            assert abs(r["zeroed"][layer] - (f[layer] <= 0).double().mean().item()) < 1e-3
        assert abs(sum(r["probabilities"]) - 1) < 1e-9


@needs_mnist
@needs_chromium
def test_wrong_input_raises_named_errors(page):
    err = lambda call: js(page, f"try {{ {call}; return null; }} catch (e) {{ return e.message; }}")
    api = "window.recosExplorer"
    assert err(f"{api}.logits(new Array(783).fill(0), 'baseline')") == \
        "pixels must hold 784 numbers (28x28, row-major); got 783"
    assert err(f"{api}.logits(new Array(784).fill(0), 'foo')") == \
        "unknown network 'foo'; choose one of baseline, negated, paired, both"
    assert err(f"{api}.responses([], 'baseline')").startswith("pixels must hold 784 numbers")
    assert err(f"{api}.weights('Baseline')").startswith("unknown network 'Baseline'")
    assert "pixels[3] is NaN" in err(f"const p = new Array(784).fill(0); p[3] = NaN; "
                                     f"{api}.logits(p, 'both')")


def _draw(driver, canvas, points):
    """A mouse stroke through ``points`` (offsets from the canvas centre, CSS pixels)."""
    from selenium.webdriver.common.action_chains import ActionChains

    chain = ActionChains(driver, duration=10).move_to_element_with_offset(canvas, *points[0])
    chain = chain.click_and_hold()
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        chain = chain.move_by_offset(x1 - x0, y1 - y0)
    chain.release().perform()


@needs_mnist
@needs_chromium
def test_drawing_changes_the_input_and_the_prediction(page):
    from selenium.webdriver.common.by import By

    canvas = page.find_element(By.CSS_SELECTOR, ".rx-canvas")
    blank = state(page)
    assert blank["strokes"] == 0 and max(blank["digit"]) == 0
    # a "1": one vertical stroke through the middle (a blank image often reads as 1 too)
    _draw(page, canvas, [(0, -80 + 16 * i) for i in range(11)])
    one = state(page)
    assert one["strokes"] == 1
    ink = np.array(one["digit"]).reshape(28, 28)
    assert ink.max() > 0.95 and 40 < (ink > 0.5).sum() < 100, "a stroke as wide as MNIST's"
    assert 0 < ((ink > 0) & (ink < 0.5)).sum(), "soft edges"
    assert one["prediction"] == 1 and one["probabilities"] != blank["probabilities"]
    page.find_element(By.CSS_SELECTOR, ".rx-clear").click()
    # a "0": one stroke around an ellipse
    t = np.linspace(0, 2 * np.pi, 33)
    _draw(page, canvas, [(round(55 * np.sin(a)), round(-75 * np.cos(a))) for a in t])
    zero = state(page)
    assert zero["strokes"] == 1 and zero["prediction"] == 0 != blank["prediction"]
    logits = js(page, "return window.recosExplorer.logits(arguments[0], 'baseline')", zero["input"])
    assert logits == zero["logits"]
    js(page, "window.recosExplorer.update()")
    assert page.find_element(By.CSS_SELECTOR, ".rx-predicted").text == "0"
    # a second stroke from touch: pointer events dispatched from JavaScript
    js(page, """
        const cv = document.querySelector('.rx-canvas'), r = cv.getBoundingClientRect();
        const ev = (type, x, y) => cv.dispatchEvent(new PointerEvent(type, {pointerId: 7,
            pointerType: 'touch', isPrimary: true, bubbles: true, buttons: 1,
            clientX: r.left + x, clientY: r.top + y}));
        ev('pointerdown', 60, 60);
        for (let i = 1; i <= 10; i++) ev('pointermove', 60 + 16 * i, 60);
        ev('pointerup', 220, 60);""")
    two = state(page)
    assert two["strokes"] == 2 and two["digit"] != zero["digit"]
    page.find_element(By.CSS_SELECTOR, ".rx-undo").click()
    assert state(page)["digit"] == zero["digit"]
    page.find_element(By.CSS_SELECTOR, ".rx-clear").click()
    assert state(page)["digit"] == blank["digit"]


@needs_mnist
@needs_chromium
def test_controls_reverse_background_and_network(page, digits):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(page.find_element(By.CSS_SELECTOR, ".rx-digit")).select_by_value("0")
    s = state(page)
    d = np.array(s["digit"])
    assert s["digit_index"] == 0 and np.allclose(d * 255, digits[0][0].flatten().numpy())
    assert s["prediction"] == int(digits[1][0])
    page.find_element(By.CSS_SELECTOR, ".rx-reverse").click()
    s = state(page)
    assert s["reversed"] and np.allclose(s["input"], 1 - d)
    page.find_element(By.CSS_SELECTOR, ".rx-networks input[value='negated'] + span").click()
    s = state(page)
    assert s["network"] == "negated" and s["prediction"] == int(digits[1][0])
    Select(page.find_element(By.CSS_SELECTOR, ".rx-background")).select_by_value("brick")
    bg = explorer.background_crops(["brick"])["brick"].astype(np.float64).flatten() / 255
    s = state(page)
    assert s["background"] == "brick" and np.allclose(s["input"], 1 - np.maximum(d, bg))
    js(page, "window.recosExplorer.update()")
    meta = page.find_element(By.CSS_SELECTOR, ".rx-meta").text
    assert "Chapter 2's negated network, seed 0, full mode" in meta
    assert len(page.find_elements(By.CSS_SELECTOR, ".rx-conv1 canvas.rx-map-post")) == 6
    page.find_element(By.CSS_SELECTOR, ".rx-networks input[value='paired'] + span").click()
    js(page, "window.recosExplorer.update()")
    assert len(page.find_elements(By.CSS_SELECTOR, ".rx-conv1 canvas.rx-map-post")) == 12
    assert len(page.find_elements(By.CSS_SELECTOR, ".rx-conv2 canvas.rx-map-post")) == 16


@needs_mnist
@needs_chromium
def test_hover_readout_is_magnitude_times_rectified_cosine(page, nets, digits):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    js(page, "window.recosExplorer.selectDigit(3); window.recosExplorer.update()")
    cv = page.find_element(By.CSS_SELECTOR, ".rx-conv1 canvas.rx-map-post[data-index='1']")
    size = cv.size["width"]
    row, col = 14, 9                 # aim at the centre of map cell (row, col)
    ActionChains(page).move_to_element_with_offset(
        cv, (col + 0.5) * size / 28 - size / 2, (row + 0.5) * size / 28 - size / 2).perform()
    js(page, "window.recosExplorer.update()")
    r = state(page)["readout"]
    assert (r["row"], r["col"]) == (row, col)
    ok = 0
    for a in r["anchors"]:
        assert abs(r["x_norm"] * a["a_norm"] * a["rec_cos"] - a["response"]) < 1e-4
        assert abs(a["product"] - a["response"]) < 1e-4
        ok += a["response"] > 0
    assert ok > 0, "pick a place where some anchor responds"
    rows = page.find_elements(By.CSS_SELECTOR, ".rx-readout tbody tr")
    assert len(rows) == 6
    for tr in rows:
        assert abs(float(tr.get_attribute("data-product"))
                   - float(tr.get_attribute("data-response"))) < 1e-4
    # the same numbers from PyTorch, Chapter 1's way: x'' = (1, patch), a'' = (b, a)
    model = nets["baseline"]
    x = F.pad(digits[0][3:4].float().div(255).unsqueeze(1), (2, 2, 2, 2))
    patch = x[0, 0, row:row + 5, col:col + 5].flatten().double()
    xa = torch.cat([torch.ones(1, dtype=torch.float64), patch])
    aa = torch.cat([model.conv1.bias.detach()[:, None], model.conv1.weight.detach().flatten(1)],
                   1).double()
    with torch.no_grad():
        y = model.features(x[:, :, 2:-2, 2:-2])["relu1"][0, :, row, col].double()
    assert abs(r["x_norm"] - xa.norm().item()) < 1e-6
    for k, a in enumerate(r["anchors"]):
        assert abs(a["a_norm"] - aa[k].norm().item()) < 1e-6
        assert abs(a["response"] - y[k].item()) < 1e-4


@needs_mnist
@needs_chromium
def test_no_console_errors_and_nothing_fetched_from_elsewhere(driver, server):
    from selenium.webdriver.common.by import By

    driver.get_log("browser"), driver.get_log("performance")  # drop earlier entries
    open_page(driver, server)
    for name in ("negated", "paired", "both", "baseline"):
        driver.find_element(By.CSS_SELECTOR, f".rx-networks input[value='{name}'] + span").click()
        driver.find_element(By.CSS_SELECTOR, ".rx-reverse").click()
    js(driver, "window.recosExplorer.selectDigit(5); window.recosExplorer.setBackground('coins');"
               "window.recosExplorer.hover(3, 4); window.recosExplorer.update()")
    time.sleep(0.3)
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    host = urlparse(server).netloc
    urls = [json.loads(e["message"])["message"]["params"]["request"]["url"]
            for e in driver.get_log("performance")
            if json.loads(e["message"])["message"]["method"] == "Network.requestWillBeSent"]
    assert any(u.endswith("/explorer_data.js") for u in urls)
    outside = [u for u in urls if urlparse(u).scheme not in ("data", "blob")
               and urlparse(u).netloc != host]
    assert not outside, outside


@needs_chromium
def test_without_data_the_page_says_where_the_weights_come_from(driver, tmp_path):
    served = serve(write_site(tmp_path, None))
    try:
        open_page(driver, next(served))
        text = js(driver, "return document.querySelector('#recos-explorer').innerText")
        assert "exported by `recos-book run` when Chapter 2 runs" in text
        msg = js(driver, "try { window.recosExplorer.logits(new Array(784).fill(0), 'baseline'); }"
                         " catch (e) { return e.message; }")
        assert msg.startswith("The explorer's weights are missing")
        assert js(driver, "return window.recosExplorer.ready") is False
    finally:
        served.close()


# ------------------------------------------------------------------- the reader's network
def _export_cli(*args: str) -> subprocess.CompletedProcess:
    """``recos-book export-weights ARGS`` as the reader runs it (a separate process)."""
    return subprocess.run([sys.executable, "-m", "recos_utils.runner.cli", "export-weights",
                           *args], cwd=ROOT, capture_output=True, text=True)


@pytest.fixture(scope="module")
def reader_model() -> LeNet5:
    torch.manual_seed(20240526)
    return LeNet5().eval()


@pytest.fixture(scope="module")
def reader_json(reader_model, tmp_path_factory) -> Path:
    """The reader's checkpoint (a random LeNet-5, seeded), exported by the command."""
    folder = tmp_path_factory.mktemp("reader")
    torch.save(reader_model.state_dict(), folder / "my_lenet5.pt")
    proc = _export_cli(str(folder / "my_lenet5.pt"), str(folder / "my_lenet5.json"))
    assert proc.returncode == 0, proc.stderr
    assert "my_lenet5.json" in proc.stdout
    return folder / "my_lenet5.json"


def test_export_weights_writes_the_pages_network_entry(reader_json, reader_model, tmp_path):
    entry = json.loads(reader_json.read_text())
    assert entry["kind"] == explorer.READER_KIND
    assert entry["arch"]["activation"] == "relu" and entry["arch"]["pool"] == "max"
    assert entry["arch"]["pad_value"] == 0.0 and entry["arch"]["conv1_channels"] == 6
    sd = reader_model.state_dict()
    assert list(entry["tensors"]) == list(sd) == list(explorer.LENET5_SHAPES)
    for k, t in sd.items():
        assert torch.equal(explorer.decode_tensor(entry["tensors"][k]), t), k
    assert reader_json.stat().st_size < explorer.READER_MAX_BYTES
    # a training checkpoint {"state_dict": ..., "epoch": ...} is unwrapped; options are kept
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "ckpt.pt")
    from recos_utils.runner import cli

    assert cli.main(["export-weights", str(tmp_path / "ckpt.pt"), str(tmp_path / "w.json"),
                     "--pool", "avg"]) == 0
    w = json.loads((tmp_path / "w.json").read_text())
    assert w["arch"]["pool"] == "avg" and w["tensors"] == entry["tensors"]


def test_export_weights_refuses_bad_checkpoints_with_one_message(tmp_path, capsys,
                                                                  reader_model):
    import argparse

    from recos_utils.runner import cli

    torch.save({"model": argparse.Namespace(lr=0.1)}, tmp_path / "object.pt")
    wide = dict(reader_model.state_dict(), **{"conv1.weight": torch.zeros(12, 1, 5, 5)})
    torch.save(wide, tmp_path / "paired.pt")
    short = {k: v for k, v in reader_model.state_dict().items() if not k.startswith("fc3")}
    torch.save(short, tmp_path / "short.pt")
    cases = {
        "missing.pt": ["no checkpoint at", "missing.pt", "a file written by torch.save"],
        "object.pt": ["weights_only=True refuses it",
                      "torch.save(model.state_dict(), PATH)"],
        "paired.pt": ["layer conv1.weight has shape 12x1x5x5, expected 6x1x5x5"],
        "short.pt": ["layer fc3.weight (expected shape 10x84) is missing"],
    }
    before = set(tmp_path.iterdir())
    for name, phrases in cases.items():
        out = tmp_path / f"{name}.json"
        assert cli.main(["export-weights", str(tmp_path / name), str(out)]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("recos-book export-weights: ") and err.count("\n") == 1, err
        for phrase in phrases:
            assert phrase in err, (name, err)
        assert "Traceback" not in err
        assert set(tmp_path.iterdir()) == before, f"{name}: something was written"
    # the real command: the same message and exit status 2, nothing written
    proc = _export_cli(str(tmp_path / "paired.pt"), str(tmp_path / "out.json"))
    assert proc.returncode == 2 and "12x1x5x5, expected 6x1x5x5" in proc.stderr
    assert not (tmp_path / "out.json").exists()


@pytest.fixture(scope="module")
def reader_site(tmp_path_factory) -> Path:
    """A page with untrained networks of the four kinds and a few random digits."""
    g = torch.Generator().manual_seed(1)
    imgs = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8, generator=g)
    folder = tmp_path_factory.mktemp("reader_site")
    data = explorer.export(_random_nets(1), dict(META, mode="quick"), folder / "data",
                           test_images=imgs, test_labels=list(range(5)), photos={})
    return write_site(folder / "site", data)


@pytest.fixture(scope="module")
def reader_server(reader_site):
    yield from serve(reader_site)


@pytest.fixture(scope="module")
def bad_files(reader_json, tmp_path_factory) -> dict:
    """Files the picker must refuse, with a phrase its message must hold."""
    folder = tmp_path_factory.mktemp("bad_files")
    (folder / "not_json.json").write_text("PK\x03\x04 this is a zip, not JSON")
    entry = json.loads(reader_json.read_text())
    entry["tensors"]["fc1.weight"]["shape"] = [120, 399]
    (folder / "wrong_shape.json").write_text(json.dumps(entry))
    (folder / "too_large.json").write_text(reader_json.read_text() + " " * 5_000_000)
    return {folder / "not_json.json": "is not JSON",
            folder / "wrong_shape.json": "layer fc1.weight has shape 120x399, expected 120x400",
            folder / "too_large.json": "over the limit of 5 MB"}


def _load(driver, path: Path) -> str:
    """Choose ``path`` in the page's file picker; the message the page shows."""
    from selenium.webdriver.common.by import By

    js(driver, "document.querySelector('.rx-upload-message').textContent = ''")
    driver.find_element(By.CSS_SELECTOR, ".rx-file").send_keys(str(path))
    t0 = time.time()
    while not (msg := js(driver, "return document.querySelector('.rx-upload-message')"
                                 ".textContent")):
        assert time.time() - t0 < 20, "the page did not answer the file"
        time.sleep(0.05)
    return msg


def _random_pixels(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 28 * 28, generator=torch.Generator().manual_seed(seed))


@needs_chromium
def test_the_page_runs_the_readers_network(driver, reader_server, reader_json, reader_model):
    from selenium.webdriver.common.by import By

    open_page(driver, reader_server)
    assert js(driver, "return window.recosExplorer.networks()") == list(explorer.NETWORKS)
    msg = _load(driver, reader_json)
    assert "Loaded \"my_lenet5.json\"" in msg
    shown_as = driver.find_element(By.CSS_SELECTOR, ".rx-upload-message").get_attribute("class")
    assert "rx-ok" in shown_as
    assert js(driver, "return window.recosExplorer.networks()") == [*explorer.NETWORKS, "yours"]
    # its logits are PyTorch's, on random images and on the page's own input
    x = _random_pixels(20, 3)
    got = torch.tensor(js(driver, "return arguments[0].map((p) => "
                                  "window.recosExplorer.logits(p, 'yours'))", x.tolist()))
    with torch.no_grad():
        want = reader_model(x.view(-1, 1, 28, 28))
    assert (got - want.double()).abs().max() < 1e-5
    js(driver, "window.recosExplorer.selectDigit(2); window.recosExplorer.update()")
    s = state(driver)
    assert s["network"] == "yours" and s["yours"] == "my_lenet5.json"
    with torch.no_grad():
        want = reader_model(torch.tensor(s["input"]).view(1, 1, 28, 28))[0]
    assert (torch.tensor(s["logits"]) - want.double()).abs().max() < 1e-5
    # the page shows its prediction, its logits, where it came from, and its maps
    assert driver.find_element(By.CSS_SELECTOR, ".rx-predicted").text == str(int(want.argmax()))
    shown = [float(e.get_attribute("data-value"))
             for e in driver.find_elements(By.CSS_SELECTOR, ".rx-logits .rx-logit")]
    assert shown == s["logits"]
    assert "These weights are yours: \"my_lenet5.json\", exported from my_lenet5.pt" in \
        driver.find_element(By.CSS_SELECTOR, ".rx-meta").text
    assert driver.find_element(By.CSS_SELECTOR, ".rx-networks input[value='yours']").is_selected()
    assert len(driver.find_elements(By.CSS_SELECTOR, ".rx-conv1 canvas.rx-map-post")) == 6
    # beside the book's networks: switch to one and back
    driver.find_element(By.CSS_SELECTOR, ".rx-networks input[value='both'] + span").click()
    assert state(driver)["network"] == "both"
    driver.find_element(By.CSS_SELECTOR, ".rx-networks input[value='yours'] + span").click()
    assert state(driver)["logits"] == s["logits"]


@needs_chromium
def test_bad_network_files_get_a_message_and_change_nothing(driver, reader_server, reader_json,
                                                            bad_files):
    from selenium.webdriver.common.by import By

    x = _random_pixels(3, 4).tolist()
    logits = lambda: js(driver, "const api = window.recosExplorer; const out = {};"
                                "for (const n of api.networks()) out[n] = arguments[0].map("
                                "(p) => api.logits(p, n)); return out;", x)
    message_class = lambda: driver.find_element(
        By.CSS_SELECTOR, ".rx-upload-message").get_attribute("class")
    driver.get_log("browser")  # drop earlier tests' entries
    # on a fresh page (no network of the reader's yet), then with one loaded
    for first in (None, reader_json):
        open_page(driver, reader_server)
        if first is not None:
            _load(driver, first)
        js(driver, "window.recosExplorer.setNetwork('negated'); window.recosExplorer.update()")
        names, before, s0 = js(driver, "return window.recosExplorer.networks()"), logits(), \
            state(driver)
        for path, phrase in bad_files.items():
            msg = _load(driver, path)
            assert msg.startswith("Not loaded: ") and phrase in msg, (path.name, msg)
            assert "recos-book export-weights" in msg and "rx-error" in message_class()
            assert js(driver, "return window.recosExplorer.networks()") == names
            assert logits() == before, path.name
            assert state(driver) == s0, path.name
        js(driver, "window.recosExplorer.update()")
        assert driver.find_element(By.CSS_SELECTOR, ".rx-predicted").text == str(s0["prediction"])
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


# ------------------------------------------------------------------- on a phone
@pytest.fixture(scope="module")
def phone():
    """Chromium as a 390 CSS-pixel-wide phone with a touch screen."""
    if chromium() is None:
        pytest.skip(NO_CHROMIUM)
    for drv in offline_driver("500,900", page_load_timeout=60):
        drv.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": 390, "height": 844, "deviceScaleFactor": 3, "mobile": True})
        drv.execute_cdp_cmd("Emulation.setTouchEmulationEnabled",
                            {"enabled": True, "maxTouchPoints": 5})
        yield drv


def _no_horizontal_scroll(driver):
    width, scroll = js(driver, "return [innerWidth, document.scrollingElement.scrollWidth]")
    assert width == 390 and scroll <= width, f"page {scroll} px wide in a {width} px viewport"


@needs_chromium
def test_on_a_phone_no_horizontal_scroll_and_touch_draws(phone, reader_server, reader_json):
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput
    from selenium.webdriver.common.by import By

    open_page(phone, reader_server)
    _no_horizontal_scroll(phone)
    canvas = phone.find_element(By.CSS_SELECTOR, ".rx-canvas")
    box = js(phone, "const r = arguments[0].getBoundingClientRect(); "
                    "return [r.left, r.right, r.width, r.height, "
                    "getComputedStyle(arguments[0]).touchAction]", canvas)
    assert box[0] >= 0 and box[1] <= 390 and box[2] >= 200 and abs(box[2] - box[3]) < 1
    assert box[4] == "none"
    # a finger's stroke: a real touch pointer from WebDriver
    js(phone, "window.__kinds = []; document.querySelector('.rx-canvas').addEventListener("
              "'pointerdown', (e) => window.__kinds.push(e.pointerType))")
    scroll0 = js(phone, "return scrollY")
    finger = ActionBuilder(phone, mouse=PointerInput(interaction.POINTER_TOUCH, "finger"))
    finger.pointer_action.move_to(canvas, 0, -round(box[2] * 0.3)).pointer_down()
    for _ in range(10):
        finger.pointer_action.move_by(0, round(box[2] * 0.06))
    finger.pointer_action.pointer_up()
    finger.perform()
    s = state(phone)
    assert js(phone, "return window.__kinds") == ["touch"]
    assert s["strokes"] == 1 and max(s["digit"]) > 0.95
    ink = np.array(s["digit"]).reshape(28, 28)
    assert (ink[:, 12:16] > 0.5).sum() > 10, "a vertical stroke through the middle"
    assert js(phone, "return scrollY") == scroll0, "the stroke scrolled the page"
    # the controls, the reader's network and the widest network still fit
    _load(phone, reader_json)
    js(phone, "window.recosExplorer.update()")
    _no_horizontal_scroll(phone)
    js(phone, "window.recosExplorer.setNetwork('paired'); window.recosExplorer.update()")
    _no_horizontal_scroll(phone)
