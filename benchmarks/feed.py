"""How fast batches from Python feed training: fit on in-memory arrays against fit
on a PyDataset (one worker, and 4 worker threads), a generator with
steps_per_epoch, and a float64 np.memmap read in chunks -- the same model, the
same batches, measured in the same run.

    PYTHONPATH=src python benchmarks/feed.py [--rounds 5] [--rows 60000]

Each source trains one epoch (shuffle=False, so every source sees the same
batches) per round; rounds are interleaved and the table gives the median
samples/s and the ratio to arrays (1.00 = as fast as arrays).
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=60000)
    args = parser.parse_args()
    import fastmlp
    from fastmlp import layers
    from fastmlp.utils import PyDataset
    from _bench_util import scratch_dir

    rng = np.random.default_rng(0)
    n = args.rows
    x = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n)
    path = os.path.join(scratch_dir(), "x.dat")
    mm = np.memmap(path, dtype=np.float64, mode="w+", shape=x.shape)
    mm[:] = x
    mm.flush()

    class Batches(PyDataset):
        def __init__(self, batch_size, **kwargs):
            super().__init__(**kwargs)
            self.batch_size = batch_size

        def __len__(self):
            return -(-n // self.batch_size)

        def __getitem__(self, i):   # a typical PyDataset: slice (and copy, as loading would) a batch
            sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
            return x[sl].copy(), y[sl].copy()

    def generator(batch_size):
        while True:
            for i in range(0, n, batch_size):
                yield x[i:i + batch_size], y[i:i + batch_size]

    def model():
        fastmlp.utils.set_random_seed(1)
        m = fastmlp.Sequential([fastmlp.Input(shape=(784,)), layers.Dense(64, activation="relu"),
                                layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return m

    for batch_size in (32, 256):
        steps = -(-n // batch_size)
        sources = {
            "arrays": lambda m: m.fit(x, y, batch_size=batch_size, shuffle=False, verbose=0),
            "PyDataset, workers=1": lambda m: m.fit(Batches(batch_size), shuffle=False, verbose=0),
            "PyDataset, workers=4 (threads)": lambda m: m.fit(Batches(batch_size, workers=4), shuffle=False,
                                                              verbose=0),
            "generator + steps_per_epoch": lambda m: m.fit(generator(batch_size), steps_per_epoch=steps,
                                                           verbose=0),
            "np.memmap (float64, chunks)": lambda m: m.fit(mm, y, batch_size=batch_size, shuffle=False, verbose=0),
        }
        times = {name: [] for name in sources}
        models = {name: model() for name in sources}
        for name, run in sources.items():   # warm-up: first fit builds optimizer state
            run(models[name])
        for r in range(args.rounds):
            names = list(sources)
            names = names[r % len(names):] + names[:r % len(names)]
            for name in names:
                t0 = time.perf_counter()
                sources[name](models[name])
                times[name].append(time.perf_counter() - t0)
        base = n / float(np.median(times["arrays"]))
        print(f"\n784-64-64-10, Adam, batch {batch_size}, one epoch of {n:,} rows, median of {args.rounds}:\n")
        print("| source | samples/s | vs arrays |")
        print("|---|---:|---:|")
        for name in sources:
            rate = n / float(np.median(times[name]))
            print(f"| {name} | {rate:,.0f} | {rate / base:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
