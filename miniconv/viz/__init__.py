"""``miniconv.viz``: the pictures of Kaggle's Computer Vision course and Chollet's ch. 5.4, computed
with miniconv's own ops. Every ``show_*`` function returns a ``matplotlib.figure.Figure`` (never
calls ``plt.show()``), with the numbers it draws attached as attributes for checking.

    kernels.py          KERNELS (the course's edge, bottom_sobel, emboss, sharpen, blur; laplacian, box_blur,
                        edge_enhance, vertical_sobel, line_detector), show_kernel, show_kernels
    extraction.py       circle, extraction_stages, show_extraction     filter -> detect -> condense
    pooling.py          show_translation_invariance, two_dots, show_two_dots, show_global_average_pooling,
                        random_map
    augmentation.py     show_augmented_variants (one image's random variants, Chollet 5.2.5)
    value_range.py      input_range: [0, 1], or [0, 255] for a model starting with Rescaling(1 / 255)
    feature_maps.py     show_feature_maps (every conv / pooling layer's activations for one image)
    filters.py          filter_patterns, show_filter_patterns (gradient ascent on the input; Chollet's start)
    curves.py           show_learning_curves (a History or a training report; smooth=True), smooth_curve
    timeseries.py       SERIES_KERNELS, synthetic_weekly_series, filter_series, show_series_filters
    receptive_field.py  receptive_field (also ``miniconv.receptive_field``), show_receptive_field
    gradcam.py          grad_cam, show_grad_cam, superimpose (class activation heatmaps, Chollet 5.4.3)
    gallery.py          save_gallery: every picture as a PNG (``miniconv viz``)

Names are loaded on first use, so ``import miniconv`` does not import matplotlib (an optional
dependency: ``pip install miniconv[viz]``).
"""

from __future__ import annotations

import importlib

# Eager (no matplotlib): binds the function over the submodule of the same name, so
# ``miniconv.viz.receptive_field`` is the function whichever import happens first.
from .receptive_field import receptive_field

_EXPORTS = {
    "kernels": ("KERNELS", "COURSE_KERNELS", "EDGE", "BOTTOM_SOBEL", "EMBOSS", "SHARPEN", "BLUR", "BOX_BLUR",
                "LAPLACIAN", "EDGE_ENHANCE", "VERTICAL_SOBEL", "LINE_DETECTOR", "get_kernel", "show_kernel",
                "show_kernels"),
    "extraction": ("circle", "extraction_stages", "show_extraction"),
    "pooling": ("pooling_steps", "random_feature_maps", "random_map", "shift_image", "show_global_average_pooling",
                "show_translation_invariance", "two_dots", "show_two_dots"),
    "augmentation": ("augmentation_front", "augmented_variants", "default_augmentation", "show_augmented_variants"),
    "value_range": ("input_range", "leading_rescaling", "to_model_range", "to_unit_range"),
    "feature_maps": ("feature_map_grid", "feature_map_grids", "show_feature_maps"),
    "filters": ("deprocess_image", "filter_patterns", "show_filter_patterns"),
    "curves": ("history_dict", "show_learning_curves", "smooth_curve"),
    "timeseries": ("SERIES_KERNELS", "SPENCER_AS_THE_COURSE_PRINTS", "filter_series", "show_series_filters",
                   "synthetic_weekly_series"),
    "receptive_field": ("LayerField", "ReceptiveFields", "receptive_field", "show_receptive_field"),
    "gradcam": ("grad_cam", "last_conv_layer", "show_grad_cam", "superimpose"),
    "gallery": ("GALLERY", "save_gallery"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [  # noqa: RUF022  (grouped by module, as _EXPORTS)
    "KERNELS", "COURSE_KERNELS", "EDGE", "BOTTOM_SOBEL", "EMBOSS", "SHARPEN", "BLUR", "BOX_BLUR",
    "LAPLACIAN", "EDGE_ENHANCE", "VERTICAL_SOBEL", "LINE_DETECTOR", "get_kernel", "show_kernel",
    "show_kernels",
    "circle", "extraction_stages", "show_extraction",
    "pooling_steps", "random_feature_maps", "random_map", "shift_image", "show_global_average_pooling",
    "show_translation_invariance", "two_dots", "show_two_dots",
    "augmentation_front", "augmented_variants", "default_augmentation", "show_augmented_variants",
    "input_range", "leading_rescaling", "to_model_range", "to_unit_range",
    "feature_map_grid", "feature_map_grids", "show_feature_maps",
    "deprocess_image", "filter_patterns", "show_filter_patterns",
    "history_dict", "show_learning_curves", "smooth_curve",
    "SERIES_KERNELS", "SPENCER_AS_THE_COURSE_PRINTS", "filter_series", "show_series_filters", "synthetic_weekly_series",
    "LayerField", "ReceptiveFields", "receptive_field", "show_receptive_field",
    "grad_cam", "last_conv_layer", "show_grad_cam", "superimpose",
    "GALLERY", "save_gallery",
]


def __getattr__(name):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'miniconv.viz' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))
