"""One TTFS layer: the shared weight lookup plus the TTFS neuron arithmetic.

The arithmetic is that of :mod:`spikegate.golden.ttfs_discrete`, lane by lane:
``ttfs_fires`` (``z_k * (acc_w - theta) >= acc_wz`` for a neuron that has not fired) and
``ttfs_accumulate`` (``acc_w += w``, ``acc_wz += w * z_k``), with the widths of
``ttfs_widths``. The state of the destination neurons lives in one memory of
``ceil(n_dst / lanes)`` words, each holding the ``lanes`` neurons of one lane group.

The layer gives the :class:`~spikegate.hdl.lookup.WeightLookup` its op codes
(:class:`TTFSOp`) and interprets them on the beats; the quiet horizon that lets the
scheduler skip scans is :mod:`spikegate.hdl.quiet`, the learning lanes
:func:`spikegate.hdl.learning.sign_update_lanes`. The register cuts come from the layer's
:class:`~spikegate.hdl.timing.Timing`.
"""

import numpy as np

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, enum, memory, wiring
from amaranth.lib.wiring import In, Out

from spikegate.golden.ttfs_discrete import (THETA_BITS, THETA_MAX, DiscreteConfig, WEIGHT_BITS,
                                            quiet_horizons, step0_thresholds, ttfs_widths,
                                            z_table)
from .arith import lane_split, lowest_set_bit
from .lookup import MAX_MASKED_GROUPS, WeightLookup
from .params import checking
from .quiet import group_horizons, layer_horizon
from .signatures import LayerLearning, TracePort, TTFSSchedule, WeightPort
from .spike_queue import StreamRegister
from .timing import Timing

__all__ = ["TTFSLayer", "TTFSOp", "neuron_state_layout"]


class TTFSOp(enum.IntEnum, shape=3):
    """What a TTFS layer's pass over its destinations does (the op codes it gives the
    weight lookup)."""
    #: read the source's weight row and add it to the destinations (fire check fused)
    ACCUMULATE = 0
    #: visit every destination without reading weights (fire check only)
    SCAN = 1
    #: reset every destination's state (image start)
    CLEAR = 2
    #: read the source's weight row and vote with the destinations' deltas (learning)
    DELTA = 3
    #: read the source's weight row, step it by the destinations' deltas, write it back
    LEARN = 4


def neuron_state_layout(widths, step_bits, *, acc_wz=True):
    """One neuron's state: ``acc_w``, ``acc_wz`` (signed; not with ``acc_wz=False``, the
    layer of binary inputs), ``fired``, ``step`` (of the spike)."""
    return data.StructLayout({
        "acc_w": signed(widths["acc_w_bits"]),
        **({"acc_wz": signed(widths["acc_wz_bits"])} if acc_wz else {}),
        "fired": unsigned(1),
        "step": unsigned(step_bits),
    })


class _ThresholdTable:
    """The fire thresholds of a layer of binary inputs
    (:func:`~spikegate.golden.ttfs_discrete.step0_thresholds`): a memory of ``T`` words
    ``A_k`` (unsigned, :attr:`a_bits`; the steps with ``z_k = z_0`` are constants, not
    stored) and the restoring divider that rewrites it after a threshold write.

    ``A_k = theta + ceil(theta * 2**F / g_k)`` with ``g_k = z_k - z_0`` (``z_k = z_0 + g_k``),
    so the divider divides ``(theta << F) + g_k - 1`` by the constant ``g_k``, one quotient bit
    a cycle: :attr:`cycles` = ``T * (n_bits + 2)`` cycles for the table.

    The quiet test of factor ``i`` after a pass of step ``k`` (no spike up to ``e = k +
    h_i(k)``, :func:`~spikegate.golden.ttfs_discrete.quiet_horizons`) is exactly ``acc_w <
    A'[min(e, T - 1)]``, ``A'`` being ``A`` with the steps where ``z_k = z_0`` as +infinity:
    a neuron of binary inputs fires at the first step ``j`` with ``acc_w >= A'_j``, and ``A'``
    does not increase with ``j`` (``z_j / (z_j - z_0)`` falls as ``z_j`` grows; the steps with
    ``z_j = z_0`` come first, ``z`` not decreasing). With ``theta = 0`` (a register value the
    golden model refuses) those steps fire (``z_0 (acc_w - 0) >= z_0 acc_w``) and the tests at
    them do not hold.
    """

    def __init__(self, config, theta, factors):
        T = config.timesteps
        z = z_table(config)
        gap = z - z[0]
        self.valid = [bool(v) for v in gap > 0]
        self.gaps = [int(v) if v > 0 else 1 for v in gap]
        self.frac = config.z_frac_bits
        self.a_bits = max(1, int(step0_thresholds(config, THETA_MAX).max()).bit_length())
        self.g_bits = max(1, max(self.gaps).bit_length())
        self.n_bits = max(THETA_BITS + self.frac, self.g_bits) + 1
        self.cycles = T * (self.n_bits + 2)
        self.index = np.minimum(quiet_horizons(config, factors) + np.arange(T), T - 1)
        init = np.where(gap > 0, step0_thresholds(config, theta), 0)
        self.data = memory.MemoryData(shape=unsigned(self.a_bits), depth=T,
                                      init=[int(v) for v in init])

    def _const_table(self, values, shape, index):
        return Array(Const(int(v), shape) for v in values)[index]

    def build(self, m, theta, start, step):
        """The memory, its divider (restarted by ``start``, reading ``theta`` a cycle later)
        and the per-step reads (registers following ``step``, like ``z``). Returns a dict:
        ``busy``, ``a`` / ``a_ok`` (``A_step``, whether it is stored), ``quiet`` (per factor
        ``(A'[index], stored)``), ``theta`` (the threshold register it was built from)."""
        T, nb, gb = len(self.valid), self.n_bits, self.g_bits
        m.submodules.thresholds = mem = memory.Memory(data=self.data)
        wp = mem.write_port()
        # Runs after reset too: the table follows the theta register's reset value (a
        # written threshold is gone after a reset, as in the multiplying layer).
        run = Signal(name="table_run", init=1)
        k = Signal(range(T), name="table_k")
        i = Signal(range(nb + 2), name="table_i")
        num = Signal(nb, name="table_num")
        rem = Signal(gb, name="table_rem")
        quo = Signal(nb, name="table_quo")
        g = Signal(gb, name="table_gap")
        shifted = Signal(gb + 1, name="table_shifted")       # 2 * rem + the next bit, < 2 g
        m.d.comb += [g.eq(self._const_table(self.gaps, gb, k)),
                     shifted.eq(Cat(num[-1], rem)),
                     wp.addr.eq(k), wp.data.eq(theta + quo),
                     wp.en.eq(run & (i == nb + 1) & self._const_table(self.valid, 1, k))]
        with m.If(start):
            m.d.sync += [run.eq(1), k.eq(0), i.eq(0)]
        with m.Elif(run):
            with m.If(i == 0):
                m.d.sync += [num.eq((theta << self.frac) + g - 1), rem.eq(0), quo.eq(0),
                             i.eq(1)]
            with m.Elif(i <= nb):
                with m.If(shifted >= g):
                    m.d.sync += [rem.eq(shifted - g), quo.eq(Cat(Const(1, 1), quo))]
                with m.Else():
                    m.d.sync += [rem.eq(shifted), quo.eq(Cat(Const(0, 1), quo))]
                m.d.sync += [num.eq(num << 1), i.eq(i + 1)]
            with m.Else():
                m.d.sync += i.eq(0)
                with m.If(k == T - 1):
                    m.d.sync += run.eq(0)
                with m.Else():
                    m.d.sync += k.eq(k + 1)

        rp = mem.read_port()
        a_ok = Signal(name="a_ok")
        m.d.comb += rp.addr.eq(step)
        m.d.sync += a_ok.eq(self._const_table(self.valid, 1, step))
        quiet = []
        for f, row in enumerate(self.index):
            qp = mem.read_port()
            ok = Signal(name=f"quiet_a_ok{f}")
            m.d.comb += qp.addr.eq(self._const_table(row, range(T), step))
            m.d.sync += ok.eq(self._const_table([self.valid[j] for j in row], 1, step))
            quiet.append((qp.data, ok))
        return {"busy": run, "a": rp.data, "a_ok": a_ok, "quiet": quiet, "theta": theta}


class _Stages:
    """The register stages of a layer's arithmetic: :meth:`cut` puts one over a dict of
    values (or passes them through); :attr:`valids` collects each stage's valid, for
    ``busy``."""

    def __init__(self, m, valids=()):
        self.m = m
        self.valids = list(valids)

    def cut(self, enabled, name, values):
        if not enabled:
            return values
        out = {}
        for key, v in values.items():
            s = Signal(Value.cast(v).shape(), name=f"{name}_{key}")
            self.m.d.sync += s.eq(v)
            out[key] = s
        self.valids.append(out["valid"])
        return out

    @staticmethod
    def ops(c, *names):
        """The stage ``c`` holds a valid beat of one of the ops ``names``."""
        return c["valid"] & sum((c["op"] == getattr(TTFSOp, n)) for n in names).bool()


class TTFSLayer(wiring.Component):
    """A layer of ``n_dst`` TTFS neurons fed by ``n_src`` sources.

    Parameters
    ----------
    n_src, n_dst, lanes : int
        See :class:`~spikegate.hdl.lookup.WeightLookup`.
    theta : int
        The layer's initial threshold in weight units (1 to ``THETA_MAX``); a run-time
        register (``theta_w_en``), the datapath widths cover every threshold.
    config : DiscreteConfig
        Time grid and z fixed point.
    init : array, optional
        Initial signed 8-bit weights, shape ``(n_src, n_dst)``.
    timing : Timing
        Register cuts and options (:class:`~spikegate.hdl.timing.Timing`; default none):
        each cut adds a cycle of latency per pass and nothing else. With
        ``cut_after_multiply`` the state write is one cycle after the beat, with forwarding
        to the next row; with ``cut_before_multiply`` too it is two (rows of a layer with a
        single lane group are spaced by one idle cycle); with ``cut_before_write`` three,
        forwarded in two parts (the new ``acc_w`` / ``acc_wz`` to the beat, ``fired`` /
        ``step`` a cycle later to the multiply stage), the fire mask a cycle later, rows
        spaced as without it. ``group_wake`` applies to layers of
        2 to :data:`~spikegate.hdl.lookup.MAX_MASKED_GROUPS` lane groups (:attr:`group_wake`
        tells); the others keep one layer-wide horizon. ``weight_out_register``,
        ``weight_bank_depth`` and ``weight_bank_width`` are the lookup's ``out_register``,
        ``bank_depth`` and ``bank_width`` (one cycle more per pass; with banks the weight
        read-back takes :attr:`rb_latency` 3 cycles). Results never change.
    learning : bool
        Build the learning lanes (the rule of :mod:`spikegate.golden.sign_backprop`).
    binary_input : bool
        Every input row arrives at step 0 (binary input encoding: each source spikes at step
        0 or never). Then ``acc_wz = z_0 * acc_w`` and the fire compare at step ``k`` is
        ``acc_w >= A_k`` (:func:`~spikegate.golden.ttfs_discrete.step0_thresholds`): each lane
        is an adder and comparators, no multiplier, and the state has no ``acc_wz``. The
        ``A_k`` (and the quiet tests' ``A`` at each factor's horizon) are read from a table of
        ``timesteps`` words, initially that of ``theta``; a threshold write recomputes it with
        a restoring divider (:attr:`table_cycles` cycles, ``busy`` meanwhile; also after
        reset, which restores the built ``theta``). An ``ACCUMULATE`` row at a step other
        than 0 sets ``binary_input_error`` until the next image's start (checked on the row's
        beats): that image's results would be wrong. Refused with ``learning``.

    Members
    -------
    cmd, step, step_start, busy, fire_valid, fire, clear_stats, spikes, lookups, weights, trace
        The :class:`~spikegate.hdl.signatures.SpikingLayer` interface, with :class:`TTFSOp`
        op codes: ``ACCUMULATE`` a source's row (fire check fused), ``SCAN`` every neuron
        (fire check only), ``CLEAR`` every neuron. With the timing's ``lazy_clear``,
        ``clear_stats`` (an image's start, while no pass runs) also clears every neuron in no
        cycle: a group reads as cleared until its first write, and the quiet horizons are
        reset. At most one fire beat per
        group and step. ``trace.step`` is ``timesteps`` for a neuron that did not fire; use
        ``trace`` and ``weights``' read-back only while no pass runs.
    step_fired, step_first : Out
        Some neuron fired in the current step; the lowest-indexed one.
    armed : Out
        Neurons that have not fired and whose ``acc_w`` exceeds ``theta``: only they can
        fire at a later step without new input (a layer with none needs no scan).
    quiet_until : Out
        No neuron can fire without new input up to this step (:mod:`spikegate.hdl.quiet`).
        Scans before then are skipped; this changes cycles only, never a result.
    wake : Out
        ``quiet_until + 1`` while some neuron is armed, else ``timesteps``: the first step at
        which this layer may fire without new input (a register, for the controller);
        ``armed_any`` is ``armed != 0`` (a register).
    scan_cycles : Out(unsigned(32))
        Cycles of scan passes since ``clear_stats``.
    theta_w_en, theta_w_data : In
        Set the threshold; only while no pass runs. With ``binary_input`` the layer is
        ``busy`` for :attr:`table_cycles` cycles after it (a write meanwhile restarts it).
    binary_input_error : Out (``binary_input=True`` only)
        An ``ACCUMULATE`` row of this image (since ``clear_stats``) came at a step other
        than 0.

    With ``learning=True`` (the rule of :mod:`spikegate.golden.sign_backprop`), also:

    delta_w_en, delta_w_addr, delta_w_data : In
        Set the delta (-1, 0, +1) of one neuron of this layer.
    votes_valid, votes_group, votes_last, votes_p, votes_n : Out
        During a ``DELTA`` pass over a source's row: per lane, whether the lane's weight
        sign and delta vote "earlier" (``w > 0`` and ``delta > 0``, or ``w < 0`` and
        ``delta < 0``) or "later" (the opposite pairings); the bits of one source's row
        over its groups, to be counted by popcounts.
    lr_shift : In
        A ``LEARN`` pass over a source's row (``tag`` = the source's spike step) adds
        ``delta * 2**lr_shift`` (saturating to [-128, 127]) to the weight of every lane whose
        delta is not 0 and whose neuron did not fire, or fired after the source.
    lfsr_k, lfsr_in, lfsr_out, lfsr_used : In, In, Out, Out
        Stochastic rounding (:class:`~spikegate.golden.sign_backprop.UpdateLFSR`): with
        ``lfsr_k`` from 1 to 8, each of those writes draws ``lfsr_k`` steps of the update LFSR
        (state ``lfsr_in``, lanes in order) and is carried out only when the new bits are all
        0; ``lfsr_out`` is the state after the beat, ``lfsr_used`` marks a beat that drew.

    A pass takes ``ceil(n_dst / lanes)`` cycles plus 2 of latency and one per cut; passes
    overlap, so back-to-back rows cost ``ceil(n_dst / lanes)`` cycles each (at least 2 with
    ``cut_before_multiply``).
    """

    def __init__(self, n_src, n_dst, lanes, theta, config=None, init=None, *, learning=False,
                 timing=None, binary_input=False):
        config = config or DiscreteConfig()
        timing = Timing() if timing is None else timing
        with checking(self):
            if not isinstance(timing, Timing):
                raise TypeError(f"timing must be a Timing, not {timing!r}")
            if not isinstance(config, DiscreteConfig):
                raise TypeError(f"config must be a DiscreteConfig, not {config!r}")
            if not isinstance(theta, (int, np.integer)) or not 1 <= theta <= THETA_MAX:
                raise ValueError(f"theta must be an integer from 1 to {THETA_MAX}, not {theta!r}")
            if not isinstance(binary_input, bool):
                raise TypeError(f"binary_input must be a bool, not {binary_input!r}")
            if binary_input and learning:
                raise ValueError("binary_input=True cannot be combined with learning=True (the "
                                 "learning lanes are built for the layer with acc_wz)")
        self._binary = binary_input
        self._learning = bool(learning)
        self._timing = timing
        sized = all(isinstance(v, (int, np.integer)) and v >= 1 for v in (n_dst, lanes))
        groups = -(-n_dst // lanes) if sized else 0
        self._group_wake = timing.group_wake and 2 <= groups <= MAX_MASKED_GROUPS
        self._lookup = WeightLookup(
            n_src, n_dst, lanes, init, tag_bits=config.step_bits, op_shape=TTFSOp,
            read_ops=(TTFSOp.ACCUMULATE, TTFSOp.DELTA, TTFSOp.LEARN),
            count_ops=(TTFSOp.ACCUMULATE,),
            masked_ops=(TTFSOp.SCAN,) if self._group_wake else (),
            out_register=timing.weight_out_register, bank_depth=timing.weight_bank_depth,
            bank_width=timing.weight_bank_width)
        self._theta = int(theta)
        self._config = config
        self._widths = ttfs_widths(n_src, THETA_MAX, config)
        step_bits = config.step_bits
        self._state_layout = neuron_state_layout(self._widths, step_bits,
                                                 acc_wz=not binary_input)
        G = self._lookup.groups
        cleared = [{"step": config.timesteps}] * lanes
        self._cleared = data.ArrayLayout(self._state_layout, lanes).const(cleared)
        self.state_data = memory.MemoryData(
            shape=data.ArrayLayout(self._state_layout, lanes), depth=G, init=[cleared] * G)
        extra_ports = {}
        if binary_input:
            self._table = _ThresholdTable(config, self._theta, timing.quiet_factors)
            extra_ports = {"binary_input_error": Out(1)}
        if self._learning:
            self.delta_data = memory.MemoryData(shape=data.ArrayLayout(signed(2), lanes), depth=G,
                                                init=[])
            extra_ports = {"learn": In(LayerLearning(n_dst, lanes))}
        super().__init__({
            "schedule": In(TTFSSchedule(n_src, n_dst, lanes, config.timesteps, TTFSOp)),
            "weights": In(WeightPort(n_src, n_dst)),
            "trace": In(TracePort(n_dst, step_bits)),
            **extra_ports,
            "armed": Out(range(n_dst + 1)),
            "quiet_until": Out(step_bits + 2),
            "theta_w_en": In(1),
            "theta_w_data": In(THETA_BITS),
        })

    @property
    def lookup(self):
        return self._lookup

    @property
    def theta(self):
        return self._theta

    @property
    def config(self):
        return self._config

    @property
    def widths(self):
        return dict(self._widths)

    @property
    def groups(self):
        return self._lookup.groups

    @property
    def learning(self):
        return self._learning

    @property
    def timing(self):
        return self._timing

    @property
    def rb_latency(self):
        """Cycles from ``weights.rb_en`` to ``weights.rb_data``: the weight lookup's
        (:attr:`~spikegate.hdl.lookup.WeightLookup.rb_latency`: 1, 3 with weight banks)."""
        return self._lookup.rb_latency

    @property
    def binary_input(self):
        return self._binary

    @property
    def table_cycles(self):
        """Cycles of the threshold table's recomputation after a ``theta`` write (0 without
        ``binary_input``)."""
        return self._table.cycles if self._binary else 0

    @property
    def group_wake(self):
        """Whether the per-group quiet horizons are built (see the parameters)."""
        return self._group_wake

    def elaborate(self, platform):
        m = Module()
        lk = self._lookup
        m.submodules.lookup = lk
        wiring.connect(m, wiring.flipped(self.weights), lk.weights)
        m.d.comb += [lk.clear_count.eq(self.schedule.clear_stats), self.schedule.lookups.eq(lk.lookups)]
        stages = _Stages(m, self._command_path(m))

        m.submodules.state = mem = memory.Memory(data=self.state_data)
        wp = mem.write_port()
        rp = mem.read_port(transparent_for=(wp,))
        tp = mem.read_port()
        m.d.comb += [rp.addr.eq(lk.beat.issue_group), rp.en.eq(lk.beat.issue_valid)]

        z, opts = self._step_tables(m)
        theta = Signal(THETA_BITS, init=self._theta)
        with m.If(self.theta_w_en):
            m.d.sync += theta.eq(self.theta_w_data)
        if self._binary:
            # The threshold table stands in for z; its divider counts in ``busy``.
            z = self._table.build(m, theta, self.theta_w_en, self.schedule.step)
            stages.valids += [z["busy"], self.theta_w_en]
            # An input row's beat at a step other than 0 (the step of its pass, which the
            # compare uses; a row may be accepted a cycle before its step is set).
            # Per image: cleared at the image's start (``clear_stats``).
            with m.If(self.schedule.clear_stats):
                m.d.sync += self.binary_input_error.eq(0)
            with m.Elif(lk.beat.valid & (lk.beat.op == TTFSOp.ACCUMULATE) &
                        (self.schedule.step != 0)):
                m.d.sync += self.binary_input_error.eq(1)

        # Beat: the state read with the weights (forwarded from the write stage when that
        # writes the group this beat read one cycle before), ``acc_w - theta``, ``w * z``.
        st = Signal(data.ArrayLayout(self._state_layout, lk.lanes))
        # With ``cut_before_write``: the write stage's registered new state, and whether the
        # beat read a group whose compare runs now (its fired / step fixed a cycle later).
        fwd = None
        if self._timing.cut_before_write:
            fwd = {"late": Signal(name="late_hit"),
                   "new": Signal(data.ArrayLayout(self._state_layout, lk.lanes), name="w_new")}
        c2 = self._multiply(m, stages, st, theta, z, fwd)
        c3 = self._write(m, stages, c2, st, wp, rp, fwd, tab=z if self._binary else None)
        self._statistics(m, stages, c3)
        if self._group_wake:
            group_horizons(self, m, c3, stages, opts)
        else:
            layer_horizon(self, m, c3, stages, opts)
        m.d.comb += self.schedule.busy.eq(lk.busy | Cat(*stages.valids).any() if stages.valids
                                 else lk.busy)

        # Trace port (with ``lazy_clear``, a group not written since the image started reads
        # as cleared).
        L = lk.lanes
        group, lane_now = lane_split(self.trace.addr, L)
        trace_lane = Signal(range(L))
        m.d.comb += tp.addr.eq(group)
        m.d.sync += trace_lane.eq(lane_now)
        trace_step = Array(tp.data[l].step for l in range(L))[trace_lane]
        if self._timing.lazy_clear:
            trace_stale = Signal()
            m.d.sync += trace_stale.eq(self._stale.bit_select(group, 1))
            trace_step = Mux(trace_stale, self._config.timesteps, trace_step)
        m.d.comb += self.trace.step.eq(trace_step)
        return m

    def _lazy_clear(self, m, wp):
        """The image start (``clear_stats``) clears every group lazily: a group reads as
        cleared (``acc_w = acc_wz = 0``, not fired, ``step = timesteps``) until its first state
        write of the image, so no ``CLEAR`` pass is needed. Returns the stale bit of the group
        of the current beat, a register taken at the issue with the state read (and, as that
        read, seeing a write in the same cycle): no multiplexer over the groups' bits between
        the state memory and the arithmetic."""
        G = self._lookup.groups
        issue = self._lookup.beat.issue_group
        self._stale = stale = Signal(G, name="stale")
        with m.If(self.schedule.clear_stats):
            m.d.sync += stale.eq((1 << G) - 1)
        with m.Elif(wp.en):
            m.d.sync += stale.bit_select(wp.addr, 1).eq(0)
        beat_stale = Signal()
        m.d.sync += beat_stale.eq(stale.bit_select(issue, 1) & ~(wp.en & (wp.addr == issue)))
        return beat_stale

    def _command_path(self, m):
        """``cmd`` to the lookup: through a register slice (``command_slice``), and gated so
        that rows closer than the state write (``groups < write_distance``) are spaced out
        and masked scans start only when no pass is in flight. Returns the valid of the
        slice (for ``busy``), if any."""
        lk, t = self._lookup, self._timing
        G, wdist = lk.groups, t.row_distance
        # Rows reach the same lane group every ``G`` cycles. The state written ``wdist``
        # cycles after a beat is forwarded to a beat read one cycle before the write (with
        # ``cut_before_write``, written a cycle later, to a beat two cycles before it); rows
        # closer than that (``G < wdist``) are spaced out by idle cycles.
        # Masked scans (``group_wake``) read the group wakes, so they start only when no pass
        # is in flight; they can revisit a group one cycle after the pass before it, so with
        # ``wdist >= 2`` nothing starts while one is issuing.
        pending = []
        if t.command_slice:
            # A register slice: the controller's command logic and the walker's start (its
            # address, the first group) are separate paths; one cycle more per pass.
            m.submodules.cmd_reg = cmd_reg = StreamRegister(self.schedule.cmd.payload.shape())
            wiring.connect(m, wiring.flipped(self.schedule.cmd), cmd_reg.i_stream)
            cmd = cmd_reg.o_stream
            pending.append(cmd.valid)
        else:
            cmd = self.schedule.cmd
        m.d.comb += lk.cmd.payload.eq(cmd.payload)
        gates = []
        if G < wdist:
            since = Signal(range(wdist + 1), init=wdist)
            gate = Signal()
            m.d.comb += gate.eq(since >= wdist)
            gates.append(gate)
            with m.If(lk.cmd.valid & lk.cmd.ready):
                m.d.sync += since.eq(1)
            with m.Elif(~gate):
                m.d.sync += since.eq(since + 1)
        if self._group_wake:
            mgate = Signal()
            m.d.comb += mgate.eq(~((cmd.payload.op == TTFSOp.SCAN) & self.schedule.busy) &
                                 (~lk.beat.walk_masked if wdist >= 2 else 1))
            gates.append(mgate)
        if gates:
            gate = Cat(*gates).all()
            m.d.comb += [lk.cmd.valid.eq(cmd.valid & gate),
                         cmd.ready.eq(lk.cmd.ready & gate)]
        else:
            m.d.comb += [lk.cmd.valid.eq(cmd.valid), cmd.ready.eq(lk.cmd.ready)]
        return pending

    def _step_tables(self, m):
        """Registers that follow ``step``: ``z_k``, and per quiet class ``j`` (0: none) the
        step a pass of this step leaves the layer quiet until, ``k + h``, and that plus one
        (tables indexed by the step, one per factor). Returns ``z, (until_opts, wake_opts)``."""
        cfg = self._config
        zs = z_table(cfg)
        z = Signal(self._widths["z_bits"])
        m.d.sync += z.eq(Array(Const(int(v), self._widths["z_bits"]) for v in zs)[self.schedule.step])
        hz = quiet_horizons(cfg, self._timing.quiet_factors) + np.arange(cfg.timesteps)
        until_opts = Array(Signal.like(self.quiet_until, name=f"until_opt{j}")
                           for j in range(len(hz) + 1))
        wake_opts = Array(Signal.like(self.schedule.wake, name=f"wake_opt{j}") for j in range(len(hz) + 1))
        m.d.sync += [until_opts[0].eq(self.schedule.step), wake_opts[0].eq(self.schedule.step + 1)]
        for j in range(len(hz)):
            entry = Signal.like(self.quiet_until, name=f"until_table{j}")
            entry1 = Signal.like(self.schedule.wake, name=f"wake_table{j}")     # entry + 1, no adder
            m.d.comb += [entry.eq(Array(Const(int(v), entry.shape()) for v in hz[j])[self.schedule.step]),
                         entry1.eq(Array(Const(int(v) + 1, entry1.shape())
                                         for v in hz[j])[self.schedule.step])]
            m.d.sync += [until_opts[j + 1].eq(entry), wake_opts[j + 1].eq(entry1)]
        return z, (until_opts, wake_opts)

    def _lane_ok(self, l, group):
        """Lane ``l`` of ``group`` is a neuron (the last group may be partial)."""
        lk = self._lookup
        last_lanes = lk.n_dst - (lk.groups - 1) * lk.lanes
        return Const(1) if l < last_lanes else group != lk.groups - 1

    def _weight_terms(self, m, l, w, acc_w, z):
        """Lane ``l``'s ``w * z`` and ``acc_w + w`` (signals named ``wz{l}``, ``acc_w_new{l}``)."""
        wz = Signal(signed(WEIGHT_BITS + self._widths["z_bits"] + 1), name=f"wz{l}")
        acc_w_new = Signal(signed(self._widths["acc_w_bits"]), name=f"acc_w_new{l}")
        m.d.comb += [wz.eq(w * z), acc_w_new.eq(acc_w + w)]
        return {f"wz{l}": wz, f"acc_w_new{l}": acc_w_new}

    def _multiply(self, m, stages, st, theta, z, fwd=None):
        """The beat stage and, after ``cut_before_multiply``, the multiply stage: ``z *
        (acc_w - theta)``, the new ``acc_wz``, the armed tests (with ``fwd``, the
        ``cut_before_write`` forwarding, ``fired`` and ``step`` from the write register when
        the beat's group was being compared). Returns the values at the write stage (after
        ``cut_after_multiply``)."""
        if self._binary:
            return self._compare(m, stages, st, theta, z, fwd)
        lk, t, W = self._lookup, self._timing, self._widths
        beat = lk.beat
        b = self._beat_control(fwd)
        for l in range(lk.lanes):
            s = st[l]
            w = beat.weights[l]
            diff = Signal(signed(W["diff_bits"]), name=f"diff{l}")
            m.d.comb += diff.eq(s.acc_w - theta)
            b.update({f"diff{l}": diff, f"acc_wz{l}": s.acc_wz, f"fired{l}": s.fired,
                      f"step{l}": s.step})
            if t.late_weight_terms:
                b.update({f"w{l}": w, f"acc_w{l}": s.acc_w})
            else:
                b.update(self._weight_terms(m, l, w, s.acc_w, z))

        c1 = self._forward_fired(m, stages.cut(t.cut_before_multiply, "p1", b), fwd)
        mstage = {k: v for k, v in c1.items() if not k.startswith("diff")}
        for l in range(lk.lanes):
            if t.late_weight_terms:
                del mstage[f"w{l}"], mstage[f"acc_w{l}"]
                mstage.update(self._weight_terms(m, l, c1[f"w{l}"], c1[f"acc_w{l}"], z))
            prod = Signal(signed(W["product_bits"]), name=f"prod{l}")
            acc_wz_new = Signal(signed(W["acc_wz_bits"]), name=f"acc_wz_new{l}")
            m.d.comb += [prod.eq(z * c1[f"diff{l}"]),
                         acc_wz_new.eq(c1[f"acc_wz{l}"] + mstage[f"wz{l}"])]
            mstage.update({
                f"prod{l}": prod, f"acc_wz_new{l}": acc_wz_new,
                f"was_armed{l}": (self._lane_ok(l, c1["group"]) & ~c1[f"fired{l}"] &
                                  (c1[f"diff{l}"] > 0)),
                f"pos_after{l}": mstage[f"acc_w_new{l}"] > theta,
            })
        return stages.cut(t.cut_after_multiply, "p2", mstage)

    def _beat_control(self, fwd):
        """The beat stage's control values (with ``fwd``, the ``cut_before_write`` hit)."""
        beat = self._lookup.beat
        b = {"valid": beat.valid, "op": Value.cast(beat.op), "group": beat.group,
             "first": beat.first, "last": beat.last}
        if fwd is not None:
            b["late"] = fwd["late"]
        return b

    def _forward_fired(self, m, c1, fwd):
        """After the cut before the multiply stage: with ``fwd`` (``cut_before_write``), each
        lane's ``fired`` and ``step`` from the write register when the beat's group was being
        compared (``late``)."""
        if fwd is None:
            return c1
        c1 = dict(c1)
        late = c1.pop("late")
        for l in range(self._lookup.lanes):
            fired = Signal(name=f"fired_fwd{l}")
            step = Signal.like(c1[f"step{l}"], name=f"step_fwd{l}")
            m.d.comb += [fired.eq(Mux(late, fwd["new"][l].fired, c1[f"fired{l}"])),
                         step.eq(Mux(late, fwd["new"][l].step, c1[f"step{l}"]))]
            c1[f"fired{l}"], c1[f"step{l}"] = fired, step
        return c1

    def _compare(self, m, stages, st, theta, tab, fwd=None):
        """The beat and compare stages of a layer of binary inputs, in the places of
        :meth:`_multiply`'s: ``acc_w + w`` at the beat (after the cut with
        ``late_weight_terms``), the compares ``acc_w >= A_k`` (``ge``) and ``acc_w > theta``
        where the multiply stage has ``z * (acc_w - theta)``. Returns the values at the write
        stage (after ``cut_after_multiply``)."""
        lk, t = self._lookup, self._timing
        beat = lk.beat
        b = self._beat_control(fwd)
        for l in range(lk.lanes):
            s = st[l]
            b.update({f"acc_w{l}": s.acc_w, f"fired{l}": s.fired, f"step{l}": s.step})
            if t.late_weight_terms:
                b[f"w{l}"] = beat.weights[l]
            else:
                b[f"acc_w_new{l}"] = self._acc_w_new(m, l, s.acc_w, beat.weights[l])
        c1 = self._forward_fired(m, stages.cut(t.cut_before_multiply, "p1", b), fwd)
        mstage = {k: v for k, v in c1.items() if not k.startswith(("acc_w", "w"))}
        theta_zero = theta == 0
        for l in range(lk.lanes):
            acc_w = c1[f"acc_w{l}"]
            acc_w_new = (self._acc_w_new(m, l, acc_w, c1[f"w{l}"]) if t.late_weight_terms
                         else c1[f"acc_w_new{l}"])
            ge = Signal(name=f"ge{l}")
            m.d.comb += ge.eq(Mux(tab["a_ok"], acc_w >= tab["a"], theta_zero))
            mstage.update({
                f"acc_w_new{l}": acc_w_new, f"ge{l}": ge,
                f"was_armed{l}": self._lane_ok(l, c1["group"]) & ~c1[f"fired{l}"] & (acc_w > theta),
                f"pos_after{l}": acc_w_new > theta,
            })
        return stages.cut(t.cut_after_multiply, "p2", mstage)

    def _acc_w_new(self, m, l, acc_w, w):
        acc_w_new = Signal(signed(self._widths["acc_w_bits"]), name=f"acc_w_new{l}")
        m.d.comb += acc_w_new.eq(acc_w + w)
        return acc_w_new

    def _write(self, m, stages, c2, st, wp, rp, fwd=None, tab=None):
        """The write stage: the compare, the new state (forwarded to the beat that reads its
        group), the fire mask, the learning lanes; with ``fwd`` (``cut_before_write``) the
        write and the fire mask a register stage later. Returns the statistics' stage values
        (after ``cut_before_stats``)."""
        lk = self._lookup
        L = lk.lanes
        state_op = stages.ops(c2, "ACCUMULATE", "SCAN")
        is_clear = stages.ops(c2, "CLEAR")
        fire_mask = Signal(L)
        stats = {k: c2[k] for k in ("valid", "op", "group", "first", "last")}
        for l in range(L):
            fires = Signal(name=f"fires{l}")
            crossed = c2[f"ge{l}"] if tab else c2[f"prod{l}"] >= c2[f"acc_wz{l}"]
            m.d.comb += fires.eq(self._lane_ok(l, c2["group"]) & ~c2[f"fired{l}"] & state_op &
                                 crossed)
            m.d.comb += fire_mask[l].eq(fires)
        new = self._next_state(m, "new", c2, is_clear, fire_mask)
        for l in range(L):
            nw = new[l]
            armed_after = self._lane_ok(l, c2["group"]) & ~nw.fired & c2[f"pos_after{l}"] & state_op
            stats.update({f"was_armed{l}": c2[f"was_armed{l}"] & state_op,
                          f"armed_after{l}": armed_after})
            if tab:
                # The quiet tests (:class:`_ThresholdTable`): compares with the table's
                # thresholds at each factor's horizon.
                for i, (a, ok) in enumerate(tab["quiet"]):
                    q = Signal(name=f"quiet_lt{l}_{i}")
                    m.d.comb += q.eq(Mux(ok, c2[f"acc_w_new{l}"] < a, tab["theta"] != 0))
                    stats[f"quiet{l}_{i}"] = q
            else:
                # How long this lane stays quiet without input: z * (acc_w' - theta) after
                # the beat is prod + wz (no multiplier); its quiet class is taken after the cut.
                pz = Signal(signed(self._widths["product_bits"] + 2), name=f"pz{l}")
                m.d.comb += pz.eq(c2[f"prod{l}"] + c2[f"wz{l}"])
                stats.update({f"pz{l}": pz, f"acc_wz_new{l}": c2[f"acc_wz_new{l}"]})
        stats["fire_mask"] = fire_mask
        writes = state_op | is_clear
        w = {"valid": c2["valid"], "en": writes, "group": c2["group"], "new": new.as_value(),
             "fire_valid": c2["valid"] & (fire_mask != 0), "fire_mask": fire_mask}
        if fwd is not None:
            w = stages.cut(True, "pw", w)
        m.d.comb += [wp.addr.eq(w["group"]), wp.data.eq(w["new"]), wp.en.eq(w["en"])]
        read = rp.data.as_value()
        if self._timing.lazy_clear:
            read = Mux(self._lazy_clear(m, wp), self._cleared.as_value(), read)
        if fwd is not None:
            self._forward_late(m, c2, is_clear, writes, w, st, read, fwd)
        elif self._timing.write_distance:
            hit = Signal()
            m.d.comb += hit.eq(writes & (c2["group"] == lk.beat.group))
            m.d.comb += st.eq(Mux(hit, new.as_value(), read))
        else:
            m.d.comb += st.eq(read)
        if self._learning:
            from .learning import sign_update_lanes
            sign_update_lanes(self, m, st)

        # Fire masks for the next layer (from the write stage).
        m.d.comb += [
            self.schedule.fire_valid.eq(w["fire_valid"]),
            self.schedule.fire.group.eq(w["group"]),
            self.schedule.fire.mask.eq(w["fire_mask"]),
        ]
        return stages.cut(self._timing.cut_before_stats, "p3", stats)

    def _next_state(self, m, name, c2, is_clear, fires=None):
        """The lanes' state after the compare stage's beat ``c2``: the cleared state on a
        ``CLEAR`` beat, else the new ``acc_w`` (and ``acc_wz``) with ``fired`` / ``step``
        updated by ``fires`` (the lanes firing now; None keeps the old ones: the early
        forward of ``cut_before_write``)."""
        L = self._lookup.lanes
        layout = data.ArrayLayout(self._state_layout, L)
        upd, out = Signal(layout, name=f"{name}_upd"), Signal(layout, name=name)
        for l in range(L):
            fired, step = c2[f"fired{l}"], c2[f"step{l}"]
            if fires is not None:
                fired, step = fired | fires[l], Mux(fires[l], self.schedule.step, step)
            m.d.comb += [upd[l].acc_w.eq(c2[f"acc_w_new{l}"]), upd[l].fired.eq(fired),
                         upd[l].step.eq(step)]
            if not self._binary:
                m.d.comb += upd[l].acc_wz.eq(c2[f"acc_wz_new{l}"])
        m.d.comb += out.eq(Mux(is_clear, self._cleared.as_value(), upd.as_value()))
        return out

    def _forward_late(self, m, c2, is_clear, writes, w, st, read, fwd):
        """The beat's state with ``cut_before_write``: a group written now (the write
        register ``w``) comes from that register; a group whose compare runs now (``c2``,
        two cycles before) takes its new ``acc_w`` / ``acc_wz`` (registers) and, for now,
        the old ``fired`` / ``step``, which the multiply stage replaces by the write
        register's a cycle later (``fwd["late"]``). ``LEARN`` beats, which read ``fired`` /
        ``step``, come after the classification's writes (the sequencer runs once the layers
        are idle)."""
        lk = self._lookup
        early = self._next_state(m, "early", c2, is_clear)
        hit2, hitw = Signal(name="hit_compare"), Signal(name="hit_write")
        m.d.comb += [hit2.eq(writes & (c2["group"] == lk.beat.group)),
                     hitw.eq(w["en"] & (w["group"] == lk.beat.group)),
                     fwd["late"].eq(hit2), fwd["new"].eq(w["new"]),
                     st.eq(Mux(hit2, early.as_value(),
                               Mux(hitw, w["new"], read)))]

    def _statistics(self, m, stages, c3):
        """The step's first spike and the spike and scan counts."""
        lk = self._lookup
        L = lk.lanes
        mask3 = c3["fire_mask"]
        first_lane = lowest_set_bit(m, mask3, "first_lane")
        with m.If(self.schedule.step_start):
            m.d.sync += self.schedule.step_fired.eq(0)
        with m.Elif(c3["valid"] & (mask3 != 0) & ~self.schedule.step_fired):
            m.d.sync += [self.schedule.step_fired.eq(1),
                         self.schedule.step_first.eq(c3["group"] * L + first_lane)]

        n_fires = Signal(range(L + 1))
        m.d.comb += n_fires.eq(sum(mask3[l] for l in range(L)))
        with m.If(self.schedule.clear_stats):
            m.d.sync += self.schedule.spikes.eq(0)
        with m.Elif(c3["valid"]):
            m.d.sync += self.schedule.spikes.eq(self.schedule.spikes + n_fires)

        with m.If(self.schedule.clear_stats):
            m.d.sync += self.schedule.scan_cycles.eq(0)
        with m.Elif(lk.beat.valid & (lk.beat.op == TTFSOp.SCAN)):
            m.d.sync += self.schedule.scan_cycles.eq(self.schedule.scan_cycles + 1)
