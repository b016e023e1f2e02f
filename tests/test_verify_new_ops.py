"""``miniconv verify`` on the ops of modern pretrained bases: it passes, and fails naming the tensor
when one of their kernels is wrong, including the second output of a two-output op (moments)."""

from __future__ import annotations

import numpy as np
import pytest

from miniconv.backend.numpy_ref import NumpyBackend
from miniconv.cli import main
from miniconv.verify import verify

NEW_OPS = ["depthwise_conv2d", "separable_conv2d", "batch_normalization", "moments", "relu6"]


def test_verify_passes_on_the_new_ops(backend):
    results = verify([backend], NEW_OPS, cases=4, seed=5)
    assert [r.op for r in results] == NEW_OPS
    assert all(r.passed for r in results), [(r.op, r.failures) for r in results if not r.passed]


def _scaled(method, which, factor=1.01):
    """NumpyBackend.method with output ``which`` (an index into its tuple, or None for a plain array) scaled."""
    original = getattr(NumpyBackend, method)

    def wrong(*args):
        out = original(*args)
        if which is None:
            return out * np.float32(factor)
        return tuple(o * np.float32(factor) if i == which else o for i, o in enumerate(out))

    return staticmethod(wrong)


@pytest.mark.parametrize("method, which, op, label", [
    ("depthwise_conv2d_forward", None, "depthwise_conv2d", "y"),
    ("depthwise_conv2d_backward_filter", None, "separable_conv2d", "ddepthwise_filter"),
    ("batch_norm_backward", 2, "batch_normalization", "dvariance"),
    ("moments_forward", 1, "moments", "variance"),
    ("moments_backward", None, "moments", "dx"),
    ("relu6_backward", None, "relu6", "dx"),
])  # fmt: skip
def test_a_wrong_kernel_fails_and_is_named(monkeypatch, capsys, method, which, op, label):
    monkeypatch.setattr(NumpyBackend, method, _scaled(method, which))
    assert main(["verify", "--backend", "numpy", "--cases", "3", "--ops", op]) == 1
    out = capsys.readouterr().out
    assert f"{op} [numpy] case" in out and f"{label} rel err" in out, out
