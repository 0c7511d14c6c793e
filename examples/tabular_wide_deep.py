"""A wide-and-deep tabular model: Normalization, Embedding, a PyDataset, the functional API.

Synthetic census-like data: 6 numeric columns (on very different scales) and
two integer category columns (a 'region' of 50 values and an 'occupation' of
12).  The numeric columns are standardized by a Normalization layer adapted
on the training data (so the saved model takes raw features); each category
column gets its own Embedding; the deep path (embeddings + numbers through two
Dense layers) and the wide path (the numbers straight to the output) are
concatenated before a sigmoid unit.  Training reads batches from a
``keras.utils.PyDataset``, as programs that stream from disk do.
"""
import os
import tempfile
import time

import numpy as np

from _common import parse_args

import fastmlp as keras
from fastmlp import layers


def make_data(rng, n):
    scales = np.array([1.0, 10.0, 100.0, 1000.0, 0.1, 5.0], dtype="float32")
    numeric = (rng.normal(size=(n, 6)) * scales + scales).astype("float32")
    region = rng.integers(0, 50, n)
    occupation = rng.integers(0, 12, n)
    region_effect = np.sin(np.arange(50))
    occupation_effect = np.linspace(-1, 1, 12)
    z = numeric[:, 0] - numeric[:, 1] / 10 + 0.5 * np.tanh(numeric[:, 3] / 1000) \
        + region_effect[region] + occupation_effect[occupation]
    y = (z + 0.5 * rng.normal(size=n) > 1.0).astype("float32")
    return {"numeric": numeric, "region": region[:, None].astype("int64"),
            "occupation": occupation[:, None].astype("int64")}, y


class Batches(keras.utils.PyDataset):
    """Shuffled mini-batches of a dict of columns and a label vector."""

    def __init__(self, x, y, batch_size, seed, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size = x, y, batch_size
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(y))

    def __len__(self):
        return (len(self.y) + self.batch_size - 1) // self.batch_size

    def __getitem__(self, index):
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        return {k: v[rows] for k, v in self.x.items()}, self.y[rows]

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.y))


def build(numeric_train):
    numeric = keras.Input(shape=(6,), name="numeric")
    region = keras.Input(shape=(1,), name="region", dtype="int64")
    occupation = keras.Input(shape=(1,), name="occupation", dtype="int64")
    normalizer = layers.Normalization(axis=-1)
    normalizer.adapt(numeric_train)
    scaled = normalizer(numeric)
    region_vec = layers.Flatten()(layers.Embedding(50, 8)(region))
    occupation_vec = layers.Flatten()(layers.Embedding(12, 4)(occupation))
    deep = layers.Concatenate()([scaled, region_vec, occupation_vec])
    deep = layers.Dense(64, activation="relu")(deep)
    deep = layers.Dense(32, activation="relu")(deep)
    both = layers.Concatenate()([deep, scaled])
    output = layers.Dense(1, activation="sigmoid", name="income")(both)
    return keras.Model(inputs=[numeric, region, occupation], outputs=output, name="wide_and_deep")


def main():
    args = parse_args(__doc__.splitlines()[0], epochs=10)
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    n = 4000 if args.fast else 50000
    x, y = make_data(rng, n)
    split = int(0.8 * n)
    x_train = {k: v[:split] for k, v in x.items()}
    x_test = {k: v[split:] for k, v in x.items()}
    y_train, y_test = y[:split], y[split:]

    model = build(x_train["numeric"])
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=["accuracy", keras.metrics.AUC(name="auc")])
    epochs = 3 if args.fast else args.epochs
    start = time.perf_counter()
    model.fit(Batches(x_train, y_train, 64, args.seed), epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    results = model.evaluate(x_test, y_test, verbose=0, return_dict=True)

    # the saved model takes raw features: the scaling and the embeddings travel in the file
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "wide_and_deep.fmlp")
        model.save(path)
        reloaded = keras.models.load_model(path)
        same = np.allclose(reloaded.predict(x_test, verbose=0), model.predict(x_test, verbose=0))
    print(f"wide-and-deep: {epochs} epochs from a PyDataset in {seconds:.2f} s "
          f"({epochs * split / seconds:,.0f} samples/s); test loss {results['loss']:.4f}, "
          f"accuracy {results['accuracy']:.4f}, AUC {results['auc']:.4f}; reloaded model predicts the same: {same}")


if __name__ == "__main__":
    main()
