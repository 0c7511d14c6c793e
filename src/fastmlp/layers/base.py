"""``Layer``, the symbolic tensors that layer calls make, and the nodes that
record those calls: what a functional model is built from.

Calling a layer on arrays computes (NumPy, or the engine's kernels); calling
it on a ``KerasTensor`` (from ``Input`` or another layer call) records a
``Node`` — the layer, its input tensors, its output tensor — and returns the
output tensor, as Keras does.  A model walks these nodes back from its outputs.
"""
import math

import numpy as np

from .. import config as _config
from .. import utils
from ..variables import Variable, _as_tensor, _scoped_path

__all__ = ["Layer", "KerasTensor", "Node", "WeightSpec"]

_NAME_COUNTS = {}


def _unique_name(base):
    n = _NAME_COUNTS.get(base, 0)
    _NAME_COUNTS[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def _shape_tuple(shape, what):
    """``shape`` as a tuple of positive ints and None.  Entries must be integers (Python or
    NumPy; not bool, not float: 5.7 is an error, never silently 5), as Keras requires."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    if isinstance(shape, (str, bytes)):
        raise ValueError(f"{what} must be a tuple of integers. Received: {what}={shape!r}")
    try:
        dims = list(shape)
    except TypeError:
        raise ValueError(f"{what} must be a tuple of integers. Received: {what}={shape!r}") from None
    for d in dims:
        if d is not None and (isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer))):
            raise ValueError(f"{what} must be a tuple of integers; found the entry {d!r} of type "
                             f"{type(d).__name__}. Received: {what}={shape!r}")
    shape = tuple(None if d is None else int(d) for d in dims)
    for d in shape:
        if d is not None and d <= 0:
            raise ValueError(f"{what} must contain positive integers. Received: {what}={shape!r}")
    return shape


def _float_dtype_name(dtype):
    if isinstance(dtype, dict) and dtype.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") \
            and isinstance(dtype.get("config"), dict):
        dtype = dtype["config"].get("name")   # Keras 3 configs hold a policy: {"config": {"name": "float32"}}
    if isinstance(dtype, str) and dtype in ("float32", "float64"):
        return dtype
    try:
        name = str(np.dtype(dtype))
    except (TypeError, ValueError):
        name = None
    if name not in ("float32", "float64"):
        raise ValueError(f"Unsupported layer dtype {dtype!r}: expected 'float32' or 'float64'")
    return name


def _layer_dtype(dtype):
    """A layer's ``(variable dtype or None, mixed)`` from its ``dtype`` argument: a float
    type name, a ``DTypePolicy`` (or Keras's serialized one) or None (the global
    policy when one was set).  ``mixed``: the ``mixed_bfloat16`` policy."""
    import fastmlp.mixed_precision as mixed_precision
    if dtype is None:
        dtype = mixed_precision._GLOBAL[0]
        if dtype is None:
            return None, False
    policy = None
    if isinstance(dtype, mixed_precision.DTypePolicy):
        policy = dtype
    elif dtype == "mixed_bfloat16" or (isinstance(dtype, dict) and isinstance(dtype.get("config"), dict) and
                                       dtype.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and
                                       str(dtype["config"].get("name", "")).startswith("mixed_")):
        policy = mixed_precision._policy(dtype)
    elif isinstance(dtype, str) and dtype.startswith("mixed_"):
        policy = mixed_precision.DTypePolicy(dtype)   # raises, naming what fastmlp supports
    if policy is not None:
        return policy.variable_dtype, policy.name == "mixed_bfloat16"
    return _float_dtype_name(dtype), False


def _assign_weights(current, weights, owner, shape_message=None):
    """Copy ``weights`` into the arrays ``current`` after checking count, dtype
    and shapes (nothing is written unless everything matches)."""
    weights = list(weights)
    if len(weights) != len(current):
        raise ValueError(f"You called `set_weights(weights)` on {owner} with a weight list of length "
                         f"{len(weights)}, but it was expecting {len(current)} weights.")
    arrays = []
    for i, (ref, new) in enumerate(zip(current, weights)):
        new = np.asarray(new)
        if new.dtype.kind not in "biuf":
            raise TypeError(f"Weight {i} of {owner} must be numeric; got dtype {new.dtype}")
        if new.shape != ref.shape:
            raise ValueError(shape_message(i, ref.shape, new.shape) if shape_message else
                             f"Weight {i} given to {owner} has shape {new.shape}, but {owner} expects "
                             f"{ref.shape}.")
        arrays.append(new)
    for ref, new in zip(current, arrays):
        ref[...] = new


def _check_number(name, value, low=None, high=None, low_open=False, high_open=False):
    """A real number within [low, high] (open ends as asked): the value, else ValueError naming it."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "" if low is None else ("(" if low_open else "[") + str(low)
        hi = "" if high is None else str(high) + (")" if high_open else "]")
        where = f" in {lo}, {hi}" if lo and hi else (f" >= {low}" if lo else "")
        raise ValueError(f"Invalid value received for argument `{name}`: expected a finite number{where}. "
                         f"Received: {name}={value!r}")
    return float(value)


# While set, layers that build take no initial values: a loader fills them from a file.
_DEFERRED = [0]


class deferred_weights:
    """``with deferred_weights():`` layers built inside get their weight specs but no
    values (no initializer runs), and models lay out their plan without attaching:
    the loader then attaches the file's parameter vector."""

    def __enter__(self):
        _DEFERRED[0] += 1

    def __exit__(self, *exc):
        _DEFERRED[0] -= 1


def weights_deferred():
    return _DEFERRED[0] > 0


def _initial_value(spec, dtype):
    value = np.asarray(spec.initializer(spec.shape, dtype), dtype=dtype)
    if value.shape != spec.shape:
        raise ValueError(f"The initializer of weight {spec.name!r} returned shape {value.shape}; expected "
                         f"{spec.shape}")
    return value


class WeightSpec:
    """One weight a layer creates in ``build``: its name (the attribute holding it),
    shape, whether the optimizer trains it, its initializer and regularizer.

    A ``constant`` is a value from the layer's config that the engine reads from the
    parameter vector (Rescaling's scale, a Normalization's given mean): it is laid out
    and saved like a non-trainable weight, but is not one of Keras's weights, so
    ``weights``, ``get_weights`` and ``set_weights`` leave it out."""
    __slots__ = ("name", "shape", "trainable", "initializer", "regularizer", "constant")

    def __init__(self, name, shape, trainable=True, initializer=None, regularizer=None, constant=False):
        self.name, self.shape, self.trainable = name, tuple(int(d) for d in shape), trainable and not constant
        self.initializer, self.regularizer, self.constant = initializer, regularizer, constant


class KerasTensor:
    """The symbolic output of a layer call: ``shape`` (batch first, None), ``dtype``,
    ``name``; ``_history`` is (layer, node, index) of the call that made it."""

    def __init__(self, shape, dtype, name=None, history=None):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.name = name
        self._history = history

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def __array__(self, *args, **kwargs):
        raise TypeError(f"A symbolic KerasTensor ({self.name}) has no values: it stands for the data a model "
                        f"will receive. Build a model with `fastmlp.Model(inputs, outputs)` and call "
                        f"`model.predict(data)` to compute.")

    def __len__(self):
        raise TypeError("A symbolic KerasTensor has no length; its shape is " + str(self.shape))


class Node:
    """One call of ``layer``: its input tensors (``args``: the first call argument,
    a tensor or a list of tensors, as given) and its output tensors (one, except
    for a model with several outputs)."""

    def __init__(self, layer, args, outputs):
        self.layer = layer
        self.args = args
        self.outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]

    @property
    def output(self):
        return self.outputs[0]

    @property
    def inputs(self):
        return list(self.args) if isinstance(self.args, (list, tuple)) else [self.args]


def _is_symbolic(x):
    if isinstance(x, KerasTensor):
        return True
    if isinstance(x, (list, tuple)) and x and all(isinstance(t, KerasTensor) for t in x):
        return True
    if isinstance(x, dict) and x and all(isinstance(t, KerasTensor) for t in x.values()):
        return True
    return False


class Layer:
    """Base class of fastmlp layers.

    Subclasses set ``engine_kind`` (a name of ``_engine.KINDS``; None: no engine
    node, as Flatten) and ``format_minor`` (the model-file minor version that
    introduced them), and may override ``_weight_specs``, ``_engine_node``,
    ``compute_output_shape`` and ``call`` (the NumPy computation on arrays)."""
    _base_name = "layer"
    engine_kind = None
    format_minor = 0       # the model-file minor version that introduced this kind (docs/FORMAT.md)
    _takes_list = False    # merge layers take a list of tensors

    def __init__(self, name=None, dtype=None, trainable=True, input_shape=None, input_dim=None,
                 batch_input_shape=None, **kwargs):
        if kwargs:
            raise TypeError(f"Unrecognized keyword argument(s) passed to {type(self).__name__}: "
                            f"{sorted(kwargs)}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Layer name must be a string. Received: name={name!r}")
        if name is not None and ("/" in name or not name):
            raise ValueError(f"Layer names must be non-empty and may not contain '/'. Received: name={name!r}")
        self.name = name or _unique_name(self._base_name)
        self._dtype, self._mixed = _layer_dtype(dtype)
        self.trainable = bool(trainable)
        self.built = False
        self._wspecs = []
        self._inbound_nodes = []
        self._input_shape_arg = None
        if input_dim is not None:
            self._input_shape_arg = _shape_tuple((input_dim,), "input_dim")
        elif input_shape is not None:
            self._input_shape_arg = _shape_tuple(input_shape, "input_shape")
        elif batch_input_shape is not None:
            self._input_shape_arg = _shape_tuple(batch_input_shape, "batch_input_shape")[1:]

    @property
    def dtype(self):
        return self._dtype or _config.floatx()

    @property
    def dtype_policy(self):
        """The layer's ``DTypePolicy`` (``fastmlp.mixed_precision``)."""
        from ..mixed_precision import DTypePolicy
        return DTypePolicy("mixed_bfloat16" if getattr(self, "_mixed", False) else self.dtype)

    @property
    def compute_dtype(self):
        return "bfloat16" if getattr(self, "_mixed", False) else self.dtype

    @property
    def variable_dtype(self):
        return self.dtype

    # ---- weights ----
    def _weight_specs(self, input_shape):
        """The weights this layer creates for ``input_shape``, in Keras's order."""
        return []

    @property
    def weights(self):
        return [getattr(self, s.name) for s in self._wspecs if not s.constant] if self.built else []

    @property
    def trainable_weights(self):
        return [getattr(self, s.name) for s in self._wspecs if s.trainable] if self.built else []

    @property
    def non_trainable_weights(self):
        return [getattr(self, s.name) for s in self._wspecs if not s.trainable and not s.constant] \
            if self.built else []

    def get_weights(self):
        return [w.numpy() for w in self.weights]

    def set_weights(self, weights):
        _assign_weights(self.weights, weights, f"layer {self.name!r}",
                        lambda i, ref, new: f"Layer {self.name!r} weight shape {ref} is not compatible "
                                            f"with provided weight shape {new}.")

    def count_params(self):
        if not self.built:
            raise ValueError(f"You tried to call `count_params` on layer {self.name!r}, but the layer "
                             f"isn't built. You can build it manually via: `layer.build(input_shape)`.")
        return int(sum(math.prod(s.shape) for s in self._wspecs))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def build(self, input_shape):
        """Create the weights for ``input_shape`` with their initializers (inside
        ``deferred_weights()``: their specs only, the values come later)."""
        _refuse_python_computation(self)
        specs = self._weight_specs(input_shape)
        for s in specs:
            setattr(self, s.name, Variable._of_layer(
                self, s, None if _DEFERRED[0] else _initial_value(s, self.dtype), _scoped_path(self.name, s.name)))
        self._wspecs = specs
        self.built = True

    def _adopt(self, input_shape, views):
        """Build with ready weights (views into a model's parameter vector), running
        no initializer: ``views`` maps weight name to array."""
        specs = self._weight_specs(input_shape)
        for s in specs:
            setattr(self, s.name, Variable._of_layer(self, s, views[s.name], _scoped_path(self.name, s.name)))
        self._wspecs = specs
        self.built = True

    def _variable(self, weight_name):
        """The Variable holding weight ``weight_name`` (its values: ``.value``)."""
        return getattr(self, weight_name)

    # ---- the engine ----
    def _engine_node(self, input_shapes):
        """The fields of this call's engine node other than kind, inputs, width and
        offsets (activation, rate, seed, ...)."""
        return {}

    def _check_input_shapes(self, shapes):
        """Raise ValueError when the layer cannot take inputs of these shapes."""

    # ---- config ----
    def get_config(self):
        if getattr(self, "_mixed", False):   # Keras 3 writes the policy
            from ..mixed_precision import _serialize
            return {"name": self.name, "trainable": self.trainable, "dtype": _serialize(self.dtype_policy)}
        return {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # ---- calls ----
    def __call__(self, *args, training=None, **kwargs):
        if not args:
            if "inputs" not in kwargs:
                raise TypeError(f"{type(self).__name__} must be called on inputs")
            args = (kwargs.pop("inputs"),)
        if kwargs or len(args) != 1:
            extra = sorted(kwargs) or [f"{len(args) - 1} extra positional argument(s)"]
            raise TypeError(f"fastmlp layers take one input argument (a tensor, an array or, for merge "
                            f"layers, a list); {type(self).__name__} got {extra}")
        _refuse_python_computation(self)
        x = args[0]
        if _is_symbolic(x):
            return self._symbolic_call(x)
        return _as_tensor(self._eager_call(x, bool(training)))

    def _eager_call(self, x, training):
        x = np.asarray(x, dtype=self.dtype)
        if not self.built:
            self.build(x.shape)
        return self.call(x, training=training)

    def call(self, x, training=False):
        return x

    def _symbolic_call(self, x):
        if isinstance(x, dict):
            raise TypeError(f"Layer {self.name!r} was called on a dict of tensors; pass a tensor or a list")
        if self._takes_list:
            if not isinstance(x, (list, tuple)):
                raise ValueError(f"A merge layer ({type(self).__name__} {self.name!r}) should be called on a "
                                 f"list of inputs. Received: {x!r}")
            shapes = [t.shape for t in x]
        else:
            if isinstance(x, (list, tuple)):
                if len(x) != 1:
                    raise ValueError(f"Layer {self.name!r} ({type(self).__name__}) takes one input tensor; "
                                     f"it was called on a list of {len(x)}")
                x = x[0]
            shapes = x.shape
        try:
            self._check_input_shapes(shapes)
            if not self.built:
                self.build(shapes)
            elif self._wspecs and hasattr(self, "_built_shape") and not self._compatible(shapes):
                # a layer with weights takes the shapes it was built for; one without (an
                # activation, a merge, Dropout) may be called on any shapes, as in Keras
                raise ValueError(f"expected input shape {self._built_shape}, got {shapes}")
            out_shape = self.compute_output_shape(shapes)
        except ValueError as e:
            raise ValueError(f"Input 0 of layer {self.name!r} ({type(self).__name__}) is incompatible with the "
                             f"layer: {e}") from None
        if not hasattr(self, "_built_shape"):
            self._built_shape = shapes
        # integer inputs (an Embedding's ids) do not make a layer's output an integer tensor
        dtypes = {t.dtype for t in (x if isinstance(x, (list, tuple)) else [x])
                  if t.dtype in ("float32", "float64")}
        out = KerasTensor(out_shape, self._dtype or dtypes.pop() if len(dtypes) == 1 else self.dtype,
                          name=f"{self.name}/output_{len(self._inbound_nodes)}")
        node = Node(self, list(x) if isinstance(x, (list, tuple)) else x, out)
        out._history = (self, len(self._inbound_nodes), 0)
        self._inbound_nodes.append(node)
        return out

    # ---- the tensors of the first call (Keras 3: ``layer.output``, e.g. to cut an encoder
    # out of a model as ``Model(model.input, model.get_layer("code").output)``) ----
    def _first_node(self, what):
        if not self._inbound_nodes:
            raise AttributeError(f"The layer {self.name} has never been called and thus has no defined {what}.")
        return self._inbound_nodes[0]

    @property
    def output(self):
        """The output tensor of the layer's first call."""
        node = self._first_node("output")
        return node.outputs[0] if len(node.outputs) == 1 else list(node.outputs)

    @property
    def input(self):
        """The input tensor (a list, for a merge layer) of the layer's first call."""
        return self._first_node("input").args

    def _compatible(self, shapes):
        def norm(s):
            return [tuple(t)[1:] for t in s] if self._takes_list else tuple(s)[1:]
        return norm(shapes) == norm(self._built_shape)

    def _set_seed(self, seed):
        """The seed of a random layer (Dropout, GaussianNoise): None (the model's) or a
        non-negative integer; standalone calls draw from a generator of their own."""
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"{type(self).__name__} seed must be a non-negative integer. Received: seed={seed!r}")
        self.seed = seed
        self._rng = np.random.default_rng(seed)   # for calls outside a model only

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def _refuse_python_computation(layer):
    """A Layer subclass written outside fastmlp that defines its own ``call`` would need
    Python in the engine's forward and backward passes: refuse it, naming what exists."""
    for cls in type(layer).__mro__:
        if "call" in vars(cls) and not cls.__module__.startswith("fastmlp."):
            raise NotImplementedError(
                f"Layer {layer.name!r} ({cls.__name__}) defines its own `call`: fastmlp runs every layer inside "
                f"its C engine and cannot run Python layer code. Build the computation from the built-in "
                f"layers ({', '.join(_builtin_layer_names())}) with the "
                f"functional API; subclassing a built-in layer to change its defaults (without `call`) works.")


def _builtin_layer_names():
    """The public layer classes fastmlp defines (every subclass of Layer in fastmlp.layers)."""
    names, todo = set(), [Layer]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("fastmlp.layers.") and not sub.__name__.startswith("_") \
                    and sub.__name__ != "InputLayer":
                names.add(sub.__name__)
    return sorted(names)


def _engine_seed(seed):
    """A random layer's own seed as the engine takes it (0: the model's)."""
    return 0 if seed is None else (int(seed) * 0x9E3779B97F4A7C15 + 1) % (1 << 64)


def _positive_int(name, value):
    if not utils._is_positive_int(value):
        raise ValueError(f"Received an invalid value for `{name}`, expected a positive integer. "
                         f"Received: {name}={value!r}")
    return int(value)
