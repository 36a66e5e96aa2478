"""Tests of spikegate.golden.ttfs: the float TTFS model, its gradients and training."""

import numpy as np
import pytest

from spikegate.golden import ttfs
from spikegate.golden.ttfs_discrete import (NO_SPIKE, DiscreteConfig, layer_fire_steps,
                                            times_to_steps)


def _z(times):
    return ttfs.times_to_z(np.asarray(times, dtype=np.float64))


def _one(times, weights, **kw):
    """Output z of a single neuron with inputs at ``times`` and weights ``weights``."""
    z, caches = ttfs.layer_forward(_z([times]), np.asarray(weights, dtype=np.float64)[:, None], **kw)
    return z[0, 0], caches


def _brute_force(times, weights, t_end=30.0, n=300001):
    """First threshold crossing of V(t) = sum w_i (1 - exp(-(t - t_i))) [t > t_i] on a dense grid."""
    t = np.linspace(0.0, t_end, n)
    v = np.zeros_like(t)
    for ti, wi in zip(times, weights):
        if np.isfinite(ti):
            v += np.where(t > ti, wi * (1 - np.exp(-(t - ti))), 0.0)
    hit = np.nonzero(v >= 1.0)[0]
    return t[hit[0]] if len(hit) else np.inf


# ---- causal-set edge cases ------------------------------------------------------------

def test_single_input():
    z, _ = _one([0.0], [2.0])
    assert z == pytest.approx(2.0)             # z_out = w z / (w - 1)
    z, _ = _one([0.5], [3.0])
    assert z == pytest.approx(3.0 * np.exp(0.5) / 2.0)
    z, _ = _one([0.0], [1.0])                  # sum w = 1 never crosses
    assert np.isinf(z)


def test_no_spike_and_no_gradient():
    z, caches = _one([0.0, 0.2, np.inf], [0.4, 0.5, 5.0])   # the big weight's input never spikes
    assert np.isinf(z)
    dw, dz_in = ttfs.layer_backward(caches, np.array([[0.4], [0.5], [5.0]]), np.ones((1, 1)))
    assert not dw.any() and not dz_in.any()


def test_negative_weight_sums():
    # All negative: never.
    assert np.isinf(_one([0.0, 0.1], [-1.0, -2.0])[0])
    # The inhibitory input arrives before the neuron would fire (t = ln 3): it joins the causal
    # set, the sum drops to 0.5 and the neuron never fires.
    assert np.isinf(_one([0.0, 0.5], [1.5, -1.0])[0])
    # It arrives after the spike (t = ln 2 < 1): no effect, and no gradient for it.
    z, caches = _one([0.0, 1.0], [2.0, -5.0])
    assert z == pytest.approx(2.0)
    w = np.array([[2.0], [-5.0]])
    dw, dz_in = ttfs.layer_backward(caches, w, np.ones((1, 1)))
    assert dw[1, 0] == 0 and dz_in[0, 1] == 0
    assert dw[0, 0] == pytest.approx((1.0 - 2.0) / 1.0)
    assert dz_in[0, 0] == pytest.approx(2.0 / 1.0)


@pytest.mark.parametrize("max_groups", [0, 64])   # ranked and grouped event layouts
def test_ties_enter_together(max_groups):
    # w1 alone would fire at z = 1.5 (after the tie's own time, fine), but w2 has the same
    # time: both are in the causal set, z = 3.5 / 2.5.
    z, caches = _one([0.0, 0.0], [3.0, 0.5], max_groups=max_groups)
    assert z == pytest.approx(1.4)
    dw, _ = ttfs.layer_backward(caches, np.array([[3.0], [0.5]]), np.ones((1, 1)))
    np.testing.assert_allclose(dw[:, 0], [(1 - 1.4) / 2.5] * 2)
    # An inhibitory tie partner cancels the spike whatever the sort order.
    for order in ([1.5, -1.0], [-1.0, 1.5]):
        assert np.isinf(_one([0.0, 0.0], order, max_groups=max_groups)[0])


@pytest.mark.parametrize("seed", range(6))
def test_against_brute_force_membrane(seed):
    rng = np.random.default_rng(seed)
    n = 6
    times = np.round(rng.uniform(0, 2, n), 2)
    times[rng.random(n) < 0.2] = np.inf
    weights = rng.normal(0.4, 0.6, n)
    z, _ = _one(times, weights)
    ref = _brute_force(times, weights)
    if np.isinf(ref):
        assert np.isinf(z), f"seed {seed}: model spikes at t={np.log(z)}, brute force never"
    else:
        assert np.log(z) == pytest.approx(ref, abs=2e-4), f"seed {seed}"


def test_grouped_and_ranked_agree():
    rng = np.random.default_rng(7)
    times = rng.integers(0, 5, (40, 30)) / 4.0
    times[rng.random(times.shape) < 0.3] = np.inf
    w = rng.normal(0.15, 0.3, (30, 12))
    za, ca = ttfs.layer_forward(_z(times), w, max_groups=64)
    zb, cb = ttfs.layer_forward(_z(times), w, max_groups=0)
    assert ca[0].mode == "grouped" and cb[0].mode == "ranked"
    np.testing.assert_allclose(za, zb, rtol=1e-12)
    dz = rng.normal(size=za.shape)
    ga = ttfs.layer_backward(ca, w, dz)
    gb = ttfs.layer_backward(cb, w, dz)
    np.testing.assert_allclose(ga[0], gb[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ga[1], gb[1], rtol=1e-10, atol=1e-12)


def test_grouped_bincount_and_onehot_agree(monkeypatch):
    # grouped layers with few outputs sum their events by bincount, wider ones by a one-hot
    # product: both layouts must give the same spikes and gradients (seed 11)
    rng = np.random.default_rng(11)
    times = rng.integers(0, 6, (25, 40)) / 8.0
    times[rng.random(times.shape) < 0.4] = np.inf
    w = rng.normal(0.1, 0.3, (40, 6))
    dz = rng.normal(size=(25, 6))
    za, ca = ttfs.layer_forward(_z(times), w)
    assert ca[0].mode == "grouped" and ca[0].onehot is None
    ga = ttfs.layer_backward(ca, w, dz)
    monkeypatch.setattr(ttfs, "_SEGMENT_MAX_OUT", 0)
    zb, cb = ttfs.layer_forward(_z(times), w)
    assert cb[0].mode == "grouped" and cb[0].onehot is not None
    gb = ttfs.layer_backward(cb, w, dz)
    assert np.isfinite(za).sum() > 20, "seed 11: too few spikes to compare"
    np.testing.assert_allclose(za, zb, rtol=1e-12)
    np.testing.assert_allclose(ga[0], gb[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ga[1], gb[1], rtol=1e-10, atol=1e-12)


def test_adam_matches_the_textbook_update():
    # the in-place update against Adam written out (Kingma & Ba, algorithm 1), seed 5
    rng = np.random.default_rng(5)
    p = [rng.normal(size=(4, 3)), rng.normal(size=(3, 2))]
    ref = [x.copy() for x in p]
    m = [np.zeros_like(x) for x in p]
    v = [np.zeros_like(x) for x in p]
    opt = ttfs.Adam(p, lr=0.01)
    for t in range(1, 6):
        g = [rng.normal(size=x.shape) for x in p]
        opt.step(p, g)
        for x, gi, mi, vi in zip(ref, g, m, v):
            mi[:] = 0.9 * mi + 0.1 * gi
            vi[:] = 0.999 * vi + 0.001 * gi * gi
            x -= 0.01 * (mi / (1 - 0.9 ** t)) / (np.sqrt(vi / (1 - 0.999 ** t)) + 1e-8)
        for a, b in zip(p, ref):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=f"step {t}, seed 5")


def test_chunking_is_invisible(monkeypatch):
    rng = np.random.default_rng(3)
    z = _z(rng.uniform(0, 1, (50, 20)))
    w = rng.normal(0.2, 0.3, (20, 8))
    ref, _ = ttfs.layer_forward(z, w)
    monkeypatch.setattr(ttfs, "_CHUNK_ELEMS", 20 * 8 * 3)       # chunks of 3 samples
    out, caches = ttfs.layer_forward(z, w)
    assert len(caches) > 10
    np.testing.assert_array_equal(out, ref)


def test_layer_forward_errors():
    with pytest.raises(ValueError, match="n_in"):
        ttfs.layer_forward(np.ones((2, 3)), np.ones((4, 2)))
    with pytest.raises(ValueError, match=">= 1"):
        ttfs.layer_forward(np.full((1, 2), 0.5), np.ones((2, 2)))


# ---- gradients against finite differences ---------------------------------------------

@pytest.mark.parametrize("grid, sizes", [
    (True, (10, 7, 4)),       # grouped first layer
    (False, (10, 7, 4)),      # ranked everywhere
    (False, (8, 6, 5, 3)),    # two hidden layers
])
def test_gradients_match_finite_differences(grid, sizes):
    seed = 11
    rng = np.random.default_rng(seed)
    b = 6
    times = rng.integers(0, 4, (b, sizes[0])) / 4.0 if grid else rng.uniform(0, 1, (b, sizes[0]))
    times[rng.random(times.shape) < 0.2] = np.inf
    z = _z(times)
    y = rng.integers(0, sizes[-1], b)
    net = ttfs.TTFSNetwork.create(sizes, seed=seed, init_mean=6.0)
    cfg = ttfs.TrainConfig(weight_sum_cost=0.5, early=0.01, weight_decay=1e-3, late=0.02)
    _, grads, z_out = ttfs.loss_and_grads(net, z, y, cfg)
    assert np.isfinite(z_out).mean() > 0.5, f"seed {seed}: too few output spikes to test"
    eps = 1e-6
    for l, w in enumerate(net.weights):
        fd = np.zeros_like(w)
        for idx in np.ndindex(*w.shape):
            old = w[idx]
            w[idx] = old + eps
            lp = ttfs.loss_and_grads(net, z, y, cfg)[0]
            w[idx] = old - eps
            lm = ttfs.loss_and_grads(net, z, y, cfg)[0]
            w[idx] = old
            fd[idx] = (lp - lm) / (2 * eps)
        assert np.abs(grads[l]).max() > 1e-4, f"seed {seed}, layer {l}: gradient is all zero"
        np.testing.assert_allclose(grads[l], fd, rtol=1e-4, atol=1e-7,
                                   err_msg=f"seed {seed}, layer {l}")


def test_silent_label_cost_gradient_and_recovery():
    # output 0 (every sample's label) never fires: only silent_cost gives it a gradient (seed 4)
    seed = 4
    rng = np.random.default_rng(seed)
    z = _z(rng.integers(0, 3, (5, 6)) / 4.0)
    y = np.zeros(5, dtype=np.int64)
    net = ttfs.TTFSNetwork([rng.uniform(0.3, 0.6, (6, 5)), rng.uniform(0.4, 0.8, (5, 3))])
    net.weights[1][:, 0] = 0.01
    cfg = ttfs.TrainConfig(silent_cost=0.7, weight_sum_cost=0.0, z_nospike=30.0)
    _, grads, z_out = ttfs.loss_and_grads(net, z, y, cfg)
    assert np.isinf(z_out[:, 0]).all() and (z_out[:, 1:] < 30).all(), f"seed {seed}"
    _, plain, _ = ttfs.loss_and_grads(net, z, y, ttfs.TrainConfig(weight_sum_cost=0.0, z_nospike=30.0))
    assert not plain[1][:, 0].any(), "without silent_cost the silent label gets no gradient"
    assert (grads[1][:, 0] < 0).all(), f"seed {seed}: silent label's weights must grow"
    eps = 1e-6
    for l, w in enumerate(net.weights):
        fd = np.zeros_like(w)
        for idx in np.ndindex(*w.shape):
            old = w[idx]
            w[idx] = old + eps
            lp = ttfs.loss_and_grads(net, z, y, cfg)[0]
            w[idx] = old - eps
            lm = ttfs.loss_and_grads(net, z, y, cfg)[0]
            w[idx] = old
            fd[idx] = (lp - lm) / (2 * eps)
        np.testing.assert_allclose(grads[l], fd, rtol=1e-4, atol=1e-7, err_msg=f"seed {seed}, layer {l}")
    # firing after the cap: pushed earlier (positive dL/dz gives negative dL/dw here)
    net.weights[1][:, 0] = 0.3
    capped = ttfs.TrainConfig(silent_cost=0.7, z_nospike=1.5, weight_sum_cost=0.0)
    _, g, zo = ttfs.loss_and_grads(net, z, y, capped)
    late = np.isfinite(zo[:, 0]) & (zo[:, 0] >= 1.5)
    assert late.any(), f"seed {seed}: no label spike after the cap"
    _, g0, _ = ttfs.loss_and_grads(net, z, y, ttfs.TrainConfig(z_nospike=1.5, weight_sum_cost=0.0))
    assert np.abs(g[1][:, 0]).sum() > np.abs(g0[1][:, 0]).sum(), f"seed {seed}"


def test_input_gradient_closed_form():
    # dz_out/dz_i = w_i / (A - 1) for i in C.
    z, caches = _one([0.0, 0.3, 2.0], [0.8, 0.7, 0.5])
    a = 1.5
    assert z == pytest.approx((0.8 + 0.7 * np.exp(0.3)) / (a - 1))
    dw, dz_in = ttfs.layer_backward(caches, np.array([[0.8], [0.7], [0.5]]), np.ones((1, 1)))
    np.testing.assert_allclose(dz_in[0], [0.8 / 0.5, 0.7 / 0.5, 0.0])
    np.testing.assert_allclose(dw[:, 0], [(1 - z) / 0.5, (np.exp(0.3) - z) / 0.5, 0.0])


# ---- training -------------------------------------------------------------------------

def _toy_data(seed, n=200):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = rng.random((3, 12))
    x = np.clip(centers[y] + 0.15 * rng.normal(size=(n, 12)), 0, 1)
    return _z(np.round(1 - x, 2)), y


def test_training_learns_and_is_deterministic():
    seed = 5
    z, y = _toy_data(seed)
    runs = []
    for _ in range(2):
        net = ttfs.TTFSNetwork.create((12, 16, 3), seed=seed)
        before = ttfs.accuracy(net, z, y)
        hist = ttfs.train(net, z, y, ttfs.TrainConfig(epochs=8, batch_size=16, lr=3e-3, seed=seed,
                                                      dropout=0.05))
        runs.append((net, hist))
    (n1, h1), (n2, h2) = runs
    assert h1 == h2, f"seed {seed}: two runs differ"
    for a, b in zip(n1.weights, n2.weights):
        np.testing.assert_array_equal(a, b)
    after = ttfs.accuracy(n1, z, y)
    assert after > 0.9 and after > before, f"seed {seed}: accuracy {before} -> {after}"
    other = ttfs.TTFSNetwork.create((12, 16, 3), seed=seed + 1)
    ttfs.train(other, z, y, ttfs.TrainConfig(epochs=1, seed=seed + 1))
    assert not np.array_equal(other.weights[0], n1.weights[0])


def test_late_target_adapts_the_sparsity_cost():
    # hidden spikes before the decision: free training vs. a target of 2 per sample (seed 6);
    # a faster adaptation than MNIST's, for the few minibatches here
    seed = 6
    z, y = _toy_data(seed, n=240)
    counts = {}
    for target in (0.0, 2.0):
        net = ttfs.TTFSNetwork.create((12, 24, 3), seed=seed)
        info = {}
        ttfs.train(net, z, y, ttfs.TrainConfig(epochs=8, batch_size=16, lr=3e-3, seed=seed,
                                               late=1e-3, late_target=target,
                                               late_rate=0.1), info=info)
        assert len(info["late"]) == len(info["hidden_before"]) == 8
        counts[target] = info["hidden_before"][-1]
        if target:
            assert info["late"][-1] > 1e-3, f"seed {seed}: late did not grow: {info['late']}"
            assert ttfs.accuracy(net, z, y) > 0.6, f"seed {seed}: the sparse net does not learn"
        else:
            assert info["late"] == [1e-3] * 8
    assert counts[0.0] > 6, f"seed {seed}: too few hidden spikes to test: {counts}"
    assert counts[2.0] < 0.85 * counts[0.0], f"seed {seed}: {counts}"
    with pytest.raises(ValueError, match="late_target"):
        ttfs.TrainConfig(late_target=5.0)


def test_predict_first_spike_lowest_index_and_none():
    net = ttfs.TTFSNetwork([np.array([[2.0, 2.0, 0.5]])])     # two outputs tie, one never fires
    assert ttfs.predict(net, _z([[0.0]]))[0] == 0
    net = ttfs.TTFSNetwork([np.array([[0.5, 0.5]])])
    assert ttfs.predict(net, _z([[0.0]]))[0] == -1


@pytest.mark.parametrize("kwargs, word", [
    (dict(epochs=-1), "epochs"), (dict(batch_size=0), "batch_size"), (dict(lr=0), "lr"),
    (dict(z_nospike=1.0), "z_nospike"), (dict(clip_norm=0), "clip_norm"),
    (dict(dropout=1.0), "dropout"), (dict(shift=-1), "shift"), (dict(shift=0.5), "shift"),
])
def test_train_config_errors(kwargs, word):
    with pytest.raises(ValueError, match=word):
        ttfs.TrainConfig(**kwargs)


def test_network_errors():
    with pytest.raises(ValueError, match="inputs"):
        ttfs.TTFSNetwork([np.ones((3, 4)), np.ones((5, 2))])
    with pytest.raises(ValueError, match="sizes"):
        ttfs.TTFSNetwork.create((5,))
    with pytest.raises(ValueError, match="NaN"):
        ttfs.TTFSNetwork([np.full((2, 2), np.nan)])


# ---- the discrete model converges to the float model as dt shrinks ---------------------

def test_discrete_converges_to_float():
    """Weights exactly representable in 8 bits (w = q / theta): the only differences left are
    the time grid and z's fixed point, so spike times agree better and better as dt shrinks."""
    seed = 2
    rng = np.random.default_rng(seed)
    theta = 60
    w1 = rng.integers(-20, 40, (16, 12)) / theta
    w2 = rng.integers(-10, 40, (12, 5)) / theta
    t_in = rng.integers(0, 9, (64, 16)) / 8.0            # on every grid below
    t_in[rng.random(t_in.shape) < 0.3] = np.inf
    net = ttfs.TTFSNetwork([w1, w2])
    zs, _ = ttfs.forward(net, _z(t_in))
    t_float = [np.log(z) for z in zs[1:]]
    errors = []
    for steps_per_unit in (8, 32, 128):
        cfg = DiscreteConfig(timesteps=4 * steps_per_unit, dt=1.0 / steps_per_unit, z_frac_bits=16)
        s0 = times_to_steps(t_in, cfg)
        s1 = layer_fire_steps(s0, np.rint(w1 * theta).astype(np.int8), theta, cfg)
        s2 = layer_fire_steps(s1, np.rint(w2 * theta).astype(np.int8), theta, cfg)
        layer_err = []
        for s, tf in zip((s1, s2), t_float):
            both = (s != NO_SPIKE) & (tf < 4 - 2 * cfg.dt)
            assert both.sum() > 20, f"seed {seed}: too few spikes to compare"
            # the discrete neuron fires at the first step at or after the float time
            layer_err.append(np.abs(s[both] * cfg.dt - tf[both]).max())
            agree = np.mean((s != NO_SPIKE) == (tf < 4 - 2 * cfg.dt) | (np.abs(tf - 4) < 2 * cfg.dt))
            assert agree > 0.97, f"seed {seed}, dt {cfg.dt}: spike / no spike agree on {agree:.3f}"
        errors.append(layer_err)
    errors = np.array(errors)
    assert np.all(np.diff(errors, axis=0) < 0), f"seed {seed}: errors do not shrink: {errors}"
    assert errors[-1].max() < 0.05, f"seed {seed}: errors at dt=1/128: {errors[-1]}"
    assert errors[0, 0] <= 1.0 / 8 + 1e-3, f"seed {seed}: first layer error above dt: {errors[0]}"


def test_snap_to_grid():
    t = np.array([0.0, 0.01, 0.125, 0.126, 3.8, 3.9, np.inf])
    z = ttfs.snap_to_grid(np.exp(t), 0.125, steps=32)
    k = np.log(z) / 0.125
    np.testing.assert_allclose(k[:4], [0, 1, 1, 2], atol=1e-9)
    assert k[4] == pytest.approx(31) and np.isinf(k[5]) and np.isinf(k[6])
    assert ttfs.snap_to_grid(np.exp(np.array([5.0])), 0.125)[0] == pytest.approx(np.exp(5.0))


def test_grid_aware_training_puts_hidden_spikes_on_the_grid(monkeypatch):
    seed = 9
    z, y = _toy_data(seed)
    net = ttfs.TTFSNetwork.create((12, 16, 3), seed=seed)
    seen = []
    real = ttfs.layer_forward

    def spy(z_in, w, **kw):
        seen.append(z_in)
        return real(z_in, w, **kw)

    monkeypatch.setattr(ttfs, "layer_forward", spy)
    cfg = ttfs.TrainConfig(epochs=6, batch_size=16, lr=3e-3, seed=seed, grid_dt=0.25, grid_steps=16)
    ttfs.train(net, z, y, cfg)
    hidden_in = np.concatenate([s[np.isfinite(s)] for s in seen[1::2]])
    k = np.log(hidden_in) / 0.25
    np.testing.assert_allclose(k, np.round(k), atol=1e-9, err_msg=f"seed {seed}")
    assert k.max() <= 15
    monkeypatch.undo()
    # a coarse grid (4 steps per input range) costs accuracy, but it still learns (3 classes)
    assert ttfs.accuracy(net, z, y) > 0.6, f"seed {seed}"


def test_shift_images_moves_each_image_within_the_bound():
    rng = np.random.default_rng(0)
    side, shift = 6, 2
    z = _z(rng.uniform(0, 3, size=(200, side * side)))
    moved = ttfs.shift_images(z, shift, np.random.default_rng(5))
    seen = set()
    for a, b in zip(z.reshape(-1, side, side), moved.reshape(-1, side, side)):
        # the one (dy, dx) that maps a onto b: the moved-in border never spikes
        hits = []
        for dy in range(-shift, shift + 1):
            for dx in range(-shift, shift + 1):
                want = np.full((side, side), np.inf)
                want[max(dy, 0):side + min(dy, 0), max(dx, 0):side + min(dx, 0)] = \
                    a[max(-dy, 0):side + min(-dy, 0), max(-dx, 0):side + min(-dx, 0)]
                if np.array_equal(want, b):
                    hits.append((dy, dx))
        assert len(hits) == 1, hits
        seen.add(hits[0])
    assert len(seen) == (2 * shift + 1) ** 2          # every offset drawn, none beyond
    again = ttfs.shift_images(z, shift, np.random.default_rng(5))
    assert np.array_equal(moved, again)
    assert ttfs.shift_images(z, 0, rng) is z
    with pytest.raises(ValueError, match="square"):
        ttfs.shift_images(np.ones((2, 10)), 1, rng)


def test_distort_images_turns_and_scales_about_the_centre():
    side, r, rotate, scale = 21, 9, 30.0, 0.3
    c = side // 2
    z = np.full((300, side, side), np.inf)
    z[:, c, c] = 0.5                       # the centre maps onto itself under every draw
    z[:, c, c + r] = 1.5                   # one pixel r to the right of it
    out = ttfs.distort_images(z.reshape(300, -1), np.random.default_rng(3), rotate=rotate,
                              scale=scale).reshape(300, side, side)
    assert np.all(out[:, c, c] == 0.5)
    angles, dists = [], []
    for img in out:
        assert set(np.unique(img[np.isfinite(img)])) <= {0.5, 1.5}     # nearest pixel only
        ys, xs = np.nonzero(img == 1.5)
        if len(ys) == 0:
            continue                       # shrinking by nearest pixel may skip the pixel
        dy, dx = ys.mean() - c, xs.mean() - c
        angles.append(np.degrees(np.arctan2(dy, dx)))
        dists.append(np.hypot(dy, dx))
    angles, dists = np.array(angles), np.array(dists)
    assert len(angles) > 200
    slack = np.degrees(1.0 / (r * (1 - scale)))                       # one pixel of rounding
    assert np.all(np.abs(angles) <= rotate + slack)
    assert angles.min() < -rotate / 2 and angles.max() > rotate / 2  # turned both ways
    assert np.all((dists >= r * (1 - scale) - 1) & (dists <= r * (1 + scale) + 1))
    assert dists.min() < r - 1.5 and dists.max() > r + 1.5           # scaled both ways
    again = ttfs.distort_images(z.reshape(300, -1), np.random.default_rng(3), rotate=rotate,
                                scale=scale)
    assert np.array_equal(out.reshape(300, -1), again)


def test_distort_images_shift_and_bad_values():
    rng = np.random.default_rng(0)
    z = np.full((400, 25), np.inf)
    z[:, 12] = 1.0                                             # the centre pixel of 5 x 5
    moved = ttfs.distort_images(z, rng, shift=2)
    ys, xs = np.divmod(np.argmax(np.isfinite(moved), axis=1), 5)
    assert np.all(np.isfinite(moved).sum(axis=1) == 1)
    assert {(y - 2, x - 2) for y, x in zip(ys, xs)} == \
        {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}
    assert ttfs.distort_images(z, rng) is z
    with pytest.raises(ValueError, match="square"):
        ttfs.distort_images(np.ones((2, 10)), rng, rotate=5)
    for bad in (dict(rotate=-1), dict(rotate=181), dict(scale=1.0), dict(shift=-1)):
        with pytest.raises(ValueError, match="rotate in"):
            ttfs.distort_images(z, rng, **bad)
    for bad in (dict(rotate=-1.0), dict(rotate=200.0)):
        with pytest.raises(ValueError, match="rotate must be in"):
            ttfs.TrainConfig(**bad)
    with pytest.raises(ValueError, match="scale must be in"):
        ttfs.TrainConfig(scale=1.0)


def test_training_with_distortion_is_deterministic_and_differs():
    rng = np.random.default_rng(1)
    z = _z(np.where(rng.random((64, 16)) < 0.4, 0.0, np.inf))
    y = rng.integers(0, 3, 64)
    nets = []
    for kw in (dict(shift=1), dict(shift=1, rotate=20.0), dict(shift=1, rotate=20.0),
               dict(shift=1, scale=0.2)):
        net = ttfs.TTFSNetwork.create([16, 8, 3], seed=0, input_rate=0.4)
        ttfs.train(net, z, y, ttfs.TrainConfig(epochs=2, batch_size=16, **kw))
        nets.append(net.weights[0])
    assert np.array_equal(nets[1], nets[2])
    assert not np.allclose(nets[0], nets[1]) and not np.allclose(nets[0], nets[3])


def test_training_with_shift_is_deterministic_and_differs():
    rng = np.random.default_rng(1)
    z = _z(np.where(rng.random((64, 16)) < 0.4, 0.0, np.inf))
    y = rng.integers(0, 3, 64)
    nets = []
    for shift in (0, 1, 1):
        net = ttfs.TTFSNetwork.create([16, 8, 3], seed=0, input_rate=0.4)
        ttfs.train(net, z, y, ttfs.TrainConfig(epochs=2, batch_size=16, shift=shift))
        nets.append(net.weights[0])
    assert np.array_equal(nets[1], nets[2])
    assert not np.allclose(nets[0], nets[1])
