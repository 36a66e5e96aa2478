"""The forward pass of a sparse-spiking-gradient-descent network in hardware: a hidden LIF layer
and a leaky readout (``n_in``-``H``-``C``, e.g. digits 64-H-10), image after image.

The layers (:class:`~spikegate.hdl.lif_layer.LIFLayer`) are joined stream to stream: the
hidden layer's output spikes are the readout's input steps, so the readout integrates step
``k`` while the hidden layer computes step ``k+1``. The hidden layer's active events leave on
``a_stream`` (for the sparse backward pass); the readout's membranes ``O`` go to a running
sum per class (the logits ``z = sum_t O[t]`` of
:func:`~spikegate.golden.ssgd_train_fixed.readout_forward_fixed`) and the class is their argmax
(lowest index on ties). One image is in the network at a time: the next image's first beat is taken after the
result's transfer, so a result's counters and cycles are its own image's. The bit-accurate
reference is :func:`spikegate.golden.ssgd_train_fixed.forward_fixed` (the steps of
:mod:`spikegate.golden.ssgd_fixed`); :func:`expected_cycles` is the timing model.
"""

import dataclasses

import numpy as np

from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spikegate.golden.ssgd_train_fixed import TrainFormat
from .layouts import RESULT_COUNT_BITS
from .lif_layer import PASS_LATENCY, LIFLayer
from .lif_layouts import LIFActiveLayout, LIFEventLayout, SSGDResultLayout
from .lookup import MAX_LANES
from .params import checking
from .signatures import LIFTracePort, WeightPort

__all__ = ["SSGDNetwork", "expected_cycles", "readout_format", "QUEUE_LATENCY"]

#: Cycles from a beat's transfer into a layer's (empty) queue to its head.
QUEUE_LATENCY = 2


def readout_format(tfmt):
    """The readout layer's :class:`~spikegate.golden.ssgd_fixed.FixedFormat`: the hidden
    layer's with the readout membrane's width ``o_bits``
    (:func:`~spikegate.golden.ssgd_train_fixed.readout_forward_fixed`)."""
    return dataclasses.replace(tfmt.lif, v_bits=tfmt.o_bits)


class SSGDNetwork(wiring.Component):
    """A LIF network of ``sizes = (n_in, H, C)`` neurons per layer.

    Parameters
    ----------
    sizes : sequence of 3 int
        Inputs, hidden LIF neurons, readout neurons (classes).
    lanes : int or pair of int
        Weights read per cycle, per weight layer (1 to :data:`~spikegate.hdl.lookup.MAX_LANES`).
    tfmt : TrainFormat, optional
        Every constant (:class:`~spikegate.golden.ssgd_train_fixed.TrainFormat`): steps per
        image ``T = n_steps``, the decays, the active band and surrogate, the widths (hidden
        ``lif``, readout ``o_bits``, logits ``z_bits``).
    weights : pair of arrays, optional
        Initial weights ``W1`` ``(n_in, H)`` and ``W2`` ``(H, C)`` (zero when omitted);
        loadable at run time.
    input_depth : int
        The hidden layer's input queue depth (default ``n_in + T + 2``, holding ``n_in + T``
        beats: a whole image whose inputs spike once each, as
        :func:`~spikegate.golden.ssgd.encode_spike_times` makes them, so the input stream
        never waits on the walks; a layer's queue holds its depth - 2, its ready registered).
    readout_depth : int
        The readout's queue depth (default ``H + 4``, holding ``H + 2`` events: a step of
        hidden spikes).

    Members
    -------
    i_stream : In(stream)
        :class:`~spikegate.hdl.lif_layouts.LIFEventLayout` (``n_in``): per image the steps
        ``0 .. T-2`` of its input raster, each its spikes and a marker
        (:func:`~spikegate.sim.ssgd_reference.raster_events`).
    o_stream : Out(stream)
        :class:`~spikegate.hdl.lif_layouts.SSGDResultLayout`: per image the class, the logits,
        the cycles, the input spikes, hidden spikes and active entries and the weights read
        per layer.
    a_stream : Out(stream)
        :class:`~spikegate.hdl.lif_layouts.LIFActiveLayout`: the hidden layer's active events.
    trace0, trace1 : Out(LIFTracePort)
        Every neuron of every step of the hidden layer and of the readout.
    weights0, weights1 : In(WeightPort)
        Load and read back each layer's weights, only while ``idle``.
    idle : Out
        No image in the network and no state being zeroed.

    Cycles (:func:`expected_cycles` computes them from the golden spikes; the tests check them
    image by image): with every stream ready, an image costs, per step, its input spikes'
    row walks (``ceil(H / lanes0)`` cycles each) and a pass over the ``H`` hidden neurons
    (``H + 6`` cycles, :data:`~spikegate.hdl.lif_layer.PASS_LATENCY`), the readout's walks and pass overlapping the next hidden step; so about
    ``sum_k (G0 spikes_k + H + 8)`` plus the readout's last pass. After reset the state is
    zeroed in ``max`` groups cycles (``idle`` low, no beat taken).
    """

    def __init__(self, sizes, lanes, tfmt=None, *, weights=None, input_depth=None,
                 readout_depth=None):
        tfmt = TrainFormat() if tfmt is None else tfmt
        with checking(self):
            if not isinstance(tfmt, TrainFormat):
                raise TypeError(f"tfmt must be a ssgd_train_fixed.TrainFormat, not {tfmt!r}")
            sizes = tuple(sizes)
            if len(sizes) != 3 or not all(isinstance(s, (int, np.integer)) and s >= 1
                                          for s in sizes):
                raise TypeError(f"sizes must be three positive integers (inputs, hidden, "
                                f"classes), not {sizes!r}")
            lanes = (lanes,) * 2 if isinstance(lanes, (int, np.integer)) else tuple(lanes)
            if len(lanes) != 2 or not all(isinstance(v, (int, np.integer))
                                          and 1 <= v <= MAX_LANES for v in lanes):
                raise ValueError(f"lanes must be an integer from 1 to {MAX_LANES} or 2 of them, "
                                 f"not {lanes!r}")
            if weights is not None and len(weights) != 2:
                raise ValueError(f"weights must have 2 entries, not {len(weights)}")
            n_in, H, C = (int(s) for s in sizes)
            T = tfmt.n_steps
            input_depth = n_in + T + 2 if input_depth is None else input_depth
            readout_depth = H + 4 if readout_depth is None else readout_depth
            w = (None, None) if weights is None else weights
            self._hidden = LIFLayer(n_in, H, int(lanes[0]), T, tfmt.beta_q, fmt=tfmt.lif,
                                    b_th_q=tfmt.b_th_q, surrogate_scale=tfmt.surrogate_scale,
                                    weights=w[0], queue_depth=input_depth)
            self._readout = LIFLayer(H, C, int(lanes[1]), T, tfmt.beta_r_q,
                                     fmt=readout_format(tfmt), weights=w[1], readout=True,
                                     queue_depth=readout_depth)
        self._sizes = (n_in, H, C)
        self._lanes = tuple(int(v) for v in lanes)
        self._timesteps, self._tfmt = T, tfmt
        step_bits = self._hidden.step_bits
        fmt = tfmt.lif
        super().__init__({
            "i_stream": In(stream.Signature(LIFEventLayout(n_in))),
            "o_stream": Out(stream.Signature(SSGDResultLayout(C, tfmt.z_bits))),
            "a_stream": Out(stream.Signature(LIFActiveLayout(H, step_bits, fmt.g_bits))),
            "trace0": Out(LIFTracePort(H, step_bits, fmt)),
            "trace1": Out(LIFTracePort(C, step_bits, readout_format(tfmt))),
            "weights0": In(WeightPort(n_in, H)),
            "weights1": In(WeightPort(H, C)),
            "idle": Out(1),
        })

    @property
    def tfmt(self):
        return self._tfmt

    @property
    def sizes(self):
        return self._sizes

    @property
    def lanes(self):
        return self._lanes

    @property
    def timesteps(self):
        return self._timesteps

    @property
    def hidden(self):
        return self._hidden

    @property
    def readout(self):
        return self._readout

    def elaborate(self, platform):
        m = Module()
        hid, ro = self._hidden, self._readout
        m.submodules.hidden = hid
        m.submodules.readout = ro
        wiring.connect(m, wiring.flipped(self.weights0), hid.weights)
        wiring.connect(m, wiring.flipped(self.weights1), ro.weights)
        wiring.connect(m, hid.trace, wiring.flipped(self.trace0))
        wiring.connect(m, ro.trace, wiring.flipped(self.trace1))
        wiring.connect(m, hid.a_stream, wiring.flipped(self.a_stream))
        wiring.connect(m, hid.o_stream, ro.i_stream)

        # The image in: markers counted, the next image held until the result has gone.
        T = self._timesteps
        markers = Signal(range(T - 1))
        waiting = Signal()           # every step taken, the result not yet transferred
        in_image = Signal()          # the first beat taken, the result not yet transferred
        started = Signal()           # a beat of this image has been taken
        take, first = Signal(), Signal()
        src = hid.i_stream
        m.d.comb += [
            src.payload.eq(self.i_stream.payload),
            src.valid.eq(self.i_stream.valid & ~waiting),
            self.i_stream.ready.eq(src.ready & ~waiting),
            take.eq(self.i_stream.valid & self.i_stream.ready),
            first.eq(take & ~started),
        ]
        with m.If(take):
            m.d.sync += started.eq(1)
            with m.If(self.i_stream.payload.last):
                m.d.sync += markers.eq(Mux(markers == T - 2, 0, markers + 1))
                with m.If(markers == T - 2):
                    m.d.sync += waiting.eq(1)
        m.d.comb += [hid.clear_stats.eq(first), ro.clear_stats.eq(first)]

        # The readout's logits z = sum_t O[t] (exact in z_bits) and their argmax, found as
        # the last step's sums complete.
        C = self._sizes[2]
        zb = self._tfmt.z_bits
        tr = ro.trace
        zsum = Array(Signal(signed(zb), name=f"z{c}") for c in range(C))
        top = Signal(signed(zb))
        klass = Signal(range(C))
        cur, new = Signal(signed(zb)), Signal(signed(zb))
        wins = Signal()
        m.d.comb += [
            cur.eq(Mux(tr.step == 1, 0, zsum[0])),
            new.eq(cur + tr.v),
        ]
        # The argmax a cycle behind the sums (the sum's multiplexer and adder, then the
        # comparator: two paths); it is final the cycle the result becomes valid.
        a_valid, a_first = Signal(), Signal()
        a_new = Signal(signed(zb))
        a_index = Signal(range(C))
        m.d.sync += [a_valid.eq(tr.valid & (tr.step == T - 1)), a_first.eq(tr.index == 0),
                     a_new.eq(new), a_index.eq(tr.index)]
        m.d.comb += wins.eq(a_first | (a_new > top))
        with m.If(tr.valid):
            # The sums rotate, one place per class: the readout's pass shows its classes in
            # order, one per cycle, so zsum[0] is the class shown (no multiplexer), and after
            # a pass they are back in order.
            m.d.sync += [zsum[c].eq(zsum[c + 1]) for c in range(C - 1)]
            m.d.sync += zsum[C - 1].eq(new)
        with m.If(a_valid & wins):
            m.d.sync += [top.eq(a_new), klass.eq(a_index)]

        # The result, once both layers have finished the image.
        res = self.o_stream
        h_done, r_done = Signal(), Signal()
        cycles = Signal(RESULT_COUNT_BITS)
        with m.If(hid.image_done):
            m.d.sync += h_done.eq(1)
        with m.If(ro.image_done):
            m.d.sync += r_done.eq(1)
        both = Signal()
        m.d.comb += both.eq(h_done & r_done & ~res.valid)
        with m.If(both):
            # A cycle after the later last pass: its counters' last updates have landed.
            m.d.sync += [res.valid.eq(1), h_done.eq(0), r_done.eq(0)]
        # The result is the counters, the class and the sums themselves, not copies: they hold
        # while the result waits (both layers are done and no image is let in until it has
        # gone; the cycle counter stops while the result is valid).
        m.d.comb += [res.payload.z[c].eq(zsum[c]) for c in range(C)]
        m.d.comb += [res.payload.cycles.eq(cycles), res.payload.klass.eq(klass),
                     res.payload.in_spikes.eq(hid.in_spikes), res.payload.spikes.eq(hid.spikes),
                     res.payload.active.eq(hid.active), res.payload.lookups[0].eq(hid.lookups),
                     res.payload.lookups[1].eq(ro.lookups)]
        with m.If(res.valid & res.ready):
            m.d.sync += [res.valid.eq(0), waiting.eq(0), in_image.eq(0), started.eq(0)]
        with m.If(first):
            m.d.sync += [cycles.eq(1), in_image.eq(1)]
        with m.Elif(in_image & ~res.valid):
            m.d.sync += cycles.eq(cycles + 1)
        m.d.comb += self.idle.eq(~in_image & ~hid.busy & ~ro.busy)
        return m


def _layer_times(beats, n_out, groups, spiking, timesteps):
    """The cycles of one layer over one image: ``beats`` is its input as ``(cycle, spike)``
    pairs in order (``spike`` False for a marker), every beat taken into the queue when
    offered. Returns ``(outputs, done)``: the output beats ``(cycle, spike index or None for a
    marker)`` as they would be transferred with every stream ready, and the cycle of the
    ``image_done`` strobe. Neurons spiking are given by ``spiking[k]`` (the indices of
    ``S[k+1]``) for pass ``k``."""
    G = groups
    pop = -1              # the last pop from the queue
    walk = None           # the last row command's accept
    free = 0              # the first cycle the pass logic lets a command or marker go
    outputs, done = [], None
    k = 0
    for cycle, is_spike in beats:
        head = max(cycle + QUEUE_LATENCY, pop + 1)
        if is_spike:
            accept = max(head, free if walk is None else max(free, walk + G))
            walk = pop = accept
            continue
        start = max(head, free, -1 if walk is None else walk + G + 2)
        pop = start
        walk = None
        if spiking is not None:
            outputs.append((start + 1, None))
            c0 = start + PASS_LATENCY
            if k < timesteps - 2:
                outputs += [(c0 + int(j), int(j)) for j in spiking[k]]
        else:
            c0 = start + PASS_LATENCY - 1
        free = c0 + n_out
        if k == timesteps - 2:
            done = c0 + n_out - 1
        k += 1
    return outputs, done


def expected_cycles(x, hidden_spikes, sizes, lanes, timesteps):
    """The ``cycles`` of each image's result, from its input rasters ``x`` ``(B, T, n_in)`` and
    the golden hidden spikes ``(B, T, H)``: the timing model of :class:`SSGDNetwork`, for an
    input stream that never idles and output streams always ready, with queues deep enough
    never to fill (the defaults, for inputs that spike once per image; checked here: a
    ``ValueError`` names an image that would fill the input queue). An array of ``B`` ints.

    The model, per layer and step: a beat enters the queue at cycle ``c`` and is at its head
    at ``max(c + 2, previous pop + 1)``; a spike's row walk starts at ``max(head, previous walk
    + G, end of the previous pass)``; the marker starts the pass at ``max(head, last walk + G +
    2, end of the previous pass)``. A hidden pass started at ``s`` sends the marker at ``s +
    1`` and neuron ``j`` at ``s + P + j`` (its spike, to the readout's queue) and ends at ``s +
    P + H`` (``P`` = :data:`~spikegate.hdl.lif_layer.PASS_LATENCY`, 6); a readout pass has no
    marker: ``s + P - 1 + j``. The result is valid the cycle after
    both layers' last passes have ended and their counters settled (2 cycles after the later
    ``image_done``).
    """
    x = np.asarray(x).astype(bool)
    s = np.asarray(hidden_spikes).astype(bool)
    n_in, H, C = (int(v) for v in sizes)
    lanes = (lanes,) * 2 if isinstance(lanes, (int, np.integer)) else tuple(lanes)
    G0, G1 = -(-H // int(lanes[0])), -(-C // int(lanes[1]))
    T = int(timesteps)
    out = np.zeros(len(x), np.int64)
    for b in range(len(x)):
        beats, c = [], 0
        for t in range(T - 1):
            for _ in np.flatnonzero(x[b, t]):
                beats.append((c, True))
                c += 1
            beats.append((c, False))
            c += 1
        if len(beats) > n_in + T:
            raise ValueError(f"image {b}: {len(beats)} input beats, more than the default "
                             f"input queue's {n_in + T}: the model assumes they all fit")
        spiking = [np.flatnonzero(s[b, k + 1]) for k in range(T - 1)]
        h_out, h_done = _layer_times(beats, H, G0, spiking, T)
        _, r_done = _layer_times([(cyc, j is not None) for cyc, j in h_out], C, G1, None, T)
        out[b] = max(h_done, r_done) + 2
    return out
