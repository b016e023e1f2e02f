"""The benchmark rows of the modern-base ops (``python -m benchmarks ops --cases mobile``): their
shapes, FLOP counts and arrays, and every contestant's call on small copies of them (no timing:
speed comes from the benchmark table, never from a unit test)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import contestants
from benchmarks.cases import BY_ID, MOBILE, OpCase, select


def test_mobile_cases():
    assert select("mobile") == list(MOBILE) and set(MOBILE) <= set(select("all"))
    ops = {case.op for case in MOBILE}
    assert ops == {"depthwise_conv2d", "batch_normalization", "moments", "relu6", "conv2d", "conv2d_bias",
                   "depthwise_conv2d_bias"}
    fused_pw = BY_ID["mobile/pw1x1+bias+relu6-56x144"]
    assert fused_pw.output_shape == (32, 56, 56, 24) and fused_pw.flops("forward") == BY_ID["mobile/pw1x1-56x144"].flops("forward")
    assert set(fused_pw.arrays()) == {"x", "w", "bias", "dy"} and fused_pw.arrays()["bias"].shape == (24,)
    fused_dw = BY_ID["mobile/dw3x3s1+bias+relu6-112x32"]
    assert fused_dw.output_shape == (32, 112, 112, 32) and fused_dw.arrays()["bias"].shape == (32,)
    assert BY_ID["mobile/dw3x3s1-112x32"].output_shape == (32, 112, 112, 32)
    assert BY_ID["mobile/dw3x3s2-112x32"].output_shape == (32, 56, 56, 32)  # SAME: ceil(112 / 2)
    assert BY_ID["mobile/dw3x3s2-56x144"].output_shape == (32, 28, 28, 144)
    assert "mobile/dw3x3s2-14x480" not in BY_ID
    pw = BY_ID["mobile/pw1x1-56x144"]
    assert pw.output_shape == (32, 56, 56, 24) and pw.flops("forward") == 2 * 32 * 56 * 56 * 24 * 144
    assert BY_ID["mobile/bn-14x480"].flops("forward") is None  # memory-bound: no GFLOP/s column
    assert set(BY_ID["mobile/moments-14x480"].arrays()) == {"x", "dmean", "dvariance"}
    assert set(BY_ID["mobile/bn-14x480"].arrays()) == {"x", "mean", "variance", "offset", "scale", "dy"}


SMALL = [OpCase("mobile", "dw", "depthwise_conv2d", (1, 6, 5, 3), stride=2),
         OpCase("mobile", "bn", "batch_normalization", (2, 3, 4, 5)),
         OpCase("mobile", "moments", "moments", (2, 3, 4, 5)), OpCase("mobile", "relu6", "relu6", (2, 3, 4, 5)),
         OpCase("mobile", "pw", "conv2d", (1, 4, 4, 3), 2, kernel=1),
         OpCase("mobile", "dw+bias+relu6", "depthwise_conv2d_bias", (1, 6, 5, 3)),
         OpCase("mobile", "pw+bias+relu6", "conv2d_bias", (1, 4, 4, 3), 2, kernel=1)]  # fmt: skip


@pytest.mark.parametrize("name", ["tf", "miniconv-numpy", "miniconv-cpu"])
def test_contestants_run_the_mobile_ops(name):
    build, _ = contestants.load(name)
    for case in SMALL:
        arrays = case.arrays()
        forward = build(case, "forward", arrays)()
        y, grads = build(case, "fwd+bwd", arrays)()  # the forward too: timed as training runs it
        for outs in (forward, y):
            outs = outs if isinstance(outs, (tuple, list)) else [outs]
            assert [tuple(o.shape) for o in outs] == ([case.output_shape] * (2 if case.op == "moments" else 1))
        inputs = {"depthwise_conv2d": 2, "batch_normalization": 5, "conv2d": 2, "conv2d_bias": 3,
                  "depthwise_conv2d_bias": 3}.get(case.op, 1)
        assert len(grads) == inputs and tuple(grads[0].shape) == case.shape, (name, case.op)
