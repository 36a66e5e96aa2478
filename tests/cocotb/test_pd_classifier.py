"""The PD network's generated Verilog under cocotb + Verilator (hdl/pd_classifier.py, driven by
sim/pd_cocotb.py through sim/pd_run.py) against the fixed-point golden model
(golden/pdnn_fixed.py), bit for bit: every frame's class and counters, every layer's spike
counts, accumulators, decoded values and activations.

* the stress network (narrow widths: every register saturates) on 240 frames of random,
  all-zero, extreme and slowly changing inputs, with random stalls on both streams, two resets
  in the middle of a frame and new weights and biases loaded through the ports half way;
  the same hardware run disagrees with every deliberately wrong golden model
  (sim/pd_mutants.py), so the comparison would catch such a bug;
* the digits 64-64-10 network trained by the float model, on 240 frames: temporally redundant
  digits, all-zero frames, random pixels and shuffled digits, with back-pressure on the
  results; every frame's cycles equal the timing model's (hdl.pd_classifier.expected_cycles);
* (slow) an MNIST-sized 784-200-10 network.
"""

import numpy as np
import pytest

from spikegate.golden.fixed import signed_range
from spikegate.golden.pdnn_fixed import PDFixedNetwork, first_mismatch
from spikegate.golden.sigma_delta_fixed import SDFixedFormat
from spikegate.hdl.pd_classifier import expected_cycles
from spikegate.sim.pd_cases import digits_frames, digits_network, slowly_changing, stress_case
from spikegate.sim.pd_mutants import MUTANTS
from spikegate.sim.pd_run import expected_trace, simulate_pd_hardware

STRESS_SEED = 7
# Before frame 100 and 200: a reset in the middle of that frame; before frame 170: new weights
# and biases through the ports (the state carries on).
STRESS_ACTIONS = {100: {"reset": True}, 170: {"load": True}, 200: {"reset": True}}


def _second_network(net, seed):
    rng = np.random.default_rng(seed)
    return PDFixedNetwork([rng.integers(-128, 128, w.shape) for w in net.weights],
                          [b[::-1].copy() for b in net.biases], net.formats)


def test_stress_sequence_bit_exact_and_no_mutant():
    """One run of the stress sequence (lanes 3 and 4: neither divides its layer) with stalls,
    resets and a reload: equal to the specification, and different from every golden model
    with one wrong step (a hardware with that bug would fail the first assertion)."""
    net, frames = stress_case(STRESS_SEED, T=240)
    net2 = _second_network(net, STRESS_SEED + 1)
    hw = simulate_pd_hardware(net, frames, (3, 4), stall_in=0.3, stall_out=0.4,
                              seed=STRESS_SEED + 4, actions=STRESS_ACTIONS, net2=net2,
                              name="pd_stress_l3_4")
    g = expected_trace(net, frames, STRESS_ACTIONS, net2)
    bad = first_mismatch(hw, g, f"stress seed {STRESS_SEED}, stalls seed {STRESS_SEED + 4}")
    assert bad is None, bad
    # what the sequence exercised: saturation of every register, frames without events
    for l, fmt in enumerate(net.formats):
        for name, width in (("u", fmt.acc_width), ("y", fmt.y_width), ("s", fmt.spike_width)):
            assert np.isin(signed_range(width), getattr(g, name)[l]).all(), f"layer {l} {name}"
    assert (g.events[:, 0] == 0).any(), "no frame without an event"
    same = [name for name, steps in sorted(MUTANTS.items())
            if first_mismatch(hw, expected_trace(net, frames, STRESS_ACTIONS, net2,
                                                 steps=steps)) is None]
    assert not same, f"the hardware equals the mutant golden models {same}"


@pytest.fixture(scope="module")
def digits():
    return digits_network()


def digits_sequence(fixed):
    """240 frames: 150 temporally redundant digits, 2 all-zero frames, 40 random pixel frames,
    2 all-zero frames, 46 shuffled digits."""
    temporal, _ = digits_frames(fixed, "temporal", 150)
    random, _ = digits_frames(fixed, "random", 40, seed=3)
    shuffled, _ = digits_frames(fixed, "shuffled", 46, seed=4)
    zeros = np.zeros((2, 64), np.int64)
    return np.concatenate([temporal, zeros, random, zeros, shuffled])


def test_digits_sequence_bit_exact_and_cycles(digits):
    fixed, _ = digits
    frames = digits_sequence(fixed)
    lanes = 8
    hw = simulate_pd_hardware(fixed, frames, lanes, stall_out=0.5, seed=21, name="pd_digits_l8")
    g = fixed.run(frames)
    bad = first_mismatch(hw, g, "digits 64-64-10, lanes 8")
    assert bad is None, bad
    # Cycles: with no input stalls (back-pressure on the results does not touch a frame's
    # own count) every frame takes what the timing model says, exactly.
    exp = expected_cycles(g, fixed.sizes, lanes)
    bad = np.flatnonzero(hw.cycles != exp)
    assert not bad.size, (f"frame {bad[0]}: {hw.cycles[bad[0]]} cycles, the model says "
                          f"{exp[bad[0]]} (spikes {g.spikes[bad[0]].tolist()})")
    temporal, rnd = hw.cycles[:150].mean(), hw.cycles[152:192].mean()
    assert temporal < 0.6 * rnd, f"temporal frames cost {temporal:.0f} cycles, random {rnd:.0f}"


@pytest.mark.requires_iverilog
def test_stress_icarus():
    """The same Verilog under Icarus, on a shorter stretch with a reset."""
    net, frames = stress_case(STRESS_SEED, T=240)
    frames = frames[:30]
    actions = {15: {"reset": True}}
    hw = simulate_pd_hardware(net, frames, (3, 4), sim="icarus", stall_in=0.3, stall_out=0.3,
                              seed=5, actions=actions, name="pd_stress_l3_4")
    bad = first_mismatch(hw, expected_trace(net, frames, actions), "icarus")
    assert bad is None, bad


@pytest.mark.slow
def test_mnist_sized_network():
    """784-200-10 (random weights, the digits network's formats), 200 slowly changing frames
    and a few random ones, 8 lanes."""
    rng = np.random.default_rng(31)
    fmt = SDFixedFormat.from_float(1 / 1.1, 0.4, w_frac=7)
    net = PDFixedNetwork([rng.integers(-30, 31, (784, 200)), rng.integers(-60, 61, (200, 10))],
                         [rng.integers(-4000, 4000, 200), rng.integers(-4000, 4000, 10)],
                         [fmt, fmt])
    frames = np.concatenate([slowly_changing(rng, 200, 784, 0, 255, 2),
                             rng.integers(0, 256, (5, 784))])
    hw = simulate_pd_hardware(net, frames, 8, stall_in=0.1, stall_out=0.3, seed=32,
                              name="pd_mnist_l8")
    bad = first_mismatch(hw, net.run(frames), "784-200-10, lanes 8")
    assert bad is None, bad
