"""``python -m benchmarks ops``: time every layer of the course models, miniconv against TF and PyTorch.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks ops            # the real run
    python -m benchmarks ops --quick --backends numpy --out /tmp/bench                # a smoke test

For each case of ``benchmarks.cases`` and each pass (forward; forward + backward with a random
upstream gradient), every contestant runs in its own subprocess (``--worker NAME``, the protocol
of ``benchmarks.harness``; Numba's, TensorFlow's and PyTorch's thread pools fight when they share
a process). A worker warms up, then reports the median of repeated ``time.perf_counter`` timings
(``benchmarks.common.time_call``). Contestants alternate over ``--rounds`` rounds, in a rotated
order each round, and each case keeps the minimum of its per-round medians: the machine is
shared, and noise only ever adds time.

Reported: seconds per call, the ratio miniconv / TF; for convolutions and dense layers GFLOP/s
(``benchmarks.common`` counts) and the fraction of the machine's sgemm peak (NumPy on 4096 x 4096
float32); for the memory-bound mobile ops (depthwise, batch normalization, relu6, moments) GB/s
of their tensors' traffic (``cases.OpCase.traffic``) and the fraction of the machine's copy
bandwidth (``common.copy_bandwidth``). Both roofs are measured in their own subprocess each round,
the best round kept. Results go to ``<out>/ops.json`` and ``<out>/ops.md`` (default
``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import harness, report
from .cases import MODES, select
from .common import machine_info
from .contestants import REFERENCES, measure

DEFAULT_OUT = harness.DEFAULT_OUT


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
    harness.warn_if_blas_set("python -m benchmarks ops")
    rounds = 1 if args.quick else max(1, args.rounds)
    timing = [
        "--warmup",
        "1" if args.quick else "2",
        "--repeats",
        str(args.repeats or (3 if args.quick else 7)),
        "--budget",
        "2" if args.quick else "20",
    ]
    contestants = harness.contestants(args.backends, args.references, REFERENCES, references_first=True)
    case_args = ["--case-ids", ",".join(c.id for c in cases), "--modes", ",".join(MODES)]

    sgemm, copy = [], []

    def roofs(_round: int) -> None:  # the machine's sgemm peak and copy bandwidth, again each round: the best is kept
        sizes = ["--sgemm-n", "2048", "--copy-mib", "64"] if args.quick else ["--sgemm-n", "4096", "--copy-mib", "256"]
        measured = harness.run_worker("benchmarks.ops", "sgemm", sizes)
        if "sgemm" in measured:
            sgemm.append(measured["sgemm"])
            copy.append(measured["copy"])

    seen = harness.run_rounds("benchmarks.ops", contestants, case_args + timing, rounds, before_round=roofs)
    peak = max(sgemm, key=lambda s: s["gflops"]) if sgemm else None
    bandwidth = max(copy, key=lambda s: s["gbps"]) if copy else None
    data = {
        "benchmark": "ops",
        "machine": machine_info(),
        "settings": {
            "cases": args.cases,
            "quick": args.quick,
            "rounds": rounds,
            "timing": timing,
            "contestants": contestants,
            "worker_env": harness.WORKER_ENV,
        },
        "sgemm_peak": peak,
        "copy_bandwidth": bandwidth,
        "contestants": seen.status,
        "results": _results(cases, seen.runs, peak["gflops"] if peak else None, bandwidth["gbps"] if bandwidth else None),
    }
    markdown = report.ops_markdown(data)
    harness.write_results(args.out, "ops", data, markdown)
    print(markdown)
    return 0 if seen.any_ran() else 1


def _results(cases, runs: dict[str, list[dict]], peak_gflops, copy_gbps) -> list[dict]:
    """One record per (case, mode): best round per contestant, GFLOP/s and fraction of the sgemm peak
    (or GB/s and fraction of the copy bandwidth), ratio to TF."""
    medians: dict[tuple[str, str, str], list[float]] = {}  # (case, mode, contestant) -> per-round medians
    errors: dict[tuple[str, str, str], str] = {}
    for name, outs in runs.items():
        for entry in (e for out in outs for e in out["results"]):
            key = (entry["case"], entry["mode"], name)
            if "error" in entry:
                errors[key] = entry["error"]
            else:
                medians.setdefault(key, []).append(entry["median_s"])
    rows = []
    for case in cases:
        for mode in case.modes:
            flops, traffic = case.flops(mode), case.traffic(mode)
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
                "bytes": traffic,
                "gbps": {},
                "fraction_of_bandwidth": {},
            }
            for name in runs:
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
                if traffic:
                    row["gbps"][name] = traffic / best / 1e9
                    if copy_gbps:
                        row["fraction_of_bandwidth"][name] = row["gbps"][name] / copy_gbps
            row["ratio_to_tf"] = harness.ratio_to(row["seconds"], "tf")
            rows.append(row)
    return rows


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
    parser.add_argument("--copy-mib", type=int, default=256)
    return parser


def worker(argv: list[str] | None = None) -> int:
    """Entry of ``python -m benchmarks.ops --worker NAME``: ``contestants.measure``, one JSON line."""
    args = _worker_parser().parse_args(argv)
    timing = {"warmup": args.warmup, "repeats": args.repeats, "budget_s": args.budget}
    if args.worker == "sgemm":
        timing = {"sgemm_n": args.sgemm_n, "copy_mib": args.copy_mib}
    return harness.worker_main(
        args.worker, lambda: measure(args.worker, harness.split(args.case_ids), args.modes.split(","), timing, args.seed)
    )


if __name__ == "__main__":
    sys.exit(worker())
