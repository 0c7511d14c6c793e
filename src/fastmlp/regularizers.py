"""Weight regularizers (Keras 3): the penalty is added to the loss, its
gradient is applied inside the engine's optimizer step."""
import math

import numpy as np


class Regularizer:
    l1 = 0.0
    l2 = 0.0

    def __call__(self, x):
        x = np.asarray(x, dtype=np.float64)
        return float(self.l1 * np.sum(np.abs(x)) + self.l2 * np.sum(np.square(x)))

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check(name, value):
    value = float(value)
    if not math.isfinite(value) or value < 0:   # a Python float: math is 25x faster than numpy
        raise ValueError(f"Value for argument {name} must be a non-negative finite number. "
                         f"Received: {name}={value}")
    return value


class L1L2(Regularizer):
    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _check("l1", l1)
        self.l2 = _check("l2", l2)


class L1(Regularizer):
    def __init__(self, l1=0.01):
        self.l1 = _check("l1", l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    def __init__(self, l2=0.01):
        self.l2 = _check("l2", l2)

    def get_config(self):
        return {"l2": self.l2}


l1 = L1
l2 = L2
l1_l2 = L1L2
_ALIASES = {"l1": L1, "l2": L2, "l1_l2": L1L2, "L1": L1, "L2": L2, "L1L2": L1L2}


def get(identifier):
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown regularizer: {identifier!r}. Expected one of ['l1', 'l2', 'l1_l2']")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise ValueError(f"Could not interpret regularizer identifier: {identifier!r}")


def serialize(reg):
    return None if reg is None else {"class_name": type(reg).__name__, "config": reg.get_config()}


def deserialize(config):
    if config is None:
        return None
    cls = _ALIASES.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"Unknown regularizer class: {config.get('class_name')!r}")
    return cls.from_config(config.get("config", {}))
