"""Checks a training step makes where its arrays live: is every element of an array finite?

    all_finite(arrays) one pass over each array, one thread per element: one counter of NaN / inf
                       elements for them all, raised with an atomic add (any order gives the same
                       count); one int copied back, whatever the number of arrays
"""

from __future__ import annotations

import math

import numpy as np

from ._common import F1, THREADS_1D, array, blocks, cuda, int64, void

# ================================ kernels ===================================================


@cuda.jit
def count_nonfinite_kernel(x, count):
    i = cuda.grid(1)
    if i < x.size and not math.isfinite(x[i]):
        cuda.atomic.add(count, 0, 1)


@cuda.jit
def reset_kernel(count):
    if cuda.grid(1) == 0:
        count[0] = 0


SIGNATURES = {count_nonfinite_kernel: void(F1, array(int64, 1)), reset_kernel: void(array(int64, 1))}

# ================================ launchers =================================================


_COUNTER = []  # one device int, made once


def all_finite(arrays) -> bool:
    """True when no device array of ``arrays`` holds a NaN or an infinity."""
    if not _COUNTER:
        _COUNTER.append(cuda.to_device(np.zeros(1, np.int64)))
    count = _COUNTER[0]
    reset_kernel[1, 1](count)
    for x in arrays:
        n = x.size
        if n:
            count_nonfinite_kernel[blocks(n, THREADS_1D), THREADS_1D](x.reshape(n), count)
    return int(count.copy_to_host()[0]) == 0


__all__ = ["all_finite"]
