"""scikit-learn's own estimator checks pass for every fastmlp estimator, with no expected failures."""
import pytest

pytest.importorskip("sklearn")
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastmlp  # noqa: E402
from fastmlp import layers  # noqa: E402
from fastmlp.sklearn import MLPClassifier, MLPRegressor, KerasClassifier, KerasRegressor  # noqa: E402


# float64 models and one batch per epoch: sample weights are then exactly repeated rows
def build_clf(meta):
    m = fastmlp.Sequential([fastmlp.Input((meta["n_features_in_"],), dtype="float64"),
                            layers.Dense(32, activation="relu", dtype="float64"),
                            layers.Dense(meta["n_classes_"], activation="softmax", dtype="float64")])
    m.compile(optimizer=fastmlp.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    return m


def build_reg(meta):
    m = fastmlp.Sequential([fastmlp.Input((meta["n_features_in_"],), dtype="float64"),
                            layers.Dense(32, activation="relu", dtype="float64"),
                            layers.Dense(meta["n_outputs_"], dtype="float64")])
    m.compile(optimizer=fastmlp.optimizers.Adam(0.01), loss="mse")
    return m


@parametrize_with_checks([MLPClassifier(random_state=0),
                          MLPRegressor(random_state=0),
                          KerasClassifier(build_clf, epochs=100, batch_size=1000, random_state=0),
                          KerasRegressor(build_reg, epochs=100, batch_size=1000, random_state=0)])
def test_estimator_passes_scikit_learns_checks(estimator, check):
    check(estimator)
