"""The sign-backprop learning rule: hand-made cases per clause, and the vectorized step against
a slow loop over neurons and weights (seeded random networks)."""

import numpy as np
import pytest

from spikegate.golden.popcount import popcount
from spikegate.golden.sign_backprop import (
    MAX_LR_SHIFT, apply_update, causal_mask, check_label, evaluate_discrete, hidden_deltas,
    output_deltas, random_discrete_network, requantize, sign_backprop_step, train_sign,
    LFSR_SEED, UpdateLFSR, lfsr_step,
)
from spikegate.golden.ttfs_discrete import NO_SPIKE, DiscreteConfig, DiscreteNetwork, simulate

N = NO_SPIKE


# ---------------------------------------------------------------------------------------
# Clause 1: output deltas
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("steps, decision, label, expected", [
    ([N, 5, N], 1, 1, [0, 0, 0]),            # correct, alone: nothing changes
    ([N, 5, 5], 1, 1, [0, 0, -1]),           # tie won by c on the lower index: others later
    ([5, 5, N], 0, 1, [-1, 1, 0]),           # tie lost by c on the index: c earlier, winner later
    ([4, N, N], 0, 2, [-1, 0, 1]),           # wrong class, c silent
    ([N, N, N], -1, 0, [1, 0, 0]),           # no decision
    ([7, 7, 7], 0, 0, [0, -1, -1]),          # everything fired at k_d, c won
])
def test_output_deltas(steps, decision, label, expected):
    d = output_deltas(np.array(steps), decision, label)
    assert d.dtype == np.int8
    assert d.tolist() == expected, (steps, decision, label)


# ---------------------------------------------------------------------------------------
# Clause 2: hidden deltas and popcounts
# ---------------------------------------------------------------------------------------

def test_hidden_deltas_hand_made():
    w = np.array([[3, -2, 0, 5],     # P: o0 (+,+)           N: o3 (+,-), o1 (-,+)   -> -1
                  [0, 0, 0, 0],      # zero weights vote for neither                -> 0
                  [-1, -1, 9, -128],  # P: o3 (-,-)          N: o0, o1 (-,+)         -> -1
                  [1, 1, -1, -1]],   # P: o0, o1, o3        N: none (o2: delta 0)    -> +1
                 dtype=np.int8)
    d = np.array([1, 1, 0, -1], dtype=np.int8)
    delta, p, n = hidden_deltas(w, d)
    assert p.tolist() == [1, 0, 1, 3]
    assert n.tolist() == [2, 0, 2, 0]
    assert delta.tolist() == [-1, 0, -1, 1]


@pytest.mark.parametrize("n_above", [1, 10, 64])
def test_hidden_deltas_all_zero_and_all_one_masks(n_above):
    rng = np.random.default_rng(n_above)
    w = rng.integers(-128, 128, size=(7, n_above)).astype(np.int8)
    w[w == 0] = 1
    # all-zero delta masks: no votes at all
    delta, p, n = hidden_deltas(w, np.zeros(n_above, dtype=np.int8))
    assert not p.any() and not n.any() and not delta.any()
    # all-zero weight masks
    delta, p, n = hidden_deltas(np.zeros_like(w), np.ones(n_above, dtype=np.int8))
    assert not p.any() and not n.any() and not delta.any()
    # all-one masks: every weight positive, every delta +1 (or -1)
    pos = np.abs(w.astype(np.int16)).clip(1, 127).astype(np.int8)
    delta, p, n = hidden_deltas(pos, np.ones(n_above, dtype=np.int8))
    assert p.tolist() == [n_above] * 7 and not n.any() and (delta == 1).all()
    delta, p, n = hidden_deltas(pos, -np.ones(n_above, dtype=np.int8))
    assert n.tolist() == [n_above] * 7 and not p.any() and (delta == -1).all()
    delta, p, n = hidden_deltas(-pos, -np.ones(n_above, dtype=np.int8))
    assert p.tolist() == [n_above] * 7 and (delta == 1).all()
    # random: P + N = number of o with nonzero weight and nonzero delta; delta = sign of the sum
    d = rng.integers(-1, 2, size=n_above).astype(np.int8)
    delta, p, n = hidden_deltas(w, d)
    assert (p + n).tolist() == popcount((w != 0) & (d != 0)[None, :], axis=1).tolist(), n_above
    want = np.sign((np.sign(w.astype(np.int64)) * d[None, :]).sum(axis=1))
    assert delta.tolist() == want.tolist(), f"seed {n_above}"


# ---------------------------------------------------------------------------------------
# Clause 3: causal sets
# ---------------------------------------------------------------------------------------

def test_causal_mask():
    src = np.array([0, 3, N, 5])
    dst = np.array([5, N, 3, 0])
    expected = np.array([
        # dst: fired 5, silent, fired 3, fired 0
        [True, True, True, False],      # src fired at 0: before 5 and 3; not before 0 (equal)
        [True, True, False, False],     # src at 3: equal step 3 is not causal
        [False, False, False, False],   # src silent: never causal
        [False, True, False, False],    # src at 5: equal to dst 5 -> no; silent dst -> yes
    ])
    assert np.array_equal(causal_mask(src, dst), expected)


# ---------------------------------------------------------------------------------------
# Clause 4: update, saturation, lr_shift
# ---------------------------------------------------------------------------------------

def test_apply_update_saturates():
    w = np.array([[127, -128, 120, -100, 5, 7]], dtype=np.int8)
    causal = np.array([[True, True, True, True, True, False]])
    delta = np.array([1, -1, 1, -1, -1, 1], dtype=np.int8)
    new, written, changed = apply_update(w, causal, delta, 0)
    assert new.tolist() == [[127, -128, 121, -101, 4, 7]]
    assert (written, changed) == (5, 3)
    new, written, changed = apply_update(w, causal, delta, 3)
    assert new.tolist() == [[127, -128, 127, -108, -3, 7]]
    assert (written, changed) == (5, 3)
    new, _, _ = apply_update(w, causal, delta, 6)
    assert new.tolist() == [[127, -128, 127, -128, -59, 7]]
    assert new.dtype == np.int8
    # delta 0 writes nothing
    new, written, changed = apply_update(w, causal, np.zeros(6, dtype=np.int8), 2)
    assert np.array_equal(new, w) and written == changed == 0


@pytest.mark.parametrize("bad", [-1, MAX_LR_SHIFT + 1, 1.0, True])
def test_bad_lr_shift(bad):
    net = _hand_net()
    with pytest.raises(ValueError, match="lr_shift"):
        sign_backprop_step(net, [0, 2, N], 0, lr_shift=bad)


# ---------------------------------------------------------------------------------------
# A hand-made network through the whole step
# ---------------------------------------------------------------------------------------

def _hand_net(w1_row0=(30, 30, 0)):
    """3 inputs, 2 hidden, 3 outputs, theta 10; T = 32, dt = 1/8, F = 8 (z_k = 256 e^(k/8)).

    Inputs at steps [0, 2, never]: h0 (weight 30 from i0, 0 from i1) fires at 4
    (20 z_4 = 8440 >= 30 z_0 = 7680 > 20 z_3 = 7460); h1 (only i2, which never spikes) never
    fires. With ``w1_row0 = (30, 30, 0)`` o0 and o1 fire at 8 (20 z_8 = 13920 >= 30 z_4 =
    12660 > 20 z_7 = 12280), a tie decided for class 0; o2 never fires.
    """
    w0 = np.array([[30, 0], [0, 0], [0, 50]], dtype=np.int8)
    w1 = np.array([list(w1_row0), [5, -5, 7]], dtype=np.int8)
    return DiscreteNetwork([w0, w1], [10, 10], DiscreteConfig())


HAND_X = np.array([0, 2, N])


def test_hand_net_forward_premise():
    res = simulate(_hand_net(), HAND_X)
    assert res.spike_steps[1][0].tolist() == [4, N]
    assert res.spike_steps[2][0].tolist() == [8, 8, N]
    assert res.decision.tolist() == [0] and res.decision_step.tolist() == [8]


@pytest.mark.parametrize("label, d_out, p, n, d_hid, w0_delta, w1_delta", [
    # c = 0 won the tie: o1 later. h0: w+ with d- at o1 -> N = 1 -> -1; h1: w- with d- -> +1.
    (0, [0, -1, 0], [0, 1], [1, 0], [-1, 1],
     [[-1, 1], [-1, 1], [0, 0]], [[0, -1, 0], [0, 0, 0]]),
    # c = 1 lost the tie: o0 later, o1 earlier. h0: P = N = 1 -> 0; h1: N = 2 -> -1.
    (1, [-1, 1, 0], [1, 0], [1, 2], [0, -1],
     [[0, -1], [0, -1], [0, 0]], [[-1, 1, 0], [0, 0, 0]]),
    # c = 2 silent: o2's causal set is every source spike (h0). h0: N = 2 (o0, o1) -> -1;
    # h1: P = 2 (o2 w+ d+, o1 w- d-), N = 1 (o0 w+ d-) -> +1.
    (2, [-1, -1, 1], [0, 2], [2, 1], [-1, 1],
     [[-1, 1], [-1, 1], [0, 0]], [[-1, -1, 1], [0, 0, 0]]),
])
def test_hand_net_step(label, d_out, p, n, d_hid, w0_delta, w1_delta):
    net = _hand_net()
    before = [w.astype(np.int16) for w in net.weights]
    info = sign_backprop_step(net, HAND_X, label)
    assert info.decision == 0
    assert info.deltas[2].tolist() == d_out
    assert info.pos_counts[1].tolist() == p and info.neg_counts[1].tolist() == n
    assert info.deltas[1].tolist() == d_hid
    assert info.deltas[0].tolist() == [0, 0, 0]
    # causal sets: h0 (fired at 4) and h1 (silent) both from i0 (0) and i1 (2); i2 never.
    assert info.causal[0].tolist() == [[True, True], [True, True], [False, False]]
    # o0, o1 (fired at 8) and o2 (silent) all from h0 (4); h1 never fired.
    assert info.causal[1].tolist() == [[True, True, True], [False, False, False]]
    assert (net.weights[0] - before[0]).tolist() == w0_delta
    assert (net.weights[1] - before[1]).tolist() == w1_delta
    assert info.changed == [int(np.count_nonzero(w0_delta)), int(np.count_nonzero(w1_delta))]
    assert net.thetas == [10, 10]


def test_hand_net_no_decision():
    net = _hand_net(w1_row0=(5, 5, 0))      # weight 5 < theta 10: no output ever fires
    info = sign_backprop_step(net, HAND_X, 1)
    assert info.decision == -1 and info.result.decision_step.tolist() == [-1]
    assert info.deltas[2].tolist() == [0, 1, 0]
    # h0: w+ d+ at o1 -> P = 1 -> +1; h1: w- d+ at o1 -> N = 1 -> -1
    assert info.deltas[1].tolist() == [1, -1]
    assert (net.weights[0].astype(int) - _hand_net((5, 5, 0)).weights[0]).tolist() == \
        [[1, -1], [1, -1], [0, 0]]
    assert net.weights[1].tolist() == [[5, 6, 0], [5, -5, 7]]


def test_nothing_fired_changes_nothing():
    net = _hand_net()
    info = sign_backprop_step(net, [N, N, N], 2)
    assert info.decision == -1
    assert info.deltas[2].tolist() == [0, 0, 1]
    assert info.updated == [0, 0] and info.changed == [0, 0]
    assert all(np.array_equal(a, b) for a, b in zip(net.weights, _hand_net().weights))


def test_lr_shift_scales_the_step():
    for shift in range(MAX_LR_SHIFT + 1):
        net = _hand_net()
        sign_backprop_step(net, HAND_X, 0, lr_shift=shift)
        diff = net.weights[1].astype(int) - _hand_net().weights[1]
        assert diff.tolist() == [[0, -(1 << shift), 0], [0, 0, 0]], shift
    net = _hand_net()
    sign_backprop_step(net, HAND_X, 2, lr_shift=6)    # w1[0, 2] = 0 + 64; w0[0, 0] = 30 - 64
    assert net.weights[1][0, 2] == 64 and net.weights[0][0, 0] == -34


# ---------------------------------------------------------------------------------------
# Clause 5: labels
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [-1, 3, 10, 1.0, True, "1"])
def test_bad_label_changes_nothing(bad):
    net = _hand_net()
    with pytest.raises(ValueError, match=f"label.*{bad!r}" if not isinstance(bad, int) or
                       isinstance(bad, bool) else f"label {bad} "):
        sign_backprop_step(net, HAND_X, bad)
    assert all(np.array_equal(a, b) for a, b in zip(net.weights, _hand_net().weights))


def test_check_label():
    assert check_label(np.int64(9), 10) == 9
    with pytest.raises(ValueError, match="label 10 is outside"):
        check_label(10, 10)


def test_train_refuses_bad_labels_before_training():
    net = _hand_net()
    x = np.array([[0, 2, N], [0, 2, N]])
    with pytest.raises(ValueError, match="label 3 is outside"):
        train_sign(net, x, np.array([0, 3]), epochs=1)
    assert all(np.array_equal(a, b) for a, b in zip(net.weights, _hand_net().weights))


# ---------------------------------------------------------------------------------------
# The vectorized step against a slow obvious loop
# ---------------------------------------------------------------------------------------

def _slow_step(net, x, label, lr_shift):
    """The rule, written out with Python loops over neurons and weights."""
    res = simulate(net, np.asarray(x)[None])
    steps = [[int(v) for v in s[0]] for s in res.spike_steps]
    decision = int(res.decision[0])
    L = len(net.weights)
    W = [[[int(v) for v in row] for row in w] for w in net.weights]
    deltas = [None] * (L + 1)
    deltas[L] = [0] * len(steps[L])
    for o in range(len(steps[L])):
        if o != label and steps[L][o] != NO_SPIKE:
            deltas[L][o] = -1
    deltas[L][label] = 1 if decision != label else 0
    P, Nn = {}, {}
    for l in range(L - 1, 0, -1):
        deltas[l], P[l], Nn[l] = [], [], []
        for h in range(len(steps[l])):
            p = n = 0
            for o, d in enumerate(deltas[l + 1]):
                w = W[l][h][o]
                if (w > 0 and d > 0) or (w < 0 and d < 0):
                    p += 1
                if (w > 0 and d < 0) or (w < 0 and d > 0):
                    n += 1
            P[l].append(p)
            Nn[l].append(n)
            deltas[l].append(1 if p > n else (-1 if n > p else 0))
    new = []
    for l in range(L):
        w_new = [row[:] for row in W[l]]
        for j, d in enumerate(deltas[l + 1]):
            if d == 0:
                continue
            tj = steps[l + 1][j]
            for i, si in enumerate(steps[l]):
                if si == NO_SPIKE:
                    continue
                if tj == NO_SPIKE or si < tj:
                    w_new[i][j] = max(-128, min(127, W[l][i][j] + d * 2 ** lr_shift))
        new.append(np.array(w_new, dtype=np.int8))
    return new, deltas, P, Nn, decision


def _random_case(rng):
    L = int(rng.integers(1, 4))
    sizes = [int(rng.integers(1, 12)) for _ in range(L + 1)]
    sizes[-1] = max(2, sizes[-1])
    cfg = DiscreteConfig(timesteps=int(rng.integers(4, 24)), dt=float(rng.choice([0.125, 0.25])))
    net = random_discrete_network(sizes, seed=int(rng.integers(1 << 30)),
                                  theta=[int(v) for v in rng.integers(1, 40, size=L)],
                                  config=cfg, init_mean=float(rng.uniform(0.5, 6)),
                                  init_std=float(rng.uniform(0.5, 3)))
    if rng.random() < 0.3:     # extremes, for saturation
        l = int(rng.integers(L))
        w = net.weights[l]
        w[rng.random(w.shape) < 0.3] = rng.choice([-128, 127])
    x = rng.integers(-1, cfg.timesteps, size=sizes[0])
    return net, x, int(rng.integers(sizes[-1])), int(rng.integers(0, MAX_LR_SHIFT + 1))


@pytest.mark.parametrize("seed", range(200))
def test_vectorized_matches_slow_loop(seed):
    rng = np.random.default_rng(seed)
    net, x, label, shift = _random_case(rng)
    ref = DiscreteNetwork([w.copy() for w in net.weights], list(net.thetas), net.config)
    want, deltas, P, Nn, decision = _slow_step(ref, x, label, shift)
    before = [w.copy() for w in net.weights]
    info = sign_backprop_step(net, x, label, shift)
    assert info.decision == decision, f"seed {seed}"
    L = len(want)
    for l in range(1, L + 1):
        assert info.deltas[l].tolist() == deltas[l], f"seed {seed}: deltas of layer {l}"
    for l in range(1, L):
        assert info.pos_counts[l].tolist() == P[l], f"seed {seed}: P of layer {l}"
        assert info.neg_counts[l].tolist() == Nn[l], f"seed {seed}: N of layer {l}"
    for l in range(L):
        mism = np.argwhere(net.weights[l] != want[l])
        assert mism.size == 0, (f"seed {seed}: weight layer {l} first mismatch at {mism[0]}: "
                                f"{net.weights[l][tuple(mism[0])]} != {want[l][tuple(mism[0])]}")
        assert info.changed[l] == int(np.count_nonzero(before[l] != want[l])), f"seed {seed}"


def test_train_sign_is_the_sequence_of_steps():
    seed = 11
    rng = np.random.default_rng(seed)
    net = random_discrete_network([16, 8, 4], seed=seed, theta=20)
    ref = DiscreteNetwork([w.copy() for w in net.weights], list(net.thetas), net.config)
    x = rng.integers(-1, 10, size=(25, 16))
    y = rng.integers(0, 4, size=25)
    seen = []
    hist = train_sign(net, x, y, epochs=2, lr_shift=1, seed=seed,
                      callback=lambda e, i, n, acc: seen.append((e, i, n)))
    order = np.random.default_rng(seed)
    ok = 0
    for epoch in range(2):
        ok = 0
        for k in order.permutation(25):
            ok += sign_backprop_step(ref, x[k], int(y[k]), 1).decision == y[k]
    for l in range(2):
        assert np.array_equal(net.weights[l], ref.weights[l]), f"seed {seed}: layer {l}"
    assert len(hist) == 2 and hist[1]["train_accuracy"] == ok / 25
    assert seen[0] == (0, 1, 25) and seen[-1] == (1, 25, 25) and len(seen) == 50


# ---------------------------------------------------------------------------------------
# Initial weights and learning on digits
# ---------------------------------------------------------------------------------------

def test_random_network_fires():
    net = random_discrete_network([64, 32, 10], seed=4, theta=32, input_rate=0.5)
    assert all(w.dtype == np.int8 for w in net.weights) and net.thetas == [32, 32]
    rng = np.random.default_rng(4)
    x = np.where(rng.random((50, 64)) < 0.5, rng.integers(0, 8, (50, 64)), N)
    res = simulate(net, x)
    assert np.mean(res.spike_steps[1] != N) > 0.3, "seed 4: hidden neurons do not fire"
    assert np.mean(res.decision >= 0) > 0.9, "seed 4: outputs do not fire"
    with pytest.raises(ValueError, match="theta"):
        random_discrete_network([4, 2], theta=0)
    with pytest.raises(ValueError, match="sizes"):
        random_discrete_network([4])


def test_learns_digits_subset():
    """A few hundred digits images, two epochs: well above chance (seeded, fixed)."""
    from spikegate.golden.data import load_dataset
    from spikegate.golden.encoding import encode
    from spikegate.golden.ttfs_discrete import times_to_steps

    ds = load_dataset("digits")
    cfg = DiscreteConfig()
    x = times_to_steps(encode(ds.x_train[:400]), cfg)
    xt = times_to_steps(encode(ds.x_test), cfg)
    net = random_discrete_network([64, 32, 10], seed=1, theta=64, config=cfg,
                                  input_rate=float(np.mean(x >= 0)))
    before, _ = evaluate_discrete(net, xt, ds.y_test)
    train_sign(net, x, ds.y_train[:400], epochs=2, seed=1)
    after, _ = evaluate_discrete(net, xt, ds.y_test)
    assert after > 0.5 and after > before + 0.2, f"seed 1: {before:.3f} -> {after:.3f}"


# ---------------------------------------------------------------------------------------
# Options: errors_only (off by default) and requantize
# ---------------------------------------------------------------------------------------

def test_errors_only_skips_correct_decisions():
    # label 0 wins the tie with o1: the rule pushes o1 later; errors_only changes nothing
    net = _hand_net()
    info = sign_backprop_step(net, HAND_X, 0, errors_only=True)
    assert info.decision == 0
    assert all(not d.any() for d in info.deltas)
    assert not info.pos_counts[1].any() and not info.neg_counts[1].any()
    assert info.updated == [0, 0] and info.changed == [0, 0]
    assert all(np.array_equal(a, b) for a, b in zip(net.weights, _hand_net().weights))
    # a wrong decision (label 1, 2) or none: exactly the rule
    for label, weights in [(1, (30, 30, 0)), (2, (30, 30, 0)), (1, (5, 5, 0))]:
        a, b = _hand_net(weights), _hand_net(weights)
        ia = sign_backprop_step(a, HAND_X, label)
        ib = sign_backprop_step(b, HAND_X, label, errors_only=True)
        assert ia.decision != label
        assert [d.tolist() for d in ia.deltas] == [d.tolist() for d in ib.deltas], label
        assert all(np.array_equal(x, y) for x, y in zip(a.weights, b.weights)), label
        assert ia.updated == ib.updated and ia.updated != [0, 0]


def test_train_sign_errors_only_is_classify_then_train():
    seed = 12
    rng = np.random.default_rng(seed)
    net = random_discrete_network([16, 8, 4], seed=seed, theta=20)
    ref = DiscreteNetwork([w.copy() for w in net.weights], list(net.thetas), net.config)
    x = rng.integers(-1, 10, size=(40, 16))
    y = rng.integers(0, 4, size=40)
    hist = train_sign(net, x, y, epochs=2, seed=seed, errors_only=True)
    order = np.random.default_rng(seed)
    trained = 0
    for epoch in range(2):
        for k in order.permutation(40):
            if simulate(ref, x[k][None]).decision[0] != y[k]:      # the host's CLASSIFY
                sign_backprop_step(ref, x[k], int(y[k]))           # then TRAIN
                trained += 1
    assert trained > 0, f"seed {seed}: nothing was wrong, the test proves nothing"
    for l in range(2):
        assert np.array_equal(net.weights[l], ref.weights[l]), f"seed {seed}: layer {l}"
    # and it is not the plain rule on these images (the ties were skipped)
    plain = random_discrete_network([16, 8, 4], seed=seed, theta=20)
    train_sign(plain, x, y, epochs=2, seed=seed)
    assert any(not np.array_equal(a, b) for a, b in zip(plain.weights, net.weights)), seed
    assert len(hist) == 2


def test_requantize():
    w0 = np.array([[0.5, -0.25, 1.0], [0.0049, -2.0, 0.126]])
    w1 = np.array([[0.01], [-0.03], [0.02]])
    net = requantize([w0, w1], [254, 1000], DiscreteConfig(timesteps=16))
    # rint half to even: 0.5 * 254 = 127, 1.0 * 254 = 254 -> 127 (saturates), -2 * 254 -> -128,
    # 0.0049 * 254 = 1.24 -> 1, 0.126 * 254 = 32.004 -> 32
    assert net.weights[0].tolist() == [[127, -64, 127], [1, -128, 32]]
    assert net.weights[1].tolist() == [[10], [-30], [20]]
    assert net.thetas == [254, 1000] and net.config.timesteps == 16
    assert all(w.dtype == np.int8 for w in net.weights)
    # the same as quantize_layer's when given quantize_layer's theta
    from spikegate.golden.ttfs_discrete import quantize_layer
    q, t = quantize_layer(w0)
    assert np.array_equal(requantize([w0], [t]).weights[0], q)
    for bad in (0, 4096, 2.0, True):
        with pytest.raises(ValueError, match="theta"):
            requantize([w0, w1], [bad, 10])
    with pytest.raises(ValueError, match="thresholds"):
        requantize([w0, w1], [10])
    with pytest.raises(ValueError, match="finite"):
        requantize([w0 * np.nan], [10])


# ---------------------------------------------------------------------------------------
# Option: stochastic rounding with the update LFSR (off by default)
# ---------------------------------------------------------------------------------------

def test_lfsr_is_maximal_and_draws_k_bits():
    s, period = LFSR_SEED, 0
    ones = 0
    while True:
        bit, s = lfsr_step(s)
        ones += bit
        period += 1
        if s == LFSR_SEED or period > 70000:
            break
    assert period == 65535 and ones == 32768             # an m-sequence: 2**15 ones
    # k = 1 over one period: a write for each of the 32767 zero bits
    assert int(UpdateLFSR(1).draw(65535).sum()) == 32767
    # draw(n) takes n * k steps, in order, and writes iff the k bits are all 0
    lf = UpdateLFSR(3, state=0x1234)
    got = lf.draw(50)
    s, want = 0x1234, []
    for _ in range(50):
        bits = []
        for _ in range(3):
            b, s = lfsr_step(s)
            bits.append(b)
        want.append(not any(bits))
    assert got.tolist() == want and lf.state == s
    # the k bits are the top k bits of the state after the k steps (the hardware's test)
    lf = UpdateLFSR(3, state=0x1234)
    for _ in range(200):
        write = bool(lf.draw(1)[0])
        assert write == (lf.state >> 13 == 0), lf.state
    for bad in (0, 9, 1.0, True):
        with pytest.raises(ValueError, match="k must"):
            UpdateLFSR(bad)
    with pytest.raises(ValueError, match="state"):
        UpdateLFSR(2, state=0)


def _slow_gated_writes(net, x, label, k, state):
    """Which weights the rule writes, gated by the LFSR, in the hardware's write order (loops)."""
    from spikegate.golden.ttfs_discrete import spike_events
    ref = DiscreteNetwork([w.copy() for w in net.weights], list(net.thetas), net.config)
    info = sign_backprop_step(ref, x, label)              # the rule's deltas and causal sets
    steps = [s[0] for s in info.result.spike_steps]
    s = state
    gated = []
    for l in range(len(net.weights)):
        rows = spike_events(steps[0])[0] if l == 0 else \
            [i for i in range(len(steps[l])) if steps[l][i] != NO_SPIKE]
        g = np.zeros(info.causal[l].shape, dtype=bool)
        for i in rows:
            for j in range(g.shape[1]):
                if info.causal[l][i, j] and info.deltas[l + 1][j] != 0:
                    bits = []
                    for _ in range(k):
                        b, s = lfsr_step(s)
                        bits.append(b)
                    g[i, j] = not any(bits)
        gated.append(g)
    return gated, s


@pytest.mark.parametrize("seed", range(60))
def test_stochastic_rounding_matches_slow_loop(seed):
    rng = np.random.default_rng(1000 + seed)
    net, x, label, shift = _random_case(rng)
    k = int(rng.integers(1, 4))
    state = int(rng.integers(1, 1 << 16))
    gated, end_state = _slow_gated_writes(net, x, label, k, state)
    before = [w.astype(np.int16) for w in net.weights]
    lf = UpdateLFSR(k, state=state)
    info = sign_backprop_step(net, x, label, shift, lfsr=lf)
    assert lf.state == end_state, f"seed {seed}: LFSR state"
    for l, g in enumerate(gated):
        step = info.deltas[l + 1].astype(np.int16)[None, :] << shift
        want = np.where(g, np.clip(before[l] + step, -128, 127), before[l])
        assert np.array_equal(net.weights[l], want), f"seed {seed}: weight layer {l}"
        assert info.updated[l] == int(g.sum()), f"seed {seed}"


def test_stochastic_rounding_thins_the_updates():
    seed = 5
    rng = np.random.default_rng(seed)
    net = random_discrete_network([32, 16, 4], seed=seed, theta=30)
    x = rng.integers(-1, 12, size=(30, 32))
    y = rng.integers(0, 4, size=30)
    plain = DiscreteNetwork([w.copy() for w in net.weights], list(net.thetas), net.config)
    full = sum(sum(sign_backprop_step(plain, x[i], int(y[i])).updated) for i in range(30))
    lf = UpdateLFSR(2)
    thin = sum(sum(sign_backprop_step(net, x[i], int(y[i]), lfsr=lf).updated) for i in range(30))
    assert full > 1000 and 0.1 * full < thin < 0.45 * full, f"seed {seed}: {thin} of {full}"
