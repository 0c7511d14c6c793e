"""``BatchNormalization``; engine kind ``batch_normalization`` (csrc/kinds/batchnorm.c)."""
import numpy as np

from .. import initializers, regularizers
from .base import Layer, WeightSpec

__all__ = ["BatchNormalization"]


class BatchNormalization(Layer):
    """Normalize each feature over the batch (Keras 3 semantics).

    Training: ``gamma * (x - mean_batch) / sqrt(var_batch + epsilon) + beta`` and
    ``moving = moving * momentum + batch_stat * (1 - momentum)``; inference
    (``predict``/``evaluate``) uses the moving statistics.  Weights, in Keras's
    order: ``[gamma, beta, moving_mean, moving_variance]`` (gamma/beta only when
    ``scale``/``center``); the moving statistics are not trainable.
    """
    _base_name = "batch_normalization"
    engine_kind = "batch_normalization"

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

    def _check_input_shapes(self, shape):
        if len(tuple(shape)) != 2:
            raise ValueError(f"fastmlp's BatchNormalization takes (samples, features); got shape {tuple(shape)}")

    def _weight_specs(self, input_shape):
        n = (int(tuple(input_shape)[-1]),)
        specs = []
        if self.scale:
            specs.append(WeightSpec("gamma", n, True, self.gamma_initializer, self.gamma_regularizer))
        if self.center:
            specs.append(WeightSpec("beta", n, True, self.beta_initializer, self.beta_regularizer))
        return specs + [WeightSpec("moving_mean", n, False, self.moving_mean_initializer),
                        WeightSpec("moving_variance", n, False, self.moving_variance_initializer)]

    def _engine_node(self, input_shapes):
        return {"momentum": self.momentum, "epsilon": self.epsilon}

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
