"""recos-book run: chapter selection, failures named, warnings fatal, Ctrl-C handled."""
import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from recos_utils import cli

PARAMS = 'QUICK = False  # quick\nDEVICE = "auto"  # device\nSEED = 0  # seed\n' \
         'DATA_DIR = None  # data\nRESULTS_DIR = None  # results\n'


def make_project(root: Path, chapters: dict[str, str], intro: str = "# Intro\n") -> Path:
    (root / "book").mkdir(parents=True)
    (root / "_config.yml").write_text("title: t\nexecute:\n  execute_notebooks: 'off'\n"
                                      "only_build_toc_files: true\n")
    toc = "format: jb-book\nroot: book/intro\nchapters:\n" + "".join(
        f"  - file: book/{stem}\n" for stem in chapters)
    (root / "_toc.yml").write_text(toc)
    (root / "book" / "intro.md").write_text(intro)
    for stem, body in chapters.items():
        nb = nbformat.v4.new_notebook()
        p = nbformat.v4.new_code_cell(PARAMS)
        p.metadata["tags"] = ["parameters"]
        nb.cells = [nbformat.v4.new_markdown_cell(f"# {stem}"), p, nbformat.v4.new_code_cell(body)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nbformat.write(nb, root / "book" / f"{stem}.ipynb")
    return root


def run_cli(root, *args, **kw):
    return subprocess.run([sys.executable, "-m", "recos_utils.cli", "run", "--mode", "quick",
                           "--device", "cpu", "--out", str(root / "_out"), *args], cwd=root,
                          capture_output=True, text=True, **kw)


def test_select_by_number_stem_or_file():
    chs = [Path("book/01_a.ipynb"), Path("book/02_b.ipynb"), Path("book/10_c.ipynb")]
    assert cli.select(chs, None) == chs
    assert cli.select(chs, ["2", "01_a", "book/10_c.ipynb"]) == chs
    with pytest.raises(cli.BookError, match="--only '07' matches no chapter; chapters are: 01_a, 02_b"):
        cli.select(chs, ["07"])


def test_a_failing_cell_names_the_chapter_and_the_cell(tmp_path):
    root = make_project(tmp_path, {"01_ok": "x = 1", "02_bad": "raise ValueError('boom')"})
    proc = run_cli(root)
    assert proc.returncode == 1
    assert "chapter 02_bad failed in cell 2 of 02_bad.ipynb" in proc.stderr
    assert "raise ValueError('boom')" in proc.stderr and "ValueError: boom" in proc.stderr
    assert (root / "_out" / "executed" / "02_bad.ipynb").is_file()  # with the traceback
    assert not (root / "_out" / "html").exists()


def test_a_build_warning_fails_the_build(tmp_path):
    root = make_project(tmp_path, {"01_ok": "print('hi')"},
                        intro="# Intro\n\nSee {ref}`a-label-that-does-not-exist`.\n")
    proc = run_cli(root)
    assert proc.returncode == 1
    assert "book build failed" in proc.stderr and "a-label-that-does-not-exist" in proc.stderr


def test_success_builds_html_and_hides_injected_parameters(tmp_path):
    root = make_project(tmp_path, {"01_ok": "print('QUICK is', QUICK)"})
    proc = run_cli(root)
    assert proc.returncode == 0, proc.stderr
    assert "index.html" in proc.stdout
    html = (root / "_out" / "html" / "book" / "01_ok.html").read_text()
    text = re.sub(r"<[^>]+>", "", html)
    assert "QUICK is True" in text                    # the injected value was used ...
    assert text.count("QUICK = False") == 1           # ... the parameters cell shows ...
    assert "QUICK = True" not in text                 # ... the injected one does not
    assert json.loads((root / "_out" / "timings.json").read_text())["mode"] == "quick"


def test_ctrl_c_stops_cleanly_and_says_what_finished(tmp_path):
    started = tmp_path / "slow_cell_started"
    root = make_project(tmp_path, {"01_fast": "x = 1", "02_slow": (
        f"import time; open({str(started)!r}, 'w').close(); time.sleep(120)")})
    proc = subprocess.Popen([sys.executable, "-m", "recos_utils.cli", "run", "--mode", "quick",
                             "--device", "cpu", "--out", str(root / "_out"), "--no-build"],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a shell's background job (e.g. CI started with `&`) ignores SIGINT
                            # and children inherit that; restore it as a terminal user has it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    seen = ""
    while time.time() < deadline:
        line = proc.stdout.readline()
        seen += line
        if "executing 02_slow" in line:
            break
    # interrupt while the slow cell runs, not while its kernel is still starting (a loaded
    # machine can take seconds to start one)
    while time.time() < deadline and not started.exists():
        time.sleep(0.2)
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 130, (seen + out, err)
    assert "interrupted" in err and "Finished: 01_fast" in err and "not finished: 02_slow" in err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu_is_refused_before_any_work(tmp_path):
    root = make_project(tmp_path, {"01_ok": "x = 1"})
    proc = subprocess.run([sys.executable, "-m", "recos_utils.cli", "run", "--device", "cuda",
                           "--out", str(root / "_out")], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 2 and "no CUDA GPU" in proc.stderr
    assert not (root / "_out" / "executed").exists()
