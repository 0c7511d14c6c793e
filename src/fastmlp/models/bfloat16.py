"""bfloat16 inference for Dense layers under the ``mixed_bfloat16`` dtype policy
(``fastmlp.mixed_precision``).

Such a layer keeps its float32 kernel (the master) and, once it runs in a model
or on its own, a packed bfloat16 copy (``_engine.BF16Dense``, rounded to
nearest even) in ``layer._bf16_packed``, made again whenever the network is
made and whenever the kernel is written (``Variable.assign``, ``set_weights``,
``load_weights``: ``written``).  At inference (predict, evaluate, calling the
model or the layer) the engine runs the layer's GEMM with that copy and its
input rounded to bfloat16 per call, summing products in float32; bias and
activation stay float32 (``csrc/bgemm.h``).  A layer also quantized to int8
runs in int8.

Training (``fit``, ``train_on_batch``) keeps the float32 master kernel, as
Keras does: each step's forward runs such a layer as inference does (the
bfloat16 copy, the input rounded to bfloat16, float32 sums), the backward pass
and the optimizer work in float32 on the master kernel, and the engine rounds
the copy again after every step (``csrc/net_impl.h``, ``fm_net_bf16_refresh``).
"""
import numpy as np

from .. import _engine

__all__ = ["bf16_layers", "packed", "bind", "written"]

_KIND_DENSE = _engine.KINDS["dense"]


def _is_bf16(layer):
    return getattr(layer, "_mixed", False) and getattr(layer, "engine_kind", None) == "dense"


def bf16_layers(model):
    """The model's Dense layers under the mixed_bfloat16 policy (nested models' too), each once."""
    out, seen = [], set()
    for nd in model._plan.nodes if getattr(model, "_plan", None) is not None else ():
        if nd.kind == _KIND_DENSE and _is_bf16(nd.layer) and id(nd.layer) not in seen:
            seen.add(id(nd.layer))
            out.append(nd.layer)
    return out


def packed(layer):
    """The layer's bfloat16 kernel, packed from its current float32 kernel (made once,
    then kept up to date by ``written``)."""
    kernel = np.ascontiguousarray(layer._variable("kernel")._array, dtype=np.float32)
    b = getattr(layer, "_bf16_packed", None)
    if b is None or (b.n_in, b.n_out) != kernel.shape:
        b = _engine.BF16Dense(kernel)
        layer._bf16_packed = b
    return b


def written(layer):
    """New values were written into a mixed_bfloat16 layer's kernel: round them again."""
    b = getattr(layer, "_bf16_packed", None)
    if b is not None:
        b.update(np.ascontiguousarray(layer._variable("kernel")._array, dtype=np.float32))


def bind(model):
    """Tell the model's engine network which Dense nodes run in bfloat16 (after it is made)."""
    net = getattr(model, "_net", None)
    layers = bf16_layers(model)
    if net is None or not layers:
        return
    if model._dtype != "float32":
        raise ValueError(f"model {model.name!r} mixes mixed_bfloat16 layers (float32 variables) with "
                         f"{model._dtype} ones; a model's layers share one variable dtype")
    for i, nd in enumerate(model._plan.nodes):
        if nd.kind == _KIND_DENSE and _is_bf16(nd.layer):
            b = packed(nd.layer)
            written(nd.layer)   # the values this network reads now
            net.set_bf16(i, b)
