"""The ``miniconv`` command: ``miniconv <subcommand> [options]`` (also ``python -m miniconv``).

Each subcommand lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> exit code``; this file only lists them. To add one (``train``, ``viz``), add a
line to ``SUBCOMMANDS``. Modules are imported when the parser is built, so they must import
their heavy dependencies (TensorFlow, matplotlib) lazily, inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module providing add_arguments / run, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "verify": ("miniconv.verify", "cross-check every op and its gradients against TensorFlow"),
    "train": ("miniconv.runner.command", "train a recipe: mnist (Chollet ch. 5.1) or cats-dogs (ch. 5.2), with checkpoints"),
    "compare": ("miniconv.compare.command", "is training on miniconv equivalent to Keras? a seed study on Dask (extra compare)"),
    "viz": ("miniconv.viz.cli", "write the course's pictures (kernels, feature maps, filter patterns, ...) as PNGs"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per entry of ``SUBCOMMANDS``."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="miniconv", description="miniconv: a from-scratch convolutional-network engine."
    )
    parser.add_argument("--version", action="version", version=f"miniconv {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(
            name, help=help_text, description=(module.__doc__ or help_text).split("\n\n")[0].replace("``", "")
        )
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the subcommand, return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
