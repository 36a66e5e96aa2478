"""The fixed-point forward pass of a whole PD network, frame by frame: the hardware reference.

A PD network (:mod:`spikegate.golden.pdnn`, O'Connor et al. 2018) sees a sequence of frames
and keeps state from one frame to the next. This module is its bit-accurate forward pass, built
from the steps of :mod:`spikegate.golden.sigma_delta_fixed` (imported, not re-typed) plus the one
step that module does not have, the bias and ReLU between layers (:func:`activate_fx`). The
hardware (:mod:`spikegate.hdl.pd_classifier`) matches it bit for bit; tests compare with
``np.array_equal`` through :func:`first_mismatch`.

Numbers
    Every value is an ``int64`` array of two's-complement integers; a value with ``F``
    fractional bits stands for ``integer / 2**F``. Layer ``l`` has its own
    :class:`~spikegate.golden.sigma_delta_fixed.SDFixedFormat` ``fmt[l]`` (widths, fractional
    bits, the quantized gains ``k_alpha``, ``1 / k_beta``, ``k_beta`` of its input coder).
    Rounding is half up everywhere (``round_shift``: add half, then a flooring shift, as
    Amaranth's signed ``>>`` floors); every register saturates, none wraps.

One frame ``t``, layer by layer (``x`` is the layer's input, ``X_W`` bits signed, ``X_F``
fractional; layer 0's input is the frame)
    ====================  ============================================================================
    step                  arithmetic (state: ``x_prev``, ``phi`` per input; ``y`` per output)
    ====================  ============================================================================
    encode                ``a = encode_fx(x, x_prev)``: ``A_W`` bits, ``P_F`` fractional, saturated
    quantize              ``s, phi = quantize_fx(a, phi)``: ``s`` ``S_W`` bits (saturated, the excess
                          stays in ``phi``), ``phi`` ``PHI_W`` bits (saturated); ``x_prev = x``
    accumulate            ``u = accumulate_fx(s, W)``: from 0 every frame; for ``i`` ascending,
                          ``|s_i|`` times ``u = saturate(u + sign(s_i) W[i], ACC_W)`` (``W_F``
                          fractional)
    decode                ``y = decode_fx(u, y)``: ``Y_W`` bits, ``Y_F`` fractional, saturated
    activate              ``z = y + b`` (exact, ``Y_W + 1`` bits; ``b`` is ``Y_W`` bits, ``Y_F``
                          fractional); hidden layers: ``act = saturate(round_shift(max(z, 0),
                          Y_F - X_F'), X_W')`` in the next layer's format ``X_W'``, ``X_F'``
                          (:func:`activate_fx`); the last layer: ``act = z``
    ====================  ============================================================================

    The class of frame ``t`` is ``argmax`` of the last layer's ``z`` (ties: the lowest index).

Counts per frame and layer
    ``events``: inputs with ``s != 0`` (the spike events the encoder emits); ``spikes``:
    ``sum |s|``, the row additions (each reads the row of ``n_out`` weights).

State
    ``x_prev``, ``phi`` (per input) and ``y`` (per output) of every layer, all 0 at the start
    of a sequence (and after the hardware's reset). :meth:`PDFixedNetwork.run` takes and returns
    it, so a sequence may be run in pieces.

The float network is converted by :func:`from_float` / :func:`from_pdnetwork`; the model file
that carries the result is :mod:`spikegate.golden.pd_model_file`.
"""

from collections import namedtuple
from dataclasses import dataclass, field

import numpy as np

from .fixed import round_shift, saturate, signed_range
from .sigma_delta_fixed import (SDFixedFormat, accumulate_fx, decode_fx, encode_fx, quantize_fx,
                                to_fixed)

__all__ = ["PDSteps", "STEPS", "activate_fx", "quantize_input", "weight_frac", "PDFixedNetwork",
           "PDTrace", "first_mismatch", "from_float", "from_pdnetwork", "MAX_WEIGHT_FRAC"]

#: The largest number of fractional weight bits :func:`weight_frac` picks.
MAX_WEIGHT_FRAC = 16


def activate_fx(y, b, fmt, next_fmt=None):
    """Bias and ReLU: returns ``(z, act)``.

    ``z = y + b`` is exact (``Y_W + 1`` bits, ``Y_F`` fractional; ``y`` and ``b`` are ``Y_W``
    bits). For a hidden layer (``next_fmt`` given) ``act = saturate(round_shift(max(z, 0), Y_F -
    X_F'), X_W')``: ReLU, one round-half-up shift to the next layer's ``X_F'`` fractional bits,
    saturated to its ``X_W'`` bits (ReLU first or rounding first give the same value: the shift
    is monotone and maps 0 to 0). For the last layer (``next_fmt`` None) ``act = z``.
    Needs ``Y_F >= X_F'`` (checked by :class:`PDFixedNetwork`).
    """
    z = np.asarray(y, dtype=np.int64) + np.asarray(b, dtype=np.int64)
    if next_fmt is None:
        return z, z
    act = saturate(round_shift(np.maximum(z, 0), fmt.y_frac - next_fmt.x_frac), next_fmt.x_width)
    return z, act


#: The fixed-point steps of one layer, as :meth:`PDFixedNetwork.run` calls them:
#: ``encode(x, x_prev, fmt) -> a``, ``quantize(a, phi, fmt) -> (s, phi)``,
#: ``accumulate(s, w, fmt) -> (u, n)``, ``decode(u, y, fmt) -> y``,
#: ``activate(y, b, fmt, next_fmt) -> (z, act)``. Tests substitute mutants.
PDSteps = namedtuple("PDSteps", "encode quantize accumulate decode activate")

#: The specification's steps.
STEPS = PDSteps(encode_fx, quantize_fx, accumulate_fx, decode_fx, activate_fx)


def quantize_input(values, fmt):
    """Float activations (e.g. pixels in [0, 1]) to layer 0's input format: ``saturate(floor(v *
    2**X_F + 1/2), X_W)`` (:func:`~spikegate.golden.sigma_delta_fixed.to_fixed`)."""
    return to_fixed(values, fmt.x_frac, fmt.x_width)


def weight_frac(w, width=8, lowest=0, highest=MAX_WEIGHT_FRAC):
    """The most fractional bits ``f`` (``lowest <= f <= highest``) with which every weight of
    ``w`` rounds (half up) into a ``width``-bit signed value; ``lowest`` when none fits (the
    largest weights then saturate)."""
    w = np.asarray(w, dtype=np.float64)
    top = float(w.max()) if w.size else 0.0
    bottom = float(w.min()) if w.size else 0.0
    lo, hi = signed_range(width)
    for f in range(highest, lowest - 1, -1):
        if np.floor(top * (1 << f) + 0.5) <= hi and np.floor(bottom * (1 << f) + 0.5) >= lo:
            return f
    return lowest


@dataclass
class PDTrace:
    """Everything a run computes, per frame (axis 0) and layer (list index).

    Members
    -------
    x, s : list of int64 arrays ``(T, n_in)``
        Each layer's input activations and spike counts.
    u, y, z, act : list of int64 arrays ``(T, n_out)``
        Accumulators after the frame's row additions, decoded values, ``y + b`` and the
        activations handed on (the last layer's ``act`` is its ``z``).
    klass : int64 array ``(T,)``
        ``argmax`` of the last layer's ``z`` (lowest index on ties).
    events, spikes : int64 arrays ``(T, L)``
        Per layer, inputs with ``s != 0`` and ``sum |s|`` (row additions).
    state : list of dict
        The state after the last frame (see :meth:`PDFixedNetwork.run`).
    """
    x: list
    s: list
    u: list
    y: list
    z: list
    act: list
    klass: np.ndarray
    events: np.ndarray
    spikes: np.ndarray
    state: list = field(default=None, repr=False)

    def __len__(self):
        return len(self.klass)

    def frames(self, start, stop=None):
        """The trace of frames ``start .. stop - 1`` (state: None)."""
        sl = slice(start, stop)
        return PDTrace(*([a[sl] for a in getattr(self, k)] for k in ("x", "s", "u", "y", "z", "act")),
                       klass=self.klass[sl], events=self.events[sl], spikes=self.spikes[sl])

    @staticmethod
    def concatenate(traces):
        """The traces of consecutive pieces of a sequence, joined (state: the last piece's)."""
        traces = list(traces)
        L = len(traces[0].s)
        cat = {k: [np.concatenate([getattr(t, k)[l] for t in traces]) for l in range(L)]
               for k in ("x", "s", "u", "y", "z", "act")}
        return PDTrace(**cat, klass=np.concatenate([t.klass for t in traces]),
                       events=np.concatenate([t.events for t in traces]),
                       spikes=np.concatenate([t.spikes for t in traces]), state=traces[-1].state)


#: The quantities :func:`first_mismatch` compares, in the order it reports them: per frame,
#: then per layer.
_FRAME_FIELDS = ("klass",)
_LAYER_COUNTS = ("events", "spikes")
_LAYER_ARRAYS = ("s", "u", "y", "act")


def first_mismatch(got, expected, context=""):
    """``None`` when ``got`` and ``expected`` (a :class:`PDTrace`, or anything with the same
    attributes, e.g. the hardware's results) agree on every frame's class, every layer's
    ``events``, ``spikes``, ``s``, ``u``, ``y`` and ``act``; else a message naming the first
    frame, the layer, the quantity and the neuron that differ, with both values.

    Only the quantities both carry are compared; a different number of frames is a mismatch.
    """
    pre = f"{context}: " if context else ""
    if len(got.klass) != len(expected.klass):
        return f"{pre}{len(got.klass)} frames, expected {len(expected.klass)}"
    checks = []
    for name in _FRAME_FIELDS:
        a, b = np.asarray(getattr(got, name)), np.asarray(getattr(expected, name))
        checks.append((np.flatnonzero(a != b), lambda t, a=a, b=b, name=name:
                       f"{name} {a[t]}, expected {b[t]}"))
    L = np.asarray(expected.events).shape[1]
    for l in range(L):
        for name in _LAYER_COUNTS:
            if getattr(got, name, None) is None:
                continue
            a = np.asarray(getattr(got, name))[:, l]
            b = np.asarray(getattr(expected, name))[:, l]
            checks.append((np.flatnonzero(a != b), lambda t, a=a, b=b, name=name, l=l:
                           f"layer {l} {name} {a[t]}, expected {b[t]}"))
        for name in _LAYER_ARRAYS:
            if getattr(got, name, None) is None:
                continue
            a = np.asarray(getattr(got, name)[l])
            b = np.asarray(getattr(expected, name)[l])
            if a.shape != b.shape:
                return f"{pre}layer {l} {name} has shape {a.shape}, expected {b.shape}"
            bad = np.flatnonzero((a != b).any(axis=1))

            def say(t, a=a, b=b, name=name, l=l):
                j = int(np.flatnonzero(a[t] != b[t])[0])
                return f"layer {l} {name}[{j}] {a[t, j]}, expected {b[t, j]}"
            checks.append((bad, say))
    first = None
    for bad, say in checks:
        if bad.size and (first is None or bad[0] < first[0]):
            first = (int(bad[0]), say)
    if first is None:
        return None
    t, say = first
    return f"{pre}frame {t}: {say(t)}"


@dataclass
class PDFixedNetwork:
    """A fixed-point PD network: integer weights and biases and one format per layer.

    Parameters
    ----------
    weights : list of int arrays ``(n_in, n_out)``
        Layer ``l``'s weights, ``fmt[l].w_width`` bits signed, ``fmt[l].w_frac`` fractional;
        the row of input ``i`` is what one spike of input ``i`` adds.
    biases : list of int arrays ``(n_out,)``
        ``fmt[l].y_width`` bits signed, ``fmt[l].y_frac`` fractional.
    formats : list of SDFixedFormat
        Layer ``l``'s input coder, accumulator and decoder. Layer ``l + 1``'s input is layer
        ``l``'s activation, so ``fmt[l].y_frac >= fmt[l + 1].x_frac`` is required.

    Raises
    ------
    ValueError, TypeError
        For inconsistent shapes, values outside their widths or formats that do not chain.
    """
    weights: list
    biases: list
    formats: list

    def __post_init__(self):
        L = len(self.weights)
        if L < 1:
            raise ValueError("a PD network needs at least one weight layer")
        if len(self.biases) != L or len(self.formats) != L:
            raise ValueError(f"{L} weight layers but {len(self.biases)} bias vectors and "
                             f"{len(self.formats)} formats")
        ws, bs = [], []
        for l, (w, b, fmt) in enumerate(zip(self.weights, self.biases, self.formats)):
            if not isinstance(fmt, SDFixedFormat):
                raise TypeError(f"formats[{l}] must be an SDFixedFormat, not {fmt!r}")
            w, b = np.asarray(w), np.asarray(b)
            for name, a in (("weights", w), ("biases", b)):
                if a.size and not np.issubdtype(a.dtype, np.integer):
                    raise TypeError(f"{name}[{l}] must hold integers, not {a.dtype}")
            if w.ndim != 2 or w.size == 0:
                raise ValueError(f"weights[{l}] must be a non-empty (n_in, n_out) array, not "
                                 f"shape {w.shape}")
            if b.shape != (w.shape[1],):
                raise ValueError(f"biases[{l}] has shape {b.shape}, expected ({w.shape[1]},)")
            if l and w.shape[0] != ws[-1].shape[1]:
                raise ValueError(f"layer {l} has {w.shape[0]} inputs, expected {ws[-1].shape[1]} "
                                 f"(the outputs of layer {l - 1})")
            for name, a, width in (("weights", w, fmt.w_width), ("biases", b, fmt.y_width)):
                lo, hi = signed_range(width)
                if a.size and (a.min() < lo or a.max() > hi):
                    raise ValueError(f"{name}[{l}] has values in [{a.min()}, {a.max()}], expected "
                                     f"[{lo}, {hi}] ({width} bits)")
            if l and self.formats[l - 1].y_frac < fmt.x_frac:
                raise ValueError(f"layer {l - 1}'s y_frac {self.formats[l - 1].y_frac} is below "
                                 f"layer {l}'s x_frac {fmt.x_frac}")
            ws.append(w.astype(np.int64))
            bs.append(b.astype(np.int64))
        self.weights, self.biases, self.formats = ws, bs, list(self.formats)

    @property
    def sizes(self):
        """Neurons per layer, input first."""
        return (self.weights[0].shape[0],) + tuple(w.shape[1] for w in self.weights)

    @property
    def n_layers(self):
        """Weight layers."""
        return len(self.weights)

    def initial_state(self):
        """All state 0: per layer ``{"x_prev", "phi"}`` (``n_in``) and ``"y"`` (``n_out``)."""
        return [{"x_prev": np.zeros(w.shape[0], np.int64), "phi": np.zeros(w.shape[0], np.int64),
                 "y": np.zeros(w.shape[1], np.int64)} for w in self.weights]

    def quantize_input(self, values):
        """Float activations (pixels in [0, 1]) to layer 0's input format."""
        return quantize_input(values, self.formats[0])

    def run(self, frames, state=None, *, steps=STEPS):
        """The forward pass over ``frames`` (``(T, n_in)`` integers in layer 0's ``X_W`` bits).

        Returns a :class:`PDTrace` whose ``state`` continues the sequence: ``run(a + b)`` equals
        ``run(a)`` followed by ``run(b, state=...)``. ``state`` (default: all 0) is not changed.
        ``steps`` replaces the fixed-point steps (tests run mutants through it).

        Layer by layer over all frames (the layers feed forward only): the encoder over every
        frame at once, the quantizer, accumulation and decoder frame by frame (vectorized over
        the units), the activation over every frame at once.
        """
        x = np.asarray(frames)
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"frames must have shape (T, {self.sizes[0]}), not {x.shape}")
        if x.size and not np.issubdtype(x.dtype, np.integer):
            raise TypeError(f"frames must hold integers (layer 0's input format), not {x.dtype}")
        lo, hi = signed_range(self.formats[0].x_width)
        if x.size and (x.min() < lo or x.max() > hi):
            raise ValueError(f"frames have values in [{x.min()}, {x.max()}], expected [{lo}, {hi}] "
                             f"(x_width {self.formats[0].x_width})")
        x = x.astype(np.int64)
        state = self.initial_state() if state is None else state
        if len(state) != self.n_layers:
            raise ValueError(f"state has {len(state)} layers, expected {self.n_layers}")
        T, L = len(x), self.n_layers
        out = {k: [] for k in ("x", "s", "u", "y", "z", "act")}
        events = np.zeros((T, L), np.int64)
        spikes = np.zeros((T, L), np.int64)
        new_state = []
        for l, (w, b, fmt) in enumerate(zip(self.weights, self.biases, self.formats)):
            nxt = self.formats[l + 1] if l + 1 < L else None
            st = state[l]
            x_prev = np.concatenate([np.asarray(st["x_prev"], np.int64)[None], x[:-1]])
            a = steps.encode(x, x_prev, fmt)
            s = np.zeros_like(x)
            u = np.zeros((T, w.shape[1]), np.int64)
            y = np.zeros_like(u)
            phi = np.asarray(st["phi"], np.int64)
            yt = np.asarray(st["y"], np.int64)
            for t in range(T):
                s[t], phi = steps.quantize(a[t], phi, fmt)
                u[t], _ = steps.accumulate(s[t], w, fmt)
                yt = steps.decode(u[t], yt, fmt)
                y[t] = yt
            z, act = steps.activate(y, b, fmt, nxt)
            events[:, l] = np.count_nonzero(s, axis=1)
            spikes[:, l] = np.abs(s).sum(axis=1)
            new_state.append({"x_prev": saturate(x[-1], fmt.x_width) if T else st["x_prev"].copy(),
                              "phi": np.array(phi), "y": np.array(yt)})
            for k, v in (("x", x), ("s", s), ("u", u), ("y", y), ("z", z), ("act", act)):
                out[k].append(np.asarray(v, np.int64))
            x = np.asarray(act, np.int64)
        klass = np.argmax(out["z"][-1], axis=1) if T else np.zeros(0, np.int64)
        return PDTrace(**out, klass=klass.astype(np.int64), events=events, spikes=spikes,
                       state=new_state)


def from_float(weights, biases, k_alphas, k_betas, *, w_width=8, **fmt_kwargs):
    """Convert a trained float PD network to a :class:`PDFixedNetwork`.

    Per layer ``l``: the gains of its input coder are quantized by
    :meth:`SDFixedFormat.from_float` (``k_alpha``, ``1 / k_beta``, ``k_beta``, round half up),
    with ``w_frac = weight_frac(weights[l], w_width)`` fractional weight bits (the most that
    keep every weight in ``w_width`` bits, at least ``y_frac - kb_frac``) and the other widths
    from ``fmt_kwargs`` (:class:`SDFixedFormat`'s defaults otherwise); the weights become
    ``to_fixed(w, w_frac, w_width)`` and the biases ``to_fixed(b, y_frac, y_width)`` (round half
    up, saturated).

    Parameters
    ----------
    weights, biases : lists of float arrays ``(n_in, n_out)``, ``(n_out,)``
    k_alphas, k_betas : lists of float
        Each layer's forward coder's (adapted) gains (:class:`~spikegate.golden.sigma_delta.PDCoder`).
    """
    L = len(weights)
    if not (len(biases) == len(k_alphas) == len(k_betas) == L):
        raise ValueError(f"{L} weight layers but {len(biases)} biases, {len(k_alphas)} k_alphas "
                         f"and {len(k_betas)} k_betas")
    if "w_frac" in fmt_kwargs:
        raise TypeError("w_frac is chosen per layer from the weights")
    formats, ws, bs = [], [], []
    for w, b, ka, kb in zip(weights, biases, k_alphas, k_betas):
        w = np.asarray(w, dtype=np.float64)
        probe = SDFixedFormat.from_float(ka, kb, w_width=w_width, **fmt_kwargs)
        lowest = max(0, probe.y_frac - probe.kb_frac)
        fmt = SDFixedFormat.from_float(ka, kb, w_width=w_width,
                                       w_frac=weight_frac(w, w_width, lowest), **fmt_kwargs)
        formats.append(fmt)
        ws.append(to_fixed(w, fmt.w_frac, fmt.w_width))
        bs.append(to_fixed(b, fmt.y_frac, fmt.y_width))
    return PDFixedNetwork(ws, bs, formats)


def from_pdnetwork(net, **fmt_kwargs):
    """:func:`from_float` of a trained :class:`spikegate.golden.pdnn.PDNetwork`: its weights,
    biases and each layer's forward coder's ``k_alpha`` and (adapted) ``k_beta``."""
    layers = net.layers
    return from_float([l.w for l in layers], [l.b for l in layers],
                      [l.fwd.k_alpha for l in layers], [l.fwd.k_beta for l in layers], **fmt_kwargs)
