"""Tests of the fixed-point SSGD training (spikegate.golden.ssgd_train_fixed): a hand-computed
case, its mutations, saturation, dense == sparse, tracking of the float model, learning."""

import numpy as np
import pytest

from spikegate.golden import ssgd as S
from spikegate.golden import ssgd_fixed as SF
from spikegate.golden import ssgd_train_fixed as F
from spikegate.golden.data import load_dataset

FMT = F.TrainFormat()


@pytest.fixture(scope="module")
def digits():
    d = load_dataset("digits")
    return F.encode(d.x_train[:200], FMT), d.y_train[:200]


# ----------------------------------------------------------------------------- hand case
#
# 6 inputs, 1 hidden neuron, 2 classes, T = 5, beta_q = beta_r_q = 232 (0.90625), V_th = 256,
# band 51, surrogate scale 100, softmax step 1/8 nat per V_th, lr shifts 16 and 12.
# Inputs 0-2 spike at t=0 (W1 = 100 each), input 3 at t=1 (W1 = 0), inputs 4-5 at t=2
# (W1 = 120 each); W2 = [100, -50]; label 0.
#
# v[1] = 300 (spike; |44| < 51: event, LUT[44] = rhe(32768 / 18.1875**2) = 99)
# v[2] = rnd(300 * .90625 = 271.875) - 256 = 16             (|240|: no event)
# v[3] = rnd(16 * .90625 = 14.5) = 15 (half up) + 240 = 255 (event, LUT[1] = 16945)
# v[4] = rnd(255 * .90625 = 231.09) = 231                   (event, LUT[25] = 283; K[4] = 0)
# o[2] = [100, -50], o[3] = [rnd(90.625), rnd(-45.3125)] = [91, -45], o[4] = [82, -41]
# z = [273, -136]; k = round_shift(409, 8) = 2; EXP[2] = rint(16384 e**-.25) = 12760
# S = 29144; p = [floor(16384**2 / S), floor(12760 * 16384 / S)] = [9210, 7173]
# dlog = [-7174, 7173]; u = round_shift(100 * -7174 - 50 * 7173 = -1076050, 8) = -4203
# K = [889, 698, 488, 256, 0]
# event t=1: ks = round_shift(698 * 99 = 69102, 11) = 34; delta = round_shift(34 * -4203, 11)
#            = round(-69.78) = -70
# event t=3: ks = round_shift(256 * 16945, 11) = 2118; delta = round(2118 * -4203 / 2048 =
#            -4346.66) = -4347
# tr[1] = [256]*3 + [0]*3; tr[3] = [210]*3 + [232] + [256]*2 (decay 256 -> 232 -> 210.25)
# G1 = tr[1] * -70 + tr[3] * -4347 = [-930790]*3 + [-1008504] + [-1112832]*2
# R = round_shift(K[1] = 698, 4) = 44; G2 = 44 * dlog = [-315656, 315612]
# image 1: the dither is bitrev16(1) = 2**15, half of 2**16 (and 2**11 of 2**12): round half up
# W1' = W1 - ((G1 + 2**15) >> 16) = [100 + 14]*3 + [0 + 15] + [sat(120 + 17)]*2
# W2' = W2 - ((G2 + 2**11) >> 12) = [sat(100 + 77), -50 - 77]

HAND_FMT = F.TrainFormat(n_steps=5, lr1_shift=16, lr2_shift=12, logit_scale=0.125, z_shift=8)
HAND_W1 = np.array([[100], [100], [100], [0], [120], [120]])
HAND_W2 = np.array([[100, -50]])
HAND_TIMES = np.array([0, 0, 0, 1, 2, 2])
HAND = {
    "v": [0, 300, 16, 255, 231],
    "z": [273, -136],
    "events_t": [1, 3, 4],
    "events_g": [99, 16945, 283],
    "p": [9210, 7173],
    "dlog": [-7174, 7173],
    "u": -4203,
    "delta": [-70, -4347, 0],
    "G1": [-930790] * 3 + [-1008504] + [-1112832] * 2,
    "R": 44,
    "G2": [-315656, 315612],
    "W1": [114, 114, 114, 15, 127, 127],
    "W2": [127, -127],
}


def _hand_mismatches():
    """Names of the hand-computed values the model gets wrong (empty: all equal)."""
    (w1, w2), fwd, gr = F.train_step((HAND_W1, HAND_W2), HAND_TIMES, 0, HAND_FMT,
                                     image_index=1)
    got = {
        "v": fwd.v[:, 0, 0], "z": fwd.z[0], "events_t": fwd.events.t, "events_g": fwd.events.g,
        "p": gr.p[0], "dlog": gr.dlog[0], "u": gr.u[0, 0], "delta": gr.delta,
        "G1": gr.G1[:, 0], "R": fwd.R[0, 0], "G2": gr.G2[0], "W1": w1[:, 0], "W2": w2[0],
    }
    return [k for k, v in HAND.items() if not np.array_equal(np.asarray(got[k]), v)]


def test_hand_case_exact():
    assert _hand_mismatches() == []


def test_hand_tables():
    tb = F.make_tables(HAND_FMT)
    assert tb.K.tolist() == [889, 698, 488, 256, 0]
    assert tb.exp[:3].tolist() == [16384, 14459, 12760]
    assert tb.lut[[1, 25, 44]].tolist() == [16945, 283, 99]
    assert F.trace_table(HAND_FMT).tolist() == [256, 232, 210, 190, 172]


def test_dither_is_bit_reversed_and_unbiased():
    fmt = FMT.with_(dither_bits=4)
    assert [F.dither(n, 6, fmt) for n in range(5)] == [0, 32, 16, 48, 8]
    assert F.dither(17, 6, fmt) == 32 and F.dither(3, 2, fmt) == 3     # 12 >> 2
    assert F.dither(5, 6, FMT.with_(dither_bits=0)) == 32                # round half up
    for g in (5, -5, 37, -1):                        # over a cycle, floor((g + r) / 16)
        steps = [(g + F.dither(n, 4, fmt)) >> 4 for n in range(16)]      # averages g / 16
        assert sum(steps) == g, (g, steps)
    g = F.FixedGrads(G1=np.full((1, 1), -3), G2=np.full((1, 1), 5), p=None, dlog=None,
                     u=None, delta=None, n_events=0)
    w = (np.zeros((1, 1), np.int64), np.zeros((1, 1), np.int64))
    fmt = FMT.with_(lr1_shift=2, lr2_shift=2, dither_bits=2)
    got = [[int(a[0, 0]) for a in F.sgd_update(w, g, fmt, n)] for n in range(4)]
    assert got == [[1, -1], [1, -1], [1, -1], [0, -2]]  # r = 0, 2, 1, 3: sums -3 and 5


def _floor_shift(x, n):
    return np.right_shift(np.asarray(x, dtype=np.int64), n)


@pytest.mark.parametrize("mutation", [
    # decays without rounding (floor): v[3] = 14 + 240
    ("_half", lambda bits: 0),
    # every round_shift of the backward and the update floors instead
    ("round_shift", _floor_shift),
    # the update and delta do not saturate
    ("saturate", lambda x, bits, signed=True: np.asarray(x, dtype=np.int64)),
    # the update without its dither (floor): W1[0] = 115
    ("dither", lambda image_index, shift, fmt: 0),
    # delta from K g u in one rounding, without the intermediate ks (-69 instead of -70)
    ("event_delta",
     lambda K_t, g, u, fmt: np.clip((K_t * g * u + (1 << 21)) >> 22, -32768, 32767)),
])
def test_hand_case_catches_mutations(monkeypatch, mutation):
    name, fn = mutation
    F._trace_table.cache_clear()                         # no mutated table outlives the test
    monkeypatch.setattr(F, name, fn)
    try:
        assert _hand_mismatches(), f"mutation {name} went unnoticed"
    finally:
        F._trace_table.cache_clear()


# ----------------------------------------------------------------------------- pieces

def test_hidden_forward_is_ssgd_fixed_lif_and_trace_table_is_the_recursion():
    rng = np.random.default_rng(7)
    w1, _ = F.init_weights((64, 24, 10), FMT, seed=7)
    times = rng.integers(0, FMT.n_steps + 1, size=(6, 64))
    x = F.input_raster(times, FMT)
    v, s = F.hidden_forward(x, w1, FMT)
    v2, s2 = SF.lif_forward_fixed(x, w1, FMT.beta_q, FMT.lif)
    assert np.array_equal(v, v2) and np.array_equal(s, s2), "seed 7"
    assert np.array_equal(F.trace_from_times(times, FMT), F.input_trace_fixed(x, FMT))


def test_surrogate_table_equals_ssgd_fixed_lut():
    for scale in (100.0, 37.5, 3.3):
        assert np.array_equal(F.surrogate_table(FMT, 80, scale),
                              SF.surrogate_lut(FMT.lif, 80, scale)), scale


def test_events_are_the_band_in_hardware_order():
    rng = np.random.default_rng(3)
    v = rng.integers(150, 360, size=(6, 2, 5))
    lut = F.surrogate_table(FMT, 51)
    ev = F.active_events(v, lut, FMT)
    mask = np.abs(v - 256) < 51
    mask[0] = False
    assert len(ev) == mask.sum()
    key = (ev.t * 2 + ev.b) * 5 + ev.j
    assert np.all(np.diff(key) > 0), "events not in (t, b, j) order"
    assert np.array_equal(ev.g, lut[np.abs(v[ev.t, ev.b, ev.j] - 256)])


def test_softmax_equal_logits_and_floor_division():
    z = np.zeros((1, 10), dtype=np.int64)
    p, dlog = F.softmax_grad_fixed(z, np.array([3]), FMT)
    assert p.tolist() == [[1638] * 10]                  # floor(16384 / 10)
    assert dlog[0, 3] == 1638 - 16384 and dlog.sum() == 10 * 1638 - 16384
    z[0, 5] = (64 << FMT.z_shift) + 200                 # the others past the table: p = 0
    p, _ = F.softmax_grad_fixed(z, np.array([5]), FMT)
    assert p[0].tolist() == [0] * 5 + [16384] + [0] * 4


# ----------------------------------------------------------------------------- saturation

def test_membranes_saturate_on_a_crafted_input():
    fmt = F.TrainFormat(n_steps=40)
    x = np.ones((40, 1, 64), dtype=bool)                 # every input spikes every step
    w1 = np.full((64, 100), 127)
    w2 = np.full((100, 2), 127)
    w2[:, 1] = -128
    f = F.forward_fixed((w1, w2), x, fmt)
    assert f.v.max() == 32767                            # 64 * 127 per step > leak
    assert f.o[:, 0, 0].max() == 32767 and f.o[:, 0, 1].min() == -32768   # 100 * 127 > leak
    assert np.array_equal(f.z[0], f.o[:, 0].sum(axis=0))   # the 24-bit sum is exact


def test_delta_and_update_saturate():
    d = F.event_delta(np.array([2602]), np.array([32768]), np.array([16000]), FMT)
    assert d.tolist() == [32767]                         # 41632 * 16000 / 2048 > 2**15
    d = F.event_delta(np.array([2602]), np.array([32768]), np.array([-16000]), FMT)
    assert d.tolist() == [-32768]
    g = F.FixedGrads(G1=np.array([[-(1 << 40)], [1 << 40]]), G2=np.zeros((1, 2), np.int64),
                     p=None, dlog=None, u=None, delta=None, n_events=0)
    w1, w2 = F.sgd_update((np.array([[5], [5]]), np.array([[1, -1]])), g, FMT)
    assert w1[:, 0].tolist() == [127, -128] and w2.tolist() == [[1, -1]]


def test_bad_weights_are_refused():
    w1, w2 = F.init_weights((64, 8, 10), FMT)
    with pytest.raises(ValueError, match="W1 exceeds the signed 8-bit range"):
        F.forward_fixed((w1 * 2 + 200, w2), np.zeros((1, 64), np.int64), FMT)
    with pytest.raises(ValueError, match="W2 has shape"):
        F.forward_fixed((w1, w2[:5]), np.zeros((1, 64), np.int64), FMT)
    with pytest.raises(ValueError, match="labels must lie"):
        F.softmax_grad_fixed(np.zeros((1, 10), np.int64), np.array([10]), FMT)
    with pytest.raises(ValueError, match="can overflow"):
        F.TrainFormat(n_steps=300)


# ----------------------------------------------------------------------------- dense

def test_sparse_equals_dense_when_every_entry_is_active(digits):
    times, y = digits
    fmt = FMT.with_(b_th=300.0)                          # band 76800 > any |v - V_th|
    w = F.init_weights((64, 16, 10), fmt, seed=2)
    tb = F.make_tables(fmt)
    fwd = F.forward_fixed(w, times[:8], fmt, tb)
    assert len(fwd.events) == (fmt.n_steps - 1) * 8 * 16
    sp = F.sparse_backward_fixed(w, fwd, y[:8], fmt, tb)
    de = F.dense_backward_fixed(w, fwd, y[:8], fmt, tb)
    assert np.array_equal(sp.G1, de.G1) and np.array_equal(sp.G2, de.G2)
    assert np.array_equal(sp.delta, de.delta[fwd.events.t, fwd.events.b, fwd.events.j])
    assert np.count_nonzero(sp.G1) > 0.5 * sp.G1.size


def test_sparse_equals_dense_masked_by_the_band(digits):
    times, y = digits
    w = F.init_weights((64, 16, 10), FMT, seed=4)
    tb = F.make_tables(FMT)
    fwd = F.forward_fixed(w, times[:16], FMT, tb)
    sp = F.sparse_backward_fixed(w, fwd, y[:16], FMT, tb)
    de = F.dense_backward_fixed(w, fwd, y[:16], FMT, tb, lut=tb.lut)
    assert 0 < len(fwd.events) < 0.1 * fwd.v[1:].size
    assert np.array_equal(sp.G1, de.G1) and np.array_equal(sp.G2, de.G2)
    # and the unmasked dense backward is a different gradient
    assert not np.array_equal(F.dense_backward_fixed(w, fwd, y[:16], FMT, tb).G1, sp.G1)


# ----------------------------------------------------------------------------- float

def test_forward_tracks_float_within_the_leak_bound(digits):
    """While the spikes agree, |v_fixed - v_float| <= 0.5 / (1 - beta_q / 256) LSB."""
    times, y = digits
    w = F.init_weights((64, 32, 10), FMT, seed=1)
    fwd = F.forward_fixed(w, times[:40], FMT)
    r = F.float_step(tuple(a / 256 for a in w), times[:40], y[:40], FMT)
    bound = 0.5 / (1 - FMT.beta_q / 256)
    agree = np.all(fwd.s == r["s"], axis=(0, 2))
    assert agree.sum() >= 20
    err = np.abs(fwd.v[:, agree] - 256 * r["v"][:, agree]).max()
    assert err <= bound, f"{err} LSB > {bound}"


def test_backward_tracks_float_from_the_same_forward(digits):
    """From the same forward, the backward's roundings move G1 and G2 by less than 5 % of
    their largest entry (measured 0.5-2 %), cosine >= 0.999, and p by less than the
    softmax index's half step: 2**14 (e**(1/16) - 1) + 1 LSB."""
    times, y = digits
    for seed in (0, 1):
        w = F.init_weights((64, 32, 10), FMT, seed=seed)
        sl = slice(40 * seed, 40 * seed + 40)
        fwd = F.forward_fixed(w, times[sl], FMT)
        gr = F.sparse_backward_fixed(w, fwd, y[sl], FMT)
        r = F.float_step(tuple(a / 256 for a in w), times[sl], y[sl], FMT, fixed_forward=fwd)
        assert np.abs(gr.p - r["p_q"]).max() <= 2 ** 14 * (np.exp(1 / 16) - 1) + 1
        for a, b in ((gr.G1, r["G1_q"]), (gr.G2, r["G2_q"])):
            assert np.abs(a - b).max() <= 0.05 * np.abs(b).max(), f"seed {seed}"
            assert S.cosine_similarity(a, b) >= 0.999, f"seed {seed}"


def test_few_training_steps_track_float(digits):
    """Five images of training from the same weights, fixed against float (each with its own
    forward): the weight changes point the same way (cosine >= 0.95 for W2, >= 0.6 for W1,
    whose changes are a few LSB, so that the +-0.5 LSB rounding of each step weighs)."""
    times, y = digits
    w = F.init_weights((64, 32, 10), FMT, seed=0)
    wf = [a / 256 for a in w]
    wq = w
    lr1, lr2 = FMT.lr_float()
    for k in range(5):
        wq, _, _ = F.train_step(wq, times[k], y[k], FMT, image_index=k)
        r = F.float_step(wf, times[k:k + 1], y[k:k + 1], FMT)
        wf = [wf[0] - lr1 * r["dW1"], wf[1] - lr2 * r["dW2"]]
    assert S.cosine_similarity(wq[1] - w[1], 256 * wf[1] - w[1]) >= 0.95
    assert S.cosine_similarity(wq[0] - w[0], 256 * wf[0] - w[0]) >= 0.6


# ----------------------------------------------------------------------------- learning

def test_training_on_a_tiny_set_reduces_the_loss(digits):
    times, y = digits
    w = F.init_weights((64, 32, 10), FMT, seed=5)
    tb = F.make_tables(FMT)

    def loss(w):
        f = F.forward_fixed(w, times[:30], FMT, tb)
        return F.sparse_backward_fixed(w, f, y[:30], FMT, tb).loss(y[:30], FMT)

    before = loss(w)
    w2, hist = F.train_fixed(w, times[:30], y[:30], FMT, epochs=4, seed=5)
    after = loss(w2)
    assert after < 0.7 * before, f"loss {before:.3f} -> {after:.3f} (seed 5)"
    assert hist["events"][-1] > 0
    assert all(a.min() >= -128 and a.max() <= 127 for a in w2)


def test_every_public_name_exists():
    for name in F.__all__:
        assert hasattr(F, name), name


def test_training_continues_bit_for_bit_from_its_image_counter(digits):
    times, y = digits
    w0 = F.init_weights((64, 12, 10), FMT, seed=6)
    whole, _ = F.train_fixed(w0, times[:20], y[:20], FMT, epochs=1, shuffle=False)
    half, _ = F.train_fixed(w0, times[:10], y[:10], FMT, epochs=1, shuffle=False)
    rest, _ = F.train_fixed(half, times[10:20], y[10:20], FMT, epochs=1, shuffle=False,
                            first_image=10)
    wrong, _ = F.train_fixed(half, times[10:20], y[10:20], FMT, epochs=1, shuffle=False)
    assert all(np.array_equal(a, b) for a, b in zip(whole, rest))
    assert not all(np.array_equal(a, b) for a, b in zip(whole, wrong))
