"""Content hashes of files and of the code (every chapter; the runner's incremental runs).

Standard library only, so that ``recos-book`` can use it without importing torch.

* :func:`file_sha256`: SHA-256 of a file's bytes, remembered per (path, size, mtime) so a
  file read twice in one process is hashed once.
* :func:`code_hash`: the one code version of the book: SHA-256 of every ``.py`` file of
  the ``recos_utils`` package (relative path and content). It keys the model store
  (:mod:`recos_utils.core.trainer`) and the runner's record of what a chapter ran on.
"""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

__all__ = ["file_sha256", "code_hash", "PACKAGE"]

#: The root folder of the ``recos_utils`` package.
PACKAGE = Path(__file__).resolve().parent.parent


@functools.lru_cache(maxsize=256)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks (cached while the file is unchanged)."""
    st = os.stat(path)
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=1)
def code_hash() -> str:
    """SHA-256 (16 hex digits) of every ``.py`` file of the package, in sorted order."""
    h = hashlib.sha256()
    for p in sorted(PACKAGE.rglob("*.py")):
        h.update(str(p.relative_to(PACKAGE)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]
