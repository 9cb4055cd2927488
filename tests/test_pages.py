"""The "Paper vs this book" page (recos_utils.runner.pages) and the claims registry behind it
(recos_utils.core.claims): every claim is judged once, by its chapter; the page renders the
chapter's verdicts word for word, from the quick book's real results files."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from recos_utils.core import claims

from recos_utils.runner import pages

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------- the rules, alone
def test_close_rule_is_max_of_the_tolerance_and_two_std():
    base = dict(acc_std=0.0005, acc_reversed=0.3, acc_reversed_std=0.0, n=3)
    j = lambda acc, std=0.0005: claims.judge("lenet5_accuracy", dict(base, acc=acc, acc_std=std))
    assert j(0.9894 + 0.0029)["verdict"] == "reproduced"
    assert j(0.9894 - 0.0031)["verdict"] == "not reproduced"
    assert j(0.9894 - 0.0060, std=0.0031)["verdict"] == "reproduced"   # 2 std = 0.62 pp
    assert j(0.99, std=0.0)["holds"] is True


def test_about_30_is_a_closed_interval_of_plus_minus_10_pp():
    j = lambda r: claims.judge("lenet5_reversed", dict(acc=0.99, acc_std=0.0, acc_reversed=r,
                                                        acc_reversed_std=0.0, n=1))["holds"]
    assert j(0.2) and j(0.4) and j(0.35) and not j(0.1999) and not j(0.4001)


def test_clearly_greater_uses_the_standard_error_of_the_difference():
    # se = sqrt(0.01^2/4 + 0.01^2/4) = 0.00707; 2 se = 0.01414
    assert claims.clearly_greater(0.915, 0.01, 4, 0.90, 0.01, 4)
    assert not claims.clearly_greater(0.913, 0.01, 4, 0.90, 0.01, 4)
    assert claims.clearly_greater(0.9001, 0.0, 1, 0.9, 0.0, 1)


def test_trelu_rule_ignores_thresholds_that_did_not_train():
    n = {"z": [0.0, 0.1, 0.5], "acc": [0.99, 0.95, 0.11], "train_acc": [0.99, 0.95, 0.11], "n": 3}
    out = claims.judge("trelu_peak", n)
    assert out["holds"] is False and "z = 0.5 to 0.5 did not train" in out["book"]
    n = dict(n, acc=[0.98, 0.97, 0.99], train_acc=[0.98, 0.97, 0.99])
    assert claims.judge("trelu_peak", n)["verdict"] == "holds"
    n = dict(n, train_acc=[0.99, 0.1, 0.1])
    assert claims.judge("trelu_peak", n)["verdict"] == "not tested"


def test_feedforward_claims_are_exact_to_the_named_tolerance():
    tol = claims.EXACT_TOL
    saak = lambda err, swap: {"saak": {"reconstruction_max_abs_err": err, "swap_max_abs_err": swap}}
    ex = claims.CLAIMS["saak_invertible"].extract
    assert claims.judge("saak_invertible", ex(saak(tol, 0.0)))["verdict"] == "holds"
    assert claims.judge("saak_invertible", ex(saak(2 * tol, 0.0)))["verdict"] == "does not hold"
    assert claims.judge("saak_pairs", ex(saak(0.0, 1e-3)))["holds"] is False
    sb = lambda a, b: claims.CLAIMS["saab_bias"].extract({"saab": {"min_response": {
        "conv1": a, "conv2": b}}})
    assert claims.judge("saab_bias", sb(0.0, 0.3))["holds"] is True
    out = claims.judge("saab_bias", sb(0.2, -1e-6))
    assert out["holds"] is False and "conv2 min -1e-06" in out["book"]


def test_verdict_marks_quick_runs_and_other_datasets():
    n = dict(acc=0.99, acc_std=0.0, acc_reversed=0.3, acc_reversed_std=0.0, n=1)
    assert claims.judge("lenet5_accuracy", n, quick=True)["verdict"] == "reproduced (quick run)"
    v = claims.judge("lenet5_accuracy", n, dataset="fashion-mnist")
    assert v["holds"] is None and v["verdict"].startswith("not comparable")
    # claims without a paper number are judged on any dataset
    k = {"kmeans_steps": 100, "random_steps": 200, "kmeans_steps_per_seed": [100, 100],
         "random_steps_per_seed": [200, 200], "target": 0.8, "n": 2}
    assert claims.judge("kmeans_faster", k, dataset="fashion-mnist")["verdict"] == "holds"


def test_every_claim_cites_a_key_of_the_bibliography():
    keys = set(re.findall(r"@\w+\{([^,]+),", (ROOT / "references.bib").read_text()))
    assert {c.cite for c in claims.CLAIMS.values()} <= keys


# --------------------------------------------------------------- the page, from results
def make_site(tmp: Path, results_dir: Path | None, ran: list[str]) -> Path:
    """A staged site with stub chapters for ``ran`` (their results copied from results_dir)."""
    site = tmp / "site"
    (site / "book").mkdir(parents=True)
    for name in ("_config.yml", "references.bib", "_toc.yml"):
        shutil.copy2(ROOT / name, site / name)
    for name in ("intro.md", "references.md"):
        shutil.copy2(ROOT / "book" / name, site / "book" / name)
    shutil.copytree(ROOT / "book" / "_static", site / "book" / "_static")
    toc = yaml.safe_load((site / "_toc.yml").read_text())
    toc["chapters"] = [e for e in toc["chapters"] if (not Path(e["file"]).name[:2].isdigit()
                       or Path(e["file"]).name in ran) and e["file"] != "book/explore"]
    (site / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    res = tmp / "results"
    res.mkdir()
    for stem in ran:
        (site / "book" / f"{stem}.md").write_text(f"# Chapter {stem}\n\nStub.\n")
        if results_dir is not None:
            shutil.copy2(results_dir / f"{stem}.json", res / f"{stem}.json")
    return site


def test_chapters_not_run_say_so_on_every_row(tmp_path):
    site = make_site(tmp_path, None, [])
    md = pages.write_pages(site, tmp_path / "results").read_text()
    rows = pages.claim_rows(pages.load_chapters(site, tmp_path / "results"))
    assert len(rows) == len(claims.CLAIMS)
    assert all(r["verdict"] == pages.NOT_RUN for r in rows)
    assert pages.NOT_RECORDED not in md and "No chapter with such results" in md


def test_a_chapter_that_ran_without_verdicts_reads_not_recorded(tmp_path):
    site = make_site(tmp_path, None, ["03_anchor_vectors"])
    (tmp_path / "results" / "03_anchor_vectors.json").write_text('{"quick": true}')
    rows = pages.claim_rows(pages.load_chapters(site, tmp_path / "results"))
    assert [r["verdict"] for r in rows if r["id"] == "kmeans_faster"] == [pages.NOT_RECORDED]


def test_the_page_goes_right_after_the_intro_in_the_staged_toc_once(tmp_path):
    site = make_site(tmp_path, None, [])
    pages.write_pages(site, tmp_path / "results")
    pages.write_pages(site, tmp_path / "results")  # idempotent
    files = [e["file"] for e in yaml.safe_load((site / "_toc.yml").read_text())["chapters"]]
    assert files[0] == "book/paper_vs_book" and files.count("book/paper_vs_book") == 1


# ------------------------------------------------------- the real quick book's results
def _glued(executed: Path) -> dict[str, str]:
    """The text glued by an executed notebook: name -> value (myst-nb's glue outputs)."""
    out = {}
    for cell in json.loads(executed.read_text())["cells"]:
        for o in cell.get("outputs", []):
            book = o.get("metadata", {}).get("scrapbook", {})
            key = book.get("mime_prefix", "") + "text/plain"
            if book.get("name") and key in o.get("data", {}):
                out[book["name"]] = o["data"][key]
    return out


def test_every_chapter_records_every_claim_with_the_registry_rule(quick_book):
    for num, stem in pages.CHAPTERS.items():
        res = json.loads((quick_book / "results" / f"{stem}.json").read_text())
        mine = claims.chapter_claims(num)
        assert set(res.get("claims", {})) == {c.id for c in mine}, stem
        for c in mine:
            rec = res["claims"][c.id]
            assert rec["rule"] == c.rule
            # the recorded verdict follows from the recorded numbers by the one rule
            again = claims.judge(c.id, rec["numbers"], quick=res["quick"],
                                 dataset=res.get("dataset", "mnist"))
            assert again["verdict"] == rec["verdict"] and rec["verdict"].endswith("(quick run)")


def test_chapter_prose_and_front_page_show_the_same_verdict(quick_book):
    md = (quick_book / "site" / "book" / "paper_vs_book.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("| ") and "**" in line]
    for num, stem in pages.CHAPTERS.items():
        glued = _glued(quick_book / "executed" / f"{stem}.ipynb")
        for c in claims.chapter_claims(num):
            verdict = glued[f"claim_{c.id}"].strip("'\"")
            row = [line for line in table if line.split(" | ")[1].startswith(pages._cell(c.text))]
            assert len(row) == 1, c.id
            assert f"**{pages._cell(verdict)}**" in row[0], (c.id, verdict, row[0])


def test_front_page_from_real_results_drops_no_row(quick_book, tmp_path):
    ch = pages.load_chapters(quick_book / "site", quick_book / "results")
    md = pages.render(ch)
    assert pages.NOT_RECORDED not in md and pages.NOT_RUN not in md
    adds = pages.additions(ch)
    assert len(adds) == len(pages.ADDITIONS)
    for c, what, value in adds:
        assert f"| {pages._cell(what)} | {pages._cell(value)} |" in md
    tab = json.loads((quick_book / "results" / "02_sign_confusion.json").read_text())["ablation"]
    for name in tab:
        assert f"| `{name}` |" in md


def test_the_rendered_front_page_has_no_unresolved_roles(quick_book):
    html = (quick_book / "html" / "book" / "paper_vs_book.html").read_text()
    assert "{cite" not in html and "{doc}" not in html and "Kuo" in html
    assert "Quick run" in html


def test_the_page_builds_without_warnings_with_a_chapter_not_run(tmp_path, quick_book):
    ran = [s for s in pages.CHAPTERS.values() if s != "05_alexnet"]
    site = make_site(tmp_path, quick_book / "results", ran)
    pages.write_pages(site, tmp_path / "results")
    jb = Path(sys.executable).parent / "jupyter-book"
    proc = subprocess.run([str(jb) if jb.exists() else "jupyter-book", "build", str(site),
                           "--builder", "html", "-W", "-n", "--keep-going"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    html = (site / "_build" / "html" / "book" / "paper_vs_book.html").read_text()
    assert "not run" in html and "98.94%" in html
