"""fastmlp.datasets: the shipped iris split, the IDX reader and the MNIST-family loaders."""
import gzip
import os
import struct

import numpy as np
import pytest

import fastmlp
from fastmlp.datasets import fashion_mnist, iris, load_idx, mnist
from fastmlp.datasets import _idx

_TYPE_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D,
               np.float64: 0x0E}


def idx_bytes(arr):
    """The IDX encoding of ``arr`` (big-endian header and payload)."""
    arr = np.asarray(arr)
    code = _TYPE_CODES[arr.dtype.type]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path, arr_or_bytes, gz=None):
    data = arr_or_bytes if isinstance(arr_or_bytes, bytes) else idx_bytes(arr_or_bytes)
    gz = str(path).endswith(".gz") if gz is None else gz
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)
    return path


def write_fake_mnist(folder, n_train=7, n_test=3, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    xtr = rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8)
    ytr = rng.integers(0, 10, size=n_train, dtype=np.uint8)
    xte = rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8)
    yte = rng.integers(0, 10, size=n_test, dtype=np.uint8)
    suffix = ".gz" if gz else ""
    for stem, arr in (("train-images-idx3-ubyte", xtr), ("train-labels-idx1-ubyte", ytr),
                      ("t10k-images-idx3-ubyte", xte), ("t10k-labels-idx1-ubyte", yte)):
        write_idx(os.path.join(folder, stem + suffix), arr)
    return (xtr, ytr), (xte, yte)


# --------------------------------------------------------------------------- iris
def test_iris_load_data_returns_keras_style_tuples_with_expected_shapes_and_dtypes():
    (x_train, y_train), (x_test, y_test) = iris.load_data()
    assert x_train.shape == (120, 4) and x_test.shape == (30, 4)
    assert y_train.shape == (120,) and y_test.shape == (30,)
    assert x_train.dtype == np.float32 and x_test.dtype == np.float32
    assert np.issubdtype(y_train.dtype, np.integer) and np.issubdtype(y_test.dtype, np.integer)


def test_iris_has_three_classes_of_fifty_rows_and_plausible_measurements():
    x, y = iris.load_raw()
    assert x.shape == (150, 4)
    assert sorted(np.unique(y).tolist()) == [0, 1, 2]
    assert np.bincount(y).tolist() == [50, 50, 50]
    assert np.all(x > 0) and np.all(x < 10)
    # Fisher's classic first row
    np.testing.assert_allclose(x[0], [5.1, 3.5, 1.4, 0.2], rtol=1e-6)
    assert len(iris.CLASS_NAMES) == 3 and len(iris.FEATURE_NAMES) == 4


def test_iris_split_is_stratified_so_each_class_keeps_its_share_in_train_and_test():
    (_, y_train), (_, y_test) = iris.load_data(test_split=0.2)
    assert np.bincount(y_train, minlength=3).tolist() == [40, 40, 40]
    assert np.bincount(y_test, minlength=3).tolist() == [10, 10, 10]


def test_iris_split_partitions_all_150_rows_without_overlap():
    (x_train, _), (x_test, _) = iris.load_data()
    x, _ = iris.load_raw()
    together = np.concatenate([x_train, x_test])
    assert len(together) == 150
    key = lambda a: sorted(map(tuple, a.tolist()))  # noqa: E731
    assert key(together) == key(x)


def test_iris_split_is_deterministic_for_a_seed_and_changes_with_the_seed():
    a = iris.load_data(seed=7)
    b = iris.load_data(seed=7)
    c = iris.load_data(seed=8)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[0][0], c[0][0])


def test_iris_rejects_a_test_split_outside_zero_one():
    for bad in (0, 1, -0.1, 1.5):
        with pytest.raises(ValueError):
            iris.load_data(test_split=bad)


def test_iris_is_learnable_by_a_small_model():
    (x_train, y_train), (x_test, y_test) = iris.load_data()
    mean, std = x_train.mean(0), x_train.std(0)
    model = fastmlp.Sequential([fastmlp.Input(shape=(4,)),
                                fastmlp.layers.Dense(16, activation="relu"),
                                fastmlp.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=fastmlp.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit((x_train - mean) / std, y_train, epochs=60, batch_size=16, verbose=0)
    _, acc = model.evaluate((x_test - mean) / std, y_test, verbose=0)
    assert acc >= 0.85


# --------------------------------------------------------------------------- load_idx
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzipped"])
def test_load_idx_reads_a_3d_uint8_image_file(tmp_path, gz):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / ("images.idx" + (".gz" if gz else "")), arr)
    out = load_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzipped"])
def test_load_idx_reads_a_1d_label_file(tmp_path, gz):
    arr = np.array([3, 1, 4, 1, 5, 9, 2, 6], dtype=np.uint8)
    out = load_idx(write_idx(tmp_path / ("labels.idx" + (".gz" if gz else "")), arr))
    assert out.shape == (8,)
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32, np.float64])
def test_load_idx_decodes_big_endian_element_types_to_native_values(tmp_path, dtype):
    arr = (np.arange(12).reshape(3, 4) - 5).astype(dtype)
    out = load_idx(write_idx(tmp_path / "a.idx", arr))
    np.testing.assert_array_equal(out, arr)
    assert out.dtype.isnative


def test_load_idx_accepts_a_pathlib_path_and_a_string(tmp_path):
    arr = np.ones((2, 2), np.uint8)
    p = write_idx(tmp_path / "a.idx", arr)
    np.testing.assert_array_equal(load_idx(p), load_idx(str(p)))


def _good_header():
    return bytes([0, 0, 0x08, 2]) + struct.pack(">2I", 2, 3)


@pytest.mark.parametrize("data,what", [
    (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "bad magic first byte"),
    (b"\x00\x07\x08\x01" + struct.pack(">I", 1) + b"\x00", "bad magic second byte"),
    (b"\x00\x00\x42\x01" + struct.pack(">I", 1) + b"\x00", "unknown type code"),
    (b"\x00\x00\x08\x00", "rank zero"),
    (b"\x00\x00", "file shorter than the magic"),
    (b"", "empty file"),
    (b"\x00\x00\x08\x03" + struct.pack(">2I", 2, 3), "truncated header"),
    (_good_header() + b"\x00" * 5, "truncated payload"),
    (_good_header() + b"\x00" * 7, "trailing garbage"),
])
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzipped"])
def test_load_idx_raises_value_error_for_a_malformed_file(tmp_path, data, what, gz):
    path = write_idx(tmp_path / ("bad.idx" + (".gz" if gz else "")), data)
    with pytest.raises(ValueError):
        load_idx(path)


def test_load_idx_raises_value_error_for_a_corrupt_gzip_stream(tmp_path):
    good = gzip.compress(idx_bytes(np.zeros((4, 4), np.uint8)))
    path = tmp_path / "bad.idx.gz"
    path.write_bytes(good[:len(good) // 2])
    with pytest.raises(ValueError):
        load_idx(path)


def test_load_idx_refuses_dimensions_describing_an_absurd_size_without_allocating(tmp_path):
    data = bytes([0, 0, 0x0E, 3]) + struct.pack(">3I", 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
    with pytest.raises(ValueError):
        load_idx(write_idx(tmp_path / "huge.idx", data))


def test_load_idx_lets_a_missing_file_raise_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_idx(tmp_path / "nope.idx")


# --------------------------------------------------------------------------- MNIST family
@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "plain"])
def test_fashion_mnist_load_data_reads_the_four_idx_files_from_an_explicit_path(tmp_path, gz):
    (xtr, ytr), (xte, yte) = write_fake_mnist(tmp_path / "fm", gz=gz)
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(path=tmp_path / "fm")
    assert x_train.shape == (7, 28, 28) and x_test.shape == (3, 28, 28)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    np.testing.assert_array_equal(x_train, xtr)
    np.testing.assert_array_equal(y_train, ytr)
    np.testing.assert_array_equal(x_test, xte)
    np.testing.assert_array_equal(y_test, yte)


def test_mnist_load_data_reads_from_an_explicit_path_too(tmp_path):
    (xtr, ytr), _ = write_fake_mnist(tmp_path / "m", n_train=5, seed=3)
    (x_train, y_train), _ = mnist.load_data(path=str(tmp_path / "m"))
    np.testing.assert_array_equal(x_train, xtr)
    np.testing.assert_array_equal(y_train, ytr)


def test_fashion_mnist_missing_data_raises_file_not_found_that_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        fashion_mnist.load_data(path=tmp_path)
    msg = str(info.value)
    assert "train-images-idx3-ubyte" in msg
    assert "FASTMLP_DATA" in msg and "path" in msg
    assert "dataset-fashion-mnist" in msg


def test_missing_data_with_no_path_and_no_default_folder_raises_file_not_found(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTMLP_DATA", str(tmp_path / "empty"))
    monkeypatch.setitem(_idx._DEFAULT_DIRS, "fashion_mnist", [str(tmp_path / "not-there")])
    monkeypatch.setitem(_idx._DEFAULT_DIRS, "mnist", [str(tmp_path / "not-there")])
    with pytest.raises(FileNotFoundError):
        fashion_mnist.load_data()
    with pytest.raises(FileNotFoundError):
        mnist.load_data()


def test_a_partial_folder_with_only_some_files_counts_as_missing(tmp_path):
    write_fake_mnist(tmp_path / "fm")
    os.remove(tmp_path / "fm" / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(FileNotFoundError):
        fashion_mnist.load_data(path=tmp_path / "fm")


@pytest.mark.parametrize("layout", ["fashion-mnist", "fashion_mnist", "."])
def test_fastmlp_data_env_var_is_searched_before_the_system_location(tmp_path, monkeypatch, layout):
    folder = tmp_path / layout if layout != "." else tmp_path
    (xtr, _), _ = write_fake_mnist(folder, n_train=4, seed=11)
    monkeypatch.setenv("FASTMLP_DATA", str(tmp_path))
    (x_train, _), _ = fashion_mnist.load_data()
    np.testing.assert_array_equal(x_train, xtr)


def test_an_explicit_path_wins_over_fastmlp_data(tmp_path, monkeypatch):
    write_fake_mnist(tmp_path / "env", n_train=4, seed=1)
    (xtr, _), _ = write_fake_mnist(tmp_path / "explicit", n_train=6, seed=2)
    monkeypatch.setenv("FASTMLP_DATA", str(tmp_path / "env"))
    (x_train, _), _ = fashion_mnist.load_data(path=tmp_path / "explicit")
    np.testing.assert_array_equal(x_train, xtr)


def test_idx_files_with_inconsistent_shapes_are_rejected_with_value_error(tmp_path):
    write_fake_mnist(tmp_path / "fm", n_train=5)
    write_idx(tmp_path / "fm" / "train-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))  # 4 labels, 5 images
    with pytest.raises(ValueError):
        fashion_mnist.load_data(path=tmp_path / "fm")


def test_a_malformed_file_in_the_data_folder_raises_value_error(tmp_path):
    write_fake_mnist(tmp_path / "fm")
    (tmp_path / "fm" / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08"))
    with pytest.raises(ValueError):
        fashion_mnist.load_data(path=tmp_path / "fm")
