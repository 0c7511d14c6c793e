"""scikit-learn estimators on the fastmlp engine.

``MLPClassifier`` and ``MLPRegressor`` take scikit-learn's own parameter names
and meanings and set its fitted attributes, so code written for
``sklearn.neural_network`` switches by changing the import::

    from fastmlp.sklearn import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(256, 128), alpha=1e-4, max_iter=30, random_state=0)

``KerasClassifier`` and ``KerasRegressor`` wrap a fastmlp (Keras-API) model
built by your function, with scikeras's parameter routing (``model__``,
``optimizer__``, ``loss__``, ``compile__``, ``fit__``, ``predict__``,
``callbacks__``).

scikit-learn is an optional extra: ``pip install fastmlp[sklearn]``.
"""
import copy
import inspect
import math
import warnings

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning, NotFittedError
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils.multiclass import type_of_target, unique_labels
    from sklearn.utils.validation import check_random_state, column_or_1d, validate_data
except ImportError as exc:   # pragma: no cover - exercised where scikit-learn is absent
    raise ImportError("fastmlp.sklearn needs scikit-learn >= 1.6: pip install fastmlp[sklearn]") from exc

from . import _threadpool, callbacks, layers, losses, optimizers, regularizers, utils
from .layers.base import Layer
from .models import Model, Sequential

__all__ = ["MLPClassifier", "MLPRegressor", "KerasClassifier", "KerasRegressor"]

_threadpool.register()

_ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}


class _seeded:
    """Run a block with fastmlp's global seed stream set from ``random_state``, then
    restore the caller's stream: estimators are reproducible without changing global state."""

    def __init__(self, seed):
        self.seed = seed

    def __enter__(self):
        self.saved = (utils._SEED, utils._COUNTER)
        if self.seed is not None:
            utils._SEED, utils._COUNTER = int(self.seed), 0
        return self

    def __exit__(self, *exc):
        utils._SEED, utils._COUNTER = self.saved


def _seed_from(random_state):
    """A 31-bit seed drawn from a scikit-learn ``random_state`` (None: a fresh one)."""
    if random_state is None:
        return None
    return int(check_random_state(random_state).randint(0, 2 ** 31 - 1))


class _Monitor(callbacks.Callback):
    """scikit-learn's end-of-iteration bookkeeping, run by fit at each epoch end:
    ``loss_curve_``, ``t_``, the no-improvement count on the training loss or the
    validation score, the 'invscaling'/'adaptive' learning rates, and stopping."""

    def __init__(self, est, n_train, val, loss_offset, incremental):
        super().__init__()
        self.est, self.n_train, self.val = est, n_train, val
        self.loss_offset, self.incremental = loss_offset, incremental
        self.stopped_by_tol = False

    def on_epoch_end(self, epoch, logs=None):
        est, model = self.est, self.model
        est.n_iter_ += 1
        est.loss_ = est._epoch_loss(logs) + self.loss_offset
        est.t_ += self.n_train
        est.loss_curve_.append(est.loss_)
        if est.verbose:
            print("Iteration %d, loss = %.8f" % (est.n_iter_, est.loss_))
        if self.val is not None:
            Xv, yv, wv = self.val
            score = est._score_model(Xv, yv, wv)
            est.validation_scores_.append(score)
            if est.verbose:
                print("Validation score: %f" % score)
            if score < est.best_validation_score_ + est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                est._best_weights = [w.copy() for w in model.get_weights()]
        else:
            if est.loss_ > est.best_loss_ - est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if est.loss_ < est.best_loss_:
                est.best_loss_ = est.loss_
        opt = model.optimizer
        if est.solver == "sgd" and est.learning_rate == "invscaling":
            opt.learning_rate = est.learning_rate_init / (est.t_ + 1) ** est.power_t
        if est._no_improvement_count > est.n_iter_no_change:
            what = "Validation score" if self.val is not None else "Training loss"
            verb = "increase" if self.val is not None else "improve"
            msg = f"{what} did not {verb} more than tol={est.tol:f} for {est.n_iter_no_change} consecutive epochs."
            if est.solver == "sgd" and est.learning_rate == "adaptive" and float(opt.learning_rate) > 1e-6:
                opt.learning_rate = float(opt.learning_rate) / 5.0
                est._no_improvement_count = 0
                if est.verbose:
                    print(msg + " Setting learning rate to %f" % float(opt.learning_rate))
            else:
                if est.verbose:
                    print(msg + " Stopping.")
                self.stopped_by_tol = True
                model.stop_training = True


def _model_input(est, X):
    """``X`` as the fitted model reads it.  A C-contiguous array of the model's float type and
    width goes straight through (single rows cost microseconds); anything else gets scikit-learn's
    validation (lists, frames, feature names, other dtypes)."""
    model = est.__dict__.get("model_")
    if model is None:
        raise NotFittedError(f"This {type(est).__name__} instance is not fitted yet. Call 'fit' with appropriate "
                             "arguments before using this estimator.")
    if type(X) is np.ndarray and X.ndim == 2 and X.dtype == model.dtype and X.flags.c_contiguous \
            and X.shape[0] > 0 and X.shape[1] == est.n_features_in_ and "feature_names_in_" not in est.__dict__ \
            and math.isfinite(float(X.sum(dtype=np.float64 if X.size < 4096 else X.dtype))):
        return X   # a finite sum means no NaN or infinity (an overflowing one takes the checked path)
    X = validate_data(est, X, reset=False, dtype=(np.float64, np.float32))
    return np.ascontiguousarray(X, dtype=model.dtype)


class _BaseMLP(BaseEstimator):
    """What MLPClassifier and MLPRegressor share: the network, the optimizer and the training loop."""

    _out_activation = None

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False, warm_start=False,
                 momentum=0.9, nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun

    # ------------------------------------------------------------------ checks
    def _check_params(self):
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if hasattr(sizes, "__iter__") else [sizes]
        for s in sizes:
            if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s <= 0:
                raise ValueError(f"hidden_layer_sizes must be > 0 integers, got {self.hidden_layer_sizes!r}.")
        if self.activation not in _ACTIVATIONS:
            raise ValueError(f"The 'activation' parameter must be one of {sorted(_ACTIVATIONS)}. "
                             f"Got {self.activation!r} instead.")
        if self.solver == "lbfgs":
            raise ValueError("solver='lbfgs' is not supported by fastmlp (a full-batch quasi-Newton method); "
                             "use solver='adam' or solver='sgd'.")
        if self.solver not in ("adam", "sgd"):
            raise ValueError(f"The 'solver' parameter must be one of ['adam', 'sgd']. Got {self.solver!r} instead.")
        if self.learning_rate not in ("constant", "invscaling", "adaptive"):
            raise ValueError("The 'learning_rate' parameter must be one of 'constant', 'invscaling', 'adaptive'. "
                             f"Got {self.learning_rate!r} instead.")
        checks = [("alpha", self.alpha, 0, None, True), ("learning_rate_init", self.learning_rate_init, 0, None,
                                                          False),
                  ("power_t", self.power_t, 0, None, True), ("tol", self.tol, 0, None, True),
                  ("momentum", self.momentum, 0, 1, True), ("beta_1", self.beta_1, 0, 1, True),
                  ("beta_2", self.beta_2, 0, 1, True), ("epsilon", self.epsilon, 0, None, False),
                  ("validation_fraction", self.validation_fraction, 0, 1, False)]
        for name, value, lo, hi, closed in checks:
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not np.isfinite(value) or value < lo or (value == lo and not closed) \
                    or (hi is not None and value >= hi and name != "momentum") \
                    or (name == "momentum" and value > hi):
                raise ValueError(f"The '{name}' parameter must be a number in the valid range. "
                                 f"Got {value!r} instead.")
        for name in ("max_iter", "n_iter_no_change"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"The '{name}' parameter must be an int in the range [1, inf). "
                                 f"Got {value!r} instead.")
        bs = self.batch_size
        if not (bs == "auto" or (isinstance(bs, (int, np.integer)) and not isinstance(bs, bool) and bs >= 1)):
            raise ValueError(f"The 'batch_size' parameter must be 'auto' or an int >= 1. Got {bs!r} instead.")
        return [int(s) for s in sizes]

    # ------------------------------------------------------------------ the network
    def _build(self, n_features, n_outputs, sizes, rng, dtype):
        """The network with scikit-learn's Glorot-uniform initialization of weights and biases,
        computing in the data's float type (float64 unless X is float32), as scikit-learn does."""
        act = _ACTIVATIONS[self.activation]
        units = [n_features] + sizes + [n_outputs]
        # the loss is averaged over the batch: alpha/(2 batch) ||W||^2 is scikit-learn's penalty
        model = Sequential([layers.Input((n_features,), dtype=dtype)] + [
            layers.Dense(u, activation=act if i < len(sizes) else self._keras_out_activation(),
                         kernel_regularizer=regularizers.L2(self._l2) if self._l2 > 0 else None, dtype=dtype)
            for i, u in enumerate(units[1:])])
        factor = 2.0 if self.activation == "logistic" else 6.0
        weights = []
        for fan_in, fan_out in zip(units[:-1], units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            weights.append(rng.uniform(-bound, bound, (fan_in, fan_out)))
            weights.append(rng.uniform(-bound, bound, fan_out))
        model.set_weights([w.astype(dtype) for w in weights])
        return model

    def _set_l2(self, model):
        """Apply this call's penalty (alpha and batch size may have changed since the network was built)."""
        reg = regularizers.L2(self._l2) if self._l2 > 0 else None
        current = [getattr(layer, "kernel_regularizer", None) for layer in model.layers]
        if all((r is None and reg is None) or (r is not None and reg is not None and float(r.l2) == float(reg.l2))
               for r in current):
            return
        for ref in model._plan.weights:
            if ref.spec.name == "kernel":
                ref.spec.regularizer = reg
                ref.layer.kernel_regularizer = reg
        model._make_network()

    def _optimizer(self):
        if self.solver == "adam":
            return optimizers.Adam(learning_rate=self.learning_rate_init, beta_1=self.beta_1, beta_2=self.beta_2,
                                   epsilon=self.epsilon)
        return optimizers.SGD(learning_rate=self.learning_rate_init, momentum=self.momentum,
                              nesterov=bool(self.nesterovs_momentum) and self.momentum > 0)

    def _compile(self, model, n_outputs):
        loss, weight = self._keras_loss(n_outputs)
        model.compile(optimizer=self._optimizer(), loss=loss, loss_weights=[weight], metrics=self._metrics(n_outputs))

    def _metrics(self, n_outputs):
        return None

    def _epoch_loss(self, logs):
        return float(logs["loss"])

    # ------------------------------------------------------------------ fitting
    def _fit(self, X, y, sample_weight, incremental):
        sizes = self._check_params()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        first = incremental and not hasattr(self, "model_")
        X, Y = self._validate_input(X, y, incremental, reset=first or not incremental)
        mean_weight = 1.0
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype=np.float64)
            if sample_weight.ndim == 0:
                sample_weight = np.full(len(X), float(sample_weight))
            if sample_weight.shape != (len(X),):
                raise ValueError(f"sample_weight.shape == {sample_weight.shape}, expected {(len(X),)}!")
            if not np.all(np.isfinite(sample_weight)) or np.any(sample_weight < 0):
                raise ValueError("sample_weight must be finite and non-negative")
            total = sample_weight.sum()
            if total <= 0:
                raise ValueError("sample_weight sums to zero: nothing to fit")
            # scikit-learn averages with the weights (sum(w l) / sum(w)); the engine divides by the rows
            mean_weight = total / len(X)
            sample_weight = sample_weight / mean_weight
        n_outputs = Y.shape[1]
        self._n_outputs = n_outputs
        if not hasattr(self, "_rng") or not (incremental or self.warm_start):
            self._rng = check_random_state(self.random_state)
        rng = self._rng

        new = not hasattr(self, "model_") or not (self.warm_start or incremental)
        if new:
            self.n_iter_ = 0
            self.t_ = 0
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None
        elif self.model_.layers[-1].units != n_outputs or self.model_.input_shape[-1] != X.shape[1]:
            raise ValueError("warm_start / partial_fit with data of another shape than the first fit")

        n_rows = len(X) if not self.early_stopping else len(X) - int(np.ceil(self.validation_fraction * len(X)))
        batch = min(200, n_rows) if self.batch_size == "auto" else int(self.batch_size)
        # scikit-learn divides the penalty by the batch's total sample weight
        self._l2 = self.alpha / (2.0 * max(1, min(batch, n_rows)) * mean_weight)
        if new:   # drawn first, as scikit-learn does: the same random_state gives the same initial weights
            with _seeded(None):
                model = self._build(X.shape[1], n_outputs, sizes, rng, X.dtype.name)

        val = None
        X_train, Y_train, w_train = X, Y, sample_weight
        if self.early_stopping:
            stratify = self._stratify(Y)
            parts = train_test_split(X, Y, *([sample_weight] if sample_weight is not None else []),
                                     random_state=rng, test_size=self.validation_fraction, stratify=stratify)
            X_train, Xv, Y_train, Yv = parts[:4]
            w_train, wv = (parts[4], parts[5]) if sample_weight is not None else (None, None)
            if len(Xv) < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of "
                                 "your dataset.")
            val = (Xv, self._val_target(Yv), wv)
        n = len(X_train)
        batch = min(200, n) if self.batch_size == "auto" else int(self.batch_size)
        if batch > n and self.batch_size != "auto":
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
        batch = int(np.clip(batch, 1, n))

        seed = int(rng.randint(0, 2 ** 31 - 1))
        with _seeded(seed):
            if new:
                self.model_ = model
                self._epochs_run = 0
            if not new:
                self._set_l2(self.model_)
            if new or not incremental:   # a warm start keeps the weights, with a new optimizer
                self._compile(self.model_, n_outputs)
            self.model_._seed = seed
            self._best_weights = None
            monitor = _Monitor(self, n, val, self._loss_offset(Y_train, w_train), incremental)
            epochs = 1 if incremental else self.max_iter
            self.n_iter_ = 0   # as scikit-learn: the epochs of this call (one for partial_fit)
            start = self._epochs_run
            self.model_.fit(X_train, Y_train, batch_size=batch, epochs=start + epochs, initial_epoch=start,
                            shuffle=bool(self.shuffle), sample_weight=w_train, verbose=0, callbacks=[monitor])
            self._epochs_run = start + self.n_iter_ if not incremental else start + 1
        if self.early_stopping and self._best_weights is not None:
            self.model_.set_weights(self._best_weights)
        if not incremental and not monitor.stopped_by_tol and self.n_iter_ == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                          "optimization hasn't converged yet.", ConvergenceWarning)
        self._export_weights()
        return self

    def _loss_offset(self, Y, w):
        return 0.0

    def _export_weights(self):
        weights = self.model_.get_weights()
        self.coefs_ = [np.array(w) for w in weights[0::2]]
        self.intercepts_ = [np.array(b) for b in weights[1::2]]
        self.n_layers_ = len(self.coefs_) + 1
        self.n_outputs_ = self.coefs_[-1].shape[1]
        self.out_activation_ = self._out_activation_name()

    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y (``max_iter`` epochs at most)."""
        return self._fit(X, y, sample_weight, incremental=False)

    def _forward(self, X):
        X = _model_input(self, X)
        return self.model_.predict(X, verbose=0)

    def _score_model(self, X, y, w):
        raise NotImplementedError

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.non_deterministic = self.random_state is None
        return tags

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_rng", None)    # a RandomState pickles, but it is only the fitting stream
        return state


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier with scikit-learn's ``MLPClassifier`` parameters.

    Trains with Adam or SGD on the log-loss: one logistic output for two classes,
    softmax for more, independent logistic outputs for multi-label indicator
    targets.  ``alpha`` is the L2 penalty, added as scikit-learn adds it.
    """

    def _validate_input(self, X, y, incremental, reset):
        # X's NaN/infinity check is the engine's own (one pass in C, in fit), not a second one here
        X, y = validate_data(self, X, y, multi_output=True, dtype=(np.float64, np.float32), reset=reset,
                             ensure_all_finite=False)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        refit = not hasattr(self, "classes_") or (not self.warm_start and not incremental)
        lb = LabelBinarizer().fit(y) if refit else None
        target = lb.y_type_ if refit else type_of_target(y, input_name="y")
        if target not in ("binary", "multiclass", "multilabel-indicator"):
            raise ValueError(f"Unknown label type: {target}. Maybe you are trying to fit a classifier, which "
                             "expects discrete classes on a regression target with continuous values.")
        if refit:
            self._label_binarizer = lb
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start and not incremental:
                if set(classes) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same classes as in the "
                                     f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                 f"'y' has {classes}.")
        return X, self._binarize(y, X.dtype)

    def _binarize(self, y, dtype):
        """LabelBinarizer.transform's indicator matrix, without its sparse detour for 1-D labels."""
        lb = self._label_binarizer
        if lb.y_type_ not in ("binary", "multiclass") or np.ndim(y) != 1:
            return lb.transform(y).astype(dtype)
        idx = np.searchsorted(self.classes_, y)
        idx = np.minimum(idx, len(self.classes_) - 1)
        if np.any(self.classes_[idx] != y):   # a label outside classes_: let scikit-learn word the error
            return lb.transform(y).astype(dtype)
        if lb.y_type_ == "binary":
            return (idx == 1).astype(dtype).reshape(-1, 1)
        out = np.zeros((len(y), len(self.classes_)), dtype=dtype)
        out[np.arange(len(y)), idx] = 1
        return out

    def _keras_out_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "sigmoid"

    def _out_activation_name(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _keras_loss(self, n_outputs):
        if self._label_binarizer.y_type_ == "multiclass":
            return "categorical_crossentropy", 1.0
        # scikit-learn sums the binary log-losses over the labels; Keras averages them
        return "binary_crossentropy", float(n_outputs)

    def _stratify(self, Y):
        return Y if Y.shape[1] == 1 else None   # scikit-learn: binary targets only (n_outputs_ == 1)

    def _val_target(self, Yv):
        return self._label_binarizer.inverse_transform(Yv)

    def _score_model(self, X, y, w):
        return accuracy_score(y, self._predict_from(self.model_.predict(X, batch_size=max(len(X), 1), verbose=0)),
                              sample_weight=w)

    def _predict_from(self, P):
        # LabelBinarizer.inverse_transform's rule (threshold 0.5, argmax), without its overhead
        if self._label_binarizer.y_type_ == "multiclass":
            return self.classes_.take(P.argmax(axis=1))
        if len(self.classes_) == 1:
            return np.repeat(self.classes_, len(P))
        if self._label_binarizer.y_type_ == "binary":
            return self.classes_.take((P[:, 0] > 0.5).astype(np.intp))
        return (P > 0.5).astype(int)

    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over the given data; ``classes`` (all the labels) is required on the first call."""
        if not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            multilabel = type_of_target(y) == "multilabel-indicator"
            self._label_binarizer = LabelBinarizer().fit(np.asarray(y) if multilabel else np.asarray(classes))
            self.classes_ = self._label_binarizer.classes_
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"`classes={np.unique(classes)!r}` is not the same as on the first call to "
                             f"partial_fit, was: {self.classes_!r}")
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """The predicted classes (labels, or an indicator matrix for multi-label targets)."""
        return self._predict_from(self._forward(X))

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes)."""
        P = self._forward(X)
        if P.shape[1] == 1:
            return np.hstack([1.0 - P, P])
        return P

    def predict_log_proba(self, X):
        return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor with scikit-learn's ``MLPRegressor`` parameters.

    ``loss='squared_error'`` (half the mean squared error, as scikit-learn) or
    ``'poisson'`` (an exponential output and half the Poisson deviance).
    """

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001,
                 power_t=0.5, max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 max_fun=15000):
        super().__init__(hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver, alpha=alpha,
                         batch_size=batch_size, learning_rate=learning_rate, learning_rate_init=learning_rate_init,
                         power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol,
                         verbose=verbose, warm_start=warm_start, momentum=momentum,
                         nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
                         validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         n_iter_no_change=n_iter_no_change, max_fun=max_fun)
        self.loss = loss

    def _validate_input(self, X, y, incremental, reset):
        if self.loss not in ("squared_error", "poisson"):
            raise ValueError(f"The 'loss' parameter must be one of ['poisson', 'squared_error']. "
                             f"Got {self.loss!r} instead.")
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=(np.float64, np.float32),
                             reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(np.asarray(y) < 0):
            raise ValueError("Some value(s) of y are negative which is not allowed for Poisson regression.")
        Y = np.asarray(y, np.float64)
        self._y_1d = Y.ndim == 1
        return X, Y.reshape(len(Y), -1).astype(X.dtype)

    def _keras_out_activation(self):
        return "exponential" if self.loss == "poisson" else "linear"

    def _out_activation_name(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _keras_loss(self, n_outputs):
        # scikit-learn's losses are half the squared error and half the Poisson deviance, but their
        # gradients are those of the sum over the outputs (its backward pass divides by the rows only)
        return ("poisson", float(n_outputs)) if self.loss == "poisson" else ("mean_squared_error", 0.5 * n_outputs)

    def _metrics(self, n_outputs):
        # with several outputs the reported loss is the per-output mean: the engine's own metric gives it
        return None if n_outputs == 1 else ["poisson" if self.loss == "poisson" else "mean_squared_error"]

    def _epoch_loss(self, logs):
        k = self._n_outputs
        if k == 1:
            return float(logs["loss"])
        data = logs["poisson" if self.loss == "poisson" else "mean_squared_error"]
        scale = 1.0 if self.loss == "poisson" else 0.5
        return float(logs["loss"]) - scale * (k - 1) * data

    def _loss_offset(self, Y, w):
        if self.loss != "poisson":
            return 0.0
        # Keras's Poisson is y_pred - y log y_pred; scikit-learn's adds y log y - y (per output, averaged)
        Y = np.asarray(Y, np.float64)
        term = np.where(Y > 0, Y * np.log(np.where(Y > 0, Y, 1.0)), 0.0) - Y
        return float(np.average(term.mean(axis=1), weights=w))

    def _stratify(self, Y):
        return None

    def _val_target(self, Yv):
        return Yv[:, 0] if self._y_1d else Yv

    def _score_model(self, X, y, w):
        P = np.asarray(self.model_.predict(X, batch_size=max(len(X), 1), verbose=0), np.float64)
        return r2_score(y, P[:, 0] if self._y_1d else P, sample_weight=w)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over the given data."""
        return self._fit(X, y, sample_weight, incremental=True)

    def predict(self, X):
        """Predicted values, shape (n_samples,) or (n_samples, n_outputs)."""
        P = self._forward(X)
        return P[:, 0] if self._y_1d else P

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


# ---------------------------------------------------------------------- Keras-model wrappers
def _relative_weights(sample_weight):
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("sample_weight must be finite and non-negative")
    if w.sum() <= 0:
        raise ValueError("sample_weight sums to zero: nothing to fit")
    return w / w.mean()


_ROUTES = ("model", "optimizer", "loss", "metrics", "compile", "fit", "predict", "callbacks")


def _loss_class(name):
    """The Loss class for a name as compile takes it ('categorical_crossentropy', 'Huber', 'mse')."""
    obj = losses.get(name)
    if isinstance(obj, type):
        return obj
    if not callable(obj) or isinstance(obj, losses.Loss):
        return type(obj)
    camel = "".join(part.capitalize() for part in getattr(obj, "__name__", name).split("_"))
    cls = getattr(losses, camel, None)
    if isinstance(cls, type):
        return cls
    raise ValueError(f"loss__ parameters need a loss class; {name!r} names a function with no class "
                     f"(pass the class, e.g. loss=fastmlp.losses.{camel})")


def _routed(params, prefix):
    return {k[len(prefix) + 2:]: v for k, v in params.items() if k.startswith(prefix + "__")}


class _BaseWrapper(BaseEstimator):
    """A fastmlp model as a scikit-learn estimator, with scikeras's parameter routing."""

    def __init__(self, model=None, *, build_fn=None, warm_start=False, random_state=None, optimizer="rmsprop",
                 loss=None, metrics=None, batch_size=None, validation_batch_size=None, verbose=0, callbacks=None,
                 validation_split=0.0, shuffle=True, run_eagerly=False, epochs=1, **kwargs):
        self.model = model
        self.build_fn = build_fn
        self.warm_start = warm_start
        self.random_state = random_state
        self.optimizer = optimizer
        self.loss = loss
        self.metrics = metrics
        self.batch_size = batch_size
        self.validation_batch_size = validation_batch_size
        self.verbose = verbose
        self.callbacks = callbacks
        self.validation_split = validation_split
        self.shuffle = shuffle
        self.run_eagerly = run_eagerly
        self.epochs = epochs
        for key, value in kwargs.items():
            if key.split("__", 1)[0] not in _ROUTES and "__" in key:
                raise TypeError(f"{type(self).__name__} got an unexpected keyword argument {key!r}: routed "
                                f"parameters start with one of {', '.join(p + '__' for p in _ROUTES)}")
            setattr(self, key, value)
        self._extra = sorted(kwargs)

    def get_params(self, deep=True):
        params = super().get_params(deep=deep)
        for key in getattr(self, "_extra", ()):
            params[key] = getattr(self, key)
        return params

    def set_params(self, **params):
        base = set(self._get_param_names())
        for key, value in list(params.items()):
            if key not in base and "__" in key and key.split("__", 1)[0] in _ROUTES:
                setattr(self, key, value)
                if key not in self._extra:
                    self._extra = sorted(self._extra + [key])
                params.pop(key)
        return super().set_params(**params) if params else self

    def __sklearn_clone__(self):
        params = self.get_params(deep=False)
        return type(self)(**{k: copy.deepcopy(v) if k != "model" else v for k, v in params.items()})

    # ------------------------------------------------------------------ building
    def _all_params(self):
        return self.get_params(deep=False)

    def _meta(self, X, y):
        return {"n_features_in_": self.n_features_in_, "X_dtype_": X.dtype, "X_shape_": X.shape,
                "y_dtype_": np.asarray(y).dtype, "y_shape_": np.asarray(y).shape}

    def _build_model(self, meta):
        params = self._all_params()
        fn = self.model if self.model is not None else self.build_fn
        if fn is None:
            raise ValueError("Give `model`: a function that builds a fastmlp model, or a model")
        if isinstance(fn, (Model, Layer)):
            if not isinstance(fn, Model):
                raise TypeError(f"`model` must be a fastmlp Model or a function building one; got "
                                f"{type(fn).__name__}")
            # a fresh copy with the given initial weights (and compile), so every fit starts the same
            model = copy.deepcopy(fn)
        elif callable(fn):
            sig = inspect.signature(fn)
            accepts_any = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
            kwargs = _routed(params, "model")
            extra = {"meta": meta, "compile_kwargs": self._compile_kwargs(), "params": params}
            for name in sig.parameters:
                if name in extra:
                    kwargs[name] = extra[name]
                elif name not in kwargs and name in params and name not in ("model", "build_fn"):
                    kwargs[name] = params[name]
            if not accepts_any:
                unknown = set(kwargs) - set(sig.parameters)
                if unknown:
                    raise ValueError(f"The model-building function {fn.__name__}() has no parameter(s) "
                                     f"{sorted(unknown)} routed to it by model__...")
            model = fn(**kwargs)
        else:
            raise TypeError(f"`model` must be a fastmlp Model or a function building one; got {type(fn).__name__}")
        if not isinstance(model, Model):
            raise TypeError(f"The model-building function must return a fastmlp Model; got {type(model).__name__}")
        if not model.compiled:
            ck = self._compile_kwargs()
            if ck["loss"] is None:
                ck["loss"] = self._default_loss(model)
            model.compile(**ck)
        return model

    def _compile_kwargs(self):
        params = self._all_params()
        opt = self.optimizer
        okw = _routed(params, "optimizer")
        if isinstance(opt, str):
            opt = optimizers.get({"class_name": opt, "config": okw}) if okw else optimizers.get(opt)
        elif isinstance(opt, type):
            opt = opt(**okw)
        elif okw:
            opt = type(opt).from_config({**opt.get_config(), **okw})
        else:
            opt = copy.deepcopy(opt)
        loss = self.loss
        lkw = _routed(params, "loss")
        if isinstance(loss, type):
            loss = loss(**lkw)
        elif isinstance(loss, str) and lkw:
            loss = _loss_class(loss)(**lkw)
        mkw = _routed(params, "metrics")
        metrics = copy.deepcopy(self.metrics)
        if isinstance(metrics, (list, tuple)):
            metrics = [m(**mkw) if isinstance(m, type) else m for m in metrics]
        kwargs = {"optimizer": opt, "loss": loss, "metrics": metrics}
        kwargs.update(_routed(params, "compile"))
        return kwargs

    def _callbacks(self):
        out = []
        params = self._all_params()
        for cb in (self.callbacks or []):
            if isinstance(cb, type):
                cb = cb(**_routed(params, "callbacks"))
            out.append(cb)
        return out

    def _fit_kwargs(self, **overrides):
        params = self._all_params()
        kw = {"batch_size": self.batch_size, "validation_batch_size": self.validation_batch_size,
              "verbose": self.verbose, "validation_split": self.validation_split, "shuffle": self.shuffle,
              "epochs": self.epochs, "callbacks": self._callbacks()}
        kw.update(_routed(params, "fit"))
        kw.update(overrides)
        return kw

    # ------------------------------------------------------------------ fit / predict
    def _fit(self, X, y, sample_weight, epochs, warm, fit_kwargs):
        if not isinstance(self.epochs, (int, np.integer)) or isinstance(self.epochs, bool) or self.epochs < 0:
            raise ValueError(f"`epochs` must be a non-negative integer; got {self.epochs!r}")
        reset = not (warm and hasattr(self, "model_"))
        X, Y = self._validate(X, y, reset=reset)
        seed = _seed_from(self.random_state)
        with _seeded(seed):
            if reset:
                self.model_ = self._build_model(self._meta(X, y))
                self.history_ = {}
                self._epochs_run = 0
            if seed is not None:
                self.model_._seed = seed
            X = np.ascontiguousarray(X, dtype=self.model_.dtype)   # the model's own float type
            kw = self._fit_kwargs(**fit_kwargs)
            kw["epochs"] = self._epochs_run + epochs
            kw["initial_epoch"] = self._epochs_run
            if "validation_data" in kw and kw["validation_data"] is not None:
                vd = kw["validation_data"]
                kw["validation_data"] = (np.ascontiguousarray(validate_data(self, vd[0], reset=False),
                                                              dtype=self.model_.dtype),
                                         self._encode(vd[1])) + tuple(vd[2:])
            hist = self.model_.fit(X, Y, sample_weight=sample_weight, **kw)
        self._epochs_run = kw["epochs"]
        for k, v in hist.history.items():
            self.history_.setdefault(k, []).extend(v)
        return self

    def fit(self, X, y, sample_weight=None, **kwargs):
        """Build (unless ``warm_start``), compile and fit the model; ``kwargs`` go to ``Model.fit``
        (e.g. ``validation_data=(X_val, y_val)``).

        ``sample_weight`` is relative, as in scikit-learn: it is scaled to a mean of 1, so with one
        batch per epoch a weight of 2 is the same as repeating the row."""
        return self._fit(X, y, _relative_weights(sample_weight), self.epochs, self.warm_start, kwargs)

    def partial_fit(self, X, y, sample_weight=None, **kwargs):
        """One more epoch on the given data, keeping the model between calls."""
        return self._fit(X, y, _relative_weights(sample_weight), 1, True, kwargs)

    def _raw_predict(self, X):
        X = _model_input(self, X)
        kw = _routed(self._all_params(), "predict")
        kw.setdefault("verbose", 0)
        return self.model_.predict(X, **kw)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.non_deterministic = self.random_state is None
        return tags


class KerasClassifier(ClassifierMixin, _BaseWrapper):
    """A classifier from a fastmlp model or a function that builds one.

    The labels are encoded as class indices (one-hot when the loss is
    categorical cross-entropy); a model with one sigmoid output serves two
    classes.  ``meta`` passed to the building function holds ``n_features_in_``,
    ``classes_``, ``n_classes_``, ``n_outputs_expected_`` and ``target_type_``.
    """

    def _validate(self, X, y, reset):
        X, y = validate_data(self, X, y, reset=reset, dtype=(np.float64, np.float32))
        target = type_of_target(y, input_name="y")
        if target not in ("binary", "multiclass"):
            raise ValueError(f"Unknown label type: {target}. KerasClassifier takes binary or multiclass targets.")
        if reset:
            self.classes_ = getattr(self, "_partial_classes", None)
            if self.classes_ is None:
                self.classes_ = np.unique(y)
            self.n_classes_ = len(self.classes_)
            self.target_type_ = target
        return X, self._encode(y)

    def _encode(self, y):
        y = np.asarray(y)
        idx = np.searchsorted(self.classes_, y)
        if np.any(idx >= len(self.classes_)) or np.any(self.classes_[np.minimum(idx, len(self.classes_) - 1)] != y):
            raise ValueError(f"`y` has classes not in `self.classes_` ({self.classes_})")
        if hasattr(self, "model_") and self._one_hot():
            return np.eye(self.n_classes_, dtype=np.float32)[idx]
        return idx.astype(np.int64)

    def _one_hot(self):
        loss = self.model_.loss if hasattr(self, "model_") else None
        name = loss if isinstance(loss, str) else getattr(loss, "name", None)
        return name in ("categorical_crossentropy", "categorical_focal_crossentropy") \
            or type(loss).__name__ in ("CategoricalCrossentropy", "CategoricalFocalCrossentropy")

    def _meta(self, X, y):
        meta = super()._meta(X, y)
        meta.update({"classes_": self.classes_, "n_classes_": self.n_classes_, "target_type_": self.target_type_,
                     "n_outputs_": 1, "n_outputs_expected_": 1})
        return meta

    def _default_loss(self, model):
        units = model.outputs[0].shape[-1]
        return "binary_crossentropy" if units == 1 else "sparse_categorical_crossentropy"

    def _fit(self, X, y, sample_weight, epochs, warm, fit_kwargs):
        # the targets' encoding depends on the compiled loss: validate once the model exists
        reset = not (warm and hasattr(self, "model_"))
        if reset and hasattr(self, "model_"):
            del self.model_
        if reset:
            Xv, _ = self._validate(X, y, reset=True)
            seed = _seed_from(self.random_state)
            with _seeded(seed):
                self.model_ = self._build_model(self._meta(Xv, y))
            self.history_ = {}
            self._epochs_run = 0
        return super()._fit(X, y, sample_weight, epochs, True, fit_kwargs)

    def fit(self, X, y, sample_weight=None, **kwargs):
        self.__dict__.pop("_partial_classes", None)
        return super().fit(X, y, sample_weight=sample_weight, **kwargs)

    fit.__doc__ = _BaseWrapper.fit.__doc__

    def partial_fit(self, X, y, classes=None, sample_weight=None, **kwargs):
        """One more epoch on the given data; ``classes`` (all the labels) on the first call."""
        if not hasattr(self, "model_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self._partial_classes = np.unique(classes)
        return self._fit(X, y, _relative_weights(sample_weight), 1, True, kwargs)

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes)."""
        P = self._raw_predict(X)
        if self.n_classes_ == 1:
            return np.ones((len(P), 1))
        if P.shape[1] == 1:
            return np.hstack([1.0 - P, P])
        return P

    def predict(self, X):
        """The predicted class labels."""
        P = self.predict_proba(X)
        return self.classes_[np.argmax(P, axis=1)]


class KerasRegressor(RegressorMixin, _BaseWrapper):
    """A regressor from a fastmlp model or a function that builds one (default loss: mean squared error)."""

    def _validate(self, X, y, reset):
        X, y = validate_data(self, X, y, reset=reset, multi_output=True, y_numeric=True,
                             dtype=(np.float64, np.float32))
        y = np.asarray(y, np.float64)
        if reset:
            self._y_1d = y.ndim == 1
            self.n_outputs_ = 1 if y.ndim == 1 else y.shape[1]
        return X, self._encode(y)

    def _encode(self, y):
        y = np.asarray(y, np.float32)
        return y.reshape(len(y), -1)

    def _meta(self, X, y):
        meta = super()._meta(X, y)
        meta.update({"n_outputs_": self.n_outputs_, "n_outputs_expected_": 1, "target_type_": "continuous"})
        return meta

    def _default_loss(self, model):
        return "mean_squared_error"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def predict(self, X):
        P = self._raw_predict(X)
        return P[:, 0] if self._y_1d else P

