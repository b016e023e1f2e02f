"""conv2d and conv1d: forward and VJP against TensorFlow on every backend, plus named pitfalls.

Shape legend: N batch, H W input size, C in-channels, K filters, R S kernel size, P Q output size.
"""

from __future__ import annotations

import numpy as np
import pytest
import tf_reference
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import PADDINGS, ConvCase, conv_cases, seeds
from tf_reference import Tolerance, assert_vjp_close

import miniconv
from miniconv.backend import numpy_ref


def check(case: ConvCase, backend: str) -> None:
    (*arrays, dy) = case.arrays()
    assert_vjp_close(case.mc_fn, case.tf_fn, arrays, dy, case.kwargs, backend=backend, tol=case.tolerance())


def conv2d_case(N, H, W, C, K, R, S, strides=(1, 1), padding="VALID", dilations=(1, 1), seed=0) -> ConvCase:
    return ConvCase(2, N, H, W, C, K, R, S, strides, dilations, padding, list(strides), list(dilations), seed)


def conv1d_case(N, W, C, K, S, stride=1, padding="VALID", dilation=1, seed=0) -> ConvCase:
    return ConvCase(1, N, 1, W, C, K, 1, S, (1, stride), (1, dilation), padding, stride, dilation, seed)


@given(case=conv_cases(dims=2))
def test_conv2d_matches_tf(backend, case):
    check(case, backend)


@given(case=conv_cases(dims=2), chunk_bytes=st.sampled_from([256, 4096]))
def test_cpu_conv2d_backward_in_small_chunks(case, chunk_bytes):
    """With CHUNK_BYTES cut to 256 or 4096 bytes (BLOCK_BYTES to twice that) every image is a
    chunk of its own and the filter gradient's row chunks are a few rows each."""
    from miniconv.backend.cpu import conv_kernels

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_kernels, "CHUNK_BYTES", chunk_bytes)
        patch.setattr(conv_kernels, "BLOCK_BYTES", 2 * chunk_bytes)
        check(case, "cpu")


@given(N=st.integers(4, 7), H=st.integers(1, 10), W=st.integers(1, 10), C=st.integers(4, 8), K=st.integers(1, 8),
       strided=st.booleans(), steps=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       window=st.tuples(st.integers(1, 5), st.integers(1, 5)), padding=PADDINGS,
       chunk_bytes=st.sampled_from([256, 4096, 1 << 19]), seed=seeds)
def test_cpu_im2col_one_pass_backward_is_the_reference_in_float64(N, H, W, C, K, strided, steps, window, padding,
                                                                  chunk_bytes, seed):
    """``conv_kernels.conv2d_backward`` (both gradients in one pass per chunk of whole images) in float64,
    where rounding is far below the tolerance, so a misplaced image, block or patch shows: strides or
    dilations of 1 to 4, windows of 1 to 5, chunks of one image or many, images in blocks of conv rows
    (CHUNK_BYTES 256 or 4096). The cpu backend's ``conv2d_backward`` must route such a case there."""
    from miniconv.backend.cpu import conv_kernels, pointwise_kernels
    from miniconv.shapes import conv_geometry

    strides, dilations = (steps, (1, 1)) if strided else ((1, 1), steps)
    assume(padding == "SAME" or all((k - 1) * d + 1 <= n for k, d, n in zip(window, dilations, (H, W))))
    rng = np.random.default_rng(seed)
    x, w = rng.uniform(-1, 1, (N, H, W, C)), rng.uniform(-1, 1, (*window, C, K))
    g = conv_geometry(x.shape, w.shape, strides, padding, dilations)
    assume(pointwise_kernels.both_by_im2col(g))
    dy = rng.uniform(-1, 1, g.output_shape)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_kernels, "CHUNK_BYTES", chunk_bytes)
        patch.setattr(conv_kernels, "BLOCK_BYTES", 2 * chunk_bytes)
        calls = []
        patch.setattr(conv_kernels, "backward_by_images", lambda *a, _f=conv_kernels.backward_by_images: calls.append(1) or _f(*a))
        dx, dw = pointwise_kernels.conv2d_backward(x, w, dy, g)
    assert calls == [1]
    np.testing.assert_allclose(dx, numpy_ref.conv2d_backward_input(dy, w, g), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, numpy_ref.conv2d_backward_filter(x, dy, g), rtol=1e-12, atol=1e-11)


@pytest.mark.parametrize("x_shape, w_shape, strides, one_pass", [
    ((64, 5, 5, 64), (3, 3, 64, 64), 1, True),       # MNIST conv3: too small for Winograd
    ((20, 36, 36, 64), (3, 3, 64, 128), 2, True),    # strided
    ((8, 32, 32, 32), (5, 5, 32, 64), 1, True),      # 5 x 5
    ((3, 5, 5, 64), (3, 3, 64, 64), 1, False),       # three images: a whole-image chunk each would idle a thread
    ((20, 150, 150, 3), (3, 3, 3, 32), 1, False),    # cats conv1: direct filter gradient, patch-major dx
    ((20, 150, 150, 3), (3, 3, 3, 32), 2, False),    # three channels: patch-major dx
    ((20, 74, 74, 32), (3, 3, 32, 64), 1, False),    # cats conv2: Winograd
    ((8, 14, 14, 64), (1, 1, 64, 32), 1, False),     # 1 x 1: plain products
])
def test_cpu_im2col_one_pass_by_shape(x_shape, w_shape, strides, one_pass):
    from miniconv.backend.cpu import pointwise_kernels
    from miniconv.shapes import conv_geometry

    g = conv_geometry(x_shape, w_shape, (strides, strides), "VALID", (1, 1))
    assert pointwise_kernels.both_by_im2col(g) == one_pass


@pytest.mark.parametrize("seed", [0, 1])
def test_conv2d_im2col_one_pass_matches_tf(backend, seed):
    """Batch 6, 5 x 5 x 8 -> 6 (the cpu backend's one im2col pass for both gradients), and strided 7 x 7."""
    check(conv2d_case(6, 5, 5, 8, 6, 3, 3, seed=seed), backend)
    check(conv2d_case(5, 7, 7, 5, 4, 3, 3, (2, 2), "SAME", seed=seed), backend)


def test_cpu_im2col_one_pass_keeps_inf_and_nan():
    """inf and NaN in x, w and dy land where the two passes on their own put them."""
    from miniconv.backend.cpu import conv_kernels, pointwise_kernels
    from miniconv.shapes import conv_geometry

    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 6, 6, 6)).astype(np.float32)
    w = rng.standard_normal((3, 3, 6, 4)).astype(np.float32)
    g = conv_geometry(x.shape, w.shape, (1, 1), "VALID", (1, 1))
    dy = rng.standard_normal(g.output_shape).astype(np.float32)
    x[1, 2, 3, 0], x[4, 0, 0, 5], w[0, 1, 2, 3], dy[2, 1, 1, 2], dy[3, 3, 0, 0] = np.inf, np.nan, -np.inf, np.nan, np.inf
    assert pointwise_kernels.both_by_im2col(g)
    with np.errstate(invalid="ignore", over="ignore"):
        dx, dw = pointwise_kernels.conv2d_backward(x, w, dy, g)
        dx_alone, dw_alone = conv_kernels.conv2d_backward_input(dy, w, g), conv_kernels.conv2d_backward_filter(x, dy, g)
    assert np.isnan(dx).any() and not np.isfinite(dw).all()
    np.testing.assert_array_equal(dx, dx_alone)
    np.testing.assert_allclose(dw, dw_alone, rtol=1e-5, atol=1e-4, equal_nan=True)


@given(case=conv_cases(dims=1))
def test_conv1d_matches_tf(backend, case):
    check(case, backend)


# --- named pitfalls: each would pass unnoticed by a lucky random draw ---------------------------


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("R, S, strides", [(2, 2, (1, 1)), (2, 4, (1, 1)), (4, 2, (2, 3)), (2, 2, (2, 2))])
def test_conv2d_even_kernels(backend, R, S, strides, padding):
    """Even kernels under SAME put the odd padding row / column at the bottom / right (TF's rule)."""
    check(conv2d_case(2, 7, 6, 3, 2, R, S, strides, padding, seed=R * 10 + S), backend)


def test_conv2d_same_even_kernel_hand_computed(backend):
    """3x3 input, 2x2 ones kernel, SAME: pad = 1, all of it on the bottom and right."""
    x = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)
    w = np.ones((2, 2, 1, 1), np.float32)
    expected = np.array([[8, 12, 7], [20, 24, 13], [13, 15, 8]], np.float32)
    y = miniconv.nn.conv2d(x, w, strides=1, padding="SAME", backend=backend)
    np.testing.assert_array_equal(y[0, :, :, 0], expected)


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("R, S, strides", [(2, 2, (3, 3)), (1, 1, (2, 3)), (3, 2, (4, 5)), (2, 3, (5, 1))])
def test_conv2d_strides_larger_than_kernel(backend, R, S, strides, padding):
    """Input cells between windows are skipped: their gradient must be exactly zero."""
    check(conv2d_case(2, 11, 12, 2, 3, R, S, strides, padding, seed=7), backend)


@pytest.mark.parametrize("H, W, R, S", [(3, 3, 5, 5), (1, 4, 3, 3), (2, 1, 4, 2)])
def test_conv2d_same_kernel_larger_than_input(backend, H, W, R, S):
    """SAME accepts a kernel larger than the input; most taps read padding."""
    check(conv2d_case(2, H, W, 2, 3, R, S, (1, 1), "SAME", seed=3), backend)


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("dilations, R, S", [((2, 2), 3, 3), ((3, 1), 2, 2), ((1, 2), 4, 3)])
def test_conv2d_dilations(backend, dilations, R, S, padding):
    check(conv2d_case(2, 9, 10, 3, 2, R, S, (1, 1), padding, dilations, seed=5), backend)


@pytest.mark.parametrize("strides, dilations", [((1, 1), (1000, 1)), ((1, 1), (3, 300)), ((2**31 - 1, 3), (1, 1))])
def test_conv2d_large_dilations_and_strides(backend, strides, dilations):
    """SAME with large dilations or strides: almost every tap reads padding. The numpy reference once
    padded its copy of the input by (R - 1) * dilation cells (11 s for 1000, a MemoryError for more)."""
    check(conv2d_case(2, 5, 6, 2, 3, 2, 3, strides, "SAME", dilations, seed=13), backend)


def test_conv2d_dilation_at_tf_limit(backend):
    """Dilations of 2**31 - 1, TF's limit: the forward equals tf.nn.conv2d's (TF's gradient goes through
    space-to-batch, which cannot allocate this), the gradients the numpy reference's."""
    x, w, dy = conv2d_case(2, 5, 6, 2, 3, 2, 3, (1, 1), "SAME", (2**31 - 1, 2**31 - 1), seed=13).arrays()
    kwargs = {"strides": 1, "padding": "SAME", "dilations": 2**31 - 1}
    y, pullback = miniconv.vjp(miniconv.nn.conv2d, x, w, backend=backend, **kwargs)
    np.testing.assert_allclose(y, tf_reference.tf.nn.conv2d(x, w, **kwargs).numpy(), rtol=1e-6, atol=1e-6)
    _, reference = miniconv.vjp(miniconv.nn.conv2d, x, w, backend="numpy", **kwargs)
    for ours, theirs in zip(pullback(dy), reference(dy)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)


def test_conv2d_non_square_single_channel_single_image(backend):
    """N = 1, C = K = 1, H != W: catches H/W or N/C transpositions that square shapes hide."""
    check(conv2d_case(1, 5, 9, 1, 1, 2, 3, (1, 2), "SAME", seed=11), backend)


@pytest.mark.parametrize("shape, padding", [
    ((64, 28, 28, 1, 32), "VALID"),  # MNIST's first layer
    ((1, 7, 6, 1, 32), "SAME"),      # batch 1, blocks reading the zero padding
    ((2, 9, 10, 1, 33), "VALID"),    # P = 7 odd: the last block row has one cell row; K past a vector
    ((3, 5, 5, 1, 40), "SAME"),      # odd P and Q
    ((1, 3, 3, 1, 32), "VALID"),     # one output cell: a block of one cell
    ((2, 12, 11, 3, 32), "VALID"),   # RGB, the cats-vs-dogs convnet's first layer in small
    ((2, 6, 7, 2, 8), "SAME"),       # two channels, the fewest filters it takes
    ((1, 5, 4, 4, 12), "SAME"),      # four channels, K past a vector of 8
    ((2, 8, 9, 3, 64), "SAME"),      # two blocks of 32 filters: by rows of conv cells
])
def test_conv2d_direct_filter_gradient_shapes(backend, shape, padding):
    """3 x 3, stride 1, at most 4 channels, >= 8 filters: the cpu backend's filter gradient takes direct
    loops (``direct_kernels.filter_gradient``, or by rows for 32 and 64 filters), checked with the whole
    VJP against TF."""
    N, H, W, C, K = shape
    case = conv2d_case(N, H, W, C, K, 3, 3, (1, 1), padding, seed=sum(shape))
    if backend == "cpu":
        from miniconv.backend.cpu import direct_kernels
        from miniconv.shapes import conv_geometry

        assert direct_kernels.filter_gradient_applies(conv_geometry((N, H, W, C), (3, 3, C, K), (1, 1), padding, (1, 1)))
    check(case, backend)


@given(N=st.integers(1, 3), H=st.integers(3, 12), W=st.integers(3, 12), C=st.integers(1, 4), K=st.integers(1, 40),
       padding=st.sampled_from(["VALID", "SAME"]), chunk=st.sampled_from([1, 1024]), by_rows=st.booleans(),
       prefetched=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_cpu_direct_filter_gradient_is_im2col_up_to_rounding(N, H, W, C, K, padding, chunk, by_rows, prefetched,
                                                             seed):
    """The direct filter gradients (for every shape they can take, also those they are not dispatched
    to), by windows of 2 x 2 cells or by rows of cells (K rounded up to a whole number of blocks), against
    im2col's product; chunk = 1 makes every block row or conv row a chunk of its own, so that the
    partials' order is exercised; ``prefetched``: dy's next rows prefetched, as for a dy larger than
    the cache."""
    from miniconv.backend.cpu import conv_kernels, direct_kernels
    from miniconv.shapes import conv_geometry

    if by_rows:
        K = -(-K // direct_kernels.ROW_LANES) * direct_kernels.ROW_LANES
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (N, H, W, C)).astype(np.float32)
    g = conv_geometry(x.shape, (3, 3, C, K), (1, 1), padding, (1, 1))
    dy = rng.uniform(-1, 1, (N, g.P, g.Q, K)).astype(np.float32)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(direct_kernels, "CHUNK_WINDOWS", chunk)
        patch.setattr(direct_kernels, "CHUNK_CELLS", chunk)
        patch.setattr(direct_kernels, "prefetches", lambda rows: prefetched)
        dw = (direct_kernels.filter_gradient_by_rows if by_rows else direct_kernels.filter_gradient)(x, dy, g)
    dw_ref = conv_kernels.conv2d_backward_filter(x, dy, g)
    assert dw.shape == (3, 3, C, K) and dw.dtype == np.float32
    np.testing.assert_allclose(dw, dw_ref, rtol=1e-5, atol=1e-6 * N * g.P * g.Q)


@pytest.mark.parametrize("shape, padding", [
    ((20, 30, 30, 3, 32), "VALID"),  # the cats-vs-dogs convnet's first layer in small
    ((64, 28, 28, 1, 32), "VALID"),  # MNIST's first layer
    ((1, 7, 6, 2, 64), "SAME"),      # batch 1, two blocks of filters, rows reading the zero padding
    ((2, 9, 10, 4, 32), "SAME"),     # four channels, odd P
    ((1, 3, 3, 3, 32), "VALID"),     # one output cell
])
def test_conv2d_direct_forward_shapes(backend, shape, padding):
    """3 x 3, stride 1, at most 4 channels, 32 or 64 filters: the cpu backend's forward takes direct
    loops (``direct_kernels.plain_forward_rows``), checked with the whole VJP against TF."""
    N, H, W, C, K = shape
    case = conv2d_case(N, H, W, C, K, 3, 3, (1, 1), padding, seed=sum(shape) + 1)
    if backend == "cpu":
        from miniconv.backend.cpu import direct_kernels
        from miniconv.shapes import conv_geometry

        assert direct_kernels.forward_applies(conv_geometry((N, H, W, C), (3, 3, C, K), (1, 1), padding, (1, 1)))
    check(case, backend)


@given(N=st.integers(1, 3), H=st.integers(1, 12), W=st.integers(1, 12), C=st.integers(1, 4), K=st.integers(1, 70),
       padding=st.sampled_from(["VALID", "SAME"]), chunk_cells=st.sampled_from([1, 4096]),
       dtype=st.sampled_from([np.float32, np.float64]), streamed=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_cpu_direct_forward_is_the_reference_up_to_rounding(N, H, W, C, K, padding, chunk_cells, dtype, streamed,
                                                            seed):
    """The direct forward (for every shape it can take, also those it is not dispatched to: filter
    counts that leave a partial block of lanes) against the numpy reference in float64; chunk_cells
    = 1 makes every conv row a chunk of its own; ``streamed``: rows written by ``stream_copy``, as for a
    y larger than the cache."""
    from miniconv.backend.cpu import direct_kernels
    from miniconv.shapes import conv_geometry

    assume(padding == "SAME" or (H >= 3 and W >= 3))
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (N, H, W, C)).astype(dtype)
    w = rng.uniform(-1, 1, (3, 3, C, K)).astype(dtype)
    g = conv_geometry(x.shape, w.shape, (1, 1), padding, (1, 1))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(direct_kernels, "CHUNK_CELLS", chunk_cells)
        patch.setattr(direct_kernels, "streams", lambda out: streamed)
        y = direct_kernels.plain_forward(x, w, g)
    y_ref = numpy_ref.conv2d_forward(x.astype(np.float64), w.astype(np.float64), g)
    assert y.shape == (N, g.P, g.Q, K) and y.dtype == dtype
    terms = 9 * C  # each of at most 1 in magnitude: |error| <= terms * eps * sum|terms| in any order
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=terms * np.finfo(dtype).eps * terms)


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
@pytest.mark.parametrize("S, stride, dilation", [(2, 1, 1), (4, 3, 1), (1, 5, 1), (3, 1, 2)])
def test_conv1d_named_cases(backend, S, stride, dilation, padding):
    check(conv1d_case(2, 10, 3, 4, S, stride, padding, dilation, seed=S), backend)


# --- conv2d_bias_relu: the fused op a Conv2D layer with activation="relu" runs ---------------------


def _tf_conv2d_bias_relu(input, filters, bias, strides=1, padding="VALID", dilations=1):
    return tf_reference.tf.nn.relu(tf_reference.tf.nn.bias_add(tf_reference.tf_conv2d(input, filters, strides, padding, dilations), bias))


def check_fused(case: ConvCase, backend: str) -> None:
    x, w, dy = case.arrays()
    bias = np.random.default_rng(case.seed + 1).uniform(-0.5, 0.5, case.K).astype(np.float32)
    RS, NPQ = case.R * case.S, case.N * case.P * case.Q
    # not linear, but on |arrays| the ReLU passes everything: the TF run on them bounds sum|terms|
    tol = Tolerance((RS * case.C, RS * case.K, NPQ, NPQ), abs_terms=True)
    assert_vjp_close(miniconv.nn.conv2d_bias_relu, _tf_conv2d_bias_relu, (x, w, bias), dy, case.kwargs, backend=backend, tol=tol)


@given(case=conv_cases(dims=2))
def test_conv2d_bias_relu_matches_tf(backend, case):
    check_fused(case, backend)


@pytest.mark.parametrize("shape", [(64, 28, 28, 1, 32), (9, 13, 13, 8, 16), (1, 5, 7, 3, 2)])
def test_conv2d_bias_relu_many_chunks(backend, shape):
    """MNIST's first layer (several row chunks and reduction groups), a mid-sized one, batch 1."""
    N, H, W, C, K = shape
    check_fused(conv2d_case(N, H, W, C, K, 3, 3, (1, 1), "VALID", seed=N), backend)


@given(case=conv_cases(dims=2), chunk_bytes=st.sampled_from([256, 4096]))
def test_cpu_conv2d_bias_relu_backward_in_row_blocks(case, chunk_bytes):
    """Images larger than a chunk (cats vs dogs' layers) go through the backward in blocks of conv
    rows, dx added block by block: here any image is, with CHUNK_BYTES cut to 256 or 4096 bytes
    (BLOCK_BYTES to twice that)."""
    from miniconv.backend.cpu import conv_kernels

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_kernels, "CHUNK_BYTES", chunk_bytes)
        patch.setattr(conv_kernels, "BLOCK_BYTES", 2 * chunk_bytes)
        check_fused(case, "cpu")


def test_conv2d_bias_relu_is_the_composition(backend):
    """Forward: the same bits as relu(bias_add(conv2d)); backward: the same dw / dbias with and without dx."""
    rng = np.random.default_rng(4)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((8, 12, 12, 3), (3, 3, 3, 5), (5,)))
    z, pullback = miniconv.vjp(miniconv.nn.conv2d_bias_relu, x, w, b, padding="SAME", backend=backend)
    composed = miniconv.nn.bias_add_relu(miniconv.nn.conv2d(x, w, padding="SAME", backend=backend), b, backend=backend)
    np.testing.assert_array_equal(z, composed)
    dz = rng.standard_normal(z.shape).astype(np.float32)
    _, dw, db = pullback(dz)
    none, dw_only, db_only = pullback(dz, input_gradient=False)
    assert none is None
    np.testing.assert_array_equal(dw, dw_only)
    np.testing.assert_array_equal(db, db_only)


def test_conv2d_bias_relu_bad_bias(backend):
    x, w = np.zeros((1, 4, 4, 2), np.float32), np.zeros((3, 3, 2, 5), np.float32)
    with pytest.raises(ValueError, match=r"bias must have shape \(5,\).*got \(4,\)"):
        miniconv.nn.conv2d_bias_relu(x, w, np.zeros(4, np.float32), backend=backend)
    with pytest.raises(ValueError, match="bias"):
        miniconv.nn.conv2d_bias_relu(x, w, np.zeros((5, 1), np.float32), backend=backend)


@given(case=conv_cases(dims=2), data=st.data())
def test_cpu_patch_major_im2col_is_the_transpose(case, data):
    """The cpu backend's two patch layouts hold the same numbers (few-channel inputs take the
    patch-major one): any geometry, padding zeros included, from any first output row."""
    from miniconv.backend.cpu import conv_kernels
    from miniconv.shapes import conv_geometry

    x, w, _ = case.arrays()
    g = conv_geometry(x.shape, w.shape, case.strides, case.padding, case.dilations)
    first = data.draw(st.integers(0, g.N * g.P - 1))
    count = data.draw(st.integers(1, g.N * g.P - first))
    args = (x, g.R, g.S, g.sh, g.sw, g.dh, g.dw, g.top, g.left, g.Q, 1, g.P, first)
    cols = np.full((count * g.Q, g.R * g.S * g.C), np.nan, np.float32)
    cols_t = np.full(cols.shape[::-1], np.nan, np.float32)
    conv_kernels.im2col_rows(*args, cols)
    conv_kernels.im2col_rows_patch_major(*args, cols_t)
    np.testing.assert_array_equal(cols_t.T, cols)


@given(case=conv_cases(dims=2), data=st.data())
def test_cpu_patch_major_col2im_gives_the_row_major_bits(case, data):
    """col2im of patch-major dcols into a channel-major image adds each input cell's terms in
    the row-major col2im's order: the same bits, inf and NaN included, any geometry, from any
    first output row of an image."""
    from miniconv.backend.cpu import conv_kernels
    from miniconv.shapes import conv_geometry

    x, w, _ = case.arrays()
    g = conv_geometry(x.shape, w.shape, case.strides, case.padding, case.dilations)
    first = data.draw(st.integers(0, g.P - 1))
    count = data.draw(st.integers(1, g.P - first))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    dcols = rng.standard_normal((count * g.Q, g.R * g.S * g.C)).astype(np.float32)
    dcols.flat[rng.integers(0, dcols.size, 3)] = data.draw(st.sampled_from([np.inf, -np.inf, np.nan, 1e38]))
    args = (g.R, g.S, g.sh, g.sw, g.dh, g.dw, g.top, g.left, first, g.Q)
    row_major = np.zeros((g.H, g.W, g.C), np.float32)
    channel_major = np.zeros((g.C, g.H, g.W), np.float32)
    conv_kernels.col2im_add_rows(dcols, *args, row_major)
    conv_kernels.col2im_patch_major_add(np.ascontiguousarray(dcols.T), *args, channel_major)
    np.testing.assert_array_equal(channel_major.transpose(1, 2, 0), row_major)


@pytest.mark.parametrize("chunk_bytes", [1 << 10, 1 << 19])
@pytest.mark.parametrize("C", [1, 3])
@pytest.mark.parametrize("strides, padding, dilations", [((2, 3), "SAME", (1, 1)), ((1, 1), "VALID", (1, 2))])
def test_cpu_patch_major_input_gradient_is_the_row_major_one(C, chunk_bytes, strides, padding, dilations, monkeypatch):
    """Few-channel inputs take the patch-major input gradient: the row-major path's numbers up to
    the products' rounding, in one block of rows per image or many."""
    from miniconv.backend.cpu import conv_kernels
    from miniconv.shapes import conv_geometry

    rng = np.random.default_rng(C)
    w = rng.standard_normal((3, 2, C, 7)).astype(np.float32)
    g = conv_geometry((5, 17, 13, C), w.shape, strides, padding, dilations)
    dy = rng.standard_normal(g.output_shape).astype(np.float32)
    monkeypatch.setattr(conv_kernels, "CHUNK_BYTES", chunk_bytes)
    dx = conv_kernels.conv2d_backward_input(dy, w, g)
    monkeypatch.setattr(conv_kernels, "PATCH_MAJOR_MAX_CHANNELS", 0)
    np.testing.assert_allclose(dx, conv_kernels.conv2d_backward_input(dy, w, g), rtol=1e-5, atol=1e-5)
