"""``Variable``: a model weight, as ``keras.Variable``.

A layer's weights (``layer.kernel``, ``model.weights``, ...) are Variables whose
values live in the engine's flat parameter vector: ``assign`` writes there in
place, so the next ``predict`` or ``fit`` step sees the new values with no
rebuild.  A Variable is NumPy-friendly: ``np.asarray(v)`` is a view of its
values, and arithmetic (``v * 2``, ``x @ v``, ``np.sqrt(v)``) gives plain arrays.

A Variable made directly (``fastmlp.Variable(np.zeros(3))``) holds its own array.
"""
import math
import operator

import numpy as np

__all__ = ["Variable"]

# Names of the models whose build is running (Keras's name scopes): a Sequential
# builds its layers inside its own scope, so their paths read "sequential/dense/kernel".
_SCOPE = []


class name_scope:
    """``with name_scope("sequential"):`` variables created inside get paths under that name."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        _SCOPE.append(self.name)
        return self

    def __exit__(self, *exc):
        _SCOPE.pop()


def _scoped_path(*names):
    return "/".join(list(_SCOPE) + [n for n in names if n])


def _value_of(x):
    return x._value() if isinstance(x, Variable) else x


def _binary(op, reflected=False):
    def method(self, other):
        if reflected:
            return op(_value_of(other), self._value())
        return op(self._value(), _value_of(other))
    return method


def _unary(op):
    def method(self):
        return op(self._value())
    return method


class Variable:
    """A weight: ``Variable(initializer, shape=None, dtype=None, trainable=True, name=None)``.

    ``initializer`` is an array-like value, or an initializer (a name such as
    ``"glorot_uniform"``, an instance, or a callable ``f(shape, dtype)``) with
    ``shape``.  Attributes follow Keras 3: ``name``, ``path``, ``shape`` (a
    tuple), ``dtype`` (a string such as ``'float32'``), ``ndim``, ``trainable``,
    ``value``; methods ``numpy()``, ``assign``, ``assign_add``, ``assign_sub``.
    ``v[...] = x`` writes in place too (a NumPy convenience Keras lacks).
    ``autocast``, ``aggregation`` and ``synchronization`` are validated and kept as
    attributes; they only matter for mixed precision and multi-device training, which
    fastmlp does not have.
    """
    __array_priority__ = 100   # ndarray <op> Variable defers to the Variable's reflected method

    def __init__(self, initializer, shape=None, dtype=None, trainable=True, autocast=True,
                 aggregation="none", synchronization="auto", name=None, **kwargs):
        if kwargs:
            raise TypeError(f"Unrecognized keyword argument(s) passed to Variable: {sorted(kwargs)}")
        if name is not None and (not isinstance(name, str) or "/" in name):
            raise ValueError(f"Argument `name` must be a string and cannot contain character `/`. "
                             f"Received: name={name!r}")
        if aggregation not in ("none", "mean", "sum", "only_first_replica"):
            raise ValueError(f"Invalid value for argument `aggregation`. Expected one of 'none', 'mean', "
                             f"'sum', 'only_first_replica'. Received: aggregation={aggregation!r}")
        if synchronization not in ("none", "on_write", "on_read", "auto"):
            raise ValueError(f"Invalid value for argument `synchronization`. Expected one of 'none', "
                             f"'on_write', 'on_read', 'auto'. Received: synchronization={synchronization!r}")
        dtype = None if dtype is None else str(np.dtype(dtype))
        from . import initializers
        if isinstance(initializer, (str, dict, initializers.Initializer)) or \
                (isinstance(initializer, type) and issubclass(initializer, initializers.Initializer)):
            initializer = initializers.get(initializer)
        if callable(initializer) and not isinstance(initializer, (Variable, np.ndarray)):
            if shape is None:
                raise ValueError(f"When creating a Variable from an initializer, the `shape` argument should be "
                                 f"specified. Received: initializer={initializer!r} and shape={shape!r}")
            value = np.asarray(initializer(tuple(int(d) for d in shape), dtype or _floatx()))
        else:
            value = np.asarray(_value_of(initializer))
            if shape is not None and tuple(shape) != value.shape:
                raise ValueError(f"Initial value has shape {value.shape}, but `shape` is {tuple(shape)}")
        if value.dtype.kind not in "biuf":
            raise TypeError(f"A Variable holds numbers; its initial value has dtype {value.dtype}")
        if dtype is None:   # an array keeps its dtype (as in Keras); Python numbers take floatx
            given = _value_of(initializer)
            dtype = str(value.dtype) if isinstance(given, (np.ndarray, np.generic)) or value.dtype.kind != "f" \
                else _floatx()
        self._array = np.array(value, dtype=dtype)
        self._name = name or "variable"
        self._path = _scoped_path(self._name)
        self._trainable = bool(trainable)
        self.autocast, self.aggregation, self.synchronization = autocast, aggregation, synchronization
        self._layer = None
        self._spec = None
        self._owners = ()

    @classmethod
    def _of_layer(cls, layer, spec, array, path):
        """The variable of ``layer``'s weight ``spec`` (values ``array``; None until a loader fills them)."""
        v = cls.__new__(cls)
        v._array = array
        v._name, v._path, v._trainable = spec.name, path, bool(spec.trainable)
        v.autocast, v.aggregation, v.synchronization = True, "none", "auto"
        v._layer, v._spec, v._owners = layer, spec, ()
        return v

    # ---- attributes ----
    def _value(self):
        if self._array is None:
            raise ValueError(f"Variable {self._path!r} has no values yet (its model is being loaded)")
        return self._array

    @property
    def value(self):
        """The current values: an array viewing the variable's storage (the engine's
        parameter vector, for a layer weight)."""
        return self._value()

    def numpy(self):
        """A copy of the current values as a NumPy array."""
        return np.array(self._value(), copy=True)

    @property
    def name(self):
        return self._name

    @property
    def path(self):
        """``'<scope>/<layer>/<weight>'``, as Keras 3 names a variable where it was created."""
        return self._path

    @property
    def shape(self):
        return tuple(self._spec.shape) if self._spec is not None else tuple(self._value().shape)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return math.prod(self.shape)

    @property
    def dtype(self):
        if self._array is not None:
            return str(self._array.dtype)
        return self._layer.dtype if self._layer is not None else _floatx()

    @property
    def trainable(self):
        """Whether training updates it: for a layer weight, its kind (BatchNormalization's
        moving statistics never are), the layer's ``trainable`` and that of the models
        holding the layer (the model that attached it last)."""
        if self._layer is not None:
            return self._trainable and bool(self._layer.trainable) and all(m.trainable for m in self._owners)
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        if self._layer is not None:
            raise AttributeError(f"The trainability of a layer weight ({self._path!r}) follows its layer: set "
                                 f"`layer.trainable` instead (then compile again)")
        self._trainable = bool(value)

    @property
    def regularizer(self):
        return self._spec.regularizer if self._spec is not None else None

    @property
    def constraint(self):
        return None

    # ---- writing ----
    def _checked(self, value, what):
        value = np.asarray(_value_of(value))
        if value.dtype.kind not in "biuf":
            raise TypeError(f"`variable.{what}(value)` needs a numeric value; received dtype {value.dtype} "
                            f"for variable {self._path!r}")
        if value.shape != self.shape:
            raise ValueError(f"The shape of the target variable and the shape of the target value in "
                             f"`variable.{what}(value)` must match. variable.shape={self.shape}, Received: "
                             f"value.shape={value.shape}. Target variable: {self._path!r}")
        return value

    def _written(self):
        """A Dense kernel quantized to int8 is quantized again from the values just written;
        a mixed_bfloat16 one is rounded to bfloat16 again."""
        layer = getattr(self, "_layer", None)
        if layer is not None and getattr(layer, "_int8", None) is not None and self._name == "kernel":
            import fastmlp.models.quantization as quantization
            quantization.requantize(layer)
        elif layer is not None and getattr(layer, "_bf16_packed", None) is not None and self._name == "kernel":
            import fastmlp.models.bfloat16 as bfloat16
            bfloat16.written(layer)

    def assign(self, value):
        """Set the values (same shape) in place; a model using this weight sees them at once."""
        value = self._checked(value, "assign")
        self._value()[...] = value
        self._written()
        return self

    def assign_add(self, value):
        arr = self._value()
        arr[...] = arr + self._checked(value, "assign_add")
        self._written()
        return self

    def assign_sub(self, value):
        arr = self._value()
        arr[...] = arr - self._checked(value, "assign_sub")
        self._written()
        return self

    def __setitem__(self, key, value):
        self._value()[key] = _value_of(value)
        self._written()

    def __getitem__(self, key):
        return self._value()[key]

    # ---- NumPy protocol ----
    def __array__(self, dtype=None, copy=None):
        arr = self._value()
        if dtype is not None and np.dtype(dtype) != arr.dtype:
            return arr.astype(dtype)
        return np.array(arr, copy=True) if copy else arr

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = tuple(_value_of(x) for x in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(_value_of(x) for x in kwargs["out"])
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __len__(self):
        return len(self._value())

    def __iter__(self):
        return iter(self._value())

    def __int__(self):
        return int(self._value())

    def __float__(self):
        return float(self._value())

    def __bool__(self):
        return bool(self._value())

    def __round__(self, ndigits=None):
        return np.round(self._value(), ndigits or 0)

    __neg__ = _unary(operator.neg)
    __pos__ = _unary(operator.pos)
    __abs__ = _unary(operator.abs)
    __invert__ = _unary(operator.invert)
    __eq__ = _binary(operator.eq)
    __ne__ = _binary(operator.ne)
    __lt__ = _binary(operator.lt)
    __le__ = _binary(operator.le)
    __gt__ = _binary(operator.gt)
    __ge__ = _binary(operator.ge)
    __hash__ = object.__hash__   # identity, so variables can key dicts (elementwise ==, as Keras)
    __add__, __radd__ = _binary(operator.add), _binary(operator.add, True)
    __sub__, __rsub__ = _binary(operator.sub), _binary(operator.sub, True)
    __mul__, __rmul__ = _binary(operator.mul), _binary(operator.mul, True)
    __truediv__, __rtruediv__ = _binary(operator.truediv), _binary(operator.truediv, True)
    __floordiv__, __rfloordiv__ = _binary(operator.floordiv), _binary(operator.floordiv, True)
    __mod__, __rmod__ = _binary(operator.mod), _binary(operator.mod, True)
    __pow__, __rpow__ = _binary(operator.pow), _binary(operator.pow, True)
    __matmul__, __rmatmul__ = _binary(operator.matmul), _binary(operator.matmul, True)
    __and__, __rand__ = _binary(operator.and_), _binary(operator.and_, True)
    __or__, __ror__ = _binary(operator.or_), _binary(operator.or_, True)
    __xor__, __rxor__ = _binary(operator.xor), _binary(operator.xor, True)

    def __repr__(self):
        values = "<not set>" if self._array is None else np.array2string(self._array)
        return f"<Variable path={self._path}, shape={self.shape}, dtype={self.dtype}, value={values}>"


def _floatx():
    from . import config
    return config.floatx()


class Tensor(np.ndarray):
    """What calling a layer or a model on arrays returns: a NumPy array that also has
    Keras's ``.numpy()`` (a plain ndarray of the same values), so code written for
    Keras tensors (``model(x).numpy()``) runs unchanged.  ``predict`` returns plain arrays."""

    def numpy(self):
        return self.view(np.ndarray)


def _as_tensor(out):
    """Outputs of an eager call (an array, or a list/tuple/dict of arrays) as Tensors."""
    if isinstance(out, np.ndarray):
        return out.view(Tensor)
    if isinstance(out, dict):
        return {k: _as_tensor(v) for k, v in out.items()}
    if isinstance(out, (list, tuple)):
        return type(out)(_as_tensor(v) for v in out)
    return out
