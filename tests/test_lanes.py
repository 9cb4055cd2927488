"""Chapters side by side (``recos_utils.runner.lanes``, ``recos-book run --jobs``; issue 25).

The jobs really overlap (each waits for the other's mark, which one-after-another could
never give), at most N run at once, results come back to the parent, a failure stops new
jobs but lets the running ones finish, and a run with N = 1 stays in this process.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recos_utils.runner import lanes
from test_cli import make_project, run_cli


def meet(me: str, other: str, folder: str, timeout: float = 60.0) -> str:
    """Leave my mark, then wait for the other job's mark (it must be running meanwhile)."""
    Path(folder, me).touch()
    end = time.monotonic() + timeout
    while not Path(folder, other).exists():
        if time.monotonic() > end:
            raise TimeoutError(f"{other} never ran beside {me}")
        time.sleep(0.05)
    return f"{me} met {other} in process {os.getpid()}"


def count_running(me: str, folder: str) -> int:
    """How many jobs hold a mark while this one runs (marks are removed at the end)."""
    mark = Path(folder, me)
    mark.touch()
    time.sleep(0.6)
    n = len(list(Path(folder).iterdir()))
    mark.unlink()
    return n


def fail(message: str) -> None:
    raise ValueError(message)


def record(events):
    return (lambda key: events.append(("start", key)),
            lambda key, value: events.append(("done", key, value)))


def test_two_jobs_run_side_by_side_in_their_own_processes(tmp_path):
    events = []
    jobs = [("a", meet, ("a", "b", str(tmp_path)), {}), ("b", meet, ("b", "a", str(tmp_path)), {})]
    lanes.run_side_by_side(jobs, 2, *record(events))
    done = {e[1]: e[2] for e in events if e[0] == "done"}
    assert done["a"].startswith("a met b") and done["b"].startswith("b met a")
    pids = {d.rsplit(" ", 1)[1] for d in done.values()}
    assert len(pids) == 2 and str(os.getpid()) not in pids
    assert [e[:2] for e in events[:2]] == [("start", "a"), ("start", "b")]


def test_never_more_than_n_at_once(tmp_path):
    events = []
    jobs = [(k, count_running, (k, str(tmp_path)), {}) for k in "abcde"]
    lanes.run_side_by_side(jobs, 2, *record(events))
    counts = [e[2] for e in events if e[0] == "done"]
    assert len(counts) == 5 and max(counts) <= 2          # never three (overlap: test above)


def test_one_lane_runs_here_in_order(tmp_path):
    events = []
    jobs = [(k, os.getpid, (), {}) for k in "ab"]
    lanes.run_side_by_side(jobs, 1, *record(events))
    assert events == [("start", "a"), ("done", "a", os.getpid()),
                      ("start", "b"), ("done", "b", os.getpid())]


def test_a_failure_lets_the_running_job_finish_and_starts_no_new_one(tmp_path):
    events = []
    jobs = [("bad", fail, ("boom",), {}), ("slow", time.sleep, (2.0,), {}),
            ("never", os.getpid, (), {})]
    with pytest.raises(ValueError, match="boom"):
        lanes.run_side_by_side(jobs, 2, *record(events))
    assert ("done", "slow", None) in events
    assert ("start", "never") not in events


def test_a_process_that_dies_is_named_with_its_exit_code():
    events = []
    with pytest.raises(lanes.LaneError, match=r"executing dies ended without a result "
                                              r"\(exit code 3"):
        lanes.run_side_by_side([("dies", os._exit, (3,), {}), ("ok", os.getpid, (), {})],
                               2, *record(events))
    assert ("done", "dies") not in [e[:2] for e in events]


def test_the_lane_number_is_passed_when_asked(tmp_path):
    events = []
    jobs = [(k, dict, (), {"key": k}) for k in "abc"]
    lanes.run_side_by_side(jobs, 2, *record(events), lane_arg="lane")
    lanes_used = {e[1]: e[2]["lane"] for e in events if e[0] == "done"}
    assert set(lanes_used.values()) <= {0, 1} and lanes_used["a"] != lanes_used["b"]


def test_recos_book_runs_chapters_side_by_side_and_names_each_finish(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    body = ("from pathlib import Path; import time\n"
            "Path({m!r}, {me!r}).touch(); t = time.time()\n"
            "while not Path({m!r}, {other!r}).exists():\n"
            "    assert time.time() - t < 60, 'the other chapter never ran beside this one'\n"
            "    time.sleep(0.05)\n")
    root = make_project(tmp_path / "p", {
        "01_a": body.format(m=str(marks), me="a", other="b"),
        "02_b": body.format(m=str(marks), me="b", other="a")})
    proc = run_cli(root, "--jobs", "2", "--no-build")
    assert proc.returncode == 0, proc.stderr
    assert "2 chapters to execute, 2 at a time" in proc.stdout
    assert "01_a done in" in proc.stdout and "02_b done in" in proc.stdout
    bad = run_cli(root, "--jobs", "0")
    assert bad.returncode == 2 and "--jobs 0 is not allowed" in bad.stderr
