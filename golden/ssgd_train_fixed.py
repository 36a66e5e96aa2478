"""Bit-exact fixed-point training of a 64-H-10 LIF network by sparse spiking gradient descent.

The specification that issue 21's hardware matches bit for bit, image after image (batch 1:
the chip trains on-chip, one image at a time). Integer adds, shifts, small tables, one
sequential division per class and image, and multiplies of at most 16 x 16 bits (one
UP5K MAC16). The float model beside it (:func:`float_step`) runs the same algorithm without
rounding; :mod:`spikegate.golden.ssgd` is the paper's batched float model this one follows.

The network and the algorithm
-----------------------------
Inputs: one spike per pixel brighter than ``encode_threshold`` (0.2) at step
``floor(tau_eff ln(x / (x - encode_threshold)))`` (``tau_eff`` = 10 steps;
:func:`spikegate.golden.ssgd.encode_spike_times`), a raster ``x[t, i]``, ``t = 0 .. T-1``
(``T`` = 32).

1. **Hidden LIF layer** (``H`` neurons), exactly :func:`spikegate.golden.ssgd_fixed.
   lif_forward_fixed`: ``v[0] = 0``, ``s[0] = 0``,
   ``v[t+1] = sat16(decay(v[t]) + sat24(x[t] @ W1) - s[t] V_th)``, ``s[t+1] = v[t+1] > V_th``.
2. **Active events**: every ``(t, j)``, ``t >= 1``, with ``|v[t, j] - V_th| < b_th_q``
   becomes an event ``(t, j, g)``, ``g = LUT[|v - V_th|]`` (the surrogate table of
   :func:`spikegate.golden.ssgd_fixed.surrogate_lut`), in the order ``t`` ascending, then
   ``j`` ascending (the order the forward emits them).
3. **Input trace** (per input, kept for the backward): ``tr[0] = 0``,
   ``tr[t+1] = round_shift(tr[t] beta_q, 8) + (x[t] << trace_frac)``. Each input of the
   encoding spikes at most once, so ``tr[t, i] = P[t - 1 - t_i]`` for ``t > t_i`` (else 0),
   with ``P`` the same recursion started from ``1 << trace_frac``: the hardware may store
   the 64 spike times and read a ``T``-entry table instead of storing ``T x 64`` traces.
4. **Readout** (10 leaky integrators, no threshold):
   ``o[0] = 0``, ``o[t+1] = sat16(decay_r(o[t]) + sat24(s[t] @ W2))``; the logit is the time
   sum ``z = sum_{t<T} o[t]`` (24 bits, cannot overflow for ``T <= 256``). Float
   counterpart: ``O[t+1] = beta_r O[t] + S[t] @ W2`` (the paper's readout without its
   ``(1 - beta_r)`` factor) and ``z = sum_t O[t]`` instead of ``max_t O[t]``: the sum's
   gradient is one kernel ``K[t]`` shared by all classes (below), no per-class peak time.
5. **Loss gradient** (cross-entropy of ``softmax(logit_scale z)``, ``z`` in units of
   ``V_th``): ``d_c = z_max - z_c``, ``k_c = round_shift(d_c, z_shift)``,
   ``e_c = EXP[k_c]`` (0 past the table), ``S = sum_c e_c``,
   ``p_c = floor((e_c << p_frac) / S)`` (one unsigned division per class: a sequential
   divider), ``dlog_c = p_c - (c == label) << p_frac``. ``EXP[k] = rint(2**p_frac
   exp(-k 2**z_shift 2**-frac_bits logit_scale))`` (float64, then round half even).
   Float counterpart: the exact softmax; the table's index rounds the logit difference to
   half a step (1/16 nat), so ``|p - p_float| <= 2**14 (e**(1/16) - 1) + 1`` LSB.
6. **Backward to the hidden spikes** through ``W2``: ``dz_c/d(s[t] @ W2)_c = K[t] =
   sum_{m=0}^{T-2-t} beta_r**m`` (table, ``K[T-1] = 0``), so the gradient at a hidden spike
   is ``K[t] u_j`` with ``u_j = sum_c W2[j, c] dlog_c``: once per image, ``H x 10``
   multiply-adds reading ``W2`` **by row** ``j`` (the forward's order: no transposition).
7. **Sparse backward**, per active event ``(t, j, g)``:
   ``ks = round_shift(K[t] g, ks_shift)``, ``delta = sat16(round_shift(ks u_j, d_shift))``
   (two multiplies), then for every input ``i``: ``G1[i, j] += tr[t, i] delta`` (64
   multiply-adds: **column** ``j`` of ``G1``). The reset is not differentiated and no
   gradient flows through time inside the neuron other than through the trace, exactly as
   the paper's (and :func:`spikegate.golden.ssgd.sparse_backward`'s) ``dW = sum_t
   trace[t]^T dV[t]``. There is no layer below the hidden layer (its input is the encoded
   image), so the gradient to the layer below is the step 6 one, readout to hidden.
8. **Readout gradient**: ``R_j = round_shift(sum_t K[t] s[t, j], r_shift)`` (accumulated in
   the forward, one add per hidden spike), ``G2[j, c] = R_j dlog_c`` (``H x 10`` products).
9. **Update** (plain SGD, shift learning rate), once per image after the backward:
   ``W1 = sat8(W1 - ((G1 + d1) >> lr1_shift))``, ``W2 = sat8(W2 - ((G2 + d2) >>
   lr2_shift))`` (``>>`` floors), with the **dither** ``d`` the bit reversal of the low 16
   bits of the image counter ``n`` (images trained since the weights were loaded, from 0),
   aligned to the shift (:func:`dither`): the same offset for every weight of one image,
   cycling through every multiple of ``2**(shift - 16)`` in ``[0, 2**shift)`` every 65536
   images, so the rounding is unbiased over the images (image 1's offset is exactly half:
   round half up). Without it (``dither_bits = 0``: round half up every time) the small
   updates of the wrong classes round to 0 while the label's large one survives, and
   ``W2`` drifts to the rails once the rates are halved (test accuracy 66 % after 20
   epochs). ``u`` is computed from the old ``W2`` before ``W2`` changes. The host halves
   the rates (shifts + 1) every 4 epochs.

All sums of step 7 and 8 are exact integers (no intermediate rounding), so their order does
not matter: the **dense** backward (every ``(t, j)`` with the surrogate computed for every
entry, matrix products, :func:`dense_backward_fixed`) equals the sparse one bit for bit when
``b_th_q`` exceeds every ``|v - V_th|``.

Number formats (defaults of :class:`TrainFormat` and ``FixedFormat()``)
------------------------------------------------------------------------
=====================  ==========================  ============================================
variable               format                      rounding / overflow
=====================  ==========================  ============================================
hidden ``v``, ``s``,   as :mod:`~spikegate.golden  as there: decay rounds half up, v
``W1``, decay, LUT     .ssgd_fixed` (v 16.8,       saturates to 16 bits, W 8 bits (frac 8:
                       W 8 bits frac 8, decay 8,   +-0.5 V_th), sum of a step's weights 24 bits
                       g unsigned 16, frac 15)
readout ``o``          signed ``o_bits`` = 16,     decay by ``beta_r_q`` rounds half up; sum of
                       frac 8                      a step's ``W2`` rows sat 24; result sat 16
``W2``                 signed 8, frac 8            saturated to 8 bits at every update
logit ``z``            signed ``z_bits`` = 24      exact sum of ``T`` values of ``o``: cannot
                                                   overflow for ``T <= 2**(z_bits - o_bits)``
trace ``tr``           unsigned ``trace_bits`` =   decay rounds half up; saturated (never for
                       9, ``trace_frac`` = 8       one spike per input: ``tr <= 1 << 8``)
softmax index ``k``    ``round_shift(z_max - z,    half up; ``k >= exp_len`` gives ``e = 0``
                       z_shift)``
``EXP``                unsigned ``p_frac + 1``,    ``exp_len`` = 64 entries, ``rint`` of the
                       frac ``p_frac`` = 14        float64 value, ``EXP[0] = 1 << p_frac``
                                                   (``z_shift`` = 9: index step 2 V_th,
                                                   ``logit_scale`` 1/16: 1/8 nat per step,
                                                   8 nats in all)
``S = sum e``          unsigned ``p_frac + 5``     exact (10 classes)
``p``                  unsigned ``p_frac + 1``     floor of the division (``p <= 1 << p_frac``)
``dlog``               signed 16, frac 14          exact, in ``[-2**14, 2**14]``
``K[t]``               unsigned ``k_bits`` = 12,   round-half-even of the exact rational from
                       ``k_frac`` = 8              ``beta_r_q``; saturated (``K <= 2731``)
``u = W2 dlog``        sum signed 8 + 16 + 4 bits  ``round_shift`` by ``u_shift`` = 8, then
                       -> ``u_bits`` = 16          saturated to 16 bits (never with 10
                                                   classes: ``|u| <= 2**14``)
``ks = K g``           12 x 16 bits -> unsigned    ``round_shift`` by ``ks_shift`` = 11, then
                       ``ks_bits`` = 16, frac      saturated (never: ``K g < 2**27``); frac
                       ``k_frac + g_frac - 11``    12, so the band's smallest ``g`` (78)
                                                   keeps 4 significant bits
``delta = ks u``       16 x 16 bits -> signed      ``round_shift`` by ``d_shift`` = 11, then
                       ``delta_bits`` = 16         **saturated** to 16 bits (about 1 % of the
                                                   events at the start of training)
``G1``                 signed ``grad_bits`` = 32   exact sum of 9 x 16-bit products over at
                                                   most ``T`` events per column; saturated at
                                                   the end (unreachable for ``T < 64``)
``R``                  unsigned 16                 exact sum of ``K`` over spikes,
                                                   ``round_shift`` by ``r_shift`` = 4, sat 16
``G2 = R dlog``        signed 32                   exact (16 x 16 bits)
update                 ``(G + d) >> lr_shift``     floor after the dither ``d`` (16-bit bit-
                                                   reversed image counter), ``W`` **saturated**
                                                   to 8 bits
=====================  ==========================  ============================================

Units and the float counterpart
-------------------------------
``G1`` is the float gradient ``dL/dW1`` (``W1`` and ``z`` in units of ``V_th``, ``L`` the
cross-entropy of ``softmax(logit_scale z)``, without the ``logit_scale`` factor of the
chain rule) times ``2**g1`` with ``g1 = trace_frac + k_frac + g_frac - ks_shift + 8 +
p_frac - u_shift - d_shift`` (23 with the defaults); ``G2`` the float ``dL/dW2`` times
``2**(k_frac - r_shift + p_frac)`` (``2**18``). The float learning rates equivalent to the
shifts are :meth:`TrainFormat.lr_float`: ``2**(g1 - lr1_shift - 8)`` and
``2**(18 - lr2_shift - 8)``.

What the hardware does, per image
---------------------------------
* Forward, per step ``t``: for each input spike ``i`` read **row** ``W1[i, :]`` (by
  source) into the ``H`` membranes; leak, threshold, reset; each neuron whose membrane is in
  the band emits an event ``(t, j, g)`` into an event memory (``ceil(log2 T) +
  ceil(log2 H) + 16`` bits each); each hidden spike ``j`` reads row ``W2[j, :]`` into the
  10 readout membranes and adds ``K[t]`` to ``R_j``; ``z += o``. The input spike times
  (or the trace per step) are kept.
* Loss: 10 table reads, one sum, 10 divisions, 10 subtractions.
* ``u``: ``H`` rows of ``W2`` (10 multiply-adds each).
* Backward, per active event ``(t, j, g)``: 2 multiplies (``ks``, ``delta``), then the
  **column** ``j`` of ``G1``: 64 multiply-adds ``tr[t, i] delta`` (inputs whose trace is 0
  may be skipped: they add 0). ``G1`` is a ``64 x H`` array of 32-bit accumulators; since the
  column ``j`` only receives the events of neuron ``j``, walking the events neuron by
  neuron needs a single 64-entry column accumulator instead, and neuron ``j``'s column of
  ``W1`` can be updated as soon as its events are done.
* Update: ``W1[:, j]`` is a column, the forward reads rows. The organisation this model
  assumes is the **strided walk**: ``W1`` stored row-major by input (the forward's rows),
  the update reads and writes ``W1[i, j]`` for ``i = 0 .. 63`` at addresses ``i H + j``:
  64 read-modify-writes per neuron that had at least one event (``64 x H`` per image at
  most, ``64 x n_active_neurons`` in practice), one word at a time; no second copy. (A
  transposed second copy would make the column one burst but double the weight memory
  and need both copies written on every update.) ``W2``'s update is per row ``j``,
  in the forward's order. A zero ``G`` leaves its weight unchanged (``round_shift(0) =
  0``), so columns of neurons without events, inputs whose trace was 0 at every event of
  the column and rows ``W2[j, :]`` of silent neurons (``R_j = 0``) need no write. Work per
  image, in memory words: forward one ``W1`` row per input spike (at most 64), one ``W2``
  row per hidden spike and ``(T-1) H`` membrane steps; backward ``n_events x (64 + 2)``
  multiply-adds; update at most ``64`` read-modify-writes per column with events and
  ``10 H``. The dense backward on the same datapath would take ``(T-1) H x (64 + 2)``.
  Events are emitted in time order; walking them neuron by neuron (for the single column
  accumulator) needs them grouped by neuron (e.g. a per-neuron count and a second pass, or
  one list per neuron), otherwise the full ``64 x H`` accumulator array serves time order.

Error against the float model
-----------------------------
Forward: as :mod:`~spikegate.golden.ssgd_fixed` states, the membrane stays within
``0.5 / (1 - beta_q / 256)`` LSB (5.3) of the float one while the spikes agree. A spike that
flips, or a membrane that crosses the band's edge, changes the gradient discontinuously, and
the surrogate is steep (``2 scale`` = 200 per ``V_th``: 0.78 per LSB near threshold), so the
fixed and float gradients are compared from the *same* forward (:func:`float_step` with
``fixed_forward``): there ``p`` errs by the softmax index (above), ``u``, ``ks``, ``delta``
by their roundings, and ``G1``, ``G2`` by 0.5-2 % of their largest entry (cosine >= 0.9999;
the tests require 5 % and 0.999). ``delta``'s saturation is part of both models (a clip of
about 1 % of the events at the start of training; without it in the float model, ``G1``
differed by up to 60 %). Over a few training steps, each with its own forward, ``W2``'s
changes stay aligned (cosine >= 0.95) and ``W1``'s, a few LSB over five images, >= 0.6.

Training (measured; ``spikegate train ssgd-fixed``)
---------------------------------------------------
Digits, spikegate's split: the first 1150 training images train, the last 287 of the
training set are the validation set every choice was made on (T = 32, ``tau_eff`` 10,
``H`` = 64, learning-rate shifts 21 / 17 halved every 4 epochs, 20 epochs, softmax
``logit_scale`` 1/16 against 1/8, init std ``3 / sqrt(64)`` against ``2 / sqrt(64)``, the
dither against round half up), the 360 test images are only reported. From random weights,
seeds 0, 1, 2: test 95.0, 93.6, 92.8 % (validation 93.7, 93.4, 94.1 %); the float
counterpart from the same weights and order 92.2, 93.6, 92.8 %. Hidden layer: 2.0-2.2 % of
the ``(T-1) H`` entries active, 40-43 events per image against 1984 entries (1 / 47-49).
``H`` = 32 (seed 0): test 90.6 %, validation 88.9 %, 24 events per image against 992.
About 5 s per epoch (4 ms per image; float 1.5-3 s) on a 2-core machine at load 14.
"""

import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property, lru_cache

import numpy as np

from .fixed import round_shift, saturate, signed_range
from .ssgd import encode_spike_times
from .ssgd_fixed import FixedFormat, quantize_b_th, quantize_decay, quantize_weights

__all__ = [
    "TrainFormat", "Tables", "make_tables", "surrogate_table", "kernel_table", "exp_table",
    "encode", "input_raster", "trace_table", "trace_from_times", "input_trace_fixed",
    "hidden_forward", "readout_forward_fixed", "ActiveEvents", "active_events",
    "ForwardFixed", "forward_fixed", "softmax_grad_fixed", "readout_backward_fixed",
    "event_delta", "FixedGrads", "sparse_backward_fixed", "dense_backward_fixed",
    "dither", "sgd_update", "train_step", "init_weights", "predict_fixed", "accuracy_fixed",
    "train_fixed", "float_step", "train_float", "predict_float",
]


def _int_param(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], not {value!r}")


def _pos_float(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, not {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be finite and > 0, not {value!r}")


@dataclass(frozen=True)
class TrainFormat:
    """Every constant and width of the fixed-point training (see the module docstring).

    Parameters
    ----------
    lif : FixedFormat
        Hidden layer formats (membrane, weights, decay, surrogate table output).
    n_steps : int
        Time steps ``T`` per image.
    tau_mem, tau_readout : float
        Time constants in steps; ``beta_q = round(exp(-1/tau) 2**decay_bits)``.
    b_th : float
        Active band half-width in units of ``V_th`` (``b_th_q = round(b_th 2**frac_bits)``).
    surrogate_scale : float
        ``scale`` of the surrogate ``1 / (scale |v - V_th| + 1)**2``.
    tau_eff, encode_threshold : float
        Input encoding (:func:`spikegate.golden.ssgd.encode_spike_times`).
    logit_scale : float
        The softmax sees ``logit_scale z`` (``z`` in units of ``V_th``).
    o_bits, z_bits : int
        Readout membrane and logit widths (signed; fraction ``lif.frac_bits``).
    trace_bits, trace_frac : int
        Input trace, unsigned.
    z_shift, exp_len, p_frac : int
        Softmax index shift, ``EXP`` table length, fraction of ``p`` and ``dlog``.
    k_bits, k_frac : int
        Readout kernel table ``K``, unsigned.
    u_shift, u_bits, ks_shift, ks_bits, d_shift, delta_bits, r_shift, r_bits, grad_bits : int
        Backward shifts and widths.
    lr1_shift, lr2_shift : int
        Learning-rate shifts of ``W1`` and ``W2``.
    dither_bits : int
        Width of the update's rounding dither (:func:`dither`; 0: round half up).
    """
    lif: FixedFormat = field(default_factory=FixedFormat)
    n_steps: int = 32
    tau_mem: float = 10.0
    tau_readout: float = 10.0
    b_th: float = 0.2
    surrogate_scale: float = 100.0
    tau_eff: float = 10.0
    encode_threshold: float = 0.2
    logit_scale: float = 0.0625
    o_bits: int = 16
    z_bits: int = 24
    trace_bits: int = 9
    trace_frac: int = 8
    z_shift: int = 9
    exp_len: int = 64
    p_frac: int = 14
    k_bits: int = 12
    k_frac: int = 8
    u_shift: int = 8
    u_bits: int = 16
    ks_shift: int = 11
    ks_bits: int = 16
    d_shift: int = 11
    delta_bits: int = 16
    r_shift: int = 4
    r_bits: int = 16
    grad_bits: int = 32
    lr1_shift: int = 21
    lr2_shift: int = 17
    dither_bits: int = 16

    def __post_init__(self):
        if not isinstance(self.lif, FixedFormat):
            raise TypeError(f"lif must be a FixedFormat, not {self.lif!r}")
        _int_param("n_steps", self.n_steps, 2, 1 << 16)
        for name in ("tau_mem", "tau_readout", "b_th", "surrogate_scale", "tau_eff",
                     "logit_scale"):
            _pos_float(name, getattr(self, name))
        if isinstance(self.encode_threshold, bool) or not 0 <= self.encode_threshold < 1:
            raise ValueError(f"encode_threshold must lie in [0, 1), not "
                             f"{self.encode_threshold!r}")
        _int_param("o_bits", self.o_bits, self.lif.frac_bits + 2, 40)
        _int_param("z_bits", self.z_bits, self.o_bits, 56)
        _int_param("trace_bits", self.trace_bits, 2, 32)
        _int_param("trace_frac", self.trace_frac, 0, self.trace_bits - 1)
        _int_param("z_shift", self.z_shift, 0, 40)
        _int_param("exp_len", self.exp_len, 1, 1 << 16)
        _int_param("p_frac", self.p_frac, 1, 30)
        _int_param("k_bits", self.k_bits, 2, 32)
        _int_param("k_frac", self.k_frac, 0, self.k_bits - 1)
        for name in ("u_shift", "ks_shift", "d_shift", "r_shift", "lr1_shift", "lr2_shift"):
            _int_param(name, getattr(self, name), 0, 48)
        _int_param("dither_bits", self.dither_bits, 0, 32)
        for name in ("u_bits", "ks_bits", "delta_bits", "r_bits"):
            _int_param(name, getattr(self, name), 2, 32)
        _int_param("grad_bits", self.grad_bits, 2, 62)
        if self.n_steps > 1 << (self.z_bits - self.o_bits):
            raise ValueError(f"n_steps {self.n_steps} can overflow the {self.z_bits}-bit logit "
                             f"sum of {self.o_bits}-bit membranes: at most "
                             f"{1 << (self.z_bits - self.o_bits)}")

    @cached_property
    def beta_q(self):
        return quantize_decay(math.exp(-1.0 / self.tau_mem), self.lif)

    @cached_property
    def beta_r_q(self):
        return quantize_decay(math.exp(-1.0 / self.tau_readout), self.lif)

    @cached_property
    def b_th_q(self):
        return quantize_b_th(self.b_th, self.lif)

    def g1_exponent(self):
        """``G1 = dL/dW1 * 2**g1_exponent()`` (see the module docstring)."""
        return (self.trace_frac + self.ks_frac() + self.lif.frac_bits + self.p_frac
                - self.u_shift - self.d_shift)

    def ks_frac(self):
        """Fractional bits of ``ks = K g``: ``k_frac + g_frac - ks_shift``."""
        return self.k_frac + self.lif.g_frac - self.ks_shift

    def g2_exponent(self):
        """``G2 = dL/dW2 * 2**g2_exponent()``."""
        return self.k_frac - self.r_shift + self.p_frac

    def lr_float(self):
        """The float learning rates ``(lr1, lr2)`` the two shifts stand for (weights in
        units of ``V_th``)."""
        f = self.lif.frac_bits
        return (2.0 ** (self.g1_exponent() - self.lr1_shift - f),
                2.0 ** (self.g2_exponent() - self.lr2_shift - f))

    def with_(self, **changes):
        from dataclasses import replace
        return replace(self, **changes)


# ----------------------------------------------------------------------------- tables

def surrogate_table(fmt, length, scale=100.0):
    """``LUT[d] = round_half_even(2**g_frac / (scale d / 2**frac_bits + 1)**2)``,
    ``d = 0 .. length-1``, saturated to ``g_bits`` (int64): the same numbers as
    :func:`spikegate.golden.ssgd_fixed.surrogate_lut`, computed with integers (fast for long
    tables, e.g. the dense reference's)."""
    _int_param("length", length, 1, 1 << 24)
    _pos_float("scale", scale)
    fr = Fraction(scale)
    a, b = fr.numerator, fr.denominator
    base = b << fmt.lif.frac_bits if isinstance(fmt, TrainFormat) else b << fmt.frac_bits
    lif = fmt.lif if isinstance(fmt, TrainFormat) else fmt
    num = (1 << lif.g_frac) * base * base
    d = np.arange(length, dtype=object)
    den = (a * d + base) ** 2
    q = num // den
    r2 = 2 * (num - q * den)
    up = (r2 > den) | ((r2 == den) & (q % 2 == 1))
    vals = np.array([int(x) for x in (q + up)], dtype=np.int64)
    return saturate(vals, lif.g_bits, signed=False)


def kernel_table(fmt):
    """``K[t] = round_half_even(2**k_frac sum_{m=0}^{T-2-t} (beta_r_q / 2**decay_bits)**m)``
    for ``t < T-1``, ``K[T-1] = 0``; saturated to unsigned ``k_bits`` (int64, ``T``)."""
    br = Fraction(fmt.beta_r_q, 1 << fmt.lif.decay_bits)
    T = fmt.n_steps
    out = np.zeros(T, dtype=np.int64)
    acc = Fraction(0)
    for t in range(T - 2, -1, -1):
        acc = acc * br + 1
        out[t] = round(acc * (1 << fmt.k_frac))
    return saturate(out, fmt.k_bits, signed=False)


def exp_table(fmt):
    """``EXP[k] = round_half_even(2**p_frac exp(-k 2**(z_shift - frac_bits) logit_scale))``,
    ``k = 0 .. exp_len-1`` (int64)."""
    step = 2.0 ** (fmt.z_shift - fmt.lif.frac_bits) * fmt.logit_scale
    k = np.arange(fmt.exp_len, dtype=np.float64)
    return np.rint(np.exp(-k * step) * (1 << fmt.p_frac)).astype(np.int64)


@dataclass(frozen=True)
class Tables:
    """The ROMs of the training: surrogate ``lut`` (``b_th_q`` entries), kernel ``K``
    (``T``), ``exp`` (``exp_len``), and the quantised decays."""
    lut: np.ndarray
    K: np.ndarray
    exp: np.ndarray
    beta_q: int
    beta_r_q: int


def make_tables(fmt):
    """The :class:`Tables` of a :class:`TrainFormat`."""
    if not isinstance(fmt, TrainFormat):
        raise TypeError(f"fmt must be a TrainFormat, not {fmt!r}")
    return Tables(surrogate_table(fmt, fmt.b_th_q, fmt.surrogate_scale), kernel_table(fmt),
                  exp_table(fmt), fmt.beta_q, fmt.beta_r_q)


# ----------------------------------------------------------------------------- forward

def encode(pixels, fmt):
    """Pixels in [0, 1] ``(B, n_in)`` to spike steps (``n_steps`` = no spike)."""
    return encode_spike_times(pixels, fmt.n_steps, fmt.tau_eff, fmt.encode_threshold)


def input_raster(times, fmt):
    """Spike steps ``(B, n_in)`` to a bool raster ``(T, B, n_in)``."""
    times = np.asarray(times)
    if times.ndim != 2 or not np.issubdtype(times.dtype, np.integer):
        raise ValueError(f"times must be a 2-D integer array (samples, inputs), not "
                         f"{times.dtype} of shape {times.shape}")
    T = fmt.n_steps
    if times.size and (times.min() < 0 or times.max() > T):
        raise ValueError(f"spike steps must lie in [0, {T}], not [{times.min()}, {times.max()}]")
    out = np.zeros((T + 1,) + times.shape, dtype=bool)
    b, i = np.indices(times.shape, sparse=True)
    out[times, b, i] = True
    return out[:T]


def _half(bits):
    """The rounding offset of every decay, ``2**(bits - 1)``: round half up."""
    return 1 << (bits - 1)


def _decay(x, beta_q, bits):
    return (x * beta_q + _half(bits)) >> bits


def _clip_into(a, lo, hi, out):
    """``out = clip(a, lo, hi)`` (``np.clip`` costs ~20 us per call on small arrays)."""
    np.minimum(a, hi, out=out)
    np.maximum(out, lo, out=out)


def trace_table(fmt):
    """``P[k]``, ``k = 0 .. T-1``: the trace ``k`` steps after a lone spike,
    ``P[0] = 1 << trace_frac``, ``P[k+1] = round_shift(P[k] beta_q, decay_bits)`` (int64)."""
    return _trace_table(fmt).copy()


@lru_cache(maxsize=16)
def _trace_table(fmt):
    P = np.zeros(fmt.n_steps, dtype=np.int64)
    P[0] = min(1 << fmt.trace_frac, (1 << fmt.trace_bits) - 1)
    for k in range(fmt.n_steps - 1):
        P[k + 1] = _decay(P[k], fmt.beta_q, fmt.lif.decay_bits)
    return P


def trace_from_times(times, fmt):
    """The input trace of one spike per input at ``times`` ``(B, n_in)`` (``n_steps`` = none):
    ``tr[t, b, i] = P[t - 1 - times[b, i]]`` for ``t > times[b, i]``, else 0; equal to
    :func:`input_trace_fixed` of the raster (each input spikes at most once)."""
    times = np.asarray(times, dtype=np.int64)
    P = _trace_table(fmt)
    k = np.arange(fmt.n_steps)[:, None, None] - 1 - times[None]
    return np.where(k >= 0, P[np.clip(k, 0, fmt.n_steps - 1)], 0)


def input_trace_fixed(x, fmt):
    """The input trace ``(T, B, n_in)`` int64 of a raster ``x``: ``tr[0] = 0``,
    ``tr[t+1] = sat(round_shift(tr[t] beta_q, decay_bits) + (x[t] << trace_frac))``."""
    x = np.asarray(x)
    T = x.shape[0]
    tr = np.zeros(x.shape, dtype=np.int64)
    one = 1 << fmt.trace_frac
    hi = (1 << fmt.trace_bits) - 1
    bq, db = fmt.beta_q, fmt.lif.decay_bits
    for t in range(T - 1):
        nxt = _decay(tr[t], bq, db) + x[t].astype(np.int64) * one
        np.minimum(nxt, hi, out=tr[t + 1])
    return tr


def _check_weights(w, shape, bits, name):
    w = np.asarray(w)
    if not np.issubdtype(w.dtype, np.integer):
        raise TypeError(f"{name} must be integers, not {w.dtype}")
    if w.shape != shape:
        raise ValueError(f"{name} has shape {w.shape}, expected {shape}")
    lo, hi = signed_range(bits)
    if w.size and (w.min() < lo or w.max() > hi):
        raise ValueError(f"{name} exceeds the signed {bits}-bit range [{lo}, {hi}]: "
                         f"[{w.min()}, {w.max()}]")
    return w.astype(np.int64)


def hidden_forward(x, w1, fmt):
    """The hidden LIF layer over ``T`` steps: ``(v, s)``, ``(T, B, H)``; bit-identical to
    :func:`spikegate.golden.ssgd_fixed.lif_forward_fixed` (the synaptic sums of all steps
    formed first)."""
    x = np.asarray(x)
    T, B, n_in = x.shape
    H = w1.shape[1]
    lif = fmt.lif
    alo, ahi = signed_range(lif.acc_bits)
    syn = x[:T - 1].reshape(-1, n_in).astype(np.int64) @ w1
    if syn.size and (syn.min() < alo or syn.max() > ahi):
        np.clip(syn, alo, ahi, out=syn)
    syn = syn.reshape(T - 1, B, H)
    th = 1 << lif.frac_bits
    # Without the saturation first: the values are the same up to the first step that
    # would saturate, so if none does, that is the answer (one NumPy call fewer per step).
    for clip in (False, True):
        v, s = _lif_scan(syn, th, fmt.beta_q, lif.decay_bits, lif.v_bits, clip)
        lo, hi = signed_range(lif.v_bits)
        if clip or (v.min() >= lo and v.max() <= hi):
            return v, s


def _lif_scan(syn, th, bq, db, bits, clip):
    T1, B, H = syn.shape
    v = np.zeros((T1 + 1, B, H), dtype=np.int64)
    s = np.zeros((T1 + 1, B, H), dtype=bool)
    lo, hi = signed_range(bits)
    half = _half(db)
    for t in range(T1):                          # in place: 6-8 NumPy calls per step
        nv = v[t + 1]
        np.multiply(v[t], bq, out=nv)
        nv += half
        nv >>= db
        nv += syn[t]
        np.subtract(nv, th, out=nv, where=s[t])
        if clip:
            _clip_into(nv, lo, hi, nv)
        np.greater(nv, th, out=s[t + 1])
    return v, s


def readout_forward_fixed(s, w2, fmt):
    """Readout membranes ``o`` ``(T, B, C)`` and logits ``z = sum_t o[t]`` ``(B, C)``."""
    T, B, H = s.shape
    C = w2.shape[1]
    lo, hi = signed_range(fmt.o_bits)
    alo, ahi = signed_range(fmt.lif.acc_bits)
    h = s[:T - 1].reshape(-1, H).astype(np.int64) @ w2
    if h.size and (h.min() < alo or h.max() > ahi):
        np.clip(h, alo, ahi, out=h)
    h = h.reshape(T - 1, B, C)
    bq, db = fmt.beta_r_q, fmt.lif.decay_bits
    half = _half(db)
    for clip in (False, True):                   # as hidden_forward
        o = np.zeros((T, B, C), dtype=np.int64)
        for t in range(T - 1):
            no = o[t + 1]
            np.multiply(o[t], bq, out=no)
            no += half
            no >>= db
            no += h[t]
            if clip:
                _clip_into(no, lo, hi, no)
        if clip or (o.min() >= lo and o.max() <= hi):
            return o, o.sum(axis=0)


@dataclass
class ActiveEvents:
    """Active events in the hardware's order (``t``, then sample ``b``, then neuron ``j``).

    Members: ``t``, ``b``, ``j`` (int64), ``g`` (surrogate table value, int64).
    """
    t: np.ndarray
    b: np.ndarray
    j: np.ndarray
    g: np.ndarray

    def __len__(self):
        return len(self.t)


def active_events(v, lut, fmt):
    """The events ``(t, b, j, LUT[|v - V_th|])`` of every entry with ``|v - V_th| <
    len(lut)``, step 0 excluded (it holds the constant initial state)."""
    v = np.asarray(v)
    T, B, H = v.shape
    d = np.abs(v[1:] - (1 << fmt.lif.frac_bits))
    flat = np.flatnonzero(d < len(lut))
    dd = d.reshape(-1)[flat]
    t, rem = np.divmod(flat, B * H)
    b, j = np.divmod(rem, H)
    return ActiveEvents(t + 1, b, j, np.asarray(lut)[dd])


@dataclass
class ForwardFixed:
    """What the forward keeps: raster ``x``, trace ``tr``, hidden ``v``, ``s``, readout
    ``o``, logits ``z``, the active ``events`` and ``R`` (``(B, H)``, step 8)."""
    x: np.ndarray
    tr: np.ndarray
    v: np.ndarray
    s: np.ndarray
    o: np.ndarray
    z: np.ndarray
    events: ActiveEvents
    R: np.ndarray


def _raster(inputs, fmt):
    a = np.asarray(inputs)
    if a.ndim == 2:
        return input_raster(a, fmt)
    if a.ndim != 3 or a.shape[0] != fmt.n_steps:
        raise ValueError(f"inputs must be spike steps (B, n_in) or a raster ({fmt.n_steps}, "
                         f"B, n_in), not shape {a.shape}")
    if a.dtype != np.bool_:
        if np.any((a != 0) & (a != 1)):
            raise ValueError("raster entries must be 0 or 1")
        a = a.astype(bool)
    return a


def forward_fixed(params, inputs, fmt, tables=None, keep=True):
    """Run the network on spike steps ``(B, n_in)`` (or a raster); ``params = (W1, W2)``
    int (8-bit). ``keep=False``: inference only (``tr``, ``events``, ``R`` are ``None``)."""
    tables = tables or make_tables(fmt)
    x = _raster(inputs, fmt)
    T, B, n_in = x.shape
    w1, w2 = params
    H = np.shape(w1)[1] if np.ndim(w1) == 2 else -1
    w1 = _check_weights(w1, (n_in, H), fmt.lif.w_bits, "W1")
    w2 = _check_weights(w2, (H, np.shape(w2)[1] if np.ndim(w2) == 2 else -1),
                        fmt.lif.w_bits, "W2")
    v, s = hidden_forward(x, w1, fmt)
    o, z = readout_forward_fixed(s, w2, fmt)
    if not keep:
        return ForwardFixed(x, None, v, s, o, z, None, None)
    a = np.asarray(inputs)
    tr = trace_from_times(a, fmt) if a.ndim == 2 else input_trace_fixed(x, fmt)
    ev = active_events(v, tables.lut, fmt)
    R = np.tensordot(tables.K, s, axes=(0, 0))                       # (B, H), exact
    R = saturate(round_shift(R, fmt.r_shift), fmt.r_bits, signed=False)
    return ForwardFixed(x, tr, v, s, o, z, ev, R)


# ----------------------------------------------------------------------------- loss

def softmax_grad_fixed(z, labels, fmt, tables=None):
    """``(p, dlog)`` ``(B, C)`` of step 5 (int64); ``labels`` ``(B,)``."""
    tables = tables or make_tables(fmt)
    z = np.asarray(z, dtype=np.int64)
    B, C = z.shape
    labels = np.asarray(labels)
    if labels.shape != (B,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be {B} integers, not {labels.dtype} {labels.shape}")
    if B and (labels.min() < 0 or labels.max() >= C):
        raise ValueError(f"labels must lie in [0, {C - 1}]")
    k = round_shift(z.max(axis=1, keepdims=True) - z, fmt.z_shift)
    e = np.where(k < fmt.exp_len, tables.exp[np.minimum(k, fmt.exp_len - 1)], 0)
    S = e.sum(axis=1, keepdims=True)
    p = (e << fmt.p_frac) // S
    dlog = p.copy()
    dlog[np.arange(B), labels] -= 1 << fmt.p_frac
    return p, dlog


def readout_backward_fixed(w2, dlog, fmt):
    """``u`` ``(B, H)`` of step 6: ``sat(round_shift(dlog @ W2^T, u_shift), u_bits)``."""
    u = np.asarray(dlog, dtype=np.int64) @ np.asarray(w2, dtype=np.int64).T
    return saturate(round_shift(u, fmt.u_shift), fmt.u_bits)


# ----------------------------------------------------------------------------- backward

@dataclass
class FixedGrads:
    """Integer gradients ``G1`` ``(n_in, H)``, ``G2`` ``(H, C)`` summed over the batch, with
    ``p``, ``dlog``, ``u`` and the per-event ``delta`` (sparse) or per-entry (dense)."""
    G1: np.ndarray
    G2: np.ndarray
    p: np.ndarray
    dlog: np.ndarray
    u: np.ndarray
    delta: np.ndarray
    n_events: int

    def loss(self, labels, fmt):
        """Mean cross-entropy from ``p`` (float, for reporting; ``p = 0`` counts as one LSB)."""
        py = self.p[np.arange(len(labels)), np.asarray(labels)]
        return float(np.mean(fmt.p_frac * math.log(2) - np.log(np.maximum(py, 1))))


def event_delta(K_t, g, u, fmt):
    """Step 7's two multiplies for events with kernel ``K_t``, surrogate ``g`` and ``u_j``:
    ``ks = sat16u(round_shift(K_t g, ks_shift))``, ``delta = sat16(round_shift(ks u,
    d_shift))`` (element-wise, int64)."""
    ks = saturate(round_shift(K_t * g, fmt.ks_shift), fmt.ks_bits, signed=False)
    return saturate(round_shift(ks * u, fmt.d_shift), fmt.delta_bits)


def _readout_grads(fwd, labels, w2, fmt, tables):
    p, dlog = softmax_grad_fixed(fwd.z, labels, fmt, tables)
    u = readout_backward_fixed(w2, dlog, fmt)
    G2 = saturate(fwd.R.T @ dlog, fmt.grad_bits)                      # (H, C)
    return p, dlog, u, G2


def sparse_backward_fixed(params, fwd, labels, fmt, tables=None):
    """The sparse backward (steps 5-8) over the active events of ``fwd``."""
    tables = tables or make_tables(fmt)
    w1, w2 = params
    p, dlog, u, G2 = _readout_grads(fwd, labels, w2, fmt, tables)
    ev = fwd.events
    n_in, H = np.shape(w1)
    delta = event_delta(tables.K[ev.t], ev.g, u[ev.b, ev.j], fmt)
    T, B = fwd.x.shape[:2]
    rows = ev.t * B + ev.b
    if len(ev):
        urows, pos = np.unique(rows, return_inverse=True)
        D = np.zeros((len(urows), H), dtype=np.int64)
        D[pos, ev.j] = delta                                          # one event per (row, j)
        G1 = fwd.tr.reshape(-1, n_in)[urows].T @ D
    else:
        G1 = np.zeros((n_in, H), dtype=np.int64)
    return FixedGrads(saturate(G1, fmt.grad_bits), G2, p, dlog, u, delta, len(ev))


def dense_backward_fixed(params, fwd, labels, fmt, tables=None, lut=None):
    """The dense reference: ``delta`` at every ``(t, b, j)``, ``t >= 1``, from the surrogate
    of every entry (``lut``, default a table covering every ``|v - V_th|`` of ``fwd``; pass
    the sparse table to mask the entries outside the band the dense way), then
    ``G1 = tr^T delta`` as one matrix product over all ``T x B`` rows."""
    tables = tables or make_tables(fmt)
    w1, w2 = params
    p, dlog, u, G2 = _readout_grads(fwd, labels, w2, fmt, tables)
    n_in, H = np.shape(w1)
    d = np.abs(fwd.v - (1 << fmt.lif.frac_bits))
    if lut is None:
        lut = surrogate_table(fmt, int(d.max()) + 1, fmt.surrogate_scale)
    g = np.where(d < len(lut), np.asarray(lut)[np.minimum(d, len(lut) - 1)], 0)
    g[0] = 0
    T, B = fwd.x.shape[:2]
    delta = event_delta(tables.K[:, None, None], g, u[None], fmt)          # (T, B, H)
    G1 = fwd.tr.reshape(-1, n_in).T @ delta.reshape(-1, H)
    return FixedGrads(saturate(G1, fmt.grad_bits), G2, p, dlog, u, delta,
                      int(np.count_nonzero(g)))


def dither(image_index, shift, fmt):
    """The update's rounding offset for image ``image_index`` (images trained since the
    weights were loaded, counted from 0) and a learning-rate shift: the bit reversal of the
    low ``dither_bits`` bits of the index, aligned to ``shift`` bits
    (``r << (shift - dither_bits)``, or ``r >> (dither_bits - shift)``); with
    ``dither_bits = 0``, ``2**(shift - 1)`` (round half up)."""
    b = fmt.dither_bits
    if b == 0:
        return (1 << shift) >> 1
    n = int(image_index) & ((1 << b) - 1)
    r = int(format(n, f"0{b}b")[::-1], 2)
    return r << (shift - b) if shift >= b else r >> (b - shift)


def sgd_update(params, grads, fmt, image_index=0):
    """``W = sat8(W - ((G + dither) >> lr_shift))`` for both layers (``>>`` floors);
    returns new arrays. The dither (:func:`dither`) makes the rounding unbiased over the
    images: with round half up (``dither_bits = 0``) the many small gradients of the wrong
    classes round to 0 while the label's large one survives, and once the rates are halved
    ``W2`` drifts to the rails (test accuracy 92 % at epoch 12, 66 % at epoch 20)."""
    w1, w2 = params
    wb = fmt.lif.w_bits
    d1 = dither(image_index, fmt.lr1_shift, fmt)
    d2 = dither(image_index, fmt.lr2_shift, fmt)
    g1, g2 = np.asarray(grads.G1, np.int64), np.asarray(grads.G2, np.int64)
    return (saturate(np.asarray(w1, np.int64) - ((g1 + d1) >> fmt.lr1_shift), wb),
            saturate(np.asarray(w2, np.int64) - ((g2 + d2) >> fmt.lr2_shift), wb))


def train_step(params, times, label, fmt, tables=None, image_index=0):
    """One image (``times`` ``(n_in,)`` or ``(1, n_in)``, ``label`` int, ``image_index``
    the count of images trained before it): forward, sparse backward, update. Returns
    ``(new_params, fwd, grads)``."""
    tables = tables or make_tables(fmt)
    times = np.asarray(times).reshape(1, -1)
    fwd = forward_fixed(params, times, fmt, tables)
    gr = sparse_backward_fixed(params, fwd, np.array([int(label)]), fmt, tables)
    return sgd_update(params, gr, fmt, image_index), fwd, gr


# ----------------------------------------------------------------------------- training

def init_weights(sizes, fmt, seed=0, scale1=None, scale2=None):
    """Random integer weights ``(W1, W2)`` for ``sizes = (n_in, H, C)``: normal with std
    ``scale1`` / ``scale2`` (units of ``V_th``; defaults ``3 / sqrt(n_in)`` and
    ``1 / sqrt(H)``), quantised round-half-even and saturated to 8 bits, from
    ``numpy.random.default_rng(seed)``."""
    n_in, H, C = (int(s) for s in sizes)
    rng = np.random.default_rng(seed)
    s1 = 3.0 / math.sqrt(n_in) if scale1 is None else scale1
    s2 = 1.0 / math.sqrt(H) if scale2 is None else scale2
    w1 = rng.standard_normal((n_in, H)) * s1
    w2 = rng.standard_normal((H, C)) * s2
    return quantize_weights(w1, fmt.lif), quantize_weights(w2, fmt.lif)


def predict_fixed(params, times, fmt, batch_size=512):
    """Class predictions ``argmax_c z_c`` (ties: lowest class) for spike steps ``(n, n_in)``."""
    tables = make_tables(fmt)
    out = []
    for i in range(0, len(times), batch_size):
        f = forward_fixed(params, times[i:i + batch_size], fmt, tables, keep=False)
        out.append(np.argmax(f.z, axis=1))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def accuracy_fixed(params, times, labels, fmt):
    if len(times) == 0:
        raise ValueError("no samples to evaluate")
    return float(np.mean(predict_fixed(params, times, fmt) == np.asarray(labels)))


def train_fixed(params, times, labels, fmt, *, epochs=1, seed=0, evals=None, on_epoch=None,
                shuffle=True, decay_every=0, first_image=0):
    """Train image by image (batch 1) with the fixed-point SSGD; returns ``(params, hist)``.

    ``first_image``: the image counter of the first image (the dither's index; 0 for weights
    just loaded, ``epochs x n`` of an earlier call to continue it bit for bit).

    ``decay_every``: if > 0, both learning-rate shifts grow by one (the rates halve) after
    every ``decay_every`` epochs (the host sets the shift per epoch); the format of epoch
    ``e`` is ``fmt`` with ``lr_shift + e // decay_every``.

    ``evals``: optional dict ``name -> (times, labels)`` evaluated after every epoch.
    History: ``loss`` (per epoch mean), ``events`` (active events per epoch), ``spikes``
    (hidden spikes per epoch), ``entries`` (``T x H`` summed over the images),
    ``epoch_time`` (s, training only), ``acc_<name>`` per epoch. The order of the images is
    ``numpy.random.default_rng(seed).permutation`` per epoch (``shuffle=False``: as given).
    """
    tables = make_tables(fmt)
    times = np.asarray(times)
    labels = np.asarray(labels)
    n = len(times)
    if n == 0:
        raise ValueError("no training samples")
    rng = np.random.default_rng(seed)
    hist = {"loss": [], "events": [], "spikes": [], "entries": [], "epoch_time": [],
            "train_acc": []}
    for name in (evals or {}):
        hist[f"acc_{name}"] = []
    w = (np.asarray(params[0], np.int64), np.asarray(params[1], np.int64))
    if isinstance(decay_every, bool) or not isinstance(decay_every, (int, np.integer)) \
            or decay_every < 0:
        raise ValueError(f"decay_every must be an integer >= 0, not {decay_every!r}")
    for ep in range(epochs):
        order = rng.permutation(n) if shuffle else np.arange(n)
        k_dec = ep // decay_every if decay_every else 0
        fmt_ep = fmt.with_(lr1_shift=fmt.lr1_shift + k_dec, lr2_shift=fmt.lr2_shift + k_dec)
        t0 = time.perf_counter()
        loss = 0.0
        n_ev = n_sp = 0
        correct = 0
        for pos, k in enumerate(order):
            w_new, fwd, gr = train_step(w, times[k], labels[k], fmt_ep, tables,
                                        image_index=first_image + ep * n + pos)
            loss += gr.loss(np.array([labels[k]]), fmt)
            correct += int(np.argmax(fwd.z[0]) == labels[k])
            n_ev += gr.n_events
            n_sp += int(fwd.s.sum())
            w = w_new
        hist["epoch_time"].append(time.perf_counter() - t0)
        hist["loss"].append(loss / n)
        hist["events"].append(n_ev)
        hist["spikes"].append(n_sp)
        hist["entries"].append(n * (fmt.n_steps - 1) * w[0].shape[1])
        hist["train_acc"].append(correct / n)
        for name, (xt, yt) in (evals or {}).items():
            hist[f"acc_{name}"].append(accuracy_fixed(w, xt, yt, fmt))
        if on_epoch is not None:
            on_epoch(ep, hist)
    return w, hist


# ----------------------------------------------------------------------------- float

def float_step(params_f, times, labels, fmt, fixed_forward=None):
    """The same algorithm in float64 without rounding, for batch ``B``.

    The one saturation kept is ``delta``'s (at the float value of the fixed limit,
    ``2**(delta_bits - 1)`` units): it clips the gradient of about 1 % of the events at the
    start of training and is part of the algorithm, not an artefact of the widths.

    ``params_f = (W1, W2)`` in units of ``V_th``; decays are the quantised ``beta_q / 256``.
    With ``fixed_forward`` (a :class:`ForwardFixed` of the same inputs), the membranes,
    spikes and logits are taken from it (as floats) and only the backward is float: the
    difference to the fixed backward is then the backward's rounding alone.

    Returns a dict: ``v``, ``s``, ``z`` (units of ``V_th``), ``act`` (the band), ``p``,
    ``dlog``, ``u`` (``W2 dlog``), ``delta`` ``(T, B, H)`` (zero outside the band), ``dW1``,
    ``dW2`` (float gradients of the loss, batch-summed) and the same scaled to the
    fixed-point units (``p_q``, ``u_q``, ``delta_q``, ``G1_q``, ``G2_q``).
    """
    lif = fmt.lif
    x = _raster(times, fmt).astype(np.float64)
    T, B, n_in = x.shape
    w1, w2 = (np.asarray(w, np.float64) for w in params_f)
    H = w1.shape[1]
    beta = fmt.beta_q / (1 << lif.decay_bits)
    br = fmt.beta_r_q / (1 << lif.decay_bits)
    tr = np.zeros((T, B, n_in))
    for t in range(T - 1):
        tr[t + 1] = beta * tr[t] + x[t]
    if fixed_forward is None:
        v = np.zeros((T, B, H))
        s = np.zeros((T, B, H))
        o = np.zeros((T, B, w2.shape[1]))
        for t in range(T - 1):
            v[t + 1] = beta * v[t] + x[t] @ w1 - s[t]
            s[t + 1] = v[t + 1] > 1.0
            o[t + 1] = br * o[t] + s[t] @ w2
        z = o.sum(axis=0)
    else:
        v = fixed_forward.v * lif.lsb
        s = fixed_forward.s.astype(np.float64)
        z = fixed_forward.z * lif.lsb
    a = fmt.logit_scale * z
    pe = np.exp(a - a.max(axis=1, keepdims=True))
    p = pe / pe.sum(axis=1, keepdims=True)
    labels = np.asarray(labels).reshape(-1)
    dlog = p.copy()
    dlog[np.arange(B), labels] -= 1.0
    u = dlog @ w2.T
    K = np.zeros(T)
    for t in range(T - 2, -1, -1):
        K[t] = 1.0 + br * K[t + 1]
    dv = v - 1.0
    act = np.abs(dv) < fmt.b_th_q * lif.lsb
    act[0] = False
    g = np.where(act, 1.0 / (fmt.surrogate_scale * np.abs(dv) + 1.0) ** 2, 0.0)
    delta = K[:, None, None] * g * u[None]
    d_exp = fmt.ks_frac() + lif.frac_bits + fmt.p_frac - fmt.u_shift - fmt.d_shift
    d_lim = 2.0 ** (fmt.delta_bits - 1 - d_exp)          # the fixed delta's saturation
    np.clip(delta, -d_lim, d_lim, out=delta)
    dW1 = tr.reshape(-1, n_in).T @ delta.reshape(-1, H)
    Rf = np.tensordot(K, s, axes=(0, 0))
    dW2 = Rf.T @ dlog
    return {"v": v, "s": s.astype(bool), "z": z, "p": p, "dlog": dlog, "u": u, "delta": delta,
            "dW1": dW1, "dW2": dW2, "act": act,
            "p_q": p * (1 << fmt.p_frac),
            "u_q": u * 2.0 ** (lif.frac_bits + fmt.p_frac - fmt.u_shift),
            "delta_q": delta * 2.0 ** d_exp,
            "G1_q": dW1 * 2.0 ** fmt.g1_exponent(), "G2_q": dW2 * 2.0 ** fmt.g2_exponent()}


def predict_float(params_f, times, fmt, batch_size=512):
    out = []
    for i in range(0, len(times), batch_size):
        r = _float_forward(params_f, times[i:i + batch_size], fmt)
        out.append(np.argmax(r, axis=1))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _float_forward(params_f, times, fmt):
    x = _raster(times, fmt).astype(np.float64)
    T, B, n_in = x.shape
    w1, w2 = (np.asarray(w, np.float64) for w in params_f)
    beta = fmt.beta_q / (1 << fmt.lif.decay_bits)
    br = fmt.beta_r_q / (1 << fmt.lif.decay_bits)
    h = (x[:T - 1].reshape(-1, n_in) @ w1).reshape(T - 1, B, -1)
    v = np.zeros((B, w1.shape[1]))
    s = np.zeros_like(v)
    o = np.zeros((B, w2.shape[1]))
    z = np.zeros_like(o)
    for t in range(T - 1):
        o = br * o + s @ w2
        z += o
        v = beta * v + h[t] - s
        s = (v > 1.0).astype(np.float64)
    return z


def train_float(params_f, times, labels, fmt, *, epochs=1, seed=0, evals=None, on_epoch=None,
                decay_every=0):
    """The float counterpart of :func:`train_fixed` (same order of images, the learning
    rates :meth:`TrainFormat.lr_float`, float64 weights, no rounding or clipping)."""
    w1, w2 = (np.array(w, np.float64) for w in params_f)
    times = np.asarray(times)
    labels = np.asarray(labels)
    n = len(times)
    rng = np.random.default_rng(seed)
    hist = {"loss": [], "epoch_time": []}
    for name in (evals or {}):
        hist[f"acc_{name}"] = []
    for ep in range(epochs):
        order = rng.permutation(n)
        lr1, lr2 = fmt.lr_float()
        if decay_every:
            lr1, lr2 = (lr * 0.5 ** (ep // decay_every) for lr in (lr1, lr2))
        t0 = time.perf_counter()
        loss = 0.0
        for k in order:
            r = float_step((w1, w2), times[k:k + 1], labels[k:k + 1], fmt)
            loss -= math.log(max(r["p"][0, labels[k]], 1e-300))
            w1 -= lr1 * r["dW1"]
            w2 -= lr2 * r["dW2"]
        hist["epoch_time"].append(time.perf_counter() - t0)
        hist["loss"].append(loss / n)
        for name, (xt, yt) in (evals or {}).items():
            hist[f"acc_{name}"].append(float(np.mean(predict_float((w1, w2), xt, fmt)
                                                     == np.asarray(yt))))
        if on_epoch is not None:
            on_epoch(ep, hist)
    return (w1, w2), hist
