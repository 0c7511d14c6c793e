"""Damaged and hostile Keras files (``.keras``, legacy ``.h5``, ``.weights.h5``): every one loads
or raises ``fastmlp.FormatError`` naming the file -- never another exception, a crash, or memory out
of proportion to the model -- and fastmlp's own HDF5 index (saving/h5index.py) agrees with h5py on
every object of Keras's golden files."""
import io
import json
import os
import zipfile

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

import fastmlp  # noqa: E402
from fastmlp.saving import h5index  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "data", "keras")
GOLDEN = ["seq_adam", "func_concat", "kinds"]


def _zip(members, compression=zipfile.ZIP_STORED):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def _members(name):
    with zipfile.ZipFile(os.path.join(DATA, name + ".keras")) as z:
        return {n: z.read(n) for n in z.namelist()}


def _load(tmp_path, data, ext, verify=True):
    path = tmp_path / f"m.{ext}"
    path.write_bytes(data)
    try:
        return fastmlp.load_model(path, verify=verify)
    except fastmlp.FormatError as e:
        assert str(path) in str(e)
        return e


@pytest.mark.parametrize("name", GOLDEN)
@pytest.mark.parametrize("ext", ["keras", "h5"])
@pytest.mark.parametrize("order", ["blocks", "in order"])
def test_the_index_reads_only_bytes_it_has_fetched(name, ext, order):
    """The loaders walk a weights file while it is still arriving (the default .keras load
    reads it on another thread, in order, and ``fetch`` returns how far it has got;
    verify=False reads only the blocks the walk asks for, and ``fetch`` returns nothing), so
    the index must read no byte before ``fetch`` has covered it: here every byte is garbage
    until fetched (exactly what was asked, or everything before its end), and the walk must
    find what it finds in the whole file."""
    if ext == "keras":
        data = _members(name)["model.weights.h5"]
    else:
        data = open(os.path.join(DATA, name + ".h5"), "rb").read()
    whole = h5index.H5Index(data)
    whole.walk()
    buf = bytearray(b"\xa5" * len(data))

    def fetch(offset, n):
        assert 0 <= offset and offset + n <= len(data)
        if order == "blocks":
            buf[offset:offset + n] = data[offset:offset + n]
            return None
        buf[:offset + n] = data[:offset + n]
        return offset + n
    part = h5index.H5Index(buf, fetch)
    part.walk()
    assert part._groups == whole._groups
    for path, members in whole._groups.items():
        np.testing.assert_equal(part.attrs(path), whole.attrs(path))
        for m in members or ():
            child = f"{path}/{m}" if path else m
            if whole.members(child) is None:
                assert part.dataset(child) == whole.dataset(child), child
                np.testing.assert_equal(part.attrs(child), whole.attrs(child))


@pytest.mark.parametrize("name", GOLDEN)
def test_the_index_finds_what_h5py_finds_in_keras_files(name):
    data = _members(name)["model.weights.h5"]
    index = h5index.H5Index(data)
    seen = []

    def visit(path, obj):
        if isinstance(obj, h5py.Dataset):
            dtype, shape, offset = index.dataset(path)
            got = np.frombuffer(data, dtype, int(np.prod(shape)), offset).reshape(shape)
            assert got.dtype == obj.dtype and np.array_equal(got, obj[()]), path
        else:
            assert sorted(index.members(path)) == sorted(obj.keys()), path
        seen.append(path)
    with h5py.File(io.BytesIO(data), "r") as f:
        f.visititems(visit)
        assert sorted(index.members("")) == sorted(f.keys())
    assert len(seen) > 5
    assert index.members("no/such/group") is None and index.dataset("layers/nothing") is None


def _copy(members, libver, chunks, compression="gzip"):
    buf = io.BytesIO()
    with h5py.File(io.BytesIO(members["model.weights.h5"]), "r") as f, h5py.File(buf, "w", libver=libver) as g:
        def copy(path, obj):
            if isinstance(obj, h5py.Dataset):
                kw = {"chunks": True, "compression": compression} if chunks and obj.ndim else {}
                g.create_dataset(path, data=obj[()], **kw)
            else:
                g.require_group(path)
        f.visititems(copy)
    return buf.getvalue()


@pytest.mark.parametrize("verify", [True, False])
def test_files_of_h5pys_newest_layout_go_through_h5py(tmp_path, verify):
    """A weights file h5py wrote with libver='latest' (another superblock, link messages): the
    index steps aside at the superblock and h5py reads it, to the same weights: contiguous or
    chunked datasets; a compressed one is refused (Keras never writes one, and HDF5's inflation
    of a chunk is not bounded by the chunk's size)."""
    m = fastmlp.load_model(os.path.join(DATA, "seq_adam.keras"))
    members = _members("seq_adam")
    for chunks in (False, True):
        data = _copy(members, "latest", chunks=chunks, compression=None)
        with pytest.raises(h5index.Unsupported):
            h5index.H5Index(data)
        loaded = _load(tmp_path, _zip({**members, "model.weights.h5": data}), "keras", verify)
        assert not isinstance(loaded, Exception), loaded
        for a, b in zip(loaded.get_weights(), m.get_weights()):
            np.testing.assert_array_equal(a, b)
    e = _load(tmp_path, _zip({**members, "model.weights.h5": _copy(members, "latest", chunks=True)}), "keras", verify)
    assert isinstance(e, fastmlp.FormatError) and "compressed or filtered" in str(e)


@pytest.mark.parametrize("verify", [True, False])
def test_in_keras_layout_what_the_index_does_not_follow_is_refused_not_handed_to_hdf5(tmp_path, verify):
    """In the layout Keras writes, a chunked, compressed dataset -- which Keras never writes, and
    which a flipped byte can also produce -- is a FormatError saying what to do: HDF5 itself
    crashed (under AddressSanitizer) on such damaged files.  (verify=False: the same message
    where the weights are read straight into the model.)"""
    members = _members("seq_adam")
    data = _copy(members, "earliest", chunks=True)
    h5index.H5Index(data)   # the superblock is one the index follows
    e = _load(tmp_path, _zip({**members, "model.weights.h5": data}), "keras", verify)
    assert isinstance(e, fastmlp.FormatError) and "libver='latest'" in str(e)


@pytest.mark.parametrize("ext,verify", [("keras", True), ("keras", False), ("h5", True)])
@pytest.mark.parametrize("name", GOLDEN)
def test_flipped_bytes_anywhere_load_or_raise_format_error(tmp_path, name, ext, verify):
    """(verify=False: the weights member is read as the index walks it, not whole.)"""
    rng = np.random.default_rng(len(name) + len(ext) + verify)
    if ext == "keras":   # damage inside the weights, the zip rebuilt around it (its CRC agrees)
        members = _members(name)
        base = members["model.weights.h5"]
    else:
        base = (open(os.path.join(DATA, f"{name}.h5"), "rb")).read()
    outcomes = set()
    for _ in range(60):
        b = bytearray(base)
        for _ in range(rng.integers(1, 4)):
            b[rng.integers(0, len(b))] = rng.integers(0, 256)
        data = _zip({**members, "model.weights.h5": bytes(b)}) if ext == "keras" else bytes(b)
        got = _load(tmp_path, data, ext, verify)
        if not verify and isinstance(got, fastmlp.Model):   # the slots, read when training starts
            try:
                got.optimizer._build_pending()
            except fastmlp.FormatError:
                pass
        outcomes.add(type(got).__name__)
    assert "KerasConfigError" in outcomes   # the damage was seen at least once


def test_a_flipped_byte_in_a_stored_member_fails_its_crc(tmp_path):
    raw = bytearray(open(os.path.join(DATA, "seq_adam.keras"), "rb").read())
    start = raw.find(b"\x89HDF")
    raw[start + 4000] ^= 0x01
    e = _load(tmp_path, bytes(raw), "keras")
    assert isinstance(e, fastmlp.FormatError) and "CRC-32" in str(e)


def test_truncated_files_raise_format_error(tmp_path):
    for ext, verify in (("keras", True), ("keras", False), ("h5", True)):
        raw = open(os.path.join(DATA, f"seq_adam.{ext}"), "rb").read()
        for cut in (0, 10, len(raw) // 3, len(raw) - 30):
            assert isinstance(_load(tmp_path, raw[:cut], ext, verify), fastmlp.FormatError), (ext, cut)


def test_zip_bombs_and_oversized_members_are_refused_before_they_are_inflated(tmp_path):
    members = _members("seq_adam")
    # config.json inflating to 200 MB of spaces (compressed ~200 KB)
    bomb = _zip({**members, "config.json": b" " * (200 << 20)}, zipfile.ZIP_DEFLATED)
    e = _load(tmp_path, bomb, "keras")
    assert isinstance(e, fastmlp.FormatError) and "config.json" in str(e)
    # weights declaring far more than the model (a few hundred parameters) could fill
    big = _zip({**members, "model.weights.h5": members["model.weights.h5"] + bytes(64 << 20)},
               zipfile.ZIP_DEFLATED)
    e = _load(tmp_path, big, "keras")
    assert isinstance(e, fastmlp.FormatError) and "model.weights.h5" in str(e)


def test_a_dataset_declaring_an_absurd_shape_is_refused_without_allocating_it(tmp_path):
    """A chunked dataset of 10^12 elements costs a few bytes in the file; reading it would not."""
    members = _members("seq_adam")
    buf = io.BytesIO()
    with h5py.File(io.BytesIO(members["model.weights.h5"]), "r") as f, \
            h5py.File(buf, "w", libver="latest") as g:   # h5py's layout: read through h5py
        for key in f:
            f.copy(key, g)
        del g["layers/dense/vars/0"]
        g.create_dataset("layers/dense/vars/0", shape=(10**6, 10**6), dtype="f4", chunks=(1, 1024),
                         compression="gzip")
    e = _load(tmp_path, _zip({**members, "model.weights.h5": buf.getvalue()}), "keras")
    assert isinstance(e, fastmlp.FormatError) and "(1000000, 1000000)" in str(e)


def test_zip_names_with_paths_are_never_extracted(tmp_path):
    members = _members("seq_adam")
    (tmp_path / "sub").mkdir()
    data = _zip({**members, "../../evil.txt": b"x", "/abs/evil.txt": b"y"})
    path = tmp_path / "sub" / "m.keras"
    path.write_bytes(data)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    fastmlp.load_model(path)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_a_missing_file_keeps_its_os_error(tmp_path):
    for ext in ("keras", "h5"):
        with pytest.raises(FileNotFoundError):
            fastmlp.load_model(tmp_path / f"none.{ext}")


def test_damage_found_when_training_starts_is_a_format_error_too(tmp_path):
    """The optimizer slots are read at the first training step, from the bytes read at load: a
    slot's damaged header surfaces then, as a FormatError naming the file."""
    members = _members("seq_adam")
    data = bytearray(members["model.weights.h5"])
    header = h5index.H5Index(bytes(data)).members("optimizer/vars")["3"]
    data[header] = 7   # an object header version that does not exist
    path = tmp_path / "m.keras"
    path.write_bytes(_zip({**members, "model.weights.h5": bytes(data)}))
    m = fastmlp.load_model(path)
    assert not m.optimizer.built and m.optimizer.iterations == 2
    x = np.zeros((4,) + tuple(m.inputs[0].shape[1:]), "float32")
    y = np.zeros(4, "int64")   # sparse labels
    with pytest.raises(fastmlp.FormatError, match="m.keras"):
        m.fit(x, y, epochs=1, verbose=0)


def test_cycles_in_the_hdf5_structure_cost_linear_work():
    """A symbol-table node every B-tree entry points at, and a B-tree node pointing at itself: the
    index gives up (to h5py) after work bounded by the file's size."""
    import time
    data = bytearray(_members("seq_adam")["model.weights.h5"])
    index = h5index.H5Index(bytes(data))
    root_btree = index.root[2][0]
    assert data[root_btree:root_btree + 4] == b"TREE"
    # the root B-tree's first child pointer -> the B-tree itself, and as many entries as fit
    data[root_btree + 6:root_btree + 8] = (2000).to_bytes(2, "little")
    for i in range(2000):
        at = root_btree + 24 + 8 + 16 * i
        if at + 8 > len(data):
            break
        data[at:at + 8] = root_btree.to_bytes(8, "little")
    start = time.perf_counter()
    with pytest.raises(h5index.Unsupported):
        h5index.H5Index(bytes(data)).members("layers")
    assert time.perf_counter() - start < 5


def _patched_zip(tmp_path, edit):
    """fastmlp's own .keras file of a small model, with ``edit(bytearray, central_offset_of)``
    applied; central_offset_of(name) is where that member's central-directory record starts."""
    m = fastmlp.load_model(os.path.join(DATA, "seq_adam.keras"))
    m.save(tmp_path / "ok.keras")
    data = bytearray((tmp_path / "ok.keras").read_bytes())

    def central(name):   # the record (46 bytes, then the name) naming ``name``
        at = data.find(b"PK\x01\x02")
        while data[at + 46:at + 46 + len(name)] != name.encode():
            at = data.find(b"PK\x01\x02", at + 4)
            assert at > 0, name
        return at
    edit(data, central)
    return bytes(data)


@pytest.mark.parametrize("edit", ["version", "encrypted", "patched", "method", "bad_deflate"])
def test_zip_headers_fastmlp_cannot_honour_are_format_errors(tmp_path, edit):
    """Zip records asking for a newer zip version, encryption, patch data, or a deflate stream
    that does not inflate: FormatError, never NotImplementedError or zlib.error."""
    import struct
    if edit == "bad_deflate":
        members = _members("seq_adam")
        raw = bytearray(_zip(members, zipfile.ZIP_DEFLATED))
        start = raw.find(b"model.weights.h5") + len("model.weights.h5") + 40
        raw[start:start + 64] = bytes(range(64))
        data = bytes(raw)
    else:
        def change(d, central):
            at = central("config.json")
            if edit == "version":
                struct.pack_into("<H", d, at + 6, 99)
            elif edit == "encrypted":
                d[at + 8] |= 0x40
            elif edit == "patched":
                d[at + 8] |= 0x20
            else:   # the directory says deflated, the bytes are stored
                struct.pack_into("<H", d, at + 10, 8)
        data = _patched_zip(tmp_path, change)
    e = _load(tmp_path, data, "keras")
    assert isinstance(e, fastmlp.FormatError), e


def test_long_names_cost_by_their_length(tmp_path):
    """A local heap holding one long name and a symbol-table node whose entries point inside it
    at every offset: the index gives up (to h5py) before the work grows with names x length."""
    import struct
    import time
    base = bytearray(_members("seq_adam")["model.weights.h5"])
    heap_at = len(base)
    text = b"a" * 200_000 + b"\0"
    data_at = heap_at + 32
    heap = b"HEAP" + bytes([0, 0, 0, 0]) + struct.pack("<QQQ", len(text), 0xFFFFFFFFFFFFFFFF, data_at)
    snod_at = data_at + len(text)
    n = 3000
    entries = b"".join(struct.pack("<QQII16x", i, 0, 0, 0) for i in range(n))
    snod = b"SNOD" + bytes([1, 0]) + struct.pack("<H", n) + entries
    tree_at = snod_at + len(snod)
    tree = b"TREE" + bytes([0, 0]) + struct.pack("<H", 1) + struct.pack("<QQ", 0xFFFFFFFFFFFFFFFF,
                                                                         0xFFFFFFFFFFFFFFFF)
    tree += struct.pack("<QQQ", 0, snod_at, 0)
    data = base + heap + text + snod + tree
    struct.pack_into("<QQ", data, 56 + 24, tree_at, heap_at)   # the root's cached B-tree and heap
    start = time.perf_counter()
    with pytest.raises(h5index.Unsupported):
        h5index.H5Index(bytes(data)).members("")
    assert time.perf_counter() - start < 5


def test_legacy_files_are_read_without_handing_their_attributes_to_hdf5(tmp_path):
    """The attributes of Keras's and TensorFlow's legacy files (model_config, training_config,
    layer_names, weight_names: variable-length strings in the global heap) are read by the index
    and equal h5py's; a damaged attribute is a FormatError (HDF5 itself crashed the process on one
    whose datatype byte was flipped)."""
    for name in ("seq_adam.h5", "func_concat.h5", "kinds.h5", "tf2_seq.h5", "tf2_func.h5", "tf2_leaky.h5",
                 "tf2_nested.h5", "tf2_multi.h5"):
        data = open(os.path.join(DATA, name), "rb").read()
        index = h5index.H5Index(data)
        index.walk()
        with h5py.File(os.path.join(DATA, name), "r") as f:
            def same(path, obj):
                got, want = index.attrs(path), dict(obj.attrs)
                assert sorted(got) == sorted(want), (name, path)
                for key, value in want.items():
                    if isinstance(value, (str, bytes)):
                        assert got[key] == (value.decode() if isinstance(value, bytes) else value)
                    else:
                        value = np.asarray(value).reshape(-1)
                        assert [v.decode() if isinstance(v, bytes) else v for v in value] == list(got[key])
            same("", f)
            f.visititems(same)
    raw = bytearray(open(os.path.join(DATA, "seq_adam.h5"), "rb").read())
    at = raw.find(b"keras_version") + len(b"keras_version") + 3   # the attribute's datatype, class 9
    assert raw[at] & 0x0F == 9
    raw[at + 1] = 0xF2   # its bit field: not a string any more
    with pytest.raises(h5index.Damaged):
        h5index.H5Index(bytes(raw)).walk()
    assert isinstance(_load(tmp_path, bytes(raw), "h5"), fastmlp.FormatError)


@pytest.mark.parametrize("change", ["none", "replace", "truncate"])
def test_without_verify_the_slots_are_read_when_training_starts_from_the_file_loaded(tmp_path, change):
    """load_model(verify=False) reads the optimizer slots from the file when training starts, as
    for .fmlp files: the same file trains on exactly as the default load does; a file replaced or
    truncated since is a clean error, never another model's state."""
    import shutil
    shutil.copy(os.path.join(DATA, "seq_adam.keras"), tmp_path / "m.keras")
    checked = fastmlp.load_model(tmp_path / "m.keras")
    lazy = fastmlp.load_model(tmp_path / "m.keras", verify=False)
    assert not lazy.optimizer.built
    if change == "replace":
        other = fastmlp.load_model(tmp_path / "m.keras")
        other.fit(np.zeros((8, 4), "float32"), np.zeros(8, "int64"), epochs=1, verbose=0)
        other.save(tmp_path / "m.keras")
    elif change == "truncate":
        os.truncate(tmp_path / "m.keras", 1000)
    x, y = np.ones((8, 4), "float32"), np.arange(8) % 3
    if change == "none":   # the slots the first training step starts from: the file's, as loaded
        checked.optimizer._build_pending()
        lazy.optimizer._build_pending()
        np.testing.assert_array_equal(lazy.optimizer._slots, checked.optimizer._slots)
        assert np.any(lazy.optimizer._slots)
        lazy.fit(x, y, epochs=1, verbose=0, shuffle=False)
    else:
        with pytest.raises(fastmlp.FormatError, match="m.keras"):
            lazy.fit(x, y, epochs=1, verbose=0, shuffle=False)


@pytest.mark.skipif(not hasattr(os, "preadv"), reason="os.preadv: the whole member is read where it is missing")
def test_without_verify_a_load_reads_the_structure_and_weights_not_the_slots(tmp_path, monkeypatch):
    """load_model(verify=False) reads the weights straight into the model and the HDF5
    structure a block at a time: an Adam model's slots (two thirds of the file) are not read
    until training starts.  The model predicts and trains as the default load's does."""
    from fastmlp.saving import keras_file
    m = fastmlp.Sequential([fastmlp.Input(shape=(300,)), fastmlp.layers.Dense(200, activation="relu"),
                            fastmlp.layers.Dense(3, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = np.random.default_rng(0).normal(size=(32, 300)).astype("float32"), np.arange(32) % 3
    m.fit(x, y, epochs=1, verbose=0)
    m.save(tmp_path / "m.keras")
    member = zipfile.ZipFile(tmp_path / "m.keras").getinfo("model.weights.h5").file_size
    read = []
    real = os.preadv

    def preadv(fd, buffers, offset):
        got = real(fd, buffers, offset)
        read.append(got)
        return got
    monkeypatch.setattr(keras_file.os, "preadv", preadv)
    lazy = fastmlp.load_model(tmp_path / "m.keras", verify=False)
    monkeypatch.undo()
    assert not lazy.optimizer.built
    assert m.count_params() * 4 <= sum(read) < 0.4 * member   # the weights and a few blocks of structure
    checked = fastmlp.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(lazy.predict(x), checked.predict(x))
    lazy.fit(x, y, epochs=1, verbose=0, shuffle=False)
    checked.fit(x, y, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(lazy.get_weights(), checked.get_weights()):
        np.testing.assert_array_equal(a, b)


def _latest_with(members, path, make):
    """The weights member in h5py's newest layout with the dataset ``path`` made by ``make(g, path,
    original)`` instead of copied."""
    buf = io.BytesIO()
    with h5py.File(io.BytesIO(members["model.weights.h5"]), "r") as f, h5py.File(buf, "w", libver="latest") as g:
        def copy(name, obj):
            if isinstance(obj, h5py.Group):
                g.require_group(name)
            elif name == path:
                make(g, name, obj[()])
            else:
                g.create_dataset(name, data=obj[()])
        f.visititems(copy)
    return buf.getvalue()


@pytest.mark.parametrize("case", ["external_file", "external_fifo", "virtual", "gzip_bomb", "never_written"])
@pytest.mark.parametrize("how", ["load_model", "load_weights"])
def test_datasets_whose_values_hdf5_would_fetch_elsewhere_or_unboundedly_are_refused(tmp_path, case, how):
    """Read through h5py (the newest layout), a dataset must hold its values in the file's own bytes:
    external storage read any file on the machine into the weights (or blocked forever on a FIFO),
    a virtual dataset crashed the process, a compressed chunk inflated 1000x the file, and a
    dataset never written reads as fill values."""
    members = _members("seq_adam")
    target = "layers/dense/vars/0"
    model = fastmlp.load_model(os.path.join(DATA, "seq_adam.keras"))
    before = [w.copy() for w in model.get_weights()]

    def make(g, name, value):
        if case == "external_file":
            secret = tmp_path / "secret.bin"
            secret.write_bytes(np.arange(value.size, dtype=value.dtype).tobytes())
            g.create_dataset(name, shape=value.shape, dtype=value.dtype, external=[(str(secret), 0, value.nbytes)])
        elif case == "external_fifo":
            fifo = tmp_path / "fifo"
            os.mkfifo(fifo)
            g.create_dataset(name, shape=value.shape, dtype=value.dtype, external=[(str(fifo), 0, h5py.h5f.UNLIMITED)])
        elif case == "virtual":
            other = tmp_path / "other.h5"
            with h5py.File(other, "w") as o:
                o.create_dataset("v", data=value)
            layout = h5py.VirtualLayout(shape=value.shape, dtype=value.dtype)
            layout[...] = h5py.VirtualSource(str(other), "v", shape=value.shape)
            g.create_virtual_dataset(name, layout)
        elif case == "gzip_bomb":
            g.create_dataset(name, data=value, chunks=value.shape, compression="gzip")
        else:
            g.create_dataset(name, shape=value.shape, dtype=value.dtype)   # (storage never allocated)
    data = _latest_with(members, target, make)
    message = {"external_file": "external files", "external_fifo": "external files", "virtual": "virtual dataset",
               "gzip_bomb": "compressed or filtered", "never_written": "values never written"}[case]
    if how == "load_model":
        e = _load(tmp_path, _zip({**members, "model.weights.h5": data}), "keras")
        assert isinstance(e, fastmlp.FormatError) and message in str(e), e
    else:
        (tmp_path / "w.weights.h5").write_bytes(data)
        with pytest.raises(fastmlp.FormatError, match=message):
            model.load_weights(tmp_path / "w.weights.h5")
        for a, b in zip(model.get_weights(), before):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("layout", ["latest", "user_block"])
def test_a_legacy_file_the_index_does_not_follow_is_refused_not_handed_to_hdf5(tmp_path, layout):
    """A legacy .h5's attributes (model_config, ...) are variable-length strings HDF5 reads from
    its global heap, where one damaged size byte made it spin forever: a legacy file in a layout
    the index does not follow is refused, naming the layout."""
    src = h5py.File(os.path.join(DATA, "seq_adam.h5"), "r")
    kw = {"libver": "latest"} if layout == "latest" else {"userblock_size": 512}
    with h5py.File(tmp_path / "m.h5", "w", **kw) as dst:
        for key in src:
            src.copy(key, dst)
        for key, value in src.attrs.items():
            dst.attrs[key] = value
    with pytest.raises(fastmlp.FormatError, match="h5py's newest layout, or a user block"):
        fastmlp.load_model(tmp_path / "m.h5")


def _trained_pair(seed):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(32, 4)).astype("float32"), rng.integers(0, 3, 32)
    fastmlp.utils.set_random_seed(seed)
    m = fastmlp.Sequential([fastmlp.Input((4,)), fastmlp.layers.Dense(5, activation="relu"),
                            fastmlp.layers.Dense(3, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    m.fit(x, y, epochs=1, batch_size=8, verbose=0)
    return m


@pytest.mark.parametrize("damage", ["negative_iteration", "nan_learning_rate", "slot_shape"])
def test_a_failed_load_weights_leaves_the_model_and_its_optimizer_as_they_were(tmp_path, damage):
    """The optimizer's variables are checked with the layers' before anything is written: a
    damaged one used to fail after every layer had taken the file's weights."""
    src, m = _trained_pair(1), _trained_pair(2)
    src.save_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5", "r+") as f:
        if damage == "negative_iteration":
            f["optimizer/vars/0"][()] = -5
        elif damage == "nan_learning_rate":
            f["optimizer/vars/1"][()] = np.nan
        else:
            del f["optimizer/vars/2"]
            f.create_dataset("optimizer/vars/2", data=np.zeros((2, 2), "float32"))
    weights, iterations, lr = [w.copy() for w in m.get_weights()], m.optimizer.iterations, m.optimizer.learning_rate
    slots = m.optimizer.variables[1].copy()
    with pytest.raises(fastmlp.FormatError):
        m.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(m.get_weights(), weights):
        np.testing.assert_array_equal(a, b)
    assert (m.optimizer.iterations, m.optimizer.learning_rate) == (iterations, lr)
    np.testing.assert_array_equal(m.optimizer.variables[1], slots)
    m.save(tmp_path / "m.keras")   # a loaded model, its optimizer's slots not built yet: the same
    loaded = fastmlp.load_model(tmp_path / "m.keras")
    with pytest.raises(fastmlp.FormatError):
        loaded.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(loaded.get_weights(), weights):
        np.testing.assert_array_equal(a, b)
    assert loaded.optimizer.iterations == iterations


def test_a_failed_load_of_a_legacy_weights_file_leaves_every_layer_as_it_was(tmp_path):
    """Legacy weights files (layer_names, weight_names) are matched layer by layer: all are
    checked before any is written."""
    src, m = _trained_pair(1), _trained_pair(2)
    src.save_weights(tmp_path / "w.h5")
    with h5py.File(tmp_path / "w.h5", "r+") as f:
        second = f[f.attrs["layer_names"][1].decode()]
        name = second.attrs["weight_names"][0].decode()
        del second[name]
        second.create_dataset(name, data=np.zeros((3, 5), "float32"))
    weights = [w.copy() for w in m.get_weights()]
    with pytest.raises(fastmlp.FormatError, match="shape"):
        m.load_weights(tmp_path / "w.h5")
    for a, b in zip(m.get_weights(), weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("ext", ["keras", "h5"])
@pytest.mark.parametrize("units", [10**8, 10**12])
def test_a_small_file_asking_for_a_huge_layer_is_refused_before_anything_is_allocated(tmp_path, ext, units):
    """A 16 KB file whose config says Dense(10**12) raised a bare MemoryError (25 TiB), and 10**8
    reserved gigabytes first: the parameters a config asks for must fit in the file's bytes."""
    if ext == "keras":
        members = _members("seq_adam")
        config = json.loads(members["config.json"])
        config["config"]["layers"][1]["config"]["units"] = units
        data = _zip({**members, "config.json": json.dumps(config).encode()})
    else:
        with open(os.path.join(DATA, "seq_adam.h5"), "rb") as f:
            raw = f.read()
        buf = io.BytesIO(raw)
        with h5py.File(buf, "r+") as f:
            config = json.loads(f.attrs["model_config"])
            config["config"]["layers"][1]["config"]["units"] = units
            f.attrs["model_config"] = json.dumps(config)
        data = buf.getvalue()
    e = _load(tmp_path, data, ext)
    assert isinstance(e, fastmlp.FormatError) and "parameters, more than the file's" in str(e), e


def test_the_room_for_parameters_is_what_the_archive_holds_not_what_its_directory_claims(tmp_path):
    """The zip's central directory may claim (in a zip64 field) a 4 TiB weights member: the
    parameters a config asks for are judged against the archive's real size (a stored member
    cannot exceed it), not that claim (a bare MemoryError of 4.4 TiB before)."""
    import struct
    members = _members("seq_adam")
    config = json.loads(members["config.json"])
    config["config"]["layers"][1]["config"]["units"] = 10**11
    data = bytearray(_zip({**members, "config.json": json.dumps(config).encode()}))
    at = 0
    while True:   # the central directory entry of model.weights.h5: a zip64 size of 2**42
        at = data.find(b"PK\x01\x02", at)
        name_len, extra_len = struct.unpack("<HH", data[at + 28:at + 32])
        if data[at + 46:at + 46 + name_len] == b"model.weights.h5":
            extra = at + 46 + name_len + extra_len
            compressed = struct.unpack("<I", data[at + 20:at + 24])[0]
            data[at + 20:at + 28] = b"\xff" * 8
            data[at + 30:at + 32] = struct.pack("<H", extra_len + 20)
            data[extra:extra] = b"\x01\x00\x10\x00" + struct.pack("<QQ", 2**42, compressed)
            end = data.rfind(b"PK\x05\x06")
            data[end + 12:end + 16] = struct.pack("<I", struct.unpack("<I", data[end + 12:end + 16])[0] + 20)
            break
        at += 4
    assert zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("model.weights.h5").file_size == 2**42
    e = _load(tmp_path, bytes(data), "keras")
    assert isinstance(e, fastmlp.FormatError) and "parameters, more than the file's" in str(e), e


@pytest.mark.parametrize("ext", ["keras", "h5"])
@pytest.mark.parametrize("layer", ["hard_sigmoid", "UnitNormalization"])
def test_tf_keras_2_files_using_what_it_computes_otherwise_are_refused(tmp_path, ext, layer):
    """tf.keras 2's hard_sigmoid is clip(0.2x + 0.5) and its UnitNormalization floors the squared
    norm at 1e-12: its files using either are refused, .keras ones too (metadata.json names the
    version that wrote them)."""
    def edit(config):
        layers_ = config["config"]["layers"]
        if layer == "hard_sigmoid":
            layers_[1]["config"]["activation"] = "hard_sigmoid"
        else:
            layers_.insert(2, {"class_name": "UnitNormalization", "config": {"name": "unit", "axis": -1}})
        return config
    if ext == "keras":
        members = _members("seq_adam")
        data = _zip({**members, "config.json": json.dumps(edit(json.loads(members["config.json"]))).encode(),
                     "metadata.json": json.dumps({"keras_version": "2.15.0"}).encode()})
    else:
        buf = io.BytesIO(open(os.path.join(DATA, "tf2_seq.h5"), "rb").read())
        with h5py.File(buf, "r+") as f:
            f.attrs["model_config"] = json.dumps(edit(json.loads(f.attrs["model_config"])))
        data = buf.getvalue()
    e = _load(tmp_path, data, ext)
    assert isinstance(e, fastmlp.FormatError) and "tf.keras 2's" in str(e), e


def test_a_damaged_metadata_json_which_keras_never_reads_does_not_stop_a_load(tmp_path):
    """metadata.json only tells fastmlp which Keras wrote the file: a flipped byte in it (a bad
    CRC-32) leaves the version unknown, as Keras, which never reads it, would load the file."""
    members = _members("seq_adam")
    data = bytearray(_zip(members))
    at = data.find(b'"keras_version"')
    data[at + 2] ^= 0x20
    loaded = _load(tmp_path, bytes(data), "keras")
    assert not isinstance(loaded, Exception), loaded


def test_a_keras_load_closes_its_file():
    import gc
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        fastmlp.load_model(os.path.join(DATA, "seq_adam.keras"))
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
