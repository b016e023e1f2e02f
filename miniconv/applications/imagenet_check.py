"""Does the pretrained EfficientNet-Lite0 see cats and dogs? ImageNet's top-1 class on a cats-vs-dogs folder.

    python -m miniconv.applications.imagenet_check --data ../shared/data/cats_and_dogs_small

For every image of ``DATA/validation/{cats,dogs}`` (resized to 224x224, bilinear, as
``image_dataset_from_directory`` does, then ``preprocess_input``), the 1000-class prediction's
top class is counted as a hit when it falls in ImageNet's cat family (classes 281-285: tabby,
tiger cat, Persian, Siamese, Egyptian cat) for a cat photo, or its dog family (151-268,
Chihuahua ... Mexican hairless) for a dog photo. Prints the rate per class and overall, and the
most frequent top-1 classes of each folder, so a wrong port (shuffled channels, wrong padding,
wrong normalisation) shows at a glance.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time

import numpy as np

from ..data import image_dataset_from_directory
from .efficientnet_lite0 import EfficientNetLite0, preprocess_input
from .imagenet import CAT_CLASSES, DOG_CLASSES, class_name

FAMILIES = {"cats": CAT_CLASSES, "dogs": DOG_CLASSES}


def top1_classes(model, folder, batch_size=32, limit=None, verbose=1):
    """(top-1 ImageNet class per image, folder label per image, class names) of an image folder."""
    dataset = image_dataset_from_directory(folder, label_mode="int", image_size=(224, 224), batch_size=batch_size,
                                           shuffle=False)
    names = dataset.class_names
    tops, labels = [], []
    total = len(dataset.file_paths) if limit is None else min(limit, len(dataset.file_paths))
    for images, y in dataset:
        probabilities = model.predict(preprocess_input(images), batch_size=batch_size, verbose=0)
        tops.append(probabilities.argmax(axis=1))
        labels.append(np.asarray(y))
        done = sum(len(t) for t in tops)
        if verbose:
            print(f"\r{done}/{total} images", end="", file=sys.stderr, flush=True)
        if done >= total:
            break
    if verbose:
        print(file=sys.stderr)
    return np.concatenate(tops)[:total], np.concatenate(labels)[:total], names


def family_rates(tops, labels, names) -> dict:
    """{folder: (hits, images)} and "overall", a hit being a top-1 class in the folder's ImageNet family."""
    rates = {}
    for index, name in enumerate(names):
        if name not in FAMILIES:
            raise ValueError(f"folder {name!r}: only 'cats' and 'dogs' have an ImageNet family here")
        mine = tops[labels == index]
        rates[name] = (int(np.isin(mine, list(FAMILIES[name])).sum()), int(mine.size))
    rates["overall"] = (sum(h for h, _ in rates.values()), sum(n for _, n in rates.values()))
    return rates


def report(tops, labels, names, seconds) -> str:
    rates = family_rates(tops, labels, names)
    lines = []
    for key, (hits, count) in rates.items():
        family = {"cats": "cat family 281-285", "dogs": "dog family 151-268"}.get(key, "its family")
        lines.append(f"{key:8s} {hits:4d} / {count:4d} = {100 * hits / max(count, 1):5.1f}%  top-1 in {family}")
    for index, name in enumerate(names):
        common = collections.Counter(tops[labels == index].tolist()).most_common(5)
        lines.append(f"most frequent top-1 classes of {name}: " +
                     ", ".join(f"{class_name(c)} ({c}) {n}" for c, n in common))
    lines.append(f"{len(tops)} images in {seconds:.1f} s")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m miniconv.applications.imagenet_check", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="the cats-vs-dogs folder (with validation/cats, validation/dogs)")
    parser.add_argument("--split", default="validation", help="the sub-folder to check (default: validation)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=None, help="only the first N images (in file order)")
    parser.add_argument("--weights", default="imagenet", help="'imagenet' (default) or a weight file")
    args = parser.parse_args(argv)
    folder = os.path.join(args.data, args.split)
    if not os.path.isdir(folder):
        parser.error(f"no such folder: {folder}")
    model = EfficientNetLite0(weights=args.weights)
    start = time.perf_counter()
    tops, labels, names = top1_classes(model, folder, args.batch_size, args.limit)
    print(report(tops, labels, names, time.perf_counter() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
