"""One PD layer (hdl/pd_layer.py) in Amaranth's simulator against the golden network
(golden/pdnn_fixed.py): every frame's spike counts, accumulators, decoded values and
activations, under random stalls on its input and output streams, hidden and last layers,
lane counts that do and do not divide the layer."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from spikegate.golden import sigma_delta_fixed as sdf
from spikegate.golden.fixed import signed_range
from spikegate.golden.pdnn_fixed import PDFixedNetwork, first_mismatch
from spikegate.hdl import pd_arith
from spikegate.hdl.pd_layer import PDLayer
from spikegate.sim.pd_amaranth_tb import get_values, monitor_trace, put_frames
from spikegate.sim.pd_trace import LayerTraceRecorder

F = sdf.SDFixedFormat
DIGITS = F.from_float(1 / 1.1, 0.4156, w_frac=7)
NARROW = F.from_float(0.75, 0.05, ka_frac=6, gain_frac=4, kb_frac=6, x_width=10, x_frac=4,
                      phi_frac=4, a_width=9, spike_width=3, phi_width=7, w_frac=3, acc_width=10,
                      y_width=11, y_frac=5)
NEXT = F.from_float(0.5, 0.5, x_width=9, x_frac=3)


def random_layer(seed, n_src, n_dst, fmt):
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, (n_src, n_dst))
    lo, hi = signed_range(fmt.y_width)
    b = rng.integers(lo // 8, hi // 8, n_dst)
    return rng, w, b


def run_layer(layer, frames, *, seed, p_stall):
    """Frames through ``layer``; returns the trace recorder and the activations received."""
    rec = LayerTraceRecorder(layer.lookup.n_src, layer.lookup.n_dst)
    out = []
    rng = np.random.default_rng(seed)

    async def producer(ctx):
        await put_frames(ctx, layer.i_stream, frames, rng=rng, p_stall=p_stall)

    async def consumer(ctx):
        await get_values(ctx, layer.o_stream, len(frames) * layer.lookup.n_dst, out,
                         rng=np.random.default_rng(seed + 1), p_stall=p_stall)
        await ctx.tick().repeat(3)

    sim = Simulator(layer)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)

    async def monitor(ctx):
        await monitor_trace(ctx, layer.trace, rec)

    sim.add_testbench(monitor, background=True)
    sim.run()
    return rec, np.array(out, np.int64).reshape(len(frames), -1)


class _HW:
    """The hardware's trace of one layer, in the shape first_mismatch compares."""
    def __init__(self, rec, act_out, events=None):
        a = rec.arrays()
        self.s, self.u, self.y, self.act = [a["s"]], [a["u"]], [a["y"]], [act_out]
        self.klass = np.zeros(len(act_out), np.int64)
        self.trace_act = a["act"]


# Axes: the sizes and lanes (lanes dividing n_dst, not dividing it, one group, one lane), the
# layer's place (hidden: activation in NEXT's format; last: z), the format and stimulus
# (pixel-like activations with the digits format; the narrow format with full-range inputs,
# where a, s, phi, u and y saturate), and stalls on both streams.
CASES = [
    # n_src, n_dst, lanes, hidden, fmt
    (6, 8, 4, True, "digits"),
    (7, 5, 2, False, "narrow"),
    (5, 3, 4, True, "narrow"),       # one lane group: every row re-reads the group just written
    (4, 6, 1, False, "digits"),
]


@pytest.mark.parametrize("n_src, n_dst, lanes, hidden, fmt_name", CASES)
@pytest.mark.parametrize("p_stall", [0.0, 0.4])
def test_layer_matches_golden(n_src, n_dst, lanes, hidden, fmt_name, p_stall):
    fmt = {"digits": DIGITS, "narrow": NARROW}[fmt_name]
    seed = 500 + 10 * n_src + n_dst + lanes + int(p_stall * 10)
    rng, w, b = random_layer(seed, n_src, n_dst, fmt)
    T = 24
    lo, hi = signed_range(fmt.x_width)
    if fmt_name == "digits":
        frames = np.cumsum(rng.integers(-30, 31, (T, n_src)), axis=0) % (1 << fmt.x_frac)
    else:
        frames = rng.integers(lo, hi + 1, (T, n_src))
        frames[3] = 0
        frames[6:9] = hi
    frames[5] = 0                                        # an all-zero frame
    if hidden:
        net = PDFixedNetwork([w, np.zeros((n_dst, 2), np.int64)], [b, np.zeros(2, np.int64)],
                             [fmt, NEXT])
    else:
        net = PDFixedNetwork([w], [b], [fmt])
    g = net.run(frames)
    layer = PDLayer(n_src, n_dst, lanes, fmt, NEXT if hidden else None, w, b)
    rec, out = run_layer(layer, frames, seed=seed, p_stall=p_stall)
    hw = _HW(rec, out)
    exp = g.frames(0)
    exp.s, exp.u, exp.y, exp.act = exp.s[:1], exp.u[:1], exp.y[:1], exp.act[:1]
    exp.events, exp.spikes = exp.events[:, :1], exp.spikes[:, :1]
    exp.klass = np.zeros(T, np.int64)
    bad = first_mismatch(hw, exp, f"seed {seed}")
    assert bad is None, bad
    assert np.array_equal(hw.trace_act, out), f"seed {seed}: trace act differs from o_stream"
    if fmt_name == "narrow":
        acc_lo, acc_hi = signed_range(fmt.acc_width)
        assert (np.isin([acc_lo, acc_hi], g.u[0])).any(), f"seed {seed}: no accumulator saturated"


def test_layer_counts_events_and_spikes():
    """``events`` and ``spikes`` count inputs with s != 0 and sum |s| since clear_stats."""
    fmt, n_src, n_dst = NARROW, 6, 4
    seed = 601
    rng, w, b = random_layer(seed, n_src, n_dst, fmt)
    frames = rng.integers(-200, 200, (5, n_src))
    g = PDFixedNetwork([w], [b], [fmt]).run(frames)
    layer = PDLayer(n_src, n_dst, 2, fmt, None, w, b)
    counts = []

    async def bench(ctx):
        ctx.set(layer.o_stream.ready, 1)
        for frame in frames:
            ctx.set(layer.clear_stats, 1)
            await ctx.tick()
            ctx.set(layer.clear_stats, 0)
            for v in frame:
                ctx.set(layer.i_stream.payload, {"x": int(v)})
                ctx.set(layer.i_stream.valid, 1)
                await ctx.tick().until(layer.i_stream.ready)
            ctx.set(layer.i_stream.valid, 0)
            await ctx.tick().until(~layer.busy)
            counts.append((ctx.get(layer.events), ctx.get(layer.spikes)))

    sim = Simulator(layer)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert [c[0] for c in counts] == g.events[:, 0].tolist(), f"seed {seed}: events"
    assert [c[1] for c in counts] == g.spikes[:, 0].tolist(), f"seed {seed}: spikes"


def test_layer_bad_parameters():
    with pytest.raises(ValueError, match="w_width"):
        PDLayer(4, 4, 2, F.from_float(0.5, 0.5, w_width=6))
    with pytest.raises(ValueError, match="y_frac"):
        PDLayer(4, 4, 2, F.from_float(0.5, 0.5, y_frac=2, kb_frac=12),
                F.from_float(0.5, 0.5, x_frac=4))
    with pytest.raises(ValueError, match="biases"):
        PDLayer(4, 4, 2, NARROW, biases=[1 << 20] * 4)
    with pytest.raises(TypeError, match="SDFixedFormat"):
        PDLayer(4, 4, 2, None)


def _wrapping_accumulate(u, w, subtract, fmt):
    from amaranth.hdl import Mux, Value
    u, w = Value.cast(u), Value.cast(w)
    return Mux(subtract, u - w, u + w)[:fmt.acc_width].as_signed()


def _through_cuts(cut, n, value):
    """``value`` through ``n`` pipeline stages (a mutant keeps the step's latency)."""
    for _ in range(n if cut is not None else 0):
        value, = cut(value)
    return value


def _flooring_decode(m, u, y_prev, fmt, name="dec", cut=None):
    from amaranth.hdl import signed
    from spikegate.hdl.saturate import saturate
    decay = pd_arith.times(y_prev, fmt.ka) >> fmt.ka_frac
    spikes = pd_arith.round_shift(pd_arith.times(u, fmt.kb), fmt.kb_frac + fmt.w_frac - fmt.y_frac)
    return _through_cuts(cut, pd_arith.DECODE_CUTS, saturate(decay + spikes, signed(fmt.y_width)))


def _flooring_quantize(m, a, phi, fmt, name="q", cut=None):
    from amaranth.hdl import Cat, Value, signed
    from spikegate.hdl.saturate import saturate
    p = Value.cast(phi) + a
    s = saturate(p >> fmt.phi_frac, signed(fmt.spike_width))
    phi_new = saturate(p - (s << fmt.phi_frac), signed(fmt.phi_width))
    both = _through_cuts(cut, pd_arith.QUANTIZE_CUTS, Cat(s, phi_new))
    return (both[:fmt.spike_width].as_signed(), both[fmt.spike_width:].as_signed())


# Hardware with one wrong step (a missing saturation, a rounding that floors) fails the
# comparison test_layer_matches_golden makes; the unchanged hardware (None) passes it.
@pytest.mark.parametrize("step, mutant", [(None, None),
                                          ("accumulate", _wrapping_accumulate),
                                          ("decode", _flooring_decode),
                                          ("quantize", _flooring_quantize)])
def test_mutated_hardware_fails_the_comparison(monkeypatch, step, mutant):
    if step is not None:
        monkeypatch.setattr(pd_arith, step, mutant)
    n_src, n_dst, lanes, fmt, seed = 7, 5, 2, NARROW, 650
    rng, w, b = random_layer(seed, n_src, n_dst, fmt)
    lo, hi = signed_range(fmt.x_width)
    frames = rng.integers(lo, hi + 1, (12, n_src))
    g = PDFixedNetwork([w], [b], [fmt]).run(frames)
    rec, out = run_layer(PDLayer(n_src, n_dst, lanes, fmt, None, w, b), frames, seed=seed,
                         p_stall=0.0)
    hw = _HW(rec, out)
    hw.klass = g.klass                       # a layer has no class: compare s, u, y, act
    bad = first_mismatch(hw, g, f"seed {seed}")
    if step is None:
        assert bad is None, bad
    else:
        assert bad is not None, f"seed {seed}: the mutated {step} went unnoticed"
