"""The sparse backward engine of SSGD, first part: the weight gradient ``G1`` of the hidden layer
from its active events (step 7 of :mod:`spikegate.golden.ssgd_train_fixed`), neuron by neuron.

Memory organisation (the issue's question: the forward reads ``W1`` by source, row ``i``; the
backward needs it by destination, column ``j``). ``G1[:, j]`` receives only neuron ``j``'s
events, so the engine never stores ``G1``: it walks the events **neuron by neuron** with one
``n_in``-entry column accumulator, and column ``j`` leaves on ``o_stream`` (for the update,
``W1[i, j] -= round_shift(G1[i, j], lr1_shift)``, a strided read-modify-write of the row-major
weight memory at ``i H + j`` through its :class:`~spikegate.hdl.signatures.WeightPort`: one word
per cycle, no second copy). To walk the events by neuron although the forward emits them by step,
each event is written once, as it arrives, into an event memory with a link to the previous
event of the same neuron (``tail[j]``): a list per neuron, walked from its newest event back,
with one write per event (no second port, no sort). The sums are exact, so their order does not
matter (as the golden model says).

Cost, for ``n_in`` inputs, ``H`` neurons, ``T`` steps and ``E`` events of capacity
``max_events`` (default ``(T-1) H``, every entry active): the event memory ``max_events x
(step + g + link)`` bits (``2048 x 32`` for 64-64, T = 32: 64 kbit, two UP5K SPRAM-sized blocks
or 16 EBR; a quarter of it covers ~10x the events a trained digits network makes), ``H`` tail
pointers, ``H`` flags; a column accumulator ``n_in x grad_bits`` (2 kbit), the input spike
times ``n_in x step``, the tables ``K`` and ``P`` (``T`` entries each), ``u`` (``H x 16``);
three multipliers (``K g``, ``ks u``, ``P delta``). A transposed second copy of ``W1`` would
instead cost ``n_in H`` bytes more and a second write per update; a full ``G1`` store ``n_in H
grad_bits`` (131 kbit for 64-64: more than the UP5K's 120 kbit of EBR).

Per event ``(t, j, g)``: ``ks = sat(round_shift(K[t] g, ks_shift))``, ``delta =
sat(round_shift(ks u_j, d_shift))`` (:func:`~spikegate.golden.ssgd_train_fixed.event_delta`),
then for every input ``i``: ``acc[i] += P[t - 1 - t_i] delta`` where ``t_i < t`` (the input
trace of :func:`~spikegate.golden.ssgd_train_fixed.trace_from_times`: each input spikes at most
once per image, at ``t_i``; ``T`` = never). Inputs whose trace is zero are walked too (they add
0): the cost is per event, not per input spike.

Cycles (``busy`` from ``start``, :func:`expected_cycles`): one cycle per neuron up to the last
with events; ``n_in + 6`` per event and ``n_in + 1`` per neuron with events (its column out,
with ``o_stream`` ready): the backward tracks the active events, not ``T x H``.
"""

import numpy as np

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from spikegate.golden.fixed import unsigned_bits
from spikegate.golden.ssgd_train_fixed import TrainFormat, kernel_table, trace_table
from .layouts import RESULT_COUNT_BITS, index_bits
from .lif_layouts import LIFActiveLayout
from .params import checking
from .saturate import saturate
from .signatures import TableWritePort
from .spram import SPRAMMemory, has_spram

__all__ = ["SSGDGradient", "GradientLayout", "event_ks", "event_delta", "delta_of_product",
           "expected_cycles", "EVENT_OVERHEAD", "EVENT_MEMORIES", "EVENT_SPRAM_MIN_BITS",
           "block_ram_attrs"]

#: Values of ``SSGDGradient(event_memory=...)``.
EVENT_MEMORIES = ("auto", "ebr", "spram")

#: With ``event_memory="auto"``, an event memory of more bits than this (four block RAMs of
#: 4 kbit) goes to SPRAM on an iCE40 UltraPlus.
EVENT_SPRAM_MIN_BITS = 4 * 4096


def block_ram_attrs(platform):
    """Attributes of a small memory (a table, a few words) that must be a block RAM on an
    iCE40 UltraPlus, where logic cells are short and Yosys would otherwise map it to logic:
    ``{"ram_style": "block", "rom_style": "block"}`` there, else none (on the ECP5 it stays in
    LUT RAM or logic). Read ports and their timing are the same either way."""
    return {"ram_style": "block", "rom_style": "block"} if has_spram(platform) else {}


class _Port:
    """A memory port's ``addr``, ``data`` and ``en``."""

    def __init__(self, addr, data, en):
        self.addr, self.data, self.en = addr, data, en

#: Cycles per event besides its column walk of ``n_in`` cycles: the event's read, the tables'
#: read, the two multiplies, and the column pipeline's drain and check.
EVENT_OVERHEAD = 6


def expected_cycles(neurons, n_in):
    """The ``cycles`` of one backward pass whose events are of ``neurons`` (the neuron of each
    event, any order), ``o_stream`` always ready: one cycle per neuron up to the last with
    events, ``n_in + EVENT_OVERHEAD`` per event and ``n_in + 1`` per neuron with events (its
    column out). A pass without events takes 1."""
    neurons = np.asarray(neurons, np.int64)
    if neurons.size == 0:
        return 1
    with_events = np.unique(neurons)
    return (int(with_events.max()) + 1 + len(neurons) * (n_in + EVENT_OVERHEAD)
            + len(with_events) * (n_in + 1))


class GradientLayout(data.StructLayout):
    """One entry ``G1[index, neuron]`` of a gradient column; ``last`` marks the image's last
    entry."""
    def __init__(self, n_in, H, grad_bits):
        super().__init__({"index": unsigned(index_bits(n_in)), "neuron": unsigned(index_bits(H)),
                          "g1": signed(grad_bits), "last": unsigned(1)})


def _round_shift(value, n):
    return (value + (1 << (n - 1))) >> n if n > 0 else value


def event_ks(K_t, g, tfmt):
    """The first half of :func:`~spikegate.golden.ssgd_train_fixed.event_delta`: ``ks =
    sat_u(round_shift(K_t g, ks_shift), ks_bits)`` (a multiply)."""
    return saturate(_round_shift(K_t * g, tfmt.ks_shift), unsigned(tfmt.ks_bits))


def event_delta(ks, u, tfmt):
    """The second half of :func:`~spikegate.golden.ssgd_train_fixed.event_delta`: ``delta =
    sat(round_shift(ks u, d_shift), delta_bits)`` (a multiply; the engine registers ``ks``
    between the two, and ``ks u`` before :func:`delta_of_product`)."""
    return delta_of_product(ks * u, tfmt)


def delta_of_product(ks_u, tfmt):
    """``sat(round_shift(ks_u, d_shift), delta_bits)``: :func:`event_delta` of the product
    ``ks u``."""
    return saturate(_round_shift(ks_u, tfmt.d_shift), signed(tfmt.delta_bits))


class SSGDGradient(wiring.Component):
    """The hidden layer's weight gradient ``G1`` from its active events, column by column.

    Parameters
    ----------
    n_in, H : int
        Inputs and hidden neurons (at least 2 inputs).
    tfmt : TrainFormat
        Widths, shifts and the tables ``K`` and ``P``
        (:mod:`spikegate.golden.ssgd_train_fixed`); ``n_steps < 64`` (``G1`` cannot overflow
        ``grad_bits``, as the golden model states).
    max_events : int, optional
        Events one image may have (default ``(n_steps - 1) H``: all). More set ``overflow``
        and are dropped.

    Members
    -------
    e_stream : In(stream)
        :class:`~spikegate.hdl.lif_layouts.LIFActiveLayout`: the image's active events, as the
        hidden layer emits them.
    times : In(TableWritePort)
        Write input ``i``'s spike step before ``start``; an input not written since ``clear``
        never spiked (its step reads as ``n_steps``).
    u : In(TableWritePort)
        Write ``u_j`` (signed ``u_bits``, :func:`~spikegate.golden.ssgd_train_fixed.readout_backward_fixed`)
        before ``start``.
    clear : In
        A strobe: forget the events (a new image); only while not ``busy``.
    start : In
        A strobe: walk the events stored since ``clear`` (only while not ``busy`` and no event
        is offered on ``e_stream``).
    o_stream : Out(stream)
        :class:`GradientLayout`: for each neuron with events, in increasing order, its column
        ``G1[0 .. n_in-1, j]``; the image's last entry is marked (a ``start`` with no events at
        all sends nothing).
    busy : Out
    events, overflow : Out
        Events stored since ``clear``; some were dropped.
    cycles : Out
        Cycles ``busy`` since the last ``start`` (:func:`expected_cycles` with ``o_stream``
        always ready).
    """

    def __init__(self, n_in, H, tfmt=None, *, max_events=None, event_memory="auto"):
        tfmt = TrainFormat() if tfmt is None else tfmt
        with checking(self):
            if event_memory not in EVENT_MEMORIES:
                raise ValueError(f"event_memory must be one of {', '.join(EVENT_MEMORIES)}, "
                                 f"not {event_memory!r}")
            if not isinstance(tfmt, TrainFormat):
                raise TypeError(f"tfmt must be a ssgd_train_fixed.TrainFormat, not {tfmt!r}")
            for name, v, lo in (("n_in", n_in, 2), ("H", H, 1)):
                if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                    raise ValueError(f"{name} must be an integer >= {lo}, not {v!r}")
            if tfmt.n_steps >= 64:
                raise ValueError(f"tfmt.n_steps must be below 64 (G1 exact in grad_bits), not "
                                 f"{tfmt.n_steps}")
            max_events = (tfmt.n_steps - 1) * int(H) if max_events is None else max_events
            if isinstance(max_events, bool) or not isinstance(max_events, (int, np.integer)) \
                    or max_events < 1:
                raise ValueError(f"max_events must be a positive integer, not {max_events!r}")
        self._n_in, self._H, self._tfmt = int(n_in), int(H), tfmt
        self._max_events = int(max_events)
        self._event_memory = event_memory
        T = tfmt.n_steps
        self._step_bits = unsigned_bits(T - 1)
        self._time_bits = unsigned_bits(T)
        lif = tfmt.lif
        self._link_bits = index_bits(self._max_events + 1)       # max_events = none
        self.event_data = memory.MemoryData(
            shape=data.StructLayout({"t": unsigned(self._step_bits), "g": unsigned(lif.g_bits),
                                     "prev": unsigned(self._link_bits)}),
            depth=self._max_events, init=[])
        self.k_data = memory.MemoryData(shape=unsigned(tfmt.k_bits), depth=T,
                                        init=[int(v) for v in kernel_table(tfmt)])
        self.p_data = memory.MemoryData(shape=unsigned(tfmt.trace_bits), depth=T,
                                        init=[int(v) for v in trace_table(tfmt)])
        super().__init__({
            "e_stream": In(stream.Signature(LIFActiveLayout(H, self._step_bits, lif.g_bits))),
            "times": In(TableWritePort(n_in, unsigned(self._time_bits))),
            "u": In(TableWritePort(H, signed(tfmt.u_bits))),
            "clear": In(1),
            "start": In(1),
            "o_stream": Out(stream.Signature(GradientLayout(n_in, H, tfmt.grad_bits))),
            "busy": Out(1),
            "events": Out(RESULT_COUNT_BITS),
            "overflow": Out(1),
            "cycles": Out(RESULT_COUNT_BITS),
        })

    @property
    def tfmt(self):
        return self._tfmt

    def event_memory_kind(self, platform):
        """``"ebr"`` or ``"spram"``: where the event memory goes on ``platform`` (``"auto"``:
        SPRAM on an iCE40 UltraPlus when the memory is more than
        :data:`EVENT_SPRAM_MIN_BITS` bits)."""
        if self._event_memory != "auto":
            return self._event_memory
        bits = self._max_events * self.event_data.shape.size
        return "spram" if has_spram(platform) and bits > EVENT_SPRAM_MIN_BITS else "ebr"

    def _event_ports(self, m, platform):
        """The event memory's write and read ports (``addr``, ``data``, ``en``), in block
        RAM or in SPRAM (:class:`~spikegate.hdl.spram.SPRAMMemory`, its words padded to bytes:
        one port, which the engine never reads and writes in one cycle: events are stored
        while it is idle and read while it walks)."""
        layout = self.event_data.shape
        if self.event_memory_kind(platform) == "ebr":
            m.submodules.events_mem = ev_mem = memory.Memory(data=self.event_data)
            return ev_mem.write_port(), ev_mem.read_port()
        width = -(-layout.size // 8) * 8
        m.submodules.events_mem = mem = SPRAMMemory(unsigned(width), self._max_events)
        wp = _Port(addr=mem.w_addr, data=Signal(layout, name="ev_w_data"), en=Signal())
        rp = _Port(addr=mem.r_addr, data=data.View(layout, mem.r_data[:layout.size]),
                   en=mem.r_en)
        m.d.comb += [mem.w_data.eq(wp.data.as_value()),
                     mem.w_en.eq(wp.en.replicate(width // 8))]
        return wp, rp

    def elaborate(self, platform):
        m = Module()
        ev_wp, ev_rp, k_rp, p_rp, t_rp, u_rp, col_wp, col_rp = self._memories(m, platform)
        seen = self._inputs_seen(m)
        tail_rp, has, stored, top, count, busy, st = self._store_events(m, ev_wp)
        first, t, delta, i, s1_valid, s2_valid, s1_i, s2_i, s2_on, issue = self._walk(
            m, ev_rp, k_rp, t_rp, u_rp, col_rp, tail_rp, has, stored, top, count, busy, st)
        self._column(m, seen, t, delta, first, i, issue, s1_valid, s2_valid, s1_i, s2_i, s2_on,
                     t_rp, p_rp, col_wp, col_rp)
        return m

    def _memories(self, m, platform):
        """The event memory, the ``K`` and ``P`` tables, ``t_i``, ``u_j`` and the column
        accumulator; the ``times`` and ``u`` inputs written into theirs. Returns the ports."""
        n_in, H, tf = self._n_in, self._H, self._tfmt
        ev_wp, ev_rp = self._event_ports(m, platform)
        m.d.comb += ev_rp.en.eq(0)
        blk = block_ram_attrs(platform)
        m.submodules.k_rom = k_rom = memory.Memory(data=self.k_data, attrs=blk)
        m.submodules.p_rom = p_rom = memory.Memory(data=self.p_data, attrs=blk)
        m.submodules.times_mem = t_mem = memory.Memory(
            shape=unsigned(self._time_bits), depth=n_in, init=[])
        m.submodules.u_mem = u_mem = memory.Memory(shape=signed(tf.u_bits), depth=H, init=[])
        m.submodules.col = col = memory.Memory(shape=signed(tf.grad_bits), depth=n_in, init=[])
        k_rp, p_rp = k_rom.read_port(), p_rom.read_port()
        t_wp, t_rp = t_mem.write_port(), t_mem.read_port()
        u_wp, u_rp = u_mem.write_port(), u_mem.read_port()
        col_wp, col_rp = col.write_port(), col.read_port()
        # A read port's enable is 1 unless driven: the column's read data must hold while
        # o_stream waits, so it is 0 except where a read is issued.
        m.d.comb += [col_rp.en.eq(0), u_rp.en.eq(0)]
        m.d.comb += [
            t_wp.addr.eq(self.times.w_addr), t_wp.data.eq(self.times.w_data),
            t_wp.en.eq(self.times.w_en),
            u_wp.addr.eq(self.u.w_addr), u_wp.data.eq(self.u.w_data), u_wp.en.eq(self.u.w_en),
        ]
        return ev_wp, ev_rp, k_rp, p_rp, t_rp, u_rp, col_wp, col_rp

    def _inputs_seen(self, m):
        """Inputs whose spike step was written since clear (the others read as n_steps)."""
        seen = Signal(self._n_in)
        with m.If(self.clear):
            m.d.sync += seen.eq(0)
        with m.Elif(self.times.w_en):
            m.d.sync += seen.bit_select(self.times.w_addr, 1).eq(1)
        return seen

    def _store_events(self, m, ev_wp):
        """Storing the events: one write each, linked to the neuron's previous event. Two
        stages: the event's neuron reads its tail (a block RAM, transparent for the tail's
        write of the event before), then the event is written with that link."""
        H = self._H
        NONE = self._max_events
        m.submodules.tail_mem = tail_mem = memory.Memory(
            shape=unsigned(self._link_bits), depth=H, init=[])
        tail_wp = tail_mem.write_port()
        tail_rp = tail_mem.read_port(transparent_for=(tail_wp,))
        m.d.comb += tail_rp.en.eq(0)
        has = Signal(H)
        stored = Signal()                # an event is written this cycle
        top = Signal(range(H))           # the highest neuron with events
        count = Signal(range(self._max_events + 1))
        e = self.e_stream
        busy = Signal()
        take = Signal()
        # Ready is ~busy alone (start is not on the producer's stall path): start only with no
        # event offered.
        m.d.comb += [e.ready.eq(~busy), take.eq(e.valid & e.ready)]
        st_valid = Signal()
        st = Signal.like(e.payload)
        m.d.sync += [st_valid.eq(take & ~self.clear), st.eq(e.payload)]
        # has[index] of the event, registered with it (and the event stored this cycle: the
        # same neuron's events back to back): the flags' multiplexer is off the write path.
        st_has = Signal()
        m.d.sync += st_has.eq(has.bit_select(e.payload.index, 1)
                              | (stored & (st.index == e.payload.index)))
        full = Signal()
        m.d.comb += full.eq(count == self._max_events)
        with m.If(take):
            m.d.comb += [tail_rp.addr.eq(e.payload.index), tail_rp.en.eq(1)]
        with m.If(self.clear):
            m.d.sync += [has.eq(0), top.eq(0), count.eq(0), self.events.eq(0),
                         self.overflow.eq(0)]
        with m.Elif(st_valid):
            with m.If(full):
                m.d.sync += self.overflow.eq(1)
            with m.Else():
                m.d.comb += [ev_wp.addr.eq(count), ev_wp.data.t.eq(st.step),
                             ev_wp.data.g.eq(st.g),
                             ev_wp.data.prev.eq(Mux(st_has, tail_rp.data, NONE)),
                             ev_wp.en.eq(1),
                             tail_wp.addr.eq(st.index), tail_wp.data.eq(count),
                             tail_wp.en.eq(1)]
                m.d.comb += stored.eq(1)
                m.d.sync += [count.eq(count + 1), has.bit_select(st.index, 1).eq(1),
                             self.events.eq(self.events + 1)]
                with m.If(st.index > top):
                    m.d.sync += top.eq(st.index)
        return tail_rp, has, stored, top, count, busy, st

    def _walk(self, m, ev_rp, k_rp, t_rp, u_rp, col_rp, tail_rp, has, stored, top, count,
              busy, st):
        """The walk, neuron by neuron: each event's ``K`` and ``u`` reads and its delta step,
        the column's reads issued (:meth:`_column`), the finished column sent on ``o_stream``.
        Returns the signals the column pipeline shares with it."""
        n_in, H, tf = self._n_in, self._H, self._tfmt
        NONE = self._max_events
        j = Signal(range(H))
        has_j = Signal()                 # has[j] in a register (kept with j: the flags'
                                         # multiplexer is off the walk's decision)
        cur = Signal(self._link_bits)
        first = Signal()                 # the neuron's first event: the column starts at 0
        head = Signal()                  # the neuron's newest event is read from its tail
        t = Signal(self._step_bits)
        g = Signal(tf.lif.g_bits)
        delta = Signal(signed(tf.delta_bits))
        ks = Signal(unsigned(tf.ks_bits), name="ev_ks")
        ks_r = Signal(unsigned(tf.ks_bits))
        m.d.comb += ks.eq(event_ks(k_rp.data, g, tf))
        # K and u addressed in every state (read in TABLES): no state decode before the
        # addresses (K's, in logic on the ECP5, follows the event memory's clock-to-out).
        m.d.comb += [k_rp.addr.eq(ev_rp.data.t), u_rp.addr.eq(j)]
        # ks u registered, then delta from it (the multiplier and the rounding apart)
        ks_u = Signal((ks_r * u_rp.data).shape())
        m.d.sync += [ks_u.eq(ks_r * u_rp.data), delta.eq(delta_of_product(ks_u, tf))]
        i = Signal(range(n_in + 1))
        # column pipeline: stage 1 has t_i read, stage 2 has P and the accumulator read
        s1_valid, s2_valid = Signal(), Signal()
        s1_i, s2_i = Signal(range(n_in)), Signal(range(n_in))
        s2_on = Signal()
        last_neuron = Signal()
        m.d.comb += last_neuron.eq(j == top)
        o = self.o_stream
        oi = Signal(range(n_in + 1))
        o_i = Signal(range(n_in))
        issue = Signal()
        m.d.comb += busy.eq(self.busy)
        with m.FSM(name="bwd"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [self.busy.eq(1), j.eq(0), self.cycles.eq(0),
                                 has_j.eq(has[0] | (stored & (st.index == 0)))]
                    m.next = "NEURON"
            with m.State("NEURON"):
                with m.If(count == 0):
                    m.d.sync += self.busy.eq(0)
                    m.next = "IDLE"
                with m.Elif(has_j):
                    m.d.comb += [tail_rp.addr.eq(j), tail_rp.en.eq(1)]
                    m.d.sync += [head.eq(1), first.eq(1)]
                    m.next = "READ"
                with m.Else():
                    m.d.sync += [j.eq(j + 1), has_j.eq(has.bit_select(j + 1, 1))]
            with m.State("READ"):
                m.d.comb += [ev_rp.addr.eq(Mux(head, tail_rp.data, cur)), ev_rp.en.eq(1)]
                m.d.sync += head.eq(0)
                m.next = "TABLES"
            with m.State("TABLES"):
                m.d.comb += [k_rp.en.eq(1), u_rp.en.eq(1)]
                m.d.sync += [t.eq(ev_rp.data.t), g.eq(ev_rp.data.g), cur.eq(ev_rp.data.prev)]
                m.next = "DELTA"
            with m.State("DELTA"):
                # ks (K[t] g) registered; ks u the next cycle (COLUMN's first), from ks and
                # the u read (held: u's port is read only in TABLES), and delta from it the
                # cycle after, in time for the column's first product (COLUMN's third): the
                # multiplies and the rounding on separate paths, no cycle more.
                m.d.sync += [ks_r.eq(ks), i.eq(0)]
                m.next = "COLUMN"
            with m.State("COLUMN"):
                # stage 0: read t_i
                with m.If(i < n_in):
                    m.d.comb += [t_rp.addr.eq(i), t_rp.en.eq(1), issue.eq(1)]
                    m.d.sync += i.eq(i + 1)
                with m.If(~s1_valid & ~s2_valid & (i == n_in)):
                    m.d.sync += first.eq(0)
                    with m.If(cur == NONE):
                        m.d.sync += oi.eq(0)
                        m.next = "OUTPUT"
                    with m.Else():
                        m.next = "READ"
            with m.State("OUTPUT"):
                # read entry oi, offer it the next cycle (held while o_stream waits)
                with m.If((oi < n_in) & (~o.valid | o.ready)):
                    m.d.comb += [col_rp.addr.eq(oi), col_rp.en.eq(1)]
                    m.d.sync += [oi.eq(oi + 1), o.valid.eq(1), o_i.eq(oi)]
                with m.Elif(o.valid & o.ready):
                    m.d.sync += o.valid.eq(0)
                with m.If((oi == n_in) & (~o.valid | o.ready)):
                    with m.If(last_neuron):
                        m.d.sync += self.busy.eq(0)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [j.eq(j + 1), has_j.eq(has.bit_select(j + 1, 1))]
                        m.next = "NEURON"
        with m.If(self.busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        m.d.comb += [o.payload.index.eq(o_i), o.payload.neuron.eq(j),
                     o.payload.g1.eq(col_rp.data),
                     o.payload.last.eq(last_neuron & (o_i == n_in - 1))]
        return first, t, delta, i, s1_valid, s2_valid, s1_i, s2_i, s2_on, issue

    def _column(self, m, seen, t, delta, first, i, issue, s1_valid, s2_valid, s1_i, s2_i, s2_on,
                t_rp, p_rp, col_wp, col_rp):
        """The column accumulation after stage 0 (the ``t_i`` read, which the walk issues):
        the accumulator's entry ``i`` gets ``P[t - 1 - t_i] delta`` added (the entry read as 0
        for the neuron's first event) and written back."""
        n_in, tf = self._n_in, self._tfmt
        # seen[i] registered with the t_i read (the flags' multiplexer off stage 1's path)
        s1_seen = Signal()
        m.d.sync += [s1_valid.eq(issue), s1_i.eq(i), s1_seen.eq(seen.bit_select(i, 1))]
        # stage 1: k = t - 1 - t_i; read P[k] and the accumulator
        k = Signal(signed(self._time_bits + 2))
        t_i = Signal(self._time_bits)
        m.d.comb += [t_i.eq(Mux(s1_seen, t_rp.data, tf.n_steps)),
                     k.eq(t - 1 - t_i)]
        with m.If(s1_valid):
            m.d.comb += [p_rp.addr.eq(k[:self._step_bits]), p_rp.en.eq(1),
                         col_rp.addr.eq(s1_i), col_rp.en.eq(1)]
        m.d.sync += [s2_valid.eq(s1_valid), s2_i.eq(s1_i), s2_on.eq(~k[-1])]
        # stage 2: P delta and the accumulator's entry (0 for the neuron's first event),
        # registered; stage 3: acc[i] = their sum, written (the multiplier and the adder on
        # separate paths; stage 3 drains while the next event is read: no cycle more).
        s3_valid = Signal()
        s3_i = Signal(range(n_in))
        prod = Signal(signed(tf.trace_bits + tf.delta_bits + 1))
        base = Signal(signed(tf.grad_bits))
        m.d.sync += [s3_valid.eq(s2_valid), s3_i.eq(s2_i),
                     prod.eq(Mux(s2_on, p_rp.data * delta, 0)),
                     base.eq(Mux(first, 0, col_rp.data))]
        with m.If(s3_valid):
            m.d.comb += [col_wp.addr.eq(s3_i), col_wp.en.eq(1), col_wp.data.eq(base + prod)]
