"""Translating model and compile configs between Keras files and fastmlp.

fastmlp's layers take Keras's arguments and write Keras's config keys, so the
translation is generic: a Keras class name is looked up in the layer registry
(``layers.registry.CLASSES``: every registered kind, whatever helper added it),
and each key of the Keras config goes to the fastmlp constructor when its
signature takes it.  A key it does not take is dropped when its value is
Keras's "off" (None or False) or listed in ``_IGNORED`` below, and is otherwise
an error naming the layer, its class and the argument.  Per-kind tables
(``_RENAMED``, ``_EXTRA_ARGS``, ``_IGNORED``) hold the few exceptions.

Written the other way, fastmlp's own configs get Keras's envelope (``module``,
``registered_name``, ``build_config``) so that Keras 3 deserializes them.
Nothing here imports Keras.
"""
import functools
import inspect

from .. import initializers, losses, metrics, optimizers, regularizers
from .._serialization import get_registered_object
from ..layers import registry
from ..layers.input_layer import _INT_DTYPES
from ..optimizers import schedules
from .format import FormatError

__all__ = ["model_from_keras_config", "model_to_keras_config", "compile_args_from_keras",
           "compile_config_to_keras", "KerasConfigError"]


class KerasConfigError(FormatError):
    """A Keras file describes something fastmlp does not support, or is damaged (a
    ``fastmlp.FormatError``, so a ``ValueError``)."""


# ---- per-kind exceptions (everything else is generic) ----
# Keras config keys another fastmlp argument takes, per class (tf.keras 2.x InputLayer wrote batch_input_shape).
_RENAMED = {"InputLayer": {"batch_input_shape": "batch_shape"},
            "LeakyReLU": {"alpha": "negative_slope"}}   # (tf.keras 2's name for the slope)
# Keys a class takes through **kwargs that its signature does not show.
_EXTRA_ARGS = {"InputLayer": {"batch_shape", "input_shape"}}
# Keras keys fastmlp has no argument for, with the values that mean what fastmlp does (None: any value,
# for keys that tune a feature that is off; the feature's own key, False, is dropped as "off").
_IGNORED = {"BatchNormalization": {"renorm_momentum": None},
            "*": {"ema_momentum": None, "ema_overwrite_frequency": None, "axis": (-1,), "decay": (0,)}}

# Modules Keras writes for its own objects; anything else is a custom object.
_KERAS_MODULE_PREFIXES = ("keras", "tf_keras", "tensorflow.keras", "tensorflow.python.keras")


@functools.lru_cache(maxsize=None)
def _accepted(cls):
    """The keyword arguments ``cls`` takes: its ``__init__`` and, through ``**kwargs``, its bases'."""
    names = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            break
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return frozenset(names)


def _is_custom(entry):
    module = entry.get("module")
    return (isinstance(module, str) and not module.startswith(_KERAS_MODULE_PREFIXES)) or \
        (isinstance(entry.get("registered_name"), str) and ">" in entry["registered_name"])


def _at(where, class_name):
    """``where`` naming ``class_name`` once (a layer's ``where`` names its class already)."""
    return where if where.endswith(f"({class_name})") else f"{where} ({class_name})"


def _filter(cls, class_name, config, where):
    """``config`` reduced to what ``cls`` takes (see the module docstring)."""
    if not isinstance(config, dict):
        raise KerasConfigError(f"{where}: the config of {class_name} must be an object; got {config!r:.100}")
    renamed = _RENAMED.get(class_name, {})
    accepted = _accepted(cls) | _EXTRA_ARGS.get(class_name, set())
    ignored = {**_IGNORED["*"], **_IGNORED.get(class_name, {})}
    out = {}
    for key, value in config.items():
        key = renamed.get(key, key)
        if key in accepted:
            out[key] = value
        elif value is None or value is False or (key in ignored and (ignored[key] is None
                                                                      or value in ignored[key])):
            continue
        else:
            raise KerasConfigError(f"{_at(where, class_name)}: the Keras argument {key}={value!r:.100} is not "
                                   f"supported by fastmlp")
    return out


def _object(entry, family, table, where):
    """A Keras object entry (``{"module", "class_name", "config", ...}`` or a name) as fastmlp's
    ``{"class_name", "config"}`` for ``table`` (class name -> class)."""
    if entry is None or isinstance(entry, str):
        return entry
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise KerasConfigError(f"{where}: cannot read the {family} {entry!r:.100}")
    name = entry["class_name"]
    if family == "initializer" and name == "function" and isinstance(entry.get("config"), str):
        from .. import _serialization   # a Python function, saved by its name: known if the user made it so
        if _serialization.get_registered_object(entry["config"]) is None:
            raise KerasConfigError(f"{where}: the initializer is the Python function {entry['config']!r}; pass it "
                                   f"in `custom_objects` (or register it) to load this file")
        return entry["config"]   # (the layer resolves the name the same way)
    cls = table(name)
    if _is_custom(entry) or cls is None:
        raise KerasConfigError(f"{where}: the {family} {name!r} "
                               f"{'is a custom object' if _is_custom(entry) else 'is not supported'} "
                               f"(fastmlp reads Keras's built-in {family}s it implements)")
    return {"class_name": name, "config": _filter(cls, name, dict(entry.get("config") or {}), where)}


def _initializer_class(name):
    return initializers._CLASSES.get(name)


def _regularizer_class(name):
    return regularizers._ALIASES.get(name)


def _dtype_from_keras(value, where, integers=False):
    """A float dtype name (or, with ``integers``, an input's integer dtype: ids for an Embedding)."""
    if isinstance(value, dict) and str(value.get("class_name", "")).startswith("Quantized"):
        mode = (value.get("config") or {}).get("mode")
        raise KerasConfigError(f"{where}: Keras's quantized layers ({value.get('class_name')}, mode {mode!r}) are not "
                               f"read by fastmlp: save the float model in Keras, load it here and call "
                               f"model.quantize('int8')")
    if isinstance(value, dict):   # a DTypePolicy
        value = (value.get("config") or {}).get("name")
    if value is None or value in ("float32", "float64") or (integers and value in _INT_DTYPES):
        return value
    if value == "mixed_bfloat16" and not integers:   # bfloat16 inference (fastmlp.mixed_precision)
        return value
    raise KerasConfigError(f"{where}: the dtype (policy) {value!r} is not supported by fastmlp "
                           f"(float32, float64 or mixed_bfloat16"
                           f"{', or an integer type for an input' if integers else ''})")


def _layer_config_from_keras(class_name, cls, config, where):
    config = dict(config)
    for key, value in list(config.items()):
        if key == "dtype":
            config[key] = _dtype_from_keras(value, where, integers=class_name == "InputLayer")
        elif key == "axis" and class_name == "BatchNormalization" and isinstance(value, list) and len(value) == 1:
            config[key] = value[0]   # tf.keras 2.x writes BatchNormalization's axis as a list
        elif key.endswith("_initializer"):
            config[key] = _object(value, "initializer", _initializer_class, f"{where}, {key}")
        elif key.endswith("_regularizer"):
            config[key] = _object(value, "regularizer", _regularizer_class, f"{where}, {key}")
        elif key == "activation" and isinstance(value, dict):
            raise KerasConfigError(f"{where}: the activation {value.get('class_name')!r} "
                                   f"({value.get('config')!r:.60}) is a custom object, not supported by fastmlp")
        elif isinstance(value, dict) and value.get("class_name") == "__numpy__":   # an array in the config
            array = (value.get("config") or {}).get("value")
            if not isinstance(array, (list, int, float)) or isinstance(array, bool):
                raise KerasConfigError(f"{where}: cannot read the array {key}={value!r:.100}")
            config[key] = array
        elif isinstance(value, dict) and "class_name" in value:
            raise KerasConfigError(f"{where}: {key}={value.get('class_name')!r} is an object fastmlp does not "
                                   f"support")
    return _filter(cls, class_name, config, where)


def _tensor(history):
    return {"class_name": "__keras_tensor__", "config": {"keras_history": list(history[:3])}}


def _nodes_from_keras(nodes, name, merge):
    """Keras 3's inbound nodes as they are; tf.keras 2.x's ``[[[layer, node, tensor, kwargs], ...]]``
    as Keras 3's ``[{"args": [tensor or list], "kwargs": {}}]``."""
    if not isinstance(nodes, list):
        raise KerasConfigError(f"layer {name!r}: 'inbound_nodes' must be a list")
    out = []
    for node in nodes:
        if isinstance(node, dict):
            # Keras records the symbolic call's training=False, and a functional model overrides it
            # with fit's/predict's own mode when it runs: not an argument of the node
            kwargs = {k: v for k, v in (node.get("kwargs") or {}).items()
                      if v is not None and not (k == "training" and isinstance(v, bool))}
            if kwargs:
                raise KerasConfigError(f"layer {name!r}: the call arguments {sorted(kwargs)} are not supported "
                                       f"by fastmlp")
            out.append({"args": node.get("args"), "kwargs": {}})
        elif isinstance(node, list):   # tf.keras 2.x
            tensors = []
            for t in node:
                if not (isinstance(t, list) and len(t) >= 3):
                    raise KerasConfigError(f"layer {name!r}: cannot read the inbound node {node!r:.100}")
                if len(t) > 3 and any(v is not None for v in (t[3] or {}).values()):
                    raise KerasConfigError(f"layer {name!r}: the call arguments {sorted(t[3])} are not supported "
                                           f"by fastmlp")
                tensors.append(_tensor(t))
            out.append({"args": [tensors if merge or len(tensors) > 1 else tensors[0]], "kwargs": {}})
        else:
            raise KerasConfigError(f"layer {name!r}: cannot read the inbound node {node!r:.100}")
    return out


def _entry_from_keras(entry, where):
    """One layer (or nested model) entry of a Keras config as fastmlp's."""
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise KerasConfigError(f"{where}: a layer entry must be an object with a 'class_name'")
    class_name = entry["class_name"]
    config = entry.get("config")
    if not isinstance(config, dict):
        raise KerasConfigError(f"{where}: the {class_name} entry needs a 'config' object")
    name = entry.get("name", config.get("name"))
    where = f"layer {name!r} ({class_name})" if name else f"{where} ({class_name})"
    if class_name in ("Sequential", "Functional", "Model") and not _is_custom(entry):
        out = {"class_name": "Sequential" if class_name == "Sequential" else "Functional",
               "config": _model_config_from_keras(class_name, config, entry.get("build_config"))}
    else:
        cls = registry.get(class_name)
        if cls is None or _is_custom(entry):
            what = "a custom object" if _is_custom(entry) else "a Keras layer class fastmlp does not support"
            raise KerasConfigError(f"{_at(where, class_name)}: {what}; fastmlp supports "
                                   f"{sorted(registry.CLASSES) + ['Functional', 'Sequential']}")
        out = {"class_name": class_name, "config": _layer_config_from_keras(class_name, cls, config, where)}
    if "inbound_nodes" in entry:
        cls = registry.get(class_name)
        out["name"] = name
        out["inbound_nodes"] = _nodes_from_keras(entry["inbound_nodes"], name, bool(getattr(cls, "_takes_list", False)))
    return out


def _model_config_from_keras(class_name, config, build_config=None):
    layers = config.get("layers")
    if not isinstance(layers, list):
        raise KerasConfigError(f"the {class_name} config needs a 'layers' list")
    out = {"name": config.get("name"), "trainable": config.get("trainable", True),
           "layers": [_entry_from_keras(e, f"layer #{i}") for i, e in enumerate(layers)]}
    if class_name == "Sequential":
        first = out["layers"][0] if out["layers"] else None
        shape = config.get("build_input_shape") or (build_config or {}).get("input_shape")
        has_shape = first is not None and (first["class_name"] == "InputLayer" or any(
            k in first["config"] for k in ("batch_input_shape", "input_shape", "input_dim")))
        if not has_shape and isinstance(shape, list) and shape and not isinstance(shape[0], list):
            dtype = _dtype_from_keras(config.get("dtype"), "the model")
            out["layers"].insert(0, {"class_name": "InputLayer",
                                     "config": {"batch_shape": shape, "dtype": dtype or "float32"}})
    else:
        out["input_layers"] = config.get("input_layers")
        out["output_layers"] = config.get("output_layers")
        if any(isinstance(n, list) for e in layers if isinstance(e, dict) and isinstance(e.get("inbound_nodes"), list)
               for n in e["inbound_nodes"]):
            _renumber_tf2_nested_calls(out)
    return out


def _renumber_tf2_nested_calls(out):
    """tf.keras 2 numbers the calls of a nested model that has an InputLayer from 1 (its node 0
    links its own input to its output; Keras 3 and fastmlp number them from 0): where a nested
    model's references run 1..n for its n calls, they become 0..n-1.  (fastmlp's own legacy files
    number from 0 and keep their numbers.)"""
    calls = {e["name"]: len(e.get("inbound_nodes") or []) for e in out["layers"]
             if e["class_name"] in ("Sequential", "Functional") and e.get("name")}
    if not calls:
        return
    histories = []   # every [layer, node, tensor] of the config, to renumber in place
    for e in out["layers"]:
        for node in e.get("inbound_nodes") or []:
            arg = node["args"][0]
            histories += [t["config"]["keras_history"] for t in (arg if isinstance(arg, list) else [arg])
                          if isinstance(t, dict) and isinstance(t.get("config"), dict)]
    refs = out["output_layers"]
    if isinstance(refs, list):
        single = bool(refs) and isinstance(refs[0], str)
        out["output_layers"] = refs = [list(r) for r in ([refs] if single else refs)]
        histories += [r for r in refs if isinstance(r, list) and len(r) == 3]
        if single:
            out["output_layers"] = refs[0]
    for name, n in calls.items():
        mine = [h for h in histories if isinstance(h, list) and len(h) == 3 and h[0] == name
                and isinstance(h[1], int)]
        if mine and min(h[1] for h in mine) >= 1 and max(h[1] for h in mine) == n:
            for h in mine:
                h[1] -= 1


def model_from_keras_config(entry, build):
    """fastmlp's ``{"class_name", "config"}`` for a Keras model config entry; ``build`` makes the model."""
    if not isinstance(entry, dict) or entry.get("class_name") not in ("Sequential", "Functional", "Model"):
        name = entry.get("class_name") if isinstance(entry, dict) else None
        raise KerasConfigError(f"the file holds a {name!r}, not a Sequential or functional model (a subclassed "
                               f"Keras model has no declarative config fastmlp could rebuild)")
    if _is_custom(entry):
        raise KerasConfigError(f"the model class {entry['class_name']!r} ({entry.get('module')}) is a custom "
                               f"object, not supported by fastmlp")
    kind = "Sequential" if entry["class_name"] == "Sequential" else "Functional"
    config = entry.get("config")
    if not isinstance(config, dict):
        raise KerasConfigError("the model entry needs a 'config' object")
    return build(kind, _model_config_from_keras(entry["class_name"], config, entry.get("build_config")))


# ---------------------------------------------------------------------------- fastmlp -> Keras
def _keras_object(obj, module):
    if not isinstance(obj, dict):
        return obj
    return {"module": module, "class_name": obj["class_name"], "config": obj.get("config", {}),
            "registered_name": None}


def _layer_config_to_keras(config):
    out = {}
    for key, value in config.items():
        if key.endswith("_initializer"):
            value = _keras_object(value, "keras.initializers")
        elif key.endswith("_regularizer"):
            value = _keras_object(value, "keras.regularizers")
        out[key] = value
    return out


def _entry_to_keras(entry, layer):
    class_name = entry["class_name"]
    if class_name in ("Sequential", "Functional"):
        out = {"module": "keras" if class_name == "Sequential" else "keras.src.models.functional",
               "class_name": class_name, "config": _model_config_to_keras(class_name, entry["config"], layer),
               "registered_name": None if class_name == "Sequential" else "Functional"}
    else:
        out = {"module": "keras.layers", "class_name": class_name,
               "config": _layer_config_to_keras(entry["config"]), "registered_name": None}
    shape = getattr(layer, "_built_shape", None)
    if layer is not None and class_name != "InputLayer" and shape is not None:
        out["build_config"] = {"input_shape": [list(s) for s in shape] if getattr(layer, "_takes_list", False)
                               else list(shape)}
    if "inbound_nodes" in entry:
        out["name"] = entry["name"]
        out["inbound_nodes"] = entry["inbound_nodes"]
    return out


def _model_config_to_keras(class_name, config, model):
    config = dict(config)
    layers = list(model.layers) if model is not None else []
    entries = config["layers"]
    if class_name == "Sequential" and len(entries) == len(layers) + 1:
        layers = [None] + layers   # the InputLayer entry
    config["layers"] = [_entry_to_keras(e, layers[i] if i < len(layers) else None) for i, e in enumerate(entries)]
    if class_name == "Sequential" and model is not None and model.built:
        config["build_input_shape"] = [None] + list(model._plan.input_shapes[0])
    return config


def model_to_keras_config(model):
    """The Keras 3 ``config.json`` entry of ``model`` (without its compile config)."""
    class_name = "Sequential" if type(model).__name__ == "Sequential" else "Functional"
    entry = _entry_to_keras({"class_name": class_name, "config": model.get_config()}, model)
    if model.built:
        shapes = [[None] + list(s) for s in model._plan.input_shapes]
        entry["build_config"] = {"input_shape": shapes[0] if len(shapes) == 1 else shapes}
    return entry


# ---------------------------------------------------------------------------- compile configs
def _optimizer_from_keras(entry):
    if isinstance(entry, str):
        return optimizers.get(entry)
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise KerasConfigError(f"cannot read the optimizer {entry!r:.100}")
    name = entry["class_name"]
    if name.startswith("Custom>") and name[7:].lower() in optimizers._ALIASES:
        name = name[7:]   # tf.keras 2.11+ names its own optimizers so in legacy HDF5 files
    cls = optimizers._ALIASES.get(name.lower())
    if cls is None or _is_custom(entry):
        raise KerasConfigError(f"the optimizer {name!r} is not supported by fastmlp; it has "
                               f"{sorted(c.__name__ for c in set(optimizers._ALIASES.values()))}")
    config = _filter(cls, name, dict(entry.get("config") or {}), f"optimizer {name!r}")
    lr = config.get("learning_rate")
    if isinstance(lr, dict):
        config["learning_rate"] = schedules.deserialize(
            _object(lr, "learning-rate schedule", schedules._CLASSES.get, f"optimizer {name!r}"))
    return cls.from_config(config)


def _function_name(entry, family, names):
    """The name of a Keras built-in function in a compile config (``{"class_name": "function",
    "config": "binary_accuracy", ...}``, as Keras serializes ``metrics=[keras.metrics.binary_accuracy]``),
    which fastmlp resolves as that name; None when ``entry`` is no function entry."""
    if not (isinstance(entry, dict) and entry.get("class_name") == "function"):
        return None
    name = entry.get("config")
    if family == "metric" and isinstance(name, str) and name not in names:
        fn = get_registered_object(entry.get("registered_name") if entry.get("registered_name") not in
                                   (None, "function") else name)
        if callable(fn):   # a user's function, known through custom_objects or registration (as in Keras)
            return fn
    if not isinstance(name, str) or name not in names:
        raise KerasConfigError(f"the compile config: the {family} function {name!r:.60} is not one of Keras's "
                               f"built-in {family} functions fastmlp implements" +
                               (f" (a function of yours: load_model(..., custom_objects={{{name!r}: function}}))"
                                if family == "metric" else " (a custom function?)"))
    return name


def _loss_from_keras(entry):
    if entry is None or isinstance(entry, str):
        return entry
    name = _function_name(entry, "loss", losses.ALL_LOSSES)
    if name is not None:
        return name
    if isinstance(entry, dict) and isinstance(entry.get("config"), dict) and "fn" in entry["config"]:
        # tf.keras 2 names the function its loss class wraps: the class's own, for a built-in loss
        entry = {**entry, "config": dict(entry["config"])}
        fn, cls = entry["config"].pop("fn"), losses._CLASSES.get(entry.get("class_name"))
        if entry["config"].get("reduction") == "auto":   # tf.keras 2's default: the batch mean in fit
            entry["config"]["reduction"] = "sum_over_batch_size"
        if cls is None or not isinstance(fn, str) or losses.ALL_LOSSES.get(fn) is not cls:
            raise KerasConfigError(f"the compile config: the loss {entry.get('class_name')!r} wraps the function "
                                   f"{fn!r:.60}, which is not the built-in one fastmlp runs for that class")
    obj = _object(entry, "loss", losses._CLASSES.get, "the compile config")
    return losses.deserialize(obj)


def _metric_from_keras(entry):
    if entry is None or isinstance(entry, str):   # (None: tf.keras 2's place of an output without metrics)
        return entry
    if isinstance(entry, list):
        return [_metric_from_keras(m) for m in entry]
    name = _function_name(entry, "metric", metrics.ALL_METRICS)
    if name is not None:
        return name
    wrapped = _wrapped_function_metric(entry)
    if wrapped is not None:
        return wrapped
    obj = _object(entry, "metric", metrics._CLASSES.get, "the compile config")
    return metrics._CLASSES[obj["class_name"]].from_config(obj["config"])


def _wrapped_function_metric(entry):
    """tf.keras 2.x writes ``metrics=["accuracy"]`` as a MeanMetricWrapper around a built-in
    function it names (``{"name": "accuracy", "fn": "sparse_categorical_accuracy"}``): the metric
    class fastmlp runs for that function, under the entry's name.  Keras 3 serializes the function
    (``{"class_name": "function", "config": "my_mae"}``): a user's function, found in
    ``custom_objects`` or the registered objects, is wrapped again.  None for any other entry."""
    if not (isinstance(entry, dict) and entry.get("class_name") == "MeanMetricWrapper"):
        return None
    config = entry.get("config")
    fn = config.get("fn") if isinstance(config, dict) else None
    if isinstance(fn, dict) and fn.get("class_name") == "function":   # Keras 3: a function serialized
        fn = _function_name(fn, "metric", metrics.ALL_METRICS)
    elif isinstance(fn, str) and "." in fn:   # fastmlp before 2026-12: "module.function"
        fn = get_registered_object(fn.rsplit(".", 1)[-1])
    if callable(fn):   # a user's function, found in custom_objects or registered objects
        extra = {k: v for k, v in config.items() if k not in ("fn", "name", "dtype")}
        return metrics.MeanMetricWrapper(fn, name=config.get("name"), **extra)
    by_name = {f.__name__: cls for f, cls in metrics._FUNCTION_CLASSES.items()}
    if not isinstance(fn, str) or fn not in by_name:
        return None
    return by_name[fn](name=config.get("name") or fn)


def _structure(value, fn):
    if isinstance(value, dict) and "class_name" not in value:
        return {k: fn(v) for k, v in value.items()}
    if isinstance(value, list):
        return [fn(v) for v in value]
    return fn(value)


def compile_args_from_keras(cc):
    """``compile`` keyword arguments from a Keras compile config (``config.json``'s ``compile_config``, or
    a legacy ``training_config`` with ``optimizer_config``)."""
    if not isinstance(cc, dict):
        raise KerasConfigError("the compile config must be an object")
    opt = cc.get("optimizer", cc.get("optimizer_config"))
    if opt is None:   # (compile's default; Keras 3.15 leaves the optimizer out of saves after an .h5 save)
        opt = "rmsprop"
    args = {"optimizer": _optimizer_from_keras(opt),
            "loss": _structure(cc.get("loss"), _loss_from_keras),
            "metrics": _structure(cc.get("metrics") or [], _metric_from_keras)}
    if cc.get("weighted_metrics"):
        args["weighted_metrics"] = _structure(cc["weighted_metrics"], _metric_from_keras)
    if cc.get("loss_weights") is not None:
        args["loss_weights"] = cc["loss_weights"]
    return args


def compile_config_to_keras(model):
    """The Keras 3 compile config of a compiled fastmlp model."""
    cc = model.get_compile_config()
    opt = cc["optimizer"]
    config = dict(opt["config"])
    if isinstance(config.get("learning_rate"), dict):
        config["learning_rate"] = _keras_object(config["learning_rate"], "keras.optimizers.schedules")
    config.setdefault("use_ema", False)

    def loss(v):
        return _keras_object(v, "keras.losses")

    def metric(m):
        if isinstance(m, list):
            return [metric(x) for x in m]
        out = _keras_object(m, "keras.metrics")
        fn = (out.get("config") or {}).get("fn") if isinstance(out, dict) else None
        if isinstance(fn, str) and out.get("class_name") == "MeanMetricWrapper":
            # a Python function: Keras serializes it by name, found again in custom_objects at load
            name = fn.rsplit(".", 1)[-1]
            fn = {"module": "builtins", "class_name": "function", "config": name, "registered_name": "function"}
            if out["config"].get("name") == name and set(out["config"]) <= {"name", "dtype", "fn"}:
                return fn   # (compile(metrics=[fn]), as Keras writes it; Keras cannot read a wrapper named so)
            out = {**out, "config": {**out["config"], "fn": fn}}
        return out
    return {"optimizer": {"module": "keras.optimizers", "class_name": opt["class_name"], "config": config,
                          "registered_name": None},
            "loss": _structure(cc["loss"], loss),
            "loss_weights": cc.get("loss_weights"),
            "metrics": _structure(cc["metrics"], metric),
            "weighted_metrics": _structure(cc["weighted_metrics"], metric) if cc.get("weighted_metrics") else None,
            "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}
