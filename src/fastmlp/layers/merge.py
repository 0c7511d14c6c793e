"""Element-wise merges: ``Add``, ``Subtract``, ``Multiply``, ``Average``,
``Maximum``, ``Minimum`` and their functions ``add(...)`` etc.; engine kinds of
the same names (csrc/kinds/merge.c)."""
import numpy as np

from .base import Layer

__all__ = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
           "add", "subtract", "multiply", "average", "maximum", "minimum"]


class _Merge(Layer):
    _takes_list = True
    format_minor = 3

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.built = True

    def _check_input_shapes(self, shapes):
        shapes = [tuple(s) for s in shapes]
        if not shapes:
            raise ValueError(f"A `{type(self).__name__}` layer needs at least one input")
        for s in shapes[1:]:
            if s[1:] != shapes[0][1:]:
                raise ValueError(f"Inputs have incompatible shapes. Received shapes {shapes[0][1:]} and {s[1:]}")

    def compute_output_shape(self, input_shapes):
        return tuple(input_shapes[0])

    def _eager_call(self, x, training):
        if not isinstance(x, (list, tuple)):
            raise ValueError(f"A merge layer ({type(self).__name__}) should be called on a list of inputs")
        arrays = [np.asarray(a, dtype=self.dtype) for a in x]
        self._check_input_shapes([a.shape for a in arrays])
        return self._merge(arrays).astype(self.dtype, copy=False)


class Add(_Merge):
    """``keras.layers.Add``: the sum of its inputs."""
    _base_name = "add"
    engine_kind = "add"

    def _merge(self, xs):
        return sum(xs[1:], xs[0].copy())


class Subtract(_Merge):
    """``keras.layers.Subtract``: ``inputs[0] - inputs[1]``."""
    _base_name = "subtract"
    engine_kind = "subtract"

    def _check_input_shapes(self, shapes):
        if len(shapes) != 2:
            raise ValueError(f"A `Subtract` layer should be called on exactly 2 inputs. "
                             f"Received: input_shape={list(shapes)}")
        super()._check_input_shapes(shapes)

    def _merge(self, xs):
        return xs[0] - xs[1]


class Multiply(_Merge):
    """``keras.layers.Multiply``: the element-wise product of its inputs."""
    _base_name = "multiply"
    engine_kind = "multiply"

    def _merge(self, xs):
        out = xs[0].copy()
        for x in xs[1:]:
            out = out * x
        return out


class Average(_Merge):
    """``keras.layers.Average``: the element-wise mean of its inputs."""
    _base_name = "average"
    engine_kind = "average"

    def _merge(self, xs):
        return sum(xs[1:], xs[0].copy()) * (1.0 / len(xs))


class Maximum(_Merge):
    """``keras.layers.Maximum``: the element-wise maximum of its inputs."""
    _base_name = "maximum"
    engine_kind = "maximum"

    def _merge(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = np.maximum(out, x)
        return out


class Minimum(_Merge):
    """``keras.layers.Minimum``: the element-wise minimum of its inputs."""
    _base_name = "minimum"
    engine_kind = "minimum"

    def _merge(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = np.minimum(out, x)
        return out


def add(inputs, **kwargs):
    """``Add(**kwargs)(inputs)``."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    """``Subtract(**kwargs)(inputs)``."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    """``Multiply(**kwargs)(inputs)``."""
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    """``Average(**kwargs)(inputs)``."""
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    """``Maximum(**kwargs)(inputs)``."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    """``Minimum(**kwargs)(inputs)``."""
    return Minimum(**kwargs)(inputs)
