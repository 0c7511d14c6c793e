"""GaussianDropout and AlphaDropout (engine kinds ``gaussian_dropout`` and
``alpha_dropout``): the statistics of their training noise and Keras's affine
constants, gradients that use the forward pass's mask, the identity at inference
(against Keras 3 on the same weights), configs and the model file.  Their random
streams are the engine's own (counter-based), so values are compared to Keras in
distribution, not draw for draw."""
import math
import os

import numpy as np
import pytest

import fastmlp
from fastmlp.layers import AlphaDropout, Dense, GaussianDropout
from fastmlp.layers.noise_dropout import alpha_dropout_affine

import reference as ref


def _probe(layer, d):
    """Input -> Dense(identity, bias b1) -> layer -> Dense(1, kernel of ones, bias b2), float64.  For
    one row, G = d loss / d b2 and, z being the noisy values, d loss / d kernel2 = z * G while
    d loss / d b1 = (d z / d input) * G: the forward's values and the backward's derivative."""
    fastmlp.config.set_floatx("float64")
    try:
        model = fastmlp.Sequential([fastmlp.Input((d,)), Dense(d, name="d1"), layer, Dense(1, name="d2")])
        model.get_layer("d1").kernel[...] = np.eye(d)
        model.get_layer("d2").kernel[...] = 1
        model.compile(optimizer="sgd", loss="mse")
    finally:
        fastmlp.config.set_floatx("float32")
    return model


def _noisy(model, x, step=0, seed=7, training=True):
    """(z, d z / d x) of one training forward/backward over the row x."""
    d = x.size
    _, g = model._net.loss_and_grads(model._params, x.reshape(1, -1), np.full((1, 1), -1.0), None, None,
                                     model.loss._spec(), seed, step, training)
    off = {w.name: w.offset for w in model._plan.weights}
    G = g[off["d2/bias"]]
    return g[off["d2/kernel"]:off["d2/kernel"] + d] / G, g[off["d1/bias"]:off["d1/bias"] + d] / G


def _draws(model, x, steps=25):
    """_noisy over `steps` optimizer steps (fresh noise each), concatenated, with x repeated."""
    zs, backs = zip(*(_noisy(model, x, step=s) for s in range(steps)))
    return np.concatenate(zs), np.concatenate(backs), np.tile(x, steps)


def test_gaussian_dropout_multiplies_by_normal_noise_of_mean_1_and_variance_rate_over_1_minus_rate():
    d, rate = 400, 0.3
    model = _probe(GaussianDropout(rate), d)
    x = np.random.default_rng(0).uniform(0.5, 2.0, d)
    z, back, xs = _draws(model, x)
    m = z / xs
    d = m.size
    std = math.sqrt(rate / (1 - rate))
    assert m.mean() == pytest.approx(1.0, abs=4 * std / math.sqrt(d))
    assert m.var() == pytest.approx(rate / (1 - rate), rel=0.05)
    assert np.mean(np.abs(m - 1) < std) == pytest.approx(0.6827, abs=0.02)   # normal, not uniform
    np.testing.assert_allclose(back, m, rtol=1e-9)      # backward multiplies by the forward's noise
    z0 = _noisy(model, x)[0]
    np.testing.assert_allclose(_noisy(model, 2 * x)[0], 2 * z0, rtol=1e-12)   # the same step: the same noise
    assert not np.allclose(_noisy(model, x, step=1)[0], z0)
    np.testing.assert_allclose(_noisy(model, x, training=False)[0], x, rtol=1e-12)


@pytest.mark.parametrize("rate", [0.1, 0.4])
def test_alpha_dropout_sets_dropped_values_to_alpha_prime_then_applies_the_affine(rate):
    model = _probe(AlphaDropout(rate), 400)
    x1 = np.random.default_rng(1).standard_normal(400)
    x1 = (x1 - x1.mean()) / x1.std()   # exactly zero mean and unit variance
    z, back, x = _draws(model, x1)
    d = z.size
    a, b, alpha_p = alpha_dropout_affine(rate)
    assert alpha_p == pytest.approx(-1.6732632423543772 * 1.0507009873554805, rel=1e-15)
    assert a == pytest.approx(((1 - rate) * (1 + rate * alpha_p ** 2)) ** -0.5)
    assert b == pytest.approx(-a * alpha_p * rate)
    kept = np.isclose(z, a * x + b, rtol=0, atol=1e-9)
    dropped = np.isclose(z, a * alpha_p + b, rtol=0, atol=1e-9)
    assert np.all(kept | dropped)
    assert dropped.mean() == pytest.approx(rate, abs=4 * math.sqrt(rate * (1 - rate) / d))
    # self-normalizing: standard normal in, zero mean and unit variance out
    assert z.mean() == pytest.approx(0.0, abs=0.04) and z.var() == pytest.approx(1.0, rel=0.05)
    np.testing.assert_allclose(back[kept], a, rtol=1e-9)   # backward uses the forward's mask
    np.testing.assert_array_equal(back[dropped & ~kept], 0)
    np.testing.assert_allclose(_noisy(model, x1, training=False)[0], x1, rtol=1e-12)


@pytest.mark.parametrize("layer", [lambda: GaussianDropout(0.3), lambda: AlphaDropout(0.2, seed=4)])
def test_gradients_match_central_differences_in_float64(layer):
    fastmlp.config.set_floatx("float64")
    try:
        fastmlp.utils.set_random_seed(1)
        model = fastmlp.Sequential([fastmlp.Input((4,)), Dense(6, activation="selu"), layer(),
                                    Dense(3, activation="softmax")])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    finally:
        fastmlp.config.set_floatx("float32")
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6).astype(np.int64)
    spec = model.loss._spec()
    ref.assert_gradient_by_central_difference(
        lambda p: model._net.loss_and_grads(p, X, None, y, None, spec, 5, 2, True), model._params, model._variables)


def test_training_repeats_with_a_seed_and_round_trips_through_files(tmp_path):
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((60, 5)).astype(np.float32), rng.integers(0, 3, 60)

    def make():
        fastmlp.utils.set_random_seed(11)
        m = fastmlp.Sequential([fastmlp.Input((5,)), Dense(8, activation="selu"), AlphaDropout(0.2),
                                Dense(8, activation="relu"), GaussianDropout(0.25, seed=3),
                                Dense(3, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return m
    m1, m2 = make(), make()
    h1 = m1.fit(x, y, epochs=2, batch_size=16, verbose=0).history["loss"]
    h2 = m2.fit(x, y, epochs=2, batch_size=16, verbose=0).history["loss"]
    assert h1 == h2
    plain = fastmlp.Sequential([fastmlp.Input((5,)), Dense(8, activation="selu"), Dense(8, activation="relu"),
                                Dense(3, activation="softmax")])
    plain.set_weights(m1.get_weights())
    np.testing.assert_array_equal(m1.predict(x), plain.predict(x))   # identity at inference
    path = os.path.join(tmp_path, "noise.fmlp")
    m1.save(path)
    loaded = fastmlp.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), m1.predict(x))
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in m1.layers]
    assert loaded.layers[1].get_config() == m1.layers[1].get_config()
    assert loaded.layers[3].get_config() == m1.layers[3].get_config()
    m1.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    for w1, w2 in zip(m1.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(w1, w2)


def test_bad_arguments_are_refused_by_name():
    for cls in (GaussianDropout, AlphaDropout):
        for rate in (-0.1, 1.5, "0.2", True):
            with pytest.raises(ValueError, match="rate"):
                cls(rate)
        with pytest.raises(ValueError, match="rate < 1"):
            cls(1.0)
        with pytest.raises(ValueError, match="seed"):
            cls(0.1, seed=-2)
    with pytest.raises(ValueError, match="noise_shape"):
        AlphaDropout(0.1, noise_shape=(None, 1))


def test_calls_on_arrays_follow_the_same_formulas():
    x = np.ones((400, 50), dtype=np.float32)
    assert GaussianDropout(0.5)(x) is not None
    np.testing.assert_array_equal(GaussianDropout(0.5)(x), x)          # inference
    m = GaussianDropout(0.5, seed=1)(x, training=True)
    assert m.mean() == pytest.approx(1.0, abs=0.03) and m.var() == pytest.approx(1.0, rel=0.05)
    a, b, alpha_p = alpha_dropout_affine(0.2)
    z = AlphaDropout(0.2, seed=1)(x, training=True)
    assert set(np.unique(np.round(z, 5))) == {np.round(np.float32(a + b), 5), np.round(np.float32(a * alpha_p + b), 5)}


# ---------------------------------------------------------------- Keras 3 (torch backend) as the oracle

keras = None
if os.environ.get("KERAS_BACKEND", "torch") == "torch":
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        keras = None
needs_keras = pytest.mark.skipif(keras is None, reason="keras (torch backend) is not installed")


@needs_keras
def test_inference_predict_and_evaluate_equal_keras_on_the_same_weights():
    def build(K):
        return K.Sequential([K.Input((6,)), K.layers.Dense(8, activation="selu"), K.layers.AlphaDropout(0.3),
                             K.layers.Dense(8, activation="relu"), K.layers.GaussianDropout(0.4, seed=5),
                             K.layers.Dense(2)])
    keras.utils.set_random_seed(0)
    k_model, f_model = build(keras), build(fastmlp)
    f_model.set_weights(k_model.get_weights())
    x = np.random.default_rng(3).standard_normal((30, 6)).astype(np.float32)
    y = np.random.default_rng(4).standard_normal((30, 2)).astype(np.float32)
    np.testing.assert_allclose(f_model.predict(x), k_model.predict(x, verbose=0), atol=1e-5, rtol=0)
    for m in (k_model, f_model):
        m.compile(optimizer="sgd", loss="mse")
    assert f_model.evaluate(x, y, verbose=0) == pytest.approx(k_model.evaluate(x, y, verbose=0), rel=1e-5)


@needs_keras
def test_keras_training_noise_has_the_statistics_and_constants_we_use():
    """Keras's own training-mode draws: GaussianDropout's noise has the mean and
    variance ours has; AlphaDropout's values are our a * x + b or a * alpha' + b."""
    x = np.random.default_rng(5).uniform(0.5, 2.0, (1, 20000)).astype(np.float32)
    m = np.asarray(keras.layers.GaussianDropout(0.3, seed=1)(x, training=True)) / x
    assert m.mean() == pytest.approx(1.0, abs=0.02) and m.var() == pytest.approx(0.3 / 0.7, rel=0.04)
    z = np.asarray(keras.layers.AlphaDropout(0.25, seed=1)(x, training=True), dtype=np.float64)
    a, b, alpha_p = alpha_dropout_affine(0.25)
    kept = np.isclose(z, a * x + b, rtol=0, atol=1e-5)
    dropped = np.isclose(z, a * alpha_p + b, rtol=0, atol=1e-5)
    assert np.all(kept | dropped) and dropped.mean() == pytest.approx(0.25, abs=0.015)


@needs_keras
@pytest.mark.parametrize("name,kwargs", [("GaussianDropout", {"rate": 0.3, "seed": 2}),
                                         ("AlphaDropout", {"rate": 0.2})])
def test_config_keys_are_keras_keys(name, kwargs):
    k_cfg = getattr(keras.layers, name)(**kwargs, name="n").get_config()
    f_cfg = getattr(fastmlp.layers, name)(**kwargs, name="n").get_config()
    assert set(f_cfg) == set(k_cfg)
    for key in set(k_cfg) - {"dtype"}:
        assert f_cfg[key] == k_cfg[key], key
    assert getattr(fastmlp.layers, name).from_config(f_cfg).get_config() == f_cfg
