"""Models: ``Model`` (Keras's functional API, a graph of layers) and ``Sequential`` (a chain).

    functional.py   Model: the graph, weights, compile / fit / evaluate / predict, saving
    sequential.py   Sequential: a Model whose graph is made from a list of layers
    config.py       architectures as dicts, and models made from them
    inspection.py   every layer's output, input gradients, a model run as one layer
    summary.py      Keras's summary table
    loading.py      load_model
    to_keras.py     a model as a Keras model (``model.to_keras()``)
"""

from .functional import Model
from .loading import load_model
from .sequential import Sequential

__all__ = ["Model", "Sequential", "load_model"]
