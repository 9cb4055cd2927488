"""LeNet-5's 2x2 max pooling for training, compiled: the same bits as PyTorch, about 3x faster.

Chapter 1 (LeNet-5's S2 and S4). Training a LeNet-5 on one CPU thread spends about a
quarter of each step in PyTorch's max-pool kernel and its backward (``benchmarks/RESULTS.md``),
which handle LeNet-5's 6 channels one value at a time. ``maxpool2x2.c`` (next to this file)
does the same work in a vectorised loop: the forward keeps each window's winner (0..3, one
byte) and the backward writes the gradient there and zero elsewhere. Pooling does no
arithmetic, so the result is the kernel's exactly: the winner is the first maximum of the
window scanned row by row (the last NaN, if any), the gradient ``0 + g`` as the kernel adds
it to a zeroed map (``tests/test_fastpool.py`` checks both layouts, ties, NaN, infinities,
signed zeros and whole training runs bit for bit).

The C file is compiled on first use with the system's C compiler (``$CC``, else ``cc``) into
the user cache (``<user cache>/native``), a second under a second, and loaded with
``ctypes``; no Python or PyTorch headers are needed. Where no compiler is found, or
``RECOS_NATIVE=0`` is set, :class:`recos_utils.core.models.MaxPool2x2` uses PyTorch's kernel:
the same numbers, only slower. :func:`status` says which path is in use and why.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from recos_utils.core.data import user_cache_dir

__all__ = ["SOURCE", "compiler", "enabled", "status", "supports", "max_pool2x2"]

SOURCE = Path(__file__).with_name("maxpool2x2.c")
_FLAGS = ["-O3", "-fPIC", "-shared"]     # never -ffast-math: NaN and signed zeros matter
_state: dict = {}                        # "lib" (CDLL or None), "why" (str)


def _library_path() -> Path:
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(_FLAGS).encode()).hexdigest()[:16]
    suffix = ".dll" if sys.platform == "win32" else ".so"
    tag = f"{sys.platform}-{platform.machine()}"
    return user_cache_dir() / "native" / f"maxpool2x2-{digest}-{tag}{suffix}"


def compiler() -> str | None:
    """The C compiler the loop is built with: ``$CC``, else ``cc`` or ``gcc`` on the path."""
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _compile(target: Path) -> str | None:
    """Compile the C file to ``target`` (atomically); None, or why it could not."""
    cc = compiler()
    if not cc:
        return "no C compiler found (install one, or set CC)"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        run = subprocess.run([cc, *_FLAGS, "-o", tmp, str(SOURCE)], capture_output=True,
                             text=True, timeout=120)
        if run.returncode != 0:
            return f"{cc} failed: {(run.stderr or run.stdout).strip()[-300:]}"
        os.replace(tmp, target)
        return None
    except (OSError, subprocess.SubprocessError) as e:
        return f"{cc} could not run: {e}"
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load():
    """The loaded library, or None; compiled on first use (once per process)."""
    if "lib" not in _state:
        lib, why = None, None
        try:
            path = _library_path()
            if not path.exists():
                why = _compile(path)
            if why is None:
                lib = ctypes.CDLL(str(path))
                i64, ptr = ctypes.c_int64, ctypes.c_void_p
                for fn in (lib.maxpool2x2_forward, lib.maxpool2x2_backward):
                    fn.argtypes = [ptr, ptr, ptr, i64, i64, i64, i64, ctypes.c_int]
                    fn.restype = None
        except OSError as e:
            lib, why = None, f"could not build or load the compiled pooling: {e}"
        _state.update(lib=lib, why=why)
    return _state["lib"]


def enabled() -> bool:
    """Whether training pools with the compiled loop: not switched off by ``RECOS_NATIVE=0``
    (read at every call) and compiled and loaded in this process."""
    flag = os.environ.get("RECOS_NATIVE", "1")
    if flag not in ("0", "1"):
        raise ValueError(f"RECOS_NATIVE={flag!r} is not allowed: set it to 1 (compiled "
                         "pooling, the default) or 0 (PyTorch's kernel; the same numbers)")
    return flag == "1" and _load() is not None


def status() -> str:
    """One line: which max pooling training uses here, and why."""
    if os.environ.get("RECOS_NATIVE", "1") == "0":
        return "PyTorch's kernel (RECOS_NATIVE=0)"
    if enabled():
        return f"compiled ({_library_path().name})"
    return f"PyTorch's kernel: {_state['why']}"


def _layout(x: torch.Tensor):
    """x's memory format if it is unambiguously dense contiguous or channels last, else None."""
    plain, last = x.is_contiguous(), x.is_contiguous(memory_format=torch.channels_last)
    if plain == last:                 # neither, or ambiguous (1 channel, or 1x1 maps)
        return None
    return torch.contiguous_format if plain else torch.channels_last


def supports(x: torch.Tensor) -> bool:
    """Whether :func:`max_pool2x2` takes ``x``: float32 on the CPU, N x C x H x W with H and W
    even, dense in one memory layout, and the compiled loop :func:`enabled`."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 4
            and x.numel() > 0 and x.shape[-2] % 2 == 0 and x.shape[-1] % 2 == 0
            and _layout(x) is not None and enabled())


class _MaxPool2x2(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        n, c, h, w = x.shape
        fmt = _layout(x)
        out = torch.empty((n, c, h // 2, w // 2), dtype=x.dtype, memory_format=fmt)
        code = torch.empty((n, c, h // 2, w // 2), dtype=torch.uint8, memory_format=fmt)
        _load().maxpool2x2_forward(x.data_ptr(), out.data_ptr(), code.data_ptr(), n, c, h, w,
                                   int(fmt is torch.channels_last))
        ctx.save_for_backward(code)
        ctx.shape, ctx.fmt = x.shape, fmt
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (code,) = ctx.saved_tensors
        grad = grad.contiguous(memory_format=ctx.fmt)
        gin = torch.empty(ctx.shape, dtype=grad.dtype, memory_format=ctx.fmt)
        _load().maxpool2x2_backward(grad.data_ptr(), code.data_ptr(), gin.data_ptr(),
                                    *ctx.shape, int(ctx.fmt is torch.channels_last))
        return gin


def max_pool2x2(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 2)`` with its gradient, for an ``x`` that :func:`supports`."""
    if not supports(x):
        raise ValueError("max_pool2x2 takes a float32 CPU tensor N x C x H x W with even H "
                         "and W in one dense memory layout, with the compiled loop enabled "
                         f"({status()}); use F.max_pool2d otherwise")
    return _MaxPool2x2.apply(x)
