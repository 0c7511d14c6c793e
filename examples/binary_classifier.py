"""A binary classifier on 8 features: Dense 10-5-1, Adam, binary cross-entropy.

The data is a synthetic tabular problem (8 numeric features, a nonlinear
decision rule with label noise), split 80/20.
"""
import time

import numpy as np

from _common import parse_args

import fastmlp as keras
from fastmlp import layers, optimizers


def main():
    args = parse_args(__doc__.splitlines()[0], epochs=30)
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    n = 2000 if args.fast else 20000
    x = rng.normal(size=(n, 8)).astype("float32")
    logit = 1.5 * x[:, 0] - x[:, 1] + x[:, 2] * x[:, 3] + 0.5 * np.sin(3 * x[:, 4])
    y = (logit + 0.3 * rng.normal(size=n) > 0).astype("int64")
    split = int(0.8 * n)
    x_train, y_train, x_test, y_test = x[:split], y[:split], x[split:], y[split:]

    model = keras.models.Sequential()
    model.add(layers.Dense(units=10, activation="relu", input_dim=8))
    model.add(layers.Dense(units=5, activation="relu"))
    model.add(layers.Dense(units=1, activation="sigmoid"))
    model.compile(optimizer=optimizers.Adam(learning_rate=0.001), loss="binary_crossentropy",
                  metrics=["accuracy"])
    epochs = 3 if args.fast else args.epochs
    start = time.perf_counter()
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    seconds = time.perf_counter() - start
    loss, acc = model.evaluate(x_test, y_test, verbose=0)
    print(f"binary classifier: {epochs} epochs in {seconds:.2f} s "
          f"({epochs * len(x_train) / seconds:,.0f} samples/s); final training loss "
          f"{history.history['loss'][-1]:.4f}; test loss {loss:.4f}, test accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
