"""The SPRAM weight memory (hdl/spram.py) in Amaranth's simulator: the model of one
``SB_SPRAM256KA`` (registered read, nibble-masked write, output held without chip select),
:class:`SPRAMMemory` against a dictionary (byte lanes, two 8-bit words per SPRAM word, several
cells side by side and several banks deep), and :class:`WeightLookup` with its weights in
SPRAM against the same lookup in block RAM: the same beats at the same cycles."""

import numpy as np
import pytest
from amaranth.hdl import signed
from amaranth.lib import data
from amaranth.sim import Simulator

from spikegate.sim.amaranth_tb import LOOKUP_TEST_OPS as OPS, LookupTestOp as Op
from spikegate.hdl.lookup import WeightLookup
from spikegate.hdl.spram import (SPRAM_MIN_BITS, SPRAMCell, SPRAMMemory, has_spram,
                                 prefers_spram, spram_count, spram_geometry)
from spikegate.sim.amaranth_tb import stream_put


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_cell_model_ports():
    dut = SPRAMCell()
    seen = {}

    async def bench(ctx):
        async def cycle(**kw):
            for k in ("address", "datain", "maskwren", "wren", "chipselect"):
                ctx.set(getattr(dut, k), kw.get(k, 0))
            await ctx.tick()
            return ctx.get(dut.dataout)
        await cycle(address=5, datain=0xABCD, maskwren=0xF, wren=1, chipselect=1)
        await cycle(address=9, datain=0x1234, maskwren=0xF, wren=1, chipselect=1)
        # Nibble mask: only bits 4..7 and 12..15 of address 5 change.
        seen["after_write"] = await cycle(address=5, datain=0x9876, maskwren=0b1010, wren=1,
                                          chipselect=1)
        seen["read5"] = await cycle(address=5, chipselect=1)
        seen["held"] = await cycle(address=9)            # no chip select: holds
        seen["write_other"] = await cycle(address=9, datain=0x5555, maskwren=0xF, wren=1)
        seen["read9"] = await cycle(address=9, chipselect=1)
        seen["read_unwritten"] = await cycle(address=16383, chipselect=1)

    _run(dut, bench)
    assert seen["read5"] == 0x9B7D, hex(seen["read5"])
    assert seen["after_write"] == (~0x9876) & 0xFFFF, "write cycle: undefined (the model inverts)"
    assert seen["held"] == 0x9B7D
    assert seen["read9"] == 0x1234, "a write without chip select changes nothing"
    assert seen["read_unwritten"] == 0


@pytest.mark.parametrize("depth, width, expect", [
    (1, 8, (2, 1, 1)),
    (32768, 8, (2, 1, 1)),
    (32769, 8, (2, 1, 2)),
    (784 * 83, 16, (1, 1, 4)),
    (784 * 84, 16, (1, 1, 5)),
    (100, 24, (1, 2, 1)),
    (16385, 128, (1, 8, 2)),
])
def test_geometry(depth, width, expect):
    assert spram_geometry(depth, width) == expect
    assert spram_count(depth, width) == expect[1] * expect[2]


def test_geometry_refuses():
    with pytest.raises(ValueError, match="multiple of 8"):
        spram_geometry(10, 12)
    with pytest.raises(ValueError, match="depth"):
        spram_geometry(0, 8)


# (depth, lanes): 8-bit words packed two per SPRAM word over two banks; 16-bit words over
# three banks; 24-bit words over two cells (the second half-used); 40-bit words, 3 x 2 cells.
@pytest.mark.parametrize("depth, lanes", [(40000, 1), (40000, 2), (300, 3), (20000, 5)])
def test_memory_against_dict(depth, lanes):
    seed = 1000 * lanes + depth % 997
    rng = np.random.default_rng(seed)
    dut = SPRAMMemory(data.ArrayLayout(signed(8), lanes), depth)
    # Addresses near the bank and packing boundaries, and random ones.
    hot = [0, 1, depth - 1, depth - 2] + [a for b in (16384, 32768) for a in (b - 1, b, b + 1)
                                          if a < depth]
    addrs = hot + [int(a) for a in rng.integers(0, depth, 20)]
    ref = {}
    log = []

    async def bench(ctx):
        expect = None            # what r_data must show (None: undefined, after a write)
        for i in range(400):
            a = int(rng.choice(addrs))
            op = rng.choice(["write", "read", "idle"], p=[0.4, 0.4, 0.2])
            ctx.set(dut.w_en, 0)
            ctx.set(dut.r_en, 0)
            if op == "write":
                en = int(rng.integers(1, 1 << lanes))
                vals = [int(v) for v in rng.integers(-128, 128, lanes)]
                ctx.set(dut.w_addr, a)
                ctx.set(dut.w_data, vals)
                ctx.set(dut.w_en, en)
                word = ref.setdefault(a, [0] * lanes)
                for l in range(lanes):
                    if en >> l & 1:
                        word[l] = vals[l]
            elif op == "read":
                ctx.set(dut.r_addr, a)
                ctx.set(dut.r_en, 1)
                # A concurrent write address must not matter for a read.
                ctx.set(dut.w_addr, int(rng.integers(0, depth)))
            else:
                # Nor a read address without r_en: the data holds.
                ctx.set(dut.r_addr, int(rng.choice(addrs)))
            await ctx.tick()
            got = [int(v) for v in ctx.get(dut.r_data)]
            if op == "read":
                expect = list(ref.get(a, [0] * lanes))
            elif op == "write":
                # A write to the bank of the last read leaves it undefined; keep it simple.
                expect = None
            if expect is not None:
                log.append((i, op, a, got, expect))

    _run(dut, bench)
    assert len(log) > 100
    for i, op, a, got, expect in log:
        assert got == expect, f"seed {seed}: cycle {i} ({op}, address {a}): {got} != {expect}"


def _lookup_trace(kind, n_src, n_dst, lanes, writes, commands, readbacks, seed):
    """Every output of a WeightLookup, cycle by cycle, while it loads weights, walks rows
    (with random gaps) and reads weights back."""
    dut = WeightLookup(n_src, n_dst, lanes, weight_memory=kind, **OPS)
    rng = np.random.default_rng(seed)
    trace = []
    rb = []

    async def bench(ctx):
        for src, dst, v in writes:
            ctx.set(dut.weights.w_en, 1)
            ctx.set(dut.weights.w_src, src)
            ctx.set(dut.weights.w_dst, dst)
            ctx.set(dut.weights.w_data, v)
            await ctx.tick()
        ctx.set(dut.weights.w_en, 0)
        for src, op in commands:
            await stream_put(ctx, dut.cmd, {"src": src, "op": op}, rng=rng, p_stall=0.3)
        await ctx.tick().repeat(dut.groups + 3)
        for src, dst in readbacks:
            ctx.set(dut.weights.rb_en, 1)
            ctx.set(dut.weights.rb_src, src)
            ctx.set(dut.weights.rb_dst, dst)
            await ctx.tick()
            ctx.set(dut.weights.rb_en, 0)
            rb.append(ctx.get(dut.weights.rb_data))
            await ctx.tick()
            rb.append(ctx.get(dut.weights.rb_data))            # held one more cycle
        trace.append(("lookups", ctx.get(dut.lookups)))

    async def monitor(ctx):
        async for vals in ctx.tick().sample(dut.beat.valid, dut.beat.group, dut.beat.op,
                                            dut.beat.weights, dut.beat.first, dut.beat.last,
                                            dut.beat.issue_valid, dut.beat.issue_group, dut.busy):
            _, _, bv, bg, bop, bw, bf, bl, iv, ig, busy = vals
            trace.append((bv, bg, bop, [int(x) for x in bw] if bv else None, bf, bl, iv, ig, busy))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.add_testbench(monitor, background=True)
    sim.run()
    return trace, rb


# (n_src, n_dst, lanes): 8-bit words over two banks (rows 0..299 x 120 > 32768 words),
# 16-bit words over two banks, 24-bit words in two cells side by side.
@pytest.mark.parametrize("n_src, n_dst, lanes", [(300, 120, 1), (300, 120, 2), (20, 9, 3)])
def test_lookup_spram_matches_ebr(n_src, n_dst, lanes):
    seed = n_src + n_dst + lanes
    rng = np.random.default_rng(seed)
    rows = sorted({0, n_src - 1, n_src // 2, *(int(r) for r in rng.integers(0, n_src, 3))})
    w = rng.integers(-128, 128, (n_src, n_dst))
    cols = sorted({0, n_dst - 1, *(int(c) for c in rng.integers(0, n_dst, 6))})
    writes = [(r, c, int(w[r, c])) for r in rows for c in cols]
    rng.shuffle(writes)
    ops = [Op.READ, Op.READ, Op.VISIT, Op.RESET]
    commands = [(int(rng.choice(rows)), ops[int(rng.integers(0, 4))]) for _ in range(10)]
    readbacks = [(r, c) for r, c, _ in writes[:12]] + [(1, 1)]
    ebr = _lookup_trace("ebr", n_src, n_dst, lanes, writes, commands, readbacks, seed)
    spram = _lookup_trace("spram", n_src, n_dst, lanes, writes, commands, readbacks, seed)
    for i, (a, b) in enumerate(zip(ebr[0], spram[0])):
        assert a == b, f"seed {seed}: cycle {i}: block RAM {a} != SPRAM {b}"
    assert len(ebr[0]) == len(spram[0]), f"seed {seed}"
    assert ebr[1] == spram[1], f"seed {seed}: read-back"
    # The read-back returns the weights written (0 where none was), on two cycles each.
    written = {(r, c): v for r, c, v in writes}
    expect = [written.get(rc, 0) for rc in readbacks for _ in range(2)]
    assert [int(v) for v in spram[1]] == expect, f"seed {seed}"
    beats = [t for t in spram[0] if t[0] == 1 and t[3] is not None]
    assert any(any(x != 0 for x in t[3]) for t in beats), f"seed {seed}: no weight seen"


class _FakePlatform:
    def __init__(self, device):
        self.device = device


def test_memory_kind_rule():
    up5k, ecp5 = _FakePlatform("iCE40UP5K"), _FakePlatform("LFE5U-85F")
    assert has_spram(up5k) and not has_spram(ecp5) and not has_spram(None)
    big = WeightLookup(784, 80, 2, **OPS)          # 784 * 40 words of 16 bits > SPRAM_MIN_BITS
    small = WeightLookup(64, 64, 3, **OPS)
    assert prefers_spram(784 * 40, 16) and 784 * 40 * 16 > SPRAM_MIN_BITS
    assert big.memory_kind(up5k) == "spram"
    assert big.memory_kind(ecp5) == big.memory_kind(None) == "ebr"
    assert small.memory_kind(up5k) == "ebr"
    big.weight_memory = "ebr"
    assert big.memory_kind(up5k) == "ebr"
    small.weight_memory = "spram"
    assert small.memory_kind(None) == "spram"
    with pytest.raises(ValueError, match="weight_memory must be one of auto, ebr, spram"):
        small.weight_memory = "bram"
    with pytest.raises(ValueError, match="weight_memory"):
        WeightLookup(4, 4, 1, weight_memory="flash", **OPS)
    for dut in (big, small):
        dut._MustUse__silence = True        # only the rule is under test, nothing is built
