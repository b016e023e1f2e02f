"""The cpu backend's Winograd F(2x2, 3x3) for plain conv2d (``backend/cpu/winograd_conv2d.py``):
forward, input gradient and filter gradient against TensorFlow, the numpy reference and a float64
oracle; the fallback to im2col for inf, NaN and values that could overflow; the same bits on every
run and with one or two threads.

Shape legend: N batch, H W input size, C in-channels, K filters, P Q output size.

Every comparison runs under ``every_path_winograd``, which lowers the channel and size thresholds
so that each 3 x 3, stride-1 case takes all three Winograd passes, and counts the calls: a test
whose case fell back to im2col would pass without testing Winograd, so it fails instead. The input
gradient has two methods, the full correlation and the forward's adjoint, and the adjoint also runs
inside ``backward``, the one pass that forms both gradients; the tests marked with ``METHODS`` run
each case through each of the three.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import ConvCase
from tf_reference import Tolerance, assert_close, assert_vjp_close, tf_conv2d

import miniconv
from miniconv import nn

pytestmark = pytest.mark.skipif("cpu" not in miniconv.available_backends(), reason="cpu backend unavailable")

from miniconv.backend import numpy_ref
from miniconv.backend.cpu import (
    conv_kernels,
    direct_kernels,
    pointwise_kernels,
    winograd_conv2d,
    winograd_kernels,
    work_sharing,
)
from miniconv.shapes import conv_geometry, normalize_conv_padding

PASSES = ("forward", "backward_input", "backward_filter")
COUNTED = (*PASSES, "backward")  # and the one pass for both gradients
# The gradients' three paths: both in ``backward``'s one pass (the input gradient by the adjoint), or
# each on its own, the input gradient by the adjoint or by the full correlation
METHODS = ("one pass", "adjoint", "full")
RATIO_FOR = {"one pass": 0.0, "adjoint": 0.0, "full": math.inf}  # ADJOINT_MIN_TILE_RATIO forcing each method
ONE_PASS_MIN_IMAGES_FOR = {"one pass": 1, "adjoint": math.inf, "full": math.inf}


class Calls:
    """How often each Winograd pass ran, ``method`` the gradients' path forced (None: any)."""

    def __init__(self, method=None):
        self.counts = dict.fromkeys(COUNTED, 0)
        self.method = method

    def assert_all_ran(self):
        counts = self.counts
        one_pass, separate = counts["backward"] > 0, counts["backward_input"] > 0 and counts["backward_filter"] > 0
        expected = {"one pass": one_pass and not separate, None: one_pass or separate}.get(self.method,
                                                                                             separate and not one_pass)
        assert counts["forward"] and expected, f"a Winograd pass did not run as {self.method!r} asks: {counts}"


@contextlib.contextmanager
def winograd_everywhere(thresholds=False, method=None):
    """Winograd for every 3 x 3, stride-1 conv2d (no channel or size threshold; with
    ``thresholds=True`` the default ones), calls counted; ``method`` one of METHODS forces the
    gradients' path (None: the default rules)."""
    calls = Calls(method)
    with pytest.MonkeyPatch.context() as patch:
        if method is not None:
            patch.setattr(winograd_conv2d, "ADJOINT_MIN_TILE_RATIO", RATIO_FOR[method])
            patch.setattr(winograd_conv2d, "ONE_PASS_MIN_IMAGES", ONE_PASS_MIN_IMAGES_FOR[method])
        if not thresholds:
            patch.setattr(winograd_conv2d, "FORWARD_MIN_CHANNELS", (1, 1))
            patch.setattr(winograd_conv2d, "BACKWARD_INPUT_MIN_CHANNELS", (1, 1))
            patch.setattr(winograd_conv2d, "BACKWARD_FILTER_MIN_CHANNELS", (1, 1))
            patch.setattr(winograd_conv2d, "MAX_MULTIPLY_FRACTION", math.inf)
            patch.setattr(winograd_conv2d, "FILTER_GRADIENT_MIN_OUTPUT", 0)
            patch.setattr(direct_kernels, "FILTER_GRADIENT_MIN_K", math.inf)  # not the direct loops of few channels
        for name in COUNTED:
            original = getattr(winograd_conv2d, name)

            def counted(*args, _original=original, _name=name):
                calls.counts[_name] += 1
                return _original(*args)

            patch.setattr(winograd_conv2d, name, counted)
        yield calls


@pytest.fixture(params=METHODS)
def every_path_winograd(request):
    """``winograd_everywhere`` for one test, once per gradients' path (Hypothesis tests use the
    context manager per example)."""
    with winograd_everywhere(method=request.param) as calls:
        yield calls


def case_3x3(N, H, W, C, K, padding, seed=0) -> ConvCase:
    return ConvCase(2, N, H, W, C, K, 3, 3, (1, 1), (1, 1), padding, [1, 1], [1, 1], seed)


@st.composite
def winograd_cases(draw) -> ConvCase:
    """3 x 3, stride 1, VALID or SAME; odd and even sizes, so edge tiles are often cut; one channel
    and batch 1 among them."""
    padding = draw(st.sampled_from(["VALID", "SAME"]))
    low = 3 if padding == "VALID" else 1
    N, H, W = draw(st.integers(1, 3)), draw(st.integers(low, 11)), draw(st.integers(low, 11))
    C, K = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    return case_3x3(N, H, W, C, K, padding, seed=draw(st.integers(0, 2**32 - 1)))


def winograd_tolerance(case: ConvCase, x, w, dy) -> Tolerance:
    """The TF tests' tolerance, c eps32 sqrt(L) times each element's sum of |terms|, that sum
    raised to its largest value over the tensor (``floors``).

    Why the floor: Winograd computes a tile's cells (and every filter tap) from transforms that mix
    them, so an element's rounding error scales with the largest terms of its tile, not its own. A
    corner of dx (VALID) sums K products where the tile's inner cells sum 9 K: measured over 1,500
    random cases without thresholds, |error| / (eps32 sqrt(L) sum|terms|) reached 2e3 per element
    (input gradient, few filters) but at most 1.14 against the tensor's largest sum|terms|
    (``python tests/test_cpu_winograd_conv2d.py`` prints the table; im2col: 0.71 and 0.39). Where
    the default thresholds send a case to Winograd the per-element ratio stayed below 0.55 (forward
    0.09, input gradient 0.37, filter gradient 0.55 since outputs of two rows or columns keep
    im2col's: 4.7 before), inside the c = 4 of the plain tests
    (``test_default_paths_match_tf_element_by_element``).
    """
    _, pullback = miniconv.vjp(nn.conv2d, np.abs(x), np.abs(w), padding=case.padding, backend="numpy")
    magnitudes = (nn.conv2d(np.abs(x), np.abs(w), padding=case.padding, backend="numpy"), *pullback(np.abs(dy)))
    tol = case.tolerance()
    return Tolerance(tol.lengths, abs_terms=True, floors=winograd_floors(x, w, dy, magnitudes))


def winograd_floors(x, w, dy, magnitudes):
    """Each tensor's largest sum|terms|; for y and dx at least C max|x| max|w| and K max|dy| max|w|.

    U = G g G^T mixes a filter's nine taps, so y's and dx's rounding scales with the largest tap,
    whatever taps an element reads. In an image of one or two cells (SAME) the tile is mostly
    padding and the tensor's largest sum|terms| can be a single tap's product: N = H = W = C = K = 1,
    seed 112, gave dx 6.5 eps32 sqrt(L) of its one term. The sums over C (y) and K (dx) of the
    largest products cover it; for the course-sized cases they are about the tensors' own largest
    sums (``error_ratios`` reports both)."""
    x_max, w_max, dy_max = (float(np.abs(a).max()) for a in (x, w, dy))
    y, dx, dw = (float(m.max()) for m in magnitudes)
    return (max(y, x.shape[3] * x_max * w_max), max(dx, dy.shape[3] * dy_max * w_max), dw)


def check_against_tf(case: ConvCase, elementwise=False) -> None:
    x, w, dy = case.arrays()
    tol = case.tolerance() if elementwise else winograd_tolerance(case, x, w, dy)
    assert_vjp_close(nn.conv2d, tf_conv2d, (x, w), dy, case.kwargs, backend="cpu", tol=tol)


@pytest.mark.parametrize("method", METHODS)
@given(case=winograd_cases())
def test_winograd_conv2d_matches_tf(method, case):
    with winograd_everywhere(method=method) as calls:
        check_against_tf(case)
    calls.assert_all_ran()


@pytest.mark.parametrize("N, H, W, C, K, padding", [
    (1, 3, 3, 1, 1, "VALID"),       # one tile, one output cell of four; one channel, one filter
    (1, 1, 1, 5, 3, "SAME"),        # a 1 x 1 image: every tap but the centre is padding
    (2, 9, 10, 17, 6, "VALID"),     # P = 7, Q = 8: the last tile row cut; dx over 9 x 10
    (1, 7, 6, 16, 3, "SAME"),       # batch 1; odd H: the last tile row of y and of dx cut
    (3, 4, 5, 8, 33, "SAME"),       # every tile reaches into the padding; Q odd
    (2, 13, 13, 32, 64, "VALID"),   # MNIST's second layer, two images
])
def test_winograd_conv2d_named_shapes(every_path_winograd, N, H, W, C, K, padding):
    check_against_tf(case_3x3(N, H, W, C, K, padding, seed=N * H + C))
    every_path_winograd.assert_all_ran()


@pytest.mark.parametrize("N, H, W, C, K, padding", [
    (2, 13, 13, 32, 64, "VALID"),   # MNIST's second layer
    (1, 9, 10, 32, 16, "SAME"),     # the smallest channel counts taking all three passes
    (3, 12, 11, 33, 17, "VALID"),   # odd channels, Q = 9 (the last tile column cut)
    (2, 17, 17, 128, 128, "VALID"), # cats vs dogs' fourth layer: the adjoint input gradient
])
@pytest.mark.parametrize("method", [*METHODS, None])
def test_default_paths_match_tf_element_by_element(N, H, W, C, K, padding, method):
    """Where the default thresholds send a convolution, Winograd is inside the plain conv2d tests'
    per-element tolerance (no floor), with either input-gradient method and the default rule."""
    for seed in range(3):
        with winograd_everywhere(thresholds=True, method=method) as calls:
            check_against_tf(case_3x3(N, H, W, C, K, padding, seed=seed), elementwise=True)
        calls.assert_all_ran()


@pytest.mark.parametrize("chunk_bytes", [256, 20_000])
def test_winograd_conv2d_in_small_chunks(every_path_winograd, monkeypatch, chunk_bytes):
    """Many chunks of one tile row, and filter-gradient chunks (and the one pass's tasks) of several
    blocks (each block's dU added to the chunk's partial)."""
    monkeypatch.setattr(winograd_conv2d, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(winograd_conv2d, "ONE_PASS_BLOCK_BYTES", chunk_bytes)  # 256: bands of one tile row
    check_against_tf(case_3x3(3, 12, 11, 9, 7, "SAME", seed=chunk_bytes))
    check_against_tf(case_3x3(2, 15, 10, 4, 5, "VALID", seed=1))
    check_against_tf(case_3x3(9, 7, 6, 5, 4, "SAME", seed=2))  # three tasks of three images
    every_path_winograd.assert_all_ran()


def test_winograd_conv2d_explicit_padding(every_path_winograd):
    """Explicit padding, past 2 on some sides: the input gradient's padding 2 - top goes negative."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (2, 6, 7, 5)).astype(np.float32)
    w = rng.uniform(-1, 1, (3, 3, 5, 4)).astype(np.float32)
    padding = [[0, 0], [3, 1], [0, 4], [0, 0]]
    dy = rng.uniform(-1, 1, nn.conv2d(x, w, padding=padding, backend="numpy").shape).astype(np.float32)
    _, pullback = miniconv.vjp(nn.conv2d, np.abs(x), np.abs(w), padding=padding, backend="numpy")
    magnitudes = (nn.conv2d(np.abs(x), np.abs(w), padding=padding, backend="numpy"), *pullback(np.abs(dy)))
    tol = Tolerance((9 * 5, 9 * 4, dy[..., 0].size), abs_terms=True, floors=winograd_floors(x, w, dy, magnitudes))
    assert_vjp_close(nn.conv2d, tf_conv2d, (x, w), dy, {"padding": padding}, backend="cpu", tol=tol)
    every_path_winograd.assert_all_ran()


@pytest.mark.parametrize("method", METHODS)
@given(case=winograd_cases())
def test_winograd_conv2d_matches_numpy_reference(method, case):
    """Against the numpy backend (im2col in plain NumPy), with the TF tests' tolerance: the same
    op and its pullback on |x|, |w|, |dy| give each element's sum of |terms|."""
    x, w, dy = case.arrays()
    kwargs = {"padding": case.padding}
    with winograd_everywhere(method=method) as calls:
        y, pullback = miniconv.vjp(nn.conv2d, x, w, backend="cpu", **kwargs)
        results = (y, *pullback(dy))
    calls.assert_all_ran()
    y_ref, pullback_ref = miniconv.vjp(nn.conv2d, x, w, backend="numpy", **kwargs)
    y_abs, pullback_abs = miniconv.vjp(nn.conv2d, np.abs(x), np.abs(w), backend="numpy", **kwargs)
    tol = case.tolerance()
    magnitudes = (y_abs, *pullback_abs(np.abs(dy)))
    floors = winograd_floors(x, w, dy, magnitudes)
    for i, (got, expected, magnitude) in enumerate(zip(results, (y_ref, *pullback_ref(dy)), magnitudes)):
        assert_close(got, expected, rtol=tol.rtol(i), magnitude=magnitude, floor=floors[i],
                     what=f"{case} tensor {i}")  # the floors: ``winograd_tolerance``


# --- the error of Winograd's transforms against a float64 oracle -----------------------------------

COURSE_LAYERS = [  # (N, H, W, C, K): the course models' 3 x 3 layers of many channels, fewer images
    (8, 13, 13, 32, 64),    # MNIST conv2
    (8, 5, 5, 64, 64),      # MNIST conv3
    (2, 74, 74, 32, 64),    # cats conv2
    (2, 36, 36, 64, 128),   # cats conv3
    (2, 17, 17, 128, 128),  # cats conv4
]


def relative_errors(N, H, W, C, K, padding, seed=0, method="winograd"):
    """max |result - float64| / max |float64| for y, dx, dw: the three Winograd passes called
    directly (or, with method="im2col", im2col's in float32). x, dy ~ N(0, 1), w ~ N(0, 1 / 9C)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, H, W, C)).astype(np.float32)
    w = (rng.standard_normal((3, 3, C, K)) / math.sqrt(9 * C)).astype(np.float32)
    g = conv_geometry(x.shape, w.shape, (1, 1), padding, (1, 1))
    dy = rng.standard_normal(g.output_shape).astype(np.float32)
    x64, w64, dy64 = x.astype(np.float64), w.astype(np.float64), dy.astype(np.float64)
    exact = (conv_kernels.conv2d_forward(x64, w64, g), conv_kernels.conv2d_backward_input(dy64, w64, g),
             conv_kernels.conv2d_backward_filter(x64, dy64, g))
    got = (winograd_conv2d.forward(x, w, g), winograd_conv2d.backward_input(dy, w, g),
           winograd_conv2d.backward_filter(x, dy, g)) if method == "winograd" else _im2col(x, w, dy, g)
    return [float(np.abs(a - e).max() / np.abs(e).max()) for a, e in zip(got, exact)]


@pytest.mark.parametrize("shape", COURSE_LAYERS)
@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_winograd_error_against_float64(shape, padding):
    """Measured 2.0e-7 .. 5.5e-7 of max |result| (a few float32 ulps); im2col's in float32, 1.5e-7 ..
    8.4e-7. Bound: 4 eps32 sqrt(L), the TF tests' tolerance per unit of sum |terms| (>= max |result|)."""
    N, H, W, C, K = shape
    lengths = (9 * C, 9 * K, N * H * W)
    for error, length in zip(relative_errors(*shape, padding), lengths):
        assert error <= 4 * 2**-23 * math.sqrt(length)


# --- inf, NaN and values that could overflow: im2col's products, TensorFlow's results --------------


def _arrays(seed, N=2, H=9, W=8, C=16, K=16, padding="SAME"):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (N, H, W, C)).astype(np.float32)
    w = rng.uniform(-1, 1, (3, 3, C, K)).astype(np.float32)
    g = conv_geometry(x.shape, w.shape, (1, 1), padding, (1, 1))
    dy = rng.uniform(-1, 1, g.output_shape).astype(np.float32)
    return x, w, dy, g


def _im2col(x, w, dy, g):
    return (conv_kernels.conv2d_forward(x, w, g), conv_kernels.conv2d_backward_input(dy, w, g),
            conv_kernels.conv2d_backward_filter(x, dy, g))


SPECIAL = {"inf": np.inf, "-inf": -np.inf, "nan": np.nan}


REACHES = {"x": (0, 2), "w": (0, 1), "dy": (1, 2)}  # which of y, dx, dw an array enters


@pytest.mark.parametrize("where", ["x", "w", "dy"])
@pytest.mark.parametrize("value", list(SPECIAL))
def test_nonfinite_values_take_im2col(every_path_winograd, where, value):
    """One inf or NaN in an array: each pass it enters equals im2col's (and so TF's), bit for bit;
    the pass it does not enter still takes Winograd."""
    x, w, dy, g = _arrays(7)
    {"x": x, "w": w, "dy": dy}[where][(0, 2, 3, 1) if where != "w" else (1, 2, 3, 4)] = SPECIAL[value]
    y, pullback = miniconv.vjp(nn.conv2d, x, w, padding="SAME", backend="cpu")
    results = (y, *pullback(dy))
    with np.errstate(invalid="ignore"):
        expected = _im2col(x, w, dy, g)
    for i in REACHES[where]:
        np.testing.assert_array_equal(results[i], expected[i])
        assert not np.isfinite(results[i]).all()
    untouched = ({0, 1, 2} - set(REACHES[where])).pop()
    assert every_path_winograd.counts[PASSES[untouched]] == 1
    assert sum(every_path_winograd.counts.values()) == 1
    np.testing.assert_allclose(results[untouched], expected[untouched], rtol=0, atol=1e-5 * np.abs(expected[untouched]).max())


def test_nonfinite_values_match_tf(every_path_winograd):
    """A +inf pixel under positive filters: inf in every conv cell that reads it, as TensorFlow;
    Winograd's transforms (inf - inf) would give NaN there (``test_the_guard_is_needed``)."""
    x, w, dy, _ = _arrays(8)
    w = np.abs(w)
    x[0, 4, 4, 0] = np.inf
    dy = np.abs(dy)
    y, pullback = miniconv.vjp(nn.conv2d, x, w, padding="SAME", backend="cpu")
    dx, dw = pullback(dy)
    y_tf = tf_conv2d(x, w, padding="SAME").numpy()
    np.testing.assert_array_equal(np.isposinf(y), np.isposinf(y_tf))
    assert np.isposinf(y[0, 3:6, 3:6]).all() and np.isfinite(dx).all()
    assert np.isposinf(dw[:, :, 0]).all()


def test_the_guard_is_needed():
    """Without the guard, Winograd's forward of one inf pixel gives NaN where TF gives inf: the
    fallback tests above would fail if ``in_range`` let such inputs through."""
    x, w, _, g = _arrays(8)
    w = np.abs(w)
    x[0, 4, 4, 0] = np.inf
    with np.errstate(invalid="ignore"):
        y = winograd_conv2d.forward(x, w, g)
    assert np.isnan(y[0, 3:6, 3:6]).any()
    assert not winograd_conv2d.filter_gradient_in_range(x, np.ones(g.output_shape, np.float32), 1)


@pytest.mark.parametrize("scale_x, scale_w", [(3e38, 1e-3), (1e30, 1e7), (1e19, 1e19)])
def test_values_that_could_overflow_take_im2col(every_path_winograd, scale_x, scale_w):
    """Finite inputs whose transforms could overflow: im2col's results, bit for bit (finite where TF's are)."""
    x, w, dy, g = _arrays(9)
    x, w = (x * scale_x).astype(np.float32), (w * scale_w).astype(np.float32)
    dy = (dy * scale_x).astype(np.float32)
    y, pullback = miniconv.vjp(nn.conv2d, x, w, padding="SAME", backend="cpu")
    with np.errstate(over="ignore", invalid="ignore"):
        expected = _im2col(x, w, dy, g)
        results = (y, *pullback(dy))
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)
    assert every_path_winograd.counts == dict.fromkeys(COUNTED, 0)


def test_large_finite_values_within_range_take_winograd(every_path_winograd):
    """Within the bounds (|x| 1e30, |w| 1): Winograd runs and matches TF within its tolerance."""
    x, w, dy, g = _arrays(10)
    x = (x * 1e30).astype(np.float32)
    case_tol = Tolerance((9 * g.C, 9 * g.K, g.N * g.P * g.Q), abs_terms=True)
    assert_vjp_close(nn.conv2d, tf_conv2d, (x, w), dy, {"padding": "SAME"}, backend="cpu", tol=case_tol)
    every_path_winograd.assert_all_ran()


# --- which shapes take it ----------------------------------------------------------------------------


@pytest.mark.parametrize("shape, expected", [
    ((64, 13, 13, 32, 64), (True, True, True)),       # MNIST conv2 (input gradient: 0.72 of the multiplies)
    ((64, 5, 5, 64, 64), (False, False, False)),      # MNIST conv3: 3 x 3 outputs, tiles wasted
    ((20, 74, 74, 32, 64), (True, True, True)),       # cats conv2
    ((20, 36, 36, 64, 128), (True, True, True)),      # cats conv3
    ((20, 17, 17, 128, 128), (True, True, True)),     # cats conv4
    ((64, 28, 28, 1, 32), (False, False, False)),     # MNIST conv1: one channel
    ((20, 150, 150, 3, 32), (False, False, False)),   # cats conv1: three channels
    ((20, 36, 36, 16, 32), (True, False, True)),      # 16 channels: the input gradient's scatter is short
])
def test_default_thresholds(shape, expected):
    N, H, W, C, K = shape
    g = conv_geometry((N, H, W, C), (3, 3, C, K), (1, 1), "VALID", (1, 1))
    got = (winograd_conv2d.forward_applies(g), winograd_conv2d.backward_input_applies(g),
           winograd_conv2d.backward_filter_applies(g))
    assert got == expected


def test_tiny_outputs_keep_the_filter_gradient_inside_the_element_tolerance(monkeypatch):
    """Two output rows (SAME on a 3 x 2 image): the filter gradient stays on im2col, inside the
    plain tests' per-element tolerance, 4 eps32 sqrt(L) of each element's own sum|terms|. Winograd's
    was 4.7 of it at a corner tap here (the study's worst case, below), so this test fails without
    FILTER_GRADIENT_MIN_OUTPUT."""
    x, w, dy, g = _arrays(2687120274, 2, 3, 2, 16, 16, "SAME")
    assert not winograd_conv2d.backward_filter_applies(g)
    assert winograd_conv2d.backward_filter_applies(conv_geometry((2, 4, 3, 16), w.shape, (1, 1), "SAME", (1, 1)))
    f64 = [a.astype(np.float64) for a in (x, w, dy)]
    exact, terms = _im2col(*f64, g)[2], _im2col(*(np.abs(a) for a in f64), g)[2]
    bound = 4 * 2**-23 * math.sqrt(g.N * g.P * g.Q) * terms
    assert (np.abs(winograd_conv2d.conv2d_backward_filter(x, dy, g) - exact) <= bound).all()
    monkeypatch.setattr(winograd_conv2d, "FILTER_GRADIENT_MIN_OUTPUT", 0)
    assert (np.abs(winograd_conv2d.conv2d_backward_filter(x, dy, g) - exact) > bound).any()


def test_strided_and_dilated_convolutions_never_take_it():
    for strides, dilations in [((2, 2), (1, 1)), ((1, 2), (1, 1)), ((1, 1), (2, 2))]:
        g = conv_geometry((4, 40, 40, 64), (3, 3, 64, 64), strides, "SAME", dilations)
        assert not (winograd_conv2d.forward_applies(g) or winograd_conv2d.backward_input_applies(g)
                    or winograd_conv2d.backward_filter_applies(g))


# --- the same bits on every run, with one thread or two -----------------------------------------------


@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_winograd_conv2d_is_bitwise_repeatable_with_one_and_two_threads(every_path_winograd, monkeypatch, padding):
    """The filter gradient adds one dU partial per chunk in chunk order; the chunks depend on the
    shape only, so the thread count and scheduling change no bit of any pass."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((6, 21, 20, 24)).astype(np.float32)  # 66 tile rows: 8 filter chunks
    w = rng.standard_normal((3, 3, 24, 40)).astype(np.float32)
    monkeypatch.setattr(winograd_conv2d, "CHUNK_BYTES", 1 << 14)  # several blocks per filter chunk
    monkeypatch.setattr(winograd_conv2d, "ONE_PASS_BLOCK_BYTES", 1 << 14)  # the one pass in bands
    y = nn.conv2d(x, w, padding=padding, backend="cpu")
    dy = rng.standard_normal(y.shape).astype(np.float32)

    def run():
        y, pullback = miniconv.vjp(nn.conv2d, x, w, padding=padding, backend="cpu")
        return (y, *pullback(dy))

    first = run()
    runs = [run() for _ in range(4)]
    monkeypatch.setattr(work_sharing, "_threads", 1)
    runs += [run() for _ in range(2)]
    for results in runs:
        for a, b in zip(first, results):
            assert np.array_equal(a, b)
    every_path_winograd.assert_all_ran()


@given(P=st.integers(1, 7), Q=st.integers(1, 7), K=st.integers(1, 40), data=st.data())
def test_gradient_tiles_are_a_dy_a_transposed(P, Q, K, data):
    """Each tile of ``gradient_tiles`` is A dY A^T of its 2 x 2 of dy (zeros beyond P, Q), the
    products taken as rows of A dY first: a float32 NumPy oracle in that order gives the bits,
    inf and NaN included, from any first tile."""
    N = 2
    Pt, Qt = -(-P // 2), -(-Q // 2)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    dy = rng.standard_normal((N, P, Q, K)).astype(np.float32)
    dy.flat[rng.integers(0, dy.size, 3)] = data.draw(st.sampled_from([np.inf, -np.inf, np.nan, 3e38]))
    first = data.draw(st.integers(0, N * Pt * Qt - 1))
    tiles = data.draw(st.integers(1, N * Pt * Qt - first))
    Z = np.full((tiles, 16, K), np.nan, np.float32)
    winograd_conv2d.gradient_tiles(dy, Pt, Qt, first, np.empty((8, K), np.float32), Z)

    padded = np.zeros((N, 2 * Pt, 2 * Qt, K), np.float32)
    padded[:, :P, :Q] = dy
    for tile in range(tiles):
        n, i, j = np.unravel_index(first + tile, (N, Pt, Qt))
        (d00, d01), (d10, d11) = padded[n, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
        rows = [(d00, d01), (d00 + d10, d01 + d11), (d00 - d10, d01 - d11), (-d10, -d11)]  # A dY
        expected = [cell for r0, r1 in rows for cell in (r0, r0 + r1, r0 - r1, -r1)]  # then A^T on each row
        np.testing.assert_array_equal(Z[tile], np.stack(expected))


B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float32)  # winograd_kernels' B^T


@given(H=st.integers(1, 9), W=st.integers(1, 9), C=st.integers(1, 40), top=st.integers(0, 3),
       left=st.integers(0, 3), data=st.data())
def test_input_tiles_are_b_transposed_d_b(H, W, C, top, left, data):
    """Each tile of ``input_tiles`` (formed by tile rows, a column of B^T d shared by two tiles) is
    B^T d B of its 4 x 4 input patch, zeros outside x, rows of B^T d first: a float32 NumPy oracle
    in that order gives the bits, inf and NaN included, from any first tile to any last, across
    images and within a tile row; x may be a strided view."""
    N = 2
    Pp, Qp = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6))  # any grid: zeros where it leaves x
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    x = rng.standard_normal((N, H, W, 2 * C)).astype(np.float32)[..., ::2]  # not contiguous
    x.flat[rng.integers(0, x.size, 3)] = data.draw(st.sampled_from([np.inf, -np.inf, np.nan, 3e38]))
    first = data.draw(st.integers(0, N * Pp * Qp - 1))
    tiles = data.draw(st.integers(1, N * Pp * Qp - first))
    V = np.full((16, tiles, C), np.nan, np.float32)
    winograd_kernels.input_tiles(x, top, left, Pp, Qp, first, V)

    padded = np.zeros((N, 2 * Pp + 2 + H + top, 2 * Qp + 2 + W + left, C), np.float32)
    padded[:, top : top + H, left : left + W] = x
    with np.errstate(invalid="ignore", over="ignore"):
        for tile in range(tiles):
            n, i, j = np.unravel_index(first + tile, (N, Pp, Qp))
            d0, d1, d2, d3 = padded[n, 2 * i : 2 * i + 4, 2 * j : 2 * j + 4]  # rows of the patch, (4, C) each
            rows = [d0 - d2, d1 + d2, d2 - d1, d1 - d3]  # B^T d
            expected = [cell for r in rows for cell in (r[0] - r[2], r[1] + r[2], r[2] - r[1], r[1] - r[3])]  # then B
            np.testing.assert_array_equal(V[:, tile], np.stack(expected))
    d = rng.standard_normal((4, 4)).astype(np.float32)  # and the matrices themselves: B^T d B
    one = np.empty((16, 1, 1), np.float32)
    winograd_kernels.input_tiles(d.reshape(1, 4, 4, 1), 0, 0, 1, 1, 0, one)
    np.testing.assert_allclose(one.reshape(4, 4), B_T @ d @ B_T.T, rtol=1e-6, atol=1e-6)


@given(tiles=st.integers(1, 5), C=st.integers(1, 40), data=st.data())
def test_patch_gradients_are_b_e_b_transposed(tiles, C, data):
    """Each tile of ``patch_gradients`` is B E B^T (the adjoint of the input transform B^T d B),
    rows of B E first: a float32 NumPy oracle in that order gives the bits, inf and NaN included."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    E = rng.standard_normal((tiles, 16, C)).astype(np.float32)
    E.flat[rng.integers(0, E.size, 2)] = data.draw(st.sampled_from([np.inf, -np.inf, np.nan, 3e38]))
    patches = np.full_like(E, np.nan)
    with np.errstate(invalid="ignore", over="ignore"):
        winograd_conv2d.patch_gradients(E, patches)
        for tile in range(tiles):
            e = E[tile].reshape(4, 4, C)
            rows = [e[0], e[1] - e[2] + e[3], e[1] + e[2] - e[0], -e[3]]  # B E
            expected = [(r[0], r[1] - r[2] + r[3], r[1] + r[2] - r[0], -r[3]) for r in rows]  # then B^T
            np.testing.assert_array_equal(patches[tile], np.stack([cell for row in expected for cell in row]))
    e = rng.standard_normal((4, 4)).astype(np.float32)  # and the matrices themselves: B E B^T
    patch = np.empty((1, 16, 1), np.float32)
    winograd_conv2d.patch_gradients(e.reshape(1, 16, 1), patch)
    np.testing.assert_allclose(patch.reshape(4, 4), B_T.T @ e @ B_T, rtol=1e-6, atol=1e-6)


@given(H=st.integers(1, 9), W=st.integers(1, 9), C=st.integers(1, 5), top=st.integers(0, 3),
       left=st.integers(0, 3), seed=st.integers(0, 2**16))
def test_add_patches_is_the_sum_of_the_covering_patches(H, W, C, top, left, seed):
    """``add_patches`` (a gather, each dx cell written once) against scattering every tile's 4 x 4
    patch into the padded image and cutting the image out, in float64."""
    P, Q = H + top - 2 + 2, W + left - 2 + 2  # any grid that covers the image: tiles over the padded rows
    Pt, Qt = -(-P // 2), -(-Q // 2)
    rng = np.random.default_rng(seed)
    patches = rng.standard_normal((Pt * Qt, 16, C))
    dx = np.empty((H, W, C))
    winograd_conv2d.add_patches(patches, Pt, Qt, top, left, np.zeros(C), dx)
    padded = np.zeros((2 * Pt + 2, 2 * Qt + 2, C))
    for i in range(Pt):
        for j in range(Qt):
            padded[2 * i : 2 * i + 4, 2 * j : 2 * j + 4] += patches[i * Qt + j].reshape(4, 4, C)
    np.testing.assert_allclose(dx, padded[top : top + H, left : left + W], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape, adjoint", [
    ((64, 13, 13, 32, 64), True),     # MNIST conv2: 49 H x W tiles against 36 P x Q
    ((20, 17, 17, 128, 128), True),   # cats conv4: 81 against 64
    ((20, 36, 36, 64, 128), False),   # cats conv3: 324 against 289
    ((20, 74, 74, 32, 64), False),    # cats conv2
    ((2, 13, 13, 2048, 8), False),    # 16 C float64 values past the stack budget
])
def test_input_gradient_method_by_shape(shape, adjoint):
    N, H, W, C, K = shape
    g = conv_geometry((N, H, W, C), (3, 3, C, K), (1, 1), "VALID", (1, 1))
    assert winograd_conv2d.uses_adjoint(g) == adjoint


@pytest.mark.parametrize("shape, one_pass", [
    ((64, 13, 13, 32, 64), True),     # MNIST conv2
    ((20, 17, 17, 128, 128), True),   # cats conv4
    ((20, 36, 36, 64, 128), True),    # cats conv3 (alone its input gradient takes the full correlation)
    ((20, 74, 74, 32, 64), True),     # cats conv2: bands of tile rows
    ((3, 13, 13, 32, 64), False),     # three images: fewer than the one pass's four tasks
    ((64, 13, 13, 16, 64), False),    # 16 channels: the input gradient takes im2col
])
def test_one_pass_by_shape(shape, one_pass):
    N, H, W, C, K = shape
    g = conv_geometry((N, H, W, C), (3, 3, C, K), (1, 1), "VALID", (1, 1))
    assert winograd_conv2d.one_pass_applies(g) == one_pass


@given(N=st.integers(1, 9), H=st.integers(1, 12), W=st.integers(1, 10), C=st.integers(1, 9), K=st.integers(1, 9),
       pads=st.lists(st.integers(0, 3), min_size=4, max_size=4), chunk_bytes=st.sampled_from([1, 1 << 9, 1 << 12, 1 << 20]),
       seed=st.integers(0, 2**16))
def test_one_pass_matches_the_reference_in_float64(N, H, W, C, K, pads, chunk_bytes, seed):
    """``backward`` in float64, where rounding is far below the tolerance: any misplaced tile, image,
    band or block shows. Blocks of several images, of one image, or bands of one or a few tile rows
    (``chunk_bytes``); explicit padding of 0 to 3 cells a side (a band's first dx row can then lie
    above the image), every edge tile cut or not."""
    top, bottom, left, right = pads
    assume(H + top + bottom >= 3 and W + left + right >= 3)
    rng = np.random.default_rng(seed)
    x, w = rng.uniform(-1, 1, (N, H, W, C)), rng.uniform(-1, 1, (3, 3, C, K))
    padding = normalize_conv_padding([[0, 0], [top, bottom], [left, right], [0, 0]])
    g = conv_geometry(x.shape, w.shape, (1, 1), padding, (1, 1))
    dy = rng.uniform(-1, 1, g.output_shape)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(winograd_conv2d, "ONE_PASS_BLOCK_BYTES", chunk_bytes)
        dx, dw = winograd_conv2d.backward(x, w, dy, g)
    np.testing.assert_allclose(dx, numpy_ref.conv2d_backward_input(dy, w, g), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, numpy_ref.conv2d_backward_filter(x, dy, g), rtol=1e-12, atol=1e-11)


def test_the_one_pass_checks_both_ranges():
    """x within the adjoint's reach but past the filter gradient's bound (|x| 1e37 over 40 tiles): no
    one pass; the input gradient still takes the adjoint, bit for bit, the filter gradient im2col's
    products, bit for bit."""
    x, w, dy, g = _arrays(13, N=4)
    x = (x * 1e37).astype(np.float32)
    assert winograd_conv2d.adjoint_in_range(dy, w) and not winograd_conv2d.filter_gradient_in_range(x, dy, 80)
    with winograd_everywhere(method="one pass") as calls:
        assert winograd_conv2d.one_pass_applies(g)
        dx, dw = pointwise_kernels.conv2d_backward(x, w, dy, g)
    assert calls.counts == {"forward": 0, "backward_input": 1, "backward_filter": 0, "backward": 0}
    np.testing.assert_array_equal(dx, winograd_conv2d.adjoint_input_gradient(dy, w, g))
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(dw, conv_kernels.conv2d_backward_filter(x, dy, g))


def test_the_adjoint_has_its_own_range_check():
    """The adjoint's intermediates reach 324 K max|dy| max|w| (the full correlation's 81 K): values
    between the two bounds take im2col's products, bit for bit, where the adjoint applies."""
    rng = np.random.default_rng(12)
    x = rng.uniform(-1, 1, (2, 13, 13, 8)).astype(np.float32)
    w = (rng.uniform(-1, 1, (3, 3, 8, 16)) * 1e5).astype(np.float32)
    g = conv_geometry(x.shape, w.shape, (1, 1), "VALID", (1, 1))
    dy = (rng.uniform(-1, 1, g.output_shape) * 1e30).astype(np.float32)
    assert winograd_conv2d.uses_adjoint(g)
    assert winograd_conv2d.in_range(dy, w) and not winograd_conv2d.adjoint_in_range(dy, w)
    with winograd_everywhere() as calls:
        dx = winograd_conv2d.conv2d_backward_input(dy, w, g)
    assert calls.counts["backward_input"] == 0
    np.testing.assert_array_equal(dx, conv_kernels.conv2d_backward_input(dy, w, g))


# --- the measurements quoted above: python tests/test_cpu_winograd_conv2d.py ------------------------


def error_ratios(trials=1500, seed=0):
    """Worst |result - float64| / (eps32 sqrt(L) sum|terms|), per element, against the tensor's
    largest sum|terms| and against ``winograd_floors``, of Winograd and im2col over random 3 x 3,
    stride-1 cases (images of 1 to 19 cells a side), by pass and by whether the default thresholds
    send the case to Winograd."""
    rng = np.random.default_rng(seed)
    worst = {}
    applies = (winograd_conv2d.forward_applies, winograd_conv2d.backward_input_applies,
               winograd_conv2d.backward_filter_applies)
    for _ in range(trials):
        padding = str(rng.choice(["VALID", "SAME"]))
        low = 3 if padding == "VALID" else 1
        N, H, W = (int(v) for v in (rng.integers(1, 4), rng.integers(low, 20), rng.integers(low, 20)))
        C, K = int(rng.choice([1, 2, 4, 8, 16, 32, 64])), int(rng.choice([1, 2, 8, 16, 64]))
        x, w, dy, g = _arrays(int(rng.integers(2**32)), N, H, W, C, K, padding)
        f64 = [a.astype(np.float64) for a in (x, w, dy)]
        exact = _im2col(*f64, g)
        terms = _im2col(*(np.abs(a) for a in f64), g)
        winograd = (winograd_conv2d.forward(x, w, g), winograd_conv2d.backward_input(dy, w, g),
                    winograd_conv2d.backward_filter(x, dy, g))
        lengths = (9 * C, 9 * K, N * g.P * g.Q)
        floors = winograd_floors(x, w, dy, terms)
        for method, results in (("winograd", winograd), ("im2col", _im2col(x, w, dy, g))):
            for p, (r, e, m, length) in enumerate(zip(results, exact, terms, lengths)):
                scale = 2**-23 * math.sqrt(length)
                error = np.abs(r - e)
                element = float((error[m > 0] / (scale * m[m > 0])).max()) if (m > 0).any() else 0.0
                ratios = (element, float(error.max() / (scale * m.max())), float(error.max() / (scale * floors[p])))
                key = (method, PASSES[p], "on" if applies[p](g) else "off")
                worst[key] = tuple(max(a, b) for a, b in zip(worst.get(key, (0.0, 0.0, 0.0)), ratios))
    return worst


if __name__ == "__main__":
    print("max |error| / max |float64 result|, course layers (fewer images): y, dx, dw by F(2x2, 3x3) | by im2col")
    for shape in COURSE_LAYERS:
        for padding in ("VALID", "SAME"):
            errors = [relative_errors(*shape, padding, method=method) for method in ("winograd", "im2col")]
            print(f"  {shape} {padding:5s}", " | ".join("  ".join(f"{e:.2e}" for e in row) for row in errors))
    print("worst |error| / (eps32 sqrt(L) sum|terms|): per element, against the tensor's largest sum|terms|,")
    print("against winograd_floors (method, pass, default thresholds send it to Winograd)")
    for key, (element, tensor, floor) in sorted(error_ratios().items()):
        print(f"  {key}: {element:.3g}, {tensor:.3g}, {floor:.3g}")



@given(units=st.integers(1, 64), tiles_per_unit=st.integers(1, 80), widths=st.lists(st.integers(1, 300), min_size=1, max_size=2),
       itemsize=st.sampled_from([4, 8]))
def test_chunks_keep_by_position_rows_off_page_multiples(units, tiles_per_unit, widths, itemsize):
    """``rows_apart_off_pages``: at most ``units``, at least one, the largest count whose (16, tiles, width)
    rows are not a multiple of 4 KiB apart (unless only one unit is left)."""
    from miniconv.backend.cpu.winograd_kernels import PAGE_BYTES, rows_apart_off_pages

    def aliased(count):
        return any(count * tiles_per_unit * width * itemsize % PAGE_BYTES == 0 for width in widths)

    chosen = rows_apart_off_pages(units, tiles_per_unit, widths, itemsize)
    assert 1 <= chosen <= units
    assert chosen == 1 or not aliased(chosen)
    assert all(aliased(count) for count in range(chosen + 1, units + 1))


def test_chunks_of_cats_vs_dogs_conv2_forward_avoid_page_multiples():
    """Cats vs dogs' conv2 + pool forward: 4 units of 36 tiles would put M's (16, 144, 64) rows 9 x 4 KiB apart."""
    from miniconv.backend.cpu.winograd_kernels import rows_apart_off_pages

    assert rows_apart_off_pages(4, 36, (32, 64), 4) == 3
    assert rows_apart_off_pages(4, 36, (32,), 4) == 4
