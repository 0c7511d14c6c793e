"""The prediction server: a real uvicorn server on 127.0.0.1 and a real HTTP client
(urllib), TF Serving REST v1 and Open Inference Protocol v2, binary bodies, limits and
errors, Prometheus metrics, and a new model version picked up while serving."""
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

uvicorn = pytest.importorskip("uvicorn")

import fastmlp  # noqa: E402
from fastmlp import layers  # noqa: E402
from fastmlp.serving import create_app  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.normal(size=(20, 4)).astype(np.float32)


def _classifier(seed=0):
    fastmlp.utils.set_random_seed(seed)
    m = fastmlp.Sequential([fastmlp.Input((4,)), layers.Dense(8, activation="relu"),
                            layers.Dense(3, activation="softmax")])
    return m


def _regressor():
    fastmlp.utils.set_random_seed(1)
    a, b = fastmlp.Input((2,), name="a"), fastmlp.Input((3,), name="b")
    h = layers.Concatenate()([layers.Dense(4)(a), layers.Dense(4)(b)])
    return fastmlp.Model([a, b], [layers.Dense(1, name="y")(h), layers.Dense(2, name="z")(h)])


class _Server:
    def __init__(self, app):
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]

    def request(self, path, body=None, method=None, content_type="application/json"):
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read()
                return resp.status, dict(resp.headers), raw
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def json(self, path, body=None, method=None):
        status, _, raw = self.request(path, body, method)
        return status, json.loads(raw)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    clf = _classifier()
    clf._metadata = {"class_names": ["setosa", "versicolor", "virginica"],
                             "feature_names": ["sl", "sw", "pl", "pw"]}
    s = _Server(create_app({"iris": clf, "reg": _regressor()}, max_rows=50, max_body_bytes=20000))
    s.clf = clf
    yield s
    s.stop()


def test_v1_predict_in_row_and_columnar_formats(server):
    want = server.clf.predict(X, verbose=0)
    status, out = server.json("/v1/models/iris:predict", {"instances": X.tolist()})
    assert status == 200
    np.testing.assert_allclose(out["predictions"], want, rtol=1e-6)
    status, out = server.json("/v1/models/iris/versions/1:predict", {"inputs": X.tolist()})
    np.testing.assert_allclose(out["outputs"], want, rtol=1e-6)


def test_v1_named_inputs_and_several_outputs(server):
    a, b = X[:, :2], X[:, 1:4]
    y, z = fastmlp.Model.predict(server_model(server, "reg"), [a, b], verbose=0)
    status, out = server.json("/v1/models/reg:predict",
                              {"instances": [{"a": ra.tolist(), "b": rb.tolist()} for ra, rb in zip(a, b)]})
    assert status == 200
    np.testing.assert_allclose([p["y"] for p in out["predictions"]], y, rtol=1e-6)
    np.testing.assert_allclose([p["z"] for p in out["predictions"]], z, rtol=1e-6)
    status, out = server.json("/v1/models/reg:predict", {"inputs": {"a": a.tolist(), "b": b.tolist()}})
    np.testing.assert_allclose(out["outputs"]["z"], z, rtol=1e-6)


def server_model(server, name):
    return server.server.config.app.repo.get(name).model


def test_v1_classify_gives_class_names_and_scores(server):
    proba = server.clf.predict(X[:3], verbose=0)
    status, out = server.json("/v1/models/iris:classify",
                              {"examples": [dict(zip(["sl", "sw", "pl", "pw"], map(float, r))) for r in X[:3]]})
    assert status == 200
    assert [[c for c, _ in r] for r in out["results"]] == [["setosa", "versicolor", "virginica"]] * 3
    np.testing.assert_allclose([[s for _, s in r] for r in out["results"]], proba, rtol=1e-6)


def test_v1_status_and_metadata(server):
    status, out = server.json("/v1/models/iris")
    assert status == 200 and out["model_version_status"][0]["state"] == "AVAILABLE"
    status, out = server.json("/v1/models/iris/metadata")
    sig = out["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert list(sig["inputs"].values())[0]["tensor_shape"]["dim"][1]["size"] == "4"


def test_v2_health_metadata_and_infer_with_mlserver_output_names(server):
    assert server.json("/v2/health/live") == (200, {"live": True})
    assert server.json("/v2/health/ready") == (200, {"ready": True})
    assert server.json("/v2/models/iris/ready")[1]["ready"] is True
    status, meta = server.json("/v2/models/iris")
    assert meta["inputs"] == [{"name": server.clf.inputs[0].name, "datatype": "FP32", "shape": [-1, 4]}]
    req = {"id": "r1", "inputs": [{"name": "x", "shape": [5, 4], "datatype": "FP32", "data": X[:5].ravel().tolist()}]}
    status, out = server.json("/v2/models/iris/versions/1/infer", req)
    assert status == 200 and out["id"] == "r1" and out["model_name"] == "iris"
    outputs = {o["name"]: o for o in out["outputs"]}
    proba = server.clf.predict(X[:5], verbose=0)
    assert outputs["predict"]["data"] == [["setosa", "versicolor", "virginica"][i] for i in proba.argmax(1)]
    np.testing.assert_allclose(np.reshape(outputs["predict_proba"]["data"], (5, 3)), proba, rtol=1e-6)
    status, out = server.json("/v2/models/iris/infer", dict(req, outputs=[{"name": "predict_proba"}]))
    assert [o["name"] for o in out["outputs"]] == ["predict_proba"]


def test_binary_float32_bodies_skip_json(server):
    status, headers, raw = server.request("/v1/models/iris:predict", X.tobytes(),
                                          content_type="application/octet-stream")
    assert status == 200 and headers["x-fastmlp-shape"] == "20,3"
    np.testing.assert_allclose(np.frombuffer(raw, "<f4").reshape(20, 3), server.clf.predict(X, verbose=0), rtol=1e-6)
    bad = X[:2].copy()
    bad[1, 2] = np.nan
    for body, match in ((bad.tobytes(), "NaN"), (X[:2].tobytes()[:-4], "float32 rows of 4")):
        status, _, raw = server.request("/v2/models/iris/infer", body, content_type="application/octet-stream")
        assert status == 400 and match in json.loads(raw)["error"]


@pytest.mark.parametrize("path,body,status,match", [
    ("/v1/models/nope:predict", {"instances": [[1, 2, 3, 4]]}, 404, "not served"),
    ("/v1/models/iris/versions/7:predict", {"instances": [[1, 2, 3, 4]]}, 404, "no version 7"),
    ("/v1/models/iris:predict", b"{not json", 400, "not valid JSON"),
    ("/v1/models/iris:predict", {"instances": [[1, 2, 3]]}, 400, "expected \\[rows, 4\\]"),
    ("/v1/models/iris:predict", {"instances": [[1, 2, 3, "x"]]}, 400, "numbers"),
    ("/v1/models/iris:predict", {"instances": [[1, 2, 3, float("nan")]]}, 400, "NaN|not valid JSON"),
    ("/v2/models/iris/infer", {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                                           "data": [1, 2, 3, 1e999]}]}, 400, "NaN or infinite|not valid JSON"),
    ("/v1/models/iris:predict", {"instances": [[1, 2, 3, 4]] * 51}, 413, "at most 50"),
    ("/v1/models/iris:predict", {"instances": [[1.0, 2.0, 3.0, 4.0]] * 1000}, 413, "limit is 20000"),
    ("/v1/models/reg:classify", {"examples": [[1, 2, 3, 4, 5]]}, 400, "single-input"),
    ("/v2/models/iris/infer", {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "BOOL", "data": [1] * 4}]},
     400, "datatype"),
    ("/v2/models/iris/infer", {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1] * 4}]},
     400, "values for shape"),
])
def test_bad_requests_get_a_json_error_and_the_right_status(server, path, body, status, match):
    import re
    got, _, raw = server.request(path, body if isinstance(body, bytes) else json.dumps(body).encode())
    assert got == status
    assert re.search(match, json.loads(raw)["error"])


def test_wrong_methods_and_unknown_routes(server):
    assert server.request("/v1/models/iris:predict")[0] == 405
    assert server.request("/v2/health/live", b"{}", method="POST")[0] == 405
    assert server.request("/nothing/here")[0] == 404


def test_metrics_count_requests_errors_and_latency(server):
    server.json("/v1/models/iris:predict", {"instances": X[:1].tolist()})
    server.request("/v1/models/iris:predict", b"{bad")
    status, headers, raw = server.request("/metrics")
    text = raw.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    requests = int(next(line.split()[-1] for line in text.splitlines()
                        if line.startswith('fastmlp_requests_total{model="iris"}')))
    errors = int(next(line.split()[-1] for line in text.splitlines()
                      if line.startswith('fastmlp_request_errors_total{model="iris"}')))
    assert requests >= 2 and errors >= 1
    assert 'fastmlp_request_seconds_bucket{model="iris",le="+Inf"}' in text


def test_a_new_version_in_the_model_directory_is_served_without_a_failed_request(tmp_path):
    base = tmp_path / "models"
    (base / "iris" / "1").mkdir(parents=True)
    v1, v2 = _classifier(0), _classifier(5)
    v1.save(base / "iris" / "1" / "model.fmlp")
    s = _Server(create_app(str(base), poll_seconds=0.05))
    try:
        failures, versions, stop = [], set(), threading.Event()

        def hammer():
            while not stop.is_set():
                status, out = s.json("/v1/models/iris:predict", {"instances": X[:2].tolist()})
                if status != 200:
                    failures.append(out)
                status, meta = s.json("/v2/models/iris")
                versions.add(tuple(meta.get("versions", ())))

        t = threading.Thread(target=hammer)
        t.start()
        time.sleep(0.2)
        (base / "iris" / "2").mkdir()
        tmp = base / "iris" / "2" / "model.partial.fmlp"   # a half-written file is never loaded
        v2.save(tmp)
        shutil.move(tmp, base / "iris" / "2" / "model.fmlp")
        deadline = time.monotonic() + 10
        while ("1", "2") not in versions and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        t.join(10)
        assert not failures
        assert ("1", "2") in versions
        status, out = s.json("/v1/models/iris:predict", {"instances": X.tolist()})
        np.testing.assert_allclose(out["predictions"], v2.predict(X, verbose=0), rtol=1e-6)
        status, out = s.json("/v1/models/iris/versions/1:predict", {"instances": X.tolist()})
        np.testing.assert_allclose(out["predictions"], v1.predict(X, verbose=0), rtol=1e-6)
    finally:
        s.stop()


def test_create_app_checks_its_arguments(tmp_path):
    with pytest.raises(ValueError, match="no models"):
        create_app(str(tmp_path))
    with pytest.raises(TypeError, match="dict"):
        create_app(["a.fmlp"])
    with pytest.raises(ValueError, match="max_rows"):
        create_app({"a": _classifier()}, max_rows=0)
    with pytest.raises(ValueError, match="model names"):
        create_app({"a/b": _classifier()})
    os.makedirs(tmp_path / "m" / "1")
    (tmp_path / "m" / "1" / "model.fmlp").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="no models"):
        create_app(str(tmp_path))
