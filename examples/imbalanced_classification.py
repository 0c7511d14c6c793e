"""Imbalanced binary classification with the confusion-matrix metrics and class weights.

As in Keras's "classification on imbalanced data" tutorial: about 2% positives,
an output bias initialized to log(pos/neg) with ``initializers.Constant``, the
tutorial's list of metrics (cross-entropy, Brier score, TP/FP/TN/FN, accuracy,
precision, recall, ROC AUC and PR AUC), and a second model trained with
``class_weight`` so that the rare class counts as much as the common one.
"""
import numpy as np

from _common import parse_args

import fastmlp as keras
from fastmlp import layers

METRICS = [
    keras.metrics.BinaryCrossentropy(name="cross entropy"),
    keras.metrics.MeanSquaredError(name="Brier score"),
    keras.metrics.TruePositives(name="tp"),
    keras.metrics.FalsePositives(name="fp"),
    keras.metrics.TrueNegatives(name="tn"),
    keras.metrics.FalseNegatives(name="fn"),
    keras.metrics.BinaryAccuracy(name="accuracy"),
    keras.metrics.Precision(name="precision"),
    keras.metrics.Recall(name="recall"),
    keras.metrics.AUC(name="auc"),
    keras.metrics.AUC(name="prc", curve="PR"),
]


def make_data(rng, n):
    x = rng.normal(size=(n, 20)).astype("float32")
    z = 2.0 * x[:, 0] + x[:, 1] - x[:, 2] * x[:, 3] + 0.5 * rng.normal(size=n)
    y = (z > np.quantile(z, 0.98)).astype("float32")
    return x, y


def make_model(output_bias):
    model = keras.Sequential([
        keras.Input(shape=(20,)),
        layers.Dense(16, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(1, activation="sigmoid",
                     bias_initializer=keras.initializers.Constant(output_bias)),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  loss=keras.losses.BinaryCrossentropy(), metrics=[m.from_config(m.get_config()) for m in METRICS])
    return model


def main():
    args = parse_args(__doc__.splitlines()[0], epochs=20)
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    n = 20000 if args.fast else 200000
    x, y = make_data(rng, n)
    split = int(0.8 * n)
    x_train, y_train, x_test, y_test = x[:split], y[:split], x[split:], y[split:]
    pos = float(y_train.sum())
    neg = len(y_train) - pos
    initial_bias = np.log([pos / neg])
    epochs = 10 if args.fast else args.epochs
    batch_size = 256 if args.fast else 2048

    plain = make_model(initial_bias)
    plain.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=0)
    weighted = make_model(initial_bias)
    class_weight = {0: len(y_train) / (2 * neg), 1: len(y_train) / (2 * pos)}
    weighted.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=0, class_weight=class_weight)

    print(f"imbalanced: {int(pos)} positives of {len(y_train)} training rows; {epochs} epochs")
    for label, model in (("plain", plain), ("class-weighted", weighted)):
        r = model.evaluate(x_test, y_test, batch_size=2048, verbose=0, return_dict=True)
        print(f"  {label:15s} tp {r['tp']:.0f} fp {r['fp']:.0f} tn {r['tn']:.0f} fn {r['fn']:.0f}  "
              f"accuracy {r['accuracy']:.4f} precision {r['precision']:.3f} recall {r['recall']:.3f} "
              f"AUC {r['auc']:.3f} PR-AUC {r['prc']:.3f}")


if __name__ == "__main__":
    main()
