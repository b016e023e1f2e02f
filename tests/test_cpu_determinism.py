"""The cpu backend shares chunks between threads in a different order on every call; its results
must not depend on that order, or a seeded training run would not repeat (nor resume exactly)."""

import numpy as np
import pytest

import miniconv
from miniconv import nn

pytestmark = pytest.mark.skipif("cpu" not in miniconv.available_backends(), reason="cpu backend unavailable")


def _repeat(fn, times=8):
    first = fn()
    return all(all(np.array_equal(a, b) for a, b in zip(first, fn())) for _ in range(times))


def test_cpu_conv2d_gradients_are_bitwise_repeatable():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 20, 20, 16)).astype(np.float32)  # many chunks, several groups
    w = rng.standard_normal((3, 3, 16, 24)).astype(np.float32)
    y, pullback = miniconv.vjp(nn.conv2d, x, w, padding="SAME", backend="cpu")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    assert _repeat(lambda: (nn.conv2d(x, w, padding="SAME", backend="cpu"), *pullback(dy)))


@pytest.mark.parametrize("C", [1, 3])
def test_cpu_few_channel_conv2d_filter_gradient_is_bitwise_repeatable(C):
    """conv2d's filter gradient for 3 x 3 and few channels takes direct loops: per-chunk partials added in order."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((16, 28, 28, C)).astype(np.float32)  # 208 block rows: many chunks
    w = rng.standard_normal((3, 3, C, 32)).astype(np.float32)
    y, pullback = miniconv.vjp(nn.conv2d, x, w, padding="SAME", backend="cpu")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    assert _repeat(lambda: pullback(dy)[1:])


def test_cpu_first_layer_conv_pool_gradients_are_bitwise_repeatable():
    """The direct loops of a first layer (1 channel, 3 x 3, 2 x 2 pool): per-chunk partials added in order."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 28, 28, 1)).astype(np.float32)  # 208 pooled rows: many chunks
    w = rng.standard_normal((3, 3, 1, 32)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    y, pullback = miniconv.vjp(nn.conv2d_bias_relu_max_pool2d, x, w, b, 2, backend="cpu")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    assert _repeat(lambda: (nn.conv2d_bias_relu_max_pool2d(x, w, b, 2, backend="cpu"),
                            *pullback(dy, input_gradient=False)[1:]))


def test_cpu_partials_start_on_their_own_cache_lines():
    from miniconv.backend.cpu.work_sharing import CACHE_LINE, partials

    for shape, dtype in (((7,), np.float32), ((3, 3, 1, 5), np.float64), ((16,), np.float32)):
        p = partials(5, shape, dtype)
        assert p.shape == (5, *shape) and p.dtype == dtype and not p.any()
        assert all(p[i].ctypes.data % CACHE_LINE == 0 and p[i].flags.c_contiguous for i in range(5))
        p[1] += 1  # each partial its own memory
        assert p[1].all() and not p[0].any() and not p[2:].any()



@pytest.mark.parametrize("count, shape, dtype", [(1, (5,), np.float32), (16, (288, 64), np.float32),
                                                  (3, (2049,), np.float64), (7, (3, 3, 1, 5), np.float32)])
def test_cpu_sum_in_order_adds_partials_first_to_last(count, shape, dtype):
    """The same bits as partial 0 + partial 1 + ... one by one (float addition is not associative),
    for contiguous partials and for the cache-line-strided ones of ``partials``, across SUM_BLOCK."""
    from miniconv.backend.cpu.work_sharing import partials, sum_in_order

    rng = np.random.default_rng(count)
    values = (rng.standard_normal((count, *shape)) * 10.0 ** rng.integers(-4, 5, (count, *shape))).astype(dtype)
    expected = values[0].copy()
    for value in values[1:]:
        expected += value
    strided = partials(count, shape, dtype)
    strided[:] = values
    for given in (values, strided):
        total = sum_in_order(given)
        assert total.shape == shape and total.dtype == dtype
        assert np.array_equal(total, expected)
        assert not np.shares_memory(total, given)
    if count > 2:  # the order matters for these values: a reversed sum differs somewhere
        backwards = values[-1].copy()
        for value in values[-2::-1]:
            backwards += value
        assert not np.array_equal(backwards, expected)

def test_cpu_dense_and_bias_gradients_are_bitwise_repeatable():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 700)).astype(np.float32)
    k = rng.standard_normal((700, 90)).astype(np.float32)
    b = rng.standard_normal(90).astype(np.float32)
    y, pullback = miniconv.vjp(nn.dense, x, k, b, backend="cpu")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    assert _repeat(lambda: (nn.dense(x, k, b, backend="cpu"), *pullback(dy)))


def test_cpu_seeded_training_repeats_exactly():
    from miniconv import layers

    def train():
        miniconv.utils.set_random_seed(3)
        rng = np.random.default_rng(5)
        x = rng.random((96, 12, 12, 1), dtype=np.float32)
        y = rng.integers(0, 3, 96)
        model = miniconv.Sequential([
            layers.Conv2D(8, 3, activation="relu", input_shape=(12, 12, 1)),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dropout(0.3),
            layers.Dense(3, activation="softmax"),
        ])
        model.compile("rmsprop", "sparse_categorical_crossentropy")
        with miniconv.use_backend("cpu"):
            model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        return model.get_weights()

    assert _repeat(train, times=1)


@pytest.mark.parametrize("chunks", [1, 2, 7, 64])
def test_cpu_run_chunks_runs_every_chunk_once(chunks):
    import threading

    from miniconv.backend.cpu.work_sharing import run_chunks

    seen, lock = [], threading.Lock()

    def task(i):
        with lock:
            seen.append(i)

    run_chunks(task, chunks)
    assert sorted(seen) == list(range(chunks))


def test_cpu_run_chunks_reraises_a_chunks_error_after_the_others_finish():
    """A chunk that raises (a MemoryError inside a kernel, say) reaches the caller, whichever thread ran
    it, once every other chunk is done: none is left writing into the result, and the pool serves
    the next call."""
    import threading
    import time

    from miniconv.backend.cpu.work_sharing import run_chunks

    finished, lock = [], threading.Lock()

    def task(i):
        if i == 3:
            raise MemoryError(f"chunk {i}")
        time.sleep(0.002)
        with lock:
            finished.append(i)

    for _ in range(5):
        finished.clear()
        with pytest.raises(MemoryError, match="chunk 3"):
            run_chunks(task, 12)
        assert sorted(finished) == [i for i in range(12) if i != 3]
    seen = []
    run_chunks(seen.append, 6)
    assert sorted(seen) == list(range(6))
