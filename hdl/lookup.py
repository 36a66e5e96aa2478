"""The sparse, event-driven weight-lookup datapath, shared by every spiking layer.

A spike event names a source neuron; the datapath reads that source's weight row, ``lanes``
weights per cycle, and hands each group of ``lanes`` destination weights to the layer's
neuron arithmetic. Weights of sources that did not spike are never read. It knows nothing
about TTFS: the layer that uses it adds its own per-destination arithmetic on the beats.
"""

import numpy as np

from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.lib import stream

from spikegate.golden.ttfs_discrete import WEIGHT_BITS
from .params import checking
from .layouts import RESULT_COUNT_BITS, RowCommandLayout, RowOp, index_bits
from .spram import SPRAMMemory, has_spram, prefers_spram

#: Values of :attr:`WeightLookup.weight_memory`.
WEIGHT_MEMORIES = ("auto", "ebr", "spram")

#: The most groups a walk with ``masked_ops`` may have (a priority encoder over the enables).
MAX_MASKED_GROUPS = 32

__all__ = ["WeightLookup", "weight_words", "WEIGHT_MEMORIES", "MAX_MASKED_GROUPS"]


def weight_words(weights, lanes):
    """Pack an ``(n_src, n_dst)`` integer matrix into the banked memory image.

    Word ``src * groups + g`` holds the weights of destinations ``g*lanes .. g*lanes+lanes-1``
    (lane ``l`` = destination ``g*lanes + l``; missing destinations are 0).
    """
    w = np.asarray(weights)
    n_src, n_dst = w.shape
    groups = -(-n_dst // lanes)
    padded = np.zeros((n_src, groups * lanes), dtype=np.int64)
    padded[:, :n_dst] = w
    return padded.reshape(n_src * groups, lanes).tolist()


def _times(x, c):
    """``x * c`` for a constant ``c >= 1`` as shifts and adds: Yosys would put a product by a
    constant on an iCE40 DSP, which the lanes' multipliers need (same value, same width
    rules as ``*``: the result is wide enough for every ``x``)."""
    terms = [x << k for k in range(c.bit_length()) if c >> k & 1]
    return sum(terms[1:], terms[0])


class _Port:
    """The ``addr`` / ``data`` / ``en`` of a memory port, for :class:`SPRAMMemory`'s ports."""

    def __init__(self, addr, data, en):
        self.addr, self.data, self.en = addr, data, en


class WeightLookup(wiring.Component):
    """Banked 8-bit weight memory and the row walker.

    Parameters
    ----------
    n_src, n_dst : int
        Sources (rows) and destinations (columns) of the weight matrix.
    lanes : int
        Weights read per cycle, 1 to 16. Destinations are spread over the lanes:
        destination ``j`` is lane ``j % lanes`` of group ``j // lanes``.
    init : array-like of int, shape (n_src, n_dst), optional
        Initial weights (signed 8-bit). Zero when omitted.
    weight_memory : {"auto", "ebr", "spram"}
        Where the weights live (also settable after construction, e.g. by a board design,
        through :attr:`weight_memory`). ``"ebr"``: an Amaranth memory with a synchronous
        read port, which Yosys maps to block RAM (EBR on iCE40 and ECP5). ``"spram"``: the
        iCE40 UltraPlus single-port RAMs (:class:`~spikegate.hdl.spram.SPRAMMemory`;
        ``SB_SPRAM256KA`` cells on an iCE40 UltraPlus platform, their model elsewhere, same
        cycle behaviour). ``"auto"`` (default): ``"spram"`` when elaborated for an iCE40
        UltraPlus platform and the memory holds more than
        :data:`~spikegate.hdl.spram.SPRAM_MIN_BITS` bits, else ``"ebr"``. With SPRAM,
        ``init`` is not in the bitstream (SPRAM has no initial contents: load the weights
        through ``w_*`` at run time) and the write-back ``ww_*`` of on-chip learning is not
        supported (its write would take the single port from the next group's read): keep
        learning designs in ``"ebr"``.
    masked_ops : sequence of RowOp
        Ops whose walk visits only the groups enabled in ``group_en`` (default none; then
        there is no ``group_en`` and every walk visits every group). At most
        :data:`MAX_MASKED_GROUPS` groups.

    Members
    -------
    cmd : In(stream)
        :class:`RowCommandLayout`. Accepted when the walker is idle or issuing the last group
        of the current row, so rows follow each other with no gap.
    issue_valid, issue_group : Out
        The group whose memory read is issued this cycle (for the user's own state memory,
        which it reads at the same address so that both arrive together).
    beat_valid, beat_group, beat_first, beat_last, beat_op, beat_tag, beat_weights : Out
        One cycle after issue: the weights of that group (zero for ops that read no
        weights: ``SCAN``, ``CLEAR``). There is no back-pressure: the user takes every beat.
    group_en : In(groups) (with ``masked_ops`` only)
        During the walk of a masked op, the groups to visit: the walker issues the lowest
        enabled group above the last one it issued, one per cycle in increasing order, and
        spends no cycle on a disabled group. A bit may change during the walk only for groups
        already passed. A masked walk with no enabled group issues nothing (one idle cycle).
    walk_masked : Out(1) (with ``masked_ops`` only)
        A masked walk is issuing this cycle (its passes can be shorter than ``groups``).
    ww_en, ww_data : In
        Write back, during a beat, lanes ``ww_en`` of the beat's word (read-modify-write).
    busy : Out
        A row is being walked or a beat is in flight.
    lookups : Out(unsigned(32))
        Weights read since ``clear_count`` (valid lanes of ``ACCUMULATE`` beats only).
    w_en, w_src, w_dst, w_data : In
        Write one weight (run time loading; it lands one cycle later); must not coincide
        with a walk, nor be followed by a walk or a read-back of it in the next cycle.
    rb_en, rb_src, rb_dst, rb_data : In, Out
        Read one weight back: ``rb_data`` holds it one cycle after ``rb_en``. Taken only
        while no row is walked (the walk owns the read port).

    Latency 1 cycle from issue to beat; throughput ``lanes`` weights per cycle; a row
    takes ``ceil(n_dst / lanes)`` cycles.
    """

    def __init__(self, n_src, n_dst, lanes, init=None, *, tag_bits=1, weight_memory="auto",
                 masked_ops=()):
        with checking(self):
            self._check(n_src, n_dst, lanes, init)
            self._check_memory(weight_memory)
            masked_ops = tuple(masked_ops)
            if not all(isinstance(op, RowOp) for op in masked_ops):
                raise TypeError(f"masked_ops must be RowOp values, not {masked_ops!r}")
            if masked_ops and -(-n_dst // lanes) > MAX_MASKED_GROUPS:
                raise ValueError(f"masked_ops need at most {MAX_MASKED_GROUPS} groups, not "
                                 f"{-(-n_dst // lanes)}")
        self._weight_memory = weight_memory
        self._masked_ops = masked_ops
        self._n_src, self._n_dst, self._lanes = n_src, n_dst, lanes
        self._groups = -(-n_dst // lanes)
        masked_ports = {"group_en": In(self._groups), "walk_masked": Out(1)} if masked_ops else {}
        shape = data.ArrayLayout(signed(WEIGHT_BITS), lanes)
        words = [] if init is None else weight_words(init, lanes)
        self.weight_data = memory.MemoryData(shape=shape, depth=n_src * self._groups, init=words)
        super().__init__({
            **masked_ports,
            "cmd": In(stream.Signature(RowCommandLayout(n_src, tag_bits))),
            "issue_valid": Out(1),
            "issue_group": Out(index_bits(self._groups)),
            "beat_valid": Out(1),
            "beat_group": Out(index_bits(self._groups)),
            "beat_first": Out(1),
            "beat_last": Out(1),
            "beat_op": Out(RowOp),
            "beat_tag": Out(tag_bits),
            "beat_weights": Out(shape),
            "ww_en": In(lanes),
            "ww_data": In(shape),
            "busy": Out(1),
            "lookups": Out(RESULT_COUNT_BITS),
            "clear_count": In(1),
            "w_en": In(1),
            "w_src": In(index_bits(n_src)),
            "w_dst": In(index_bits(n_dst)),
            "w_data": In(signed(WEIGHT_BITS)),
            "rb_en": In(1),
            "rb_src": In(index_bits(n_src)),
            "rb_dst": In(index_bits(n_dst)),
            "rb_data": Out(signed(WEIGHT_BITS)),
        })

    @staticmethod
    def _check(n_src, n_dst, lanes, init):
        for name, v in (("n_src", n_src), ("n_dst", n_dst), ("lanes", lanes)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise TypeError(f"{name} must be a positive integer, not {v!r}")
        if lanes > 16:
            raise ValueError(f"lanes must be from 1 to 16, not {lanes}")
        if init is not None:
            a = np.asarray(init)
            if a.shape != (n_src, n_dst):
                raise ValueError(f"init must have shape ({n_src}, {n_dst}), not {a.shape}")
            if a.size and (a.min() < -128 or a.max() > 127):
                raise ValueError("init weights must be in [-128, 127]")

    @staticmethod
    def _check_memory(kind):
        if kind not in WEIGHT_MEMORIES:
            raise ValueError(f"weight_memory must be one of {', '.join(WEIGHT_MEMORIES)}, "
                             f"not {kind!r}")

    @property
    def weight_memory(self):
        """``"auto"``, ``"ebr"`` or ``"spram"`` (see the class parameters); settable before
        elaboration."""
        return self._weight_memory

    @weight_memory.setter
    def weight_memory(self, kind):
        self._check_memory(kind)
        self._weight_memory = kind

    def memory_kind(self, platform):
        """``"ebr"`` or ``"spram"``: what :attr:`weight_memory` means on ``platform``."""
        if self._weight_memory != "auto":
            return self._weight_memory
        depth, width = self.weight_data.depth, self._lanes * WEIGHT_BITS
        return "spram" if has_spram(platform) and prefers_spram(depth, width) else "ebr"

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
    def masked_ops(self):
        return self._masked_ops

    @property
    def groups(self):
        return self._groups

    def elaborate(self, platform):
        m = Module()
        G, L = self._groups, self._lanes
        if self.memory_kind(platform) == "spram":
            m.submodules.mem = mem = SPRAMMemory(self.weight_data.shape, self.weight_data.depth)
            wp = _Port(addr=mem.w_addr, data=mem.w_data, en=mem.w_en)
            rp = _Port(addr=mem.r_addr, data=mem.r_data, en=mem.r_en)
        else:
            m.submodules.mem = mem = memory.Memory(data=self.weight_data)
            wp = mem.write_port(granularity=1)
            rp = mem.read_port()

        walking = Signal()
        group = Signal(index_bits(G))
        base = Signal(range(self._n_src * G + 1))
        op = Signal(RowOp)
        tag = Signal.like(self.beat_tag)
        reads = Signal()
        m.d.comb += reads.eq((op == RowOp.ACCUMULATE) | (op == RowOp.DELTA) | (op == RowOp.LEARN))
        last_issue = Signal()
        issuing = Signal()                   # a group is issued this cycle
        cur = Signal(index_bits(G))          # the group issued this cycle
        first = Signal()                     # the walk has issued nothing yet
        if self._masked_ops:
            # Masked walks: ``rem`` holds the groups not passed yet; the lowest enabled one
            # of them is issued.
            masked = Signal()
            rem = Signal(G)
            cand = Signal(G)
            rest = Signal(G)
            low = Signal(index_bits(G))
            m.d.comb += [cand.eq(rem & self.group_en), rest.eq(cand & (cand - 1))]
            for i in reversed(range(G)):
                with m.If(cand[i]):
                    m.d.comb += low.eq(i)
            m.d.comb += [
                cur.eq(Mux(masked, low, group)),
                issuing.eq(walking & (~masked | (cand != 0))),
                last_issue.eq(walking & Mux(masked, rest == 0, group == G - 1)),
                self.walk_masked.eq(walking & masked),
            ]
            with m.If(self.cmd.valid & self.cmd.ready):
                m.d.sync += [masked.eq(sum(self.cmd.payload.op == op
                                           for op in self._masked_ops).bool()),
                             rem.eq((1 << G) - 1)]
            with m.Elif(walking):
                m.d.sync += rem.eq(rest)
            with m.If(self.cmd.valid & self.cmd.ready):
                m.d.sync += first.eq(1)
            with m.Elif(issuing):
                m.d.sync += first.eq(0)
        else:
            m.d.comb += [cur.eq(group), issuing.eq(walking), first.eq(group == 0),
                         last_issue.eq(walking & (group == G - 1))]
        m.d.comb += self.cmd.ready.eq(~walking | last_issue)

        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [walking.eq(1), group.eq(0), op.eq(self.cmd.payload.op),
                         tag.eq(self.cmd.payload.tag), base.eq(_times(self.cmd.payload.src, G))]
        with m.Elif(last_issue):
            m.d.sync += walking.eq(0)
        with m.Elif(walking):
            m.d.sync += group.eq(group + 1)

        m.d.comb += [
            self.issue_valid.eq(issuing),
            self.issue_group.eq(cur),
        ]
        rb_lane = Signal(range(L))
        with m.If(walking):
            m.d.comb += [rp.addr.eq(base + cur), rp.en.eq(reads & issuing)]
        with m.Else():
            m.d.comb += [rp.addr.eq(_times(self.rb_src, G) + (self.rb_dst // L if L > 1 else self.rb_dst)),
                         rp.en.eq(self.rb_en)]
        m.d.sync += rb_lane.eq(self.rb_dst % L if L > 1 else 0)
        m.d.comb += self.rb_data.eq(Array(rp.data[l] for l in range(L))[rb_lane])
        beat_op = Signal(RowOp)
        beat_reads = Signal()
        beat_addr = Signal.like(rp.addr)
        m.d.sync += [
            beat_reads.eq(issuing & reads),
            beat_addr.eq(base + cur),
            self.beat_tag.eq(tag),
            self.beat_valid.eq(issuing),
            self.beat_group.eq(cur),
            self.beat_first.eq(issuing & first),
            self.beat_last.eq(issuing & last_issue),
            beat_op.eq(op),
        ]
        m.d.comb += self.beat_op.eq(beat_op)
        with m.If(beat_reads):
            m.d.comb += self.beat_weights.eq(rp.data)
        m.d.comb += self.busy.eq(walking | self.beat_valid)

        # Weights read: the valid lanes of each ACCUMULATE beat.
        last_lanes = self._n_dst - (G - 1) * L
        n_read = Signal(range(L + 1))
        m.d.comb += n_read.eq(Mux(self.beat_group == G - 1, last_lanes, L))
        with m.If(self.clear_count):
            m.d.sync += self.lookups.eq(0)
        with m.Elif(self.beat_valid & (beat_op == RowOp.ACCUMULATE)):
            m.d.sync += self.lookups.eq(self.lookups + n_read)

        # Run-time loading of one weight: the address (a product and a division by the
        # lanes) is computed into a register, and the write happens one cycle later.
        w_addr = Signal.like(wp.addr)
        w_lane = Signal(range(L))
        w_data = Signal(signed(WEIGHT_BITS))
        w_pending = Signal()
        m.d.sync += [w_addr.eq(_times(self.w_src, G) + (self.w_dst // L if L > 1 else self.w_dst)),
                     w_lane.eq(self.w_dst % L if L > 1 else 0),
                     w_data.eq(self.w_data), w_pending.eq(self.w_en)]
        with m.If(self.beat_valid & (self.ww_en != 0)):
            m.d.comb += [wp.addr.eq(beat_addr), wp.data.eq(self.ww_data), wp.en.eq(self.ww_en)]
        with m.Else():
            m.d.comb += [wp.addr.eq(w_addr), wp.data.eq(w_data.replicate(L))]
            with m.If(w_pending):
                m.d.comb += wp.en.eq(1 << w_lane)
        return m
