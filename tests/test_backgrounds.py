"""Tests of recos_utils.core.backgrounds: the mnist-back-image generator of Chapter 4."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from recos_utils.core import backgrounds as bgs
from recos_utils.core.data import Dataset

ALL = bgs.SEEN_PHOTOS + bgs.UNSEEN_PHOTOS


def test_photographs_load_offline_as_grey_uint8():
    for name in ALL:
        img = bgs.photo(name)
        assert img.dtype == np.uint8 and img.ndim == 2
        assert min(img.shape) >= 4 * bgs.SIZE
        assert img.std() > 10  # a photograph, not a flat placeholder


def test_colour_photographs_use_luma_weights():
    import skimage.data

    rgb = skimage.data.astronaut()[..., :3].astype(np.float64)
    ref = np.rint(rgb @ np.array([0.2125, 0.7154, 0.0721]))
    assert np.array_equal(bgs.photo("astronaut"), ref.astype(np.uint8))


def test_seen_and_unseen_photographs_are_disjoint():
    assert not set(bgs.SEEN_PHOTOS) & set(bgs.UNSEEN_PHOTOS)
    # skimage's "cat" is chelsea: only one of them may be used
    assert not {"cat", "chelsea"} <= set(ALL)
    grey = {name: bgs.photo(name) for name in ALL}
    for a in bgs.SEEN_PHOTOS:
        for b in bgs.UNSEEN_PHOTOS:
            assert grey[a].shape != grey[b].shape or not np.array_equal(grey[a], grey[b])


def test_patch_variance_matches_numpy():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(60, 45), dtype=np.uint8)
    v = bgs.patch_variance(img, 28)
    assert v.shape == (33, 18)
    for r, c in [(0, 0), (32, 17), (10, 5), (20, 9)]:
        assert v[r, c] == pytest.approx(img[r:r + 28, c:c + 28].astype(np.float64).var(), rel=1e-12)


@pytest.mark.parametrize("name", ["camera", "moon"])
def test_variance_rule_accepts_exactly_the_varied_patches(name):
    img = bgs.photo(name).astype(np.float64)
    accepted = {tuple(p) for p in bgs.positions(name, "all")}
    rng = np.random.default_rng(1)
    h, w = img.shape[0] - bgs.SIZE + 1, img.shape[1] - bgs.SIZE + 1
    for r, c in zip(rng.integers(0, h, 300), rng.integers(0, w, 300)):
        var = img[r:r + bgs.SIZE, c:c + bgs.SIZE].var()
        assert ((r, c) in accepted) == (var >= bgs.VAR_MIN)
    for r, c in list(accepted)[:50]:
        assert img[r:r + bgs.SIZE, c:c + bgs.SIZE].var() >= bgs.VAR_MIN


def test_chessboard_parts_keep_patches_in_one_block_of_their_colour():
    for part, colour in [("white", 0), ("black", 1)]:
        pos = bgs.positions("astronaut", part)
        r, c = pos[:, 0], pos[:, 1]
        last_r, last_c = r + bgs.SIZE - 1, c + bgs.SIZE - 1
        assert np.all(r // bgs.BLOCK == last_r // bgs.BLOCK)
        assert np.all(c // bgs.BLOCK == last_c // bgs.BLOCK)
        assert np.all((r // bgs.BLOCK + c // bgs.BLOCK) % 2 == colour)


def test_coverage_matches_painting_every_patch():
    name = "clock"  # few accepted places: brute force is cheap
    pos = bgs.positions(name, "all")
    painted = np.zeros(bgs.photo(name).shape, dtype=bool)
    for r, c in pos:
        painted[r:r + bgs.SIZE, c:c + bgs.SIZE] = True
    assert np.array_equal(bgs.coverage(name, "all"), painted)


@pytest.mark.parametrize("name", bgs.SEEN_PHOTOS)
def test_training_and_seen_test_patches_share_no_pixel(name):
    assert bgs.coverage(name, "white").any() and bgs.coverage(name, "black").any()
    assert not (bgs.coverage(name, "white") & bgs.coverage(name, "black")).any()


def test_sampling_is_deterministic_and_seed_dependent():
    a = bgs.sample_patches(200, "train", seed=3)
    b = bgs.sample_patches(200, "train", seed=3)
    c = bgs.sample_patches(200, "train", seed=4)
    d = bgs.sample_patches(200, "seen", seed=3)
    assert torch.equal(a["patches"], b["patches"]) and torch.equal(a["corner"], b["corner"])
    assert not torch.equal(a["patches"], c["patches"])
    assert not torch.equal(a["corner"], d["corner"])


@pytest.mark.parametrize("regime", list(bgs.REGIMES))
def test_sampled_patches_are_crops_that_pass_the_rule(regime):
    s = bgs.sample_patches(150, regime, seed=0)
    names, part = bgs.REGIMES[regime]
    assert s["photos"] == list(names)
    for k in range(150):
        name = s["photos"][int(s["photo"][k])]
        r, c = (int(v) for v in s["corner"][k])
        crop = bgs.photo(name)[r:r + bgs.SIZE, c:c + bgs.SIZE]
        assert np.array_equal(s["patches"][k].numpy(), crop)
        assert crop.astype(np.float64).var() >= bgs.VAR_MIN
        if part != "all":
            colour = (r // bgs.BLOCK + c // bgs.BLOCK) % 2
            assert colour == (0 if part == "white" else 1)


def test_max_combination_never_darkens_the_digit():
    g = torch.Generator().manual_seed(0)
    digits = torch.randint(0, 256, (50, 28, 28), generator=g, dtype=torch.uint8)
    patches = bgs.sample_patches(50, "seen", seed=0)["patches"]
    out = bgs.combine(digits, patches)
    assert out.dtype == torch.uint8
    assert torch.all(out >= digits) and torch.all(out >= patches)
    keep = digits >= patches
    assert torch.equal(out[keep], digits[keep]) and torch.equal(out[~keep], patches[~keep])
    with pytest.raises(TypeError):
        bgs.combine(digits.float(), patches)


def test_hidden_fraction_counts_stroke_pixels_the_background_reaches():
    digit = torch.zeros(1, 28, 28, dtype=torch.uint8)
    digit[0, 10, 10:20] = 255          # ten stroke pixels
    digit[0, 11, 10:20] = 200          # ten more (>= 128)
    digit[0, 12, 10:20] = 100          # faint, not stroke
    patch = torch.zeros(1, 28, 28, dtype=torch.uint8)
    assert bgs.hidden_fraction(digit, patch).item() == 0.0
    patch[0, 11, 10:15] = 200          # equals the ink: hidden
    patch[0, 11, 15:20] = 199          # darker than the ink: visible
    patch[0, 10, 10:13] = 255          # equals white ink: hidden
    patch[0, 12, :] = 255              # not stroke pixels: ignored
    assert bgs.hidden_fraction(digit, patch).item() == pytest.approx(8 / 20)
    assert bgs.hidden_fraction(digit, torch.full_like(patch, 255)).item() == 1.0
    assert bgs.hidden_fraction(torch.zeros_like(digit), patch).item() == 0.0


def test_on_backgrounds_keeps_labels_and_applies_the_recipe():
    g = torch.Generator().manual_seed(1)
    ds = Dataset(torch.randint(0, 256, (40, 28, 28), generator=g, dtype=torch.uint8),
                 torch.arange(40) % 10, "synthetic", "test")
    out, bg = bgs.on_backgrounds(ds, "unseen", seed=5)
    assert torch.equal(out.labels, ds.labels)
    assert torch.equal(out.images, torch.maximum(ds.images, bg["patches"]))
    assert torch.equal(bg["hidden"], bgs.hidden_fraction(ds.images, bg["patches"]))
    again, _ = bgs.on_backgrounds(ds, "unseen", seed=5)
    assert torch.equal(out.images, again.images)


def test_hidden_stats():
    s = bgs.hidden_stats(torch.tensor([0.0, 0.0, 0.05, 0.1, 0.3, 0.5, 1.0, 0.2]))
    assert s["mean"] == pytest.approx(2.15 / 8)
    assert s["none"] == pytest.approx(2 / 8)
    assert s["ge_10"] == pytest.approx(5 / 8)
    assert s["ge_30"] == pytest.approx(3 / 8)
    assert s["ge_50"] == pytest.approx(2 / 8)


def test_photo_summary_is_consistent_with_positions():
    summary = bgs.photo_summary()
    assert set(summary) == set(ALL)
    for name, v in summary.items():
        assert 0.0 < v["acceptance"] <= 1.0
        assert v["shared_pixels"] == 0
        if v["regime"] == "seen":
            assert v["train_places"] == len(bgs.positions(name, "white")) > 0
            assert v["test_places"] == len(bgs.positions(name, "black")) > 0
        else:
            assert v["train_places"] == 0 and v["test_places"] == len(bgs.positions(name, "all"))


def test_unknown_regime_is_refused():
    with pytest.raises(ValueError, match="regime"):
        bgs.sample_patches(3, "test")
