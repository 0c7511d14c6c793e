"""An HTTP prediction server: TensorFlow Serving's REST API (v1) and the Open Inference
Protocol (v2, as KServe, Triton and MLServer speak it), as a plain ASGI application.

    fastmlp serve iris.fmlp fraud.fmlp --port 8501          # uvicorn, the 'serve' extra
    curl -d '{"instances": [[5.1, 3.5, 1.4, 0.2]]}' localhost:8501/v1/models/iris:predict

    from fastmlp.serving import create_app                  # mount in your own ASGI app
    app = create_app({"iris": "iris.fmlp"})                 # or create_app("models/") for a directory

Endpoints (``{name}`` a model, ``{v}`` a version; without ``/versions/{v}`` the newest):

* v1: ``GET /v1/models/{name}[/versions/{v}]`` (status), ``GET .../metadata``,
  ``POST .../{name}[/versions/{v}]:predict`` (``{"instances": [...]}`` row format or
  ``{"inputs": ...}`` columnar; named inputs as dicts), ``POST ...:classify`` (classifiers:
  ``{"results": [[[class, score], ...], ...]}``, class names when the model file has them).
* v2: ``GET /v2/health/live``, ``GET /v2/health/ready``, ``GET /v2``,
  ``GET /v2/models/{name}[/versions/{v}]`` (metadata), ``GET .../ready``,
  ``POST .../infer`` with FP32/FP64 tensors; outputs ``predict`` and (for classifiers)
  ``predict_proba``, as MLServer names them; ``"outputs": [{"name": ...}]`` selects.
* ``application/octet-stream`` bodies: raw little-endian float32 rows in, float32 outputs
  out (header ``X-Fastmlp-Shape: rows,columns``), for v1 ``:predict`` and v2 ``/infer``.
* ``GET /metrics``: Prometheus text (requests, errors and a latency histogram per model).

Errors are JSON ``{"error": "..."}``: 400 for bad JSON, shapes, dtypes or non-finite values,
404 for an unknown model or version, 405 for a wrong method, 413 for a body over
``max_body_bytes`` or more rows than ``max_rows``.  A model directory
(``base/<name>/<version>/model.fmlp``) is rescanned every ``poll_seconds``: a new version is
loaded completely before it is served, so no request fails while it arrives.
"""
import math
import os
import threading
import time

import numpy as np

from . import __version__
from .models import Model
from .saving import FormatError, load_model

try:   # a faster JSON codec when installed; the stdlib otherwise
    import orjson as _orjson

    def _dumps(obj):
        return _orjson.dumps(obj, option=_orjson.OPT_SERIALIZE_NUMPY)

    _loads = _orjson.loads
    _JSONError = _orjson.JSONDecodeError
except ImportError:   # pragma: no cover - depends on the environment
    import json as _json

    def _dumps(obj):
        return _json.dumps(obj, default=_to_list).encode()

    _loads = _json.loads
    _JSONError = ValueError


def _to_list(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


__all__ = ["create_app", "ModelRepository"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class HTTPError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


class _Served:
    """One loaded model version and what the endpoints say about it."""

    def __init__(self, name, version, model, path=None):
        if not isinstance(model, Model):
            raise TypeError(f"model {name!r}: expected a fastmlp Model or a path to a model file; got "
                            f"{type(model).__name__}")
        if not model.built:
            raise ValueError(f"model {name!r} is not built")
        self.name, self.version, self.model, self.path = name, str(version), model, path
        self.input_names = [t.name for t in model.inputs]
        self.input_widths = list(model._plan.input_widths)
        self.output_names = list(model.output_names)
        self.output_widths = list(model._plan.output_widths)
        self.lock = threading.Lock()
        meta = getattr(model, "_metadata", None) or {}
        self.class_names = meta.get("class_names")
        last = model._plan.nodes[model._plan.outputs[0]]
        act = getattr(last.layer, "activation", None)
        act_name = getattr(act, "__name__", None) or getattr(act, "name", None)
        kind_softmax = type(last.layer).__name__ == "Softmax"
        self.classifier = len(self.output_names) == 1 and (
            kind_softmax or act_name in ("softmax", "sigmoid") or self.class_names is not None) \
            and meta.get("task") != "regression"

    def predict(self, inputs):
        with self.lock:   # the engine's buffers are the model's: one call at a time per model
            out = self.model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
        return out if isinstance(out, list) else (list(out.values()) if isinstance(out, dict) else [out])

    def labels(self, proba):
        if proba.shape[1] == 1:
            idx = (proba[:, 0] > 0.5).astype(int)
        else:
            idx = proba.argmax(axis=1)
        if self.class_names is not None:
            return [self.class_names[i] for i in idx]
        return idx.tolist()


class ModelRepository:
    """Models by name and version: from a dict ``{name: model or path}`` (version 1) or a
    directory ``base/<name>/<version>/model.fmlp`` rescanned every ``poll_seconds``."""

    def __init__(self, models, poll_seconds=2.0):
        self._lock = threading.Lock()
        self._models = {}        # name -> {version(int) -> _Served}
        self.base = None
        self.poll_seconds = float(poll_seconds)
        self._next_scan = 0.0
        self._seen = {}          # path -> mtime
        if isinstance(models, (str, os.PathLike)) and os.path.isdir(models):
            self.base = os.fspath(models)
            self.scan(force=True)
            if not self._models:
                raise ValueError(f"no models under {self.base!r}: expected <name>/<version>/model.fmlp")
        elif isinstance(models, dict):
            for name, m in models.items():
                self._check_name(name)
                path = None
                if isinstance(m, (str, os.PathLike)):
                    path = os.fspath(m)
                    m = load_model(path)
                self._models[name] = {1: _Served(name, 1, m, path)}
        else:
            raise TypeError("models must be a dict {name: model or path} or a directory of <name>/<version>/")
        if not self._models:
            raise ValueError("no models to serve")

    @staticmethod
    def _check_name(name):
        if not isinstance(name, str) or not name or "/" in name or ":" in name:
            raise ValueError(f"model names must be non-empty strings without '/' or ':'; got {name!r}")

    def scan(self, force=False):
        """Load versions that appeared or changed since the last scan (directory mode)."""
        if self.base is None:
            return
        now = time.monotonic()
        if not force and now < self._next_scan:
            return
        self._next_scan = now + self.poll_seconds
        found = {}
        for name in sorted(os.listdir(self.base)):
            folder = os.path.join(self.base, name)
            if not os.path.isdir(folder):
                continue
            for version in os.listdir(folder):
                path = os.path.join(folder, version, "model.fmlp")
                if version.isdigit() and os.path.isfile(path):
                    found.setdefault(name, {})[int(version)] = path
        with self._lock:   # versions whose folder is gone stop being served
            for name in list(self._models):
                gone = [v for v in self._models[name] if v not in found.get(name, {})]
                for v in gone:
                    del self._models[name][v]
                if not self._models[name]:
                    del self._models[name]
        for name, versions in found.items():
            for version, path in versions.items():
                try:
                    mtime = os.stat(path).st_mtime_ns
                except OSError:
                    continue
                if self._seen.get(path) == mtime:
                    continue
                try:
                    served = _Served(name, version, load_model(path), path)
                except (FormatError, OSError, ValueError):
                    continue    # half-written or damaged: the old version keeps serving; retried next scan
                self._seen[path] = mtime
                with self._lock:
                    self._models.setdefault(name, {})[version] = served

    def get(self, name, version=None):
        self.scan()
        versions = self._models.get(name)
        if not versions:
            raise HTTPError(404, f"Model {name!r} is not served here (models: {sorted(self._models)})")
        if version is None:
            return versions[max(versions)]
        try:
            v = int(version)
        except ValueError:
            raise HTTPError(400, f"Model version must be an integer; got {version!r}") from None
        if v not in versions:
            raise HTTPError(404, f"Model {name!r} has no version {version} (versions: {sorted(versions)})")
        return versions[v]

    def names(self):
        return sorted(self._models)

    def versions(self, name):
        return sorted(self._models.get(name, {}))


class _Metrics:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests, self.errors, self.hist, self.sums = {}, {}, {}, {}

    def observe(self, model, seconds, ok):
        with self.lock:
            self.requests[model] = self.requests.get(model, 0) + 1
            if not ok:
                self.errors[model] = self.errors.get(model, 0) + 1
            h = self.hist.setdefault(model, [0] * (len(_BUCKETS) + 1))
            for i, b in enumerate(_BUCKETS):
                if seconds <= b:
                    h[i] += 1
            h[-1] += 1
            self.sums[model] = self.sums.get(model, 0.0) + seconds

    def text(self):
        """The Prometheus text format.  Counts are this process's (with several workers, each
        worker answers /metrics for itself)."""
        lines = ["# HELP fastmlp_requests_total Prediction requests by model.",
                 "# TYPE fastmlp_requests_total counter"]
        with self.lock:
            for m, c in sorted(self.requests.items()):
                lines.append(f'fastmlp_requests_total{{model="{_label(m)}"}} {c}')
            lines += ["# HELP fastmlp_request_errors_total Prediction requests that failed, by model.",
                      "# TYPE fastmlp_request_errors_total counter"]
            for m in sorted(self.requests):
                lines.append(f'fastmlp_request_errors_total{{model="{_label(m)}"}} {self.errors.get(m, 0)}')
            lines += ["# HELP fastmlp_request_seconds Prediction request latency.",
                      "# TYPE fastmlp_request_seconds histogram"]
            for m, h in sorted(self.hist.items()):
                for b, c in zip(_BUCKETS, h):
                    lines.append(f'fastmlp_request_seconds_bucket{{model="{_label(m)}",le="{b}"}} {c}')
                lines.append(f'fastmlp_request_seconds_bucket{{model="{_label(m)}",le="+Inf"}} {h[-1]}')
                lines.append(f'fastmlp_request_seconds_sum{{model="{_label(m)}"}} {self.sums[m]:.6f}')
                lines.append(f'fastmlp_request_seconds_count{{model="{_label(m)}"}} {h[-1]}')
        return "\n".join(lines) + "\n"


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _matrix(value, width, what, max_rows):
    """A (rows, width) float array from JSON rows (or one row), finite in float32, at most max_rows."""
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise HTTPError(400, f"{what} must be numbers in rows of equal length (lists of floats)") from None
    if a.ndim == 1 and width != 1 and a.size == width:
        a = a.reshape(1, width)
    elif a.ndim == 1 and width == 1:
        a = a.reshape(-1, 1)
    if a.ndim != 2 or a.shape[1] != width:
        raise HTTPError(400, f"{what} has shape {list(a.shape)}; expected [rows, {width}]")
    if len(a) > max_rows:
        raise HTTPError(413, f"{what} has {len(a)} rows; this server takes at most {max_rows} per request")
    if len(a) == 0:
        raise HTTPError(400, f"{what} has no rows")
    if not np.isfinite(a).all():
        raise HTTPError(400, f"{what} holds NaN or infinite values")
    if np.abs(a).max() > _FLOAT32_MAX:
        raise HTTPError(400, f"{what} holds values beyond float32's range (|x| > {_FLOAT32_MAX:.4g})")
    return a


class _App:
    def __init__(self, repo, max_body_bytes, max_rows):
        self.repo, self.max_body_bytes, self.max_rows = repo, int(max_body_bytes), int(max_rows)
        self.metrics = _Metrics()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        start = time.perf_counter()
        model_name = None
        try:
            headers = dict(scope.get("headers") or [])
            length = headers.get(b"content-length")
            if length is not None and int(length) > self.max_body_bytes:
                raise HTTPError(413, f"request body of {int(length)} bytes; the limit is {self.max_body_bytes}")
            body = await self._body(receive)
            status, payload, ctype, extra, model_name = self.route(scope, headers, body)
        except HTTPError as e:
            status, payload, ctype, extra = e.status, _dumps({"error": e.message}), b"application/json", []
        except Exception as e:   # a bug must not take the server down: 500 with the reason
            status, payload, ctype, extra = 500, _dumps({"error": f"{type(e).__name__}: {e}"}), \
                b"application/json", []
        if model_name is None and status >= 400 and "models/" in scope.get("path", ""):
            name = _model_from_path(scope.get("path", ""))
            model_name = name if name in self.repo.names() else "unknown"   # no series per unknown name
        if model_name is not None:
            self.metrics.observe(model_name, time.perf_counter() - start, status < 400)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", ctype), (b"content-length", str(len(payload)).encode())] + extra})
        await send({"type": "http.response.body", "body": payload})

    async def _body(self, receive):
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HTTPError(400, "client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise HTTPError(413, f"request body over {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    # ------------------------------------------------------------------ routing
    def route(self, scope, headers, body):
        method, path = scope["method"], scope["path"].rstrip("/") or "/"
        parts = path.strip("/").split("/")
        json_ok = b"application/json"
        if path == "/metrics":
            _method(method, "GET")
            return 200, self.metrics.text().encode(), b"text/plain; version=0.0.4", [], None
        if parts[0] == "v1" and len(parts) >= 3 and parts[1] == "models":
            return self.v1(method, parts[2:], headers, body)
        if parts[0] == "v2":
            if parts[1:] == ["health", "live"]:
                _method(method, "GET")
                return 200, _dumps({"live": True}), json_ok, [], None
            if parts[1:] == ["health", "ready"]:
                _method(method, "GET")
                return 200, _dumps({"ready": True}), json_ok, [], None
            if len(parts) == 1:
                _method(method, "GET")
                return 200, _dumps({"name": "fastmlp", "version": __version__, "extensions": []}), \
                    json_ok, [], None
            if len(parts) >= 3 and parts[1] == "models":
                return self.v2(method, parts[2:], headers, body)
        raise HTTPError(404, f"No route for {method} {path}")

    # ------------------------------------------------------------------ TF Serving REST v1
    def v1(self, method, parts, headers, body):
        verb = None
        if ":" in parts[-1]:
            parts[-1], verb = parts[-1].split(":", 1)
        name, version, rest = parts[0], None, parts[1:]
        if rest[:1] == ["versions"] and len(rest) >= 2:
            version, rest = rest[1], rest[2:]
        served = self.repo.get(name, version)
        if verb is None:
            _method(method, "GET")
            if rest == ["metadata"]:
                return 200, _dumps(self.v1_metadata(served)), b"application/json", [], served.name
            if rest:
                raise HTTPError(404, f"No such v1 resource: {'/'.join(rest)}")
            versions = [served] if version is not None else [self.repo.get(name, v) for v in self.repo.versions(name)]
            return 200, _dumps({"model_version_status": [
                {"version": s.version, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
                for s in versions]}), b"application/json", [], served.name
        _method(method, "POST")
        if verb not in ("predict", "classify", "regress"):
            raise HTTPError(404, f"Unknown verb :{verb}; v1 has :predict, :classify and :regress")
        if headers.get(b"content-type", b"").startswith(b"application/octet-stream"):
            if verb != "predict":
                raise HTTPError(400, "binary bodies are for :predict")
            return self.binary(served, body)
        req = _parse_json(body)
        if verb == "predict":
            inputs, columnar = self.v1_inputs(served, req)
            outs = served.predict(inputs)
            if columnar:
                if len(outs) == 1:
                    return 200, _dumps({"outputs": outs[0]}), b"application/json", [], served.name
                return 200, _dumps({"outputs": dict(zip(served.output_names, outs))}), b"application/json", [], \
                    served.name
            if len(outs) == 1:
                return 200, _dumps({"predictions": outs[0]}), b"application/json", [], served.name
            rows = [{n: o[i] for n, o in zip(served.output_names, outs)} for i in range(len(outs[0]))]
            return 200, _dumps({"predictions": rows}), b"application/json", [], served.name
        examples = req.get("examples") if isinstance(req, dict) else None
        if not isinstance(examples, list):
            raise HTTPError(400, f':{verb} takes {{"examples": [...]}} (rows, or dicts of feature values)')
        inputs = self.v1_examples(served, examples)
        out = served.predict(inputs)[0]
        if verb == "regress":
            if out.shape[1] != 1:
                raise HTTPError(400, f":regress needs a model with one output unit; {served.name!r} has {out.shape[1]}")
            return 200, _dumps({"results": out[:, 0]}), b"application/json", [], served.name
        if not served.classifier:
            raise HTTPError(400, f"Model {served.name!r} is not a classifier (no softmax or sigmoid output)")
        proba = out if out.shape[1] > 1 else np.hstack([1 - out, out])
        names = served.class_names or [str(i) for i in range(proba.shape[1])]
        results = [[[names[j], float(p[j])] for j in range(len(p))] for p in proba]
        return 200, _dumps({"results": results}), b"application/json", [], served.name

    def v1_inputs(self, served, req):
        if not isinstance(req, dict) or ("instances" in req) == ("inputs" in req):
            raise HTTPError(400, 'The request body must be a JSON object with "instances" (row format) or '
                                 '"inputs" (columnar format)')
        if "instances" in req:
            inst = req["instances"]
            if not isinstance(inst, list):
                raise HTTPError(400, '"instances" must be a list')
            if len(served.input_names) == 1 and not (inst and isinstance(inst[0], dict)):
                return [_matrix(inst, served.input_widths[0], "instances", self.max_rows)], False
            if not all(isinstance(r, dict) for r in inst):
                raise HTTPError(400, f"Model {served.name!r} has inputs {served.input_names}: each instance "
                                     f"must be an object keyed by input name")
            cols = {n: [r.get(n) for r in inst] for n in served.input_names}
            return self._named(served, cols, "instances"), False
        data = req["inputs"]
        if isinstance(data, dict):
            return self._named(served, data, "inputs"), True
        if len(served.input_names) != 1:
            raise HTTPError(400, f'Model {served.name!r} has inputs {served.input_names}: "inputs" must be an '
                                 f'object keyed by input name')
        return [_matrix(data, served.input_widths[0], "inputs", self.max_rows)], True

    def _named(self, served, cols, what):
        missing = [n for n in served.input_names if n not in cols or any(v is None for v in
                                                                            (cols[n] if isinstance(cols[n], list)
                                                                             else [cols[n]]))]
        if missing:
            raise HTTPError(400, f"{what} lack the model's input(s) {missing}")
        arrays = [_matrix(cols[n], w, f"{what}[{n!r}]", self.max_rows)
                  for n, w in zip(served.input_names, served.input_widths)]
        if len({len(a) for a in arrays}) != 1:
            raise HTTPError(400, f"{what}: the inputs have different numbers of rows")
        return arrays

    def v1_examples(self, served, examples):
        if len(served.input_names) != 1:
            raise HTTPError(400, ":classify and :regress take single-input models")
        names = (getattr(served.model, "_metadata", None) or {}).get("feature_names")
        if examples and isinstance(examples[0], dict):
            if names is None:
                raise HTTPError(400, f"Model {served.name!r} has no feature names: send each example as a list")
            missing = sorted({n for e in examples for n in names if n not in e})
            if missing:
                raise HTTPError(400, f"examples lack feature(s) {missing}")
            rows = [[e[n] for n in names] for e in examples]
        else:
            rows = examples
        return [_matrix(rows, served.input_widths[0], "examples", self.max_rows)]

    def v1_metadata(self, served):
        def sig(names, widths):
            return {n: {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1"}, {"size": str(w)}]}, "name": n}
                    for n, w in zip(names, widths)}
        return {"model_spec": {"name": served.name, "signature_name": "", "version": served.version},
                "metadata": {"signature_def": {"signature_def": {"serving_default": {
                    "inputs": sig(served.input_names, served.input_widths),
                    "outputs": sig(served.output_names, served.output_widths),
                    "method_name": "tensorflow/serving/predict"}}}}}

    def binary(self, served, body):
        if len(served.input_names) != 1 or len(served.output_names) != 1:
            raise HTTPError(400, "binary bodies are for models with one input and one output")
        w = served.input_widths[0]
        if len(body) == 0 or len(body) % (4 * w):
            raise HTTPError(400, f"a binary body is float32 rows of {w} values ({4 * w} bytes each); got "
                                 f"{len(body)} bytes")
        x = np.frombuffer(body, dtype="<f4").reshape(-1, w)
        if len(x) > self.max_rows:
            raise HTTPError(413, f"{len(x)} rows; this server takes at most {self.max_rows} per request")
        if not np.isfinite(x).all():
            raise HTTPError(400, "the input holds NaN or infinite values")
        out = np.ascontiguousarray(served.predict([x.astype(served.model.dtype)])[0], dtype="<f4")
        return 200, out.tobytes(), b"application/octet-stream", \
            [(b"x-fastmlp-shape", f"{out.shape[0]},{out.shape[1]}".encode())], served.name

    # ------------------------------------------------------------------ Open Inference Protocol v2
    def v2(self, method, parts, headers, body):
        name, version, rest = parts[0], None, parts[1:]
        if rest[:1] == ["versions"] and len(rest) >= 2:
            version, rest = rest[1], rest[2:]
        served = self.repo.get(name, version)
        if rest == []:
            _method(method, "GET")
            return 200, _dumps(self.v2_metadata(served)), b"application/json", [], served.name
        if rest == ["ready"]:
            _method(method, "GET")
            return 200, _dumps({"name": served.name, "ready": True}), b"application/json", [], served.name
        if rest != ["infer"]:
            raise HTTPError(404, f"No such v2 resource: {'/'.join(rest)}")
        _method(method, "POST")
        if b"inference-header-content-length" in headers:
            raise HTTPError(400, "the binary tensor extension (Inference-Header-Content-Length) is not supported: "
                                 "send JSON tensors, or a body of raw float32 rows as application/octet-stream")
        if headers.get(b"content-type", b"").startswith(b"application/octet-stream"):
            return self.binary(served, body)
        req = _parse_json(body)
        if not isinstance(req, dict) or not isinstance(req.get("inputs"), list) or not req["inputs"]:
            raise HTTPError(400, 'An inference request is a JSON object with a non-empty "inputs" list')
        tensors = {}
        for t in req["inputs"]:
            if not isinstance(t, dict) or not {"name", "shape", "datatype", "data"} <= set(t):
                raise HTTPError(400, 'each input tensor needs "name", "shape", "datatype" and "data"')
            if t["datatype"] not in ("FP32", "FP64", "FP16", "INT32", "INT64"):
                raise HTTPError(400, f"input {t['name']!r}: datatype {t['datatype']!r} is not supported "
                                     f"(FP32, FP64, FP16, INT32, INT64)")
            shape = t["shape"]
            if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                      for d in shape):
                raise HTTPError(400, f"input {t['name']!r}: shape must be a list of non-negative integers")
            try:
                data = np.asarray(t["data"], dtype=np.float64) if t["data"] is not None else None
            except (TypeError, ValueError, OverflowError):
                raise HTTPError(400, f"input {t['name']!r}: data must be numbers (a flat or nested list of "
                                     f"equal-length rows)") from None
            if data is None or data.size != math.prod(shape):
                raise HTTPError(400, f"input {t['name']!r}: {0 if data is None else data.size} values for shape "
                                     f"{shape}")
            tensors[t["name"]] = data.reshape(shape)
        if len(served.input_names) == 1 and len(tensors) == 1:
            inputs = [_matrix(next(iter(tensors.values())), served.input_widths[0], "input", self.max_rows)]
        else:
            inputs = self._named(served, tensors, "inputs")
        outs = served.predict(inputs)
        results = {}
        if served.classifier:
            proba = outs[0]
            p2 = proba if proba.shape[1] > 1 else np.hstack([1 - proba, proba])
            labels = served.labels(proba)
            if served.class_names is not None:
                results["predict"] = ("BYTES", [len(labels)], labels)
            else:
                results["predict"] = ("INT64", [len(labels)], labels)
            results["predict_proba"] = ("FP32", list(p2.shape), p2)
        elif len(outs) == 1:
            results["predict"] = ("FP32", list(outs[0].shape), outs[0])
        else:
            for n, o in zip(served.output_names, outs):
                results[n] = ("FP32", list(o.shape), o)
        wanted = req.get("outputs")
        if wanted is not None:
            if not isinstance(wanted, list) or not all(isinstance(o, dict) and "name" in o for o in wanted):
                raise HTTPError(400, '"outputs" must be a list of {"name": ...}')
            unknown = [o["name"] for o in wanted if o["name"] not in results]
            if unknown:
                raise HTTPError(400, f"unknown output(s) {unknown}; this model has {sorted(results)}")
            results = {o["name"]: results[o["name"]] for o in wanted}
        resp = {"model_name": served.name, "model_version": served.version,
                "outputs": [{"name": n, "datatype": dt, "shape": shape,
                             "data": np.asarray(d, dtype=np.float32).reshape(-1) if dt == "FP32" else d}
                            for n, (dt, shape, d) in results.items()]}
        if "id" in req:
            resp["id"] = req["id"]
        return 200, _dumps(resp), b"application/json", [], served.name

    def v2_metadata(self, served):
        outputs = ([{"name": "predict", "datatype": "BYTES" if served.class_names else "INT64", "shape": [-1]},
                    {"name": "predict_proba", "datatype": "FP32",
                     "shape": [-1, max(2, served.output_widths[0])]}] if served.classifier else
                   [{"name": "predict" if len(served.output_names) == 1 else n, "datatype": "FP32",
                     "shape": [-1, w]} for n, w in zip(served.output_names, served.output_widths)])
        return {"name": served.name, "versions": [str(v) for v in self.repo.versions(served.name)],
                "platform": "fastmlp", "inputs": [{"name": n, "datatype": "FP32", "shape": [-1, w]}
                                                  for n, w in zip(served.input_names, served.input_widths)],
                "outputs": outputs}


def _label(value):
    """A Prometheus label value, escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _method(method, allowed):
    if method != allowed:
        raise HTTPError(405, f"Method {method} not allowed here; use {allowed}")


def _parse_json(body):
    try:
        return _loads(body)
    except (_JSONError, UnicodeDecodeError, ValueError) as e:
        raise HTTPError(400, f"The request body is not valid JSON: {e}") from None


def _model_from_path(path):
    parts = path.strip("/").split("/")
    if len(parts) >= 3 and parts[1] == "models":
        return parts[2].split(":")[0]
    return "unknown"


def create_app(models, *, max_body_bytes=16 << 20, max_rows=100_000, poll_seconds=2.0):
    """An ASGI application serving ``models``: a dict ``{name: Model or path}`` or a directory of
    ``<name>/<version>/model.fmlp``.  Mount it in FastAPI/Starlette (``app.mount("/", create_app(...))``)
    or run it with uvicorn."""
    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes <= 0:
        raise ValueError(f"max_body_bytes must be a positive integer; got {max_body_bytes!r}")
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows <= 0:
        raise ValueError(f"max_rows must be a positive integer; got {max_rows!r}")
    return _App(ModelRepository(models, poll_seconds=poll_seconds), max_body_bytes, max_rows)


def _app_from_env():
    """uvicorn's factory for ``--workers``: the models come from FASTMLP_SERVE (set by ``fastmlp serve``)."""
    import json
    spec = json.loads(os.environ["FASTMLP_SERVE"])
    models = spec["models"] if isinstance(spec["models"], str) else dict(spec["models"])
    return create_app(models, max_body_bytes=spec["max_body_bytes"], max_rows=spec["max_rows"],
                      poll_seconds=spec["poll_seconds"])


def serve(models, host="127.0.0.1", port=8501, workers=1, max_body_bytes=16 << 20, max_rows=100_000,
          poll_seconds=2.0, log_level="info"):
    """Run the server with uvicorn (``pip install fastmlp[serve]``) until SIGINT/SIGTERM."""
    try:
        import uvicorn
    except ImportError as exc:
        raise ImportError("fastmlp serve needs uvicorn: pip install fastmlp[serve]") from exc
    if isinstance(models, os.PathLike):
        models = os.fspath(models)
    if workers > 1:
        import json
        if not isinstance(models, str) and not all(isinstance(v, (str, os.PathLike)) for v in models.values()):
            raise ValueError("serve(workers > 1) starts separate processes, which load the models from files: "
                             "give paths or a model directory, not model objects")
        spec = {"models": models if isinstance(models, str) else {k: os.fspath(v) for k, v in models.items()},
                "max_body_bytes": max_body_bytes, "max_rows": max_rows, "poll_seconds": poll_seconds}
        os.environ["FASTMLP_SERVE"] = json.dumps(spec)
        uvicorn.run("fastmlp.serving:_app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level=log_level)
    else:
        app = create_app(models, max_body_bytes=max_body_bytes, max_rows=max_rows, poll_seconds=poll_seconds)
        uvicorn.run(app, host=host, port=port, log_level=log_level)
