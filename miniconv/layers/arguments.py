"""Checks of layer arguments shared by the layer modules; each error names the layer and the argument."""

from __future__ import annotations

import numbers

from ..shapes import format_shape, normalize_tuple, output_size


def check_int(value, name: str, owner: str, minimum: int = 1) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_tuple(value, n: int, name: str, owner: str) -> tuple[int, ...]:
    """An int or n positive ints -> tuple; the error names the layer."""
    try:
        return normalize_tuple(value, n, name)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{owner}: {error}") from None


def check_padding(padding, owner: str) -> str:
    if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
        raise ValueError(f"{owner}: padding must be 'valid' or 'same', got {padding!r}")
    return padding.lower()


def check_data_format(data_format, owner: str) -> None:
    if data_format not in (None, "channels_last"):
        raise ValueError(f"{owner}: only data_format='channels_last' is supported, got {data_format!r}")


def reject_unsupported(owner: str, **arguments) -> None:
    """Keras arguments accepted only at their default (None): anything else would change the math."""
    for name, value in arguments.items():
        if value is not None:
            raise ValueError(f"{owner}: {name} is not supported, got {value!r}")


def spatial_output_shape(layer, input_shape, window, strides, dilations, padding, what="kernel"):
    """Output sizes of the spatial axes (None stays None); raises if the window does not fit."""
    sizes = []
    for size, k, s, d in zip(input_shape[1:-1], window, strides, dilations):
        if size is None:
            sizes.append(None)
            continue
        out = output_size(size, k, s, d, padding.upper())[0]
        if out <= 0:
            raise ValueError(
                f"{layer.describe()}: {what} size {tuple(window)} (dilation {tuple(dilations)}) is larger than "
                f"its input {format_shape(input_shape)} with padding {padding!r}; the output would be empty"
            )
        sizes.append(out)
    return sizes
