"""Shared builders for the pytest-benchmark files: the same network, with the same weights,
in fastmlp and in each peer.  Data are synthetic (values do not change the speed)."""
import atexit
import os
import platform
import shutil
import tempfile

import numpy as np

import fastmlp

SEED = 1234


def scratch_dir(prefix="fastmlp-bench-"):
    """A new temporary folder for a benchmark's files, removed when the process exits (the
    model files some benchmarks write are megabytes each)."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def mlp_data(n, n_in, n_classes, seed=SEED):
    rng = np.random.default_rng(seed)
    x = rng.random((n, n_in), dtype=np.float32)
    if n_classes == 1:
        y = (x[:, 0] + x[:, 1] > 1).astype(np.float32)
    else:
        y = rng.integers(0, n_classes, n).astype(np.int64)
    return x, y


def fastmlp_model(sizes, out="softmax", loss=None):
    fastmlp.utils.set_random_seed(SEED)
    L = fastmlp.layers
    layers = [fastmlp.Input(shape=(sizes[0],))]
    layers += [L.Dense(u, activation="relu") for u in sizes[1:-1]]
    layers.append(L.Dense(sizes[-1], activation=out))
    m = fastmlp.Sequential(layers)
    loss = loss or ("binary_crossentropy" if out == "sigmoid" else "sparse_categorical_crossentropy")
    m.compile(optimizer=fastmlp.optimizers.Adam(learning_rate=1e-3), loss=loss, metrics=["accuracy"])
    return m


def keras_model(keras, sizes, out="softmax", weights=None):
    keras.utils.set_random_seed(SEED)
    L = keras.layers
    layers = [keras.Input(shape=(sizes[0],))]
    layers += [L.Dense(u, activation="relu") for u in sizes[1:-1]]
    layers.append(L.Dense(sizes[-1], activation=out))
    m = keras.Sequential(layers)
    loss = "binary_crossentropy" if out == "sigmoid" else "sparse_categorical_crossentropy"
    m.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss=loss, metrics=["accuracy"])
    if weights is not None:
        m.set_weights(weights)
    return m


def torch_model(torch, sizes, weights=None, softmax=False):
    """Linear/ReLU stack returning logits (or probabilities with ``softmax``)."""
    nn = torch.nn
    torch.manual_seed(SEED)
    mods = []
    for i in range(len(sizes) - 1):
        mods.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            mods.append(nn.ReLU())
    if softmax:
        mods.append(nn.Softmax(dim=1))
    m = nn.Sequential(*mods)
    if weights is not None:
        with torch.no_grad():
            for j, lin in enumerate([l for l in m if isinstance(l, nn.Linear)]):
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(weights[2 * j].T)))
                lin.bias.copy_(torch.from_numpy(weights[2 * j + 1]))
    return m


def torch_epoch(torch, model, opt, loss_fn, X, Y, batch_size):
    """The loop a PyTorch user writes: shuffled index batches, no DataLoader."""
    n = len(X)
    perm = torch.randperm(n)
    for i in range(0, n, batch_size):
        idx = perm[i:i + batch_size]
        loss = loss_fn(model(X[idx]), Y[idx])
        loss.backward()
        opt.step()
        opt.zero_grad()


def fashion_mnist_train_float32():
    """Fashion-MNIST's training set as (x float32 (60000, 784) scaled in place, y, source);
    a synthetic stand-in of the same shape when the IDX files are not installed."""
    import fastmlp
    try:
        (x, y), _ = fastmlp.datasets.fashion_mnist.load_data()
        source = "Fashion-MNIST"
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        x, y = rng.integers(0, 256, (60000, 28, 28), dtype=np.uint8), rng.integers(0, 10, 60000)
        source = "synthetic 60000x784"
    x = x.reshape(len(x), -1).astype(np.float32)
    x /= 255
    return x, y, source


def cpu_model():
    """The CPU's model name, as the benchmark tables state it."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def loadavg():
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


def fashion_trained(model, epochs):
    """``model`` fit on Fashion-MNIST's training images (flat, scaled to [0, 1]) for ``epochs``
    at batch 128: (model, test images, test labels, seconds the fit took)."""
    import time
    from fastmlp.datasets import fashion_mnist
    (xtr, ytr), (xte, yte) = fashion_mnist.load_data()
    xtr = xtr.reshape(len(xtr), -1).astype(np.float32) / 255
    xte = xte.reshape(len(xte), -1).astype(np.float32) / 255
    t0 = time.perf_counter()
    model.fit(xtr, ytr, batch_size=128, epochs=epochs, verbose=0)
    return model, xte, yte, time.perf_counter() - t0
