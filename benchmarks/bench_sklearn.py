"""fastmlp's scikit-learn estimators against scikit-learn's MLPClassifier and scikeras on Keras.

1. A 12-candidate grid search (hidden sizes x learning rate x alpha, 2-fold CV, n_jobs=2) on
   Fashion-MNIST (a synthetic stand-in of the same shape if the IDX files are absent): wall time
   and the best candidate's test accuracy, the same grid for every system.
2. Wrapper overhead: ``MLPClassifier.fit`` against the same network fitted bare
   (``Sequential.fit`` with the same epochs and batches), and single-row ``predict_proba`` /
   ``predict`` against the bare model's ``predict``.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=src python benchmarks/bench_sklearn.py
    ... bench_sklearn.py --rows 60000 --epochs 10      # the full training set
    ... bench_sklearn.py --skip scikeras               # leave a system out
"""
import argparse
import os
import platform
import sys
import time
import timeit
import warnings

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))

import fastmlp  # noqa: E402
from fastmlp import layers  # noqa: E402
from fastmlp.sklearn import MLPClassifier  # noqa: E402

GRID = {"hidden_layer_sizes": [(64,), (256,), (256, 128)], "learning_rate_init": [1e-3, 3e-3],
        "alpha": [1e-4, 1e-3]}


def data(rows):
    from _common import fashion_mnist
    (x, y), (xt, yt), source = fashion_mnist(fast=False)
    return x[:rows], y[:rows], xt, yt, source


def _warm_worker():
    import fastmlp.sklearn  # noqa: F401
    import sklearn.neural_network  # noqa: F401
    try:
        import keras  # noqa: F401
    except ImportError:
        pass
    return 0


def warm_pool():
    """Start joblib's two worker processes and import every system in them before any timing, so the
    first search measured does not pay for process start-up and imports."""
    from joblib import Parallel, delayed
    Parallel(n_jobs=2)(delayed(_warm_worker)() for _ in range(4))


def search(make, grid, x, y, xt, yt):
    from sklearn.model_selection import GridSearchCV
    gs = GridSearchCV(make(), grid, cv=2, n_jobs=2, refit=True)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gs.fit(x, y)
    seconds = time.perf_counter() - start
    return seconds, gs.best_estimator_.score(xt, yt), gs.best_params_


def scikeras_factory(epochs):
    import keras
    from scikeras.wrappers import KerasClassifier

    def build(meta, hidden_layer_sizes, alpha):
        model = keras.Sequential([keras.Input((meta["n_features_in_"],))] + [
            keras.layers.Dense(u, activation="relu", kernel_regularizer=keras.regularizers.L2(alpha / 400))
            for u in hidden_layer_sizes] + [keras.layers.Dense(meta["n_classes_"], activation="softmax")])
        return model

    def make():
        return KerasClassifier(build, loss="sparse_categorical_crossentropy", optimizer="adam",
                               optimizer__learning_rate=1e-3, model__hidden_layer_sizes=(64,), model__alpha=1e-4,
                               epochs=epochs, batch_size=200, verbose=0, random_state=0)
    grid = {"model__hidden_layer_sizes": GRID["hidden_layer_sizes"],
            "optimizer__learning_rate": GRID["learning_rate_init"], "model__alpha": GRID["alpha"]}
    return make, grid


def overhead(x, y, epochs):
    """Wrapper cost: the estimator's fit and single-row predictions against the bare model's."""
    xs = np.ascontiguousarray(x[:10000])
    ys = y[:10000]
    est = MLPClassifier(hidden_layer_sizes=(64, 64), max_iter=epochs, batch_size=200, shuffle=True, tol=0,
                        n_iter_no_change=10 ** 6, random_state=0)

    def fit_est():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(xs, ys)

    def fit_bare():
        fastmlp.utils.set_random_seed(0)
        m = fastmlp.Sequential([fastmlp.Input((784,)), layers.Dense(64, activation="relu",
                                                                    kernel_regularizer=fastmlp.regularizers.L2(
                                                                        1e-4 / 400)),
                                layers.Dense(64, activation="relu",
                                             kernel_regularizer=fastmlp.regularizers.L2(1e-4 / 400)),
                                layers.Dense(10, activation="softmax",
                                             kernel_regularizer=fastmlp.regularizers.L2(1e-4 / 400))])
        m.compile(optimizer=fastmlp.optimizers.Adam(1e-3, epsilon=1e-8), loss="categorical_crossentropy")
        m.fit(xs, np.eye(10, dtype=np.float32)[ys], batch_size=200, epochs=epochs, verbose=0)
        return m

    t_est = min(timeit.repeat(fit_est, number=1, repeat=5))
    t_bare = min(timeit.repeat(fit_bare, number=1, repeat=5))
    model = est.model_
    row = xs[:1].copy()
    per = {}
    for name, fn in (("bare model.predict", lambda: model.predict(row, verbose=0)),
                     ("MLPClassifier.predict_proba", lambda: est.predict_proba(row)),
                     ("MLPClassifier.predict", lambda: est.predict(row))):
        per[name] = min(timeit.repeat(fn, number=2000, repeat=7)) / 2000
    return t_est, t_bare, per


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10000, help="training rows of Fashion-MNIST (default 10000)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--skip", action="append", default=[], choices=["sklearn", "scikeras", "search"])
    args = parser.parse_args()
    x, y, xt, yt, source = data(args.rows)
    print(f"# fastmlp scikit-learn estimators ({platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}); data: {source}, {len(x)} training rows, "
          f"{len(xt)} test rows; {args.epochs} epochs per fit")
    print(f"command: {' '.join(sys.argv)}\n")
    if "search" not in args.skip:
        import sklearn
        from sklearn.neural_network import MLPClassifier as SkMLP
        common = dict(max_iter=args.epochs, batch_size=200, random_state=0, tol=0, n_iter_no_change=10 ** 6)
        systems = [("fastmlp MLPClassifier", lambda: MLPClassifier(**common), GRID)]
        if "sklearn" not in args.skip:
            systems.append((f"scikit-learn {sklearn.__version__} MLPClassifier", lambda: SkMLP(**common), GRID))
        if "scikeras" not in args.skip:
            try:
                make, grid = scikeras_factory(args.epochs)
                systems.append(("scikeras KerasClassifier (Keras 3, torch)", make, grid))
            except ImportError as exc:
                print(f"(scikeras skipped: {exc})")
        warm_pool()
        rows = []
        for name, make, grid in systems:
            seconds, acc, best = search(make, grid, x, y, xt, yt)
            rows.append((name, seconds, acc, best))
        base = rows[0][1]
        print("| 12-candidate GridSearchCV, cv=2, n_jobs=2 | wall time | vs fastmlp | best test accuracy |")
        print("|---|---:|---:|---:|")
        for name, seconds, acc, best in rows:
            print(f"| {name} | {seconds:.1f} s | {seconds / base:.1f}x slower | {acc:.4f} |"
                  if name != rows[0][0] else f"| {name} | {seconds:.1f} s | 1 | {acc:.4f} |")
        print()
    t_est, t_bare, per = overhead(x, y, args.epochs)
    print("| wrapper overhead (784-64-64-10, 10,000 rows) | time | ratio to bare |")
    print("|---|---:|---:|")
    print(f"| bare Sequential.fit, {args.epochs} epochs | {t_bare * 1e3:.1f} ms | 1 |")
    print(f"| MLPClassifier.fit, same epochs | {t_est * 1e3:.1f} ms | {t_est / t_bare:.3f} |")
    bare = per["bare model.predict"]
    for name, t in per.items():
        print(f"| one row: {name} | {t * 1e6:.2f} us | {t / bare:.2f} |")


if __name__ == "__main__":
    main()
