"""The hidden-delta vote of on-chip sign backprop: two popcounts and a comparison per neuron.

A ``DELTA`` pass over the row of hidden neuron ``h`` in the layer above makes that layer
emit, group by group, one "earlier" and one "later" vote bit per destination ``o``
(:class:`~spikegate.hdl.ttfs_layer.TTFSLayer`: ``votes_p`` = ``w_ho > 0 and delta_o > 0 or
w_ho < 0 and delta_o < 0``, ``votes_n`` the opposite pairings). :class:`DeltaVoter` gathers a
row's bits into two masks, counts them with two :class:`~spikegate.hdl.popcount.Popcount`
blocks and compares: ``delta_h = sign(P_h - N_h)``, as
:func:`spikegate.golden.sign_backprop.hidden_deltas`.
"""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .layouts import index_bits
from .params import checking
from .popcount import Popcount

__all__ = ["DeltaVoter"]


class DeltaVoter(wiring.Component):
    """Counts the votes of one row per ``votes_last`` beat and emits the row's delta.

    Parameters
    ----------
    n : int
        Destinations of the layer above (mask width, 1 to 1024).
    lanes : int
        Vote bits per beat (that layer's lanes).

    Members
    -------
    votes_valid, votes_group, votes_last, votes_p, votes_n : In
        The layer's vote beats (see the module docstring).
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
        groups = -(-n // lanes)
        self._pc_p, self._pc_n = Popcount(n), Popcount(n)
        super().__init__({
            "votes_valid": In(1),
            "votes_group": In(index_bits(groups)),
            "votes_last": In(1),
            "votes_p": In(lanes),
            "votes_n": In(lanes),
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
        shift = self.votes_group * L
        m.d.comb += [
            row_p.eq(mask_p | (self.votes_p << shift)),
            row_n.eq(mask_n | (self.votes_n << shift)),
        ]
        with m.If(self.votes_valid):
            with m.If(self.votes_last):
                m.d.sync += [mask_p.eq(0), mask_n.eq(0)]
            with m.Else():
                m.d.sync += [mask_p.eq(row_p[:n]), mask_n.eq(row_n[:n])]
        m.d.comb += [
            pc_p.i_stream.payload.eq(row_p[:n]),
            pc_n.i_stream.payload.eq(row_n[:n]),
            pc_p.i_stream.valid.eq(self.votes_valid & self.votes_last),
            pc_n.i_stream.valid.eq(self.votes_valid & self.votes_last),
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
