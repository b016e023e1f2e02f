"""``layers.ImageNetPreprocessing``: the pretrained bases' input normalisation as a layer, as
``keras.applications.*.preprocess_input`` is inside a functional model."""

from __future__ import annotations

import numpy as np
import pytest

import miniconv
from miniconv.layers import ImageNetPreprocessing

RNG = np.random.default_rng(0)
IMAGES = RNG.uniform(0, 255, (3, 5, 7, 3)).astype(np.float32)


def test_caffe_mode_is_bgr_minus_the_mean_pixel():
    y, _ = ImageNetPreprocessing("caffe").call(IMAGES, [], training=False)
    expected = np.stack([IMAGES[..., 2] - 103.939, IMAGES[..., 1] - 116.779, IMAGES[..., 0] - 123.68], axis=-1)
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-4)


def test_torch_mode_is_torchvision_normalize_of_x_over_255():
    y, _ = ImageNetPreprocessing("torch").call(IMAGES, [], training=False)
    expected = (IMAGES / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_blocked_computation_gives_the_formulas_bits(dtype):
    """The layer works in blocks of rows with the channel vectors tiled along a row; across several
    blocks (600 rows of 450 values here) and for any input dtype it gives exactly the bits of the
    plain NumPy formula, computed in result_type(x, float32) and cast to float32."""
    x = RNG.uniform(0, 255, (3, 200, 150, 3)).astype(dtype)
    mean, std = np.asarray(ImageNetPreprocessing.TORCH_MEAN, np.float32), np.asarray(ImageNetPreprocessing.TORCH_STD, np.float32)
    torch_y, torch_pullback = ImageNetPreprocessing("torch").call(x, [], training=True)
    caffe_y, _ = ImageNetPreprocessing("caffe").call(x, [], training=False)
    assert torch_y.dtype == caffe_y.dtype == np.float32
    np.testing.assert_array_equal(torch_y, ((x / np.float32(255) - mean) / std).astype(np.float32))
    np.testing.assert_array_equal(caffe_y, (x[..., ::-1] - np.asarray(ImageNetPreprocessing.CAFFE_MEAN_BGR, np.float32))
                                  .astype(np.float32))
    dy = RNG.normal(size=x.shape).astype(np.float32)
    np.testing.assert_array_equal(torch_pullback(dy)[0], dy / (np.float32(255) * std))


@pytest.mark.parametrize("shape", [(0, 4, 4, 3), (2, 0, 4, 3), (2, 4, 0, 3)])
def test_empty_batches_and_images(shape):
    for mode in ImageNetPreprocessing.MODES:
        y, pullback = ImageNetPreprocessing(mode).call(np.zeros(shape, np.float32), [], training=True)
        assert y.shape == shape and y.dtype == np.float32 and pullback(y)[0].shape == shape


@pytest.mark.parametrize("mode", ["caffe", "torch"])
def test_gradient_is_the_transpose(mode):
    """The layer is affine, y = A x + b: <dy, A x> = <A^T dy, x> for any x and dy."""
    layer = ImageNetPreprocessing(mode)
    dy = RNG.normal(size=IMAGES.shape).astype(np.float32)
    y, pullback = layer.call(IMAGES, [], training=True)
    y0, _ = layer.call(np.zeros_like(IMAGES), [], training=True)
    dx, dweights = pullback(dy)
    assert dweights == [] and dx.shape == IMAGES.shape
    np.testing.assert_allclose(np.sum(dy * (y - y0), dtype=np.float64), np.sum(dx * IMAGES, dtype=np.float64),
                               rtol=1e-4)


@pytest.mark.parametrize("mode", ["caffe", "torch"])
def test_saved_and_loaded_with_its_mode(tmp_path, mode):
    inputs = miniconv.Input((5, 7, 3))
    model = miniconv.Model(inputs, ImageNetPreprocessing(mode)(inputs))
    model.save(tmp_path / "m.miniconv")
    loaded = miniconv.load_model(tmp_path / "m.miniconv")
    assert loaded.layers[-1].mode == mode
    np.testing.assert_array_equal(loaded.predict(IMAGES, verbose=0), model.predict(IMAGES, verbose=0))


def test_vgg16_preprocess_input_on_a_symbolic_tensor_is_the_layer():
    from miniconv.applications import vgg16

    inputs = miniconv.Input((5, 7, 3))
    model = miniconv.Model(inputs, vgg16.preprocess_input(inputs))
    assert type(model.layers[-1]).__name__ == "ImageNetPreprocessing"
    np.testing.assert_allclose(model.predict(IMAGES, verbose=0), vgg16.preprocess_input(IMAGES), rtol=1e-6, atol=1e-4)


def test_bad_mode_and_channels_are_named():
    with pytest.raises(ValueError, match=r"mode must be one of \('caffe', 'torch'\), got 'tf'"):
        ImageNetPreprocessing("tf")
    with pytest.raises(ValueError, match=r"expected RGB images \(3 channels, last axis\), got input \(None, 5, 7, 1\)"):
        ImageNetPreprocessing("caffe")(miniconv.Input((5, 7, 1)))


def test_efficientnet_on_its_preprocessing_is_the_model_on_preprocessed_images():
    from miniconv.applications import EfficientNetLite0, efficientnet_lite0

    images = RNG.uniform(0, 255, (2, 40, 48, 3)).astype(np.float32)
    inputs = miniconv.Input((40, 48, 3))
    miniconv.utils.set_random_seed(5)
    inside = EfficientNetLite0(include_top=False, weights=None, pooling="avg",
                               input_tensor=efficientnet_lite0.preprocess_input(inputs))
    miniconv.utils.set_random_seed(5)
    outside = EfficientNetLite0(include_top=False, weights=None, pooling="avg", input_shape=(40, 48, 3))
    assert inside.input_shape == (None, 40, 48, 3) and type(inside.layers[1]).__name__ == "ImageNetPreprocessing"
    assert inside.count_params() == outside.count_params()
    np.testing.assert_allclose(inside.predict(images, verbose=0),
                               outside.predict(efficientnet_lite0.preprocess_input(images), verbose=0), rtol=1e-5,
                               atol=1e-6)
    with pytest.raises(TypeError, match="input_tensor must be a symbolic tensor"):
        EfficientNetLite0(include_top=False, weights=None, input_tensor=images)


@pytest.mark.parametrize("mode", ["caffe", "torch"])
def test_to_keras_computes_the_same(mode):
    pytest.importorskip("keras")
    inputs = miniconv.Input((5, 7, 3))
    model = miniconv.Model(inputs, miniconv.layers.Conv2D(2, 3)(ImageNetPreprocessing(mode)(inputs)))
    theirs = model.to_keras()
    np.testing.assert_allclose(np.asarray(theirs(IMAGES)), model.predict(IMAGES, verbose=0), rtol=1e-5, atol=1e-4)
