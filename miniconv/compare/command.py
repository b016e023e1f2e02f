"""``miniconv compare RECIPE --seeds N --out DIR``: is training on miniconv equivalent to training on Keras?

    miniconv compare mnist --seeds 10 --out runs/compare-mnist            # 10 seeds x 2 engines, 5 epochs
    miniconv compare cats-dogs --data ../shared/data/cats_and_dogs_small --seeds 3 --out runs/compare-cats
    miniconv compare mnist --seeds 3 --epochs 1 --limit 600 --out /tmp/smoke   # a smoke test
    miniconv compare mnist --seeds 10 --scheduler tcp://host:8786 --out DIR     # on an existing Dask cluster

Trains RECIPE (the recipe of ``miniconv train RECIPE``, with its options) with seeds 0..N-1 on each
engine of --engines (default miniconv,keras), each run a Dask task in a fresh process; appends every
finished run to DIR/results.jsonl at once; then writes DIR/report.json, report.md and study.png:
per-seed accuracy, final loss and seconds per epoch; per engine mean, standard deviation and 95% CI;
the difference of means with Welch's 90% CI, TOST at --margin and the verdict (equivalent / not shown
equivalent / different); the speed ratio. Run the same command again after an interruption: it runs
only what DIR lacks. Errors in the options are one line (exit 2) before any run starts; runs that
failed for good exit 1 (the report lists them as missing); Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import sys
from pathlib import Path

from .. import recipes
from ..recipes.base import UsageError
from . import DEFAULT_MARGIN, ENGINES, MARGINS, RESULTS_FILE

PROG = "miniconv compare"


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    """A parsing error as one line (``miniconv compare: error: ...``), exit 2, without the usage block."""

    def error(message: str):
        print(f"{PROG}: error: {message}", file=sys.stderr)
        sys.exit(2)

    parser.error = error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One sub-parser per recipe: the study's options, the training options, then the recipe's own."""
    _one_line_errors(parser)
    targets = parser.add_subparsers(dest="recipe", metavar="RECIPE", required=True)
    for name in recipes.RECIPES:
        recipe = recipes.get(name)
        sub = targets.add_parser(name, help=recipe.help, description=f"{PROG} {name}: seeds 0..N-1 of the recipe of "
                                 f"'miniconv train {name}' ({recipe.help}) on each engine, and the statistics.")
        _one_line_errors(sub)
        defaults = recipe.defaults
        margin = MARGINS.get(name, DEFAULT_MARGIN)
        sub.add_argument("--seeds", type=int, required=True, metavar="N", help="seeds 0..N-1 on every engine")
        sub.add_argument("--out", type=Path, required=True, metavar="DIR",
                         help="the study's directory: results.jsonl, report.json, report.md, study.png")
        sub.add_argument("--engines", default=",".join(ENGINES), help="comma-separated among miniconv,keras (default both)")
        sub.add_argument("--epochs", type=int, default=defaults.get("epochs"),
                         help=f"epochs per run (default {defaults.get('epochs') or 'the recipe’s'})")
        sub.add_argument("--batch-size", type=int, default=defaults.get("batch_size", 32),
                         help=f"samples per step (default {defaults.get('batch_size', 32)})")
        sub.add_argument("--backend", default="cpu", help="miniconv's backend (default cpu)")
        sub.add_argument("--margin", type=float, default=margin,
                         help=f"equivalence margin in accuracy points (default {margin:g})")
        sub.add_argument("--scheduler", default=None, metavar="ADDRESS",
                         help="an existing Dask scheduler, e.g. tcp://host:8786 (default: a local cluster)")
        sub.add_argument("--workers", type=int, default=None,
                         help="local cluster: worker processes, one run each at a time (default: one per 2 cores)")
        sub.add_argument("--threads", type=int, default=None,
                         help="threads per run (default: local cluster, cores / workers; --scheduler: the machine's)")
        sub.add_argument("--retries", type=int, default=2, help="reruns of a run whose process fails (default 2)")
        before = len(sub._actions)
        recipe.add_arguments(sub)
        sub.set_defaults(recipe_actions=sub._actions[before:])


def train_argv(args) -> list[str]:
    """What follows ``miniconv train`` for one run: the recipe, the training options, the recipe's options
    (those given or not at their default; paths made absolute), without --seed and --out."""
    argv = [args.recipe, "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--backend", args.backend]
    for action in args.recipe_actions:
        value = getattr(args, action.dest)
        if isinstance(action, argparse._StoreTrueAction):
            argv += [action.option_strings[0]] if value else []
        elif isinstance(action, argparse._StoreFalseAction):
            argv += [] if value else [action.option_strings[0]]
        elif value is not None and value != action.default:
            argv += [action.option_strings[0], str(value.resolve() if isinstance(value, Path) else value)]
    return argv


def settings(recipe, args) -> dict:
    """What makes two runs of the same seed comparable; stored with every run in the results file."""
    return {"recipe": recipe.name, "epochs": args.epochs, "batch_size": args.batch_size, "backend": args.backend,
            **recipe.settings(args)}


def engines(text: str) -> list[str]:
    """"miniconv,keras" -> ["miniconv", "keras"]; UsageError for an unknown, repeated or missing engine."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ENGINES]
    if unknown or not names or len(set(names)) != len(names):
        what = f"unknown engine {unknown[0]!r}" if unknown else f"bad engine list {text!r}"
        raise UsageError(f"--engines: {what}; choose from {', '.join(ENGINES)} (comma-separated, each once)")
    return names


def check_scheduler(address: str) -> None:
    """UsageError unless ``address`` is a Dask address whose TCP port accepts a connection."""
    from distributed.comm import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        if scheme not in ("tcp", "tls"):
            return  # inproc / ucx: let the client try
        host, port = parse_host_port(location)
    except (ValueError, TypeError) as error:
        raise UsageError(f"--scheduler {address!r} is not a Dask address like tcp://host:8786 ({error})") from None
    try:
        socket.create_connection((host, port), timeout=10).close()
    except OSError as error:
        raise UsageError(f"--scheduler {address}: cannot reach a scheduler there ({error.strerror or error})") from None


def check(recipe, args) -> None:
    """Every check that needs no run, in the order a user would fix them."""
    for module in ("dask", "distributed", "scipy"):
        if importlib.util.find_spec(module) is None:
            raise UsageError(f"{module} is not installed; install the extra: pip install 'miniconv[compare]'")
    if args.seeds < 1:
        raise UsageError(f"--seeds must be at least 1, got {args.seeds}")
    args.engine_list = engines(args.engines)
    recipe.check(args)
    for name in ("epochs", "batch_size", "workers", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.retries < 0:
        raise UsageError(f"--retries must be 0 or more, got {args.retries}")
    if not args.margin > 0:
        raise UsageError(f"--margin must be positive (accuracy points), got {args.margin}")
    from ..backend import known_backends

    if args.backend not in known_backends():
        raise UsageError(f"unknown backend {args.backend!r}; choose from {', '.join(known_backends())}")
    if args.scheduler is None:  # the runs happen here: what they need must be here
        if "keras" in args.engine_list and not all(importlib.util.find_spec(m) for m in ("keras", "tensorflow")):
            raise UsageError("the keras engine needs TensorFlow and Keras: pip install 'miniconv[tf]'")
        data = getattr(args, "data", None)
        if data is not None and not Path(data).exists():
            raise UsageError(f"--data {data}: no such file or directory")
        if recipe.name == "cats-dogs" and not all((Path(data) / d).is_dir() for d in ("train", "validation")):
            raise UsageError(f"--data {data}: expected the folders train/ and validation/")
    else:
        check_scheduler(args.scheduler)
    from ..runner.checkpoint import prepare_out

    prepare_out(args.out)


def run(args) -> int:
    """The study; 0 when every run asked for is in the report, 1 if some failed, 2 for a usage error, 130 on Ctrl-C."""
    try:
        return _run(recipes.get(args.recipe), args)
    except UsageError as error:
        print(f"{PROG} {args.recipe}: error: {error}", file=sys.stderr)
        return 2


def _run(recipe, args) -> int:
    from . import report, results, study

    check(recipe, args)
    lock = _lock(args.out)  # held until this process ends
    path = args.out / RESULTS_FILE
    fingerprint = settings(recipe, args)
    seeds = list(range(args.seeds))
    found = results.read(path, fingerprint)  # a file of another study is refused here, before any run
    if results.repair(path):
        print(f"note: {path}: removed a last line that an interrupted study did not finish writing")
    for number in found.unreadable_lines:
        print(f"note: {path}: line {number} is not a run; ignored")
    wanted = [(engine, seed) for seed in seeds for engine in args.engine_list]  # engines alternate, seed by seed
    pending = [key for key in wanted if key not in found.runs]
    local = args.scheduler is None
    workers = args.workers or study.local_workers()
    threads = args.threads or (max(1, (os.cpu_count() or 1) // workers) if local else None)
    where = (f"a local cluster of {workers} worker(s), {threads} thread(s) per run" if local
             else f"the cluster at {args.scheduler}" + (f", {threads} thread(s) per run" if threads else ""))
    print(f"{PROG} {recipe.name} ({results.describe(fingerprint)}): {len(wanted)} runs, "
          f"{len(wanted) - len(pending)} already in {path}; {len(pending)} to run on {where}")
    failed = []
    if pending:
        tag = f"miniconv-compare:{args.out.resolve()}"
        environment = study.user_environment() if local else None  # not the single-threaded BLAS Dask gives workers
        specs = [{"engine": e, "seed": s, "train_argv": train_argv(args), "threads": threads, "tag": tag,
                  "environment": environment} for e, s in pending]
        failed = _execute(specs, path, fingerprint, args, workers)
        if failed is None:
            return 130
    runs = results.read(path, fingerprint).runs
    written = report.build(runs, args.engine_list, seeds, args.margin, fingerprint)
    names = report.write(args.out, written, runs)
    _summary(written, args.out, names)
    del lock
    return 1 if written["missing"] else 0


def _lock(out: Path):
    """An exclusive lock on DIR/.compare.lock (where fcntl exists): two studies never run in one DIR at once."""
    try:
        import fcntl
    except ImportError:
        return None
    handle = open(out / ".compare.lock", "w")  # noqa: SIM115  (open as long as the study runs)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise UsageError(f"another miniconv compare is running in {out}; wait for it, or use another --out") from None
    return handle


def _execute(specs, path, fingerprint, args, workers):
    """The runs on the cluster; the failed ones, or None after Ctrl-C."""
    from . import study

    try:
        client, cluster = study.connect(args.scheduler, workers)
    except (OSError, TimeoutError) as error:
        raise UsageError(f"--scheduler {args.scheduler}: cannot connect ({error})") from None
    outcome = None
    try:
        outcome = study.execute(specs, path, fingerprint, client, retries=args.retries, describe=_describe)
    except KeyboardInterrupt:
        print(f"\nInterrupted. Every finished run is in {path}; the same command runs the missing ones.",
              file=sys.stderr)
        return None
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    for spec, message in outcome.failed:
        print(f"failed for good: {message}", file=sys.stderr)  # the message names the engine and seed
    return outcome.failed


def _describe(run: dict) -> str:
    return f"accuracy {100 * run['accuracy']:.2f}%, {run['seconds_per_epoch']:.2f} s / epoch"


def _summary(written: dict, out: Path, names: list[str]) -> None:
    for engine, e in written["engines"].items():
        ci = e["ci95"]
        print(f"{engine}: {e['n']} runs, mean accuracy {e['mean']:.3f}%" if e["n"] else f"{engine}: no runs", end="")
        print(f" (std {e['std']:.3f}, 95% CI [{ci[0]:.3f}, {ci[1]:.3f}])" if ci else "")
    d = written["difference"]
    if d is not None and d["mean"] is not None:
        ci = d["ci90"]
        print(f"miniconv - keras: {d['mean']:+.3f} points" + (f", 90% CI [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "")
              + f"; margin ±{d['margin']:g}: {d['verdict']}")
    if written["missing"]:
        print(f"missing: {len(written['missing'])} run(s); run the same command again to add them", file=sys.stderr)
    print(f"Wrote {', '.join(names)} to {out}")
