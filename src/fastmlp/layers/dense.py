"""``Dense``: ``activation(x @ kernel + bias)``; engine kind ``dense`` (csrc/kinds/dense.c)."""
import numpy as np

from .. import activations, initializers, regularizers
from .base import Layer, WeightSpec, _positive_int

__all__ = ["Dense"]


class Dense(Layer):
    """Densely connected layer: ``activation(x @ kernel + bias)``.

    Arguments, defaults and validation follow ``keras.layers.Dense``; the
    kernel has Keras's layout ``(input_dim, units)``.
    """
    _base_name = "dense"
    engine_kind = "dense"

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, lora_rank=None,
                 lora_alpha=None, quantization_config=None, **kwargs):
        super().__init__(**kwargs)
        self.units = _positive_int("units", units)
        # (lora_alpha only scales a LoRA update, which lora_rank=None leaves out, as in Keras)
        for arg, value in (("activity_regularizer", activity_regularizer), ("kernel_constraint", kernel_constraint),
                           ("bias_constraint", bias_constraint), ("lora_rank", lora_rank),
                           ("quantization_config", quantization_config)):
            if value is not None:
                raise ValueError(f"Dense({arg}=...) is not supported by fastmlp yet")
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel = None
        self.bias = None
        self._int8 = None          # (int8 kernel, float32 scale per unit) once quantized
        self._int8_packed = None   # the engine's packed copy (fastmlp.models.quantization)
        self._bf16_packed = None   # mixed_bfloat16: the kernel in bfloat16 (fastmlp.models.bfloat16)

    @property
    def quantization_mode(self):
        """``"int8"`` once the model quantized this layer (``Model.quantize``, an int8 file), else None."""
        return "int8" if self._int8 is not None else None

    @property
    def input_dim(self):
        # from the weight spec: a layer built while weights are deferred (loading) has no kernel yet
        return self._wspecs[0].shape[0] if self.built and self._wspecs else None

    def _check_input_shapes(self, shape):
        shape = tuple(shape)
        if len(shape) < 2 or shape[-1] is None:
            raise ValueError(f"expected min_ndim=2 with a known last axis, found shape {shape}")
        if len(shape) > 2:
            raise ValueError(f"fastmlp's Dense expects 2-D input (samples, features); got shape {shape}. "
                             f"Add a Flatten() layer before it.")
        if self.built and shape[-1] != self.input_dim:
            raise ValueError(f"expected axis -1 of input shape to have value {self.input_dim}, but "
                             f"received input with shape {shape}")

    def _weight_specs(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) < 1 or input_shape[-1] is None:
            raise ValueError(f"Dense layer {self.name!r} needs a known last input dimension; "
                             f"got input shape {input_shape}")
        if len(input_shape) > 2:
            raise ValueError(f"fastmlp's Dense expects 2-D input (samples, features); layer "
                             f"{self.name!r} got input shape {input_shape}")
        specs = [WeightSpec("kernel", (int(input_shape[-1]), self.units), True, self.kernel_initializer,
                            self.kernel_regularizer)]
        if self.use_bias:
            specs.append(WeightSpec("bias", (self.units,), True, self.bias_initializer, self.bias_regularizer))
        return specs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def _engine_node(self, input_shapes):
        return {"activation": self.activation._fm_code, "act_alpha": self.activation._fm_alpha}

    def call(self, x, training=False):
        from .. import _engine
        if getattr(self, "_mixed", False) and self._int8 is None:   # mixed_bfloat16: the bfloat16 GEMM
            import fastmlp.models.bfloat16 as bfloat16
            out = bfloat16.packed(self).forward(np.asarray(x, np.float32).reshape(-1, x.shape[-1]))
            _engine.activation_forward(self.activation._fm_code, self.activation._fm_alpha, out,
                                       None if self.bias is None else np.ascontiguousarray(self.bias))
            return out.reshape(x.shape[:-1] + (self.units,))
        out = np.ascontiguousarray(x @ self.kernel, dtype=self.dtype).reshape(-1, self.units)
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
