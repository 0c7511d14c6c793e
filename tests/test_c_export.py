"""Standalone C export: the generated header and source compile with
``cc -std=c99 -Wall -Wextra -Werror -pedantic -O2``, and the compiled function gives
``model.predict``'s outputs on 1,000 rows (float32 to 1e-5 relative; int8 as fastmlp's int8 file)."""
import os
import shutil
import subprocess

import numpy as np
import pytest

import fastmlp
from fastmlp import layers

CC = shutil.which("cc") or shutil.which("gcc")
pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler")

HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include "NAME.h"

int main(int argc, char **argv)
{
    static float in[UP_N_INPUTS], out[UP_N_OUTPUTS], scratch[UP_SCRATCH_SIZE];
    FILE *fi = fopen(argv[1], "rb"), *fo = fopen(argv[2], "wb");
    long rows = atol(argv[3]), r;
    if (!fi || !fo || argc != 4) return 2;
    if (NAME_predict(NULL, out, scratch) != -1) return 3;
    for (r = 0; r < rows; r++) {
        if (fread(in, sizeof(float), UP_N_INPUTS, fi) != UP_N_INPUTS) return 4;
        if (NAME_predict(in, out, scratch) != 0) return 5;
        if (fwrite(out, sizeof(float), UP_N_OUTPUTS, fo) != UP_N_OUTPUTS) return 6;
    }
    fclose(fi);
    fclose(fo);
    return 0;
}
"""


def _run_c(model, x, tmp_path, name="net", dtype="float32"):
    folder = tmp_path / name
    info = model.export(str(folder), format="c", name=name, dtype=dtype, verbose=False)
    (folder / "main.c").write_text(HARNESS.replace("NAME", name).replace("UP", name.upper()))
    exe = folder / "run"
    flags = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]
    subprocess.run([CC, *flags, "-c", str(folder / f"{name}.c"), "-o", str(folder / f"{name}.o")], check=True)
    subprocess.run([CC, *flags, str(folder / "main.c"), str(folder / f"{name}.o"), "-o", str(exe), "-lm"],
                   check=True, cwd=folder)
    np.ascontiguousarray(x, dtype=np.float32).tofile(folder / "in.bin")
    subprocess.run([str(exe), str(folder / "in.bin"), str(folder / "out.bin"), str(len(x))], check=True)
    info["object_bytes"] = os.path.getsize(folder / f"{name}.o")
    return np.fromfile(folder / "out.bin", dtype=np.float32).reshape(len(x), -1), info


def _flat(outputs):
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    if isinstance(outputs, list):
        return np.concatenate([np.asarray(o).reshape(len(o), -1) for o in outputs], axis=1)
    return np.asarray(outputs)


def _check(model, x, tmp_path, **kw):
    got, info = _run_c(model, np.concatenate(x, axis=1) if isinstance(x, list) else x, tmp_path, **kw)
    want = _flat(model.predict(x, verbose=0))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    return info


ACTIVATIONS = ["relu", "sigmoid", "tanh", "softmax", "elu", "selu", "leaky_relu", "gelu", "softplus", "softsign",
               "swish", "hard_sigmoid", "exponential", "relu6", "linear", "log_softmax"]


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_compiles_and_matches_predict(activation, tmp_path):
    fastmlp.utils.set_random_seed(1)
    model = fastmlp.Sequential([fastmlp.Input((12,)), layers.Dense(16, activation=activation),
                                layers.Dense(5, activation=activation)])
    x = np.random.default_rng(0).normal(size=(1000, 12)).astype(np.float32)
    _check(model, x, tmp_path)


def test_a_trained_classifier_with_batchnorm_dropout_and_activation_layers(tmp_path):
    fastmlp.utils.set_random_seed(2)
    model = fastmlp.Sequential([
        fastmlp.Input((20,)), layers.Dense(32), layers.BatchNormalization(), layers.Activation("relu"),
        layers.Dropout(0.3), layers.Dense(16, activation="tanh"), layers.BatchNormalization(),   # not folded
        layers.GaussianNoise(0.1), layers.ReLU(max_value=2.0), layers.LeakyReLU(negative_slope=0.1),
        layers.PReLU(), layers.Dense(3), layers.Softmax()])
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1000, 20)).astype(np.float32)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, rng.integers(0, 3, 1000), epochs=2, verbose=0)    # moving statistics away from 0 and 1
    info = _check(model, x, tmp_path)
    text = open(info["source"]).read()
    assert "malloc" not in text and "static float" not in text and "#include <math.h>" in text
    assert text.count("dense(") >= 3      # the first BatchNormalization folded into its Dense


def test_a_functional_graph_with_merges_and_two_inputs_and_outputs(tmp_path):
    fastmlp.utils.set_random_seed(3)
    a, b = fastmlp.Input((6,), name="a"), fastmlp.Input((4,), name="b")
    ha = layers.Dense(8, activation="relu")(a)
    hb = layers.Dense(8, activation="elu")(b)
    merged = [layers.Add()([ha, hb]), layers.Subtract()([ha, hb]), layers.Multiply()([ha, hb]),
              layers.Average()([ha, hb, ha]), layers.Maximum()([ha, hb]), layers.Minimum()([ha, hb])]
    joined = layers.Concatenate()(merged + [a])
    out1 = layers.Dense(3, activation="softmax", name="cls")(joined)
    out2 = layers.Dense(1, name="reg")(layers.Dense(5, activation="swish")(joined))
    model = fastmlp.Model([a, b], [out1, out2])
    rng = np.random.default_rng(2)
    x = [rng.normal(size=(1000, 6)).astype(np.float32), rng.normal(size=(1000, 4)).astype(np.float32)]
    info = _check(model, x, tmp_path)
    header = open(info["header"]).read()
    assert "#define NET_N_INPUTS 10" in header and "#define NET_N_OUTPUTS 4" in header
    assert f"#define NET_SCRATCH_SIZE {info['scratch_floats']}" in header


def test_int8_weights_give_the_int8_files_predictions(tmp_path):
    fastmlp.utils.set_random_seed(4)
    model = fastmlp.Sequential([fastmlp.Input((30,)), layers.Dense(64, activation="relu"),
                                layers.BatchNormalization(), layers.Dense(10, activation="softmax")])
    randomize = np.random.default_rng(9)
    bn = model.layers[1]
    bn.set_weights([randomize.uniform(0.5, 2, 64), randomize.normal(size=64), randomize.normal(size=64),
                    randomize.uniform(0.5, 2, 64)])
    path = tmp_path / "m.fmlp"
    model.save(path, dtype="int8")
    int8_model = fastmlp.models.load_model(path)
    x = np.random.default_rng(3).normal(size=(1000, 30)).astype(np.float32)
    x[5] = 0.0                                      # a row that quantizes to zeros
    # the C code runs fastmlp's int8 predict: the same int8 kernels, inputs quantized per row
    info8 = _check(int8_model, x, tmp_path, name="q8", dtype="int8")
    dequantized = fastmlp.Sequential.from_config(int8_model.get_config())   # float32: the dequantized kernels
    dequantized.build((None, 30))
    dequantized.set_weights(int8_model.get_weights())
    info32 = _check(dequantized, x, tmp_path, name="f32")
    assert info8["weight_bytes"] < info32["weight_bytes"] / 2.5
    assert "signed char" in open(info8["source"]).read()
    model.quantize("int8")                          # a float model exported as int8 = its quantized predict
    _check(model, x, tmp_path, name="mq8", dtype="int8")


def test_the_name_defaults_to_the_folder_and_bad_arguments_raise(tmp_path):
    fastmlp.utils.set_random_seed(5)
    model = fastmlp.Sequential([fastmlp.Input((3,)), layers.Dense(2)])
    info = model.export(str(tmp_path / "iris_c"), format="c", verbose=False)
    assert info["header"].endswith(os.path.join("iris_c", "iris_c.h"))
    with pytest.raises(FileExistsError, match="overwrite"):
        model.export(str(tmp_path / "iris_c"), format="c", verbose=False)
    model.export(str(tmp_path / "iris_c"), format="c", verbose=False, overwrite=True)
    os.makedirs(tmp_path / "half")
    (tmp_path / "half" / "half.c").write_text("/* the user's own file */")
    with pytest.raises(FileExistsError):
        model.export(str(tmp_path / "half"), format="c", verbose=False)
    assert not os.path.exists(tmp_path / "half" / "half.h")     # nothing written when one file is there
    with pytest.raises(ValueError, match="C identifier"):
        model.export(str(tmp_path / "x"), format="c", name="2bad-name", verbose=False)
    with pytest.raises(ValueError, match="dtype"):
        model.export(str(tmp_path / "y"), format="c", dtype="float16", verbose=False)
    with pytest.raises(TypeError):
        model.export(str(tmp_path / "z"), format="c", opset_version=18, verbose=False)


def test_preprocessing_normalization_and_embedding_layers(tmp_path):
    fastmlp.utils.set_random_seed(6)
    rng = np.random.default_rng(5)
    raw = (rng.normal(size=(1000, 5)) * [1, 10, 100, 1000, 0.1] + [0, 5, 50, 500, 1]).astype(np.float32)
    num = fastmlp.Input((5,), name="num")
    ids = fastmlp.Input((2,), name="ids", dtype="int32")
    norm = layers.Normalization()
    norm.adapt(raw)
    h = layers.Rescaling(0.5, offset=0.1)(norm(num))
    h = layers.LayerNormalization()(layers.Dense(8, activation="relu")(h))
    e = layers.Flatten()(layers.Embedding(7, 3)(ids))
    h = layers.Concatenate()([layers.UnitNormalization()(h), e])
    h = layers.GaussianDropout(0.2)(layers.ActivityRegularization(l2=0.01)(h))
    out = layers.Dense(2, activation="softmax")(layers.AlphaDropout(0.1)(h))
    model = fastmlp.Model([num, ids], out)
    x = [raw, rng.integers(0, 7, (1000, 2)).astype(np.float32)]
    info = _check(model, x, tmp_path)
    assert "embed(" in open(info["source"]).read()
    inv = fastmlp.Sequential([fastmlp.Input((5,)), layers.Normalization(mean=[1.0] * 5, variance=[4.0] * 5,
                                                                         invert=True), layers.Dense(3)])
    _check(inv, raw, tmp_path, name="inv")
