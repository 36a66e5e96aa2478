"""Tests of the PD update rules (golden/pd_updates.py), the PD network and MLP baseline
(golden/pdnn.py) and the temporal reordering (golden/temporal.py)."""

import numpy as np
import pytest

from spikegate.golden import pd_updates as pu
from spikegate.golden import sigma_delta as sd
from spikegate.golden.data import load_dataset
from spikegate.golden.pdnn import MLP, OpCounter, PDNetwork, init_weights, train_online
from spikegate.golden.temporal import smoothness, temporal_order

SEEDS = [0, 1, 2, 3]


def _trains(seed, t_active=150, t_quiet=250, n_in=6, n_out=4, p=0.15):
    rng = np.random.default_rng(seed)
    xs = rng.choice([-2, -1, 0, 1, 2], size=(t_active + t_quiet, n_in),
                    p=[p / 4, p / 4, 1 - p, p / 4, p / 4]).astype(float)
    es = rng.choice([-1, 0, 1], size=(t_active + t_quiet, n_out), p=[p / 2, 1 - p, p / 2]).astype(float)
    xs[t_active:] = 0
    es[t_active:] = 0
    return xs, es


# (rx, bx, re, be): same and different coders for the two directions
GAINS = [(1 / 1.1, 1 / 1.1, 1 / 1.1, 1 / 1.1), (0.9, 0.3, 0.8, 0.05), (0.5, 2.0, 0.95, 0.1)]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("gains", GAINS)
def test_four_rules_reach_the_same_total(seed, gains):
    xs, es = _trains(seed)
    totals = {r: pu.cumulative_update(r, xs, es, *gains) for r in pu.RULES}
    ref = totals["recon"]
    scale = np.abs(ref).max()
    assert scale > 0.1, f"seed {seed}: degenerate trains"
    for r, tot in totals.items():
        err = np.abs(tot - ref).max()
        assert err <= 1e-9 * scale, f"seed {seed}, gains {gains}: rule {r} total differs by {err}"


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_rules_differ_step_by_step(seed):
    xs, es = _trains(seed)
    g = GAINS[1]
    per_step = {"recon": pu.updates_recon(xs, es, *g), "past": pu.updates_past(xs, es, *g)[0],
                "future": pu.updates_future(xs, es, *g), "stdp": pu.updates_stdp(xs, es, *g)}
    names = list(per_step)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            c_a, c_b = np.cumsum(per_step[a], axis=0), np.cumsum(per_step[b], axis=0)
            assert np.abs(c_a - c_b).max() > 1e-3, f"seed {seed}: {a} and {b} agree at every step"


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_past_rule_catches_up_with_reconstruction_at_spikes(seed):
    """Right after a spike of i or j, the past rule's running total of pair (i, j) equals the
    reconstruction rule's total up to the step before."""
    xs, es = _trains(seed)
    g = GAINS[0]
    past = np.cumsum(pu.updates_past(xs, es, *g)[0], axis=0)
    recon = np.cumsum(pu.updates_recon(xs, es, *g), axis=0)
    for t in range(1, 150):
        mask = (xs[t] != 0)[:, None] | (es[t] != 0)[None, :]
        if mask.any():
            diff = np.abs(past[t] - recon[t - 1])[mask].max()
            assert diff < 1e-9, f"seed {seed}: step {t}: past total differs from recon by {diff}"


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_online_rules_match_sequence_references(seed):
    xs, es = _trains(seed)
    g = GAINS[1]
    refs = {"recon": pu.updates_recon(xs, es, *g), "future": pu.updates_future(xs, es, *g)}
    for name, ref in refs.items():
        rule = pu.make_rule(name, xs.shape[1], es.shape[1], g[0], g[2])
        for t in range(len(xs)):
            dw = np.zeros(ref.shape[1:])
            for rows, cols, block in rule.step(xs[t], es[t], g[1], g[3]):
                pu.add_block(dw, rows, cols, block)
            assert np.allclose(dw, ref[t], atol=1e-12), f"seed {seed}: {name} differs at step {t}"


def test_rules_reject_bad_parameters():
    with pytest.raises(ValueError, match="kp > 0"):
        pu.make_rule("past", 3, 2, 1.0, 1.0)
    with pytest.raises(ValueError, match="stdp|STDP"):
        pu.make_rule("stdp", 3, 2, 0.5, 0.5)
    with pytest.raises(ValueError, match="same T"):
        pu.updates_recon(np.zeros((3, 2)), np.zeros((4, 2)), 0.5, 1, 0.5, 1)
    with pytest.raises(ValueError, match="unknown update rule"):
        pu.cumulative_update("nope", np.zeros((3, 2)), np.zeros((3, 2)), 0.5, 1, 0.5, 1)


# ------------------------------------------------------------------------------------------------
# network
# ------------------------------------------------------------------------------------------------

def test_pd_layer_forward_is_dec_of_q_enc_times_w():
    """With fixed weights and k_beta, the network's first layer computes dec(Q(enc(x)) @ W) + b."""
    rng = np.random.default_rng(11)
    x = rng.uniform(0, 1, size=(40, 12))
    net = PDNetwork([12, 7, 3], seed=3, adaptive=False, kp=0.2, kd=1.5)
    layer = net.layers[0]
    zs = np.array([net.forward(x[t])[0][0] for t in range(len(x))])
    s, _ = sd.sigma_delta(sd.pd_encode(x, layer.fwd.k_alpha, layer.fwd.k_beta))
    ref = sd.pd_decode(s @ layer.w, layer.fwd.k_alpha, layer.fwd.k_beta) + layer.b
    assert np.allclose(zs, ref, atol=1e-10), "seed 11: first-layer forward differs from dec(Q(enc(x)) @ W)"


def test_forward_op_count_is_spikes_times_fan_out():
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, size=(30, 10))
    net = PDNetwork([10, 6, 3], seed=0, adaptive=False)
    count = OpCounter(2)
    spikes = np.zeros(2)
    for t in range(len(x)):
        _, ss = net.forward(x[t], count=count)
        spikes += [np.abs(s).sum() for s in ss]
    assert count.fwd.tolist() == [int(spikes[0]) * 6, int(spikes[1]) * 3], "seed 4"


def test_mlp_op_counts_are_dense():
    d = load_dataset("digits")
    net = MLP([64, 20, 10], seed=0)
    for i in range(5):
        net.train_step(d.x_train[i], int(d.y_train[i]))
    s = net.ops.summary()
    assert s["fwd_kops"] == pytest.approx((64 * 20 + 20 * 10) / 1e3)
    assert s["back_kops"] == pytest.approx(20 * 10 / 1e3)           # no backward into the input
    assert s["update_kops"] == pytest.approx((64 * 20 + 20 * 10) / 1e3)


def test_init_weights_is_seeded_and_validated():
    a, b = init_weights([5, 4, 3], seed=9), init_weights([5, 4, 3], seed=9)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert a[0].shape == (5, 4) and a[1].shape == (4, 3)
    with pytest.raises(ValueError, match="sizes"):
        init_weights([5])
    with pytest.raises(ValueError, match="rule"):
        PDNetwork([5, 3], rule="stdp")


@pytest.mark.parametrize("rule", ["past", "recon"])
def test_pdnn_learns_digits_like_the_mlp(rule):
    """Tiny 64-32-10 networks, 4 online epochs on digits (seed 1234): the PD network learns, and
    prediction leaves the training state untouched."""
    d = load_dataset("digits")
    mlp = MLP([64, 32, 10], seed=1234)
    pd = PDNetwork([64, 32, 10], seed=1234, rule=rule)
    r_mlp = train_online(mlp, d.x_train, d.y_train, d.x_test, d.y_test, epochs=4, evals_per_epoch=1)
    r_pd = train_online(pd, d.x_train, d.y_train, d.x_test, d.y_test, epochs=4, evals_per_epoch=1)
    acc_mlp, acc_pd = r_mlp.history[-1]["test_acc"], r_pd.history[-1]["test_acc"]
    assert acc_mlp > 0.9, f"seed 1234: MLP test accuracy {acc_mlp}"
    assert acc_pd > 0.88, f"seed 1234, rule {rule}: PD test accuracy {acc_pd}"
    assert r_pd.history[-1]["test_acc_noise_free"] > 0.88
    assert len(r_pd.history) == 5 and r_pd.history[0]["samples"] == 0
    # the PD network needs fewer operations per sample than the MLP's multiply-adds
    assert r_pd.ops["total_kops"] < r_mlp.ops["total_kops"]
    phi_before = [layer.fwd.phi.copy() for layer in pd.layers]
    pd.predict(d.x_test[:50])
    assert all(np.array_equal(a, b) for a, b in zip(phi_before, [layer.fwd.phi for layer in pd.layers]))


def test_train_online_rejects_bad_arguments():
    d = load_dataset("digits")
    net = MLP([64, 8, 10])
    with pytest.raises(ValueError, match="epochs"):
        train_online(net, d.x_train, d.y_train, d.x_test, d.y_test, epochs=0)
    with pytest.raises(ValueError, match="same number"):
        train_online(net, d.x_train, d.y_train[:5], d.x_test, d.y_test, epochs=1)


# ------------------------------------------------------------------------------------------------
# temporal reordering
# ------------------------------------------------------------------------------------------------

def _temporal_order_reference(x, k):
    """Plain-Python restatement of pdnn's temporalize (L1), for small inputs."""
    x = [np.asarray(v, dtype=np.float64) for v in x]
    n = len(x)
    buf = list(range(1, min(k, n - 1) + 1))
    nxt = len(buf) + 1
    cur, order = 0, []
    while True:
        order.append(cur)
        if not buf:
            return order
        d = [np.abs(x[j] - x[cur]).sum() for j in buf]
        pos = int(np.argmin(d))
        cur = buf[pos]
        if nxt < n:
            buf[pos] = nxt
            nxt += 1
        else:
            buf.pop(pos)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("k", [1, 5, 50])
def test_temporal_order_matches_reference(seed, k):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 50, size=(80, 6)).astype(float) + rng.uniform(0, 1e-3, size=(80, 6))
    order = temporal_order(x, smoothing_steps=k)
    assert sorted(order.tolist()) == list(range(80)), f"seed {seed}: not a permutation"
    assert order.tolist() == _temporal_order_reference(x, k), f"seed {seed}, k={k}"


def test_temporal_order_makes_digits_smoother_and_spikes_fewer():
    d = load_dataset("digits")
    order = temporal_order(d.x_train, smoothing_steps=200)
    xt = d.x_train[order]
    assert smoothness(xt) < 0.6 * smoothness(d.x_train)
    net = PDNetwork([64, 32, 10], seed=0)
    _, kops_shuffled = net.predict(d.x_train[:600])
    _, kops_temporal = net.predict(xt[:600])
    assert kops_temporal < 0.8 * kops_shuffled, (kops_temporal, kops_shuffled)
    with pytest.raises(ValueError, match="smoothing_steps"):
        temporal_order(d.x_train, smoothing_steps=0)
    with pytest.raises(ValueError, match="distance"):
        temporal_order(d.x_train, distance="cos")


@pytest.mark.parametrize("cls", [PDNetwork, MLP])
def test_divergence_stops_training_cleanly(cls):
    """A far too large learning rate (seed 0) blows the network up; training stops and says where."""
    d = load_dataset("digits")
    net = cls([64, 32, 32, 10], seed=0)
    res = train_online(net, d.x_train, d.y_train, d.x_test[:50], d.y_test[:50], epochs=1, lr=50.0,
                       evals_per_epoch=1)
    assert res.diverged is not None, "seed 0: lr 50 did not diverge"
    assert 0 < res.diverged["sample"] < len(d.x_train)
    assert np.isnan(res.history[-1]["test_acc"]) and "diverged" in res.history[-1]
