"""On-chip SSGD training in the generated Verilog (hdl/ssgd_trainer.py, driven by
sim/ssgd_train_cocotb.py through sim/ssgd_train_run.py) against the golden fixed-point
training (golden/ssgd_train_fixed.train_step), from random weights (init_weights) on digits
training images: every image's class and active events, 24 weights of each matrix read back
after every image (at random positions) and every weight at the end, bit for bit; random stalls
on the image stream and back-pressure on the results; the backward's cycles equal the readout
engine's count plus the gradient engine's model plus a constant. CI: 20 images; slow: 200.

A reset in the middle of an image (test_reset_mid_image, 12 images, 4 of them random dense or
sparse inputs with random labels): in the forward, in the ``W2`` update and in the ``W1``
update. What a user gets (and the RTL does): the weights are block RAM
contents, a reset does not reload them; it aborts the image (no result), every register starts
again, the image counter (the update's dither) at 0. So after a reset in the forward the
weights are those before the image; in the backward, the updates written before the reset
stay: each matrix is the golden update's first weights in the engine's order (``W2`` by rows,
``W1`` by columns) and the old ones after them, never anything else. Training then goes on bit
for bit with the golden training from those weights, counting images from 0. The same run
with a trainer whose image counter survives the reset fails (test_reset_mutant_is_caught).
Icarus trains 3 images of the same Verilog (test_icarus_sample)."""

import numpy as np
import pytest

from spikegate.golden import ssgd_train_fixed as stf
from spikegate.sim.ssgd_train_run import (UPDATE_ORDER, golden_training, interrupted_cut,
                                          sample_positions, simulate_ssgd_training)

SIZES, LANES, SEED = (64, 64, 10), (8, 10), 41
NAME = "ssgd_trainer_digits_l8_10"


def _data(n, random_at=()):
    """Weights from init_weights, the first ``n`` digits training images; at the indices
    ``random_at`` random images instead (alternately dense: each input spikes with
    probability 0.7, and sparse: 0.1, at a uniform step of 0 .. T-1, the last one never
    sent) with random labels."""
    from spikegate.golden.data import load_dataset
    tfmt = stf.TrainFormat()
    w = stf.init_weights(SIZES, tfmt, seed=SEED)
    d = load_dataset("digits")
    times, labels = stf.encode(d.x_train[:n], tfmt), d.y_train[:n].copy()
    rng = np.random.default_rng(SEED)
    T = tfmt.n_steps
    for k, b in enumerate(random_at):
        p = 0.7 if k % 2 == 0 else 0.1
        times[b] = np.where(rng.random(SIZES[0]) < p, rng.integers(0, T, SIZES[0]), T)
        labels[b] = rng.integers(0, SIZES[2])
    samples = [np.stack([sample_positions(rng, s, 24) for _ in range(n)])
               for s in ((SIZES[0], SIZES[1]), (SIZES[1], SIZES[2]))]
    return tfmt, w, times, labels, samples


def _readout_cycles(tfmt):
    """The readout engine's backward (tests/amaranth/test_ssgd_readout.py checks it): 3C + C
    (e_bits + p_frac + 2) + H (C + 4), the last H (C + 4) the rows of W2."""
    H, C = SIZES[1], SIZES[2]
    e_bits = int(stf.exp_table(tfmt).max()).bit_length()
    return 3 * C + C * (e_bits + tfmt.p_frac + 2) + H * (C + 4)


def _compare(hw, g, what):
    for k in ("klass", "active", "w_sample0", "w_sample1"):
        bad = np.argwhere(hw[k] != g[k])
        assert not bad.size, (f"{what}: image {bad[0][0]}: {k} = {hw[k][tuple(bad[0])]}, "
                              f"golden {g[k][tuple(bad[0])]}")
    for l in range(2):
        bad = np.argwhere(hw[f"w_final{l}"] != g[f"w_final{l}"])
        assert not bad.size, f"{what}: final W{l + 1}{list(bad[0])} differs"


def _check(n):
    tfmt, w, times, labels, samples = _data(n)
    hw = simulate_ssgd_training(tfmt, w, times, labels, LANES, samples, stall_in=0.2,
                                stall_out=0.3, seed=SEED, name=NAME)
    g = golden_training(tfmt, w, times, labels, samples)
    what = f"seed {SEED}"
    _compare(hw, g, what)
    assert (g["w_final0"] != w[0]).sum() > 100 and (g["w_final1"] != w[1]).sum() > 20
    # Backward cycles: 1 (request) + the readout engine's + the gradient engine's model
    # + a constant of the handshakes, the same for every image.
    rest = hw["backward_cycles"] - _readout_cycles(tfmt) - g["grad_cycles"]
    assert (rest == rest[0]).all() and 0 <= rest[0] <= 8, f"{what}: backward cycles {rest}"
    return hw, g


def test_on_chip_training_20_images():
    _check(20)


@pytest.mark.slow
def test_on_chip_training_200_images():
    _check(200)


# Resets: in image 3's forward, in image 6's W2 update (half its rows), in image 9's W1 update
# (half the gradient engine's walk, estimated from the training without resets); random
# images between them.
N_RESET = 12
RESET_IMAGES = {3: "forward", 6: "W2", 9: "W1"}
RANDOM_AT = (1, 4, 7, 10)


def _reset_actions(tfmt, w, times, labels, samples):
    g = golden_training(tfmt, w, times, labels, samples)
    H, C = SIZES[1], SIZES[2]
    readout = _readout_cycles(tfmt)
    delays = {"W2": readout - H * (C + 4) // 2,
              "W1": readout + int(g["grad_cycles"][9]) // 2}
    return {k: {"reset": "forward"} if phase == "forward" else
            {"reset": "backward", "delay": delays[phase]}
            for k, phase in RESET_IMAGES.items()}


def _run_resets(**kw):
    tfmt, w, times, labels, samples = _data(N_RESET, RANDOM_AT)
    actions = _reset_actions(tfmt, w, times, labels, samples)
    hw = simulate_ssgd_training(tfmt, w, times, labels, LANES, samples, stall_in=0.2,
                                stall_out=0.3, seed=SEED, actions=actions, **kw)
    assert len(hw["w_reset0"]) == len(RESET_IMAGES)
    resets = {k: (hw["w_reset0"][r], hw["w_reset1"][r])
              for r, k in enumerate(sorted(RESET_IMAGES))}
    return hw, golden_training(tfmt, w, times, labels, samples, resets=resets), resets


def _check_reset_weights(g, resets, phases=RESET_IMAGES):
    """The weights read back after each reset: those before the image (forward), or the
    golden update cut short in the engine's order (W2 / W1), never anything else."""
    for k, phase in phases.items():
        old, new, got = g["before"][k], g["aborted"][k], resets[k]
        for l in range(2):
            if phase == "forward" or (phase == "W2" and l == 0):
                want = old[l]
            elif phase == "W1" and l == 1:
                want = new[l]
            else:
                cut = interrupted_cut(old[l], new[l], got[l], UPDATE_ORDER[l])
                assert cut is not None, (f"image {k}: after a reset in the W{l + 1} update, "
                                         f"W{l + 1} is not its first weights new, the rest old")
                assert (got[l] != old[l]).any() and (got[l] != new[l]).any(), (
                    f"image {k}: the reset did not land in the W{l + 1} update "
                    f"({(got[l] != old[l]).sum()} weights changed of "
                    f"{(new[l] != old[l]).sum()})")
                continue
            bad = np.argwhere(got[l] != want)
            assert not bad.size, (f"image {k}: after a reset in the {phase} phase W{l + 1}"
                                  f"{list(bad[0])} = {got[l][tuple(bad[0])]}, expected "
                                  f"{want[tuple(bad[0])]}")


def test_reset_mid_image():
    hw, g, resets = _run_resets(name=NAME)
    _check_reset_weights(g, resets)
    _compare(hw, g, f"seed {SEED}, resets {RESET_IMAGES}")


def test_reset_mutant_is_caught(monkeypatch):
    """The same run with a trainer whose image counter is not reset (a reset-less register,
    so the dither goes on where it was) differs from the golden training: the test above
    would catch it."""
    from amaranth.hdl import Signal
    from spikegate.hdl import ssgd_trainer

    mutated = []

    def signal(*args, src_loc_at=0, **kw):
        s = Signal(*args, src_loc_at=src_loc_at + 1, **kw)
        if s.name != "image":
            return s
        mutated.append(s.name)
        return Signal(*args, name="image", reset_less=True, **kw)

    monkeypatch.setattr(ssgd_trainer, "Signal", signal)
    hw, g, resets = _run_resets(name=NAME + "_mutant")
    assert mutated == ["image"], "SSGDTrainer has no register named image to mutate"
    with pytest.raises(AssertionError, match="W1|W2|w_sample|final"):
        _check_reset_weights(g, resets)
        _compare(hw, g, "mutant")


@pytest.mark.requires_iverilog
def test_icarus_sample():
    """The same Verilog under Icarus: 3 images with stalls, a reset in the second one's W2
    update, every weight after it and at the end."""
    tfmt, w, times, labels, samples = _data(3)
    H, C = SIZES[1], SIZES[2]
    actions = {1: {"reset": "backward", "delay": _readout_cycles(tfmt) - H * (C + 4) // 2}}
    hw = simulate_ssgd_training(tfmt, w, times, labels, LANES, samples, sim="icarus",
                                stall_in=0.2, stall_out=0.3, seed=SEED, actions=actions,
                                name=NAME)
    resets = {1: (hw["w_reset0"][0], hw["w_reset1"][0])}
    g = golden_training(tfmt, w, times, labels, samples, resets=resets)
    _check_reset_weights(g, resets, {1: "W2"})
    _compare(hw, g, "icarus")
    assert (g["w_final1"] != w[1]).sum() > 20
