"""Normalization, Rescaling, LayerNormalization and UnitNormalization (engine kinds
``normalization``, ``rescaling``, ``layer_normalization``, ``unit_normalization``):
against NumPy, gradients by central differences in float64, the model file, and
Keras 3 (torch backend) on the same weights where Keras is installed."""
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
X = (RNG.standard_normal((12, 4)) * [1.0, 3.0, 0.5, 2.0] + [0.0, 5.0, -1.0, 2.0]).astype(np.float32)
Y = RNG.standard_normal((12, 2)).astype(np.float32)


def _model(K, make, shape=(4,), functional=True):
    if functional:
        inp = K.Input(shape=shape, name="x")
        h = make(K)(K.layers.Dense(5, name="d")(inp))
        return K.Model(inp, K.layers.Dense(2, name="o")(h))
    return K.Sequential([K.Input(shape=shape), K.layers.Dense(5, name="d"), make(K), K.layers.Dense(2, name="o")])


def _perturbed(weights, seed=1):
    rng = np.random.default_rng(seed)
    return [w + rng.uniform(-0.3, 0.3, w.shape).astype(w.dtype) if w.dtype.kind == "f" else w for w in weights]


def _gradcheck(make, shape=(4,), rows=7, after=None):
    fastmlp.config.set_floatx("float64")
    try:
        model = _model(fastmlp, make, shape)
        model.compile(optimizer="sgd", loss="mse")
        model.set_weights(_perturbed(model.get_weights(), 3))
        if after:
            after(model)
        rng = np.random.default_rng(4)
        Xg, Yg = rng.standard_normal((rows,) + shape), rng.standard_normal((rows, 2))
        specs = model._loss_specs()
        f = lambda p: model._net.loss_and_grads(p, [Xg], [Yg], [None], None, specs)   # noqa: E731
        ref.assert_gradient_by_central_difference(f, model._params, model._variables)
        # the gradient with respect to the layer's input, through the first Dense's kernel
        return model
    finally:
        fastmlp.config.set_floatx("float32")


def _save_load(model, tmp_path, x):
    path = os.path.join(tmp_path, "m.fmlp")
    model.save(path)
    loaded = fastmlp.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert [w.shape for w in loaded.get_weights()] == [w.shape for w in model.get_weights()]
    return loaded


# ---------------------------------------------------------------- Normalization
def test_normalization_adapt_on_an_array_sets_the_per_feature_mean_and_biased_variance():
    layer = layers.Normalization()
    layer.adapt(X)
    mean, var, count = layer.get_weights()
    np.testing.assert_allclose(mean, X.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(var, X.var(axis=0), rtol=1e-5)
    assert count.shape == () and count == 0
    want = (X - X.mean(axis=0)) / np.sqrt(X.var(axis=0))
    np.testing.assert_allclose(layer(X), want, rtol=1e-5, atol=1e-5)


class _Batches:
    """A PyDataset-like object: __len__ and __getitem__ giving (x, y) batches."""

    def __init__(self, x, size):
        self.x, self.size = x, size

    def __len__(self):
        return -(-len(self.x) // self.size)

    def __getitem__(self, i):
        sl = slice(i * self.size, (i + 1) * self.size)
        return self.x[sl], Y[sl]


@pytest.mark.parametrize("data", [
    lambda: [X[:5], X[5:9], X[9:]],
    lambda: (b for b in [X[:3], X[3:]]),
    lambda: _Batches(X, 5),
])
def test_normalization_adapt_merges_batches_to_the_statistics_of_the_whole_data(data):
    layer = layers.Normalization()
    layer.adapt(data())
    np.testing.assert_allclose(layer.mean, X.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.variance, X.var(axis=0), rtol=1e-5)


def test_normalization_computes_keras_formula_with_the_epsilon_floor_and_invert():
    mean, var = np.array([1.0, -2.0, 0.5, 0.0]), np.array([4.0, 0.25, 0.0, 1e-20])
    x = X[:3]
    s = np.maximum(np.sqrt(var), 1e-7)
    model = fastmlp.Sequential([fastmlp.Input(shape=(4,)), layers.Normalization(mean=mean, variance=var),
                                layers.Dense(2, kernel_initializer="ones")])
    hidden = (x - mean) / s
    np.testing.assert_allclose(model.layers[0](x), hidden, rtol=1e-6)
    np.testing.assert_allclose(model.predict(x), hidden @ np.ones((4, 2)), rtol=1e-5)
    inv = fastmlp.Sequential([fastmlp.Input(shape=(4,)), layers.Normalization(mean=mean, variance=var, invert=True),
                              layers.Dense(2, kernel_initializer="ones")])
    np.testing.assert_allclose(inv.predict(x), (mean + x * s) @ np.ones((4, 2)), rtol=1e-5)
    # given statistics are config, not weights (as in Keras)
    assert model.layers[0].get_weights() == [] and len(model.get_weights()) == 2


def test_normalization_repeats_its_statistics_along_the_rows_of_multi_axis_samples():
    x = RNG.standard_normal((6, 3, 4)).astype(np.float32)
    norm = layers.Normalization()
    norm.adapt(x)
    assert norm.mean.shape == (4,)
    inp = fastmlp.Input(shape=(3, 4))
    model = fastmlp.Model(inp, layers.Dense(2, kernel_initializer="ones")(layers.Flatten()(norm(inp))))
    flat = norm(x).reshape(6, -1)
    np.testing.assert_allclose(model.predict(x), flat @ np.ones((12, 2)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("invert", [False, True])
def test_normalization_gradients_match_central_differences(invert):
    def after(model):
        model.get_layer("norm").adapt(np.random.default_rng(5).standard_normal((20, 5)) * 2 + 1)
    _gradcheck(lambda K: K.layers.Normalization(name="norm", invert=invert), after=after)


def test_a_model_with_normalization_saves_and_loads_adapted_and_given_statistics(tmp_path):
    for make in (lambda: layers.Normalization(name="norm"),
                 lambda: layers.Normalization(mean=[1, 2, 3, 4], variance=[1, 2, 3, 4], invert=True, name="norm")):
        model = fastmlp.Sequential([fastmlp.Input(shape=(4,)), make(), layers.Dense(2)])
        if model.layers[0].input_mean is None:
            model.layers[0].adapt(X)
        model.compile(optimizer="adam", loss="mse")
        model.fit(X, Y, epochs=1, verbose=0)
        loaded = _save_load(model, tmp_path, X)
        assert loaded.layers[0].get_config() == model.layers[0].get_config()


def test_normalization_refuses_what_it_does_not_support_by_name():
    with pytest.raises(ValueError, match="axis"):
        layers.Normalization(axis=None)
    with pytest.raises(ValueError, match="axis"):
        layers.Normalization(axis=(1, 2))
    with pytest.raises(ValueError, match="axis"):
        layers.Normalization(axis=1)(fastmlp.Input(shape=(3, 4)))
    with pytest.raises(ValueError, match="variance"):
        layers.Normalization(mean=1.0)
    with pytest.raises(ValueError, match="same shape"):
        layers.Normalization(mean=[1.0, 2.0], variance=1.0)
    with pytest.raises(ValueError, match="features"):
        layers.Normalization(mean=[1.0, 2.0], variance=[1.0, 1.0])(fastmlp.Input(shape=(3,)))
    layer = layers.Normalization()
    with pytest.raises(ValueError, match="no data"):
        layer.adapt([])
    with pytest.raises(TypeError, match="Unsupported data type"):
        layer.adapt("abc")
    with pytest.raises(ValueError, match="NaN"):
        layer.adapt(np.array([[1.0, np.nan]]))
    layer.adapt(X)
    with pytest.raises(ValueError, match="features"):
        layer.adapt(X[:, :3])
    with pytest.raises(ValueError, match="adapt"):
        layers.Normalization(mean=0.0, variance=1.0).adapt(X)


# ---------------------------------------------------------------- Rescaling
def test_rescaling_scales_and_shifts_by_numbers_and_per_feature_arrays():
    for scale, offset in ((1 / 255.0, 0.0), ([1.0, 2.0, -3.0, 0.5], -1.0), (2.0, np.array([0.1, 0.2, 0.3, 0.4]))):
        model = fastmlp.Sequential([fastmlp.Input(shape=(4,)), layers.Rescaling(scale, offset),
                                    layers.Dense(2, kernel_initializer="ones")])
        want = X * np.asarray(scale) + np.asarray(offset)
        np.testing.assert_allclose(model.predict(X), want @ np.ones((4, 2)), rtol=1e-5, atol=1e-5)
        assert model.layers[0].get_weights() == []


def test_rescaling_gradients_match_central_differences():
    _gradcheck(lambda K: K.layers.Rescaling([0.5, -2.0, 3.0, 1.5, 1.0], offset=0.25))


def test_a_model_with_rescaling_saves_and_loads(tmp_path):
    model = fastmlp.Sequential([fastmlp.Input(shape=(4,)), layers.Rescaling([1.0, 2.0, 3.0, 4.0], 0.5),
                                layers.Dense(2)])
    loaded = _save_load(model, tmp_path, X)
    assert loaded.layers[0].get_config()["scale"] == [1.0, 2.0, 3.0, 4.0]


def test_rescaling_refuses_bad_scales_by_name():
    with pytest.raises(ValueError, match="scale"):
        layers.Rescaling("big")
    with pytest.raises(ValueError, match="offset"):
        layers.Rescaling(1.0, offset=float("nan"))
    with pytest.raises(ValueError, match="scale"):
        layers.Rescaling([1.0, 2.0, 3.0])(fastmlp.Input(shape=(4,)))


# ---------------------------------------------------------------- LayerNormalization
def test_layer_normalization_normalizes_each_sample_over_its_features():
    layer = layers.LayerNormalization(epsilon=1e-3)
    out = layer(X)
    want = (X - X.mean(axis=1, keepdims=True)) / np.sqrt(X.var(axis=1, keepdims=True) + 1e-3)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)
    model = fastmlp.Sequential([fastmlp.Input(shape=(4,)), layers.LayerNormalization(name="ln"),
                                layers.Dense(2, kernel_initializer="ones")])
    ln = model.get_layer("ln")
    ln.set_weights([np.array([1.0, 2.0, 0.5, -1.0]), np.array([0.1, 0.0, -0.2, 0.3])])
    np.testing.assert_allclose(model.predict(X), ln(X) @ np.ones((4, 2)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs", [{}, {"center": False}, {"scale": False}, {"center": False, "scale": False}])
def test_layer_normalization_gradients_match_central_differences(kwargs):
    _gradcheck(lambda K: K.layers.LayerNormalization(**kwargs))


def test_layer_normalization_gradients_over_the_last_axis_of_multi_axis_samples():
    fastmlp.config.set_floatx("float64")
    try:
        inp = fastmlp.Input(shape=(3, 4))
        h = layers.LayerNormalization(name="ln")(inp)
        model = fastmlp.Model(inp, layers.Dense(2)(layers.Flatten()(h)))
        model.compile(optimizer="sgd", loss="mse")
        model.set_weights(_perturbed(model.get_weights(), 6))
        rng = np.random.default_rng(7)
        Xg, Yg = rng.standard_normal((5, 3, 4)), rng.standard_normal((5, 2))
        ln = model.get_layer("ln")
        np.testing.assert_allclose(model.predict(Xg), ln(Xg).reshape(5, -1) @ model.layers[-1].kernel
                                   + model.layers[-1].bias, rtol=1e-10)
        specs = model._loss_specs()
        ref.assert_gradient_by_central_difference(
            lambda p: model._net.loss_and_grads(p, [Xg.reshape(5, -1)], [Yg], [None], None, specs),
            model._params, model._variables)
    finally:
        fastmlp.config.set_floatx("float32")




def test_a_model_with_layer_normalization_saves_and_loads(tmp_path):
    model = _model(fastmlp, lambda K: K.layers.LayerNormalization(center=False, gamma_regularizer="l2"))
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, Y, epochs=2, verbose=0)
    loaded = _save_load(model, tmp_path, X)
    assert loaded.layers[2].get_config() == model.layers[2].get_config()


def test_layer_normalization_refuses_what_it_does_not_support_by_name():
    with pytest.raises(ValueError, match="rms_scaling"):
        layers.LayerNormalization(rms_scaling=True)
    with pytest.raises(ValueError, match="gamma_constraint"):
        layers.LayerNormalization(gamma_constraint="non_neg")
    with pytest.raises(ValueError, match="axis"):
        layers.LayerNormalization(axis=[1, 2])
    with pytest.raises(ValueError, match="axis"):
        layers.LayerNormalization(axis=1)(fastmlp.Input(shape=(3, 4)))
    with pytest.raises(ValueError, match="epsilon"):
        layers.LayerNormalization(epsilon=-1.0)
    with pytest.raises(TypeError, match="axis"):
        layers.LayerNormalization(axis="last")


# ---------------------------------------------------------------- UnitNormalization
def test_unit_normalization_divides_each_sample_by_its_l2_norm_and_bounds_zero_rows():
    x = np.vstack([X[:3], np.zeros((1, 4), np.float32)])
    out = layers.UnitNormalization()(x)
    np.testing.assert_allclose(out[:3], X[:3] / np.linalg.norm(X[:3], axis=1, keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(out[3], 0)
    model = fastmlp.Sequential([fastmlp.Input(shape=(4,)), layers.UnitNormalization(),
                                layers.Dense(2, kernel_initializer="ones")])
    np.testing.assert_allclose(model.predict(x), out @ np.ones((4, 2)), rtol=1e-5, atol=1e-6)


def test_unit_normalization_of_a_row_holding_a_nan_is_nan_as_in_keras():
    x = np.array([[0.5, np.nan, 1.0], [3.0, 4.0, 0.0]], np.float32)
    inp = fastmlp.Input(shape=(3,))
    model = fastmlp.Model(inp, layers.UnitNormalization()(inp))
    out = model.predict(x, verbose=0)
    assert np.isnan(out[0]).all()
    np.testing.assert_allclose(out[1], [0.6, 0.8, 0.0], rtol=1e-6)
    assert np.isnan(np.asarray(layers.UnitNormalization()(x))[0]).all()


def test_unit_normalization_gradients_match_central_differences():
    _gradcheck(lambda K: K.layers.UnitNormalization())


def test_a_model_with_unit_normalization_saves_and_loads(tmp_path):
    _save_load(_model(fastmlp, lambda K: K.layers.UnitNormalization()), tmp_path, X)


# ---------------------------------------------------------------- against Keras
CASES = {
    "normalization_given": lambda K: K.layers.Normalization(mean=[0.1, -0.2, 0.3, 0.5, 0.0],
                                                            variance=[1.0, 2.0, 0.5, 4.0, 0.0]),
    "normalization_inverted": lambda K: K.layers.Normalization(mean=0.5, variance=2.0, invert=True),
    "rescaling": lambda K: K.layers.Rescaling([1.0, 0.5, -1.0, 2.0, 0.25], offset=0.5),
    "rescaling_scalar": lambda K: K.layers.Rescaling(1 / 8.0),
    "layer_normalization": lambda K: K.layers.LayerNormalization(),
    "layer_normalization_no_center": lambda K: K.layers.LayerNormalization(center=False, epsilon=1e-5),
    "layer_normalization_no_scale": lambda K: K.layers.LayerNormalization(scale=False),
    "unit_normalization": lambda K: K.layers.UnitNormalization(),
}


@needs_keras
@pytest.mark.parametrize("case, functional", [(c, True) for c in sorted(CASES)] + [
    ("normalization_inverted", False), ("rescaling", False), ("layer_normalization", False),
    ("unit_normalization", False)])
def test_predict_and_fit_steps_match_keras_on_the_same_weights(case, functional):
    """Functional models train with SGD, Sequential ones with Adam."""
    make = CASES[case]
    keras.utils.set_random_seed(1)
    k_model = _model(keras, make, functional=functional)
    weights = _perturbed(k_model.get_weights())
    k_model.set_weights(weights)
    f_model = _model(fastmlp, make, functional=functional)
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


@needs_keras
@pytest.mark.parametrize("data", ["array", "list", "pydataset"])
def test_normalization_adapts_like_keras(data):
    """Keras 3.15 needs TensorFlow to adapt on anything but an array, so Keras adapts on the
    whole array and fastmlp on its batches: the merged statistics are those of the array."""
    def batches(K):
        if data == "array":
            return X
        if data == "list":
            return [X[:5], X[5:]]

        class DS(keras.utils.PyDataset):
            def __len__(self):
                return 3

            def __getitem__(self, i):
                return X[4 * i:4 * i + 4], Y[4 * i:4 * i + 4]
        return DS()
    k_layer, f_layer = keras.layers.Normalization(), layers.Normalization()
    k_layer.adapt(X)
    f_layer.adapt(batches(fastmlp))
    for a, b in zip(f_layer.get_weights(), k_layer.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f_layer(X), keras.ops.convert_to_numpy(k_layer(X)), atol=FORWARD_ATOL)
    # an adapted layer in a model: same weights list, same predictions
    k_model = keras.Sequential([keras.Input(shape=(4,)), k_layer, keras.layers.Dense(2)])
    f_model = fastmlp.Sequential([fastmlp.Input(shape=(4,)), f_layer, layers.Dense(2)])
    f_model.set_weights(k_model.get_weights())
    np.testing.assert_allclose(f_model.predict(X), k_model.predict(X, verbose=0), atol=FORWARD_ATOL)


@needs_keras
@pytest.mark.parametrize("case", sorted(CASES))
def test_configs_round_trip_through_keras_keys(case):
    make = CASES[case]
    k_layer, f_layer = make(keras), make(fastmlp)
    k_cfg, f_cfg = k_layer.get_config(), f_layer.get_config()
    assert set(f_cfg) == set(k_cfg)
    for key in set(k_cfg) - {"name", "dtype"}:
        k_val = keras.saving.deserialize_keras_object(k_cfg[key]) if isinstance(k_cfg[key], dict) and \
            k_cfg[key].get("class_name") == "__numpy__" else k_cfg[key]
        if not isinstance(k_val, dict):
            assert np.array_equal(np.asarray(f_cfg[key], dtype=object if k_val is None else None),
                                  np.asarray(k_val, dtype=object if k_val is None else None)), key
    again = type(f_layer).from_config(f_cfg)
    assert again.get_config() == f_cfg


@pytest.mark.parametrize("make", [lambda: layers.Rescaling(1 / 255.0), lambda: layers.Normalization(),
                                  lambda: layers.LayerNormalization(), lambda: layers.UnitNormalization()])
def test_a_sequential_model_may_run_these_layers_on_multi_axis_samples_before_flattening(make):
    x = np.random.default_rng(8).integers(0, 255, (6, 3, 4)).astype(np.float32)
    first = make()
    if isinstance(first, layers.Normalization):
        first.adapt(x)
    model = fastmlp.Sequential([fastmlp.Input(shape=(3, 4)), first, layers.Flatten(),
                                layers.Dense(2, kernel_initializer="ones")])
    np.testing.assert_allclose(model.predict(x), first(x).reshape(6, -1) @ np.ones((12, 2)), rtol=1e-5, atol=1e-4)
    flat = fastmlp.Sequential([fastmlp.Input(shape=(3, 4)), layers.Rescaling(2.0), layers.Reshape((-1,)),
                               layers.Dense(2, kernel_initializer="ones")])
    np.testing.assert_allclose(flat.predict(x), (2 * x).reshape(6, -1) @ np.ones((12, 2)), rtol=1e-5)


@needs_keras
def test_an_image_style_sequential_with_rescaling_predicts_like_keras():
    x = np.random.default_rng(9).integers(0, 255, (10, 4, 3)).astype(np.float32)

    def build(K):
        return K.Sequential([K.Input(shape=(4, 3)), K.layers.Rescaling(1 / 255.0), K.layers.LayerNormalization(),
                             K.layers.Flatten(), K.layers.Dense(3, activation="softmax")])
    k_model, f_model = build(keras), build(fastmlp)
    f_model.set_weights(_perturbed(k_model.get_weights()))
    k_model.set_weights(f_model.get_weights())
    np.testing.assert_allclose(f_model.predict(x), k_model.predict(x, verbose=0), atol=FORWARD_ATOL)
