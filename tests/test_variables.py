"""Weights are ``fastmlp.Variable`` objects (Keras 3's ``keras.Variable``): named, with
paths, assignable in place (the engine sees the values at once), and usable as arrays.
Outputs of ``model(x)``/``layer(x)`` have ``.numpy()``; ``predict`` returns plain arrays."""
import os

import numpy as np
import pytest

import fastmlp
from fastmlp import layers


def _seq():
    return fastmlp.Sequential([fastmlp.Input((3,)), layers.Dense(4, activation="relu", name="dense"),
                               layers.BatchNormalization(name="batch_normalization"), layers.PReLU(name="p_re_lu"),
                               layers.Dense(2, name="dense_1")], name="sequential")


def test_every_weight_is_a_variable_with_keras_names_paths_dtypes_and_trainability():
    model = _seq()
    got = [(type(w), w.name, w.path, w.dtype, w.trainable, w.shape) for w in model.weights]
    V = fastmlp.Variable
    assert got == [
        (V, "kernel", "sequential/dense/kernel", "float32", True, (3, 4)),
        (V, "bias", "sequential/dense/bias", "float32", True, (4,)),
        (V, "gamma", "sequential/batch_normalization/gamma", "float32", True, (4,)),
        (V, "beta", "sequential/batch_normalization/beta", "float32", True, (4,)),
        (V, "moving_mean", "sequential/batch_normalization/moving_mean", "float32", False, (4,)),
        (V, "moving_variance", "sequential/batch_normalization/moving_variance", "float32", False, (4,)),
        (V, "alpha", "sequential/p_re_lu/alpha", "float32", True, (4,)),
        (V, "kernel", "sequential/dense_1/kernel", "float32", True, (4, 2)),
        (V, "bias", "sequential/dense_1/bias", "float32", True, (2,)),
    ]
    bn = model.layers[1]
    assert [id(w) for w in bn.weights] == [id(bn.gamma), id(bn.beta), id(bn.moving_mean), id(bn.moving_variance)]
    assert [w.path for w in model.non_trainable_weights] == ["sequential/batch_normalization/moving_mean",
                                                             "sequential/batch_normalization/moving_variance"]
    assert all(isinstance(w, V) for w in model.trainable_weights) and len(model.trainable_weights) == 7


def test_functional_and_standalone_layers_name_paths_by_the_layer_alone():
    inp = fastmlp.Input((3,))
    dense = layers.Dense(2, name="head")
    model = fastmlp.Model(inp, dense(inp), name="func")
    assert [w.path for w in model.weights] == ["head/kernel", "head/bias"]
    free = layers.Dense(3, name="free")
    free.build((None, 2))
    assert free.kernel.path == "free/kernel" and free.kernel.ndim == 2


def test_assign_writes_into_the_engine_in_place_and_predict_sees_it():
    model = _seq()
    x = np.random.default_rng(0).standard_normal((5, 3)).astype("float32")
    kernel = model.layers[-1].kernel
    params_before = model._params
    kernel.assign(np.zeros((4, 2)))
    model.layers[-1].bias.assign(np.array([1.5, -2.0]))
    np.testing.assert_array_equal(model.predict(x, verbose=0), np.tile([1.5, -2.0], (5, 1)))
    assert model._params is params_before                      # no rebuild, no new vector
    kernel.assign_add(np.ones((4, 2)))
    kernel.assign_sub(0.5 * np.ones((4, 2)))
    np.testing.assert_array_equal(kernel.numpy(), np.full((4, 2), 0.5, "float32"))
    np.testing.assert_array_equal(model.get_weights()[7], np.full((4, 2), 0.5, "float32"))


def test_fit_starts_from_assigned_values():
    """One SGD step on mse from assigned weights, worked out in NumPy."""
    inp = fastmlp.Input((2,))
    dense = layers.Dense(1)
    model = fastmlp.Model(inp, dense(inp))
    model.compile(optimizer=fastmlp.optimizers.SGD(0.1), loss="mse")
    model.predict(np.zeros((1, 2)), verbose=0)      # the engine exists before the assignment
    dense.kernel.assign([[1.0], [2.0]])
    dense.bias.assign([0.5])
    x = np.array([[1.0, 1.0], [2.0, 0.0]], "float32")
    y = np.array([[0.0], [1.0]], "float32")
    model.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0)
    w, b = np.array([[1.0], [2.0]]), np.array([0.5])
    err = x @ w + b - y
    w_new = w - 0.1 * x.T @ (2 * err / 2)
    b_new = b - 0.1 * (2 * err / 2).sum(0)
    np.testing.assert_allclose(dense.kernel.numpy(), w_new, rtol=1e-6)
    np.testing.assert_allclose(dense.bias.numpy(), b_new, rtol=1e-6)


def test_assign_checks_shape_and_type():
    layer = layers.Dense(2)
    layer.build((None, 3))
    with pytest.raises(ValueError, match="must match.*variable.shape=\\(3, 2\\).*value.shape=\\(2, 3\\)"):
        layer.kernel.assign(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="must match"):
        layer.bias.assign_add(np.zeros(3))
    with pytest.raises(TypeError, match="numeric"):
        layer.bias.assign(np.array(["a", "b"]))


def test_a_variable_works_as_an_array():
    layer = layers.Dense(2, kernel_initializer="ones", bias_initializer="zeros", name="dense")
    layer.build((None, 3))
    k = layer.kernel
    assert type(np.asarray(k)) is np.ndarray and np.asarray(k).dtype == np.float32
    for value in (k * 2, 2 * k, k + 1, 1 - k, -k, k / 2, k ** 2, np.ones((1, 3)) @ k, np.sqrt(k),
                  np.ones((3, 2)) - k, k[0], abs(k)):
        assert type(value) is np.ndarray
    np.testing.assert_array_equal(np.ones((1, 3)) @ k, [[3.0, 3.0]])
    assert (k == 1).all() and k.shape == (3, 2) and len(k) == 3 and k.size == 6
    assert float(layer.bias[0]) == 0.0
    value = k.value
    value[0, 0] = 7.0          # .value views the storage, .numpy() is a copy
    assert k.numpy()[0, 0] == 7.0
    copy = k.numpy()
    copy[0, 0] = 0.0
    assert k.numpy()[0, 0] == 7.0
    k[...] = 0.0               # item assignment writes in place too
    assert not np.asarray(k).any()
    assert "path=dense" in repr(k) and "shape=(3, 2)" in repr(k)


def test_variables_survive_a_model_taking_the_layer_over():
    """A Variable held by the user keeps tracking its weight when another model re-attaches the layer."""
    dense = layers.Dense(2)
    a_in = fastmlp.Input((3,))
    a = fastmlp.Model(a_in, dense(a_in))
    held = dense.kernel
    b_in = fastmlp.Input((3,))
    b = fastmlp.Model(b_in, layers.Dense(1)(dense(b_in)))
    b.predict(np.zeros((1, 3)), verbose=0)
    assert dense.kernel is held
    held.assign(np.zeros((3, 2)))
    dense.bias.assign(np.ones(2))
    np.testing.assert_array_equal(a.predict(np.ones((2, 3)), verbose=0), np.ones((2, 2)))


def test_set_and_get_weights_still_take_and_give_arrays():
    model = _seq()
    ws = model.get_weights()
    assert all(type(w) is np.ndarray for w in ws)
    ws[0] = np.full_like(ws[0], 0.25)
    model.set_weights(ws)
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), np.full((3, 4), 0.25))
    model.layers[0].set_weights([np.zeros((3, 4)), np.ones(4)])
    np.testing.assert_array_equal(model.layers[0].bias, np.ones(4))


def test_loaded_models_have_variables(tmp_path):
    model = _seq()
    path = str(tmp_path / "m.fmlp")
    fastmlp.saving.save_model(model, path) if hasattr(fastmlp.saving, "save_model") else model.save(path)
    loaded = fastmlp.load_model(path)
    assert [w.path for w in loaded.weights] == [w.path for w in model.weights]
    loaded.layers[-1].bias.assign([3.0, 4.0])
    loaded.layers[-1].kernel.assign(np.zeros((4, 2)))
    np.testing.assert_array_equal(loaded.predict(np.ones((2, 3)), verbose=0), [[3, 4], [3, 4]])


def test_standalone_variables():
    v = fastmlp.Variable(np.arange(3.0, dtype="float32"), name="v")
    assert v.dtype == "float32" and v.shape == (3,) and v.path == "v" and v.trainable
    v.assign_add([1, 1, 1])
    np.testing.assert_array_equal(v.numpy(), [1, 2, 3])
    w = fastmlp.Variable("ones", shape=(2, 2), trainable=False)
    assert w.dtype == "float32" and not w.trainable and w.name == "variable"
    np.testing.assert_array_equal(w, np.ones((2, 2)))
    with pytest.raises(ValueError, match="shape"):
        fastmlp.Variable("zeros")
    with pytest.raises(TypeError, match="numbers"):
        fastmlp.Variable(np.array(["a"]))
    with pytest.raises(ValueError, match="cannot contain"):
        fastmlp.Variable(1.0, name="a/b")


def test_layer_trainable_is_reflected_by_its_variables():
    layer = layers.Dense(2)
    layer.build((None, 3))
    layer.trainable = False
    assert not layer.kernel.trainable
    with pytest.raises(AttributeError, match="layer.trainable"):
        layer.kernel.trainable = True
    model = _seq()
    model.trainable = False                         # Keras: a frozen model's variables are not trainable
    assert not any(v.trainable for v in model.weights) and model.trainable_weights == []
    model.trainable = True
    assert [v.trainable for v in model.weights] == [True] * 4 + [False] * 2 + [True] * 3


def test_calls_on_arrays_return_tensors_with_numpy_but_predict_plain_arrays():
    model = _seq()
    x = np.ones((2, 3), "float32")
    out = model(x)
    assert isinstance(out, np.ndarray) and type(out.numpy()) is np.ndarray
    np.testing.assert_array_equal(out.numpy(), model.predict(x, verbose=0))
    assert type(model.predict(x, verbose=0)) is np.ndarray
    y = model.layers[0](x)
    assert type(y.numpy()) is np.ndarray and y.shape == (2, 4)
    inp = fastmlp.Input((3,))
    two = fastmlp.Model(inp, {"a": layers.Dense(1, name="a")(inp), "b": layers.Dense(2, name="b")(inp)})
    outs = two(x)
    assert type(outs["a"].numpy()) is np.ndarray and outs["b"].numpy().shape == (2, 2)


# --------------------------------------------------------------------------- against Keras
def test_variable_attributes_match_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")

    def build(k):
        return k.Sequential([k.Input((3,)), k.layers.Dense(4, name="d"), k.layers.BatchNormalization(name="bn"),
                             k.layers.PReLU(name="act")], name="stack")
    km, fm = build(keras), build(fastmlp)
    assert [(w.name, w.path, w.dtype, w.trainable, tuple(w.shape)) for w in km.weights] == \
           [(w.name, w.path, w.dtype, w.trainable, w.shape) for w in fm.weights]
    assert [w.path for w in km.trainable_weights] == [w.path for w in fm.trainable_weights]
    km.trainable = fm.trainable = False
    assert [w.trainable for w in km.weights] == [w.trainable for w in fm.weights]
    km.trainable = fm.trainable = True
    km.layers[0].kernel.assign(np.ones((3, 4)))
    fm.layers[0].kernel.assign(np.ones((3, 4)))
    with pytest.raises(ValueError, match="must match"):
        km.layers[0].kernel.assign(np.ones((4, 4)))
    with pytest.raises(ValueError, match="must match"):
        fm.layers[0].kernel.assign(np.ones((4, 4)))
    fm.set_weights([w.numpy() for w in km.weights])
    x = np.random.default_rng(1).standard_normal((4, 3)).astype("float32")
    np.testing.assert_allclose(fm(x).numpy(), keras.ops.convert_to_numpy(km(x)), atol=1e-5)
