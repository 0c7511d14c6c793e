"""Input adaptation: what users pass to ``fit``/``evaluate``/``predict`` (an
array, a list or a dict per model input; targets likewise per output; sample
and class weights) turned into the contiguous 2-D arrays the engine reads."""
import numpy as np

from .. import _engine
from ..layers.embedding import check_ids as _check_ids

__all__ = ["model_inputs", "model_targets", "sample_weights", "n_samples"]

_CLASS_WEIGHT_MAX = 1 << 20   # the largest class index a class_weight table may name


def _per_name(struct, names, what, kind):
    """One entry per name from a dict (by key), a list/tuple (by position) or, for
    one name, a single value."""
    if isinstance(struct, dict):
        missing = [k for k in names if k not in struct]
        if missing:
            raise ValueError(f'Missing data for {kind} "{missing[0]}". You passed a data dictionary with keys '
                             f"{list(struct)}. Expected the following keys: {list(names)}")
        return [struct[k] for k in names]
    if isinstance(struct, (list, tuple)) and len(names) > 1:
        if len(struct) != len(names):
            raise ValueError(f"The model expects {len(names)} {kind}s ({list(names)}), but `{what}` holds "
                             f"{len(struct)} arrays")
        return list(struct)
    if len(names) > 1:
        raise ValueError(f"The model has {len(names)} {kind}s {list(names)}: pass `{what}` as a list or a dict "
                         f"keyed by those names")
    if isinstance(struct, (list, tuple)) and len(struct) == 1 and hasattr(struct[0], "shape"):
        return [struct[0]]
    return [struct]


def _input_array(model, k, x, what):
    if x is None:
        raise ValueError(f"`{what}` must be provided; got None")
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"Expected numeric input data for `{what}`; got an array of dtype "
                        f"{arr.dtype} (convert strings/objects to numbers first)")
    shape = model._plan.input_shapes[k]
    if arr.ndim == 1:
        if shape == (1,):
            arr = arr.reshape(-1, 1)
        else:
            raise ValueError(f"`{what}` must be 2-D (samples, features); got a 1-D array of shape "
                             f"{arr.shape}. Use x.reshape(1, -1) for one sample or "
                             f"x.reshape(-1, 1) for one feature.")
    if arr.shape[1:] != shape:
        if arr.ndim > 2 and len(shape) == 1:
            raise ValueError(f"A dense stack expects 2-D input (samples, features); `{what}` has shape "
                             f"{arr.shape}. Add a Flatten() layer first, or flatten the data, e.g. "
                             f"x.reshape(len(x), -1).")
        first = model._input_consumer_name(k)
        expected = (f"axis -1 of input shape to have value {shape[0]}" if len(shape) == 1 and arr.ndim == 2
                    else f"input of shape {(None,) + shape}")
        raise ValueError(f"Input {k} of layer {first!r} is incompatible with the layer: expected {expected}, "
                         f"but received input with shape {arr.shape}")
    if arr.ndim > 2:
        arr = arr.reshape(len(arr), -1)
    return np.ascontiguousarray(arr, dtype=model._dtype)


def model_inputs(model, x, what="x"):
    """One C-contiguous (rows, features) array of the model's dtype per model input."""
    if x is None:
        raise ValueError(f"`{what}` must be provided; got None")
    if isinstance(x, dict) and getattr(model, "_single_input_only", False):
        raise TypeError(f"fastmlp {type(model).__name__} models take a single input array, not a dict")
    xs = _per_name(x, model.input_names, what, "input")
    arrays = [_input_array(model, k, v, what) for k, v in enumerate(xs)]
    check_ids(model._plan, arrays)
    n = len(arrays[0])
    for name, a in zip(model.input_names, arrays):
        if len(a) != n:
            raise ValueError(f"All inputs must have the same number of samples; input {name!r} has {len(a)}, "
                             f"the first has {n}")
    return arrays


def check_ids(plan, arrays):
    """ValueError unless every model input read by an Embedding holds its ids (whole
    numbers in [0, input_dim)), checked on the arrays the engine will read."""
    for k, input_dim, name in plan.id_checks:
        _check_ids(arrays[k], input_dim, name)


def n_samples(x):
    """Samples in ``x`` (an array, list or dict of arrays), for validation_split."""
    if isinstance(x, dict):
        x = next(iter(x.values()))
    elif isinstance(x, (list, tuple)) and x and hasattr(x[0], "shape"):
        x = x[0]
    return len(np.asarray(x)) if not hasattr(x, "shape") else x.shape[0]


def take(x, sl):
    """Rows ``sl`` of every array in ``x`` (same structure)."""
    if isinstance(x, dict):
        return {k: np.asarray(v)[sl] for k, v in x.items()}
    if isinstance(x, (list, tuple)) and x and hasattr(x[0], "shape") and not isinstance(x, np.ndarray):
        return [np.asarray(v)[sl] for v in x]
    return np.asarray(x)[sl]


def model_targets(model, y, n):
    """(Y, labels) per output: dense targets or sparse labels, as each output's loss wants."""
    if y is None:
        raise ValueError("Targets `y` must be provided for training and evaluation")
    if isinstance(y, dict):
        extra = [k for k in y if k not in model.output_names]
        if extra and len(model.output_names) > 0:
            raise ValueError(f"Unknown output name(s) {extra} in the targets; the model's outputs are "
                             f"{model.output_names}")
    ys = _per_name(y, model.output_names, "y", "output")
    Ys, labels = [], []
    for k, (yk, loss) in enumerate(zip(ys, model._losses)):
        arr = np.asarray(yk)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"Expected numeric targets `y`; got an array of dtype {arr.dtype}")
        if arr.ndim == 0 or len(arr) != n:
            raise ValueError(f"x and y must have the same number of samples; got x with {n} and "
                             f"y with {0 if arr.ndim == 0 else len(arr)} rows"
                             + (f" (output {model.output_names[k]!r})" if len(ys) > 1 else ""))
        Y, lab = loss.prepare_targets(arr, model._plan.output_widths[k], model._dtype)
        Ys.append(Y)
        labels.append(lab)
    return Ys, labels


def sample_weights(model, n, sample_weight, class_weight, Ys, labels):
    """The per-row weights (None: all 1) from ``sample_weight`` and ``class_weight``."""
    w = None
    if sample_weight is not None:
        if isinstance(sample_weight, dict):
            raise ValueError("fastmlp takes one `sample_weight` array for all outputs; a dict per output is "
                             "not supported")
        sw = np.asarray(sample_weight)
        if sw.dtype.kind not in "biuf":
            raise TypeError(f"`sample_weight` must be numeric; got dtype {sw.dtype}")
        if sw.ndim == 2 and sw.shape[1] == 1:
            sw = sw[:, 0]
        if sw.shape != (n,):
            raise ValueError(f"`sample_weight` must have shape ({n},); got {sw.shape}")
        if not np.isfinite(sw).all() or (sw < 0).any():
            raise ValueError("`sample_weight` must be finite and non-negative")
        w = sw.astype(np.float64)
    if class_weight is not None:
        if len(Ys) > 1:
            raise ValueError("`class_weight` is only supported for Models with a single output.")
        if not isinstance(class_weight, dict):
            raise TypeError(f"`class_weight` must be a dict mapping class index to weight; got "
                            f"{type(class_weight).__name__}")
        Y, lab = Ys[0], labels[0]
        if lab is not None:
            cls = lab
        elif Y.shape[1] > 1:
            cls = np.argmax(Y, axis=1)
        else:
            cls = np.round(Y[:, 0]).astype(np.int64)
        for k, v in class_weight.items():
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < _CLASS_WEIGHT_MAX:
                raise ValueError(f"`class_weight` keys must be class indices in [0, {_CLASS_WEIGHT_MAX}); got {k!r}")
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                    or not np.isfinite(v) or v < 0:
                raise ValueError(f"`class_weight` values must be finite and non-negative; got "
                                 f"{k!r}: {v!r}")
        cw = np.ones(len(cls))
        for k, v in class_weight.items():
            cw[cls == int(k)] = float(v)
        w = cw if w is None else w * cw
    if w is not None:
        w = np.ascontiguousarray(w, dtype=model._dtype)
        if not _engine.all_finite(w):
            raise ValueError(f"`sample_weight` times `class_weight` overflows {model._dtype}")
    return w


def check_finite(arrays, what):
    for a in arrays:
        if a.size and not _engine.all_finite(a):
            raise ValueError(f"`{what}` contains NaN or infinity; clean the data before training")
