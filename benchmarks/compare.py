#!/usr/bin/env python
"""fastmlp against its peers, side by side, on one machine, interleaved.

Run from the repository root (the extension built in place)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=src python benchmarks/compare.py
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=src python benchmarks/compare.py --quick
    ... compare.py --only train --only gemm --threads 1

``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` may be set in some environments (CI images pin
OpenBLAS to a Haswell kernel with a small L2); they slow numpy's sgemm -- and scikit-learn,
which trains on it -- so for a fair numpy baseline unset both *in the command* (OpenBLAS reads
them when it is loaded, before this script could change them).  The script prints which of
them were set; with them set, the numpy/scikit-learn numbers understate those peers.

Sections (``--only`` picks any of them; all by default):

train
    Training samples/s of five workloads (the seed examples of issue 5) on fastmlp
    (``model.fit(verbose=0)``), an idiomatic PyTorch loop (a shuffled index permutation per
    epoch, ``x[idx]`` batches, ``model(x)``, loss, ``backward``, ``step``, ``zero_grad`` --
    no DataLoader), Keras 3 on the torch backend (``model.fit(verbose=0)``) and scikit-learn's
    ``MLPClassifier(solver='adam')`` (one ``partial_fit`` per epoch).  All use Adam with
    learning rate 1e-3 and the same batch size; the Keras-API systems compile with
    ``metrics=['accuracy']`` as the issue's examples do.  Each system is calibrated to a
    timing chunk of ``--window`` seconds (whole epochs when that is more than one epoch,
    otherwise one epoch over the first rows), then the systems take turns, chunk by chunk, for
    ``--rounds`` rounds (rotating who goes first); the table shows the median samples/s.
    Two JIT peers start from fastmlp's initial weights: "JAX scan" (JAX + optax, the fastest
    idiomatic JAX: parameters as a pytree, ``optax.adam(1e-3)``, one ``jax.jit`` function per
    epoch that shuffles, stacks the batches as (steps, batch, features) arrays and runs the
    steps with ``jax.lax.scan``; compiled ahead of time outside the timed rounds) and
    "Keras 3 (JAX)" (``fit(verbose=0)`` on the JAX backend, in a child process, because Keras
    fixes its backend at import: ``_keras_jax_worker.py``); a table gives their compile /
    first-call times.  Afterwards fastmlp, PyTorch and JAX train fresh models from the *same
    initial weights* for the same number of epochs on the full training set and report test
    accuracy.
predict
    784-64-64-10 inference with the same weights in every system: latency of one sample
    (median of many single calls, numpy in / numpy out, in µs) and throughput at batch 1024
    for ``fastmlp.predict``, torch (``inference_mode``, ``eval``), onnxruntime (the torch
    model exported to ONNX) and Keras ``predict``.  Outputs are checked against fastmlp's.
gemm
    ``fastmlp.ops.matmul(a, b, out=c)`` against numpy ``np.matmul(a, b, out=c)`` (and
    ``torch.mm(out=)`` when installed), float32, C-contiguous, shapes M x K x N.

Ratios are always "fastmlp's speed / the peer's speed" (> 1: fastmlp is faster); the target
column holds issue 5's target against the named peer.  Peers that are not installed are
skipped with a note.  The machine (CPU, cores, ``fastmlp.show_config()``), thread counts and
the command line are printed first; every table ends with the CPU model, a peak sgemm
measured at the start of its section (numpy and fastmlp, 2048³ float32) and the load average.

Fashion-MNIST comes from ``fastmlp.datasets.fashion_mnist.load_data()``
(``/usr/share/datasets/fashion-mnist`` or ``$FASTMLP_DATA``); when it is absent the script uses
synthetic data of the same shape and says so.
"""
import argparse
import contextlib
import importlib.util
import io
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# (torch_epoch: the PyTorch loop, shared with the pytest benchmarks)
from _bench_util import cpu_model, loadavg, scratch_dir, torch_epoch  # noqa: E402

SECTIONS = ("train", "sweep", "predict", "gemm")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="CI-sized run (< 60 s): short windows, fewer rounds, small accuracy runs")
    p.add_argument("--only", action="append", choices=SECTIONS,
                   help="run only this section (repeatable)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for every system (fastmlp, torch, OpenBLAS, onnxruntime); "
                        "default: each library's default")
    p.add_argument("--skip", action="append", default=[],
                   choices=("torch", "keras", "sklearn", "onnxruntime", "jax", "keras-jax"),
                   help="leave a peer out (repeatable); 'jax' leaves out both JAX peers, "
                        "as if JAX were not installed")
    p.add_argument("--window", type=float, default=None,
                   help="seconds per timed chunk (default 0.6 for train, 0.1 with --quick)")
    p.add_argument("--rounds", type=int, default=None,
                   help="interleaved rounds per workload (default 5, 3 with --quick)")
    p.add_argument("--acc-epochs", type=int, default=None,
                   help="epochs of the accuracy check on Fashion-MNIST workloads (default 5, "
                        "1 with --quick); iris uses 100 (20), the binary task 20 (5)")
    return p.parse_args(argv)


ARGS = parse_args()
ENV_AT_START = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                              "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                              "MKL_NUM_THREADS")}
if ARGS.threads is not None:
    # must happen before numpy / torch load their thread pools
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)
os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402

try:
    import fastmlp  # noqa: E402
except ImportError:  # running from a checkout without PYTHONPATH=src
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "src"))
    import fastmlp  # noqa: E402

SKIPPED = []  # (peer, reason)


def _optional(name, import_fn):
    if name in ARGS.skip:
        SKIPPED.append((name, "--skip"))
        return None
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            return import_fn()
    except Exception as e:  # ImportError, or a broken install
        SKIPPED.append((name, f"not importable ({type(e).__name__}: {e})".splitlines()[0][:120]))
        return None


torch = _optional("torch", lambda: __import__("torch"))
keras = _optional("keras", lambda: __import__("keras")) if torch is not None or \
    os.environ["KERAS_BACKEND"] != "torch" else None
if keras is None and "keras" not in [s[0] for s in SKIPPED]:
    SKIPPED.append(("keras", "needs torch for KERAS_BACKEND=torch"))
if keras is not None and keras.backend.backend() != "torch":
    SKIPPED.append(("keras", f"backend is {keras.backend.backend()!r}, not torch"))
    keras = None


def _import_sklearn():
    from sklearn.neural_network import MLPClassifier
    return MLPClassifier


MLPClassifier = _optional("sklearn", _import_sklearn)
ort = _optional("onnxruntime", lambda: __import__("onnxruntime"))


def _import_jax():
    os.environ.setdefault("JAX_PLATFORMS", "cpu")  # the CPU is what is compared
    if ARGS.threads == 1:  # XLA reads this at import; it has no switch for N > 1 threads
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                           "intra_op_parallelism_threads=1")
    import jax
    import optax
    return jax, optax


jax, optax = _optional("jax", _import_jax) or (None, None)
# Keras on JAX trains in a child process (Keras fixes its backend at import); the train section
# starts it and says there whether it came up.
KERAS_JAX = False
if "jax" in ARGS.skip:
    SKIPPED.append(("keras-jax", "--skip jax"))
elif jax is None:
    SKIPPED.append(("keras-jax", "needs jax"))
elif "keras-jax" in ARGS.skip:
    SKIPPED.append(("keras-jax", "--skip"))
elif importlib.util.find_spec("keras") is None:
    SKIPPED.append(("keras-jax", "keras is not installed"))
else:
    KERAS_JAX = True
threadpoolctl = None
try:
    import threadpoolctl  # noqa: F811  (ships with scikit-learn)
except ImportError:
    pass

if ARGS.threads is not None:
    fastmlp.set_num_threads(ARGS.threads)
    if torch is not None:
        torch.set_num_threads(ARGS.threads)

QUICK = ARGS.quick
WINDOW = ARGS.window if ARGS.window is not None else (0.1 if QUICK else 0.6)
ROUNDS = ARGS.rounds if ARGS.rounds is not None else (3 if QUICK else 5)
ACC_EPOCHS = ARGS.acc_epochs if ARGS.acc_epochs is not None else (1 if QUICK else 5)
SEED = 1234


# --------------------------------------------------------------------------- formatting

def fmt_rate(x):
    if x is None:
        return "—"
    return f"{x:,.0f}"


def fmt_us(x):
    if x is None:
        return "—"
    return f"{x:,.1f}" if x < 1000 else f"{x:,.0f}"


def fmt_ratio(x):
    if x is None:
        return "—"
    return f"{x:.2f}×" if x < 10 else f"{x:.1f}×"


def fmt_target(ratio, target):
    if target is None:
        return ""
    if ratio is None:
        return f"≥ {target:g}× (n/a)"
    return f"≥ {target:g}× {'met' if ratio >= target else '**missed**'}"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    print("\n".join(out))
    # every table carries the machine it ran on, so that a table quoted alone still says it
    print(f"\n_{cpu_model()}; peak sgemm at the section's start {peak_text()}; "
          f"load average now (1/5/15 min) {loadavg()}_")
    print(flush=True)


def section(title):
    print(f"\n## {title}\n", flush=True)
    measure_peak_sgemm()  # the load changes during a run: measured again for each section


# --------------------------------------------------------------------------- peak sgemm

PEAK_N = 2048
PEAK_REPS = 3
PEAK = {}


def measure_peak_sgemm():
    """The machine's float32 matmul speed now, in GFLOP/s: best of PEAK_REPS 2048³ products,
    numpy (OpenBLAS; slowed when OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE were set) and fastmlp's
    own GEMM.  What the CPU can do at the moment, to read the tables' rates against."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((PEAK_N, PEAK_N)).astype(np.float32)
    b = rng.standard_normal((PEAK_N, PEAK_N)).astype(np.float32)
    c = np.empty((PEAK_N, PEAK_N), np.float32)
    flops = 2.0 * PEAK_N ** 3
    for name, fn in (("numpy", lambda: np.matmul(a, b, out=c)),
                     ("fastmlp", lambda: fastmlp.ops.matmul(a, b, out=c))):
        fn()  # warm-up: thread pools, page faults
        best = float("inf")
        for _ in range(PEAK_REPS):
            settle()
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        PEAK[name] = flops / best / 1e9


def peak_text():
    return ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in PEAK.items()) or "not measured"


# --------------------------------------------------------------------------- machine

def build_info():
    import subprocess
    so = getattr(fastmlp._engine, "__file__", "?")
    try:
        built = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(so)))
    except OSError:
        built = "?"
    where = os.path.dirname(os.path.abspath(fastmlp.__file__))
    try:
        rev = subprocess.run(["git", "-C", where, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = ""
        top = subprocess.run(["git", "-C", where, "rev-parse", "--show-toplevel"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        if top:
            dirty = subprocess.run(["git", "-C", top, "status", "--porcelain", "--", "src", "csrc"],
                                   capture_output=True, text=True, timeout=10).stdout.strip()
        git = f", git {rev}{' + uncommitted changes in src/ or csrc/' if dirty else ''}" if rev else ""
    except (OSError, subprocess.SubprocessError):
        git = ""
    return f"{os.path.relpath(so)} built {built}{git}"


def print_machine():
    print("# fastmlp benchmark: compare.py\n")
    cmd = " ".join(["python"] + [os.path.relpath(sys.argv[0])] + sys.argv[1:])
    set_vars = [k for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if ENV_AT_START[k] is not None]
    prefix = " ".join(f"{k}={ENV_AT_START[k]}" for k in set_vars)
    print(f"- command: `{(prefix + ' ') if prefix else ''}{cmd}`")
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:
        ncpu = os.cpu_count()
    print(f"- machine: {cpu_model()}, {os.cpu_count()} logical CPUs ({ncpu} usable), "
          f"{platform.system()} {platform.release()}, Python {platform.python_version()}")
    print(f"- fastmlp build: {build_info()}")
    cfg = fastmlp.show_config(print_fn=None)
    print("- fastmlp.show_config(): " + ", ".join(f"{k}={v}" for k, v in cfg.items()))
    if set_vars:
        print(f"- WARNING: {', '.join(f'{k}={ENV_AT_START[k]}' for k in set_vars)} set: numpy's "
              "OpenBLAS (numpy and scikit-learn baselines) may be slowed; rerun with "
              "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE` for a fair baseline")
    else:
        print("- OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE: not set")
    thr = [f"fastmlp {fastmlp.get_num_threads()}"]
    if torch is not None:
        thr.append(f"torch {torch.get_num_threads()}")
    if threadpoolctl is not None:
        for info in threadpoolctl.threadpool_info():
            if info.get("internal_api") == "openblas" and "numpy" in info.get("filepath", ""):
                thr.append(f"numpy OpenBLAS {info.get('version')} {info.get('architecture')} "
                           f"{info.get('num_threads')}")
    thr.append(f"onnxruntime {ARGS.threads if ARGS.threads else 'default'}")
    print("- threads: " + ", ".join(thr) + (f" (--threads {ARGS.threads})" if ARGS.threads else ""))
    vers = [f"numpy {np.__version__}"]
    for name, mod in (("torch", torch), ("keras", keras), ("onnxruntime", ort), ("jax", jax),
                      ("optax", optax)):
        if mod is not None:
            vers.append(f"{name} {mod.__version__}")
    if MLPClassifier is not None:
        import sklearn
        vers.append(f"scikit-learn {sklearn.__version__}")
    print("- versions: " + ", ".join(vers))
    for peer, why in SKIPPED:
        print(f"- skipped peer {peer}: {why}")
    measure_peak_sgemm()
    print(f"- peak sgemm (2048×2048×2048 float32, best of {PEAK_REPS} calls): {peak_text()}")
    print(f"- load average at start (1/5/15 min): {loadavg()} -- other processes on the machine "
          "add noise; the systems are interleaved so that it hits all of them alike")
    print(f"- timing: {ROUNDS} interleaved rounds, ~{WINDOW:g} s per training chunk, medians; "
          f"{SETTLE_S:g} s idle before each timed burst (see settle())"
          + (" (--quick)" if QUICK else ""))
    sys.stdout.flush()


# --------------------------------------------------------------------------- timing core

SETTLE_S = 0.15


def settle():
    """Let the previous system's idle worker threads stop spinning before the next one is
    timed: OpenBLAS's spin for about 2^28 cycles (~0.1 s) after a call, torch's OpenMP pool
    for a while too, and a spinning thread holds a core that the next system's workers need
    (on 2 cores this halved fastmlp's 2-thread GEMMs measured right after numpy's).  Each
    system is thus timed on an otherwise idle machine, as when it runs alone."""
    time.sleep(SETTLE_S)


def interleave(runners, rounds):
    """``runners``: {name: fn() -> units of work done}.  Returns {name: [units/s per round]}.

    Systems take turns; the order rotates each round so that none always follows the same one.
    """
    names = list(runners)
    rates = {n: [] for n in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            settle()
            t0 = time.perf_counter()
            units = runners[name]()
            dt = time.perf_counter() - t0
            rates[name].append(units / dt)
    return rates


def calibrate(run, unit0, window, max_units, prepare=None):
    """Find how many units ``run(units)`` (returns units done) does in ``window`` s.

    ``prepare(units)``, when given, is called untimed before each timed ``run(units)``: the JIT
    peers compile there what a new size needs (an epoch's scan length, a last partial batch)."""
    if prepare is not None:
        prepare(unit0)
    run(unit0)  # warm-up: first-call compilation, caches, thread pools
    units = unit0
    while True:
        if prepare is not None:
            prepare(units)
        t0 = time.perf_counter()
        done = run(units)
        dt = time.perf_counter() - t0
        if dt >= min(0.15, window / 2) or units >= max_units:
            break
        units = min(max_units, units * 4)
    return max(unit0, int(done / dt * window))


# --------------------------------------------------------------------------- data

def binary_data():
    rng = np.random.default_rng(SEED)
    n = 12_000
    x = rng.standard_normal((n, 8)).astype(np.float32)
    w = rng.standard_normal(8)
    logit = x @ w + 1.5 * x[:, 0] * x[:, 1] - 0.5 * x[:, 2] ** 2 + 0.5
    y = (logit + 0.3 * rng.standard_normal(n) > 0).astype(np.int64)
    return (x[:10_000], y[:10_000]), (x[10_000:], y[10_000:])


def iris_data():
    (x, y), (xt, yt) = fastmlp.datasets.iris.load_data()
    mu, sd = x.mean(0), x.std(0)
    return ((x - mu) / sd).astype(np.float32), y.astype(np.int64), \
        ((xt - mu) / sd).astype(np.float32), yt.astype(np.int64)


_FASHION = None


def fashion_data():
    global _FASHION
    if _FASHION is None:
        try:
            (x, y), (xt, yt) = fastmlp.datasets.fashion_mnist.load_data()
            note = "Fashion-MNIST"
        except Exception as e:  # absent: synthetic data of the same shape
            rng = np.random.default_rng(SEED)
            centers = rng.random((10, 784)) * 255
            y = rng.integers(0, 10, 60_000)
            yt = rng.integers(0, 10, 10_000)
            x = np.clip(centers[y] + rng.normal(0, 80, (60_000, 784)), 0, 255)
            xt = np.clip(centers[yt] + rng.normal(0, 80, (10_000, 784)), 0, 255)
            note = f"SYNTHETIC data of Fashion-MNIST's shape (dataset not found: {e})"
        x = np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float32) / np.float32(255)
        xt = np.ascontiguousarray(xt.reshape(len(xt), -1), dtype=np.float32) / np.float32(255)
        _FASHION = (x, y.astype(np.int64), xt, yt.astype(np.int64), note)
    return _FASHION


# --------------------------------------------------------------------------- models

class Workload:
    def __init__(self, key, title, sizes, hidden_act, out, batch, data, target_vs_torch,
                 acc_epochs):
        self.key, self.title, self.sizes, self.hidden_act = key, title, sizes, hidden_act
        self.out, self.batch, self.target, self.acc_epochs = out, batch, target_vs_torch, acc_epochs
        self.x, self.y, self.xt, self.yt = data
        self.binary = out == "sigmoid"
        self.loss = "binary_crossentropy" if self.binary else "sparse_categorical_crossentropy"


def epochs_and_rows(units, n_rows, batch):
    """Whole epochs when ``units`` is at least one epoch, else one epoch over the first rows."""
    if units >= n_rows:
        e = max(1, int(round(units / n_rows)))
        return e, n_rows
    return 1, max(batch, units // batch * batch)


class FastmlpTrainer:
    name = "fastmlp"

    def __init__(self, w, seed=SEED):
        fastmlp.utils.set_random_seed(seed)
        L = fastmlp.layers
        layers_ = [fastmlp.Input(shape=(w.sizes[0],))]
        for u in w.sizes[1:-1]:
            layers_.append(L.Dense(u, activation=w.hidden_act))
        layers_.append(L.Dense(w.sizes[-1], activation=w.out))
        self.model = fastmlp.Sequential(layers_)
        self.model.compile(optimizer=fastmlp.optimizers.Adam(learning_rate=1e-3), loss=w.loss,
                           metrics=["accuracy"])
        self.w = w
        self.y = w.y.astype(np.float32) if w.binary else w.y

    def train(self, units, x=None, y=None):
        w = self.w
        x = w.x if x is None else x
        y = self.y if y is None else y
        e, m = epochs_and_rows(units, len(x), w.batch)
        self.model.fit(x[:m], y[:m], batch_size=w.batch, epochs=e, verbose=0, shuffle=True)
        return e * m

    def accuracy(self):
        p = self.model.predict(self.w.xt, verbose=0)
        pred = (p[:, 0] > 0.5).astype(np.int64) if self.w.binary else p.argmax(1)
        return float((pred == self.w.yt).mean())


class TorchTrainer:
    name = "PyTorch"

    def __init__(self, w, init_weights=None, seed=SEED, threads=None):
        if threads is not None:
            self.name = f"PyTorch {threads} thread" + ("s" if threads > 1 else "")
        self.threads = threads
        torch.manual_seed(seed)
        nn = torch.nn
        act = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[w.hidden_act]
        mods = []
        for i in range(len(w.sizes) - 1):
            mods.append(nn.Linear(w.sizes[i], w.sizes[i + 1]))
            if i < len(w.sizes) - 2:
                mods.append(act())
        self.model = nn.Sequential(*mods)  # outputs logits; the loss applies sigmoid/softmax
        if init_weights is not None:
            with torch.no_grad():
                lin = [m for m in self.model if isinstance(m, nn.Linear)]
                for j, m in enumerate(lin):
                    m.weight.copy_(torch.from_numpy(np.ascontiguousarray(init_weights[2 * j].T)))
                    m.bias.copy_(torch.from_numpy(init_weights[2 * j + 1]))
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss_fn = nn.BCEWithLogitsLoss() if w.binary else nn.CrossEntropyLoss()
        self.X = torch.from_numpy(w.x)
        self.Y = torch.from_numpy(w.y.astype(np.float32).reshape(-1, 1)) if w.binary \
            else torch.from_numpy(w.y)
        self.w = w

    def train(self, units):
        if self.threads is None:
            return self._train(units)
        saved = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return self._train(units)
        finally:
            torch.set_num_threads(saved)

    def _train(self, units):
        bs = self.w.batch
        e, m = epochs_and_rows(units, len(self.X), bs)
        X, Y = self.X[:m], self.Y[:m]
        self.model.train()
        for _ in range(e):
            torch_epoch(torch, self.model, self.opt, self.loss_fn, X, Y, bs)
        return e * m

    def accuracy(self):
        self.model.eval()
        with torch.inference_mode():
            out = self.model(torch.from_numpy(self.w.xt)).numpy()
        pred = (out[:, 0] > 0).astype(np.int64) if self.w.binary else out.argmax(1)
        return float((pred == self.w.yt).mean())


class KerasTrainer:
    name = "Keras 3 (torch)"

    def __init__(self, w, seed=SEED):
        keras.utils.set_random_seed(seed)
        L = keras.layers
        layers_ = [keras.Input(shape=(w.sizes[0],))]
        for u in w.sizes[1:-1]:
            layers_.append(L.Dense(u, activation=w.hidden_act))
        layers_.append(L.Dense(w.sizes[-1], activation=w.out))
        self.model = keras.Sequential(layers_)
        self.model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss=w.loss,
                           metrics=["accuracy"])
        self.w = w
        self.y = w.y.astype(np.float32) if w.binary else w.y

    def train(self, units):
        e, m = epochs_and_rows(units, len(self.w.x), self.w.batch)
        self.model.fit(self.w.x[:m], self.y[:m], batch_size=self.w.batch, epochs=e, verbose=0,
                       shuffle=True)
        return e * m


class SklearnTrainer:
    name = "scikit-learn"

    def __init__(self, w, seed=SEED):
        self.model = MLPClassifier(hidden_layer_sizes=tuple(w.sizes[1:-1]),
                                   activation=w.hidden_act, solver="adam",
                                   learning_rate_init=1e-3, batch_size=w.batch, alpha=0.0,
                                   shuffle=True, random_state=seed)
        self.model.partial_fit(w.x[:w.batch], w.y[:w.batch], classes=np.unique(w.y))
        self.w = w

    def train(self, units):
        e, m = epochs_and_rows(units, len(self.w.x), self.w.batch)
        x, y = self.w.x[:m], self.w.y[:m]
        for _ in range(e):
            self.model.partial_fit(x, y)
        return e * m


class JaxTrainer:
    """The fastest idiomatic JAX: parameters as a pytree, ``optax.adam(1e-3)``, and one
    ``jax.jit`` function per epoch that shuffles (``jax.random.permutation``), gathers the
    epoch's batches as (steps, batch, features) arrays and runs the train steps with
    ``jax.lax.scan`` -- one dispatch per epoch; the last partial batch, if any, is one more step
    in the same function, as the other systems train on it too.  Losses from logits
    (``optax.sigmoid_binary_cross_entropy`` / ``softmax_cross_entropy_with_integer_labels``,
    means over the batch), the same as the PyTorch loop's.

    The epoch function is compiled ahead of time (``.lower().compile()``) for each number of
    rows it is given, in ``prepare``, outside the timed runs; ``compile_s`` keeps those times.
    """
    name = "JAX scan"

    def __init__(self, w, init_weights, seed=SEED):
        jnp = jax.numpy
        self.w = w
        self.params = [(jnp.asarray(init_weights[2 * j]), jnp.asarray(init_weights[2 * j + 1]))
                       for j in range(len(w.sizes) - 1)]
        act = {"relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid}[w.hidden_act]

        def forward(params, x):  # logits
            for k, b in params[:-1]:
                x = act(x @ k + b)
            k, b = params[-1]
            return x @ k + b
        self.forward = jax.jit(forward)

        if w.binary:
            def loss_fn(params, x, y):
                return optax.sigmoid_binary_cross_entropy(forward(params, x)[:, 0], y).mean()
        else:
            def loss_fn(params, x, y):
                return optax.softmax_cross_entropy_with_integer_labels(forward(params, x),
                                                                       y).mean()
        opt = optax.adam(1e-3)
        self.opt_state = opt.init(self.params)
        bs = w.batch

        def step(carry, batch):
            params, state = carry
            grads = jax.grad(loss_fn)(params, *batch)
            updates, state = opt.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        def epoch(params, state, key, x, y):
            key, sub = jax.random.split(key)
            perm = jax.random.permutation(sub, x.shape[0])
            steps = x.shape[0] // bs
            idx = perm[:steps * bs].reshape(steps, bs)
            carry, _ = jax.lax.scan(step, (params, state), (x[idx], y[idx]))
            if x.shape[0] % bs:
                rest = perm[steps * bs:]
                carry, _ = step(carry, (x[rest], y[rest]))
            return carry + (key,)
        self._epoch = jax.jit(epoch)
        self.key = jax.random.PRNGKey(seed)
        self._x = w.x
        self._y = w.y.astype(np.float32) if w.binary else w.y.astype(np.int32)
        self._compiled = {}  # rows -> (compiled epoch function, x, y on the device)
        self.compile_s = {}  # rows -> seconds to compile

    def prepare(self, units):
        _, m = epochs_and_rows(units, len(self._x), self.w.batch)
        if m not in self._compiled:
            x, y = jax.device_put(self._x[:m]), jax.device_put(self._y[:m])
            t0 = time.perf_counter()
            fn = self._epoch.lower(self.params, self.opt_state, self.key, x, y).compile()
            self.compile_s[m] = time.perf_counter() - t0
            self._compiled[m] = (fn, x, y)
        return m

    def train(self, units):
        e, m = epochs_and_rows(units, len(self._x), self.w.batch)
        self.prepare(units)  # compiles only for a number of rows not seen yet
        fn, x, y = self._compiled[m]
        params, state, key = self.params, self.opt_state, self.key
        for _ in range(e):
            params, state, key = fn(params, state, key, x, y)
        self.params, self.opt_state, self.key = jax.block_until_ready((params, state, key))
        return e * m

    def accuracy(self):
        out = np.asarray(self.forward(self.params, self.w.xt))
        pred = (out[:, 0] > 0).astype(np.int64) if self.w.binary else out.argmax(1)
        return float((pred == self.w.yt).mean())


class KerasJaxWorker:
    """The child process running ``_keras_jax_worker.py`` (Keras 3 on the JAX backend)."""

    def __init__(self):
        import subprocess
        env = dict(os.environ, KERAS_BACKEND="jax")
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", prefix="keras_jax_")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                          "_keras_jax_worker.py")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        self.info = self.ask(None)

    def ask(self, msg):
        import json
        if msg is not None:
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.log.seek(0)
            tail = self.log.read().strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"Keras-JAX worker exited: {tail[0][:200]}")
        rep = json.loads(line)
        if "error" in rep:
            raise RuntimeError(rep["error"])
        return rep

    def close(self):
        try:
            self.proc.stdin.write('{"cmd": "quit"}\n')
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()
        self.log.close()


_KJ = {}


def keras_jax_worker():
    """The shared worker, started on first use; None (with the reason in _KJ) if it fails."""
    if "worker" not in _KJ and "error" not in _KJ:
        try:
            _KJ["worker"] = KerasJaxWorker()
        except Exception as e:
            _KJ["error"] = f"{type(e).__name__}: {e}"
    return _KJ.get("worker")


class KerasJaxTrainer:
    """Keras 3 on JAX (``model.fit(verbose=0)``, jit-compiled train step, Keras's default) in
    the child process, from the given initial weights.  Each ``train`` is one request; the
    parent times the round trip (the pipe adds well under a millisecond to a chunk).
    ``warmup_s`` is the first call's time (tracing and XLA compilation of the train step plus
    that call's training); ``prepare`` compiles the step for a new last-batch size untimed."""
    name = "Keras 3 (JAX)"

    def __init__(self, w, init_weights, seed=SEED):
        self.worker = keras_jax_worker()
        if self.worker is None:
            raise RuntimeError(_KJ["error"])
        self.w = w
        self.path = os.path.join(tempfile.mkdtemp(), "data.npz")
        y = w.y.astype(np.float32) if w.binary else w.y
        np.savez(self.path, x=w.x, y=y, **{f"p{i}": a for i, a in enumerate(init_weights)})
        self.worker.ask({"cmd": "init", "data": self.path, "sizes": list(w.sizes),
                         "hidden_act": w.hidden_act, "out": w.out, "loss": w.loss,
                         "seed": seed})
        self.warmup_s = None
        self.batches = set()  # batch sizes (full and last partial) already compiled

    def _fit(self, e, m):
        return self.worker.ask({"cmd": "train", "epochs": e, "rows": m, "batch": self.w.batch})

    def prepare(self, units):
        _, m = epochs_and_rows(units, len(self.w.x), self.w.batch)
        rest = m % self.w.batch
        if self.batches and rest and rest not in self.batches:
            self._fit(1, rest)  # one partial batch: compiles the step for that shape
            self.batches.add(rest)

    def train(self, units):
        e, m = epochs_and_rows(units, len(self.w.x), self.w.batch)
        t0 = time.perf_counter()
        done = self._fit(e, m)["units"]
        if self.warmup_s is None:
            self.warmup_s = time.perf_counter() - t0
        self.batches.update({min(m, self.w.batch), m % self.w.batch} - {0})
        return done

    def close(self):
        shutil.rmtree(os.path.dirname(self.path), ignore_errors=True)


# --------------------------------------------------------------------------- train

def workloads():
    (xb, yb), (xbt, ybt) = binary_data()
    ws = [Workload("a", "8-10-5-1 relu/relu/sigmoid, batch 32, BCE", [8, 10, 5, 1], "relu",
                   "sigmoid", 32, (xb, yb, xbt, ybt), 20, 5 if QUICK else 20),
          Workload("b", "iris 4-4-3, batch 10, SCCE", [4, 4, 3], "relu", "softmax", 10,
                   iris_data(), 20, 20 if QUICK else 100)]
    x, y, xt, yt, note = fashion_data()
    if QUICK:  # accuracy runs on a 10k-row subset
        acc_rows = 10_000
    else:
        acc_rows = len(x)
    for key, sizes, bs, target in (("c", [784, 64, 64, 10], 32, 5),
                                   ("d", [784, 32, 10], 128, 4),
                                   ("e", [784, 512, 512, 10], 256, 1.3)):
        wl = Workload(key, f"{'-'.join(map(str, sizes))}, batch {bs}, SCCE", sizes, "relu",
                      "softmax", bs, (x, y, xt, yt), target, ACC_EPOCHS)
        wl.acc_rows = acc_rows
        ws.append(wl)
    for w in ws:
        w.target_jax = JAX_TARGETS[w.key]
    return ws, note


# issue 14's goals against the JAX scan, per workload (the sweep's widths share one)
JAX_TARGETS = {"a": 5, "b": 5, "c": 2, "d": 2, "e": 1.2, "sweep": 1.2}


T1 = "PyTorch 1 thread"
JX = JaxTrainer.name
KJ = KerasJaxTrainer.name


def run_train():
    section("Training throughput (samples/s, median of interleaved rounds; Adam lr 1e-3)")
    ws, note = workloads()
    print(f"Data: (a) synthetic 8-feature binary task, 10,000 rows; (b) iris, 120 train rows, "
          f"standardised; (c)-(e) {note}, 60,000 rows scaled to [0, 1].\n")
    rows, acc_rows, jit_rows, notes = [], [], [], []
    for w in ws:
        t_w = time.perf_counter()
        trainers = [FastmlpTrainer(w)]
        init = trainers[0].model.get_weights()  # the JIT peers start from fastmlp's weights
        if jax is not None:
            trainers.append(JaxTrainer(w, init))
        if KERAS_JAX and "error" not in _KJ:
            try:
                trainers.append(KerasJaxTrainer(w, init))
            except Exception as e:
                _KJ.setdefault("error", f"{type(e).__name__}: {e}")
                notes.append(f"Keras 3 (JAX) skipped from workload ({w.key}) on: {_KJ['error']}")
        if torch is not None:
            trainers.append(TorchTrainer(w))
            if torch.get_num_threads() > 1:
                trainers.append(TorchTrainer(w, threads=1))
        if keras is not None:
            trainers.append(KerasTrainer(w))
        if MLPClassifier is not None:
            trainers.append(SklearnTrainer(w))
        chunk = {}
        for t in trainers:
            prep = getattr(t, "prepare", None)
            chunk[t.name] = calibrate(t.train, w.batch * 4, WINDOW, max_units=10 ** 9,
                                      prepare=prep)
            if prep is not None:
                prep(chunk[t.name])  # nothing left to compile in the timed rounds
        runners = {t.name: (lambda t=t: t.train(chunk[t.name])) for t in trainers}
        rates = interleave(runners, ROUNDS)
        med = {k: statistics.median(v) for k, v in rates.items()}
        w.torch_threads = 1 if med.get(T1, 0) > med.get("PyTorch", 0) else None
        ours = med["fastmlp"]
        spread = (max(rates["fastmlp"]) - min(rates["fastmlp"])) / ours
        peers = ("PyTorch", T1, "Keras 3 (torch)", "scikit-learn", JX, KJ)
        ratio = {p: (ours / med[p] if p in med else None) for p in peers}
        best_torch = max([med[p] for p in ("PyTorch", T1) if p in med], default=None)
        r_t = ours / best_torch if best_torch else None
        rows.append([f"({w.key}) {w.title}", fmt_rate(ours)] + [fmt_rate(med.get(p)) for p in peers]
                    + [fmt_ratio(ratio[p]) for p in peers]
                    + [fmt_target(r_t, w.target), fmt_target(ratio[JX], w.target_jax),
                       f"±{100 * spread / 2:.0f}%"])
        jt = {t.name: t for t in trainers}
        if JX in jt or KJ in jt:
            j, k = jt.get(JX), jt.get(KJ)
            jit_rows.append([f"({w.key}) {w.title}",
                             f"{j.compile_s[j.prepare(chunk[JX])]:.2f}" if j else "—",
                             f"{len(j.compile_s)} / {sum(j.compile_s.values()):.2f}" if j else "—",
                             f"{k.warmup_s:.2f}" if k else "—"])
        for t in trainers:
            if hasattr(t, "close"):
                t.close()
        print(f"  ({w.key}) timed in {time.perf_counter() - t_w:.1f} s: "
              + ", ".join(f"{k} {fmt_rate(v)}" for k, v in med.items()), file=sys.stderr,
              flush=True)
    table(["workload", "fastmlp", "PyTorch", "PyTorch 1 thread", "Keras 3 (torch)",
           "scikit-learn", JX, KJ, "×PyTorch", "×PyTorch 1 thread", "×Keras", "×sklearn",
           "×JAX scan", "×Keras (JAX)", "target × best PyTorch", "target × JAX scan", "fastmlp spread"],
          rows)
    print("\"PyTorch\" runs on torch's default thread count; \"PyTorch 1 thread\" is the same "
          "loop under torch.set_num_threads(1), which is much faster for small networks on a "
          "busy 2-core machine.  The target column compares against the faster of the two.  "
          "\"JAX scan\": optax Adam, one jax.jit function per epoch (shuffle, batches stacked "
          "as (steps, batch, features), jax.lax.scan over the train steps); \"Keras 3 (JAX)\": "
          "Keras fit(verbose=0) on the JAX backend in a child process.  Both start from "
          "fastmlp's initial weights; their compile times are below, outside the timed "
          "rounds.\n")
    if KERAS_JAX and "worker" in _KJ:
        i = _KJ["worker"].info
        print(f"Keras-JAX worker: keras {i['keras']}, jax {i['jax']}, {', '.join(i['devices'])}.\n")
    for n in notes:
        print(f"Note: {n}\n")
    if jit_rows:
        table(["workload", "JAX scan: compile of the timed epoch function (s)",
               "JAX scan: compilations / total s (calibration sizes too)",
               "Keras 3 (JAX): first fit() call (s)"], jit_rows)
        print("JAX compiles ahead of time (jit(...).lower().compile()) once per number of rows "
              "an epoch call sees; Keras's first fit() call includes tracing and compiling its "
              "train step plus that call's training of ~4 batches.  Neither is in the timed "
              "rounds.\n")
    if "worker" in _KJ:
        _KJ.pop("worker").close()

    if torch is None:
        print("Accuracy check skipped: PyTorch not installed.\n")
        return
    print("Test accuracy after training fresh models from the same initial weights, same "
          "epochs, batch size and optimizer (fastmlp vs PyTorch and JAX; full-epoch samples/s of "
          "these runs alongside):\n")
    for w in ws:
        n_rows = getattr(w, "acc_rows", len(w.x))
        xs, ys = w.x[:n_rows], w.y[:n_rows]
        sub = Workload(w.key, w.title, w.sizes, w.hidden_act, w.out, w.batch,
                       (xs, ys, w.xt, w.yt), w.target, w.acc_epochs)
        f = FastmlpTrainer(sub, seed=SEED + 1)
        tt = TorchTrainer(sub, init_weights=f.model.get_weights(), seed=SEED + 1,
                          threads=getattr(w, "torch_threads", None))
        tt.name = "PyTorch"
        systems = [f, tt]
        if jax is not None:
            systems.append(JaxTrainer(sub, f.model.get_weights(), seed=SEED + 1))
            systems[-1].prepare(w.acc_epochs * n_rows)  # compiled outside the timing
        res = {}
        for t in systems:
            t0 = time.perf_counter()
            t.train(w.acc_epochs * n_rows)
            dt = time.perf_counter() - t0
            res[t.name] = (t.accuracy(), w.acc_epochs * n_rows / dt)
        (fa, fr), (ta, tr) = res["fastmlp"], res["PyTorch"]
        th = tt.threads or torch.get_num_threads()
        ja, jr = res.get(JX, (None, None))
        acc_rows.append([f"({w.key}) {w.title}", f"{w.acc_epochs} × {n_rows:,}", f"{fa:.4f}",
                         f"{ta:.4f}", f"{fa - ta:+.4f}",
                         f"{ja:.4f}" if ja is not None else "—",
                         f"{fa - ja:+.4f}" if ja is not None else "—",
                         fmt_rate(fr), f"{fmt_rate(tr)} ({th}t)", fmt_rate(jr),
                         fmt_ratio(fr / tr), fmt_ratio(fr / jr) if jr else "—"])
    table(["workload", "epochs × rows", "fastmlp acc", "PyTorch acc", "Δ PyTorch", "JAX acc",
           "Δ JAX", "fastmlp samples/s", "PyTorch samples/s (threads)", "JAX scan samples/s",
           "×PyTorch", "×JAX scan"], acc_rows)
    print("PyTorch runs this check on whichever thread count was faster above; JAX (optax) "
          "starts from the same weights, its compilation not timed.\n")


# --------------------------------------------------------------------------- width sweep

SWEEP_WIDTHS = (256, 512, 1024, 2048)


def run_sweep():
    """784-W-W-10 at batch 128 on Fashion-MNIST, fastmlp against the JAX scan, interleaved."""
    section("Width sweep: 784-W-W-10, batch 128, Adam (samples/s and GFLOP/s of the train step)")
    if jax is None:
        print("Skipped: JAX not installed (pip install jax optax).\n")
        return
    x, y, xt, yt, note = fashion_data()
    widths = SWEEP_WIDTHS[:2] if QUICK else SWEEP_WIDTHS
    rows = []
    for width in widths:
        t_w = time.perf_counter()
        sizes = [784, width, width, 10]
        w = Workload(f"W{width}", f"784-{width}-{width}-10, batch 128", sizes, "relu", "softmax", 128,
                     (x, y, xt, yt), None, 1)
        f = FastmlpTrainer(w)
        j = JaxTrainer(w, f.model.get_weights())
        chunk = {}
        for t in (f, j):
            prep = getattr(t, "prepare", None)
            chunk[t.name] = calibrate(t.train, w.batch * 4, WINDOW, max_units=10 ** 9, prepare=prep)
            if prep is not None:
                prep(chunk[t.name])
        rates = interleave({t.name: (lambda t=t: t.train(chunk[t.name])) for t in (f, j)}, ROUNDS)
        med = {k: statistics.median(v) for k, v in rates.items()}
        mults = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
        flops = 2 * (2 * sum(mults) + sum(mults[1:]))   # forward, weight gradients, input gradients past layer 1
        ratio = med["fastmlp"] / med[JX]
        rows.append([f"784-{width}-{width}-10", fmt_rate(med["fastmlp"]), fmt_rate(med[JX]),
                     f"{med['fastmlp'] * flops / 1e9:.0f}", f"{med[JX] * flops / 1e9:.0f}", fmt_ratio(ratio),
                     fmt_target(ratio, JAX_TARGETS["sweep"])])
        print(f"  (W={width}) timed in {time.perf_counter() - t_w:.1f} s: "
              + ", ".join(f"{k} {fmt_rate(v)}" for k, v in med.items()), file=sys.stderr, flush=True)
    table(["net", "fastmlp samples/s", "JAX scan samples/s", "fastmlp GFLOP/s", "JAX GFLOP/s", "×JAX scan",
           "target × JAX scan"], rows)
    print(f"GFLOP/s counts a train step's GEMMs per sample: forward and weight gradients of every layer, "
          f"input gradients of all but the first; {note}.\n")


# --------------------------------------------------------------------------- predict

def time_calls(fn, n_calls):
    ts = []
    pc = time.perf_counter_ns
    for _ in range(n_calls):
        t0 = pc()
        fn()
        ts.append(pc() - t0)
    return ts


def _with_torch_threads(fn, n):
    def run(a):
        saved = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            return fn(a)
        finally:
            torch.set_num_threads(saved)
    return run


def run_predict():
    section("Inference, 784-64-64-10 (softmax output), same weights everywhere")
    x, y, xt, yt, note = fashion_data()
    fastmlp.utils.set_random_seed(SEED)
    L = fastmlp.layers
    fm = fastmlp.Sequential([fastmlp.Input(shape=(784,)), L.Dense(64, activation="relu"),
                             L.Dense(64, activation="relu"), L.Dense(10, activation="softmax")])
    fm.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    fm.fit(x[:6000], y[:6000], batch_size=32, epochs=1, verbose=0)  # realistic weights
    weights = fm.get_weights()
    x1 = np.ascontiguousarray(xt[:1])
    xb = np.ascontiguousarray(xt[:1024])
    ref = fm.predict(xb, verbose=0)

    # name -> (fn(a) -> numpy, family); the targets compare against a family's best variant
    systems = {"fastmlp": (lambda a: fm.predict(a, batch_size=1024, verbose=0), "fastmlp")}
    notes = []
    one_thread = ARGS.threads != 1 and (torch is not None and torch.get_num_threads() > 1)
    if torch is not None:
        nn = torch.nn
        tm = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                           nn.Linear(64, 10), nn.Softmax(dim=1))
        with torch.no_grad():
            for j, m in enumerate([m for m in tm if isinstance(m, nn.Linear)]):
                m.weight.copy_(torch.from_numpy(np.ascontiguousarray(weights[2 * j].T)))
                m.bias.copy_(torch.from_numpy(weights[2 * j + 1]))
        tm.eval()

        def torch_predict(a, tm=tm):
            with torch.inference_mode():
                return tm(torch.from_numpy(a)).numpy()
        systems["PyTorch"] = (torch_predict, "PyTorch")
        if one_thread:
            systems["PyTorch 1 thread"] = (_with_torch_threads(torch_predict, 1), "PyTorch")
        if ort is not None:
            path = os.path.join(scratch_dir(), "mlp.onnx")
            try:
                with contextlib.redirect_stdout(io.StringIO()), \
                        contextlib.redirect_stderr(io.StringIO()):
                    try:
                        torch.onnx.export(tm, (torch.from_numpy(x1),), path, input_names=["x"],
                                          output_names=["y"],
                                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
                                          dynamo=False)
                    except TypeError:
                        torch.onnx.export(tm, (torch.from_numpy(x1),), path, input_names=["x"],
                                          output_names=["y"],
                                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
                for threads in ([ARGS.threads] if ARGS.threads else [None, 1]):
                    so = ort.SessionOptions()
                    if threads:
                        so.intra_op_num_threads = threads
                    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
                    name = "onnxruntime" if threads in (None, ARGS.threads) else \
                        "onnxruntime 1 thread"
                    systems[name] = (lambda a, s=sess: s.run(None, {"x": a})[0], "onnxruntime")
            except Exception as e:
                notes.append(f"onnxruntime skipped: ONNX export failed ({type(e).__name__}: {e})")
    elif ort is not None:
        notes.append("onnxruntime skipped: the ONNX model is exported from torch, not installed")
    if keras is not None:
        km = keras.Sequential([keras.Input(shape=(784,)),
                               keras.layers.Dense(64, activation="relu"),
                               keras.layers.Dense(64, activation="relu"),
                               keras.layers.Dense(10, activation="softmax")])
        km.set_weights(weights)
        systems["Keras 3 (torch)"] = (
            lambda a, km=km: np.asarray(km.predict(a, batch_size=1024, verbose=0)), "Keras")

    diffs = {}
    for name, (fn, _) in systems.items():
        out = fn(xb)
        diffs[name] = float(np.max(np.abs(np.asarray(out, dtype=np.float64) - ref)))
        fn(x1)
    lat = {n: [] for n in systems}
    thr = {n: [] for n in systems}
    budget1 = 0.03 if QUICK else 0.2
    budget_b = 0.05 if QUICK else 0.3
    n1, nb = {}, {}
    for name, (fn, _) in systems.items():
        t0 = time.perf_counter()
        for _ in range(10):
            fn(x1)
        per = (time.perf_counter() - t0) / 10
        n1[name] = max(10, int(budget1 / per))
        t0 = time.perf_counter()
        for _ in range(2):
            fn(xb)
        per = (time.perf_counter() - t0) / 2
        nb[name] = max(2, int(budget_b / per))
    names = list(systems)
    for r in range(ROUNDS + 2):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            fn = systems[name][0]
            settle()
            lat[name] += time_calls(lambda: fn(x1), n1[name])
            settle()
            thr[name] += time_calls(lambda: fn(xb), nb[name])
    med1 = {n: statistics.median(v) / 1e3 for n, v in lat.items()}        # µs
    medb = {n: 1024 / (statistics.median(v) / 1e9) for n, v in thr.items()}  # samples/s
    best1, bestb = {}, {}
    for n, (_, fam) in systems.items():
        best1[fam] = min(best1.get(fam, float("inf")), med1[n])
        bestb[fam] = max(bestb.get(fam, 0.0), medb[n])
    targets1 = {"PyTorch": 4.0, "onnxruntime": 1.0}
    targetsb = {"onnxruntime": 0.95}
    rows = []
    for n in names:
        fam = systems[n][1]
        r1 = med1[n] / med1["fastmlp"]
        rb = medb["fastmlp"] / medb[n]
        first = n == names[0] or systems[names[names.index(n) - 1]][1] != fam
        t1 = fmt_target(best1[fam] / med1["fastmlp"], targets1.get(fam)) if first else ""
        tb = fmt_target(medb["fastmlp"] / bestb[fam], targetsb.get(fam)) if first else ""
        rows.append([n, fmt_us(med1[n]), fmt_rate(medb[n]),
                     "" if n == "fastmlp" else fmt_ratio(r1),
                     "" if n == "fastmlp" else fmt_ratio(rb), t1, tb, f"{diffs[n]:.1e}"])
    table(["system", "predict 1 sample (µs, median)", "batch 1024 (samples/s)",
           "fastmlp speed × (1 sample)", "fastmlp speed × (batch 1024)",
           "target vs best variant (1 sample)", "target vs best variant (batch 1024)",
           "max |Δ| vs fastmlp"], rows)
    print(f"Calls timed: {', '.join(f'{n} {len(lat[n])}×1 + {len(thr[n])}×1024' for n in names)}."
          " Every call goes numpy in → numpy out; fastmlp and Keras predict with "
          "batch_size=1024.")
    for s in notes:
        print(f"Note: {s}")
    print()


# --------------------------------------------------------------------------- gemm

GEMM_SHAPES = [((1024, 1024, 1024), 0.9), ((256, 784, 512), 0.9), ((128, 784, 64), 1.0),
               ((32, 784, 64), 1.0), ((32, 64, 10), 1.5), ((1, 784, 64), 1.5)]


def run_gemm():
    section("GEMM, float32, C-contiguous: fastmlp.ops.matmul vs numpy (µs per call, median)")
    rng = np.random.default_rng(SEED)
    window = 0.03 if QUICK else 0.05
    rounds = 2 * ROUNDS + 3
    cases = []
    for (m, k, n), target in GEMM_SHAPES:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        fns, outs = {}, {}
        c1 = np.empty((m, n), np.float32)
        fns["fastmlp"] = lambda a=a, b=b, c=c1: fastmlp.ops.matmul(a, b, out=c)
        outs["fastmlp"] = c1
        c2 = np.empty((m, n), np.float32)
        fns["numpy"] = lambda a=a, b=b, c=c2: np.matmul(a, b, out=c)
        outs["numpy"] = c2
        if torch is not None:
            c3 = np.empty((m, n), np.float32)
            fns["torch"] = lambda ta=torch.from_numpy(a), tb=torch.from_numpy(b), \
                tc=torch.from_numpy(c3): torch.mm(ta, tb, out=tc)
            outs["torch"] = c3
        reps = {}
        for name, fn in fns.items():
            fn()
            t0 = time.perf_counter()
            cnt = 0
            while time.perf_counter() - t0 < 0.02:
                fn()
                cnt += 1
            reps[name] = max(1, int(window / ((time.perf_counter() - t0) / cnt)))
        cases.append(((m, k, n), target, a, b, fns, outs, reps))

    # rounds outermost: a burst of load from elsewhere hits one round of every shape, and the
    # median over rounds discards it, instead of spoiling every round of one shape
    times = {(c[0], nm): [] for c in cases for nm in c[4]}
    for r in range(rounds):
        for shape, _, _, _, fns, _, reps in cases:
            names = list(fns)
            k = r % len(names)
            for nm in names[k:] + names[:k]:
                fn, cnt = fns[nm], reps[nm]
                settle()
                t0 = time.perf_counter()
                for _ in range(cnt):
                    fn()
                times[(shape, nm)].append((time.perf_counter() - t0) / cnt)
    rows = []
    for (m, k, n), target, a, b, fns, outs, reps in cases:
        us = {nm: 1e6 * statistics.median(times[((m, k, n), nm)]) for nm in fns}
        ref = a.astype(np.float64) @ b.astype(np.float64)
        err = float(np.max(np.abs(outs["fastmlp"] - ref)) / max(1e-30, np.max(np.abs(ref))))
        flops = 2.0 * m * k * n
        r_np = us["numpy"] / us["fastmlp"]
        rows.append([f"{m}×{k}×{n}", fmt_us(us["fastmlp"]), fmt_us(us["numpy"]),
                     fmt_us(us["torch"]) if "torch" in us else "—",
                     f"{flops / us['fastmlp'] / 1e3:.1f}", f"{flops / us['numpy'] / 1e3:.1f}",
                     fmt_ratio(r_np),
                     fmt_ratio(us["torch"] / us["fastmlp"]) if "torch" in us else "—",
                     fmt_target(r_np, target), f"{err:.1e}"])
    table(["M×K×N", "fastmlp µs", "numpy µs", "torch µs", "fastmlp GFLOP/s", "numpy GFLOP/s",
           "×numpy", "×torch", "target ×numpy", "fastmlp max rel err"], rows)
    print(f"{rounds} rounds; in each, every shape and system runs ~{window * 1e3:g} ms of calls "
          "(output preallocated for all).\n")


# --------------------------------------------------------------------------- main

def main():
    t0 = time.perf_counter()
    print_machine()
    only = ARGS.only or list(SECTIONS)
    for name, fn in (("train", run_train), ("sweep", run_sweep), ("predict", run_predict), ("gemm", run_gemm)):
        if name in only:
            ts = time.perf_counter()
            fn()
            print(f"  [{name} section: {time.perf_counter() - ts:.0f} s]", file=sys.stderr,
                  flush=True)
    print(f"Total wall time: {time.perf_counter() - t0:.0f} s; load average at the end: {loadavg()}")


if __name__ == "__main__":
    main()
