"""Int8 inference for Dense layers: ``Model.quantize("int8")`` and models loaded
from int8 files (``model.save(path, dtype="int8")``).

A quantized Dense layer keeps its kernel as int8 values in [-127, 127] with one
float32 scale per unit (``saving.format._quantize_int8``, the quantization int8
files store) in ``layer._int8``; its float kernel holds the dequantized values
``q * scale``, which every float path sees (a layer called on its own, exports).
At inference (predict, evaluate) the engine runs these layers with the int8
kernel and the layer's input quantized to int8 per row at run time
(``csrc/qgemm.h``: symmetric, exact int32 sums, one row's result independent of
its batch); every other layer stays float32.

Training: Keras 3 trains a quantized Dense with its int8 kernel frozen in a
quantized forward; fastmlp trains in float only, so ``fit`` and
``train_on_batch`` refuse a model with int8 layers (see ``check_trainable``)
rather than train it in a way that differs from what it runs.
"""
import re

import numpy as np

from .. import _engine
from ..saving.format import _quantize_int8

__all__ = ["quantize", "bind", "check_trainable", "int8_layers", "requantize"]

_KIND_DENSE = _engine.KINDS["dense"]
_KERAS_MODES = ("int8", "int4", "float8", "gptq", "awq")


def int8_layers(model):
    """The model's Dense layers quantized to int8 (nested models' too), each once."""
    out, seen = [], set()
    for nd in model._plan.nodes if getattr(model, "_plan", None) is not None else ():
        layer = nd.layer
        if nd.kind == _KIND_DENSE and getattr(layer, "_int8", None) is not None and id(layer) not in seen:
            seen.add(id(layer))
            out.append(layer)
    return out


def _selected(layer, filters):
    """Keras's layer filter: a regex searched in the name, a list of them, or a callable."""
    if filters is None:
        return True
    if isinstance(filters, str):
        return re.search(filters, layer.name) is not None
    if isinstance(filters, (list, tuple)):
        return any(re.search(f, layer.name) is not None for f in filters)
    return bool(filters(layer))


def set_int8(layer, q, scale):
    """Make ``layer`` an int8 layer with kernel ``q`` (int8) and per-unit ``scale``; its
    float kernel becomes ``q * scale``."""
    q = np.ascontiguousarray(q, dtype=np.int8)
    scale = np.ascontiguousarray(scale, dtype=np.float32)
    packed = getattr(layer, "_int8_packed", None)
    if packed is not None and (packed.n_in, packed.n_out) == q.shape:
        packed.update(q, scale)   # in place: the networks running it see the new values
    else:
        packed = _engine.Int8Dense(q, scale)   # validates shapes and the [-127, 127] range
    var = layer._variable("kernel")
    var._array[...] = (q.astype(np.float32) * scale).astype(var._array.dtype, copy=False)
    layer._int8 = (q, scale)
    layer._int8_packed = packed


def requantize(layer):
    """New float values were written into an int8 layer's kernel (set_weights, assign, ...):
    quantize them, so the layer stays int8 and runs what it holds."""
    kernel = layer._variable("kernel")._array
    if not np.all(np.isfinite(kernel)):
        raise ValueError(f"layer {layer.name!r} is quantized to int8 and its new kernel has non-finite values, "
                         f"which int8 cannot hold")
    set_int8(layer, *_quantize_int8(kernel))


def quantize(model, mode=None, config=None, filters=None, **kwargs):
    """``keras.Model.quantize``: quantize the Dense layers (those ``filters`` selects) to
    int8.  Only ``mode="int8"`` with its default configuration is supported."""
    kwargs.pop("type_check", None)
    if kwargs:
        raise ValueError(f"Unrecognized keyword arguments passed to {type(model).__name__}: {kwargs}")
    if config is not None:
        raise ValueError("Model.quantize(config=...) is not supported by fastmlp: only mode='int8' with "
                         "Keras's default int8 configuration (per-unit kernel scales, per-row input "
                         f"scales). Received: config={config!r}")
    if mode is None:
        raise ValueError("Model.quantize needs `mode` (fastmlp supports 'int8'). Received: mode=None")
    if mode != "int8":
        known = "a Keras mode fastmlp does not support" if mode in _KERAS_MODES else "not a quantization mode"
        raise ValueError(f"Model.quantize: `mode` must be 'int8' ({mode!r} is {known}). Received: mode={mode!r}")
    if filters is not None and not isinstance(filters, (str, list, tuple)) and not callable(filters):
        raise ValueError(f"The `filters` argument must be a regex string, a list of regex strings, or a "
                         f"callable. Received: {type(filters)}")
    if not model.built or getattr(model, "_plan", None) is None:
        raise ValueError(f"Model {model.name!r} must be built before `quantize()` is called (call `build()`, "
                         f"or call the model on data first)")
    if model._dtype != "float32":
        raise ValueError(f"int8 inference runs float32 models; model {model.name!r} is {model._dtype}")
    model._ensure_attached()
    seen = set()
    for nd in model._plan.nodes:
        layer = nd.layer
        if nd.kind != _KIND_DENSE or id(layer) in seen or not _selected(layer, filters):
            continue
        seen.add(id(layer))
        if getattr(layer, "_int8", None) is not None:
            continue   # already int8
        kernel = layer._variable("kernel")._array
        if not np.all(np.isfinite(kernel)):
            raise ValueError(f"layer {layer.name!r}: the kernel has non-finite values; it cannot be "
                             f"quantized to int8")
        set_int8(layer, *_quantize_int8(kernel))
    bind(model)


def bind(model):
    """Tell the model's engine network which Dense nodes run in int8, and which in
    bfloat16 (``fastmlp.models.bfloat16``), after it is made."""
    import fastmlp.models.bfloat16 as bfloat16
    bfloat16.bind(model)
    net = getattr(model, "_net", None)
    if net is None or model._dtype != "float32":
        return
    for i, nd in enumerate(model._plan.nodes):
        if nd.kind == _KIND_DENSE and getattr(nd.layer, "_int8", None) is not None:
            net.set_int8(i, nd.layer._int8_packed)


def check_trainable(model):
    """Refuse to train a model with int8 layers (see the module's docstring)."""
    layers = int8_layers(model)
    if layers:
        names = ", ".join(repr(layer.name) for layer in layers[:5])
        raise ValueError(f"model {model.name!r} has Dense layers quantized to int8 ({names}), which fastmlp "
                         f"runs for inference only and cannot train; train the float32 model, then call "
                         f"quantize('int8') (or save it with dtype='int8')")
