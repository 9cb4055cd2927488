"""The front page "Paper vs this book", rendered from the chapters' results files.

``recos-book run`` calls :func:`write_pages` while it stages the book (``cli._stage``): the
page is written as MyST markdown to ``site/book/paper_vs_book.md`` and put into the staged
``_toc.yml`` right after the introduction.

The page **judges nothing**. Every claim is judged once, by its chapter, through the
registry :mod:`recos_utils.core.claims`; the chapter writes the verdict, the rule and the book's
numbers into its results file under ``claims``, and this page shows them verbatim, in the
registry's order. A chapter that was not part of the build gives *not run*; a chapter that
ran but wrote no verdict for one of its claims gives *not recorded* (the tests fail on it).
"What the book adds" lists results the paper does not have, read from the exact keys of
the results layouts (``results.LAYOUTS``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from recos_utils.core.claims import CLAIMS

__all__ = ["Chapter", "load_chapters", "claim_rows", "additions", "render", "write_pages",
           "PAGE_NAME", "NOT_RUN", "NOT_RECORDED"]

PAGE_NAME = "paper_vs_book"
NBSP = "\u00a0"  # keeps "Ch. 2" on one line in narrow table cells
CHAPTERS = {"01": "01_recos_model", "02": "02_sign_confusion", "03": "03_anchor_vectors",
            "04": "04_one_vs_two_layers", "05": "05_alexnet", "06": "06_feedforward_design"}
NOT_RUN, NOT_RECORDED = "not run", "not recorded"


@dataclass
class Chapter:
    """What the page knows of one chapter: whether it ran, and its results file."""
    number: str
    stem: str
    ran: bool = False
    results: dict | None = None

    @property
    def quick(self) -> bool:
        return bool((self.results or {}).get("quick"))

    def link(self, short: bool = False) -> str:
        """A link to the chapter's page (plain text when it is not part of the build)."""
        label = f"Ch.{NBSP}{int(self.number)}" if short else f"Chapter {int(self.number)}"
        return f"{{doc}}`{label} <{self.stem}>`" if self.ran else label


def load_chapters(site: Path, results_dir: Path) -> dict[str, Chapter]:
    """Chapters 01-06 as staged in ``site/book`` (a chapter not staged did not run), with
    their results files from ``results_dir``."""
    out = {}
    for num, default_stem in CHAPTERS.items():
        staged = sorted((Path(site) / "book").glob(f"{num}_*.ipynb")) + \
            sorted((Path(site) / "book").glob(f"{num}_*.md"))
        stem = staged[0].stem if staged else default_stem
        ch = Chapter(num, stem, ran=bool(staged))
        f = Path(results_dir) / f"{stem}.json"
        if staged and f.is_file():
            ch.results = json.loads(f.read_text())
        out[num] = ch
    return out


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# ------------------------------------------------------------------------------ claims
def claim_rows(ch: dict[str, Chapter]) -> list[dict]:
    """One row per registry claim: the chapter's recorded judgement, verbatim."""
    rows = []
    for c in CLAIMS.values():
        chapter = ch[c.chapter]
        rec = ((chapter.results or {}).get("claims") or {}).get(c.id) if chapter.ran else None
        if not chapter.ran:
            verdict, book, rule = NOT_RUN, NOT_RUN, c.rule
        elif rec is None:
            verdict, book, rule = NOT_RECORDED, NOT_RECORDED, c.rule
        else:
            verdict, book, rule = rec["verdict"], rec["book"], rec["rule"]
        rows.append({"id": c.id, "claim": c.text, "source": c.source, "note": c.note, "cite": c.cite,
                     "paper": c.paper or "none", "book": book, "verdict": verdict,
                     "rule": rule, "chapter": chapter})
    return rows


# ------------------------------------------------------------------ what the book adds
def _pct(x: float) -> str:
    return f"{100 * x:.2f}{NBSP}%"


def _ms(d: dict) -> str:
    """A ``{"mean", "std", "n"}`` dict (``results.mean_std``) in percent."""
    return _pct(d["mean"]) + (f" ± {_pct(d['std'])}" if d.get("n", 1) > 1 else "")


def _acc(d: dict, key: str = "acc_original") -> str:
    """``d[key]`` in percent, with ``d[key + "_std"]`` when ``d["n"]`` seeds made it."""
    return _pct(d[key]) + (f" ± {_pct(d[key + '_std'])}" if d.get("n", 1) > 1 else "")


def _pair(d: dict) -> str:
    return f"original {_pct(d['acc_original'])}, reversed {_pct(d['acc_reversed'])}"


def _pcts(d: dict) -> str:
    return ", ".join(f"{k} {100 * v:.1f}{NBSP}%" for k, v in d.items())


def _energy(r: dict) -> str:
    names = {"two_layer": "LeNet-5", "one_layer": "one-layer net"}
    return "; ".join(
        f"{names[net]}: " + ", ".join(f"{layer} {100 * v['energy']['mean']:.0f}{NBSP}% (area "
                                      f"{100 * v['area']:.0f}{NBSP}%)" for layer, v in layers.items())
        for net, layers in r["background_energy_share"].items())


#: (chapter, what, how to read it from the results file). Each reads exact keys.
ADDITIONS: list[tuple[str, str, Callable[[dict], str]]] = [
    ("01", "A trained conv + ReLU layer computes exactly RECOS (largest deviation)",
     lambda r: f"{max(r['conv_relu_equals_recos'][k] for k in ('conv1_max_abs_err', 'conv2_max_abs_err', 'magnitude_cosine_max_abs_err')):.1e}"),
    ("01", "Share of conv1 responses zeroed by ReLU", lambda r: _pct(r["conv1_frac_zeroed"])),
    ("02", "LeNet-5 trained on original and reversed digits", lambda r: _pair(r["both_trained"])),
    ("02", "Activation `identity` with max pooling", lambda r: _pair(r["ablation"]["identity"])),
    ("02", "Activation `abs` with max pooling", lambda r: _pair(r["ablation"]["abs"])),
    ("02", "No activation with average pooling (a linear network)",
     lambda r: _pair(r["ablation_avgpool"]["identity"])),
    ("03", "Mean cosine between k-means centroids of MNIST patches and matched conv1 anchors",
     lambda r: ", ".join(f"{w} anchors {r['kmeans_match'][f'mean_cos_{w}']:.2f}"
                         for w in ("learned", "untrained", "random"))),
    ("03", "Final accuracy, k-means vs random conv1 initialisation",
     lambda r: f"{_pct(r['init']['kmeans']['final_acc'])} vs {_pct(r['init']['random']['final_acc'])}"),
    ("03", "Responses zeroed by each rectifier of a trained LeNet-5", lambda r: _pcts(r["sparsity"])),
    ("04", "LeNet-5 trained on background digits, tested on backgrounds from unseen photographs",
     lambda r: _ms(r["two_layer"]["background"]["background_unseen"])),
    ("04", "LeNet-5 trained on clean digits, tested on background digits",
     lambda r: _ms(r["two_layer"]["clean"]["background"])),
    ("04", "Parameter counts", lambda r: f"LeNet-5 {r['two_layer']['params']:,}, one-layer net "
                                         f"{r['one_layer']['params']:,}"),
    ("04", "Share of rectified response energy on background pixels, per layer (and the "
           "background's share of the layer's area)", _energy),
    ("05", "AlexNet weights used", lambda r: r["weights"]),
    ("05", "Responses zeroed by each rectifier on photographs",
     lambda r: _pcts({k: v["frac_zeroed"] for k, v in r["layers"].items()})),
    ("06", "LeNet-5 designed without backpropagation (Saab, least squares) vs trained by it, "
           "MNIST test set", lambda r: f"{_acc(r['ff'])} vs {_acc(r['bp'])}"),
    ("06", "The same two networks on grey-scale-reversed MNIST digits",
     lambda r: f"{_acc(r['ff'], 'acc_reversed')} vs {_acc(r['bp'], 'acc_reversed')}"),
    ("06", "The same two networks on Fashion-MNIST",
     lambda r: f"{_acc(r['ff']['fashion_mnist'])} vs {_acc(r['bp']['fashion_mnist'])}"),
    ("06", "Design time vs training time (this machine, one network)",
     lambda r: f"{r['ff']['design_s']:.0f} s vs {r['bp']['train_s']:.0f} s"),
]


def additions(ch: dict[str, Chapter]) -> list[tuple[Chapter, str, str]]:
    """Results the book adds beyond the paper: ``(chapter, what, value)`` for every chapter
    that ran; a value its results file does not hold reads *not recorded*."""
    rows = []
    for num, what, read in ADDITIONS:
        c = ch[num]
        if not c.ran:
            continue
        try:
            value = read(c.results or {})
        except (KeyError, TypeError):
            value = NOT_RECORDED
        rows.append((c, what, value + (" (quick run)" if c.quick and value != NOT_RECORDED else "")))
    return rows


def _ablation_rows(r: dict) -> list[str]:
    tab = r.get("ablation") or {}
    return [f"| `{name}` | {_pct(v['acc_original'])} | {_pct(v['acc_reversed'])} | "
            f"{_pct(v['train_acc_final'])} |" for name, v in tab.items()]


# ------------------------------------------------------------------------------ the page
def render(ch: dict[str, Chapter]) -> str:
    """The page as MyST markdown."""
    rows = claim_rows(ch)
    quick = [c for c in ch.values() if c.ran and c.quick]
    out = ["(paper-vs-book)=", "# Paper vs this book", "",
           "This page sets the claims of {cite:t}`kuo2016understanding` and of its follow-ups "
           "against what this book finds. It is generated when the book is built, from the "
           "results files the chapters write (`RESULTS_DIR/NN_topic.json`): no number on it "
           "is typed by hand, so it always shows the run you are reading. Each verdict is the "
           "chapter's own, word for word: every claim is judged once, by the rule shown below "
           "the table (module `recos_utils.core.claims`). The paper's full text is not available to "
           "us; only two of its numbers are known (LeNet-5 {cite:p}`lecun1998gradient` on "
           "MNIST {cite:p}`lecun1998mnist`), and every other claim is stated without a number.",
           ""]
    if quick:
        out += [":::{admonition} Quick run: not faithful", ":class: warning",
                "These chapters ran in **quick mode** (subsets of the data, one seed): "
                f"{', '.join(c.link() for c in quick)}. Their numbers show that the code runs "
                "end to end; they are not a faithful reproduction, and their verdicts say "
                "*(quick run)*. Build the book with `recos-book run --mode full` for the "
                "faithful numbers.", ":::", ""]
    not_ran = [c for c in ch.values() if not c.ran and c.number != "01"]
    if not_ran:
        out += [f"Not part of this build: {', '.join(c.link() for c in not_ran)}; their rows "
                "say *not run*.", ""]
    out += ["## The claims", "", ":::{table} The claims against this build of the book",
            ":name: paper-claims", "", "| # | Claim | Source | Paper | This book | Verdict | |",
            "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        out.append("| " + " | ".join(_cell(x) for x in (
            i, r["claim"], r["source"], r["paper"], r["book"], f"**{r['verdict']}**",
            r["chapter"].link(short=True))) + " |")
    out += [":::", "", "The rule of each row:", ""]
    for i, r in enumerate(rows, 1):
        note = f" Source: {r['note']}." if r["note"] else ""
        out.append(f"{i}. {r['rule'][:1].upper()}{r['rule'][1:]} ({{cite:p}}`{r['cite']}`)."
                   + note)
    out += ["", "Sources: *paper (quoted)* was seen in {cite:t}`kuo2016understanding`; *paper "
            "(restated, unconfirmed)* is known only from the author's later restatement "
            "{cite:p}`kuo2017guided` or a secondary summary, not from the paper's text; "
            "*follow-up paper* is a later paper of the author's; *the book's own* is the "
            "book's hypothesis or measure.", ""]
    adds = additions(ch)
    out += ["## What the book adds", "", "Results the paper does not report; they are the "
            "book's own.", ""]
    if adds:
        out += ["| Result | This book | |", "|---|---|---|"]
        out += [f"| {_cell(what)} | {_cell(v)} | {c.link(short=True)} |" for c, what, v in adds]
    else:
        out.append("No chapter with such results is part of this build.")
    c2 = ch["02"]
    if c2.ran and c2.results and c2.results.get("ablation"):
        out += ["", "### Activations and sign confusion", "",
                f"LeNet-5 with each activation (max pooling; mean over "
                f"{len(c2.results['seeds'])} seed(s){', quick run' if c2.quick else ''}), "
                f"from {c2.link()}.", "",
                "| Activation | Original digits | Reversed digits | Final training accuracy |",
                "|---|---|---|---|", *_ablation_rows(c2.results)]
    return "\n".join(out).rstrip() + "\n"


def _insert_toc(toc_path: Path, entry: str) -> None:
    import yaml

    toc = yaml.safe_load(toc_path.read_text())
    chapters = [e for e in toc.get("chapters", []) or [] if e.get("file") != entry]
    toc["chapters"] = [{"file": entry}] + chapters
    toc_path.write_text(yaml.safe_dump(toc, sort_keys=False))


def write_pages(site: Path, results_dir: Path) -> Path:
    """Write ``site/book/paper_vs_book.md`` from the results in ``results_dir`` and list it
    in ``site/_toc.yml`` right after the introduction. Returns the page's path."""
    site = Path(site)
    page = site / "book" / f"{PAGE_NAME}.md"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render(load_chapters(site, results_dir)))
    if (site / "_toc.yml").is_file():
        _insert_toc(site / "_toc.yml", f"book/{PAGE_NAME}")
    return page
