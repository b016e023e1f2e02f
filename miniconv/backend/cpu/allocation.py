"""Keep freed memory inside the process, so the kernels' multi-megabyte outputs do not page-fault.

glibc serves large allocations with fresh ``mmap`` pages and returns them to the system on
``free``; every training step then touches new pages for each activation and gradient, and the
page faults cost about a quarter of an MNIST step here (a profile of 300 steps: 34.5-41.6 ms
per step before, 28.9-30.1 ms after). Raising ``M_MMAP_THRESHOLD`` (256 MiB) and
``M_TRIM_THRESHOLD`` (512 MiB) once lets freed blocks be reused. The threshold covers the largest
activations of the pretrained bases at batch 20 (EfficientNet-Lite0's 112x112x96 layers: 96 MB;
a fresh 96 MB array costs 12-26 ms to fill here, a reused one 4-10 ms). Only on glibc; elsewhere
this does nothing. Set ``MINICONV_KEEP_MALLOC=1`` to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 << 20  # bytes: smaller allocations come from the heap and go back to it
TRIM_THRESHOLD = 512 << 20  # bytes of free heap top kept before returning memory to the system


def keep_freed_memory() -> bool:
    """Tune glibc's malloc as above; True if it was applied."""
    if not sys.platform.startswith("linux") or os.environ.get("MINICONV_KEEP_MALLOC") == "1":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
