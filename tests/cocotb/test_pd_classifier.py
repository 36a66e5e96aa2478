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
* the ULX3S build itself: a 784-200-10 network in a PDClassifier with exactly that build's
  keywords (boards/synth.py's pd_classifier_kwargs("ulx3s"), PD_LANES: registered weight banks
  of 4096 words of 4-bit memories, 8 lanes) on synthetic 28 x 28 frames (zero, white,
  random, slowly changing, sparse frames at the input's extremes), with back-pressure on the
  results: bit-exact, cycles = expected_cycles(drain 4), weights read back at the banks'
  read-back latency;
* (slow) an MNIST-sized 784-200-10 network.
"""

import numpy as np
import pytest

from spikegate.golden.fixed import signed_range
from spikegate.boards.synth import PD_LANES, pd_classifier_kwargs
from spikegate.golden.pdnn_fixed import PDFixedNetwork, first_mismatch, from_float
from spikegate.golden.sigma_delta_fixed import SDFixedFormat
from spikegate.hdl.pd_classifier import PDClassifier, expected_cycles
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


def ulx3s_case(seed=2026):
    """``(net, frames)``: a 784-200-10 fixed-point network converted from random float weights
    (golden ``from_float``, gains 0.5 / 0.5) and 12 synthetic 28 x 28 frames: zero, white
    twice, random pixels, three slowly changing from it, zero, a sparse frame with 6 inputs at
    the input's maximum and 6 at its minimum (their spike counts saturate), zero, a random
    binary frame (30 % of its pixels white), zero."""
    rng = np.random.default_rng(seed)
    ws = [rng.normal(0, 2 / np.sqrt(784), (784, 200)), rng.normal(0, 2 / np.sqrt(200), (200, 10))]
    bs = [rng.normal(0, 0.1, 200), rng.normal(0, 0.1, 10)]
    net = from_float(ws, bs, [0.5, 0.5], [0.5, 0.5])
    lo, hi = signed_range(net.formats[0].x_width)
    q = net.quantize_input
    zero = np.zeros(784, np.int64)
    pix = rng.random(784)
    sparse = zero.copy()
    idx = rng.choice(784, 12, replace=False)
    sparse[idx[:6]], sparse[idx[6:]] = hi, lo
    frames = [zero, q(np.ones(784)), q(np.ones(784)), q(pix)]
    for _ in range(3):
        pix = np.clip(pix + rng.normal(0, 0.02, 784), 0, 1)
        frames.append(q(pix))
    frames += [zero, sparse, zero, q(rng.random(784) < 0.3), zero]
    return net, np.array(frames, np.int64)


@pytest.mark.slow
def test_ulx3s_banked_build_bit_exact_and_cycles():
    """The ULX3S PD build's classifier (the keywords boards/synth.py gives it: weight banks of
    4096 words, each 16 memories of 4 bits, registered; lanes 8) for 784-200-10: every frame
    bit for bit as the golden model, its cycles as expected_cycles with the design's drain
    (4), and weights read back (3 cycles after rb_en with banks) before the first frame and
    mid-sequence equal to the model's. Back-pressure on the results only, so that every
    frame's cycles are the model's."""
    net, frames = ulx3s_case()
    lanes = PD_LANES["ulx3s"]
    kw = pd_classifier_kwargs("ulx3s")
    dut = PDClassifier.from_network(net, lanes, **kw)
    assert kw["weight_bank_depth"] is not None and dut.drain == 4
    assert [layer.rb_latency for layer in dut.layers] == [3, 3]
    # layer 0 is 784 x 25 words: 5 banks, the last partial; layer 1 (400 words) one bank
    assert [-(-layer.lookup.weight_data.depth // kw["weight_bank_depth"])
            for layer in dut.layers] == [5, 1]
    actions = {0: {"read": True}, 7: {"read": True}}
    hw = simulate_pd_hardware(net, frames, lanes, stall_out=0.5, seed=41, actions=actions,
                              classifier=dut, name="pd_ulx3s_784_200_10")
    g = net.run(frames)
    bad = first_mismatch(hw, g, "ULX3S build, 784-200-10, lanes 8")
    assert bad is None, bad
    exp = expected_cycles(g, net.sizes, lanes, drain=dut.drain)
    bad = np.flatnonzero(hw.cycles != exp)
    assert not bad.size, (f"frame {bad[0]}: {hw.cycles[bad[0]]} cycles, the model says "
                          f"{exp[bad[0]]} (spikes {g.spikes[bad[0]].tolist()})")
    # what the sequence exercised: frames without events, saturated spike counts
    assert g.events[0, 0] == 0, "the zero frame has events"
    lo, hi = signed_range(net.formats[0].spike_width)
    assert (g.s[0] == lo).any() and (g.s[0] == hi).any(), "no saturated spike count"


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
