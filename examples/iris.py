"""Iris with scikit-learn preprocessing (StandardScaler, one-hot labels) and evaluate.

A 4-32-3 network with an L2-regularized hidden layer and categorical
cross-entropy, 100 epochs of batch 10.  Without scikit-learn installed, the
same scaling is done with NumPy.
"""
import numpy as np

from _common import parse_args

import fastmlp as keras
from fastmlp import layers, regularizers


def main():
    args = parse_args(__doc__.splitlines()[0], epochs=100)
    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = keras.datasets.iris.load_data()
    try:
        from sklearn.preprocessing import OneHotEncoder, StandardScaler
        scaler = StandardScaler().fit(x_train)
        x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
        encoder = OneHotEncoder(sparse_output=False).fit(y_train.reshape(-1, 1))
        y_train_1h, y_test_1h = encoder.transform(y_train.reshape(-1, 1)), encoder.transform(y_test.reshape(-1, 1))
        prep = "scikit-learn"
    except ImportError:
        mean, std = x_train.mean(0), x_train.std(0)
        x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
        y_train_1h, y_test_1h = np.eye(3)[y_train], np.eye(3)[y_test]
        prep = "NumPy"
    model = keras.Sequential([keras.Input(shape=(4,)),
                              layers.Dense(32, activation="relu", kernel_regularizer=regularizers.l2(0.01)),
                              layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    epochs = 30 if args.fast else args.epochs
    model.fit(x_train, y_train_1h, epochs=epochs, batch_size=10, verbose=0)
    loss, acc = model.evaluate(x_test, y_test_1h, verbose=0)
    print(f"iris ({prep} preprocessing): {epochs} epochs; test loss {loss:.4f}, test accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
