"""The PD encoder and sigma-delta quantizer of a layer's inputs, one input per cycle, pipelined.

Each frame's activations arrive as a stream, input 0 first; for input ``i`` the encoder reads
its state (``x_prev``, ``phi``) from two memories, computes :func:`~spikegate.hdl.pd_arith.encode`
and :func:`~spikegate.hdl.pd_arith.quantize` (the steps of
:mod:`spikegate.golden.sigma_delta_fixed`) over :data:`ENCODER_LATENCY` registered stages and
writes the state back; it emits the event ``(i, s)`` only when ``s != 0``, and marks the frame's
last event (a marker with ``s = 0`` when the last input sends nothing).
"""

import numpy as np

from amaranth.hdl import Module, Signal, Value, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from spikegate.golden.sigma_delta_fixed import SDFixedFormat
from . import pd_arith
from .layouts import PDActivationLayout, PDEventLayout
from .params import checking

__all__ = ["PDEncoder", "encoder_state_layout", "ENCODER_LATENCY"]

#: Cycles from an input's transfer to its event on ``o_stream`` (no back-pressure): the stage
#: that reads ``x_prev`` and the one that registers it, the cuts of encode and quantize, and
#: the output register.
ENCODER_LATENCY = 2 + pd_arith.ENCODE_CUTS + pd_arith.QUANTIZE_CUTS + 1


def encoder_state_layout(fmt):
    """One input's coder state: ``x_prev`` (``X_W`` bits) and ``phi`` (``PHI_W`` bits)."""
    return data.StructLayout({"x_prev": signed(fmt.x_width), "phi": signed(fmt.phi_width)})


class PDEncoder(wiring.Component):
    """The PD encoder-quantizer of ``n_src`` inputs with the fixed-point format ``fmt``,
    time-multiplexed and pipelined: one input per cycle, its state in two memories.

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
        The state memories are being zeroed (after reset: ``n_src`` cycles); no input is taken.
    busy : Out
        Clearing, or an input is in the pipeline.

    The state memories (:attr:`x_data`: ``x_prev``, :attr:`phi_data`: ``phi``, per input)
    start at 0 and are zeroed again by every reset. ``x_prev`` is read and the new ``x``
    written in the cycle of the input's transfer (the read sees the old word); ``phi`` is read
    one stage before quantize needs it and written back when quantize is done (a transparent
    read, so the next frame's read of the same input sees the new value). Memory outputs go
    into registers only (the ECP5's block RAM has a slow clock-to-out).

    All stages advance together when the output register is free or being emptied
    (``i_stream.ready`` and every stage's enable depend on registers and ``o_stream.ready``
    only, so no combinational path crosses the encoder). Latency: an input's event is valid
    :data:`ENCODER_LATENCY` cycles after the input's transfer; throughput one input per cycle
    (with one or two inputs, one per three cycles: an input's ``phi`` is written back before
    it is read again); back-pressure from ``o_stream`` stalls the whole pipeline.
    """

    def __init__(self, n_src, fmt):
        with checking(self):
            if not isinstance(n_src, (int, np.integer)) or n_src < 1:
                raise TypeError(f"n_src must be a positive integer, not {n_src!r}")
            if not isinstance(fmt, SDFixedFormat):
                raise TypeError(f"fmt must be an SDFixedFormat, not {fmt!r}")
        self._n_src, self._fmt = int(n_src), fmt
        self.x_data = memory.MemoryData(shape=signed(fmt.x_width), depth=self._n_src, init=[])
        self.phi_data = memory.MemoryData(shape=signed(fmt.phi_width), depth=self._n_src,
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
        m.submodules.x_mem = xmem = memory.Memory(data=self.x_data)
        m.submodules.phi_mem = pmem = memory.Memory(data=self.phi_data)
        x_wp = xmem.write_port()
        x_rp = xmem.read_port()                                  # the old word
        phi_wp = pmem.write_port()
        phi_rp = pmem.read_port(transparent_for=(phi_wp,))

        en = Signal()                 # every stage advances
        take = Signal()
        idx = Signal(range(n))
        clear_addr = Signal(range(n))

        # The stages' side band: valid, input index, frame end; stage k holds the input taken
        # k cycles of enable ago. ``inject[k]``: more values registered into stage k.
        stages = []
        a_stage = 2 + pd_arith.ENCODE_CUTS               # where encode's a comes out
        inject = {a_stage: {"phi": phi_rp.data}}

        def cut(*values):
            k = len(stages) + 1
            regs = []
            for v in values:
                r = Signal(Value.cast(v).shape(), name=f"enc_s{k}_{len(regs)}")
                with m.If(en):
                    m.d.sync += r.eq(v)
                regs.append(r)
            prev = stages[-1] if stages else {"valid": take, "index": idx, "end": idx == n - 1}
            prev = {**prev, **inject.get(k, {})}
            st = {}
            for name, v in prev.items():
                st[name] = Signal(Value.cast(v).shape(), name=f"enc_s{k}_{name}")
                with m.If(en):
                    m.d.sync += st[name].eq(v)
            stages.append(st)
            return regs

        # Stage 0 (the transfer): x_prev read, x written; stage 1: x_prev out of its memory,
        # registered into stage 2; encode from there. phi is read two stages before quantize
        # and registered as well (memory outputs feed registers only).
        x1, = cut(self.i_stream.payload.x)
        x2, x_prev = cut(x1, x_rp.data)
        a = pd_arith.encode(m, x2, x_prev, fmt, cut=cut)
        assert len(stages) == a_stage
        m.d.comb += [phi_rp.addr.eq(stages[a_stage - 3]["index"]), phi_rp.en.eq(en)]
        s, phi_new = pd_arith.quantize(m, a, stages[-1]["phi"], fmt, cut=cut)
        w_stage = stages[-1]
        s_out, nonzero = cut(s, s != 0)
        out = stages[-1]

        keep = Signal()
        m.d.comb += [
            keep.eq(out["valid"] & (nonzero | out["end"])),
            self.o_stream.valid.eq(keep),
            self.o_stream.payload.index.eq(out["index"]),
            self.o_stream.payload.count.eq(s_out),
            self.o_stream.payload.end.eq(out["end"]),
            en.eq(~keep | self.o_stream.ready),
        ]
        # phi is read 3 stages before it is written: with fewer inputs, keep them 3 stages apart.
        spaced = ~(stages[0]["valid"] | stages[1]["valid"]) if n < 3 else 1
        m.d.comb += [
            self.i_stream.ready.eq(~self.clearing & en & spaced),
            take.eq(self.i_stream.valid & self.i_stream.ready),
            x_rp.addr.eq(idx), x_rp.en.eq(take),
        ]
        with m.If(take):
            m.d.sync += idx.eq(pd_arith.wrap_increment(idx, n))

        # The write ports: zeroing after reset, else x at its transfer and phi after quantize.
        with m.If(self.clearing):
            m.d.comb += [x_wp.addr.eq(clear_addr), x_wp.data.eq(0), x_wp.en.eq(1),
                         phi_wp.addr.eq(clear_addr), phi_wp.data.eq(0), phi_wp.en.eq(1)]
            m.d.sync += clear_addr.eq(clear_addr + 1)
            with m.If(clear_addr == n - 1):
                m.d.sync += self.clearing.eq(0)
        with m.Else():
            m.d.comb += [x_wp.addr.eq(idx), x_wp.data.eq(self.i_stream.payload.x),
                         x_wp.en.eq(take),
                         phi_wp.addr.eq(w_stage["index"]), phi_wp.data.eq(phi_new),
                         phi_wp.en.eq(en & w_stage["valid"])]
        m.d.comb += self.busy.eq(self.clearing | sum(st["valid"] for st in stages).bool())
        return m
