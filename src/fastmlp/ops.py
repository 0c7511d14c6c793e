"""Operations: ``matmul`` on the engine's GEMM, and the NumPy-backed subset of
``keras.ops`` that Keras programs use on inputs and outputs (creation,
conversion, math and reductions, shapes, ``softmax``/``sigmoid``/``relu``/
``one_hot``).  They take and return NumPy arrays."""
import numpy as np

from . import _engine
from . import config as _config

__all__ = ["matmul", "ones", "zeros", "full", "arange", "linspace", "eye", "convert_to_numpy",
           "convert_to_tensor", "cast", "sum", "mean", "max", "min", "argmax", "argmin", "exp", "log", "sqrt",
           "square", "abs", "clip", "where", "top_k", "reshape", "expand_dims", "squeeze", "concatenate",
           "stack", "shape", "softmax", "sigmoid", "relu", "one_hot"]

_builtin_sum, _builtin_max, _builtin_min, _builtin_abs = sum, max, min, abs


def _dtype(dtype):
    return np.dtype(_config.floatx() if dtype is None else dtype)


def ones(shape, dtype=None):
    return np.ones(shape, dtype=_dtype(dtype))


def zeros(shape, dtype=None):
    return np.zeros(shape, dtype=_dtype(dtype))


def _default_dtype(*values):
    """Keras's default result type: int32 for integer Python values, floatx for floats."""
    return np.dtype(_config.floatx()) if any(np.asarray(v).dtype.kind == "f" for v in values if v is not None) \
        else np.dtype("int32")


def full(shape, fill_value, dtype=None):
    return np.full(shape, fill_value, dtype=_default_dtype(fill_value) if dtype is None else np.dtype(dtype))


def arange(start, stop=None, step=1, dtype=None):
    return np.arange(start, stop, step,
                     dtype=_default_dtype(start, stop, step) if dtype is None else np.dtype(dtype))


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    return np.linspace(start, stop, num, endpoint=endpoint, retstep=retstep, dtype=_dtype(dtype), axis=axis)


def eye(N, M=None, k=0, dtype=None):
    return np.eye(N, M, k, dtype=_dtype(dtype))


def convert_to_numpy(x):
    return np.asarray(x)


def convert_to_tensor(x, dtype=None, sparse=None, ragged=None):
    if sparse or ragged:
        raise ValueError("convert_to_tensor(sparse=True / ragged=True) is not supported by fastmlp")
    return np.asarray(x, dtype=None if dtype is None else np.dtype(dtype))


def cast(x, dtype):
    return np.asarray(x).astype(np.dtype(dtype))


def sum(x, axis=None, keepdims=False):   # noqa: A001  (keras.ops names)
    return np.sum(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    return np.mean(x, axis=axis, keepdims=keepdims)


def max(x, axis=None, keepdims=False, initial=None):   # noqa: A001
    return np.max(x, axis=axis, keepdims=keepdims, **({} if initial is None else {"initial": initial}))


def min(x, axis=None, keepdims=False, initial=None):   # noqa: A001
    return np.min(x, axis=axis, keepdims=keepdims, **({} if initial is None else {"initial": initial}))


def argmax(x, axis=None, keepdims=False):
    return np.argmax(x, axis=axis, keepdims=keepdims).astype(np.int32)


def argmin(x, axis=None, keepdims=False):
    return np.argmin(x, axis=axis, keepdims=keepdims).astype(np.int32)


def exp(x):
    return np.exp(x)


def log(x):
    return np.log(x)


def sqrt(x):
    return np.sqrt(x)


def square(x):
    return np.square(x)


def abs(x):   # noqa: A001
    return np.abs(x)


def clip(x, x_min, x_max):
    return np.clip(x, x_min, x_max)


def where(condition, x1=None, x2=None):
    if x1 is None and x2 is None:
        return np.nonzero(condition)
    if x1 is None or x2 is None:
        raise ValueError("`where` takes both x1 and x2, or neither")
    return np.where(condition, x1, x2)


def top_k(x, k, sorted=True):   # noqa: A002
    """The k largest values along the last axis and their indices (ties: the lower index first)."""
    x = np.asarray(x)
    idx = np.argsort(-x, axis=-1, kind="stable")[..., :k]
    if not sorted:
        idx = np.sort(idx, axis=-1)
    return np.take_along_axis(x, idx, axis=-1), idx


def reshape(x, newshape):
    return np.reshape(x, newshape)


def expand_dims(x, axis):
    return np.expand_dims(x, axis)


def squeeze(x, axis=None):
    return np.squeeze(x, axis=axis)


def concatenate(xs, axis=0):
    return np.concatenate(xs, axis=axis)


def stack(x, axis=0):
    return np.stack(x, axis=axis)


def shape(x):
    return tuple(np.shape(x))


def softmax(x, axis=-1):
    from . import activations
    return activations.softmax(x, axis=axis)


def sigmoid(x):
    from . import activations
    return activations.sigmoid(x)


def relu(x):
    return np.maximum(x, 0)


def one_hot(x, num_classes, axis=-1, dtype=None, sparse=False):
    if sparse:
        raise ValueError("one_hot(sparse=True) is not supported by fastmlp")
    x = np.asarray(x).astype(np.int64)
    out = (x[..., None] == np.arange(num_classes)).astype(_dtype(dtype))   # out-of-range labels: all zero
    return np.moveaxis(out, -1, axis) if axis != -1 else out


def matmul(a, b, out=None):
    """``a @ b`` for 2-D float32/float64 arrays on fastmlp's GEMM (numpy semantics).

    Inputs of other orders or strides are copied once to C order; mixed dtypes
    promote as numpy does (to float64 when either is float64).
    """
    fast = _engine.matmul_fast(a, b, out)
    if fast is not None:
        return fast
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"matmul expects 2-D arrays; got shapes {a.shape} and {b.shape}")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} not aligned: "
                         f"{a.shape[1]} (dim 1) != {b.shape[0]} (dim 0)")
    for name, arr in (("a", a), ("b", b)):
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"matmul: `{name}` must be numeric; got dtype {arr.dtype}")
    dtype = np.float64 if np.result_type(a.dtype, b.dtype, np.float32) == np.float64 else np.float32
    # a transposed C-order view is an F-order array: use the transpose flag instead of copying
    ta = not a.flags.c_contiguous and a.T.flags.c_contiguous and a.dtype == dtype
    tb = not b.flags.c_contiguous and b.T.flags.c_contiguous and b.dtype == dtype
    A = a.T if ta else np.ascontiguousarray(a, dtype=dtype)
    B = b.T if tb else np.ascontiguousarray(b, dtype=dtype)
    shape = (a.shape[0], b.shape[1])
    if out is None:
        out = np.empty(shape, dtype=dtype)
    elif not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != dtype \
            or not out.flags.c_contiguous:
        raise ValueError(f"`out` must be a C-contiguous {np.dtype(dtype).name} array of shape {shape}")
    return _engine.gemm(ta, tb, 1.0, A, B, 0.0, out)
