"""The benchmarks: ``python -m benchmarks ops --quick`` end to end, and the shared harness's own logic.

The ops smoke test: three small MNIST layers, one round, numpy backend, TensorFlow (and PyTorch
where installed) in their own worker processes; a reference that cannot run is recorded as not
run, not a failure. Output goes to a temporary directory, never over benchmarks/results/.
Timings are not checked (ARCHITECTURE.md: speed claims come from the benchmark table, never from
a timed unit test).

The harness tests (``benchmarks.harness``: rotation, best round, ratios, rounds, a worker that is
unavailable, crashes, prints no JSON or hangs) need no TensorFlow: their workers are fakes, in
this process or in a small module written to a temporary directory.
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
    assert data["copy_bandwidth"]["gbps"] > 0 and data["copy_bandwidth"]["threads"] >= 1

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
        assert row["bytes"] is None and not row["gbps"]  # the MNIST cases: FLOPs or pools, no traffic row

    markdown = (tmp_path / "ops.md").read_text()
    assert "| layer |" in markdown and "miniconv numpy" in markdown and "mnist/conv2" in markdown
    assert "OPENBLAS_CORETYPE" in markdown


def test_traffic_counts():
    """The memory-traffic table's bytes: each tensor of the pass once, float32, the backward reading x
    again; none for convolutions, dense layers and pools (FLOPs there, or no count)."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.cases import BY_ID

    x = 32 * 112 * 112 * 32
    assert BY_ID["mobile/dw3x3s1-112x32"].traffic("forward") == 4 * 2 * x
    assert BY_ID["mobile/dw3x3s1-112x32"].traffic("fwd+bwd") == 4 * (2 * x + 3 * x)
    y2 = 32 * 56 * 56 * 32  # stride 2, SAME: 56 x 56 out
    assert BY_ID["mobile/dw3x3s2-112x32"].traffic("forward") == 4 * (x + y2)
    assert BY_ID["mobile/dw3x3s2-112x32"].traffic("fwd+bwd") == 4 * (x + y2 + 2 * x + y2)
    assert BY_ID["mobile/moments-112x32"].traffic("forward") == 4 * x
    assert BY_ID["mobile/moments-112x32"].traffic("fwd+bwd") == 4 * 3 * x
    assert BY_ID["mobile/relu6-112x32"].traffic("fwd+bwd") == BY_ID["mobile/bn-112x32"].traffic("fwd+bwd") == 4 * 5 * x
    for case in ("mobile/pw1x1-112x32", "mnist/conv2", "mnist/pool1", "cats/dense1", "mnist/conv2+pool2"):
        assert BY_ID[case].traffic("forward") is None


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
        for forward, (y, _) in (mine, theirs):  # fwd+bwd returns the forward it computed too
            np.testing.assert_allclose(np.asarray(y), np.asarray(forward), rtol=1e-6, atol=1e-6)
        assert len(mine[1][1]) == len(theirs[1][1]) == count  # (dx,) dw, dbias
        for a, b in zip(mine[1][1], theirs[1][1]):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-4 * max(1.0, np.abs(b).max()))


def test_training_benchmark_markdown_from_the_committed_results():
    """The table, the ratio of best rounds and the not-run line are rebuilt from train_mnist.json."""
    import json
    from pathlib import Path

    from benchmarks import train_mnist

    data = json.loads((Path(__file__).parents[1] / "benchmarks" / "results" / "train_mnist.json").read_text())
    text = train_mnist.markdown(data)
    for ratio in data["ratios"].values():
        assert f": {ratio:.2f}x**" in text
    data["contestants"]["torch"] = {"available": False, "reason": "not installed"}
    assert "Not run: PyTorch (not installed)." in train_mnist.markdown(data)


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


def test_step_profile_of_the_cats_convnet_has_its_four_fused_pairs():
    from benchmarks import step_profile

    parts, record = step_profile.profile(steps=2, model_name="cats")
    forwards = [part for part in parts if part.endswith(" forward")]
    assert sum("+max_pooling2d" in part for part in forwards) == 4, forwards
    assert forwards[0].startswith("rescaling") and len(record["whole step"]) == 2


def test_step_profile_command_prints_every_part():
    run = subprocess.run([sys.executable, "-m", "benchmarks.step_profile", "--steps", "2"], cwd=ROOT, check=False,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines[0].startswith("MNIST convnet") and lines[-1].startswith("whole step")
    assert any(line.startswith("optimizer") for line in lines) and len(lines) == 1 + 1 + 6 + 1 + 6 + 1 + 1


# --- the harness (benchmarks.harness): no TensorFlow needed --------------------------------------


def test_rotation_gives_every_contestant_every_place_once_in_n_rounds():
    from benchmarks.harness import rotated

    names = ["miniconv-cpu", "tf", "torch"]
    orders = [rotated(names, r) for r in range(4)]
    assert orders[:3] == [["miniconv-cpu", "tf", "torch"], ["tf", "torch", "miniconv-cpu"],
                          ["torch", "miniconv-cpu", "tf"]]
    assert orders[3] == orders[0]  # round 4 starts over
    for place in range(3):
        assert sorted(order[place] for order in orders[:3]) == sorted(names)
    assert rotated([], 5) == [] and rotated(["a"], 7) == ["a"]


def test_best_round_is_the_least_time_and_ratios_compare_miniconv_with_each_reference():
    from benchmarks.harness import best_round, ratio_to, ratios

    runs = [{"s": 3.0, "round": 1}, {"s": 2.0, "round": 2}, {"s": 2.5, "round": 3}]
    assert best_round(runs, "s") == {"s": 2.0, "round": 2}
    with pytest.raises(ValueError):
        best_round([], "s")
    seconds = {"miniconv-cpu": 3.0, "miniconv-numpy": 12.0, "tf": 4.0, "torch": 6.0}
    assert ratio_to(seconds, "tf") == {"miniconv-cpu": 0.75, "miniconv-numpy": 3.0}  # never tf / torch
    assert ratio_to(seconds, "jax") == {} and ratio_to({"miniconv-cpu": 1.0, "tf": 0.0}, "tf") == {}
    assert ratios(seconds, ("tf", "torch")) == {"miniconv-cpu/tf": 0.75, "miniconv-cpu/torch": 0.5,
                                                "miniconv-numpy/tf": 3.0, "miniconv-numpy/torch": 2.0}
    assert list(ratios(seconds, ("tf", "torch"))) == ["miniconv-cpu/tf", "miniconv-cpu/torch", "miniconv-numpy/tf",
                                                      "miniconv-numpy/torch"]
    assert ratios({"miniconv-cpu": 1.0}, ("tf",)) == {}
    assert ratio_to({"miniconv": 2.0, "keras": 4.0}, "keras") == {"miniconv": 0.5}  # step_times' side names


def test_contestant_names_drop_unknown_references():
    from benchmarks.harness import contestants

    assert contestants("cpu, numpy", "tf,jax,", ("tf", "torch")) == ["miniconv-cpu", "miniconv-numpy", "tf"]
    assert contestants("cpu", "torch,tf", ("tf", "torch"), references_first=True) == ["torch", "tf", "miniconv-cpu"]
    assert contestants("cpu", "", ("tf",)) == ["miniconv-cpu"]


def test_rounds_alternate_keep_every_run_and_report_who_could_not_run():
    """A fake worker in this process: the call order, each run's round, unavailable and failed contestants."""
    from benchmarks.harness import run_rounds

    calls = []
    script = {  # (name, round) -> what the worker prints
        ("gone", 0): {"unavailable": "not installed"}, ("gone", 1): {"unavailable": "not installed"},
        ("flaky", 0): {"failed": "exit 1: MemoryError"},  # ran in round 2 only
        ("late-fail", 1): {"failed": "timed out after 5 s"},  # ran in round 1 only
    }

    def worker(module, name, args, timeout):
        r = sum(1 for c in calls if c[0] == "round")
        calls.append((name, module, tuple(args), timeout))
        return script.get((name, r - 1), {"contestant": name, "info": {"r": r}, "seconds": 10.0 * r})

    names = ["miniconv-cpu", "gone", "flaky", "late-fail"]
    seen = run_rounds("benchmarks.fake", names, ["--x", "1"], 2, before_round=lambda r: calls.append(("round", r)),
                      timeout=5, worker=worker)
    order = [c[0] for c in calls]
    assert order == ["round", "miniconv-cpu", "gone", "flaky", "late-fail",
                     "round", "gone", "flaky", "late-fail", "miniconv-cpu"]
    assert all(c[1:] == ("benchmarks.fake", ("--x", "1"), 5) for c in calls if c[0] != "round")
    assert [c[1] for c in calls if c[0] == "round"] == [0, 1]

    assert [run["round"] for run in seen.runs["miniconv-cpu"]] == [1, 2]
    assert [run["seconds"] for run in seen.runs["miniconv-cpu"]] == [10.0, 20.0]
    assert seen.status["miniconv-cpu"] == {"available": True, "info": {"r": 1}}
    assert seen.runs["gone"] == [] and seen.status["gone"] == {"available": False, "reason": "not installed"}
    assert seen.status["flaky"]["available"] and [run["round"] for run in seen.runs["flaky"]] == [2]
    assert seen.status["flaky"]["failures"] == [{"round": 1, "reason": "exit 1: MemoryError"}]
    assert seen.status["late-fail"]["failures"] == [{"round": 2, "reason": "timed out after 5 s"}]
    assert seen.any_ran()
    nobody = run_rounds("m", ["gone"], [], 2, worker=lambda *a, **k: {"unavailable": "no"})
    assert not nobody.any_ran() and nobody.status == {"gone": {"available": False, "reason": "no"}}


FAKE_WORKER = '''
import os, sys, time
from benchmarks import harness

name = sys.argv[sys.argv.index("--worker") + 1]


def measure():
    if name == "gone":
        raise harness.Unavailable("no such library here")
    if name == "crash":
        raise RuntimeError("boom in the worker")
    if name == "silent":
        sys.exit(0)
    if name == "garbage":
        print("not json at all")
        sys.exit(0)
    if name == "slow":
        time.sleep(60)
    print("progress lines before the result do not count")
    return {"info": {"cwd": os.getcwd(), "timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT")},
            "args": sys.argv[sys.argv.index("--worker") + 2:]}


sys.exit(harness.worker_main(name, measure))
'''


@pytest.fixture
def fake_worker(tmp_path, monkeypatch):
    (tmp_path / "fake_bench_worker.py").write_text(FAKE_WORKER)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # run_worker puts the repository before it
    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)
    return "fake_bench_worker"


def test_a_worker_reports_its_json_line_from_the_repository_with_the_worker_environment(fake_worker):
    from benchmarks.harness import ROOT, run_worker

    out = run_worker(fake_worker, "ok", ["--steps", "3"])
    assert out == {"contestant": "ok", "info": {"cwd": str(ROOT), "timeout": "4"}, "args": ["--steps", "3"]}


@pytest.mark.parametrize("name, reason", [
    ("gone", {"unavailable": "no such library here"}),
    ("crash", {"failed": "exit 1: RuntimeError: boom in the worker"}),
    ("silent", {"failed": "exit 0: no output"}),
    ("garbage", {"failed": "no JSON result: not json at all"}),
])
def test_a_worker_that_cannot_run_or_fails_is_reported_not_raised(fake_worker, name, reason):
    from benchmarks.harness import run_worker

    out = run_worker(fake_worker, name)
    assert {k: v for k, v in out.items() if k != "contestant"} == reason


def test_a_worker_that_outlives_its_timeout_is_stopped_and_reported(fake_worker):
    import time

    from benchmarks.harness import run_worker

    start = time.perf_counter()
    assert run_worker(fake_worker, "slow", timeout=2) == {"failed": "timed out after 2 s"}
    assert time.perf_counter() - start < 30


def test_write_results_writes_both_files_whole(tmp_path):
    from benchmarks.harness import write_results

    out = tmp_path / "new" / "dir"
    data = {"benchmark": "x", "results": {"miniconv-cpu": 1.5}}
    paths = write_results(out, "x", data, "# table\n")
    assert paths == (out / "x.json", out / "x.md")
    assert json.loads(paths[0].read_text()) == data and paths[1].read_text() == "# table\n"
    write_results(out, "x", {"benchmark": "y"}, "# other\n")  # replaced, no temporary file left beside
    assert sorted(p.name for p in out.iterdir()) == ["x.json", "x.md"] and paths[1].read_text() == "# other\n"


def test_training_results_keep_each_contestants_best_round():
    from benchmarks import training

    def run(seconds, rss, accuracy, with_validation):
        return {"epoch_seconds": [seconds], "seconds_per_epoch": seconds, "peak_rss_mb": rss,
                "test_accuracy": accuracy, "train_samples": 8, "test_samples": 4, "round": 1, "info": {},
                "epoch_seconds_with_validation": [with_validation],
                "seconds_per_epoch_with_validation": with_validation}

    runs = {"miniconv-cpu": [run(5.0, 300, 0.5, 5.5), run(4.0, 310, 0.6, 4.9), run(4.5, 290, 0.7, 4.7)], "tf": []}
    found = training.results(runs, with_validation=True)
    assert list(found) == ["miniconv-cpu"]  # tf never ran
    best = found["miniconv-cpu"]
    assert best["seconds_per_epoch"] == 4.0 and best["test_accuracy"] == 0.6  # the best round's
    assert best["round_seconds_per_epoch"] == [5.0, 4.0, 4.5] and best["peak_rss_mb"] == 310
    assert best["seconds_per_epoch_with_validation"] == 4.7  # the least over the rounds
    assert "round" not in best["rounds"][0] and "info" not in best["rounds"][0]
    assert "seconds_per_epoch_with_validation" not in training.results(runs)["miniconv-cpu"]


def test_the_keras_worker_wraps_the_same_epoch_clock_in_a_lambda_callback():
    from types import SimpleNamespace

    from benchmarks import engines
    from miniconv.callbacks import EpochClock

    clock = EpochClock()
    fake_keras = SimpleNamespace(callbacks=SimpleNamespace(LambdaCallback=lambda **hooks: hooks))
    hooks = engines.Engine("tf", fake_keras, {}, None).callback(clock)
    assert hooks == {"on_epoch_begin": clock.on_epoch_begin, "on_train_batch_end": clock.on_train_batch_end,
                     "on_epoch_end": clock.on_epoch_end}
    assert engines.Engine("miniconv-cpu", None, {}, None).callback(clock) is clock
    hooks["on_epoch_begin"](0)
    hooks["on_train_batch_end"](0)
    hooks["on_epoch_end"](0)
    assert len(clock.training) == len(clock.with_validation) == 1
    assert engines.clock_result(clock)["seconds_per_epoch"] == clock.training[0]
    for name in ("jax", "miniconv-nosuchbackend"):
        with pytest.raises(engines.Unavailable):
            engines.engine(name)


def test_step_times_summary_lists_rounds_in_order_and_ratios_of_best_rounds():
    from benchmarks import step_times

    stats = lambda m, r: {"min": m, "p10": m, "median": 2 * m, "p90": 3 * m, "mean": 2 * m, "round": r}
    lines, ratios = step_times.summary({"miniconv": [stats(6.0, 1), stats(5.0, 2)], "keras": [stats(10.0, 1)]})
    assert [line[:16] for line in lines] == ["round 1 miniconv", "round 1 keras   ", "round 2 miniconv"]
    assert lines[0].endswith(" ms") and "median 12.00" in lines[0]
    assert ratios == {"min": 0.5, "median": 0.5}
    assert step_times.summary({"miniconv": [stats(6.0, 1)], "keras": []})[1] == {}


def test_the_pytorch_worker_trains_or_says_pytorch_is_missing():
    import importlib.util

    from benchmarks.harness import run_worker

    out = run_worker("benchmarks.train_mnist", "torch", ["--limit", "64", "--warmup-steps", "1"], timeout=300)
    if importlib.util.find_spec("torch") is None:
        assert out == {"contestant": "torch", "unavailable": out["unavailable"]}
        assert out["unavailable"].startswith("PyTorch is not installed")
    else:
        assert out["seconds_per_epoch"] > 0 and out["train_samples"] == 64 and len(out["epoch_seconds"]) == 1


def test_benchmark_train_with_no_contestant_that_can_run_exits_1_and_says_why(tmp_path):
    run = subprocess.run([sys.executable, "-m", "benchmarks", "train", "mnist", "--backends", "nosuch", "--references",
                          "", "--rounds", "1", "--limit", "64", "--out", str(tmp_path)],
                         cwd=ROOT, check=False, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr[-3000:]
    data = json.loads((tmp_path / "train_mnist.json").read_text())
    assert data["results"] == {} and data["ratios"] == {}
    assert data["contestants"] == {"miniconv-nosuch": {
        "available": False, "reason": "miniconv backend 'nosuch' is not available here"}}
    assert "Not run: miniconv nosuch (miniconv backend 'nosuch' is not available here)." in \
        (tmp_path / "train_mnist.md").read_text()


def test_benchmark_transfer_runs_both_measurements_and_checks_agreement(tmp_path):
    """``python -m benchmarks transfer`` on 6 tiny images at 64x64, one round: both measurements, the
    trainable-weight check and the agreement of the features (Keras's side only where installed)."""
    import importlib.util
    import os

    import numpy as np
    from PIL import Image

    from miniconv.applications import efficientnet_weights

    try:
        efficientnet_weights.checkpoint_path()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    rng = np.random.default_rng(0)
    for split, count in (("train", 2), ("validation", 1)):
        for name in ("cats", "dogs"):
            (tmp_path / "data" / split / name).mkdir(parents=True)
            for i in range(count):
                image = rng.integers(0, 256, (40 + 10 * i, 50, 3), dtype=np.uint8)
                Image.fromarray(image).save(tmp_path / "data" / split / name / f"{name[:-1]}.{i}.jpg")
    run = subprocess.run([sys.executable, "-m", "benchmarks", "transfer", "--data", str(tmp_path / "data"), "--images",
                          "5", "--size", "64", "--rounds", "1", "--out", str(tmp_path / "out")],
                         cwd=ROOT, check=False, capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, MINICONV_HOME=str(tmp_path / "home")))  # never the user's cache
    assert run.returncode == 0, run.stderr[-3000:]
    data = json.loads((tmp_path / "out" / "transfer.json").read_text())
    s = data["settings"]
    assert (s["images"], s["train_images"], s["validation_images"], s["size"]) == (5, 4, 1, 64)
    assert data["decode"]["images"] == 5 and data["decode"]["seconds"] > 0
    assert len(data["load_average"]["before_rounds"]) == 1 and len(data["load_average"]["after"]) == 3
    mine = data["results"]["miniconv-cpu"]
    assert mine["features_images"] == 5 and mine["rounds"][0]["features_shape"] == [5, 1280]
    assert mine["train_images"] == 4 and mine["features_seconds"] > 0 and mine["epoch_seconds"] > 0
    assert mine["trainable"]["arrays"] == 8  # block7a's three convolutions and top_conv, the head's two Dense
    keras_ran = data["contestants"]["tf"]["available"]
    assert keras_ran == (importlib.util.find_spec("tensorflow") is not None), data["contestants"]["tf"]
    markdown = (tmp_path / "out" / "transfer.md").read_text()
    assert "a smoke test, not the real measurement" in markdown and "miniconv cpu" in markdown
    if keras_ran:
        assert data["results"]["tf"]["trainable"] == mine["trainable"]
        assert set(data["ratios"]["features_seconds"]) == {"miniconv-cpu/tf"}
        agreement = data["agreement"]["miniconv-cpu/tf"]
        assert agreement["images"] == 4 and agreement["relative"] < 1e-4
        assert agreement["fine_tune_outputs_max_abs_diff"] < 1e-4
        assert "Agreement: the features of the first 4 images" in markdown


def test_transfer_profile_prints_every_kind_of_step(tmp_path):
    """``python -m benchmarks.transfer_profile`` at 32x32, one batch: every kind of EfficientNet step, both tables.
    Every ReLU6 of EfficientNet-Lite0 follows a conv and a batch normalization that is folded (inference, or
    frozen in fine-tuning): it runs inside the conv's step (conv_bn_folded_relu6), so no relu6 step is left."""
    import os

    from miniconv.applications import efficientnet_weights

    try:
        efficientnet_weights.checkpoint_path()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    run = subprocess.run([sys.executable, "-m", "benchmarks.transfer_profile", "--size", "32", "--batches", "1"],
                         cwd=ROOT, check=False, capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, MINICONV_HOME=str(tmp_path)))  # never the user's cache
    assert run.returncode == 0, run.stderr[-3000:]
    predict, tune = run.stdout.split("## ")[1:]
    for kind in ("stem conv 3x3 s2 (+BN)", "depthwise 3x3 (+BN)", "depthwise 5x5 (+BN)", "1x1 conv (+BN)",
                 "add (residual)", "global average pooling"):
        assert f"| {kind} | forward |" in predict and f"| {kind} | forward |" in tune, kind
    assert "| relu6 |" not in predict and "| relu6 |" not in tune  # fused into the conv steps
    assert "| 1x1 conv (+BN) | backward |" in tune and "| optimizer (RMSprop) | update |" in tune
    assert "backward" not in predict and "(sum of the parts)" in predict


def test_transfer_markdown_from_the_committed_results():
    """transfer.md is rebuilt from transfer.json: the ratios, the agreement, the load note, who did not run."""
    from benchmarks import transfer

    data = json.loads((ROOT / "benchmarks" / "results" / "transfer.json").read_text())
    text = transfer.markdown(data)
    assert text == (ROOT / "benchmarks" / "results" / "transfer.md").read_text()
    for key in ("features_seconds", "epoch_seconds"):
        assert f"**{data['ratios'][key]['miniconv-cpu/tf']:.2f}x** (target at most 1.0x)" in text
    assert "Agreement: the features of the first 4 images" in text
    quiet = {**data, "load_average": {"before_rounds": [[0.5, 0.5, 0.5]], "after": [1.0, 1.0, 1.0]}}
    assert ("heavily loaded" in text) == (max(r[0] for r in data["load_average"]["before_rounds"]) > transfer.LOADED
                                          or data["load_average"]["after"][0] > transfer.LOADED)
    assert "heavily loaded" not in transfer.markdown(quiet)
    data["contestants"]["tf"] = {"available": False, "reason": "not installed"}
    assert "Not run: Keras (TensorFlow) (not installed)." in transfer.markdown(data)


def test_conv_breakdown_accounts_each_kernel_by_kind_and_restores_them():
    """benchmarks.conv_breakdown: every pass of a small plain and a small fused convolution is timed,
    the kinds the kernels ran under are counted, threads x wall covers them, and the wrapped kernels
    and np.matmul are put back afterwards."""
    import numpy as np

    from benchmarks import conv_breakdown
    from benchmarks.cases import FUSED, OpCase
    from miniconv.backend.cpu import conv_kernels

    assert conv_breakdown.kind_of("im2col_rows_patch_major") == "im2col"
    assert conv_breakdown.kind_of("col2im_images") == "col2im"
    assert conv_breakdown.kind_of("input_tiles") == "transforms"
    assert conv_breakdown.kind_of("patch_gradients") == conv_breakdown.kind_of("add_patches") == "transforms"
    assert conv_breakdown.kind_of("forward_units") == "direct loops"
    assert conv_breakdown.kind_of("pooled_gradient_images") == "pooling"
    assert conv_breakdown.kind_of("bias_activation_rows") == "bias + activation"
    matmul, im2col = np.matmul, conv_kernels.im2col_rows
    cases = [OpCase("mnist", "conv2", "conv2d", (4, 9, 8, 16), 8), OpCase("mnist", "conv2+pool2", FUSED, (2, 8, 8, 16), 8)]
    rows = conv_breakdown.measure(cases, repeats=2)
    assert np.matmul is matmul and conv_kernels.im2col_rows is im2col
    assert [(r["case"], r["pass"]) for r in rows] == [
        ("mnist/conv2", "forward"), ("mnist/conv2", "backward-input"), ("mnist/conv2", "backward-filter"),
        ("mnist/conv2", "backward (dx + dw)"), ("mnist/conv2+pool2", "forward"), ("mnist/conv2+pool2", "backward")]
    for r in rows:
        parts = r["thread_ms"]
        assert r["wall_ms"] > 0 and set(parts) <= set(conv_breakdown.KINDS)
        busy = sum(v for k, v in parts.items() if k != "waiting + Python")
        assert busy <= r["threads"] * r["wall_ms"] * 1.05 and busy > 0
    assert "im2col" in rows[0]["thread_ms"] and "col2im" in rows[1]["thread_ms"]
    lines = conv_breakdown.table(rows)
    assert lines[0].startswith("| layer | pass | wall ms |") and len(lines) == 2 + len(rows)
    from benchmarks.common import machine_info

    text = conv_breakdown.markdown({"machine": machine_info(), "repeats": 2, "rows": rows})
    assert text.startswith("# Where") and "Measured " in text and "--repeats 2" in text and lines[-1] in text


def test_winograd_tile_error_transforms_are_exact_in_float64():
    """Each tile size's (B^T, G, A^T) computes the convolution: in float64 it equals the direct sum to
    rounding, on odd sizes that cut the last tiles; the float32 study then measures rounding only."""
    import numpy as np

    from benchmarks import winograd_tile_error as study

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 12, 11, 5))  # P = 10, Q = 9: every tile size cuts a last row or column
    w = rng.uniform(-1, 1, (3, 3, 5, 4))
    y, _ = study.direct(x, w)
    for tile in study.TILES:
        np.testing.assert_allclose(study.winograd_forward(x, w, tile), y, rtol=0, atol=1e-11, err_msg=tile)


def test_winograd_tile_error_reference_row_is_the_same_convolution():
    """The study's TensorFlow row computes the convolution the tiles do (VALID, HWIO), to float32 rounding."""
    import numpy as np

    from benchmarks import winograd_tile_error as study

    pytest.importorskip("tensorflow")
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (2, 9, 8, 6)).astype(np.float32)
    w = rng.uniform(-1, 1, (3, 3, 6, 5)).astype(np.float32)
    y, terms = study.direct(x, w)
    reference = study.tensorflow_conv2d()["tf.nn.conv2d"](x, w)
    assert reference.shape == y.shape
    np.testing.assert_array_less(np.abs(reference - y), 4 * np.finfo(np.float32).eps * np.sqrt(54) * terms + 1e-30)
