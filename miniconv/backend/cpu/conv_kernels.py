"""Numba kernels for 2-D convolution: im2col / col2im around BLAS products, in chunks.

Shape legend: N batch, H W input size, C in-channels, K filters, R S kernel size, P Q output size.

The convolution is a matrix product once the input patches are laid out as rows:

    cols[(n*P + p)*Q + q, (r*S + s)*C + c] = x[n, p*sh + r*dh - top, q*sw + s*dw - left, c]  (0 outside)
    y   (N*P*Q, K)   = cols (N*P*Q, R*S*C) @ w (R*S*C, K)          forward
    dw  (R*S*C, K)   = cols.T @ dy (N*P*Q, K)                       backward-filter
    dcols            = dy @ w.T;  dx = col2im(dcols)                backward-input

HWIO filters reshape to (R*S*C, K) for free, and the rows of y are NHWC for free, so the only
layout work is im2col / col2im. The whole patch matrix is never built: each chunk of rows is
laid out and multiplied while it is still in cache, and the chunks are shared between threads
by ``work_sharing.run_chunks`` (BLAS single-threaded inside a chunk).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .elementwise_kernels import bias_activation_rows, relu_gradient_rows
from .work_sharing import chunk_bounds, run_chunks, scratch, single_threaded_blas, sum_in_order

CHUNK_BYTES = 1 << 19  # patches per chunk: 512 KiB stays in a core's L2 between im2col and the product
MIN_CHUNKS = 4  # at least this many chunks (when there are rows enough), so that threads finish together
# A backward chunk is one image when an image's patches and dy rows exceed CHUNK_BYTES; beyond
# BLOCK_BYTES it is taken in blocks of conv rows of about that size (cats vs dogs' layers,
# fwd+bwd: 512 KiB and 2 MiB blocks measured slower than 1 MiB; whole images slowest).
BLOCK_BYTES = 2 * CHUNK_BYTES


@njit(nogil=True, cache=True, inline="always")
def _image_row(block, rows_per_unit, units_per_image, first_unit):
    """(n, p): the output image row of the patch matrix's block of Q rows (im2col_rows's row map)."""
    unit = first_unit + block // rows_per_unit
    return unit // units_per_image, (unit % units_per_image) * rows_per_unit + block % rows_per_unit


@njit(nogil=True, cache=True)
def im2col_rows(x, R, S, sh, sw, dh, dw, top, left, Q, rows_per_unit, units_per_image, first_unit, cols):
    """cols = the patches of output image rows (their first Q cells, Q matrix rows each), ``rows_per_unit`` per unit.

    Unit u (from first_unit) is the output image rows (n, i * rows_per_unit + t), t < rows_per_unit,
    with n = u // units_per_image and i = u % units_per_image: with rows_per_unit = 1 and
    units_per_image = P, the output image rows (n, p) in order, so matrix row (n*P + p)*Q + q;
    with the pooling window's height, the conv rows a non-overlapping pooling reads.
    Per image row and filter cell (r, s) the loop runs over q: one bounds test for the input
    row, none per channel.
    """
    _, H, W, C = x.shape
    for block in range(cols.shape[0] // Q):
        n, p = _image_row(block, rows_per_unit, units_per_image, first_unit)
        row0 = block * Q
        for r in range(R):
            h = p * sh + r * dh - top
            for s in range(S):
                base = (r * S + s) * C
                for q in range(Q):
                    w = q * sw + s * dw - left
                    if 0 <= h < H and 0 <= w < W:
                        for c in range(C):
                            cols[row0 + q, base + c] = x[n, h, w, c]
                    else:
                        for c in range(C):
                            cols[row0 + q, base + c] = 0.0


@njit(nogil=True, cache=True)
def im2col_rows_patch_major(x, R, S, sh, sw, dh, dw, top, left, Q, rows_per_unit, units_per_image, first_unit,
                            cols_t):
    """cols_t (R*S*C, rows) = im2col_rows's cols, transposed: the layout for inputs of few channels.

    With C = 1 a row of cols holds R*S scattered single values; here each filter cell (r, s, c)
    and image row is one run of Q copies (a loop that vectorises where sw = 1): 1.5-1.9x faster
    for MNIST's and RGB first layers (measured), and a BLAS product takes cols_t.T as it is.
    Columns q < q_lo and q >= q_hi read outside the input (padding): zeros.
    """
    _, H, W, C = x.shape
    for block in range(cols_t.shape[1] // Q):
        n, p = _image_row(block, rows_per_unit, units_per_image, first_unit)
        row0 = block * Q
        for r in range(R):
            h = p * sh + r * dh - top
            for s in range(S):
                offset = s * dw - left  # input column of output column q: q * sw + offset
                q_lo = min(Q, max(0, (sw - 1 - offset) // sw))
                q_hi = max(q_lo, min(Q, (W - 1 - offset) // sw + 1))
                if h < 0 or h >= H:
                    q_hi = q_lo
                for c in range(C):
                    out = cols_t[(r * S + s) * C + c, row0 : row0 + Q]
                    for q in range(q_lo):
                        out[q] = 0.0
                    if q_hi > q_lo and sw == 1:  # (never a view of a row h outside the input)
                        source = x[n, h, q_lo + offset : q_hi + offset, c]
                        inside = out[q_lo:q_hi]
                        for q in range(q_hi - q_lo):
                            inside[q] = source[q]
                    elif q_hi > q_lo:
                        for q in range(q_lo, q_hi):
                            out[q] = x[n, h, q * sw + offset, c]
                    for q in range(q_hi, Q):
                        out[q] = 0.0


PATCH_MAJOR_MAX_CHANNELS = 3  # inputs of at most this many channels get patch-major patches


def patch_matrix(x, g, Q, rows_per_unit, units_per_image, first_unit, rows):
    """The (rows, R*S*C) patch matrix of ``im2col_rows``'s row map, in this thread's scratch.

    Row-major for inputs of many channels; for few (``PATCH_MAJOR_MAX_CHANNELS``) the transpose
    of a patch-major buffer (``im2col_rows_patch_major``). Either goes into np.matmul as it is.
    """
    patch = g.R * g.S * g.C
    if g.C <= PATCH_MAJOR_MAX_CHANNELS:
        cols_t = scratch("cols_t", (patch, rows), x.dtype)
        im2col_rows_patch_major(x, g.R, g.S, g.sh, g.sw, g.dh, g.dw, g.top, g.left, Q, rows_per_unit, units_per_image,
                                first_unit, cols_t)
        return cols_t.T
    cols = scratch("cols", (rows, patch), x.dtype)
    im2col_rows(x, g.R, g.S, g.sh, g.sw, g.dh, g.dw, g.top, g.left, Q, rows_per_unit, units_per_image, first_unit, cols)
    return cols


@njit(nogil=True, cache=True)
def col2im_add_rows(dcols, R, S, sh, sw, dh, dw, top, left, first_row, Q, dx_image):
    """dx_image[h, w, c] += dcols[(p - first_row)*Q + q, (r*S + s)*C + c] over the patch cells that read it.

    dcols holds the output rows p = first_row, first_row + 1, ... (Q cells each) of one image,
    dx_image (H, W, C) that image's input gradient, added to (not cleared).
    """
    H, W, C = dx_image.shape
    for block in range(dcols.shape[0] // Q):
        p = first_row + block
        for q in range(Q):
            row = block * Q + q
            for r in range(R):
                h = p * sh + r * dh - top
                if h < 0 or h >= H:
                    continue
                for s in range(S):
                    w = q * sw + s * dw - left
                    if w < 0 or w >= W:
                        continue
                    base = (r * S + s) * C
                    for c in range(C):
                        dx_image[h, w, c] += dcols[row, base + c]


@njit(nogil=True, cache=True)
def col2im_patch_major_add(dcols_t, R, S, sh, sw, dh, dw, top, left, first_row, Q, dx_t):
    """dx_t[c, h, w] += dcols_t[(r*S + s)*C + c, (p - first_row)*Q + q] over the patch cells that read it.

    ``col2im_add_rows`` for few channels: dcols patch-major (as ``im2col_rows_patch_major``'s
    cols_t) and the image's gradient channel-major (C, H, W), so that each filter cell (r, s, c)
    and output row p adds one run of Q values to one input row, a loop that vectorises where
    sw = 1 (row-major, each patch row scatters R*S runs of C values). A cell's terms are added in
    col2im_add_rows's order (p, then q, ascending: s runs downwards), so the sums are its bits.
    """
    C, H, W = dx_t.shape
    for block in range(dcols_t.shape[1] // Q):
        p = first_row + block
        row0 = block * Q
        for r in range(R):
            h = p * sh + r * dh - top
            if h < 0 or h >= H:
                continue
            for s in range(S - 1, -1, -1):
                offset = s * dw - left  # input column of output column q: q * sw + offset
                q_lo = min(Q, max(0, (sw - 1 - offset) // sw))
                q_hi = max(q_lo, min(Q, (W - 1 - offset) // sw + 1))
                for c in range(C):
                    source = dcols_t[(r * S + s) * C + c]
                    target = dx_t[c, h]
                    if sw == 1:
                        inside = source[row0 + q_lo : row0 + q_hi]
                        out = target[q_lo + offset : q_hi + offset]
                        for q in range(q_hi - q_lo):
                            out[q] += inside[q]
                    else:
                        for q in range(q_lo, q_hi):
                            target[q * sw + offset] += source[row0 + q]


@njit(nogil=True, cache=True)
def col2im_images(dcols, R, S, sh, sw, dh, dw, top, left, P, Q, dx):
    """dx[n, h, w, c] = sum of dcols[(n*P + p)*Q + q, (r*S + s)*C + c] over the patch cells that read it.

    dx holds whole images (a block of the batch) and dcols exactly their rows: the output cells
    p < P, q < Q of each image (all of them, or the ones a pooling reads).
    """
    dx[:] = 0.0
    for n in range(dx.shape[0]):
        col2im_add_rows(dcols[n * P * Q : (n + 1) * P * Q], R, S, sh, sw, dh, dw, top, left, 0, Q, dx[n])


def _row_chunks(g):
    """Bounds of the row chunks for the forward and backward-filter passes, in output image rows.

    A chunk is a whole number of output image rows (Q matrix rows each) whose patches fill about
    CHUNK_BYTES, or less to make MIN_CHUNKS chunks.
    """
    return _unit_chunks(g.N * g.P, 4 * g.R * g.S * g.C * g.Q)


def _unit_chunks(units, unit_bytes):
    per_chunk = max(1, min(CHUNK_BYTES // unit_bytes, -(-units // MIN_CHUNKS)))
    return chunk_bounds(units, per_chunk)


def _patches(x, g, start, stop):
    """The patch matrix of output image rows [start, stop) (Q matrix rows each)."""
    return patch_matrix(x, g, g.Q, 1, g.P, start, (stop - start) * g.Q)


@njit(nogil=True, cache=True)
def bias_relu_rows(y, bias):
    """In place: y[m, k] = max(y[m, k] + bias[k], 0), NaN kept (the same select as relu)."""
    M, K = y.shape
    for m in range(M):
        for k in range(K):
            z = y[m, k] + bias[k]
            y[m, k] = 0.0 if z <= 0 else z


def conv2d_forward(x, w, g, bias=None, activation="relu"):
    """y (N, P, Q, K): per chunk of rows, y[rows] = im2col(x)[rows] @ w.reshape(R*S*C, K).

    With ``bias``, each chunk then becomes activation(y[rows] + bias) while it is still in cache:
    "relu" max(., 0) (``bias_relu_rows``), "relu6", or None (the bias alone: ``bias_activation_rows``).
    """
    w_matrix = w.reshape(-1, g.K)
    y = np.empty((g.N * g.P * g.Q, g.K), x.dtype)
    bounds = _row_chunks(g)

    def task(i):
        start, stop = bounds[i]
        rows = slice(start * g.Q, stop * g.Q)
        np.matmul(_patches(x, g, start, stop), w_matrix, out=y[rows])
        if bias is not None and activation == "relu":
            bias_relu_rows(y[rows], bias)
        elif bias is not None:
            bias_activation_rows(y[rows], bias, activation == "relu6")

    with single_threaded_blas():
        run_chunks(task, len(bounds))
    return y.reshape(g.N, g.P, g.Q, g.K)


def conv2d_bias_relu_forward(x, w, bias, g):
    """z (N, P, Q, K) = max(conv2d(x, w) + bias, 0), bias and ReLU applied per chunk of rows."""
    return conv2d_forward(x, w, g, bias)


def conv2d_backward_filter(x, dy, g):
    """dw (R, S, C, K) = sum over row chunks of im2col(x)[rows].T @ dy[rows].

    Each chunk's product goes to its own partial and the partials are added in chunk order: the
    same bits whichever thread ran which chunk, so a seeded training run repeats exactly, while
    the threads still pull chunks as they come free.
    """
    dy_rows = dy.reshape(-1, g.K)
    patch = g.R * g.S * g.C
    bounds = _row_chunks(g)
    partials = scratch("dw_partials", (len(bounds), patch, g.K), x.dtype)

    def task(i):
        start, stop = bounds[i]
        np.matmul(_patches(x, g, start, stop).T, dy_rows[start * g.Q : stop * g.Q], out=partials[i])

    with single_threaded_blas():
        run_chunks(task, len(bounds))
    return sum_in_order(partials).reshape(g.R, g.S, g.C, g.K)


def conv2d_bias_relu_backward(x, w, z, dz, g, input_gradient=True):
    """(dx or None, dw, dbias) of z = max(conv2d(x, w) + bias, 0) at upstream dz: dy = dz where
    z > 0 else 0, formed chunk by chunk inside ``backward_by_images``'s single pass."""
    rows_per_image = g.P * g.Q
    dz_rows = dz.reshape(-1, g.K)
    z_rows = z.reshape(-1, g.K)
    zero = dz.dtype.type(0)

    def upstream(first, last, dy, bias_partial):
        rows = slice(first * rows_per_image, last * rows_per_image)
        relu_gradient_rows(dz_rows[rows], z_rows[rows], zero, dy, bias_partial)

    return backward_by_images(x, w, g, upstream, input_gradient)


def backward_by_images(x, w, g, upstream, input_gradient, cells=None):
    """(dx or None, dw, dbias) of a convolution, per chunk of whole images, all in cache:

        upstream(first, last, dy, bias_partial)   fills dy (the images' conv cells, K) and adds
                                                  its column sums to bias_partial
        dw    += im2col(x).T @ dy                 (the cells' patches only)
        dx     = col2im(dy @ w.reshape(R*S*C, K).T)                    (only with input_gradient)

    ``cells`` = (Pz, Qz): the first Pz rows and Qz columns of each image's conv output (default
    all P x Q), the rest having a zero gradient. Chunks hold whole images, so no two threads write
    the same dx cell; each has its own dw and dbias partials, added in chunk order (the same bits
    whichever thread ran which chunk). An image whose patches and dy rows exceed CHUNK_BYTES is
    a chunk of its own, and beyond BLOCK_BYTES (cats vs dogs: 6 MB of patches an image in its
    second layer) it is taken in blocks of conv rows of that size, one after the other, so that
    patches and dcols stay in cache.
    """
    Pz, Qz = (g.P, g.Q) if cells is None else cells
    patch, rows_per_image = g.R * g.S * g.C, Pz * Qz
    w_matrix = w.reshape(patch, g.K)
    bytes_per_conv_row = 4 * Qz * (patch + g.K)  # patches (or dcols, which share their budget) and dy rows
    bounds = _unit_chunks(g.N, Pz * bytes_per_conv_row)
    conv_rows_per_block = max(1, min(Pz, BLOCK_BYTES // bytes_per_conv_row))
    dw_partials = scratch("dw_partials", (len(bounds), patch, g.K), x.dtype)
    bias_partials = np.zeros((len(bounds), g.K), x.dtype)
    dx = np.empty(x.shape, x.dtype) if input_gradient else None

    def whole_images(i, first, last, dy):
        rows = (last - first) * rows_per_image
        cols = patch_matrix(x, g, Qz, Pz, 1, first, rows)  # unit = an image
        np.matmul(cols.T, dy, out=dw_partials[i])
        if input_gradient:
            dcols = scratch("dcols", (rows, patch), x.dtype)
            np.matmul(dy, w_matrix.T, out=dcols)
            col2im_images(dcols, g.R, g.S, g.sh, g.sw, g.dh, g.dw, g.top, g.left, Pz, Qz, dx[first:last])

    def image_in_blocks(i, n, dy):
        if input_gradient:
            dx[n] = 0.0
        for p0 in range(0, Pz, conv_rows_per_block):
            p1 = min(Pz, p0 + conv_rows_per_block)
            rows = (p1 - p0) * Qz
            cols = patch_matrix(x, g, Qz, 1, Pz, n * Pz + p0, rows)  # unit = a conv row
            dy_block = dy[p0 * Qz : p1 * Qz]
            if p0 == 0:
                np.matmul(cols.T, dy_block, out=dw_partials[i])
            else:
                dw_block = scratch("dw_block", (patch, g.K), x.dtype)
                np.matmul(cols.T, dy_block, out=dw_block)
                dw_partials[i] += dw_block
            if input_gradient:
                dcols = scratch("dcols", (rows, patch), x.dtype)
                np.matmul(dy_block, w_matrix.T, out=dcols)
                col2im_add_rows(dcols, g.R, g.S, g.sh, g.sw, g.dh, g.dw, g.top, g.left, p0, Qz, dx[n])

    def task(i):
        first, last = bounds[i]
        dy = scratch("dy", ((last - first) * rows_per_image, g.K), x.dtype)
        upstream(first, last, dy, bias_partials[i])
        if conv_rows_per_block < Pz:  # (then every chunk is one image)
            image_in_blocks(i, first, dy)
        else:
            whole_images(i, first, last, dy)

    with single_threaded_blas():
        run_chunks(task, len(bounds))
    return dx, sum_in_order(dw_partials).reshape(g.R, g.S, g.C, g.K), sum_in_order(bias_partials)


def conv2d_backward(x, w, dy, g):
    """(dx, dw) of plain conv2d by ``backward_by_images``' one pass: per chunk of whole images, the
    patches feed dw and the dy rows dx while both are in cache, and the threads meet once instead of
    twice (the two passes on their own: ``conv2d_backward_input``, ``conv2d_backward_filter``). The
    same products and col2im as those; dw's partials are summed by chunks of images instead of rows.
    Measured (2 threads, best of 3 x 30 calls): MNIST conv3, 64 x 5 x 5 x 64 -> 64, 0.73 -> 0.64 ms;
    20 x 36 x 36 x 64 -> 128 stride 2 12.0 -> 11.4; 8 x 32 x 32 x 32 -> 64 5 x 5 11.1 -> 10.5."""
    dy_rows = dy.reshape(-1, g.K)
    rows_per_image = g.P * g.Q

    def upstream(first, last, dy_chunk, bias_partial):
        dy_chunk[:] = dy_rows[first * rows_per_image : last * rows_per_image]

    dx, dw, _ = backward_by_images(x, w, g, upstream, True)
    return dx, dw


def conv2d_backward_input(dy, w, g):
    """dx (N, H, W, C): per block of images, col2im(dy[rows] @ w.reshape(R*S*C, K).T); for inputs
    of few channels (``PATCH_MAJOR_MAX_CHANNELS``) ``backward_input_patch_major``."""
    if g.C <= PATCH_MAJOR_MAX_CHANNELS:
        return backward_input_patch_major(dy, w, g)
    w_matrix = w.reshape(-1, g.K)
    dy_rows = dy.reshape(-1, g.K)
    dx = np.empty((g.N, g.H, g.W, g.C), dy.dtype)
    rows_per_image = g.P * g.Q
    images_per_chunk = min(CHUNK_BYTES // (4 * rows_per_image * w_matrix.shape[0]), -(-g.N // MIN_CHUNKS))
    bounds = chunk_bounds(g.N, max(1, images_per_chunk))

    def task(i):
        first, last = bounds[i]
        rows = slice(first * rows_per_image, last * rows_per_image)
        dcols = scratch("dcols", ((last - first) * rows_per_image, w_matrix.shape[0]), dy.dtype)
        np.matmul(dy_rows[rows], w_matrix.T, out=dcols)
        col2im_images(dcols, g.R, g.S, g.sh, g.sw, g.dh, g.dw, g.top, g.left, g.P, g.Q, dx[first:last])

    with single_threaded_blas():
        run_chunks(task, len(bounds))
    return dx


def backward_input_patch_major(dy, w, g):
    """dx (N, H, W, C) for few input channels: per image and block of output rows,
    dcols_t = w.reshape(R*S*C, K) @ dy[rows].T (patch-major), ``col2im_patch_major_add`` into the
    image's channel-major gradient, transposed into dx at the end of the image.

    Row-major, a patch row of C = 3 scatters nine runs of three values (cats vs dogs' first layer,
    20 x 150 x 150 x 3: 13.1 ms, half of it col2im; this way 11.0 ms, the product 80% of it).
    """
    patch = g.R * g.S * g.C
    w_matrix = w.reshape(patch, g.K)
    dy_rows = dy.reshape(-1, g.K)
    dx = np.empty((g.N, g.H, g.W, g.C), dy.dtype)
    image_bytes = 4 * (g.P * g.Q * patch + g.H * g.W * g.C)  # dcols_t and the channel-major image
    images_per_chunk = min(CHUNK_BYTES // image_bytes, -(-g.N // MIN_CHUNKS))
    bounds = chunk_bounds(g.N, max(1, images_per_chunk))
    rows_per_block = max(1, min(g.P, CHUNK_BYTES // (4 * patch * g.Q)))

    def task(i):
        first, last = bounds[i]
        dx_t = scratch("dx_channel_major", (g.C, g.H, g.W), dy.dtype)
        for n in range(first, last):
            dx_t[:] = 0.0
            for p0 in range(0, g.P, rows_per_block):
                p1 = min(g.P, p0 + rows_per_block)
                dcols_t = scratch("dcols_t", (patch, (p1 - p0) * g.Q), dy.dtype)
                np.matmul(w_matrix, dy_rows[(n * g.P + p0) * g.Q : (n * g.P + p1) * g.Q].T, out=dcols_t)
                col2im_patch_major_add(dcols_t, g.R, g.S, g.sh, g.sw, g.dh, g.dw, g.top, g.left, p0, g.Q, dx_t)
            dx[n] = dx_t.transpose(1, 2, 0)

    with single_threaded_blas():
        run_chunks(task, len(bounds))
    return dx
