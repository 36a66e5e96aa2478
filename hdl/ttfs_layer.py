"""One TTFS layer: the shared weight lookup plus the TTFS neuron arithmetic.

The arithmetic is that of :mod:`spikegate.golden.ttfs_discrete`, lane by lane:
``ttfs_fires`` (``z_k * (acc_w - theta) >= acc_wz`` for a neuron that has not fired) and
``ttfs_accumulate`` (``acc_w += w``, ``acc_wz += w * z_k``), with the widths of
``ttfs_widths``. The state of the destination neurons lives in one memory of
``ceil(n_dst / lanes)`` words, each holding the ``lanes`` neurons of one lane group.
"""

import numpy as np

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.lib import stream

from spikegate.golden.ttfs_discrete import (QUIET_SHIFTS, THETA_BITS, THETA_MAX, DiscreteConfig,
                                            WEIGHT_BITS, quiet_horizons, ttfs_widths, z_table)
from .layouts import RESULT_COUNT_BITS, FireMaskLayout, RowCommandLayout, RowOp, index_bits
from .lookup import WeightLookup
from .params import checking

__all__ = ["TTFSLayer", "neuron_state_layout"]


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
        No neuron can fire without new input up to this step, as the last pass found
        (:func:`~spikegate.golden.ttfs_discrete.quiet_horizons`): every armed lane had
        ``acc_wz > 2**c * z_k * (acc_w - theta)`` after it. Scans before then are skipped;
        this changes cycles only, never a result.
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

    A pass takes ``ceil(n_dst / lanes)`` cycles plus 2 of latency; passes overlap, so
    back-to-back rows cost ``ceil(n_dst / lanes)`` cycles each.
    """

    def __init__(self, n_src, n_dst, lanes, theta, config=None, init=None, *, learning=False):
        config = config or DiscreteConfig()
        with checking(self):
            if not isinstance(config, DiscreteConfig):
                raise TypeError(f"config must be a DiscreteConfig, not {config!r}")
            if not isinstance(theta, (int, np.integer)) or not 1 <= theta <= THETA_MAX:
                raise ValueError(f"theta must be an integer from 1 to {THETA_MAX}, not {theta!r}")
        self._learning = bool(learning)
        self._lookup = WeightLookup(n_src, n_dst, lanes, init, tag_bits=config.step_bits)
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

    def elaborate(self, platform):
        m = Module()
        lk = self._lookup
        L, G, N = lk.lanes, lk.groups, lk.n_dst
        cfg = self._config
        m.submodules.lookup = lk
        wiring.connect(m, wiring.flipped(self.cmd), lk.cmd)
        m.d.comb += [
            lk.clear_count.eq(self.clear_stats),
            lk.w_en.eq(self.w_en), lk.w_src.eq(self.w_src),
            lk.w_dst.eq(self.w_dst), lk.w_data.eq(self.w_data),
            lk.rb_en.eq(self.rb_en), lk.rb_src.eq(self.rb_src), lk.rb_dst.eq(self.rb_dst),
            self.rb_data.eq(lk.rb_data),
            self.lookups.eq(lk.lookups),
            self.busy.eq(lk.busy),
        ]

        m.submodules.state = mem = memory.Memory(data=self.state_data)
        wp = mem.write_port()
        rp = mem.read_port(transparent_for=(wp,))
        tp = mem.read_port()
        m.d.comb += [rp.addr.eq(lk.issue_group), rp.en.eq(lk.issue_valid)]

        zs = z_table(cfg)
        z = Signal(self._widths["z_bits"])
        m.d.sync += z.eq(Array(Const(int(v), self._widths["z_bits"]) for v in zs)[self.step])
        hz = quiet_horizons(cfg)
        horizon = [Signal(range(cfg.timesteps + 1), name=f"horizon{c}") for c in QUIET_SHIFTS]
        for i, h in enumerate(horizon):
            m.d.sync += h.eq(Array(Const(int(v), h.shape()) for v in hz[i])[self.step])
        lane_class = []

        theta = Signal(THETA_BITS, init=self._theta)
        with m.If(self.theta_w_en):
            m.d.sync += theta.eq(self.theta_w_data)
        last_lanes = N - (G - 1) * L
        is_last_group = Signal()
        m.d.comb += is_last_group.eq(lk.beat_group == G - 1)
        op = lk.beat_op

        new = Signal(data.ArrayLayout(self._state_layout, L))
        fire_mask = Signal(L)
        armed_before = Signal(L)
        armed_after = Signal(L)
        for l in range(L):
            st = rp.data[l]
            nw = new[l]
            w = lk.beat_weights[l]
            lane_ok = Const(1) if l < last_lanes else ~is_last_group
            diff = Signal(signed(self._widths["diff_bits"]), name=f"diff{l}")
            prod = Signal(signed(self._widths["product_bits"]), name=f"prod{l}")
            wz = Signal(signed(WEIGHT_BITS + self._widths["z_bits"] + 1), name=f"wz{l}")
            fires = Signal(name=f"fires{l}")
            m.d.comb += [
                diff.eq(st.acc_w - theta),
                prod.eq(z * diff),
                wz.eq(w * z),
                fires.eq(lane_ok & ~st.fired & ((op == RowOp.ACCUMULATE) | (op == RowOp.SCAN)) &
                         (prod >= st.acc_wz)),
                fire_mask[l].eq(fires),
                armed_before[l].eq(lane_ok & ~st.fired & (st.acc_w > theta)),
            ]
            with m.If(op == RowOp.CLEAR):
                m.d.comb += [nw.acc_w.eq(0), nw.acc_wz.eq(0), nw.fired.eq(0),
                             nw.step.eq(cfg.timesteps)]
            with m.Else():
                m.d.comb += [
                    nw.acc_w.eq(st.acc_w + w),
                    nw.acc_wz.eq(st.acc_wz + wz),
                    nw.fired.eq(st.fired | fires),
                    nw.step.eq(Mux(fires, self.step, st.step)),
                ]
            m.d.comb += armed_after[l].eq(lane_ok & ~nw.fired & (nw.acc_w > theta) & (op != RowOp.CLEAR))
            # How long this lane stays quiet without input: z * (acc_w' - theta) after the
            # beat is prod + wz (no multiplier); class c when acc_wz' > 2**c times it.
            pz = Signal(signed(self._widths["product_bits"] + 2), name=f"pz{l}")
            cls = Signal(range(len(QUIET_SHIFTS) + 1), name=f"quiet_class{l}")
            m.d.comb += pz.eq(prod + wz)
            m.d.comb += cls.eq(len(QUIET_SHIFTS))
            with m.If(armed_after[l]):
                m.d.comb += cls.eq(0)
                for i, c in enumerate(QUIET_SHIFTS):
                    with m.If(nw.acc_wz > (pz << c)):
                        m.d.comb += cls.eq(i + 1)
            lane_class.append(cls)

        m.d.comb += [
            wp.addr.eq(lk.beat_group),
            wp.data.eq(new),
            wp.en.eq(lk.beat_valid & ((op == RowOp.ACCUMULATE) | (op == RowOp.SCAN) |
                                      (op == RowOp.CLEAR))),
        ]
        if self._learning:
            self._elaborate_learning(m, rp, is_last_group, last_lanes)

        # Fire masks for the next layer, the step's first spike, and the counters.
        m.d.comb += [
            self.fire_valid.eq(lk.beat_valid & (fire_mask != 0)),
            self.fire.group.eq(lk.beat_group),
            self.fire.mask.eq(fire_mask),
        ]
        first_lane = Signal(range(L))
        for l in reversed(range(L)):
            with m.If(fire_mask[l]):
                m.d.comb += first_lane.eq(l)
        with m.If(self.step_start):
            m.d.sync += self.step_fired.eq(0)
        with m.Elif(self.fire_valid & ~self.step_fired):
            m.d.sync += [self.step_fired.eq(1),
                         self.step_first.eq(lk.beat_group * L + first_lane)]

        n_fires = Signal(range(L + 1))
        m.d.comb += n_fires.eq(sum(fire_mask[l] for l in range(L)))
        with m.If(self.clear_stats):
            m.d.sync += self.spikes.eq(0)
        with m.Elif(lk.beat_valid):
            m.d.sync += self.spikes.eq(self.spikes + n_fires)

        with m.If(self.clear_stats):
            m.d.sync += self.scan_cycles.eq(0)
        with m.Elif(lk.beat_valid & (op == RowOp.SCAN)):
            m.d.sync += self.scan_cycles.eq(self.scan_cycles + 1)

        # The smallest quiet class over the pass; at its last beat, the horizon it buys.
        beat_min = lane_class[0]
        for cls in lane_class[1:]:
            beat_min = Mux(cls < beat_min, cls, beat_min)     # a chain, not a loop
        pass_min = Signal(range(len(QUIET_SHIFTS) + 1))
        cur_min = Signal.like(pass_min)
        m.d.comb += cur_min.eq(Mux(lk.beat_first | (beat_min < pass_min), beat_min, pass_min))
        state_op = (op == RowOp.ACCUMULATE) | (op == RowOp.SCAN)
        with m.If(lk.beat_valid & state_op):
            m.d.sync += pass_min.eq(cur_min)
            with m.If(lk.beat_last):
                until = self.step
                for i in range(len(QUIET_SHIFTS)):
                    until = Mux(cur_min == i + 1, self.step + horizon[i], until)
                m.d.sync += self.quiet_until.eq(until)
        with m.Elif(lk.beat_valid & (op == RowOp.CLEAR)):
            m.d.sync += self.quiet_until.eq(0)

        n_before = sum(armed_before[l] for l in range(L))
        n_after = sum(armed_after[l] for l in range(L))
        with m.If(lk.beat_valid & (op == RowOp.CLEAR)):
            m.d.sync += self.armed.eq(0)
        with m.Elif(lk.beat_valid & ((op == RowOp.ACCUMULATE) | (op == RowOp.SCAN))):
            m.d.sync += self.armed.eq(self.armed + n_after - n_before)

        # Trace port.
        trace_lane = Signal(range(L))
        m.d.comb += [tp.addr.eq(self.trace_addr // L if L > 1 else self.trace_addr)]
        m.d.sync += trace_lane.eq(self.trace_addr % L if L > 1 else 0)
        m.d.comb += self.trace_step.eq(Array(tp.data[l].step for l in range(L))[trace_lane])
        return m

    def _elaborate_learning(self, m, rp, is_last_group, last_lanes):
        lk = self._lookup
        L, T = lk.lanes, self._config.timesteps
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
        for l in range(L):
            lane_ok = Const(1) if l < last_lanes else ~is_last_group
            d = drp.data[l]
            w = lk.beat_weights[l]
            st = rp.data[l]
            m.d.comb += [
                self.votes_p[l].eq(lane_ok & (((w > 0) & (d > 0)) | ((w < 0) & (d < 0)))),
                self.votes_n[l].eq(lane_ok & (((w > 0) & (d < 0)) | ((w < 0) & (d > 0)))),
            ]
            # sign_backprop.apply_update: causal when the destination did not fire, or fired
            # strictly after the source (tag = the source's step).
            causal = Signal(name=f"causal{l}")
            m.d.comb += causal.eq(~st.fired | (lk.beat_tag < st.step))
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
            m.d.comb += ww_en[l].eq(lane_ok & (d != 0) & causal)
        with m.If(lk.beat_valid & (op == RowOp.LEARN)):
            m.d.comb += [lk.ww_en.eq(ww_en), lk.ww_data.eq(new_w)]
        m.d.comb += [
            self.votes_valid.eq(lk.beat_valid & (op == RowOp.DELTA)),
            self.votes_group.eq(lk.beat_group),
            self.votes_last.eq(lk.beat_last),
        ]
