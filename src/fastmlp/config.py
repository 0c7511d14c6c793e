"""Global settings: the default float type (Keras's ``floatx``), epsilon and the
dtype policy (``set_dtype_policy``, see ``fastmlp.mixed_precision``)."""

from . import mixed_precision as _mixed_precision

_FLOATX = "float32"
_EPSILON = 1e-7
_ALLOWED = ("float32", "float64")


def floatx():
    """The default float type of new models: ``'float32'`` or ``'float64'``."""
    return _FLOATX


def set_floatx(value):
    """Set the default float type of models built from now on."""
    global _FLOATX
    if value not in _ALLOWED:
        raise ValueError(f"Unknown floatx type: {value!r}. Expected one of {list(_ALLOWED)}")
    _FLOATX = str(value)
    _mixed_precision._FLOATX[0] = _FLOATX   # the default policy follows floatx


def epsilon():
    """The fuzz factor used by losses and optimizers (1e-7, as in Keras)."""
    return _EPSILON


def set_epsilon(value):
    global _EPSILON
    _EPSILON = float(value)


def set_dtype_policy(policy):
    """Set the dtype policy of layers created from now on (Keras 3's name):
    ``"float32"``, ``"float64"`` or ``"mixed_bfloat16"``, or a ``DTypePolicy``."""
    _mixed_precision.set_dtype_policy(policy)


def dtype_policy():
    """The global dtype policy (a ``fastmlp.mixed_precision.DTypePolicy``)."""
    return _mixed_precision.dtype_policy()
