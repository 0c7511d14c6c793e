"""``Model``: a functional model, the graph of layer calls between its input
tensors and its output tensors (``keras.Model(inputs, outputs)``).

The structure lives here: the graph walk (Keras's order of layers and
weights), inputs and outputs and their names, weights, nesting (a model is a
layer), configs and the summary.  Training and inference come from
``training.Trainer``; the engine plan from ``plan``.
"""
import json

import numpy as np

from .. import _engine, utils
from .. import config as _config
from ..layers import registry
from ..layers.base import KerasTensor, Layer, Node, _assign_weights, _unique_name, weights_deferred
from ..layers.input_layer import InputLayer
import fastmlp.models.plan as plan_module
import fastmlp.models.quantization as quantization
from fastmlp.models.training import Trainer

__all__ = ["Model"]


def _flatten(struct):
    """Tensors of a tensor, list/tuple or dict (dicts in sorted key order, as Keras flattens them)."""
    if isinstance(struct, dict):
        return [struct[k] for k in sorted(struct)]
    if isinstance(struct, (list, tuple)):
        return list(struct)
    return [struct]


def _map_graph(inputs, outputs):
    """Keras's graph walk: the layer-call nodes between ``inputs`` and ``outputs`` in
    topological order, and the layers ordered by decreasing depth (ties by first
    visit).  Raises ValueError for an output that does not depend on the inputs."""
    input_ids = {id(t) for t in inputs}
    finished, in_progress, order, visit = set(), set(), [], {}

    def enter(tensor, path):
        """The frame [node, its input tensors, next input] of a node not walked yet, else None."""
        layer, node_index, _ = tensor._history
        node = layer._inbound_nodes[node_index]
        if id(node) in finished:
            return None
        if id(node) in in_progress:
            raise ValueError(f"The graph has a cycle at layer {layer.name!r}")
        visit.setdefault(id(layer), (len(visit), layer))
        if isinstance(layer, InputLayer) and id(tensor) not in input_ids:
            raise ValueError(f"Output with path `{path}` is not connected to `inputs`: it depends on input "
                             f"{layer.name!r}, which is not among the model's inputs")
        in_progress.add(id(node))
        return [node, node.inputs if id(tensor) not in input_ids else [], 0]

    # depth first through each node's inputs in order, nodes listed after their inputs; an
    # explicit stack, so that a chain of any length fits (a recursion would stop at ~1000)
    for path, t in outputs:
        frame = enter(t, path)
        stack = [frame] if frame else []
        while stack:
            frame = stack[-1]
            node, ins, i = frame
            if i < len(ins):
                frame[2] += 1
                child = enter(ins[i], path)
                if child:
                    stack.append(child)
                continue
            stack.pop()
            in_progress.discard(id(node))
            finished.add(id(node))
            order.append(node)
    node_depth, layer_depth = {}, {}
    for node in reversed(order):
        depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = depth
        node_depth[id(node)] = depth
        for t in node.inputs:
            parent = t._history[0]._inbound_nodes[t._history[1]]
            node_depth[id(parent)] = max(depth + 1, node_depth.get(id(parent), 0))
    for t in inputs:
        layer = t._history[0]
        if id(layer) not in layer_depth:
            layer_depth[id(layer)] = 0
            visit[id(layer)] = (-1, layer)
    layers = sorted((v for v in visit.values()), key=lambda v: (-layer_depth[id(v[1])], v[0]))
    nodes = [n for n in order if not isinstance(n.layer, InputLayer)]
    return nodes, [layer for _, layer in layers]


class Model(Trainer, Layer):
    """A functional model, as ``keras.Model(inputs, outputs)``: ``inputs`` a tensor
    from ``Input``, a list or a dict of them; ``outputs`` a tensor, a list or a
    dict of tensors computed from them.  Subclassing ``Model`` with a ``call``
    method is not supported: build the same network with the functional API."""
    _is_model = True
    _base_name = "functional"

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        if kwargs:
            raise TypeError(f"Unrecognized keyword argument(s) passed to Model: {sorted(kwargs)}")
        if inputs is None or outputs is None:
            what = f"subclass {type(self).__name__!r} of Model" if type(self) is not Model else "Model()"
            raise NotImplementedError(
                f"fastmlp supports functional models only ({what} was created without inputs and outputs). "
                f"Build the network with the functional API: `inputs = fastmlp.Input(shape=...)`, "
                f"`x = layers.Dense(...)(inputs)`, ..., `model = fastmlp.Model(inputs, outputs)`; or use "
                f"fastmlp.Sequential([...]) for a plain stack.")
        Layer.__init__(self, name=name or _unique_name("functional"), trainable=trainable)
        Trainer.__init__(self)
        self._init_graph(inputs, outputs)

    # ------------------------------------------------------------------ the graph
    def _init_graph(self, inputs, outputs):
        for what, struct in (("inputs", inputs), ("outputs", outputs)):
            flat = _flatten(struct)
            if not flat or not all(isinstance(t, KerasTensor) for t in flat):
                raise ValueError(f"Model `{what}` must be symbolic tensors (from fastmlp.Input and layer calls): "
                                 f"a tensor, a list or a dict of them. Received: {what}={struct!r}")
        if isinstance(inputs, dict):
            self._input_keys = list(inputs)
            self.inputs = [inputs[k] for k in inputs]
        else:
            self._input_keys = None
            self.inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        for t in self.inputs:
            if not isinstance(t._history[0], InputLayer):
                raise ValueError(f"Model inputs must come from `fastmlp.Input`; {t.name!r} is the output of "
                                 f"layer {t._history[0].name!r}")
        if len(self.inputs) > _engine.MAX_INPUTS:
            raise ValueError(f"fastmlp models take at most {_engine.MAX_INPUTS} inputs; got {len(self.inputs)}")
        if isinstance(outputs, dict):
            self._output_kind, keys = "dict", sorted(outputs)
            self.outputs = [outputs[k] for k in keys]
            self.output_names = [str(k) for k in keys]
            paths = keys
        elif isinstance(outputs, (list, tuple)):
            self._output_kind = "list"
            self.outputs = list(outputs)
            self.output_names = [t._history[0].name for t in self.outputs]
            paths = [str(i) for i in range(len(self.outputs))]
        else:
            self._output_kind = "single"
            self.outputs = [outputs]
            self.output_names = [outputs._history[0].name]
            paths = [""]
        if len(self.outputs) > _engine.MAX_OUTPUTS:
            raise ValueError(f"fastmlp models have at most {_engine.MAX_OUTPUTS} outputs; got {len(self.outputs)}")
        if len(set(self.output_names)) != len(self.output_names):
            raise ValueError(f"Model outputs need distinct names; got {self.output_names}")
        self._outputs_struct = outputs
        self._nodes, self._graph_layers = _map_graph(self.inputs, list(zip(paths, self.outputs)))
        counts = {}
        for layer in self._graph_layers:
            counts[layer.name] = counts.get(layer.name, 0) + 1
        for n, c in counts.items():
            if c > 1:
                raise ValueError(f'The name "{n}" is used {c} times in the model. All layer names '
                                 f"should be unique.")
        self.input_names = list(self._input_keys) if self._input_keys else [t._history[0].name for t in self.inputs]
        self._build_engine()

    def _build_engine(self, params=None):
        """Lay out the weights, attach the layers to the model's vector (``params`` as it
        is when given, e.g. from a file) and create the engine's network."""
        dtypes = {layer._dtype for layer in self._all_layers() if layer._dtype is not None}
        self._dtype = dtypes.pop() if len(dtypes) == 1 else _config.floatx()
        for layer in self._all_layers():
            layer._dtype = self._dtype
        self._plan = plan_module.build_plan(self)
        self._n_params = self._plan.n_params
        if params is None and weights_deferred():   # a loader attaches the file's vector
            self._params = self._net = None
        else:
            if params is not None and (params.dtype != self._dtype or params.shape != (max(self._n_params, 1),)):
                raise ValueError(f"internal: params must be a {self._dtype} vector of {max(self._n_params, 1)} "
                                 f"values")
            plan_module.attach(self, params, fill=params is None)
            self._make_network()
        if self._seed is None:
            self._seed = utils._next_seed()
        self.built = True

    def _make_network(self):
        self._plan.refresh()
        self._net = _engine.Network(self._plan, self._dtype == "float64")
        quantization.bind(self)   # Dense layers quantized to int8 run in int8 at inference

    @property
    def _variables(self):
        return self._plan.variables

    def _all_layers(self):
        """Every layer of the graph, nested models' layers included (each once)."""
        out, seen = [], set()

        def visit(m):
            for layer in m._graph_layers:
                if id(layer) in seen:
                    continue
                seen.add(id(layer))
                if getattr(layer, "_is_model", False):
                    visit(layer)
                else:
                    out.append(layer)
        visit(self)
        return out

    @property
    def layers(self):
        return list(self._graph_layers)

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        """As in Keras, setting it sets it on every layer too (nested models' layers included):
        ``base.trainable = False`` freezes the base's layers, and True unfreezes them all."""
        self._trainable = bool(value)
        try:
            layers = self.layers
        except AttributeError:   # (being made: no layers yet)
            return
        for layer in layers:
            layer.trainable = self._trainable

    def get_layer(self, name=None, index=None):
        """A layer of ``self.layers`` by name or index (a Sequential's layers exclude its input)."""
        layers = self.layers
        if index is not None:
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: {[l.name for l in layers]}.")

    @property
    def input(self):
        return self.inputs[0] if len(self.inputs) == 1 else list(self.inputs)

    @property
    def output(self):
        return self.outputs[0] if len(self.outputs) == 1 else list(self.outputs)

    @property
    def input_shape(self):
        shapes = [tuple(t.shape) for t in self.inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        shapes = [tuple(t.shape) for t in self.outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def dtype(self):
        return self._dtype if self.built else _config.floatx()

    # ------------------------------------------------------------------ weights
    def _weight_refs(self):
        self._require_built("weights")
        return self._plan.weights

    @property
    def weights(self):
        if not self.built:
            return []
        plan_module.ensure_attached(self)
        return [getattr(w.layer, w.spec.name) for w in self._plan.weights if not w.spec.constant]

    @property
    def trainable_weights(self):
        if not self.built or not self.trainable:
            return []
        plan_module.ensure_attached(self)
        return [getattr(w.layer, w.spec.name) for w in self._plan.weights if w.trainable]

    @property
    def non_trainable_weights(self):
        if not self.built:
            return []
        plan_module.ensure_attached(self)
        return [getattr(w.layer, w.spec.name) for w in self._plan.weights
                if not w.trainable and not w.spec.constant]

    @property
    def trainable_variables(self):
        return self.trainable_weights

    @property
    def losses(self):
        """The current regularization penalties, one per regularized weight (Keras's
        ``model.losses``); their sum is what ``fit`` adds to the loss."""
        if not self.built:
            return []
        plan_module.ensure_attached(self)
        return [np.float32(w.spec.regularizer(getattr(w.layer, w.spec.name))) for w in self._plan.weights
                if w.spec.regularizer is not None and w.trainable]

    def get_weights(self):
        """Copies of every weight, Keras's order and layout."""
        return [np.array(w, copy=True) for w in self.weights]

    def set_weights(self, weights):
        """Set every weight from a list shaped like ``get_weights()``."""
        self._require_built("set_weights")
        _assign_weights(self.weights, weights, f"model {self.name!r}")

    def count_params(self):
        self._require_built("count_params")
        return int(sum(w.size for w in self.weights))

    def _require_built(self, what):
        if not self.built:
            raise ValueError(f"Model {self.name!r} has not been built yet, so `{what}` is unavailable: give "
                             f"the first layer an input shape, add an Input, or call the model on data first.")

    # ------------------------------------------------------------------ models are layers
    def _check_input_shapes(self, shapes):
        pass

    def _symbolic_call(self, x):
        self._require_built("calling it on tensors")
        if isinstance(x, dict):
            keys = self.input_names
            missing = [k for k in keys if k not in x]
            if missing:
                raise ValueError(f'Missing data for input "{missing[0]}". You passed a data dictionary with keys '
                                 f"{list(x)}. Expected the following keys: {keys}")
            xs = [x[k] for k in keys]
        else:
            xs = list(x) if isinstance(x, (list, tuple)) else [x]
        if len(xs) != len(self.inputs):
            raise ValueError(f'Layer "{self.name}" expects {len(self.inputs)} input(s), but it received '
                             f"{len(xs)} input tensors.")
        for i, (t, ref) in enumerate(zip(xs, self.inputs)):
            if tuple(t.shape[1:]) != tuple(ref.shape[1:]):
                raise ValueError(f"Input {i} with name '{ref.name}' of layer '{self.name}' is incompatible with the "
                                 f"layer: expected shape={tuple(ref.shape)}, found shape={tuple(t.shape)}")
        index = len(self._inbound_nodes)
        outs = [KerasTensor(o.shape, o.dtype, name=f"{self.name}/output_{index}_{k}", history=(self, index, k))
                for k, o in enumerate(self.outputs)]
        node = Node(self, xs if len(xs) > 1 or isinstance(x, (list, tuple, dict)) else xs[0], outs)
        self._inbound_nodes.append(node)
        return self._structure(outs)

    def _structure(self, flat):
        """``flat`` (one entry per output) in the model's output structure."""
        if self._output_kind == "dict":
            return dict(zip(self.output_names, flat))
        if self._output_kind == "list" and len(flat) > 1:
            return list(flat)
        return flat[0]

    def _eager_call(self, x, training):
        return self.predict(x, verbose=0)

    # ------------------------------------------------------------------ config
    def get_config(self):
        """Keras's functional config: ``layers`` (each with ``inbound_nodes``), ``input_layers``,
        ``output_layers``."""
        # A node's index is its place among this model's calls of its layer in the order they
        # were made (layer._inbound_nodes), as Keras numbers them; inbound_nodes lists them so.
        in_model = {id(n) for n in self._nodes}
        node_ids, layer_nodes = {}, {}
        for node in self._nodes:
            if id(node.layer) not in layer_nodes:
                layer_nodes[id(node.layer)] = [n for n in node.layer._inbound_nodes if id(n) in in_model]
                for i, n in enumerate(layer_nodes[id(node.layer)]):
                    node_ids[id(n)] = i

        def ref(t):
            layer, node_index, k = t._history
            node = layer._inbound_nodes[node_index]
            return [layer.name, node_ids.get(id(node), 0), k]

        def tensor(t):
            return {"class_name": "__keras_tensor__",
                    "config": {"shape": list(t.shape), "dtype": t.dtype, "keras_history": ref(t)}}

        layers = []
        for layer in self._graph_layers:
            if isinstance(layer, InputLayer):
                entry = {"class_name": "InputLayer", "config": layer.get_config(), "name": layer.name,
                         "inbound_nodes": []}
            else:
                cls = "Sequential" if type(layer).__name__ == "Sequential" else \
                    ("Functional" if getattr(layer, "_is_model", False) else type(layer).__name__)
                inbound = []
                for node in layer_nodes.get(id(layer), []):
                    args = node.args
                    arg = [tensor(t) for t in args] if isinstance(args, (list, tuple)) else tensor(args)
                    inbound.append({"args": [arg], "kwargs": {}})
                entry = {"class_name": cls, "config": layer.get_config(), "name": layer.name,
                         "inbound_nodes": inbound}
            layers.append(entry)
        if self._input_keys:
            input_layers = {k: ref(t) for k, t in zip(self._input_keys, self.inputs)}
        elif len(self.inputs) == 1:
            input_layers = ref(self.inputs[0])
        else:
            input_layers = [ref(t) for t in self.inputs]
        outs = self._outputs_struct
        if isinstance(outs, dict):
            output_layers = {k: ref(t) for k, t in outs.items()}
        elif isinstance(outs, (list, tuple)):
            output_layers = [ref(t) for t in outs]
        else:
            output_layers = ref(outs)
        cfg = {"name": self.name, "trainable": bool(self.trainable), "layers": layers,
               "input_layers": input_layers, "output_layers": output_layers}
        if isinstance(outs, (list, tuple)) and len(outs) == 1:
            cfg["output_layers"] = [ref(outs[0])]
        return cfg

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A new model from ``get_config()`` (declarative: only fastmlp's own layer kinds)."""
        return _functional_from_config(config)

    def to_json(self, **kwargs):
        """The model's architecture as JSON (``{"class_name": ..., "config": ...}``), as Keras writes it."""
        cls = "Sequential" if type(self).__name__ == "Sequential" else "Functional"
        return json.dumps({"class_name": cls, "config": self.get_config()}, **kwargs)

    # ------------------------------------------------------------------ display
    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False, show_trainable=False):
        """Print a Keras-style table: each layer, its output shape, its parameter
        count and (for graphs that are not a plain chain) the layers it is connected to."""
        print_fn = print_fn or print
        rows, chain = [], True
        by_layer, in_model = {}, {id(n) for n in self._nodes}
        for n in self._nodes:
            by_layer.setdefault(id(n.layer), []).append(n)
        for layer in self._graph_layers:
            nodes = by_layer.get(id(layer), [])
            if isinstance(layer, InputLayer):
                shape, connected = layer.output.shape, []
            else:
                shape = nodes[0].outputs[0].shape if len(nodes[0].outputs) == 1 else \
                    [tuple(o.shape) for o in nodes[0].outputs]
                connected = []
                for n in nodes:
                    for t in n.inputs:
                        src, idx, k = t._history
                        src_nodes = [m for m in src._inbound_nodes if id(m) in in_model] \
                            if not isinstance(src, InputLayer) else []
                        connected.append(f"{src.name}[{src_nodes.index(src._inbound_nodes[idx]) if src_nodes else 0}][{k}]")
                if len(nodes) > 1 or len(connected) != 1:
                    chain = False
            params = sum(w.size for w in layer.weights) if layer.built else 0
            kind = "Functional" if getattr(layer, "_is_model", False) and type(layer).__name__ != "Sequential" \
                else type(layer).__name__
            rows.append((f"{layer.name} ({kind})", str(tuple(shape)) if not isinstance(shape, list) else str(shape),
                         params, connected))
        if len(self.inputs) > 1:
            chain = False
        c1 = max([29] + [len(r[0]) + 2 for r in rows])
        width = line_length or c1 + 36 + (0 if chain else 30)
        head = f"{'Layer (type)':<{c1}}{'Output Shape':<22}{'Param #':>10}" + ("" if chain else "  Connected to")
        lines = [f'Model: "{self.name}"', "_" * width, head, "=" * width]
        for label, shape, params, connected in rows:
            line = f"{label:<{c1}}{shape:<22}{params:>10}"
            if not chain:
                line += "  " + (", ".join(connected) if connected else "-")
            lines.append(line)
        total = self.count_params() if self.built else 0
        trainable = sum(w.size for w in self.trainable_weights) if self.built else 0
        lines += ["=" * width, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {total - trainable:,}", "_" * width]
        for line in lines:
            print_fn(line)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


# ---------------------------------------------------------------------------- from config
def layer_from_entry(entry, what):
    """A layer (or nested model) from a config entry ``{"class_name", "config"}``."""
    if not isinstance(entry, dict):
        raise ValueError(f"{what}: a layer entry must be an object")
    kind = entry.get("class_name")
    cfg = entry.get("config")
    if not isinstance(cfg, dict):
        raise ValueError(f"{what}: layer entry {kind!r} needs a 'config' object")
    if kind == "Functional" or kind == "Model":
        return _functional_from_config(cfg)
    if registry.model_class(kind) is not None:   # "Sequential" (registered by the models package)
        return registry.model_class(kind).from_config(cfg)
    cls = registry.get(kind)
    if cls is None:
        raise ValueError(f"{what}: Unknown layer class {kind!r} (an unknown layer kind); expected one of "
                         f"{sorted(registry.CLASSES) + ['Functional', 'Sequential']}")
    try:
        return cls.from_config(dict(cfg))
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, IndexError) as e:
        raise type(e)(f"{what} ({kind}, layer {cfg.get('name')!r}): {e}") from None


def _functional_from_config(config):
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ValueError("A functional model's config is a dict with a 'layers' list")
    if "input_layers" not in config or "output_layers" not in config:
        raise ValueError("A Functional config needs 'input_layers' and 'output_layers' (a Sequential model's "
                         "config has neither)")
    created, pending = {}, {}   # pending: layer name -> its inbound nodes not yet made, in order
    for i, entry in enumerate(config["layers"]):
        layer = layer_from_entry(entry, f"layer #{i}")
        name = entry.get("name", layer.name) if isinstance(entry, dict) else layer.name
        if name in created:
            raise ValueError(f'The name "{name}" is used 2 times in the model config')
        created[name] = layer
        nodes = entry.get("inbound_nodes", [])
        if not isinstance(nodes, list):
            raise ValueError(f"layer {name!r}: 'inbound_nodes' must be a list")
        if nodes:
            pending[name] = (layer, list(nodes))
    made = {}   # (layer name, node index) -> output structure (list of tensors)
    for name, layer in created.items():
        if isinstance(layer, InputLayer):
            made[(name, 0)] = [layer.output]

    def lookup(t):
        if not (isinstance(t, dict) and t.get("class_name") == "__keras_tensor__"):
            raise ValueError(f"an inbound tensor must be a __keras_tensor__ entry; got {t!r}")
        hist = t.get("config", {}).get("keras_history")
        if not (isinstance(hist, list) and len(hist) == 3 and isinstance(hist[0], str)
                and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in hist[1:])):
            raise ValueError(f"bad keras_history {hist!r}")
        outs = made.get((hist[0], hist[1]))
        if outs is None:
            return None
        if hist[2] >= len(outs):
            raise ValueError(f"keras_history {hist!r} names an output the layer does not have")
        return outs[hist[2]]

    # A layer's calls are made in the order of its inbound_nodes (node i of the config is the
    # layer's i-th call), each once its inputs exist, as Keras does: a later call of a shared
    # layer that happens to be ready first must not take an earlier call's index.
    counts = {}
    while pending:
        progress = False
        for name in list(pending):
            layer, queue = pending[name]
            while queue:
                data = queue[0]
                if not isinstance(data, dict) or not isinstance(data.get("args"), list) or len(data["args"]) != 1:
                    raise ValueError(f"layer {name!r}: an inbound node is {{'args': [inputs], 'kwargs': {{}}}}")
                if data.get("kwargs"):
                    raise ValueError(f"layer {name!r}: call arguments {sorted(data['kwargs'])} are not supported")
                arg = data["args"][0]
                if isinstance(arg, list):
                    tensors = [lookup(t) for t in arg]
                    ready = all(t is not None for t in tensors)
                else:
                    tensors = lookup(arg)
                    ready = tensors is not None
                if not ready:
                    break
                out = layer(tensors)
                index = counts.get(name, 0)
                counts[name] = index + 1
                made[(name, index)] = _flatten(out) if getattr(layer, "_is_model", False) else [out]
                queue.pop(0)
                progress = True
            if not queue:
                del pending[name]
        if not progress:
            raise ValueError(f"the model config's inbound nodes cannot all be resolved (layers "
                             f"{sorted(pending)})")

    def resolve(refs, what):
        def one(r):
            if not (isinstance(r, list) and len(r) == 3):
                raise ValueError(f"bad {what} entry {r!r}")
            t = lookup({"class_name": "__keras_tensor__", "config": {"keras_history": r}})
            if t is None:
                raise ValueError(f"{what} entry {r!r} names no tensor of the model")
            return t
        if isinstance(refs, dict):
            return {k: one(v) for k, v in refs.items()}
        if isinstance(refs, list) and refs and isinstance(refs[0], str):
            return one(refs)
        if isinstance(refs, list):
            return [one(r) for r in refs]
        raise ValueError(f"bad {what} {refs!r}")
    inputs = resolve(config.get("input_layers"), "input_layers")
    outputs = resolve(config.get("output_layers"), "output_layers")
    trainable = config.get("trainable", True)
    if not isinstance(trainable, bool):
        raise ValueError("the model's 'trainable' must be true or false")
    name = config.get("name")
    if name is not None and not isinstance(name, str):
        raise ValueError("the model name must be a string")
    return Model(inputs=inputs, outputs=outputs, name=name, trainable=trainable)


def model_from_json(json_string, custom_objects=None):
    """A model from ``model.to_json()`` (functional or Sequential)."""
    try:
        data = json.loads(json_string)
    except (TypeError, ValueError) as e:
        raise ValueError(f"model_from_json: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError("model_from_json: expected a JSON object with 'class_name' and 'config'")
    return layer_from_entry(data, "model_from_json")
