"""NIR (the Neuromorphic Intermediate Representation, ``nir`` on PyPI) export and import of
spikegate model files: ``spikegate export MODEL NIR_FILE`` and ``spikegate import NIR_FILE``.

NIR describes a network by continuous-time primitives; spikegate's networks map onto them as
below. What NIR has no primitive for (fire-once neurons, first-spike decoding, the
proportional-derivative coding, every fixed-point number) travels in metadata, so that a
spikegate model exported and imported again gives the identical model file (the same ``meta``
and the same arrays, bit for bit; the zip container's timestamps aside).

Graph metadata: ``"spikegate_meta"`` holds the model file's ``meta`` as JSON (format, version,
algorithm, sizes, configurations, training record); ``"decoding"`` says how a class is read
out. Nodes are named by weight layer ``l = 0 .. L-1``; NIR weights are ``(n_out, n_in)``, the
transpose of the model file's ``(n_in, n_out)``.

TTFS (Mostafa 2017): one weight layer is three nodes
    ``linear_l``: ``Linear(weight = w_float_l.T)``; metadata ``w_int8`` (the int8 weights the
    hardware loads, ``(n_in, n_out)``) and ``theta`` (the integer threshold, :mod:`model
    file <spikegate.golden.model_file>`).

    ``synapse_l``: ``LI(tau = 1, r = 1, v_leak = 0)``: the synaptic current, which jumps by
    ``w`` at an input spike and decays as ``exp(-t)`` (time in the model's unit, the synaptic
    time constant).

    ``neuron_l``: ``IF(r = 1, v_threshold = 1, v_reset = 0)``: the non-leaky membrane. NIR's IF
    may fire again; spikegate's neuron fires at most once (metadata ``fire_once: true``) and
    the class is the first output neuron to fire (graph metadata ``decoding``).

PD network (O'Connor et al. 2018): one weight layer is two nodes
    ``affine_l``: ``Affine(weight = w_float_l.T, bias = b_float_l)``; metadata ``w_int8``,
    ``b_int32`` (the fixed-point weights and biases), ``format`` (the layer's
    :class:`~spikegate.golden.sigma_delta_fixed.SDFixedFormat`), ``k_alpha``, ``k_beta``.

    ``neuron_l``: ``IF(r = 1, v_threshold = 1, v_reset = 0)``: the sigma-delta quantizer of
    the layer's PD-coded ReLU output is an integrate-and-fire neuron with reset by
    subtraction; NIR's IF resets to ``v_reset`` instead, and NIR has no PD coding: metadata
    ``coding: "proportional-derivative sigma-delta"`` and ``reset: "subtract"``.

Importing a graph that spikegate did not write (a LIF network from snnTorch, Norse, ...) needs
the SSGD hardware (issue 21): it is refused, naming what is missing.
"""

import json
from pathlib import Path

import numpy as np

from spikegate.golden import atomic
from .args import existing_file, output_file
from spikegate.golden.model_file import (FORMAT_NAME, FORMAT_VERSION, load_model,
                                         model_from_container, save_model)
from spikegate.golden.pd_model_file import (PD_FORMAT_VERSION, load_pd_model,
                                            pd_model_from_container, save_pd_model)

__all__ = ["NIRFileError", "to_nir", "from_nir", "export_model", "import_model", "add_parser"]

_VERSIONS = {"ttfs": FORMAT_VERSION, "pdnn": PD_FORMAT_VERSION}
_DECODING = {"ttfs": "class = the first output neuron to fire (time-to-first-spike)",
             "pdnn": "class = argmax of the last layer's decoded activations"}


class NIRFileError(ValueError):
    """A NIR file cannot be read, or its graph is not one spikegate can represent."""


def _nir():
    try:
        import nir
    except ImportError as e:          # a dependency of spikegate: only a broken install
        raise NIRFileError(f"the 'nir' package is not installed ({e}); "
                           "pip install -e . installs it") from None
    return nir


def _ones(n):
    return np.ones(n, dtype=np.float32)


def _if_node(nir, n, **metadata):
    return nir.IF(r=_ones(n), v_threshold=_ones(n), v_reset=np.zeros(n, np.float32),
                  metadata=metadata)


def to_nir(model):
    """The NIR graph of a :class:`~spikegate.golden.model_file.TTFSModelFile` or a
    :class:`~spikegate.golden.pd_model_file.PDModelFile` (mapping: module docstring)."""
    nir = _nir()
    meta = model.meta()
    algorithm = meta["algorithm"]
    sizes = [int(s) for s in model.sizes]
    nodes = {"input": nir.Input(input_type=np.array([sizes[0]]))}
    chain = ["input"]
    for l in range(len(sizes) - 1):
        n_out = sizes[l + 1]
        if algorithm == "ttfs":
            w = np.asarray(model.float_weights[l], np.float32)
            nodes[f"linear_{l}"] = nir.Linear(
                weight=w.T.copy(), metadata={"w_int8": np.asarray(model.int_weights[l], np.int8),
                                             "theta": int(model.thetas[l])})
            nodes[f"synapse_{l}"] = nir.LI(tau=_ones(n_out), r=_ones(n_out),
                                           v_leak=np.zeros(n_out, np.float32),
                                           metadata={"role": "synaptic current, exp(-t)"})
            nodes[f"neuron_{l}"] = _if_node(nir, n_out, fire_once=True,
                                            role="non-leaky membrane, fires at most once")
            chain += [f"linear_{l}", f"synapse_{l}", f"neuron_{l}"]
        else:
            net = model.network
            w = np.asarray(model.float_weights[l], np.float32)
            nodes[f"affine_{l}"] = nir.Affine(
                weight=w.T.copy(), bias=np.asarray(model.float_biases[l], np.float32),
                metadata={"w_int8": net.weights[l].astype(np.int8),
                          "b_int32": net.biases[l].astype(np.int32),
                          "format": json.dumps(meta["formats"][l], sort_keys=True),
                          "k_alpha": float(model.k_alphas[l]),
                          "k_beta": float(model.k_betas[l])})
            nodes[f"neuron_{l}"] = _if_node(nir, n_out, coding="proportional-derivative sigma-delta",
                                            reset="subtract")
            chain += [f"affine_{l}", f"neuron_{l}"]
    nodes["output"] = nir.Output(output_type=np.array([sizes[-1]]))
    chain.append("output")
    return nir.NIRGraph(nodes=nodes, edges=list(zip(chain[:-1], chain[1:])),
                        metadata={"spikegate_meta": json.dumps(meta, sort_keys=True),
                                  "decoding": _DECODING[algorithm]})


def _fail(source, msg):
    raise NIRFileError(f"NIR file {str(source)!r}: {msg}")


def _node(graph, name, kind, source):
    node = graph.nodes.get(name)
    if node is None:
        _fail(source, f"node {name!r} is missing (a spikegate graph names its nodes "
                      f"input, linear_l / affine_l, ..., output)")
    if type(node).__name__ != kind:
        _fail(source, f"node {name!r} is a {type(node).__name__}, expected {kind}")
    return node


def _field(node, name, key, source, *, dtype=None, shape=None):
    md = getattr(node, "metadata", None) or {}
    if key not in md:
        _fail(source, f"node {name!r}: metadata field {key!r} is missing")
    value = md[key]
    if dtype is not None:
        a = np.asarray(value)
        if a.dtype != np.dtype(dtype) or (shape is not None and a.shape != shape):
            _fail(source, f"node {name!r}: metadata field {key!r} has dtype {a.dtype} and "
                          f"shape {a.shape}, expected {np.dtype(dtype)} {shape}")
        return a
    return value


def _float_weight(node, name, field, shape, source):
    a = np.asarray(getattr(node, field))
    if a.shape != shape:
        _fail(source, f"node {name!r}: {field} has shape {a.shape}, expected {shape}")
    w = a.astype(np.float32)
    if not np.array_equal(w.astype(a.dtype), a, equal_nan=True):
        _fail(source, f"node {name!r}: {field} is not float32-representable")
    return w


def from_nir(graph, source="<graph>"):
    """The model file (TTFS or PD) of a NIR graph spikegate wrote (:func:`to_nir`). Raises
    :class:`NIRFileError` naming the node and field that is missing or inconsistent, and
    :class:`~spikegate.golden.model_file.ModelFileError` when the rebuilt model is not a
    valid model file."""
    text = (graph.metadata or {}).get("spikegate_meta")
    if text is None:
        kinds = sorted({type(n).__name__ for n in graph.nodes.values()})
        _fail(source, f"no 'spikegate_meta' in the graph's metadata: a graph from another "
                      f"library (nodes: {', '.join(kinds)}). Importing LIF networks into the "
                      "SSGD model needs the SSGD hardware (issue 21), not yet in spikegate; "
                      "spikegate imports the TTFS and PD graphs it exported")
    try:
        meta = json.loads(str(text))
    except ValueError as e:
        _fail(source, f"'spikegate_meta' is not valid JSON: {e}")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        _fail(source, f"'spikegate_meta' format is {meta.get('format') if isinstance(meta, dict) else meta!r}, "
                      f"expected {FORMAT_NAME!r}")
    algorithm = meta.get("algorithm")
    if algorithm not in _VERSIONS:
        _fail(source, f"algorithm is {algorithm!r}, expected one of {sorted(_VERSIONS)}")
    if meta.get("version") != _VERSIONS[algorithm]:
        _fail(source, f"{algorithm} format version is {meta.get('version')!r}, expected "
                      f"{_VERSIONS[algorithm]}")
    sizes = meta.get("sizes")
    if (not isinstance(sizes, list) or len(sizes) < 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes)):
        _fail(source, f"sizes is {sizes!r}, expected a list of at least two positive integers")
    L = len(sizes) - 1
    arrays = {}
    for l in range(L):
        shape = (sizes[l + 1], sizes[l])
        if algorithm == "ttfs":
            name = f"linear_{l}"
            node = _node(graph, name, "Linear", source)
            arrays[f"w_float_{l}"] = _float_weight(node, name, "weight", shape, source).T.copy()
            arrays[f"w_int8_{l}"] = _field(node, name, "w_int8", source, dtype=np.int8,
                                           shape=shape[::-1])
            theta = _field(node, name, "theta", source)
            thetas = meta.get("thetas")
            if not isinstance(thetas, list) or len(thetas) != L or int(theta) != thetas[l]:
                _fail(source, f"node {name!r}: theta {theta!r} disagrees with the thetas "
                              f"{thetas!r} of 'spikegate_meta'")
            _node(graph, f"synapse_{l}", "LI", source)
            _node(graph, f"neuron_{l}", "IF", source)
        else:
            name = f"affine_{l}"
            node = _node(graph, name, "Affine", source)
            arrays[f"w_float_{l}"] = _float_weight(node, name, "weight", shape, source).T.copy()
            arrays[f"b_float_{l}"] = _float_weight(node, name, "bias", (sizes[l + 1],), source)
            arrays[f"w_int_{l}"] = _field(node, name, "w_int8", source, dtype=np.int8,
                                          shape=shape[::-1])
            arrays[f"b_int_{l}"] = _field(node, name, "b_int32", source, dtype=np.int32,
                                          shape=(sizes[l + 1],))
            _node(graph, f"neuron_{l}", "IF", source)
    from_container = model_from_container if algorithm == "ttfs" else pd_model_from_container
    return from_container(meta, arrays, source)


def _read_graph(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"NIR file {str(path)!r} does not exist")
    nir = _nir()
    try:
        return nir.read(path)
    except Exception as e:     # h5py and nir raise many kinds (OSError, KeyError, ...)
        _fail(path, f"cannot be read as a NIR graph (nir.read: {type(e).__name__}: {e})")


def _load_any(path):
    from .run_pdnn import model_algorithm
    return (load_pd_model if model_algorithm(path) == "pdnn" else load_model)(path)


def export_model(model_path, nir_path):
    """Write the NIR graph of the model file ``model_path`` to ``nir_path`` (atomically)."""
    graph = to_nir(_load_any(model_path))
    nir = _nir()
    nir_path = Path(nir_path)
    with atomic.replacing(nir_path) as tmp:
        nir.write(tmp, graph)
    return graph


def import_model(nir_path, model_path):
    """Write the model file of the NIR file ``nir_path`` to ``model_path`` (atomically, after
    every check); returns the model."""
    model = from_nir(_read_graph(nir_path), nir_path)
    (save_model if model.meta()["algorithm"] == "ttfs" else save_pd_model)(model_path, model)
    return model


def _run_export(args):
    graph = export_model(args.model, args.nir_file)
    print(f"wrote {args.nir_file}: {len(graph.nodes)} NIR nodes "
          f"({', '.join(sorted({type(n).__name__ for n in graph.nodes.values()}))})")
    return 0


def _run_import(args):
    out = args.output or str(Path(args.nir_file).with_suffix(".npz"))
    model = import_model(args.nir_file, out)
    meta = model.meta()
    print(f"wrote {out}: a {meta['algorithm']} model, sizes "
          f"{'-'.join(str(s) for s in meta['sizes'])}")
    return 0


def add_parser(subparsers):
    e = subparsers.add_parser("export", help="write a model file as a NIR graph",
                              description="Write a TTFS or PD model file as a NIR graph "
                                          "(the mapping: spikegate.scripts.nir_io).")
    e.add_argument("model", metavar="MODEL", type=existing_file, help="model file (.npz)")
    e.add_argument("nir_file", metavar="NIR_FILE", type=output_file, help="NIR file to write")
    e.set_defaults(func=_run_export)
    i = subparsers.add_parser("import", help="read a NIR graph into a model file",
                              description="Read a NIR graph (one spikegate exported) into a "
                                          "model file for spikegate run --model.")
    i.add_argument("nir_file", metavar="NIR_FILE", type=existing_file, help="NIR file")
    i.add_argument("-o", "--output", type=output_file, default=None, metavar="MODEL",
                   help="model file to write (default: NIR_FILE with the suffix .npz)")
    i.set_defaults(func=_run_import)
    return e
