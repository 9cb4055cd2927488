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

from recos_utils.runner import cli

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
    return subprocess.run([sys.executable, "-m", "recos_utils.runner.cli", "run", "--mode", "quick",
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
    proc = subprocess.Popen([sys.executable, "-m", "recos_utils.runner.cli", "run", "--mode", "quick",
                             "--device", "cpu", "--out", str(root / "_out"), "--no-build"],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a shell's background job (e.g. CI started with `&`) ignores SIGINT
                            # and children inherit that; restore it as a terminal user has it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    seen = ""
    while time.time() < deadline:      # 02_slow started, 01_fast finished (the two may run
        line = proc.stdout.readline()  # side by side)
        seen += line
        if "executing 02_slow" in seen and "01_fast done in" in seen:
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
    proc = subprocess.run([sys.executable, "-m", "recos_utils.runner.cli", "run", "--device", "cuda",
                           "--out", str(root / "_out")], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 2 and "no CUDA GPU" in proc.stderr
    assert not (root / "_out" / "executed").exists()


# ------------------------------------------------------------ incremental runs (issue 17)
def _state(root):
    return json.loads((root / "_out" / "run_state.json").read_text())


def test_a_second_run_with_nothing_changed_reuses_chapters_and_build(tmp_path):
    root = make_project(tmp_path, {"01_a": "x = 1", "02_b": "y = 2"})
    assert run_cli(root).returncode == 0
    ex = root / "_out" / "executed" / "02_b.ipynb"
    before, index = ex.read_bytes(), (root / "_out" / "html" / "index.html").stat().st_mtime_ns
    proc = run_cli(root)
    assert proc.returncode == 0, proc.stderr
    assert "01_a: unchanged, reused" in proc.stdout and "02_b: unchanged, reused" in proc.stdout
    assert "book is unchanged since its last build: reused" in proc.stdout
    assert ex.read_bytes() == before
    assert (root / "_out" / "html" / "index.html").stat().st_mtime_ns == index
    # a changed notebook runs again, and only it; --force runs everything
    nb = nbformat.read(root / "book" / "02_b.ipynb", as_version=4)
    nb.cells[2].source = "y = 3"
    nbformat.write(nb, root / "book" / "02_b.ipynb")
    proc = run_cli(root, "--no-build")
    assert "01_a: unchanged, reused" in proc.stdout and "executing 02_b" in proc.stdout
    assert "notebook, parameters, data, code or torch versions changed" in proc.stdout
    proc = run_cli(root, "--force", "--no-build")
    assert "executing 01_a" in proc.stdout and "executing 02_b" in proc.stdout


def test_only_keeps_the_book_whole_and_pages_say_their_mode(tmp_path):
    root = make_project(tmp_path, {"01_a": "x = 1", "02_b": "y = 2"})
    assert run_cli(root).returncode == 0
    proc = subprocess.run([sys.executable, "-m", "recos_utils.runner.cli", "run", "--mode", "full",
                           "--device", "cpu", "--out", str(root / "_out"), "--only", "01"],
                          cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    html = root / "_out" / "html" / "book"
    assert (html / "01_a.html").is_file() and (html / "02_b.html").is_file()
    assert "executed in full mode" in re.sub(r"<[^>]+>", "", (html / "01_a.html").read_text())
    assert "executed in quick mode" in re.sub(r"<[^>]+>", "", (html / "02_b.html").read_text())
    front = re.sub(r"<[^>]+>", "", (html / "intro.html").read_text())
    assert "different modes" in front and "1 from full runs, 1 from quick runs" in front
    assert {k: v["mode"] for k, v in _state(root)["chapters"].items()} == {
        "01_a": "full", "02_b": "quick"}


def test_a_half_written_notebook_is_never_shown_as_finished(tmp_path):
    root = make_project(tmp_path, {"01_a": "x = 1", "02_b": "y = 2"})
    assert run_cli(root).returncode == 0
    # a stopped run: the notebook is there, but its run never finished (no record)
    state = _state(root)
    del state["chapters"]["02_b"]
    (root / "_out" / "run_state.json").write_text(json.dumps(state))
    proc = run_cli(root, "--only", "01")
    assert proc.returncode == 0, proc.stderr
    assert "02_b.ipynb is incomplete" in proc.stderr and "left out of the book" in proc.stderr
    assert not (root / "_out" / "html" / "book" / "02_b.html").exists()
    proc = run_cli(root, "--only", "02", "--no-build")         # selected: it runs again
    assert "executing 02_b" in proc.stdout and "incomplete" in proc.stdout


def test_a_corrupt_run_state_is_ignored_with_a_warning(tmp_path):
    root = make_project(tmp_path, {"01_a": "x = 1"})
    assert run_cli(root, "--no-build").returncode == 0
    (root / "_out" / "run_state.json").write_text("{not json")
    proc = run_cli(root, "--no-build")
    assert proc.returncode == 0 and "unreadable" in proc.stderr and "executing 01_a" in proc.stdout
    assert "01_a" in _state(root)["chapters"]


def test_unknown_chapter_is_one_clear_error(tmp_path):
    root = make_project(tmp_path, {"01_a": "x = 1"})
    proc = run_cli(root, "--only", "07")
    assert proc.returncode == 2 and "--only '07' matches no chapter; chapters are: 01_a" in proc.stderr


def test_progress_names_chapter_cell_and_training_in_a_log(tmp_path):
    root = make_project(tmp_path, {"01_a": (
        "import time\nfrom recos_utils.core.progress import report\n"
        "report(1, 4, 'training 4 models', 2.0)\ntime.sleep(1.5)")})
    proc = run_cli(root, "--no-build", env=dict(os.environ, RECOS_PROGRESS_EVERY="0", CI="true"))
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"01_a: cell \d of 4, 0:0\d elapsed", proc.stderr), proc.stderr
    assert "training 1 of 4 models, about 0:06 left" in proc.stderr


def test_the_executed_chapter_records_its_training_time(tmp_path):
    # two train_all calls finish (done == total) after 2.5 s and 1.25 s; a report of a call
    # still running does not count
    root = make_project(tmp_path, {"01_a": (
        "from recos_utils.core.progress import report\n"
        "report(1, 2, 'training', 1.0)\nreport(2, 2, 'training', 2.5)\n"
        "report(3, 3, 'training', 1.25)")})
    proc = run_cli(root, "--no-build")
    assert proc.returncode == 0, proc.stderr
    nb = nbformat.read(root / "_out" / "executed" / "01_a.ipynb", as_version=4)
    assert nb.metadata["recos_book"]["training_s"] == 3.75


def test_time_left_follows_the_share_of_the_work_not_the_count():
    from recos_utils.runner.run_progress import ChapterProgress

    prog = ChapterProgress("02_x", 10, tty=False)
    prog.t0 = time.monotonic()
    # a costly stack of 9 first: 9 of 72 models but 25 % of the work after 60 s -> 3:00 left
    prog.train = {"done": 9, "total": 72, "elapsed": 60.0, "share": 0.25}
    assert prog.status().endswith("training 9 of 72 models, about 3:00 left")
    prog.train = {"done": 9, "total": 72, "elapsed": 60.0}          # no share: by the count
    assert prog.status().endswith("about 7:00 left")


def test_the_kernels_own_log_stays_out_of_the_run_output(tmp_path):
    # ipykernel warns "running over TCP without encryption" at every start, and logs an
    # error when jupyter_client's shutdown SIGINT lands mid-message; a cell's own output and
    # errors still reach the notebook and the run.
    root = make_project(tmp_path, {"01_a": (
        "import sys\nget_ipython().kernel.log.error('kernel-log-marker')\n"
        "print('cell-stderr-marker', file=sys.stderr)")})
    proc = run_cli(root, "--no-build")
    assert proc.returncode == 0, proc.stderr
    assert "IPKernelApp" not in proc.stderr and "kernel-log-marker" not in proc.stderr
    executed = (root / "_out" / "executed" / "01_a.ipynb").read_text()
    assert "cell-stderr-marker" in executed


def test_repository_buttons_only_with_a_configured_repository(tmp_path, monkeypatch):
    from recos_utils.runner import book_site

    base = {"title": "t", "repository": {"url": "https://example.invalid/x"},
            "launch_buttons": {"binderhub_url": "b"}, "html": {"use_repository_button": True}}
    off = book_site.repository_config(base, None)
    assert "repository" not in off and "launch_buttons" not in off
    assert off["html"]["use_repository_button"] is False
    on = book_site.repository_config(base, "https://github.com/example/recos")
    assert on["repository"]["url"] == "https://github.com/example/recos"
    assert on["html"]["use_repository_button"] is True and "binderhub_url" in on["launch_buttons"]
    root = make_project(tmp_path, {"01_a": "x = 1"})
    monkeypatch.setenv(book_site.REPOSITORY_ENV, "https://github.com/example/recos")
    assert run_cli(root).returncode == 0
    page = (root / "_out" / "html" / "book" / "intro.html").read_text()
    assert "https://github.com/example/recos" in page
