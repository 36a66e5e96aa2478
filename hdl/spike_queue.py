"""A queue of spike events (or any stream payload): a stream in, the same stream out.

It buffers the spikes of an image so that a producer (the host link, a layer) never waits
for the classifier to finish a timestep. Storage is block RAM (``SyncFIFOBuffered``).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import checking

__all__ = ["SpikeQueue", "StreamRegister"]


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


class StreamRegister(wiring.Component):
    """A two-entry skid buffer: the same stream out, every output and ``i_stream.ready``
    driven by registers, so no combinational path crosses it in either direction.

    Parameters
    ----------
    layout : data.Layout
        The payload.

    Members
    -------
    i_stream : In(stream)
    o_stream : Out(stream)

    Latency one cycle; throughput one payload per cycle, with or without back-pressure.
    """

    def __init__(self, layout):
        with checking(self):
            if not isinstance(layout, data.Layout):
                raise TypeError(f"layout must be a data.Layout, not {layout!r}")
        self._layout = layout
        super().__init__({
            "i_stream": In(stream.Signature(layout)),
            "o_stream": Out(stream.Signature(layout)),
        })

    def elaborate(self, platform):
        m = Module()
        skid = Signal(self._layout)
        skid_valid = Signal()
        m.d.comb += self.i_stream.ready.eq(~skid_valid)
        with m.If(self.o_stream.ready | ~self.o_stream.valid):
            # The output register is free (or freed this cycle): refill it.
            with m.If(skid_valid):
                m.d.sync += [self.o_stream.payload.eq(skid), self.o_stream.valid.eq(1),
                             skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o_stream.payload.eq(self.i_stream.payload),
                             self.o_stream.valid.eq(self.i_stream.valid)]
        with m.Elif(self.i_stream.valid & ~skid_valid):
            # Output stalled: keep the incoming payload aside.
            m.d.sync += [skid.eq(self.i_stream.payload), skid_valid.eq(1)]
        return m
