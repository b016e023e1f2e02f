"""Running a compiled plan: the forward pass over its steps, and the backward pass over their pullbacks.

    outputs, tape = forward(plan, inputs, training)          # inputs: backend arrays, one per model input
    input_grads = backward(plan, tape, [d_output])           # fills each step's weight gradients
    gradients(plan)                                          # the trainable variables' gradients, summed over steps

The backward pass visits the steps in reverse and calls the pullback of each step whose output
received a gradient. It asks for an input gradient only where one is needed (``plan.needs_gradient``:
a trainable weight, or an input asked for, lies upstream), so a network's first layers compute
only their weight gradients and frozen layers below the trained ones are not visited at all. A
value read by several steps (a residual connection) sums their gradients (``ops.add_n``).

The forward pass keeps a step's pullback only where the backward pass can call it (the step's
output needs a gradient); the other steps (a frozen base below the trained layers, during
fine-tuning) run as in inference: their pullbacks are dropped and each value is released after
the last step that reads it, so their activations are not held until the backward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ops import vjp
from ..ops.merge import add_n
from .plan import Plan


@dataclass
class Tape:
    """What the forward pass leaves for the backward pass: one pullback per step."""

    pullbacks: list


def forward(plan: Plan, inputs: list, training: bool = False, keep_tape: bool = True):
    """(output arrays in ``plan.outputs`` order, Tape or None); ``inputs`` are the backend's arrays."""
    values = [None] * plan.slot_count
    for slot, x in zip(plan.inputs, inputs):
        values[slot] = x
    wanted = set(plan.outputs)
    pullbacks = []
    for i, step in enumerate(plan.steps):
        x = [values[s] for s in step.inputs] if step.list_input else values[step.inputs[0]]
        y, pullback = step.forward(x, training)
        values[step.output] = y
        kept = keep_tape and plan.needs_gradient[step.output]
        pullbacks.append(pullback if kept else None)
        if not kept:  # no backward through this step: drop what no later step reads
            for slot in step.inputs:
                if plan.last_reads.get(slot) == i and slot not in wanted:
                    values[slot] = None
    return [values[s] for s in plan.outputs], (Tape(pullbacks) if keep_tape else None)


def _accumulate(pending: dict, slot: int, gradient) -> None:
    if slot in pending:
        pending[slot] = vjp(add_n, [pending[slot], gradient])[0]
    else:
        pending[slot] = gradient


def backward(plan: Plan, tape: Tape, output_gradients: list) -> list:
    """Pull ``output_gradients`` (one per plan output, None for none) back through the steps.

    Returns the gradient of each model input (None where ``needs_gradient`` is False); each
    step's weight gradients are left in ``step.grads``.
    """
    pending: dict = {}
    for slot, gradient in zip(plan.outputs, output_gradients):
        if gradient is not None:
            _accumulate(pending, slot, gradient)
    for step in plan.steps:
        step.grads = [None] * len(step.variables)
    for step, pullback in zip(reversed(plan.steps), reversed(tape.pullbacks)):
        dy = pending.pop(step.output, None)
        if dy is None or pullback is None:
            continue
        wanted = [plan.needs_gradient[s] for s in step.inputs]
        dx = pullback(dy, input_gradient=any(wanted))
        if not any(wanted):
            continue
        for slot, needed, gradient in zip(step.inputs, wanted, dx if step.list_input else [dx]):
            if needed and gradient is not None:
                _accumulate(pending, slot, gradient)
    return [pending.get(slot) for slot in plan.inputs]


def gradients(plan: Plan, variables=None) -> list:
    """The gradient of each of ``variables`` (default: the trainable ones) after ``backward``: None
    where no step gave one, summed over the steps sharing a variable (a layer called twice)."""
    total: dict[int, object] = {}
    for step in plan.steps:
        for variable, gradient in zip(step.variables, step.grads):
            if gradient is None:
                continue
            key = id(variable)
            total[key] = gradient if key not in total else vjp(add_n, [total[key], gradient])[0]
    return [total.get(id(v)) for v in (plan.trainable_variables if variables is None else variables)]
