"""The engines a training worker runs, miniconv on one backend or Keras on TensorFlow, and the one epoch clock.

Both speak Keras's API, so a worker writes its training once, with ``engine.lib`` in place of
``keras``: the model comes from the recipe (``miniconv.recipes.mnist.convnet(engine.lib)``), and
``engine.lib.optimizers``, ``engine.lib.utils.set_random_seed``, ``model.fit`` and
``model.evaluate`` mean the same on both sides. Work runs inside ``engine.scope()``
(``miniconv.use_backend(backend)`` for miniconv).

Epochs are timed by ``miniconv.callbacks.EpochClock`` alone: ``time.perf_counter`` from the
epoch's start (its shuffle) to the end of its last training step (``clock.training``), and to the
end of the epoch, after validation (``clock.with_validation``). ``engine.callback(clock)`` is
what ``fit`` gets: the clock itself for miniconv, the same object's hooks in a
``keras.callbacks.LambdaCallback`` for Keras; a hand-written loop (PyTorch) calls the hooks itself.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .harness import MINICONV_PREFIX, Unavailable

KERAS = "tf"  # the contestant name of Keras on TensorFlow


@dataclass
class Engine:
    """A library with Keras's API as one worker runs it; ``lib`` is the module the recipes' builders take."""

    name: str
    lib: Any
    info: dict
    scope: Callable[[], contextlib.AbstractContextManager]

    @property
    def is_keras(self) -> bool:
        return self.name == KERAS

    def callback(self, hooks):
        """What ``fit`` takes for ``hooks`` (a ``miniconv.callbacks.Callback``, e.g. an ``EpochClock``)."""
        if not self.is_keras:
            return hooks
        return self.lib.callbacks.LambdaCallback(on_epoch_begin=hooks.on_epoch_begin,
                                                 on_train_batch_end=hooks.on_train_batch_end,
                                                 on_epoch_end=hooks.on_epoch_end)


def engine(name: str) -> Engine:
    """The engine of contestant ``name``: "miniconv-<backend>" or "tf"; ``Unavailable`` if it cannot run here."""
    if name == KERAS:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        try:
            import keras
            import tensorflow as tf
        except ImportError as error:
            raise Unavailable(f"TensorFlow / Keras is not installed ({error})") from None
        info = {"version": f"{keras.__version__} (TF {tf.__version__})",
                "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads()}
        return Engine(name, keras, info, contextlib.nullcontext)
    if name.startswith(MINICONV_PREFIX):
        import miniconv  # noqa: I001  (before NumPy and Numba: it sets OPENBLAS_THREAD_TIMEOUT first)
        import numba

        backend = name[len(MINICONV_PREFIX):]
        if backend not in miniconv.available_backends():
            raise Unavailable(f"miniconv backend {backend!r} is not available here")
        info = {"version": miniconv.__version__, "backend": backend, "threads": numba.get_num_threads()}
        return Engine(name, miniconv, info, lambda: miniconv.use_backend(backend))
    raise Unavailable(f"unknown contestant {name!r}: expected {KERAS} or {MINICONV_PREFIX}<backend>")


def epoch_clock():
    """A fresh ``miniconv.callbacks.EpochClock`` (imported here: a worker loads its engine first)."""
    from miniconv.callbacks import EpochClock

    return EpochClock()


def clock_result(clock, with_validation: bool = False) -> dict:
    """The clock's epochs: "epoch_seconds" and their mean "seconds_per_epoch" (training only), and
    with ``with_validation`` the same for the epochs with their validation pass."""
    result = {"epoch_seconds": clock.training, "seconds_per_epoch": sum(clock.training) / len(clock.training)}
    if with_validation:
        result.update(epoch_seconds_with_validation=clock.with_validation,
                      seconds_per_epoch_with_validation=sum(clock.with_validation) / len(clock.with_validation))
    return result


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB (``ru_maxrss``, KiB on Linux): data, library and model."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def warmup_size(n: int, batch: int, steps: int) -> int:
    """``steps`` full batches plus one of the epoch's last, partial size (if any): every shape is seen."""
    return min(n, steps * batch + n % batch)
