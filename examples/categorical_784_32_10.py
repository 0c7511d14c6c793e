"""A 784-32-10 model with one-hot labels and categorical cross-entropy (batch 128)."""
import time

import numpy as np

from _common import fashion_mnist, parse_args

import fastmlp as keras
from fastmlp import layers


def main():
    args = parse_args(__doc__.splitlines()[0], epochs=10)
    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test), source = fashion_mnist(args.fast)
    y_train_1h, y_test_1h = np.eye(10, dtype="float32")[y_train], np.eye(10, dtype="float32")[y_test]
    model = keras.Sequential([keras.Input(shape=(784,)), layers.Dense(32, activation="relu"),
                              layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy",
                  metrics=["accuracy", keras.metrics.TopKCategoricalAccuracy(k=3)])
    epochs = 2 if args.fast else args.epochs
    start = time.perf_counter()
    model.fit(x_train, y_train_1h, epochs=epochs, batch_size=128, verbose=0)
    seconds = time.perf_counter() - start
    result = model.evaluate(x_test, y_test_1h, verbose=0, return_dict=True)
    print(f"{source}, 784-32-10: {epochs} epochs in {seconds:.2f} s "
          f"({epochs * len(x_train) / seconds:,.0f} samples/s); test accuracy {result['accuracy']:.4f}, "
          f"top-3 {result['top_k_categorical_accuracy']:.4f}")


if __name__ == "__main__":
    main()
