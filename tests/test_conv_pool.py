"""nn.conv2d_bias_relu_max_pool2d: the fused op a Conv2D(relu) + MaxPooling2D pair runs.

Shape legend: N batch, H W input size, C in-channels, K filters, R S kernel size, P Q conv output
size, Rp Sp the pooling window (= its strides, VALID), Pp Qp the pooled size.

Against TensorFlow's composition max_pool2d(relu(bias_add(conv2d))) on every backend, forward and
VJP with a random upstream gradient; the same bits as miniconv's own composition (im2col's path);
chunk and row corners (MNIST's layers, an odd P and Q whose last conv row and column no window
reads, batch 1); the cpu backend's Winograd forward (3 x 3, stride 1, >= 8 channels, 2 x 2 pool)
and its direct loops (3 x 3, stride 1, <= 4 channels, 2 x 2 pool) against TF and against its
im2col path; the pairing inside a Sequential; bad input.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
import tf_reference
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import ConvCase, conv_cases
from tf_reference import Tolerance, assert_vjp_close

import miniconv
from miniconv import layers, nn
from miniconv.engine.plan import compile_plan
from miniconv.verify_cases import windows_near_tie

tf = tf_reference.tf


def _tf_conv_relu_pool(input, filters, bias, pool_size, strides=1, padding="VALID", dilations=1):
    z = tf.nn.relu(tf.nn.bias_add(tf_reference.tf_conv2d(input, filters, strides, padding, dilations), bias))
    return tf.nn.max_pool2d(z, pool_size, pool_size, "VALID")


def check(case: ConvCase, pool_size: tuple[int, int], backend: str, require=assume) -> None:
    """``require(condition)`` rejects a case whose windows do not fit or hold a near tie."""
    x, w, _ = case.arrays()
    rng = np.random.default_rng(case.seed + 1)
    bias = rng.uniform(-0.5, 0.5, case.K).astype(np.float32)
    Rp, Sp = pool_size
    require(case.P >= Rp and case.Q >= Sp)
    z = tf.nn.relu(tf.nn.bias_add(tf_reference.tf_conv2d(x, w, case.strides, case.padding, case.dilations), bias)).numpy()
    require(not windows_near_tie(z, pool_size))  # rounding could pick another winner than TF
    dy = rng.uniform(-1, 1, (case.N, case.P // Rp, case.Q // Sp, case.K)).astype(np.float32)
    RS, NPQ = case.R * case.S, case.N * case.P * case.Q
    # errors against each result's largest value, and at least the size of one term (every array is
    # drawn at scale 1; a sum that cancels has only absolute accuracy): on |arrays| the windows pick
    # other winners, so running the op on them (abs_terms) would not bound each element's terms
    tol = Tolerance((RS * case.C, RS * case.K, NPQ, NPQ), floors=(1.0, 1.0, 1.0, 1.0))
    kwargs = {**case.kwargs, "pool_size": pool_size}
    assert_vjp_close(nn.conv2d_bias_relu_max_pool2d, _tf_conv_relu_pool, (x, w, bias), dy, kwargs, backend=backend,
                     tol=tol)
    # without dx (a first layer) the cpu backend takes another path: the same dw and dbias
    _, pullback = miniconv.vjp(nn.conv2d_bias_relu_max_pool2d, x, w, bias, backend=backend, **kwargs)
    _, dw, db = pullback(dy)
    none, dw_only, db_only = pullback(dy, input_gradient=False)
    assert none is None
    np.testing.assert_allclose(dw_only, dw, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(dw).max())))
    np.testing.assert_allclose(db_only, db, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(db).max())))


class NearTie(Exception):
    pass


def check_first_tie_free_seed(shape, padding, pool_size, backend) -> None:
    """``check`` on a fixed 3 x 3, stride 1 case of ``shape`` (N, H, W, C, K): its first seed
    without a near tie (a fixed case, so always the same one)."""
    N, H, W, C, K = shape

    def require(condition):
        if not condition:
            raise NearTie

    for seed in range(10):
        case = ConvCase(2, N, H, W, C, K, 3, 3, (1, 1), (1, 1), padding, [1, 1], [1, 1], seed=seed)
        try:
            return check(case, pool_size, backend, require)
        except NearTie:
            continue
    pytest.fail(f"every seed drew a near tie for {shape}")


@given(case=conv_cases(dims=2), pool_size=st.tuples(st.integers(1, 3), st.integers(1, 3)))
def test_conv2d_bias_relu_max_pool2d_matches_tf(backend, case, pool_size):
    check(case, pool_size, backend)


@given(case=conv_cases(dims=2), pool_size=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       chunk_bytes=st.sampled_from([256, 4096]))
def test_cpu_backward_in_row_blocks_matches_tf(case, pool_size, chunk_bytes):
    """Images larger than a chunk (cats vs dogs' layers) go through the backward in blocks of conv
    rows: here any image is, with CHUNK_BYTES cut to 256 or 4096 bytes and BLOCK_BYTES to twice
    that (forward chunks shrink too)."""
    from miniconv.backend.cpu import conv_kernels

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(conv_kernels, "CHUNK_BYTES", chunk_bytes)
        patch.setattr(conv_kernels, "BLOCK_BYTES", 2 * chunk_bytes)
        check(case, pool_size, "cpu")


@pytest.mark.parametrize("shape, pool_size", [
    ((64, 28, 28, 1, 32), (2, 2)),   # MNIST conv1: many chunks and reduction groups
    ((64, 13, 13, 32, 64), (2, 2)),  # MNIST conv2: P = Q = 11, the last conv row and column unread
    ((1, 9, 12, 3, 5), (3, 2)),      # batch 1, a non-square window, P = 7 (one row unread)
    ((2, 6, 6, 2, 3), (4, 4)),       # one window per image
])
def test_conv2d_bias_relu_max_pool2d_corners(backend, shape, pool_size):
    check_first_tie_free_seed(shape, "VALID", pool_size, backend)


@pytest.mark.parametrize("padding, strides", [("SAME", 1), ("VALID", 2)])
def test_conv2d_bias_relu_max_pool2d_is_the_composition(backend, padding, strides):
    """Forward: the same bits as max_pool2d(conv2d_bias_relu); backward: dw and dbias with and without dx agree.

    5 input channels: the cpu backend's im2col path, whose products are conv2d_bias_relu's (its
    direct loops for fewer channels and Winograd for more round differently: tested below)."""
    rng = np.random.default_rng(7)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((8, 13, 11, 5), (3, 3, 5, 5), (5,)))
    y, pullback = miniconv.vjp(nn.conv2d_bias_relu_max_pool2d, x, w, b, 2, strides=strides, padding=padding,
                               backend=backend)
    z = nn.conv2d_bias_relu(x, w, b, strides=strides, padding=padding, backend=backend)
    np.testing.assert_array_equal(y, nn.max_pool2d(z, 2, 2, "VALID", backend=backend))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dw, db = pullback(dy)
    none, dw_only, db_only = pullback(dy, input_gradient=False)
    assert none is None and dx.shape == x.shape
    np.testing.assert_allclose(dw_only, dw, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(db_only, db, rtol=1e-5, atol=1e-5)


def test_conv2d_bias_relu_max_pool2d_all_negative_windows_get_no_gradient(backend):
    """A window whose four cells are <= 0 after the bias pools to 0 and passes no gradient (ReLU's is 0)."""
    x = np.ones((1, 4, 4, 1), np.float32)
    w = np.ones((1, 1, 1, 2), np.float32)
    b = np.array([-2.0, 1.0], np.float32)  # channel 0: every z = 1 - 2 < 0; channel 1: every z = 2
    y, pullback = miniconv.vjp(nn.conv2d_bias_relu_max_pool2d, x, w, b, 2, backend=backend)
    np.testing.assert_array_equal(y[..., 0], 0.0)
    np.testing.assert_array_equal(y[..., 1], 2.0)
    dx, dw, db = pullback(np.ones_like(y))
    np.testing.assert_array_equal(db, [0.0, 4.0])
    np.testing.assert_array_equal(dw.reshape(-1), [0.0, 4.0])
    # ties go to the first cell of each window in scan order, as TF's max pooling
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])


def test_conv2d_bias_relu_max_pool2d_bad_input(backend):
    x, w, b = np.zeros((1, 6, 6, 2), np.float32), np.zeros((3, 3, 2, 5), np.float32), np.zeros(5, np.float32)
    with pytest.raises(ValueError, match=r"conv2d_bias_relu_max_pool2d: .*window \(5, 5\).*larger than"):
        nn.conv2d_bias_relu_max_pool2d(x, w, b, 5, backend=backend)  # the conv output is 4x4
    with pytest.raises(ValueError, match=r"bias must have shape \(5,\).*got \(4,\)"):
        nn.conv2d_bias_relu_max_pool2d(x, w, b[:4], 2, backend=backend)
    with pytest.raises(ValueError, match="pool_size"):
        nn.conv2d_bias_relu_max_pool2d(x, w, b, 0, backend=backend)
    _, pullback = miniconv.vjp(nn.conv2d_bias_relu_max_pool2d, x, w, b, 2, backend=backend)
    with pytest.raises(ValueError, match=r"\(1, 2, 2, 5\)"):
        pullback(np.zeros((1, 4, 4, 5), np.float32))  # the conv output's shape, not the pooled one


# --- the pairing inside a model ------------------------------------------------------------------


def _model(pool):
    return miniconv.Sequential([
        layers.Conv2D(4, 3, activation="relu", input_shape=(13, 14, 2)),
        pool,
        layers.Conv2D(3, 2, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(3, activation="softmax"),
    ])


@pytest.mark.parametrize("pool, fused", [
    (layers.MaxPooling2D(2), True),
    (layers.MaxPooling2D((2, 3)), True),
    (layers.MaxPooling2D(2, strides=1), False),        # overlapping windows: not fused
    (layers.MaxPooling2D(2, padding="same"), False),   # SAME: not fused
    (layers.AveragePooling2D(2), False),
])
def test_sequential_pairs_conv_and_pool(backend, pool, fused):
    """The compiled model runs Conv2D(relu) + MaxPooling2D as one step when they fuse (the fusion
    table), and gives the layer-by-layer outputs and gradients either way."""
    miniconv.utils.set_random_seed(3)
    model = _model(pool)
    x = np.random.default_rng(0).standard_normal((5, 13, 14, 2)).astype(np.float32)
    with miniconv.use_backend(backend):
        first = compile_plan(model).steps[0]  # the first Conv2D, with or without the pooling after it
        assert (first.op == "conv2d_bias_relu_max_pool2d" and first.layers == tuple(model.layers[:2])) == fused
        y, backward = model.forward(x)
        dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
        dx = backward(dy)
        grads = [g.copy() for layer in model.layers for g in layer.grads]
        h, pullbacks = x, []
        for layer in model.layers:  # one by one
            h, back = layer.forward(h)
            pullbacks.append(back)
        np.testing.assert_allclose(h, y, rtol=1e-6, atol=1e-7)
        g = dy
        for back in reversed(pullbacks):
            g = back(g)
    np.testing.assert_allclose(dx, g, rtol=1e-5, atol=1e-6)
    for fused_grad, grad in zip(grads, (g for layer in model.layers for g in layer.grads)):
        np.testing.assert_allclose(fused_grad, grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape, padding", [
    ((2, 9, 10, 8, 5), "VALID"),    # P = 7: the last conv row unread; Q = 8
    ((1, 7, 6, 9, 3), "SAME"),      # batch 1, padding zeros inside the 4 x 4 tiles
    ((3, 4, 4, 16, 7), "SAME"),     # 2 x 2 tiles, every one reaching into the padding
])
def test_conv2d_bias_relu_max_pool2d_winograd_shapes(backend, shape, padding):
    """3 x 3, stride 1, >= 8 channels under a 2 x 2 pool: the cpu backend's Winograd forward, against TF."""
    check_first_tie_free_seed(shape, padding, (2, 2), backend)


def _tie_free_3x3_case(N, H, W, C, K, padding, seed):
    """(rng, x, w, bias, g, pg) of a 3 x 3, stride 1 conv under a 2 x 2 pool; Hypothesis rejects
    a VALID conv output below 2 x 2 and windows holding a near tie (another path may pick
    another winner)."""
    from miniconv.shapes import conv_geometry, pool_geometry

    assume(padding == "SAME" or (H >= 4 and W >= 4))
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (N, H, W, C)).astype(np.float32)
    w = rng.uniform(-1, 1, (3, 3, C, K)).astype(np.float32)
    bias = rng.uniform(-0.5, 0.5, K).astype(np.float32)
    g = conv_geometry(x.shape, w.shape, (1, 1), padding, (1, 1))
    pg = pool_geometry(g.output_shape, (2, 2), (2, 2), "VALID")
    assume(not windows_near_tie(nn.conv2d_bias_relu(x, w, bias, padding=padding, backend="numpy"), (2, 2)))
    return rng, x, w, bias, g, pg


@given(N=st.integers(1, 3), H=st.integers(2, 12), W=st.integers(2, 12), C=st.integers(8, 12), K=st.integers(1, 6),
       padding=st.sampled_from(["VALID", "SAME"]), seed=st.integers(0, 2**32 - 1))
def test_cpu_winograd_forward_is_im2col_up_to_rounding(N, H, W, C, K, padding, seed):
    """The cpu backend's two forwards of the fused op: the same winners and values within rounding."""
    from miniconv.backend.cpu import conv_pool_kernels, winograd_kernels

    _, x, w, bias, g, pg = _tie_free_3x3_case(N, H, W, C, K, padding, seed)
    assert winograd_kernels.applies(g, pg)
    y, argmax = winograd_kernels.forward(x, w, bias, g, pg)
    y_ref, argmax_ref = conv_pool_kernels.im2col_bias_relu_max_pool_forward(x, w, bias, g, pg)
    np.testing.assert_array_equal(argmax, argmax_ref)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5 * 9 * C)


@pytest.mark.parametrize("shape, padding", [
    ((2, 9, 10, 1, 5), "VALID"),    # P = 7: the last conv row unread; K = 5, below one vector
    ((1, 7, 6, 3, 3), "SAME"),      # batch 1, RGB, the windows reading the zero padding
    ((3, 4, 4, 4, 37), "SAME"),     # 2 x 2 windows, all at the border; K = 37, a remainder after vectors
    ((5, 11, 13, 2, 9), "VALID"),   # odd P and Q: the last conv row and column unread
    ((2, 12, 11, 3, 32), "VALID"),  # RGB, 32 filters: the rows (``pooled_forward_rows``); Q odd
    ((1, 6, 7, 1, 64), "SAME"),     # one channel, two blocks of filters by rows
])
def test_conv2d_bias_relu_max_pool2d_direct_shapes(backend, shape, padding):
    """3 x 3, stride 1, <= 4 channels under a 2 x 2 pool: the cpu backend's direct loops, against TF
    (``check`` also compares the direct backward, taken without dx, with im2col's, taken with it)."""
    check_first_tie_free_seed(shape, padding, (2, 2), backend)


@given(N=st.integers(1, 3), H=st.integers(2, 12), W=st.integers(2, 12), C=st.integers(1, 4), K=st.integers(1, 40),
       padding=st.sampled_from(["VALID", "SAME"]), chunk_windows=st.sampled_from([1, 1024]),
       seed=st.integers(0, 2**32 - 1))
def test_cpu_direct_path_is_im2col_up_to_rounding(N, H, W, C, K, padding, chunk_windows, seed):
    """The cpu backend's direct loops and its im2col path, forward (the same winners, values
    within rounding) and backward without dx (dw, dbias within rounding); chunk_windows = 1 makes
    every pooled row a chunk of its own, so that the partials' order is exercised."""
    from miniconv.backend.cpu import conv_kernels, conv_pool_kernels, direct_kernels

    rng, x, w, bias, g, pg = _tie_free_3x3_case(N, H, W, C, K, padding, seed)
    assert direct_kernels.applies(g, pg)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(direct_kernels, "CHUNK_WINDOWS", chunk_windows)
        y, argmax = direct_kernels.forward(x, w, bias, g, pg)
        y_ref, argmax_ref = conv_pool_kernels.im2col_bias_relu_max_pool_forward(x, w, bias, g, pg)
        np.testing.assert_array_equal(argmax, argmax_ref)
        np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5 * 9 * C)
        dy = rng.uniform(-1, 1, y.shape).astype(np.float32)
        dw, dbias = direct_kernels.backward(x, y, argmax, dy, g, pg)
        Pz, Qz = 2 * pg.P, 2 * pg.Q
        zero = np.float32(0)

        def upstream(first, last, dz, bias_partial):
            conv_pool_kernels.pooled_gradient_images(dy[first:last], y[first:last], argmax[first:last], Qz, 2, 2,
                                                     Pz, Qz, zero, dz, bias_partial)

        _, dw_ref, dbias_ref = conv_kernels.backward_by_images(x, w, g, upstream, False, cells=(Pz, Qz))
    terms = N * Pz * Qz  # each dw value sums one term per conv cell
    np.testing.assert_allclose(dw, dw_ref, rtol=1e-5, atol=1e-6 * terms)
    np.testing.assert_allclose(dbias, dbias_ref, rtol=1e-5, atol=1e-6 * terms)


@given(N=st.integers(1, 3), H=st.integers(2, 12), W=st.integers(2, 12), C=st.integers(1, 4),
       K=st.sampled_from([32, 64]), padding=st.sampled_from(["VALID", "SAME"]), chunk_cells=st.sampled_from([1, 4096]),
       nonfinite=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_cpu_direct_pooled_rows_give_the_units_bits(N, H, W, C, K, padding, chunk_cells, nonfinite, seed):
    """The fused forward's two direct loops, rows of conv cells (``pooled_forward_rows``, where
    ``rows_apply``) and windows (``forward_units``): the same sums in the same order, so in the
    optimised build the same y bits and winners, inf and NaN included (the trainers' results do not
    depend on which loop ran); chunk_cells = 1 makes every pooled row a chunk."""
    from miniconv.backend.cpu import direct_kernels
    from miniconv.shapes import conv_geometry, pool_geometry

    assume(padding == "SAME" or (H >= 4 and W >= 4))
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (N, H, W, C)).astype(np.float32)
    w = rng.uniform(-1, 1, (3, 3, C, K)).astype(np.float32)
    bias = rng.uniform(-0.5, 0.5, K).astype(np.float32)
    if nonfinite:
        for a in (x, w):
            a.flat[rng.integers(a.size, size=2)] = rng.choice([np.inf, -np.inf, np.nan], size=2)
    g = conv_geometry(x.shape, w.shape, (1, 1), padding, (1, 1))
    pg = pool_geometry(g.output_shape, (2, 2), (2, 2), "VALID")
    assert direct_kernels.rows_apply(K, 2 * pg.Q, 2, np.float32)
    with pytest.MonkeyPatch.context() as patch, np.errstate(invalid="ignore"):
        patch.setattr(direct_kernels, "CHUNK_CELLS", chunk_cells)
        y, argmax = direct_kernels.forward(x, w, bias, g, pg)
        patch.setattr(direct_kernels, "rows_apply", lambda *args: False)
        y_units, argmax_units = direct_kernels.forward(x, w, bias, g, pg)
    if numba.config.BOUNDSCHECK:  # bounds checks change which multiply-adds LLVM fuses: an ulp apart here
        np.testing.assert_allclose(y, y_units, rtol=1e-6, atol=1e-6 * 9 * C)
        return
    np.testing.assert_array_equal(y.view(np.int32), y_units.view(np.int32))
    np.testing.assert_array_equal(argmax, argmax_units)


@given(N=st.integers(1, 3), Pp=st.integers(1, 5), Qp=st.integers(1, 5), K=st.integers(1, 40),
       Rp=st.integers(1, 3), Sp=st.integers(1, 3), extra=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       data=st.data())
def test_cpu_pooled_gradient_is_a_scatter_of_the_winners(N, Pp, Qp, K, Rp, Sp, extra, data):
    """``pooled_gradient_images`` (a select per window cell) gives the bits of its definition, a
    zeroed dz with dy scattered to each window's winner where y > 0 and the bias partial's sum of
    those dy in window order: any window, cells no window reads, inf, NaN and signed zeros."""
    from miniconv.backend.cpu import conv_pool_kernels

    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    Qz, Pd, Qd = Qp * Sp, Pp * Rp + extra[0], Qp * Sp + extra[1]
    dy, y = (rng.standard_normal((N, Pp, Qp, K)).astype(np.float32) for _ in range(2))
    specials = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0], np.float32)
    dy.flat[rng.integers(0, dy.size, 4)] = specials[rng.integers(0, 5, 4)]
    y.flat[rng.integers(0, y.size, 2)] = specials[rng.integers(0, 5, 2)]
    argmax = (rng.integers(0, Rp, dy.shape) * Qz + rng.integers(0, Sp, dy.shape)).astype(np.int32)
    dz = np.full((N * Pd * Qd, K), 7.0, np.float32)
    bias = np.zeros(K, np.float32)
    conv_pool_kernels.pooled_gradient_images(dy, y, argmax, Qz, Rp, Sp, Pd, Qd, np.float32(0), dz, bias)

    expected = np.zeros((N, Pd, Qd, K), np.float32)
    expected_bias = np.zeros(K, np.float32)
    for n, i, j, k in np.ndindex(dy.shape):
        if y[n, i, j, k] > 0:
            t, v = divmod(int(argmax[n, i, j, k]), Qz)
            expected[n, i * Rp + t, j * Sp + v, k] = dy[n, i, j, k]
            expected_bias[k] += dy[n, i, j, k]
    assert np.array_equal(dz.reshape(expected.shape).view(np.int32), expected.view(np.int32))
    assert np.array_equal(bias.view(np.int32), expected_bias.view(np.int32))
