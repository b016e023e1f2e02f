"""miniconv's benchmarks: ``python -m benchmarks ops`` (op by op against TensorFlow and PyTorch).

Run from the repository root; results go to ``benchmarks/results/``. See ``benchmarks.ops``.
"""
