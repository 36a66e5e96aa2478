"""Bit-accurate PD sigma-delta coding and the layer's accumulation: the hardware reference.

The float model is :mod:`spikegate.golden.sigma_delta`; this module fixes every width, rounding and
overflow policy. The RTL implements the same named steps, and tests compare them with
``np.array_equal``. All values are ``int64`` arrays holding two's-complement integers; a value with
``F`` fractional bits stands for ``integer / 2**F``. Shared primitives come from
:mod:`spikegate.golden.fixed` (``round_shift`` rounds half up: ``(v + 2**(n-1)) >> n`` with a
flooring shift; ``saturate`` clips).

One time step of one layer, per unit (vectorized over the layer):

============================  =====================================================================
step (function)               arithmetic
============================  =====================================================================
:func:`encode_fx`             ``d = (x << KA_F) - KA * x_prev`` (exact);
                              ``a = saturate(round_shift(d * G, X_F + KA_F + G_F - P_F), A_W)``
:func:`quantize_fx`           ``p = phi + a`` (exact); ``s = saturate(round_shift(p, P_F), S_W)``;
                              ``phi = saturate(p - (s << P_F), PHI_W)``
:func:`accumulate_fx`         ``u = sum_i s_i * w[i]``: for ``i`` ascending, ``|s_i|`` times
                              ``u = saturate(u + sign(s_i) * w[i], ACC_W)``
:func:`decode_fx`             ``y = saturate(round_shift(KA * y_prev, KA_F)
                              + round_shift(KB * u, KB_F + W_F - Y_F), Y_W)``
============================  =====================================================================

Constants: ``KA / 2**KA_F = k_alpha`` (decoder decay; ``0 <= KA <= 2**KA_F``), ``G / 2**G_F = 1 / k_beta``
(encoder gain: no divider in hardware), ``KB / 2**KB_F = k_beta`` (decoder spike size). The gains are
quantized once from the trained (adapted) float values by :meth:`SDFixedFormat.from_float`.

Error bounds against the float model run with the *same quantized constants* (tests check them):

* encoder: ``|a / 2**P_F - (x - k_alpha x_prev) / k_beta| <= 2**-(P_F + 1)`` (one rounding), unless
  ``a`` saturates;
* quantizer: exact (its inputs are dyadic, so the float quantizer sees the same numbers);
* accumulation: exact unless a partial sum saturates;
* decoder: ``<= 2**-Y_F`` per step (two roundings), so ``<= 2**-Y_F / (1 - k_alpha)`` over any
  number of steps from the same start, unless ``y`` saturates.

Overflow: every register saturates (never wraps). When the spike count ``s`` saturates at ``S_W``
bits the excess stays in ``phi`` (up to ``PHI_W`` bits) and is sent on later steps; the
accumulator saturates after each row addition, so the event order (ascending input index, repeats
together) is part of the specification.
"""

from dataclasses import dataclass

import numpy as np

from .fixed import round_shift, saturate, signed_range

__all__ = ["SDFixedFormat", "to_fixed", "encode_fx", "quantize_fx", "accumulate_fx",
           "decode_fx", "layer_step_fx"]


def to_fixed(v, frac, width):
    """``saturate(floor(v * 2**frac + 1/2), width)``: a float to a ``width``-bit value with ``frac`` fractional bits."""
    return saturate(np.floor(np.asarray(v, dtype=np.float64) * (1 << frac) + 0.5).astype(np.int64), width)


@dataclass(frozen=True)
class SDFixedFormat:
    """Widths and constants of the fixed-point PD coder and layer.

    Parameters
    ----------
    ka, ka_frac : int
        ``k_alpha = ka / 2**ka_frac`` (unsigned, ``0 <= ka <= 2**ka_frac``).
    gain, gain_frac : int
        Encoder gain ``1 / k_beta = gain / 2**gain_frac`` (unsigned, ``gain >= 1``).
    kb, kb_frac : int
        Decoder spike size ``k_beta = kb / 2**kb_frac`` (unsigned, ``kb >= 1``).
    x_width, x_frac : int
        Signed input activations ``x``.
    phi_frac : int
        Fractional bits of ``a`` and ``phi`` (the quantizer works in units of one spike).
    a_width : int
        Signed width of ``a`` (saturated).
    spike_width : int
        Signed width of a spike count ``s`` (saturated).
    phi_width : int
        Signed width of the residual ``phi`` (saturated; ``phi_frac + 1`` bits suffice while ``s``
        does not saturate).
    w_width, w_frac : int
        Signed weights.
    acc_width : int
        Signed accumulator width (saturates after each row addition).
    y_width, y_frac : int
        Signed decoder output.
    """
    ka: int
    ka_frac: int
    gain: int
    gain_frac: int
    kb: int
    kb_frac: int
    x_width: int = 16
    x_frac: int = 8
    phi_frac: int = 8
    a_width: int = 20
    spike_width: int = 8
    phi_width: int = 20
    w_width: int = 8
    w_frac: int = 6
    acc_width: int = 24
    y_width: int = 24
    y_frac: int = 12

    def __post_init__(self):
        for name in ("ka_frac", "gain_frac", "kb_frac", "x_frac", "phi_frac", "w_frac", "y_frac"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 0 or v > 30:
                raise ValueError(f"{name} must be an integer in [0, 30], not {v!r}")
        for name in ("x_width", "a_width", "spike_width", "phi_width", "w_width", "acc_width", "y_width"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 2 or v > 40:
                raise ValueError(f"{name} must be an integer in [2, 40], not {v!r}")
        if not 0 <= self.ka <= (1 << self.ka_frac):
            raise ValueError(f"ka must be in [0, 2**ka_frac = {1 << self.ka_frac}], not {self.ka!r}")
        if self.gain < 1 or self.kb < 1:
            raise ValueError(f"gain and kb must be >= 1, not gain={self.gain!r}, kb={self.kb!r}")
        if self.phi_width < self.phi_frac + 1:
            raise ValueError(f"phi_width must be >= phi_frac + 1 = {self.phi_frac + 1}, not {self.phi_width}")
        if self.kb_frac + self.w_frac < self.y_frac:
            raise ValueError(f"need kb_frac + w_frac >= y_frac, not {self.kb_frac} + {self.w_frac} < {self.y_frac}")

    @classmethod
    def from_float(cls, k_alpha, k_beta, *, ka_frac=10, gain_frac=8, kb_frac=12, **widths):
        """Quantize float gains (round half up): ``ka = round(k_alpha 2**ka_frac)``, ... ."""
        if not 0.0 <= k_alpha <= 1.0 or k_beta <= 0.0:
            raise ValueError(f"need 0 <= k_alpha <= 1 and k_beta > 0, not {k_alpha!r}, {k_beta!r}")
        return cls(ka=int(np.floor(k_alpha * (1 << ka_frac) + 0.5)), ka_frac=ka_frac,
                   gain=max(1, int(np.floor((1 << gain_frac) / k_beta + 0.5))), gain_frac=gain_frac,
                   kb=max(1, int(np.floor(k_beta * (1 << kb_frac) + 0.5))), kb_frac=kb_frac, **widths)

    # the float values of the quantized constants, for the float reference
    @property
    def k_alpha(self):
        return self.ka / (1 << self.ka_frac)

    @property
    def enc_gain(self):
        return self.gain / (1 << self.gain_frac)

    @property
    def k_beta(self):
        return self.kb / (1 << self.kb_frac)


def _shift(v, n):
    """Round-half-up right shift by ``n``; a left shift (exact) when ``n < 0``."""
    return round_shift(v, n) if n >= 0 else np.asarray(v, dtype=np.int64) << (-n)


def encode_fx(x, x_prev, fmt):
    """PD encoder: ``a`` (``A_W`` bits signed, ``P_F`` fractional) from ``x``, ``x_prev`` (``X_W``, ``X_F``).

    ``d = (x << KA_F) - KA * x_prev`` is exact (``X_W + KA_F + 1`` bits); ``d * G`` is exact
    (``+ G_F + ceil(log2 G)`` bits); one round-half-up shift to ``P_F`` fractional bits; saturate.
    """
    x = np.asarray(x, dtype=np.int64)
    x_prev = np.asarray(x_prev, dtype=np.int64)
    d = (x << fmt.ka_frac) - fmt.ka * x_prev
    a = _shift(d * fmt.gain, fmt.x_frac + fmt.ka_frac + fmt.gain_frac - fmt.phi_frac)
    return saturate(a, fmt.a_width)


def quantize_fx(a, phi, fmt):
    """Sigma-delta quantizer: returns ``(s, phi_new)``.

    ``p = phi + a`` exact; ``s = round_shift(p, P_F)`` (round half up, like the float model), saturated
    to ``S_W`` bits; ``phi_new = p - (s << P_F)`` saturated to ``PHI_W`` bits (it lies in
    ``[-2**(P_F-1), 2**(P_F-1))`` unless ``s`` saturated).
    """
    p = np.asarray(phi, dtype=np.int64) + np.asarray(a, dtype=np.int64)
    s = saturate(round_shift(p, fmt.phi_frac), fmt.spike_width)
    return s, saturate(p - (s << fmt.phi_frac), fmt.phi_width)


def accumulate_fx(s, w, fmt):
    """Row additions: ``u`` (``ACC_W`` bits, ``W_F`` fractional) ``= sum_i s_i w[i]``, saturating.

    Events go in ascending input index; an input with count ``s_i`` adds ``sign(s_i) * w[i]``
    ``|s_i|`` times in a row; the accumulator saturates after every addition. Returns
    ``(u, n_row_additions)``. Vectorized: the running sums are computed with one ``cumsum`` over
    the events, and only columns whose running sum leaves the range are redone one event at a time.
    """
    s = np.asarray(s, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    lo, hi = signed_range(fmt.acc_width)
    idx = np.flatnonzero(s)
    counts = np.abs(s[idx])
    n_events = int(counts.sum())
    if n_events == 0:
        return np.zeros(w.shape[1], dtype=np.int64), 0
    rows = np.repeat(idx, counts)
    steps = np.sign(s[rows])[:, None] * w[rows]            # (n_events, n_out)
    partial = np.cumsum(steps, axis=0)
    u = partial[-1].copy()
    bad = np.flatnonzero((partial.min(axis=0) < lo) | (partial.max(axis=0) > hi))
    if bad.size:
        acc = np.zeros(bad.size, dtype=np.int64)
        for k in range(n_events):
            acc = np.clip(acc + steps[k, bad], lo, hi)
        u[bad] = acc
    return u, n_events


def decode_fx(u, y_prev, fmt):
    """PD decoder: ``y`` (``Y_W`` bits, ``Y_F`` fractional) ``= KA y_prev / 2**KA_F + KB u / 2**(KB_F + W_F - Y_F)``.

    Each product is exact and rounded half up once to ``Y_F`` fractional bits; the sum saturates.
    """
    y_prev = np.asarray(y_prev, dtype=np.int64)
    u = np.asarray(u, dtype=np.int64)
    y = round_shift(fmt.ka * y_prev, fmt.ka_frac) + round_shift(fmt.kb * u, fmt.kb_frac + fmt.w_frac - fmt.y_frac)
    return saturate(y, fmt.y_width)


def layer_step_fx(x, state, w, fmt):
    """One step of a fixed-point PD layer (without bias and nonlinearity).

    ``state`` is a dict with ``x_prev`` and ``phi`` (``n_in``) and ``y`` (``n_out``), updated in
    place. Returns ``(y, s, n_row_additions)``.
    """
    a = encode_fx(x, state["x_prev"], fmt)
    s, state["phi"] = quantize_fx(a, state["phi"], fmt)
    state["x_prev"] = saturate(x, fmt.x_width)
    u, n = accumulate_fx(s, w, fmt)
    state["y"] = decode_fx(u, state["y"], fmt)
    return state["y"], s, n
