"""The TTFS classifier in Amaranth's simulator against the discrete golden model.

Each case compares, per image: class, decision step, spikes and lookups per layer, and the
spike step of every neuron (trace port), exactly. The Verilog of the same design is checked
under cocotb in ``tests/cocotb/test_classifier.py``.
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from spikegate.boards.timing import ICEBREAKER, ULX3S, ULX3S_BANKED
from spikegate.golden.ttfs_discrete import (NO_SPIKE, QUIET_FACTORS_COARSE, DiscreteConfig,
                                            DiscreteNetwork, simulate)
from spikegate.hdl.classifier import TTFSClassifier
from spikegate.hdl.timing import Timing
from spikegate.sim.amaranth_tb import (check_against_golden, image_beats,
                                       random_ttfs_case as random_case, read_trace, read_weights,
                                       stream_get, stream_put)


def result_dict(p, n_layers):
    return {"decided": p.decided, "klass": p.klass, "step": p.decision_step, "error": p.error,
            "cycles": p.cycles, "spikes": [p.spikes[i] for i in range(n_layers)],
            "lookups": [p.lookups[i] for i in range(n_layers - 1)]}


def run_images(net, images, lanes, *, seed=None, p_stall=0.0, trace=True, extra=None, pipeline=0,
               **options):
    """Run ``images`` (steps arrays) through the classifier; returns results and traces."""
    dut = TTFSClassifier.from_network(net, lanes, timing=Timing.preset(pipeline, **options))
    rng = np.random.default_rng(seed) if seed is not None else None
    results, traces = [], []
    n_layers = len(net.sizes)

    async def producer(ctx):
        for steps in images:
            for beat in image_beats(steps):
                await stream_put(ctx, dut.i_stream, beat, rng=rng, p_stall=p_stall)

    async def consumer(ctx):
        for _ in images:
            p = await stream_get(ctx, dut.o_stream, rng=rng, p_stall=p_stall)
            results.append(result_dict(p, n_layers))

    async def sequential(ctx):
        # The trace is only valid until the next image starts: one image at a time.
        for steps in images:
            for beat in image_beats(steps):
                await stream_put(ctx, dut.i_stream, beat, rng=rng, p_stall=p_stall)
            p = await stream_get(ctx, dut.o_stream, rng=rng, p_stall=p_stall)
            results.append(result_dict(p, n_layers))
            traces.append(await read_trace(ctx, dut, net.sizes))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    if extra is not None:
        sim.add_testbench(extra(dut))
    elif trace:
        sim.add_testbench(sequential)
    else:
        sim.add_testbench(producer)
        sim.add_testbench(consumer)
    sim.run()
    return results, traces


# Lane counts that divide the layer sizes and that do not; different lanes per layer.
@pytest.mark.parametrize("lanes", [1, 3, 4, 8, "mixed"])
# Two and three weight layers, sizes below and above the lane count.
@pytest.mark.parametrize("sizes", [(20, 12, 5), (9, 16, 7, 4)])
def test_random_networks(lanes, sizes):
    seed = 100 + (lanes if lanes != "mixed" else 99)
    if lanes == "mixed":
        lanes = (3, 1) if len(sizes) == 3 else (5, 2, 1)
    net, images = random_case(seed, sizes)
    results, traces = run_images(net, images, lanes)
    g = check_against_golden(net, images, results, traces, f"seed {seed}, lanes {lanes}, sizes {sizes}")
    assert (g.decision >= 0).any(), "the case should exercise decisions"


# Pipeline stages: with 8 lanes the 5-neuron layer is one lane group (rows spaced by the
# write distance), with 4 lanes two groups (the state is forwarded), 1 lane many groups.
@pytest.mark.parametrize("pipeline", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("lanes", [1, 4, 8])
@pytest.mark.parametrize("sizes", [(20, 12, 5), (9, 16, 7, 4)])
def test_pipelined_networks_match_golden(pipeline, lanes, sizes):
    seed = 300 + 10 * pipeline + lanes
    net, images = random_case(seed, sizes)
    results, traces = run_images(net, images, lanes, pipeline=pipeline)
    context = f"seed {seed}, lanes {lanes}, sizes {sizes}, pipeline {pipeline}"
    g = check_against_golden(net, images, results, traces, context)
    assert (g.decision >= 0).any(), "the case should exercise decisions"
    base, _ = run_images(net, images, lanes, trace=False)
    extra = [r["cycles"] - b["cycles"] for r, b in zip(results, base)]
    assert min(extra) >= 0, f"{context}: a pipelined run took fewer cycles than pipeline 0"


@pytest.mark.parametrize("pipeline, options", [
    (3, {}), (4, {}), (5, {}),
    (5, {"lazy_clear": False, "head_issue": False, "rb_register": True}),   # ICEBREAKER
    (4, {"rb_register": True}),                                             # ULX3S
])
def test_board_settings_match_golden(pipeline, options):
    """The board builds' settings: pipelined, with the coarse quiet factors."""
    net, images = random_case(321, (20, 12, 5))
    results, traces = run_images(net, images, (3, 2), pipeline=pipeline,
                                 quiet_factors=QUIET_FACTORS_COARSE, **options)
    check_against_golden(net, images, results, traces,
                         f"seed 321, lanes (3, 2), board settings, pipeline {pipeline}")


# The register after the weight memories (``weight_out_register``): at pipeline 0 (state
# written with the beat), 3 (two cycles after it; the 5-neuron layer of 8 lanes is one group)
# and 5 (the command slice too); and lanes beyond 16 (32: a partial second group of the layer
# of 40; 64 lanes run under Verilator, Amaranth's simulator overflows Python's recursion on
# their 64-term sums). Each costs cycles only: one more per pass, never fewer than without.
@pytest.mark.parametrize("pipeline, lanes", [(0, 4), (3, 8), (5, (3, 2)), (4, (32, 8))])
def test_weight_register_and_wide_lanes_match_golden(pipeline, lanes):
    seed = 700 + pipeline
    net, images = random_case(seed, (20, 40, 5))
    context = f"seed {seed}, lanes {lanes}, pipeline {pipeline}, weight_out_register"
    results, traces = run_images(net, images, lanes, pipeline=pipeline, weight_out_register=True)
    g = check_against_golden(net, images, results, traces, context)
    assert (g.decision >= 0).any(), "the case should exercise decisions"
    base, _ = run_images(net, images, lanes, trace=False, pipeline=pipeline)
    extra = [r["cycles"] - b["cycles"] for r, b in zip(results, base)]
    assert min(extra) >= 0 and max(extra) > 0, f"{context}: cycles {extra} more than without"


# Registered weight banks (``weight_bank_depth``, ``weight_bank_width``: the ULX3S MNIST
# build's layout, boards.timing.ULX3S_BANKED, at small depths): layer 0 of (20, 40, 5) is 200
# words at 4 lanes (13 banks of 16, or 25 of 8: consecutive rows cross banks), layer 1 one
# bank or several. The ULX3S's settings (level 4, the read-back registered; with group wakes
# as the digits build, without as the MNIST build), and pipeline 0 / 3 with banks of whole
# words. Cycles: exactly those of the register without banks (its beats' timing).
@pytest.mark.parametrize("pipeline, lanes, depth, width, group_wake", [
    (4, (4, 2), 16, 4, True), (4, 8, 8, 2, False), (0, 3, 64, None, False),
    (3, (4, 8), 8, 8, False),
])
def test_weight_banks_match_golden(pipeline, lanes, depth, width, group_wake):
    seed = 800 + depth
    net, images = random_case(seed, (20, 40, 5))
    context = (f"seed {seed}, lanes {lanes}, pipeline {pipeline}, banks of {depth} x {width}, "
               f"group_wake {group_wake}")
    banks = {"weight_out_register": True, "weight_bank_depth": depth,
             "weight_bank_width": width, "group_wake": group_wake,
             "quiet_factors": QUIET_FACTORS_COARSE, "rb_register": True}
    results, traces = run_images(net, images, lanes, pipeline=pipeline, **banks)
    g = check_against_golden(net, images, results, traces, context)
    assert (g.decision >= 0).any(), "the case should exercise decisions"
    plain = dict(banks, weight_bank_depth=None, weight_bank_width=None)
    base, _ = run_images(net, images, lanes, trace=False, pipeline=pipeline, **plain)
    assert [r["cycles"] for r in results] == [b["cycles"] for b in base], \
        f"{context}: banks change the cycles of the weight register"


# The register before the state write (``cut_before_write``, boards.timing.ULX3S_BANKED's):
# lanes 4 and 2 give layers of 2 and 3 groups (beats two and three cycles after the write of
# their group: both forwarding paths, the late fired / step and the registered state), 8 a
# single group (rows spaced), 1 many; level 3 and 4 with group wakes (masked scans), 5, and
# the MNIST build's banks (with and without the command slice). Cycles: never fewer than without (the write and the fire masks
# come a cycle later; a pass ends a cycle later).
@pytest.mark.parametrize("pipeline, lanes, options", [
    (4, 4, {}), (4, 2, {"group_wake": True}), (4, 8, {}), (3, 1, {}), (3, (4, 2), {}),
    (5, (3, 2), {}),
    (4, (4, 2), {"weight_out_register": True, "weight_bank_depth": 16, "weight_bank_width": 4,
                 "rb_register": True, "quiet_factors": QUIET_FACTORS_COARSE}),
    (4, (4, 2), {"weight_out_register": True, "weight_bank_depth": 16, "weight_bank_width": 4,
                 "rb_register": True, "quiet_factors": QUIET_FACTORS_COARSE,
                 "command_slice": True, "lazy_clear": False, "head_issue": False}),
    # boards.timing.ULX3S_BANKED
])
@pytest.mark.parametrize("sizes", [(20, 12, 5), (9, 16, 7, 4)])
def test_cut_before_write_matches_golden(pipeline, lanes, options, sizes):
    seed = 900 + 10 * pipeline + len(sizes)
    if not isinstance(lanes, int) and len(lanes) != len(sizes) - 1:
        lanes = lanes + lanes[-1:]          # one more weight layer: its lanes as the last's
    net, images = random_case(seed, sizes)
    context = f"seed {seed}, lanes {lanes}, sizes {sizes}, pipeline {pipeline}, {options}"
    results, traces = run_images(net, images, lanes, pipeline=pipeline, cut_before_write=True,
                                 **options)
    g = check_against_golden(net, images, results, traces, context + ", cut_before_write")
    assert (g.decision >= 0).any(), "the case should exercise decisions"
    base, _ = run_images(net, images, lanes, trace=False, pipeline=pipeline, **options)
    extra = [r["cycles"] - b["cycles"] for r, b in zip(results, base)]
    assert min(extra) >= 0, f"{context}: cycles {extra} more than without cut_before_write"


@pytest.mark.parametrize("pipeline", [0, 5])
def test_random_stalls_change_only_cycles(pipeline):
    net, images = random_case(7, (20, 12, 5))
    base, _ = run_images(net, images, 4, trace=False, pipeline=pipeline)
    stalled, _ = run_images(net, images, 4, seed=7, p_stall=0.5, trace=False, pipeline=pipeline)
    for a, b in zip(base, stalled):
        a = dict(a); b = dict(b)
        a.pop("cycles"); b.pop("cycles")
        assert a == b, f"seed 7, pipeline {pipeline}"


def test_edge_cases():
    cfg = DiscreteConfig(timesteps=32, dt=1 / 8)
    rng = np.random.default_rng(11)
    # Weights at the limits, and two output neurons that always fire together.
    w1 = rng.choice(np.array([-128, 127], np.int8), (10, 6))
    w1[:, :3] = 127
    w2 = rng.integers(-128, 128, (6, 4)).astype(np.int8)
    w2[:, 2] = w2[:, 1] = 127
    net = DiscreteNetwork([w1, w2], [200, 100], cfg)
    images = [
        np.full(10, NO_SPIKE, np.int32),             # no input spikes: no decision
        np.zeros(10, np.int32),                      # every input at step 0
        np.array([31] * 10, np.int32),               # every input at the last step
        np.array([0] + [NO_SPIKE] * 9, np.int32),    # a single input
    ]
    results, traces = run_images(net, images, 4)
    check_against_golden(net, images, results, traces, "edge cases")
    assert results[0]["decided"] == 0 and results[0]["step"] == cfg.timesteps
    assert results[1]["decided"] == 1 and results[1]["klass"] == 1   # tie of 1 and 2


def test_bad_events_are_dropped_and_flagged():
    net, images = random_case(5, (20, 12, 5), n_images=1)
    good = image_beats(images[0])
    bad = [{"index": 25, "step": 0, "end": 0}] + good[:-1] + [{"index": 1, "step": 0, "end": 0}] + good[-1:]
    results = []

    def bench(dut):
        async def tb(ctx):
            for beat in bad:
                await stream_put(ctx, dut.i_stream, beat)
            results.append(result_dict(await stream_get(ctx, dut.o_stream), 3))
            for beat in good:
                await stream_put(ctx, dut.i_stream, beat)
            results.append(result_dict(await stream_get(ctx, dut.o_stream), 3))
        return tb

    run_images(net, images, 4, extra=bench, trace=False)
    g = simulate(net, np.asarray(images))
    assert len(results) == 2
    assert results[0]["error"] == 1
    assert results[1]["error"] == 0 and results[1]["klass"] == g.decision[0]
    if g.decision_step[0] > 0:   # the late event (step 0 after later steps) was dropped
        assert results[0]["klass"] == results[1]["klass"]


@pytest.mark.parametrize("timing", [Timing(), ICEBREAKER, ULX3S, ULX3S_BANKED],
                         ids=lambda t: t.key())
def test_reset_mid_image_then_correct(timing):
    net, images = random_case(9, (20, 12, 5), n_images=2)
    got = []

    def bench(dut):
        async def tb(ctx):
            beats = image_beats(images[0])
            for beat in beats[: len(beats) // 2]:
                await stream_put(ctx, dut.i_stream, beat)
            await ctx.tick().repeat(3)
            ctx.set(dut.rst, 1)
            await ctx.tick()
            ctx.set(dut.rst, 0)
            for beat in image_beats(images[1]):
                await stream_put(ctx, dut.i_stream, beat)
            got.append(result_dict(await stream_get(ctx, dut.o_stream), 3))
            got.append(await read_trace(ctx, dut, net.sizes))
        return tb

    _reset_run(net, 4, bench, timing)
    check_against_golden(net, images[1:], [got[0]], [got[1]],
                         f"reset mid image, seed 9, {timing.describe()}")


def _reset_run(net, lanes, make_tb, timing=None):
    # Reset through the simulator's domain reset: wrap the classifier in a module whose
    # sync domain has an explicit reset signal we drive.
    from amaranth.hdl import ClockDomain, Module
    dut = TTFSClassifier.from_network(net, lanes, timing=timing)
    m = Module()
    m.domains.sync = cd = ClockDomain()
    m.submodules.dut = dut
    rst = cd.rst

    class Handle:
        def __getattr__(self, name):
            return getattr(dut, name)
    h = Handle()
    h.rst = rst
    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(make_tb(h))
    sim.run()


def test_new_weights_and_thresholds_are_used_and_read_back():
    net, images = random_case(13, (20, 12, 5), n_images=3)
    rng = np.random.default_rng(14)
    new_w = [rng.integers(-40, 100, w.shape).astype(np.int8) for w in net.weights]
    new_t = [t + 17 for t in net.thetas]
    net2 = DiscreteNetwork(new_w, new_t, net.config)
    got = []
    readback = {}

    def bench(dut):
        async def tb(ctx):
            for l, w in enumerate(new_w):
                for (i, j), v in np.ndenumerate(w):
                    ctx.set(dut.model.w_en, 1)
                    ctx.set(dut.model.w_layer, l)
                    ctx.set(dut.model.w_src, i)
                    ctx.set(dut.model.w_dst, j)
                    ctx.set(dut.model.w_data, int(v) & 0xFF)
                    await ctx.tick()
                ctx.set(dut.model.w_en, 0)
                ctx.set(dut.model.theta_en, 1)
                ctx.set(dut.model.theta_data, new_t[l])
                await ctx.tick()
                ctx.set(dut.model.theta_en, 0)
            for l, w in enumerate(await read_weights(ctx, dut, [w.shape for w in new_w])):
                readback[l] = w
            for img in images:
                for beat in image_beats(img):
                    await stream_put(ctx, dut.i_stream, beat)
                got.append(result_dict(await stream_get(ctx, dut.o_stream), 3))
                got.append(await read_trace(ctx, dut, net.sizes))
        return tb

    run_images(net, images, 4, extra=bench, trace=False)
    for l, w in enumerate(new_w):
        np.testing.assert_array_equal(readback[l], w, err_msg=f"read-back of layer {l}, seed 14")
    check_against_golden(net2, images, got[0::2], got[1::2], "new weights and thresholds, seed 13")
    g_old = simulate(net, np.asarray(images))
    g_new = simulate(net2, np.asarray(images))
    assert not np.array_equal(g_old.spike_steps[1], g_new.spike_steps[1]), "weights should matter"


@pytest.mark.parametrize("rb_register, banks", [(False, None), (True, None), (False, 8),
                                               (True, 16)])
def test_read_back_every_cycle_after_its_latency(rb_register, banks):
    # One read-back per cycle, layers interleaved: each weight arrives rb_latency cycles after
    # its rb_en (1, one more with the register at each layer, two more with weight banks:
    # layer 0 is 60 words, 8 or 4 banks), whatever the next address is.
    net, _ = random_case(21, (20, 12, 5), n_images=1)
    timing = Timing(rb_register=rb_register, weight_out_register=banks is not None,
                    weight_bank_depth=banks, weight_bank_width=None if banks is None else 4)
    dut = TTFSClassifier.from_network(net, (4, 2), timing=timing)
    assert dut.rb_latency == 1 + rb_register + 2 * (banks is not None)
    assert [layer.rb_latency for layer in dut.layers] == \
        [layer.lookup.rb_latency for layer in dut.layers] == [timing.weight_rb_latency] * 2
    addrs = [(l, i, j) for l, w in enumerate(net.weights) for i, j in np.ndindex(*w.shape)]
    addrs = [addrs[k] for k in np.random.default_rng(22).permutation(len(addrs))]
    got = []

    async def tb(ctx):
        while not ctx.get(dut.model.idle):
            await ctx.tick()
        lat = dut.rb_latency
        for n in range(len(addrs) + lat - 1):
            if n < len(addrs):
                l, i, j = addrs[n]
                ctx.set(dut.model.w_layer, l)
                ctx.set(dut.model.w_src, i)
                ctx.set(dut.model.w_dst, j)
                ctx.set(dut.model.rb_en, 1)
            else:
                ctx.set(dut.model.rb_en, 0)
            await ctx.tick()
            if n >= lat - 1:
                got.append(ctx.get(dut.model.rb_data))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    want = [int(net.weights[l][i, j]) & 0xFF for l, i, j in addrs]
    assert got == want, f"read-back with rb_register={rb_register}, banks {banks}, seed 21"


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"sizes": (5,), "thetas": [], "lanes": 4}, ValueError, "sizes"),
    ({"sizes": (5, 3), "thetas": [1, 2], "lanes": 4}, ValueError, "thresholds"),
    ({"sizes": (5, 3), "thetas": [1], "lanes": 65}, ValueError, "lanes must be an integer from 1 to 64"),
    ({"sizes": (5, 3, 2), "thetas": [1, 1], "lanes": (2,)}, ValueError, "lanes"),
    ({"sizes": (5, 3), "thetas": [0], "lanes": 4}, ValueError, "theta"),
    ({"sizes": (5, 3), "thetas": [1], "lanes": 4, "config": "x"}, TypeError, "DiscreteConfig"),
])
def test_bad_parameters(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        TTFSClassifier(**kwargs)


def test_fires_on_exact_equality():
    # z_3 * (93 - 29) == 93 * z_0 exactly with the default grid: the compare is ">=", so the
    # neuron fires at step 3, not 4 (a ">" would pass every trained-network test).
    cfg = DiscreteConfig()
    from spikegate.golden.ttfs_discrete import z_table
    z = z_table(cfg)
    assert z[3] * (93 - 29) == 93 * z[0]
    net = DiscreteNetwork([np.array([[93]], np.int8), np.array([[127]], np.int8)], [29, 1], cfg)
    images = [np.array([0], np.int32)]
    results, traces = run_images(net, images, 1)
    check_against_golden(net, images, results, traces, "equality")
    assert traces[0][0][0] == 3


# Fan-in 784 with every weight at one limit and every input at the last step: acc_w and
# acc_wz reach the extremes of their declared widths (ttfs_widths); nothing may wrap.
@pytest.mark.parametrize("w0", [127, -128])
def test_accumulators_at_their_limits(w0):
    from spikegate.golden.ttfs_discrete import THETA_MAX, ttfs_widths, z_table
    cfg = DiscreteConfig(timesteps=8, dt=1 / 2)
    n = 784
    w = [np.full((n, 2), w0, np.int8), np.array([[127, 100], [-128, 100]], np.int8)]
    net = DiscreteNetwork(w, [THETA_MAX, 50], cfg)
    widths = ttfs_widths(n, THETA_MAX, cfg)
    z = z_table(cfg)
    acc_wz = n * w0 * int(z[-2])
    assert abs(acc_wz) > (1 << (widths["acc_wz_bits"] - 3)), "the case should use the top bits"
    images = [np.full(n, cfg.timesteps - 2, np.int32), np.zeros(n, np.int32)]
    results, traces = run_images(net, images, 16)
    check_against_golden(net, images, results, traces, f"limits, weights {w0}")


# Per-group quiet horizons against the layer-wide one: the same results, fewer cycles. Lanes 1
# (many groups), 4, and pipeline 3 (masked scans may not revisit a group on the next cycle).
# Pipeline 4 and 5: the group wakes behind the quiet-test cut (written one cycle after the
# group's state). ``cut_wake``: their minimum registered, at pipeline 0 and 4.
@pytest.mark.parametrize("lanes, pipeline, cut_wake", [
    (1, 0, False), (4, 0, False), (1, 3, False), (1, 4, False), (4, 4, False),
    (1, 0, True), (3, 4, True)])
def test_group_wake_changes_only_cycles(lanes, pipeline, cut_wake):
    seed = 600 + lanes + pipeline
    net, images = random_case(seed, (20, 12, 5))
    context = f"seed {seed}, lanes {lanes}, pipeline {pipeline}, cut_wake {cut_wake}"
    on, traces = run_images(net, images, lanes, pipeline=pipeline, group_wake=True,
                            cut_wake=cut_wake)
    check_against_golden(net, images, on, traces, context + ", group wake")
    off, _ = run_images(net, images, lanes, pipeline=pipeline, trace=False, group_wake=False)
    for a, b in zip(on, off):
        a = dict(a); b = dict(b)
        assert a.pop("cycles") > 0
        b.pop("cycles")
        assert a == b, context
    c_on = sum(r["cycles"] for r in on)
    c_off = sum(r["cycles"] for r in off)
    if cut_wake:
        # The register costs a cycle after each pass that writes wakes, never saves one.
        uncut, _ = run_images(net, images, lanes, pipeline=pipeline, trace=False, group_wake=True)
        c_uncut = sum(r["cycles"] for r in uncut)
        assert c_uncut < c_off, f"{context}: group wake {c_uncut} cycles, layer-wide {c_off}"
        assert c_on >= c_uncut, f"{context}: cut_wake {c_on} cycles, without {c_uncut}"
    else:
        assert c_on < c_off, f"{context}: group wake {c_on} cycles, layer-wide {c_off}"


def test_group_wake_limits():
    # Built for 2 to MAX_MASKED_GROUPS lane groups, else the layer-wide horizon.
    from amaranth.back import rtlil
    from spikegate.hdl.lookup import MAX_MASKED_GROUPS
    n = MAX_MASKED_GROUPS
    for args, kwargs, expect in [(((8, n, n + 1, 4), [10, 10, 10], (1, 1, 4)), {}, [True, False, False]),
                                 (((8, 20, 3), [10, 10], 4), {}, [True, False]),
                                 (((8, 20, 3), [10, 10], 1), {"timing": Timing(group_wake=False)},
                                  [False, False])]:
        dut = TTFSClassifier(*args, **kwargs)
        assert [layer.group_wake for layer in dut.layers] == expect, args
        rtlil.convert(dut)      # and each elaborates


def test_repeated_input_that_overflows_a_fire_queue_is_flagged():
    # Outside the input contract (a TTFS input spikes once per image): input 0 nine times in
    # one step wraps layer 0's accumulators, so its two lane groups fire three times each in
    # that step and the fire-mask FIFO (depth groups + 1) refuses a mask. The lost spike must
    # show as ``error``, not vanish (the case tests/formal/test_fire_queue.py's search found).
    row = [-85, -56, -107, -65, -76, -128, -98, -62]
    weights = [np.array([row, [0] * 8], np.int8), np.full((8, 8), 10, np.int8)]
    net = DiscreteNetwork(weights, [1, 100], DiscreteConfig(timesteps=8))
    dut = TTFSClassifier.from_network(net, (4, 1))
    results = []

    async def bench(ctx):
        for beats in ([{"index": 0, "step": 1, "end": 0}] * 9 + [{"index": 0, "step": 0, "end": 1}],
                      image_beats(np.array([1, NO_SPIKE]))):
            for beat in beats:
                await stream_put(ctx, dut.i_stream, beat)
            p = await stream_get(ctx, dut.o_stream)
            results.append(result_dict(p, 3))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert results[0]["error"] == 1, results[0]
    assert results[1]["error"] == 0, "the next image starts clean"


def test_group_wake_is_refused_with_the_level_5_cuts():
    """Group wakes with the command slice or the registered head stalled a classification
    forever (lanes 1, 2, 4, a 20-12-5 network): refused, naming the fields."""
    from spikegate.hdl.timing import Timing
    for change in ({}, {"command_slice": False}, {"registered_head": False}):
        with pytest.raises(ValueError, match="group_wake cannot be combined"):
            Timing.preset(5, group_wake=True, **change)
    Timing.preset(5, group_wake=True, command_slice=False, registered_head=False)
    Timing.preset(4, group_wake=True)


# The image start clears every layer lazily (no CLEAR pass): a group reads as cleared until
# it is first written in the image, for the neurons, the trace and the quiet horizons. An
# image with no input after one that armed and fired many neurons: no spike in the trace,
# and no scan (cycles: the image start, the step start that finds the input over with
# nothing armed, the end marker); an image after the others gives the same result and
# cycles as the first after reset. Lanes 1 (groups the later images never write; group wakes) and mixed.
@pytest.mark.parametrize("pipeline", [0, 4])
@pytest.mark.parametrize("lanes", [1, (3, 1)])
def test_image_start_clears_lazily(pipeline, lanes):
    net, images = random_case(41, (20, 12, 5), n_images=3)
    empty = np.full(20, NO_SPIKE, np.int32)
    late = np.full(20, NO_SPIKE, np.int32)
    late[3] = 30
    images = [images[0], empty, images[1], late, images[2], images[0]]
    results, traces = run_images(net, images, lanes, pipeline=pipeline)
    context = f"seed 41, lanes {lanes}, pipeline {pipeline}"
    g = check_against_golden(net, images, results, traces, context)
    assert g.spikes[0, 1] > 0 and g.spikes[3, 1] == 0, "the case should fire, then not"
    assert results[1]["cycles"] == 3, f"{context}: an empty image took {results[1]['cycles']} cycles"
    # Nothing of an image is left for the next, its cycles included: the first image again,
    # and the late input after an image that left neurons armed, as after reset.
    assert results[5] == results[0], f"{context}: {results[5]} after other images, {results[0]} first"
    alone, _ = run_images(net, [late], lanes, pipeline=pipeline, trace=False)
    assert results[3] == alone[0], f"{context}: {results[3]} after other images, {alone[0]} alone"


# A fire mask at the head of a fire-mask FIFO is issued in the cycle it appears there, its
# lowest spike straight from the FIFO's output (no cycle to load it first), whenever the next
# layer takes a command: in every such cycle the layer is offered a row. Lanes 4: masks of
# several spikes; three weight layers: two FIFOs. Results as golden.
@pytest.mark.parametrize("pipeline", [0, 5])
def test_fire_masks_issue_from_the_fifo_head(pipeline):
    net, images = random_case(23, (9, 16, 7, 4))
    dut = TTFSClassifier.from_network(net, 4, timing=Timing.preset(pipeline))
    results, checked = [], []
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sched = dut.scheduler

    async def bench(ctx):
        for steps in images:
            for beat in image_beats(steps):
                await stream_put(ctx, dut.i_stream, beat)
            p = await stream_get(ctx, dut.o_stream)
            results.append(result_dict(p, len(net.sizes)))

    async def monitor(ctx):
        async for _ in ctx.tick():
            for j, (f, _) in enumerate(sched._fifos):
                cmd = dut.layers[j + 1].schedule.cmd
                if ctx.get(f.r_rdy) and ctx.get(cmd.ready):
                    checked.append(j)
                    assert ctx.get(cmd.valid), \
                        f"pipeline {pipeline}: a fire mask waits at FIFO {j}'s head, layer ready"

    sim.add_testbench(bench)
    sim.add_testbench(monitor, background=True)
    sim.run()
    check_against_golden(net, images, results, None, f"seed 23, lanes 4, pipeline {pipeline}")
    assert set(checked) == {0, 1}, f"pipeline {pipeline}: FIFO heads seen {sorted(set(checked))}"
