"""relu, sigmoid, softmax (any axis): forward and VJP vs TensorFlow, and their NaN / inf behaviour."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given
from strategies import array_cases
from tf_reference import Tolerance, assert_vjp_close

import miniconv

NAN, INF = np.nan, np.inf
TINY = float(np.finfo(np.float32).tiny)


@given(case=array_cases(scales=(1.0, 100.0), zeros=True))
def test_relu_matches_tf(backend, case):
    """Exact: a selection, no arithmetic. Exact zeros included (gradient 0 there, as TF)."""
    x, dy = case.arrays()
    assert_vjp_close(miniconv.nn.relu, tf.nn.relu, (x,), dy, {}, backend=backend, tol=Tolerance((1, 1), c=0))


def sigmoid_tolerance(dy) -> Tolerance:
    """L = 4 covers TF's sigmoid, a rational approximation within ~4 ulp (measured over
    [-100, 100]); floors: TINY for TF flushing sigmoid(-100) to 0, and for the gradient
    dy * y * (1 - y) the size of dy: 1 - y keeps only an absolute accuracy of ~ eps32 near y = 1,
    however small the gradient is there."""
    return Tolerance((4, 4), floors=(TINY, float(np.abs(dy).max())))


@given(case=array_cases(scales=(1.0, 5.0, 20.0)))
def test_sigmoid_matches_tf(backend, case):
    x, dy = case.arrays()
    assert_vjp_close(miniconv.nn.sigmoid, tf.nn.sigmoid, (x,), dy, {}, backend=backend, tol=sigmoid_tolerance(dy))


def softmax_tolerance(x, dy, axis) -> Tolerance:
    """L = the softmax axis length (the sum of exponentials, then the sum of dy * y); the gradient
    y * (dy - sum(dy * y)) subtracts two numbers of the size of dy, so its floor is max |dy|."""
    L = x.shape[axis]
    return Tolerance((L, L), floors=(0.0, float(np.abs(dy).max())))


@given(case=array_cases(scales=(1.0, 10.0, 50.0), with_axis=True))
def test_softmax_matches_tf(backend, case):
    """Any rank, any axis (negative too), logits up to +-50 (exp would overflow unless max-subtracted)."""
    x, dy = case.arrays()
    assert_vjp_close(miniconv.nn.softmax, tf.nn.softmax, (x,), dy, {"axis": case.axis}, backend=backend,
                     tol=softmax_tolerance(x, dy, case.axis))  # fmt: skip


def test_softmax_default_axis_is_last(backend):
    x = np.random.default_rng(0).uniform(-2, 2, (2, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(
        miniconv.nn.softmax(x, backend=backend), miniconv.nn.softmax(x, axis=2, backend=backend)
    )
    np.testing.assert_allclose(miniconv.nn.softmax(x, backend=backend).sum(axis=-1), 1, rtol=1e-6)


# --- NaN and inf, against TF ---------------------------------------------------------------------

SPECIAL = np.array([NAN, -INF, INF, 0.0, -0.0, -100.0, 100.0, -3.0, 2.5], np.float32)


def test_relu_nan_and_inf_match_tf(backend):
    """relu(NaN) = NaN, relu(-inf) = 0, relu(inf) = inf; the gradient is 0 at NaN, 0 and -inf."""
    y = miniconv.nn.relu(SPECIAL, backend=backend)
    assert np.isnan(y[0]) and y[1] == 0 and y[2] == INF
    dy = np.arange(1, SPECIAL.size + 1, dtype=np.float32)
    assert_vjp_close(miniconv.nn.relu, tf.nn.relu, (SPECIAL,), dy, {}, backend=backend, tol=Tolerance((1, 1), c=0))


def test_sigmoid_nan_and_inf_match_tf(backend):
    """sigmoid(NaN) = NaN, sigmoid(-inf) = 0, sigmoid(inf) = 1, no overflow warning at -100."""
    dy = np.linspace(-1, 1, SPECIAL.size).astype(np.float32)
    y = miniconv.nn.sigmoid(SPECIAL, backend=backend)
    assert np.isnan(y[0]) and y[1] == 0 and y[2] == 1
    assert_vjp_close(miniconv.nn.sigmoid, tf.nn.sigmoid, (SPECIAL,), dy, {}, backend=backend, tol=sigmoid_tolerance(dy))


SOFTMAX_ROWS = [
    [INF, 1, 2],  # inf - inf = NaN: the whole row is NaN, as in TF (oneDNN's kernel: [nan, 0, 0], see below)
    [1, INF, 2],
    [1, 2, INF],
    [INF, INF, 1],
    [INF, -INF, 1],
    [-INF, 1, 2],  # exp(-inf) = 0: a zero probability, the others are a softmax of [1, 2]
    [-INF, -INF, 1],  # one finite logit: probability 1
    [NAN, 1, 2],  # NaN spreads to the row
    [1, NAN, 2],
    [NAN, INF, 1],
    [INF, NAN, -INF],
    [NAN, NAN, NAN],
    [-INF, -INF, -INF],  # no finite logit: NaN, as in TF
    [INF, INF, INF],
    [1000, 1001, 999],  # max-subtracted: no overflow
    [-1000, -1001, -999],  # no underflow to 0 / 0
]


@pytest.mark.parametrize("row", SOFTMAX_ROWS)
def test_softmax_special_values_match_tf(backend, row):
    x = np.array([row, [0.5, -0.5, 0.0]], np.float32)  # a normal second row must stay normal
    dy = np.array([[1, -2, 3], [0.5, 0.25, -1]], np.float32)
    with np.errstate(invalid="ignore"):
        assert_vjp_close(miniconv.nn.softmax, tf.nn.softmax, (x,), dy, {"axis": -1}, backend=backend,
                         tol=softmax_tolerance(x, dy, -1))  # fmt: skip
        assert np.isfinite(miniconv.nn.softmax(x, backend=backend)[1]).all()
        # the same values along a first axis of length 3 (softmax over a moved axis), and one-logit rows
        assert_vjp_close(miniconv.nn.softmax, tf.nn.softmax, (x.T.copy(),), dy.T.copy(), {"axis": 0},
                         backend=backend, tol=softmax_tolerance(x.T, dy.T, 0))  # fmt: skip
        single = np.array(row, np.float32)[:, None]
        assert_vjp_close(miniconv.nn.softmax, tf.nn.softmax, (single,), dy[0][:, None].copy(), {"axis": -1},
                         backend=backend, tol=softmax_tolerance(single, dy[0][:, None], -1))  # fmt: skip


ONEDNN_SOFTMAX = """
import json, os, sys
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf
from tensorflow.python.util import _pywrap_util_port
if not _pywrap_util_port.IsMklEnabled():
    sys.exit(3)
x = np.array([[np.inf, 1, 2], [np.nan, 1, 2], [np.inf, np.inf, 1], [-np.inf, 1, 2]], np.float32)
print(json.dumps(tf.nn.softmax(x).numpy().tolist()))
"""


def test_softmax_with_inf_under_tf_onednn_is_the_documented_difference():
    """TF's oneDNN softmax kernel (on by default on x86) gives NaN only at a row's +inf and NaN
    logits and 0 elsewhere; its Eigen kernel (oneDNN off: the tests' and ``miniconv verify``'s TF),
    the limit-free IEEE arithmetic and miniconv give the whole row NaN. The README documents it;
    this test tells when a TensorFlow release changes it."""
    run = subprocess.run([sys.executable, "-c", ONEDNN_SOFTMAX], capture_output=True, text=True, timeout=300,
                         check=False)
    if run.returncode == 3:
        pytest.skip("this TensorFlow runs without oneDNN")
    assert run.returncode == 0, run.stderr
    y = np.array(json.loads(run.stdout.strip().splitlines()[-1]), np.float32)  # json writes and reads NaN
    expected = np.array([[NAN, 0, 0], [NAN, 0, 0], [NAN, NAN, 0], [0, 0.26894143, 0.7310586]], np.float32)
    np.testing.assert_allclose(y, expected, rtol=1e-6)
    ours = miniconv.nn.softmax(np.array([[INF, 1, 2], [NAN, 1, 2], [INF, INF, 1]], np.float32), backend="numpy")
    assert np.isnan(ours).all()


@pytest.mark.parametrize("op, tf_op", [(miniconv.nn.relu, tf.nn.relu), (miniconv.nn.sigmoid, tf.nn.sigmoid)])
@pytest.mark.parametrize("value", [-1.5, 0.75])
def test_elementwise_ops_keep_a_scalar_a_scalar(backend, op, tf_op, value):
    """A 0-d input gives a 0-d output and gradient, as in TF (np.ascontiguousarray once made them (1,))."""
    x, dy = np.array(value, np.float32), np.array(-2.0, np.float32)
    y, pullback = miniconv.vjp(op, x, backend=backend)
    assert np.shape(y) == () and np.shape(pullback(dy)[0]) == ()
    assert_vjp_close(op, tf_op, (x,), dy, {}, backend=backend, tol=sigmoid_tolerance(dy))
