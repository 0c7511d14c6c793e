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


# ---------------------------------------------------------------------------------------------
# The thread pool and its policy (csrc/gemm.c): diagnostics through the library's C symbols.

def _lib():
    import ctypes
    lib = ctypes.CDLL(fastmlp._engine.__file__)
    lib.fm_thread_stats.argtypes = [ctypes.POINTER(ctypes.c_int64), ctypes.c_int]
    lib.fm_set_thread_guard.argtypes = [ctypes.c_int]
    return lib


STATS = ("jobs", "worker_pieces", "late", "busy", "solo_calls")


def _stats():
    import ctypes
    out = (ctypes.c_int64 * len(STATS))()
    _lib().fm_thread_stats(out, len(STATS))
    return dict(zip(STATS, out))


needs_threads = pytest.mark.skipif(not fastmlp.show_config(print_fn=None)["openmp"],
                                   reason="built without threads")


@pytest.fixture
def forced_threads():
    """Threads whatever the load: the contention guard off."""
    _lib().fm_set_thread_guard(0)
    yield
    _lib().fm_set_thread_guard(1)
    fastmlp.set_num_threads(0)


@needs_threads
def test_worker_threads_run_pieces_of_a_large_product_with_the_same_result(forced_threads):
    rng = np.random.default_rng(0)
    a = rng.random((256, 784), dtype=np.float32)
    b = rng.random((784, 512), dtype=np.float32)
    fastmlp.set_num_threads(1)
    one = fastmlp.ops.matmul(a, b)
    fastmlp.set_num_threads(2)
    before = _stats()
    import time
    deadline = time.monotonic() + 20   # a loaded machine may not schedule the worker at once
    while True:
        got = fastmlp.ops.matmul(a, b)
        np.testing.assert_array_equal(got, one)
        after = _stats()
        if after["worker_pieces"] > before["worker_pieces"] or time.monotonic() > deadline:
            break
    assert after["jobs"] > before["jobs"]
    assert after["worker_pieces"] > before["worker_pieces"]


@needs_threads
def test_training_with_forced_threads_equals_one_thread(forced_threads):
    w1, p1 = _train_wide(1)
    before = _stats()["jobs"]
    w2, p2 = _train_wide(2)
    assert _stats()["jobs"] > before
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(p1, p2)


@needs_threads
def test_products_from_several_python_threads_at_once_are_right(forced_threads):
    """One job owns the pool at a time; a call that finds it taken runs alone."""
    from concurrent.futures import ThreadPoolExecutor
    fastmlp.set_num_threads(2)
    rng = np.random.default_rng(1)
    pairs = [(rng.random((192, 400), dtype=np.float32), rng.random((400, 320), dtype=np.float32))
             for _ in range(6)]
    want = [a.astype(np.float64) @ b.astype(np.float64) for a, b in pairs]

    def work(i):
        a, b = pairs[i % len(pairs)]
        return i, fastmlp.ops.matmul(a, b)

    with ThreadPoolExecutor(4) as ex:
        for i, got in ex.map(work, range(48)):
            np.testing.assert_allclose(got, want[i % len(pairs)], rtol=1e-4)


_FORK_CHILD = """
import multiprocessing as mp, sys, ctypes
import numpy as np
import fastmlp
lib = ctypes.CDLL(fastmlp._engine.__file__)
lib.fm_set_thread_guard(0)
fastmlp.set_num_threads(2)
rng = np.random.default_rng(0)
a = rng.random((256, 784), dtype=np.float32); b = rng.random((784, 512), dtype=np.float32)
want = fastmlp.ops.matmul(a, b)            # the pool's workers now exist in this process
out = (ctypes.c_int64 * 5)()
lib.fm_thread_stats(out, 5)
start = out[1]

def child(q):
    import time
    out = (ctypes.c_int64 * 5)()
    deadline = time.monotonic() + 20
    same = True
    while True:   # until a worker of the child's own pool has run a piece
        same = same and bool(np.array_equal(fastmlp.ops.matmul(a, b), want))
        lib.fm_thread_stats(out, 5)
        if out[1] > start or time.monotonic() > deadline:
            break
    q.put(same and out[1] > start)

ctx = mp.get_context("fork")
q = ctx.Queue()
p = ctx.Process(target=child, args=(q,))
p.start()
ok = q.get(timeout=60)
p.join(60)
print("ok" if ok and p.exitcode == 0 else "bad")
"""


@needs_threads
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_a_forked_child_runs_threaded_products():
    """The pool's threads do not survive fork(): the child starts its own, and they run pieces."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", _FORK_CHILD], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


_BUSY_CHILD = """
import os, subprocess, sys, time, ctypes
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})   # one core, shared with a busy process
hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
try:
    import numpy as np
    import fastmlp
    lib = ctypes.CDLL(fastmlp._engine.__file__)
    out = (ctypes.c_int64 * 5)()
    fastmlp.set_num_threads(2)
    a = np.ones((128, 784), np.float32); b = np.ones((784, 128), np.float32)
    t = time.monotonic()
    while time.monotonic() - t < 1.5:
        fastmlp.ops.matmul(a, b)
    lib.fm_thread_stats(out, 5)
    print(out[3], out[4])
finally:
    hog.kill()
"""


@needs_threads
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs sched_setaffinity")
def test_a_caller_sharing_its_core_with_a_busy_process_runs_calls_alone():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", _BUSY_CHILD], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    busy, solo = map(int, out.stdout.split())
    assert busy > 0 and solo > 0
