"""The cocotb stream models (spikegate.sim.stream) and the runner (spikegate.sim.runner),
through a small FIFO: in-order delivery under random stalls on both sides, the protocol
checker catching a design that drops ``valid``, failures reported to pytest, build reuse,
and waveforms."""

import numpy as np
import pytest

import cocotb
from amaranth.hdl import Module, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out
from cocotb.triggers import ClockCycles

from spikegate.sim.runner import CocotbFailure, last_run, run_cocotb, test_args
from spikegate.sim.stream import (StreamDriver, StreamMonitor, StreamProtocolError,
                                  start_clock_and_reset)

WIDTH = 16


class StreamFIFO(wiring.Component):
    """``SyncFIFOBuffered`` between two streams; ``misbehave`` makes ``o_stream.valid``
    blink regardless of ``ready`` (a stream-rule violation, for the checker)."""

    i_stream: In(stream.Signature(WIDTH))
    o_stream: Out(stream.Signature(WIDTH))
    misbehave: In(1)

    def __init__(self, depth=4):
        self.depth = depth
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = buf = fifo.SyncFIFOBuffered(width=WIDTH, depth=self.depth)
        wiring.connect(m, wiring.flipped(self.i_stream), buf.w_stream)
        blink = Signal()
        m.d.sync += blink.eq(~blink)
        m.d.comb += [
            self.o_stream.payload.eq(buf.r_data),
            self.o_stream.valid.eq(buf.r_rdy & ~(self.misbehave & blink)),
            buf.r_en.eq(self.o_stream.valid & self.o_stream.ready),
        ]
        return m


# --- cocotb side -------------------------------------------------------------------------

@cocotb.test()
async def fifo_in_order_under_stalls(dut):
    args = test_args()
    payloads, seed = args["payloads"], args["seed"]
    assert payloads.dtype == np.uint16 and payloads.shape == (args["n"],), "test_args array"
    dut.misbehave.value = 0
    await start_clock_and_reset(dut)
    source = StreamDriver(dut, "i_stream", stall=0.4, seed=seed)
    sink = StreamMonitor(dut, "o_stream", stall=0.4, seed=seed + 1)
    source.send_all(payloads.tolist())
    await sink.wait_for(len(payloads), timeout_cycles=20 * len(payloads))
    await source.wait_idle()
    got = [p for p, _ in sink.received]
    assert got == payloads.tolist(), f"FIFO reordered or lost payloads (seed {seed})"
    assert [p for p, _ in source.sent] == payloads.tolist()
    assert source.empty()
    first = [await sink.recv() for _ in range(3)]
    assert first == payloads[:3].tolist()


@cocotb.test(expect_error=StreamProtocolError)
async def monitor_catches_dropped_valid(dut):
    dut.misbehave.value = 1
    await start_clock_and_reset(dut)
    source = StreamDriver(dut, "i_stream")
    StreamMonitor(dut, "o_stream", stall=[True] * 50)   # never ready: valid must hold
    source.send_all(range(4))
    await ClockCycles(dut.clk, 40)


@cocotb.test()
async def fails_when_asked(dut):
    assert not test_args().get("fail"), "deliberate failure"


# --- pytest side -------------------------------------------------------------------------

def test_stream_models(sim):
    seed = 5
    payloads = np.random.default_rng(seed).integers(0, 1 << WIDTH, 300).astype(np.uint16)
    args = {"payloads": payloads, "seed": seed, "n": len(payloads)}
    cases = ["fifo_in_order_under_stalls", "monitor_catches_dropped_valid"]
    run_cocotb(StreamFIFO, module=__name__, sim=sim, testcase=cases, test_args=args)
    # The same Verilog again: the build is reused.
    run_cocotb(StreamFIFO, module=__name__, sim=sim, testcase=cases, test_args=args)
    assert not last_run().built, "second run rebuilt an unchanged design"


def test_failure_reaches_pytest(sim):
    with pytest.raises(CocotbFailure, match=r"build dir .*streamfifo(.|\n)*fails_when_asked"):
        run_cocotb(StreamFIFO, module=__name__, sim=sim, testcase="fails_when_asked",
                   test_args={"fail": True})


def test_no_cocotb_test_ran_is_a_failure(sim):
    with pytest.raises(CocotbFailure, match="no cocotb test ran"):
        run_cocotb(StreamFIFO, module=__name__, sim=sim, testcase="no_such_test")


@pytest.mark.requires_iverilog
def test_waves_icarus(tmp_path):
    run_cocotb(StreamFIFO, module=__name__, sim="icarus", waves=True, build_root=tmp_path,
               testcase="monitor_catches_dropped_valid")
    wave = last_run().waves
    assert wave is not None and wave.suffix == ".fst" and wave.stat().st_size > 0, wave
