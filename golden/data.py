"""Data sets: the embedded digits, MNIST and Fashion-MNIST from IDX files.

Every loader returns a :class:`Dataset` of float32 images in [0, 1], flattened to
``(n, height * width)``, and int64 labels in ``0 .. 9``.

* ``digits``: scikit-learn's ``load_digits`` (8x8, 16 grey levels, ships inside the wheel,
  works offline). It has no published train/test split; spikegate's is fixed: a permutation
  drawn with ``numpy.random.default_rng(0)``, the last 360 samples (20 %) for test.
* ``mnist`` and ``fashion-mnist``: the four standard IDX files (``.gz`` or raw) in a
  directory, the published 60,000 / 10,000 split. Each file's *uncompressed* content is
  checked against its known MD5 (gzip bytes differ between distributions). A missing,
  truncated or corrupt file raises :class:`DataError` naming the file and the problem.

Where the directory comes from: the ``root`` argument; else the ``SPIKEGATE_DATA``
environment variable (the directory itself, or a parent holding ``mnist/`` or
``fashion-mnist/``); else, for Fashion-MNIST only, Debian's ``dataset-fashion-mnist``
location ``/usr/share/datasets/fashion-mnist``. Nothing is downloaded.
"""

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Dataset", "DataError", "DATASETS", "load_dataset", "read_idx", "find_idx_dir"]

DATASETS = ("digits", "mnist", "fashion-mnist")

# MD5 of the uncompressed IDX files.
_IDX_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}
_DEFAULT_DIRS = {"fashion-mnist": "/usr/share/datasets/fashion-mnist"}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(ValueError):
    """A data set is missing, truncated, corrupt or unknown."""


@dataclass(frozen=True)
class Dataset:
    """Images as float32 in [0, 1], shape ``(n, height * width)``; labels int64."""
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple
    n_classes: int = 10

    @property
    def n_inputs(self):
        return int(np.prod(self.image_shape))


def read_idx(path, *, expected_md5=None):
    """Read one IDX file (raw, or gzip when the name ends in ``.gz``) into an array.

    Raises :class:`DataError` for a missing, truncated or corrupt file, or when the
    uncompressed content's MD5 is not ``expected_md5``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"IDX file {str(path)!r} does not exist")
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as e:
        raise DataError(f"IDX file {str(path)!r} is corrupt or truncated: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"IDX file {str(path)!r} has no IDX magic number (got {raw[:4].hex()!r})")
    dtype_code, ndim = raw[2], raw[3]
    if dtype_code not in _IDX_DTYPES:
        raise DataError(f"IDX file {str(path)!r} has unknown element type 0x{dtype_code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file {str(path)!r} is truncated in its header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[dtype_code])
    expected = header + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"IDX file {str(path)!r} has {len(raw)} bytes, expected {expected} "
                        f"for shape {dims}: truncated or corrupt")
    if expected_md5 is not None:
        digest = hashlib.md5(raw).hexdigest()
        if digest != expected_md5:
            raise DataError(f"IDX file {str(path)!r} has MD5 {digest} (uncompressed), "
                            f"expected {expected_md5}: corrupt or a different data set")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def find_idx_dir(name, root=None):
    """The directory holding data set ``name``'s IDX files (see the module docstring)."""
    candidates = []
    if root is None:
        root = os.environ.get("SPIKEGATE_DATA")
    if root is not None:
        root = Path(root)
        candidates += [root, root / name, root / name.replace("-", "_")]
    elif name in _DEFAULT_DIRS:
        candidates.append(Path(_DEFAULT_DIRS[name]))
    else:
        raise DataError(f"no directory given for data set {name!r}: pass one (--data DIR) or set "
                        f"SPIKEGATE_DATA to a directory holding the four IDX files")
    for c in candidates:
        if any(_idx_file(c, stem) for stem in _IDX_MD5[name]):
            return c
    raise DataError(f"no {name} IDX files (train-images-idx3-ubyte[.gz], ...) in "
                    f"{', '.join(repr(str(c)) for c in candidates)}")


def _idx_file(directory, stem):
    for suffix in (".gz", ""):
        p = Path(directory) / (stem + suffix)
        if p.is_file():
            return p
    return None


def _load_idx_set(name, root):
    directory = find_idx_dir(name, root)
    arrays = {}
    for stem, md5 in _IDX_MD5[name].items():
        path = _idx_file(directory, stem)
        if path is None:
            raise DataError(f"{name}: file {stem}[.gz] is missing from {str(directory)!r}")
        arrays[stem] = read_idx(path, expected_md5=md5)
    xtr = arrays["train-images-idx3-ubyte"]
    xte = arrays["t10k-images-idx3-ubyte"]
    shape = tuple(int(s) for s in xtr.shape[1:])
    return Dataset(
        name=name,
        x_train=(xtr.reshape(len(xtr), -1).astype(np.float32) / 255.0),
        y_train=arrays["train-labels-idx1-ubyte"].astype(np.int64),
        x_test=(xte.reshape(len(xte), -1).astype(np.float32) / 255.0),
        y_test=arrays["t10k-labels-idx1-ubyte"].astype(np.int64),
        image_shape=shape,
    )


def _load_digits():
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    n_test = 360
    tr, te = order[:-n_test], order[-n_test:]
    return Dataset(name="digits", x_train=x[tr], y_train=y[tr], x_test=x[te], y_test=y[te],
                   image_shape=(8, 8))


def load_dataset(name="digits", root=None):
    """Load data set ``name`` (one of :data:`DATASETS`); ``root`` is the IDX directory."""
    if name == "digits":
        return _load_digits()
    if name not in _IDX_MD5:
        raise DataError(f"unknown data set {name!r}; expected one of {', '.join(DATASETS)}")
    return _load_idx_set(name, root)
