"""Layers that apply an activation: ``Activation``, ``ReLU``, ``Softmax``,
``LeakyReLU``, ``ELU``.  All run as the engine kind ``activation``
(csrc/kinds/activation.c): the network applies the node's activation, fused
with the stable cross-entropies when it is a model's last softmax/sigmoid."""
import numpy as np

from .. import activations
from .base import Layer, _check_number

__all__ = ["Activation", "ReLU", "Softmax", "LeakyReLU", "ELU"]


class _ActivationKind(Layer):
    engine_kind = "activation"
    format_minor = 3

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.built = True

    def _code(self):
        """(fastmlp activation function, its alpha)."""
        raise NotImplementedError

    def _engine_node(self, input_shapes):
        fn, alpha = self._code()
        return {"activation": fn._fm_code, "act_alpha": alpha}

    def _check_input_shapes(self, shape):
        fn, _ = self._code()
        if fn in (activations.softmax, activations.log_softmax) and len(tuple(shape)) > 2:
            raise ValueError(f"fastmlp's {fn.__name__} takes (samples, features) inputs; got shape "
                             f"{tuple(shape)} (Keras normalizes along the last axis there, which fastmlp's "
                             f"engine does not)")

    def call(self, x, training=False):
        from .. import _engine
        fn, alpha = self._code()
        out = np.array(x, dtype=self.dtype, order="C", copy=True)
        _engine.activation_forward(fn._fm_code, alpha, out.reshape(-1, out.shape[-1] if out.ndim else 1), None)
        return out


class Activation(_ActivationKind):
    """Applies an activation to its input, as ``keras.layers.Activation``: e.g.
    ``Dense(64)``, ``BatchNormalization()``, ``Activation("relu")``.  Any fastmlp
    activation; a final ``Activation("softmax")`` or ``("sigmoid")`` gets the same
    fused, stable cross-entropy as a Dense layer's."""
    _base_name = "activation"
    format_minor = 2

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def _code(self):
        return self.activation, self.activation._fm_alpha

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


class ReLU(_ActivationKind):
    """``keras.layers.ReLU``: ``max(x, 0)``, capped at ``max_value`` when given, or a
    leaky ReLU with ``negative_slope``.  A ``threshold``, or a ceiling together
    with a slope, are refused with an error naming them."""
    _base_name = "re_lu"

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        if max_value is not None:
            max_value = _check_number("max_value", max_value, 0)
        self.max_value = max_value
        self.negative_slope = _check_number("negative_slope", negative_slope, 0)
        self.threshold = _check_number("threshold", threshold)
        if self.threshold != 0 or (max_value is not None and self.negative_slope != 0):
            raise ValueError(f"fastmlp's ReLU supports a max_value or a negative_slope, not both, and threshold=0 "
                             f"only. Received: max_value={max_value!r}, negative_slope={negative_slope!r}, "
                             f"threshold={threshold!r}")

    def _code(self):
        if self.max_value == 6:
            return activations.relu6, 0.0
        if self.max_value is not None:
            return activations.relu_cap, self.max_value
        if self.negative_slope:
            return activations.leaky_relu, self.negative_slope
        return activations.relu, 0.0

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value, "negative_slope": self.negative_slope,
                "threshold": self.threshold}


class Softmax(_ActivationKind):
    """``keras.layers.Softmax`` over the feature axis."""
    _base_name = "softmax"

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if axis not in (-1, 1):
            raise ValueError(f"fastmlp's Softmax normalizes the feature axis (-1). Received: axis={axis!r}")
        self.axis = axis

    def _code(self):
        return activations.softmax, 0.0

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class LeakyReLU(_ActivationKind):
    """``keras.layers.LeakyReLU``: ``x`` above 0, ``negative_slope * x`` below
    (Keras's default slope for the layer is 0.3; ``alpha`` is its old name)."""
    _base_name = "leaky_re_lu"

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
        super().__init__(**kwargs)
        self.negative_slope = _check_number("negative_slope", negative_slope, 0)

    def _code(self):
        return activations.leaky_relu, self.negative_slope

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


class ELU(_ActivationKind):
    """``keras.layers.ELU``: ``x`` above 0, ``alpha * (exp(x) - 1)`` below."""
    _base_name = "elu"

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = _check_number("alpha", alpha)

    def _code(self):
        return activations.elu, self.alpha

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}
