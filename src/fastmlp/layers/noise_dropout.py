"""``GaussianDropout`` and ``AlphaDropout``: training-only noise; engine kinds
``gaussian_dropout`` and ``alpha_dropout`` (csrc/kinds/gaussian_dropout.c,
csrc/kinds/alpha_dropout.c).  Both are the identity at inference, where the
engine skips them."""
import math

import numpy as np

from .base import Layer, _engine_seed

__all__ = ["GaussianDropout", "AlphaDropout", "alpha_dropout_affine"]

# SELU's constants (Klambauer et al. 2017), which keras.layers.AlphaDropout uses
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _check_rate(cls, rate):
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) \
            or not math.isfinite(rate) or not 0 <= rate <= 1:
        raise ValueError(f"Invalid value received for argument `rate`. Expected a float value between 0 "
                         f"and 1. Received: rate={rate!r}")
    if rate == 1:   # Keras accepts it, then divides by 1 - rate (inf / NaN) in training
        raise ValueError(f"{cls}(rate=1) drops everything and its scale is infinite; fastmlp needs rate < 1")
    return float(rate)


def alpha_dropout_affine(rate):
    """(a, b, alpha'): AlphaDropout's ``a * x + b`` and the value alpha' = -alpha * scale
    that dropped units take before it, for ``rate``."""
    alpha_p = -_SELU_ALPHA * _SELU_SCALE
    a = ((1 - rate) * (1 + rate * alpha_p ** 2)) ** -0.5
    return a, -a * alpha_p * rate, alpha_p


class GaussianDropout(Layer):
    """``keras.layers.GaussianDropout(rate)``: in training, multiply every value by
    noise drawn from N(1, rate / (1 - rate)) (standard deviation sqrt(rate / (1 -
    rate))); the identity at inference.  The noise comes from the engine's
    counter-based generator (resumable), so it cannot equal torch's draws."""
    _base_name = "gaussian_dropout"
    engine_kind = "gaussian_dropout"
    format_minor = 3

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _check_rate("GaussianDropout", rate)
        self._set_seed(seed)
        self.built = True

    def _engine_node(self, input_shapes):
        return {"rate": self.rate, "seed": _engine_seed(self.seed)}

    def call(self, x, training=False):
        if not training or self.rate == 0:
            return x
        stddev = math.sqrt(self.rate / (1.0 - self.rate))
        return (x * self._rng.normal(1.0, stddev, np.shape(x))).astype(self.dtype)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class AlphaDropout(Layer):
    """``keras.layers.AlphaDropout(rate)``: dropout that keeps the mean and variance
    of SELU activations.  In training each value is kept with probability ``1 -
    rate``; dropped values become alpha' = -alpha * scale (SELU's saturation), and
    all are mapped by ``a * x + b`` with ``a = ((1 - rate) * (1 + rate *
    alpha'^2))^-1/2`` and ``b = -a * alpha' * rate``; the identity at inference.
    Masks come from the engine's counter-based generator (resumable)."""
    _base_name = "alpha_dropout"
    engine_kind = "alpha_dropout"
    format_minor = 3

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _check_rate("AlphaDropout", rate)
        if noise_shape is not None:
            raise ValueError("AlphaDropout(noise_shape=...) is not supported by fastmlp")
        self.noise_shape = None
        self._set_seed(seed)
        self.built = True

    def _engine_node(self, input_shapes):
        return {"rate": self.rate, "seed": _engine_seed(self.seed)}

    def call(self, x, training=False):
        if not training or self.rate == 0:
            return x
        a, b, alpha_p = alpha_dropout_affine(self.rate)
        keep = self._rng.random(np.shape(x)) >= self.rate
        return (a * np.where(keep, x, alpha_p) + b).astype(self.dtype)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed, "noise_shape": None}
