"""Random seeding and small helpers shared by the Python layer."""
import os
import random as _random

import numpy as np

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
