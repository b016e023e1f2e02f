"""Compiling a model for a run: its graph becomes an ordered list of steps, fusions chosen once.

    plan = compile_plan(model, loss=model.loss)      # what fit runs; compile_plan(model) for predict
    plan.describe()                                  # one line per step: op, layers, slots

One pass, in four moves:

1. **Flatten.** The model's graph (nested models expanded in place, so a frozen base inside a
   model is just more layers) becomes a list of layer calls, each reading and writing numbered
   value *slots* (slot 0.. are the model's inputs).
2. **Fold the loss.** With a crossentropy loss and a softmax / sigmoid output layer, that layer
   runs without its activation and the loss takes the logits, as Keras does
   (``fold_output_activation``).
3. **Fuse.** At each call, the first entry of ``fusion.FUSIONS`` whose chain pattern matches
   replaces the chain by one step (a layer whose output must be seen ends a chain).
4. **Bind.** Every weight of the model becomes a ``Variable``: the array the steps read, on the
   run's backend (the layer's own host array on numpy / cpu, a device copy on cuda).

A ``Step`` is ``forward(x, training) -> (y, pullback)``; ``pullback(dy, input_gradient)`` returns
the input gradient(s) and leaves the weight gradients in ``step.grads``. ``execute.py`` runs them.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field

from ..backend import get_backend
from ..ops.arrays import to_backend
from .fusion import FUSIONS
from .graph import Graph

LOGIT_ACTIVATIONS = ("softmax", "sigmoid")


@dataclass
class Variable:
    """One weight array of the model, as the run's steps read it."""

    layer: object
    index: int  # into layer.params
    name: str  # "conv2d/kernel": the optimizer's key for its state
    array: object  # the backend's array: layer.params[index] itself on host backends
    trainable: bool
    regularizer: object = None  # a miniconv.regularizers.Regularizer whose penalty training adds

    @property
    def host(self):
        return self.layer.params[self.index]


@dataclass
class Call:
    """One layer call of the flattened graph."""

    layer: object
    inputs: tuple[int, ...]
    output: int
    list_input: bool


@dataclass
class Step:
    """One op of the run: ``forward(x, training) -> (y, pullback)``, reading ``inputs``, writing ``output``."""

    op: str  # the op or layer class it runs: "conv2d_bias_relu_max_pool2d", "Flatten", ...
    layers: tuple  # the layers it runs (several for a fusion)
    inputs: tuple[int, ...]
    output: int
    list_input: bool
    call: object  # call(x, weights, training) -> (y, pullback(dy, input_gradient) -> (dx, dweights))
    variables: list = field(default_factory=list)  # the Variables it reads, in the call's order
    grads: list = field(default_factory=list)  # filled by the pullback, aligned with variables

    @property
    def name(self) -> str:
        return "+".join(layer.name for layer in self.layers)

    def forward(self, x, training: bool = False):
        y, pullback = self.call(x, [v.array for v in self.variables], training)

        def step_pullback(dy, input_gradient=True):
            dx, self.grads = pullback(dy, input_gradient=input_gradient)
            return dx

        return y, step_pullback


@dataclass
class Plan:
    """A model compiled for a run on one backend; see the module docstring."""

    steps: list[Step]
    inputs: list[int]
    outputs: list[int]
    variables: list[Variable]
    slot_count: int
    backend: str
    needs_gradient: list[bool]  # per slot: does the loss's gradient have to reach it?
    folded: bool = False  # the output step stops at the logits; the loss applies the activation
    output_activation: str | None = None  # the folded activation ("softmax" / "sigmoid")
    output_op: object = None  # an op giving the model's output from the logits, where the loss's own differs
    last_reads: dict = field(default_factory=dict)  # slot -> index of the last step reading it

    @property
    def trainable_variables(self) -> list[Variable]:
        return [v for v in self.variables if v.trainable]

    def describe(self) -> str:
        lines = []
        for step in self.steps:
            reads = ", ".join(f"v{i}" for i in step.inputs)
            lines.append(f"v{step.output} = {step.op}({reads})    [{step.name}]")
        if self.folded:
            lines.append(f"loss takes v{self.outputs[0]} as logits ({self.output_activation} folded in)")
        return "\n".join(lines)

    def sync_to_host(self) -> None:
        """Copy every variable the run holds off the host back into its layer's array (cuda)."""
        from ..ops.arrays import to_host

        for variable in self.variables:
            if variable.array is not variable.host:
                variable.host[...] = to_host(variable.array, backend=self.backend)


# --- 1. flatten ----------------------------------------------------------------------------------
def flatten(graph: Graph) -> tuple[list[Call], list[int], dict, int]:
    """(calls, input slots, slot of every tensor of the graph by id, slot count); nested models expanded."""
    calls: list[Call] = []
    count = len(graph.inputs)
    inputs = list(range(count))

    def expand(sub: Graph, input_slots: list[int]) -> dict:
        nonlocal count
        slot_of = {id(t): s for t, s in zip(sub.inputs, input_slots)}
        for node in sub.nodes:
            if node.is_input:
                continue
            reads = [slot_of[id(t)] for t in node.inputs]
            inner = node.layer.subgraph()
            if inner is not None:
                inner_slots = expand(inner, reads)
                outs = [inner_slots[id(t)] for t in inner.outputs]
            else:
                outs = [count]
                calls.append(Call(node.layer, tuple(reads), count, node.call_structure == "list"))
                count += 1
            for tensor, slot in zip(node.outputs, outs):
                slot_of[id(tensor)] = slot
        return slot_of

    slot_of = expand(graph, inputs)
    return calls, inputs, slot_of, count


def _prune(calls: list[Call], wanted: set[int]) -> list[Call]:
    """The calls needed to compute the slots ``wanted``, in their order."""
    needed, kept = set(wanted), []
    for c in reversed(calls):
        if c.output in needed:
            kept.append(c)
            needed.update(c.inputs)
    return kept[::-1]


# --- 2. fold the output activation into the loss ------------------------------------------------
def fold_output_activation(call: Call, loss):
    """(folded?, activation name, op giving the model's output from the logits or None).

    Keras takes the logits of any softmax or sigmoid output for any crossentropy (even a sigmoid
    output under categorical crossentropy: it then computes softmax crossentropy of the sigmoid's
    logits), and so do we, to give the same numbers.
    """
    activation = getattr(call.layer, "activation", None)
    if loss is None or loss.logits_activation is None or activation not in LOGIT_ACTIVATIONS:
        return False, None, None
    output_op = call.layer._activation_op if activation != loss.logits_activation else None
    return True, activation, output_op


# --- 3. fuse -------------------------------------------------------------------------------------
def _match(calls, start, pattern, readers, protected, training):
    """The calls of a chain matching ``pattern`` from ``calls[start]``, or None."""
    chain = [calls[start]]
    for predicate in pattern[1:]:
        previous = chain[-1]
        following = readers.get(previous.output, [])
        if previous.output in protected or len(following) != 1 or following[0].list_input:
            return None
        chain.append(following[0])
    return chain if all(p(c.layer, training) for p, c in zip(pattern, chain)) else None


def fuse(calls: list[Call], protected: set[int], skip: set[int], training: bool = False
         ) -> list[tuple[str, list[Call], object]]:
    """(op, calls, call function) per step, in execution order; ``skip``: calls left as they are, neither
    starting nor joining a chain (the output layer whose activation the loss takes);
    ``training``: the plan is fit's (a trainable batch normalization then uses its batch's statistics)."""
    readers: dict[int, list[Call]] = {}
    for c in calls:
        for slot in c.inputs:
            readers.setdefault(slot, []).append(c)
    skipped = {id(calls[i]) for i in skip}
    taken: set[int] = set()
    steps = []
    for i, c in enumerate(calls):
        if id(c) in taken:
            continue
        for fusion in () if i in skip else FUSIONS:
            chain = _match(calls, i, fusion.pattern, readers, protected, training)
            if chain is not None and not any(id(link) in skipped for link in chain):
                taken.update(id(link) for link in chain)
                steps.append((fusion.op, chain, fusion.make(*(link.layer for link in chain))))
                break
        else:
            steps.append((type(c.layer).__name__, [c], c.layer.call))
    return steps


# --- 4. bind, and the whole pass -------------------------------------------------------------------
def _variables(leaves, backend, weights=None) -> dict:
    """id(layer) -> its Variables; ``weights``: backend arrays for every leaf weight (else from the params)."""
    arrays = iter(weights) if weights is not None else None
    table = {}
    for layer in leaves:
        mask, regularizers = layer.trainable_mask, layer.weight_regularizers
        table[id(layer)] = [
            Variable(layer, j, name, next(arrays) if arrays is not None else to_backend(param, backend=backend), mask[j],
                     regularizers[j])
            for j, (param, name) in enumerate(zip(layer.params, layer.weight_names))
        ]
    return table


def compile_plan(model, *, loss=None, outputs=None, input_gradient=False, backend=None, weights=None,
                 training=None) -> Plan:
    """Compile ``model`` (a built Model or Sequential) for a run; see the module docstring.

    loss: the compiled loss when training (its activation fold is decided here); outputs: symbolic
    tensors of the model's graph to compute instead of its outputs (``layer.output``: what
    ``activations`` reads; they end fusion chains); input_gradient: the gradient must reach the
    model's inputs; weights: backend arrays for the model's weights (``model.params`` order)
    instead of the layers' own; training: whether the steps will run with training=True (default:
    when a loss is given, i.e. for fit), which decides whether a batch normalization can be folded.
    """
    training = loss is not None if training is None else bool(training)
    graph = model.subgraph()
    calls, inputs, slot_of, count = flatten(graph)
    wanted = [slot_of[id(t)] for t in (graph.outputs if outputs is None else outputs)]
    calls = _prune(calls, set(wanted))
    folded, activation, output_op = False, None, None
    skip = set()
    if loss is not None and len(wanted) == 1 and calls and calls[-1].output == wanted[0]:
        folded, activation, output_op = fold_output_activation(calls[-1], loss)
        if folded:
            skip.add(len(calls) - 1)
    name = get_backend(backend).name
    table = _variables(model.leaf_layers(), name, weights)
    steps = []
    for op, chain, call in fuse(calls, set(wanted), skip, training):
        if folded and chain[-1] is calls[-1]:
            call = functools.partial(chain[0].layer.call, activation=False)
        variables = [v for link in chain for v in table.get(id(link.layer), [])]
        steps.append(Step(op, tuple(link.layer for link in chain), chain[0].inputs, chain[-1].output,
                          chain[0].list_input, call, variables))
    needs = [False] * count
    for slot in inputs:
        needs[slot] = input_gradient
    for step in steps:
        needs[step.output] = any(v.trainable for v in step.variables) or any(needs[s] for s in step.inputs)
    last_reads = {}
    for i, step in enumerate(steps):
        for slot in step.inputs:
            last_reads[slot] = i
    return Plan(steps, inputs, wanted, [v for vs in table.values() for v in vs], count, name, needs,
                folded, activation, output_op, last_reads)


def count_ops(plan: Plan) -> Counter:
    """How many steps run each op: a quick view of what fused."""
    return Counter(step.op for step in plan.steps)
