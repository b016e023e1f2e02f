"""Training: where batches come from (``data.py``), one step (``step.py``) and the loops (``loops.py``).

    Model.fit / evaluate / predict  ->  loops.fit / evaluate / predict
                                        -> step.TrainStep (the model compiled for the run)
                                           -> engine: plan steps, their ops, the backend's kernels
"""

from .loops import NonFiniteLossError

__all__ = ["NonFiniteLossError"]
