"""Confusion-matrix and regression metrics equal scikit-learn's (and Keras's) values,
standalone and as compiled metrics streamed through the C engine."""
import os

import numpy as np
import pytest

import fastmlp
from fastmlp import metrics as M

skm = pytest.importorskip("sklearn.metrics")


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def _knp(x):
    keras = _keras()
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


# --------------------------------------------------------------------------- data
def binary_data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1)
    w = rng.uniform(0.1, 3.0, n)
    return y, p, w


def multiclass_data(n=300, c=4, seed=1):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c)) + 1.2 * np.eye(c)[y]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    w = rng.uniform(0.1, 3.0, n)
    return y, np.eye(c)[y], p, w


def regression_data(n=200, d=3, seed=2):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, d))
    p = y + rng.normal(scale=0.5, size=(n, d))
    w = rng.uniform(0.1, 3.0, n)
    return y, p, w


def standalone(metric, y, p, w=None, chunks=1):
    """update_state over ``chunks`` slices, then result()."""
    idx = np.array_split(np.arange(len(p)), chunks)
    for i in idx:
        metric.update_state(y[i], p[i], None if w is None else w[i])
    return metric.result()


# --------------------------------------------------------------------------- Precision / Recall
@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.8])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("chunks", [1, 7])
def test_binary_precision_and_recall_equal_sklearn(threshold, weighted, chunks):
    y, p, w = binary_data()
    w = w if weighted else None
    pred = (p > threshold).astype(int)
    got_p = standalone(M.Precision(thresholds=threshold), y, p, w, chunks)
    got_r = standalone(M.Recall(thresholds=threshold), y, p, w, chunks)
    assert got_p == pytest.approx(skm.precision_score(y, pred, sample_weight=w), rel=1e-9)
    assert got_r == pytest.approx(skm.recall_score(y, pred, sample_weight=w), rel=1e-9)


@pytest.mark.parametrize("class_id", [0, 2, 3])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_precision_and_recall_with_class_id_look_at_that_column_only(class_id, weighted):
    _, Y, P, w = multiclass_data()
    w = w if weighted else None
    pred = (P[:, class_id] > 0.5).astype(int)
    got_p = standalone(M.Precision(class_id=class_id), Y, P, w)
    got_r = standalone(M.Recall(class_id=class_id), Y, P, w)
    assert got_p == pytest.approx(skm.precision_score(Y[:, class_id], pred, sample_weight=w,
                                                      zero_division=0), rel=1e-9)
    assert got_r == pytest.approx(skm.recall_score(Y[:, class_id], pred, sample_weight=w), rel=1e-9)


def test_precision_and_recall_without_class_id_pool_every_output_as_keras_does():
    _, Y, P, w = multiclass_data()
    pred = (P > 0.4).astype(int).ravel()
    ww = np.repeat(w, Y.shape[1])
    assert standalone(M.Precision(thresholds=0.4), Y, P, w) == pytest.approx(
        skm.precision_score(Y.ravel(), pred, sample_weight=ww), rel=1e-9)
    assert standalone(M.Recall(thresholds=0.4), Y, P, w) == pytest.approx(
        skm.recall_score(Y.ravel(), pred, sample_weight=ww), rel=1e-9)


def test_precision_with_no_predicted_positive_is_zero_not_nan():
    m = M.Precision()
    m.update_state(np.array([1, 0, 1]), np.array([0.1, 0.2, 0.3]))
    assert m.result() == 0.0


def test_reset_state_forgets_everything_accumulated():
    y, p, _ = binary_data()
    m = M.Recall()
    m.update_state(1 - y, 1 - p)
    m.reset_state()
    m.update_state(y, p)
    assert m.result() == pytest.approx(skm.recall_score(y, (p > 0.5).astype(int)), rel=1e-12)


# --------------------------------------------------------------------------- AUC
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("chunks", [1, 5])
def test_roc_auc_is_within_1e3_of_sklearn(weighted, chunks):
    y, p, w = binary_data()
    w = w if weighted else None
    got = standalone(M.AUC(), y, p, w, chunks)
    assert got == pytest.approx(skm.roc_auc_score(y, p, sample_weight=w), abs=1e-3)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_pr_auc_is_close_to_sklearn_average_precision(weighted):
    # Keras interpolates PR between thresholds (Davis & Goadrich); sklearn's average
    # precision is a step sum, so the two agree only approximately.
    y, p, w = binary_data(n=2000)
    w = w if weighted else None
    got = standalone(M.AUC(curve="PR", num_thresholds=1000), y, p, w)
    assert got == pytest.approx(skm.average_precision_score(y, p, sample_weight=w), abs=5e-3)


@pytest.mark.parametrize("num_thresholds", [3, 11, 50])
def test_roc_auc_is_exact_when_scores_fall_between_the_thresholds(num_thresholds):
    rng = np.random.default_rng(5)
    n = 300
    y = rng.integers(0, 2, n)
    bucket = np.clip(rng.integers(0, num_thresholds - 1, n) + y * rng.integers(0, 3, n), 0,
                     num_thresholds - 2)
    p = (bucket + 0.5) / (num_thresholds - 1)     # strictly between two thresholds
    got = standalone(M.AUC(num_thresholds=num_thresholds), y, p)
    assert got == pytest.approx(skm.roc_auc_score(y, p), abs=1e-9)


def test_auc_of_perfectly_separated_scores_is_one_and_of_reversed_scores_is_zero():
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    assert standalone(M.AUC(), y, p) == pytest.approx(1.0)
    assert standalone(M.AUC(), y, 1 - p) == pytest.approx(0.0, abs=1e-12)


def test_auc_accepts_keras_arguments_it_cannot_honour_with_a_clear_error():
    with pytest.raises(ValueError):
        M.AUC(num_thresholds=1)
    with pytest.raises(ValueError):
        M.AUC(curve="XYZ")


# --------------------------------------------------------------------------- F1Score
def _sk_f1(Y, P, average, threshold, w=None):
    if threshold is None:
        pred = np.eye(Y.shape[1])[P.argmax(1)]
    else:
        pred = (P > threshold).astype(int)
    return skm.f1_score(Y.astype(int), pred.astype(int), average=average, sample_weight=w,
                        zero_division=0)


@pytest.mark.parametrize("average", [None, "micro", "macro", "weighted"])
@pytest.mark.parametrize("threshold", [None, 0.5, 0.3])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_f1_score_equals_sklearn_for_every_average_and_threshold(average, threshold, weighted):
    _, Y, P, w = multiclass_data()
    w = w if weighted else None
    got = standalone(M.F1Score(average=average, threshold=threshold), Y, P, w, chunks=3)
    # Keras (the oracle) adds epsilon = 1e-7 to the precision, recall and F denominators
    np.testing.assert_allclose(got, _sk_f1(Y, P, average, threshold, w), rtol=1e-6)


def test_f1_score_rejects_an_unknown_average_and_a_bad_threshold():
    with pytest.raises(ValueError):
        M.F1Score(average="samples")
    with pytest.raises(ValueError):
        M.F1Score(threshold=1.5)


# --------------------------------------------------------------------------- regression / top-k
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_root_mean_squared_error_equals_sqrt_of_sklearn_mse(weighted):
    y, p, w = regression_data()
    w = w if weighted else None
    got = standalone(M.RootMeanSquaredError(), y, p, w, chunks=4)
    assert got == pytest.approx(np.sqrt(skm.mean_squared_error(y, p, sample_weight=w)), rel=1e-9)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_mean_absolute_error_equals_sklearn(weighted):
    y, p, w = regression_data()
    w = w if weighted else None
    got = standalone(M.MeanAbsoluteError(), y, p, w, chunks=4)
    assert got == pytest.approx(skm.mean_absolute_error(y, p, sample_weight=w), rel=1e-9)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_top_k_categorical_accuracy_equals_sklearn_top_k_accuracy(k, weighted):
    y, Y, P, w = multiclass_data()
    w = w if weighted else None
    got = standalone(M.TopKCategoricalAccuracy(k=k), Y, P, w, chunks=3)
    assert got == pytest.approx(skm.top_k_accuracy_score(y, P, k=k, sample_weight=w,
                                                          labels=np.arange(P.shape[1])), rel=1e-9)
    got_sparse = standalone(M.SparseTopKCategoricalAccuracy(k=k), y, P, w, chunks=3)
    assert got_sparse == pytest.approx(got, rel=1e-12)


# --------------------------------------------------------------------------- Keras classes
def _keras_case(name):
    y, p, wb = binary_data()
    yc, Y, P, wc = multiclass_data()
    yr, pr, wr = regression_data()
    return {
        "Precision": (dict(thresholds=0.4), y, p, wb),
        "Precision-class": (dict(class_id=1), Y, P, wc),
        "Recall": (dict(thresholds=0.6), y, p, wb),
        "Recall-class": (dict(class_id=2), Y, P, wc),
        "AUC": (dict(), y, p, wb),
        "AUC-PR": (dict(curve="PR"), y, p, wb),
        "AUC-PR-30": (dict(curve="PR", num_thresholds=30), y, p, wb),
        "AUC-ROC-7": (dict(num_thresholds=7), y, p, None),
        "F1Score": (dict(average=None), Y, P, wc),
        "F1Score-macro": (dict(average="macro", threshold=0.4), Y, P, wc),
        "F1Score-micro": (dict(average="micro"), Y, P, None),
        "F1Score-weighted": (dict(average="weighted"), Y, P, wc),
        "RootMeanSquaredError": (dict(), yr, pr, wr),
        "MeanAbsoluteError": (dict(), yr, pr, wr),
        "TopKCategoricalAccuracy": (dict(k=2), Y, P, wc),
    }[name]


@pytest.mark.parametrize("name", ["Precision", "Precision-class", "Recall", "Recall-class", "AUC",
                                  "AUC-PR", "AUC-PR-30", "AUC-ROC-7", "F1Score", "F1Score-macro",
                                  "F1Score-micro", "F1Score-weighted", "RootMeanSquaredError",
                                  "MeanAbsoluteError", "TopKCategoricalAccuracy"])
def test_standalone_metric_equals_the_keras_metric_class(name):
    keras = _keras()
    kwargs, y, p, w = _keras_case(name)
    cls = name.split("-")[0]
    ours = standalone(getattr(M, cls)(**kwargs), y, p, w, chunks=3)
    theirs = getattr(keras.metrics, cls)(**kwargs)
    for i in np.array_split(np.arange(len(p)), 3):
        theirs.update_state(np.asarray(y[i], np.float32), np.asarray(p[i], np.float32),
                            None if w is None else np.asarray(w[i], np.float32))
    np.testing.assert_allclose(ours, _knp(theirs.result()), rtol=2e-5, atol=2e-6)


# --------------------------------------------------------------------------- compiled metrics
def _frozen_model(n_in, n_out, activation, loss, metrics, seed=3, weighted=False):
    """``weighted``: the metrics go to ``weighted_metrics`` (Keras 3 weights only those)."""
    fastmlp.utils.set_random_seed(seed)
    model = fastmlp.Sequential([fastmlp.Input(shape=(n_in,)),
                                fastmlp.layers.Dense(8, activation="tanh"),
                                fastmlp.layers.Dense(n_out, activation=activation)])
    model.compile(optimizer=fastmlp.optimizers.SGD(learning_rate=0.0), loss=loss,
                  metrics=None if weighted else metrics, weighted_metrics=metrics if weighted else None)
    return model


def _binary_model_data(n=301, seed=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    y = ((X[:, 0] + 0.5 * X[:, 1] + 0.7 * rng.normal(size=n)) > 0).astype(np.float32)
    w = rng.uniform(0.2, 2.0, n)
    return X, y, w


def _binary_expected(y, p, w):
    pred = (p > 0.5).astype(int)
    return {
        "precision": skm.precision_score(y, pred, sample_weight=w),
        "recall": skm.recall_score(y, pred, sample_weight=w),
        "auc": skm.roc_auc_score(y, p, sample_weight=w),
        "pr_auc": skm.average_precision_score(y, p, sample_weight=w),
    }


def _binary_metrics():
    return [M.Precision(), M.Recall(), M.AUC(), M.AUC(curve="PR", name="pr_auc")]


def _check_binary(logs, expected):
    assert logs["precision"] == pytest.approx(expected["precision"], rel=1e-6)
    assert logs["recall"] == pytest.approx(expected["recall"], rel=1e-6)
    assert logs["auc"] == pytest.approx(expected["auc"], abs=1e-3)
    assert logs["pr_auc"] == pytest.approx(expected["pr_auc"], abs=1e-2)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_compiled_confusion_metrics_in_evaluate_equal_sklearn_on_predict_output(weighted):
    X, y, w = _binary_model_data()
    w = w if weighted else None
    model = _frozen_model(5, 1, "sigmoid", "binary_crossentropy", _binary_metrics(), weighted=weighted)
    p = model.predict(X, verbose=0)[:, 0].astype(np.float64)
    logs = model.evaluate(X, y, batch_size=16, sample_weight=w, verbose=0, return_dict=True)
    _check_binary(logs, _binary_expected(y, p, w))


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_fit_epoch_metric_equals_the_metric_on_all_predictions_when_lr_is_zero(weighted):
    X, y, w = _binary_model_data()
    w = w if weighted else None
    model = _frozen_model(5, 1, "sigmoid", "binary_crossentropy", _binary_metrics(), weighted=weighted)
    p = model.predict(X, verbose=0)[:, 0].astype(np.float64)
    hist = model.fit(X, y, batch_size=16, epochs=2, shuffle=False, sample_weight=w, verbose=0)
    expected = _binary_expected(y, p, w)
    for epoch in range(2):
        _check_binary({k: v[epoch] for k, v in hist.history.items()}, expected)


def test_compiled_metrics_reset_between_epochs_and_between_evaluate_calls():
    X, y, _ = _binary_model_data()
    model = _frozen_model(5, 1, "sigmoid", "binary_crossentropy", _binary_metrics())
    first = model.evaluate(X, y, verbose=0, return_dict=True)
    second = model.evaluate(X, y, verbose=0, return_dict=True)
    assert first == second
    hist = model.fit(X, y, batch_size=32, epochs=3, shuffle=True, verbose=0)
    for key in ("precision", "recall", "auc"):
        assert hist.history[key][0] == pytest.approx(hist.history[key][2], rel=1e-6)


def test_compiled_multiclass_metrics_equal_sklearn_in_fit_and_evaluate():
    rng = np.random.default_rng(6)
    n, c = 257, 4
    X = rng.normal(size=(n, 6)).astype(np.float32)
    y = (np.argmax(X[:, :c] + 0.8 * rng.normal(size=(n, c)), axis=1))
    Y = np.eye(c, dtype=np.float32)[y]
    w = rng.uniform(0.2, 2.0, n)
    metrics = [M.F1Score(average="macro", name="f1_macro"), M.F1Score(average="weighted", name="f1_w"),
               M.F1Score(average="micro", threshold=0.3, name="f1_micro"),
               M.TopKCategoricalAccuracy(k=2), M.Precision(class_id=1, name="p1"),
               M.Recall(class_id=1, name="r1")]
    model = _frozen_model(6, c, "softmax", "categorical_crossentropy", metrics, weighted=True)
    P = model.predict(X, verbose=0).astype(np.float64)
    expected = {
        "f1_macro": _sk_f1(Y, P, "macro", None, w), "f1_w": _sk_f1(Y, P, "weighted", None, w),
        "f1_micro": _sk_f1(Y, P, "micro", 0.3, w),
        "top_k_categorical_accuracy": skm.top_k_accuracy_score(y, P, k=2, sample_weight=w,
                                                               labels=np.arange(c)),
        "p1": skm.precision_score(Y[:, 1], (P[:, 1] > 0.5).astype(int), sample_weight=w,
                                  zero_division=0),
        "r1": skm.recall_score(Y[:, 1], (P[:, 1] > 0.5).astype(int), sample_weight=w),
    }
    logs = model.evaluate(X, Y, batch_size=10, sample_weight=w, verbose=0, return_dict=True)
    hist = model.fit(X, Y, batch_size=10, epochs=1, shuffle=False, sample_weight=w, verbose=0)
    for key, want in expected.items():
        assert logs[key] == pytest.approx(want, rel=1e-6, abs=1e-9), key
        assert hist.history[key][0] == pytest.approx(want, rel=1e-6, abs=1e-9), key


def test_compiled_regression_metrics_equal_sklearn_in_fit_and_evaluate():
    rng = np.random.default_rng(7)
    n = 203
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = np.stack([X[:, 0] - X[:, 1], X[:, 2] * 0.5], axis=1).astype(np.float32)
    w = rng.uniform(0.2, 2.0, n)
    model = _frozen_model(4, 2, "linear", "mse", [M.RootMeanSquaredError(), M.MeanAbsoluteError()],
                          weighted=True)
    P = model.predict(X, verbose=0).astype(np.float64)
    want_rmse = np.sqrt(skm.mean_squared_error(y, P, sample_weight=w))
    want_mae = skm.mean_absolute_error(y, P, sample_weight=w)
    logs = model.evaluate(X, y, batch_size=9, sample_weight=w, verbose=0, return_dict=True)
    hist = model.fit(X, y, batch_size=9, epochs=1, shuffle=False, sample_weight=w, verbose=0)
    for got in (logs, {k: v[0] for k, v in hist.history.items()}):
        assert got["root_mean_squared_error"] == pytest.approx(want_rmse, rel=1e-5)
        assert got["mean_absolute_error"] == pytest.approx(want_mae, rel=1e-5)


def test_metrics_by_string_name_resolve_to_the_same_classes():
    model = _frozen_model(5, 1, "sigmoid", "binary_crossentropy",
                          ["precision", "recall", "auc", "root_mean_squared_error", "mae"])
    X, y, _ = _binary_model_data(n=40)
    logs = model.evaluate(X, y, verbose=0, return_dict=True)
    assert {"precision", "recall", "auc", "root_mean_squared_error", "mae"} <= set(logs)
