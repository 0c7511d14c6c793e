"""Command line: ``fastmlp`` / ``python -m fastmlp`` with train, evaluate, predict, inspect,
export, serve (``cli.py``), demo and info.

The demo trains a small network on the Iris data shipped with the package,
evaluates it, predicts, saves the model, loads it back and checks that the
reloaded model predicts the same, printing what it measured.
"""
import os
import sys
import tempfile
import time

import numpy as np


def demo(epochs=100, batch_size=10, seed=0):
    import fastmlp as keras
    from fastmlp import layers

    keras.utils.set_random_seed(seed)
    (x_train, y_train), (x_test, y_test) = keras.datasets.iris.load_data()
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    print(f"Iris: {len(x_train)} training and {len(x_test)} test samples, 4 features, 3 classes")

    model = keras.Sequential([
        keras.Input(shape=(4,)),
        layers.Dense(32, activation="relu"),
        layers.Dropout(0.1),
        layers.Dense(16, activation="relu"),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()

    start = time.perf_counter()
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, verbose=0)
    seconds = time.perf_counter() - start
    rate = epochs * len(x_train) / seconds
    print(f"trained {epochs} epochs in {seconds:.3f} s: {rate:,.0f} samples/s; "
          f"final loss {history.history['loss'][-1]:.4f}, "
          f"accuracy {history.history['accuracy'][-1]:.4f}")

    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test loss {loss:.4f}, test accuracy {accuracy:.4f}")

    probabilities = model.predict(x_test)
    names = keras.datasets.iris.CLASS_NAMES
    for row, label in zip(probabilities[:3], y_test[:3]):
        print(f"  predicted {names[int(np.argmax(row))]:<10} (p={row.max():.3f}), true {names[label]}")

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "iris.fmlp")
        model.save(path)
        t0 = time.perf_counter()
        restored = keras.models.load_model(path)
        load_us = 1e6 * (time.perf_counter() - t0)
        reloaded_ok = bool(np.array_equal(restored.predict(x_test), probabilities))
        print(f"saved {os.path.getsize(path):,} bytes to a .fmlp file, reloaded in {load_us:.0f} us; "
              f"reloaded predictions identical: {reloaded_ok}")
    return {"test_accuracy": accuracy, "samples_per_second": rate, "reloaded_ok": reloaded_ok}


def main(argv=None):
    from . import cli
    parser, sub = cli.build_parser()
    d = sub.add_parser("demo", help="train, evaluate, save, reload and predict on Iris")
    d.add_argument("--epochs", type=int, default=100)
    d.add_argument("--batch-size", type=int, default=10)
    d.add_argument("--seed", type=int, default=0)
    sub.add_parser("info", help="show the build and run-time configuration")
    args = parser.parse_args(argv)
    if args.command == "demo":
        result = demo(args.epochs, args.batch_size, args.seed)
        return 0 if result["reloaded_ok"] else 1
    if args.command == "info":
        import fastmlp
        fastmlp.show_config()
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    return cli.run(parser, args)


if __name__ == "__main__":
    sys.exit(main())
