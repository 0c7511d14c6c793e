"""fastmlp.ops, the NumPy-backed subset of keras.ops, against Keras 3."""
import os

import numpy as np
import pytest

import fastmlp
from fastmlp import ops

os.environ.setdefault("KERAS_BACKEND", "torch")
X = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)

CASES = {
    "ones": lambda o: o.ones((2, 3)), "zeros": lambda o: o.zeros((2,)), "full": lambda o: o.full((2, 2), 3.0),
    "arange": lambda o: o.arange(1, 7, 2), "linspace": lambda o: o.linspace(0.0, 1.0, 5), "eye": lambda o: o.eye(3),
    "cast": lambda o: o.cast(X, "int32"), "sum": lambda o: o.sum(X, axis=1), "mean": lambda o: o.mean(X, axis=0),
    "max": lambda o: o.max(X, axis=-1, keepdims=True), "min": lambda o: o.min(X), "argmax": lambda o: o.argmax(X, 1),
    "argmin": lambda o: o.argmin(X, axis=0), "exp": lambda o: o.exp(X), "log": lambda o: o.log(np.abs(X) + 1),
    "sqrt": lambda o: o.sqrt(np.abs(X)), "square": lambda o: o.square(X), "abs": lambda o: o.abs(X),
    "clip": lambda o: o.clip(X, -0.5, 0.5), "where": lambda o: o.where(X > 0, X, 0.0),
    "top_k_values": lambda o: o.top_k(X, 2)[0], "top_k_indices": lambda o: o.top_k(X, 2)[1],
    "reshape": lambda o: o.reshape(X, (5, 3)), "expand_dims": lambda o: o.expand_dims(X, 1),
    "squeeze": lambda o: o.squeeze(X[:1]), "concatenate": lambda o: o.concatenate([X, X], axis=1),
    "stack": lambda o: o.stack([X, X]), "softmax": lambda o: o.softmax(X), "sigmoid": lambda o: o.sigmoid(X),
    "relu": lambda o: o.relu(X), "one_hot": lambda o: o.one_hot(np.array([0, 2, 1]), 3),
    "convert_to_numpy": lambda o: o.convert_to_numpy([[1.0, 2.0]]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_op_gives_what_keras_ops_gives(name):
    keras = pytest.importorskip("keras")
    want = keras.ops.convert_to_numpy(CASES[name](keras.ops))
    got = np.asarray(CASES[name](ops))
    assert got.shape == want.shape
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_shape_and_convert_to_tensor():
    assert ops.shape(X) == (3, 5)
    assert ops.convert_to_tensor([1, 2], dtype="float32").dtype == np.float32
    with pytest.raises(ValueError, match="sparse"):
        ops.convert_to_tensor([1], sparse=True)
    assert fastmlp.ops.matmul(X, X.T).shape == (3, 3)
