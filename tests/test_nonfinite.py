"""inf, NaN and huge values through every convolution path: a fast path gives no number the
numpy reference and TensorFlow do not.

Shape legend: N batch, H W input size, C in-channels, K filters, R S kernel size, P Q conv
output size, Rp Sp the pooling window of the fused op.

The cpu backend's paths: conv2d's forward (im2col + BLAS, or the direct rows for 3 x 3 inputs of <= 4
channels and 32 or 64 filters), input gradient (col2im) and filter gradient (im2col, or the direct
loops for 3 x 3 inputs of <= 4 channels and >= 8 filters);
conv2d_bias_relu's fused forward and backward; conv2d_bias_relu_max_pool2d's forward through
the direct loops (3 x 3, stride 1, <= 4 channels, 2 x 2 pool), Winograd (the same with >= 8
channels) or im2col (any other), and its backward (whole images, or the direct loops without dx).

Values (``kind``):
    inf       a few input cells +-inf; in half the cases a fifth of the filters exactly 0 (0 * inf = NaN)
    nan       a few input cells NaN
    filters   a few filter entries +-inf or NaN (padding reads 0, and 0 * inf = NaN, as TF's)
    huge      inputs up to +-3e38 or +-3.75e37, filters small enough that no partial sum of the exact
              convolution overflows in any order (sum |terms| < 3.4e38), and so is the upstream gradient
    overflow  inputs near 3e38 and filters in [0.5, 1), all positive: every sum of two or more
              terms passes the largest float, +inf in any order (Winograd's transforms: inf - inf)

Compared with TensorFlow's composition (forward and gradients): NaN where TF has NaN, the same
infinities, finite values within ``tf_reference``'s rounding bound against the sum of |terms|.
Gradients are compared with the numpy reference instead in two cases where TF's differ from the
formula: a pooling window whose first cell is NaN sends TF's gradient to that cell (documented,
tests/test_pool.py), and TF's only dilated gradient (``tf.nn.convolution``'s space-to-batch)
multiplies input cells that no output reads by a zero gradient: inf * 0 = NaN in dw where the
formula has no such term.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import tf_reference
from hypothesis import assume, example, given
from hypothesis import strategies as st
from strategies import MAX_N, ConvCase, conv_cases, seeds
from tf_reference import C_TOL, EPS32, assert_close, mc_vjp, tf_vjp

import miniconv
from miniconv import nn
from miniconv.shapes import conv_geometry, pool_geometry
from miniconv.verify_cases import windows_near_tie

tf = tf_reference.tf
KINDS = ("inf", "nan", "filters", "huge", "overflow")
HUGE = 3e38


def tf_conv2d_bias_relu(input, filters, bias, strides=1, padding="VALID", dilations=1):
    return tf.nn.relu(tf.nn.bias_add(tf_reference.tf_conv2d(input, filters, strides, padding, dilations), bias))


def tf_conv2d_bias_relu_max_pool2d(input, filters, bias, pool_size, strides=1, padding="VALID", dilations=1):
    return tf.nn.max_pool2d(tf_conv2d_bias_relu(input, filters, bias, strides, padding, dilations), pool_size,
                            pool_size, "VALID")


@dataclass(frozen=True)
class SpecialCase:
    """A convolution (``conv``, a ConvCase) of the op ``op``, values of ``kind``, a pool for the fused op."""

    op: str  # "conv2d", "conv2d_bias_relu" or "conv2d_bias_relu_max_pool2d"
    conv: ConvCase
    kind: str
    pool: tuple[int, int] = (1, 1)

    @property
    def pooled_shape(self):
        c, (Rp, Sp) = self.conv, self.pool
        return (c.N, c.P // Rp, c.Q // Sp, c.K)

    @property
    def kwargs(self) -> dict:
        kwargs = dict(self.conv.kwargs)
        return {**kwargs, "pool_size": self.pool} if self.op == "conv2d_bias_relu_max_pool2d" else kwargs

    def arrays(self):
        """(x, w[, bias]), dy: float32, as the module docstring's ``kind``."""
        c = self.conv
        rng = np.random.default_rng(c.seed)
        x = rng.uniform(-1, 1, (c.N, c.H, c.W, c.C))
        w = rng.uniform(-1, 1, (c.R, c.S, c.C, c.K))
        bias = rng.uniform(-0.5, 0.5, c.K)
        out_shape = self.pooled_shape if self.op == "conv2d_bias_relu_max_pool2d" else (c.N, c.P, c.Q, c.K)
        dy = rng.uniform(-1, 1, out_shape)
        terms = c.R * c.S * c.C  # of one output: the filter gradient's sums have c.N * c.P * c.Q
        if self.kind == "inf":
            _scatter(rng, x, [np.inf, -np.inf])
            if rng.random() < 0.5:
                w[rng.random(w.shape) < 0.2] = 0.0
        elif self.kind == "nan":
            _scatter(rng, x, [np.nan])
        elif self.kind == "filters":
            _scatter(rng, w, [np.inf, -np.inf, np.nan], most=2)
        elif self.kind == "huge":  # some small enough for Winograd's transforms (|V| <= 4 max|x|)
            scale = rng.choice([HUGE, HUGE / 8])
            x *= scale
            x.flat[rng.integers(x.size)] = rng.choice([-scale, scale])
            w *= rng.choice([0.9, 1e-3]) / terms
            dy *= 0.9 / (c.N * c.P * c.Q)
        else:  # overflow
            x, w = rng.uniform(0.9, 1.0, x.shape) * HUGE, rng.uniform(0.5, 1.0, w.shape)
            bias, dy = np.abs(bias), rng.uniform(0.5, 1.0, dy.shape)
        arrays = (x, w) if self.op == "conv2d" else (x, w, bias)
        return tuple(a.astype(np.float32) for a in arrays), dy.astype(np.float32)


def _scatter(rng, a, values, most=3):
    """Set 1..most random cells of ``a`` to values drawn from ``values``."""
    for index in rng.integers(a.size, size=rng.integers(1, most + 1)):
        a.flat[index] = rng.choice(values)


def _three_by_three(draw, channels, K=None) -> ConvCase:
    """A 3 x 3, stride 1, undilated convolution whose output holds a 2 x 2 pooling window."""
    padding = draw(st.sampled_from(["VALID", "SAME"]))
    low = 4 if padding == "VALID" else 2
    N, H, W = draw(st.integers(1, MAX_N)), draw(st.integers(low, 10)), draw(st.integers(low, 10))
    C = draw(st.integers(*channels))
    K = draw(st.integers(1, 6)) if K is None else draw(st.integers(*K))
    return ConvCase(2, N, H, W, C, K, 3, 3, (1, 1), (1, 1), padding, [1, 1], [1, 1], seed=draw(seeds))


@st.composite
def special_cases(draw, op: str, path: str) -> SpecialCase:
    """path: "winograd" (C 8..12), "direct" (C 1..4), "filter_loops" (conv2d, C 1..4, K 8..36:
    the direct filter gradient), "forward_rows" (conv2d, C 1..4, K 32 or 64: the direct forward) or "im2col" (any geometry of ``strategies.conv_cases``)."""
    if path == "winograd":
        conv = _three_by_three(draw, (8, 12))
    elif path == "direct":
        conv = _three_by_three(draw, (1, 4))
    elif path == "filter_loops":
        conv = _three_by_three(draw, (1, 4), K=(8, 36))
    elif path == "forward_rows":
        conv = _three_by_three(draw, (1, 4), K=draw(st.sampled_from([(32, 32), (64, 64)])))
    else:
        conv = draw(conv_cases(dims=2))
    pool = (1, 1)
    if op == "conv2d_bias_relu_max_pool2d":
        pool = (2, 2) if path != "im2col" else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        assume(conv.P >= pool[0] and conv.Q >= pool[1])
    return SpecialCase(op, conv, draw(st.sampled_from(KINDS)), pool)


# --- the comparison --------------------------------------------------------------------------------


def _magnitudes(case: SpecialCase, arrays, dy):
    """Per compared tensor, the largest sum of |terms| of any element (finite ones): the scale of
    its rounding. The fused pooled op's sums are those of conv2d_bias_relu with |dy| on every cell
    of every window, a bound for whichever cell wins. Dilated cases take the sums from the numpy
    reference: TF's dilated gradient multiplies unread input cells (inf among them) by a zero
    gradient, so its |terms| run is NaN where the formula's sum is finite."""
    abs_arrays = [np.abs(a) for a in arrays]
    if max(case.conv.dilations) > 1:
        def run(mc_fn, _tf_fn, tensors, upstream, kwargs):
            return mc_vjp(mc_fn, [t.astype(np.float64) for t in tensors], upstream.astype(np.float64), kwargs, "numpy")
    else:
        def run(_mc_fn, tf_fn, tensors, upstream, kwargs):
            return tf_vjp(tf_fn, tensors, upstream, kwargs)
    if case.op == "conv2d_bias_relu_max_pool2d":
        (Rp, Sp), c = case.pool, case.conv
        cells = np.repeat(np.repeat(np.abs(dy), Rp, axis=1), Sp, axis=2)
        dz = np.zeros((c.N, c.P, c.Q, c.K), np.float32)
        dz[:, : cells.shape[1], : cells.shape[2]] = cells
        y, grads = run(nn.conv2d_bias_relu, tf_conv2d_bias_relu, abs_arrays, dz, case.conv.kwargs)
    else:
        y, grads = run(getattr(nn, case.op), TF_OPS[case.op], abs_arrays, np.abs(dy), case.kwargs)
    return [_largest_finite(t) for t in (y, *grads)]


def _largest_finite(t) -> float:
    finite = np.isfinite(t)
    return float(np.abs(t[finite]).max()) if finite.any() else 0.0


def _lengths(case: SpecialCase):
    """Reduction lengths of y, dx, dw(, dbias): R*S*C, R*S*K, N*P*Q."""
    c = case.conv
    lengths = (c.R * c.S * c.C, c.R * c.S * c.K, c.N * c.P * c.Q)
    return lengths if case.op == "conv2d" else (*lengths, c.N * c.P * c.Q)


def _nan_first_window(case: SpecialCase, arrays) -> bool:
    """Some pooling window's first cell is NaN (TF's max-pool gradient then goes to that cell)."""
    if case.op != "conv2d_bias_relu_max_pool2d":
        return False
    (Rp, Sp), c = case.pool, case.conv
    z = nn.conv2d_bias_relu(*arrays, **case.conv.kwargs, backend="numpy")
    return bool(np.isnan(z[:, : (c.P // Rp) * Rp : Rp, : (c.Q // Sp) * Sp : Sp]).any())


def check_special(case: SpecialCase, backend: str) -> None:
    """The backend's output and gradients against TF's (the numpy reference's for a NaN-first window's gradients)."""
    arrays, dy = case.arrays()
    if case.op == "conv2d_bias_relu_max_pool2d":  # rounding could pick another winner than TF
        z64 = nn.conv2d_bias_relu(*arrays, **case.conv.kwargs, backend="numpy")
        assume(not windows_near_tie(np.where(np.isfinite(z64), z64, 0.0), case.pool))
    mc_fn = getattr(nn, case.op)
    with np.errstate(invalid="ignore", over="ignore"):
        y, grads = mc_vjp(mc_fn, arrays, dy, case.kwargs, backend)
        y_tf, grads_tf = tf_vjp(TF_OPS[case.op], arrays, dy, case.kwargs)
        if _nan_first_window(case, arrays) or max(case.conv.dilations) > 1:
            grads_tf = mc_vjp(mc_fn, arrays, dy, case.kwargs, "numpy")[1]
        magnitudes = _magnitudes(case, arrays, dy)
    where = f"{case.op}[backend={backend}, {case}]"
    for i, (ours, theirs, length) in enumerate(zip((y, *grads), (y_tf, *grads_tf), _lengths(case))):
        rtol = C_TOL * EPS32 * np.sqrt(length)
        label = "output" if i == 0 else f"gradient of array {i - 1}"
        assert_close(ours, theirs, rtol=rtol, magnitude=magnitudes[i], floor=magnitudes[i], what=f"{where} {label}")


TF_OPS = {
    "conv2d": tf_reference.tf_conv2d,
    "conv2d_bias_relu": tf_conv2d_bias_relu,
    "conv2d_bias_relu_max_pool2d": tf_conv2d_bias_relu_max_pool2d,
}


@given(case=special_cases("conv2d_bias_relu_max_pool2d", "winograd"))
def test_winograd_path_special_values(backend, case):
    check_special(case, backend)


@given(case=special_cases("conv2d_bias_relu_max_pool2d", "direct"))
def test_direct_path_special_values(backend, case):
    check_special(case, backend)


@given(case=special_cases("conv2d_bias_relu_max_pool2d", "im2col"))
def test_im2col_conv_pool_special_values(backend, case):
    check_special(case, backend)


@given(case=special_cases("conv2d", "im2col"))
@example(case=SpecialCase("conv2d", ConvCase(2, 3, 2, 1, 2, 1, 4, 1, (1, 1), (3, 1), "SAME", [1, 1], [3, 1], 56614),
                          "inf"))  # dilated with inf inputs: the |terms| scale comes from the formula, not TF
def test_conv2d_special_values(backend, case):
    check_special(case, backend)


@given(case=special_cases("conv2d", "filter_loops"))
def test_conv2d_direct_filter_gradient_special_values(backend, case):
    check_special(case, backend)


@given(case=special_cases("conv2d", "forward_rows"))
def test_conv2d_direct_forward_special_values(backend, case):
    check_special(case, backend)


@given(case=special_cases("conv2d_bias_relu", "im2col"))
def test_conv2d_bias_relu_special_values(backend, case):
    check_special(case, backend)


# --- named cases: the reports ----------------------------------------------------------------


def _winograd_arrays(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (1, 8, 8, 8)).astype(np.float32)
    w = rng.uniform(-1, 1, (3, 3, 8, 4)).astype(np.float32)
    return x, w, np.zeros(4, np.float32)


def test_one_inf_pixel_gives_inf_in_every_window_that_reads_it(backend):
    """Winograd once gave [[inf, 50.4], [50.4, -3.4e38]]-like windows here: inf - inf = NaN in its transform."""
    x, w, b = _winograd_arrays()
    x[0, 3, 3, 0] = np.inf
    w = np.abs(w)  # every conv cell that reads the pixel is +inf
    y = nn.conv2d_bias_relu_max_pool2d(x, w, b, 2, backend=backend)
    y_tf = tf_conv2d_bias_relu_max_pool2d(x, w, b, 2).numpy()
    # conv cells 1..3 read it (3 x 3 kernel): the windows of conv rows and columns 0-1 and 2-3
    expected = np.zeros(y.shape, bool)
    expected[0, :2, :2] = True
    np.testing.assert_array_equal(y == np.inf, expected)
    np.testing.assert_array_equal(y_tf == np.inf, expected)
    assert np.isfinite(y[~expected]).all()


def test_huge_inputs_with_small_filters_stay_finite(backend):
    """Inputs of +-3e38 and filters of 1e-3: TF gives about 1e36; Winograd overflowed to the lowest float."""
    x, w, b = _winograd_arrays(1)
    x = (np.sign(x) * HUGE).astype(np.float32)
    w = (w * 1e-3).astype(np.float32)
    y = nn.conv2d_bias_relu_max_pool2d(x, w, b, 2, backend=backend)
    y_tf = tf_conv2d_bias_relu_max_pool2d(x, w, b, 2).numpy()
    assert np.isfinite(y).all() and (y >= 0).all()
    np.testing.assert_allclose(y, y_tf, rtol=1e-5, atol=1e-5 * float(np.abs(y_tf).max()))


def test_relu_zero_is_positive_zero(backend):
    """The fused epilogues give +0.0 for a negative cell, as TF's relu (never -0.0)."""
    for C in (1, 5, 8):  # the direct loops, im2col, Winograd
        rng = np.random.default_rng(C)
        x = rng.uniform(-1, 1, (1, 6, 6, C)).astype(np.float32)
        w = rng.uniform(-1, 1, (3, 3, C, 3)).astype(np.float32)
        y = nn.conv2d_bias_relu_max_pool2d(x, w, np.full(3, -100, np.float32), 2, backend=backend)
        assert (y == 0).all() and not np.signbit(y).any(), C


@pytest.mark.parametrize("C", [1, 5, 8])
def test_a_finite_call_after_a_nan_call_is_unaffected(backend, C):
    """Scratch buffers are reused between calls: NaN left in them by one call must not reach the next."""
    rng = np.random.default_rng(C)
    x = rng.uniform(-1, 1, (2, 10, 10, C)).astype(np.float32)
    w = rng.uniform(-1, 1, (3, 3, C, 4)).astype(np.float32)
    b = rng.uniform(-0.5, 0.5, 4).astype(np.float32)
    dy = rng.uniform(-1, 1, (2, 4, 4, 4)).astype(np.float32)

    def run(x):
        y, pullback = miniconv.vjp(nn.conv2d_bias_relu_max_pool2d, x, w, b, 2, backend=backend)
        return (y, *pullback(dy), *pullback(dy, input_gradient=False)[1:])

    before = run(x)
    with np.errstate(invalid="ignore"):
        run(np.full_like(x, np.nan))
    for a, b_ in zip(run(x), before):
        np.testing.assert_array_equal(a, b_)


def test_cpu_unread_conv_cells_count_in_the_gradient():
    """P = 7 under a 2 x 2 pool: no window reads conv row 6, whose gradient is 0; an inf in the input
    row only it reads still makes dw NaN (inf * 0), as in TF and the numpy reference."""
    rng = np.random.default_rng(0)
    for C in (1, 5, 8):
        x = rng.uniform(-1, 1, (1, 9, 8, C)).astype(np.float32)
        x[0, 8, 3, 0] = np.inf  # read by conv row 6 only
        w = rng.uniform(-1, 1, (3, 3, C, 2)).astype(np.float32)
        b = np.zeros(2, np.float32)
        g = conv_geometry(x.shape, w.shape, (1, 1), "VALID", (1, 1))
        assert (g.P, pool_geometry(g.output_shape, (2, 2), (2, 2), "VALID").P) == (7, 3)
        y, pullback = miniconv.vjp(nn.conv2d_bias_relu_max_pool2d, x, w, b, 2, backend="cpu")
        dy = rng.uniform(-1, 1, y.shape).astype(np.float32)
        with np.errstate(invalid="ignore"):
            expected = miniconv.vjp(nn.conv2d_bias_relu_max_pool2d, x, w, b, 2, backend="numpy")[1](dy)
            for grads in (pullback(dy), (None, *pullback(dy, input_gradient=False)[1:])):
                for ours, theirs in zip(grads[1:], expected[1:]):
                    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
