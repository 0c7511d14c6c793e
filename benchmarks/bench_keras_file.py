"""Reading and writing Keras's ``.keras`` file of a 784-512-512-10 model (Adam, trained one step, so
the file holds the optimizer's variables too): fastmlp (no Keras) against Keras 3's own
``keras.saving.load_model`` / ``model.save`` of the same file, in one process, interleaved.

fastmlp's save is atomic and durable: a temporary file, fsync, rename, fsync of the folder.
"save after 30 ms" times each save after 30 ms idle (not timed), as a checkpoint after an epoch:
back to back, each save also pays for the file the one before replaced.
Keras writes the file in place without fsync.  "fastmlp(no fsync)" is fastmlp's save with the two
fsyncs skipped (patched out for that case only), to show what the disk's flush costs apart from
the work both libraries do.

    python benchmarks/bench_keras_file.py            # a table of medians and the ratios
    pytest benchmarks/bench_keras_file.py --benchmark-only --benchmark-group-by=group
"""
import os
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import fastmlp  # noqa: E402
from _bench_util import scratch_dir  # noqa: E402

_DIR = scratch_dir("fastmlp-bench-keras-")
SIZES = (784, 512, 512, 10)


def _setup():
    """The Keras model, trained one step and saved by Keras, and the file's path."""
    import keras
    from _bench_util import keras_model, mlp_data
    x, y = mlp_data(256, 784, 10)
    km = keras_model(keras, SIZES)
    km.fit(x, y, batch_size=256, epochs=1, verbose=0)
    path = os.path.join(_DIR, "keras.keras")
    km.save(path)
    return km, path


def cases():
    keras = pytest.importorskip("keras") if __name__ != "__main__" else __import__("keras")
    km, path = _setup()
    fm = fastmlp.load_model(path)
    out_f, out_k = os.path.join(_DIR, "f.keras"), os.path.join(_DIR, "k.keras")
    return {
        "load": {"fastmlp": lambda: fastmlp.load_model(path),
                 "fastmlp(verify=False)": lambda: fastmlp.load_model(path, verify=False),
                 "keras": lambda: keras.saving.load_model(path)},
        "save": {"fastmlp": lambda: fm.save(out_f), "fastmlp(no fsync)": lambda: _without_fsync(fm.save, out_f),
                 "keras": lambda: km.save(out_k)},
        # as a checkpoint each epoch does: the save comes after other work (a pause, not timed)
        "save after 30 ms": {"fastmlp": lambda: fm.save(out_f), "keras": lambda: km.save(out_k)},
    }


def _without_fsync(fn, *args):
    import fastmlp.saving.writer as writer
    real = writer.os.fsync
    writer.os.fsync = lambda fd: None
    try:
        fn(*args)
    finally:
        writer.os.fsync = real


_PAUSES = {"save after 30 ms": 0.03}   # seconds of idle before each timed call


def _times(fn, seconds, max_runs=200, pause=0.0):
    fn()
    times, start = [], time.perf_counter()
    while len(times) < max_runs and (time.perf_counter() - start < seconds or len(times) < 5):
        if pause:
            time.sleep(pause)
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def main(rounds=5, seconds=0.5):
    groups = cases()
    print(f"{'-'.join(map(str, SIZES))} model with Adam state, .keras file")
    for group, fns in groups.items():
        times = {name: [] for name in fns}
        for _ in range(rounds):
            for name, fn in fns.items():
                times[name] += _times(fn, seconds, max_runs=40 if group in _PAUSES else 200,
                                      pause=_PAUSES.get(group, 0.0))
        med = {name: 1e3 * float(np.median(t)) for name, t in times.items()}
        for name in fns:
            print(f"  {group:<5} {name:<22} {med[name]:9.2f} ms  ({len(times[name])} runs)")
        for name in fns:
            if name != "keras":
                print(f"  {group}: {name} is {med['keras'] / med[name]:.1f}x faster than Keras")


@pytest.fixture(scope="module")
def _cases():
    return cases()


@pytest.mark.benchmark(group="keras-file-load")
@pytest.mark.parametrize("who", ["fastmlp", "fastmlp(verify=False)", "keras"])
def test_load(benchmark, _cases, who):
    benchmark(_cases["load"][who])


@pytest.mark.benchmark(group="keras-file-save")
@pytest.mark.parametrize("who", ["fastmlp", "fastmlp(no fsync)", "keras"])
def test_save(benchmark, _cases, who):
    benchmark(_cases["save"][who])


if __name__ == "__main__":
    main()
