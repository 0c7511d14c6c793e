"""``ActivityRegularization``: the identity that adds a penalty on its output
to the loss; engine kind ``activity_regularization`` (csrc/kinds/activity_reg.c)."""
import numpy as np

from .base import Layer, _check_number

__all__ = ["ActivityRegularization"]


class ActivityRegularization(Layer):
    """``keras.layers.ActivityRegularization``: passes its input through and adds
    ``(l1 * sum(|x|) + l2 * sum(x**2)) / batch_size`` to the loss (Keras 3
    divides a layer's activity penalty by the batch size), in ``fit`` and
    ``evaluate``.  A call on arrays records that penalty in ``layer.losses``."""
    _base_name = "activity_regularization"
    engine_kind = "activity_regularization"
    format_minor = 3
    _any_sample_shape = True  # a Sequential may run it before a Flatten

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        _check_number("l1", l1, low=0)
        _check_number("l2", l2, low=0)
        self.l1, self.l2 = l1, l2
        self._losses = []
        self.built = True

    @property
    def losses(self):
        """The penalty of the last call on arrays (Keras's ``layer.losses``)."""
        return list(self._losses)

    def _engine_node(self, input_shape):
        return {"rate": float(self.l1), "momentum": float(self.l2)}

    def penalty(self, x):
        """The penalty this layer adds to the loss for the batch ``x``."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 0:
            return float(self.l1) * abs(float(x)) + float(self.l2) * float(x) ** 2
        total = float(self.l1) * np.abs(x).sum() + float(self.l2) * np.square(x).sum()
        return total / len(x) if len(x) else 0.0

    def call(self, x, training=False):
        self._losses = [np.asarray(self.penalty(x), dtype=self.dtype)]
        return x

    def get_config(self):
        return {**super().get_config(), "l1": self.l1, "l2": self.l2}
