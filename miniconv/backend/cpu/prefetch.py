"""Software prefetch spread over a row's work: the next row's lines asked for a few at a time.

Why: the depthwise row loops alternate between reading a row from memory (the ring's fill, a
streaming loop) and computing on rows in cache. The hardware prefetchers follow the reads, but
nothing runs ahead while the products run, so the memory time adds to the compute. Asking for the
next row's lines during the products hides part of it. Asked all at once into L1, the requests
queued behind each other and stalled the products (measured before: no gain); a share before each
group of cells, into L2, keeps a few in flight at a time. Measured on the 3 x 3 depthwise layers at
batch 32, two threads, prefetch off and on in one process, best of five rounds (ms):

    112 x 112 x 32   forward stride 1  5.98 -> 4.89   stride 2 3.10 -> 2.38
                     backward          10.69 -> 8.91            6.47 -> 5.77
    56 x 56 x 144    forward           5.72 -> 5.03             3.35 -> 3.08
                     backward          10.61 -> 9.42            6.33 -> 5.84

    prefetches(rows)                  whether a loop reading ``rows`` should prefetch (larger than the cache)
    prefetch(a, i)                    a hint that a[i] (1-D) will be read soon; no effect on values
    share_lines(count, itemsize, part, parts)
                                      (first, stop): the lines of share ``part`` of ``parts`` equal
                                      shares of ``count`` values' lines, at most MOST lines
    prefetch_share(a, part, parts)    the hint for every line of a's share ``part`` (a of length 0:
                                      nothing)
    next_row(rows, u, wanted)         rows[u + 1] of a 2-D array if ``wanted``, else an empty row

``llvm.prefetch`` (read, locality LOCALITY, data): on x86 ``prefetcht1``; a target without one drops
it. No address past the array is formed: the last share stops at its end.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .streaming_stores import STREAM_MIN_BYTES

LINE = 64  # bytes a request brings in
# llvm.prefetch's locality: 2 brings a line into L2 (x86 prefetcht1) and leaves L1 to the rows being
# computed on. Measured (forward below, two threads, best of eight rounds): 56 x 56 x 144 no prefetch
# 5.60 ms, into L1 (3) 6.41, into L2 (2) 4.54; 112 x 112 x 32 5.87, 4.70, 4.60.
LOCALITY = 2
# Lines asked for before one group of cells, at most: 56 x 56 x 144 at stride 2 reads 1,260 new lines a
# row over 7 groups, and 180 requests at once stalled the products (backward, two threads, best of five
# rounds: no prefetch 6.48 ms, all lines 6.47, at most 16 / 32 / 64 a group 6.16 / 5.84 / 6.02; the
# other depthwise layers gained as much with 32 as without a bound). The rest of the row comes in as
# the ring reads it.
MOST = 32


def prefetches(rows) -> bool:
    """Whether a row loop should prefetch the next rows of ``rows``, the tensor it reads row by row
    from memory: one too large to stay in cache (``STREAM_MIN_BYTES``). The depthwise layers that fit
    (14 x 14 x 480 and 28 x 28 x 240 at batch 32: 12 and 24 MB) gained nothing."""
    return rows.nbytes >= STREAM_MIN_BYTES


@intrinsic
def prefetch(typingctx, array, index):
    """Hint that array[index] (1-D, index in range) is read soon."""
    if not (isinstance(array, types.Array) and array.ndim == 1 and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0])
        position = context.cast(builder, args[1], signature.args[1], types.intp)
        pointer = cgutils.get_item_pointer(context, builder, signature.args[0], data, [position],
                                           wraparound=False, boundscheck=False)
        byte_pointer = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]), "llvm.prefetch.p0")
        # read (0), locality 2 (x86: prefetcht1, the line into L2 but not L1), data cache (1)
        builder.call(function, [builder.bitcast(pointer, byte_pointer), ir.Constant(i32, 0), ir.Constant(i32, LOCALITY),
                                ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen


@njit(nogil=True, cache=True, inline="always")
def share_lines(count, itemsize, part, parts):
    """(first, stop): the lines of share ``part`` (0 <= part < parts) of ``count`` values of ``itemsize``
    bytes: the lines cut into ``parts`` equal runs (the last shorter), each at most MOST lines."""
    per_line = max(1, LINE // itemsize)
    lines = -(-count // per_line)
    per_part = min(MOST, -(-lines // max(1, parts)))
    first = min(lines, part * per_part)
    return first, min(lines, first + per_part)


@njit(nogil=True, cache=True, inline="always")
def prefetch_share(a, part, parts):
    """Prefetch the lines of share ``part`` of a's (``share_lines``): one request per line."""
    per_line = max(1, LINE // a.itemsize)
    first, stop = share_lines(a.shape[0], a.itemsize, part, parts)
    for line in range(first, stop):
        prefetch(a, line * per_line)


@njit(nogil=True, cache=True, inline="always")
def next_row(rows, u, wanted):
    """rows[u + 1] (rows 2-D) if ``wanted`` (the caller's loop reads it next), else an empty row of
    rows[u]: what a row loop passes as ``ahead`` to its prefetching row kernels."""
    return rows[u + 1] if wanted else rows[u][:0]
