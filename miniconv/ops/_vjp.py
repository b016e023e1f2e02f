"""Gradients: ``vjp(fn, *arrays, **kwargs) -> (out, pullback)`` for every op in ``miniconv.nn``.

Each op is written once as ``<op>_vjp``, which returns the output and a ``pullback(dout)``
giving one gradient per positional array argument. The plain op returns the first half of that
pair; ``has_vjp`` records the pairing so ``miniconv.vjp(nn.conv2d, x, w)`` finds the pullback.
"""

from __future__ import annotations


def has_vjp(vjp_fn):
    """Decorate an op's public function with the ``<op>_vjp`` that differentiates it."""

    def decorate(fn):
        fn.vjp = vjp_fn
        return fn

    return decorate


def vjp(fn, *arrays, **kwargs):
    """Run op ``fn`` and return ``(out, pullback)``; ``pullback(dout)`` returns a tuple of gradients.

    >>> y, pullback = miniconv.vjp(miniconv.nn.conv2d, x, w, strides=2, padding="SAME")
    >>> dx, dw = pullback(dy)
    """
    vjp_fn = getattr(fn, "vjp", None)
    if vjp_fn is None:
        raise TypeError(f"vjp: expected an op of miniconv.nn (with a gradient), got {fn!r}")
    return vjp_fn(*arrays, **kwargs)
