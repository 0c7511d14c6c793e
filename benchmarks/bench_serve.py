"""HTTP serving load test on loopback: fastmlp's server against the same 784-64-64-10 model in
onnxruntime behind an equivalent FastAPI app, and a Flask app around Keras (as tutorials write it).

Each server runs in its own process on 127.0.0.1; a client with keep-alive connections sends a
bounded number of TF-Serving-style JSON requests (``{"instances": [...]}``) of 1 and 100 rows
from ``--concurrency`` threads and reports requests/s and p50/p99 latency.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=src python benchmarks/bench_serve.py
    ... bench_serve.py --requests 500 --skip keras
"""
import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "src")

FASTMLP_APP = """
import sys, uvicorn
from fastmlp.serving import create_app
uvicorn.run(create_app({"mnist": sys.argv[1]}), host="127.0.0.1", port=int(sys.argv[2]), log_level="error")
"""

ORT_APP = """
import sys, numpy as np, onnxruntime as ort, uvicorn
from fastapi import FastAPI, Request
sess = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
name = sess.get_inputs()[0].name
app = FastAPI()

@app.post("/v1/models/mnist:predict")
async def predict(request: Request):
    body = await request.json()
    x = np.asarray(body["instances"], dtype=np.float32)
    return {"predictions": sess.run(None, {name: x})[0].tolist()}

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="error")
"""

KERAS_APP = """
import os, sys
os.environ.setdefault("KERAS_BACKEND", "torch")
import numpy as np, keras
from flask import Flask, request, jsonify
model = keras.models.load_model(sys.argv[1])
app = Flask(__name__)

@app.route("/v1/models/mnist:predict", methods=["POST"])
def predict():
    x = np.asarray(request.get_json()["instances"], dtype=np.float32)
    return jsonify({"predictions": model.predict(x, verbose=0).tolist()})

app.run(host="127.0.0.1", port=int(sys.argv[2]), threaded=False)   # Keras's predict is not thread-safe here
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(code, model_path, env):
    port = _free_port()
    script = os.path.join(os.path.dirname(model_path), f"app_{port}.py")   # (in the run's scratch folder)
    with open(script, "w") as f:
        f.write(textwrap.dedent(code))
    proc = subprocess.Popen([sys.executable, script, model_path, str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode()[-2000:])
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def load(port, body, requests, concurrency):
    lat = []
    lock = threading.Lock()
    per = [requests // concurrency + (1 if i < requests % concurrency else 0) for i in range(concurrency)]
    errors = []

    def worker(n):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        try:
            for _ in range(n):
                t0 = time.perf_counter()
                conn.request("POST", "/v1/models/mnist:predict", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                mine.append(time.perf_counter() - t0)
                if resp.status != 200:
                    errors.append(data[:200])
        except OSError as e:   # a server that stops answering is reported, not waited for
            errors.append(repr(e).encode())
        finally:
            conn.close()
        with lock:
            lat.extend(mine)

    for _ in range(min(20, requests)):   # warm-up
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("POST", "/v1/models/mnist:predict", body, {"Content-Type": "application/json"})
        c.getresponse().read()
        c.close()
    threads = [threading.Thread(target=worker, args=(n,)) for n in per]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests: {errors[0]!r}")
    lat = np.sort(lat)
    return requests / wall, 1e3 * lat[len(lat) // 2], 1e3 * lat[min(len(lat) - 1, int(0.99 * len(lat)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per server and request size")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--skip", action="append", default=[], choices=["onnxruntime", "keras"])
    args = parser.parse_args()
    sys.path.insert(0, SRC)
    import fastmlp
    from fastmlp import layers
    from _bench_util import scratch_dir
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), KERAS_BACKEND="torch")
    tmp = scratch_dir("fastmlp-serve-bench-")
    fastmlp.utils.set_random_seed(0)
    model = fastmlp.Sequential([fastmlp.Input((784,)), layers.Dense(64, activation="relu"),
                                layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax")])
    model.save(os.path.join(tmp, "mnist.fmlp"))
    systems = [("fastmlp serve (uvicorn, 1 process)", FASTMLP_APP, os.path.join(tmp, "mnist.fmlp"))]
    if "onnxruntime" not in args.skip:
        try:
            import fastapi  # noqa: F401
            import onnxruntime  # noqa: F401
            model.export(os.path.join(tmp, "mnist.onnx"), format="onnx", verbose=False)
            systems.append(("onnxruntime + FastAPI (uvicorn, 1 process)", ORT_APP, os.path.join(tmp, "mnist.onnx")))
        except ImportError as e:
            print(f"(onnxruntime app skipped: {e})")
    if "keras" not in args.skip:
        try:
            import flask  # noqa: F401
            import keras
            km = keras.Sequential([keras.Input((784,)), keras.layers.Dense(64, activation="relu"),
                                   keras.layers.Dense(64, activation="relu"),
                                   keras.layers.Dense(10, activation="softmax")])
            km.set_weights(model.get_weights())
            km.save(os.path.join(tmp, "mnist.keras"))
            systems.append(("Keras 3 (torch) + Flask", KERAS_APP, os.path.join(tmp, "mnist.keras")))
        except ImportError as e:
            print(f"(Keras app skipped: {e})")
    x = np.random.default_rng(0).random((100, 784), dtype=np.float32).round(4)
    bodies = {1: json.dumps({"instances": x[:1].tolist()}).encode(),
              100: json.dumps({"instances": x.tolist()}).encode()}
    print(f"# serving load test: {args.requests} requests per row, {args.concurrency} client threads, "
          f"loopback; {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print(f"command: {' '.join(sys.argv)}\n")
    print("| server | rows/request | requests/s | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|")
    results = {}
    for name, code, path in systems:
        proc, port = _start(code, path, env)
        try:
            for rows, body in bodies.items():
                try:
                    rps, p50, p99 = load(port, body, args.requests, args.concurrency)
                except RuntimeError as e:
                    print(f"| {name} | {rows} | failed: {str(e)[:80]} | | |", flush=True)
                    continue
                results[(name, rows)] = rps
                print(f"| {name} | {rows} | {rps:,.0f} | {p50:.2f} | {p99:.2f} |", flush=True)
        finally:
            proc.terminate()
            proc.wait(10)
    if len(systems) > 1:
        base = systems[0][0]
        for name, _, _ in systems[1:]:
            ratios = ", ".join(f"{rows} row(s) {results[(base, rows)] / results[(name, rows)]:.2f}x"
                               for rows in bodies if (base, rows) in results and (name, rows) in results)
            print(f"\nfastmlp requests/s ÷ {name}: {ratios}")


if __name__ == "__main__":
    main()
