"""One training step, and one evaluation step, of a compiled model on its backend.

    step = TrainStep(model)                       # compiles the model for the run (fusions, loss fold)
    loss, prediction = step.train(xs, y)          # forward, loss, backward, optimizer update
    loss, prediction = step.evaluate(xs, y)       # forward (training=False) and the loss
    step.sync_to_host()                           # a GPU run's weights and optimizer state back

A step moves the batch to the backend, runs the plan's steps, takes the loss there (from the
logits when the plan folded the output activation: dz = (p - y) / N, as Keras), pulls the
gradient back and lets the optimizer update the trainable variables in place. Only the batch
goes in and the loss and predictions come out: on the cuda backend the weights, gradients,
optimizer state and activations stay on the GPU. A step whose loss or any gradient is not finite
raises ``NonFiniteStep`` before the update: the weights stay those of the previous step.
"""

from __future__ import annotations

import math

from ..backend import get_backend
from ..engine.execute import backward, forward, gradients
from ..engine.plan import compile_plan
from ..ops import vjp
from ..ops.arrays import all_finite, to_backend, to_host
from ..ops.loss import loss_value, loss_value_and_gradient
from ..ops.merge import add_n


class NonFiniteStep(FloatingPointError):
    """A training step found a NaN or infinite loss or gradient and did not update the weights."""

    def __init__(self, reason: str, loss: float):
        super().__init__(reason)
        self.reason, self.loss = reason, loss


class TrainStep:
    """The compiled model, the optimizer on its backend, and the two steps; see the module docstring."""

    def __init__(self, model, backend=None):
        self.model = model
        self.backend = get_backend(backend).name
        self.plan = compile_plan(model, loss=model.loss, backend=self.backend)
        self.loss = model.loss
        self.optimizer = get_backend(self.backend).optimizer_for(model.optimizer) if model.optimizer else None
        variables = self.plan.trainable_variables
        self.arrays = [v.array for v in variables]
        self.keys = [v.name for v in variables]
        self.regularized = [(i, v) for i, v in enumerate(variables) if v.regularizer is not None]

    def _forward(self, xs, training: bool):
        inputs = [to_backend(x, backend=self.backend) for x in xs]
        (output,), tape = forward(self.plan, inputs, training, keep_tape=training)
        return output, tape

    def _prediction(self, prediction, output):
        """The model's output for the metrics: the loss's prediction, or the output op of the logits."""
        if self.plan.output_op is not None:
            return to_host(self.plan.output_op(output), backend=self.backend)
        return prediction

    def train(self, xs, targets):
        """One optimizer step on one batch; returns (mean loss, host prediction).

        Raises ``NonFiniteStep`` (no update made) when the loss or a gradient is NaN or infinite: a
        NaN in the input can hide from the loss (a max pool never picks it) and still reach the
        weights through the filter gradient (NaN * 0)."""
        output, tape = self._forward(xs, True)
        value, gradient, prediction = loss_value_and_gradient(self.loss, targets, output, self.plan.folded,
                                                              backend=self.backend)
        prediction = self._prediction(prediction, output)
        value += self._penalty()
        if not math.isfinite(value):
            raise NonFiniteStep(f"the loss became {value}", value)
        if not self.arrays:
            return value, prediction
        backward(self.plan, tape, [gradient])
        grads = gradients(self.plan)
        for i, variable in self.regularized:  # d penalty / d w, added to the loss's gradient (Keras's total loss)
            extra = to_backend(variable.regularizer.gradient(to_host(variable.array, backend=self.backend)),
                               backend=self.backend)
            grads[i] = extra if grads[i] is None else vjp(add_n, [grads[i], extra])[0]
        if not all_finite([g for g in grads if g is not None], backend=self.backend):
            key = next(k for k, g in zip(self.keys, grads)  # which one: only now, on the rare failing step
                       if g is not None and not all_finite([g], backend=self.backend))
            raise NonFiniteStep(f"the gradient of {key!r} has a NaN or infinite value (the loss, {value:.6g}, "
                                f"is finite)", value)
        self.optimizer.apply(grads, self.arrays, self.keys)
        return value, prediction

    def evaluate(self, xs, targets):
        """(mean loss, host prediction) of one batch with training=False (the weights' penalties included)."""
        output, _ = self._forward(xs, False)
        value, prediction = loss_value(self.loss, targets, output, self.plan.folded, backend=self.backend)
        return value + self._penalty(), self._prediction(prediction, output)

    def _penalty(self) -> float:
        """The sum of the regularized weights' penalties (their weights as they are before this step's update)."""
        return sum(v.regularizer.penalty(to_host(v.array, backend=self.backend)) for _, v in self.regularized)

    def sync_to_host(self) -> None:
        """Where the run's arrays are not the model's own (cuda): copy weights and optimizer state back."""
        self.plan.sync_to_host()
        if self.optimizer is not None and self.optimizer is not self.model.optimizer:
            self.optimizer.sync_to_host()
