"""What the training features cost: an epoch with EarlyStopping,
ReduceLROnPlateau, CSVLogger, validation_split=0.1 and verbose=1 against a
bare verbose=0 epoch on the same 54,000 training rows.

    python benchmarks/overhead.py [--rounds 5]

Both runs train on exactly the same rows (the bare run gets the 90% slice that
validation_split leaves); the featured run also evaluates the 10% slice each
epoch, as Keras does.  Rounds are interleaved; the medians are compared.
"""
import argparse
import io
import os
import sys
import time
from contextlib import redirect_stdout

import numpy as np

from _bench_util import fashion_mnist_train_float32, scratch_dir


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import fastmlp as keras
    from fastmlp import callbacks, layers
    x, y, source = fashion_mnist_train_float32()
    split = int(len(x) * 0.9)

    def model():
        m = keras.Sequential([keras.Input(shape=(784,)), layers.Dense(64, activation="relu"),
                              layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return m

    bare, featured = [], []
    tmp = scratch_dir()
    for _ in range(args.rounds):
        m = model()
        t0 = time.perf_counter()
        m.fit(x[:split], y[:split], epochs=1, batch_size=32, verbose=0)
        bare.append(time.perf_counter() - t0)
        m = model()
        cbs = [callbacks.EarlyStopping(patience=3), callbacks.ReduceLROnPlateau(patience=2),
               callbacks.CSVLogger(os.path.join(tmp, "log.csv"))]
        sink = io.StringIO()
        t0 = time.perf_counter()
        with redirect_stdout(sink):
            m.fit(x, y, epochs=1, batch_size=32, verbose=1, validation_split=0.1, callbacks=cbs)
        featured.append(time.perf_counter() - t0)
    b, f = float(np.median(bare)), float(np.median(featured))
    print(f"{source}, 784-64-64-10, batch 32, one epoch of {split:,} rows (median of {args.rounds}):")
    print(f"  bare verbose=0:                                   {b:.3f} s")
    print(f"  EarlyStopping + ReduceLROnPlateau + CSVLogger + validation + verbose=1: {f:.3f} s")
    print(f"  overhead: {100 * (f / b - 1):+.1f}%  (target: at most +5%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
