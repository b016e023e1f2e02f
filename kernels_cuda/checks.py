"""Checks a training step makes where its arrays live: is every element of an array finite?

    all_finite(x)      one pass, one thread per element: a counter of NaN / inf elements, raised with
                       an atomic add (any order gives the same count); one int copied back
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


SIGNATURES = {count_nonfinite_kernel: void(F1, array(int64, 1))}

# ================================ launchers =================================================


def all_finite(x) -> bool:
    """True when the device array x holds no NaN and no infinity."""
    n = x.size
    if n == 0:
        return True
    count = cuda.to_device(np.zeros(1, np.int64))
    count_nonfinite_kernel[blocks(n, THREADS_1D), THREADS_1D](x.reshape(n), count)
    return int(count.copy_to_host()[0]) == 0


__all__ = ["all_finite"]
