"""The metrics added for Keras programs against NumPy references (no Keras needed):
streaming over batches with sample weights, in fit/evaluate, Python metrics, saving,
and the errors for arguments fastmlp does not take."""
import numpy as np
import pytest

import fastmlp
from fastmlp import metrics as M

EPS = 1e-7


def _rng(seed=0):
    return np.random.default_rng(seed)


def _stream(metric, Y, P, w, batches=3):
    for idx in np.array_split(np.arange(len(P)), batches):
        metric.update_state(Y[idx], P[idx], sample_weight=None if w is None else w[idx])
    return np.asarray(metric.result(), dtype=np.float64)


def _wmean(v, w):
    return np.sum(v * w) / np.sum(w)


def _binary(n=40, c=3, seed=0):
    r = _rng(seed)
    return (r.random((n, c)) < 0.4).astype(float), r.uniform(0.01, 0.99, (n, c)), r.uniform(0.1, 2, n)


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_mean_metrics_of_losses_equal_their_numpy_formulas_over_weighted_batches():
    Y, P, w = _binary()
    bce = -(Y * np.log(np.clip(P, EPS, 1 - EPS)) + (1 - Y) * np.log(1 - np.clip(P, EPS, 1 - EPS))).mean(1)
    np.testing.assert_allclose(_stream(M.BinaryCrossentropy(), Y, P, w), _wmean(bce, w), rtol=1e-10)
    z = 3 * _rng(1).normal(size=Y.shape)
    ys = Y * 0.9 + 0.05
    bce_logits = (np.maximum(z, 0) - z * ys + np.log1p(np.exp(-np.abs(z)))).mean(1)
    np.testing.assert_allclose(_stream(M.BinaryCrossentropy(from_logits=True, label_smoothing=0.1), Y, z, w),
                               _wmean(bce_logits, w), rtol=1e-10)
    hinge = np.maximum(1 - (2 * Y - 1) * P, 0).mean(1)   # {0, 1} targets read as {-1, 1}
    np.testing.assert_allclose(_stream(M.Hinge(), Y, P, w), _wmean(hinge, w), rtol=1e-10)
    sq = (np.maximum(1 - (2 * Y - 1) * P, 0) ** 2).mean(1)
    np.testing.assert_allclose(_stream(M.SquaredHinge(), Y, P, w), _wmean(sq, w), rtol=1e-10)
    T = _rng(2).uniform(0.1, 3, Y.shape)
    np.testing.assert_allclose(_stream(M.Poisson(), T, P, w), _wmean((P - T * np.log(P + EPS)).mean(1), w),
                               rtol=1e-10)
    np.testing.assert_allclose(_stream(M.MeanAbsolutePercentageError(), T, P, w),
                               _wmean(100 * (np.abs(T - P) / T).mean(1), w), rtol=1e-10)
    np.testing.assert_allclose(_stream(M.MeanSquaredLogarithmicError(), T, P, w),
                               _wmean(((np.log1p(P) - np.log1p(T)) ** 2).mean(1), w), rtol=1e-10)
    np.testing.assert_allclose(_stream(M.LogCoshError(), T, P, w), _wmean(np.log(np.cosh(P - T)).mean(1), w),
                               rtol=1e-9)
    cos = (T * P).sum(1) / np.linalg.norm(T, axis=1) / np.linalg.norm(P, axis=1)
    np.testing.assert_allclose(_stream(M.CosineSimilarity(), T, P, w), _wmean(cos, w), rtol=1e-10)


def test_categorical_metrics_equal_numpy_for_one_hot_and_labels():
    r = _rng(3)
    labels = r.integers(0, 4, 50)
    Y = np.eye(4)[labels]
    z = 2 * r.normal(size=(50, 4))
    P = _softmax(z)
    w = r.uniform(0.1, 2, 50)
    ce = -np.log(P[np.arange(50), labels])
    np.testing.assert_allclose(_stream(M.CategoricalCrossentropy(), Y, P, w), _wmean(ce, w), rtol=1e-9)
    np.testing.assert_allclose(_stream(M.SparseCategoricalCrossentropy(), labels, P, w), _wmean(ce, w), rtol=1e-9)
    np.testing.assert_allclose(_stream(M.SparseCategoricalCrossentropy(from_logits=True), labels, z, w),
                               _wmean(ce, w), rtol=1e-9)
    Yc = np.clip(Y, EPS, 1)
    kld = (Yc * np.log(Yc / np.clip(P, EPS, 1))).sum(1)
    np.testing.assert_allclose(_stream(M.KLDivergence(), Y, P, w), _wmean(kld, w), rtol=1e-9)
    ch = np.maximum(((1 - Y) * P).max(1) - (Y * P).sum(1) + 1, 0)
    np.testing.assert_allclose(_stream(M.CategoricalHinge(), Y, P, w), _wmean(ch, w), rtol=1e-10)


def test_r2_score_equals_the_weighted_numpy_formula_per_unit_and_aggregated():
    r = _rng(4)
    Y = r.normal(size=(60, 3))
    P = Y + 0.5 * r.normal(size=Y.shape)
    w = r.uniform(0.1, 2, 60)
    mean = (w[:, None] * Y).sum(0) / w.sum()
    ss_tot = (w[:, None] * (Y - mean) ** 2).sum(0)
    ss_res = (w[:, None] * (Y - P) ** 2).sum(0)
    raw = 1 - ss_res / ss_tot
    np.testing.assert_allclose(_stream(M.R2Score(class_aggregation=None), Y, P, w), raw, rtol=1e-9)
    np.testing.assert_allclose(_stream(M.R2Score(), Y, P, w), raw.mean(), rtol=1e-9)
    np.testing.assert_allclose(_stream(M.R2Score(class_aggregation="variance_weighted_average"), Y, P, w),
                               (ss_tot * raw).sum() / ss_tot.sum(), rtol=1e-9)
    n = Y.size   # Keras counts every target
    np.testing.assert_allclose(_stream(M.R2Score(num_regressors=4), Y, P, w),
                               1 - (1 - raw.mean()) * (n - 1) / (n - 4 - 1), rtol=1e-9)


def test_confusion_counts_at_several_thresholds_equal_numpy():
    Y, P, w = _binary(seed=5)
    thresholds = [0.1, 0.5, 0.85]
    pos = P[None] > np.array(thresholds)[:, None, None]
    truth = Y[None] != 0
    ww = np.broadcast_to(w[None, :, None], pos.shape)
    want = {M.TruePositives: (pos & truth), M.FalsePositives: (pos & ~truth),
            M.TrueNegatives: (~pos & ~truth), M.FalseNegatives: (~pos & truth)}
    for cls, mask in want.items():
        np.testing.assert_allclose(_stream(cls(thresholds=thresholds), Y, P, w), (mask * ww).sum((1, 2)),
                                   rtol=1e-12)
        assert _stream(cls(), Y, P, w).shape == ()   # one threshold (0.5): a scalar
    assert float(M.TruePositives().result()) == 0.0


def _at_metric_reference(Y, P, w, n, kind, value, class_id=None):
    if class_id is not None:
        Y, P = Y[:, class_id:class_id + 1], P[:, class_id:class_id + 1]
    th = np.array([0.0] + [(i + 1) / (n - 1) for i in range(n - 2)] + [1.0])
    pos = P[None] > th[:, None, None]
    t = Y[None] != 0
    ww = np.broadcast_to(w[None, :, None], pos.shape)
    tp, fp = ((pos & t) * ww).sum((1, 2)), ((pos & ~t) * ww).sum((1, 2))
    tn, fn = ((~pos & ~t) * ww).sum((1, 2)), ((~pos & t) * ww).sum((1, 2))
    div = lambda a, b: np.where(b > 0, a / np.where(b > 0, b, 1), 0)  # noqa: E731
    rec, prec, spec = div(tp, tp + fn), div(tp, tp + fp), div(tn, tn + fp)
    constrained, dependent = {"par": (rec, prec), "rap": (prec, rec), "sas": (spec, rec),
                              "sps": (rec, spec)}[kind]
    return np.max(np.where(constrained >= value, dependent, 0), initial=0)


@pytest.mark.parametrize("kind,cls", [("par", M.PrecisionAtRecall), ("rap", M.RecallAtPrecision),
                                      ("sas", M.SensitivityAtSpecificity), ("sps", M.SpecificityAtSensitivity)])
@pytest.mark.parametrize("class_id", [None, 2])
def test_metrics_at_a_constraint_equal_the_numpy_reference(kind, cls, class_id):
    Y, P, w = _binary(n=80, c=4, seed=6)
    for n, value in ((200, 0.5), (17, 0.3)):
        got = _stream(cls(value, num_thresholds=n, class_id=class_id), Y, P, w)
        np.testing.assert_allclose(got, _at_metric_reference(Y, P, w, n, kind, value, class_id), rtol=1e-12)


def test_fbeta_score_follows_keras_formula_with_its_epsilons():
    r = _rng(7)
    labels = r.integers(0, 3, 70)
    Y = np.eye(3)[labels]
    P = _softmax(r.normal(size=(70, 3)))
    w = r.uniform(0.1, 2, 70)
    pred = (P >= P.max(1, keepdims=True)).astype(float)
    tp = (w[:, None] * pred * Y).sum(0)
    fp = (w[:, None] * pred * (1 - Y)).sum(0)
    fn = (w[:, None] * (1 - pred) * Y).sum(0)
    p, rc = tp / (tp + fp + EPS), tp / (tp + fn + EPS)
    f2 = p * rc / (4 * p + rc + EPS) * 5
    np.testing.assert_allclose(_stream(M.FBetaScore(beta=2.0), Y, P, w), f2, rtol=1e-12)
    np.testing.assert_allclose(_stream(M.FBetaScore(average="macro", beta=2.0), Y, P, w), f2.mean(), rtol=1e-12)
    assert isinstance(M.F1Score(), M.FBetaScore) and "beta" not in M.F1Score().get_config()


def test_mean_and_sum_reduce_values_like_keras():
    m = M.Mean()
    m.update_state([1, 3, 5, 7])
    assert m.result() == 4.0
    m.reset_state()
    m.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    assert m.result() == 2.0
    m.update_state(np.array([[1.0, 3.0], [5.0, 7.0]]))   # rows are averaged first
    assert m.result() == pytest.approx((4 + 2 + 6) / 4)
    s = M.Sum()
    s.update_state([1, 3, 5, 7], sample_weight=[1, 1, 0, 0])
    assert s.result() == 4.0 and M.Sum().result() == 0.0


def test_mean_metric_wrapper_averages_a_function_and_forwards_kwargs():
    def scaled_error(y_true, y_pred, scale=1.0):
        return scale * np.abs(y_true - y_pred).mean(-1)
    Y, P, w = _binary(seed=8)
    m = M.MeanMetricWrapper(scaled_error, name="se", scale=2.0)
    np.testing.assert_allclose(_stream(m, Y, P, w), _wmean(2 * np.abs(Y - P).mean(1), w), rtol=1e-12)
    assert m.get_config()["scale"] == 2.0 and m.name == "se"
    assert M.MeanMetricWrapper(scaled_error).name == "mean_metric_wrapper"
    assert isinstance(M.MeanSquaredError(), M.MeanMetricWrapper) and isinstance(M.Mean(), M.Metric)


# ---------------------------------------------------------------- in fit / evaluate
def _model(metrics, weighted_metrics=None, out=1, act="sigmoid", loss="binary_crossentropy", seed=1):
    fastmlp.utils.set_random_seed(seed)
    model = fastmlp.Sequential([fastmlp.Input((5,)), fastmlp.layers.Dense(6, activation="tanh"),
                                fastmlp.layers.Dense(out, activation=act)])
    model.compile(optimizer=fastmlp.optimizers.SGD(0.0), loss=loss, metrics=metrics,
                  weighted_metrics=weighted_metrics)
    return model


def _xy(n=150, seed=2):
    r = _rng(seed)
    X = r.normal(size=(n, 5)).astype(np.float32)
    return X, (X[:, 0] + r.normal(size=n) > 0.8).astype(np.float32).reshape(-1, 1), r.uniform(0.2, 2, n)


def test_compiled_metrics_ignore_sample_weights_and_weighted_metrics_apply_them():
    X, y, w = _xy()
    model = _model([M.BinaryCrossentropy(), M.TruePositives(thresholds=[0.3, 0.5])],
                   [M.BinaryCrossentropy(), "mse"])
    P = model.predict(X).astype(np.float64)
    logs = model.evaluate(X, y, sample_weight=w, batch_size=16, verbose=0, return_dict=True)
    q = np.clip(P, EPS, 1 - EPS)
    bce = -(y * np.log(q) + (1 - y) * np.log(1 - q))[:, 0]
    assert logs["binary_crossentropy"] == pytest.approx(bce.mean(), rel=1e-5)
    assert logs["weighted_binary_crossentropy"] == pytest.approx(_wmean(bce, w), rel=1e-5)
    assert logs["mean_squared_error" if "mean_squared_error" in logs else "mse"] == \
        pytest.approx(_wmean(((P - y) ** 2)[:, 0], w), rel=1e-5)
    np.testing.assert_array_equal(logs["true_positives"], [((P > t) & (y == 1)).sum() for t in (0.3, 0.5)])
    hist = model.fit(X, y, sample_weight=w, batch_size=16, epochs=2, shuffle=True, verbose=0).history
    assert hist["binary_crossentropy"][1] == pytest.approx(bce.mean(), rel=1e-5)
    assert hist["weighted_binary_crossentropy"][0] == pytest.approx(_wmean(bce, w), rel=1e-5)


def test_function_metrics_average_per_keras_batch_in_fit_and_evaluate():
    X, y, _ = _xy(130)

    def peak(y_true, y_pred):   # one value per batch
        return np.max(y_pred)

    def err(y_true, y_pred):
        return np.abs(y_true - y_pred).mean(-1)
    model = _model([peak, err, "mae"])
    P = model.predict(X)
    batch_means = [P[i:i + 32].max() for i in range(0, 130, 32)]
    logs = model.evaluate(X, y, batch_size=32, verbose=0, return_dict=True)
    assert logs["peak"] == pytest.approx(np.mean(batch_means), rel=1e-6)
    assert logs["err"] == pytest.approx(logs["mae"], rel=1e-6)
    hist = model.fit(X, y, batch_size=32, epochs=2, shuffle=False, verbose=0).history
    assert hist["peak"] == pytest.approx([np.mean(batch_means)] * 2, rel=1e-6)
    assert hist["err"] == pytest.approx(hist["mae"], rel=1e-6)
    out = model.train_on_batch(X[:20], y[:20], return_dict=True)
    assert out["peak"] == pytest.approx(P[:20].max(), rel=1e-6)


def test_function_metrics_see_training_mode_outputs_of_each_shuffled_batch():
    X, y, _ = _xy(100)
    seen = []

    def record(y_true, y_pred):
        seen.append((y_true.copy(), y_pred.copy()))
        return np.zeros(len(y_pred))
    model = _model([record])
    model.fit(X, y, batch_size=25, epochs=1, shuffle=True, verbose=0)
    P = model.predict(X)
    assert len(seen) == 4
    Yb = np.concatenate([s[0] for s in seen])
    Pb = np.concatenate([s[1] for s in seen])
    order = np.lexsort(np.c_[Pb, Yb].T)   # the same rows, in some order
    ref = np.lexsort(np.c_[P, y].T)
    np.testing.assert_allclose(Pb[order], P[ref], rtol=1e-6)
    np.testing.assert_array_equal(Yb[order], y[ref])


def test_a_metric_subclass_with_variables_runs_in_fit():
    class Count(M.Metric):
        def __init__(self, name="count", **kwargs):
            super().__init__(name=name, **kwargs)
            self.n = self.add_variable(shape=(), initializer="zeros", name="n")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.n.assign_add(len(y_pred))

        def result(self):
            return self.n.numpy()
    X, y, _ = _xy(90)
    model = _model([Count()])
    assert model.fit(X, y, batch_size=20, epochs=2, verbose=0).history["count"] == [90.0, 90.0]
    assert model.evaluate(X[:30], y[:30], verbose=0)[1] == 30.0


def test_new_metrics_save_and_load_in_the_compile_config(tmp_path):
    metrics = [M.BinaryCrossentropy(name="ce", label_smoothing=0.1), M.TruePositives(thresholds=[0.2, 0.6]),
               M.PrecisionAtRecall(0.4, num_thresholds=30), M.R2Score(num_regressors=1),
               M.FBetaScore(beta=0.5, threshold=0.5), "bce", "AUC", M.CosineSimilarity(), M.LogCoshError()]
    model = _model(metrics, weighted_metrics=["mse"])
    X, y, w = _xy()
    before = model.evaluate(X, y, sample_weight=w, verbose=0, return_dict=True)
    model.save(tmp_path / "m.fmlp")
    loaded = fastmlp.models.load_model(tmp_path / "m.fmlp")
    after = loaded.evaluate(X, y, sample_weight=w, verbose=0, return_dict=True)
    assert list(after) == list(before)
    for key in before:
        np.testing.assert_allclose(after[key], before[key], rtol=1e-12)
    assert loaded.get_compile_config() == model.get_compile_config()


def test_a_function_metric_is_saved_by_name_and_loads_only_without_compiling(tmp_path):
    def my_metric(y_true, y_pred):
        return np.abs(y_true - y_pred).mean(-1)
    model = _model([my_metric])
    assert model.get_compile_config()["metrics"][0]["config"]["fn"].endswith("my_metric")
    model.save(tmp_path / "m.fmlp")
    with pytest.raises(Exception, match="my_metric.*compile=False"):
        fastmlp.models.load_model(tmp_path / "m.fmlp")
    assert not fastmlp.models.load_model(tmp_path / "m.fmlp", compile=False).compiled


def test_unsupported_arguments_and_misuse_raise_clear_errors():
    with pytest.raises(ValueError, match="ignore_class"):
        M.SparseCategoricalCrossentropy(ignore_class=0)
    with pytest.raises(ValueError, match="axis"):
        M.CategoricalCrossentropy(axis=0)
    with pytest.raises(ValueError, match=r"Threshold values must be in \[0, 1\]"):
        M.TruePositives(thresholds=[0.2, 1.5])
    with pytest.raises(ValueError, match="num_thresholds"):
        M.PrecisionAtRecall(0.5, num_thresholds=0)
    with pytest.raises(ValueError, match="recall"):
        M.PrecisionAtRecall(1.5)
    with pytest.raises(ValueError, match="beta"):
        M.FBetaScore(beta=2)
    with pytest.raises(ValueError, match="class_aggregation"):
        M.R2Score(class_aggregation="median")
    with pytest.raises(ValueError, match="needs arguments"):
        M.get("precision_at_recall")
    with pytest.raises(ValueError, match="Unknown metric"):
        M.get("crossentropy")
    with pytest.raises(ValueError, match="takes values"):
        _model([M.Mean()])
    with pytest.raises(ValueError, match="integer labels"):
        _model([M.SparseCategoricalCrossentropy()]).evaluate(*_xy()[:2], verbose=0)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        M.SparseCategoricalCrossentropy().update_state([0, 3], np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match="class_id"):
        _model([M.PrecisionAtRecall(0.5, class_id=3)]).evaluate(*_xy()[:2], verbose=0)
    with pytest.raises(TypeError, match="callable"):
        M.MeanMetricWrapper(3)
