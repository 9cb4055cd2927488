"""Saak / Saab stages and least-squares layers (Chapter 6) against independent references."""
import dataclasses
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recos_utils.core import feedforward as ff
from recos_utils.core import recos
from recos_utils.core.data import load_dataset, reverse_grey
from conftest import needs_mnist


@pytest.fixture(scope="module")
def mnist():
    """2000 MNIST training digits and 1000 test digits (uint8, N x 28 x 28)."""
    return (load_dataset("mnist", "train", download=False).subset(2000),
            load_dataset("mnist", "test", download=False).subset(1000))


def _orthonormal_dc_first(kernels: torch.Tensor) -> None:
    """Rows orthonormal to 1e-10; the first row constant 1/sqrt(d); the others sum to 0."""
    K = kernels.reshape(len(kernels), -1)
    d = K.shape[1]
    assert K.dtype == torch.float64
    assert (K @ K.T - torch.eye(len(K), dtype=torch.float64)).abs().max() < 1e-10
    assert (K[0] - d ** -0.5).abs().max() < 1e-15
    assert (K[1:].sum(1)).abs().max() < 1e-12


def _correlated_images(n=60, c=2, h=8, seed=0) -> torch.Tensor:
    """Smooth random images (correlated pixels, so PCA eigenvalues are distinct)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, h + 2, h + 2, generator=g, dtype=torch.float64)
    return F.avg_pool2d(x, 3, 1) + 0.1 * torch.rand(n, c, h, h, generator=g, dtype=torch.float64)


# --------------------------------------------------------------------------- kernels
def test_saak_kernels_orthonormal_with_constant_dc():
    st = ff.SaakStage.fit(_correlated_images(), window=2, max_windows=None)
    assert st.kernels.shape == (8, 2, 2, 2)  # d = 2*2*2: DC + 7 AC kernels, complete
    _orthonormal_dc_first(st.kernels)
    assert (st.eigenvalues[:-1] >= st.eigenvalues[1:]).all()


@needs_mnist
def test_saab_kernels_orthonormal_on_mnist(mnist):
    x = ff.prepare(mnist[0].images[:300])
    layer = ff.SaabLayer.fit(x, 5, 6, max_windows=20_000, seed=3)
    assert layer.kernels.shape == (6, 1, 5, 5)
    _orthonormal_dc_first(layer.kernels)
    h = F.max_pool2d(layer.transform(x).relu(), 2)  # conv2's input: 6 x 14 x 14
    layer2 = ff.SaabLayer.fit(h, 5, 16, max_windows=20_000)
    assert layer2.kernels.shape == (16, 6, 5, 5)
    _orthonormal_dc_first(layer2.kernels)


def test_pca_kernels_agree_with_numpy_eigh_up_to_sign():
    x = _correlated_images(c=1, h=10)
    windows = ff.sample_windows(x, 3)  # all windows, 60 * 8 * 8
    kern, ev = ff.pca_kernels(windows)
    W = windows.numpy() - windows.numpy().mean(1, keepdims=True)
    vals, vecs = np.linalg.eigh(np.cov(W, rowvar=False))
    vals, vecs = vals[::-1][:8], vecs[:, ::-1][:, :8]  # the 9th is the constant (value 0)
    np.testing.assert_allclose(ev.numpy(), vals, rtol=1e-9, atol=1e-14)
    cos = np.abs((kern[1:].numpy() * vecs.T).sum(1))
    np.testing.assert_allclose(cos, 1.0, atol=1e-8)
    # the deterministic sign: each kernel's largest-|.| entry is positive
    k = kern[1:]
    assert (k.gather(1, k.abs().argmax(1, keepdim=True)) > 0).all()


def test_window_sampling_is_seeded_and_matches_unfold():
    x = _correlated_images(n=5, c=3)
    a, b = ff.sample_windows(x, 3, 50, seed=1), ff.sample_windows(x, 3, 50, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, ff.sample_windows(x, 3, 50, seed=2))
    every = recos.patches(x, 3).reshape(-1, 27)
    dist = torch.cdist(a, every, compute_mode="donot_use_mm_for_euclid_dist").min(1).values  # each sample is one of the windows
    assert dist.max() < 1e-12


# --------------------------------------------------------------------------- Saab
@needs_mnist
def _min_response(layer, x, bias=None):
    """Smallest a . x + b over every window of ``x``, by unfold (independent of conv2d)."""
    k = layer.kernels.shape[-1]
    P = recos.patches(x, k, padding=layer.padding).reshape(-1, layer.kernels[0].numel())
    return (P @ layer.kernels.reshape(len(layer.kernels), -1).T).min().item() + (
        layer.bias if bias is None else bias)


def test_saab_bias_makes_every_response_nonnegative(mnist):
    x = ff.prepare(mnist[0].images[:300])
    layer = ff.SaabLayer.fit(x, 5, 6, max_windows=None)
    ref = recos.patches(x, 5).norm(dim=-1).max().item()  # max ||window||, by unfold
    assert layer.bias == pytest.approx(ref, rel=1e-12)
    assert _min_response(layer, x) >= 0
    lows = []                          # the design's own record of its smallest response
    ff.conv_stage(layer, x, 64, lows)
    assert min(lows) == pytest.approx(_min_response(layer, x), abs=1e-9)
    # the bias is needed: on MNIST the AC correlations reach about -2.1 (b ~ 5)
    assert _min_response(layer, x, bias=0.3 * layer.bias) < 0
    assert _min_response(layer, x, bias=0.0) < -1.0


def test_saab_half_bias_fails_on_gaussian_windows():
    x = torch.randn(200, 1, 12, 12, generator=torch.Generator().manual_seed(0),
                    dtype=torch.float64)
    layer = ff.SaabLayer.fit(x, 5, 10, max_windows=None)
    assert _min_response(layer, x) >= 0
    assert _min_response(layer, x, bias=0.5 * layer.bias) < 0


@pytest.mark.parametrize("c,k,n,pad", [(1, 5, 6, 0), (6, 5, 16, 0), (2, 3, 7, 1)])
def test_saab_transform_equals_unfold(c, k, n, pad):
    x = _correlated_images(n=20, c=c, h=12, seed=c)
    layer = ff.SaabLayer.fit(x, k, n, padding=pad, max_windows=2000)
    got = layer.transform(x)
    p = recos.patches(x, k, padding=pad)                       # B x L x (C k k)
    ref = p @ layer.kernels.reshape(n, -1).T + layer.bias      # B x L x K
    side = x.shape[-1] + 2 * pad - k + 1
    ref = ref.transpose(1, 2).reshape(len(x), n, side, side)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- Saak
@needs_mnist
def test_saak_inverse_is_exact(mnist):
    x = ff.prepare(mnist[0].images[:200])
    assert x.shape == (200, 1, 32, 32) and x.dtype == torch.float64
    st = ff.SaakStage.fit(x, 2)
    y = st.forward(x)
    assert y.shape == (200, 7, 16, 16) and (y[:, 1:] >= 0).all()
    assert (st.inverse(y) - x).abs().max() < 1e-10
    cas = ff.saak_cascade(mnist[0].images[:200], stages=2)
    outs = cas.outputs(x)
    assert [tuple(o.shape[1:]) for o in outs] == [(7, 16, 16), (55, 8, 8)]
    assert (cas.inverse(outs[-1]) - x).abs().max() < 1e-10
    y32 = cas.outputs(x.float())[-1]
    assert (cas.inverse(y32) - x.float()).abs().max() < 1e-5


@needs_mnist
def test_reversal_swaps_first_stage_pairs_exactly_but_not_the_second(mnist):
    imgs = mnist[0].images[:300]
    x = ff.prepare(imgs)
    cas = ff.saak_cascade(imgs, stages=2, seed=1)
    # independent check with the stage's own projections: every AC coefficient negates
    c, cr = cas[0].coefficients(x), cas[0].coefficients(1.0 - x)
    assert (cr[:, 1:] + c[:, 1:]).abs().max() < 1e-12
    rep = ff.reversal_report(cas, x)
    s1, s2 = rep["stage1"], rep["stage2"]
    assert s1["max_swap_dev"] < 1e-12 and s1["frac_pairs_swapped"] == 1.0
    assert s1["dc_max_change"] > 0.5 and s1["dc_identity_dev"] < 1e-12  # DC: sqrt(d) - DC
    assert s2["frac_pairs_swapped"] < 0.8 and s2["rel_swap_dev"] > 0.1
    # reversing the digits before padding: the swap is still exact (pads are whole windows)
    rev = ff.reversal_report(cas, x, ff.prepare(reverse_grey(imgs)))["stage1"]
    assert rev["max_swap_dev"] < 1e-12


# --------------------------------------------------------------------------- least squares
def test_lstsq_layer_agrees_with_numpy():
    rng = np.random.default_rng(0)
    X, T = rng.standard_normal((300, 12)), rng.standard_normal((300, 4))
    W, b = ff.lstsq_layer(torch.from_numpy(X), torch.from_numpy(T))
    ref = np.linalg.lstsq(np.c_[X, np.ones(300)], T, rcond=None)[0]
    got = np.vstack([W.numpy(), b.numpy()[None]])
    assert np.abs(got - ref).max() / np.abs(ref).max() < 1e-8


def test_kmeans_is_seeded_and_finds_separated_blobs():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=torch.float64)
    truth = torch.arange(3).repeat_interleave(50)
    x = centres[truth] + 0.5 * torch.randn(150, 2, generator=g, dtype=torch.float64)
    C1, l1 = ff.kmeans(x, 3, seed=4)
    C2, l2 = ff.kmeans(x, 3, seed=4)
    assert torch.equal(C1, C2) and torch.equal(l1, l2)
    # the clusters are the blobs (up to renaming); centroids are the blob means
    perm = torch.stack([l1[truth == i].mode().values for i in range(3)])
    assert sorted(perm.tolist()) == [0, 1, 2] and torch.equal(perm[truth], l1)
    means = torch.stack([x[truth == i].mean(0) for i in range(3)])
    torch.testing.assert_close(C1[perm], means, rtol=0, atol=1e-12)


def test_cluster_allocation():
    assert ff.cluster_counts(120, 10) == [12] * 10
    assert ff.cluster_counts(84, 10) == [9] * 4 + [8] * 6
    with pytest.raises(ff.FeedforwardError, match="class 2 10 clusters, but it has only 5 samples"):
        ff.cluster_counts(30, [10, 10, 5])


def test_pseudo_labels_one_hot_per_class_blocks_and_seeded():
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(10).repeat(40)
    f = torch.randn(400, 6, generator=g, dtype=torch.float64) + labels[:, None]
    T = ff.pseudo_labels(f, labels, 84, seed=0)
    assert T.shape == (400, 84) and torch.equal(T.sum(1), torch.ones(400, dtype=T.dtype))
    col = T.argmax(1)
    starts = np.cumsum([0] + ff.cluster_counts(84, 10))
    for c in range(10):
        used = col[labels == c]
        assert used.min() >= starts[c] and used.max() < starts[c + 1]
    assert torch.equal(T, ff.pseudo_labels(f, labels, 84, seed=0))


# --------------------------------------------------------------------------- parameters
def test_bad_parameters_raise_one_clear_error():
    x = torch.rand(10, 1, 28, 28, dtype=torch.float64)
    with pytest.raises(ff.FeedforwardError,
                       match=r"n_kernels=30 exceeds the window dimension 25 \(5x5x1\): at most 25"):
        ff.SaabLayer.fit(x, 5, 30)
    with pytest.raises(ff.FeedforwardError, match="does not tile"):
        ff.SaakStage.fit(torch.rand(2, 1, 7, 7), 2)
    labels = torch.arange(10).repeat(5)
    imgs = torch.zeros(50, 28, 28, dtype=torch.uint8)
    cases = [(ff.FFConfig(conv=(6, 200)), r"conv\[1\]=200 exceeds the window dimension 150"),
             (ff.FFConfig(window=0), "window=0 must be a positive integer"),
             (ff.FFConfig(max_windows=-1), "max_windows=-1"),
             (ff.FFConfig(fc=(120,)), "class 0 12 clusters, but it has only 5 samples")]
    for cfg, msg in cases:
        with pytest.raises(ff.FeedforwardError, match=msg):
            ff.design_lenet5(imgs, labels, cfg)


# --------------------------------------------------------------------------- end to end
@needs_mnist
def test_small_design_classifies_and_round_trips_through_the_cache_format(mnist):
    tr, te = mnist
    cfg = ff.FFConfig(max_windows=50_000, seed=0)
    model = ff.design_lenet5(tr.images, tr.labels, cfg)
    assert [tuple(c.kernels.shape) for c in model.conv] == [(6, 1, 5, 5), (16, 6, 5, 5)]
    assert [tuple(w.shape) for w, _ in model.fc] == [(400, 120), (120, 84), (84, 10)]
    acc = (ff.predict(model, te.images) == te.labels).double().mean().item()
    assert acc > 0.90  # measured 0.936-0.943 over seeds 0-4; chance is 0.1
    feats = ff.features(model, tr.images[:500])
    assert (feats[1] >= 0).all() and feats[0].shape == (500, 400)
    buf = io.BytesIO()
    torch.save(ff.to_state(model), buf)
    back = ff.from_state(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    assert back.config == cfg
    assert torch.equal(ff.logits(back, te.images[:200]), ff.logits(model, te.images[:200]))


# --------------------------------------------------------------------------- Chapter 6's runs
def test_anchor_match_finds_a_permuted_sign_flipped_copy_and_beats_chance():
    from recos_utils.chapters import ch6_ff_runs as fr

    g = torch.Generator().manual_seed(0)
    k = torch.randn(6, 1, 5, 5, generator=g, dtype=torch.float64)
    perm = [3, 0, 5, 1, 4, 2]
    flipped = -k[perm] * 2.5                     # scale and sign do not change |cos|
    m = fr.anchor_match(k, flipped, draws=200)
    assert m["mean_abs_cos"] == pytest.approx(1.0, abs=1e-12)
    assert max(m["angles_deg"]) < 1e-5 and m["random_q99"] < 0.9
    assert sorted((i, j) for i, j in m["pairs"]) == sorted((i, p) for i, p in enumerate(perm))
    assert m["bp_for_kernel"] == [perm.index(j) for j in range(6)]   # anchor of each kernel
    assert len(m["deg_for_kernel"]) == 6 and max(m["deg_for_kernel"]) < 1e-5


def test_compare_is_mean_and_sample_std_over_seeds():
    from recos_utils.chapters import ch6_ff_runs as fr

    runs = [{"test_acc": a, "test_acc_reversed": r, "seconds": s}
            for a, r, s in [(0.9, 0.1, 2.0), (0.92, 0.2, 4.0), (0.94, 0.3, 6.0)]]
    c = fr.compare(runs)
    assert c["acc_original"] == pytest.approx(0.92) and c["acc_reversed"] == pytest.approx(0.2)
    assert c["acc_original_std"] == pytest.approx(np.std([0.9, 0.92, 0.94], ddof=1))
    assert c["n"] == 3 and c["seconds"] == pytest.approx(4.0)


def test_stat_feeds_the_registrys_comparison_and_rendering():
    """An arm's accuracy as {mean, std, n}: compared by ``claims.compare_arms`` (two standard
    errors of the difference) and shown by ``results.fmt_mean_std``, hand-computed."""
    from recos_utils.chapters import ch6_ff_runs as fr
    from recos_utils.core import claims
    from recos_utils.core.results import fmt_mean_std

    ff_arm = fr.compare([{"test_acc": a, "test_acc_reversed": r, "seconds": 1.0}
                         for a, r in [(0.90, 0.10), (0.92, 0.20), (0.94, 0.30)]])
    assert fr.stat(ff_arm) == {"mean": pytest.approx(0.92), "std": pytest.approx(0.02), "n": 3}
    assert fr.stat(ff_arm, "reversed")["std"] == pytest.approx(0.1)
    assert fmt_mean_std(fr.stat(ff_arm)) == "92.00 ± 2.00 % over 3 seeds"
    # se of the difference: sqrt(0.02^2/3 + 0.02^2/3) = 0.01633; 2 se = 0.0327
    bp_near = {"acc_original": 0.95, "acc_original_std": 0.02, "n": 3}   # 0.03 above: level
    bp_far = {"acc_original": 0.96, "acc_original_std": 0.02, "n": 3}    # 0.04 above: clear
    assert claims.compare_arms(fr.stat(ff_arm), fr.stat(bp_near)) == claims.LEVEL
    assert claims.compare_arms(fr.stat(ff_arm), fr.stat(bp_far)) == claims.LESS
    assert claims.compare_arms(fr.stat(bp_far), fr.stat(ff_arm)) == claims.GREATER


@needs_mnist
def test_designed_networks_are_cached_by_their_full_config(mnist, tmp_path, monkeypatch):
    """One train-and-cache path (``train_all``, the ``FF_DESIGN`` kind): the same config
    loads the entry, another seed designs afresh; the entry's accuracy is the rebuilt
    model's."""
    from recos_utils.chapters import ch6_ff_runs as fr

    monkeypatch.setenv("RECOS_CACHE_DIR", str(tmp_path))
    cfg = ff.FFConfig(n_train=600, max_windows=5000, fc=(20, 10), seed=1)
    first = fr.design_networks([("mnist", cfg)], n_test=300)[0]
    assert len(list(tmp_path.glob("*.pt"))) == 1
    again = fr.design_networks([("mnist", cfg)], n_test=300)[0]
    assert again["seconds"] == first["seconds"]          # loaded, not designed again
    test = load_dataset("mnist", "test", download=False).subset(300)
    acc = (ff.predict(again["model"], test.images) == test.labels).double().mean().item()
    assert acc == first["test_acc"] > 0.6
    assert min(first["min_response"].values()) >= 0
    # another seed is another config: designed afresh, stored under a second key
    other = fr.design_networks([("mnist", dataclasses.replace(cfg, seed=2))], n_test=300)[0]
    assert len(list(tmp_path.glob("*.pt"))) == 2
    assert other["min_response"] != first["min_response"]


def test_chapter_results_file(quick_book):
    """Chapter 6's results, against references outside the chapter: its backprop arm is
    Chapter 2's baseline (the same cached networks, the same test digits), and accuracies
    are counts of the 2,000 quick-mode test digits."""
    import json

    res = json.loads((quick_book / "results" / "06_feedforward_design.json").read_text())
    ch2 = json.loads((quick_book / "results" / "02_sign_confusion.json").read_text())
    assert res["seeds"] == ch2["seeds"]
    assert res["bp"]["acc_original"] == pytest.approx(ch2["baseline"]["acc_original"], abs=1e-6)
    for arm in ("ff", "bp"):
        for r in (res[arm], res[arm]["fashion_mnist"]):
            for k in ("acc_original", "acc_reversed"):
                assert r[k] * 2000 == pytest.approx(round(r[k] * 2000), abs=1e-3), (arm, k)
    assert res["saak"]["reconstruction_max_abs_err"] < 1e-12
    assert res["saak"]["stage1"]["frac_pairs_swapped"] == 1.0
    assert 0.3 < res["saak"]["stage2"]["frac_pairs_swapped"] < 0.7
    assert min(res["saab"]["min_response"].values()) >= 0
    assert {c: v["holds"] for c, v in res["claims"].items()} == {
        "saak_invertible": True, "saak_pairs": True, "saab_bias": True}
    html = (quick_book / "html" / "book" / "06_feedforward_design.html").read_text()
    assert "holds (quick run)" in html                  # the verdicts are glued into the prose
    assert f"{100 * res['ff']['acc_original']:.2f}%" in html     # and the accuracies
