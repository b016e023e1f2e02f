"""What a recipe of ``miniconv train NAME`` is: defaults, a model builder, a data loader, report fields.

    class Mnist(Recipe):
        name = "mnist"
        defaults = {"epochs": 5, "batch_size": 64}
        def build_model(self, args): ...        # compiled, initialised from miniconv's global generator
        def load_data(self, args): ...          # -> Data(train=..., validation=..., facts={...})

The runner (``miniconv/runner``) owns everything else: the common options, checking them and the
output directory, seeding, checkpoints and ``--resume``, the epoch clock, progress, the report and
the plots. A recipe never imports the runner; it raises ``UsageError`` for a bad option or
unusable data, which the runner prints without a traceback.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field


class UsageError(Exception):
    """A bad option, unusable data or an unusable output directory: printed without a traceback, exit 2."""


@dataclass
class Data:
    """What a recipe trains on: fit's x / y (arrays) or x (a dataset), and validation_data.

    ``facts``: what the report should say about the data (sample counts, class names);
    ``state`` / ``restore``: the data's own random state (an image dataset's shuffling), which a
    checkpoint must carry for a resumed run to see the same batches; ``warm_up``: a few samples
    (x, y) for the untimed first step."""

    x: object
    y: object = None
    validation: tuple | object = None
    facts: dict = field(default_factory=dict)
    description: str = ""
    state: object = None  # () -> JSON-ready dict
    restore: object = None  # (dict) -> None
    warm_up: tuple = None


@dataclass
class Phase:
    """Epochs up to ``stop`` (exclusive of later phases) trained one way. ``begin(model)`` readies the
    model when a run enters the phase at its first epoch (e.g. unfreezing a base's last block and
    compiling a new optimizer, Chollet's fine-tuning); a run resumed inside the phase finds the model
    ready in its checkpoint (the trainable flags and the optimizer's state are saved there)."""

    stop: int
    begin: object = None  # (model) -> None


class Recipe:
    """A training recipe; see the module docstring. Subclasses set the class attributes and the three methods."""

    name = "recipe"
    help = ""
    description = ""
    model_file = "model.miniconv"
    #: defaults of the runner's common options: epochs, batch_size, out
    defaults: dict = {}
    #: options a resumed run must share with the run it continues (else it would not give the same result)
    resume_keys: tuple = ("batch_size", "seed")

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The recipe's own options (the runner adds --epochs, --batch-size, --backend, --seed, --out, --resume)."""

    def check(self, args) -> None:
        """Check and normalise the recipe's own options (``UsageError`` for a bad one)."""

    def settings(self, args) -> dict:
        """The recipe's options as the report and the checkpoint record them."""
        return {}

    def load_data(self, args) -> Data:
        raise NotImplementedError

    def build_model(self, args):
        """The compiled model, initialised from miniconv's global generator (the runner has seeded it)."""
        raise NotImplementedError

    def phases(self, args) -> list[Phase]:
        """The run's phases, in order; one by default: every epoch trained the same way."""
        return [Phase(args.epochs)]

    def report_fields(self, history: dict) -> dict:
        """Extra fields of report.json from the history (e.g. the final test accuracy)."""
        return {}

    def summary_lines(self, report: dict) -> list[str]:
        """What to print at the end of a run, from its report."""
        return []
