"""Prediction on Dask collections: the model travels once per worker.

    import fastmlp.dask
    labels = fastmlp.dask.predict(model, X_dask)            # a Dask array, computed lazily
    proba = fastmlp.dask.predict(clf, ddf, method="predict_proba")

``model`` is a fastmlp model or a fitted ``fastmlp.sklearn`` estimator; the
collection a 2-D Dask array (any row chunks; column chunks are joined) or a
Dask DataFrame of numeric columns.  The model's bytes are one key of the task
graph, so the scheduler sends them to each worker once, and each worker
deserializes them once (a cache keyed by their digest) however many blocks it
scores.  Empty and one-row partitions are fine.

Training on Dask needs no code here: fastmlp's scikit-learn estimators pickle
through the compact format, so ``joblib.parallel_backend("dask")`` searches and
``dask_ml.wrappers.Incremental`` / ``ParallelPostFit`` use them as they are.

``dask[array,dataframe]`` and ``distributed`` are an optional extra:
``pip install fastmlp[dask]``.
"""
import hashlib
import pickle
import threading

import numpy as np

try:
    import dask
    import dask.array as da
except ImportError as exc:   # pragma: no cover - exercised where dask is absent
    raise ImportError("fastmlp.dask needs dask: pip install fastmlp[dask]") from exc

from . import _threadpool
from .models import Model

__all__ = ["predict"]

_threadpool.register()

_CACHE = {}            # digest -> the deserialized model, per worker process
_CACHE_LOCK = threading.Lock()
_LOADS = [0]           # how many times this process deserialized a model (tests read it)
_METHODS = ("predict", "predict_proba", "predict_log_proba", "decision_function")


def _payload(model):
    if isinstance(model, Model):
        if not model.built:
            raise ValueError("The model is not built: build, train or load it before predicting")
        return b"F" + model.to_bytes()
    if not hasattr(model, "predict"):
        raise TypeError(f"`model` must be a fastmlp Model or a fitted fastmlp.sklearn estimator; got "
                        f"{type(model).__name__}")
    return b"P" + pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)


def _load(payload, digest):
    with _CACHE_LOCK:
        model = _CACHE.get(digest)
        if model is None:
            if payload[:1] == b"F":
                from .saving.reader import model_from_bytes
                model = model_from_bytes(payload[1:])
            else:
                model = pickle.loads(payload[1:])
            _CACHE.clear()    # one model at a time per worker: memory stays bounded
            _CACHE[digest] = model
            _LOADS[0] += 1
    return model


def _score(payload, digest, method, block, n_out, dtype, names=None):
    block = np.asarray(block)
    if len(block) == 0:
        return np.empty((0,) + n_out, dtype=dtype)
    model = _load(payload, digest)
    if isinstance(model, Model):
        out = model.predict(np.ascontiguousarray(block, dtype=model.dtype), verbose=0)
    else:
        if names is not None:   # the estimator was fitted on a frame: score a frame with its column names
            import pandas as pd
            block = pd.DataFrame(block, columns=names)
        out = getattr(model, method)(block)
    return np.asarray(out).astype(dtype, copy=False).reshape((len(block),) + n_out)


def _score_block(block, payload, digest, method, n_out, dtype, names):
    return _score(payload, digest, method, block, n_out, dtype, names)


def _output_spec(model, method, n_features, names=None):
    """The per-row output shape and dtype, from one row scored locally."""
    probe = np.zeros((1, n_features), dtype=np.float32 if isinstance(model, Model) else np.float64)
    if isinstance(model, Model):
        out = np.asarray(model.predict(probe.astype(model.dtype), verbose=0))
    else:
        if names is not None:
            import pandas as pd
            probe = pd.DataFrame(probe, columns=[str(n) for n in names])
        out = np.asarray(getattr(model, method)(probe))
    return out.shape[1:], out.dtype


def predict(model, X, *, method="predict"):
    """Score a Dask array or DataFrame with ``model``; returns a Dask array (rows as the input's).

    ``method``: ``'predict'`` (a fastmlp model's outputs, or an estimator's labels/values),
    ``'predict_proba'`` or ``'predict_log_proba'`` (estimators).  A fastmlp model with several
    outputs is not supported here: score each output's model.
    """
    if method not in _METHODS:
        raise ValueError(f"`method` must be one of {list(_METHODS)}; got {method!r}")
    if isinstance(model, Model):
        if method != "predict":
            raise ValueError(f"A fastmlp Model has only method='predict' (its outputs); got {method!r}")
        if len(model.outputs) != 1:
            raise ValueError("fastmlp.dask.predict scores single-output models; this one has "
                             f"{len(model.outputs)} outputs")
    elif not hasattr(model, method):
        raise ValueError(f"{type(model).__name__} has no {method}()")
    names = None
    if hasattr(X, "to_dask_array") and hasattr(X, "map_partitions"):    # a Dask DataFrame
        names = getattr(model, "feature_names_in_", None)
        if names is not None:   # columns by name, as the estimator was fitted
            missing = [n for n in names if n not in X.columns]
            if missing:
                raise ValueError(f"The DataFrame lacks the column(s) {missing} the model was fitted with")
            X = X[list(names)]
        X = X.to_dask_array(lengths=True)
    if not isinstance(X, da.Array):
        raise TypeError(f"`X` must be a Dask array or DataFrame; got {type(X).__name__} (use the model's own "
                        f"predict for in-memory data)")
    if X.ndim != 2:
        raise ValueError(f"`X` must be 2-D (rows, features); got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number) and X.dtype != bool:
        raise TypeError(f"`X` must hold numbers; got dtype {X.dtype}")
    n_features = X.shape[1]
    expected = model.input_shape[-1] if isinstance(model, Model) else getattr(model, "n_features_in_", None)
    if expected is not None and n_features != expected:
        raise ValueError(f"`X` has {n_features} features, but the model expects {expected}")
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})
    payload = _payload(model)
    digest = hashlib.sha256(payload).hexdigest()
    n_out, dtype = _output_spec(model, method, n_features, names)
    blob = dask.delayed(payload, pure=True, name=f"fastmlp-model-{digest[:16]}")
    if len(n_out) == 0:
        chunks, drop = (X.chunks[0],), 1
    else:
        chunks, drop = (X.chunks[0],) + tuple((d,) for d in n_out), None
    kwargs = dict(dtype=dtype, chunks=chunks, name=f"fastmlp-{method}")
    if drop is not None:
        kwargs["drop_axis"] = drop
    elif len(n_out) != 1:
        kwargs["new_axis"] = list(range(2, 1 + len(n_out)))
    return X.map_blocks(_score_block, blob, digest, method, n_out, dtype,
                        None if names is None else [str(n) for n in names], **kwargs)
