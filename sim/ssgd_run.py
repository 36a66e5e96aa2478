"""Run image sequences through the SSGD network's generated Verilog (Verilator or Icarus) and
compare with the golden model.

:func:`simulate_ssgd_hardware` builds :class:`~spikegate.hdl.ssgd_network.SSGDNetwork`, runs
:mod:`spikegate.sim.ssgd_cocotb` on it and returns an :class:`SSGDHardwareResult`;
:func:`expected_run` is the golden :class:`~spikegate.sim.ssgd_reference.NetworkTrace` of a run
with weight loads in it; :func:`first_mismatch` compares the two and names the first
difference.
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikegate.golden.fixed import unsigned_bits
from spikegate.hdl.ssgd_network import SSGDNetwork
from .runner import run_cocotb
from .ssgd_mutants import STEPS, forward_with

__all__ = ["SSGDHardwareResult", "simulate_ssgd_hardware", "expected_run", "first_mismatch"]

_SCALARS = ("klass", "cycles", "in_spikes", "spikes", "active", "time_ns")


@dataclass
class SSGDHardwareResult:
    """Per-image results and traces read from the simulated hardware.

    ``klass``, ``cycles``, ``in_spikes``, ``spikes``, ``active``, ``time_ns`` ``(B,)``; ``z``
    ``(B, C)``; ``lookups`` ``(B, 2)``; the hidden layer's ``v``, ``spike``, ``act``, ``g``
    ``(B, T, H)`` and the readout's ``o`` ``(B, T, C)`` from the trace ports; the active events
    ``events`` ``(n, 4)``: image, neuron, step, g, in the order received.
    """
    klass: np.ndarray
    cycles: np.ndarray
    in_spikes: np.ndarray
    spikes: np.ndarray
    active: np.ndarray
    time_ns: np.ndarray
    z: np.ndarray
    lookups: np.ndarray
    v: np.ndarray
    spike: np.ndarray
    act: np.ndarray
    g: np.ndarray
    o: np.ndarray
    events: np.ndarray

    @classmethod
    def from_run(cls, results, recorders, events):
        B = len(results)
        col = {k: np.array([r[k] for r in results], np.float64 if k == "time_ns" else np.int64)
               for k in _SCALARS}
        col["z"] = np.array([r["z"] for r in results], np.int64)
        col["lookups"] = np.array([r["lookups"] for r in results], np.int64)
        h, r = (rec.arrays(B) for rec in recorders)
        ev = [np.column_stack([np.full(len(e), b), e]) for b, e in enumerate(events)]
        return cls(**col, v=h["v"], spike=h["spike"], act=h["active"], g=h["g"], o=r["v"],
                   events=np.concatenate(ev).astype(np.int64) if ev else np.zeros((0, 4),
                                                                                  np.int64))

    def save(self, path):
        np.savez(path, **{k: getattr(self, k) for k in self.__dataclass_fields__})

    @classmethod
    def load(cls, path):
        with np.load(path) as z:
            return cls(**{k: z[k] for k in z.files})


def expected_run(images, weights, tfmt, actions=None, weights2=None, steps=STEPS):
    """The golden trace of a run with ``actions`` (as :func:`simulate_ssgd_hardware`): a load
    before image ``k`` switches to ``weights2`` (a reset changes nothing: every image starts
    from the zero state). ``steps``: the forward's steps (:mod:`spikegate.sim.ssgd_mutants`)."""
    images = np.asarray(images)
    switch = min([int(k) for k, v in (actions or {}).items() if v.get("load")] + [len(images)])
    parts = [forward_with(images[:switch], *weights, tfmt, steps)]
    if switch < len(images):
        parts.append(forward_with(images[switch:], *weights2, tfmt, steps))
    if len(parts) == 1:
        return parts[0]
    a, b = parts
    cat = np.concatenate
    for layer in ("hidden", "readout"):
        la, lb = getattr(a, layer), getattr(b, layer)
        for k in ("v", "spike", "active", "g"):
            setattr(la, k, cat([getattr(la, k), getattr(lb, k)]))
    a.z, a.klass = cat([a.z, b.z]), cat([a.klass, b.klass])
    return a


def first_mismatch(hw, g, x, what=""):
    """The first difference between a hardware run ``hw`` and the golden trace ``g`` of images
    ``x`` ``(B, T, n_in)``, as text naming the image, step and neuron (None when equal): the
    hidden membranes, spikes, active flags and surrogate values, the readout membranes, the
    active events (order and values), logits, classes and counters."""
    x = np.asarray(x).astype(bool)
    pairs = [("hidden v", hw.v, g.hidden.v), ("hidden spike", hw.spike, g.hidden.spike),
             ("hidden active", hw.act, g.hidden.active), ("surrogate g", hw.g, g.hidden.g),
             ("readout o", hw.o, g.readout.v)]
    for name, got, exp in pairs:
        if got.shape != exp.shape:
            return f"{what}: {name} has shape {got.shape}, golden {exp.shape}"
        bad = np.argwhere(got != exp)
        if bad.size:
            b, t, j = bad[0]
            return (f"{what}: image {b} step {t} neuron {j}: {name} = {got[b, t, j]}, golden "
                    f"{exp[b, t, j]}")
    b, t, j = np.nonzero(g.hidden.active)
    order = np.lexsort((j, t, b))
    exp_ev = np.column_stack([b, j, t, g.hidden.g[b, t, j]])[order]
    if hw.events.shape != exp_ev.shape or not np.array_equal(hw.events, exp_ev):
        n = min(len(hw.events), len(exp_ev))
        k = next((i for i in range(n) if not np.array_equal(hw.events[i], exp_ev[i])), n)
        got = hw.events[k].tolist() if k < len(hw.events) else None
        want = exp_ev[k].tolist() if k < len(exp_ev) else None
        return (f"{what}: active event {k} (image, neuron, step, g) = {got}, golden {want} "
                f"({len(hw.events)} events, golden {len(exp_ev)})")
    scalars = [("z", hw.z, g.z), ("klass", hw.klass, g.klass),
               ("in_spikes", hw.in_spikes, x[:, :-1].sum(axis=(1, 2))),
               ("spikes", hw.spikes, g.hidden.spike.sum(axis=(1, 2))),
               ("active", hw.active, g.hidden.active.sum(axis=(1, 2))),
               ("lookups", hw.lookups,
                np.column_stack([x[:, :-1].sum(axis=(1, 2)) * g.hidden.v.shape[2],
                                 g.hidden.spike[:, :-1].sum(axis=(1, 2)) * g.readout.v.shape[2]]))]
    for name, got, exp in scalars:
        got, exp = np.asarray(got), np.asarray(exp)
        if got.shape != exp.shape or not np.array_equal(got, exp):
            if got.shape != exp.shape:
                return f"{what}: {name} has shape {got.shape}, golden {exp.shape}"
            b = np.argwhere(got != exp)[0][0]
            return f"{what}: image {b}: {name} = {got[b].tolist()}, golden {exp[b].tolist()}"
    return None


def simulate_ssgd_hardware(tfmt, weights, images, lanes, *, sizes=None, sim=None, waves=None,
                           stall_in=0.0, stall_out=0.0, stall_act=0.0, stall_from=0, seed=None,
                           actions=None,
                           weights2=None, timeout_s=None, name=None):
    """Run ``images`` (rasters ``(B, T, n_in)``) through the Verilog of ``SSGDNetwork(sizes,
    lanes, tfmt, weights=weights)``; returns an :class:`SSGDHardwareResult`.

    Random stalls (probabilities per cycle, seeded by ``seed``) on the input, the results and
    the active events start with image ``stall_from``: the images before it run with every
    stream ready (their cycles are the timing model's). ``actions`` (``{image: {"reset": bool,
    "load": bool}}``) resets the hardware in the middle of an image and / or loads ``weights2``
    through the ports before it."""
    w1, w2 = (np.asarray(w, np.int64) for w in weights)
    sizes = tuple(sizes or (w1.shape[0], w1.shape[1], w2.shape[1]))
    images = np.asarray(images).astype(np.uint8)
    if images.ndim != 3 or images.shape[1:] != (tfmt.n_steps, sizes[0]) or len(images) == 0:
        raise ValueError(f"images must have shape (B >= 1, {tfmt.n_steps}, {sizes[0]}), not "
                         f"{images.shape}")
    actions = {str(int(k)): dict(v) for k, v in (actions or {}).items()}
    if any(v.get("load") for v in actions.values()) and weights2 is None:
        raise ValueError("a load action needs weights2")
    lanes_t = (lanes,) * 2 if isinstance(lanes, int) else tuple(lanes)
    step_bits, g_bits = unsigned_bits(tfmt.n_steps - 1), tfmt.lif.g_bits
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.npz"
        run_cocotb(SSGDNetwork, module="spikegate.sim.ssgd_cocotb", sim=sim, waves=waves,
                   name=name or "ssgd_network_l" + "_".join(map(str, lanes_t)),
                   params={"sizes": sizes, "lanes": lanes_t, "tfmt": tfmt,
                           "weights": (w1, w2)},
                   test_args={"sizes": list(sizes), "timesteps": tfmt.n_steps,
                              "step_bits": step_bits, "g_bits": g_bits, "z_bits": tfmt.z_bits,
                              "images": images, "stall_in": stall_in, "stall_out": stall_out,
                              "stall_act": stall_act, "stall_from": int(stall_from),
                              "seed": seed, "out": str(out),
                              "actions": actions,
                              "weights2": None if weights2 is None else
                              [np.asarray(w, np.int64) for w in weights2]},
                   timeout_s=timeout_s)
        return SSGDHardwareResult.load(out)
