"""The fixed-point steps of a LIF layer in hardware, one function per step of
:mod:`spikegate.golden.ssgd_fixed` (same names), with the same widths, rounding and saturation.

Each function returns a combinational Amaranth expression (or adds named signals to a module
where a waveform reader wants them). The product by the decay factor is shifts and adds
(:func:`~spikegate.hdl.arith.times_const`): no multiplier; saturation is
:func:`spikegate.hdl.saturate.saturate`. Every intermediate is as wide as its value can be, so
only the named saturations clip. Tests replace single functions here (a rounding that floors, a
saturation left out) to show that the comparisons with the golden model notice.
"""

from amaranth.hdl import Const, Mux, Signal, Value, signed

from spikegate.golden.ssgd_fixed import threshold_q
from .arith import times_const
from .saturate import saturate

__all__ = ["decay", "synaptic_input", "integrate", "fire", "active_distance", "is_active"]


def _named(m, value, name):
    s = Signal(Value.cast(value).shape(), name=name)
    m.d.comb += s.eq(value)
    return s


def decay(v, beta_q, fmt):
    """:func:`~spikegate.golden.ssgd_fixed.decay`: ``round_shift(v * beta_q, decay_bits)``,
    rounding half up (add half, then Amaranth's flooring signed ``>>``). ``v * beta_q`` is
    ``v_bits + decay_bits`` bits; the result never exceeds ``|v|`` (no saturation)."""
    v = Value.cast(v)
    prod = Const(0, 1) if beta_q == 0 else times_const(v, int(beta_q))
    n = fmt.decay_bits
    return (prod + (1 << (n - 1))) >> n


def synaptic_input(total, fmt):
    """:func:`~spikegate.golden.ssgd_fixed.synaptic_input`: the step's exact sum of weights
    saturated to signed ``acc_bits`` (a no-op when the accumulator is narrower)."""
    total = Value.cast(total)
    if len(total) <= fmt.acc_bits:
        return total
    return saturate(total, signed(fmt.acc_bits))


def integrate(v_decayed, syn, spike_prev, fmt):
    """:func:`~spikegate.golden.ssgd_fixed.integrate`: ``saturate(v_decayed + syn -
    spike_prev * V_th, v_bits)`` (exact, then saturating)."""
    th = threshold_q(fmt)
    total = Value.cast(v_decayed) + syn - Mux(spike_prev, th, 0)
    return saturate(total, signed(fmt.v_bits))


def fire(v, fmt):
    """:func:`~spikegate.golden.ssgd_fixed.fire`: ``v > V_th`` (strict)."""
    return Value.cast(v) > threshold_q(fmt)


def active_distance(m, v, fmt, name="act"):
    """``(d, mag)``: ``d = v - V_th`` (exact, ``v_bits + 1`` bits) and ``|d|``, the index of the
    surrogate table (:func:`~spikegate.golden.ssgd_fixed.surrogate_lookup`)."""
    d = _named(m, Value.cast(v) - threshold_q(fmt), f"{name}_d")
    mag = _named(m, Mux(d < 0, -d, d), f"{name}_mag")
    return d, mag


def is_active(d, b_th_q, fmt):
    """:func:`~spikegate.golden.ssgd_fixed.is_active` of ``d = v - V_th``: ``|d| < b_th_q``,
    as two compares (``-b_th_q < d < b_th_q``), no rounding."""
    d = Value.cast(d)
    return (d < int(b_th_q)) & (d > -int(b_th_q))
