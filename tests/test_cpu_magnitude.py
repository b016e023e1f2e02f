"""``magnitude.largest_magnitude``, the check the cpu fast paths run before a shortcut: max |a|, inf
when a holds an inf or a NaN, against NumPy, on one thread and in pieces shared by the threads."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from miniconv.backend.cpu import magnitude


def expected(a) -> float:
    if a.size == 0:
        return 0.0
    if not np.isfinite(a).all():
        return math.inf
    return float(np.abs(a).max())


@pytest.mark.parametrize("grain", [magnitude.SHARED_GRAIN, 3])  # the default, and pieces of a few values
@given(a=st.sampled_from([np.float32, np.float64]).flatmap(
    lambda dtype: arrays(dtype, st.integers(0, 200), elements=st.floats(width=np.dtype(dtype).itemsize * 8)
                         | st.sampled_from([np.inf, -np.inf, np.nan, -0.0]))))
def test_largest_magnitude_matches_numpy(grain, a):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(magnitude, "SHARED_GRAIN", grain)
        assert magnitude.largest_magnitude(a) == expected(a)


@pytest.mark.parametrize("where", [0, 1_500_000, 2_999_999])  # the first, a middle and the last shared piece
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan, -3e38, 7.0])
def test_large_arrays_are_checked_in_shared_pieces(where, value):
    a = np.linspace(-1, 1, 3_000_000, dtype=np.float32).reshape(100, 30_000)
    a.reshape(-1)[where] = value
    assert a.size >= 2 * magnitude.SHARED_GRAIN
    assert magnitude.largest_magnitude(a) == expected(a)
    assert magnitude.largest_magnitude(a[:, ::2]) == expected(a[:, ::2])  # not contiguous: copied first
