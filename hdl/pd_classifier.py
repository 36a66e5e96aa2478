"""A whole PD network (O'Connor et al. 2018) in hardware: frames in, one class per frame out.

The layers (:class:`~spikegate.hdl.pd_layer.PDLayer`) are joined stream to stream: layer
``l``'s decoded activations are layer ``l + 1``'s input frame, so layer ``l + 1`` encodes
while layer ``l`` decodes. The last layer's ``z`` go to an argmax; the result carries the class
and the frame's counters. One frame is in the network at a time: the next frame's first beat is
taken after the result's transfer, so every counter belongs to one frame and a frame's cycles
are its own. The state carries over from frame to frame (that is the point of a PD network)
and is zeroed by reset; the bit-accurate reference is
:meth:`spikegate.golden.pdnn_fixed.PDFixedNetwork.run`.
"""

import numpy as np

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spikegate.golden.pdnn_fixed import PDFixedNetwork
from spikegate.golden.sigma_delta_fixed import SDFixedFormat
from .layouts import RESULT_COUNT_BITS
from .lookup import MAX_LANES
from .params import checking
from .pd_arith import wrap_increment
from .pd_encoder import ENCODER_LATENCY
from .pd_layer import DECODER_LATENCY, PDLayer
from .layouts import PDActivationLayout, PDResultLayout
from .signatures import PDBiasPort, PDTracePort
from .signatures import WeightPort

__all__ = ["PDClassifier", "expected_cycles", "QUEUE_LATENCY"]

#: Cycles from an input's transfer into a layer to its event at the head of the (empty) queue:
#: the encoder's pipeline, the queue's two (:class:`~spikegate.hdl.spike_queue.SpikeQueue`)
#: and the head's register.
QUEUE_LATENCY = ENCODER_LATENCY + 3


class PDClassifier(wiring.Component):
    """A PD network of ``sizes`` neurons per layer (input first).

    Parameters
    ----------
    sizes : sequence of int
        E.g. ``(64, 64, 10)`` (digits) or ``(784, 200, 10)`` (MNIST).
    formats : sequence of SDFixedFormat
        One per weight layer (:class:`~spikegate.golden.pdnn_fixed.PDFixedNetwork`).
    lanes : int or sequence of int
        Weights read per cycle, per weight layer (1 to 16).
    weights, biases : sequences of arrays, optional
        Initial weights and biases per layer (zero when omitted); loadable at run time.
    queue_depth : int
        Events each layer's queue holds.
    weight_out_register, weight_bank_depth, weight_bank_width : bool, int or None
        Every layer's :class:`~spikegate.hdl.lookup.WeightLookup` ``out_register``,
        ``bank_depth`` and ``bank_width`` (the ECP5 build's registers after each block RAM): one
        cycle more per layer and frame (:attr:`drain`), the results unchanged.

    Members
    -------
    i_stream : In(stream)
        :class:`~spikegate.hdl.layouts.PDActivationLayout` (layer 0's ``x_width``): frames
        of ``sizes[0]`` activations in layer 0's input format
        (:func:`~spikegate.golden.pdnn_fixed.quantize_input`), input 0 first.
    o_stream : Out(stream)
        :class:`~spikegate.hdl.layouts.PDResultLayout`: per frame the class, the cycles and
        per layer the events and row additions.
    weights0 .. weights{L-1} : In(WeightPort)
        Load and read back layer ``l``'s weights, only while ``idle``.
    bias0 .. bias{L-1} : In(PDBiasPort)
        Load layer ``l``'s biases, only while ``idle``.
    trace0 .. trace{L-1} : Out(PDTracePort)
        Every spike event and decoded neuron of layer ``l`` (for test benches).
    idle : Out
        No frame in the network and no state being zeroed.

    Latency and throughput, in cycles (:func:`expected_cycles` computes it from the golden
    trace; the cocotb tests check it frame by frame). With the input stream never idle, layer
    ``l`` takes its inputs at cycles ``t_l + i`` (``t_0 = 0``: the frame's first beat); the
    event of input ``i_k`` (``|s_k|`` spikes) reaches the walker at ``t_l + i_k + Q``
    (``Q =`` :data:`QUEUE_LATENCY`: the encoder's pipeline and the queue), and walks of ``G_l =
    ceil(n_{l+1} / lanes_l)`` cycles follow each other with no gap, so the last starts at ``W_l
    = max_k (t_l + i_k + Q + G_l (R_k - 1))``, ``R_k`` the spikes of events ``k`` and later.
    The decode starts at ``D_l = max(W_l + G_l + 3, E_l + 1)`` (the last beat's row addition
    is registered once more) (``E_l``: the cycle the frame's
    end event leaves the queue, ``W_l`` when the last input spiked, else ``max(t_l + n_l - 1 +
    Q, W_l + 1)``) and hands neuron ``j`` on at ``D_l + P + j = t_{l+1} + j`` (``P =``
    :data:`~spikegate.hdl.pd_layer.DECODER_LATENCY`); the result is valid at ``D_{L-1} + n_L +
    P``, its ``cycles``. So a frame costs about ``sum_l max(n_l, G_l spikes_l) + n_L`` plus
    ``Q + P`` and a few cycles per layer: its spike events, not its inputs times its outputs.
    (Exact while the queue holds at least ``Q + 1`` events: a full queue stalls the encoder only
    while the walker has more queued work than the queue's latency.) The next frame's first
    beat is taken the cycle after the result's transfer.
    After reset the state is zeroed in ``max(sizes)`` cycles (``idle`` low, no beat taken).
    """

    def __init__(self, sizes, formats, lanes, weights=None, biases=None, *, queue_depth=16,
                 weight_out_register=False, weight_bank_depth=None, weight_bank_width=None):
        with checking(self):
            sizes = tuple(sizes)
            if len(sizes) < 2 or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in sizes):
                raise TypeError(f"sizes must be at least two positive integers, not {sizes!r}")
            L = len(sizes) - 1
            formats = tuple(formats)
            if len(formats) != L or not all(isinstance(f, SDFixedFormat) for f in formats):
                raise TypeError(f"formats must be {L} SDFixedFormats, not {formats!r}")
            lanes = (lanes,) * L if isinstance(lanes, (int, np.integer)) else tuple(lanes)
            if len(lanes) != L or not all(isinstance(v, (int, np.integer)) and 1 <= v <= MAX_LANES
                                          for v in lanes):
                raise ValueError(f"lanes must be an integer from 1 to {MAX_LANES} or {L} of them, "
                                 f"not {lanes!r}")
            for name, vals in (("weights", weights), ("biases", biases)):
                if vals is not None and len(vals) != L:
                    raise ValueError(f"{name} must have {L} entries, not {len(vals)}")
            self._layers = [
                PDLayer(sizes[l], sizes[l + 1], int(lanes[l]), formats[l],
                        formats[l + 1] if l + 1 < L else None,
                        None if weights is None else weights[l],
                        None if biases is None else biases[l], queue_depth=queue_depth,
                        weight_out_register=weight_out_register,
                        weight_bank_depth=weight_bank_depth,
                        weight_bank_width=weight_bank_width)
                for l in range(L)]
        self._sizes = tuple(int(s) for s in sizes)
        self._weight_out_register = bool(weight_out_register)
        self._formats, self._lanes = formats, tuple(int(v) for v in lanes)
        ports = {}
        for l, layer in enumerate(self._layers):
            ports[f"weights{l}"] = In(WeightPort(sizes[l], sizes[l + 1]))
            ports[f"bias{l}"] = In(PDBiasPort(sizes[l + 1], formats[l].y_width))
            ports[f"trace{l}"] = Out(PDTracePort(sizes[l], sizes[l + 1], formats[l],
                                                 layer.out_bits))
        super().__init__({
            "i_stream": In(stream.Signature(PDActivationLayout(formats[0].x_width))),
            "o_stream": Out(stream.Signature(PDResultLayout(self._sizes))),
            **ports,
            "idle": Out(1),
        })

    @classmethod
    def from_network(cls, net, lanes, **kwargs):
        """The classifier of a :class:`~spikegate.golden.pdnn_fixed.PDFixedNetwork`."""
        if not isinstance(net, PDFixedNetwork):
            raise TypeError(f"net must be a PDFixedNetwork, not {net!r}")
        return cls(net.sizes, net.formats, lanes, net.weights, net.biases, **kwargs)

    @property
    def sizes(self):
        return self._sizes

    @property
    def drain(self):
        """:func:`expected_cycles`' ``drain`` for this classifier: 3, one more with
        ``weight_out_register`` (the lookup's beats come one cycle later; nothing else
        changes)."""
        return 3 + int(self._weight_out_register)

    @property
    def formats(self):
        return self._formats

    @property
    def lanes(self):
        return self._lanes

    @property
    def layers(self):
        return list(self._layers)

    def elaborate(self, platform):
        m = Module()
        layers = self._layers
        for l, layer in enumerate(layers):
            m.submodules[f"layer{l}"] = layer
            wiring.connect(m, wiring.flipped(getattr(self, f"weights{l}")), layer.weights)
            wiring.connect(m, wiring.flipped(getattr(self, f"bias{l}")), layer.bias)
            wiring.connect(m, layer.trace, wiring.flipped(getattr(self, f"trace{l}")))
        for a, b in zip(layers, layers[1:]):
            wiring.connect(m, a.o_stream, b.i_stream)

        # The frame in: beats counted, the next frame held until the result has gone.
        n_in = self._sizes[0]
        beat = Signal(range(n_in))
        waiting = Signal()           # every beat taken, the result not yet transferred
        in_frame = Signal()          # the first beat taken, the result not yet transferred
        take, first = Signal(), Signal()
        first_in = layers[0].i_stream
        m.d.comb += [
            first_in.payload.eq(self.i_stream.payload),
            first_in.valid.eq(self.i_stream.valid & ~waiting),
            self.i_stream.ready.eq(first_in.ready & ~waiting),
            take.eq(self.i_stream.valid & self.i_stream.ready),
            first.eq(take & (beat == 0)),
        ]
        with m.If(take):
            m.d.sync += beat.eq(wrap_increment(beat, n_in))
            with m.If(beat == n_in - 1):
                m.d.sync += waiting.eq(1)
        for layer in layers:
            m.d.comb += layer.clear_stats.eq(first)

        # The argmax over the last layer's z (strictly greater: the lowest index wins a tie).
        res = self.o_stream
        last = layers[-1].o_stream
        n_out = self._sizes[-1]
        j = Signal(range(n_out))
        best = Signal.like(last.payload.x)
        klass = Signal.like(res.payload.klass)
        cycles = Signal(RESULT_COUNT_BITS)
        got = Signal()
        m.d.comb += [last.ready.eq(~res.valid), got.eq(last.valid & last.ready)]
        with m.If(got):
            m.d.sync += j.eq(wrap_increment(j, n_out))
            new_best = (j == 0) | (last.payload.x > best)
            with m.If(new_best):
                m.d.sync += [best.eq(last.payload.x), klass.eq(j)]
            with m.If(j == n_out - 1):
                m.d.sync += [res.valid.eq(1), res.payload.klass.eq(Mux(new_best, j, klass)),
                             res.payload.cycles.eq(cycles + 1)]
                for l, layer in enumerate(layers):
                    m.d.sync += [res.payload.events[l].eq(layer.events),
                                 res.payload.spikes[l].eq(layer.spikes)]
        with m.If(res.valid & res.ready):
            m.d.sync += [res.valid.eq(0), waiting.eq(0), in_frame.eq(0)]

        with m.If(first):
            m.d.sync += [cycles.eq(1), in_frame.eq(1)]
        with m.Elif(in_frame & ~res.valid):
            m.d.sync += cycles.eq(cycles + 1)

        busy = Signal()
        m.d.comb += [busy.eq(sum(layer.busy for layer in layers).bool()),
                     self.idle.eq(~in_frame & ~busy)]
        return m



def expected_cycles(trace, sizes, lanes, *, queue_latency=QUEUE_LATENCY,
                    decoder_latency=DECODER_LATENCY, drain=3):
    """The ``cycles`` of each frame's result, from the golden trace (a
    :class:`~spikegate.golden.pdnn_fixed.PDTrace`) of those frames: the timing model of
    :class:`PDClassifier`'s docstring, for an input stream that never idles (an array of
    ``len(trace)`` ints). The keywords are the model's latencies (:data:`QUEUE_LATENCY`,
    :data:`~spikegate.hdl.pd_layer.DECODER_LATENCY`, and the cycles from the last walk's
    last issue to the decode's start); other values describe other pipelines (e.g. the
    unpipelined design's: 3, 1, 2)."""
    sizes = tuple(int(s) for s in sizes)
    L = len(sizes) - 1
    lanes = (lanes,) * L if isinstance(lanes, (int, np.integer)) else tuple(lanes)
    G = [-(-sizes[l + 1] // int(lanes[l])) for l in range(L)]
    out = np.zeros(len(trace.klass), np.int64)
    for f in range(len(out)):
        t = 0
        for l in range(L):
            s = np.asarray(trace.s[l][f])
            n = sizes[l]
            idx = np.flatnonzero(s)
            if idx.size:
                rest = np.cumsum(np.abs(s[idx])[::-1])[::-1]
                last_walk = int(np.max(t + idx + queue_latency + G[l] * (rest - 1)))
                drained = last_walk + G[l] + drain
            else:
                last_walk = drained = -1
            end_pop = last_walk if s[n - 1] else max(t + n - 1 + queue_latency, last_walk + 1)
            decode = max(drained, end_pop + 1)
            t = decode + decoder_latency
        out[f] = decode + sizes[-1] + decoder_latency
    return out
