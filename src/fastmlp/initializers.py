"""Weight initializers with the Keras 3 names, defaults and formulas.

Each initializer is called as ``init(shape, dtype)``.  With ``seed=None`` the
draw comes from fastmlp's global seed (``fastmlp.utils.set_random_seed``).
"""
import numpy as np

from . import utils

_TRUNC_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]


class Initializer:
    """Base class: ``init(shape, dtype=None)`` returns an array of that shape (dtype:
    floatx when None); ``get_config``/``from_config`` round-trip the arguments."""

    def __call__(self, shape, dtype=None):
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(shape, dtype=None)")

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def clone(self):
        return type(self).from_config(self.get_config())


def _dtype(dtype):
    from . import config
    return str(np.dtype(dtype)) if dtype is not None else config.floatx()


class _Seeded(Initializer):
    def __init__(self, seed=None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise ValueError(f"`seed` argument should be an integer or None. Received: seed={seed!r}")
        self.seed = seed

    def _rng(self):
        return np.random.default_rng(utils._next_seed() if self.seed is None else int(self.seed))

    def get_config(self):
        return {"seed": self.seed}


def _truncated_normal(rng, shape, stddev, mean=0.0):
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2
    return mean + stddev * out


def _fans(shape, input_axes=None, output_axes=None):
    """(fan_in, fan_out) as Keras computes them: the given axes, else by rank."""
    shape = tuple(shape)
    if input_axes is not None and output_axes is not None:
        return int(np.prod([shape[a] for a in input_axes])), int(np.prod([shape[a] for a in output_axes]))
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


class Zeros(Initializer):
    """All zeros."""

    def __call__(self, shape, dtype=None):
        return np.zeros(shape, dtype=_dtype(dtype))


class Ones(Initializer):
    """All ones."""

    def __call__(self, shape, dtype=None):
        return np.ones(shape, dtype=_dtype(dtype))


class Constant(Initializer):
    """``value`` everywhere: a number, or an array broadcast to the shape (e.g. a
    bias ``Constant(np.log([pos / neg]))``)."""

    def __init__(self, value=0.0):
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"`value` must be a number or an array of numbers. Received: value={value!r}")
        self.value = value

    def __call__(self, shape, dtype=None):
        arr = np.asarray(self.value)
        try:
            return np.broadcast_to(arr, tuple(shape)).astype(_dtype(dtype))
        except ValueError:
            raise ValueError(f"Constant initializer value of shape {arr.shape} cannot be broadcast to the "
                             f"weight shape {tuple(shape)}") from None

    def get_config(self):
        from . import _serialization as serialization
        return {"value": serialization.serialize_keras_object(self.value)}

    @classmethod
    def from_config(cls, config):
        from . import _serialization as serialization
        return cls(serialization.deserialize_keras_object(config["value"]))


class Identity(Initializer):
    """``gain`` times the identity matrix (2-D shapes only; a non-square shape gets
    ones on the main diagonal)."""

    def __init__(self, gain=1.0):
        self.gain = float(gain)

    def __call__(self, shape, dtype=None):
        if len(shape) != 2:
            raise ValueError(f"Identity matrix initializer can only be used for 2D matrices. "
                             f"Received: shape={tuple(shape)} of rank {len(shape)}.")
        return (self.gain * np.eye(*shape)).astype(_dtype(dtype))

    def get_config(self):
        return {"gain": self.gain}


class RandomNormal(_Seeded):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype=None):
        return (self.mean + self.stddev * self._rng().standard_normal(shape)).astype(_dtype(dtype))

    def get_config(self):
        return {"seed": self.seed, "mean": self.mean, "stddev": self.stddev}


class TruncatedNormal(_Seeded):
    """A normal distribution cut at two standard deviations (redrawn beyond)."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype=None):
        return _truncated_normal(self._rng(), shape, self.stddev, self.mean).astype(_dtype(dtype))

    def get_config(self):
        return {"seed": self.seed, "mean": self.mean, "stddev": self.stddev}


class RandomUniform(_Seeded):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape, dtype=None):
        return self._rng().uniform(self.minval, self.maxval, shape).astype(_dtype(dtype))

    def get_config(self):
        return {"seed": self.seed, "minval": self.minval, "maxval": self.maxval}


def _axes(name, value):
    if value is None:
        return None
    axes = [value] if isinstance(value, (int, np.integer)) else list(value)
    if not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axes):
        raise ValueError(f"`{name}` must be a list of integer axes or None. Received: {name}={value!r}")
    return [int(a) for a in axes]


class VarianceScaling(_Seeded):
    """Draws with variance ``scale / n``, ``n`` the fan (``mode``) of the shape:
    ``truncated_normal`` (std ``sqrt(scale / n) / .8796``), ``untruncated_normal`` or
    ``uniform`` (limit ``sqrt(3 scale / n)``).  ``input_axes``/``output_axes`` name the
    axes whose product is the fan in/out (both or neither), as Keras's."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None,
                 input_axes=None, output_axes=None):
        super().__init__(seed)
        self._set_axes(input_axes, output_axes)
        if scale <= 0:
            raise ValueError(f"Argument `scale` must be positive float. Received: scale={scale}")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"Invalid `mode` argument: {mode!r}. Expected fan_in, fan_out or fan_avg")
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError(f"Invalid `distribution` argument: {distribution!r}")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def _set_axes(self, input_axes, output_axes):
        self.input_axes, self.output_axes = _axes("input_axes", input_axes), _axes("output_axes", output_axes)

    def __call__(self, shape, dtype=None):
        fan_in, fan_out = _fans(shape, self.input_axes, self.output_axes)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        scale = self.scale / max(1.0, n)
        rng = self._rng()
        if self.distribution == "truncated_normal":
            out = _truncated_normal(rng, shape, np.sqrt(scale) / _TRUNC_STD)
        elif self.distribution == "untruncated_normal":
            out = np.sqrt(scale) * rng.standard_normal(shape)
        else:
            limit = np.sqrt(3.0 * scale)
            out = rng.uniform(-limit, limit, shape)
        return out.astype(_dtype(dtype))

    def get_config(self):
        return {"seed": self.seed, "scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "input_axes": self.input_axes, "output_axes": self.output_axes}


def _variance_scaling(name, scale, mode, distribution):
    """A named VarianceScaling: its fixed (valid) scale, mode and distribution are class
    attributes, so construction only checks the seed."""
    def __init__(self, seed=None, input_axes=None, output_axes=None):
        _Seeded.__init__(self, seed)
        self._set_axes(input_axes, output_axes)

    def get_config(self):
        return {"seed": self.seed, "input_axes": self.input_axes, "output_axes": self.output_axes}

    return type(name, (VarianceScaling,), {"__module__": __name__, "__init__": __init__,
                                           "get_config": get_config,
                                           "scale": float(scale), "mode": mode, "distribution": distribution,
                                           "__doc__": f"VarianceScaling({scale}, {mode!r}, {distribution!r})."})


GlorotUniform = _variance_scaling("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _variance_scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeUniform = _variance_scaling("HeUniform", 2.0, "fan_in", "uniform")
HeNormal = _variance_scaling("HeNormal", 2.0, "fan_in", "truncated_normal")
LecunUniform = _variance_scaling("LecunUniform", 1.0, "fan_in", "uniform")
LecunNormal = _variance_scaling("LecunNormal", 1.0, "fan_in", "truncated_normal")


class Orthogonal(_Seeded):
    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = float(gain)

    def __call__(self, shape, dtype=None):
        if len(shape) < 2:
            raise ValueError(f"The tensor to initialize must be at least two-dimensional. Received: "
                             f"shape={tuple(shape)} of rank {len(shape)}.")
        rows = int(np.prod(shape[:-1]))
        cols = shape[-1]
        flat = self._rng().standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(flat)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q[:rows, :cols]).reshape(shape).astype(_dtype(dtype))

    def get_config(self):
        return {"seed": self.seed, "gain": self.gain}


IdentityInitializer = Identity
OrthogonalInitializer = Orthogonal

_ALIASES = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "random_normal": RandomNormal,
    "random_uniform": RandomUniform, "uniform": RandomUniform, "normal": RandomNormal,
    "truncated_normal": TruncatedNormal,
    "variance_scaling": VarianceScaling, "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal, "he_uniform": HeUniform, "he_normal": HeNormal,
    "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal, "orthogonal": Orthogonal,
    "identity": Identity,
}
_CLASSES = {cls.__name__: cls for cls in _ALIASES.values()}
_CLASSES.update(IdentityInitializer=Identity, OrthogonalInitializer=Orthogonal)
globals().update(_ALIASES)   # keras.initializers.glorot_uniform etc. are the classes themselves


def get(identifier):
    """An initializer from a name (``'glorot_uniform'``), a class name, a config, an
    instance, a class, or a function ``f(shape, dtype=None)`` (it runs in Python, at build)."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):   # first: what model configs and files hold
        return deserialize(identifier)
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier.lower()) or _CLASSES.get(identifier)
        if cls is None:
            from . import _serialization as serialization
            obj = serialization.get_registered_object(identifier)
            if obj is not None:
                return obj() if isinstance(obj, type) else obj
            raise ValueError(f"Could not interpret initializer identifier: {identifier!r}. Expected one of "
                             f"{sorted(_ALIASES)}")
        return cls()
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if callable(identifier) and not isinstance(identifier, type):
        return identifier
    raise ValueError(f"Could not interpret initializer identifier: {identifier!r}")


def serialize(init):
    """``{"class_name", "config"}``: the compact form layer configs and model files hold
    (``fastmlp.saving.serialize_keras_object`` gives Keras 3's full layout).  Unset
    ``input_axes``/``output_axes`` are left out, so files stay as they were."""
    if not isinstance(init, Initializer):   # a registered function
        from . import _serialization as serialization
        return serialization.serialize_keras_object(init)
    config = init.get_config()
    if isinstance(init, VarianceScaling) and config.get("input_axes") is None \
            and config.get("output_axes") is None:
        config = {k: v for k, v in config.items() if k not in ("input_axes", "output_axes")}
    return {"class_name": type(init).__name__, "config": config}


def deserialize(config, custom_objects=None):
    from . import _serialization as serialization
    if isinstance(config, dict) and config.get("class_name") in _CLASSES:
        return _CLASSES[config["class_name"]].from_config(dict(config.get("config") or {}))
    obj = serialization.deserialize_keras_object(config, custom_objects=custom_objects,
                                                 module_objects={**_CLASSES, **_ALIASES})
    if isinstance(obj, type):
        obj = obj()
    if not (isinstance(obj, Initializer) or callable(obj)):
        raise ValueError(f"Could not interpret initializer config: {config!r}")
    return obj
