"""Where models train: the device, CPU threads and worker processes (every chapter).

``resolve_device`` turns a chapter's ``DEVICE`` parameter into a device, or one clear error.
LeNet-5 is too small for one model to keep two cores busy, so the book trains several
models side by side, one thread each (``workers()`` processes): one thread per model also
makes the weights bit-identical for a seed whatever the number of cores
(``benchmarks/RESULTS.md``).
"""
from __future__ import annotations

import contextlib
import os

import torch

__all__ = ["DeviceError", "resolve_device", "threads_for", "workers"]


class DeviceError(RuntimeError):
    """The requested device is not available."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda if available else cpu; ``cuda`` without a GPU is a clear error."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("DEVICE='cuda' was requested but no CUDA GPU is available to "
                              "PyTorch here (torch.cuda.is_available() is False); use "
                              "DEVICE='cpu' or DEVICE='auto'")
        return torch.device("cuda")
    raise ValueError(f"unknown device {name!r}; allowed: auto, cpu, cuda")


@contextlib.contextmanager
def threads_for(device: torch.device, threads: int | None):
    """Train on ``threads`` CPU threads (1: bit-identical results whatever the core count)."""
    if device.type != "cpu" or threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def workers() -> int:
    """Worker processes for training: ``$RECOS_WORKERS``, else the number of CPU cores."""
    env = os.environ.get("RECOS_WORKERS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
