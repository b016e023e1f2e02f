"""depthwise_conv2d and separable_conv2d: forward and VJP against TensorFlow on every backend, the
cpu backend's 3x3 kernels against its one-at-a-time oracles, and inf / NaN against the reference.

Shape legend: N batch, H W input size, C in-channels, M channel multiplier, K pointwise filters,
R S kernel size, P Q output size.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import strategies as st
from strategies import DepthwiseCase, depthwise_cases, uniform
from tf_reference import assert_vjp_close

import miniconv
from miniconv.shapes import depthwise_geometry, normalize_conv_padding


def check(case: DepthwiseCase, backend: str) -> None:
    arrays, dy = case.arrays()
    assert_vjp_close(case.mc_fn, case.tf_fn, arrays, dy, case.kwargs, backend=backend, tol=case.tolerance())


@given(case=depthwise_cases())
def test_depthwise_conv2d_matches_tf(backend, case):
    check(case, backend)


@given(case=depthwise_cases(filter_size=(3, 3)))
def test_depthwise_conv2d_3x3_matches_tf(backend, case):
    """3x3 filters: the cpu backend's grouped kernels (for M = 1), every stride, padding and border."""
    check(case, backend)


@given(case=depthwise_cases(separable=True))
def test_separable_conv2d_matches_tf(backend, case):
    check(case, backend)


# --- named cases ---------------------------------------------------------------------------------


def case(N, H, W, C, M, R=3, S=3, stride=1, padding="SAME", dilation=1, K=0, seed=0) -> DepthwiseCase:
    return DepthwiseCase(N, H, W, C, M, R, S, stride, dilation, padding, K, seed)


@pytest.mark.parametrize("shape, stride, padding", [
    ((2, 16, 16, 32), 2, "SAME"),   # MobileNet's stride-2 layers: even input, pad 1 at the bottom / right only
    ((2, 15, 17, 24), 2, "SAME"),   # odd sizes: pad 1 each side
    ((1, 14, 14, 48), 1, "SAME"),   # EfficientNet-Lite's 14 x 14 layers, batch 1
    ((2, 13, 21, 16), 1, "VALID"),  # groups of four cells and a remainder in every row
    ((1, 9, 9, 8), 2, "VALID"),
])  # fmt: skip
def test_depthwise_mobilenet_like_shapes(backend, shape, stride, padding):
    N, H, W, C = shape
    check(case(N, H, W, C, 1, stride=stride, padding=padding, seed=sum(shape)), backend)


@pytest.mark.parametrize("padding", [
    [[0, 0], [1, 1], [1, 1], [0, 0]],
    [[0, 0], [0, 2], [3, 0], [0, 0]],   # asymmetric, more than the filter needs
    [[0, 0], [3, 1], [2, 3], [0, 0]],   # top 3: the 3x3 backward's first dx row reads dy rows 3, 2, 1
    [[0, 0], [0, 0], [0, 0], [0, 0]],   # = VALID
])  # fmt: skip
@pytest.mark.parametrize("stride, dilation", [(1, 1), (2, 1), (1, 2)])
@pytest.mark.parametrize("M", [1, 2])  # (M = 1: the cpu backend's 3x3 row kernels)
def test_depthwise_explicit_padding(backend, padding, stride, dilation, M):
    check(case(2, 7, 9, 3, M, stride=stride, padding=padding, dilation=dilation, seed=stride), backend)


def test_depthwise_single_channel_single_image_non_square(backend):
    """N = C = M = 1, H != W, R != S: transpositions of H / W or N / C would show."""
    check(case(1, 5, 9, 1, 1, R=2, S=3, stride=2, padding="SAME", seed=11), backend)


def test_depthwise_kernel_larger_than_input_same(backend):
    check(case(2, 2, 3, 2, 2, R=5, S=4, padding="SAME", seed=3), backend)


def test_depthwise_channel_order_is_c_times_m_plus_m(backend):
    """Output channel c * M + m is input channel c under filter (c, m), TensorFlow's order, by hand:
    a 1 x 1 filter scales channel c by 10 c + m."""
    C, M = 3, 2
    x = np.ones((1, 2, 2, C), np.float32)
    w = np.array([[[[10 * c + m for m in range(M)] for c in range(C)]]], np.float32)  # (1, 1, C, M)
    y = miniconv.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], "VALID", backend=backend)
    np.testing.assert_array_equal(y[0, 0, 0], [0, 1, 10, 11, 20, 21])


def test_depthwise_pullback_without_input_gradient(backend):
    arrays, dy = case(2, 8, 8, 4, 1, seed=5).arrays()
    for op, args in ((miniconv.nn.depthwise_conv2d, arrays), (miniconv.nn.separable_conv2d, (*arrays, np.ones((1, 1, 4, 3), np.float32)))):
        y, pullback = miniconv.vjp(op, *args, strides=1, padding="SAME", backend=backend)
        dy = np.random.default_rng(0).standard_normal(y.shape).astype(np.float32)
        full, partial = pullback(dy), pullback(dy, input_gradient=False)
        assert partial[0] is None
        for a, b in zip(full[1:], partial[1:]):
            np.testing.assert_array_equal(a, b)


def test_separable_is_depthwise_then_pointwise(backend):
    """The same bits as the composition of the two ops."""
    (x, w, pw), _ = case(2, 9, 7, 3, 2, K=4, stride=2, seed=9).arrays()
    z = miniconv.nn.separable_conv2d(x, w, pw, [1, 2, 2, 1], "SAME", backend=backend)
    y = miniconv.nn.depthwise_conv2d(x, w, [1, 2, 2, 1], "SAME", backend=backend)
    np.testing.assert_array_equal(z, miniconv.nn.conv2d(y, pw, 1, "VALID", backend=backend))


# --- inf and NaN ---------------------------------------------------------------------------------


def _sprinkle(rng, a, fraction=0.06, values=(np.inf, -np.inf, np.nan)):
    a = a.copy()
    where = rng.random(a.shape) < fraction
    a[where] = rng.choice(values, int(where.sum()))
    return a


def assert_same_nonfinite(actual, expected, what):
    """Non-finite entries equal (NaN where NaN, the same infinities); finite ones close."""
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg=f"{what}: NaN positions")
    np.testing.assert_array_equal(np.isposinf(actual), np.isposinf(expected), err_msg=f"{what}: +inf positions")
    np.testing.assert_array_equal(np.isneginf(actual), np.isneginf(expected), err_msg=f"{what}: -inf positions")
    finite = np.isfinite(expected)
    np.testing.assert_allclose(actual[finite], expected[finite], rtol=1e-5, atol=1e-5, err_msg=what)


@given(case=depthwise_cases(filter_size=(3, 3)) | depthwise_cases(), data=st.data())
def test_depthwise_nonfinite_like_the_reference(backend, case, data):
    """inf and NaN in x, the filter and dy: the same non-finite entries as the NumPy reference
    (a padding cell multiplies its filter value, as the zero-padded formula does; dx sums the real
    dy cells only)."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    (x, w), dy = case.arrays()
    x, w, dy = _sprinkle(rng, x), _sprinkle(rng, w), _sprinkle(rng, dy, values=(np.inf, np.nan))
    with np.errstate(all="ignore"):
        y_ref, pullback_ref = miniconv.vjp(miniconv.nn.depthwise_conv2d, x, w, backend="numpy", **case.kwargs)
        dx_ref, dw_ref = pullback_ref(dy)
        y, pullback = miniconv.vjp(miniconv.nn.depthwise_conv2d, x, w, backend=backend, **case.kwargs)
        dx, dw = pullback(dy)
    for actual, expected, what in ((y, y_ref, "y"), (dx, dx_ref, "dx"), (dw, dw_ref, "dw")):
        assert_same_nonfinite(actual, expected, f"{what} {case}")


def test_depthwise_nonfinite_activations_match_tf(backend):
    """With finite filters TensorFlow's depthwise op and miniconv agree on inf / NaN in x and dy."""
    rng = np.random.default_rng(7)
    for stride in (1, 2):
        c = case(2, 10, 11, 4, 2, stride=stride, seed=stride)
        (x, w), dy = c.arrays()
        x, dy = _sprinkle(rng, x), _sprinkle(rng, dy, values=(np.inf, np.nan))
        tensors = [tf.constant(x), tf.constant(w)]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            y_tf = tf.nn.depthwise_conv2d(*tensors, **c.kwargs)
        dx_tf, dw_tf = tape.gradient(y_tf, tensors, output_gradients=tf.constant(dy))
        with np.errstate(all="ignore"):  # the reference's inf - inf
            y, pullback = miniconv.vjp(miniconv.nn.depthwise_conv2d, x, w, backend=backend, **c.kwargs)
            dx, dw = pullback(dy)
        for actual, expected, what in ((y, y_tf, "y"), (dx, dx_tf, "dx"), (dw, dw_tf, "dw")):
            assert_same_nonfinite(actual, expected.numpy(), f"{what} stride {stride}")


# --- the cpu backend's kernels against their oracles ----------------------------------------------


@given(N=st.integers(1, 4), H=st.integers(1, 14), W=st.integers(1, 40), C=st.integers(1, 20),
       M=st.sampled_from([1, 1, 1, 2]), R=st.sampled_from([3, 3, 3, 5, 5, 1, 2, 4]), S=st.sampled_from([3, 3, 3, 5, 5, 2]),
       stride=st.integers(1, 3), dilation=st.sampled_from([1, 1, 2]), padding=st.sampled_from(["SAME", "VALID", "X"]),
       pads=st.lists(st.integers(0, 3), min_size=4, max_size=4), chunk_images=st.integers(1, 4),
       streamed=st.booleans(), prefetched=st.booleans(), local=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_cpu_depthwise_kernels_match_their_oracles(N, H, W, C, M, R, S, stride, dilation, padding, pads, chunk_images,
                                                   streamed, prefetched, local, seed):
    """The row / group kernels (3x3 with M = 1: groups of four cells and pairs on flat views; the 5x5
    forward with M = 1 likewise; other filters: the general loops) against the one-result-at-a-time oracles, in float64 (the same sums in
    another order: agreement to ~1e-13), rows up to 40 cells wide so every group size and remainder
    occurs, strides 1 to 3 with dilation 1 or 2; backward chunks of 1 to 4 images (the rings and the
    dy rows carried from one image to the next); ``streamed``: the rows written by ``stream_copy``, as for
    outputs larger than the cache; ``prefetched``: the next rows prefetched, as for inputs larger than it;
    ``local``: the forward's rows formed on its stack (``local_rows``; stride 1 and dilation 1 only)."""
    from miniconv.backend.cpu import depthwise_kernels as fast
    from miniconv.backend.cpu import depthwise_loops as loops

    if stride > 1:
        dilation = 1
    padding = [[0, 0], pads[:2], pads[2:], [0, 0]] if padding == "X" else padding
    try:
        g = depthwise_geometry((N, H, W, C), (R, S, C, M), (stride, stride), normalize_conv_padding(padding),
                               (dilation, dilation))
    except ValueError:  # the window does not fit: nothing to compare
        return
    rng = np.random.default_rng(seed)
    x, w, dy = (rng.uniform(-1, 1, shape) for shape in (g.input_shape, g.filter_shape, g.output_shape))
    wk = w.reshape(R, S, C * M)
    args = (M, g.sh, g.sw, g.dh, g.dw, g.top, g.left)
    y_ref = np.empty(g.output_shape)
    loops.forward_simple(x, wk, *args, y_ref)
    dx_ref = np.empty(g.input_shape)
    loops.backward_input_simple(dy, wk, *args, dx_ref)
    dw_ref = np.empty(wk.shape)
    loops.backward_filter_simple(x, dy, *args, dw_ref)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fast, "streams", lambda out: streamed)
        patch.setattr(fast, "prefetches", lambda rows: prefetched)
        patch.setattr(fast, "local_rows", lambda g, dtype: local and g.sw == 1 and g.dw == 1)
        np.testing.assert_allclose(fast.depthwise_conv2d_forward(x, w, g), y_ref, rtol=1e-12, atol=1e-12)
        patch.setattr(fast, "backward_chunk_images", lambda g: chunk_images)
        dx, dw = fast.depthwise_conv2d_backward(x, w, dy, g)
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dw, dw_ref.reshape(w.shape), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(fast.depthwise_conv2d_backward_input(dy, w, g), dx_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(fast.depthwise_conv2d_backward_filter(x, dy, g), dw, rtol=0, atol=0)


@pytest.mark.parametrize("N, images", [(32, 1), (3, 1), (1000, 32)])
def test_cpu_depthwise_backward_chunk_images(N, images, monkeypatch):
    """One image a chunk, or for a large batch at most 16 chunks a thread (two threads here)."""
    from miniconv.backend.cpu import depthwise_kernels, work_sharing

    monkeypatch.setattr(work_sharing, "_threads", 2)
    g = depthwise_geometry((N, 14, 14, 480), (3, 3, 480, 1), (1, 1), "SAME", (1, 1))
    assert depthwise_kernels.backward_chunk_images(g) == images


def test_cpu_depthwise_3x3_takes_the_grouped_kernels():
    """The named shapes really go through the grouped 3x3 kernels (not only the general loops)."""
    from miniconv.backend.cpu import depthwise_kernels as fast

    g = depthwise_geometry((1, 8, 8, 4), (3, 3, 4, 1), (2, 2), "SAME", (1, 1))
    assert fast.fast_applies(g)
    assert not fast.fast_applies(depthwise_geometry((1, 8, 8, 4), (3, 3, 4, 2), (1, 1), "SAME", (1, 1)))
    assert not fast.fast_applies(depthwise_geometry((1, 8, 8, 4), (5, 5, 4, 1), (1, 1), "SAME", (1, 1)))
    assert fast.fast5_applies(depthwise_geometry((1, 8, 8, 4), (5, 5, 4, 1), (2, 2), "SAME", (1, 1)))
    assert not fast.fast5_applies(depthwise_geometry((1, 8, 8, 4), (5, 5, 4, 2), (1, 1), "SAME", (1, 1)))
    assert not fast.fast5_applies(g)


def test_cpu_depthwise_local_rows_rule():
    """Rows on the stack: stride 1 and dilation 1 along the columns, up to LOCAL_ROW_MAX_CHANNELS channels, a row
    within the stack budget; the forward with a bias keeps its own path."""
    from miniconv.backend.cpu import depthwise_kernels as fast
    from miniconv.backend.cpu import stack_arrays

    def geometry(W, C, stride=1, dilation=1):
        return depthwise_geometry((2, 9, W, C), (3, 3, C, 1), (stride, stride), "SAME", (dilation, dilation))

    assert fast.local_rows(geometry(112, 32), np.float32)
    assert fast.local_rows(geometry(20, fast.LOCAL_ROW_MAX_CHANNELS), np.float64)
    assert not fast.local_rows(geometry(20, fast.LOCAL_ROW_MAX_CHANNELS + 1), np.float32)
    assert not fast.local_rows(geometry(112, 32, stride=2), np.float32)
    assert not fast.local_rows(geometry(112, 32, dilation=2), np.float32)
    budget = stack_arrays.STACK_BYTES // 4 // 32  # cells of 32 float32 channels
    assert fast.local_rows(geometry(budget, 32), np.float32)
    assert not fast.local_rows(geometry(budget + 1, 32), np.float32)


@pytest.mark.parametrize("W, C, padding", [(112, 32, "SAME"), (17, 19, "VALID"), (7, 3, [[0, 0], [2, 1], [0, 3], [0, 0]])])
def test_cpu_depthwise_local_rows_give_the_same_bits(W, C, padding, monkeypatch):
    """The forward with its rows formed on the stack, streamed or stored: the bits of the rows formed in y or in
    the heap row, inf, NaN and -0.0 included (float32); the rule is asked, and never for a forward with a bias."""
    from miniconv.backend.cpu import depthwise_kernels as fast

    rng = np.random.default_rng(W + C)
    g = depthwise_geometry((3, 11, W, C), (3, 3, C, 1), (1, 1), normalize_conv_padding(padding), (1, 1))
    x = rng.standard_normal(g.input_shape).astype(np.float32)
    x.reshape(-1)[rng.integers(0, x.size, size=4)] = [np.inf, -np.inf, np.nan, -0.0]
    w = rng.standard_normal(g.filter_shape).astype(np.float32)
    bias = rng.standard_normal(C).astype(np.float32)
    asked = []
    for streamed in (False, True):
        monkeypatch.setattr(fast, "streams", lambda out, streamed=streamed: streamed)
        results = {}
        for local in (False, True):
            monkeypatch.setattr(fast, "local_rows", lambda g, dtype, local=local: asked.append(g) or local)
            with np.errstate(all="ignore"):
                results[local] = fast.depthwise_conv2d_forward(x, w, g)
                fast.depthwise_conv2d_forward(x, w, g, bias, "relu6")
        np.testing.assert_array_equal(results[True].view(np.int32), results[False].view(np.int32))
    assert len(asked) == 4, "local_rows is asked once per forward without a bias"


@given(C=st.integers(1, 20), W=st.integers(1, 40), Q=st.integers(1, 24), left=st.integers(0, 3), two=st.booleans(),
       dtype=st.sampled_from([np.float32, np.float64]), specials=st.integers(0, 4), seed=st.integers(0, 2**32 - 1))
def test_cpu_depthwise_stride2_gather_gives_the_scatters_bits(C, W, Q, left, two, dtype, specials, seed):
    """``gather_s2_row`` (each dx cell of a stride-2 row from the dy cells that reach it) against
    ``scatter3_row`` (dy rows b then a scattered into a row of zeros, the other strides' path), bit for
    bit: every group size and remainder, odd and even left padding, inf / NaN / -0 in dy."""
    from miniconv.backend.cpu.depthwise_rows import gather_s2_row, scatter3_row

    rng = np.random.default_rng(seed)
    ga, gb = (rng.standard_normal((Q, C)).astype(dtype) for _ in range(2))
    for value in [np.inf, -np.inf, np.nan, -0.0][:specials]:
        (ga if rng.random() < 0.5 else gb)[rng.integers(Q), rng.integers(C)] = value
    ta, tb = (rng.standard_normal(3 * C).astype(dtype) for _ in range(2))

    accumulated = np.zeros((max(2 * Q + 1, left + W) * C,), dtype)
    if two:
        scatter3_row(gb.ravel(), tb, accumulated, C, 2, 1, Q)
    scatter3_row(ga.ravel(), ta, accumulated, C, 2, 1, Q)
    expected = accumulated[left * C:(left + W) * C]

    width = max(Q + 1, (W - 1 + left) // 2 + 2)  # padded dy rows: one zero cell in front
    padded_a, padded_b = np.zeros((width, C), dtype), np.zeros((width, C), dtype)
    padded_a[1:Q + 1], padded_b[1:Q + 1] = ga, gb
    out = np.full(W * C, np.nan, dtype)
    gather_s2_row(padded_a.ravel(), padded_b.ravel(), ta, tb, two, out, C, W, left, padded_a.ravel())
    assert out.tobytes() == expected.tobytes()


def test_stack_array_holds_values_of_its_dtype():
    """``stack_arrays.stack_array`` inside a kernel: count elements of like's dtype, written and read
    back (float64 values that float32 would round must survive); ``fits_on_stack`` at its bound."""
    from numba import njit

    from miniconv.backend.cpu import stack_arrays

    @njit
    def running_sums(values):
        local = stack_arrays.stack_array(values.shape[0], values)
        total = 0.0
        for i in range(values.shape[0]):
            total += values[i]
            local[i] = total
        out = np.empty_like(values)
        for i in range(values.shape[0]):
            out[i] = local[i]
        return out

    for dtype in (np.float32, np.float64):
        values = np.arange(1, 40, dtype=dtype) + dtype(1e-9 if dtype == np.float64 else 0)
        np.testing.assert_array_equal(running_sums(values), np.cumsum(values))
    limit = stack_arrays.STACK_BYTES
    assert stack_arrays.fits_on_stack(limit // 4, np.float32)
    assert not stack_arrays.fits_on_stack(limit // 4 + 1, np.float32)
    assert not stack_arrays.fits_on_stack(limit // 4, np.float64)


def test_cpu_depthwise_backward_past_the_stack_budget_takes_the_general_loops(monkeypatch):
    """Channels whose 9 C filter-gradient values would not fit the stack budget: the general loops
    compute dw (and dx), with the oracle's values; dx alone still takes the 3x3 kernels."""
    from miniconv.backend.cpu import depthwise_kernels as fast
    from miniconv.backend.cpu import depthwise_loops as loops
    from miniconv.backend.cpu import stack_arrays

    g = depthwise_geometry((2, 7, 9, 6), (3, 3, 6, 1), (1, 1), "SAME", (1, 1))
    rng = np.random.default_rng(3)
    x, w, dy = (rng.uniform(-1, 1, shape) for shape in (g.input_shape, g.filter_shape, g.output_shape))
    calls = []
    general = fast.backward_images
    monkeypatch.setattr(fast, "backward_images", lambda *args: calls.append(1) or general(*args))
    monkeypatch.setattr(stack_arrays, "STACK_BYTES", 9 * 6 * 8 - 8)  # one value short of 9 C float64s
    dx, dw = fast.depthwise_conv2d_backward(x, w, dy, g)
    assert calls, "the general loops were not used"
    args = (1, g.sh, g.sw, g.dh, g.dw, g.top, g.left)
    dx_ref, dw_ref = np.empty(g.input_shape), np.empty((3, 3, 6))
    loops.backward_input_simple(dy, w.reshape(3, 3, 6), *args, dx_ref)
    loops.backward_filter_simple(x, dy, *args, dw_ref)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, dw_ref.reshape(w.shape), rtol=1e-12, atol=1e-12)
    calls.clear()
    fast.depthwise_conv2d_backward_input(dy, w, g)
    assert not calls, "dx alone needs no stack copy of dw"


@pytest.mark.parametrize("shape, stride, padding, dilation", [
    ((2, 9, 11, 5), 1, "SAME", 1), ((2, 10, 13, 7), 2, "SAME", 1), ((1, 12, 12, 3), 3, "VALID", 1),
    ((3, 7, 7, 16), 1, "SAME", 1), ((2, 14, 15, 9), 2, "VALID", 1), ((1, 13, 12, 6), 1, "SAME", 2),
    ((2, 4, 3, 8), 1, "SAME", 1), ((1, 6, 9, 33), 2, [[0, 0], [3, 1], [0, 4], [0, 0]], 1),
])
@pytest.mark.parametrize("epilogue", [0, 1, 2])
def test_cpu_depthwise_5x5_forward_gives_the_general_loops_bits(shape, stride, padding, dilation, epilogue):
    """The 5x5 row kernel (one filter row at a time, added to the output row) sums each value's 25
    products in the general loops' order from zero, so its float32 results are theirs bit for bit,
    with bias and ReLU6 too, and with inf and NaN in the input (padding cells multiply the filter)."""
    from miniconv.backend.cpu import depthwise_kernels as fast
    from miniconv.backend.cpu import depthwise_loops as loops

    C = shape[-1]
    g = depthwise_geometry(shape, (5, 5, C, 1), (stride, stride), normalize_conv_padding(padding),
                           (dilation, dilation))
    assert fast.fast5_applies(g)
    rng = np.random.default_rng(C)
    x = rng.standard_normal(g.input_shape).astype(np.float32)
    x.flat[rng.choice(x.size, 3, replace=False)] = [np.inf, -np.inf, np.nan]
    w = rng.standard_normal(g.filter_shape).astype(np.float32)
    bias = rng.standard_normal(C).astype(np.float32) * 4
    expected = np.empty(g.output_shape, np.float32)
    with np.errstate(all="ignore"):
        loops.forward_rows(x, w.reshape(5, 5, C), 1, g.sh, g.sw, g.dh, g.dw, g.top, g.left, 0, g.N * g.P, expected,
                           bias, epilogue)
        actual = fast.depthwise_conv2d_forward(x, w, g, bias if epilogue else None,
                                               "relu6" if epilogue == 2 else None)
    np.testing.assert_array_equal(actual, expected)


def test_depthwise_backward_input_and_filter_alone(backend):
    """The interface's separate gradient kernels equal the fused pass's."""
    (x, w), dy = case(2, 9, 10, 5, 1, stride=2, seed=2).arrays()
    g = depthwise_geometry(x.shape, w.shape, (2, 2), "SAME", (1, 1))
    be = miniconv.get_backend(backend)
    dy = uniform(np.random.default_rng(1), g.output_shape)
    dx, dw = be.depthwise_conv2d_backward(x, w, dy, g)
    np.testing.assert_allclose(be.depthwise_conv2d_backward_input(dy, w, g), dx, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(be.depthwise_conv2d_backward_filter(x, dy, g), dw, rtol=1e-6, atol=1e-6)
