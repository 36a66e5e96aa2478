"""Run images through the TTFS classifier's generated Verilog (Verilator or Icarus) and
compare the results with the discrete golden model.

:func:`simulate_hardware` is what ``spikegate sim``, ``spikegate compare`` and the benchmarks
call; :func:`first_mismatch` names the first disagreement (image, layer, neuron, quantity,
hardware and golden values).
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikegate.golden.ttfs_discrete import NO_SPIKE, DiscreteNetwork
from spikegate.hdl.classifier import TTFSClassifier
from .runner import run_cocotb

__all__ = ["HardwareResult", "simulate_hardware", "first_mismatch", "small_digits_network"]


@dataclass
class HardwareResult:
    """Per-image results read back from the simulated hardware (arrays over images).

    ``decision`` is -1 and ``decision_step`` -1 where the hardware reported no decision, as
    in :class:`~spikegate.golden.ttfs_discrete.DiscreteResult`; ``spike_steps`` (per layer
    after the input, NO_SPIKE for none) is present when traced.
    """
    decision: np.ndarray
    decision_step: np.ndarray
    error: np.ndarray
    cycles: np.ndarray
    scan_cycles: np.ndarray
    spikes: np.ndarray
    lookups: np.ndarray
    spike_steps: list = None
    label_error: np.ndarray = None
    learn_cycles: np.ndarray = None
    #: with ``read_weights``: per weight layer, ``(n_images, n_in, n_out)`` int8, the weights
    #: after each image
    weights: list = None


def simulate_hardware(net, steps, lanes, *, trace=True, sim=None, waves=None, out_dir=None,
                      stall_in=0.0, stall_out=0.0, seed=None, timeout_s=None,
                      labels=None, lr_shift=0, read_weights=False, timing=None):
    """Classify ``steps`` (``(n, n_in)`` input steps) on the Verilog of
    ``TTFSClassifier.from_network(net, lanes, timing=timing)`` (``timing``: a
    :class:`~spikegate.hdl.timing.Timing`, default none; a board's is
    :func:`spikegate.boards.timing.board_timing`); returns a :class:`HardwareResult`.

    With ``labels`` (one per image) the classifier is built with on-chip learning and learns
    from every image (step ``2**lr_shift``); ``read_weights`` reads every weight back after
    each image."""
    if not isinstance(net, DiscreteNetwork):
        raise TypeError(f"net must be a DiscreteNetwork, not {net!r}")
    steps = np.asarray(steps, dtype=np.int64)
    if steps.ndim != 2 or steps.shape[1] != net.sizes[0] or len(steps) == 0:
        raise ValueError(f"steps must have shape (n >= 1, {net.sizes[0]}), not {steps.shape}")
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        out = Path(tmp) / "results.npz"
        lanes_name = "_".join(map(str, (lanes,) if isinstance(lanes, int) else lanes)) + \
            ("_learn" if labels is not None else "") + \
            ("" if timing is None else "_" + timing.key())
        run_cocotb(TTFSClassifier, module="spikegate.sim.ttfs_cocotb", sim=sim, waves=waves,
                   name=f"ttfs_classifier_l{lanes_name}",
                   params={"sizes": net.sizes, "thetas": net.thetas, "lanes": lanes,
                           "config": net.config, "weights": net.weights,
                           "learning": labels is not None,
                           **({} if timing is None else {"timing": timing})},
                   test_args={"config": net.config.to_dict(), "sizes": list(net.sizes),
                              "steps": steps, "trace": bool(trace), "out": str(out),
                              "stall_in": stall_in, "stall_out": stall_out, "seed": seed,
                              "labels": None if labels is None else np.asarray(labels, np.int64),
                              "lr_shift": int(lr_shift), "read_weights": bool(read_weights)},
                   timeout_s=timeout_s)
        with np.load(out) as r:
            d = {k: r[k] for k in r.files}
    T = net.config.timesteps
    decided = d["decided"].astype(bool)
    spike_steps = None
    if trace:
        spike_steps = [np.where(d[f"trace{l}"] == T, NO_SPIKE, d[f"trace{l}"])
                       for l in range(1, len(net.sizes))]
    return HardwareResult(
        decision=np.where(decided, d["klass"], -1),
        decision_step=np.where(decided, d["decision_step"], -1),
        error=d["error"], cycles=d["cycles"], scan_cycles=d["scan_cycles"],
        spikes=d["spikes"], lookups=d["lookups"], spike_steps=spike_steps,
        label_error=d["label_error"], learn_cycles=d["learn_cycles"],
        weights=[d[f"weights{l}"] for l in range(len(net.weights))] if read_weights else None)


def first_mismatch(hw, golden, steps=None):
    """The first disagreement between a :class:`HardwareResult` and a golden
    :class:`~spikegate.golden.ttfs_discrete.DiscreteResult`, as a dict (image, quantity,
    layer, neuron, hardware, golden), or ``None`` when they agree on every image."""
    n = len(hw.decision)
    for b in range(n):
        if hw.error[b]:
            return {"image": b, "quantity": "error flag", "hardware": 1, "golden": 0}
        for q in ("decision", "decision_step"):
            h, g = int(getattr(hw, q)[b]), int(getattr(golden, q)[b])
            if h != g:
                return {"image": b, "quantity": q, "hardware": h, "golden": g}
        for q in ("spikes", "lookups"):
            h, g = getattr(hw, q)[b], getattr(golden, q)[b]
            bad = np.flatnonzero(h != g)
            if len(bad):
                return {"image": b, "quantity": q, "layer": int(bad[0]),
                        "hardware": int(h[bad[0]]), "golden": int(g[bad[0]])}
        if hw.spike_steps is not None:
            for l, tr in enumerate(hw.spike_steps):
                bad = np.flatnonzero(tr[b] != golden.spike_steps[l + 1][b])
                if len(bad):
                    return {"image": b, "quantity": "spike step", "layer": l + 1,
                            "neuron": int(bad[0]), "hardware": int(tr[b][bad[0]]),
                            "golden": int(golden.spike_steps[l + 1][b][bad[0]])}
    return None


def small_digits_network(epochs=8, seed=0):
    """A 64-64-10 digits network trained by the golden model (seeded, a few seconds), for
    test benches: ``(DiscreteNetwork, test input steps, test labels)``."""
    from spikegate.golden import ttfs
    from spikegate.golden.data import load_dataset
    from spikegate.golden.encoding import EncodingConfig, encode
    from spikegate.golden.ttfs_discrete import times_to_steps
    d = load_dataset("digits")
    enc = EncodingConfig(mode="graded")
    net = ttfs.TTFSNetwork.create((64, 64, 10), seed=seed)
    ttfs.train(net, ttfs.times_to_z(encode(d.x_train, enc)), d.y_train,
               ttfs.TrainConfig(epochs=epochs, seed=seed))
    dnet = DiscreteNetwork.from_float(net.weights)
    return dnet, times_to_steps(encode(d.x_test, enc), dnet.config), d.y_test
