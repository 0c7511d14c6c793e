"""``Dropout``; engine kind ``dropout`` (csrc/kinds/dropout.c)."""
import numpy as np

from .base import Layer, _engine_seed

__all__ = ["Dropout"]


class Dropout(Layer):
    """Inverted dropout: in training, zero each input with probability ``rate``
    and scale the rest by ``1 / (1 - rate)``; the identity at inference.  Masks
    come from the engine's counter-based generator (resumable)."""
    _base_name = "dropout"
    engine_kind = "dropout"

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
        self.built = True

    def _engine_node(self, input_shapes):
        return {"rate": self.rate, "seed": _engine_seed(self.seed)}

    def call(self, x, training=False):
        if not training or self.rate == 0:
            return x
        keep = self._rng.random(np.shape(x)) >= self.rate
        return np.where(keep, x / (1 - self.rate) if self.rate < 1 else 0, 0).astype(self.dtype)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
