"""The whole gallery as PNG files: what ``miniconv viz`` writes.

    paths = save_gallery("gallery/", model, image)        # {picture name: path}

Without a model, ``train_default_model`` trains Chollet's ch. 5.1 MNIST convnet for a few seconds
(``limit`` images, ``epochs`` epochs, on the cpu backend), which also gives the learning curves.
Without an image, the pictures that need one use an MNIST test digit (and the course's circle).
Images are in [0, 1]; a model that rescales [0, 255] input itself is given the image times 255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._figures import save_figure, to_grayscale

#: Picture name -> what it shows; each becomes ``<name>.png``.
GALLERY: dict[str, str] = {
    "kernels": "the named kernels (the course's five and five more) with their numbers",
    "extraction_circle": "the course's circle: filter (edge) -> detect -> condense",
    "extraction_image": "the image: filter (bottom_sobel) -> detect -> condense",
    "translation_invariance": "a circle and a shifted copy, max-pooled 2x2 four times",
    "two_dots": "two dots close together merge under repeated max pooling; two far apart stay apart",
    "global_average_pooling": "random feature maps and what global average pooling makes of them",
    "augmented_variants": "the image and random variants of it from the augmentation layers (Chollet 5.2.5)",
    "feature_maps": "every convolution and pooling layer's activations for the image",
    "filter_patterns": "gradient ascent on the input for the first filters of a layer",
    "learning_curves": "loss and accuracy per epoch, training vs validation",
    "timeseries_conv1d": "detrend, moving average and Spencer kernels by conv1d on a synthetic weekly series",
    "receptive_field": "each layer's receptive field, drawn on the image and tabulated",
    "grad_cam": "Grad-CAM: where in the image the evidence for the model's top class lies (Chollet 5.4.3)",
}


def course_convnet(seed=None):
    """Chollet's ch. 5.1 MNIST convnet (``miniconv.recipes.mnist.convnet``, what ``miniconv train mnist``
    trains), uncompiled. ``seed`` reseeds miniconv's global generator first (initialisation, shuffling).
    """
    import miniconv
    from miniconv.recipes import mnist

    if seed is not None:
        miniconv.utils.set_random_seed(seed)
    return mnist.convnet(miniconv)


def mnist_arrays(limit=None, path=None, validation=500):
    """((x_train, y_train), (x_val, y_val)) from ``miniconv.datasets.mnist``: images (N, 28, 28, 1) in
    [0, 1]; the first ``limit`` training images and the first ``validation`` test images."""
    from miniconv.datasets import mnist

    (x_train, y_train), (x_test, y_test) = mnist.load_data(path)
    x_train, y_train = x_train[:limit], y_train[:limit]
    x_test, y_test = x_test[:validation], y_test[:validation]
    scale = np.float32(1 / 255)
    return ((x_train[..., None] * scale).astype(np.float32), y_train), ((x_test[..., None] * scale).astype(np.float32), y_test)


def train_default_model(limit=2000, epochs=3, batch_size=64, seed=0, backend="cpu", data=None, log=print):
    """(model, history): ``course_convnet`` trained on the first ``limit`` MNIST images for ``epochs``
    epochs (RMSprop), validated on 500 test images; a few seconds on the cpu backend."""
    import miniconv

    (x, y), validation = mnist_arrays(limit, data)
    model = course_convnet(seed)
    model.compile("rmsprop", "sparse_categorical_crossentropy", metrics=["accuracy"])
    log(f"training {model.name} on {len(x)} MNIST images for {epochs} epoch(s) on the {backend} backend ...")
    with miniconv.use_backend(backend):
        history = model.fit(x, y, epochs=epochs, batch_size=batch_size, validation_data=validation, verbose=0)
    log("  " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in history.history.items()))
    return model, history


def fit_to_model(image, input_shape) -> np.ndarray:
    """An (H, W) or (H, W, C) image in [0, 1] resized (bilinear) and converted to the model's
    (h, w, c): gray for one channel, gray repeated or RGB for three."""
    from PIL import Image

    array = np.asarray(image, np.float32)
    h, w, c = input_shape[-3:]
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if c == 1 and array.ndim == 3:
        array = to_grayscale(array)
    if array.shape[:2] != (h, w):
        channels = [array] if array.ndim == 2 else [array[..., k] for k in range(array.shape[-1])]
        array = np.stack([np.asarray(Image.fromarray(ch.astype(np.float32)).resize((w, h), Image.BILINEAR))
                          for ch in channels], axis=-1)
        array = array[..., 0] if len(channels) == 1 else array
    if array.ndim == 2:
        array = np.repeat(array[..., None], c, axis=-1)
    if array.shape[-1] != c:
        raise ValueError(f"cannot make an image of shape {array.shape} into the model's input (h, w, c) = {(h, w, c)}")
    return array.astype(np.float32)


def load_image(path, input_shape=None) -> np.ndarray:
    """A PNG / JPEG (anything Pillow reads) as float32 in [0, 1]: (H, W, C) as the model needs when
    ``input_shape`` ((None,) h, w, c) is given (gray or RGB, resized), else gray (H, W) or RGB (H, W, 3)."""
    from PIL import Image

    with Image.open(path) as picture:
        gray = input_shape is not None and input_shape[-1] == 1
        if input_shape is None:
            gray = picture.mode in ("1", "L", "I", "I;16", "F", "LA")
        picture = picture.convert("L" if gray else "RGB")
        array = np.asarray(picture, np.float32) / 255.0
    return fit_to_model(array, input_shape) if input_shape is not None else array


def default_image(model, data=None) -> np.ndarray:
    """The first MNIST test digit (a 7), fitted to the model's input."""
    from miniconv.datasets import mnist

    (_, _), (x_test, _) = mnist.load_data(data)
    return fit_to_model(x_test[0].astype(np.float32) / 255.0, model.input_shape)


def gallery_makers(model, image=None, history=None, layer=None, filters=16, steps=40, seed=0, data=None,
                   smooth=False) -> dict:
    """{name: a function that draws that picture (None: cannot, no history)} for every picture of ``GALLERY``.

    model: a built 2-D ``Sequential``; image: (h, w[, c]) in [0, 1] (default an MNIST digit), fed to
    the model in the range it takes (``value_range.input_range``: a model that starts with
    ``Rescaling(1 / 255)`` gets it times 255); history: a ``History``, report dict or report.json path;
    layer: the layer for filter patterns (default the last Conv2D), ``filters`` of them, ``steps`` steps;
    smooth: the learning curves smoothed (True: Chollet's factor 0.8, or a factor), as ``show_learning_curves``.
    """
    from . import augmentation, curves, extraction, feature_maps, gradcam, kernels, pooling, timeseries
    from . import filters as filter_module
    from .receptive_field import show_receptive_field
    from .value_range import to_model_range

    image = default_image(model, data) if image is None else fit_to_model(image, model.input_shape)
    model_image = to_model_range(image, model)
    return {
        "kernels": lambda: kernels.show_kernels(),
        "extraction_circle": lambda: extraction.show_extraction(extraction.circle([64, 64], val=1.0, r_shrink=3), "edge"),
        "extraction_image": lambda: extraction.show_extraction(image, "bottom_sobel"),
        "translation_invariance": lambda: pooling.show_translation_invariance(seed=seed),
        "two_dots": lambda: pooling.show_two_dots(),
        "global_average_pooling": lambda: pooling.show_global_average_pooling(pooling.random_feature_maps(seed=seed)),
        "augmented_variants": lambda: augmentation.show_augmented_variants(image, model=model, seed=seed),
        "feature_maps": lambda: feature_maps.show_feature_maps(model, model_image),
        "filter_patterns": lambda: filter_module.show_filter_patterns(model, layer, filters, steps, seed=seed),
        "learning_curves": (lambda: curves.show_learning_curves(history, smooth=smooth)) if history is not None else None,
        "timeseries_conv1d": lambda: timeseries.show_series_filters(),
        "receptive_field": lambda: show_receptive_field(model, image),
        "grad_cam": lambda: gradcam.show_grad_cam(model, model_image),
    }


def save_gallery(out, model, image=None, history=None, layer=None, filters=16, steps=40, seed=0, dpi=80, data=None,
                 only=None, log=print, smooth=False) -> dict[str, Path]:
    """Write every picture of ``GALLERY`` as ``out/<name>.png`` (and the receptive-field table as
    ``receptive_field.txt``); returns {name: path}.

    Arguments as ``gallery_makers``; only: names from ``GALLERY`` to write (default all).
    """
    unknown = sorted(set(only or ()) - set(GALLERY))
    if unknown:
        raise ValueError(f"unknown picture(s) {unknown}; the gallery has {list(GALLERY)}")
    from .receptive_field import receptive_field

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    makers = gallery_makers(model, image, history, layer, filters, steps, seed, data, smooth)
    written = {}
    for name in GALLERY:
        make = makers[name]
        if only is not None and name not in only:
            continue
        if make is None:
            log(f"  skipped {name}.png: no training history (pass --history report.json)")
            continue
        figure = make()
        written[name] = save_figure(figure, out / f"{name}.png", dpi=dpi)
        log(f"  wrote {written[name]}")
    if only is None or "receptive_field" in only:
        table = out / "receptive_field.txt"
        table.write_text(str(receptive_field(model)) + "\n")
        log(f"  wrote {table}")
    return written
