"""``LayerNormalization`` and ``UnitNormalization``: each sample's features
normalized; engine kinds ``layer_normalization`` and ``unit_normalization``
(csrc/kinds/layer_norm.c)."""
import numpy as np

from .. import initializers, regularizers
from .base import Layer, WeightSpec, _check_number
from .normalization import _check_last_axis

__all__ = ["LayerNormalization", "UnitNormalization"]


def _axis_arg(axis):
    if isinstance(axis, (list, tuple)):
        return list(axis)
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
        return int(axis)
    raise TypeError(f"Expected an int or a list/tuple of ints for the argument 'axis', but received: {axis!r}")


def _last_features(layer, shape):
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"{type(layer).__name__} expects inputs of shape (samples, ..., features); got {shape}")
    _check_last_axis(layer, layer.axis, len(shape))
    if shape[-1] is None:
        raise ValueError(f"{type(layer).__name__} needs a known last axis; got input shape {shape}")
    return int(shape[-1])


class LayerNormalization(Layer):
    """``keras.layers.LayerNormalization`` over the last axis:
    ``gamma * (x - mean) / sqrt(var + epsilon) + beta`` with each sample's mean
    and biased variance over its features; ``gamma`` (``scale``) and ``beta``
    (``center``) are trainable, one per feature."""
    _base_name = "layer_normalization"
    engine_kind = "layer_normalization"
    format_minor = 3
    _any_sample_shape = True  # a Sequential may run it before a Flatten
    _engine_weights = ("gamma", "beta")   # the node's w_off and b_off, either may be absent

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, rms_scaling=False, **kwargs):
        super().__init__(**kwargs)
        if rms_scaling:
            raise ValueError("LayerNormalization(rms_scaling=True) is not supported by fastmlp (Keras deprecates "
                             "it too)")
        for arg, value in (("beta_constraint", beta_constraint), ("gamma_constraint", gamma_constraint)):
            if value is not None:
                raise ValueError(f"LayerNormalization({arg}=...) is not supported by fastmlp")
        self.axis = _axis_arg(axis)
        _check_last_axis(self, self.axis, None)
        self.epsilon = _check_number("epsilon", epsilon, low=0)
        self.center, self.scale, self.rms_scaling = bool(center), bool(scale), False
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.gamma = self.beta = None

    def _check_input_shapes(self, shape):
        _last_features(self, shape)

    def _weight_specs(self, input_shape):
        n = (_last_features(self, input_shape),)
        specs = []
        if self.scale:
            specs.append(WeightSpec("gamma", n, True, self.gamma_initializer, self.gamma_regularizer))
        if self.center:
            specs.append(WeightSpec("beta", n, True, self.beta_initializer, self.beta_regularizer))
        return specs

    def _listify_axis(self):   # Keras keeps the axis as a sorted list once built
        self.axis = sorted(self.axis) if isinstance(self.axis, list) else [self.axis]

    def build(self, input_shape):
        super().build(input_shape)
        self._listify_axis()

    def _adopt(self, input_shape, views):
        super()._adopt(input_shape, views)
        self._listify_axis()

    def _engine_node(self, input_shape):
        return {"param": _last_features(self, input_shape), "epsilon": self.epsilon}

    def call(self, x, training=False):
        mean = x.mean(axis=-1, keepdims=True)
        var = x.var(axis=-1, keepdims=True)
        out = (x - mean) / np.sqrt(var + self.epsilon)
        if self.gamma is not None:
            out = out * self.gamma
        if self.beta is not None:
            out = out + self.beta
        return out.astype(self.dtype)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, "rms_scaling": False,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
                "beta_constraint": None, "gamma_constraint": None}


class UnitNormalization(Layer):
    """``keras.layers.UnitNormalization`` over the last axis: each sample's
    features divided by their L2 norm, ``x * min(1 / sqrt(sum(x**2)), 1e12)``."""
    _base_name = "unit_normalization"
    engine_kind = "unit_normalization"
    format_minor = 3
    _any_sample_shape = True  # a Sequential may run it before a Flatten

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        try:
            self.axis = _axis_arg(axis)
        except TypeError:
            raise TypeError(f"Invalid value for `axis` argument: expected an int or a list/tuple of ints. "
                            f"Received: axis={axis!r}") from None
        _check_last_axis(self, self.axis, None)
        self.built = True

    def _check_input_shapes(self, shape):
        _last_features(self, shape)

    def _engine_node(self, input_shape):
        return {"param": _last_features(self, input_shape)}

    def call(self, x, training=False):
        ss = np.sum(np.square(x, dtype=np.float64), axis=-1, keepdims=True)
        with np.errstate(divide="ignore"):
            inv = np.minimum(1.0 / np.sqrt(ss), 1e12)
        return (x * inv).astype(self.dtype)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
