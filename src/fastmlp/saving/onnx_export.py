"""A model as an ONNX graph: ``model.export("model.onnx", format="onnx")``.

The graph computes what ``model.predict`` computes (inference: Dropout,
GaussianNoise, GaussianDropout, AlphaDropout and ActivityRegularization are the
identity, BatchNormalization uses its moving statistics), in float32, with a
dynamic batch axis, the model's input names and output names.  An integer model
input (ids for an ``Embedding``) is an input of that integer type: the Embedding
reads it through a ``Cast`` to int64 (none when it is int64) and a ``Gather``;
any other layer reads it through a ``Cast`` to float32, as the engine carries it.

Each layer kind is one function in ``LAYER_EXPORTERS`` (keyed by class name) and
each activation one function in ``ACTIVATION_EXPORTERS`` (keyed by the
``fastmlp.activations`` name); a kind without an entry is refused, naming it.
A function receives the graph being written, the layer, the engine-free call
record and the ONNX names of its inputs, and returns the name of its output.

A ``BatchNormalization`` whose input is a linear ``Dense`` that feeds nothing
else is folded into that Dense's kernel and bias; any other BatchNormalization
is ONNX's ``BatchNormalization`` operator.

An int8 Dense is written as int8 inference runs it, and onnxruntime computes
predict's outputs bit for bit when the activations before int8 layers are
linear, relu (capped or not) or leaky_relu.  After any other activation
onnxruntime's (Sigmoid, Tanh, Erf, Exp, ...) may differ from fastmlp's by an
ulp, which can round some of the next int8 layer's inputs to the neighbouring
int8 value: the outputs then differ by up to about one quantization step per
such layer (tests/test_onnx.py measures it).
"""
import math
import os

import numpy as np

from .. import _engine
from .format import _from_bfloat16, _quantize_int8, _to_bfloat16

__all__ = ["export", "to_onnx", "LAYER_EXPORTERS", "ACTIVATION_EXPORTERS", "DEFAULT_OPSET", "MIN_OPSET"]

DEFAULT_OPSET = 18
MIN_OPSET = 17
_GELU_OPSET = 20   # ONNX's Gelu operator; below it, gelu is written as its erf decomposition
_KERAS_FORMATS = ("tf_saved_model", "onnx", "openvino", "litert", "torch")
_INT_NAMES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
_ACTIVATION_NAMES = {code: name for name, code in _engine.ACTIVATIONS.items()}


def require_onnx():
    """The ``onnx`` module, or an ImportError saying how to install it."""
    try:
        import onnx
        from onnx import helper, numpy_helper  # noqa: F401  (submodules the exporter and importer use)
    except ImportError as e:
        raise ImportError(f"ONNX export and import need the `onnx` package, which is not installed ({e}). "
                          f"Install it with: pip install fastmlp[onnx]") from None
    return onnx


# ---------------------------------------------------------------------------- the graph being written
class Graph:
    """Nodes and initializers of the graph being written, with fresh value names.

    ``op`` appends a node and returns its output's name; ``const`` adds an
    initializer; ``weight`` adds a layer's weight once however often the layer
    is called; ``activation`` writes an activation (by engine code)."""

    def __init__(self, onnx, opset, dtype, reserved):
        self.onnx, self.opset, self.dtype = onnx, opset, dtype   # dtype: None (as the model runs), float32, int8
        self.nodes, self.initializers = [], []
        self.folded = {}        # a Dense step's key -> the BatchNormalization layer folded into it
        self.fold_targets = set()  # the keys of the BatchNormalization steps folded into their Dense
        self.step = None        # the key of the step being written
        self._used = set(reserved)
        self._weights = {}
        self.int_values = {}    # ONNX name -> np.dtype of the model inputs that are not float32 (integer ids
        #                         for an Embedding, or float64 where the input_signature says so)

    def fresh(self, hint):
        name, i = hint, 1
        while name in self._used:
            name, i = f"{hint}_{i}", i + 1
        self._used.add(name)
        return name

    def const(self, value, hint, dtype=np.float32):
        name = self.fresh(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.array(value, dtype=dtype, order="C"), name))
        return name

    def once(self, key, make):
        """``make()``'s value name, made once per ``key`` (a layer called twice shares its weights)."""
        if key not in self._weights:
            self._weights[key] = make()
        return self._weights[key]

    def weight(self, layer, attr, hint, value=None):
        """A float32 initializer for ``layer.<attr>`` (``value`` overrides it), added once per layer."""
        return self.once((id(layer), attr), lambda: self.const(getattr(layer, attr) if value is None else value, hint))

    def op(self, op_type, inputs, hint, **attrs):
        out = self.fresh(hint)
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def as_float(self, x):
        """``x`` as float32: an integer or float64 model input is cast (once), any other value is float32
        already."""
        if x not in self.int_values:
            return x
        return self.once(("float", x), lambda: self.op("Cast", [x], f"{x}/float", to=self.onnx.TensorProto.FLOAT))

    def as_ids(self, x):
        """``x`` as int64 ids for ``Gather``: an int64 input as it is, any other value cast (once)."""
        if self.int_values.get(x) == np.dtype(np.int64):
            return x
        return self.once(("ids", x), lambda: self.op("Cast", [x], f"{x}/ids", to=self.onnx.TensorProto.INT64))

    def dense_mode(self, layer):
        """How a Dense layer is written: "int8" (its int8 kernel, or its kernel quantized for
        dtype="int8", times its input quantized per row: what int8 inference runs), "bfloat16"
        (a mixed_bfloat16 layer: input and kernel rounded to bfloat16) or "float32"."""
        if self.dtype == "int8" or (self.dtype is None and getattr(layer, "_int8", None) is not None):
            return "int8"
        if self.dtype is None and getattr(layer, "_mixed", False):
            return "bfloat16"
        return "float32"

    def reduce_last(self, op_type, x, hint):
        """``op_type`` (ReduceMax, ReduceSum) over the last axis, keeping it."""
        if op_type == "ReduceMax" and self.opset < 18:   # (axes an attribute before opset 18)
            return self.op(op_type, [x], hint, axes=[-1], keepdims=1)
        return self.op(op_type, [x, self.const(np.array([-1]), f"{hint}/axes", np.int64)], hint, keepdims=1)

    def activation(self, code, alpha, x, hint):
        name = _ACTIVATION_NAMES.get(code)
        fn = ACTIVATION_EXPORTERS.get(name)
        if fn is None:
            raise ValueError(f"The activation {name or code!r} has no ONNX export in fastmlp")
        return fn(self, x, float(alpha), hint)


# ---------------------------------------------------------------------------- activations
def _unary(op_type, **attrs):
    def write(g, x, alpha, hint):
        return g.op(op_type, [x], hint, **attrs)
    return write


def _linear(g, x, alpha, hint):
    return x


def _elu(g, x, alpha, hint):
    return g.op("Elu", [x], hint, alpha=alpha)


def _leaky_relu(g, x, alpha, hint):
    return g.op("LeakyRelu", [x], hint, alpha=alpha)


def _selu(g, x, alpha, hint):
    from ..activations import _SELU_ALPHA, _SELU_SCALE
    return g.op("Selu", [x], hint, alpha=_SELU_ALPHA, gamma=_SELU_SCALE)


def _gelu(g, x, alpha, hint):
    """The exact gelu (fastmlp's, and Keras's default): ``0.5 * x * (1 + erf(x / sqrt(2)))``."""
    if g.opset >= _GELU_OPSET:
        return g.op("Gelu", [x], hint, approximate="none")
    t = g.op("Div", [x, g.const(math.sqrt(2.0), f"{hint}/sqrt2")], f"{hint}/scaled")
    e = g.op("Erf", [t], f"{hint}/erf")
    one = g.op("Add", [e, g.const(1.0, f"{hint}/one")], f"{hint}/one_plus_erf")
    half_x = g.op("Mul", [x, g.const(0.5, f"{hint}/half")], f"{hint}/half_x")
    return g.op("Mul", [half_x, one], hint)


def _swish(g, x, alpha, hint):
    return g.op("Mul", [x, g.op("Sigmoid", [x], f"{hint}/sigmoid")], hint)


def _hard_sigmoid(g, x, alpha, hint):
    """fastmlp's and Keras's ``clip(x / 6 + 1 / 2, 0, 1)``."""
    return g.op("HardSigmoid", [x], hint, alpha=1.0 / 6.0, beta=0.5)


def _clip(ceiling):
    def write(g, x, alpha, hint):
        top = ceiling if ceiling is not None else alpha
        return g.op("Clip", [x, g.const(0.0, f"{hint}/min"), g.const(top, f"{hint}/max")], hint)
    return write


ACTIVATION_EXPORTERS = {
    "linear": _linear,
    "relu": _unary("Relu"),
    "sigmoid": _unary("Sigmoid"),
    "tanh": _unary("Tanh"),
    "softmax": _unary("Softmax", axis=-1),
    "log_softmax": _unary("LogSoftmax", axis=-1),
    "elu": _elu,
    "selu": _selu,
    "leaky_relu": _leaky_relu,
    "gelu": _gelu,
    "softplus": _unary("Softplus"),
    "softsign": _unary("Softsign"),
    "swish": _swish,
    "hard_sigmoid": _hard_sigmoid,
    "exponential": _unary("Exp"),
    "relu6": _clip(6.0),
    "relu_cap": _clip(None),   # ReLU(max_value=alpha)
}


# ---------------------------------------------------------------------------- layer kinds
def _bn_affine(bn):
    """(scale, shift) of an inference-mode BatchNormalization: ``y = x * scale + shift``."""
    mean = np.asarray(bn.moving_mean, np.float64)
    scale = 1.0 / np.sqrt(np.asarray(bn.moving_variance, np.float64) + bn.epsilon)
    if bn.gamma is not None:
        scale = scale * np.asarray(bn.gamma, np.float64)
    shift = -mean * scale
    if bn.beta is not None:
        shift = shift + np.asarray(bn.beta, np.float64)
    return scale, shift


_Q8_TINY = 1e-30   # csrc/qgemm.h: FM_Q8_TINY


def _quantized_rows(g, x):
    """``(q, s)``: ``x`` quantized to int8 row by row as int8 inference does (csrc/qgemm.h):
    ``q = clip(round(x * (127 / amax)), -127, 127)`` and ``s = amax / 127`` with ``amax``
    the row's largest magnitude; ``s`` is 0 for a row below 1e-30 and NaN for a row with a
    NaN or an infinity.  Made once per value (Dense layers reading one value share it)."""
    def make():
        T, hint = g.onnx.TensorProto, f"{x}/q8"
        amax = g.reduce_last("ReduceMax", g.op("Abs", [x], f"{hint}/abs"), f"{hint}/amax")
        c127, tiny = g.const(127.0, f"{hint}/c127"), g.const(_Q8_TINY, f"{hint}/tiny")
        inv = g.op("Div", [c127, g.op("Max", [amax, tiny], f"{hint}/amax_floor")], f"{hint}/inv")
        r = g.op("Round", [g.op("Mul", [x, inv], f"{hint}/scaled")], f"{hint}/rounded")
        c = g.op("Clip", [r, g.const(-127.0, f"{hint}/lo"), c127], f"{hint}/clipped")
        q = g.op("Cast", [c], f"{hint}/int8", to=T.INT8)
        live = g.op("Cast", [g.op("GreaterOrEqual", [amax, tiny], f"{hint}/live_row")], f"{hint}/live", to=T.FLOAT)
        s = g.op("Mul", [g.op("Div", [amax, c127], f"{hint}/amax_127"), live], f"{hint}/s")
        # x * 0 sums to 0, or to NaN where the row has a NaN or an infinity
        bad = g.reduce_last("ReduceSum", g.op("Mul", [x, g.const(0.0, f"{hint}/zero")], f"{hint}/x0"),
                            f"{hint}/nan")
        return q, g.op("Add", [s, bad], f"{hint}/scale")
    return g.once(("q8", x), make)


def _int8_dense(g, layer, x, hint):
    """``((float)(q @ W) * s) * w_scale + bias`` (MatMulInteger: exact int32 sums), as
    fastmlp's int8 Dense computes it, before the activation."""
    def kernel():
        q, s = layer._int8 if getattr(layer, "_int8", None) is not None else \
            _quantize_int8(np.asarray(layer.kernel, np.float32))
        return g.const(q, f"{hint}/kernel_quantized", np.int8), g.const(s, f"{hint}/kernel_scale")
    w, w_scale = g.once((id(layer), "kernel/int8"), kernel)
    q, s = _quantized_rows(g, x)
    acc = g.op("MatMulInteger", [q, w], f"{hint}/int32")
    y = g.op("Mul", [g.op("Mul", [g.op("Cast", [acc], f"{hint}/acc", to=g.onnx.TensorProto.FLOAT), s],
                          f"{hint}/row_scaled"), w_scale], f"{hint}/matmul")
    if layer.bias is not None:
        y = g.op("Add", [y, g.weight(layer, "bias", f"{hint}/bias")], f"{hint}/biased")
    return y


def _dense(g, layer, call, ins):
    mode = g.dense_mode(layer)
    act = layer.activation
    linear = _ACTIVATION_NAMES[act._fm_code] == "linear"
    if mode == "int8":
        y = _int8_dense(g, layer, ins[0], layer.name)
        return g.activation(act._fm_code, act._fm_alpha, y, layer.name)
    bn = g.folded.get(g.step)
    kernel, bias = layer.kernel, layer.bias
    if bn is not None:   # fold the BatchNormalization that follows: its own kernel and bias for this call
        scale, shift = _bn_affine(bn)
        kernel = np.asarray(kernel, np.float64) * scale
        bias = (0.0 if bias is None else np.asarray(bias, np.float64)) * scale + shift
    hint = layer.name if bn is None else bn.name
    x = ins[0]
    if mode == "bfloat16":   # input and kernel rounded to bfloat16, products summed in float32 (csrc/bgemm.h)
        T = g.onnx.TensorProto
        x = g.once(("bf16", x), lambda: g.op("Cast", [g.op("Cast", [x], f"{x}/bfloat16", to=T.BFLOAT16)],
                                             f"{x}/bfloat16_rounded", to=T.FLOAT))
        w = g.once((id(layer), "kernel/bf16"), lambda: g.const(
            _from_bfloat16(_to_bfloat16(layer.kernel), np.float32), f"{hint}/kernel_bfloat16"))
    elif bn is None:
        w = g.weight(layer, "kernel", f"{hint}/kernel")
    else:
        w = g.const(kernel, f"{hint}/kernel")
    inputs = [x, w]
    if bias is not None:
        inputs.append(g.weight(layer, "bias", f"{hint}/bias") if bn is None else g.const(bias, f"{hint}/bias"))
    y = g.op("Gemm", inputs, hint if linear else f"{hint}/gemm")
    return g.activation(act._fm_code, act._fm_alpha, y, hint)


def _activation_layer(g, layer, call, ins):
    fn, alpha = layer._code()
    return g.activation(fn._fm_code, alpha, ins[0], layer.name)


def _identity(g, layer, call, ins):
    """Dropout, GaussianNoise, GaussianDropout, AlphaDropout, ActivityRegularization and
    Identity: the identity at inference."""
    return ins[0]


def _flatten(g, layer, call, ins):
    """Flatten, and Reshape (fastmlp's reshapes to flat samples): nothing for 2-D inputs."""
    if len(call.inputs[0].shape) == 2:
        return ins[0]
    return g.op("Flatten", ins, layer.name, axis=1)


def _batch_normalization(g, layer, call, ins):
    if g.step in g.fold_targets:
        return ins[0]
    n = layer.moving_mean.shape[0]
    gamma = g.weight(layer, "gamma", f"{layer.name}/gamma", None if layer.gamma is not None else np.ones(n))
    beta = g.weight(layer, "beta", f"{layer.name}/beta", None if layer.beta is not None else np.zeros(n))
    mean = g.weight(layer, "moving_mean", f"{layer.name}/moving_mean")
    var = g.weight(layer, "moving_variance", f"{layer.name}/moving_variance")
    return g.op("BatchNormalization", [ins[0], gamma, beta, mean, var], layer.name, epsilon=layer.epsilon)


def _prelu(g, layer, call, ins):
    return g.op("PRelu", [ins[0], g.weight(layer, "alpha", f"{layer.name}/alpha")], layer.name)


def _concatenate(g, layer, call, ins):
    return g.op("Concat", ins, layer.name, axis=1)


def _variadic(op_type):
    """Sum, Max, Min, Mean: one operator over all the inputs (one input: the identity)."""
    def write(g, layer, call, ins):
        return ins[0] if len(ins) == 1 else g.op(op_type, ins, layer.name)
    return write


def _add(g, layer, call, ins):
    if len(ins) == 1:
        return ins[0]
    return g.op("Add" if len(ins) == 2 else "Sum", ins, layer.name)


def _subtract(g, layer, call, ins):
    return g.op("Sub", ins, layer.name)


def _multiply(g, layer, call, ins):
    out = ins[0]
    for i, x in enumerate(ins[1:], 2):
        out = g.op("Mul", [out, x], layer.name if i == len(ins) else f"{layer.name}/mul{i}")
    return out


def _normalization(g, layer, call, ins):
    """``(x - mean) / std`` (``invert``: ``mean + x * std``) with Keras's ``std =
    max(sqrt(variance), epsilon)`` computed here, one value per feature."""
    from .. import config as _config
    mean = np.asarray(layer.mean, np.float64)
    std = np.maximum(np.sqrt(np.asarray(layer.variance, np.float64)), _config.epsilon())
    m = g.once((id(layer), "mean"), lambda: g.const(mean, f"{layer.name}/mean"))
    s = g.once((id(layer), "std"), lambda: g.const(std, f"{layer.name}/std"))
    if layer.invert:
        return g.op("Add", [g.op("Mul", [ins[0], s], f"{layer.name}/scaled"), m], layer.name)
    return g.op("Div", [g.op("Sub", [ins[0], m], f"{layer.name}/centered"), s], layer.name)


def _rescaling(g, layer, call, ins):
    """``x * scale + offset`` (no Add for a zero offset), the constants as given (broadcast by ONNX)."""
    scale = g.once((id(layer), "scale"), lambda: g.const(layer._scale, f"{layer.name}/scale"))
    if not np.any(layer._offset):
        return g.op("Mul", [ins[0], scale], layer.name)
    offset = g.once((id(layer), "offset"), lambda: g.const(layer._offset, f"{layer.name}/offset"))
    return g.op("Add", [g.op("Mul", [ins[0], scale], f"{layer.name}/scaled"), offset], layer.name)


def _layer_normalization(g, layer, call, ins):
    """ONNX's ``LayerNormalization`` (opset 17) over the last axis; a missing gamma is ones."""
    n = call.inputs[0].shape[-1]
    gamma = g.weight(layer, "gamma", f"{layer.name}/gamma", None if layer.gamma is not None else np.ones(n))
    inputs = [ins[0], gamma]
    if layer.beta is not None:
        inputs.append(g.weight(layer, "beta", f"{layer.name}/beta"))
    return g.op("LayerNormalization", inputs, layer.name, axis=-1, epsilon=float(layer.epsilon))


def _unit_normalization(g, layer, call, ins):
    """``x / max(sqrt(sum(x**2)), 1e-12)`` over the last axis: fastmlp's (and Keras's)
    ``x * min(1 / sqrt(sum(x**2)), 1e12)`` (an all-zero sample stays zero)."""
    h = layer.name
    if g.opset >= 18:   # ReduceSumSquare's axes became an input in opset 18
        ss = g.op("ReduceSumSquare", [ins[0], g.const([-1], f"{h}/axes", np.int64)], f"{h}/sum_squares",
                  keepdims=1)
    else:
        ss = g.op("ReduceSumSquare", [ins[0]], f"{h}/sum_squares", axes=[-1], keepdims=1)
    norm = g.op("Max", [g.op("Sqrt", [ss], f"{h}/norm"), g.const(1e-12, f"{h}/min_norm")], f"{h}/safe_norm")
    return g.op("Div", [ins[0], norm], h)


def _embedding(g, layer, call, ins):
    """``Gather`` of rows of the table by the ids (cast to int64 unless they are int64 already)."""
    table = g.weight(layer, "embeddings", f"{layer.name}/embeddings")
    return g.op("Gather", [table, g.as_ids(ins[0])], layer.name, axis=0)


LAYER_EXPORTERS = {
    "Dense": _dense,
    "Activation": _activation_layer,
    "ReLU": _activation_layer,
    "LeakyReLU": _activation_layer,
    "ELU": _activation_layer,
    "Softmax": _activation_layer,
    "Dropout": _identity,
    "GaussianNoise": _identity,
    "Flatten": _flatten,
    "BatchNormalization": _batch_normalization,
    "PReLU": _prelu,
    "Concatenate": _concatenate,
    "Add": _add,
    "Subtract": _subtract,
    "Multiply": _multiply,
    "Average": _variadic("Mean"),
    "Maximum": _variadic("Max"),
    "Minimum": _variadic("Min"),
    "Normalization": _normalization,
    "Rescaling": _rescaling,
    "LayerNormalization": _layer_normalization,
    "UnitNormalization": _unit_normalization,
    "Identity": _identity,
    "Reshape": _flatten,
    "ActivityRegularization": _identity,
    "GaussianDropout": _identity,
    "AlphaDropout": _identity,
    "Embedding": _embedding,
}


# ---------------------------------------------------------------------------- the model's graph
def _calls(model):
    """Every layer call of the model in topological order, nested models inlined:
    ``[(layer, call, input keys, output key)]``, and the keys of the model's outputs.
    A key stands for one tensor: the model's inputs are keyed by ``id``, each step's
    output by ``("step", i)`` (a nested model's tensors are the same objects at every
    call of it), and nested models' inputs and outputs take their caller's keys."""
    steps = []

    def walk(m, key):
        for call in m._nodes:
            layer = call.layer
            ins = [key[id(t)] for t in call.inputs]
            if getattr(layer, "_is_model", False):
                inner = {id(t): k for t, k in zip(layer.inputs, ins)}
                walk(layer, inner)
                for t, o in zip(call.outputs, layer.outputs):
                    key[id(t)] = inner[id(o)]
                continue
            out = key[id(call.outputs[0])] = ("step", len(steps))
            steps.append((layer, call, ins, out))

    key = {id(t): id(t) for t in model.inputs}
    walk(model, key)
    return steps, [key[id(t)] for t in model.outputs]


def _plan_folds(g, steps, output_keys):
    """Fold each BatchNormalization whose input is a linear Dense call read by nothing else."""
    readers = {}
    for _, _, ins, _ in steps:
        for k in ins:
            readers[k] = readers.get(k, 0) + 1
    for k in output_keys:
        readers[k] = readers.get(k, 0) + 1
    made_by = {out: layer for layer, _, _, out in steps}
    for layer, call, ins, out in steps:
        if type(layer).__name__ != "BatchNormalization" or readers.get(ins[0]) != 1 or ins[0] not in made_by:
            continue
        src = made_by[ins[0]]
        if type(src).__name__ == "Dense" and _ACTIVATION_NAMES[src.activation._fm_code] == "linear" and \
                g.dense_mode(src) == "float32":   # (an int8 or bfloat16 Dense keeps its own kernel)
            g.folded[ins[0]] = layer
            g.fold_targets.add(out)


def _input_dtype(t):
    """The ONNX input's dtype for the model input ``t``: its integer dtype (ids), else float32."""
    try:
        dt = np.dtype(t.dtype)
    except TypeError:
        return np.dtype(np.float32)
    return dt if dt.kind in "iu" else np.dtype(np.float32)


def _spec_dtype(dtype):
    """A spec's dtype by name, as Keras's ``standardize_dtype`` gives it: "float32" for
    ``np.float32``, ``"float32"``, ``torch.float32`` or ``tf.float32``; None for None."""
    if dtype is None:
        return None
    try:
        return str(np.dtype(dtype))
    except TypeError:
        pass
    name = getattr(dtype, "name", None)   # (tf.DType)
    if isinstance(name, str):
        return name
    text = str(dtype)
    return text.split(".")[-1] if text.startswith(("torch.", "jax.numpy.")) else text


def _signature_shapes(model, input_signature):
    """The batch dimension (None: dynamic) and the ONNX dtype of each input, from ``input_signature``:
    float32 for float inputs, the declared integer dtype for integer inputs (a spec may name
    another integer dtype).  Each spec -- an ``InputSpec``, a symbolic tensor (``fastmlp.Input``,
    ``keras.Input``) or a tensor (a torch tensor, an array) -- gives its shape as it is, as Keras's
    torch backend exports it (a batch size fixes the batch axis), and its dtype (``torch.float32``
    is float32)."""
    n = len(model.inputs)
    dtypes = [_input_dtype(t) for t in model.inputs]
    if input_signature is None:
        return [None] * n, dtypes
    sig = input_signature
    if isinstance(sig, dict):
        missing = [k for k in model.input_names if k not in sig]
        if missing or len(sig) != n:
            raise ValueError(f"input_signature: expected the keys {model.input_names}; received {sorted(sig)}")
        sig = [sig[k] for k in model.input_names]
    elif not isinstance(sig, (list, tuple)):
        sig = [sig]
    elif len(sig) == 1 and isinstance(sig[0], (list, tuple)) and n > 1:   # Keras's [[spec1, spec2]]
        sig = list(sig[0])
    if len(sig) != n:
        raise ValueError(f"input_signature: the model has {n} input(s); received {len(sig)} spec(s)")
    batches = []
    for i, (spec, t, name) in enumerate(zip(sig, model.inputs, model.input_names)):
        shape = getattr(spec, "shape", None)
        try:
            shape = tuple(None if d is None else int(d) for d in shape)
        except (TypeError, ValueError):
            raise ValueError(f"input_signature: the spec for input {name!r} needs a shape; received {spec!r}") \
                from None
        if shape[1:] != tuple(t.shape[1:]) or (shape and shape[0] is not None and shape[0] <= 0):
            raise ValueError(f"input_signature: input {name!r} has shape {(None,) + tuple(t.shape[1:])}; the "
                             f"signature gives {shape} (only the batch axis may differ: None or a positive size)")
        dtype = getattr(spec, "dtype", None)
        dtype_name = _spec_dtype(dtype)
        if dtypes[i].kind in "iu":
            if dtype_name is not None:
                if dtype_name not in _INT_NAMES:
                    raise ValueError(f"input_signature: input {name!r} holds {dtypes[i]} ids; the spec must give "
                                     f"an integer dtype (or none); received dtype {dtype_name}")
                dtypes[i] = np.dtype(dtype_name)
        elif dtype_name == "float64":   # a float64 input, cast to the graph's float32 at once
            dtypes[i] = np.dtype(np.float64)
        elif dtype_name not in (None, "float32"):
            raise ValueError(f"input_signature: fastmlp's ONNX graphs take float32 or float64 inputs; input "
                             f"{name!r} has dtype {dtype_name}")
        batches.append(shape[0])
    return batches, dtypes


def _check_opset(onnx, opset_version):
    if opset_version is None:
        return DEFAULT_OPSET
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset_version, bool) or not isinstance(opset_version, (int, np.integer)) \
            or not MIN_OPSET <= opset_version <= newest:
        raise ValueError(f"`opset_version` must be an integer from {MIN_OPSET} to {newest} (the newest the "
                         f"installed onnx knows). Received: opset_version={opset_version!r}")
    return int(opset_version)


def to_onnx(model, input_signature=None, opset_version=None, dtype=None):
    """The model as an ``onnx.ModelProto`` (inference graph, float32 inputs and outputs)
    that computes what ``model.predict`` computes.

    ``dtype=None`` writes each Dense layer as the model runs it: an int8 layer
    (``model.quantize("int8")``, an int8 file) as its int8 kernel times its input
    quantized per row (``MatMulInteger``, exact int32 sums; bit-exact with predict
    after linear and relu-like activations, within about one quantization step per
    layer after others: see the module's docstring), a ``mixed_bfloat16``
    layer with its input and kernel rounded to bfloat16, any other in float32.
    ``dtype="int8"`` writes every Dense layer as int8, its kernel quantized per
    output unit as ``model.save(..., dtype="int8")`` does: the graph computes what
    the model loaded from such a file computes.  ``dtype="float32"`` writes every
    Dense layer in float32 (an int8 layer's dequantized kernel)."""
    onnx = require_onnx()
    if not getattr(model, "_is_model", False):
        raise TypeError(f"ONNX export takes a fastmlp model; received {type(model).__name__}")
    if not model.built:
        raise ValueError(f"Model {model.name!r} is not built yet, so it has no weights to export: "
                         f"build it (give it an input shape) or call it on data first")
    if dtype not in (None, "float32", "int8"):
        raise ValueError(f"ONNX export: `dtype` must be None, 'float32' or 'int8'. Received: dtype={dtype!r}")
    opset = _check_opset(onnx, opset_version)
    batches, input_dtypes = _signature_shapes(model, input_signature)
    model._ensure_attached()
    input_names, output_names = list(model.input_names), list(model.output_names)
    clash = sorted(set(input_names) & set(output_names))
    if clash:
        raise ValueError(f"ONNX values need distinct names: {clash} names both an input and an output")
    g = Graph(onnx, opset, dtype, input_names + output_names)
    steps, output_keys = _calls(model)
    _plan_folds(g, steps, output_keys)
    names = {id(t): n for t, n in zip(model.inputs, input_names)}
    for n, dt in zip(input_names, input_dtypes):
        if dt != np.float32:
            g.int_values[n] = dt
    for layer, call, ins, out in steps:
        fn = LAYER_EXPORTERS.get(type(layer).__name__)
        if fn is None:
            raise ValueError(f"Layer {layer.name!r} of kind {type(layer).__name__} cannot be exported to ONNX "
                             f"yet; kinds with an ONNX export: {sorted(LAYER_EXPORTERS)}")
        values = [names[k] for k in ins]
        if fn is not _embedding:   # integer inputs reach other layers as the floats the engine carries
            values = [g.as_float(v) for v in values]
        g.step = out
        names[out] = fn(g, layer, call, values)
    for key in output_keys:
        names[key] = g.as_float(names[key])

    # The outputs take the model's output names: the value is renamed where it is the output of a
    # node and of nothing else; otherwise (an input passed through, a value given twice) an Identity.
    helper, T = onnx.helper, onnx.TensorProto.FLOAT
    produced = {o: node for node in g.nodes for o in node.output}
    renames, claimed = {}, set()
    for key, want in zip(output_keys, output_names):
        value = names[key]
        if value in produced and value not in claimed and value not in renames:
            renames[value] = want
        else:
            g.nodes.append(helper.make_node("Identity", [renames.get(value, value)], [want], name=want))
        claimed.add(value)
    for node in g.nodes:
        for i, v in enumerate(node.input):
            if v in renames:
                node.input[i] = renames[v]
        for i, v in enumerate(node.output):
            if v in renames:
                node.output[i] = renames[v]

    def info(name, shape, batch, dtype=T):
        return helper.make_tensor_value_info(name, dtype, ["batch" if batch is None else batch] + list(shape[1:]))
    inputs = [info(n, t.shape, b, helper.np_dtype_to_tensor_dtype(dt))
              for n, t, b, dt in zip(input_names, model.inputs, batches, input_dtypes)]
    fixed = batches[0] if len(set(batches)) == 1 else None   # the outputs keep a batch size all inputs share
    outputs = [info(n, t.shape, fixed) for n, t in zip(output_names, model.outputs)]
    graph = helper.make_graph(g.nodes, model.name, inputs, outputs, initializer=g.initializers)
    opsets = [helper.make_opsetid("", opset)]
    from .. import __version__
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="fastmlp", producer_version=__version__,
                              ir_version=helper.find_min_ir_version_for(opsets))
    proto.doc_string = f"fastmlp model {model.name!r} (inference)"
    return proto


def export(model, filepath, verbose=None, input_signature=None, opset_version=None, dtype=None):
    """Write ``to_onnx(model, ...)`` to ``filepath`` atomically; prints where unless ``verbose=False``."""
    proto = to_onnx(model, input_signature=input_signature, opset_version=opset_version, dtype=dtype)
    from .writer import _atomic_write
    _atomic_write(filepath, proto.SerializeToString())
    if verbose is None or verbose:
        print(f"Saved artifact at '{os.fspath(filepath)}'.")


def model_export(model, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
    """``Model.export``: Keras's signature; fastmlp writes ``format="onnx"``."""
    if format not in _KERAS_FORMATS:
        raise ValueError(f"Unrecognized format={format!r}. Supported formats are: {list(_KERAS_FORMATS)} "
                         f"(fastmlp exports 'onnx')")
    if format != "onnx":
        raise NotImplementedError(f"fastmlp exports format='onnx' only; format={format!r} (a Keras format "
                                  f"that needs TensorFlow, OpenVINO, LiteRT or torch.export) is not supported. "
                                  f"Use model.export(filepath, format='onnx').")
    opset_version = kwargs.pop("opset_version", None)
    dtype = kwargs.pop("dtype", None)
    if kwargs:
        raise ValueError(f"model.export(format='onnx'): argument(s) {sorted(kwargs)} are not supported by "
                         f"fastmlp; it takes verbose, input_signature, opset_version and dtype")
    return export(model, filepath, verbose=verbose, input_signature=input_signature, opset_version=opset_version,
                  dtype=dtype)
