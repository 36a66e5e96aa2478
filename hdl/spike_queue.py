"""A queue of spike events (or any stream payload): a stream in, the same stream out.

It buffers the spikes of an image so that a producer (the host link, a layer) never waits
for the classifier to finish a timestep. Storage is block RAM (``SyncFIFOBuffered``).
"""

from amaranth.hdl import Module
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import checking

__all__ = ["SpikeQueue"]


class SpikeQueue(wiring.Component):
    """A FIFO between two streams of ``layout`` payloads.

    Parameters
    ----------
    layout : data.Layout
        The payload, e.g. :class:`~spikegate.hdl.layouts.SpikeEventLayout`.
    depth : int
        Entries (at least 2).

    Members
    -------
    i_stream : In(stream)
    o_stream : Out(stream)
    level : Out
        Entries held.

    Latency: a payload written in cycle ``t`` can leave in cycle ``t + 2``; throughput one
    payload per cycle in and out.
    """

    def __init__(self, layout, depth):
        with checking(self):
            if not isinstance(layout, data.Layout):
                raise TypeError(f"layout must be a data.Layout, not {layout!r}")
            if not isinstance(depth, int) or depth < 2:
                raise ValueError(f"depth must be an integer >= 2, not {depth!r}")
        self._layout, self._depth = layout, depth
        super().__init__({
            "i_stream": In(stream.Signature(layout)),
            "o_stream": Out(stream.Signature(layout)),
            "level": Out(range(depth + 1)),
        })

    @property
    def depth(self):
        return self._depth

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = f = fifo.SyncFIFOBuffered(width=self._layout.size, depth=self._depth)
        m.d.comb += [
            f.w_data.eq(self.i_stream.payload),
            f.w_en.eq(self.i_stream.valid),
            self.i_stream.ready.eq(f.w_rdy),
            self.o_stream.payload.eq(f.r_data),
            self.o_stream.valid.eq(f.r_rdy),
            f.r_en.eq(self.o_stream.ready),
            self.level.eq(f.level),
        ]
        return m
