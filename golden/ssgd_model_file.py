"""The model file of an SSGD network (:mod:`spikegate.golden.ssgd_train_fixed`): one versioned
on-disk format, the contract between the golden training, the hardware and the host.

SSGD format version 1
---------------------
A NumPy ``.npz`` archive (read it with ``numpy.load(path, allow_pickle=False)``), the same
container as the TTFS and PD model files (:mod:`spikegate.golden.model_file`), holding:

``meta``
    0-d ``numpy.str_``: a UTF-8 JSON object with

    * ``"format"``: ``"spikegate-model"``; ``"algorithm"``: ``"ssgd"``; ``"version"``: ``1``
      (:data:`SSGD_FORMAT_VERSION`);
    * ``"sizes"``: ``[n_in, H, C]``, e.g. ``[64, 64, 10]``;
    * ``"train_format"``: every field of the
      :class:`~spikegate.golden.ssgd_train_fixed.TrainFormat` (numbers), its ``lif`` field
      an object with the fields of :class:`~spikegate.golden.ssgd_fixed.FixedFormat`;
    * ``"training"``: free-form JSON (data set, seed, epochs, accuracies, events).
``w_int_0``
    int8 ``(n_in, H)``: ``W1``, row ``i`` is what a spike of input ``i`` reads.
``w_int_1``
    int8 ``(H, C)``: ``W2``, row ``j`` is what a spike of hidden neuron ``j`` reads.

Nothing else may be in the archive. Files are written atomically. :func:`load_ssgd_model`
checks everything above and raises :class:`~spikegate.golden.model_file.ModelFileError` (a
``ValueError``) naming the file, the offending value and what was expected.
"""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .model_file import FORMAT_NAME, ModelFileError, read_container, write_container
from .ssgd_fixed import FixedFormat
from .ssgd_train_fixed import TrainFormat

__all__ = ["SSGD_FORMAT_VERSION", "SSGDModelFile", "save_ssgd_model", "load_ssgd_model"]

#: The version of the SSGD model file's layout.
SSGD_FORMAT_VERSION = 1

_LIF_FIELDS = tuple(f.name for f in dataclasses.fields(FixedFormat))
_FMT_FIELDS = tuple(f.name for f in dataclasses.fields(TrainFormat))


def _format_to_json(fmt):
    d = {}
    for k in _FMT_FIELDS:
        v = getattr(fmt, k)
        d[k] = {f: int(getattr(v, f)) for f in _LIF_FIELDS} if k == "lif" else v
    return d


@dataclass
class SSGDModelFile:
    """The content of an SSGD model file: ``weights = (W1, W2)`` (integer arrays in the
    signed 8-bit range), the :class:`TrainFormat` and free-form ``training`` info."""
    weights: tuple
    fmt: TrainFormat = field(default_factory=TrainFormat)
    training: dict = field(default_factory=dict)

    @property
    def sizes(self):
        w1, w2 = self.weights
        return [int(w1.shape[0]), int(w1.shape[1]), int(w2.shape[1])]

    def meta(self):
        return {"format": FORMAT_NAME, "algorithm": "ssgd", "version": SSGD_FORMAT_VERSION,
                "sizes": self.sizes, "train_format": _format_to_json(self.fmt),
                "training": self.training}


def _fail(path, msg):
    raise ModelFileError(f"model file {str(path)!r}: {msg}")


def _check(model, path):
    if not isinstance(model.fmt, TrainFormat):
        _fail(path, f"fmt must be a TrainFormat, not {type(model.fmt).__name__}")
    if model.fmt.lif.w_bits != 8:
        _fail(path, f"w_bits is {model.fmt.lif.w_bits}, expected 8 (int8 weights)")
    if not isinstance(model.weights, (tuple, list)) or len(model.weights) != 2:
        _fail(path, "weights must be a pair (W1, W2)")
    w1, w2 = (np.asarray(w) for w in model.weights)
    if w1.ndim != 2 or w2.ndim != 2 or w1.shape[1] != w2.shape[0]:
        _fail(path, f"weights of shapes {w1.shape} and {w2.shape} do not chain")
    for name, w in (("w_int_0", w1), ("w_int_1", w2)):
        if not np.issubdtype(w.dtype, np.integer):
            _fail(path, f"{name} has dtype {w.dtype}, expected integers")
        if w.size and (w.min() < -128 or w.max() > 127):
            _fail(path, f"{name} holds values in [{w.min()}, {w.max()}], expected [-128, 127]")
    if not isinstance(model.training, dict):
        _fail(path, f"training is {model.training!r}, expected a JSON object")


def save_ssgd_model(path, model):
    """Write ``model`` (an :class:`SSGDModelFile`) to ``path`` atomically (format above).
    Raises :class:`ModelFileError` for an inconsistent model before anything is written."""
    path = Path(path)
    if not isinstance(model, SSGDModelFile):
        raise TypeError(f"model must be an SSGDModelFile, not {type(model).__name__}")
    _check(model, path)
    w1, w2 = model.weights
    write_container(path, model.meta(), {"w_int_0": np.asarray(w1).astype(np.int8),
                                         "w_int_1": np.asarray(w2).astype(np.int8)})


def load_ssgd_model(path):
    """Read and check an SSGD model file; returns an :class:`SSGDModelFile` (weights as
    int64). Raises ``FileNotFoundError`` or :class:`ModelFileError`."""
    path = Path(path)
    meta, arrays = read_container(path, "ssgd", SSGD_FORMAT_VERSION)
    sizes = meta.get("sizes")
    if (not isinstance(sizes, list) or len(sizes) != 3
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1
                       for s in sizes)):
        _fail(path, f"sizes is {sizes!r}, expected three positive integers [n_in, H, C]")
    fd = meta.get("train_format")
    if not isinstance(fd, dict) or set(fd) != set(_FMT_FIELDS):
        _fail(path, f"train_format is {fd!r}, expected the fields {list(_FMT_FIELDS)}")
    lif = fd["lif"]
    if not isinstance(lif, dict) or set(lif) != set(_LIF_FIELDS):
        _fail(path, f"train_format.lif is {lif!r}, expected the fields {list(_LIF_FIELDS)}")
    for k, v in list(fd.items()) + list(lif.items()):
        if k != "lif" and (isinstance(v, bool) or not isinstance(v, (int, float))):
            _fail(path, f"train_format field {k} is {v!r}, expected a number")
    try:
        fmt = TrainFormat(**{**fd, "lif": FixedFormat(**lif)})
    except (TypeError, ValueError) as e:
        _fail(path, f"bad train_format: {e}")
    expected = {"w_int_0", "w_int_1"}
    if set(arrays) != expected:
        _fail(path, f"arrays are {sorted(arrays)}, expected {sorted(expected)}")
    for name, shape in (("w_int_0", (sizes[0], sizes[1])), ("w_int_1", (sizes[1], sizes[2]))):
        a = arrays[name]
        if a.dtype != np.int8:
            _fail(path, f"{name} has dtype {a.dtype}, expected int8")
        if a.shape != shape:
            _fail(path, f"{name} has shape {a.shape}, expected {shape} from sizes {sizes}")
    model = SSGDModelFile((arrays["w_int_0"].astype(np.int64), arrays["w_int_1"].astype(np.int64)),
                          fmt, meta.get("training", {}))
    _check(model, path)
    return model
