"""Training: where batches come from, one step, and the loops.

    data.py        checks of x / y, array and dataset batches, fit's training and validation sources
    step.py        TrainStep: the model compiled once for the run; one training / evaluation step
    loops.py       fit: epochs of steps, callbacks, validation
    inference.py   evaluate and predict (and what model.activations runs)

    Model.fit -> loops.fit -> TrainStep.train -> engine (plan steps -> ops -> backend kernels)
"""

from .loops import NonFiniteLossError

__all__ = ["NonFiniteLossError"]
