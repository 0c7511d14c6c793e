"""``Flatten``: no engine node (the engine sees every sample as a flat row)."""
import math

from .base import Layer

__all__ = ["Flatten"]


class Flatten(Layer):
    """Flatten each sample to a vector, as ``keras.layers.Flatten``: an input of
    shape ``(batch, 28, 28)`` becomes ``(batch, 784)`` (C order).  The engine
    holds every sample as a flat row already, so this layer costs nothing there."""
    _base_name = "flatten"
    format_minor = 2

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
