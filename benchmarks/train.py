"""``python -m benchmarks train DATASET``: seconds per training epoch of the course convnets, miniconv against Keras (and PyTorch).

    python -m benchmarks train mnist [...]        benchmarks.train_mnist
    python -m benchmarks train cats-dogs [...]    benchmarks.train_cats_dogs

Each dataset is a module with ``add_arguments(parser)``, ``run(args)`` and its own workers; both
share ``benchmarks.training`` (rounds, results, tables), ``benchmarks.engines`` (the engines and
the epoch clock) and ``benchmarks.harness`` (the worker protocol).
"""

from __future__ import annotations

import argparse

from . import train_cats_dogs, train_mnist

DATASETS = {"mnist": train_mnist, "cats-dogs": train_cats_dogs}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``benchmarks train DATASET``: one sub-parser per dataset."""
    targets = parser.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    for name, module in DATASETS.items():
        description = (module.__doc__ or module.HELP).split("\n\n")[0].replace("``", "")
        module.add_arguments(targets.add_parser(name, help=module.HELP, description=description))


def run(args) -> int:
    """The chosen dataset's benchmark; its exit code."""
    return DATASETS[args.dataset].run(args)
