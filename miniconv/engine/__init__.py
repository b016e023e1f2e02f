"""The engine: how a model runs. A graph of layer calls becomes an ordered list of steps, once per run.

    tensors.py   SymbolicTensor and Node: the functional API's record of layer calls
    graph.py     the nodes and layers between a model's inputs and outputs, in Keras's order
    fusion.py    the fusion table: which chains of layers run as one fused op
    plan.py      compile_plan: flatten, fold the loss, fuse, bind the weights on the backend
    execute.py   forward over the steps, backward over their pullbacks, the weight gradients

Nothing here imports a kernel: steps call the ops of ``miniconv.nn``, which call the backend.
"""
