"""Sparse spiking gradient descent (Perez-Nieves & Goodman, NeurIPS 2021): the golden model.

Backpropagation through time in a feed-forward LIF network that runs only through *active*
entries, ``(timestep, sample, neuron)`` where the membrane is within ``B_th`` of threshold,
with the surrogate derivative ``g(V) = 1 / (scale |V - V_th| + 1)**2``. Reference: the paper
(arXiv 2105.08810) and the authors' code, ``npvoid/SparseSpikingBackprop``; where the paper is
loose the code decides, and each such place names the file and function.

Layout and conventions
----------------------
* Every activity array is **time-major**: ``(T, B, N)`` (steps, samples, neurons), so a time
  step is one contiguous ``(B, N)`` slice. Weights are ``(n_in, n_out)``.
* Forward, as ``SNNLayerOrig`` / ``SparseSNNLayer.forward`` in ``train_and_time.py``:
  ``V[0] = 0``, ``S[0] = 0``, and for ``t = 0 .. T-2``::

      V[t+1] = beta V[t] + (S_in[t] @ W) - S[t]       # reset by subtraction of V_th = 1
      S[t+1] = V[t+1] > V_th

  The input of the last step, ``S_in[T-1]``, is never used (as in the authors' loop).
* Readout (``SNNReadout``): a leaky integrator ``O[0] = 0``,
  ``O[t+1] = beta_r O[t] + (1 - beta_r) (S_L[t] @ W_out)``; the logits are ``max_t O``
  and the loss the mean cross-entropy of their softmax (``time_snn``: ``LogSoftmax`` +
  ``NLLLoss``), plus the authors' spike-count regularisers (``loss_reg``).
* The reset is not differentiated (``rst`` is built from a comparison in the authors' code),
  so with ``dV[t] = g(V[t] - V_th) dL/dS[t]`` (the local surrogate term) the exact weight
  gradient is ``dW = sum_t trace[t]^T dV[t]`` with the input trace
  ``trace[t+1] = beta trace[t] + S_in[t]``, ``trace[0] = 0`` (``SparseSNNLayer.forward``,
  ``spk_trace``).
* Active entry: ``|V[t] - V_th| < B_th`` (strict, ``mem > b_th and mem < 2 th - b_th`` in
  ``SparseSNNLayer.forward``; the authors' ``config.py`` uses ``b_th = 0.8``, so
  ``B_th = 1 - 0.8 = 0.2``). Step ``t = 0`` holds the constant initial state and is never
  active here (the authors' mask includes it, but ``V[0] = 0`` is only active for
  ``B_th > 1``, and its gradient is zero either way).

The two backward passes
-----------------------
:func:`dense_backward` is ordinary BPTT with the same surrogate, written as the reverse
recursion ``dI[t] = dV[t+1] + beta dI[t+1]`` (``dI[t] = dL/d(S_in[t] @ W)``), then
``dW = S_in^T dI`` and ``dL/dS_in = dI W^T``: dense matrix products over every ``(t, b)``.

:func:`sparse_backward` is the paper's algorithm (``SparseSNNLayer.backward`` and the CUDA
kernels ``s3gd_w_backward_kernel`` / ``s3gd_s_backward_master_kernel``): ``dV`` only at the
active entries; ``dW`` from the input trace at the active entries only; the gradient to the
layer below only at *that* layer's active entries, through
``Delta[t] = sum_{t' > t active} beta**(t'-1-t) dV[t']``. With every entry active the two are
equal (up to float rounding): see the tests.

Everything is vectorised over batch, time and neurons (NumPy only).
"""

import math
import time
from dataclasses import dataclass, replace

import numpy as np

__all__ = [
    "SSGDConfig", "LayerCache", "ActiveSet", "ForwardResult", "Gradients",
    "surrogate", "active_mask", "encode_spike_times", "spike_raster",
    "init_params", "lif_forward", "input_trace", "readout_forward", "forward",
    "loss_and_readout_grad", "sparse_readout_grad", "reg_loss_and_grad",
    "dense_backward", "sparse_backward", "backward",
    "active_fraction", "active_fraction_per_step", "cosine_similarity",
    "predict", "accuracy", "Adam", "train",
]

BACKWARDS = ("dense", "sparse")


def _positive(name, value, *, integer=False, allow_zero=False):
    ok_type = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, ok_type):
        kind = "an integer" if integer else "a number"
        raise TypeError(f"{name} must be {kind}, not {value!r}")
    if not math.isfinite(float(value)) or (value < 0 if allow_zero else value <= 0):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, not {value!r}")
    return value


@dataclass(frozen=True)
class SSGDConfig:
    """Network and training constants; defaults are the authors' Fashion-MNIST ``config.py``.

    Parameters
    ----------
    n_steps : int
        Time steps per sample ``T`` (``nb_steps = 100``).
    tau_mem, tau_readout : float
        Membrane and readout time constants in steps (10 ms at 1 ms steps):
        ``beta = exp(-1 / tau_mem)``.
    threshold : float
        Firing threshold ``V_th`` (1).
    b_th : float
        Half-width ``B_th`` of the active band ``|V - V_th| < B_th`` (the paper's ``B_th``;
        the code's ``b_th = 0.8`` is ``V_th - B_th``).
    surrogate_scale : float
        ``beta_s`` in ``g = 1 / (beta_s |V - V_th| + 1)**2`` (``SurrGradSpike.scale = 100``).
    tau_eff, encode_threshold : float
        Input encoding (``current2firing_time``): a pixel ``x > encode_threshold`` spikes at
        step ``floor(tau_eff * log(x / (x - encode_threshold)))``; ``tau_eff = 20`` steps.
    weight_multiplier : float
        Weights are drawn ``N(0, (multiplier (1 - beta))**2 / n_in)`` (``init``, fmnist).
    lambda_upper, lambda_lower, f_upper, f_lower, p_up : float
        Spike-count regularisers of ``loss_reg`` (per-sample mean count above ``f_upper``,
        per-neuron count below ``f_lower``).
    lr, adam_betas, adam_eps : float
        Adam (``torch.optim.Adam(lr=2e-4, betas=(0.9, 0.999))``, eps 1e-8).
    batch_size : int
        Samples per gradient step (256); the last partial batch of an epoch is dropped.
    """
    n_steps: int = 100
    tau_mem: float = 10.0
    tau_readout: float = 10.0
    threshold: float = 1.0
    b_th: float = 0.2
    surrogate_scale: float = 100.0
    tau_eff: float = 20.0
    encode_threshold: float = 0.2
    weight_multiplier: float = 20.0
    lambda_upper: float = 0.06
    lambda_lower: float = 100.0
    f_upper: float = 1.0
    f_lower: float = 1e-3
    p_up: float = 1.0
    lr: float = 2e-4
    adam_betas: tuple = (0.9, 0.999)
    adam_eps: float = 1e-8
    batch_size: int = 256

    def __post_init__(self):
        _positive("n_steps", self.n_steps, integer=True)
        if self.n_steps < 2:
            raise ValueError(f"n_steps must be >= 2, not {self.n_steps!r}")
        for name in ("tau_mem", "tau_readout", "threshold", "b_th", "surrogate_scale",
                     "tau_eff", "weight_multiplier", "lr", "adam_eps", "p_up"):
            _positive(name, getattr(self, name))
        for name in ("lambda_upper", "lambda_lower", "f_upper", "f_lower"):
            _positive(name, getattr(self, name), allow_zero=True)
        _positive("encode_threshold", self.encode_threshold, allow_zero=True)
        _positive("batch_size", self.batch_size, integer=True)
        b1, b2 = self.adam_betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"adam_betas must lie in [0, 1), not {self.adam_betas!r}")

    @property
    def beta(self):
        """Membrane decay per step, ``exp(-1 / tau_mem)``."""
        return math.exp(-1.0 / self.tau_mem)

    @property
    def beta_readout(self):
        """Readout decay per step, ``exp(-1 / tau_readout)``."""
        return math.exp(-1.0 / self.tau_readout)

    def with_(self, **changes):
        """A copy with some fields changed (validated)."""
        return replace(self, **changes)


# ----------------------------------------------------------------------------- primitives

def surrogate(x, scale=100.0):
    """Surrogate derivative ``1 / (scale |x| + 1)**2`` of the spike, ``x = V - V_th``.

    As ``SurrGradSpike.backward`` and ``surr_grad_spike_kernel``. Keeps ``x``'s float dtype.
    """
    x = np.asarray(x)
    d = np.abs(x) * x.dtype.type(scale) + x.dtype.type(1)
    return np.reciprocal(d * d)


def active_mask(v, threshold=1.0, b_th=0.2):
    """Boolean mask of active entries, ``|v - threshold| < b_th`` (strict on both sides).

    ``SparseSNNLayer.forward``: ``mem > b_th_code`` and ``mem < 2 th - b_th_code`` with
    ``b_th_code = th - b_th``. Step 0 of a ``(T, B, N)`` array is *not* excluded here;
    :func:`lif_forward` excludes it.
    """
    v = np.asarray(v)
    return (v > threshold - b_th) & (v < threshold + b_th)


def encode_spike_times(x, n_steps=100, tau_eff=20.0, threshold=0.2):
    """Pixel intensities to integer spike steps (``current2firing_time`` + ``int`` cast).

    A pixel ``x > threshold`` spikes once, at ``floor(tau_eff * log(x / (x - threshold)))``
    (bright pixels early: ``x = 1`` gives step 4 with the defaults); a pixel ``x <= threshold``
    never spikes, shown as the value ``n_steps``. Steps ``>= n_steps`` are clipped to
    ``n_steps`` (no spike inside the window).

    Parameters
    ----------
    x : array of float in [0, 1], any shape
    n_steps : int
    tau_eff : float, in steps
    threshold : float

    Returns
    -------
    int64 array of the shape of ``x``.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size and (np.nanmin(x) < 0 or np.nanmax(x) > 1 or np.isnan(x).any()):
        raise ValueError("pixel intensities must lie in [0, 1]")
    _positive("n_steps", n_steps, integer=True)
    _positive("tau_eff", tau_eff)
    _positive("threshold", threshold, allow_zero=True)
    off = x <= threshold
    xs = np.where(off, 1.0, x)
    with np.errstate(divide="ignore"):
        t = tau_eff * np.log(xs / np.where(off, 1.0, xs - threshold))
    t = np.floor(t)
    t = np.where(off | (t >= n_steps), n_steps, t)
    return t.astype(np.int64)


def spike_raster(times, n_steps, dtype=np.float32):
    """Spike steps ``(B, n_in)`` (``n_steps`` = none) to a time-major raster ``(T, B, n_in)``."""
    times = np.asarray(times)
    if times.ndim != 2:
        raise ValueError(f"times must be 2-D (samples, inputs), not shape {times.shape}")
    if times.size and (times.min() < 0 or times.max() > n_steps):
        raise ValueError(f"spike steps must lie in [0, {n_steps}], not "
                         f"[{times.min()}, {times.max()}]")
    out = np.zeros((n_steps + 1,) + times.shape, dtype=dtype)
    b, i = np.indices(times.shape, sparse=True)
    out[times, b, i] = 1
    return out[:n_steps]


def init_params(sizes, cfg=None, seed=0, dtype=np.float32):
    """Weights ``[W_1, ..., W_out]`` for layer sizes ``[n_in, h_1, ..., n_out]``.

    Normal with std ``weight_multiplier (1 - beta) / sqrt(n_in)`` (the authors' ``init``
    for Fashion-MNIST), from ``numpy.random.default_rng(seed)``.
    """
    cfg = cfg or SSGDConfig()
    sizes = [int(_positive("layer size", s, integer=True)) for s in sizes]
    if len(sizes) < 3:
        raise ValueError(f"sizes needs an input, at least one hidden layer and an output, "
                         f"not {sizes!r}")
    rng = np.random.default_rng(seed)
    scale = cfg.weight_multiplier * (1.0 - cfg.beta)
    return [(rng.standard_normal((a, b)) * (scale / math.sqrt(a))).astype(dtype)
            for a, b in zip(sizes[:-1], sizes[1:])]


# ----------------------------------------------------------------------------- forward

@dataclass
class ActiveSet:
    """The active entries of one layer, sorted by ``(t, b, j)``.

    Members
    -------
    flat : int64 (n,)    index into the flattened ``(T, B, N)`` array
    rows : int64 (n,)    ``t * B + b``
    j : int64 (n,)       neuron
    vm : float (n,)      ``V - V_th`` at the entry
    urows : int64 (u,)   the distinct ``rows``, increasing
    row_pos : int64 (n,) position of each entry's row in ``urows``
    """
    flat: np.ndarray
    rows: np.ndarray
    j: np.ndarray
    vm: np.ndarray
    urows: np.ndarray
    row_pos: np.ndarray

    @classmethod
    def from_mask(cls, mask, v, threshold):
        T, B, N = mask.shape
        flat = np.flatnonzero(mask)
        rows, j = np.divmod(flat, N)
        vm = v.reshape(-1)[flat] - v.dtype.type(threshold)
        if len(rows):
            new = np.empty(len(rows), dtype=bool)
            new[0] = True
            np.not_equal(rows[1:], rows[:-1], out=new[1:])
            urows = rows[new]
            row_pos = np.cumsum(new) - 1
        else:
            urows = np.zeros(0, dtype=np.int64)
            row_pos = np.zeros(0, dtype=np.int64)
        return cls(flat, rows, j, vm, urows, row_pos)

    def __len__(self):
        return len(self.flat)

    @property
    def nbytes(self):
        return sum(a.nbytes for a in (self.flat, self.rows, self.j, self.vm, self.urows,
                                      self.row_pos))


# One correction pair (below) costs about as much as this many multiply-adds of a BLAS
# product (float32, one core here): it only steers which rows are merged, never the result.
_PAIR_COST = 500


def _sort_events(key, n_keys):
    """Stable order of event keys ``b * T + s`` (a radix sort when they fit 16 bits)."""
    return np.argsort(key.astype(np.uint16) if n_keys <= 1 << 16 else key, kind="stable")


def _merge_rows(act, batch, n_steps, ev_key, limit, merge=True):
    """Choose anchor rows of ``act`` and list the correction pairs (see :class:`WeightPlan`).

    ``ev_key`` (sorted) holds ``b * T + s`` of the events that stand between a row and an
    earlier row of its sample: merging row ``(t, b)`` into anchor ``(t_a, b)`` costs one
    pair per active entry of the row and event of sample ``b`` with ``t_a <= s < t``. A row
    is merged when that count is at most ``limit``; each sample's first row is an anchor.

    Returns ``(anchors, row_apos, row_dt, pair_ent, pair_ev, pair_dt)``: the anchor rows
    (indices into ``act.urows``, increasing), per row its anchor's position in ``anchors``
    and ``t - t_a``, per pair its active entry, its event (index into ``ev_key``) and
    ``t - 1 - s``.
    """
    u = len(act.urows)
    i64 = np.zeros(0, dtype=np.int64)
    t, b = np.divmod(act.urows, batch)
    e = np.bincount(act.row_pos, minlength=u)
    order = np.lexsort((t, b))                              # rows by (sample, step)
    ts, bs, es = t[order], b[order], e[order]
    a = np.arange(u)
    merged = np.zeros(u, dtype=bool)
    if merge and u > 1:
        def n_events(t0, t1):                               # events of bs in [t0, t1)
            return (np.searchsorted(ev_key, bs * n_steps + t1)
                    - np.searchsorted(ev_key, bs * n_steps + t0))

        merged[1:] = bs[1:] == bs[:-1]
        prev = np.concatenate(([0], ts[:-1]))
        merged &= es * n_events(prev, ts) <= limit
        while True:                                         # un-merging only moves anchors
            a = np.maximum.accumulate(np.where(merged, 0, np.arange(u)))
            keep = merged & (es * n_events(ts[a], ts) <= limit)
            if np.array_equal(keep, merged):
                break
            merged = keep
    is_anchor = np.zeros(u, dtype=bool)
    is_anchor[order[~merged]] = True
    anchors = np.flatnonzero(is_anchor)
    apos = np.cumsum(is_anchor) - 1                         # anchor row -> position
    row_apos = np.empty(u, dtype=np.int64)
    row_apos[order] = apos[order[a]]
    row_dt = np.empty(u, dtype=np.int64)
    row_dt[order] = ts - ts[a]
    pair_ent, pair_ev, pair_dt = i64, i64, i64
    m = np.flatnonzero(merged)
    if len(m):
        lo = np.searchsorted(ev_key, bs[m] * n_steps + ts[a[m]])
        hi = np.searchsorted(ev_key, bs[m] * n_steps + ts[m])
        er = es[m]
        n_pairs = (hi - lo) * er
        total = int(n_pairs.sum())
        if total:
            ent0 = np.cumsum(e) - e                         # first entry of each row
            rid = np.repeat(np.arange(len(m)), n_pairs)
            off = np.arange(total) - np.repeat(np.cumsum(n_pairs) - n_pairs, n_pairs)
            pair_ev = lo[rid] + off // er[rid]
            pair_ent = ent0[order[m]][rid] + off % er[rid]
            pair_dt = ts[m][rid] - 1 - ev_key[pair_ev] % n_steps
    return anchors, row_apos, row_dt, pair_ent, pair_ev, pair_dt


def _beta_pow(beta, k, dtype):
    return np.power(beta, np.asarray(k, dtype=np.float64)).astype(dtype)


def _rebase_span(beta, dtype):
    """Steps per reference of the scaled running sums of :func:`_gradient_below`: its rows
    are scaled by ``beta**(t - r)`` and read back by ``beta**(r - t - 1)``, with ``r`` the
    step ``t`` rounded down to a multiple of the span, so every factor stays within
    ``exp(+-ln(max) / 4)`` of 1 in ``dtype`` (float32: ``e**22``) however long the sequence
    (absolute ``beta**-t`` overflows float32 past ``t = 88 / -ln(beta)``, 176 steps at
    ``tau_mem = 2``)."""
    rate = -math.log(beta) if 0 < beta < 1 else 0.0
    limit = 0.25 * math.log(float(np.finfo(dtype).max))
    return max(1, int(limit / rate)) if rate > 0 else 1 << 62


@dataclass
class WeightPlan:
    """How :func:`sparse_backward` forms ``dW`` of one layer: anchor rows and corrections.

    The input trace obeys ``trace[t] = beta**(t - t_a) trace[t_a]
    + sum_{t_a <= s < t} beta**(t-1-s) x[s]`` for ``t_a < t``: an active row ``(t, b)`` can
    be *merged* into an earlier active row ``(t_a, b)`` of the same sample, its anchor:
    its ``dV`` row is added to the anchor's, scaled by ``beta**(t - t_a)``, and the input
    events of sample ``b`` between the two steps enter as scalar corrections
    ``dW[i, j] += beta**(t-1-s) x[s, b, i] dV[t, b, j]``, one per (event, active entry)
    pair. Exact: the same sum, regrouped. A row is merged when its pairs cost less than its
    row of the product (``_PAIR_COST``); the trace is kept at the anchors only.

    Members
    -------
    anchors : int64 (a,)    the anchor rows, as indices into ``ActiveSet.urows`` (increasing)
    ent_flat : int64 (n,)   per active entry: ``anchor position * N + j``
    ent_coef : float (n,)   per active entry: ``beta**(t - t_anchor)``
    pair_ent : int64 (P,)   per correction pair: its active entry
    pair_flat : int64 (P,)  ``i * N + j`` (input, neuron)
    pair_coef : float (P,)  ``beta**(t-1-s) x[s, b, i]``
    """
    anchors: np.ndarray
    ent_flat: np.ndarray
    ent_coef: np.ndarray
    pair_ent: np.ndarray
    pair_flat: np.ndarray
    pair_coef: np.ndarray

    @property
    def nbytes(self):
        return sum(a.nbytes for a in vars(self).values())


def _weight_plan(act, x, beta, n_out, times=None, pair_cost=None, merge=True):
    """The :class:`WeightPlan` of a layer with active set ``act`` and input raster ``x``
    ``(T, B, n_in)``; ``times`` ``(B, n_in)``, if given, are the spike steps ``x`` was made
    from (the events are read from them, not from the raster); ``merge=False`` keeps every
    row as its own anchor."""
    T, B, n_in = x.shape
    dt = x.dtype if np.issubdtype(x.dtype, np.floating) else np.dtype(np.float64)
    if len(act.urows) and merge:
        # input events before the last active step, sorted by (sample, step)
        stop = int(act.urows[-1] // B)
        if times is None:
            flat = np.flatnonzero(x[:stop] != 0)
            ev_s, rem = np.divmod(flat, B * n_in)
            ev_b, ev_i = np.divmod(rem, n_in)
        else:
            ev_b, ev_i = np.nonzero(times < stop)
            ev_s = times[ev_b, ev_i].astype(np.int64)
            flat = (ev_s * B + ev_b) * n_in + ev_i
        ev_key = ev_b * T + ev_s
        o = _sort_events(ev_key, B * T)
        ev_key, ev_i, flat = ev_key[o], ev_i[o], flat[o]
    else:
        ev_key = ev_i = flat = np.zeros(0, dtype=np.int64)
    limit = n_in * n_out / (_PAIR_COST if pair_cost is None else pair_cost)
    anchors, row_apos, row_dt, pair_ent, pair_ev, pair_dt = _merge_rows(
        act, B, T, ev_key, limit, merge)
    return WeightPlan(anchors, row_apos[act.row_pos] * n_out + act.j,
                      _beta_pow(beta, row_dt, dt)[act.row_pos],
                      pair_ent, ev_i[pair_ev] * n_out + act.j[pair_ent],
                      _beta_pow(beta, pair_dt, dt) * x.reshape(-1)[flat[pair_ev]])


@dataclass
class PropagationPlan:
    """How :func:`_gradient_below` sends a layer's ``dV`` to the layer below: anchor rows.

    ``Delta[t] = sum_{t' > t} beta**(t'-1-t) dV[t']`` is read at the layer below's active
    entries. A row ``(t, b)`` of ``dV`` moved to an earlier row ``(t_a, b)`` of the same
    sample still reaches every read before ``t_a``; the reads of sample ``b`` at steps
    ``t_a <= s < t`` get it as scalar corrections
    ``g[s, b, i] += beta**(t-1-s) W[i, j] dV[t, b, j]``, one per (entry below, active
    entry) pair. Exact, like :class:`WeightPlan`, whose layout it shares; ``ent_coef`` is
    ``beta**(t - r)``, ``r`` the reference step of the anchor's (the running sum's scaling,
    see :func:`_gradient_below`, which rebases every ``span`` steps as the plan does).

    Members: ``anchors``, ``ent_flat``, ``ent_coef`` as in :class:`WeightPlan`;
    ``pair_ent`` (active entry), ``pair_below`` (entry of the layer below),
    ``pair_w`` (``i * N + j`` into ``W``), ``pair_coef`` (``beta**(t-1-s)``), ``span``
    (:func:`_rebase_span`).
    """
    anchors: np.ndarray
    ent_flat: np.ndarray
    ent_coef: np.ndarray
    pair_ent: np.ndarray
    pair_below: np.ndarray
    pair_w: np.ndarray
    pair_coef: np.ndarray
    span: int

    @property
    def nbytes(self):
        return sum(a.nbytes for a in vars(self).values() if isinstance(a, np.ndarray))


def _propagation_plan(act, below, batch, n_steps, beta, n_in, n_out, dtype, pair_cost=None,
                      merge=True):
    """The :class:`PropagationPlan` of a layer (``act``) over the layer below (``below``)."""
    if merge and len(act.urows):
        t_e, b_e = np.divmod(below.rows, batch)
        key = b_e * n_steps + t_e
        o = _sort_events(key, batch * n_steps)
        ev_key = key[o]
    else:
        o = ev_key = np.zeros(0, dtype=np.int64)
    limit = n_in * n_out / (_PAIR_COST if pair_cost is None else pair_cost)
    anchors, row_apos, _, pair_ent, pair_ev, pair_dt = _merge_rows(
        act, batch, n_steps, ev_key, limit, merge)
    t_row = act.urows // batch
    # A row enters its anchor's running sum (at the anchor's step): scaled from the anchor's
    # reference step (_rebase_span).
    span = _rebase_span(beta, dtype)
    t_ref = act.urows[anchors][row_apos] // batch // span * span
    pair_below = o[pair_ev]
    return PropagationPlan(anchors, row_apos[act.row_pos] * n_out + act.j,
                           _beta_pow(beta, t_row - t_ref, dtype)[act.row_pos],
                           pair_ent, pair_below, below.j[pair_below] * n_out + act.j[pair_ent],
                           _beta_pow(beta, pair_dt, dtype), span)


@dataclass
class LayerCache:
    """What one hidden layer keeps for its backward pass.

    Dense mode keeps the membrane ``v`` ``(T, B, N)`` and the input ``x`` ``(T, B, n_in)``.
    Sparse mode keeps only the :class:`ActiveSet`, its :class:`WeightPlan` and the input
    trace at the plan's anchor rows, stored input-major as ``trace_t`` ``(k, a)`` (so the
    ``dW`` product reads it contiguously: 6.9 instead of 9.1 ms for the first layer of the
    benchmark network; the authors keep the whole trace, ``spk_trace``), restricted to the ``k`` inputs ``trace_cols`` whose trace is
    non-zero in some such row (``None``: all ``n_in``).
    """
    spikes: np.ndarray
    counts: np.ndarray = None
    v: np.ndarray = None
    x: np.ndarray = None
    active: ActiveSet = None
    trace_t: np.ndarray = None
    trace_cols: np.ndarray = None
    plan: WeightPlan = None
    prop: PropagationPlan = None
    n_active: int = 0

    def saved_nbytes(self):
        """Bytes held for the backward pass (not counting ``spikes``, used by the next layer)."""
        n = 0
        for a in (self.v, self.x, self.trace_t, self.trace_cols):
            if a is not None:
                n += a.nbytes
        if self.active is not None:
            n += self.active.nbytes
        for p in (self.plan, self.prop):
            if p is not None:
                n += p.nbytes
        return n


@dataclass
class ForwardResult:
    """Output of :func:`forward`: per-hidden-layer caches, readout trace and logits."""
    layers: list
    out: np.ndarray          # readout O, (T, B, C)
    logits: np.ndarray       # max over time, (B, C)
    t_max: np.ndarray        # argmax over time, (B, C)
    mode: str
    x_shape: tuple


def lif_forward(x, w, cfg, spike_fn=None):
    """One LIF layer over ``T`` steps: membrane ``v`` and spikes ``s``, both ``(T, B, N)``.

    ``x`` is the input spike raster ``(T, B, n_in)``; see the module docstring for the
    update. The float dtype is ``w``'s.

    ``spike_fn`` (for gradient checks only) replaces the emitted spike ``V > V_th`` by
    ``spike_fn(V - V_th)``, e.g. a smooth function whose derivative is the surrogate; the
    reset still subtracts the hard spike, as the backward pass assumes.
    """
    x = np.asarray(x)
    T, B, n_in = x.shape
    if w.ndim != 2 or w.shape[0] != n_in:
        raise ValueError(f"weights of shape {w.shape} do not take {n_in} inputs")
    N = w.shape[1]
    dt = w.dtype.type
    h = (x[:T - 1].reshape(-1, n_in).astype(w.dtype, copy=False) @ w).reshape(T - 1, B, N)
    v = np.empty((T, B, N), dtype=w.dtype)
    s = np.empty((T, B, N), dtype=w.dtype)
    v[0] = 0
    s[0] = 0
    beta, th = dt(cfg.beta), dt(cfg.threshold)
    if spike_fn is None:
        for t in range(T - 1):
            vt = v[t + 1]
            np.multiply(v[t], beta, out=vt)
            vt += h[t]
            vt -= s[t]
            np.greater(vt, th, out=s[t + 1])
        return v, s
    reset = np.zeros((B, N), dtype=w.dtype)
    for t in range(T - 1):
        vt = v[t + 1]
        np.multiply(v[t], beta, out=vt)
        vt += h[t]
        vt -= reset
        s[t + 1] = spike_fn(vt - th)
        np.greater(vt, th, out=reset)
    return v, s


def input_trace(x, beta, rows=None, dtype=None):
    """Input trace ``trace[t+1] = beta trace[t] + x[t]``, ``trace[0] = 0``, of ``(T, B, n_in)``.

    With ``rows`` (indices ``t * B + b``), only those rows, ``(len(rows), n_in)``. The scan
    stops at the last step needed.
    """
    T, B, n_in = x.shape
    dtype = dtype or x.dtype
    stop = T if rows is None or len(rows) == 0 else int(rows[-1] // B) + 1
    tr = np.empty((max(stop, 1), B, n_in), dtype=dtype)
    tr[0] = 0
    b = dtype.type(beta) if hasattr(dtype, "type") else np.dtype(dtype).type(beta)
    for t in range(stop - 1):
        np.multiply(tr[t], b, out=tr[t + 1])
        tr[t + 1] += x[t]
    if rows is None:
        return tr
    return tr.reshape(-1, n_in)[rows]


def readout_forward(s, w, cfg):
    """Leaky-integrator readout ``O`` ``(T, B, C)``, logits ``max_t O`` and their argmax."""
    T, B, N = s.shape
    C = w.shape[1]
    h = (s[:T - 1].reshape(-1, N) @ w).reshape(T - 1, B, C)
    br = w.dtype.type(cfg.beta_readout)
    out = np.empty((T, B, C), dtype=w.dtype)
    out[0] = 0
    one_m = w.dtype.type(1.0) - br
    for t in range(T - 1):
        np.multiply(out[t], br, out=out[t + 1])
        out[t + 1] += one_m * h[t]
    t_max = np.argmax(out, axis=0)
    logits = np.take_along_axis(out, t_max[None], axis=0)[0]
    return out, logits, t_max


def _as_raster(x, cfg, dtype):
    x = np.asarray(x)
    if x.ndim == 2 and np.issubdtype(x.dtype, np.integer):
        return spike_raster(x, cfg.n_steps, dtype)
    if x.ndim != 3:
        raise ValueError("input must be spike steps (B, n_in) of integers or a raster "
                         f"(T, B, n_in), not an array of shape {x.shape}")
    if x.shape[0] != cfg.n_steps:
        raise ValueError(f"raster has {x.shape[0]} steps, the config says {cfg.n_steps}")
    return x


def forward(params, x, cfg, mode="dense", spike_fn=None, merge=True):
    """Run the network and keep what the ``mode`` backward needs.

    Parameters
    ----------
    params : list of weight arrays ``[W_1, ..., W_out]``
    x : int spike steps ``(B, n_in)`` from :func:`encode_spike_times`, or a raster
        ``(T, B, n_in)``
    cfg : SSGDConfig
    mode : ``"dense"``, ``"sparse"``, or ``"none"`` (inference only: nothing kept)
    spike_fn : optional, see :func:`lif_forward` (gradient checks)
    merge : sparse mode: let :class:`WeightPlan` merge rows (``False``: every active row
        is an anchor; the same gradient, for tests)
    """
    if mode not in BACKWARDS + ("none",):
        raise ValueError(f"mode must be one of {BACKWARDS + ('none',)}, not {mode!r}")
    dtype = params[0].dtype
    x0 = np.asarray(x)
    times = x0 if x0.ndim == 2 and np.issubdtype(x0.dtype, np.integer) else None
    x = _as_raster(x0, cfg, dtype)
    layers = []
    h_in = x
    for li, w in enumerate(params[:-1]):
        v, s = lif_forward(h_in, w, cfg, spike_fn)
        cache = LayerCache(spikes=s, counts=s.sum(axis=0, dtype=np.float64))
        if mode == "dense":
            cache.v, cache.x = v, h_in
        elif mode == "sparse":
            mask = active_mask(v, cfg.threshold, cfg.b_th)
            mask[0] = False
            act = ActiveSet.from_mask(mask, v, cfg.threshold)
            cache.active = act
            cache.plan = _weight_plan(act, h_in, cfg.beta, w.shape[1],
                                      times=times if li == 0 else None, merge=merge)
            if li > 0:
                cache.prop = _propagation_plan(act, layers[li - 1].active, x.shape[1],
                                               cfg.n_steps, cfg.beta, w.shape[0], w.shape[1],
                                               dtype, merge=merge)
            rows = input_trace(h_in, cfg.beta, act.urows[cache.plan.anchors], dtype)
            cols = np.flatnonzero(rows.any(axis=0))
            if len(cols) < rows.shape[1]:
                cache.trace_cols = cols
                cache.trace_t = rows.T[cols]                 # one copy, input-major
            else:
                cache.trace_t = np.ascontiguousarray(rows.T)
        else:
            cache.v = v       # kept for statistics only
        if mode != "dense":
            cache.n_active = len(cache.active) if cache.active is not None else 0
        layers.append(cache)
        h_in = s
    out, logits, t_max = readout_forward(h_in, params[-1], cfg)
    return ForwardResult(layers, out, logits, t_max, mode, x.shape)


# ----------------------------------------------------------------------------- losses

def _softmax_loss(logits, labels):
    """Mean cross-entropy of ``softmax(logits)`` and its gradient ``dlog`` (float64)."""
    labels = np.asarray(labels)
    logits = np.asarray(logits, dtype=np.float64)
    B = logits.shape[0]
    if labels.shape != (B,):
        raise ValueError(f"labels must have shape ({B},), not {labels.shape}")
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    loss = float(-np.mean(np.log(p[np.arange(B), labels])))
    dlog = p
    dlog[np.arange(B), labels] -= 1.0
    dlog /= B
    return loss, dlog


def loss_and_readout_grad(fwd, labels, w_out, cfg):
    """Cross-entropy of ``softmax(max_t O)``; gradients of the readout weights and of ``O``'s
    input current ``dh`` ``(T-1, B, C)`` (``dh[t]`` is the gradient of ``S_L[t] @ W_out``).

    Returns ``(loss, dW_out, dh)``; the loss is the batch mean (``NLLLoss``).
    """
    loss, dlog = _softmax_loss(fwd.logits, labels)
    B, C = dlog.shape
    T = fwd.out.shape[0]
    dt = w_out.dtype
    d_out = np.zeros((T, B, C), dtype=dt)
    np.put_along_axis(d_out, fwd.t_max[None], dlog.astype(dt)[None], axis=0)
    # O[t+1] = br O[t] + (1-br) h[t]  =>  dh[t] = (1-br) A[t],  A[t] = dO[t+1] + br A[t+1].
    # dO is zero after the latest peak t_stop = max t_max, so A[t] = 0 for t >= t_stop:
    # the scan and the product for dW_out stop there (the same numbers, fewer zeros).
    br = dt.type(cfg.beta_readout)
    t_stop = int(fwd.t_max.max()) if fwd.t_max.size else 0
    acc = _reverse_scan(d_out, br, t_hi=t_stop)[:T - 1]
    dh = acc * (dt.type(1.0) - br)
    s_last = fwd.layers[-1].spikes
    N = s_last.shape[2]
    dw_out = s_last[:t_stop].reshape(-1, N).T @ dh[:t_stop].reshape(-1, C)
    return loss, dw_out, dh


def _readout_dh_rows(rows, batch, t_max, dlog, br, dt):
    """``dh`` of :func:`loss_and_readout_grad` at the ``(t, b)`` rows ``rows = t B + b`` only,
    in closed form: ``dh[t, b, c] = (1 - br) br**(t_max[b, c] - 1 - t) dlog[b, c]`` for
    ``t < t_max[b, c]``, else 0 (``dO`` has one entry per ``(b, c)``, at its peak)."""
    t = rows // batch
    b = rows % batch
    k = t_max[b] - 1 - t[:, None]                                    # (rows, C)
    pw = (1.0 - br) * _beta_pow(br, np.arange(max(int(t_max.max()), 1)), np.float64)
    return np.where(k >= 0, pw[np.maximum(k, 0)] * dlog[b], 0.0).astype(dt)


def sparse_readout_grad(fwd, labels, w_out, cfg):
    """:func:`loss_and_readout_grad` for :func:`sparse_backward`: the loss, ``dW_out``, and the
    gradient of the loss w.r.t. the top hidden layer's spikes at its *active entries* only.

    ``dh[t, b]`` is zero from sample ``b``'s latest readout peak ``max_c t_max[b, c]`` on, so
    ``dW_out = S^T dh`` needs only each sample's rows before its peak (17 % of the rows the
    dense pass's product runs over for the trained Fashion-MNIST network: most samples peak by
    step 20 while the batch's latest peak is near 80), and ``dh`` is computed in closed form
    at those rows and at the active rows; no ``(T, B, C)`` array is formed. The same numbers
    as the dense pass up to float rounding (see the tests).
    """
    loss, dlog = _softmax_loss(fwd.logits, labels)
    B, C = dlog.shape
    dt = w_out.dtype
    br = float(cfg.beta_readout)
    t_max = fwd.t_max
    s = fwd.layers[-1].spikes
    T, _, N = s.shape
    last = t_max.max(axis=1)                                          # per sample
    rows = np.flatnonzero(np.arange(T - 1)[:, None] < last[None])     # (t, b) with t < last[b]
    dw_out = s.reshape(-1, N)[rows].T @ _readout_dh_rows(rows, B, t_max, dlog, br, dt)
    # At the active rows (dh is zero at t = T-1, which feeds no readout step: t_max <= T-1).
    top = fwd.layers[-1].active
    g_rows = _readout_dh_rows(top.urows, B, t_max, dlog, br, dt) @ w_out.T    # (u, N)
    g = g_rows.reshape(-1)[top.row_pos * N + top.j]
    return loss, dw_out, g


def reg_loss_and_grad(counts, cfg, batch_size=None):
    """The authors' ``loss_reg`` on one hidden layer's spike counts and its gradient.

    ``counts`` is ``(B, N)``, the spikes summed over time (:attr:`LayerCache.counts`).

    ``loss_upper = lambda_upper * relu(mean_j count[b, j] - f_upper) ** p_up`` and
    ``loss_lower = lambda_lower * sum_j relu(f_lower - count[b, j]) ** 2 / N``, summed over
    the batch and divided by ``batch_size``. The gradient with respect to ``S[t, b, j]``
    does not depend on ``t``: returned as ``(B, N)``.
    """
    count = np.asarray(counts, dtype=np.float64)
    if count.ndim != 2:
        raise ValueError(f"counts must be (B, N), not shape {count.shape}")
    B, N = count.shape
    bs = batch_size or B
    up = count.mean(axis=1) - cfg.f_upper                # (B,)
    upc = np.maximum(up, 0.0)
    low = np.maximum(cfg.f_lower - count, 0.0)           # (B, N)
    loss = (cfg.lambda_upper * np.sum(upc ** cfg.p_up)
            + cfg.lambda_lower * np.sum(low ** 2) / N) / bs
    d_up = np.where(up > 0, cfg.lambda_upper * cfg.p_up * upc ** (cfg.p_up - 1), 0.0) / N
    grad = (d_up[:, None] - 2.0 * cfg.lambda_lower * low / N) / bs
    return float(loss), grad


# ----------------------------------------------------------------------------- backward

@dataclass
class Gradients:
    """Weight gradients (same order as ``params``), losses and per-layer timings (s)."""
    grads: list
    loss: float
    reg_loss: float
    layer_times: list
    readout_time: float

    @property
    def hidden_time(self):
        return float(sum(self.layer_times))


def _reverse_scan(d, beta, t_lo=0, t_hi=None):
    """``out[t] = d[t+1] + beta out[t+1]``, ``out[T-1] = 0``, for ``(T, ...)`` arrays.

    Only steps ``t_lo <= t < t_hi`` are computed (the rest are left zero): ``t_hi`` is the
    last step with a non-zero ``d``.
    """
    T = d.shape[0]
    out = np.zeros_like(d)
    t_hi = T - 1 if t_hi is None else min(t_hi, T - 1)
    b = d.dtype.type(beta)
    if t_hi >= 1:
        out[t_hi - 1] = d[t_hi]
        for t in range(t_hi - 2, t_lo - 1, -1):
            np.multiply(out[t + 1], b, out=out[t])
            out[t] += d[t + 1]
    return out


def dense_backward(params, fwd, labels, cfg, active_only=False):
    """Reference BPTT with the surrogate, through every entry (see the module docstring).

    With ``active_only``, the surrogate is zeroed outside the active entries: the same
    gradient as :func:`sparse_backward`, computed the dense way (a test oracle).
    """
    if fwd.mode != "dense":
        raise ValueError(f"dense_backward needs forward(..., mode='dense'), not {fwd.mode!r}")
    t0 = time.perf_counter()
    loss, dw_out, dh = loss_and_readout_grad(fwd, labels, params[-1], cfg)
    T, B, C = dh.shape[0] + 1, dh.shape[1], dh.shape[2]
    w_out = params[-1]
    N = w_out.shape[0]
    g_s = np.zeros((T, B, N), dtype=w_out.dtype)
    g_s[:T - 1] = (dh.reshape(-1, C) @ w_out.T).reshape(T - 1, B, N)
    readout_time = time.perf_counter() - t0
    grads = [None] * len(params)
    grads[-1] = dw_out
    layer_times = [0.0] * (len(params) - 1)
    regs = [reg_loss_and_grad(c.counts, cfg, B) for c in fwd.layers]
    reg_total = sum(r[0] for r in regs)
    th = w_out.dtype.type(cfg.threshold)
    for li in range(len(params) - 2, -1, -1):
        t0 = time.perf_counter()
        cache = fwd.layers[li]
        w = params[li]
        g_s += regs[li][1].astype(g_s.dtype)[None]
        dv = surrogate(cache.v - th, cfg.surrogate_scale)
        if active_only:
            mask = active_mask(cache.v, cfg.threshold, cfg.b_th)
            mask[0] = False
            dv *= mask
        dv *= g_s
        di = _reverse_scan(dv, cfg.beta)                     # dI[t] = dL/d(x[t] @ W)
        n_in = w.shape[0]
        grads[li] = cache.x.reshape(-1, n_in).T @ di.reshape(-1, w.shape[1])
        if li > 0:
            g_s = (di.reshape(-1, w.shape[1]) @ w.T).reshape(T, B, n_in)
        layer_times[li] = time.perf_counter() - t0
    return Gradients(grads, loss, reg_total, layer_times, readout_time)


PROPAGATIONS = ("auto", "project", "scan")


def _gradient_below(act, dv, below, w, batch, n_steps, beta, propagate="auto", plan=None):
    """Gradient of the loss w.r.t. the spikes of the layer below, at *its* active entries.

    ``g[t, b, i] = sum_j W[i, j] Delta[t, b, j]`` with
    ``Delta[t] = sum_{t' > t} beta**(t'-1-t) dV[t']`` (``dV`` = ``dv`` at the entries of
    ``act``); returned in the order of ``below``'s entries.

    ``Delta`` is needed only at ``below``'s distinct rows. Written as
    ``Delta[t] = beta**(r-t-1) sum_{t' > t} Y[t']`` with the scaled rows
    ``Y[t'] = beta**(t'-r) dV[t']``, it is a running sum per sample: one state row per sample,
    updated from the last step back with ``act``'s rows of each step (a contiguous slice of
    its time-major rows) and read at ``below``'s rows of the step before they are added.
    The reference step ``r`` is ``t`` rounded down to a multiple of :func:`_rebase_span`
    (thousands of steps at the paper's ``beta``), so the factors stay in range on long
    sequences; crossing a multiple, the state is multiplied by ``beta**span``. Otherwise no
    ``(steps, B, width)`` array is formed and nothing decays, so the state holds only the
    sample's own terms. Both orders are exact (they differ by float rounding only):

    * ``"project"``: ``X = Y W^T`` over ``act``'s rows first (the sum is linear, so it
      commutes with ``W^T``), the running sum in width ``n_in``, and ``below``'s entries
      read straight out of it: a product over ``act``'s rows, or over the anchor rows of
      ``plan`` (a :class:`PropagationPlan`) plus its scalar corrections.
    * ``"scan"``: the running sum of ``Y`` (width ``N``) gives ``Delta`` at ``below``'s
      rows, then ``Delta W^T``: a product over ``below``'s rows.

    ``"auto"`` takes the product over fewer rows.
    """
    n_in, N = w.shape
    dt = dv.dtype
    g = np.zeros(len(below), dtype=dt)
    if propagate not in PROPAGATIONS:
        raise ValueError(f"propagate must be one of {PROPAGATIONS}, not {propagate!r}")
    if not len(act) or not len(below):
        return g
    t_lo = int(below.urows[0] // batch)
    t_hi = int(act.urows[-1] // batch)
    if t_hi <= t_lo:
        return g
    steps = np.arange(t_lo, t_hi + 2) * batch
    q_cut = np.searchsorted(below.urows, steps)             # below rows of each step
    n_src = len(act.urows) if plan is None else len(plan.anchors)
    if propagate == "auto":
        propagate = "project" if n_src <= q_cut[-1] else "scan"
    span = _rebase_span(beta, dt) if plan is None else plan.span
    if propagate == "project":
        if plan is None:
            src_rows = act.urows
            y = np.zeros((len(src_rows), N), dtype=dt)
            y[act.row_pos, act.j] = dv * _beta_pow(beta, act.urows // batch % span,
                                                   dt)[act.row_pos]
        else:
            src_rows = act.urows[plan.anchors]
            y = np.bincount(plan.ent_flat, weights=plan.ent_coef * dv,
                            minlength=n_src * N).astype(dt).reshape(n_src, N)
        src = y @ w.T                                       # (rows, n_in)
        width = n_in
        e_cut = np.searchsorted(below.rows, steps)          # below entries of each step
        b_e = below.rows % batch
    else:
        src_rows = act.urows
        src = np.zeros((len(src_rows), N), dtype=dt)
        src[act.row_pos, act.j] = dv * _beta_pow(beta, act.urows // batch % span,
                                                 dt)[act.row_pos]
        width = N
        b_q = below.urows % batch
        delta = np.zeros((int(q_cut[-1]), N), dtype=dt)
    a_cut = np.searchsorted(src_rows, steps)                # source rows of each step
    b_src = src_rows % batch
    state = np.zeros((batch, width), dtype=dt)
    rebase = dt.type(beta ** span) if span < t_hi + 1 else None
    for k in range(t_hi - t_lo, -1, -1):                    # step t = t_lo + k
        scale = dt.type(beta ** (-1.0 - (t_lo + k) % span))
        if propagate == "project":
            e0, e1 = e_cut[k], e_cut[k + 1]
            if e1 > e0:
                g[e0:e1] = state[b_e[e0:e1], below.j[e0:e1]] * scale
        else:
            q0, q1 = q_cut[k], q_cut[k + 1]
            if q1 > q0:
                np.multiply(state[b_q[q0:q1]], scale, out=delta[q0:q1])
        a0, a1 = a_cut[k], a_cut[k + 1]
        if a1 > a0:
            state[b_src[a0:a1]] += src[a0:a1]
        if rebase is not None and (t_lo + k) % span == 0:
            state *= rebase                                 # to the previous reference
    if propagate == "scan":
        n_e = int(np.searchsorted(below.rows, (t_hi + 1) * batch))
        g_rows = delta @ w.T                                # (rows of below, n_in)
        g[:n_e] = g_rows[below.row_pos[:n_e], below.j[:n_e]]
    elif plan is not None and len(plan.pair_ent):
        g += np.bincount(plan.pair_below, minlength=len(below),
                         weights=plan.pair_coef * dv[plan.pair_ent] * w.reshape(-1)[plan.pair_w])
    return g


def sparse_backward(params, fwd, labels, cfg, *, propagate="auto"):
    """The paper's sparse backward pass (see the module docstring).

    Per hidden layer, top down, with ``g`` the gradient of the loss with respect to the
    layer's spikes *at its active entries only*:

    1. ``dV = surrogate(V - V_th) * g`` at the active entries (``surr_grad_spike_kernel``).
    2. ``dW = sum`` over active entries of ``trace[t, b, :] dV[t, b, j]`` into column ``j``
       (``s3gd_w_backward_kernel``): a product ``trace_t @ D`` over the anchor rows of
       the layer's :class:`WeightPlan` plus its scalar corrections.
    3. For the layer below, only at *its* active entries ``(t, b, i)``:
       ``g_below = sum_j W[i, j] Delta[t, b, j]``,
       ``Delta[t] = sum_{t' > t} beta**(t'-1-t) dV[t']`` (``s3gd_s_backward_master_kernel``),
       see :func:`_gradient_below` (a running sum per sample, a product over the anchor rows
       of the :class:`PropagationPlan` plus its corrections); ``propagate`` (``"auto"``,
       ``"project"``, ``"scan"``) picks the order of its product and sum, for tests. The
       spike-count regulariser's gradient is added at the same entries.

    Cost. The GPU kernels do ``O(n_active * n_in)`` scattered work. A NumPy gather or
    scatter costs about as much per element as 20-40 multiply-adds inside a BLAS product, so
    here the bulk of steps 2 and 3 are matrix products over ``(t, b)`` rows. Rows are not
    taken one per distinct active row (13-17 % of all rows for the trained 784-200-200-10
    Fashion-MNIST network at 1 % active entries: nearly every row of the busy steps 5-20
    holds ~15 active neurons): a later row of a sample is folded into an earlier one, exactly,
    and what happened in between (input spikes for ``dW``, active entries of the layer
    below for step 3) is added as scalar (event, entry) corrections, when those are fewer
    than the row's share of the product (``_PAIR_COST``). Measured on that network
    (``bench_ssgd``, 10 epochs, float32, one BLAS thread, load average ~5.5 on 2 cores):
    the rows in the ``dW`` products drop from 17.3 / 13.3 % (layer 1 / 2) to 7.4 / 7.7 %
    (about 220k corrections per batch for layer 1, 60k for layer 2's ``dW`` and projection),
    those of the projection to layer 1 to 9.8 %. With the readout gradient of
    :func:`sparse_readout_grad` and the trace stored input-major (commit b9163a8),
    interleaved medians: layer 2 9.9x, layer 1 14.4x, whole backward 10.8x faster than
    :func:`dense_backward` (10.3x as the mean over training; 7.7x / 7.8x / 7.0x with one row
    per distinct active row and the dense readout gradient).
    What is left (per part, at the trained weights, unloaded): the layer-1 ``dW`` product
    over its anchors (~7 ms), layer 2's projection (its product ~2.3 ms, the per-step
    running sum ~1 ms and the row sums ~0.5 ms) and ``dW`` product (~1.7 ms), and the
    readout gradient (~2.4 ms).
    Tried and dropped, by measurement: column-blocked products (gathering the rows each
    block of neurons needs is slower than the product it saves), restricting each step's
    rows to the neurons active at that step (8-11 % fewer multiply-adds) or each class's
    rows to its inputs (22 %), cumulative sums over the rows sorted by sample (NumPy's
    axis-0 ``cumsum`` is slower than the loop over steps), and the pure input-event form of
    ``dW`` (~67k events x 200 gathers per batch for layer 1).
    """
    if fwd.mode != "sparse":
        raise ValueError(f"sparse_backward needs forward(..., mode='sparse'), not {fwd.mode!r}")
    if propagate not in PROPAGATIONS:
        raise ValueError(f"propagate must be one of {PROPAGATIONS}, not {propagate!r}")
    t0 = time.perf_counter()
    w_out = params[-1]
    dt = w_out.dtype
    # g: the gradient at the top hidden layer's active entries (rows t <= T-2 feed the readout)
    loss, dw_out, g = sparse_readout_grad(fwd, labels, w_out, cfg)
    T, B = fwd.layers[-1].spikes.shape[:2]
    readout_time = time.perf_counter() - t0
    grads = [None] * len(params)
    grads[-1] = dw_out
    layer_times = [0.0] * (len(params) - 1)
    regs = [reg_loss_and_grad(c.counts, cfg, B) for c in fwd.layers]
    reg_total = sum(r[0] for r in regs)
    for li in range(len(params) - 2, -1, -1):
        t0 = time.perf_counter()
        cache = fwd.layers[li]
        act = cache.active
        w = params[li]
        N = w.shape[1]
        g += regs[li][1].astype(dt).reshape(-1)[act.flat % (B * N)]   # at (b, j)
        dv = surrogate(act.vm, cfg.surrogate_scale) * g
        plan = cache.plan
        n_anch = len(plan.anchors)
        d_anch = np.bincount(plan.ent_flat, weights=plan.ent_coef * dv,
                             minlength=n_anch * N).astype(dt).reshape(n_anch, N)
        if cache.trace_cols is None:
            grads[li] = cache.trace_t @ d_anch
        else:
            grads[li] = np.zeros_like(w)
            grads[li][cache.trace_cols] = cache.trace_t @ d_anch
        if len(plan.pair_ent):
            grads[li] += np.bincount(plan.pair_flat, weights=plan.pair_coef * dv[plan.pair_ent],
                                     minlength=w.size).reshape(w.shape)
        if li > 0:
            g = _gradient_below(act, dv, fwd.layers[li - 1].active, w, B, T, cfg.beta,
                                propagate, cache.prop)
        layer_times[li] = time.perf_counter() - t0
    return Gradients(grads, loss, reg_total, layer_times, readout_time)


def backward(params, fwd, labels, cfg):
    """:func:`dense_backward` or :func:`sparse_backward`, as ``fwd.mode`` says."""
    if fwd.mode == "dense":
        return dense_backward(params, fwd, labels, cfg)
    if fwd.mode == "sparse":
        return sparse_backward(params, fwd, labels, cfg)
    raise ValueError(f"no backward pass for a forward run with mode {fwd.mode!r}")


# ----------------------------------------------------------------------------- statistics

def active_fraction(v, cfg, skip_first=True):
    """Fraction of active entries of a ``(T, B, N)`` membrane array (step 0 excluded)."""
    v = np.asarray(v)
    if v.ndim != 3:
        raise ValueError(f"v must be (T, B, N), not shape {v.shape}")
    m = active_mask(v[1:] if skip_first else v, cfg.threshold, cfg.b_th)
    return float(m.mean()) if m.size else 0.0


def active_fraction_per_step(v, cfg):
    """Fraction of active ``(b, j)`` at each step ``t``, shape ``(T,)`` (step 0 is 0)."""
    v = np.asarray(v)
    if v.ndim != 3:
        raise ValueError(f"v must be (T, B, N), not shape {v.shape}")
    f = active_mask(v, cfg.threshold, cfg.b_th).mean(axis=(1, 2))
    f[0] = 0.0
    return f


def cosine_similarity(a, b):
    """Cosine of the angle between two arrays (flattened), in float64.

    Two all-zero arrays give 1.0 (identical); one all-zero array gives 0.0.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"arrays differ in size: {a.size} vs {b.size}")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


# ----------------------------------------------------------------------------- training

def predict(params, times, cfg, batch_size=256):
    """Class predictions ``argmax_c max_t O`` for spike steps ``(n, n_in)``."""
    preds = []
    for i in range(0, len(times), batch_size):
        f = forward(params, times[i:i + batch_size], cfg, mode="none")
        preds.append(np.argmax(f.logits, axis=1))
    return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)


def accuracy(params, times, labels, cfg, batch_size=256):
    """Fraction of correct predictions."""
    if len(times) == 0:
        raise ValueError("no samples to evaluate")
    return float(np.mean(predict(params, times, cfg, batch_size) == np.asarray(labels)))


class Adam:
    """Adam, as ``torch.optim.Adam`` (bias-corrected, no weight decay); updates in place."""

    def __init__(self, params, lr=2e-4, betas=(0.9, 0.999), eps=1e-8):
        self.params = params
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m = [np.zeros_like(p, dtype=np.float64) for p in params]
        self.v = [np.zeros_like(p, dtype=np.float64) for p in params]
        self.t = 0

    def step(self, grads):
        self.t += 1
        b1, b2 = self.betas
        c1 = 1 - b1 ** self.t
        c2 = 1 - b2 ** self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * np.square(g, dtype=np.float64)
            step = self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)
            p -= step.astype(p.dtype)


def train(params, times, labels, cfg, *, backward_mode="sparse", epochs=1, seed=0,
          test=None, on_batch=None, on_epoch=None):
    """Train ``params`` in place with Adam; return a history dict.

    Parameters
    ----------
    times, labels : encoded training set (``(n, n_in)`` spike steps) and labels
    backward_mode : ``"dense"`` or ``"sparse"``
    epochs : int
    seed : int, for the shuffling (``numpy.random.default_rng(seed)``)
    test : optional ``(times, labels)`` evaluated after every epoch
    on_batch : optional callable ``(epoch, batch_index, n_batches, record)``
    on_epoch : optional callable ``(epoch, history)``

    History keys: ``loss`` (cross-entropy per step), ``reg_loss``, ``active`` (fraction per
    hidden layer per step), ``bwd_time`` / ``fwd_time`` (s per step), ``hidden_bwd_time``
    per layer, ``train_acc`` / ``test_acc`` per epoch (train accuracy on the batches seen).
    """
    if backward_mode not in BACKWARDS:
        raise ValueError(f"backward_mode must be one of {BACKWARDS}, not {backward_mode!r}")
    _positive("epochs", epochs, integer=True, allow_zero=True)
    times = np.asarray(times)
    labels = np.asarray(labels)
    n = len(times)
    bs = cfg.batch_size
    n_batches = n // bs
    if n_batches == 0:
        raise ValueError(f"{n} training samples is fewer than one batch of {bs}")
    rng = np.random.default_rng(seed)
    opt = Adam(params, cfg.lr, cfg.adam_betas, cfg.adam_eps)
    hist = {k: [] for k in ("loss", "reg_loss", "active", "fwd_time", "bwd_time",
                            "hidden_bwd_time", "train_acc", "test_acc", "epoch_time")}
    for ep in range(epochs):
        t_ep = time.perf_counter()
        order = rng.permutation(n)
        correct = 0
        for bi in range(n_batches):
            idx = order[bi * bs:(bi + 1) * bs]
            t0 = time.perf_counter()
            fwd = forward(params, times[idx], cfg, mode=backward_mode)
            t1 = time.perf_counter()
            gr = backward(params, fwd, labels[idx], cfg)
            t2 = time.perf_counter()
            opt.step(gr.grads)
            correct += int(np.sum(np.argmax(fwd.logits, axis=1) == labels[idx]))
            if backward_mode == "sparse":
                act = [c.n_active / c.spikes[1:].size for c in fwd.layers]
            else:
                act = [active_fraction(c.v, cfg) for c in fwd.layers]
            rec = {"loss": gr.loss, "reg_loss": gr.reg_loss, "active": act,
                   "fwd_time": t1 - t0, "bwd_time": t2 - t1,
                   "hidden_bwd_time": list(gr.layer_times)}
            for k, v in rec.items():
                hist[k].append(v)
            if on_batch is not None:
                on_batch(ep, bi, n_batches, rec)
        hist["train_acc"].append(correct / (n_batches * bs))
        if test is not None:
            hist["test_acc"].append(accuracy(params, test[0], test[1], cfg))
        hist["epoch_time"].append(time.perf_counter() - t_ep)
        if on_epoch is not None:
            on_epoch(ep, hist)
    return hist
