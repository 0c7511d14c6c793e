"""Random seeding and small helpers shared by the Python layer."""
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


def _next_seed():
    """A fresh 63-bit seed: derived from the global seed when one is set."""
    global _COUNTER
    if _SEED is None:
        return int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> 1)
    _COUNTER += 1
    return int(np.random.SeedSequence([_SEED, _COUNTER]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _is_positive_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0
