"""Thread control: the setting is honoured, and results do not depend on it."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastmlp
from fastmlp import layers


@pytest.fixture
def restore_threads():
    yield
    fastmlp.set_num_threads(0)


def _train_wide(threads, seed=3):
    """A net wide enough that its GEMMs and optimizer updates use threads."""
    fastmlp.set_num_threads(threads)
    fastmlp.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.random((512, 784), dtype=np.float32)
    y = rng.integers(0, 10, 512)
    m = fastmlp.Sequential([fastmlp.Input(shape=(784,)), layers.Dense(512, activation="relu"),
                            layers.Dropout(0.2), layers.Dense(10, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.fit(x, y, epochs=2, batch_size=256, verbose=0)
    return m.get_weights(), m.predict(x)


def test_set_num_threads_changes_get_num_threads(restore_threads):
    fastmlp.set_num_threads(1)
    assert fastmlp.get_num_threads() == 1
    fastmlp.set_num_threads(3)
    assert fastmlp.get_num_threads() == 3 if fastmlp.show_config(print_fn=None)["openmp"] else 1


@pytest.mark.parametrize("bad", [-1, 1.5, "2", True])
def test_set_num_threads_refuses_what_is_not_a_count(bad):
    with pytest.raises(ValueError, match="non-negative integer"):
        fastmlp.set_num_threads(bad)


def test_omp_num_threads_sets_the_default():
    code = "import fastmlp; print(fastmlp.get_num_threads())"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


def test_training_is_bit_identical_for_a_fixed_thread_count(restore_threads):
    w1, p1 = _train_wide(2)
    w2, p2 = _train_wide(2)
    for a, b in zip(w1, w2):
        assert np.array_equal(a, b)
    assert np.array_equal(p1, p2)


def test_training_does_not_depend_on_the_thread_count(restore_threads):
    """GEMMs split only M or N and updates split elements, so each value is computed the
    same way whatever the count: equal, not just close."""
    w1, p1 = _train_wide(1)
    w2, p2 = _train_wide(2)
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(p1, p2)


def test_predict_of_a_large_batch_splits_rows_over_threads_without_changing_the_result(
        restore_threads):
    """Large batches run the whole network per thread on blocks of rows: each row's
    output is the same whatever the thread count or the batch it comes in (up to
    float rounding), and bit-identical from call to call."""
    fastmlp.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    x = rng.random((1001, 784), dtype=np.float32)
    m = fastmlp.Sequential([fastmlp.Input(shape=(784,)), layers.Dense(64, activation="relu"),
                            layers.Dense(33, activation="tanh"),
                            layers.Dense(10, activation="softmax")])
    fastmlp.set_num_threads(1)
    one = m.predict(x, verbose=0)
    for threads in (2, 3):
        fastmlp.set_num_threads(threads)
        got = m.predict(x, verbose=0)
        np.testing.assert_allclose(got, one, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(m.predict(x, verbose=0), got)
    rows = np.concatenate([m.predict(x[i:i + 7], verbose=0) for i in range(0, len(x), 7)])
    np.testing.assert_allclose(rows, one, rtol=1e-5, atol=1e-7)


def test_no_python_module_of_fastmlp_runs_compiled():
    """Only the engine is compiled: the model, layer and file code run from their .py files
    (so pdb, coverage and inspect see them)."""
    import sys
    for name, mod in list(sys.modules.items()):
        if name.startswith("fastmlp.") and name != "fastmlp._engine" and getattr(mod, "__file__", None):
            assert mod.__file__.endswith(".py"), name
