"""The TTFS classifier as generated Verilog under cocotb, against the discrete golden model.

The network is trained by the golden model on digits (a few epochs, seeded); every test
image must give the same class, decision step, spikes and lookups per layer, and the same
spike step for every neuron, as :func:`spikegate.golden.ttfs_discrete.simulate`.
"""

import numpy as np
import pytest

import cocotb
from cocotb.triggers import FallingEdge

from spikegate.golden.ttfs_discrete import NO_SPIKE, DiscreteConfig, DiscreteNetwork, simulate
from spikegate.hdl.classifier import TTFSClassifier
from spikegate.hdl.timing import Timing
from spikegate.sim.runner import run_cocotb, test_args
from spikegate.sim.ttfs_run import small_digits_network
from spikegate.sim.ttfs_tb import ClassifierTB


def compare(result, trace, g, b, T, context):
    """Assert one image's hardware result equals golden sample ``b``; name the first
    differing quantity, neuron and step."""
    msg = f"{context}, image {b}"
    assert result["error"] == 0, f"{msg}: error flag set"
    assert result["decided"] == int(g.decision[b] >= 0), f"{msg}: decided {result['decided']}"
    if g.decision[b] >= 0:
        assert result["klass"] == g.decision[b], f"{msg}: class {result['klass']} vs {g.decision[b]}"
        assert result["decision_step"] == g.decision_step[b], (
            f"{msg}: decision step {result['decision_step']} vs {g.decision_step[b]}")
    else:
        assert result["decision_step"] == T, msg
    assert result["spikes"] == g.spikes[b].tolist(), f"{msg}: spikes {result['spikes']} vs {g.spikes[b]}"
    assert result["lookups"] == g.lookups[b].tolist(), f"{msg}: lookups {result['lookups']} vs {g.lookups[b]}"
    for l, tr in enumerate(trace or []):
        hw = np.where(tr == T, NO_SPIKE, tr)
        bad = np.flatnonzero(hw != g.spike_steps[l + 1][b])
        assert not len(bad), (f"{msg}: layer {l + 1} neuron {bad[0]}: hardware step {hw[bad[0]]}, "
                              f"golden {g.spike_steps[l + 1][b][bad[0]]}")


def _setup():
    a = test_args()
    config = DiscreteConfig.from_dict(a["config"])
    net = DiscreteNetwork(list(a["weights"]), list(a["thetas"]), config)
    return a, net, simulate(net, a["steps"])


# --- cocotb side -------------------------------------------------------------------------

@cocotb.test()
async def classifier_matches_golden(dut):
    """Every image in order; class, step, counts and every neuron's spike step."""
    a, net, g = _setup()
    tb = ClassifierTB(dut, net.sizes, net.config)
    await tb.start()
    for b, steps in enumerate(a["steps"]):
        r = await tb.classify(steps)
        compare(r, await tb.read_trace(), g, b, net.config.timesteps, a["context"])
    assert tb.source.empty()


@cocotb.test()
async def classifier_stalls_change_only_cycles(dut):
    """Random idle cycles on the input and back-pressure on the output."""
    a, net, g = _setup()
    tb = ClassifierTB(dut, net.sizes, net.config, stall_in=0.4, stall_out=0.5, seed=a["seed"])
    await tb.start()
    for b, steps in enumerate(a["steps"][: a["n_stall"]]):
        compare(await tb.classify(steps), None, g, b, net.config.timesteps,
                f"{a['context']}, stalls seed {a['seed']}")


@cocotb.test()
async def classifier_reset_mid_image_then_new_weights(dut):
    """A reset in the middle of an image, then new weights loaded: the next images are right."""
    a, net, g = _setup()
    tb = ClassifierTB(dut, net.sizes, net.config)
    await tb.start()
    from spikegate.sim.ttfs_tb import image_payloads
    half = image_payloads(a["steps"][0], net.sizes[0], net.config)
    tb.source.send_all(half[: len(half) // 2])
    await tb.source.wait_idle()
    await tb.reset()
    new = DiscreteNetwork([np.asarray(w)[::-1].copy() for w in a["weights2"]], net.thetas, net.config)
    await tb.load_weights(new.weights)
    g2 = simulate(new, a["steps"][:4])
    for b in range(4):
        compare(await tb.classify(a["steps"][b]), await tb.read_trace(), g2, b,
                net.config.timesteps, f"{a['context']}, after reset and reload")


@cocotb.test()
async def classifier_reads_back_weights_at_its_latency(dut):
    """Every weight of every layer through the read-back port, one ``rb_en`` per cycle with
    the layers interleaved (a seeded order), each taken ``rb_latency`` cycles after its
    ``rb_en``, after loading the network's weights; again after an image has used the read
    port and new weights were loaded."""
    a, net, g = _setup()
    tb = ClassifierTB(dut, net.sizes, net.config)
    await tb.start()
    lat = int(a["rb_latency"])

    async def read_all(weights, context):
        addrs = [(l, i, j) for l, w in enumerate(weights) for i, j in np.ndindex(*np.shape(w))]
        order = np.random.default_rng(a["seed"]).permutation(len(addrs))
        got = []
        await FallingEdge(dut.clk)
        while not dut.model__idle.value:        # the port is taken only while idle
            await FallingEdge(dut.clk)
        for n in range(len(addrs) + lat):
            if n < len(addrs):
                l, i, j = addrs[order[n]]
                dut.model__w_layer.value, dut.model__w_src.value = l, i
                dut.model__w_dst.value, dut.model__rb_en.value = j, 1
            else:
                dut.model__rb_en.value = 0
            await FallingEdge(dut.clk)
            if n >= lat - 1 and len(got) < len(addrs):
                got.append(dut.model__rb_data.value.to_signed())
        for k, v in enumerate(got):
            l, i, j = addrs[order[k]]
            assert v == weights[l][i, j], (f"{a['context']}, {context}: weight {(l, i, j)} read "
                                           f"{v} at latency {lat}, is {weights[l][i, j]}")

    # The memories keep what an earlier test of this module loaded: load the network's.
    await tb.load_weights(net.weights)
    await read_all([np.asarray(w) for w in net.weights], "the network's weights")
    compare(await tb.classify(a["steps"][0]), None, g, 0, net.config.timesteps, a["context"])
    new = [np.asarray(w)[::-1].copy() for w in a["weights2"]]
    await tb.load_weights(new)
    await read_all(new, "after an image and a reload")


# --- pytest side -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_network():
    """A 64-64-10 network trained on digits by the golden model (seeded, a few seconds)."""
    return small_digits_network()


def _run(dnet, steps, lanes, sim, testcase, n_stall=40, context="", pipeline=0, timing=None,
         name=None, binary_input=False):
    rng = np.random.default_rng(5)
    weights2 = [rng.integers(-60, 100, w.shape).astype(np.int8) for w in dnet.weights]
    timing = Timing.preset(pipeline) if timing is None else timing
    run_cocotb(TTFSClassifier, module=__name__, sim=sim, testcase=testcase,
               params={"sizes": dnet.sizes, "thetas": dnet.thetas, "lanes": lanes,
                       "config": dnet.config, "weights": dnet.weights, "timing": timing,
                       **({"binary_input": True} if binary_input else {})},
               name=name or f"ttfs_classifier_l{lanes}" + (f"_p{pipeline}" if pipeline else ""),
               test_args={"config": dnet.config.to_dict(), "weights": dnet.weights,
                          "thetas": dnet.thetas, "steps": steps,
                          "seed": 17 + (lanes if isinstance(lanes, int) else sum(lanes)),
                          "n_stall": n_stall, "weights2": weights2,
                          "rb_latency": timing.rb_latency,
                          "context": context or f"digits 64-64-10, lanes {lanes}, "
                                                f"pipeline {pipeline}"})


# Lanes: one that does not divide 10 or 64's groups evenly (3), and the benchmark's 4 and 8;
# pipelined layers: 8 lanes forward the state between the output layer's two groups, 16
# lanes make the output layer a single group.
@pytest.mark.parametrize("lanes, pipeline", [(3, 0), (8, 0), (8, 3), (8, 4), (16, 2)])
def test_classifier_digits_sample(digits_network, lanes, pipeline):
    """A sample of the digits test set plus stalls, reset and reload (CI)."""
    dnet, steps, _ = digits_network
    g = simulate(dnet, steps[:60])
    assert (g.decision >= 0).mean() > 0.9, "the trained network should decide"
    _run(dnet, steps[:60], lanes, "verilator", None, n_stall=30, pipeline=pipeline)


# The multiplier-free first layer of binary inputs: the iCEBreaker's timing (level 5, coarse
# quiet factors, registered read-back) with 3 lanes, level 3 with 8 (state forwarding).
@pytest.mark.parametrize("lanes, level", [(3, "icebreaker"), (8, 3)])
def test_classifier_digits_binary_input(digits_network, lanes, level):
    """The digits network on binary inputs (the brighter half of each image's spiking pixels
    at step 0, the rest never) with ``binary_input=True``: 60 images bit for bit, stalls, a
    reset mid image, a reload and the read-back."""
    from spikegate.boards.timing import ICEBREAKER
    dnet, steps, _ = digits_network
    on = steps != NO_SPIKE
    steps = np.where(on & (steps <= np.median(steps[on])), 0, NO_SPIKE)[:60]
    g = simulate(dnet, steps)
    assert (g.decision >= 0).mean() > 0.5, "the case should decide"
    timing = ICEBREAKER if level == "icebreaker" else Timing.preset(level)
    _run(dnet, steps, lanes, "verilator", None, n_stall=30, timing=timing, binary_input=True,
         name=f"ttfs_classifier_l{lanes}_{level}_binary",
         context=f"digits 64-64-10 on binary inputs, lanes {lanes}, timing {level}")


def test_classifier_digits_ulx3s_weight_banks(digits_network):
    """The ULX3S MNIST build's timing (boards.timing.ULX3S_BANKED: level 4, registered
    weight banks of 4-bit memories, read-back registered: rb_latency 4) with banks
    of 64 words instead of 4096, so that the digits network's memories span several banks
    (layer 0: 512 words, 8 banks; layer 1: 128 words, 2), lanes 8: 60 test images bit for bit
    (every neuron's spike step), 30 with stalls on both streams, a reset mid image and a
    reload, and every weight read back at the latency, layers interleaved, before and after
    an image and a reload."""
    from spikegate.boards.timing import ULX3S_BANKED
    dnet, steps, _ = digits_network
    timing = ULX3S_BANKED.replace(weight_bank_depth=64)
    assert timing.rb_latency == 4
    _run(dnet, steps[:60], 8, "verilator", None, n_stall=30, timing=timing,
         name="ttfs_classifier_l8_ulx3s_banks64",
         context="digits 64-64-10, lanes 8, ULX3S timing with banks of 64 x 4")


@pytest.mark.slow
def test_classifier_ulx3s_mnist_build_weight_banks():
    """The ULX3S MNIST build's classifier itself: 784-456-10 at lanes (8, 8) with the timing
    ``boards.timing.board_timing`` gives it (ULX3S_BANKED: banks of 4096 words of 4-bit
    memories, layer 0's 44,688 words in 11 banks, read-back 4 cycles after ``rb_en``), random
    weights (layer 1's drawn around +0.5, so that 10 of the 12 images decide), 12 MNIST test
    images (train ttfs's MNIST encoding) bit for bit, 6 with stalls, a reset mid image and a
    reload, and every weight read back at the latency, layers interleaved. Needs the MNIST
    files ($SPIKEGATE_DATA)."""
    import os
    from spikegate.boards.timing import ULX3S_BANKED, board_timing
    from spikegate.golden.data import DataError, load_dataset
    from spikegate.golden.encoding import encode
    from spikegate.golden.ttfs_discrete import times_to_steps
    from spikegate.scripts.train_ttfs import configs_for
    try:
        mnist = load_dataset("mnist", os.environ.get("SPIKEGATE_DATA"))
    except (DataError, FileNotFoundError) as e:
        pytest.skip(f"MNIST not available: {e}")
    sizes, lanes = (784, 456, 10), (8, 8)
    timing = board_timing("ulx3s-85F", sizes, lanes)
    assert timing is ULX3S_BANKED and timing.rb_latency == 4
    rng = np.random.default_rng(0)
    net = DiscreteNetwork.from_float([rng.normal(0, 1.5 / np.sqrt(784), (784, 456)),
                                      rng.normal(0.5, 1.5 / np.sqrt(456), (456, 10))])
    enc, _, _ = configs_for("mnist", seed=0)
    steps = times_to_steps(encode(mnist.x_test[:12], enc), net.config)
    g = simulate(net, steps)
    assert (g.decision >= 0).sum() >= 8 and (g.spikes[:, 1] > 0).all(), "the case should decide"
    _run(net, steps, lanes, "verilator", None, n_stall=6, timing=timing,
         name="ttfs_classifier_ulx3s_mnist_784_456_10",
         context="784-456-10, lanes (8, 8), ULX3S_BANKED")


@pytest.mark.slow
def test_classifier_digits_full_test_set(digits_network):
    """All 360 digits test images, 4 lanes, every neuron's spike step compared."""
    dnet, steps, _ = digits_network
    _run(dnet, steps, 4, "verilator", "classifier_matches_golden")


@pytest.mark.requires_iverilog
def test_classifier_icarus(digits_network):
    """The same Verilog under Icarus, on a few images."""
    dnet, steps, _ = digits_network
    _run(dnet, steps[:8], 4, "icarus", "classifier_matches_golden")
