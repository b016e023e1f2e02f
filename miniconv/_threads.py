"""Keep NumPy's OpenBLAS worker threads from starving the Numba kernels that run between products.

After each matrix product OpenBLAS's workers busy-wait for the next job for about 2**28 cycles
(its default thread timeout, ~0.1 s) before they sleep. A Numba parallel kernel started in that
window shares the two cores with spinning threads: measured here, im2col right after a product
took 6.5 ms instead of 0.04 ms. ``OPENBLAS_THREAD_TIMEOUT=4`` (2**4 cycles) fixes it, but
OpenBLAS reads it once, when NumPy loads, so ``miniconv`` sets it before importing NumPy when it
can, and the cpu backend warns once when NumPy was imported first without it.
"""

from __future__ import annotations

import os
import sys
import warnings

VARIABLE = "OPENBLAS_THREAD_TIMEOUT"
_numpy_loaded_first = "numpy" in sys.modules and VARIABLE not in os.environ
if not _numpy_loaded_first:
    os.environ.setdefault(VARIABLE, "4")


def warn_if_blas_spins() -> None:
    """Called when the cpu backend loads: say so if NumPy was loaded before we could set it."""
    if _numpy_loaded_first and os.environ.get(VARIABLE) is None:
        warnings.warn(
            f"NumPy was imported before miniconv without {VARIABLE} set, so OpenBLAS threads spin "
            f"after each matrix product and slow miniconv's cpu kernels (up to 10x on small layers). "
            f"Import miniconv first, or set {VARIABLE}=4 in the environment.",
            RuntimeWarning,
            stacklevel=3,
        )
