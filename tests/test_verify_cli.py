"""``miniconv verify`` and the ``miniconv`` command line.

The check passes on every backend present, fails when an op is deliberately wrong (forward or
gradient), covers every op of ``miniconv.nn.OPS``, and turns bad arguments into a one-line error
with exit code 2, never a traceback.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

import miniconv
from miniconv import nn
from miniconv import verify as verify_module
from miniconv.backend.numpy_ref import NumpyBackend
from miniconv.cli import main
from miniconv.verify import relative_error, tolerance, verify, verify_op
from miniconv.verify_cases import GENERATORS


def test_verify_passes_on_backend(backend, capsys):
    """Two cases of every op on this backend: exit 0, one 'pass' row per op."""
    assert main(["verify", "--backend", backend, "--cases", "2", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "max rel err" in out and "tolerance" in out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] and line.split()[0] in nn.OPS]
    assert sorted(row[0] for row in rows) == sorted(nn.OPS)
    for row in rows:
        assert row[1] == backend and row[2] == "2" and row[-1] == "pass", row
    assert "FAIL" not in out


def test_every_op_has_cases():
    """A new op in miniconv.nn.OPS needs a generator in miniconv/verify_cases.py."""
    assert set(GENERATORS) == set(nn.OPS)


def test_verify_returns_structured_results():
    [result] = verify(["numpy"], ["relu"], cases=3, seed=1)
    assert (result.op, result.backend, result.cases, result.passed) == ("relu", "numpy", 3, True)
    assert result.max_rel_err <= result.tolerance
    assert set(result.as_dict()) >= {"op", "backend", "cases", "max_rel_err", "tolerance", "passed"}


def test_relative_error_definition():
    assert relative_error([1.0, 2.0], [1.0, 2.5]) == pytest.approx(0.5 / 2.5)
    assert relative_error([1e-3], [0.0], floor=1.0) == pytest.approx(1e-3)  # the floor caps cancellation
    assert relative_error([1.0], [0.0]) > 1e20  # against exact zero, any difference is huge
    assert relative_error([[1.0]], [1.0]) == math.inf  # a shape mismatch never passes
    assert relative_error([np.nan], [1.0]) == math.inf
    assert tolerance(100) == pytest.approx(1e-4)


# --- the check can fail ----------------------------------------------------------------------------


def _perturbed(method: str, factor: float):
    original = getattr(NumpyBackend, method)

    def wrong(*args):
        return original(*args) * np.float32(factor)

    return staticmethod(wrong)


@pytest.mark.parametrize(
    "method, op, label",
    [
        ("conv2d_forward", "conv2d", "y"),
        ("conv2d_backward_filter", "conv2d", "dw"),
        ("dense_backward_input", "dense", "dx"),
        ("max_pool2d_backward", "max_pool2d", "dx"),
        ("softmax_forward", "softmax", "dlogits"),
        ("dropout_forward", "dropout", "y"),
    ],
)
def test_a_wrong_op_fails(monkeypatch, capsys, method, op, label):
    """Scale one numpy kernel's result by 1.01: verify must exit 1 and name the bad tensor."""
    if method == "dense_backward_input":  # dense_backward returns a tuple: perturb dx only
        original = NumpyBackend.dense_backward

        def wrong(dy, x, kernel, with_bias):
            dx, dkernel, dbias = original(dy, x, kernel, with_bias)
            return dx * np.float32(1.01), dkernel, dbias

        monkeypatch.setattr(NumpyBackend, "dense_backward", staticmethod(wrong))
    else:
        monkeypatch.setattr(NumpyBackend, method, _perturbed(method, 1.01))
    assert main(["verify", "--backend", "numpy", "--cases", "3", "--ops", op]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out
    assert f"{op} [numpy] case" in out and f"{label} rel err" in out
    # the float64 reference runs the same (wrong) numpy kernel, but TF's float64 kernels disagree with
    # it: a miniconv bug is never passed off as a TensorFlow one
    assert "TensorFlow disagrees" not in out and "no TensorFlow discrepancies" in out


def test_a_raising_backend_fails_without_traceback(monkeypatch):
    def broken(*args):
        raise NotImplementedError("not written yet")

    monkeypatch.setattr(NumpyBackend, "relu_forward", staticmethod(broken))
    [result] = verify_op("relu", ["numpy"], cases=2)
    assert not result.passed and "NotImplementedError: not written yet" in result.failures[0].error


# --- when TensorFlow is the one that is wrong ------------------------------------------------------


def _wrong_tf(monkeypatch, case_index, dtypes=(np.float32,), factor=1.5):
    """Make verify's TF reference scale its output y by ``factor`` for case ``case_index``, in ``dtypes``."""
    original = verify_module.tf_reference

    def wrong(tf, case, dy, dtype=np.float32):
        outputs = original(tf, case, dy, dtype)
        if case.describe() == target and np.dtype(dtype) in [np.dtype(d) for d in dtypes]:
            outputs[0] = outputs[0] * factor
        return outputs

    target = verify_module.make_cases("relu", case_index + 1, 0)[case_index].describe()
    monkeypatch.setattr(verify_module, "tf_reference", wrong)


def test_a_wrong_tf_is_a_finding_not_a_failure(monkeypatch, capsys):
    """TF's float32 y off by 1.5x in case 1: miniconv, its float64 run and TF's float64 run agree, so
    verify passes, lists the case as a finding about TensorFlow with how to reproduce it, and says so
    in its summary."""
    _wrong_tf(monkeypatch, 1)
    assert main(["verify", "--backend", "numpy", "--backend", "cpu", "--cases", "3", "--ops", "relu"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    finding = out[out.index("TensorFlow disagrees with the float64 reference (miniconv agrees)"):]
    assert "relu case 1: x" in finding and "TF's y rel err 5.00e-01" in finding  # |1.5 y - y| / |y|
    assert "miniconv [numpy, cpu] agrees" in finding
    assert "reproduce: miniconv.verify.make_cases('relu', 2, seed=0)[1]" in finding
    assert "2 of 2 op x backend pairs passed; TensorFlow disagreed with the float64 reference in 1 case(s) " \
           "(relu case 1)" in out
    for result in verify(["numpy", "cpu"], ["relu"], cases=3):
        assert result.passed and [(f.op, f.index, f.worst) for f in result.tf_findings] == [("relu", 1, "y")]
        assert result.max_rel_err <= result.tolerance  # case 1's error is miniconv's, against float64


def test_tf_wrong_in_float64_too_stays_a_failure(monkeypatch, capsys):
    """If TF's float64 result disagrees with the numpy backend's float64 one as well, nothing arbitrates:
    the case stays a failure (the bug could be miniconv's, repeated in its own float64 run)."""
    _wrong_tf(monkeypatch, 1, dtypes=(np.float32, np.float64))
    assert main(["verify", "--backend", "numpy", "--cases", "3", "--ops", "relu"]) == 1
    out = capsys.readouterr().out
    assert "relu [numpy] case 1" in out and "TensorFlow disagrees" not in out


def test_onednn_setting_cannot_change_after_tensorflow_is_imported(capsys):
    """The tests imported TF with oneDNN off (conftest): asking for it on says that it is still off."""
    assert main(["verify", "--backend", "numpy", "--cases", "1", "--ops", "relu", "--onednn", "on"]) == 0
    assert "oneDNN off (asked for on, but TensorFlow was already imported)" in capsys.readouterr().out


@pytest.mark.parametrize("onednn", ["off", "on"])
def test_verify_passes_out_of_the_box_with_onednn_off_or_on(onednn):
    """A fresh process: oneDNN off by default, on when asked, and said in the output. conv2d's cases
    0-17 hold the one (case 17, strides (1, 4)) where TF 2.21's oneDNN kernel returned garbage here:
    with oneDNN on it is listed as a TensorFlow finding, not a failure (if this machine's TF has the bug)."""
    command = [sys.executable, "-m", "miniconv", "verify", "--backend", "numpy", "--ops", "conv2d", "--cases", "18"]
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    run = subprocess.run(command + ([] if onednn == "off" else ["--onednn", "on"]), check=False, capture_output=True,
                         text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"TensorFlow {__import__('tensorflow').__version__}, oneDNN {onednn}\n" in run.stdout
    if onednn == "off":
        assert "no TensorFlow discrepancies" in run.stdout
    elif "TensorFlow disagreed" in run.stdout:
        assert "conv2d case 17" in run.stdout


# --- usage errors ----------------------------------------------------------------------------------


def test_unknown_backend_is_a_clear_error(capsys):
    assert main(["verify", "--backend", "nope", "--cases", "1"]) == 2
    err = capsys.readouterr().err
    assert "unknown backend 'nope'" in err and "numpy" in err and "Traceback" not in err


def test_unavailable_backend_is_a_clear_error(capsys):
    if "cuda" in miniconv.available_backends():
        pytest.skip("cuda runs here")
    assert main(["verify", "--backend", "cuda", "--cases", "1"]) == 2
    err = capsys.readouterr().err
    assert "backend 'cuda' is not available here" in err and "Traceback" not in err


def test_unknown_op_is_a_clear_error(capsys):
    assert main(["verify", "--backend", "numpy", "--ops", "conv3d"]) == 2
    assert "unknown op(s) conv3d" in capsys.readouterr().err


def test_missing_tensorflow_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # makes `import tensorflow` fail
    assert main(["verify", "--backend", "numpy", "--cases", "1", "--ops", "relu"]) == 2
    assert "pip install miniconv[tf]" in capsys.readouterr().err


def test_python_dash_m_miniconv():
    """``python -m miniconv`` is the command; dropout alone needs no TensorFlow, so this is quick."""
    run = subprocess.run(
        [sys.executable, "-m", "miniconv", "verify", "--backend", "numpy", "--ops", "dropout", "--cases", "2"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "dropout" in run.stdout and "pass" in run.stdout
    assert (
        subprocess.run([sys.executable, "-m", "miniconv"], check=False, capture_output=True, timeout=60).returncode == 2
    )
