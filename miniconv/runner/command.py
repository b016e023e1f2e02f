"""``miniconv train NAME``: one runner for every recipe (``miniconv/recipes``).

    miniconv train mnist                                   # the recipe's defaults
    miniconv train cats-dogs --data DIR --augment --epochs 3 --out /tmp/run
    miniconv train mnist --resume                          # continue the run in --out

The run, whatever the recipe:

1. options: the common ones (--epochs, --batch-size, --backend, --seed, --out, --resume) and the
   recipe's; every check, and a write test of --out, before any data is read or step taken;
2. data: the recipe's loader;
3. the model: the recipe's builder after ``set_random_seed(--seed)``, or the checkpoint in --out
   with every random state (the data's too) as it was, for ``--resume`` (same options required);
4. an untimed warm-up step on a throwaway copy (kernel compilation is not timed), drawing nothing
   from the run's random generators;
5. ``fit`` with the epoch clock and the checkpoint callback, once per phase of the recipe (one
   phase, or e.g. a head's training then fine-tuning): after every epoch one file, the model with
   the run's state, is committed by one rename (``checkpoint.py``);
6. report.json and history.png (``report.py``), and a few lines printed.

Ctrl-C keeps the last finished epoch and prints the command that resumes it (exit 130); a usage
error is one line (exit 2); a checkpoint that cannot be written or read is one line (exit 1).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .. import recipes
from ..recipes.base import UsageError
from . import checkpoint, report

COMMON = ("epochs", "batch_size", "backend", "seed", "out")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One sub-parser per recipe: its own options after the common ones."""
    targets = parser.add_subparsers(dest="recipe", metavar="RECIPE", required=True)
    for name in recipes.RECIPES:
        recipe = recipes.get(name)
        sub = targets.add_parser(name, help=recipe.help, description=recipe.description.split("\n\n")[0].replace("``", ""))
        defaults = recipe.defaults
        sub.add_argument("--epochs", type=int, default=defaults.get("epochs"),
                         help=f"total epochs, counting resumed ones (default {defaults.get('epochs') or 'the recipe’s'})")
        sub.add_argument("--batch-size", type=int, default=defaults.get("batch_size", 32),
                         help=f"samples per step (default {defaults.get('batch_size', 32)})")
        sub.add_argument("--backend", default="cpu", help="miniconv backend to compute on (default cpu)")
        sub.add_argument("--seed", type=int, default=0, help="seed of every random choice of the run (default 0)")
        sub.add_argument("--out", type=Path, default=defaults.get("out"),
                         help=f"output directory (default {defaults.get('out') or 'runs/' + name})")
        sub.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
        recipe.add_arguments(sub)
        sub.set_defaults(parser=sub)


def run(args) -> int:
    """Train, write the outputs; 0 on success, 2 for a usage error, 1 for a checkpoint error, 130 on Ctrl-C."""
    try:
        return _run(recipes.get(args.recipe), args)
    except UsageError as error:
        print(f"miniconv train {args.recipe}: error: {error}", file=sys.stderr)
        return 2
    except checkpoint.CheckpointError as error:
        print(f"miniconv train {args.recipe}: error: {error}", file=sys.stderr)
        return 1


def _check(recipe, args) -> None:
    import miniconv

    recipe.check(args)
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.seed < 0:
        raise UsageError(f"--seed must be a non-negative int, got {args.seed}")
    available = miniconv.available_backends()
    if args.backend not in available:
        raise UsageError(f"backend {args.backend!r} is not available here; available: {', '.join(available)}")
    if args.out is None:
        args.out = Path("runs") / recipe.name
    checkpoint.prepare_out(args.out)


def resume_command(args) -> str:
    """The command line that continues this run: every option as given, plus --resume."""
    parts = ["miniconv", "train", args.recipe]
    for action in args.parser._actions:
        if not action.option_strings or action.dest in ("help", "resume"):
            continue
        value = getattr(args, action.dest, None)
        if isinstance(action, argparse._StoreTrueAction):
            parts += [action.option_strings[0]] if value else []
        elif isinstance(action, argparse._StoreFalseAction):
            parts += [] if value else [action.option_strings[0]]
        elif value is not None and (action.dest in COMMON or value != action.default):
            parts += [action.option_strings[0], str(value)]
    return shlex.join(parts + ["--resume"])


def _settings(recipe, args, data) -> dict:
    return {"recipe": recipe.name, "epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed,
            "backend": args.backend, **recipe.settings(args), **data.facts}


def _resume(recipe, args, settings: dict, data):
    """(model, state) from the checkpoint in --out, with every random state restored."""
    path = args.out / recipe.model_file
    if not path.is_file():
        raise UsageError(f"--resume: no checkpoint in {args.out} ({recipe.model_file}); start without --resume")
    model, state = checkpoint.read(path)
    saved = state["settings"]
    if state["recipe"] != recipe.name:
        raise UsageError(f"--resume: the checkpoint in {args.out} is a {state['recipe']!r} run, not {recipe.name!r}")
    different = [f"--{k.replace('_', '-')} {saved.get(k)} (now {settings[k]})" for k in recipe.resume_keys
                 if saved.get(k) != settings[k]]
    if different:
        raise UsageError(f"--resume: the checkpoint in {args.out} was trained with " + ", ".join(different)
                         + "; resume with the same options, or start afresh in another --out")
    if saved.get("backend") != settings["backend"]:
        print(f"note: the checkpoint was trained on backend {saved.get('backend')!r}, continuing on "
              f"{settings['backend']!r}: results may differ in the last bits from an uninterrupted run")
    if state.get("data_state") is not None and data.restore is not None:
        data.restore(state["data_state"])
    state["settings"] = {**saved, "epochs": settings["epochs"], "backend": settings["backend"]}
    print(f"Resuming from {path}: epoch {state['epochs_completed']} of {args.epochs} done")
    return model, state


def _run(recipe, args) -> int:
    import miniconv
    from miniconv import utils

    _check(recipe, args)
    for leftover in checkpoint.remove_leftovers(args.out, recipe.model_file):
        print(f"note: removed {leftover.name}, a checkpoint write that an earlier run did not finish")
    data = recipe.load_data(args)
    settings = _settings(recipe, args, data)
    with miniconv.use_backend(args.backend):
        if args.resume:
            model, state = _resume(recipe, args, settings, data)
        else:
            if (args.out / recipe.model_file).exists():
                print(f"note: starting afresh; the model in {args.out} will be overwritten (--resume continues it)")
            utils.set_random_seed(args.seed)  # initialisation, shuffling, augmentation and dropout draw from it
            model = recipe.build_model(args)
            state = {"recipe": recipe.name, "settings": settings, "epochs_completed": 0, "history": {},
                     "epoch_seconds": [], "epoch_seconds_with_validation": []}
        model.summary()
        print(f"{data.description}; batch {args.batch_size}, backend {args.backend}, seed {args.seed}")
        try:
            _train(recipe, args, model, state, data)
            written = report.write(recipe, args, state)
        except KeyboardInterrupt:
            return _interrupted(recipe, args, state)
    report.print_summary(recipe, written)
    return 0


def _train(recipe, args, model, state: dict, data) -> None:
    """fit from the checkpoint's epoch to --epochs; the callbacks keep ``state`` and the checkpoint current."""
    from miniconv.callbacks import EpochClock

    start = state["epochs_completed"]
    if start >= args.epochs:
        print("Nothing to train: the checkpoint has all the epochs asked for"
              + (f" (it has {start}, more than --epochs {args.epochs})." if start > args.epochs else "."))
        return
    if data.warm_up is not None:
        report.warm_up(model, *data.warm_up, args.batch_size)
    clock = EpochClock(state["epoch_seconds"], state["epoch_seconds_with_validation"])
    saver = checkpoint.CheckpointCallback(args.out / recipe.model_file, state, data.state)
    phase_start = 0
    for phase in recipe.phases(args):
        if phase.stop > start:
            first = max(start, phase_start)
            if first == phase_start and phase_start > 0 and phase.begin is not None:
                phase.begin(model)  # entering the phase: a resumed run inside it finds the model ready
            model.fit(data.x, data.y, epochs=min(phase.stop, args.epochs), batch_size=args.batch_size,
                      initial_epoch=first, validation_data=data.validation, callbacks=[clock, saver])
            start = min(phase.stop, args.epochs)
            if model.stop_training or start >= args.epochs:
                break
        phase_start = phase.stop


def _interrupted(recipe, args, state: dict) -> int:
    """After Ctrl-C: what the checkpoint holds and how to go on; returns the exit status 130."""
    done = state["epochs_completed"]
    print(file=sys.stderr)
    if done == 0:
        print("Interrupted before the first epoch finished; nothing was saved.", file=sys.stderr)
    else:
        print(f"Interrupted. The checkpoint {args.out / recipe.model_file} holds epoch {done} of {args.epochs}. "
              f"To continue (or, if all epochs are done, to write the report):\n  {resume_command(args)}",
              file=sys.stderr)
    return 130
