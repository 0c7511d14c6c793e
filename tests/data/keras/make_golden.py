"""Writes the golden Keras files the tests read where Keras is absent (run with Keras 3 installed):

    KERAS_BACKEND=torch python tests/data/keras/make_golden.py [seq_func | kinds]

seq_adam: a Sequential (Dense, Dropout, BatchNormalization, Dense softmax) compiled with Adam and
fit for 1 epoch, saved as .keras and legacy .h5; func_concat: a functional model with two inputs
joined by Concatenate (compiled with SGD momentum, fit 1 epoch).  expected.npz holds the inputs
and Keras's predictions and optimizer iteration counts.  kinds (``kinds.keras``, ``kinds.h5``,
``kinds_expected.npz``): a functional model with a float and an int32 input through the
preprocessing, normalization, embedding and noise layers, compiled with the confusion-matrix, AUC,
R2 and F-beta metrics, weighted_metrics and a metric function; its inputs, predictions and
``evaluate`` values (with sample weights).  Each group is written only when named (or when none is)."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def seq_func():
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


def kinds():
    keras.utils.set_random_seed(99)
    rng = np.random.default_rng(11)
    x = rng.normal(size=(20, 4)).astype("float32")
    ids = rng.integers(0, 5, (20, 2)).astype("int32")
    y = (rng.random((20, 1)) < 0.5).astype("float32")
    sw = rng.random(20).astype("float32")
    L, M = keras.layers, keras.metrics
    a, b = keras.Input((4,), name="x"), keras.Input((2,), dtype="int32", name="ids")
    norm = L.Normalization()
    norm.adapt(x)
    h = L.Normalization(mean=[0.5, 0.0, -1.0, 2.0], variance=[1.0, 4.0, 0.25, 2.0], invert=True)(norm(a))
    h = L.Dense(6, activation="tanh")(L.Rescaling([0.5, 1.0, 2.0, -1.0], offset=0.25)(h))
    h = L.PReLU()(L.UnitNormalization()(L.LayerNormalization()(h)))
    h = L.AlphaDropout(0.1)(L.GaussianDropout(0.2)(L.Identity()(L.ActivityRegularization(l2=0.01)(h))))
    e = L.Reshape((-1,))(L.Embedding(5, 3)(b))
    out = L.Dense(1, activation="sigmoid")(L.Concatenate()([h, e]))
    model = keras.Model([a, b], out, name="kinds")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy",
                  metrics=[M.TruePositives(), M.FalseNegatives(), M.AUC(curve="PR", name="pr_auc"),
                           M.PrecisionAtRecall(0.5), M.R2Score(), M.FBetaScore(beta=2.0, threshold=0.5),
                           M.BinaryCrossentropy(), M.binary_accuracy],
                  weighted_metrics=[M.AUC(name="wauc"), M.Recall(name="wrecall")])
    model.fit([x, ids], y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    model.save(os.path.join(HERE, "kinds.keras"))
    model.save(os.path.join(HERE, "kinds.h5"))
    values = model.evaluate([x, ids], y, sample_weight=sw, verbose=0, return_dict=True)
    np.savez(os.path.join(HERE, "kinds_expected.npz"), x=x, ids=ids, y=y, sw=sw,
             pred=model.predict([x, ids], verbose=0), **{f"metric_{k}": np.asarray(v) for k, v in values.items()})


if __name__ == "__main__":
    import sys
    wanted = sys.argv[1:] or ["seq_func", "kinds"]
    for group in wanted:
        {"seq_func": seq_func, "kinds": kinds}[group]()
