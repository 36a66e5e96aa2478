"""The PD encoder and sigma-delta quantizer of a layer's inputs, one input per cycle.

Each frame's activations arrive as a stream, input 0 first; for input ``i`` the encoder reads
its state (``x_prev``, ``phi``) from a memory, computes :func:`~spikegate.hdl.pd_arith.encode`
and :func:`~spikegate.hdl.pd_arith.quantize` (the steps of
:mod:`spikegate.golden.sigma_delta_fixed`) and writes the state back; it emits the event
``(i, s)`` only when ``s != 0``, and marks the frame's last event (a marker with ``s = 0`` when
the last input sends nothing).
"""

import numpy as np

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from spikegate.golden.sigma_delta_fixed import SDFixedFormat
from . import pd_arith
from .layouts import PDActivationLayout, PDEventLayout
from .params import checking

__all__ = ["PDEncoder", "encoder_state_layout"]


def encoder_state_layout(fmt):
    """One input's coder state: ``x_prev`` (``X_W`` bits) and ``phi`` (``PHI_W`` bits)."""
    return data.StructLayout({"x_prev": signed(fmt.x_width), "phi": signed(fmt.phi_width)})


class PDEncoder(wiring.Component):
    """The PD encoder-quantizer of ``n_src`` inputs with the fixed-point format ``fmt``,
    time-multiplexed: one input per cycle, its state in a memory.

    Parameters
    ----------
    n_src : int
        Inputs; a frame is ``n_src`` beats of ``i_stream``.
    fmt : SDFixedFormat
        Widths and gains (:mod:`spikegate.golden.sigma_delta_fixed`).

    Members
    -------
    i_stream : In(stream)
        :class:`~spikegate.hdl.layouts.PDActivationLayout` (``x_width``): the frame's
        activations, input 0 first, frame after frame.
    o_stream : Out(stream)
        :class:`~spikegate.hdl.layouts.PDEventLayout`: ``(index, count)`` for every input
        whose ``count`` is not 0, in input order; ``end`` on the frame's last event.
    clearing : Out
        The state memory is being zeroed (after reset: ``n_src`` cycles); no input is taken.
    busy : Out
        Clearing, or an input is being encoded.

    The state memory (:attr:`state_data`, ``x_prev`` and ``phi`` per input) starts at 0 and is
    zeroed again by every reset. Latency: an input's event is valid the cycle after the input's
    transfer; throughput one input per cycle (back-pressure from ``o_stream`` stalls it).
    """

    def __init__(self, n_src, fmt):
        with checking(self):
            if not isinstance(n_src, (int, np.integer)) or n_src < 1:
                raise TypeError(f"n_src must be a positive integer, not {n_src!r}")
            if not isinstance(fmt, SDFixedFormat):
                raise TypeError(f"fmt must be an SDFixedFormat, not {fmt!r}")
        self._n_src, self._fmt = int(n_src), fmt
        self.state_data = memory.MemoryData(shape=encoder_state_layout(fmt), depth=self._n_src,
                                            init=[])
        super().__init__({
            "i_stream": In(stream.Signature(PDActivationLayout(fmt.x_width))),
            "o_stream": Out(stream.Signature(PDEventLayout(self._n_src, fmt.spike_width))),
            "clearing": Out(1, init=1),
            "busy": Out(1),
        })

    @property
    def n_src(self):
        return self._n_src

    @property
    def fmt(self):
        return self._fmt

    def elaborate(self, platform):
        m = Module()
        n, fmt = self._n_src, self._fmt
        m.submodules.state = mem = memory.Memory(data=self.state_data)
        wp = mem.write_port()
        rp = mem.read_port(transparent_for=(wp,))

        clear_addr = Signal(range(n))
        idx = Signal(range(n))
        b_valid = Signal()
        b_idx = Signal(range(n))
        b_x = Signal(signed(fmt.x_width))

        # Stage B: the input read with its state one cycle after its transfer.
        a = pd_arith.encode(m, b_x, rp.data.x_prev, fmt)
        s, phi_new = pd_arith.quantize(m, a, rp.data.phi, fmt)
        b_end = Signal()
        emit = Signal()
        b_done = Signal()
        m.d.comb += [
            b_end.eq(b_idx == n - 1),
            emit.eq(b_valid & ((s != 0) | b_end)),
            self.o_stream.valid.eq(emit),
            self.o_stream.payload.index.eq(b_idx),
            self.o_stream.payload.count.eq(s),
            self.o_stream.payload.end.eq(b_end),
            b_done.eq(b_valid & (~emit | self.o_stream.ready)),
        ]

        # Stage A: take an input when stage B is free or finishing; issue its state read.
        take = Signal()
        m.d.comb += [
            self.i_stream.ready.eq(~self.clearing & (~b_valid | b_done)),
            take.eq(self.i_stream.valid & self.i_stream.ready),
            rp.addr.eq(idx),
            rp.en.eq(take),
        ]
        with m.If(take):
            m.d.sync += [b_valid.eq(1), b_idx.eq(idx), b_x.eq(self.i_stream.payload.x),
                         idx.eq(pd_arith.wrap_increment(idx, n))]
        with m.Elif(b_done):
            m.d.sync += b_valid.eq(0)

        # The write port: zeroing after reset, else the state of a finished input.
        with m.If(self.clearing):
            m.d.comb += [wp.addr.eq(clear_addr), wp.data.eq(0), wp.en.eq(1)]
            m.d.sync += clear_addr.eq(clear_addr + 1)
            with m.If(clear_addr == n - 1):
                m.d.sync += self.clearing.eq(0)
        with m.Elif(b_done):
            m.d.comb += [wp.addr.eq(b_idx), wp.data.x_prev.eq(b_x), wp.data.phi.eq(phi_new),
                         wp.en.eq(1)]
        m.d.comb += self.busy.eq(self.clearing | b_valid)
        return m

