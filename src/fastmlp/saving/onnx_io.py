"""ONNX in and out: ``model.export(path, format="onnx")`` (``onnx_export``) and
``load_model("model.onnx")`` (``onnx_import``).

The ``onnx`` package is optional (``pip install fastmlp[onnx]``) and imported
only when a model is exported or imported; neither direction imports
onnxruntime."""

from .onnx_export import require_onnx  # noqa: F401  (the lazy import both directions share)

__all__ = ["require_onnx", "export", "to_onnx", "load", "from_onnx"]


def export(model, filepath, verbose=None, input_signature=None, opset_version=None, dtype=None):
    """``model.export(filepath, format="onnx", ...)``: see ``onnx_export.export``."""
    import fastmlp.saving.onnx_export as onnx_export
    return onnx_export.export(model, filepath, verbose=verbose, input_signature=input_signature,
                              opset_version=opset_version, dtype=dtype)


def to_onnx(model, input_signature=None, opset_version=None, dtype=None):
    """The model as an ``onnx.ModelProto`` (what ``export`` writes)."""
    import fastmlp.saving.onnx_export as onnx_export
    return onnx_export.to_onnx(model, input_signature=input_signature, opset_version=opset_version, dtype=dtype)


def load(filepath, compile=True, mmap=False, verify=True):
    """A fastmlp model from an ONNX file: see ``onnx_import.load``."""
    import fastmlp.saving.onnx_import as onnx_import
    return onnx_import.load(filepath, compile=compile, mmap=mmap, verify=verify)


def from_onnx(proto, verify=True):
    """A fastmlp model from an ``onnx.ModelProto`` (or the bytes of one)."""
    import fastmlp.saving.onnx_import as onnx_import
    return onnx_import.from_onnx(proto, verify=verify)
