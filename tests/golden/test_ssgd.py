"""Tests of the sparse spiking gradient descent golden model (spikegate.golden.ssgd)."""

import math

import numpy as np
import pytest

from spikegate.golden import ssgd as S


def _problem(seed, sizes, n_steps=30, batch=8, tau_eff=5.0, dtype=np.float64, **cfg_kw):
    """A random small network, spike-time inputs and labels (seeded)."""
    cfg = S.SSGDConfig(n_steps=n_steps, batch_size=batch, **cfg_kw)
    rng = np.random.default_rng(seed)
    times = S.encode_spike_times(rng.random((batch, sizes[0])), n_steps, tau_eff=tau_eff)
    params = S.init_params(sizes, cfg, seed=seed, dtype=dtype)
    labels = rng.integers(0, sizes[-1], batch)
    return cfg, params, times, labels


def _assert_grads_close(ga, gb, rtol, what, seed):
    for li, (a, b) in enumerate(zip(ga, gb)):
        scale = max(np.abs(a).max(), np.abs(b).max(), 1e-300)
        err = np.abs(a - b).max() / scale
        assert err <= rtol, (f"seed {seed}: {what}: W{li + 1} differs, max relative error "
                             f"{err:.3g} at {np.unravel_index(np.argmax(np.abs(a - b)), a.shape)}")


# ----------------------------------------------------------------------------- encoding

def test_encode_spike_times_hand_values():
    # floor(20 ln(x / (x - 0.2))): x=1 -> 4.46 -> 4, x=0.25 -> 32.19 -> 32; x <= 0.2: never
    x = np.array([[1.0, 0.25, 0.2, 0.0, 0.21]])
    t = S.encode_spike_times(x, n_steps=50)
    expect = [4, 32, 50, 50, 50]       # x=0.21: 20 ln 21 = 60.9 >= 50 -> no spike in window
    assert t.tolist() == [expect], t
    t = S.encode_spike_times(x, n_steps=100)
    assert t.tolist() == [[4, 32, 100, 100, 60]], t


@pytest.mark.parametrize("bad", [-0.1, 1.5, np.nan])
def test_encode_rejects_bad_pixels(bad):
    with pytest.raises(ValueError, match="intensities"):
        S.encode_spike_times(np.array([[0.5, bad]]))


def test_spike_raster_places_each_spike():
    r = S.spike_raster(np.array([[0, 3, 4]]), 4)
    assert r.shape == (4, 1, 3)
    assert r[:, 0, 0].tolist() == [1, 0, 0, 0]
    assert r[:, 0, 1].tolist() == [0, 0, 0, 1]
    assert r[:, 0, 2].tolist() == [0, 0, 0, 0]       # step n_steps = no spike


# ----------------------------------------------------------------------------- forward

def test_lif_forward_hand_computed():
    """One neuron, weight 0.6, input spikes at steps 0 and 1 (time-major (T, B, n_in))."""
    cfg = S.SSGDConfig(n_steps=5)
    b = math.exp(-0.1)
    x = np.zeros((5, 1, 1))
    x[0, 0, 0] = x[1, 0, 0] = 1
    v, s = S.lif_forward(x, np.array([[0.6]]), cfg)
    v1 = 0.6
    v2 = b * v1 + 0.6                      # 1.143 > 1: spike at step 2
    v3 = b * v2 - 1.0                      # reset by subtraction at the next step
    v4 = b * v3
    np.testing.assert_allclose(v[:, 0, 0], [0, v1, v2, v3, v4], rtol=0, atol=1e-15)
    assert s[:, 0, 0].tolist() == [0, 0, 1, 0, 0]


def test_active_mask_is_strict_band():
    v = np.array([0.8, 0.80001, 1.0, 1.19999, 1.2, 5.0, -1.0])
    assert S.active_mask(v, 1.0, 0.2).tolist() == [False, True, True, True, False, False,
                                                   False]


# ----------------------------------------------------------------------------- statistics

def test_active_fraction_hand_made():
    cfg = S.SSGDConfig(n_steps=3, b_th=0.2)
    v = np.zeros((3, 1, 4))
    v[0] = 1.0                                      # step 0 is never counted
    v[1, 0] = [1.0, 1.19, 1.2, 0.5]                 # 2 active (1.2 is on the edge: not)
    v[2, 0] = [0.81, 0.8, 2.0, 1.0]                 # 2 active
    assert S.active_fraction(v, cfg) == pytest.approx(4 / 8)
    np.testing.assert_allclose(S.active_fraction_per_step(v, cfg), [0.0, 0.5, 0.5])
    v[2, 0, 1] = 0.95                               # one more
    assert S.active_fraction(v, cfg) == pytest.approx(5 / 8)


def test_cosine_similarity_hand_made():
    assert S.cosine_similarity([1, 0], [0, 1]) == 0.0
    assert S.cosine_similarity([1, 2], [2, 4]) == pytest.approx(1.0)
    assert S.cosine_similarity([1, 2], [-1, -2]) == pytest.approx(-1.0)
    assert S.cosine_similarity([1, 0], [1, 1]) == pytest.approx(1 / math.sqrt(2))
    assert S.cosine_similarity(np.zeros(3), np.zeros(3)) == 1.0
    assert S.cosine_similarity(np.zeros(3), np.ones(3)) == 0.0
    with pytest.raises(ValueError, match="differ"):
        S.cosine_similarity([1, 2], [1, 2, 3])


# ----------------------------------------------------------------------------- gradients

# Network shapes: one hidden layer, two (the paper's), three.
@pytest.mark.parametrize("sizes", [[12, 9, 3], [20, 15, 12, 4], [10, 8, 8, 8, 5]])
@pytest.mark.parametrize("seed", [1, 7])
def test_sparse_equals_dense_when_everything_is_active(sizes, seed):
    cfg, params, times, y = _problem(seed, sizes, b_th=1e9)
    fd = S.forward(params, times, cfg, "dense")
    fs = S.forward(params, times, cfg, "sparse")
    assert all(len(c.active) == c.spikes[1:].size for c in fs.layers), f"seed {seed}"
    gd = S.dense_backward(params, fd, y, cfg)
    assert any(np.abs(g).max() > 0 for g in gd.grads[:-1]), f"seed {seed}: trivial case"
    # both orders of the propagation to the layer below (product first or scan first)
    for propagate in S.PROPAGATIONS:
        gs = S.sparse_backward(params, fs, y, cfg, propagate=propagate)
        assert gd.loss == gs.loss and gd.reg_loss == gs.reg_loss
        _assert_grads_close(gd.grads, gs.grads, 1e-12,
                            f"sparse ({propagate}) vs dense, all active", seed)


@pytest.mark.parametrize("seed", [0, 3, 11])
def test_sparse_equals_dense_restricted_to_active_entries(seed):
    """At the paper's B_th, the sparse pass is BPTT with the surrogate zeroed off the band."""
    cfg, params, times, y = _problem(seed, [20, 30, 25, 4], n_steps=40, b_th=0.2,
                                     weight_multiplier=40.0)
    fs = S.forward(params, times, cfg, "sparse")
    assert all(0 < len(c.active) < c.spikes[1:].size for c in fs.layers), \
        f"seed {seed}: need some but not all entries active"
    fd = S.forward(params, times, cfg, "dense")
    gm = S.dense_backward(params, fd, y, cfg, active_only=True)
    for propagate in S.PROPAGATIONS:
        gs = S.sparse_backward(params, fs, y, cfg, propagate=propagate)
        _assert_grads_close(gm.grads, gs.grads, 1e-12, f"sparse ({propagate}) vs masked dense",
                            seed)
    full = S.dense_backward(params, fd, y, cfg)
    diff = max(np.abs(a - b).max() for a, b in zip(full.grads[:-1], gs.grads[:-1]))
    assert diff > 0, f"seed {seed}: the band dropped nothing, the test proves nothing"


@pytest.mark.parametrize("pair_cost", [1e-9, 1e9])
@pytest.mark.parametrize("seed", [0, 3])
def test_merged_rows_are_exact(monkeypatch, seed, pair_cost):
    """Anchor rows with scalar corrections (WeightPlan, PropagationPlan) regroup the same
    sums: the gradient equals masked dense BPTT whether every later row of a sample is
    merged (tiny pair cost) or only rows with no event in between (huge pair cost), for
    both propagation orders, and equals the unmerged sparse pass."""
    monkeypatch.setattr(S, "_PAIR_COST", pair_cost)
    cfg, params, times, y = _problem(seed, [20, 30, 25, 4], n_steps=40, b_th=0.3,
                                     weight_multiplier=40.0)
    fs = S.forward(params, times, cfg, "sparse")
    for li, c in enumerate(fs.layers):
        plans = [c.plan] + ([c.prop] if li else [])
        for p in plans:
            assert len(p.anchors) < len(c.active.urows), f"seed {seed}: layer {li} merged nothing"
            if pair_cost < 1:
                assert len(p.pair_ent), f"seed {seed}: layer {li}: no corrections to test"
            else:
                assert not len(p.pair_ent), f"seed {seed}: layer {li}: {len(p.pair_ent)} pairs"
    gm = S.dense_backward(params, S.forward(params, times, cfg, "dense"), y, cfg,
                          active_only=True)
    fu = S.forward(params, times, cfg, "sparse", merge=False)
    assert all(len(c.plan.anchors) == len(c.active.urows) and not len(c.plan.pair_ent)
               for c in fu.layers)
    gu = S.sparse_backward(params, fu, y, cfg)
    _assert_grads_close(gm.grads, gu.grads, 1e-12, "unmerged sparse vs masked dense", seed)
    for propagate in S.PROPAGATIONS:
        gs = S.sparse_backward(params, fs, y, cfg, propagate=propagate)
        _assert_grads_close(gm.grads, gs.grads, 1e-12,
                            f"merged sparse ({propagate}, pair cost {pair_cost}) vs masked dense",
                            seed)


@pytest.mark.parametrize("pair_cost", [1e-9, 1e9])
@pytest.mark.parametrize("span", [1, 7, None])
def test_rebased_running_sums_are_exact(monkeypatch, span, pair_cost):
    """The propagation's running sums change their reference step every ``span`` steps
    (_rebase_span): with a span of 1 or 7 instead of the float64 default (no rebase in 60
    steps), merged or unmerged rows, both orders still equal masked dense BPTT."""
    if span is not None:
        monkeypatch.setattr(S, "_rebase_span", lambda beta, dtype: span)
    monkeypatch.setattr(S, "_PAIR_COST", pair_cost)
    cfg, params, times, y = _problem(5, [16, 20, 18, 4], n_steps=60, tau_eff=30.0, b_th=0.3,
                                     weight_multiplier=40.0)
    fs = S.forward(params, times, cfg, "sparse")
    assert len(fs.layers[1].prop.anchors) < len(fs.layers[1].active.urows)
    gm = S.dense_backward(params, S.forward(params, times, cfg, "dense"), y, cfg,
                          active_only=True)
    assert np.abs(gm.grads[0]).max() > 0
    for propagate in S.PROPAGATIONS:
        gs = S.sparse_backward(params, fs, y, cfg, propagate=propagate)
        _assert_grads_close(gm.grads, gs.grads, 1e-12,
                            f"span {span}, pair cost {pair_cost}, {propagate}", 5)


def test_long_float32_sequence_stays_finite():
    """400 steps at tau_mem = 2 (beta = 0.61): ``beta**-t`` overflows float32 after 176
    steps, so unrebased running sums gave NaN gradients; the rebased ones match dense BPTT
    to float32 rounding."""
    assert S._rebase_span(math.exp(-0.5), np.float32) < 400
    cfg, params, times, y = _problem(1, [12, 9, 8, 3], n_steps=400, tau_eff=120.0,
                                     dtype=np.float32, b_th=1e9, tau_mem=2.0,
                                     weight_multiplier=10.0)
    assert np.median(times) > 50 and times[times < 400].max() > 200
    gd = S.dense_backward(params, S.forward(params, times, cfg, "dense"), y, cfg)
    fs = S.forward(params, times, cfg, "sparse")
    for propagate in S.PROPAGATIONS:
        gs = S.sparse_backward(params, fs, y, cfg, propagate=propagate)
        assert all(np.isfinite(g).all() for g in gs.grads), propagate
        _assert_grads_close(gd.grads, gs.grads, 1e-5, f"float32, 400 steps, {propagate}", 1)


def test_plan_events_from_times_and_raster_agree(monkeypatch):
    """The first layer's events come from the spike steps when the input is given as steps,
    from the raster otherwise: the same plan and gradient."""
    monkeypatch.setattr(S, "_PAIR_COST", 1e-9)
    seed = 8
    cfg, params, times, y = _problem(seed, [20, 30, 25, 4], n_steps=40, b_th=0.3,
                                     weight_multiplier=40.0)
    ft = S.forward(params, times, cfg, "sparse")
    fr = S.forward(params, S.spike_raster(times, cfg.n_steps, np.float64), cfg, "sparse")
    pt, pr = ft.layers[0].plan, fr.layers[0].plan
    assert len(pt.pair_ent), f"seed {seed}: no corrections"
    for name in ("anchors", "ent_flat", "ent_coef", "pair_ent", "pair_flat", "pair_coef"):
        np.testing.assert_array_equal(getattr(pt, name), getattr(pr, name), err_msg=name)
    gt = S.sparse_backward(params, ft, y, cfg)
    gr = S.sparse_backward(params, fr, y, cfg)
    for a, b in zip(gt.grads, gr.grads):
        np.testing.assert_array_equal(a, b)


def test_sparse_backward_with_no_active_entries():
    """A band too narrow to catch any membrane: hidden gradients are zero (as masked dense
    BPTT says), the readout gradient is unchanged (up to rounding)."""
    seed = 4
    cfg, params, times, y = _problem(seed, [20, 30, 25, 4], n_steps=40, b_th=1e-12)
    fs = S.forward(params, times, cfg, "sparse")
    assert all(len(c.active) == 0 for c in fs.layers), f"seed {seed}"
    fd = S.forward(params, times, cfg, "dense")
    gm = S.dense_backward(params, fd, y, cfg, active_only=True)
    assert np.abs(gm.grads[-1]).max() > 0, f"seed {seed}: trivial readout gradient"
    for propagate in S.PROPAGATIONS:
        gs = S.sparse_backward(params, fs, y, cfg, propagate=propagate)
        for li, (a, b) in enumerate(zip(gm.grads[:-1], gs.grads[:-1])):
            assert a.shape == b.shape and np.array_equal(a, b), f"seed {seed}: W{li + 1}"
        # the readout gradient: the sparse pass computes dh in closed form (rounding only)
        np.testing.assert_allclose(gs.grads[-1], gm.grads[-1], rtol=1e-12, atol=1e-15)
        assert all(np.all(g == 0) for g in gs.grads[:-1])


def test_sparse_backward_skips_silent_inputs():
    """Inputs that never spike before an active row are left out of the kept trace
    (``trace_cols``); their rows of dW are zero, the rest still match masked dense BPTT."""
    seed = 5
    cfg, params, times, y = _problem(seed, [24, 30, 25, 4], n_steps=40, b_th=0.2,
                                     weight_multiplier=40.0)
    times = times.copy()
    silent = [0, 5, 6, 17]
    times[:, silent] = cfg.n_steps                  # these inputs never spike
    fs = S.forward(params, times, cfg, "sparse")
    cols = fs.layers[0].trace_cols
    assert cols is not None and not set(silent) & set(cols.tolist()), \
        f"seed {seed}: trace_cols {cols}"
    assert fs.layers[0].trace_t.shape[0] == len(cols) <= 24 - len(silent)
    gs = S.sparse_backward(params, fs, y, cfg)
    assert np.all(gs.grads[0][silent] == 0), f"seed {seed}"
    gm = S.dense_backward(params, S.forward(params, times, cfg, "dense"), y, cfg,
                          active_only=True)
    _assert_grads_close(gm.grads, gs.grads, 1e-12, "sparse vs masked dense, silent inputs",
                        seed)


def test_readout_gradient_stops_at_the_latest_peak():
    """dh is zero from the latest readout peak on; dW_out equals the product over all steps."""
    seed = 6
    cfg, params, times, y = _problem(seed, [20, 15, 12, 4], n_steps=40)
    f = S.forward(params, times, cfg, "dense")
    t_stop = int(f.t_max.max())
    assert 0 < t_stop < cfg.n_steps - 1, f"seed {seed}: t_max {f.t_max} proves nothing"
    _, dw_out, dh = S.loss_and_readout_grad(f, y, params[-1], cfg)
    assert np.all(dh[t_stop:] == 0) and np.abs(dh[t_stop - 1]).max() > 0, f"seed {seed}"
    s = f.layers[-1].spikes[:-1]
    full = s.reshape(-1, s.shape[2]).T @ dh.reshape(-1, dh.shape[2])
    np.testing.assert_allclose(dw_out, full, rtol=1e-13, atol=1e-300,
                               err_msg=f"seed {seed}")


def test_sparse_backward_rejects_unknown_propagation():
    cfg, params, times, y = _problem(0, [6, 5, 5, 3])
    f = S.forward(params, times, cfg, "sparse")
    with pytest.raises(ValueError, match="propagate must be one of"):
        S.sparse_backward(params, f, y, cfg, propagate="fast")


def test_gradients_match_finite_differences():
    """Dense BPTT against central differences of a forward whose spike is a smooth function
    with the surrogate as its exact derivative (the reset stays the hard, detached spike)."""
    seed = 2
    cfg, params, times, y = _problem(seed, [10, 8, 7, 3], n_steps=25, batch=6, tau_eff=4.0,
                                     surrogate_scale=5.0, f_lower=0.5)
    k = cfg.surrogate_scale

    def smooth(x):
        return 0.5 + np.sign(x) * (1 - 1 / (k * np.abs(x) + 1)) / k

    def total_loss(ps):
        f = S.forward(ps, times, cfg, "dense", spike_fn=smooth)
        loss, _, _ = S.loss_and_readout_grad(f, y, ps[-1], cfg)
        return loss + sum(S.reg_loss_and_grad(c.counts, cfg)[0] for c in f.layers)

    f = S.forward(params, times, cfg, "dense", spike_fn=smooth)
    g = S.dense_backward(params, f, y, cfg)
    rng = np.random.default_rng(seed)
    eps = 1e-6
    for li in range(len(params)):
        for _ in range(5):
            i, j = (int(rng.integers(n)) for n in params[li].shape)
            p1 = [p.copy() for p in params]
            p2 = [p.copy() for p in params]
            p1[li][i, j] += eps
            p2[li][i, j] -= eps
            fdiff = (total_loss(p1) - total_loss(p2)) / (2 * eps)
            assert g.grads[li][i, j] == pytest.approx(fdiff, rel=1e-4, abs=1e-8), \
                f"seed {seed}: W{li + 1}[{i}, {j}]: backprop {g.grads[li][i, j]}, FD {fdiff}"


def test_sparse_gradient_is_close_to_dense_on_digits():
    from spikegate.golden.data import load_dataset
    seed = 0
    d = load_dataset("digits")
    cfg = S.SSGDConfig(n_steps=60, batch_size=128)
    times = S.encode_spike_times(d.x_train[:128], cfg.n_steps)
    params = S.init_params([64, 100, 100, 10], cfg, seed=seed)
    fd = S.forward(params, times, cfg, "dense")
    fs = S.forward(params, times, cfg, "sparse")
    gd = S.dense_backward(params, fd, d.y_train[:128], cfg)
    gs = S.sparse_backward(params, fs, d.y_train[:128], cfg)
    frac = [S.active_fraction(c.v, cfg) for c in fd.layers]
    assert all(0 < f < 0.1 for f in frac), f"seed {seed}: active fractions {frac}"
    n_act = [c.n_active / c.spikes[1:].size for c in fs.layers]
    np.testing.assert_allclose(n_act, frac, rtol=1e-12)
    cos = [S.cosine_similarity(a, b) for a, b in zip(gd.grads, gs.grads)]
    assert min(cos) > 0.95, f"seed {seed}: cosine similarities {cos}"
    assert cos[-1] == pytest.approx(1.0), "the readout gradient is the same in both"


def test_sparse_backward_keeps_less_than_dense():
    cfg, params, times, y = _problem(4, [40, 50, 50, 5], n_steps=60, batch=16)
    fd = S.forward(params, times, cfg, "dense")
    fs = S.forward(params, times, cfg, "sparse")
    assert sum(c.saved_nbytes() for c in fs.layers) < sum(c.saved_nbytes() for c in fd.layers)


def test_backward_needs_matching_forward():
    cfg, params, times, y = _problem(0, [6, 5, 3])
    f = S.forward(params, times, cfg, "none")
    with pytest.raises(ValueError, match="mode"):
        S.backward(params, f, y, cfg)
    with pytest.raises(ValueError, match="dense_backward needs"):
        S.dense_backward(params, S.forward(params, times, cfg, "sparse"), y, cfg)
    with pytest.raises(ValueError, match="mode must be"):
        S.forward(params, times, cfg, "fast")


# ----------------------------------------------------------------------------- training

@pytest.mark.parametrize("mode", ["dense", "sparse"])
def test_training_on_digits_learns(mode):
    from spikegate.golden.data import load_dataset
    seed = 0
    d = load_dataset("digits")
    cfg = S.SSGDConfig(n_steps=40, batch_size=64, lr=1e-2)
    tr = S.encode_spike_times(d.x_train[:640], cfg.n_steps)
    te = S.encode_spike_times(d.x_test, cfg.n_steps)
    params = S.init_params([64, 64, 64, 10], cfg, seed=seed)
    before = S.accuracy(params, te, d.y_test, cfg)
    hist = S.train(params, tr, d.y_train[:640], cfg, backward_mode=mode, epochs=6, seed=seed,
                   test=(te, d.y_test))
    assert len(hist["loss"]) == 6 * 10 and len(hist["test_acc"]) == 6
    assert np.mean(hist["loss"][-10:]) < np.mean(hist["loss"][:10]), f"seed {seed}"
    assert hist["test_acc"][-1] > max(0.65, before + 0.4), \
        f"seed {seed}, {mode}: test accuracy {before} -> {hist['test_acc']}"


def test_adam_matches_hand_computed_first_step():
    p = [np.array([1.0, -2.0])]
    opt = S.Adam(p, lr=0.1)
    opt.step([np.array([0.5, -3.0])])
    # first bias-corrected step is lr * g / (|g| + eps) = lr * sign(g)
    np.testing.assert_allclose(p[0], [0.9, -1.9], atol=1e-7)


# ----------------------------------------------------------------------------- validation

@pytest.mark.parametrize("kw, exc", [
    ({"n_steps": 1}, ValueError), ({"n_steps": 2.5}, TypeError), ({"b_th": 0}, ValueError),
    ({"tau_mem": -1}, ValueError), ({"batch_size": True}, TypeError),
    ({"adam_betas": (1.0, 0.9)}, ValueError), ({"lambda_lower": -1}, ValueError),
])
def test_config_rejects_bad_values(kw, exc):
    with pytest.raises(exc):
        S.SSGDConfig(**kw)


def test_init_params_shapes_and_scale():
    cfg = S.SSGDConfig()
    ps = S.init_params([784, 200, 200, 10], cfg, seed=0)
    assert [p.shape for p in ps] == [(784, 200), (200, 200), (200, 10)]
    expect = cfg.weight_multiplier * (1 - cfg.beta) / math.sqrt(784)
    assert ps[0].std() == pytest.approx(expect, rel=0.02)
    with pytest.raises(ValueError, match="hidden"):
        S.init_params([10, 3], cfg)


@pytest.mark.parametrize("seed", [3, 7])
def test_sparse_readout_gradient_equals_the_dense_one(seed):
    """sparse_readout_grad: each sample's rows before its own latest peak, dh in closed form."""
    cfg, params, times, y = _problem(seed, [20, 15, 12, 4], n_steps=40, b_th=0.3)
    fs = S.forward(params, times, cfg, "sparse")
    last = fs.t_max.max(axis=1)
    assert last.min() < last.max(), f"seed {seed}: peaks {last} prove nothing"
    loss_d, dw_d, dh = S.loss_and_readout_grad(fs, y, params[-1], cfg)
    loss_s, dw_s, g = S.sparse_readout_grad(fs, y, params[-1], cfg)
    np.testing.assert_allclose(dw_s, dw_d, rtol=1e-12, atol=1e-15, err_msg=f"seed {seed}")
    top = fs.layers[-1].active
    T = cfg.n_steps
    g_full = np.zeros((T, len(y), params[-1].shape[0]))
    g_full[:T - 1] = dh @ params[-1].T
    want = g_full.reshape(-1)[top.flat]
    assert len(want) and np.abs(want).max() > 0, f"seed {seed}"
    np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-15, err_msg=f"seed {seed}")
