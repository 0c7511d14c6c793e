"""``Rescaling``: ``x * scale + offset``; engine kind ``rescaling`` (csrc/kinds/normalization.c)."""
import math

import numpy as np

from .base import Layer, WeightSpec
from .normalization import _constant

__all__ = ["Rescaling"]


def _numeric(name, value):
    """``value`` as a float array (a scalar, a list, an array or Keras's serialized
    ``{"class_name": "__numpy__", ...}``), else ValueError naming the argument."""
    if isinstance(value, dict) and value.get("class_name") == "__numpy__":
        value = (value.get("config") or {}).get("value")
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        a = None
    if a is None or isinstance(value, (bool, str, bytes)) or not np.all(np.isfinite(a)):
        raise ValueError(f"`{name}` must be a finite number or an array of them. Received: {name}={value!r}")
    return a


class Rescaling(Layer):
    """``keras.layers.Rescaling``: ``x * scale + offset``, ``scale`` and ``offset``
    numbers or arrays that broadcast against the sample shape (e.g. one per
    feature).  They are config values, not weights; the engine keeps them,
    broadcast to the sample's width, beside the model's weights."""
    _base_name = "rescaling"
    engine_kind = "rescaling"
    format_minor = 3
    _any_sample_shape = True  # a Sequential may run it before a Flatten

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self._scale, self._offset = _numeric("scale", scale), _numeric("offset", offset)
        self.scale = scale.tolist() if isinstance(scale, np.ndarray) else scale
        self.offset = offset.tolist() if isinstance(offset, np.ndarray) else offset
        if isinstance(scale, dict):
            self.scale = self._scale.tolist()
        if isinstance(offset, dict):
            self.offset = self._offset.tolist()

    def _sample_shape(self, input_shape):
        sample = tuple(input_shape)[1:]
        if not sample or None in sample:
            raise ValueError(f"Rescaling needs a known sample shape; got input shape {tuple(input_shape)}")
        for name, a in (("scale", self._scale), ("offset", self._offset)):
            try:
                ok = a.ndim <= len(sample) and np.broadcast_shapes(a.shape, sample) == sample
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"`{name}` of shape {a.shape} does not broadcast to the sample shape {sample}")
        return sample

    def _check_input_shapes(self, shape):
        self._sample_shape(shape)

    def _weight_specs(self, input_shape):
        sample = self._sample_shape(input_shape)
        n = (math.prod(sample),)
        return [WeightSpec("scale_values", n, False, _constant(np.broadcast_to(self._scale, sample).ravel()),
                           constant=True),
                WeightSpec("offset_values", n, False, _constant(np.broadcast_to(self._offset, sample).ravel()),
                           constant=True)]

    def _engine_node(self, input_shape):
        return {"param": math.prod(self._sample_shape(input_shape))}

    def call(self, x, training=False):
        dt = self.dtype
        return (x.astype(dt) * self._scale.astype(dt) + self._offset.astype(dt)).astype(dt)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}
