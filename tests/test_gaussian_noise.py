"""``layers.GaussianNoise``: additive N(0, stddev^2) noise in training (engine layer kind 4),
the identity at inference; counter-based, so runs repeat and resume exactly."""
import numpy as np
import pytest

import fastmlp
from fastmlp.layers import Dense, Dropout, Flatten, GaussianNoise

import reference as ref


def _probe(stddev, d=8, dtype="float64", seed=None):
    """Input -> GaussianNoise -> Dense(identity kernel, no bias): the output is the noisy input."""
    fastmlp.config.set_floatx(dtype)
    model = fastmlp.Sequential([fastmlp.Input(shape=(d,)), GaussianNoise(stddev, seed=seed),
                                Dense(d, use_bias=False)])
    model.layers[-1].kernel[...] = np.eye(d)
    model.compile(optimizer="sgd", loss="mse")
    fastmlp.config.set_floatx("float32")
    return model


def _noisy_loss(model, X, step=0, training=True, seed=7):
    """The MSE against zero targets of the training forward pass: mean of (x + noise)^2."""
    Y = np.zeros_like(X)
    return model._net.loss_and_grads(model._params, X, Y, None, None, model.loss._spec(), seed, step, training)[0]


def test_training_adds_zero_mean_noise_of_the_given_stddev_and_inference_is_the_identity():
    model = _probe(0.5)
    X = np.zeros((20000, 8))
    assert _noisy_loss(model, X) == pytest.approx(0.25, rel=0.02)          # E[(0.5 z)^2] = 0.25
    ones = np.ones((20000, 8))
    # E[(1 + 0.5 z)^2] = 1 + 0.25: the noise has mean zero (a bias of 0.01 would show as 1.27)
    assert _noisy_loss(model, ones) == pytest.approx(1.25, rel=0.01)
    assert _noisy_loss(model, ones, training=False) == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_array_equal(model.predict(ones, verbose=0), ones)
    assert model.evaluate(ones, np.zeros_like(ones), verbose=0) == pytest.approx(1.0, rel=1e-12)
    # different steps give different noise, the same step the same noise
    assert _noisy_loss(model, X, step=1) != _noisy_loss(model, X, step=2)
    assert _noisy_loss(model, X, step=3) == _noisy_loss(model, X, step=3)
    assert _noisy_loss(_probe(0.0), ones) == pytest.approx(1.0, rel=1e-12)


def test_the_noise_is_normal():
    model = _probe(1.0, d=1)
    X = np.zeros((1, 1))
    # one value per step: the training loss is the squared noise value
    z = np.sqrt([_noisy_loss(model, X, step=s) for s in range(4000)])
    # |z| of a standard normal: mean sqrt(2/pi), P(|z| < 1) = 0.6827, P(|z| > 2) = 0.0455
    assert z.mean() == pytest.approx(np.sqrt(2 / np.pi), abs=0.03)
    assert np.mean(z < 1) == pytest.approx(0.6827, abs=0.025)
    assert np.mean(z > 2) == pytest.approx(0.0455, abs=0.012)


def test_gradients_through_noise_match_central_differences():
    fastmlp.config.set_floatx("float64")
    fastmlp.utils.set_random_seed(1)
    model = fastmlp.Sequential([fastmlp.Input(shape=(4,)), GaussianNoise(0.3), Dense(5, activation="tanh"),
                                GaussianNoise(0.2, seed=9), Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    fastmlp.config.set_floatx("float32")
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6).astype(np.int64)
    spec = model.loss._spec()
    ref.assert_gradient_by_central_difference(
        lambda p: model._net.loss_and_grads(p, X, None, y, None, spec, 5, 2, True), model._params, model._variables)


def test_runs_repeat_resume_and_round_trip_through_files(tmp_path):
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((120, 6)).astype(np.float32), rng.integers(0, 3, 120)

    def make(stddev=0.4):
        fastmlp.utils.set_random_seed(11)
        m = fastmlp.Sequential([fastmlp.Input(shape=(6,)), GaussianNoise(stddev), Dense(8, activation="relu"),
                                Dropout(0.2), Dense(3, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return m

    full = make()
    full.fit(x, y, epochs=4, batch_size=16, verbose=0)
    half = make()
    half.fit(x, y, epochs=2, batch_size=16, verbose=0)
    half.save(tmp_path / "half.fmlp")
    assert open(tmp_path / "half.fmlp", "rb").read(16)[12:16] == b"\x01\x00\x02\x00"   # format 1.2
    resumed = fastmlp.load_model(tmp_path / "half.fmlp")
    assert resumed.get_config() == half.get_config()
    resumed.fit(x, y, epochs=4, initial_epoch=2, batch_size=16, verbose=0)
    np.testing.assert_array_equal(resumed._params, full._params)
    again = make()
    again.fit(x, y, epochs=4, batch_size=16, verbose=0)
    np.testing.assert_array_equal(again._params, full._params)
    quiet = make(stddev=0.0)        # the noise changes training: the test can tell
    quiet.fit(x, y, epochs=4, batch_size=16, verbose=0)
    assert not np.array_equal(quiet._params, full._params)


def test_noise_before_flatten_and_bad_arguments():
    model = fastmlp.Sequential([fastmlp.Input(shape=(2, 3)), GaussianNoise(0.1), Flatten(), Dense(2)])
    assert model.output_shape == (None, 2)
    for bad in (-0.1, float("nan"), "0.1", True):
        with pytest.raises(ValueError, match="stddev"):
            GaussianNoise(bad)
    with pytest.raises(ValueError, match="seed"):
        GaussianNoise(0.1, seed=-1)
    x = np.ones((3, 4), np.float32)
    y = GaussianNoise(0.5)(x)                         # inference: the identity, no copy
    assert np.shares_memory(y, x) and np.array_equal(y, x)
    noise = GaussianNoise(0.5, seed=1)
    first, second = noise(x, training=True), noise(x, training=True)
    assert first.shape == x.shape and not np.array_equal(first, x)
    assert not np.array_equal(first, second)          # a fresh draw per call, as Keras
    np.testing.assert_array_equal(GaussianNoise(0.5, seed=1)(x, training=True), first)   # seeded


def test_a_standalone_dropout_call_drops_in_training_only():
    x = np.ones((200, 50), np.float32)
    drop = Dropout(0.25, seed=3)
    assert drop(x) is not None and np.array_equal(drop(x), x)
    out = drop(x, training=True)
    assert set(np.unique(out)) <= {0.0, np.float32(1 / 0.75)}
    assert np.mean(out == 0) == pytest.approx(0.25, abs=0.02)
    assert not np.array_equal(out, drop(x, training=True))
    assert np.array_equal(Dropout(1.0)(x, training=True), np.zeros_like(x))
