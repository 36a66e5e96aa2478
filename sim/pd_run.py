"""Run frame sequences through the PD network's generated Verilog (Verilator or Icarus) and
compare with the golden model.

:func:`simulate_pd_hardware` builds ``PDClassifier.from_network(net, lanes)``, runs
:mod:`spikegate.sim.pd_cocotb` on it and returns a :class:`PDHardwareResult`, which
:func:`~spikegate.golden.pdnn_fixed.first_mismatch` compares with a
:class:`~spikegate.golden.pdnn_fixed.PDTrace`. :func:`expected_trace` is the golden trace of a
run with resets and weight loads in it.
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikegate.golden.pdnn_fixed import PDFixedNetwork, PDTrace
from spikegate.hdl.pd_classifier import PDClassifier
from .runner import run_cocotb

__all__ = ["PDHardwareResult", "simulate_pd_hardware", "expected_trace"]

_LAYER_ARRAYS = ("s", "u", "y", "act")


@dataclass
class PDHardwareResult:
    """Per-frame results and traces read from the simulated hardware.

    ``klass``, ``cycles`` ``(T,)``; ``events``, ``spikes`` ``(T, L)``; ``time_ns`` ``(T,)`` (the
    result's transfer); ``s`` (per layer ``(T, n_in)``), ``u``, ``y``, ``act`` (per layer
    ``(T, n_out)``) from the trace ports: the attributes
    :func:`~spikegate.golden.pdnn_fixed.first_mismatch` compares.
    """
    klass: np.ndarray
    cycles: np.ndarray
    events: np.ndarray
    spikes: np.ndarray
    time_ns: np.ndarray
    s: list
    u: list
    y: list
    act: list

    @classmethod
    def from_run(cls, results, recorders):
        T = len(results)
        col = {k: np.array([r[k] for r in results], np.int64)
               for k in ("klass", "cycles", "events", "spikes")}
        col["time_ns"] = np.array([r["time_ns"] for r in results], np.float64)
        arrays = [rec.arrays(T) for rec in recorders]
        for rec, a in zip(recorders, arrays):
            assert len(a["s"]) == T and len(a["u"]) == T, (
                f"{rec.name}: {len(a['s'])} frames of events and {len(a['u'])} of decoded "
                f"neurons for {T} results")
        return cls(**col, **{k: [a[k] for a in arrays] for k in _LAYER_ARRAYS})

    def save(self, path):
        arrays = {k: getattr(self, k) for k in ("klass", "cycles", "events", "spikes", "time_ns")}
        for k in _LAYER_ARRAYS:
            for l, a in enumerate(getattr(self, k)):
                arrays[f"{k}{l}"] = a
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path):
        with np.load(path) as z:
            d = {k: z[k] for k in z.files}
        L = d["events"].shape[1]
        return cls(**{k: d.pop(k) for k in ("klass", "cycles", "events", "spikes", "time_ns")},
                   **{k: [d[f"{k}{l}"] for l in range(L)] for k in _LAYER_ARRAYS})


def expected_trace(net, frames, actions=None, net2=None, steps=None):
    """The golden trace of a run with ``actions`` (as :func:`simulate_pd_hardware`): a reset
    before frame ``k`` restarts from the zero state; a load switches to ``net2``'s weights and
    biases (same formats), keeping the state. ``steps`` as in ``PDFixedNetwork.run``."""
    actions = {int(k): v for k, v in (actions or {}).items()}
    kw = {} if steps is None else {"steps": steps}
    pieces, state, cur = [], None, net
    bounds = sorted(set([0, len(frames)] + list(actions)))
    for a, b in zip(bounds[:-1], bounds[1:]):
        act = actions.get(a, {})
        if act.get("reset"):
            state = None
        if act.get("load"):
            cur = net2
        tr = cur.run(frames[a:b], state=state, **kw)
        pieces.append(tr)
        state = tr.state
    return PDTrace.concatenate(pieces)


def simulate_pd_hardware(net, frames, lanes, *, sim=None, waves=None, stall_in=0.0,
                         stall_out=0.0, seed=None, actions=None, net2=None, timeout_s=None,
                         name=None, classifier=None):
    """Run ``frames`` (``(T, n_in)`` in layer 0's format) through the Verilog of
    ``PDClassifier.from_network(net, lanes)``, or of ``classifier``, a
    :class:`~spikegate.hdl.pd_classifier.PDClassifier` the caller made from ``net`` and
    ``lanes`` with other keywords (e.g. a board build's weight banks,
    :func:`spikegate.boards.synth.pd_classifier_kwargs`); returns a :class:`PDHardwareResult`.

    ``actions`` (``{frame: {"reset": bool, "load": bool, "read": bool}}``) resets the hardware
    in the middle of a frame and / or loads ``net2``'s weights and biases through the ports
    before it, and / or reads a sample of the current weights back and compares them (at each
    layer's :attr:`~spikegate.hdl.pd_layer.PDLayer.rb_latency`)."""
    if not isinstance(net, PDFixedNetwork):
        raise TypeError(f"net must be a PDFixedNetwork, not {net!r}")
    frames = np.asarray(frames, dtype=np.int64)
    if frames.ndim != 2 or frames.shape[1] != net.sizes[0] or len(frames) == 0:
        raise ValueError(f"frames must have shape (T >= 1, {net.sizes[0]}), not {frames.shape}")
    actions = {str(int(k)): dict(v) for k, v in (actions or {}).items()}
    if any(v.get("load") for v in actions.values()) and net2 is None:
        raise ValueError("a load action needs net2")
    lanes_t = (lanes,) * net.n_layers if isinstance(lanes, int) else tuple(lanes)
    params = {"sizes": net.sizes, "formats": tuple(net.formats), "lanes": lanes_t,
              "weights": net.weights, "biases": net.biases}
    if classifier is None:
        classifier = PDClassifier(**params)
    elif not isinstance(classifier, PDClassifier):
        raise TypeError(f"classifier must be a PDClassifier, not {classifier!r}")
    elif classifier.sizes != net.sizes or classifier.lanes != lanes_t:
        raise ValueError(f"classifier is {classifier.sizes} with lanes {classifier.lanes}, "
                         f"the run {net.sizes} with lanes {lanes_t}")
    else:   # its keywords name its build directory (the Verilog decides the rebuilds)
        params["design"] = [(l.lookup.out_register, l.lookup.bank_depth, l.lookup.bank_width)
                            for l in classifier.layers]
    # Each layer's read-back latency, from the design simulated.
    rb_latency = [layer.rb_latency for layer in classifier.layers]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.npz"
        run_cocotb(lambda **_: classifier, module="spikegate.sim.pd_cocotb", sim=sim,
                   waves=waves, name=name or "pd_classifier_l" + "_".join(map(str, lanes_t)),
                   params=params,
                   test_args={"sizes": list(net.sizes), "x_width": net.formats[0].x_width,
                              "frames": frames, "stall_in": stall_in, "stall_out": stall_out,
                              "seed": seed, "out": str(out), "actions": actions,
                              "rb_latency": rb_latency, "weights": net.weights,
                              "weights2": None if net2 is None else net2.weights,
                              "biases2": None if net2 is None else net2.biases},
                   timeout_s=timeout_s)
        return PDHardwareResult.load(out)
