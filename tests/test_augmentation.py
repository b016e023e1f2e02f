"""The preprocessing and augmentation layers, and the image warp behind them.

The warp (``miniconv.data.augment``) is checked against TensorFlow's ImageProjectiveTransformV3
(what Keras 3's RandomRotation / RandomTranslation / RandomZoom call) for every fill mode and both
interpolations, the Numba kernel against the NumPy reference, a 90-degree rotation and one- and
two-pixel shifts by hand (the fill-mode diagrams of Keras's docs). The layers: Keras's factor
rules, shapes, value ranges, the identity at inference, seeded reproducibility, a different draw
per image, the ranges the draws come from, config round trips and model save / load, and exact
gradients (a dot-product test of the warp's transpose). NumPy cannot reproduce TF's random stream,
so draws are compared by their ranges, never one by one.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

import miniconv
from miniconv import layers
from miniconv.data import augment

keras = pytest.importorskip("keras")

FILL_MODES = ("reflect", "wrap", "constant", "nearest")


def _images(n=6, h=9, w=11, c=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, h, w, c)).astype(np.float32)


def _tf_warp(images, transforms, interpolation, fill_mode, fill_value=0.0):
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=list(images.shape[1:3]), fill_value=fill_value,
        interpolation=interpolation.upper(), fill_mode=fill_mode.upper()).numpy()


def _random_transforms(n, h, w, seed=1):
    rng = np.random.default_rng(seed)
    kinds = [augment.rotation_transforms(rng.uniform(-200, 200, n), h, w),
             augment.translation_transforms(rng.uniform(-2 * w, 2 * w, n), rng.uniform(-2 * h, 2 * h, n)),
             augment.zoom_transforms(rng.uniform(0.2, 3, n), rng.uniform(0.2, 3, n), h, w)]
    projective = kinds[0].copy()
    projective[:, 6:] = rng.uniform(-0.02, 0.02, (n, 2))
    return kinds + [projective]


# --- the warp ------------------------------------------------------------------------------------
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_warp_matches_tensorflow(interpolation, fill_mode):
    x = _images()
    for transforms in _random_transforms(len(x), 9, 11):
        expected = _tf_warp(x, transforms, interpolation, fill_mode, 7.0)
        kernel = augment.affine_transform(x, transforms, interpolation, fill_mode, 7.0)
        reference = augment.affine_transform_reference(x, transforms, interpolation, fill_mode, 7.0)
        np.testing.assert_allclose(kernel, expected, atol=2e-3)
        np.testing.assert_allclose(reference, expected, atol=2e-3)


def test_warp_of_single_pixel_axes():
    x = _images(n=3, h=1, w=5, c=2)
    for transforms in _random_transforms(3, 1, 5):
        for fill_mode in FILL_MODES:
            np.testing.assert_allclose(augment.affine_transform(x, transforms, "bilinear", fill_mode),
                                       _tf_warp(x, transforms, "bilinear", fill_mode), atol=2e-3)


def test_rotation_by_90_degrees_is_rot90():
    x = _images(n=2, h=4, w=4, c=1)
    out = augment.affine_transform(x, augment.rotation_transforms([90.0, -90.0], 4, 4), "bilinear", "constant")
    np.testing.assert_allclose(out[0], np.rot90(x[0]), atol=1e-4)   # positive: counter-clockwise
    np.testing.assert_allclose(out[1], np.rot90(x[1], -1), atol=1e-4)


def test_rotation_fill_modes_on_a_tiny_image():
    """A 3x5 image turned by 90 degrees: the corners come from outside the 3-row input."""
    x = np.arange(15, dtype=np.float32).reshape(1, 3, 5, 1)
    transforms = augment.rotation_transforms([90.0], 3, 5)
    # output pixel (row r, column c) samples input row c - 1, column 3 - r (the centre is (x, y) = (2, 1))
    constant = augment.affine_transform(x, transforms, "nearest", "constant", fill_value=-1.0)[0, :, :, 0]
    nearest = augment.affine_transform(x, transforms, "nearest", "nearest")[0, :, :, 0]
    np.testing.assert_array_equal(constant, [[-1, 3, 8, 13, -1], [-1, 2, 7, 12, -1], [-1, 1, 6, 11, -1]])
    np.testing.assert_array_equal(nearest, [[3, 3, 8, 13, 13], [2, 2, 7, 12, 12], [1, 1, 6, 11, 11]])
    reflect = augment.affine_transform(x, transforms, "nearest", "reflect")[0, :, :, 0]
    wrap = augment.affine_transform(x, transforms, "nearest", "wrap")[0, :, :, 0]
    np.testing.assert_array_equal(reflect, [[3, 3, 8, 13, 13], [2, 2, 7, 12, 12], [1, 1, 6, 11, 11]])
    np.testing.assert_array_equal(wrap, [[13, 3, 8, 13, 3], [12, 2, 7, 12, 2], [11, 1, 6, 11, 1]])
    for fill_mode, got in (("constant", constant), ("nearest", nearest), ("reflect", reflect), ("wrap", wrap)):
        np.testing.assert_array_equal(got, _tf_warp(x, transforms, "nearest", fill_mode, -1.0)[0, :, :, 0])


@pytest.mark.parametrize("shift, expected", [
    (1, {"constant": "kabc", "nearest": "aabc", "reflect": "aabc", "wrap": "dabc"}),
    (2, {"constant": "kkab", "nearest": "aaab", "reflect": "baab", "wrap": "cdab"}),
    (-1, {"constant": "bcdk", "nearest": "bcdd", "reflect": "bcdd", "wrap": "bcda"}),
])
def test_shifts_fill_as_the_keras_docs_draw_it(shift, expected):
    """(d c b a | a b c d | d c b a) reflect, (a b c d | a b c d) wrap, (k k | a b c d | k k) constant."""
    row = np.array([10, 20, 30, 40], np.float32).reshape(1, 1, 4, 1)
    value = {"a": 10, "b": 20, "c": 30, "d": 40, "k": -5}
    transforms = augment.translation_transforms([shift], [0.0])
    for fill_mode, letters in expected.items():
        for interpolation in ("bilinear", "nearest"):
            out = augment.affine_transform(row, transforms, interpolation, fill_mode, fill_value=-5.0)
            np.testing.assert_allclose(out.ravel(), [value[ch] for ch in letters], err_msg=f"{fill_mode} {interpolation}")


def test_warp_transpose_is_exact():
    """<warp(x), dy> == <x, warp^T(dy)> for every fill mode (fill_value 0: the warp is then linear)."""
    rng = np.random.default_rng(3)
    x, dy = _images(n=3, h=6, w=7, c=2), rng.standard_normal((3, 6, 7, 2)).astype(np.float32)
    for transforms in _random_transforms(3, 6, 7):
        for fill_mode in FILL_MODES:
            for interpolation in ("bilinear", "nearest"):
                forward = augment.affine_transform(x, transforms, interpolation, fill_mode)
                back = augment.affine_transform_adjoint(dy, transforms, interpolation, fill_mode)
                assert np.vdot(forward, dy) == pytest.approx(np.vdot(x, back), rel=1e-4)


# --- the layers: Keras's arguments ----------------------------------------------------------------
@pytest.mark.parametrize("make, attribute", [
    (lambda m: m.RandomRotation(0.2), "factor"),
    (lambda m: m.RandomRotation((-0.3, 0.1)), "factor"),
    (lambda m: m.RandomContrast(0.2), "factor"),
    (lambda m: m.RandomContrast((0.1, 0.4)), "factor"),
])
def test_factor_rules_as_keras(make, attribute):
    ours, theirs = make(layers), make(keras.layers)
    assert tuple(getattr(ours, attribute)) == pytest.approx(tuple(getattr(theirs, attribute)))


def test_translation_and_zoom_ranges_as_keras():
    ours, theirs = layers.RandomTranslation((0.3, -0.1), 0.2), keras.layers.RandomTranslation((0.3, -0.1), 0.2)
    assert ours.height_factor == pytest.approx((theirs.height_lower, theirs.height_upper))
    assert ours.width_factor == pytest.approx((theirs.width_lower, theirs.width_upper))
    ours, theirs = layers.RandomZoom(0.2), keras.layers.RandomZoom(0.2)
    assert ours.height_factor == pytest.approx((theirs.height_lower, theirs.height_upper)) and ours.width_factor is None


@pytest.mark.parametrize("make", [
    lambda: layers.RandomRotation(1.5), lambda: layers.RandomRotation((0.1, 0.2, 0.3)),
    lambda: layers.RandomZoom(-1.0), lambda: layers.RandomTranslation(0.1, 2.0),
    lambda: layers.RandomContrast(1.5), lambda: layers.RandomContrast(-0.1),
    lambda: layers.RandomFlip("diagonal"), lambda: layers.RandomRotation(0.1, fill_mode="mirror"),
    lambda: layers.RandomZoom(0.1, interpolation="bicubic"), lambda: layers.Rescaling("half"),
    lambda: layers.RandomShear(-0.1), lambda: layers.RandomShear(1.5), lambda: layers.RandomShear((0.1, -0.2)),
    lambda: layers.RandomShear(0.1, (0.1, 0.2, 0.3)), lambda: layers.RandomShear(0.1, fill_mode="mirror"),
    lambda: layers.RandomWidth(-0.2), lambda: layers.RandomWidth((0.3, 0.1)), lambda: layers.RandomWidth((-1.5, 0.1)),
    lambda: layers.RandomWidth(0.1, interpolation="bicubic"), lambda: layers.RandomWidth((0.1,)),
])
def test_bad_arguments_are_refused(make):
    with pytest.raises(ValueError):
        make()


# --- the layers: behaviour -------------------------------------------------------------------------
ALL_LAYERS = [
    lambda seed=None: layers.RandomFlip("horizontal", seed=seed),
    lambda seed=None: layers.RandomFlip("vertical", seed=seed),
    lambda seed=None: layers.RandomFlip(seed=seed),
    lambda seed=None: layers.RandomRotation(0.2, seed=seed),
    lambda seed=None: layers.RandomTranslation(0.2, 0.3, seed=seed),
    lambda seed=None: layers.RandomZoom(0.3, seed=seed),
    lambda seed=None: layers.RandomZoom((-0.2, 0.4), (0.1, 0.3), fill_mode="constant", seed=seed),
    lambda seed=None: layers.RandomContrast((0.5, 0.5), seed=seed),
    lambda seed=None: layers.RandomShear(0.3, seed=seed),
    lambda seed=None: layers.RandomShear((0.1, 0.4), (0.0, 0.2), fill_mode="nearest", seed=seed),
]


@pytest.mark.parametrize("make", ALL_LAYERS)
def test_shapes_ranges_identity_and_seeds(make):
    x = _images(n=8, h=10, w=12)
    layer = make(seed=4)
    y = layer(x, training=True)
    assert y.shape == x.shape and y.dtype == np.float32
    assert y.min() >= -1e-3 and y.max() <= 255 + 1e-3  # convex combinations of pixels (or 0-fill / clipping)
    assert layer(x, training=False) is not None and np.array_equal(layer(x, training=False), x)  # inference
    assert layer.compute_output_shape((None, 10, 12, 3)) == (None, 10, 12, 3)
    np.testing.assert_array_equal(make(seed=4)(x, training=True), y)           # seeded
    assert not np.array_equal(make(seed=5)(x, training=True), y)              # another seed, other draws
    assert not np.array_equal(layer(x, training=True), y)                     # the next call draws afresh
    miniconv.utils.set_random_seed(9)
    unseeded = make()(x, training=True)
    miniconv.utils.set_random_seed(9)
    np.testing.assert_array_equal(make()(x, training=True), unseeded)         # the global generator


@pytest.mark.parametrize("make", ALL_LAYERS)
def test_each_image_gets_its_own_draw(make):
    x = np.repeat(_images(n=1, h=10, w=12), 16, axis=0)
    y = make(seed=0)(x, training=True)
    assert len({bytes(image) for image in y}) > 1


def test_flip_flips_exactly_the_chosen_images():
    x = _images(n=32)
    for mode, flip in (("horizontal", lambda a: a[:, ::-1]), ("vertical", lambda a: a[::-1]),
                       ("horizontal_and_vertical", lambda a: a[::-1, ::-1])):  # Keras 3: one coin for both axes
        y = layers.RandomFlip(mode, seed=1)(x, training=True)
        flipped = [np.array_equal(out, flip(image)) for out, image in zip(y, x)]
        kept = [np.array_equal(out, image) for out, image in zip(y, x)]
        assert all(f or k for f, k in zip(flipped, kept)) and 0 < sum(flipped) < 32


def test_rotation_angles_cover_the_factor_range():
    layer = layers.RandomRotation(0.1, seed=0)  # +-36 degrees
    t = layer.transforms(4000, 9, 11)
    angles = np.degrees(np.arctan2(t[:, 3], t[:, 0]))
    assert -36.01 < angles.min() < -35 and 35 < angles.max() < 36.01
    np.testing.assert_allclose(t, augment.rotation_transforms(angles, 9, 11), atol=1e-4)


def test_translation_and_zoom_draws_cover_their_ranges():
    t = layers.RandomTranslation(0.2, (0.0, 0.5), seed=0).transforms(4000, 10, 20)
    dy, dx = -t[:, 5], -t[:, 2]
    assert -2.01 < dy.min() < -1.9 and 1.9 < dy.max() < 2.01 and 0 <= dx.min() < 0.2 and 9.8 < dx.max() <= 10
    z = layers.RandomZoom(0.2, seed=0).transforms(4000, 10, 20)
    assert np.array_equal(z[:, 0], z[:, 4]) and 0.8 <= z[:, 0].min() < 0.81 and 1.19 < z[:, 0].max() <= 1.2
    z = layers.RandomZoom(0.2, 0.5, seed=0).transforms(4000, 10, 20)
    assert not np.array_equal(z[:, 0], z[:, 4]) and 0.5 <= z[:, 0].min() < 0.52


def test_zoom_matches_keras_matrix():
    zx, zy = np.array([0.8, 1.3], np.float32), np.array([1.1, 0.7], np.float32)
    keras_layer = keras.layers.RandomZoom(0.5)
    expected = np.asarray(keras_layer._get_zoom_matrix(np.stack([zx, zy], 1), 10, 20))
    np.testing.assert_allclose(augment.zoom_transforms(zx, zy, 10, 20), expected, atol=1e-6)
    expected = np.asarray(keras.layers.RandomTranslation(0.5, 0.5)._get_translation_matrix(np.array([[3.0, -2.0]])))
    np.testing.assert_allclose(augment.translation_transforms([3.0], [-2.0]), expected, atol=1e-6)


def test_layers_equal_keras_given_the_same_draw():
    """Keras's RandomRotation with its transform injected gives our pixels (bilinear, reflect)."""
    x = _images(n=4, h=12, w=10)
    ours = layers.RandomRotation(0.25, seed=3)
    angles = np.random.default_rng(0).uniform(-90, 90, 4)
    theirs = keras.layers.RandomRotation(0.25)
    transformation = {"rotation_matrix": augment.rotation_transforms(angles, 12, 10)}
    expected = np.asarray(theirs.transform_images(x, transformation, training=True))
    got = augment.affine_transform(x, augment.rotation_transforms(angles, 12, 10), ours.interpolation, ours.fill_mode)
    np.testing.assert_allclose(got, expected, atol=2e-3)


# --- RandomShear: Keras 3's layer ----------------------------------------------------------------
@pytest.mark.parametrize("x_factor, y_factor", [(0.2, 0.0), (0.3, (0.1, 0.4)), ((0.5, 0.1), 1.0), (0, 0)])
def test_shear_factor_rules_as_keras(x_factor, y_factor):
    ours, theirs = layers.RandomShear(x_factor, y_factor), keras.layers.RandomShear(x_factor, y_factor)
    assert ours.x_factor == pytest.approx(tuple(theirs.x_factor)) and ours.y_factor == pytest.approx(tuple(theirs.y_factor))
    assert (ours.fill_mode, ours.interpolation, ours.fill_value) == (theirs.fill_mode, theirs.interpolation, 0.0)


def test_shear_matrix_and_pixels_as_keras():
    """Keras's RandomShear with its shear factors injected: the same matrix, and our warp gives its pixels."""
    factors = np.array([[0.1, -0.2], [0.25, 0.05], [-0.4, 0.0], [0.0, 0.3]], np.float32)  # (sx, sy) per image
    transforms = augment.shear_transforms(factors[:, 0], factors[:, 1])
    theirs = keras.layers.RandomShear(0.5, 0.5)
    np.testing.assert_allclose(transforms, np.asarray(theirs._get_shear_matrix(factors)), atol=1e-7)
    # output pixel (x, y) reads the input at (x + sx y, sy x + y): the top row is not moved by sx
    x = _images(n=4, h=9, w=11)
    for fill_mode, interpolation in (("reflect", "bilinear"), ("nearest", "nearest"), ("constant", "bilinear")):
        keras_layer = keras.layers.RandomShear(0.5, 0.5, fill_mode=fill_mode, interpolation=interpolation)
        expected = np.asarray(keras_layer.transform_images(x, {"shear_factor": factors}, training=True))
        got = augment.affine_transform(x, transforms, interpolation, fill_mode)
        np.testing.assert_allclose(got, expected, atol=2e-3, err_msg=fill_mode)
    sheared = augment.affine_transform(x[:1], augment.shear_transforms([2.0], [0.0]), "nearest", "constant")
    np.testing.assert_array_equal(sheared[0, 0], x[0, 0])                    # row 0: unmoved
    np.testing.assert_array_equal(sheared[0, 1, :9], x[0, 1, 2:])            # row 1: read 2 columns to the right


def test_shear_draws_as_keras():
    """One sign per image times both draws, as Keras; the draws' distribution compared with Keras's own."""
    from scipy import stats

    layer = layers.RandomShear((0.1, 0.3), (0.05, 0.2), seed=0)
    t = layer.transforms(4000, 9, 11)
    sx, sy = t[:, 1], t[:, 3]
    assert np.all(np.sign(sx) == np.sign(sy))                                  # one "invert" for both axes
    assert 0.1 <= np.abs(sx).min() < 0.101 and 0.299 < np.abs(sx).max() <= 0.3
    assert 0.05 <= np.abs(sy).min() < 0.051 and 0.199 < np.abs(sy).max() <= 0.2
    assert 0.45 < np.mean(sx < 0) < 0.55
    keras_layer = keras.layers.RandomShear((0.1, 0.3), (0.05, 0.2), seed=0)
    drawn = np.asarray(keras_layer.get_random_transformation(np.zeros((4000, 4, 4, 1), np.float32))["shear_factor"])
    for ours, theirs in ((sx, drawn[:, 0]), (sy, drawn[:, 1])):
        assert stats.ks_2samp(ours, theirs).pvalue > 1e-3
    single = layers.RandomShear(0.2, seed=1).transforms(4000, 9, 11)
    assert -0.2 <= single[:, 1].min() < -0.199 and 0.199 < single[:, 1].max() <= 0.2
    assert np.all(single[:, 3] == 0) and np.all(single[:, [0, 4]] == 1)


# --- RandomWidth: Keras 3's (legacy) layer ---------------------------------------------------------
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("factor", [(0.3, 0.3), (-0.45, -0.45), (0.15, 0.15), (1.0, 1.0)])
def test_width_equals_keras_for_a_fixed_factor(factor, interpolation):
    """A factor pair (f, f) leaves nothing to chance: Keras's RandomWidth and ours give the same array."""
    x = _images(n=3, h=7, w=10)
    theirs = keras._tf_keras.keras.layers.RandomWidth(factor, interpolation=interpolation)
    expected = np.asarray(theirs(x, training=True))
    got = layers.RandomWidth(factor, interpolation=interpolation)(x, training=True)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-4)
    np.testing.assert_array_equal(layers.RandomWidth(factor)(x, training=False), x)


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_resize_width_is_tf_image_resize(interpolation):
    x = _images(n=2, h=5, w=13)
    for width in (1, 4, 12, 13, 14, 29):
        expected = tf.image.resize(x, (5, width), method=interpolation).numpy()
        np.testing.assert_allclose(augment.resize_width(x, width, interpolation), expected, rtol=1e-6, atol=1e-4)


def test_width_draws_one_factor_per_batch():
    layer = layers.RandomWidth(0.2, seed=3)
    x = _images(n=4, h=6, w=20)
    widths = {layer(x, training=True).shape[2] for _ in range(300)}
    assert widths <= set(range(16, 25)) and {16, 23} <= widths  # int(20 * f), f in [0.8, 1.2]
    assert layers.RandomWidth(0.15).compute_output_shape((None, 6, 20, 3)) == (None, 6, None, 3)
    # truncated as TF's cast to int32: 1.27 * 10 = 12.7 -> 12
    assert layers.RandomWidth((0.27, 0.27)).draw_width(10) == 12
    a, b = layers.RandomWidth(0.3, seed=5), layers.RandomWidth(0.3, seed=5)
    np.testing.assert_array_equal(a(x, training=True), b(x, training=True))
    with pytest.raises(ValueError, match="leaves no column"):
        layers.RandomWidth((-1.0, -1.0))(x, training=True)


def test_width_gradient_is_the_transpose():
    x = _images(n=2, h=4, w=9, c=2)
    rng = np.random.default_rng(0)
    for interpolation in ("bilinear", "nearest"):
        layer = layers.RandomWidth((0.4, 0.4), interpolation=interpolation)
        layer.build((None, 4, 9, 2))
        y, backward = layer.forward(x, training=True)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        v = rng.standard_normal(x.shape).astype(np.float32)
        assert np.vdot(augment.resize_width(v, y.shape[2], interpolation), dy) == pytest.approx(np.vdot(v, backward(dy)),
                                                                                                 rel=1e-4)


def test_width_in_a_model_trains_and_round_trips(tmp_path):
    model = miniconv.Sequential([layers.Input((8, 10, 3)), layers.RandomWidth(0.3, seed=2), layers.Conv2D(2, 3),
                                 layers.GlobalAveragePooling2D(), layers.Dense(1, activation="sigmoid")])
    assert model.layers[0].output_shape == (None, 8, None, 3)
    model.compile("rmsprop", "binary_crossentropy")
    x, y = _images(n=8, h=8, w=10), np.arange(8) % 2
    history = model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert all(math.isfinite(v) for v in history.history["loss"])
    model.save(tmp_path / "w.miniconv")
    loaded = miniconv.load_model(tmp_path / "w.miniconv")
    assert loaded.layers[0].get_config() == model.layers[0].get_config()
    assert type(loaded.layers[0]).from_config(loaded.layers[0].get_config()).factor == 0.3


def test_contrast_as_keras_formula():
    x = _images(n=200, h=5, w=6) * 0.5 + 60  # values 60..188: no clipping at factors up to 1.5
    layer = layers.RandomContrast((0.5, 0.5), seed=2)
    y = layer(x, training=True)
    mean = x.mean(axis=(1, 2), keepdims=True)
    factor = ((y - mean) / (x - mean)).reshape(200, -1)
    far = np.abs(x - mean).reshape(200, -1) > 1  # away from the mean, where the ratio is well conditioned
    assert np.all(np.abs(factor - factor[:, :1])[far] < 1e-3)  # one factor per image, all channels
    assert 0.5 <= factor.min() < 0.55 and 1.45 < factor.max() <= 1.5
    clipped = layers.RandomContrast((0, 1), seed=2)(_images(n=50), training=True)
    assert clipped.min() >= 0 and clipped.max() <= 255
    ours = layers.RandomContrast(0.2, seed=0)  # Keras 3: a single factor only raises contrast, [1, 1.2]
    y = ours(x, training=True)
    factor = ((y - mean) / (x - mean)).reshape(200, -1)[far]
    assert factor.min() >= 1 - 1e-3 and factor.max() <= 1.2 + 1e-3


def test_rescaling():
    x = _images()
    np.testing.assert_allclose(layers.Rescaling(1 / 255)(x), x / 255, rtol=1e-6)
    np.testing.assert_allclose(layers.Rescaling(1 / 127.5, offset=-1)(x, training=True), x / 127.5 - 1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layers.Rescaling([1.0, 2.0, 0.5])(x), x * [1.0, 2.0, 0.5], rtol=1e-6)
    np.testing.assert_allclose(keras.layers.Rescaling(1 / 255)(x).numpy(), layers.Rescaling(1 / 255)(x), rtol=1e-6)
    with pytest.raises(ValueError, match="3 channels"):
        miniconv.Sequential([layers.Rescaling([1.0, 2.0], input_shape=(4, 4, 3))])


@pytest.mark.parametrize("make", ALL_LAYERS + [lambda seed=None: layers.Rescaling(0.5, offset=3.0)])
def test_gradients_are_exact(make):
    """backward is the transpose of the layer's linear map (RandomContrast: away from the clip)."""
    x = _images(n=4, h=6, w=7) * 0.3 + 80
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    layer = make(seed=2)
    layer.build((None, 6, 7, 3))
    y, backward = layer.forward(x, training=True)
    dx = backward(dy)
    # the map is affine in x for the drawn transform: compare <J v, dy> with <v, J^T dy> by finite differences
    v = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    again = make(seed=2)
    again.build((None, 6, 7, 3))
    y_plus, _ = again.forward(x + v, training=True)
    assert np.vdot(y_plus - y, dy) == pytest.approx(np.vdot(v, dx), rel=2e-3, abs=1e-2)
    _, identity = layer.forward(x, training=False)
    if not isinstance(layer, layers.Rescaling):
        assert identity(dy) is dy


# --- the layers in models: config, save / load ------------------------------------------------------
@pytest.mark.parametrize("make", ALL_LAYERS + [lambda seed=None: layers.Rescaling([1.0, 0.5, 2.0], offset=-1.0)])
def test_config_round_trip(make):
    layer = make(seed=7)
    config = layer.get_config()
    clone = type(layer).from_config(dict(config))
    assert clone.get_config() == config
    assert layers.registered_class(type(layer).__name__) is type(layer)


def test_model_with_augmentation_saves_and_loads(tmp_path):
    miniconv.utils.set_random_seed(0)
    model = miniconv.Sequential([
        layers.Input((12, 12, 3)), layers.RandomFlip("horizontal"), layers.RandomRotation(0.1, seed=3),
        layers.RandomTranslation(0.2, 0.2, fill_mode="nearest"), layers.RandomZoom(0.2, interpolation="nearest"),
        layers.RandomContrast(0.2), layers.Rescaling(1 / 255), layers.Conv2D(2, 3, activation="relu"),
        layers.Flatten(), layers.Dense(1, activation="sigmoid"),
    ])
    model.compile("rmsprop", "binary_crossentropy", metrics=["accuracy"])
    x, y = _images(n=8, h=12, w=12), np.arange(8) % 2
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "m.miniconv")
    loaded = miniconv.load_model(tmp_path / "m.miniconv", restore_random_state=True)
    assert [type(layer).__name__ for layer in loaded.layers] == [type(layer).__name__ for layer in model.layers]
    assert [layer.get_config() for layer in loaded.layers] == [layer.get_config() for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))  # identity at inference
    # the seeded layer's generator resumes where it was
    np.testing.assert_array_equal(loaded.layers[1].transforms(3, 12, 12), model.layers[1].transforms(3, 12, 12))
    assert math.isfinite(loaded.evaluate(x, y, verbose=0)[0])
