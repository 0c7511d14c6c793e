"""Fashion-MNIST: 60,000 training and 10,000 test images of 28x28 uint8 pixels, 10 classes."""
from ._idx import load_mnist_family

CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
               "Bag", "Ankle boot")


def load_data(path=None):
    """``(x_train, y_train), (x_test, y_test)`` from ``path``, ``$FASTMLP_DATA`` or
    ``/usr/share/datasets/fashion-mnist``."""
    return load_mnist_family("fashion_mnist", path)
