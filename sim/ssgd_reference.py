"""The golden forward pass of an SSGD network as the hardware shows it, from the fixed-point
steps of :mod:`spikegate.golden.ssgd_fixed` and :mod:`spikegate.golden.ssgd_train_fixed` (no
arithmetic of its own).

* :func:`expected_layer`: a hidden LIF layer's membranes, spikes, active entries and surrogate
  values over ``T`` steps (:func:`~spikegate.golden.ssgd_fixed.lif_forward_fixed`,
  :func:`~spikegate.golden.ssgd_fixed.is_active`,
  :func:`~spikegate.golden.ssgd_fixed.surrogate_lookup`; step 0 never active, as
  :func:`spikegate.golden.ssgd.forward`);
  A readout (``b_th_q`` None) is ``O[t+1] = integrate(decay(O[t], beta_r),
  synaptic_input(S[t], W2), 0)``, the same numbers as
  :func:`~spikegate.golden.ssgd_train_fixed.readout_forward_fixed`;
* :func:`expected_network`: the whole forward of
  :func:`~spikegate.golden.ssgd_train_fixed.forward_fixed` (the training's specification),
  rearranged image-major as the hardware shows it.
"""

from dataclasses import dataclass

import numpy as np

from spikegate.golden import ssgd_fixed as sf
from spikegate.golden import ssgd_train_fixed as stf

__all__ = ["LayerTrace", "expected_layer", "NetworkTrace",
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
    """The hidden layer's and the readout's traces (``(B, T, n)``), the logits ``z`` ``(B, C)``
    and classes ``(B,)``."""
    hidden: LayerTrace
    readout: LayerTrace
    z: np.ndarray
    klass: np.ndarray


def expected_network(x, w1, w2, tfmt):
    """The network of :func:`spikegate.golden.ssgd_train_fixed.forward_fixed` over rasters
    ``x`` ``(B, T, n_in)``, in the hardware's view: its active events as flags and surrogate
    values per entry."""
    f = stf.forward_fixed((np.asarray(w1), np.asarray(w2)), np.swapaxes(np.asarray(x), 0, 1),
                          tfmt)
    v, s, o = (np.swapaxes(a, 0, 1).astype(np.int64) for a in (f.v, f.s, f.o))
    act, g = np.zeros_like(v), np.zeros_like(v)
    ev = f.events
    act[ev.b, ev.t, ev.j] = 1
    g[ev.b, ev.t, ev.j] = ev.g
    z = np.zeros_like(o)
    hidden = LayerTrace(v, s, act, g)
    readout = LayerTrace(o, z, z.copy(), z.copy())
    return NetworkTrace(hidden, readout, f.z.astype(np.int64), np.argmax(f.z, axis=1))


def raster_events(raster):
    """One image's input stream (steps ``0 .. T-2`` of a ``(T, n)`` raster) as
    :class:`~spikegate.hdl.lif_layouts.LIFEventLayout` dicts: each step's spikes in
    ascending order, then its marker."""
    out = []
    for row in np.asarray(raster)[:-1]:
        out += [{"index": int(i), "last": 0} for i in np.flatnonzero(row)]
        out.append({"index": 0, "last": 1})
    return out
