"""Unit tests of the datapath blocks in Amaranth's simulator: the spike queue under random
stalls, the banked weight memory (load and read back), and the sparse weight lookup (reads
exactly the requested rows, nothing for scans, counts what it reads)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from spikegate.hdl.layouts import SpikeEventLayout
from spikegate.hdl.lookup import WeightLookup, weight_words
from spikegate.hdl.spike_queue import SpikeQueue, StreamRegister
from spikegate.sim.amaranth_tb import (LOOKUP_TEST_OPS as OPS, LookupTestOp as Op, stream_get,
                                       stream_put)


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


def _lookup_run(n_src, n_dst, lanes, init, commands, writes=(), *, masked_ops=(), group_en=0,
                out_register=False):
    dut = WeightLookup(n_src, n_dst, lanes, init, masked_ops=masked_ops,
                       out_register=out_register, **OPS)
    beats, issues = [], []
    counts = {"issue_at": [], "beat_at": []}

    async def bench(ctx):
        if masked_ops:
            ctx.set(dut.beat.group_en, group_en)
        for src, dst, v in writes:
            ctx.set(dut.weights.w_en, 1)
            ctx.set(dut.weights.w_src, src)
            ctx.set(dut.weights.w_dst, dst)
            ctx.set(dut.weights.w_data, v)
            await ctx.tick()
        ctx.set(dut.weights.w_en, 0)
        for src, op in commands:
            await stream_put(ctx, dut.cmd, {"src": src, "op": op})
        await ctx.tick().repeat(dut.groups + 3)
        counts["lookups"] = ctx.get(dut.lookups)

    async def monitor(ctx):
        t = 0
        async for vals in ctx.tick().sample(dut.beat.valid, dut.beat.group, dut.beat.op,
                                            dut.beat.weights, dut.beat.first, dut.beat.last,
                                            dut.beat.issue_valid, dut.beat.issue_group):
            (_, _, bv, bg, bop, bw, bf, bl, iv, ig) = vals   # clk hit, reset, then samples
            if bv:
                beats.append((bg, bop, [bw[i] for i in range(lanes)], bf, bl))
                counts["beat_at"].append(t)
            if iv:
                issues.append(ig)
                counts["issue_at"].append(t)
            t += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_testbench(monitor, background=True)
    sim.run()
    return dut, beats, issues, counts


# Lanes: one, a partial last group, exact groups, a single group of 16, 32 and 64 lanes
# (beyond the 16 of the old limit), a partial one of 64 lanes; with and without the register
# after the memory.
@pytest.mark.parametrize("out_register", [False, True])
@pytest.mark.parametrize("lanes, n_dst", [(1, 5), (3, 10), (4, 8), (8, 10), (16, 7), (32, 96),
                                          (64, 64), (64, 100)])
def test_lookup_reads_exactly_the_requested_rows(lanes, n_dst, out_register):
    seed = lanes * 100 + n_dst
    rng = np.random.default_rng(seed)
    n_src = 9
    w = rng.integers(-128, 128, (n_src, n_dst))
    rows = [int(r) for r in rng.integers(0, n_src, 6)]
    cmds = [(r, Op.READ) for r in rows[:3]] + [(0, Op.VISIT)] + \
           [(r, Op.READ) for r in rows[3:]]
    dut, beats, issues, counts = _lookup_run(n_src, n_dst, lanes, w, cmds,
                                             out_register=out_register)
    G = dut.groups
    assert len(beats) == len(cmds) * G, f"seed {seed}: one beat per group per row"
    issue_at, beat_at = counts["issue_at"], counts["beat_at"]
    assert beat_at == [t + 1 for t in issue_at], f"seed {seed}: a beat one cycle after its issue"
    assert beat_at == list(range(beat_at[0], beat_at[0] + len(beat_at))), \
        f"seed {seed}: rows back to back, no gap (beats at {beat_at})"
    words = weight_words(w, lanes)
    for c, (src, op) in enumerate(cmds):
        for g in range(G):
            bg, bop, bw, bf, bl = beats[c * G + g]
            assert bg == g and bop == op and bf == (g == 0) and bl == (g == G - 1), f"seed {seed}"
            expect = words[src * G + g] if op == Op.READ else [0] * lanes
            assert bw == expect, f"seed {seed}: row {src} group {g}"
    assert counts["lookups"] == 6 * n_dst, f"seed {seed}: only ACCUMULATE rows count"


def test_weight_memory_load_then_read():
    # Weights written one by one through the write port are what a row walk returns.
    n_src, n_dst, lanes = 4, 6, 4
    rng = np.random.default_rng(3)
    w = rng.integers(-128, 128, (n_src, n_dst))
    writes = [(i, j, int(w[i, j]) & 0xFF) for i in range(n_src) for j in range(n_dst)]
    cmds = [(i, Op.READ) for i in range(n_src)]
    dut, beats, _, _ = _lookup_run(n_src, n_dst, lanes, None, cmds, writes)
    words = weight_words(w, lanes)
    got = [b[2] for b in beats]
    assert got == words, "seed 3"


def test_weight_words_layout():
    w = np.arange(10).reshape(2, 5)
    assert weight_words(w, 2) == [[0, 1], [2, 3], [4, 0], [5, 6], [7, 8], [9, 0]]


def test_lookup_bad_parameters():
    with pytest.raises(ValueError, match="lanes must be from 1 to 64, not 65"):
        WeightLookup(4, 4, 65, **OPS)
    with pytest.raises(TypeError, match="out_register must be a bool"):
        WeightLookup(4, 4, 2, out_register=1, **OPS)
    with pytest.raises(TypeError, match="n_src"):
        WeightLookup(0, 4, 1, **OPS)
    with pytest.raises(ValueError, match="shape"):
        WeightLookup(4, 4, 2, np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"\[-128, 127\]"):
        WeightLookup(2, 2, 2, np.full((2, 2), 300))
    with pytest.raises(ValueError, match="at most 128 groups, not 129"):
        WeightLookup(2, 129, 1, masked_ops=(Op.VISIT,), **OPS)
    with pytest.raises(TypeError, match="op shape"):
        WeightLookup(2, 4, 1, masked_ops=("SCAN",), **OPS)


# Masked walks: no enabled group, one (the first, the last), a random set, all of them.
@pytest.mark.parametrize("out_register", [False, True])
@pytest.mark.parametrize("lanes, n_dst, mask", [(1, 5, 0), (1, 5, 0b00001), (4, 30, 0b10000000),
                                                (3, 10, "random"), (2, 7, 0b1111)])
def test_masked_walk_visits_only_enabled_groups(lanes, n_dst, mask, out_register):
    seed = 500 + lanes * 10 + n_dst
    rng = np.random.default_rng(seed)
    n_src = 6
    G = -(-n_dst // lanes)
    if mask == "random":
        mask = int(rng.integers(1, 1 << G))
    w = rng.integers(-128, 128, (n_src, n_dst))
    rows = [int(r) for r in rng.integers(0, n_src, 3)]
    # Masked scans back to back, between full rows (ACCUMULATE is not masked here).
    cmds = [(rows[0], Op.READ), (0, Op.VISIT), (0, Op.VISIT),
            (rows[1], Op.READ), (0, Op.VISIT), (rows[2], Op.READ)]
    dut, beats, issues, counts = _lookup_run(n_src, n_dst, lanes, w, cmds,
                                             masked_ops=(Op.VISIT,), group_en=mask,
                                             out_register=out_register)
    enabled = [g for g in range(G) if mask >> g & 1]
    expect = []
    for src, op in cmds:
        visit = enabled if op == Op.VISIT else list(range(G))
        words = weight_words(w, lanes)
        for i, g in enumerate(visit):
            weights = words[src * G + g] if op == Op.READ else [0] * lanes
            expect.append((g, op, weights, i == 0, i == len(visit) - 1))
    assert beats == expect, f"seed {seed}, mask {mask:#x}"
    assert issues == [b[0] for b in expect], f"seed {seed}"
    assert counts["lookups"] == 3 * n_dst, f"seed {seed}"


def test_masked_walk_takes_one_cycle_per_enabled_group():
    # Back-to-back masked scans of k enabled groups issue on k consecutive cycles each; an
    # empty one costs one idle cycle.
    n_dst, lanes = 12, 1
    mask = 0b100100010010
    cycles = {}
    dut = WeightLookup(2, n_dst, lanes, masked_ops=(Op.VISIT,), **OPS)

    async def bench(ctx):
        ctx.set(dut.beat.group_en, mask)
        for _ in range(3):
            await stream_put(ctx, dut.cmd, {"src": 0, "op": Op.VISIT})
        await ctx.tick().repeat(8)

    async def monitor(ctx):
        t = 0
        async for _, _, iv in ctx.tick().sample(dut.beat.issue_valid):
            if iv:
                cycles.setdefault("issues", []).append(t)
            t += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_testbench(monitor, background=True)
    sim.run()
    t = cycles["issues"]
    assert len(t) == 3 * bin(mask).count("1")
    assert t == list(range(t[0], t[0] + len(t))), f"issue cycles {t}: gaps between groups"


# Widths of the priority encoder: the chain (up to 8 bits), trees with a partial upper half,
# the 64 lanes of a fire mask, the 128 groups of a masked walk.
@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 33, 57, 64, 128])
def test_lowest_set_bit(n):
    from amaranth.hdl import Module, Signal
    from spikegate.hdl.arith import lowest_set_bit
    seed = 900 + n
    rng = np.random.default_rng(seed)
    m = Module()
    bits = Signal(n)
    low = lowest_set_bit(m, bits, "low")
    values = [0, 1, (1 << n) - 1, 1 << (n - 1)] + \
        [1 << int(rng.integers(n)) for _ in range(40)] + \
        [int("".join(rng.choice(["0", "1"], n)), 2) for _ in range(100)]

    async def bench(ctx):
        for v in values:
            ctx.set(bits, v)
            want = (v & -v).bit_length() - 1 if v else 0
            assert ctx.get(low) == want, f"seed {seed}: bits {v:#x}"

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
