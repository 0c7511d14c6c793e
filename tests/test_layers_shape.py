"""Identity and Reshape (no engine node, as Flatten) and ActivityRegularization
(engine kind ``activity_regularization``, a node that adds a loss term): against
NumPy, gradients by central differences in float64, the model file, and Keras 3
(torch backend) on the same weights where Keras is installed."""
import os

import numpy as np
import pytest

import fastmlp
from fastmlp import layers

import reference as ref

FORWARD_ATOL = 1e-5
STEP_ATOL = 2e-4

keras = None
if os.environ.get("KERAS_BACKEND", "torch") == "torch":
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        keras = None
needs_keras = pytest.mark.skipif(keras is None, reason="keras (torch backend) is not installed")

RNG = np.random.default_rng(0)
X = RNG.standard_normal((12, 4)).astype(np.float32)
Y = RNG.standard_normal((12, 2)).astype(np.float32)


def _model(K, make, functional=True):
    if functional:
        inp = K.Input(shape=(4,), name="x")
        h = make(K)(K.layers.Dense(5, name="d")(inp))
        return K.Model(inp, K.layers.Dense(2, name="o")(h))
    return K.Sequential([K.Input(shape=(4,)), K.layers.Dense(5, name="d"), make(K), K.layers.Dense(2, name="o")])


def _perturbed(weights, seed=1):
    rng = np.random.default_rng(seed)
    return [w + rng.uniform(-0.3, 0.3, w.shape).astype(w.dtype) for w in weights]


# ---------------------------------------------------------------- Identity, Reshape
def test_identity_and_reshape_pass_values_through_and_reshape_to_flat_samples():
    x = RNG.standard_normal((3, 2, 6)).astype(np.float32)
    np.testing.assert_array_equal(layers.Identity()(X), X)
    np.testing.assert_array_equal(layers.Reshape((-1,))(x), x.reshape(3, 12))
    np.testing.assert_array_equal(layers.Reshape((12,))(x), x.reshape(3, 12))
    inp = fastmlp.Input(shape=(2, 6))
    flat = layers.Reshape((-1,))(inp)
    assert flat.shape == (None, 12)
    out = layers.Dense(3, name="o")(layers.Identity()(flat))
    model = fastmlp.Model(inp, out)
    o = model.get_layer("o")
    np.testing.assert_allclose(model.predict(x), x.reshape(3, 12) @ o.kernel + o.bias, rtol=1e-5, atol=1e-6)


def test_reshape_refuses_shapes_that_change_the_size_or_need_more_axes():
    with pytest.raises(ValueError, match="flat samples only"):
        layers.Reshape((3, 4))
    with pytest.raises(ValueError, match="target_shape"):
        layers.Reshape((0,))
    with pytest.raises(ValueError, match="target_shape"):
        layers.Reshape("12")
    with pytest.raises(ValueError, match="size"):
        layers.Reshape((5,))(fastmlp.Input(shape=(2, 3)))


def test_models_with_identity_and_reshape_save_and_load(tmp_path):
    inp = fastmlp.Input(shape=(2, 2))
    h = layers.Dense(3)(layers.Identity()(layers.Reshape((4,))(inp)))
    model = fastmlp.Model(inp, h)
    path = os.path.join(tmp_path, "m.fmlp")
    model.save(path)
    loaded = fastmlp.load_model(path)
    x = X.reshape(12, 2, 2)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert [type(layer).__name__ for layer in loaded.layers] == ["InputLayer", "Reshape", "Identity", "Dense"]
    assert loaded.layers[1].get_config()["target_shape"] == (4,)


# ---------------------------------------------------------------- ActivityRegularization
def _penalty(h, l1, l2):
    return (l1 * np.abs(h).sum() + l2 * np.square(h).sum()) / len(h)


def test_activity_regularization_adds_its_batch_mean_penalty_to_the_evaluated_loss():
    model = _model(fastmlp, lambda K: K.layers.ActivityRegularization(l1=0.05, l2=0.1))
    model.compile(optimizer="sgd", loss="mse")
    d, o = model.get_layer("d"), model.get_layer("o")
    h = X @ d.kernel + d.bias
    mse = np.mean(np.square(h @ o.kernel + o.bias - Y))
    # one batch of 12 rows, then batches of 5, 5 and 2 (Keras: penalties per batch, mean weighted by rows)
    np.testing.assert_allclose(model.evaluate(X, Y, verbose=0), mse + _penalty(h, 0.05, 0.1), rtol=1e-5)
    per_batch = [(np.mean(np.square(h[s] @ o.kernel + o.bias - Y[s]), axis=None) + _penalty(h[s], 0.05, 0.1))
                 * len(h[s]) for s in (slice(0, 5), slice(5, 10), slice(10, 12))]
    np.testing.assert_allclose(model.evaluate(X, Y, batch_size=5, verbose=0), sum(per_batch) / 12, rtol=1e-5)
    np.testing.assert_array_equal(model.predict(X), h.astype(np.float32) @ o.kernel + o.bias)


def test_activity_regularization_called_on_arrays_records_its_penalty():
    layer = layers.ActivityRegularization(l1=0.5, l2=0.25)
    assert layer(X) is not None and layer.losses[0] == pytest.approx(_penalty(X, 0.5, 0.25), rel=1e-6)


@pytest.mark.parametrize("l1, l2", [(0.05, 0.0), (0.0, 0.2), (0.03, 0.1)])
def test_activity_regularization_gradients_match_central_differences(l1, l2):
    fastmlp.config.set_floatx("float64")
    try:
        model = _model(fastmlp, lambda K: K.layers.ActivityRegularization(l1=l1, l2=l2))
        model.compile(optimizer="sgd", loss="mse")
        model.set_weights(_perturbed(model.get_weights(), 3))
        rng = np.random.default_rng(4)
        Xg, Yg = rng.standard_normal((7, 4)), rng.standard_normal((7, 2))
        specs = model._loss_specs()
        f = lambda p: model._net.loss_and_grads(p, [Xg], [Yg], [None], None, specs)   # noqa: E731
        d, o = model.get_layer("d"), model.get_layer("o")
        h = Xg @ d.kernel + d.bias
        want = np.mean(np.square(h @ o.kernel + o.bias - Yg)) + _penalty(h, l1, l2)
        assert f(model._params.copy())[0] == pytest.approx(want, rel=1e-10)
        ref.assert_gradient_by_central_difference(f, model._params, model._variables)
    finally:
        fastmlp.config.set_floatx("float32")


def test_a_model_with_activity_regularization_saves_and_loads(tmp_path):
    model = _model(fastmlp, lambda K: K.layers.ActivityRegularization(l1=0.01, l2=0.02))
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, Y, epochs=1, verbose=0)
    path = os.path.join(tmp_path, "m.fmlp")
    model.save(path)
    loaded = fastmlp.load_model(path)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.evaluate(X, Y, verbose=0) == pytest.approx(model.evaluate(X, Y, verbose=0), rel=1e-6)
    assert loaded.layers[2].get_config() == model.layers[2].get_config()


def test_activity_regularization_refuses_negative_or_non_numeric_factors_by_name():
    with pytest.raises(ValueError, match="l1"):
        layers.ActivityRegularization(l1=-0.1)
    with pytest.raises(ValueError, match="l2"):
        layers.ActivityRegularization(l2="big")


# ---------------------------------------------------------------- against Keras
CASES = {
    "identity": lambda K: K.layers.Identity(),
    "reshape": lambda K: K.layers.Reshape((-1,)),
    "activity_regularization": lambda K: K.layers.ActivityRegularization(l1=0.02, l2=0.05),
}


@needs_keras
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("functional", [True, False])
def test_predict_fit_and_evaluate_match_keras_on_the_same_weights(case, functional):
    """Functional models train with SGD, Sequential ones with Adam; batches of 5 leave a last batch of 2,
    whose activity penalty Keras divides by 2."""
    make = CASES[case]
    keras.utils.set_random_seed(1)
    k_model = _model(keras, make, functional)
    weights = _perturbed(k_model.get_weights())
    k_model.set_weights(weights)
    f_model = _model(fastmlp, make, functional)
    f_model.set_weights(weights)
    np.testing.assert_allclose(f_model.predict(X), k_model.predict(X, verbose=0), atol=FORWARD_ATOL, rtol=0)
    opt = "sgd" if functional else "adam"
    k_model.compile(optimizer=keras.optimizers.get(opt), loss="mse")
    f_model.compile(optimizer=opt, loss="mse")
    hk = k_model.fit(X, Y, batch_size=5, epochs=2, shuffle=False, verbose=0).history["loss"]
    hf = f_model.fit(X, Y, batch_size=5, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(hf, hk, rtol=2e-5)
    for a, b in zip(f_model.get_weights(), k_model.get_weights()):
        np.testing.assert_allclose(a, b, atol=STEP_ATOL, rtol=0)
    np.testing.assert_allclose(f_model.evaluate(X, Y, batch_size=5, verbose=0),
                               k_model.evaluate(X, Y, batch_size=5, verbose=0), rtol=2e-5)


@needs_keras
@pytest.mark.parametrize("case", sorted(CASES))
def test_configs_have_keras_keys_and_round_trip(case):
    k_cfg, f_cfg = CASES[case](keras).get_config(), CASES[case](fastmlp).get_config()
    assert set(f_cfg) == set(k_cfg)
    for key in set(k_cfg) - {"name", "dtype"}:
        assert f_cfg[key] == k_cfg[key], key
    cls = type(CASES[case](fastmlp))
    assert cls.from_config(f_cfg).get_config() == f_cfg
