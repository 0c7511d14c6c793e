"""``PReLU``: a ReLU with learned slopes; engine kind ``prelu`` (csrc/kinds/prelu.c)."""
import math

import numpy as np

from .. import initializers, regularizers
from .base import Layer, WeightSpec

__all__ = ["PReLU"]


class PReLU(Layer):
    """``keras.layers.PReLU``: ``x`` above 0 and ``alpha * x`` below, ``alpha``
    trainable, one per feature (weight ``alpha`` of shape ``input_shape[1:]``,
    initialized to zeros as in Keras).  ``shared_axes`` may name leading axes of
    the sample (e.g. ``[1]`` for ``(None, steps, features)``), which then share
    one slope per remaining position."""
    _base_name = "p_re_lu"
    engine_kind = "prelu"
    format_minor = 3

    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None,
                 shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        if alpha_constraint is not None:
            raise ValueError("PReLU(alpha_constraint=...) is not supported by fastmlp")
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        if shared_axes is None:
            self.shared_axes = None
        else:
            axes = [shared_axes] if isinstance(shared_axes, int) else list(shared_axes)
            if not all(isinstance(a, int) and not isinstance(a, bool) and a >= 1 for a in axes):
                raise ValueError(f"`shared_axes` must be positive axis indices. Received: shared_axes={shared_axes!r}")
            self.shared_axes = sorted(set(axes))
        self.alpha = None

    def _alpha_shape(self, input_shape):
        shape = list(tuple(input_shape)[1:])
        if None in shape:
            raise ValueError(f"PReLU needs a fully known sample shape; got {tuple(input_shape)}")
        for a in self.shared_axes or []:
            if a > len(shape):
                raise ValueError(f"shared axis {a} is outside the input shape {tuple(input_shape)}")
            shape[a - 1] = 1
        # the engine repeats the slopes along the row: shared axes must lead
        ones = [d == 1 and i + 1 in (self.shared_axes or []) for i, d in enumerate(shape)]
        if any(ones[i] and not all(ones[:i]) for i in range(len(ones))):
            raise ValueError(f"fastmlp's PReLU shares leading axes only; received shared_axes={self.shared_axes} "
                             f"for input shape {tuple(input_shape)}")
        return tuple(shape)

    def _check_input_shapes(self, shape):
        self._alpha_shape(shape)

    def _weight_specs(self, input_shape):
        return [WeightSpec("alpha", self._alpha_shape(input_shape), True, self.alpha_initializer,
                           self.alpha_regularizer)]

    def _engine_node(self, input_shapes):
        return {"param": math.prod(self._alpha_shape(input_shapes))}

    def call(self, x, training=False):
        return np.where(x > 0, x, self.alpha * x).astype(self.dtype)

    def get_config(self):
        return {**super().get_config(),
                "alpha_initializer": initializers.serialize(self.alpha_initializer),
                "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
                "alpha_constraint": None, "shared_axes": self.shared_axes}
