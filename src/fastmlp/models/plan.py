"""The typed plan of a model: where every weight lives in the flat parameter
vector, and the engine's node graph.  One plan serves the model (it builds the
engine's ``Network`` from it), the file writer (tensor order and offsets) and
the reader (what tensors a file must hold).

Weights are laid out in the model's weight order (``model.weights``), each on a
64-byte boundary, so that a memory-mapped file can hold the vector as it is.
Layers hold their weights as views into the vector of the model that used them
last; a model re-attaches them (copying their current values) before it runs
if another model took them over, so models that share layers share weights.
"""
import math

import numpy as np

from .. import _engine
from ..layers.base import WeightSpec  # noqa: F401  (documented type of WeightRef.spec)

__all__ = ["Plan", "NodeSpec", "VarSpec", "WeightRef", "build_plan"]

_ALIGN = 16  # parameter segments start on 64-byte boundaries (float32)
_KIND_INPUT = _engine.KINDS["input"]
_KIND_BATCHNORM = _engine.KINDS["batch_normalization"]

# Bumped whenever layers are re-attached to another model's vector: a model whose
# generation is current knows its layers still view its own vector.
_GENERATION = [0]


class NodeSpec:
    """One engine node (the fields of ``fm_node`` in csrc/fastmlp.h)."""
    __slots__ = ("kind", "inputs", "n_out", "activation", "act_alpha", "w_off", "b_off", "aux_off", "var_off",
                 "rate", "seed", "stream", "momentum", "epsilon", "param", "frozen", "layer", "owners")

    def __init__(self, kind, inputs, n_out, layer=None, **fields):
        self.kind, self.inputs, self.n_out, self.layer = kind, list(inputs), int(n_out), layer
        self.owners = ()
        self.activation, self.act_alpha = 0, 0.0
        self.w_off = self.b_off = self.aux_off = self.var_off = -1
        self.rate, self.seed, self.stream = 0.0, 0, 0
        self.momentum, self.epsilon, self.param, self.frozen = 0.0, 0.0, 0, 0
        for k, v in fields.items():
            setattr(self, k, v)


class VarSpec:
    """A trainable segment of the flat vector and its regularization factors."""
    __slots__ = ("off", "size", "l1", "l2")

    def __init__(self, off, size, l1=0.0, l2=0.0):
        self.off, self.size, self.l1, self.l2 = off, size, l1, l2

    def __iter__(self):   # (off, size, l1, l2), as tests and tools unpack it
        return iter((self.off, self.size, self.l1, self.l2))

    def __getitem__(self, i):
        return (self.off, self.size, self.l1, self.l2)[i]

    def __len__(self):
        return 4


class WeightRef:
    """One weight of the model: its layer, spec, element offset, and the name
    the model file gives it (``layer/weight``, nested models' names first)."""
    __slots__ = ("layer", "spec", "offset", "path", "owners")

    def __init__(self, layer, spec, offset, path, owners):
        self.layer, self.spec, self.offset, self.path = layer, spec, offset, path
        self.owners = owners   # the model and the nested models that hold the layer

    @property
    def name(self):
        return f"{self.path}/{self.spec.name}"

    @property
    def shape(self):
        return self.spec.shape

    @property
    def size(self):
        return math.prod(self.spec.shape)

    @property
    def trainable(self):
        """Updated by the optimizer now: a trainable weight of a trainable layer in trainable models."""
        return self.spec.trainable and self.layer.trainable and all(m.trainable for m in self.owners)


class Plan:
    """``weights`` (WeightRef, model weight order), ``n_params``, ``nodes``
    (NodeSpec, topological, inputs first), ``outputs`` (node indices, the model's
    output order), ``input_shapes`` (per model input, without the batch axis)."""

    def __init__(self, weights, n_params, nodes, outputs, input_shapes):
        self.weights, self.n_params = weights, n_params
        self.nodes, self.outputs, self.input_shapes = nodes, outputs, input_shapes
        self.input_widths = [math.prod(s) for s in input_shapes]
        self.output_widths = [nodes[o].n_out for o in outputs]
        self.simple_io = False   # set by the model: one flat input, one flat output
        self.id_checks = []      # set by build_plan: (input index, input_dim, layer name) per Embedding
        self.refresh()

    def refresh(self):
        """Trainability as it is now (Keras: a change of ``trainable`` counts from the next compile)."""
        self.variables = [VarSpec(w.offset, w.size, *_factors(w.spec.regularizer))
                          for w in self.weights if w.trainable]
        for nd in self.nodes:   # a frozen BatchNormalization runs in inference mode (Keras 3)
            if nd.kind == _KIND_BATCHNORM:
                nd.frozen = int(not (nd.layer.trainable and all(m.trainable for m in nd.owners)))
        self.trainable_state = [w.trainable for w in self.weights]



def _factors(reg):
    return (float(reg.l1), float(reg.l2)) if reg is not None else (0.0, 0.0)


def _layout(model):
    """WeightRefs for every weight of ``model`` (nested models' weights in their own
    order, shared layers once), and the vector's length."""
    refs, seen = [], set()
    offset = 0

    def visit(m, prefix, owners):
        nonlocal offset
        for layer in m.layers:
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            if getattr(layer, "_is_model", False):
                visit(layer, prefix + layer.name + "/", owners + (layer,))
                continue
            for spec in layer._wspecs:
                refs.append(WeightRef(layer, spec, offset, prefix + layer.name, owners))
                offset += -(-math.prod(spec.shape) // _ALIGN) * _ALIGN
    visit(model, "", (model,))
    return refs, offset


def build_plan(model):
    """The plan of a built functional model (its graph and its layers' weights)."""
    weights, n_params = _layout(model)
    at = {(id(w.layer), w.spec.name): w.offset for w in weights}
    nodes = []
    refs = {}   # id(KerasTensor) -> engine node index (Flatten and InputLayer tensors alias)
    input_shapes = []
    for t in model.inputs:
        shape = tuple(t.shape[1:])
        input_shapes.append(shape)
        refs[id(t)] = len(nodes)
        nodes.append(NodeSpec(_KIND_INPUT, [], math.prod(shape)))
    stream = [0]
    id_checks = []   # (input node, input_dim, layer name) of every Embedding call

    def emit(m, tensor_refs, owners):
        """Engine nodes for model m's graph; tensor_refs maps its input tensors."""
        for node in m._nodes:
            layer = node.layer
            ins = node.inputs
            if getattr(layer, "_is_model", False):
                inner = {id(t): tensor_refs[id(x)] for t, x in zip(layer.inputs, ins)}
                emit(layer, inner, owners + (layer,))
                for t, o in zip(node.outputs, layer.outputs):
                    tensor_refs[id(t)] = inner[id(o)]
                continue
            in_refs = [tensor_refs[id(x)] for x in ins]
            out = node.outputs[0]
            if layer.engine_kind is None:   # Flatten: the engine's rows are flat already
                tensor_refs[id(out)] = in_refs[0]
                continue
            shapes = [tuple(x.shape) for x in ins] if layer._takes_list else tuple(ins[0].shape)
            fields = layer._engine_node(shapes)
            offs = {name: at[(id(layer), name)] for name in (s.name for s in layer._wspecs)}
            nd = NodeSpec(_engine.KINDS[layer.engine_kind], in_refs, math.prod(out.shape[1:]), layer, **fields)
            nd.owners = owners
            first = [s.name for s in layer._wspecs]
            if layer.engine_kind == "batch_normalization":
                nd.w_off, nd.b_off = offs.get("gamma", -1), offs.get("beta", -1)
                nd.aux_off, nd.var_off = offs["moving_mean"], offs["moving_variance"]
            elif getattr(layer, "_engine_weights", None):   # w_off, b_off by name (either may be absent)
                nd.w_off, nd.b_off = (offs.get(name, -1) for name in layer._engine_weights)
            elif first:
                nd.w_off = offs[first[0]]
                nd.b_off = offs[first[1]] if len(first) > 1 else -1
            if layer.engine_kind in ("dropout", "gaussian_noise", "gaussian_dropout", "alpha_dropout"):
                nd.stream = stream[0]
            if layer.engine_kind == "embedding":
                if nodes[in_refs[0]].kind != _KIND_INPUT:
                    raise ValueError(f"Embedding {layer.name!r} must read its ids straight from a model input "
                                     f"(Input, optionally through Flatten): fastmlp checks ids before they enter "
                                     f"the engine, and a computed tensor cannot be checked")
                id_checks.append((in_refs[0], layer.input_dim, layer.name))
            stream[0] += 1
            tensor_refs[id(out)] = len(nodes)
            nodes.append(nd)

    emit(model, refs, (model,))
    outputs = []
    for t in model.outputs:
        o = refs[id(t)]
        if nodes[o].kind == _KIND_INPUT:
            raise ValueError(f"Output {t.name!r} of model {model.name!r} is one of its inputs (or a Flatten of "
                             f"one): a fastmlp model needs a layer that computes between them")
        outputs.append(o)
    plan = Plan(weights, n_params, nodes, outputs, input_shapes)
    plan.id_checks = id_checks
    plan.simple_io = len(input_shapes) == 1 and len(input_shapes[0]) == 1 and len(outputs) == 1 \
        and len(model.outputs[0].shape) == 2
    return plan


def attach(model, params=None, fill=True):
    """Point every layer's weights at views into ``model._params`` (a new vector
    unless ``params`` is given), copying their current values when ``fill``."""
    plan = model._plan
    if params is None:
        params = np.zeros(max(plan.n_params, 1), dtype=model._dtype)
    views = _engine.weight_views(params, [(w.offset, w.spec.shape) for w in plan.weights])
    for w, view in zip(plan.weights, views):
        var = w.layer._variable(w.spec.name)   # the same Variable, now over the model's vector
        if fill and var._array is not None and var._array.shape == view.shape:
            view[...] = var._array
        var._array = view
        var._owners = w.owners   # the models holding it: their `trainable` counts too, as in Keras
        w.layer._store = params
    model._params = params
    _GENERATION[0] += 1
    model._generation = _GENERATION[0]


def ensure_attached(model):
    """Re-attach the model's layers if another model took them over since (their
    values are kept: copied into this model's vector)."""
    if model._generation == _GENERATION[0]:
        return
    if model._params is None:   # laid out while weights were deferred, never attached
        attach(model, None, fill=True)
        model._make_network()
        return
    params = model._params
    for w in model._plan.weights:
        if getattr(w.layer, "_store", None) is not params:
            attach(model, params, fill=True)
            return
    model._generation = _GENERATION[0]
