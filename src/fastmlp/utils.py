"""Random seeding and small helpers shared by the Python layer."""
import os
import random as _random

import numpy as np

# keras.utils also holds the custom-object registry and (de)serialization
from ._serialization import (CustomObjectScope, custom_object_scope, deserialize_keras_object,  # noqa: F401
                             get_custom_objects, get_registered_name, get_registered_object,
                             register_keras_serializable, serialize_keras_object)

_SEED = None
_COUNTER = 0


def set_random_seed(seed):
    """Seed everything fastmlp draws from: initializers, shuffling, dropout.

    As ``keras.utils.set_random_seed``, this also seeds Python's ``random`` and
    NumPy's global generator.  With a fixed seed and thread count, two runs give
    bit-identical weights.
    """
    global _SEED, _COUNTER
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"Expected `seed` to be a non-negative integer. Received: seed={seed!r}")
    _SEED = int(seed)
    _COUNTER = 0
    _random.seed(_SEED)
    np.random.seed(_SEED % (2 ** 32))


_MASK64 = (1 << 64) - 1


def _mix64(z):
    """SplitMix64's finalizer: a bijective 64-bit mixer."""
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & _MASK64
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB & _MASK64
    return z ^ (z >> 31)


def _next_seed():
    """A fresh 63-bit seed: the next of a stream derived from the global seed when
    one is set, else from the operating system's entropy."""
    global _COUNTER
    if _SEED is None:
        return int.from_bytes(os.urandom(8), "little") >> 1
    _COUNTER += 1
    return _mix64((_SEED * 0x9E3779B97F4A7C15 + _COUNTER * 0xD1B54A32D192ED03) & _MASK64) >> 1


def _is_positive_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0


def to_categorical(x, num_classes=None):
    """One-hot encoding of integer class labels, as ``keras.utils.to_categorical``:
    an array of shape ``x.shape + (num_classes,)`` (a trailing axis of size 1 is
    dropped first), float64 as Keras gives for NumPy labels; ``num_classes`` defaults
    to ``max(x) + 1``."""
    arr = np.asarray(x)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError("to_categorical expects integer class labels; got non-integer values")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iub":
        raise TypeError(f"to_categorical expects integer class labels; got an array of dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.ndim > 1 and arr.shape[-1] == 1:
        arr = arr.reshape(arr.shape[:-1])
    if arr.size and arr.min() < 0:
        raise ValueError(f"to_categorical expects non-negative class labels; got {int(arr.min())}")
    if num_classes is None:
        num_classes = int(arr.max()) + 1 if arr.size else 0
    elif not _is_positive_int(num_classes):
        raise ValueError(f"`num_classes` must be a positive integer. Received: num_classes={num_classes!r}")
    num_classes = int(num_classes)
    if arr.size and int(arr.max()) >= num_classes:
        raise ValueError(f"A label ({int(arr.max())}) is not below num_classes={num_classes}")
    if arr.size * num_classes > 1 << 31:
        raise ValueError(f"to_categorical would make {arr.size} x {num_classes} values; that is over 2**31")
    out = np.zeros(arr.shape + (num_classes,))
    np.put_along_axis(out, arr[..., None], 1.0, axis=-1)
    return out


def normalize(x, axis=-1, order=2):
    """``x`` divided by its ``order``-norm along ``axis`` (zero vectors stay zero), as
    ``keras.utils.normalize``."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"normalize expects numeric data; got dtype {arr.dtype}")
    arr = arr.astype(np.float64 if arr.dtype == np.float64 else np.float32, copy=False)
    norm = np.atleast_1d(np.linalg.norm(arr, order, axis))
    norm[norm == 0] = 1
    return arr / np.expand_dims(norm, axis)
