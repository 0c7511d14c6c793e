"""Embedding (engine kind ``embedding``, csrc/kinds/embedding.c): table lookups of
integer ids against NumPy and Keras 3, gradients by central differences in
float64, training steps against Keras (SGD, Adam; Sequential and a wide-and-deep
functional model), the checks on ids, configs and the model file."""
import os

import numpy as np
import pytest

import fastmlp
from fastmlp import layers

import reference as ref


def _wide_and_deep(K, n_ids=2, input_dim=6, output_dim=3, shared=False, ids_dtype="int32"):
    """ids (n_ids columns) -> Embedding -> Flatten, concatenated with 4 numeric columns -> Dense."""
    ids = K.Input(shape=(n_ids,), dtype=ids_dtype, name="ids")
    num = K.Input(shape=(4,), name="num")
    emb = K.layers.Embedding(input_dim, output_dim, name="emb")
    parts = [K.layers.Flatten(name="flat")(emb(ids))]
    inputs = [ids, num]
    if shared:   # a second id input through the same table
        more = K.Input(shape=(1,), dtype=ids_dtype, name="more")
        parts.append(K.layers.Flatten(name="flat2")(emb(more)))
        inputs.append(more)
    h = K.layers.Concatenate(name="cat")(parts + [num])
    h = K.layers.Dense(5, activation="tanh", name="hidden")(h)
    return K.Model(inputs, K.layers.Dense(2, name="out")(h))


def _data(n=12, n_ids=2, input_dim=6, shared=False, seed=0):
    rng = np.random.default_rng(seed)
    X = [rng.integers(0, input_dim, (n, n_ids)), rng.standard_normal((n, 4)).astype(np.float32)]
    if shared:
        X.append(rng.integers(0, input_dim, (n, 1)))
    return X, rng.standard_normal((n, 2)).astype(np.float32)


def _numpy_forward(model, X, shared=False):
    E = model.get_layer("emb").embeddings
    parts = [E[X[0]].reshape(len(X[0]), -1)] + ([E[X[2]].reshape(len(X[0]), -1)] if shared else []) + [X[1]]
    h = np.concatenate(parts, axis=1)
    hid, out = model.get_layer("hidden"), model.get_layer("out")
    return np.tanh(h @ hid.kernel + hid.bias) @ out.kernel + out.bias


# ---------------------------------------------------------------- fastmlp only (NumPy reference)

def test_the_table_is_input_dim_by_output_dim_and_starts_uniform_in_plus_minus_0_05():
    model = _wide_and_deep(fastmlp, input_dim=50, output_dim=8)
    (E,) = model.get_layer("emb").get_weights()
    assert E.shape == (50, 8)
    assert -0.05 <= E.min() < -0.03 and 0.03 < E.max() <= 0.05
    assert model.get_layer("emb").output.shape == (None, 2, 8)
    assert model.get_layer("flat").output.shape == (None, 16)


@pytest.mark.parametrize("shared", [False, True])
def test_predict_is_the_table_lookup_flattened_in_keras_order(shared):
    model = _wide_and_deep(fastmlp, shared=shared)
    model.get_layer("emb").set_weights([np.random.default_rng(1).standard_normal((6, 3))])
    X, _ = _data(shared=shared)
    np.testing.assert_allclose(model.predict(X), _numpy_forward(model, X, shared), rtol=1e-5, atol=1e-6)


def test_ids_arrive_exactly_from_any_integer_or_whole_float_dtype():
    model = _wide_and_deep(fastmlp, input_dim=6)
    X, _ = _data()
    want = model.predict(X)
    for dtype in (np.int64, np.int32, np.uint8, np.int16, np.float32, np.float64):
        np.testing.assert_array_equal(model.predict([X[0].astype(dtype), X[1]]), want)


def test_calling_the_layer_on_an_array_looks_up_rows():
    layer = layers.Embedding(5, 2)
    ids = np.array([[0, 4, 4], [2, 1, 0]])
    out = layer(ids)
    assert out.shape == (2, 3, 2)
    np.testing.assert_array_equal(out, layer.embeddings[ids])


def test_a_sequential_input_one_id_embedding_flatten_dense():
    model = fastmlp.Sequential([fastmlp.Input((1,), dtype="int64"), layers.Embedding(4, 3, name="emb"),
                                layers.Flatten(), layers.Dense(1, name="d")])
    ids = np.array([[3], [0], [3], [1]])
    E, d = model.get_layer("emb").embeddings, model.get_layer("d")
    np.testing.assert_allclose(model.predict(ids), E[ids[:, 0]] @ d.kernel + d.bias, rtol=1e-6)
    np.testing.assert_allclose(model.predict(ids[:, 0]), model.predict(ids))   # 1-D column, as Keras takes it
    cfg = model.get_config()
    assert cfg["layers"][0]["config"]["dtype"] == "int64"
    assert fastmlp.Sequential.from_config(cfg).get_config()["layers"][0]["config"]["dtype"] == "int64"
    loaded = fastmlp.saving.model_from_bytes(model.to_bytes())
    assert loaded.get_config() == cfg
    np.testing.assert_array_equal(loaded.predict(ids), model.predict(ids))


def test_a_sequential_without_input_builds_from_the_ids_it_is_given():
    with pytest.warns(UserWarning, match="input_length"):   # deprecated in Keras 3, which warns and ignores it
        emb = layers.Embedding(9, 2, input_length=4)
    model = fastmlp.Sequential([emb, layers.Flatten(), layers.Dense(1)])
    model.compile("sgd", "mse")
    ids = np.random.default_rng(0).integers(0, 9, (10, 4))
    model.fit(ids, np.zeros(10), verbose=0)
    assert model.layers[0].output.shape == (None, 4, 2) and model.count_params() == 9 * 2 + 8 + 1


@pytest.mark.parametrize("shared", [False, True])
def test_gradients_match_central_differences_with_repeated_ids(shared):
    fastmlp.config.set_floatx("float64")
    try:
        model = _wide_and_deep(fastmlp, shared=shared)
        model.compile(optimizer="sgd", loss="mse")
        model.get_layer("emb").set_weights([np.random.default_rng(2).standard_normal((6, 3))])
        X, Y = _data(n=7, shared=shared, seed=3)
        X[0][:3] = [[1, 1], [1, 4], [4, 1]]   # rows used several times in a batch (the scatter adds)
        X = [np.ascontiguousarray(a, dtype=np.float64) for a in X]
        specs = model._loss_specs()
        ref.assert_gradient_by_central_difference(
            lambda p: model._net.loss_and_grads(p, X, [Y.astype(np.float64)], [None], None, specs),
            model._params, model._variables)
    finally:
        fastmlp.config.set_floatx("float32")


def test_one_sgd_step_moves_only_the_rows_used_by_the_summed_gradient():
    model = fastmlp.Sequential([fastmlp.Input((2,)), layers.Embedding(5, 2, name="emb"), layers.Flatten(),
                                layers.Dense(1, name="d")])
    model.compile(optimizer=fastmlp.optimizers.SGD(0.1), loss="mse")
    E0 = model.get_layer("emb").get_weights()[0]
    W, b = model.get_layer("d").kernel.numpy().copy(), model.get_layer("d").bias.numpy().copy()
    ids, y = np.array([[0, 3], [3, 3]]), np.array([[1.0], [-1.0]], dtype=np.float32)
    pred = E0[ids].reshape(2, -1) @ W + b
    g_out = 2 * (pred - y) / 2                      # d mse / d pred
    g_flat = g_out @ W.T                            # (2, 4): the two looked-up rows side by side
    dE = np.zeros_like(E0)
    for r in range(2):
        for j in range(2):
            dE[ids[r, j]] += g_flat[r, 2 * j:2 * j + 2]
    model.train_on_batch(ids, y)
    E1 = model.get_layer("emb").get_weights()[0]
    np.testing.assert_allclose(E1, E0 - 0.1 * dE, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(E1[[1, 2, 4]], E0[[1, 2, 4]])


@pytest.mark.parametrize("bad", [6, -1, 2.5, np.nan, 1 << 40])
def test_ids_outside_the_table_raise_value_error_in_fit_predict_and_evaluate(bad):
    model = _wide_and_deep(fastmlp)
    model.compile(optimizer="adam", loss="mse")
    X, Y = _data()
    X[0] = X[0].astype(np.float64)
    X[0][5, 1] = bad
    before = model.get_weights()
    for call in (lambda: model.predict(X), lambda: model.fit(X, Y, verbose=0),
                 lambda: model.evaluate(X, Y, verbose=0), lambda: model.train_on_batch(X, Y)):
        with pytest.raises(ValueError, match=r"Embedding 'emb' received the id .*\[0, 6\)"):
            call()
    for w0, w1 in zip(before, model.get_weights()):
        np.testing.assert_array_equal(w0, w1)
    single = fastmlp.Sequential([fastmlp.Input((2,)), layers.Embedding(6, 2), layers.Flatten(), layers.Dense(1)])
    with pytest.raises(ValueError, match="whole numbers"):   # predict's fast path checks too
        single.predict(np.array([[1, bad]], dtype=np.float32))


def test_the_engine_itself_gives_zeros_for_ids_it_was_not_meant_to_see():
    """Past the wrapper's check (a bug, or a direct engine call) a bad id reads and
    writes nothing outside the table: its vector is zeros."""
    model = fastmlp.Model(*(lambda i: (i, layers.Flatten()(layers.Embedding(3, 2, name="emb")(i))))(
        fastmlp.Input((3,))))
    E = model.get_layer("emb").embeddings
    X = np.array([[0, 3, -1], [np.nan, 1e30, 2]], dtype=np.float32)
    out = np.empty((2, 6), dtype=np.float32)
    model._net.predict(model._params, [X], [out])
    np.testing.assert_array_equal(out, [[*E[0], 0, 0, 0, 0], [0, 0, 0, 0, *E[2]]])


def test_unsupported_arguments_and_shapes_are_refused_by_name():
    with pytest.raises(NotImplementedError, match="mask_zero"):
        layers.Embedding(5, 2, mask_zero=True)
    for arg in ("embeddings_constraint", "activity_regularizer", "lora_rank"):
        with pytest.raises(ValueError, match=arg):
            layers.Embedding(5, 2, **{arg: "non_neg" if arg == "embeddings_constraint" else 2})
    for kwargs in ({"input_dim": 0, "output_dim": 2}, {"input_dim": 3, "output_dim": 2.0}):
        with pytest.raises(ValueError, match="positive integer"):
            layers.Embedding(**kwargs)
    with pytest.raises(ValueError, match="float64"):   # ids above 2^24 are not exact in float32
        layers.Embedding((1 << 24) + 1, 1)(fastmlp.Input((1,)))
    inp = fastmlp.Input((3,))
    with pytest.raises(ValueError, match="straight from a model input"):
        fastmlp.Model(inp, layers.Flatten()(layers.Embedding(4, 2)(layers.Dense(3)(inp))))


def test_pretrained_weights_argument_sets_the_table():
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    model = fastmlp.Sequential([fastmlp.Input((2,)), layers.Embedding(4, 3, weights=[table]), layers.Flatten(),
                                layers.Dense(1)])
    np.testing.assert_array_equal(model.layers[0].embeddings, table)
    with pytest.raises(ValueError, match="shape"):
        layers.Embedding(4, 2, weights=[table])


def test_config_and_the_model_file_round_trip(tmp_path):
    model = _wide_and_deep(fastmlp, shared=True)
    model.compile(optimizer="adam", loss="mse")
    X, Y = _data(shared=True)
    model.fit(X, Y, epochs=2, batch_size=4, verbose=0)
    cfg = model.get_layer("emb").get_config()
    again = layers.Embedding.from_config(cfg)
    assert again.get_config() == cfg
    clone = fastmlp.Model.from_config(model.get_config())
    assert clone.get_config()["layers"][0]["config"]["dtype"] == "int32"
    path = os.path.join(tmp_path, "emb.fmlp")
    model.save(path)
    loaded = fastmlp.load_model(path)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.get_layer("emb").embeddings, model.get_layer("emb").embeddings)
    model.fit(X, Y, epochs=1, batch_size=4, verbose=0, shuffle=False)
    loaded.fit(X, Y, epochs=1, batch_size=4, verbose=0, shuffle=False)   # optimizer state came along
    np.testing.assert_array_equal(loaded.get_layer("emb").embeddings, model.get_layer("emb").embeddings)


# ---------------------------------------------------------------- Keras 3 (torch backend) as the oracle

keras = None
if os.environ.get("KERAS_BACKEND", "torch") == "torch":
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        keras = None
needs_keras = pytest.mark.skipif(keras is None, reason="keras (torch backend) is not installed")


def _pair(build):
    keras.utils.set_random_seed(0)
    k_model, f_model = build(keras), build(fastmlp)
    assert [tuple(w.shape) for w in k_model.get_weights()] == [w.shape for w in f_model.get_weights()]
    f_model.set_weights(k_model.get_weights())
    return k_model, f_model


def _sequential(K):
    return K.Sequential([K.Input((3,), dtype="int32"), K.layers.Embedding(7, 4), K.layers.Flatten(),
                         K.layers.Dense(6, activation="relu"), K.layers.Dense(1)])


@needs_keras
@pytest.mark.parametrize("which", ["sequential", "functional", "shared"])
def test_predict_matches_keras_on_the_same_weights(which):
    build = _sequential if which == "sequential" else (lambda K: _wide_and_deep(K, shared=which == "shared"))
    k_model, f_model = _pair(build)
    if which == "sequential":
        X = np.random.default_rng(4).integers(0, 7, (20, 3))
    else:
        X, _ = _data(20, shared=which == "shared")
    np.testing.assert_allclose(f_model.predict(X), k_model.predict(X, verbose=0), atol=1e-5, rtol=0)


@needs_keras
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("which", ["sequential", "functional"])
def test_fit_matches_keras_step_for_step(optimizer, which):
    """Rows no batch uses still move under Adam (their moments), as in Keras's dense
    gradient; under SGD they stay put."""
    build = _sequential if which == "sequential" else (lambda K: _wide_and_deep(K, input_dim=9, shared=True))
    k_model, f_model = _pair(build)
    rng = np.random.default_rng(5)
    if which == "sequential":
        X, Y = rng.integers(0, 5, (24, 3)), rng.standard_normal((24, 1)).astype(np.float32)   # rows 5, 6 unused
    else:
        X, Y = _data(24, input_dim=5, shared=True, seed=5)
    for m in (k_model, f_model):
        m.compile(optimizer=optimizer, loss="mse", metrics=["mae"])
    k_hist = k_model.fit(X, Y, epochs=3, batch_size=8, shuffle=False, verbose=0).history
    f_hist = f_model.fit(X, Y, epochs=3, batch_size=8, shuffle=False, verbose=0).history
    for kw, fw in zip(k_model.get_weights(), f_model.get_weights()):
        np.testing.assert_allclose(fw, np.asarray(kw), atol=2e-4, rtol=0)
    np.testing.assert_allclose(f_hist["loss"], k_hist["loss"], rtol=2e-4)
    np.testing.assert_allclose(f_model.evaluate(X, Y, verbose=0), k_model.evaluate(X, Y, verbose=0), rtol=2e-4)


@needs_keras
def test_an_l2_regularized_table_trains_as_keras_trains_it():
    def build(K):
        return K.Sequential([K.Input((2,)), K.layers.Embedding(8, 3, embeddings_regularizer=K.regularizers.L2(0.05)),
                             K.layers.Flatten(), K.layers.Dense(1)])
    k_model, f_model = _pair(build)
    rng = np.random.default_rng(6)
    X, Y = rng.integers(0, 6, (16, 2)).astype(np.float32), rng.standard_normal((16, 1)).astype(np.float32)
    for m in (k_model, f_model):
        m.compile(optimizer="rmsprop", loss="mse")
    k_hist = k_model.fit(X, Y, epochs=2, batch_size=4, shuffle=False, verbose=0).history
    f_hist = f_model.fit(X, Y, epochs=2, batch_size=4, shuffle=False, verbose=0).history
    for kw, fw in zip(k_model.get_weights(), f_model.get_weights()):
        np.testing.assert_allclose(fw, np.asarray(kw), atol=2e-4, rtol=0)
    np.testing.assert_allclose(f_hist["loss"], k_hist["loss"], rtol=2e-4)


@needs_keras
def test_config_keys_are_keras_keys():
    k_cfg = keras.layers.Embedding(7, 3, name="e").get_config()
    f_cfg = layers.Embedding(7, 3, name="e").get_config()
    assert set(f_cfg) == set(k_cfg)
    for key in ("input_dim", "output_dim", "mask_zero", "embeddings_regularizer", "embeddings_constraint"):
        assert f_cfg[key] == k_cfg[key]
    assert f_cfg["embeddings_initializer"]["config"] == {"minval": -0.05, "maxval": 0.05, "seed": None}
