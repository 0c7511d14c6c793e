"""fastmlp.utils helpers that Keras programs call: to_categorical, normalize."""
import os

import numpy as np
import pytest

import fastmlp

os.environ.setdefault("KERAS_BACKEND", "torch")


@pytest.mark.parametrize("labels, num_classes", [([0, 2, 1], None), (np.array([[1], [0]]), 3),
                                                 (np.array([[0, 1], [2, 0]]), None), (np.array([1.0, 0.0]), 2),
                                                 (np.array([], dtype=np.int64), 4)])
def test_to_categorical_gives_what_keras_gives(labels, num_classes):
    keras = pytest.importorskip("keras")
    want = keras.utils.to_categorical(labels, num_classes)
    got = fastmlp.utils.to_categorical(labels, num_classes)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_to_categorical_refuses_bad_labels_by_name():
    with pytest.raises(ValueError, match="non-negative"):
        fastmlp.utils.to_categorical([0, -1])
    with pytest.raises(ValueError, match="num_classes"):
        fastmlp.utils.to_categorical([0, 3], num_classes=3)
    with pytest.raises(ValueError, match="integer class labels"):
        fastmlp.utils.to_categorical([0.5])
    with pytest.raises(TypeError, match="integer class labels"):
        fastmlp.utils.to_categorical(["a"])
    with pytest.raises(ValueError, match="num_classes"):
        fastmlp.utils.to_categorical([0], num_classes=0)


@pytest.mark.parametrize("order", [1, 2])
def test_normalize_gives_what_keras_gives_and_leaves_zero_rows_zero(order):
    keras = pytest.importorskip("keras")
    x = np.random.default_rng(0).random((5, 3))
    x[2] = 0
    np.testing.assert_allclose(fastmlp.utils.normalize(x, -1, order), keras.utils.normalize(x, -1, order))
    assert not fastmlp.utils.normalize(x)[2].any()
