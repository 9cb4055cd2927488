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

__all__ = ["PROGRESS_ENV", "bar", "report"]

#: The environment variable naming the runner's progress file.
PROGRESS_ENV = "RECOS_PROGRESS_FILE"


def bar(total: int, desc: str):
    """A tqdm progress bar on standard error (hidden when ``RECOS_PROGRESS=0``)."""
    from tqdm.std import tqdm

    disable = os.environ.get("RECOS_PROGRESS", "1") == "0"
    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr, disable=disable,
                mininterval=0.5)


def report(done: int, total: int, desc: str, elapsed: float) -> None:
    """Append a training-progress line for ``recos-book run`` (a no-op outside it)."""
    path = os.environ.get(PROGRESS_ENV)
    if path:
        try:
            with open(path, "a") as f:
                f.write(json.dumps({"done": done, "total": total, "desc": desc,
                                    "elapsed": elapsed}) + "\n")
        except OSError:
            pass                      # progress is a courtesy; it never fails a chapter
