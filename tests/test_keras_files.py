"""Keras's files (``.keras``, legacy ``.h5``, ``.weights.h5``) read and written with h5py only: golden
files written by Keras 3 itself (tests/data/keras, made by make_golden.py), round trips, the layout
Keras expects, a tf.keras 2.x legacy file written here from its documented layout, and the errors.
The parity tests with Keras itself are in test_keras_files_keras.py."""
import json
import os
import sys
import zipfile

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

import fastmlp  # noqa: E402
from fastmlp import layers  # noqa: E402
from fastmlp.saving import keras_file  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "data", "keras")


def _expected():
    return np.load(os.path.join(DATA, "expected.npz"))


def _slots(opt):
    opt._build_pending()
    return np.array(opt._slots, copy=True)


@pytest.mark.parametrize("ext", ["keras", "h5"])
def test_a_sequential_keras_wrote_loads_with_its_weights_compile_config_and_adam_state(ext):
    e = _expected()
    m = fastmlp.load_model(os.path.join(DATA, f"seq_adam.{ext}"))
    np.testing.assert_allclose(m.predict(e["x"]), e["seq_pred"], rtol=1e-6, atol=1e-7)
    assert [type(layer).__name__ for layer in m.layers] == ["Dense", "Dropout", "BatchNormalization", "Dense"]
    assert m.layers[1].rate == 0.25
    opt = m.optimizer
    assert type(opt).__name__ == "Adam" and opt.learning_rate == pytest.approx(0.01)
    assert opt.iterations == int(e["seq_iterations"]) == 2
    assert m.loss.name == "sparse_categorical_crossentropy" and m.metrics_names == ["loss", "accuracy"]
    slots = _slots(opt)
    n = m._n_params
    trainable = sum(r.size for r in m._plan.weights if r.trainable)
    assert np.count_nonzero(slots[:n]) > 0.8 * trainable   # Adam's m and v came from the file
    assert np.count_nonzero(slots[n:2 * n]) > 0.8 * trainable
    before = m.get_weights()
    m.fit(e["x"], e["y"], epochs=1, batch_size=8, shuffle=False, verbose=0)   # keeps training
    assert opt.iterations == 4 and not np.allclose(before[0], m.get_weights()[0])


@pytest.mark.parametrize("ext", ["keras", "h5"])
def test_a_two_input_functional_model_keras_wrote_loads(ext):
    e = _expected()
    m = fastmlp.load_model(os.path.join(DATA, f"func_concat.{ext}"))
    x = e["x"]
    np.testing.assert_allclose(m.predict([x[:, :3], x[:, 2:]]), e["func_pred"], rtol=1e-6, atol=1e-7)
    assert [layer.name for layer in m.layers if layer.weights] == ["da", "db", "out"]
    assert type(m.optimizer).__name__ == "SGD" and m.optimizer.momentum == pytest.approx(0.9)
    assert m.optimizer.iterations == 2 and np.any(_slots(m.optimizer)[:m._n_params])
    assert m.metrics_names == ["loss", "mae"]


def test_verify_false_skips_the_crc_and_reads_the_slots_when_training_starts(tmp_path):
    x, y = _data()
    m = _model()
    m.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    m.save(tmp_path / "m.keras")
    checked = fastmlp.load_model(tmp_path / "m.keras")
    lazy = fastmlp.load_model(tmp_path / "m.keras", verify=False)
    np.testing.assert_array_equal(lazy.predict(x), m.predict(x))
    assert not lazy.optimizer.built and lazy.optimizer.iterations == m.optimizer.iterations
    for r in (checked, lazy):
        r.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    np.testing.assert_array_equal(_slots(lazy.optimizer), _slots(checked.optimizer))
    for a, b in zip(lazy.get_weights(), checked.get_weights()):
        np.testing.assert_array_equal(a, b)
    data = bytearray((tmp_path / "m.keras").read_bytes())
    data[len(data) // 2] ^= 0xFF   # a flipped byte inside the weights: the zip's CRC-32 catches it
    (tmp_path / "bad.keras").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="CRC|cannot be read"):
        fastmlp.load_model(tmp_path / "bad.keras")


def test_load_model_with_compile_false_reads_only_the_model():
    m = fastmlp.load_model(os.path.join(DATA, "seq_adam.keras"), compile=False)
    assert not m.compiled


def _model(seed=3):
    fastmlp.utils.set_random_seed(seed)
    m = fastmlp.Sequential([fastmlp.Input(shape=(5,)), layers.Dense(7, activation="tanh"), layers.BatchNormalization(),
                            layers.PReLU(), layers.Dense(3, activation="softmax")])
    m.compile(optimizer=fastmlp.optimizers.Adam(0.02, amsgrad=True), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
    return m


def _data(n=40):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 5)).astype(np.float32), rng.integers(0, 3, n)


@pytest.mark.parametrize("name", ["m.keras", "m.h5"])
def test_a_round_trip_keeps_weights_optimizer_state_and_continues_training_identically(tmp_path, name):
    x, y = _data()
    m = _model()
    m.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
    m.save(tmp_path / name)
    r = fastmlp.load_model(tmp_path / name)
    np.testing.assert_array_equal(r.predict(x), m.predict(x))
    assert r.optimizer.iterations == m.optimizer.iterations and r.optimizer.amsgrad
    np.testing.assert_array_equal(_slots(r.optimizer), _slots(m.optimizer))
    m.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    r.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(m.get_weights(), r.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_the_keras_file_has_keras_3_layout(tmp_path):
    x, y = _data()
    m = _model()
    m.fit(x, y, epochs=1, batch_size=20, verbose=0)
    m.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        assert sorted(z.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        config = json.loads(z.read("config.json"))
        assert json.loads(z.read("metadata.json"))["keras_version"].startswith("3.")
        weights = z.read("model.weights.h5")
    assert config["class_name"] == "Sequential" and config["module"] == "keras"
    dense = config["config"]["layers"][1]
    assert dense["module"] == "keras.layers" and dense["class_name"] == "Dense"
    assert dense["config"]["kernel_initializer"]["module"] == "keras.initializers"
    assert config["compile_config"]["optimizer"]["class_name"] == "Adam"
    (tmp_path / "w.h5").write_bytes(weights)
    with h5py.File(tmp_path / "w.h5", "r") as f:
        np.testing.assert_array_equal(f["layers/dense/vars/0"][()], m.layers[0].kernel)
        np.testing.assert_array_equal(f["layers/batch_normalization/vars/3"][()], m.layers[1].moving_variance)
        np.testing.assert_array_equal(f["layers/p_re_lu/vars/0"][()], m.layers[2].alpha)
        assert "layers/dense_1/vars/1" in f
        opt = f["optimizer/vars"]
        n_train = sum(1 for r in m._plan.weights if r.trainable)
        assert len(opt) == 2 + 3 * n_train   # iteration, learning_rate, (m, v) per variable, then v_hat
        assert opt["0"].shape == opt["1"].shape == ()   # scalars, as Keras's variables are
        assert opt["0"][()] == 2 and opt["1"][()] == np.float32(0.02)
        n = m._n_params
        k = m.layers[0].kernel.size
        np.testing.assert_array_equal(opt["2"][()].reshape(-1), m.optimizer._slots[:k])            # m of kernel
        np.testing.assert_array_equal(opt["3"][()].reshape(-1), m.optimizer._slots[n:n + k])       # v of kernel
        np.testing.assert_array_equal(opt[str(2 + 2 * n_train)][()].reshape(-1),                   # v_hat
                                      m.optimizer._slots[2 * n:2 * n + k])


def test_the_legacy_h5_file_has_the_legacy_layout(tmp_path):
    m = _model()
    m.save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r") as f:
        cfg = json.loads(f.attrs["model_config"])
        assert cfg["class_name"] == "Sequential"
        assert cfg["config"]["layers"][0]["config"]["batch_input_shape"] == [None, 5]
        # tf.keras 2.11+'s name for its own Adam in legacy files (a plain "Adam" there means its
        # legacy optimizer, which refuses Keras 3's config); Keras 3 reads it too
        assert json.loads(f.attrs["training_config"])["optimizer_config"]["class_name"] == "Custom>Adam"
        g = f["model_weights"]
        assert [n.decode() if isinstance(n, bytes) else n for n in g.attrs["layer_names"]] == \
            [layer.name for layer in m.layers]
        d = m.layers[0].name
        np.testing.assert_array_equal(g[f"{d}/{d}/kernel:0"][()], m.layers[0].kernel)
        assert [n.decode() if isinstance(n, bytes) else n for n in g[d].attrs["weight_names"]] == \
            [f"{d}/kernel:0", f"{d}/bias:0"]


@pytest.mark.parametrize("name", ["w.weights.h5", "w.h5", "w.fmlp"])
def test_save_weights_and_load_weights(tmp_path, name):
    x, y = _data()
    m = _model()
    m.fit(x, y, epochs=1, verbose=0)
    m.save_weights(tmp_path / name)
    other = _model(seed=9)
    assert not np.array_equal(other.predict(x), m.predict(x))
    other.load_weights(tmp_path / name)
    np.testing.assert_array_equal(other.predict(x), m.predict(x))


def test_load_weights_reads_a_keras_file_and_checks_shapes(tmp_path):
    x, _ = _data()
    src = fastmlp.load_model(os.path.join(DATA, "seq_adam.keras"))
    twin = fastmlp.Sequential([fastmlp.Input(shape=(4,)), layers.Dense(6, activation="relu"), layers.Dropout(0.25),
                               layers.BatchNormalization(), layers.Dense(3, activation="softmax")])
    twin.load_weights(os.path.join(DATA, "seq_adam.keras"))
    np.testing.assert_array_equal(twin.predict(x[:, :4]), src.predict(x[:, :4]))
    wrong = fastmlp.Sequential([fastmlp.Input(shape=(4,)), layers.Dense(5), layers.Dropout(0.25),
                                layers.BatchNormalization(), layers.Dense(3)])
    with pytest.raises(ValueError, match="shape"):
        wrong.load_weights(os.path.join(DATA, "seq_adam.keras"))


def test_functional_models_with_merge_layers_round_trip(tmp_path):
    fastmlp.utils.set_random_seed(1)
    a, b = fastmlp.Input(shape=(3,), name="a"), fastmlp.Input(shape=(3,), name="b")
    shared = layers.Dense(4, activation="relu", name="shared")
    h = layers.Concatenate()([shared(a), shared(b), layers.Add()([a, b])])
    out = layers.Dense(2, name="head")(layers.LeakyReLU(negative_slope=0.2)(h))
    m = fastmlp.Model([a, b], out)
    m.compile("rmsprop", "mse")
    xa, xb = np.ones((4, 3), np.float32), np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    m.fit([xa, xb], np.zeros((4, 2), np.float32), epochs=1, verbose=0)
    for name in ("f.keras", "f.h5"):
        m.save(tmp_path / name)
        r = fastmlp.load_model(tmp_path / name)
        np.testing.assert_array_equal(r.predict([xa, xb]), m.predict([xa, xb]))
        np.testing.assert_array_equal(_slots(r.optimizer)[:m._n_params], _slots(m.optimizer)[:m._n_params])


def _tf2_legacy_file(path, frozen=False, extra_slot=None):
    """A tf.keras 2.x HDF5 model as that version lays it out (functional 'Model' config with list-form
    inbound nodes, 'name:0' weights, the legacy optimizer's all-m-then-all-v slots).  ``frozen``:
    the first Dense frozen after training (its slots stay in the file, as tf.keras 2 keeps them);
    ``extra_slot``: one more optimizer weight of that name."""
    rng = np.random.default_rng(2)
    k1, b1 = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32)
    k2, b2 = rng.normal(size=(4, 2)).astype(np.float32), rng.normal(size=2).astype(np.float32)
    init = {"class_name": "GlorotUniform", "config": {"seed": None}}
    config = {"class_name": "Functional", "config": {"name": "model", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 3], "dtype": "float32", "sparse": False,
                                                "ragged": False, "name": "input_1"}, "name": "input_1",
         "inbound_nodes": []},
        {"class_name": "Dense", "config": {"name": "dense", "trainable": not frozen, "dtype": "float32", "units": 4,
                                           "activation": "relu", "use_bias": True, "kernel_initializer": init,
                                           "bias_initializer": {"class_name": "Zeros", "config": {}},
                                           "kernel_regularizer": None, "bias_regularizer": None,
                                           "activity_regularizer": None, "kernel_constraint": None,
                                           "bias_constraint": None},
         "name": "dense", "inbound_nodes": [[["input_1", 0, 0, {}]]]},
        {"class_name": "Dense", "config": {"name": "dense_1", "trainable": True, "dtype": "float32", "units": 2,
                                           "activation": "linear", "use_bias": True, "kernel_initializer": init,
                                           "bias_initializer": {"class_name": "Zeros", "config": {}},
                                           "kernel_regularizer": None, "bias_regularizer": None,
                                           "activity_regularizer": None, "kernel_constraint": None,
                                           "bias_constraint": None},
         "name": "dense_1", "inbound_nodes": [[["dense", 0, 0, {}]]]}],
        "input_layers": [["input_1", 0, 0]], "output_layers": [["dense_1", 0, 0]]}, "keras_version": "2.11.0",
        "backend": "tensorflow"}
    training = {"loss": "mse", "metrics": ["mae"], "weighted_metrics": None, "loss_weights": None,
                "optimizer_config": {"class_name": "Adam", "config": {
                    "name": "Adam", "learning_rate": 0.005, "decay": 0.0, "beta_1": 0.9, "beta_2": 0.999,
                    "epsilon": 1e-07, "amsgrad": False}}}
    m_k1, v_k1 = np.full_like(k1, 0.1), np.full_like(k1, 0.2)
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.11.0"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps(config).encode()
        f.attrs["training_config"] = json.dumps(training).encode()
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = [b"input_1", b"dense", b"dense_1"]
        g.create_group("input_1").attrs["weight_names"] = np.zeros((0,), "S1")
        for name, (k, b) in (("dense", (k1, b1)), ("dense_1", (k2, b2))):
            lg = g.create_group(name)
            lg.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            lg[f"{name}/kernel:0"] = k
            lg[f"{name}/bias:0"] = b
        o = f.create_group("optimizer_weights")
        names = ["Adam/iter:0", "Adam/dense/kernel/m:0", "Adam/dense/kernel/v:0"] + \
            ([extra_slot] if extra_slot else [])
        o.attrs["weight_names"] = [n.encode() for n in names]
        o["Adam/iter:0"] = np.int64(7)
        o["Adam/dense/kernel/m:0"] = m_k1
        o["Adam/dense/kernel/v:0"] = v_k1
        if extra_slot:
            o[extra_slot] = np.zeros((4, 2), np.float32)
    return (k1, b1, k2, b2), (m_k1, v_k1)


def test_a_tf_keras_2_file_keeps_the_slots_of_a_layer_frozen_after_training_and_loads(tmp_path):
    _tf2_legacy_file(tmp_path / "frozen.h5", frozen=True, extra_slot="Adam/dense_1/kernel/m:0")
    m = fastmlp.load_model(tmp_path / "frozen.h5")
    assert not m.get_layer("dense").trainable and m.optimizer.iterations == 7
    n = m._n_params
    ref = next(r for r in m._plan.weights if r.name.endswith("dense_1/kernel"))
    m.optimizer._build_pending()
    np.testing.assert_array_equal(m.optimizer._slots[ref.offset:ref.offset + 8], 0)   # dense_1's own, read
    assert m.optimizer._slots.size == 3 * n
    _tf2_legacy_file(tmp_path / "other.h5", extra_slot="Adam/elsewhere/kernel/m:0")
    with pytest.raises(fastmlp.FormatError, match="elsewhere.*names no weight"):
        fastmlp.load_model(tmp_path / "other.h5")


def test_a_tf_keras_2_legacy_h5_file_loads_with_its_optimizer_state(tmp_path):
    (k1, b1, k2, b2), (m_k1, v_k1) = _tf2_legacy_file(tmp_path / "tf2.h5")
    m = fastmlp.load_model(tmp_path / "tf2.h5")
    x = np.linspace(-2, 2, 15, dtype=np.float32).reshape(5, 3)
    np.testing.assert_allclose(m.predict(x), np.maximum(x @ k1 + b1, 0) @ k2 + b2, rtol=1e-6, atol=1e-6)
    opt = m.optimizer
    assert type(opt).__name__ == "Adam" and opt.learning_rate == pytest.approx(0.005) and opt.iterations == 7
    slots, n = _slots(opt), m._n_params
    np.testing.assert_array_equal(slots[:k1.size], m_k1.reshape(-1))
    np.testing.assert_array_equal(slots[n:n + k1.size], v_k1.reshape(-1))
    assert m.metrics_names == ["loss", "mae"]


def _keras_file_with(path, layer_entry):
    entry = {"module": "keras", "class_name": "Sequential", "config": {"name": "s", "layers": [
        {"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [None, 4], "name": "in"}},
        layer_entry]}}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", "{}")
        z.writestr("config.json", json.dumps(entry))
        z.writestr("model.weights.h5", b"")


def test_a_keras_layer_fastmlp_lacks_is_an_error_naming_the_layer_and_its_class(tmp_path):
    _keras_file_with(tmp_path / "c.keras", {"module": "keras.layers", "class_name": "Conv2D",
                                             "config": {"name": "conv", "filters": 3}})
    with pytest.raises(ValueError, match=r"'conv'.*Conv2D"):
        fastmlp.load_model(tmp_path / "c.keras")
    _keras_file_with(tmp_path / "u.keras", {"module": "my_project.layers", "class_name": "Dense",
                                             "registered_name": "Custom>Dense", "config": {"name": "mine"}})
    with pytest.raises(ValueError, match=r"'mine'.*Dense.*custom"):
        fastmlp.load_model(tmp_path / "u.keras")
    _keras_file_with(tmp_path / "a.keras", {"module": "keras.layers", "class_name": "Dense",
                                             "config": {"name": "d", "units": 2, "activity_regularizer": "l2"}})
    with pytest.raises(ValueError, match="activity_regularizer"):
        fastmlp.load_model(tmp_path / "a.keras")


def test_an_unknown_extension_is_a_value_error_listing_the_formats(tmp_path):
    m = _model()
    for name in ("m.onnx", "m.pt", "m.bin"):
        with pytest.raises(ValueError, match=r"\.keras.*\.h5.*\.weights\.h5.*\.fmlp"):
            m.save(tmp_path / name)
        assert not (tmp_path / name).exists()
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        m.save_weights(tmp_path / "w.keras")
    with pytest.raises(ValueError, match="dtype"):
        m.save(tmp_path / "m.keras", dtype="int8")
    m.save(tmp_path / "plain")   # no extension: fastmlp's own format
    assert (tmp_path / "plain").read_bytes()[:12] == fastmlp.saving.MAGIC


def test_without_h5py_keras_names_raise_import_error_and_write_nothing(tmp_path, monkeypatch):
    m = _model()
    # a file in a layout fastmlp's own HDF5 index does not follow (h5py's newest) needs h5py
    with h5py.File(os.path.join(DATA, "seq_adam.h5"), "r") as src, \
            h5py.File(tmp_path / "latest.h5", "w", libver="latest") as dst:
        for key in src:
            src.copy(key, dst)
        for key, value in src.attrs.items():
            dst.attrs[key] = value
    monkeypatch.setitem(sys.modules, "h5py", None)
    for call, name in ((m.save, "m.keras"), (m.save, "m.h5"), (m.save_weights, "w.weights.h5")):
        with pytest.raises(ImportError, match=r"pip install fastmlp\[keras\]"):
            call(tmp_path / name)
        assert not (tmp_path / name).exists()
    with pytest.raises(ImportError, match=r"pip install fastmlp\[keras\]"):
        fastmlp.load_model(tmp_path / "latest.h5")
    # the legacy files Keras and TensorFlow write load without it
    for name in ("seq_adam.h5", "tf2_seq.h5"):
        assert fastmlp.load_model(os.path.join(DATA, name)).optimizer.iterations > 0


def test_a_keras_written_keras_file_loads_without_h5py(monkeypatch):
    """Keras's weights file uses the HDF5 layout fastmlp's own index reads (saving/h5index.py):
    loading needs no h5py, and gives what the h5py path gives."""
    path = os.path.join(DATA, "seq_adam.keras")
    with_h5py = fastmlp.load_model(path)
    monkeypatch.setitem(sys.modules, "h5py", None)
    m = fastmlp.load_model(path)
    for a, b in zip(m.get_weights(), with_h5py.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert m.optimizer.iterations == with_h5py.optimizer.iterations


def test_model_checkpoint_writes_real_keras_files(tmp_path):
    x, y = _data()
    m = _model()
    cbs = [fastmlp.callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}.keras")),
           fastmlp.callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}.weights.h5"), save_weights_only=True)]
    m.fit(x, y, epochs=2, verbose=0, callbacks=cbs)
    assert zipfile.is_zipfile(tmp_path / "e2.keras")
    assert h5py.is_hdf5(tmp_path / "e2.weights.h5")
    np.testing.assert_array_equal(fastmlp.load_model(tmp_path / "e2.keras").predict(x), m.predict(x))


def test_a_malformed_keras_file_is_a_value_error(tmp_path):
    (tmp_path / "x.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="zip"):
        fastmlp.load_model(tmp_path / "x.keras")
    with zipfile.ZipFile(tmp_path / "y.keras", "w") as z:
        z.writestr("config.json", "{}")
    with pytest.raises(ValueError, match="model.weights.h5"):
        fastmlp.load_model(tmp_path / "y.keras")
    with h5py.File(tmp_path / "w.h5", "w") as f:
        f.create_group("layers")
    with pytest.raises(ValueError, match="weights only"):
        fastmlp.load_model(tmp_path / "w.h5")
    assert keras_file.format_of("a.KERAS") == "keras"


@pytest.mark.parametrize("threshold", [0xFFFFFFFF, 100, 1])
def test_the_keras_zip_writer_is_read_by_zipfile_keras_style_with_and_without_zip64(tmp_path, monkeypatch,
                                                                                   threshold):
    """fastmlp writes the .keras zip itself (CRCs computed beforehand); its ZIP64 records, used
    from 4 GiB, are exercised by lowering the threshold: zipfile reads every variant, every CRC
    checks, and the model loads back equal."""
    monkeypatch.setattr(keras_file, "_ZIP64_FROM", threshold)
    m = _model()
    m.fit(*_data(), epochs=1, batch_size=8, verbose=0)
    m.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        assert z.testzip() is None
        assert z.namelist() == ["metadata.json", "config.json", "model.weights.h5"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
        assert (z.infolist()[2].file_size >= threshold) == (b"\x01\x00" in z.infolist()[2].extra[:2])
    r = fastmlp.load_model(tmp_path / "m.keras")
    for a, b in zip(r.get_weights(), m.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert r.optimizer.iterations == m.optimizer.iterations


@pytest.mark.parametrize("name", ["seq", "func"])
def test_tf_keras_2_files_written_by_tensorflow_load_predict_and_resume_as_tensorflow(name):
    """tf2_seq.h5 (Adam, BatchNormalization) and tf2_func.h5 (two inputs, Concatenate, RMSprop with
    momentum) were written by TensorFlow 2.15's tf.keras (make_golden_tf2.py): fastmlp predicts what
    TensorFlow predicted and one more epoch of fit lands where TensorFlow's did -- the optimizer
    state (new-style slot names, "Custom>Adam", per-output metric lists) read from the file."""
    e = np.load(os.path.join(DATA, "tf2_expected.npz"))
    x = e["x"] if name == "seq" else [e["x"][:, :3], e["x"][:, 2:]]
    y = e["y"] if name == "seq" else e["yt"]
    m = fastmlp.load_model(os.path.join(DATA, f"tf2_{name}.h5"))
    np.testing.assert_allclose(m.predict(x, verbose=0), e[f"{name}_pred"], rtol=1e-6, atol=1e-6)
    assert m.optimizer.iterations == int(e[f"{name}_iterations"])
    assert type(m.optimizer).__name__ == ("Adam" if name == "seq" else "RMSprop")
    assert m.metrics_names == (["loss", "accuracy"] if name == "seq" else ["loss", "mae"])
    m.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    resumed = [e[f"{name}_resumed_{i}"] for i in range(len(m.get_weights()))]
    for got, want in zip(m.get_weights(), resumed):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)


def test_a_tf_keras_2_file_with_its_own_spellings_loads_and_resumes_as_tensorflow():
    """tf2_leaky.h5: a LeakyReLU slope written as ``alpha``, a BinaryCrossentropy(from_logits=True)
    object whose config names its function (``fn``) and reduction "auto", and SGD(momentum=0)
    with the unused momentum slots tf.keras 2.11+ writes."""
    e = np.load(os.path.join(DATA, "tf2_leaky_expected.npz"))
    m = fastmlp.load_model(os.path.join(DATA, "tf2_leaky.h5"))
    assert m.layers[1].negative_slope == pytest.approx(0.2)
    assert isinstance(m.loss, fastmlp.losses.BinaryCrossentropy) and m.loss.from_logits
    np.testing.assert_allclose(m.predict(e["x"], verbose=0), e["pred"], rtol=1e-6, atol=1e-6)
    assert m.optimizer.iterations == int(e["iterations"])
    m.fit(e["x"], e["y"], epochs=1, batch_size=8, shuffle=False, verbose=0)
    for i, got in enumerate(m.get_weights()):
        np.testing.assert_allclose(got, e[f"resumed_{i}"], rtol=2e-4, atol=2e-5)


def test_a_tf_keras_2_nested_model_called_twice_loads_and_resumes_as_tensorflow():
    """tf2_nested.h5: tf.keras 2 numbers the two calls of a nested Sequential that has an input
    as its nodes 1 and 2 (Keras 3 and fastmlp: 0 and 1)."""
    e = np.load(os.path.join(DATA, "tf2_nested_expected.npz"))
    m = fastmlp.load_model(os.path.join(DATA, "tf2_nested.h5"))
    x = [e["xa"], e["xb"]]
    np.testing.assert_allclose(m.predict(x, verbose=0), e["pred"], rtol=1e-6, atol=1e-6)
    assert m.optimizer.iterations == int(e["iterations"])
    m.fit(x, e["y"], epochs=1, batch_size=8, shuffle=False, verbose=0)
    for i, got in enumerate(m.get_weights()):
        np.testing.assert_allclose(got, e[f"resumed_{i}"], rtol=2e-4, atol=2e-5)


def test_a_tf_keras_2_model_with_dict_outputs_and_metrics_for_some_keeps_tensorflow_s_names():
    """tf2_multi.h5: tf.keras 2 stores one metric list per output (None for an output without) and
    names each metric with its output already (cls_accuracy): evaluate gives TensorFlow's keys and
    values, not cls_cls_accuracy."""
    e = np.load(os.path.join(DATA, "tf2_multi_expected.npz"))
    m = fastmlp.load_model(os.path.join(DATA, "tf2_multi.h5"))
    got = m.evaluate(e["x"], {"reg": e["yr"], "cls": e["yc"]}, verbose=0, return_dict=True)
    assert sorted(got) == list(e["keys"]) and "cls_accuracy" in got
    np.testing.assert_allclose([got[k] for k in e["keys"]], e["values"], rtol=1e-5, atol=1e-6)


def test_a_tf_keras_2_file_with_hard_sigmoid_is_refused(tmp_path):
    """tf.keras 2's hard_sigmoid is clip(0.2x + 0.5): not Keras 3's, which fastmlp runs."""
    with h5py.File(os.path.join(DATA, "tf2_leaky.h5"), "r") as f, h5py.File(tmp_path / "hs.h5", "w") as g:
        for k in f:
            f.copy(k, g)
        for k, v in f.attrs.items():
            g.attrs[k] = v
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][1]["config"]["activation"] = "hard_sigmoid"
        g.attrs["model_config"] = json.dumps(config)
    with pytest.raises(fastmlp.FormatError, match=r"'dense.*' \(Dense\) uses tf.keras 2's hard_sigmoid"):
        fastmlp.load_model(tmp_path / "hs.h5")


def test_a_tf_keras_2_loss_object_wrapping_another_function_is_refused():
    from fastmlp.saving import keras_config
    entry = {"class_name": "BinaryCrossentropy", "config": {"reduction": "auto", "name": "b", "fn": "my_loss"}}
    with pytest.raises(keras_config.KerasConfigError, match="my_loss"):
        keras_config.compile_args_from_keras({"optimizer": "sgd", "loss": entry})


def test_a_tf_keras_2_legacy_nadam_keeps_its_momentum_cache(tmp_path):
    """tf.keras 2.x's legacy Nadam saves the running product of its momentum schedule as
    ``momentum_cache``: it is Keras 3's (and fastmlp's) u_product, not a hyperparameter."""
    _tf2_legacy_file(tmp_path / "n.h5")
    with h5py.File(tmp_path / "n.h5", "r+") as f:
        training = json.loads(f.attrs["training_config"])
        training["optimizer_config"] = {"class_name": "Nadam", "config": {
            "name": "Nadam", "learning_rate": 0.002, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07}}
        f.attrs["training_config"] = json.dumps(training).encode()
        del f["optimizer_weights"]
        o = f.create_group("optimizer_weights")
        names = ["Nadam/iter:0", "Nadam/momentum_cache:0", "Nadam/dense/kernel/m:0", "Nadam/dense/kernel/v:0"]
        o.attrs["weight_names"] = [n.encode() for n in names]
        o[names[0]] = np.int64(500)
        o[names[1]] = np.float32(0.125)
        o[names[2]] = np.full((3, 4), 0.1, np.float32)
        o[names[3]] = np.full((3, 4), 0.2, np.float32)
    m = fastmlp.load_model(tmp_path / "n.h5")
    assert type(m.optimizer).__name__ == "Nadam" and m.optimizer.iterations == 500
    assert m.optimizer._u_product == pytest.approx(0.125)


@pytest.mark.skipif(not hasattr(os, "pread"), reason="POSIX reads: elsewhere the member is read on the loading thread")
def test_the_default_load_reads_the_weights_on_a_thread_of_its_own_while_the_model_is_built(tmp_path,
                                                                                            monkeypatch):
    """load_model(path.keras) reads the weights member (and takes its CRC-32) on a thread of its
    own while the model is rebuilt from config.json, and walks the weights as they arrive; the
    model is the one the file holds, and trains on as it would have.  A failed read, a read
    that ends short and a model that cannot be rebuilt are each the FormatError the load
    raises; every way, the read has ended and its descriptor is closed when load_model
    returns."""
    x, y = _data()
    m = _model()
    m.fit(x, y, epochs=2, batch_size=8, verbose=0)
    m.save(tmp_path / "m.keras")
    jobs, real = [], keras_file._engine.start_read

    class Job:   # the real job, with what the test breaks
        def __init__(self, job, short=False, broken=False):
            self.job, self.short, self.broken = job, short, broken

        @property
        def have(self):
            return 0 if self.short else self.job.have

        def wait(self, upto):
            return min(self.job.wait(upto), 100) if self.short else self.job.wait(upto)

        def finish(self, cancel=False):
            got, crc = self.job.finish(cancel)
            if self.broken:
                raise OSError(5, "Input/output error")
            return (min(got, 100), crc) if self.short else (got, crc)

    def start(*args, **kw):
        jobs.append(Job(real(*args, **kw), **flags))
        return jobs[-1]
    flags = {}
    monkeypatch.setattr(keras_file._engine, "start_read", start)
    fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    r = fastmlp.load_model(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        info = z.getinfo("model.weights.h5")
    assert len(jobs) == 1 and jobs[-1].job.finish() == (info.file_size, info.CRC)
    loaded = r.predict(x)
    np.testing.assert_array_equal(loaded, m.predict(x))
    r.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    m.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    for a, b in zip(r.get_weights(), m.get_weights()):
        np.testing.assert_array_equal(a, b)
    m.save(tmp_path / "m.keras")
    for bad, match in (({"broken": True}, "Input/output"), ({"short": True}, "truncated")):
        flags = bad
        with pytest.raises(fastmlp.FormatError, match=match):
            fastmlp.load_model(tmp_path / "m.keras")
    flags = {}
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        members = {n: z.read(n) for n in z.namelist()}
    config = json.loads(members["config.json"])
    config["config"]["layers"][1]["class_name"] = "NoSuchLayer"
    with zipfile.ZipFile(tmp_path / "bad.keras", "w") as z:
        for n, data in members.items():
            z.writestr(n, json.dumps(config) if n == "config.json" else data)
    with pytest.raises(fastmlp.FormatError, match="NoSuchLayer"):
        fastmlp.load_model(tmp_path / "bad.keras")
    assert len(jobs) == 4
    assert all(job.job.finished for job in jobs)   # every read was stopped and waited for
    if fds is not None:
        assert len(os.listdir("/proc/self/fd")) == fds   # no descriptor left behind
    monkeypatch.delattr(os, "pread")   # a platform without POSIX reads: the member is read as before
    np.testing.assert_array_equal(fastmlp.load_model(tmp_path / "m.keras").predict(x), r.predict(x))
    assert len(jobs) == 4


def test_save_takes_keras_3s_arguments_and_names_the_ones_it_does_not(tmp_path, monkeypatch):
    """``Model.save(filepath, overwrite=True, zipped=None, **kwargs)`` as in Keras 3: ``zipped=True``
    is the default; ``zipped=False`` writes a model folder, never under a ``.keras`` name;
    ``save_format`` (Keras 2's) warns where the name gives the format and is refused where it
    would be needed; anything else is a ValueError naming it.  Nothing is written when refused."""
    x, y = _data()
    m = _model()
    m.fit(x, y, epochs=1, batch_size=8, verbose=0)
    m.save(tmp_path / "a.keras", zipped=True)
    assert zipfile.is_zipfile(tmp_path / "a.keras")
    with pytest.warns(UserWarning, match="save_format"):
        m.save(tmp_path / "b.h5", save_format="h5")
    assert (tmp_path / "b.h5").read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    with pytest.raises(ValueError, match="should not end in `.keras`"):
        m.save(tmp_path / "c.keras", zipped=False)
    with pytest.raises(ValueError, match="save_format"):
        m.save(tmp_path / "d", save_format="tf")
    with pytest.raises(ValueError, match=r"not supported: \['signatures'\]"):
        m.save(tmp_path / "e.keras", signatures=None)
    assert sorted(os.listdir(tmp_path)) == ["a.keras", "b.h5"]

    m.save(tmp_path / "folder", zipped=False, include_optimizer=False)
    r = fastmlp.load_model(tmp_path / "folder")
    np.testing.assert_array_equal(r.predict(x, verbose=0), m.predict(x, verbose=0))
    assert r.optimizer.iterations == 0   # (left out)
    m.save(tmp_path / "folder", zipped=False)   # over the folder: its files replaced
    assert fastmlp.load_model(tmp_path / "folder").optimizer.iterations == m.optimizer.iterations
    before = {p.name: p.read_bytes() for p in (tmp_path / "folder").iterdir()}
    asked = []
    monkeypatch.setattr("builtins.input", lambda prompt="": asked.append(prompt) or "n")   # (Keras asks)
    assert m.save(tmp_path / "folder", zipped=False, overwrite=False) is None
    assert asked == [f"[WARNING] {tmp_path / 'folder'} already exists - overwrite? [y/n]"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "folder").iterdir()} == before
    with pytest.raises(ValueError, match="mmap"):
        fastmlp.load_model(tmp_path / "folder", mmap=True)
    with pytest.raises(ValueError, match="dtype"):
        m.save(tmp_path / "folder2", zipped=False, dtype="float16")


def test_a_damaged_model_folder_is_a_format_error_naming_it(tmp_path):
    m = _model()
    m.fit(*_data(), epochs=1, batch_size=8, verbose=0)
    m.save(tmp_path / "f", zipped=False)
    weights = (tmp_path / "f" / "model.weights.h5").read_bytes()
    (tmp_path / "f" / "model.weights.h5").write_bytes(weights[:len(weights) // 3])
    with pytest.raises(fastmlp.FormatError, match=str(tmp_path / "f")):
        fastmlp.load_model(tmp_path / "f")
    os.unlink(tmp_path / "f" / "model.weights.h5")
    with pytest.raises(fastmlp.FormatError, match="no model.weights.h5"):
        fastmlp.load_model(tmp_path / "f")
    (tmp_path / "f" / "config.json").write_text("{not json")
    with pytest.raises(fastmlp.FormatError, match="config.json is not valid JSON"):
        fastmlp.load_model(tmp_path / "f")


def test_the_saving_and_models_functions_write_the_format_the_name_asks_for(tmp_path):
    """``keras.saving.save_model`` / ``save_weights`` / ``load_weights`` and ``keras.models.save_model``
    are ``model.save`` / ``save_weights`` / ``load_weights``: a ``.keras`` name gets a Keras zip, never
    fastmlp's own format under that name."""
    x, y = _data()
    m = _model()
    m.fit(x, y, epochs=1, batch_size=8, verbose=0)
    fastmlp.saving.save_model(m, tmp_path / "a.keras")
    fastmlp.models.save_model(m, tmp_path / "b.h5")
    fastmlp.saving.save_model(m, tmp_path / "c", zipped=False)
    fastmlp.saving.save_weights(m, tmp_path / "w.weights.h5")
    assert zipfile.is_zipfile(tmp_path / "a.keras")
    for name in ("b.h5", "w.weights.h5", "c/model.weights.h5"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89HDF\r\n\x1a\n", name
    for name in ("a.keras", "b.h5", "c"):
        np.testing.assert_array_equal(fastmlp.saving.load_model(tmp_path / name).predict(x, verbose=0),
                                      m.predict(x, verbose=0))
    other = _model(seed=9)
    fastmlp.saving.load_weights(other, tmp_path / "w.weights.h5")
    np.testing.assert_array_equal(other.predict(x, verbose=0), m.predict(x, verbose=0))


def test_load_model_takes_keras_3s_arguments(tmp_path):
    """``load_model(filepath, custom_objects=None, compile=True, safe_mode=True)``, as Keras 3:
    ``custom_objects`` makes names known while the model is rebuilt (here an initializer
    function the file names; without it the loader says to pass it there), a value that is not
    a dict is a TypeError; ``safe_mode`` is a bool (fastmlp never runs code from a file, so
    either value loads the same model)."""
    def my_init(shape, dtype=None):
        return np.full(shape, 0.5)
    m = fastmlp.Sequential([fastmlp.Input(shape=(3,)), layers.Dense(2, kernel_initializer=my_init)])
    m.compile("sgd", loss="mse")
    m.save(tmp_path / "m.fmlp")
    with pytest.raises(fastmlp.FormatError, match="custom_objects"):
        fastmlp.load_model(tmp_path / "m.fmlp")
    r = fastmlp.load_model(tmp_path / "m.fmlp", custom_objects={"my_init": my_init})
    assert r.layers[0].kernel_initializer is my_init and r.compiled
    for safe_mode in (True, False):
        r = fastmlp.models.load_model(tmp_path / "m.fmlp", {"my_init": my_init}, compile=False, safe_mode=safe_mode)
        assert r.built and not r.compiled
    with pytest.raises(TypeError, match="custom_objects"):
        fastmlp.load_model(tmp_path / "m.fmlp", False)   # (Keras's order: custom_objects comes second)
    for ext in ("keras", "folder"):   # Keras files name the function too
        path = tmp_path / f"m.{ext}"
        m.save(path, zipped=ext == "keras")
        with pytest.raises(fastmlp.FormatError, match="custom_objects"):
            fastmlp.load_model(path)
        r = fastmlp.load_model(path, custom_objects={"my_init": my_init})
        assert r.layers[0].kernel_initializer is my_init
        np.testing.assert_array_equal(r.get_weights()[0], m.get_weights()[0])


def test_save_weights_and_load_weights_take_keras_3s_arguments_and_name_the_ones_they_do_not(tmp_path):
    m = _model()
    m.save_weights(tmp_path / "w.weights.h5", max_shard_size=None)
    m.load_weights(tmp_path / "w.weights.h5", skip_mismatch=False, by_name=None)
    with pytest.raises(NotImplementedError, match="max_shard_size"):
        m.save_weights(tmp_path / "v.weights.h5", max_shard_size=1)
    assert not (tmp_path / "v.weights.h5").exists()
    m.load_weights(tmp_path / "w.weights.h5", by_name=False, objects_to_skip=[])   # (Keras's defaults, in effect)
    fastmlp.saving.load_weights(m, tmp_path / "w.weights.h5", False)   # (Keras's positional order)
    fastmlp.saving.save_weights(m, tmp_path / "w.weights.h5", True, None)
    m.save_weights(tmp_path / "w.fmlp")
    for kwargs, named in ((dict(by_name=True), "by_name"), (dict(objects_to_skip=["dense"]), "objects_to_skip")):
        with pytest.raises(NotImplementedError, match=named):
            m.load_weights(tmp_path / "w.weights.h5", **kwargs)
    with pytest.raises(ValueError, match=r"Invalid keyword arguments: \['anything'\]"):
        m.load_weights(tmp_path / "w.weights.h5", anything=None)
    with pytest.raises(NotImplementedError, match="skip_mismatch"):   # (Keras 3's files only)
        m.load_weights(tmp_path / "w.fmlp", skip_mismatch=True)


@pytest.mark.parametrize("name", ["w.weights.h5", "m.keras"])
def test_load_weights_with_skip_mismatch_keeps_the_layers_the_file_does_not_fit(tmp_path, name):
    """A new head on a trained body (fine-tuning): with ``skip_mismatch=True`` the layers whose
    weights fit are loaded, the others keep theirs (a warning names each, and the optimizer's
    state is left too); without it nothing is changed and the mismatch is an error."""
    x, y = _data()
    m = _model()
    m.fit(x, y, epochs=1, batch_size=8, verbose=0)
    (m.save_weights if name.endswith(".weights.h5") else m.save)(tmp_path / name)
    fastmlp.utils.set_random_seed(11)
    other = fastmlp.Sequential([fastmlp.Input(shape=(5,)), layers.Dense(7, activation="tanh"),
                                layers.BatchNormalization(), layers.PReLU(), layers.Dense(4, activation="softmax")])
    other.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = other.get_weights()
    with pytest.raises(ValueError, match="shape"):
        other.load_weights(tmp_path / name)
    for a, b in zip(other.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    with pytest.warns(UserWarning, match=f"layer '{other.layers[-1].name}'") as caught:
        other.load_weights(tmp_path / name, skip_mismatch=True)
    assert any("optimizer" in str(w.message) for w in caught)
    got, want = other.get_weights(), m.get_weights()
    for i in range(len(got) - 2):   # the body: the file's
        np.testing.assert_array_equal(got[i], want[i])
    for i in (-2, -1):              # the head: its own
        np.testing.assert_array_equal(got[i], before[i])
    assert other.optimizer.iterations == 0


def test_model_folders_under_any_name_and_bytes_paths(tmp_path):
    """A folder is a Keras model folder by its config.json, whatever its name (``.onnx`` or
    ``.h5`` included, as in Keras); bytes paths work as str paths."""
    x, y = _data()
    m = _model()
    for name in ("a.onnx", "b.h5"):
        m.save(tmp_path / name, zipped=False)
        np.testing.assert_array_equal(fastmlp.load_model(tmp_path / name).predict(x, verbose=0),
                                      m.predict(x, verbose=0))
    path = os.fsencode(str(tmp_path / "c"))
    m.save(path, zipped=False)
    np.testing.assert_array_equal(fastmlp.load_model(path).predict(x, verbose=0), m.predict(x, verbose=0))


def test_a_compile_config_without_an_optimizer_compiles_with_compiles_default():
    """Keras 3.15 leaves the optimizer out of the saves that follow an .h5 save; Keras loads such a
    file compiled with compile's default, RMSprop."""
    from fastmlp.saving import keras_config
    args = keras_config.compile_args_from_keras({"loss": "mean_squared_error", "metrics": []})
    assert isinstance(args["optimizer"], fastmlp.optimizers.RMSprop)


def _adam_model():
    m = fastmlp.Sequential([fastmlp.Input((6,)), layers.Dense(3, activation="softmax")])
    m.compile(fastmlp.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    return m


def _trained_and_saved(path):
    """(x, y, a model trained 2 epochs and saved to ``path`` with its optimizer's state)."""
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(32, 6)).astype("float32"), rng.integers(0, 3, 32)
    a = _adam_model()
    a.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    a.save_weights(path) if str(path).endswith(".weights.h5") else a.save(path)
    return x, y, a


@pytest.mark.parametrize("name", ["w.weights.h5", "m.keras"])
def test_load_weights_into_a_model_that_has_trained_restores_the_optimizer_state_too(tmp_path, name):
    """The slots were built by the target's own training: the file's values replace them, as in
    Keras (fastmlp's own .fmlp weights files hold no optimizer state)."""
    x, y, a = _trained_and_saved(tmp_path / name)
    b = _adam_model()
    b.fit(x[:16], y[:16], epochs=3, batch_size=16, verbose=0)   # its optimizer's slots exist
    b.load_weights(tmp_path / name)
    a.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    b.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wb, wa, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["w.weights.h5", "m.keras"])
def test_load_weights_into_a_fresh_model_leaves_its_optimizer_fresh_as_keras_does(tmp_path, name):
    """Keras 3 restores an optimizer's variables only into a built optimizer: a model compiled and
    never trained gets the weights, and its optimizer starts from step 0 (with Keras's warning).
    A model from load_model counts as built, as in Keras."""
    x, y, a = _trained_and_saved(tmp_path / name)
    b = _adam_model()
    with pytest.warns(UserWarning, match="Skipping variable loading for optimizer 'adam', because it has 2 "
                                         r"variables whereas the saved optimizer has \d+ variables"):
        b.load_weights(tmp_path / name)
    assert b.optimizer.iterations == 0 and not b.optimizer.built
    np.testing.assert_array_equal(b.get_weights()[0], a.get_weights()[0])
    fresh = _adam_model()
    fresh.set_weights(a.get_weights())
    for m in (b, fresh):
        m.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    for wb, wf in zip(b.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(wb, wf)
    a.save(tmp_path / "other.keras")
    c = fastmlp.load_model(tmp_path / "other.keras")
    c.load_weights(tmp_path / name)   # (loaded: built, as Keras's load_model builds it)
    assert c.optimizer.iterations == a.optimizer.iterations


def test_legacy_h5_configs_use_tf_keras_2_spellings_that_keras_3_also_reads(tmp_path):
    """tf.keras 2 knows a LeakyReLU's slope as ``alpha`` and has no ``rms_scaling``; Keras 3 reads
    both spellings (TensorFlow 2.15 loaded these files: not run here)."""
    model = fastmlp.Sequential([fastmlp.Input((6,)), layers.Dense(4), layers.LeakyReLU(negative_slope=0.1),
                                layers.LayerNormalization(), layers.Dense(1)])
    model.save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r") as f:
        config = json.loads(f.attrs["model_config"])
    by_class = {e["class_name"]: e["config"] for e in config["config"]["layers"]}
    assert by_class["LeakyReLU"]["alpha"] == 0.1 and "negative_slope" not in by_class["LeakyReLU"]
    assert "rms_scaling" not in by_class["LayerNormalization"]
    ids = fastmlp.Input(shape=(3,), dtype="int32")   # (Keras 3's quantization_config=None: tf.keras 2 refuses it)
    emb = fastmlp.Model(ids, layers.Flatten()(layers.Embedding(10, 4)(ids)))
    emb.save(tmp_path / "e.h5")
    with h5py.File(tmp_path / "e.h5", "r") as f:
        assert "quantization_config" not in f.attrs["model_config"]
    assert "quantization_config" in json.dumps(emb.get_config())
    back = fastmlp.load_model(tmp_path / "m.h5")
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
    assert back.layers[1].negative_slope == 0.1


@pytest.mark.parametrize("extra,message", [
    ({"lora_rank": 2, "lora_alpha": 2}, r"Dense\(lora_rank=\.\.\.\)"),
    ({"kernel_constraint": {"module": "keras.constraints", "class_name": "MaxNorm", "config": {}}},
     r"layer 'd' \(Dense\): kernel_constraint='MaxNorm'"),
    ({"dtype": "float16"}, r"layer 'd' \(Dense\): the dtype"),
])
def test_keras_layer_features_fastmlp_lacks_are_refused_naming_the_layer_and_class(extra, message):
    from fastmlp.saving import keras_config
    entry = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 3], "dtype": "float32", "name": "i"}},
        {"class_name": "Dense", "config": {"name": "d", "units": 2, **extra}}]}}
    with pytest.raises((keras_config.KerasConfigError, ValueError), match=message):
        keras_config.model_from_keras_config(entry, lambda kind, config: fastmlp.Sequential.from_config(config))


def test_a_nested_sequential_in_a_legacy_h5_is_written_without_its_input_layer(tmp_path):
    """tf.keras 2 numbers the calls of a nested model that has an InputLayer from 1 (and loops
    forever on a file numbering them from 0, as Keras 3 does); without it both read them from 0.
    (TensorFlow 2.15 loaded such a file: checked by hand, not run here.)"""
    inner = fastmlp.Sequential([fastmlp.Input((6,)), layers.Dense(4, activation="relu")], name="inner")
    i = fastmlp.Input((6,))
    m = fastmlp.Model(i, layers.Dense(2)(inner(i)))
    m.save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r") as f:
        config = json.loads(f.attrs["model_config"])
    nested = next(e for e in config["config"]["layers"] if e["class_name"] == "Sequential")
    assert [e["class_name"] for e in nested["config"]["layers"]] == ["Dense"]
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    np.testing.assert_array_equal(fastmlp.load_model(tmp_path / "m.h5").predict(x, verbose=0), m.predict(x))
