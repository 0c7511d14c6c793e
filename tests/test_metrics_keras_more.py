"""The metrics added for Keras programs, against Keras 3 itself (torch backend).

Standalone: every metric is updated on several batches with sample weights and must
give ``keras.metrics``'s result to 1e-5.  In ``fit``/``evaluate``: the imbalanced-data
tutorial's metric list gives Keras's History (same initial weights, shuffle=False).

Keras 3.15 quirk pinned here: with the torch backend, a single-threshold
TruePositives/FalsePositives/TrueNegatives/FalseNegatives logs a *view* of its
accumulator, so when ``fit`` validates, History's training counts show the validation
counts (evaluate resets and refills the same variable).  fastmlp logs the training
counts; the tutorial test compares them on a run without validation data, and the
validation counts on a run with it.
"""
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import re  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

import fastmlp  # noqa: E402
from fastmlp import metrics as FM  # noqa: E402

KM = keras.metrics
STEP_ATOL = 2e-4


@pytest.fixture(autouse=True)
def _keras_float32_and_seed():
    keras.config.set_floatx("float32")
    keras.utils.set_random_seed(0)
    yield


def _data(kind, n=48, c=4, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "binary":        # 0/1 targets, probabilities
        return (rng.random((n, c)) < 0.4).astype("float32"), rng.uniform(0.01, 0.99, (n, c)).astype("float32")
    if kind == "signs":         # -1/1 targets, scores
        return np.where(rng.random((n, c)) < 0.5, -1, 1).astype("float32"), rng.normal(size=(n, c)).astype("float32")
    if kind == "logits":
        return (rng.random((n, c)) < 0.4).astype("float32"), (3 * rng.normal(size=(n, c))).astype("float32")
    if kind in ("onehot", "onehot_logits"):
        Y = np.eye(c, dtype="float32")[rng.integers(0, c, n)]
        z = 2 * rng.normal(size=(n, c))
        if kind == "onehot_logits":
            return Y, z.astype("float32")
        p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        return Y, p.astype("float32")
    if kind in ("labels", "labels_logits"):
        y = rng.integers(0, c, n)
        z = 2 * rng.normal(size=(n, c))
        if kind == "labels_logits":
            return y, z.astype("float32")
        return y, (np.exp(z) / np.exp(z).sum(1, keepdims=True)).astype("float32")
    if kind == "positive":      # positive regression targets and predictions
        return rng.uniform(0.1, 3, (n, c)).astype("float32"), rng.uniform(0.1, 3, (n, c)).astype("float32")
    if kind == "regression":
        Y = rng.normal(size=(n, c)).astype("float32")
        return Y, (Y + 0.7 * rng.normal(size=(n, c))).astype("float32")
    raise ValueError(kind)


def _stream(metric, Y, P, w, batches=3):
    """update_state on ``batches`` slices, then result()."""
    for idx in np.array_split(np.arange(len(P)), batches):
        metric.update_state(Y[idx], P[idx], sample_weight=None if w is None else w[idx])
    return np.asarray(metric.result(), dtype=np.float64)


# (name, kind, constructor taking the metrics module)
CASES = [
    ("bce", "binary", lambda M: M.BinaryCrossentropy()),
    ("bce_logits_smoothing", "logits", lambda M: M.BinaryCrossentropy(from_logits=True, label_smoothing=0.1)),
    ("bce_smoothing", "binary", lambda M: M.BinaryCrossentropy(label_smoothing=0.2)),
    ("cce", "onehot", lambda M: M.CategoricalCrossentropy()),
    ("cce_logits_smoothing", "onehot_logits",
     lambda M: M.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2)),
    ("scce", "labels", lambda M: M.SparseCategoricalCrossentropy()),
    ("scce_logits", "labels_logits", lambda M: M.SparseCategoricalCrossentropy(from_logits=True)),
    ("kld", "onehot", lambda M: M.KLDivergence()),
    ("poisson", "positive", lambda M: M.Poisson()),
    ("hinge_01", "binary", lambda M: M.Hinge()),
    ("hinge_signs", "signs", lambda M: M.Hinge()),
    ("squared_hinge", "signs", lambda M: M.SquaredHinge()),
    ("squared_hinge_01", "binary", lambda M: M.SquaredHinge()),
    ("categorical_hinge", "onehot", lambda M: M.CategoricalHinge()),
    ("logcosh", "regression", lambda M: M.LogCoshError()),
    ("mape", "positive", lambda M: M.MeanAbsolutePercentageError()),
    ("msle", "positive", lambda M: M.MeanSquaredLogarithmicError()),
    ("cosine", "regression", lambda M: M.CosineSimilarity()),
    ("mse", "regression", lambda M: M.MeanSquaredError()),
    ("rmse", "regression", lambda M: M.RootMeanSquaredError()),
    ("r2_uniform", "regression", lambda M: M.R2Score()),
    ("r2_variance_weighted", "regression", lambda M: M.R2Score(class_aggregation="variance_weighted_average")),
    ("r2_per_unit", "regression", lambda M: M.R2Score(class_aggregation=None)),
    ("r2_adjusted", "regression", lambda M: M.R2Score(num_regressors=3)),
    ("tp", "binary", lambda M: M.TruePositives()),
    ("fp", "binary", lambda M: M.FalsePositives()),
    ("tn", "binary", lambda M: M.TrueNegatives()),
    ("fn", "binary", lambda M: M.FalseNegatives()),
    ("tp_list", "binary", lambda M: M.TruePositives(thresholds=[0.2, 0.5, 0.9])),
    ("fn_list", "binary", lambda M: M.FalseNegatives(thresholds=[0.25, 0.75])),
    ("tn_even", "binary", lambda M: M.TrueNegatives(thresholds=[0.0, 0.5, 1.0])),
    ("precision_at_recall", "binary", lambda M: M.PrecisionAtRecall(0.6)),
    ("recall_at_precision", "binary", lambda M: M.RecallAtPrecision(0.45, num_thresholds=50)),
    ("sensitivity_at_specificity", "binary", lambda M: M.SensitivityAtSpecificity(0.5)),
    ("specificity_at_sensitivity", "binary", lambda M: M.SpecificityAtSensitivity(0.7, num_thresholds=13)),
    ("precision_at_recall_class_id", "onehot", lambda M: M.PrecisionAtRecall(0.5, class_id=2)),
    ("specificity_at_sensitivity_one_threshold", "binary", lambda M: M.SpecificityAtSensitivity(0.3, num_thresholds=1)),
    ("fbeta", "onehot", lambda M: M.FBetaScore(beta=2.0)),
    ("fbeta_macro_threshold", "binary", lambda M: M.FBetaScore(average="macro", beta=0.5, threshold=0.4)),
    ("fbeta_micro", "onehot", lambda M: M.FBetaScore(average="micro", beta=1.5)),
    ("fbeta_weighted", "binary", lambda M: M.FBetaScore(average="weighted", threshold=0.6)),
    ("f1_weighted", "onehot", lambda M: M.F1Score(average="weighted")),
    ("auc_roc", "binary", lambda M: M.AUC()),
    ("auc_pr", "binary", lambda M: M.AUC(curve="PR", num_thresholds=77)),
    ("precision", "binary", lambda M: M.Precision(thresholds=0.3)),
    ("recall_class_id", "binary", lambda M: M.Recall(class_id=1)),
    ("binary_accuracy", "binary", lambda M: M.BinaryAccuracy(threshold=0.4)),
    ("sparse_top_k", "labels", lambda M: M.SparseTopKCategoricalAccuracy(k=2)),
]


UNWEIGHTED = {"bce", "cce", "scce", "hinge_01", "r2_adjusted", "tp_list", "precision_at_recall", "fbeta",
              "cosine", "auc_pr"}


@pytest.mark.parametrize("name,kind,make,weighted",
                         [c + (True,) for c in CASES] + [c + (False,) for c in CASES if c[0] in UNWEIGHTED],
                         ids=[c[0] for c in CASES] + [c[0] + "-unweighted" for c in CASES if c[0] in UNWEIGHTED])
def test_each_metric_streams_to_keras_result_over_batches(name, kind, make, weighted):
    Y, P = _data(kind)
    w = np.random.default_rng(1).uniform(0.1, 2.0, len(P)).astype("float32") if weighted else None
    expected = _stream(make(KM), Y, P, w)
    got = _stream(make(FM), Y, P, w)
    # Keras counts in float32 (tn = negatives - fp cancels): the tolerance scales with the values
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(expected).max()),
                               err_msg=name)


@pytest.mark.parametrize("name,kind,make", CASES, ids=[c[0] for c in CASES])
def test_each_metric_has_keras_config_and_resets(name, kind, make):
    k, f = make(KM), make(FM)
    # Keras numbers the default names of unnamed metrics it has made before (true_positives_3)
    k_config = {**k.get_config(), "name": re.sub(r"_\d+$", "", k.name)}
    assert f.get_config() == k_config
    assert f.name == k_config["name"]
    clone = type(f).from_config(f.get_config())
    assert clone.get_config() == f.get_config()
    Y, P = _data(kind)
    _stream(f, Y, P, None)
    f.reset_state()
    np.testing.assert_allclose(_stream(f, Y[:10], P[:10], None), _stream(make(FM), Y[:10], P[:10], None))


def test_class_relationships_mirror_keras():
    names = ["BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "KLDivergence",
             "Poisson", "Hinge", "SquaredHinge", "CategoricalHinge", "LogCoshError", "MeanAbsolutePercentageError",
             "MeanSquaredLogarithmicError", "CosineSimilarity", "R2Score", "TruePositives", "FalsePositives",
             "TrueNegatives", "FalseNegatives", "PrecisionAtRecall", "RecallAtPrecision",
             "SensitivityAtSpecificity", "SpecificityAtSensitivity", "FBetaScore", "F1Score", "Mean", "Sum",
             "MeanMetricWrapper", "MeanSquaredError", "RootMeanSquaredError", "MeanAbsoluteError",
             "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy", "TopKCategoricalAccuracy",
             "SparseTopKCategoricalAccuracy", "Precision", "Recall", "AUC", "Metric"]
    public = {n: (getattr(KM, n), getattr(FM, n)) for n in names}
    for a, (ka, fa) in public.items():
        # the public classes above each one, by name, in Keras's order
        k_bases = [c.__name__ for c in ka.__mro__ if c.__name__ in public]
        f_bases = [c.__name__ for c in fa.__mro__ if c.__name__ in public]
        assert f_bases == k_bases, a
        for b, (kb, fb) in public.items():
            assert issubclass(fa, fb) == issubclass(ka, kb), (a, b)
    assert not isinstance(FM.CategoricalCrossentropy(), FM.BinaryCrossentropy)
    assert isinstance(FM.BinaryCrossentropy(), FM.MeanMetricWrapper)
    assert not isinstance(FM.RootMeanSquaredError(), FM.MeanSquaredError)


ALIASES = ["mae", "mse", "MAE", "MSE", "mape", "msle", "bce", "BCE", "binary_crossentropy", "AUC", "auc",
           "precision", "recall", "categorical_crossentropy", "kl_divergence", "poisson", "hinge", "logcosh",
           "log_cosh_error", "cosine_similarity", "r2_score", "true_positives", "FalseNegatives", "f1_score",
           "f_beta_score", "root_mean_squared_error", "squared_hinge", "mean_absolute_percentage_error",
           "categorical_hinge", "binary_accuracy", "MeanSquaredLogarithmicError"]


@pytest.mark.parametrize("alias", ALIASES)
def test_a_string_alias_resolves_to_the_class_keras_picks_named_as_given(alias):
    from keras.src.metrics import ALL_OBJECTS_DICT
    if alias not in ALL_OBJECTS_DICT:
        with pytest.raises(ValueError, match="Unknown metric"):
            FM.get(alias)
        return
    got = FM.get(alias)
    assert type(got).__name__ == ALL_OBJECTS_DICT[alias].__name__
    assert got.name == alias


# ---------------------------------------------------------------- fit / evaluate
def _tutorial_metrics(K):
    M = K.metrics
    return [M.BinaryCrossentropy(name="cross entropy"), M.MeanSquaredError(name="Brier score"),
            M.TruePositives(name="tp"), M.FalsePositives(name="fp"), M.TrueNegatives(name="tn"),
            M.FalseNegatives(name="fn"), M.BinaryAccuracy(name="accuracy"), M.Precision(name="precision"),
            M.Recall(name="recall"), M.AUC(name="auc"), M.AUC(name="prc", curve="PR")]


def _imbalanced(n=320, d=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype("float32")
    y = ((X[:, 0] + 0.5 * X[:, 1] + rng.normal(size=n)) > 1.8).astype("float32").reshape(-1, 1)
    return X, y


def _tutorial_twins(d, metrics=_tutorial_metrics):
    def build(K):
        m = K.Sequential([K.Input((d,)), K.layers.Dense(16, activation="relu"),
                          K.layers.Dense(1, activation="sigmoid")])
        m.compile(optimizer=K.optimizers.Adam(1e-3), loss=K.losses.BinaryCrossentropy(), metrics=metrics(K))
        return m
    km, fm = build(keras), build(fastmlp)
    fm.set_weights(km.get_weights())
    return km, fm


def _assert_history(kh, fh, keys=None):
    assert sorted(fh) == sorted(kh)
    for key in keys or kh:
        np.testing.assert_allclose(fh[key], kh[key], atol=STEP_ATOL, rtol=1e-5, err_msg=key)


def test_the_imbalanced_data_tutorial_metrics_give_keras_history():
    X, y = _imbalanced()
    assert 0.05 < y.mean() < 0.2
    km, fm = _tutorial_twins(X.shape[1])
    kh = km.fit(X, y, batch_size=32, epochs=3, shuffle=False, verbose=0).history
    fh = fm.fit(X, y, batch_size=32, epochs=3, shuffle=False, verbose=0).history
    _assert_history(kh, fh)
    assert all(np.isclose(fh["tp"][e] + fh["fp"][e] + fh["tn"][e] + fh["fn"][e], len(X)) for e in range(3))
    np.testing.assert_allclose(fm.evaluate(X, y, verbose=0), km.evaluate(X, y, verbose=0), atol=STEP_ATOL,
                               rtol=1e-5)


def test_the_tutorial_metrics_with_validation_data_give_keras_validation_logs():
    X, y = _imbalanced(seed=1)
    km, fm = _tutorial_twins(X.shape[1])
    val = (X[:100], y[:100])
    kh = km.fit(X, y, batch_size=64, epochs=2, shuffle=False, verbose=0, validation_data=val).history
    fh = fm.fit(X, y, batch_size=64, epochs=2, shuffle=False, verbose=0, validation_data=val).history
    # Keras's torch backend aliases the training counts to the validation ones (module docstring)
    _assert_history(kh, fh, [k for k in kh if k not in ("tp", "fp", "tn", "fn")])


def test_more_metrics_in_fit_and_evaluate_match_keras():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 6)).astype("float32")
    labels = (X[:, :3] @ rng.normal(size=(3, 4))).argmax(1)
    Y = np.eye(4, dtype="float32")[labels]
    w = rng.uniform(0.5, 1.5, len(X)).astype("float32")

    def metrics(K):
        M = K.metrics
        return [M.CategoricalCrossentropy(), M.KLDivergence(), M.CategoricalHinge(), M.CosineSimilarity(),
                M.R2Score(), M.FBetaScore(average="macro", beta=2.0), M.PrecisionAtRecall(0.5, class_id=1, name="p_at_r"),
                M.SensitivityAtSpecificity(0.8, name="s_at_s"), M.TruePositives(thresholds=[0.3, 0.6], name="tp"),
                M.Poisson(),
                M.LogCoshError(), "mape", "msle", "AUC"]

    def build(K):
        m = K.Sequential([K.Input((6,)), K.layers.Dense(8, activation="tanh"),
                          K.layers.Dense(4, activation="softmax")])
        m.compile(optimizer=K.optimizers.SGD(0.1), loss="categorical_crossentropy", metrics=metrics(K))
        return m
    km, fm = build(keras), build(fastmlp)
    fm.set_weights(km.get_weights())
    kh = km.fit(X, Y, sample_weight=w, batch_size=50, epochs=2, shuffle=False, verbose=0).history
    fh = fm.fit(X, Y, sample_weight=w, batch_size=50, epochs=2, shuffle=False, verbose=0).history
    assert sorted(fh) == sorted(kh)
    for key in kh:
        np.testing.assert_allclose(np.asarray(fh[key], dtype=float), np.asarray(kh[key], dtype=float),
                                   atol=STEP_ATOL, rtol=1e-5, err_msg=key)
    ke = km.evaluate(X, Y, sample_weight=w, verbose=0, return_dict=True)
    fe = fm.evaluate(X, Y, sample_weight=w, verbose=0, return_dict=True)
    for key in ke:
        np.testing.assert_allclose(np.asarray(fe[key], float), np.asarray(ke[key], float), atol=STEP_ATOL,
                                   rtol=1e-5, err_msg=key)


def test_metrics_of_the_same_name_get_keras_s_numbered_names_and_values():
    """Keras numbers repeated result names (f1_score, f1_score_1, ...; a weighted twin is
    weighted_<name>, then weighted_<name>_1): the History keys and values must be Keras's."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(96, 6)).astype("float32")
    Y = (rng.random((96, 3)) > 0.5).astype("float32")
    w = rng.uniform(0.5, 1.5, len(X)).astype("float32")

    def build(K):
        M = K.metrics
        m = K.Sequential([K.Input((6,)), K.layers.Dense(8, activation="relu"), K.layers.Dense(3, activation="sigmoid")])
        m.compile(optimizer=K.optimizers.SGD(0.1), loss="binary_crossentropy",
                  metrics=[M.F1Score(average="micro", threshold=0.5), M.F1Score(average="macro", threshold=0.3),
                           "mse", "mse", M.F1Score(average="weighted", threshold=0.4)],
                  weighted_metrics=["mse", "mse", M.AUC(name="wauc")])
        return m
    km, fm = build(keras), build(fastmlp)
    fm.set_weights(km.get_weights())
    kh = km.fit(X, Y, sample_weight=w, batch_size=32, epochs=2, shuffle=False, verbose=0, validation_split=0.25).history
    fh = fm.fit(X, Y, sample_weight=w, batch_size=32, epochs=2, shuffle=False, verbose=0, validation_split=0.25).history
    assert {"f1_score_1", "f1_score_2", "mse_1", "weighted_mse", "weighted_mse_1", "val_f1_score_2"} <= set(kh)
    _assert_history(kh, fh)


def test_sparse_labels_metrics_in_fit_match_keras():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(200, 5)).astype("float32")
    y = (X[:, :2] @ rng.normal(size=(2, 3))).argmax(1)

    def build(K):
        m = K.Sequential([K.Input((5,)), K.layers.Dense(3, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=[K.metrics.SparseCategoricalCrossentropy(), "accuracy"])
        return m
    km, fm = build(keras), build(fastmlp)
    fm.set_weights(km.get_weights())
    kh = km.fit(X, y, batch_size=32, epochs=2, shuffle=False, verbose=0).history
    fh = fm.fit(X, y, batch_size=32, epochs=2, shuffle=False, verbose=0).history
    _assert_history(kh, fh)


def _user_metrics(K):
    if K is keras:
        ops = keras.ops

        def abs_error(y_true, y_pred):
            return ops.mean(ops.abs(y_true - y_pred), axis=-1)

        def batch_max(y_true, y_pred):      # one value per batch: Keras averages the batches
            return ops.max(y_pred)
    else:
        def abs_error(y_true, y_pred):
            return np.mean(np.abs(y_true - y_pred), axis=-1)

        def batch_max(y_true, y_pred):
            return np.max(y_pred)
    return [abs_error, K.metrics.MeanMetricWrapper(batch_max, name="peak"), "mae"]


def test_user_metric_functions_in_fit_and_evaluate_average_like_keras():
    X, y = _imbalanced(n=300, seed=2)
    km, fm = _tutorial_twins(X.shape[1], _user_metrics)
    kh = km.fit(X, y, batch_size=64, epochs=2, shuffle=False, verbose=0, validation_data=(X[:100], y[:100])).history
    fh = fm.fit(X, y, batch_size=64, epochs=2, shuffle=False, verbose=0, validation_data=(X[:100], y[:100])).history
    _assert_history(kh, fh)
    np.testing.assert_allclose(fh["abs_error"], fh["mae"], rtol=1e-6)
    ke = km.evaluate(X, y, batch_size=40, verbose=0, return_dict=True)
    fe = fm.evaluate(X, y, batch_size=40, verbose=0, return_dict=True)
    for key in ke:
        np.testing.assert_allclose(fe[key], ke[key], atol=STEP_ATOL, rtol=1e-5, err_msg=key)


def test_a_metric_subclass_runs_in_fit_like_keras():
    def make(K):
        class PositiveRate(K.metrics.Metric):
            def __init__(self, name="positive_rate", **kwargs):
                super().__init__(name=name, **kwargs)
                self.pos = self.add_variable(shape=(), initializer="zeros", name="pos")
                self.total = self.add_variable(shape=(), initializer="zeros", name="total")

            def update_state(self, y_true, y_pred, sample_weight=None):
                self.pos.assign(self.pos + K.ops.sum(K.ops.cast(y_pred > 0.5, "float32")))
                self.total.assign(self.total + K.ops.cast(K.ops.shape(y_pred)[0], "float32"))

            def result(self):
                return self.pos / self.total
        return [PositiveRate()]
    X, y = _imbalanced(n=200, seed=5)
    km, fm = _tutorial_twins(X.shape[1], make)
    kh = km.fit(X, y, batch_size=32, epochs=2, shuffle=False, verbose=0).history
    fh = fm.fit(X, y, batch_size=32, epochs=2, shuffle=False, verbose=0).history
    _assert_history(kh, fh)


FUNCTIONS = ["binary_accuracy", "mean_squared_error", "mean_absolute_error", "binary_crossentropy", "hinge",
             "squared_hinge", "log_cosh", "poisson", "kl_divergence", "mean_absolute_percentage_error",
             "mean_squared_logarithmic_error"]


def test_metric_functions_equal_keras_per_sample_and_run_in_c_when_compiled():
    Y, P = _data("binary")
    for name in FUNCTIONS:
        np.testing.assert_allclose(getattr(FM, name)(Y, P), np.asarray(getattr(KM, name)(Y, P)), rtol=1e-5,
                                   atol=1e-6, err_msg=name)
    labels, Q = _data("labels")
    onehot = np.eye(Q.shape[1], dtype="float32")[labels]
    for name in ("categorical_accuracy", "categorical_crossentropy", "categorical_hinge"):
        np.testing.assert_allclose(getattr(FM, name)(onehot, Q), np.asarray(getattr(KM, name)(onehot, Q)),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    for name in ("sparse_categorical_accuracy", "sparse_categorical_crossentropy"):
        np.testing.assert_allclose(getattr(FM, name)(labels, Q), np.asarray(getattr(KM, name)(labels, Q)),
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(FM.top_k_categorical_accuracy(onehot, Q, k=2),
                               np.asarray(KM.top_k_categorical_accuracy(onehot, Q, k=2)))
    assert FM.get(FM.mean_squared_error)._in_engine and FM.get(FM.log_cosh).name == "log_cosh"

    X, y = _imbalanced(n=200, seed=6)
    km, fm = _tutorial_twins(X.shape[1], lambda K: [K.metrics.binary_accuracy, K.metrics.mean_squared_error,
                                                    K.metrics.binary_crossentropy])
    kh = km.fit(X, y, batch_size=50, epochs=2, shuffle=False, verbose=0).history
    fh = fm.fit(X, y, batch_size=50, epochs=2, shuffle=False, verbose=0).history
    _assert_history(kh, fh)
