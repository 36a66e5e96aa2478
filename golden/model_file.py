"""The model file: the one on-disk format for a trained network (the contract between the
golden model, the hardware and the host client).

Format version 1
----------------
A NumPy ``.npz`` archive (zip, uncompressed; read it with ``numpy.load(path,
allow_pickle=False)``) holding:

``meta``
    0-d ``numpy.str_``: a UTF-8 JSON object with

    * ``"format"``: ``"spikegate-model"``; ``"version"``: ``1`` (:data:`FORMAT_VERSION`);
    * ``"algorithm"``: ``"ttfs"``;
    * ``"sizes"``: neurons per layer, input first, e.g. ``[784, 600, 10]``;
    * ``"thetas"``: per weight layer, the integer threshold (``>= 1``) that stands for the
      float threshold 1 (``w_real ~= w_int8 / theta``, see
      :func:`spikegate.golden.ttfs_discrete.quantize_layer`);
    * ``"discrete"``: the discrete model's :class:`~spikegate.golden.ttfs_discrete.DiscreteConfig`
      (``timesteps``, ``dt``, ``z_frac_bits``);
    * ``"encoding"``: the :class:`~spikegate.golden.encoding.EncodingConfig` (``mode``,
      ``t_max``, ``threshold``, ``min_intensity``);
    * ``"training"``: free-form JSON (data set, seed, epochs, hyper-parameters, accuracies).
``w_float_0`` .. ``w_float_{L-1}``
    float32 ``(n_in, n_out)``: the trained float weights of weight layer ``l``.
``w_int8_0`` .. ``w_int8_{L-1}``
    int8 ``(n_in, n_out)``: the quantized weights, every value in ``[-128, 127]``. These and
    ``thetas`` are what the hardware loads; the row of input ``i`` is what one spike of
    input ``i`` reads.

Nothing else may be in the archive. Files are written atomically: to a temporary file in the
destination's directory (``.NAME.<random>.tmp``, mode ``0o666`` less the umask), flushed and
``fsync``-ed, then ``os.replace``-d over the target, so a reader never sees a partial file: a
write that raises leaves no file behind, a process killed while writing at most that hidden
temporary file.

Reading (:func:`load_model`) checks everything above and raises :class:`ModelFileError` (a
``ValueError``) naming the file, the offending value and what was expected: not a zip/npz
(truncated or corrupt), missing or unparsable ``meta``, another format or version, another
algorithm, missing or extra arrays, wrong dtypes or shapes, int weights outside
``[-128, 127]``, bad thresholds or configs.
"""

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import atomic
from .encoding import EncodingConfig, encode
from .ttfs_discrete import DiscreteConfig, DiscreteNetwork, quantize_layer, times_to_steps

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "ModelFileError", "TTFSModelFile", "save_model",
           "load_model", "model_from_container"]

FORMAT_NAME = "spikegate-model"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file is unreadable, of another version or algorithm, or inconsistent."""


@dataclass
class TTFSModelFile:
    """The content of a TTFS model file.

    Members
    -------
    float_weights : list of float32 arrays ``(n_in, n_out)``
    int_weights : list of int8 arrays ``(n_in, n_out)``
    thetas : list of int
    discrete : DiscreteConfig
    encoding : EncodingConfig
    training : dict (JSON-able)
    """
    float_weights: list
    int_weights: list
    thetas: list
    discrete: DiscreteConfig = field(default_factory=DiscreteConfig)
    encoding: EncodingConfig = field(default_factory=EncodingConfig)
    training: dict = field(default_factory=dict)

    @classmethod
    def from_float(cls, float_weights, *, discrete=None, encoding=None, training=None):
        """Quantize ``float_weights`` with :func:`quantize_layer` and bundle everything."""
        fw = [np.asarray(w, dtype=np.float32) for w in float_weights]
        qs = [quantize_layer(w) for w in float_weights]
        return cls(float_weights=fw, int_weights=[q for q, _ in qs], thetas=[t for _, t in qs],
                   discrete=discrete or DiscreteConfig(), encoding=encoding or EncodingConfig(),
                   training=dict(training or {}))

    @property
    def sizes(self):
        """Neurons per layer, input first."""
        return (self.int_weights[0].shape[0],) + tuple(w.shape[1] for w in self.int_weights)

    def network(self):
        """The :class:`DiscreteNetwork` (the hardware reference) of this model."""
        return DiscreteNetwork(list(self.int_weights), list(self.thetas), self.discrete)

    def encode(self, x):
        """Input steps ``(batch, n_in)`` (int32, NO_SPIKE = none) of pixels ``x`` in [0, 1]."""
        return times_to_steps(encode(x, self.encoding), self.discrete)

    def encode_times(self, x):
        """Float input spike times (``inf`` = none) of pixels ``x``, for the float model."""
        return encode(x, self.encoding)

    def meta(self):
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "algorithm": "ttfs",
            "sizes": [int(s) for s in self.sizes],
            "thetas": [int(t) for t in self.thetas],
            "discrete": self.discrete.to_dict(),
            "encoding": self.encoding.to_dict(),
            "training": self.training,
        }


def _fail(path, msg):
    raise ModelFileError(f"model file {str(path)!r}: {msg}")


def _check(model, path):
    """Consistency checks shared by save and load."""
    L = len(model.int_weights)
    if L < 1:
        _fail(path, "no weight layers")
    if len(model.float_weights) != L or len(model.thetas) != L:
        _fail(path, f"{L} int8 weight layers but {len(model.float_weights)} float layers and "
                    f"{len(model.thetas)} thresholds")
    prev = None
    for l in range(L):
        q, f = np.asarray(model.int_weights[l]), np.asarray(model.float_weights[l])
        if q.ndim != 2 or q.size == 0:
            _fail(path, f"w_int8_{l} has shape {q.shape}, expected a non-empty (n_in, n_out)")
        if f.shape != q.shape:
            _fail(path, f"w_float_{l} has shape {f.shape}, expected {q.shape} (as w_int8_{l})")
        if prev is not None and q.shape[0] != prev:
            _fail(path, f"layer {l} has {q.shape[0]} inputs, expected {prev} (outputs of layer {l - 1})")
        prev = q.shape[1]
        if not np.issubdtype(q.dtype, np.integer):
            _fail(path, f"w_int8_{l} has dtype {q.dtype}, expected int8")
        lo, hi = int(q.min()), int(q.max())
        if lo < -128 or hi > 127:
            _fail(path, f"w_int8_{l} has values in [{lo}, {hi}], expected [-128, 127]")
        if not np.issubdtype(f.dtype, np.floating) or not np.all(np.isfinite(f)):
            _fail(path, f"w_float_{l} must be finite floats (dtype {f.dtype})")
        t = model.thetas[l]
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 1:
            _fail(path, f"theta of layer {l} is {t!r}, expected an integer >= 1")


#: The algorithms whose model files share the container: their name in messages, and reader.
_ALGORITHMS = {"ttfs": ("TTFS", "spikegate.golden.model_file.load_model"),
               "pdnn": ("PD", "spikegate.golden.pd_model_file.load_pd_model"),
               "ssgd": ("SSGD", "spikegate.golden.ssgd_model_file.load_ssgd_model")}


def read_npz(path, fail):
    """The arrays of the ``.npz`` archive at ``path`` (read whole, no pickles), for every
    reader of the project's archives. A missing file raises ``FileNotFoundError``; anything
    else wrong calls ``fail(message)``, which raises the reader's own error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist")
    try:
        raw = path.read_bytes()
    except OSError as e:
        fail(f"cannot be read: {e}")
    if not raw.startswith(b"PK"):
        fail(f"not an .npz archive (starts with {raw[:6]!r}): truncated or corrupt")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as e:
        fail(f"truncated or corrupt (not a readable .npz archive: {e})")


def write_container(path, meta, arrays):
    """Write a model file: ``meta`` (a dict, as JSON) and ``arrays`` atomically to ``path``.
    Raises :class:`ModelFileError` before anything is written when ``meta`` is not
    JSON-able or the directory does not exist."""
    path = Path(path)
    try:
        text = json.dumps(meta, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        _fail(path, f"training info is not JSON-able: {e}")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        _fail(path, f"directory {str(directory)!r} does not exist")
    # A new hidden file beside the target (the usual permissions), renamed over it.
    with atomic.replacing(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, meta=np.array(text), **arrays)


def read_container(path, algorithm, version):
    """Read a model file written by :func:`write_container`: ``(meta, arrays)``, after
    checking the container format, the algorithm (``"ttfs"``, ``"pdnn"``) and its format
    version. Raises ``FileNotFoundError`` or :class:`ModelFileError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    arrays = read_npz(path, lambda msg: _fail(path, msg))
    if "meta" not in arrays:
        _fail(path, "no 'meta' entry: not a spikegate model file")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except (ValueError, TypeError) as e:
        _fail(path, f"'meta' is not valid JSON: {e}")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        got = meta.get("format") if isinstance(meta, dict) else meta
        _fail(path, f"format is {got!r}, expected {FORMAT_NAME!r}")
    got = meta.get("algorithm")
    if got != algorithm:
        _fail(path, f"algorithm is {got!r}, expected {algorithm!r}"
                    + (f" (a {_ALGORITHMS[got][0]} model: read it with {_ALGORITHMS[got][1]})"
                       if got in _ALGORITHMS else ""))
    if meta.get("version") != version:
        which = "" if algorithm == "ttfs" else f"{_ALGORITHMS[algorithm][0]} "
        _fail(path, f"{which}format version is {meta.get('version')!r}, expected {version} "
                    f"(this spikegate reads version {version} only)")
    return meta, arrays


def save_model(path, model):
    """Write ``model`` (a :class:`TTFSModelFile`) to ``path`` atomically (format above).

    Raises :class:`ModelFileError` for an inconsistent model before anything is written.
    """
    path = Path(path)
    if not isinstance(model, TTFSModelFile):
        raise TypeError(f"model must be a TTFSModelFile, not {type(model).__name__}")
    _check(model, path)
    arrays = {}
    for l, (f, q) in enumerate(zip(model.float_weights, model.int_weights)):
        arrays[f"w_float_{l}"] = np.asarray(f, dtype=np.float32)
        arrays[f"w_int8_{l}"] = np.asarray(q).astype(np.int8)
    write_container(path, model.meta(), arrays)


def load_model(path):
    """Read and check a model file; returns a :class:`TTFSModelFile`.

    Raises ``FileNotFoundError`` for a missing file and :class:`ModelFileError` for anything
    wrong inside it (see the module docstring).
    """
    path = Path(path)
    meta, arrays = read_container(path, "ttfs", FORMAT_VERSION)
    return model_from_container(meta, arrays, path)


def model_from_container(meta, arrays, path):
    """The :class:`TTFSModelFile` of a container's ``meta`` (a dict, format and version
    already checked) and ``arrays`` (a dict of arrays), checked as :func:`load_model` checks a
    file; errors name ``path`` (the file they came from, e.g. a NIR file)."""
    sizes = meta.get("sizes")
    if (not isinstance(sizes, list) or len(sizes) < 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes)):
        _fail(path, f"sizes is {sizes!r}, expected a list of at least two positive integers")
    L = len(sizes) - 1
    thetas = meta.get("thetas")
    if not isinstance(thetas, list) or len(thetas) != L:
        _fail(path, f"thetas is {thetas!r}, expected a list of {L} integers")
    expected = {f"w_{k}_{l}" for k in ("float", "int8") for l in range(L)}
    missing, extra = expected - set(arrays), set(arrays) - expected
    if missing:
        _fail(path, f"missing arrays {sorted(missing)} for sizes {sizes}")
    if extra:
        _fail(path, f"unexpected arrays {sorted(extra)} for sizes {sizes}")
    for l in range(L):
        want = (sizes[l], sizes[l + 1])
        for k, dtype in (("float", np.float32), ("int8", np.int8)):
            a = arrays[f"w_{k}_{l}"]
            if a.shape != want:
                _fail(path, f"w_{k}_{l} has shape {a.shape}, expected {want} from sizes {sizes}")
            if k == "int8" and np.issubdtype(a.dtype, np.integer) and a.size:
                lo, hi = int(a.min()), int(a.max())
                if lo < -128 or hi > 127:
                    _fail(path, f"w_int8_{l} has values in [{lo}, {hi}], expected [-128, 127]")
            if a.dtype != dtype:
                _fail(path, f"w_{k}_{l} has dtype {a.dtype}, expected {np.dtype(dtype)}")
    try:
        discrete = DiscreteConfig.from_dict(meta.get("discrete"))
    except (KeyError, TypeError, ValueError) as e:
        _fail(path, f"bad discrete config {meta.get('discrete')!r}: {e}")
    try:
        enc = EncodingConfig.from_dict(meta.get("encoding"))
    except (TypeError, ValueError) as e:
        _fail(path, f"bad encoding {meta.get('encoding')!r}: {e}")
    training = meta.get("training", {})
    if not isinstance(training, dict):
        _fail(path, f"training is {training!r}, expected a JSON object")
    model = TTFSModelFile(
        float_weights=[arrays[f"w_float_{l}"] for l in range(L)],
        int_weights=[arrays[f"w_int8_{l}"] for l in range(L)],
        thetas=thetas, discrete=discrete, encoding=enc, training=training)
    _check(model, path)
    return model
