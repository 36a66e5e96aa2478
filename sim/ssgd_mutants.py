"""Deliberately wrong versions of the SSGD forward pass, to show that the hardware tests
notice: :func:`forward_with` composes the forward of
:func:`spikegate.golden.ssgd_train_fixed.forward_fixed` from the steps of
:mod:`spikegate.golden.ssgd_fixed` (decay, integrate, fire, the active band; the readout's decay
and integration), and each entry of :data:`MUTANTS` changes one of them (a rounding that
floors, a saturation left out, a band one LSB wide, firing at the threshold). A test runs the
hardware once and asserts that it equals the composition with the right steps and differs
from every mutant."""

from typing import Callable, NamedTuple

import numpy as np

from spikegate.golden import ssgd_fixed as sf
from spikegate.golden.fixed import asr, wrap
from spikegate.hdl.ssgd_network import readout_format
from .ssgd_reference import LayerTrace, NetworkTrace

__all__ = ["Steps", "STEPS", "MUTANTS", "forward_with"]


class Steps(NamedTuple):
    """The forward's steps, each with the signature of its :mod:`~spikegate.golden.ssgd_fixed`
    function (``active(v, b_th_q, fmt)`` is :func:`~spikegate.golden.ssgd_fixed.is_active`)."""
    decay: Callable
    integrate: Callable
    fire: Callable
    active: Callable
    readout_decay: Callable


#: The golden steps.
STEPS = Steps(sf.decay, sf.integrate, sf.fire, sf.is_active, sf.decay)


def forward_with(x, w1, w2, tfmt, steps=STEPS):
    """The network over rasters ``x`` ``(B, T, n_in)`` with ``steps``: a
    :class:`~spikegate.sim.ssgd_reference.NetworkTrace` (with ``STEPS``, the numbers of
    :func:`~spikegate.sim.ssgd_reference.expected_network`)."""
    x = np.asarray(x).astype(bool)
    B, T, _ = x.shape
    fmt = tfmt.lif
    H, C = np.shape(w1)[1], np.shape(w2)[1]
    v = np.zeros((B, T, H), np.int64)
    s = np.zeros((B, T, H), np.int64)
    o = np.zeros((B, T, C), np.int64)
    ofmt = readout_format(tfmt)
    for t in range(T - 1):
        syn = sf.synaptic_input(x[:, t], w1, fmt)
        v[:, t + 1] = steps.integrate(steps.decay(v[:, t], tfmt.beta_q, fmt), syn, s[:, t], fmt)
        s[:, t + 1] = steps.fire(v[:, t + 1], fmt)
        h = sf.synaptic_input(s[:, t].astype(bool), w2, fmt)
        o[:, t + 1] = sf.integrate(steps.readout_decay(o[:, t], tfmt.beta_r_q, ofmt), h, 0, ofmt)
    act = steps.active(v, tfmt.b_th_q, fmt).astype(np.int64)
    act[:, 0] = 0
    lut = sf.surrogate_lut(fmt, tfmt.b_th_q, tfmt.surrogate_scale)
    d = np.abs(v - sf.threshold_q(fmt))
    g = np.where(act.astype(bool), lut[np.clip(d, 0, len(lut) - 1)], 0)
    z = o.sum(axis=1)
    zero = np.zeros_like(o)
    return NetworkTrace(LayerTrace(v, s, act, g), LayerTrace(o, zero, zero.copy(), zero.copy()),
                        z, np.argmax(z, axis=1))


def _decay_floors(v, beta_q, fmt):
    """decay with a flooring shift instead of round half up."""
    return asr(np.asarray(v, np.int64) * int(beta_q), fmt.decay_bits)


def _integrate_wraps(v_decayed, syn, spike_prev, fmt):
    """integrate wrapping to v_bits instead of saturating."""
    v = (np.asarray(v_decayed, np.int64) + np.asarray(syn, np.int64)
         - np.asarray(spike_prev, np.int64) * sf.threshold_q(fmt))
    return wrap(v, fmt.v_bits)


def _integrate_no_reset(v_decayed, syn, spike_prev, fmt):
    """integrate without the reset by subtraction."""
    return sf.integrate(v_decayed, syn, 0, fmt)


def _fire_at_threshold(v, fmt):
    """fire with v >= V_th."""
    return np.asarray(v, np.int64) >= sf.threshold_q(fmt)


def _band_one_wider(v, b_th_q, fmt):
    """is_active with |v - V_th| <= b_th_q."""
    return np.abs(np.asarray(v, np.int64) - sf.threshold_q(fmt)) <= int(b_th_q)


#: name -> steps with one wrong step.
MUTANTS = {
    "decay rounds down": STEPS._replace(decay=_decay_floors),
    "membrane wraps": STEPS._replace(integrate=_integrate_wraps),
    "no reset": STEPS._replace(integrate=_integrate_no_reset),
    "fires at the threshold": STEPS._replace(fire=_fire_at_threshold),
    "band one LSB wider": STEPS._replace(active=_band_one_wider),
    "readout decay rounds down": STEPS._replace(readout_decay=_decay_floors),
}
