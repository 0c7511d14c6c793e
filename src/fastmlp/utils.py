"""Random seeding and small helpers shared by the Python layer."""
import os
import random as _random

import numpy as np

from ._progbar import Progbar  # noqa: F401  (keras.utils.Progbar)
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


class PyDataset:
    """Base class for data that Python makes batch by batch, as
    ``keras.utils.PyDataset``: subclass it, call ``super().__init__(**kwargs)``,
    and implement ``__getitem__(index)`` (the batch ``index``: ``x``, ``(x,)``,
    ``(x, y)`` or ``(x, y, sample_weight)``, where ``x`` and ``y`` may be lists or
    dicts of arrays for models with several inputs or outputs) and ``__len__``
    (the number of batches; or a ``num_batches`` property that may return
    ``None`` for an endless dataset).  ``on_epoch_begin`` and ``on_epoch_end`` are
    called at the start and end of every epoch, where Keras calls them.

    ``fit``/``evaluate``/``predict`` take a PyDataset as ``x``.  With
    ``workers > 1``, that many threads call ``__getitem__`` ahead of training
    (up to ``max_queue_size`` batches ahead) while the engine trains with the
    GIL released; with ``use_multiprocessing=True`` the workers are processes
    instead (the dataset and its batches must then be picklable).  As in Keras,
    ``fit(shuffle=True)`` visits the batches in a random order each epoch.
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    @property
    def workers(self):
        return getattr(self, "_workers", 1)

    @workers.setter
    def workers(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"`workers` must be a non-negative integer. Received: workers={value!r}")
        self._workers = int(value)

    @property
    def use_multiprocessing(self):
        return getattr(self, "_use_multiprocessing", False)

    @use_multiprocessing.setter
    def use_multiprocessing(self, value):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"`use_multiprocessing` must be True or False. Received: "
                            f"use_multiprocessing={value!r}")
        self._use_multiprocessing = bool(value)

    @property
    def max_queue_size(self):
        return getattr(self, "_max_queue_size", 10)

    @max_queue_size.setter
    def max_queue_size(self, value):
        if not _is_positive_int(value):
            raise ValueError(f"`max_queue_size` must be a positive integer. Received: max_queue_size={value!r}")
        self._max_queue_size = int(value)

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(index), returning a batch")

    @property
    def num_batches(self):
        """The number of batches (``len(self)``), or ``None`` for an endless dataset."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError(f"{type(self).__name__} must implement __len__ or the `num_batches` property")

    def __iter__(self):
        n = self.num_batches
        index = 0
        while n is None or index < n:
            yield self[index]
            index += 1

    def on_epoch_begin(self):
        """Called at the start of every epoch."""

    def on_epoch_end(self):
        """Called at the end of every epoch."""


Sequence = PyDataset   # Keras 3 keeps `keras.utils.Sequence` as an alias of PyDataset


def _split_size(value, name, total):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"`{name}` must be an int, a float or None. Received: {name}={value!r} "
                        f"of type {type(value).__name__}")
    if isinstance(value, (float, np.floating)):
        if not 0 < value < 1:
            raise ValueError(f"`{name}` should be either a positive integer smaller than {total}, or a float "
                             f"within the range `[0, 1]`. Received: {name}={value!r}")
        return round(float(value) * total)
    if not 0 < value < total:
        raise ValueError(f"`{name}` should be either a positive integer smaller than {total}, or a float "
                         f"within the range `[0, 1]`. Received: {name}={value!r}")
    return int(value)


def split_dataset(dataset, left_size=None, right_size=None, shuffle=False, seed=None):
    """Split arrays into a left and a right part, as ``keras.utils.split_dataset``.

    ``dataset`` is an array or a tuple/list of arrays with the same number of
    samples (e.g. ``(x, y)``).  ``left_size``/``right_size`` are a fraction in
    (0, 1) or a count of samples; the one left ``None`` is the rest.  The left
    part is the first ``left_size`` samples, the right part the last
    ``right_size`` (so with both given, samples in between are left out), after a
    shuffle when ``shuffle=True`` (reproducible with ``seed``).

    Returns ``(left, right)``, each of the same structure as ``dataset`` (an
    array, or a tuple of arrays) -- plain NumPy arrays, ready for ``fit``, where
    Keras returns two ``tf.data.Dataset`` objects (or torch Datasets).
    """
    single = not isinstance(dataset, (list, tuple))
    arrays = [np.asarray(dataset)] if single else [np.asarray(a) for a in dataset]
    if not arrays or any(a.ndim == 0 for a in arrays):
        raise TypeError("The `dataset` argument must be an array or a list/tuple of arrays with a first "
                        f"(samples) axis. Received: {type(dataset).__name__}")
    total = len(arrays[0])
    if any(len(a) != total for a in arrays):
        raise ValueError(f"All arrays of `dataset` must have the same number of samples; got "
                         f"{[len(a) for a in arrays]}")
    if left_size is None and right_size is None:
        raise ValueError("At least one of the `left_size` or `right_size` must be specified. Received: "
                         "left_size=None and right_size=None")
    if isinstance(left_size, (float, np.floating)) and isinstance(right_size, (float, np.floating)) \
            and left_size + right_size > 1:
        raise ValueError("The sum of `left_size` and `right_size` is greater than 1. It must be less than "
                         "or equal to 1.")
    left = _split_size(left_size, "left_size", total)
    right = _split_size(right_size, "right_size", total)
    left = total - right if left is None else left
    right = total - left if right is None else right
    if left + right > total:
        raise ValueError(f"The sum of `left_size` and `right_size` should be smaller than the {total}. "
                         f"Received: left_size + right_size = {left + right}")
    for size, side in ((left, "left"), (right, "right")):
        if size == 0:
            raise ValueError(f"With `dataset` of length={total}, `left_size`={left} and `right_size`={right}. "
                             f"Resulting {side} side dataset split will be empty. Adjust any of the "
                             f"aforementioned parameters")
    if shuffle:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"`seed` must be a non-negative integer or None. Received: seed={seed!r}")
        rng = np.random.default_rng(_next_seed() if seed is None else int(seed))
        order = rng.permutation(total)
        parts = ([a[order[:left]] for a in arrays], [a[order[total - right:]] for a in arrays])
    else:
        parts = ([a[:left] for a in arrays], [a[total - right:] for a in arrays])
    if single:
        return parts[0][0], parts[1][0]
    return tuple(parts[0]), tuple(parts[1])
