"""Dtype policies, as ``keras.mixed_precision``: ``DTypePolicy`` (``Policy``),
``set_global_policy``/``global_policy`` and their ``keras.config`` names
``set_dtype_policy``/``dtype_policy``.

Policies fastmlp runs: ``"float32"``, ``"float64"`` and ``"mixed_bfloat16"``
(variables in float32, compute in bfloat16).  Under ``"mixed_bfloat16"`` a Dense
layer's inference (predict, evaluate, calling the model or the layer) runs its
GEMM in bfloat16: inputs and kernel rounded to bfloat16 (round to nearest
even; the kernel once from its float32 master, again whenever it is written),
products summed in float32, then bias and activation in float32
(``csrc/bgemm.h``).  Other layers compute in float32.  Training (``fit``,
``train_on_batch``) runs those GEMMs the same way in each step's forward pass,
with float32 master kernels, a float32 backward pass and float32 optimizer
updates (see ``fastmlp.models.bfloat16``).
"""

__all__ = ["DTypePolicy", "Policy", "dtype_policy", "set_dtype_policy", "global_policy", "set_global_policy"]

_FLOAT = ("float32", "float64")
_MIXED = ("mixed_bfloat16",)
_KERAS_ONLY = ("mixed_float16", "float16", "bfloat16")


def _check_name(name):
    if not isinstance(name, str):
        raise TypeError(f"'name' must be a string, such as 'mixed_bfloat16'. Received: name={name!r} "
                        f"(of type {type(name)})")
    if name in _FLOAT or name in _MIXED:
        return name
    if name in _KERAS_ONLY:
        raise ValueError(f"The dtype policy {name!r} is not supported by fastmlp, which computes in float32, "
                         f"float64 or (Dense inference) bfloat16 with float32 variables; use 'float32', "
                         f"'float64' or 'mixed_bfloat16'. Received: name={name!r}")
    raise ValueError(f"Cannot convert {name!r} to a mixed precision DTypePolicy. Valid policies include "
                     f"'mixed_bfloat16' and the name of a float dtype fastmlp runs ('float32', 'float64').")


class DTypePolicy:
    """A dtype policy for a layer (Keras 3's ``keras.DTypePolicy``): ``name``,
    ``compute_dtype`` (what computations run in) and ``variable_dtype`` (what
    the weights are stored in).

    ``DTypePolicy("mixed_bfloat16")`` keeps variables in float32 and computes in
    bfloat16; ``"float32"`` and ``"float64"`` use that type for both.
    """

    def __init__(self, name=None):
        if name is None:
            name = global_policy().name
        self._name = _check_name(name)

    @property
    def name(self):
        return self._name

    @property
    def compute_dtype(self):
        return "bfloat16" if self._name == "mixed_bfloat16" else self._name

    @property
    def variable_dtype(self):
        return "float32" if self._name == "mixed_bfloat16" else self._name

    @property
    def quantization_mode(self):
        return None

    def get_config(self):
        return {"name": self._name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(other) is type(self) and other._name == self._name

    def __hash__(self):
        return hash((type(self).__name__, self._name))

    def __repr__(self):
        return f'<DTypePolicy "{self._name}">'


Policy = DTypePolicy

_GLOBAL = [None]     # None: the policy of floatx
_FLOATX = ["float32"]   # fastmlp.config.floatx(), kept in step by config.set_floatx (config imports this module)


def _policy(value):
    """A DTypePolicy from a name, a policy, or Keras's serialized form of one."""
    if isinstance(value, DTypePolicy):
        return value
    if isinstance(value, dict) and value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") \
            and isinstance(value.get("config"), dict):
        return DTypePolicy(value["config"].get("name"))
    return DTypePolicy(value)


def set_dtype_policy(policy):
    """Set the policy of the layers created from now on (a name such as
    ``"mixed_bfloat16"`` or a ``DTypePolicy``; None: back to ``config.floatx()``)."""
    _GLOBAL[0] = None if policy is None else _policy(policy)


def dtype_policy():
    """The global policy: what ``set_dtype_policy`` set, else the float type of
    ``config.floatx()``."""
    if _GLOBAL[0] is not None:
        return _GLOBAL[0]
    return DTypePolicy(_FLOATX[0])


set_global_policy = set_dtype_policy
global_policy = dtype_policy


def _serialize(policy):
    """Keras 3's config entry for a layer's policy."""
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": policy.name},
            "registered_name": None}
