"""The model file format (docs/FORMAT.md): round trips, exact resume, checkpoints,
compact storage, atomic saves, the golden file and a malformed-file battery."""
import errno
import io
import json
import os
import pickle
import struct
import sys
import time
import zipfile

import numpy as np
import pytest

import fastmlp
from fastmlp import _engine, layers, optimizers, regularizers, saving
from fastmlp._engine import crc32c
from fastmlp.callbacks import ModelCheckpoint

DATA = os.path.join(os.path.dirname(__file__), "data")
GOLDEN = os.path.join(DATA, "tiny_v1.fmlp")
GOLDEN_EXPECTED = os.path.join(DATA, "tiny_v1.expected.json")
PRE = struct.Struct("<12sHHIIQQQIIII")


# ----------------------------------------------------------------------------- helpers

def _same_slots(a, b):
    """The optimizers' slot values (a loaded optimizer builds them from the file when asked)."""
    a._build_pending()
    b._build_pending()
    return np.array_equal(a._slots, b._slots)

def _align(n):
    return -(-n // 64) * 64


def split(data):
    """(preamble fields as a list, header dict, body bytearray after the header padding)."""
    pre = list(PRE.unpack(bytes(data[:64])))
    h_len = pre[5]
    header = json.loads(bytes(data[64:64 + h_len]))
    return pre, header, bytearray(data[_align(64 + h_len):])


def seal(pre, header, body, header_bytes=None, pad=b"\0"):
    """Reassemble a file with every checksum (and the header length) made consistent, so
    that a test reaches the structural checks behind them."""
    pre = list(pre)
    hb = header_bytes if header_bytes is not None else json.dumps(header, separators=(",", ":")).encode()
    hpad = hb + pad * (_align(64 + len(hb)) - 64 - len(hb))
    pre[5] = len(hb)
    w_len, t_len = pre[6], pre[7]
    body = bytes(body)
    pre[8] = crc32c(hpad)
    pre[9] = crc32c(body[:w_len]) if len(body) >= w_len else crc32c(body)
    pre[10] = crc32c(body[w_len:w_len + t_len]) if t_len else 0
    p = PRE.pack(*pre)[:60]
    return p + struct.pack("<I", crc32c(p)) + hpad + body


def reseal_preamble(data, **fields):
    names = ["magic", "major", "minor", "bom", "flags", "h_len", "w_len", "t_len", "h_crc", "w_crc",
             "t_crc", "p_crc"]
    pre = list(PRE.unpack(bytes(data[:64])))
    for k, v in fields.items():
        pre[names.index(k)] = v
    p = PRE.pack(*pre)[:60]
    return p + struct.pack("<I", crc32c(p)) + bytes(data[64:])


def _data(n=160, d=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 2.0, (classes, d))
    y = rng.integers(0, classes, n)
    x = (centers[y] + rng.normal(size=(n, d))).astype(np.float32)
    return x, y


def _model(opt="adam", dropout=0.25, d=6, classes=3, dtype=None, activations=("relu", "tanh")):
    fastmlp.utils.set_random_seed(42)
    stack = [fastmlp.Input(shape=(d,))]
    for i, act in enumerate(activations):
        stack.append(layers.Dense(12, activation=act, kernel_regularizer=regularizers.L2(1e-4) if i == 0 else None,
                                  dtype=dtype))
        if dropout and i == 0:
            stack.append(layers.Dropout(dropout, dtype=dtype))
    stack.append(layers.Dense(classes, activation="softmax", dtype=dtype))
    m = fastmlp.Sequential(stack)
    m.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def _trained(opt="adam", **kw):
    m = _model(opt, **kw)
    x, y = _data()
    m.fit(x, y, epochs=2, batch_size=16, verbose=0)
    return m, x, y


def _assert_same_model(a, b, x):
    assert [type(l) for l in a.layers] == [type(l) for l in b.layers]
    assert a.get_config() == b.get_config()
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert wa.dtype == wb.dtype and np.array_equal(wa, wb)
    assert np.array_equal(a.predict(x), b.predict(x))


# ----------------------------------------------------------------------------- checksum
def test_crc32c_known_values_and_portable_path():
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
    rng = np.random.default_rng(0)
    for n in (1, 7, 63, 777, 24 * 1024 + 5, 300_000):
        d = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert crc32c(d) == crc32c(d, portable=True)
        assert crc32c(d[n // 3:], crc=crc32c(d[:n // 3])) == crc32c(d)


# ----------------------------------------------------------------------------- round trips
OPTIMIZERS = [
    optimizers.SGD(0.05), optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    optimizers.RMSprop(centered=True, momentum=0.5), optimizers.Adagrad(0.05), optimizers.Adadelta(1.0),
    optimizers.Adam(amsgrad=True), optimizers.AdamW(), optimizers.Adamax(), optimizers.Nadam(),
    optimizers.Adam(optimizers.schedules.ExponentialDecay(0.01, 10, 0.9)),
]


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=lambda o: type(o).__name__)
def test_round_trip_every_optimizer(tmp_path, opt):
    m, x, _ = _trained(opt)
    p = tmp_path / "m.fmlp"
    m.save(p)
    for mm in (True, False):
        r = fastmlp.load_model(p, mmap=mm)
        _assert_same_model(m, r, x)
        assert r.compiled and type(r.optimizer) is type(m.optimizer)
        assert r.optimizer.get_config() == m.optimizer.get_config()
        assert r.optimizer.iterations == m.optimizer.iterations > 0
        assert r.optimizer._u_product == m.optimizer._u_product
        assert _same_slots(r.optimizer, m.optimizer)
        assert r._seed == m._seed and r._epoch == m._epoch
        assert r.loss.get_config() == m.loss.get_config()
        assert r.metrics_names == m.metrics_names


def test_every_activation_and_float64(tmp_path):
    acts = sorted(set(fastmlp.activations.ALL_ACTIVATIONS) - {"silu"})
    m = _model("sgd", activations=acts, dtype="float64")
    x, y = _data()
    m.fit(x, y, epochs=1, verbose=0)
    r = fastmlp.models.from_bytes(m.to_bytes())
    assert r.dtype == "float64"
    _assert_same_model(m, r, x.astype(np.float64))
    m.save(tmp_path / "f64")
    _assert_same_model(m, fastmlp.load_model(tmp_path / "f64"), x.astype(np.float64))


def test_load_is_zero_copy_and_verify_off(tmp_path):
    m, x, _ = _trained()
    p = tmp_path / "w.fmlp"
    m.save(p, include_optimizer=False)
    r = fastmlp.load_model(p, verify=False)
    assert not r._params.flags.owndata and r._params.flags.writeable
    assert r._params.ctypes.data % 64 == 0
    _assert_same_model(m, r, x)
    assert r.compiled and r.optimizer.iterations == 0
    r2 = fastmlp.models.load_model(str(p), compile=False)
    assert not r2.compiled
    r2.compile("adam", "sparse_categorical_crossentropy")
    r2.fit(x, _data()[1], epochs=1, verbose=0)     # training on a mapped file leaves the file alone
    _assert_same_model(m, fastmlp.load_model(p), x)


def test_bytes_pickle_and_weights(tmp_path):
    m, x, y = _trained()
    b = m.to_bytes()
    assert isinstance(b, bytes) and b[:12] == saving.MAGIC
    _assert_same_model(m, fastmlp.models.from_bytes(b), x)
    _assert_same_model(m, fastmlp.models.from_bytes(bytearray(b)), x)
    r = pickle.loads(pickle.dumps(m))
    _assert_same_model(m, r, x)
    assert _same_slots(r.optimizer, m.optimizer)
    m.save_weights(tmp_path / "x.weights.fmlp")
    other = _model()
    other.load_weights(tmp_path / "x.weights.fmlp")
    assert np.array_equal(other.predict(x), m.predict(x))
    small = fastmlp.Sequential([fastmlp.Input(shape=(6,)), layers.Dense(3)])
    with pytest.raises(ValueError):
        small.load_weights(tmp_path / "x.weights.fmlp")


@pytest.mark.parametrize("name, how", [("m.keras", "save"), ("m.h5", "save"), ("m.fmlp", "save"),
                                       ("folder", "folder"), ("w.weights.h5", "save_weights"),
                                       ("w.fmlp", "save_weights")])
def test_overwrite_false_asks_as_keras_does(tmp_path, monkeypatch, capsys, name, how):
    """``overwrite=False`` over an existing file asks on the console, as Keras 3 does: "n" keeps
    the file as it was; anything else is asked again; "y" saves."""
    pytest.importorskip("h5py") if name.endswith(".h5") else None
    m = _model()
    target = tmp_path / name

    def save(model, **kw):
        if how == "folder":
            return model.save(target, zipped=False, **kw)
        return getattr(model, how)(target, **kw)

    def stamp():
        if target.is_dir():
            return {p.name: p.read_bytes() for p in sorted(target.iterdir())}
        return target.read_bytes()

    save(m)
    before = stamp()
    x, y = _data()
    m.fit(x, y, epochs=1, verbose=0)   # (other weights)
    answers, asked = iter(["maybe", " N "]), []
    monkeypatch.setattr("builtins.input", lambda prompt="": asked.append(prompt) or next(answers))
    assert save(m, overwrite=False) is None
    assert asked == [f"[WARNING] {target} already exists - overwrite? [y/n]", 'Enter "y" (overwrite) or "n" (cancel).']
    assert stamp() == before
    answers, asked = iter(["y"]), []
    save(m, overwrite=False)
    assert len(asked) == 1 and stamp() != before
    assert "[TIP] Next time specify overwrite=True!" in capsys.readouterr().out
    monkeypatch.setattr("builtins.input", lambda prompt="": pytest.fail("asked with nothing to overwrite"))
    target2 = tmp_path / ("new_" + name)
    (m.save(target2, zipped=False, overwrite=False) if how == "folder" else getattr(m, how)(target2, overwrite=False))
    assert target2.exists()


def test_unbuilt_model_cannot_be_saved(tmp_path):
    m = fastmlp.Sequential([layers.Dense(3)])
    with pytest.raises(ValueError, match="not built"):
        m.save(tmp_path / "u.fmlp")


# ----------------------------------------------------------------------------- resume
def _resume_model():
    return _model(optimizers.Nadam(0.01), dropout=0.3)


def test_resume_is_bit_identical(tmp_path):
    x, y = _data(200)
    full = _resume_model()
    full.fit(x, y, epochs=4, batch_size=16, verbose=0)
    half = _resume_model()
    half.fit(x, y, epochs=2, batch_size=16, verbose=0)
    half.save(tmp_path / "half.fmlp")
    del half
    resumed = fastmlp.load_model(tmp_path / "half.fmlp")
    resumed.fit(x, y, epochs=4, initial_epoch=2, batch_size=16, verbose=0)
    assert np.array_equal(resumed._params, full._params)
    assert resumed.optimizer.iterations == full.optimizer.iterations
    # without the optimizer state the run diverges: the test can tell the difference
    half2 = _resume_model()
    half2.fit(x, y, epochs=2, batch_size=16, verbose=0)
    half2.save(tmp_path / "bare.fmlp", include_optimizer=False)
    bare = fastmlp.load_model(tmp_path / "bare.fmlp")
    bare.fit(x, y, epochs=4, initial_epoch=2, batch_size=16, verbose=0)
    assert not np.array_equal(bare._params, full._params)


def test_model_checkpoint_resume_and_options(tmp_path):
    x, y = _data(200)
    full = _resume_model()
    full.fit(x, y, epochs=4, batch_size=16, verbose=0)
    m = _resume_model()
    ck = ModelCheckpoint(str(tmp_path / "ck-{epoch:02d}-{val_loss:.3f}.fmlp"), monitor="val_loss")
    m.fit(x, y, epochs=2, batch_size=16, verbose=0, validation_data=(x[:40], y[:40]), callbacks=[ck])
    files = sorted(os.listdir(tmp_path))
    assert len(files) == 2 and files[0].startswith("ck-01-") and files[1].startswith("ck-02-")
    r = fastmlp.load_model(tmp_path / files[1])
    r.fit(x, y, epochs=4, initial_epoch=2, batch_size=16, verbose=0)
    # validation does not touch the training state: same weights as the run without it
    assert np.array_equal(r._params, full._params)

    best = ModelCheckpoint(str(tmp_path / "best.fmlp"), monitor="accuracy", save_best_only=True,
                           save_weights_only=True)
    assert best.mode == "max"
    calls = []
    best.model_save = None
    m2 = _resume_model()
    orig = m2.save_weights
    m2.save_weights = lambda *a, **k: (calls.append(1), orig(*a, **k))
    m2.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[best])
    assert 1 <= len(calls) <= 3 and os.path.exists(tmp_path / "best.fmlp")
    assert fastmlp.load_model(tmp_path / "best.fmlp").optimizer.iterations == 0   # weights only
    with pytest.raises(ValueError):
        ModelCheckpoint("x", save_freq="sometimes")
    freq = ModelCheckpoint(str(tmp_path / "b{epoch}.fmlp"), save_freq=5)
    m3 = _resume_model()
    m3.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[freq])   # 13 batches: saves at 5, 10
    assert os.path.exists(tmp_path / "b1.fmlp")
    assert not ModelCheckpoint("x")._overrides("on_train_batch_end")


# ----------------------------------------------------------------------------- compact storage
def test_file_sizes_784_512_512_10():
    fastmlp.utils.set_random_seed(0)
    m = fastmlp.Sequential([fastmlp.Input(shape=(784,)), layers.Dense(512, activation="relu"),
                            layers.Dense(512, activation="relu"), layers.Dense(10, activation="softmax")])
    raw = sum(w.nbytes for w in m.get_weights())
    full = len(m.to_bytes(include_optimizer=False))
    assert raw < full <= raw + 4096
    assert len(m.to_bytes(dtype="float16")) <= 0.52 * raw
    assert len(m.to_bytes(dtype="bfloat16")) <= 0.52 * raw
    assert len(m.to_bytes(dtype="int8")) <= 0.28 * raw


@pytest.mark.parametrize("dtype,tol", [("float16", 2e-3), ("bfloat16", 2e-2), ("int8", 3e-2)])
def test_compact_dtypes(tmp_path, dtype, tol):
    m, x, y = _trained()
    m.save(tmp_path / "c.fmlp", dtype=dtype)
    _, header, _ = split(open(tmp_path / "c.fmlp", "rb").read())
    assert header["training"] is None
    assert {t["dtype"] for t in header["tensors"]} >= {dtype}
    r = fastmlp.load_model(tmp_path / "c.fmlp")
    assert r.dtype == "float32" and r.compiled
    diff = np.abs(r.predict(x) - m.predict(x)).max()
    assert 0 < diff < tol
    assert np.mean(r.predict(x).argmax(1) == m.predict(x).argmax(1)) > 0.97
    with pytest.raises(ValueError):
        m.save(tmp_path / "bad", dtype="int4")


def test_quantizers_exact_cases():
    k = np.array([[1.0, -2.0, 0.0], [0.5, 1.0, 0.0]], np.float32)
    q, s = saving._quantize_int8(k)
    assert q.dtype == np.int8 and s.tolist() == pytest.approx([1 / 127, 2 / 127, 0])
    assert q[:, 0].tolist() == [127, 64] and q[:, 1].tolist() == [-127, 64] and q[:, 2].tolist() == [0, 0]
    v = np.array([1.0, 1.00390625, 3.0e38, -0.0, np.inf], np.float32)
    back = saving._from_bfloat16(saving._to_bfloat16(v), np.float32)
    assert back[0] == 1.0 and back[1] in (1.0, 1.0078125) and np.isinf(back[4])
    assert np.isnan(saving._from_bfloat16(saving._to_bfloat16(np.array([np.nan], np.float32)), np.float32)[0])


# ----------------------------------------------------------------------------- atomic saves
def test_failed_save_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    m, x, _ = _trained()
    p = tmp_path / "m.fmlp"
    m.save(p)
    before = p.read_bytes()

    def boom(fd):
        raise OSError("disk on fire")
    monkeypatch.setattr(os, "fsync", boom)
    m.layers[0].kernel[...] += 1
    with pytest.raises(OSError, match="disk on fire"):
        m.save(p)
    monkeypatch.undo()
    assert p.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.fmlp"]


@pytest.mark.skipif(not hasattr(os, "pwrite"), reason="POSIX writes (elsewhere the save writes through Python)")
@pytest.mark.parametrize("name", ["m.fmlp", "m.keras", "m.weights.h5"])
def test_saves_reserve_the_file_and_send_every_byte_on_to_the_disk(tmp_path, monkeypatch, name):
    """A save reserves the file's size before writing, writes it from 0 to the end in calls
    into C that hand what was written to the disk as they go (never more than a piece behind
    when a call returns), and still ends with an fsync; the file is the one an in-memory save
    gives."""
    pytest.importorskip("h5py")
    import fastmlp.saving.writer as writer
    monkeypatch.setattr(writer, "_WRITE_PIECE", 4096)
    m, x, _ = _trained()
    calls = []
    real_pre, real_write, real_fsync = _engine.preallocate, _engine.write_behind, os.fsync
    monkeypatch.setattr(_engine, "preallocate", lambda fd, n: calls.append(("pre", n)) or real_pre(fd, n))

    def write_behind(fd, buf, offset, sent, kick, crc=None, piece=0):
        out = real_write(fd, buf, offset, sent, kick, crc, piece)
        calls.append(("write", offset, memoryview(buf).nbytes, sent, kick, out[0]))
        return out
    monkeypatch.setattr(_engine, "write_behind", write_behind)
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(("fsync",)) or real_fsync(fd))
    path = tmp_path / name
    if name.endswith(".weights.h5"):
        m.save_weights(path)
    else:
        m.save(path)
    size = path.stat().st_size
    assert calls[0] == ("pre", size) and ("fsync",) in calls
    writes = [c[1:] for c in calls if c[0] == "write" and c[4]]   # (patches of a header: kick 0)
    assert writes[0][0] == 0 and sum(w[1] for w in writes) == size
    assert all(a + n == b for (a, n, *_), (b, *_) in zip(writes, writes[1:]))   # contiguous, in order
    for offset, n, before, kick, after in writes:
        assert kick == 4096 and before <= after <= offset + n and offset + n - after < kick
    assert calls.index(("fsync",)) > max(i for i, c in enumerate(calls) if c[0] == "write")
    if name.endswith(".keras"):
        from fastmlp.saving import keras_file
        with zipfile.ZipFile(path) as z:
            assert z.testzip() is None   # the CRCs, taken as the bytes were written
        here, there = keras_file.keras_bytes(m), path.read_bytes()
        assert len(here) == len(there) and zipfile.ZipFile(io.BytesIO(here)).testzip() is None
    np.testing.assert_array_equal(fastmlp.load_model(path).predict(x) if not name.endswith(".weights.h5")
                                  else m.predict(x), m.predict(x))


@pytest.mark.parametrize("name", ["m.fmlp", "m.keras"])
def test_saves_write_through_python_where_there_are_no_posix_writes(tmp_path, monkeypatch, name):
    """Without os.pwrite the save writes through the file object, the zip CRC taken in Python:
    the same bytes as an in-memory save."""
    pytest.importorskip("h5py")
    import fastmlp.saving.writer as writer
    monkeypatch.setattr(writer, "_WRITE_PIECE", 4096)
    m, x, _ = _trained()
    monkeypatch.delattr(os, "pwrite", raising=False)
    m.save(tmp_path / name)
    monkeypatch.undo()
    if name.endswith(".keras"):
        from fastmlp.saving import keras_file
        with zipfile.ZipFile(tmp_path / name) as z:
            assert z.testzip() is None
        assert len(keras_file.keras_bytes(m)) == (tmp_path / name).stat().st_size
    else:
        assert (tmp_path / name).read_bytes() == fastmlp.saving.model_to_bytes(m)
    np.testing.assert_array_equal(fastmlp.load_model(tmp_path / name).predict(x), m.predict(x))


@pytest.mark.skipif(not hasattr(os, "pwrite"), reason="POSIX writes")
@pytest.mark.parametrize("piece", [0, 1, 1000, 4096])
def test_write_behind_writes_at_an_offset_taking_the_zip_crc32(tmp_path, piece):
    """_engine.write_behind: the bytes land at the offset asked (the descriptor's own position
    is not used), the CRC continues over them when asked for, and ``sent`` follows what was
    written to within ``kick``; a closed descriptor is an OSError."""
    import zlib
    data = np.random.default_rng(piece).integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        os.write(fd, b"head")
        sent, crc = _engine.write_behind(fd, data, 100, 0, 8192, crc=7, piece=piece)
        assert crc == zlib.crc32(data, 7) and 100 + len(data) - 8192 < sent <= 100 + len(data)
        assert _engine.write_behind(fd, b"xyz", 1, 5, 0) == (5, None)   # (kick 0: nothing sent)
    finally:
        os.close(fd)
    got = (tmp_path / "f").read_bytes()
    assert got[:4] == b"hxyz" and got[4:100] == bytes(96) and got[100:] == data
    with pytest.raises(OSError):
        _engine.write_behind(fd, b"x", 0, 0, 0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's local file systems only")
def test_the_file_a_save_replaces_is_let_go_of_on_another_thread(tmp_path, monkeypatch):
    """A save holds the file it replaces open across the rename, so the kernel frees that file
    when the descriptor closes -- on a thread of _engine.close_later's -- not inside the rename.
    The descriptor is the old file's and is always closed, also when the rename fails; a path
    that is not a regular file (a FIFO) is never opened, so a save over it cannot hang; on a
    network file system nothing is held (its client would keep the file under another name)."""
    import fastmlp.saving.writer as writer
    d = os.open(tmp_path, os.O_RDONLY)
    remote = _engine.remote_fs(d)
    os.close(d)
    if remote:
        pytest.skip("the temporary folder is on a network file system")
    with pytest.raises(ValueError):
        _engine.remote_fs(-1)
    m, x, _ = _trained()
    p = tmp_path / "m.fmlp"
    m.save(p)
    held, real = [], _engine.close_later

    def close_later(fd):
        held.append(os.fstat(fd).st_ino)
        real(fd)
    monkeypatch.setattr(_engine, "close_later", close_later)
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        old = p.stat().st_ino
        m.save(p)
        assert held[-1] == old != p.stat().st_ino
    deadline = time.monotonic() + 5
    while len(os.listdir("/proc/self/fd")) > fds and time.monotonic() < deadline:
        time.sleep(0.01)   # (the closing threads run on their own)
    assert len(os.listdir("/proc/self/fd")) == fds
    np.testing.assert_array_equal(fastmlp.load_model(p).predict(x), m.predict(x))

    def broken(src, dst):
        raise OSError(errno.EXDEV, "no rename today")
    monkeypatch.setattr(writer.os, "replace", broken)
    n = len(held)
    with pytest.raises(OSError, match="no rename today"):
        m.save(p)
    monkeypatch.undo()
    monkeypatch.setattr(_engine, "close_later", close_later)
    assert len(held) == n + 1 and os.listdir(tmp_path) == ["m.fmlp"]
    q = tmp_path / "fifo.fmlp"
    os.mkfifo(q)
    m.save(q)   # (opening the FIFO to read would wait for a writer forever)
    assert len(held) == n + 1 and q.is_file()
    np.testing.assert_array_equal(fastmlp.load_model(q).predict(x), m.predict(x))
    monkeypatch.setattr(_engine, "remote_fs", lambda fd: True)
    m.save(p)
    assert len(held) == n + 1


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EOPNOTSUPP])
def test_a_save_fails_at_once_when_the_disk_cannot_hold_it(tmp_path, monkeypatch, err):
    """The blocks reserved up front: a full disk (ENOSPC) fails the save before anything is
    written, naming the file, and the old file stays; a file system without preallocation
    (EOPNOTSUPP) saves as usual."""
    m, x, _ = _trained()
    p = tmp_path / "m.fmlp"
    m.save(p)
    before = p.read_bytes()
    monkeypatch.setattr(_engine, "preallocate", lambda fd, n: err)
    m.layers[0].kernel[...] += 1
    if err == errno.ENOSPC:
        with pytest.raises(OSError, match="m.fmlp") as info:
            m.save(p)
        assert info.value.errno == errno.ENOSPC
        assert p.read_bytes() == before and os.listdir(tmp_path) == ["m.fmlp"]
    else:
        m.save(p)
        np.testing.assert_array_equal(fastmlp.load_model(p).predict(x), m.predict(x))


def test_the_engine_file_helpers_report_errors_as_errno_values(tmp_path):
    """preallocate and start_writeback on a real file: 0 (or, for preallocate, an errno of
    'not supported'); on a closed descriptor, EBADF -- never an exception or a crash."""
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        assert _engine.preallocate(fd, 1 << 20) in (0, errno.EOPNOTSUPP, errno.ENOSYS)
        assert os.fstat(fd).st_size == 0   # the size is left as it was
        os.write(fd, b"x" * 10000)
        assert _engine.start_writeback(fd, 0, 10000) == 0
    finally:
        os.close(fd)
    if sys.platform.startswith("linux"):
        assert _engine.preallocate(fd, 4096) == errno.EBADF
        assert _engine.start_writeback(fd, 0, 4096) == errno.EBADF
    with pytest.raises(ValueError):
        _engine.start_writeback(-1, 0, 1)


def test_overwriting_a_mapped_file_is_safe(tmp_path):
    m, x, _ = _trained()
    p = tmp_path / "m.fmlp"
    m.save(p)
    mapped = fastmlp.load_model(p, mmap=True)
    expected = mapped.predict(x)
    m.layers[0].kernel[...] *= 2
    m.save(p)                       # replaces the file this process has mapped
    assert np.array_equal(mapped.predict(x), expected)
    assert np.array_equal(fastmlp.load_model(p).predict(x), m.predict(x))
    mapped.save(p)                  # saving a mapped model over its own file
    assert np.array_equal(fastmlp.load_model(p).predict(x), expected)


# ----------------------------------------------------------------------------- golden file
def golden_model():
    """The tiny model committed as tests/data/tiny_v1.fmlp (deterministic, no training)."""
    fastmlp.utils.set_random_seed(0)
    m = fastmlp.Sequential([fastmlp.Input(shape=(3,)),
                            layers.Dense(4, activation="relu", name="hidden"),
                            layers.Dropout(0.5, seed=7, name="drop"),
                            layers.Dense(2, activation="softmax", name="out")], name="tiny")
    w = [np.arange(12, dtype=np.float32).reshape(3, 4) / 10 - 0.5, np.array([0.1, -0.1, 0.2, 0.0], np.float32),
         np.arange(8, dtype=np.float32).reshape(4, 2) / 8 - 0.4, np.array([0.05, -0.05], np.float32)]
    m.set_weights(w)
    m.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    m.optimizer.build(m._n_params, m._dtype)   # slots are otherwise made by the first step
    m.optimizer._slots[:] = np.arange(m.optimizer._slots.size, dtype=np.float32) / 1000
    m.optimizer.iterations = 5
    m._seed, m._epoch = 123456789, 1
    return m


def test_golden_file_loads_with_expected_predictions():
    expected = json.load(open(GOLDEN_EXPECTED))
    for mm in (True, False):
        m = fastmlp.load_model(GOLDEN, mmap=mm)
        np.testing.assert_allclose(m.predict(np.array(expected["x"], np.float32)), expected["y"],
                                   rtol=1e-6, atol=1e-7)
        assert m.optimizer.iterations == 5 and m._seed == 123456789 and m._epoch == 1
        assert [l.name for l in m.layers] == ["hidden", "drop", "out"]


def test_golden_bytes_writer():
    """The writer's output is frozen: a change here is a format change (bump the version)."""
    assert golden_model().to_bytes() == open(GOLDEN, "rb").read()


# ----------------------------------------------------------------------------- malformed files
@pytest.fixture(scope="module")
def good():
    fastmlp.utils.set_random_seed(3)
    m = fastmlp.Sequential([fastmlp.Input(shape=(5,)), layers.Dense(7, activation="relu"),
                            layers.Dropout(0.1), layers.Dense(3)])
    m.compile("adam", "mse")
    m.fit(np.ones((8, 5), np.float32), np.ones((8, 3), np.float32), verbose=0)
    return m.to_bytes()


def _bad(data, match=None):
    with pytest.raises(fastmlp.FormatError, match=match):
        fastmlp.models.from_bytes(data)


def test_good_file_loads(good):
    fastmlp.models.from_bytes(good)
    pre, header, body = split(good)
    assert seal(pre, header, body) == good


def test_truncation_at_every_region(good, tmp_path):
    pre, header, body = split(good)
    data_off = _align(64 + pre[5])
    cuts = sorted({0, 1, 11, 12, 30, 63, 64, 65, 64 + pre[5] // 2, 64 + pre[5], data_off - 1, data_off,
                   data_off + 1, data_off + pre[6] - 1, data_off + pre[6], data_off + pre[6] + 5,
                   len(good) - 1})
    for cut in cuts:
        _bad(good[:cut])
        (tmp_path / "t").write_bytes(good[:cut])
        with pytest.raises(fastmlp.FormatError):
            fastmlp.load_model(tmp_path / "t")
        with pytest.raises(fastmlp.FormatError):
            fastmlp.load_model(tmp_path / "t", mmap=False, verify=False)


def test_bit_flips_in_every_region(good):
    pre, header, body = split(good)
    data_off = _align(64 + pre[5])
    positions = {"magic": 3, "version": 12, "lengths": 26, "header crc": 49, "weights crc": 53,
                 "training crc": 57, "preamble crc": 61, "header": 80, "table": 64 + pre[5] - 20,
                 "header padding": data_off - 1, "weights": data_off + 100,
                 "training": data_off + pre[6] + 100, "last byte": len(good) - 1}
    for region, pos in positions.items():
        for bit in (0, 7):
            b = bytearray(good)
            b[pos] ^= 1 << bit
            with pytest.raises(fastmlp.FormatError):
                fastmlp.models.from_bytes(bytes(b))


def test_data_damage_passes_only_without_verify(good):
    b = bytearray(good)
    b[_align(64 + split(good)[0][5]) + 8] ^= 0x10
    _bad(bytes(b), "weights checksum")
    fastmlp.models.from_bytes(bytes(b), verify=False)   # documented: data checksums skipped


def test_preamble_fields(good):
    _bad(reseal_preamble(good, major=2), "version 2")
    _bad(reseal_preamble(good, h_len=1 << 40), "header length")
    _bad(reseal_preamble(good, h_len=(1 << 20) + 1), "header length")
    _bad(reseal_preamble(good, bom=0x04030201), "byte order")
    _bad(reseal_preamble(good, flags=2), "flags")
    _bad(reseal_preamble(good, flags=0), "training")
    _bad(reseal_preamble(good, w_len=split(good)[0][6] + 64))
    fastmlp.models.from_bytes(reseal_preamble(good, minor=9))   # newer minor: additive, readable


def test_trailing_bytes(good):
    _bad(good + b"\0" * 64, "trailing")
    _bad(good + b"x", "trailing")


def test_header_semantics(good):
    pre, header, body = split(good)

    def mutated(fn, **kw):
        h = json.loads(json.dumps(header))
        fn(h)
        _bad(seal(pre, h, body), kw.get("match"))

    t = lambda h, i: h["tensors"][i]   # noqa: E731
    mutated(lambda h: t(h, 0).update(dtype="complex64"), match="unknown dtype")
    mutated(lambda h: t(h, 0).update(shape=[2 ** 40, 2 ** 40, 2 ** 40]), match="overflow")
    mutated(lambda h: t(h, 0).update(shape=[2 ** 31, 2 ** 31], length=2 ** 64), match="outside")
    mutated(lambda h: t(h, 0).update(shape=[5, -7]), match="invalid shape")
    mutated(lambda h: t(h, 0).update(length=12), match="length")
    mutated(lambda h: t(h, 1).update(offset=t(h, 0)["offset"]), match="overlaps")
    mutated(lambda h: t(h, 1).update(offset=t(h, 1)["offset"] + 4), match="aligned")
    mutated(lambda h: t(h, -1).update(offset=10 ** 9), match="outside")
    mutated(lambda h: t(h, 0).update(offset=-64), match="invalid offset")
    mutated(lambda h: h["tensors"].reverse(), match="overlaps|out of order")
    mutated(lambda h: h["tensors"].pop(), match="tensors end at|lacks")
    mutated(lambda h: t(h, 0).update(name="nope/kernel"), match="lacks")
    mutated(lambda h: h["model"]["config"]["layers"][1].update(class_name="Conv2D"), match="unknown layer kind")
    mutated(lambda h: h["model"]["config"]["layers"][1].update(class_name="os.system"), match="unknown layer")
    mutated(lambda h: h["model"]["config"]["layers"][1]["config"].update(units=8), match="shape")
    mutated(lambda h: h["model"]["config"]["layers"][1]["config"].update(activation="eval"), match="layer")
    mutated(lambda h: h["model"]["config"]["layers"][1]["config"].update(evil=1), match="layer")
    mutated(lambda h: h["model"].update(class_name="Functional"), match="Sequential")
    mutated(lambda h: h.update(format="other"), match="format")
    mutated(lambda h: h["compile"]["optimizer"].update(class_name="Evil"), match="compile")
    mutated(lambda h: h["training"].update(slots=["m"]), match="slots")
    mutated(lambda h: h["training"].update(iterations=-1), match="iterations")
    mutated(lambda h: h["training"]["tensors"][0].update(shape=[1]), match="length|slot")
    first = lambda h: h["model"]["config"]["layers"][0]["config"]   # noqa: E731  the InputLayer
    mutated(lambda h: first(h).update(batch_shape=[None, 2, 3]), match="flat feature vectors.*Flatten")
    mutated(lambda h: first(h).update(batch_shape=[None, None]), match="fixed input shape")
    mutated(lambda h: first(h).update(batch_shape=[None, 3, 2]) or h["model"]["config"]["layers"].insert(
        1, {"class_name": "Flatten", "config": {"name": "f", "data_format": "channels_first"}}), match="data_format")
    _bad(seal(pre, header, body, header_bytes=b"{" * 200_000), "malformed JSON")
    _bad(seal(pre, header, body, header_bytes=b"[" * 200_000), "malformed JSON")
    _bad(seal(pre, header, body, header_bytes=b'{"format": NaN}'), "NaN")
    _bad(seal(pre, header, body, header_bytes=b"\xff\xfe not utf8"), "malformed JSON")
    _bad(seal(pre, header, body, header_bytes=b"[]"), "object")


def test_non_zero_padding(good):
    pre, header, body = split(good)
    t0 = header["tensors"][0]
    body[t0["offset"] + t0["length"]] = 1        # between the kernel and the bias
    _bad(seal(pre, header, body), "padding")
    hb = json.dumps(header, separators=(",", ":")).encode()
    if _align(64 + len(hb)) == 64 + len(hb):
        hb += b" "
    _bad(seal(pre, header, split(good)[2], header_bytes=hb, pad=b"\1"), "padding after the header")


def _error(load):
    """The FormatError message of ``load()``, or None when it loads."""
    try:
        load()
    except fastmlp.FormatError as e:
        return str(e)
    return None


def _damaged_files(good):
    """The good file with one defect in every region: flipped bits, non-zero padding
    before a tensor, after the last one and after the header, a resealed table."""
    pre, header, body = split(good)
    data_off = _align(64 + pre[5])
    out = []
    for pos in (3, 12, 26, 49, 53, 57, 61, 80, 64 + pre[5] - 20, data_off - 1, data_off + 100,
                data_off + pre[6] - 1, data_off + pre[6] + 100, len(good) - 1):
        b = bytearray(good)
        b[pos] ^= 1
        out.append(bytes(b))
    t0 = header["tensors"][0]
    b = bytearray(body)
    b[t0["offset"] + t0["length"]] = 1
    out.append(seal(pre, header, b))
    b = bytearray(body)
    b[pre[6] - 1] = 1      # the weights section's tail padding
    out.append(seal(pre, header, b))
    h = json.loads(json.dumps(header))
    h["tensors"][1]["offset"] += 64
    out.append(seal(pre, h, body))
    return out


def test_every_reader_reports_the_same_first_failure(good, tmp_path):
    """load_model reads the preamble, the header and short paddings with pread and
    maps the rest; it must report exactly what the in-memory reader reports."""
    path = tmp_path / "damaged.fmlp"
    for data in [good] + _damaged_files(good):
        path.write_bytes(data)
        for verify in (True, False):
            expected = _error(lambda: fastmlp.models.from_bytes(data, verify=verify))
            for mm in (True, False):
                got = _error(lambda: fastmlp.load_model(path, mmap=mm, verify=verify))
                assert got == (None if expected is None else f"{path}: {expected}")


@pytest.mark.parametrize("short", [lambda n: n // 2, lambda n: min(n, 10), lambda n: 0],
                         ids=["half", "10 bytes", "none"])
def test_a_short_head_falls_back_to_the_mapping(good, tmp_path, short):
    """pread may return fewer bytes than asked (some file systems): the reader then
    checks the rest through the mapping and still reports the same failures."""
    path = tmp_path / "damaged.fmlp"
    for data in [good] + _damaged_files(good):
        path.write_bytes(data)
        expected = _error(lambda: fastmlp.models.from_bytes(data, verify=False))
        fmap, head, size = _engine.map_file(os.fsencode(path), saving._HEAD_READ, saving.PREAMBLE_SIZE)
        assert size == len(data) and head == data[:saving._HEAD_READ]
        try:
            got = _error(lambda: saving._parse(fmap, size, False, head[:short(len(head))]))
        finally:
            fmap.close_file()
        assert got == expected


def test_file_map(tmp_path):
    """map_file: the head, a copy-on-write mapping that writes never reach, reads
    through the descriptor until close_file, and open's errors."""
    path = tmp_path / "f.bin"
    data = bytes(range(256)) * 40
    path.write_bytes(data)
    fmap, head, size = _engine.map_file(os.fsencode(path), 100, 64)
    assert head == data[:100] and size == len(data) == len(fmap)
    view = np.frombuffer(fmap, dtype=np.uint8)
    assert view.flags.writeable and bytes(view) == data
    assert fmap.pread(10, len(data) - 4) == data[-4:] and fmap.pread(3, 5) == data[5:8]
    view[:4] = 7
    fmap.close_file()
    with pytest.raises(OSError):
        fmap.pread(1, 0)
    assert path.read_bytes() == data and bytes(view[:5]) == b"\x07\x07\x07\x07\x04"
    del fmap   # the array keeps the mapping alive
    assert bytes(view[4:8]) == data[4:8]
    short = tmp_path / "short.bin"
    short.write_bytes(b"abc")
    assert _engine.map_file(os.fsencode(short), 100, 64) == (None, b"abc", 3)
    with pytest.raises(FileNotFoundError):
        _engine.map_file(os.fsencode(tmp_path / "missing"), 100, 64)
    with pytest.raises(IsADirectoryError):
        _engine.map_file(os.fsencode(tmp_path), 100, 64)
    with pytest.raises(ValueError, match="null byte"):
        _engine.map_file(b"a\0b", 100, 64)


def test_header_longer_than_the_first_read_and_no_mmap(tmp_path, monkeypatch):
    """A header past the bytes read ahead (4 KiB) is checked from the mapping; without
    mmap (Windows) the file is read; both give the same model and catch damage."""
    fastmlp.utils.set_random_seed(5)
    m = fastmlp.Sequential([fastmlp.Input(shape=(3,))] + [layers.Dense(4, activation="tanh") for _ in range(24)])
    m.compile("adam", "mse")
    m.fit(np.ones((8, 3), np.float32), np.ones((8, 4), np.float32), verbose=0)
    path = tmp_path / "deep.fmlp"
    m.save(path)
    data = path.read_bytes()
    h_len = split(data)[0][5]
    assert h_len > saving._HEAD_READ
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    _assert_same_model(m, fastmlp.load_model(path), x)
    b = bytearray(data)
    b[64 + h_len - 10] ^= 1
    path.write_bytes(bytes(b))
    with pytest.raises(fastmlp.FormatError, match="header checksum"):
        fastmlp.load_model(path, verify=False)
    path.write_bytes(data)
    monkeypatch.setattr(saving._engine, "map_file", lambda *args: (None, b"", -1))
    r = fastmlp.load_model(path)
    _assert_same_model(m, r, x)
    assert r.optimizer.iterations == m.optimizer.iterations and _same_slots(r.optimizer, m.optimizer)


def _open_files(path):
    """File descriptors of this process open on ``path``."""
    fds = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                fds.append(fd)
        except OSError:
            pass
    return fds


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_load_closes_the_file_on_success_and_on_failure(good, tmp_path):
    path = tmp_path / "m.fmlp"
    for data in [good] + _damaged_files(good)[:4] + [b"", b"\x89FASTMLP"]:
        path.write_bytes(data)
        for mm in (True, False):
            _error(lambda: fastmlp.load_model(path, mmap=mm, compile=False))
            assert _open_files(path) == []


def test_foreign_and_garbage_files(tmp_path):
    import io
    buf = io.BytesIO()
    np.save(buf, np.zeros(100, np.float32))
    _bad(buf.getvalue(), "npy")
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("config.json", "{}")
    _bad(zbuf.getvalue(), "zip")
    _bad(b"", "empty")
    rng = np.random.default_rng(1)
    for n in (1, 10, 64, 100, 5000):
        _bad(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
    _bad(b"\x89HDF\r\n\x1a\n" + b"\0" * 100, "HDF5")
    (tmp_path / "empty.fmlp").write_bytes(b"")
    with pytest.raises(fastmlp.FormatError, match="empty"):
        fastmlp.load_model(tmp_path / "empty.fmlp")
    assert issubclass(fastmlp.FormatError, ValueError)


def test_text_mode_damage(good):
    _bad(good.replace(b"\r\n", b"\n", 1), "text-mode")
    _bad(bytes([good[0] & 0x7F]) + good[1:], "text-mode")


# ----------------------------------------------------------------------------- Flatten (format 1.2)
def _image_model():
    fastmlp.utils.set_random_seed(5)
    m = fastmlp.Sequential([fastmlp.Input(shape=(3, 2)), layers.Dropout(0.1), layers.Flatten(),
                            layers.Dense(12, activation="relu"), layers.Dropout(0.25),
                            layers.Dense(3, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return m


def test_a_flatten_model_round_trips_and_resumes_bit_identically(tmp_path):
    x, y = _data(200)
    images = x.reshape(200, 3, 2)
    full = _image_model()
    full.fit(images, y, epochs=4, batch_size=16, verbose=0)
    half = _image_model()
    half.fit(images, y, epochs=2, batch_size=16, verbose=0)
    half.save(tmp_path / "half.fmlp")
    assert PRE.unpack(open(tmp_path / "half.fmlp", "rb").read(64))[1:3] == (1, 2)
    resumed = fastmlp.load_model(tmp_path / "half.fmlp")
    _assert_same_model(half, resumed, images)
    assert resumed.input_shape == (None, 3, 2)
    resumed.fit(images, y, epochs=4, initial_epoch=2, batch_size=16, verbose=0)
    assert np.array_equal(resumed._params, full._params)
    clone = pickle.loads(pickle.dumps(full))
    _assert_same_model(full, clone, images)
    weights_only = _image_model()
    weights_only.load_weights(tmp_path / "half.fmlp")
    assert np.array_equal(weights_only.predict(images), half.predict(images))


def test_files_without_flatten_keep_their_minor_version(tmp_path):
    m, _, _ = _trained()
    assert PRE.unpack(m.to_bytes()[:64])[1:3] == (1, 0)
    m.trainable = False
    assert PRE.unpack(m.to_bytes()[:64])[1:3] == (1, 1)
