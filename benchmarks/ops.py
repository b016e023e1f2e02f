"""``python -m benchmarks ops``: time every layer of the course models, miniconv against TF and PyTorch.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks ops            # the real run
    python -m benchmarks ops --quick --backends numpy --out /tmp/bench                # a smoke test

For each case of ``benchmarks.cases`` and each pass (forward; forward + backward with a random
upstream gradient), every contestant runs in its own subprocess (``--worker NAME``; Numba's,
TensorFlow's and PyTorch's thread pools fight when they share a process). A worker warms up,
then reports the median of repeated ``time.perf_counter`` timings. Contestants alternate over
``--rounds`` rounds, in a rotated order each round, and each case keeps the minimum of its
per-round medians: the machine is shared, and noise only ever adds time.

Reported: seconds per call, the ratio miniconv / TF, and for convolutions and dense layers
GFLOP/s (``benchmarks.common`` counts) and the fraction of the machine's sgemm peak (NumPy on
4096 x 4096 float32, measured in its own subprocess each round, best round kept). Results go
to ``<out>/ops.json`` and ``<out>/ops.md`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from . import report
from .cases import MODES, select
from .common import blas_env, machine_info
from .contestants import MINICONV_PREFIX, REFERENCES, worker_main

ROOT = Path(__file__).resolve().parent.parent  # the repository: workers run from here
DEFAULT_OUT = Path(__file__).resolve().parent / "results"
WORKER_TIMEOUT_S = 3600


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``benchmarks ops`` options."""
    parser.add_argument(
        "--cases", default="all", choices=["mnist", "cats", "mobile", "all"],
        help="which model's layers (default all; mobile: MobileNet / EfficientNet-Lite blocks)"
    )
    parser.add_argument(
        "--backends",
        default="cpu,numpy",
        help="comma-separated miniconv backends (default cpu,numpy; unavailable ones are skipped)",
    )
    parser.add_argument(
        "--references",
        default=",".join(REFERENCES),
        help="comma-separated references among tf,torch (default both; missing ones are skipped)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds over all contestants; each case keeps its best round (default 3)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="three small MNIST cases, one round, few repeats: a smoke test"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per case (default 7; 3 with --quick)")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"directory for ops.json and ops.md (default {DEFAULT_OUT})"
    )


def run(args) -> int:
    """Run the rounds, write ops.json and ops.md, print the markdown; 0 unless nothing could run."""
    cases = select(args.cases, args.quick)
    were_set = [name for name, value in blas_env().items() if value is not None]
    if were_set:
        print(
            f"warning: {', '.join(were_set)} set: BLAS runs slower; for real numbers run "
            "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks ops`",
            file=sys.stderr,
        )
    rounds = 1 if args.quick else max(1, args.rounds)
    timing = [
        "--warmup",
        "1" if args.quick else "2",
        "--repeats",
        str(args.repeats or (3 if args.quick else 7)),
        "--budget",
        "2" if args.quick else "20",
    ]
    contestants = [r for r in _split(args.references) if r in REFERENCES]
    contestants += [MINICONV_PREFIX + b for b in _split(args.backends)]
    case_args = ["--case-ids", ",".join(c.id for c in cases), "--modes", ",".join(MODES)]

    status: dict[str, dict] = {name: {"available": False} for name in contestants}
    medians: dict[tuple[str, str, str], list[float]] = {}  # (case, mode, contestant) -> per-round medians
    errors: dict[tuple[str, str, str], str] = {}
    sgemm = []
    for r in range(rounds):
        sgemm_n = "2048" if args.quick else "4096"
        peak = _run_worker("sgemm", ["--sgemm-n", sgemm_n])
        if "sgemm" in peak:
            sgemm.append(peak["sgemm"])
        for name in contestants[r % len(contestants) :] + contestants[: r % len(contestants)]:
            print(f"round {r + 1}/{rounds}: {name}", file=sys.stderr, flush=True)
            out = _run_worker(name, case_args + timing)
            if "results" not in out:
                status[name].setdefault("reason", out.get("unavailable") or out.get("failed", "no output"))
                continue
            status[name] = {"available": True, "info": out["info"]}
            for entry in out["results"]:
                key = (entry["case"], entry["mode"], name)
                if "error" in entry:
                    errors[key] = entry["error"]
                else:
                    medians.setdefault(key, []).append(entry["median_s"])

    peak = max(sgemm, key=lambda s: s["gflops"]) if sgemm else None
    data = {
        "benchmark": "ops",
        "machine": machine_info(),
        "settings": {
            "cases": args.cases,
            "quick": args.quick,
            "rounds": rounds,
            "timing": timing,
            "contestants": contestants,
        },
        "sgemm_peak": peak,
        "contestants": status,
        "results": _results(cases, contestants, medians, errors, peak["gflops"] if peak else None),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ops.json").write_text(json.dumps(data, indent=2) + "\n")
    markdown = report.ops_markdown(data)
    (args.out / "ops.md").write_text(markdown)
    print(markdown)
    print(f"wrote {args.out / 'ops.json'} and {args.out / 'ops.md'}", file=sys.stderr)
    return 0 if any(s["available"] for s in status.values()) else 1


def _results(cases, contestants, medians, errors, peak_gflops) -> list[dict]:
    """One record per (case, mode): best time per contestant, GFLOP/s, fraction of peak, ratio to TF."""
    rows = []
    for case in cases:
        for mode in case.modes:
            flops = case.flops(mode)
            row = {
                "case": case.id,
                "model": case.model,
                "layer": case.layer,
                "op": case.op,
                "shape": case.describe(),
                "mode": mode,
                "flops": flops,
                "seconds": {},
                "round_medians": {},
                "errors": {},
                "gflops": {},
                "fraction_of_peak": {},
                "ratio_to_tf": {},
            }
            for name in contestants:
                key = (case.id, mode, name)
                if key in errors:
                    row["errors"][name] = errors[key]
                if key not in medians:
                    continue
                best = min(medians[key])
                row["seconds"][name], row["round_medians"][name] = best, medians[key]
                if flops:
                    row["gflops"][name] = flops / best / 1e9
                    if peak_gflops:
                        row["fraction_of_peak"][name] = row["gflops"][name] / peak_gflops
            tf_time = row["seconds"].get("tf")
            if tf_time:
                row["ratio_to_tf"] = {
                    n: t / tf_time for n, t in row["seconds"].items() if n.startswith(MINICONV_PREFIX)
                }
            rows.append(row)
    return rows


def _run_worker(name: str, extra: list[str]) -> dict:
    """Run one worker subprocess; its last stdout line is JSON. A crash becomes {"failed": why}."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    if name.startswith(MINICONV_PREFIX):
        # What `import miniconv` sets when it loads before NumPy (miniconv/_threads.py); the
        # worker loads NumPy first, so it must come from the environment.
        env.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    command = [sys.executable, "-m", "benchmarks.ops", "--worker", name, *extra]
    try:
        done = subprocess.run(
            command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return {"failed": f"worker {name} timed out after {WORKER_TIMEOUT_S} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode == 0 and lines:
        try:
            return json.loads(lines[-1])
        except json.JSONDecodeError:
            pass
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    print(f"worker {name} failed (exit {done.returncode}): {tail}", file=sys.stderr)
    return {"failed": f"exit {done.returncode}: {tail}"}


def _split(text: str) -> list[str]:
    return [item.strip() for item in (text or "").split(",") if item.strip()]


def _worker_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ops", description="One benchmark worker (internal).")
    parser.add_argument("--worker", required=True, help="tf, torch, miniconv-<backend> or sgemm")
    parser.add_argument("--case-ids", default="")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--budget", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sgemm-n", type=int, default=4096)
    return parser


if __name__ == "__main__":
    sys.exit(worker_main(_worker_parser().parse_args()))
