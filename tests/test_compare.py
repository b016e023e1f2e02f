"""``miniconv compare``: the statistics on synthetic results with known answers, the results file, the CLI's
errors, and tiny studies (``--limit``) on a local Dask cluster: complete, restarted, and with a worker
killed mid-run."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")
scipy_stats = pytest.importorskip("scipy.stats")

from miniconv import cli
from miniconv.compare import results, stats, study
from miniconv.recipes.base import UsageError

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--epochs", "1", "--limit", "256", "--test-limit", "200", "--batch-size", "64"]


# --- statistics: known answers and SciPy directly --------------------------------------------------


def welch_by_hand(a, b, level):
    """Welch's interval from its formula (the test's own arithmetic, SciPy only for t's quantile)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    d = a.mean() - b.mean()
    h = scipy_stats.t.ppf((1 + level) / 2, df) * se
    return d, se, df, (d - h, d + h)


def test_difference_textbook_numbers():
    # a = b = [0, 2]: d = 0, se = sqrt(1 + 1), df = 2, t(0.95, 2) = 2.919986 (a t table)
    out = stats.difference([0, 2], [0, 2], margin=1.0)
    assert out["mean"] == 0 and out["df"] == pytest.approx(2)
    assert out["ci90"] == pytest.approx([-2.919986 * math.sqrt(2), 2.919986 * math.sqrt(2)], rel=1e-6)
    assert out["ci95"] == pytest.approx([-4.302653 * math.sqrt(2), 4.302653 * math.sqrt(2)], rel=1e-6)
    assert out["verdict"] == stats.NOT_SHOWN


@pytest.mark.parametrize("case, verdict", [
    # (miniconv, keras, margin): what a user would expect to read
    (([99.10, 99.12, 99.08, 99.11, 99.09], [99.09, 99.11, 99.10, 99.12, 99.08], 0.1), stats.EQUIVALENT),
    (([99.10, 99.12, 99.08, 99.11, 99.09], [98.50, 98.52, 98.48, 98.51, 98.49], 0.1), stats.DIFFERENT),
    (([99.0, 99.4, 98.8, 99.3, 98.9], [99.1, 98.7, 99.5, 98.9, 99.2], 0.1), stats.NOT_SHOWN),
    # a real but tiny difference, well inside the margin: equivalent wins over "the 95% CI excludes 0"
    (([99.10, 99.11, 99.10, 99.11], [99.05, 99.06, 99.05, 99.06], 0.1), stats.EQUIVALENT),
    # the same difference at a margin it does not fit in: different
    (([99.10, 99.11, 99.10, 99.11], [99.05, 99.06, 99.05, 99.06], 0.04), stats.DIFFERENT),
    (([99.1], [99.1, 99.2], 0.1), stats.NOT_SHOWN),  # one run: no spread to test against
    (([99.1, 99.1], [99.1, 99.1], 0.1), stats.EQUIVALENT),  # no spread at all, same mean
    (([99.5, 99.5], [99.1, 99.1], 0.1), stats.DIFFERENT),  # no spread at all, 0.4 apart
])
def test_verdicts_on_synthetic_results(case, verdict):
    a, b, margin = case
    assert stats.difference(a, b, margin)["verdict"] == verdict


@pytest.mark.parametrize("seed", range(6))
def test_difference_equals_scipy_and_the_formula(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(99.1, 0.08, 3 + seed), rng.normal(99.08, 0.12, 10 - seed)
    margin = 0.1
    out = stats.difference(a, b, margin)
    d, se, df, ci90 = welch_by_hand(a, b, 0.90)
    assert out["mean"] == pytest.approx(d) and out["se"] == pytest.approx(se) and out["df"] == pytest.approx(df)
    assert out["ci90"] == pytest.approx(list(ci90))
    assert out["ci95"] == pytest.approx(list(welch_by_hand(a, b, 0.95)[3]))
    # TOST by its definition: the larger p of the two one-sided t tests against -margin and +margin
    p_low = scipy_stats.t.sf((d + margin) / se, df)
    p_high = scipy_stats.t.cdf((d - margin) / se, df)
    assert out["p_tost"] == pytest.approx(max(p_low, p_high))
    assert out["p_two_sided"] == pytest.approx(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue)
    # the verdict follows its rule
    inside = -margin < ci90[0] and ci90[1] < margin
    excludes_zero = out["ci95"][0] > 0 or out["ci95"][1] < 0
    expected = stats.EQUIVALENT if inside else stats.DIFFERENT if excludes_zero else stats.NOT_SHOWN
    assert out["verdict"] == expected
    assert (out["p_tost"] < 0.05) == inside


def test_describe_is_the_t_interval():
    values = [99.01, 99.16, 99.11, 99.12, 99.09]
    out = stats.describe(values)
    sem = np.std(values, ddof=1) / math.sqrt(5)
    h = 2.776445 * sem  # t(0.975, 4)
    assert out["std"] == pytest.approx(np.std(values, ddof=1))
    assert out["ci95"] == pytest.approx([np.mean(values) - h, np.mean(values) + h], rel=1e-6)
    assert stats.describe([99.0])["ci95"] is None


def test_speed_ratios():
    out = stats.ratios({0: 1.0, 1: 2.0, 2: 4.0, 5: 9.0}, {0: 2.0, 1: 2.0, 2: 2.0})
    assert out["seeds"] == [0, 1, 2] and out["ratios"] == [0.5, 1.0, 2.0]
    assert out["median"] == 1.0 and out["geometric_mean"] == pytest.approx(1.0)
    lo, hi = out["geometric_ci95"]
    assert lo < 1 < hi


# --- the results file ----------------------------------------------------------------------------


def test_results_file_appends_dedupes_and_ignores_a_cut_line(tmp_path):
    path, settings = tmp_path / "results.jsonl", {"recipe": "mnist", "epochs": 1}
    results.append(path, {"engine": "miniconv", "seed": 0, "accuracy": 0.5, "settings": settings})
    results.append(path, {"engine": "keras", "seed": 0, "accuracy": 0.6, "settings": settings})
    results.append(path, {"engine": "miniconv", "seed": 0, "accuracy": 0.7, "settings": settings})
    with open(path, "ab") as handle:
        handle.write(b'{"engine": "miniconv", "seed": 1, "accur')  # the study killed mid-write
    found = results.read(path, settings)
    assert sorted(found.runs) == [("keras", 0), ("miniconv", 0)]
    assert found.runs[("miniconv", 0)]["accuracy"] == 0.5 and found.duplicates == 1 and found.partial_line
    assert results.repair(path) and path.read_bytes().endswith(b"\n")
    results.append(path, {"engine": "miniconv", "seed": 1, "accuracy": 0.8, "settings": settings})
    assert sorted(results.read(path, settings).runs) == [("keras", 0), ("miniconv", 0), ("miniconv", 1)]
    with pytest.raises(UsageError, match="another study"):
        results.read(path, {"recipe": "mnist", "epochs": 2})


def test_runs_get_the_users_thread_variables_not_dasks(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what Dask's nanny puts in its workers
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    env = study.run_environment({"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": None})  # the user's: 2, unset
    assert "OMP_NUM_THREADS" not in env and env["OPENBLAS_NUM_THREADS"] == "2" and "MKL_NUM_THREADS" not in env
    assert str(ROOT) == env["PYTHONPATH"].split(os.pathsep)[0]


def test_progress_counts_done_running_left():
    progress = study.Progress(10)
    assert progress.text(3, 2).endswith("3/10 done, 2 running, 5 left")
    assert progress.text(3, 1, failed=1).endswith("3/10 done, 1 running, 5 left, 1 failed")


# --- the Keras side is the recipe's own model, optimizer and loss ---------------------------------


@pytest.mark.parametrize("recipe_name, options", [("mnist", {"optimizer": "rmsprop"}), ("mnist", {"optimizer": "adam"}),
                                                  ("cats-dogs", {"augment": False}), ("cats-dogs", {"augment": True})])
def test_keras_twin_is_the_recipes_convnet_in_keras(recipe_name, options):
    import argparse

    import keras

    from miniconv import recipes
    from miniconv.compare import keras_side
    from miniconv.recipes import cats_dogs, mnist

    recipe = recipes.get(recipe_name)
    model = recipe.build_model(argparse.Namespace(**options))
    keras.utils.set_random_seed(0)
    twin = keras_side.twin(model, keras)
    keras.utils.set_random_seed(0)
    reference = mnist.convnet(keras) if recipe_name == "mnist" else cats_dogs.convnet(keras, **options)

    def same_range(key, value):  # a random layer's factor f means the range [-f, f]
        return [-value, value] if key.endswith("factor") and isinstance(value, float) else value

    def layers(m):
        drop = ("name", "kernel_initializer", "bias_initializer", "seed", "dtype", "trainable")
        return [(type(x).__name__, {k: same_range(k, v) for k, v in x.get_config().items() if k not in drop})
                for x in m.layers]

    assert layers(twin) == layers(reference)
    assert twin.count_params() == model.count_params()
    expected = {"rmsprop": keras.optimizers.RMSprop(), "adam": keras.optimizers.Adam()}.get(
        options.get("optimizer"), keras.optimizers.RMSprop(learning_rate=1e-4))
    assert type(twin.optimizer) is type(expected)
    assert float(twin.optimizer.learning_rate) == pytest.approx(float(expected.learning_rate))
    loss = "SparseCategoricalCrossentropy" if recipe_name == "mnist" else "BinaryCrossentropy"
    assert type(twin.loss).__name__ == loss
    assert not np.allclose(twin.layers[-1].get_weights()[0], model.layers[-1].get_weights()[0])  # Keras's own init


def test_keras_warm_up_leaves_the_initial_state():
    import argparse

    import keras

    from miniconv import recipes
    from miniconv.compare import keras_side
    from miniconv.recipes.base import Data

    rng = np.random.default_rng(0)
    x, y = rng.random((100, 28, 28, 1), np.float32), rng.integers(0, 10, 100).astype(np.uint8)
    data = Data(x, y, validation=(x[:70], y[:70]), warm_up=(x[:64], y[:64]))
    keras.utils.set_random_seed(3)
    model = keras_side.twin(recipes.get("mnist").build_model(argparse.Namespace(optimizer="rmsprop")), keras)
    initial = [v.numpy().copy() for v in model.variables]
    keras_side.warm_up(model, keras, data, batch_size=64, seed=3)
    assert all(np.array_equal(v.numpy(), w) for v, w in zip(model.variables, initial))
    assert model.optimizer.built and int(model.optimizer.iterations.numpy()) == 0
    state = [v for v in model.optimizer.variables if not v.path.endswith(("learning_rate", "iteration"))]
    assert state and all(not np.any(v.numpy()) for v in state)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)


# --- the command's errors: one line, exit 2, before any run ----------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["compare", "nope", "--seeds", "2"], "invalid choice: 'nope'"),
    (["compare", "mnist", "--seeds", "2", "--engines", "miniconv,torch"], "unknown engine 'torch'"),
    (["compare", "mnist", "--seeds", "0"], "--seeds must be at least 1, got 0"),
    (["compare", "mnist", "--seeds", "2", "--scheduler", "tcp://127.0.0.1:1"], "cannot reach a scheduler"),
    (["compare", "mnist", "--seeds", "2", "--scheduler", "tcp://127.0.0.1:notaport"], "is not a Dask address"),
    (["compare", "mnist", "--seeds", "2", "--epochs", "0"], "--epochs must be at least 1"),
    (["compare", "mnist", "--seeds", "2", "--margin", "-1"], "--margin must be positive"),
    (["compare", "mnist", "--seeds", "2", "--data", "/nonexistent/mnist.npz"], "no such file or directory"),
    (["compare", "cats-dogs", "--seeds", "2", "--data", "/"], "expected the folders train/ and validation/"),
])
def test_usage_errors_are_one_line_before_any_run(tmp_path, capsys, argv, message):
    out = tmp_path / "study"
    with pytest.raises(SystemExit) as exited:
        sys.exit(cli.main([*argv, "--out", str(out)]))
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("miniconv compare"), err
    assert not (out / "results.jsonl").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="the lock is fcntl's")
def test_a_second_study_in_the_same_dir_is_refused(tmp_path, capsys):
    import fcntl

    out = tmp_path / "study"
    out.mkdir()
    with open(out / ".compare.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a study running there
        assert cli.main(["compare", "mnist", "--seeds", "2", "--out", str(out)]) == 2
    assert "another miniconv compare is running in" in capsys.readouterr().err


def test_a_cancelled_task_stops_its_run():
    from types import SimpleNamespace

    def worker(states):
        return SimpleNamespace(state=SimpleNamespace(tasks={k: SimpleNamespace(state=v) for k, v in states.items()}))

    assert not study._abandoned(worker({"k": "executing"}), "k")
    assert study._abandoned(worker({"k": "cancelled"}), "k") and study._abandoned(worker({}), "k")


# --- tiny studies on a local cluster -------------------------------------------------------------


def compare(*argv, timeout=300):
    """``miniconv compare ...`` in its own process, as a user runs it."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "miniconv", "compare", *argv], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT, check=False)


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def recomputed(path, engines, seeds):
    """The report's numbers from the results file alone, computed here with NumPy and SciPy."""
    runs = {(r["engine"], r["seed"]): r for r in lines(path)}
    acc = {e: np.array([100 * runs[(e, s)]["accuracy"] for s in seeds]) for e in engines}
    return runs, acc


def test_study_completes_and_restarts(tmp_path):
    out = tmp_path / "study"
    done = compare("mnist", "--seeds", "2", *TINY, "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "4/4 done, 0 running, 0 left" in done.stderr
    data = json.loads((out / "report.json").read_text())
    runs, acc = recomputed(out / "results.jsonl", ["miniconv", "keras"], [0, 1])
    assert len(lines(out / "results.jsonl")) == 4 and data["complete"]
    for engine in ("miniconv", "keras"):
        e = data["engines"][engine]
        assert e["accuracies"] == pytest.approx(list(acc[engine]))
        assert e["mean"] == pytest.approx(acc[engine].mean()) and e["std"] == pytest.approx(acc[engine].std(ddof=1))
        ci = scipy_stats.t.interval(0.95, 1, loc=acc[engine].mean(), scale=scipy_stats.sem(acc[engine]))
        assert e["ci95"] == pytest.approx(list(ci))
        assert e["seconds_per_epoch"] == pytest.approx([runs[(engine, s)]["seconds_per_epoch"] for s in (0, 1)])
        assert e["final_losses"] == pytest.approx([runs[(engine, s)]["loss"] for s in (0, 1)])
    d = data["difference"]
    ci90 = scipy_stats.ttest_ind(acc["miniconv"], acc["keras"], equal_var=False).confidence_interval(0.90)
    assert d["mean"] == pytest.approx(acc["miniconv"].mean() - acc["keras"].mean())
    assert d["ci90"] == pytest.approx([ci90.low, ci90.high]) and d["margin"] == 0.1
    assert d["verdict"] in (stats.EQUIVALENT, stats.NOT_SHOWN, stats.DIFFERENT)
    ratios = [runs[("miniconv", s)]["seconds_per_epoch"] / runs[("keras", s)]["seconds_per_epoch"] for s in (0, 1)]
    assert data["speed_ratio"]["ratios"] == pytest.approx(ratios)
    assert all(r["epochs"] == 1 and r["facts"]["train_samples"] == 256 for r in runs.values())
    assert (out / "study.png").stat().st_size > 10_000 and "Verdict" in (out / "report.md").read_text()

    # restart: one more seed, and the line an interrupted study left half-written; on an existing cluster
    with open(out / "results.jsonl", "ab") as handle:
        handle.write(b'{"engine": "miniconv", "seed": 2, "accu')
    before = (out / "results.jsonl").read_bytes().rsplit(b"\n", 1)[0] + b"\n"
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None, memory_limit=0) as cluster:
        again = compare("mnist", "--seeds", "3", "--engines", "miniconv", *TINY, "--out", str(out),
                        "--scheduler", cluster.scheduler_address)
        assert lines(out / "results.jsonl")[-1]["worker"] in cluster.scheduler_info["workers"]  # that cluster's
    assert again.returncode == 0, again.stderr[-2000:]
    assert "3 runs, 2 already in" in again.stdout and "1/1 done" in again.stderr
    assert f"the cluster at {cluster.scheduler_address}" in again.stdout
    assert (out / "results.jsonl").read_bytes().startswith(before)  # earlier runs untouched
    keys = [(r["engine"], r["seed"]) for r in lines(out / "results.jsonl")]
    assert sorted(keys) == [("keras", 0), ("keras", 1), ("miniconv", 0), ("miniconv", 1), ("miniconv", 2)]
    data = json.loads((out / "report.json").read_text())
    assert data["engines"]["miniconv"]["seeds"] == [0, 1, 2] and data["difference"] is None

    # nothing left to run: the report again, no run; other settings in the same DIR: refused
    nothing = compare("mnist", "--seeds", "3", "--engines", "miniconv", *TINY, "--out", str(out))
    assert nothing.returncode == 0 and "0 to run" in nothing.stdout and "done" not in nothing.stderr
    other = compare("mnist", "--seeds", "3", "--epochs", "2", "--limit", "256", "--out", str(out))
    assert other.returncode == 2 and "holds runs of another study" in other.stderr


def test_a_run_that_fails_for_good_is_named_and_missing_from_the_report(tmp_path):
    out = tmp_path / "study"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               MINICONV_DATA=str(tmp_path / "nowhere.npz"))  # every run's data load fails
    done = subprocess.run([sys.executable, "-m", "miniconv", "compare", "mnist", "--seeds", "1", "--engines", "miniconv",
                           "--retries", "1", *TINY, "--out", str(out)], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300, check=False)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "failed for good: miniconv seed 0: exit status 2" in done.stderr
    assert "nowhere.npz" in done.stderr and "0/1 done, 0 running, 0 left, 1 failed" in done.stderr
    data = json.loads((out / "report.json").read_text())
    assert data["missing"] == [["miniconv", 0]] and not data["complete"] and not (out / "results.jsonl").exists()


def _processes():
    """{pid: (ppid, command line)} of this machine's live processes (Linux /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            except (OSError, ValueError, IndexError):
                continue
            if state != "Z":  # a zombie has ended; only its exit status waits to be collected
                found[int(entry.name)] = (int(ppid), command)
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the run's processes in /proc")
def test_killed_worker_mid_run_still_every_seed_once(tmp_path):
    out = tmp_path / "study"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    argv = [sys.executable, "-m", "miniconv", "compare", "mnist", "--seeds", "3", "--engines", "miniconv",
            "--epochs", "3", "--limit", "4096", "--test-limit", "200", "--out", str(out)]  # runs of about 8 s
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        _kill_a_worker_mid_run(process, out)
    finally:
        if process.poll() is None:
            process.kill()  # its local cluster's workers end with it, and their runs with them
            process.wait()


def _kill_a_worker_mid_run(process, out):
    tag = f"miniconv-compare:{out.resolve()}"
    victim = run_pid = None
    deadline = time.time() + 120
    while victim is None and time.time() < deadline and process.poll() is None:
        runs = [(pid, ppid) for pid, (ppid, command) in _processes().items()
                if "miniconv.compare.run" in command and tag in command]
        if runs:
            time.sleep(2)  # well into the run: its process has loaded and started training
            run_pid, parent = runs[0]
            assert run_pid in _processes(), "the run ended before the test could kill its worker"
            os.kill(parent, signal.SIGKILL)  # the Dask worker executing that run
            victim = parent
        time.sleep(0.2)
    assert victim is not None, "no run process appeared"
    for _ in range(15):  # within 1.5 s the run notices its worker is gone and ends (no orphan goes on training)
        if run_pid not in _processes():
            break
        time.sleep(0.1)
    assert run_pid not in _processes()
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    keys = [(r["engine"], r["seed"]) for r in lines(out / "results.jsonl")]
    assert sorted(keys) == [("miniconv", 0), ("miniconv", 1), ("miniconv", 2)]  # every seed, exactly once
    assert json.loads((out / "report.json").read_text())["complete"]
