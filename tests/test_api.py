"""User-level scenarios of the Keras-style API, end to end, on small synthetic data."""
import io
import threading

import numpy as np
import pytest

import fastmlp as keras
from fastmlp import layers, optimizers, regularizers
from fastmlp.callbacks import Callback, History


def _binary_data(n=200, d=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.float32)
    return x, y


def _multiclass_data(n=240, d=6, classes=3, seed=1):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 2.5, (classes, d))
    y = rng.integers(0, classes, n)
    x = (centers[y] + rng.normal(size=(n, d))).astype(np.float32)
    return x, y


def _small_classifier(d=6, classes=3, optimizer="adam", metrics=("accuracy",), dropout=None):
    stack = [keras.Input(shape=(d,)), layers.Dense(16, activation="relu")]
    if dropout is not None:
        stack.append(layers.Dropout(dropout))
    stack.append(layers.Dense(classes, activation="softmax"))
    model = keras.Sequential(stack)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=list(metrics))
    return model


# --------------------------------------------------------------------------- scenarios
def test_the_binary_classification_scenario_trains_and_reports_history_and_evaluate():
    x_train, y_train = _binary_data()
    x_test, y_test = _binary_data(100, seed=5)
    model = keras.models.Sequential()
    model.add(layers.Dense(units=10, activation="relu", input_dim=8))
    model.add(layers.Dense(units=5, activation="relu"))
    model.add(layers.Dense(units=1, activation="sigmoid"))
    model.compile(optimizer=optimizers.Adam(learning_rate=0.001), loss="binary_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x_train, y_train, epochs=10, batch_size=32, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}
    assert len(history.history["loss"]) == 10 and len(history.history["accuracy"]) == 10
    assert history.epoch == list(range(10))
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert all(0.0 <= a <= 1.0 for a in history.history["accuracy"])
    assert model.history is history
    loss, acc = model.evaluate(x_test, y_test, verbose=0)
    assert isinstance(loss, float) and isinstance(acc, float)
    assert 0 <= acc <= 1 and loss > 0


def test_the_784_input_scenario_with_validation_split_and_predict_probabilities():
    rng = np.random.default_rng(2)
    x_train = rng.random((300, 784), dtype=np.float32)
    y_train = rng.integers(0, 10, 300)
    model = keras.Sequential([layers.Dense(64, activation="relu", input_shape=(784,)),
                              layers.Dense(64, activation="relu"),
                              layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, epochs=5, validation_split=0.1, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 5 for v in history.history.values())
    probabilities = model.predict(x_train[:7], verbose=0)
    assert probabilities.shape == (7, 10) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert (probabilities >= 0).all()


def test_validation_split_validates_on_the_last_fraction_of_the_data():
    x, y = _multiclass_data(100)
    model = _small_classifier()
    history = model.fit(x, y, epochs=1, validation_split=0.2, shuffle=False, verbose=0)
    # after training, the reported val metrics are those of evaluate on the last 20 rows
    vloss, vacc = model.evaluate(x[80:], y[80:], verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(vloss, rel=1e-6)
    assert history.history["val_accuracy"][0] == pytest.approx(vacc, rel=1e-6)


def test_a_dense_layer_accepts_an_l2_kernel_regularizer_that_adds_its_penalty_to_the_loss():
    keras.config.set_floatx("float64")
    reg = regularizers.l2(0.01)
    layer = layers.Dense(32, activation="relu", kernel_regularizer=reg)
    model = keras.Sequential([keras.Input(shape=(4,)), layer, layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((5, 4)), np.zeros(5)
    plain = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(32, activation="relu"), layers.Dense(1)])
    plain.compile(optimizer="sgd", loss="mse")
    plain.set_weights(model.get_weights())
    penalty = 0.01 * np.sum(layer.get_weights()[0] ** 2)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(plain.evaluate(x, y, verbose=0) + penalty, rel=1e-12)


def test_a_frozen_layers_regularizer_is_left_out_of_the_loss_as_in_keras_3():
    # Keras 3 collects regularization penalties from trainable_weights only
    # (Layer._get_regularization_losses), so freezing a layer drops its penalty.
    keras.config.set_floatx("float64")
    frozen = layers.Dense(8, activation="tanh", kernel_regularizer=regularizers.l2(0.5))
    live = layers.Dense(1, kernel_regularizer=regularizers.l2(0.25))
    model = keras.Sequential([keras.Input(shape=(4,)), frozen, live])
    frozen.trainable = False
    model.compile(optimizer="sgd", loss="mse")
    plain = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(8, activation="tanh"), layers.Dense(1)])
    plain.compile(optimizer="sgd", loss="mse")
    plain.set_weights(model.get_weights())
    x, y = np.linspace(-1, 1, 20).reshape(5, 4), np.zeros(5)
    penalty = 0.25 * np.sum(live.get_weights()[0] ** 2)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(plain.evaluate(x, y, verbose=0) + penalty, rel=1e-12)
    logs = model.train_on_batch(x, y, return_dict=True)
    assert logs["loss"] == pytest.approx(plain.evaluate(x, y, verbose=0) + penalty, rel=1e-12)


def test_keras_input_as_first_element_builds_the_model_at_once():
    model = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(3)])
    assert model.built
    assert model.input_shape == (None, 4) and model.output_shape == (None, 3)
    assert len(model.layers) == 1
    assert [w.shape for w in model.get_weights()] == [(4, 3), (3,)]


def test_a_model_without_an_input_shape_builds_lazily_from_the_first_data():
    model = keras.Sequential([layers.Dense(5, activation="relu"), layers.Dense(2)])
    assert not model.built
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(size=(10, 7))
    model.fit(x, np.zeros((10, 2)), epochs=1, verbose=0)
    assert model.built and model.input_shape == (None, 7)
    assert [w.shape for w in model.get_weights()] == [(7, 5), (5,), (5, 2), (2,)]
    lazy = keras.Sequential([layers.Dense(3)])
    assert lazy.predict(x, verbose=0).shape == (10, 3)


# --------------------------------------------------------------------------- history
def test_history_records_validation_data_metrics_for_every_epoch():
    x, y = _multiclass_data()
    model = _small_classifier()
    history = model.fit(x[:200], y[:200], epochs=3, batch_size=16, validation_data=(x[200:], y[200:]),
                        verbose=0)
    assert list(history.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert all(len(v) == 3 for v in history.history.values())
    vloss, vacc = model.evaluate(x[200:], y[200:], verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(vloss, rel=1e-6)
    assert history.history["val_accuracy"][-1] == pytest.approx(vacc, rel=1e-6)


def test_validation_data_may_be_a_three_tuple_with_sample_weights():
    x, y = _multiclass_data()
    model = _small_classifier()
    w = np.where(np.arange(40) % 2 == 0, 1.0, 0.0)
    history = model.fit(x[:200], y[:200], epochs=1, validation_data=(x[200:], y[200:], w), verbose=0)
    want = model.evaluate(x[200:], y[200:], sample_weight=w, verbose=0, return_dict=True)
    assert history.history["val_loss"][0] == pytest.approx(want["loss"], rel=1e-6)
    assert history.history["val_accuracy"][0] == pytest.approx(want["accuracy"], rel=1e-6)
    # Keras 3 weights only `weighted_metrics`: the compiled accuracy counts every row
    assert want["accuracy"] == pytest.approx(model.evaluate(x[200:], y[200:], verbose=0)[1])


def test_initial_epoch_resumes_the_epoch_count():
    x, y = _multiclass_data()
    model = _small_classifier()
    seen = []

    class Epochs(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    history = model.fit(x, y, epochs=5, initial_epoch=3, callbacks=[Epochs()], verbose=0)
    assert seen == [3, 4] and history.epoch == [3, 4]
    assert len(history.history["loss"]) == 2
    assert model.fit(x, y, epochs=2, initial_epoch=2, verbose=0).history == {}


def test_zero_epochs_trains_nothing():
    x, y = _multiclass_data()
    model = _small_classifier()
    before = model.get_weights()
    history = model.fit(x, y, epochs=0, verbose=0)
    assert history.history == {}
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- evaluate / predict
def test_evaluate_returns_a_float_without_metrics_a_list_with_them_and_a_dict_on_request():
    x, y = _multiclass_data()
    model = _small_classifier(metrics=())
    loss = model.evaluate(x, y, verbose=0)
    assert isinstance(loss, float)
    assert model.evaluate(x, y, verbose=0, return_dict=True) == {"loss": loss}
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", "sparse_top_k_categorical_accuracy"])
    result = model.evaluate(x, y, verbose=0)
    assert isinstance(result, list) and len(result) == 3
    assert result[0] == pytest.approx(loss, rel=1e-6)
    d = model.evaluate(x, y, verbose=0, return_dict=True)
    assert list(d) == ["loss", "accuracy", "sparse_top_k_categorical_accuracy"] == model.metrics_names
    assert d["sparse_top_k_categorical_accuracy"] == 1.0   # k=5 > 3 classes


def test_evaluate_does_not_depend_on_batch_size():
    x, y = _multiclass_data()
    model = _small_classifier()
    a = model.evaluate(x, y, batch_size=7, verbose=0)
    b = model.evaluate(x, y, batch_size=240, verbose=0)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_predict_shapes_and_dtypes_follow_the_model():
    x, _ = _multiclass_data()
    model = _small_classifier()
    out = model.predict(x, verbose=0)
    assert out.shape == (240, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(model.predict(x, batch_size=5, verbose=0), out)
    np.testing.assert_array_equal(model(x), out)
    np.testing.assert_array_equal(model.predict_on_batch(x), out)
    assert model.predict(x[:1], verbose=0).shape == (1, 3)


def test_predict_on_empty_input_returns_zero_rows_of_the_output_width():
    model = _small_classifier()
    out = model.predict(np.zeros((0, 6)), verbose=0)
    assert out.shape == (0, 3) and out.dtype == np.float32


def test_predict_matches_a_numpy_forward_pass_of_the_keras_layout_weights():
    x, _ = _multiclass_data()
    model = keras.Sequential([keras.Input(shape=(6,)), layers.Dense(16, activation="tanh"),
                              layers.Dense(3, activation="softmax")])
    k1, b1, k2, b2 = model.get_weights()
    z = np.tanh(x.astype(np.float64) @ k1 + b1) @ k2 + b2
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(model.predict(x, verbose=0), p, rtol=1e-4, atol=1e-6)


def test_predict_from_several_threads_at_once_equals_serial_predict():
    rng = np.random.default_rng(3)
    model = keras.Sequential([keras.Input(shape=(20,)), layers.Dense(64, activation="relu"),
                              layers.Dense(64, activation="relu"), layers.Dense(5)])
    inputs = [rng.normal(size=(300 + 17 * i, 20)).astype(np.float32) for i in range(8)]
    serial = [model.predict(x, verbose=0) for x in inputs]
    results = [None] * len(inputs)
    errors = []

    def work(i):
        try:
            for _ in range(5):
                results[i] = model.predict(inputs[i], verbose=0)
        except Exception as e:   # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for a, b in zip(serial, results):
        np.testing.assert_array_equal(a, b)


def test_train_on_batch_returns_the_loss_and_metrics_and_takes_one_step():
    x, y = _multiclass_data(32)
    model = _small_classifier()
    before = model.evaluate(x, y, verbose=0)
    out = model.train_on_batch(x, y)
    assert isinstance(out, list) and len(out) == 2
    np.testing.assert_allclose(out, before, rtol=1e-5)
    assert model.optimizer.iterations == 1
    d = model.train_on_batch(x, y, return_dict=True)
    assert set(d) == {"loss", "accuracy"}
    assert model.optimizer.iterations == 2
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert isinstance(model.train_on_batch(x, y), float)


# --------------------------------------------------------------------------- metrics
def test_evaluate_accuracy_equals_argmax_accuracy_of_the_predictions():
    x, y = _multiclass_data()
    model = _small_classifier()
    model.fit(x, y, epochs=2, verbose=0)
    _, acc = model.evaluate(x, y, verbose=0)
    pred = model.predict(x, verbose=0)
    assert acc == pytest.approx(np.mean(pred.argmax(1) == y), abs=1e-12)


def test_fit_epoch_metrics_with_shuffle_false_equal_the_mean_over_batch_by_batch_train_steps():
    keras.config.set_floatx("float64")
    x, y = _multiclass_data(100)
    a = _small_classifier(optimizer=optimizers.SGD(0.05))
    b = _small_classifier(optimizer=optimizers.SGD(0.05))
    b.set_weights(a.get_weights())
    history = a.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    losses_, correct = [], 0.0
    for start in range(0, 100, 32):
        xb, yb = x[start:start + 32], y[start:start + 32]
        correct += np.sum(b.predict(xb, verbose=0).argmax(1) == yb)
        losses_.append(b.train_on_batch(xb, yb)[0] * len(xb))
    assert history.history["loss"][0] == pytest.approx(sum(losses_) / 100, rel=1e-10)
    assert history.history["accuracy"][0] == pytest.approx(correct / 100, rel=1e-12)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("batch_size", [1, 7, 32, 500])
def test_with_learning_rate_zero_a_shuffled_epoch_sees_every_sample_exactly_once(batch_size):
    """The epoch loss and accuracy then equal evaluate's on the whole data set."""
    keras.config.set_floatx("float64")
    x, y = _multiclass_data(101)
    model = _small_classifier(optimizer=optimizers.SGD(0.0))
    history = model.fit(x, y, epochs=2, batch_size=batch_size, shuffle=True, verbose=0)
    loss, acc = model.evaluate(x, y, verbose=0)
    assert history.history["loss"] == pytest.approx([loss, loss], rel=1e-12)
    assert history.history["accuracy"] == pytest.approx([acc, acc], rel=1e-12)


def test_with_learning_rate_zero_fit_weights_its_epoch_metrics_like_evaluate():
    keras.config.set_floatx("float64")
    x, y = _multiclass_data(90)
    cw = {0: 1.0, 1: 3.0, 2: 0.5}
    sw = np.random.default_rng(1).uniform(0, 2, 90)
    model = _small_classifier(optimizer=optimizers.SGD(0.0))
    history = model.fit(x, y, epochs=1, batch_size=16, sample_weight=sw, class_weight=cw, verbose=0)
    combined = sw * np.array([cw[c] for c in y])
    loss, acc = model.evaluate(x, y, sample_weight=combined, verbose=0)
    assert history.history["loss"][0] == pytest.approx(loss, rel=1e-12)
    assert history.history["accuracy"][0] == pytest.approx(acc, rel=1e-12)


def test_accuracy_resolves_to_binary_accuracy_for_one_sigmoid_unit():
    x, y = _binary_data()
    model = keras.Sequential([keras.Input(shape=(8,)), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    _, acc = model.evaluate(x, y, verbose=0)
    p = model.predict(x, verbose=0)[:, 0]
    assert acc == pytest.approx(np.mean((p > 0.5) == y), abs=1e-12)
    assert model.evaluate(x, y.reshape(-1, 1), verbose=0)[1] == acc


def test_accuracy_resolves_to_categorical_accuracy_for_one_hot_targets():
    x, y = _multiclass_data()
    model = keras.Sequential([keras.Input(shape=(6,)), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy", "acc"])
    loss, acc, acc2 = model.evaluate(x, np.eye(3)[y], verbose=0)
    assert acc == acc2 == pytest.approx(np.mean(model.predict(x, verbose=0).argmax(1) == y), abs=1e-12)
    assert model.metrics_names == ["loss", "accuracy", "acc"]


def test_accuracy_resolves_to_sparse_categorical_accuracy_for_integer_labels():
    x, y = _multiclass_data()
    model = _small_classifier()
    history = model.fit(x, y, epochs=1, verbose=0)
    assert "accuracy" in history.history
    sparse = keras.metrics.SparseCategoricalAccuracy()
    sparse.update_state(y, model.predict(x, verbose=0))
    assert model.evaluate(x, y, verbose=0)[1] == pytest.approx(sparse.result(), abs=1e-12)


def test_regression_metrics_equal_numpy_on_all_predictions():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(90, 3))
    y = x @ rng.normal(size=(3, 2))
    model = keras.Sequential([keras.Input(shape=(3,)), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae", "mse"])
    loss, mae, mse = model.evaluate(x, y, verbose=0)
    p = model.predict(x, verbose=0).astype(np.float64)
    assert mae == pytest.approx(np.mean(np.abs(p - y)), rel=1e-5)
    assert mse == pytest.approx(np.mean((p - y) ** 2), rel=1e-5)
    assert loss == pytest.approx(mse, rel=1e-5)


# --------------------------------------------------------------------------- weights
def test_sample_weight_in_evaluate_gives_the_weighted_sum_over_the_row_count():
    keras.config.set_floatx("float64")
    x, y = _multiclass_data(50)
    model = _small_classifier()
    p = model.predict(x, verbose=0)
    per_row = -np.log(p[np.arange(50), y])
    w = np.random.default_rng(0).uniform(0, 3, 50)
    w[::3] = 0.0
    loss, acc = model.evaluate(x, y, sample_weight=w, verbose=0)
    assert loss == pytest.approx(np.sum(w * per_row) / 50, rel=1e-10)
    # Keras 3: `metrics` ignore sample weights, `weighted_metrics` apply them
    assert acc == pytest.approx(np.mean(p.argmax(1) == y), rel=1e-12)
    model.compile(optimizer=model.optimizer, loss=model.loss, weighted_metrics=["accuracy"])
    loss, acc = model.evaluate(x, y, sample_weight=w, verbose=0)
    assert acc == pytest.approx(np.sum(w * (p.argmax(1) == y)) / np.sum(w), rel=1e-12)


def test_rows_with_zero_sample_weight_do_not_influence_the_gradient():
    """SGD on (kept rows + junk rows with weight 0) equals SGD on the kept rows
    alone with the learning rate scaled by n_kept / n (Keras divides by the batch size)."""
    keras.config.set_floatx("float64")
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(30, 2))
    x[20:] *= 100.0
    y[20:] = 1e4   # junk that would dominate the gradient
    w = np.r_[np.ones(20), np.zeros(10)]

    def model(lr):
        keras.utils.set_random_seed(3)
        m = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(5, activation="tanh"), layers.Dense(2)])
        m.compile(optimizer=optimizers.SGD(lr), loss="mse")
        return m

    a, b = model(0.3), model(0.3 * 20 / 30)
    a.train_on_batch(x, y, sample_weight=w)
    b.train_on_batch(x[:20], y[:20])
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-12, atol=1e-14)


def test_class_weight_multiplies_each_rows_loss_like_the_equivalent_sample_weight():
    keras.config.set_floatx("float64")
    x, y = _multiclass_data(64)
    cw = {0: 0.5, 1: 2.0, 2: 1.0}

    def model():
        keras.utils.set_random_seed(8)
        return _small_classifier(optimizer=optimizers.Adam(0.01))

    a, b = model(), model()
    la = a.train_on_batch(x, y, class_weight=cw)
    lb = b.train_on_batch(x, y, sample_weight=np.array([cw[c] for c in y]))
    np.testing.assert_allclose(la, lb, rtol=1e-12)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-12, atol=1e-15)


def test_class_weight_in_fit_shifts_predictions_toward_the_heavier_class():
    x, y = _binary_data(300)
    rng = np.random.default_rng(6)
    y = np.where(rng.random(300) < 0.3, 1 - y, y)   # noisy labels: the weighting matters

    def train(class_weight):
        keras.utils.set_random_seed(2)
        m = keras.Sequential([keras.Input(shape=(8,)), layers.Dense(1, activation="sigmoid")])
        m.compile(optimizer=optimizers.Adam(0.05), loss="binary_crossentropy")
        m.fit(x, y, epochs=20, batch_size=32, class_weight=class_weight, verbose=0)
        return m.predict(x, verbose=0).mean()

    assert train({0: 1.0, 1: 10.0}) > train(None) + 0.1


def test_get_weights_and_set_weights_round_trip_in_keras_layout():
    model = keras.Sequential([keras.Input(shape=(5,)), layers.Dense(4, activation="relu"),
                              layers.Dropout(0.2), layers.Dense(2, use_bias=False)])
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(5, 4), (4,), (4, 2)]
    assert all(w.dtype == np.float32 for w in weights)
    rng = np.random.default_rng(0)
    new = [rng.normal(size=w.shape) for w in weights]
    model.set_weights(new)
    for got, want in zip(model.get_weights(), new):
        np.testing.assert_array_equal(got, want.astype(np.float32))
    # get_weights returns copies
    model.get_weights()[0][...] = 99.0
    assert not np.any(model.get_weights()[0] == 99.0)
    dense, dropout, out = model.layers
    assert dropout.get_weights() == []
    k, b = dense.get_weights()
    np.testing.assert_array_equal(k, new[0].astype(np.float32))
    dense.set_weights([np.zeros((5, 4)), np.ones(4)])
    assert np.all(model.get_weights()[1] == 1) and np.all(model.get_weights()[0] == 0)
    x = rng.normal(size=(3, 5)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), np.ones((3, 4)) @ new[2], rtol=1e-5)


def test_set_weights_accepts_weights_from_another_model_and_reproduces_its_predictions():
    x, y = _multiclass_data()
    a = _small_classifier()
    a.fit(x, y, epochs=2, verbose=0)
    b = _small_classifier()
    b.set_weights(a.get_weights())
    np.testing.assert_array_equal(a.predict(x, verbose=0), b.predict(x, verbose=0))


def test_count_params_and_summary_describe_the_model():
    model = keras.Sequential([keras.Input(shape=(784,)), layers.Dense(64, activation="relu", name="hidden"),
                              layers.Dense(10, activation="softmax", name="probs")], name="mnist_mlp")
    assert model.count_params() == 784 * 64 + 64 + 64 * 10 + 10 == 50890
    assert model.layers[0].count_params() == 50240
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "mnist_mlp" in text
    assert "hidden (Dense)" in text and "probs (Dense)" in text
    assert "(None, 64)" in text and "(None, 10)" in text
    assert "50,890" in text
    assert "50,240" in text or "50240" in text


def test_summary_prints_to_stdout_by_default(capsys):
    model = keras.Sequential([keras.Input(shape=(3,)), layers.Dense(2)])
    model.summary()
    assert "Total params: 8" in capsys.readouterr().out


# --------------------------------------------------------------------------- determinism
def _train_with_seed(seed, x, y, dropout=0.3):
    keras.utils.set_random_seed(seed)
    model = _small_classifier(dropout=dropout)
    model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    return model.get_weights()


def test_two_runs_with_the_same_seed_give_bit_identical_weights_even_with_dropout():
    x, y = _multiclass_data()
    a, b = _train_with_seed(42, x, y), _train_with_seed(42, x, y)
    for wa, wb in zip(a, b):
        np.testing.assert_array_equal(wa, wb)
    c = _train_with_seed(43, x, y)
    assert any(not np.array_equal(wa, wc) for wa, wc in zip(a, c))


def test_dropout_changes_training_but_not_inference():
    x, y = _multiclass_data()
    with_dropout = _train_with_seed(7, x, y, dropout=0.5)
    without = _train_with_seed(7, x, y, dropout=0.0)
    assert any(not np.array_equal(a, b) for a, b in zip(with_dropout, without))
    keras.utils.set_random_seed(0)
    model = _small_classifier(dropout=0.5)
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))


def test_dropout_draws_a_fresh_mask_at_every_training_step():
    keras.config.set_floatx("float64")
    x, y = _multiclass_data(32)
    model = _small_classifier(optimizer=optimizers.SGD(0.0), dropout=0.5)
    losses_ = [model.train_on_batch(x, y)[0] for _ in range(4)]
    assert len(set(losses_)) == 4
    # inference ignores dropout: evaluate is stable
    assert model.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)


def test_shuffle_false_training_is_deterministic_from_the_same_weights():
    x, y = _multiclass_data()
    a = _small_classifier()
    b = _small_classifier()
    b.set_weights(a.get_weights())
    ha = a.fit(x, y, epochs=2, shuffle=False, verbose=0)
    hb = b.fit(x, y, epochs=2, shuffle=False, verbose=0)
    assert ha.history == hb.history
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_shuffling_changes_the_result_compared_with_shuffle_false():
    x, y = _multiclass_data()
    a = _small_classifier()
    b = _small_classifier()
    b.set_weights(a.get_weights())
    a.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    b.fit(x, y, epochs=1, batch_size=16, shuffle=True, verbose=0)
    assert any(not np.array_equal(wa, wb) for wa, wb in zip(a.get_weights(), b.get_weights()))


# --------------------------------------------------------------------------- float64 and inputs
def test_set_floatx_float64_builds_float64_models():
    keras.config.set_floatx("float64")
    assert keras.config.floatx() == "float64"
    model = keras.Sequential([keras.Input(shape=(3,)), layers.Dense(2)])
    assert all(w.dtype == np.float64 for w in model.get_weights())
    out = model.predict(np.ones((4, 3), dtype=np.float32), verbose=0)
    assert out.dtype == np.float64
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), epochs=1, verbose=0)
    assert all(w.dtype == np.float64 for w in model.get_weights())


def test_a_layer_dtype_of_float64_makes_a_float64_model_under_float32_floatx():
    model = keras.Sequential([keras.Input(shape=(3,)), layers.Dense(2, dtype="float64")])
    assert model.predict(np.ones((2, 3)), verbose=0).dtype == np.float64


@pytest.mark.parametrize("kind", ["list", "fortran", "strided", "readonly", "int", "float64", "uint8"])
def test_inputs_in_any_numeric_layout_give_the_same_results(kind):
    rng = np.random.default_rng(7)
    base = rng.integers(0, 5, (40, 6)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    if kind == "list":
        x = base.tolist()
    elif kind == "fortran":
        x = np.asfortranarray(base)
    elif kind == "strided":
        big = np.zeros((80, 12), dtype=np.float32)
        big[::2, ::2] = base
        x = big[::2, ::2]
        assert not x.flags.c_contiguous
    elif kind == "readonly":
        x = base.copy()
        x.setflags(write=False)
    elif kind == "int":
        x = base.astype(np.int64)
    elif kind == "float64":
        x = base.astype(np.float64)
    else:
        x = base.astype(np.uint8)
    model = _small_classifier()
    ref = model.predict(base, verbose=0)
    np.testing.assert_array_equal(model.predict(x, verbose=0), ref)
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), model.evaluate(base, y, verbose=0))
    before = model.get_weights()
    model.fit(x, y, epochs=1, shuffle=False, verbose=0)
    other = _small_classifier()
    other.set_weights(before)
    other.fit(base, y, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_readonly_inputs_are_not_modified_by_training():
    x, y = _multiclass_data()
    x.setflags(write=False)
    y.setflags(write=False)
    copy = x.copy()
    model = _small_classifier()
    model.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(x, copy)


@pytest.mark.parametrize("shape", ["(n,)", "(n,1)", "float", "float (n,1)", "list", "uint8"])
def test_sparse_labels_are_accepted_in_every_common_form(shape):
    x, y = _multiclass_data(60)
    labels = {"(n,)": y, "(n,1)": y.reshape(-1, 1), "float": y.astype(np.float32),
              "float (n,1)": y.astype(np.float64).reshape(-1, 1), "list": y.tolist(),
              "uint8": y.astype(np.uint8)}[shape]
    model = _small_classifier()
    assert model.evaluate(x, labels, verbose=0) == model.evaluate(x, y, verbose=0)
    model.fit(x, labels, epochs=1, verbose=0)


@pytest.mark.parametrize("shape", ["(n,)", "(n,1)", "bool"])
def test_binary_targets_are_accepted_as_vectors_columns_and_booleans(shape):
    x, y = _binary_data(50)
    labels = {"(n,)": y, "(n,1)": y.reshape(-1, 1), "bool": y.astype(bool)}[shape]
    model = keras.Sequential([keras.Input(shape=(8,)), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    assert model.evaluate(x, labels, verbose=0) == model.evaluate(x, y, verbose=0)


def test_a_one_feature_model_accepts_a_1d_input_vector():
    model = keras.Sequential([keras.Input(shape=(1,)), layers.Dense(2)])
    x = np.arange(5, dtype=np.float32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x.reshape(-1, 1), verbose=0))


# --------------------------------------------------------------------------- callbacks
class Recorder(Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_train_begin(self, logs=None):
        self.events.append(("train_begin",))

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("epoch_begin", epoch))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch_end", epoch, dict(logs)))

    def on_train_end(self, logs=None):
        self.events.append(("train_end",))


def test_callbacks_receive_the_epoch_hooks_in_order_with_logs():
    x, y = _multiclass_data()
    model = _small_classifier()
    rec = Recorder()
    model.fit(x[:200], y[:200], epochs=2, batch_size=50, validation_data=(x[200:], y[200:]),
              callbacks=[rec], verbose=0)
    kinds = [e[:2] if len(e) > 1 else e for e in rec.events]
    assert kinds == [("train_begin",), ("epoch_begin", 0), ("epoch_end", 0), ("epoch_begin", 1),
                     ("epoch_end", 1), ("train_end",)]
    logs = rec.events[2][2]
    assert set(logs) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert rec.model is model
    assert rec.params["epochs"] == 2 and rec.params["steps"] == 4


def test_batch_hooks_are_called_once_per_batch_when_overridden():
    x, y = _multiclass_data(100)
    model = _small_classifier()
    calls = []

    class Batches(Callback):
        def on_train_batch_begin(self, batch, logs=None):
            calls.append(("begin", batch))

        def on_train_batch_end(self, batch, logs=None):
            calls.append(("end", batch, sorted(logs)))

    model.fit(x, y, epochs=2, batch_size=30, callbacks=[Batches()], verbose=0)
    per_epoch = [("begin", 0), ("end", 0), ("begin", 1), ("end", 1), ("begin", 2), ("end", 2),
                 ("begin", 3), ("end", 3)]
    assert [c[:2] for c in calls] == per_epoch * 2
    assert all(c[2] == ["accuracy", "loss"] for c in calls if c[0] == "end")


def test_the_legacy_on_batch_end_hook_is_called_too():
    x, y = _multiclass_data(64)
    model = _small_classifier()
    seen = []

    class Legacy(Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(batch)

    model.fit(x, y, epochs=1, batch_size=16, callbacks=[Legacy()], verbose=0)
    assert seen == [0, 1, 2, 3]


def test_batch_hooks_are_not_dispatched_when_no_callback_overrides_them():
    x, y = _multiclass_data(64)
    model = _small_classifier()
    rec = Recorder()
    spied = []
    rec.on_train_batch_end = lambda batch, logs=None: spied.append(batch)   # not a class override
    model.fit(x, y, epochs=1, batch_size=8, callbacks=[rec], verbose=0)
    assert spied == []
    assert ("epoch_end", 0) in [e[:2] for e in rec.events]


def test_the_batch_logs_are_running_epoch_averages():
    keras.config.set_floatx("float64")
    x, y = _multiclass_data(64)
    model = _small_classifier()
    last = {}

    class Last(Callback):
        def on_train_batch_end(self, batch, logs=None):
            last.update(logs)

    history = model.fit(x, y, epochs=1, batch_size=16, callbacks=[Last()], verbose=0)
    assert last["loss"] == pytest.approx(history.history["loss"][0], rel=1e-12)
    assert last["accuracy"] == pytest.approx(history.history["accuracy"][0], rel=1e-12)


def test_stop_training_set_in_on_epoch_end_stops_fit_after_that_epoch():
    x, y = _multiclass_data()
    model = _small_classifier()

    class StopAtTwo(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    history = model.fit(x, y, epochs=10, callbacks=[StopAtTwo()], verbose=0)
    assert history.epoch == [0, 1] and len(history.history["loss"]) == 2


def test_stop_training_set_in_a_batch_hook_stops_fit_after_that_batch():
    x, y = _multiclass_data(100)
    model = _small_classifier()

    class StopAfterThirdBatch(Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                self.model.stop_training = True

    history = model.fit(x, y, epochs=5, batch_size=10, callbacks=[StopAfterThirdBatch()], verbose=0)
    assert model.optimizer.iterations == 3
    assert history.epoch == [0]


def test_a_user_supplied_history_callback_records_the_same_logs():
    x, y = _multiclass_data()
    model = _small_classifier()
    mine = History()
    returned = model.fit(x, y, epochs=2, callbacks=[mine], verbose=0)
    assert mine.history == returned.history and mine.epoch == [0, 1]


def test_verbose_two_prints_one_line_per_epoch_and_verbose_zero_prints_nothing(capsys):
    x, y = _multiclass_data()
    model = _small_classifier()
    model.fit(x, y, epochs=2, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""
    model.fit(x, y, epochs=2, verbose=2)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out and "loss:" in out and "accuracy:" in out


def test_verbose_one_draws_a_progress_bar(capsys):
    x, y = _multiclass_data()
    model = _small_classifier()
    model.fit(x, y, epochs=1, batch_size=60, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch" not in out   # as Keras: no epoch header for a single epoch
    assert "4/4 \u2501" in out and "loss:" in out and "accuracy:" in out


def test_a_user_supplied_progbar_logger_draws_the_progress_bar_on_its_stream():
    x, y = _multiclass_data()
    model = _small_classifier()
    stream = io.StringIO()
    bar = keras.callbacks.ProgbarLogger(verbose=1, stream=stream)
    model.fit(x, y, epochs=1, batch_size=60, verbose=1, callbacks=[bar])
    text = stream.getvalue()
    assert "4/4 \u2501" in text and "loss:" in text, f"no finished bar was written: {text!r}"


def test_changing_the_learning_rate_from_a_callback_takes_effect_at_once():
    x, y = _multiclass_data()
    model = _small_classifier(optimizer=optimizers.SGD(0.1))
    snapshots = []

    class FreezeSecondEpoch(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.model.optimizer.learning_rate = 0.0 if epoch == 1 else 0.1

        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(self.model.get_weights())

    model.fit(x, y, epochs=3, batch_size=16, callbacks=[FreezeSecondEpoch()], verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(snapshots[0], snapshots[1]))
    assert not all(np.array_equal(a, b) for a, b in zip(snapshots[1], snapshots[2]))


def test_a_second_fit_continues_from_the_trained_weights_and_optimizer_state():
    x, y = _multiclass_data()
    model = _small_classifier()
    first = model.fit(x, y, epochs=3, batch_size=24, verbose=0)
    assert model.optimizer.iterations == 30
    second = model.fit(x, y, epochs=2, batch_size=24, verbose=0)
    assert model.optimizer.iterations == 50
    assert second.history["loss"][0] < first.history["loss"][0]
    assert model.history is second


def test_adding_a_layer_to_a_trained_model_keeps_the_trained_weights():
    x, y = _multiclass_data()
    model = _small_classifier()
    model.fit(x, y, epochs=1, verbose=0)
    before = model.get_weights()
    model.add(layers.Dense(2))
    after = model.get_weights()
    assert [w.shape for w in after] == [w.shape for w in before] + [(3, 2), (2,)]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, np.zeros((len(x), 2)), epochs=1, verbose=0)
    assert model.output_shape == (None, 2)


# --------------------------------------------------------------------------- misc API
def test_num_threads_can_be_set_and_read_back():
    original = keras.get_num_threads()
    try:
        keras.set_num_threads(1)
        assert keras.get_num_threads() == 1
        x, y = _multiclass_data()
        model = _small_classifier()
        single = model.predict(x, verbose=0)
        keras.set_num_threads(0)
        assert keras.get_num_threads() >= 1
        np.testing.assert_allclose(model.predict(x, verbose=0), single, rtol=1e-5, atol=1e-7)
    finally:
        keras.set_num_threads(0)
    assert keras.get_num_threads() == original


def test_fashion_mnist_load_data_raises_file_not_found_for_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        keras.datasets.fashion_mnist.load_data(path=str(tmp_path))


def test_the_iris_dataset_ships_with_a_stratified_split():
    (x_train, y_train), (x_test, y_test) = keras.datasets.iris.load_data()
    assert x_train.shape == (120, 4) and x_test.shape == (30, 4)
    assert y_train.shape == (120,) and y_test.shape == (30,)
    assert np.bincount(y_test).tolist() == [10, 10, 10]
    assert set(np.unique(y_train)) == {0, 1, 2}


def _scaled_iris():
    (x_train, y_train), (x_test, y_test) = keras.datasets.iris.load_data()
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)   # StandardScaler fitted on train
    return ((x_train - mean) / std, y_train), ((x_test - mean) / std, y_test)


@pytest.mark.parametrize("targets", ["one_hot", "sparse"])
def test_the_iris_example_reaches_ninety_percent_test_accuracy(targets):
    (x_train, y_train), (x_test, y_test) = _scaled_iris()
    model = keras.Sequential([
        layers.Dense(32, activation="relu", kernel_regularizer=regularizers.l2(0.01), input_shape=(4,)),
        layers.Dense(16, activation="relu", kernel_regularizer=regularizers.l2(0.01)),
        layers.Dense(3, activation="softmax"),
    ])
    if targets == "one_hot":
        model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
        y_fit, y_eval = np.eye(3)[y_train], np.eye(3)[y_test]
    else:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        y_fit, y_eval = y_train, y_test
    model.fit(x_train, y_fit, epochs=100, batch_size=10, verbose=0)
    loss, acc = model.evaluate(x_test, y_eval, verbose=0)
    assert acc >= 0.9, f"iris test accuracy {acc:.3f}"
    assert np.mean(model.predict(x_test, verbose=0).argmax(1) == y_test) == pytest.approx(acc)


def test_a_784_64_64_10_network_reaches_85_percent_on_fashion_mnist_in_five_epochs():
    # loads the data once (conftest.fashion_mnist_available() would load it a second time)
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    except FileNotFoundError:
        pytest.skip("Fashion-MNIST IDX files not installed")
    x_train = x_train.reshape(len(x_train), 784).astype("float32") / 255.0
    x_test = x_test.reshape(len(x_test), 784).astype("float32") / 255.0
    model = keras.Sequential([layers.Dense(64, activation="relu", input_shape=(784,)),
                              layers.Dense(64, activation="relu"),
                              layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, epochs=5, batch_size=64, validation_split=0.1, verbose=0)
    assert len(history.history["val_accuracy"]) == 5
    loss, acc = model.evaluate(x_test, y_test, verbose=0)
    assert acc >= 0.85, f"Fashion-MNIST test accuracy {acc:.3f}"


# --------------------------------------------------------------------------- Flatten
def _images(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 6, 5)).astype(np.float32), rng.integers(0, 3, n)


@pytest.mark.parametrize("style", ["input", "input_shape", "lazy"])
def test_a_keras_image_script_with_flatten_trains_exactly_as_on_flattened_rows(style):
    # keras.Input(shape=(28, 28)) + Flatten(), Flatten(input_shape=...) and a
    # lazily built model all train on (n, h, w) arrays as on (n, h*w) rows.
    x, y = _images()
    head = {"input": [keras.Input(shape=(6, 5)), layers.Flatten()],
            "input_shape": [layers.Flatten(input_shape=(6, 5))],
            "lazy": [layers.Flatten()]}[style]
    keras.utils.set_random_seed(3)
    images = keras.Sequential(head + [layers.Dense(8, activation="relu"), layers.Dropout(0.2),
                                      layers.Dense(3, activation="softmax")])
    if style == "lazy":
        assert not images.built
        images.predict(x[:1], verbose=0)     # builds from the data's shape (and draws the seed now)
    keras.utils.set_random_seed(3)
    rows = keras.Sequential([keras.Input(shape=(30,)), layers.Dense(8, activation="relu"), layers.Dropout(0.2),
                             layers.Dense(3, activation="softmax")])
    rows.set_weights(images.get_weights())
    for m in (images, rows):
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    h1 = images.fit(x, y, epochs=3, batch_size=16, verbose=0, validation_data=(x[:8], y[:8]))
    h2 = rows.fit(x.reshape(64, 30), y, epochs=3, batch_size=16, verbose=0, validation_data=(x[:8].reshape(8, 30), y[:8]))
    assert h1.history == h2.history
    for a, b in zip(images.get_weights(), rows.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(images.predict(x, verbose=0), rows.predict(x.reshape(64, 30), verbose=0))
    assert images.evaluate(x, y, verbose=0) == rows.evaluate(x.reshape(64, 30), y, verbose=0)
    assert images.input_shape == (None, 6, 5) and images.output_shape == (None, 3)


def test_flatten_shows_in_summary_and_survives_get_config_and_from_config():
    model = keras.Sequential([keras.Input(shape=(6, 5)), layers.Dropout(0.1), layers.Flatten(name="flat"),
                              layers.Dense(4)])
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "flat (Flatten)" in text and "(None, 30)" in text and "(None, 6, 5)" in text
    assert "Total params: 124" in text
    clone = keras.Sequential.from_config(model.get_config())
    assert [type(l).__name__ for l in clone.layers] == ["Dropout", "Flatten", "Dense"]
    assert clone.input_shape == (None, 6, 5) and clone.count_params() == 124
    assert layers.Flatten()(np.ones((2, 3, 4))).shape == (2, 12)
    assert layers.Flatten().compute_output_shape((None, 3, 4)) == (None, 12)


def test_flatten_after_dense_is_the_identity():
    x, y = _images()
    x = x.reshape(64, 30)
    keras.utils.set_random_seed(1)
    a = keras.Sequential([keras.Input(shape=(30,)), layers.Dense(5, activation="tanh"), layers.Flatten(), layers.Dense(3)])
    keras.utils.set_random_seed(1)
    b = keras.Sequential([keras.Input(shape=(30,)), layers.Dense(5, activation="tanh"), layers.Dense(3)])
    b.set_weights(a.get_weights())
    np.testing.assert_array_equal(a.predict(x, verbose=0), b.predict(x, verbose=0))


def test_show_config_names_the_target_of_every_kernel_family():
    """show_config says which kernels run here -- GEMM, int8, bfloat16, optimizer, both CRCs --
    and follows a target forced at run time."""
    from fastmlp import _engine
    info = keras.show_config(print_fn=None)
    for key, now in (("gemm_target", _engine.gemm_target), ("int8_target", _engine.int8_target),
                     ("bf16_target", _engine.bf16_target), ("optim_target", _engine.optim_target),
                     ("crc32c", _engine.crc32c_impl), ("crc32", _engine.crc32_impl)):
        assert info[key] == now() and info[key], key
    before = _engine.int8_target()
    try:
        _engine.set_int8_target("generic")
        assert keras.show_config(print_fn=None)["int8_target"] == "generic"
    finally:
        _engine.set_int8_target(before)
    lines = []
    keras.show_config(print_fn=lines.append)
    assert any(line.startswith("int8_target: ") for line in lines)


def test_setting_a_model_trainable_sets_its_layers_as_keras_does():
    """Keras's Layer.trainable setter recurses: freezing a base freezes its layers (and its config
    says so), and unfreezing it unfreezes them all, nested models included."""
    inner = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(3), layers.Dense(3)], name="inner")
    base = keras.Sequential([keras.Input(shape=(4,)), inner, layers.Dense(2)], name="base")
    inner.layers[0].trainable = False
    base.trainable = False
    assert [layer.trainable for layer in inner.layers + base.layers] == [False] * 4
    assert all(not layer["config"]["trainable"] for layer in inner.get_config()["layers"][1:])
    i = keras.Input(shape=(4,))
    model = keras.Model(i, layers.Dense(1)(base(i)))
    model.compile("sgd", "mse")
    before = base.get_weights()
    model.fit(np.ones((4, 4)), np.ones((4, 1)), verbose=0)
    for a, b in zip(before, base.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert len(model.trainable_weights) == 2
    base.trainable = True
    assert [layer.trainable for layer in inner.layers + base.layers] == [True] * 4
    assert len(model.trainable_weights) == 8
