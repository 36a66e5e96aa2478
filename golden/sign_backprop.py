"""On-chip learning: popcount-based sign backpropagation on the 8-bit discrete TTFS model.

This is the specification the hardware learning unit matches bit for bit. It learns on the
:class:`~spikegate.golden.ttfs_discrete.DiscreteNetwork` (signed 8-bit weights, integer
thresholds) one image at a time, with nothing but signs, popcounts, comparisons and a
saturating add. The float exact-gradient rule it is compared with is
:func:`spikegate.golden.ttfs.train` (then :func:`~spikegate.golden.ttfs_discrete.quantize_layer`).

The forward pass
    :func:`~spikegate.golden.ttfs_discrete.simulate` on the image, with its semantics: the
    run stops after the decision step ``k_d``; ``last = k_d``, or ``T - 1`` when no output
    fired ("no decision"). A neuron *fired* when its step in
    :attr:`~spikegate.golden.ttfs_discrete.DiscreteResult.spike_steps` is not ``NO_SPIKE``,
    i.e. it fired at a step ``<= last``; a neuron that would fire after ``last`` counts as
    not fired. Input pixels are layer 0 and follow the same definition.

The rule, per training image with label ``c`` (all deltas in {-1, 0, +1}; +1 = "spike
earlier", -1 = "spike later"):

1. **Output deltas.** Every output ``o != c`` that fired gets ``delta_o = -1``;
   ``delta_c = +1`` if the decision is not ``c`` (another class, or no decision), else 0.
   Every other output gets 0. So a correct decision with no other output firing at ``k_d``
   changes nothing, and on a tie that ``c`` won on the lower index the other outputs firing
   at ``k_d`` are still pushed later (and ``c`` gets 0); on a tie that ``c`` lost on the
   index, ``c`` gets +1 and the others -1.
2. **Hidden deltas** (every neuron ``h`` of a hidden layer, whether it fired or not), from
   the *pre-update* weights ``w_ho`` (int8) of the weight layer above and the deltas
   ``delta_o`` of the layer above, with bit vectors over ``o``: ``w_pos = w_ho > 0``,
   ``w_neg = w_ho < 0``, ``d_pos = delta_o > 0``, ``d_neg = delta_o < 0``::

       P_h = popcount((w_pos & d_pos) | (w_neg & d_neg))     # votes for "earlier"
       N_h = popcount((w_pos & d_neg) | (w_neg & d_pos))     # votes for "later"
       delta_h = +1 if P_h > N_h, -1 if N_h > P_h, 0 if P_h == N_h

   i.e. ``delta_h = sign(sum_o sign(w_ho) * delta_o)``; zero weights and zero deltas vote
   for neither. With more than one hidden layer the same rule runs layer by layer, top down
   (the deltas of hidden layer ``l`` come from the deltas of layer ``l + 1`` and the signs
   of weight layer ``l + 1``). The input layer gets no delta. Counts are exact integers in
   ``0 .. n_above`` (the popcount of :mod:`spikegate.golden.popcount`).
3. **Causal sets.** Source ``i`` (layer ``l``) is in the causal set of destination ``j``
   (layer ``l + 1``) iff ``i`` fired and either ``j`` fired and ``step_i < step_j``
   (strictly: a source firing at the same step as ``j`` did not cause it), or ``j`` did not
   fire (then every source that fired in the run, up to ``last``, is in it). **Neurons that
   never spiked therefore learn from every source spike of the run.**
4. **Weight update**, after all deltas of the image were computed from the pre-update
   weights: for every destination ``j`` with ``delta_j != 0`` and every source ``i`` in its
   causal set::

       w_ij <- saturate(w_ij + delta_j * 2**lr_shift, -128, 127)

   ``lr_shift`` is an integer ``0 .. 6`` (step 1 to 64). Saturating, never wrapping; exact
   integers (no rounding, no stochastic rounding: the step is a power of two). Every weight
   layer is updated (the output layer with the output deltas, the hidden layers with their
   deltas); the thresholds ``theta`` never change. Weights outside the causal sets, and all
   weights into destinations with delta 0, are not written.
5. **Labels** outside ``0 .. n_classes - 1`` raise ``ValueError`` naming the label and no
   weight changes (the hardware refuses them with an error flag).

Options (off by default; the defaults are the rule above, bit for bit what the hardware does)
    ``errors_only`` (:func:`sign_backprop_step`, :func:`train_sign`): an image whose decision
    is already the label changes nothing (all deltas 0, no weight written), also when other
    outputs tie with ``c`` at ``k_d``; every other image is trained exactly as above. It needs
    no hardware change: it is the host protocol "``CLASSIFY`` the image, then ``TRAIN`` it
    (with the same weights, so the same forward pass) only when the decision was wrong".
    Without it, a correct decision that other outputs tie at ``k_d`` (frequent on a coarse
    time grid) still pushes them later and moves every causal weight of the hidden neurons
    that vote for it; on digits those updates cost accuracy (``scripts/bench_sign.py``).

    ``lfsr`` (:func:`sign_backprop_step`, :func:`train_sign`; an :class:`UpdateLFSR` with
    ``k >= 1``): stochastic rounding of the step, i.e. an expected step of ``2**lr_shift /
    2**k``. Each *candidate write* (a weight the rule above writes: causal and ``delta_j !=
    0``, saturated or not) is carried out only when ``k`` fresh bits of the LFSR are all 0
    (probability ``(2**(16 - k) - 1) / (2**16 - 1)``, about ``2**-k``); otherwise that weight is
    not written. **This needs a hardware change** (the learning unit has no LFSR yet).

    The LFSR: 16-bit Fibonacci, polynomial ``x^16 + x^14 + x^13 + x^11 + 1`` (maximal, period
    65535), state ``s`` (16 bits, never 0), initial state ``LFSR_SEED = 0xACE1`` when the
    training run starts (:class:`UpdateLFSR`; it is *not* reset per image). One step::

        b = (s ^ (s >> 2) ^ (s >> 3) ^ (s >> 5)) & 1;   s = (s >> 1) | (b << 15)

    and ``b`` is the step's bit. A candidate write takes ``k`` steps (``k`` bits) and is
    carried out iff all ``k`` bits are 0 -- after the ``k`` steps they are the top ``k`` bits
    of the state, so the test is ``s >> (16 - k) == 0`` on the new state; the LFSR advances
    only for candidate writes (a
    weight that is not causal, or whose destination has delta 0, takes no bits). Candidates
    take their bits in the hardware's write order: weight layer 0 first, its source rows in
    input-spike order (:func:`~spikegate.golden.ttfs_discrete.spike_events`: by step, ties
    by index), then weight layers ``1, 2, ...``, their source rows (the neurons that fired)
    in index order; within a row, destinations ``j = 0, 1, ...`` (lane groups in order,
    lanes ``0 .. L-1`` within a group, ``j = group * L + lane``).

Requantizing (fine-tuning)
    :func:`requantize`: float weights to int8 with given thresholds, ``w = clip(rint(w_real *
    theta), -128, 127)`` (``rint`` half to even, as
    :func:`~spikegate.golden.ttfs_discrete.quantize_layer`, which instead picks ``theta =
    round(127 / max|w|)``). A larger ``theta`` than ``quantize_layer``'s clips the largest
    weights but makes a learning step (1/theta of the threshold) finer.

Initial weights
    :func:`random_discrete_network`: per layer, float weights drawn as in
    :func:`spikegate.golden.ttfs.init_weights` (normal, positive mean ``init_mean / n_eff``,
    standard deviation ``init_std / sqrt(n_eff)``, ``n_eff`` = fan-in, times the input
    spike rate for the first layer, so that a typical input brings a neuron's weight sum to
    about ``init_mean`` thresholds and neurons fire), then ``w = clip(rint(w_real * theta),
    -128, 127)`` as int8 with the given integer threshold ``theta`` (the same for every
    layer by default). ``theta`` sets the learning resolution: a step of 1 is ``1/theta`` of
    the threshold.
"""

from dataclasses import dataclass

import numpy as np

from .popcount import popcount
from .ttfs_discrete import (
    NO_SPIKE, THETA_MAX, DiscreteConfig, DiscreteNetwork, DiscreteResult, simulate, spike_events,
)

__all__ = [
    "MAX_LR_SHIFT", "SignStepInfo", "check_label", "output_deltas", "hidden_deltas",
    "causal_mask", "apply_update", "sign_backprop_step", "train_sign", "evaluate_discrete",
    "random_discrete_network", "requantize", "LFSR_SEED", "LFSR_BITS", "LFSR_TAPS", "MAX_LFSR_K", "lfsr_step",
    "UpdateLFSR",
]

#: Largest ``lr_shift`` (step ``2**6 = 64``).
MAX_LR_SHIFT = 6
#: Largest ``k`` (LFSR bits per candidate write) of :class:`UpdateLFSR`.
MAX_LFSR_K = 8
_WMIN, _WMAX = -128, 127


@dataclass
class SignStepInfo:
    """What one :func:`sign_backprop_step` computed (the hardware test's expectations).

    Members
    -------
    result : DiscreteResult
        The forward pass (batch of 1) with the pre-update weights.
    decision : int
        Class decided before the update (-1 = none).
    deltas : list of int8 arrays
        Per layer, input first: ``deltas[0]`` is all 0 (inputs get no delta); ``deltas[l]``
        ``(sizes[l],)`` in {-1, 0, +1}; the last entry is the output deltas.
    pos_counts, neg_counts : list of int64 arrays
        Per layer ``l`` (same indexing as ``deltas``): ``P_h`` and ``N_h`` of each neuron of
        hidden layer ``l``; empty arrays for the input and output layers.
    causal : list of bool arrays
        Per weight layer ``l``: ``(sizes[l], sizes[l + 1])``, source ``i`` in the causal set
        of destination ``j``.
    updated : list of int
        Per weight layer: the weights written (causal and ``delta_j != 0``).
    changed : list of int
        Per weight layer: the weights whose value changed (written and not stuck at a
        saturation bound).
    """
    result: DiscreteResult
    decision: int
    deltas: list
    pos_counts: list
    neg_counts: list
    causal: list
    updated: list
    changed: list


def check_label(label, n_classes):
    """Return ``label`` as an int; ``ValueError`` (naming it) unless it is in ``0 .. n_classes-1``."""
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
        raise ValueError(f"label must be an integer class in 0..{n_classes - 1}, not {label!r}")
    if not 0 <= int(label) < n_classes:
        raise ValueError(f"label {int(label)} is outside the class range 0..{n_classes - 1}")
    return int(label)


def _check_lr_shift(lr_shift):
    if isinstance(lr_shift, (bool, np.bool_)) or not isinstance(lr_shift, (int, np.integer)) \
            or not 0 <= lr_shift <= MAX_LR_SHIFT:
        raise ValueError(f"lr_shift must be an integer from 0 to {MAX_LR_SHIFT}, not {lr_shift!r}")
    return int(lr_shift)


def output_deltas(out_steps, decision, label):
    """Clause 1: output deltas (int8 in {-1, 0, +1}) of one image.

    ``out_steps``: ``(n_out,)`` output spike steps as :func:`simulate` reports them
    (``NO_SPIKE`` = did not fire by ``last``); ``decision``: the decided class or -1;
    ``label``: the (checked) label.
    """
    fired = np.asarray(out_steps) != NO_SPIKE
    d = np.where(fired, -1, 0).astype(np.int8)
    d[label] = 1 if int(decision) != label else 0
    return d


def hidden_deltas(w_above, deltas_above):
    """Clause 2: deltas of a layer from the weight signs and deltas of the layer above.

    ``w_above``: ``(n, n_above)`` int weights (pre-update); ``deltas_above``: ``(n_above,)``.
    Returns ``(delta, P, N)``: int8 deltas ``(n,)`` and the two popcounts (int64 ``(n,)``).
    """
    w = np.asarray(w_above)
    d = np.asarray(deltas_above)
    w_pos, w_neg = w > 0, w < 0
    d_pos, d_neg = (d > 0)[None, :], (d < 0)[None, :]
    p = popcount((w_pos & d_pos) | (w_neg & d_neg), axis=1)
    n = popcount((w_pos & d_neg) | (w_neg & d_pos), axis=1)
    return np.sign(p - n).astype(np.int8), p, n


def causal_mask(src_steps, dst_steps):
    """Clause 3: ``(n_src, n_dst)`` bool, source ``i`` in the causal set of destination ``j``."""
    s = np.asarray(src_steps)[:, None]
    t = np.asarray(dst_steps)[None, :]
    s_fired = s != NO_SPIKE
    t_fired = t != NO_SPIKE
    return s_fired & (~t_fired | (s < t))


def apply_update(w, causal, delta, lr_shift):
    """Clause 4 on one weight layer: returns ``(new_w int8, written, changed)`` (new array)."""
    lr_shift = _check_lr_shift(lr_shift)
    w = np.asarray(w)
    write = causal & (np.asarray(delta) != 0)[None, :]
    step = np.asarray(delta, dtype=np.int16)[None, :] << lr_shift
    new = np.where(write, np.clip(w.astype(np.int16) + step, _WMIN, _WMAX), w).astype(np.int8)
    return new, int(np.count_nonzero(write)), int(np.count_nonzero(new != w))


def sign_backprop_step(net, input_steps, label, lr_shift=0, *, errors_only=False, lfsr=None):
    """One training image: forward pass, deltas, causal sets, weight update (in place).

    Parameters
    ----------
    net : DiscreteNetwork
        Its ``weights`` are replaced by the updated int8 arrays (thresholds unchanged).
    input_steps : array_like of int, ``(n_in,)``
        The encoded image (``NO_SPIKE`` = pixel never spikes), as for :func:`simulate`.
    label : int
        The class, ``0 .. n_classes - 1``.
    lr_shift : int
        Step ``2**lr_shift``, ``0 .. 6``.
    errors_only : bool
        Default ``False``: the rule. ``True``: when the decision equals the label, nothing is
        written and every delta (and popcount) is 0 (module docstring, Options).
    lfsr : UpdateLFSR, optional
        Default ``None``: every candidate write is carried out. Otherwise stochastic rounding
        (module docstring, Options); the LFSR advances in place.

    Returns
    -------
    SignStepInfo

    Raises
    ------
    ValueError
        For a label outside the class range (naming it; nothing is changed), a bad
        ``lr_shift`` or bad input steps.
    """
    n_classes = net.sizes[-1]
    label = check_label(label, n_classes)
    lr_shift = _check_lr_shift(lr_shift)
    x = np.asarray(input_steps)
    if x.ndim != 1:
        raise ValueError(f"input_steps must be one image (n_in,), not shape {x.shape}")
    res = simulate(net, x[None])
    steps = [s[0] for s in res.spike_steps]
    decision = int(res.decision[0])
    L = len(net.weights)
    deltas = [None] * (L + 1)
    pos = [np.zeros(0, dtype=np.int64) for _ in range(L + 1)]
    neg = [np.zeros(0, dtype=np.int64) for _ in range(L + 1)]
    if errors_only and decision == label:
        for l in range(1, L + 1):
            deltas[l] = np.zeros(net.sizes[l], dtype=np.int8)
            if l < L:
                pos[l] = neg[l] = np.zeros(net.sizes[l], dtype=np.int64)
    else:
        deltas[L] = output_deltas(steps[L], decision, label)
        for l in range(L - 1, 0, -1):
            deltas[l], pos[l], neg[l] = hidden_deltas(net.weights[l], deltas[l + 1])
    deltas[0] = np.zeros(net.sizes[0], dtype=np.int8)
    causal = [causal_mask(steps[l], steps[l + 1]) for l in range(L)]
    new_weights, updated, changed = [], [], []
    for l in range(L):
        write = causal[l]
        if lfsr is not None:
            write = _gate_writes(lfsr, write & (deltas[l + 1] != 0)[None, :], steps[l], l)
        w, n_w, n_c = apply_update(net.weights[l], write, deltas[l + 1], lr_shift)
        new_weights.append(w)
        updated.append(n_w)
        changed.append(n_c)
    net.weights = new_weights
    return SignStepInfo(result=res, decision=decision, deltas=deltas, pos_counts=pos,
                        neg_counts=neg, causal=causal, updated=updated, changed=changed)


def _gate_writes(lfsr, write, src_steps, layer):
    """The candidate writes ``write`` (n_src, n_dst) that the LFSR lets through, in write order."""
    rows = spike_events(src_steps)[0] if layer == 0 else np.nonzero(src_steps != NO_SPIKE)[0]
    cand = write[rows]                                  # rows in the hardware's order
    keep = np.zeros_like(cand)
    keep[cand] = lfsr.draw(int(np.count_nonzero(cand)))  # row-major: rows, then j ascending
    out = np.zeros_like(write)
    out[rows] = keep
    return out


def _check_data(net, steps, y):
    steps = np.asarray(steps)
    y = np.asarray(y)
    if steps.ndim != 2 or steps.shape[1] != net.sizes[0]:
        raise ValueError(f"steps must have shape (n, {net.sizes[0]}), not {steps.shape}")
    if y.shape != (len(steps),):
        raise ValueError(f"labels must have shape ({len(steps)},), not {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, not {y.dtype}")
    bad = (y < 0) | (y >= net.sizes[-1])
    if np.any(bad):
        raise ValueError(f"label {int(y[bad][0])} is outside the class range 0..{net.sizes[-1] - 1}")
    return steps, y


def train_sign(net, steps_train, y_train, epochs=1, lr_shift=0, seed=0, callback=None, *,
               errors_only=False, lfsr=None):
    """Online training with :func:`sign_backprop_step`, one image at a time, in place.

    Each epoch visits the training images in the order ``rng.permutation(n)`` with
    ``rng = numpy.random.default_rng(seed)`` (one generator for the whole run).

    Parameters
    ----------
    net : DiscreteNetwork (updated in place)
    steps_train : ``(n, n_in)`` int input steps
    y_train : ``(n,)`` int labels (all checked before anything is trained)
    epochs, lr_shift, seed : int
    callback : callable, optional
        ``callback(epoch, i, n, running_accuracy)`` after every image (``i`` from 1); the
        running accuracy is that of the decisions taken before each update in this epoch.
    errors_only : bool
        Passed to :func:`sign_backprop_step` (default ``False``: the rule as the hardware runs
        it; ``True``: images already classified correctly change nothing).
    lfsr : UpdateLFSR, optional
        Passed to every :func:`sign_backprop_step` (one LFSR for the whole run; default
        ``None``: no stochastic rounding).

    Returns
    -------
    list of dict
        Per epoch: ``train_accuracy`` (online, pre-update decisions), ``no_decision``
        (fraction), ``updated`` and ``changed`` (weights, per weight layer, summed over
        the epoch), ``seconds`` and ``images_per_s``.
    """
    import time

    steps, y = _check_data(net, steps_train, y_train)
    lr_shift = _check_lr_shift(lr_shift)
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"epochs must be an integer >= 0, not {epochs!r}")
    rng = np.random.default_rng(seed)
    n = len(y)
    L = len(net.weights)
    history = []
    for epoch in range(epochs):
        perm = rng.permutation(n)
        ok = none = 0
        updated = np.zeros(L, dtype=np.int64)
        changed = np.zeros(L, dtype=np.int64)
        t0 = time.perf_counter()
        for i, k in enumerate(perm):
            info = sign_backprop_step(net, steps[k], int(y[k]), lr_shift,
                                      errors_only=errors_only, lfsr=lfsr)
            ok += info.decision == int(y[k])
            none += info.decision < 0
            updated += info.updated
            changed += info.changed
            if callback is not None:
                callback(epoch, i + 1, n, ok / (i + 1))
        seconds = time.perf_counter() - t0
        history.append({
            "train_accuracy": ok / n if n else float("nan"),
            "no_decision": none / n if n else float("nan"),
            "updated": updated.tolist(),
            "changed": changed.tolist(),
            "seconds": seconds,
            "images_per_s": n / seconds if seconds > 0 else float("inf"),
        })
    return history


def evaluate_discrete(net, steps, y):
    """Accuracy of the discrete model on ``steps`` / labels ``y`` (batch :func:`simulate`).

    Returns ``(accuracy, no_decision_fraction)``.
    """
    steps, y = _check_data(net, steps, y)
    if len(y) == 0:
        return float("nan"), float("nan")
    res = simulate(net, steps)
    return float(np.mean(res.decision == y)), float(np.mean(res.decision < 0))


def random_discrete_network(sizes, seed=0, theta=32, *, config=None, init_mean=4.0,
                            init_std=1.0, input_rate=1.0):
    """A :class:`DiscreteNetwork` with random int8 weights that can fire (module docstring).

    Parameters
    ----------
    sizes : sequence of int
        Neurons per layer, input first (at least two entries, all >= 1).
    seed : int
        Seed of ``numpy.random.default_rng``.
    theta : int or sequence of int
        Threshold per layer (one int for all layers), >= 1.
    config : DiscreteConfig, optional
    init_mean, init_std : float
        Mean weight sum (in thresholds) of a typical input, and the spread (as in
        :func:`spikegate.golden.ttfs.init_weights`).
    input_rate : float
        Fraction of input pixels that spike, in ``(0, 1]``.
    """
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must be at least two positive layer sizes, not {sizes!r}")
    thetas = [theta] * (len(sizes) - 1) if np.isscalar(theta) else list(theta)
    if len(thetas) != len(sizes) - 1:
        raise ValueError(f"{len(sizes) - 1} weight layers but {len(thetas)} thresholds")
    for t in thetas:
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 1:
            raise ValueError(f"theta must be an integer >= 1, not {t!r}")
    if not 0 < input_rate <= 1:
        raise ValueError(f"input_rate must be in (0, 1], not {input_rate!r}")
    rng = np.random.default_rng(seed)
    weights = []
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        n_eff = n_in * input_rate if l == 0 else n_in
        w = rng.normal(init_mean / n_eff, init_std / np.sqrt(n_eff), size=(n_in, n_out))
        weights.append(np.clip(np.rint(w * thetas[l]), _WMIN, _WMAX).astype(np.int8))
    return DiscreteNetwork(weights, [int(t) for t in thetas], config or DiscreteConfig())


def requantize(float_weights, thetas, config=None):
    """A :class:`DiscreteNetwork` of float weights with the given thresholds (no search).

    Per layer ``w = clip(rint(w_real * theta), -128, 127)`` as int8 (``rint``: half to even;
    weights beyond ``127 / theta`` saturate), with ``w_real`` in threshold units (the float
    model's threshold is 1).

    Parameters
    ----------
    float_weights : sequence of ``(n_in, n_out)`` float arrays
    thetas : sequence of int
        One threshold per layer, ``1 .. THETA_MAX``.
    config : DiscreteConfig, optional
    """
    ws = [np.asarray(w, dtype=np.float64) for w in float_weights]
    thetas = list(thetas)
    if len(thetas) != len(ws):
        raise ValueError(f"{len(ws)} weight layers but {len(thetas)} thresholds")
    for l, (w, t) in enumerate(zip(ws, thetas)):
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 1 <= t <= THETA_MAX:
            raise ValueError(f"layer {l}: theta must be an integer from 1 to {THETA_MAX}, not {t!r}")
        if w.ndim != 2 or not np.all(np.isfinite(w)):
            raise ValueError(f"layer {l}: weights must be a finite 2-D array, not shape {w.shape}")
    q = [np.clip(np.rint(w * int(t)), _WMIN, _WMAX).astype(np.int8) for w, t in zip(ws, thetas)]
    return DiscreteNetwork(q, [int(t) for t in thetas], config or DiscreteConfig())


#: Initial state of the update LFSR (:class:`UpdateLFSR`).
LFSR_SEED = 0xACE1
#: Width of the update LFSR's state.
LFSR_BITS = 16
#: The state bits whose XOR is the next bit (shifted in at the top as the state shifts
#: right): polynomial ``x^16 + x^14 + x^13 + x^11 + 1``.
LFSR_TAPS = (0, 2, 3, 5)
_LFSR_PERIOD = (1 << LFSR_BITS) - 1


def lfsr_step(state):
    """One step of the 16-bit update LFSR: returns ``(bit, new_state)`` (module docstring)."""
    bit = 0
    for t in LFSR_TAPS:
        bit ^= state >> t
    bit &= 1
    return bit, (state >> 1) | (bit << (LFSR_BITS - 1))


_LFSR_TABLES = {}


def _lfsr_tables():
    """``(bits, states)`` of one period from ``LFSR_SEED``: ``bits[p]`` is the bit of step
    ``p + 1``; ``states[p]`` the state after ``p`` steps."""
    if not _LFSR_TABLES:
        bits = np.empty(_LFSR_PERIOD, dtype=bool)
        states = np.empty(_LFSR_PERIOD, dtype=np.uint16)
        s = LFSR_SEED
        for p in range(_LFSR_PERIOD):
            states[p] = s
            bits[p], s = lfsr_step(s)
        if s != LFSR_SEED:
            raise AssertionError("the update LFSR is not maximal")
        _LFSR_TABLES["bits"], _LFSR_TABLES["states"] = bits, states
    return _LFSR_TABLES["bits"], _LFSR_TABLES["states"]


class UpdateLFSR:
    """The update LFSR of stochastic rounding, with ``k`` bits per candidate write.

    Parameters
    ----------
    k : int
        Bits per candidate write, ``1 .. 8``: a write is carried out when all ``k`` are 0.
    state : int
        Initial 16-bit state (not 0); default :data:`LFSR_SEED`.

    Members
    -------
    state : int
        The current state (after every bit drawn so far).
    """

    def __init__(self, k, state=LFSR_SEED):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_LFSR_K:
            raise ValueError(f"k must be an integer from 1 to {MAX_LFSR_K}, not {k!r}")
        if isinstance(state, bool) or not isinstance(state, (int, np.integer)) \
                or not 0 < state < (1 << 16):
            raise ValueError(f"the LFSR state must be an integer from 1 to 65535, not {state!r}")
        self.k = int(k)
        _, states = _lfsr_tables()
        self._pos = int(np.nonzero(states == state)[0][0])

    @property
    def state(self):
        return int(_lfsr_tables()[1][self._pos])

    def draw(self, n):
        """Decide ``n`` candidate writes in order: a bool array, True = write (``n * k`` steps)."""
        bits, _ = _lfsr_tables()
        idx = (self._pos + np.arange(n * self.k)) % _LFSR_PERIOD
        self._pos = (self._pos + n * self.k) % _LFSR_PERIOD
        return ~bits[idx].reshape(n, self.k).any(axis=1)
