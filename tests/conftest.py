import os

import numpy as np
import pytest

import fastmlp


def pytest_sessionstart(session):
    """In a source tree built in place, a compiled module older than its .py would
    run the old code (Python imports the compiled one first): refuse to test it."""
    import sys
    stale = []
    for name in fastmlp._compiled_modules():
        so = sys.modules["fastmlp." + name].__file__
        py = os.path.join(os.path.dirname(so), name + ".py")
        if os.path.exists(py) and os.path.getmtime(py) > os.path.getmtime(so) + 1:
            stale.append(name)
    if stale and os.path.basename(os.path.dirname(os.path.dirname(so))) == "src":
        raise pytest.UsageError(f"fastmlp modules {stale} were edited after they were compiled: rebuild with "
                                f"`python setup.py build_ext --inplace` (or build with FASTMLP_PURE_PYTHON=1)")


@pytest.fixture(autouse=True)
def _fresh_seed():
    """Every test starts from the same global seed and float32."""
    fastmlp.utils.set_random_seed(1234)
    fastmlp.config.set_floatx("float32")
    yield
    fastmlp.config.set_floatx("float32")


def fashion_mnist_available():
    try:
        fastmlp.datasets.fashion_mnist.load_data()
        return True
    except FileNotFoundError:
        return False
