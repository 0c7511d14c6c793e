"""``Identity`` and ``Reshape`` (to flat samples): no engine node, as Flatten
(the engine holds every sample as a flat row already)."""
import math

import numpy as np

from .base import Layer

__all__ = ["Identity", "Reshape"]


class Identity(Layer):
    """``keras.layers.Identity``: returns its input unchanged."""
    _base_name = "identity"
    format_minor = 3
    _any_sample_shape = True  # a Sequential may run it before a Flatten

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.built = True


class Reshape(Layer):
    """``keras.layers.Reshape`` to a flat sample shape: ``target_shape=(n,)``, or
    ``(-1,)`` for the sample's size.  fastmlp's engine computes on flat samples,
    so target shapes of more than one axis are not supported."""
    _base_name = "reshape"
    format_minor = 3
    _flattens = True          # to (n,): a Sequential's samples are flat after it

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        if isinstance(target_shape, (int, np.integer)) and not isinstance(target_shape, bool):
            target_shape = (target_shape,)
        try:
            dims = tuple(target_shape)
        except TypeError:
            raise ValueError(f"`target_shape` must be a tuple of integers. Received: "
                             f"target_shape={target_shape!r}") from None
        if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and (d > 0 or d == -1)
                   for d in dims) or not dims:
            raise ValueError(f"`target_shape` must be a tuple of positive integers (one entry may be -1). "
                             f"Received: target_shape={target_shape!r}")
        if len(dims) != 1:
            raise ValueError(f"fastmlp's Reshape makes flat samples only (target_shape=(n,) or (-1,)): its engine "
                             f"has no tensors of more than 2 axes. Received: target_shape={target_shape!r}")
        self.target_shape = tuple(int(d) for d in dims)
        self.built = True

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        sample = input_shape[1:]
        size = None if None in sample else math.prod(sample)
        n = self.target_shape[0]
        if size is not None and n != -1 and n != size:
            raise ValueError(f"total size of the new array must be unchanged, input_shape = {list(sample)}, "
                             f"output_shape = {list(self.target_shape)}")
        return (input_shape[0], size if n == -1 else n)

    def _check_input_shapes(self, shape):
        self.compute_output_shape(shape)

    def call(self, x, training=False):
        if x.ndim < 1:
            raise ValueError(f"Reshape expects a batch of samples; got a scalar")
        out_shape = self.compute_output_shape(x.shape)
        return x.reshape(out_shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("target_shape"), list):
            config["target_shape"] = tuple(config["target_shape"])
        return cls(**config)
