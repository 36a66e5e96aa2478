"""On-chip sign backprop in Amaranth's simulator against :mod:`spikegate.golden.sign_backprop`:
after every training image, every weight of every layer equals the golden model's."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from spikegate.golden.sign_backprop import UpdateLFSR, hidden_deltas, sign_backprop_step
from spikegate.golden.ttfs_discrete import DiscreteNetwork
from spikegate.hdl.classifier import TTFSClassifier
from spikegate.hdl.timing import Timing
from spikegate.hdl.learning import DeltaVoter
from spikegate.sim.amaranth_tb import (image_beats, random_ttfs_case as random_case, read_weights,
                                       stream_get, stream_put)


def run_training(net, images, labels, lanes, lr_shift, learn=None, pipeline=0, k=0,
                 errors_only=False, **options):
    dut = TTFSClassifier.from_network(net, lanes, learning=True,
                                      timing=Timing.preset(pipeline, **options))
    learn = [True] * len(images) if learn is None else learn
    results, weights = [], []

    async def bench(ctx):
        for img, lab, on in zip(images, labels, learn):
            ctx.set(dut.learn.en, int(on))
            ctx.set(dut.learn.label, int(lab))
            ctx.set(dut.learn.shift, lr_shift)
            ctx.set(dut.learn.k, k)
            ctx.set(dut.learn.errors_only, int(errors_only))
            for beat in image_beats(img):
                await stream_put(ctx, dut.i_stream, beat)
            p = await stream_get(ctx, dut.o_stream)
            results.append({"klass": p.klass, "decided": p.decided, "label_error": p.label_error,
                            "learn_cycles": p.learn_cycles, "error": p.error})
            weights.append(await read_weights(ctx, dut, [w.shape for w in net.weights]))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return results, weights


def golden_training(net, images, labels, lr_shift, learn=None, k=0, errors_only=False):
    net = DiscreteNetwork([w.copy() for w in net.weights], list(net.thetas), net.config)
    learn = [True] * len(images) if learn is None else learn
    lfsr = UpdateLFSR(k) if k else None
    out = []
    for img, lab, on in zip(images, labels, learn):
        if on:
            sign_backprop_step(net, img, int(lab), lr_shift, errors_only=errors_only, lfsr=lfsr)
        out.append([w.astype(np.int64) for w in net.weights])
    return out


# Two and three weight layers; lanes that do and do not divide the sizes; two step sizes;
# pipelined layers (the board builds' setting); a CLEAR pass at each image's start and masks
# issued from the mask register (the iCEBreaker's scheduler: lazy_clear, head_issue off).
@pytest.mark.parametrize("sizes, lanes, lr_shift, pipeline, options", [
    ((20, 12, 5), 4, 0, 0, {}), ((20, 12, 5), (3, 2), 2, 0, {}),
    ((9, 16, 7, 4), (5, 2, 1), 1, 0, {}), ((20, 12, 5), (3, 2), 1, 3, {}),
    ((9, 16, 7, 4), (5, 2, 1), 1, 5, {"lazy_clear": False, "head_issue": False,
                                      "rb_register": True}),
])
def test_learning_matches_golden(sizes, lanes, lr_shift, pipeline, options):
    seed = 300 + sum(sizes) + lr_shift
    net, images = random_case(seed, sizes, n_images=10)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, sizes[-1], len(images))
    learn = [True] * 8 + [False, True]          # learning switched off for one image
    results, weights = run_training(net, images, labels, lanes, lr_shift, learn, pipeline,
                                    **options)
    expected = golden_training(net, images, labels, lr_shift, learn)
    changed = 0
    for b, (hw, gw) in enumerate(zip(weights, expected)):
        for l in range(len(gw)):
            bad = np.argwhere(hw[l] != gw[l])
            assert not len(bad), (f"seed {seed}, image {b}, layer {l}, weight {tuple(bad[0])}: "
                                  f"hardware {hw[l][tuple(bad[0])]}, golden {gw[l][tuple(bad[0])]}")
        changed += sum(int((gw[l] != (expected[b - 1][l] if b else net.weights[l])).sum())
                       for l in range(len(gw)))
        assert results[b]["label_error"] == 0 and results[b]["error"] == 0
        assert (results[b]["learn_cycles"] > 0) == learn[b]
    assert changed > 0, "the case should change weights"


def assert_weights_match(weights, expected, context):
    """Every layer's weights after every image equal golden's (the first difference named)."""
    for b, (hw, gw) in enumerate(zip(weights, expected)):
        for l in range(len(gw)):
            bad = np.argwhere(hw[l] != gw[l])
            assert not len(bad), (f"{context}, image {b}, layer {l}, weight {tuple(bad[0])}: "
                                  f"hardware {hw[l][tuple(bad[0])]}, golden {gw[l][tuple(bad[0])]}")


# Registered weight banks (the ULX3S MNIST build's layout at small depths; read-back 3 cycles
# after rb_en): the LEARN passes' write-back goes to the bank of its word, one cycle after the
# beat, and the next pass reads the new weights. Layer 0 of (20, 12, 5) at 3 lanes is 80
# words: 10 banks of 8 (4-bit memories) or 5 of 16 (whole words); pipeline 4 with group wakes
# as on the ULX3S.
@pytest.mark.parametrize("lanes, depth, width, pipeline, group_wake", [
    ((3, 2), 8, 4, 4, True), (3, 16, None, 0, True),
])
def test_learning_with_weight_banks_matches_golden(lanes, depth, width, pipeline, group_wake):
    sizes, lr_shift = (20, 12, 5), 1
    seed = 600 + depth
    net, images = random_case(seed, sizes, n_images=8)
    labels = np.random.default_rng(seed).integers(0, sizes[-1], len(images))
    results, weights = run_training(net, images, labels, lanes, lr_shift, pipeline=pipeline,
                                    weight_out_register=True, weight_bank_depth=depth,
                                    weight_bank_width=width, group_wake=group_wake)
    expected = golden_training(net, images, labels, lr_shift)
    context = f"seed {seed}, lanes {lanes}, banks of {depth} x {width}, pipeline {pipeline}"
    assert_weights_match(weights, expected, context)
    for b in range(len(expected)):
        assert results[b]["error"] == 0 and results[b]["learn_cycles"] > 0, f"{context}, image {b}"
    assert any((e != w0).any() for e, w0 in zip(expected[-1], net.weights)), \
        f"{context}: the case should change weights"


# Stochastic rounding (the update LFSR, carried over between images, drawn lane by lane and
# layer by layer) and learning only from errors, at 1 and 3 lanes, pipelined or not.
@pytest.mark.parametrize("lanes, k, errors_only, pipeline", [
    ((3, 2), 1, False, 0), (4, 2, True, 3), ((1, 3), 3, True, 0),
])
def test_stochastic_rounding_and_errors_only_match_golden(lanes, k, errors_only, pipeline):
    sizes, lr_shift = (20, 12, 5), 2
    seed = 500 + 10 * k + int(errors_only)
    net, images = random_case(seed, sizes, n_images=10)
    labels = np.random.default_rng(seed).integers(0, sizes[-1], len(images))
    results, weights = run_training(net, images, labels, lanes, lr_shift, pipeline=pipeline,
                                    k=k, errors_only=errors_only)
    expected = golden_training(net, images, labels, lr_shift, k=k, errors_only=errors_only)
    plain = golden_training(net, images, labels, lr_shift)
    context = f"seed {seed}, lanes {lanes}, k {k}, errors_only {errors_only}"
    assert_weights_match(weights, expected, context)
    assert any((e != p).any() for e, p in zip(expected[-1], plain[-1])), \
        f"{context}: the options should change the outcome"
    assert any((e != w0).any() for e, w0 in zip(expected[-1], net.weights)), \
        f"{context}: the case should change weights"


def test_label_out_of_range_is_refused():
    net, images = random_case(21, (20, 12, 5), n_images=2)
    results, weights = run_training(net, images, [7, 2], 4, 0)   # 7 is not a class of 5
    assert results[0]["label_error"] == 1 and results[0]["learn_cycles"] == 0
    for l, w in enumerate(net.weights):
        np.testing.assert_array_equal(weights[0][l], w, err_msg="a refused label changed weights")
    assert results[1]["label_error"] == 0


def test_delta_voter_against_golden():
    # Random weight rows and deltas, including all-zero and all-one masks.
    seed = 77
    rng = np.random.default_rng(seed)
    n, lanes = 10, 3
    rows = [rng.integers(-2, 3, n) for _ in range(20)] + [np.ones(n, int), -np.ones(n, int), np.zeros(n, int)]
    deltas = [rng.integers(-1, 2, n) for _ in range(len(rows) - 3)] + [np.ones(n, int)] * 3
    dut = DeltaVoter(n, lanes)
    got = []
    G = -(-n // lanes)

    async def producer(ctx):
        for w, d in zip(rows, deltas):
            for g in range(G):
                p = n_ = 0
                for l in range(lanes):
                    j = g * lanes + l
                    if j < n:
                        p |= int((w[j] > 0 and d[j] > 0) or (w[j] < 0 and d[j] < 0)) << l
                        n_ |= int((w[j] > 0 and d[j] < 0) or (w[j] < 0 and d[j] > 0)) << l
                ctx.set(dut.votes.valid, 1)
                ctx.set(dut.votes.group, g)
                ctx.set(dut.votes.last, int(g == G - 1))
                ctx.set(dut.votes.p, p)
                ctx.set(dut.votes.n, n_)
                await ctx.tick()
        ctx.set(dut.votes.valid, 0)
        await ctx.tick().repeat(dut.latency + 2)

    async def consumer(ctx):
        async for _, _, valid, delta, pc, nc in ctx.tick().sample(dut.delta_valid, dut.delta,
                                                                 dut.p_count, dut.n_count):
            if valid:
                got.append((delta, pc, nc))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer, background=True)
    sim.run()
    assert len(got) == len(rows), f"seed {seed}"
    for r, (w, d) in enumerate(zip(rows, deltas)):
        gd, gp, gn = hidden_deltas(np.asarray(w)[None, :].astype(np.int8), np.asarray(d).astype(np.int8))
        assert got[r] == (int(gd[0]), int(gp[0]), int(gn[0])), f"seed {seed}, row {r}"
