"""The one rule for comparing two arms, and the verdicts it gives (issue 24; the guide's
"a comparison holds only beyond the noise"). Every expected value is computed by hand."""
import pytest

from recos_utils.core import claims
from recos_utils.core.claims import GREATER, LESS, LEVEL, compare_arms, judge


def s(mean, std, n):
    return {"mean": mean, "std": std, "n": n}


def test_compare_arms_by_hand():
    # se = sqrt(1/4 + 1/4) = 0.7071; beyond the noise means a difference above 2 se = 1.414
    assert compare_arms(s(10, 1, 4), s(8.5, 1, 4)) == GREATER          # 1.5 > 1.414
    assert compare_arms(s(10, 1, 4), s(8.7, 1, 4)) == LEVEL            # 1.3 < 1.414
    assert compare_arms(s(8.5, 1, 4), s(10, 1, 4)) == LESS
    assert compare_arms(s(1.0, 0, 1), s(0.999, 0, 1)) == GREATER       # one seed: any difference


def _kmeans(k, r):
    return {"kmeans_steps": None, "random_steps": None, "kmeans_steps_per_seed": k,
            "random_steps_per_seed": r, "target": 0.97, "n": len(k)}


def test_kmeans_faster_is_judged_beyond_the_noise():
    # means 320 vs 360, std 40 each over 3 seeds: se = sqrt(2 * 1600 / 3) = 32.7, 2 se = 65 > 40
    v = judge("kmeans_faster", {**_kmeans([320, 360, 280], [360, 400, 320]),
                                "kmeans_steps": 320, "random_steps": 360})
    assert v["verdict"] == "not distinguishable" and v["holds"] is None
    v = judge("kmeans_faster", {**_kmeans([300, 310, 290], [400, 410, 390]),
                                "kmeans_steps": 300, "random_steps": 400})
    assert v["verdict"] == "holds"                                     # 100 > 2 * 8.2
    v = judge("kmeans_faster", {**_kmeans([400, 410, 390], [300, 310, 290]),
                                "kmeans_steps": 400, "random_steps": 300})
    assert v["verdict"] == "does not hold"
    v = judge("kmeans_faster", {**_kmeans([300, 300, 300], [300, None, 300]),
                                "kmeans_steps": 300, "random_steps": None})
    assert v["verdict"] == "holds"                 # random did not bring every seed there
    v = judge("kmeans_faster", {**_kmeans([None] * 3, [None] * 3)})
    assert v["verdict"] == "not tested"


@pytest.mark.parametrize("relu, linear, verdict", [
    ((0.99, 0.001), (0.91, 0.001), "holds"),
    ((0.90, 0.001), (0.91, 0.001), "does not hold"),
    ((0.911, 0.01), (0.91, 0.01), "not distinguishable"),
])
def test_nonlinearity_is_a_comparison_with_three_outcomes(relu, linear, verdict):
    n = {"relu_acc": relu[0], "relu_std": relu[1], "linear_acc": linear[0],
         "linear_std": linear[1], "n": 3}
    assert judge("nonlinearity_essential", n)["verdict"] == verdict


def test_every_comparison_claim_says_how_it_reads_within_the_noise():
    for cid in ("nonlinearity_essential", "kmeans_faster", "two_beats_one", "bn_sphere"):
        assert "not distinguishable" in claims.CLAIMS[cid].rule, cid


def test_every_claim_has_one_of_the_four_source_kinds():
    kinds = {c.source for c in claims.CLAIMS.values()}
    assert kinds <= set(claims.SOURCE_KINDS) and claims.QUOTED in kinds
    trelu = claims.CLAIMS["trelu_peak"]
    assert trelu.source == claims.RESTATED and "could not be found" in trelu.note
    with pytest.raises(ValueError, match="source"):
        claims.Claim("x", "02", "t", "a blog", "kuo2016understanding", "r", lambda n: None,
                     lambda n: "", lambda r: {})
