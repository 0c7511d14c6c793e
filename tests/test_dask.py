"""fastmlp on a real Dask cluster (a LocalCluster of two worker processes on loopback): a
joblib-dask search, Incremental training over many blocks, and distributed prediction on
arrays and DataFrames (empty and one-row partitions included), the model shipped once per worker."""
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
pd = pytest.importorskip("pandas")

import dask  # noqa: E402
import fastmlp  # noqa: E402
import fastmlp.dask  # noqa: E402
from fastmlp import layers  # noqa: E402
from fastmlp.sklearn import MLPClassifier  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.normal(size=(2000, 6)).astype(np.float32)
Y = (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                           dashboard_address=None, worker_dashboard_address=None)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def _model():
    fastmlp.utils.set_random_seed(0)
    model = fastmlp.Sequential([fastmlp.Input((6,)), layers.Dense(16, activation="relu"),
                                layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(X, Y, epochs=2, verbose=0)
    return model


def test_predict_on_a_dask_array_ships_the_model_once_per_worker(client):
    model = _model()
    Xd = da.from_array(X, chunks=(100, 3))        # 20 row blocks, and the columns split in two
    client.run(lambda: fastmlp.dask._LOADS.__setitem__(0, 0))
    out = fastmlp.dask.predict(model, Xd)
    assert isinstance(out, da.Array) and out.shape == (2000, 3)
    got = out.compute()
    np.testing.assert_allclose(got, model.predict(X, verbose=0), rtol=1e-6, atol=1e-7)
    loads = client.run(lambda: fastmlp.dask._LOADS[0])
    assert sum(loads.values()) <= len(loads) == 2    # at most one deserialization per worker, for 20 blocks


def test_estimator_labels_and_probabilities_on_a_dataframe_with_empty_and_one_row_partitions(client):
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, Y)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    parts = [frame.iloc[:0], frame.iloc[:1], frame.iloc[1:700], frame.iloc[700:700], frame.iloc[700:]]
    ddf = dd.from_delayed([dask.delayed(p) for p in parts], meta=frame.iloc[:0])
    assert ddf.npartitions == 5
    labels = fastmlp.dask.predict(clf, ddf).compute()
    np.testing.assert_array_equal(labels, clf.predict(X))
    proba = fastmlp.dask.predict(clf, ddf, method="predict_proba").compute()
    np.testing.assert_allclose(proba, clf.predict_proba(X), rtol=1e-6)


def test_predict_checks_its_arguments():
    model = _model()
    with pytest.raises(TypeError, match="Dask array or DataFrame"):
        fastmlp.dask.predict(model, X)
    with pytest.raises(ValueError, match="expects 6"):
        fastmlp.dask.predict(model, da.zeros((10, 5), chunks=5))
    with pytest.raises(ValueError, match="method"):
        fastmlp.dask.predict(model, da.zeros((10, 6), chunks=5), method="transform")


def test_incremental_trains_one_partial_fit_per_block(client):
    wrappers = pytest.importorskip("dask_ml.wrappers")
    Xd = da.from_array(X, chunks=(100, 6))
    Yd = da.from_array(Y, chunks=100)
    assert Xd.numblocks[0] >= 20
    inc = wrappers.Incremental(MLPClassifier(hidden_layer_sizes=(16,), batch_size=20, learning_rate_init=0.01,
                                           random_state=0), scoring="accuracy")
    inc.fit(Xd, Yd, classes=[0, 1, 2])
    est = inc.estimator_
    assert est.n_iter_ == 1 and est.t_ == 2000          # partial_fit saw every block once
    assert inc.score(Xd, Yd) > 0.6
    post = wrappers.ParallelPostFit(est).predict(Xd).compute()
    np.testing.assert_array_equal(post, est.predict(X))


def test_a_search_runs_its_candidates_on_the_workers(client):
    joblib = pytest.importorskip("joblib")
    from sklearn.model_selection import GridSearchCV
    search = GridSearchCV(MLPClassifier(max_iter=10, random_state=0),
                          {"hidden_layer_sizes": [(8,), (32,)], "learning_rate_init": [1e-3, 1e-2]}, cv=2)
    with warnings.catch_warnings(), joblib.parallel_backend("dask"), distributed.get_task_stream(client) as ts:
        warnings.simplefilter("ignore")
        search.fit(X, Y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_score_ > 0.7
    workers = {task["worker"] for task in ts.data}
    # the fits ran as tasks on the cluster's workers (joblib may batch several fits into one task)
    assert ts.data and workers <= set(client.scheduler_info()["workers"])


def test_a_dataframe_is_scored_by_column_name_for_an_estimator_fitted_on_a_frame(client):
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    frame = pd.DataFrame(X[:, :3], columns=["a", "b", "c"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(frame, Y)
    ddf = dd.from_pandas(frame[["b", "a", "c"]], npartitions=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # no "X does not have valid feature names" from any block
        labels = fastmlp.dask.predict(clf, ddf).compute()
    np.testing.assert_array_equal(labels, clf.predict(frame))
    with pytest.raises(ValueError, match="lacks the column"):
        fastmlp.dask.predict(clf, ddf[["a", "b"]])
