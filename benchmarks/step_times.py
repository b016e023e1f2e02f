"""Per-step times of the MNIST convnet's ``fit``, miniconv against Keras: a view that survives a noisy machine.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.step_times [--steps 400] [--rounds 3]

Epoch times on a shared machine swing by 30-50% from one run to the next; the distribution of
single training steps inside one epoch shows more: its minimum is the work a step costs when
nothing else runs, its median what a typical step costs. Each side builds the recipe's model
(``miniconv.recipes.mnist.convnet(lib)``, miniconv on the cpu backend or Keras: ``benchmarks.engines``),
trains 10 untimed steps, then ``--steps`` batches of 64 in its own process, a callback stamping
the end of every batch with ``time.perf_counter``. The sides alternate over ``--rounds`` rounds in
a rotated order (``benchmarks.harness``). Printed: min / p10 / median / p90 / mean in ms per side
and round, and the ratios miniconv / Keras of the best (least) minimum and the best median; with
``--out DIR`` also ``DIR/step_times.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import engines, harness
from .common import machine_info
from .report import blas_sentence, measured_sentence, not_run_lines

SIDES = ("miniconv", "keras")
ENGINES = {"miniconv": "miniconv-cpu", "keras": engines.KERAS}
STATISTICS = ("min", "p10", "median", "p90", "mean")


def measure(side: str, steps: int) -> dict:
    """Train ``steps`` batches on one side; the statistics of the gaps between batch ends, in ms."""
    engine = engines.engine(ENGINES[side])  # first: miniconv before NumPy, or TensorFlow
    import numpy as np

    from miniconv.callbacks import Callback
    from miniconv.recipes.mnist import convnet, prepare_mnist

    lib = engine.lib
    (x, y), _ = prepare_mnist(None, (steps + 1) * 64)  # one more batch: steps gaps between stamps
    stamps: list[float] = []

    class Stamp(Callback):  # not an epoch clock: the end of every step
        def on_train_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())

    with engine.scope():
        lib.utils.set_random_seed(0)
        model = convnet(lib)
        model.compile(lib.optimizers.RMSprop(), "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x[:640], y[:640], batch_size=64, epochs=1, verbose=0)  # untimed: compilation, tracing
        model.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[engine.callback(Stamp())])
    gaps = np.diff(np.array(stamps)) * 1e3
    return {"info": engine.info, "steps": int(gaps.size), "min": float(gaps.min()),
            "p10": float(np.percentile(gaps, 10)), "median": float(np.median(gaps)),
            "p90": float(np.percentile(gaps, 90)), "mean": float(gaps.mean())}


def summary(runs: dict[str, list[dict]]) -> tuple[list[str], dict[str, float]]:
    """The lines "round R side  min ... ms" in round order, and the ratios miniconv / Keras of the
    best minimum and the best median ({} unless both sides ran)."""
    ran = sorted((out["round"], i, side, out) for i, (side, outs) in enumerate(runs.items()) for out in outs)
    lines = [f"round {r} {side:9s} " + "  ".join(f"{k} {out[k]:.2f}" for k in STATISTICS) + " ms"
             for r, _, side, out in ran]
    best = {key: {side: harness.best_round(outs, key)[key] for side, outs in runs.items() if outs}
            for key in ("min", "median")}
    ratios = {key: harness.ratio_to(best[key], "keras").get("miniconv") for key in best}
    return lines, {key: ratio for key, ratio in ratios.items() if ratio is not None}


def markdown(data: dict, lines: list[str]) -> str:
    """step_times.md: when and where, the settings, every round's line, the ratios, who did not run."""
    s, m = data["settings"], data["machine"]
    text = ["# MNIST convnet: milliseconds per training step, miniconv against Keras", "",
            f"{measured_sentence(m)} {blas_sentence(m)}", "",
            (f"{s['steps']} steps of batch 64 per side and round after 10 untimed ones, each side in its own "
             f"process, alternating over {s['rounds']} round(s); gaps between the ends of consecutive steps:"),
            "", "```", *lines, "```"]
    if data["ratios"]:
        ratios = data["ratios"]
        text += ["", f"miniconv / Keras: best minimum {ratios['min']:.2f}x, best median {ratios['median']:.2f}x"]
    return "\n".join(text + not_run_lines(data, str)) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.step_times", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="timed training steps per run (default 400)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--sides", default=",".join(SIDES), help="miniconv,keras (default both)")
    parser.add_argument("--out", type=Path, default=None, help="also write step_times.json and .md there")
    parser.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error(f"--steps must be at least 2, got {args.steps}")
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    if args.worker:
        return harness.worker_main(args.worker, lambda: measure(args.worker, args.steps))
    sides = harness.split(args.sides)
    unknown = set(sides) - set(SIDES)
    if unknown or not sides:
        parser.error(f"--sides: expected miniconv and/or keras, got {sorted(unknown) or 'none'}")
    harness.warn_if_blas_set("python -m benchmarks.step_times")
    seen = harness.run_rounds("benchmarks.step_times", sides, ["--steps", str(args.steps)], args.rounds)
    lines, ratios = summary(seen.runs)
    print("\n".join(lines))
    if ratios:
        print(f"miniconv / Keras: best minimum {ratios['min']:.2f}x, best median {ratios['median']:.2f}x")
    if args.out is not None:
        data = {"benchmark": "step_times", "machine": machine_info(),
                "settings": {"steps": args.steps, "rounds": args.rounds, "contestants": sides,
                             "worker_env": harness.WORKER_ENV},
                "contestants": seen.status, "results": seen.runs, "ratios": ratios}
        harness.write_results(args.out, "step_times", data, markdown(data, lines))
    return 0 if seen.any_ran() else 1


if __name__ == "__main__":
    sys.exit(main())
