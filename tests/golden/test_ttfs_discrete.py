"""The discrete TTFS model: the vectorized model against a per-event reference that follows
the hardware's order, the decision rule, quantization and the input conversion."""

import numpy as np
import pytest

from spikegate.golden.ttfs_discrete import (
    NO_SPIKE, DiscreteConfig, DiscreteNetwork, quantize_layer, simulate, spike_events,
    times_to_steps, ttfs_accumulate, ttfs_fires, ttfs_widths, z_table)


def reference(net, steps):
    """One image, one event at a time, in the hardware's order (slow and obvious)."""
    T = net.config.timesteps
    z = z_table(net.config)
    n_layers = len(net.sizes)
    state = [(np.zeros(n, np.int64), np.zeros(n, np.int64)) for n in net.sizes[1:]]
    fired = [np.full(n, NO_SPIKE) for n in net.sizes]
    fired[0] = np.asarray(steps).copy()
    lookups = np.zeros(len(net.weights), np.int64)
    spikes = np.zeros(n_layers, np.int64)
    for k in range(T):
        for l, (w, th) in enumerate(zip(net.weights, net.thetas)):
            acc_w, acc_wz = state[l]
            new = (fired[l + 1] == NO_SPIKE) & ttfs_fires(z[k], acc_w, acc_wz, th)
            fired[l + 1][new] = k
            for i in np.nonzero(fired[l] == k)[0]:
                acc_w, acc_wz = ttfs_accumulate(acc_w, acc_wz, w[i].astype(np.int64), z[k])
                lookups[l] += w.shape[1]
            state[l] = (acc_w, acc_wz)
        out = np.nonzero(fired[-1] == k)[0]
        if len(out):
            decision, k_d = int(out[0]), k
            break
    else:
        decision, k_d = -1, -1
    last = k_d if k_d >= 0 else T - 1
    shown = [np.where((f != NO_SPIKE) & (f <= last), f, NO_SPIKE) for f in fired]
    spikes = np.array([(s != NO_SPIKE).sum() for s in shown])
    return decision, k_d, shown, lookups, spikes


def random_net(rng, sizes, timesteps=32, dt=1 / 8, wlo=-40, whi=100):
    ws = [rng.integers(wlo, whi, (a, b)).astype(np.int8) for a, b in zip(sizes[:-1], sizes[1:])]
    thetas = [int(rng.integers(60, 250)) for _ in ws]
    return DiscreteNetwork(ws, thetas, DiscreteConfig(timesteps=timesteps, dt=dt))


def random_steps(rng, batch, n_in, timesteps, p_spike=0.6, max_step=None):
    max_step = timesteps if max_step is None else max_step
    s = rng.integers(0, max_step, (batch, n_in)).astype(np.int32)
    s[rng.random((batch, n_in)) > p_spike] = NO_SPIKE
    return s


# One network shape per case: (sizes, seed).
@pytest.mark.parametrize("sizes", [(20, 12, 5), (7, 3), (16, 9, 6, 4), (30, 40, 10)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorized_matches_reference(sizes, seed):
    rng = np.random.default_rng(seed)
    net = random_net(rng, sizes)
    x = random_steps(rng, 12, sizes[0], net.config.timesteps, max_step=12)
    r = simulate(net, x)
    for b in range(len(x)):
        d, k_d, shown, lookups, spikes = reference(net, x[b])
        msg = f"seed {seed}, sizes {sizes}, sample {b}"
        assert r.decision[b] == d, msg
        assert r.decision_step[b] == k_d, msg
        np.testing.assert_array_equal(r.lookups[b], lookups, err_msg=msg)
        np.testing.assert_array_equal(r.spikes[b], spikes, err_msg=msg)
        for l in range(len(sizes)):
            np.testing.assert_array_equal(r.spike_steps[l][b], shown[l], err_msg=f"{msg}, layer {l}")


def test_some_random_samples_decide():
    # Guard against a vacuous comparison above: the random networks do fire.
    rng = np.random.default_rng(0)
    net = random_net(rng, (20, 12, 5))
    r = simulate(net, random_steps(rng, 50, 20, 32, max_step=12))
    assert (r.decision >= 0).mean() > 0.5


def test_no_input_spikes_gives_no_decision():
    net = random_net(np.random.default_rng(3), (10, 6, 3))
    r = simulate(net, np.full((2, 10), NO_SPIKE, np.int32))
    assert list(r.decision) == [-1, -1] and list(r.decision_step) == [-1, -1]
    assert r.lookups.sum() == 0 and r.spikes.sum() == 0


def test_nothing_fires_at_step_zero_and_one_input_fires_later():
    # One input with weight 2*theta: the neuron fires when z_k (2 theta - theta) >= 2 theta z_0,
    # i.e. at the first k with z_k >= 2 z_0 (t = ln 2).
    cfg = DiscreteConfig(timesteps=64, dt=1 / 16)
    net = DiscreteNetwork([np.array([[100]], np.int8)], [50], cfg)
    r = simulate(net, np.array([[0]], np.int32))
    z = z_table(cfg)
    expected = int(np.argmax(z * 50 >= 100 * z[0]))
    assert expected > 0 and r.decision_step[0] == expected and r.decision[0] == 0


def test_tie_break_is_lowest_index():
    # Outputs 1 and 2 have identical weights and fire together; output 0 never fires.
    w = np.array([[0, 90, 90]], np.int8)
    net = DiscreteNetwork([w], [40], DiscreteConfig(timesteps=32, dt=1 / 8))
    r = simulate(net, np.array([[0]], np.int32))
    assert r.decision[0] == 1
    assert r.spikes[0, 1] == 2          # both fired at the decision step


def test_negative_weight_sum_never_fires():
    net = DiscreteNetwork([np.array([[-128], [-1]], np.int8)], [1], DiscreteConfig())
    r = simulate(net, np.array([[0, 3]], np.int32))
    assert r.decision[0] == -1


def test_extreme_weights_do_not_overflow():
    # Full fan-in at +127 with every input at the last step and at -128: exact int64 results
    # within the declared widths.
    cfg = DiscreteConfig()
    n = 784
    widths = ttfs_widths(n, 1, cfg)
    z = z_table(cfg)
    lo, hi = -(1 << (widths["acc_wz_bits"] - 1)), (1 << (widths["acc_wz_bits"] - 1)) - 1
    assert lo <= n * -128 * int(z[-1]) and n * 127 * int(z[-1]) <= hi
    net = DiscreteNetwork([np.full((n, 2), 127, np.int8), np.full((2, 1), -128, np.int8)], [1, 1], cfg)
    r = simulate(net, np.zeros((1, n), np.int32))
    assert r.spike_steps[1][0, 0] == 1   # huge drive: fires at the first possible step


def test_quantize_layer_range_and_saturation():
    w = np.array([[0.5, -1.0], [2.0, 0.01]])
    q, theta = quantize_layer(w)
    assert q.dtype == np.int8 and theta == round(127 / 2.0)
    np.testing.assert_array_equal(q, np.clip(np.rint(w * theta), -128, 127))
    assert q.max() == 127
    q0, t0 = quantize_layer(np.zeros((2, 2)))
    assert t0 == 1 and not q0.any()
    with pytest.raises(ValueError, match="NaN"):
        quantize_layer(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="2-D"):
        quantize_layer(np.zeros(3))


def test_times_to_steps():
    cfg = DiscreteConfig(timesteps=8, dt=0.5)
    s = times_to_steps(np.array([0.0, 0.24, 0.25, 1.0, 3.74, 3.75, np.inf, np.nan]), cfg)
    assert list(s) == [0, 0, 1, 2, 7, NO_SPIKE, NO_SPIKE, NO_SPIKE]
    with pytest.raises(ValueError, match=">= 0"):
        times_to_steps(np.array([-1.0]), cfg)


def test_spike_events_order():
    idx, st = spike_events(np.array([3, NO_SPIKE, 0, 3, 1]))
    assert list(idx) == [2, 4, 0, 3] and list(st) == [0, 1, 3, 3]


@pytest.mark.parametrize("kwargs, match", [
    ({"timesteps": 0}, "timesteps"), ({"dt": 0.0}, "dt"), ({"z_frac_bits": 17}, "z_frac_bits"),
    ({"timesteps": 4096, "dt": 1.0}, "30 bits"),
])
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DiscreteConfig(**kwargs)


def test_network_errors():
    cfg = DiscreteConfig()
    with pytest.raises(ValueError, match="outputs"):
        DiscreteNetwork([np.zeros((3, 4), np.int8), np.zeros((5, 2), np.int8)], [1, 1], cfg)
    with pytest.raises(ValueError, match="theta"):
        DiscreteNetwork([np.zeros((3, 4), np.int8)], [0], cfg)
    with pytest.raises(ValueError, match=r"\[-128, 127\]"):
        DiscreteNetwork([np.full((3, 4), 200)], [1], cfg)
    net = DiscreteNetwork([np.zeros((3, 4), np.int8)], [1], cfg)
    with pytest.raises(ValueError, match="shape"):
        simulate(net, np.zeros((2, 5), np.int32))
    with pytest.raises(ValueError, match="input steps"):
        simulate(net, np.full((1, 3), 64, np.int32))


@pytest.mark.parametrize("config", [DiscreteConfig(), DiscreteConfig(64, 1 / 8),
                                    DiscreteConfig(32, 1 / 8, 0), DiscreteConfig(200, 1 / 64, 3),
                                    DiscreteConfig(16, 0.5, 12)])
def test_step0_thresholds_give_the_compare_s_fire_step(config):
    """Every acc_w around every threshold, every step: the first k with acc_w >= A_k is the
    first k where z_k (acc_w - theta) >= z_0 acc_w (the compare with acc_wz = z_0 acc_w)."""
    from spikegate.golden.ttfs_discrete import step0_fire_steps, step0_thresholds
    z = z_table(config)
    rng = np.random.default_rng(config.timesteps)
    for theta in (1, 2, 3, 37, 127, 1000, 4095):
        a = step0_thresholds(config, theta)
        assert a[0] == -1 and np.all(np.diff(a[a >= 0]) <= 0)
        near = np.unique(np.concatenate([a[a >= 0] + d for d in (-1, 0, 1)]))
        acc_w = np.concatenate([near, rng.integers(-2000, 100_000, 200), [0, theta, -1]])
        want = np.full(len(acc_w), NO_SPIKE)
        for k in range(config.timesteps - 1, -1, -1):
            fires = ttfs_fires(z[k], acc_w, z[0] * acc_w, theta)
            want = np.where(fires, k, want)
        assert np.array_equal(step0_fire_steps(acc_w, a), want), theta


def test_step0_fire_steps_equal_the_layer_s_on_binary_inputs():
    from spikegate.golden.ttfs_discrete import (layer_fire_steps, step0_fire_steps,
                                                step0_thresholds)
    rng = np.random.default_rng(4)
    config = DiscreteConfig(64, 1 / 8)
    w = rng.integers(-100, 128, (784, 40)).astype(np.int8)
    x = rng.random((50, 784)) < 0.13
    steps = np.where(x, 0, NO_SPIKE)
    for theta in (200, 900, 3000):
        got = step0_fire_steps(x.astype(np.int64) @ w.astype(np.int64),
                               step0_thresholds(config, theta))
        assert np.array_equal(got, layer_fire_steps(steps, w, theta, config))
        assert 0 < np.mean(got != NO_SPIKE) < 1
    with pytest.raises(ValueError, match="theta must be an integer from 1 to 4095"):
        step0_thresholds(config, 0)
