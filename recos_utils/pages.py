"""The front page "Paper vs this book", generated from the chapters' results files.

``recos-book run`` calls :func:`write_pages` while it stages the book (``cli._stage``): the
page is written as MyST markdown to ``site/book/paper_vs_book.md`` and put into the staged
``_toc.yml`` right after the introduction. Every number on the page is read from
``RESULTS_DIR/NN_topic.json`` (written by the chapters with
:func:`recos_utils.results.write_results`); nothing is typed. The only numbers that come from
the paper are the two known ones (``PAPER_ACC_ORIGINAL``, ``PAPER_ACC_REVERSED``, see
``shared/paper/RECOS.md``); every other claim of the paper is stated there without a number.

The page lists, for each claim: where it comes from, the paper's number if one is known, the
book's result as mean ± std over seeds with the number of seeds, and a verdict under the
tolerance rules below (also stated on the page):

* 98.94 % (LeNet-5 with ReLU on the MNIST test set) is *reproduced* when the book's mean is
  within ``max(0.3 pp, 2 std)`` of it;
* "about 30 %" (the same network on the grey-scale-reversed test set) is *reproduced* when
  the book's mean lies in 30 ± 10 pp;
* a claim without a paper number gets the verdict *no paper number*, followed by whether the
  book's numbers bear it out under a rule given in its row.

A chapter that was not part of the build gives *not run*; a chapter run in quick mode is
labelled quick (not faithful) next to its numbers, verdicts and in a banner.
"""
from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PAPER_ACC_ORIGINAL", "PAPER_ACC_REVERSED", "Stat", "Claim", "Chapter",
           "load_chapters", "judge_close", "judge_interval", "claims", "additions",
           "render", "write_pages", "PAGE_NAME"]

#: The paper's two known numbers (percent), see ``shared/paper/RECOS.md``.
PAPER_ACC_ORIGINAL = 98.94
PAPER_ACC_REVERSED = 30.0  # "about 30%"

#: Tolerance rules (percentage points).
TOL_CLOSE_PP = 0.3          # 98.94 %: reproduced within max(0.3 pp, 2 std)
TOL_ABOUT_PP = 10.0         # "about 30 %": reproduced within 30 +- 10 pp
TOL_RECOVER_PP = 1.0        # negated anchors: reversed set recovered to within 1 pp
TOL_LOSE_PP = 10.0          # ... and the original set at least 10 pp lower
TOL_SERVE_PP = 2.0          # paired anchors: both sets within 2 pp of the baseline
TOL_ALMOST_PP = 1.0         # background retraining "almost the same": within 1 pp of clean
TRELU_NEAR = (0.4, 0.6)     # TReLU best "near z = 0.5"

PAGE_NAME = "paper_vs_book"
NBSP = "\u00a0"  # keeps "98.94 %" and "Ch. 2" on one line in narrow table cells
CHAPTERS = {"01": "01_recos_model", "02": "02_sign_confusion", "03": "03_anchor_vectors",
            "04": "04_one_vs_two_layers", "05": "05_alexnet"}

PAPER = "paper"
NOTE_2017 = "2017 follow-up"
THIRD_PARTY = "third party"


# ----------------------------------------------------------------------------- reading
@dataclass
class Stat:
    """A result as mean, std over seeds and number of seeds (std/n None when unknown)."""
    mean: float
    std: float | None = None
    n: int | None = None

    def pct(self) -> "Stat":
        """In percent if the values are fractions in [0, 1] (accuracies are stored so)."""
        if abs(self.mean) <= 1.0 + 1e-12:
            return Stat(self.mean * 100, None if self.std is None else self.std * 100, self.n)
        return self


@dataclass
class Chapter:
    """What the page knows of one chapter: whether it ran, in which mode, its results."""
    number: str
    stem: str
    ran: bool = False
    results: dict | None = None
    quick: bool | None = None
    params: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.ran and self.results is not None

    @property
    def n_seeds(self) -> int | None:
        r = self.results or {}
        if isinstance(r.get("seeds"), list):
            return len(r["seeds"])
        for key in ("n_seeds", "N_SEEDS"):
            if isinstance(r.get(key), int):
                return r[key]
        v = self.params.get("N_SEEDS")
        return v if isinstance(v, int) else None

    @property
    def dataset(self) -> str | None:
        r = self.results or {}
        d = r.get("dataset", self.params.get("DATASET"))
        return d if isinstance(d, str) else None

    def link(self, short: bool = False) -> str:
        """A link to the chapter's page (plain text when it is not part of the build)."""
        if not self.ran:
            return f"Ch.{NBSP}{int(self.number)}" if short else f"Chapter {int(self.number)}"
        if short:
            return f"{{doc}}`Ch.{NBSP}{int(self.number)} <{self.stem}>`"
        return f"{{doc}}`{self.stem}`"


def _notebook_params(path: Path) -> dict:
    """Parameters of an executed chapter: the literals of its ``parameters`` cell, updated
    with what papermill injected."""
    try:
        nb = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    params: dict = {}
    for cell in nb.get("cells", []):
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.get("cell_type") == "code" and "parameters" in tags:
            src = "".join(cell.get("source", []))
            try:
                tree = ast.parse(src)
            except SyntaxError:
                break
            for node in tree.body:
                target = node.targets[0] if isinstance(node, ast.Assign) and \
                    len(node.targets) == 1 else getattr(node, "target", None)
                if isinstance(target, ast.Name) and node.value is not None:
                    try:
                        params[target.id] = ast.literal_eval(node.value)
                    except ValueError:
                        pass
            break
    params.update(nb.get("metadata", {}).get("papermill", {}).get("parameters", {}) or {})
    return params


def load_chapters(site: Path, results_dir: Path) -> dict[str, Chapter]:
    """Chapters 01-05 as staged in ``site/book`` (a chapter not staged did not run), with
    their results files from ``results_dir``."""
    out = {}
    for num, default_stem in CHAPTERS.items():
        staged = sorted((site / "book").glob(f"{num}_*.ipynb")) + \
            sorted((site / "book").glob(f"{num}_*.md"))
        stem = staged[0].stem if staged else default_stem
        ch = Chapter(num, stem, ran=bool(staged))
        if staged:
            if staged[0].suffix == ".ipynb":
                ch.params = _notebook_params(staged[0])
            f = Path(results_dir) / f"{stem}.json"
            if f.is_file():
                try:
                    ch.results = json.loads(f.read_text())
                except ValueError:
                    ch.results = None
            q = (ch.results or {}).get("quick", ch.params.get("QUICK"))
            ch.quick = q if isinstance(q, bool) else None
        out[num] = ch
    return out


def _get(d: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def _first(d: Any, *paths: str) -> Any:
    for p in paths:
        v = _get(d, p)
        if v is not None:
            return v
    return None


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def stat(value: Any, std: Any = None, n: int | None = None) -> Stat | None:
    """A :class:`Stat` from a number (with ``std``/``n`` given apart), a ``{mean, std, n}``
    dict, or a list of per-seed values; None when there is nothing numeric."""
    if isinstance(value, dict):
        m = _num(value.get("mean"))
        if m is None:
            return None
        s = _num(value.get("std"))
        nn = value.get("n") if isinstance(value.get("n"), int) else n
        return Stat(m, s, nn)
    if isinstance(value, list):
        vals = [_num(v) for v in value]
        if not vals or any(v is None for v in vals):
            return None
        m = sum(vals) / len(vals)
        s = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
        return Stat(m, s, len(vals))
    m = _num(value)
    if m is None:
        return None
    return Stat(m, _num(std), n)


# ----------------------------------------------------------------------------- formatting
def fmt_pct(s: Stat | None, seeds: bool = True) -> str:
    """``98.87 ± 0.05 % (3 seeds)`` for an accuracy (fraction or percent)."""
    if s is None:
        return "not recorded"
    p = s.pct()
    txt = (f"{p.mean:.2f}{NBSP}%" if p.std is None or p.n == 1
           else f"{p.mean:.2f} ± {p.std:.2f}{NBSP}%")
    if seeds and p.n is not None:
        txt += f" ({p.n} seed{'s' if p.n != 1 else ''})"
    return txt


def fmt_num(s: Stat | None, digits: int = 3, seeds: bool = False) -> str:
    if s is None:
        return "not recorded"
    if s.std is None or s.n == 1:
        txt = f"{s.mean:.{digits}g}"
    else:
        txt = f"{s.mean:.{digits}g} ± {s.std:.2g}"
    if seeds and s.n is not None:
        txt += f" ({s.n} seed{'s' if s.n != 1 else ''})"
    return txt


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# ----------------------------------------------------------------------------- verdicts
def judge_close(book: Stat, paper_pct: float, tol_pp: float = TOL_CLOSE_PP) -> str:
    """``reproduced`` when the book's mean (percent) is within ``max(tol_pp, 2 std)`` of the
    paper's number, else ``not reproduced``."""
    p = book.pct()
    tol = max(tol_pp, 2 * (p.std or 0.0))
    return "reproduced" if abs(p.mean - paper_pct) <= tol + 1e-9 else "not reproduced"


def judge_interval(book: Stat, lo_pct: float, hi_pct: float) -> str:
    """``reproduced`` when the book's mean (percent) lies in ``[lo_pct, hi_pct]``."""
    m = book.pct().mean
    return "reproduced" if lo_pct - 1e-9 <= m <= hi_pct + 1e-9 else "not reproduced"


def qualitative(holds: bool | None) -> str:
    """Verdict of a claim the paper makes without a number."""
    if holds is None:
        return "no paper number; not enough data to judge"
    return "no paper number; holds here" if holds else "no paper number; does not hold here"


def clearly_greater(a: Stat, b: Stat) -> bool:
    """``a`` beats ``b`` by more than twice the larger std (any margin with one seed)."""
    margin = 2 * max(a.std or 0.0, b.std or 0.0)
    return a.mean - b.mean > margin and a.mean > b.mean


@dataclass
class Claim:
    """One row of the page's main table."""
    claim: str
    source: str
    paper: str
    book: str
    verdict: str
    rule: str = ""
    chapter: Chapter | None = None


def _missing(ch: Chapter) -> tuple[str, str]:
    """(book cell, verdict) of a row without data: the chapter did not run, wrote no
    results file, or its file lacks the keys."""
    if not ch.ran:
        return "not run", "not run"
    if ch.results is None:
        return "no results file", "not run"
    return "not recorded", "not recorded"


def _label(ch: Chapter, verdict: str) -> str:
    if ch.quick:
        return f"{verdict} (quick run)"
    return verdict


def _dataset_mismatch(ch: Chapter, want: str = "mnist") -> str | None:
    d = ch.dataset
    if d is not None and d != want:
        return f"not comparable: the chapter ran on {d}, the paper's number is for {want.upper()}"
    return None


def _acc_pair(ch: Chapter, key: str) -> tuple[Stat | None, Stat | None]:
    r, n = ch.results or {}, ch.n_seeds
    d = _get(r, key)
    if not isinstance(d, dict):
        return None, None
    return (stat(d.get("acc_original"), d.get("std_original"), n),
            stat(d.get("acc_reversed"), d.get("std_reversed"), n))


_TRELU = re.compile(r"^t(?:hreshold)?[-_ ]?relu[-_ =(z]*([0-9]*\.?[0-9]+)\)?$", re.I)


def _ablation_table(r: dict) -> dict:
    """``ablation`` as ``name -> stats``; per-pool nesting (``{"max": {...}}``) gives max."""
    ab = r.get("ablation")
    if not isinstance(ab, dict) or not ab:
        return {}
    if all(isinstance(v, dict) and "acc_original" in v for v in ab.values()):
        return ab
    for pool in ("max", "max_pool", "maxpool"):
        if isinstance(ab.get(pool), dict):
            return ab[pool]
    first = next(iter(ab.values()))
    return first if isinstance(first, dict) else {}


def trelu_untrained(results: dict, sweep: list[tuple[float, dict]],
                    chance: float = 0.2) -> str | None:
    """Why the TReLU sweep tests nothing, or None when it does.

    Chapter 2 records its verdict on each prediction (``predictions_held``; None = not
    tested, e.g. when no TReLU network left chance level). Without that record, a sweep in
    which every threshold z > 0 stayed at or below ``chance`` accuracy tests nothing either.
    """
    held = results.get("predictions_held") if isinstance(results, dict) else None
    verdicts = [v for k, v in (held or {}).items() if str(k).lower().startswith("trelu")]
    tried = [(z, v["acc_original"]) for z, v in sweep if z > 0]
    dead = bool(tried) and all(_num(a) is not None and _num(a) <= chance for _, a in tried)
    if not (verdicts and verdicts[0] is None) and not dead:
        return None
    if not tried:
        return "no TReLU network in the results"
    best = max(_num(a) for _, a in tried)
    return (f"no TReLU network trained: all {len(tried)} thresholds from {tried[0][0]:g} to "
            f"{tried[-1][0]:g} stayed at chance (at most {100 * best:.2f}{NBSP}%)")


def trelu_sweep(ablation: dict) -> list[tuple[float, dict]]:
    """``(z, stats)`` of the threshold-ReLU entries, with ReLU as z = 0, sorted by z."""
    out = []
    for name, v in ablation.items():
        if not isinstance(v, dict):
            continue
        if name.lower() == "relu":
            out.append((0.0, v))
            continue
        m = _TRELU.match(name)
        if m:
            out.append((float(m.group(1)), v))
    return sorted(out, key=lambda t: t[0])


def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def claims(ch: dict[str, Chapter]) -> list[Claim]:
    """The paper's claims, each with the book's result and a verdict."""
    rows: list[Claim] = []
    c2, c3, c4, c5 = ch["02"], ch["03"], ch["04"], ch["05"]
    n2 = c2.n_seeds
    r2 = c2.results or {}

    # 1-2: the two known numbers.
    base_o = stat(_get(r2, "baseline.acc_original"), _get(r2, "baseline.std_original"), n2)
    base_r = stat(_get(r2, "baseline.acc_reversed"), _get(r2, "baseline.std_reversed"), n2)
    rule1 = (f"reproduced if within max({TOL_CLOSE_PP} pp, 2 std) of {PAPER_ACC_ORIGINAL:.2f} %")
    rule2 = (f"reproduced if within {PAPER_ACC_REVERSED:.0f} ± {TOL_ABOUT_PP:.0f} pp")
    for text, paper, s, judge, rule in (
            ("LeNet-5 with ReLU, trained on MNIST: accuracy on the MNIST test set",
             f"{PAPER_ACC_ORIGINAL:.2f}{NBSP}%", base_o,
             lambda s: judge_close(s, PAPER_ACC_ORIGINAL), rule1),
            ("The same network on the grey-scale-reversed test set (255 − x)",
             f"about {PAPER_ACC_REVERSED:.0f}{NBSP}%", base_r,
             lambda s: judge_interval(s, PAPER_ACC_REVERSED - TOL_ABOUT_PP,
                                      PAPER_ACC_REVERSED + TOL_ABOUT_PP), rule2)):
        if s is None:
            rows.append(Claim(text, PAPER, paper, *_missing(c2), rule, c2))
        else:
            v = _dataset_mismatch(c2) or judge(s)
            rows.append(Claim(text, PAPER, paper, fmt_pct(s), _label(c2, v), rule, c2))

    # 3: negated first-layer anchors.
    text = "Negated first-layer anchors: the reversed set is recovered, the original one lost"
    rule = (f"holds if, with negated anchors, reversed-set accuracy is within "
            f"{TOL_RECOVER_PP:g} pp of the original network on original digits, and "
            f"original-set accuracy is at least {TOL_LOSE_PP:g} pp below it")
    neg_o, neg_r = _acc_pair(c2, "negated")
    if not c2.ok or neg_o is None or neg_r is None or base_o is None:
        rows.append(Claim(text, PAPER, "none", *_missing(c2), rule, c2))
    else:
        b, no, nr = base_o.pct().mean, neg_o.pct().mean, neg_r.pct().mean
        holds = abs(nr - b) <= TOL_RECOVER_PP and no <= b - TOL_LOSE_PP
        rows.append(Claim(text, PAPER, "none",
                          f"reversed {fmt_pct(neg_r, False)}, original {fmt_pct(neg_o, False)} "
                          f"(baseline on original {fmt_pct(base_o, False)})",
                          _label(c2, qualitative(holds)), rule, c2))

    # 4: paired anchors.
    rule = (f"holds if accuracy on both the original and the reversed test set is within "
            f"{TOL_SERVE_PP:g} pp of the ReLU baseline on original digits (keeping each kernel "
            "with its negative is also the idea behind the Saak transform "
            "{cite:p}`kuo2018saak`, which its successor Saab {cite:p}`kuo2019interpretable` "
            "replaces by a bias)")
    for key, how in (("paired.original_only", "rest retrained on original digits"),
                     ("paired.both", "rest retrained on original and reversed digits")):
        text = ("Each first-layer anchor kept with its negative, then ReLU, serves both "
                f"polarities ({how})")
        po, pr = _acc_pair(c2, key)
        if not c2.ok or po is None or pr is None or base_o is None:
            rows.append(Claim(text, PAPER, "none",
                              *_missing(c2), rule, c2))
            continue
        b = base_o.pct().mean
        holds = po.pct().mean >= b - TOL_SERVE_PP and pr.pct().mean >= b - TOL_SERVE_PP
        rows.append(Claim(text, PAPER, "none",
                          f"original {fmt_pct(po, False)}, reversed {fmt_pct(pr, False)}",
                          _label(c2, qualitative(holds)), rule, c2))

    # 5-6: digits on natural backgrounds.
    r4 = c4.results or {}

    def acc4(net, train, test):
        v = _first(r4, f"{net}.{train}.{test}", f"accuracy.{net}.{train}.{test}",
                   f"acc.{net}.{train}.{test}")
        return stat(v, None, c4.n_seeds)

    text = ("Retrained on digits on natural backgrounds, LeNet-5 is almost as accurate as on "
            "clean MNIST")
    rule = (f"holds if within {TOL_ALMOST_PP:g} pp of the clean network on clean digits; the "
            "backgrounds follow the mnist-back-image recipe {cite:p}`larochelle2007empirical`")
    bb, cc = acc4("two_layer", "background", "background"), acc4("two_layer", "clean", "clean")
    if not c4.ok or bb is None or cc is None:
        rows.append(Claim(text, PAPER, "none (\"almost the same\")",
                          *_missing(c4), rule, c4))
    else:
        holds = abs(bb.pct().mean - cc.pct().mean) <= TOL_ALMOST_PP
        rows.append(Claim(text, PAPER, "none (\"almost the same\")",
                          f"background {fmt_pct(bb)}; clean {fmt_pct(cc, False)}",
                          _label(c4, qualitative(holds)), rule, c4))

    text = ("Two layers beat one on digits on backgrounds (trained and tested on them)")
    rule = "holds if the two-layer mean beats the one-layer mean by more than twice the larger std"
    ob = acc4("one_layer", "background", "background")
    if not c4.ok or bb is None or ob is None:
        rows.append(Claim(text, PAPER, "none",
                          *_missing(c4), rule, c4))
    else:
        holds = clearly_greater(bb.pct(), ob.pct())
        rows.append(Claim(text, PAPER, "none",
                          f"two layers {fmt_pct(bb, False)}, one layer {fmt_pct(ob)}",
                          _label(c4, qualitative(holds)), rule, c4))

    # 7: TReLU.
    text = "Threshold ReLU on LeNet-5: accuracy is best near z = 0.5"
    rule = (f"holds if the threshold with the best mean accuracy on original digits lies in "
            f"[{TRELU_NEAR[0]}, {TRELU_NEAR[1]}]")
    sweep = trelu_sweep(_ablation_table(r2))
    sweep = [(z, v) for z, v in sweep if _num(v.get("acc_original")) is not None]
    untrained = trelu_untrained(r2, sweep)
    if not c2.ok or len(sweep) < 2:
        rows.append(Claim(text, NOTE_2017, "none",
                          *_missing(c2), rule, c2))
    elif untrained:
        rows.append(Claim(text, NOTE_2017, "none", untrained,
                          _label(c2, "not tested: no network with a threshold trained"),
                          rule, c2))
    else:
        z_best, v_best = max(sweep, key=lambda t: t[1]["acc_original"])
        s_best = stat(v_best["acc_original"], v_best.get("std_original"), n2)
        z0 = [v for z, v in sweep if z == 0.0]
        s0 = stat(z0[0]["acc_original"], z0[0].get("std_original"), n2) if z0 else None
        book = f"best z = {z_best:g}: {fmt_pct(s_best, False)}"
        if s0 is not None and z_best != 0.0:
            book += f"; z = 0 (ReLU): {fmt_pct(s0, False)}"
        book += f" ({len(sweep)} thresholds from {sweep[0][0]:g} to {sweep[-1][0]:g}"
        book += f", {n2} seed{'s' if n2 != 1 else ''})" if n2 else ")"
        mismatch = _dataset_mismatch(c2)
        holds = TRELU_NEAR[0] - 1e-9 <= z_best <= TRELU_NEAR[1] + 1e-9
        rows.append(Claim(text, NOTE_2017, "none", book,
                          _label(c2, mismatch or qualitative(holds)), rule, c2))

    # 8: k-means initialisation.
    r3 = c3.results or {}
    init = r3.get("init") if isinstance(r3.get("init"), dict) else {}
    target = _num(init.get("target_acc"))
    key, level = ("97", 0.97) if c3.dataset in (None, "mnist") or target is None \
        else ("target", target)
    goal = f"{100 * level:g}{NBSP}%"
    text = "First-layer anchors initialised by k-means make training converge faster"
    rule = (f"holds if the k-means start reaches {goal} test accuracy in fewer steps (mean "
            "over seeds) than the random one; a start that not every seed brings to it counts "
            "as slower")
    arms = {a: init.get(a) for a in ("kmeans", "random")}
    if not c3.ok or not all(isinstance(v, dict) and f"steps_to_{key}" in v for v in arms.values()):
        rows.append(Claim(text, NOTE_2017, "none", *_missing(c3), rule, c3))
    else:
        st, cells = {}, []
        for a, label in (("kmeans", "k-means"), ("random", "random")):
            v = arms[a]
            n = v.get("n_seeds") if isinstance(v.get("n_seeds"), int) else c3.n_seeds
            st[a] = stat(v.get(f"steps_to_{key}"), v.get(f"steps_to_{key}_std"), n)
            if st[a] is None:
                got = v.get(f"n_reached_{key}")
                cells.append(f"{label} not reached by every seed"
                             + (f" ({got} of {n})" if isinstance(got, int) and n else ""))
            else:
                cells.append(f"{label} {fmt_num(st[a], 4, seeds=a == 'random')}")
        km, rd = st["kmeans"], st["random"]
        holds = (None if km is None and rd is None else km is not None if rd is None
                 else False if km is None else km.mean < rd.mean)
        rows.append(Claim(text, NOTE_2017, "none", f"steps to {goal}: " + ", ".join(cells),
                          _label(c3, qualitative(holds)), rule, c3))

    # 9: AlexNet layers on the sphere.
    r5 = c5.results or {}
    text = "AlexNet's anchor vectors cluster more tightly in deeper layers"
    rule = ("AlexNet {cite:p}`krizhevsky2012imagenet`; the book's measure: mean |cos| between "
            "a layer's anchors divided by that of random Gaussian vectors of the same dimension; "
            "holds if it rises from the first to the last "
            "convolutional layer and ends above 1")
    layers = r5.get("layers") if isinstance(r5.get("layers"), dict) else {}
    ratios = []
    for name in sorted(layers, key=_natural):
        v = layers[name]
        a, b = _num(_get(v, "mean_abs_cos")), _num(_get(v, "mean_abs_cos_random"))
        if a is not None and b:
            ratios.append((name, a / b))
    conv = [t for t in ratios if "conv" in t[0].lower()] or ratios
    if not c5.ok or len(conv) < 2:
        rows.append(Claim(text, THIRD_PARTY, "none",
                          *_missing(c5), rule, c5))
    else:
        holds = conv[-1][1] > conv[0][1] and conv[-1][1] > 1.0
        w = r5.get("weights")
        book = ", ".join(f"{n} {x:.2f}" for n, x in conv)
        verdict = qualitative(holds)
        if isinstance(w, str):
            book += f" (weights: {w})"
            if "imagenet" not in w.lower():
                verdict += " (on a stand-in network, not AlexNet's ImageNet weights)"
        rows.append(Claim(text, THIRD_PARTY, "none", book, _label(c5, verdict), rule, c5))
    return rows


def _pct_map(d: Any) -> str:
    if not isinstance(d, dict) or not d:
        return "not recorded"
    parts = []
    for k in sorted(d, key=_natural):
        v = d[k]
        s = stat(v)
        if s is not None:
            parts.append(f"{k} {s.mean * 100:.1f} %" if abs(s.mean) <= 1 else f"{k} {s.mean:.3g}")
        elif isinstance(v, dict):
            parts.append(f"{k}: " + _pct_map(v))
    return ", ".join(parts) or "not recorded"


def additions(ch: dict[str, Chapter]) -> list[tuple[Chapter, str, str]]:
    """Results the book adds beyond the paper: ``(chapter, what, result)``."""
    rows: list[tuple[Chapter, str, str]] = []

    def add(c, what, value):
        if c.ok and value is not None:
            rows.append((c, what, value))

    c1, c2, c3, c4, c5 = (ch[k] for k in ("01", "02", "03", "04", "05"))
    r1 = c1.results or {}
    e = [_num(_get(r1, p)) for p in ("conv_relu_equals_recos.conv1_max_abs_err",
                                     "conv_relu_equals_recos.conv2_max_abs_err",
                                     "conv_relu_equals_recos.magnitude_cosine_max_abs_err")]
    e = [x for x in e if x is not None]
    if e:
        add(c1, "A trained conv + ReLU layer computes exactly RECOS (largest deviation)",
            f"{max(e):.1e}")
    add(c1, "Share of conv1 responses zeroed by ReLU",
        None if _num(r1.get("conv1_frac_zeroed")) is None
        else f"{100 * r1['conv1_frac_zeroed']:.1f} %")

    r2, n2 = c2.results or {}, c2.n_seeds
    bo, br = _acc_pair(c2, "both_trained")
    if bo is not None and br is not None:
        add(c2, "LeNet-5 trained on original and reversed digits: accuracy on each",
            f"original {fmt_pct(bo, False)}, reversed {fmt_pct(br)}")
    ab = _ablation_table(r2)
    ab_avg = r2.get("ablation_avgpool") if isinstance(r2.get("ablation_avgpool"), dict) else {}
    for name, table, pool in (("identity", ab, "max pooling"), ("abs", ab, "max pooling"),
                              ("identity", ab_avg, "average pooling: a linear network")):
        v = table.get(name)
        if isinstance(v, dict) and _num(v.get("acc_original")) is not None:
            add(c2, f"Activation `{name}` ({pool}): accuracy on original / reversed digits",
                f"{fmt_pct(stat(v['acc_original'], v.get('std_original'), n2), False)} / "
                f"{fmt_pct(stat(v.get('acc_reversed'), v.get('std_reversed'), n2))}")

    r3 = c3.results or {}
    km = [(w, _num(_get(r3, f"kmeans_match.mean_cos_{w}")))
          for w in ("learned", "untrained", "random")]
    if any(v is not None for _, v in km):
        add(c3, "Mean cosine between k-means centroids of MNIST patches and matched conv1 anchors",
            ", ".join(f"{w} anchors {v:.2f}" for w, v in km if v is not None))
    fk = stat(_get(r3, "init.kmeans.final_acc"), _get(r3, "init.kmeans.final_acc_std"),
              c3.n_seeds)
    fr = stat(_get(r3, "init.random.final_acc"), _get(r3, "init.random.final_acc_std"),
              c3.n_seeds)
    if fk is not None and fr is not None:
        add(c3, "Final accuracy, k-means vs random conv1 initialisation",
            f"{fmt_pct(fk, False)} vs {fmt_pct(fr)}")
    if isinstance(r3.get("sparsity"), dict):
        add(c3, "Responses zeroed by each rectifier of a trained LeNet-5", _pct_map(r3["sparsity"]))

    r4 = c4.results or {}
    for net, label in (("two_layer", "LeNet-5"), ("one_layer", "one-layer network")):
        v = _first(r4, f"{net}.background.background_unseen",
                   f"accuracy.{net}.background.background_unseen")
        s = stat(v, None, c4.n_seeds)
        if s is not None:
            add(c4, f"{label} trained on background digits, tested on backgrounds from unseen "
                    "photographs", fmt_pct(s))
        v = _first(r4, f"{net}.clean.background", f"accuracy.{net}.clean.background")
        s = stat(v, None, c4.n_seeds)
        if s is not None:
            add(c4, f"{label} trained on clean digits, tested on background digits", fmt_pct(s))
    names = {"two_layer": "LeNet-5", "one_layer": "one-layer net"}
    pc = _first(r4, "params", "param_counts", "n_params")
    pc = pc if isinstance(pc, dict) else {net: _first(r4, f"{net}.params", f"{net}.n_params")
                                          for net in names}
    counts = [(names.get(k, k), _num(v.get("total") if isinstance(v, dict) else v))
              for k, v in pc.items()]
    counts = [(k, v) for k, v in counts if v is not None]
    if counts:
        add(c4, "Parameter counts", ", ".join(f"{k} {int(v):,}" for k, v in counts))
    es = r4.get("background_energy_share")
    if isinstance(es, dict):
        parts = []
        for net in sorted(es, key=lambda k: (k != "two_layer", k)):
            layers = es[net]
            if not isinstance(layers, dict):
                continue
            cells = []
            for layer in sorted(layers, key=_natural):
                v = layers[layer]
                e = _num(v.get("energy")) if isinstance(v, dict) else _num(v)
                area = _num(v.get("area")) if isinstance(v, dict) else None
                if e is not None:
                    cells.append(f"{layer} {100 * e:.0f}{NBSP}%"
                                 + (f" (area {100 * area:.0f}{NBSP}%)" if area is not None else ""))
            if cells:
                parts.append(f"{names.get(net, net)}: " + ", ".join(cells))
        if parts:
            add(c4, "Share of rectified response energy on background pixels, per layer "
                    "(and the background's share of the layer's area)", "; ".join(parts))

    r5 = c5.results or {}
    if isinstance(r5.get("weights"), str):
        add(c5, "AlexNet weights used", _cell(r5["weights"]))
    layers = r5.get("layers") if isinstance(r5.get("layers"), dict) else {}
    fz = {k: v.get("frac_zeroed") for k, v in layers.items() if isinstance(v, dict)
          and _num(v.get("frac_zeroed")) is not None}
    if fz:
        add(c5, "Responses zeroed by each rectifier on photographs", _pct_map(fz))
    return rows


# ----------------------------------------------------------------------------- the page
def _ablation_rows(ch: Chapter) -> list[str]:
    ab = _ablation_table(ch.results or {})
    n = ch.n_seeds
    lines = []
    for name in sorted(ab, key=lambda k: (trelu_sweep({k: ab[k]}) != [], _natural(k))):
        v = ab[name]
        if not isinstance(v, dict) or _num(v.get("acc_original")) is None:
            continue
        o = stat(v["acc_original"], v.get("std_original"), n)
        r = stat(v.get("acc_reversed"), v.get("std_reversed"), n)
        lines.append(f"| `{name}` | {fmt_pct(o, False)} | {fmt_pct(r, False)} |")
    return lines


def render(ch: dict[str, Chapter]) -> str:
    """The page as MyST markdown."""
    rows = claims(ch)
    quick = [c for c in ch.values() if c.ran and c.quick]
    ran = [c for c in ch.values() if c.ran]
    out = ["(paper-vs-book)=", "# Paper vs this book", ""]
    out += [
        "This page sets the claims of {cite:t}`kuo2016understanding` against what this book "
        "finds. It is generated when the book is built, from the results files that the "
        "chapters write "
        "(`RESULTS_DIR/NN_topic.json`): no number on it is typed by hand, so it always shows "
        "the run you are reading. The paper's full text is not available to us; only two of "
        "its numbers are known (LeNet-5 {cite:p}`lecun1998gradient` on MNIST "
        "{cite:p}`lecun1998mnist`), and every other claim is stated in the paper without a "
        "number.", ""]
    if quick:
        names = ", ".join(c.link() for c in quick)
        out += [":::{admonition} Quick run: not faithful", ":class: warning",
                f"These chapters ran in **quick mode** (fewer epochs, subsets of the data, fewer "
                f"seeds): {names}. Their numbers show that the code runs end to end; they are "
                "not a faithful reproduction, and their verdicts are marked *quick run*. Build "
                "the book with `recos-book run --mode full` for the faithful numbers.", ":::", ""]
    not_ran = [c for c in ch.values() if not c.ran and c.number != "01"]
    if not_ran:
        out += [f"Not part of this build: {', '.join(c.link() for c in not_ran)}; their rows "
                "say *not run*.", ""]
    other = sorted({c.dataset for c in ran if c.dataset and c.dataset != "mnist"})
    if other:
        cite = " {cite:p}`xiao2017fashion`" if "fashion-mnist" in other else ""
        out += [f"Some chapters ran on {', '.join(other)}{cite} rather than MNIST; rows whose "
                "paper number is for MNIST then say *not comparable*.", ""]

    out += ["## How a claim is judged", "",
            "* Accuracies are in percent, as **mean ± standard deviation over seeds** (the "
            "sample standard deviation; one seed gives no ±), with the number of seeds.",
            f"* **reproduced** / **not reproduced** for the paper's {PAPER_ACC_ORIGINAL:.2f} %: "
            f"reproduced when the book's mean is within max({TOL_CLOSE_PP} pp, 2 std) of it.",
            f"* **reproduced** / **not reproduced** for the paper's \"about "
            f"{PAPER_ACC_REVERSED:.0f} %\": reproduced when the book's mean lies within "
            f"{PAPER_ACC_REVERSED:.0f} ± {TOL_ABOUT_PP:.0f} pp.",
            "* **no paper number**: the paper (or its follow-up) states the claim without a "
            "number. The verdict then says whether the book's own numbers bear the claim out, "
            "under the rule given below the table for that row.",
            "* **not run**: the chapter was not part of this build (or wrote no results).",
            "* **(quick run)**: the chapter ran in quick mode; its numbers are not faithful.",
            ""]

    out += ["## The paper's claims", "",
            ":::{table} The paper's claims against this build of the book",
            ":name: paper-claims", "",
            "| # | Claim | Paper | This book | Verdict | |",
            "|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        claim = r.claim if r.source == PAPER else f"{r.claim} *({r.source})*"
        out.append("| " + " | ".join(_cell(x) for x in (
            str(i), claim, r.paper, r.book, r.verdict,
            r.chapter.link(short=True) if r.chapter is not None else "")) + " |")
    out += [":::"]
    out += ["", "Rules and notes for the rows:", ""]
    for i, r in enumerate(rows, 1):
        out.append(f"{i}. {r.rule[:1].upper()}{r.rule[1:]}.")
    out += ["", "Sources: *paper* is {cite:t}`kuo2016understanding`; *2017 follow-up* is the "
            "author's own restatement and extension {cite:p}`kuo2017guided`; *third party* is a "
            "public re-implementation that looked at AlexNet's weights, not the paper.", ""]

    adds = additions(ch)
    out += ["## What the book adds", "",
            "Results the paper does not report; they are the book's own.", ""]
    if adds:
        out += ["| Result | This book | |", "|---|---|---|"]
        for c, what, value in adds:
            label = value
            if c.quick:
                label = (value[:-1] + ", quick run)" if value.endswith(")")
                         else f"{value} (quick run)")
            out.append(f"| {_cell(what)} | {_cell(label)} | {c.link(short=True)} |")
    else:
        out.append("No chapter with such results is part of this build.")
    out.append("")
    ab = _ablation_rows(ch["02"]) if ch["02"].ok else []
    if ab:
        n = ch["02"].n_seeds
        out += ["### Activations and sign confusion", "",
                f"Accuracy of LeNet-5 with each activation (max pooling; mean over "
                f"{n if n is not None else 'the'} seed{'s' if n != 1 else ''}"
                f"{', quick run' if ch['02'].quick else ''}), from {ch['02'].link()}.", "",
                "| Activation | Original digits | Reversed digits |", "|---|---|---|", *ab, ""]
    return "\n".join(out).rstrip() + "\n"


def _insert_toc(toc_path: Path, entry: str) -> None:
    import yaml

    toc = yaml.safe_load(toc_path.read_text())

    def drop(entries):
        return [e for e in entries if e.get("file") != entry]

    if "parts" in toc and toc["parts"]:
        for p in toc["parts"]:
            p["chapters"] = drop(p.get("chapters", []))
        toc["parts"][0]["chapters"].insert(0, {"file": entry})
    else:
        toc["chapters"] = [{"file": entry}] + drop(toc.get("chapters", []) or [])
    toc_path.write_text(yaml.safe_dump(toc, sort_keys=False))


def write_pages(site: Path, results_dir: Path) -> Path:
    """Write ``site/book/paper_vs_book.md`` from the results in ``results_dir`` and list it
    in ``site/_toc.yml`` right after the introduction. Returns the page's path."""
    site, results_dir = Path(site), Path(results_dir)
    page = site / "book" / f"{PAGE_NAME}.md"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render(load_chapters(site, results_dir)))
    if (site / "_toc.yml").is_file():
        _insert_toc(site / "_toc.yml", f"book/{PAGE_NAME}")
    return page
