"""The PD encoder-quantizer (hdl/pd_encoder.py) in Amaranth's simulator against
golden/sigma_delta_fixed.py: its events over sequences of frames, under random stalls on both
streams."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from spikegate.golden import sigma_delta_fixed as sdf
from spikegate.golden.fixed import signed_range
from spikegate.hdl.pd_encoder import PDEncoder
from spikegate.sim.amaranth_tb import stream_get
from spikegate.sim.pd_amaranth_tb import put_frames

F = sdf.SDFixedFormat
DIGITS = F.from_float(1 / 1.1, 0.4156)
NARROW = F.from_float(0.75, 0.05, ka_frac=6, gain_frac=4, kb_frac=6, x_width=10, x_frac=4,
                      phi_frac=4, a_width=9, spike_width=4, phi_width=7, w_frac=3, acc_width=10,
                      y_width=11, y_frac=5)


def golden_events(frames, fmt):
    """The events the encoder must emit: per frame, ``(i, s_i, end)`` for ``s_i != 0`` and the
    last input (encode_fx, quantize_fx with the state carried over)."""
    n = frames.shape[1]
    x_prev, phi = np.zeros(n, np.int64), np.zeros(n, np.int64)
    out = []
    for x in frames:
        s, phi = sdf.quantize_fx(sdf.encode_fx(x, x_prev, fmt), phi, fmt)
        x_prev = x
        out += [(i, int(s[i]), int(i == n - 1)) for i in range(n) if s[i] != 0 or i == n - 1]
    return out


def _frames(rng, T, n, fmt, kind):
    lo, hi = signed_range(fmt.x_width)
    if kind == "pixels":     # activations in [0, 1), slowly changing, with a few jumps
        x = np.cumsum(rng.integers(-20, 21, (T, n)), axis=0) % (1 << fmt.x_frac)
        x[T // 2] = rng.integers(0, 1 << fmt.x_frac, n)
        return x
    x = rng.integers(lo, hi + 1, (T, n))      # full range: a, s and phi saturate
    x[::5] = rng.choice([lo, hi, 0], (len(x[::5]), n))
    return x


# Axes: sizes (a single input: every read follows the write of the same address), format and
# stimulus, and stalls (none, or on both streams).
@pytest.mark.parametrize("n", [1, 5, 16])
@pytest.mark.parametrize("fmt_name, kind", [("digits", "pixels"), ("narrow", "full")])
@pytest.mark.parametrize("p_stall", [0.0, 0.5])
def test_encoder_events_match_golden(n, fmt_name, kind, p_stall):
    fmt = {"digits": DIGITS, "narrow": NARROW}[fmt_name]
    seed = 300 + n + (7 if kind == "full" else 0) + int(p_stall * 10)
    rng = np.random.default_rng(seed)
    frames = _frames(rng, 30, n, fmt, kind)
    expected = golden_events(frames, fmt)
    dut = PDEncoder(n, fmt)
    got = []

    async def producer(ctx):
        await put_frames(ctx, dut.i_stream, frames, rng=rng, p_stall=p_stall)

    async def consumer(ctx):
        crng = np.random.default_rng(seed + 1)
        ends = 0
        while ends < len(frames):
            p = await stream_get(ctx, dut.o_stream, rng=crng, p_stall=p_stall)
            got.append((int(p.index), int(p.count), int(p.end)))
            ends += int(p.end)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    if got != expected:
        k = next(k for k, (a, b) in enumerate(zip(got, expected)) if a != b) \
            if any(a != b for a, b in zip(got, expected)) else min(len(got), len(expected))
        frame = sum(e[2] for e in expected[:k])
        raise AssertionError(f"seed {seed}, n {n}, {fmt_name}: event {k} (frame {frame}): hardware "
                             f"{got[k] if k < len(got) else None}, golden "
                             f"{expected[k] if k < len(expected) else None}")
    if kind == "full":
        assert any(abs(c) == (1 << fmt.spike_width - 1) - (c > 0) for _, c, _ in expected), \
            f"seed {seed}: no saturated spike count"


def test_encoder_full_rate_and_clear():
    """After reset the state memory is zeroed (n cycles, nothing taken), then one input per
    cycle: with no stalls a frame of n inputs takes n cycles."""
    fmt, n = DIGITS, 12
    dut = PDEncoder(n, fmt)
    times = {}

    async def bench(ctx):
        ctx.set(dut.o_stream.ready, 1)
        ctx.set(dut.i_stream.valid, 1)
        cycle, taken = 0, 0
        while taken < 3 * n:
            ctx.set(dut.i_stream.payload, {"x": (taken * 37) % 256})
            _, _, ready, clearing = await ctx.tick().sample(dut.i_stream.ready, dut.clearing)
            if ready:
                times.setdefault("first", cycle)
                taken += 1
            else:
                assert clearing, f"input refused at cycle {cycle} without clearing"
            cycle += 1
        times["last"] = cycle - 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert times["first"] == n, f"first input taken at cycle {times['first']}, expected {n}"
    assert times["last"] - times["first"] == 3 * n - 1, "not one input per cycle"


def test_encoder_bad_parameters():
    with pytest.raises(TypeError, match="n_src"):
        PDEncoder(0, DIGITS)
    with pytest.raises(TypeError, match="SDFixedFormat"):
        PDEncoder(4, None)
