"""cocotb test bench for the PD network's Verilog (:class:`~spikegate.hdl.pd_classifier.PDClassifier`).

Payloads are packed and unpacked through the layouts of :mod:`spikegate.hdl.layouts`; the
layers' trace ports are sampled every cycle into :class:`~spikegate.sim.pd_trace.LayerTraceRecorder`\\ s.
"""

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, RisingEdge

from spikegate.hdl.layouts import PDActivationLayout, PDResultLayout
from .pd_trace import LayerTraceRecorder
from .stream import StreamDriver, StreamMonitor, read_weight_port, start_clock_and_reset

__all__ = ["PDClassifierTB", "frame_payloads", "unpack_result"]


def frame_payloads(frame, x_width):
    """The input stream of one frame (its activations, input 0 first), as ints."""
    lay = PDActivationLayout(x_width)
    return [lay.const({"x": int(v)}).as_value().value for v in frame]


def unpack_result(raw, sizes):
    """A result payload (int) as a dict: klass, cycles, events and spikes (lists per layer)."""
    r = PDResultLayout(tuple(sizes)).from_bits(raw)
    L = len(sizes) - 1
    return {"klass": int(r.klass), "cycles": int(r.cycles),
            "events": [int(r.events[l]) for l in range(L)],
            "spikes": [int(r.spikes[l]) for l in range(L)]}


class PDClassifierTB:
    """Owns the clock, the reset, the frame driver, the result monitor and the trace monitor.

    Parameters
    ----------
    dut : cocotb handle of the classifier toplevel
    sizes : sequence of int
    x_width : int
        Layer 0's input width.
    stall_in, stall_out : float
        Probabilities of idle cycles on the input and of back-pressure on the result.
    seed : int
        Seed of the stalls.
    rb_latency : sequence of int, optional
        Each layer's weight read-back latency (:attr:`~spikegate.hdl.pd_layer.PDLayer.rb_latency`:
        1, 3 with weight banks); default 1 for every layer.

    Members
    -------
    recorders : list of LayerTraceRecorder
        Every layer's events and decoded neurons, frame by frame.
    cycle : int
        Rising edges since :meth:`start`.
    """

    def __init__(self, dut, sizes, x_width, *, stall_in=0.0, stall_out=0.0, seed=None,
                 rb_latency=None):
        self.dut = dut
        self.sizes = tuple(int(s) for s in sizes)
        self.L = len(self.sizes) - 1
        self.rb_latency = ((1,) * self.L if rb_latency is None
                           else tuple(int(v) for v in rb_latency))
        if len(self.rb_latency) != self.L:
            raise ValueError(f"rb_latency needs {self.L} values, not {self.rb_latency}")
        self.x_width = int(x_width)
        self.stall_in, self.stall_out, self.seed = stall_in, stall_out, seed
        self.recorders = [LayerTraceRecorder(a, b, f"layer {l}") for l, (a, b) in
                          enumerate(zip(self.sizes[:-1], self.sizes[1:]))]
        self.cycle = 0

    async def start(self):
        for l in range(self.L):
            for port in ("w_en", "rb_en", "w_src", "w_dst", "w_data", "rb_src", "rb_dst"):
                getattr(self.dut, f"weights{l}__{port}").value = 0
            for port in ("w_en", "w_dst", "w_data"):
                getattr(self.dut, f"bias{l}__{port}").value = 0
        self.dut.i_stream__valid.value = 0
        self.dut.o_stream__ready.value = 0
        await start_clock_and_reset(self.dut)
        self.source = StreamDriver(self.dut, "i_stream", stall=self.stall_in or None,
                                   seed=None if self.seed is None else self.seed + 1)
        self.sink = StreamMonitor(self.dut, "o_stream", stall=self.stall_out or None,
                                  seed=None if self.seed is None else self.seed + 2)
        self._traces = [self._trace_handles(l) for l in range(self.L)]
        cocotb.start_soon(self._monitor())

    def _trace_handles(self, l):
        return {k: getattr(self.dut, f"trace{l}__{k}") for k in
                ("s_valid", "s_index", "s_count", "s_end", "d_valid", "d_index", "d_u", "d_y",
                 "d_act")}

    async def _monitor(self):
        while True:
            await RisingEdge(self.dut.clk)
            self.cycle += 1
            for rec, h in zip(self.recorders, self._traces):
                if h["s_valid"].value == 1:
                    rec.event(h["s_index"].value.to_unsigned(), h["s_count"].value.to_signed(),
                              int(h["s_end"].value))
                if h["d_valid"].value == 1:
                    rec.decoded(h["d_index"].value.to_unsigned(), h["d_u"].value.to_signed(),
                                h["d_y"].value.to_signed(), h["d_act"].value.to_signed())

    async def classify(self, frame, timeout_cycles=None):
        """Send one frame and return its result dict (with ``time_ns`` of its transfer)."""
        n = len(self.sink.received)
        self.source.send_all(frame_payloads(frame, self.x_width))
        limit = timeout_cycles or 1000 + 200 * sum(self.sizes) * 16
        for _ in range(limit):
            if len(self.sink.received) > n:
                break
            await RisingEdge(self.dut.clk)
        else:
            raise AssertionError(f"no result within {limit} cycles")
        raw, t = self.sink.received[n]
        return {**unpack_result(raw, self.sizes), "time_ns": t}

    async def reset_mid_frame(self, frame, cycles=2):
        """Send the first half of ``frame``, wait until it is taken, pulse the reset; the
        recorders forget the unfinished frame."""
        self.source.send_all(frame_payloads(frame[: len(frame) // 2], self.x_width))
        await self.source.wait_idle()
        for _ in range(3):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 1
        for _ in range(cycles):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)
        for rec in self.recorders:
            rec.drop_partial()

    async def wait_idle(self):
        while self.dut.idle.value != 1:
            await RisingEdge(self.dut.clk)

    async def load(self, weights, biases):
        """Write every weight and bias of every layer through the ports (when idle)."""
        await self.wait_idle()
        await FallingEdge(self.dut.clk)
        for l, (w, b) in enumerate(zip(weights, biases)):
            port = f"weights{l}__"
            for (i, j), v in np.ndenumerate(np.asarray(w)):
                getattr(self.dut, port + "w_en").value = 1
                getattr(self.dut, port + "w_src").value = i
                getattr(self.dut, port + "w_dst").value = j
                getattr(self.dut, port + "w_data").value = int(v) & 0xFF
                await FallingEdge(self.dut.clk)
            getattr(self.dut, port + "w_en").value = 0
            port = f"bias{l}__"
            width = len(getattr(self.dut, port + "w_data"))
            for j, v in enumerate(np.asarray(b)):
                getattr(self.dut, port + "w_en").value = 1
                getattr(self.dut, port + "w_dst").value = j
                getattr(self.dut, port + "w_data").value = int(v) & ((1 << width) - 1)
                await FallingEdge(self.dut.clk)
            getattr(self.dut, port + "w_en").value = 0
        await FallingEdge(self.dut.clk)

    async def read_weights(self, layer, positions):
        """Read the weights at ``positions`` (``(src, dst)`` pairs) of ``layer`` back (at the
        layer's :attr:`rb_latency`)."""
        await self.wait_idle()
        return await read_weight_port(self.dut, f"weights{layer}__", positions,
                                      latency=self.rb_latency[layer])
