"""Keras files against Keras 3 itself (torch backend): what fastmlp writes Keras loads and predicts the
same, and a training run continues across the two in both directions (Keras fits, saves, and both Keras
and fastmlp fit one more epoch from the file: same weights; and the reverse)."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")
pytest.importorskip("h5py")

import fastmlp  # noqa: E402

STEP_ATOL = 2e-4


@pytest.fixture(autouse=True)
def _seed():
    keras.config.set_floatx("float32")
    keras.utils.set_random_seed(0)
    fastmlp.utils.set_random_seed(0)


def _data(n=32, d=6, classes=3):
    rng = np.random.default_rng(5)
    return rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, classes, n)


def _sequential(lib, opt):
    L = lib.layers
    m = lib.Sequential([lib.Input(shape=(6,)), L.Dense(10, activation="tanh"), L.BatchNormalization(),
                        L.Dense(8), L.PReLU(), L.Dropout(0.0), L.Dense(3, activation="softmax")])
    m.compile(optimizer=opt(lib), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def _functional(lib, opt):
    L = lib.layers
    a, b = lib.Input(shape=(4,), name="a"), lib.Input(shape=(2,), name="b")
    h = L.Concatenate()([L.Dense(5, activation="relu", name="da")(a), L.Dense(3, activation="elu", name="db")(b)])
    out = L.Dense(3, activation="softmax", name="out")(L.LeakyReLU(negative_slope=0.1)(h))
    m = lib.Model([a, b], out)
    m.compile(optimizer=opt(lib), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


OPTIMIZERS = {
    "adam": lambda lib: lib.optimizers.Adam(0.01),
    "rmsprop_centered": lambda lib: lib.optimizers.RMSprop(0.005, momentum=0.5, centered=True),
    "sgd_momentum": lambda lib: lib.optimizers.SGD(0.05, momentum=0.9),
    "nadam": lambda lib: lib.optimizers.Nadam(0.01),
    "adamax": lambda lib: lib.optimizers.Adamax(0.01),
    "adagrad": lambda lib: lib.optimizers.Adagrad(0.05),
    "adadelta": lambda lib: lib.optimizers.Adadelta(0.5),
    "adamw_amsgrad": lambda lib: lib.optimizers.AdamW(0.01, amsgrad=True),
    "adam_exponential_decay": lambda lib: lib.optimizers.Adam(lib.optimizers.schedules.ExponentialDecay(0.01, 3, 0.5)),
}


def _inputs(kind, x):
    return x if kind == "sequential" else [x[:, :4], x[:, 4:]]


def _build(kind, lib, opt):
    return (_sequential if kind == "sequential" else _functional)(lib, opt)


def _close(a_weights, b_weights, atol):
    assert len(a_weights) == len(b_weights)
    for a, b in zip(a_weights, b_weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=atol, rtol=0)


@pytest.mark.parametrize("ext", ["keras", "h5"])
@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_keras_loads_what_fastmlp_saves_and_predicts_the_same(tmp_path, kind, ext):
    x, y = _data()
    m = _build(kind, fastmlp, OPTIMIZERS["adam"])
    m.fit(_inputs(kind, x), y, epochs=2, batch_size=16, verbose=0)
    m.save(tmp_path / f"m.{ext}")
    k = keras.models.load_model(tmp_path / f"m.{ext}")
    np.testing.assert_allclose(k.predict(_inputs(kind, x), verbose=0), m.predict(_inputs(kind, x)), rtol=1e-6,
                               atol=1e-7)
    assert int(k.optimizer.iterations.numpy()) == m.optimizer.iterations == 4


@pytest.mark.parametrize("opt", ["adam", "rmsprop_centered", "nadam", "adamw_amsgrad", "sgd_momentum", "adadelta"])
def test_a_keras_run_continues_in_fastmlp_as_in_keras(tmp_path, opt):
    """Keras fits 2 epochs and saves; Keras and fastmlp each fit 1 more epoch from the file."""
    kind = "functional" if opt in ("adam", "sgd_momentum") else "sequential"
    x, y = _data()
    k = _build(kind, keras, OPTIMIZERS[opt])
    k.fit(_inputs(kind, x), y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    k.save(tmp_path / "k.keras")
    k_more = keras.models.load_model(tmp_path / "k.keras")
    f_more = fastmlp.load_model(tmp_path / "k.keras")
    assert f_more.optimizer.iterations == 4
    k_more.fit(_inputs(kind, x), y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    f_more.fit(_inputs(kind, x), y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    _close(f_more.get_weights(), [w.numpy() if hasattr(w, "numpy") else w for w in k_more.get_weights()],
           STEP_ATOL)


@pytest.mark.parametrize("opt", ["adam", "rmsprop_centered", "nadam", "adagrad", "adamax", "adam_exponential_decay"])
def test_a_fastmlp_run_continues_in_keras_as_in_fastmlp(tmp_path, opt):
    """(Keras refuses to train with a schedule named None: fastmlp's schedules have Keras's names.)"""
    x, y = _data()
    m = _build("sequential", fastmlp, OPTIMIZERS[opt])
    m.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    m.save(tmp_path / "m.keras")
    k = keras.models.load_model(tmp_path / "m.keras")
    m.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    k.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    _close(m.get_weights(), k.get_weights(), STEP_ATOL)


def _log_softmax_model(lib):
    """A classifier that outputs log-probabilities (torch's log_softmax + NLLLoss, in Keras's words)."""
    L = lib.layers
    m = lib.Sequential([lib.Input(shape=(6,)), L.Dense(8, activation="log_softmax"), L.Dense(3),
                        L.Activation("log_softmax")])
    m.compile(optimizer=lib.optimizers.Adam(0.01), loss=lib.losses.SparseCategoricalCrossentropy(from_logits=True))
    return m


def test_log_softmax_models_cross_between_keras_and_fastmlp_and_train_alike(tmp_path):
    x, y = _data()
    k = _log_softmax_model(keras)
    k.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    k.save(tmp_path / "k.keras")
    f = fastmlp.load_model(tmp_path / "k.keras")
    np.testing.assert_allclose(f.predict(x, verbose=0), k.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    k.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    f.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    _close(f.get_weights(), k.get_weights(), STEP_ATOL)
    f.save(tmp_path / "f.keras")
    back = keras.models.load_model(tmp_path / "f.keras")
    np.testing.assert_allclose(back.predict(x, verbose=0), f.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("opt", ["rmsprop_centered", "nadam"])
def test_the_optimizer_weights_of_a_legacy_h5_file_are_laid_out_as_keras_lays_them_out(tmp_path, opt):
    """Keras 3.15 reads only the step count back from a legacy .h5 (it builds the optimizer on no
    variables, its own files included), so the layout is compared with a file Keras wrote."""
    import h5py
    x, y = _data()
    m = _build("sequential", fastmlp, OPTIMIZERS[opt])
    m.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    m.save(tmp_path / "m.h5")
    assert int(keras.models.load_model(tmp_path / "m.h5").optimizer.iterations.numpy()) == 4
    k = _build("sequential", keras, OPTIMIZERS[opt])
    k.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    k.save(tmp_path / "k.h5")
    with h5py.File(tmp_path / "m.h5") as fm, h5py.File(tmp_path / "k.h5") as fk:
        ours, theirs = fm["optimizer_weights"], fk["optimizer_weights"]
        names = [[n.decode() if isinstance(n, bytes) else n for n in g.attrs["weight_names"]] for g in (ours, theirs)]
        assert [ours[n].shape for n in names[0]] == [theirs[n].shape for n in names[1]]
        slots = ("momentum", "velocity", "average_gradient")
        assert [next((t for t in slots if n.endswith(t)), None) for n in names[0]] == \
            [next((t for t in slots if n.endswith(t)), None) for n in names[1]]
        assert int(ours[names[0][0]][()]) == 4


def test_weights_files_cross_between_keras_and_fastmlp(tmp_path):
    x, y = _data()
    k = _sequential(keras, OPTIMIZERS["adam"])
    k.fit(x, y, epochs=1, batch_size=16, verbose=0)
    k.save_weights(tmp_path / "k.weights.h5")
    m = _sequential(fastmlp, OPTIMIZERS["adam"])
    m.load_weights(tmp_path / "k.weights.h5")
    np.testing.assert_allclose(m.predict(x), k.predict(x, verbose=0), rtol=1e-6, atol=1e-7)
    m.fit(x, y, epochs=1, batch_size=16, verbose=0)
    m.save_weights(tmp_path / "m.weights.h5")
    k2 = _sequential(keras, OPTIMIZERS["adam"])
    k2.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_allclose(k2.predict(x, verbose=0), m.predict(x), rtol=1e-6, atol=1e-7)


def test_every_supported_layer_activation_loss_and_metric_kind_crosses(tmp_path):
    """Layer kinds fastmlp registers and Keras has, in one functional model, through .keras both ways."""
    x, _ = _data(d=6)
    yr = np.random.default_rng(1).normal(size=(32, 2)).astype(np.float32)

    def build(lib):
        L = lib.layers
        a = lib.Input(shape=(6,))
        h = L.Dense(8, activation="selu", kernel_regularizer=lib.regularizers.L2(1e-3))(a)
        h = L.GaussianNoise(0.1)(L.Activation("swish")(h))
        p, q = L.Dense(4, activation="sigmoid")(h), L.Dense(4, use_bias=False)(h)
        merged = [L.Add()([p, q]), L.Subtract()([p, q]), L.Multiply()([p, q]), L.Average()([p, q]),
                  L.Maximum()([p, q]), L.Minimum()([p, q])]
        h = L.Concatenate()(merged)
        h = L.ReLU(max_value=6.0)(L.BatchNormalization(momentum=0.9)(h))
        h = L.Softmax()(L.ELU()(L.Dense(5)(h)))
        m = lib.Model(a, L.Dense(2)(L.Dropout(0.3)(h)))
        m.compile(optimizer=lib.optimizers.Adam(0.01), loss=lib.losses.Huber(delta=0.5),
                  metrics=["mae", lib.metrics.RootMeanSquaredError()])
        return m
    m = build(fastmlp)
    m.fit(x, yr, epochs=1, batch_size=16, verbose=0)
    m.save(tmp_path / "all.keras")
    k = keras.models.load_model(tmp_path / "all.keras")
    np.testing.assert_allclose(k.predict(x, verbose=0), m.predict(x), rtol=1e-5, atol=1e-6)
    kk = build(keras)
    kk.fit(x, yr, epochs=1, batch_size=16, verbose=0)
    kk.save(tmp_path / "k.keras")
    r = fastmlp.load_model(tmp_path / "k.keras")
    np.testing.assert_allclose(r.predict(x), kk.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert type(r.loss).__name__ == "Huber" and r.metrics_names == ["loss", "mae", "root_mean_squared_error"]


def _keras_class(module, name):
    return getattr(module, name, None)


def test_every_loss_optimizer_and_metric_config_crosses_both_ways():
    """Each loss, metric and optimizer class fastmlp has, as Keras serializes it, becomes the same
    fastmlp object, and fastmlp's compile config deserializes in Keras."""
    from keras.saving import deserialize_keras_object, serialize_keras_object

    from fastmlp import losses, metrics, optimizers
    from fastmlp.saving import keras_config
    checked = 0
    for name, cls in sorted(losses._CLASSES.items()):
        kcls = _keras_class(keras.losses, name)
        if kcls is None:
            continue
        args = keras_config.compile_args_from_keras({"optimizer": "adam", "loss": serialize_keras_object(kcls())})
        assert type(args["loss"]).__name__ == name
        checked += 1
    required = {"PrecisionAtRecall": {"recall": 0.5}, "RecallAtPrecision": {"precision": 0.5},
                "SensitivityAtSpecificity": {"specificity": 0.5}, "SpecificityAtSensitivity": {"sensitivity": 0.5}}
    for name, cls in sorted(metrics._CLASSES.items()):
        kcls = _keras_class(keras.metrics, name)
        if kcls is None or name in ("Metric", "MeanMetricWrapper"):   # abstract / needs a function
            continue
        args = keras_config.compile_args_from_keras({"optimizer": "adam", "loss": "mse", "metrics": [
            serialize_keras_object(kcls(**required.get(name, {})))]})
        assert type(args["metrics"][0]).__name__ == name
        checked += 1
    for cls in set(optimizers._ALIASES.values()):
        kopt = getattr(keras.optimizers, cls.__name__)(learning_rate=0.0125)
        opt = keras_config.compile_args_from_keras({"optimizer": serialize_keras_object(kopt),
                                                    "loss": "mse"})["optimizer"]
        assert type(opt) is cls and opt.learning_rate == pytest.approx(0.0125)
        m = fastmlp.Sequential([fastmlp.Input(shape=(3,)), fastmlp.layers.Dense(2)])
        m.compile(cls(learning_rate=0.0125), "mse", metrics=["mae"])
        back = deserialize_keras_object(keras_config.compile_config_to_keras(m)["optimizer"])
        assert type(back).__name__ == cls.__name__ and float(back.learning_rate) == pytest.approx(0.0125)
        checked += 1
    assert checked >= 20


@pytest.mark.parametrize("ext", ["keras", "h5"])
def test_a_nested_model_crosses_both_ways(tmp_path, ext):
    L = fastmlp.layers
    inner = fastmlp.Sequential([fastmlp.Input(shape=(4,)), L.Dense(5, activation="relu"), L.Dense(3)], name="inner")
    a = fastmlp.Input(shape=(4,))
    m = fastmlp.Model(a, L.Dense(2)(inner(a)))
    m.compile("adam", "mse")
    x = np.random.default_rng(0).random((8, 4), dtype=np.float32)
    m.fit(x, np.zeros((8, 2), np.float32), verbose=0)
    m.save(tmp_path / f"n.{ext}")
    k = keras.models.load_model(tmp_path / f"n.{ext}")
    np.testing.assert_allclose(k.predict(x, verbose=0), m.predict(x), rtol=1e-6, atol=1e-7)
    k.save(tmp_path / f"k.{ext}")
    r = fastmlp.load_model(tmp_path / f"k.{ext}")
    np.testing.assert_allclose(r.predict(x), m.predict(x), rtol=1e-6, atol=1e-7)
    assert type(r.layers[1]).__name__ == "Sequential" and r.optimizer.iterations == 1


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_unzipped_model_folders_go_both_ways_and_training_continues(tmp_path, kind):
    """Keras 3's ``model.save(path, zipped=False)``: a folder of config.json, metadata.json and
    model.weights.h5.  fastmlp loads Keras's folder (and one more epoch lands where Keras's does),
    and writes one Keras loads, predicts the same and trains on from as fastmlp does."""
    x, y = _data()
    k = _build(kind, keras, OPTIMIZERS["adam"])
    k.fit(_inputs(kind, x), y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    k.save(tmp_path / "k_model", zipped=False)
    f = fastmlp.models.load_model(tmp_path / "k_model")
    np.testing.assert_allclose(f.predict(_inputs(kind, x), verbose=0), k.predict(_inputs(kind, x), verbose=0),
                               rtol=1e-5, atol=1e-6)
    assert f.optimizer.iterations == 4
    for m in (f, k):
        m.fit(_inputs(kind, x), y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    _close(f.get_weights(), [w.numpy() if hasattr(w, "numpy") else w for w in k.get_weights()], STEP_ATOL)

    f.save(tmp_path / "f_model", zipped=False)
    assert sorted(os.listdir(tmp_path / "f_model")) == ["config.json", "metadata.json", "model.weights.h5"]
    k2 = keras.models.load_model(tmp_path / "f_model")
    np.testing.assert_allclose(k2.predict(_inputs(kind, x), verbose=0), f.predict(_inputs(kind, x), verbose=0),
                               rtol=1e-5, atol=1e-6)
    assert int(k2.optimizer.iterations.numpy()) == 6
    for m in (f, k2):
        m.fit(_inputs(kind, x), y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    _close(f.get_weights(), k2.get_weights(), STEP_ATOL)


def test_load_weights_with_skip_mismatch_loads_what_keras_loads(tmp_path):
    """Fine-tuning as Keras 3 does it: the weights of a trained model loaded into one with a new
    head, ``skip_mismatch=True``; the same layers load (and keep their own) in both libraries."""
    x, y = _data()
    k = _build("sequential", keras, OPTIMIZERS["adam"])
    k.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    k.save_weights(tmp_path / "k.weights.h5")

    def new_head(lib):
        L = lib.layers
        return lib.Sequential([lib.Input(shape=(6,)), L.Dense(10, activation="tanh"), L.BatchNormalization(),
                               L.Dense(8), L.PReLU(), L.Dropout(0.0), L.Dense(5, activation="softmax")])
    kn, fn = new_head(keras), new_head(fastmlp)
    fn.set_weights([w.numpy() for w in kn.weights])
    kn.load_weights(tmp_path / "k.weights.h5", skip_mismatch=True)
    with pytest.warns(UserWarning, match="skip_mismatch"):
        fn.load_weights(tmp_path / "k.weights.h5", skip_mismatch=True)
    _close(fn.get_weights(), [w.numpy() for w in kn.weights], 0)
    assert not np.array_equal(fn.get_weights()[0], new_head(fastmlp).get_weights()[0])   # (the body did load)


def test_load_weights_into_a_model_that_never_trained_resumes_as_keras_does(tmp_path):
    """Keras 3 leaves a never-built optimizer fresh in load_weights: the same script must end with
    the same weights."""
    x, y = _data()
    k = _build("sequential", keras, OPTIMIZERS["adam"])
    k.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    k.save_weights(tmp_path / "k.weights.h5")
    k2, f = _build("sequential", keras, OPTIMIZERS["adam"]), _build("sequential", fastmlp, OPTIMIZERS["adam"])
    with pytest.warns(UserWarning, match="Skipping variable loading for optimizer"):
        k2.load_weights(tmp_path / "k.weights.h5")
    with pytest.warns(UserWarning, match="Skipping variable loading for optimizer"):
        f.load_weights(tmp_path / "k.weights.h5")
    for m in (f, k2):
        m.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    assert f.optimizer.iterations == int(k2.optimizer.iterations.numpy())
    _close(f.get_weights(), k2.get_weights(), STEP_ATOL)


def test_keras_loads_fastmlp_s_h5_of_a_sequential_holding_a_functional_model(tmp_path):
    """A nested model's one input and one output are single references in the legacy config, as
    Keras writes them (a list of one made the nested model's output a list in Keras 3)."""
    x, _ = _data()
    fi = fastmlp.Input(shape=(6,))
    inner = fastmlp.Model(fi, fastmlp.layers.Dense(5, activation="relu")(fi), name="inner")
    m = fastmlp.Sequential([fastmlp.Input(shape=(6,)), inner, fastmlp.layers.Dense(2)])
    m.save(tmp_path / "m.h5")
    k = keras.models.load_model(tmp_path / "m.h5", compile=False)
    np.testing.assert_allclose(k.predict(x, verbose=0), m.predict(x, verbose=0), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(fastmlp.load_model(tmp_path / "m.h5").predict(x, verbose=0),
                                  m.predict(x, verbose=0))


def _my_mae(y_true, y_pred):   # (NumPy arrays in fastmlp, torch tensors in Keras)
    mod = fastmlp.ops if isinstance(y_true, np.ndarray) else keras.ops
    return mod.mean(mod.abs(y_true - y_pred), axis=-1)


@pytest.mark.parametrize("writer", ["keras", "fastmlp"])
def test_a_metric_function_of_the_user_is_restored_through_custom_objects_both_ways(tmp_path, writer):
    """compile(metrics=[fn]): Keras writes the function by name and finds it again in custom_objects;
    so does fastmlp, for a file either wrote, with Keras's values."""
    x, _ = _data()
    y = np.random.default_rng(1).normal(size=(len(x), 3)).astype(np.float32)
    lib = keras if writer == "keras" else fastmlp
    m = lib.Sequential([lib.Input(shape=(6,)), lib.layers.Dense(3)])
    m.compile(optimizer="adam", loss="mse", metrics=[_my_mae])
    m.fit(x, y, epochs=1, batch_size=16, verbose=0)
    m.save(tmp_path / "m.keras")
    want = m.evaluate(x, y, verbose=0, return_dict=True)
    for load in (keras.models.load_model, fastmlp.load_model):
        got = load(tmp_path / "m.keras", custom_objects={"_my_mae": _my_mae}).evaluate(x, y, verbose=0, return_dict=True)
        assert sorted(got) == ["_my_mae", "loss"]
        np.testing.assert_allclose([got["loss"], got["_my_mae"]], [want["loss"], want["_my_mae"]], rtol=1e-5)
    with pytest.raises(fastmlp.FormatError, match=r"custom_objects=\{'_my_mae': function\}"):
        fastmlp.load_model(tmp_path / "m.keras")


def test_a_frozen_nested_model_loads_frozen_in_keras(tmp_path):
    x, y = _data()
    base = fastmlp.Sequential([fastmlp.Input(shape=(6,)), fastmlp.layers.Dense(8, activation="relu")], name="base")
    base.trainable = False
    i = fastmlp.Input(shape=(6,))
    m = fastmlp.Model(i, fastmlp.layers.Dense(3, activation="softmax")(base(i)))
    m.compile(fastmlp.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    m.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    m.save(tmp_path / "m.keras")
    k = keras.models.load_model(tmp_path / "m.keras")
    assert len(k.trainable_weights) == 2 and not k.layers[1].layers[0].trainable
    k.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    m.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    _close(m.get_weights(), k.get_weights(), STEP_ATOL)
