"""Pretrained architectures, as ``keras.applications``: ``VGG16`` (``vgg16.preprocess_input``)."""

from . import vgg16
from .vgg16 import VGG16

__all__ = ["VGG16", "vgg16"]
