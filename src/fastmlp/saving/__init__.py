"""The fastmlp model file (docs/FORMAT.md): ``format`` holds its constants and
checks, ``writer`` writes models, ``reader`` loads them."""
from . import format, reader, writer
from .format import (ALIGN, DTYPES, FORMAT_VERSION, MAGIC, MAX_ELEMENTS, MAX_NDIM, PREAMBLE, PREAMBLE_SIZE, _HEAD_READ,
                     _ITEMSIZES, FormatError,
                     _from_bfloat16, _parse, _quantize_int8, _to_bfloat16)
from .format import _engine  # noqa: F401  (tests patch the engine the checks use)
from .c_export import export_c
from .onnx_io import load as load_onnx
from .reader import load_model, model_from_bytes
from .writer import model_to_bytes
from .._serialization import (CustomObjectScope, custom_object_scope, deserialize_keras_object, get_custom_objects,
                              get_registered_name, get_registered_object, register_keras_serializable,
                              serialize_keras_object)

__all__ = ["FormatError", "save_model", "load_model", "save_weights", "load_weights",
           "model_to_bytes", "model_from_bytes", "load_onnx", "export_c", "MAGIC", "FORMAT_VERSION",
           "serialize_keras_object", "deserialize_keras_object", "get_custom_objects", "register_keras_serializable",
           "get_registered_name", "get_registered_object", "CustomObjectScope", "custom_object_scope"]


def save_model(model, filepath, overwrite=True, zipped=None, **kwargs):
    """``keras.saving.save_model``: ``model.save(filepath, ...)``, in the format the name asks for
    (``.keras``, ``.h5``, ``.fmlp`` or no extension; ``zipped=False``: Keras's model folder)."""
    return model.save(filepath, overwrite=overwrite, zipped=zipped, **kwargs)


def save_weights(model, filepath, overwrite=True, max_shard_size=None, **kwargs):
    """``keras.saving.save_weights``: ``model.save_weights(filepath, ...)`` (``.weights.h5``:
    Keras 3's layout; ``.fmlp`` or no extension: fastmlp's)."""
    return model.save_weights(filepath, overwrite=overwrite, max_shard_size=max_shard_size, **kwargs)


def load_weights(model, filepath, skip_mismatch=False, **kwargs):
    """``keras.saving.load_weights``: ``model.load_weights(filepath, ...)``."""
    return model.load_weights(filepath, skip_mismatch=skip_mismatch, **kwargs)
