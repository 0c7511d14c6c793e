"""A row's prediction is bit-identical whether it is predicted alone, in any
batch, at any position, and on any thread count: every GEMM path (small or
packed, any tile, any thread split) sums an element in the same order."""
import numpy as np
import pytest

import fastmlp
from fastmlp import layers


def _chain(width, dtype):
    fastmlp.config.set_floatx(dtype)
    fastmlp.utils.set_random_seed(0)
    return fastmlp.Sequential([fastmlp.Input(shape=(784,)), layers.Dense(width, activation="relu"),
                               layers.Dense(width, activation="gelu"), layers.Dense(10, activation="softmax")])


def _graph(dtype):
    fastmlp.config.set_floatx(dtype)
    fastmlp.utils.set_random_seed(1)
    a, b = fastmlp.Input(shape=(300,)), fastmlp.Input(shape=(40,))
    h = layers.Dense(200, activation="tanh")(a)
    merged = layers.concatenate([h, layers.Dense(30, activation="relu")(b)])
    return fastmlp.Model([a, b], {"p": layers.Dense(3, activation="softmax")(merged),
                                  "q": layers.Dense(1)(layers.add([h, layers.Dense(200)(h)]))})


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("width", [64, 512])
def test_a_row_predicts_the_same_alone_in_any_batch_and_on_any_thread_count(width, dtype):
    try:
        model = _chain(width, dtype)
        x = np.random.default_rng(0).random((700, 784)).astype(dtype)
        full = model.predict(x)
        for i in (0, 1, 333, 699):
            np.testing.assert_array_equal(model.predict(x[i:i + 1]), full[i:i + 1])
        for size in (2, 7, 48, 100, 301):
            parts = np.concatenate([model.predict(x[i:i + size]) for i in range(0, len(x), size)])
            np.testing.assert_array_equal(parts, full)
        np.testing.assert_array_equal(model.predict(x[::-1])[::-1], full)   # any position
        for threads in (1, 2, 3):
            fastmlp.set_num_threads(threads)
            np.testing.assert_array_equal(model.predict(x), full)
    finally:
        fastmlp.set_num_threads(0)
        fastmlp.config.set_floatx("float32")


def test_a_graph_with_several_inputs_and_outputs_is_batch_invariant_too():
    model = _graph("float32")
    rng = np.random.default_rng(2)
    xa, xb = rng.random((257, 300), dtype=np.float32), rng.random((257, 40), dtype=np.float32)
    full = model.predict([xa, xb])
    for i in (0, 128, 256):
        one = model.predict([xa[i:i + 1], xb[i:i + 1]])
        for key in full:
            np.testing.assert_array_equal(one[key], full[key][i:i + 1])
