"""Model.quantize("int8") against Keras 3's (torch backend) as the oracle: the same int8 kernels and
scales, and predictions within float rounding (Keras divides by its scales where fastmlp multiplies)."""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

import fastmlp  # noqa: E402


def _build(mod):
    return mod.Sequential([mod.Input((30,)), mod.layers.Dense(24, activation="relu"),
                           mod.layers.Dense(12, activation="tanh"), mod.layers.Dense(5)])


@pytest.mark.filterwarnings("ignore:Layer InputLayer does not have")
def test_quantize_int8_matches_keras():
    keras.utils.set_random_seed(0)
    km = _build(keras)
    fm = _build(fastmlp)
    fm.set_weights(km.get_weights())
    # rows whose largest magnitude is >= 2: Keras's epsilon (127 / (amax + 1e-7)) is then below
    # half an ulp of amax, so both quantize every input to the same integer
    x = np.random.default_rng(0).normal(size=(200, 30)).astype(np.float32) * 2
    x[:, 0] = 4
    km.quantize("int8")
    fm.quantize("int8")
    for kl, fl in zip(km.layers, fm.layers):
        np.testing.assert_array_equal(np.asarray(kl._kernel), fl._int8[0])
        np.testing.assert_allclose(1 / np.asarray(kl.kernel_scale), fl._int8[1], rtol=1e-6)
    np.testing.assert_allclose(fm.predict(x, verbose=0), np.asarray(km.predict(x, verbose=0)), atol=1e-5)
