"""One LIF layer (hdl/lif_layer.py) in Amaranth's simulator against the fixed-point golden
model (golden/ssgd_fixed.py, composed by sim/ssgd_reference.py): every neuron's membrane, spike,
active flag and surrogate value at every step, the output spike stream and the active events,
under random stalls on all three streams; hidden layers and readouts, lane counts that do and
do not divide the layer; and hardware with one wrong step (sim's golden model unchanged) fails
the same comparison."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from spikegate.golden import ssgd_fixed as sf
from spikegate.hdl import lif_arith
from spikegate.hdl.lif_layer import LIFLayer
from spikegate.sim.amaranth_tb import stream_get, stream_put
from spikegate.sim.lif_trace import EventRecorder, LIFTraceRecorder
from spikegate.sim.ssgd_reference import expected_layer, raster_events

FMT = sf.FixedFormat()
NARROW = sf.FixedFormat(v_bits=10, acc_bits=9)      # membranes and sums saturate
SMALL_V = sf.FixedFormat(v_bits=10)                 # membranes saturate


def random_case(seed, B, T, n_src, n_dst, p_spike, w_scale):
    rng = np.random.default_rng(seed)
    x = rng.random((B, T, n_src)) < p_spike
    w = np.clip(np.rint(rng.normal(0, w_scale, (n_src, n_dst))), -128, 127).astype(np.int64)
    return x, w


def run_layer(layer, x, *, seed, p_stall):
    """Rasters ``x`` ``(B, T, n_src)`` through ``layer``; returns the trace recorder, the output
    event recorder and the active events received."""
    B, T, _ = x.shape
    rec = LIFTraceRecorder(layer.n_dst, T)
    out = EventRecorder(layer.n_dst, T - 1)
    actives = []
    rng = np.random.default_rng(seed)
    beats = [b for img in x for b in raster_events(img)]

    async def producer(ctx):
        for b in beats:
            await stream_put(ctx, layer.i_stream, b, rng=rng, p_stall=p_stall)

    async def monitor(ctx):
        async for vals in ctx.tick().sample(*(getattr(layer.trace, k) for k in
                                              ("valid", "step", "index", "v", "spike", "active",
                                               "g"))):
            valid, *rest = vals[2:]
            if valid:
                rec.record(*rest)

    sim = Simulator(layer)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(monitor, background=True)
    if not layer.readout:
        async def spikes(ctx):
            r = np.random.default_rng(seed + 1)
            while len(out.rasters) < B:
                p = await stream_get(ctx, layer.o_stream, rng=r, p_stall=p_stall)
                out.beat(p.index, p.last)

        async def active(ctx):
            # Takes events (ready with random stalls) until the image's trace is complete and
            # nothing is on offer; a count differing from golden's shows in the comparison.
            r = np.random.default_rng(seed + 2)
            a = layer.a_stream
            while True:
                ready = not (p_stall and r.random() < p_stall)
                ctx.set(a.ready, ready)
                _, _, valid, p = await ctx.tick().sample(a.valid, a.payload)
                if valid and ready:
                    actives.append((p.index, p.step, p.g))
                elif len(rec.v) >= B and not valid:
                    return

        sim.add_testbench(spikes)
        sim.add_testbench(active)

    async def wait_done(ctx):
        while len(rec.v) < B:
            await ctx.tick()
        await ctx.tick().repeat(4)
    sim.add_testbench(wait_done)
    sim.run()
    return rec, out, actives


def compare(layer, x, g, rec, out, actives, what):
    """The first difference between hardware and golden, as text (None when equal)."""
    hw = rec.arrays()
    B, T, _ = x.shape
    for k in ("v", "spike", "active", "g"):
        exp, got = getattr(g, k), hw[k]
        if got.shape != exp.shape:
            return f"{what}: {k} has shape {got.shape}, expected {exp.shape}"
        bad = np.argwhere(got != exp)
        if bad.size:
            b, t, j = bad[0]
            return (f"{what}: image {b} step {t} neuron {j}: {k} = {got[b, t, j]}, golden "
                    f"{exp[b, t, j]} (v golden {g.v[b, t, j]})")
    if layer.readout:
        return None
    exp_raster = g.spike[:, :-1].astype(bool)
    got = np.array(out.rasters).reshape(exp_raster.shape) if out.rasters else None
    if got is None or not np.array_equal(got, exp_raster):
        return f"{what}: the output spike stream differs from S[0 .. T-2]"
    exp_act = [(j, t, g.g[b, t, j]) for b in range(B) for t in range(T) for j in
               np.flatnonzero(g.active[b, t])]
    if [tuple(map(int, a)) for a in actives] != [tuple(map(int, a)) for a in exp_act]:
        return f"{what}: active events {actives[:5]}... differ from golden {exp_act[:5]}..."
    return None


# Axes: sizes and lanes (dividing, not dividing, one group, one lane), hidden or readout,
# format (default; narrow with saturating membranes), stalls on every stream.
CASES = [
    # n_src, n_dst, lanes, readout, fmt, T
    (12, 8, 4, False, "default", 12),
    (9, 7, 3, False, "narrow", 10),
    (6, 5, 8, False, "default", 9),       # one lane group
    (10, 6, 1, True, "default", 10),
    (8, 10, 4, True, "narrow", 8),
]


@pytest.mark.parametrize("n_src, n_dst, lanes, readout, fmt_name, T", CASES)
@pytest.mark.parametrize("p_stall", [0.0, 0.4])
def test_layer_matches_golden(n_src, n_dst, lanes, readout, fmt_name, T, p_stall):
    fmt = {"default": FMT, "narrow": NARROW}[fmt_name]
    seed = 700 + 10 * n_src + n_dst + lanes + int(p_stall * 10)
    B = 3
    x, w = random_case(seed, B, T, n_src, n_dst, 0.35, 90 if fmt_name == "narrow" else 60)
    beta_q = sf.quantize_decay(0.9, fmt)
    b_th_q = None if readout else sf.quantize_b_th(0.4, fmt)
    layer = LIFLayer(n_src, n_dst, lanes, T, beta_q, fmt=fmt, b_th_q=b_th_q, weights=w,
                     readout=readout)
    g = expected_layer(x, w, beta_q, fmt, b_th_q, None if readout else layer.lut)
    rec, out, actives = run_layer(layer, x, seed=seed, p_stall=p_stall)
    bad = compare(layer, x, g, rec, out, actives, f"seed {seed}")
    assert bad is None, bad
    if not readout:
        assert g.active.any() and g.spike.any(), f"seed {seed}: no spike or no active entry"
    if fmt_name == "narrow":
        lo, hi = -(1 << fmt.v_bits - 1), (1 << fmt.v_bits - 1) - 1
        assert np.isin([lo, hi], g.v).any(), f"seed {seed}: no membrane saturated"
        raw = x[:, :-1].astype(np.int64) @ w
        assert (np.abs(raw) > (1 << fmt.acc_bits - 1)).any(), f"seed {seed}: no sum saturated"


def _flooring_decay(v, beta_q, fmt):
    """decay with a flooring shift instead of round half up."""
    from spikegate.hdl.arith import times_const
    from amaranth.hdl import Value
    return times_const(Value.cast(v), int(beta_q)) >> fmt.decay_bits


def _wrapping_integrate(v_decayed, syn, spike_prev, fmt):
    """integrate without the saturation (the assignment to v_bits wraps)."""
    from amaranth.hdl import Mux, Value
    return Value.cast(v_decayed) + syn - Mux(spike_prev, sf.threshold_q(fmt), 0)


def _inclusive_band(d, b_th_q, fmt):
    """is_active with |d| <= b_th_q (the band one LSB too wide)."""
    from amaranth.hdl import Value
    d = Value.cast(d)
    return (d <= int(b_th_q)) & (d >= -int(b_th_q))


def _fire_at_threshold(v, fmt):
    """fire with v >= V_th."""
    from amaranth.hdl import Value
    return Value.cast(v) >= sf.threshold_q(fmt)


# Hardware with one wrong step fails the comparison test_layer_matches_golden makes; the
# unchanged hardware (None) passes it.
@pytest.mark.parametrize("step, mutant", [(None, None),
                                          ("decay", _flooring_decay),
                                          ("integrate", _wrapping_integrate),
                                          ("is_active", _inclusive_band),
                                          ("fire", _fire_at_threshold)])
def test_mutated_hardware_fails_the_comparison(monkeypatch, step, mutant):
    if step is not None:
        monkeypatch.setattr(lif_arith, step, mutant)
    n_src, n_dst, lanes, T, seed = 9, 7, 3, 16, 760
    x, w = random_case(seed, 4, T, n_src, n_dst, 0.35, 90)
    w[:4, 0] = 64                     # V[1] = V_th exactly for neuron 0 of image 0
    x[0, 0] = False
    x[0, 0, :4] = True
    beta_q, b_th_q = sf.quantize_decay(0.9, SMALL_V), sf.quantize_b_th(0.4, SMALL_V)
    layer = LIFLayer(n_src, n_dst, lanes, T, beta_q, fmt=SMALL_V, b_th_q=b_th_q, weights=w)
    g = expected_layer(x, w, beta_q, SMALL_V, b_th_q, layer.lut)
    rec, out, actives = run_layer(layer, x, seed=seed, p_stall=0.0)
    bad = compare(layer, x, g, rec, out, actives, f"seed {seed}")
    if step is None:
        assert bad is None, bad
    else:
        assert bad is not None, f"seed {seed}: the mutated {step} went unnoticed"
