"""``python -m benchmarks train mnist``: seconds per training epoch of the course convnet, miniconv against Keras and PyTorch.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks train mnist          # the real run
    python -m benchmarks train mnist --limit 640 --rounds 1 --out /tmp/bench             # a smoke test

The model is Chollet's ch. 5.1 convnet, batch 64, RMSprop (lr 1e-3, rho 0.9, eps 1e-7), sparse
categorical crossentropy with an accuracy metric, on MNIST scaled to [0, 1] float32
(``miniconv.recipes.mnist.prepare_mnist``). Contestants, each in its own process (Numba's,
TensorFlow's and PyTorch's thread pools slow each other when they share one), alternating over
``--rounds`` rounds in a rotated order (``benchmarks.harness``):

    miniconv-cpu   ``model.fit`` on the cpu backend (``--backends`` for others)
    tf             Keras 3 on TensorFlow, ``model.fit`` with Keras's defaults
    torch          the same layers in PyTorch, channels-last, a plain training loop (torch.optim.RMSprop)

miniconv and Keras build the model with the same code, ``miniconv.recipes.mnist.convnet(lib)``
(``benchmarks.engines``). A worker loads the data, builds the model, runs an untimed warm-up
(``--warmup-steps`` steps plus one batch of the last, partial size, so Keras traces both shapes),
then trains ``--epochs`` epochs timed by ``miniconv.callbacks.EpochClock``: from the start of the
epoch (shuffle) to the end of its last step, no validation. Afterwards (untimed) it evaluates the
test set, a check that every contestant really trained, and reads its peak resident memory
(``ru_maxrss``: data, library and model). Workers run with ``OPENBLAS_THREAD_TIMEOUT=4``.

Reported per contestant: the best round's mean seconds per epoch (noise on a shared machine only
adds time), every round's, the peak memory and the test accuracy; and the ratios miniconv / Keras
and miniconv / PyTorch of the best rounds. Results go to ``<out>/train_mnist.json`` and
``<out>/train_mnist.md`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import engines, harness, training
from .report import blas_sentence, measured_sentence

REFERENCES = ("tf", "torch")
HELP = "Chollet's ch. 5.1 convnet on MNIST: miniconv vs Keras and PyTorch"
COMMAND = "python -m benchmarks train mnist"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``benchmarks train mnist`` options."""
    out = harness.DEFAULT_OUT
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per worker (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all contestants; the best is kept (default 3)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="train on the first N images (smoke tests)")
    parser.add_argument("--batch-size", type=int, default=64, help="samples per step (default 64)")
    parser.add_argument("--warmup-steps", type=int, default=5, help="untimed steps before timing (default 5)")
    parser.add_argument("--backends", default="cpu", help="comma-separated miniconv backends (default cpu)")
    parser.add_argument("--references", default=",".join(REFERENCES),
                        help="comma-separated among tf,torch (default both; missing ones are skipped)")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation and shuffling (default 0)")
    parser.add_argument("--out", type=Path, default=out, help=f"directory for train_mnist.json and .md (default {out})")


def run(args) -> int:
    """Run the rounds, write train_mnist.json and .md, print the markdown; 0 unless nothing could run."""
    if not training.check_counts(args, "benchmarks train", ("epochs", "rounds", "batch_size")):
        return 2
    worker_args = ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
                   "--warmup-steps", str(args.warmup_steps), "--seed", str(args.seed)]
    worker_args += ["--limit", str(args.limit)] if args.limit is not None else []
    settings = {"epochs": args.epochs, "limit": args.limit, "batch_size": args.batch_size,
                "warmup_steps": args.warmup_steps, "seed": args.seed}
    return training.run_training(args, command=COMMAND, module="benchmarks.train_mnist", stem="train_mnist",
                                 references=REFERENCES, worker_args=worker_args, settings=settings, markdown=markdown)


def markdown(data: dict) -> str:
    """train_mnist.md: when and where, how, the table and the ratios."""
    m, s = data["machine"], data["settings"]
    samples = next((r["train_samples"] for r in data["results"].values()), s["limit"])
    lines = [
        "# MNIST training benchmark: Chollet's ch. 5.1 convnet",
        "",
        f"{measured_sentence(m)} {blas_sentence(m)} Workers ran with `OPENBLAS_THREAD_TIMEOUT=4`.",
        "",
        f"Seconds per epoch of training only ({samples} images, batch {s['batch_size']}, RMSprop; from the start "
        f"of an epoch to the end of its last step, no validation), mean of {s['epochs']} timed epoch(s) after an "
        f"untimed warm-up of {s['warmup_steps']} steps; each contestant in its own process, contestants "
        f"alternating over {s['rounds']} round(s); the best round is kept, every round is listed. Peak memory is "
        "the worker's maximum resident set (data, library and model). Test accuracy (all test images, after the "
        "timed epochs) only shows that each contestant trained."
        + (" **Subset of the training set (`--limit`): a smoke test, not the real measurement.**"
           if s["limit"] is not None else ""),
        "",
        "| contestant | version | s / epoch (best) | every round | peak memory (MB) | test accuracy |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += training.table_rows(data, lambda r: [f"{r['peak_rss_mb']:.0f}", f"{r['test_accuracy']:.4f}"])
    return "\n".join(lines + training.ratio_lines(data, "Seconds per epoch")) + "\n"


# --- workers: one contestant per process ---------------------------------------------------------


def _fit(engine: engines.Engine, data, args) -> dict:
    """miniconv or Keras: the recipe's model, the warm-up, ``--epochs`` epochs on the clock, the test accuracy."""
    from miniconv.recipes.mnist import convnet

    lib = engine.lib
    (x, y), (x_test, y_test) = data
    clock = engines.epoch_clock()
    with engine.scope():
        lib.utils.set_random_seed(args.seed)
        model = convnet(lib)
        model.compile(lib.optimizers.RMSprop(), "sparse_categorical_crossentropy", metrics=["accuracy"])
        k = engines.warmup_size(len(x), args.batch_size, args.warmup_steps)
        model.fit(x[:k], y[:k], batch_size=args.batch_size, epochs=1, verbose=0, shuffle=False)
        model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=0,
                  callbacks=[engine.callback(clock)])
        accuracy = model.evaluate(x_test, y_test, batch_size=256, verbose=0)[1]
    return {"info": engine.info, "test_accuracy": float(accuracy), **engines.clock_result(clock)}


def _torch_fit(data, args) -> dict:
    """PyTorch: the convnet written by hand (PyTorch does not speak Keras's API, so the recipe cannot
    build it): the same layers, channels-last, flattened in NHWC order as Keras does; RMSprop with
    Keras's constants; a plain loop that calls the epoch clock's hooks itself."""
    try:
        import torch
        from torch import nn
    except ImportError as error:
        raise harness.Unavailable(f"PyTorch is not installed ({error})") from None
    import numpy as np

    (x, y), (x_test, y_test) = data
    torch.manual_seed(args.seed)
    cl = torch.channels_last

    def images(array):  # NHWC memory viewed as NCHW: torch's channels-last layout, no copy
        return torch.from_numpy(array).permute(0, 3, 1, 2)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(64, 64, 3), nn.ReLU(),
            )
            self.head = nn.Sequential(nn.Linear(576, 64), nn.ReLU(), nn.Linear(64, 10))

        def forward(self, x):
            h = self.features(x)
            return self.head(h.permute(0, 2, 3, 1).flatten(1))  # flatten NHWC, as Keras

    model = Net().to(memory_format=cl)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()  # on the logits: softmax + crossentropy, as Keras fuses them
    x_all, y_all = images(x), torch.from_numpy(y.astype(np.int64))
    generator = torch.Generator().manual_seed(args.seed)
    clock = engines.epoch_clock()

    def epoch(n: int, shuffle: bool = True, on_step=lambda step: None):
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        correct = 0
        model.train()
        for step, start in enumerate(range(0, n, args.batch_size)):
            index = order[start:start + args.batch_size]
            xb = x_all[index].contiguous(memory_format=cl)
            yb = y_all[index]
            optimizer.zero_grad(set_to_none=True)
            logits = model(xb)
            loss = loss_fn(logits, yb)
            loss.backward()
            optimizer.step()
            correct += int((logits.argmax(1) == yb).sum())  # the accuracy metric the others keep
            on_step(step)
        return correct

    epoch(engines.warmup_size(len(x), args.batch_size, args.warmup_steps), shuffle=False)
    for e in range(args.epochs):
        clock.on_epoch_begin(e)
        epoch(len(x), on_step=clock.on_train_batch_end)
        clock.on_epoch_end(e)
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(images(x_test[i:i + 256]).contiguous(memory_format=cl))
                            for i in range(0, len(x_test), 256)])
    accuracy = float((logits.argmax(1).numpy() == y_test).mean())
    return {"info": {"version": torch.__version__, "threads": torch.get_num_threads()},
            "test_accuracy": accuracy, **engines.clock_result(clock)}


def _measure(args) -> dict:
    """One worker's result: its epochs, accuracy, peak memory and sample counts."""
    from miniconv.recipes.mnist import prepare_mnist

    engine = None if args.worker == "torch" else engines.engine(args.worker)  # the engine before the data
    data = prepare_mnist(None, args.limit)
    result = _torch_fit(data, args) if engine is None else _fit(engine, data, args)
    return {**result, "peak_rss_mb": engines.peak_rss_mb(), "train_samples": len(data[0][0]),
            "test_samples": len(data[1][0])}


def worker(argv: list[str] | None = None) -> int:
    """Entry of ``python -m benchmarks.train_mnist --worker NAME``: one JSON line (``benchmarks.harness``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train_mnist", description="One worker (internal).")
    parser.add_argument("--worker", required=True, help="tf, torch or miniconv-<backend>")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    return harness.worker_main(args.worker, lambda: _measure(args))


if __name__ == "__main__":
    sys.exit(worker())
