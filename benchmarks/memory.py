"""Peak memory of a Fashion-MNIST fit, against the issue's bound.

    python benchmarks/memory.py [--epochs 1]

Loads the data as float32 (scaled in place), records the process's peak RSS
before and after ``fit``, and prints the peak against
1.3 x (float32 training set) + 64 MiB.  ``fit`` converts the data at most once
(here: not at all, the arrays are already float32 and C-contiguous) and
allocates its batch buffers once.
"""
import argparse
import resource
import sys

import numpy as np

from _bench_util import fashion_mnist_train_float32


def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    import fastmlp as keras
    from fastmlp import layers
    x, y, source = fashion_mnist_train_float32()
    data_mib = x.nbytes / 2**20
    before = peak_mib()
    model = keras.Sequential([keras.Input(shape=(784,)), layers.Dense(64, activation="relu"),
                              layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=args.epochs, batch_size=32, validation_split=0.1, verbose=0)
    after = peak_mib()
    bound = 1.3 * data_mib + 64
    print(f"{source}: float32 training set {data_mib:.0f} MiB; peak RSS before fit {before:.0f} MiB, "
          f"after fit {after:.0f} MiB (fit added {after - before:.0f} MiB); bound 1.3 x data + 64 MiB = "
          f"{bound:.0f} MiB -> {'within' if after <= bound else 'OVER'}")
    return 0 if after <= bound else 1


if __name__ == "__main__":
    sys.exit(main())
