"""A validating reader for IDX files (the MNIST family's format), plain or gzipped."""
import gzip
import os

import numpy as np

_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MAX_BYTES = 1 << 32


def load_idx(path):
    """Read an IDX file into a NumPy array; a malformed file raises ``ValueError``."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            header = f.read(4)
            if len(header) != 4 or header[0] != 0 or header[1] != 0:
                raise ValueError(f"{path}: not an IDX file (bad magic {header!r})")
            dtype = _TYPES.get(header[2])
            if dtype is None:
                raise ValueError(f"{path}: unknown IDX element type 0x{header[2]:02x}")
            ndim = header[3]
            if ndim == 0 or ndim > 8:
                raise ValueError(f"{path}: IDX rank {ndim} is out of range 1..8")
            dims_raw = f.read(4 * ndim)
            if len(dims_raw) != 4 * ndim:
                raise ValueError(f"{path}: truncated IDX header")
            dims = tuple(int(d) for d in np.frombuffer(dims_raw, dtype=">u4"))
            count = 1
            for d in dims:
                count *= d
            nbytes = count * np.dtype(dtype).itemsize
            if nbytes > _MAX_BYTES:
                raise ValueError(f"{path}: IDX dimensions {dims} describe more than 4 GiB")
            data = f.read(nbytes + 1)
    except (OSError, EOFError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"{path}: unreadable IDX file ({e})") from e
    if len(data) != nbytes:
        raise ValueError(f"{path}: IDX payload has {len(data)} bytes but dimensions {dims} need {nbytes}")
    return np.frombuffer(data, dtype=dtype).reshape(dims).astype(np.dtype(dtype).newbyteorder("="))


_DEFAULT_DIRS = {"fashion_mnist": ["/usr/share/datasets/fashion-mnist"],
                 "mnist": ["/usr/share/datasets/mnist"]}
_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
          "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _find(folder, stem):
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        p = os.path.join(folder, name)
        if os.path.exists(p):
            return p
    return None


def load_mnist_family(kind, path=None):
    candidates = []
    if path is not None:
        candidates.append(str(path))
    else:
        env = os.environ.get("FASTMLP_DATA")
        if env:
            candidates += [os.path.join(env, kind.replace("_", "-")), os.path.join(env, kind), env]
        candidates += _DEFAULT_DIRS[kind]
    for folder in candidates:
        files = [_find(folder, stem) for stem in _FILES]
        if all(files):
            xtr, ytr, xte, yte = (load_idx(f) for f in files)
            if xtr.ndim != 3 or ytr.shape != (xtr.shape[0],) or xte.ndim != 3 or yte.shape != (xte.shape[0],):
                raise ValueError(f"{folder}: IDX files have inconsistent shapes")
            return (xtr, ytr.astype(np.uint8)), (xte, yte.astype(np.uint8))
    pkg = "dataset-fashion-mnist" if kind == "fashion_mnist" else "an MNIST package"
    raise FileNotFoundError(
        f"{kind} data not found in {candidates}. fastmlp does not download data: put the four IDX "
        f"files ({', '.join(s + '.gz' for s in _FILES)}) in a folder and pass path=..., or set "
        f"FASTMLP_DATA, or on Debian `apt-get install {pkg}`.")
