"""The "Paper vs this book" page (recos_utils.pages): verdict rules, numbers read from the
results files (never typed), chapters not run, quick-mode labels, the staged table of
contents, and a Jupyter Book build of the page with warnings as errors."""
from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from recos_utils import pages
from recos_utils.pages import Stat, judge_close, judge_interval
from recos_utils.results import write_results

ROOT = Path(__file__).resolve().parent.parent


def acc(o, r, so=0.001, sr=0.01):
    return {"acc_original": o, "acc_reversed": r, "std_original": so, "std_reversed": sr}


def synthetic(quick: bool = False) -> dict[str, dict]:
    """Results files of all five chapters with the keys the chapter issues specify."""
    seeds = [0] if quick else [0, 1, 2]
    ablation = {"identity": acc(0.97, 0.12), "relu": acc(0.9891, 0.31), "abs": acc(0.985, 0.985),
                "tanh": acc(0.984, 0.2), "sigmoid": acc(0.98, 0.2), "leaky_relu": acc(0.988, 0.3)}
    for z, a in ((0.1, 0.9893), (0.3, 0.9897), (0.5, 0.9902), (0.7, 0.9885), (0.9, 0.95)):
        ablation[f"trelu_{z:.1f}"] = acc(a, 0.3)
    ch2 = {"quick": quick, "dataset": "mnist", "seeds": seeds,
           "baseline": {"acc_original": 0.9891, "acc_reversed": 0.3124,
                        "std_original": 0.0007, "std_reversed": 0.041},
           "negated": {"acc_original": 0.3124, "acc_reversed": 0.9891},
           "paired": {"original_only": {"acc_original": 0.9893, "acc_reversed": 0.41},
                      "both": {"acc_original": 0.9880, "acc_reversed": 0.9875}},
           "both_trained": {"acc_original": 0.9885, "acc_reversed": 0.9871},
           "ablation": ablation}
    ms = lambda m, s=0.002: {"mean": m, "std": s, "n": len(seeds)}  # noqa: E731
    nets = {}
    for net, (cc, cb, bb, bu) in {"two_layer": (0.989, 0.62, 0.962, 0.951),
                                  "one_layer": (0.982, 0.41, 0.901, 0.887)}.items():
        nets[net] = {"clean": {"clean": ms(cc), "background": ms(cb), "background_unseen": ms(cb)},
                     "background": {"clean": ms(cc - 0.01), "background": ms(bb),
                                    "background_unseen": ms(bu)}}
    nets["two_layer"]["params"], nets["one_layer"]["params"] = 61706, 60000
    ch4 = {"quick": quick, "seeds": seeds, **nets,
           "background_energy_share": {
               "two_layer": {"relu1": {"area": 0.7, "energy": 0.61, "ratio": 0.87},
                             "relu2": {"area": 0.4, "energy": 0.32, "ratio": 0.8}},
               "one_layer": {"relu1": {"area": 0.45, "energy": 0.63, "ratio": 1.4}}}}
    ch3 = {"quick": quick, "seeds": seeds,
           "kmeans_match": {"mean_cos_learned": 0.71, "mean_cos_random": 0.32,
                            "mean_cos_untrained": 0.35},
           "init": {"target_acc": 0.97,
                    "kmeans": {"final_acc": 0.988, "final_acc_std": 0.002, "n_seeds": len(seeds),
                               "steps_to_97": 410.0, "steps_to_97_std": 30.0,
                               "n_reached_97": len(seeds)},
                    "random": {"final_acc": 0.987, "final_acc_std": 0.002, "n_seeds": len(seeds),
                               "steps_to_97": 530.0, "steps_to_97_std": 40.0,
                               "n_reached_97": len(seeds)}},
           "sparsity": {"relu1": 0.52, "relu2": 0.71}}
    ch5 = {"quick": quick, "weights": "imagenet",
           "layers": {f"conv{i}": {"n_anchors": 64, "dim": 363, "mean_abs_cos": c,
                                   "mean_abs_cos_random": 0.05, "frac_zeroed": 0.5 + i / 20}
                      for i, c in ((1, 0.06), (2, 0.07), (3, 0.09), (4, 0.1), (5, 0.12))}}
    ch1 = {"quick": quick, "conv1_frac_zeroed": 0.577,
           "conv_relu_equals_recos": {"conv1_max_abs_err": 0.0, "conv2_max_abs_err": 1.4e-06}}
    return {"01_recos_model": ch1, "02_sign_confusion": ch2, "03_anchor_vectors": ch3,
            "04_one_vs_two_layers": ch4, "05_alexnet": ch5}


def make_site(tmp: Path, results: dict[str, dict], ran=None) -> tuple[Path, Path]:
    """A staged site with stub chapters (the ones in ``ran``) and their results files."""
    site, res = tmp / "site", tmp / "results"
    (site / "book").mkdir(parents=True)
    for name in ("_config.yml", "references.bib", "_toc.yml"):
        shutil.copy2(ROOT / name, site / name)
    for name in ("intro.md", "references.md"):
        shutil.copy2(ROOT / "book" / name, site / "book" / name)
    ran = list(results) if ran is None else ran
    toc = yaml.safe_load((site / "_toc.yml").read_text())
    toc["chapters"] = [e for e in toc["chapters"] if not Path(e["file"]).name[:2].isdigit()
                       or Path(e["file"]).name in ran]
    (site / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    for stem in ran:
        (site / "book" / f"{stem}.md").write_text(f"# Chapter {stem}\n\nStub.\n")
        write_results(res, stem, results[stem])
    return site, res


def page_text(tmp, results, ran=None) -> str:
    """The generated page, with no-break spaces read as spaces."""
    site, res = make_site(tmp, results, ran)
    return pages.write_pages(site, res).read_text().replace("\u00a0", " ")


def table_rows(md: str, heading: str) -> list[list[str]]:
    part = md.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in part.splitlines() if ln.startswith("| ") and not ln.startswith("|---")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", r)[1:-1]] for r in rows[1:]]


def claim_row(md: str, start: str) -> list[str]:
    hits = [r for r in table_rows(md, "## The paper's claims") if r[1].startswith(start)]
    assert len(hits) == 1, (start, hits)
    return hits[0]


# ------------------------------------------------------------------ verdict rules
def test_close_rule_boundaries():
    # within 0.3 pp: reproduced whatever the std
    assert judge_close(Stat(98.70, 0.0, 3), 98.94) == "reproduced"
    assert judge_close(Stat(98.64, 0.0, 3), 98.94) == "reproduced"
    assert judge_close(Stat(98.63, 0.0, 3), 98.94) == "not reproduced"
    # a larger spread widens the band to 2 std
    assert judge_close(Stat(98.40, 0.3, 3), 98.94) == "reproduced"
    assert judge_close(Stat(98.30, 0.3, 3), 98.94) == "not reproduced"
    # fractions and percent give the same verdicts
    assert judge_close(Stat(0.9864, 0.0, 3), 98.94) == judge_close(Stat(98.64, 0.0, 3), 98.94)
    # above the paper counts the same as below
    assert judge_close(Stat(99.24, 0.0, 3), 98.94) == "reproduced"
    assert judge_close(Stat(99.25, 0.0, 3), 98.94) == "not reproduced"


def test_about_30_rule_is_a_closed_interval_of_plus_minus_10pp():
    lo, hi = 30 - pages.TOL_ABOUT_PP, 30 + pages.TOL_ABOUT_PP
    for m, want in ((0.20, "reproduced"), (0.40, "reproduced"), (0.1999, "not reproduced"),
                    (0.4001, "not reproduced"), (0.30, "reproduced"), (0.05, "not reproduced")):
        assert judge_interval(Stat(m, 0.1, 3), lo, hi) == want, m


def test_clearly_greater_needs_more_than_two_std():
    assert pages.clearly_greater(Stat(96.0, 0.5), Stat(94.0, 0.5))
    assert not pages.clearly_greater(Stat(96.0, 1.5), Stat(94.0, 0.5))
    assert pages.clearly_greater(Stat(96.0, None, 1), Stat(95.9, None, 1))
    assert not pages.clearly_greater(Stat(95.0), Stat(95.0))


def test_stat_reads_numbers_dicts_and_per_seed_lists():
    assert pages.stat({"mean": 0.5, "std": 0.1, "n": 3}) == Stat(0.5, 0.1, 3)
    s = pages.stat([0.97, 0.98, 0.99])
    assert s.n == 3 and s.mean == pytest.approx(0.98) and s.std == pytest.approx(0.01)
    assert pages.stat(0.9, 0.01, 5) == Stat(0.9, 0.01, 5)
    assert pages.stat(None) is None and pages.stat("x") is None and pages.stat(True) is None
    assert pages.stat({"mean": None}) is None


def test_trelu_sweep_parses_names_and_counts_relu_as_zero():
    ab = {"relu": {"acc_original": 1}, "trelu_0.5": {"acc_original": 2},
          "trelu_0.1": {"acc_original": 3}, "TReLU(z=0.9)": {"acc_original": 4}, "tanh": {}}
    assert [z for z, _ in pages.trelu_sweep(ab)] == [0.0, 0.1, 0.5, 0.9]


# ------------------------------------------------------------------ the page
def test_numbers_on_the_page_come_from_the_results_files(tmp_path):
    res = synthetic()
    md = page_text(tmp_path / "a", res)
    row = claim_row(md, "LeNet-5 with ReLU")
    assert row[2] == "98.94 %" and row[3] == "98.91 ± 0.07 % (3 seeds)" and row[4] == "reproduced"
    row = claim_row(md, "The same network on the grey-scale")
    assert row[3] == "31.24 ± 4.10 % (3 seeds)" and row[4] == "reproduced"

    changed = copy.deepcopy(res)
    changed["02_sign_confusion"]["baseline"]["acc_original"] = 0.9712
    changed["02_sign_confusion"]["baseline"]["acc_reversed"] = 0.1033
    md2 = page_text(tmp_path / "b", changed)
    row = claim_row(md2, "LeNet-5 with ReLU")
    assert row[3] == "97.12 ± 0.07 % (3 seeds)" and row[4] == "not reproduced"
    row = claim_row(md2, "The same network on the grey-scale")
    assert row[3] == "10.33 ± 4.10 % (3 seeds)" and row[4] == "not reproduced"
    # the other rows did not move
    assert claim_row(md, "First-layer anchors initialised")[3] == \
        claim_row(md2, "First-layer anchors initialised")[3]
    # the paper's side stays put: only the book's numbers moved
    assert claim_row(md2, "LeNet-5 with ReLU")[2] == "98.94 %"


def test_qualitative_claims_follow_the_numbers(tmp_path):
    res = synthetic()
    md = page_text(tmp_path / "a", res)
    assert claim_row(md, "Negated")[4] == "no paper number; holds here"
    assert "(rest retrained on original digits)" in md
    paired = [r for r in table_rows(md, "## The paper's claims")
              if r[1].startswith("Each first-layer anchor")]
    assert [r[4] for r in paired] == ["no paper number; does not hold here",
                                      "no paper number; holds here"]
    assert claim_row(md, "Retrained on digits")[4] == "no paper number; does not hold here"
    assert claim_row(md, "Two layers beat one")[4] == "no paper number; holds here"
    t = claim_row(md, "Threshold ReLU")
    assert t[4] == "no paper number; holds here"
    assert t[3].startswith("best z = 0.5: 99.02 ± 0.10 %")
    assert claim_row(md, "First-layer anchors initialised")[4] == "no paper number; holds here"
    a = claim_row(md, "AlexNet")
    assert a[4] == "no paper number; holds here" and "conv1 1.20" in a[3] and "conv5 2.40" in a[3]

    bad = copy.deepcopy(res)
    bad["02_sign_confusion"]["negated"]["acc_reversed"] = 0.95     # 3.9 pp short of 98.91
    bad["02_sign_confusion"]["ablation"]["trelu_0.9"]["acc_original"] = 0.999
    bad["04_one_vs_two_layers"]["two_layer"]["background"]["background"]["mean"] = 0.985
    bad["04_one_vs_two_layers"]["one_layer"]["background"]["background"]["mean"] = 0.984
    bad["03_anchor_vectors"]["init"]["kmeans"]["steps_to_97"] = 600.0
    bad["05_alexnet"]["layers"]["conv5"]["mean_abs_cos"] = 0.04
    md2 = page_text(tmp_path / "b", bad)
    assert claim_row(md2, "Negated")[4] == "no paper number; does not hold here"
    assert claim_row(md2, "Threshold ReLU")[4] == "no paper number; does not hold here"
    assert claim_row(md2, "Threshold ReLU")[3].startswith("best z = 0.9: 99.90 ± 0.10 %")
    assert claim_row(md2, "Retrained on digits")[4] == "no paper number; holds here"
    assert claim_row(md2, "Two layers beat one")[4] == "no paper number; does not hold here"
    assert claim_row(md2, "First-layer anchors")[4] == "no paper number; does not hold here"
    assert claim_row(md2, "AlexNet")[4] == "no paper number; does not hold here"
    fallback = copy.deepcopy(res)
    fallback["05_alexnet"]["weights"] = "fallback:MiniAlexNet/fashion-mnist"
    a = claim_row(page_text(tmp_path / "c", fallback), "AlexNet")
    assert a[4] == ("no paper number; holds here (on a stand-in network, not AlexNet's "
                    "ImageNet weights)") and "(weights: fallback:MiniAlexNet/fashion-mnist)" in a[3]


def test_trelu_row_says_not_tested_when_no_threshold_network_trained(tmp_path):
    """Networks stuck at chance test nothing: the row must not say "does not hold"."""
    dead = copy.deepcopy(synthetic())
    for z in ("0.1", "0.3", "0.5", "0.7", "0.9"):
        dead["02_sign_confusion"]["ablation"][f"trelu_{z}"] = acc(0.1135, 0.1135)
    row = claim_row(page_text(tmp_path / "a", dead), "Threshold ReLU")
    assert row[4] == "not tested: no network with a threshold trained"
    assert "all 5 thresholds from 0.1 to 0.9 stayed at chance (at most 11.35 %)" in row[3]

    # Chapter 2's own verdict (None = not tested) wins even if a number looks trained
    said = copy.deepcopy(synthetic())
    said["02_sign_confusion"]["predictions_held"] = {
        "abs, max pool: blind to polarity": True,
        "TReLU sweep, max pool: accuracy peaks near z = 0.5, above ReLU (2017 note)": None}
    assert claim_row(page_text(tmp_path / "b", said), "Threshold ReLU")[4].startswith("not tested")
    said["02_sign_confusion"]["predictions_held"]["TReLU sweep, max pool: accuracy peaks near "
                                                  "z = 0.5, above ReLU (2017 note)"] = True
    assert claim_row(page_text(tmp_path / "c", said), "Threshold ReLU")[4] == \
        "no paper number; holds here"


def test_chapters_not_run_say_so_and_missing_keys_do_not_break_the_page(tmp_path):
    res = synthetic()
    md = page_text(tmp_path / "a", res, ran=["01_recos_model", "03_anchor_vectors"])
    for start in ("LeNet-5 with ReLU", "Negated", "Threshold ReLU", "Retrained on digits",
                  "AlexNet"):
        row = claim_row(md, start)
        assert row[3] == "not run" and row[4] == "not run", row
    assert claim_row(md, "First-layer anchors initialised")[4] == "no paper number; holds here"
    assert "02_sign_confusion" not in md  # no link to a page that is not built
    assert "Not part of this build: Chapter 2, Chapter 4, Chapter 5" in md

    sparse = {k: {"quick": False} for k in res}
    md2 = page_text(tmp_path / "b", sparse)
    for r in table_rows(md2, "## The paper's claims"):
        assert r[3] == "not recorded" and r[4] == "not recorded", r
    assert "No chapter with such results" in md2


def test_convergence_row_reads_steps_and_handles_seeds_that_never_reach_the_target(tmp_path):
    res = synthetic()
    md = page_text(tmp_path / "a", res)
    row = claim_row(md, "First-layer anchors initialised")
    assert row[3] == "steps to 97 %: k-means 410 ± 30, random 530 ± 40 (3 seeds)"
    res["03_anchor_vectors"]["init"]["kmeans"].update(steps_to_97=None, n_reached_97=2)
    row = claim_row(page_text(tmp_path / "b", res), "First-layer anchors initialised")
    assert "k-means not reached by every seed (2 of 3)" in row[3]
    assert row[4] == "no paper number; does not hold here"
    res["03_anchor_vectors"]["init"]["random"].update(steps_to_97=None, n_reached_97=0)
    row = claim_row(page_text(tmp_path / "c", res), "First-layer anchors initialised")
    assert row[4] == "no paper number; not enough data to judge"
    # on Fashion-MNIST the chapter's own target replaces 97 %
    res = synthetic()
    r3 = res["03_anchor_vectors"]
    r3.update(dataset="fashion-mnist")
    r3["init"]["target_acc"] = 0.85
    for arm, v in (("kmeans", 120.0), ("random", 90.0)):
        r3["init"][arm].update(steps_to_target=v, steps_to_target_std=5.0, n_reached_target=3)
    row = claim_row(page_text(tmp_path / "d", res), "First-layer anchors initialised")
    assert row[3].startswith("steps to 85 %: k-means 120 ± 5")
    assert row[4] == "no paper number; does not hold here"


def test_quick_runs_are_labelled_and_other_datasets_are_not_compared(tmp_path):
    res = synthetic(quick=True)
    res["02_sign_confusion"]["dataset"] = "fashion-mnist"
    md = page_text(tmp_path, res)
    assert ":::{admonition} Quick run: not faithful\n:class: warning" in md
    row = claim_row(md, "LeNet-5 with ReLU")
    assert row[3] == "98.91 % (1 seed)"
    assert row[4].startswith("not comparable") and row[4].endswith("(quick run)")
    assert "(quick run)" in md.split("## What the book adds")[1]
    assert "{cite:p}`xiao2017fashion`" in md


def test_full_runs_carry_no_quick_label(tmp_path):
    md = page_text(tmp_path, synthetic(quick=False))
    assert "quick run" not in md.split("## The paper's claims")[1].lower()
    assert "Quick run" not in md


def test_mode_is_read_from_the_executed_notebook_when_results_do_not_say(tmp_path):
    res = synthetic()
    del res["02_sign_confusion"]["quick"]
    site, resdir = make_site(tmp_path, res, ran=["02_sign_confusion"])
    (site / "book" / "02_sign_confusion.md").unlink()
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["parameters"]}, "outputs": [],
                     "source": ["QUICK = False  # x\n", "N_SEEDS = 3  # y\n"]}],
          "metadata": {"papermill": {"parameters": {"QUICK": True}}}, "nbformat": 4,
          "nbformat_minor": 5}
    (site / "book" / "02_sign_confusion.ipynb").write_text(json.dumps(nb))
    ch = pages.load_chapters(site, resdir)["02"]
    assert ch.ran and ch.quick is True and ch.params["N_SEEDS"] == 3


def test_additions_are_listed_apart_and_come_from_the_files(tmp_path):
    res = synthetic()
    md = page_text(tmp_path / "a", res)
    adds = table_rows(md, "## What the book adds")
    text = " ".join(" ".join(r) for r in adds)
    assert "learned anchors 0.71, untrained anchors 0.35, random anchors 0.32" in text
    assert "95.10 ± 0.20 % (3 seeds)" in text          # two_layer background_unseen
    assert "98.80 ± 0.20 % vs 98.70 ± 0.20 % (3 seeds)" in text  # k-means vs random final acc
    assert "LeNet-5 61,706, one-layer net 60,000" in text
    assert ("LeNet-5: relu1 61 % (area 70 %), relu2 32 % (area 40 %); "
            "one-layer net: relu1 63 %") in text
    res["03_anchor_vectors"]["kmeans_match"]["mean_cos_learned"] = 0.55
    md2 = page_text(tmp_path / "b", res)
    assert "learned anchors 0.55" in md2 and "learned anchors 0.71" not in md2
    claims_part = md.split("## The paper's claims")[1].split("## What the book adds")[0]
    assert "0.71" not in claims_part
    abl = table_rows(md, "### Activations and sign confusion")
    assert ["`abs`", "98.50 ± 0.10 %", "98.50 ± 1.00 %"] in abl
    names = [r[0] for r in abl]
    assert names[-6:] == ["`relu`"] + [f"`trelu_{z}`" for z in ("0.1", "0.3", "0.5", "0.7", "0.9")]


def test_the_page_goes_right_after_the_intro_in_the_staged_toc_once(tmp_path):
    site, res = make_site(tmp_path, synthetic())
    pages.write_pages(site, res)
    pages.write_pages(site, res)  # idempotent
    toc = yaml.safe_load((site / "_toc.yml").read_text())
    files = [e["file"] for e in toc["chapters"]]
    assert toc["root"] == "book/intro" and files[0] == "book/paper_vs_book"
    assert files.count("book/paper_vs_book") == 1
    repo_toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    assert "book/paper_vs_book" not in [e["file"] for e in repo_toc["chapters"]]


def test_every_cited_key_is_in_the_bibliography(tmp_path):
    md = page_text(tmp_path, synthetic(quick=True))
    bib = (ROOT / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    cited = set(re.findall(r"\{cite:[pt]\}`([^`]+)`", md))
    assert cited and cited <= keys, cited - keys
    for k in ("kuo2016understanding", "kuo2017guided", "kuo2018saak", "lecun1998gradient",
              "krizhevsky2012imagenet", "lecun1998mnist", "xiao2017fashion",
              "larochelle2007empirical", "kuo2019interpretable"):
        assert k in keys


def test_the_page_builds_without_warnings(tmp_path):
    """Jupyter Book builds the generated page (all chapters' rows filled, quick banner,
    a chapter not run) with warnings as errors."""
    res = synthetic(quick=True)
    site, resdir = make_site(tmp_path, res, ran=[k for k in res if k != "05_alexnet"])
    shutil.copytree(ROOT / "book" / "_static", site / "book" / "_static")
    pages.write_pages(site, resdir)
    jb = Path(sys.executable).parent / "jupyter-book"
    proc = subprocess.run([str(jb) if jb.exists() else "jupyter-book", "build", str(site),
                           "--builder", "html", "-W", "-n", "--keep-going"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    html = (site / "_build" / "html" / "book" / "paper_vs_book.html").read_text()
    assert "98.94 %" in html and "not run" in html and "Quick run" in html
    assert "{cite" not in html and "{doc}" not in html
    assert "Kuo" in html  # citations resolved
