"""The pictures issue 23 asks for: what the course's and Chollet's lessons show that the gallery lacked.

Each test checks the arrays behind a picture: the two-dots pooling figure, the 3x3-versus-7x7
parameter comparison, augmented variants of one image, the input range a model takes (a model that
starts with ``Rescaling(1 / 255)`` gets pixels in [0, 255], in the gallery and in filter patterns),
and smoothed learning curves (the curves plot, ``miniconv viz --smooth`` and the trainers' history plot).
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import miniconv
from miniconv import layers, viz
from miniconv.data import augment
from miniconv.viz import gallery


def all_axes(figure) -> list:
    found = list(figure.axes)
    for sub in getattr(figure, "subfigs", []):
        found += [a for a in all_axes(sub) if a not in found]
    return found


def maxpool2x2(x: np.ndarray) -> np.ndarray:
    h, w = x.shape
    padded = np.full((h + h % 2, w + w % 2), -np.inf, np.float32)
    padded[:h, :w] = x
    return padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2).max(axis=(1, 3))


def rescaling_model(seed=0):
    """A small cats-vs-dogs-like model: augmentation, then Rescaling(1 / 255), convolutions, a head."""
    miniconv.utils.set_random_seed(seed)
    return miniconv.Sequential([
        layers.Input((20, 20, 3)), layers.RandomFlip("horizontal", seed=1), layers.RandomRotation(0.1, seed=2),
        layers.Rescaling(1 / 255), layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(6, 3, activation="relu"), layers.Flatten(), layers.Dense(1, activation="sigmoid"),
    ])


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A smooth RGB image in [0, 1], (20, 20, 3)."""
    y, x = np.mgrid[0:20, 0:20] / 19.0
    return np.stack([x, y, 0.5 + 0.4 * np.sin(6 * x * y)], axis=-1).astype(np.float32)


# --- the two dots ------------------------------------------------------------------------------------
def test_two_dots_is_the_courses_image():
    image = viz.two_dots([8, 9])
    assert image.shape == (8, 9) and image.dtype == np.float32
    assert sorted(map(tuple, np.argwhere(image))) == [(3, 5), (5, 3)] and image.sum() == 2
    assert sorted(map(tuple, np.argwhere(viz.two_dots([16, 16], 2, 13)))) == [(2, 13), (13, 2)]


def test_close_dots_merge_under_pooling_far_ones_do_not():
    figure = viz.show_two_dots()
    close, far = figure.steps["close"], figure.steps["far"]
    np.testing.assert_array_equal(close[0], viz.two_dots([16, 16], 3, 5))
    np.testing.assert_array_equal(far[0], viz.two_dots([16, 16], 2, 13))
    for steps in (close, far):
        assert [s.shape for s in steps] == [(16, 16), (8, 8), (4, 4), (2, 2)]
        for before, after in itertools.pairwise(steps):
            np.testing.assert_array_equal(after, maxpool2x2(before))
    assert figure.cells == {"close": [2, 2, 2, 1], "far": [2, 2, 2, 2]}
    np.testing.assert_array_equal(close[-1], [[1, 0], [0, 0]])  # both dots in the top-left cell
    np.testing.assert_array_equal(far[-1], [[0, 1], [1, 0]])
    for axes, step in zip(all_axes(figure), close + far):
        np.testing.assert_array_equal(axes.images[0].get_array(), step)
    assert all_axes(figure)[3].get_title().endswith("dots in 1 cell")


# --- the receptive field: 3 stacked 3x3 kernels against one 7x7 -------------------------------------------
def test_stacked_small_kernels_see_as_far_with_fewer_weights():
    from miniconv.viz.receptive_field import stacked_versus_single

    comparison = stacked_versus_single(3, 3)
    assert comparison["stacked"] == {"layers": 3, "kernel": (3, 3), "field": (7, 7), "weights": 27}
    assert comparison["single"] == {"layers": 1, "kernel": (7, 7), "field": (7, 7), "weights": 49}
    other = stacked_versus_single(5, 2)  # two 5x5 see 9x9: 50 weights against 81
    assert (other["stacked"]["field"], other["stacked"]["weights"]) == ((9, 9), 50)
    assert (other["single"]["field"], other["single"]["weights"]) == ((9, 9), 81)


def test_receptive_field_picture_shows_the_comparison():
    model = gallery.course_convnet(seed=0)
    figure = viz.show_receptive_field(model, np.zeros((28, 28), np.float32))
    assert figure.parameter_comparison["stacked"]["weights"] == 27
    assert figure.parameter_comparison["single"]["weights"] == 49
    text = "\n".join(t.get_text() for axes in all_axes(figure) for t in axes.texts)
    assert "3 x 9 = 27 weights per channel pair" in text and "7 x 7 = 49 weights per channel pair" in text
    assert text.count("receptive field 7x7") == 2


def test_receptive_field_picture_of_a_deep_model_keeps_its_text_apart():
    """Chollet's cats-vs-dogs convnet has 13 rows in its table and 8 squares: the table, the legend and
    the comparison are drawn in rows of their own, none overlapping another (it used to run into the legend)."""
    from miniconv.recipes.cats_dogs import convnet

    model = convnet()
    figure = viz.show_receptive_field(model, np.zeros((150, 150, 3), np.float32))
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for axes in all_axes(figure) for t in axes.texts]
    boxes += [axes.get_legend().get_window_extent(renderer) for axes in all_axes(figure) if axes.get_legend()]
    assert len(boxes) == 3  # the table, the comparison, the legend
    table = next(t for axes in all_axes(figure) for t in axes.texts if "conv2d" in t.get_text())
    assert table.get_text().count("\n") >= 13
    for a, b in itertools.combinations(boxes, 2):
        assert not a.overlaps(b), (a, b)
    legend = next(axes.get_legend() for axes in all_axes(figure) if axes.get_legend())
    assert len(legend.get_texts()) == 8  # one square per convolution and pooling layer


# --- augmented variants (Chollet 5.2.5) --------------------------------------------------------------
def test_variants_are_the_layers_output(photo):
    """A translation with a fixed factor draws nothing: every variant is that shift of the image."""
    shift = [layers.RandomTranslation((0.25, 0.25), (0.0, 0.0), fill_mode="nearest")]
    figure = viz.show_augmented_variants(photo, shift, count=3)
    expected = augment.affine_transform(np.repeat(photo[None], 3, axis=0), augment.translation_transforms([0.0] * 3,
                                                                                                          [5.0] * 3),
                                        "bilinear", "nearest")
    np.testing.assert_allclose(figure.variants, expected, atol=1e-6)
    np.testing.assert_array_equal(figure.original, photo)
    panels = all_axes(figure)
    assert len(panels) == 4 and panels[0].get_title() == "original 20x20"
    np.testing.assert_allclose(panels[1].images[0].get_array(), figure.variants[0], atol=1e-6)


def test_default_variants_use_the_recipes_augmentation(photo):
    figure = viz.show_augmented_variants(photo, count=6, seed=3)
    assert figure.layer_names == ["RandomFlip", "RandomRotation", "RandomTranslation", "RandomShear", "RandomZoom"]
    variants = figure.variants
    assert variants.shape == (6, 20, 20, 3) and 0 <= variants.min() and variants.max() <= 1
    assert len({v.tobytes() for v in variants}) == 6 and not any(np.allclose(v, photo) for v in variants)
    np.testing.assert_array_equal(viz.show_augmented_variants(photo, count=6, seed=3).variants, variants)
    assert not np.array_equal(viz.show_augmented_variants(photo, count=6, seed=4).variants, variants)
    width = viz.augmented_variants(photo, [layers.RandomWidth((0.5, 0.5))], count=2)
    assert width.shape == (2, 20, 30, 3)


def test_variants_leave_the_models_generators_alone(photo):
    model = rescaling_model()
    states = [layer.rng.bit_generator.state for layer in model.layers[:2]]
    global_state = miniconv.utils.get_rng_state()
    figure = viz.show_augmented_variants(photo, model=model, count=4)
    assert figure.layer_names == ["RandomFlip", "RandomRotation"]
    assert [layer.rng.bit_generator.state for layer in model.layers[:2]] == states
    assert miniconv.utils.get_rng_state() == global_state


def test_variants_see_what_the_model_takes(photo):
    """A constant fill of 255 is white for a model that takes [0, 255]: drawn back as 1.0."""
    model = miniconv.Sequential([
        layers.Input((20, 20, 3)), layers.RandomTranslation((0.5, 0.5), (0.0, 0.0), fill_mode="constant",
                                                            fill_value=255.0),
        layers.Rescaling(1 / 255), layers.Conv2D(2, 3), layers.Flatten(), layers.Dense(1),
    ])
    variants = viz.show_augmented_variants(photo, model=model, count=2).variants
    np.testing.assert_allclose(variants[:, :10], 1.0, atol=1e-6)           # the top half: filled
    np.testing.assert_allclose(variants[:, 10:], np.repeat(photo[None, :10], 2, axis=0), atol=1e-5)


# --- the input range a model takes ------------------------------------------------------------------
def test_input_range_is_found_from_a_leading_rescaling():
    from miniconv.recipes import cats_dogs

    assert viz.input_range(gallery.course_convnet()) == (0.0, 1.0)
    assert viz.input_range(cats_dogs.convnet()) == (0.0, 255.0)
    assert viz.input_range(cats_dogs.convnet(augment=True)) == (0.0, 255.0)  # behind the augmentation layers
    minus_one_to_one = miniconv.Sequential([layers.Input((4, 4, 1)), layers.Rescaling(1 / 127.5, offset=-1)])
    assert viz.input_range(minus_one_to_one) == (0.0, 255.0)
    doubling = miniconv.Sequential([layers.Input((4, 4, 1)), layers.Rescaling(2.0)])
    late = miniconv.Sequential([layers.Input((6, 6, 1)), layers.Conv2D(1, 3), layers.Rescaling(1 / 255)])
    assert viz.input_range(doubling) == viz.input_range(late) == (0.0, 1.0)
    assert viz.leading_rescaling(late) is None and viz.leading_rescaling(doubling) is doubling.layers[0]
    np.testing.assert_allclose(viz.to_model_range(np.array([0.0, 0.5, 1.0]), cats_dogs.convnet()), [0, 127.5, 255])
    for mode in ("caffe", "torch"):  # a pretrained base's preprocessing, behind augmentation
        base_front = miniconv.Sequential([layers.Input((8, 8, 3)), layers.RandomFlip(),
                                          layers.ImageNetPreprocessing(mode), layers.Conv2D(2, 3)])
        assert viz.input_range(base_front) == (0.0, 255.0)


def test_gallery_feeds_a_rescaling_model_pixels_in_0_255(photo):
    model = rescaling_model()
    figure = gallery.gallery_makers(model, photo)["feature_maps"]()
    expected = model.activations((photo * 255)[None], layers=model.layers[3:6])
    for (activation, _), want in zip(figure.grids.values(), expected):
        np.testing.assert_allclose(activation, want, rtol=1e-5, atol=1e-5)
    too_dark = model.activations(photo[None], layers=[model.layers[3]])[0]
    assert not np.allclose(figure.grids[model.layers[3].name][0], too_dark, atol=1e-3)
    mnist = gallery.course_convnet(seed=0)  # takes [0, 1]: the image as it is
    digit = np.random.default_rng(0).random((28, 28, 1)).astype(np.float32)
    maps = gallery.gallery_makers(mnist, digit)["feature_maps"]()
    np.testing.assert_array_equal(maps.grids[mnist.layers[0].name][0], mnist.activations(digit[None], layers=[0])[0])


def test_viz_command_on_a_rescaling_model(photo, tmp_path, capsys):
    from PIL import Image

    from miniconv.cli import main

    model = rescaling_model()
    model.save(tmp_path / "m.miniconv")
    Image.fromarray((photo * 255).astype(np.uint8)).save(tmp_path / "photo.png")
    code = main(["viz", "--model", str(tmp_path / "m.miniconv"), "--image", str(tmp_path / "photo.png"), "--out",
                 str(tmp_path / "out"), "--only", "feature_maps,filter_patterns,augmented_variants", "--steps", "2",
                 "--filters", "2", "--dpi", "40"])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["augmented_variants.png", "feature_maps.png",
                                                                   "filter_patterns.png"]


def test_filter_patterns_start_from_chollets_noise_on_0_255_models():
    model = rescaling_model()
    layer = model.layers[5]
    x0 = viz.filter_patterns(model, layer, filters=[1, 3], steps=0, seed=2)
    assert x0.shape == (2, 20, 20, 3) and 128 <= x0.min() and x0.max() < 148  # 128 + 20 U(0, 1)
    assert abs(x0.mean() - 138) < 1 and abs(x0.std() - 20 / np.sqrt(12)) < 0.5
    np.testing.assert_allclose(x0, 128 + 20 * np.random.default_rng(2).random((2, 20, 20, 3)), rtol=1e-6)
    x1 = viz.filter_patterns(model, layer, filters=[1], steps=1, seed=2)  # Chollet's step: 1
    start = x0[:1]
    g = model.input_gradient(start, layer, channel=1)
    np.testing.assert_allclose(x1, start + g / (np.sqrt(np.mean(np.square(g))) + 1e-5), rtol=1e-5, atol=1e-4)
    unit = viz.filter_patterns(model, layer, filters=[1], steps=0, seed=2, value_range=(0, 1))
    assert 0.45 <= unit.min() and unit.max() <= 0.55
    mnist = gallery.course_convnet(seed=0)
    assert 0.45 <= viz.filter_patterns(mnist, filters=[0], steps=0).min()


# --- smoothed learning curves ------------------------------------------------------------------------
HISTORY = {"loss": [0.9, 0.5, 0.45, 0.3], "accuracy": [0.6, 0.8, 0.7, 0.9], "val_loss": [0.8, 0.9, 0.4, 0.6],
           "val_accuracy": [0.7, 0.6, 0.9, 0.8]}


def chollets_smooth_curve(points, factor=0.8):
    """Deep Learning with Python, listing 5.23, as printed."""
    smoothed_points = []
    for point in points:
        if smoothed_points:
            previous = smoothed_points[-1]
            smoothed_points.append(previous * factor + point * (1 - factor))
        else:
            smoothed_points.append(point)
    return smoothed_points


def test_smooth_curve_is_chollets():
    assert viz.smooth_curve([1.0, 0.0, 0.0]) == pytest.approx([1.0, 0.8, 0.64])
    values = list(np.random.default_rng(0).random(30))
    assert viz.smooth_curve(values) == pytest.approx(chollets_smooth_curve(values))
    assert viz.smooth_curve(values, 0.5) == pytest.approx(chollets_smooth_curve(values, 0.5))
    assert viz.smooth_curve(values, 0) == pytest.approx(values) and viz.smooth_curve([]) == []
    with pytest.raises(ValueError, match="factor"):
        viz.smooth_curve(values, 1.0)


def test_curves_plot_draws_the_smoothed_curves():
    raw = viz.show_learning_curves(HISTORY)
    smoothed = viz.show_learning_curves(HISTORY, smooth=True)
    assert smoothed.history == HISTORY and raw.curves == HISTORY and smoothed.smoothing == 0.8
    for axes, name in zip(all_axes(smoothed), ["loss", "accuracy"]):
        train, val = axes.get_lines()
        assert list(train.get_ydata()) == pytest.approx(chollets_smooth_curve(HISTORY[name]))
        assert list(val.get_ydata()) == pytest.approx(chollets_smooth_curve(HISTORY[f"val_{name}"]))
        assert train.get_marker() == "o" and val.get_linestyle() == "-"
        assert [t.get_text() for t in axes.get_legend().get_texts()] == [f"Smoothed training {name}",
                                                                      f"Smoothed validation {name}"]
    for axes, name in zip(all_axes(raw), ["loss", "accuracy"]):
        assert list(axes.get_lines()[0].get_ydata()) == HISTORY[name]
    half = viz.show_learning_curves(HISTORY, smooth=0.5)
    assert list(all_axes(half)[0].get_lines()[1].get_ydata()) == pytest.approx(
        chollets_smooth_curve(HISTORY["val_loss"], 0.5))


def test_history_plot_smooths_on_request_only(tmp_path, monkeypatch):
    from miniconv.runner import report
    from miniconv.viz import curves

    drawn = []
    original = curves.show_learning_curves

    def spy(*args, **kwargs):
        drawn.append(original(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(curves, "show_learning_curves", spy)
    history = {**HISTORY, "lr": [0.1] * 4}
    assert report.plot_history(history, tmp_path / "plain.png")
    assert report.plot_history(history, tmp_path / "smooth.png", smooth=True)
    plain, smooth = drawn
    assert plain.curves == HISTORY and plain.smoothing is None  # the default: the raw curves, as before
    assert smooth.curves["val_loss"] == pytest.approx(chollets_smooth_curve(HISTORY["val_loss"]))
    assert (tmp_path / "plain.png").stat().st_size > 1000 and (tmp_path / "smooth.png").stat().st_size > 1000


def test_viz_command_smooth_option(tmp_path, capsys):
    from miniconv.cli import main

    model = gallery.course_convnet(seed=0)
    model.save(tmp_path / "m.miniconv")
    (tmp_path / "report.json").write_text(json.dumps({"history": HISTORY}))
    pictures = {}
    for label, extra in (("raw", []), ("smooth", ["--smooth"]), ("half", ["--smooth", "0.5"])):
        out = tmp_path / label
        assert main(["viz", "--model", str(tmp_path / "m.miniconv"), "--out", str(out), "--only", "learning_curves",
                     "--dpi", "40", *extra]) == 0
        pictures[label] = matplotlib.image.imread(out / "learning_curves.png")
    assert not np.array_equal(pictures["raw"], pictures["smooth"]) and not np.array_equal(pictures["smooth"],
                                                                                           pictures["half"])
    assert main(["viz", "--model", str(tmp_path / "m.miniconv"), "--out", str(tmp_path / "x"), "--smooth", "1.5"]) == 2
    assert "--smooth must be in [0, 1)" in capsys.readouterr().err
    made = gallery.gallery_makers(model, history=HISTORY, smooth=True)["learning_curves"]()
    assert made.smoothing == 0.8


def test_gallery_lists_the_new_pictures():
    from miniconv.viz import cli

    assert {"two_dots", "augmented_variants"} <= set(gallery.GALLERY)
    assert cli.GALLERY_NAMES == tuple(gallery.GALLERY)
