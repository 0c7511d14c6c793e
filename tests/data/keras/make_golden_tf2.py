"""Writes the golden tf.keras 2.x files (run under TensorFlow 2.x, whose tf.keras is Keras 2):

    python tests/data/keras/make_golden_tf2.py        # TensorFlow 2.15 wrote the committed files

tf2_seq.h5: a Sequential (Dense relu, BatchNormalization, Dense softmax) compiled with Adam
and fit for 2 epochs; tf2_func.h5: a functional model with two inputs joined by Concatenate,
compiled with RMSprop (momentum) and mean squared error, fit for 2 epochs.  Both are saved in the
legacy HDF5 format with their optimizer state.  tf2_expected.npz holds the inputs, TensorFlow's
predictions, the optimizer iteration counts, and the weights after one more epoch of fit from the
saved state (shuffle off), which a resumed fastmlp fit must reproduce (so no layer draws random
numbers in training).

tf2_leaky.h5 (``leaky()``): what tf.keras 2 writes differently from Keras 3 -- a LeakyReLU's slope
as ``alpha``, a loss object's config with the function it wraps (``fn``) and ``reduction="auto"``,
and SGD(momentum=0)'s unused momentum slots; tf2_leaky_expected.npz as above.

tf2_nested.h5 (``nested()``): a functional model calling one nested Sequential (built with
``input_shape``) on two inputs, which tf.keras 2 numbers as the Sequential's nodes 1 and 2;
tf2_nested_expected.npz as above.

tf2_multi.h5 (``multi()``): a model with dict outputs ``reg`` and ``cls`` and metrics for ``cls``
only, which tf.keras 2 stores as one list per output (``None`` for ``reg``), each metric named with
its output already (``cls_accuracy``); tf2_multi_expected.npz holds tf.keras's ``evaluate`` of the
reloaded file (keys and values) besides the above."""
import os

import numpy as np
import tensorflow as tf

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    tf.keras.utils.set_random_seed(99)
    rng = np.random.default_rng(11)
    x = rng.normal(size=(24, 4)).astype("float32")
    y = rng.integers(0, 3, 24)
    yt = rng.normal(size=(24, 1)).astype("float32")
    L = tf.keras.layers

    seq = tf.keras.Sequential([L.Input((4,)), L.Dense(6, activation="relu"), L.BatchNormalization(),
                               L.Dense(3, activation="softmax")], name="tf2_seq")
    seq.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                metrics=["accuracy"])
    seq.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    seq.save(os.path.join(HERE, "tf2_seq.h5"))

    a, b = L.Input((3,), name="a"), L.Input((2,), name="b")
    h = L.Concatenate()([L.Dense(4, activation="tanh", name="da")(a), L.Dense(4, activation="relu", name="db")(b)])
    func = tf.keras.Model([a, b], L.Dense(1, name="out")(h), name="tf2_func")
    func.compile(optimizer=tf.keras.optimizers.RMSprop(0.01, momentum=0.5), loss="mse", metrics=["mae"])
    xa, xb = x[:, :3], x[:, 2:]
    func.fit([xa, xb], yt, epochs=2, batch_size=8, shuffle=False, verbose=0)
    func.save(os.path.join(HERE, "tf2_func.h5"))

    expected = dict(x=x, y=y, yt=yt, seq_pred=seq.predict(x, verbose=0),
                    func_pred=func.predict([xa, xb], verbose=0),
                    seq_iterations=int(seq.optimizer.iterations.numpy()),
                    func_iterations=int(func.optimizer.iterations.numpy()))
    seq.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    func.fit([xa, xb], yt, epochs=1, batch_size=8, shuffle=False, verbose=0)
    for i, w in enumerate(seq.get_weights()):
        expected[f"seq_resumed_{i}"] = w
    for i, w in enumerate(func.get_weights()):
        expected[f"func_resumed_{i}"] = w
    np.savez(os.path.join(HERE, "tf2_expected.npz"), **expected)
    leaky()
    nested()
    multi()


def leaky():
    tf.keras.utils.set_random_seed(7)
    rng = np.random.default_rng(12)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = (x[:, :1] + x[:, 1:2] > 0).astype("float32")
    L = tf.keras.layers
    m = tf.keras.Sequential([L.Input((4,)), L.Dense(5), L.LeakyReLU(0.2), L.Dense(1)], name="tf2_leaky")
    m.compile(optimizer=tf.keras.optimizers.SGD(0.05), loss=tf.keras.losses.BinaryCrossentropy(from_logits=True))
    _save_and_resume(m, "tf2_leaky", x, y, dict(x=x, y=y))


def _save_and_resume(m, name, x, y, data):
    """Fit ``m`` 2 epochs, save it as ``<name>.h5``, then ``<name>_expected.npz``: ``data``, the
    predictions, the step count and the weights after one more epoch."""
    m.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    m.save(os.path.join(HERE, f"{name}.h5"))
    expected = dict(data, pred=m.predict(x, verbose=0), iterations=int(m.optimizer.iterations.numpy()))
    m.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    for i, w in enumerate(m.get_weights()):
        expected[f"resumed_{i}"] = w
    np.savez(os.path.join(HERE, f"{name}_expected.npz"), **expected)


def nested():
    tf.keras.utils.set_random_seed(8)
    rng = np.random.default_rng(13)
    xa, xb = rng.normal(size=(16, 4)).astype("float32"), rng.normal(size=(16, 4)).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")
    L = tf.keras.layers
    inner = tf.keras.Sequential([L.Dense(5, activation="relu", input_shape=(4,)), L.Dense(3)], name="inner")
    a, b = L.Input((4,), name="a"), L.Input((4,), name="b")
    m = tf.keras.Model([a, b], L.Dense(1, name="out")(L.Concatenate()([inner(a), inner(b)])), name="tf2_nested")
    m.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="mse")
    _save_and_resume(m, "tf2_nested", [xa, xb], y, dict(xa=xa, xb=xb, y=y))


def multi():
    tf.keras.utils.set_random_seed(9)
    rng = np.random.default_rng(14)
    x = rng.normal(size=(32, 6)).astype("float32")
    yr, yc = rng.normal(size=(32, 2)).astype("float32"), rng.integers(0, 3, 32)
    L = tf.keras.layers
    a = L.Input((6,), name="x")
    h = L.Dense(8, activation="tanh")(a)
    m = tf.keras.Model(a, {"reg": L.Dense(2, name="reg")(h), "cls": L.Dense(3, activation="softmax", name="cls")(h)},
                       name="tf2_multi")
    m.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
              metrics={"cls": ["accuracy", tf.keras.metrics.SparseTopKCategoricalAccuracy(k=2)]})
    m.fit(x, {"reg": yr, "cls": yc}, epochs=2, batch_size=8, shuffle=False, verbose=0)
    m.save(os.path.join(HERE, "tf2_multi.h5"))
    scores = tf.keras.models.load_model(os.path.join(HERE, "tf2_multi.h5")).evaluate(
        x, {"reg": yr, "cls": yc}, verbose=0, return_dict=True)
    np.savez(os.path.join(HERE, "tf2_multi_expected.npz"), x=x, yr=yr, yc=yc, keys=np.array(sorted(scores)),
             values=np.array([scores[k] for k in sorted(scores)]))


if __name__ == "__main__":
    main()
