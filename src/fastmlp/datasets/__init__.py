"""Datasets returning ``(x_train, y_train), (x_test, y_test)`` as ``keras.datasets`` does.

``iris`` ships inside the package; ``fashion_mnist`` and ``mnist`` read the
standard IDX files from a folder (no network access at run time).
"""
from . import fashion_mnist, iris, mnist
from ._idx import load_idx

__all__ = ["iris", "fashion_mnist", "mnist", "load_idx"]
