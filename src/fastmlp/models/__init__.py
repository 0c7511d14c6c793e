"""Models: ``Model`` (functional), ``Sequential``, and loading.

``functional`` holds the graph structure, ``sequential`` the stack built on it,
``training`` the training loop and inference, ``data`` the input adaptation and
``plan`` the typed plan shared with the engine and the file format."""
from ..layers import registry as _registry
from fastmlp.models.functional import Model, model_from_json
from fastmlp.models.sequential import Sequential

_registry.register_model("Functional", Model)
_registry.register_model("Sequential", Sequential)

__all__ = ["Model", "Sequential", "load_model", "from_bytes", "model_from_json", "save_model", "clone_model"]


def clone_model(model, input_tensors=None, clone_function=None, call_function=None, recursive=False, **kwargs):
    """A new model of the same architecture with fresh weights (its layers' initializers run
    again), as ``keras.models.clone_model``; it is not compiled."""
    unsupported = {"input_tensors": input_tensors, "clone_function": clone_function,
                   "call_function": call_function, **kwargs}
    named = sorted(k for k, v in unsupported.items() if v is not None)
    if named or recursive:
        raise ValueError(f"clone_model: {named + (['recursive'] if recursive else [])} are not supported by "
                         f"fastmlp; it clones the architecture with fresh weights")
    if not isinstance(model, Model):
        raise TypeError(f"clone_model expects a fastmlp model; got {type(model).__name__}")
    return type(model).from_config(model.get_config())


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True, mmap=False, verify=True):
    """Load a model saved by ``Model.save`` (``keras.models.load_model``'s arguments; the
    format is detected by its name and magic)."""
    from ..saving import reader
    return reader.load_model(filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode,
                             mmap=mmap, verify=verify)


def from_bytes(data, compile=True, verify=True):
    """A model from the bytes of a model file (``Model.to_bytes``)."""
    from ..saving import reader
    return reader.model_from_bytes(data, compile=compile, verify=verify)


def save_model(model, filepath, overwrite=True, zipped=None, **kwargs):
    """``keras.models.save_model``: ``model.save(filepath, ...)``."""
    return model.save(filepath, overwrite=overwrite, zipped=zipped, **kwargs)
