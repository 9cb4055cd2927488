"""The claims the book tests, each judged once (every chapter, and the front page).

One registry, :data:`CLAIMS`, holds every claim of the paper and of its follow-ups that a
chapter tests: its id, its wording, its source (a key of ``references.bib``), the paper's
number where one is known, and its **one rule**, as code (``test``) and as the words the
reader sees (``rule``). A chapter judges a claim only through :func:`judge`, glues the
verdict it returns and writes it into its results file under ``claims``; the front page
(``pages``) renders those objects verbatim and has no rule of its own.

A verdict is one of a claim's words (``holds`` / ``does not hold`` / ``not tested``, or
``reproduced`` / ``not reproduced`` for a paper number), then, where it applies,
``not comparable`` (a paper number for MNIST, a run on another dataset) and the mark
``(quick run)``.

The thresholds that decide verdicts are named here and shown in every rule's wording.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

from recos_utils.core import claim_inputs as x

#: The paper's two known numbers (Chapter 2, Sec. 2.4): LeNet-5 on MNIST and on its reversal.
PAPER_ACC = 0.9894
PAPER_ACC_REVERSED = 0.30
#: 98.94%: reproduced within max(CLOSE_PP, 2 std over seeds) percentage points.
CLOSE_PP = 0.3
#: "about 30%": reproduced within ABOUT_PP points.
ABOUT_PP = 10.0
#: Paired anchors "serve both": both test sets within SERVE_PP points of the baseline.
SERVE_PP = 2.0
#: "almost the same" (Chapter 4): within ALMOST_PP points of the clean network on clean digits.
ALMOST_PP = 1.0
#: TReLU "best near z = 0.5": the best threshold lies in this interval.
TRELU_NEAR = (0.4, 0.6)
#: A network counts as trained when its final training accuracy is above this.
TRAINED_ACC = 0.5
#: "clearly" greater: by more than K_SE standard errors of the difference of two means.
K_SE = 2.0
#: "exactly", for a transform computed in float64: the largest deviation allowed.
EXACT_TOL = 1e-9

#: Where a claim comes from: one of four kinds, shown on the front page for every claim.
#: "quoted": seen in the paper; "restated, unconfirmed": known from the author's later
#: restatement or a secondary summary, not read in the paper itself; "follow-up paper": a
#: later paper of the author's (its abstract seen); "the book's own": the book's hypothesis
#: or measure (a third party's observation the book tests is the book's own test).
QUOTED = "paper (quoted)"
RESTATED = "paper (restated, unconfirmed)"
FOLLOW_UP = "follow-up paper"
OWN = "the book's own"
SOURCE_KINDS = (QUOTED, RESTATED, FOLLOW_UP, OWN)
HOLDS, FAILS, UNTESTED = "holds", "does not hold", "not tested"
REPRODUCED, NOT_REPRODUCED = "reproduced", "not reproduced"
QUICK_MARK = " (quick run)"


#: The verdict words of a comparison between two arms (k-means vs random start, layer vs
#: layer, one vs two layers, ...): the book's one vocabulary for "is A above B?".
GREATER, LESS, LEVEL = "clearly greater", "clearly less", "not distinguishable"


def compare_arms(a: dict, b: dict, k: float = K_SE) -> str:
    """The one rule for two arms given as ``{"mean", "std", "n"}`` statistics over seeds
    (:func:`recos_utils.core.results.mean_std`): ``GREATER`` when ``a`` beats ``b`` by
    more than ``k`` standard errors of the difference (:func:`clearly_greater`), ``LESS``
    the other way round, else ``LEVEL`` ("not distinguishable", never "holds")."""
    if clearly_greater(a["mean"], a["std"], a["n"], b["mean"], b["std"], b["n"], k):
        return GREATER
    if clearly_greater(b["mean"], b["std"], b["n"], a["mean"], a["std"], a["n"], k):
        return LESS
    return LEVEL


def trained(summary: dict) -> bool:
    """The book's one test of whether a network trained: its final training accuracy
    (``train_acc_final``, the mean over seeds) is above ``TRAINED_ACC``."""
    return summary["train_acc_final"] > TRAINED_ACC


def clearly_greater(a: float, sa: float, na: int, b: float, sb: float, nb: int,
                    k: float = K_SE) -> bool:
    """``a`` beats ``b`` by more than ``k`` standard errors of the difference of the two
    means (seed-to-seed spreads ``sa``, ``sb`` over ``na``, ``nb`` seeds); with one seed
    each, any positive difference counts."""
    se = math.sqrt(sa ** 2 / max(na, 1) + sb ** 2 / max(nb, 1))
    return a - b > k * se


@dataclass(frozen=True)
class Claim:
    """One claim: what is claimed, by whom, and the single rule that judges it.

    ``test(numbers)`` returns True (holds / reproduced), False, or None (not tested);
    ``show(numbers)`` is the short statement of the book's numbers for the front page.
    """
    id: str
    chapter: str
    text: str
    source: str
    cite: str
    rule: str
    test: Callable[[dict], bool | None]
    show: Callable[[dict], str]
    extract: Callable[[dict], dict]   # the chapter's results file -> the numbers ``test`` uses
    paper: str | None = None          # the paper's number as printed; None: no number
    mnist_number: bool = False        # the paper's number is for MNIST only
    note: str = ""                    # where the claim was read, when the kind needs a word

    def __post_init__(self):
        if self.source not in SOURCE_KINDS:
            raise ValueError(f"claim {self.id}: source {self.source!r} is not one of "
                             f"{SOURCE_KINDS}")

    def words(self) -> tuple[str, str]:
        return (REPRODUCED, NOT_REPRODUCED) if self.paper else (HOLDS, FAILS)


_EPS = 1e-9   # closed intervals: a number on the boundary is within it, whatever the rounding


def _baseline(n):
    return abs(n["acc"] - PAPER_ACC) <= max(CLOSE_PP / 100, 2 * n["acc_std"]) + _EPS


def _reversed(n):
    return abs(n["acc_reversed"] - PAPER_ACC_REVERSED) <= ABOUT_PP / 100 + _EPS


def _negated(n):
    return n["swap_gap_images"] <= 1 and n["neg_acc_reversed"] > n["neg_acc_original"]


def _serves(n):
    return min(n["acc_original"], n["acc_reversed"]) >= n["baseline_acc"] - SERVE_PP / 100 - _EPS


#: How every comparison claim reads when its arms are within the noise of each other.
_NOISE = (f"does not hold if one comparison goes clearly the other way, else (within the "
          f"noise) not distinguishable")


def _arms(words: list[str], want: str = GREATER):
    """A comparison claim's outcome from its comparisons' words (:func:`compare_arms`):
    True when every one says ``want``, False when one says the opposite, else ``LEVEL``
    (within the noise: the claim reads "not distinguishable", never "holds")."""
    if all(w == want for w in words):
        return True
    return False if any(w not in (want, LEVEL) for w in words) else LEVEL


def _stat(mean, std, n):
    return {"mean": mean, "std": std, "n": n}


def _nonlinear(n):
    return _arms([compare_arms(_stat(n["relu_acc"], n["relu_std"], n["n"]),
                               _stat(n["linear_acc"], n["linear_std"], n["n"]))])


def _trelu(n):
    trained = [(z, a) for z, a, t in zip(n["z"], n["acc"], n["train_acc"]) if t > TRAINED_ACC]
    if not any(z > 0 for z, _ in trained):
        return None
    best = max(trained, key=lambda t: t[1])[0]
    return TRELU_NEAR[0] - 1e-9 <= best <= TRELU_NEAR[1] + 1e-9


def _trelu_show(n):
    trained = [(z, a) for z, a, t in zip(n["z"], n["acc"], n["train_acc"]) if t > TRAINED_ACC]
    dead = [z for z, t in zip(n["z"], n["train_acc"]) if t <= TRAINED_ACC]
    z, a = max(trained, key=lambda t: t[1]) if trained else (None, None)
    out = f"best z = {z:g}: {x.pct(a)}" if trained else "no threshold trained"
    if dead:
        out += f"; z = {min(dead):g} to {max(dead):g} did not train"
    return out + x.seeds(n)


def _faster(n):
    k, r = n["kmeans_steps_per_seed"], n["random_steps_per_seed"]
    k_all, r_all = None not in k, None not in r
    if not k_all and not r_all:
        return None
    if k_all != r_all:                    # one start brought every seed there, the other not
        return k_all
    from recos_utils.core.results import mean_std

    return _arms([compare_arms(mean_std(r), mean_std(k))])     # random needs more steps


def _two_beats_one(n):
    return _arms([compare_arms(_stat(n[f"two_{w}"], n[f"two_{w}_std"], n["n"]),
                               _stat(n[f"one_{w}"], n[f"one_{w}_std"], n["n"]))
                  for w in ("seen", "unseen")])


def _almost(n):
    return n["background_acc"] >= n["clean_acc"] - ALMOST_PP / 100 - _EPS


def _clusters(n):
    r = n["ratios"]
    return len(r) >= 2 and r[-1] > r[0] and r[-1] > 1.0



def _bn_spreads(n):
    return _arms([compare_arms(n["bn"][layer][m], n["plain"][layer][m])
                  for layer in n["layers"] for m in ("norm_cv", "resultant")], want=LESS)


_SERVES_RULE = (f"holds if accuracy on both the original and the reversed test set is within "
                f"{SERVE_PP:g} pp of the ReLU baseline on original digits")

CLAIMS: dict[str, Claim] = {c.id: c for c in [
    Claim("negative_far", "02",
          "A grey image and its negative are far apart on the sphere after mean removal: "
          "\"their distance should be large\"", QUOTED, "kuo2016understanding",
          "holds if the mean-removed correlation of the photograph and its negative is below 0 "
          "(an angle beyond 90 degrees)", lambda n: n["corr"] < 0,
          lambda n: f"correlation {n['corr']:+.3f}", lambda r: {
              "corr": r["photo"]["mean_removed_correlation"]}),
    Claim("lenet5_accuracy", "02",
          "LeNet-5 with ReLU, trained on MNIST: accuracy on the MNIST test set",
          RESTATED, "kuo2016understanding",
          f"reproduced if the book's mean is within max({CLOSE_PP:g} pp, 2 std over seeds) "
          f"of {100 * PAPER_ACC:.2f}%", _baseline,
          lambda n: x.ms(n, "acc") + x.seeds(n), x.baseline,
          paper=f"{100 * PAPER_ACC:.2f}%", mnist_number=True),
    Claim("lenet5_reversed", "02",
          "The same network on the grey-scale-reversed test set (255 − x)",
          RESTATED, "kuo2016understanding",
          f"reproduced if the book's mean lies within {100 * PAPER_ACC_REVERSED:.0f} ± "
          f"{ABOUT_PP:g} pp", _reversed, lambda n: x.ms(n, "acc_reversed") + x.seeds(n),
          x.baseline, paper=f"about {100 * PAPER_ACC_REVERSED:.0f}%", mnist_number=True),
    Claim("negated_anchors", "02",
          "Negated first-layer anchors: the reversed set is recovered, the original one lost",
          RESTATED, "kuo2016understanding",
          "holds if, for every seed, the negated network's accuracy on each test set equals the "
          "baseline's on the other to within one test image, and it is higher on the reversed "
          "set than on the original", _negated,
          lambda n: f"reversed {x.pct(n['neg_acc_reversed'])}, original "
                    f"{x.pct(n['neg_acc_original'])}; largest gap to the swapped baseline: "
                    f"{n['swap_gap_images']:g} test image(s)", x.negated),
    Claim("paired_original", "02",
          "Each first-layer anchor kept with its negative, then ReLU, serves both polarities "
          "(rest retrained on original digits)", RESTATED, "kuo2016understanding",
          _SERVES_RULE, _serves, x.serves_show, x.paired("original_only")),
    Claim("paired_both", "02",
          "Each first-layer anchor kept with its negative, then ReLU, serves both polarities "
          "(rest retrained on original and reversed digits)", RESTATED, "kuo2016understanding",
          _SERVES_RULE, _serves, x.serves_show, x.paired("both")),
    Claim("nonlinearity_essential", "02",
          "A nonlinear activation is essential (LeNet-5 with average pooling: ReLU against no "
          "activation, which makes the network linear)", RESTATED, "kuo2016understanding",
          f"holds if the ReLU network's mean accuracy beats the linear network's by more than "
          f"{K_SE:g} standard errors of the difference; {_NOISE}", _nonlinear,
          lambda n: f"ReLU {x.pct(n['relu_acc'])}, linear {x.pct(n['linear_acc'])}" + x.seeds(n),
          x.nonlinear),
    Claim("trelu_peak", "02",
          "Hypothesis tested by the book: with a threshold ReLU on the cosine (the book's form "
          "of TReLU), LeNet-5's accuracy is best near z = 0.5", RESTATED, "kuo2017guided",
          f"among the thresholds that trained (final training accuracy above "
          f"{100 * TRAINED_ACC:.0f}%), holds if the one with the best mean test accuracy lies "
          f"in [{TRELU_NEAR[0]:g}, {TRELU_NEAR[1]:g}]; not tested if no z > 0 trained",
          _trelu, _trelu_show, x.trelu),
    Claim("kmeans_faster", "03",
          "First-layer anchors initialised by k-means make training converge faster",
          RESTATED, "kuo2017guided",
          f"holds if the random start needs more steps than the k-means start to reach the "
          f"target test accuracy, by more than {K_SE:g} standard errors of the difference over "
          f"seeds; a start that not every seed brings to the target counts as slower; "
          f"{_NOISE}", _faster,
          lambda n: f"steps to {100 * n['target']:g}%: k-means {x.steps(n['kmeans_steps'])}, "
                    f"random {x.steps(n['random_steps'])}" + x.seeds(n), x.kmeans),
    Claim("almost_same", "04",
          "Retrained on digits on natural backgrounds, LeNet-5 is almost as accurate as on "
          "clean MNIST", RESTATED, "kuo2016understanding",
          f"holds if the background-trained network's mean accuracy on background digits "
          f"(seen photographs) is at most {ALMOST_PP:g} pp below the clean-trained network's "
          f"on clean digits", _almost,
          lambda n: f"background {x.pct(n['background_acc'])}, clean {x.pct(n['clean_acc'])}"
                    + x.seeds(n), x.almost),
    Claim("two_beats_one", "04",
          "Two layers beat one on digits on backgrounds (trained and tested on them)",
          RESTATED, "kuo2016understanding",
          f"holds if the two-layer mean beats the one-layer mean by more than {K_SE:g} "
          f"standard errors of the difference, on backgrounds from both the seen and the "
          f"unseen photographs; {_NOISE}", _two_beats_one,
          lambda n: f"seen: two layers {x.pct(n['two_seen'])}, one {x.pct(n['one_seen'])}; unseen: "
                    f"{x.pct(n['two_unseen'])} vs {x.pct(n['one_unseen'])}" + x.seeds(n),
          x.two_one),
    Claim("saak_invertible", "06",
          "Saak: the transform is invertible, nothing is lost to the rectifier",
          FOLLOW_UP, "kuo2018saak", f"holds if the test images rebuilt from their Saak coefficients "
          f"differ from them by at most {EXACT_TOL:g} (largest absolute error, float64)",
          lambda n: n["err"] <= EXACT_TOL, lambda n: f"largest error {n['err']:.1e}", x.saak),
    Claim("saak_pairs", "06",
          "Saak: augmenting each kernel with its negative resolves sign confusion",
          FOLLOW_UP, "kuo2018saak", f"holds if grey-scale reversal swaps, at the first stage, every "
          f"kernel's rectified response with its negative's to within {EXACT_TOL:g} on the test "
          f"images: the pair keeps the sign that one rectified kernel loses",
          lambda n: n["swap"] <= EXACT_TOL, lambda n: f"largest deviation {n['swap']:.1e}",
          x.saak),
    Claim("saab_bias", "06", "Saab: the bias makes every response non-negative, so the ReLU "
          "changes nothing", FOLLOW_UP, "kuo2019interpretable", "holds if the smallest response of "
          "both Saab conv layers over every window of the training images is at least 0",
          lambda n: n["min"] >= 0, lambda n: ", ".join(f"{k} min {v:.3g}" for k, v in
                                                       n["min_by_layer"].items()), x.saab),
    Claim("deeper_clusters", "05",
          "AlexNet's anchor vectors cluster more tightly in deeper layers",
          OWN, "krizhevsky2012imagenet",
          "the book's measure: mean |cos| between a layer's anchors divided by that of random "
          "Gaussian vectors of the same dimension; holds if it rises from the first to the "
          "last convolutional layer and ends above 1", _clusters,
          lambda n: ", ".join(f"{k} {v:.2f}" for k, v in zip(n["layers"], n["ratios"]))
                    + f" (weights: {n['weights']})", x.clusters),
    Claim("bn_sphere", "01",
          "Batch normalisation gives a layer's inputs about equal lengths and spreads them "
          "over the sphere", RESTATED, "kuo2016understanding",
          f"holds if, for the inputs of every layer after conv1 (conv2, fc1, fc2), both the "
          f"coefficient of variation of their lengths and the mean resultant length of their "
          f"directions are clearly less (by more than {K_SE:g} standard errors of the "
          f"difference over seeds) with batch normalisation than without; {_NOISE}",
          _bn_spreads, x.bn_spreads_show, x.bn_spreads),
]}


_NOTES = {
    "negative_far": "the paper's Fig. 4 (a white and a black cat) and its sentence, seen",
    "trelu_peak": "attributed to Kuo's 2017 note (arXiv:1701.08481) by a secondary summary; "
                  "the claim could not be found in the note's published text, and the form "
                  "of TReLU on the cosine is the book's own reading",
    "kmeans_faster": "from a secondary summary of the author's 2017 note; not confirmed",
    "deeper_clusters": "an observation of a public re-implementation (a third party), tested "
                       "with the book's own measure",
    "bn_sphere": "attributed to the paper's Fig. 2 by a public re-implementation "
                 "(XinDongol/RECOS); not confirmed",
}
_RESTATED_NOTE = ("known from the author's 2017 restatement or a secondary summary; the "
                  "paper's full text was not available to the book")
CLAIMS = {k: dataclasses.replace(c, note=_NOTES.get(k, _RESTATED_NOTE if c.source == RESTATED
                                                    else "")) for k, c in CLAIMS.items()}


def judge(claim_id: str, numbers: dict, *, quick: bool = False, dataset: str = "mnist") -> dict:
    """Judge one claim on the chapter's ``numbers``: the object the chapter glues and writes
    under ``claims[claim_id]``: ``{"verdict", "rule", "book", "numbers", "holds"}``."""
    c = CLAIMS[claim_id]
    yes, no = c.words()
    if c.mnist_number and dataset != "mnist":
        holds, verdict = None, f"not comparable: the paper's number is for MNIST, this run is {dataset}"
    else:
        holds = c.test(numbers)
        if holds == LEVEL:                # a comparison within the noise
            holds, verdict = None, LEVEL
        else:
            verdict = UNTESTED if holds is None else yes if holds else no
    return {"verdict": verdict + (QUICK_MARK if quick else ""), "rule": c.rule,
            "book": c.show(numbers), "numbers": numbers, "holds": holds}


def chapter_claims(chapter: str) -> list[Claim]:
    """The registry's claims of one chapter (``"02"``), in registry order."""
    return [c for c in CLAIMS.values() if c.chapter == chapter]


def judge_chapter(chapter: str, results: dict) -> dict:
    """Every claim of ``chapter`` judged on its results (as written to its results file):
    ``{claim id: judge(...)}``, to be stored as ``results["claims"]`` and glued as
    ``claim_<id>``. Quick mode and the dataset are read from ``results``."""
    quick, dataset = bool(results.get("quick")), results.get("dataset", "mnist")
    return {c.id: judge(c.id, c.extract(results), quick=quick, dataset=dataset)
            for c in chapter_claims(chapter)}


def record(chapter: str, results: dict) -> dict:
    """Judge ``chapter``'s claims on ``results``, store them as ``results["claims"]`` and
    glue each verdict as ``claim_<id>`` and its rule as ``rule_<id>`` for the prose (the
    chapter's last cell, before its results file is written). Returns the claims."""
    from myst_nb import glue

    results["claims"] = judge_chapter(chapter, results)
    for cid, c in results["claims"].items():
        glue(f"claim_{cid}", c["verdict"], display=False)
        glue(f"rule_{cid}", c["rule"], display=False)
        glue(f"book_{cid}", c["book"], display=False)
    return results["claims"]
