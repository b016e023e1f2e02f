"""What the training benchmarks (``train mnist``, ``train cats-dogs``) share on the coordinator's side.

``run_training`` runs a benchmark's workers (``python -m benchmarks.train_mnist --worker NAME``,
...) over its rounds with ``benchmarks.harness``, then keeps per contestant (``results``) the best
round, the one with the least mean seconds per training epoch, every round's mean, the peak
memory of all rounds and the best round's accuracy and sample counts; the ratios are those of the
best rounds. It writes ``<out>/<stem>.json`` and ``.md``. A worker reports, per round:

    epoch_seconds, seconds_per_epoch        each timed epoch and their mean, training only
                                            (``miniconv.callbacks.EpochClock``: ``benchmarks.engines``)
    [epoch_seconds_with_validation, seconds_per_epoch_with_validation]   the same with validation
    peak_rss_mb, test_accuracy, train_samples, test_samples, info
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from . import harness
from .common import machine_info
from .report import not_run_lines

LABELS = {"tf": "Keras (TensorFlow)", "torch": "PyTorch"}
ROUND_KEYS = ("epoch_seconds", "seconds_per_epoch", "peak_rss_mb", "test_accuracy", "train_samples", "test_samples")
VALIDATION_KEYS = ("epoch_seconds_with_validation", "seconds_per_epoch_with_validation")


def check_counts(args: argparse.Namespace, command: str, names: Sequence[str]) -> bool:
    """True when every option in ``names`` ("epochs", "rounds", ...) is at least 1; else say which is not."""
    for name in names:
        if getattr(args, name) < 1:
            print(f"{command}: --{name.replace('_', '-')} must be at least 1", file=sys.stderr)
            return False
    return True


def run_training(args: argparse.Namespace, *, command: str, module: str, stem: str, references: Sequence[str],
                 worker_args: list[str], settings: dict, markdown: Callable[[dict], str],
                 with_validation: bool = False) -> int:
    """Run the rounds of ``module``'s workers, write ``<args.out>/<stem>.json`` and ``.md``, print the
    markdown; 0 unless no contestant could run."""
    harness.warn_if_blas_set(command)
    names = harness.contestants(args.backends, args.references, references)
    seen = harness.run_rounds(module, names, worker_args, args.rounds)
    data = {
        "benchmark": stem,
        "machine": machine_info(),
        "settings": {**settings, "rounds": args.rounds, "contestants": names, "worker_env": harness.WORKER_ENV},
        "contestants": seen.status,
        "results": results(seen.runs, with_validation),
    }
    data["ratios"] = harness.ratios({n: r["seconds_per_epoch"] for n, r in data["results"].items()}, references)
    text = markdown(data)
    harness.write_results(args.out, stem, data, text)
    print(text)
    return 0 if seen.any_ran() else 1


def results(runs: dict[str, list[dict]], with_validation: bool = False) -> dict:
    """Per contestant that ran: the best round (least mean s/epoch), every round's mean, peak memory, accuracy.

    ``with_validation`` adds the least mean seconds per epoch with validation over the rounds.
    """
    keys = ROUND_KEYS + (VALIDATION_KEYS if with_validation else ())
    found = {}
    for name, outs in runs.items():
        if not outs:
            continue
        rounds = [{key: out[key] for key in keys} for out in outs]
        best = harness.best_round(rounds, "seconds_per_epoch")
        found[name] = {
            "seconds_per_epoch": best["seconds_per_epoch"],
            "round_seconds_per_epoch": [r["seconds_per_epoch"] for r in rounds],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rounds),
            "test_accuracy": best["test_accuracy"],
            "train_samples": best["train_samples"],
            "test_samples": best["test_samples"],
            "rounds": rounds,
        }
        if with_validation:
            found[name]["seconds_per_epoch_with_validation"] = min(r["seconds_per_epoch_with_validation"]
                                                                   for r in rounds)
    return found


def label(name: str) -> str:
    return harness.label(name, LABELS)


def table_rows(data: dict, cells: Callable[[dict], list[str]]) -> list[str]:
    """One markdown row per contestant that ran: name, version, best s/epoch, every round, then ``cells(result)``."""
    lines = []
    for name, result in data["results"].items():
        info = data["contestants"][name].get("info", {})
        rounds = ", ".join(f"{t:.2f}" for t in result["round_seconds_per_epoch"])
        row = [label(name), info.get("version", ""), f"{result['seconds_per_epoch']:.2f}", rounds, *cells(result)]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def ratio_lines(data: dict, what: str) -> list[str]:
    """The markdown lines after a results table: the ratios of the best rounds, and who did not run."""
    lines = []
    if data["ratios"]:
        lines += ["", f"{what}, best rounds (below 1: miniconv is faster):", ""]
        lines += [f"- **{label(k.split('/')[0])} / {label(k.split('/')[1])}: {ratio:.2f}x**"
                  for k, ratio in data["ratios"].items()]
    return lines + not_run_lines(data, label)
