"""Metrics with the Keras 3 names, accumulated in C.

During ``fit``/``evaluate`` the engine adds each batch's weighted per-sample
values to running sums, so an epoch's metric equals the metric computed on all
predictions at once.  Standalone, a metric object is used as in Keras:
``update_state(y_true, y_pred, sample_weight=None)``, ``result()``,
``reset_state()``.
"""
import numpy as np

from . import _engine, _validate

__all__ = [
    "Metric", "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
    "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "MeanAbsoluteError",
    "MeanSquaredError", "RootMeanSquaredError", "Precision", "Recall", "AUC", "F1Score", "get",
]


class Metric:
    """A weighted mean of a per-sample value; the engine computes the values.

    Stateful metrics (precision, recall, AUC, F1) set ``_stateful`` and keep
    float64 counts that the engine accumulates; ``_finish(state)`` turns the
    counts into the result.
    """
    _code = None
    _sparse = False
    _stateful = False
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
        state = getattr(self, "_state", None)
        # a metric that has seen data keeps its shape (F1Score's number of classes), as Keras's do
        self._state = None if state is None else np.zeros_like(state)

    # engine plumbing for stateful metrics
    def _state_size(self, n_out):
        return 0

    def _engine_spec(self, n_out):
        """The spec tuple for one pass, with a fresh state array when stateful."""
        if not self._stateful:
            return self._spec()
        if self._class_id() >= n_out:
            raise ValueError(f"{type(self).__name__}(class_id={self._class_id()}) needs a model with more "
                             f"than {self._class_id()} output units; this one has {n_out}")
        return self._spec() + (self._class_id(), np.zeros(self._state_size(n_out)))

    def _class_id(self):
        return -1

    def _finish(self, state):
        raise NotImplementedError

    def _finish_sum(self, total, weight_sum):
        return float(total / weight_sum) if weight_sum else 0.0

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
        if self._stateful:
            spec = self._engine_spec(P.shape[1])
            if self._state is None or self._state.shape != spec[3].shape:
                self._state = spec[3]
            _engine.metrics_update([spec[:3] + (self._state,)], P, Y, y, w)
            return
        self._total += _engine.metrics_update([self._spec()], P, Y, y, w)[0]
        self._count += float(len(P)) if w is None else float(w.sum())

    def result(self):
        if self._stateful:
            return self._finish(self._state) if self._state is not None else self._empty_result()
        return self._finish_sum(self._total, self._count)

    def _empty_result(self):
        """The result before any update (Keras's metrics give 0)."""
        return 0.0

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
    """How often the one-hot target is among the k highest predictions.

    ``k`` is an integer in [1, 2**31 - 1]; a k of at least the number of
    classes counts every target."""
    _code = 3
    _default_name = "top_k_categorical_accuracy"
    MAX_K = 2 ** 31 - 1

    def __init__(self, k=5, name=None, dtype=None):
        self.k = _validate.integer("k", k, 1, self.MAX_K)
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


class RootMeanSquaredError(MeanSquaredError):
    """sqrt of the weighted mean squared error."""
    _default_name = "root_mean_squared_error"

    def _finish_sum(self, total, weight_sum):
        return float(np.sqrt(total / weight_sum)) if weight_sum else 0.0


def _div(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.where(b > 0, a / np.where(b > 0, b, 1), 0.0)


class _Confusion(Metric):
    _code = 7
    _stateful = True

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        if top_k is not None:
            raise ValueError(f"{type(self).__name__}(top_k=...) is not supported by fastmlp")
        if isinstance(thresholds, (list, tuple, np.ndarray)):
            raise ValueError(f"{type(self).__name__} takes a single float threshold in fastmlp")
        # Keras: "Threshold values must be in [0, 1]"
        self.thresholds = 0.5 if thresholds is None else _validate.number("thresholds", thresholds, 0, 1)
        # an output column: None (all outputs pooled) or a non-negative int (checked against the
        # model's outputs when it runs)
        self.class_id = None if class_id is None else _validate.integer("class_id", class_id, 0,
                                                                        _validate.INT64_MAX)
        super().__init__(name, dtype)

    def _spec(self):
        return (self._code, self.thresholds)

    def _class_id(self):
        return -1 if self.class_id is None else int(self.class_id)

    def _state_size(self, n_out):
        return 3

    def get_config(self):
        return {"name": self.name, "thresholds": self.thresholds, "class_id": self.class_id}


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


class AUC(Metric):
    """Area under the ROC or PR curve from ``num_thresholds`` evenly spaced
    thresholds, with Keras's interpolation; counts accumulate in C.

    ``num_thresholds`` is an integer in [2, 1_000_000] (Keras's default is 200;
    the state holds 16 bytes per threshold, 16 MB at the cap)."""
    _code = 8
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
        super().__init__(name, dtype)

    def _spec(self):
        return (self._code, float(self.num_thresholds))

    def _state_size(self, n_out):
        return 2 * (self.num_thresholds + 1)

    def _finish(self, state):
        nt = self.num_thresholds
        pos, neg = state[:nt + 1], state[nt + 1:]
        # counts at threshold i: predictions in buckets > i are positive
        tp = np.cumsum(pos[::-1])[::-1][1:]
        fp = np.cumsum(neg[::-1])[::-1][1:]
        fn = pos.sum() - tp
        tn = neg.sum() - fp
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
        return {"name": self.name, "num_thresholds": self.num_thresholds, "curve": self.curve}


class F1Score(Metric):
    """F1 from per-class tp/fp/fn; ``average`` None (per class), 'micro', 'macro'
    or 'weighted'; ``threshold`` None means each row's argmax is the positive."""
    _code = 9
    _stateful = True
    _default_name = "f1_score"

    def __init__(self, average=None, threshold=None, name=None, dtype=None):
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError(f"Invalid `average` argument value. Expected one of: None, 'micro', "
                             f"'macro', 'weighted'. Received: average={average!r}")
        if threshold is not None:   # Keras: "It should verify 0 < threshold <= 1"
            threshold = _validate.number("threshold", threshold, 0, 1, low_open=True)
        self.average, self.threshold = average, threshold
        super().__init__(name, dtype)

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
        precision, recall = _div(tp, tp + fp), _div(tp, tp + fn)
        f1 = _div(2 * precision * recall, precision + recall)
        if self.average == "macro":
            return float(np.mean(f1))
        if self.average == "weighted":
            return float(np.sum(f1 * _div(support, support.sum())))
        return f1 if self.average is None else float(f1)

    def get_config(self):
        return {"name": self.name, "average": self.average, "threshold": self.threshold}


ALL_METRICS = {
    "binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "root_mean_squared_error": RootMeanSquaredError, "precision": Precision, "recall": Recall,
    "auc": AUC, "f1_score": F1Score,
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
