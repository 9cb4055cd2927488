"""Progress of training (every chapter): a bar in the notebook, a line for the runner.

:func:`bar` is the tqdm bar a training loop shows (``RECOS_PROGRESS=0`` hides it, as in
worker processes). :func:`report` is the callback protocol that ``recos-book run``
(:mod:`recos_utils.runner.run_progress`) listens to: it names a file in
``$RECOS_PROGRESS_FILE`` and reads one JSON line per finished model from it. Outside the
runner no file is named and a report does nothing. The core knows nothing else of the
runner.
"""
from __future__ import annotations

import json
import os
import sys

__all__ = ["PROGRESS_ENV", "bar", "WorkBar", "report"]

#: The environment variable naming the runner's progress file.
PROGRESS_ENV = "RECOS_PROGRESS_FILE"


def bar(total: int, desc: str):
    """A tqdm progress bar on standard error (hidden when ``RECOS_PROGRESS=0``)."""
    from tqdm.std import tqdm

    disable = os.environ.get("RECOS_PROGRESS", "1") == "0"
    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr, disable=disable,
                mininterval=0.5)


class WorkBar:
    """Progress over jobs of unequal cost (:func:`recos_utils.core.trainer.train_all`).

    The bar fills and tqdm's time-left estimate runs by the *work* done, each job weighted
    by its ``costs`` entry; the text counts models ("12 of 72 models"; a job trains
    ``sizes[i]`` of them, default one). Counting jobs alone misleads when the costliest come
    first: Chapter 2's first jobs are stacks of nine networks, and an estimate from the count
    read "about 56:14 left" after the first of 39 jobs of a run of about five minutes.
    """

    def __init__(self, costs: list[float], desc: str, sizes: list[int] | None = None):
        from tqdm.std import tqdm

        self.costs = list(costs)
        self.sizes = list(sizes) if sizes is not None else [1] * len(self.costs)
        self.jobs_done, self.done, self.total, self.work = 0, 0, sum(self.sizes), 0.0
        self.total_work = sum(self.costs) or 1.0
        self.desc = desc
        disable = os.environ.get("RECOS_PROGRESS", "1") == "0"
        self._bar = tqdm(total=self.total_work, desc=self._text(), leave=False,
                         file=sys.stderr, disable=disable, mininterval=0.5,
                         bar_format="{desc} {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")

    @property
    def share(self) -> float:
        """The share of the work done, 0..1."""
        return min(1.0, self.work / self.total_work)

    def _text(self) -> str:
        return f"{self.desc}, {self.done} of {self.total} models:"

    def advance(self) -> None:
        """The next job (in the order of ``costs``) is done."""
        i = self.jobs_done
        self.jobs_done, self.done = i + 1, self.done + self.sizes[i]
        self.work += self.costs[i]
        self._bar.set_description_str(self._text(), refresh=False)
        self._bar.update(self.costs[i])

    def close(self) -> None:
        self._bar.close()


def report(done: int, total: int, desc: str, elapsed: float, share: float | None = None) -> None:
    """Append a training-progress line for ``recos-book run`` (a no-op outside it).

    ``share``: the share of the work done (jobs weighted by cost), from which the runner
    estimates the time left; without it, ``done / total``."""
    path = os.environ.get(PROGRESS_ENV)
    if path:
        try:
            with open(path, "a") as f:
                f.write(json.dumps({"done": done, "total": total, "desc": desc,
                                    "elapsed": elapsed, "share": share}) + "\n")
        except OSError:
            pass                      # progress is a courtesy; it never fails a chapter
