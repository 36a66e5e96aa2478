"""cocotb test bench for the SSGD network's Verilog (:class:`~spikegate.hdl.ssgd_network.SSGDNetwork`).

Payloads are packed and unpacked through the layouts of :mod:`spikegate.hdl.lif_layouts`; the
layers' trace ports are sampled every cycle into :class:`~spikegate.sim.lif_trace.LIFTraceRecorder`\\ s;
the active events and the results are taken by stream monitors with their own random stalls.
"""

import random

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, RisingEdge

from spikegate.hdl.lif_layouts import LIFActiveLayout, LIFEventLayout, SSGDResultLayout
from .lif_trace import LIFTraceRecorder
from .ssgd_reference import raster_events
from .stream import StreamDriver, StreamMonitor, read_weight_port, start_clock_and_reset

__all__ = ["SSGDNetworkTB", "image_payloads", "GatedStalls"]

_TRACE = ("valid", "step", "index", "v", "spike", "active", "g")


def image_payloads(raster, n_in):
    """The input stream of one image (steps ``0 .. T-2`` of its raster), as ints."""
    lay = LIFEventLayout(n_in)
    return [lay.const(b).as_value().value for b in raster_events(raster)]


class GatedStalls:
    """A stall pattern for :class:`~spikegate.sim.stream.StreamDriver` /
    :class:`~spikegate.sim.stream.StreamMonitor`: never while :attr:`on` is False, then a
    stall with probability ``p`` per cycle (``random.Random(seed)``)."""

    def __init__(self, p, seed):
        if not 0 <= p < 1:
            raise ValueError(f"stall probability must be in [0, 1), not {p!r}")
        self.p, self.on = p, False
        self._rng = random.Random(seed)

    def __iter__(self):
        return self

    def __next__(self):
        return self.on and self.p > 0 and self._rng.random() < self.p


class SSGDNetworkTB:
    """Owns the clock, the reset, the image driver, the result and active-event monitors and the
    trace monitor.

    Parameters
    ----------
    dut : cocotb handle of the network toplevel
    sizes : (n_in, H, C)
    timesteps, step_bits, g_bits, z_bits : int
    stall_in, stall_out, stall_act : float
        Probabilities of idle cycles on the input, of back-pressure on the results and on the
        active events, from the call of :meth:`stalls_on` (none before).
    seed : int
        Seed of the stalls.
    """

    def __init__(self, dut, sizes, timesteps, step_bits, g_bits, z_bits, *, stall_in=0.0,
                 stall_out=0.0, stall_act=0.0, seed=None):
        self.dut = dut
        self.sizes = tuple(int(s) for s in sizes)
        self.T = int(timesteps)
        self.stalls = (stall_in, stall_out, stall_act)
        self.seed = seed
        n_in, H, C = self.sizes
        self.result_layout = SSGDResultLayout(C, z_bits)
        self.active_layout = LIFActiveLayout(H, step_bits, g_bits)
        self.recorders = [LIFTraceRecorder(H, self.T, "hidden"),
                          LIFTraceRecorder(C, self.T, "readout")]
        self.events = []          # per image: (j, t, g) rows
        self._act_taken = 0
        self.cycle = 0

    def _seed(self, k):
        return None if self.seed is None else self.seed + k

    async def start(self):
        for l in range(2):
            for port in ("w_en", "rb_en", "w_src", "w_dst", "w_data", "rb_src", "rb_dst"):
                getattr(self.dut, f"weights{l}__{port}").value = 0
        self.dut.i_stream__valid.value = 0
        self.dut.o_stream__ready.value = 0
        self.dut.a_stream__ready.value = 0
        await start_clock_and_reset(self.dut)
        self._gates = [GatedStalls(p, self._seed(k + 1)) for k, p in enumerate(self.stalls)]
        self.source = StreamDriver(self.dut, "i_stream", stall=self._gates[0])
        self.sink = StreamMonitor(self.dut, "o_stream", stall=self._gates[1])
        self.act = StreamMonitor(self.dut, "a_stream", stall=self._gates[2])
        self._traces = [{k: getattr(self.dut, f"trace{l}__{k}") for k in _TRACE}
                        for l in range(2)]
        cocotb.start_soon(self._monitor())

    def stalls_on(self):
        """Start the random stalls on every stream."""
        for gate in self._gates:
            gate.on = True

    async def _monitor(self):
        while True:
            await RisingEdge(self.dut.clk)
            self.cycle += 1
            for rec, h in zip(self.recorders, self._traces):
                if h["valid"].value == 1:
                    rec.record(h["step"].value.to_unsigned(), h["index"].value.to_unsigned(),
                               h["v"].value.to_signed(), int(h["spike"].value),
                               int(h["active"].value), h["g"].value.to_unsigned())

    def _unpack(self, raw):
        r = self.result_layout.from_bits(raw)
        C = self.sizes[2]
        return {"klass": int(r.klass), "z": [int(r.z[c]) for c in range(C)],
                "cycles": int(r.cycles), "in_spikes": int(r.in_spikes),
                "spikes": int(r.spikes), "active": int(r.active),
                "lookups": [int(r.lookups[0]), int(r.lookups[1])]}

    async def classify(self, raster, timeout_cycles=None):
        """Send one image; return its result dict (with ``time_ns``); its active events are
        appended to :attr:`events`."""
        n = len(self.sink.received)
        self.source.send_all(image_payloads(raster, self.sizes[0]))
        n_in, H, C = self.sizes
        limit = timeout_cycles or 2000 + 20 * self.T * (H + n_in * 16)
        for _ in range(limit):
            if len(self.sink.received) > n:
                break
            await RisingEdge(self.dut.clk)
        else:
            raise AssertionError(f"no result within {limit} cycles")
        raw, t = self.sink.received[n]
        res = {**self._unpack(raw), "time_ns": t}
        k = self._act_taken
        got = self.act.received[k:k + res["active"]]
        assert len(got) == res["active"], (
            f"image {len(self.events)}: {len(got)} active events received, the result counts "
            f"{res['active']}")
        rows = []
        for raw_ev, _ in got:
            e = self.active_layout.from_bits(raw_ev)
            rows.append((int(e.index), int(e.step), int(e.g)))
        self.events.append(np.array(rows, np.int64).reshape(-1, 3))
        self._act_taken = k + res["active"]
        return res

    async def reset_mid_image(self, raster, cycles=2):
        """Send the first half of ``raster``'s beats, wait until they are taken and a few
        cycles more, pulse the reset; the recorders forget the unfinished image and its active
        events are skipped."""
        beats = image_payloads(raster, self.sizes[0])
        self.source.send_all(beats[: len(beats) // 2])
        await self.source.wait_idle()
        for _ in range(20):
            await RisingEdge(self.dut.clk)
        self.act.check_rules = False          # an event on offer may vanish with the reset
        self.dut.rst.value = 1
        for _ in range(cycles):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)
        await RisingEdge(self.dut.clk)
        self.act.check_rules = True
        for rec in self.recorders:
            rec.drop_partial()
        self._act_taken = len(self.act.received)

    async def wait_idle(self):
        while self.dut.idle.value != 1:
            await RisingEdge(self.dut.clk)

    async def load(self, weights):
        """Write every weight of both layers through the ports (when idle)."""
        await self.wait_idle()
        await FallingEdge(self.dut.clk)
        for l, w in enumerate(weights):
            port = f"weights{l}__"
            for (i, j), v in np.ndenumerate(np.asarray(w)):
                getattr(self.dut, port + "w_en").value = 1
                getattr(self.dut, port + "w_src").value = i
                getattr(self.dut, port + "w_dst").value = j
                getattr(self.dut, port + "w_data").value = int(v) & 0xFF
                await FallingEdge(self.dut.clk)
            getattr(self.dut, port + "w_en").value = 0
        await FallingEdge(self.dut.clk)

    async def read_weights(self, layer, positions):
        """Read the weights at ``positions`` (``(src, dst)`` pairs) of ``layer`` back."""
        await self.wait_idle()
        return await read_weight_port(self.dut, f"weights{layer}__", positions)
