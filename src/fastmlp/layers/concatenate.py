"""``Concatenate`` and ``concatenate(...)``; engine kind ``concatenate`` (csrc/kinds/concatenate.c)."""
import numpy as np

from .base import Layer

__all__ = ["Concatenate", "concatenate"]


class Concatenate(Layer):
    """``keras.layers.Concatenate``: its inputs side by side along the feature
    axis (``axis=-1``, the only axis fastmlp's flat rows have)."""
    _base_name = "concatenate"
    engine_kind = "concatenate"
    format_minor = 3
    _takes_list = True

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if axis not in (-1, 1):
            raise ValueError(f"fastmlp's Concatenate joins the feature axis (-1). Received: axis={axis!r}")
        self.axis = axis
        self.built = True

    def _check_input_shapes(self, shapes):
        shapes = [tuple(s) for s in shapes]
        if not shapes:
            raise ValueError("A `Concatenate` layer needs at least one input")
        for s in shapes:
            if len(s) != 2 or s[-1] is None:
                raise ValueError(f"fastmlp's Concatenate takes inputs of shape (samples, features); "
                                 f"received shapes {shapes}")

    def compute_output_shape(self, input_shapes):
        return (input_shapes[0][0], sum(s[-1] for s in input_shapes))

    def _eager_call(self, x, training):
        if not isinstance(x, (list, tuple)):
            raise ValueError("A `Concatenate` layer should be called on a list of inputs")
        arrays = [np.asarray(a, dtype=self.dtype) for a in x]
        self._check_input_shapes([a.shape for a in arrays])
        return np.concatenate(arrays, axis=-1)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def concatenate(inputs, axis=-1, **kwargs):
    """``Concatenate(axis=axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)
