"""Tests of recos_utils.core.sphere (Chapter 3): patches on the sphere, spherical k-means,
optimal matching and angle statistics, against references and invariants; and (Chapter 5)
the |cos| statistics of a vector set and their null model (recos_utils.core.sphere_null)
against exact values and simulation."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from recos_utils.core import recos

from recos_utils.core import sphere

from recos_utils.core import sphere_null


def planted(k=4, d=10, per=150, noise=0.15, seed=0):
    """Points scattered around k random unit centres (the planted clusters)."""
    rng = np.random.default_rng(seed)
    centres = sphere.unit_rows(rng.standard_normal((k, d)))
    labels = np.repeat(np.arange(k), per)
    X = sphere.unit_rows(centres[labels] + noise * rng.standard_normal((k * per, d)))
    return X, labels, centres


# ---------------------------------------------------------------- patches on the sphere
def test_unit_patches_are_mean_removed_unit_and_match_manual_extraction():
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (3, 28, 28), generator=g, dtype=torch.uint8)
    X, info = sphere.unit_patches(imgs, min_norm=0.0)
    assert info["n_total"] == 3 * 28 * 28 == len(X)       # padded 32x32 -> 28x28 positions
    np.testing.assert_allclose(X.mean(1), 0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1, atol=1e-6)
    # the patch at image 1, row 7, column 11 of the padded input, by hand
    padded = F.pad(imgs.float() / 255, (2, 2, 2, 2))
    p = padded[1, 7:12, 11:16].reshape(25).double().numpy()
    p = (p - p.mean()) / np.linalg.norm(p - p.mean())
    np.testing.assert_allclose(X[28 * 28 + 7 * 28 + 11], p, atol=1e-6)


def test_unit_patches_drop_flat_patches_and_subsample_deterministically():
    imgs = torch.zeros(2, 28, 28, dtype=torch.uint8)
    imgs[0, 10:18, 12:14] = 255                            # one vertical bar, rest flat
    X, info = sphere.unit_patches(imgs, min_norm=0.25)
    # only patches overlapping the bar survive; image 1 is blank and contributes nothing
    assert 0 < info["n_kept"] < 28 * 28 and info["n_kept"] == len(X)
    all_X, _ = sphere.unit_patches(imgs[:1], min_norm=0.25)
    assert len(all_X) == info["n_kept"]
    a, _ = sphere.unit_patches(imgs, min_norm=0.25, n=10, seed=3)
    b, _ = sphere.unit_patches(imgs, min_norm=0.25, n=10, seed=3)
    assert len(a) == 10 and np.array_equal(a, b)
    # the sample is a subset of the kept patches
    assert all((np.abs(all_X - row).max(1) < 1e-12).any() for row in a)


# ---------------------------------------------------------------- spherical k-means
def test_kmeans_recovers_planted_clusters():
    X, labels, centres = planted()
    km = sphere.spherical_kmeans(X, 4, seed=1)
    m = sphere.match(km.centroids, centres)
    assert m.cos.min() > 0.98
    # every cluster is pure: the found labels are a relabelling of the planted ones
    mapping = {int(c): int(r) for r, c in zip(m.rows, m.cols)}
    assert np.array_equal(km.labels, np.array([mapping[l] for l in labels]))
    assert np.array_equal(km.sizes, np.bincount(km.labels, minlength=4))
    assert list(km.sizes) == sorted(km.sizes, reverse=True)


def test_kmeans_fixed_point_and_objective():
    X, _, _ = planted(k=5, d=8, noise=0.5, seed=4)
    km = sphere.spherical_kmeans(X, 5, seed=0, tol=0.0, max_iter=500)
    np.testing.assert_allclose(np.linalg.norm(km.centroids, axis=1), 1, atol=1e-12)
    # at convergence each centroid is the normalised sum of its points ...
    for l in range(5):
        np.testing.assert_allclose(km.centroids[l], sphere.unit_rows(X[km.labels == l].sum(0)),
                                   atol=1e-10)
    # ... each point is assigned to its closest centroid, and the objective is the mean cos
    assert np.array_equal(km.labels, (X @ km.centroids.T).argmax(1))
    assert km.objective == pytest.approx((X * km.centroids[km.labels]).sum(1).mean())


def test_kmeans_is_deterministic_and_beats_random_centroids():
    X, _, _ = planted(k=6, d=12, noise=0.6, seed=2)
    a = sphere.spherical_kmeans(X, 6, seed=7)
    b = sphere.spherical_kmeans(X, 6, seed=7)
    assert np.array_equal(a.centroids, b.centroids) and np.array_equal(a.labels, b.labels)
    rand = sphere.random_unit_vectors(6, 12, seed=0)
    assert a.objective > (X @ rand.T).max(1).mean()


def test_kmeans_rejects_bad_k():
    with pytest.raises(ValueError):
        sphere.spherical_kmeans(np.eye(3), 4)


# ---------------------------------------------------------------- matching
@pytest.mark.parametrize("m,n", [(3, 3), (4, 4), (3, 6), (2, 5)])
@pytest.mark.parametrize("signed", [True, False])
def test_match_equals_brute_force(m, n, signed):
    rng = np.random.default_rng(10 * m + n)
    for _ in range(5):
        a, c = rng.standard_normal((m, 7)), rng.standard_normal((n, 7))
        res = sphere.match(a, c, signed=signed)
        assert res.score.sum() == pytest.approx(sphere.brute_force_match(a, c, signed=signed))
        assert len(set(res.cols)) == m                        # one-to-one
        cos = sphere.unit_rows(a) @ sphere.unit_rows(c).T
        np.testing.assert_allclose(res.cos, cos[res.rows, res.cols])


def test_match_finds_a_hidden_permutation_and_respects_sign():
    c = sphere.random_unit_vectors(6, 25, seed=1)
    perm = np.array([3, 0, 5, 1, 4, 2])
    res = sphere.match(2.5 * c[perm], c)                      # scale does not matter
    assert np.array_equal(res.cols[np.argsort(res.rows)], perm)
    np.testing.assert_allclose(res.cos, 1.0)
    np.testing.assert_allclose(res.angles_deg, 0.0, atol=1e-5)
    # negated anchors: a perfect |cos| match but not a signed one
    neg_abs = sphere.match(-c, c, signed=False)
    neg = sphere.match(-c, c, signed=True)
    assert neg_abs.mean_score == pytest.approx(1.0)
    assert neg.mean_cos < 0.5


def test_random_match_scores_are_chance_level():
    c = sphere.random_unit_vectors(6, 25, seed=2)
    r = sphere.random_match_scores(6, c, draws=100, seed=0)
    assert r.shape == (100,)
    assert np.array_equal(r, sphere.random_match_scores(6, c, draws=100, seed=0))
    # the optimum of 6 assignments is above 0 but far below a real match
    assert 0 < r.mean() < 0.6
    # each draw equals a direct match of the same random anchors
    rng = np.random.default_rng(0)
    first = sphere.match(sphere.center_rows(rng.standard_normal((6, 25))), c).mean_score
    assert r[0] == pytest.approx(first)


# ---------------------------------------------------------------- angles
def test_angles_exact_at_the_ends_and_agree_with_arccos():
    a = np.random.default_rng(0).standard_normal((50, 9))
    assert np.all(sphere.angles(a, a) == 0.0)
    np.testing.assert_allclose(sphere.angles(a, -3 * a), 180.0, atol=1e-12)
    b = np.random.default_rng(1).standard_normal((50, 9))
    ref = torch.rad2deg(recos.geodesic_distance(torch.tensor(a), torch.tensor(b))).numpy()
    np.testing.assert_allclose(sphere.angles(a, b), ref, atol=1e-6)
    np.testing.assert_allclose(sphere.angles([1.0, 0.0], [0.0, 2.0]), 90.0)


def test_pairwise_angles_match_a_loop():
    a = np.random.default_rng(3).standard_normal((7, 5))
    pw = sphere.pairwise_angles(a)
    ref = [sphere.angles(a[i], a[j]) for i, j in itertools.combinations(range(7), 2)]
    assert len(pw) == 21
    np.testing.assert_allclose(pw, ref)


@pytest.mark.parametrize("d", [25, 150, 400])
def test_random_angles_concentrate_as_theory_says(d):
    deg = sphere.random_pairwise_angles(30, d, draws=20, seed=d)   # 8,700 pairs
    cos = np.cos(np.radians(deg))
    # cos of two random directions in R^d: mean 0, variance 1/d
    assert abs(cos.mean()) < 4 / math.sqrt(d * len(cos)) + 0.01
    assert cos.var() == pytest.approx(1 / d, rel=0.1)
    s = sphere.angle_stats(deg)
    assert s["n_pairs"] == len(deg) and s["min"] <= s["q05"] <= s["median"]
    assert s["mean"] == pytest.approx(90, abs=1.0)


def test_random_unit_vectors_are_unit_and_seeded():
    u = sphere.random_unit_vectors(10, 4, seed=5)
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1)
    assert np.array_equal(u, sphere.random_unit_vectors(10, 4, seed=5))
    np.testing.assert_allclose(sphere.center_rows(u).sum(1), 0, atol=1e-12)


# --------------------------------------------------------------------------- |cos| of a set, null model (Ch. 5)
@pytest.mark.parametrize("n,value", [(2, 2 / math.pi), (3, 0.5), (4, 4 / (3 * math.pi))])
def test_expected_abs_cos_exact_values(n, value):
    assert sphere_null.expected_abs_cos(n) == pytest.approx(value, rel=1e-12)


def test_expected_abs_cos_against_simulation_and_asymptote():
    g = torch.Generator().manual_seed(5)
    for n in (10, 100):
        u, v = torch.randn(200000, n, generator=g, dtype=torch.float64).chunk(2)
        cos = (F.normalize(u, dim=1) * F.normalize(v, dim=1)).sum(1).abs()
        assert cos.mean().item() == pytest.approx(sphere_null.expected_abs_cos(n), abs=4e-3)
    assert sphere_null.expected_abs_cos(10000) == pytest.approx(math.sqrt(2 / (math.pi * 10000)),
                                                            rel=1e-3)


def test_null_spread_of_mean_abs_cos_matches_simulation():
    n, k, reps = 30, 12, 1500
    g = torch.Generator().manual_seed(6)
    means = torch.tensor([sphere.mean_abs_cos(torch.randn(k, n, generator=g))
                          for _ in range(reps)])
    e, sd = sphere_null.null_abs_cos(n, k)
    assert means.mean().item() == pytest.approx(e, abs=3 * sd / math.sqrt(reps))
    assert means.std().item() == pytest.approx(sd, rel=0.08)


def test_cosine_statistics_on_known_configurations():
    eye = torch.eye(6)
    assert sphere.mean_abs_cos(eye) == pytest.approx(0.0, abs=1e-15)
    v = torch.randn(1, 9)
    pm = torch.cat([v, 2 * v, -v, -3 * v])          # all on one line through 0
    assert sphere.mean_abs_cos(pm) == pytest.approx(1.0, rel=1e-12)
    assert sphere.mean_nn_cos(pm) == pytest.approx(1.0, rel=1e-12)   # each has a same-sign twin
    assert sphere.mean_nn_cos(pm[[0, 2]]) == pytest.approx(-1.0, rel=1e-12)  # only opposites
    assert sphere.mean_nn_cos(eye) == pytest.approx(0.0, abs=1e-15)
    pairs = sphere.abs_cos_pairs(torch.randn(7, 4))
    assert pairs.shape == (21,) and (pairs >= 0).all() and (pairs <= 1 + 1e-12).all()


def test_random_vectors_of_the_same_shape_are_near_the_exact_value():
    conv = nn.Conv2d(16, 64, 3)
    stats = sphere_null.layer_stats(conv, max_rows=1024, seed=0)
    assert stats["n_anchors"] == 64 and stats["dim"] == 144
    assert stats["apv_n_used"] == 144                        # alpha_n = A^T e_n, N of them
    e, sd = sphere_null.null_abs_cos(144, 64)
    assert stats["mean_abs_cos_random"] == pytest.approx(e, abs=4 * sd)
    assert stats["expected_abs_cos_random"] == pytest.approx(e)
    # PyTorch's default init draws i.i.d. uniform weights: isotropic enough to be at chance
    assert abs(stats["abs_cos_z"]) < 4
    # subsampling caps the rows and is seeded
    lin = nn.Linear(300, 500)
    s1, s2 = sphere_null.layer_stats(lin, 100, 1), sphere_null.layer_stats(lin, 100, 1)
    assert s1 == s2 and s1["n_used"] == 100 and s1["n_anchors"] == 500


def test_structured_anchors_are_far_above_chance():
    torch.manual_seed(7)
    base = torch.randn(3, 50)
    anchors = base[torch.randint(0, 3, (40,))] + 0.1 * torch.randn(40, 50)
    conv = nn.Linear(50, 40)
    with torch.no_grad():
        conv.weight.copy_(anchors)
    s = sphere_null.layer_stats(conv)
    assert s["abs_cos_z"] > 20 and s["mean_nn_cos"] > 0.9 > s["mean_nn_cos_random"]


def test_tsne_map_is_seeded_and_separates_a_cluster_from_random_directions():
    torch.manual_seed(8)
    v = torch.randn(1, 30) + 0.05 * torch.randn(30, 30)
    a1, r1 = sphere_null.tsne_with_random(v, max_points=30, seed=0, max_iter=250)
    a2, r2 = sphere_null.tsne_with_random(v, max_points=30, seed=0, max_iter=250)
    assert a1.shape == (30, 2) and r1.shape == (30, 2)
    np.testing.assert_array_equal(a1, a2)
    # the tight cluster occupies a much smaller part of the map than the random directions
    assert a1.std(0).sum() < r1.std(0).sum()
