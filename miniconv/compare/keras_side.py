"""The Keras engine of one run: the recipe's data, model, optimizer, loss and metrics, trained by Keras 3.

Nothing here is a second definition of a recipe. The recipe builds its compiled miniconv model
(``recipe.build_model``: NumPy only, no kernel runs), and ``twin`` derives the Keras model from it:

    architecture   ``model.to_keras()`` (every layer's config), then ``keras.models.clone_model``,
                   which makes fresh layers initialised by Keras from ``keras.utils.set_random_seed(seed)``
    optimizer      ``keras.optimizers.deserialize(miniconv.optimizers.serialize(model.optimizer))``
    loss, metrics  the same way from ``model.loss``; the metric names as compiled

The data are the recipe's own (``recipe.load_data``): arrays go to ``fit`` as they are (Keras shuffles
them with its seeded generator); an image dataset is read through ``tf.data.Dataset.from_generator``,
so Keras sees miniconv's decoded pixels in the dataset's seeded order, batch for batch.

Warm-up: one untimed ``fit`` on the recipe's warm-up samples (plus one batch of the last, partial
size, so every shape is traced), then every model variable (weights and random-layer seed states)
is put back as it was and every optimizer variable but the learning rate set back to zero (Keras
creates them at zero), and the seeds are set again: the timed epochs start from the initial state.
"""

from __future__ import annotations

import numpy as np


def twin(model, keras):
    """The Keras model equal to the compiled miniconv ``model`` in layers, optimizer, loss and metrics,
    with fresh Keras weights (drawn after ``keras.utils.set_random_seed``)."""
    from .. import losses, optimizers

    clone = keras.models.clone_model(model.to_keras(), clone_function=_fresh_layer)
    metrics = [m if isinstance(m, str) else m.name for m in model.compiled_metrics]
    clone.compile(optimizer=keras.optimizers.deserialize(optimizers.serialize(model.optimizer)),
                  loss=keras.losses.deserialize(losses.serialize(model.loss)), metrics=metrics)
    return clone


def _fresh_layer(layer):
    """clone_model's default (a layer from its config), except that Keras 3's RandomShear reports its
    symmetric factor f as the pair (-f, f), which its own constructor refuses (bounds in [0, 1]):
    that pair goes back as the number f, the same distribution."""
    config = layer.get_config()
    if type(layer).__name__ == "RandomShear":
        for name in ("x_factor", "y_factor"):
            lower, upper = config[name]
            if lower == -upper:
                config[name] = float(upper)
    return type(layer).from_config(config)


def as_keras_data(data):
    """Arrays and (x, y) tuples as they are; an iterable dataset (``ImageDataset``) as a ``tf.data`` pipeline
    that iterates it afresh every epoch (so it reshuffles with its own generator)."""
    if data is None or isinstance(data, (tuple, list, np.ndarray)):
        return data
    import tensorflow as tf

    first = next(iter(data.first(1))) if hasattr(data, "first") else next(iter(data))
    signature = tuple(tf.TensorSpec((None, *np.shape(part)[1:]), tf.as_dtype(np.asarray(part).dtype)) for part in first)
    return tf.data.Dataset.from_generator(lambda: iter(data), output_signature=signature)


def warm_up(model, keras, data, batch_size: int, seed: int) -> None:
    """Trace and compile the training and test steps on throwaway steps, then restore the initial state."""
    if data.warm_up is None:
        return
    saved = [v.numpy() for v in model.variables]
    x, y = data.warm_up
    if isinstance(data.x, np.ndarray) and len(data.x) % batch_size:  # the epoch's last, partial batch too
        k = min(len(data.x), batch_size + len(data.x) % batch_size)
        x, y = data.x[:k], data.y[:k]
    validation = data.validation
    if isinstance(validation, tuple) and len(validation[0]) % batch_size:
        k = min(len(validation[0]), batch_size + len(validation[0]) % batch_size)
        validation = (validation[0][:k], validation[1][:k])
    else:
        validation = (x, y)
    model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0, validation_data=validation)
    for variable, value in zip(model.variables, saved):
        variable.assign(value)
    for variable in model.optimizer.variables:
        if not variable.path.endswith("learning_rate"):
            variable.assign(np.zeros(variable.shape, variable.dtype))
    keras.utils.set_random_seed(seed)


def train(recipe, args, threads: int | None) -> dict:
    """One Keras run of ``recipe`` with the runner's ``args`` (seed, epochs, batch size, recipe options)."""
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    import keras

    from .. import utils
    from ..callbacks import EpochClock

    data = recipe.load_data(args)
    utils.set_random_seed(args.seed)  # as the runner does before building: any draw of the recipe's builder
    model = recipe.build_model(args)
    keras.utils.set_random_seed(args.seed)
    keras_model = twin(model, keras)
    warm_up(keras_model, keras, data, args.batch_size, args.seed)
    clock = EpochClock()
    hooks = keras.callbacks.LambdaCallback(on_epoch_begin=clock.on_epoch_begin,
                                           on_train_batch_end=clock.on_train_batch_end, on_epoch_end=clock.on_epoch_end)
    x = as_keras_data(data.x)
    fit_args = {"batch_size": args.batch_size} if isinstance(x, np.ndarray) else {}
    history = keras_model.fit(x, data.y, epochs=args.epochs, validation_data=as_keras_data(data.validation),
                              callbacks=[hooks], verbose=0, **fit_args)
    info = {"keras": keras.__version__, "tensorflow": tf.__version__, "jit_compile": bool(keras_model.jit_compile),
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}
    return {"history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
            "epoch_seconds": clock.training, "epoch_seconds_with_validation": clock.with_validation,
            "facts": data.facts, "info": info}
