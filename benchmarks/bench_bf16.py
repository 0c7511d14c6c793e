"""bfloat16 inference (the ``mixed_bfloat16`` dtype policy): throughput of
``predict`` at batch 1024 on 784-512-512-10 for fastmlp float32 and fastmlp
mixed_bfloat16 (every bfloat16 kernel target this CPU runs), measured in one
process in interleaved rounds (medians and bests of the rounds); the accuracy
of a briefly trained model on Fashion-MNIST in float32 and in bfloat16; and
training under the policy (bfloat16 forward GEMMs, float32 master weights and
backward pass) against float32 from the same weights and shuffles: the loss
curves, test accuracies and times of the Fashion recipe.

    python benchmarks/bench_bf16.py                 # default threads
    python benchmarks/bench_bf16.py --threads 1     # one thread
    python benchmarks/bench_bf16.py --no-accuracy   # throughput only (no dataset needed)
    python benchmarks/bench_bf16.py --generic       # the portable target too (slow)
    python benchmarks/bench_bf16.py --train-epochs 0  # no training comparison

Ratios, not absolute times, are what carries over between machines.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))

import fastmlp  # noqa: E402
from fastmlp import _engine  # noqa: E402

SIZES = (784, 512, 512, 10)


def build(policy=None, seed=0):
    fastmlp.utils.set_random_seed(seed)
    L = fastmlp.layers
    m = fastmlp.Sequential([fastmlp.Input((SIZES[0],))] +
                           [L.Dense(u, activation="relu", dtype=policy) for u in SIZES[1:-1]] +
                           [L.Dense(SIZES[-1], activation="softmax", dtype=policy)])
    m.compile(optimizer=fastmlp.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def bf16_copy(model):
    b = build("mixed_bfloat16")
    b.set_weights(model.get_weights())
    return b


def throughput(model, bmodel, generic, batch=1024, rounds=15):
    x = np.random.default_rng(1).random((batch, SIZES[0]), dtype=np.float32)
    runs = {"fastmlp float32": lambda x: model.predict(x, verbose=0)}

    def bf16_on(t):
        def run(x):
            _engine.set_bf16_target(t)
            return bmodel.predict(x, verbose=0)
        return run
    for t in _engine.available_bf16_targets():
        if t != "generic" or generic:
            runs[f"fastmlp mixed_bfloat16 ({t})"] = bf16_on(t)
    times = {k: [] for k in runs}
    n_reps = {}
    for name, f in runs.items():   # warm up, and about 50 ms of calls per round for each engine
        t0 = time.perf_counter()
        f(x)
        n_reps[name] = max(1, min(20, int(0.05 / (time.perf_counter() - t0))))
    for _ in range(rounds):   # interleaved: every engine sees the same machine load
        for name, f in runs.items():
            t0 = time.perf_counter()
            for _ in range(n_reps[name]):
                f(x)
            times[name].append((time.perf_counter() - t0) / n_reps[name])
    _engine.set_bf16_target("auto")
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    print(f"\npredict, batch {batch}, {'-'.join(map(str, SIZES))} ({rounds} interleaved rounds):")
    print(f"  {'engine':38s} {'rows/s (median)':>16s} {'vs float32 (median)':>20s} {'vs float32 (best)':>18s}")
    for name in runs:
        print(f"  {name:38s} {batch / med[name]:16,.0f} {med['fastmlp float32'] / med[name]:19.2f}x "
              f"{best['fastmlp float32'] / best[name]:17.2f}x")
    return med


def accuracy(epochs):
    from _bench_util import fashion_trained
    model, xte, yte, seconds = fashion_trained(build(), epochs)
    print(f"\nFashion-MNIST: trained {epochs} epoch(s) in float32 in {seconds:.1f} s")
    bmodel = bf16_copy(model)
    p32, pbf = model.predict(xte, verbose=0), bmodel.predict(xte, verbose=0)
    a32, abf = float((p32.argmax(1) == yte).mean()), float((pbf.argmax(1) == yte).mean())
    print(f"  test accuracy float32 {a32:.4f}, mixed_bfloat16 {abf:.4f} (difference {100 * (abf - a32):+.2f} "
          f"points; same class for {100 * float((p32.argmax(1) == pbf.argmax(1)).mean()):.2f}% of the rows; "
          f"largest probability difference {float(np.abs(p32 - pbf).max()):.2e})")
    return model


def training(epochs):
    """The Fashion recipe (batch 128, Adam 1e-3) from the same weights and shuffles, in float32
    and under mixed_bfloat16: the loss after each epoch, the test accuracy and the time."""
    from _bench_util import fashion_trained
    print(f"\nTraining {epochs} epoch(s) of Fashion-MNIST from the same weights and shuffles:")
    results = {}
    for policy in (None, "mixed_bfloat16"):
        fastmlp.utils.set_random_seed(7)   # the shuffles
        model, xte, yte, seconds = fashion_trained(build(policy), epochs)
        acc = float((model.predict(xte, verbose=0).argmax(1) == yte).mean())
        results[policy] = (model.history.history["loss"], acc, seconds)
    for policy, (losses, acc, seconds) in results.items():
        print(f"  {policy or 'float32':>14}: loss per epoch {', '.join(f'{v:.4f}' for v in losses)}; "
              f"test accuracy {acc:.4f}; {seconds:.1f} s")
    l32, lbf = np.array(results[None][0]), np.array(results["mixed_bfloat16"][0])
    print(f"  largest loss difference {float(np.abs(lbf - l32).max()):.4f} ({100 * float(np.abs(lbf / l32 - 1).max()):.2f}%); "
          f"time mixed_bfloat16 / float32 {results['mixed_bfloat16'][2] / results[None][2]:.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=0, help="threads (0: the default)")
    ap.add_argument("--no-accuracy", action="store_true", help="skip the Fashion-MNIST accuracy check")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--generic", action="store_true", help="time the portable bfloat16 target too")
    ap.add_argument("--train-epochs", type=int, default=3,
                    help="epochs of the float32 / mixed_bfloat16 training comparison (0: skip it)")
    args = ap.parse_args()
    if args.threads:
        fastmlp.set_num_threads(args.threads)
    print(f"fastmlp GEMM target {_engine.gemm_target()}, bfloat16 target {_engine.bf16_target()} "
          f"(available: {', '.join(_engine.available_bf16_targets())}); threads {_engine.get_num_threads()}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    model = None if args.no_accuracy else accuracy(args.epochs)
    model = model or build()
    throughput(model, bf16_copy(model), args.generic)
    if args.train_epochs and not args.no_accuracy:
        training(args.train_epochs)


if __name__ == "__main__":
    main()
