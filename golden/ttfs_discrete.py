"""The 8-bit discrete-time TTFS model: the specification the hardware matches bit for bit.

The float model (:mod:`spikegate.golden.ttfs`) has non-leaky integrate-and-fire neurons with
threshold 1 and exponentially decaying synaptic current. In ``z = exp(t)`` a neuron whose
causal set has weight sum ``A = sum w_i`` and ``B = sum w_i z_i`` has membrane
``V(t) = A - B / z`` and fires when ``z (A - 1) >= B``. This module discretizes that rule.

Time
    Integer steps ``k = 0 .. T-1`` of ``dt`` time units (:class:`DiscreteConfig`); a spike
    later than step ``T-1`` never happens. Float times map to steps by
    :func:`times_to_steps`: ``k = floor(t / dt + 1/2)`` (round half up).

z table
    ``z_k = round(2**F * exp(k * dt))`` (round half up), ``F = z_frac_bits``; unsigned,
    :func:`z_table`. Width ``z_bits = bit_length(z_{T-1})``.

Weights and threshold
    Per layer, signed 8-bit weights ``w`` and an integer threshold ``theta`` with
    ``w_real ~= w / theta`` (:func:`quantize_layer`: ``theta = max(1, round(127 / max|w|))``,
    ``w = clip(rint(w_real * theta), -128, 127)``; ``rint`` rounds half to even). The
    threshold 1 of the float model is ``theta`` in weight units.

State per neuron (all exact integers, no rounding)
    ``acc_w``  (A) signed, the sum of the weights of the inputs received so far;
    ``acc_wz`` (B) signed, the sum of ``w * z_k`` over those inputs (``k`` = the input's step);
    ``fired``: one bit; ``spike_step``: the step it fired at.
    Widths (:func:`ttfs_widths`) are sized for the worst case, ``fan_in * 128`` and
    ``fan_in * 128 * z_max``, so nothing can overflow: the overflow policy is "cannot
    happen", and the RTL uses the same widths.

One step ``k`` of a layer (the order the hardware follows)
    1. *Compare* (:func:`ttfs_fires`): every neuron that has not fired yet fires at ``k`` when
       ``z_k * (acc_w - theta) >= acc_wz``, using the state left by the inputs of steps
       ``< k``. An input arriving at step ``k`` adds ``w`` to ``acc_w`` and ``w z_k`` to
       ``acc_wz``, which adds ``w z_k`` to both sides: the comparison at step ``k`` is the same
       before and after step ``k``'s inputs, exactly, so the hardware may evaluate it at any
       point of step ``k``. No neuron fires at step 0 (``acc_w = acc_wz = 0 < theta``).
    2. *Accumulate* (:func:`ttfs_accumulate`): each input spike at step ``k`` adds its weight
       row to its destinations' ``acc_w`` and ``acc_wz`` (fired neurons too; they never fire
       again).
    Spikes of step ``k`` of one layer are inputs at step ``k`` of the next: within a step the
    layers run in order, input to output.

Decision
    The first step ``k_d`` at which an output neuron fires; the class is the lowest-indexed
    output neuron firing at ``k_d`` (tie-break: lowest index). The run stops after step
    ``k_d`` (that whole step is processed, every layer); no output spike by step ``T-1``
    gives decision ``-1`` ("no decision") and the run covers all ``T`` steps.

Counts per sample (what the hardware's statistics report)
    ``spikes[l]``: spikes of layer ``l`` (0 = input) at steps ``<= last``, where ``last`` is
    ``k_d`` or ``T-1``; ``lookups[l]``: weights read for weight layer ``l`` =
    ``spikes[l] * n_out(l)`` (a spike reads its whole weight row, nothing else is read).
"""

import math
from dataclasses import dataclass, field

import numpy as np

from .fixed import WEIGHT_BITS, signed_bits, unsigned_bits

__all__ = [
    "NO_SPIKE", "WEIGHT_BITS", "THETA_BITS", "THETA_MAX", "DiscreteConfig", "DiscreteNetwork", "DiscreteResult",
    "z_table", "quantize_layer", "times_to_steps", "ttfs_fires", "ttfs_accumulate",
    "ttfs_widths", "layer_fire_steps", "simulate", "spike_events", "QUIET_FACTORS",
    "QUIET_FACTORS_COARSE",
    "quiet_horizons", "step0_thresholds", "step0_fire_steps",
]

NO_SPIKE = -1
#: Width of a threshold in the hardware (a run-time register): thresholds are 1 .. 4095
#: (``127 / max|w|``: any layer whose largest weight is above 0.031). 12 bits keep
#: ``acc_w - theta`` within 16 bits for small fan-ins, so the compare fits one iCE40 DSP.
THETA_BITS = 12
THETA_MAX = (1 << THETA_BITS) - 1
_WMIN, _WMAX = -(1 << (WEIGHT_BITS - 1)), (1 << (WEIGHT_BITS - 1)) - 1


@dataclass(frozen=True)
class DiscreteConfig:
    """The time grid and the fixed point of ``z``.

    Parameters
    ----------
    timesteps : int
        ``T``: steps ``0 .. T-1`` (1 to 4096). Default 32.
    dt : float
        Time units per step (> 0). Default 1/8: a horizon of 4 time units (z up to e**4),
        the digits' 16 grey levels on 8 steps. On digits, 16, 32, 64 and 128 steps over the
        same horizon give the same accuracy within 1 point; fewer steps mean fewer scans.
    z_frac_bits : int
        ``F``: fractional bits of ``z_k`` (0 to 16). ``z_{T-1}`` must stay below ``2**30``.
    """
    timesteps: int = 32
    dt: float = 1.0 / 8
    z_frac_bits: int = 8

    def __post_init__(self):
        if not isinstance(self.timesteps, (int, np.integer)) or not 1 <= self.timesteps <= 4096:
            raise ValueError(f"timesteps must be an integer from 1 to 4096, not {self.timesteps!r}")
        if not (isinstance(self.dt, (int, float)) and math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"dt must be a positive number, not {self.dt!r}")
        if not isinstance(self.z_frac_bits, (int, np.integer)) or not 0 <= self.z_frac_bits <= 16:
            raise ValueError(f"z_frac_bits must be an integer from 0 to 16, not {self.z_frac_bits!r}")
        zmax = (self.timesteps - 1) * self.dt * math.log2(math.e) + self.z_frac_bits
        if zmax >= 30:
            raise ValueError(f"z_(T-1) = 2**{zmax:.1f} does not fit 30 bits: lower timesteps "
                             f"({self.timesteps}), dt ({self.dt}) or z_frac_bits ({self.z_frac_bits})")

    @property
    def step_bits(self):
        """Width of a step number, with room for ``T`` (the "never" value in the RTL)."""
        return unsigned_bits(self.timesteps)

    def to_dict(self):
        return {"timesteps": int(self.timesteps), "dt": float(self.dt),
                "z_frac_bits": int(self.z_frac_bits)}

    @classmethod
    def from_dict(cls, d):
        return cls(timesteps=int(d["timesteps"]), dt=float(d["dt"]), z_frac_bits=int(d["z_frac_bits"]))


def z_table(config):
    """``z_k = floor(2**F * exp(k dt) + 1/2)`` for ``k = 0 .. T-1``, as int64."""
    k = np.arange(config.timesteps, dtype=np.float64)
    return np.floor(np.exp(k * config.dt) * (1 << config.z_frac_bits) + 0.5).astype(np.int64)


def quantize_layer(w_float):
    """Quantize one layer's float weights to signed 8-bit with an integer threshold.

    Returns ``(w_int8, theta)`` with ``theta = clip(round(127 / max|w|), 1, THETA_MAX)`` (1 when
    every weight is 0) and ``w_int8 = clip(rint(w * theta), -128, 127)``.
    """
    w = np.asarray(w_float, dtype=np.float64)
    if w.ndim != 2 or w.size == 0:
        raise ValueError(f"weights must be a non-empty 2-D array (n_in, n_out), not shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("weights contain NaN or infinity")
    m = float(np.max(np.abs(w)))
    theta = min(THETA_MAX, max(1, int(round(_WMAX / m)))) if m > 0 else 1
    q = np.clip(np.rint(w * theta), _WMIN, _WMAX).astype(np.int8)
    return q, theta


def times_to_steps(times, config):
    """Float spike times to steps: ``floor(t / dt + 1/2)``; ``inf``, NaN or ``>= T`` -> NO_SPIKE.

    Raises ``ValueError`` for negative times.
    """
    t = np.asarray(times, dtype=np.float64)
    finite = np.isfinite(t)
    if np.any(t[finite] < 0):
        raise ValueError(f"spike times must be >= 0, got min {float(np.min(t[finite]))!r}")
    steps = np.full(t.shape, NO_SPIKE, dtype=np.int32)
    k = np.floor(t[finite] / config.dt + 0.5)
    steps[finite] = np.where(k < config.timesteps, k, NO_SPIKE).astype(np.int32)
    return steps


def ttfs_fires(z_k, acc_w, acc_wz, theta):
    """The compare step: ``z_k * (acc_w - theta) >= acc_wz`` (exact integers)."""
    acc_w = np.asarray(acc_w, dtype=np.int64)
    return np.asarray(z_k, dtype=np.int64) * (acc_w - int(theta)) >= np.asarray(acc_wz, dtype=np.int64)


def ttfs_accumulate(acc_w, acc_wz, w, z_k):
    """The accumulate step for one input spike at step ``k``: ``(acc_w + w, acc_wz + w * z_k)``."""
    w = np.asarray(w, dtype=np.int64)
    return np.asarray(acc_w, dtype=np.int64) + w, np.asarray(acc_wz, dtype=np.int64) + w * int(z_k)


def ttfs_widths(fan_in, theta, config):
    """Bit widths of one layer's neuron state, sized so that nothing overflows for any
    threshold up to ``theta`` (the hardware passes :data:`THETA_MAX`, its thresholds being
    run-time registers).

    Returns a dict: ``z_bits`` (unsigned), ``acc_w_bits`` and ``acc_wz_bits`` (signed),
    ``theta_bits`` (unsigned), ``diff_bits`` (signed; ``acc_w - theta``), ``product_bits``
    (signed; ``z * (acc_w - theta)``).
    """
    if fan_in < 1:
        raise ValueError(f"fan_in must be >= 1, not {fan_in!r}")
    if theta < 1:
        raise ValueError(f"theta must be >= 1, not {theta!r}")
    zmax = int(z_table(config)[-1])
    acc_w_bits = signed_bits(fan_in * _WMIN, fan_in * _WMAX)
    acc_wz_bits = signed_bits(fan_in * _WMIN * zmax, fan_in * _WMAX * zmax)
    diff_lo, diff_hi = fan_in * _WMIN - theta, fan_in * _WMAX - theta
    return {
        "z_bits": unsigned_bits(zmax),
        "acc_w_bits": acc_w_bits,
        "acc_wz_bits": acc_wz_bits,
        "theta_bits": unsigned_bits(theta),
        "diff_bits": signed_bits(diff_lo, diff_hi),
        "product_bits": signed_bits(zmax * diff_lo, zmax * diff_hi),
    }


@dataclass
class DiscreteNetwork:
    """A quantized feed-forward TTFS network.

    Members
    -------
    weights : list of int8 arrays, shape ``(n_in, n_out)`` per layer
    thetas : list of int, one threshold per layer (>= 1)
    config : DiscreteConfig
    """
    weights: list
    thetas: list
    config: DiscreteConfig = field(default_factory=DiscreteConfig)

    def __post_init__(self):
        if len(self.weights) < 1:
            raise ValueError("a network needs at least one weight layer")
        if len(self.thetas) != len(self.weights):
            raise ValueError(f"{len(self.weights)} weight layers but {len(self.thetas)} thresholds")
        ws = []
        for l, w in enumerate(self.weights):
            w = np.asarray(w)
            if w.ndim != 2 or w.size == 0:
                raise ValueError(f"layer {l}: weights must be 2-D (n_in, n_out), not shape {w.shape}")
            if not np.issubdtype(w.dtype, np.integer) or w.min() < _WMIN or w.max() > _WMAX:
                raise ValueError(f"layer {l}: weights must be integers in [{_WMIN}, {_WMAX}]")
            if l and w.shape[0] != ws[-1].shape[1]:
                raise ValueError(f"layer {l} has {w.shape[0]} inputs but layer {l - 1} has "
                                 f"{ws[-1].shape[1]} outputs")
            ws.append(w.astype(np.int8))
        self.weights = ws
        for l, th in enumerate(self.thetas):
            if not isinstance(th, (int, np.integer)) or not 1 <= th <= THETA_MAX:
                raise ValueError(f"layer {l}: theta must be an integer from 1 to {THETA_MAX}, "
                                 f"not {th!r}")
        self.thetas = [int(t) for t in self.thetas]

    @classmethod
    def from_float(cls, float_weights, config=None):
        qs = [quantize_layer(w) for w in float_weights]
        return cls([q for q, _ in qs], [t for _, t in qs], config or DiscreteConfig())

    @property
    def sizes(self):
        """Neurons per layer, input first."""
        return (self.weights[0].shape[0],) + tuple(w.shape[1] for w in self.weights)

    def widths(self, layer):
        """:func:`ttfs_widths` of weight layer ``layer``."""
        return ttfs_widths(self.weights[layer].shape[0], self.thetas[layer], self.config)


@dataclass
class DiscreteResult:
    """Per-sample outcome of :func:`simulate` (see the module docstring for the definitions)."""
    decision: np.ndarray        # (batch,) class, -1 = no decision
    decision_step: np.ndarray   # (batch,) k_d, -1 = no decision
    spike_steps: list           # per layer (input first): (batch, n) step or NO_SPIKE, steps <= last
    lookups: np.ndarray         # (batch, n_weight_layers)
    spikes: np.ndarray          # (batch, n_layers) input first

    def lookup_fraction(self, net):
        """Weights read / weights in the layer, per sample and weight layer."""
        total = np.array([w.size for w in net.weights], dtype=np.float64)
        return self.lookups / total

    @property
    def timesteps_to_decision(self):
        """``k_d + 1`` steps were run to reach the decision; ``T`` marks "none" as -1 here."""
        return np.where(self.decision_step >= 0, self.decision_step + 1, -1)


def layer_fire_steps(in_steps, w, theta, config, z=None):
    """Fire step of every neuron of one layer for a batch (NO_SPIKE = never by ``T-1``).

    ``in_steps``: ``(batch, n_in)`` input steps (NO_SPIKE for none). Work: one ``(batch, n_out)``
    compare per step and one matrix product per step that has input spikes.
    """
    in_steps = np.asarray(in_steps)
    if z is None:
        z = z_table(config)
    batch, n_out = in_steps.shape[0], w.shape[1]
    wf = np.asarray(w, dtype=np.float32)   # sums of <= 2**17 * fan-in stay exact in float32 for fan-in <= 128;
    wide = w.shape[0] * 128 >= (1 << 24)   # (exactness guard for huge fan-in)
    if wide:
        wf = np.asarray(w, dtype=np.float64)
    acc_w = np.zeros((batch, n_out), dtype=np.int64)
    acc_wz = np.zeros((batch, n_out), dtype=np.int64)
    fire = np.full((batch, n_out), NO_SPIKE, dtype=np.int32)
    present = set(np.unique(in_steps[in_steps >= 0]).tolist())
    for k in range(config.timesteps):
        can = fire == NO_SPIKE
        fires = can & ttfs_fires(z[k], acc_w, acc_wz, theta)
        fire[fires] = k
        if k in present:
            d = np.rint((in_steps == k).astype(wf.dtype) @ wf).astype(np.int64)
            acc_w, acc_wz = ttfs_accumulate(acc_w, acc_wz, d, z[k])
    return fire


def simulate(net, input_steps, *, chunk=1024):
    """Run the discrete model on a batch of encoded images.

    ``input_steps``: ``(batch, n_in)`` integer steps (NO_SPIKE for pixels that never spike),
    e.g. from :func:`times_to_steps`. Returns a :class:`DiscreteResult`.
    """
    x = np.asarray(input_steps)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[1] != net.sizes[0]:
        raise ValueError(f"input_steps must have shape (batch, {net.sizes[0]}), not {x.shape}")
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"input_steps must be integers, not {x.dtype}")
    T = net.config.timesteps
    if np.any((x < NO_SPIKE) | (x >= T)):
        raise ValueError(f"input steps must be in [0, {T - 1}] or NO_SPIKE ({NO_SPIKE})")
    parts = [_simulate_chunk(net, x[i:i + chunk]) for i in range(0, len(x), chunk)]
    return DiscreteResult(
        decision=np.concatenate([p.decision for p in parts]),
        decision_step=np.concatenate([p.decision_step for p in parts]),
        spike_steps=[np.concatenate([p.spike_steps[l] for p in parts]) for l in range(len(net.sizes))],
        lookups=np.concatenate([p.lookups for p in parts]),
        spikes=np.concatenate([p.spikes for p in parts]),
    )


def _simulate_chunk(net, x):
    z = z_table(net.config)
    T = net.config.timesteps
    steps = [x.astype(np.int32)]
    for w, th in zip(net.weights, net.thetas):
        steps.append(layer_fire_steps(steps[-1], w, th, net.config, z))
    out = steps[-1]
    fired = out != NO_SPIKE
    decided = fired.any(axis=1)
    k_d = np.where(decided, np.where(fired, out, T).min(axis=1), NO_SPIKE)
    decision = np.where(decided, np.argmax(fired & (out == k_d[:, None]), axis=1), -1)
    last = np.where(decided, k_d, T - 1)[:, None]
    shown = [np.where((s != NO_SPIKE) & (s <= last), s, NO_SPIKE).astype(np.int32) for s in steps]
    spikes = np.stack([(s != NO_SPIKE).sum(axis=1) for s in shown], axis=1).astype(np.int64)
    n_out = np.array([w.shape[1] for w in net.weights], dtype=np.int64)
    lookups = spikes[:, :-1] * n_out
    return DiscreteResult(decision=decision.astype(np.int64), decision_step=k_d.astype(np.int64),
                          spike_steps=shown, lookups=lookups, spikes=spikes)


def spike_events(steps):
    """One image's input spikes in the order the hardware takes them.

    ``steps``: ``(n_in,)`` input steps (NO_SPIKE for none). Returns ``(indices, steps)`` of the
    spiking inputs sorted by step, ties by index (any order within a step gives the same
    result; this one is canonical).
    """
    s = np.asarray(steps)
    if s.ndim != 1:
        raise ValueError(f"steps must be 1-D (one image), not shape {s.shape}")
    idx = np.nonzero(s != NO_SPIKE)[0]
    order = idx[np.lexsort((idx, s[idx]))]
    return order.astype(np.int64), s[order].astype(np.int64)


#: The factors ``n / 2**d`` the hardware's scan scheduler tests, as ``(n, d)``, increasing:
#: 9/8, 5/4, 3/2, 2, 4, 8 (``n * x`` is one shift and one add).
QUIET_FACTORS = ((9, 3), (5, 2), (3, 1), (2, 0), (4, 0), (8, 0))
#: The coarse set (2, 4, 8): fewer comparators, more scans.
QUIET_FACTORS_COARSE = ((2, 0), (4, 0), (8, 0))


def quiet_horizons(config, factors=QUIET_FACTORS):
    """Scan-skipping horizons of the hardware scheduler (no effect on results).

    For a factor ``m = n / 2**d``, ``h[i][k]`` is the largest ``h >= 0`` with
    ``z_{k+h} <= m * z_k`` (exactly: ``2**d * z_{k+h} <= n * z_k``; steps beyond ``T - 1``
    count as never firing, so ``h`` may run past the grid). A neuron whose state after step
    ``k`` has ``acc_w > theta`` and ``2**d * acc_wz > n * z_k * (acc_w - theta)`` cannot fire
    at steps ``k+1 .. k+h`` without new input, because there
    ``z * (acc_w - theta) <= m * z_k * (acc_w - theta) < acc_wz``. Returns an int array of
    shape ``(len(factors), T)``.
    """
    z = z_table(config)
    T = len(z)
    pn, pd = 1, 0                                     # factors increase from 1 = 1 / 2**0
    for n, d in factors:
        if not (int(n) == n and int(d) == d and d >= 0 and n << pd > pn << d):
            raise ValueError(f"quiet factors must be (n, d) pairs with n / 2**d increasing "
                             f"from above 1, not {factors!r}")
        pn, pd = int(n), int(d)
    out = np.zeros((len(factors), T), dtype=np.int64)
    for i, (n, d) in enumerate(factors):
        for k in range(T):
            ok = np.flatnonzero((z[k:] << d) <= int(z[k]) * n)
            # z is increasing: the qualifying steps are a prefix; past the grid, no spike.
            h = int(ok[-1]) if len(ok) else 0
            out[i, k] = h if k + h < T - 1 else T - k
    return out


def step0_thresholds(config, theta):
    """Fire thresholds on ``acc_w`` of a layer whose every input arrives at step 0 (binary
    input encoding: each pixel spikes at step 0 or never).

    Such a neuron has ``acc_wz = z_0 * acc_w`` exactly (every input's ``w z_0``), so its
    compare at step ``k``, ``z_k (acc_w - theta) >= z_0 acc_w``, is ``(z_k - z_0) acc_w >= z_k
    theta``: for ``z_k > z_0`` it fires at ``k`` exactly when ``acc_w >= A_k = ceil(z_k theta /
    (z_k - z_0))``, and never where ``z_k = z_0`` (step 0, and any step that ``z``'s rounding
    leaves at ``z_0``). ``A_k`` does not increase with ``k`` (``z_k / (z_k - z_0)`` falls as
    ``z_k`` grows), so a neuron's fire step is the first ``k`` with ``acc_w >= A_k``
    (:func:`step0_fire_steps`): a comparison with a per-step constant instead of a product.
    Returns an int64 array of length ``T``; -1 marks "never at this step"."""
    if not isinstance(theta, (int, np.integer)) or not 1 <= theta <= THETA_MAX:
        raise ValueError(f"theta must be an integer from 1 to {THETA_MAX}, not {theta!r}")
    z = z_table(config)
    gap = z - z[0]
    a = np.full(len(z), -1, dtype=np.int64)
    up = gap > 0
    a[up] = -(-(z[up] * int(theta)) // gap[up])         # ceil, exact integers
    return a


def step0_fire_steps(acc_w, thresholds):
    """Fire step of neurons whose inputs all arrived at step 0, from their ``acc_w`` and
    :func:`step0_thresholds`: the first ``k`` with ``A_k >= 0`` and ``acc_w >= A_k``
    (NO_SPIKE when there is none)."""
    acc_w = np.asarray(acc_w, dtype=np.int64)
    a = np.asarray(thresholds, dtype=np.int64)
    ok = (a >= 0) & (acc_w[..., None] >= a)
    return np.where(ok.any(-1), np.argmax(ok, axis=-1), NO_SPIKE).astype(np.int32)
