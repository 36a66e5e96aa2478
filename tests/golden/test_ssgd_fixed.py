"""Tests of the fixed-point SSGD datapath (spikegate.golden.ssgd_fixed) against the float model."""

import math

import numpy as np
import pytest

from spikegate.golden import ssgd as S
from spikegate.golden import ssgd_fixed as F

FMT = F.FixedFormat()


def _float_cfg_for(beta_q, fmt, n_steps):
    """A float config whose beta is exactly the quantised decay ``beta_q / 2**decay_bits``."""
    beta = beta_q / (1 << fmt.decay_bits)
    return S.SSGDConfig(n_steps=n_steps, tau_mem=-1.0 / math.log(beta))


# ----------------------------------------------------------------------------- steps

@pytest.mark.parametrize("v, beta_q, expect", [
    (256, 232, 232),          # exact
    (3, 232, 3),              # 2.71875 -> 3
    (-3, 232, -3),            # -2.71875 -> -3
    (1, 128, 1),              # 0.5 -> 1: half rounds up
    (-1, 128, 0),             # -0.5 -> 0: half rounds up (towards +inf)
    (-32768, 255, -32640),    # most negative state: no overflow
])
def test_decay_rounds_half_up(v, beta_q, expect):
    assert int(F.decay(v, beta_q, FMT)) == expect


def test_integrate_saturates_instead_of_wrapping():
    hi = (1 << (FMT.v_bits - 1)) - 1
    assert int(F.integrate(hi - 10, 100, 0, FMT)) == hi
    assert int(F.integrate(-hi, -100, 1, FMT)) == -hi - 1
    assert int(F.integrate(300, 10, 1, FMT)) == 300 + 10 - 256     # reset subtracts V_th


def test_synaptic_input_saturates_to_acc_bits():
    fmt = F.FixedFormat(acc_bits=10)
    w = np.full((20, 1), 127)
    assert int(F.synaptic_input(np.ones((1, 20), bool), w, fmt)[0, 0]) == 511
    assert int(F.synaptic_input(np.ones((1, 20), bool), -w - 1, fmt)[0, 0]) == -512
    with pytest.raises(ValueError, match="0 or 1"):
        F.synaptic_input(np.full((1, 20), 2), w, FMT)


def test_fire_is_strict():
    assert F.fire(np.array([255, 256, 257]), FMT).tolist() == [False, False, True]


def test_quantize_weights_half_even_and_saturate():
    lsb = FMT.lsb
    w = np.array([0.5 * lsb, 1.5 * lsb, 2.5 * lsb, -0.5 * lsb, 1.0, -1.0, 0.25])
    assert F.quantize_weights(w, FMT).tolist() == [0, 2, 2, 0, 127, -128, 64]
    with pytest.raises(ValueError, match="finite"):
        F.quantize_weights(np.array([np.inf]), FMT)


def test_quantize_decay_and_band():
    assert F.quantize_decay(math.exp(-0.1), FMT) == 232
    assert F.quantize_b_th(0.2, FMT) == 51
    assert F.quantize_b_th(1e-9, FMT) == 1
    with pytest.raises(ValueError):
        F.quantize_decay(1.0, FMT)


# ----------------------------------------------------------------------------- vs float

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_step_within_half_lsb_of_float(seed):
    rng = np.random.default_rng(seed)
    beta_q = 232
    v = rng.integers(-3000, 3000, (16, 30))
    s_prev = rng.random((16, 30)) < 0.1
    x = rng.random((16, 40)) < 0.2
    w_q = rng.integers(-128, 128, (40, 30))
    v_new, s_new = F.lif_step(v, s_prev, x, w_q, beta_q, FMT)
    exact = v * (beta_q / 256) + x.astype(float) @ w_q - 256 * s_prev
    err = np.abs(v_new - exact)
    assert err.max() <= 0.5, f"seed {seed}: one-step error {err.max()} LSB > 0.5"
    np.testing.assert_array_equal(s_new, v_new > 256, err_msg=f"seed {seed}")


@pytest.mark.parametrize("seed", [0, 5])
def test_layer_within_stated_bound_of_float_until_spikes_differ(seed):
    """Whole layer vs the float LIF with the quantised parameters: within
    0.5 / (1 - beta_q / 2**8) LSB for each neuron up to its first spike mismatch."""
    rng = np.random.default_rng(seed)
    T, B, n_in, N = 60, 8, 50, 40
    beta_q = F.quantize_decay(math.exp(-0.1), FMT)
    cfg = _float_cfg_for(beta_q, FMT, T)
    times = S.encode_spike_times(rng.random((B, n_in)), T, tau_eff=10.0)
    x = S.spike_raster(times, T, np.float64)
    w = S.init_params([n_in, N, 2], S.SSGDConfig(weight_multiplier=60.0), seed=seed,
                      dtype=np.float64)[0]
    w_q = F.quantize_weights(w, FMT)
    v_q, s_q = F.lif_forward_fixed(x, w_q, beta_q, FMT)
    v_f, s_f = S.lif_forward(x, F.to_float(w_q, FMT), cfg)
    assert s_f.sum() > 0, f"seed {seed}: no spikes, the reset path is untested"
    bound = 0.5 / (1 - beta_q / 256) * FMT.lsb
    mismatch = s_q != (s_f > 0)
    ok_until = np.where(mismatch.any(axis=0), mismatch.argmax(axis=0), T)   # (B, N)
    err = np.abs(F.to_float(v_q, FMT) - v_f)
    valid = np.arange(T)[:, None, None] < ok_until[None]
    worst = err[valid].max()
    assert worst <= bound + 1e-12, f"seed {seed}: error {worst / FMT.lsb:.3f} LSB > bound"
    assert mismatch.mean() < 0.01, f"seed {seed}: {mismatch.mean():.3%} spikes differ"


def test_is_active_matches_float_band_exactly():
    b_th_q = F.quantize_b_th(0.2, FMT)
    v = np.arange(-100, 700)
    cfg_b = b_th_q * FMT.lsb                       # 51 / 256, representable exactly
    expect = S.active_mask(F.to_float(v, FMT), 1.0, cfg_b)
    np.testing.assert_array_equal(F.is_active(v, b_th_q, FMT), expect)
    assert F.is_active(v, b_th_q, FMT).sum() == 2 * b_th_q - 1


# ----------------------------------------------------------------------------- surrogate

def test_surrogate_lut_within_half_lsb():
    b_th_q = F.quantize_b_th(0.2, FMT)
    lut = F.surrogate_lut(FMT, b_th_q, scale=100)
    assert len(lut) == b_th_q == 51
    assert lut[0] == 1 << FMT.g_frac
    assert np.all(np.diff(lut) <= 0), "g decreases away from threshold"
    d = np.arange(b_th_q)
    exact = S.surrogate(d * FMT.lsb, 100.0)
    err = np.abs(lut / (1 << FMT.g_frac) - exact)
    assert err.max() <= 2.0 ** -(FMT.g_frac + 1) + 1e-15
    assert lut.max() < (1 << FMT.g_bits)


def test_surrogate_lookup_is_zero_off_band_and_symmetric():
    b_th_q = 51
    lut = F.surrogate_lut(FMT, b_th_q)
    v = np.array([256, 256 + 3, 256 - 3, 256 + 50, 256 + 51, 256 - 51, -5000, 9000])
    g = F.surrogate_lookup(v, lut, FMT)
    assert g.tolist() == [lut[0], lut[3], lut[3], lut[50], 0, 0, 0, 0]
    np.testing.assert_array_equal(g != 0, F.is_active(v, b_th_q, FMT))


def test_fixed_surrogate_tracks_float_gradient_weight():
    """Lookup of quantised membranes vs the float surrogate of the float membranes:
    within half an output LSB plus the Lipschitz term 2 * scale * (half a membrane LSB)."""
    rng = np.random.default_rng(3)
    v = 1.0 + rng.uniform(-0.19, 0.19, 1000)
    v_q = np.rint(v / FMT.lsb).astype(np.int64)
    lut = F.surrogate_lut(FMT, F.quantize_b_th(0.2, FMT))
    g_fixed = F.surrogate_lookup(v_q, lut, FMT) / (1 << FMT.g_frac)
    g_float = S.surrogate(v - 1.0, 100.0)
    bound = 2.0 ** -(FMT.g_frac + 1) + 2 * 100 * FMT.lsb / 2
    assert np.abs(g_fixed - g_float).max() <= bound, "seed 3"


# ----------------------------------------------------------------------------- validation

@pytest.mark.parametrize("kw, exc", [
    ({"v_bits": 1}, ValueError), ({"frac_bits": 15}, ValueError),
    ({"g_frac": 16}, ValueError), ({"w_bits": 8.0}, TypeError),
])
def test_format_rejects_bad_widths(kw, exc):
    with pytest.raises(exc):
        F.FixedFormat(**kw)


def test_layer_rejects_out_of_range_weights():
    x = np.zeros((3, 1, 2))
    with pytest.raises(ValueError, match="8-bit"):
        F.lif_forward_fixed(x, np.array([[200], [0]]), 232, FMT)
    with pytest.raises(ValueError, match="take 2 inputs"):
        F.lif_forward_fixed(x, np.zeros((3, 1), dtype=np.int64), 232, FMT)
