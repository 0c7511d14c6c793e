"""Merge layers (engine kinds add, subtract, multiply, average, maximum, minimum in
csrc/kinds/merge.c; concatenate in csrc/kinds/concatenate.c): forward against NumPy
in float32 and float64, gradients by central differences in float64 between
trainable Dense layers, calls on arrays, the errors they raise, saving and configs."""
import numpy as np
import pytest

import fastmlp
from fastmlp import layers

import reference as ref

# kind -> (layer class name, NumPy of a list of arrays)
MERGES = {
    "add": ("Add", lambda xs: np.sum(xs, axis=0)),
    "subtract": ("Subtract", lambda xs: xs[0] - xs[1]),
    "multiply": ("Multiply", lambda xs: np.prod(xs, axis=0)),
    "average": ("Average", lambda xs: np.mean(xs, axis=0)),
    "maximum": ("Maximum", lambda xs: np.max(xs, axis=0)),
    "minimum": ("Minimum", lambda xs: np.min(xs, axis=0)),
    "concatenate": ("Concatenate", lambda xs: np.concatenate(xs, axis=-1)),
}
# every kind with 2 inputs, every kind but Subtract with 3 as well
CASES = [(kind, n) for kind in MERGES for n in (2, 3) if not (kind == "subtract" and n == 3)]
BRANCH_ACTS = ["tanh", "sigmoid", "elu"]


@pytest.fixture
def float64():
    fastmlp.config.set_floatx("float64")
    yield
    fastmlp.config.set_floatx("float32")


def _merge_model(kind, n, seed=0):
    """x (5) -> n Dense branches (4 units, different activations) -> merge -> Dense(3)."""
    fastmlp.utils.set_random_seed(seed)
    x = fastmlp.Input(shape=(5,), name="x")
    branches = [layers.Dense(4, activation=BRANCH_ACTS[i], name=f"b{i}")(x) for i in range(n)]
    merged = getattr(layers, MERGES[kind][0])(name="merged")(branches)
    return fastmlp.Model(x, layers.Dense(3, name="out")(merged))


def _randomize(model, seed=1, low=-0.9, high=0.9):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(low, high, w.shape) for w in model.get_weights()])


def _numpy_forward(model, kind, n, x):
    """The model of _merge_model computed in float64 NumPy from its weights."""
    x = np.asarray(x, np.float64)
    branches = []
    for i in range(n):
        k, b = model.get_layer(f"b{i}").get_weights()
        branches.append(ref.activation(BRANCH_ACTS[i], x @ k + b))
    k, b = model.get_layer("out").get_weights()
    return MERGES[kind][1](branches) @ k + b


# --------------------------------------------------------------------------- forward
@pytest.mark.parametrize("dtype, tol", [("float32", 1e-5), ("float64", 1e-12)])
@pytest.mark.parametrize("kind, n", CASES)
def test_every_merge_predicts_what_numpy_computes(kind, n, dtype, tol):
    fastmlp.config.set_floatx(dtype)
    try:
        model = _merge_model(kind, n)
        _randomize(model)
        assert model.dtype == dtype
        x = np.random.default_rng(2).standard_normal((9, 5)).astype(dtype)
        got = model.predict(x, verbose=0)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, _numpy_forward(model, kind, n, x), rtol=tol, atol=tol)
    finally:
        fastmlp.config.set_floatx("float32")


@pytest.mark.parametrize("kind, n", CASES)
def test_every_merge_called_on_arrays_computes_what_numpy_computes(kind, n):
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((4, 3)).astype(np.float32) for _ in range(n)]
    layer = getattr(layers, MERGES[kind][0])()
    np.testing.assert_allclose(layer(xs), MERGES[kind][1](xs), rtol=1e-6, atol=1e-6)


def test_merge_outputs_have_the_expected_shapes():
    a, b = fastmlp.Input(shape=(4,)), fastmlp.Input(shape=(4,))
    for kind in MERGES:
        out = getattr(layers, kind)([a, b])
        assert out.shape == ((None, 8) if kind == "concatenate" else (None, 4)), kind
    c = fastmlp.Input(shape=(2,))
    assert layers.concatenate([a, c, b]).shape == (None, 10)


# --------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("kind, n", CASES)
def test_every_merge_between_dense_layers_has_gradients_matching_central_differences(kind, n, float64):
    model = _merge_model(kind, n)
    model.compile(optimizer="sgd", loss="mse")
    _randomize(model)
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((7, 5)), rng.standard_normal((7, 3))
    specs = model._loss_specs()
    f = lambda p: model._net.loss_and_grads(p, [X], [Y], [None], None, specs)   # noqa: E731
    _, grads = f(model._params.copy())
    # every branch's weights get a gradient through the merge (none is cut off)
    for i in range(n):
        off, size = model._variables[2 * i][:2]
        assert np.any(grads[off:off + size] != 0), f"branch b{i} got no gradient through {kind}"
    ref.assert_gradient_by_central_difference(f, model._params, model._variables)


@pytest.mark.parametrize("kind", ["maximum", "minimum"])
def test_maximum_and_minimum_send_each_element_s_gradient_to_the_input_that_won(kind, float64):
    x = fastmlp.Input(shape=(4,), name="x")
    a = layers.Dense(4, name="a")(x)
    b = layers.Dense(4, name="b")(x)
    model = fastmlp.Model(x, getattr(layers, kind)([a, b]))
    model.compile(optimizer="sgd", loss="mse")
    _randomize(model)
    X = np.random.default_rng(5).standard_normal((6, 4))
    Y = np.zeros((6, 4))
    _, grads = model._net.loss_and_grads(model._params, [X], [Y], [None], None, model._loss_specs())
    A = X @ model.get_layer("a").kernel + model.get_layer("a").bias
    B = X @ model.get_layer("b").kernel + model.get_layer("b").bias
    out = np.maximum(A, B) if kind == "maximum" else np.minimum(A, B)
    wins_a = A == out
    assert 0 < wins_a.sum() < wins_a.size, "the test needs elements won by each input"
    g = 2 * out / out.size      # d mse / d out
    for name, mask in (("a", wins_a), ("b", ~wins_a)):
        layer = model.get_layer(name)
        bias_off = next(w.offset for w in model._plan.weights if w.layer is layer and w.spec.name == "bias")
        np.testing.assert_allclose(grads[bias_off:bias_off + 4], (g * mask).sum(axis=0), rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------- Concatenate
def test_keras_style_concatenate_axis_1_on_2d_inputs_joins_the_features():
    a, b = fastmlp.Input(shape=(2,), name="a"), fastmlp.Input(shape=(3,), name="b")
    joined = layers.Concatenate(axis=1, name="joined")([a, b])
    assert joined.shape == (None, 5)
    model = fastmlp.Model([a, b], layers.Dense(2, name="o")(joined))
    rng = np.random.default_rng(6)
    xa, xb = rng.standard_normal((4, 2)).astype(np.float32), rng.standard_normal((4, 3)).astype(np.float32)
    k, bias = model.get_layer("o").get_weights()
    np.testing.assert_allclose(model.predict([xa, xb], verbose=0), np.hstack([xa, xb]) @ k + bias,
                               rtol=1e-5, atol=1e-6)
    assert model.get_layer("joined").get_config()["axis"] == 1
    again = fastmlp.models.from_bytes(model.to_bytes())
    np.testing.assert_array_equal(again.predict([xa, xb], verbose=0), model.predict([xa, xb], verbose=0))


def test_concatenate_refuses_an_axis_other_than_the_features_naming_it():
    for axis in (0, 2, -2):
        with pytest.raises(ValueError, match=f"axis={axis}"):
            layers.Concatenate(axis=axis)


# --------------------------------------------------------------------------- errors
def test_subtract_with_three_inputs_raises_naming_the_layer():
    x = fastmlp.Input(shape=(3,))
    with pytest.raises(ValueError, match=r"'three_way'.*exactly 2 inputs"):
        layers.Subtract(name="three_way")([x, x, x])
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        layers.subtract([x, x, x])
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        layers.Subtract()([np.ones((2, 3))] * 3)


@pytest.mark.parametrize("kind", [k for k in MERGES if k != "concatenate"])
def test_a_merge_of_mismatched_shapes_raises_naming_the_layer_and_the_shapes(kind):
    a, b = fastmlp.Input(shape=(3,)), fastmlp.Input(shape=(4,))
    with pytest.raises(ValueError, match=rf"'mixed_{kind}'.*incompatible shapes.*\(3,\).*\(4,\)"):
        getattr(layers, MERGES[kind][0])(name=f"mixed_{kind}")([a, b])
    with pytest.raises(ValueError, match="incompatible shapes"):
        getattr(layers, MERGES[kind][0])()([np.ones((2, 3)), np.ones((2, 4))])


def test_a_merge_called_on_one_tensor_instead_of_a_list_raises_naming_the_layer():
    x = fastmlp.Input(shape=(3,))
    with pytest.raises(ValueError, match=r"'lonely'.*list of inputs"):
        layers.Add(name="lonely")(x)


def test_concatenate_of_inputs_that_are_not_flat_raises_naming_the_layer():
    a, b = fastmlp.Input(shape=(2, 3)), fastmlp.Input(shape=(2, 3))
    with pytest.raises(ValueError, match=r"'join3d'.*\(samples, features\)"):
        layers.Concatenate(name="join3d")([a, b])


def test_a_merge_layer_may_be_called_again_on_other_shapes_as_in_keras():
    """Layers without weights take any shapes on each call (Keras 3); one with weights does not."""
    x4, x6 = fastmlp.Input(shape=(4,), name="x4"), fastmlp.Input(shape=(6,), name="x6")
    add, cat, relu, drop = layers.Add(), layers.Concatenate(), layers.ReLU(), layers.Dropout(0.5)
    assert add([x4, x4]).shape == (None, 4)
    assert add([x6, x6, x6]).shape == (None, 6)
    assert cat([x4, x6]).shape == (None, 10)
    assert cat([x6, x6, x4]).shape == (None, 16)
    assert relu(x4).shape == (None, 4) and relu(x6).shape == (None, 6)
    assert drop(x4).shape == (None, 4) and drop(x6).shape == (None, 6)
    model = fastmlp.Model([x4, x6], [add([relu(x4), x4]), cat([relu(x6), x4])])
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((3, 6)).astype(np.float32)
    p, q = model.predict([a, b], verbose=0)
    np.testing.assert_allclose(p, np.maximum(a, 0) + a, rtol=1e-6)
    np.testing.assert_allclose(q, np.hstack([np.maximum(b, 0), a]), rtol=1e-6)
    bn = layers.BatchNormalization(name="bn_once")
    bn(x4)
    with pytest.raises(ValueError, match="'bn_once'"):
        bn(x6)


# --------------------------------------------------------------------------- saving and configs
@pytest.mark.parametrize("kind, n", [(k, 3 if k != "subtract" else 2) for k in MERGES])
def test_a_model_with_each_merge_saves_loads_and_round_trips_its_config(kind, n, tmp_path):
    model = _merge_model(kind, n)
    _randomize(model)
    x = np.random.default_rng(8).standard_normal((5, 5)).astype(np.float32)
    want = model.predict(x, verbose=0)
    path = str(tmp_path / f"{kind}.fmlp")
    model.save(path)
    loaded = fastmlp.load_model(path)
    assert type(loaded.get_layer("merged")).__name__ == MERGES[kind][0]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), want)
    np.testing.assert_array_equal(fastmlp.models.from_bytes(model.to_bytes()).predict(x, verbose=0), want)
    for clone in (fastmlp.Model.from_config(model.get_config()),
                  fastmlp.models.model_from_json(model.to_json())):
        clone.set_weights(model.get_weights())
        np.testing.assert_array_equal(clone.predict(x, verbose=0), want)
