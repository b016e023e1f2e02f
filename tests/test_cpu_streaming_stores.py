"""``streaming_stores``: copies by non-temporal stores, and the depthwise kernels that write through them."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

import miniconv  # noqa: F401  (before NumPy)
from miniconv.backend.cpu import depthwise_kernels, streaming_stores
from miniconv.backend.cpu.streaming_stores import stream_copy
from miniconv.shapes import depthwise_geometry


@njit(cache=False)
def _copy(src, dst):
    stream_copy(src, dst)


def _specials(rng, n, dtype):
    values = rng.standard_normal(n).astype(dtype)
    values[rng.integers(0, max(n, 1), size=min(n, 4))] = [np.inf, -np.inf, np.nan, -0.0][: min(n, 4)]
    return values


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_copy_every_length_and_alignment(dtype):
    """Every length up to four lines, the destination starting at every element of a line: the head
    before the first line boundary, the whole lines and the tail all land, and nothing outside dst is
    written. Bits compared, so NaN, inf and -0.0 count."""
    rng = np.random.default_rng(0)
    lanes = streaming_stores.LINE // np.dtype(dtype).itemsize
    int_type = np.int32 if dtype == np.float32 else np.int64
    for n in range(4 * lanes + 3):
        for offset in range(lanes + 1):
            source = _specials(rng, n + 3, dtype)[3:]  # a source not aligned like dst
            canvas = np.full(n + 2 * lanes + 2, 7.0, dtype)
            target = canvas[offset:offset + n]
            _copy(source, target)
            np.testing.assert_array_equal(target.view(int_type), source.view(int_type))
            assert (canvas[:offset] == 7).all() and (canvas[offset + n:] == 7).all(), (n, offset)


def test_stream_copy_strided_views():
    """Views with strides (not one element apart) are copied element by element."""
    source = np.arange(60, dtype=np.float32)
    target = np.zeros(60, np.float32)
    _copy(source[::3], target[1::3])
    np.testing.assert_array_equal(target[1::3], source[::3])
    assert not target[0::3].any() and not target[2::3].any()


def test_streams_by_size(monkeypatch):
    """Outputs of STREAM_MIN_BYTES or more stream, smaller ones do not."""
    monkeypatch.setattr(streaming_stores, "STREAM_MIN_BYTES", 4096)
    assert streaming_stores.streams(np.empty(1024, np.float32))
    assert not streaming_stores.streams(np.empty(1023, np.float32))


@pytest.mark.parametrize("R, stride, padding", [(3, 1, "SAME"), (3, 2, "SAME"), (3, 2, "VALID"), (3, 3, "SAME"),
                                                (5, 1, "SAME"), (5, 2, "VALID")])
def test_depthwise_streamed_rows_give_the_same_bits(R, stride, padding, monkeypatch):
    """The depthwise forward (with bias and ReLU6 too) and backward, rows streamed or stored directly: the
    same bits, inf and NaN included (float32, odd sizes so every row has a head and a tail)."""
    rng = np.random.default_rng(R + 10 * stride)
    N, H, W, C = 3, 13, 17, 19
    g = depthwise_geometry((N, H, W, C), (R, R, C, 1), (stride, stride), padding, (1, 1))
    x = _specials(rng, N * H * W * C, np.float32).reshape(g.input_shape)
    w = rng.standard_normal(g.filter_shape).astype(np.float32)
    dy = _specials(rng, int(np.prod(g.output_shape)), np.float32).reshape(g.output_shape)
    bias = rng.standard_normal(C).astype(np.float32)

    def run(streamed):
        monkeypatch.setattr(depthwise_kernels, "streams", lambda out: streamed)
        with np.errstate(all="ignore"):
            results = [depthwise_kernels.depthwise_conv2d_forward(x, w, g),
                       depthwise_kernels.depthwise_conv2d_forward(x, w, g, bias, "relu6")]
            if R == 3:
                results += list(depthwise_kernels.depthwise_conv2d_backward(x, w, dy, g))
                results.append(depthwise_kernels.depthwise_conv2d_backward_input(dy, w, g))
        return results

    for streamed, direct in zip(run(True), run(False)):
        np.testing.assert_array_equal(streamed.view(np.int32), direct.view(np.int32))
