# amaranth: UnusedElaboratable=no
"""UART receiver and transmitter in Amaranth's simulator: loopback under random stalls, the
transmitter's waveform against a reference encoder, the receiver against a reference bit
stream (glitches, framing errors, baud-rate error), parameter checks."""

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from spikegate.hdl.uart import UARTRx, UARTTx, uart_divisor
from spikegate.sim.amaranth_tb import stream_get, stream_put


def frame_bits(byte, stop=1):
    """8N1 bits of one byte: start (0), data LSB first, stop."""
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


def test_divisor():
    assert uart_divisor(12_000_000, 115200) == 104
    assert uart_divisor(25_000_000, 115200) == 217
    with pytest.raises(ValueError, match="at least 4"):
        uart_divisor(300_000, 115200)
    with pytest.raises(ValueError, match="off by"):
        uart_divisor(5 * 115200 * 1.11, 115200)
    for bad in (3, 0, 4.0):
        with pytest.raises(ValueError):
            UARTRx(bad)
        with pytest.raises(ValueError):
            UARTTx(bad)


# one case per (divisor, stall seed): stalls on the producer and on the consumer
@pytest.mark.parametrize("divisor", [4, 5, 8, 13])
@pytest.mark.parametrize("seed", [1, 2])
def test_loopback_with_stalls(divisor, seed):
    rng = np.random.default_rng(seed)
    data = [0x00, 0xFF, 0x55, 0xAA] + rng.integers(0, 256, 40).tolist()
    m = Module()
    m.submodules.tx = tx = UARTTx(divisor)
    m.submodules.rx = rx = UARTRx(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    sim = Simulator(m)
    sim.add_clock(1e-6)
    got, errors = [], []

    async def producer(ctx):
        prng = np.random.default_rng(seed + 100)
        for b in data:
            await stream_put(ctx, tx.i_stream, b, rng=prng, p_stall=0.5, max_stall=3 * divisor)

    async def consumer(ctx):
        crng = np.random.default_rng(seed + 200)
        for _ in data:     # stalls shorter than a byte: nothing may be lost
            got.append(await stream_get(ctx, rx.o_stream, rng=crng, p_stall=0.5, max_stall=divisor))

    async def monitor(ctx):
        async for _, _, e, o in ctx.tick().sample(rx.error, rx.overrun):
            if e or o:
                errors.append((e, o))

    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.add_testbench(monitor, background=True)
    sim.run_until(1e-6 * (len(data) + 2) * (10 * divisor + 3 * divisor + 2) * 2)
    assert got == data, f"divisor {divisor}, seed {seed}: first difference at " \
        f"{next((i for i, (a, b) in enumerate(zip(got, data)) if a != b), len(got))}"
    assert errors == [], f"divisor {divisor}, seed {seed}"


@pytest.mark.parametrize("divisor", [4, 9])
def test_tx_waveform(divisor):
    data = [0x00, 0xA5, 0x3C, 0xFF]
    dut = UARTTx(divisor)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    line = []

    async def producer(ctx):
        for b in data:
            await stream_put(ctx, dut.i_stream, b)

    async def sampler(ctx):
        async for _, _, tx in ctx.tick().sample(dut.tx):
            line.append(tx)

    sim.add_testbench(producer)
    sim.add_testbench(sampler, background=True)
    sim.run_until(1e-6 * (len(data) * (10 * divisor + 1) + 20))
    # Decode the line: find each start edge, sample in the middle of each bit.
    out, i = [], 0
    while i < len(line):
        if line[i] == 0:
            bits = [line[i + divisor // 2 + k * divisor] for k in range(10)]
            assert bits[0] == 0 and bits[9] == 1, f"divisor {divisor}, frame at cycle {i}: {bits}"
            out.append(sum(b << k for k, b in enumerate(bits[1:9])))
            i += 9 * divisor + divisor // 2 + 1
        else:
            i += 1
    assert out == data
    assert all(v == 1 for v in line[:1])       # idle high


def _drive_rx(divisor, pieces, *, period_scale=1.0):
    """Drive ``rx`` with ``pieces`` (lists of line levels, one per bit period, or ('cycles',
    level, n)) and collect (bytes, framing errors)."""
    dut = UARTRx(divisor)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    got, errors = [], []
    period = divisor * period_scale

    async def driver(ctx):
        t = 0.0
        for p in pieces:
            if p[0] == "cycles":
                ctx.set(dut.rx, p[1])
                await ctx.tick().repeat(p[2])
                continue
            for level in p:
                ctx.set(dut.rx, level)
                t += period
                await ctx.tick().repeat(int(round(t)) - int(round(t - period)))
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(4 * divisor)

    async def consumer(ctx):
        ctx.set(dut.o_stream.ready, 1)
        async for _, _, v, p, e in ctx.tick().sample(dut.o_stream.valid, dut.o_stream.payload, dut.error):
            if v:
                got.append(p)
            if e:
                errors.append(len(got))

    sim.add_testbench(driver)
    sim.add_testbench(consumer, background=True)
    sim.run()
    return got, errors


def test_rx_glitch_and_framing_error():
    d = 8
    pieces = [[1, 1], frame_bits(0x41),
              ("cycles", 0, d // 2 - 2), ("cycles", 1, 3 * d),     # a glitch: not a start bit
              frame_bits(0x42, stop=0), [0, 0], [1, 1],             # framing error, then a break
              frame_bits(0x43)]
    got, errors = _drive_rx(d, pieces)
    assert got == [0x41, 0x43]
    assert errors == [1]


@pytest.mark.parametrize("scale", [0.98, 1.02])
def test_rx_tolerates_baud_error(scale):
    data = [0x00, 0xFF, 0x81, 0x7E]
    got, errors = _drive_rx(16, [[1]] + [frame_bits(b) for b in data], period_scale=scale)
    assert got == data and errors == [], f"baud scale {scale}"
