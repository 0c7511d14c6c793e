"""Argument checks shared by the constructors of optimizers, schedules, losses and metrics.

Every check names the argument and says what it accepts, in Keras's message shape
("Argument `name` must be ... Received: name=value"): a value of the wrong type raises
``TypeError``, a number outside its range (NaN and infinities included) ``ValueError``.
A model file's compile config is rebuilt through the same constructors, so the loader
turns these errors into ``FormatError``.
"""
import math
import numbers
import operator

import numpy as np

INT64_MAX = 2 ** 63 - 1


def _fmt(x):
    return str(x) if isinstance(x, int) else f"{x:g}"


def _interval(low, high, low_open, high_open):
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{_fmt(low)}, {_fmt(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {_fmt(low)}"
    if high is not None:
        return f"{'<' if high_open else '<='} {_fmt(high)}"
    return ""


def number(name, value, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a float: a real number (not a bool) that is finite and lies within
    the bounds (closed unless ``low_open``/``high_open``)."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"Argument `{name}` must be a number. "
                        f"Received: {name}={value!r} of type {type(value).__name__}")
    v = float(value)
    ok = math.isfinite(v)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        bounds = _interval(low, high, low_open, high_open)
        raise ValueError(f"Argument `{name}` must be a finite number{' ' + bounds if bounds else ''}. "
                         f"Received: {name}={value!r}")
    return v


def integer(name, value, low=None, high=None):
    """``value`` as an int: an integer (Python or NumPy, not a bool) in [low, high]."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"Argument `{name}` must be an integer. Received: {name}={value!r} of type bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"Argument `{name}` must be an integer. "
                        f"Received: {name}={value!r} of type {type(value).__name__}") from None
    if (low is not None and v < low) or (high is not None and v > high):
        raise ValueError(f"Argument `{name}` must be an integer {_interval(low, high, False, False)}. "
                         f"Received: {name}={value!r}")
    return v
