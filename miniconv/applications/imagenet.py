"""ImageNet's 1000 classes: names, ``decode_predictions`` as Keras's, and the cat and dog families.

    decode_predictions(probabilities, top=5)   # [[("n02123045", "tabby", 0.71), ...], ...] per image
    class_name(281)                            # "tabby"

The class index ships in ``data/imagenet_class_index.json``: byte for byte the file Keras's
``decode_predictions`` downloads (MD5 c2c37ea517e94d9795004a39431a14cb, the hash Keras checks),
``{"0": ["n01440764", "tench"], ...}``: each class's WordNet ID and Keras's short name. Source and
licence: ``data/README.md``.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from importlib import resources

import numpy as np

CLASS_INDEX_FILE = "imagenet_class_index.json"
CLASS_INDEX_SHA256 = "a1e7a966a1f601d39e4b43e119b3e7dd4a2ad3ea08cf69847cbaf021013767bc"
NUM_CLASSES = 1000
# ImageNet's domestic cats (tabby, tiger cat, Persian, Siamese, Egyptian cat) and dogs (Chihuahua ... Mexican hairless)
CAT_CLASSES = range(281, 286)
DOG_CLASSES = range(151, 269)


@lru_cache(maxsize=1)
def class_index() -> dict[int, tuple[str, str]]:
    """{class id: (WordNet ID, name)} for the 1000 classes, read from the package (hash checked)."""
    data = resources.files(__package__).joinpath("data", CLASS_INDEX_FILE).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != CLASS_INDEX_SHA256:
        raise RuntimeError(f"miniconv's {CLASS_INDEX_FILE} is damaged (SHA-256 {digest}, expected {CLASS_INDEX_SHA256});"
                           f" reinstall miniconv")
    index = json.loads(data)
    return {int(k): (v[0], v[1]) for k, v in index.items()}


def class_name(class_id: int) -> str:
    """Keras's short name of an ImageNet class (0-999)."""
    return class_index()[int(class_id)][1]


def decode_predictions(preds, top: int = 5) -> list[list[tuple[str, str, float]]]:
    """Per image, the ``top`` classes as ``(WordNet ID, name, score)``, highest score first, as Keras's.

    ``preds``: (N, 1000) scores (probabilities or logits). Ties keep the lower class id first.
    """
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != NUM_CLASSES:
        raise ValueError(f"decode_predictions expects a batch of predictions (i.e. a 2D array of shape "
                         f"(samples, {NUM_CLASSES})). Received array with shape: {preds.shape}")
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or not 1 <= top <= NUM_CLASSES:
        raise ValueError(f"decode_predictions: top must be an int in [1, {NUM_CLASSES}], got {top!r}")
    index = class_index()
    results = []
    for row in preds:
        order = np.argsort(-row, kind="stable")[:top]
        results.append([(*index[int(i)], row[i]) for i in order])
    return results
