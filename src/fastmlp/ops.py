"""Low-level operations on the engine's kernels."""
import numpy as np

from . import _engine

__all__ = ["matmul"]


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
