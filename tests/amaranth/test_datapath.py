"""Unit tests of the datapath blocks in Amaranth's simulator: the spike queue under random
stalls, the banked weight memory (load and read back), and the sparse weight lookup (reads
exactly the requested rows, nothing for scans, counts what it reads)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from spikegate.hdl.layouts import RowOp, SpikeEventLayout
from spikegate.hdl.lookup import WeightLookup, weight_words
from spikegate.hdl.spike_queue import SpikeQueue, StreamRegister
from spikegate.sim.amaranth_tb import stream_get, stream_put


# Queue depths, and the register slice (depth None).
@pytest.mark.parametrize("depth", [2, 5, 16, None])
def test_spike_queue_in_order_under_stalls(depth):
    seed = 40 + (depth or 0)
    rng = np.random.default_rng(seed)
    lay = SpikeEventLayout(64, 6)
    dut = SpikeQueue(lay, depth) if depth else StreamRegister(lay)
    events = [{"index": int(i), "step": int(s), "end": int(e)}
              for i, s, e in zip(rng.integers(0, 64, 60), rng.integers(0, 33, 60), rng.random(60) < 0.1)]
    got = []

    async def producer(ctx):
        for e in events:
            await stream_put(ctx, dut.i_stream, e, rng=rng, p_stall=0.5)

    async def consumer(ctx):
        crng = np.random.default_rng(seed + 1)
        for _ in events:
            p = await stream_get(ctx, dut.o_stream, rng=crng, p_stall=0.5)
            got.append({"index": p.index, "step": p.step, "end": p.end})

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert got == events, f"seed {seed}"


def test_spike_queue_bad_parameters():
    with pytest.raises(ValueError, match="depth"):
        SpikeQueue(SpikeEventLayout(4, 3), 1)
    with pytest.raises(TypeError, match="Layout"):
        SpikeQueue(8, 4)


def _lookup_run(n_src, n_dst, lanes, init, commands, writes=()):
    dut = WeightLookup(n_src, n_dst, lanes, init)
    beats, issues = [], []
    counts = {}

    async def bench(ctx):
        for src, dst, v in writes:
            ctx.set(dut.w_en, 1)
            ctx.set(dut.w_src, src)
            ctx.set(dut.w_dst, dst)
            ctx.set(dut.w_data, v)
            await ctx.tick()
        ctx.set(dut.w_en, 0)
        for src, op in commands:
            await stream_put(ctx, dut.cmd, {"src": src, "op": op})
        await ctx.tick().repeat(dut.groups + 3)
        counts["lookups"] = ctx.get(dut.lookups)

    async def monitor(ctx):
        async for vals in ctx.tick().sample(dut.beat_valid, dut.beat_group, dut.beat_op,
                                            dut.beat_weights, dut.beat_first, dut.beat_last,
                                            dut.issue_valid, dut.issue_group):
            (_, _, bv, bg, bop, bw, bf, bl, iv, ig) = vals   # clk hit, reset, then samples
            if bv:
                beats.append((bg, bop, [bw[i] for i in range(lanes)], bf, bl))
            if iv:
                issues.append(ig)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_testbench(monitor, background=True)
    sim.run()
    return dut, beats, issues, counts


@pytest.mark.parametrize("lanes, n_dst", [(1, 5), (3, 10), (4, 8), (8, 10), (16, 7)])
def test_lookup_reads_exactly_the_requested_rows(lanes, n_dst):
    seed = lanes * 100 + n_dst
    rng = np.random.default_rng(seed)
    n_src = 9
    w = rng.integers(-128, 128, (n_src, n_dst))
    rows = [int(r) for r in rng.integers(0, n_src, 6)]
    cmds = [(r, RowOp.ACCUMULATE) for r in rows[:3]] + [(0, RowOp.SCAN)] + \
           [(r, RowOp.ACCUMULATE) for r in rows[3:]]
    dut, beats, issues, counts = _lookup_run(n_src, n_dst, lanes, w, cmds)
    G = dut.groups
    assert len(beats) == len(cmds) * G, f"seed {seed}: one beat per group per row, back to back"
    words = weight_words(w, lanes)
    for c, (src, op) in enumerate(cmds):
        for g in range(G):
            bg, bop, bw, bf, bl = beats[c * G + g]
            assert bg == g and bop == op and bf == (g == 0) and bl == (g == G - 1), f"seed {seed}"
            expect = words[src * G + g] if op == RowOp.ACCUMULATE else [0] * lanes
            assert bw == expect, f"seed {seed}: row {src} group {g}"
    assert counts["lookups"] == 6 * n_dst, f"seed {seed}: only ACCUMULATE rows count"


def test_weight_memory_load_then_read():
    # Weights written one by one through the write port are what a row walk returns.
    n_src, n_dst, lanes = 4, 6, 4
    rng = np.random.default_rng(3)
    w = rng.integers(-128, 128, (n_src, n_dst))
    writes = [(i, j, int(w[i, j]) & 0xFF) for i in range(n_src) for j in range(n_dst)]
    cmds = [(i, RowOp.ACCUMULATE) for i in range(n_src)]
    dut, beats, _, _ = _lookup_run(n_src, n_dst, lanes, None, cmds, writes)
    words = weight_words(w, lanes)
    got = [b[2] for b in beats]
    assert got == words, "seed 3"


def test_weight_words_layout():
    w = np.arange(10).reshape(2, 5)
    assert weight_words(w, 2) == [[0, 1], [2, 3], [4, 0], [5, 6], [7, 8], [9, 0]]


def test_lookup_bad_parameters():
    with pytest.raises(ValueError, match="lanes"):
        WeightLookup(4, 4, 17)
    with pytest.raises(TypeError, match="n_src"):
        WeightLookup(0, 4, 1)
    with pytest.raises(ValueError, match="shape"):
        WeightLookup(4, 4, 2, np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"\[-128, 127\]"):
        WeightLookup(2, 2, 2, np.full((2, 2), 300))
