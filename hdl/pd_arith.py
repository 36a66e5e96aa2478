"""The fixed-point steps of a PD layer in hardware, one function per step of
:mod:`spikegate.golden.sigma_delta_fixed` (same names without the ``_fx``) and
:func:`spikegate.golden.pdnn_fixed.activate_fx`, with the same widths, rounding and saturation.

Each function adds combinational logic to a module and returns the result (named signals where
a waveform reader wants them). Products by the format's constants are shifts and adds
(:func:`~spikegate.hdl.arith.times_const`): no multiplier; saturation is
:func:`spikegate.hdl.saturate.saturate`. Every intermediate is as wide as its
value can be, so only the named saturations clip.
"""

from amaranth.hdl import Const, Mux, Signal, Value, signed

from .arith import times_const
from .saturate import saturate

__all__ = ["round_shift", "times", "encode", "quantize", "accumulate", "decode",
           "activate", "wrap_increment"]


def round_shift(value, n):
    """``floor(value / 2**n + 1/2)`` for ``n > 0`` (add half, then Amaranth's flooring signed
    ``>>``: :func:`spikegate.golden.fixed.round_shift`); ``value`` for ``n == 0``; the exact
    ``value << -n`` for ``n < 0`` (as ``sigma_delta_fixed``'s shifts)."""
    value = Value.cast(value)
    if n > 0:
        return (value + (1 << (n - 1))) >> n
    if n == 0:
        return value
    return value << -n


def times(value, c):
    """``value * c`` for a constant ``c >= 0``, as shifts and adds."""
    if c < 0:
        raise ValueError(f"c must be >= 0, not {c!r}")
    return Const(0, 1) if c == 0 else times_const(Value.cast(value), int(c))


def _named(m, value, name):
    s = Signal(Value.cast(value).shape(), name=name)
    m.d.comb += s.eq(value)
    return s


def encode(m, x, x_prev, fmt, name="enc"):
    """:func:`~spikegate.golden.sigma_delta_fixed.encode_fx`: ``a`` (``A_W`` bits) from ``x``
    and ``x_prev`` (``X_W`` bits): ``d = (x << KA_F) - KA x_prev`` exact, ``a =
    saturate(round_shift(d G, X_F + KA_F + G_F - P_F), A_W)``."""
    d = _named(m, (Value.cast(x) << fmt.ka_frac) - times(x_prev, fmt.ka), f"{name}_d")
    shift = fmt.x_frac + fmt.ka_frac + fmt.gain_frac - fmt.phi_frac
    return _named(m, saturate(round_shift(times(d, fmt.gain), shift), signed(fmt.a_width)),
                  f"{name}_a")


def quantize(m, a, phi, fmt, name="q"):
    """:func:`~spikegate.golden.sigma_delta_fixed.quantize_fx`: returns ``(s, phi_new)``:
    ``p = phi + a``; ``s = saturate(round_shift(p, P_F), S_W)``; ``phi_new = saturate(p - (s <<
    P_F), PHI_W)``."""
    p = _named(m, Value.cast(phi) + a, f"{name}_p")
    s = _named(m, saturate(round_shift(p, fmt.phi_frac), signed(fmt.spike_width)), f"{name}_s")
    phi_new = _named(m, saturate(p - (s << fmt.phi_frac), signed(fmt.phi_width)), f"{name}_phi")
    return s, phi_new


def accumulate(u, w, subtract, fmt):
    """One row addition of :func:`~spikegate.golden.sigma_delta_fixed.accumulate_fx` for one
    lane: ``saturate(u - w if subtract else u + w, ACC_W)``."""
    u, w = Value.cast(u), Value.cast(w)
    return saturate(Mux(subtract, u - w, u + w), signed(fmt.acc_width))


def decode(m, u, y_prev, fmt, name="dec"):
    """:func:`~spikegate.golden.sigma_delta_fixed.decode_fx`: ``y = saturate(round_shift(KA
    y_prev, KA_F) + round_shift(KB u, KB_F + W_F - Y_F), Y_W)``."""
    decay = _named(m, round_shift(times(y_prev, fmt.ka), fmt.ka_frac), f"{name}_decay")
    spikes = _named(m, round_shift(times(u, fmt.kb), fmt.kb_frac + fmt.w_frac - fmt.y_frac),
                    f"{name}_in")
    return _named(m, saturate(decay + spikes, signed(fmt.y_width)), f"{name}_y")


def activate(m, y, b, fmt, next_fmt, name="act"):
    """:func:`~spikegate.golden.pdnn_fixed.activate_fx`: returns ``(z, act)``: ``z = y + b``
    exact; for a hidden layer ``act = saturate(round_shift(max(z, 0), Y_F - X_F'), X_W')``, for
    the last (``next_fmt`` None) ``act = z``."""
    z = _named(m, Value.cast(y) + b, f"{name}_z")
    if next_fmt is None:
        return z, z
    relu = Mux(z[-1], 0, z)
    act = saturate(round_shift(relu, fmt.y_frac - next_fmt.x_frac), signed(next_fmt.x_width))
    return z, _named(m, act, f"{name}_x")


def wrap_increment(counter, n):
    """``counter + 1``, wrapping to 0 after ``n - 1`` (an index over ``n`` things)."""
    return Mux(counter == n - 1, 0, counter + 1)
