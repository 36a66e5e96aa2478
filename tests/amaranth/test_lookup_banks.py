"""WeightLookup's ``bank_depth``: the weight memory in banks, each bank's read data registered
before the multiplexer over the banks (the ECP5 PD build's fix for the block RAMs'
clock-to-out). Beats, their cycles, run-time writes and the read-back (two cycles later: its
address registered, its data from the banks' registers) must equal the one-memory
``out_register`` lookup's."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from spikegate.hdl.lookup import WeightLookup, weight_words
from spikegate.sim.amaranth_tb import LOOKUP_TEST_OPS as OPS, LookupTestOp as Op, stream_put


def _run(n_src, n_dst, lanes, init, commands, writes, reads, bank_depth, bank_width=None):
    dut = WeightLookup(n_src, n_dst, lanes, init, out_register=True, bank_depth=bank_depth,
                       bank_width=bank_width, **OPS)
    beats, rb = [], []

    async def bench(ctx):
        for src, dst, v in writes:
            ctx.set(dut.weights.w_en, 1)
            ctx.set(dut.weights.w_src, src)
            ctx.set(dut.weights.w_dst, dst)
            ctx.set(dut.weights.w_data, v)
            await ctx.tick()
        ctx.set(dut.weights.w_en, 0)
        await ctx.tick()
        # One read-back per cycle, each rb_data one cycle after its rb_en (three with banks:
        # the address registered, the data from the banks' registers); no gap between reads.
        latency = 1 if bank_depth is None else 3
        assert dut.rb_latency == latency        # what test benches read back at
        for n in range(len(reads) + 2):             # the same cycles for all latencies
            if n < len(reads):
                ctx.set(dut.weights.rb_en, 1)
                ctx.set(dut.weights.rb_src, reads[n][0])
                ctx.set(dut.weights.rb_dst, reads[n][1])
            else:
                ctx.set(dut.weights.rb_en, 0)
            await ctx.tick()
            if latency - 1 <= n < len(reads) + latency - 1:
                rb.append(ctx.get(dut.weights.rb_data))
        ctx.set(dut.weights.rb_en, 0)
        for src, op in commands:
            await stream_put(ctx, dut.cmd, {"src": src, "op": op})
        await ctx.tick().repeat(dut.groups + 4)

    async def monitor(ctx):
        t = 0
        async for vals in ctx.tick().sample(dut.beat.valid, dut.beat.group, dut.beat.weights,
                                            dut.beat.issue_valid):
            _, _, bv, bg, bw, iv = vals
            if bv:
                beats.append((t, bg, [bw[i] for i in range(lanes)]))
            t += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_testbench(monitor, background=True)
    sim.run()
    return dut, beats, rb


# Bank depths: several banks with a partial last one, exactly two banks, one word per
# bank pair; lanes with a partial last group; banks as one memory or as memories of
# bank_width bits (4: the ECP5 PD build's DP16KD 4096 x 4; 1 and 2; 8, one per lane); a memory
# no deeper than one bank (one memory, registered as one bank).
@pytest.mark.parametrize("n_src, n_dst, lanes, bank_depth, bank_width", [
    (37, 10, 4, 8, None), (16, 8, 4, 16, None), (9, 5, 2, 2, None), (30, 20, 8, 32, None),
    (37, 10, 4, 8, 4), (30, 20, 8, 32, 4), (9, 5, 2, 2, 1), (16, 8, 4, 16, 2),
    (37, 10, 3, 8, 8), (5, 6, 4, 16, None), (5, 6, 4, 16, 4)])
def test_banked_lookup_equals_one_memory(n_src, n_dst, lanes, bank_depth, bank_width):
    seed = n_src * 1000 + n_dst * 10 + bank_depth + (bank_width or 0)
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, (n_src, n_dst))
    writes = [(int(rng.integers(n_src)), int(rng.integers(n_dst)), int(rng.integers(256)))
              for _ in range(12)]
    reads = [(int(rng.integers(n_src)), int(rng.integers(n_dst))) for _ in range(12)]
    reads += [(s, d) for s, d, _ in writes[:4]]
    rows = [int(r) for r in rng.integers(0, n_src, 8)]
    cmds = [(r, Op.READ) for r in rows[:4]] + [(0, Op.VISIT)] + [(r, Op.READ) for r in rows[4:]]
    dut, got, got_rb = _run(n_src, n_dst, lanes, w, cmds, writes, reads, bank_depth,
                            bank_width)
    assert dut.bank_depth == bank_depth and dut.bank_width == bank_width
    _, want, want_rb = _run(n_src, n_dst, lanes, w, cmds, writes, reads, None)
    assert len(want) == len(cmds) * dut.groups, f"seed {seed}: the reference walked every row"
    assert got == want, f"seed {seed}: beats (cycle, group, weights) differ from one memory"
    assert got_rb == want_rb, f"seed {seed}: read-back differs from one memory"
    # And both are the weights: the written image read back.
    ref = w.copy()
    for s, d, v in writes:
        ref[s, d] = v - 256 if v >= 128 else v
    assert got_rb == [int(ref[s, d]) for s, d in reads], f"seed {seed}: read-back"
    words = weight_words(ref, lanes)
    G = dut.groups
    for c, (src, op) in enumerate(cmds):
        for g in range(G):
            expect = words[src * G + g] if op == Op.READ else [0] * lanes
            assert got[c * G + g][2] == expect, f"seed {seed}: row {src} group {g}"


def test_bank_depth_refused():
    with pytest.raises(ValueError, match="bank_depth must be a power of two >= 2 or None, "
                                         "not 12"):
        WeightLookup(4, 4, 2, out_register=True, bank_depth=12, **OPS)
    with pytest.raises(ValueError, match="bank_depth needs out_register=True"):
        WeightLookup(4, 4, 2, bank_depth=16, **OPS)
    with pytest.raises(ValueError, match="not weight_memory 'spram'"):
        WeightLookup(4, 4, 2, out_register=True, bank_depth=16, weight_memory="spram", **OPS)
    with pytest.raises(ValueError, match="bank_width needs bank_depth"):
        WeightLookup(4, 4, 2, out_register=True, bank_width=4, **OPS)
    with pytest.raises(ValueError, match="bank_width must be 1, 2, 4 or 8, not 3"):
        WeightLookup(4, 4, 2, out_register=True, bank_depth=16, bank_width=3, **OPS)
