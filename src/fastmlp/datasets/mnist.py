"""MNIST digits: 60,000 training and 10,000 test images of 28x28 uint8 pixels."""
from ._idx import load_mnist_family


def load_data(path=None):
    """``(x_train, y_train), (x_test, y_test)`` from ``path`` or ``$FASTMLP_DATA``."""
    return load_mnist_family("mnist", path)
