import os

import numpy as np
import pytest

import fastmlp


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


@pytest.fixture
def onnx():
    """The onnx package (the ONNX tests skip without it)."""
    return pytest.importorskip("onnx")


@pytest.fixture
def ort():
    """onnxruntime, which runs the exported graphs."""
    return pytest.importorskip("onnxruntime")
