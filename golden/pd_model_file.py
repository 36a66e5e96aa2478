"""The model file of a PD network (:mod:`spikegate.golden.pdnn_fixed`): one versioned on-disk
format, the contract between the golden model, the hardware and the host.

PD format version 1
-------------------
A NumPy ``.npz`` archive (read it with ``numpy.load(path, allow_pickle=False)``), the same
container as the TTFS model file (:mod:`spikegate.golden.model_file`), holding:

``meta``
    0-d ``numpy.str_``: a UTF-8 JSON object with

    * ``"format"``: ``"spikegate-model"``; ``"algorithm"``: ``"pdnn"``; ``"version"``: ``1``
      (:data:`PD_FORMAT_VERSION`, the version of the PD layout; a TTFS reader refuses the file
      naming its algorithm);
    * ``"sizes"``: neurons per layer, input first, e.g. ``[64, 64, 10]``;
    * ``"formats"``: per weight layer, the fields of its
      :class:`~spikegate.golden.sigma_delta_fixed.SDFixedFormat` (``ka``, ``ka_frac``, ``gain``,
      ... ``y_frac``, all integers);
    * ``"gains"``: per weight layer, the float ``k_alpha`` and ``k_beta`` of its forward coder
      the formats were quantized from;
    * ``"training"``: free-form JSON (data set, seed, epochs, accuracies).
``w_float_0`` .. ``w_float_{L-1}``, ``b_float_0`` .. ``b_float_{L-1}``
    float32 ``(n_in, n_out)`` and ``(n_out,)``: the trained float weights and biases.
``w_int_0`` .. ``w_int_{L-1}``
    int8 ``(n_in, n_out)``: the fixed-point weights (``w_frac`` fractional bits of the layer's
    format; ``w_width`` must be 8).
``b_int_0`` .. ``b_int_{L-1}``
    int32 ``(n_out,)``: the fixed-point biases (``y_frac`` fractional bits, ``y_width`` bits).

Nothing else may be in the archive. Files are written atomically (a hidden temporary file in
the destination's directory, flushed, ``fsync``-ed and renamed over the target).

:func:`load_pd_model` checks everything above and raises
:class:`~spikegate.golden.model_file.ModelFileError` (a ``ValueError``) naming the file, the
offending value and what was expected: not an npz (truncated or corrupt), missing or unparsable
``meta``, another format, algorithm or version, missing or extra arrays, wrong dtypes or shapes,
values outside their widths, bad formats.
"""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .model_file import FORMAT_NAME, ModelFileError, read_container, write_container
from .pdnn_fixed import PDFixedNetwork, from_float
from .sigma_delta_fixed import SDFixedFormat

__all__ = ["PD_FORMAT_VERSION", "PDModelFile", "save_pd_model", "load_pd_model",
           "pd_model_from_container"]

#: The version of the PD model file's layout.
PD_FORMAT_VERSION = 1

_FORMAT_FIELDS = tuple(f.name for f in dataclasses.fields(SDFixedFormat))


@dataclass
class PDModelFile:
    """The content of a PD model file.

    Members
    -------
    network : PDFixedNetwork
        The fixed-point network (what the hardware loads).
    float_weights, float_biases : lists of float32 arrays
    k_alphas, k_betas : lists of float
        The float gains of each layer's forward coder.
    training : dict (JSON-able)
    """
    network: PDFixedNetwork
    float_weights: list
    float_biases: list
    k_alphas: list
    k_betas: list
    training: dict = field(default_factory=dict)

    @classmethod
    def from_float(cls, weights, biases, k_alphas, k_betas, *, training=None, **fmt_kwargs):
        """Quantize with :func:`~spikegate.golden.pdnn_fixed.from_float` and bundle everything."""
        net = from_float(weights, biases, k_alphas, k_betas, **fmt_kwargs)
        return cls(network=net, float_weights=[np.asarray(w, np.float32) for w in weights],
                   float_biases=[np.asarray(b, np.float32) for b in biases],
                   k_alphas=[float(k) for k in k_alphas], k_betas=[float(k) for k in k_betas],
                   training=dict(training or {}))

    @classmethod
    def from_pdnetwork(cls, net, *, training=None, **fmt_kwargs):
        """The model file of a trained :class:`spikegate.golden.pdnn.PDNetwork`."""
        ls = net.layers
        return cls.from_float([l.w for l in ls], [l.b for l in ls], [l.fwd.k_alpha for l in ls],
                              [l.fwd.k_beta for l in ls], training=training, **fmt_kwargs)

    @property
    def sizes(self):
        return self.network.sizes

    def meta(self):
        return {
            "format": FORMAT_NAME,
            "algorithm": "pdnn",
            "version": PD_FORMAT_VERSION,
            "sizes": [int(s) for s in self.sizes],
            "formats": [{k: int(getattr(f, k)) for k in _FORMAT_FIELDS}
                        for f in self.network.formats],
            "gains": [{"k_alpha": float(a), "k_beta": float(b)}
                      for a, b in zip(self.k_alphas, self.k_betas)],
            "training": self.training,
        }


def _fail(path, msg):
    raise ModelFileError(f"model file {str(path)!r}: {msg}")


def _check(model, path):
    """Consistency checks shared by save and load."""
    net = model.network
    if not isinstance(net, PDFixedNetwork):
        _fail(path, f"network must be a PDFixedNetwork, not {type(net).__name__}")
    L = net.n_layers
    for name in ("float_weights", "float_biases", "k_alphas", "k_betas"):
        if len(getattr(model, name)) != L:
            _fail(path, f"{L} weight layers but {len(getattr(model, name))} {name}")
    for l, fmt in enumerate(net.formats):
        if fmt.w_width != 8:
            _fail(path, f"layer {l} has w_width {fmt.w_width}, expected 8 (int8 weights)")
        if fmt.y_width > 32:
            _fail(path, f"layer {l} has y_width {fmt.y_width}, expected at most 32 (int32 biases)")
        fw, fb = np.asarray(model.float_weights[l]), np.asarray(model.float_biases[l])
        if fw.shape != net.weights[l].shape or fb.shape != net.biases[l].shape:
            _fail(path, f"float weights / biases of layer {l} have shapes {fw.shape} / {fb.shape}, "
                        f"expected {net.weights[l].shape} / {net.biases[l].shape}")
        for name, a in (("float weights", fw), ("float biases", fb)):
            if not np.issubdtype(a.dtype, np.floating) or not np.all(np.isfinite(a)):
                _fail(path, f"{name} of layer {l} must be finite floats (dtype {a.dtype})")


def save_pd_model(path, model):
    """Write ``model`` (a :class:`PDModelFile`) to ``path`` atomically (format above).

    Raises :class:`~spikegate.golden.model_file.ModelFileError` for an inconsistent model
    before anything is written.
    """
    path = Path(path)
    if not isinstance(model, PDModelFile):
        raise TypeError(f"model must be a PDModelFile, not {type(model).__name__}")
    _check(model, path)
    arrays = {}
    for l in range(model.network.n_layers):
        arrays[f"w_float_{l}"] = np.asarray(model.float_weights[l], np.float32)
        arrays[f"b_float_{l}"] = np.asarray(model.float_biases[l], np.float32)
        arrays[f"w_int_{l}"] = model.network.weights[l].astype(np.int8)
        arrays[f"b_int_{l}"] = model.network.biases[l].astype(np.int32)
    write_container(path, model.meta(), arrays)


def _int_list(v, n):
    return (isinstance(v, list) and len(v) >= n
            and all(isinstance(s, int) and not isinstance(s, bool) for s in v))


def load_pd_model(path):
    """Read and check a PD model file; returns a :class:`PDModelFile`.

    Raises ``FileNotFoundError`` for a missing file and
    :class:`~spikegate.golden.model_file.ModelFileError` for anything wrong inside it.
    """
    path = Path(path)
    meta, arrays = read_container(path, "pdnn", PD_FORMAT_VERSION)
    return pd_model_from_container(meta, arrays, path)


def pd_model_from_container(meta, arrays, path):
    """The :class:`PDModelFile` of a container's ``meta`` (a dict, format and version already
    checked) and ``arrays``, checked as :func:`load_pd_model` checks a file; errors name
    ``path``."""
    sizes = meta.get("sizes")
    if not _int_list(sizes, 2) or min(sizes) < 1:
        _fail(path, f"sizes is {sizes!r}, expected a list of at least two positive integers")
    L = len(sizes) - 1
    formats = meta.get("formats")
    if not isinstance(formats, list) or len(formats) != L:
        _fail(path, f"formats is {formats!r}, expected a list of {L} objects")
    fmts = []
    for l, d in enumerate(formats):
        if not isinstance(d, dict) or set(d) != set(_FORMAT_FIELDS):
            _fail(path, f"format of layer {l} is {d!r}, expected the fields {list(_FORMAT_FIELDS)}")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in d.values()):
            _fail(path, f"format of layer {l} is {d!r}, expected integers")
        try:
            fmts.append(SDFixedFormat(**d))
        except (TypeError, ValueError) as e:
            _fail(path, f"bad format of layer {l}: {e}")
    gains = meta.get("gains")
    if (not isinstance(gains, list) or len(gains) != L
            or not all(isinstance(g, dict) and set(g) == {"k_alpha", "k_beta"}
                       and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                               for v in g.values()) for g in gains)):
        _fail(path, f"gains is {gains!r}, expected {L} objects with k_alpha and k_beta numbers")
    expected = {f"{k}_{l}" for k in ("w_float", "b_float", "w_int", "b_int") for l in range(L)}
    missing, extra = expected - set(arrays), set(arrays) - expected
    if missing:
        _fail(path, f"missing arrays {sorted(missing)} for sizes {sizes}")
    if extra:
        _fail(path, f"unexpected arrays {sorted(extra)} for sizes {sizes}")
    for l in range(L):
        for k, shape, dtype in (("w_float", (sizes[l], sizes[l + 1]), np.float32),
                                ("b_float", (sizes[l + 1],), np.float32),
                                ("w_int", (sizes[l], sizes[l + 1]), np.int8),
                                ("b_int", (sizes[l + 1],), np.int32)):
            a = arrays[f"{k}_{l}"]
            if a.shape != shape:
                _fail(path, f"{k}_{l} has shape {a.shape}, expected {shape} from sizes {sizes}")
            if a.dtype != dtype:
                _fail(path, f"{k}_{l} has dtype {a.dtype}, expected {np.dtype(dtype)}")
    training = meta.get("training", {})
    if not isinstance(training, dict):
        _fail(path, f"training is {training!r}, expected a JSON object")
    try:
        net = PDFixedNetwork([arrays[f"w_int_{l}"] for l in range(L)],
                             [arrays[f"b_int_{l}"] for l in range(L)], fmts)
    except (TypeError, ValueError) as e:
        _fail(path, str(e))
    model = PDModelFile(network=net, float_weights=[arrays[f"w_float_{l}"] for l in range(L)],
                        float_biases=[arrays[f"b_float_{l}"] for l in range(L)],
                        k_alphas=[float(g["k_alpha"]) for g in gains],
                        k_betas=[float(g["k_beta"]) for g in gains], training=training)
    _check(model, path)
    return model
