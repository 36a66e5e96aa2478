"""The float TTFS model (Mostafa 2017): exact forward pass, closed-form gradients, training.

Neurons
    Non-leaky integrate-and-fire, threshold 1. An input spike at time ``t_i`` injects the
    current ``w_i exp(-(t - t_i))`` for ``t > t_i``; each neuron spikes at most once. In
    ``z = exp(t)`` the membrane after the inputs of a set ``C`` is ``V = A - B / z`` with
    ``A = sum_C w_i`` and ``B = sum_C w_i z_i``, and the neuron's spike is

        ``z_out = B / (A - 1)``

    where the *causal set* ``C`` is the smallest prefix of the inputs sorted by time with
    ``A > 1`` and ``z_out`` strictly below the next input's ``z``. Inputs with equal times
    enter a prefix together (a tie is one event). If no prefix qualifies the neuron never
    spikes: ``z = inf``; it then contributes nothing downstream and gets no gradient.
    Between two input times ``V`` is monotone (``dV/dz = B / z**2``), so checking the prefixes
    in time order finds the exact first crossing; ``z_out >= z`` of the last input of ``C``
    follows from the neuron not having fired earlier.

Gradients (for ``i`` in ``C``; 0 otherwise)
    ``dz_out/dw_i = (z_i - z_out) / (A - 1)``, ``dz_out/dz_i = w_i / (A - 1)``.

Vectorization
    The input times of a layer are shared by all its neurons, so they are ordered once per
    sample, and the prefix sums ``A`` and ``B`` of every neuron are cumulative sums over the
    ordered events. Two exact layouts of the events:

    * *grouped*: when the batch's inputs take at most :data:`MAX_GROUPS` distinct times
      (binary encoding: one; ``digits`` graded: 16; hidden layers under grid-aware training:
      at most the grid's steps), each distinct time is one event and the per-event weight
      sums are one matrix product ``onehot(time) @ W``, or, for layers with few outputs (the
      output layer), one ``bincount`` per output neuron (no ``(batch, events, n_in)``
      one-hot);
    * *ranked*: otherwise (hidden layers, continuous times) each input is one event, the
      weight rows gathered in time order; ties are merged by evaluating a prefix only at the
      last input of each tie.

    No Python loop runs over samples or neurons; large batches are cut into chunks to bound
    memory.

Overflow guard
    Spikes with ``z > Z_MAX`` (``t > ln(1e12) ~ 27.6``, far past the hardware horizon of 4)
    are treated as "no spike" (``inf``), so ``z`` never overflows and ``A - 1`` near 0 cannot
    produce infinities.

Loss
    ``CE(softmax(-s * z_out), label)`` of the output layer (``s = softmax_scale``, 1 by default), with a non-spiking output counted as
    ``z_nospike`` (no gradient through it) and every ``z`` capped at ``z_nospike``; plus the
    weight-sum cost ``K * sum_j max(0, 1 - sum_i w_ij)`` per layer (keeps neurons able to
    fire); plus ``early * mean(z_label)`` (optional, favours an early correct spike so that it
    lands inside the discrete model's horizon).

Initialisation (documented choice)
    ``w ~ Normal(mean = init_mean / n, std = init_std / sqrt(n))`` per layer with ``n`` the
    expected number of input spikes (``n_in``, times ``input_rate`` for the first layer);
    Mostafa draws from a normal distribution with a positive mean so that neurons can fire.
    Defaults ``init_mean = 4``, ``init_std = 1``.

Training
    Adam (``beta1 = 0.9, beta2 = 0.999, eps = 1e-8``), minibatches shuffled with
    ``numpy.random.default_rng(seed)``; each layer's gradient is clipped to norm
    ``clip_norm`` (the closed-form gradients explode when ``A - 1`` is tiny). Everything is
    deterministic for a given seed (float64 throughout). Optional, all off by default
    (:class:`TrainConfig`): spike dropout (the strongest regularizer found on digits), a
    sparsity cost on hidden spikes that come before the decision (fewer weight lookups; fixed,
    or adapted towards a target count of hidden spikes before the decision), a softmax scale,
    L2 weight decay, input time jitter, random image shifts, turns and scalings, and
    time-grid-aware training (hidden spikes moved to the discrete model's grid in the forward
    pass, gradients passed straight
    through) that narrows the gap between the float and the 8-bit discrete model.

Speed
    Run with one BLAS thread (``OPENBLAS_NUM_THREADS=1``; ``spikegate train ttfs`` sets it):
    the products are small and extra threads only contend. MNIST 784-600-10 with binary
    inputs (one input event per sample) and grid-aware training (hidden spikes on 64 steps:
    both layers grouped) took 54-67 s per epoch (minibatch 32) on one core of the reference
    machine while other jobs shared its two cores (not measured idle); Adam's update of the
    471k weights is about a fifth of that. The backward pass of a layer summed by bincount
    gathers its per-event factors as whole rows of one table (one gather for the weight and
    the input gradients) and the forward pass picks the causal set's end by plain indexing,
    not ``take_along_axis`` (which built a full index per element): 784-500-10, minibatch
    64, binary MNIST on the 64-step grid, 20.9 -> 16.4 ms of CPU per minibatch (about 15 s
    of CPU per epoch), weights bit for bit the same.
"""

from dataclasses import dataclass, asdict

import numpy as np

__all__ = [
    "Z_MAX", "MAX_GROUPS", "TTFSNetwork", "TrainConfig", "Adam",
    "times_to_z", "z_to_times", "layer_forward", "layer_backward", "forward", "loss_and_grads",
    "predict", "accuracy", "train", "init_weights", "snap_to_grid",
    "LATE_MIN", "LATE_MAX", "shift_images", "distort_images",
]

Z_MAX = 1e12
MAX_GROUPS = 64
_CHUNK_ELEMS = 1 << 22     # events * neurons per chunk (about 32 MiB per float64 array)
#: Bounds of the adapted sparsity coefficient (TrainConfig.late_target).
LATE_MIN, LATE_MAX = 1e-5, 1.0
_SEGMENT_MAX_OUT = 32      # grouped layers with at most this many outputs sum events by bincount


def times_to_z(times):
    """``z = exp(t)``; ``inf`` (no spike) stays ``inf``."""
    t = np.asarray(times, dtype=np.float64)
    with np.errstate(over="ignore"):
        z = np.exp(t)
    return np.where(z > Z_MAX, np.inf, z)


def z_to_times(z):
    """``t = ln z``; ``inf`` stays ``inf``."""
    return np.log(np.asarray(z, dtype=np.float64))


# --------------------------------------------------------------------------------------
# One layer
# --------------------------------------------------------------------------------------

@dataclass
class _Cache:
    """What the backward pass of one layer (one chunk) needs."""
    mode: str            # "grouped" or "ranked"
    z_out: np.ndarray    # (b, n_out)
    first: np.ndarray    # (b, n_out) index of the last event of the causal set
    den: np.ndarray      # (b, n_out) A - 1 (1 where no spike)
    fired: np.ndarray    # (b, n_out) bool
    zp: np.ndarray       # (b, P) z of each event (0 for no-spike events)
    onehot: np.ndarray = None   # grouped: (b, P, n_in); None when summed by bincount
    group: np.ndarray = None    # grouped: (b, n_in) event of each input (P = none)
    order: np.ndarray = None    # ranked: (b, n_in) inputs in time order
    events: np.ndarray = None   # ranked: (b, P, n_out) weight rows in time order


def _chunk_size(n_events, n_out):
    return max(1, _CHUNK_ELEMS // max(1, n_events * n_out))


def _events(z_in, w, values):
    """Arrange a chunk's input spikes as time-ordered events (see the module docstring)."""
    b, n_in = z_in.shape
    finite = np.isfinite(z_in)
    if values is not None:
        g = len(values)
        group = np.searchsorted(values, z_in)
        group[~finite] = g
        bi, ii = np.nonzero(finite)
        n_out = w.shape[1]
        if g > 1 and n_out <= _SEGMENT_MAX_OUT:
            # few outputs: per-event sums as one bincount per output (no (b, g, n_in) one-hot)
            onehot = None
            f = bi * g + group[bi, ii]
            wg = np.ascontiguousarray(w[ii].T)                 # (n_out, nnz)
            ev = np.empty((n_out, b * g))
            for j in range(n_out):
                ev[j] = np.bincount(f, weights=wg[j], minlength=b * g)
            ev = ev.T.reshape(b, g, n_out)
        else:
            onehot = np.zeros((b, g, n_in), dtype=np.float64)  # contiguous: reshapes are free
            onehot[bi, group[bi, ii], ii] = 1.0
            ev = (onehot.reshape(b * g, n_in) @ w).reshape(b, g, -1)
        zp = np.broadcast_to(values, (b, g))
        z_next = np.broadcast_to(np.append(values[1:], np.inf), (b, g))
        end = np.ones((b, g), dtype=bool)
        return dict(mode="grouped", events=ev, zp=zp, z_next=z_next, end=end,
                    onehot=onehot, group=group)
    order = np.argsort(z_in, axis=1, kind="stable")
    zs = np.take_along_axis(z_in, order, axis=1)
    ev = w[order]                                        # (b, n_in, n_out)
    z_next = np.concatenate([zs[:, 1:], np.full((b, 1), np.inf)], axis=1)
    end = np.isfinite(zs) & (z_next != zs)               # last input of each tie
    zp = np.where(np.isfinite(zs), zs, 0.0)
    return dict(mode="ranked", events=ev, zp=zp, z_next=z_next, end=end, order=order)


def _layer_chunk(z_in, w, values):
    e = _events(z_in, w, values)
    ev, zp = e["events"], e["zp"]
    a = np.cumsum(ev, axis=1)
    bsum = np.cumsum(ev * zp[:, :, None], axis=1)
    den = a - 1.0
    pos = den > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        zc = np.where(pos, bsum / np.where(pos, den, 1.0), np.inf)
    ok = pos & (zc < e["z_next"][:, :, None]) & e["end"][:, :, None]
    fired = ok.any(axis=1)
    first = np.argmax(ok, axis=1)
    bi, oi = np.arange(len(first))[:, None], np.arange(first.shape[1])[None, :]
    z_out = zc[bi, first, oi]
    den_s = den[bi, first, oi]
    fired &= z_out <= Z_MAX
    z_out = np.where(fired, z_out, np.inf)
    den_s = np.where(fired, den_s, 1.0)
    cache = _Cache(mode=e["mode"], z_out=z_out, first=first, den=den_s, fired=fired,
                   zp=np.ascontiguousarray(zp))
    if e["mode"] == "grouped":
        cache.onehot, cache.group = e["onehot"], e["group"]
    else:
        cache.order, cache.events = e["order"], ev
    return z_out, cache


def layer_forward(z_in, w, *, max_groups=MAX_GROUPS):
    """Output spikes ``z_out`` (``(batch, n_out)``, ``inf`` = none) of one layer.

    ``z_in``: ``(batch, n_in)`` input ``z = exp(t)`` (``inf`` = no spike); ``w``:
    ``(n_in, n_out)``. Returns ``(z_out, caches)``; ``caches`` feed :func:`layer_backward`.
    """
    z_in = np.asarray(z_in, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    if z_in.ndim != 2 or w.ndim != 2 or z_in.shape[1] != w.shape[0]:
        raise ValueError(f"z_in {z_in.shape} and w {w.shape} must be (batch, n_in), (n_in, n_out)")
    if np.any(z_in < 1):
        raise ValueError("z_in must be >= 1 (spike times >= 0) or inf")
    finite = z_in[np.isfinite(z_in)]
    values = np.unique(finite)
    n_in, n_out = w.shape
    if len(values) <= max_groups:
        step = _chunk_size(max(len(values), 1), max(n_in, n_out))
    else:
        values = None
        step = _chunk_size(n_in, n_out)
    outs, caches = [], []
    for s in range(0, len(z_in), step):
        o, c = _layer_chunk(z_in[s:s + step], w, values)
        outs.append(o)
        caches.append(c)
    if not outs:
        return np.zeros((0, n_out)), []
    return np.concatenate(outs), caches


def _layer_backward_chunk(c, w, dz_out, need_input_grad):
    b, n_out = dz_out.shape
    p = c.zp.shape[1]
    d = np.where(c.fired, dz_out / c.den, 0.0)                       # (b, n_out)
    mask = np.arange(p)[None, :, None] <= c.first[:, None, :]        # (b, P, n_out)
    pm = mask * d[:, None, :]                                        # dL/dB-like factor
    r = pm * c.zp[:, :, None] - mask * (d * np.where(c.fired, c.z_out, 0.0))[:, None, :]
    dz_in = None
    if c.mode == "grouped" and c.onehot is None:
        # per input, the factors of its event (row p: no spike, zero), gathered as whole rows
        # of one (b * (p + 1), 2 * n_out) table (one gather for both factors)
        table = np.zeros((b, p + 1, 2 * n_out))
        table[:, :p, :n_out] = r
        table[:, :p, n_out:] = pm
        rows = c.group + (p + 1) * np.arange(b)[:, None]               # (b, n_in)
        x = table.reshape(b * (p + 1), 2 * n_out)[rows]                 # (b, n_in, 2 n_out)
        dw = x[:, :, :n_out].sum(axis=0)
        if need_input_grad:
            dz_in = np.einsum("bij,ij->bi", x[:, :, n_out:], w)
    elif c.mode == "grouped":
        n_in = c.onehot.shape[2]
        dw = c.onehot.reshape(b * p, n_in).T @ r.reshape(b * p, n_out)
        if need_input_grad:
            x = pm @ w.T                                             # (b, P, n_in)
            x = np.concatenate([x, np.zeros((b, 1, n_in))], axis=1)
            dz_in = np.take_along_axis(x, c.group[:, None, :], axis=1)[:, 0]
    else:
        n_in = c.order.shape[1]
        rank = np.argsort(c.order, axis=1)
        dw = np.take_along_axis(r, rank[:, :, None], axis=1).sum(axis=0)
        if need_input_grad:
            g = (c.events * pm).sum(axis=2)                          # (b, P)
            dz_in = np.take_along_axis(g, rank, axis=1)
    return dw, dz_in


def layer_backward(caches, w, dz_out, *, need_input_grad=True):
    """Gradients of one layer: ``(dL/dw, dL/dz_in)`` from ``dL/dz_out`` (``(batch, n_out)``).

    Non-spiking neurons pass no gradient; ``dL/dz_in`` is 0 for inputs outside every causal
    set (and for non-spiking inputs). ``dL/dz_in`` is None when not requested.
    """
    w = np.asarray(w, dtype=np.float64)
    dz_out = np.asarray(dz_out, dtype=np.float64)
    dw = np.zeros_like(w)
    parts, s = [], 0
    for c in caches:
        n = c.z_out.shape[0]
        g, gi = _layer_backward_chunk(c, w, dz_out[s:s + n], need_input_grad)
        dw += g
        parts.append(gi)
        s += n
    dz_in = np.concatenate(parts) if need_input_grad and parts else None
    return dw, dz_in


# --------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------

def init_weights(sizes, seed=0, *, init_mean=4.0, init_std=1.0, input_rate=1.0):
    """Float weights ``(n_in, n_out)`` per layer (see the module docstring).

    ``input_rate``: the fraction of input pixels that spike (binary MNIST: about 0.13); the
    first layer's ``n_in`` is replaced by ``n_in * input_rate`` so that a typical input still
    brings a hidden neuron's weight sum to about ``init_mean`` (> 1: it fires).
    """
    if not 0 < input_rate <= 1:
        raise ValueError(f"input_rate must be in (0, 1], not {input_rate!r}")
    rng = np.random.default_rng(seed)
    ws = []
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        n_eff = n_in * input_rate if l == 0 else n_in
        ws.append(rng.normal(init_mean / n_eff, init_std / np.sqrt(n_eff), size=(n_in, n_out)))
    return ws


@dataclass
class TTFSNetwork:
    """A feed-forward TTFS network in float64.

    Members
    -------
    weights : list of float64 arrays ``(n_in, n_out)``, input layer first.
    """
    weights: list

    def __post_init__(self):
        if len(self.weights) < 1:
            raise ValueError("a network needs at least one weight layer")
        ws = []
        for l, w in enumerate(self.weights):
            w = np.array(w, dtype=np.float64)
            if w.ndim != 2 or w.size == 0:
                raise ValueError(f"layer {l}: weights must be 2-D (n_in, n_out), not shape {w.shape}")
            if ws and w.shape[0] != ws[-1].shape[1]:
                raise ValueError(f"layer {l} has {w.shape[0]} inputs but layer {l - 1} has "
                                 f"{ws[-1].shape[1]} outputs")
            if not np.all(np.isfinite(w)):
                raise ValueError(f"layer {l}: weights contain NaN or infinity")
            ws.append(w)
        self.weights = ws

    @classmethod
    def create(cls, sizes, seed=0, **init):
        """A network with layer ``sizes`` (input first, at least 2 entries) and random weights."""
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes must be at least two positive layer sizes, not {sizes!r}")
        return cls(init_weights(sizes, seed, **init))

    @property
    def sizes(self):
        return (self.weights[0].shape[0],) + tuple(w.shape[1] for w in self.weights)


def snap_to_grid(z, dt, steps=0):
    """Hidden spikes as the discrete model sees them: ``t -> dt * ceil(t / dt)`` (the first
    step at or after the float spike), ``inf`` from step ``steps`` on (``steps = 0``: no
    horizon). Returns z."""
    with np.errstate(divide="ignore"):
        k = np.ceil(np.log(z) / dt - 1e-9)
    if steps:
        k = np.where(k <= steps - 1, k, np.inf)
    return np.exp(k * dt)


def forward(net, z_in, *, drop=0.0, rng=None, grid=None):
    """Spikes of every layer: a list of ``(batch, n)`` z arrays (input first) and the caches.

    ``drop > 0`` (training only) deletes each input and hidden spike with that probability
    (spike dropout, drawn from ``rng``); the gradients stay exact for the thinned network.
    ``grid = (dt, steps)`` (training only) snaps hidden spikes with :func:`snap_to_grid`
    before the next layer sees them; :func:`loss_and_grads` passes their gradient straight
    through.
    """
    z = np.asarray(z_in, dtype=np.float64)
    zs, caches = [], []
    for l, w in enumerate(net.weights):
        if l and grid is not None:
            z = snap_to_grid(z, *grid)
        if drop:
            z = np.where(rng.random(z.shape) < drop, np.inf, z)
        zs.append(z)
        z, c = layer_forward(z, w)
        caches.append(c)
    zs.append(z)
    return zs, caches


def _softmax_ce(z_out, labels, z_nospike, scale=1.0, late_label=False):
    zl = np.minimum(np.where(np.isfinite(z_out), z_out, z_nospike), z_nospike)
    logits = -scale * zl
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    p = e / e.sum(axis=1, keepdims=True)
    n = len(labels)
    idx = np.arange(n)
    loss = float(np.mean(-np.log(np.maximum(p[idx, labels], 1e-300))))
    onehot = np.zeros_like(p)
    onehot[idx, labels] = 1.0
    dz = scale * (onehot - p) / n             # dL/dz = -scale * dL/dlogit
    live = np.isfinite(z_out) & (z_out < z_nospike)
    if late_label:
        # the label's neuron firing after the cap: its gradient as if at the cap (earlier)
        live |= np.isfinite(z_out) & (onehot > 0)
    dz = np.where(live, dz, 0.0)
    return loss, dz


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (stored in the model file's training info).

    Parameters
    ----------
    epochs, batch_size, lr, seed : the usual.
    weight_sum_cost : float
        ``K`` of the weight-sum cost ``K * sum_j max(0, 1 - sum_i w_ij)``.
    early : float
        Coefficient of ``mean(z_label)`` (0 = Mostafa's loss exactly).
    z_nospike : float
        The ``z`` counted for a non-spiking output in the softmax (and the cap of every ``z``).
    clip_norm : float
        Per-layer gradient norm clip (``inf`` = off).
    lr_decay : float
        Learning rate multiplied by this after every epoch.
    weight_decay : float
        L2 coefficient: ``weight_decay / 2 * sum w**2`` is added to the loss.
    jitter : float
        Training-time augmentation: Gaussian noise of this standard deviation (time units) is
        added to every finite input spike time (clipped at 0), redrawn for every minibatch.
    late : float
        Coefficient of the sparsity cost ``late * sum_h exp(-t_h)`` over the hidden spikes
        before the decision (the first output spike), per sample: pushes those spikes later,
        so fewer weights are looked up before the decision.
    late_target : float
        0: ``late`` is fixed. ``> 0``: the target mean number of hidden spikes before the
        decision per sample; ``late`` is then the starting coefficient and is adapted after
        every minibatch, ``late *= exp(late_rate * clip(ln(n / late_target), -3, 3))`` with
        ``n`` the minibatch's mean count (a slow multiplicative controller: at twice the target
        ``late`` roughly doubles per MNIST epoch of 1875 minibatches), kept in
        ``[LATE_MIN, LATE_MAX]``. Adapting slowly matters: forcing the target from the start
        (before the network has learned) leaves many outputs silent.
    late_rate : float
        Step of that controller per minibatch.
    shift : int
        Training-time augmentation: every minibatch image (a square of ``n_in`` pixels) is
        moved by a random whole number of pixels in ``[-shift, shift]`` along each axis, drawn
        per image; pixels moved in from outside do not spike. 0 = off.
    rotate : float
        Training-time augmentation: every minibatch image is also turned about its centre by
        an angle drawn uniformly from ``[-rotate, rotate]`` degrees (per image; nearest
        pixel, :func:`distort_images`). 0 = off.
    scale : float
        Training-time augmentation: every minibatch image is also scaled about its centre
        by a factor drawn uniformly from ``[1 - scale, 1 + scale]`` (per image). 0 = off.
    silent_cost : float
        0: Mostafa's loss, where an output neuron that fires after ``z_nospike`` or never
        passes no gradient. ``> 0``: the label's neuron still learns when it is silent:
        firing after ``z_nospike``, its cross-entropy gradient is applied as if it fired at
        ``z_nospike`` (it is pushed earlier); never firing (the weights of all the spikes it
        received sum to ``A <= 1``), the cost ``silent_cost * (1 - A)`` per sample raises
        those weights. Without it, samples whose label neuron falls silent (which a
        sparsity cost makes common) never recover.
    """
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    weight_sum_cost: float = 1.0
    early: float = 0.0
    z_nospike: float = 100.0
    clip_norm: float = 10.0
    lr_decay: float = 0.9
    weight_decay: float = 0.0
    jitter: float = 0.0
    dropout: float = 0.0
    late: float = 0.0
    late_target: float = 0.0
    late_rate: float = 5e-4
    silent_cost: float = 0.0
    softmax_scale: float = 1.0
    grid_dt: float = 0.0
    grid_steps: int = 0
    grid_output: bool = False
    shift: int = 0
    rotate: float = 0.0
    scale: float = 0.0

    def __post_init__(self):
        if not isinstance(self.epochs, (int, np.integer)) or self.epochs < 0:
            raise ValueError(f"epochs must be an integer >= 0, not {self.epochs!r}")
        if not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, not {self.batch_size!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, not {self.lr!r}")
        if not self.z_nospike > 1:
            raise ValueError(f"z_nospike must be > 1, not {self.z_nospike!r}")
        if not self.grid_dt >= 0 or not self.grid_steps >= 0:
            raise ValueError(f"grid_dt and grid_steps must be >= 0, not {self.grid_dt!r}, "
                             f"{self.grid_steps!r}")
        if not self.softmax_scale > 0:
            raise ValueError(f"softmax_scale must be > 0, not {self.softmax_scale!r}")
        if not self.clip_norm > 0:
            raise ValueError(f"clip_norm must be > 0, not {self.clip_norm!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout!r}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], not {self.lr_decay!r}")
        if not isinstance(self.shift, (int, np.integer)) or isinstance(self.shift, bool) \
                or self.shift < 0:
            raise ValueError(f"shift must be an integer >= 0, not {self.shift!r}")
        if not 0 <= self.rotate <= 180:
            raise ValueError(f"rotate must be in [0, 180] degrees, not {self.rotate!r}")
        if not 0 <= self.scale < 1:
            raise ValueError(f"scale must be in [0, 1), not {self.scale!r}")
        if self.late_target and not self.late > 0:
            raise ValueError(f"late_target needs a starting late > 0, not {self.late!r}")
        for name in ("weight_sum_cost", "early", "weight_decay", "jitter", "late", "late_target",
                     "late_rate", "silent_cost"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)!r}")

    def to_dict(self):
        return {k: (float(v) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def loss_and_grads(net, z_in, labels, cfg=TrainConfig(), rng=None, *, late=None, stats=None):
    """Loss, per-layer weight gradients and output ``z`` of one minibatch.

    ``rng`` draws the spike dropout (needed when ``cfg.dropout > 0``). ``late`` overrides
    ``cfg.late``. ``stats`` (a dict) receives ``hidden_before``: the mean number of hidden
    spikes (all hidden layers) before the decision per sample.
    """
    late = cfg.late if late is None else late
    labels = np.asarray(labels)
    if cfg.dropout and rng is None:
        raise ValueError("dropout needs an rng")
    grid = (cfg.grid_dt, cfg.grid_steps) if cfg.grid_dt else None
    zs, caches = forward(net, z_in, drop=cfg.dropout, rng=rng, grid=grid)
    z_out = zs[-1]
    if grid is not None and cfg.grid_output:
        z_out = snap_to_grid(z_out, *grid)        # loss on the decision grid (straight through)
    loss, dz = _softmax_ce(z_out, labels, cfg.z_nospike, cfg.softmax_scale,
                           late_label=cfg.silent_cost > 0)
    if cfg.early:
        idx = np.arange(len(labels))
        zl = z_out[idx, labels]
        ok = np.isfinite(zl) & (zl < cfg.z_nospike)
        loss += cfg.early * float(np.mean(np.where(ok, zl, 0.0)))
        dz[idx, labels] += np.where(ok, cfg.early / len(labels), 0.0)
    grads = [None] * len(net.weights)
    z_decision = np.min(z_out, axis=1) if z_out.shape[1] else np.full(len(z_out), np.inf)
    z_decision = np.where(np.isfinite(z_decision), z_decision, Z_MAX)
    if stats is not None:
        stats["hidden_before"] = sum(float(np.sum(zs[l] < z_decision[:, None]))
                                     for l in range(1, len(net.weights))) / max(len(labels), 1)
    for l in range(len(net.weights) - 1, -1, -1):
        if late and l < len(net.weights) - 1:
            # dz is dL/dz of layer l+1's inputs = hidden layer l+1's spikes
            zh = zs[l + 1]
            ok = zh < z_decision[:, None]             # only spikes before the decision count
            inv = np.where(ok, 1.0 / np.where(ok, zh, 1.0), 0.0)
            loss += late * float(inv.sum()) / len(labels)
            dz = dz - late * inv * inv / len(labels)
        dw, dz = layer_backward(caches[l], net.weights[l], dz, need_input_grad=l > 0)
        if cfg.silent_cost and l == len(net.weights) - 1:
            idx = np.arange(len(labels))
            silent = ~np.isfinite(z_out[idx, labels])
            if silent.any():
                spikes = np.isfinite(zs[l][silent]).astype(np.float64)     # (m, n_in)
                a_sum = np.sum(spikes * net.weights[l][:, labels[silent]].T, axis=1)
                short = a_sum < 1.0
                loss += cfg.silent_cost * float(np.sum(1.0 - a_sum[short])) / len(labels)
                target = np.zeros((int(short.sum()), dw.shape[1]))
                target[np.arange(len(target)), labels[silent][short]] = 1.0
                dw = dw - cfg.silent_cost / len(labels) * (spikes[short].T @ target)
        if cfg.weight_sum_cost:
            deficit = 1.0 - net.weights[l].sum(axis=0)
            loss += cfg.weight_sum_cost * float(np.maximum(deficit, 0).sum())
            dw = dw - cfg.weight_sum_cost * (deficit > 0)[None, :]
        if cfg.weight_decay:
            loss += 0.5 * cfg.weight_decay * float(np.sum(net.weights[l] ** 2))
            dw = dw + cfg.weight_decay * net.weights[l]
        grads[l] = dw
    return loss, grads, z_out


class Adam:
    """Adam over a list of arrays (updated in place)."""

    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, params, grads):
        """One update (in place, one scratch array per parameter: no other temporaries)."""
        self.t += 1
        c1 = 1 - self.beta1 ** self.t
        c2 = 1 - self.beta2 ** self.t
        if not hasattr(self, "_tmp"):
            self._tmp = [np.empty_like(p) for p in params]
        for p, g, m, v, tmp in zip(params, grads, self.m, self.v, self._tmp):
            m *= self.beta1
            np.multiply(g, 1 - self.beta1, out=tmp)
            m += tmp
            v *= self.beta2
            np.multiply(g, g, out=tmp)
            tmp *= 1 - self.beta2
            v += tmp
            # p -= lr * (m / c1) / (sqrt(v / c2) + eps)
            np.multiply(v, 1 / c2, out=tmp)
            np.sqrt(tmp, out=tmp)
            tmp += self.eps
            np.divide(m, tmp, out=tmp)
            tmp *= self.lr / c1
            p -= tmp


def predict(net, z_in, batch_size=1000):
    """Class of the first output spike (lowest index on ties), -1 when no output spikes."""
    z_in = np.asarray(z_in, dtype=np.float64)
    out = []
    for s in range(0, len(z_in), batch_size):
        zs, _ = forward(net, z_in[s:s + batch_size])
        z = zs[-1]
        any_ = np.isfinite(z).any(axis=1)
        out.append(np.where(any_, np.argmin(z, axis=1), -1))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def accuracy(net, z_in, labels, batch_size=1000):
    """Fraction of samples whose first output spike is the label's neuron."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return 0.0
    return float(np.mean(predict(net, z_in, batch_size) == labels))


def shift_images(z, shift, rng):
    """Images ``z`` (``(batch, side * side)``, row-major) each moved by a random whole number of
    pixels in ``[-shift, shift]`` along each axis (drawn from ``rng``, per image); pixels moved
    in from outside are ``inf`` (no spike)."""
    b, n = z.shape
    side = int(round(np.sqrt(n)))
    if side * side != n:
        raise ValueError(f"shift needs square images, not {n} inputs")
    if shift == 0 or b == 0:
        return z
    pad = np.full((b, side + 2 * shift, side + 2 * shift), np.inf)
    pad[:, shift:shift + side, shift:shift + side] = z.reshape(b, side, side)
    d = rng.integers(-shift, shift + 1, size=(b, 2))          # (dy, dx): content moves by it
    ar = np.arange(side)
    rows = (shift - d[:, 0])[:, None] + ar                    # (b, side)
    cols = (shift - d[:, 1])[:, None] + ar
    out = pad[np.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return out.reshape(b, n)


def distort_images(z, rng, *, shift=0, rotate=0.0, scale=0.0):
    """Images ``z`` (``(batch, side * side)``, row-major) each turned about its centre by an
    angle drawn uniformly from ``[-rotate, rotate]`` degrees, scaled about it by a factor from
    ``[1 - scale, 1 + scale]`` and moved by a whole number of pixels in ``[-shift, shift]``
    along each axis (all drawn from ``rng``, per image). Each output pixel takes the value of
    the nearest source pixel (the values are spike times: nothing is interpolated); pixels
    whose source lies outside the image are ``inf`` (no spike)."""
    b, n = z.shape
    side = int(round(np.sqrt(n)))
    if side * side != n:
        raise ValueError(f"distort_images needs square images, not {n} inputs")
    if not 0 <= rotate <= 180 or not 0 <= scale < 1 or shift < 0:
        raise ValueError(f"need rotate in [0, 180], scale in [0, 1), shift >= 0, not "
                         f"{rotate!r}, {scale!r}, {shift!r}")
    if b == 0 or (rotate == 0 and scale == 0 and shift == 0):
        return z
    theta = np.deg2rad(rng.uniform(-rotate, rotate, size=b))
    factor = 1.0 + rng.uniform(-scale, scale, size=b)
    d = rng.integers(-shift, shift + 1, size=(b, 2))              # (dy, dx): content moves by it
    c = (side - 1) / 2.0
    ar = np.arange(side) - c
    oy = ar[None, :, None] - d[:, 0, None, None]                  # (b, side, 1)
    ox = ar[None, None, :] - d[:, 1, None, None]                  # (b, 1, side)
    cos = (np.cos(theta) / factor)[:, None, None]
    sin = (np.sin(theta) / factor)[:, None, None]
    # the inverse map: the source of output pixel o is R(-theta) o / factor
    sy = np.floor(cos * oy - sin * ox + c + 0.5).astype(np.int64)
    sx = np.floor(sin * oy + cos * ox + c + 0.5).astype(np.int64)
    inside = (sy >= 0) & (sy < side) & (sx >= 0) & (sx < side)
    src = np.where(inside, sy * side + sx, 0)
    out = np.take_along_axis(z, src.reshape(b, n), axis=1)
    return np.where(inside.reshape(b, n), out, np.inf)


def train(net, z_train, y_train, cfg=TrainConfig(), *, callback=None, epoch_callback=None,
          info=None):
    """Train ``net`` in place with Adam; returns the per-epoch mean training loss.

    ``z_train``: ``(n, n_in)`` input z (``times_to_z`` of the encoded images).
    ``callback(epoch, batch, n_batches, loss, acc)`` is called after every minibatch with the
    running mean loss and training accuracy of the epoch (for progress bars);
    ``epoch_callback(epoch, net, mean_loss)`` after every epoch (for checkpoints).
    ``info`` (a dict) receives per-epoch lists ``late`` (the sparsity coefficient at the end
    of the epoch) and ``hidden_before`` (the epoch's mean hidden spikes before the decision).
    """
    z_train = np.asarray(z_train, dtype=np.float64)
    y_train = np.asarray(y_train)
    rng = np.random.default_rng(cfg.seed)
    opt = Adam(net.weights, lr=cfg.lr)
    n = len(z_train)
    n_batches = (n + cfg.batch_size - 1) // cfg.batch_size
    history = []
    late = cfg.late
    info = {} if info is None else info
    info.setdefault("late", [])
    info.setdefault("hidden_before", [])
    for epoch in range(cfg.epochs):
        perm = rng.permutation(n)
        tot_loss, tot_ok, seen, tot_before = 0.0, 0, 0, 0.0
        for bi in range(n_batches):
            idx = perm[bi * cfg.batch_size:(bi + 1) * cfg.batch_size]
            zb = z_train[idx]
            if cfg.rotate or cfg.scale:
                zb = distort_images(zb, rng, shift=cfg.shift, rotate=cfg.rotate,
                                    scale=cfg.scale)
            elif cfg.shift:
                zb = shift_images(zb, cfg.shift, rng)
            if cfg.jitter:
                noise = np.exp(rng.normal(0.0, cfg.jitter, size=zb.shape))
                zb = np.where(np.isfinite(zb), np.maximum(zb * noise, 1.0), np.inf)
            stats = {}
            loss, grads, z_out = loss_and_grads(net, zb, y_train[idx], cfg, rng, late=late,
                                                stats=stats)
            tot_before += stats["hidden_before"] * len(idx)
            if cfg.late_target:
                ratio = max(stats["hidden_before"], 1e-3) / cfg.late_target
                late *= np.exp(cfg.late_rate * np.clip(np.log(ratio), -3.0, 3.0))
                late = float(np.clip(late, LATE_MIN, LATE_MAX))
            for l, g in enumerate(grads):
                norm = float(np.sqrt(np.sum(g * g)))
                if norm > cfg.clip_norm:
                    grads[l] = g * (cfg.clip_norm / norm)
            opt.step(net.weights, grads)
            pred = np.where(np.isfinite(z_out).any(axis=1), np.argmin(z_out, axis=1), -1)
            tot_ok += int(np.sum(pred == y_train[idx]))
            tot_loss += loss * len(idx)
            seen += len(idx)
            if callback is not None:
                callback(epoch, bi + 1, n_batches, tot_loss / seen, tot_ok / seen)
        history.append(tot_loss / max(seen, 1))
        info["late"].append(late)
        info["hidden_before"].append(tot_before / max(seen, 1))
        opt.lr *= cfg.lr_decay
        if epoch_callback is not None:
            epoch_callback(epoch, net, history[-1])
    return history
