"""The sparse, event-driven weight-lookup datapath, shared by every spiking layer.

A row command names a source neuron and an op code; the datapath reads that source's weight
row, ``lanes`` weights per cycle, and hands each group of ``lanes`` destination weights to
the layer's neuron arithmetic as a beat (:class:`~spikegate.hdl.signatures.Beats`). Weights
of sources that did not spike are never read. It knows nothing of any neuron model: its
user gives the op codes' shape and which ops read weights, count lookups and walk only the
groups it enables; the user's arithmetic interprets the ops on the beats.
"""

import numpy as np

from amaranth.hdl import Array, Cat, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, enum, memory, wiring
from amaranth.lib.wiring import In, Out

from spikegate.golden.fixed import WEIGHT_BITS
from .arith import lane_split, lowest_set_bit, times_const
from .layouts import RESULT_COUNT_BITS, index_bits
from .params import checking
from .signatures import Beats, WeightPort, row_commands
from .spram import SPRAMMemory, has_spram, prefers_spram

#: Values of :attr:`WeightLookup.weight_memory`.
WEIGHT_MEMORIES = ("auto", "ebr", "spram")

#: The most groups a walk with ``masked_ops`` may have (a priority encoder over the enables,
#: a tree of ``log2`` levels: 57 groups are the first layer of MNIST 784-456-10 at 8 lanes).
MAX_MASKED_GROUPS = 128

#: The most lanes a lookup reads per cycle (a word of ``8 * lanes`` bits, which Yosys lays over
#: ``ceil(8 * lanes / width)`` block RAMs side by side, each on its own port: 64 lanes are 15
#: DP16KD of 36 bits on the ECP5, or 32 SPRAMs of 16 bits on the UP5K, which has 4).
MAX_LANES = 64

__all__ = ["WeightLookup", "weight_words", "WEIGHT_MEMORIES", "MAX_MASKED_GROUPS", "MAX_LANES"]


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


class _Port:
    """The ``addr`` / ``data`` / ``en`` of a memory port, for :class:`SPRAMMemory`'s ports."""

    def __init__(self, addr, data, en):
        self.addr, self.data, self.en = addr, data, en


class _BeatStage:
    """The walk's beat before the ``out_register`` stage: a signal for each member of a
    :class:`~spikegate.hdl.signatures.Beats` interface that the walker drives."""

    def __init__(self, beat):
        for name in ("issue_valid", "issue_group", "valid", "group", "first", "last", "op",
                     "tag", "weights"):
            setattr(self, name, Signal.like(getattr(beat, name), name=f"b1_{name}"))


class WeightLookup(wiring.Component):
    """Banked 8-bit weight memory and the row walker.

    Parameters
    ----------
    n_src, n_dst : int
        Sources (rows) and destinations (columns) of the weight matrix.
    lanes : int
        Weights read per cycle, 1 to :data:`MAX_LANES`. Destinations are spread over the lanes:
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
    op_shape : shape-castable
        The shape of the user's op codes (default ``unsigned(1)``), usually its enum.
    read_ops : sequence of op values
        Ops whose walk reads the row's weights (the others give zero weights and read no
        memory).
    count_ops : sequence of op values
        Ops whose beats count their valid lanes in :attr:`lookups`.
    masked_ops : sequence of op values
        Ops whose walk visits only the groups enabled in ``beat.group_en`` (default none; then
        every walk visits every group). At most :data:`MAX_MASKED_GROUPS` groups.
    out_register : bool
        A register stage after the memory's read data (default off): the memory's output
        (on the ECP5, the DP16KD's clock-to-out and the multiplexer Yosys puts over the
        blocks of a deep memory) and the user's arithmetic are separate paths. The walk
        runs one cycle ahead of ``beat.issue_*``, which keeps its meaning (the issue one
        cycle before the beat, the user's own state read with it): only the latency from a
        command to its first issue and to its beats grows by one cycle; rows still follow
        each other with no gap. The read-back is not registered here (``rb_data`` one cycle
        after ``rb_en``, as without the stage).
    bank_depth : int, optional
        With ``out_register`` and block RAM: the memory in banks of ``bank_depth`` words
        (a power of two, e.g. 512 for the ECP5 DP16KD's 512 x 36 shape), each bank's read
        data registered on its own and the multiplexer over the banks after those registers,
        so the block RAM's clock-to-out and the multiplexer are separate paths; the beats'
        timing is ``out_register``'s. The walk's read address comes straight from a register
        (unless a masked op reads weights). The read-back's address is registered and its
        data comes from the banks' registers: ``rb_data`` three cycles after ``rb_en`` (one
        weight per cycle still). A memory no deeper than ``bank_depth`` is one bank, with the
        same registers and latencies. ``weight_data`` is then only the initial image.
    bank_width : int, optional
        With ``bank_depth``: each bank as memories of ``bank_width`` bits side by side (1, 2, 4
        or 8; each lane's 8 bits in ``8 // bank_width`` of them), so that a bank is one block
        RAM shape wide-and-shallow (the ECP5 DP16KD's 4096 x 4 with ``bank_depth`` 4096: a
        784 x 200 layer at 8 lanes is 5 banks of 16 block RAMs, and each output bit's
        multiplexer has 5 inputs instead of 39 with banks of 512 words). None (default): a
        bank is one memory of the whole word, which Yosys lays out itself.

    Members
    -------
    cmd : In(stream)
        :func:`~spikegate.hdl.signatures.row_commands`. Accepted when the walker is idle or
        issuing the last group of the current row, so rows follow each other with no gap.
    beat : Out(Beats)
        :class:`~spikegate.hdl.signatures.Beats`: the issue one cycle ahead, then the beat
        (the weights of the group, zero for an op that reads none) with its group, first,
        last, op and tag; the write-back ``ww_en`` / ``ww_data``. With ``masked_ops``, during
        the walk of a masked op, ``group_en`` gives the groups to visit: the walker issues the
        lowest enabled group above the last one it issued, one per cycle in increasing order,
        and spends no cycle on a disabled group. A bit may change during the walk only for
        groups already passed. A masked walk with no enabled group issues nothing (one idle
        cycle); ``walk_masked`` marks a masked walk issuing.
    busy : Out
        A row is being walked or a beat is in flight.
    lookups : Out(unsigned(32))
        Weights read since ``clear_count`` (valid lanes of ``count_ops`` beats only).
    weights : In(WeightPort)
        :class:`~spikegate.hdl.signatures.WeightPort`. A write lands one cycle later; it must
        not coincide with a walk, nor be followed by a walk or a read-back of it in the next
        cycle. A read-back (``rb_data`` one cycle after ``rb_en``, three with ``bank_depth``)
        is taken only while no row is walked (the walk owns the read port).

    Latency 1 cycle from issue to beat (from a command taken to its first issue: 1 cycle,
    2 with ``out_register``); throughput ``lanes`` weights per cycle; a row takes
    ``ceil(n_dst / lanes)`` cycles.
    """

    def __init__(self, n_src, n_dst, lanes, init=None, *, tag_bits=1, weight_memory="auto",
                 op_shape=unsigned(1), read_ops=(), count_ops=(), masked_ops=(),
                 out_register=False, bank_depth=None, bank_width=None):
        with checking(self):
            if not isinstance(out_register, bool):
                raise TypeError(f"out_register must be a bool, not {out_register!r}")
            if bank_depth is not None:
                if (not isinstance(bank_depth, (int, np.integer)) or bank_depth < 2
                        or bank_depth & (bank_depth - 1)):
                    raise ValueError(f"bank_depth must be a power of two >= 2 or None, not "
                                     f"{bank_depth!r}")
                if not out_register:
                    raise ValueError("bank_depth needs out_register=True (the banks' outputs "
                                     "are the out_register stage)")
                if weight_memory == "spram":
                    raise ValueError("bank_depth applies to block RAM, not weight_memory "
                                     "'spram'")
            if bank_width is not None:
                if bank_depth is None:
                    raise ValueError("bank_width needs bank_depth")
                if bank_width not in (1, 2, 4, 8) or isinstance(bank_width, bool):
                    raise ValueError(f"bank_width must be 1, 2, 4 or 8, not {bank_width!r}")
            self._check(n_src, n_dst, lanes, init)
            self._check_memory(weight_memory)
            ops = {}
            for name, values in (("read_ops", read_ops), ("count_ops", count_ops),
                                 ("masked_ops", masked_ops)):
                ops[name] = self._check_ops(name, values, op_shape)
            if ops["masked_ops"] and -(-n_dst // lanes) > MAX_MASKED_GROUPS:
                raise ValueError(f"masked_ops need at most {MAX_MASKED_GROUPS} groups, not "
                                 f"{-(-n_dst // lanes)}")
        self._weight_memory = weight_memory
        self._out_register = out_register
        self._bank_depth = None if bank_depth is None else int(bank_depth)
        self._bank_width = None if bank_width is None else int(bank_width)
        self._op_shape = op_shape
        self._read_ops, self._count_ops = ops["read_ops"], ops["count_ops"]
        self._masked_ops = ops["masked_ops"]
        self._n_src, self._n_dst, self._lanes = n_src, n_dst, lanes
        self._groups = -(-n_dst // lanes)
        shape = data.ArrayLayout(signed(WEIGHT_BITS), lanes)
        words = [] if init is None else weight_words(init, lanes)
        self._words = words
        self.weight_data = memory.MemoryData(shape=shape, depth=n_src * self._groups, init=words)
        super().__init__({
            "cmd": In(row_commands(n_src, op_shape, tag_bits)),
            "beat": Out(Beats(self._groups, lanes, op_shape, tag_bits,
                              masked=bool(self._masked_ops))),
            "busy": Out(1),
            "lookups": Out(RESULT_COUNT_BITS),
            "clear_count": In(1),
            "weights": In(WeightPort(n_src, n_dst)),
        })

    @staticmethod
    def _check_ops(name, values, op_shape):
        """The op values of ``name`` as a tuple: members of ``op_shape`` when it is an enum,
        else integers in its range."""
        values = tuple(values)
        if isinstance(op_shape, type) and issubclass(op_shape, enum.Enum):
            ok = all(isinstance(v, op_shape) for v in values)
        else:
            shape = Shape.cast(op_shape)
            lo, hi = (-(1 << shape.width - 1), (1 << shape.width - 1)) if shape.signed \
                else (0, 1 << shape.width)
            ok = all(isinstance(v, (int, np.integer)) and lo <= v < hi for v in values)
        if not ok:
            raise TypeError(f"{name} must be values of the op shape {op_shape!r}, not "
                            f"{values!r}")
        return values

    @staticmethod
    def _check(n_src, n_dst, lanes, init):
        for name, v in (("n_src", n_src), ("n_dst", n_dst), ("lanes", lanes)):
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise TypeError(f"{name} must be a positive integer, not {v!r}")
        if lanes > MAX_LANES:
            raise ValueError(f"lanes must be from 1 to {MAX_LANES}, not {lanes}")
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

    @property
    def out_register(self):
        """Whether the read data passes a register stage (see the parameters)."""
        return self._out_register

    def _is(self, op, ops):
        """``op`` (a value) is one of ``ops``."""
        return sum(op == v for v in ops).bool() if ops else 0

    def elaborate(self, platform):
        m = Module()
        G = self._groups
        if self.memory_kind(platform) == "spram":
            if self._bank_depth is not None:
                raise ValueError(f"bank_depth applies to block RAM: this {self.weight_data.depth}"
                                 f"-word memory is in SPRAM on {type(platform).__name__} "
                                 f"(weight_memory 'auto'); set weight_memory='ebr'")
            m.submodules.mem = mem = SPRAMMemory(self.weight_data.shape, self.weight_data.depth)
            wp = _Port(addr=mem.w_addr, data=mem.w_data, en=mem.w_en)
            rp = _Port(addr=mem.r_addr, data=mem.r_data, en=mem.r_en)
        elif self._bank_depth is not None and self.weight_data.depth > self._bank_depth:
            wp, rp, banks = self._elaborate_banks(m)
        else:
            m.submodules.mem = mem = memory.Memory(data=self.weight_data)
            wp = mem.write_port(granularity=1)
            rp = mem.read_port()
        if not (self._bank_depth is not None and self.weight_data.depth > self._bank_depth):
            banks = None
            if self._bank_depth is not None and self.memory_kind(platform) == "ebr":
                # No deeper than a bank: the one memory as a single bank (its read data
                # registered on its own, for the beats and the read-back alike).
                banks = {"ports": [rp], "sel": Signal(1, name="bank_sel")}

        walking = Signal()
        group = Signal(index_bits(G))
        base = Signal(range(self._n_src * G + 1))
        op = Signal(self._op_shape)
        tag = Signal.like(self.beat.tag)
        reads = Signal()
        m.d.comb += reads.eq(self._is(op, self._read_ops))
        walk = self._elaborate_walk(m, walking, group)
        issuing, cur = walk["issuing"], walk["cur"]
        m.d.comb += self.cmd.ready.eq(~walking | walk["last_issue"])

        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [walking.eq(1), group.eq(0), op.eq(self.cmd.payload.op),
                         tag.eq(self.cmd.payload.tag),
                         base.eq(times_const(self.cmd.payload.src, G))]
        with m.Elif(walk["last_issue"]):
            m.d.sync += walking.eq(0)
        with m.Elif(walking):
            m.d.sync += group.eq(group + 1)

        # ``beat``: the beat one cycle after the walk's issue; with ``out_register`` a stage of
        # the same members, registered once more into ``self.beat`` (issue included).
        beat = self.beat if not self._out_register else _BeatStage(self.beat)
        m.d.comb += [beat.issue_valid.eq(issuing), beat.issue_group.eq(cur)]
        walk_addr = None
        if self._bank_depth is not None and not set(self._masked_ops) & set(self._read_ops):
            # With banks, the read address straight from a register (the block RAMs' address
            # pins are far apart): the row's first word at the command, then one more per issue
            # (every walk that reads issues every group in order: no masked op reads).
            walk_addr = Signal.like(rp.addr, name="walk_addr")
            with m.If(self.cmd.valid & self.cmd.ready):
                m.d.sync += walk_addr.eq(times_const(self.cmd.payload.src, G))
            with m.Elif(walking):
                m.d.sync += walk_addr.eq(walk_addr + 1)
        with m.If(walking):
            m.d.comb += rp.en.eq(reads & issuing)
            if walk_addr is None:
                m.d.comb += rp.addr.eq(base + cur)
            else:
                m.d.comb += rp.addr.eq(walk_addr)
        rb_lane = self._elaborate_read_back(m, walking, rp,
                                            registered=self._bank_depth is not None)
        beat_op = Signal(self._op_shape)
        beat_reads = Signal()
        beat_addr = Signal.like(rp.addr)
        m.d.sync += [
            beat_reads.eq(issuing & reads),
            beat_addr.eq(base + cur),
            beat.tag.eq(tag),
            beat.valid.eq(issuing),
            beat.group.eq(cur),
            beat.first.eq(issuing & walk["first"]),
            beat.last.eq(issuing & walk["last_issue"]),
            beat_op.eq(op),
        ]
        m.d.comb += beat.op.eq(beat_op)
        with m.If(beat_reads):
            m.d.comb += beat.weights.eq(rp.data)
        if not self._out_register:
            m.d.comb += self.busy.eq(walking | beat.valid)
        else:
            out = self.beat
            m.d.sync += [out.issue_valid.eq(beat.issue_valid), out.issue_group.eq(beat.issue_group),
                         out.valid.eq(beat.valid), out.group.eq(beat.group),
                         out.first.eq(beat.first), out.last.eq(beat.last), out.tag.eq(beat.tag)]
            if banks is None:
                m.d.sync += out.weights.eq(beat.weights)
            else:
                # Each bank's read data is registered on its own (next to its block RAM); the
                # multiplexer over the banks follows those registers.
                q = [Signal.like(b.data, name=f"bank{i}_q") for i, b in enumerate(banks["ports"])]
                sel_q = Signal.like(banks["sel"], name="bank_sel_q")
                reads_q = Signal(name="out_reads")
                m.d.sync += [qi.eq(b.data) for qi, b in zip(q, banks["ports"])]
                m.d.sync += [sel_q.eq(banks["sel"]), reads_q.eq(beat_reads)]
                q_data = Signal(self.weight_data.shape, name="bank_q_data")
                m.d.comb += q_data.eq(Array(Value.cast(qi) for qi in q)[sel_q])
                with m.If(reads_q):
                    m.d.comb += out.weights.eq(q_data)
                # The read-back from the same registers: its lane one cycle later too.
                rb_lane_q = Signal.like(rb_lane, name="rb_lane_q")
                m.d.sync += rb_lane_q.eq(rb_lane)
                m.d.comb += self.weights.rb_data.eq(
                    Array(q_data[l] for l in range(self._lanes))[rb_lane_q])
            out_op = Signal(self._op_shape, name="out_op")
            out_addr = Signal.like(beat_addr, name="out_addr")
            m.d.sync += [out_op.eq(beat_op), out_addr.eq(beat_addr)]
            m.d.comb += [out.op.eq(out_op),
                         self.busy.eq(walking | beat.valid | out.valid)]
            beat_op, beat_addr = out_op, out_addr
        self._elaborate_count(m, beat_op)
        self._elaborate_write(m, wp, beat_addr)
        return m

    def _elaborate_banks(self, m):
        """The weight memory as banks of :attr:`bank_depth` words (one block RAM shape each,
        e.g. 512 words of the ECP5 DP16KD), behind one write and one read port (``_Port``s
        of signals): a write goes to the bank of its address, a read reads every bank at the
        address's low bits and ``data`` is the addressed bank's (its number registered with
        the read, held while ``en`` is low, as a read port's data). Returns ``(wp, rp,
        {"ports": the banks' read ports, "sel": the bank number of ``data``})``."""
        D, bd = self.weight_data.depth, self._bank_depth
        k = bd.bit_length() - 1
        shape = self.weight_data.shape
        wp = _Port(addr=Signal(range(D)), data=Signal(shape), en=Signal(self._lanes))
        rp = _Port(addr=Signal(range(D)), data=Signal(shape), en=Signal())
        n_banks = -(-D // bd)
        sel = Signal(range(n_banks), name="bank_sel")
        ports = []
        for b in range(n_banks):
            depth = min(bd, D - b * bd)
            words = self._words[b * bd:(b + 1) * bd]
            if self._bank_width is not None:
                ports.append(self._bank_slices(m, b, depth, words, wp, rp, k))
                continue
            bank_data = memory.MemoryData(shape=shape, depth=depth, init=words)
            m.submodules[f"mem{b}"] = mem = memory.Memory(data=bank_data)
            bwp = mem.write_port(granularity=1)
            brp = mem.read_port()
            m.d.comb += [bwp.addr.eq(wp.addr[:k]), bwp.data.eq(wp.data),
                         brp.addr.eq(rp.addr[:k]), brp.en.eq(rp.en)]
            with m.If(wp.addr[k:] == b):
                m.d.comb += bwp.en.eq(wp.en)
            ports.append(brp)
        with m.If(rp.en):
            m.d.sync += sel.eq(rp.addr[k:])
        m.d.comb += rp.data.eq(Array(Value.cast(p.data) for p in ports)[sel])
        return wp, rp, {"ports": ports, "sel": sel}

    def _bank_slices(self, m, b, depth, words, wp, rp, k):
        """Bank ``b`` (``depth`` words, initial ``words``) as memories of :attr:`bank_width`
        bits side by side, slice ``s`` the word's bits ``s * bank_width`` up; returns a
        ``_Port`` whose ``data`` is the bank's read data (the slices' concatenated)."""
        bw, L = self._bank_width, self._lanes
        n_slices = WEIGHT_BITS * L // bw
        packed = [sum((int(v) & ((1 << WEIGHT_BITS) - 1)) << (WEIGHT_BITS * l)
                      for l, v in enumerate(w)) for w in words]
        flat = Value.cast(wp.data)
        datas = []
        for sl in range(n_slices):
            init = [(w >> (sl * bw)) & ((1 << bw) - 1) for w in packed]
            sdata = memory.MemoryData(shape=unsigned(bw), depth=depth, init=init)
            m.submodules[f"mem{b}_{sl}"] = mem = memory.Memory(data=sdata)
            swp, srp = mem.write_port(), mem.read_port()
            lane = sl * bw // WEIGHT_BITS
            m.d.comb += [swp.addr.eq(wp.addr[:k]), swp.data.eq(flat[sl * bw:(sl + 1) * bw]),
                         srp.addr.eq(rp.addr[:k]), srp.en.eq(rp.en)]
            with m.If(wp.addr[k:] == b):
                m.d.comb += swp.en.eq(wp.en[lane])
            datas.append(srp.data)
        return _Port(addr=None, data=Cat(*datas), en=None)

    @property
    def bank_width(self):
        """Bits per memory of a bank (see the parameters), or None."""
        return self._bank_width

    @property
    def bank_depth(self):
        """Words per bank of the block RAM weight memory, or None (one memory)."""
        return self._bank_depth

    @property
    def rb_latency(self):
        """Cycles from a read-back's ``rb_en`` (and address) to its ``rb_data``: 1, or 3 with
        :attr:`bank_depth` (the address registered, the data from the banks' registers). Reads
        may follow each other every cycle at either latency."""
        return 1 if self._bank_depth is None else 3

    def _elaborate_walk(self, m, walking, group):
        """The group issued each cycle: every group in order, or (a masked op) the enabled
        ones. Returns the signals ``issuing``, ``cur`` (the group), ``first`` (the walk has
        issued nothing yet) and ``last_issue``."""
        G = self._groups
        w = {"issuing": Signal(), "cur": Signal(index_bits(G)), "first": Signal(),
             "last_issue": Signal()}
        if not self._masked_ops:
            m.d.comb += [w["cur"].eq(group), w["issuing"].eq(walking), w["first"].eq(group == 0),
                         w["last_issue"].eq(walking & (group == G - 1))]
            return w
        # Masked walks: ``rem`` holds the groups not passed yet; the lowest enabled one of
        # them is issued.
        masked = Signal()
        rem = Signal(G)
        cand = Signal(G)
        rest = Signal(G)
        m.d.comb += [cand.eq(rem & self.beat.group_en), rest.eq(cand & (cand - 1))]
        low = lowest_set_bit(m, cand, "low")
        m.d.comb += [
            w["cur"].eq(Mux(masked, low, group)),
            w["issuing"].eq(walking & (~masked | (cand != 0))),
            w["last_issue"].eq(walking & Mux(masked, rest == 0, group == G - 1)),
            self.beat.walk_masked.eq(walking & masked),
        ]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [masked.eq(self._is(self.cmd.payload.op, self._masked_ops)),
                         rem.eq((1 << G) - 1), w["first"].eq(1)]
        with m.Elif(walking):
            m.d.sync += rem.eq(rest)
            with m.If(w["issuing"]):
                m.d.sync += w["first"].eq(0)
        return w

    def _elaborate_read_back(self, m, walking, rp, registered=False):
        """The read-back of one weight through the read port, while no row is walked; its
        lane (registered with the read) is returned. ``registered``: the read's address,
        enable and lane registered first, ``rb_data`` left to the caller (the banks'
        registers)."""
        G, L = self._groups, self._lanes
        port = self.weights
        rb_group, rb_lane_now = lane_split(port.rb_dst, L)
        rb_lane = Signal(range(L))
        if registered:
            # The read's address, enable and lane registered first (one cycle more).
            rb_addr, rb_en = Signal.like(rp.addr, name="rb_addr_q"), Signal(name="rb_en_q")
            rb_lane_now_q = Signal(range(L), name="rb_lane_in")
            m.d.sync += [rb_addr.eq(times_const(port.rb_src, G) + rb_group),
                         rb_en.eq(port.rb_en), rb_lane_now_q.eq(rb_lane_now)]
            rb_lane_now = rb_lane_now_q
        else:
            rb_addr, rb_en = times_const(port.rb_src, G) + rb_group, port.rb_en
        with m.If(~walking):
            m.d.comb += [rp.addr.eq(rb_addr), rp.en.eq(rb_en)]
        m.d.sync += rb_lane.eq(rb_lane_now)
        if not registered:
            m.d.comb += port.rb_data.eq(Array(rp.data[l] for l in range(L))[rb_lane])
        return rb_lane

    def _elaborate_count(self, m, beat_op):
        """Weights read: the valid lanes of each beat of a ``count_ops`` op."""
        G, L = self._groups, self._lanes
        last_lanes = self._n_dst - (G - 1) * L
        n_read = Signal(range(L + 1))
        m.d.comb += n_read.eq(Mux(self.beat.group == G - 1, last_lanes, L))
        with m.If(self.clear_count):
            m.d.sync += self.lookups.eq(0)
        with m.Elif(self.beat.valid & self._is(beat_op, self._count_ops)):
            m.d.sync += self.lookups.eq(self.lookups + n_read)

    def _elaborate_write(self, m, wp, beat_addr):
        """The write port: a beat's write-back, else run-time loading of one weight (its
        address, a product and a division by the lanes, is computed into a register and the
        write happens one cycle later)."""
        G, L = self._groups, self._lanes
        port, beat = self.weights, self.beat
        w_group, w_lane_now = lane_split(port.w_dst, L)
        w_addr = Signal.like(wp.addr)
        w_lane = Signal(range(L))
        w_data = Signal(signed(WEIGHT_BITS))
        w_pending = Signal()
        m.d.sync += [w_addr.eq(times_const(port.w_src, G) + w_group), w_lane.eq(w_lane_now),
                     w_data.eq(port.w_data), w_pending.eq(port.w_en)]
        with m.If(beat.valid & (beat.ww_en != 0)):
            m.d.comb += [wp.addr.eq(beat_addr), wp.data.eq(beat.ww_data), wp.en.eq(beat.ww_en)]
        with m.Else():
            m.d.comb += [wp.addr.eq(w_addr), wp.data.eq(w_data.replicate(L))]
            with m.If(w_pending):
                m.d.comb += wp.en.eq(1 << w_lane)
