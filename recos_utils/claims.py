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

import math
from dataclasses import dataclass
from typing import Callable

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

PAPER, NOTE_2017, THIRD_PARTY = "paper", "2017 follow-up", "third party"
LATER = "the author's later paper"
HOLDS, FAILS, UNTESTED = "holds", "does not hold", "not tested"
REPRODUCED, NOT_REPRODUCED = "reproduced", "not reproduced"
QUICK_MARK = " (quick run)"


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

    def words(self) -> tuple[str, str]:
        return (REPRODUCED, NOT_REPRODUCED) if self.paper else (HOLDS, FAILS)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _ms(n: dict, key: str) -> str:
    s = n.get(key + "_std")
    return _pct(n[key]) + (f" ± {_pct(s)}" if s is not None and n.get("n", 1) > 1 else "")


def _seeds(n: dict) -> str:
    k = n.get("n", 1)
    return f" ({k} seed{'s' if k != 1 else ''})"


_EPS = 1e-9   # closed intervals: a number on the boundary is within it, whatever the rounding


def _baseline(n):
    return abs(n["acc"] - PAPER_ACC) <= max(CLOSE_PP / 100, 2 * n["acc_std"]) + _EPS


def _reversed(n):
    return abs(n["acc_reversed"] - PAPER_ACC_REVERSED) <= ABOUT_PP / 100 + _EPS


def _negated(n):
    return n["swap_gap_images"] <= 1 and n["neg_acc_reversed"] > n["neg_acc_original"]


def _serves(n):
    return min(n["acc_original"], n["acc_reversed"]) >= n["baseline_acc"] - SERVE_PP / 100 - _EPS


def _nonlinear(n):
    return clearly_greater(n["relu_acc"], n["relu_std"], n["n"], n["linear_acc"],
                           n["linear_std"], n["n"])


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
    out = f"best z = {z:g}: {_pct(a)}" if trained else "no threshold trained"
    if dead:
        out += f"; z = {min(dead):g} to {max(dead):g} did not train"
    return out + _seeds(n)


def _faster(n):
    k, r = n["kmeans_steps"], n["random_steps"]
    if k is None and r is None:
        return None
    return k is not None and (r is None or k < r)


def _steps(s):
    return "not reached by every seed" if s is None else f"{s:,.0f} steps"


def _two_beats_one(n):
    return all(clearly_greater(n[f"two_{w}"], n[f"two_{w}_std"], n["n"], n[f"one_{w}"],
                               n[f"one_{w}_std"], n["n"]) for w in ("seen", "unseen"))


def _almost(n):
    return n["background_acc"] >= n["clean_acc"] - ALMOST_PP / 100 - _EPS


def _clusters(n):
    r = n["ratios"]
    return len(r) >= 2 and r[-1] > r[0] and r[-1] > 1.0


# ------------------------------------------------------------- the numbers, from results
# Each reads the results file its chapter writes (the layouts are documented in
# ``results.LAYOUTS``) and returns the plain numbers its rule uses.

def _x_baseline(r):
    b = r["baseline"]
    return {"acc": b["acc_original"], "acc_std": b["std_original"],
            "acc_reversed": b["acc_reversed"], "acc_reversed_std": b["std_reversed"], "n": b["n"]}


def _x_negated(r):
    n_test = r["protocol"]["n_test"]
    return {"neg_acc_original": r["negated"]["acc_original"],
            "neg_acc_reversed": r["negated"]["acc_reversed"],
            "swap_gap_images": round(r["negated"]["max_abs_diff_from_swapped_baseline"] * n_test)}


def _x_paired(key):
    def get(r):
        p = r["paired"][key]
        return {"acc_original": p["acc_original"], "acc_reversed": p["acc_reversed"],
                "baseline_acc": r["baseline"]["acc_original"]}
    return get


def _x_nonlinear(r):
    t = r["ablation_avgpool"]
    return {"relu_acc": t["relu"]["acc_original"], "relu_std": t["relu"]["std_original"],
            "linear_acc": t["identity"]["acc_original"],
            "linear_std": t["identity"]["std_original"], "n": r["baseline"]["n"]}


def _x_trelu(r):
    t, zs = r["ablation"], [0.0] + list(r["protocol"]["trelu_z"])
    rows = [t["relu"]] + [t[f"trelu_{z:.1f}"] for z in zs[1:]]
    return {"z": zs, "acc": [v["acc_original"] for v in rows],
            "train_acc": [v["train_acc_final"] for v in rows], "n": r["baseline"]["n"]}


def _x_kmeans(r):
    i = r["init"]
    return {"kmeans_steps": i["kmeans"]["steps_to_target"], "random_steps": i["random"]["steps_to_target"],
            "target": i["target_acc"], "n": i["kmeans"]["n_seeds"]}


def _x_almost(r):
    return {"background_acc": r["two_layer"]["background"]["background"]["mean"],
            "clean_acc": r["two_layer"]["clean"]["clean"]["mean"], "n": r["protocol"]["n_seeds"]}


def _x_two_one(r):
    out = {"n": r["protocol"]["n_seeds"]}
    for net, tag in (("two_layer", "two"), ("one_layer", "one")):
        for test, w in (("background", "seen"), ("background_unseen", "unseen")):
            v = r[net]["background"][test]
            out[f"{tag}_{w}"], out[f"{tag}_{w}_std"] = v["mean"], v["std"]
    return out


def _x_saak(r):
    return {"err": r["saak"]["reconstruction_max_abs_err"], "swap": r["saak"]["swap_max_abs_err"]}


def _x_saab(r):
    m = r["saab"]["min_response"]
    return {"min": min(m.values()), "min_by_layer": m}


def _x_clusters(r):
    conv = [k for k in r["layers"] if k.startswith("conv")]
    return {"layers": conv, "weights": r["weights"],
            "ratios": [r["layers"][k]["mean_abs_cos"] / r["layers"][k]["mean_abs_cos_random"]
                       for k in conv]}


def _serves_show(n):
    return (f"original {_pct(n['acc_original'])}, reversed {_pct(n['acc_reversed'])} "
            f"(baseline {_pct(n['baseline_acc'])})")


_SERVES_RULE = (f"holds if accuracy on both the original and the reversed test set is within "
                f"{SERVE_PP:g} pp of the ReLU baseline on original digits")

CLAIMS: dict[str, Claim] = {c.id: c for c in [
    Claim("lenet5_accuracy", "02",
          "LeNet-5 with ReLU, trained on MNIST: accuracy on the MNIST test set",
          PAPER, "kuo2016understanding",
          f"reproduced if the book's mean is within max({CLOSE_PP:g} pp, 2 std over seeds) "
          f"of {100 * PAPER_ACC:.2f}%", _baseline,
          lambda n: _ms(n, "acc") + _seeds(n), _x_baseline,
          paper=f"{100 * PAPER_ACC:.2f}%", mnist_number=True),
    Claim("lenet5_reversed", "02",
          "The same network on the grey-scale-reversed test set (255 − x)",
          PAPER, "kuo2016understanding",
          f"reproduced if the book's mean lies within {100 * PAPER_ACC_REVERSED:.0f} ± "
          f"{ABOUT_PP:g} pp", _reversed, lambda n: _ms(n, "acc_reversed") + _seeds(n),
          _x_baseline, paper=f"about {100 * PAPER_ACC_REVERSED:.0f}%", mnist_number=True),
    Claim("negated_anchors", "02",
          "Negated first-layer anchors: the reversed set is recovered, the original one lost",
          PAPER, "kuo2016understanding",
          "holds if, for every seed, the negated network's accuracy on each test set equals the "
          "baseline's on the other to within one test image, and it is higher on the reversed "
          "set than on the original", _negated,
          lambda n: f"reversed {_pct(n['neg_acc_reversed'])}, original "
                    f"{_pct(n['neg_acc_original'])}; largest gap to the swapped baseline: "
                    f"{n['swap_gap_images']:g} test image(s)", _x_negated),
    Claim("paired_original", "02",
          "Each first-layer anchor kept with its negative, then ReLU, serves both polarities "
          "(rest retrained on original digits)", PAPER, "kuo2016understanding",
          _SERVES_RULE, _serves, _serves_show, _x_paired("original_only")),
    Claim("paired_both", "02",
          "Each first-layer anchor kept with its negative, then ReLU, serves both polarities "
          "(rest retrained on original and reversed digits)", PAPER, "kuo2016understanding",
          _SERVES_RULE, _serves, _serves_show, _x_paired("both")),
    Claim("nonlinearity_essential", "02",
          "A nonlinear activation is essential (LeNet-5 with average pooling: ReLU against no "
          "activation, which makes the network linear)", PAPER, "kuo2016understanding",
          f"holds if the ReLU network's mean accuracy beats the linear network's by more than "
          f"{K_SE:g} standard errors of the difference", _nonlinear,
          lambda n: f"ReLU {_pct(n['relu_acc'])}, linear {_pct(n['linear_acc'])}" + _seeds(n),
          _x_nonlinear),
    Claim("trelu_peak", "02",
          "Threshold ReLU on LeNet-5: accuracy is best near z = 0.5", NOTE_2017, "kuo2017guided",
          f"among the thresholds that trained (final training accuracy above "
          f"{100 * TRAINED_ACC:.0f}%), holds if the one with the best mean test accuracy lies "
          f"in [{TRELU_NEAR[0]:g}, {TRELU_NEAR[1]:g}]; not tested if no z > 0 trained",
          _trelu, _trelu_show, _x_trelu),
    Claim("kmeans_faster", "03",
          "First-layer anchors initialised by k-means make training converge faster",
          NOTE_2017, "kuo2017guided",
          "holds if the k-means start reaches the target test accuracy in fewer steps (mean "
          "over seeds) than the random one; a start that not every seed brings to the target "
          "counts as slower", _faster,
          lambda n: f"steps to {100 * n['target']:g}%: k-means {_steps(n['kmeans_steps'])}, "
                    f"random {_steps(n['random_steps'])}" + _seeds(n), _x_kmeans),
    Claim("almost_same", "04",
          "Retrained on digits on natural backgrounds, LeNet-5 is almost as accurate as on "
          "clean MNIST", PAPER, "kuo2016understanding",
          f"holds if the background-trained network's mean accuracy on background digits "
          f"(seen photographs) is at most {ALMOST_PP:g} pp below the clean-trained network's "
          f"on clean digits", _almost,
          lambda n: f"background {_pct(n['background_acc'])}, clean {_pct(n['clean_acc'])}"
                    + _seeds(n), _x_almost),
    Claim("two_beats_one", "04",
          "Two layers beat one on digits on backgrounds (trained and tested on them)",
          PAPER, "kuo2016understanding",
          f"holds if the two-layer mean beats the one-layer mean by more than {K_SE:g} "
          f"standard errors of the difference, on backgrounds from both the seen and the "
          f"unseen photographs", _two_beats_one,
          lambda n: f"seen: two layers {_pct(n['two_seen'])}, one {_pct(n['one_seen'])}; unseen: "
                    f"{_pct(n['two_unseen'])} vs {_pct(n['one_unseen'])}" + _seeds(n),
          _x_two_one),
    Claim("saak_invertible", "06",
          "Saak: the transform is invertible, nothing is lost to the rectifier",
          LATER, "kuo2018saak", f"holds if the test images rebuilt from their Saak coefficients "
          f"differ from them by at most {EXACT_TOL:g} (largest absolute error, float64)",
          lambda n: n["err"] <= EXACT_TOL, lambda n: f"largest error {n['err']:.1e}", _x_saak),
    Claim("saak_pairs", "06",
          "Saak: augmenting each kernel with its negative resolves sign confusion",
          LATER, "kuo2018saak", f"holds if grey-scale reversal swaps, at the first stage, every "
          f"kernel's rectified response with its negative's to within {EXACT_TOL:g} on the test "
          f"images: the pair keeps the sign that one rectified kernel loses",
          lambda n: n["swap"] <= EXACT_TOL, lambda n: f"largest deviation {n['swap']:.1e}",
          _x_saak),
    Claim("saab_bias", "06", "Saab: the bias makes every response non-negative, so the ReLU "
          "changes nothing", LATER, "kuo2019interpretable", "holds if the smallest response of "
          "both Saab conv layers over every window of the training images is at least 0",
          lambda n: n["min"] >= 0, lambda n: ", ".join(f"{k} min {v:.3g}" for k, v in
                                                       n["min_by_layer"].items()), _x_saab),
    Claim("deeper_clusters", "05",
          "AlexNet's anchor vectors cluster more tightly in deeper layers",
          THIRD_PARTY, "krizhevsky2012imagenet",
          "the book's measure: mean |cos| between a layer's anchors divided by that of random "
          "Gaussian vectors of the same dimension; holds if it rises from the first to the "
          "last convolutional layer and ends above 1", _clusters,
          lambda n: ", ".join(f"{k} {v:.2f}" for k, v in zip(n["layers"], n["ratios"]))
                    + f" (weights: {n['weights']})", _x_clusters),
]}


def judge(claim_id: str, numbers: dict, *, quick: bool = False, dataset: str = "mnist") -> dict:
    """Judge one claim on the chapter's ``numbers``: the object the chapter glues and writes
    under ``claims[claim_id]``: ``{"verdict", "rule", "book", "numbers", "holds"}``."""
    c = CLAIMS[claim_id]
    yes, no = c.words()
    if c.mnist_number and dataset != "mnist":
        holds, verdict = None, f"not comparable: the paper's number is for MNIST, this run is {dataset}"
    else:
        holds = c.test(numbers)
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
