"""The gradient engine of the sparse backward (hdl/ssgd_backward.py) in Amaranth's simulator
against golden/ssgd_train_fixed.sparse_backward_fixed: G1 of digits images bit for bit (every
column of a neuron with events, nothing for the others), with stalls on the event and gradient
streams; with a band so wide that every entry is active, it equals dense_backward_fixed; cycles
track the events; a mutated event_delta fails; the event memory in the SPRAM model gives the same."""

import numpy as np
import pytest
from amaranth.hdl import Elaboratable
from amaranth.sim import Simulator

from spikegate.golden import ssgd_train_fixed as stf
from spikegate.hdl import ssgd_backward
from spikegate.hdl.ssgd_backward import SSGDGradient, expected_cycles
from spikegate.sim.amaranth_tb import stream_get, stream_put
from spikegate.sim.ssgd_cases import digits_network


def golden_cases(tfmt, w, times, labels, dense=False):
    """Per image: (times, u, events (t, j, g), G1) from the golden forward and backward."""
    out = []
    for b in range(len(times)):
        fwd = stf.forward_fixed(w, times[b:b + 1], tfmt)
        back = stf.dense_backward_fixed if dense else stf.sparse_backward_fixed
        gr = back(w, fwd, labels[b:b + 1], tfmt)
        ev = fwd.events
        out.append((times[b], gr.u[0], np.column_stack([ev.t, ev.j, ev.g]), gr.G1))
    return out


def run_engine(dut, cases, *, seed, p_stall):
    """Each case through ``dut``; returns per case the G1 matrix built from o_stream, the
    neurons emitted and the cycles from start to idle."""
    n_in, H = cases[0][3].shape
    results = []
    rng = np.random.default_rng(seed)

    async def bench(ctx):
        for times, u, events, _ in cases:
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            for port, values in ((dut.times, times), (dut.u, u)):
                for a, v in enumerate(values):
                    if port is dut.times and v == dut.tfmt.n_steps:
                        ctx.set(port.w_en, 0)    # never spiked: not written (reads as T)
                        continue
                    ctx.set(port.w_en, 1)
                    ctx.set(port.w_addr, a)
                    ctx.set(port.w_data, int(v))
                    await ctx.tick()
                ctx.set(port.w_en, 0)
            for t, j, g in events:
                await stream_put(ctx, dut.e_stream, {"index": int(j), "step": int(t),
                                                     "g": int(g)}, rng=rng, p_stall=p_stall)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            G1 = np.zeros((n_in, H), np.int64)
            seen = []
            cycles = 1
            if len(events):
                while True:
                    p = await stream_get(ctx, dut.o_stream, rng=rng, p_stall=p_stall)
                    G1[p.index, p.neuron] = p.g1
                    if not seen or seen[-1] != p.neuron:
                        seen.append(int(p.neuron))
                    if p.last:
                        break
            while ctx.get(dut.busy):
                await ctx.tick()
                cycles += 1
            results.append((G1, seen, ctx.get(dut.events), ctx.get(dut.cycles)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return results


def check(results, cases, what, cycles=False):
    """Every image's G1, neurons and events equal golden; with ``cycles``, its cycles equal
    the model (``o_stream`` never stalled)."""
    for k, ((G1, seen, n_ev, cyc), (_, _, events, exp)) in enumerate(zip(results, cases)):
        if cycles:
            want = expected_cycles(events[:, 1], exp.shape[0])
            assert cyc == want, f"{what}: image {k}: {cyc} cycles, the model says {want}"
        assert n_ev == len(events), f"{what}: image {k}: {n_ev} events stored, {len(events)} sent"
        assert seen == sorted(set(events[:, 1].tolist())), f"{what}: image {k}: neurons {seen}"
        bad = np.argwhere(G1 != exp)
        assert not bad.size, (f"{what}: image {k}: G1[{bad[0][0]}, {bad[0][1]}] = "
                              f"{G1[tuple(bad[0])]}, golden {exp[tuple(bad[0])]}")


def digits_cases(n, hidden=64):
    from spikegate.golden.data import load_dataset
    tfmt, w = digits_network(hidden)
    d = load_dataset("digits")
    times = stf.encode(d.x_test[:n], tfmt)
    return tfmt, w, golden_cases(tfmt, w, times, d.y_test[:n])


# The event memory in block RAM, or in the SPRAM model (the UP5K's placement: one port).
@pytest.mark.parametrize("p_stall, event_memory", [(0.0, "ebr"), (0.4, "ebr"), (0.0, "spram")])
def test_gradient_matches_sparse_backward(p_stall, event_memory):
    tfmt, w, cases = digits_cases(3)
    assert all(len(c[2]) for c in cases) and np.abs(cases[0][3]).max() > 0
    dut = SSGDGradient(64, 64, tfmt, event_memory=event_memory)
    assert dut.event_memory_kind(None) == event_memory
    check(run_engine(dut, cases, seed=31, p_stall=p_stall), cases,
          f"stall {p_stall}, events in {event_memory}", cycles=p_stall == 0)


def test_event_memory_refused():
    with pytest.raises(ValueError, match="event_memory must be one of auto, ebr, spram, not 'bram'"):
        SSGDGradient(64, 64, event_memory="bram")


def test_every_entry_active_equals_dense_backward():
    """B_th beyond every |v - V_th|: every (t >= 1, j) is an event; the engine's G1 equals the
    dense fixed-point backward's."""
    from spikegate.golden.data import load_dataset
    tfmt0, w = digits_network(8)
    tfmt = tfmt0.with_(b_th=130.0)                  # b_th_q = 33280 > 32768 + 256
    d = load_dataset("digits")
    times = stf.encode(d.x_test[:2], tfmt)
    cases = golden_cases(tfmt, w, times, d.y_test[:2], dense=True)
    assert all(len(c[2]) == (tfmt.n_steps - 1) * 8 for c in cases)
    check(run_engine(SSGDGradient(64, 8, tfmt), cases, seed=32, p_stall=0.2), cases, "dense")


def test_mutated_event_delta_fails(monkeypatch):
    """event_ks flooring ks instead of rounding half up: G1 differs."""
    def floors(K_t, g, tfmt):
        from amaranth.hdl import unsigned
        from spikegate.hdl.saturate import saturate
        return saturate((K_t * g) >> tfmt.ks_shift, unsigned(tfmt.ks_bits))
    monkeypatch.setattr(ssgd_backward, "event_ks", floors)
    tfmt, w, cases = digits_cases(2)
    with pytest.raises(AssertionError, match="G1"):
        check(run_engine(SSGDGradient(64, 64, tfmt), cases, seed=33, p_stall=0.0), cases, "m")


class _Trainer(Elaboratable):
    """The hidden weights in a WeightLookup, the gradient engine and the update, joined."""

    def __init__(self, n_in, H, lanes, w1, tfmt):
        from spikegate.hdl.lookup import WeightLookup
        from spikegate.hdl.ssgd_update import SSGDUpdate
        self.lookup = WeightLookup(n_in, H, lanes, w1, weight_memory="ebr")
        self.grad = SSGDGradient(n_in, H, tfmt)
        self.update = SSGDUpdate(n_in, H, tfmt)

    def elaborate(self, platform):
        from amaranth.hdl import Module
        from amaranth.lib import wiring
        m = Module()
        m.submodules.lookup, m.submodules.grad = self.lookup, self.grad
        m.submodules.update = self.update
        wiring.connect(m, self.grad.o_stream, self.update.i_stream)
        wiring.connect(m, self.update.weights, self.lookup.weights)
        return m


def train_on_chip(lr1_shift, dither_bits):
    """Gradient engine and update on the weight memory, image after image (each image's
    forward and backward in golden from the weights the previous update left). Returns the
    first difference of W1 from golden sgd_update's after some image (None: equal after every
    image), the initial and the final golden W1."""
    from spikegate.golden.data import load_dataset
    tfmt0, (w1, w2) = digits_network(16)
    tfmt = tfmt0.with_(lr1_shift=lr1_shift, dither_bits=dither_bits)
    d = load_dataset("digits")
    times = stf.encode(d.x_test[:4], tfmt)
    labels = d.y_test[:4]
    n_in, H, lanes = 64, 16, 4
    top = _Trainer(n_in, H, lanes, w1, tfmt)
    dut, lk = top.grad, top.lookup
    G = lk.groups
    expect, got = [], []
    cur = np.asarray(w1, np.int64)

    async def bench(ctx):
        nonlocal cur
        for b in range(len(times)):
            fwd = stf.forward_fixed((cur, w2), times[b:b + 1], tfmt)
            gr = stf.sparse_backward_fixed((cur, w2), fwd, labels[b:b + 1], tfmt)
            cur = stf.sgd_update((cur, w2), gr, tfmt, image_index=b)[0]
            ctx.set(top.update.image, b)
            expect.append(cur)
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            for port, values in ((dut.times, times[b]), (dut.u, gr.u[0])):
                for a, v in enumerate(values):
                    ctx.set(port.w_en, 1)
                    ctx.set(port.w_addr, a)
                    ctx.set(port.w_data, int(v))
                    await ctx.tick()
                ctx.set(port.w_en, 0)
            ev = fwd.events
            for t, j, g in zip(ev.t, ev.j, ev.g):
                await stream_put(ctx, dut.e_stream, {"index": int(j), "step": int(t),
                                                     "g": int(g)})
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            await ctx.tick()
            while ctx.get(dut.busy) or ctx.get(top.update.busy):
                await ctx.tick()
            await ctx.tick().repeat(2)
            w = np.zeros((n_in, H), np.int64)
            for i in range(n_in):
                for g in range(G):
                    row = ctx.get(lk.weight_data[i * G + g])
                    for l in range(lanes):
                        if g * lanes + l < H:
                            w[i, g * lanes + l] = row[l]
            got.append(w)

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for b, (g, e) in enumerate(zip(got, expect)):
        bad = np.argwhere(g != e)
        if bad.size:
            return (f"lr1_shift {lr1_shift}, dither_bits {dither_bits}: after image {b}: "
                    f"W1[{bad[0][0]}, {bad[0][1]}] = {g[tuple(bad[0])]}, golden "
                    f"{e[tuple(bad[0])]}"), w1, expect[-1]
    return None, w1, expect[-1]


# The dither (16 bits, as trained; 0: round half up) with a shift above and below its width.
@pytest.mark.parametrize("lr1_shift, dither_bits", [(12, 16), (5, 16), (12, 0)])
def test_update_gives_golden_weights_after_every_image(lr1_shift, dither_bits):
    """W1 in the memory equals golden's after every image; lr1_shift 5 saturates weights."""
    bad, w1, last = train_on_chip(lr1_shift, dither_bits)
    assert bad is None, bad
    changed = (last != w1).sum()
    assert changed > 20, f"only {changed} weights changed"
    if lr1_shift == 5:
        assert np.isin([-128, 127], last).all() and \
            (np.isin(last, [-128, 127]).sum() > np.isin(w1, [-128, 127]).sum())


def _no_dither(image, shift, bits):
    from amaranth.hdl import Const
    return Const((1 << shift) >> 1, shift)


def _wrapping_step(w, step):
    return (w - step)[:8].as_signed()


# Update hardware with one wrong step (the dither left out; the weight wrapping instead of
# saturating) fails the comparison.
@pytest.mark.parametrize("step, mutant, lr1_shift", [("dither", _no_dither, 12),
                                                     ("apply_step", _wrapping_step, 5)])
def test_mutated_update_fails(monkeypatch, step, mutant, lr1_shift):
    from spikegate.hdl import ssgd_update
    monkeypatch.setattr(ssgd_update, step, mutant)
    bad, _, _ = train_on_chip(lr1_shift, 16)
    assert bad is not None, f"the mutated {step} went unnoticed"
