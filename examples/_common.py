"""Shared helpers for the examples: a --fast flag and Fashion-MNIST loading."""
import argparse

import numpy as np


def parse_args(description, epochs):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--fast", action="store_true", help="a few seconds on a subset (used by the tests)")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def fashion_mnist(fast, flatten=True):
    """Scaled Fashion-MNIST, or a synthetic stand-in of the same shape when the
    IDX files are not installed (the example says which it used)."""
    import fastmlp
    try:
        (x, y), (xt, yt) = fastmlp.datasets.fashion_mnist.load_data()
        source = "Fashion-MNIST"
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        centers = rng.random((10, 28, 28))
        y, yt = rng.integers(0, 10, 6000), rng.integers(0, 10, 1000)
        x = (centers[y] * 255 * 0.6 + rng.random((len(y), 28, 28)) * 100).astype(np.uint8)
        xt = (centers[yt] * 255 * 0.6 + rng.random((len(yt), 28, 28)) * 100).astype(np.uint8)
        source = "synthetic stand-in (apt-get install dataset-fashion-mnist for the real data)"
    if fast:
        x, y, xt, yt = x[:3000], y[:3000], xt[:1000], yt[:1000]
    x = x.astype("float32") / 255
    xt = xt.astype("float32") / 255
    if flatten:
        x, xt = x.reshape(len(x), -1), xt.reshape(len(xt), -1)
    return (x, y.astype(np.int64)), (xt, yt.astype(np.int64)), source
