"""Activation functions, by name, as in ``keras.activations``.

Each function works on NumPy arrays (handy for checking a model by hand); in a
``Dense`` layer the same function runs fused with the bias inside the C engine.
Custom Python callables cannot run inside the engine and are refused.
"""
import math

import numpy as np

from . import _engine

__all__ = [
    "relu", "sigmoid", "tanh", "softmax", "linear", "elu", "selu", "leaky_relu", "gelu",
    "softplus", "softsign", "swish", "silu", "hard_sigmoid", "exponential", "relu6", "log_softmax",
    "get", "serialize", "deserialize",
]

_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


def _engine_code(name, alpha=0.0):
    """Mark an activation with its engine code (from csrc/fastmlp.h, through _engine) and default alpha."""
    def mark(fn):
        fn._fm_code = _engine.ACTIVATIONS[name]
        fn._fm_alpha = alpha
        return fn
    return mark


@_engine_code("linear")
def linear(x):
    return np.asarray(x)


@_engine_code("relu")
def relu(x):
    return np.maximum(x, 0)


@_engine_code("sigmoid")
def sigmoid(x):
    x = np.asarray(x)
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


@_engine_code("tanh")
def tanh(x):
    return np.tanh(x)


@_engine_code("softmax")
def softmax(x, axis=-1):
    x = np.asarray(x)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


@_engine_code("log_softmax")
def log_softmax(x, axis=-1):
    x = np.asarray(x)
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


@_engine_code("elu", 1.0)
def elu(x, alpha=1.0):
    x = np.asarray(x)
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


@_engine_code("selu")
def selu(x):
    x = np.asarray(x)
    return _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0)))


@_engine_code("leaky_relu", 0.2)
def leaky_relu(x, negative_slope=0.2):
    x = np.asarray(x)
    return np.where(x > 0, x, negative_slope * x)


_erf = np.vectorize(math.erf, otypes=[float])


@_engine_code("gelu")
def gelu(x, approximate=False):
    if approximate:
        raise ValueError("gelu(approximate=True) is not supported by the engine; use the exact form")
    x = np.asarray(x)
    return (0.5 * x * (1 + _erf(x / math.sqrt(2)))).astype(np.result_type(x, np.float32))


@_engine_code("softplus")
def softplus(x):
    x = np.asarray(x)
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


@_engine_code("softsign")
def softsign(x):
    x = np.asarray(x)
    return x / (1 + np.abs(x))


@_engine_code("swish")
def swish(x):
    return np.asarray(x) * sigmoid(x)


silu = swish


@_engine_code("hard_sigmoid")
def hard_sigmoid(x):
    return np.clip((np.asarray(x) + 3.0) / 6.0, 0, 1)


@_engine_code("exponential")
def exponential(x):
    return np.exp(x)


@_engine_code("relu6")
def relu6(x):
    return np.clip(x, 0, 6)


@_engine_code("relu_cap")
def relu_cap(x, max_value=6.0):
    """``min(max(x, 0), max_value)``: what ``layers.ReLU(max_value=...)`` computes (not a named activation)."""
    return np.clip(x, 0, max_value)


ALL_ACTIVATIONS = {
    "linear": linear, "relu": relu, "sigmoid": sigmoid, "tanh": tanh, "softmax": softmax,
    "elu": elu, "selu": selu, "leaky_relu": leaky_relu, "gelu": gelu, "softplus": softplus,
    "softsign": softsign, "swish": swish, "silu": silu, "hard_sigmoid": hard_sigmoid,
    "exponential": exponential, "relu6": relu6, "log_softmax": log_softmax,
}
_NAMES = {id(fn): name for name, fn in ALL_ACTIVATIONS.items() if name != "silu"}


def get(identifier):
    """An activation function from its name, the function itself, or None (linear)."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        fn = ALL_ACTIVATIONS.get(identifier.lower())
        if fn is None:
            from . import _serialization
            custom = _serialization.get_registered_object(identifier)
            if custom is not None:
                return get(custom)
            raise ValueError(f"Unknown activation: {identifier!r}. "
                             f"Expected one of {sorted(ALL_ACTIVATIONS)} or None")
        return fn
    if isinstance(identifier, dict) and "class_name" in identifier:
        return deserialize(identifier)
    if callable(identifier) and hasattr(identifier, "_fm_code"):
        return identifier
    if callable(identifier):
        raise NotImplementedError(
            f"fastmlp runs activations inside its C engine, so the Python function "
            f"{getattr(identifier, '__name__', identifier)!r} cannot be a layer activation. Use one of the "
            f"built-in activations {sorted(ALL_ACTIVATIONS)} (a name or a fastmlp.activations function), or an "
            f"activation layer (ReLU(max_value=...), LeakyReLU, ELU, PReLU, Softmax).")
    raise ValueError(f"Could not interpret activation {identifier!r}: fastmlp runs activations "
                     f"inside its C engine, so it must be one of {sorted(ALL_ACTIVATIONS)} "
                     f"(a name or a fastmlp.activations function)")


def serialize(fn):
    return _NAMES[id(get(fn))]


def deserialize(config):
    if isinstance(config, dict):
        config = config.get("config", config.get("class_name"))
    return get(config)
