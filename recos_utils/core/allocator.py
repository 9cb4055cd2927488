"""Keep freed memory for the next training step (glibc's malloc; Chapter 2's TReLU stacks).

glibc's ``malloc`` serves a block above its *mmap threshold* with fresh pages from the
kernel and returns free memory at the top of its heap to the kernel above its *trim
threshold*; both thresholds start small and adapt. A training step that allocates maps of
about 10 MiB each and frees them at the end of the step (Chapter 2's nine TReLU LeNet-5s
trained as one network, :mod:`recos_utils.core.stacked`: 64 x 54 x 28 x 28 floats after
conv1) then pays a page fault for every 4 KiB of those maps on every step: about a million
faults in a pass over 6,400 images. :func:`keep_freed_memory` raises both thresholds
(``mallopt``) so that the freed maps are reused. Measured on one thread
(``benchmarks/RESULTS.md``, "The allocator"): such a stack trains 1.15-1.25x faster; a single
LeNet-5, whose maps stay small, is unchanged. Only the allocator changes, so every number
is the same bit for bit.

``train.fit`` calls it on the CPU, once per process. ``RECOS_MALLOPT=0`` leaves the
allocator alone (for side-by-side measurements); where there is no glibc ``mallopt``
(macOS, Windows, musl's no-op) nothing changes and :func:`status` says so.
"""
from __future__ import annotations

import ctypes
import os

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory", "status"]

#: Blocks up to this size come from the heap (and are reused) rather than fresh mappings.
MMAP_THRESHOLD = 64 << 20
#: Free memory at the top of the heap up to this size stays in the process.
TRIM_THRESHOLD = 512 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3      # glibc's mallopt parameter numbers
_state: dict[str, str] = {}


def _switch() -> str:
    flag = os.environ.get("RECOS_MALLOPT", "1")
    if flag not in ("0", "1"):
        raise ValueError(f"RECOS_MALLOPT={flag!r} is not allowed: set it to 1 (keep freed "
                         "memory for the next step, the default) or 0 (glibc's defaults; "
                         "the same numbers, slower for large maps)")
    return flag


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds in this process (once); True if they are."""
    if _switch() == "0":
        return False
    if "result" not in _state:
        try:
            mallopt = ctypes.CDLL(None).mallopt
            ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and \
                mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
            _state["result"] = "kept" if ok else "mallopt refused the thresholds"
        except (AttributeError, OSError):
            _state["result"] = "no glibc mallopt here"
    return _state["result"] == "kept"


def status() -> str:
    """One line: whether this process keeps freed memory, and if not why."""
    if os.environ.get("RECOS_MALLOPT", "1") == "0":
        return "glibc's defaults (RECOS_MALLOPT=0)"
    if "result" not in _state:
        return "not set yet (train.fit sets it on the CPU)"
    return {"kept": f"freed memory kept (mmap threshold {MMAP_THRESHOLD >> 20} MiB, trim "
                    f"threshold {TRIM_THRESHOLD >> 20} MiB)"}.get(_state["result"],
                                                               _state["result"])
