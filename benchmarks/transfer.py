"""``python -m benchmarks transfer``: the transfer-learning recipes' speed (issue 21), miniconv against Keras.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks transfer --rounds 2    # the real run
    python -m benchmarks transfer --images 6 --size 64 --rounds 1 --out /tmp/bench           # a smoke test

Issue 21's speed targets, against Keras running the same network from the same converted weights,
on the same machine in the same run: feature extraction over the 3,000 images at most 1.0x
Keras's time, and a fine-tuning epoch at most 1.0x. Two measurements per worker:

features    the base of ``miniconv train cats-dogs --base efficientnet-lite0 --transfer features``
            (``transfer.BASES["efficientnet-lite0"].build("imagenet", (224, 224, 3))``: EfficientNet-Lite0
            with its preprocessing layer inside, pooled to 1280) predicting the training then the
            validation images of ``--data`` (2,000 + 1,000), ``predict(x, batch_size=20)``, timed
            after an untimed warm-up batch.
fine-tune   one epoch of ``--transfer fine-tune``'s second phase over the 2,000 training images:
            ``transfer.frozen_model(base, [], head="chollet")`` with the base unfrozen from
            ``block7a_expand_conv`` (``transfer.unfreeze_from``; batch normalizations stay frozen, in
            inference mode, on both engines), RMSprop(1e-5), binary crossentropy, accuracy, batch 20,
            ``fit(x, y, batch_size=20, epochs=1, verbose=0)``. Untimed first: a warm-up fit on one batch
            (kernel compilation, tracing, the optimizer's slots), then the weights are set back to the
            initial ones. The epoch is timed by ``miniconv.callbacks.EpochClock`` (epoch start to the
            end of its last step, as ``benchmarks train``: the ratio uses it); the whole ``fit`` call is
            reported too (it adds fit's data checks and adapters).

The images are decoded once, by the coordinator before any worker starts, with the recipe's loader
(``recipes.cats_dogs.load_splits``: bilinear resize to ``--size``, files in the seed's order) into
a temporary ``.npy`` file every worker reads whole before timing: the same float32 arrays for both
engines, and decoding is not the engines' work (its time is reported once). ``--images N`` takes the
first N of those 3,000 (training images first) and fine-tunes on the training images among them.

Contestants, each in its own process, alternating over ``--rounds`` rounds (``benchmarks.harness``);
each keeps its best round per measurement (noise on a shared machine only adds time):

    miniconv-cpu   the recipe's models on the cpu backend (``--backends`` for others)
    tf             the same models converted by ``model.to_keras()`` (weights and trainable flags), Keras 3
                   on TensorFlow; its worker checks that Keras trains as many weights as miniconv

Both build miniconv's models with ``--seed`` (the head's initial weights), so both start from the
same weights. Agreement: the features of the first ``CHECK_IMAGES`` images, max |miniconv - Keras|
over max |Keras|, and the fine-tuning model's outputs for them before training (max |difference|).
The coordinator records the load average before each round and after the last; above ``LOADED``
the results say the machine was heavily loaded. Results go to
``<out>/transfer.json`` and ``.md`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from . import engines, harness
from .common import machine_info
from .report import LIBRARIES, blas_sentence, measured_sentence, not_run_lines

MODULE = "benchmarks.transfer"
COMMAND = "python -m benchmarks transfer"
HELP = "transfer learning on EfficientNet-Lite0: feature extraction and a fine-tuning epoch, miniconv vs Keras"
# The photos: $MINICONV_CATS_DOGS, else shared/ beside the clone (or beside its parent, for a worktree), as the tests
_CANDIDATES = [folder / "shared" / "data" / "cats_and_dogs_small" for folder in harness.ROOT.parents[:2]]
DEFAULT_DATA = Path(os.environ.get("MINICONV_CATS_DOGS") or next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0]))
REFERENCES = ("tf",)
LABELS = {"tf": "Keras (TensorFlow)"}
BASE = "efficientnet-lite0"
BATCH = 20  # the recipe's
LEARNING_RATE = 1e-5  # the fine-tuning phase's RMSprop
TRAIN_IMAGES = 2000  # the fine-tuning epoch's images (cats_and_dogs_small/train)
CHECK_IMAGES = 4  # the images whose features (and fine-tuning model's outputs) are compared across engines
CHECKS = ("features_check", "fine_tune_check")  # a worker's outputs for those images (not kept per round)
LOADED = 3.0  # a 1-minute load average above this: the machine was heavily loaded (2 cores)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``benchmarks transfer`` options."""
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"folder with train/ and validation/ (default {DEFAULT_DATA})")
    parser.add_argument("--images", type=int, default=None, metavar="N",
                        help="use the first N images (training first) instead of all (quick checks)")
    parser.add_argument("--size", type=int, default=224, help="image side (default 224, the base's; smaller for "
                                                              "smoke tests)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over all contestants; the best is kept (default 2)")
    parser.add_argument("--backends", default="cpu", help="comma-separated miniconv backends (default cpu)")
    parser.add_argument("--references", default=",".join(REFERENCES), help="tf, or empty for miniconv alone (default tf)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the file order and the head's weights (default 0)")
    parser.add_argument("--out", type=Path, default=harness.DEFAULT_OUT,
                        help=f"output directory (default {harness.DEFAULT_OUT})")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--arrays", type=Path, help=argparse.SUPPRESS)  # a worker's decoded images


def run(args) -> int:
    """A worker's measurement, or the coordinator: decode, run the rounds, write and print the results."""
    if args.worker:
        return harness.worker_main(args.worker, lambda: _measure(args))
    for name in ("rounds", "size") + (("images",) if args.images is not None else ()):
        if getattr(args, name) < 1:
            print(f"benchmarks transfer: --{name} must be at least 1", file=sys.stderr)
            return 2
    if not (args.data / "train").is_dir() or not (args.data / "validation").is_dir():
        print(f"benchmarks transfer: --data {args.data} must hold train/ and validation/", file=sys.stderr)
        return 2
    harness.warn_if_blas_set(COMMAND)
    names = harness.contestants(args.backends, args.references, REFERENCES)
    loads = []
    with tempfile.TemporaryDirectory(prefix="miniconv-transfer-bench-") as folder:
        decoded = decode(args.data, Path(folder), args.size, args.seed, args.images)
        print(f"decoded {decoded['images']} images in {decoded['seconds']:.1f} s", file=sys.stderr)
        worker_args = ["--arrays", folder, "--size", str(args.size), "--seed", str(args.seed)]
        seen = harness.run_rounds(MODULE, names, worker_args, args.rounds,
                                  before_round=lambda r: loads.append(os.getloadavg()))
        loads.append(os.getloadavg())
    data = {
        "benchmark": "transfer",
        "machine": machine_info(),
        "settings": {"base": BASE, "data": str(args.data.resolve()), "size": args.size, "batch_size": BATCH,
                     "images": decoded["images"], "train_images": decoded["train_images"],
                     "validation_images": decoded["validation_images"], "limit": args.images, "seed": args.seed,
                     "fine_tune_from": _base().fine_tune_from, "learning_rate": LEARNING_RATE,
                     "check_images": CHECK_IMAGES, "rounds": args.rounds, "contestants": names,
                     "worker_env": harness.WORKER_ENV},
        "decode": {key: decoded[key] for key in ("seconds", "images")},
        "load_average": {"before_rounds": [list(l) for l in loads[:-1]], "after": list(loads[-1])},
        "contestants": seen.status,
        **summarise(seen.runs),
    }
    text = markdown(data)
    harness.write_results(args.out, "transfer", data, text)
    print(text)
    return 0 if seen.any_ran() else 1


# --- the coordinator's parts ---------------------------------------------------------------------


def _base():
    from miniconv.recipes.transfer import BASES

    return BASES[BASE]


def decode(data: Path, folder: Path, size: int, seed: int, limit: int | None) -> dict:
    """Decode the training then validation images (the first ``limit``) into ``folder``/x.npy and the
    training labels into y.npy, batch by batch; the decode's seconds and the counts."""
    import numpy as np

    from miniconv.recipes.cats_dogs import load_splits

    start = time.perf_counter()
    train, validation = load_splits(data, BATCH, seed, cache=False, verbose=False, image_size=(size, size))
    total = train.num_samples + validation.num_samples if limit is None else limit
    n_train = min(total, train.num_samples, TRAIN_IMAGES)
    parts = [train.first(n_train)] + ([validation.first(total - n_train)] if total > n_train else [])
    x = np.lib.format.open_memmap(folder / "x.npy", mode="w+", dtype=np.float32,
                                  shape=(sum(p.num_samples for p in parts), size, size, 3))
    labels, at = [], 0
    for part in parts:
        part.shuffle = False  # the seed's order, once
        for images, y in part:
            x[at:at + len(images)] = images
            at += len(images)
            if part is parts[0]:
                labels.append(y)
    x.flush()
    if at != len(x):  # a file that could not be read is skipped by the loader
        raise RuntimeError(f"decoded {at} images where {len(x)} were counted")
    np.save(folder / "y.npy", np.concatenate(labels).astype(np.float32))
    del x
    return {"seconds": time.perf_counter() - start, "images": at, "train_images": parts[0].num_samples,
            "validation_images": at - parts[0].num_samples}


def summarise(runs: dict[str, list[dict]]) -> dict:
    """{"results", "ratios", "agreement"}: per contestant that ran, each measurement's best round; the
    ratios of the best rounds; the features of miniconv against each reference's (first round each)."""
    import numpy as np

    results, checks, starts = {}, {}, {}
    for name, outs in runs.items():
        if not outs:
            continue
        features = harness.best_round(outs, "features_seconds")
        tune = harness.best_round(outs, "epoch_seconds")
        results[name] = {
            "features_seconds": features["features_seconds"],
            "features_ms_per_image": 1000 * features["features_seconds"] / features["features_images"],
            "features_images": features["features_images"],
            "epoch_seconds": tune["epoch_seconds"],
            "fit_seconds": min(out["fit_seconds"] for out in outs),
            "train_images": tune["train_images"],
            "trainable": tune["trainable"],
            "epoch_loss": tune["epoch_loss"],
            "peak_rss_mb": max(out["peak_rss_mb"] for out in outs),
            "rounds": [{key: value for key, value in out.items() if key not in CHECKS + ("info", "contestant")}
                       for out in outs],
        }
        checks[name] = np.asarray(outs[0]["features_check"], np.float64)
        starts[name] = np.asarray(outs[0]["fine_tune_check"], np.float64)
    ratios = {key: harness.ratios({n: r[key] for n, r in results.items()}, REFERENCES)
              for key in ("features_seconds", "epoch_seconds", "fit_seconds")}
    agreement = {}
    for ref in REFERENCES:
        for name, check in checks.items():
            if name.startswith(harness.MINICONV) and ref in checks:
                diff, scale = float(np.abs(check - checks[ref]).max()), float(np.abs(checks[ref]).max())
                agreement[f"{name}/{ref}"] = {"images": len(checks[ref]), "max_abs_diff": diff,
                                              "max_abs_reference": scale, "relative": diff / scale if scale else None,
                                              "fine_tune_outputs_max_abs_diff":
                                                  float(np.abs(starts[name] - starts[ref]).max())}
    return {"results": results, "ratios": ratios, "agreement": agreement}


def label(name: str) -> str:
    return harness.label(name, LABELS)


def markdown(data: dict) -> str:
    """The .md: when and where, the load, how, the two tables, the ratios against the targets, agreement."""
    m, s, results = data["machine"], data["settings"], data["results"]
    loads = data["load_average"]
    worst = max([l[0] for l in loads["before_rounds"]] + [loads["after"][0]])
    load_text = ("Load average (1, 5, 15 min) before each round: "
                 + "; ".join(", ".join(f"{v:.2f}" for v in l) for l in loads["before_rounds"])
                 + f"; after: {', '.join(f'{v:.2f}' for v in loads['after'])}.")
    if worst > LOADED:
        load_text += (f" **The machine was heavily loaded (1-minute load up to {worst:.1f} on "
                      f"{m['usable_cores']} cores) by other jobs: both engines' times are inflated and the ratios "
                      "are noisier than usual.**")
    smoke = s["limit"] is not None or s["size"] != 224
    lines = [
        "# Transfer learning speed: EfficientNet-Lite0 on cats vs dogs, miniconv against Keras",
        "",
        (f"{measured_sentence(m, [lib for lib in LIBRARIES if lib[1] != 'torch'])} {blas_sentence(m)} "
         "Workers ran with `OPENBLAS_THREAD_TIMEOUT=4`."),
        "",
        load_text,
        "",
        (f"The same network on both engines: miniconv's models (seed {s['seed']}) converted by `model.to_keras()`. "
         f"Images: {s['images']} of {s['data']} ({s['train_images']} training, {s['validation_images']} validation), "
         f"{s['size']}x{s['size']} RGB, decoded once before the rounds by miniconv's "
         f"`image_dataset_from_directory` in {data['decode']['seconds']:.1f} s (not part of either engine's time). "
         f"Each contestant in its own process, alternating over {s['rounds']} round(s); each measurement keeps its "
         "best round." + (" **`--images` / `--size`: a smoke test, not the real measurement.**" if smoke else "")),
        "",
        (f"## Feature extraction: the base predicting {s['images']} images, batch {s['batch_size']}"),
        "",
        "`predict(x, batch_size=20)` on the decoded images, after one untimed batch.",
        "",
        "| contestant | version | seconds (best) | every round | ms / image |",
        "|---|---|---:|---:|---:|",
    ]
    for name, r in results.items():
        every = ", ".join(f"{run['features_seconds']:.2f}" for run in r["rounds"])
        lines.append(f"| {label(name)} | {_version(data, name)} | {r['features_seconds']:.2f} | {every} | "
                     f"{r['features_ms_per_image']:.1f} |")
    lines += [
        "",
        (f"## A fine-tuning epoch: {next(iter(results.values()), {}).get('train_images', s['train_images'])} "
        f"training images, batch {s['batch_size']}"),
        "",
        (f"The base unfrozen from `{s['fine_tune_from']}` (batch normalizations frozen, in inference mode), Chollet's "
         f"head (Dense 256 relu, Dropout 0.5, Dense 1 sigmoid), RMSprop({s['learning_rate']:g}), binary crossentropy; "
         "`fit(x, y, batch_size=20, epochs=1, verbose=0)` after an untimed one-batch fit (the weights then set back). "
         "Seconds per epoch: epoch start to the end of its last step (`EpochClock`); whole fit: the `fit` call. "
         "The loss only shows that each trained."),
        "",
        "| contestant | s / epoch (best) | every round | whole fit (best) | trainable arrays / parameters | epoch loss |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        every = ", ".join(f"{run['epoch_seconds']:.2f}" for run in r["rounds"])
        t = r["trainable"]
        lines.append(f"| {label(name)} | {r['epoch_seconds']:.2f} | {every} | {r['fit_seconds']:.2f} | "
                     f"{t['arrays']} / {t['params']:,} | {r['epoch_loss']:.4f} |")
    targets = (("features_seconds", "Feature extraction", "target at most 1.0x"),
               ("epoch_seconds", "Fine-tuning epoch", "target at most 1.0x"),
               ("fit_seconds", "Whole fine-tuning fit call", "for information"))
    if any(data["ratios"].values()):
        lines += ["", ("Ratios of the best rounds, miniconv / Keras (below 1: miniconv is faster; issue 21's speed "
                      "targets):"), ""]
        for key, what, note in targets:
            for pair, ratio in data["ratios"][key].items():
                mine, ref = pair.split("/")
                lines.append(f"- {what}, {label(mine)} / {label(ref)}: **{ratio:.2f}x** ({note})")
    for pair, a in data["agreement"].items():
        mine, ref = pair.split("/")
        lines += ["", (f"Agreement: the features of the first {a['images']} images, max |{label(mine)} - "
                       f"{label(ref)}| = {a['max_abs_diff']:.3g}, {a['relative']:.2g} of the largest feature "
                       f"({a['max_abs_reference']:.3g}). The fine-tuning model's sigmoid outputs for those images "
                       f"before training differ by at most {a['fine_tune_outputs_max_abs_diff']:.2g} (the same initial "
                       "weights).")]
    return "\n".join(lines + not_run_lines(data, label)) + "\n"


def _version(data: dict, name: str) -> str:
    return data["contestants"][name].get("info", {}).get("version", "")


# --- a worker: one contestant per process --------------------------------------------------------


def _measure(args) -> dict:
    """One worker's result: feature extraction, then a fine-tuning epoch, on this engine."""
    engine = engines.engine(args.worker)
    import miniconv  # noqa: I001  (the Keras worker builds miniconv's models to convert them)
    import numpy as np

    from miniconv.recipes import transfer

    x = np.load(args.arrays / "x.npy")  # read whole, before any timing
    y = np.load(args.arrays / "y.npy")
    shape = (args.size, args.size, 3)
    base_spec = _base()

    def build_base():
        try:
            return base_spec.build("imagenet", shape)
        except FileNotFoundError as error:
            raise harness.Unavailable(f"EfficientNet-Lite0's ImageNet weights: {error}") from None

    with engine.scope():
        # 1. feature extraction: the recipe's base, as built
        miniconv.utils.set_random_seed(args.seed)
        base = build_base()
        extractor = base.to_keras() if engine.is_keras else base
        first = engines.warmup_size(len(x), BATCH, 1)  # a full batch, and the last partial one's size if any
        extractor.predict(x[:first], batch_size=BATCH, verbose=0)
        start = time.perf_counter()
        features = np.asarray(extractor.predict(x, batch_size=BATCH, verbose=0))
        features_seconds = time.perf_counter() - start
        del extractor, base

        # 2. a fine-tuning epoch: frozen model, the base unfrozen from block7a, RMSprop 1e-5
        miniconv.utils.set_random_seed(args.seed)
        model = transfer.frozen_model(build_base(), [], head="chollet")
        transfer.unfreeze_from(transfer.find_base(model), base_spec.fine_tune_from)
        mine = _trainable(model.trainable_weights)
        if engine.is_keras:
            model = model.to_keras()
            theirs = _trainable(model.trainable_weights)
            if theirs != mine:
                raise RuntimeError(f"Keras's converted model trains {theirs} where miniconv's trains {mine}")
        model.compile(engine.lib.optimizers.RMSprop(learning_rate=LEARNING_RATE), "binary_crossentropy",
                      metrics=["accuracy"])
        x_train = x[:len(y)]
        outputs = np.asarray(model.predict(x_train[:CHECK_IMAGES], verbose=0))  # untimed: the same start?
        initial = model.get_weights()
        first = engines.warmup_size(len(y), BATCH, 1)
        model.fit(x_train[:first], y[:first], batch_size=BATCH, epochs=1, verbose=0)
        model.set_weights(initial)
        clock = engines.epoch_clock()
        start = time.perf_counter()
        history = model.fit(x_train, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[engine.callback(clock)])
        fit_seconds = time.perf_counter() - start
    return {"info": engine.info, "features_seconds": features_seconds, "features_images": len(x),
            "features_shape": list(features.shape), "features_check": features[:CHECK_IMAGES].tolist(),
            "fine_tune_check": outputs.ravel().tolist(),
            "epoch_seconds": clock.training[0], "fit_seconds": fit_seconds, "train_images": len(y),
            "epoch_loss": float(history.history["loss"][-1]), "trainable": mine, "peak_rss_mb": engines.peak_rss_mb()}


def _trainable(weights) -> dict:
    """{"arrays": how many trainable arrays, "params": their elements}."""
    import numpy as np

    return {"arrays": len(weights), "params": int(sum(int(np.prod(tuple(w.shape))) for w in weights))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
