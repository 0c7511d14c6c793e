"""``Sequential``: a linear stack of layers, as ``keras.Sequential`` — a
functional model whose graph is built once its input shape is known."""
import numpy as np

from .. import config as _config
from ..layers.base import KerasTensor, Layer, _unique_name
from ..layers.flatten import Flatten
from ..layers.input_layer import Input, InputLayer
from ..variables import name_scope
from fastmlp.models.functional import Model, layer_from_entry
from fastmlp.models.training import Trainer

__all__ = ["Sequential"]


class Sequential(Model):
    """A linear stack of layers, as ``keras.Sequential``.

    >>> model = Sequential([Input(shape=(4,)), Dense(8, activation="relu"),
    ...                     Dense(3, activation="softmax")])
    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
    ...               metrics=["accuracy"])
    """
    _base_name = "sequential"
    _single_input_only = True

    def __init__(self, layers=None, name=None, trainable=True):
        Layer.__init__(self, name=name or _unique_name("sequential"), trainable=trainable)
        Trainer.__init__(self)
        self._layers = []
        self._layer_names = set()   # of self._layers, so that add checks uniqueness in O(1)
        self._input_shape = None
        self._input_dtype = None
        self._ids_dtype = None      # an integer Input's dtype (ids for an Embedding), kept for the config
        self.built = False
        if layers is not None:
            if not isinstance(layers, (list, tuple)):
                raise TypeError(f"`layers` must be a list of layers. Received: layers={layers!r}")
            for layer in layers:
                self.add(layer, rebuild=False)
            self._maybe_build()

    # ------------------------------------------------------------------ structure
    def add(self, layer, rebuild=True):
        """Append a layer, a model, or (first) an ``Input``."""
        if isinstance(layer, KerasTensor) and isinstance(layer._history[0], InputLayer):
            layer = layer._history[0]
        if isinstance(layer, InputLayer):
            if self._layers or self._input_shape is not None:
                raise ValueError("An Input/InputLayer can only be the first element of a Sequential model")
            self._input_shape = layer.shape
            self._input_dtype = layer._dtype
            self._ids_dtype = layer._int_dtype
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"The added layer must be an instance of class Layer. "
                            f"Received: layer={layer!r} of type {type(layer)}.")
        if self.built:
            self._unbuild()
        if layer.name in self._layer_names:   # a hit is confirmed: a layer may have been renamed since
            self._layer_names = {existing.name for existing in self._layers}
        if layer.name in self._layer_names:
            raise ValueError(f"All layers added to a Sequential model should have unique names. "
                             f"Name {layer.name!r} is already the name of a layer in this model.")
        if not self._layers and self._input_shape is None:
            if getattr(layer, "_is_model", False) and layer.built and len(layer.inputs) == 1:
                self._input_shape = tuple(layer.inputs[0].shape[1:])
            elif layer._input_shape_arg is not None:
                self._input_shape = layer._input_shape_arg
        self._layers.append(layer)
        self._layer_names.add(layer.name)
        if rebuild:
            self._maybe_build()

    def pop(self):
        if not self._layers:
            raise TypeError("There are no layers in the model.")
        if self.built:
            self._unbuild()
        layer = self._layers.pop()
        self._layer_names.discard(layer.name)
        self._maybe_build()
        return layer

    def _unbuild(self):
        """Forget the graph and the engine so the stack can change; the layers keep
        their weights, and the next build lays out a new vector (optimizer state
        starts afresh)."""
        self.built = False
        self._net = None
        self._params = None
        self._metrics = None
        if self.optimizer is not None:
            self.optimizer._slots = None

    @property
    def layers(self):
        return list(self._layers)

    def _maybe_build(self):
        if self._input_shape is not None and self._layers and not self.built:
            self.build((None,) + tuple(self._input_shape))

    def build(self, input_shape=None):
        """Build the graph (and every layer's weights) for ``input_shape`` = (batch, features...)."""
        if self.built:
            return
        if input_shape is None:
            if self._input_shape is None:
                raise ValueError("You must provide an `input_shape` argument to build a model "
                                 "whose first layer does not declare one.")
            input_shape = (None,) + tuple(self._input_shape)
        input_shape = tuple(input_shape)
        if len(input_shape) < 2 or None in input_shape[1:]:
            raise ValueError(f"A fastmlp Sequential model needs a fixed input shape: (samples, features) or, "
                             f"with a Flatten layer, (samples, d1, d2, ...); got input shape {input_shape}")
        if not self._layers:
            raise ValueError("The model has no layers to build")
        _check_flattened(self._layers, input_shape[1:])
        dtypes = {l._dtype for l in self._layers if l._dtype is not None}
        if self._input_dtype is not None:
            dtypes.add(self._input_dtype)
        dtype = dtypes.pop() if len(dtypes) == 1 else _config.floatx()
        self._input_shape = tuple(int(d) for d in input_shape[1:])
        inp = Input(shape=self._input_shape, dtype=self._ids_dtype or dtype, name=self.name + "_input")
        x = inp
        with name_scope(self.name):   # variable paths "sequential/dense/kernel", as Keras's
            for layer in self._layers:
                x = layer(x)
        self._init_graph(inp, x)

    def _build_from_data(self, x):
        if isinstance(x, (list, tuple, dict)) and not hasattr(x, "shape"):
            raise TypeError("fastmlp Sequential models take a single input array, not a list or dict")
        arr = np.asarray(x)
        if arr.ndim == 1:
            raise ValueError(f"`x` must be 2-D (samples, features); got a 1-D array of shape "
                             f"{arr.shape}. Use x.reshape(1, -1) for one sample or "
                             f"x.reshape(-1, 1) for one feature.")
        if arr.ndim > 2 and not any(isinstance(layer, Flatten) for layer in self._layers):
            raise ValueError(f"A dense stack expects 2-D input (samples, features); `x` has shape "
                             f"{arr.shape}. Add a Flatten() layer first, or flatten the data, e.g. "
                             f"x.reshape(len(x), -1).")
        self.build((None,) + arr.shape[1:])

    @property
    def input_shape(self):
        return None if self._input_shape is None else (None,) + tuple(self._input_shape)

    @property
    def output_shape(self):
        self._require_built("output_shape")
        return tuple(self.outputs[0].shape)

    def _symbolic_call(self, x):
        """As Keras's: a Sequential called on a tensor before it is built builds for that
        tensor's shape (a nested feature extractor in a functional model)."""
        if not self.built and self._layers and hasattr(x, "shape") and not isinstance(x, (list, tuple, dict)):
            self.build((None,) + tuple(x.shape[1:]))
        return super()._symbolic_call(x)

    def _require_built(self, what):
        if not self.built:
            raise ValueError(f"Sequential model {self.name!r} has not been built yet, so `{what}` is "
                             f"unavailable: give the first layer an input shape, add an Input, or call "
                             f"the model on data first.")

    @property
    def weights(self):
        if not self.built:
            return [w for layer in self._layers for w in layer.weights]
        return super().weights

    # ------------------------------------------------------------------ config
    def get_config(self):
        cfg = {"name": self.name, "trainable": bool(self.trainable), "layers": []}
        if self._input_shape is not None:
            cfg["layers"].append({"class_name": "InputLayer",
                                  "config": {"batch_shape": (None,) + tuple(self._input_shape),
                                             "dtype": self._ids_dtype or self.dtype}})
        for layer in self._layers:
            kind = "Sequential" if isinstance(layer, Sequential) else \
                ("Functional" if getattr(layer, "_is_model", False) else type(layer).__name__)
            cfg["layers"].append({"class_name": kind, "config": layer.get_config()})
        return cfg

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A new, unbuilt-or-built model from ``get_config()`` (declarative: only
        fastmlp's own layer kinds are accepted)."""
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("A Sequential config is a dict with a 'layers' list")
        trainable = config.get("trainable", True)
        if not isinstance(trainable, bool):
            raise ValueError("A Sequential config's 'trainable' must be true or false")
        name = config.get("name")
        if name is not None and not isinstance(name, str):
            raise ValueError("A Sequential config's 'name' must be a string")
        model = cls(name=name, trainable=trainable)
        for i, entry in enumerate(config["layers"]):
            model.add(layer_from_entry(entry, f"layer #{i}"), rebuild=False)
        model._maybe_build()
        return model


def _check_flattened(layers, sample_shape):
    """Layers other than Dropout and the noise layers (element-wise) and those that
    declare ``_any_sample_shape`` (Rescaling, Normalization, ...) take flat feature
    vectors: samples of higher rank must meet a Flatten (or a flattening Reshape) first."""
    from ..layers.dropout import Dropout
    from ..layers.gaussian_noise import GaussianNoise
    from ..layers.noise_dropout import AlphaDropout, GaussianDropout
    if len(sample_shape) == 1:
        return
    for layer in layers:
        if isinstance(layer, Flatten) or getattr(layer, "_flattens", False):
            return
        if not isinstance(layer, (Dropout, GaussianNoise, GaussianDropout, AlphaDropout)) \
                and not getattr(layer, "_any_sample_shape", False):
            break
    raise ValueError(f"Layer {layer.name!r} ({type(layer).__name__}) takes flat feature vectors, but the "
                     f"model's samples have shape {tuple(sample_shape)}: add a Flatten() layer before it.")
