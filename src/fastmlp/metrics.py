"""Metrics with the Keras 3 names, arguments, defaults and configs.

Most metrics run in C.  During ``fit``/``evaluate`` the engine adds each batch's
weighted per-sample values (or confusion counts, threshold histograms, per-class
sums) to running state, so an epoch's metric equals the metric computed on all
predictions at once, as Keras's streaming metrics do.  Standalone, a metric object
is used as in Keras: ``update_state(y_true, y_pred, sample_weight=None)``,
``result()``, ``reset_state()``.

Python metrics -- a function ``fn(y_true, y_pred)`` (NumPy arrays in, per-sample
values out; ``fastmlp.ops`` or NumPy inside) given to ``compile(metrics=[fn])`` or
wrapped in ``MeanMetricWrapper``, and subclasses of ``Metric`` that implement
``update_state``/``result`` -- run between engine calls: ``fit`` then takes one
batch per engine call and hands each batch's predictions back to Python, and
``evaluate`` runs an extra forward pass for them.  That costs time (see
``MeanMetricWrapper``); the built-in metrics never do.
"""
import numbers
import re
import warnings

import numpy as np

from . import _engine, _validate

__all__ = [
    "Metric", "Mean", "Sum", "MeanMetricWrapper",
    "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
    "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy",
    "MeanAbsoluteError", "MeanSquaredError", "RootMeanSquaredError", "MeanAbsolutePercentageError",
    "MeanSquaredLogarithmicError", "LogCoshError", "CosineSimilarity", "R2Score",
    "BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
    "KLDivergence", "Poisson", "Hinge", "SquaredHinge", "CategoricalHinge",
    "TruePositives", "FalsePositives", "TrueNegatives", "FalseNegatives",
    "Precision", "Recall", "AUC", "PrecisionAtRecall", "RecallAtPrecision",
    "SensitivityAtSpecificity", "SpecificityAtSensitivity", "FBetaScore", "F1Score",
    "get", "serialize", "deserialize",
    "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy", "top_k_categorical_accuracy",
    "sparse_top_k_categorical_accuracy", "binary_crossentropy", "categorical_crossentropy",
    "sparse_categorical_crossentropy", "mean_squared_error", "mean_absolute_error",
    "mean_absolute_percentage_error", "mean_squared_logarithmic_error", "hinge", "squared_hinge",
    "categorical_hinge", "kl_divergence", "poisson", "log_cosh", "huber",
]

# the engine's fm_metric codes (csrc/fastmlp.h)
_MET_BINARY_ACCURACY, _MET_CATEGORICAL_ACCURACY, _MET_SPARSE_CATEGORICAL_ACCURACY = 0, 1, 2
_MET_TOP_K, _MET_SPARSE_TOP_K, _MET_MAE, _MET_MSE = 3, 4, 5, 6
_MET_CONFUSION, _MET_THRESHOLD_HISTOGRAM, _MET_PER_CLASS = 7, 8, 9
_MET_LOSS, _MET_COSINE, _MET_CONFUSION_AT, _MET_R2 = 10, 11, 12, 13
# the engine's fm_loss codes, for _MET_LOSS
_LOSS_MAPE, _LOSS_MSLE, _LOSS_LOG_COSH, _LOSS_BCE, _LOSS_CCE, _LOSS_SCCE = 2, 3, 5, 6, 7, 8
_LOSS_HINGE, _LOSS_SQUARED_HINGE, _LOSS_CATEGORICAL_HINGE, _LOSS_KLD, _LOSS_POISSON = 9, 10, 11, 12, 13

_EPSILON = 1e-7   # keras.backend.epsilon()
_DTYPES = ("float16", "bfloat16", "float32", "float64")


def _snake(name):
    """Keras's default metric name from a class name (``MyMetric`` -> ``my_metric``)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


class MetricVariable(np.lib.mixins.NDArrayOperatorsMixin):
    """A metric's state variable (``Metric.add_variable``): a float64 NumPy array
    with Keras's ``assign``/``assign_add``/``assign_sub``/``numpy()``; arithmetic
    gives NumPy arrays."""

    def __init__(self, value, name=None):
        self._value = np.array(value, dtype=np.float64)
        self.name = name

    def assign(self, value):
        self._value = np.array(np.broadcast_to(np.asarray(value, np.float64), self._value.shape))
        return self

    def assign_add(self, value):
        return self.assign(self._value + np.asarray(value, np.float64))

    def assign_sub(self, value):
        return self.assign(self._value - np.asarray(value, np.float64))

    def numpy(self):
        return self._value.copy()

    @property
    def value(self):
        return self._value

    @property
    def shape(self):
        return self._value.shape

    @property
    def dtype(self):
        return self._value.dtype

    def __array__(self, dtype=None, copy=None):
        return self._value if dtype is None else self._value.astype(dtype)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = tuple(x._value if isinstance(x, MetricVariable) else x for x in inputs)
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __float__(self):
        return float(self._value)

    def __repr__(self):
        return f"<MetricVariable {self.name!r} {self._value!r}>"


def _as_rows(y_pred):
    P = np.asarray(y_pred, dtype=np.float64)
    return np.ascontiguousarray(P.reshape(len(P), -1) if P.ndim != 2 else P)


class Metric:
    """The base of every metric, as ``keras.metrics.Metric``.

    Subclass it in Python: create state with ``add_variable`` in ``__init__``,
    implement ``update_state(y_true, y_pred, sample_weight=None)`` and ``result()``;
    ``reset_state`` zeroes the variables.  Such a metric runs in Python during
    ``fit``/``evaluate`` on each batch's predictions (NumPy arrays).

    fastmlp's own metrics set ``_code`` (an engine kind) and run in C: stateless
    ones keep a weighted total and count, stateful ones (``_stateful``) a float64
    ``_state`` array that ``_finish`` turns into the result.
    """
    _code = None
    _sparse = False        # reads integer labels (standalone: y_true as labels)
    _stateful = False
    _default_name = None
    _needs = None          # targets it needs in fit: "sparse", "dense" or None (either)

    def __init__(self, dtype=None, name=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Argument `name` must be a string. Received: name={name!r}")
        self.name = name or self._default_name or _snake(type(self).__name__)
        if dtype is not None and dtype not in _DTYPES:
            raise ValueError(f"Invalid metric dtype: {dtype!r:.100}. Expected None or one of {list(_DTYPES)} "
                             f"(fastmlp accumulates in float64 and reports floats)")
        self.dtype = dtype
        self._variables = []
        self._total = 0.0
        self._count = 0.0
        self._state = None

    # ---- Keras's API for Python metrics
    def add_variable(self, shape=(), initializer="zeros", dtype=None, aggregation="sum", name=None):
        """A state variable of ``shape`` filled by ``initializer`` ('zeros', 'ones', a
        number or a callable ``f(shape)``)."""
        if "_variables" not in self.__dict__:
            self._variables = []
        shape = tuple(np.atleast_1d(shape).astype(int)) if np.ndim(shape) else \
            (() if shape in ((), None) else (int(shape),))
        if callable(initializer):
            value = np.asarray(initializer(shape), np.float64)
        elif initializer in ("zeros", None):
            value = np.zeros(shape)
        elif initializer == "ones":
            value = np.ones(shape)
        elif isinstance(initializer, numbers.Real):
            value = np.full(shape, float(initializer))
        else:
            raise ValueError(f"Metric.add_variable: unsupported initializer {initializer!r}; expected "
                             f"'zeros', 'ones', a number or a callable")
        var = MetricVariable(value, name)
        var._initial = value.copy()
        self._variables.append(var)
        return var

    def add_weight(self, shape=(), initializer="zeros", dtype=None, name=None):
        return self.add_variable(shape, initializer, dtype, name=name)

    @property
    def variables(self):
        return list(self.__dict__.get("_variables", []))

    def update_state(self, *args, **kwargs):
        if self._code is None:
            raise NotImplementedError(f"{type(self).__name__} must implement update_state()")
        return self._engine_update(*args, **kwargs)

    def result(self):
        if self._code is None:
            raise NotImplementedError(f"{type(self).__name__} must implement result()")
        if self._stateful:
            return self._finish(self._state) if self._state is not None else self._empty_result()
        return self._finish_sum(self._total, self._count)

    def reset_state(self):
        for v in self.__dict__.get("_variables", []):
            v.assign(np.zeros(v.shape))
        self._total = 0.0
        self._count = 0.0
        state = getattr(self, "_state", None)
        # a metric that has seen data keeps its shape (F1Score's number of classes), as Keras's do
        self._state = None if state is None else np.zeros_like(state)

    def reset_states(self):
        self.reset_state()

    def __call__(self, *args, **kwargs):
        """``update_state`` then ``result``."""
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype or "float32"}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"

    # ---- engine plumbing
    @property
    def _in_engine(self):
        return self._code is not None

    def _spec(self):
        return (self._code, 0.0)

    def _extra(self):
        """Extra engine arguments: {'param2', 'thresholds', 'loss'} (None: none)."""
        return None

    def _state_size(self, n_out):
        return 0

    def _class_id(self):
        return -1

    def _check_width(self, n_out):
        if self._class_id() >= n_out:
            raise ValueError(f"{type(self).__name__}(class_id={self._class_id()}) needs a model with more "
                             f"than {self._class_id()} output units; this one has {n_out}")

    def _engine_spec(self, n_out, output=0, weighted=True):
        """The spec tuple for one pass (kind, param, class_id, state, output, extra), with a
        fresh state array when stateful; ``weighted``: whether a pass applies the sample
        weights (Keras weights only its ``weighted_metrics``)."""
        self._check_width(n_out)
        state = np.zeros(self._state_size(n_out)) if self._stateful else None
        return self._spec() + (self._class_id(), state, output, {**(self._extra() or {}), "weighted": int(weighted)})

    def _finish(self, state):
        raise NotImplementedError

    def _finish_sum(self, total, weight_sum):
        return float(total / weight_sum) if weight_sum else 0.0

    def _empty_result(self):
        """The result before any update (Keras's metrics give 0)."""
        return 0.0

    def _engine_update(self, y_true, y_pred, sample_weight=None):
        P = _as_rows(y_pred)
        y_true = np.asarray(y_true)
        Y = y = None
        if self._sparse:
            y = np.ascontiguousarray(y_true.reshape(-1), dtype=np.int64)
            if len(y) != len(P):
                raise ValueError(f"{type(self).__name__}: y_true has {len(y)} labels for {len(P)} rows")
            if self._code == _MET_LOSS and ((y < 0) | (y >= P.shape[1])).any():
                raise ValueError(f"{type(self).__name__}: labels must lie in [0, {P.shape[1]}); got "
                                 f"{y[(y < 0) | (y >= P.shape[1])][:5].tolist()}")
        else:
            if y_true.size != P.size:
                raise ValueError(f"{type(self).__name__}: y_true has shape {y_true.shape} but y_pred has "
                                 f"shape {np.shape(y_pred)}; expected the same number of values")
            Y = np.ascontiguousarray(y_true.reshape(P.shape), dtype=np.float64)
        w = None
        if sample_weight is not None:
            w = np.ascontiguousarray(np.broadcast_to(np.asarray(sample_weight, np.float64).reshape(-1),
                                                     (len(P),)))
        if self._stateful:
            spec = self._engine_spec(P.shape[1])
            if self._state is None or self._state.shape != spec[3].shape:
                self._state = spec[3]
            _engine.metrics_update([spec[:3] + (self._state,) + spec[4:]], P, Y, y, w)
            return
        self._total += _engine.metrics_update([self._engine_spec(P.shape[1])], P, Y, y, w)[0]
        self._count += float(len(P)) if w is None else float(w.sum())


# ------------------------------------------------------------------ reductions
def _same_rank(x1, x2, expand_rank_1=True):
    """Keras's squeeze_or_expand_to_same_rank: ranks that differ by a trailing 1 are aligned."""
    r1, r2 = x1.ndim, x2.ndim
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = x2[..., None]
        else:
            x1 = x1[..., 0]
    elif r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = x1[..., None]
        else:
            x2 = x2[..., 0]
    return x1, x2


def _samplewise(values, sample_weight, reduce_fn):
    """Per-sample values (weighted) and weights, as Keras's reduce_to_samplewise_values."""
    values = np.asarray(values, dtype=np.float64)
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
        values, sample_weight = _same_rank(values, sample_weight)
        wd, vd = sample_weight.ndim, values.ndim
        if vd > wd:
            values = reduce_fn(values, axis=tuple(range(wd, vd)))
        try:
            sample_weight = np.broadcast_to(sample_weight, values.shape)
        except ValueError:
            raise ValueError(f"sample_weight of shape {sample_weight.shape} does not broadcast to the "
                             f"values' shape {values.shape}") from None
        values = values * sample_weight
        if wd > 1:
            sample_weight = reduce_fn(sample_weight, axis=tuple(range(1, wd)))
    if values.ndim > 1:
        values = reduce_fn(values, axis=tuple(range(1, values.ndim)))
    return values, sample_weight


class Sum(Metric):
    """The (weighted) sum of the given values: ``update_state(values, sample_weight=None)``.
    Standalone only (Keras cannot compile it either: it takes values, not targets and
    predictions)."""

    def __init__(self, name="sum", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, values, sample_weight=None):
        values, _ = _samplewise(values, sample_weight, np.sum)
        self._total += float(np.sum(values))

    def result(self):
        return float(self._total)


class Mean(Metric):
    """The (weighted) mean of the given values: ``update_state(values, sample_weight=None)``
    adds ``sum(values * sample_weight)`` and ``sum(sample_weight)`` (or the number of
    samples).  Standalone only, as in Keras."""

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, values, sample_weight=None):
        if self._code is not None:
            raise TypeError(f"{type(self).__name__}.update_state takes (y_true, y_pred, sample_weight=None)")
        self._add_values(values, sample_weight)

    def _add_values(self, values, sample_weight):
        values, sample_weight = _samplewise(values, sample_weight, np.mean)
        self._total += float(np.sum(values))
        if sample_weight is not None:
            self._count += float(np.sum(sample_weight))
        else:
            self._count += float(values.shape[0]) if values.ndim >= 1 else 1.0

    def result(self):
        if self._code is not None:
            return Metric.result(self)
        return float(self._total / self._count) if self._count else 0.0


class MeanMetricWrapper(Mean):
    """The mean of ``fn(y_true, y_pred, **kwargs)`` over all samples seen.

    ``fn`` is a Python function of NumPy arrays returning per-sample values (or a
    per-batch value), written with NumPy or ``fastmlp.ops``; ``compile(metrics=[fn])``
    wraps a function in this class (named ``fn.__name__``).  It runs in Python on each
    batch's predictions: ``fit`` then takes one batch per engine call and copies the
    outputs back (in training mode, before the step's update, as Keras), ``evaluate``
    runs one extra forward pass.  Measured on a 32-64-64-1 MLP over 20,000 rows (2 shared
    CPU cores): a ``fit`` epoch took 3.2x as long as with the built-in ``'mae'`` at
    batch_size=32 (179 ms against 56 ms) and 1.3x at batch_size=256; ``evaluate`` was
    within the timing noise.  Built-in metrics stream in C: prefer one when it exists.  fastmlp's built-in metrics that Keras derives from this class
    (``BinaryAccuracy``, ``MeanSquaredError``, the cross-entropies, ...) run in C.

    A function metric is saved in a file's compile config by its name only (files hold no
    code): load such a file with ``compile=False`` and compile it again.
    """

    def __init__(self, fn=None, name=None, dtype=None, **kwargs):
        if self._code is None:
            if not callable(fn):
                raise TypeError(f"MeanMetricWrapper needs a callable `fn(y_true, y_pred)`; got fn={fn!r}")
            if isinstance(fn, Metric):
                raise TypeError(f"MeanMetricWrapper wraps a function, not a Metric object; got {fn!r}")
        self._fn = fn
        self._fn_kwargs = kwargs
        super().__init__(name=name, dtype=dtype)

    _loss_code = None
    from_logits = False
    label_smoothing = 0.0

    def _extra(self):
        if self._code != _MET_LOSS:
            return None
        return {"loss": (self._loss_code, int(self.from_logits), float(self.label_smoothing), 1.0)}

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self._code is not None:
            return self._engine_update(y_true, y_pred, sample_weight)
        values = self._fn(np.asarray(y_true), np.asarray(y_pred), **self._fn_kwargs)
        values = np.asarray(values)
        if values.dtype.kind not in "biuf":
            raise TypeError(f"metric function {getattr(self._fn, '__name__', self._fn)!r} must return "
                            f"numbers; got an array of dtype {values.dtype}")
        self._add_values(values, sample_weight)

    def get_config(self):
        if self._code is not None:
            return Metric.get_config(self)
        fn = self._fn
        name = getattr(fn, "__name__", None) or type(fn).__name__
        return {**Metric.get_config(self), "fn": f"{getattr(fn, '__module__', '') or ''}.{name}".lstrip("."),
                **self._fn_kwargs}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        fn = config.get("fn")
        if cls is MeanMetricWrapper and not callable(fn):
            raise ValueError(f"The metric {config.get('name')!r} wraps the Python function {fn!r}, which a "
                             f"config cannot restore (fastmlp configs hold no code): load the model with "
                             f"compile=False and compile it again with the function")
        return cls(**config)


# ------------------------------------------------------------------ accuracy
class BinaryAccuracy(MeanMetricWrapper):
    """How often ``(y_pred > threshold) == y_true``."""
    _code = _MET_BINARY_ACCURACY
    _default_name = "binary_accuracy"

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        self.threshold = float(_validate.number("threshold", threshold)) if threshold is not None else 0.5
        super().__init__(name=name, dtype=dtype)

    def _spec(self):
        return (self._code, self.threshold)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


class CategoricalAccuracy(MeanMetricWrapper):
    """How often argmax(y_pred) equals argmax of the one-hot y_true."""
    _code = _MET_CATEGORICAL_ACCURACY
    _default_name = "categorical_accuracy"

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often argmax(y_pred) equals the integer label."""
    _code = _MET_SPARSE_CATEGORICAL_ACCURACY
    _sparse = True
    _default_name = "sparse_categorical_accuracy"

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the one-hot target is among the k highest predictions.

    ``k`` is an integer in [1, 2**31 - 1]; a k of at least the number of
    classes counts every target."""
    _code = _MET_TOP_K
    _default_name = "top_k_categorical_accuracy"
    MAX_K = 2 ** 31 - 1

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        self.k = _validate.integer("k", k, 1, self.MAX_K)
        super().__init__(name=name, dtype=dtype)

    def _spec(self):
        return (self._code, float(self.k))

    def get_config(self):
        return {**super().get_config(), "k": self.k}


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the integer label is among the k highest predictions."""
    _code = _MET_SPARSE_TOP_K
    _sparse = True
    _default_name = "sparse_top_k_categorical_accuracy"

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None, from_sorted_ids=False):
        if from_sorted_ids:
            raise ValueError("SparseTopKCategoricalAccuracy(from_sorted_ids=True) is not supported by fastmlp")
        self.k = _validate.integer("k", k, 1, TopKCategoricalAccuracy.MAX_K)
        super().__init__(name=name, dtype=dtype)

    def _spec(self):
        return (self._code, float(self.k))

    def get_config(self):
        return {**super().get_config(), "k": self.k}


# ------------------------------------------------------------------ regression
class MeanAbsoluteError(MeanMetricWrapper):
    """mean(|y_true - y_pred|) over the last axis, averaged over samples."""
    _code = _MET_MAE
    _default_name = "mean_absolute_error"

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(name=name, dtype=dtype)


class MeanSquaredError(MeanMetricWrapper):
    """mean((y_true - y_pred)^2) over the last axis, averaged over samples."""
    _code = _MET_MSE
    _default_name = "mean_squared_error"

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)


class RootMeanSquaredError(Mean):
    """sqrt of the weighted mean squared error."""
    _code = _MET_MSE
    _default_name = "root_mean_squared_error"

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        return self._engine_update(y_true, y_pred, sample_weight)

    def _finish_sum(self, total, weight_sum):
        return float(np.sqrt(total / weight_sum)) if weight_sum else 0.0


def _loss_metric(cls_name, loss_code, default_name, doc):
    """A metric averaging a loss function's per-sample value in C (FM_MET_LOSS); Keras
    derives these straight from MeanMetricWrapper, and so do we."""
    def __init__(self, name=default_name, dtype=None):
        MeanMetricWrapper.__init__(self, name=name, dtype=dtype)
    return type(cls_name, (MeanMetricWrapper,), {
        "_code": _MET_LOSS, "_loss_code": loss_code, "_needs": "dense", "_default_name": default_name,
        "__init__": __init__, "__doc__": doc, "__module__": __name__, "__qualname__": cls_name})


MeanAbsolutePercentageError = _loss_metric(
    "MeanAbsolutePercentageError", _LOSS_MAPE, "mean_absolute_percentage_error",
    "100 * mean(|y_true - y_pred| / max(|y_true|, eps)) per sample, averaged.")
MeanSquaredLogarithmicError = _loss_metric(
    "MeanSquaredLogarithmicError", _LOSS_MSLE, "mean_squared_logarithmic_error",
    "mean((log(max(y_pred, eps) + 1) - log(max(y_true, eps) + 1))^2) per sample, averaged.")
LogCoshError = _loss_metric(
    "LogCoshError", _LOSS_LOG_COSH, "logcosh", "mean(log(cosh(y_pred - y_true))) per sample, averaged.")
KLDivergence = _loss_metric(
    "KLDivergence", _LOSS_KLD, "kl_divergence",
    "sum(y * log(y / p)) with y and p clipped to [eps, 1], per sample, averaged.")
Poisson = _loss_metric(
    "Poisson", _LOSS_POISSON, "poisson", "mean(y_pred - y_true * log(y_pred + eps)) per sample, averaged.")
Hinge = _loss_metric(
    "Hinge", _LOSS_HINGE, "hinge",
    "mean(max(1 - y * p, 0)); targets all in {0, 1} (per batch) are read as {-1, 1}, as Keras.")
SquaredHinge = _loss_metric(
    "SquaredHinge", _LOSS_SQUARED_HINGE, "squared_hinge",
    "mean(max(1 - y * p, 0)^2); targets all in {0, 1} (per batch) are read as {-1, 1}, as Keras.")
CategoricalHinge = _loss_metric(
    "CategoricalHinge", _LOSS_CATEGORICAL_HINGE, "categorical_hinge",
    "max(max((1 - y) * p) - sum(y * p) + 1, 0) per sample, averaged.")


class BinaryCrossentropy(MeanMetricWrapper):
    """Binary cross-entropy per sample (mean over the last axis), averaged; from
    probabilities clipped to [eps, 1 - eps], or logits with ``from_logits=True``;
    ``label_smoothing`` moves targets towards 0.5."""
    _code = _MET_LOSS
    _loss_code = _LOSS_BCE
    _needs = "dense"
    _default_name = "binary_crossentropy"

    def __init__(self, name="binary_crossentropy", dtype=None, from_logits=False, label_smoothing=0):
        self.from_logits = bool(from_logits)
        self.label_smoothing = label_smoothing
        _validate.number("label_smoothing", label_smoothing, 0, 1)
        super().__init__(name=name, dtype=dtype)


    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits, "label_smoothing": self.label_smoothing}


class CategoricalCrossentropy(MeanMetricWrapper):
    """Categorical cross-entropy per sample, averaged; from probabilities (normalised
    and clipped, as Keras) or logits; ``label_smoothing`` as Keras."""
    _code = _MET_LOSS
    _loss_code = _LOSS_CCE
    _needs = "dense"
    _default_name = "categorical_crossentropy"

    def __init__(self, name="categorical_crossentropy", dtype=None, from_logits=False, label_smoothing=0,
                 axis=-1):
        if axis != -1:
            raise ValueError(f"{type(self).__name__}(axis={axis!r}) is not supported by fastmlp: the class "
                             f"axis is the last one (axis=-1)")
        self.from_logits = bool(from_logits)
        self.label_smoothing = label_smoothing
        self.axis = axis
        _validate.number("label_smoothing", label_smoothing, 0, 1)
        super().__init__(name=name, dtype=dtype)


    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


class SparseCategoricalCrossentropy(MeanMetricWrapper):
    """Categorical cross-entropy against integer labels, averaged."""
    _code = _MET_LOSS
    _loss_code = _LOSS_SCCE
    _sparse = True
    _needs = "sparse"
    _default_name = "sparse_categorical_crossentropy"

    def __init__(self, name="sparse_categorical_crossentropy", dtype=None, from_logits=False,
                 ignore_class=None, axis=-1):
        if ignore_class is not None:
            raise ValueError("SparseCategoricalCrossentropy(ignore_class=...) is not supported by fastmlp")
        if axis != -1:
            raise ValueError(f"SparseCategoricalCrossentropy(axis={axis!r}) is not supported by fastmlp: "
                             f"the class axis is the last one (axis=-1)")
        self.from_logits = bool(from_logits)
        self.ignore_class = ignore_class
        self.axis = axis
        super().__init__(name=name, dtype=dtype)


    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits, "ignore_class": self.ignore_class,
                "axis": self.axis}


class CosineSimilarity(MeanMetricWrapper):
    """sum(normalize(y_true) * normalize(y_pred)) over the last axis (norms floored at
    1e-7), averaged over samples."""
    _code = _MET_COSINE
    _default_name = "cosine_similarity"

    def __init__(self, name="cosine_similarity", dtype=None, axis=-1):
        if axis != -1:
            raise ValueError(f"CosineSimilarity(axis={axis!r}) is not supported by fastmlp (axis=-1 only)")
        super().__init__(name=name, dtype=dtype)


class R2Score(Metric):
    """The coefficient of determination per output unit, from running sums in C,
    aggregated by ``class_aggregation`` ('uniform_average', 'variance_weighted_average'
    or None: per unit); ``num_regressors`` > 0 gives the adjusted R2."""
    _code = _MET_R2
    _stateful = True
    _default_name = "r2_score"

    def __init__(self, class_aggregation="uniform_average", num_regressors=0, name="r2_score", dtype=None):
        if class_aggregation not in (None, "uniform_average", "variance_weighted_average"):
            raise ValueError(f"Invalid value for argument `class_aggregation`. Expected one of "
                             f"(None, 'uniform_average', 'variance_weighted_average'). "
                             f"Received: class_aggregation={class_aggregation!r}")
        self.num_regressors = _validate.integer("num_regressors", num_regressors, 0, _validate.INT64_MAX)
        self.class_aggregation = class_aggregation
        super().__init__(name=name, dtype=dtype)

    def _state_size(self, n_out):
        return 4 * n_out + 1

    def _empty_result(self):
        return np.zeros(0) if self.class_aggregation is None else 0.0

    def _finish(self, state):
        st = state[:-1].reshape(-1, 4)
        s, sq, mse, count = st[:, 0], st[:, 1], st[:, 2], st[:, 3]
        n = state[-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = s / count
            total = sq - s * mean
            raw = 1 - mse / total
            raw = np.where(np.isinf(raw), 0.0, raw)
            if self.class_aggregation == "uniform_average":
                r2 = np.mean(raw)
            elif self.class_aggregation == "variance_weighted_average":
                r2 = np.sum(total * raw) / np.sum(total)
            else:
                r2 = raw
        if self.num_regressors != 0:
            if self.num_regressors > n - 1:
                warnings.warn("More independent predictors than datapoints in adjusted R2 score. "
                              "Falling back to standard R2 score.", stacklevel=2)
            elif self.num_regressors == n - 1:
                warnings.warn("Division by zero in Adjusted R2 score. Falling back to standard R2 score.",
                              stacklevel=2)
            else:
                r2 = 1 - (1 - r2) * (n - 1) / (n - self.num_regressors - 1)
        return r2 if self.class_aggregation is None else float(r2)

    def get_config(self):
        return {**super().get_config(), "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}


def _div(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)


# ------------------------------------------------------------------ confusion counts
def _check_thresholds(thresholds):
    values = np.atleast_1d(np.asarray(thresholds, dtype=np.float64)).reshape(-1)
    if values.size == 0 or not np.all((values >= 0) & (values <= 1)):
        raise ValueError(f"Threshold values must be in [0, 1]. Received: {thresholds!r}")
    return values


class _ConfusionMatrixConditionCount(Metric):
    """Weighted counts of one cell of the confusion matrix at each threshold (a
    prediction above it is positive; a non-zero target is positive)."""
    _code = _MET_CONFUSION_AT
    _stateful = True
    _cell = 0   # tp, fp, tn, fn

    def __init__(self, thresholds=None, name=None, dtype=None):
        if isinstance(thresholds, np.ndarray):
            thresholds = thresholds.tolist()
        self.init_thresholds = thresholds
        self._thresholds = _check_thresholds(0.5 if thresholds is None else thresholds)
        self.thresholds = self._thresholds.tolist()
        super().__init__(name=name, dtype=dtype)

    def _extra(self):
        return {"thresholds": self._thresholds}

    def _state_size(self, n_out):
        return 4 * len(self._thresholds)

    def _finish(self, state):
        counts = state.reshape(-1, 4)[:, self._cell]
        return float(counts[0]) if len(counts) == 1 else counts.copy()

    def _empty_result(self):
        return 0.0 if len(self._thresholds) == 1 else np.zeros(len(self._thresholds))

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds}


class TruePositives(_ConfusionMatrixConditionCount):
    """The weighted number of true positives (at each of ``thresholds``; 0.5 by default)."""
    _cell = 0

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(thresholds=thresholds, name=name, dtype=dtype)


class FalsePositives(_ConfusionMatrixConditionCount):
    """The weighted number of false positives (at each of ``thresholds``)."""
    _cell = 1

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(thresholds=thresholds, name=name, dtype=dtype)


class TrueNegatives(_ConfusionMatrixConditionCount):
    """The weighted number of true negatives (at each of ``thresholds``)."""
    _cell = 2

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(thresholds=thresholds, name=name, dtype=dtype)


class FalseNegatives(_ConfusionMatrixConditionCount):
    """The weighted number of false negatives (at each of ``thresholds``)."""
    _cell = 3

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(thresholds=thresholds, name=name, dtype=dtype)


class _Confusion(Metric):
    _code = _MET_CONFUSION
    _stateful = True

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        if top_k is not None:
            raise ValueError(f"{type(self).__name__}(top_k=...) is not supported by fastmlp")
        if isinstance(thresholds, (list, tuple, np.ndarray)):
            raise ValueError(f"{type(self).__name__} takes a single float threshold in fastmlp")
        # Keras: "Threshold values must be in [0, 1]"
        self.init_thresholds = thresholds
        self.thresholds = 0.5 if thresholds is None else _validate.number("thresholds", thresholds, 0, 1)
        self.top_k = top_k
        # an output column: None (all outputs pooled) or a non-negative int (checked against the
        # model's outputs when it runs)
        self.class_id = None if class_id is None else _validate.integer("class_id", class_id, 0,
                                                                        _validate.INT64_MAX)
        super().__init__(name=name, dtype=dtype)

    def _spec(self):
        return (self._code, self.thresholds)

    def _class_id(self):
        return -1 if self.class_id is None else int(self.class_id)

    def _state_size(self, n_out):
        return 3

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds, "top_k": self.top_k,
                "class_id": self.class_id}


class Precision(_Confusion):
    """tp / (tp + fp) with predictions above ``thresholds`` (0.5) counted positive."""
    _default_name = "precision"

    def _finish(self, state):
        return float(_div(state[0], state[0] + state[1]))


class Recall(_Confusion):
    """tp / (tp + fn) with predictions above ``thresholds`` (0.5) counted positive."""
    _default_name = "recall"

    def _finish(self, state):
        return float(_div(state[0], state[0] + state[2]))


def _histogram_counts(state, nt):
    """tp, fp, tn, fn at each of nt evenly spaced thresholds from a threshold histogram."""
    pos, neg = state[:nt + 1], state[nt + 1:]
    tp = np.cumsum(pos[::-1])[::-1][1:]
    fp = np.cumsum(neg[::-1])[::-1][1:]
    return tp, fp, neg.sum() - fp, pos.sum() - tp


class AUC(Metric):
    """Area under the ROC or PR curve from ``num_thresholds`` evenly spaced
    thresholds, with Keras's interpolation; counts accumulate in C.

    ``num_thresholds`` is an integer in [2, 1_000_000] (Keras's default is 200;
    the state holds 16 bytes per threshold, 16 MB at the cap)."""
    _code = _MET_THRESHOLD_HISTOGRAM
    _stateful = True
    _default_name = "auc"
    MAX_THRESHOLDS = 10 ** 6

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None,
                 dtype=None, thresholds=None, multi_label=False, num_labels=None, label_weights=None,
                 from_logits=False):
        num_thresholds = _validate.integer("num_thresholds", num_thresholds, 2, self.MAX_THRESHOLDS)
        if curve not in ("ROC", "PR"):
            raise ValueError(f"Invalid AUC curve value: {curve!r}. Expected 'ROC' or 'PR'")
        if summation_method != "interpolation":
            raise ValueError("fastmlp's AUC supports summation_method='interpolation' only")
        if thresholds is not None or multi_label or label_weights is not None or from_logits:
            raise ValueError("fastmlp's AUC supports evenly spaced thresholds over all labels "
                             "(no thresholds=, multi_label, label_weights or from_logits)")
        self.num_thresholds, self.curve = int(num_thresholds), curve
        if num_labels is not None:
            num_labels = _validate.integer("num_labels", num_labels, 1, _validate.INT64_MAX)
        self.summation_method, self.multi_label, self.num_labels = summation_method, multi_label, num_labels
        super().__init__(name=name, dtype=dtype)

    def _spec(self):
        return (self._code, float(self.num_thresholds))

    def _extra(self):
        return {"param2": 1.0}   # AUC's thresholds: -eps, ..., 1 + eps

    def _state_size(self, n_out):
        return 2 * (self.num_thresholds + 1)

    def _finish(self, state):
        tp, fp, tn, fn = _histogram_counts(state, self.num_thresholds)
        if self.curve == "ROC":
            recall, fpr = _div(tp, tp + fn), _div(fp, fp + tn)
            return float(np.sum((fpr[:-1] - fpr[1:]) * (recall[:-1] + recall[1:]) / 2))
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _div(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        ratio = np.where((p[:-1] > 0) & (p[1:] > 0), _div(p[:-1], np.maximum(p[1:], 0)), 1.0)
        inc = _div(slope * (dtp + intercept * np.log(ratio)), np.maximum(tp[1:] + fn[1:], 0))
        return float(np.sum(inc))

    def get_config(self):
        return {**super().get_config(), "num_thresholds": self.num_thresholds, "curve": self.curve,
                "summation_method": self.summation_method, "multi_label": self.multi_label,
                "num_labels": self.num_labels, "label_weights": None, "from_logits": False}

    @classmethod
    def from_config(cls, config):
        return cls(**{k: v for k, v in config.items() if k != "label_weights" or v is not None})


class SensitivitySpecificityBase(Metric):
    """The shared state of PrecisionAtRecall, RecallAtPrecision, SensitivityAtSpecificity
    and SpecificityAtSensitivity: tp, fp, tn, fn at ``num_thresholds`` evenly spaced
    thresholds 0, 1/(n-1), ..., 1 (one threshold: 0.5), over all units or unit
    ``class_id``; a threshold histogram in C."""
    _stateful = True
    _value_name = None

    def __init__(self, value, num_thresholds=200, class_id=None, name=None, dtype=None):
        if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, (int, np.integer)) \
                or num_thresholds <= 0:
            raise ValueError(f"Argument `num_thresholds` must be an integer > 0. "
                             f"Received: num_thresholds={num_thresholds!r}")
        _validate.integer("num_thresholds", num_thresholds, 1, AUC.MAX_THRESHOLDS)
        self.value = value
        self.num_thresholds = int(num_thresholds)
        self.class_id = None if class_id is None else _validate.integer("class_id", class_id, 0,
                                                                        _validate.INT64_MAX)
        self._code = _MET_CONFUSION_AT if self.num_thresholds == 1 else _MET_THRESHOLD_HISTOGRAM
        super().__init__(name=name, dtype=dtype)

    def _spec(self):
        return (self._code, float(self.num_thresholds))

    def _extra(self):
        return {"thresholds": np.array([0.5])} if self.num_thresholds == 1 else {"param2": 0.0}

    def _class_id(self):
        return -1 if self.class_id is None else int(self.class_id)

    def _state_size(self, n_out):
        return 4 if self.num_thresholds == 1 else 2 * (self.num_thresholds + 1)

    def _counts(self, state):
        if self.num_thresholds == 1:
            return tuple(state[i:i + 1] for i in range(4))
        return _histogram_counts(state, self.num_thresholds)

    @staticmethod
    def _max_under_constraint(constrained, dependent, value):
        return float(np.max(np.where(constrained >= value, dependent, 0), initial=0))

    def get_config(self):
        return {**super().get_config(), "class_id": self.class_id, "num_thresholds": self.num_thresholds,
                self._value_name: self.value}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_unit(name, value):
    value = _validate.number(name, value)
    if value < 0 or value > 1:
        raise ValueError(f"Argument `{name}` must be in the range [0, 1]. Received: {name}={value}")
    return value


class SensitivityAtSpecificity(SensitivitySpecificityBase):
    """The best sensitivity (recall) among thresholds whose specificity is >= ``specificity``."""
    _value_name = "specificity"

    def __init__(self, specificity, num_thresholds=200, class_id=None, name=None, dtype=None):
        self.specificity = _check_unit("specificity", specificity)
        super().__init__(self.specificity, num_thresholds, class_id, name, dtype)

    def _finish(self, state):
        tp, fp, tn, fn = self._counts(state)
        return self._max_under_constraint(_div(tn, tn + fp), _div(tp, tp + fn), self.value)


class SpecificityAtSensitivity(SensitivitySpecificityBase):
    """The best specificity among thresholds whose sensitivity is >= ``sensitivity``."""
    _value_name = "sensitivity"

    def __init__(self, sensitivity, num_thresholds=200, class_id=None, name=None, dtype=None):
        self.sensitivity = _check_unit("sensitivity", sensitivity)
        super().__init__(self.sensitivity, num_thresholds, class_id, name, dtype)

    def _finish(self, state):
        tp, fp, tn, fn = self._counts(state)
        return self._max_under_constraint(_div(tp, tp + fn), _div(tn, tn + fp), self.value)


class PrecisionAtRecall(SensitivitySpecificityBase):
    """The best precision among thresholds whose recall is >= ``recall``."""
    _value_name = "recall"

    def __init__(self, recall, num_thresholds=200, class_id=None, name=None, dtype=None):
        self.recall = _check_unit("recall", recall)
        super().__init__(self.recall, num_thresholds, class_id, name, dtype)

    def _finish(self, state):
        tp, fp, tn, fn = self._counts(state)
        return self._max_under_constraint(_div(tp, tp + fn), _div(tp, tp + fp), self.value)


class RecallAtPrecision(SensitivitySpecificityBase):
    """The best recall among thresholds whose precision is >= ``precision``."""
    _value_name = "precision"

    def __init__(self, precision, num_thresholds=200, class_id=None, name=None, dtype=None):
        self.precision = _check_unit("precision", precision)
        super().__init__(self.precision, num_thresholds, class_id, name, dtype)

    def _finish(self, state):
        tp, fp, tn, fn = self._counts(state)
        return self._max_under_constraint(_div(tp, tp + fp), _div(tp, tp + fn), self.value)


# ------------------------------------------------------------------ F-scores
class FBetaScore(Metric):
    """F-beta from per-class tp/fp/fn (Keras's formula, with its epsilons); ``average``
    None (per class), 'micro', 'macro' or 'weighted'; ``threshold`` None means the
    entries equal to their row's maximum are the positives."""
    _code = _MET_PER_CLASS
    _stateful = True
    _default_name = "fbeta_score"

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError(f"Invalid `average` argument value. Expected one of: None, 'micro', "
                             f"'macro', 'weighted'. Received: average={average!r}")
        if not isinstance(beta, float):
            raise ValueError(f"Invalid `beta` argument value. It should be a Python float. "
                             f"Received: beta={beta!r} of type '{type(beta).__name__}'")
        if not beta > 0.0 or not np.isfinite(beta):
            raise ValueError(f"Invalid `beta` argument value. It should be > 0. Received: beta={beta}")
        if threshold is not None:   # Keras: "It should verify 0 < threshold <= 1"
            threshold = _validate.number("threshold", threshold, 0, 1, low_open=True)
        self.average, self.beta, self.threshold = average, beta, threshold
        super().__init__(name=name, dtype=dtype)

    def _spec(self):
        return (self._code, -1.0 if self.threshold is None else float(self.threshold))

    def _state_size(self, n_out):
        return 4 * n_out

    def _empty_result(self):
        # per class before any update: no classes seen yet, so an empty vector (of the type
        # average=None always returns; Keras 3.15 raises AttributeError here, its variables
        # being created by the first update)
        return np.zeros(0) if self.average is None else 0.0

    def _finish(self, state):
        tp, fp, fn, support = (state.reshape(-1, 4)[:, i] for i in range(4))
        if self.average == "micro":
            tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
        precision = tp / (tp + fp + _EPSILON)
        recall = tp / (tp + fn + _EPSILON)
        b2 = self.beta ** 2
        f = precision * recall / (b2 * precision + recall + _EPSILON) * (1 + b2)
        if self.average == "weighted":
            return float(np.sum(f * support / (support.sum() + _EPSILON)))
        if self.average is not None:
            return float(np.mean(f))
        return f

    def get_config(self):
        return {**super().get_config(), "average": self.average, "beta": self.beta,
                "threshold": self.threshold}


class F1Score(FBetaScore):
    """F1 (FBetaScore with beta=1)."""
    _default_name = "f1_score"

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        del config["beta"]
        return config


# ------------------------------------------------------------------ metric functions
def binary_accuracy(y_true, y_pred, threshold=0.5):
    """Per entry (as Keras 3): 1.0 where ``(y_pred > threshold) == y_true``."""
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    y_true, y_pred = _same_rank(y_true, y_pred)
    return (y_true == (y_pred > threshold)).astype(np.float64)


def categorical_accuracy(y_true, y_pred):
    """Per sample: 1.0 where argmax(y_pred) equals argmax of the one-hot y_true."""
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float64)


def sparse_categorical_accuracy(y_true, y_pred):
    """Per sample: 1.0 where argmax(y_pred) equals the integer label."""
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true).reshape(y_pred.shape[:-1])
    return (y_true == np.argmax(y_pred, axis=-1)).astype(np.float64)


def _in_top_k(labels, y_pred, k):
    y_pred = np.asarray(y_pred, np.float64).reshape(-1, np.shape(y_pred)[-1])
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    ok = (labels >= 0) & (labels < y_pred.shape[1])
    target = y_pred[np.arange(len(labels)), np.where(ok, labels, 0)]
    return (ok & ((y_pred > target[:, None]).sum(1) < k)).astype(np.float64)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """Per sample: 1.0 where the one-hot target is among the k highest predictions."""
    return _in_top_k(np.argmax(y_true, axis=-1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    """Per sample: 1.0 where the integer label is among the k highest predictions."""
    return _in_top_k(y_true, y_pred, k)


from . import losses as _losses  # noqa: E402  (the loss functions Keras also exports as metrics)

binary_crossentropy = _losses.binary_crossentropy
categorical_crossentropy = _losses.categorical_crossentropy
sparse_categorical_crossentropy = _losses.sparse_categorical_crossentropy
mean_squared_error = _losses.mean_squared_error
mean_absolute_error = _losses.mean_absolute_error
mean_absolute_percentage_error = _losses.mean_absolute_percentage_error
mean_squared_logarithmic_error = _losses.mean_squared_logarithmic_error
hinge = _losses.hinge
squared_hinge = _losses.squared_hinge
categorical_hinge = _losses.categorical_hinge
kl_divergence = _losses.kl_divergence
poisson = _losses.poisson
log_cosh = _losses.log_cosh
huber = _losses.huber

# compile(metrics=[fn]) with one of these runs the metric class in C (named fn.__name__, as Keras
# names a wrapped function); any other function runs in Python
_FUNCTION_CLASSES = {
    binary_accuracy: BinaryAccuracy, categorical_accuracy: CategoricalAccuracy,
    sparse_categorical_accuracy: SparseCategoricalAccuracy, top_k_categorical_accuracy: TopKCategoricalAccuracy,
    sparse_top_k_categorical_accuracy: SparseTopKCategoricalAccuracy, binary_crossentropy: BinaryCrossentropy,
    categorical_crossentropy: CategoricalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy, mean_squared_error: MeanSquaredError,
    mean_absolute_error: MeanAbsoluteError, mean_absolute_percentage_error: MeanAbsolutePercentageError,
    mean_squared_logarithmic_error: MeanSquaredLogarithmicError, hinge: Hinge, squared_hinge: SquaredHinge,
    categorical_hinge: CategoricalHinge, kl_divergence: KLDivergence, poisson: Poisson, log_cosh: LogCoshError,
}


# ------------------------------------------------------------------ names
_PUBLIC = [Metric, Mean, Sum, MeanMetricWrapper, MeanSquaredError, RootMeanSquaredError, MeanAbsoluteError,
           MeanAbsolutePercentageError, MeanSquaredLogarithmicError, CosineSimilarity, LogCoshError, R2Score,
           AUC, FalseNegatives, FalsePositives, Precision, PrecisionAtRecall, Recall, RecallAtPrecision,
           SensitivityAtSpecificity, SpecificityAtSensitivity, TrueNegatives, TruePositives, Hinge,
           SquaredHinge, CategoricalHinge, KLDivergence, Poisson, BinaryCrossentropy, CategoricalCrossentropy,
           SparseCategoricalCrossentropy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
           TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy, F1Score, FBetaScore]
# class names and their snake_case forms and Keras's short aliases, as keras.metrics.get
# resolves them (Keras: "AUC" -> "auc", "R2Score" -> "r2_score", "FBetaScore" -> "f_beta_score")
_CLASSES = {cls.__name__: cls for cls in _PUBLIC}
ALL_METRICS = {**_CLASSES, **{_snake(cls.__name__): cls for cls in _PUBLIC},
               "bce": BinaryCrossentropy, "BCE": BinaryCrossentropy, "mse": MeanSquaredError,
               "MSE": MeanSquaredError, "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
               "mape": MeanAbsolutePercentageError, "MAPE": MeanAbsolutePercentageError,
               "msle": MeanSquaredLogarithmicError, "MSLE": MeanSquaredLogarithmicError}
ALL_METRICS["auc"] = AUC
_NOT_COMPILABLE = (Mean, Sum, Metric, MeanMetricWrapper)


def serialize(metric):
    """``{'class_name', 'config'}`` of a metric object."""
    if not isinstance(metric, Metric):
        raise TypeError(f"serialize() takes a fastmlp.metrics.Metric; got {metric!r}")
    return {"class_name": type(metric).__name__, "config": metric.get_config()}


def deserialize(config):
    """A metric from ``serialize``'s output (fastmlp's own classes only)."""
    if not isinstance(config, dict) or config.get("class_name") not in _CLASSES:
        raise ValueError(f"Could not deserialize metric {config!r:.200}: expected "
                         f"{{'class_name': one of {sorted(_CLASSES)}, 'config': {{...}}}}")
    return _CLASSES[config["class_name"]].from_config(dict(config.get("config") or {}))


def get(identifier, sparse_targets=False, n_out=None):
    """A Metric from what ``compile(metrics=...)`` accepts, resolved as Keras does:
    a Metric object; a Metric class (instantiated); a name -- a class name, its
    snake_case form or an alias ('mse', 'mae', 'mape', 'msle', 'bce'), the metric taking
    the name given -- or ``'accuracy'``/``'acc'``, chosen from the shapes (one output
    unit -> binary, integer targets -> sparse categorical, else categorical); a dict
    from ``serialize``; or a function ``fn(y_true, y_pred)`` (a MeanMetricWrapper named
    after it, run in Python)."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        if identifier.lower() in ("accuracy", "acc"):
            if n_out == 1:
                cls = BinaryAccuracy
            elif sparse_targets:
                cls = SparseCategoricalAccuracy
            else:
                cls = CategoricalAccuracy
            return cls(name=identifier)
        cls = ALL_METRICS.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown metric: {identifier!r}. Expected one of "
                             f"{sorted(['accuracy', 'acc', *ALL_METRICS])}")
        try:
            metric = cls()
        except TypeError as e:
            raise ValueError(f"The metric {identifier!r} needs arguments ({e}): pass "
                             f"fastmlp.metrics.{cls.__name__}(...) instead of its name") from None
        metric.name = identifier
        return metric
    if callable(identifier) and not isinstance(identifier, type):
        try:
            cls = _FUNCTION_CLASSES.get(identifier)
        except TypeError:   # an unhashable callable
            cls = None
        if cls is not None:
            return cls(name=identifier.__name__)
        return MeanMetricWrapper(identifier, name=getattr(identifier, "__name__", None)
                                 or _snake(type(identifier).__name__))
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}: expected a name, a "
                     f"fastmlp.metrics.Metric or a function fn(y_true, y_pred)")
