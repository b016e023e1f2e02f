"""``miniconv.data.image_dataset_from_directory`` against Keras 3's on a folder the tests write.

The folder: two classes (``cats``, ``dogs``), JPEG and PNG files of different sizes, an upper-case
extension, a nested sub-folder, a hidden folder and a text file (both ignored, as Keras ignores
them), and one corrupt ``.jpg`` (skipped with one warning; Keras's index lists it, so comparisons
drop it from Keras's lists). Class names, labels, file order (sorted, and shuffled with a seed),
split sizes and label encodings must equal Keras's; pixels equal TF's decode + resize exactly for
PNG and within JPEG's decoder difference (TF's fast IDCT vs Pillow's accurate one) for JPEG.
"""

from __future__ import annotations

import threading
import time
import warnings

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import miniconv
from miniconv import layers
from miniconv.data import ImageDataset, ImageFolderError, image_dataset_from_directory
from miniconv.data import images as image_io

keras = pytest.importorskip("keras")

SIZE = (24, 20)


def _picture(rng, height, width):
    """A smooth random colour image (JPEG-friendly), uint8 (H, W, 3)."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    phases = rng.uniform(0, 6, size=(3, 3))
    channels = [127 + 120 * np.sin(a * 5 * x + b * 3 * y + c) for a, b, c in phases]
    return np.clip(np.stack(channels, -1), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("pets")
    rng = np.random.default_rng(7)
    files = {
        "cats/c01.jpg": (30, 40), "cats/c02.jpg": (41, 33), "cats/c03.png": (17, 25), "cats/c04.png": (24, 20),
        "cats/C05.JPG": (50, 31), "cats/c06.jpg": (28, 28), "cats/c07.png": (33, 44),
        "dogs/d01.jpg": (36, 30), "dogs/d02.png": (22, 38), "dogs/d03.jpg": (45, 45), "dogs/more/d04.png": (19, 27),
        "dogs/more/d05.jpg": (40, 26), "dogs/d06.png": (31, 29),
    }
    for relative, (h, w) in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_picture(rng, h, w)).save(path, quality=90) if path.suffix.lower() == ".jpg" else \
            Image.fromarray(_picture(rng, h, w)).save(path)
    (root / "dogs" / "broken.jpg").write_text("this is not a JPEG\n")
    (root / "cats" / "notes.txt").write_text("ignored: not an image extension\n")
    (root / ".hidden").mkdir()
    Image.fromarray(_picture(rng, 10, 10)).save(root / ".hidden" / "h.png")
    return root


def _load(folder, **kwargs):
    """Ours, with the one warning about broken.jpg recorded."""
    kwargs.setdefault("verbose", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = image_dataset_from_directory(folder, image_size=SIZE, batch_size=4, **kwargs)
    return dataset, [w for w in caught if issubclass(w.category, UserWarning)]


def _keras(folder, **kwargs):
    return keras.utils.image_dataset_from_directory(folder, image_size=SIZE, batch_size=4, verbose=False, **kwargs)


def _good(paths):
    return [p for p in paths if not p.endswith("broken.jpg")]


def _keras_labels(folder, shuffle, seed):
    """Keras's labels in its file order (its index function; its dataset would try to decode broken.jpg)."""
    from keras.src.utils import dataset_utils

    paths, labels, _ = dataset_utils.index_directory(str(folder), "inferred", formats=image_io.ALLOWLIST_FORMATS,
                                                     shuffle=shuffle, seed=seed, verbose=False)
    return {p: int(label) for p, label in zip(paths, labels)}


# --- what Keras would list ---------------------------------------------------------------------
@pytest.mark.parametrize("shuffle, seed", [(False, None), (True, 3), (True, 1234)])
def test_classes_files_and_labels_match_keras(folder, shuffle, seed):
    ours, caught = _load(folder, shuffle=shuffle, seed=seed)
    theirs = _keras(folder, shuffle=shuffle, seed=seed)
    assert ours.class_names == theirs.class_names == ["cats", "dogs"]
    assert ours.file_paths == _good(theirs.file_paths)
    labels = _keras_labels(folder, shuffle, seed)
    assert ours.labels.tolist() == [labels[p] for p in ours.file_paths]
    assert len(ours) == 4  # 13 readable files in batches of 4
    assert len(caught) == 1 and "broken.jpg" in str(caught[0].message) and "notes.txt" not in str(caught[0].message)


def test_sorted_order_is_class_then_path(folder):
    ours, _ = _load(folder, shuffle=False)
    names = [p.split(str(folder))[1] for p in ours.file_paths]
    assert names[:7] == ["/cats/C05.JPG", "/cats/c01.jpg", "/cats/c02.jpg", "/cats/c03.png", "/cats/c04.png",
                         "/cats/c06.jpg", "/cats/c07.png"]
    assert names[7:] == ["/dogs/d01.jpg", "/dogs/d02.png", "/dogs/d03.jpg", "/dogs/d06.png", "/dogs/more/d04.png",
                         "/dogs/more/d05.jpg"]
    _, y = next(iter(ours))
    assert y.tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("split", [0.25, 0.5])
def test_validation_split_matches_keras(folder, split):
    train, val = _load(folder, shuffle=True, seed=11, validation_split=split, subset="both")[0]
    k_train, k_val = _keras(folder, shuffle=True, seed=11, validation_split=split, subset="both")
    assert train.file_paths == _good(k_train.file_paths) and val.file_paths == _good(k_val.file_paths)
    assert not set(train.file_paths) & set(val.file_paths)
    assert len(train.file_paths) + len(val.file_paths) == 13
    alone, _ = _load(folder, shuffle=True, seed=11, validation_split=split, subset="validation")
    assert alone.file_paths == val.file_paths
    assert val.shuffle is False and alone.shuffle is True  # "both": the validation set is never reshuffled (Keras)


def test_class_names_argument_orders_the_labels(folder):
    ours, _ = _load(folder, shuffle=False, class_names=["dogs", "cats"])
    theirs = _keras(folder, shuffle=False, class_names=["dogs", "cats"])
    assert ours.class_names == ["dogs", "cats"] and ours.file_paths == _good(theirs.file_paths)
    assert ours.labels[0] == 0 and ours.file_paths[0].endswith("d01.jpg")
    only, _ = _load(folder, shuffle=False, class_names=["dogs"])
    assert set(only.labels.tolist()) == {0} and len(only.file_paths) == 6


# --- what the batches hold ---------------------------------------------------------------------
def _all(dataset):
    xs, ys = zip(*dataset)
    return np.concatenate(xs), np.concatenate(ys)


@pytest.mark.parametrize("mode, dtype, shape", [("int", np.int32, (13,)), ("binary", np.float32, (13, 1)),
                                                ("categorical", np.float32, (13, 2))])
def test_label_modes_as_keras(folder, mode, dtype, shape):
    ours, _ = _load(folder, shuffle=False, label_mode=mode)
    x, y = _all(ours)
    assert x.shape == (13, *SIZE, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 255
    assert y.dtype == dtype and y.shape == shape
    labels = _keras_labels(folder, False, None)
    expected = np.array([labels[p] for p in ours.file_paths])
    if mode == "int":
        np.testing.assert_array_equal(y, expected)
    elif mode == "binary":
        np.testing.assert_array_equal(y[:, 0], expected)
    else:
        np.testing.assert_array_equal(y, np.eye(2)[expected])


def test_no_labels_and_color_modes(folder):
    images_only, _ = _load(folder, shuffle=False, label_mode=None)
    batch = next(iter(images_only))
    assert isinstance(batch, np.ndarray) and batch.shape == (4, *SIZE, 3)
    # labels=None indexes the whole tree, hidden folders included, as Keras does
    theirs = _keras(folder, shuffle=False, labels=None)
    assert images_only.file_paths == _good(theirs.file_paths) and images_only.class_names is None
    assert images_only.file_paths[0].endswith(".hidden/h.png") and len(images_only.file_paths) == 14
    for mode, channels in (("grayscale", 1), ("rgba", 4)):
        x, _ = _all(_load(folder, shuffle=False, color_mode=mode)[0])
        assert x.shape == (13, *SIZE, channels)
    rgba, _ = _all(_load(folder, shuffle=False, color_mode="rgba")[0])
    assert np.all(rgba[..., 3] == 255)  # opaque files: alpha 255, as TF's decode_image


def _tf_image(path, channels=3):
    """Keras's _load_image_tf: decode_image, then tf.image.resize bilinear."""
    image = tf.image.decode_image(tf.io.read_file(path), channels=channels, expand_animations=False)
    return tf.image.resize(image, SIZE, method="bilinear").numpy()


def test_pixels_match_tensorflow(folder):
    ours, _ = _load(folder, shuffle=False)
    x, _ = _all(ours)
    for image, path in zip(x, ours.file_paths):
        expected = _tf_image(path)
        if path.lower().endswith(".png"):  # lossless: TF's resize formula exactly
            np.testing.assert_allclose(image, expected, atol=1e-3)
        else:  # TF decodes JPEG with libjpeg's fast IDCT, Pillow with the accurate one
            assert np.abs(image - expected).max() <= 8 and np.abs(image - expected).mean() < 1.5


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16_bit_grayscale_png_is_scaled_as_tensorflow(tmp_path, channels):
    """A 16-bit grayscale PNG (Pillow mode "I;16") decodes to value >> 8, as TF's decode_image does
    for uint8; Pillow's convert("L") clips instead (99.6% of these pixels would be 255)."""
    values = np.random.default_rng(16).integers(0, 65536, (9, 11), dtype=np.uint16)
    values[0, :4] = [0, 255, 256, 65535]  # the ends, and the first value that does not fit a byte
    path = tmp_path / "gray16.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as image:
        assert image.mode == "I;16"
    ours = image_io.decode(str(path), channels)
    theirs = tf.io.decode_image(tf.io.read_file(str(path)), channels=channels, expand_animations=False).numpy()
    assert ours.dtype == np.uint8 and ours.shape == (9, 11, channels)
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(ours[..., 0], values >> 8)
    np.testing.assert_allclose(image_io.load_image(str(path), SIZE, channels), tf.image.resize(theirs, SIZE).numpy(),
                               atol=1e-3)


@pytest.mark.parametrize("method", ["bilinear", "nearest"])
@pytest.mark.parametrize("size", [(7, 5), (40, 61), (13, 13)])
def test_resize_is_tensorflows_formula(method, size):
    image = np.random.default_rng(0).integers(0, 256, (13, 17, 3), dtype=np.uint8)
    np.testing.assert_allclose(image_io.resize(image, size, method), tf.image.resize(image, size, method).numpy(),
                               atol=1e-3)


# --- passes, caching, prefetching, corrupt files --------------------------------------------------
def test_each_pass_reshuffles_reproducibly(folder):
    first, _ = _load(folder, shuffle=True, seed=5, label_mode=None)
    second, _ = _load(folder, shuffle=True, seed=5, label_mode=None)
    a1, a2 = (np.concatenate(list(first)) for _ in range(2))
    b1, b2 = (np.concatenate(list(second)) for _ in range(2))
    np.testing.assert_array_equal(a1, b1)
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a1, a2)  # a new order each pass
    key = lambda x: sorted(map(bytes, x.reshape(len(x), -1)))
    assert key(a1) == key(a2)  # the same images
    fixed, _ = _load(folder, shuffle=False, label_mode=None)
    np.testing.assert_array_equal(np.concatenate(list(fixed)), np.concatenate(list(fixed)))


def test_cache_reads_each_file_once(folder, monkeypatch):
    calls = []
    real = image_io.load_image
    monkeypatch.setattr(image_io, "load_image", lambda path, *a: calls.append(path) or real(path, *a))
    cached, _ = _load(folder, shuffle=True, seed=1, cache=True)
    x1, y1 = _all(cached)
    assert len(calls) == 13
    x2, y2 = _all(cached)
    assert len(calls) == 13  # the second pass read no file
    order1, order2 = np.lexsort(x1.reshape(13, -1).T), np.lexsort(x2.reshape(13, -1).T)
    np.testing.assert_array_equal(x1[order1], x2[order2])
    np.testing.assert_array_equal(y1[order1], y2[order2])
    uncached, _ = _load(folder, shuffle=False)
    list(uncached), list(uncached)
    assert len(calls) == 13 + 26


def test_decoding_runs_ahead_a_bounded_number_of_batches(folder, monkeypatch):
    started = []
    lock = threading.Lock()
    real = image_io.load_image

    def counting(path, *args):
        with lock:
            started.append(path)
        return real(path, *args)

    monkeypatch.setattr(image_io, "load_image", counting)
    dataset, _ = _load(folder, shuffle=False)
    dataset.batch_size, dataset.prefetch, dataset.workers = 2, 1, 2
    iterator = iter(dataset)
    next(iterator)
    time.sleep(0.3)  # let the pool do all it may
    assert len(started) == (1 + 1) * 2  # this batch and one ahead, not the whole folder
    rest = list(iterator)
    assert sum(len(x) for x, _ in rest) == 11 and len(started) == 13


def test_truncated_file_found_while_decoding_is_skipped_once(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.fromarray(_picture(np.random.default_rng(i), 30, 30)).save(tmp_path / name / f"{i}.jpg")
    noise = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "b" / "2.jpg")
    whole = (tmp_path / "b" / "2.jpg").read_bytes()
    (tmp_path / "b" / "2.jpg").write_bytes(whole[: len(whole) * 3 // 4])  # header fine, data cut
    dataset, caught = _load(tmp_path, shuffle=False)
    assert not caught and len(dataset.file_paths) == 6
    with pytest.warns(UserWarning, match=r"(?s)skipped 1 file.*b/2\.jpg") as record:
        x, y = _all(dataset)
    assert len([w for w in record if "skipped" in str(w.message)]) == 1
    assert len(x) == len(y) == 5 and len(dataset.file_paths) == 5 and len(dataset) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(_all(dataset)[0]) == 5  # dropped for good: no second warning


# --- errors -----------------------------------------------------------------------------------
def test_missing_empty_and_imageless_folders_are_clear_errors(tmp_path, folder):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        image_dataset_from_directory(tmp_path / "nowhere")
    with pytest.raises(ImageFolderError, match="no sub-folders"):
        image_dataset_from_directory(tmp_path)
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "readme.txt").write_text("no images here")
    with pytest.raises(ImageFolderError, match="no readable images"):
        image_dataset_from_directory(tmp_path, verbose=False)
    (tmp_path / "cats" / "bad.png").write_bytes(b"\x89PNG not really")
    with pytest.warns(UserWarning, match="bad.png"), pytest.raises(ImageFolderError, match="no readable images"):
        image_dataset_from_directory(tmp_path, verbose=False)


@pytest.mark.parametrize("kwargs, message", [
    ({"validation_split": 0.2, "subset": "training"}, "give a seed"),
    ({"validation_split": 0.2}, "together"),
    ({"subset": "training", "seed": 1}, "together"),
    ({"validation_split": 1.5, "subset": "training", "seed": 1}, "between 0 and 1"),
    ({"validation_split": 0.01, "subset": "training", "seed": 1}, "no validation file"),
    ({"label_mode": "sparse"}, "label_mode"),
    ({"color_mode": "cmyk"}, "color_mode"),
    ({"image_size": (0, 10)}, "image_size"),
    ({"interpolation": "lanczos5"}, "interpolation"),
    ({"class_names": ["cats", "birds"]}, "do not match"),
])
def test_bad_arguments(folder, kwargs, message):
    with pytest.raises(ValueError, match=message):
        image_dataset_from_directory(folder, verbose=False, **kwargs)


def test_binary_needs_two_classes(tmp_path):
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        Image.fromarray(_picture(np.random.default_rng(0), 8, 8)).save(tmp_path / name / "x.png")
    with pytest.raises(ImageFolderError, match="exactly 2 classes"):
        image_dataset_from_directory(tmp_path, label_mode="binary", verbose=False)


# --- into fit / evaluate / predict -----------------------------------------------------------------
def _small_model():
    model = miniconv.Sequential([layers.Rescaling(1 / 255, input_shape=(*SIZE, 3)), layers.Conv2D(4, 3, activation="relu"),
                                 layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(1, activation="sigmoid")])
    model.compile("rmsprop", "binary_crossentropy", metrics=["accuracy"])
    return model


def test_fit_evaluate_predict_take_the_dataset(folder):
    miniconv.utils.set_random_seed(0)
    train, val = _load(folder, label_mode="binary", seed=2, validation_split=0.3, subset="both")[0]
    model = _small_model()
    history = model.fit(train, epochs=2, validation_data=val, verbose=0, batch_size=999, shuffle=False)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["val_loss"]) == 2
    x, y = _all(val)
    loss, accuracy = model.evaluate(val, verbose=0)
    np.testing.assert_allclose([loss, accuracy], model.evaluate(x, y, verbose=0), rtol=1e-5)
    assert history.history["val_loss"][-1] == pytest.approx(loss, rel=1e-5)
    np.testing.assert_allclose(model.predict(val, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert model.predict(val, verbose=0).shape == (len(val.file_paths), 1)


def test_dataset_builds_the_model_and_arrays_validate_beside_it(folder):
    train, _ = _load(folder, label_mode="binary", shuffle=False)
    model = miniconv.Sequential([layers.Rescaling(1 / 255), layers.Flatten(), layers.Dense(1, activation="sigmoid")])
    model.compile("rmsprop", "binary_crossentropy", metrics=["accuracy"])
    x, y = _all(train)
    history = model.fit(train, epochs=1, validation_data=(x, y), verbose=0)
    assert model.input_shape == (None, *SIZE, 3)
    assert history.history["val_loss"][0] == pytest.approx(model.evaluate(x, y, verbose=0)[0], rel=1e-5)


def test_fit_refuses_what_keras_refuses_with_a_dataset(folder):
    train, _ = _load(folder, label_mode="binary", shuffle=False)
    model = _small_model()
    with pytest.raises(ValueError, match="y must not be given"):
        model.fit(train, np.zeros(13), verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(train, validation_split=0.2, verbose=0)
    images_only, _ = _load(folder, label_mode=None, shuffle=False)
    with pytest.raises(ValueError, match="without labels"):
        model.fit(images_only, verbose=0)
    batches = iter(list(train))
    with pytest.raises(ValueError, match="generator can be iterated only once"):
        model.fit((b for b in batches), epochs=2, verbose=0)


def test_tf_data_datasets_work_too():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (10, *SIZE, 3)).astype(np.float32)
    y = rng.integers(0, 2, 10).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    model = _small_model()
    model.fit(data, epochs=1, verbose=0)
    np.testing.assert_allclose(model.evaluate(data, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-5)
    assert model.predict(data, verbose=0).shape == (10, 1)


def test_first_keeps_settings(folder):
    dataset, _ = _load(folder, shuffle=True, seed=4, label_mode="categorical")
    head = dataset.first(5)
    assert isinstance(head, ImageDataset) and head.file_paths == dataset.file_paths[:5]
    assert head.labels.tolist() == dataset.labels[:5].tolist() and head.label_mode == "categorical" and len(head) == 2
