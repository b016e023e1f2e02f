"""``image_dataset_from_directory``: a folder of class sub-folders as batches of (images, labels).

    train = image_dataset_from_directory("cats_and_dogs_small/train", image_size=(150, 150),
                                         batch_size=20, label_mode="binary", seed=0, cache=True)
    train.class_names                   # ['cats', 'dogs']: sorted sub-folder names = labels 0, 1
    model.fit(train, epochs=30, validation_data=validation)

Keras's rules (``keras.utils.image_dataset_from_directory``, Keras 3.15), kept exactly:

- Classes are the sorted names of the sub-folders (hidden ones skipped), or ``class_names`` in
  the order given; labels are their indices. Each class folder is walked recursively, files in
  sorted order, keeping .bmp .gif .jpeg .jpg .png (any case). ``file_paths`` are
  ``os.path.join(directory, class, name)``, as Keras gives them.
- ``shuffle=True`` shuffles the whole file list once with ``np.random.RandomState(seed).shuffle``
  (``seed=None``: a seed drawn from miniconv's global generator, where Keras draws from NumPy's),
  *then* ``validation_split`` cuts it: the last ``int(split * n)`` files are the validation set.
  So the same ``seed`` on both calls gives disjoint subsets, and the same file lists as Keras.
  ``shuffle=False`` keeps the sorted order (the split then takes the last class's files).
- Images are float32 in [0, 255], (batch, *image_size, channels); labels int32 (batch,) for
  "int", float32 (batch, 1) for "binary", one-hot float32 (batch, classes) for "categorical";
  ``label_mode=None`` (or ``labels=None``) yields images only.

Where miniconv differs, and why:

- Each pass over a shuffled dataset visits the files in a new random order (a full permutation
  from ``seed``); Keras's ``tf.data`` shuffle uses a buffer of 8 batches, which only mixes
  neighbours. A ``subset="both"`` validation set is never reshuffled, as in Keras.
- A file Pillow cannot read (corrupt, truncated, not an image) is skipped with *one* warning
  naming every such file, where Keras's pipeline fails mid-epoch. Headers are checked when the
  dataset is made (files whose header is fine but whose data is truncated are found, skipped and
  reported when first decoded). Counts and splits are made before skipping, so the good files
  keep Keras's order and subsets.
- A ``validation_split`` too small to give any validation file is an error (Keras silently
  returns every file for validation).
- Resizing: see ``miniconv.data.images`` ("bilinear" and "nearest" are TF's formulas exactly).

Loading: the files of the next ``prefetch`` batches are decoded and resized by a pool of
``workers`` threads while the current batch trains (Pillow and NumPy release the GIL), so memory
holds only those batches however large the folder. ``cache=True`` keeps every decoded image after
it is first read (``n * H * W * C * 4`` bytes), as Keras's ``dataset.cache()``: the second and
later passes read no file.
"""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..utils import global_rng
from . import images as _images

LABEL_MODES = ("int", "binary", "categorical", None)
COLOR_MODES = {"grayscale": 1, "rgb": 3, "rgba": 4}


class ImageFolderError(ValueError):
    """The directory holds no usable images, or the arguments cannot describe a dataset of it."""


def _default_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


class ImageDataset:
    """Batches of (images, labels) read from image files; iterate it, or pass it to fit / evaluate / predict.

    Attributes as Keras's dataset: ``class_names``, ``file_paths``; also ``labels`` (int class
    indices, or None), ``image_size``, ``batch_size``, ``label_mode``. ``len(dataset)`` is the
    number of batches. Make one with ``image_dataset_from_directory``.
    """

    def __init__(self, file_paths, labels, class_names, *, label_mode="int", image_size=(256, 256), color_mode="rgb",
                 batch_size=32, shuffle=False, seed=None, interpolation="bilinear", cache=False, workers=None,
                 prefetch=2):
        self.file_paths = list(file_paths)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int32)
        self.class_names = None if class_names is None else list(class_names)
        self.label_mode = label_mode
        self.image_size = tuple(int(v) for v in image_size)
        self.color_mode = color_mode
        self.channels = COLOR_MODES[color_mode]
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = seed
        self.interpolation = interpolation
        self.cache = bool(cache)
        self.workers = _default_workers() if workers is None else int(workers)
        self.prefetch = int(prefetch)
        self._rng = np.random.default_rng(seed)  # the order of each pass when shuffling
        self._cached: dict[int, np.ndarray] = {}  # index into file_paths -> decoded image
        self._skipped: list[str] = []            # unreadable files found while decoding, not yet dropped
        self.dropped: list[str] = []             # files dropped for good after they failed to decode
        self._lock = threading.Lock()

    # --- what it holds -------------------------------------------------------------------------
    def __len__(self) -> int:
        """Batches per pass (the last one may be short)."""
        return math.ceil(len(self.file_paths) / self.batch_size)

    @property
    def num_samples(self) -> int:
        return len(self.file_paths)

    @property
    def image_shape(self) -> tuple:
        """One image's shape: (*image_size, channels)."""
        return (*self.image_size, self.channels)

    def __repr__(self) -> str:
        classes = "" if self.class_names is None else f", classes {self.class_names}"
        return (f"<ImageDataset: {self.num_samples} files in {len(self)} batches of {self.batch_size}, images "
                f"{self.image_shape}{classes}, label_mode {self.label_mode!r}>")

    def first(self, count: int) -> ImageDataset:
        """A dataset of the first ``count`` files (in this dataset's order), with the same settings."""
        count = max(0, int(count))
        labels = None if self.labels is None else self.labels[:count]
        return ImageDataset(self.file_paths[:count], labels, self.class_names, label_mode=self.label_mode,
                            image_size=self.image_size, color_mode=self.color_mode, batch_size=self.batch_size,
                            shuffle=self.shuffle, seed=self.seed,
                            interpolation=self.interpolation, cache=self.cache, workers=self.workers,
                            prefetch=self.prefetch)

    # --- one image, one batch ------------------------------------------------------------------
    def _load(self, index: int):
        """The decoded image of file ``index``, or None when the file cannot be read."""
        image = self._cached.get(index)
        if image is not None:
            return image
        try:
            image = _images.load_image(self.file_paths[index], self.image_size, self.channels, self.interpolation)
        except _images.decode_errors():
            return None
        if self.cache:
            self._cached[index] = image
        return image

    def _encode_labels(self, labels: np.ndarray) -> np.ndarray:
        if self.label_mode == "int":
            return labels.astype(np.int32)
        if self.label_mode == "binary":
            return labels.astype(np.float32).reshape(-1, 1)
        return np.eye(len(self.class_names), dtype=np.float32)[labels]

    def _assemble(self, indices, images):
        keep = [i for i, image in enumerate(images) if image is not None]
        if len(keep) < len(images):
            bad = [self.file_paths[indices[i]] for i in range(len(images)) if images[i] is None]
            with self._lock:
                self._skipped.extend(bad)
            if not keep:
                return None
        x = np.stack([images[i] for i in keep])
        if self.label_mode is None:
            return x
        return x, self._encode_labels(self.labels[np.asarray(indices)[keep]])

    def _report_skipped(self) -> None:
        """One warning naming the files found unreadable while decoding; they are dropped for good."""
        with self._lock:
            bad, self._skipped = self._skipped, []
        if not bad:
            return
        _warn_skipped(bad, "while decoding")
        self._drop(bad)

    # --- state, for a training run that resumes exactly ------------------------------------------
    def state(self) -> dict:
        """What a resumed run needs to see the same batches: the shuffling generator's state and the
        files dropped so far (JSON-ready)."""
        return {"order": self._rng.bit_generator.state, "dropped": list(self.dropped)}

    def restore(self, state: dict) -> None:
        """Put back a ``state()``: drop the same files (without a new warning), continue the same shuffle."""
        self._drop([path for path in state.get("dropped", []) if path in set(self.file_paths)])
        self._rng.bit_generator.state = state["order"]

    def _drop(self, bad) -> None:
        drop = set(bad)
        self.dropped.extend(path for path in self.file_paths if path in drop)
        keep = [i for i, path in enumerate(self.file_paths) if path not in drop]
        self.file_paths = [self.file_paths[i] for i in keep]
        if self.labels is not None:
            self.labels = self.labels[keep]
        remap = {old: new for new, old in enumerate(keep)}
        self._cached = {remap[old]: image for old, image in self._cached.items() if old in remap}

    # --- iterating -----------------------------------------------------------------------------
    def __iter__(self):
        """One pass: (x, y) batches (x alone when label_mode is None), reshuffled each pass when shuffling."""
        n = len(self.file_paths)
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        return self._batches(order)

    def _batches(self, order):
        batch_size = self.batch_size
        starts = range(0, len(order), batch_size)
        if self.cache and len(self._cached) == len(order):  # everything decoded: no threads needed
            for start in starts:
                indices = order[start:start + batch_size]
                batch = self._assemble(indices, [self._cached[i] for i in indices])
                yield batch
            return
        window = (self.prefetch + 1) * batch_size  # images decoding or decoded ahead of the consumer
        executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="miniconv-images")
        pending: deque = deque()
        submitted = 0
        try:
            for start in starts:
                stop = min(start + batch_size, len(order))
                while submitted < min(stop + window - batch_size, len(order)):
                    pending.append(executor.submit(self._load, int(order[submitted])))
                    submitted += 1
                images = [pending.popleft().result() for _ in range(stop - start)]
                batch = self._assemble(order[start:stop], images)
                if batch is not None:
                    yield batch
        finally:
            for future in pending:
                future.cancel()
            executor.shutdown(wait=True, cancel_futures=True)
            self._report_skipped()


def _warn_skipped(paths, when: str) -> None:
    listing = "\n  ".join(paths)
    warnings.warn(f"image_dataset_from_directory: skipped {len(paths)} file(s) that are not readable images "
                  f"(found {when}):\n  {listing}", UserWarning, stacklevel=3)


# --- finding the files (Keras's index_directory) ----------------------------------------------------
def _walk_files(folder: str, follow_links: bool) -> list[str]:
    """Image files under ``folder`` (recursively), as paths relative to it: directories in sorted order,
    files sorted within each, as Keras's ``iter_valid_files``."""
    found = []
    for root, _, files in sorted(os.walk(folder, followlinks=follow_links), key=lambda entry: entry[0]):
        for name in sorted(files):
            if name.lower().endswith(_images.ALLOWLIST_FORMATS):
                found.append(os.path.relpath(os.path.join(root, name), folder))
    return found


def index_directory(directory, labels="inferred", class_names=None, shuffle=True, seed=None, follow_links=False):
    """(file_paths, labels or None, class_names) as Keras's ``dataset_utils.index_directory``; shuffled
    with ``np.random.RandomState(seed)`` when ``shuffle`` (seed must then be an int)."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        what = "does not exist" if not os.path.exists(directory) else "is not a directory"
        raise FileNotFoundError(f"image_dataset_from_directory: {directory!r} {what}")
    if labels == "inferred":
        subdirs = [name for name in sorted(os.listdir(directory))
                   if os.path.isdir(os.path.join(directory, name)) and not name.startswith(".")]
        if class_names is not None:
            if not set(class_names).issubset(subdirs):
                raise ImageFolderError(f"image_dataset_from_directory: class_names {list(class_names)} do not match the "
                                       f"sub-folders of {directory!r}: expected some of {subdirs}")
            subdirs = list(class_names)
        if not subdirs:
            raise ImageFolderError(f"image_dataset_from_directory: {directory!r} has no sub-folders; with "
                                   f"labels='inferred' each class needs its own folder (e.g. {directory}/cats/...)")
    else:
        subdirs = [""]
    paths, label_list = [], []
    for index, subdir in enumerate(subdirs):
        for relative in _walk_files(os.path.join(directory, subdir), follow_links):
            paths.append(os.path.join(directory, subdir, relative))
            label_list.append(index)
    if labels == "inferred":
        label_array = np.asarray(label_list, dtype=np.int32)
        names = subdirs
    elif labels is None:
        label_array, names = None, None
    else:
        if len(labels) != len(paths):
            raise ImageFolderError(f"image_dataset_from_directory: got {len(labels)} labels for the {len(paths)} image "
                                   f"files in {directory!r}")
        label_array = np.asarray(labels, dtype=np.int32)
        names = [str(label) for label in sorted(set(labels))]
    if shuffle:
        np.random.RandomState(seed).shuffle(paths)
        if label_array is not None:
            np.random.RandomState(seed).shuffle(label_array)
    return paths, label_array, names


def split(paths, labels, validation_split, subset):
    """The training or validation part, as Keras's ``get_training_or_validation_split``: the last
    ``int(validation_split * n)`` files are the validation set."""
    if not validation_split:
        return paths, labels
    count = int(validation_split * len(paths))
    if count == 0:
        raise ImageFolderError(f"image_dataset_from_directory: validation_split={validation_split} of {len(paths)} "
                               f"files gives no validation file")
    if subset == "training":
        return paths[:-count], None if labels is None else labels[:-count]
    return paths[-count:], None if labels is None else labels[-count:]


def _check_headers(paths, workers: int) -> list[str]:
    """The files whose header Pillow cannot read (checked in parallel)."""
    errors = _images.decode_errors()

    def bad(path):
        try:
            _images.check_header(path)
        except errors:
            return True
        return False

    with ThreadPoolExecutor(max_workers=workers) as executor:
        flags = list(executor.map(bad, paths, chunksize=64))
    return [path for path, flag in zip(paths, flags) if flag]


def _without(paths, labels, bad: set):
    keep = [i for i, path in enumerate(paths) if path not in bad]
    return [paths[i] for i in keep], None if labels is None else labels[keep]


def _check_arguments(labels, label_mode, class_names, color_mode, image_size, batch_size, validation_split, subset,
                     shuffle, seed, interpolation):
    def fail(message):
        raise ValueError(f"image_dataset_from_directory: {message}")

    if labels not in ("inferred", None):
        if not isinstance(labels, (list, tuple, np.ndarray)):
            fail(f"labels must be 'inferred', None, or a list of integer labels (one per file), got {labels!r}")
        if class_names:
            fail("class_names can only be given with labels='inferred'")
    if label_mode not in LABEL_MODES:
        fail(f"label_mode must be one of {LABEL_MODES}, got {label_mode!r}")
    if color_mode not in COLOR_MODES:
        fail(f"color_mode must be one of {tuple(COLOR_MODES)}, got {color_mode!r}")
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    if (not isinstance(image_size, (list, tuple)) or len(image_size) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in image_size)):
        fail(f"image_size must be (height, width), two positive ints, got {image_size!r}")
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        fail(f"batch_size must be a positive int, got {batch_size!r} (unbatched datasets are not supported)")
    if not isinstance(interpolation, str) or interpolation.lower() not in _images.INTERPOLATIONS:
        fail(f"interpolation must be one of {_images.INTERPOLATIONS}, got {interpolation!r}")
    if validation_split and not 0 < validation_split < 1:
        fail(f"validation_split must be between 0 and 1, got {validation_split!r}")
    if bool(validation_split) != bool(subset):
        fail("subset and validation_split must be given together")
    if subset not in ("training", "validation", "both", None):
        fail(f"subset must be 'training', 'validation' or 'both', got {subset!r}")
    if validation_split and shuffle and seed is None:
        fail("with validation_split and shuffle=True, give a seed, so that the training and validation subsets "
             "(made by two calls with the same seed) do not overlap")
    if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0):
        fail(f"seed must be a non-negative int, got {seed!r}")
    return tuple(int(v) for v in image_size), interpolation.lower()


def image_dataset_from_directory(directory, labels="inferred", label_mode="int", class_names=None, color_mode="rgb",
                                 batch_size=32, image_size=(256, 256), shuffle=True, seed=None, validation_split=None,
                                 subset=None, interpolation="bilinear", follow_links=False, crop_to_aspect_ratio=False,
                                 pad_to_aspect_ratio=False, data_format=None, verbose=True, cache=False,
                                 workers=None, prefetch=2):
    """An ``ImageDataset`` of the images under ``directory``, as ``keras.utils.image_dataset_from_directory``
    (see this module's docstring); with ``subset="both"``, a (training, validation) pair.

    Extra arguments: ``cache`` (keep decoded images in memory after the first pass), ``workers``
    (decoding threads, default min(4, cores)), ``prefetch`` (batches decoded ahead, default 2).
    """
    if crop_to_aspect_ratio or pad_to_aspect_ratio:
        raise ValueError("image_dataset_from_directory: crop_to_aspect_ratio / pad_to_aspect_ratio are not supported")
    if data_format not in (None, "channels_last"):
        raise ValueError(f"image_dataset_from_directory: only data_format='channels_last' is supported, got {data_format!r}")
    image_size, interpolation = _check_arguments(labels, label_mode, class_names, color_mode, image_size, batch_size,
                                                 validation_split, subset, shuffle, seed, interpolation)
    if labels is None or label_mode is None:
        labels = label_mode = None
    if seed is None:
        seed = int(global_rng().integers(1_000_000))  # Keras: np.random.randint(1e6)
    seed = int(seed)
    paths, label_array, names = index_directory(directory, labels, class_names, shuffle, seed, follow_links)
    if label_mode == "binary" and len(names) != 2:
        raise ImageFolderError(f"image_dataset_from_directory: label_mode='binary' needs exactly 2 classes, found "
                               f"{len(names)}: {names}")
    if verbose:
        print(f"Found {len(paths)} files" + ("." if names is None else f" belonging to {len(names)} classes."))
    workers = _default_workers() if workers is None else int(workers)
    subsets = ["training", "validation"] if subset == "both" else [subset]
    parts = [split(paths, label_array, validation_split, part) for part in subsets]
    bad = _check_headers([p for part_paths, _ in parts for p in part_paths], workers)
    if bad:
        _warn_skipped(bad, "when listing the folder")
    datasets = []
    for part, (part_paths, part_labels) in zip(subsets, parts):
        part_paths, part_labels = _without(part_paths, part_labels, set(bad))
        if verbose and validation_split:
            print(f"Using {len(part_paths)} files for {part}.")
        if not part_paths:
            where = f" for {part}" if part else ""
            raise ImageFolderError(f"image_dataset_from_directory: no readable images{where} in {directory!r} "
                                   f"(allowed formats: {', '.join(_images.ALLOWLIST_FORMATS)})")
        datasets.append(ImageDataset(part_paths, part_labels, names, label_mode=label_mode, image_size=image_size,
                                     color_mode=color_mode, batch_size=batch_size,
                                     shuffle=shuffle and not (subset == "both" and part == "validation"), seed=seed,
                                     interpolation=interpolation, cache=cache, workers=workers, prefetch=prefetch))
    return tuple(datasets) if subset == "both" else datasets[0]


__all__ = ["ImageDataset", "ImageFolderError", "image_dataset_from_directory", "index_directory", "split"]
