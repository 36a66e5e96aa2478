"""Deliberately wrong versions of the PD network's fixed-point steps, to show that the tests
notice: each is :data:`spikegate.golden.pdnn_fixed.STEPS` with one step changed (a rounding
that floors, a saturation left out). A test runs the golden network with a mutant
(``PDFixedNetwork.run(frames, steps=MUTANTS[name])``) and asserts that the hardware disagrees
with it while agreeing with the specification."""

import numpy as np

from spikegate.golden.fixed import asr, round_shift, saturate, wrap
from spikegate.golden.pdnn_fixed import STEPS, activate_fx

__all__ = ["MUTANTS"]


def _encode_floors(x, x_prev, fmt):
    """encode_fx with a flooring shift instead of round half up."""
    d = (np.asarray(x, np.int64) << fmt.ka_frac) - fmt.ka * np.asarray(x_prev, np.int64)
    n = fmt.x_frac + fmt.ka_frac + fmt.gain_frac - fmt.phi_frac
    return saturate(asr(d * fmt.gain, n) if n >= 0 else (d * fmt.gain) << -n, fmt.a_width)


def _quantize_floors(a, phi, fmt):
    """quantize_fx with s = floor(p) instead of round half up."""
    p = np.asarray(phi, np.int64) + np.asarray(a, np.int64)
    s = saturate(asr(p, fmt.phi_frac), fmt.spike_width)
    return s, saturate(p - (s << fmt.phi_frac), fmt.phi_width)


def _quantize_phi_wraps(a, phi, fmt):
    """quantize_fx with phi wrapping instead of saturating."""
    p = np.asarray(phi, np.int64) + np.asarray(a, np.int64)
    s = saturate(round_shift(p, fmt.phi_frac), fmt.spike_width)
    return s, wrap(p - (s << fmt.phi_frac), fmt.phi_width)


def _accumulate_wraps(s, w, fmt):
    """accumulate_fx with a wrapping accumulator (no saturation)."""
    s, w = np.asarray(s, np.int64), np.asarray(w, np.int64)
    return wrap(s @ w, fmt.acc_width), int(np.abs(s).sum())


def _accumulate_saturates_once(s, w, fmt):
    """The exact sum saturated once at the end instead of after every row addition."""
    s, w = np.asarray(s, np.int64), np.asarray(w, np.int64)
    return saturate(s @ w, fmt.acc_width), int(np.abs(s).sum())


def _decode_floors(u, y_prev, fmt):
    """decode_fx with the decay floored instead of rounded half up."""
    y = asr(fmt.ka * np.asarray(y_prev, np.int64), fmt.ka_frac) + \
        round_shift(fmt.kb * np.asarray(u, np.int64), fmt.kb_frac + fmt.w_frac - fmt.y_frac)
    return saturate(y, fmt.y_width)


def _decode_wraps(u, y_prev, fmt):
    """decode_fx with y wrapping instead of saturating."""
    y = round_shift(fmt.ka * np.asarray(y_prev, np.int64), fmt.ka_frac) + \
        round_shift(fmt.kb * np.asarray(u, np.int64), fmt.kb_frac + fmt.w_frac - fmt.y_frac)
    return wrap(y, fmt.y_width)


def _activate_floors(y, b, fmt, next_fmt=None):
    """activate_fx with a flooring shift."""
    z, act = activate_fx(y, b, fmt, next_fmt)
    if next_fmt is None:
        return z, act
    return z, saturate(asr(np.maximum(z, 0), fmt.y_frac - next_fmt.x_frac), next_fmt.x_width)


def _activate_wraps(y, b, fmt, next_fmt=None):
    """activate_fx wrapping to the next layer's width instead of saturating."""
    z, act = activate_fx(y, b, fmt, next_fmt)
    if next_fmt is None:
        return z, act
    return z, wrap(round_shift(np.maximum(z, 0), fmt.y_frac - next_fmt.x_frac), next_fmt.x_width)


#: name -> steps with one wrong step.
MUTANTS = {
    "encoder rounds down": STEPS._replace(encode=_encode_floors),
    "quantizer rounds down": STEPS._replace(quantize=_quantize_floors),
    "phi wraps": STEPS._replace(quantize=_quantize_phi_wraps),
    "accumulator wraps": STEPS._replace(accumulate=_accumulate_wraps),
    "accumulator saturates once per frame": STEPS._replace(accumulate=_accumulate_saturates_once),
    "decoder decay rounds down": STEPS._replace(decode=_decode_floors),
    "decoder wraps": STEPS._replace(decode=_decode_wraps),
    "activation rounds down": STEPS._replace(activate=_activate_floors),
    "activation wraps": STEPS._replace(activate=_activate_wraps),
}
