"""Keras 3 on the JAX backend, in a process of its own: the peer "Keras 3 (JAX)" of compare.py.

Keras fixes its backend when it is imported (``KERAS_BACKEND``), and compare.py imports Keras on
torch, so this peer trains in a child process that compare.py drives over pipes: one JSON object
per line on stdin, one JSON reply per line on stdout.

    {"cmd": "init", "data": "<.npz with x, y, w0, b0, w1, ...>", "sizes": [...],
     "hidden_act": "relu", "out": "sigmoid" | "softmax", "loss": "...", "seed": 1234}
    {"cmd": "train", "epochs": e, "rows": m, "batch": b}   -> {"units": e * m, "s": seconds}
    {"cmd": "quit"}

The first reply, sent unasked, gives the versions (or {"error": ...} when Keras or JAX cannot be
imported).  The model is the one compare.py builds everywhere (Dense layers, Adam lr 1e-3,
``metrics=["accuracy"]``), started from the weights in the .npz, trained with ``fit(verbose=0)``.
"""
import json
import os
import sys
import time

os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main():
    proto = sys.stdout
    sys.stdout = sys.stderr  # whatever the libraries print must not reach the protocol pipe

    def reply(obj):
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    try:
        import warnings
        warnings.filterwarnings("ignore")
        import numpy as np
        import jax
        import keras
    except Exception as e:  # ImportError or a broken install
        reply({"error": f"{type(e).__name__}: {e}".splitlines()[0][:200]})
        return
    if keras.backend.backend() != "jax":
        reply({"error": f"Keras backend is {keras.backend.backend()!r}, not 'jax'"})
        return
    reply({"keras": keras.__version__, "jax": jax.__version__,
           "devices": [str(d) for d in jax.devices()]})
    model = x = y = None
    for line in sys.stdin:
        msg = json.loads(line)
        cmd = msg.get("cmd")
        try:
            if cmd == "init":
                with np.load(msg["data"]) as d:
                    x, y = d["x"], d["y"]
                    weights = [d[f"p{i}"] for i in range(2 * (len(msg["sizes"]) - 1))]
                keras.utils.set_random_seed(msg["seed"])
                L = keras.layers
                layers = [keras.Input(shape=(msg["sizes"][0],))]
                layers += [L.Dense(u, activation=msg["hidden_act"]) for u in msg["sizes"][1:-1]]
                layers.append(L.Dense(msg["sizes"][-1], activation=msg["out"]))
                model = keras.Sequential(layers)
                model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                              loss=msg["loss"], metrics=["accuracy"])
                model.set_weights(weights)
                reply({"ok": True})
            elif cmd == "train":
                e, m = msg["epochs"], msg["rows"]
                t0 = time.perf_counter()
                model.fit(x[:m], y[:m], batch_size=msg["batch"], epochs=e, verbose=0,
                          shuffle=True)
                reply({"units": e * m, "s": time.perf_counter() - t0})
            elif cmd == "quit":
                break
            else:
                reply({"error": f"unknown command {cmd!r}"})
        except Exception as e:
            reply({"error": f"{type(e).__name__}: {e}".splitlines()[0][:200]})


if __name__ == "__main__":
    main()
