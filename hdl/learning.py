"""The hidden-delta vote of on-chip sign backprop: two popcounts and a comparison per neuron.

A ``DELTA`` pass over the row of hidden neuron ``h`` in the layer above makes that layer
emit, group by group, one "earlier" and one "later" vote bit per destination ``o``
(:class:`~spikegate.hdl.ttfs_layer.TTFSLayer`: ``votes.p`` = ``w_ho > 0 and delta_o > 0 or
w_ho < 0 and delta_o < 0``, ``votes.n`` the opposite pairings). :class:`DeltaVoter` gathers a
row's bits into two masks, counts them with two :class:`~spikegate.hdl.popcount.Popcount`
blocks and compares: ``delta_h = sign(P_h - N_h)``, as
:func:`spikegate.golden.sign_backprop.hidden_deltas`.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from spikegate.golden.sign_backprop import LFSR_BITS, LFSR_TAPS, MAX_LFSR_K
from spikegate.golden.fixed import WEIGHT_BITS
from .arith import lane_split
from .params import checking
from .popcount import Popcount
from .saturate import saturate
from .signatures import Votes

__all__ = ["DeltaVoter", "sign_update_lanes"]


class DeltaVoter(wiring.Component):
    """Counts the votes of one row per ``votes.last`` beat and emits the row's delta.

    Parameters
    ----------
    n : int
        Destinations of the layer above (mask width, 1 to 1024).
    lanes : int
        Vote bits per beat (that layer's lanes).

    Members
    -------
    votes : In(Votes)
        The layer's vote beats (:class:`~spikegate.hdl.signatures.Votes`, see the module
        docstring).
    delta_valid, delta : Out
        One beat per row, in row order: ``delta`` in {-1, 0, +1}.
    p_count, n_count : Out
        The two popcounts of that row (for tests and statistics).

    Latency: ``delta`` follows a row's last beat by the popcount latency plus one cycle;
    rows may follow each other back to back (one row per ``ceil(n / lanes)`` cycles).
    """

    def __init__(self, n, lanes):
        with checking(self):
            if not isinstance(n, int) or not 1 <= n <= 1024:
                raise ValueError(f"n must be an integer from 1 to 1024, not {n!r}")
            if not isinstance(lanes, int) or not 1 <= lanes <= 16:
                raise ValueError(f"lanes must be an integer from 1 to 16, not {lanes!r}")
        self._n, self._lanes = n, lanes
        self._pc_p, self._pc_n = Popcount(n), Popcount(n)
        super().__init__({
            "votes": In(Votes(n, lanes)),
            "delta_valid": Out(1),
            "delta": Out(signed(2)),
            "p_count": Out(self._pc_p.count_width),
            "n_count": Out(self._pc_n.count_width),
        })

    @property
    def latency(self):
        """Cycles from a row's last vote beat to its delta."""
        return self._pc_p.latency + 1

    def elaborate(self, platform):
        m = Module()
        n, L = self._n, self._lanes
        m.submodules.pc_p = pc_p = self._pc_p
        m.submodules.pc_n = pc_n = self._pc_n
        mask_p = Signal(n)
        mask_n = Signal(n)
        # The row's mask with this beat's bits in place (the beat's lanes at group * lanes).
        row_p = Signal(n + L)
        row_n = Signal(n + L)
        shift = self.votes.group * L
        m.d.comb += [
            row_p.eq(mask_p | (self.votes.p << shift)),
            row_n.eq(mask_n | (self.votes.n << shift)),
        ]
        with m.If(self.votes.valid):
            with m.If(self.votes.last):
                m.d.sync += [mask_p.eq(0), mask_n.eq(0)]
            with m.Else():
                m.d.sync += [mask_p.eq(row_p[:n]), mask_n.eq(row_n[:n])]
        m.d.comb += [
            pc_p.i_stream.payload.eq(row_p[:n]),
            pc_n.i_stream.payload.eq(row_n[:n]),
            pc_p.i_stream.valid.eq(self.votes.valid & self.votes.last),
            pc_n.i_stream.valid.eq(self.votes.valid & self.votes.last),
            pc_p.o_stream.ready.eq(1),
            pc_n.o_stream.ready.eq(1),
        ]
        m.d.sync += [
            self.delta_valid.eq(pc_p.o_stream.valid),
            self.p_count.eq(pc_p.o_stream.payload),
            self.n_count.eq(pc_n.o_stream.payload),
        ]
        with m.If(pc_p.o_stream.payload > pc_n.o_stream.payload):
            m.d.sync += self.delta.eq(1)
        with m.Elif(pc_p.o_stream.payload < pc_n.o_stream.payload):
            m.d.sync += self.delta.eq(-1)
        with m.Else():
            m.d.sync += self.delta.eq(0)
        return m


def sign_update_lanes(layer, m, st):
    """The learning lanes of a :class:`~spikegate.hdl.ttfs_layer.TTFSLayer` (its ``DELTA``
    votes and ``LEARN`` read-modify-write, see its members), on the beats of its weight
    lookup; ``st`` is the neuron state read with the beat.

    Per lane: the vote bits of ``DELTA``; for ``LEARN`` the causal test
    (:func:`~spikegate.golden.sign_backprop.causal_mask`), the step ``delta << lr_shift``
    added with saturation to the weight range (:func:`~spikegate.golden.sign_backprop.
    apply_update`), and the stochastic-rounding gate of the update LFSR
    (:class:`~spikegate.golden.sign_backprop.UpdateLFSR`: taps
    :data:`~spikegate.golden.sign_backprop.LFSR_TAPS`), drawn lane after lane.
    """
    from .ttfs_layer import TTFSOp
    lk = layer.lookup
    beat = lk.beat
    L, G = lk.lanes, lk.groups
    last_lanes = lk.n_dst - (G - 1) * L
    is_last_group = beat.group == G - 1
    m.submodules.deltas = dmem = memory.Memory(data=layer.delta_data)
    dwp = dmem.write_port(granularity=1)
    drp = dmem.read_port()
    m.d.comb += [drp.addr.eq(beat.issue_group), drp.en.eq(beat.issue_valid)]
    d_group, d_lane = lane_split(layer.learn.delta_w_addr, L)
    m.d.comb += [dwp.addr.eq(d_group), dwp.data.eq(layer.learn.delta_w_data.replicate(L))]
    with m.If(layer.learn.delta_w_en):
        m.d.comb += dwp.en.eq(1 << d_lane)

    new_w = Signal.like(beat.weights)
    ww_en = Signal(L)
    lfsr = layer.learn.lfsr_in
    for l in range(L):
        lane_ok = Const(1) if l < last_lanes else ~is_last_group
        d = drp.data[l]
        w = beat.weights[l]
        s = st[l]
        m.d.comb += [
            layer.learn.votes.p[l].eq(lane_ok & (((w > 0) & (d > 0)) | ((w < 0) & (d < 0)))),
            layer.learn.votes.n[l].eq(lane_ok & (((w > 0) & (d < 0)) | ((w < 0) & (d > 0)))),
        ]
        # sign_backprop.apply_update: causal when the destination did not fire, or fired
        # strictly after the source (tag = the source's step).
        causal = Signal(name=f"causal{l}")
        m.d.comb += causal.eq(~s.fired | (beat.tag < s.step))
        step = Signal(signed(WEIGHT_BITS + 8), name=f"step{l}")
        m.d.comb += step.eq(d << layer.learn.lr_shift)
        total = Signal(signed(WEIGHT_BITS + 9), name=f"total{l}")
        m.d.comb += total.eq(w + step)
        m.d.comb += new_w[l].eq(saturate(total, signed(WEIGHT_BITS)))
        # Stochastic rounding: a candidate write draws ``lfsr_k`` steps of the update LFSR,
        # lane after lane, and is carried out when the ``lfsr_k`` new bits are all 0;
        # ``lfsr_k = 0`` writes every candidate.
        cand = Signal(name=f"candidate{l}")
        m.d.comb += cand.eq(lane_ok & (d != 0) & causal)
        adv = [lfsr]
        for j in range(MAX_LFSR_K):
            s_prev = adv[-1]
            s_next = Signal(LFSR_BITS, name=f"lfsr_lane{l}_adv{j + 1}")   # a signal: no
            feedback = s_prev[LFSR_TAPS[0]]                                # expression blow-up
            for tap in LFSR_TAPS[1:]:
                feedback = feedback ^ s_prev[tap]
            m.d.comb += s_next.eq(Cat(s_prev[1:LFSR_BITS], feedback))
            adv.append(s_next)
        drawn = Signal(LFSR_BITS, name=f"lfsr_drawn{l}")
        gate = Signal(name=f"lfsr_gate{l}")
        m.d.comb += [drawn.eq(Array(adv)[layer.learn.lfsr_k]),
                     gate.eq(Array([Const(1)] + [adv[j][LFSR_BITS - j:] == 0
                                                 for j in range(1, MAX_LFSR_K + 1)])[layer.learn.lfsr_k])]
        nxt = Signal(LFSR_BITS, name=f"lfsr_lane{l}")
        m.d.comb += nxt.eq(Mux(cand, drawn, lfsr))
        lfsr = nxt
        m.d.comb += ww_en[l].eq(cand & gate)
    learn_beat = beat.valid & (beat.op == TTFSOp.LEARN)
    m.d.comb += [layer.learn.lfsr_out.eq(lfsr), layer.learn.lfsr_used.eq(learn_beat & (layer.learn.lfsr_k != 0))]
    with m.If(learn_beat):
        m.d.comb += [beat.ww_en.eq(ww_en), beat.ww_data.eq(new_w)]
    m.d.comb += [
        layer.learn.votes.valid.eq(beat.valid & (beat.op == TTFSOp.DELTA)),
        layer.learn.votes.group.eq(beat.group),
        layer.learn.votes.last.eq(beat.last),
    ]
