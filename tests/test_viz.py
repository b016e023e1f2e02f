"""miniconv.viz: every picture's panels and titles, the numbers behind it, and ``miniconv viz``.

Figures render with matplotlib's Agg canvas; the numbers are checked against ``miniconv.nn``,
plain NumPy and hand-computed cases (receptive fields also against the gradient's support).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import miniconv
from miniconv import layers, nn, viz
from miniconv.viz import gallery

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz"


# --- helpers -------------------------------------------------------------------------------------
def all_axes(figure) -> list:
    """Every Axes of a figure, its subfigures' included, in drawing order."""
    found = list(figure.axes)
    for sub in getattr(figure, "subfigs", []):
        found += [a for a in all_axes(sub) if a not in found]
    return found


def titles(figure) -> list[str]:
    return [axes.get_title() or axes.get_title(loc="left") for axes in all_axes(figure)]


def png_pixels(figure) -> np.ndarray:
    """The figure as a saved PNG, read back as an (H, W, 4) float array."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=50)
    buffer.seek(0)
    return matplotlib.image.imread(buffer, format="png")


def assert_not_blank(pixels: np.ndarray) -> None:
    assert pixels.ndim == 3 and pixels.shape[0] > 50 and pixels.shape[1] > 50
    assert pixels[..., :3].var() > 1e-3, "the picture is (nearly) one colour"


def maxpool2x2(x: np.ndarray) -> np.ndarray:
    """2x2 stride-2 SAME max pooling of an (H, W) array in plain NumPy (odd sizes padded with -inf)."""
    h, w = x.shape
    padded = np.full((h + h % 2, w + w % 2), -np.inf, np.float32)
    padded[:h, :w] = x
    return padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2).max(axis=(1, 3))


def correlate2d_valid(x: np.ndarray, k: np.ndarray, stride: int = 1) -> np.ndarray:
    r, s = k.shape
    out = np.array([[np.sum(x[i:i + r, j:j + s] * k) for j in range(x.shape[1] - s + 1)] for i in range(x.shape[0] - r + 1)])
    return out[::stride, ::stride]


@pytest.fixture(scope="module")
def digit() -> np.ndarray:
    """The first MNIST test image (a 7), (28, 28) in [0, 1]."""
    try:
        from miniconv.datasets import mnist

        x_test = mnist.load_data()[1][0]
    except (ImportError, FileNotFoundError):
        with np.load(SHARED_MNIST) as data:
            x_test = data["x_test"]
    return x_test[0].astype(np.float32) / 255


@pytest.fixture(scope="module")
def trained():
    """(model, history): the course convnet after a short training (256 images, 2 epochs)."""
    model, history = gallery.train_default_model(limit=256, epochs=2, seed=0, log=lambda *_: None)
    return model, history


# --- 1. kernels ----------------------------------------------------------------------------------
def test_course_kernels_have_the_course_values():
    k = viz.KERNELS
    assert list(k)[:5] == list(viz.COURSE_KERNELS) == ["edge", "bottom_sobel", "emboss", "sharpen", "blur"]
    assert list(k)[5:] == ["laplacian", "box_blur", "edge_enhance", "vertical_sobel", "line_detector"]
    np.testing.assert_array_equal(k["edge"], [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]])
    np.testing.assert_array_equal(k["bottom_sobel"], [[-1, -2, -1], [0, 0, 0], [1, 2, 1]])
    np.testing.assert_array_equal(k["emboss"], [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
    np.testing.assert_array_equal(k["sharpen"], [[0, -1, 0], [-1, 5, -1], [0, -1, 0]])
    np.testing.assert_array_equal(k["blur"], np.outer([1, 2, 1], [1, 2, 1]) / 16)
    np.testing.assert_allclose(viz.BOX_BLUR, np.ones((3, 3)) / 9)
    assert all(kernel.dtype == np.float32 and not kernel.flags.writeable for kernel in k.values())
    with pytest.raises(ValueError, match="unknown kernel"):
        viz.get_kernel("gaussian")
    with pytest.raises(ValueError, match="2-D"):
        viz.get_kernel(np.ones(3))


def test_the_other_named_kernels_do_what_their_names_say():
    k = viz.KERNELS
    ramp = np.add.outer(np.arange(9.0) ** 2, np.arange(11.0) ** 2).astype(np.float32)  # f = y^2 + x^2: Laplacian 4
    np.testing.assert_allclose(viz.extraction_stages(ramp, "laplacian")["Filter"], 4.0, atol=1e-4)
    np.testing.assert_array_equal(k["laplacian"], [[0, 1, 0], [1, -4, 1], [0, 1, 0]])
    image = np.random.default_rng(0).random((7, 8)).astype(np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(image, (3, 3)).mean(axis=(2, 3))
    np.testing.assert_allclose(viz.extraction_stages(image, "box_blur")["Filter"], windows, rtol=1e-5)
    assert k["box_blur"] is viz.BOX_BLUR
    from PIL import ImageFilter

    size, scale, _, weights = ImageFilter.EDGE_ENHANCE.filterargs  # Pillow's "edge enhance"
    np.testing.assert_allclose(k["edge_enhance"], np.reshape(weights, size) / scale)
    np.testing.assert_allclose(k["edge_enhance"], np.pad([[1.0]], 1) + viz.EDGE / 2)  # identity + edge / 2
    np.testing.assert_array_equal(k["vertical_sobel"], viz.BOTTOM_SOBEL.T)
    step = np.zeros((6, 8), np.float32)
    step[:, 4:] = 1  # a vertical edge between columns 3 and 4
    vertical = viz.extraction_stages(step, "vertical_sobel")["Filter"]
    assert np.all(vertical[:, 2:4] == 4) and np.all(np.delete(vertical, [2, 3], axis=1) == 0)
    assert np.all(viz.extraction_stages(step.T, "vertical_sobel")["Filter"] == 0)  # a horizontal edge: nothing
    # the course's exercise: a vertical line and a short horizontal one; the kernel keeps the vertical line
    course_image = np.array([[0, 1, 0, 0, 0, 0]] * 4 + [[0, 1, 0, 1, 1, 1], [0, 1, 0, 0, 0, 0]], np.float32)
    detected = viz.extraction_stages(course_image, "line_detector")["Detect"]
    expected = np.zeros((5, 5), np.float32)
    expected[:, 1] = 2
    np.testing.assert_array_equal(detected, expected)
    assert all(kernel.dtype == np.float32 and not kernel.flags.writeable for kernel in k.values())


def test_show_kernel_draws_every_number():
    figure = viz.show_kernel("bottom_sobel", title="bottom_sobel")
    (axes,) = all_axes(figure)
    assert axes.get_title() == "bottom_sobel"
    assert [t.get_text() for t in axes.texts] == ["-1", "-2", "-1", "0", "0", "0", "1", "2", "1"]
    blur_texts = [t.get_text() for t in all_axes(viz.show_kernel(viz.BLUR))[0].texts]
    assert blur_texts[:2] == ["0.0625", "0.125"] and blur_texts[4] == "0.25"
    assert_not_blank(png_pixels(figure))


def test_show_kernels_one_panel_per_kernel():
    figure = viz.show_kernels()
    assert titles(figure) == list(viz.KERNELS) and list(figure.kernels) == list(viz.KERNELS)
    for axes, (name, kernel) in zip(all_axes(figure), figure.kernels.items()):
        np.testing.assert_array_equal(kernel, viz.KERNELS[name])
        np.testing.assert_array_equal(axes.images[0].get_array(), kernel)
        assert len(axes.texts) == kernel.size
    assert [axes.get_subplotspec().get_geometry()[:2] for axes in all_axes(figure)] == [(2, 5)] * 10
    assert_not_blank(png_pixels(figure))
    course = viz.show_kernels({name: viz.KERNELS[name] for name in viz.COURSE_KERNELS})
    assert titles(course) == list(viz.COURSE_KERNELS)


# --- 2. extraction -------------------------------------------------------------------------------
def test_circle_is_the_courses_circle():
    # Golden values from the course's visiontools.circle (scikit-image's circle_perimeter + resize order=0).
    expected = np.array([
        [0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 1, 0, 0, 0], [0, 0, 1, 0, 0, 1, 0, 0], [0, 1, 0, 0, 0, 0, 1, 0],
        [0, 1, 0, 0, 0, 0, 1, 0], [0, 0, 1, 0, 0, 1, 0, 0], [0, 0, 0, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(viz.circle([8, 8], val=1.0, r_shrink=1), expected)
    for size, r_shrink, count, digest in [
        ((64, 64), 3, 160, "b5e1e9b82719bd9a3ff78dd5babf06a805e391dcc3d8508b288b9d6ca9247d7e"),
        ((64, 64), 4, 156, "d4661b1444dd1f2157f70ca42bbe89bf1ba16c999638d38224868ba99a0717f3"),
        ((30, 50), 2, 68, "bae4349ba23c57d27666c8e04dc8973681baa87f6fc53055e93d6e9b127c6ad2"),
    ]:
        image = viz.circle(size, val=1.0, r_shrink=r_shrink)
        assert image.shape == size and image.dtype == np.float32
        assert int(image.sum()) == count
        assert hashlib.sha256(np.packbits(image.astype(bool)).tobytes()).hexdigest() == digest


def test_circle_random_values_are_seeded():
    a, b = viz.circle([32, 32], rng=1), viz.circle([32, 32], rng=1)
    np.testing.assert_array_equal(a, b)
    outline = viz.circle([32, 32], val=1.0) > 0
    assert np.array_equal(a > 0, outline) and a.max() < 1 and len(np.unique(a[outline])) > 10
    assert viz.circle([16, 16], val=2.5).max() == 2.5
    with pytest.raises(ValueError):
        viz.circle([8, 8], val=1, r_shrink=5)


@pytest.mark.parametrize("kwargs", [
    {},
    {"conv_stride": 2, "conv_padding": "same", "pool_size": 3, "pool_stride": 2, "pool_padding": "valid"},
    {"conv_stride": 3, "pool_size": 2, "pool_stride": 1},
])
@pytest.mark.parametrize("kernel", ["edge", "emboss", "blur"])
def test_extraction_stages_are_miniconv_ops(kernel, kwargs):
    image = viz.circle([31, 29], val=1.0, r_shrink=2) + np.linspace(0, 0.3, 29, dtype=np.float32)
    stages = viz.extraction_stages(image, kernel, **kwargs)
    assert list(stages) == ["Input", "Filter", "Detect", "Condense"]
    conv_stride = kwargs.get("conv_stride", 1)
    x = image[None, :, :, None]
    filtered = nn.conv2d(x, viz.KERNELS[kernel][:, :, None, None], strides=conv_stride,
                         padding=kwargs.get("conv_padding", "valid").upper())
    condensed = nn.max_pool2d(nn.relu(filtered), kwargs.get("pool_size", 2), kwargs.get("pool_stride", 2),
                              kwargs.get("pool_padding", "same").upper())
    np.testing.assert_array_equal(stages["Input"], image)
    np.testing.assert_array_equal(stages["Filter"], filtered[0, :, :, 0])
    np.testing.assert_array_equal(stages["Detect"], np.maximum(filtered[0, :, :, 0], 0))
    np.testing.assert_array_equal(stages["Condense"], condensed[0, :, :, 0])
    if kwargs.get("conv_padding", "valid") == "valid":  # and by hand: a sliding window in NumPy
        np.testing.assert_allclose(stages["Filter"], correlate2d_valid(image, viz.KERNELS[kernel], conv_stride), atol=1e-5)


def test_extraction_by_hand_with_the_default_window():
    image = viz.circle([12, 12], val=1.0, r_shrink=1)
    stages = viz.extraction_stages(image, "edge")
    by_hand = correlate2d_valid(image, viz.EDGE)
    np.testing.assert_allclose(stages["Filter"], by_hand, atol=1e-6)
    np.testing.assert_allclose(stages["Condense"], maxpool2x2(np.maximum(by_hand, 0)), atol=1e-6)
    # integer images are scaled to [0, 1] and RGB images made gray, as the course's helper does
    np.testing.assert_allclose(viz.extraction_stages((image * 255).astype(np.uint8), "edge")["Input"], image)
    rgb = np.repeat(image[..., None], 3, axis=-1)
    np.testing.assert_allclose(viz.extraction_stages(rgb, "edge")["Input"], image, atol=1e-3)


def test_show_extraction_panels(digit):
    figure = viz.show_extraction(digit, "bottom_sobel")
    assert titles(figure) == ["Input\n28x28", "Filter (convolution)\n26x26", "Detect (ReLU)\n26x26",
                              "Condense (max pooling)\n13x13"]
    assert "bottom_sobel" in figure._suptitle.get_text()
    assert figure.stages["Condense"].shape == (13, 13)
    assert_not_blank(png_pixels(figure))
    brighter = viz.show_extraction(digit, "edge", gamma=0.5)
    detect_image = all_axes(brighter)[2].images[0].get_array()
    np.testing.assert_allclose(detect_image, brighter.stages["Detect"] ** 0.5, rtol=1e-6)


def test_show_extraction_takes_the_courses_subplot_shape():
    image = viz.circle([64, 64], val=1.0, r_shrink=3)[:, :, None]
    kernel = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]])  # the lesson's bottom sobel, as integers
    # the course's own call ("The Sliding Window"), which used to raise TypeError
    figure = viz.show_extraction(image, kernel, conv_stride=1, pool_size=2, pool_stride=2, subplot_shape=(1, 4),
                                 figsize=(14, 6))
    assert [a.get_subplotspec().get_geometry() for a in all_axes(figure)] == [(1, 4, k, k) for k in range(4)]
    np.testing.assert_array_equal(figure.stages["Filter"], viz.extraction_stages(image, "bottom_sobel")["Filter"])
    assert tuple(figure.get_size_inches()) == (14, 6)
    square = viz.show_extraction(image, "edge", subplot_shape=(2, 2), pool_size=(2, 2), pool_stride=(1, 1))
    assert [a.get_subplotspec().get_geometry() for a in all_axes(square)] == [(2, 2, k, k) for k in range(4)]
    for axes, name in zip(all_axes(square), square.panels):
        np.testing.assert_array_equal(axes.images[0].get_array(), square.stages[name])
    assert square.stages["Condense"].shape == (62, 62)  # SAME pooling with stride 1 keeps the size
    two = viz.show_extraction(image, "edge", subplot_shape=(2, 1), ops=["Input", "Condense"])
    assert two.panels == ["Input", "Condense"] and [t.split("\n")[0] for t in titles(two)] == ["Input",
                                                                                              "Condense (max pooling)"]
    np.testing.assert_array_equal(all_axes(two)[1].images[0].get_array(), two.stages["Condense"])
    with pytest.raises(ValueError, match="room for 2 panels, 4 to draw"):
        viz.show_extraction(image, "edge", subplot_shape=(1, 2))
    with pytest.raises(ValueError, match="subplot_shape must be"):
        viz.show_extraction(image, "edge", subplot_shape=4)
    with pytest.raises(ValueError, match="ops must be"):
        viz.show_extraction(image, "edge", ops=["Input", "Pool"])


# --- 3. translation invariance -------------------------------------------------------------------
def test_pooling_steps_halve_with_max_pooling():
    image = viz.circle([64, 64], val=1.0, r_shrink=4)
    steps = viz.pooling_steps(image, repeats=4)
    assert [s.shape for s in steps] == [(64, 64), (32, 32), (16, 16), (8, 8), (4, 4)]
    for before, after in itertools.pairwise(steps):
        np.testing.assert_array_equal(after, maxpool2x2(before))
    odd = np.arange(35, dtype=np.float32).reshape(5, 7)
    np.testing.assert_array_equal(viz.pooling_steps(odd, 1)[1], maxpool2x2(odd))  # SAME: 3x4


def test_shift_image_replicates_edges():
    image = np.arange(20, dtype=np.float32).reshape(4, 5)
    shifted = viz.shift_image(image, (1, -2))
    np.testing.assert_array_equal(shifted[1:, :3], image[:3, 2:])
    np.testing.assert_array_equal(shifted[0, :3], image[0, 2:])  # top row repeated
    np.testing.assert_array_equal(shifted[1:, 3:], np.repeat(image[:3, 4:], 2, axis=1))  # right column repeated
    np.testing.assert_array_equal(viz.shift_image(image, (0, 0)), image)


def test_show_translation_invariance_panels():
    figure = viz.show_translation_invariance(seed=3)
    assert figure.shift == viz.show_translation_invariance(seed=3).shift
    assert max(abs(v) for v in figure.shift) <= 3 and figure.shift != (0, 0)
    panel_titles = titles(figure)
    assert len(panel_titles) == 10
    assert panel_titles[0] == "Original\nShape: 64x64" and panel_titles[5].startswith("Shifted 2 px up, 2 px left\n")
    assert [t.split("Shape: ")[1] for t in panel_titles[:5]] == ["64x64", "32x32", "16x16", "8x8", "4x4"]
    assert panel_titles[4] == "MaxPooled 4 times\nShape: 4x4"
    original, shifted = figure.steps["original"], figure.steps["shifted"]
    np.testing.assert_array_equal(shifted[0], viz.shift_image(original[0], figure.shift))
    # the point of the picture: a few pixels of shift change much of the image, little of the pooled map
    changed_before = np.mean(original[0] != shifted[0])
    changed_after = np.mean(original[-1] != shifted[-1])
    assert changed_after < changed_before or changed_after == 0
    assert "Translation invariance" in figure._suptitle.get_text()
    assert_not_blank(png_pixels(figure))


# --- 4. global average pooling -------------------------------------------------------------------
def test_random_maps_are_seeded_and_in_unit_interval():
    a = viz.random_feature_maps(count=8, size=(5, 5), seed=2)
    assert a.shape == (1, 5, 5, 8) and a.dtype == np.float32
    assert np.all((a >= 0) & (a <= 1)) and a.std() > 0.1
    np.testing.assert_array_equal(a, viz.random_feature_maps(count=8, size=(5, 5), seed=2))
    assert not np.array_equal(a, viz.random_feature_maps(count=8, size=(5, 5), seed=3))
    assert viz.random_map((7, 9)).shape == (7, 9)


def test_show_global_average_pooling_values():
    figure = viz.show_global_average_pooling()
    maps, pooled = figure.feature_maps, figure.pooled
    np.testing.assert_allclose(pooled, maps.mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_array_equal(pooled, nn.global_avg_pool2d(maps)[0])
    axes = all_axes(figure)
    assert len(axes) == 9 and [a.get_title() for a in axes[:8]] == [f"map {c}" for c in range(8)]
    assert [t.get_text() for t in axes[8].texts] == [f"{v:.2f}" for v in pooled]
    assert np.array_equal(axes[8].images[0].get_array()[0], pooled)
    sub_titles = [sub._suptitle.get_text() for sub in figure.subfigs]
    assert sub_titles[0].startswith("Feature Maps") and sub_titles[1].startswith("Pooled Feature Maps")
    assert_not_blank(png_pixels(figure))
    custom = viz.show_global_average_pooling(np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4))
    np.testing.assert_allclose(custom.pooled, np.arange(24).reshape(2, 3, 4).mean(axis=(0, 1)))


# --- 5. feature maps -----------------------------------------------------------------------------
def test_feature_map_grid_layout():
    activation = np.random.default_rng(0).random((1, 4, 5, 7)).astype(np.float32)
    grid = viz.feature_map_grid(activation, images_per_row=3, min_tile=1)
    assert grid.shape == (3 * 4 + 2, 3 * 5 + 2)
    tile = grid[5:9, 6:11]  # channel 4: row 1, column 1
    channel = activation[0, :, :, 4]
    np.testing.assert_allclose(tile, np.clip((channel - channel.mean()) / channel.std() * 64 + 128, 0, 255), rtol=1e-5)
    assert np.isnan(grid[4]).all() and np.isnan(grid[10:, 12:]).all()  # margins and the unused tiles
    zeros = viz.feature_map_grid(np.zeros((3, 3, 2)), min_tile=1)
    assert np.nanmax(zeros) == 0  # a silent channel stays dark
    assert viz.feature_map_grid(np.ones((3, 3, 1)), min_tile=24).shape == (24, 24)


def test_show_feature_maps_every_conv_and_pool_layer(trained, digit):
    model, _ = trained
    figure = viz.show_feature_maps(model, digit)
    names = [layer.name for layer in model.layers[:5]]
    shapes = ["26x26x32", "13x13x32", "11x11x64", "5x5x64", "3x3x64"]
    assert titles(figure) == [f"{n}  {s}" for n, s in zip(names, shapes)]
    expected = model.activations(digit[None, :, :, None])
    for k, name in enumerate(names):
        activation, grid = figure.grids[name]
        np.testing.assert_array_equal(activation, expected[k])
        np.testing.assert_array_equal(grid, viz.feature_map_grid(expected[k]))
    assert_not_blank(png_pixels(figure))
    chosen = viz.show_feature_maps(model, digit[:, :, None], layers=[names[2]])
    assert titles(chosen) == [f"{names[2]}  11x11x64"]


# --- 6. filter patterns --------------------------------------------------------------------------
def test_filter_pattern_step_is_chollets_normalised_gradient(trained):
    model, _ = trained
    layer = model.layers[2]
    x0 = viz.filter_patterns(model, layer, filters=[5], steps=0, seed=4)
    assert x0.shape == (1, 28, 28, 1) and 0.45 <= x0.min() and x0.max() <= 0.55
    x1 = viz.filter_patterns(model, layer, filters=[5], steps=1, step_size=0.02, seed=4)
    g = model.input_gradient(x0, layer, channel=5)
    np.testing.assert_allclose(x1, x0 + 0.02 * g / (np.sqrt(np.mean(np.square(g))) + 1e-5), atol=1e-6)
    # batching the filters together changes nothing: each sample only sees its own filter's gradient
    start = np.random.default_rng(1).random((28, 28, 1)).astype(np.float32)
    together = viz.filter_patterns(model, layer, filters=[1, 5], steps=3, start=start)
    alone = viz.filter_patterns(model, layer, filters=[5], steps=3, start=start)
    np.testing.assert_allclose(together[1:], alone, atol=1e-5)


def test_filter_patterns_raise_the_mean_activation(trained):
    model, _ = trained
    patterns, objectives = viz.filter_patterns(model, model.layers[4], filters=6, steps=10, return_objectives=True)
    assert patterns.shape == (6, 28, 28, 1) and objectives.shape == (6, 11)
    active = objectives[:, 0] > 0
    assert active.any()
    assert np.all(objectives[active, -1] > objectives[active, 0])
    with pytest.raises(ValueError, match="filters must be in"):
        viz.filter_patterns(model, model.layers[4], filters=[64])


def test_show_filter_patterns_grid(trained):
    model, _ = trained
    figure = viz.show_filter_patterns(model, model.layers[0].name, filters=6, steps=4, cols=3)
    assert [t.split(" (")[0] for t in titles(figure)] == [f"filter {f}" for f in range(6)]
    assert figure.layer_name == model.layers[0].name and figure.patterns.shape == (6, 28, 28, 1)
    assert model.layers[0].name in figure._suptitle.get_text()
    assert_not_blank(png_pixels(figure))
    for axes in all_axes(figure):
        shown = axes.images[0].get_array()
        assert 0 <= shown.min() and shown.max() <= 1
    np.testing.assert_allclose(viz.deprocess_image(np.array([0.0, 1.0])), [0.4, 0.6], atol=1e-4)


# --- 7. learning curves --------------------------------------------------------------------------
HISTORY = {"loss": [0.9, 0.5, 0.3], "accuracy": [0.7, 0.85, 0.9], "val_loss": [0.6, 0.45, 0.4],
           "val_accuracy": [0.8, 0.86, 0.88]}


class FakeHistory:
    history = HISTORY


@pytest.mark.parametrize("source", ["history", "dict", "report", "path"])
def test_learning_curves_sources(source, tmp_path):
    value = {"history": FakeHistory(), "dict": HISTORY, "report": {"history": HISTORY, "test_accuracy": 0.88},
             "path": tmp_path / "report.json"}[source]
    (tmp_path / "report.json").write_text(json.dumps({"history": HISTORY, "seed": 0}))
    figure = viz.show_learning_curves(value)
    assert titles(figure) == ["Training and validation loss", "Training and validation accuracy"]
    for axes, name in zip(all_axes(figure), ["loss", "accuracy"]):
        train, val = axes.get_lines()
        assert list(train.get_xdata()) == [1, 2, 3] and list(train.get_ydata()) == HISTORY[name]
        assert train.get_linestyle() == "None" and train.get_marker() == "o"  # dots
        assert list(val.get_ydata()) == HISTORY[f"val_{name}"] and val.get_linestyle() == "-"
        assert [t.get_text() for t in axes.get_legend().get_texts()] == [f"Training {name}", f"Validation {name}"]
    assert_not_blank(png_pixels(figure))


def test_learning_curves_from_a_real_fit(trained):
    _, history = trained
    figure = viz.show_learning_curves(history)
    assert figure.history == history.history and len(all_axes(figure)) == 2
    loss_only = viz.show_learning_curves({"loss": [1.0, 0.5]})
    assert titles(loss_only) == ["Training and validation loss"] and len(all_axes(loss_only)[0].get_lines()) == 1


def test_learning_curves_bad_input(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        viz.show_learning_curves(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="expected a History"):
        viz.show_learning_curves({"test_accuracy": 0.9})


# --- 8. one-dimensional convolution on a time series ---------------------------------------------
def test_series_kernels():
    kernels = viz.SERIES_KERNELS
    np.testing.assert_array_equal(kernels["detrend"], [-1, 1])
    np.testing.assert_allclose(kernels["average"], [0.2] * 5)
    spencer = kernels["spencer"]
    np.testing.assert_allclose(spencer * 320, [-3, -6, -5, 3, 21, 46, 67, 74, 67, 46, 21, 3, -5, -6, -3], atol=1e-4)
    assert spencer.sum() == pytest.approx(1.0, abs=1e-6)
    # Spencer's 15-point average passes any cubic through unchanged
    t = np.arange(40, dtype=np.float64)
    cubic = (0.001 * (t - 20) ** 3 - 0.05 * t**2 + t + 3).astype(np.float32)
    np.testing.assert_allclose(viz.filter_series(cubic, spencer), cubic[7:-7], atol=2e-3)


def test_spencer_is_the_true_15_point_kernel_not_the_courses_print():
    ours, printed = viz.SERIES_KERNELS["spencer"], viz.SPENCER_AS_THE_COURSE_PRINTS
    assert round(float(ours.sum() * 320)) == 320 and round(float(printed.sum() * 320)) == 331
    np.testing.assert_array_equal(ours, ours[::-1])  # symmetric; the printed one is not
    assert not np.array_equal(printed, printed[::-1])
    assert list(np.flatnonzero(ours != printed)) == [10] and printed[10] * 320 == pytest.approx(32)


def test_filter_series_is_conv1d():
    series = viz.synthetic_weekly_series(weeks=120, seed=1)
    assert series.shape == (120,) and series.dtype == np.float32 and 0 <= series.min() and series.max() <= 100
    np.testing.assert_array_equal(series, viz.synthetic_weekly_series(weeks=120, seed=1))
    for kernel in viz.SERIES_KERNELS.values():
        filtered = viz.filter_series(series, kernel)
        assert filtered.shape == (120 - len(kernel) + 1,)
        np.testing.assert_allclose(filtered, np.correlate(series, kernel, mode="valid"), rtol=1e-5, atol=1e-3)
        np.testing.assert_array_equal(filtered, nn.conv1d(series.reshape(1, -1, 1), kernel.reshape(-1, 1, 1))[0, :, 0])
    np.testing.assert_allclose(viz.filter_series(series, viz.SERIES_KERNELS["detrend"]), np.diff(series), atol=1e-4)


def test_show_series_filters_is_labelled_synthetic():
    figure = viz.show_series_filters()
    assert "SYNTHETIC" in figure._suptitle.get_text()
    panel_titles = titles(figure)
    assert [t.split(":")[0] for t in panel_titles] == ["detrend", "average", "spencer"]
    assert "/ 320" in panel_titles[2]
    for axes, name in zip(all_axes(figure), ["detrend", "average", "spencer"]):
        original, filtered = axes.get_lines()
        assert "synthetic" in original.get_label()
        np.testing.assert_array_equal(original.get_ydata(), figure.series)
        np.testing.assert_array_equal(filtered.get_ydata(), figure.filtered[name])
        centre = (len(viz.SERIES_KERNELS[name]) - 1) / 2
        assert filtered.get_xdata()[0] == centre  # each output drawn at the centre of its window
    assert_not_blank(png_pixels(figure))
    real = viz.show_series_filters(np.sin(np.arange(50, dtype=np.float32)), {"average": viz.SERIES_KERNELS["average"]})
    assert "SYNTHETIC" not in real._suptitle.get_text() and len(all_axes(real)) == 1


# --- 9. receptive fields -------------------------------------------------------------------------
def test_three_stacked_3x3_convolutions_see_7x7():
    model = miniconv.Sequential([layers.Conv2D(2, 3, input_shape=(16, 16, 1)), layers.Conv2D(2, 3), layers.Conv2D(2, 3)])
    fields = miniconv.receptive_field(model)
    assert [row.size for row in fields] == [(3, 3), (5, 5), (7, 7)]
    assert [row.jump for row in fields] == [(1, 1)] * 3
    assert fields[-1].start == (3, 3)
    assert "7x7" in str(fields) and "receptive field" in str(fields)


def test_pooling_doubles_the_jump():
    model = miniconv.Sequential([layers.Conv2D(2, 3, input_shape=(32, 32, 1)), layers.MaxPooling2D(2),
                                 layers.Conv2D(2, 3), layers.MaxPooling2D(2)])
    fields = miniconv.receptive_field(model)
    assert [row.jump for row in fields] == [(1, 1), (2, 2), (2, 2), (4, 4)]
    assert [row.size for row in fields] == [(3, 3), (4, 4), (8, 8), (10, 10)]


def test_course_mnist_convnet_fields():
    fields = miniconv.receptive_field(gallery.course_convnet())
    assert [row.kind for row in fields] == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Conv2D", "Flatten",
                                            "Dense", "Dense"]
    # r_out = r_in + (k - 1) j_in, j_out = j_in s, by hand: 3, 3+1=4, 4+2*2=8, 8+1*2=10, 10+2*4=18
    assert [row.size for row in fields[:5]] == [(3, 3), (4, 4), (8, 8), (10, 10), (18, 18)]
    assert [row.jump for row in fields[:5]] == [(1, 1), (2, 2), (2, 2), (4, 4), (4, 4)]
    assert [row.start for row in fields[:5]] == [(1, 1), (1.5, 1.5), (3.5, 3.5), (4.5, 4.5), (8.5, 8.5)]
    assert all(row.whole_input and row.size == (28, 28) for row in fields[5:])
    assert fields[fields[4].name] is fields[4]  # rows by layer name too
    assert fields[4].field_of((1, 1)) == [(4.0, 21.0), (4.0, 21.0)]  # the centre unit sees rows/cols 4..21
    text = str(fields)
    assert "18x18" in text and "whole input 28x28" in text and text.count("\n") == len(fields) + 3


def test_dilation_strides_same_padding_and_1d():
    model = miniconv.Sequential([
        layers.Conv2D(1, 3, dilation_rate=2, padding="same", input_shape=(9, 10, 1)),  # k_eff 5: r 5
        layers.Conv2D(1, (3, 1), strides=2, padding="same"),
        layers.Activation("relu"),
        layers.GlobalAveragePooling2D(),
    ])
    fields = miniconv.receptive_field(model)
    assert fields[0].size == (5, 5) and fields[0].start == (0, 0)  # SAME pads 2 on the left: centre on pixel 0
    assert fields[1].size == (7, 5) and fields[1].jump == (2, 2)
    assert fields[2].size == fields[1].size and fields[2].kernel is None  # activations change nothing
    assert fields[3].whole_input and fields[3].size == (9, 10)
    one_d = miniconv.Sequential([layers.Conv1D(2, 5, input_shape=(50, 1)), layers.MaxPooling1D(2), layers.Conv1D(2, 3)])
    assert [row.size for row in miniconv.receptive_field(one_d)] == [(5,), (6,), (10,)]
    assert miniconv.receptive_field(one_d)[-1].jump == (2,)
    nested = miniconv.Sequential([miniconv.Sequential([layers.Conv2D(1, 3, input_shape=(8, 8, 1)), layers.Conv2D(1, 3)]),
                                  layers.Conv2D(1, 3)])
    assert [row.size for row in miniconv.receptive_field(nested)] == [(3, 3), (5, 5), (7, 7)]


@pytest.mark.parametrize("case", range(6))
def test_fields_match_the_gradients_support(case):
    """Brute force: with positive weights, linear layers and average pooling, the input pixels with a
    non-zero gradient for one output unit lie in its receptive field and reach both of its ends."""
    rng = np.random.default_rng(case)
    stack, shape = [], (int(rng.integers(14, 22)), int(rng.integers(14, 22)), 1)
    for k in range(3):
        padding = str(rng.choice(["valid", "same"]))
        first = {"input_shape": shape} if k == 0 else {}
        if rng.random() < 0.35:
            stack.append(layers.AveragePooling2D(int(rng.integers(2, 4)), strides=int(rng.integers(1, 3)), padding=padding,
                                                 **first))
        else:
            dilate = int(rng.integers(1, 3)) if k == 0 else 1
            stack.append(layers.Conv2D(1, (int(rng.integers(1, 4)), int(rng.integers(2, 4))),
                                       strides=1 if dilate > 1 else int(rng.integers(1, 3)), dilation_rate=dilate,
                                       padding=padding, kernel_initializer="ones", **first))
    model = miniconv.Sequential(stack)
    fields = miniconv.receptive_field(model)
    x = rng.random((1, *shape)).astype(np.float32)
    for index, layer in enumerate(model.layers):
        row = fields[index]
        out_shape = layer.output_shape[1:3]
        for unit in [(0, 0), tuple(n - 1 for n in out_shape), tuple(n // 2 for n in out_shape)]:
            upstream = np.zeros((1, *layer.output_shape[1:]), np.float32)
            upstream[0, unit[0], unit[1], 0] = 1
            support = np.argwhere(model.input_gradient(x, index, upstream=upstream)[0, :, :, 0] != 0)
            for axis, (lo, hi) in enumerate(row.field_of(unit)):
                seen = set(support[:, axis].tolist())
                assert lo == int(lo) and hi == int(hi) and hi - lo + 1 == row.size[axis]
                assert min(seen) >= lo and max(seen) <= hi  # nothing outside the field
                # its ends are taps (a dilated kernel has holes inside, not at its ends), unless in the padding
                assert (lo < 0 or lo in seen) and (hi > shape[axis] - 1 or hi in seen)


def test_show_receptive_field(trained, digit):
    model, _ = trained
    figure = viz.show_receptive_field(model, digit)
    image_axes, table_axes, legend_axes, comparison_axes = all_axes(figure)  # the text in rows beside the image
    assert image_axes.get_title() == "the centre unit's field" and len(image_axes.patches) == 5
    assert "18x18" in table_axes.texts[0].get_text()
    assert len(legend_axes.get_legend().get_texts()) == 5 and "27 weights" in comparison_axes.texts[0].get_text()
    widths = sorted(p.get_width() for p in image_axes.patches)
    assert widths == [3, 4, 8, 10, 18]
    assert_not_blank(png_pixels(figure))


# --- the gallery and ``miniconv viz`` -----------------------------------------------------------
def assert_gallery(out: Path, names) -> None:
    for name in names:
        path = out / f"{name}.png"
        assert path.is_file(), f"{path} missing"
        assert_not_blank(matplotlib.image.imread(path))
        assert path.stat().st_size < 400_000


def test_cli_plain_command_writes_every_picture(tmp_path, capsys):
    from miniconv.cli import main

    code = main(["viz", "--out", str(tmp_path), "--epochs", "1", "--limit", "256", "--steps", "3", "--filters", "4",
                 "--dpi", "50"])
    assert code == 0
    assert_gallery(tmp_path, gallery.GALLERY)
    assert "18x18" in (tmp_path / "receptive_field.txt").read_text()
    assert f"Wrote {len(gallery.GALLERY)} pictures" in capsys.readouterr().out and len(gallery.GALLERY) == 13


def test_cli_with_model_image_and_history(trained, tmp_path, capsys):
    from PIL import Image

    from miniconv.cli import main

    model, history = trained
    model.save(tmp_path / "model" / "mnist.miniconv")
    (tmp_path / "model" / "report.json").write_text(json.dumps({"history": history.history}))
    picture = np.zeros((40, 30, 3), np.uint8)
    picture[10:30, 12:18] = (255, 200, 100)
    Image.fromarray(picture).save(tmp_path / "bar.png")
    code = main(["viz", "--model", str(tmp_path / "model" / "mnist.miniconv"), "--image", str(tmp_path / "bar.png"),
                 "--out", str(tmp_path / "out"), "--steps", "2", "--filters", "2", "--layer", model.layers[2].name,
                 "--dpi", "40"])
    assert code == 0
    assert_gallery(tmp_path / "out", gallery.GALLERY)
    loaded = gallery.load_image(tmp_path / "bar.png", model.input_shape)
    assert loaded.shape == (28, 28, 1) and 0 <= loaded.min() and loaded.max() <= 1 and loaded.max() > 0.5
    # without a report beside the model, the learning curves are skipped and said so
    (tmp_path / "model" / "report.json").unlink()
    assert main(["viz", "--model", str(tmp_path / "model" / "mnist.miniconv"), "--out", str(tmp_path / "out2"),
                 "--only", "kernels,learning_curves", "--dpi", "40"]) == 0
    assert sorted(p.name for p in (tmp_path / "out2").iterdir()) == ["kernels.png"]
    assert "skipped learning_curves.png" in capsys.readouterr().out


def test_cli_bad_input(tmp_path, capsys):
    from miniconv.cli import main

    assert main(["viz", "--model", str(tmp_path / "missing.miniconv"), "--out", str(tmp_path)]) == 2
    assert "miniconv viz:" in capsys.readouterr().err
    assert main(["viz", "--out", str(tmp_path), "--steps", "0"]) == 2
    assert main(["viz", "--out", str(tmp_path), "--only", "kernels,selfie"]) == 2
    assert "unknown picture(s) selfie" in capsys.readouterr().err
    from miniconv.viz import cli

    assert cli.GALLERY_NAMES == tuple(gallery.GALLERY)


def test_fit_to_model_resizes_and_converts():
    rgb = np.random.default_rng(0).random((40, 50, 3)).astype(np.float32)
    assert gallery.fit_to_model(rgb, (None, 28, 28, 1)).shape == (28, 28, 1)
    assert gallery.fit_to_model(rgb[..., 0], (None, 20, 24, 3)).shape == (20, 24, 3)
    same = gallery.fit_to_model(rgb, (None, 40, 50, 3))
    np.testing.assert_array_equal(same, rgb)


def test_viz_is_lazy_and_receptive_field_is_exported():
    import subprocess
    import sys

    code = "import sys, miniconv; assert 'matplotlib' not in sys.modules; print(miniconv.receptive_field.__module__)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "miniconv.viz.receptive_field"
    assert viz.receptive_field is miniconv.receptive_field
    with pytest.raises(AttributeError):
        viz.no_such_picture  # noqa: B018
