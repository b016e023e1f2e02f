"""``python -m benchmarks ops --quick`` runs end to end and writes its JSON and markdown.

A smoke test only: three small MNIST layers, one round, numpy backend, TensorFlow (and PyTorch
where installed) in their own worker processes; a reference that cannot run is recorded as not
run, not a failure. Output goes to a temporary directory, never over benchmarks/results/.
Timings are not checked (ARCHITECTURE.md: speed claims come from the benchmark table, never from
a timed unit test).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_benchmarks_ops_quick(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "ops", "--quick", "--backends", "numpy", "--out", str(tmp_path)],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    data = json.loads((tmp_path / "ops.json").read_text())

    machine = data["machine"]
    assert machine["cpu_count"] >= 1 and machine["cpu_model"] and "numpy" in machine["versions"]
    assert set(machine["blas_env"]) == {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"}
    assert data["sgemm_peak"]["gflops"] > 0

    assert data["contestants"]["miniconv-numpy"]["available"]
    tf_ran = data["contestants"]["tf"]["available"]
    cases = {(r["case"], r["mode"]) for r in data["results"]}
    assert cases == {(c, m) for c in ("mnist/conv2", "mnist/pool1", "mnist/dense1") for m in ("forward", "fwd+bwd")}
    assert all(r["mode"] != "fwd+bwd no dx" for r in data["results"])  # only first layers have it
    for row in data["results"]:
        assert row["seconds"]["miniconv-numpy"] > 0, row
        if tf_ran:
            assert row["ratio_to_tf"]["miniconv-numpy"] > 0, row
        if row["op"] in ("conv2d", "dense"):
            assert row["flops"] > 0 and row["gflops"]["miniconv-numpy"] > 0
            assert 0 < row["fraction_of_peak"]["miniconv-numpy"]
        else:
            assert row["flops"] is None

    markdown = (tmp_path / "ops.md").read_text()
    assert "| layer |" in markdown and "miniconv numpy" in markdown and "mnist/conv2" in markdown
    assert "OPENBLAS_CORETYPE" in markdown


def test_flop_counts():
    """conv forward 2*N*P*Q*K*R*S*C, fwd+bwd three times that (the table's GFLOP/s rest on these)."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.cases import BY_ID

    conv = BY_ID["mnist/conv1"]  # 64x28x28x1 -> 26x26x32, 3x3
    assert conv.flops("forward") == 2 * 64 * 26 * 26 * 32 * 3 * 3 * 1
    assert conv.flops("fwd+bwd") == 3 * conv.flops("forward")
    assert conv.flops("fwd+bwd no dx") == 2 * conv.flops("forward")
    assert conv.modes == ("forward", "fwd+bwd", "fwd+bwd no dx") and BY_ID["mnist/conv1+pool1"].modes == conv.modes
    assert BY_ID["mnist/conv2"].modes == ("forward", "fwd+bwd") and BY_ID["mnist/pool1"].modes == ("forward", "fwd+bwd")
    assert BY_ID["cats/dense1"].flops("forward") == 2 * 20 * 6272 * 512
    assert BY_ID["cats/pool4"].output_shape == (20, 7, 7, 128)
    assert BY_ID["mnist/conv3"].output_shape == (64, 3, 3, 64)  # 3*3*64 = 576 = dense1's input

    fused = BY_ID["mnist/conv2+pool2"]  # 64x13x13x32 -> conv 11x11x64 -> pooled 5x5x64
    assert fused.output_shape == (64, 5, 5, 64)
    assert fused.flops("forward") == 2 * 64 * 11 * 11 * 64 * 3 * 3 * 32  # the whole convolution's
    assert BY_ID["cats/conv1+pool1"].output_shape == (20, 74, 74, 32)
    assert set(fused.arrays()) == {"x", "w", "bias", "dy"} and fused.arrays()["dy"].shape == fused.output_shape


def test_fused_case_is_the_same_op_for_miniconv_and_tensorflow():
    """The fused benchmark case computes what its TF composition computes (forward and gradients)."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from benchmarks import contestants
    from benchmarks.cases import BY_ID

    pytest.importorskip("tensorflow")
    for case_id, mode, count in (("mnist/conv2+pool2", "fwd+bwd", 3), ("mnist/conv1+pool1", "fwd+bwd no dx", 2)):
        case = BY_ID[case_id]
        arrays = case.arrays(seed=1)
        outputs = {}
        for name in ("miniconv-cpu", "tf"):
            build, _ = contestants.load(name)
            outputs[name] = (build(case, "forward", arrays)(), build(case, mode, arrays)())
        mine, theirs = outputs["miniconv-cpu"], outputs["tf"]
        np.testing.assert_allclose(np.asarray(mine[0]), np.asarray(theirs[0]), rtol=1e-4, atol=1e-5)
        assert len(mine[1]) == len(theirs[1]) == count  # (dx,) dw, dbias
        for a, b in zip(mine[1], theirs[1]):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-4 * max(1.0, np.abs(b).max()))


def test_training_benchmark_markdown_from_the_committed_results():
    """The table, the ratio of best rounds and the not-run line are rebuilt from train_mnist.json."""
    import json
    from pathlib import Path

    from benchmarks import train

    data = json.loads((Path(__file__).parents[1] / "benchmarks" / "results" / "train_mnist.json").read_text())
    text = train.markdown(data)
    for ratio in data["ratios"].values():
        assert f": {ratio:.2f}x**" in text
    data["contestants"]["torch"] = {"available": False, "reason": "not installed"}
    assert "Not run: PyTorch (not installed)." in train.markdown(data)


def test_step_times_runs_and_reports_each_round():
    """``python -m benchmarks.step_times`` on a few steps, miniconv only: one line per round."""
    run = subprocess.run([sys.executable, "-m", "benchmarks.step_times", "--steps", "3", "--rounds", "1",
                          "--sides", "miniconv"], cwd=ROOT, check=False, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    (line,) = [line for line in run.stdout.splitlines() if line.startswith("round 1 miniconv")]
    assert "median" in line and line.endswith(" ms")


def test_step_profile_parts_are_disjoint_and_cover_every_layer():
    """``benchmarks.step_profile`` times each part once a step, inside the step, and restores what it wrapped."""
    from benchmarks import step_profile
    from miniconv.training import step as step_module

    before = step_module.loss_value_and_gradient
    parts, record = step_profile.profile(steps=3)
    assert step_module.loss_value_and_gradient is before
    assert all(len(record[part]) == 3 for part in parts), {part: len(record[part]) for part in parts}
    # The MNIST convnet's plan: two fused conv + pool steps, conv3, flatten, two dense layers.
    forwards = [part for part in parts if part.endswith(" forward")]
    assert len(forwards) == 6 and sum("+" in part for part in forwards) == 2, forwards
    assert {part.replace(" forward", " backward") for part in forwards} <= set(parts)
    for step in range(3):  # the parts never overlap: their sum stays within the step
        inside = sum(record[part][step] for part in parts if part != "whole step")
        assert 0 < inside <= record["whole step"][step]


def test_step_profile_command_prints_every_part():
    run = subprocess.run([sys.executable, "-m", "benchmarks.step_profile", "--steps", "2"], cwd=ROOT, check=False,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines[0].startswith("MNIST convnet") and lines[-1].startswith("whole step")
    assert any(line.startswith("optimizer") for line in lines) and len(lines) == 1 + 1 + 6 + 1 + 6 + 1 + 1
