"""Layers for dense stacks: ``Dense``, ``Activation``, ``Dropout``,
``GaussianNoise``, ``BatchNormalization``, ``Flatten``, ``InputLayer``/``Input``.

A layer holds its configuration and, once built, its weights in Keras's
layout (kernel ``(input_dim, units)``, bias ``(units,)``).  Inside a model the
weights are views into the model's flat parameter vector, which the C engine
trains in place.
"""
import math

import numpy as np

from . import activations, initializers, regularizers, utils
from . import config as _config

__all__ = ["Layer", "Dense", "Activation", "Dropout", "GaussianNoise", "BatchNormalization", "Flatten",
           "InputLayer", "Input"]

_NAME_COUNTS = {}


def _unique_name(base):
    n = _NAME_COUNTS.get(base, 0)
    _NAME_COUNTS[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def _shape_tuple(shape, what):
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    try:
        shape = tuple([None if d is None else int(d) for d in shape])
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a tuple of integers. Received: {what}={shape!r}") from None
    for d in shape:
        if d is not None and d <= 0:
            raise ValueError(f"{what} must contain positive integers. Received: {what}={shape!r}")
    return shape


def _float_dtype_name(dtype):
    if dtype in ("float32", "float64"):
        return dtype
    try:
        name = str(np.dtype(dtype))
    except TypeError:
        name = None
    if name not in ("float32", "float64"):
        raise ValueError(f"Unsupported layer dtype {dtype!r}: expected 'float32' or 'float64'")
    return name


def _assign_weights(current, weights, owner, shape_message=None):
    """Copy ``weights`` into the arrays ``current`` after checking count, dtype
    and shapes (nothing is written unless everything matches)."""
    weights = list(weights)
    if len(weights) != len(current):
        raise ValueError(f"You called `set_weights(weights)` on {owner} with a weight list of length "
                         f"{len(weights)}, but it was expecting {len(current)} weights.")
    arrays = []
    for i, (ref, new) in enumerate(zip(current, weights)):
        new = np.asarray(new)
        if new.dtype.kind not in "biuf":
            raise TypeError(f"Weight {i} of {owner} must be numeric; got dtype {new.dtype}")
        if new.shape != ref.shape:
            raise ValueError(shape_message(i, ref.shape, new.shape) if shape_message else
                             f"Weight {i} given to {owner} has shape {new.shape}, but {owner} expects "
                             f"{ref.shape}.")
        arrays.append(new)
    for ref, new in zip(current, arrays):
        ref[...] = new


class Layer:
    """Base class of fastmlp layers."""
    _base_name = "layer"
    _format_minor = 0   # the model-file minor version that introduced this kind (docs/FORMAT.md)

    def __init__(self, name=None, dtype=None, trainable=True, input_shape=None, input_dim=None,
                 batch_input_shape=None, **kwargs):
        if kwargs:
            raise TypeError(f"Unrecognized keyword argument(s) passed to {type(self).__name__}: "
                            f"{sorted(kwargs)}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Layer name must be a string. Received: name={name!r}")
        self.name = name or _unique_name(self._base_name)
        self._dtype = None if dtype is None else _float_dtype_name(dtype)
        self.trainable = bool(trainable)
        self.built = False
        self._input_shape_arg = None
        if input_dim is not None:
            self._input_shape_arg = _shape_tuple((input_dim,), "input_dim")
        elif input_shape is not None:
            self._input_shape_arg = _shape_tuple(input_shape, "input_shape")
        elif batch_input_shape is not None:
            self._input_shape_arg = _shape_tuple(batch_input_shape, "batch_input_shape")[1:]

    @property
    def dtype(self):
        return self._dtype or _config.floatx()

    # ---- weights ----
    @property
    def weights(self):
        return []

    trainable_weights = weights

    @property
    def non_trainable_weights(self):
        return []

    def get_weights(self):
        return [np.array(w, copy=True) for w in self.weights]

    def set_weights(self, weights):
        _assign_weights(self.weights, weights, f"layer {self.name!r}",
                        lambda i, ref, new: f"Layer {self.name!r} weight shape {ref} is not compatible "
                                            f"with provided weight shape {new}.")

    def count_params(self):
        if not self.built:
            raise ValueError(f"You tried to call `count_params` on layer {self.name!r}, but the layer "
                             f"isn't built. You can build it manually via: `layer.build(input_shape)`.")
        return int(sum(w.size for w in self.weights))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def build(self, input_shape):
        self.built = True

    def get_config(self):
        cfg = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}
        return cfg

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __call__(self, x, training=False):
        x = np.asarray(x, dtype=self.dtype)
        if not self.built:
            self.build(x.shape)
        return self.call(x, training=training)

    def call(self, x, training=False):
        return x

    def _set_seed(self, seed):
        """The seed of a random layer (Dropout, GaussianNoise): None (the model's) or a
        non-negative integer; standalone calls draw from a generator of their own."""
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"{type(self).__name__} seed must be a non-negative integer. Received: seed={seed!r}")
        self.seed = seed
        self._rng = np.random.default_rng(seed)   # for calls outside a model only

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


class Dense(Layer):
    """Densely connected layer: ``activation(x @ kernel + bias)``.

    Arguments, defaults and validation follow ``keras.layers.Dense``.
    """
    _base_name = "dense"

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        if not utils._is_positive_int(units):
            raise ValueError(f"Received an invalid value for `units`, expected a positive integer. "
                             f"Received: units={units!r}")
        if activity_regularizer is not None or kernel_constraint is not None or bias_constraint is not None:
            arg = next(arg for arg, value in (("activity_regularizer", activity_regularizer),
                                              ("kernel_constraint", kernel_constraint),
                                              ("bias_constraint", bias_constraint)) if value is not None)
            raise ValueError(f"Dense({arg}=...) is not supported by fastmlp yet")
        self.units = int(units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel = None
        self.bias = None

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) < 1 or input_shape[-1] is None:
            raise ValueError(f"Dense layer {self.name!r} needs a known last input dimension; "
                             f"got input shape {input_shape}")
        if len(input_shape) > 2:
            raise ValueError(f"fastmlp's Dense expects 2-D input (samples, features); layer "
                             f"{self.name!r} got input shape {input_shape}")
        input_dim = int(input_shape[-1])
        self.kernel = np.asarray(self.kernel_initializer((input_dim, self.units), self.dtype), dtype=self.dtype)
        self.bias = (np.asarray(self.bias_initializer((self.units,), self.dtype), dtype=self.dtype)
                     if self.use_bias else None)
        self.input_dim = input_dim
        self.built = True

    @property
    def weights(self):
        if not self.built:
            return []
        return [self.kernel, self.bias] if self.use_bias else [self.kernel]

    trainable_weights = weights

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def call(self, x, training=False):
        out = np.ascontiguousarray(x @ self.kernel, dtype=self.dtype).reshape(-1, self.units)
        from . import _engine
        _engine.activation_forward(self.activation._fm_code, self.activation._fm_alpha, out,
                                   None if self.bias is None else np.ascontiguousarray(self.bias))
        return out.reshape(x.shape[:-1] + (self.units,))

    def get_config(self):
        return {
            **super().get_config(), "units": self.units,
            "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
        }


class Activation(Layer):
    """Applies an activation to its input, as ``keras.layers.Activation``: e.g.
    ``Dense(64)``, ``BatchNormalization()``, ``Activation("relu")``.  Any fastmlp
    activation; a final ``Activation("softmax")`` or ``("sigmoid")`` gets the same
    fused, stable cross-entropy as a Dense layer's."""
    _base_name = "activation"
    _format_minor = 2

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)
        self.built = True

    def call(self, x, training=False):
        from . import _engine
        out = np.array(x, dtype=self.dtype, order="C", copy=True)
        _engine.activation_forward(self.activation._fm_code, self.activation._fm_alpha,
                                   out.reshape(-1, out.shape[-1] if out.ndim else 1), None)
        return out

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class Dropout(Layer):
    """Inverted dropout: in training, zero each input with probability ``rate``
    and scale the rest by ``1 / (1 - rate)``; the identity at inference.  Masks
    come from the engine's counter-based generator (resumable)."""
    _base_name = "dropout"

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating, np.integer)) \
                or not 0 <= rate <= 1:
            raise ValueError(f"Invalid value received for argument `rate`. Expected a float value "
                             f"between 0 and 1. Received: rate={rate!r}")
        if noise_shape is not None:
            raise ValueError("Dropout(noise_shape=...) is not supported by fastmlp")
        self.rate = float(rate)
        self._set_seed(seed)

    def call(self, x, training=False):
        if not training or self.rate == 0:
            return x
        keep = self._rng.random(np.shape(x)) >= self.rate
        return np.where(keep, x / (1 - self.rate) if self.rate < 1 else 0, 0).astype(self.dtype)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class GaussianNoise(Layer):
    """Additive zero-mean Gaussian noise of standard deviation ``stddev`` in
    training, the identity at inference (``keras.layers.GaussianNoise``).  The
    noise comes from the engine's counter-based generator, like Dropout's masks,
    so runs repeat and resume exactly."""
    _base_name = "gaussian_noise"
    _format_minor = 2

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float, np.integer, np.floating)) \
                or not math.isfinite(stddev) or stddev < 0:
            raise ValueError(f"Invalid value received for argument `stddev`. Expected a non-negative "
                             f"float. Received: stddev={stddev!r}")
        self.stddev = float(stddev)
        self._set_seed(seed)

    def call(self, x, training=False):
        if not training or self.stddev == 0:
            return x
        return (x + self._rng.normal(0.0, self.stddev, np.shape(x))).astype(self.dtype)

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


class BatchNormalization(Layer):
    """Normalize each feature over the batch (Keras 3 semantics).

    Training: ``gamma * (x - mean_batch) / sqrt(var_batch + epsilon) + beta`` and
    ``moving = moving * momentum + batch_stat * (1 - momentum)``; inference
    (``predict``/``evaluate``) uses the moving statistics.  Weights, in Keras's
    order: ``[gamma, beta, moving_mean, moving_variance]`` (gamma/beta only when
    ``scale``/``center``); the moving statistics are not trainable.
    """
    _base_name = "batch_normalization"

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", beta_regularizer=None, gamma_regularizer=None,
                 beta_constraint=None, gamma_constraint=None, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        if axis not in (-1, 1):
            raise ValueError(f"fastmlp's BatchNormalization normalizes the feature axis (-1); got axis={axis}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"`momentum` must be in [0, 1]. Received: momentum={momentum}")
        if not epsilon > 0:
            raise ValueError(f"`epsilon` must be positive. Received: epsilon={epsilon}")
        if beta_constraint is not None or gamma_constraint is not None:
            raise ValueError("BatchNormalization constraints are not supported by fastmlp")
        self.axis, self.momentum, self.epsilon = axis, float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None

    def build(self, input_shape):
        n = int(tuple(input_shape)[-1])
        dt = self.dtype
        self.gamma = np.asarray(self.gamma_initializer((n,), dt), dtype=dt) if self.scale else None
        self.beta = np.asarray(self.beta_initializer((n,), dt), dtype=dt) if self.center else None
        self.moving_mean = np.asarray(self.moving_mean_initializer((n,), dt), dtype=dt)
        self.moving_variance = np.asarray(self.moving_variance_initializer((n,), dt), dtype=dt)
        self.built = True

    @property
    def trainable_weights(self):
        if not self.built:
            return []
        return [w for w in (self.gamma, self.beta) if w is not None]

    @property
    def non_trainable_weights(self):
        return [self.moving_mean, self.moving_variance] if self.built else []

    @property
    def weights(self):
        return self.trainable_weights + self.non_trainable_weights

    def call(self, x, training=False):
        g = 1 if self.gamma is None else self.gamma
        b = 0 if self.beta is None else self.beta
        if training:
            mean, var = x.mean(axis=0), x.var(axis=0)
        else:
            mean, var = self.moving_mean, self.moving_variance
        return (g * (x - mean) / np.sqrt(var + self.epsilon) + b).astype(self.dtype)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer)}


class Flatten(Layer):
    """Flatten each sample to a vector, as ``keras.layers.Flatten``: an input of
    shape ``(batch, 28, 28)`` becomes ``(batch, 784)`` (C order).  The engine
    never sees it: the model reshapes its input, which costs nothing for a
    contiguous array, and on already-flat data it is the identity."""
    _base_name = "flatten"
    _format_minor = 2

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"fastmlp's Flatten supports data_format=None or 'channels_last' only. "
                             f"Received: data_format={data_format!r}")
        self.data_format = data_format
        self.built = True

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        rest = input_shape[1:]
        return (input_shape[0], None if None in rest else math.prod(rest))

    def call(self, x, training=False):
        return x.reshape(len(x), -1) if x.ndim > 1 else x.reshape(-1, 1)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class InputLayer(Layer):
    """Declares the input shape of a model: ``InputLayer(shape=(784,))``."""
    _base_name = "input_layer"

    def __init__(self, shape=None, batch_size=None, dtype=None, name=None, **kwargs):
        if shape is None and "input_shape" in kwargs:
            shape = kwargs.pop("input_shape")
        if shape is None and "batch_shape" in kwargs:
            shape = kwargs.pop("batch_shape")[1:]
        super().__init__(name=name, dtype=dtype, **kwargs)
        if shape is None:
            raise ValueError("InputLayer needs a `shape`, e.g. InputLayer(shape=(784,))")
        self.shape = _shape_tuple(shape, "shape")
        self.batch_size = batch_size
        self._input_shape_arg = self.shape
        self.built = True

    def get_config(self):
        return {"shape": self.shape, "batch_size": self.batch_size, "dtype": self.dtype, "name": self.name}


# The layer kinds a model config (and a model file) may name.
_CLASSES = {cls.__name__: cls for cls in (InputLayer, Dense, Activation, Dropout, GaussianNoise, BatchNormalization,
                                           Flatten)}


def Input(shape=None, batch_size=None, dtype=None, name=None, **kwargs):
    """The symbolic input of a model, as ``keras.Input(shape=(784,))``: pass it
    first to ``Sequential``."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name, **kwargs)
