"""``prefetch``: the hint, its shares of a row, the rows the depthwise loops ask for, and their bits."""

from __future__ import annotations

import platform

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import njit

import miniconv  # noqa: F401  (before NumPy)
from miniconv.backend.cpu import depthwise_kernels, prefetch
from miniconv.backend.cpu.prefetch import prefetch_share, share_lines
from miniconv.shapes import depthwise_geometry


@njit(cache=False)
def _share(count, itemsize, part, parts):
    return share_lines(count, itemsize, part, parts)


@njit(cache=False)
def _prefetch_every_share(a, parts):
    for part in range(parts):
        prefetch_share(a, part, parts)
    return a.sum()


@given(count=st.integers(0, 5000), itemsize=st.sampled_from([4, 8]), parts=st.integers(1, 60))
def test_shares_are_runs_of_lines_in_order(count, itemsize, parts):
    """The shares are consecutive runs of whole lines, none longer than MOST, that start at line 0 and
    cover every line of the values when MOST lines a share suffice (else the first parts * MOST)."""
    lines = -(-count * itemsize // prefetch.LINE)
    stop = 0
    for part in range(parts):
        first, last = _share(count, itemsize, part, parts)
        assert first == stop and first <= last <= lines
        assert last - first <= prefetch.MOST
        stop = last
    assert stop == min(lines, parts * prefetch.MOST)


def test_prefetch_leaves_values_alone():
    """Prefetching every share of a row changes nothing in it, for any length (an empty row included)."""
    for n in (0, 1, 15, 16, 17, 1000):
        a = np.arange(n, dtype=np.float32)
        assert _prefetch_every_share(a, 7) == a.sum()
        np.testing.assert_array_equal(a, np.arange(n, dtype=np.float32))


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 instruction names")
def test_prefetch_becomes_prefetcht1_on_x86():
    """The hint reaches the machine code as a prefetch into L2 (locality 2), not dropped by the compiler."""
    _prefetch_every_share(np.zeros(64, np.float32), 2)
    assembly = next(iter(_prefetch_every_share.inspect_asm().values()))
    assert "prefetcht1" in assembly


def _rows_read(p, sh, R, dh, top, H):
    """The input rows output row p reads (inside the input)."""
    return {h for h in (p * sh - top + r * dh for r in range(R)) if 0 <= h < H}


@given(N=st.integers(1, 3), H=st.integers(1, 12), R=st.sampled_from([3, 5]), sh=st.integers(1, 3),
       top=st.integers(0, 3), data=st.data())
def test_rows_ahead_are_the_next_output_rows_new_rows(N, H, R, sh, top, data):
    """Dilation 1: the span is exactly the rows output row u + 1 reads that output row u does not (its
    image's, in order), empty past ``last`` or when there are none."""
    P = max(1, (H + 2 * top - R) // sh + 1)
    W, C = 2, 3
    x = np.arange(N * H * W * C, dtype=np.float32).reshape(N, H, W, C)
    u = data.draw(st.integers(0, N * P - 1))
    last = data.draw(st.integers(u + 1, N * P))
    span = depthwise_kernels._rows_ahead(x, u, last, P, sh, R, 1, top)
    if u + 1 >= last:
        assert span.size == 0
        return
    n, p = divmod(u + 1, P)
    new = _rows_read(p, sh, R, 1, top, H) - (_rows_read(p - 1, sh, R, 1, top, H) if p > 0 else set())
    expected = np.concatenate([x[n, h].ravel() for h in sorted(new)]) if new else np.empty(0, np.float32)
    np.testing.assert_array_equal(span, expected)


def _specials(rng, shape):
    values = rng.standard_normal(shape).astype(np.float32)
    flat = values.reshape(-1)
    flat[rng.integers(0, flat.size, size=4)] = [np.inf, -np.inf, np.nan, -0.0]
    return values


@pytest.mark.parametrize("R, stride, padding", [(3, 1, "SAME"), (3, 2, "SAME"), (3, 2, "VALID"), (3, 3, "SAME"),
                                                (5, 1, "SAME"), (5, 2, "SAME")])
def test_depthwise_prefetched_rows_give_the_same_bits(R, stride, padding, monkeypatch):
    """Every depthwise kernel that prefetches (forward, with bias and ReLU6, backward with and without
    dx, dx alone, the ReLU6 backward that forms dy itself), prefetching or not: the same bits, inf and NaN
    included (float32, odd sizes)."""
    rng = np.random.default_rng(R + 10 * stride)
    N, H, W, C = 3, 13, 17, 19
    g = depthwise_geometry((N, H, W, C), (R, R, C, 1), (stride, stride), padding, (1, 1))
    x = _specials(rng, g.input_shape)
    w = rng.standard_normal(g.filter_shape).astype(np.float32)
    dz = _specials(rng, g.output_shape)
    bias = rng.standard_normal(C).astype(np.float32)
    asked = []

    def run(prefetching):
        monkeypatch.setattr(depthwise_kernels, "prefetches", lambda rows: asked.append(rows.shape) or prefetching)
        with np.errstate(all="ignore"):
            z = depthwise_kernels.depthwise_conv2d_forward(x, w, g, bias, "relu6")
            results = [depthwise_kernels.depthwise_conv2d_forward(x, w, g), z]
            if R == 3:
                results += list(depthwise_kernels.depthwise_conv2d_backward(x, w, dz, g))
                results += [depthwise_kernels.depthwise_conv2d_backward(x, w, dz, g, input_gradient=False)[1],
                            depthwise_kernels.depthwise_conv2d_backward_input(dz, w, g)]
                results += list(depthwise_kernels.depthwise_conv2d_bias_backward(x, w, z, dz, g, "relu6"))
        return results

    for prefetched, plain in zip(run(True), run(False), strict=True):
        np.testing.assert_array_equal(prefetched.view(np.int32), plain.view(np.int32))
    assert asked, "the kernels never asked whether to prefetch"


def test_prefetches_by_size(monkeypatch):
    """The loops prefetch from tensors of STREAM_MIN_BYTES or more (larger than the cache), not smaller ones."""
    monkeypatch.setattr(prefetch, "STREAM_MIN_BYTES", 4096)
    assert prefetch.prefetches(np.empty(1024, np.float32))
    assert not prefetch.prefetches(np.empty(1023, np.float32))


@pytest.mark.parametrize("C, K, padding", [(3, 32, "VALID"), (1, 64, "SAME"), (4, 32, "SAME")])
def test_direct_filter_gradient_prefetched_gives_the_same_bits(C, K, padding, monkeypatch):
    """Plain conv2d's filter gradient by rows (a first layer's), dy's next rows prefetched or not: the same
    bits, inf and NaN in x and dy included; and the forward by rows, streamed or not."""
    from miniconv.backend.cpu import direct_kernels
    from miniconv.shapes import conv_geometry

    rng = np.random.default_rng(C + K)
    x = _specials(rng, (3, 11, 13, C))
    w = rng.standard_normal((3, 3, C, K)).astype(np.float32)
    g = conv_geometry(x.shape, w.shape, (1, 1), padding, (1, 1))
    dy = _specials(rng, g.output_shape)
    results = {}
    for flag in (True, False):
        monkeypatch.setattr(direct_kernels, "prefetches", lambda rows, flag=flag: flag)
        monkeypatch.setattr(direct_kernels, "streams", lambda out, flag=flag: flag)
        with np.errstate(all="ignore"):
            results[flag] = (direct_kernels.filter_gradient_by_rows(x, dy, g), direct_kernels.plain_forward(x, w, g))
    for on, off in zip(results[True], results[False], strict=True):
        np.testing.assert_array_equal(on.view(np.int32), off.view(np.int32))
