"""The golden forward pass of an SSGD network as the hardware shows it, composed from the
fixed-point steps of :mod:`spikegate.golden.ssgd_fixed` (no arithmetic of its own).

* :func:`expected_layer`: a hidden LIF layer's membranes, spikes, active entries and surrogate
  values over ``T`` steps (:func:`~spikegate.golden.ssgd_fixed.lif_forward_fixed`,
  :func:`~spikegate.golden.ssgd_fixed.is_active`,
  :func:`~spikegate.golden.ssgd_fixed.surrogate_lookup`; step 0 never active, as
  :func:`spikegate.golden.ssgd.forward`);
* :func:`expected_readout`: the leaky readout ``O[t+1] = integrate(decay(O[t], beta_r),
  synaptic_input(S[t], W_out), 0)``, i.e. ``saturate(round_shift(O beta_r, 8) + S @ W_out,
  v_bits)``, with the float model's factor ``1 - beta_r`` folded into ``W_out`` (the
  fixed-point readout of the float :func:`~spikegate.golden.ssgd.readout_forward`), its logits
  ``max_t O`` (``O[0] = 0`` included) and the class (first maximum).
"""

from dataclasses import dataclass

import numpy as np

from spikegate.golden import ssgd_fixed as sf

__all__ = ["LayerTrace", "expected_layer", "expected_readout", "NetworkTrace",
           "expected_network", "raster_events"]


@dataclass
class LayerTrace:
    """``(B, T, n)`` int64 arrays: ``v``, ``spike``, ``active``, ``g``."""
    v: np.ndarray
    spike: np.ndarray
    active: np.ndarray
    g: np.ndarray


def expected_layer(x, w, beta_q, fmt, b_th_q=None, lut=None):
    """A layer over rasters ``x`` ``(B, T, n_in)`` (image-major); ``b_th_q`` None: a readout
    (no spikes, no active entries)."""
    x = np.asarray(x)
    B, T, _ = x.shape
    if b_th_q is None:
        w = np.asarray(w, np.int64)
        o = np.zeros((B, T, w.shape[1]), np.int64)
        for t in range(T - 1):
            o[:, t + 1] = sf.integrate(sf.decay(o[:, t], beta_q, fmt),
                                       sf.synaptic_input(x[:, t].astype(bool), w, fmt), 0, fmt)
        z = np.zeros_like(o)
        return LayerTrace(o, z, z.copy(), z.copy())
    v, s = sf.lif_forward_fixed(np.swapaxes(x, 0, 1).astype(bool), w, beta_q, fmt)
    v, s = np.swapaxes(v, 0, 1), np.swapaxes(s, 0, 1)
    act = sf.is_active(v, b_th_q, fmt)
    act[:, 0] = False
    g = np.where(act, sf.surrogate_lookup(v, lut, fmt), 0)
    return LayerTrace(v.astype(np.int64), s.astype(np.int64), act.astype(np.int64),
                      g.astype(np.int64))


@dataclass
class NetworkTrace:
    """The hidden layer's and the readout's traces, the logits ``(B, C)`` and classes
    ``(B,)``."""
    hidden: LayerTrace
    readout: LayerTrace
    logits: np.ndarray
    klass: np.ndarray


def expected_readout(o):
    """Logits ``max_t O`` and the class (first maximum) of readout traces ``(B, T, C)``."""
    logits = o.max(axis=1)
    return logits, np.argmax(logits, axis=1)


def expected_network(x, w_hidden, w_out, beta_q, beta_r_q, fmt, b_th_q, lut):
    """The 2-layer network over rasters ``x`` ``(B, T, n_in)``."""
    h = expected_layer(x, w_hidden, beta_q, fmt, b_th_q, lut)
    r = expected_layer(h.spike, w_out, beta_r_q, fmt)
    logits, klass = expected_readout(r.v)
    return NetworkTrace(h, r, logits, klass)


def raster_events(raster):
    """One image's input stream (steps ``0 .. T-2`` of a ``(T, n)`` raster) as
    :class:`~spikegate.hdl.lif_layouts.LIFEventLayout` dicts: each step's spikes in
    ascending order, then its marker."""
    out = []
    for row in np.asarray(raster)[:-1]:
        out += [{"index": int(i), "last": 0} for i in np.flatnonzero(row)]
        out.append({"index": 0, "last": 1})
    return out
