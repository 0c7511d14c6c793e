"""``Normalization`` (``adapt`` computes its mean and variance); engine kind
``normalization`` (csrc/kinds/normalization.c)."""

import numpy as np

from .. import config as _config
from .base import Layer, WeightSpec

__all__ = ["Normalization"]


def _check_last_axis(layer, axis, ndim):
    """Raise unless ``axis`` (an int or a one-entry list/tuple) names the last axis of a
    ``ndim``-D input (batch axis included): fastmlp normalizes features only."""
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    ok = len(axes) == 1 and isinstance(axes[0], (int, np.integer)) and not isinstance(axes[0], bool) \
        and (ndim is None or axes[0] in (-1, ndim - 1))
    if ok and ndim is None:
        ok = axes[0] == -1 or axes[0] >= 1
    if not ok:
        raise ValueError(f"fastmlp's {type(layer).__name__} works over the last axis only (axis=-1); received "
                         f"axis={axis!r}" + ("" if ndim is None else f" for {ndim}-D inputs"))


def _constant(value):
    return lambda shape, dtype=None: np.broadcast_to(np.asarray(value, dtype=dtype or "float32"), shape).copy()


def _batches(data):
    """The batches of ``data`` for ``adapt``: an array is one batch; a PyDataset-like
    object (``__len__`` and ``__getitem__``) gives ``data[i]``; an iterable gives its
    items.  A batch that is a tuple ``(x, y, ...)`` stands for ``x``."""
    if isinstance(data, np.ndarray) or (hasattr(data, "__array__") and not isinstance(data, (list, tuple))):
        yield data
        return
    if isinstance(data, (str, bytes, dict)) or data is None:
        raise TypeError(f"Unsupported data type: {type(data).__name__}. `adapt` takes a NumPy array, a "
                        f"PyDataset or an iterable of batches (e.g. a list of arrays or a generator).")
    if hasattr(data, "__len__") and hasattr(data, "__getitem__") and not isinstance(data, (list, tuple)):
        items = (data[i] for i in range(len(data)))
    elif hasattr(data, "__iter__"):
        items = iter(data)
    else:
        raise TypeError(f"Unsupported data type: {type(data).__name__}. `adapt` takes a NumPy array, a "
                        f"PyDataset or an iterable of batches (e.g. a list of arrays or a generator).")
    for batch in items:
        yield batch[0] if isinstance(batch, tuple) else batch


class Normalization(Layer):
    """``keras.layers.Normalization`` over the last axis: ``(x - mean) /
    max(sqrt(variance), epsilon)`` (``epsilon`` is ``keras.config.epsilon()``,
    1e-7), or ``mean + x * max(sqrt(variance), epsilon)`` with ``invert=True``.

    The mean and variance come from ``mean``/``variance`` (then they are part of
    the config, not weights) or from ``adapt(data)``, which stores them in the
    non-trainable weights ``mean``, ``variance`` and ``count`` (Keras's three;
    ``count`` stays 0, as in Keras).  Per-feature statistics of the last axis
    are the only ones fastmlp supports (``axis=-1``)."""
    _base_name = "normalization"
    engine_kind = "normalization"
    format_minor = 3
    _any_sample_shape = True  # a Sequential may run it before a Flatten

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        if axis is None or (isinstance(axis, (list, tuple)) and len(axis) == 0):
            raise ValueError("fastmlp's Normalization keeps per-feature statistics of the last axis only; "
                             f"axis=None (one scalar mean and variance) is not supported. Received: axis={axis!r}")
        _check_last_axis(self, axis, None)
        self.axis = tuple(axis) if isinstance(axis, (list, tuple)) else (int(axis),)
        if (mean is None) != (variance is None):
            raise ValueError("When setting values directly, both `mean` and `variance` must be set. "
                             f"Received: mean={mean} and variance={variance}")
        if mean is not None:
            for name, v in (("mean", mean), ("variance", variance)):
                a = np.asarray(v)
                if a.dtype.kind not in "biuf" or not np.all(np.isfinite(a)):
                    raise ValueError(f"`{name}` must be finite numbers. Received: {name}={v!r}")
            if np.shape(mean) != np.shape(variance):
                raise ValueError("When setting values directly, `mean` and `variance` must have the same shape. "
                                 f"Received: mean shape {np.shape(mean)} and variance shape {np.shape(variance)}")
            if np.ndim(mean) > 1:
                raise ValueError(f"The rank of `mean` must be less than or equal to the number of axes (1). "
                                 f"Received: mean shape {np.shape(mean)} for axis {self.axis}")
            if np.any(np.asarray(variance) < 0):
                raise ValueError(f"`variance` must be non-negative. Received: variance={variance!r}")
        self.input_mean, self.input_variance = mean, variance
        self.invert = bool(invert)
        self.mean = self.variance = self.count = None

    def _features(self, shape):
        shape = tuple(shape)
        if len(shape) < 2:
            raise ValueError(f"Normalization expects inputs of shape (samples, ..., features); got shape {shape}")
        _check_last_axis(self, self.axis, len(shape))
        if shape[-1] is None:
            raise ValueError(f"All `axis` values to be kept must have a known shape. Received axis={self.axis}, "
                             f"inputs.shape={shape}")
        n = int(shape[-1])
        if self.input_mean is not None and np.ndim(self.input_mean) == 1 and np.shape(self.input_mean)[0] not in (1, n):
            raise ValueError(f"`mean` of shape {np.shape(self.input_mean)} does not broadcast to the {n} features "
                             f"of inputs of shape {shape}")
        if self.built and self._wspecs and self._wspecs[0].shape != (n,):
            raise ValueError(f"The layer was built for {self._wspecs[0].shape[0]} features; got inputs of "
                             f"shape {shape}")
        return n

    def _check_input_shapes(self, shape):
        self._features(shape)

    def _weight_specs(self, input_shape):
        n = (self._features(input_shape),)
        if self.input_mean is not None:
            return [WeightSpec("mean", n, False, _constant(self.input_mean), constant=True),
                    WeightSpec("variance", n, False, _constant(self.input_variance), constant=True)]
        return [WeightSpec("mean", n, False, _constant(0.0)), WeightSpec("variance", n, False, _constant(1.0)),
                WeightSpec("count", (), False, _constant(0.0))]

    def _engine_node(self, input_shape):
        return {"param": self._features(input_shape), "epsilon": _config.epsilon(),
                "rate": 1.0 if self.invert else 0.0}

    def adapt(self, data):
        """Set ``mean`` and ``variance`` to the per-feature mean and (biased)
        variance of ``data``: an array of shape ``(samples, ..., features)``, a
        PyDataset or an iterable of such batches (``x`` or ``(x, y, ...)``)."""
        if self.input_mean is not None:
            raise ValueError("This Normalization layer was given `mean` and `variance`; adapt() cannot change them")
        total_mean = total_var = None
        count = 0
        for batch in _batches(data):
            x = np.asarray(batch)
            if x.dtype.kind not in "biuf":
                raise TypeError(f"adapt() expects numeric arrays; got a batch of dtype {x.dtype}")
            if x.ndim < 2:
                raise ValueError(f"adapt() expects batches of shape (samples, ..., features); got shape {x.shape}")
            if x.size == 0:
                continue
            if not np.all(np.isfinite(x)):
                raise ValueError("adapt() received data with NaN or infinite values")
            if total_mean is None:
                if not self.built:
                    self.build((None,) + x.shape[1:])
                n = self._features((None,) + x.shape[1:])
            elif x.shape[-1] != n:
                raise ValueError(f"adapt() yielded a batch with incompatible shape: {n} features expected, got "
                                 f"shape {x.shape}")
            else:
                self._features((None,) + x.shape[1:])
            x = x.reshape(-1, n).astype(np.float64)
            b_mean, b_var, b_count = x.mean(axis=0), x.var(axis=0), len(x)
            if total_mean is None:
                total_mean, total_var, count = b_mean, b_var, b_count
                continue
            # merge the batch into the running statistics (as Keras does, batch by batch)
            count += b_count
            w_new = b_count / count
            w_old = 1.0 - w_new
            mean = total_mean * w_old + b_mean * w_new
            total_var = (total_var + (total_mean - mean) ** 2) * w_old + (b_var + (b_mean - mean) ** 2) * w_new
            total_mean = mean
        if total_mean is None:
            raise ValueError("adapt() received no data (an empty array or no batches); expected at least one "
                             "non-empty batch")
        self.mean[...] = total_mean
        self.variance[...] = total_var

    def call(self, x, training=False):
        if x.ndim < 2:
            raise ValueError(f"Normalization expects inputs of shape (samples, ..., features); got shape {x.shape}")
        s = np.maximum(np.sqrt(self.variance), np.asarray(_config.epsilon(), dtype=self.dtype))
        out = self.mean + x * s if self.invert else (x - self.mean) / s
        return out.astype(self.dtype)

    def get_config(self):
        def plain(v):
            return None if v is None else np.asarray(v).tolist()
        return {**super().get_config(), "axis": self.axis, "invert": self.invert,
                "mean": plain(self.input_mean), "variance": plain(self.input_variance)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("axis"), list):
            config["axis"] = tuple(config["axis"])
        return cls(**config)
