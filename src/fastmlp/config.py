"""Global settings: the default float type (Keras's ``floatx``) and epsilon."""

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


def epsilon():
    """The fuzz factor used by losses and optimizers (1e-7, as in Keras)."""
    return _EPSILON


def set_epsilon(value):
    global _EPSILON
    _EPSILON = float(value)
