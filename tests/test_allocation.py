"""``backend/cpu/allocation.py``: glibc's malloc keeps freed memory in the process, so the kernels'
multi-megabyte outputs reuse pages instead of faulting in fresh ones every training step."""

import resource
import sys

import numpy as np
import pytest

import miniconv  # noqa: F401  (the cpu backend applies the setting on import)
from miniconv.backend.cpu import allocation

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")


def test_the_opt_out_leaves_malloc_alone(monkeypatch):
    monkeypatch.setenv("MINICONV_KEEP_MALLOC", "1")
    assert allocation.keep_freed_memory() is False


def test_other_platforms_are_left_alone(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert allocation.keep_freed_memory() is False


@linux
def test_a_freed_large_array_is_reused_without_page_faults():
    """64 MB written, freed, allocated and written again: the second time touches no new page (glibc's
    default would hand back fresh mmap pages, about 16,000 faults of 4 KiB, or 32 of 2 MiB)."""
    if not allocation.keep_freed_memory():
        pytest.skip("not glibc: mallopt is not there")
    size = 16 << 20  # float32 values: 64 MB, past glibc's default mmap threshold (128 KiB to 32 MiB)
    a = np.empty(size, np.float32)
    a[:] = 1.0
    del a
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    b = np.empty(size, np.float32)
    b[:] = 2.0
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert b[-1] == 2.0
    assert faults < 16, f"{faults} page faults for a reused 64 MB block"
