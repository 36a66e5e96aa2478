"""The SSGD network's generated Verilog under cocotb + Verilator (hdl/ssgd_network.py, driven
by sim/ssgd_cocotb.py through sim/ssgd_run.py) against the fixed-point golden forward
(golden/ssgd_train_fixed.forward_fixed, built from golden/ssgd_fixed's steps), bit for bit:
every hidden membrane, spike, active flag and surrogate value, every readout membrane, every
active event (in order), the logits, classes and counters of every image.

* one run of 206 images through the digits 64-64-10 network (one epoch of the golden
  fixed-point training): 150 digits test images, then random rasters (inputs spiking once,
  sparse, dense: more beats than the input queue holds, silent), then weights skewed positive
  loaded through the ports, under which dense inputs saturate the hidden membranes and the
  readout's both ways; the first 40
  images with every stream ready, where each image's cycles equal the timing model
  (hdl.ssgd_network.expected_cycles); from then on random stalls on the input, the results and
  the active events, where no image takes fewer cycles than the model; two resets in the
  middle of an image (the step-marker count or the started flag kept through the reset,
  tried as reset-less registers, hang the run or miscount the next image's cycles). The same
  run differs from every golden forward with one wrong step (sim/ssgd_mutants.py), so such a bug would be caught;
* a shorter run under Icarus.
"""

import numpy as np
import pytest

from spikegate.hdl.ssgd_network import expected_cycles
from spikegate.sim.ssgd_cases import digits_network, digits_rasters, random_rasters, stress_weights
from spikegate.sim.ssgd_mutants import MUTANTS, STEPS, forward_with
from spikegate.sim.ssgd_reference import expected_network
from spikegate.sim.ssgd_run import expected_run, first_mismatch, simulate_ssgd_hardware

SEED = 11
LANES = (6, 4)            # neither divides its layer: 11 and 3 lane groups
N_CALM = 40               # images with every stream ready (cycles checked)
LOAD_AT = 196             # stress weights loaded through the ports before this image
ACTIONS = {60: {"reset": True}, 170: {"reset": True}, LOAD_AT: {"load": True}}


def sequence(tfmt):
    """206 images: 150 digits, 20 once-per-image, 16 sparse, 8 dense, 2 silent; after the load
    6 full and 4 sparse."""
    rng = np.random.default_rng(SEED)
    T = tfmt.n_steps
    digits, _ = digits_rasters(tfmt, 150)
    parts = [digits] + [random_rasters(rng, n, T, 64, kind) for n, kind in
                        ((20, "once"), (16, "sparse"), (8, "dense"), (2, "silent"),
                         (6, "full"), (4, "sparse"))]
    x = np.concatenate(parts)
    assert len(x) == 206 and LOAD_AT == 206 - 10
    return x, stress_weights(rng, (64, 64, 10))


def test_mutant_harness_is_the_golden_forward():
    """forward_with the right steps is golden forward_fixed (so a mutant differs from golden
    only by its one step)."""
    tfmt, w = digits_network()
    x, w2 = sequence(tfmt)
    for ws, xs in ((w, x[:20]), (w2, x[190:])):
        a, b = forward_with(xs, *ws, tfmt, STEPS), expected_network(xs, *ws, tfmt)
        for layer in ("hidden", "readout"):
            for k in ("v", "spike", "active", "g"):
                assert np.array_equal(getattr(getattr(a, layer), k),
                                      getattr(getattr(b, layer), k)), f"{layer} {k}"
        assert np.array_equal(a.z, b.z)


def test_digits_and_random_bit_exact_cycles_and_no_mutant():
    tfmt, w = digits_network()
    x, w2 = sequence(tfmt)
    hw = simulate_ssgd_hardware(tfmt, w, x, LANES, stall_in=0.3, stall_out=0.4, stall_act=0.3,
                                stall_from=N_CALM, seed=SEED, actions=ACTIONS, weights2=w2,
                                name="ssgd_digits_l6_4")
    g = expected_run(x, w, tfmt, ACTIONS, w2)
    what = f"seed {SEED}, lanes {LANES}"
    bad = first_mismatch(hw, g, x, what)
    assert bad is None, bad
    # Cycles: with every stream ready, each image takes what the timing model says, exactly.
    exp = expected_cycles(x[:N_CALM], g.hidden.spike[:N_CALM], (64, 64, 10), LANES,
                          tfmt.n_steps)
    off = np.flatnonzero(hw.cycles[:N_CALM] != exp)
    assert not off.size, (f"{what}: image {off[0]}: {hw.cycles[off[0]]} cycles, the model says "
                          f"{exp[off[0]]}")
    # With stalls (and after a reset, where a cycle counter kept from the aborted image would
    # show) never fewer cycles than the model.
    # (the model covers the images whose beats fit the input queue: n_in + T).
    fits = np.flatnonzero(x[:, :-1].sum(axis=(1, 2)) + tfmt.n_steps - 1 <= 64 + tfmt.n_steps)
    assert len(fits) > 180 and {k for k, v in ACTIONS.items() if v.get("reset")} <= set(fits)
    exp = expected_cycles(x[fits], g.hidden.spike[fits], (64, 64, 10), LANES, tfmt.n_steps)
    off = np.flatnonzero(hw.cycles[fits] < exp)
    assert not off.size, (f"{what}: image {fits[off[0]]}: {hw.cycles[fits[off[0]]]} cycles, "
                          f"fewer than the model's {exp[off[0]]}")
    # What the run exercised: active events and spikes on digits, saturated membranes after
    # the load, images with more beats than the input queue (dense), silent images.
    assert g.hidden.active[:150].sum() > 1000 and g.hidden.spike[:150].sum() > 1000
    lo, hi = -(1 << tfmt.lif.v_bits - 1), (1 << tfmt.lif.v_bits - 1) - 1
    assert (g.hidden.v[LOAD_AT:] == hi).any(), "no hidden membrane saturated"
    assert np.isin([lo, hi], g.readout.v[LOAD_AT:]).all(), "readout not saturated both ways"
    assert x[186:194].sum(axis=(1, 2)).min() > 64 + tfmt.n_steps     # dense
    same = [name for name, steps in sorted(MUTANTS.items())
            if first_mismatch(hw, expected_run(x, w, tfmt, ACTIONS, w2, steps), x) is None]
    assert not same, f"the hardware equals the mutant golden models {same}"


@pytest.mark.requires_iverilog
def test_icarus_sample():
    """The same Verilog under Icarus: 4 digits, a dense image with a reset before it, stalls."""
    tfmt, w = digits_network()
    x, _ = sequence(tfmt)
    x = np.concatenate([x[:4], x[186:187]])
    actions = {4: {"reset": True}}
    hw = simulate_ssgd_hardware(tfmt, w, x, LANES, sim="icarus", stall_in=0.3, stall_out=0.3,
                                stall_act=0.3, stall_from=2, seed=5, actions=actions,
                                name="ssgd_digits_l6_4")
    bad = first_mismatch(hw, expected_run(x, w, tfmt), x, "icarus")
    assert bad is None, bad
