"""Where EfficientNet-Lite0's base forward goes, step by step and backend method by method.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks.profile_efficientnet \\
        [--batch 20] [--size 224] [--repeats 5]

miniconv only, one process, the cpu backend, the base (``include_top=False``) compiled for
inference (``compile_plan(base)``, what ``predict`` runs), random ImageNet-scaled images. After
one untimed pass, ``--repeats`` forward passes; each plan step and each backend method it calls
is timed at every call, and the minimum over the passes is kept (a shared machine adds, it never
takes away; a method that calls another of the backend counts both). Printed: the steps grouped by op, the backend methods, and the slowest steps. The
parts include the timers' own cost (a few microseconds a call).
"""

from __future__ import annotations  # noqa: I001  (miniconv is imported before NumPy on purpose)

import argparse
import sys
import time
from collections import defaultdict

import miniconv  # noqa: F401  (before NumPy: it sets OPENBLAS_THREAD_TIMEOUT before OpenBLAS loads)
import numpy as np


def _wrap_backend(be, record):
    """Time every kernel method of the backend ``be`` (instance attributes shadow the class's)."""
    from miniconv.backend.interface import Backend

    for name in [m for m in vars(Backend) if not m.startswith("_") and callable(getattr(Backend, m))]:
        method = getattr(be, name, None)
        if method is None or name in ("from_host", "to_host", "is_native", "all_finite", "optimizer_for"):
            continue

        def timed(*args, _method=method, _name=name, **kwargs):
            start = time.perf_counter()
            result = _method(*args, **kwargs)
            record[_name] += time.perf_counter() - start
            return result

        setattr(be, name, timed)


def profile(batch: int, size: int, repeats: int):
    from miniconv.applications import EfficientNetLite0
    from miniconv.backend import get_backend
    from miniconv.engine import execute
    from miniconv.engine.plan import compile_plan

    miniconv.set_backend("cpu")
    base = EfficientNetLite0(include_top=False, weights="imagenet", input_shape=(size, size, 3))
    plan = compile_plan(base)
    x = np.random.default_rng(0).uniform(-2.0, 2.0, (batch, size, size, 3)).astype(np.float32)
    execute.forward(plan, [x], keep_tape=False)  # compile kernels, first allocations
    be = get_backend("cpu")
    methods = defaultdict(float)
    _wrap_backend(be, methods)
    best_steps, best_methods, totals = None, None, []
    for _ in range(repeats):
        methods.clear()
        steps = []
        start = time.perf_counter()
        values = [None] * plan.slot_count
        values[plan.inputs[0]] = x
        for step in plan.steps:  # execute.forward's loop, each step timed
            arg = [values[s] for s in step.inputs] if step.list_input else values[step.inputs[0]]
            t0 = time.perf_counter()
            values[step.output], _ = step.forward(arg, False)
            steps.append(time.perf_counter() - t0)
        totals.append(time.perf_counter() - start)
        best_steps = steps if best_steps is None else [min(a, b) for a, b in zip(best_steps, steps)]
        best_methods = dict(methods) if best_methods is None else {k: min(best_methods.get(k, v), v)
                                                                    for k, v in methods.items()}
    be.__dict__.clear()  # the class's methods again
    return plan, best_steps, best_methods, totals


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_efficientnet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    plan, steps, methods, totals = profile(args.batch, args.size, args.repeats)
    total = sum(steps)
    print(f"forward passes (s): {', '.join(f'{t:.3f}' for t in totals)}; sum of per-step minimums {total:.3f} s\n")
    by_op = defaultdict(lambda: [0, 0.0])
    for step, t in zip(plan.steps, steps):
        by_op[step.op][0] += 1
        by_op[step.op][1] += t
    print("| step op | steps | ms | share |\n|---|---:|---:|---:|")
    for op, (count, t) in sorted(by_op.items(), key=lambda kv: -kv[1][1]):
        print(f"| {op} | {count} | {1000 * t:.1f} | {100 * t / total:.1f}% |")
    print("\n| backend method | ms (min over passes) | share of the pass |\n|---|---:|---:|")
    for name, t in sorted(methods.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {1000 * t:.1f} | {100 * t / total:.1f}% |")
    print("\n| slowest steps | ms |\n|---|---:|")
    for step, t in sorted(zip(plan.steps, steps), key=lambda st: -st[1])[:15]:
        print(f"| {step.name} ({step.op}) | {1000 * t:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
