"""fastmlp.sklearn: the MLP estimators train as scikit-learn's own (same initial weights, same
updates, same fitted attributes), the Keras wrappers route parameters as scikeras does, and both
work inside pipelines, searches and pickles."""
import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn import neural_network  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import RandomizedSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import fastmlp  # noqa: E402
from fastmlp import layers  # noqa: E402
from fastmlp.sklearn import KerasClassifier, KerasRegressor, MLPClassifier, MLPRegressor  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.normal(size=(300, 5))
Y_BINARY = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
Y_MULTI = np.digitize(X[:, 0], [-0.5, 0.5])
Y_LABELS = np.c_[Y_BINARY, X[:, 3] > 0].astype(int)
Y_REG = np.c_[2 * X[:, 0] + X[:, 1], X[:, 3] ** 2]


def _both(ours, theirs, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return ours(**kw).fit(X, y), theirs(**kw).fit(X, y)


CASES = [
    ("binary", MLPClassifier, neural_network.MLPClassifier, Y_BINARY),
    ("multiclass", MLPClassifier, neural_network.MLPClassifier, Y_MULTI),
    ("multilabel", MLPClassifier, neural_network.MLPClassifier, Y_LABELS),
    ("regression", MLPRegressor, neural_network.MLPRegressor, Y_REG[:, 0]),
    ("two outputs", MLPRegressor, neural_network.MLPRegressor, Y_REG),
]
SOLVERS = [
    dict(solver="adam"),
    dict(solver="sgd"),
    dict(solver="sgd", nesterovs_momentum=False, momentum=0.5),
    dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.1),
    dict(solver="adam", activation="tanh", alpha=0.0),
    dict(solver="adam", activation="logistic"),
]


@pytest.mark.parametrize("solver", SOLVERS, ids=lambda d: "-".join(f"{k}={v}" for k, v in d.items()))
@pytest.mark.parametrize("name,ours,theirs,y", CASES, ids=[c[0] for c in CASES])
def test_training_follows_scikit_learns_mlp_epoch_by_epoch(name, ours, theirs, y, solver):
    kw = dict(hidden_layer_sizes=(16, 8), max_iter=5, shuffle=False, random_state=1, batch_size=50, alpha=1e-3)
    kw.update(solver)
    a, b = _both(ours, theirs, y, **kw)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-9, atol=1e-9)
    for mine, theirs_ in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(mine, theirs_, rtol=1e-9, atol=1e-9)
    assert (a.n_iter_, a.t_, a.n_layers_, a.n_outputs_, a.out_activation_) == \
        (b.n_iter_, b.t_, b.n_layers_, b.n_outputs_, b.out_activation_)
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-9, atol=1e-9)
    if ours is MLPClassifier:
        np.testing.assert_array_equal(a.classes_, b.classes_)
        np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-9, atol=1e-9)


def test_the_stopping_rule_and_adaptive_learning_rate_are_scikit_learns():
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", learning_rate="adaptive", learning_rate_init=0.5,
              tol=0.05, n_iter_no_change=2, max_iter=60, shuffle=False, random_state=3, batch_size=100)
    a, b = _both(MLPClassifier, neural_network.MLPClassifier, Y_MULTI, **kw)
    assert a.n_iter_ == b.n_iter_ < 60
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-9)
    a, b = _both(MLPRegressor, neural_network.MLPRegressor, Y_REG[:, 0],
                 **dict(kw, learning_rate="constant", learning_rate_init=0.01))
    assert a.n_iter_ == b.n_iter_ < 60
    assert a.best_loss_ == pytest.approx(b.best_loss_, rel=1e-9)


def test_early_stopping_scores_a_held_out_split_and_keeps_the_best_weights():
    kw = dict(hidden_layer_sizes=(16,), max_iter=30, shuffle=False, random_state=0, batch_size=54,
              early_stopping=True, n_iter_no_change=3)
    a, b = _both(MLPClassifier, neural_network.MLPClassifier, Y_BINARY, **kw)
    assert a.best_loss_ is None and a.validation_scores_ is not None
    np.testing.assert_allclose(a.validation_scores_, b.validation_scores_, atol=1e-12)
    assert a.best_validation_score_ == max(a.validation_scores_)
    assert a.score(X, Y_BINARY) == pytest.approx(b.score(X, Y_BINARY), abs=0.01)


def test_sample_weights_average_as_scikit_learn_does():
    import sklearn
    if tuple(int(v) for v in sklearn.__version__.split(".")[:2]) < (1, 7):
        pytest.skip("scikit-learn's own MLP takes sample_weight from 1.7")
    w = RNG.integers(0, 3, len(X)).astype(float)
    kw = dict(hidden_layer_sizes=(8,), max_iter=4, shuffle=False, random_state=0, batch_size=len(X))
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        a = MLPClassifier(**kw).fit(X, Y_BINARY, sample_weight=w)
    with pytest.warns(ConvergenceWarning):
        b = neural_network.MLPClassifier(**kw).fit(X, Y_BINARY, sample_weight=w)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-9)
    with pytest.raises(ValueError, match="sample_weight"):
        MLPClassifier(**kw).fit(X, Y_BINARY, sample_weight=np.zeros(len(X)))


def test_partial_fit_is_one_epoch_and_needs_the_classes_first():
    ours = MLPClassifier(hidden_layer_sizes=(8,), shuffle=False, random_state=0, batch_size=50)
    theirs = neural_network.MLPClassifier(hidden_layer_sizes=(8,), shuffle=False, random_state=0, batch_size=50)
    with pytest.raises(ValueError, match="classes must be passed"):
        clone(ours).partial_fit(X, Y_MULTI)
    for start in range(0, 300, 100):
        part = slice(start, start + 100)
        ours.partial_fit(X[part], Y_MULTI[part], classes=[0, 1, 2])
        theirs.partial_fit(X[part], Y_MULTI[part], classes=[0, 1, 2])
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    assert ours.n_iter_ == theirs.n_iter_ == 1 and ours.t_ == theirs.t_ == 300
    with pytest.raises(ValueError, match="not in `self.classes_`"):
        ours.partial_fit(X[:5], [0, 1, 2, 3, 0])
    with pytest.raises(ValueError, match="early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, Y_MULTI, classes=[0, 1, 2])


def test_warm_start_keeps_the_weights_and_the_loss_curve():
    kw = dict(hidden_layer_sizes=(8,), max_iter=3, shuffle=False, random_state=0, warm_start=True, batch_size=100)
    a, b = _both(MLPRegressor, neural_network.MLPRegressor, Y_REG[:, 0], **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a.fit(X, Y_REG[:, 0])
        b.fit(X, Y_REG[:, 0])
    assert len(a.loss_curve_) == len(b.loss_curve_) == 6
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-9)


def test_unsupported_or_bad_parameters_raise_naming_them():
    with pytest.raises(ValueError, match="lbfgs"):
        MLPClassifier(solver="lbfgs").fit(X, Y_BINARY)
    with pytest.raises(ValueError, match="activation"):
        MLPClassifier(activation="gelu").fit(X, Y_BINARY)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        MLPClassifier(hidden_layer_sizes=(4, 0)).fit(X, Y_BINARY)
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier().fit(X, Y_REG[:, 0])
    with pytest.raises(ValueError, match="NaN"):
        MLPRegressor(max_iter=1).fit(np.where(X > 2, np.nan, X), Y_REG[:, 0])


def test_a_fitted_estimator_pickles_through_the_compact_format():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(X.astype(np.float32), Y_MULTI)
    data = pickle.dumps(clf)
    assert clf.model_.to_bytes() in data
    again = pickle.loads(data)
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    assert again.get_params() == clf.get_params()


def test_pipeline_and_randomized_search_with_two_jobs():
    clf = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(32,), max_iter=20, random_state=0))
    search = RandomizedSearchCV(clf, {"mlpclassifier__hidden_layer_sizes": [(8,), (32, 16)],
                                      "mlpclassifier__learning_rate_init": [1e-2, 3e-3]},
                                n_iter=4, n_jobs=2, cv=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, Y_MULTI)
    assert search.best_score_ > 0.8
    assert search.best_estimator_.score(X, Y_MULTI) > 0.85


def test_the_engine_threads_are_a_threadpoolctl_library():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not hasattr(threadpoolctl, "register"):
        pytest.skip("threadpoolctl < 3.2 has no register()")
    before = fastmlp.get_num_threads()
    info = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "fastmlp"]
    assert len(info) == 1 and info[0]["num_threads"] == before
    with threadpoolctl.threadpool_limits(limits=1, user_api="fastmlp"):
        assert fastmlp.get_num_threads() == 1
    assert fastmlp.get_num_threads() == before


# ---------------------------------------------------------------------- Keras-model wrappers
def build(meta, hidden=16, activation="relu"):
    model = fastmlp.Sequential([fastmlp.Input((meta["n_features_in_"],)),
                                layers.Dense(hidden, activation=activation),
                                layers.Dense(meta["n_classes_"], activation="softmax")])
    return model


def test_keras_classifier_routes_parameters_as_scikeras():
    seen = {}

    def build_seen(meta, compile_kwargs, hidden):
        seen.update(meta=meta, compile_kwargs=compile_kwargs, hidden=hidden)
        return build(meta, hidden)

    clf = KerasClassifier(model=build_seen, model__hidden=24, optimizer="adam", optimizer__learning_rate=0.02,
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"], epochs=3, batch_size=32,
                          fit__shuffle=False, random_state=0)
    assert clf.get_params()["model__hidden"] == 24
    clf.fit(X, Y_MULTI)
    assert seen["hidden"] == 24 and seen["meta"]["n_classes_"] == 3 and seen["meta"]["n_features_in_"] == 5
    assert clf.model_.layers[0].units == 24
    assert float(clf.model_.optimizer.learning_rate) == pytest.approx(0.02)
    assert set(clf.history_) == {"loss", "accuracy"} and len(clf.history_["loss"]) == 3
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    assert clf.predict(X).shape == (300,) and clf.predict_proba(X).shape == (300, 3)
    # set_params on a routed parameter, then clone, keep it
    clf.set_params(model__hidden=40)
    assert clone(clf).get_params()["model__hidden"] == 40
    # the same random_state gives the same model
    again = clone(clf).set_params(model__hidden=24).fit(X, Y_MULTI)
    first = clone(clf).set_params(model__hidden=24).fit(X, Y_MULTI)
    np.testing.assert_array_equal(again.predict_proba(X), first.predict_proba(X))


def test_keras_classifier_encodes_labels_for_the_loss_and_takes_validation_data():
    labels = np.array(["cat", "dog", "eel"])[Y_MULTI]
    clf = KerasClassifier(build, loss="categorical_crossentropy", optimizer="adam", epochs=2, random_state=0)
    clf.fit(X, labels, validation_data=(X[:50], labels[:50]))
    assert set(clf.history_) == {"loss", "val_loss"}
    assert set(clf.predict(X)) <= {"cat", "dog", "eel"}
    with pytest.raises(TypeError, match="unexpected keyword argument 'modle__hidden'"):
        KerasClassifier(build, modle__hidden=3)


def test_keras_regressor_with_a_compiled_model_and_callbacks():
    model = fastmlp.Sequential([fastmlp.Input((5,)), layers.Dense(8, activation="tanh"), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    reg = KerasRegressor(model, epochs=4, callbacks=[fastmlp.callbacks.EarlyStopping],
                         callbacks__monitor="loss", callbacks__patience=1, random_state=0)
    reg.fit(X, Y_REG)
    assert reg.predict(X).shape == (300, 2)
    assert reg.model_ is not model and not model.built or model.layers[0].kernel is not reg.model_.layers[0].kernel
    assert reg.score(X, Y_REG) > -1.0
    single = fastmlp.Sequential([fastmlp.Input((5,)), layers.Dense(8, activation="tanh"), layers.Dense(1)])
    one = KerasRegressor(single, loss="mse", epochs=4, random_state=0).fit(X, Y_REG[:, 0])
    assert one.predict(X).shape == (300,)


def test_the_penalty_follows_alpha_and_batch_size_of_each_call_as_scikit_learns():
    kw = dict(hidden_layer_sizes=(8,), shuffle=False, random_state=0, batch_size=50, alpha=1.0, max_iter=3,
              warm_start=True)
    ours, theirs = _both(MLPRegressor, neural_network.MLPRegressor, Y_REG[:, 0], **kw)
    for est in (ours, theirs):
        est.set_params(alpha=10.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, Y_REG[:, 0])
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    a = MLPClassifier(hidden_layer_sizes=(4,), shuffle=False, random_state=0, batch_size=4, alpha=1.0)
    b = neural_network.MLPClassifier(hidden_layer_sizes=(4,), shuffle=False, random_state=0, batch_size=4, alpha=1.0)
    for est in (a, b):
        est.partial_fit(X[:4], Y_BINARY[:4], classes=[0, 1])
        est.set_params(batch_size=100)
        est.partial_fit(X[:200], Y_BINARY[:200])
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-9)
    assert a.best_loss_ == pytest.approx(b.best_loss_, rel=1e-9)


def test_multilabel_partial_fit_one_class_targets_and_unstratified_multiclass_splits():
    ours = MLPClassifier(hidden_layer_sizes=(4,), random_state=0).partial_fit(X, Y_LABELS, classes=[0, 1])
    theirs = neural_network.MLPClassifier(hidden_layer_sizes=(4,), random_state=0).partial_fit(X, Y_LABELS,
                                                                                               classes=[0, 1])
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    assert ours.predict(X).shape == Y_LABELS.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        one = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2).fit(X[:30], ["only"] * 30)
        assert list(one.predict(X[:3])) == ["only"] * 3
        y = np.array([0, 1] * 10)
        y[0] = 2     # a class with one member: scikit-learn does not stratify a multiclass split
        MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, early_stopping=True, validation_fraction=0.2,
                      random_state=0).fit(X[:20], y)


def test_keras_wrappers_route_loss_parameters_for_losses_given_by_name():
    clf = KerasClassifier(build, loss="categorical_crossentropy", loss__label_smoothing=0.1, epochs=1,
                          metrics=[fastmlp.metrics.CategoricalAccuracy], metrics__name="acc", random_state=0)
    clf.fit(X, Y_MULTI)
    assert isinstance(clf.model_.loss, fastmlp.losses.CategoricalCrossentropy)
    assert clf.model_.loss.get_config()["label_smoothing"] == pytest.approx(0.1)
    assert "acc" in clf.history_
