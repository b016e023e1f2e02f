"""``miniconv.load_model``: a model file (``miniconv.saving``'s format) made into a model again."""

from __future__ import annotations

from .. import saving
from ..saving import ModelFileError
from .functional import Model
from .sequential import Sequential

_MODEL_CLASSES = {"Sequential": Sequential, "Model": Model, "Functional": Model}


def model_from_config(class_name: str, config: dict, rng=None):
    """A new model of class ``class_name`` ("Sequential" or "Model") from its ``get_config()``; weights
    initialised from ``rng`` (default a private generator: the global one is not drawn from)."""
    cls = _MODEL_CLASSES.get(class_name)
    if cls is None:
        raise ValueError(f"unknown model class {class_name!r}; expected one of {sorted(_MODEL_CLASSES)}")
    return cls.from_config(config, rng)


def load_model(path, compile: bool = True, restore_random_state: bool = False):
    """Read a model written by ``model.save``: architecture, weights, and (``compile``) the compile
    config with the optimizer's state. ``restore_random_state`` also puts back the random generators
    as they were when the file was written, so that ``fit(initial_epoch=model.epochs_completed)``
    continues a run exactly. A damaged or foreign file raises ``ModelFileError`` saying what is wrong."""
    meta, archive = saving.read_model_file(path)
    with archive:
        try:
            entry = meta["model"]
            model = model_from_config(entry.get("class_name"), entry["config"])
            if not model.built:
                model.build((None, *meta["input_shape"]))
            model.set_weights(saving.read_arrays(archive, "weights", len(meta["weights"]), path))
            model.epochs_completed = int(meta.get("epochs_completed", 0))
            if compile:
                saving.restore_compile_state(model, meta, archive, path)
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as error:
            raise ModelFileError(f"{path}: the model description is invalid ({type(error).__name__}: "
                                 f"{str(error)[:300]})") from None
    if restore_random_state:
        saving.restore_random_state(model, meta, path)
    return model
