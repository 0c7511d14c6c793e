"""Every layer kind and metric fastmlp has, through Keras's files both ways, against Keras 3 itself
(torch backend): fastmlp saves ``.keras``/``.h5``/``.weights.h5`` and Keras loads them, predicts the same
and evaluates the same compile config; Keras saves and fastmlp loads, predicts and evaluates as Keras.
The layers sit in one functional model (a float input and an integer-id input), the metrics in one
compiled model, so that Keras starts only a few times."""
import io
import os
import zipfile

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import fastmlp  # noqa: E402
from fastmlp.saving import keras_config  # noqa: E402

RTOL, ATOL = 1e-6, 1e-7
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "keras")


def _data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(24, 6)).astype(np.float32)
    ids = rng.integers(0, 7, (24, 3)).astype(np.int32)
    y = rng.normal(size=(24, 2)).astype(np.float32)
    return x, ids, y


def _layers_model(lib, x):
    """One functional model with every layer kind the two libraries share."""
    L = lib.layers
    a, b = lib.Input(shape=(6,), name="x"), lib.Input(shape=(3,), dtype="int32", name="ids")
    adapted = L.Normalization()
    adapted.adapt(x)
    h = adapted(a)
    h = L.Normalization(mean=[0.5, -0.5, 0.0, 1.0, 2.0, 0.25], variance=[2.0, 1.0, 0.5, 4.0, 1.0, 3.0],
                        invert=True, name="given")(h)
    h = L.Normalization(mean=0.25, variance=2.0)(h)
    h = L.Rescaling(np.array([0.5, 1.0, 2.0, -1.0, 0.25, 3.0], np.float32), offset=0.1)(h)
    h = L.Dense(8, activation="tanh")(h)
    h = L.LayerNormalization(epsilon=1e-3)(h)
    h = L.BatchNormalization(momentum=0.9)(h)
    h = L.PReLU()(L.UnitNormalization()(h))
    h = L.Identity()(L.ActivityRegularization(l1=0.01, l2=0.001)(h))
    h = L.AlphaDropout(0.1)(L.GaussianDropout(0.2)(L.GaussianNoise(0.1)(L.Dropout(0.2)(h))))
    p, q = L.LeakyReLU(negative_slope=0.2)(L.Dense(4)(h)), L.ELU(alpha=0.5)(L.Dense(4)(h))
    merged = L.Concatenate()([L.Add()([p, q]), L.Subtract()([p, q]), L.Multiply()([p, q]), L.Average()([p, q]),
                              L.Maximum()([p, q]), L.Minimum()([p, q])])
    e = L.Reshape((-1,))(L.Embedding(7, 2)(b))
    h = L.Concatenate()([L.Softmax()(L.ReLU(max_value=3.0)(merged)), e])
    m = lib.Model([a, b], L.Dense(2)(h))
    m.compile(optimizer=lib.optimizers.Adam(0.01), loss="mse", metrics=["mae"],
              weighted_metrics=[lib.metrics.MeanSquaredError(name="wmse")])
    return m


# ---------------------------------------------------------------------------- without Keras
def test_config_values_are_not_written_as_keras_variables_and_come_back_from_the_config(tmp_path):
    """A Normalization given its mean and variance and a Rescaling keep them in the config, as Keras does:
    the weights file holds no variables for them, and loading rebuilds them from the config."""
    h5py = pytest.importorskip("h5py")
    x, ids, y = _data()
    m = _layers_model(fastmlp, x)
    m.save(tmp_path / "m.keras")
    m.save(tmp_path / "m.h5")
    with zipfile.ZipFile(tmp_path / "m.keras") as z, h5py.File(io.BytesIO(z.read("model.weights.h5"))) as f:
        assert sorted(f["layers/normalization/vars"]) == ["0", "1", "2"]   # adapted: mean, variance, count
        assert len(f["layers/normalization_1/vars"]) == 0 and len(f["layers/rescaling/vars"]) == 0
    with h5py.File(tmp_path / "m.h5") as f:
        names = [n.decode() for n in f["model_weights"].attrs["layer_names"]]
        assert "given" in names and len(f["model_weights/given"].attrs["weight_names"]) == 0
    for ext in ("keras", "h5"):
        r = fastmlp.load_model(tmp_path / f"m.{ext}")
        np.testing.assert_allclose(r.predict([x, ids]), m.predict([x, ids]), rtol=RTOL, atol=ATOL)
        assert r.inputs[1].dtype == "int32"
        assert r.get_compile_config()["weighted_metrics"] == m.get_compile_config()["weighted_metrics"]


@pytest.mark.parametrize("ext", ["keras", "h5"])
def test_a_keras_written_model_of_every_kind_loads_predicts_and_evaluates_as_keras(ext):
    """tests/data/keras/kinds.* (written by Keras 3: make_golden.py kinds), read without Keras."""
    pytest.importorskip("h5py")
    want = np.load(os.path.join(DATA, "kinds_expected.npz"))
    m = fastmlp.load_model(os.path.join(DATA, f"kinds.{ext}"))
    assert m.inputs[1].dtype == "int32"
    assert [type(layer).__name__ for layer in m.layers if type(layer).__name__ == "Normalization"] == \
        ["Normalization"] * 2
    np.testing.assert_allclose(m.predict([want["x"], want["ids"]]), want["pred"], rtol=RTOL, atol=ATOL)
    got = m.evaluate([want["x"], want["ids"]], want["y"], sample_weight=want["sw"], verbose=0, return_dict=True)
    _same_values(got, {k[len("metric_"):]: want[k] for k in want.files if k.startswith("metric_")})


@pytest.mark.parametrize("name", ["kinds.keras", "kinds.h5", "seq_adam.keras", "seq_adam.h5", "func_concat.keras",
                                  "func_concat.h5", "tf2_seq.h5", "tf2_func.h5", "nested.keras", "nested.h5"])
def test_every_weight_of_a_loaded_model_is_read_from_the_file(name, monkeypatch, tmp_path):
    """The loader leaves the model's weight vector unset (no page written twice) because it
    writes every weight from the file, and zeroes the padding between them: a vector that
    starts as NaN ends as one that starts as zeros (nested.*: a Sequential inside a functional
    model, saved by fastmlp)."""
    pytest.importorskip("h5py")
    from fastmlp.saving import keras_file
    path = os.path.join(DATA, name)
    if name.startswith("nested"):
        inner = fastmlp.Sequential([fastmlp.Input((4,)), fastmlp.layers.Dense(5, activation="relu"),
                                    fastmlp.layers.Dense(3)])
        x = fastmlp.Input((4,))
        m = fastmlp.Model(x, fastmlp.layers.Dense(2)(inner(x)))
        m.compile("adam", "mse")
        m.fit(np.ones((8, 4), np.float32), np.ones((8, 2), np.float32), verbose=0)
        path = tmp_path / name
        m.save(path)
    for verify in ((True, False) if name.endswith(".keras") else (True,)):
        got = {}
        for fill in (np.nan, 0):
            monkeypatch.setattr(keras_file, "_unset_vector", lambda n, dtype: np.full(n, fill, dtype))
            got[fill] = fastmlp.load_model(path, verify=verify)._params
        assert got[0].size > 1
        np.testing.assert_array_equal(got[np.nan], got[0])


def test_an_integer_input_dtype_and_a_keras_numpy_array_in_a_config_are_read():
    entry = {"class_name": "Functional", "config": {"name": "f", "layers": [
        {"class_name": "InputLayer", "name": "i", "inbound_nodes": [],
         "config": {"batch_shape": [None, 3], "dtype": "int64", "name": "i"}},
        {"class_name": "Rescaling", "name": "r", "config": {"name": "r", "offset": 0.0, "scale": {
            "class_name": "__numpy__", "config": {"value": [1.0, 2.0, 3.0], "dtype": "float32"}}},
         "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__", "config": {"keras_history": ["i", 0, 0]}}],
                            "kwargs": {}}]}],
        "input_layers": [["i", 0, 0]], "output_layers": [["r", 0, 0]]}}
    from fastmlp.saving.keras_file import _build
    m = keras_config.model_from_keras_config(entry, _build)
    assert m.inputs[0].dtype == "int64"
    np.testing.assert_allclose(m.predict(np.ones((2, 3), np.int64)), [[1, 2, 3]] * 2)
    entry["config"]["layers"][1]["config"]["dtype"] = "int32"   # a float layer's dtype stays a float
    with pytest.raises(keras_config.KerasConfigError, match="dtype.*int32"):
        keras_config.model_from_keras_config(entry, _build)


def test_weighted_metrics_cross_in_the_keras_compile_config():
    m = fastmlp.Sequential([fastmlp.Input(shape=(3,)), fastmlp.layers.Dense(1, activation="sigmoid")])
    m.compile("adam", "binary_crossentropy", metrics=["mae"],
              weighted_metrics=[fastmlp.metrics.AUC(curve="PR", name="pr"), "accuracy"])
    cc = keras_config.compile_config_to_keras(m)
    assert cc["weighted_metrics"][0]["class_name"] == "AUC" and cc["weighted_metrics"][1] == "accuracy"
    args = keras_config.compile_args_from_keras(cc)
    assert args["weighted_metrics"][0].get_config() == m._compile_args["weighted_metrics"][0].get_config()
    assert args["weighted_metrics"][1] == "accuracy"


def test_keras_builtin_loss_and_metric_functions_in_a_compile_config_are_read_by_name():
    def fn(name):
        return {"module": "builtins", "class_name": "function", "config": name, "registered_name": "function"}
    args = keras_config.compile_args_from_keras({"optimizer": "adam", "loss": fn("binary_crossentropy"),
                                                 "metrics": [fn("binary_accuracy"), fn("mean_squared_error")],
                                                 "weighted_metrics": [fn("mae")]})
    assert args["loss"] == "binary_crossentropy"
    assert args["metrics"] == ["binary_accuracy", "mean_squared_error"] and args["weighted_metrics"] == ["mae"]
    m = fastmlp.Sequential([fastmlp.Input(shape=(2,)), fastmlp.layers.Dense(1, activation="sigmoid")])
    m.compile(**args)
    assert m.evaluate(np.ones((4, 2), np.float32), np.ones((4, 1), np.float32), verbose=0, return_dict=True) \
        .keys() == {"loss", "binary_accuracy", "mean_squared_error", "mae"}
    for where in ("loss", "metrics"):
        cc = {"optimizer": "adam", "loss": "mse", where: fn("my_custom_fn") if where == "loss" else [fn("my_fn")]}
        with pytest.raises(keras_config.KerasConfigError, match="custom function|function of yours: load_model"):
            keras_config.compile_args_from_keras(cc)


# ---------------------------------------------------------------------------- against Keras
def _keras():
    keras = pytest.importorskip("keras")
    pytest.importorskip("h5py")
    keras.config.set_floatx("float32")
    keras.utils.set_random_seed(0)
    fastmlp.utils.set_random_seed(0)
    return keras


def _same_values(got, want):
    assert sorted(got) == sorted(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_every_layer_kind_crosses_keras_files_both_ways(tmp_path):
    keras = _keras()
    x, ids, y = _data()
    sw = np.random.default_rng(4).random(len(x)).astype(np.float32)
    m = _layers_model(fastmlp, x)
    m.fit([x, ids], y, epochs=1, batch_size=8, verbose=0)
    want = m.predict([x, ids])
    want_eval = m.evaluate([x, ids], y, sample_weight=sw, verbose=0, return_dict=True)
    for ext in ("keras", "h5"):
        m.save(tmp_path / f"f.{ext}")
        k = keras.models.load_model(tmp_path / f"f.{ext}")
        assert k.inputs[1].dtype == "int32"
        np.testing.assert_allclose(k.predict([x, ids], verbose=0), want, rtol=RTOL, atol=ATOL)
        got = k.evaluate([x, ids], y, sample_weight=sw, verbose=0, return_dict=True)
        if ext == "h5":   # Keras's legacy loader names a metric given as a string after its function
            got["mae"] = got.pop("mean_absolute_error")
        _same_values(got, want_eval)
    m.save_weights(tmp_path / "f.weights.h5")
    k = _layers_model(keras, x)
    k.load_weights(tmp_path / "f.weights.h5")
    np.testing.assert_allclose(k.predict([x, ids], verbose=0), want, rtol=RTOL, atol=ATOL)

    k = _layers_model(keras, x + 1.0)   # other adapted statistics, other initial weights
    k.fit([x, ids], y, epochs=1, batch_size=8, verbose=0)
    kwant = k.predict([x, ids], verbose=0)
    kwant_eval = k.evaluate([x, ids], y, sample_weight=sw, verbose=0, return_dict=True)
    for ext in ("keras", "h5"):
        k.save(tmp_path / f"k.{ext}")
        r = fastmlp.load_model(tmp_path / f"k.{ext}")
        assert r.inputs[1].dtype == "int32"
        np.testing.assert_allclose(r.predict([x, ids]), kwant, rtol=RTOL, atol=ATOL)
        _same_values(r.evaluate([x, ids], y, sample_weight=sw, verbose=0, return_dict=True), kwant_eval)
    k.save_weights(tmp_path / "k.weights.h5")
    r = _layers_model(fastmlp, x)
    r.load_weights(tmp_path / "k.weights.h5")
    np.testing.assert_allclose(r.predict([x, ids]), kwant, rtol=RTOL, atol=ATOL)


def _metrics(M):
    return [M.BinaryCrossentropy(), M.TruePositives(), M.FalsePositives(), M.TrueNegatives(), M.FalseNegatives(),
            M.Precision(), M.Recall(), M.AUC(curve="PR", num_thresholds=50, name="pr_auc"), M.AUC(),
            M.PrecisionAtRecall(0.5), M.RecallAtPrecision(0.6), M.SensitivityAtSpecificity(0.5),
            M.SpecificityAtSensitivity(0.5, num_thresholds=100), M.R2Score(), M.FBetaScore(beta=2.0, threshold=0.5),
            M.F1Score(threshold=0.4), M.BinaryAccuracy(threshold=0.6, name="acc6"), M.MeanSquaredError(), M.LogCoshError(),
            M.Hinge(), M.SquaredHinge(), M.KLDivergence(), M.Poisson(), M.MeanAbsolutePercentageError(),
            M.MeanSquaredLogarithmicError(), M.CosineSimilarity(), M.RootMeanSquaredError(), "accuracy",
            M.binary_accuracy, M.mean_absolute_error]   # Keras's metric functions: {"class_name": "function"}


def _metrics_model(lib):
    L = lib.layers
    a = lib.Input(shape=(5,))
    m = lib.Model(a, L.Dense(1, activation="sigmoid")(L.Dense(4, activation="tanh")(a)))
    m.compile(optimizer=lib.optimizers.SGD(0.05), loss=lib.losses.binary_crossentropy,
              metrics=_metrics(lib.metrics),
              weighted_metrics=[lib.metrics.BinaryAccuracy(name="wacc"), lib.metrics.AUC(name="wauc"),
                                lib.metrics.Precision(thresholds=0.3, name="wprec")])
    return m


@pytest.mark.parametrize("ext", ["keras", "h5"])
def test_every_metric_crosses_keras_files_both_ways_and_evaluates_as_keras(tmp_path, ext):
    keras = _keras()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    y = (rng.random((40, 1)) < 0.5).astype(np.float32)
    sw = rng.random(40).astype(np.float32)
    for src, dst in ((fastmlp, keras), (keras, fastmlp)):
        m = _metrics_model(src)
        m.fit(x, y, epochs=1, batch_size=8, verbose=0)
        m.save(tmp_path / f"{src.__name__}.{ext}")
        r = dst.models.load_model(tmp_path / f"{src.__name__}.{ext}")
        np.testing.assert_allclose(r.predict(x, verbose=0), m.predict(x, verbose=0), rtol=RTOL, atol=ATOL)
        _same_values(r.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True),
                     m.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True))


_METRIC_ARGS = {"AUC": {"curve": "PR", "num_thresholds": 20},
                "PrecisionAtRecall": {"recall": 0.4}, "RecallAtPrecision": {"precision": 0.7},
                "SensitivityAtSpecificity": {"specificity": 0.3}, "SpecificityAtSensitivity": {"sensitivity": 0.6},
                "FBetaScore": {"beta": 0.5, "threshold": 0.3, "average": "macro"}, "F1Score": {"average": "micro"},
                "TopKCategoricalAccuracy": {"k": 2}, "SparseTopKCategoricalAccuracy": {"k": 2},
                "BinaryAccuracy": {"threshold": 0.7}, "Precision": {"thresholds": 0.2, "class_id": 1},
                "TruePositives": {"thresholds": 0.4}, "R2Score": {"class_aggregation": "variance_weighted_average"},
                "BinaryCrossentropy": {"label_smoothing": 0.1}, "CategoricalCrossentropy": {"from_logits": True}}


def test_every_metric_class_compiles_in_keras_from_a_fastmlp_compile_config_and_back():
    """Each metric class (with non-default arguments where it has them) in fastmlp's Keras compile config
    deserializes in Keras to the metric Keras itself builds from the same arguments, and back."""
    keras = _keras()
    from keras.saving import deserialize_keras_object
    from fastmlp import metrics
    checked = []
    for name, cls in sorted(metrics._CLASSES.items()):
        kcls = getattr(keras.metrics, name, None)
        if kcls is None or name in ("Metric", "MeanMetricWrapper", "Mean", "Sum"):
            continue
        args = _METRIC_ARGS.get(name, {})
        m = fastmlp.Sequential([fastmlp.Input(shape=(3,)), fastmlp.layers.Dense(3)])
        loss = "sparse_categorical_crossentropy" if name.startswith("Sparse") else "mse"
        m.compile("sgd", loss, metrics=[cls(name="m", **args)], weighted_metrics=[cls(name="w", **args)])
        cc = keras_config.compile_config_to_keras(m)
        for entry, kname in ((cc["metrics"][0], "m"), (cc["weighted_metrics"][0], "w")):
            k = deserialize_keras_object(entry)
            assert type(k) is kcls
            assert k.get_config() == kcls(name=kname, **args).get_config(), name
        back = keras_config.compile_args_from_keras(cc)
        assert back["metrics"][0].get_config() == cls(name="m", **args).get_config()
        assert back["weighted_metrics"][0].get_config() == cls(name="w", **args).get_config()
        checked.append(name)
    assert len(checked) >= 30, checked


def _embedding_sequential(lib):
    L = lib.layers
    m = lib.Sequential([lib.Input(shape=(4,), dtype="int32"), L.Embedding(5, 3), L.Flatten(), L.LayerNormalization(),
                        L.Dense(2)])
    m.compile("adam", "mse", metrics=[lib.metrics.R2Score()])
    return m


def _nested_two_outputs(lib):
    """Config constants inside a nested model; metrics and weighted_metrics per output."""
    L = lib.layers
    inner = lib.Sequential([lib.Input(shape=(4,)), L.Normalization(mean=[1., 2., 3., 4.], variance=[1., 4., 9., 16.]),
                            L.Rescaling(2.0), L.Dense(3), L.UnitNormalization()], name="inner")
    a = lib.Input(shape=(4,))
    h = inner(a)
    m = lib.Model(a, [L.Dense(2, name="o1")(h), L.Dense(1, activation="sigmoid", name="o2")(h)])
    m.compile("adam", {"o1": "mse", "o2": "binary_crossentropy"},
              metrics={"o1": [lib.metrics.R2Score()], "o2": [lib.metrics.AUC(), "accuracy"]},
              weighted_metrics={"o2": [lib.metrics.Precision()]})
    return m


@pytest.mark.parametrize("ext", ["keras", "h5"])
def test_a_sequential_with_int_ids_and_a_nested_model_with_config_constants_cross_both_ways(tmp_path, ext):
    keras = _keras()
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 5, (16, 4)).astype(np.int32)
    x = rng.normal(size=(16, 4)).astype(np.float32)
    y, yb = rng.normal(size=(16, 2)).astype(np.float32), (rng.random((16, 1)) < 0.5).astype(np.float32)
    for build, inputs, targets in ((_embedding_sequential, ids, y), (_nested_two_outputs, x, {"o1": y, "o2": yb})):
        for src, dst in ((fastmlp, keras), (keras, fastmlp)):
            m = build(src)
            m.fit(inputs, targets, epochs=1, batch_size=8, verbose=0)
            path = tmp_path / f"{build.__name__}_{src.__name__}.{ext}"
            m.save(path)
            r = dst.models.load_model(path)
            want, got = m.predict(inputs, verbose=0), r.predict(inputs, verbose=0)
            for w, g in zip(want if isinstance(want, list) else [want], got if isinstance(got, list) else [got]):
                np.testing.assert_allclose(g, w, rtol=RTOL, atol=1e-6)
            _same_values(r.evaluate(inputs, targets, verbose=0, return_dict=True),
                         m.evaluate(inputs, targets, verbose=0, return_dict=True))


def test_a_keras_layer_setting_fastmlp_lacks_is_a_keras_config_error_naming_it(tmp_path):
    keras = _keras()
    L = keras.layers
    cases = {"mask_zero": [keras.Input((3,), dtype="int32"), L.Embedding(5, 2, mask_zero=True), L.Flatten()],
             "axis=None": [keras.Input((3,)), L.Normalization(axis=None, mean=1.0, variance=2.0)],
             "target_shape=(2, 3)": [keras.Input((6,)), L.Reshape((2, 3)), L.Flatten()],
             "'bool'": [keras.Input((3,), dtype="bool"), L.Dense(1)]}
    for i, (what, layers) in enumerate(cases.items()):
        keras.Sequential(layers + [L.Dense(1)]).save(tmp_path / f"{i}.keras")
        with pytest.raises(keras_config.KerasConfigError, match=what.replace("(", r"\(").replace(")", r"\)")):
            fastmlp.load_model(tmp_path / f"{i}.keras")
