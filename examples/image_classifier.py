"""A 784-64-64-10 image classifier on Fashion-MNIST, saved and reloaded.

Integer labels with sparse categorical cross-entropy, 10% validation split;
the reloaded model must predict exactly what the trained one did.
"""
import os
import tempfile
import time

import numpy as np

from _common import fashion_mnist, parse_args

import fastmlp as keras
from fastmlp import layers


def main():
    args = parse_args(__doc__.splitlines()[0], epochs=5)
    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test), source = fashion_mnist(args.fast)
    model = keras.Sequential([layers.Dense(64, activation="relu", input_shape=(784,)),
                              layers.Dense(64, activation="relu"),
                              layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    epochs = 1 if args.fast else args.epochs
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=epochs, validation_split=0.1, verbose=0)
    seconds = time.perf_counter() - start
    loss, acc = model.evaluate(x_test, y_test, verbose=0)
    probabilities = model.predict(x_test)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fashion.fmlp")
        model.save(path)
        restored = keras.models.load_model(path)
        same = np.array_equal(restored.predict(x_test), probabilities)
        size = os.path.getsize(path)
    print(f"{source}: {epochs} epochs in {seconds:.2f} s "
          f"({epochs * 0.9 * len(x_train) / seconds:,.0f} samples/s); test accuracy {acc:.4f}; "
          f"saved {size:,} bytes; reloaded predictions identical: {same}")
    if not same:
        raise SystemExit("reloaded model predicts differently")


if __name__ == "__main__":
    main()
