"""One PD layer: its inputs' encoder, the shared weight lookup, the accumulators and the decoder.

A frame goes through the layer in three overlapping parts:

1. **encode** (:class:`~spikegate.hdl.pd_encoder.PDEncoder`): one input per cycle to signed
   spike events ``(i, s)``, only ``s != 0``, into a queue;
2. **accumulate**: each event walks row ``i`` of the weights ``|s|`` times through the
   :class:`~spikegate.hdl.lookup.WeightLookup`, with op :attr:`PDOp.ADD` (``s > 0``) or
   :attr:`PDOp.SUB`; on its beats every lane does one row addition of
   :func:`~spikegate.golden.sigma_delta_fixed.accumulate_fx`, ``u = saturate(u +- w, ACC_W)``,
   in a state memory of one word per lane group (read at the lookup's issue, written back at
   the beat; rows follow each other with no gap, so the read port is transparent);
3. **decode**, after the frame's last event has walked: one neuron per cycle, ``y =
   decode(u, y)`` (:func:`~spikegate.golden.sigma_delta_fixed.decode_fx`), ``z = y + b`` and
   the activation (:func:`~spikegate.golden.pdnn_fixed.activate_fx`) out on ``o_stream``; the
   accumulator is zeroed for the next frame.

The arithmetic is :mod:`spikegate.hdl.pd_arith`, step for step the golden model's.
"""

import numpy as np

from amaranth.hdl import Array, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from spikegate.golden.sigma_delta_fixed import SDFixedFormat
from spikegate.golden.fixed import WEIGHT_BITS
from . import pd_arith
from .layouts import RESULT_COUNT_BITS, index_bits
from .lookup import WeightLookup
from .params import checking
from .pd_encoder import PDEncoder
from .layouts import PDActivationLayout, PDEventLayout, out_width
from .signatures import PDBiasPort, PDTracePort
from .signatures import WeightPort
from .spike_queue import SpikeQueue, StreamRegister

__all__ = ["PDLayer", "PDOp", "DECODER_LATENCY"]

#: Cycles from a neuron's issue in the decode pass to its activation on ``o_stream`` (no
#: back-pressure): the read and its register, :func:`~.pd_arith.decode`'s cuts, the ``y``
#: register,
#: :func:`~.pd_arith.activate`'s cuts and the output register.
DECODER_LATENCY = 2 + pd_arith.DECODE_CUTS + 1 + pd_arith.ACTIVATE_CUTS + 1


class PDOp(enum.IntEnum, shape=1):
    """What a PD layer's row walk does (the op codes it gives the weight lookup)."""
    #: add the source's weight row to the destinations' accumulators (a positive spike)
    ADD = 0
    #: subtract it (a negative spike)
    SUB = 1


class PDLayer(wiring.Component):
    """A PD layer of ``n_dst`` neurons fed by ``n_src`` inputs.

    Parameters
    ----------
    n_src, n_dst, lanes : int
        See :class:`~spikegate.hdl.lookup.WeightLookup`.
    fmt : SDFixedFormat
        The layer's format (its input coder, accumulator and decoder); ``w_width`` must be 8.
    next_fmt : SDFixedFormat or None
        The next layer's format: the activations go out in its ``x_width`` / ``x_frac``. None
        for the last layer, whose output is ``z = y + b`` (``y_width + 1`` bits).
    weights : array of int, shape (n_src, n_dst), optional
        Initial weights (8 bits signed, ``fmt.w_frac`` fractional). Zero when omitted.
    biases : array of int, shape (n_dst,), optional
        Initial biases (``fmt.y_width`` bits signed, ``fmt.y_frac`` fractional). Zero when
        omitted.
    queue_depth : int
        Events the queue between encoder and accumulation holds (at least 2).
    weight_memory : str
        :attr:`~spikegate.hdl.lookup.WeightLookup.weight_memory`.
    weight_out_register, weight_bank_depth, weight_bank_width : bool, int or None
        The lookup's ``out_register``, ``bank_depth`` and ``bank_width``: its beats (and the
        accumulators' reads at their issue) one cycle later, the decode one cycle later.

    Members
    -------
    i_stream : In(stream)
        :class:`~spikegate.hdl.layouts.PDActivationLayout` (``fmt.x_width``): frames of
        ``n_src`` activations.
    o_stream : Out(stream)
        :class:`~spikegate.hdl.layouts.PDActivationLayout`
        (:func:`~spikegate.hdl.layouts.out_width`): the frame's ``n_dst`` activations.
    weights : In(WeightPort)
        Load and read back weights (only while not ``busy``).
    bias : In(PDBiasPort)
        Load biases (only while not ``busy``).
    trace : Out(PDTracePort)
        Every event and every decoded neuron.
    clear_stats : In; events, spikes : Out(unsigned(32))
        Events (inputs with ``s != 0``) and row additions (``sum |s|``) since ``clear_stats``.
    busy : Out
        A frame is in the layer, or its state is being zeroed (after reset).

    The state (the encoder's ``x_prev`` and ``phi``, the accumulators, the decoder's ``y``) is
    zeroed by every reset, in ``max(n_src, n_dst)`` cycles; weights and biases are kept.

    Cycles per frame: the encoder takes one input per cycle and the walks overlap it (an
    input's event reaches the queue :data:`~spikegate.hdl.pd_encoder.ENCODER_LATENCY` cycles
    after its transfer); each spike costs one row walk of ``ceil(n_dst / lanes)`` cycles (walks
    follow each other with no gap); the decode starts 3 cycles after the last walk's last issue
    and takes one neuron per cycle (``n_dst`` cycles plus :data:`DECODER_LATENCY` of latency),
    stalled only by ``o_stream``. With an input stream that never waits, a frame whose events
    arrive faster than they are walked takes about ``n_src`` (or, when more, ``sum|s| *
    ceil(n_dst / lanes)``) plus ``n_dst`` plus the two latencies and a few cycles.

    Timing: ``i_stream.ready`` and ``o_stream.valid`` and payload come from registers (and
    ``o_stream.ready`` / the queue's level), so no combinational path crosses a layer; the
    encoder and the decoder are pipelined (:mod:`~spikegate.hdl.pd_arith`'s cuts).
    """

    def __init__(self, n_src, n_dst, lanes, fmt, next_fmt=None, weights=None, biases=None, *,
                 queue_depth=16, weight_memory="auto", weight_out_register=False,
                 weight_bank_depth=None, weight_bank_width=None):
        with checking(self):
            for name, f in (("fmt", fmt), ("next_fmt", next_fmt)):
                if not (isinstance(f, SDFixedFormat) or (name == "next_fmt" and f is None)):
                    raise TypeError(f"{name} must be an SDFixedFormat, not {f!r}")
            if fmt.w_width != WEIGHT_BITS:
                raise ValueError(f"fmt.w_width must be {WEIGHT_BITS} (the weight memory's), not "
                                 f"{fmt.w_width}")
            if next_fmt is not None and fmt.y_frac < next_fmt.x_frac:
                raise ValueError(f"fmt.y_frac {fmt.y_frac} is below next_fmt.x_frac "
                                 f"{next_fmt.x_frac}")
            if biases is not None:
                b = np.asarray(biases)
                lo, hi = -(1 << fmt.y_width - 1), (1 << fmt.y_width - 1) - 1
                if b.shape != (n_dst,):
                    raise ValueError(f"biases must have shape ({n_dst},), not {b.shape}")
                if b.size and (b.min() < lo or b.max() > hi):
                    raise ValueError(f"biases must be in [{lo}, {hi}] (y_width {fmt.y_width})")
            if not isinstance(queue_depth, int) or queue_depth < 2:
                raise ValueError(f"queue_depth must be an integer >= 2, not {queue_depth!r}")
            self._lookup = WeightLookup(n_src, n_dst, lanes, weights, op_shape=PDOp,
                                        read_ops=(PDOp.ADD, PDOp.SUB),
                                        count_ops=(PDOp.ADD, PDOp.SUB),
                                        weight_memory=weight_memory,
                                        out_register=weight_out_register,
                                        bank_depth=weight_bank_depth,
                                        bank_width=weight_bank_width)
        self._n_src, self._n_dst, self._lanes = int(n_src), int(n_dst), int(lanes)
        self._fmt, self._next_fmt = fmt, next_fmt
        self._out_bits = out_width(fmt, next_fmt)
        self._encoder = PDEncoder(n_src, fmt)
        self._queue = SpikeQueue(PDEventLayout(n_src, fmt.spike_width), queue_depth)
        G = self._lookup.groups
        self.acc_data = memory.MemoryData(
            shape=data.ArrayLayout(signed(fmt.acc_width), self._lanes), depth=G, init=[])
        self.y_data = memory.MemoryData(shape=signed(fmt.y_width), depth=self._n_dst, init=[])
        self.bias_data = memory.MemoryData(
            shape=signed(fmt.y_width), depth=self._n_dst,
            init=[] if biases is None else [int(v) for v in np.asarray(biases)])
        super().__init__({
            "i_stream": In(stream.Signature(PDActivationLayout(fmt.x_width))),
            "o_stream": Out(stream.Signature(PDActivationLayout(self._out_bits))),
            "weights": In(WeightPort(n_src, n_dst)),
            "bias": In(PDBiasPort(n_dst, fmt.y_width)),
            "trace": Out(PDTracePort(n_src, n_dst, fmt, self._out_bits)),
            "clear_stats": In(1),
            "events": Out(RESULT_COUNT_BITS),
            "spikes": Out(RESULT_COUNT_BITS),
            "busy": Out(1),
        })

    @property
    def lookup(self):
        return self._lookup

    @property
    def rb_latency(self):
        """Cycles from the weight port's ``rb_en`` to its ``rb_data`` (the lookup's
        :attr:`~spikegate.hdl.lookup.WeightLookup.rb_latency`: 1, 3 with weight banks)."""
        return self._lookup.rb_latency

    @property
    def encoder(self):
        return self._encoder

    @property
    def fmt(self):
        return self._fmt

    @property
    def next_fmt(self):
        return self._next_fmt

    @property
    def groups(self):
        return self._lookup.groups

    @property
    def lanes(self):
        return self._lanes

    @property
    def out_bits(self):
        return self._out_bits

    def elaborate(self, platform):
        m = Module()
        fmt = self._fmt
        m.submodules.encoder = enc = self._encoder
        m.submodules.queue = queue = self._queue
        m.submodules.lookup = lk = self._lookup
        wiring.connect(m, wiring.flipped(self.weights), lk.weights)
        m.submodules.acc = acc = memory.Memory(data=self.acc_data)
        m.submodules.y = ymem = memory.Memory(data=self.y_data)
        m.submodules.bias = bmem = memory.Memory(data=self.bias_data)
        acc_wp = acc.write_port()
        acc_rp = acc.read_port(transparent_for=(acc_wp,))
        y_wp, y_rp = ymem.write_port(), ymem.read_port()
        b_wp, b_rp = bmem.write_port(), bmem.read_port()

        # Zeroing the accumulators and decoder states after reset (the encoder zeroes its own).
        clearing = Signal(init=1)
        clear_addr = Signal(range(max(self._n_dst, self.groups)))
        with m.If(clearing):
            m.d.sync += clear_addr.eq(clear_addr + 1)
            with m.If(clear_addr == max(self._n_dst, self.groups) - 1):
                m.d.sync += clearing.eq(0)

        # Encoder: the layer's input (held while clearing), events into the queue.
        m.d.comb += [
            enc.i_stream.payload.eq(self.i_stream.payload),
            enc.i_stream.valid.eq(self.i_stream.valid & ~clearing),
            self.i_stream.ready.eq(enc.i_stream.ready & ~clearing),
        ]
        wiring.connect(m, enc.o_stream, queue.i_stream)
        self._statistics(m, enc)

        decoding = Signal()
        head = self._accumulate(m, queue, lk, decoding)
        acc_busy = Signal()
        dec = self._decode(m, lk, decoding, acc_busy, acc_rp, y_rp, b_rp, y_wp)

        # The accumulators' ports: the lookup's issue and beats, else the decoder's. A beat's
        # weights and the word it updates (read at its issue) are registered first (the weight
        # memory's output is a path of its own), added the cycle after and written back then.
        # With one lane group, consecutive beats update the same word: the read of the second
        # came before the first's write, so the first's result is taken instead.
        beat = lk.beat
        a_valid, a_sub = Signal(), Signal()
        a_group = Signal.like(beat.group)
        a_w = Signal.like(beat.weights)
        a_u = Signal.like(acc_rp.data)
        m.d.sync += [a_valid.eq(beat.valid), a_sub.eq(beat.op == PDOp.SUB),
                     a_group.eq(beat.group), a_w.eq(beat.weights), a_u.eq(acc_rp.data)]
        u_in = Signal.like(acc_rp.data)
        new = Signal.like(acc_rp.data)
        m.d.comb += u_in.eq(a_u)
        if self.groups == 1:
            last_new, wrote = Signal.like(new), Signal()
            m.d.sync += [last_new.eq(new), wrote.eq(a_valid)]
            with m.If(wrote):
                m.d.comb += u_in.eq(last_new)
        for l in range(self._lanes):
            m.d.comb += new[l].eq(pd_arith.accumulate(u_in[l], a_w[l], a_sub, fmt))
        with m.If(dec["go"]):
            m.d.comb += [acc_rp.addr.eq(dec["group"]), acc_rp.en.eq(dec["advance"])]
        with m.Else():
            m.d.comb += [acc_rp.addr.eq(beat.issue_group), acc_rp.en.eq(beat.issue_valid)]
        with m.If(clearing):
            m.d.comb += [acc_wp.addr.eq(clear_addr), acc_wp.data.eq(0),
                         acc_wp.en.eq(clear_addr < self.groups)]
        with m.Elif(a_valid):
            m.d.comb += [acc_wp.addr.eq(a_group), acc_wp.data.eq(new), acc_wp.en.eq(1)]
        with m.Elif(dec["zero"]):
            m.d.comb += [acc_wp.addr.eq(dec["zero_group"]), acc_wp.data.eq(0), acc_wp.en.eq(1)]
        with m.If(clearing):
            m.d.comb += [y_wp.addr.eq(clear_addr), y_wp.data.eq(0),
                         y_wp.en.eq(clear_addr < self._n_dst)]

        # Biases: written by the host while the layer is idle.
        m.d.comb += [b_wp.addr.eq(self.bias.w_dst), b_wp.data.eq(self.bias.w_data),
                     b_wp.en.eq(self.bias.w_en)]

        m.d.comb += acc_busy.eq(a_valid)
        m.d.comb += self.busy.eq(clearing | enc.busy | (queue.level != 0) | head.o_stream.valid |
                                 lk.busy | a_valid | decoding)
        return m

    def _statistics(self, m, enc):
        """Events and row additions, and the encoder's half of the trace."""
        ev = enc.o_stream
        fire = Signal()
        mag = Signal(range((1 << self._fmt.spike_width - 1) + 1))
        m.d.comb += [fire.eq(ev.valid & ev.ready),
                     mag.eq(Mux(ev.payload.count < 0, -ev.payload.count, ev.payload.count))]
        with m.If(self.clear_stats):
            m.d.sync += [self.events.eq(0), self.spikes.eq(0)]
        with m.Elif(fire & (ev.payload.count != 0)):
            m.d.sync += [self.events.eq(self.events + 1), self.spikes.eq(self.spikes + mag)]
        t = self.trace
        m.d.comb += [t.s_valid.eq(fire), t.s_index.eq(ev.payload.index),
                     t.s_count.eq(ev.payload.count), t.s_end.eq(ev.payload.end)]

    def _accumulate(self, m, queue, lk, decoding):
        """Row commands from the queue's head event: ``|count|`` walks of its row, the head
        taken with the last; the frame's end event starts the decode (``decoding``). The head
        leaves the queue into a :class:`~spikegate.hdl.spike_queue.StreamRegister` as
        ``(index, sub, need = |count|, end)``, so the walker's decisions start at registers."""
        width = self._fmt.spike_width
        layout = data.StructLayout({"index": index_bits(self._n_src), "sub": 1,
                                    "need": unsigned(width), "end": 1})
        m.submodules.head = reg = StreamRegister(layout)
        ev = queue.o_stream.payload
        m.d.comb += [
            reg.i_stream.valid.eq(queue.o_stream.valid),
            queue.o_stream.ready.eq(reg.i_stream.ready),
            reg.i_stream.payload.index.eq(ev.index),
            reg.i_stream.payload.sub.eq(ev.count < 0),
            reg.i_stream.payload.need.eq(Mux(ev.count < 0, -ev.count, ev.count)),
            reg.i_stream.payload.end.eq(ev.end),
        ]
        head = reg.o_stream.payload
        issued = Signal(unsigned(width))
        fire, last_row, empty, pop = Signal(), Signal(), Signal(), Signal()
        m.d.comb += [
            lk.cmd.valid.eq(reg.o_stream.valid & (issued != head.need) & ~decoding),
            lk.cmd.payload.src.eq(head.index),
            lk.cmd.payload.op.eq(Mux(head.sub, PDOp.SUB, PDOp.ADD)),
            fire.eq(lk.cmd.valid & lk.cmd.ready),
            last_row.eq(fire & (issued + 1 == head.need)),
            empty.eq(reg.o_stream.valid & (head.need == 0) & ~decoding),
            pop.eq(last_row | empty),
            reg.o_stream.ready.eq(pop),
        ]
        with m.If(pop):
            m.d.sync += issued.eq(0)
        with m.Elif(fire):
            m.d.sync += issued.eq(issued + 1)
        with m.If(pop & head.end):
            m.d.sync += decoding.eq(1)
        return reg

    def _decode(self, m, lk, decoding, acc_busy, acc_rp, y_rp, b_rp, y_wp):
        """The decode pass, one neuron per cycle once the lookup has drained, pipelined: stage
        0 issues the reads of neuron ``j`` (its accumulator word and ``y``); stage 1 takes its
        lane of the word (and zeroes the word after its last lane); :func:`~.pd_arith.decode`
        (:data:`~.pd_arith.DECODE_CUTS` stages) gives ``y``, registered and written back;
        :func:`~.pd_arith.activate` (``b`` read the stage before) gives the activation,
        registered onto ``o_stream``. Every stage advances when the output register is free or
        being emptied. Returns the signals the accumulator ports need."""
        n, L, fmt = self._n_dst, self._lanes, self._fmt
        go, issuing, advance, en = Signal(), Signal(), Signal(), Signal()
        j = Signal(range(n))
        lane = Signal(range(L))
        group = Signal(range(self.groups))
        issued_all = Signal()
        m.d.comb += [
            go.eq(decoding & ~lk.busy & ~acc_busy),
            issuing.eq(go & ~issued_all),
            advance.eq(issuing & en),
            y_rp.addr.eq(j), y_rp.en.eq(advance),
        ]
        with m.If(advance):
            m.d.sync += j.eq(pd_arith.wrap_increment(j, n))
            with m.If(j == n - 1):
                m.d.sync += [issued_all.eq(1), lane.eq(0), group.eq(0)]
            with m.Elif(lane == L - 1):
                m.d.sync += [lane.eq(0), group.eq(group + 1)]
            with m.Else():
                m.d.sync += lane.eq(lane + 1)

        stages = []
        y_stage = 3 + pd_arith.DECODE_CUTS              # where y is registered (b with it)
        inject = {y_stage: {"b": b_rp.data}}

        def cut(*values):
            """One decoder stage: ``values`` and the side band (valid, neuron, lane, group,
            last, and ``u``, ``y`` once known; ``inject``) registered when ``en``."""
            k = len(stages) + 1
            regs = []
            for v in values:
                r = Signal(Value.cast(v).shape(), name=f"dec_s{k}_{len(regs)}")
                with m.If(en):
                    m.d.sync += r.eq(v)
                regs.append(r)
            prev = stages[-1] if stages else {"valid": advance, "index": j, "lane": lane,
                                               "group": group, "last": j == n - 1}
            prev = {**prev, **inject.get(k, {})}
            st = {}
            for name, v in prev.items():
                st[name] = Signal(Value.cast(v).shape(), name=f"dec_s{k}_{name}")
                with m.If(en):
                    m.d.sync += st[name].eq(v)
            stages.append(st)
            return regs

        cut()
        s1 = stages[-1]
        u = Signal(signed(fmt.acc_width))
        m.d.comb += u.eq(Array(acc_rp.data[l] for l in range(L))[s1["lane"]])
        u2, y_prev = cut(u, y_rp.data)           # memory outputs into registers only
        stages[-1]["u"] = u2
        y = pd_arith.decode(m, u2, y_prev, fmt, cut=cut)
        assert len(stages) == y_stage - 1
        m.d.comb += [b_rp.addr.eq(stages[y_stage - 3]["index"]), b_rp.en.eq(en)]
        y_reg, = cut(y)
        sy = stages[-1]
        sy["y"] = y_reg
        m.d.comb += [y_wp.addr.eq(sy["index"]), y_wp.data.eq(y_reg),
                     y_wp.en.eq(en & sy["valid"])]
        _, act = pd_arith.activate(m, y_reg, sy["b"], fmt, self._next_fmt, cut=cut)
        act_reg, = cut(act)
        out = stages[-1]

        done = Signal()
        m.d.comb += [
            self.o_stream.valid.eq(out["valid"]),
            self.o_stream.payload.x.eq(act_reg),
            en.eq(~out["valid"] | self.o_stream.ready),
            done.eq(out["valid"] & self.o_stream.ready),
        ]
        with m.If(done & out["last"]):
            m.d.sync += [decoding.eq(0), issued_all.eq(0)]
        t = self.trace
        m.d.comb += [t.d_valid.eq(done), t.d_index.eq(out["index"]), t.d_u.eq(out["u"]),
                     t.d_y.eq(out["y"]), t.d_act.eq(act_reg)]
        zero = Signal()
        m.d.comb += zero.eq(en & s1["valid"] & ((s1["lane"] == L - 1) | s1["last"]))
        return {"go": go, "advance": advance, "group": group, "zero": zero,
                "zero_group": s1["group"]}
