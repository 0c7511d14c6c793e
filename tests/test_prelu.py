"""PReLU (engine kind ``prelu``, csrc/kinds/prelu.c): against the NumPy reference
and Keras, gradients by central differences in float64, and the model file."""
import os

import numpy as np
import pytest

import fastmlp
from fastmlp import layers

import reference as ref


def _graph(shared_axes=None, shape=(5,)):
    inp = fastmlp.Input(shape=shape, name="x")
    h = inp if len(shape) > 1 else layers.Dense(5, name="d")(inp)
    a = layers.PReLU(shared_axes=shared_axes, name="act")(h)
    if len(shape) > 1:
        a = layers.Flatten()(a)
    return fastmlp.Model(inp, layers.Dense(3, activation="softmax", name="o")(a))


def _random_alpha(model, seed=1):
    act = model.get_layer("act")
    (alpha,) = act.get_weights()
    act.set_weights([np.random.default_rng(seed).uniform(-0.5, 0.9, alpha.shape)])


def test_prelu_alpha_starts_at_zero_one_per_feature_as_keras_does():
    model = _graph()
    (alpha,) = model.get_layer("act").get_weights()
    assert alpha.shape == (5,)
    np.testing.assert_array_equal(alpha, 0)


def test_prelu_forward_matches_the_numpy_reference_with_and_without_shared_axes():
    x = np.random.default_rng(0).standard_normal((7, 3, 4)).astype(np.float32)
    for shared in (None, [1]):
        model = _graph(shared, shape=(3, 4))
        _random_alpha(model)
        alpha = model.get_layer("act").alpha
        assert alpha.shape == ((3, 4) if shared is None else (1, 4))
        hidden = np.where(x > 0, x, alpha * x).reshape(7, -1)
        o = model.get_layer("o")
        want = ref.softmax(hidden @ o.kernel + o.bias)
        np.testing.assert_allclose(model.predict(x), want, rtol=1e-5, atol=1e-6)


def test_prelu_called_on_arrays_computes_like_the_model():
    x = np.random.default_rng(2).standard_normal((4, 5)).astype(np.float32)
    layer = layers.PReLU()
    out = layer(x)
    np.testing.assert_array_equal(out, np.maximum(x, 0))   # alpha = 0


@pytest.mark.parametrize("shared_axes", [None, [1]])
def test_prelu_gradients_match_central_differences(shared_axes):
    fastmlp.config.set_floatx("float64")
    try:
        model = _graph(shared_axes, shape=(2, 3))
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        _random_alpha(model)
        rng = np.random.default_rng(3)
        X = rng.standard_normal((9, 6))
        y = rng.integers(0, 3, 9).astype(np.int64)
        specs = model._loss_specs()
        ref.assert_gradient_by_central_difference(
            lambda p: model._net.loss_and_grads(p, [X], [None], [y], None, specs), model._params,
            model._variables)
    finally:
        fastmlp.config.set_floatx("float32")


def test_a_model_with_prelu_saves_and_loads_with_its_slopes(tmp_path):
    model = _graph()
    _random_alpha(model)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(4).standard_normal((6, 5)).astype(np.float32)
    model.fit(x, np.arange(6) % 3, epochs=2, verbose=0)
    path = os.path.join(tmp_path, "prelu.fmlp")
    model.save(path)
    loaded = fastmlp.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    np.testing.assert_array_equal(loaded.get_layer("act").alpha, model.get_layer("act").alpha)


def test_prelu_refuses_what_it_does_not_support_by_name():
    with pytest.raises(ValueError, match="alpha_constraint"):
        layers.PReLU(alpha_constraint="non_neg")
    with pytest.raises(ValueError, match="shared_axes"):
        layers.PReLU(shared_axes=[0])
    inp = fastmlp.Input(shape=(3, 4))
    with pytest.raises(ValueError, match="leading axes"):
        layers.PReLU(shared_axes=[2])(inp)


keras = None
if os.environ.get("KERAS_BACKEND", "torch") == "torch":
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        keras = None


@pytest.mark.skipif(keras is None, reason="keras (torch backend) is not installed")
@pytest.mark.parametrize("kwargs", [{}, {"shared_axes": [1]}])
def test_prelu_predicts_what_keras_predicts_from_the_same_weights(kwargs):
    def build(K):
        inp = K.Input(shape=(6,), name="x")
        h = K.layers.Dense(7, name="d")(inp)
        a = K.layers.PReLU(name="act", **kwargs)(h)
        return K.Model(inp, {"hidden": a, "out": K.layers.Dense(3, name="o")(a)})
    keras.utils.set_random_seed(0)
    k_model, f_model = build(keras), build(fastmlp)
    act = k_model.get_layer("act")
    act.set_weights([np.random.RandomState(2).uniform(-0.5, 0.9, act.get_weights()[0].shape).astype(np.float32)])
    assert [w.shape for w in f_model.get_weights()] == [tuple(w.shape) for w in k_model.get_weights()]
    f_model.set_weights(k_model.get_weights())
    x = np.random.RandomState(0).randn(11, 6).astype(np.float32) * 2.0
    got, want = f_model.predict(x), k_model.predict(x, verbose=0)
    for key in ("hidden", "out"):
        np.testing.assert_allclose(got[key], want[key], atol=1e-5, rtol=0)
