"""BatchNormalization on the C engine: Keras 3 forward in training and inference mode,
moving statistics, weights layout, gradients, saving and exact resume."""
import os

import numpy as np
import pytest

import fastmlp
from fastmlp.layers import BatchNormalization, Dense, Dropout


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def _data(n=48, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(loc=2.0, scale=3.0, size=(n, d))
    return X


def bn_reference(x, gamma, beta, mean, var, eps):
    g = 1.0 if gamma is None else gamma
    b = 0.0 if beta is None else beta
    return g * (x - mean) / np.sqrt(var + eps) + b


def bn_only_model(d=5, dtype="float64", lr=0.0, **bn_kwargs):
    fastmlp.config.set_floatx(dtype)
    model = fastmlp.Sequential([fastmlp.Input(shape=(d,)), BatchNormalization(**bn_kwargs)])
    model.compile(optimizer=fastmlp.optimizers.SGD(learning_rate=lr), loss="mse")
    return model


def _random_bn_weights(d, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.uniform(0.5, 2.0, d), rng.normal(size=d), rng.normal(size=d), rng.uniform(0.5, 3.0, d)]


# --------------------------------------------------------------------------- layout
def test_weights_are_ordered_gamma_beta_moving_mean_moving_variance_with_keras_initial_values():
    model = bn_only_model(d=4)
    layer = model.layers[0]
    w = model.get_weights()
    assert [a.shape for a in w] == [(4,)] * 4
    np.testing.assert_array_equal(w[0], np.ones(4))     # gamma
    np.testing.assert_array_equal(w[1], np.zeros(4))    # beta
    np.testing.assert_array_equal(w[2], np.zeros(4))    # moving_mean
    np.testing.assert_array_equal(w[3], np.ones(4))     # moving_variance
    assert [id(a) for a in layer.weights] == [id(a) for a in (layer.gamma, layer.beta, layer.moving_mean,
                                                             layer.moving_variance)]
    assert len(layer.trainable_weights) == 2 and len(layer.non_trainable_weights) == 2


@pytest.mark.parametrize("center,scale,n", [(True, True, 4), (False, True, 3), (True, False, 3),
                                            (False, False, 2)])
def test_center_and_scale_false_drop_beta_and_gamma_from_the_weights(center, scale, n):
    model = bn_only_model(d=6, center=center, scale=scale)
    layer = model.layers[0]
    assert len(model.get_weights()) == n
    assert (layer.gamma is not None) == scale and (layer.beta is not None) == center
    assert model.count_params() == 6 * n


def test_count_params_includes_the_non_trainable_moving_statistics_as_keras_does():
    fastmlp.config.set_floatx("float32")
    model = fastmlp.Sequential([fastmlp.Input(shape=(10,)), Dense(8), BatchNormalization(), Dense(3)])
    assert model.count_params() == (10 * 8 + 8) + 4 * 8 + (8 * 3 + 3)


def test_count_params_matches_keras():
    keras = _keras()
    km = keras.Sequential([keras.Input(shape=(10,)), keras.layers.Dense(8),
                           keras.layers.BatchNormalization(), keras.layers.Dense(3)])
    model = fastmlp.Sequential([fastmlp.Input(shape=(10,)), Dense(8), BatchNormalization(), Dense(3)])
    assert model.count_params() == km.count_params()
    assert [w.shape for w in model.get_weights()] == [tuple(w.shape) for w in km.get_weights()]


def test_invalid_arguments_are_rejected():
    with pytest.raises(ValueError):
        BatchNormalization(momentum=1.5)
    with pytest.raises(ValueError):
        BatchNormalization(epsilon=0.0)
    with pytest.raises(ValueError):
        BatchNormalization(axis=0)


# --------------------------------------------------------------------------- forward
def test_predict_uses_the_moving_statistics():
    X = _data()
    model = bn_only_model(epsilon=1e-3)
    weights = _random_bn_weights(5)
    model.set_weights(weights)
    want = bn_reference(X, *weights, 1e-3)
    np.testing.assert_allclose(model.predict(X, verbose=0), want, rtol=1e-12, atol=1e-12)


def test_predict_of_one_row_does_not_depend_on_the_rest_of_the_batch():
    X = _data()
    model = bn_only_model()
    model.set_weights(_random_bn_weights(5))
    np.testing.assert_allclose(model.predict(X[:1], verbose=0), model.predict(X, verbose=0)[:1], rtol=1e-14)


def test_evaluate_uses_the_moving_statistics():
    X = _data()
    Y = np.random.default_rng(3).normal(size=X.shape)
    model = bn_only_model()
    weights = _random_bn_weights(5)
    model.set_weights(weights)
    want = np.mean((bn_reference(X, *weights, 1e-3) - Y) ** 2)
    assert model.evaluate(X, Y, batch_size=7, verbose=0) == pytest.approx(want, rel=1e-10)


def test_training_loss_uses_batch_statistics_with_the_biased_variance():
    X = _data()
    Y = np.random.default_rng(3).normal(size=X.shape)
    model = bn_only_model()
    weights = _random_bn_weights(5)
    model.set_weights(weights)
    train_out = bn_reference(X, weights[0], weights[1], X.mean(0), X.var(0), 1e-3)   # ddof=0
    want = np.mean((train_out - Y) ** 2)
    got = model.train_on_batch(X, Y)          # loss before the (lr=0) step
    assert got == pytest.approx(want, rel=1e-10)
    unbiased = bn_reference(X, weights[0], weights[1], X.mean(0), X.var(0, ddof=1), 1e-3)
    assert got != pytest.approx(np.mean((unbiased - Y) ** 2), rel=1e-10)


def test_loss_and_grads_in_training_mode_equals_the_batch_statistics_forward():
    X = _data()
    Y = np.random.default_rng(4).normal(size=X.shape)
    model = bn_only_model()
    weights = _random_bn_weights(5)
    model.set_weights(weights)
    Yp, labels = model.loss.prepare_targets(Y, 5, "float64")
    loss_train, _ = model._net.loss_and_grads(model._params.copy(), X, Yp, labels, None,
                                              model.loss._spec(), 0, 0, True)
    loss_infer, _ = model._net.loss_and_grads(model._params.copy(), X, Yp, labels, None,
                                              model.loss._spec(), 0, 0, False)
    train_out = bn_reference(X, weights[0], weights[1], X.mean(0), X.var(0), 1e-3)
    infer_out = bn_reference(X, *weights, 1e-3)
    assert loss_train == pytest.approx(np.mean((train_out - Y) ** 2), rel=1e-10)
    assert loss_infer == pytest.approx(np.mean((infer_out - Y) ** 2), rel=1e-10)


# --------------------------------------------------------------------------- moving statistics
@pytest.mark.parametrize("momentum", [0.0, 0.9, 0.99])
def test_moving_statistics_follow_the_momentum_update_with_biased_batch_variance(momentum):
    X = _data(n=40)
    model = bn_only_model(momentum=momentum)
    mm, mv = np.zeros(5), np.ones(5)
    batch = 8
    model.fit(X, np.zeros_like(X), batch_size=batch, epochs=1, shuffle=False, verbose=0)
    for s in range(0, 40, batch):
        xb = X[s:s + batch]
        mm = mm * momentum + xb.mean(0) * (1 - momentum)
        mv = mv * momentum + xb.var(0) * (1 - momentum)
    layer = model.layers[0]
    np.testing.assert_allclose(layer.moving_mean, mm, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.moving_variance, mv, rtol=1e-10, atol=1e-12)


def test_moving_statistics_are_not_changed_by_predict_or_evaluate():
    X = _data()
    model = bn_only_model()
    model.set_weights(_random_bn_weights(5))
    before = model.get_weights()
    model.predict(X, verbose=0)
    model.evaluate(X, np.zeros_like(X), verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_moving_statistics_are_not_trained_by_the_optimizer():
    X = _data()
    model = bn_only_model(lr=0.5, momentum=1.0)   # momentum 1: the moving stats never move
    model.set_weights(_random_bn_weights(5))
    before = model.get_weights()
    model.fit(X, np.random.default_rng(0).normal(size=X.shape), batch_size=8, epochs=2, verbose=0)
    after = model.get_weights()
    assert not np.allclose(before[0], after[0])          # gamma trained
    np.testing.assert_array_equal(before[2], after[2])   # moving_mean untouched by the optimizer
    np.testing.assert_array_equal(before[3], after[3])


def test_after_training_on_shifted_data_predict_normalizes_with_the_learned_statistics():
    rng = np.random.default_rng(9)
    X = rng.normal(loc=10.0, scale=4.0, size=(512, 3))
    model = bn_only_model(d=3, momentum=0.9)
    model.fit(X, np.zeros_like(X), batch_size=64, epochs=5, verbose=0)
    out = model.predict(X, verbose=0)
    assert np.all(np.abs(out.mean(0)) < 0.3)
    assert np.all(np.abs(out.std(0) - 1) < 0.2)


# --------------------------------------------------------------------------- gradients
def _bn_net(dtype="float64", center=True, scale=True, seed=5):
    fastmlp.config.set_floatx(dtype)
    fastmlp.utils.set_random_seed(seed)
    model = fastmlp.Sequential([fastmlp.Input(shape=(4,)), Dense(6, activation="tanh"),
                                BatchNormalization(center=center, scale=scale, momentum=0.8),
                                Dense(5, activation="relu"), BatchNormalization(),
                                Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(seed)
    gamma_beta = [w for layer in model.layers if isinstance(layer, BatchNormalization)
                  for w in layer.trainable_weights]
    for w in gamma_beta:   # move gamma/beta away from 1/0 so every path is exercised
        w[...] = rng.uniform(0.5, 1.5, w.shape) if np.all(w == 1) else rng.normal(scale=0.3, size=w.shape)
    return model


@pytest.mark.parametrize("center,scale", [(True, True), (False, True), (True, False), (False, False)])
def test_gradients_of_every_trainable_parameter_match_central_differences_in_float64(center, scale):
    model = _bn_net(center=center, scale=scale)
    rng = np.random.default_rng(11)
    X = rng.normal(size=(12, 4))
    y = rng.integers(0, 3, 12).astype(np.int64)
    spec = model.loss._spec()

    def loss_at(params):
        return model._net.loss_and_grads(params.copy(), X, None, y, None, spec, 7, 0, True)[0]

    params = model._params.copy()
    _, grads = model._net.loss_and_grads(params.copy(), X, None, y, None, spec, 7, 0, True)
    h = 1e-6
    checked = 0
    for offset, size, _, _ in model._variables:
        for i in range(offset, offset + size):
            p_plus, p_minus = params.copy(), params.copy()
            p_plus[i] += h
            p_minus[i] -= h
            numeric = (loss_at(p_plus) - loss_at(p_minus)) / (2 * h)
            assert grads[i] == pytest.approx(numeric, rel=1e-5, abs=1e-8), f"param index {i}"
            checked += 1
    n_bn = sum(len(layer.trainable_weights) * layer.trainable_weights[0].size
               for layer in model.layers if isinstance(layer, BatchNormalization) and layer.trainable_weights)
    assert checked == 4 * 6 + 6 + 6 * 5 + 5 + 5 * 3 + 3 + n_bn


def test_the_trainable_segments_exclude_the_moving_statistics():
    model = _bn_net()
    segments = {(o, s) for o, s, _, _ in model._variables}
    for layer in model.layers:
        if isinstance(layer, BatchNormalization):
            for w in (layer.moving_mean, layer.moving_variance):
                off = (w.value.__array_interface__["data"][0] - model._params.__array_interface__["data"][0]) \
                    // model._params.itemsize
                assert (off, w.size) not in segments


# --------------------------------------------------------------------------- saving and resume
def _trained_bn_model():
    fastmlp.config.set_floatx("float32")
    fastmlp.utils.set_random_seed(21)
    model = fastmlp.Sequential([fastmlp.Input(shape=(5,)), Dense(16, activation="relu"),
                                BatchNormalization(momentum=0.9), Dropout(0.2, seed=3),
                                Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _cls_data(n=160, seed=8):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32) * 3 + 1
    y = np.argmax(X[:, :3], axis=1)
    return X, y


def test_save_and_load_keep_the_moving_statistics_and_the_predictions(tmp_path):
    X, y = _cls_data()
    model = _trained_bn_model()
    model.fit(X, y, epochs=3, batch_size=16, verbose=0)
    bn = model.layers[1]
    assert not np.allclose(bn.moving_mean, 0) and not np.allclose(bn.moving_variance, 1)
    model.save(tmp_path / "bn.fmlp")
    loaded = fastmlp.load_model(tmp_path / "bn.fmlp")
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    lbn = loaded.layers[1]
    assert isinstance(lbn, BatchNormalization)
    assert lbn.momentum == pytest.approx(0.9) and lbn.epsilon == pytest.approx(1e-3)
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), model.predict(X, verbose=0))
    assert loaded.evaluate(X, y, verbose=0) == model.evaluate(X, y, verbose=0)


def test_save_weights_and_load_weights_carry_the_moving_statistics(tmp_path):
    X, y = _cls_data()
    model = _trained_bn_model()
    model.fit(X, y, epochs=2, batch_size=16, verbose=0)
    path = tmp_path / "bn.weights.h5"   # Keras 3's weights file
    model.save_weights(path)
    other = _trained_bn_model()
    other.load_weights(path)
    np.testing.assert_array_equal(other.layers[1].moving_variance, model.layers[1].moving_variance)
    np.testing.assert_array_equal(other.predict(X, verbose=0), model.predict(X, verbose=0))


def test_resume_with_batch_normalization_is_bit_exact(tmp_path):
    X, y = _cls_data()
    full = _trained_bn_model()
    full.fit(X, y, epochs=4, batch_size=16, verbose=0)
    half = _trained_bn_model()
    half.fit(X, y, epochs=2, batch_size=16, verbose=0)
    half.save(tmp_path / "half.fmlp")
    resumed = fastmlp.load_model(tmp_path / "half.fmlp")
    resumed.fit(X, y, epochs=4, initial_epoch=2, batch_size=16, verbose=0)
    np.testing.assert_array_equal(resumed._params, full._params)
    np.testing.assert_array_equal(resumed.layers[1].moving_mean, full.layers[1].moving_mean)


# --------------------------------------------------------------------------- Keras
@pytest.mark.parametrize("center,scale", [(True, True), (False, False)])
def test_inference_forward_matches_keras_batch_normalization(center, scale):
    keras = _keras()
    X = _data()
    weights = _random_bn_weights(5)
    keep = ([weights[0]] if scale else []) + ([weights[1]] if center else []) + weights[2:]
    kl = keras.layers.BatchNormalization(center=center, scale=scale, epsilon=1e-3)
    kl.build((None, 5))
    kl.set_weights(keep)
    theirs = keras.ops.convert_to_numpy(kl(X.astype(np.float32), training=False))
    model = bn_only_model(dtype="float32", center=center, scale=scale)
    model.set_weights(keep)
    np.testing.assert_allclose(model.predict(X, verbose=0), theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("momentum", [0.5, 0.99])
def test_training_forward_loss_and_moving_update_match_keras(momentum):
    keras = _keras()
    X = _data().astype(np.float32)
    Y = np.random.default_rng(12).normal(size=X.shape).astype(np.float32)
    weights = [w.astype(np.float32) for w in _random_bn_weights(5)]
    kl = keras.layers.BatchNormalization(momentum=momentum, epsilon=1e-3)
    kl.build((None, 5))
    kl.set_weights(weights)
    k_out = keras.ops.convert_to_numpy(kl(X, training=True))
    k_loss = float(np.mean((k_out.astype(np.float64) - Y) ** 2))
    k_after = [keras.ops.convert_to_numpy(w) for w in kl.weights]

    model = bn_only_model(dtype="float32", momentum=momentum)
    model.set_weights(weights)
    loss = model.train_on_batch(X, Y)      # lr = 0: only the moving statistics move
    assert loss == pytest.approx(k_loss, rel=1e-5)
    for ours, theirs in zip(model.get_weights(), k_after):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
