"""Writes the golden Keras files the tests read where Keras is absent (run with Keras 3 installed):

    KERAS_BACKEND=torch python tests/data/keras/make_golden.py

seq_adam: a Sequential (Dense, Dropout, BatchNormalization, Dense softmax) compiled with Adam and
fit for 1 epoch, saved as .keras and legacy .h5; func_concat: a functional model with two inputs
joined by Concatenate (compiled with SGD momentum, fit 1 epoch).  expected.npz holds the inputs
and Keras's predictions and optimizer iteration counts."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    keras.utils.set_random_seed(1234)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.integers(0, 3, 16)
    seq = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation="relu"),
                            keras.layers.Dropout(0.25), keras.layers.BatchNormalization(),
                            keras.layers.Dense(3, activation="softmax")], name="seq_adam")
    seq.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                metrics=["accuracy"])
    seq.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    seq.save(os.path.join(HERE, "seq_adam.keras"))
    seq.save(os.path.join(HERE, "seq_adam.h5"))

    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    h = keras.layers.Concatenate()([keras.layers.Dense(4, activation="tanh", name="da")(a),
                                    keras.layers.Dense(4, activation="relu", name="db")(b)])
    out = keras.layers.Dense(1, name="out")(h)
    func = keras.Model([a, b], out, name="func_concat")
    func.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="mse", metrics=["mae"])
    xa, xb = x[:, :3], x[:, 2:]
    yt = rng.normal(size=(16, 1)).astype("float32")
    func.fit([xa, xb], yt, epochs=1, batch_size=8, shuffle=False, verbose=0)
    func.save(os.path.join(HERE, "func_concat.keras"))
    func.save(os.path.join(HERE, "func_concat.h5"))

    np.savez(os.path.join(HERE, "expected.npz"), x=x, y=y, yt=yt,
             seq_pred=seq.predict(x, verbose=0), func_pred=func.predict([xa, xb], verbose=0),
             seq_iterations=int(seq.optimizer.iterations.numpy()),
             func_iterations=int(func.optimizer.iterations.numpy()))


if __name__ == "__main__":
    main()
