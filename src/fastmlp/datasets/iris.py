"""Fisher's Iris data (150 samples, 4 features, 3 classes), shipped with fastmlp."""
import os

import numpy as np

CLASS_NAMES = ("setosa", "versicolor", "virginica")
FEATURE_NAMES = ("sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm")


def load_raw():
    """All 150 rows: ``(x float32 (150, 4), y int64 (150,))`` in the original order."""
    path = os.path.join(os.path.dirname(__file__), "data", "iris.csv")
    data = np.loadtxt(path, delimiter=",", comments="#")
    return data[:, :4].astype(np.float32), data[:, 4].astype(np.int64)


def load_data(test_split=0.2, seed=113):
    """A stratified, seeded train/test split: ``(x_train, y_train), (x_test, y_test)``."""
    if not 0 < test_split < 1:
        raise ValueError(f"`test_split` must be in (0, 1). Received: test_split={test_split}")
    x, y = load_raw()
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for c in range(len(CLASS_NAMES)):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(len(idx) * test_split))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    train_idx = rng.permutation(np.concatenate(train_idx))
    test_idx = rng.permutation(np.concatenate(test_idx))
    return (x[train_idx], y[train_idx]), (x[test_idx], y[test_idx])
