"""The fastmlp model file (docs/FORMAT.md): ``format`` holds its constants and
checks, ``writer`` writes models, ``reader`` loads them."""
from . import format, reader, writer
from .format import (ALIGN, DTYPES, FORMAT_VERSION, MAGIC, MAX_ELEMENTS, MAX_NDIM, PREAMBLE, PREAMBLE_SIZE, _HEAD_READ,
                     _ITEMSIZES, FormatError,
                     _from_bfloat16, _parse, _quantize_int8, _to_bfloat16)
from .format import _engine  # noqa: F401  (tests patch the engine the checks use)
from .c_export import export_c
from .onnx_io import load as load_onnx
from .reader import load_model, load_weights, model_from_bytes
from .writer import model_to_bytes, save_model, save_weights
from .._serialization import (CustomObjectScope, custom_object_scope, deserialize_keras_object, get_custom_objects,
                              get_registered_name, get_registered_object, register_keras_serializable,
                              serialize_keras_object)

__all__ = ["FormatError", "save_model", "load_model", "save_weights", "load_weights",
           "model_to_bytes", "model_from_bytes", "load_onnx", "export_c", "MAGIC", "FORMAT_VERSION",
           "serialize_keras_object", "deserialize_keras_object", "get_custom_objects", "register_keras_serializable",
           "get_registered_name", "get_registered_object", "CustomObjectScope", "custom_object_scope"]
