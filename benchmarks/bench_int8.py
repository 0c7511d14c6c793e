"""Int8 inference: throughput of ``predict`` at batch 1024 on 784-512-512-10 for
fastmlp float32, fastmlp int8 (``model.quantize("int8")``; every int8 kernel
target this CPU runs) and ONNX Runtime float32 and int8 (its
``quantize_dynamic`` of the same model, exported by fastmlp), measured in one
process in interleaved rounds; and the accuracy of a briefly trained model on
Fashion-MNIST in float32 and in int8.

    python benchmarks/bench_int8.py                 # default threads
    python benchmarks/bench_int8.py --threads 1     # one thread for every engine
    python benchmarks/bench_int8.py --no-accuracy   # throughput only (no dataset needed)

Ratios, not absolute times, are what carries over between machines; on a shared
machine (other processes busy) the best of the rounds is reported.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

import fastmlp  # noqa: E402
from fastmlp import _engine  # noqa: E402

SIZES = (784, 512, 512, 10)


def build(seed=0):
    fastmlp.utils.set_random_seed(seed)
    L = fastmlp.layers
    m = fastmlp.Sequential([fastmlp.Input((SIZES[0],))] + [L.Dense(u, activation="relu") for u in SIZES[1:-1]] +
                           [L.Dense(SIZES[-1], activation="softmax")])
    m.compile(optimizer=fastmlp.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def int8_copy(model):
    q = fastmlp.Sequential.from_config(model.get_config())
    q.build((None, SIZES[0]))
    q.set_weights(model.get_weights())
    q.quantize("int8")
    return q


def ort_sessions(model, threads, tmp):
    try:
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        print("onnxruntime is not installed: its rows are skipped")
        return {}
    path = os.path.join(tmp, "m.onnx")
    model.export(path, format="onnx", verbose=False)
    qpath = os.path.join(tmp, "m.int8.onnx")
    quantize_dynamic(path, qpath, weight_type=QuantType.QInt8)
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    out = {}
    for name, p in (("onnxruntime float32", path), ("onnxruntime int8 (quantize_dynamic)", qpath)):
        s = ort.InferenceSession(p, opts, providers=["CPUExecutionProvider"])
        feed = s.get_inputs()[0].name
        out[name] = (lambda s, feed: lambda x: s.run(None, {feed: x})[0])(s, feed)
    return out


def throughput(model, qmodel, sessions, batch=1024, rounds=7, reps=10):
    x = np.random.default_rng(1).random((batch, SIZES[0]), dtype=np.float32)
    runs = {"fastmlp float32": lambda x: model.predict(x, verbose=0)}
    if "avx2" in _engine.available_gemm_targets() and _engine.gemm_target() != "avx2":
        def float_avx2(x):   # the float baseline an AVX2-only CPU would have
            _engine.set_gemm_target("avx2")
            try:
                return model.predict(x, verbose=0)
            finally:
                _engine.set_gemm_target("auto")
        runs["fastmlp float32 (avx2 GEMM)"] = float_avx2
    targets = _engine.available_int8_targets()

    def int8_on(t):
        def run(x):
            _engine.set_int8_target(t)
            return qmodel.predict(x, verbose=0)
        return run
    for t in targets:
        runs[f"fastmlp int8 ({t})"] = int8_on(t)
    runs.update(sessions)
    best = {k: float("inf") for k in runs}
    n_reps = {}
    for name, f in runs.items():   # warm up, and about 50 ms of calls per round for each engine
        t0 = time.perf_counter()
        f(x)
        n_reps[name] = max(1, min(reps, int(0.05 / (time.perf_counter() - t0))))
    for _ in range(rounds):   # interleaved: every engine sees the same machine load
        for name, f in runs.items():
            t0 = time.perf_counter()
            for _ in range(n_reps[name]):
                f(x)
            best[name] = min(best[name], (time.perf_counter() - t0) / n_reps[name])
    _engine.set_int8_target("auto")
    base = best["fastmlp float32"]
    print(f"\npredict, batch {batch}, {'-'.join(map(str, SIZES))} (best of {rounds} interleaved rounds):")
    print(f"  {'engine':42s} {'rows/s':>12s} {'ms/batch':>9s} {'vs fastmlp float32':>19s}")
    for name, t in best.items():
        print(f"  {name:42s} {batch / t:12,.0f} {t * 1e3:9.2f} {base / t:18.2f}x")
    return best


def accuracy(epochs):
    from _bench_util import fashion_trained
    model, xte, yte, seconds = fashion_trained(build(), epochs)
    print(f"\nFashion-MNIST: trained {epochs} epoch(s) in {seconds:.1f} s")
    qmodel = int8_copy(model)
    accs = {}
    for name, m in (("float32", model), ("int8", qmodel)):
        accs[name] = float((m.predict(xte, verbose=0).argmax(1) == yte).mean())
    agree = float((model.predict(xte, verbose=0).argmax(1) == qmodel.predict(xte, verbose=0).argmax(1)).mean())
    print(f"  test accuracy float32 {accs['float32']:.4f}, int8 {accs['int8']:.4f} "
          f"(difference {100 * (accs['int8'] - accs['float32']):+.2f} points; same class for {100 * agree:.2f}% "
          f"of the rows)")
    return model, accs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=0, help="threads for every engine (0: their defaults)")
    ap.add_argument("--no-accuracy", action="store_true", help="skip the Fashion-MNIST accuracy check")
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()
    if args.threads:
        fastmlp.set_num_threads(args.threads)
    print(f"fastmlp GEMM target {_engine.gemm_target()}, int8 target {_engine.int8_target()} "
          f"(available: {', '.join(_engine.available_int8_targets())}); threads {_engine.get_num_threads()}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    model = None
    if not args.no_accuracy:
        model, _ = accuracy(args.epochs)
    model = model or build()
    with tempfile.TemporaryDirectory() as tmp:
        sessions = ort_sessions(model, args.threads, tmp)
        throughput(model, int8_copy(model), sessions)


if __name__ == "__main__":
    main()
