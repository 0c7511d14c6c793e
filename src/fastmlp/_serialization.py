"""``serialize_keras_object`` / ``deserialize_keras_object`` and the custom-object
registry, with Keras 3's layout and names (``keras.saving``, ``keras.utils``).

An object with ``get_config`` serializes to
``{"module", "class_name", "config", "registered_name"}``; a function to
``{"module": "builtins", "class_name": "function", "config": <its name>,
"registered_name": "function"}``; a NumPy array to ``{"class_name": "__numpy__",
"config": {"value", "dtype"}}``; plain data (numbers, strings, lists, dicts) as it
is.  Deserializing looks names up in ``custom_objects``, then the objects registered
with ``register_keras_serializable`` (or put in ``get_custom_objects()``), then
fastmlp's own classes and functions.  No code is ever deserialized: a config names
a class or a function that exists already.
"""
import importlib
import inspect
import threading

import numpy as np

__all__ = ["serialize_keras_object", "deserialize_keras_object", "get_custom_objects",
           "register_keras_serializable", "get_registered_name", "get_registered_object",
           "CustomObjectScope", "custom_object_scope"]

_GLOBAL_CUSTOM_OBJECTS = {}     # registered name -> object
_GLOBAL_CUSTOM_NAMES = {}       # object -> registered name
_SCOPES = threading.local()     # stack of dicts from CustomObjectScope


def _scope_objects():
    merged = {}
    for d in getattr(_SCOPES, "stack", []):
        merged.update(d)
    return merged


def get_custom_objects():
    """The global dict of custom objects (name -> object); entries added to it are found
    by ``deserialize_keras_object`` and model loading."""
    return _GLOBAL_CUSTOM_OBJECTS


def register_keras_serializable(package="Custom", name=None):
    """Decorator registering a class or a function as ``"<package>><name>"`` (the
    name defaults to ``__name__``), so that configs naming it can be deserialized."""
    if not isinstance(package, str) or not package:
        raise ValueError(f"`package` must be a non-empty string. Received: package={package!r}")

    def decorator(arg):
        class_name = name if name is not None else getattr(arg, "__name__", None)
        if not isinstance(class_name, str):
            raise ValueError(f"Cannot register {arg!r}: it has no `__name__`; pass `name=`")
        if inspect.isclass(arg) and not hasattr(arg, "get_config"):
            raise ValueError("Cannot register a class that does not have a get_config() method.")
        registered_name = package + ">" + class_name
        _GLOBAL_CUSTOM_OBJECTS[registered_name] = arg
        _GLOBAL_CUSTOM_NAMES[arg] = registered_name
        return arg
    return decorator


def get_registered_name(obj):
    """The name ``obj`` was registered under, else its ``__name__``."""
    try:
        if obj in _GLOBAL_CUSTOM_NAMES:
            return _GLOBAL_CUSTOM_NAMES[obj]
    except TypeError:   # unhashable
        pass
    return obj.__name__


def get_registered_object(name, custom_objects=None, module_objects=None):
    """The object registered (or in scope, or in ``custom_objects``/``module_objects``)
    under ``name``; None if there is none."""
    scoped = _scope_objects()
    if name in scoped:
        return scoped[name]
    if name in _GLOBAL_CUSTOM_OBJECTS:
        return _GLOBAL_CUSTOM_OBJECTS[name]
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    if module_objects and name in module_objects:
        return module_objects[name]
    return None


class CustomObjectScope:
    """``with CustomObjectScope({"MyLayer": MyLayer}):`` makes those names known to
    deserialization inside the block."""

    def __init__(self, custom_objects):
        if not isinstance(custom_objects, dict):
            raise TypeError(f"`custom_objects` must be a dict. Received: {custom_objects!r}")
        self.custom_objects = custom_objects

    def __enter__(self):
        if not hasattr(_SCOPES, "stack"):
            _SCOPES.stack = []
        _SCOPES.stack.append(self.custom_objects)
        return self

    def __exit__(self, *exc):
        _SCOPES.stack.pop()


custom_object_scope = CustomObjectScope


# ---------------------------------------------------------------------- fastmlp's own objects
# public module name -> (the module, a dict of its class/function names), imported lazily
_MODULES = ("layers", "losses", "metrics", "optimizers", "initializers", "regularizers", "activations",
            "callbacks", "models")


def _module_table(short):
    mod = importlib.import_module("fastmlp." + short)
    table = {}
    if short == "layers":
        registry = importlib.import_module("fastmlp.layers.registry")   # by name, like the modules above
        table.update(registry.CLASSES)
        table.update(registry.MODELS)
    elif short == "models":
        registry = importlib.import_module("fastmlp.layers.registry")
        table.update(registry.MODELS)
    for n in getattr(mod, "__all__", None) or dir(mod):
        obj = getattr(mod, n, None)
        if n.startswith("_") or obj is None:
            continue
        if inspect.isclass(obj) or inspect.isfunction(obj):
            table.setdefault(n, obj)
    for attr in ("ALL_LOSSES", "ALL_ACTIVATIONS", "ALL_METRICS", "_ALIASES", "_CLASSES"):
        for k, v in (getattr(mod, attr, None) or {}).items():
            if inspect.isclass(v) or short == "activations":
                table.setdefault(k, v)
    return table


def _function(short, name):
    """The public function ``fastmlp.<short>.<name>`` (``relu``, ``mean_squared_error``), or None."""
    fn = getattr(importlib.import_module("fastmlp." + short), name, None)
    return fn if inspect.isfunction(fn) and not name.startswith("_") else None


def _public_module(obj):
    """``fastmlp.<package>`` holding the object's class or function (Keras: "keras.layers")."""
    module = getattr(obj, "__module__", "") or ""
    parts = module.split(".")
    if parts[0] == "fastmlp" and len(parts) > 1:
        if parts[1] == "models":
            return "fastmlp"
        return "fastmlp." + parts[1].lstrip("_") if parts[1] not in ("_callback", "_model_checkpoint") \
            else "fastmlp.callbacks"
    return module


def serialize_keras_object(obj):
    """A JSON-friendly description of ``obj`` in Keras 3's layout (see the module docstring)."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, (np.ndarray, np.generic)) or type(obj).__name__ == "Variable" and hasattr(obj, "numpy"):
        arr = np.asarray(obj)
        if arr.ndim == 0:
            return arr.item()
        return {"class_name": "__numpy__", "config": {"value": arr.tolist(), "dtype": str(arr.dtype)}}
    if isinstance(obj, bytes):
        return {"class_name": "__bytes__", "config": {"value": obj.decode("utf-8")}}
    if isinstance(obj, (list, tuple)):
        out = [serialize_keras_object(x) for x in obj]
        return tuple(out) if isinstance(obj, tuple) else out
    if isinstance(obj, dict):
        return {k: serialize_keras_object(v) for k, v in obj.items()}
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        if obj.__name__ == "<lambda>":
            raise ValueError("Lambda functions cannot be serialized: give the function a name and register "
                             "it with `register_keras_serializable`")
        return {"module": "builtins", "class_name": "function", "config": get_registered_name(obj),
                "registered_name": "function"}
    if inspect.isclass(obj):
        raise TypeError(f"Cannot serialize the class {obj.__name__}: serialize an instance of it")
    if not hasattr(obj, "get_config"):
        raise TypeError(f"Cannot serialize object {obj!r} of type {type(obj)}. To be serializable, a class "
                        f"must implement the `get_config()` method.")
    registry = importlib.import_module("fastmlp.layers.registry")
    cls = type(obj)
    class_name = cls.__name__
    if getattr(obj, "_is_model", False):
        class_name = "Sequential" if registry.MODELS.get("Sequential") is not None and \
            isinstance(obj, registry.MODELS["Sequential"]) else "Functional"
    registered = _GLOBAL_CUSTOM_NAMES.get(cls)
    config = obj.get_config()
    if not isinstance(config, dict):
        raise TypeError(f"{class_name}.get_config() must return a dict; got {type(config).__name__}")
    return {"module": _public_module(cls), "class_name": class_name,
            "config": serialize_keras_object(config) if registered else _full_layout(config),
            "registered_name": registered}


def _full_layout(value):
    """Nested objects of a config in Keras 3's layout: fastmlp's configs (and model files)
    hold them as ``{"class_name", "config"}``; add ``module`` and ``registered_name``."""
    if isinstance(value, list):
        return [_full_layout(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_full_layout(v) for v in value)
    if not isinstance(value, dict):
        return value
    out = {k: _full_layout(v) for k, v in value.items()}
    if set(value) == {"class_name", "config"} and isinstance(value["class_name"], str) \
            and not value["class_name"].startswith("__"):
        found = _lookup(value["class_name"], {})
        if found is not None:
            registered = _GLOBAL_CUSTOM_NAMES.get(found) if inspect.isclass(found) else None
            module = "fastmlp" if value["class_name"] in ("Sequential", "Functional") else _public_module(found)
            if module == "fastmlp.initializers" and inspect.isclass(found) and isinstance(out["config"], dict):
                out["config"] = found.from_config(dict(out["config"])).get_config()   # every key, as Keras
            out = {"module": module, "class_name": value["class_name"], "config": out["config"],
                   "registered_name": registered}
    return out


def _lookup(name, custom_objects, module_hint=None, registered_name=None):
    for key in (registered_name, name):
        if key is None:
            continue
        obj = get_registered_object(key, custom_objects)
        if obj is not None:
            return obj
    shorts = list(_MODULES)
    if isinstance(module_hint, str):
        tail = module_hint.split(".")[-1]
        if tail in shorts:
            shorts.remove(tail)
            shorts.insert(0, tail)
        if module_hint in ("keras", "fastmlp"):
            shorts.remove("models")
            shorts.insert(0, "models")
    for short in shorts:
        table = _module_table(short)
        if name in table:
            return table[name]
    return None


def deserialize_keras_object(config, custom_objects=None, safe_mode=True, **kwargs):
    """The object ``config`` describes (the inverse of ``serialize_keras_object``).

    ``safe_mode`` is accepted for Keras compatibility; fastmlp never deserializes
    code (lambdas, bytecode), whatever its value."""
    module_objects = kwargs.pop("module_objects", None)
    printable_module_name = kwargs.pop("printable_module_name", "object")
    if kwargs:
        raise TypeError(f"Unrecognized keyword argument(s) passed to deserialize_keras_object: {sorted(kwargs)}")
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError(f"`custom_objects` must be a dict. Received: custom_objects={custom_objects!r}")
    objects = {**(module_objects or {}), **(custom_objects or {})}
    if config is None or isinstance(config, (bool, int, float)):
        return config
    if isinstance(config, str):
        found = get_registered_object(config, objects)
        return found if found is not None else config
    if isinstance(config, (list, tuple)):
        return [deserialize_keras_object(x, custom_objects, safe_mode, module_objects=module_objects)
                for x in config]
    if not isinstance(config, dict):
        raise TypeError(f"Could not parse config: {config!r}")
    if "class_name" not in config or "config" not in config:
        return {k: deserialize_keras_object(v, custom_objects, safe_mode, module_objects=module_objects)
                for k, v in config.items()}
    class_name, inner = config["class_name"], config["config"]
    if class_name == "__numpy__":
        return np.array(inner["value"], dtype=inner["dtype"])
    if class_name == "__bytes__":
        return inner["value"].encode("utf-8")
    if class_name == "__lambda__":
        raise ValueError("The config holds a Python lambda: fastmlp never deserializes code. Register a named "
                         "function with `register_keras_serializable` instead.")
    if class_name == "function":
        if not isinstance(inner, str):
            raise ValueError(f"A function's config must be its name; got {inner!r}")
        module = config.get("module")
        shorts = ["activations", "losses"]
        if isinstance(module, str) and module.split(".")[-1] == "losses":
            shorts.reverse()
        fn = get_registered_object(inner, objects)
        for short in shorts:
            if fn is None:
                fn = _function(short, inner)
        if fn is None:
            raise ValueError(f"Unknown function: {inner!r}. Register it with "
                             f"`fastmlp.saving.register_keras_serializable()` or pass it in `custom_objects`")
        return fn
    if not isinstance(class_name, str):
        raise ValueError(f"`class_name` must be a string; got {class_name!r}")
    registered_name = config.get("registered_name")
    registered_name = registered_name if isinstance(registered_name, str) and ">" in registered_name else None
    cls = _lookup(class_name, objects, config.get("module"), registered_name)
    if cls is None:
        raise TypeError(f"Could not locate {printable_module_name} '{class_name}'. Make sure custom classes and "
                        f"functions are decorated with `@fastmlp.saving.register_keras_serializable()` or passed "
                        f"in `custom_objects`. Full config: {config!r}")
    if not inspect.isclass(cls):
        return cls
    if not hasattr(cls, "from_config"):
        raise TypeError(f"{class_name} has no `from_config` class method, so it cannot be deserialized")
    if not isinstance(inner, dict):
        raise ValueError(f"The config of {class_name} must be a dict; got {inner!r}")
    if registered_name:
        inner = deserialize_keras_object(inner, custom_objects, safe_mode, module_objects=module_objects)
    if "custom_objects" in inspect.signature(cls.from_config).parameters:
        return cls.from_config(dict(inner), custom_objects=custom_objects)
    with CustomObjectScope(custom_objects or {}):
        return cls.from_config(dict(inner))
