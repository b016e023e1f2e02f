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
