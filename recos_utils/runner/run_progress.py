"""Progress of ``recos-book run`` in the terminal: the chapter, cell n of m with the time
spent, and the training going on inside the chapter (models done of total, time left).

Two sources feed it. papermill announces every cell through an engine registered here
(``recos-progress``: papermill's nbclient engine with a hook on ``cell_start``). The
chapter's kernel reports training through a file: :func:`recos_utils.core.progress.report` appends
one JSON line per finished model to ``$RECOS_PROGRESS_FILE`` (set here for the chapter's
run, inherited by its kernel), which a thread here reads.

In a terminal the status is one line that updates in place (tqdm, as the chapters' bars).
In a CI log (``CI=true``) or when standard error is not a terminal, it is a plain line at
most every ``every`` seconds, so that a log shows progress without thousands of updates.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from recos_utils.core.progress import PROGRESS_ENV

__all__ = ["ENGINE", "ChapterProgress", "install_engine", "fmt_seconds"]

ENGINE = "recos-progress"
_ACTIVE: "ChapterProgress | None" = None


def fmt_seconds(s: float) -> str:
    """``75`` -> ``1:15``; ``3725`` -> ``1:02:05``."""
    s = int(round(s))
    h, m, sec = s // 3600, s // 60 % 60, s % 60
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def install_engine() -> str:
    """Register the papermill engine that tells the active progress about each cell."""
    from papermill.engines import NBClientEngine, papermill_engines

    class _Engine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            start = nb_man.cell_start

            def cell_start(cell, cell_index=None, **kw):
                if _ACTIVE is not None and cell_index is not None:
                    _ACTIVE.cell(cell_index)
                return start(cell, cell_index, **kw)

            nb_man.cell_start = cell_start
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register(ENGINE, _Engine)
    return ENGINE


class ChapterProgress:
    """The status of one chapter's run, as a context manager around its execution."""

    def __init__(self, stem: str, n_cells: int, *, stream=None, tty: bool | None = None,
                 every: float | None = None, position: int = 0):
        if every is None:     # seconds between two lines in a log; $RECOS_PROGRESS_EVERY
            every = float(os.environ.get("RECOS_PROGRESS_EVERY", "15"))
        self.stem, self.n_cells, self.every = stem, n_cells, every
        self.stream = stream or sys.stderr
        ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
        self.tty = (not ci and self.stream.isatty()) if tty is None else tty
        self.index, self.train, self._last = 0, None, 0.0
        self.training_s = 0.0      # wall seconds of the chapter's training (train_all calls)
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._bar, self.position = None, position     # position: its line in a terminal

    def status(self) -> str:
        """The one-line status: chapter, cell, elapsed time, training and time left."""
        out = (f"{self.stem}: cell {self.index + 1} of {self.n_cells}, "
               f"{fmt_seconds(time.monotonic() - self.t0)} elapsed")
        if self.train and self.train["done"] < self.train["total"]:
            d, t, el = self.train["done"], self.train["total"], self.train["elapsed"]
            share = self.train.get("share") or d / t       # work done, jobs weighted by cost
            left = f", about {fmt_seconds(el / share * (1 - share))} left" if d else ""
            out += f"; training {d} of {t} models{left}"
        return out

    def cell(self, index: int) -> None:
        with self._lock:
            self.index = index
            self._show()

    def _show(self, force: bool = False) -> None:
        if self.tty:
            self._bar.n = self.index + 1
            self._bar.set_description_str(self.status(), refresh=True)
        elif force or time.monotonic() - self._last >= self.every:
            print(f"[recos-book]   {self.status()}", file=self.stream, flush=True)
            self._last = time.monotonic()

    def _read(self, pos: int) -> tuple[int, bool]:
        """Read the progress lines written since ``pos``; (new position, any read)."""
        try:
            with open(self.path) as f:
                f.seek(pos)
                lines = f.readlines()
                pos = f.tell()
        except OSError:
            return pos, False
        for line in lines:
            try:
                self.train = json.loads(line)
            except ValueError:
                continue
            if self.train["done"] == self.train["total"]:   # one train_all call finished
                self.training_s += self.train["elapsed"]
        return pos, bool(lines)

    def _poll(self) -> None:
        pos = 0
        while not self._stop.wait(0.5):
            pos, read = self._read(pos)
            if read or self.tty:         # a terminal also sees the clock move
                with self._lock:
                    self._show(force=read and self.train is not None
                               and self.train["done"] == self.train["total"])
        self._read(pos)                  # what the last half second wrote

    def __enter__(self):
        global _ACTIVE
        fd, path = tempfile.mkstemp(prefix="recos-progress-", suffix=".jsonl")
        os.close(fd)
        self.path, self.t0, self._last = Path(path), time.monotonic(), time.monotonic()
        self._env = os.environ.get(PROGRESS_ENV)
        os.environ[PROGRESS_ENV] = path
        if self.tty:
            from tqdm.std import tqdm

            self._bar = tqdm(total=self.n_cells, desc=self.stem, unit="cell", leave=False,
                             file=self.stream, bar_format="{desc}", position=self.position)
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        _ACTIVE = self
        return self

    def __exit__(self, *exc):
        global _ACTIVE
        _ACTIVE = None
        self._stop.set()
        self._thread.join()
        if self._bar is not None:
            self._bar.close()
        if self._env is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = self._env
        self.path.unlink(missing_ok=True)
        return False
