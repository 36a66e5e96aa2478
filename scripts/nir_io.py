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

SSGD network (:mod:`spikegate.golden.ssgd_train_fixed`, the fixed-point LIF network of issue
21): ``input -> linear_0 -> neuron_0 -> linear_1 -> readout_1 -> output``
    ``linear_l``: ``Linear(weight = w_int_l.T / 2**frac_bits)`` (the weights in units of the
    threshold); metadata ``w_int8`` (``(n_in, n_out)``).

    ``neuron_0``: ``LIF(tau = dt / (1 - beta), r = tau / dt, v_leak = 0, v_threshold = 1,
    v_reset = 0)`` with ``beta = beta_q / 2**decay_bits`` (the decay the hardware uses);
    metadata ``beta_q`` and ``reset: "subtract"``.

    ``readout_1``: ``LI(tau = dt / (1 - beta_r), r = tau / dt, v_leak = 0)``, ``beta_r =
    beta_r_q / 2**decay_bits``; graph metadata ``decoding`` (the class is the argmax of the
    readout membrane summed over the ``T`` steps), ``dt``. ``r = tau / dt`` makes the Euler
    step below add the weights unscaled, as the hardware does.

Importing a LIF network from another library (:func:`lif_from_nir`)
-------------------------------------------------------------------
A graph without ``spikegate_meta`` (snnTorch's ``export_to_nir``, Norse, ...) is read as an
SSGD network when it is the chain ``Input -> Linear | Affine -> LIF | CubaLIF -> Linear |
Affine -> LI -> Output``; it becomes an SSGD model file (int8 ``W1``, ``W2`` and a
:class:`~spikegate.golden.ssgd_train_fixed.TrainFormat`).

* **Discretisation**: forward Euler with step ``dt`` (``--dt``, default snnTorch's ``1e-4``
  s). NIR's ``tau dv/dt = (v_leak - v) + r I`` becomes ``v[t+1] = beta v[t] + (r dt / tau)
  I[t]`` with ``beta = 1 - dt / tau``; snnTorch writes ``tau = dt / (1 - beta)``, ``r = tau /
  dt``, so its ``beta`` comes back (to float32 rounding, about ``1e-7``) and ``r dt / tau =
  1``. ``TrainFormat.tau_mem = -1 / ln(beta)`` (steps), so that ``exp(-1 / tau_mem) =
  beta`` and ``beta_q = round(beta 2**decay_bits)``; the readout's likewise
  (``tau_readout``).
* **Weights**: ``W1 = (W r dt / tau / v_threshold).T`` per hidden neuron (the threshold
  becomes 1), ``W2 = (W r dt / tau).T`` per readout neuron, quantised as the SSGD fixed
  model's :func:`~spikegate.golden.ssgd_fixed.quantize_weights` (round half even of ``w
  2**frac_bits``, int8: ``[-0.5, 0.496]`` threshold). A weight beyond int8 is refused (its
  node, how many, the largest) unless ``saturate`` (``--saturate``) clips it.
* **Reset**: NIR 1.0 has only ``v_reset``; spikegate's LIF resets by **subtracting** the
  threshold (snnTorch's default ``reset_mechanism="subtract"``; snnTorch writes ``v_reset =
  0`` whatever its mechanism). A ``v_reset`` of 0 (or none) is read as reset by subtraction;
  any other ``v_reset`` is refused.
* **Timing**: the membrane of step ``t + 1`` takes the input of step ``t`` (spikegate's
  ``v[t+1] = beta v[t] + x[t] W - s[t]``, ``s[t+1] = v[t+1] > 1``): snnTorch's hidden spike
  of step ``t`` is spikegate's of step ``t + 1`` (and the readout one step later again).
* **CubaLIF**: only with an instantaneous synapse, ``tau_syn = dt`` (snnTorch's
  ``Synaptic(alpha=0)``: the Euler current decay ``1 - dt / tau_syn`` is 0 within
  ``1e-6``); its ``w_in`` scales the weights. Any other ``tau_syn`` is refused.
* **Readout**: the SSGD readout is a leaky integrator without threshold (NIR ``LI``); the
  class is ``argmax_c sum_t o[t, c]``. A final ``LIF`` (or ``CubaLIF``) is refused unless
  ``lif_readout`` (``--lif-readout``): then its membrane is the readout and its threshold
  and reset are ignored (exact for snnTorch's ``Leaky(reset_mechanism="none")`` read by its
  membrane; a readout that spikes and resets in the source behaves differently).
* **Refused** with :class:`NIRFileError` naming the node and the field: taus that differ
  between the neurons of a layer (one ``beta`` per layer), ``dt / tau`` outside ``(0, 1)``
  or a ``beta`` that quantises to 0 or to ``2**decay_bits`` (``IF`` is ``beta = 1``: the
  fixed-point decay cannot be 1), non-zero ``v_leak`` or ``bias``, ``v_threshold <= 0``,
  more than one hidden layer, recurrent edges and subgraphs (snnTorch's ``RLeaky``),
  branches, and node types other than the above.

The imported model's ``n_steps`` is ``TrainFormat``'s default (NIR has no duration); its
``training`` records the source (``dt``, the float decays, the node names).
"""

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikegate.golden import atomic
from .args import existing_file, output_file, positive_float
from spikegate.golden.model_file import (FORMAT_NAME, FORMAT_VERSION, load_model,
                                         model_from_container, save_model)
from spikegate.golden.pd_model_file import (PD_FORMAT_VERSION, load_pd_model,
                                            pd_model_from_container, save_pd_model)
from spikegate.golden.ssgd_fixed import quantize_weights
from spikegate.golden.ssgd_model_file import (SSGD_FORMAT_VERSION, SSGDModelFile,
                                              load_ssgd_model, save_ssgd_model)
from spikegate.golden.ssgd_train_fixed import TrainFormat

__all__ = ["NIRFileError", "DEFAULT_DT", "LIFImport", "to_nir", "from_nir", "lif_from_nir",
           "export_model", "import_model", "add_parser"]

#: The Euler step of the LIF mapping (seconds): snnTorch's ``export_to_nir`` writes its
#: ``beta`` as ``tau = dt / (1 - beta)`` with this ``dt``.
DEFAULT_DT = 1e-4

_VERSIONS = {"ttfs": FORMAT_VERSION, "pdnn": PD_FORMAT_VERSION, "ssgd": SSGD_FORMAT_VERSION}
_DECODING = {"ttfs": "class = the first output neuron to fire (time-to-first-spike)",
             "pdnn": "class = argmax of the last layer's decoded activations",
             "ssgd": "class = argmax of the readout membrane summed over the T steps"}
#: ``1 - dt / tau_syn`` of a CubaLIF below this is an instantaneous synapse.
_SYN_TOL = 1e-6
#: Relative spread of a layer's ``beta`` (from ``tau``) still read as one ``beta``.
_BETA_TOL = 1e-6


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


def _ssgd_to_nir(nir, model, dt):
    meta = model.meta()
    fmt = model.fmt
    n_in, H, C = model.sizes
    scale = 2.0 ** -fmt.lif.frac_bits
    one = 1 << fmt.lif.decay_bits

    def tau_of(bq):
        return np.float64(dt / (1.0 - bq / one))

    nodes = {"input": nir.Input(input_type=np.array([n_in]))}
    for l, w in enumerate(model.weights):
        w8 = np.asarray(w).astype(np.int8)
        nodes[f"linear_{l}"] = nir.Linear(weight=(w8.T.astype(np.float32) * np.float32(scale)),
                                          metadata={"w_int8": w8})
    tau = tau_of(fmt.beta_q)
    nodes["neuron_0"] = nir.LIF(tau=np.full(H, tau), r=np.full(H, tau / dt),
                                v_leak=np.zeros(H), v_threshold=np.ones(H),
                                v_reset=np.zeros(H),
                                metadata={"beta_q": int(fmt.beta_q), "reset": "subtract"})
    tau_r = tau_of(fmt.beta_r_q)
    nodes["readout_1"] = nir.LI(tau=np.full(C, tau_r), r=np.full(C, tau_r / dt),
                                v_leak=np.zeros(C),
                                metadata={"beta_q": int(fmt.beta_r_q),
                                          "role": "leaky-integrator readout, no threshold"})
    nodes["output"] = nir.Output(output_type=np.array([C]))
    chain = ["input", "linear_0", "neuron_0", "linear_1", "readout_1", "output"]
    return nir.NIRGraph(nodes=nodes, edges=list(zip(chain[:-1], chain[1:])),
                        metadata={"spikegate_meta": json.dumps(meta, sort_keys=True),
                                  "decoding": _DECODING["ssgd"], "dt": float(dt)})


def to_nir(model, dt=DEFAULT_DT):
    """The NIR graph of a :class:`~spikegate.golden.model_file.TTFSModelFile`, a
    :class:`~spikegate.golden.pd_model_file.PDModelFile` or an
    :class:`~spikegate.golden.ssgd_model_file.SSGDModelFile` (mapping: module docstring;
    ``dt`` is the SSGD mapping's Euler step)."""
    nir = _nir()
    if isinstance(model, SSGDModelFile):
        if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive number (seconds), not {dt!r}")
        return _ssgd_to_nir(nir, model, float(dt))
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


def from_nir(graph, source="<graph>", *, dt=DEFAULT_DT, lif_readout=False, saturate=False):
    """The model file of a NIR graph: the TTFS, PD or SSGD model spikegate wrote
    (:func:`to_nir`), or, for a graph without ``spikegate_meta``, the SSGD model of a LIF
    network (:func:`lif_from_nir` with ``dt``, ``lif_readout``, ``saturate``). Raises
    :class:`NIRFileError` naming the node and field that is missing, inconsistent or not
    representable, and :class:`~spikegate.golden.model_file.ModelFileError` when the
    rebuilt model is not a valid model file."""
    text = (graph.metadata or {}).get("spikegate_meta")
    if text is None:
        return lif_from_nir(graph, source, dt=dt, lif_readout=lif_readout,
                            saturate=saturate).model
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
    if algorithm == "ssgd":
        return _ssgd_from_spikegate_graph(graph, meta, sizes, source)
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


def _ssgd_from_spikegate_graph(graph, meta, sizes, source):
    if len(sizes) != 3:
        _fail(source, f"sizes is {sizes!r}, expected [n_in, H, C] for an SSGD network")
    arrays = {}
    for l in range(2):
        name = f"linear_{l}"
        node = _node(graph, name, "Linear", source)
        shape = (sizes[l], sizes[l + 1])
        w8 = _field(node, name, "w_int8", source, dtype=np.int8, shape=shape)
        lif = (meta.get("train_format") or {}).get("lif") or {}
        frac = lif.get("frac_bits")
        if not isinstance(frac, int) or isinstance(frac, bool):
            _fail(source, f"train_format.lif.frac_bits is {frac!r}, expected an integer")
        w = _float_weight(node, name, "weight", shape[::-1], source)
        if not np.array_equal(w.T.astype(np.float64), w8.astype(np.float64) * 2.0 ** -frac):
            _fail(source, f"node {name!r}: weight disagrees with its metadata w_int8 / "
                          f"2**{frac}")
        arrays[f"w_int_{l}"] = w8
    _node(graph, "neuron_0", "LIF", source)
    _node(graph, "readout_1", "LI", source)
    # The SSGD reader checks everything (TrainFormat, shapes) on the file it reads.
    from spikegate.golden.model_file import write_container
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "model.npz"
        write_container(path, meta, arrays)
        return load_ssgd_model(path)


# ----------------------------------------------------------------- LIF networks (SSGD)

@dataclass
class LIFImport:
    """What :func:`lif_from_nir` read: the SSGD ``model`` and the float network before
    quantisation, ``w_float = (W1 (n_in, H), W2 (H, C))`` in units of the threshold,
    ``beta`` and ``beta_readout`` (the Euler decays), ``dt`` and ``n_saturated`` (the
    weights ``saturate`` clipped)."""
    model: SSGDModelFile
    w_float: tuple
    beta: float
    beta_readout: float
    dt: float
    n_saturated: int


_WEIGHTS = ("Linear", "Affine")
_NEURONS = ("LIF", "CubaLIF", "IF", "LI")


def _chain(graph, source):
    """The node names from the Input to the Output of a graph that must be a chain."""
    nodes = graph.nodes
    for name, node in nodes.items():
        kind = type(node).__name__
        if kind == "NIRGraph":
            _fail(source, f"node {name!r} is a subgraph (NIRGraph, e.g. snnTorch's RLeaky or "
                          "RSynaptic: a recurrent layer); spikegate imports feed-forward "
                          "chains")
        if kind not in ("Input", "Output") + _WEIGHTS + _NEURONS:
            _fail(source, f"node {name!r} is a {kind}: unsupported node type (spikegate "
                          f"imports Input, Linear, Affine, LIF, CubaLIF, LI, Output)")
    succ = {n: [] for n in nodes}
    pred = {n: [] for n in nodes}
    for a, b in graph.edges:
        if a not in nodes or b not in nodes:
            _fail(source, f"edge ({a!r}, {b!r}) names a node that is not in the graph")
        succ[a].append(b)
        pred[b].append(a)
    # A cycle (a recurrent edge) first: it is the likeliest reason for a branch.
    state = {}
    for start in nodes:
        stack = [(start, iter(succ[start]))]
        if state.get(start):
            continue
        state[start] = 1
        while stack:
            n, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[n] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                _fail(source, f"recurrent edge ({n!r}, {nxt!r}): spikegate's SSGD network is "
                              "feed-forward")
            elif not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(succ[nxt])))
    inputs = [n for n, v in nodes.items() if type(v).__name__ == "Input"]
    outputs = [n for n, v in nodes.items() if type(v).__name__ == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        _fail(source, f"the graph has inputs {inputs} and outputs {outputs}, expected one "
                      "of each")
    chain = [inputs[0]]
    while type(nodes[chain[-1]]).__name__ != "Output":
        n = chain[-1]
        if len(succ[n]) != 1:
            _fail(source, f"node {n!r} feeds {len(succ[n])} nodes {succ[n]}, expected one "
                          "(spikegate imports a chain)")
        nxt = succ[n][0]
        if len(pred[nxt]) != 1:
            _fail(source, f"node {nxt!r} is fed by {len(pred[nxt])} nodes {pred[nxt]}, "
                          "expected one (spikegate imports a chain)")
        chain.append(nxt)
    left = sorted(set(nodes) - set(chain))
    if left:
        _fail(source, f"nodes {left} are not on the chain from {inputs[0]!r} to "
                      f"{outputs[0]!r}")
    return chain


def _per_neuron(node, name, fld, n, source, default=None):
    value = getattr(node, fld, default)
    if value is None:
        value = default
    a = np.asarray(value, dtype=np.float64)
    if a.size == 1:
        a = np.full(n, float(a.reshape(-1)[0]))
    a = a.reshape(-1) if a.ndim > 1 and a.size == n else a
    if a.shape != (n,):
        _fail(source, f"node {name!r}: {fld} has shape {np.shape(value)}, expected one value "
                      f"or {n} (one per neuron)")
    if not np.all(np.isfinite(a)):
        _fail(source, f"node {name!r}: {fld} holds non-finite values")
    return a


def _show(a):
    a = np.asarray(a, dtype=np.float64)
    return f"{a.min():.6g}" if a.min() == a.max() else f"{a.min():.6g} .. {a.max():.6g}"


def _weights(graph, name, source):
    node = graph.nodes[name]
    w = np.asarray(node.weight, dtype=np.float64)
    if w.ndim != 2:
        _fail(source, f"node {name!r}: weight has shape {w.shape}, expected (n_out, n_in)")
    if not np.all(np.isfinite(w)):
        _fail(source, f"node {name!r}: weight holds non-finite values")
    if type(node).__name__ == "Affine":
        b = np.asarray(node.bias, dtype=np.float64)
        if np.any(b != 0):
            _fail(source, f"node {name!r}: bias is not zero (|bias| up to "
                          f"{np.abs(b).max():.6g}): spikegate's neurons have no bias")
    return w


def _decay(node, name, fld, n, dt, fmt_lif, source):
    """The layer's Euler decay ``1 - dt / tau`` from the field ``fld`` (one for the layer)."""
    tau = _per_neuron(node, name, fld, n, source)
    if np.any(tau <= 0):
        _fail(source, f"node {name!r}: {fld} = {_show(tau)}, expected > 0")
    beta = 1.0 - dt / tau
    if np.ptp(beta) > _BETA_TOL * max(abs(beta).max(), 1e-300):
        _fail(source, f"node {name!r}: {fld} differs between neurons ({_show(tau)}): the SSGD "
                      "model has one decay per layer (TrainFormat holds one beta)")
    b = float(np.mean(beta))
    one = 1 << fmt_lif.decay_bits
    if not 0 < b < 1:
        _fail(source, f"node {name!r}: {fld} = {_show(tau)} with dt = {dt:g}: the Euler decay "
                      f"1 - dt/{fld} = {b:.9g} is not in (0, 1) (choose --dt below {fld})")
    q = int(np.rint(b * one))
    if q == 0 or q == one:
        _fail(source, f"node {name!r}: {fld} = {_show(tau)} with dt = {dt:g} gives beta = "
                      f"{b:.9g}, which quantises to {q}/{one} (the {fmt_lif.decay_bits}-bit "
                      f"decay must be 1 .. {one - 1})")
    return b, tau


def _neuron_scale(graph, name, n, dt, fmt_lif, source, *, readout, lif_readout):
    """``(beta, scale)``: the layer's decay and the per-neuron factor of its input weights."""
    node = graph.nodes[name]
    kind = type(node).__name__
    where = "readout" if readout else "hidden layer"
    if kind == "IF":
        _fail(source, f"node {name!r} is an IF (no leak: beta = 1) in the {where}: the SSGD "
                      f"model's {fmt_lif.decay_bits}-bit decay is below 1; give the neurons "
                      "a leak (LIF with a finite tau)")
    if kind == "LI" and not readout:
        _fail(source, f"node {name!r} is an LI (no threshold, no spikes) as the hidden layer, "
                      "expected LIF (or CubaLIF)")
    if kind in ("LIF", "CubaLIF") and readout and not lif_readout:
        _fail(source, f"node {name!r} is a {kind} readout: the SSGD readout is a leaky "
                      "integrator without threshold (NIR LI). Pass --lif-readout (lif_readout"
                      "=True) to read this node's membrane as the readout, its v_threshold "
                      "and v_reset ignored (exact for snnTorch's Leaky(reset_mechanism="
                      "'none') read by its membrane)")
    tau_field = "tau_mem" if kind == "CubaLIF" else "tau"
    beta, tau = _decay(node, name, tau_field, n, dt, fmt_lif, source)
    v_leak = _per_neuron(node, name, "v_leak", n, source)
    if np.any(v_leak != 0):
        _fail(source, f"node {name!r}: v_leak = {_show(v_leak)}, expected 0 (spikegate's "
                      "membranes leak to 0)")
    r = _per_neuron(node, name, "r", n, source)
    scale = r * dt / tau
    if kind == "CubaLIF":
        tau_syn = _per_neuron(node, name, "tau_syn", n, source)
        if np.any(tau_syn <= 0) or np.any(np.abs(1.0 - dt / tau_syn) > _SYN_TOL):
            _fail(source, f"node {name!r}: tau_syn = {_show(tau_syn)} with dt = {dt:g} is a "
                          "synaptic current with decay 1 - dt/tau_syn = "
                          f"{_show(1.0 - dt / tau_syn)}: spikegate's LIF has none (only "
                          "tau_syn = dt, an instantaneous synapse, is accepted)")
        scale = scale * _per_neuron(node, name, "w_in", n, source, default=1.0)
    if not readout:
        th = _per_neuron(node, name, "v_threshold", n, source)
        if np.any(th <= 0):
            _fail(source, f"node {name!r}: v_threshold = {_show(th)}, expected > 0")
        v_reset = _per_neuron(node, name, "v_reset", n, source, default=0.0)
        if np.any(v_reset != 0):
            _fail(source, f"node {name!r}: v_reset = {_show(v_reset)}: spikegate's LIF resets "
                          "by subtracting the threshold; only v_reset = 0 (what snnTorch "
                          "writes for its reset by subtraction) is read, as that")
        scale = scale / th
    return beta, scale


def lif_from_nir(graph, source="<graph>", *, dt=DEFAULT_DT, lif_readout=False,
                 saturate=False):
    """The SSGD model of a feed-forward LIF graph another library wrote (the mapping and
    what is refused: module docstring). Returns a :class:`LIFImport`; raises
    :class:`NIRFileError` naming the node and the field."""
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not (
            math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number (seconds), not {dt!r}")
    dt = float(dt)
    chain = _chain(graph, source)
    middle = chain[1:-1]
    kinds = [type(graph.nodes[n]).__name__ for n in middle]
    for i, (n, k) in enumerate(zip(middle, kinds)):
        want = _WEIGHTS if i % 2 == 0 else _NEURONS
        if k not in want:
            _fail(source, f"node {n!r} is a {k} where the chain needs "
                          f"{' or '.join(want)} (expected Input -> Linear|Affine -> LIF -> "
                          "Linear|Affine -> LI -> Output)")
    if len(middle) % 2:
        _fail(source, f"node {middle[-1]!r} ({kinds[-1]}) feeds the output directly, expected "
                      "a neuron layer after it")
    if len(middle) > 4:
        _fail(source, f"{len(middle) // 2 - 1} hidden layers (neurons "
                      f"{[n for n in middle[1:-2:2]]}): the SSGD model has one hidden layer "
                      "(n_in-H-C)")
    if len(middle) < 4:
        _fail(source, f"one weight layer ({', '.join(middle)}): the SSGD model needs a hidden "
                      "LIF layer and a readout (Linear -> LIF -> Linear -> LI)")
    lin0, hid, lin1, out = middle
    fmt0 = TrainFormat()
    w0 = _weights(graph, lin0, source)
    w1 = _weights(graph, lin1, source)
    H, n_in = w0.shape
    C = w1.shape[0]
    if w1.shape[1] != H:
        _fail(source, f"node {lin1!r}: weight has shape {w1.shape}, expected ({C}, {H}) after "
                      f"the {H} neurons of {hid!r}")
    for end, want, what in ((chain[0], n_in, f"the inputs of {lin0!r}"),
                            (chain[-1], C, f"the outputs of {lin1!r}")):
        node = graph.nodes[end]
        types = node.input_type if type(node).__name__ == "Input" else node.output_type
        for key, shape in (types or {}).items():
            size = int(np.prod(np.asarray(shape, dtype=np.int64))) if np.size(shape) else 0
            if size != want:
                _fail(source, f"node {end!r}: its {key} type has shape "
                              f"{np.asarray(shape).tolist()}, expected [{want}] ({what})")
    beta, s0 = _neuron_scale(graph, hid, H, dt, fmt0.lif, source, readout=False,
                             lif_readout=lif_readout)
    beta_r, s1 = _neuron_scale(graph, out, C, dt, fmt0.lif, source, readout=True,
                               lif_readout=lif_readout)
    w_float = ((w0 * s0[:, None]).T.copy(), (w1 * s1[:, None]).T.copy())
    lif = fmt0.lif
    lo, hi = -(1 << (lif.w_bits - 1)), (1 << (lif.w_bits - 1)) - 1
    n_sat = 0
    for name, w in zip((lin0, lin1), w_float):
        q = np.rint(w * (1 << lif.frac_bits))
        bad = (q < lo) | (q > hi)
        n_sat += int(bad.sum())
        if bad.any() and not saturate:
            _fail(source, f"node {name!r}: {int(bad.sum())} of the weight's {w.size} values, in "
                          f"units of the threshold (largest |w| {np.abs(w).max():.6g}), lie "
                          f"outside the int{lif.w_bits} range [{lo}, {hi}] / 2**{lif.frac_bits}"
                          f" = [{lo / (1 << lif.frac_bits):g}, {hi / (1 << lif.frac_bits):g}]"
                          "; pass --saturate (saturate=True) to clip them")
    fmt = fmt0.with_(tau_mem=-1.0 / math.log(beta), tau_readout=-1.0 / math.log(beta_r))
    weights = tuple(quantize_weights(w, lif) for w in w_float)
    training = {"source": "NIR import", "dt": dt, "beta": beta, "beta_readout": beta_r,
                "nodes": {"linear_0": lin0, "neuron_0": hid, "linear_1": lin1,
                          "readout_1": out},
                "readout": "LI" if type(graph.nodes[out]).__name__ == "LI"
                else f"{type(graph.nodes[out]).__name__} membrane (--lif-readout)",
                "saturated_weights": n_sat}
    model = SSGDModelFile(weights, fmt, training)
    return LIFImport(model, w_float, beta, beta_r, dt, n_sat)


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
    return {"pdnn": load_pd_model, "ssgd": load_ssgd_model}.get(model_algorithm(path),
                                                                load_model)(path)


def export_model(model_path, nir_path, dt=DEFAULT_DT):
    """Write the NIR graph of the model file ``model_path`` to ``nir_path`` (atomically);
    ``dt`` is the SSGD mapping's Euler step."""
    graph = to_nir(_load_any(model_path), dt)
    nir = _nir()
    nir_path = Path(nir_path)
    with atomic.replacing(nir_path) as tmp:
        nir.write(tmp, graph)
    return graph


def import_model(nir_path, model_path, *, dt=DEFAULT_DT, lif_readout=False, saturate=False):
    """Write the model file of the NIR file ``nir_path`` to ``model_path`` (atomically, after
    every check); returns the model. The keywords are :func:`lif_from_nir`'s, for a graph
    spikegate did not write."""
    model = from_nir(_read_graph(nir_path), nir_path, dt=dt, lif_readout=lif_readout,
                     saturate=saturate)
    save = {"ttfs": save_model, "pdnn": save_pd_model, "ssgd": save_ssgd_model}
    save[model.meta()["algorithm"]](model_path, model)
    return model


def _run_export(args):
    graph = export_model(args.model, args.nir_file, args.dt)
    print(f"wrote {args.nir_file}: {len(graph.nodes)} NIR nodes "
          f"({', '.join(sorted({type(n).__name__ for n in graph.nodes.values()}))})")
    return 0


def _run_import(args):
    out = args.output or str(Path(args.nir_file).with_suffix(".npz"))
    model = import_model(args.nir_file, out, dt=args.dt, lif_readout=args.lif_readout,
                         saturate=args.saturate)
    meta = model.meta()
    extra = ""
    tr = meta.get("training") or {}
    if meta["algorithm"] == "ssgd" and tr.get("source") == "NIR import":
        one = 1 << model.fmt.lif.decay_bits
        extra = (f" (LIF network, dt {tr['dt']:g}: beta {tr['beta']:.6g} -> "
                 f"{model.fmt.beta_q}/{one}, readout beta {tr['beta_readout']:.6g} -> "
                 f"{model.fmt.beta_r_q}/{one}, readout {tr['readout']}, "
                 f"{tr['saturated_weights']} weights saturated)")
    print(f"wrote {out}: a {meta['algorithm']} model, sizes "
          f"{'-'.join(str(s) for s in meta['sizes'])}{extra}")
    return 0


def add_parser(subparsers):
    dt_help = (f"Euler step of the LIF mapping in seconds (default {DEFAULT_DT:g}, "
               "snnTorch's export_to_nir): beta = 1 - dt/tau")
    e = subparsers.add_parser("export", help="write a model file as a NIR graph",
                              description="Write a TTFS, PD or SSGD model file as a NIR graph "
                                          "(the mapping: spikegate.scripts.nir_io).")
    e.add_argument("model", metavar="MODEL", type=existing_file, help="model file (.npz)")
    e.add_argument("nir_file", metavar="NIR_FILE", type=output_file, help="NIR file to write")
    e.add_argument("--dt", type=positive_float, default=DEFAULT_DT, help=dt_help)
    e.set_defaults(func=_run_export)
    i = subparsers.add_parser("import", help="read a NIR graph into a model file",
                              description="Read a NIR graph into a model file: one "
                                          "spikegate exported (TTFS, PD, SSGD), or a "
                                          "feed-forward LIF network (snnTorch, Norse, ...) "
                                          "into an SSGD model file (the mapping: "
                                          "spikegate.scripts.nir_io).")
    i.add_argument("nir_file", metavar="NIR_FILE", type=existing_file, help="NIR file")
    i.add_argument("-o", "--output", type=output_file, default=None, metavar="MODEL",
                   help="model file to write (default: NIR_FILE with the suffix .npz)")
    i.add_argument("--dt", type=positive_float, default=DEFAULT_DT, help=dt_help)
    i.add_argument("--lif-readout", action="store_true",
                   help="accept a LIF readout and read its membrane (threshold and reset "
                        "ignored) as the SSGD leaky-integrator readout")
    i.add_argument("--saturate", action="store_true",
                   help="clip weights beyond int8 instead of refusing the graph")
    i.set_defaults(func=_run_import)
    return e
