"""Metrics with the Keras 3 names, accumulated in C.

During ``fit``/``evaluate`` the engine adds each batch's weighted per-sample
values to running sums, so an epoch's metric equals the metric computed on all
predictions at once.  Standalone, a metric object is used as in Keras:
``update_state(y_true, y_pred, sample_weight=None)``, ``result()``,
``reset_state()``.
"""
import numpy as np

from . import _engine

__all__ = [
    "Metric", "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
    "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "MeanAbsoluteError",
    "MeanSquaredError", "get",
]


class Metric:
    """A weighted mean of a per-sample value; the engine computes the values."""
    _code = None
    _sparse = False
    _default_name = None

    def __init__(self, name=None, dtype=None):
        self.name = name or self._default_name
        self.dtype = dtype
        self.reset_state()

    def _spec(self):
        return (self._code, 0.0)

    def reset_state(self):
        self._total = 0.0
        self._count = 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        P = np.asarray(y_pred, dtype=np.float64)
        P = np.ascontiguousarray(P.reshape(len(P), -1) if P.ndim != 2 else P)
        y_true = np.asarray(y_true)
        Y = y = None
        if self._sparse:
            y = np.ascontiguousarray(y_true.reshape(-1), dtype=np.int64)
        else:
            Y = np.ascontiguousarray(y_true.reshape(P.shape), dtype=np.float64)
        w = None
        if sample_weight is not None:
            w = np.ascontiguousarray(np.broadcast_to(np.asarray(sample_weight, np.float64).reshape(-1),
                                                     (len(P),)))
        self._total += _engine.metrics_update([self._spec()], P, Y, y, w)[0]
        self._count += float(len(P)) if w is None else float(w.sum())

    def result(self):
        return self._total / self._count if self._count else 0.0

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class BinaryAccuracy(Metric):
    """How often ``(y_pred > threshold) == y_true``."""
    _code = 0
    _default_name = "binary_accuracy"

    def __init__(self, name=None, dtype=None, threshold=0.5):
        self.threshold = float(threshold)
        super().__init__(name, dtype)

    def _spec(self):
        return (self._code, self.threshold)

    def get_config(self):
        return {"name": self.name, "threshold": self.threshold}


class CategoricalAccuracy(Metric):
    """How often argmax(y_pred) equals argmax of the one-hot y_true."""
    _code = 1
    _default_name = "categorical_accuracy"


class SparseCategoricalAccuracy(Metric):
    """How often argmax(y_pred) equals the integer label."""
    _code = 2
    _sparse = True
    _default_name = "sparse_categorical_accuracy"


class TopKCategoricalAccuracy(Metric):
    """How often the one-hot target is among the k highest predictions."""
    _code = 3
    _default_name = "top_k_categorical_accuracy"

    def __init__(self, k=5, name=None, dtype=None):
        self.k = int(k)
        super().__init__(name, dtype)

    def _spec(self):
        return (self._code, float(self.k))

    def get_config(self):
        return {"name": self.name, "k": self.k}


class SparseTopKCategoricalAccuracy(TopKCategoricalAccuracy):
    """How often the integer label is among the k highest predictions."""
    _code = 4
    _sparse = True
    _default_name = "sparse_top_k_categorical_accuracy"


class MeanAbsoluteError(Metric):
    _code = 5
    _default_name = "mean_absolute_error"


class MeanSquaredError(Metric):
    _code = 6
    _default_name = "mean_squared_error"


ALL_METRICS = {
    "binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
}
_CLASSES = {cls.__name__: cls for cls in ALL_METRICS.values()}


def get(identifier, sparse_targets=False, n_out=None):
    """A Metric from a name or instance.  ``'accuracy'`` is resolved as Keras does,
    from the shapes: one output unit -> binary, integer targets -> sparse
    categorical, else categorical; the metric keeps the name the user gave."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, str):
        if identifier in ("accuracy", "acc"):
            if n_out == 1:
                cls = BinaryAccuracy
            elif sparse_targets:
                cls = SparseCategoricalAccuracy
            else:
                cls = CategoricalAccuracy
            return cls(name=identifier)
        cls = ALL_METRICS.get(identifier) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown metric: {identifier!r}. Expected one of "
                             f"{sorted(['accuracy', 'acc', *ALL_METRICS])}")
        return cls(name=identifier)
    raise ValueError(f"Could not interpret metric {identifier!r}: expected a name or a "
                     f"fastmlp.metrics.Metric (custom Python metrics cannot run inside the engine)")
