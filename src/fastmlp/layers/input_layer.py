"""``InputLayer`` and ``Input``: a model's inputs; ``InputSpec``: the shape and dtype an input
takes (``Model.export``'s ``input_signature``)."""
import numpy as np

from .base import KerasTensor, Layer, Node, _float_dtype_name, _shape_tuple

__all__ = ["InputLayer", "Input", "InputSpec"]

_INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


def _input_dtype(dtype):
    """An input's dtype name: a float type, or an integer type (ids for an Embedding;
    the engine carries them in the model's float type)."""
    if dtype is None:
        return None
    try:
        name = str(np.dtype(dtype))
    except TypeError:
        name = None
    return name if name in _INT_DTYPES else _float_dtype_name(dtype)


def _dtype_name(dtype):
    try:
        return str(np.dtype(dtype))
    except TypeError:
        return str(getattr(dtype, "name", dtype))


class InputSpec:
    """``keras.InputSpec``: the rank, shape and dtype an input takes, each None where any will
    do (``shape=(None, 784)``: any batch size).  fastmlp reads it as an ``input_signature``
    of ``Model.export``; ``shape`` sets ``ndim``."""

    def __init__(self, dtype=None, shape=None, ndim=None, max_ndim=None, min_ndim=None, axes=None,
                 allow_last_axis_squeeze=False, name=None, optional=False):
        self.dtype = None if dtype is None else _dtype_name(dtype)
        if shape is not None:
            if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
                raise TypeError(f"`shape` must be a tuple of integers or None. Received: shape={shape!r}")
            shape = tuple(None if d is None else int(d) for d in shape)
            ndim = len(shape)
        self.shape, self.ndim, self.max_ndim, self.min_ndim = shape, ndim, max_ndim, min_ndim
        self.name, self.optional = name, bool(optional)
        self.allow_last_axis_squeeze = bool(allow_last_axis_squeeze)
        axes = dict(axes or {})
        for k in axes:
            if not isinstance(k, int) or isinstance(k, bool):
                raise TypeError(f"`axes` maps axis indices (integers) to sizes. Received: axes={axes!r}")
        if axes and ndim is not None and max(axes) >= ndim:
            raise ValueError(f"Axis {max(axes)} is greater than the maximum allowed value: {ndim - 1}")
        self.axes = axes

    def __repr__(self):
        parts = [f"{k}={getattr(self, k)}" for k in ("dtype", "shape", "ndim", "max_ndim", "min_ndim")
                 if getattr(self, k) is not None]
        return f"InputSpec({', '.join(parts + ([f'axes={self.axes!r}'] if self.axes else []))})"

    def get_config(self):
        return {"dtype": self.dtype, "shape": self.shape, "ndim": self.ndim, "max_ndim": self.max_ndim,
                "min_ndim": self.min_ndim, "axes": self.axes, "optional": self.optional}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class InputLayer(Layer):
    """Declares one input of a model: ``InputLayer(shape=(784,))``.  ``Input``
    returns its symbolic output tensor, from which functional models are built."""
    _base_name = "input_layer"

    def __init__(self, shape=None, batch_size=None, dtype=None, name=None, sparse=None, ragged=None,
                 optional=False, **kwargs):
        if shape is None and "input_shape" in kwargs:
            shape = kwargs.pop("input_shape")
        if "batch_shape" in kwargs:
            batch_shape = kwargs.pop("batch_shape")
            if shape is not None:
                raise ValueError("Pass `shape` or `batch_shape` to InputLayer, not both")
            if batch_shape is not None:
                batch_shape = _shape_tuple(batch_shape, "batch_shape")
                if batch_size is None and batch_shape and batch_shape[0] is not None:
                    batch_size = batch_shape[0]
                shape = batch_shape[1:]
        for arg, value in (("sparse", sparse), ("ragged", ragged), ("optional", optional)):
            if value:
                raise ValueError(f"InputLayer({arg}=True) is not supported by fastmlp")
        dtype = _input_dtype(dtype)
        self._int_dtype = dtype if dtype in _INT_DTYPES else None
        super().__init__(name=name, dtype=None if self._int_dtype else dtype, **kwargs)
        if shape is None:
            raise ValueError("InputLayer needs a `shape`, e.g. InputLayer(shape=(784,))")
        self.shape = _shape_tuple(shape, "shape")
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                       or batch_size <= 0):
            raise ValueError(f"`batch_size` must be a positive integer or None. Received: batch_size={batch_size!r}")
        self.batch_size = batch_size
        self._input_shape_arg = self.shape
        self.built = True
        out = KerasTensor((batch_size,) + self.shape, self._int_dtype or self.dtype, name=self.name,
                          history=(self, 0, 0))
        self._inbound_nodes.append(Node(self, [], out))   # `self.output` (Layer) is this tensor

    @property
    def input(self):
        return self.output

    @property
    def batch_shape(self):
        return (self.batch_size,) + self.shape

    def get_config(self):
        return {"batch_shape": [self.batch_size] + list(self.shape), "dtype": self._int_dtype or self.dtype,
                "name": self.name}

    def __call__(self, *args, **kwargs):
        raise TypeError(f"An InputLayer ({self.name!r}) is not called on data: its output tensor is "
                        f"`layer.output` (or use `fastmlp.Input(shape=...)`)")


def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None, **kwargs):
    """The symbolic input of a model, as ``keras.Input(shape=(784,))``: a tensor
    to call layers on (functional models), or the first entry of a ``Sequential``."""
    dtype = _input_dtype(dtype)
    if batch_shape is not None:
        kwargs["batch_shape"] = batch_shape
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name, **kwargs).output
