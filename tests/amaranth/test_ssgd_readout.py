"""The readout's backward (hdl/ssgd_readout.py) in Amaranth's simulator against
golden/ssgd_train_fixed: R from the hidden spikes, dlog (the EXP table and the divider), u
(from the old W2) and the updated W2 in the weight memory, bit for bit, image after image; the
cycles; a mutated division fails."""

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from spikegate.golden import ssgd_train_fixed as stf
from spikegate.hdl.lookup import WeightLookup
from spikegate.hdl.ssgd_readout import SSGDReadoutBackward
from spikegate.sim.amaranth_tb import stream_put
from spikegate.sim.ssgd_cases import digits_network


class _Readout(Elaboratable):
    def __init__(self, H, C, lanes, w2, tfmt):
        self.lookup = WeightLookup(H, C, lanes, w2, weight_memory="ebr")
        self.bwd = SSGDReadoutBackward(H, C, tfmt)

    def elaborate(self, platform):
        m = Module()
        m.submodules.lookup, m.submodules.bwd = self.lookup, self.bwd
        wiring.connect(m, self.bwd.weights, self.lookup.weights)
        return m


def run(tfmt, w1, w2, times, labels, lanes=4):
    """Returns per image (dlog, u, W2 in memory, cycles) from the hardware and (dlog, u, W2)
    from golden."""
    H, C = w2.shape
    top = _Readout(H, C, lanes, w2, tfmt)
    dut, lk = top.bwd, top.lookup
    hw, gold = [], []
    cur = (np.asarray(w1, np.int64), np.asarray(w2, np.int64))

    async def bench(ctx):
        nonlocal cur
        for b in range(len(times)):
            fwd = stf.forward_fixed(cur, times[b:b + 1], tfmt)
            gr = stf.sparse_backward_fixed(cur, fwd, labels[b:b + 1], tfmt)
            cur = stf.sgd_update(cur, gr, tfmt, image_index=b)
            gold.append((gr.dlog[0], gr.u[0], cur[1]))
            ctx.set(dut.image, b)
            tr = dut.trace
            for t in range(1, tfmt.n_steps):
                for j in range(H):
                    ctx.set(tr.valid, 1)
                    ctx.set(tr.step, t)
                    ctx.set(tr.index, j)
                    ctx.set(tr.spike, int(fwd.s[t, 0, j]))
                    await ctx.tick()
            ctx.set(tr.valid, 0)
            await ctx.tick()
            await stream_put(ctx, dut.i_stream, {"z": [int(v) for v in fwd.z[0]],
                                                 "label": int(labels[b])})
            u = np.zeros(H, np.int64)
            cycles = 0
            while True:
                _, _, busy, w_en, addr, val = await ctx.tick().sample(
                    dut.busy, dut.u.w_en, dut.u.w_addr, dut.u.w_data)
                if w_en:
                    u[addr] = val
                if not busy:
                    break
                cycles += 1
            await ctx.tick().repeat(3)
            G = lk.groups
            w = np.zeros((H, C), np.int64)
            for i in range(H):
                for g in range(G):
                    row = ctx.get(lk.weight_data[i * G + g])
                    for l in range(lanes):
                        if g * lanes + l < C:
                            w[i, g * lanes + l] = row[l]
            hw.append((np.array([ctx.get(dut.dlog_data[c]) for c in range(C)]), u, w, cycles))

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return hw, gold


def compare(hw, gold, what):
    for b, ((dlog, u, w, _), (gd, gu, gw)) in enumerate(zip(hw, gold)):
        for name, a, e in (("dlog", dlog, gd), ("u", u, gu), ("W2", w, gw)):
            bad = np.argwhere(np.asarray(a) != np.asarray(e))
            if bad.size:
                k = tuple(bad[0])
                return f"{what}: image {b}: {name}{list(k)} = {a[k]}, golden {e[k]}"
    return None


def _case(lr2_shift, n=3):
    from spikegate.golden.data import load_dataset
    tfmt0, (w1, w2) = digits_network(16)
    tfmt = tfmt0.with_(lr2_shift=lr2_shift)
    d = load_dataset("digits")
    return tfmt, w1, w2, stf.encode(d.x_test[:n], tfmt), d.y_test[:n]


# lr2_shift as trained (17) and small (6: W2 saturates).
@pytest.mark.parametrize("lr2_shift", [17, 6])
def test_readout_backward_matches_golden(lr2_shift):
    tfmt, w1, w2, times, labels = _case(lr2_shift)
    hw, gold = run(tfmt, w1, w2, times, labels)
    bad = compare(hw, gold, f"lr2_shift {lr2_shift}")
    assert bad is None, bad
    H, C = w2.shape
    e_bits = int(stf.exp_table(tfmt).max()).bit_length()
    want = 3 * C + C * (e_bits + tfmt.p_frac + 2) + H * (C + 4)
    assert [h[3] for h in hw] == [want] * len(hw), f"cycles {[h[3] for h in hw]}, model {want}"
    assert (gold[-1][2] != w2).sum() > 10
    if lr2_shift == 6:
        assert np.isin([-128, 127], gold[-1][2]).any()


def test_mutated_divider_fails(monkeypatch):
    """A divider that drops the last quotient bit (floor(e / S) to an even number) fails."""
    from spikegate.hdl import ssgd_readout
    orig = ssgd_readout._next_remainder

    def skips_lsb(rem, num, bit):
        from amaranth.hdl import Mux
        return Mux(bit == 1, 0, orig(rem, num, bit))
    monkeypatch.setattr(ssgd_readout, "_next_remainder", skips_lsb)
    tfmt, w1, w2, times, labels = _case(17, 2)
    hw, gold = run(tfmt, w1, w2, times, labels)
    assert compare(hw, gold, "mutant") is not None, "the mutated divider went unnoticed"
