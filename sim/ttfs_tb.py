"""cocotb test bench for the TTFS classifier's Verilog (:class:`~spikegate.hdl.classifier.TTFSClassifier`).

Payloads are packed and unpacked through the layouts of :mod:`spikegate.hdl.layouts`, never
with hand-written bit offsets. Used by the cocotb tests and by ``spikegate sim``.
"""

import numpy as np

from amaranth.lib import data
from cocotb.triggers import FallingEdge, RisingEdge

from spikegate.golden.ttfs_discrete import DiscreteConfig
from .amaranth_tb import image_beats
from spikegate.hdl.layouts import ClassifierResultLayout, SpikeEventLayout
from .stream import StreamDriver, StreamMonitor, start_clock_and_reset

__all__ = ["ClassifierTB", "image_payloads", "unpack_result"]


def image_payloads(steps, n_inputs, config):
    """The input stream of one image: its spikes (step order) and the end marker, as ints."""
    lay = SpikeEventLayout(n_inputs, config.step_bits)
    return [lay.const(b).as_value().value for b in image_beats(steps)]


def unpack_result(raw, sizes, config):
    """A result payload (int) as a dict keyed by the members of
    :class:`~spikegate.hdl.layouts.ClassifierResultLayout`: ints, and lists for the array
    members (``spikes`` input first, ``lookups`` per weight layer)."""
    lay = ClassifierResultLayout(tuple(sizes), config.step_bits)
    r = lay.from_bits(raw)
    return {name: [int(v) for v in r[name]] if isinstance(f.shape, data.ArrayLayout)
            else int(r[name]) for name, f in lay}


class ClassifierTB:
    """Owns the clock, the reset, the input driver and the result monitor.

    Parameters
    ----------
    dut : cocotb handle of the classifier toplevel
    sizes : sequence of int
    config : DiscreteConfig
    stall_in, stall_out : float
        Probabilities of idle cycles on the input and of back-pressure on the output.
    seed : int
        Seed of the stalls.
    """

    def __init__(self, dut, sizes, config=None, *, stall_in=0.0, stall_out=0.0, seed=None):
        self.dut = dut
        self.sizes = tuple(int(s) for s in sizes)
        self.config = config or DiscreteConfig()
        self.stall_in, self.stall_out, self.seed = stall_in, stall_out, seed

    async def start(self):
        # Every input driven before reset (a 4-state simulator would otherwise latch Z).
        for port in ("i_stream__valid", "o_stream__ready",
                     "model__w_en", "model__rb_en", "model__theta_en", "model__w_layer",
                     "model__w_src", "model__w_dst", "model__w_data", "model__theta_data",
                     "trace__layer", "trace__addr", "learn__en", "learn__label",
                     "learn__shift", "learn__k", "learn__errors_only", "learn__lfsr_seed"):
            if hasattr(self.dut, port):
                getattr(self.dut, port).value = 0
        await start_clock_and_reset(self.dut)
        self.source = StreamDriver(self.dut, "i_stream", stall=self.stall_in or None,
                                   seed=None if self.seed is None else self.seed + 1)
        self.sink = StreamMonitor(self.dut, "o_stream", stall=self.stall_out or None,
                                  seed=None if self.seed is None else self.seed + 2)

    async def reset(self, cycles=2):
        """Pulse the synchronous reset (e.g. in the middle of an image)."""
        self.dut.rst.value = 1
        for _ in range(cycles):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0

    async def classify(self, steps, timeout_cycles=None, *, label=None, lr_shift=0):
        """Send one image (input steps, NO_SPIKE for none) and return its result dict.

        With ``label`` (a classifier built with ``learning=True``), learn from it with step
        ``2**lr_shift``; without, learning is off for this image."""
        if hasattr(self.dut, "learn__en"):
            self.dut.learn__en.value = int(label is not None)
            self.dut.learn__label.value = 0 if label is None else int(label)
            self.dut.learn__shift.value = int(lr_shift)
        elif label is not None:
            raise ValueError("this classifier was built without learning")
        n = len(self.sink.received)
        self.source.send_all(image_payloads(steps, self.sizes[0], self.config))
        limit = timeout_cycles or 200 + 40 * sum(self.sizes) * self.config.timesteps + \
            (0 if label is None else 4 * sum(a * b for a, b in zip(self.sizes[:-1], self.sizes[1:])))
        for _ in range(limit):
            if len(self.sink.received) > n:
                break
            await RisingEdge(self.dut.clk)
        else:
            raise AssertionError(f"no result within {limit} cycles")
        return unpack_result(self.sink.received[n][0], self.sizes, self.config)

    async def read_trace(self):
        """Spike step of every neuron of every layer after the input (``timesteps`` = none)."""
        out = []
        await FallingEdge(self.dut.clk)
        for layer in range(1, len(self.sizes)):
            vals = []
            for j in range(self.sizes[layer]):
                self.dut.trace__layer.value = layer
                self.dut.trace__addr.value = j
                await FallingEdge(self.dut.clk)
                vals.append(self.dut.trace__step.value.to_unsigned())
            out.append(np.array(vals))
        return out

    async def read_weights(self, latency=1):
        """Every weight of every layer through the read-back port (classifier idle), each
        read ``latency`` cycles after its ``rb_en`` (the classifier's
        :attr:`~spikegate.hdl.classifier.TTFSClassifier.rb_latency`), one at a time."""
        out = []
        await FallingEdge(self.dut.clk)
        for l, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            w = np.zeros((a, b), np.int64)
            for i in range(a):
                for j in range(b):
                    self.dut.model__w_layer.value = l
                    self.dut.model__w_src.value = i
                    self.dut.model__w_dst.value = j
                    self.dut.model__rb_en.value = 1
                    await FallingEdge(self.dut.clk)
                    self.dut.model__rb_en.value = 0
                    for _ in range(latency - 1):
                        await FallingEdge(self.dut.clk)
                    w[i, j] = self.dut.model__rb_data.value.to_signed()
            out.append(w)
        return out

    async def load_weights(self, weights):
        """Write every weight of every layer through the write port (classifier idle)."""
        await FallingEdge(self.dut.clk)
        for l, w in enumerate(weights):
            for (i, j), v in np.ndenumerate(np.asarray(w)):
                self.dut.model__w_en.value = 1
                self.dut.model__w_layer.value = l
                self.dut.model__w_src.value = i
                self.dut.model__w_dst.value = j
                self.dut.model__w_data.value = int(v) & 0xFF
                await FallingEdge(self.dut.clk)
        self.dut.model__w_en.value = 0
