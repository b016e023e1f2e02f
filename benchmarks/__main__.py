"""``python -m benchmarks <subcommand>``: ``ops`` (layer by layer), ``train`` (whole training epochs) and ``transfer`` (issue 21's speed targets).

Each subcommand is a module with ``add_arguments(parser)`` and ``run(args) -> exit code``;
adding one is one line in ``SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = {
    "ops": ("benchmarks.ops", "time every layer of the course models: miniconv vs TensorFlow and PyTorch"),
    "train": ("benchmarks.train", "seconds per training epoch of the course convnets (mnist, cats-dogs): miniconv vs Keras"),
    "transfer": ("benchmarks.transfer", ("EfficientNet-Lite0 transfer learning: feature extraction and a fine-tuning "
                                        "epoch, miniconv vs Keras")),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="miniconv benchmarks.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(
            name, help=help_text, description=(module.__doc__ or help_text).split("\n\n")[0].replace("``", "")
        )
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
