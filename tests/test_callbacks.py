"""Callbacks with Keras 3 semantics, the fit loop's hooks, History and progress output."""
import csv
import math
import os
import re
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp import callbacks as C
from fastmlp.layers import Dense


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


# =========================================================================== helpers
def _data(n=64, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] > 0).astype(np.int64)
    return X, y


def _model(lr=0.05, metrics=("accuracy",), optimizer=None):
    model = fastmlp.Sequential([fastmlp.Input(shape=(4,)), Dense(8, activation="relu"),
                                Dense(2, activation="softmax")])
    model.compile(optimizer=optimizer or fastmlp.optimizers.SGD(learning_rate=lr),
                  loss="sparse_categorical_crossentropy", metrics=list(metrics))
    return model


class Script(C.Callback):
    """Overwrites monitored values in the epoch logs (it must come before the callback
    under test, which then sees the scripted values in the same logs dict)."""

    def __init__(self, key, values):
        super().__init__()
        self.key, self.values = key, list(values)

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = float(self.values[epoch])


class WeightsAtEpochEnd(C.Callback):
    def __init__(self):
        super().__init__()
        self.weights = {}

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch] = self.model.get_weights()


class CountingNet:
    """Delegates to the engine's Network and counts ``train`` calls (chunks)."""

    def __init__(self, net):
        self._net, self.train_calls = net, 0

    def train(self, *args, **kwargs):
        self.train_calls += 1
        return self._net.train(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._net, name)


def _count_engine_calls(model):
    counter = CountingNet(model._net)
    model._net = counter
    return counter


# --------------------------------------------------------------------------- scripted driver
class _Opt:
    def __init__(self, lr):
        self.learning_rate = lr


class _DummyModel:
    """Enough of a model for epoch-level callbacks: weights tagged with the epoch."""

    def __init__(self, lr=0.1):
        self.stop_training = False
        self.optimizer = _Opt(lr)
        self.tag = -1

    def get_weights(self):
        return [np.array([float(self.tag)])]

    def set_weights(self, weights):
        self.tag = int(np.asarray(weights[0])[0])


def drive(callback, key, values, lr=0.1):
    """Feed scripted monitored values epoch by epoch; returns what the callback decided."""
    model = _DummyModel(lr)
    callback.set_model(model)
    callback.on_train_begin()
    lrs, logged, ran = [], [], 0
    for epoch, value in enumerate(values):
        model.tag = epoch
        logs = {key: value, "loss": value}
        callback.on_epoch_end(epoch, logs)
        ran = epoch + 1
        lrs.append(float(model.optimizer.learning_rate))
        logged.append(logs.get("learning_rate"))
        if model.stop_training:
            break
    callback.on_train_end()
    return {"epochs_run": ran, "stopped_epoch": getattr(callback, "stopped_epoch", None),
            "final_weights_epoch": model.tag, "lrs": lrs, "logged_lr": logged}


# =========================================================================== EarlyStopping
DOWN_THEN_UP = [1.0, 0.8, 0.7, 0.75, 0.72, 0.71, 0.9, 1.0, 1.1, 1.2]


def test_early_stopping_patience_zero_stops_at_the_first_epoch_without_improvement():
    r = drive(C.EarlyStopping(monitor="val_loss", patience=0), "val_loss", DOWN_THEN_UP)
    assert r["epochs_run"] == 4 and r["stopped_epoch"] == 3


def test_early_stopping_waits_patience_epochs_without_improvement():
    r = drive(C.EarlyStopping(monitor="val_loss", patience=3), "val_loss", DOWN_THEN_UP)
    assert r["stopped_epoch"] == 5          # best at epoch 2, then 3, 4, 5 without improvement


def test_early_stopping_min_delta_makes_small_improvements_not_count():
    values = [1.0, 0.95, 0.91, 0.88, 0.86, 0.85]
    assert drive(C.EarlyStopping(patience=2, min_delta=0.0), "val_loss", values)["stopped_epoch"] == 0
    r = drive(C.EarlyStopping(patience=2, min_delta=0.05), "val_loss", values)
    assert r["stopped_epoch"] == 4          # best 0.91 at epoch 2; 0.88 and 0.86 are within 0.05


def test_early_stopping_mode_max_treats_increases_as_improvements():
    values = [0.5, 0.6, 0.7, 0.65, 0.6]
    assert drive(C.EarlyStopping(monitor="val_x", mode="max", patience=1), "val_x", values)["stopped_epoch"] == 3
    assert drive(C.EarlyStopping(monitor="val_x", mode="min", patience=1), "val_x", values)["stopped_epoch"] == 1


@pytest.mark.parametrize("monitor,direction", [
    ("val_accuracy", "max"), ("accuracy", "max"), ("val_auc", "max"), ("precision", "max"),
    ("val_recall", "max"), ("f1_score", "max"), ("val_loss", "min"), ("loss", "min"),
    ("val_mean_absolute_error", "min"), ("root_mean_squared_error", "min"),
])
def test_early_stopping_mode_auto_infers_the_direction_from_the_metric_name(monitor, direction):
    rising = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    r = drive(C.EarlyStopping(monitor=monitor, mode="auto", patience=1), monitor, rising)
    if direction == "max":
        assert r["stopped_epoch"] == 0 and r["epochs_run"] == 6
    else:
        assert r["stopped_epoch"] == 1


def test_early_stopping_rejects_an_unknown_mode():
    with pytest.raises(ValueError):
        C.EarlyStopping(mode="sideways")


def test_early_stopping_baseline_stops_when_the_baseline_is_never_beaten():
    values = [0.9, 0.85, 0.86, 0.87, 0.88, 0.89]
    # baseline never beaten: the wait is never reset, so the first non-improving epoch stops
    r = drive(C.EarlyStopping(patience=2, baseline=0.5), "val_loss", values)
    assert r["stopped_epoch"] == 2
    r = drive(C.EarlyStopping(patience=2, baseline=0.95), "val_loss", values)
    assert r["stopped_epoch"] == 3
    # as in Keras, an improving epoch never stops training, even below the baseline
    r = drive(C.EarlyStopping(patience=1, baseline=0.1), "val_loss", [0.9, 0.8, 0.7, 0.6])
    assert r["stopped_epoch"] == 0 and r["epochs_run"] == 4


def test_early_stopping_start_from_epoch_ignores_the_first_epochs():
    values = [1.0, 2.0, 3.0, 4.0, 3.5, 5.0, 6.0]
    assert drive(C.EarlyStopping(patience=0), "val_loss", values)["stopped_epoch"] == 1
    r = drive(C.EarlyStopping(patience=1, start_from_epoch=3), "val_loss", values)
    assert r["stopped_epoch"] == 5          # counting starts at epoch 3; best 3.5 at epoch 4


def test_early_stopping_restores_the_best_weights_when_it_stops_training():
    r = drive(C.EarlyStopping(patience=2, restore_best_weights=True), "val_loss", DOWN_THEN_UP)
    assert r["stopped_epoch"] == 4
    assert r["final_weights_epoch"] == 2


def test_early_stopping_without_restore_keeps_the_last_weights():
    r = drive(C.EarlyStopping(patience=2), "val_loss", DOWN_THEN_UP)
    assert r["final_weights_epoch"] == 4


def test_early_stopping_restores_the_best_weights_at_train_end_even_without_stopping_as_keras_3():
    # Keras 3 (keras/src/callbacks/early_stopping.py, on_train_end) restores best_weights at
    # the end of training whenever restore_best_weights=True, also when patience ran out of
    # epochs before it could stop training (keras-team/keras#18822, tf-keras#693).
    values = [1.0, 0.5, 0.6, 0.7]
    r = drive(C.EarlyStopping(patience=5, restore_best_weights=True), "val_loss", values)
    assert r["stopped_epoch"] == 0 and r["epochs_run"] == 4
    assert r["final_weights_epoch"] == 1


def test_early_stopping_warns_when_the_monitored_value_is_missing():
    cb = C.EarlyStopping(monitor="val_nope")
    cb.set_model(_DummyModel())
    cb.on_train_begin()
    with pytest.warns(UserWarning, match="val_nope"):
        cb.on_epoch_end(0, {"loss": 1.0})


def test_early_stopping_state_is_reset_by_on_train_begin():
    cb = C.EarlyStopping(patience=0)
    drive(cb, "val_loss", [1.0, 2.0])
    assert cb.stopped_epoch == 1
    r = drive(cb, "val_loss", [3.0, 2.0, 1.0])
    assert r["stopped_epoch"] == 0 and r["epochs_run"] == 3


ES_CONFIGS = [
    dict(patience=0), dict(patience=2), dict(patience=3, min_delta=0.05),
    dict(patience=1, mode="max"), dict(patience=2, baseline=0.72), dict(patience=2, baseline=0.2),
    dict(patience=1, start_from_epoch=4), dict(patience=2, restore_best_weights=True),
    dict(patience=20, restore_best_weights=True), dict(patience=1, mode="max", restore_best_weights=True),
    dict(patience=2, min_delta=-0.01, restore_best_weights=True, start_from_epoch=2),
]
ES_SEQUENCES = [DOWN_THEN_UP, [1.0, 0.99, 0.98, 0.97, 0.96, 0.95, 0.94], [0.5, 0.5, 0.5, 0.5, 0.5],
                [3.0, 1.0, 2.0, 0.5, 0.6, 0.7, 0.4, 0.45, 0.5, 0.55, 0.6]]


@pytest.mark.parametrize("config", ES_CONFIGS, ids=[str(c) for c in ES_CONFIGS])
@pytest.mark.parametrize("seq", range(len(ES_SEQUENCES)))
def test_early_stopping_decisions_match_keras_on_scripted_values(config, seq):
    keras = _keras()
    values = ES_SEQUENCES[seq]
    ours = drive(C.EarlyStopping(monitor="val_loss", **config), "val_loss", values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = drive(keras.callbacks.EarlyStopping(monitor="val_loss", **config), "val_loss", values)
    for key in ("epochs_run", "stopped_epoch", "final_weights_epoch"):
        assert ours[key] == theirs[key], key


# --------------------------------------------------------------------------- EarlyStopping in fit
def test_early_stopping_in_fit_stops_training_and_history_has_the_epochs_run():
    X, y = _data()
    model = _model()
    es = C.EarlyStopping(monitor="val_loss", patience=1)
    hist = model.fit(X, y, epochs=20, batch_size=16, verbose=0, validation_data=(X, y),
                     callbacks=[Script("val_loss", [1, 0.5, 0.6, 0.7] + [0.9] * 16), es])
    assert es.stopped_epoch == 2
    assert hist.epoch == [0, 1, 2]
    assert len(hist.history["loss"]) == 3


def test_early_stopping_in_fit_restores_the_weights_of_the_best_epoch():
    X, y = _data()
    model = _model()
    rec = WeightsAtEpochEnd()
    es = C.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    model.fit(X, y, epochs=20, batch_size=16, verbose=0, validation_data=(X, y),
              callbacks=[rec, Script("val_loss", [1, 0.5, 0.6, 0.7, 0.8] + [0.9] * 15), es])
    assert es.stopped_epoch == 3
    for got, want in zip(model.get_weights(), rec.weights[1]):
        np.testing.assert_array_equal(got, want)


def test_early_stopping_in_fit_on_a_real_metric_with_mode_auto_for_accuracy():
    X, y = _data()
    model = _model(lr=0.0)
    es = C.EarlyStopping(monitor="accuracy", patience=2)
    hist = model.fit(X, y, epochs=10, batch_size=16, verbose=0, callbacks=[es])
    assert len(hist.epoch) == 3             # constant accuracy never improves


# =========================================================================== ReduceLROnPlateau
def test_reduce_lr_on_plateau_multiplies_by_factor_after_patience_epochs():
    r = drive(C.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2), "val_loss",
              [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.8], lr=0.1)
    assert r["lrs"] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


def test_reduce_lr_on_plateau_puts_the_learning_rate_in_the_logs():
    r = drive(C.ReduceLROnPlateau(factor=0.5, patience=1), "val_loss", [1.0, 1.0, 1.0], lr=0.2)
    assert r["logged_lr"] == pytest.approx([0.2, 0.2, 0.1])


def test_reduce_lr_on_plateau_cooldown_pauses_counting_after_a_reduction():
    values = [1.0] * 9
    no_cool = drive(C.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=0), "val_loss", values, lr=1.0)
    cool = drive(C.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=2), "val_loss", values, lr=1.0)
    assert no_cool["lrs"] == pytest.approx([1, 1, .5, .5, .25, .25, .125, .125, .0625])
    assert cool["lrs"] == pytest.approx([1, 1, .5, .5, .5, .25, .25, .25, .125])


def test_reduce_lr_on_plateau_never_goes_below_min_lr():
    r = drive(C.ReduceLROnPlateau(factor=0.1, patience=1, min_lr=0.003), "val_loss", [1.0] * 6, lr=0.1)
    assert r["lrs"] == pytest.approx([0.1, 0.01, 0.003, 0.003, 0.003, 0.003])


def test_reduce_lr_on_plateau_min_delta_requires_a_significant_improvement():
    values = [1.0, 0.99995, 0.9999, 0.99985]
    r = drive(C.ReduceLROnPlateau(factor=0.5, patience=2), "val_loss", values, lr=0.1)   # min_delta 1e-4
    assert r["lrs"][-1] == pytest.approx(0.05)
    r = drive(C.ReduceLROnPlateau(factor=0.5, patience=2, min_delta=0.0), "val_loss", values, lr=0.1)
    assert r["lrs"][-1] == pytest.approx(0.1)


def test_reduce_lr_on_plateau_mode_auto_maximizes_accuracy():
    r = drive(C.ReduceLROnPlateau(monitor="val_accuracy", factor=0.5, patience=1), "val_accuracy",
              [0.5, 0.6, 0.7, 0.8], lr=0.1)
    assert r["lrs"] == pytest.approx([0.1] * 4)


def test_reduce_lr_on_plateau_rejects_a_factor_of_one_or_more():
    with pytest.raises(ValueError):
        C.ReduceLROnPlateau(factor=1.0)


RLR_CONFIGS = [
    dict(factor=0.5, patience=0), dict(factor=0.5, patience=1), dict(factor=0.2, patience=2, cooldown=1),
    dict(factor=0.5, patience=1, cooldown=3), dict(factor=0.1, patience=1, min_lr=0.0005),
    dict(factor=0.5, patience=2, min_delta=0.05), dict(factor=0.5, patience=1, mode="max"),
    dict(factor=0.3, patience=3, cooldown=2, min_lr=0.001, min_delta=0.0),
]
RLR_SEQUENCES = [[1.0] * 12, DOWN_THEN_UP + [0.6, 0.55, 0.55, 0.56],
                 [1.0, 0.9, 0.95, 0.85, 0.86, 0.87, 0.88, 0.7, 0.71, 0.72, 0.73, 0.74, 0.75],
                 [1.0, 0.99999, 0.9999, 0.999, 0.99, 0.9, 0.9, 0.9, 0.9]]


@pytest.mark.parametrize("config", RLR_CONFIGS, ids=[str(c) for c in RLR_CONFIGS])
@pytest.mark.parametrize("seq", range(len(RLR_SEQUENCES)))
def test_reduce_lr_on_plateau_decisions_match_keras_on_scripted_values(config, seq):
    keras = _keras()
    values = RLR_SEQUENCES[seq]
    ours = drive(C.ReduceLROnPlateau(monitor="val_loss", **config), "val_loss", values, lr=0.1)
    theirs = drive(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", **config), "val_loss", values,
                   lr=0.1)
    np.testing.assert_allclose(ours["lrs"], theirs["lrs"], rtol=1e-6)
    np.testing.assert_allclose(ours["logged_lr"], theirs["logged_lr"], rtol=1e-6)


def test_reduce_lr_on_plateau_in_fit_lowers_the_optimizer_rate_and_logs_it():
    X, y = _data()
    model = _model(lr=0.1)
    cb = C.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1)
    hist = model.fit(X, y, epochs=5, batch_size=16, verbose=0, validation_data=(X, y),
                     callbacks=[Script("val_loss", [1.0] * 5), cb])
    assert hist.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.05, 0.025, 0.0125])
    assert model.optimizer.learning_rate == pytest.approx(0.00625)


# =========================================================================== LearningRateScheduler
class _LrAtEpochBegin(C.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(float(self.model.optimizer.learning_rate))


def _lr_recorder():
    rec = _LrAtEpochBegin()
    return rec.seen, rec


def test_learning_rate_scheduler_with_a_two_argument_schedule_sees_the_current_rate():
    X, y = _data()
    model = _model(lr=0.1)
    seen, rec = _lr_recorder()
    sched = C.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch > 0 else lr)
    hist = model.fit(X, y, epochs=4, batch_size=16, verbose=0, callbacks=[sched, rec])
    assert seen == pytest.approx([0.1, 0.05, 0.025, 0.0125])
    assert hist.history["learning_rate"] == pytest.approx(seen)


def test_learning_rate_scheduler_with_a_one_argument_schedule():
    X, y = _data()
    model = _model(lr=0.1)
    seen, rec = _lr_recorder()
    hist = model.fit(X, y, epochs=3, batch_size=16, verbose=0,
                     callbacks=[C.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1)), rec])
    assert seen == pytest.approx([0.01, 0.02, 0.03])
    assert hist.history["learning_rate"] == pytest.approx([0.01, 0.02, 0.03])


def test_learning_rate_scheduler_rate_is_the_one_used_by_the_updates():
    X, y = _data()
    model = _model(lr=0.1)
    rec = WeightsAtEpochEnd()
    model.fit(X, y, epochs=3, batch_size=16, verbose=0,
              callbacks=[C.LearningRateScheduler(lambda epoch: 0.1 if epoch == 0 else 0.0), rec])
    for a, b in zip(rec.weights[0], rec.weights[2]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(rec.weights[0][0], _model(lr=0.1).get_weights()[0])


def test_learning_rate_scheduler_honours_initial_epoch():
    X, y = _data()
    model = _model(lr=0.1)
    epochs = []
    model.fit(X, y, epochs=4, initial_epoch=2, batch_size=16, verbose=0,
              callbacks=[C.LearningRateScheduler(lambda e: epochs.append(e) or 0.01)])
    assert epochs == [2, 3]


def test_learning_rate_scheduler_rejects_a_non_float_result():
    X, y = _data()
    with pytest.raises(ValueError):
        _model().fit(X, y, epochs=1, verbose=0, callbacks=[C.LearningRateScheduler(lambda e: "fast")])


# =========================================================================== CSVLogger
def _read_csv(path, sep=","):
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter=sep))


def test_csv_logger_writes_epoch_then_sorted_keys_and_one_row_per_epoch(tmp_path):
    X, y = _data()
    path = tmp_path / "log.csv"
    hist = _model().fit(X, y, epochs=3, batch_size=16, verbose=0, validation_data=(X, y),
                        callbacks=[C.CSVLogger(path)])
    rows = _read_csv(path)
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    for i, row in enumerate(rows[1:]):
        assert float(row[2]) == pytest.approx(hist.history["loss"][i], rel=1e-6)
        assert float(row[4]) == pytest.approx(hist.history["val_loss"][i], rel=1e-6)


def test_csv_logger_append_adds_rows_without_a_second_header(tmp_path):
    X, y = _data()
    path = tmp_path / "log.csv"
    model = _model()
    model.fit(X, y, epochs=2, batch_size=16, verbose=0, callbacks=[C.CSVLogger(path)])
    model.fit(X, y, epochs=4, initial_epoch=2, batch_size=16, verbose=0,
              callbacks=[C.CSVLogger(path, append=True)])
    rows = _read_csv(path)
    # Keras 3 adds val_* columns (NA) when the first epoch has no validation keys
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2", "3"]


def test_csv_logger_without_append_overwrites_and_honours_the_separator(tmp_path):
    X, y = _data()
    path = tmp_path / "log.tsv"
    path.write_text("old junk\n")
    _model().fit(X, y, epochs=1, batch_size=16, verbose=0, callbacks=[C.CSVLogger(path, separator="\t")])
    rows = _read_csv(path, "\t")
    assert rows[0] == ["epoch", "accuracy", "loss", "val_accuracy", "val_loss"] and len(rows) == 2
    assert rows[1][-2:] == ["NA", "NA"]


def test_csv_logger_writes_the_same_file_as_keras_for_the_same_logs(tmp_path):
    keras = _keras()
    logs = [{"loss": 0.5, "accuracy": 0.75, "val_loss": 0.6, "val_accuracy": 0.7},
            {"loss": 0.25, "accuracy": 0.875, "val_loss": 0.4, "val_accuracy": 0.8}]
    for name, cls in (("ours.csv", C.CSVLogger), ("keras.csv", keras.callbacks.CSVLogger)):
        cb = cls(str(tmp_path / name))
        cb.on_train_begin()
        for epoch, entry in enumerate(logs):
            cb.on_epoch_end(epoch, dict(entry))
        cb.on_train_end()
    assert _read_csv(tmp_path / "ours.csv") == _read_csv(tmp_path / "keras.csv")


def test_csv_logger_without_validation_matches_keras_columns(tmp_path):
    # Keras 3's CSVLogger adds val_<key> columns (filled with NA) when the first epoch has no
    # validation keys, so files from runs with and without validation share a layout.
    keras = _keras()
    logs = [{"loss": 0.5, "accuracy": 0.75}, {"loss": 0.25, "accuracy": 0.875}]
    for name, cls in (("ours.csv", C.CSVLogger), ("keras.csv", keras.callbacks.CSVLogger)):
        cb = cls(str(tmp_path / name))
        cb.on_train_begin()
        for epoch, entry in enumerate(logs):
            cb.on_epoch_end(epoch, dict(entry))
        cb.on_train_end()
    assert _read_csv(tmp_path / "ours.csv") == _read_csv(tmp_path / "keras.csv")


# =========================================================================== TerminateOnNaN
def _diverging_model():
    model = fastmlp.Sequential([fastmlp.Input(shape=(4,)), Dense(1)])
    model.compile(optimizer=fastmlp.optimizers.SGD(learning_rate=1e12), loss="mse")
    return model


def test_terminate_on_nan_stops_within_the_first_epoch_when_the_loss_blows_up(capsys):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(256, 4)).astype(np.float32) * 100
    y = rng.normal(size=(256, 1)).astype(np.float32)
    model = _diverging_model()
    counter = _count_engine_calls(model)
    hist = model.fit(X, y, epochs=5, batch_size=8, verbose=0, callbacks=[C.TerminateOnNaN()])
    assert len(hist.epoch) == 1
    assert counter.train_calls < 32          # stopped before the end of the first epoch
    assert not np.isfinite(hist.history["loss"][0])
    assert "Invalid loss, terminating training" in capsys.readouterr().out


def test_terminate_on_nan_does_nothing_while_the_loss_is_finite():
    X, y = _data()
    hist = _model().fit(X, y, epochs=3, batch_size=16, verbose=0, callbacks=[C.TerminateOnNaN()])
    assert len(hist.epoch) == 3


def test_terminate_on_nan_raise_error_raises_runtime_error_as_keras_3():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4)).astype(np.float32) * 100
    y = rng.normal(size=(64, 1)).astype(np.float32)
    with pytest.raises(RuntimeError):
        _diverging_model().fit(X, y, epochs=3, batch_size=8, verbose=0,
                               callbacks=[C.TerminateOnNaN(raise_error=True)])


# =========================================================================== hooks and the C loop
class Recorder(C.Callback):
    def __init__(self):
        super().__init__()
        self.events = []

    def on_train_begin(self, logs=None):
        self.events.append(("train_begin",))

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("epoch_begin", epoch))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch_end", epoch, tuple(sorted(logs))))

    def on_train_end(self, logs=None):
        self.events.append(("train_end",))


class BatchRecorder(Recorder):
    def on_train_batch_begin(self, batch, logs=None):
        self.events.append(("batch_begin", batch))

    def on_train_batch_end(self, batch, logs=None):
        self.events.append(("batch_end", batch, tuple(sorted(logs))))


def test_hooks_are_called_in_keras_order_with_epoch_logs():
    X, y = _data()
    rec = Recorder()
    _model().fit(X, y, epochs=2, batch_size=16, verbose=0, validation_data=(X, y), callbacks=[rec])
    keys = ("accuracy", "loss", "val_accuracy", "val_loss")
    assert rec.events == [("train_begin",), ("epoch_begin", 0), ("epoch_end", 0, keys),
                          ("epoch_begin", 1), ("epoch_end", 1, keys), ("train_end",)]


def test_batch_hooks_are_called_once_per_batch_when_overridden():
    X, y = _data(n=50)
    rec = BatchRecorder()
    model = _model()
    counter = _count_engine_calls(model)
    model.fit(X, y, epochs=2, batch_size=16, verbose=0, callbacks=[rec])
    batches = [e for e in rec.events if e[0] == "batch_begin"]
    assert [b for _, b in batches] == [0, 1, 2, 3, 0, 1, 2, 3]
    ends = [e for e in rec.events if e[0] == "batch_end"]
    assert all(e[2] == ("accuracy", "loss") for e in ends)
    assert rec.events[1] == ("epoch_begin", 0) and rec.events[2] == ("batch_begin", 0)
    assert rec.events[3][:2] == ("batch_end", 0)
    assert counter.train_calls == 8


def test_without_batch_hooks_fit_runs_each_epoch_in_a_single_engine_call():
    X, y = _data(n=200)
    model = _model()
    counter = _count_engine_calls(model)
    model.fit(X, y, epochs=3, batch_size=8, verbose=0,
              callbacks=[Recorder(), C.EarlyStopping(monitor="loss", patience=10),
                         C.ReduceLROnPlateau(monitor="loss"), C.LearningRateScheduler(lambda e, lr: lr)])
    assert counter.train_calls == 3


class CountingEpochsNet(CountingNet):
    """Counts ``train_epochs`` calls (several whole epochs each) too."""

    def __init__(self, net):
        super().__init__(net)
        self.epoch_calls = 0

    def train_epochs(self, *args, **kwargs):
        self.epoch_calls += 1
        return self._net.train_epochs(*args, **kwargs)


@pytest.mark.parametrize("kwargs", [{}, {"shuffle": False}, {"steps_per_epoch": 3}, {"initial_epoch": 2},
                                    {"sample_weight": np.linspace(0.5, 2, 50)}])
def test_with_history_alone_short_epochs_share_engine_calls_and_fit_as_epoch_by_epoch(kwargs):
    X, y = _data(n=50)
    schedule = fastmlp.optimizers.schedules.ExponentialDecay(0.05, decay_steps=5, decay_rate=0.8)
    runs = []
    for extra in ([], [C.Callback()]):   # a callback with no hooks still takes the epoch-by-epoch loop
        fastmlp.utils.set_random_seed(4)
        model = _model(optimizer=fastmlp.optimizers.Adam(schedule),
                       metrics=("accuracy", "sparse_top_k_categorical_accuracy"))
        counter = model._net = CountingEpochsNet(model._net)
        hist = model.fit(X, y, epochs=40, batch_size=16, verbose=0, callbacks=extra, **kwargs)
        runs.append((hist.epoch, hist.history, model.optimizer.iterations, model._epoch, model._epoch_step,
                     model.get_weights(), model.history is hist, counter.train_calls, counter.epoch_calls))
    whole, by_epoch = runs
    assert whole[0] == list(range(kwargs.get("initial_epoch", 0), 40)) and whole[:5] == by_epoch[:5]
    assert all(np.array_equal(a, b) for a, b in zip(whole[5], by_epoch[5])) and whole[6]
    assert whole[7] == 0 and 1 < whole[8] < len(whole[0])   # the first call measures one epoch, then more
    assert by_epoch[7] == len(by_epoch[0]) and by_epoch[8] == 0


def test_stateful_metrics_keep_fit_epoch_by_epoch():
    X, y = _data(n=50)
    model = _model(metrics=("accuracy", fastmlp.metrics.AUC()))
    counter = model._net = CountingEpochsNet(model._net)
    hist = model.fit(X, y, epochs=3, batch_size=16, verbose=0)
    assert counter.train_calls == 3 and counter.epoch_calls == 0 and len(hist.history["auc"]) == 3


def test_an_engine_error_in_a_run_of_whole_epochs_keeps_the_epochs_before_it():
    X, y = _data(n=50)
    model = _model()
    model.fit(X, y, epochs=1, batch_size=16, verbose=0)
    bad = y.copy()
    bad[-1] = 7   # a label outside [0, 2): the batch that holds the last row fails
    # three batches of 16 leave two rows out: an epoch that leaves the bad row out, then one that takes it
    seen = [np.argsort(fastmlp._engine.permutation(model._seed, e, 50))[49] < 48 for e in range(200)]
    first = next(e for e in range(199) if not seen[e] and seen[e + 1])
    where = int(np.argsort(fastmlp._engine.permutation(model._seed, first + 1, 50))[49]) // 16
    opt = model.optimizer
    spec, before = opt._engine_spec(), opt.iterations
    sums = np.full((2, 5), np.nan)   # loss, rows, weights, accuracy, the output's loss
    status = model._net.train_epochs(model._params, opt._slots, spec, [X], [None], [bad], None, first, 2,
                                     True, 16, 3, opt._learning_rates(6), model._loss_specs(),
                                     model._metric_specs(), model._seed, sums)
    assert spec["epochs_done"] == 1 and status != 0 and sums[0, 1] == 48 and np.isfinite(sums[0]).all()
    assert np.isnan(sums[1]).all()
    assert spec["iterations"] == before + 3 + where
    with pytest.raises(ValueError, match="outside"):
        fastmlp._engine.raise_status(status)


def test_the_legacy_on_batch_end_alias_also_turns_batch_hooks_on():
    X, y = _data(n=48)
    seen = []

    class Legacy(C.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(batch)

    _model().fit(X, y, epochs=1, batch_size=16, verbose=0, callbacks=[Legacy()])
    assert seen == [0, 1, 2]


def test_batch_logs_hold_the_running_mean_of_the_epoch_loss():
    X, y = _data(n=48)
    losses = []
    cb = C.LambdaCallback(on_train_batch_end=lambda batch, logs: losses.append(logs["loss"]))
    model = _model(lr=0.0)
    hist = model.fit(X, y, epochs=1, batch_size=16, shuffle=False, verbose=0, callbacks=[cb])
    assert len(losses) == 3
    assert losses[-1] == pytest.approx(hist.history["loss"][0], rel=1e-6)
    per_batch = [model.evaluate(X[i:i + 16], y[i:i + 16], verbose=0)[0] for i in (0, 16, 32)]
    assert losses[0] == pytest.approx(per_batch[0], rel=1e-5)
    assert losses[1] == pytest.approx(np.mean(per_batch[:2]), rel=1e-5)


def test_setting_stop_training_in_on_epoch_end_stops_after_that_epoch():
    X, y = _data()

    class StopAt(C.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    hist = _model().fit(X, y, epochs=10, batch_size=16, verbose=0, callbacks=[StopAt()])
    assert hist.epoch == [0, 1]


def test_setting_stop_training_in_a_batch_hook_stops_mid_epoch():
    X, y = _data(n=160)
    model = _model()

    class StopAtBatch(C.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                self.model.stop_training = True

    hist = model.fit(X, y, epochs=10, batch_size=16, verbose=0, callbacks=[StopAtBatch()])
    assert hist.epoch == [0]
    assert model.optimizer.iterations == 3


def test_callbacks_receive_the_model_and_params():
    X, y = _data(n=50)
    got = {}

    class Look(C.Callback):
        def on_train_begin(self, logs=None):
            got["model"] = self.model
            got["params"] = dict(self.params)

    model = _model()
    model.fit(X, y, epochs=3, batch_size=16, verbose=0, callbacks=[Look()])
    assert got["model"] is model
    assert got["params"]["epochs"] == 3 and got["params"]["steps"] == 4 and got["params"]["verbose"] == 0


def test_fit_rejects_something_that_is_not_a_callback():
    X, y = _data()
    with pytest.raises(TypeError):
        _model().fit(X, y, epochs=1, verbose=0, callbacks=[lambda *a: None])


# =========================================================================== LambdaCallback
def test_lambda_callback_calls_the_given_functions():
    X, y = _data()
    calls = []
    cb = C.LambdaCallback(on_train_begin=lambda logs: calls.append("begin"),
                          on_epoch_end=lambda epoch, logs: calls.append(("end", epoch, "loss" in logs)),
                          on_train_end=lambda logs: calls.append("finish"))
    model = _model()
    counter = _count_engine_calls(model)
    model.fit(X, y, epochs=2, batch_size=16, verbose=0, callbacks=[cb])
    assert calls == ["begin", ("end", 0, True), ("end", 1, True), "finish"]
    assert counter.train_calls == 2          # no batch hook given: the epoch stays in C


def test_lambda_callback_with_a_batch_function_gets_every_batch():
    X, y = _data(n=64)
    batches = []
    _model().fit(X, y, epochs=1, batch_size=16, verbose=0,
                 callbacks=[C.LambdaCallback(on_train_batch_begin=lambda batch, logs: batches.append(batch))])
    assert batches == [0, 1, 2, 3]


def test_lambda_callback_rejects_an_unknown_hook():
    with pytest.raises((ValueError, TypeError)):
        C.LambdaCallback(on_epoch_finish=lambda e, l: None)


# =========================================================================== History
def test_history_records_every_epoch_and_the_params():
    X, y = _data(n=50)
    model = _model()
    hist = model.fit(X, y, epochs=3, batch_size=16, verbose=0, validation_data=(X, y))
    assert isinstance(hist, C.History)
    assert hist.epoch == [0, 1, 2]
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in hist.history.values())
    assert hist.params["epochs"] == 3 and hist.params["steps"] == 4 and hist.params["verbose"] == 0
    assert model.history is hist


def test_history_epochs_start_at_initial_epoch():
    X, y = _data()
    hist = _model().fit(X, y, epochs=5, initial_epoch=3, batch_size=16, verbose=0)
    assert hist.epoch == [3, 4]


def test_history_loss_equals_the_mean_training_loss_of_the_epoch():
    X, y = _data(n=64)
    model = _model(lr=0.0)
    hist = model.fit(X, y, epochs=1, batch_size=16, verbose=0)
    assert hist.history["loss"][0] == pytest.approx(model.evaluate(X, y, verbose=0)[0], rel=1e-5)


def test_history_plot_writes_a_file_when_there_is_no_display(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.delenv("DISPLAY", raising=False)
    X, y = _data()
    hist = _model().fit(X, y, epochs=2, batch_size=16, verbose=0)
    hist.plot(path=str(tmp_path / "h.png"))
    assert (tmp_path / "h.png").stat().st_size > 0


# =========================================================================== validation options
def test_validation_freq_runs_validation_every_n_epochs():
    X, y = _data()
    rec = Recorder()
    hist = _model().fit(X, y, epochs=6, batch_size=16, verbose=0, validation_data=(X, y),
                        validation_freq=3, callbacks=[rec])
    assert len(hist.history["val_loss"]) == 2
    with_val = [e[1] for e in rec.events if e[0] == "epoch_end" and "val_loss" in e[2]]
    assert with_val == [2, 5]


def test_validation_data_three_tuple_weights_the_validation_loss():
    X, y = _data()
    rng = np.random.default_rng(1)
    wv = rng.uniform(0, 3, len(X))
    model = _model(lr=0.0)
    hist = model.fit(X, y, epochs=1, batch_size=16, verbose=0, validation_data=(X, y, wv))
    want = model.evaluate(X, y, sample_weight=wv, verbose=0)[0]
    unweighted = model.evaluate(X, y, verbose=0)[0]
    assert hist.history["val_loss"][0] == pytest.approx(want, rel=1e-6)
    assert want != pytest.approx(unweighted, rel=1e-4)


def test_validation_data_of_the_wrong_length_is_rejected():
    X, y = _data()
    with pytest.raises(ValueError):
        _model().fit(X, y, epochs=1, verbose=0, validation_data=(X,))


def test_steps_per_epoch_limits_the_batches_of_each_epoch():
    X, y = _data(n=160)
    model = _model()
    hist = model.fit(X, y, epochs=3, batch_size=16, steps_per_epoch=4, verbose=0)
    assert hist.params["steps"] == 4
    assert model.optimizer.iterations == 12


# =========================================================================== progress output
def test_verbose_zero_prints_nothing(capsys):
    X, y = _data()
    _model().fit(X, y, epochs=2, batch_size=16, verbose=0, validation_data=(X, y))
    assert capsys.readouterr().out == ""


def test_verbose_two_prints_one_line_per_epoch_without_a_bar(capsys):
    X, y = _data(n=64)
    _model().fit(X, y, epochs=3, batch_size=16, verbose=2, validation_data=(X, y))
    out = capsys.readouterr().out
    assert "\r" not in out and "ETA" not in out
    lines = [line for line in out.splitlines() if "loss:" in line]
    assert len(lines) == 3
    for line in lines:
        assert re.match(r"^4/4 - \d+s", line)
        assert "val_loss:" in line and "accuracy:" in line
    assert "Epoch 1/3" in out and "Epoch 3/3" in out


def test_verbose_one_into_a_non_terminal_writes_one_finished_bar_per_epoch(capsys):
    # (the redrawn bar on a terminal: tests/test_progbar.py, through a pty)
    X, y = _data(n=640)
    _model().fit(X, y, epochs=2, batch_size=16, verbose=1)
    out = capsys.readouterr().out
    assert "\r" not in out and "\x1b" not in out
    lines = out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    for line in (lines[1], lines[3]):
        assert re.match(r"^40/40 ━{20} \d+s \d+(ms|us)/step - loss: \d\.\d{4} - accuracy: \d\.\d{4}$", line), line


def test_verbose_auto_is_two_when_stdout_is_not_a_terminal(capsys):
    X, y = _data()
    _model().fit(X, y, epochs=1, batch_size=16)
    out = capsys.readouterr().out
    assert "\r" not in out and len([l for l in out.splitlines() if "loss:" in l]) == 1


def test_an_explicit_progbar_logger_is_used_instead_of_the_default(capsys):
    import io
    X, y = _data()
    stream = io.StringIO()
    _model().fit(X, y, epochs=2, batch_size=16, verbose=1, callbacks=[C.ProgbarLogger(verbose=2, stream=stream)])
    assert capsys.readouterr().out == ""
    assert len([l for l in stream.getvalue().splitlines() if "loss:" in l]) == 2


def test_fit_passes_dicts_not_none_to_the_begin_hooks_as_keras_does():
    seen = []

    class Spy(C.Callback):
        def on_train_begin(self, logs=None):
            seen.append(("train_begin", logs))

        def on_epoch_begin(self, epoch, logs=None):
            seen.append(("epoch_begin", logs))

        def on_train_batch_begin(self, batch, logs=None):
            seen.append(("batch_begin", logs))
    X, y = _data(n=8)
    _model().fit(X, y, epochs=1, batch_size=8, verbose=0, callbacks=[Spy()])
    assert seen == [("train_begin", {}), ("epoch_begin", {}), ("batch_begin", {})]


def test_model_checkpoint_creates_the_folder_of_its_path(tmp_path):
    X, y = _data(n=8)
    path = tmp_path / "training_1" / "nested" / "cp.fmlp"
    _model().fit(X, y, epochs=1, verbose=0, callbacks=[C.ModelCheckpoint(str(path), save_weights_only=True)])
    assert path.exists()


_ALL_HOOKS = ["on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_test_begin", "on_test_end",
              "on_predict_begin", "on_predict_end", "on_train_batch_begin", "on_train_batch_end",
              "on_test_batch_begin", "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end"]


def _hook_sequences(K):
    seen = []

    class Spy(K.callbacks.Callback):
        pass
    for hook in _ALL_HOOKS:
        def record(self, *args, logs=None, _hook=hook):
            logs = args[-1] if args and isinstance(args[-1], dict) else logs
            seen.append((_hook, sorted(logs) if isinstance(logs, dict) else logs))
        setattr(Spy, hook, record)
    model = K.Sequential([K.Input(shape=(2,)), K.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    x, y = np.ones((4, 2), np.float32), np.ones(4, np.float32)
    out = []
    model.fit(x, y, epochs=1, batch_size=2, verbose=0, callbacks=[Spy()], validation_data=(x, y))
    out.append(list(seen)); seen.clear()
    model.evaluate(x, y, batch_size=2, verbose=0, callbacks=[Spy()])
    out.append(list(seen)); seen.clear()
    model.predict(x, batch_size=2, verbose=0, callbacks=[Spy()])
    out.append(list(seen))
    return out


def test_fit_evaluate_and_predict_call_every_hook_in_keras_order_with_keras_log_keys():
    keras = _keras()
    assert _hook_sequences(fastmlp) == _hook_sequences(keras)
