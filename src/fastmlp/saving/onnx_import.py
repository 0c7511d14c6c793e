"""ONNX graphs of multilayer perceptrons as fastmlp models:
``fastmlp.models.load_model("model.onnx")``.

Each ONNX operator is one function in ``OP_IMPORTERS``; an operator without an
entry is refused with an error naming it and its node.  The graph is read
node by node (ONNX lists nodes in topological order): constants (initializers,
``Constant`` nodes and operators on constants only) are computed with NumPy,
every other value becomes a fastmlp tensor.  ``MatMul``/``Gemm`` with constant
weights become ``Dense`` layers, and a following constant ``Add`` (the bias)
and a parameterless activation read by nothing else are folded into that
Dense, so ``Gemm, Relu`` imports as ``Dense(activation="relu")``.

``LayerNormalization`` over the last axis becomes LayerNormalization, an L2
normalization over the last axis bounded as fastmlp's is (``x / max(sqrt(
ReduceSumSquare(x)), 1e-12)`` as fastmlp writes it, Keras's ``x * min(1 / ||x||,
1e12)``) UnitNormalization (``LpNormalization``, with no floor, is refused), and
``Gather`` of a constant table by
integer ids (an integer model input, or floats through a ``Cast`` to integers)
an Embedding.  Per-feature Sub/Div/Mul/Add by constants (a Normalization or
Rescaling as fastmlp writes them) become a BatchNormalization with unit variance
or fold into the Dense before them.

The model computes what the graph computes at inference; the ONNX file has no
training configuration, so the model comes back uncompiled.
"""
import math
import os

import numpy as np

from ..activations import _SELU_ALPHA, _SELU_SCALE
from .format import _from_bfloat16, _to_bfloat16
from .onnx_export import require_onnx

__all__ = ["load", "from_onnx", "OP_IMPORTERS"]


class _Pending:
    """A computation not made into a layer yet, so that what follows may still be
    folded in; ``tensor`` is its output once made (``make``)."""
    tensor = None


class _Dense(_Pending):
    """A ``MatMul``/``Gemm``: a bias, a per-unit scale and an activation may follow.  An int8
    Dense (``int8``: its int8 kernel and per-unit scales) takes a bias and an activation only."""
    __slots__ = ("x", "kernel", "bias", "activation", "node_name", "tensor", "int8", "bf16")

    def __init__(self, x, kernel, bias, node_name, int8=None, bf16=False):
        self.x, self.kernel, self.bias, self.node_name, self.int8 = x, kernel, bias, node_name, int8
        self.activation, self.tensor, self.bf16 = None, None, bf16

    def make(self, g):
        layer = g.layers.Dense(self.kernel.shape[1], activation=self.activation, use_bias=self.bias is not None,
                               name=g.name(self.node_name or "dense"),
                               dtype="mixed_bfloat16" if self.bf16 else g.dtype)
        g.weights.append((layer, [self.kernel] + ([self.bias] if self.bias is not None else [])))
        if self.int8 is not None:
            g.int8.append((layer, self.int8))
        return layer(self.x)


class _Affine(_Pending):
    """``x * scale + shift`` with constants that broadcast to the sample (a chain of Add/Sub/Mul/Div
    by constants, as Keras writes an inference BatchNormalization and fastmlp a Normalization or
    Rescaling): a BatchNormalization layer with zero mean and unit variance on (samples, features)
    data, a Rescaling on samples of more axes."""
    __slots__ = ("x", "scale", "shift", "node_name", "tensor")

    def __init__(self, x, node_name):
        sample = tuple(x.shape[1:])
        self.x, self.scale, self.shift, self.node_name = x, np.ones(sample), np.zeros(sample), node_name
        self.tensor = None

    def make(self, g):
        name = g.name(self.node_name or "affine")
        if len(self.x.shape) > 2:   # one value per feature where the constants repeat along the other axes
            n = self.scale.shape[-1]
            scale, shift = (a[0] if np.all(a == a[0]) else a.reshape(self.scale.shape)
                            for a in (self.scale.reshape(-1, n), self.shift.reshape(-1, n)))
            return g.layers.Rescaling(scale, offset=shift, name=name, dtype=g.dtype)(self.x)
        # epsilon is tiny so that sqrt(1 + epsilon) is 1 in float32 and within 1e-12 of it in float64
        layer = g.layers.BatchNormalization(epsilon=1e-12, name=name, dtype=g.dtype)
        n = len(self.scale)
        g.weights.append((layer, [self.scale, self.shift, np.zeros(n), np.ones(n)]))
        return layer(self.x)


class _Rounded:
    """A value rounded to bfloat16 and back (Cast, Cast): read only as the input of a Dense, which
    then runs as fastmlp's mixed_bfloat16 Dense does (input and kernel in bfloat16)."""
    __slots__ = ("tensor",)

    def __init__(self, tensor):
        self.tensor = tensor


class _Ids:
    """Floats cast to integers: read only as the ids of a ``Gather`` (an Embedding, which
    checks that they are whole numbers)."""
    __slots__ = ("tensor",)

    def __init__(self, tensor):
        self.tensor = tensor


def _is_int(tensor):
    return str(getattr(tensor, "dtype", "")).startswith(("int", "uint"))


class _Const:
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = np.asarray(value)


class _Graph:
    """The graph being read: values by ONNX name, how often each is read, the
    layers made (with the weights to give them) and their names."""

    def __init__(self, onnx, proto):
        from .. import layers
        self.onnx, self.layers = onnx, layers
        graph = proto.graph
        self.opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.values = {}
        for init in graph.initializer:
            self.values[init.name] = _Const(onnx.numpy_helper.to_array(init))
        # a constant folded from others may hold at most this many values: a graph's own weights
        # (its initializers and Constant nodes) bound what folding its constants needs (an outer
        # product of two vectors would not be)
        self.fold_limit = 2 * sum(v.value.size for v in self.values.values()) + (1 << 20)
        self.sparse = {init.values.name for init in graph.sparse_initializer}
        self.outputs = [o.name for o in graph.output]
        self.used_names = set()
        self.weights = []   # (layer, [arrays]) set once the model exists
        self.dtype = "float32"
        self.int_names = set()   # the ONNX names of integer model inputs (and Identity copies of them)
        self.int8 = []   # (Dense layer, (int8 kernel, scale per unit)) to quantize once the model exists

    def count_readers(self, nodes):
        self.readers = {}
        for node in nodes:
            for name in node.input:
                if name:
                    self.readers[name] = self.readers.get(name, 0) + 1
        for name in self.outputs:
            self.readers[name] = self.readers.get(name, 0) + 1

    # ------------------------------------------------------------------ values
    def const(self, name, node, what):
        """The constant value ``name`` (an input of ``node``), or a ValueError."""
        v = self.values.get(name)
        if v is None and name in self.sparse:
            raise ValueError(f"{_where(node)}: its {what} ({name!r}) is a sparse initializer, which fastmlp's "
                             f"importer does not support; store it as a dense initializer")
        if not isinstance(v, _Const):
            raise ValueError(f"{_where(node)}: its {what} ({name!r}) must be a constant (an initializer); "
                             f"fastmlp imports weights, not computed {what}s")
        return v.value

    def is_const(self, name):
        return isinstance(self.values.get(name), _Const)

    def folded(self, node, count):
        """Check that folding ``node``'s constants makes ``count`` values at most ``fold_limit``,
        before they are computed."""
        if count > self.fold_limit:
            raise ValueError(f"{_where(node)}: folding its constants would make {count} values, more than "
                             f"the graph's weights could need ({self.fold_limit}); fastmlp folds constants "
                             f"only to weights")

    def tensor(self, name, node):
        """The fastmlp tensor of value ``name``, making a pending Dense into a layer."""
        v = self.values.get(name)
        if v is None and name in self.sparse:
            raise ValueError(f"{_where(node)} reads {name!r}, a sparse initializer, which fastmlp's importer does "
                             f"not support")
        if v is None:
            raise ValueError(f"{_where(node)} reads {name!r}, which no earlier node, input or initializer "
                             f"defines")
        if isinstance(v, _Const):
            raise ValueError(f"{_where(node)}: its input {name!r} is a constant where fastmlp expects "
                             f"computed data (a constant operand is supported only as weights or a bias)")
        if name in self.int_names and (node is None or node.op_type not in ("Cast", "Gather")):
            raise ValueError(f"{_where(node)} reads the integer input {name!r}: fastmlp models take float32 or "
                             f"float64 tensors, and integer ids only as the indices of a Gather (an Embedding) "
                             f"or through a Cast")
        if isinstance(v, _Ids):
            raise ValueError(f"{_where(node)} reads {name!r}, floats cast to integers: fastmlp imports such a "
                             f"Cast only as the indices of a Gather (an Embedding)")
        if isinstance(v, _Rounded):
            raise ValueError(f"{_where(node)} reads {name!r}, floats rounded to bfloat16: fastmlp imports such a "
                             f"rounding only as the input of a MatMul or Gemm (a mixed_bfloat16 Dense)")
        if isinstance(v, _Pending):
            if v.tensor is None:
                v.tensor = v.make(self)
            return v.tensor
        return v

    def foldable(self, name, kinds=(_Dense,)):
        """The pending computation of ``name`` (one of ``kinds``) when only one node reads it and
        it is no graph output."""
        v = self.values.get(name)
        if isinstance(v, kinds) and v.tensor is None and self.readers.get(name) == 1 and name not in self.outputs:
            return v
        return None

    def name(self, hint):
        hint = hint.replace("/", "_").strip("_") or "layer"
        name, i = hint, 1
        while name in self.used_names:
            name, i = f"{hint}_{i}", i + 1
        self.used_names.add(name)
        return name

    def layer(self, cls, node, inputs, weights=None, **kwargs):
        """``cls(**kwargs)`` named after ``node``, called on ``inputs``, with ``weights``."""
        layer = cls(name=self.name(node.name or node.op_type.lower()), dtype=self.dtype, **kwargs)
        out = layer(inputs)
        if weights is not None:
            self.weights.append((layer, weights))
        return out


_PATTERN_NAMES = {"_FastmlpBFloat16": "Cast to bfloat16 and back", "_FastmlpInt8Dense": "int8 Dense, MatMulInteger",
                  "_FastmlpL2Norm": "L2 normalization"}


def _where(node):
    if node is None:
        return "The ONNX graph's outputs"
    op = _PATTERN_NAMES.get(node.op_type, node.op_type)   # (what _fuse_patterns found, as the graph has it)
    return f"ONNX node {node.name!r} ({op})" if node.name else f"ONNX {op} node"


def _attrs(onnx, node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _only_first_output(g, node):
    for extra in node.output[1:]:
        if extra and g.readers.get(extra):
            raise ValueError(f"{_where(node)}: its output {extra!r} (training-time output) is used; fastmlp "
                             f"imports inference graphs")


# ---------------------------------------------------------------------------- dense
def _dense_input(g, node, name, rows):
    v = g.values.get(name)
    x = v.tensor if isinstance(v, _Rounded) else g.tensor(name, node)
    if len(x.shape) != 2 or x.shape[1] != rows:
        raise ValueError(f"{_where(node)}: fastmlp's Dense takes (samples, {rows}) inputs; {name!r} has shape "
                         f"{tuple(x.shape)}")
    return x


def _gemm(g, node, at):
    if at.get("transA", 0):
        raise ValueError(f"{_where(node)}: transA=1 (a transposed data input) is not supported; fastmlp imports "
                         f"Gemm(X, W) with X of shape (samples, features)")
    w = g.const(node.input[1], node, "weight (B)").astype(np.float64)
    if w.ndim != 2:
        raise ValueError(f"{_where(node)}: the weight B must be a matrix; it has shape {w.shape}")
    if at.get("transB", 0):
        w = w.T
    w = w * at.get("alpha", 1.0)
    bias = None
    if len(node.input) > 2 and node.input[2]:
        c = g.const(node.input[2], node, "bias (C)")
        bias = at.get("beta", 1.0) * _bias(node, c, w.shape[1])
    x = _dense_input(g, node, node.input[0], w.shape[0])
    return _Dense(x, w, bias, node.name or "gemm", bf16=_rounded_input(g, node, w))


def _matmul(g, node, at):
    if g.is_const(node.input[0]) and g.is_const(node.input[1]):
        a, b = g.const(node.input[0], node, "A"), g.const(node.input[1], node, "B")
        a2 = a.shape if a.ndim >= 2 else (1,) + a.shape
        b2 = b.shape if b.ndim >= 2 else b.shape + (1,)
        try:
            batch = np.broadcast_shapes(a2[:-2], b2[:-2])
        except ValueError:
            raise ValueError(f"{_where(node)}: MatMul of constants of shapes {a.shape} and {b.shape}") from None
        if a2[-1:] != b2[-2:-1]:
            raise ValueError(f"{_where(node)}: MatMul of constants of shapes {a.shape} and {b.shape}")
        g.folded(node, math.prod(batch) * a2[-2] * b2[-1])
        return _Const(a @ b)
    w = g.const(node.input[1], node, "weight (B)").astype(np.float64)
    if w.ndim != 2:
        raise ValueError(f"{_where(node)}: the weight B must be a matrix; it has shape {w.shape}")
    x = _dense_input(g, node, node.input[0], w.shape[0])
    return _Dense(x, w, None, node.name or "matmul", bf16=_rounded_input(g, node, w))


def _rounded_input(g, node, w):
    """Whether the MatMul/Gemm reads a value rounded to bfloat16 (a mixed_bfloat16 Dense, which
    rounds its kernel too: the kernel ``w`` must hold bfloat16 values already)."""
    if not isinstance(g.values.get(node.input[0]), _Rounded):
        return False
    w32 = np.asarray(w, np.float32)
    if not np.array_equal(w32.astype(np.float64), w) or \
            not np.array_equal(_from_bfloat16(_to_bfloat16(w32), np.float32), w32, equal_nan=True):
        raise ValueError(f"{_where(node)}: its input is rounded to bfloat16 but its weights are not bfloat16 "
                         f"values; fastmlp's bfloat16 Dense rounds both")
    return True


def _int8_dense(g, node, at):
    """fastmlp's int8 Dense (found by ``_int8_dense_pattern``): x, the int8 kernel, its scale per
    unit and the bias."""
    q = np.asarray(g.const(node.input[1], node, "int8 kernel"), np.int8)
    scale = np.asarray(g.const(node.input[2], node, "kernel scale"), np.float32)
    bias = np.asarray(g.const(node.input[3], node, "bias"), np.float64) if len(node.input) > 3 else None
    if not (np.all(q >= -127) and np.all(np.isfinite(scale)) and np.all(scale >= 0)):
        raise ValueError(f"{_where(node)}: an int8 Dense needs kernel values in [-127, 127] and finite, "
                         f"non-negative scales")
    if isinstance(g.values.get(node.input[0]), _Rounded):
        raise ValueError(f"{_where(node)}: an int8 Dense of a value rounded to bfloat16 is not supported")
    x = _dense_input(g, node, node.input[0], q.shape[0])
    return _Dense(x, q.astype(np.float64) * scale, bias, node.name or "dense_int8", int8=(q, scale))


def _bfloat16(g, node, at):
    """A value rounded to bfloat16 and back (found by _fuse_patterns): the input of a bfloat16 Dense."""
    return _Rounded(g.tensor(node.input[0], node))


def _bias(node, c, units):
    c = np.asarray(c, np.float64)
    try:
        return np.broadcast_to(c, (1, units)).reshape(units).copy()
    except ValueError:
        raise ValueError(f"{_where(node)}: a bias of shape {c.shape} does not broadcast to one value per unit "
                         f"({units})") from None


# ---------------------------------------------------------------------------- element-wise binary and merges
_MERGES = {"Add": "Add", "Sum": "Add", "Sub": "Subtract", "Mul": "Multiply", "Max": "Maximum", "Min": "Minimum",
           "Mean": "Average"}
_NUMPY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Max": np.maximum,
          "Min": np.minimum}


def _merge(g, node, at):
    ins = [n for n in node.input if n]
    op = node.op_type
    if all(g.is_const(n) for n in ins) and op in _NUMPY:   # arithmetic on constants
        values = [g.const(n, node, "input") for n in ins]
        try:
            shape = np.broadcast_shapes(*(v.shape for v in values))
        except ValueError:
            raise ValueError(f"{_where(node)}: {op} of constants of shapes {[v.shape for v in values]}, which "
                             f"do not broadcast") from None
        g.folded(node, math.prod(shape))
        out = values[0]
        for v in values[1:]:
            out = _NUMPY[op](out, v)
        return _Const(out)
    if any(g.is_const(n) for n in ins):
        return _affine(g, node, ins)
    if op not in _MERGES:
        raise ValueError(f"{_where(node)}: {op} of two computed tensors is not supported")
    tensors = [g.tensor(n, node) for n in ins]
    shapes = {tuple(t.shape[1:]) for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"{_where(node)}: fastmlp's merge layers take inputs of one shape; got "
                         f"{[tuple(t.shape) for t in tensors]} (no broadcasting)")
    return g.layer(getattr(g.layers, _MERGES[op]), node, tensors)


def _affine(g, node, ins):
    """``x op c`` (or ``c op x``) with a constant per feature: folded into the MatMul/Gemm it
    follows (its bias, or its kernel for Mul/Div), else into a per-feature affine map."""
    op = node.op_type
    k = 0 if g.is_const(ins[0]) else 1   # which operand is the constant
    if len(ins) != 2 or op not in ("Add", "Sub", "Mul", "Div") or (op == "Div" and k == 0):
        raise ValueError(f"{_where(node)}: {op} with a constant operand is supported as x + c, x - c, c - x, x * c, "
                         f"c * x or x / c with c one value per feature (a bias or a scale)")
    name, c = ins[1 - k], np.asarray(g.const(ins[k], node, "operand"), np.float64)
    bad = "inf or NaN" if not np.all(np.isfinite(c)) else "0" if op == "Div" and np.any(c == 0) else None
    if bad:   # (onnxruntime's results would be infinite or NaN: not a bias or a scale)
        raise ValueError(f"{_where(node)}: {op} by a constant holding {bad} is not supported; fastmlp imports "
                         f"finite per-feature biases and scales")
    if op == "Add":
        scale, shift = 1.0, c
    elif op == "Sub":
        scale, shift = (1.0, -c) if k == 1 else (-1.0, c)
    else:
        scale, shift = (c if op == "Mul" else 1.0 / c), 0.0
    dense = g.foldable(name)
    if dense is not None and dense.activation is None and \
            ((dense.int8 is None and not dense.bf16) or np.all(np.asarray(scale) == 1)):
        n = dense.kernel.shape[1]
        scale, shift = _bias(node, scale, n), _bias(node, shift, n)
        dense.kernel = dense.kernel * scale
        if dense.bias is not None or op in ("Add", "Sub"):
            dense.bias = (0.0 if dense.bias is None else dense.bias) * scale + shift
        dense.node_name = node.name or dense.node_name
        return dense
    affine = g.foldable(name, (_Affine,))
    if affine is None:
        affine = _Affine(g.tensor(name, node), node.name)
    sample = affine.scale.shape
    try:   # (a constant with a batch axis of 1 broadcasts too)
        scale, shift = (np.broadcast_to(a, (1,) + sample).reshape(sample) for a in (scale, shift))
    except ValueError:
        raise ValueError(f"{_where(node)}: a constant of shape {c.shape} does not broadcast to the sample shape "
                         f"{sample} of {name!r}") from None
    affine.scale, affine.shift = affine.scale * scale, affine.shift * scale + shift
    return affine


def _concat(g, node, at):
    ins = [n for n in node.input if n]
    if all(g.is_const(n) for n in ins):
        values = [g.const(n, node, "input") for n in ins]
        g.folded(node, sum(v.size for v in values))
        return _Const(np.concatenate(values, axis=at.get("axis", 0)))
    tensors = [g.tensor(n, node) for n in ins]
    rank = len(tensors[0].shape)
    if rank != 2 or at.get("axis") not in (1, -1):
        raise ValueError(f"{_where(node)}: fastmlp concatenates (samples, features) inputs along the feature "
                         f"axis; this node has axis={at.get('axis')} on inputs of rank {rank}")
    return g.layer(g.layers.Concatenate, node, tensors, axis=-1)


# ---------------------------------------------------------------------------- activations
def _activation(name, layer=None):
    """An importer for an activation: folded into a pending Dense when ``name`` is given
    (the activation with its default parameters), else the layer ``layer(g, node, x)``."""
    def read(g, node, at):
        dense = g.foldable(node.input[0])
        if name is not None and dense is not None and dense.activation is None:
            dense.activation = name
            dense.node_name = node.name or dense.node_name
            return dense
        x = g.tensor(node.input[0], node)
        if layer is not None:
            return layer(g, node, x)
        return g.layer(g.layers.Activation, node, x, activation=name)
    return read


def _parameterized(read_params):
    """Activations with attributes: ``read_params(g, node, at)`` -> (fastmlp name with
    default parameters or None, layer maker or None)."""
    def read(g, node, at):
        name, layer = read_params(g, node, at)
        return _activation(name, layer)(g, node, at)
    return read


def _f32(a, b):
    return np.float32(a) == np.float32(b)


def _leaky_relu(g, node, at):
    alpha = float(at.get("alpha", 0.01))
    if _f32(alpha, 0.2):   # fastmlp's (and Keras's) leaky_relu default
        return "leaky_relu", None
    return None, lambda g, node, x: g.layer(g.layers.LeakyReLU, node, x, negative_slope=alpha)


def _elu(g, node, at):
    alpha = float(at.get("alpha", 1.0))
    if alpha == 1.0:
        return "elu", None
    return None, lambda g, node, x: g.layer(g.layers.ELU, node, x, alpha=alpha)


def _selu(g, node, at):
    alpha, gamma = at.get("alpha", 1.67326319217681884765625), at.get("gamma", 1.05070102214813232421875)
    if not (_f32(alpha, _SELU_ALPHA) and _f32(gamma, _SELU_SCALE)):
        raise ValueError(f"{_where(node)}: fastmlp's selu has alpha={_SELU_ALPHA} and gamma={_SELU_SCALE}; "
                         f"this node has alpha={alpha}, gamma={gamma}")
    return "selu", None


def _hard_sigmoid(g, node, at):
    alpha, beta = at.get("alpha", 0.2), at.get("beta", 0.5)
    if not (_f32(alpha, 1.0 / 6.0) and _f32(beta, 0.5)):
        raise ValueError(f"{_where(node)}: fastmlp's hard_sigmoid is clip(x / 6 + 0.5, 0, 1) (alpha=1/6, "
                         f"beta=0.5); this node has alpha={alpha}, beta={beta}")
    return "hard_sigmoid", None


def _softmax(g, node, at):
    """Softmax and LogSoftmax: over the last axis only."""
    name = "softmax" if node.op_type == "Softmax" else "log_softmax"
    v = g.values.get(node.input[0])
    rank = 2 if isinstance(v, _Pending) else len(g.tensor(node.input[0], node).shape)
    axis = at.get("axis", -1 if g.opset >= 13 else 1)
    if axis % rank != rank - 1 or rank > 2:
        raise ValueError(f"{_where(node)}: fastmlp's {name} normalizes the last axis of (samples, features) "
                         f"data; this node has axis={axis} on a rank-{rank} input")
    return name, None


def _gelu(g, node, at):
    if at.get("approximate", b"none") not in (b"none", "none"):
        raise ValueError(f"{_where(node)}: fastmlp's gelu is the exact one; approximate="
                         f"{at['approximate']!r} is not supported")
    return "gelu", None


def _swish(g, node, at):
    if at.get("alpha", 1.0) != 1.0:
        raise ValueError(f"{_where(node)}: fastmlp's swish is x * sigmoid(x); alpha={at['alpha']} is not supported")
    return "swish", None


def _clip(g, node, at):
    if g.opset < 11:
        low, high = at.get("min"), at.get("max")
    else:
        low = g.const(node.input[1], node, "min") if len(node.input) > 1 and node.input[1] else None
        high = g.const(node.input[2], node, "max") if len(node.input) > 2 and node.input[2] else None
    low = None if low is None else float(np.asarray(low).reshape(-1)[0]) if np.size(low) == 1 else "many"
    high = None if high is None else float(np.asarray(high).reshape(-1)[0]) if np.size(high) == 1 else "many"
    if low != 0.0 or high == "many" or (high is not None and not high > 0):
        raise ValueError(f"{_where(node)}: fastmlp imports Clip(x, 0, max) (a capped ReLU) only; this node has "
                         f"min={low}, max={high}")
    if high is None or high == np.inf:
        return "relu", None
    if high == 6.0:
        return "relu6", None
    return None, lambda g, node, x: g.layer(g.layers.ReLU, node, x, max_value=high)


# ---------------------------------------------------------------------------- layers with weights
def _batch_normalization(g, node, at):
    _only_first_output(g, node)
    if at.get("training_mode", 0):
        raise ValueError(f"{_where(node)}: training_mode=1 is not supported; fastmlp imports inference graphs")
    x = g.tensor(node.input[0], node)
    params = [g.const(n, node, what) for n, what in zip(node.input[1:5], ("scale", "bias", "mean", "variance"))]
    eps = float(at.get("epsilon", 1e-5))
    if not eps > 0 and len(x.shape) == 2:   # (fastmlp's layer needs epsilon > 0): the affine map it computes
        gamma, beta, mean, var = (_bias(node, a, int(x.shape[1])) for a in params)
        if not np.all(var + eps > 0):
            raise ValueError(f"{_where(node)}: epsilon={eps} with a variance of {np.min(var):g} divides by zero or "
                             f"takes the root of a negative number")
        affine = _Affine(x, node.name)
        affine.scale = gamma / np.sqrt(var + eps)
        affine.shift = beta - mean * affine.scale
        return affine
    return g.layer(g.layers.BatchNormalization, node, x, params, epsilon=eps,
                   momentum=float(at.get("momentum", 0.9)))


def _layer_normalization(g, node, at):
    """ONNX's LayerNormalization over the last axis: fastmlp's LayerNormalization (no beta: center=False)."""
    _only_first_output(g, node)
    x = g.tensor(node.input[0], node)
    rank, axis = len(x.shape), int(at.get("axis", -1))
    if not -rank <= axis < rank or axis % rank != rank - 1:
        raise ValueError(f"{_where(node)}: fastmlp's LayerNormalization normalizes the last axis; this node has "
                         f"axis={axis} on a rank-{rank} input")
    n = int(x.shape[-1])
    weights = []
    for i, what in ((1, "scale"), (2, "bias")):
        if len(node.input) > i and node.input[i]:
            weights.append(_bias(node, g.const(node.input[i], node, what), n))
    return g.layer(g.layers.LayerNormalization, node, x, weights, epsilon=float(at.get("epsilon", 1e-5)),
                   center=len(weights) == 2)


def _lp_normalization(g, node, at):
    """ONNX's LpNormalization is refused: it divides by the norm with no floor (onnxruntime
    gives ``x / ||x||`` for any norm above 0, and 0 for an all-zero sample), and fastmlp's
    UnitNormalization, ``x * min(1 / ||x||, 1e12)``, gives other numbers for norms below
    1e-12.  fastmlp's own export, Keras's and ``_l2_normalization``'s forms carry that floor."""
    x = g.tensor(node.input[0], node)
    rank, axis, p = len(x.shape), int(at.get("axis", -1)), int(at.get("p", 2))
    if p != 2 or axis % rank != rank - 1:
        raise ValueError(f"{_where(node)}: fastmlp imports L2 normalizations (p=2) over the last axis only; this "
                         f"node has p={p}, axis={axis} on a rank-{rank} input")
    raise ValueError(f"{_where(node)}: LpNormalization divides by the norm with no floor, and fastmlp's "
                     f"UnitNormalization computes x / max(||x||, 1e-12), which differs for norms below 1e-12; "
                     f"write it as x / Max(Sqrt(ReduceSumSquare(x)), 1e-12), as fastmlp's export does")


_UNIT_NORM_FORMS = {   # how _fuse_patterns' L2 normalizations bound the division, and fastmlp's bound in each
    "inverse": ("caps 1 / ||x|| at", 1e12),   # x * min(1 / sqrt(ReduceSum(x * x)), c): Keras's export
    "norm": ("floors the norm at", 1e-12),   # x / max(sqrt(ReduceSumSquare(x)), c): fastmlp's export
    "squared": ("floors the sum of squares at", 1e-24),   # x / sqrt(max(ReduceSumSquare(x), c))
}


def _l2_normalization(g, node, at):
    """An L2 normalization over the last axis (found by ``_fuse_patterns``; ``axis``: the one
    torch's F.normalize names): fastmlp's UnitNormalization, ``x * min(1 / ||x||, 1e12)``
    (csrc/kinds/layer_norm.c), when the graph bounds it as that does: 1 / ||x|| capped at 1e12,
    the norm floored at 1e-12 or the sum of squares at 1e-24 (the constant as given or rounded
    to float32).  Another bound, or none,
    gives other numbers for small norms: refused."""
    form = at["form"].decode() if isinstance(at["form"], bytes) else at["form"]
    x = g.tensor(node.input[0], node)
    if "axis" in at and at["axis"] % len(x.shape) != len(x.shape) - 1:
        raise ValueError(f"{_where(node)}: fastmlp's UnitNormalization normalizes the last axis; this L2 "
                         f"normalization reduces axis {at['axis']} of a rank-{len(x.shape)} input")
    what, want = _UNIT_NORM_FORMS.get(form, ("divides by the norm with no floor", None))
    if want is None:
        raise ValueError(f"{_where(node)}: this L2 normalization divides by the norm with no floor (NaN for an "
                         f"all-zero sample); fastmlp's UnitNormalization computes x / max(||x||, 1e-12), which "
                         f"differs for norms below 1e-12")
    if not _f32(at["limit"], want):
        raise ValueError(f"{_where(node)}: this L2 normalization {what} {at['limit']:g}; fastmlp's "
                         f"UnitNormalization {what} {want:g} (x / max(||x||, 1e-12)), and another bound gives "
                         f"other numbers for samples of small norm")
    return g.layer(g.layers.UnitNormalization, node, x)


def _gather(g, node, at):
    """Rows of a constant table by integer ids (a model input): fastmlp's Embedding."""
    axis = int(at.get("axis", 0))
    if g.is_const(node.input[0]) and g.is_const(node.input[1]):
        data, indices = g.const(node.input[0], node, "data"), g.const(node.input[1], node, "indices")
        if data.ndim:
            g.folded(node, indices.size * (data.size // max(data.shape[axis % data.ndim], 1)))
        return _Const(np.take(data, indices, axis=axis))
    table = g.const(node.input[0], node, "data (an embedding table)")
    if table.ndim != 2 or axis not in (0, -2):
        raise ValueError(f"{_where(node)}: fastmlp imports Gather(table, ids) with a 2-D table and axis=0 (an "
                         f"Embedding); this node has a table of shape {table.shape} and axis={axis}")
    v = g.values.get(node.input[1])
    ids = v.tensor if isinstance(v, _Ids) else g.tensor(node.input[1], node)
    if not isinstance(v, _Ids) and not _is_int(ids):
        raise ValueError(f"{_where(node)}: its indices {node.input[1]!r} must be integers (an integer model input "
                         f"or a Cast to integers); they are {ids.dtype}")
    return g.layer(g.layers.Embedding, node, ids, [table], input_dim=table.shape[0], output_dim=table.shape[1])


def _prelu(g, node, at):
    x = g.tensor(node.input[0], node)
    slope = g.const(node.input[1], node, "slope")
    sample = tuple(x.shape[1:])
    while slope.ndim > len(sample) and slope.shape[0] == 1:
        slope = slope[0]
    try:
        alpha = np.broadcast_to(slope, sample).copy()
    except ValueError:
        raise ValueError(f"{_where(node)}: a slope of shape {slope.shape} does not broadcast to the sample shape "
                         f"{sample}") from None
    return g.layer(g.layers.PReLU, node, x, [alpha])


# ---------------------------------------------------------------------------- shapes and pass-through
def _pass_through(g, node, at):
    """Identity, and Dropout at inference."""
    _only_first_output(g, node)
    if node.op_type == "Dropout" and len(node.input) > 2 and node.input[2]:
        if bool(np.asarray(g.const(node.input[2], node, "training_mode")).reshape(-1)[0]):
            raise ValueError(f"{_where(node)}: training_mode=True is not supported; fastmlp imports inference "
                             f"graphs")
    if node.op_type in ("Identity", "Dropout") and node.input[0] in g.int_names:
        g.int_names.add(node.output[0])
    v = g.values.get(node.input[0])
    if isinstance(v, _Pending) and g.foldable(node.input[0], (_Pending,)) is None:
        return g.tensor(node.input[0], node)
    return v if v is not None else g.tensor(node.input[0], node)


def _cast(g, node, at):
    """A Cast to the model's own float type is the identity (Keras writes them); on constants, a cast.
    A Cast to integers is the identity on an integer input (the engine carries ids as floats) and
    marks floats as the ids of a Gather; a Cast of an integer input to floats is the identity."""
    to = g.onnx.helper.tensor_dtype_to_np_dtype(at["to"])
    if g.is_const(node.input[0]):
        return _Const(g.const(node.input[0], node, "input").astype(to))
    if np.dtype(to).kind in "iu":
        v = g.values.get(node.input[0])
        if isinstance(v, _Ids):
            return v
        x = g.tensor(node.input[0], node)
        return x if _is_int(x) else _Ids(x)
    if str(np.dtype(to)) != g.dtype:
        raise ValueError(f"{_where(node)}: a Cast to {np.dtype(to)} is not supported; the model computes in "
                         f"{g.dtype}")
    return _pass_through(g, node, at)


def _flatten(g, node, at):
    axis = int(at.get("axis", 1))
    if g.is_const(node.input[0]):
        a = g.const(node.input[0], node, "input")
        if not -a.ndim <= axis <= a.ndim:
            raise ValueError(f"{_where(node)}: axis={axis} is out of range for a rank-{a.ndim} input")
        axis += a.ndim if axis < 0 else 0
        return _Const(a.reshape(int(np.prod(a.shape[:axis])), int(np.prod(a.shape[axis:]))))
    x = g.tensor(node.input[0], node)
    if axis not in (1, 1 - len(x.shape)):   # (axis=-1 of a 2-D input is axis 1)
        raise ValueError(f"{_where(node)}: fastmlp flattens each sample (axis=1); this node has "
                         f"axis={axis} on a rank-{len(x.shape)} input")
    if len(x.shape) == 2:
        return x
    return g.layer(g.layers.Flatten, node, x)


def _reshape(g, node, at):
    shape = [int(d) for d in g.const(node.input[1], node, "shape")]
    if g.is_const(node.input[0]):
        a = g.const(node.input[0], node, "input")
        return _Const(a.reshape([a.shape[i] if d == 0 else d for i, d in enumerate(shape)]))
    x = g.tensor(node.input[0], node)
    sample = tuple(x.shape[1:])
    flat = int(np.prod(sample))
    dims = [sample[i - 1] if d == 0 and 0 < i <= len(sample) else d for i, d in enumerate(shape)]
    if len(dims) == 2 and dims[0] in (0, -1) and dims[1] in (flat, -1):
        return x if len(x.shape) == 2 else g.layer(g.layers.Flatten, node, x)
    if len(dims) == len(x.shape) and dims[0] in (0, -1) and tuple(dims[1:]) == sample:
        return x
    raise ValueError(f"{_where(node)}: fastmlp imports a Reshape that flattens each sample to (samples, {flat}); "
                     f"this one reshapes {tuple(x.shape)} to {shape}")


# ---------------------------------------------------------------------------- constants
def _constant(g, node, at):
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in at:
            v = at[key]
            return _Const(g.onnx.numpy_helper.to_array(v) if key == "value" else np.asarray(v))
    raise ValueError(f"{_where(node)}: a Constant needs a tensor, float(s) or int(s) value; it has "
                     f"{sorted(at)}")


def _const_only(fn):
    def read(g, node, at):
        return _Const(fn(g, node, at, g.const(node.input[0], node, "input")))
    return read


def _dequantize(g, node, at, x):
    """``(x - zero) * scale`` with ONNX's three layouts of scale and zero point: one value,
    one per index of ``axis`` (1-D), or one per block of ``block_size`` indices along it."""
    scale = np.asarray(g.const(node.input[1], node, "scale"), np.float32)
    zero = g.const(node.input[2], node, "zero point") if len(node.input) > 2 and node.input[2] else None
    zero = np.zeros(scale.shape, np.float32) if zero is None else np.asarray(zero).astype(np.float32)
    if zero.shape != scale.shape:
        raise ValueError(f"{_where(node)}: its zero point has shape {list(zero.shape)} and its scale "
                         f"{list(scale.shape)}; ONNX requires the same shape")
    axis, block = at.get("axis", 1), at.get("block_size", 0)
    x = np.asarray(x).astype(np.float32)
    if scale.size == 1 and not block:
        return (x - zero.reshape(-1)[0]) * scale.reshape(-1)[0]
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{_where(node)}: axis={axis} is out of range for a rank-{x.ndim} input")
    axis %= x.ndim
    if block:   # blocked (opset 21): scale has x's shape but ceil(n / block_size) along axis
        want = list(x.shape)
        want[axis] = -(-x.shape[axis] // block) if block > 0 else -1
        if block < 0 or list(scale.shape) != want:
            raise ValueError(f"{_where(node)}: block_size={block} along axis {axis} needs a scale of shape "
                             f"{want}; it has {list(scale.shape)}")
        n = x.shape[axis]
        scale = np.repeat(scale, block, axis=axis).take(range(n), axis=axis)
        zero = np.repeat(zero, block, axis=axis).take(range(n), axis=axis)
        return (x - zero) * scale
    if scale.ndim != 1 or scale.size != x.shape[axis]:
        raise ValueError(f"{_where(node)}: a per-axis scale along axis {axis} needs {x.shape[axis]} values "
                         f"(1-D); it has shape {list(scale.shape)}")
    shape = [1] * x.ndim
    shape[axis] = scale.size
    return (x - zero.reshape(shape)) * scale.reshape(shape)


OP_IMPORTERS = {
    "Gemm": _gemm,
    "MatMul": _matmul,
    "_FastmlpInt8Dense": _int8_dense,   # (fastmlp's int8 Dense: _fuse_patterns)
    "_FastmlpBFloat16": _bfloat16,   # (a Dense input rounded to bfloat16: _fuse_patterns)
    "Add": _merge, "Sum": _merge, "Sub": _merge, "Mul": _merge, "Max": _merge, "Min": _merge, "Mean": _merge,
    "Div": _merge,
    "Concat": _concat,
    "Relu": _activation("relu"),
    "Sigmoid": _activation("sigmoid"),
    "Tanh": _activation("tanh"),
    "Softplus": _activation("softplus"),
    "Softsign": _activation("softsign"),
    "Exp": _activation("exponential"),
    "Softmax": _parameterized(_softmax),
    "LogSoftmax": _parameterized(_softmax),
    "LeakyRelu": _parameterized(_leaky_relu),
    "Elu": _parameterized(_elu),
    "Selu": _parameterized(_selu),
    "HardSigmoid": _parameterized(_hard_sigmoid),
    "Gelu": _parameterized(_gelu),
    "Swish": _parameterized(_swish),
    "Clip": _parameterized(_clip),
    "BatchNormalization": _batch_normalization,
    "PRelu": _prelu,
    "LayerNormalization": _layer_normalization,
    "LpNormalization": _lp_normalization,
    "_FastmlpL2Norm": _l2_normalization,   # (an L2 normalization: _fuse_patterns)
    "Gather": _gather,
    "Identity": _pass_through,
    "Dropout": _pass_through,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Constant": _constant,
    "Transpose": _const_only(lambda g, node, at, x: np.transpose(x, at.get("perm"))),
    "Cast": _cast,
    "DequantizeLinear": _const_only(_dequantize),
}


# ---------------------------------------------------------------------------- patterns
def _fuse_patterns(onnx, graph, consts):
    """The graph's nodes with five decompositions replaced by one node each: gelu
    (``0.5 * x * (1 + erf(x / sqrt(2)))``, in the orders fastmlp and torch write it)
    as ``Gelu``, swish (``x * sigmoid(x)``) as ``Swish``, softsign (``x / (|x| + 1)``,
    as Keras's export writes it) as ``Softsign``, torch's softplus with its
    threshold (``where(x > t, x, softplus(x))``, t >= 15, as torch.onnx's dynamo exporter
    writes ``nn.Softplus()``; equal to softplus in float32 there) as ``Softplus``, and
    the L2 normalization over the last axis (``x / max(sqrt(ReduceSumSquare(x)), c)``,
    as fastmlp writes UnitNormalization, also ``x / sqrt(max(ReduceSumSquare(x), c))``
    and no floor, and torch's F.normalize, ``x / Expand(Clip(ReduceL2(x), c), shape of x)``)
    as ``_FastmlpL2Norm`` (its bound checked by ``_l2_normalization``);
    and the int8 Dense fastmlp writes (``_int8_dense_pattern``) as ``_FastmlpInt8Dense``;
    and two more as Keras's export (torch backend) writes them: PReLU (``relu(x) + c *
    relu(-x)``, c = -alpha) as ``PRelu`` and UnitNormalization (``x * min(1 /
    sqrt(sum(x * x)), c)``) as ``_FastmlpL2Norm``.  A pattern's inner values must be read by the
    pattern only (the int8 Dense's quantized input may be shared: what no node reads any
    more is dropped later).  Casts of float32 values to float32 (Keras writes many) are
    dropped first."""
    nodes = _without_float_casts(onnx, graph, consts)
    made = {o: n for n in nodes for o in n.output}
    readers = {}
    for n in nodes:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    for o in graph.output:
        readers.setdefault(o.name, []).append(None)

    def only_reader(value, op_type):
        r = readers.get(value, [])
        return r[0] if len(r) == 1 and r[0] is not None and r[0].op_type == op_type else None

    def scalar(name):   # (rank <= 1: a constant of more axes would broadcast the result to them)
        v = consts.get(name)
        return float(v.reshape(-1)[0]) if v is not None and v.size == 1 and v.ndim <= 1 else None

    def is_const(name, target):
        v = scalar(name)
        return v is not None and abs(v - target) <= 1e-6 * abs(target)

    taken = set(made) | set(consts) | {vi.name for vi in graph.input}

    def fresh(hint):   # a value name the graph does not use
        name, i = hint, 1
        while name in taken:
            name, i = f"{hint}_{i}", i + 1
        taken.add(name)
        return name

    def other(node, value):
        ins = list(node.input)
        return ins[1] if len(ins) == 2 and ins[0] == value else (ins[0] if len(ins) == 2 and ins[1] == value
                                                                 else None)

    replace, drop, added = {}, set(), {}
    for n in nodes:
        if n.op_type == "Cast" and _cast_to(onnx, n) == onnx.TensorProto.BFLOAT16:   # bfloat16 and back
            back = only_reader(n.output[0], "Cast")
            if back is not None and _cast_to(onnx, back) == onnx.TensorProto.FLOAT:
                replace[id(back)] = onnx.helper.make_node("_FastmlpBFloat16", [n.input[0]], [back.output[0]],
                                                          name=back.name or n.name)
                drop.add(id(n))
        if n.op_type == "Add" and len(n.input) == 2:   # relu(x) + c * relu(-x): Keras's PReLU
            for pos_name, neg_name in ((n.input[0], n.input[1]), (n.input[1], n.input[0])):
                pos, mul = made.get(pos_name), made.get(neg_name)
                if pos is None or pos.op_type != "Relu" or mul is None or mul.op_type != "Mul" or \
                        len(mul.input) != 2:
                    continue
                for c_name, r_name in ((mul.input[0], mul.input[1]), (mul.input[1], mul.input[0])):
                    relu = made.get(r_name)
                    neg = made.get(relu.input[0]) if relu is not None and relu.op_type == "Relu" else None
                    c = consts.get(c_name)
                    inner = [pos, mul, relu, neg]
                    if neg is None or neg.op_type != "Neg" or neg.input[0] != pos.input[0] or c is None or \
                            np.asarray(c).ndim > 1 or not np.all(np.isfinite(c)) or \
                            any(readers.get(k.output[0]) != [r] for k, r in zip(inner, [n, n, mul, relu])):
                        continue
                    slope = fresh(f"{n.output[0]}/slope")
                    added[id(n)] = onnx.helper.make_node("Constant", [], [slope], value=onnx.numpy_helper.from_array(
                        -np.asarray(c), slope))
                    replace[id(n)] = onnx.helper.make_node("PRelu", [pos.input[0], slope], [n.output[0]],
                                                           name=n.name or mul.name)
                    drop.update(id(k) for k in inner)
                    break
                if id(n) in replace:
                    break
        if n.op_type == "Mul" and len(n.input) == 2 and id(n) not in drop:   # x * min(1 / ||x||, 1e12)
            for x, m_name in ((n.input[0], n.input[1]), (n.input[1], n.input[0])):
                low = made.get(m_name)
                inv = made.get(low.input[0]) if low is not None and low.op_type == "Min" and len(low.input) == 2 \
                    else None
                root = made.get(inv.input[1]) if inv is not None and inv.op_type == "Div" and \
                    is_const(inv.input[0], 1.0) else None
                total = made.get(root.input[0]) if root is not None and root.op_type == "Sqrt" else None
                sq = made.get(total.input[0]) if total is not None and total.op_type == "ReduceSum" else None
                cap = scalar(low.input[1]) if sq is not None else None
                if sq is None or sq.op_type != "Mul" or list(sq.input) != [x, x] or cap is None:
                    continue
                inner = [low, inv, root, total, sq]
                if not _reduces_last_axis(onnx, total, consts) or \
                        any(readers.get(k.output[0]) != [r] for k, r in zip(inner, [n, low, inv, root, total])):
                    continue
                replace[id(n)] = onnx.helper.make_node("_FastmlpL2Norm", [x], [n.output[0]], name=n.name or low.name,
                                                       form="inverse", limit=cap)
                drop.update(id(k) for k in inner)
                break
        if n.op_type == "Div" and len(n.input) == 2:   # x / (|x| + 1)
            x, add = n.input[0], made.get(n.input[1])
            absx = next((made[i] for i in add.input if i in made and made[i].op_type == "Abs"
                         and made[i].input[0] == x), None) if add is not None and add.op_type == "Add" else None
            if absx is not None and is_const(other(add, absx.output[0]) or "", 1.0) and \
                    readers.get(add.output[0]) == [n] and readers.get(absx.output[0]) == [add]:
                replace[id(n)] = onnx.helper.make_node("Softsign", [x], [n.output[0]], name=n.name or add.name)
                drop.update((id(add), id(absx)))
        if n.op_type == "Where" and len(n.input) == 3:
            test, x, soft = made.get(n.input[0]), n.input[1], made.get(n.input[2])
            t = consts.get(test.input[1]) if test is not None and len(test.input) == 2 else None
            if test is not None and test.op_type == "Greater" and test.input[0] == x and t is not None and \
                    t.size == 1 and float(t.reshape(-1)[0]) >= 15 and soft is not None and \
                    soft.op_type == "Softplus" and list(soft.input) == [x] and \
                    readers.get(n.input[0]) == [n] and readers.get(n.input[2]) == [n]:
                replace[id(n)] = onnx.helper.make_node("Softplus", [x], [n.output[0]], name=n.name or soft.name)
                drop.update((id(test), id(soft)))
        if n.op_type == "Sigmoid" and id(n) not in drop:
            x = n.input[0]
            m = only_reader(n.output[0], "Mul")
            if m is not None and other(m, n.output[0]) == x:
                replace[id(m)] = onnx.helper.make_node("Swish", [x], [m.output[0]], name=m.name or n.name)
                drop.add(id(n))
        if n.op_type != "Erf":
            continue
        t = made.get(n.input[0])
        if t is None or len(readers.get(n.input[0], [])) != 1:
            continue
        if t.op_type == "Div" and is_const(t.input[1], 2 ** 0.5):
            x = t.input[0]
        elif t.op_type == "Mul" and (is_const(t.input[1], 2 ** -0.5) or is_const(t.input[0], 2 ** -0.5)):
            x = t.input[0] if is_const(t.input[1], 2 ** -0.5) else t.input[1]
        else:
            continue
        add = only_reader(n.output[0], "Add")
        if add is None or not is_const(other(add, n.output[0]) or "", 1.0):
            continue
        m1 = only_reader(add.output[0], "Mul")
        o1 = other(m1, add.output[0]) if m1 is not None else None
        if o1 is None:
            continue
        inner = [t, n, add, m1]
        half = made.get(o1)
        if half is not None and half.op_type == "Mul" and len(readers.get(o1, [])) == 1 and \
                is_const(other(half, x) or "", 0.5):
            y_node = m1                       # (x * 0.5) * (1 + erf)
            inner.append(half)
        elif o1 == x:                          # (x * (1 + erf)) * 0.5
            y_node = only_reader(m1.output[0], "Mul")
            if y_node is None or not is_const(other(y_node, m1.output[0]) or "", 0.5):
                continue
            inner.append(y_node)
        elif is_const(o1, 0.5):                # ((1 + erf) * 0.5) * x
            y_node = only_reader(m1.output[0], "Mul")
            if y_node is None or other(y_node, m1.output[0]) != x:
                continue
            inner.append(y_node)
        else:
            continue
        replace[id(y_node)] = onnx.helper.make_node("Gelu", [x], [y_node.output[0]], name=n.name or y_node.name)
        drop.update(id(k) for k in inner if k is not y_node)
    for n in nodes:   # x / max(sqrt(ReduceSumSquare(x, -1)), floor): fastmlp's UnitNormalization export
        if n.op_type != "ReduceSumSquare" or id(n) in drop or not _reduces_last_axis(onnx, n, consts):
            continue
        x, inner, value, form, limit = n.input[0], [n], n.output[0], "none", None
        for op_type, floor_form in (("Max", "squared"), ("Sqrt", None), ("Max", "norm")):
            step = only_reader(value, op_type)
            if floor_form is not None:   # sqrt(max(ss, c)) or max(sqrt(ss), c): a floor
                c = scalar(other(step, value) or "") if step is not None and form == "none" else None
                if c is None:
                    continue
                form, limit = floor_form, c
            elif step is None:
                break
            inner.append(step)
            value = step.output[0]
        div = only_reader(value, "Div")
        if not any(k.op_type == "Sqrt" for k in inner) or div is None or list(div.input) != [x, value]:
            continue
        replace[id(div)] = onnx.helper.make_node("_FastmlpL2Norm", [x], [div.output[0]], name=div.name or n.name,
                                                 form=form, **({} if limit is None else {"limit": limit}))
        drop.update(id(k) for k in inner)
    for n in nodes:   # x / Expand(Clip(ReduceL2(x), c), shape of x): torch's F.normalize
        axis = _reduced_axis(onnx, n, consts) if n.op_type == "ReduceL2" and id(n) not in drop else None
        clip = only_reader(n.output[0], "Clip") if axis is not None else None
        if clip is None:
            continue
        bounds = [clip.input[i] if len(clip.input) > i else "" for i in (1, 2)]
        at = {a.name: onnx.helper.get_attribute_value(a) for a in clip.attribute}   # (before opset 11)
        low = scalar(bounds[0]) if bounds[0] else at.get("min")
        high = scalar(bounds[1]) if bounds[1] else at.get("max")
        if low is None or (high is not None and high != np.inf):
            continue
        x, inner, value = n.input[0], [n, clip], clip.output[0]
        expand = only_reader(value, "Expand")   # (to x's shape: Shape(x), or its batch size and width)
        if expand is not None:
            target = consts.get(expand.input[1])
            if expand.input[0] != value or (target is not None and np.asarray(target).size > 2):
                continue
            inner.append(expand)
            value = expand.output[0]
        div = only_reader(value, "Div")
        if div is None or list(div.input) != [x, value]:
            continue
        replace[id(div)] = onnx.helper.make_node("_FastmlpL2Norm", [x], [div.output[0]], name=div.name or n.name,
                                                 form="norm", limit=float(low), axis=axis)
        drop.update(id(k) for k in inner)
    for n in nodes:
        if n.op_type == "MatMulInteger":
            found = _int8_dense_pattern(onnx, n, made, consts, only_reader, other, is_const)
            if found is not None:
                last, inner, ins = found
                replace[id(last)] = onnx.helper.make_node("_FastmlpInt8Dense", ins, [last.output[0]],
                                                          name=n.name or last.name)
                drop.update(id(k) for k in inner)
    out = []
    for n in nodes:
        if id(n) in added:
            out.append(added[id(n)])
        if id(n) not in drop:
            out.append(replace.get(id(n), n))
    return out


_SAME_TYPE_OPS = {"Add", "Sub", "Mul", "Div", "Neg", "Abs", "Relu", "Sqrt", "Min", "Max", "MatMul", "Gemm",
                  "ReduceSum", "ReduceMax", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Exp", "Identity",
                  "Dropout", "Flatten", "Reshape", "Concat", "Elu", "LeakyRelu", "Selu", "Softplus", "Softsign",
                  "HardSigmoid", "Clip", "Gelu", "Erf", "PRelu", "BatchNormalization", "LayerNormalization"}


def _without_float_casts(onnx, graph, consts):
    """The graph's nodes without the Casts of float32 values to float32 (Keras's export writes
    them around most operations), each later reader reading the value itself; Identity of a
    constant becomes that constant (for the patterns).  A Cast that is a graph output stays."""
    FLOAT = onnx.TensorProto.FLOAT
    is_float = {vi.name for vi in graph.input if vi.type.tensor_type.elem_type == FLOAT}
    is_float |= {k for k, v in consts.items() if np.asarray(v).dtype == np.float32}
    outputs = {o.name for o in graph.output}
    alias, out = {}, []
    for n in graph.node:
        ins = [alias.get(i, i) for i in n.input]
        if n.op_type == "Identity" and ins and ins[0] in consts:
            consts.setdefault(n.output[0], consts[ins[0]])
        to = _cast_to(onnx, n) if n.op_type == "Cast" else None
        if n.op_type == "Cast" and to == FLOAT and ins[0] in is_float and n.output[0] not in outputs:
            alias[n.output[0]] = ins[0]
            continue
        if list(ins) != list(n.input):
            m = onnx.NodeProto()
            m.CopyFrom(n)
            del m.input[:]
            m.input.extend(ins)
            n = m
        if (n.op_type == "Cast" and to == FLOAT) or (n.op_type in _SAME_TYPE_OPS and ins and ins[0] in is_float):
            is_float.update(n.output[:1])
        out.append(n)
    return out


def _cast_to(onnx, node):
    return next((a.i for a in node.attribute if a.name == "to"), None)


def _reduced_axis(onnx, node, consts):
    """The one axis the Reduce* ``node`` reduces, keeping it (axes as an input or, before opset
    18, an attribute); None when it reduces several, all, or drops the axis."""
    at = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    axes = consts.get(node.input[1]) if len(node.input) > 1 and node.input[1] else at.get("axes")
    if axes is None or at.get("keepdims", 1) != 1 or np.asarray(axes).size != 1:
        return None
    return int(np.asarray(axes).reshape(-1)[0])


def _reduces_last_axis(onnx, node, consts):
    """Whether the Reduce* ``node`` reduces over the last axis only, keeping it (axes as an input
    or, before opset 18, an attribute)."""
    at = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    axes = consts.get(node.input[1]) if len(node.input) > 1 and node.input[1] else at.get("axes")
    return axes is not None and np.asarray(axes).reshape(-1).tolist() == [-1] and at.get("keepdims", 1) == 1


def _int8_dense_pattern(onnx, mm, made, consts, only_reader, other, is_const):
    """The int8 Dense fastmlp writes (onnx_export._int8_dense and _quantized_rows), from its
    ``MatMulInteger`` node: ``((float)(q @ W) * s) * w_scale [+ bias]`` with ``q`` and ``s`` the
    row quantization of one value ``x`` exactly as fastmlp writes it.  Returns (the last
    node, the other nodes from MatMulInteger on that it replaces, [x, W, w_scale(, bias)]),
    or None for any other graph."""
    T = onnx.TensorProto

    def node(value, op_type):
        n = made.get(value) if value is not None else None
        return n if n is not None and n.op_type == op_type else None

    def reduced(value, op_type, x):   # value = op_type(x) over the last axis, kept
        n = node(value, op_type)
        return n is not None and n.input[0] == x and _reduces_last_axis(onnx, n, consts)

    w = consts.get(mm.input[1]) if len(mm.input) == 2 else None
    if w is None or w.dtype != np.int8 or w.ndim != 2:
        return None
    # q = Cast<int8>(Clip(Round(x * inv), -127, 127)), inv = 127 / Max(amax, 1e-30), amax = ReduceMax(Abs(x))
    cast = node(mm.input[0], "Cast")
    clip = node(cast.input[0], "Clip") if cast is not None and _cast_to(onnx, cast) == T.INT8 else None
    if clip is None or len(clip.input) != 3 or not (is_const(clip.input[1], -127.0) and
                                                    is_const(clip.input[2], 127.0)):
        return None
    rnd = node(clip.input[0], "Round")
    scaled = node(rnd.input[0], "Mul") if rnd is not None else None
    if scaled is None:
        return None
    for x, inv_name in ((scaled.input[0], scaled.input[1]), (scaled.input[1], scaled.input[0])):
        inv = node(inv_name, "Div")
        floor = node(inv.input[1], "Max") if inv is not None and is_const(inv.input[0], 127.0) else None
        amax = floor.input[0] if floor is not None and len(floor.input) == 2 and \
            is_const(floor.input[1], 1e-30) else None
        red = node(amax, "ReduceMax")
        absx = node(red.input[0], "Abs") if red is not None else None
        if absx is not None and absx.input[0] == x and reduced(amax, "ReduceMax", absx.output[0]):
            break
    else:
        return None
    # ((Cast<float>(acc) * s) * w_scale) [+ bias], s = amax / 127 * Cast(amax >= 1e-30) + ReduceSum(x * 0)
    acc = only_reader(mm.output[0], "Cast")
    row = only_reader(acc.output[0], "Mul") if acc is not None and _cast_to(onnx, acc) == T.FLOAT else None
    total = node(other(row, acc.output[0]), "Add") if row is not None else None
    if total is None or len(total.input) != 2:
        return None
    live_mul, nan = node(total.input[0], "Mul"), node(total.input[1], "ReduceSum")
    zero_mul = node(nan.input[0], "Mul") if nan is not None and reduced(total.input[1], "ReduceSum",
                                                                        nan.input[0]) else None
    if live_mul is None or zero_mul is None or not is_const(other(zero_mul, x) or "", 0.0):
        return None
    div, live = node(live_mul.input[0], "Div"), node(live_mul.input[1], "Cast")
    ge = node(live.input[0], "GreaterOrEqual") if live is not None and _cast_to(onnx, live) == T.FLOAT else None
    if div is None or list(div.input) != [amax, div.input[1]] or not is_const(div.input[1], 127.0) or \
            ge is None or ge.input[0] != amax or not is_const(ge.input[1], 1e-30):
        return None
    by_unit = only_reader(row.output[0], "Mul")
    scale_name = other(by_unit, row.output[0]) if by_unit is not None else None
    w_scale = consts.get(scale_name) if scale_name is not None else None
    if w_scale is None or np.asarray(w_scale).shape != (w.shape[1],):
        return None
    last, inner, ins = by_unit, [mm, acc, row], [x, mm.input[1], scale_name]
    add = only_reader(by_unit.output[0], "Add")
    bias = other(add, by_unit.output[0]) if add is not None else None
    if bias is not None and bias in consts and np.asarray(consts[bias]).shape == (w.shape[1],):
        inner.append(by_unit)
        last = add
        ins.append(bias)
    return last, inner, ins


# ---------------------------------------------------------------------------- the model
_FLOAT_TYPES = {1: "float32", 11: "float64"}   # TensorProto.FLOAT, DOUBLE
_INT_TYPES = {3: "int8", 5: "int16", 6: "int32", 7: "int64", 2: "uint8", 4: "uint16", 12: "uint32", 13: "uint64"}


def _inputs(g, graph):
    from ..layers import Input
    readers = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    inputs, dtypes = [], set()
    for vi in graph.input:
        if vi.name in g.values:   # an initializer also listed as an input (IR < 4)
            continue
        t = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or t.elem_type not in {**_FLOAT_TYPES, **_INT_TYPES}:
            kind = g.onnx.TensorProto.DataType.Name(t.elem_type) if vi.type.HasField("tensor_type") \
                else vi.type.WhichOneof("value")
            raise ValueError(f"ONNX input {vi.name!r}: fastmlp models take float32 or float64 tensors (or integer "
                             f"ids); this input is {kind}")
        dims = list(t.shape.dim) if t.HasField("shape") else None
        if not dims or len(dims) < 2 or not all(d.HasField("dim_value") and d.dim_value > 0 for d in dims[1:]):
            shown = None if dims is None else [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                                               for d in dims]
            raise ValueError(f"ONNX input {vi.name!r} has shape {shown}: fastmlp needs (samples, features...) "
                             f"with every axis after the first of fixed size")
        if t.elem_type in _FLOAT_TYPES:
            read = readers.get(vi.name, [])
            cast_at_once = t.elem_type == g.onnx.TensorProto.DOUBLE and read and vi.name not in g.outputs and all(
                n.op_type == "Cast" and _cast_to(g.onnx, n) == g.onnx.TensorProto.FLOAT for n in read)
            dtypes.add("float32" if cast_at_once else _FLOAT_TYPES[t.elem_type])   # (as fastmlp writes them)
        inputs.append((vi.name, tuple(d.dim_value for d in dims[1:]), _INT_TYPES.get(t.elem_type)))
    if not inputs:
        raise ValueError("The ONNX graph has no inputs (beyond its initializers)")
    if len(dtypes) > 1:
        raise ValueError(f"The ONNX graph's inputs mix float32 and float64: {sorted(dtypes)}")
    g.dtype = dtypes.pop() if dtypes else "float32"
    tensors = []
    for name, shape, int_dtype in inputs:
        t = Input(shape=shape, name=g.name(name), dtype=int_dtype or g.dtype)
        if int_dtype:
            g.int_names.add(name)
        g.values[name] = t
        tensors.append(t)
    return tensors


def from_onnx(proto, verify=True):
    """A fastmlp model (functional, uncompiled) computing the ONNX graph ``proto``
    (an ``onnx.ModelProto`` or its bytes); ``verify`` runs ``onnx.checker`` first."""
    onnx = require_onnx()
    if isinstance(proto, (bytes, bytearray, memoryview)):
        try:
            proto = onnx.load_model_from_string(bytes(proto))
        except Exception as e:   # protobuf's DecodeError and friends
            raise ValueError(f"Not an ONNX model: {e}") from None
    if not isinstance(proto, onnx.ModelProto):
        raise TypeError(f"Expected an onnx.ModelProto or its bytes; received {type(proto).__name__}")
    if verify:
        try:
            onnx.checker.check_model(proto)
        except onnx.checker.ValidationError as e:
            raise ValueError(f"The ONNX model is not valid: {e}") from None
    from .. import layers
    from ..layers.registry import model_class
    Model = model_class("Functional")
    graph = proto.graph
    g = _Graph(onnx, proto)
    inputs = _inputs(g, graph)   # the inputs keep their names; then the outputs' names are kept for the layers
    output_names = [g.name(name or "output") for name in g.outputs]   # that compute them, made distinct
    consts = {k: v.value for k, v in g.values.items() if isinstance(v, _Const)}
    read = {name for node in graph.node for name in node.input}
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            at = _attrs(onnx, node)
            if "value" in at:
                consts[node.output[0]] = onnx.numpy_helper.to_array(at["value"])
            elif "value_float" in at:
                consts[node.output[0]] = np.asarray(at["value_float"])
            if node.output[0] in consts and node.output[0] in read:
                # (weights too, as the file holds them: what folding may need grows with them)
                g.fold_limit += 2 * consts[node.output[0]].size
    nodes = _live(_fuse_patterns(onnx, graph, consts), g.outputs)
    g.count_readers(nodes)
    for node in nodes:
        if node.domain not in ("", "ai.onnx"):
            raise ValueError(f"{_where(node)} of domain {node.domain!r} is not supported: fastmlp imports "
                             f"operators of the default ONNX domain")
        fn = OP_IMPORTERS.get(node.op_type)
        if fn is None:
            raise ValueError(f"{_where(node)}: the ONNX operator {node.op_type!r} is not supported by fastmlp's "
                             f"importer, which reads MLP graphs of {sorted(OP_IMPORTERS)}")
        try:
            g.values[node.output[0]] = fn(g, node, _attrs(onnx, node))
        except ValueError as e:   # a layer's own check (a LeakyReLU slope, an epsilon): say which node
            if str(e).startswith(("ONNX", "The ONNX")):
                raise
            raise ValueError(f"{_where(node)}: {e}") from None

    outputs, named = [], set()
    for name, want in zip(g.outputs, output_names):
        if isinstance(g.values.get(name), _Const):
            raise ValueError(f"ONNX output {name!r} is a constant; fastmlp models compute their outputs")
        t = g.tensor(name, None) if name in g.values else None
        if t is None:
            raise ValueError(f"ONNX output {name!r} is not computed by any node")
        layer = t._history[0]
        if isinstance(layer, layers.InputLayer) or id(layer) in named:
            # an input passed through, or a value given twice: a layer of its own computes it
            t = layers.Activation("linear", name=want, dtype=g.dtype)(t)
        else:
            layer.name = want
        named.add(id(t._history[0]))
        outputs.append(t)
    model = Model(inputs=inputs, outputs=outputs, name=g.name(graph.name or "onnx_model"))
    for layer, weights in g.weights:
        layer.set_weights(weights)
    if g.int8:
        if model._dtype != "float32":
            raise ValueError("The ONNX graph has int8 Dense layers and float64 inputs; fastmlp runs int8 layers "
                             "in float32 models")
        model._set_int8_kernels(g.int8)
    return model


def _live(nodes, outputs):
    """The nodes the graph's outputs depend on, in order (onnxruntime skips the others too)."""
    needed, keep = set(outputs), []
    for n in reversed(nodes):
        if any(o in needed for o in n.output):
            keep.append(n)
            needed.update(i for i in n.input if i)
    return keep[::-1]


def load(filepath, compile=True, mmap=False, verify=True):
    """A fastmlp model from an ONNX file (``fastmlp.models.load_model("model.onnx")``).

    The file holds no training configuration, so the model is uncompiled whatever
    ``compile`` says (as Keras loads a model saved uncompiled); ``mmap`` is for
    fastmlp model files and must stay False; ``verify`` runs ``onnx.checker``."""
    if mmap:
        raise ValueError("load_model(mmap=True) maps fastmlp model files; an ONNX file is read into memory "
                         "(pass mmap=False)")
    onnx = require_onnx()
    path = os.fspath(filepath)
    with open(path, "rb") as f:
        data = f.read()
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as e:
        raise ValueError(f"{path!s} is not an ONNX model: {e}") from None
    if any(init.data_location == onnx.TensorProto.EXTERNAL for init in proto.graph.initializer):
        from onnx.external_data_helper import load_external_data_for_model
        try:
            load_external_data_for_model(proto, os.path.dirname(os.path.abspath(path)))
        except Exception as e:   # (onnx raises its ValidationError or an OSError)
            raise ValueError(f"{path!s}: the ONNX model's external weight data could not be read: {e}") from None
    try:
        return from_onnx(proto, verify=verify)
    except ValueError as e:
        raise ValueError(f"{path!s}: {e}") from None
