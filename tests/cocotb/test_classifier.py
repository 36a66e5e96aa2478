"""The TTFS classifier as generated Verilog under cocotb, against the discrete golden model.

The network is trained by the golden model on digits (a few epochs, seeded); every test
image must give the same class, decision step, spikes and lookups per layer, and the same
spike step for every neuron, as :func:`spikegate.golden.ttfs_discrete.simulate`.
"""

import numpy as np
import pytest

import cocotb

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


# --- pytest side -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_network():
    """A 64-64-10 network trained on digits by the golden model (seeded, a few seconds)."""
    return small_digits_network()


def _run(dnet, steps, lanes, sim, testcase, n_stall=40, context="", pipeline=0):
    rng = np.random.default_rng(5)
    weights2 = [rng.integers(-60, 100, w.shape).astype(np.int8) for w in dnet.weights]
    run_cocotb(TTFSClassifier, module=__name__, sim=sim, testcase=testcase,
               params={"sizes": dnet.sizes, "thetas": dnet.thetas, "lanes": lanes,
                       "config": dnet.config, "weights": dnet.weights,
                       "timing": Timing.preset(pipeline)},
               name=f"ttfs_classifier_l{lanes}" + (f"_p{pipeline}" if pipeline else ""),
               test_args={"config": dnet.config.to_dict(), "weights": dnet.weights,
                          "thetas": dnet.thetas, "steps": steps, "seed": 17 + lanes,
                          "n_stall": n_stall, "weights2": weights2,
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
