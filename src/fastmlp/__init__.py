"""fastmlp: a compact, C-accelerated multilayer-perceptron engine with the Keras API.

    import fastmlp as keras
    model = keras.Sequential([keras.Input(shape=(4,)),
                              keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
"""
from . import _engine
from . import activations, callbacks, config, datasets, initializers, layers, losses, metrics
from . import distribution, mixed_precision, models, ops, optimizers, regularizers, saving, utils
from .layers import Input, InputSpec
from .mixed_precision import DTypePolicy
from .models import Model, Sequential
from .saving import FormatError, load_model
from .variables import Variable

__version__ = "0.1.0"

__all__ = ["Model", "Sequential", "Input", "InputSpec", "models", "layers", "activations", "losses", "optimizers",
           "metrics", "initializers", "regularizers", "callbacks", "utils", "config", "datasets",
           "ops", "distribution", "mixed_precision", "DTypePolicy", "Variable", "FormatError", "load_model",
           "set_num_threads", "get_num_threads",
           "show_config"]


_MAX_THREADS = 1024


def set_num_threads(n):
    """Threads used by the kernels: an integer in [0, 1024]; 0 restores
    the default (``OMP_NUM_THREADS`` or all cores, which may exceed 1024)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"`n` must be a non-negative integer. Received: n={n!r}")
    if n > _MAX_THREADS:
        raise ValueError(f"`n` must be a non-negative integer of at most {_MAX_THREADS} "
                         f"(0 uses every core). Received: n={n!r}")
    _engine.set_num_threads(n)


def get_num_threads():
    """Threads the kernels will use."""
    return _engine.get_num_threads()


def show_config(print_fn=print):
    """Print (and return) the build and run-time configuration: the kernel target each family of
    kernels runs here (GEMM, int8, bfloat16, optimizer, checksums), OpenMP, threads."""
    import numpy
    info = {
        "fastmlp": __version__,
        "gemm_target": _engine.gemm_target(),
        "available_targets": ", ".join(_engine.available_gemm_targets()),
        "int8_target": _engine.int8_target(),
        "bf16_target": _engine.bf16_target(),
        "optim_target": _engine.optim_target(),
        "crc32c": _engine.crc32c_impl(),
        "crc32": _engine.crc32_impl(),
        "openmp": _engine.have_openmp(),
        "threads": _engine.get_num_threads(),
        "floatx": config.floatx(),
        "numpy": numpy.__version__,
    }
    if print_fn is not None:
        for k, v in info.items():
            print_fn(f"{k}: {v}")
    return info
