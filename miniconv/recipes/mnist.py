"""``miniconv train mnist``: the convnet of Chollet's *Deep Learning with Python*, ch. 5.1, on MNIST.

    miniconv train mnist                          # 5 epochs, batch 64, RMSprop, cpu backend, seed 0
    miniconv train mnist --epochs 1 --limit 3000 --out /tmp/smoke      # a smoke test
    miniconv train mnist --resume                 # continue an interrupted run in ./runs/mnist

The model (``convnet``): Conv2D 32 3x3 relu on 28x28x1 -> MaxPooling2D 2 -> Conv2D 64 3x3 relu ->
MaxPooling2D 2 -> Conv2D 64 3x3 relu -> Flatten -> Dense 64 relu -> Dense 10 softmax; images
scaled to [0, 1] float32, integer labels with sparse categorical crossentropy. The test set (all
10,000 images) is the validation set of every epoch; its accuracy after the last epoch is the
result. ``--limit N`` trains on the first N training images only, ``--test-limit N`` tests on the
first N test images only (both for smoke tests).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Data, Recipe, UsageError

OPTIMIZERS = ("adam", "rmsprop", "sgd")


def convnet(lib=None):
    """Chollet's ch. 5.1 convnet, uncompiled, in ``lib``: miniconv (default) or keras (only the import differs).

    A miniconv model is initialised from miniconv's global generator (``miniconv.utils.set_random_seed``).
    """
    if lib is None:
        import miniconv as lib
    L = lib.layers
    return lib.Sequential([
        lib.Input((28, 28, 1)),
        L.Conv2D(32, (3, 3), activation="relu"),
        L.MaxPooling2D((2, 2)),
        L.Conv2D(64, (3, 3), activation="relu"),
        L.MaxPooling2D((2, 2)),
        L.Conv2D(64, (3, 3), activation="relu"),
        L.Flatten(),
        L.Dense(64, activation="relu"),
        L.Dense(10, activation="softmax"),
    ], name="mnist_convnet")


def prepare_mnist(path=None, limit=None, test_limit=None):
    """((x_train, y_train), (x_test, y_test)) as the book prepares them: images (N, 28, 28, 1) float32
    in [0, 1], labels uint8 (integers, for sparse categorical crossentropy); the first ``limit`` /
    ``test_limit`` images of each set (None: all)."""
    from ..datasets import mnist

    (x_train, y_train), (x_test, y_test) = mnist.load_data(path)
    x_train, y_train = x_train[:limit], y_train[:limit]
    x_test, y_test = x_test[:test_limit], y_test[:test_limit]

    def scale(x):
        return x.reshape(-1, 28, 28, 1).astype(np.float32) / np.float32(255)

    return (scale(x_train), y_train), (scale(x_test), y_test)


class Mnist(Recipe):
    name = "mnist"
    help = "Chollet's ch. 5.1 convnet on MNIST"
    description = __doc__
    model_file = "mnist.miniconv"
    defaults = {"epochs": 5, "batch_size": 64, "out": Path("runs") / "mnist"}
    resume_keys = ("batch_size", "optimizer", "seed", "limit", "test_limit")

    def add_arguments(self, parser):
        parser.add_argument("--optimizer", default="rmsprop", help="sgd, rmsprop or adam, Keras's defaults (default rmsprop)")
        parser.add_argument("--limit", type=int, default=None, metavar="N",
                            help="train on the first N training images only (smoke tests)")
        parser.add_argument("--test-limit", type=int, default=None, metavar="N",
                            help="validate and test on the first N test images only (default: all 10,000)")
        parser.add_argument("--data", default=None, metavar="PATH",
                            help="MNIST .npz file or a directory holding mnist.npz (default: $MINICONV_DATA, "
                                 "else the copy shipped with miniconv)")

    def check(self, args):
        for name in ("limit", "test_limit"):
            value = getattr(args, name)
            if value is not None and value < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if args.optimizer.lower() not in OPTIMIZERS:
            raise UsageError(f"unknown optimizer {args.optimizer!r}; choose from {', '.join(OPTIMIZERS)}")
        args.optimizer = args.optimizer.lower()

    def settings(self, args):
        return {"optimizer": args.optimizer, "limit": args.limit, "test_limit": args.test_limit}

    def load_data(self, args) -> Data:
        from ..datasets import DatasetError

        try:
            (x_train, y_train), (x_test, y_test) = prepare_mnist(args.data, args.limit, args.test_limit)
        except (FileNotFoundError, DatasetError) as error:
            raise UsageError(str(error)) from None
        n = min(len(x_train), args.batch_size)
        return Data(x_train, y_train, validation=(x_test, y_test),
                    facts={"train_samples": len(x_train), "test_samples": len(x_test)},
                    description=f"MNIST: {len(x_train)} training images, {len(x_test)} test images (the validation set)",
                    warm_up=(x_train[:n], y_train[:n]))

    def build_model(self, args):
        from .. import optimizers

        model = convnet()
        model.compile(optimizers.get(args.optimizer), "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    def report_fields(self, history):
        return {"test_accuracy": history["val_accuracy"][-1], "test_loss": history["val_loss"][-1]}

    def summary_lines(self, report):
        return [f"Test accuracy: {report['test_accuracy']:.4f} ({report['settings']['test_samples']} test images, "
                f"after epoch {report['epochs']})"]
