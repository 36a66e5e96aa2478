"""Fixed-point LIF step, active test and surrogate lookup of sparse spiking gradient descent.

The bit-exact reference the hardware matches (the RTL implements functions of the same
names). It mirrors the float model of :mod:`spikegate.golden.ssgd`:

``V[t+1] = beta V[t] + S_in[t] @ W - S[t] * V_th``, ``S[t+1] = V[t+1] > V_th``,
``active = |V - V_th| < B_th``, ``g = 1 / (scale |V - V_th| + 1)**2``.

Number formats (defaults of :class:`FixedFormat`; every width is a parameter)
-------------------------------------------------------------------------------
=================  ========================  ==========================================
variable           format                    rounding / overflow
=================  ========================  ==========================================
membrane ``v``     signed ``v_bits`` = 16,   result of each step **saturated** to 16 bits
                   ``frac_bits`` = 8         (range -128 .. +127.996 in units of V_th)
threshold          ``1 << frac_bits`` = 256  exact (V_th = 1.0)
weight ``w``       signed ``w_bits`` = 8,    quantised offline with round-half-even,
                   ``frac_bits`` = 8         then **saturated** to 8 bits
decay ``beta``     unsigned ``decay_bits``   ``round(beta * 2**8)`` (= 232 for
                   = 8, value/2**8           ``exp(-1/10)``: 0.90625)
decay product      signed 16 + 8 = 24 bits   ``round_shift`` by 8: round half up,
                                             ``floor(x / 256 + 1/2)``; cannot overflow
synaptic sum       signed ``acc_bits`` = 24  sum of the weights of the inputs that spiked;
                                             **saturated** to 24 bits (fan-in * 128 < 2**23
                                             for fan-in < 65536, so never in practice)
``v - V_th``       signed 17 bits            exact
active band        ``b_th_q = round(B_th *   round-half-even, at least 1 (51 for 0.2)
                   2**frac_bits)``
surrogate ``g``    unsigned ``g_bits`` = 16, ``LUT[d] = round_half_even(2**15 /
                   ``g_frac`` = 15           (scale d / 2**8 + 1)**2)``, computed exactly
                                             with rationals; ``d = |v - V_th| < b_th_q``
                                             indexes the table (51 entries), inactive = 0
=================  ========================  ==========================================

Error against the float model
-----------------------------
Against the float model run with the *quantised* parameters (``beta_q / 2**8`` and
``w_q / 2**8``) from the same state, one step errs by the decay rounding only:
``|v_fixed - v_float| <= 1/2`` LSB (``2**-9``). Without saturation, and as long as both
models emit the same spikes, the error obeys ``e[t+1] = beta_q e[t] + r``, ``|r| <= 1/2``,
so ``|e| <= 0.5 / (1 - beta_q / 2**8)`` LSB (5.33 LSB = 0.0208 V_th with the defaults).
The lookup errs by at most half an output LSB (``2**-16``) from ``g`` at the quantised
``v``; ``g`` is ``2 scale``-Lipschitz, which bounds the rest.

Shared primitives (``saturate``, ``round_shift``) come from :mod:`spikegate.golden.fixed`.
"""

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .fixed import round_shift, saturate, signed_range

__all__ = [
    "FixedFormat", "quantize_weights", "quantize_decay", "quantize_b_th", "threshold_q",
    "decay", "synaptic_input", "integrate", "fire", "lif_step", "lif_forward_fixed",
    "is_active", "surrogate_lut", "surrogate_lookup", "to_float",
]


def _int_param(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], not {value!r}")


@dataclass(frozen=True)
class FixedFormat:
    """Widths of the fixed-point LIF datapath (see the module docstring).

    Parameters
    ----------
    v_bits : int
        Membrane width, signed (saturating).
    w_bits : int
        Weight width, signed (saturating at quantisation).
    frac_bits : int
        Fractional bits of membrane, weight and threshold (V_th = ``1 << frac_bits``).
    decay_bits : int
        Fractional bits of the unsigned decay factor.
    acc_bits : int
        Width of one step's synaptic sum, signed (saturating).
    g_bits, g_frac : int
        Surrogate lookup output: unsigned, ``g_frac`` fractional bits (``g_bits > g_frac``
        so that 1.0 fits).
    """
    v_bits: int = 16
    w_bits: int = 8
    frac_bits: int = 8
    decay_bits: int = 8
    acc_bits: int = 24
    g_bits: int = 16
    g_frac: int = 15

    def __post_init__(self):
        _int_param("v_bits", self.v_bits, 2, 48)
        _int_param("w_bits", self.w_bits, 2, 32)
        _int_param("frac_bits", self.frac_bits, 0, self.v_bits - 2)
        _int_param("decay_bits", self.decay_bits, 1, 24)
        _int_param("acc_bits", self.acc_bits, 2, 56)
        _int_param("g_bits", self.g_bits, 2, 32)
        _int_param("g_frac", self.g_frac, 0, self.g_bits - 1)

    @property
    def lsb(self):
        """Value of one membrane / weight LSB, ``2**-frac_bits``."""
        return 2.0 ** -self.frac_bits


def threshold_q(fmt):
    """The threshold V_th = 1.0 in membrane LSBs: ``1 << frac_bits``."""
    return 1 << fmt.frac_bits


def to_float(x, fmt):
    """Membrane or weight integers to floats: ``x * 2**-frac_bits``."""
    return np.asarray(x, dtype=np.float64) * fmt.lsb


def quantize_weights(w, fmt):
    """Float weights to ``w_bits`` signed integers: round-half-even of ``w * 2**frac_bits``,
    then saturate (offline, not a hardware step). Returns int64."""
    w = np.asarray(w, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite")
    return saturate(np.rint(w * (1 << fmt.frac_bits)).astype(np.int64), fmt.w_bits)


def quantize_decay(beta, fmt):
    """Decay factor in ``(0, 1)`` to an unsigned ``decay_bits`` integer:
    ``round-half-even(beta * 2**decay_bits)``, clipped to ``2**decay_bits - 1``."""
    if not 0 < beta < 1:
        raise ValueError(f"beta must lie in (0, 1), not {beta!r}")
    q = int(np.rint(beta * (1 << fmt.decay_bits)))
    return min(max(q, 0), (1 << fmt.decay_bits) - 1)


def quantize_b_th(b_th, fmt):
    """Active half-width in membrane LSBs: round-half-even of ``b_th * 2**frac_bits``,
    at least 1."""
    if not b_th > 0:
        raise ValueError(f"b_th must be > 0, not {b_th!r}")
    return max(1, int(np.rint(b_th * (1 << fmt.frac_bits))))


def decay(v, beta_q, fmt):
    """``round_shift(v * beta_q, decay_bits)``: the leak, rounding half up.

    ``v`` is signed ``v_bits``, ``beta_q`` unsigned ``decay_bits``; the product is signed
    ``v_bits + decay_bits``. Since ``beta_q < 2**decay_bits`` the result never exceeds
    ``|v|`` in magnitude (no overflow).
    """
    return round_shift(np.asarray(v, dtype=np.int64) * int(beta_q), fmt.decay_bits)


def synaptic_input(spikes_in, w_q, fmt):
    """Sum of the weight rows of the inputs that spiked: ``spikes_in (B, n_in) @ w_q``.

    Saturated to signed ``acc_bits`` (unreachable for fan-in below ``2**(acc_bits -
    w_bits)``).
    """
    s = np.asarray(spikes_in)
    if s.dtype != np.bool_:
        if np.any((s != 0) & (s != 1)):
            raise ValueError("input spikes must be 0 or 1")
        s = s.astype(bool)
    return saturate(s.astype(np.int64) @ np.asarray(w_q, dtype=np.int64), fmt.acc_bits)


def integrate(v_decayed, syn, spike_prev, fmt):
    """``saturate(v_decayed + syn - spike_prev * V_th, v_bits)``: accumulate and reset by
    subtraction (the spike of the previous step). Exact, then saturating."""
    v = (np.asarray(v_decayed, dtype=np.int64) + np.asarray(syn, dtype=np.int64)
         - np.asarray(spike_prev, dtype=np.int64) * threshold_q(fmt))
    return saturate(v, fmt.v_bits)


def fire(v, fmt):
    """Spike when ``v > V_th`` (strict), as the float model."""
    return np.asarray(v, dtype=np.int64) > threshold_q(fmt)


def lif_step(v, spike_prev, spikes_in, w_q, beta_q, fmt):
    """One step: ``v' = integrate(decay(v), synaptic_input(spikes_in), spike_prev)``,
    ``s' = fire(v')``. Returns ``(v', s')``; ``v`` int64, ``s`` bool."""
    v_new = integrate(decay(v, beta_q, fmt), synaptic_input(spikes_in, w_q, fmt),
                      spike_prev, fmt)
    return v_new, fire(v_new, fmt)


def lif_forward_fixed(x, w_q, beta_q, fmt):
    """The fixed-point layer over ``T`` steps; ``x`` is a ``(T, B, n_in)`` 0/1 raster.

    Returns ``v`` (int64) and ``s`` (bool), both ``(T, B, N)``, with ``v[0] = 0``,
    ``s[0] = 0`` and the input of step ``T-1`` unused, as :func:`spikegate.golden.ssgd.
    lif_forward`.
    """
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x must be a (T, B, n_in) raster, not shape {x.shape}")
    T, B, n_in = x.shape
    w_q = np.asarray(w_q, dtype=np.int64)
    if w_q.ndim != 2 or w_q.shape[0] != n_in:
        raise ValueError(f"weights of shape {w_q.shape} do not take {n_in} inputs")
    lo, hi = signed_range(fmt.w_bits)
    if w_q.size and (w_q.min() < lo or w_q.max() > hi):
        raise ValueError(f"weights exceed the signed {fmt.w_bits}-bit range [{lo}, {hi}]")
    N = w_q.shape[1]
    v = np.zeros((T, B, N), dtype=np.int64)
    s = np.zeros((T, B, N), dtype=bool)
    for t in range(T - 1):
        v[t + 1], s[t + 1] = lif_step(v[t], s[t], x[t], w_q, beta_q, fmt)
    return v, s


def is_active(v, b_th_q, fmt):
    """``|v - V_th| < b_th_q``: two compares of the 17-bit difference, no rounding."""
    d = np.asarray(v, dtype=np.int64) - threshold_q(fmt)
    return np.abs(d) < int(b_th_q)


def surrogate_lut(fmt, b_th_q, scale=100):
    """The surrogate table: ``b_th_q`` unsigned ``g_bits`` entries (int64 array).

    ``LUT[d] = round_half_even(2**g_frac / (scale * d / 2**frac_bits + 1)**2)`` for
    ``d = 0 .. b_th_q - 1``, computed with exact rationals (``scale`` may be any float; its
    exact binary value is used), saturated to ``g_bits``.
    """
    if int(b_th_q) < 1:
        raise ValueError(f"b_th_q must be >= 1, not {b_th_q!r}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, not {scale!r}")
    sc = Fraction(scale)
    one = Fraction(1 << fmt.g_frac)
    den = 1 << fmt.frac_bits
    vals = [round(one / (sc * Fraction(d, den) + 1) ** 2) for d in range(int(b_th_q))]
    return saturate(np.array(vals, dtype=np.int64), fmt.g_bits, signed=False)


def surrogate_lookup(v, lut, fmt):
    """Surrogate of each membrane value: ``LUT[|v - V_th|]`` where active, else 0.

    The table length is the active half-width ``b_th_q``, so the lookup *is* the active
    test: an index past the table means inactive.
    """
    lut = np.asarray(lut, dtype=np.int64)
    d = np.abs(np.asarray(v, dtype=np.int64) - threshold_q(fmt))
    act = d < len(lut)
    return np.where(act, lut[np.where(act, d, 0)], 0)
