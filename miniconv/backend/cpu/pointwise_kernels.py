"""1 x 1 convolutions (the pointwise layers of MobileNet, EfficientNet, separable_conv2d) as plain
matrix products; conv2d's cpu entry points, sending every other geometry on to Winograd (3 x 3,
stride 1, many channels: ``winograd_conv2d``), direct loops (the filter gradient of few channels) or im2col.

Shape legend: N batch, H W input size, C in-channels, K filters, P Q output size (= H W here);
M = N * H * W rows.

A 1 x 1, stride-1, unpadded convolution has one input cell per patch: the patch matrix is x itself,
viewed (M, C), so im2col's copy and col2im's scatter would only move memory:

    forward          y  (M, K) = x (M, C) @ w (C, K)        row blocks shared by the threads
                     (fused with a bias and ReLU6: blocks of rows whose x and y fit a core's L2, the epilogue on
                     each block while it is there)
    backward-input   dx (M, C) = dy (M, K) @ w.T (K, C)     row blocks shared by the threads
    backward-filter  dw (C, K) = sum over row chunks of x[rows].T @ dy[rows], one partial a chunk
                     (the chunks depend on the shape only), added in chunk order: the same bits
                     whichever thread ran which chunk; rows too few for two chunks: x.T @ dy in
                     blocks of dw shared by the threads (the one chunk's product, the same bits)
    after bias + ReLU6 dy = dz * (0 < z < 6) formed per L2 block of rows of each filter-gradient
                     chunk, both products taken there (``conv2d_bias_backward``)

Where C * K is a few thousand or less, every product above runs in pieces of rows that OpenBLAS
multiplies with its small-matrix kernel, without packing (``small_products``; w.T is copied to rows
for them): one thread, 20-35% faster on this layer's products.
"""

from __future__ import annotations

import numpy as np

from . import conv_kernels, direct_kernels, winograd_conv2d
from .elementwise_kernels import bias_activation_backward, bias_activation_rows, relu6_gradient_rows
from .small_products import add_transposed_product, matmul_into, rows_of
from .work_sharing import chunk_bounds, matmul, partials, run_chunks, scratch, single_threaded_blas, sum_in_order

FILTER_CHUNKS = 8  # row chunks of the filter gradient (shape-only; 4 per thread of two)
MIN_CHUNK_ROWS = 1024  # a chunk smaller than this is not worth a product of its own
BLOCK_BYTES = 1 << 20  # a fused-forward block's rows of x and z together: 1 MiB, a core's L2 (AMD EPYC here)


def applies(g) -> bool:
    """A 1 x 1 filter, stride 1, no padding (dilation does not matter for one tap)."""
    return (g.R, g.S, g.sh, g.sw, g.top, g.bottom, g.left, g.right) == (1, 1, 1, 1, 0, 0, 0, 0)


def conv2d_forward(x, w, g):
    """y (N, P, Q, K): x (M, C) @ w (C, K) where ``applies``, else ``direct_kernels.conv2d_forward``
    (direct loops for few channels, Winograd for many, else im2col)."""
    if not applies(g):
        return direct_kernels.conv2d_forward(x, w, g)
    return matmul(x.reshape(-1, g.C), w.reshape(g.C, g.K), pieces=True).reshape(g.output_shape)


def conv2d_bias_forward(x, w, bias, g, activation=None):
    """z (N, P, Q, K) = conv2d(x, w) + bias, then ReLU6 for ``activation="relu6"``: per block of rows
    (rows (C + K) values of ``BLOCK_BYTES`` at most, shared by the threads), the product and then bias and
    ReLU6 while the block is still in L2 (``bias_activation_rows``), instead of two more passes over z.
    Counting the block's x rows too matters where C is large: EfficientNet-Lite0's 1x1 layers at batch 20
    took 108 ms with blocks of 1 MiB of x and z, 116 ms with blocks of 256 KiB of z alone (measured). Other
    geometries: im2col's chunks, with the same epilogue (``conv_kernels.conv2d_forward``)."""
    if not applies(g):
        return conv_kernels.conv2d_forward(x, w, g, bias, activation)
    x2, w2 = x.reshape(-1, g.C), w.reshape(g.C, g.K)
    z = np.empty((x2.shape[0], g.K), np.result_type(x2, w2))
    bounds = chunk_bounds(x2.shape[0], max(16, BLOCK_BYTES // (z.itemsize * (g.C + g.K))))
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:  # NumPy runs a 1-row product as gemv,
        bounds = (*bounds[:-2], (bounds[-2][0], bounds[-1][1]))  # which rounds otherwise: into the last block
    relu6 = activation == "relu6"

    def task(i):
        start, stop = bounds[i]
        matmul_into(x2[start:stop], w2, z[start:stop])
        bias_activation_rows(z[start:stop], bias, relu6)

    with single_threaded_blas():
        run_chunks(task, len(bounds))
    return z.reshape(g.output_shape)


def conv2d_backward_input(dy, w, g):
    """dx (N, H, W, C): dy (M, K) @ w.T where ``applies``, else ``winograd_conv2d.conv2d_backward_input``
    (Winograd or im2col)."""
    if not applies(g):
        return winograd_conv2d.conv2d_backward_input(dy, w, g)
    return matmul(dy.reshape(-1, g.K), rows_of(w.reshape(g.C, g.K).T), pieces=True).reshape(g.input_shape)


def both_by_im2col(g) -> bool:
    """Whether both gradients would take im2col's products, each on its own (no 1 x 1 product, no
    Winograd, no direct filter-gradient loops, no patch-major input gradient), with at least
    conv_kernels.MIN_CHUNKS images: ``conv_kernels.conv2d_backward``'s chunks are whole images, so
    fewer would leave a thread idle."""
    return (not applies(g) and g.C > conv_kernels.PATCH_MAJOR_MAX_CHANNELS and g.N >= conv_kernels.MIN_CHUNKS
            and not winograd_conv2d.backward_input_applies(g) and not winograd_conv2d.backward_filter_applies(g)
            and not direct_kernels.filter_gradient_applies(g))


def conv2d_backward(x, w, dy, g, input_gradient=True):
    """(dx or None, dw): both by ``winograd_conv2d.backward``'s one pass over dy where it applies (dx
    asked for, ``one_pass_applies``, ``one_pass_in_range``), by im2col's one pass
    (``conv_kernels.conv2d_backward``) where ``both_by_im2col``, else ``conv2d_backward_input`` and
    ``conv2d_backward_filter``, each on its own path."""
    if input_gradient and winograd_conv2d.one_pass_applies(g) and winograd_conv2d.one_pass_in_range(x, w, dy, g):
        return winograd_conv2d.backward(x, w, dy, g)
    if input_gradient and both_by_im2col(g):
        return conv_kernels.conv2d_backward(x, w, dy, g)
    dx = conv2d_backward_input(dy, w, g) if input_gradient else None
    return dx, conv2d_backward_filter(x, dy, g)


def conv2d_backward_filter(x, dy, g):
    """dw (1, 1, C, K) as in the module docstring where ``applies``, else ``direct_kernels.conv2d_backward_filter``."""
    if not applies(g):
        return direct_kernels.conv2d_backward_filter(x, dy, g)
    x2, dy2 = x.reshape(-1, g.C), dy.reshape(-1, g.K)
    rows = x2.shape[0]
    bounds = chunk_bounds(rows, max(MIN_CHUNK_ROWS, -(-rows // FILTER_CHUNKS)))
    if len(bounds) == 1:  # too few rows to share (a 7x7 layer at batch 20: 980): share dw's blocks instead
        return matmul(x2.T, dy2).reshape(g.filter_shape)
    dw_partials = partials(len(bounds), (g.C, g.K), x.dtype)

    def task(i):
        start, stop = bounds[i]
        product = scratch("pointwise_dw_block", (g.C, g.K), x.dtype)
        add_transposed_product(x2[start:stop], dy2[start:stop], dw_partials[i], product)

    with single_threaded_blas():
        run_chunks(task, len(bounds))
    return sum_in_order(dw_partials).reshape(g.filter_shape)


def conv2d_bias_backward(x, w, z, dz, g, activation=None, input_gradient=True):
    """(dx or None, dw, dbias) of z = conv2d_bias(x, w, bias, activation) at upstream dz.

    1 x 1 (``applies``) with ReLU6, rows enough for two filter-gradient chunks: per chunk of rows (the
    filter gradient's), block by block of rows that fit a core's L2 with their dy:

        dy     = dz * (0 < z < 6)        the block's rows (``relu6_gradient_rows``), dbias partial += their sums
        dx     = dy @ w.T                the block's rows
        dw partial += x.T @ dy           the block's product added to the chunk's partial

    dy is never written out and read back (twice: by each product). The partials are added in chunk
    order, so the bits do not depend on which thread ran which chunk; dw and dbias sum the composition's
    terms in another order. Otherwise ``bias_activation_backward``, then ``conv2d_backward``.
    """
    rows = g.N * g.P * g.Q
    bounds = chunk_bounds(rows, max(MIN_CHUNK_ROWS, -(-rows // FILTER_CHUNKS)))
    if activation != "relu6" or not applies(g) or len(bounds) == 1:
        dy, dbias = bias_activation_backward(dz.reshape(rows, g.K), z.reshape(rows, g.K), activation)
        return (*conv2d_backward(x, w, dy.reshape(g.output_shape), g, input_gradient), dbias)
    x2, z2, dz2 = x.reshape(rows, g.C), z.reshape(rows, g.K), dz.reshape(rows, g.K)
    w2_t = rows_of(w.reshape(g.C, g.K).T)
    block = max(16, BLOCK_BYTES // (dz.itemsize * (g.C + g.K)))  # rows of x (or dx) and dy together
    dw_partials = partials(len(bounds), (g.C, g.K), dz.dtype)
    dbias_partials = partials(len(bounds), (g.K,), dz.dtype)
    dx = np.empty((rows, g.C), dz.dtype) if input_gradient else None

    def task(i):
        start, stop = bounds[i]
        dy = scratch("pointwise_dy_block", (block + 1, g.K), dz.dtype)
        product = scratch("pointwise_dw_block", (g.C, g.K), dz.dtype)
        first = start
        while first < stop:
            last = min(first + block, stop)
            if stop - last == 1:  # NumPy runs a 1-row product as gemv, which rounds otherwise: no 1-row block
                last = stop
            d = dy[: last - first]
            relu6_gradient_rows(dz2[first:last], z2[first:last], d, dbias_partials[i])
            if input_gradient:
                matmul_into(d, w2_t, dx[first:last])
            add_transposed_product(x2[first:last], d, dw_partials[i], product)
            first = last

    with single_threaded_blas():
        run_chunks(task, len(bounds))
    dx = dx.reshape(g.input_shape) if input_gradient else None
    return dx, sum_in_order(dw_partials).reshape(g.filter_shape), sum_in_order(dbias_partials)
