"""The content-addressed store of trained models (all chapters).

Entries are named by their key (:func:`recos_utils.core.trainer.spec_key`: the kind, the
config, the data checksums and the code version), so a change to any of them trains
afresh; :func:`recos_utils.core.trainer.train_all` is the one function that trains and
writes here. An entry is one file::

    <64 hex chars: SHA-256 of the payload>\\n<payload: torch.save of a dict of tensors, lists, numbers>

written to a temporary file in the same folder, flushed to disk and renamed into place
(atomic on POSIX), so a process killed mid-write leaves no entry that loads. Entries are
loaded with ``torch.load(..., weights_only=True)``; a checksum mismatch is reported with a
warning, the entry deleted and the model retrained. A process about to train an entry first
claims it (:func:`claim`: a lock file in the store's ``.locks`` folder): another process
that wants the same entry (two chapters running side by side, ``recos-book run --jobs``)
waits and then loads it instead of training it twice. Without the claim, two writers would
still leave one whole file (the later rename wins).

The folder is ``$RECOS_CACHE_DIR``, else ``<user cache>/models``.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch
from filelock import FileLock

from recos_utils.core.data import user_cache_dir

__all__ = ["cache_dir", "save_entry", "load_entry", "claim", "CacheWarning"]


class CacheWarning(UserWarning):
    """A cache entry was unreadable or corrupted and is being rebuilt."""


def cache_dir() -> Path:
    """The model cache folder: ``$RECOS_CACHE_DIR`` or ``<user cache>/models``."""
    env = os.environ.get("RECOS_CACHE_DIR")
    return Path(env).expanduser() if env else user_cache_dir() / "models"


def save_entry(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` atomically with its checksum (see the module docstring)."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest().encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(digest + b"\n" + data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    sweep_stale(path)


def sweep_stale(path: Path, max_age_s: float = 3600.0) -> list[Path]:
    """Delete ``<entry>.*.tmp`` files older than ``max_age_s``: leftovers of a writer killed
    mid-save (never loaded, only disk). Younger ones may belong to a writer still at work."""
    gone, now = [], time.time()
    for tmp in path.parent.glob(path.name + ".*.tmp"):
        try:
            if now - tmp.stat().st_mtime > max_age_s:
                tmp.unlink()
                gone.append(tmp)
        except FileNotFoundError:
            pass
    return gone


def load_entry(path: Path) -> dict[str, Any] | None:
    """Read an entry; ``None`` if absent. A corrupted entry is removed with a warning."""
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        return None
    digest, _, data = blob.partition(b"\n")
    problem = None
    if hashlib.sha256(data).hexdigest().encode() != digest:
        problem = "checksum mismatch"
    else:
        try:
            return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
        except Exception as e:  # valid checksum but unreadable: a format change
            problem = f"unreadable ({type(e).__name__})"
    warnings.warn(f"model cache entry {path} is corrupted ({problem}); it is deleted and the "
                  f"model retrained", CacheWarning, stacklevel=3)
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    return None


@contextlib.contextmanager
def claim(paths: list[Path]) -> Iterator[None]:
    """Hold the store entries ``paths`` for this process while it trains them: a second
    process claiming one of them waits until the first has written them (see the module
    docstring). Locks are taken in sorted order, so two claims never wait on each other."""
    with contextlib.ExitStack() as stack:
        for path in sorted({Path(p) for p in paths}):
            locks = path.parent / ".locks"
            locks.mkdir(parents=True, exist_ok=True)
            stack.enter_context(FileLock(str(locks / (path.name + ".lock"))))
        yield
