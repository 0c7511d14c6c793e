#!/usr/bin/env python
"""Training with the default thread count against one thread, on a quiet machine and while
another process keeps a core busy.

Run from the repository root (the extension built in place)::

    PYTHONPATH=src python benchmarks/contention.py
    PYTHONPATH=src python benchmarks/contention.py --load busy --rounds 9 --window 0.5
    PYTHONPATH=src python benchmarks/contention.py --only d --only e

Workloads (``compare.py``'s, Adam lr 1e-3, sparse CCE, ``metrics=["accuracy"]``):
(c) 784-64-64-10 batch 32, (d) 784-32-10 batch 128, (e) 784-512-512-10 batch 256, on
Fashion-MNIST (``fastmlp.datasets.fashion_mnist``; synthetic data of the same shape when it is
not installed, which the output says).

Each workload trains one model.  A timing chunk (``model.fit`` over the first rows, about
``--window`` seconds on one thread) is calibrated first; then every round runs the chunk four
times, in a rotating order: {default threads, 1 thread} x {quiet, loaded}.  "Loaded" means a
background process keeps one core busy: ``--load matmul`` (default) is a numpy float32 matmul
loop with ``OPENBLAS_NUM_THREADS=1``, ``--load busy`` a pure Python busy loop.  The background
process is started once and paused (SIGSTOP) / resumed (SIGCONT) around the loaded chunks.

The table gives median samples/s over the rounds and the ratio default / 1 thread (its
median over rounds, each round's ratio taken from chunks run next to each other).  "split" is
the share of the default-thread runs' large calls (GEMMs, optimizer updates big enough to
split) that did run on several threads; the others ran alone because the thread policy found
the machine busy ("-": no call was large enough).  Issue 14's
goal: the ratio never below 0.90 when loaded.  Load averages at the start and the end are
printed: on a machine shared with other work, "quiet" only means "without our extra load".
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

import numpy as np

import fastmlp
from _bench_util import cpu_model, loadavg  # noqa: E402  (shared with compare.py)

WORKLOADS = {"c": ([784, 64, 64, 10], 32), "d": ([784, 32, 10], 128), "e": ([784, 512, 512, 10], 256)}

_LOADERS = {
    "matmul": ("import numpy as np\n"
               "a = np.random.default_rng(0).random((512, 512), dtype=np.float32)\n"
               "b = a.copy()\n"
               "while True:\n"
               "    np.matmul(a, b, out=b); b *= 1e-3\n"),
    "busy": "while True:\n    pass\n",
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", action="append", choices=sorted(WORKLOADS), help="workload (repeatable)")
    p.add_argument("--load", choices=sorted(_LOADERS), default="matmul", help="the background load")
    p.add_argument("--window", type=float, default=0.4, help="seconds per timing chunk (one thread)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--quiet-only", action="store_true", help="no background load (thread scaling only)")
    return p.parse_args(argv)


def fashion():
    try:
        (x, y), _ = fastmlp.datasets.fashion_mnist.load_data()
        note = "Fashion-MNIST"
    except Exception as e:  # absent: synthetic data of the same shape
        rng = np.random.default_rng(0)
        y = rng.integers(0, 10, 60_000)
        x = np.clip(rng.random((10, 784))[y] * 255 + rng.normal(0, 80, (60_000, 784)), 0, 255)
        note = f"SYNTHETIC data of Fashion-MNIST's shape ({e})"
    x = np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float32) / np.float32(255)
    return x, y.astype(np.int64), note


class Background:
    """A process keeping one core busy, paused until resume()."""

    def __init__(self, kind):
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, "-c", _LOADERS[kind]], env=env)
        time.sleep(0.3)  # imported and looping
        self.pause()

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)
        time.sleep(0.02)  # running again before the timed chunk starts

    def close(self):
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        self.proc.wait()


def build(sizes):
    fastmlp.utils.set_random_seed(1234)
    L = fastmlp.layers
    m = fastmlp.Sequential([fastmlp.Input(shape=(sizes[0],))]
                           + [L.Dense(u, activation="relu") for u in sizes[1:-1]]
                           + [L.Dense(sizes[-1], activation="softmax")])
    m.compile(optimizer=fastmlp.optimizers.Adam(learning_rate=1e-3),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def thread_stats():
    """fastmlp's thread-policy counters (csrc/gemm.h fm_thread_stats): calls split over threads,
    and calls that could have split but ran alone (a busy machine); None on builds without them."""
    import ctypes
    try:
        fn = ctypes.CDLL(fastmlp._engine.__file__).fm_thread_stats
    except (AttributeError, OSError):
        return None
    out = (ctypes.c_int64 * 5)()
    fn(out, 5)
    return np.array(out[:], dtype=np.int64)


def timed_fit(m, x, y, batch, threads):
    fastmlp.set_num_threads(threads)
    t = time.perf_counter()
    m.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=True)
    return len(x) / (time.perf_counter() - t)


def run_workload(key, x, y, args, bg):
    sizes, batch = WORKLOADS[key]
    m = build(sizes)
    # calibrate on one thread: rows for about --window seconds (whole batches)
    n = 4 * batch
    while True:
        sps = timed_fit(m, x[:n], y[:n], batch, 1)
        if n / sps >= args.window / 4 or n >= len(x):
            break
        n = min(len(x), n * 4)
    n = int(min(len(x), max(batch, round(sps * args.window / batch) * batch)))
    xs, ys = x[:n], y[:n]
    conds = [("quiet", 0), ("quiet", 1)]
    if bg is not None:
        conds += [("loaded", 0), ("loaded", 1)]
    speeds = {c: [] for c in conds}
    counts = {c: None for c in conds}
    for r in range(args.rounds):
        order = conds[r % len(conds):] + conds[:r % len(conds)]
        for cond in order:
            if bg is not None and cond[0] == "loaded":
                bg.resume()
            try:
                s0 = thread_stats()
                speeds[cond].append(timed_fit(m, xs, ys, batch, cond[1]))
                if s0 is not None:
                    d = thread_stats() - s0
                    counts[cond] = d if counts[cond] is None else counts[cond] + d
            finally:
                if bg is not None and cond[0] == "loaded":
                    bg.pause()
    fastmlp.set_num_threads(0)
    rows = []
    for load in ("quiet", "loaded"):
        if (load, 0) not in speeds:
            continue
        d, o = speeds[(load, 0)], speeds[(load, 1)]
        ratio = statistics.median(a / b for a, b in zip(d, o))
        lo, hi = min(a / b for a, b in zip(d, o)), max(a / b for a, b in zip(d, o))
        c = counts[(load, 0)]
        split = "n/a" if c is None else f"{c[0] / (c[0] + c[4]):.0%}" if c[0] + c[4] else "-"
        rows.append((key, "-".join(map(str, sizes)), batch, load, statistics.median(d),
                     statistics.median(o), ratio, lo, hi, split))
    return n, rows


def main(argv=None):
    args = parse_args(argv)
    keys = args.only or sorted(WORKLOADS)
    x, y, note = fashion()
    default = fastmlp.get_num_threads()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs; fastmlp default threads: {default}; "
          f"GEMM target {fastmlp.show_config(print_fn=None).get('gemm_target', '?')}")
    print(f"Data: {note}.  Background load: "
          f"{'none' if args.quiet_only else args.load + ' (one process)'}; "
          f"window {args.window} s, {args.rounds} rounds.  OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY', '(unset)')}, GOMP_SPINCOUNT="
          f"{os.environ.get('GOMP_SPINCOUNT', '(unset)')}")
    print(f"Load average at start: {loadavg()}")
    print("Command: " + " ".join([os.path.basename(sys.executable)] + sys.argv))
    bg = None if args.quiet_only else Background(args.load)
    table = []
    try:
        for k in keys:
            n, rows = run_workload(k, x, y, args, bg)
            print(f"  ({k}) chunk of {n} rows done; load average {loadavg()}", flush=True)
            table += rows
    finally:
        if bg is not None:
            bg.close()
    print()
    print(f"| workload | machine | default ({default}) samples/s | 1 thread samples/s "
          "| default / 1 thread (median, min-max) | split |")
    print("|---|---|---|---|---|---|")
    for key, arch, batch, load, d, o, ratio, lo, hi, split in table:
        flag = "  **below 0.90**" if load == "loaded" and ratio < 0.9 else ""
        print(f"| {key} {arch} b{batch} | {load} | {d:,.0f} | {o:,.0f} | {ratio:.2f} "
              f"({lo:.2f}-{hi:.2f}){flag} | {split} |")
    print(f"\nCPU: {cpu_model()}; load average at the end: {loadavg()}")


if __name__ == "__main__":
    main()
