"""Losses with the Keras 3 names, arguments and reductions.

A loss reduces each sample over the last axis (mean for regression, hinge and
binary cross-entropy, sum for categorical losses) and the batch with Keras's
``sum_over_batch_size``: ``sum(loss_i * sample_weight_i) / batch_size``.
Inside ``fit`` the cross-entropies run in the stable fused form (softmax or
sigmoid + cross-entropy from the pre-activation); called standalone on
probabilities they clip as Keras does.
"""
import numpy as np

from . import _engine, _validate

__all__ = [
    "Loss", "MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError",
    "MeanSquaredLogarithmicError", "Huber", "LogCosh", "BinaryCrossentropy",
    "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "Hinge", "SquaredHinge",
    "CategoricalHinge", "KLDivergence", "Poisson", "get",
]


class Loss:
    """Base class: ``loss(y_true, y_pred, sample_weight=None)`` returns a float."""
    _code = None
    _default_name = None

    _REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "none", None)

    def __init__(self, name=None, reduction="sum_over_batch_size"):
        if not (reduction is None or isinstance(reduction, str)) or reduction not in self._REDUCTIONS:
            raise ValueError(f"Invalid value for argument `reduction`: {reduction!r}. "
                             f"Expected one of {list(self._REDUCTIONS)}")
        self.name = name or self._default_name
        self.reduction = reduction
        self.from_logits = False
        self.label_smoothing = 0.0

    @property
    def sparse(self):
        return False

    def _spec(self):
        return (self._code, int(self.from_logits), float(self.label_smoothing),
                float(getattr(self, "delta", 1.0)), int(self.reduction == "sum"))

    def prepare_targets(self, y, n_out, dtype):
        """Targets in the engine's layout: ``(Y dense (n, n_out) or None, y int64 (n,) or None)``."""
        y = np.asarray(y)
        if y.dtype.kind not in "biuf":
            raise TypeError(f"Targets must be numeric; got an array of dtype {y.dtype}")
        if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1 and n_out == 1):
            y = y.reshape(-1, 1)
        if y.ndim != 2 or y.shape[1] != n_out:
            raise ValueError(f"Targets have shape {y.shape}, but the model's output has {n_out} "
                             f"units: expected targets of shape (n, {n_out}) for loss {self.name!r}"
                             + (" (integer labels need loss='sparse_categorical_crossentropy')"
                                if n_out > 1 and y.ndim == 2 and y.shape[1] == 1 else ""))
        Y = np.ascontiguousarray(y, dtype=dtype)
        if not _engine.all_finite(Y):
            raise ValueError("Targets contain NaN or infinity")
        return Y, None

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The loss of a batch (a float), or per-sample losses with ``reduction='none'``.
        A 1-D ``y_pred`` is one sample, as in Keras (the last axis is the class axis)."""
        y_pred = np.asarray(y_pred)
        dtype = np.float64 if y_pred.dtype == np.float64 else np.float32
        y_true = np.asarray(y_true)
        if y_pred.ndim <= 1:
            y_pred = y_pred.reshape(1, -1)
            y_true = y_true.reshape(1) if self.sparse else y_true.reshape(1, -1)
        P = np.ascontiguousarray(y_pred.reshape(len(y_pred), -1), dtype=dtype)
        Y, y = self.prepare_targets(y_true, P.shape[1], dtype)
        w = None
        if sample_weight is not None:
            w = np.ascontiguousarray(np.broadcast_to(np.asarray(sample_weight, dtype=dtype).reshape(-1),
                                                     (P.shape[0],)))
        spec = self._spec()
        if self.reduction in ("none", None):
            return np.array([_engine.loss_forward_backward(
                spec, 0, P[i:i + 1], None, None if Y is None else Y[i:i + 1],
                None if y is None else y[i:i + 1], None if w is None else w[i:i + 1], 0.0)[0]
                for i in range(len(P))], dtype=dtype)
        total, _, _ = _engine.loss_forward_backward(spec, 0, P, None, Y, y, w, 0.0)
        if self.reduction == "sum":
            return float(total)
        return float(total / max(P.shape[0], 1))

    def get_config(self):
        cfg = {"name": self.name, "reduction": self.reduction}
        return cfg

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _loss_class(class_name, code, default_name, doc):
    def __init__(self, reduction="sum_over_batch_size", name=None):
        Loss.__init__(self, name=name, reduction=reduction)
    return type(class_name, (Loss,), {"__module__": __name__, "__init__": __init__, "_code": code,
                                      "_default_name": default_name, "__doc__": doc})


MeanSquaredError = _loss_class("MeanSquaredError", 0, "mean_squared_error", "mean((y - p)^2) over the last axis.")
MeanAbsoluteError = _loss_class("MeanAbsoluteError", 1, "mean_absolute_error", "mean(|y - p|) over the last axis.")
MeanAbsolutePercentageError = _loss_class("MeanAbsolutePercentageError", 2, "mean_absolute_percentage_error",
                                          "100 * mean(|y - p| / max(|y|, eps)).")
MeanSquaredLogarithmicError = _loss_class("MeanSquaredLogarithmicError", 3, "mean_squared_logarithmic_error",
                                          "mean((log(p + 1) - log(y + 1))^2).")
LogCosh = _loss_class("LogCosh", 5, "log_cosh", "mean(log(cosh(p - y))).")
CategoricalHinge = _loss_class("CategoricalHinge", 11, "categorical_hinge",
                               "max(max((1 - y) * p) - sum(y * p) + 1, 0).")
KLDivergence = _loss_class("KLDivergence", 12, "kl_divergence", "sum(y * log(y / p)), both clipped to [eps, 1].")
Poisson = _loss_class("Poisson", 13, "poisson", "mean(p - y * log(p + eps)).")


class Huber(Loss):
    """0.5 e^2 where |e| <= delta, else delta * (|e| - 0.5 delta); mean over the last axis.

    ``delta`` is a finite number > 0 (0 makes the loss identically zero, a negative
    delta makes it negative)."""
    _code = 4
    _default_name = "huber_loss"

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name=None):
        super().__init__(name=name, reduction=reduction)
        self.delta = _validate.number("delta", delta, low=0, low_open=True)

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


class _Hinge(Loss):
    def prepare_targets(self, y, n_out, dtype):
        Y, _ = super().prepare_targets(y, n_out, dtype)
        if np.all((Y == 0) | (Y == 1)):   # Keras converts {0, 1} labels to {-1, 1}
            Y = 2 * Y - 1
        return Y, None


class Hinge(_Hinge):
    """mean(max(1 - y * p, 0)); labels in {-1, 1} (or {0, 1}, converted)."""
    _code = 9
    _default_name = "hinge"

    def __init__(self, reduction="sum_over_batch_size", name=None):
        super().__init__(name=name, reduction=reduction)


class SquaredHinge(_Hinge):
    """mean(max(1 - y * p, 0)^2); labels in {-1, 1} (or {0, 1}, converted)."""
    _code = 10
    _default_name = "squared_hinge"

    def __init__(self, reduction="sum_over_batch_size", name=None):
        super().__init__(name=name, reduction=reduction)


def _check_smoothing(value):
    return _validate.number("label_smoothing", value, 0, 1)


class _Crossentropy(Loss):
    """The arguments binary and categorical cross-entropy share (in Keras neither
    class derives from the other: ``isinstance`` tells them apart)."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name=None):
        super().__init__(name=name, reduction=reduction)
        if isinstance(axis, bool) or axis != -1:
            raise ValueError(f"fastmlp's {type(self).__name__} reduces over the last axis (the classes): "
                             f"axis=-1 only. Received: axis={axis!r}")
        self.from_logits = bool(from_logits)
        self.label_smoothing = _check_smoothing(label_smoothing)
        self.axis = -1

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


class BinaryCrossentropy(_Crossentropy):
    """Binary cross-entropy, mean over the last axis; ``from_logits`` and ``label_smoothing`` as in Keras."""
    _code = 6
    _default_name = "binary_crossentropy"


class CategoricalCrossentropy(_Crossentropy):
    """-sum(y * log(p)) over one-hot targets; ``from_logits`` and ``label_smoothing`` as in Keras."""
    _code = 7
    _default_name = "categorical_crossentropy"


class SparseCategoricalCrossentropy(Loss):
    """Categorical cross-entropy over integer labels of shape (n,) or (n, 1)."""
    _code = 8
    _default_name = "sparse_categorical_crossentropy"

    def __init__(self, from_logits=False, reduction="sum_over_batch_size", name=None):
        super().__init__(name=name, reduction=reduction)
        self.from_logits = bool(from_logits)

    @property
    def sparse(self):
        return True

    def prepare_targets(self, y, n_out, dtype):
        y = np.asarray(y)
        if y.dtype.kind not in "biuf":
            raise TypeError(f"Sparse labels must be integers; got an array of dtype {y.dtype}")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"sparse_categorical_crossentropy expects integer labels of shape (n,) or "
                             f"(n, 1); got shape {y.shape} (one-hot targets need "
                             f"loss='categorical_crossentropy')")
        if y.dtype.kind == "f":
            if not np.all(np.isfinite(y)):
                raise ValueError("Labels contain NaN or infinity")
            if np.any(y != np.round(y)):
                raise ValueError("Sparse labels must be integral; got non-integer values")
        labels = np.ascontiguousarray(y, dtype=np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= n_out):
            raise ValueError(f"Sparse labels must lie in [0, {n_out}) for a model with {n_out} "
                             f"output units; got values in [{labels.min()}, {labels.max()}]")
        return None, labels

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


ALL_LOSSES = {
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "mean_absolute_percentage_error": MeanAbsolutePercentageError, "mape": MeanAbsolutePercentageError,
    "mean_squared_logarithmic_error": MeanSquaredLogarithmicError, "msle": MeanSquaredLogarithmicError,
    "huber": Huber, "huber_loss": Huber, "log_cosh": LogCosh, "logcosh": LogCosh,
    "binary_crossentropy": BinaryCrossentropy, "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy, "hinge": Hinge,
    "squared_hinge": SquaredHinge, "categorical_hinge": CategoricalHinge,
    "kl_divergence": KLDivergence, "kld": KLDivergence, "kullback_leibler_divergence": KLDivergence,
    "poisson": Poisson,
}
_CLASSES = {cls.__name__: cls for cls in ALL_LOSSES.values()}


def _make_function(cls):
    def fn(y_true, y_pred):
        """Per-sample losses, as Keras's loss functions return (a scalar for one 1-D sample)."""
        values = cls(reduction="none")(y_true, np.asarray(y_pred, dtype=np.float64))
        return values[0] if np.ndim(y_pred) <= 1 else values
    fn.__name__ = cls._default_name
    return fn


for _name, _cls in list(ALL_LOSSES.items()):
    globals()[_name] = _make_function(_cls)


def get(identifier):
    """A Loss from a name, a class, a config or an instance."""
    if isinstance(identifier, Loss):
        if identifier._code is None:
            _python_loss(identifier)
        return identifier
    if isinstance(identifier, str):
        cls = ALL_LOSSES.get(identifier) or _CLASSES.get(identifier)
        if cls is None:
            from . import _serialization
            custom = _serialization.get_registered_object(identifier)
            if custom is not None:
                return get(custom)
            raise ValueError(f"Unknown loss: {identifier!r}. Expected one of {sorted(ALL_LOSSES)}")
        loss = cls()
        if identifier in ALL_LOSSES:
            loss.name = identifier if identifier in (cls._default_name,) else cls._default_name
        return loss
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return get(identifier())
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if callable(identifier) and getattr(identifier, "__name__", None) in ALL_LOSSES \
            and getattr(identifier, "__module__", None) == __name__:
        return get(identifier.__name__)
    if callable(identifier):
        _python_loss(identifier)
    raise ValueError(f"Could not interpret loss {identifier!r}: expected one of {sorted(ALL_LOSSES)} "
                     f"or a fastmlp.losses.Loss (custom Python losses cannot run inside the engine)")


def _python_loss(fn):
    what = f"the {type(fn).__name__} subclass of Loss" if isinstance(fn, Loss) else \
        f"the Python function {getattr(fn, '__name__', fn)!r}"
    raise NotImplementedError(
        f"fastmlp computes losses inside its C engine, so {what} cannot be used as a training loss. Use one "
        f"of the built-in losses: {sorted(set(ALL_LOSSES) - {'mse', 'mae', 'mape', 'msle', 'kld', 'logcosh'})}, "
        f"or a fastmlp.losses class (e.g. Huber(delta=...), CategoricalCrossentropy(label_smoothing=...)).")


def serialize(loss):
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def deserialize(config):
    cls = _CLASSES.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"Unknown loss class: {config.get('class_name')!r}")
    return cls.from_config(config.get("config", {}))
