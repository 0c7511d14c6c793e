"""``keras.distribution``'s names, for programs that mention them.

Keras distributes models over several accelerators through the JAX backend
(device meshes, data and model parallelism).  fastmlp trains on the CPU cores of
one machine (``fastmlp.set_num_threads``), so these raise NotImplementedError
saying so; ``list_devices`` and ``distribution`` answer truthfully (one CPU
device; no distribution set).
"""

__all__ = ["DataParallel", "DeviceMesh", "LayoutMap", "ModelParallel", "TensorLayout", "distribute_tensor",
           "distribution", "get_device_count", "initialize", "list_devices", "set_distribution"]


def _refuse(what):
    raise NotImplementedError(
        f"keras.distribution.{what} distributes a model over several devices, which only Keras's JAX backend "
        f"supports. fastmlp runs on the CPU cores of one machine: use fastmlp.set_num_threads(n) to choose how "
        f"many, and drop the distribution code.")


class _Unsupported:
    def __init__(self, *args, **kwargs):
        _refuse(type(self).__name__)


class DataParallel(_Unsupported):
    """Not supported: see the module docstring."""


class ModelParallel(_Unsupported):
    """Not supported: see the module docstring."""


class DeviceMesh(_Unsupported):
    """Not supported: see the module docstring."""


class LayoutMap(_Unsupported):
    """Not supported: see the module docstring."""


class TensorLayout(_Unsupported):
    """Not supported: see the module docstring."""


def set_distribution(value):
    _refuse("set_distribution")


def distribute_tensor(tensor, layout):
    _refuse("distribute_tensor")


def initialize(job_addresses=None, num_processes=None, process_id=None):
    _refuse("initialize")


def distribution():
    """The global distribution: always None in fastmlp."""
    return None


def list_devices(device_type=None):
    """The devices fastmlp computes on: one CPU (its cores are threads, see ``get_num_threads``)."""
    if device_type is not None and str(device_type).lower() not in ("cpu",):
        return []
    return ["cpu:0"]


def get_device_count(device_type=None):
    """How many devices ``list_devices`` names."""
    return len(list_devices(device_type))
