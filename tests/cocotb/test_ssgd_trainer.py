"""On-chip SSGD training in the generated Verilog (hdl/ssgd_trainer.py, driven by
sim/ssgd_train_cocotb.py through sim/ssgd_train_run.py) against the golden fixed-point
training (golden/ssgd_train_fixed.train_step), from random weights (init_weights) on digits
training images: every image's class and active events, 24 weights of each matrix read back
after every image (at random positions) and every weight at the end, bit for bit; random stalls
on the image stream and back-pressure on the results; the backward's cycles equal the readout
engine's count plus the gradient engine's model plus a constant. CI: 20 images; slow: 200."""

import numpy as np
import pytest

from spikegate.golden import ssgd_train_fixed as stf
from spikegate.sim.ssgd_train_run import golden_training, sample_positions, simulate_ssgd_training

SIZES, LANES, SEED = (64, 64, 10), (8, 10), 41


def _check(n):
    from spikegate.golden.data import load_dataset
    tfmt = stf.TrainFormat()
    w = stf.init_weights(SIZES, tfmt, seed=SEED)
    d = load_dataset("digits")
    times, labels = stf.encode(d.x_train[:n], tfmt), d.y_train[:n]
    rng = np.random.default_rng(SEED)
    samples = [np.stack([sample_positions(rng, s, 24) for _ in range(n)])
               for s in ((SIZES[0], SIZES[1]), (SIZES[1], SIZES[2]))]
    hw = simulate_ssgd_training(tfmt, w, times, labels, LANES, samples, stall_in=0.2,
                                stall_out=0.3, seed=SEED, name="ssgd_trainer_digits_l8_10")
    g = golden_training(tfmt, w, times, labels, samples)
    what = f"seed {SEED}"
    for k in ("klass", "active", "w_sample0", "w_sample1"):
        bad = np.argwhere(hw[k] != g[k])
        assert not bad.size, (f"{what}: image {bad[0][0]}: {k} = {hw[k][tuple(bad[0])]}, "
                              f"golden {g[k][tuple(bad[0])]}")
    for l in range(2):
        bad = np.argwhere(hw[f"w_final{l}"] != g[f"w_final{l}"])
        assert not bad.size, f"{what}: final W{l + 1}{list(bad[0])} differs"
    assert (g["w_final0"] != w[0]).sum() > 100 and (g["w_final1"] != w[1]).sum() > 20
    # Backward cycles: 1 (request) + the readout engine's (3C + C(e_bits + p_frac + 2) +
    # H(C + 4), checked by tests/amaranth/test_ssgd_readout.py) + the gradient engine's model
    # + a constant of the handshakes, the same for every image.
    H, C = SIZES[1], SIZES[2]
    e_bits = int(stf.exp_table(tfmt).max()).bit_length()
    readout = 3 * C + C * (e_bits + tfmt.p_frac + 2) + H * (C + 4)
    rest = hw["backward_cycles"] - readout - g["grad_cycles"]
    assert (rest == rest[0]).all() and 0 <= rest[0] <= 8, f"{what}: backward cycles {rest}"
    return hw, g


def test_on_chip_training_20_images():
    _check(20)


@pytest.mark.slow
def test_on_chip_training_200_images():
    _check(200)
