"""The PD layer's fixed-point steps in hardware (hdl/pd_arith.py) against the golden functions
(golden/sigma_delta_fixed.py, golden/pdnn_fixed.py), value for value, in Amaranth's simulator:
random operands over each format's full ranges, their extremes, and formats chosen to make every
saturation and every shift direction happen."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator

from spikegate.golden import sigma_delta_fixed as sdf
from spikegate.golden.fixed import signed_range
from spikegate.golden.pdnn_fixed import activate_fx
from spikegate.hdl import pd_arith

F = sdf.SDFixedFormat
# One axis: the formats. The digits network's; narrow widths where everything saturates; no
# decay (ka 0) and full decay (ka = 2**ka_frac); a left-shifting encoder and an unshifted decoder.
FORMATS = {
    "digits": F.from_float(1 / 1.1, 0.4156),
    "narrow": F.from_float(0.75, 0.05, ka_frac=6, gain_frac=4, kb_frac=6, x_width=10, x_frac=4,
                           phi_frac=4, a_width=9, spike_width=4, phi_width=7, w_frac=3,
                           acc_width=10, y_width=11, y_frac=5),
    "ka0": F.from_float(0.0, 1.0, ka_frac=4),
    "ka_full": F.from_float(1.0, 0.3, ka_frac=3, gain_frac=2, kb_frac=5, y_frac=5, w_frac=0,
                            y_width=14),
    "left_shift": F(ka=1, ka_frac=0, gain=3, gain_frac=0, kb=5, kb_frac=2, x_width=8, x_frac=0,
                    phi_frac=4, a_width=12, spike_width=6, phi_width=8, w_frac=3, acc_width=12,
                    y_width=16, y_frac=5),
}
NEXT = F.from_float(0.5, 0.5, x_width=9, x_frac=3)   # the next layer's input format


def _operands(rng, n, width):
    lo, hi = signed_range(width)
    v = rng.integers(lo, hi + 1, n)
    v[:4] = [lo, hi, 0, -1]
    small = rng.integers(-40, 41, n // 3)       # values near 0 (where the rounding shows)
    v[4:4 + len(small)] = np.clip(small, lo, hi)
    return v


def _run(m, inputs, outputs, vectors):
    """Drive ``inputs`` (signals) with each row of ``vectors``; read ``outputs``."""
    got = np.zeros((len(vectors), len(outputs)), np.int64)

    async def bench(ctx):
        for k, row in enumerate(vectors):
            for sig, v in zip(inputs, row):
                ctx.set(sig, int(v))
            for j, o in enumerate(outputs):
                got[k, j] = ctx.get(o)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("name", FORMATS)
def test_encoder_and_quantizer_match_golden(name):
    fmt, seed = FORMATS[name], 100 + list(FORMATS).index(name)
    rng = np.random.default_rng(seed)
    n = 600
    x, xp = _operands(rng, n, fmt.x_width), _operands(rng, n, fmt.x_width)
    phi = _operands(rng, n, fmt.phi_width)
    m = Module()
    sx, sxp = Signal(signed(fmt.x_width)), Signal(signed(fmt.x_width))
    sphi = Signal(signed(fmt.phi_width))
    a = pd_arith.encode(m, sx, sxp, fmt)
    s, phi_new = pd_arith.quantize(m, a, sphi, fmt)
    got = _run(m, (sx, sxp, sphi), (a, s, phi_new), np.stack([x, xp, phi], 1))
    ea = sdf.encode_fx(x, xp, fmt)
    es, ephi = sdf.quantize_fx(ea, phi, fmt)
    for j, (what, exp) in enumerate((("a", ea), ("s", es), ("phi", ephi))):
        bad = np.flatnonzero(got[:, j] != exp)
        assert not bad.size, (f"{name}, seed {seed}: {what} of x={x[bad[0]]}, x_prev={xp[bad[0]]}, "
                              f"phi={phi[bad[0]]}: hardware {got[bad[0], j]}, golden {exp[bad[0]]}")
    if name == "narrow":   # the operands reach every saturation of the coder
        lo, hi = signed_range(fmt.a_width)
        assert np.isin([lo, hi], ea).all(), f"seed {seed}: a never saturates"
        assert np.isin(list(signed_range(fmt.spike_width)), es).all(), f"seed {seed}: s never saturates"
        assert np.isin(list(signed_range(fmt.phi_width)), ephi).all(), f"seed {seed}: phi never saturates"


@pytest.mark.parametrize("name", FORMATS)
def test_accumulate_decode_activate_match_golden(name):
    fmt, seed = FORMATS[name], 200 + list(FORMATS).index(name)
    rng = np.random.default_rng(seed)
    n = 600
    u, w = _operands(rng, n, fmt.acc_width), _operands(rng, n, fmt.w_width)
    sub = rng.integers(0, 2, n)
    sub[:2] = 0                                 # u = lo + (-128), hi + 127: both saturate
    y, b = _operands(rng, n, fmt.y_width), _operands(rng, n, fmt.y_width)
    m = Module()
    su, sw, ssub = Signal(signed(fmt.acc_width)), Signal(signed(fmt.w_width)), Signal()
    sy, sb = Signal(signed(fmt.y_width)), Signal(signed(fmt.y_width))
    acc = Signal(signed(fmt.acc_width))
    m.d.comb += acc.eq(pd_arith.accumulate(su, sw, ssub, fmt))
    y_new = pd_arith.decode(m, su, sy, fmt)
    z, act = pd_arith.activate(m, sy, sb, fmt, NEXT)
    z_last, act_last = pd_arith.activate(m, sy, sb, fmt, None, name="last")
    got = _run(m, (su, sw, ssub, sy, sb), (acc, y_new, z, act, act_last),
               np.stack([u, w, sub, y, b], 1))
    lo, hi = signed_range(fmt.acc_width)
    e_acc = np.clip(u + np.where(sub == 1, -w, w), lo, hi)   # one row addition of accumulate_fx
    e_y = sdf.decode_fx(u, y, fmt)
    e_z, e_act = activate_fx(y, b, fmt, NEXT)
    _, e_last = activate_fx(y, b, fmt, None)
    for j, (what, exp) in enumerate((("u + w", e_acc), ("y", e_y), ("z", e_z), ("act", e_act),
                                     ("last act", e_last))):
        bad = np.flatnonzero(got[:, j] != exp)
        assert not bad.size, (f"{name}, seed {seed}: {what} of u={u[bad[0]]}, w={w[bad[0]]}, "
                              f"sub={sub[bad[0]]}, y={y[bad[0]]}, b={b[bad[0]]}: hardware "
                              f"{got[bad[0], j]}, golden {exp[bad[0]]}")
    assert np.isin([lo, hi], e_acc).all(), f"seed {seed}: the accumulator never saturates"
    assert np.isin(list(signed_range(NEXT.x_width)), e_act).any(), f"seed {seed}: act never saturates"


def test_helpers_refuse_bad_arguments():
    with pytest.raises(ValueError, match="c must be"):
        pd_arith.times(Signal(4), -1)


class _Cuts:
    """A ``cut`` for the pipelined steps: plain registers, counted."""

    def __init__(self, m):
        self.m, self.count = m, 0

    def __call__(self, *values):
        self.count += 1
        regs = [Signal.like(v, name=f"cut{self.count}_{k}") if isinstance(v, Signal)
                else Signal(v.shape(), name=f"cut{self.count}_{k}") for k, v in enumerate(values)]
        self.m.d.sync += [r.eq(v) for r, v in zip(regs, values)]
        return regs


def _run_pipelined(m, inputs, outputs, vectors, latency, feed_at=None):
    """One row of ``vectors`` per cycle into ``inputs`` (input ``k`` held ``feed_at[k]`` cycles
    later than the row's first cycle); ``outputs`` read ``latency`` cycles after the row."""
    T = len(vectors)
    feed_at = feed_at or [0] * len(inputs)
    got = np.zeros((T, len(outputs)), np.int64)

    async def bench(ctx):
        for cycle in range(T + latency + max(feed_at)):
            for sig, d, col in zip(inputs, feed_at, range(len(inputs))):
                k = cycle - d
                if 0 <= k < T:
                    ctx.set(sig, int(vectors[k][col]))
            k = cycle - latency
            if 0 <= k < T:
                for j, o in enumerate(outputs):
                    got[k, j] = ctx.get(o)
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


# The same steps with pipeline cuts: the same integers, ENCODE_CUTS + QUANTIZE_CUTS (DECODE_CUTS,
# ACTIVATE_CUTS) cycles later; phi enters quantize with a, b enters activate with y.
@pytest.mark.parametrize("name", FORMATS)
def test_pipelined_steps_match_golden(name):
    fmt, seed = FORMATS[name], 300 + list(FORMATS).index(name)
    rng = np.random.default_rng(seed)
    n = 300
    x, xp = _operands(rng, n, fmt.x_width), _operands(rng, n, fmt.x_width)
    phi = _operands(rng, n, fmt.phi_width)
    u, y, b = (_operands(rng, n, fmt.acc_width), _operands(rng, n, fmt.y_width),
               _operands(rng, n, fmt.y_width))
    m = Module()
    cuts = _Cuts(m)
    sx, sxp = Signal(signed(fmt.x_width)), Signal(signed(fmt.x_width))
    sphi = Signal(signed(fmt.phi_width))
    a = pd_arith.encode(m, sx, sxp, fmt, cut=cuts)
    assert cuts.count == pd_arith.ENCODE_CUTS
    s, phi_new = pd_arith.quantize(m, a, sphi, fmt, cut=cuts)
    assert cuts.count == pd_arith.ENCODE_CUTS + pd_arith.QUANTIZE_CUTS
    enc_lat = cuts.count
    su, sy, sb = Signal(signed(fmt.acc_width)), Signal(signed(fmt.y_width)), Signal(signed(fmt.y_width))
    cuts.count = 0
    y_new = pd_arith.decode(m, su, sy, fmt, cut=cuts)
    assert cuts.count == pd_arith.DECODE_CUTS
    z, act = pd_arith.activate(m, sy, sb, fmt, NEXT, cut=cuts)
    _, last = pd_arith.activate(m, sy, sb, fmt, None, name="last", cut=cuts)
    assert cuts.count == pd_arith.DECODE_CUTS + 2 * pd_arith.ACTIVATE_CUTS
    dec_lat = pd_arith.DECODE_CUTS
    got_e = _run_pipelined(m, (sx, sxp, sphi), (a, s, phi_new), np.stack([x, xp, phi], 1),
                           enc_lat, feed_at=[0, 0, pd_arith.ENCODE_CUTS])
    ea = sdf.encode_fx(x, xp, fmt)
    es, ephi = sdf.quantize_fx(ea, phi, fmt)
    got_d = _run_pipelined(m, (su, sy, sb), (y_new, z, act, last), np.stack([u, y, b], 1),
                           dec_lat)
    e_y = sdf.decode_fx(u, y, fmt)
    e_z, e_act = activate_fx(y, b, fmt, NEXT)
    _, e_last = activate_fx(y, b, fmt, None)
    # a is read when it comes out of encode (ENCODE_CUTS), s and phi one stage later.
    checks = [("s", got_e[:, 1], es), ("phi", got_e[:, 2], ephi), ("y", got_d[:, 0], e_y)]
    got_a = _run_pipelined(m, (sx, sxp), (a,), np.stack([x, xp], 1), pd_arith.ENCODE_CUTS)
    got_z = _run_pipelined(m, (sy, sb), (z, act, last), np.stack([y, b], 1),
                           pd_arith.ACTIVATE_CUTS)
    checks += [("a", got_a[:, 0], ea), ("z", got_z[:, 0], e_z), ("act", got_z[:, 1], e_act),
               ("last act", got_z[:, 2], e_last)]
    for what, hw, exp in checks:
        bad = np.flatnonzero(hw != exp)
        assert not bad.size, (f"{name}, seed {seed}: pipelined {what}, operand row {bad[0]}: "
                              f"hardware {hw[bad[0]]}, golden {exp[bad[0]]}")


# clip (the pipelined steps' saturation) against saturate: every value of a few widths, clipped to
# narrower, equal and wider widths.
@pytest.mark.parametrize("in_width, width", [(6, 3), (6, 5), (6, 6), (6, 8), (2, 1 + 1)])
def test_clip_equals_saturate(in_width, width):
    from spikegate.hdl.saturate import saturate
    m = Module()
    v = Signal(signed(in_width))
    a, b = Signal(signed(width)), Signal(signed(width))
    m.d.comb += [a.eq(pd_arith.clip(v, width)), b.eq(saturate(v, signed(width)))]
    lo, hi = signed_range(in_width)
    vals = np.arange(lo, hi + 1)
    got = _run(m, (v,), (a, b), vals[:, None])
    bad = np.flatnonzero(got[:, 0] != got[:, 1])
    assert not bad.size, (f"clip({vals[bad[0]]}, {width}) = {got[bad[0], 0]}, saturate "
                          f"{got[bad[0], 1]}")
    assert got[:, 0].min() == max(lo, signed_range(width)[0])
