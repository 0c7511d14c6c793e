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


@pytest.mark.filterwarnings("ignore:Layer InputLayer does not have")
def test_keras_files_of_int8_models_are_refused_both_ways_rather_than_read_or_written_as_float(tmp_path):
    """An int8 model written as a float Keras file would load as another model (0.016 apart);
    Keras's own int8 files hold a quantized dtype policy fastmlp's reader does not take."""
    keras.utils.set_random_seed(0)
    km = _build(keras)
    km.quantize("int8")
    km.save(tmp_path / "k.keras")
    with pytest.raises(fastmlp.FormatError, match=r"Keras's quantized layers \(QuantizedDTypePolicy, mode 'int8'\)"):
        fastmlp.load_model(tmp_path / "k.keras")
    fm = _build(fastmlp)
    fm.quantize("int8")
    for save in (lambda: fm.save(tmp_path / "f.keras"), lambda: fm.save(tmp_path / "f.h5"),
                 lambda: fm.save(tmp_path / "folder", zipped=False), lambda: fm.save_weights(tmp_path / "w.weights.h5"),
                 lambda: fm.save_weights(tmp_path / "w.h5")):
        with pytest.raises(NotImplementedError, match=r"Keras files of float models; the Dense layers \['dense"):
            save()
    assert sorted(os.listdir(tmp_path)) == ["k.keras"]
    fm.save(tmp_path / "f.fmlp")   # (fastmlp's own file keeps them int8)
    assert fastmlp.load_model(tmp_path / "f.fmlp").layers[0]._int8 is not None
