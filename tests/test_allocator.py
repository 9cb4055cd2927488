"""recos_utils.core.allocator: freed maps are reused (few page faults), the numbers unchanged."""
import ctypes
import os
import subprocess
import sys

import pytest

from recos_utils.core import allocator

glibc = pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "mallopt") or sys.platform != "linux",
                           reason="no glibc mallopt: the allocator is left alone here")

# a stack of nine TReLU LeNet-5s, as Chapter 2 trains them: maps of 10.8 MiB after conv1
FAULTS = """
import resource, sys, torch
from recos_utils.core import allocator
from recos_utils.core.stacked import StackedLeNet5
from recos_utils.core.train import Recipe, TrainConfig, fit
g = torch.Generator().manual_seed(0)
x, y = torch.randint(0, 256, (640, 28, 28), dtype=torch.uint8, generator=g), torch.arange(640) % 10
stack = lambda: StackedLeNet5([TrainConfig(activation="trelu", trelu_z=z / 10).model()
                               for z in range(1, 10)])
fit(stack(), x[:128], y[:128], recipe=Recipe(epochs=1.0))         # warm-up
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
fit(stack(), x, y, recipe=Recipe(epochs=1.0))                      # 10 steps
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""

FIT = """
import sys, torch
from recos_utils.core import allocator
from recos_utils.core.stacked import StackedLeNet5
from recos_utils.core.train import Recipe, TrainConfig, fit
g = torch.Generator().manual_seed(0)
x, y = torch.randint(0, 256, (640, 28, 28), dtype=torch.uint8, generator=g), torch.arange(640) % 10
m = StackedLeNet5([TrainConfig(activation="trelu", trelu_z=z).model() for z in (0.2, 0.6)])
fit(m, x, y, recipe=Recipe(epochs=1.0), seed=0)
print(allocator.status())
torch.save(m.state_dict(), sys.argv[1])
"""


def _run(code, *args, **env):
    out = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                         text=True, env=dict(os.environ, RECOS_PROGRESS="0", **env), timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@glibc
def test_kept_memory_is_reused_instead_of_faulted_in_again():
    default = int(_run(FAULTS, RECOS_MALLOPT="0"))
    kept = int(_run(FAULTS, RECOS_MALLOPT="1"))
    assert default > 10 * 2600               # a 10.8-MiB map is ~2,600 pages, every step
    assert kept < default / 4


@glibc
def test_fit_keeps_memory_and_trains_the_same_bits(tmp_path):
    import torch

    on = _run(FIT, tmp_path / "on.pt", RECOS_MALLOPT="1")
    off = _run(FIT, tmp_path / "off.pt", RECOS_MALLOPT="0")
    assert on.startswith("freed memory kept") and off == "glibc's defaults (RECOS_MALLOPT=0)"
    a, b = torch.load(tmp_path / "on.pt"), torch.load(tmp_path / "off.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_switch_takes_only_0_or_1(monkeypatch):
    monkeypatch.setenv("RECOS_MALLOPT", "yes")
    with pytest.raises(ValueError, match="RECOS_MALLOPT='yes' is not allowed: set it to 1"):
        allocator.keep_freed_memory()
    monkeypatch.setenv("RECOS_MALLOPT", "0")
    assert allocator.keep_freed_memory() is False
