"""Grad-CAM (Chollet 5.4.3): the heatmap equals the gradient-weighted channel mean computed by hand,
with TensorFlow's GradientTape on the same model converted to Keras."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import miniconv
from miniconv import layers, viz


def small_classifier(outputs=3, activation="softmax", seed=4):
    miniconv.utils.set_random_seed(seed)
    return miniconv.Sequential([
        layers.Input((16, 14, 3)),
        layers.Rescaling(1 / 255),
        layers.Conv2D(6, 3, activation="relu", name="c1"),
        layers.MaxPooling2D(2),
        layers.Conv2D(8, 3, activation="relu", name="c2"),
        layers.Flatten(),
        layers.Dense(outputs, activation=activation),
    ])


def by_hand(model, image, layer_name, class_index, sign=1.0):
    """weights = mean of d y_c / d A over the map; relu(A . weights), normalised: with Keras's GradientTape."""
    import keras

    keras_model = model.to_keras()
    inputs = keras.Input(image.shape)  # the Sequential's layers called again, keeping the chosen layer's tensor
    x, chosen = inputs, None
    for keras_layer in keras_model.layers:
        x = keras_layer(x)
        chosen = x if keras_layer.name == layer_name else chosen
    grad_model = keras.Model(inputs, [chosen, x])
    with tf.GradientTape() as tape:
        activation, prediction = grad_model(image[None])
        score = sign * prediction[:, class_index]
    gradient = tape.gradient(score, activation)[0].numpy()
    weights = gradient.mean(axis=(0, 1))
    heatmap = np.maximum(activation[0].numpy() @ weights, 0)
    return heatmap / heatmap.max() if heatmap.max() > 0 else heatmap


@pytest.mark.parametrize("layer", ["c2", "c1"])
def test_heatmap_is_the_gradient_weighted_channel_mean(layer):
    model = small_classifier()
    image = np.random.default_rng(0).uniform(0, 255, (16, 14, 3)).astype(np.float32)
    top = int(np.argmax(model.predict(image[None], verbose=0)))
    heatmap, index = viz.grad_cam(model, image, layer=layer)
    assert index == top and heatmap.shape == model.get_layer(layer).output_shape[1:3]
    assert heatmap.max() == pytest.approx(1.0) and heatmap.min() >= 0
    np.testing.assert_allclose(heatmap, by_hand(model, image, layer, top), rtol=1e-4, atol=1e-5)
    other = (top + 2) % 3  # a class whose heatmap is not all zero here
    other_map = viz.grad_cam(model, image, class_index=other, layer=layer)[0]
    assert other_map.max() == pytest.approx(1.0) and not np.allclose(other_map, heatmap)
    np.testing.assert_allclose(other_map, by_hand(model, image, layer, other), rtol=1e-4, atol=1e-5)


def test_a_sigmoid_model_and_its_other_class():
    model = small_classifier(outputs=1, activation="sigmoid", seed=3)  # both heatmaps nonzero for this image
    image = np.random.default_rng(1).uniform(0, 255, (16, 14, 3)).astype(np.float32)
    heatmap, index = viz.grad_cam(model, image)  # the last spatial layer by default: c2
    other = viz.grad_cam(model, image, negative=True)[0]
    assert index == 0 and heatmap.max() == other.max() == pytest.approx(1.0)
    assert not np.allclose(heatmap, other)
    np.testing.assert_allclose(heatmap, by_hand(model, image, "c2", 0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(other, by_hand(model, image, "c2", 0, -1.0), rtol=1e-4, atol=1e-5)


def test_the_figure_keeps_its_arrays():
    model = small_classifier()
    photo = np.random.default_rng(2).uniform(0, 255, (16, 14, 3)).astype(np.float32)
    figure = viz.show_grad_cam(model, photo, class_name="a class")
    assert figure.overlay.shape == (16, 14, 3) and 0 <= figure.overlay.min() and figure.overlay.max() <= 1
    np.testing.assert_array_equal(figure.heatmap, viz.grad_cam(model, photo)[0])
    with pytest.raises(ValueError, match=r"class_index must be an int in \[0, 2\]"):
        viz.grad_cam(model, photo, class_index=3)


def test_the_gallery_picture_is_the_model_top_class_heatmap_on_the_image_as_the_model_takes_it():
    """``miniconv viz`` draws Grad-CAM for the model's top class; a model that rescales [0, 255] itself
    is given the [0, 1] image times 255."""
    from miniconv.viz import gallery

    model = small_classifier()
    image = np.random.default_rng(3).uniform(0, 1, (16, 14, 3)).astype(np.float32)
    figure = gallery.gallery_makers(model, image)["grad_cam"]()
    heatmap, class_index = viz.grad_cam(model, image * 255)
    np.testing.assert_array_equal(figure.heatmap, heatmap)
    assert figure.class_index == class_index == int(np.argmax(model.predict(image[None] * 255, verbose=0)))


def test_a_layer_inside_a_nested_base_gives_the_heatmap_of_the_flat_model():
    """A pretrained base under a head (the transfer recipes' models): Grad-CAM on a layer inside the
    base equals Grad-CAM on the same layers called as one flat model (shared layers, same weights)."""
    miniconv.utils.set_random_seed(6)
    base_in = miniconv.Input((16, 14, 3))
    x = base_in
    for layer in (layers.Conv2D(6, 3, activation="relu", name="c1"), layers.MaxPooling2D(2),
                  layers.Conv2D(8, 3, activation="relu", name="c2"), layers.GlobalAveragePooling2D()):
        x = layer(x)
    base = miniconv.Model(base_in, x, name="base")
    rescale, dense1, dense2 = layers.Rescaling(1 / 255), layers.Dense(5, activation="relu"), layers.Dense(3, activation="softmax")
    inputs = miniconv.Input((16, 14, 3))
    nested = miniconv.Model(inputs, dense2(dense1(base(rescale(inputs)))))
    flat_in = miniconv.Input((16, 14, 3))
    x = rescale(flat_in)
    for layer in base.layers[1:]:
        x = layer(x)
    flat = miniconv.Model(flat_in, dense2(dense1(x)))
    image = np.random.default_rng(5).uniform(0, 255, (16, 14, 3)).astype(np.float32)
    for layer in ("c2", "c1"):
        for class_index in range(3):
            ours, index = viz.grad_cam(nested, image, class_index=class_index, layer=layer)
            np.testing.assert_allclose(ours, viz.grad_cam(flat, image, class_index=class_index, layer=layer)[0],
                                       rtol=1e-5, atol=1e-6)
            assert index == class_index
    assert viz.last_conv_layer(nested).name == "c2"  # the base's last spatial layer, by default
    np.testing.assert_array_equal(viz.grad_cam(nested, image)[0], viz.grad_cam(nested, image, layer="c2")[0])
    with pytest.raises(ValueError, match="no layer 'c9' in"):
        viz.grad_cam(nested, image, layer="c9")
