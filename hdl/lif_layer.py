"""One LIF layer of sparse spiking gradient descent on the shared weight lookup: input spikes
in, per timestep a pass over the neurons, output spikes and active events out.

A timestep goes through the layer in two parts:

1. **accumulate**: each input spike (an event of :class:`~spikegate.hdl.lif_layouts.LIFEventLayout`
   from the queue) walks its source's weight row through the
   :class:`~spikegate.hdl.lookup.WeightLookup` (op :attr:`LIFOp.ADD`); on the beats every lane
   adds its weight to its destination's synaptic sum, in a memory of one word per lane group
   (read at the lookup's issue, written back a cycle after the beat, at the beat with one
   group; the read port is transparent so rows follow each other with no gap). The sums are
   exact (wide enough for every source spiking once per step), so saturating them to
   ``acc_bits`` at the end is :func:`~spikegate.golden.ssgd_fixed.synaptic_input`.
2. **pass**, after the step's end marker and the last walk: a five-stage pipeline over the
   neurons, one per cycle, :func:`~spikegate.golden.ssgd_fixed.lif_step` cut in three so that
   no stage has more than one adder chain of it (the UP5K at 30 MHz). A reads neuron ``j``'s
   synaptic sum and its state (``V``, ``S``); B decays ``V``, saturates the synaptic sum and
   zeroes the synaptic word after its last lane; B2 integrates (reset by subtraction,
   saturation); B3 fires, makes the active test, writes the state back and reads the surrogate
   table; C offers the output spike on ``o_stream`` and the active event on ``a_stream`` and
   shows the neuron on ``trace``. The pipeline moves when C's events have been taken.

The arithmetic is :mod:`spikegate.hdl.lif_arith`, step for step the golden model's
(:mod:`spikegate.golden.ssgd_fixed`). A *readout* layer (``readout=True``) is the same leaky
integrator without threshold, reset or active test: ``O[t+1] = saturate(decay(O[t], beta_q) +
syn, v_bits)`` (:func:`~spikegate.golden.ssgd_fixed.integrate` with no spike), shown on
``trace`` only.

Timesteps. An image is ``T = timesteps`` steps; the layer takes the input spikes of steps ``0
.. T-2`` (the input of step ``T-1`` is never used, as in the golden model) and its pass of
step ``k`` computes ``V[k+1]`` (``V[0] = 0``, ``S[0] = 0``). Its output stream carries the
spikes ``S[0] .. S[T-2]`` as steps for the next layer: at the start of pass ``k`` the marker
closing output step ``k`` (step 0 has no spikes), then, unless ``k = T-2``, the spikes
``S[k+1]``. So every layer takes ``T-1`` steps and gives ``T-1``. After the pass of step
``T-2`` the next image starts from the zero state (no clearing pass: step 0 reads the state as
zero).
"""

import numpy as np

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from spikegate.golden.fixed import WEIGHT_BITS, signed_bits, unsigned_bits
from spikegate.golden.ssgd_fixed import FixedFormat, surrogate_lut
from . import lif_arith
from .layouts import RESULT_COUNT_BITS
from .lif_layouts import LIFActiveLayout, LIFEventLayout
from .lookup import WeightLookup
from .params import checking
from .signatures import LIFTracePort, WeightPort
from .spike_queue import SpikeQueue

__all__ = ["LIFLayer", "LIFOp", "MAX_SURROGATE_ENTRIES", "PASS_LATENCY"]

#: The most entries of the surrogate table (``b_th_q``): a block RAM of ``g_bits`` words.
MAX_SURROGATE_ENTRIES = 4096

#: Cycles from the start of a pass (the marker taken from the queue) to the first neuron in
#: stage C: the output marker's cycle, A, B, B2, B3 and C (one less in a readout, which sends
#: no marker). 4 before B2 and B3 (2026-12-06).
PASS_LATENCY = 6


class LIFOp(enum.IntEnum, shape=1):
    """What a LIF layer's row walk does (the op codes it gives the weight lookup)."""
    #: add the source's weight row to the destinations' synaptic sums (an input spike)
    ADD = 0


class LIFLayer(wiring.Component):
    """A LIF layer (or a leaky readout) of ``n_dst`` neurons fed by ``n_src`` inputs.

    Parameters
    ----------
    n_src, n_dst, lanes : int
        See :class:`~spikegate.hdl.lookup.WeightLookup`.
    timesteps : int
        Steps per image ``T`` (at least 2).
    beta_q : int
        The decay (:func:`~spikegate.golden.ssgd_fixed.quantize_decay`), ``0 .. 2**decay_bits
        - 1``.
    fmt : FixedFormat
        The widths (:class:`~spikegate.golden.ssgd_fixed.FixedFormat`); ``w_bits`` must be 8.
    b_th_q : int
        The active half-width in membrane LSBs (:func:`~spikegate.golden.ssgd_fixed.quantize_b_th`),
        1 to :data:`MAX_SURROGATE_ENTRIES`; not for a readout.
    surrogate_scale : float
        ``scale`` of :func:`~spikegate.golden.ssgd_fixed.surrogate_lut`.
    weights : array of int, shape (n_src, n_dst), optional
        Initial weights (signed 8 bits). Zero when omitted.
    readout : bool
        A leaky integrator without threshold: no ``o_stream``, no ``a_stream``.
    queue_depth : int
        The input queue's depth (at least 4); it holds ``queue_depth - 2`` events (the input's
        ready is registered).
    weight_memory : str
        :attr:`~spikegate.hdl.lookup.WeightLookup.weight_memory`.

    Members
    -------
    i_stream : In(stream)
        :class:`~spikegate.hdl.lif_layouts.LIFEventLayout` (``n_src``): steps ``0 .. T-2`` of
        each image, each its spikes (each source at most once) and a marker.
    o_stream : Out(stream)
        :class:`~spikegate.hdl.lif_layouts.LIFEventLayout` (``n_dst``): the spikes, as steps
        ``0 .. T-2`` for the next layer (see the module docstring). Not in a readout.
    a_stream : Out(stream)
        :class:`~spikegate.hdl.lif_layouts.LIFActiveLayout`: every active ``(neuron, step,
        g)``, steps ``1 .. T-1``, in order of step and neuron. Not in a readout.
    trace : Out(LIFTracePort)
        Every neuron of every step as stage C completes it.
    weights : In(WeightPort)
        Load and read back weights (only while not ``busy``).
    clear_stats : In; in_spikes, spikes, active, lookups : Out(unsigned(32))
        Input spikes walked, output spikes, active entries and weights read since
        ``clear_stats``.
    image_done : Out
        A strobe: the pass of step ``T-2`` (an image's last) has ended.
    busy : Out
        An event is queued, a row walked, a pass in flight, or the synaptic sums being zeroed
        (after reset).

    After reset the synaptic sums are zeroed in ``ceil(n_dst / lanes)`` cycles (the input is
    held meanwhile) and the layer is at step 0 of an image; weights are kept.

    Cycles: an input spike reaches the walker 2 cycles after it enters the queue and walks
    ``G = ceil(n_dst / lanes)`` cycles (walks back to back). The marker starts the pass the
    first cycle the walker is idle (the beat of the last walk written); with the output streams
    never waiting, neuron ``j`` is in stage C :data:`PASS_LATENCY` ``+ j`` cycles after the
    start (one less in a readout), and the next step's events are taken from the cycle after
    the last neuron's (``n_dst + PASS_LATENCY`` cycles after the start); they wait in the queue
    meanwhile. :func:`spikegate.hdl.ssgd_network.expected_cycles` is the model.
    """

    def __init__(self, n_src, n_dst, lanes, timesteps, beta_q, *, fmt=None, b_th_q=None,
                 surrogate_scale=100.0, weights=None, readout=False, queue_depth=16,
                 weight_memory="auto"):
        fmt = FixedFormat() if fmt is None else fmt
        with checking(self):
            if not isinstance(fmt, FixedFormat):
                raise TypeError(f"fmt must be a ssgd_fixed.FixedFormat, not {fmt!r}")
            if fmt.w_bits != WEIGHT_BITS:
                raise ValueError(f"fmt.w_bits must be {WEIGHT_BITS} (the weight memory's), not "
                                 f"{fmt.w_bits}")
            if isinstance(timesteps, bool) or not isinstance(timesteps, (int, np.integer)) \
                    or timesteps < 2:
                raise ValueError(f"timesteps must be an integer >= 2, not {timesteps!r}")
            if isinstance(beta_q, bool) or not isinstance(beta_q, (int, np.integer)) \
                    or not 0 <= beta_q < (1 << fmt.decay_bits):
                raise ValueError(f"beta_q must be an integer in [0, {(1 << fmt.decay_bits) - 1}]"
                                 f", not {beta_q!r}")
            if not isinstance(readout, bool):
                raise TypeError(f"readout must be a bool, not {readout!r}")
            if readout:
                if b_th_q is not None:
                    raise ValueError(f"a readout has no active band: b_th_q must be None, not "
                                     f"{b_th_q!r}")
            elif isinstance(b_th_q, bool) or not isinstance(b_th_q, (int, np.integer)) \
                    or not 1 <= b_th_q <= MAX_SURROGATE_ENTRIES:
                raise ValueError(f"b_th_q must be an integer from 1 to {MAX_SURROGATE_ENTRIES}, "
                                 f"not {b_th_q!r}")
            if not isinstance(queue_depth, int) or queue_depth < 4:
                raise ValueError(f"queue_depth must be an integer >= 4, not {queue_depth!r}")
            self._lookup = WeightLookup(n_src, n_dst, lanes, weights, op_shape=LIFOp,
                                        read_ops=(LIFOp.ADD,), count_ops=(LIFOp.ADD,),
                                        weight_memory=weight_memory)
        self._n_src, self._n_dst, self._lanes = int(n_src), int(n_dst), int(lanes)
        self._timesteps, self._beta_q, self._fmt = int(timesteps), int(beta_q), fmt
        self._readout = readout
        self._b_th_q = None if readout else int(b_th_q)
        self._queue = SpikeQueue(LIFEventLayout(n_src), queue_depth)
        self._step_bits = unsigned_bits(self._timesteps - 1)
        # The exact synaptic sum of a step with every source spiking once.
        self._acc_bits = signed_bits(-(1 << WEIGHT_BITS - 1) * self._n_src,
                                     ((1 << WEIGHT_BITS - 1) - 1) * self._n_src)
        G = self._lookup.groups
        self.syn_data = memory.MemoryData(
            shape=data.ArrayLayout(signed(self._acc_bits), self._lanes), depth=G, init=[])
        self.state_data = memory.MemoryData(
            shape=data.StructLayout({"v": signed(fmt.v_bits), "s": unsigned(1)}),
            depth=self._n_dst, init=[])
        ports = {}
        if not readout:
            self.lut = surrogate_lut(fmt, self._b_th_q, surrogate_scale)
            self.lut_data = memory.MemoryData(shape=unsigned(fmt.g_bits), depth=self._b_th_q,
                                              init=[int(v) for v in self.lut])
            ports = {
                "o_stream": Out(stream.Signature(LIFEventLayout(n_dst))),
                "a_stream": Out(stream.Signature(
                    LIFActiveLayout(n_dst, self._step_bits, fmt.g_bits))),
            }
        super().__init__({
            "i_stream": In(stream.Signature(LIFEventLayout(n_src))),
            **ports,
            "trace": Out(LIFTracePort(n_dst, self._step_bits, fmt)),
            "weights": In(WeightPort(n_src, n_dst)),
            "clear_stats": In(1),
            "in_spikes": Out(RESULT_COUNT_BITS),
            "spikes": Out(RESULT_COUNT_BITS),
            "active": Out(RESULT_COUNT_BITS),
            "lookups": Out(RESULT_COUNT_BITS),
            "image_done": Out(1),
            "busy": Out(1),
        })

    @property
    def lookup(self):
        return self._lookup

    @property
    def n_src(self):
        return self._n_src

    @property
    def n_dst(self):
        return self._n_dst

    @property
    def lanes(self):
        return self._lanes

    @property
    def groups(self):
        return self._lookup.groups

    @property
    def timesteps(self):
        return self._timesteps

    @property
    def step_bits(self):
        return self._step_bits

    @property
    def fmt(self):
        return self._fmt

    @property
    def readout(self):
        return self._readout

    def elaborate(self, platform):
        m = Module()
        fmt, n, L, G = self._fmt, self._n_dst, self._lanes, self.groups
        spiking = not self._readout
        m.submodules.queue = queue = self._queue
        m.submodules.lookup = lk = self._lookup
        wiring.connect(m, wiring.flipped(self.weights), lk.weights)
        m.d.comb += lk.clear_count.eq(self.clear_stats)
        m.d.comb += self.lookups.eq(lk.lookups)
        m.submodules.syn = syn = memory.Memory(data=self.syn_data)
        m.submodules.state = state = memory.Memory(data=self.state_data)
        syn_wp = syn.write_port()
        syn_rp = syn.read_port(transparent_for=(syn_wp,))
        st_wp, st_rp = state.write_port(), state.read_port()

        # Zeroing the synaptic sums after reset.
        clearing = Signal(init=1)
        clear_addr = Signal(range(G))
        with m.If(clearing):
            m.d.sync += clear_addr.eq(clear_addr + 1)
            with m.If(clear_addr == G - 1):
                m.d.sync += clearing.eq(0)
        # The input's ready is a register (the queue held at most depth - 3 beats the cycle
        # before, so it has room now: the FIFO's level compare is not on the path of the
        # layer feeding this one, whose pipeline stalls on it); the queue holds depth - 2.
        room = Signal()
        m.d.sync += room.eq(queue.level < queue.depth - 2)
        m.d.comb += [
            queue.i_stream.payload.eq(self.i_stream.payload),
            queue.i_stream.valid.eq(self.i_stream.valid & room & ~clearing),
            self.i_stream.ready.eq(room & ~clearing),
        ]

        # Accumulate: one row walk per input spike; the step's marker starts the pass once the
        # walker has drained.
        head = queue.o_stream.payload
        passing, start, walk = Signal(), Signal(), Signal()
        m.d.comb += [
            lk.cmd.valid.eq(queue.o_stream.valid & ~head.last & ~passing),
            lk.cmd.payload.src.eq(head.index),
            lk.cmd.payload.op.eq(LIFOp.ADD),
            walk.eq(lk.cmd.valid & lk.cmd.ready),
            start.eq(queue.o_stream.valid & head.last & ~passing & ~lk.busy),
            queue.o_stream.ready.eq(walk | start),
        ]

        # The pass: stages A (reads), B (arithmetic, writes, surrogate read), C (outputs).
        T = self._timesteps
        step = Signal(range(T - 1))          # the pass computes V[step + 1]
        first = Signal()
        m.d.comb += first.eq(step == 0)
        marker = Signal()                    # the output step's marker is on offer
        j = Signal(range(n))
        lane = Signal(range(L))
        group = Signal(range(G))
        issued_all = Signal()
        a_go, en = Signal(), Signal()
        c_valid, c_done = Signal(), Signal()
        m.d.comb += [
            a_go.eq(passing & ~marker & ~issued_all),
            en.eq(~c_valid | c_done),
        ]
        with m.If(start):
            m.d.sync += [passing.eq(1), marker.eq(spiking)]
        with m.If(a_go & en):
            with m.If(j == n - 1):
                m.d.sync += [issued_all.eq(1), j.eq(0), lane.eq(0), group.eq(0)]
            with m.Else():
                m.d.sync += j.eq(j + 1)
                with m.If(lane == L - 1):
                    m.d.sync += [lane.eq(0), group.eq(group + 1)]
                with m.Else():
                    m.d.sync += lane.eq(lane + 1)

        # Stage B.
        b_valid, b_last = Signal(), Signal()
        b_j = Signal(range(n))
        b_lane = Signal(range(L))
        b_group = Signal(range(G))
        with m.If(en):
            m.d.sync += [b_valid.eq(a_go), b_j.eq(j), b_lane.eq(lane), b_group.eq(group),
                         b_last.eq(j == n - 1)]
        total = Signal(signed(self._acc_bits))
        m.d.comb += total.eq(Array(syn_rp.data[l] for l in range(L))[b_lane])
        v_decayed, v_syn, s_old = self._lif_inputs(m, total, first, st_rp.data)
        move_b = Signal()
        m.d.comb += move_b.eq(en & b_valid)
        m.d.comb += [
            syn_rp.addr.eq(Mux(passing, group, lk.beat.issue_group)),
            syn_rp.en.eq(Mux(passing, a_go & en, lk.beat.issue_valid)),
            st_rp.addr.eq(j), st_rp.en.eq(a_go & en),
        ]
        self._synaptic_words(m, lk.beat, syn_rp, syn_wp, clearing, clear_addr,
                             move_b & ((b_lane == L - 1) | b_last), b_group)

        # Stage B2: integrate (V[step + 1], saturated).
        b2_valid, b2_last, b2_s = Signal(), Signal(), Signal()
        b2_j = Signal(range(n))
        b2_vd, b2_vs = Signal.like(v_decayed), Signal.like(v_syn)
        with m.If(en):
            m.d.sync += [b2_valid.eq(b_valid), b2_last.eq(b_last), b2_j.eq(b_j),
                         b2_vd.eq(v_decayed), b2_vs.eq(v_syn), b2_s.eq(s_old)]
        v_new = Signal(signed(fmt.v_bits))
        m.d.comb += v_new.eq(lif_arith.integrate(b2_vd, b2_vs, b2_s, fmt))

        # Stage B3: fire and the active test, the state written, the surrogate table read.
        b3_valid, b3_last = Signal(), Signal()
        b3_j = Signal(range(n))
        b3_v = Signal(signed(fmt.v_bits))
        with m.If(en):
            m.d.sync += [b3_valid.eq(b2_valid), b3_last.eq(b2_last), b3_j.eq(b2_j),
                         b3_v.eq(v_new)]
        s_new, act, lut_rp = self._lif_fire(m, b3_v, en & b3_valid, platform)
        m.d.comb += [st_wp.addr.eq(b3_j), st_wp.data.v.eq(b3_v), st_wp.data.s.eq(s_new),
                     st_wp.en.eq(en & b3_valid)]

        # Stage C.
        c_j, c_v, c_s, c_act, c_last, g, out_step = self._stage_c(
            m, en, c_valid, c_done, marker, step, b3_valid, b3_j, b3_v, b3_last, s_new, act,
            lut_rp)
        with m.If(c_done & c_last):
            m.d.sync += [passing.eq(0), issued_all.eq(0),
                         step.eq(Mux(step == T - 2, 0, step + 1))]
            m.d.comb += self.image_done.eq(step == T - 2)

        t = self.trace
        m.d.comb += [t.valid.eq(c_done), t.step.eq(out_step), t.index.eq(c_j), t.v.eq(c_v),
                     t.spike.eq(c_s), t.active.eq(c_act), t.g.eq(g)]
        self._statistics(m, walk, c_done & c_s, c_done & c_act)
        m.d.comb += self.busy.eq(clearing | (queue.level != 0) | lk.busy | passing)
        return m

    def _stage_c(self, m, en, c_valid, c_done, marker, step, b3_valid, b3_j, b3_v, b3_last,
                 s_new, act, lut_rp):
        """Stage C: the neuron's outputs. A spiking layer offers its spike (``o_stream``;
        the step's marker first) and its active event (``a_stream``, with the surrogate value
        read in stage B3) and is done with the neuron when both are taken; a readout has
        neither. Returns the stage's registers and the trace's ``g`` and ``out_step``."""
        fmt, n, T, spiking = self._fmt, self._n_dst, self._timesteps, not self._readout
        c_j = Signal(range(n))
        c_v = Signal(signed(fmt.v_bits))
        c_s, c_act, c_last = Signal(), Signal(), Signal()
        sp_sent, ac_sent = Signal(), Signal()
        with m.If(en):
            m.d.sync += [c_valid.eq(b3_valid), c_j.eq(b3_j), c_v.eq(b3_v), c_s.eq(s_new),
                         c_act.eq(act), c_last.eq(b3_last), sp_sent.eq(0), ac_sent.eq(0)]
        g = Signal(fmt.g_bits)
        out_step = Signal(self._step_bits)
        m.d.comb += out_step.eq(step + 1)
        if spiking:
            o, a = self.o_stream, self.a_stream
            need_sp = Signal()
            m.d.comb += [
                need_sp.eq(c_s & (step != T - 2)),
                g.eq(Mux(c_act, lut_rp.data, 0)),
                o.valid.eq(marker | (c_valid & need_sp & ~sp_sent)),
                o.payload.index.eq(Mux(marker, 0, c_j)),
                o.payload.last.eq(marker),
                a.valid.eq(c_valid & c_act & ~ac_sent),
                a.payload.index.eq(c_j), a.payload.step.eq(out_step), a.payload.g.eq(g),
                c_done.eq(c_valid & (~need_sp | sp_sent | o.ready)
                          & (~c_act | ac_sent | a.ready)),
            ]
            with m.If(marker & o.ready):
                m.d.sync += marker.eq(0)
            with m.If(~en):
                with m.If(o.valid & o.ready & ~marker):
                    m.d.sync += sp_sent.eq(1)
                with m.If(a.valid & a.ready):
                    m.d.sync += ac_sent.eq(1)
        else:
            m.d.comb += c_done.eq(c_valid)
        return c_j, c_v, c_s, c_act, c_last, g, out_step

    def _lif_inputs(self, m, total, first, state):
        """Stage B's arithmetic (the first half of ``golden.ssgd_fixed.lif_step``): from the
        neuron's state word and its synaptic sum ``total``, the decayed membrane, the
        saturated synaptic input and the previous spike (0 at step 0, and in a readout)."""
        fmt, spiking = self._fmt, not self._readout
        v_old = Signal(signed(fmt.v_bits))
        s_old = Signal()
        m.d.comb += [v_old.eq(Mux(first, 0, state.v)),
                     s_old.eq(Mux(first, 0, state.s) if spiking else 0)]
        v_decayed = Signal(signed(fmt.v_bits + 1), name="v_decayed")
        m.d.comb += v_decayed.eq(lif_arith.decay(v_old, self._beta_q, fmt))
        v_syn = Signal(signed(min(self._acc_bits, fmt.acc_bits)), name="v_syn")
        m.d.comb += v_syn.eq(lif_arith.synaptic_input(total, fmt))
        return v_decayed, v_syn, s_old

    def _lif_fire(self, m, v_new, lut_en, platform=None):
        """Stage B3's arithmetic (the rest of ``golden.ssgd_fixed.lif_step``): the spike and
        the active flag of ``V[step + 1]`` and the surrogate table's read port (``None`` in a
        readout, whose spike and flag are 0; a block RAM on an iCE40 UltraPlus)."""
        fmt = self._fmt
        s_new, act = Signal(), Signal()
        if self._readout:
            return s_new, act, None
        d, mag = lif_arith.active_distance(m, v_new, fmt)
        m.d.comb += [s_new.eq(lif_arith.fire(v_new, fmt)),
                     act.eq(lif_arith.is_active(d, self._b_th_q, fmt))]
        from .ssgd_backward import block_ram_attrs
        m.submodules.lut = lut = memory.Memory(data=self.lut_data,
                                               attrs=block_ram_attrs(platform))
        lut_rp = lut.read_port()
        m.d.comb += [lut_rp.addr.eq(Mux(act, mag, 0)), lut_rp.en.eq(lut_en)]
        return s_new, act, lut_rp

    def _synaptic_words(self, m, beat, syn_rp, syn_wp, clearing, clear_addr, retire, b_group):
        """The synaptic words: zeroed after reset, a beat's sums added, zeroed after their
        last lane was read by the pass (``retire``, group ``b_group``).

        With two groups or more a beat's sums are registered and written the cycle after
        (the weight memory's clock-to-out and the adders before a register, not before the
        synaptic memory's write): a group is read again at the earliest ``groups`` cycles
        after its last read, so the cycle of its write or later (the read port is
        transparent), and the pass starts after the walks have drained, its first read a
        cycle after the last write. With one group, the next row reads it the cycle after:
        the sums are written at the beat."""
        new = Signal.like(syn_rp.data)
        for l in range(self._lanes):
            m.d.comb += new[l].eq(syn_rp.data[l] + beat.weights[l])
        w_valid, w_group, w_data = beat.valid, beat.group, new
        if self.groups > 1:
            w_valid, w_group = Signal(name="syn_w_valid"), Signal.like(beat.group)
            w_data = Signal.like(new)
            m.d.sync += [w_valid.eq(beat.valid), w_group.eq(beat.group), w_data.eq(new)]
        with m.If(clearing):
            m.d.comb += [syn_wp.addr.eq(clear_addr), syn_wp.data.eq(0), syn_wp.en.eq(1)]
        with m.Elif(w_valid):
            m.d.comb += [syn_wp.addr.eq(w_group), syn_wp.data.eq(w_data), syn_wp.en.eq(1)]
        with m.Elif(retire):
            m.d.comb += [syn_wp.addr.eq(b_group), syn_wp.data.eq(0), syn_wp.en.eq(1)]

    def _statistics(self, m, walk, spiked, active):
        """The layer's counters: input spikes walked, output spikes, active entries."""
        with m.If(self.clear_stats):
            m.d.sync += [self.in_spikes.eq(0), self.spikes.eq(0), self.active.eq(0)]
        with m.Else():
            with m.If(walk):
                m.d.sync += self.in_spikes.eq(self.in_spikes + 1)
            with m.If(spiked):
                m.d.sync += self.spikes.eq(self.spikes + 1)
            with m.If(active):
                m.d.sync += self.active.eq(self.active + 1)
