"""Chapters side by side: ``recos-book run --jobs N`` executes up to N chapters at once.

A chapter alternates between work that fills every core (training, in the worker pool of
:func:`recos_utils.core.trainer.train_all`) and work on one core: its kernel's start-up and
imports, evaluation, k-means, figures, t-SNE. Run one after another, the chapters leave the
other cores idle through all of the second kind; run side by side, one chapter's serial
work overlaps another's. That pays in quick mode, where kernel start-up, imports and
figures are most of a chapter; in full mode training already fills the cores and two
chapters side by side only slow each other (``benchmarks/BOOK_TIME.md``: 741 s against
650 s one after another), so the default is two lanes in quick mode, one in full mode.
What the chapters compute does not change: every model trains on one thread with its own
seed, wherever and whenever it trains, and a model two chapters share (Chapter 6 reads
Chapter 2's LeNet-5s) is trained once, because ``train_all`` claims each store entry before
it trains it (:func:`recos_utils.core.cache.claim`) and the other chapter waits for it and
loads it.

Each chapter runs in a process of its own (``spawn``), so that what papermill changes for a
whole process (the working folder, the environment its kernel inherits) stays that
chapter's. With N = 1 the jobs run in this process, one after another.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
from multiprocessing.connection import wait
from typing import Any, Callable

__all__ = ["run_side_by_side", "default_jobs", "LaneError"]


class LaneError(RuntimeError):
    """A job's process ended without sending a result (killed, out of memory)."""


#: Chapters at once in quick mode when ``--jobs`` is not given (at most one per core).
QUICK_DEFAULT = 2


def default_jobs(quick: bool) -> int:
    """Quick mode: ``min(2, CPU cores)``; full mode: 1 (see the module docstring)."""
    if not quick:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(QUICK_DEFAULT, cores))


def _lane(conn, fn: Callable, args: tuple, kwargs: dict) -> None:
    """Run one job in a child process and send ``(status, value)`` back."""
    try:
        conn.send(("ok", fn(*args, **kwargs)))
    except KeyboardInterrupt:
        conn.send(("interrupted", None))
    except Exception as e:       # the job's own error (a BookError names the cell)
        conn.send(("error", e))
    finally:
        conn.close()


def _stop(running: dict, grace_s: float = 60.0) -> None:
    """Interrupt every running job (SIGINT, as Ctrl-C would: papermill then shuts its
    kernel down), wait for them, and terminate those still running after ``grace_s``."""
    procs = [p for _, p, _ in running.values()]
    for p in procs:
        if p.is_alive():
            try:
                os.kill(p.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    for p in procs:
        p.join(grace_s)
        if p.is_alive():
            p.terminate()
            p.join()


def run_side_by_side(jobs: list[tuple[Any, Callable, tuple, dict]], n: int,
                     on_start: Callable[[Any], None],
                     on_done: Callable[[Any, Any], None], *, lane_arg: str | None = None) -> None:
    """Run ``jobs`` (``(key, fn, args, kwargs)``), at most ``n`` at once, in list order.
    With ``lane_arg``, each job also gets the keyword ``lane_arg`` = the number (0 .. n-1)
    of the lane it runs in (e.g. the line of its progress bar).

    ``on_start(key)`` is called (here) just before a job starts and ``on_done(key, result)``
    when it has finished. When a job fails, no new job starts; the running ones finish and
    the first error is raised. On Ctrl-C every running job is interrupted and
    ``KeyboardInterrupt`` raised. ``fn`` must be importable by name (a module-level function).
    """
    if n <= 1:
        for key, fn, args, kwargs in jobs:
            on_start(key)
            on_done(key, fn(*args, **kwargs))
        return
    ctx = mp.get_context("spawn")
    pending, running, error, free = list(jobs), {}, None, list(range(n))
    try:
        while running or (pending and error is None):
            while pending and error is None and len(running) < n:
                key, fn, args, kwargs = pending.pop(0)
                lane = free.pop(0)
                kwargs = {**kwargs, lane_arg: lane} if lane_arg else kwargs
                here, there = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_lane, args=(there, fn, args, kwargs))
                on_start(key)
                proc.start()
                there.close()
                running[here] = (key, proc, lane)
            for conn in wait(list(running)):
                key, proc, lane = running[conn]
                free.append(lane)
                try:
                    status, value = conn.recv()
                except EOFError:
                    proc.join()
                    status, value = "error", LaneError(
                        f"the process executing {key} ended without a result (exit code "
                        f"{proc.exitcode}; out of memory?)")
                del running[conn]
                proc.join()
                if status == "ok":
                    on_done(key, value)
                elif status == "interrupted":
                    raise KeyboardInterrupt
                elif error is None:
                    error = value
    except KeyboardInterrupt:
        _stop(running)
        raise
    if error is not None:
        raise error
