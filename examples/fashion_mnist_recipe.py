"""A tuned Fashion-MNIST MLP: 784-512-256-10 with Dropout, Adam and EarlyStopping.

EarlyStopping watches val_accuracy (patience 4) and restores the best weights;
ReduceLROnPlateau halves the learning rate when val_loss stalls.  With
--compare-keras the same recipe also runs on Keras 3 (torch backend) and both
times are printed.
"""
import os
import time

from _common import fashion_mnist, parse_args

import fastmlp


def build(keras):
    layers = keras.layers
    return keras.Sequential([keras.Input(shape=(784,)),
                             layers.Dense(512, activation="relu"), layers.Dropout(0.3),
                             layers.Dense(256, activation="relu"), layers.Dropout(0.3),
                             layers.Dense(10, activation="softmax")])


def run(keras, data, epochs, seed):
    (x_train, y_train), (x_test, y_test) = data
    keras.utils.set_random_seed(seed)
    model = build(keras)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    cbs = [keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=4, restore_best_weights=True),
           keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2)]
    start = time.perf_counter()
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=128, validation_split=0.1,
                        callbacks=cbs, verbose=0)
    seconds = time.perf_counter() - start
    loss, acc = model.evaluate(x_test, y_test, verbose=0)
    return acc, seconds, len(history.epoch)


def main():
    import sys
    compare = "--compare-keras" in sys.argv
    if compare:
        sys.argv.remove("--compare-keras")
    args = parse_args(__doc__.splitlines()[0], epochs=40)
    (x_train, y_train), (x_test, y_test), source = fashion_mnist(args.fast)
    data = ((x_train, y_train), (x_test, y_test))
    epochs = 2 if args.fast else args.epochs
    acc, seconds, ran = run(fastmlp, data, epochs, args.seed)
    print(f"{source}: fastmlp test accuracy {acc:.4f} after {ran} epochs in {seconds:.1f} s")
    if compare:
        os.environ.setdefault("KERAS_BACKEND", "torch")
        import keras
        k_acc, k_seconds, k_ran = run(keras, data, epochs, args.seed)
        print(f"{source}: Keras {keras.__version__} ({keras.backend.backend()}) test accuracy {k_acc:.4f} "
              f"after {k_ran} epochs in {k_seconds:.1f} s; per epoch fastmlp is "
              f"{(k_seconds / k_ran) / (seconds / ran):.1f}x faster")


if __name__ == "__main__":
    main()
