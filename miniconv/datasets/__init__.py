"""Datasets as ``keras.datasets`` returns them, shipped inside the package (works offline).

    from miniconv.datasets import mnist
    (x_train, y_train), (x_test, y_test) = mnist.load_data()

``mnist``: the full MNIST (70,000 images), checksummed on every load; see ``datasets.mnist``.
"""

from . import mnist
from .mnist import DatasetError

__all__ = ["DatasetError", "mnist"]
