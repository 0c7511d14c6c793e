"""Load time and file size of a 784-512-512-10 model: fastmlp (the default, which
reads the file into memory, and ``mmap=True``, which maps it copy-on-write; verify
on/off) against safetensors.numpy.load_file, torch.load and Keras, on the same weights.

    pytest benchmarks/bench_load.py --benchmark-only --benchmark-group-by=group
    python benchmarks/bench_load.py          # a table: 7 interleaved rounds in one process
"""
import os
import time

import numpy as np
import pytest

import fastmlp
from fastmlp import layers
from _bench_util import scratch_dir

_DIR = scratch_dir()


def _model():
    fastmlp.utils.set_random_seed(0)
    m = fastmlp.Sequential([fastmlp.Input(shape=(784,)), layers.Dense(512, activation="relu"),
                            layers.Dense(512, activation="relu"), layers.Dense(10, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def _files():
    m = _model()
    weights = m.get_weights()
    names = [f"{l.name}/{k}" for l in m.layers for k in ("kernel", "bias")]
    out = {"fastmlp": os.path.join(_DIR, "m.fmlp")}
    m.save(out["fastmlp"], include_optimizer=False)
    # a model saved the default way after training: Adam's slots and counters ride along
    trained = _model()
    trained.set_weights(weights)
    x = np.random.default_rng(0).random((256, 784), dtype=np.float32)
    trained.fit(x, np.arange(256) % 10, batch_size=256, epochs=1, verbose=0)
    out["fastmlp-trained"] = os.path.join(_DIR, "m-trained.fmlp")
    trained.save(out["fastmlp-trained"])
    for dt in ("float16", "bfloat16", "int8"):
        out[f"fastmlp-{dt}"] = os.path.join(_DIR, f"m-{dt}.fmlp")
        m.save(out[f"fastmlp-{dt}"], dtype=dt)
    try:
        import safetensors.numpy as stn
        out["safetensors"] = os.path.join(_DIR, "m.safetensors")
        stn.save_file(dict(zip(names, weights)), out["safetensors"])
    except ImportError:
        pass
    try:
        import torch
        out["torch"] = os.path.join(_DIR, "m.pt")
        torch.save({n: torch.from_numpy(w) for n, w in zip(names, weights)}, out["torch"])
    except ImportError:
        pass
    try:
        import keras
        km = keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(512, activation="relu"),
                               keras.layers.Dense(512, activation="relu"),
                               keras.layers.Dense(10, activation="softmax")])
        km.set_weights(weights)
        out["keras"] = os.path.join(_DIR, "m.keras")
        km.save(out["keras"])
    except Exception:
        pass
    return m, out


MODEL, FILES = _files()


def loaders():
    out = {"fastmlp load_model(verify=False)": lambda: fastmlp.load_model(FILES["fastmlp"], verify=False),
           "fastmlp load_model()": lambda: fastmlp.load_model(FILES["fastmlp"]),
           "fastmlp load_model(mmap=True, verify=False)":
               lambda: fastmlp.load_model(FILES["fastmlp"], mmap=True, verify=False),
           "fastmlp load_model(mmap=True)": lambda: fastmlp.load_model(FILES["fastmlp"], mmap=True),
           "fastmlp load_model(compile=False, verify=False)":
               lambda: fastmlp.load_model(FILES["fastmlp"], compile=False, verify=False),
           "fastmlp load_model(trained file with optimizer state, verify=False)":
               lambda: fastmlp.load_model(FILES["fastmlp-trained"], verify=False)}
    if "safetensors" in FILES:
        import safetensors.numpy as stn
        out["safetensors.numpy.load_file"] = lambda: stn.load_file(FILES["safetensors"])
    if "torch" in FILES:
        import torch
        out["torch.load"] = lambda: torch.load(FILES["torch"])
    if "keras" in FILES:
        import keras
        out["keras.saving.load_model"] = lambda: keras.saving.load_model(FILES["keras"])
    return out


@pytest.mark.benchmark(group="load")
def test_fastmlp_noverify(benchmark):
    benchmark(fastmlp.load_model, FILES["fastmlp"], verify=False)


@pytest.mark.benchmark(group="load")
def test_fastmlp_verify(benchmark):
    benchmark(fastmlp.load_model, FILES["fastmlp"])


@pytest.mark.benchmark(group="load")
def test_fastmlp_mmap_noverify(benchmark):
    benchmark(fastmlp.load_model, FILES["fastmlp"], mmap=True, verify=False)


@pytest.mark.benchmark(group="load")
def test_fastmlp_mmap_verify(benchmark):
    benchmark(fastmlp.load_model, FILES["fastmlp"], mmap=True)


@pytest.mark.benchmark(group="load")
def test_safetensors(benchmark):
    stn = pytest.importorskip("safetensors.numpy")
    benchmark(stn.load_file, FILES["safetensors"])


@pytest.mark.benchmark(group="load")
def test_torch(benchmark):
    torch = pytest.importorskip("torch")
    benchmark(torch.load, FILES["torch"])


@pytest.mark.benchmark(group="load")
def test_keras(benchmark):
    keras = pytest.importorskip("keras")
    if "keras" not in FILES:
        pytest.skip("keras could not save the model")
    benchmark(keras.saving.load_model, FILES["keras"])


def _times_us(fn, seconds, max_runs=2000):
    fn()
    times, start = [], time.perf_counter()
    while len(times) < max_runs and (time.perf_counter() - start < seconds or len(times) < 10):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return [1e6 * t for t in times]


def main(rounds=7, seconds=0.2):
    """Every loader runs `seconds` of calls per round, the loaders interleaved, so that
    drifts of this machine's speed reach them alike; a loader's figure is the median of
    its calls in all rounds (and the spread of its per-round medians)."""
    raw = sum(w.nbytes for w in MODEL.get_weights())
    print(f"784-512-512-10, {raw:,} bytes of float32 weights; crc32c: {fastmlp._engine.crc32c_impl()}")
    fns = loaders()
    times = {name: [] for name in fns}
    medians = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t = _times_us(fn, seconds)
            times[name] += t
            medians[name].append(float(np.median(t)))
    print(f"{'loader':<50}{'median us':>12}{'runs':>8}{'round medians':>24}")
    for name in fns:
        lo, hi = min(medians[name]), max(medians[name])
        print(f"{name:<50}{np.median(times[name]):>12.1f}{len(times[name]):>8}{f'{lo:.1f} .. {hi:.1f}':>24}")
    for verify in ("verify=False", ""):   # what reading the file costs against mapping it
        read, mapped = f"fastmlp load_model({verify})", f"fastmlp load_model(mmap=True{', ' * bool(verify)}{verify})"
        print(f"  {read} / {mapped}: {np.median(times[read]) / np.median(times[mapped]):.2f}x")
    if "safetensors.numpy.load_file" in times:
        st = np.median(times["safetensors.numpy.load_file"])
        for name in [n for n in fns if n.startswith("fastmlp")]:
            print(f"  safetensors / {name}: {st / np.median(times[name]):.2f}x")
    print(f"\n{'file':<22}{'bytes':>12}{'x float32':>11}")
    for name, path in FILES.items():
        size = os.path.getsize(path)
        print(f"{name:<22}{size:>12,}{size / raw:>11.3f}")


if __name__ == "__main__":
    main()
