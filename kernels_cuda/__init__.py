"""The "cuda" backend (Numba CUDA kernels): not implemented yet.

Asking for it raises a clear error; ``miniconv.available_backends()`` does not list it.
"""

raise ImportError("the cuda backend is not implemented yet (kernels_cuda/ is a placeholder)")
