"""``GaussianNoise``; engine kind ``gaussian_noise`` (csrc/kinds/noise.c)."""
import math

import numpy as np

from .base import Layer, _engine_seed

__all__ = ["GaussianNoise"]


class GaussianNoise(Layer):
    """Additive zero-mean Gaussian noise of standard deviation ``stddev`` in
    training, the identity at inference (``keras.layers.GaussianNoise``).  The
    noise comes from the engine's counter-based generator, like Dropout's masks,
    so runs repeat and resume exactly."""
    _base_name = "gaussian_noise"
    engine_kind = "gaussian_noise"
    format_minor = 2

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float, np.integer, np.floating)) \
                or not math.isfinite(stddev) or stddev < 0:
            raise ValueError(f"Invalid value received for argument `stddev`. Expected a non-negative "
                             f"float. Received: stddev={stddev!r}")
        self.stddev = float(stddev)
        self._set_seed(seed)
        self.built = True

    def _engine_node(self, input_shapes):
        return {"rate": self.stddev, "seed": _engine_seed(self.seed)}

    def call(self, x, training=False):
        if not training or self.stddev == 0:
            return x
        return (x + self._rng.normal(0.0, self.stddev, np.shape(x))).astype(self.dtype)

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}
