# amaranth: UnusedElaboratable=no
"""Popcount in Amaranth's simulator: counts against the golden reference, latency,
throughput, back-pressure and parameter checks."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from spikegate.golden.popcount import count_width, pipeline_latency, popcount
from spikegate.hdl.popcount import Popcount


def _words(bits):
    return [int("".join("1" if b else "0" for b in row[::-1]) or "0", 2) for row in bits]


def _vectors(width, rng, n_random):
    rand = rng.random((n_random, width)) < rng.random((n_random, 1))
    return np.concatenate([np.zeros((1, width), bool), np.ones((1, width), bool),
                           np.eye(width, dtype=bool)[:64], rand])


def _simulate(width, bits, *, in_stall=0.0, out_stall=0.0, seed=0):
    """Push ``bits`` through Popcount(width); return (counts, input cycles, output cycles).

    A producer and a consumer testbench (random idles/not-ready with probabilities
    ``in_stall`` / ``out_stall``, seeded) and a passive monitor that records every transfer
    with its cycle number.
    """
    dut = Popcount(width)
    words = _words(bits)
    stall_rng = random.Random(seed)
    accepted, delivered = [], []

    async def producer(ctx):
        for word in words:
            while stall_rng.random() < in_stall:
                await ctx.tick()
            ctx.set(dut.i_stream.payload, word)
            ctx.set(dut.i_stream.valid, 1)
            await ctx.tick().until(dut.i_stream.ready)
            ctx.set(dut.i_stream.valid, 0)

    async def consumer(ctx):
        out_rng = random.Random(seed + 1)
        while len(delivered) < len(words):
            ctx.set(dut.o_stream.ready, 0 if out_rng.random() < out_stall else 1)
            await ctx.tick()

    async def monitor(ctx):
        cycle = 0
        async for _, _, iv, ir, ov, orr, count in ctx.tick().sample(
                dut.i_stream.valid, dut.i_stream.ready,
                dut.o_stream.valid, dut.o_stream.ready, dut.o_stream.payload):
            if iv and ir:
                accepted.append(cycle)
            if ov and orr:
                delivered.append((count, cycle))
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.add_testbench(monitor, background=True)
    sim.run_until(1e-6 * (len(words) * 20 + 100))
    counts = np.array([c for c, _ in delivered], dtype=np.int64)
    return counts, np.array(accepted), np.array([t for _, t in delivered])


def _assert_counts(width, bits, counts, seed):
    expected = popcount(bits)
    assert counts.shape == expected.shape, (
        f"width {width}: {counts.size} counts for {expected.size} vectors (seed {seed})")
    bad = np.flatnonzero(counts != expected)
    assert bad.size == 0, (
        f"width {width}: vector {bad[0]} (ones at {np.flatnonzero(bits[bad[0]]).tolist()[:16]}) "
        f"counted {counts[bad[0]]}, golden {expected[bad[0]]} (seed {seed})")


# Widths: every pipeline depth 1..5, the edges of the radix-4 levels, and the largest.
@pytest.mark.parametrize("width", [1, 2, 4, 5, 7, 16, 17, 64, 65, 600, 1024])
def test_counts_latency_throughput(width):
    seed = width
    rng = np.random.default_rng(seed)
    bits = _vectors(width, rng, 40)
    counts, t_in, t_out = _simulate(width, bits, seed=seed)
    _assert_counts(width, bits, counts, seed)
    # No stalls: one result per cycle, each exactly `latency` cycles after its input.
    assert np.all(np.diff(t_out) == 1), f"width {width}: gaps in the output (seed {seed})"
    delays = t_out - t_in
    assert np.all(delays == pipeline_latency(width)), (
        f"width {width}: latency {sorted(set(delays.tolist()))}, "
        f"expected {pipeline_latency(width)}")


@pytest.mark.parametrize("width", [1, 7, 64, 600])
@pytest.mark.parametrize("stall", [(0.5, 0.0), (0.0, 0.5), (0.4, 0.4)],
                         ids=["input-idles", "output-stalls", "both"])
def test_counts_under_stalls(width, stall):
    seed = 7 * width + int(10 * stall[0]) + int(100 * stall[1])
    rng = np.random.default_rng(seed)
    bits = _vectors(width, rng, 60)
    counts, _, _ = _simulate(width, bits, in_stall=stall[0], out_stall=stall[1], seed=seed)
    _assert_counts(width, bits, counts, seed)


def test_properties():
    for width in (1, 7, 64, 600, 1024):
        dut = Popcount(width)
        assert dut.width == width
        assert dut.latency == pipeline_latency(width)
        assert dut.count_width == count_width(width) == width.bit_length()
        assert len(dut.o_stream.payload) == width.bit_length()
        assert len(dut.i_stream.payload) == width
    assert [pipeline_latency(w) for w in (1, 4, 5, 16, 17, 64, 65, 256, 257, 600, 1024)] == \
        [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5]


@pytest.mark.parametrize("width, error", [
    (0, ValueError), (1025, ValueError), (-3, ValueError),
    (8.0, TypeError), ("8", TypeError), (True, TypeError), (None, TypeError),
])
def test_bad_width(width, error):
    with pytest.raises(error, match=repr(width).replace("(", r"\(").replace(".", r"\.")):
        Popcount(width)


def test_golden_popcount():
    bits = np.array([[0, 1, 1], [1, 1, 1], [0, 0, 0]], dtype=np.uint8)
    assert popcount(bits).tolist() == [2, 3, 0]
    assert popcount(bits, axis=0).tolist() == [1, 2, 2]
    assert popcount(bits.astype(bool)).dtype == np.int64
    with pytest.raises(ValueError, match="2"):
        popcount(np.array([0, 2]))
    with pytest.raises(TypeError):
        pipeline_latency(3.0)
    with pytest.raises(ValueError):
        pipeline_latency(0)
