"""One TTFS layer: the shared weight lookup plus the TTFS neuron arithmetic.

The arithmetic is that of :mod:`spikegate.golden.ttfs_discrete`, lane by lane:
``ttfs_fires`` (``z_k * (acc_w - theta) >= acc_wz`` for a neuron that has not fired) and
``ttfs_accumulate`` (``acc_w += w``, ``acc_wz += w * z_k``), with the widths of
``ttfs_widths``. The state of the destination neurons lives in one memory of
``ceil(n_dst / lanes)`` words, each holding the ``lanes`` neurons of one lane group.
"""

import numpy as np

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.lib import stream

from spikegate.golden.ttfs_discrete import (QUIET_FACTORS, THETA_BITS, THETA_MAX, DiscreteConfig,
                                            WEIGHT_BITS, quiet_horizons, ttfs_widths, z_table)
from .layouts import RESULT_COUNT_BITS, FireMaskLayout, RowCommandLayout, RowOp, index_bits
from spikegate.golden.sign_backprop import MAX_LFSR_K
from .lookup import MAX_MASKED_GROUPS, WeightLookup
from .params import checking
from .spike_queue import StreamRegister

__all__ = ["TTFSLayer", "neuron_state_layout", "PIPELINE_CUTS"]

#: Pipeline setting -> (cut before the multipliers, cut after them, cut before the statistics,
#: cut between the quiet tests and the quiet horizon, the weight's product and sum after the
#: first cut, a register slice on the command stream).
PIPELINE_CUTS = {0: (False, False, False, False, False, False),
                 1: (False, True, False, False, False, False),
                 2: (False, True, True, False, False, False),
                 3: (True, True, True, False, False, False),
                 4: (True, True, True, True, True, False),
                 5: (True, True, True, True, True, True)}


def min_tree(m, values, name):
    """The minimum of unsigned ``values`` as a tree of comparisons, each level's results
    signals named ``{name}{width}_{i}`` (a nested ``Mux`` expression would be re-emitted for
    every use: exponential in the number of values)."""
    level = list(values)
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            a, b = level[i], level[i + 1]
            mn = Signal.like(a, name=f"{name}{len(level)}_{i}")
            m.d.comb += mn.eq(Mux(b < a, b, a))
            nxt.append(mn)
        level = nxt + level[len(level) - len(level) % 2:]
    return level[0]


def neuron_state_layout(widths, step_bits):
    """One neuron's state: ``acc_w``, ``acc_wz`` (signed), ``fired``, ``step`` (of the spike)."""
    return data.StructLayout({
        "acc_w": signed(widths["acc_w_bits"]),
        "acc_wz": signed(widths["acc_wz_bits"]),
        "fired": unsigned(1),
        "step": unsigned(step_bits),
    })


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
    pipeline : int
        Register stages added to the neuron arithmetic for clock speed (0 to 4), each one
        cycle more latency per pass and nothing else: 1 cuts after the multipliers (the
        state write is one cycle after the beat, with forwarding to the next row), 2 also
        cuts before the statistics (armed count, quiet horizon, first spike), 3 also cuts
        before the multipliers (the write is two cycles after the beat; rows of a layer
        with a single lane group are spaced by one idle cycle), 4 also moves ``w * z`` and
        ``acc_w + w`` after the cut before the multipliers (the weight memory's read is
        registered as it is) and cuts between the quiet tests of the lanes and the quiet
        horizon (``armed``, ``quiet_until`` and ``wake`` settle one cycle later; ``busy``
        covers it); 5 also puts a register slice on ``cmd`` (the controller's decisions and
        the walker's start are separate paths; one cycle more per pass, ``busy`` covers it).
        Results never change.
    quiet_factors : sequence of (n, d)
        The factors ``n / 2**d`` of the scan scheduler's quiet test
        (:func:`~spikegate.golden.ttfs_discrete.quiet_horizons`; default
        :data:`~spikegate.golden.ttfs_discrete.QUIET_FACTORS`): each costs a comparator per
        lane; finer factors skip more scans. Results never change.
    group_wake : bool
        Per-group quiet horizons (default on): each lane group keeps its own wake step, set
        from the quiet class of its lanes whenever a pass writes it back, and a ``SCAN`` visits
        only the groups whose wake is due (no cycle for the others); ``wake`` is their
        minimum. Costs a wake register and a comparator per group and a minimum tree. Only
        for 2 to :data:`~spikegate.hdl.lookup.MAX_MASKED_GROUPS` groups and pipeline 0 to 3
        (not yet with the quiet-test register of pipeline 4 and 5): otherwise (and
        when off) every scan visits every group, with one layer-wide horizon
        (:attr:`group_wake` tells which). Results never change.

    Members
    -------
    cmd : In(stream)
        :class:`RowCommandLayout`: ``ACCUMULATE`` a source's row (fire check fused),
        ``SCAN`` every neuron (fire check only), ``CLEAR`` every neuron (new image).
    step : In
        The current timestep; hold it steady from one cycle before a command to the end
        of its pass. ``step_start`` (a strobe) forgets the previous step's first spike.
    busy : Out
        A pass is in flight.
    fire_valid, fire : Out
        :class:`FireMaskLayout`: the neurons of one group that fired, at most one beat per
        group and step (no back-pressure).
    step_fired, step_first : Out
        Some neuron fired in the current step; the lowest-indexed one.
    armed : Out
        Neurons that have not fired and whose ``acc_w`` exceeds ``theta``: only they can
        fire at a later step without new input (a layer with none needs no scan).
    quiet_until : Out
        No neuron can fire without new input up to this step (``wake - 1`` with
        ``group_wake``; else as the last pass found
        (:func:`~spikegate.golden.ttfs_discrete.quiet_horizons`): every armed lane had
        ``2**d * acc_wz > n * z_k * (acc_w - theta)`` after it, for a quiet factor ``n / 2**d``).
        Scans before then are skipped;
        this changes cycles only, never a result.
    wake : Out
        ``quiet_until + 1`` while some neuron is armed, else ``timesteps``: the first step at
        which this layer may fire without new input (a register, for the controller);
        ``armed_any`` is ``armed != 0`` (a register).
    spikes, lookups, scan_cycles : Out(unsigned(32))
        Spikes of this layer's neurons, weights read and cycles of scan passes, since
        ``clear_stats``.
    trace_addr, trace_step : In, Out
        Spike step of neuron ``trace_addr`` one cycle later (``timesteps`` = never). Use
        only while idle.
    w_en, w_src, w_dst, w_data : In
        Write one weight.
    rb_en, rb_src, rb_dst, rb_data : In, Out
        Read one weight back (``rb_data`` one cycle later); only while no pass runs.
    theta_w_en, theta_w_data : In
        Set the threshold; only while no pass runs.

    With ``learning=True`` (the rule of :mod:`spikegate.golden.sign_backprop`), also:

    delta_w_en, delta_w_addr, delta_w_data : In
        Set the delta (-1, 0, +1) of one neuron of this layer.
    votes_valid, votes_group, votes_last, votes_p, votes_n : Out
        During a ``DELTA`` pass over a source's row: per lane, whether the lane's weight
        sign and delta vote "earlier" (``w > 0`` and ``delta > 0``, or ``w < 0`` and
        ``delta < 0``) or "later" (the opposite pairings); the bits of one source's row
        over its groups, to be counted by popcounts.
    lr_shift : In(3)
        A ``LEARN`` pass over a source's row (``tag`` = the source's spike step) adds
        ``delta * 2**lr_shift`` (saturating to [-128, 127]) to the weight of every lane whose
        delta is not 0 and whose neuron did not fire, or fired after the source.
    lfsr_k, lfsr_in, lfsr_out, lfsr_used : In, In, Out, Out
        Stochastic rounding (:class:`~spikegate.golden.sign_backprop.UpdateLFSR`): with
        ``lfsr_k`` from 1 to 8, each of those writes draws ``lfsr_k`` steps of the update LFSR
        (state ``lfsr_in``, lanes in order) and is carried out only when the new bits are all
        0; ``lfsr_out`` is the state after the beat, ``lfsr_used`` marks a beat that drew.

    A pass takes ``ceil(n_dst / lanes)`` cycles plus ``2 + pipeline`` of latency; passes
    overlap, so back-to-back rows cost ``ceil(n_dst / lanes)`` cycles each (at least 2 with
    ``pipeline`` 3 to 5).
    """

    def __init__(self, n_src, n_dst, lanes, theta, config=None, init=None, *, learning=False,
                 pipeline=0, quiet_factors=QUIET_FACTORS, group_wake=True):
        config = config or DiscreteConfig()
        with checking(self):
            quiet_horizons(DiscreteConfig(timesteps=2), quiet_factors)    # checks the factors
            if pipeline not in PIPELINE_CUTS:
                raise ValueError(f"pipeline must be 0, 1, 2, 3, 4 or 5, not {pipeline!r}")
            if not isinstance(config, DiscreteConfig):
                raise TypeError(f"config must be a DiscreteConfig, not {config!r}")
            if not isinstance(theta, (int, np.integer)) or not 1 <= theta <= THETA_MAX:
                raise ValueError(f"theta must be an integer from 1 to {THETA_MAX}, not {theta!r}")
        self._learning = bool(learning)
        self._pipeline = int(pipeline)
        self._cuts = PIPELINE_CUTS[self._pipeline]
        self._quiet_factors = tuple((int(n), int(d)) for n, d in quiet_factors)
        sized = all(isinstance(v, (int, np.integer)) and v >= 1 for v in (n_dst, lanes))
        groups = -(-n_dst // lanes) if sized else 0
        # Not with pipeline 4's quiet-test register: the group wakes are written in the beat
        # whose quiet class they take.
        self._group_wake = (bool(group_wake) and 2 <= groups <= MAX_MASKED_GROUPS and
                            not self._cuts[3])
        self._lookup = WeightLookup(n_src, n_dst, lanes, init, tag_bits=config.step_bits,
                                    masked_ops=(RowOp.SCAN,) if self._group_wake else ())
        self._theta = int(theta)
        self._config = config
        self._widths = ttfs_widths(n_src, THETA_MAX, config)
        step_bits = config.step_bits
        self._state_layout = neuron_state_layout(self._widths, step_bits)
        G = self._lookup.groups
        self.state_data = memory.MemoryData(
            shape=data.ArrayLayout(self._state_layout, lanes), depth=G,
            init=[[{"step": config.timesteps}] * lanes] * G)
        learn_ports = {}
        if self._learning:
            self.delta_data = memory.MemoryData(shape=data.ArrayLayout(signed(2), lanes), depth=G,
                                                init=[])
            learn_ports = {
                "lr_shift": In(3),
                "delta_w_en": In(1),
                "delta_w_addr": In(index_bits(n_dst)),
                "delta_w_data": In(signed(2)),
                "votes_valid": Out(1),
                "votes_group": Out(index_bits(G)),
                "votes_last": Out(1),
                "votes_p": Out(lanes),
                "votes_n": Out(lanes),
                "lfsr_k": In(range(MAX_LFSR_K + 1)),
                "lfsr_in": In(16),
                "lfsr_out": Out(16),
                "lfsr_used": Out(1),
            }
        super().__init__({
            **learn_ports,
            "cmd": In(stream.Signature(RowCommandLayout(n_src, step_bits))),
            "step": In(step_bits),
            "step_start": In(1),
            "busy": Out(1),
            "fire_valid": Out(1),
            "fire": Out(FireMaskLayout(G, lanes)),
            "step_fired": Out(1),
            "step_first": Out(index_bits(n_dst)),
            "armed": Out(range(n_dst + 1)),
            "quiet_until": Out(step_bits + 2),
            "wake": Out(step_bits + 3, init=config.timesteps),
            "armed_any": Out(1),
            "spikes": Out(RESULT_COUNT_BITS),
            "lookups": Out(RESULT_COUNT_BITS),
            "scan_cycles": Out(RESULT_COUNT_BITS),
            "clear_stats": In(1),
            "trace_addr": In(index_bits(n_dst)),
            "trace_step": Out(step_bits),
            "w_en": In(1),
            "w_src": In(index_bits(n_src)),
            "w_dst": In(index_bits(n_dst)),
            "w_data": In(signed(WEIGHT_BITS)),
            "rb_en": In(1),
            "rb_src": In(index_bits(n_src)),
            "rb_dst": In(index_bits(n_dst)),
            "rb_data": Out(signed(WEIGHT_BITS)),
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
    def widths(self):
        return dict(self._widths)

    @property
    def groups(self):
        return self._lookup.groups

    @property
    def learning(self):
        return self._learning

    @property
    def pipeline(self):
        return self._pipeline

    @property
    def group_wake(self):
        """Whether the per-group quiet horizons are built (see the parameters)."""
        return self._group_wake

    def elaborate(self, platform):
        m = Module()
        lk = self._lookup
        L, G, N = lk.lanes, lk.groups, lk.n_dst
        cfg = self._config
        cut_in, cut_out, cut_stats, cut_quiet, late_w, cmd_reg = self._cuts
        wdist = int(cut_in) + int(cut_out)       # stages from the beat to the state write
        m.submodules.lookup = lk
        m.d.comb += [
            lk.clear_count.eq(self.clear_stats),
            lk.w_en.eq(self.w_en), lk.w_src.eq(self.w_src),
            lk.w_dst.eq(self.w_dst), lk.w_data.eq(self.w_data),
            lk.rb_en.eq(self.rb_en), lk.rb_src.eq(self.rb_src), lk.rb_dst.eq(self.rb_dst),
            self.rb_data.eq(lk.rb_data),
            self.lookups.eq(lk.lookups),
        ]
        # Rows reach the same lane group every ``G`` cycles. The state written ``wdist``
        # cycles after a beat is forwarded to a beat read one cycle before the write; rows
        # closer than that (``G < wdist``) are spaced out by idle cycles.
        # Masked scans (``group_wake``) read the group wakes, so they start only when no pass
        # is in flight; they can revisit a group one cycle after the pass before it, so with
        # ``wdist >= 2`` nothing starts while one is issuing.
        if cmd_reg:
            # A register slice: the controller's command logic and the walker's start (its
            # address, the first group) are separate paths; one cycle more per pass.
            m.submodules.cmd_reg = cmd_reg = StreamRegister(self.cmd.payload.shape())
            wiring.connect(m, wiring.flipped(self.cmd), cmd_reg.i_stream)
            cmd = cmd_reg.o_stream
            pending = [cmd.valid]
        else:
            cmd = self.cmd
            pending = []
        m.d.comb += [lk.cmd.payload.eq(cmd.payload)]
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
            m.d.comb += mgate.eq(~((cmd.payload.op == RowOp.SCAN) & self.busy) &
                                 (~lk.walk_masked if wdist >= 2 else 1))
            gates.append(mgate)
        if gates:
            gate = Cat(*gates).all()
            m.d.comb += [lk.cmd.valid.eq(cmd.valid & gate),
                         cmd.ready.eq(lk.cmd.ready & gate)]
        else:
            m.d.comb += [lk.cmd.valid.eq(cmd.valid), cmd.ready.eq(lk.cmd.ready)]

        m.submodules.state = mem = memory.Memory(data=self.state_data)
        wp = mem.write_port()
        rp = mem.read_port(transparent_for=(wp,))
        tp = mem.read_port()
        m.d.comb += [rp.addr.eq(lk.issue_group), rp.en.eq(lk.issue_valid)]

        zs = z_table(cfg)
        z = Signal(self._widths["z_bits"])
        m.d.sync += z.eq(Array(Const(int(v), self._widths["z_bits"]) for v in zs)[self.step])
        factors = self._quiet_factors
        # Per quiet class j (0: none), the step a pass of this step leaves the layer quiet
        # until, ``k + h``, and that plus one: tables indexed by the step, registered.
        # (One table per factor; class 0 is the step itself.)
        hz = quiet_horizons(cfg, factors) + np.arange(cfg.timesteps)
        until_opts = Array(Signal.like(self.quiet_until, name=f"until_opt{j}")
                           for j in range(len(hz) + 1))
        wake_opts = Array(Signal.like(self.wake, name=f"wake_opt{j}") for j in range(len(hz) + 1))
        m.d.sync += [until_opts[0].eq(self.step), wake_opts[0].eq(self.step + 1)]
        for j in range(len(hz)):
            entry = Signal.like(self.quiet_until, name=f"until_table{j}")
            entry1 = Signal.like(self.wake, name=f"wake_table{j}")     # entry + 1, no adder
            m.d.comb += [entry.eq(Array(Const(int(v), entry.shape()) for v in hz[j])[self.step]),
                         entry1.eq(Array(Const(int(v) + 1, entry1.shape())
                                         for v in hz[j])[self.step])]
            m.d.sync += [until_opts[j + 1].eq(entry), wake_opts[j + 1].eq(entry1)]

        theta = Signal(THETA_BITS, init=self._theta)
        with m.If(self.theta_w_en):
            m.d.sync += theta.eq(self.theta_w_data)
        last_lanes = N - (G - 1) * L
        W = self._widths
        stages = pending                           # valid of every pipeline register stage

        def cut(enabled, name, values):
            """A pipeline register stage over ``values`` (a dict), or the values themselves."""
            if not enabled:
                return values
            out = {}
            for key, v in values.items():
                s = Signal(Value.cast(v).shape(), name=f"{name}_{key}")
                m.d.sync += s.eq(v)
                out[key] = s
            stages.append(out["valid"])
            return out

        def lane_ok(l, group):
            return Const(1) if l < last_lanes else group != G - 1

        def ops(c, *names):
            return c["valid"] & sum((c["op"] == getattr(RowOp, n)) for n in names).bool()

        # Beat: the state read with the weights (forwarded from the write stage when that
        # writes the group this beat read one cycle before), ``acc_w - theta``, ``w * z``.
        st = Signal(data.ArrayLayout(self._state_layout, L))
        new = Signal(data.ArrayLayout(self._state_layout, L))
        ctrl = {"valid": lk.beat_valid, "op": Value.cast(lk.beat_op), "group": lk.beat_group,
                "first": lk.beat_first, "last": lk.beat_last}
        b = dict(ctrl)
        for l in range(L):
            s = st[l]
            w = lk.beat_weights[l]
            diff = Signal(signed(W["diff_bits"]), name=f"diff{l}")
            m.d.comb += diff.eq(s.acc_w - theta)
            b.update({f"diff{l}": diff, f"acc_wz{l}": s.acc_wz, f"fired{l}": s.fired,
                      f"step{l}": s.step})
            if late_w:
                b.update({f"w{l}": w, f"acc_w{l}": s.acc_w})
            else:
                b.update(self._weight_terms(m, l, w, s.acc_w, z))

        # Multiply: ``z * (acc_w - theta)``, the new ``acc_wz``, the armed tests.
        c1 = cut(cut_in, "p1", b)
        mstage = {k: v for k, v in c1.items() if not k.startswith("diff")}
        for l in range(L):
            if late_w:
                del mstage[f"w{l}"], mstage[f"acc_w{l}"]
                mstage.update(self._weight_terms(m, l, c1[f"w{l}"], c1[f"acc_w{l}"], z))
            prod = Signal(signed(W["product_bits"]), name=f"prod{l}")
            acc_wz_new = Signal(signed(W["acc_wz_bits"]), name=f"acc_wz_new{l}")
            m.d.comb += [prod.eq(z * c1[f"diff{l}"]),
                         acc_wz_new.eq(c1[f"acc_wz{l}"] + mstage[f"wz{l}"])]
            mstage.update({
                f"prod{l}": prod, f"acc_wz_new{l}": acc_wz_new,
                f"was_armed{l}": lane_ok(l, c1["group"]) & ~c1[f"fired{l}"] & (c1[f"diff{l}"] > 0),
                f"pos_after{l}": mstage[f"acc_w_new{l}"] > theta,
            })

        # Write: the compare, the new state, the fire mask.
        c2 = cut(cut_out, "p2", mstage)
        state_op = ops(c2, "ACCUMULATE", "SCAN")
        is_clear = ops(c2, "CLEAR")
        fire_mask = Signal(L)
        stats = {k: c2[k] for k in ctrl}
        for l in range(L):
            nw = new[l]
            fires = Signal(name=f"fires{l}")
            m.d.comb += fires.eq(lane_ok(l, c2["group"]) & ~c2[f"fired{l}"] & state_op &
                                 (c2[f"prod{l}"] >= c2[f"acc_wz{l}"]))
            m.d.comb += fire_mask[l].eq(fires)
            with m.If(is_clear):
                m.d.comb += [nw.acc_w.eq(0), nw.acc_wz.eq(0), nw.fired.eq(0),
                             nw.step.eq(cfg.timesteps)]
            with m.Else():
                m.d.comb += [nw.acc_w.eq(c2[f"acc_w_new{l}"]), nw.acc_wz.eq(c2[f"acc_wz_new{l}"]),
                             nw.fired.eq(c2[f"fired{l}"] | fires),
                             nw.step.eq(Mux(fires, self.step, c2[f"step{l}"]))]
            armed_after = lane_ok(l, c2["group"]) & ~nw.fired & c2[f"pos_after{l}"] & state_op
            # How long this lane stays quiet without input: z * (acc_w' - theta) after the
            # beat is prod + wz (no multiplier); its quiet class is taken after the cut.
            pz = Signal(signed(W["product_bits"] + 2), name=f"pz{l}")
            m.d.comb += pz.eq(c2[f"prod{l}"] + c2[f"wz{l}"])
            stats.update({f"was_armed{l}": c2[f"was_armed{l}"] & state_op,
                          f"armed_after{l}": armed_after, f"pz{l}": pz,
                          f"acc_wz_new{l}": c2[f"acc_wz_new{l}"]})
        stats["fire_mask"] = fire_mask
        writes = state_op | is_clear
        m.d.comb += [wp.addr.eq(c2["group"]), wp.data.eq(new), wp.en.eq(writes)]
        if wdist:
            hit = Signal()
            m.d.comb += hit.eq(writes & (c2["group"] == lk.beat_group))
            m.d.comb += st.eq(Mux(hit, new.as_value(), rp.data.as_value()))
        else:
            m.d.comb += st.eq(rp.data)
        if self._learning:
            self._elaborate_learning(m, st, last_lanes)

        # Fire masks for the next layer (from the write stage).
        m.d.comb += [
            self.fire_valid.eq(c2["valid"] & (fire_mask != 0)),
            self.fire.group.eq(c2["group"]),
            self.fire.mask.eq(fire_mask),
        ]

        # Statistics: the step's first spike, counts, the armed count and the quiet horizon.
        c3 = cut(cut_stats, "p3", stats)
        c3_state = ops(c3, "ACCUMULATE", "SCAN")
        c3_clear = ops(c3, "CLEAR")
        mask3 = c3["fire_mask"]
        first_lane = Signal(range(L))
        for l in reversed(range(L)):
            with m.If(mask3[l]):
                m.d.comb += first_lane.eq(l)
        with m.If(self.step_start):
            m.d.sync += self.step_fired.eq(0)
        with m.Elif(c3["valid"] & (mask3 != 0) & ~self.step_fired):
            m.d.sync += [self.step_fired.eq(1),
                         self.step_first.eq(c3["group"] * L + first_lane)]

        n_fires = Signal(range(L + 1))
        m.d.comb += n_fires.eq(sum(mask3[l] for l in range(L)))
        with m.If(self.clear_stats):
            m.d.sync += self.spikes.eq(0)
        with m.Elif(c3["valid"]):
            m.d.sync += self.spikes.eq(self.spikes + n_fires)

        with m.If(self.clear_stats):
            m.d.sync += self.scan_cycles.eq(0)
        with m.Elif(lk.beat_valid & (lk.beat_op == RowOp.SCAN)):
            m.d.sync += self.scan_cycles.eq(self.scan_cycles + 1)

        if self._group_wake:
            # A wake step per lane group (pipeline <= 3: the group's quiet class is known in
            # the beat it is written back).
            self._elaborate_group_wake(m, c3, c3_state, c3_clear, self._quiet_min(m, c3),
                                       wake_opts)
            n_before = sum(c3[f"was_armed{l}"] for l in range(L))
            n_after = sum(c3[f"armed_after{l}"] for l in range(L))
            next_armed = Signal.like(self.armed)
            m.d.comb += next_armed.eq(self.armed)
            with m.If(c3_clear):
                m.d.comb += next_armed.eq(0)
            with m.Elif(c3_state):
                m.d.comb += next_armed.eq(self.armed + n_after - n_before)
            m.d.sync += [self.armed.eq(next_armed), self.armed_any.eq(next_armed != 0)]
            m.d.comb += self.busy.eq(lk.busy | sum(stages).bool() if stages else lk.busy)
        else:
            self._elaborate_quiet(m, c3, c3_state, c3_clear, cut, ops, until_opts, wake_opts,
                                  stages)

        # Trace port.
        trace_lane = Signal(range(L))
        m.d.comb += [tp.addr.eq(self.trace_addr // L if L > 1 else self.trace_addr)]
        m.d.sync += trace_lane.eq(self.trace_addr % L if L > 1 else 0)
        m.d.comb += self.trace_step.eq(Array(tp.data[l].step for l in range(L))[trace_lane])
        return m

    def _elaborate_quiet(self, m, c3, c3_state, c3_clear, cut, ops, until_opts, wake_opts,
                         stages):
        """The layer-wide quiet horizon (``group_wake`` off): ``armed``, ``quiet_until``,
        ``wake``; with pipeline 4 a register stage after the lanes' quiet tests."""
        lk = self._lookup
        L = lk.lanes
        cfg = self._config
        factors = self._quiet_factors
        cut_quiet = self._cuts[3]

        n_before = sum(c3[f"was_armed{l}"] for l in range(L))
        n_after = sum(c3[f"armed_after{l}"] for l in range(L))
        if cut_quiet:
            q_state, q_clear, q_last, sel_until, sel_wake, q_delta = self._quiet_cut(
                m, c3, cut, ops, until_opts, wake_opts, n_after - n_before)
        else:
            beat_min = self._quiet_min(m, c3)
            pass_min = Signal(range(len(factors) + 1))
            cur_min = Signal.like(pass_min)
            m.d.comb += cur_min.eq(Mux(c3["first"] | (beat_min < pass_min), beat_min, pass_min))
            with m.If(c3_state):
                m.d.sync += pass_min.eq(cur_min)
            q_state, q_clear, q_last = c3_state, c3_clear, c3["last"]
            sel_until, sel_wake = until_opts[cur_min], wake_opts[cur_min]
            q_delta = n_after - n_before
        m.d.comb += self.busy.eq(lk.busy | sum(stages).bool() if stages else lk.busy)

        # ``armed`` and ``quiet_until`` change here only; ``wake`` follows them.
        next_until = Signal.like(self.quiet_until)
        until1 = Signal.like(self.wake, init=1)      # quiet_until + 1
        next_until1 = Signal.like(self.wake)
        next_armed = Signal.like(self.armed)
        m.d.comb += [next_until.eq(self.quiet_until), next_until1.eq(until1),
                     next_armed.eq(self.armed)]
        with m.If(q_state):
            with m.If(q_last):
                m.d.comb += [next_until.eq(sel_until), next_until1.eq(sel_wake)]
        with m.Elif(q_clear):
            m.d.comb += [next_until.eq(0), next_until1.eq(1)]

        with m.If(q_clear):
            m.d.comb += next_armed.eq(0)
        with m.Elif(q_state):
            m.d.comb += next_armed.eq(self.armed + q_delta)
        m.d.sync += [self.quiet_until.eq(next_until), self.armed.eq(next_armed),
                     self.armed_any.eq(next_armed != 0),
                     until1.eq(next_until1),
                     self.wake.eq(Mux(next_armed != 0, next_until1, cfg.timesteps))]

    def _quiet_min(self, m, c3):
        """The beat's smallest quiet class over its lanes: per lane, class i + 1 when
        2**d * acc_wz' > n * z * (acc_w' - theta) for the i-th factor n / 2**d (n * x as
        shifts and adds), class ``len(factors)`` when the lane is not armed."""
        L = self._lookup.lanes
        factors = self._quiet_factors
        lane_class = []
        for l in range(L):
            cls = Signal(range(len(factors) + 1), name=f"quiet_class{l}")
            pz, acc = c3[f"pz{l}"], c3[f"acc_wz_new{l}"]
            m.d.comb += cls.eq(len(factors))
            with m.If(c3[f"armed_after{l}"]):
                m.d.comb += cls.eq(0)
                for i, (n, d) in enumerate(factors):
                    npz = sum(pz << b for b in range(n.bit_length()) if n >> b & 1)
                    with m.If((acc << d) > npz):
                        m.d.comb += cls.eq(i + 1)
            lane_class.append(cls)
        return min_tree(m, lane_class, "quiet_min")

    def _elaborate_group_wake(self, m, c3, c3_state, c3_clear, beat_min, wake_opts):
        """Per-group quiet horizons: a wake step per lane group (``timesteps`` = none of its
        lanes is armed), written with the group's state; the groups due at ``step`` enable a
        masked ``SCAN``; ``wake`` is the minimum over the groups."""
        lk = self._lookup
        L, G = lk.lanes, lk.groups
        T = self._config.timesteps
        gwake = [Signal(range(T + 1), init=T, name=f"group_wake{g}") for g in range(G)]
        opt = Signal.like(self.wake)
        new = Signal(range(T + 1))
        group_armed = Cat(*(c3[f"armed_after{l}"] for l in range(L))).any()
        m.d.comb += [opt.eq(wake_opts[beat_min]),
                     new.eq(Mux(~group_armed | (opt >= T), T, opt))]
        for g in range(G):
            with m.If(c3["group"] == g):
                with m.If(c3_clear):
                    m.d.sync += gwake[g].eq(T)
                with m.Elif(c3_state):
                    m.d.sync += gwake[g].eq(new)
            m.d.comb += lk.group_en[g].eq(gwake[g] <= self.step)
        wake = min_tree(m, gwake, "wake_min")
        m.d.comb += [self.wake.eq(wake), self.quiet_until.eq(wake - 1)]

    def _weight_terms(self, m, l, w, acc_w, z):
        """Lane ``l``'s ``w * z`` and ``acc_w + w`` (signals named ``wz{l}``, ``acc_w_new{l}``)."""
        wz = Signal(signed(WEIGHT_BITS + self._widths["z_bits"] + 1), name=f"wz{l}")
        acc_w_new = Signal(signed(self._widths["acc_w_bits"]), name=f"acc_w_new{l}")
        m.d.comb += [wz.eq(w * z), acc_w_new.eq(acc_w + w)]
        return {f"wz{l}": wz, f"acc_w_new{l}": acc_w_new}

    def _quiet_cut(self, m, c3, cut, ops, until_opts, wake_opts, delta):
        """The quiet horizon with a register stage after the lanes' quiet tests (pipeline 4).

        The quiet class as a thermometer code, ``ge[j]`` = class >= j, so that the minimum
        over the lanes and over the pass is an AND. This stage: the tests, the AND over the
        lanes and the change of the armed count; the next: the pass's minimum and the
        horizon it selects. Returns (state, clear, last, until, wake, armed change) of the
        next stage.
        """
        L = self._lookup.lanes
        factors = self._quiet_factors
        F = len(factors)
        q = {"valid": c3["valid"], "op": c3["op"], "first": c3["first"], "last": c3["last"]}
        lane_ge = []
        for l in range(L):
            pz, acc = c3[f"pz{l}"], c3[f"acc_wz_new{l}"]
            tests = []
            for i, (n, d) in enumerate(factors):
                t = Signal(name=f"quiet_test{l}_{i}")
                npz = sum(pz << b for b in range(n.bit_length()) if n >> b & 1)
                m.d.comb += t.eq((acc << d) > npz)
                tests.append(t)
            # Class >= j: not armed (class F), or the test of some factor i >= j - 1 holds
            # (the last test that holds sets the class).
            ge = Signal(F, name=f"quiet_ge{l}")
            for j in range(1, F + 1):
                m.d.comb += ge[j - 1].eq(~c3[f"armed_after{l}"] | Cat(*tests[j - 1:]).any())
            lane_ge.append(ge)
        beat_ge = Signal(F)
        m.d.comb += beat_ge.eq(lane_ge[0] if L == 1 else
                               Cat(*(Cat(*(g[j] for g in lane_ge)).all() for j in range(F))))
        q["ge"] = beat_ge
        q["delta"] = Signal(range(-L, L + 1))
        m.d.comb += q["delta"].eq(delta)
        c4 = cut(True, "p4", q)
        c4_state = ops(c4, "ACCUMULATE", "SCAN")
        pass_ge = Signal(F)
        cur_ge = Signal(F)
        m.d.comb += cur_ge.eq(c4["ge"] & (pass_ge | c4["first"].replicate(F)))
        with m.If(c4_state):
            m.d.sync += pass_ge.eq(cur_ge)
        until, wake = until_opts[0], wake_opts[0]
        for j in range(1, F + 1):
            until = Mux(cur_ge[j - 1], until_opts[j], until)
            wake = Mux(cur_ge[j - 1], wake_opts[j], wake)
        return c4_state, ops(c4, "CLEAR"), c4["last"], until, wake, c4["delta"]

    def _elaborate_learning(self, m, st, last_lanes):
        lk = self._lookup
        L, G = lk.lanes, lk.groups
        is_last_group = lk.beat_group == G - 1
        m.submodules.deltas = dmem = memory.Memory(data=self.delta_data)
        dwp = dmem.write_port(granularity=1)
        drp = dmem.read_port()
        m.d.comb += [drp.addr.eq(lk.issue_group), drp.en.eq(lk.issue_valid)]
        m.d.comb += [
            dwp.addr.eq(self.delta_w_addr // L if L > 1 else self.delta_w_addr),
            dwp.data.eq(self.delta_w_data.replicate(L)),
        ]
        with m.If(self.delta_w_en):
            m.d.comb += dwp.en.eq(1 << (self.delta_w_addr % L if L > 1 else 0))

        op = lk.beat_op
        new_w = Signal.like(lk.beat_weights)
        ww_en = Signal(L)
        lfsr = self.lfsr_in
        for l in range(L):
            lane_ok = Const(1) if l < last_lanes else ~is_last_group
            d = drp.data[l]
            w = lk.beat_weights[l]
            s = st[l]
            m.d.comb += [
                self.votes_p[l].eq(lane_ok & (((w > 0) & (d > 0)) | ((w < 0) & (d < 0)))),
                self.votes_n[l].eq(lane_ok & (((w > 0) & (d < 0)) | ((w < 0) & (d > 0)))),
            ]
            # sign_backprop.apply_update: causal when the destination did not fire, or fired
            # strictly after the source (tag = the source's step).
            causal = Signal(name=f"causal{l}")
            m.d.comb += causal.eq(~s.fired | (lk.beat_tag < s.step))
            step = Signal(signed(WEIGHT_BITS + 8), name=f"step{l}")
            m.d.comb += step.eq(d << self.lr_shift)
            total = Signal(signed(WEIGHT_BITS + 9), name=f"total{l}")
            m.d.comb += total.eq(w + step)
            with m.If(total > 127):
                m.d.comb += new_w[l].eq(127)
            with m.Elif(total < -128):
                m.d.comb += new_w[l].eq(-128)
            with m.Else():
                m.d.comb += new_w[l].eq(total)
            # Stochastic rounding (sign_backprop.UpdateLFSR): a candidate write draws
            # ``lfsr_k`` steps of the update LFSR, lane after lane, and is carried out when
            # the ``lfsr_k`` new bits are all 0; ``lfsr_k = 0`` writes every candidate.
            cand = Signal(name=f"candidate{l}")
            m.d.comb += cand.eq(lane_ok & (d != 0) & causal)
            adv = [lfsr]
            for j in range(MAX_LFSR_K):
                s_prev = adv[-1]
                s_next = Signal(16, name=f"lfsr_lane{l}_adv{j + 1}")    # a signal: no
                m.d.comb += s_next.eq(Cat(s_prev[1:16],                 # expression blow-up
                                          s_prev[0] ^ s_prev[2] ^ s_prev[3] ^ s_prev[5]))
                adv.append(s_next)
            drawn = Signal(16, name=f"lfsr_drawn{l}")
            gate = Signal(name=f"lfsr_gate{l}")
            m.d.comb += [drawn.eq(Array(adv)[self.lfsr_k]),
                         gate.eq(Array([Const(1)] + [adv[j][16 - j:] == 0
                                                     for j in range(1, MAX_LFSR_K + 1)])[self.lfsr_k])]
            nxt = Signal(16, name=f"lfsr_lane{l}")
            m.d.comb += nxt.eq(Mux(cand, drawn, lfsr))
            lfsr = nxt
            m.d.comb += ww_en[l].eq(cand & gate)
        learn_beat = lk.beat_valid & (op == RowOp.LEARN)
        m.d.comb += [self.lfsr_out.eq(lfsr), self.lfsr_used.eq(learn_beat & (self.lfsr_k != 0))]
        with m.If(learn_beat):
            m.d.comb += [lk.ww_en.eq(ww_en), lk.ww_data.eq(new_w)]
        m.d.comb += [
            self.votes_valid.eq(lk.beat_valid & (op == RowOp.DELTA)),
            self.votes_group.eq(lk.beat_group),
            self.votes_last.eq(lk.beat_last),
        ]
