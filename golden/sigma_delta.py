"""Proportional-derivative sigma-delta coding (O'Connor et al., ICLR 2018), in floating point.

A neuron sends its value ``x_t`` as integer spike counts ``s_t`` in three steps:

* **enc** (PD encoder): ``a_t = k_p x_t + k_d (x_t - x_{t-1})``;
* **Q** (sigma-delta quantizer, state ``phi``): ``phi' = phi + a_t; s_t = round(phi'); phi = phi' - s_t``;
* **dec** (PD decoder): ``x_hat_t = (s_t + k_d x_hat_{t-1}) / (k_p + k_d)``.

Like the authors' code we use the reparametrisation ``k_alpha = k_d / (k_p + k_d)`` (the decay of
the decoder) and ``k_beta = 1 / (k_p + k_d)`` (the size of one spike), so that

* ``enc``: ``a_t = (x_t - k_alpha x_{t-1}) / k_beta``,
* ``dec``: ``x_hat_t = k_alpha x_hat_{t-1} + k_beta s_t``,

which is petered/pdnn ``pdnn/helpers/pdnnet.py``, ``PDEncoderDecoder.encode`` / ``.decode`` and
``PDAdaptiveEncoderDecoder`` (whose ``kp`` and ``kd`` properties are ``(1 - k_alpha) / k_beta`` and
``k_alpha / k_beta``). Without quantization ``dec(enc(x)) = x`` exactly.

Rounding. ``round`` is *round half up*, ``floor(v + 1/2)``: the hardware's add-half-then-floor-shift
(:func:`spikegate.golden.fixed.round_shift`). pdnn uses Theano's ``tt.round`` (half away from zero)
in ``herd`` and ``np.round`` (half to even) in ``quantization.sequential_quantize``; the three differ
only on exact ties. Round half up commutes with integer shifts, so the quantizer unwraps exactly
(in exact arithmetic): ``Q(a) = diff(round(cumsum(a)))`` (see :func:`sigma_delta_unwrapped`).

``k_beta`` adaptation. pdnn's ``PDAdaptiveEncoderDecoder.encode`` tracks the running L1 magnitude of
the encoded signal and moves ``k_beta`` towards ``k_beta_init * running_mag``, both with the rate
``adaptation_rate`` (pdnn's MNIST experiments: ``1e-3``). Both updates read the values from before
the step (Theano's ``add_update`` semantics), and the encoder and decoder of that step use the old
``k_beta``: :meth:`PDCoder.adapt` is called once per time step, after encoding and decoding.

The fixed-point version (the hardware reference) is :mod:`spikegate.golden.sigma_delta_fixed`.
"""

from dataclasses import dataclass

import numpy as np

__all__ = [
    "round_half_up", "kpkd_to_alpha_beta", "alpha_beta_to_kpkd",
    "pd_encode_step", "sigma_delta_step", "pd_decode_step",
    "pd_encode", "sigma_delta", "sigma_delta_unwrapped", "pd_decode",
    "accumulate_rows", "accumulate_rows_reference",
    "PDCoder",
]


def round_half_up(v):
    """``floor(v + 1/2)``: the quantizer's rounding (ties go up, towards +inf)."""
    return np.floor(np.asarray(v, dtype=np.float64) + 0.5)


def _check_alpha_beta(k_alpha, k_beta):
    if not np.isfinite(k_alpha) or not 0.0 <= k_alpha <= 1.0:
        raise ValueError(f"k_alpha must be in [0, 1], not {k_alpha!r}")
    if not np.isfinite(k_beta) or k_beta <= 0.0:
        raise ValueError(f"k_beta must be > 0, not {k_beta!r}")


def kpkd_to_alpha_beta(kp, kd):
    """``(k_alpha, k_beta) = (kd / (kp + kd), 1 / (kp + kd))``; needs ``kp, kd >= 0``, ``kp + kd > 0``."""
    if kp < 0 or kd < 0 or kp + kd <= 0:
        raise ValueError(f"need kp >= 0, kd >= 0 and kp + kd > 0, not kp={kp!r}, kd={kd!r}")
    return kd / (kp + kd), 1.0 / (kp + kd)


def alpha_beta_to_kpkd(k_alpha, k_beta):
    """``(kp, kd) = ((1 - k_alpha) / k_beta, k_alpha / k_beta)`` (pdnn's ``kp`` / ``kd`` properties)."""
    _check_alpha_beta(k_alpha, k_beta)
    return (1.0 - k_alpha) / k_beta, k_alpha / k_beta


# ---------------------------------------------------------------------------------------------
# One time step, vectorized over the units of a layer (any shape; state arrays of the same shape)
# ---------------------------------------------------------------------------------------------

def pd_encode_step(x, x_prev, k_alpha, k_beta):
    """enc for one step: ``a = (x - k_alpha x_prev) / k_beta`` (``= kp x + kd (x - x_prev)``)."""
    return (np.asarray(x, dtype=np.float64) - k_alpha * np.asarray(x_prev, dtype=np.float64)) / k_beta


def sigma_delta_step(a, phi):
    """Q for one step: returns ``(s, phi_new)`` with ``s = round(phi + a)``, ``phi_new = phi + a - s``.

    ``s`` is integer-valued (float64); ``phi_new`` stays in ``[-1/2, 1/2)``.
    (pdnn ``pdnnet.py``, ``herd``.)
    """
    p = np.asarray(phi, dtype=np.float64) + a
    s = round_half_up(p)
    return s, p - s


def pd_decode_step(u, y_prev, k_alpha, k_beta):
    """dec for one step: ``y = k_alpha y_prev + k_beta u`` (``= (u + kd y_prev) / (kp + kd)``)."""
    return k_alpha * np.asarray(y_prev, dtype=np.float64) + k_beta * np.asarray(u, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Whole sequences: time is axis 0, units the remaining axes
# ---------------------------------------------------------------------------------------------

def pd_encode(x, k_alpha, k_beta, x_prev=None):
    """enc over a sequence ``x`` of shape ``(T, ...)``; ``x_{-1}`` is ``x_prev`` (default 0)."""
    _check_alpha_beta(k_alpha, k_beta)
    x = np.asarray(x, dtype=np.float64)
    prev = np.zeros_like(x[:1]) if x_prev is None else np.asarray(x_prev, dtype=np.float64)[None]
    shifted = np.concatenate([np.broadcast_to(prev, x[:1].shape), x[:-1]], axis=0)
    return (x - k_alpha * shifted) / k_beta


def sigma_delta(a, phi=None):
    """Q over a sequence ``a`` of shape ``(T, ...)`` by the recursion; returns ``(s, phi_final)``.

    The loop runs over time only (each step vectorized over the units).
    """
    a = np.asarray(a, dtype=np.float64)
    phi = np.zeros(a.shape[1:]) if phi is None else np.array(phi, dtype=np.float64)
    s = np.empty_like(a)
    for t in range(a.shape[0]):
        s[t], phi = sigma_delta_step(a[t], phi)
    return s, phi


def sigma_delta_unwrapped(a):
    """Q from a zero state in closed form: ``diff(round(cumsum(a)))`` along axis 0.

    Equal to :func:`sigma_delta` whenever the partial sums are exact (e.g. dyadic inputs); with
    general floats the two can differ where a partial sum lies within rounding error of a tie.
    (pdnn ``quantization.py``, ``sequential_quantize(method='herd')``.)
    """
    a = np.asarray(a, dtype=np.float64)
    r = round_half_up(np.cumsum(a, axis=0))
    return np.diff(r, axis=0, prepend=np.zeros_like(r[:1]))


def pd_decode(u, k_alpha, k_beta, y_prev=None):
    """dec over a sequence ``u`` of shape ``(T, ...)``; ``y_{-1}`` is ``y_prev`` (default 0)."""
    _check_alpha_beta(k_alpha, k_beta)
    u = np.asarray(u, dtype=np.float64)
    y = np.zeros(u.shape[1:]) if y_prev is None else np.array(y_prev, dtype=np.float64)
    out = np.empty_like(u)
    for t in range(u.shape[0]):
        y = pd_decode_step(u[t], y, k_alpha, k_beta)
        out[t] = y
    return out


# ---------------------------------------------------------------------------------------------
# The layer's accumulation: row additions
# ---------------------------------------------------------------------------------------------

def accumulate_rows(s, w):
    """``s @ w`` for integer spike counts ``s`` (shape ``(n_in,)``), touching only spiking rows.

    Returns ``(u, n_additions)``: ``u = sum_i s_i w[i]`` and the number of row additions the event
    datapath performs, ``sum_i |s_i|`` (each spike adds ``sign(s_i) * w[i]`` once), so the scalar
    additions are ``n_additions * w.shape[1]``.
    """
    s = np.asarray(s)
    idx = np.flatnonzero(s)
    if idx.size == 0:
        return np.zeros(w.shape[1], dtype=np.result_type(w, np.float64)), 0
    return s[idx] @ w[idx], int(np.abs(s[idx]).sum())


def accumulate_rows_reference(s, w):
    """The datapath literally: for each ``i`` in ascending order, add ``sign(s_i) w[i]``, ``|s_i|`` times.

    A slow loop over spike events, for tests only.
    """
    u = np.zeros(w.shape[1], dtype=np.float64)
    for i in np.flatnonzero(s):
        sign = 1.0 if s[i] > 0 else -1.0
        for _ in range(int(abs(s[i]))):
            u = u + sign * w[i]
    return u


# ---------------------------------------------------------------------------------------------
# A stateful coder with k_beta adaptation: one per layer and direction
# ---------------------------------------------------------------------------------------------

@dataclass
class PDCoder:
    """An adaptive PD encoder / sigma-delta quantizer plus its decoder, for ``n_enc`` units.

    The state is explicit: ``x_prev`` (encoder), ``phi`` (quantizer), and the caller's decoder
    states (``decode`` takes and returns them, since one coder decodes several signals, as in pdnn).

    Parameters
    ----------
    kp, kd : float
        Initial gains; ``k_alpha = kd / (kp + kd)`` stays fixed, ``k_beta`` starts at
        ``1 / (kp + kd)``.
    n_enc : int
        Number of encoded units.
    adaptive : bool
        Adapt ``k_beta`` (pdnn ``PDAdaptiveEncoderDecoder``) or keep it fixed (``PDEncoderDecoder``).
    adaptation_rate : float
        Rate of both the running magnitude and the ``k_beta`` update.
    """
    kp: float
    kd: float
    n_enc: int
    adaptive: bool = True
    adaptation_rate: float = 1e-3

    def __post_init__(self):
        self.k_alpha, self.k_beta_init = kpkd_to_alpha_beta(self.kp, self.kd)
        if not 0.0 <= self.adaptation_rate <= 1.0:
            raise ValueError(f"adaptation_rate must be in [0, 1], not {self.adaptation_rate!r}")
        self.reset(keep_k_beta=False)

    def reset(self, keep_k_beta=True):
        """Zero the encoder and quantizer state (and, unless ``keep_k_beta``, the adaptation)."""
        self.x_prev = np.zeros(self.n_enc)
        self.phi = np.zeros(self.n_enc)
        self._last_mag = None
        if not keep_k_beta:
            self.k_beta = self.k_beta_init
            self.running_mag = 1.0

    def encode(self, x):
        """enc then Q for one step: returns the integer spike counts ``s`` (float64 array)."""
        x = np.asarray(x, dtype=np.float64)
        a = pd_encode_step(x, self.x_prev, self.k_alpha, self.k_beta)
        s, self.phi = sigma_delta_step(a, self.phi)
        self.x_prev = x
        self._last_mag = float(np.abs(x).mean())
        return s

    def decode(self, u, y_prev):
        """dec for one step with this coder's gains: ``k_alpha y_prev + k_beta u``."""
        return pd_decode_step(u, y_prev, self.k_alpha, self.k_beta)

    def adapt(self):
        """End of the time step: update the running L1 magnitude and ``k_beta`` (if adaptive).

        ``running_mag <- (1 - r) running_mag + r mean|x|`` and
        ``k_beta <- k_beta + r (k_beta_init running_mag_old - k_beta)``, both from the old values
        (pdnn ``PDAdaptiveEncoderDecoder.encode``).
        """
        if not self.adaptive or self._last_mag is None:
            return
        r = self.adaptation_rate
        target = self.k_beta_init * self.running_mag
        self.running_mag = (1.0 - r) * self.running_mag + r * self._last_mag
        self.k_beta = self.k_beta + r * (target - self.k_beta)
        self._last_mag = None

    @property
    def kp_now(self):
        """The current ``kp = (1 - k_alpha) / k_beta``."""
        return (1.0 - self.k_alpha) / self.k_beta

    @property
    def kd_now(self):
        """The current ``kd = k_alpha / k_beta``."""
        return self.k_alpha / self.k_beta
