"""One-dimensional convolution on a time series, as in the course's sliding-window exercise.

The course filters a weekly Google Trends series ("machinelearning.csv") with three kernels and
``tf.nn.conv1d``; that file is not shipped with miniconv, so ``synthetic_weekly_series`` makes a
small stand-in: **synthetic** data (a seeded linear trend, a yearly cycle and noise), labelled as
such in every picture. ``filter_series`` runs ``miniconv.nn.conv1d`` (VALID, stride 1) on it.

The Spencer kernel is the true 15-point one (weights summing to 320); the course prints 32 where
Spencer has 21, so the course's weights sum to 331 (see ``SPENCER``).
"""

from __future__ import annotations

import numpy as np

from .. import nn
from ._figures import new_figure

DETREND = np.array([-1, 1], np.float32)
AVERAGE = np.full(5, 0.2, np.float32)
# Spencer's 15-point moving average (1904): a smoother that passes cubic trends through unchanged.
# It is symmetric and its weights sum to 320. The course's exercise prints 32 for the 11th weight,
# where Spencer's has 21 (``SPENCER_AS_THE_COURSE_PRINTS``): its weights sum to 331, so it scales the
# series by 331 / 320 and is lopsided. miniconv's ``spencer`` is the true one.
SPENCER = np.array([-3, -6, -5, 3, 21, 46, 67, 74, 67, 46, 21, 3, -5, -6, -3], np.float32) / 320
SPENCER_AS_THE_COURSE_PRINTS = np.array([-3, -6, -5, 3, 21, 46, 67, 74, 67, 46, 32, 3, -5, -6, -3], np.float32) / 320

#: The course's three 1-D kernels: differencing, a 5-point moving average, Spencer's 15-point average.
SERIES_KERNELS: dict[str, np.ndarray] = {"detrend": DETREND, "average": AVERAGE, "spencer": SPENCER}

_KERNEL_TEXT = {
    "detrend": "[-1, 1]",
    "average": "[0.2, 0.2, 0.2, 0.2, 0.2]",
    "spencer": "[-3, -6, -5, 3, 21, 46, 67, 74, 67, 46, 21, 3, -5, -6, -3] / 320",
}

WEEKS_PER_YEAR = 365.25 / 7


def synthetic_weekly_series(weeks=260, seed=0) -> np.ndarray:
    """SYNTHETIC weekly data, (weeks,) float32, a stand-in for the course's Google Trends series:
    a trend rising from 20 to 80, a yearly cycle of amplitude 8 (peaking in spring), Gaussian noise
    of std 4 (``seed``), clipped to [0, 100] like a Trends index. Not real data."""
    t = np.arange(weeks, dtype=np.float64)
    rng = np.random.default_rng(seed)
    trend = 20 + 60 * t / max(weeks - 1, 1)
    season = 8 * np.sin(2 * np.pi * t / WEEKS_PER_YEAR)
    return np.clip(trend + season + rng.normal(0, 4, weeks), 0, 100).astype(np.float32)


def filter_series(series, kernel, backend=None) -> np.ndarray:
    """``nn.conv1d`` of a (T,) series with a (S,) kernel, VALID, stride 1: (T - S + 1,) float32.

    y[t] = sum_s x[t + s] * kernel[s] (cross-correlation, as ``tf.nn.conv1d``): detrend [-1, 1]
    gives x[t + 1] - x[t].
    """
    x = np.asarray(series, np.float32).reshape(1, -1, 1)
    w = np.asarray(kernel, np.float32).reshape(-1, 1, 1)
    return nn.conv1d(x, w, stride=1, padding="VALID", backend=backend)[0, :, 0]


def show_series_filters(series=None, kernels=None, synthetic=None, figsize=None):
    """The series and each kernel's output plotted together, one panel per kernel (default the course's three).

    Each output is drawn at the centre of its window (t + (S - 1) / 2). Without ``series`` it uses
    ``synthetic_weekly_series()`` and every title says the data are synthetic. The arrays are
    ``figure.series`` and ``figure.filtered`` ({name: array}).
    """
    synthetic = series is None if synthetic is None else synthetic
    series = synthetic_weekly_series() if series is None else np.asarray(series, np.float32)
    kernels = dict(SERIES_KERNELS if kernels is None else kernels)
    filtered = {name: filter_series(series, kernel) for name, kernel in kernels.items()}
    label = "synthetic weekly series" if synthetic else "series"
    figure = new_figure(figsize or (11.0, 2.6 * len(kernels) + 0.6))
    weeks = np.arange(len(series))
    for k, (name, kernel) in enumerate(kernels.items()):
        axes = figure.add_subplot(len(kernels), 1, k + 1)
        axes.plot(weeks, series, color="0.6", linewidth=1, label=f"original ({label})")
        centre = (len(kernel) - 1) / 2
        axes.plot(np.arange(len(filtered[name])) + centre, filtered[name], color="C0", linewidth=1.6,
                  label=f"conv1d with {name} ({len(kernel)} taps)")
        text = _KERNEL_TEXT.get(name) if np.array_equal(kernel, SERIES_KERNELS.get(name, [])) else None
        text = text or np.array2string(np.asarray(kernel), precision=3, separator=", ", max_line_width=200)
        axes.set_title(f"{name}: kernel {text}", fontsize=10)
        axes.set_ylabel("value")
        axes.legend(loc="upper left", fontsize=8)
    axes.set_xlabel("week")
    figure.suptitle("One-dimensional convolution (nn.conv1d, VALID) on "
                    + ("a SYNTHETIC weekly series (trend + yearly cycle + noise, seeded; not real data)"
                       if synthetic else "a series"))
    figure.series, figure.filtered = series, filtered
    return figure
