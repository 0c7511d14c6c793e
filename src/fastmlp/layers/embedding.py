"""``Embedding``: integer ids to trainable vectors; engine kind ``embedding``
(csrc/kinds/embedding.c)."""
import warnings

import numpy as np

from .. import initializers, regularizers
from .base import Layer, WeightSpec, _DEFERRED, _positive_int

__all__ = ["Embedding", "MAX_FLOAT32_INPUT_DIM", "check_ids"]

# The engine carries every input in the model's float type: float32 holds the
# whole numbers below 2^24 exactly, float64 those below 2^53.
MAX_FLOAT32_INPUT_DIM = 1 << 24
MAX_FLOAT64_INPUT_DIM = 1 << 53


class Embedding(Layer):
    """``keras.layers.Embedding(input_dim, output_dim)``: each id of a sample (a
    whole number in ``[0, input_dim)``) becomes row ``id`` of the trainable table
    ``embeddings`` (``input_dim x output_dim``, initialized uniformly in
    [-0.05, 0.05] as in Keras).  A sample of shape ``(n,)`` gives ``(n,
    output_dim)``; ``Flatten`` then makes the ``n * output_dim`` features a
    ``Dense`` layer takes (the engine holds the sample in that flat order).

    The ids must come straight from a model input (an integer category column;
    ``Input(shape=(n,), dtype="int32")`` or a float input holding whole numbers):
    the data is checked before it enters the engine, and an id outside ``[0,
    input_dim)``, a fraction or a NaN raises ValueError.  Ids travel as the
    model's float type, exact below 2^24 (float32; ``input_dim`` is limited to
    that) or 2^53 (float64).  The gradient is the table's dense gradient (zero
    but for the rows used), as Keras's torch backend computes it, so every
    optimizer gives Keras's numbers.  ``mask_zero=True`` is not supported."""
    _base_name = "embedding"
    engine_kind = "embedding"
    format_minor = 3

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", embeddings_regularizer=None,
                 embeddings_constraint=None, mask_zero=False, weights=None, lora_rank=None, lora_alpha=None,
                 quantization_config=None, activity_regularizer=None, **kwargs):
        input_length = kwargs.pop("input_length", None)
        if input_length is not None:   # Keras 3 warns and ignores it too
            warnings.warn("Argument `input_length` is deprecated. Just remove it.", stacklevel=2)
        super().__init__(**kwargs)
        self.input_dim = _positive_int("input_dim", input_dim)
        self.output_dim = _positive_int("output_dim", output_dim)
        if mask_zero:
            raise NotImplementedError("Embedding(mask_zero=True) is not supported by fastmlp (no masking)")
        for arg, value in (("embeddings_constraint", embeddings_constraint), ("lora_rank", lora_rank),
                           ("lora_alpha", lora_alpha), ("quantization_config", quantization_config),
                           ("activity_regularizer", activity_regularizer)):
            if value is not None:
                raise ValueError(f"Embedding({arg}=...) is not supported by fastmlp")
        self.mask_zero = False
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self._initial_weights = None
        if weights is not None:
            w = list(weights) if isinstance(weights, (list, tuple)) else [weights]
            if len(w) != 1 or np.shape(w[0]) != (self.input_dim, self.output_dim):
                raise ValueError(f"Embedding(weights=...) takes one array of shape ({self.input_dim}, "
                                 f"{self.output_dim}); received shapes {[np.shape(a) for a in w]}")
            self._initial_weights = w
        self.embeddings = None

    def _limit(self):
        return MAX_FLOAT64_INPUT_DIM if self.dtype == "float64" else MAX_FLOAT32_INPUT_DIM

    def _check_input_shapes(self, shape):
        shape = tuple(shape)
        if len(shape) < 2 or None in shape[1:]:
            raise ValueError(f"Embedding needs ids of a fixed sample shape, e.g. (None, n); got {shape}")
        if self.input_dim > self._limit():
            raise ValueError(f"Embedding input_dim={self.input_dim} is above {self._limit()}, the largest id "
                             f"count that {self.dtype} carries exactly" +
                             (" (use fastmlp.config.set_floatx('float64'))" if self.dtype == "float32" else ""))

    def _compatible(self, shapes):
        return True   # the table does not depend on the number of ids: one table serves calls of any shape

    def _weight_specs(self, input_shape):
        return [WeightSpec("embeddings", (self.input_dim, self.output_dim), True, self.embeddings_initializer,
                           self.embeddings_regularizer)]

    def build(self, input_shape):
        super().build(input_shape)
        if self._initial_weights is not None and not _DEFERRED[0]:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def _engine_node(self, input_shapes):
        return {"param": self.input_dim}

    def _eager_call(self, x, training):
        ids = check_ids(x, self.input_dim, self.name)
        if not self.built:
            self.build((None,) + ids.shape[1:])
        return np.asarray(self.embeddings[ids], dtype=self.dtype)

    def call(self, x, training=False):
        return np.asarray(self.embeddings[check_ids(x, self.input_dim, self.name)], dtype=self.dtype)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
                "activity_regularizer": None, "embeddings_constraint": None, "mask_zero": False,
                "quantization_config": None}


def check_ids(x, input_dim, name):
    """``x`` as int64 ids after checking that every value is a whole number in
    ``[0, input_dim)``; ValueError naming the layer and the first bad value."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"Embedding {name!r} takes numeric ids; got an array of dtype {arr.dtype}")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.floor(arr)) | (arr < 0) | (arr >= input_dim)
    else:
        bad = (arr < 0) | (arr >= input_dim)
    if bad.any():
        value = arr[bad].flat[0].item()
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        raise ValueError(f"Embedding {name!r} received the id {value!r}: its ids must be whole numbers in "
                         f"[0, input_dim) = [0, {input_dim})")
    return arr.astype(np.int64)
