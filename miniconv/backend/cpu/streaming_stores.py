"""Copies whose stores bypass the cache ("non-temporal" stores), for outputs far larger than it.

Why: an ordinary store to a line that is not in cache first reads the line from memory (a read
for ownership), so writing a large output moves it twice. Measured here on the depthwise stride-2
input gradient (32 x 56 x 56 x 144, 58 MB, one thread): its rows gathered into one row in cache
took 1.2 ms, written straight into dx 5.7-6.0 ms, gathered then copied with ordinary stores
5.1 ms. A non-temporal store writes whole lines without reading them. The cost: the written
values are not in cache afterwards, so only outputs that would not stay there anyway (larger than
``STREAM_MIN_BYTES``) take this path.

    stream_copy(src, dst)    dst[:] = src, 1-D arrays of one length and float dtype; the same
                             values and bits as an ordinary copy

On x86 the vector stores become ``vmovntps`` / ``vmovntpd`` and an ``sfence`` follows the copy;
elsewhere LLVM emits its target's equivalent or an ordinary store, and a full fence follows. The
stores are weakly ordered: the fence puts them before every later store of the thread, so before
the end of its chunk, which publishes the rows to the thread that waits for them.
"""

from __future__ import annotations

import glob
import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LINE = 64  # bytes: one cache line, the unit a non-temporal store writes
X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def _last_level_cache_bytes() -> int:
    """The largest cache's size as Linux reports it (32 MiB, the L3 of the AMD EPYC here), else 32 MiB."""
    sizes = []
    for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        try:
            with open(path) as file:
                text = file.read().strip()
        except OSError:
            continue
        units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
        if text[-1:].upper() in units and text[:-1].isdigit():
            sizes.append(int(text[:-1]) * units[text[-1].upper()])
        elif text.isdigit():
            sizes.append(int(text))
    return max(sizes, default=32 << 20)


# Outputs of at least this many bytes stream: three quarters of the L3 (the threshold glibc's memcpy
# uses for its own non-temporal copies is of that order). A smaller output may still be in cache
# when the next layer reads it.
STREAM_MIN_BYTES = 3 * _last_level_cache_bytes() // 4


def streams(out) -> bool:
    """Whether a kernel writing ``out`` row by row should stream it (``STREAM_MIN_BYTES`` or more)."""
    return out.nbytes >= STREAM_MIN_BYTES


@intrinsic
def stream_copy(typingctx, src, dst):
    """dst[:] = src (module docstring): the cells before dst's first 64-byte boundary and after its
    last whole line by ordinary stores, the lines between by non-temporal vector stores, then a fence."""
    if not (isinstance(src, types.Array) and isinstance(dst, types.Array) and src.ndim == dst.ndim == 1
            and src.dtype == dst.dtype and src.dtype in (types.float32, types.float64)):
        return None

    def codegen(context, builder, signature, args):
        source = context.make_array(signature.args[0])(context, builder, args[0])
        target = context.make_array(signature.args[1])(context, builder, args[1])
        source_stride = cgutils.unpack_tuple(builder, source.strides, 1)[0]
        target_stride = cgutils.unpack_tuple(builder, target.strides, 1)[0]
        count = cgutils.unpack_tuple(builder, target.shape, 1)[0]
        element = context.get_value_type(signature.args[1].dtype)
        itemsize = context.get_abi_sizeof(element)
        lanes = LINE // itemsize
        intp = count.type
        zero, one = ir.Constant(intp, 0), ir.Constant(intp, 1)

        def address(array, stride, index):  # element pointer, for arrays of any stride
            offset = builder.mul(index, stride)
            raw = builder.gep(builder.bitcast(array.data, ir.IntType(8).as_pointer()), [offset])
            return builder.bitcast(raw, element.as_pointer())

        def scalar_copy(start, stop):
            with cgutils.for_range_slice(builder, start, stop, one, intp) as (index, _):
                value = builder.load(address(source, source_stride, index))
                builder.store(value, address(target, target_stride, index))

        contiguous = builder.and_(builder.icmp_signed("==", source_stride, ir.Constant(intp, itemsize)),
                                  builder.icmp_signed("==", target_stride, ir.Constant(intp, itemsize)))
        start = builder.ptrtoint(target.data, intp)
        # elements to the first line boundary, or all of them if dst is not aligned to its itemsize
        to_boundary = builder.and_(builder.sub(zero, start), ir.Constant(intp, LINE - 1))
        aligned_items = builder.icmp_signed("==", builder.and_(start, ir.Constant(intp, itemsize - 1)), zero)
        head = builder.select(builder.and_(contiguous, aligned_items),
                              builder.udiv(to_boundary, ir.Constant(intp, itemsize)), count)
        head = builder.select(builder.icmp_signed("<", head, count), head, count)
        lines = builder.udiv(builder.sub(count, head), ir.Constant(intp, lanes))
        body_end = builder.add(head, builder.mul(lines, ir.Constant(intp, lanes)))
        scalar_copy(zero, head)
        vector = ir.VectorType(element, lanes)
        nontemporal = builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)])
        with cgutils.for_range(builder, lines, intp=intp) as loop:
            index = builder.add(head, builder.mul(loop.index, ir.Constant(intp, lanes)))
            value = builder.load(builder.bitcast(address(source, source_stride, index), vector.as_pointer()),
                                 align=itemsize)
            store = builder.store(value, builder.bitcast(address(target, target_stride, index), vector.as_pointer()),
                                  align=LINE)
            store.set_metadata("nontemporal", nontemporal)
        scalar_copy(body_end, count)
        if X86:  # SFENCE: the instruction that orders non-temporal stores before later stores
            sfence = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                    "llvm.x86.sse.sfence")
            builder.call(sfence, [])
        else:
            builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(src, dst), codegen
