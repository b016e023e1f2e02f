"""The loss at the end of a training step, on the backend's arrays: value, gradient and prediction.

    value, d_output, prediction = loss_value_and_gradient(loss, targets, output, from_logits)

``loss`` is a ``miniconv.losses.Loss`` (its formulas are there); ``output`` is the model's output
as the backend's array, or its logits when ``from_logits`` (the compiled plan folded the output
activation into the loss, as Keras does). ``value`` is the batch's mean loss (a Python float),
``d_output`` the gradient as the backend's array, ``prediction`` the model's output (the
activation of the logits when folded) as a host array, for the metrics. Targets are the host
arrays ``loss.check_targets`` made. A backend may compute all three where its arrays live (the
cuda backend does for softmax crossentropy); by default they are computed on the host.
"""

from __future__ import annotations

from ..backend import get_backend


def loss_value_and_gradient(loss, targets, output, from_logits: bool, *, backend=None):
    """(mean loss, d loss / d output on the backend, host prediction); see the module docstring."""
    return get_backend(backend).loss_value_and_gradient(loss, targets, output, from_logits)


def loss_value(loss, targets, output, from_logits: bool, *, backend=None) -> tuple[float, object]:
    """(mean loss, host prediction) without the gradient (evaluation)."""
    be = get_backend(backend)
    if from_logits:
        value, _, prediction = be.loss_value_and_gradient(loss, targets, output, True)
        return value, prediction
    prediction = be.to_host(output)
    return float(loss.per_sample(targets, prediction).mean(dtype="float64")), prediction


__all__ = ["loss_value", "loss_value_and_gradient"]
