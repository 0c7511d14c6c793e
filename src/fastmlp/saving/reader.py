"""Reading model files: a model from a checked file (``format._parse``), its
architecture rebuilt from the declarative config, its weights matched to the
model's plan, its compile config and training state validated as the
constructors validate them.  Every problem is a ``FormatError``."""
import functools
import inspect
import math
import os

import numpy as np

from .. import _engine
from ..layers.base import deferred_weights
from .format import (DTYPES, PREAMBLE_SIZE, _HEAD_READ, _LITTLE, FormatError, _array, _check_padding, _check_regular,
                     _decode, _fail, _is_int, _parse, _read_file)

__all__ = ["load_model", "model_from_bytes", "load_weights"]

_INT64_MAX = (1 << 63) - 1


def _architecture(p):
    """The model rebuilt from the header's config (fastmlp's own layer kinds only), laid
    out but not attached, and the checked correspondence between the tensor table and its
    plan: one ``(weight ref, table entry, scale entry or None)`` per weight, and whether
    the weights section is laid out as the model's parameter vector."""
    from ..layers import registry
    entry = p.header.get("model")
    if not isinstance(entry, dict) or entry.get("class_name") not in ("Sequential", "Functional"):
        _fail("header: 'model' must describe a Sequential or Functional model")
    cfg = entry.get("config")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("layers"), list):
        _fail("header: the model config needs a 'layers' list")
    if not isinstance(cfg.get("name", "model"), str):
        _fail("header: the model name must be a string")
    if not isinstance(cfg.get("trainable", True), bool):
        _fail("header: the model's 'trainable' must be true or false")
    sequential = entry["class_name"] == "Sequential"
    if sequential:
        layers = cfg["layers"]
        for i, layer in enumerate(layers):
            if type(layer) is not dict or type(layer.get("config")) is not dict:
                _fail(f"header: layer #{i} must be an object with a 'config' object")
            if layer.get("class_name") == "InputLayer" and i != 0:
                _fail("header: an InputLayer may only come first")
    try:
        with deferred_weights():
            model = registry.model_class(entry["class_name"]).from_config(cfg)
    except FormatError:
        raise
    except Exception as e:   # RecursionError included: whatever a hostile config makes a constructor raise
        _fail(f"header: invalid model config: {e}")
    if not model.built:
        _fail("header: the model needs a fixed input shape")
    weights = model._plan.weights
    by_name = {t[0]: t for t in p.tensors}
    used = set()
    matched = []
    item = DTYPES[model._dtype][1]
    own_layout = True   # every tensor stored at full precision where the model's vector has it
    for ref in weights:
        vname, shape = ref.name, ref.shape
        t = by_name.get(vname)
        if t is None:
            _fail(f"tensor table: the architecture needs tensor {vname!r} of shape {list(shape)}, "
                  f"which the file lacks")
        _, dt, tshape, _, _, table_entry = t
        if tshape != shape:
            _fail(f"tensor {vname!r} has shape {list(tshape)} but the architecture implies {list(shape)}")
        scale = None
        if dt == "int8":
            sname = table_entry.get("scale")
            st = by_name.get(sname) if isinstance(sname, str) else None
            if ref.spec.name != "kernel" or st is None:
                _fail(f"tensor {vname!r}: an int8 kernel needs a float32 'scale' tensor")
            if st[1] != "float32" or st[2] != (shape[-1],):
                _fail(f"tensor {vname!r}: its scale {sname!r} must be float32 of shape [{shape[-1]}]")
            used.add(sname)
            scale = st
        elif "scale" in table_entry:
            _fail(f"tensor {vname!r}: only int8 tensors have a scale")
        used.add(vname)
        own_layout = own_layout and dt == model._dtype and t[3] == ref.offset * item
        matched.append((ref, t, scale))
    if len(used) != len(by_name):   # used is a subset of by_name
        _fail(f"tensor table: tensors {sorted(set(by_name) - used)[:5]} are not part of the architecture")
    return model, matched, own_layout


def _build_model(p, compile, zero_copy):
    model, matched, own_layout = _architecture(p)
    n_params, dtype = model._n_params, model._dtype
    if _LITTLE and zero_copy and own_layout and p.w_len == n_params * DTYPES[dtype][1]:   # no copy
        params = np.frombuffer(p.buf, dtype=dtype, count=n_params, offset=p.data_off)
    else:
        params = np.zeros(max(n_params, 1), dtype=dtype)
        for ref, t, scale in matched:
            params[ref.offset:ref.offset + ref.size] = _decode(p, t, scale, dtype).reshape(-1)
        if dtype == "float32":   # int8 kernels stay int8: predict runs those layers in int8
            for ref, t, scale in matched:
                if scale is not None:
                    q = _array(p, p.data_off, t)
                    if not (q == -128).any():   # (fastmlp writes [-127, 127]; other files stay float)
                        ref.layer._int8 = (q.copy(), _array(p, p.data_off, scale).copy())
    for ref, t, scale in matched:
        if getattr(ref.layer, "_int8", None) is not None:
            ref.layer._int8_packed = _engine.Int8Dense(*ref.layer._int8)
    model._attach(params)

    metadata = p.header.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            _fail("header: 'metadata' must be an object")
        model._metadata = metadata

    training = p.training
    cc = p.header.get("compile")
    if training is not None:
        if cc is None:
            _fail("header: a training state needs a compile config")
        seed, epoch = training.get("seed"), training.get("epoch")
        if not (_is_int(seed) and 0 <= seed < 1 << 64 and _is_int(epoch) and 0 <= epoch <= _INT64_MAX):
            _fail("training state: 'seed' and 'epoch' must be non-negative 64-bit integers")
        model._seed, model._epoch = seed, epoch
        epoch_step = training.get("epoch_step", 0)
        if not (_is_int(epoch_step) and 0 <= epoch_step <= _INT64_MAX):
            _fail("training state: 'epoch_step' must be a non-negative 64-bit integer")
        model._epoch_step = epoch_step

    if compile and cc is not None:
        if not isinstance(cc, dict) or not isinstance(cc.get("optimizer"), dict) or \
                cc.get("loss") is None or not isinstance(cc.get("metrics", []), (list, dict)):
            _fail("header: malformed compile config")
        _check_compile_entries(cc)
        try:
            model.compile_from_config(cc)
            model._compiled()   # resolves per-output losses and metrics: any mismatch fails here
            model._loss_specs()     # and what fit hands the engine (a metric's class_id against
            model._metric_specs()   # the output width, ...) is checked now, not at the first fit
        except FormatError:
            raise
        except Exception as e:   # whatever a constructor raises, a hostile value is the file's fault
            _fail(f"header: invalid compile config: {e}")
        if training is not None:
            _restore_training(p, model, training)
    return model


def _compile_classes():
    from .. import losses, metrics, optimizers
    from ..optimizers import schedules
    return {"optimizer": lambda c: optimizers._ALIASES.get(c.lower()), "loss": losses._CLASSES.get,
            "metric": metrics._CLASSES.get, "schedule": schedules._CLASSES.get}


@functools.lru_cache(maxsize=None)
def _flag_arguments(cls):
    """The constructor arguments of ``cls`` whose default is True or False: a file must give them as such
    (the constructors take any value's truth, so "false" would silently mean True)."""
    try:
        params = inspect.signature(cls.__init__).parameters.values()
    except (TypeError, ValueError):
        return frozenset()
    return frozenset(q.name for q in params if isinstance(q.default, bool))


def _check_entry(kind, entry, where):
    """One ``{"class_name", "config"}`` object of the compile config: a known class named by a string,
    a config object whose ``name`` is a string and whose flags are true or false."""
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        _fail(f"header: invalid compile config: {where} must be an object with a 'class_name' string")
    cls = _compile_classes()[kind](entry["class_name"])
    if cls is None:
        _fail(f"header: invalid compile config: {where}: unknown {kind} class {entry['class_name'][:100]!r}")
    config = entry.get("config", {})
    if not isinstance(config, dict):
        _fail(f"header: invalid compile config: {where}: 'config' must be an object")
    name = config.get("name")
    if name is not None and not isinstance(name, str):
        _fail(f"header: invalid compile config: {where}: 'name' must be a string; got {name!r:.100}")
    for flag in _flag_arguments(cls) & config.keys():
        if not isinstance(config[flag], bool):
            _fail(f"header: invalid compile config: {where}: {flag!r} must be true or false; got {config[flag]!r:.100}")
    return config


def _check_compile_entries(cc):
    """What the JSON of the compile config must be before the constructors see it (they check the values)."""
    config = _check_entry("optimizer", cc["optimizer"], "the optimizer")
    if isinstance(config.get("learning_rate"), dict):
        _check_entry("schedule", config["learning_rate"], "the learning-rate schedule")
    loss = cc["loss"]
    if isinstance(loss, dict) and "class_name" not in loss:
        losses = list(loss.values())
    else:
        losses = loss if isinstance(loss, list) else [loss]
    for entry in losses:
        _check_entry("loss", entry, "a loss")
    metrics = cc.get("metrics", [])
    weighted = cc.get("weighted_metrics", [])
    if not isinstance(weighted, (list, dict)):
        _fail("header: invalid compile config: 'weighted_metrics' must be a list or an object")
    for entry in [*(metrics.values() if isinstance(metrics, dict) else metrics),
                  *(weighted.values() if isinstance(weighted, dict) else weighted)]:
        for m in (entry if isinstance(entry, list) else [entry]):
            if isinstance(m, dict):
                _check_entry("metric", m, "a metric")
            elif not isinstance(m, str):
                _fail(f"header: invalid compile config: a metric must be a name or an object; got {m!r:.100}")


def _restore_training(p, model, training):
    opt = model.optimizer
    n_params, dtype = model._n_params, model._dtype
    iterations, u_product, slots = training.get("iterations"), training.get("u_product"), training.get("slots")
    if not _is_int(iterations) or not 0 <= iterations <= _INT64_MAX:
        _fail("training state: 'iterations' must be a non-negative 64-bit integer")
    # Nadam's product of momentum factors in [0, 1] (1.0 for the other optimizers); a huge JSON
    # integer is compared exactly, never converted (float(10**400) raises OverflowError)
    if not isinstance(u_product, (int, float)) or isinstance(u_product, bool) or \
            (isinstance(u_product, float) and not math.isfinite(u_product)) or not 0 <= u_product <= 1:
        _fail("training state: 'u_product' must be a number in [0, 1]")
    if slots != list(opt.slot_names):
        _fail(f"training state: slots {slots!r} do not match the optimizer's {list(opt.slot_names)}")
    slotted = [ref for ref in model._plan.weights if ref.spec.trainable]
    expected = [(f"optimizer/{s}/{ref.name}", ref.shape) for s in slots for ref in slotted]
    if [(t[0], t[2]) for t in p.t_tensors] != expected:
        _fail("training table: the slot tensors do not match the architecture and optimizer")
    if any(t[1] != dtype for t in p.t_tensors):
        _fail(f"training table: slot tensors must be {dtype}")
    # the slots stay as they are in the file until the first training step (or a save) builds them;
    # a file read without its training section reads it then (and checks it against its checksum)
    base = p.data_off + p.w_len

    failed = []

    def segments():
        if failed:   # a section that could not be read once is never used
            raise FormatError(failed[0])
        if p.tail is not None:
            tail, p.tail = p.tail, None
            try:
                tail.read_into(memoryview(p.buf)[base:base + p.t_len])
                if _engine.crc32c(p.buf, base, p.t_len) != p.t_crc:
                    _fail(f"{tail.path}: the training section changed since the model was loaded "
                          f"(checksum mismatch); the model's weights are unaffected")
            except FormatError as e:
                failed.append(str(e))
                raise
        out, k = [], 0
        for s in range(len(slots)):
            for ref in slotted:
                out.append((s, ref.offset, _array(p, base, p.t_tensors[k])))
                k += 1
        return out
    opt._defer_slots(n_params, dtype, segments if p.tail is not None else segments())
    opt._owner = id(model)
    opt.iterations = iterations
    opt._u_product = float(u_product)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True, mmap=False, verify=True):
    """Load a model file.  ``custom_objects``, ``compile`` and ``safe_mode`` are Keras 3's:
    ``custom_objects`` (a dict) makes names known while the model is rebuilt, as
    ``custom_object_scope`` does (a Python initializer function a Keras file names, say);
    ``safe_mode`` has nothing to refuse here, since fastmlp never runs code from a file (no
    Lambda layers; functions only by registered name).

    By default the file is read into memory: the model never changes, and never
    crashes, when the file is later rewritten, truncated or replaced.
    ``mmap=True`` maps the file copy-on-write instead and uses full-precision
    weights in place without a copy (faster for large files); the caveat is the
    operating system's: a file truncated or rewritten in place by another program
    while mapped changes, or crashes, the model (fastmlp's own saves replace the
    file and are safe).  ``verify=False`` skips the data checksums (the header
    checksum and every structural check still run) and leaves the optimizer state in
    the file until training resumes: it is then read through the file opened at load
    (a replaced file is still read as it was), checked against its checksum, and a
    file truncated or rewritten since raises FormatError there; the weights are never
    affected.

    ``.keras``, ``.h5`` and ``.hdf5`` files are Keras's (``keras_file``; ``mmap`` does not
    apply to them, ``verify`` checks a ``.keras`` zip's CRC-32s), and so is a folder holding a
    ``config.json`` (Keras 3's unzipped model, ``save(path, zipped=False)``); a path ending in ``.onnx`` is
    an ONNX graph (``saving/onnx_import.py``); any other name is read as a fastmlp file (its
    magic decides)."""
    if custom_objects is not None:
        from .._serialization import CustomObjectScope
        with CustomObjectScope(custom_objects):   # (TypeError unless a dict)
            return load_model(filepath, None, compile, safe_mode, mmap, verify)
    path = os.fspath(filepath)
    import fastmlp.saving.keras_file as keras_file
    if keras_file.is_keras_dir(path):   # Keras 3's unzipped model (model.save(path, zipped=False))
        if mmap:
            raise ValueError("mmap=True applies to fastmlp's own files ('.fmlp'), not to a Keras model folder")
        return keras_file.load_keras_dir(path, compile)
    if isinstance(path, str) and path.lower().endswith(".onnx"):   # ONNX: its own importer
        import fastmlp.saving.onnx_io as onnx_io
        return onnx_io.load(path, compile=compile, mmap=mmap, verify=verify)
    if keras_file.is_keras_name(path):
        name = os.path.basename(os.fsdecode(path)).lower()
        if mmap:
            raise ValueError("mmap=True applies to fastmlp's own files ('.fmlp'), not to Keras files")
        return keras_file.load_keras(path, compile, verify) if name.endswith(".keras") else \
            keras_file.load_h5(path, compile)
    try:
        buf = None
        if mmap:   # open, read the head and map copy-on-write in one call (csrc/filemap.c)
            _check_regular(path, os.stat(path).st_mode)   # its open() would wait on a FIFO for a writer
            buf, head, size = _engine.map_file(os.fsencode(path), _HEAD_READ, PREAMBLE_SIZE)
        if buf is None:   # without verify, the optimizer state is read when training needs it
            buf, tail = _read_file(path, lazy_tail=True) if not verify else (_read_file(path), None)
            head = None
            size = len(buf)
            try:
                p = _parse(buf, size, verify, head, tail)
            except BaseException:
                if tail is not None:
                    tail.close()
                raise
        else:
            try:
                p = _parse(buf, size, verify, head)
            finally:
                buf.close_file()
    except FormatError as e:
        raise FormatError(f"{path}: {e}") from None
    try:
        return _build_model(p, compile, zero_copy=True)
    except FormatError as e:
        raise FormatError(f"{path}: {e}") from None


def model_from_bytes(data, compile=True, verify=True):
    """A model from the bytes of a model file (``model_to_bytes``); weights are copied."""
    view = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else data
    p = _parse(view, len(view), verify)
    return _build_model(p, compile, zero_copy=False)


def load_weights(model, filepath):
    """Set ``model``'s weights from a model or weights file: weights are matched in
    order (names may differ), shapes must agree."""
    path = os.fspath(filepath)
    try:
        data = _read_file(path)
        p = _parse(data, len(data), True)
        other, matched, _ = _architecture(p)
    except FormatError as e:
        raise FormatError(f"{path}: {e}") from None
    if not model.built:
        shape = other._plan.input_shapes[0]
        model.build((None,) + tuple(shape))
    dtype = model._dtype
    matched = [m for m in matched if not m[0].spec.constant]   # a layer's config constants stay its own
    weights = [_decode(p, t, scale, dtype) for _, t, scale in matched]
    current = model.weights
    if len(weights) != len(current):
        raise ValueError(f"{path} holds {len(weights)} weight arrays but model {model.name!r} has "
                         f"{len(current)}")
    for i, (ref, w) in enumerate(zip(current, weights)):
        if ref.shape != w.shape:
            raise ValueError(f"{path}: weight {i} ({matched[i][0].name}) has shape {w.shape}, the model expects "
                             f"{ref.shape}")
    for ref, w in zip(current, weights):
        ref[...] = w
