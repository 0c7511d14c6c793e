"""Misuse that must end in a clear exception, never in memory corruption."""
import copy
import pickle
import threading

import numpy as np
import pytest

import fastmlp
from fastmlp import callbacks, layers, metrics, optimizers


def _data(n=64, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, d), dtype=np.float32), rng.random(n)


def test_one_optimizer_shared_by_two_models_is_refused_for_the_second():
    opt = optimizers.Adam()
    small = fastmlp.Sequential([fastmlp.Input(shape=(4,)), layers.Dense(1)])
    large = fastmlp.Sequential([fastmlp.Input(shape=(4,)), layers.Dense(256), layers.Dense(1)])
    small.compile(optimizer=opt, loss="mse")
    large.compile(optimizer=opt, loss="mse")
    x, y = _data()
    small.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="another model"):
        large.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="another model"):
        large.train_on_batch(x, y)


def test_recompiling_from_a_callback_during_fit_uses_the_new_optimizer():
    class Recompile(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.model.compile(optimizer="adam", loss="mse")

    model = fastmlp.Sequential([fastmlp.Input(shape=(4,)), layers.Dense(3), layers.Dense(1)])
    model.compile(optimizer="rmsprop", loss="mse")
    x, y = _data()
    history = model.fit(x, y, epochs=3, verbose=0, callbacks=[Recompile()])
    assert len(history.history["loss"]) == 3
    assert isinstance(model.optimizer, optimizers.Adam) and model.optimizer.iterations == 4


def test_an_unbuilt_model_pickles_and_deep_copies():
    model = fastmlp.Sequential([layers.Dense(3, activation="relu"), layers.Dense(2)])
    for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert not clone.built and [l.units for l in clone.layers] == [3, 2]
        clone.compile(optimizer="sgd", loss="mse")
        clone.fit(_data(d=5)[0], np.zeros((64, 2)), verbose=0)
        assert clone.built


def test_a_class_id_beyond_the_outputs_is_refused():
    model = fastmlp.Sequential([fastmlp.Input(shape=(4,)), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=[metrics.Precision(class_id=7)])
    x, _ = _data()
    with pytest.raises(ValueError, match="class_id=7"):
        model.fit(x, np.eye(3)[np.arange(64) % 3], verbose=0)


def test_training_one_model_from_two_threads_at_once_is_refused_not_corrupting():
    model = fastmlp.Sequential([fastmlp.Input(shape=(16,)), layers.Dense(64), layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    x, y = _data(n=20000, d=16)
    refused = []

    def second():
        for n in range(100, 2100, 100):
            try:
                model.train_on_batch(x[:n], y[:n])
            except RuntimeError as e:
                refused.append(str(e))

    worker = threading.Thread(target=second)
    worker.start()
    for _ in range(3):   # whichever starts second is refused; neither corrupts the other
        try:
            model.fit(x, y, epochs=1, batch_size=32, verbose=0)
        except RuntimeError as e:
            refused.append(str(e))
    worker.join()
    assert all("already training" in r for r in refused)
    assert np.all(np.isfinite(model.predict(x[:10])))


def test_a_frozen_layer_keeps_its_weights_after_recompiling_as_in_keras():
    x, y = _data(n=128, d=4)
    model = fastmlp.Sequential([fastmlp.Input(shape=(4,)), layers.Dense(8, activation="relu", name="base"),
                                layers.Dense(1, name="head")])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, verbose=0)
    model.get_layer("base").trainable = False
    model.compile(optimizer="adam", loss="mse")
    frozen = [w.copy() for w in model.get_layer("base").get_weights()]
    head = [w.copy() for w in model.get_layer("head").get_weights()]
    model.fit(x, y, epochs=2, verbose=0)
    for before, after in zip(frozen, model.get_layer("base").get_weights()):
        np.testing.assert_array_equal(before, after)
    assert not np.array_equal(head[0], model.get_layer("head").get_weights()[0])
    model.get_layer("base").trainable = True
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, verbose=0)
    assert not np.array_equal(frozen[0], model.get_layer("base").get_weights()[0])


def test_a_model_rebuilt_from_its_config_has_the_same_architecture():
    model = fastmlp.Sequential([fastmlp.Input(shape=(5,)), layers.Dense(7, activation="tanh"),
                                layers.Dropout(0.2), layers.BatchNormalization(center=False),
                                layers.Dense(3, activation="softmax", use_bias=False)], name="orig")
    clone = fastmlp.Sequential.from_config(model.get_config())
    assert clone.built and clone.name == "orig"
    assert [type(l).__name__ for l in clone.layers] == ["Dense", "Dropout", "BatchNormalization", "Dense"]
    assert [w.shape for w in clone.get_weights()] == [w.shape for w in model.get_weights()]
    clone.set_weights(model.get_weights())
    x = np.random.default_rng(0).random((4, 5))
    np.testing.assert_array_equal(clone.predict(x), model.predict(x))
    with pytest.raises(ValueError, match="Unknown layer class"):
        fastmlp.Sequential.from_config({"layers": [{"class_name": "Lambda", "config": {}}]})


def test_a_frozen_batch_normalization_runs_in_inference_mode_as_in_keras_3():
    x, y = _data(n=256, d=6)
    x = x * 3 + 1
    model = fastmlp.Sequential([fastmlp.Input(shape=(6,)), layers.BatchNormalization(name="bn"),
                                layers.Dense(1, name="head")])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, verbose=0)
    bn = model.get_layer("bn")
    bn.trainable = False
    model.compile(optimizer="adam", loss="mse")
    stats = [w.copy() for w in bn.get_weights()]
    model.fit(x, y, epochs=2, verbose=0)
    for before, after in zip(stats, bn.get_weights()):   # gamma, beta and the moving statistics
        np.testing.assert_array_equal(before, after)
    # a training step now computes its loss with the moving statistics, like evaluate
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0), loss="mse")
    before_step = model.evaluate(x[:32], y[:32], verbose=0)
    np.testing.assert_allclose(model.train_on_batch(x[:32], y[:32]), before_step, rtol=1e-5)
    bn.trainable = True          # unfrozen: batch statistics again, so the training loss differs
    model.compile(optimizer=optimizers.SGD(learning_rate=0.0), loss="mse")
    assert abs(model.train_on_batch(x[:32], y[:32]) - before_step) > 1e-4


def test_a_frozen_model_stays_frozen_through_its_config_and_its_file(tmp_path):
    model = fastmlp.Sequential([fastmlp.Input(shape=(5,)), layers.Dense(3, activation="softmax")])
    model.trainable = False
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    for clone in (fastmlp.models.from_bytes(model.to_bytes()),
                  fastmlp.Sequential.from_config(model.get_config())):
        assert clone.trainable is False and clone.trainable_weights == []
    path = tmp_path / "frozen.fmlp"
    model.save(path)
    loaded = fastmlp.load_model(path)
    before = [w.copy() for w in loaded.get_weights()]
    x = np.random.default_rng(0).random((32, 5))
    loaded.fit(x, np.eye(3)[np.arange(32) % 3], verbose=0)
    for a, b in zip(before, loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_sum_reduction_loss_trains_and_reports_as_in_keras():
    x, _ = _data(n=32, d=4)
    y = np.random.default_rng(1).random((32, 2))
    models = {}
    for reduction in ("sum_over_batch_size", "sum"):
        m = fastmlp.Sequential([fastmlp.Input(shape=(4,)), layers.Dense(2, kernel_initializer="zeros")])
        m.compile(optimizer=optimizers.SGD(0.001), loss=fastmlp.losses.MeanSquaredError(reduction=reduction))
        models[reduction] = (m, m.evaluate(x, y, batch_size=32, verbose=0))
        m.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    (mean_model, mean_loss), (sum_model, sum_loss) = models["sum_over_batch_size"], models["sum"]
    np.testing.assert_allclose(sum_loss, 32 * mean_loss, rtol=1e-6)
    step_mean = mean_model.get_weights()[0]
    step_sum = sum_model.get_weights()[0]
    np.testing.assert_allclose(step_sum, 32 * step_mean, rtol=1e-5)
    with pytest.raises(ValueError, match="scalar reduction"):
        mean_model.compile(optimizer="sgd", loss=fastmlp.losses.MeanSquaredError(reduction="none"))
