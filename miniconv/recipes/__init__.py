"""The recipes of ``miniconv train NAME``: one small module per course model and its data.

    mnist       Chollet's ch. 5.1 convnet on MNIST (recipes/mnist.py)
    cats-dogs   Chollet's ch. 5.2 convnet on cats vs dogs photos, plain or augmented (recipes/cats_dogs.py)

Each course model is built by one function of its recipe module (``mnist.convnet``,
``cats_dogs.convnet``), which takes the library to build with: ``convnet(miniconv)`` or
``convnet(keras)`` (only the import differs), so the command, the tests, the benchmarks and the
pictures all use the same definition. ``get(name)`` returns a recipe; adding one is a module here
and a line in ``RECIPES``.
"""

from __future__ import annotations

import importlib

from .base import Data, Phase, Recipe, UsageError

# name -> "module:class"
RECIPES = {
    "mnist": "miniconv.recipes.mnist:Mnist",
    "cats-dogs": "miniconv.recipes.cats_dogs:CatsDogs",
}


def get(name: str) -> Recipe:
    """The recipe called ``name``; UsageError naming the known ones otherwise."""
    if name not in RECIPES:
        raise UsageError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
    module, cls = RECIPES[name].split(":")
    return getattr(importlib.import_module(module), cls)()


__all__ = ["RECIPES", "Data", "Phase", "Recipe", "UsageError", "get"]
