"""The command line on data files: train from CSV (scaling, feature and class names stored in the
model), evaluate, predict with columns matched by name (stdin/stdout, --proba), inspect, export,
and clear errors with a non-zero status for bad input."""
import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastmlp
from fastmlp.__main__ import main



def _iris_csv(path, rows=None, shuffle_columns=False, drop=None):
    (x, y), (xt, yt) = fastmlp.datasets.iris.load_data()
    x, y = np.concatenate([x, xt]), np.concatenate([y, yt])
    names = fastmlp.datasets.iris.CLASS_NAMES
    cols = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    header = cols + ["species"]
    if shuffle_columns:
        header = ["species"] + cols[::-1]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([h for h in header if h != drop])
        for i in range(len(x) if rows is None else rows):
            rec = dict(zip(cols, x[i].tolist()), species=names[y[i]])
            w.writerow([rec[h] for h in header if h != drop])
    return x, y


def _run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    _iris_csv(tmp / "iris.csv")
    model = tmp / "iris.fmlp"
    assert main(["train", str(tmp / "iris.csv"), "--target", "species", "--layers", "16", "--epochs", "60",
                 "--batch-size", "8", "--learning-rate", "0.01", "--validation-split", "0.1",
                 "--early-stopping", "20", "-o", str(model), "-q"]) == 0
    return tmp, model


def test_train_stores_scaling_feature_and_class_names(trained):
    tmp, path = trained
    model = fastmlp.models.load_model(path)
    meta = model._metadata
    assert meta["class_names"] == ["setosa", "versicolor", "virginica"]
    assert meta["feature_names"] == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert type(model.layers[0]).__name__ == "Normalization"
    (x, y), _ = fastmlp.datasets.iris.load_data()
    # the model itself takes raw features: the scaling is inside it
    assert (model.predict(x, verbose=0).argmax(1) == y).mean() > 0.9


def test_predict_matches_columns_by_name_and_writes_class_names(trained, capsys):
    tmp, model = trained
    _iris_csv(tmp / "shuffled.csv", rows=10, shuffle_columns=True)
    code, out, err = _run(["predict", str(model), str(tmp / "shuffled.csv"), "--proba"], capsys)
    assert code == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["species", "p_setosa", "p_versicolor", "p_virginica"]
    truth = [r[0] for r in csv.reader(open(tmp / "shuffled.csv"))][1:]
    assert sum(r[0] == t for r, t in zip(rows[1:], truth)) >= 8
    np.testing.assert_allclose([sum(map(float, r[1:])) for r in rows[1:]], 1.0, rtol=1e-5)
    assert main(["predict", str(model), str(tmp / "shuffled.csv"), "-o", str(tmp / "out.csv")]) == 0
    assert open(tmp / "out.csv").read().splitlines()[0] == "species"
    code, _, err = _run(["predict", str(model), str(tmp / "shuffled.csv"), "-o", str(tmp / "out.csv")], capsys)
    assert code == 2 and "--force" in err


def test_a_missing_column_fails_loudly(trained, capsys):
    tmp, model = trained
    _iris_csv(tmp / "missing.csv", rows=5, drop="petal_width")
    code, out, err = _run(["predict", str(model), str(tmp / "missing.csv")], capsys)
    assert code == 2 and "petal_width" in err and out == ""


def test_predict_reads_stdin_and_writes_stdout(trained):
    tmp, model = trained
    _iris_csv(tmp / "five.csv", rows=5)
    here = os.path.dirname(os.path.dirname(os.path.abspath(fastmlp.__file__)))   # the fastmlp under test
    env = dict(os.environ, PYTHONPATH=here + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "fastmlp", "predict", str(model), "-"],
                          stdin=open(tmp / "five.csv"), capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "species" and len(proc.stdout.splitlines()) == 6


def test_evaluate_prints_a_table_or_json(trained, capsys):
    tmp, model = trained
    code, out, _ = _run(["evaluate", str(model), str(tmp / "iris.csv"), "--json"], capsys)
    assert code == 0
    results = json.loads(out)
    assert results["rows"] == 150 and results["accuracy"] > 0.9 and "loss" in results
    code, out, _ = _run(["evaluate", str(model), str(tmp / "iris.csv")], capsys)
    assert code == 0 and "accuracy" in out.splitlines()[2] or "accuracy" in out


def test_inspect_shows_format_tensors_checksums_and_names(trained, capsys):
    tmp, model = trained
    code, out, _ = _run(["inspect", str(model), "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["format_version"].startswith("1.")
    assert info["class_names"] == ["setosa", "versicolor", "virginica"]
    assert any(t["name"].endswith("kernel") for t in info["tensors"])
    assert set(info["checksums"]) == {"header", "weights", "training"}
    code, out, _ = _run(["inspect", str(model)], capsys)
    assert "feature names (4)" in out and "CRC-32C" in out


def test_export_to_c_and_onnx(trained, capsys):
    tmp, model = trained
    code, out, _ = _run(["export", str(model), "--format", "c", "-o", str(tmp / "iris_c"), "--name", "iris"],
                        capsys)
    assert code == 0 and os.path.exists(tmp / "iris_c" / "iris.h")
    code, _, err = _run(["export", str(model), "--format", "c", "-o", str(tmp / "iris_c"), "--name", "iris"],
                        capsys)
    assert code != 0 and "overwrite" in err
    pytest.importorskip("onnx")
    code, out, _ = _run(["export", str(model), "--format", "onnx", "-o", str(tmp / "iris.onnx")], capsys)
    assert code == 0 and os.path.getsize(tmp / "iris.onnx") > 0


def test_regression_with_categories_missing_values_and_a_spec_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n = 400
    city = rng.choice(["oslo", "rome", "lima"], n)
    size = rng.normal(80, 20, n)
    rooms = rng.integers(1, 6, n).astype(float)
    price = 1000 * size / 80 + 300 * (city == "oslo") + 50 * rooms + rng.normal(0, 20, n)
    with open(tmp_path / "houses.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["city", "size", "rooms", "price"])
        for i in range(n):
            w.writerow([city[i], "" if i % 50 == 0 else f"{size[i]:.2f}", rooms[i], f"{price[i]:.2f}"])
    code, _, err = _run(["train", str(tmp_path / "houses.csv"), "--target", "price", "-o",
                         str(tmp_path / "h.fmlp"), "-q"], capsys)
    assert code == 2 and "missing" in err and "--fill" in err
    (tmp_path / "net.json").write_text(json.dumps({"layers": [32], "epochs": 80, "learning_rate": 0.01}))
    code, out, err = _run(["train", str(tmp_path / "houses.csv"), "--target", "price", "--fill", "mean", "--spec",
                           str(tmp_path / "net.json"), "-o", str(tmp_path / "h.fmlp"), "-q"], capsys)
    assert code == 0, err
    assert "regression" in out
    model = fastmlp.models.load_model(tmp_path / "h.fmlp")
    assert model._metadata["feature_names"] == ["city=lima", "city=oslo", "city=rome", "size", "rooms"]
    code, out, _ = _run(["predict", str(tmp_path / "h.fmlp"), str(tmp_path / "houses.csv")], capsys)
    pred = np.array([float(r[0]) for r in list(csv.reader(io.StringIO(out)))[1:]])
    assert np.corrcoef(pred, price)[0, 1] > 0.9
    (tmp_path / "bad.json").write_text(json.dumps({"layer": [3]}))
    code, _, err = _run(["train", str(tmp_path / "houses.csv"), "--target", "price", "--fill", "mean", "--spec",
                         str(tmp_path / "bad.json"), "-o", str(tmp_path / "h2.fmlp")], capsys)
    assert code == 2 and "unknown key" in err


@pytest.mark.parametrize("argv,match", [
    (["train", "nope.csv", "--target", "y", "-o", "m.fmlp"], "no such file"),
    (["predict", "nope.fmlp", "x.csv"], "no such file"),
    (["serve"], "model files"),
    (["serve", "--host", "0.0.0.0", "x.fmlp"], "allow-remote"),
])
def test_bad_input_gets_a_message_and_a_non_zero_status(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(argv, capsys)
    assert code != 0 and match in err


def test_train_rejects_an_unknown_target_and_a_damaged_model(tmp_path, capsys):
    _iris_csv(tmp_path / "iris.csv", rows=30)
    code, _, err = _run(["train", str(tmp_path / "iris.csv"), "--target", "kind", "-o", str(tmp_path / "m.fmlp")],
                        capsys)
    assert code == 2 and "kind" in err and "species" in err
    (tmp_path / "bad.fmlp").write_bytes(b"\x89FMLP garbage")
    code, _, err = _run(["inspect", str(tmp_path / "bad.fmlp")], capsys)
    assert code == 2 and "bad.fmlp" in err


def test_every_command_has_help_with_examples():
    for cmd in ("train", "evaluate", "predict", "inspect", "export", "serve"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0


def test_csv_quirks_bom_number_like_categories_and_bad_targets(tmp_path, capsys):
    rows = [("02134", 1.0, "yes"), ("10001", 2.0, "no"), ("x9", 3.0, "yes"), ("02134", 4.0, "no")] * 10
    with open(tmp_path / "t.csv", "w", encoding="utf-8-sig") as fh:   # Excel writes a byte-order mark
        fh.write("zip,size,label\n" + "".join(f"{z},{s},{l}\n" for z, s, l in rows))
    code, _, err = _run(["train", str(tmp_path / "t.csv"), "--target", "label", "--epochs", "2", "-o",
                         str(tmp_path / "m.fmlp"), "-q"], capsys)
    assert code == 0, err
    meta = fastmlp.models.load_model(tmp_path / "m.fmlp")._metadata
    assert meta["columns"][0]["name"] == "zip" and "02134" in meta["columns"][0]["categories"]
    (tmp_path / "new.csv").write_text("zip,size\n02134,1.5\n10001,2.5\n")   # all number-like, no mark
    code, out, err = _run(["predict", str(tmp_path / "m.fmlp"), str(tmp_path / "new.csv")], capsys)
    assert code == 0, err
    (tmp_path / "inf.csv").write_text("zip,size\n02134,inf\n10001,1e39\n")
    code, _, err = _run(["predict", str(tmp_path / "m.fmlp"), str(tmp_path / "inf.csv")], capsys)
    assert code == 2 and "float32" in err
    (tmp_path / "gap.csv").write_text("size,label\n1,yes\n2,\n3,no\n4,yes\n")
    code, _, err = _run(["train", str(tmp_path / "gap.csv"), "--target", "label", "-o", str(tmp_path / "g.fmlp")],
                        capsys)
    assert code == 2 and "missing values" in err
    code, _, err = _run(["train", str(tmp_path / "t.csv"), "--target", "label", "-o", str(tmp_path / "m.keras")],
                        capsys)
    assert code == 2 and ".fmlp" in err


def test_the_fast_and_the_plain_csv_readers_agree(monkeypatch):
    pytest.importorskip("pyarrow")
    from fastmlp import cli
    text = ('a, b ,city,flag,when,zip\n'
            '1.5, 2,"Oslo, NO",true,2024-01-02,02134\n'
            ' 3 ,NA,rome,false,2024-01-03,10001\n'
            '\n'
            '-4e3,?, lima ,true,2024-01-04,x9\n')
    fast = cli.parse_csv(text, "t.csv", text_columns=["zip"])
    monkeypatch.setattr(cli, "_parse_pyarrow", lambda *a: None)
    plain = cli.parse_csv(text, "t.csv", text_columns=["zip"])
    assert fast.names == plain.names == ["a", "b", "city", "flag", "when", "zip"]
    for n in fast.names:
        f, p = fast.columns[n], plain.columns[n]
        assert f.dtype.kind == p.dtype.kind, n
        if f.dtype.kind == "f":
            np.testing.assert_array_equal(f, p)
        else:
            assert f.tolist() == p.tolist(), n
    assert plain.columns["zip"].tolist() == ["02134", "10001", "x9"]
    assert np.isnan(plain.columns["b"][1:]).all()
