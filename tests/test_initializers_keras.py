"""Initializers: Keras 3's names, aliases, configs and distributions (Keras as the oracle
where installed), Identity and Orthogonal exactly, array-valued Constant."""
import inspect
import os

import numpy as np
import pytest

import fastmlp
from fastmlp import initializers as fi

DENSE_INITIALIZERS = ["Zeros", "Ones", "Constant", "RandomNormal", "RandomUniform", "TruncatedNormal",
                      "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "LecunNormal", "LecunUniform",
                      "VarianceScaling", "Orthogonal", "Identity", "OrthogonalInitializer", "IdentityInitializer"]
ALIASES = {"zeros": "Zeros", "ones": "Ones", "constant": "Constant", "random_normal": "RandomNormal",
           "random_uniform": "RandomUniform", "truncated_normal": "TruncatedNormal",
           "glorot_normal": "GlorotNormal", "glorot_uniform": "GlorotUniform", "he_normal": "HeNormal",
           "he_uniform": "HeUniform", "lecun_normal": "LecunNormal", "lecun_uniform": "LecunUniform",
           "variance_scaling": "VarianceScaling", "orthogonal": "Orthogonal", "identity": "Identity"}


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    return keras


# --------------------------------------------------------------------------- fastmlp only
def test_every_name_and_alias_exists_and_get_resolves_it():
    for name in DENSE_INITIALIZERS:
        assert inspect.isclass(getattr(fi, name)), name
    for alias, cls in ALIASES.items():
        assert getattr(fi, alias) is getattr(fi, cls)
        assert type(fi.get(alias)) is getattr(fi, cls)
        assert type(fi.get(cls)) is getattr(fi, cls)
    assert fi.IdentityInitializer is fi.Identity and fi.OrthogonalInitializer is fi.Orthogonal


def test_constant_takes_scalars_and_arrays_as_a_bias():
    pos, neg = 30, 970
    init = fi.Constant(np.log([pos / neg]))
    np.testing.assert_allclose(init((1,), "float32"), np.log([pos / neg]).astype("float32"))
    np.testing.assert_array_equal(fi.Constant(2)((2, 3)), np.full((2, 3), 2.0, "float32"))
    np.testing.assert_array_equal(fi.Constant([1.0, 2.0])((3, 2)), [[1, 2]] * 3)
    with pytest.raises(ValueError, match="broadcast"):
        fi.Constant([1.0, 2.0])((3,))
    with pytest.raises(ValueError, match="number"):
        fi.Constant("a")
    layer = fastmlp.layers.Dense(1, activation="sigmoid", bias_initializer=init)
    model = fastmlp.Sequential([fastmlp.Input((4,)), layer])
    np.testing.assert_allclose(layer.bias.numpy(), np.log([pos / neg]), rtol=1e-6)
    np.testing.assert_allclose(model.predict(np.zeros((2, 4)), verbose=0), pos / (pos + neg), rtol=1e-5)
    again = fi.get(fi.serialize(init))
    np.testing.assert_array_equal(again((1,)), init((1,)))
    # a model keeps it through its config and a file
    clone = fastmlp.Sequential.from_config(model.get_config())
    np.testing.assert_allclose(clone.layers[0].bias.numpy(), np.log([pos / neg]), rtol=1e-6)
    restored = fastmlp.models.from_bytes(model.to_bytes())
    assert isinstance(restored.layers[0].bias_initializer, fi.Constant)


def test_identity_is_gain_times_eye_for_any_2d_shape():
    np.testing.assert_array_equal(fi.Identity()((3, 3)), np.eye(3, dtype="float32"))
    np.testing.assert_array_equal(fi.Identity(gain=2.5)((2, 4)), 2.5 * np.eye(2, 4, dtype="float32"))
    with pytest.raises(ValueError, match="2D"):
        fi.Identity()((3,))


@pytest.mark.parametrize("shape", [(5, 5), (8, 3), (3, 8), (2, 3, 4)])
def test_orthogonal_rows_or_columns_are_orthonormal_times_gain(shape):
    q = fi.Orthogonal(gain=1.5, seed=3)(shape, "float64").reshape(-1, shape[-1])
    small = min(q.shape)
    gram = q.T @ q if q.shape[0] >= q.shape[1] else q @ q.T
    np.testing.assert_allclose(gram, 1.5 ** 2 * np.eye(small), atol=1e-12)
    np.testing.assert_array_equal(fi.Orthogonal(seed=3)(shape), fi.Orthogonal(seed=3)(shape))
    with pytest.raises(ValueError, match="two-dimensional"):
        fi.Orthogonal()((4,))


def test_a_python_function_initializer_runs_at_build():
    def halves(shape, dtype=None):
        return np.full(shape, 0.5, dtype=dtype)
    layer = fastmlp.layers.Dense(2, kernel_initializer=halves)
    layer.build((None, 3))
    np.testing.assert_array_equal(layer.kernel.numpy(), np.full((3, 2), 0.5))


@pytest.mark.parametrize("name,std,limit", [
    ("GlorotUniform", None, np.sqrt(6 / (300 + 200))), ("HeUniform", None, np.sqrt(6 / 300)),
    ("LecunUniform", None, np.sqrt(3 / 300)), ("GlorotNormal", np.sqrt(2 / 500), None),
    ("HeNormal", np.sqrt(2 / 300), None), ("LecunNormal", np.sqrt(1 / 300), None)])
def test_variance_scaling_family_has_the_keras_variance(name, std, limit):
    w = getattr(fi, name)(seed=1)((300, 200), "float64")
    if limit is not None:
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
        np.testing.assert_allclose(w.std(), limit / np.sqrt(3), rtol=0.02)
    else:
        np.testing.assert_allclose(w.std(), std, rtol=0.02)
        assert np.abs(w).max() <= 2 * std / 0.87962566103423978 + 1e-12


def test_variance_scaling_axes():
    init = fi.VarianceScaling(scale=2.0, mode="fan_in", distribution="uniform", input_axes=[0, 1],
                              output_axes=[2], seed=0)
    w = init((10, 20, 5), "float64")
    assert np.abs(w).max() <= np.sqrt(3 * 2.0 / 200)
    assert init.get_config()["input_axes"] == [0, 1]
    with pytest.raises(ValueError, match="input_axes"):
        fi.VarianceScaling(input_axes=["a"])


# --------------------------------------------------------------------------- against Keras
def test_names_aliases_and_class_identity_match_keras():
    keras = _keras()
    for name in DENSE_INITIALIZERS + list(ALIASES):
        k = getattr(keras.initializers, name)
        f = getattr(fi, name)
        assert f.__name__ == k.__name__, name


CONFIG_CASES = [
    ("Zeros", {}), ("Ones", {}), ("Constant", {"value": 0.3}),
    ("RandomNormal", {"mean": 1.0, "stddev": 2.0, "seed": 4}),
    ("RandomUniform", {"minval": -1.0, "maxval": 2.0, "seed": 5}), ("TruncatedNormal", {"stddev": 0.5, "seed": 1}),
    ("GlorotNormal", {"seed": 2}), ("GlorotUniform", {}), ("HeNormal", {}), ("HeUniform", {"seed": 9}),
    ("LecunNormal", {}), ("LecunUniform", {}), ("Orthogonal", {"gain": 2.0, "seed": 3}),
    ("VarianceScaling", {"scale": 2.0, "mode": "fan_out", "distribution": "uniform", "seed": 8}),
    ("VarianceScaling", {"input_axes": [0], "output_axes": [1]}),
]


@pytest.mark.parametrize("name,kwargs", CONFIG_CASES)
def test_configs_match_keras(name, kwargs):
    keras = _keras()
    k = getattr(keras.initializers, name)(**kwargs)
    f = getattr(fi, name)(**kwargs)
    assert f.get_config() == k.get_config()
    assert fastmlp.saving.serialize_keras_object(f)["config"] == keras.saving.serialize_keras_object(k)["config"]
    assert type(fi.get(keras.saving.serialize_keras_object(k))) is type(f)   # Keras's dicts deserialize
    assert getattr(fi, name).from_config(k.get_config()).get_config() == k.get_config()


def test_identity_constant_and_array_constant_values_equal_keras():
    keras = _keras()
    conv = keras.ops.convert_to_numpy
    for shape, gain in (((3, 3), 1.0), ((2, 5), 0.5), ((5, 2), 3.0)):
        np.testing.assert_array_equal(fi.Identity(gain)(shape), conv(keras.initializers.Identity(gain)(shape)))
    value = np.log([0.3 / 0.7, 2.0])
    np.testing.assert_array_equal(fi.Constant(value)((3, 2)), conv(keras.initializers.Constant(value)((3, 2))))
    assert fastmlp.saving.serialize_keras_object(fi.Constant(value)) == \
        {**keras.saving.serialize_keras_object(keras.initializers.Constant(value)), "module": "fastmlp.initializers"}


@pytest.mark.parametrize("name,kwargs", [c for c in CONFIG_CASES if c[0] not in ("Zeros", "Ones", "Constant")])
def test_distributions_match_keras(name, kwargs):
    """Same family, moments and range as Keras's draws (different generators: statistics, not values)."""
    keras = _keras()
    shape = (400, 300)
    kw = {k: v for k, v in kwargs.items() if k != "seed"}
    k = keras.ops.convert_to_numpy(getattr(keras.initializers, name)(seed=11, **kw)(shape)).astype(np.float64)
    f = getattr(fi, name)(seed=11, **kw)(shape, "float64")
    assert f.shape == k.shape and f.dtype == np.float64
    np.testing.assert_allclose(f.mean(), k.mean(), atol=0.02 * max(k.std(), 1e-3) + 0.01 * abs(k.mean()))
    np.testing.assert_allclose(f.std(), k.std(), rtol=0.02)
    # tails by quantiles: Keras's torch truncated normal lets a rare draw past 2 std
    q = [0.001, 0.01, 0.5, 0.99, 0.999]
    np.testing.assert_allclose(np.quantile(f, q), np.quantile(k, q), atol=0.15 * k.std())
