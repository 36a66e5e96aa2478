"""Tests of the PD sigma-delta coder: float model (golden/sigma_delta.py) and fixed point
(golden/sigma_delta_fixed.py)."""

import numpy as np
import pytest

from spikegate.golden import sigma_delta as sd
from spikegate.golden import sigma_delta_fixed as sdf
from spikegate.golden.fixed import signed_range

SEEDS = [0, 1, 2]


def _dyadic(rng, shape, scale=4.0, frac=6):
    """Random values that are multiples of 2**-frac: sums of them are exact in float64."""
    return np.round(rng.uniform(-scale, scale, size=shape) * (1 << frac)) / (1 << frac)


# ------------------------------------------------------------------------------------------------
# float model
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_quantizer_unwraps_exactly_on_dyadic_inputs(seed):
    rng = np.random.default_rng(seed)
    a = _dyadic(rng, (200, 17))
    a[::7] += 0.5                                    # force exact ties in the partial sums
    s, phi = sd.sigma_delta(a)
    expected = sd.sigma_delta_unwrapped(a)
    bad = np.argwhere(s != expected)
    assert bad.size == 0, f"seed {seed}: first mismatch at (t, unit) {tuple(bad[0])}"
    assert np.all((phi >= -0.5) & (phi < 0.5)), f"seed {seed}: residual out of [-1/2, 1/2)"


@pytest.mark.parametrize("seed", SEEDS)
def test_quantizer_unwraps_on_random_floats_except_near_ties(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1.3, size=(300, 20))
    s, _ = sd.sigma_delta(a)
    c = np.cumsum(a, axis=0)
    expected = sd.sigma_delta_unwrapped(a)
    near_tie = np.abs(c - np.floor(c) - 0.5) < 1e-9
    # a mismatch at a tie also shows up in the next step (it is undone there)
    allowed = near_tie | np.concatenate([np.zeros_like(near_tie[:1]), near_tie[:-1]])
    bad = np.argwhere((s != expected) & ~allowed)
    assert bad.size == 0, f"seed {seed}: mismatch away from a tie at {tuple(bad[0])}"
    # the sigma-delta bound: the spike total tracks the input total within 1/2
    assert np.all(np.abs(np.cumsum(s, axis=0) - c) <= 0.5 + 1e-9), f"seed {seed}"


def test_quantizer_step_values():
    s, phi = sd.sigma_delta(np.array([[0.3], [0.3], [0.3], [-2.0], [0.5]]))
    assert s[:, 0].tolist() == [0.0, 1.0, 0.0, -2.0, 0.0]
    assert phi[0] == pytest.approx(0.4)
    # round half up: 0.5 -> 1, -0.5 -> 0
    assert sd.round_half_up([0.5, -0.5, 1.5, -1.5]).tolist() == [1.0, 0.0, 2.0, -1.0]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kp,kd", [(0.1, 1.0), (1.0, 0.0), (0.5, 5.0), (0.03, 2.0)])
def test_decode_inverts_encode_without_quantization(seed, kp, kd):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(100, 8))
    ka, kb = sd.kpkd_to_alpha_beta(kp, kd)
    y = sd.pd_decode(sd.pd_encode(x, ka, kb), ka, kb)
    err = np.abs(y - x).max()
    assert err < 1e-9, f"seed {seed}, kp={kp}, kd={kd}: max |dec(enc(x)) - x| = {err}"
    # the reparametrisation matches the kp / kd form
    a = sd.pd_encode(x, ka, kb)
    a_kpkd = kp * x + kd * np.diff(x, axis=0, prepend=0.0)
    assert np.allclose(a, a_kpkd, rtol=1e-12, atol=1e-12), f"seed {seed}"


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kd", [1.0, 4.0, 0.25])
def test_kp_zero_reconstruction_is_rounding(seed, kd):
    rng = np.random.default_rng(seed)
    x = _dyadic(rng, (150, 12), scale=3.0, frac=5)
    ka, kb = sd.kpkd_to_alpha_beta(0.0, kd)
    assert ka == 1.0
    s, _ = sd.sigma_delta(sd.pd_encode(x, ka, kb))
    x_hat = sd.pd_decode(s, ka, kb)
    expected = sd.round_half_up(kd * x) / kd
    bad = np.argwhere(x_hat != expected)
    assert bad.size == 0, f"seed {seed}, kd={kd}: first mismatch at {tuple(bad[0])}"


def test_kpkd_roundtrip_and_errors():
    ka, kb = sd.kpkd_to_alpha_beta(0.1, 1.0)
    assert ka == pytest.approx(1 / 1.1) and kb == pytest.approx(1 / 1.1)
    assert sd.alpha_beta_to_kpkd(ka, kb) == pytest.approx((0.1, 1.0))
    with pytest.raises(ValueError, match="kp"):
        sd.kpkd_to_alpha_beta(-1.0, 1.0)
    with pytest.raises(ValueError, match="k_beta"):
        sd.pd_encode(np.zeros((2, 2)), 0.5, 0.0)
    with pytest.raises(ValueError, match="k_alpha"):
        sd.pd_decode(np.zeros((2, 2)), 1.5, 1.0)


@pytest.mark.parametrize("seed", SEEDS)
def test_accumulate_rows_is_row_additions(seed):
    rng = np.random.default_rng(seed)
    s = rng.choice([-3, -1, 0, 0, 0, 1, 2], size=40).astype(float)
    w = rng.normal(size=(40, 9))
    u, n = sd.accumulate_rows(s, w)
    assert n == int(np.abs(s).sum())
    assert np.allclose(u, sd.accumulate_rows_reference(s, w), atol=1e-12), f"seed {seed}"
    assert np.allclose(u, s @ w, atol=1e-12), f"seed {seed}"
    u0, n0 = sd.accumulate_rows(np.zeros(40), w)
    assert n0 == 0 and not u0.any()


def test_coder_adapts_k_beta_to_signal_magnitude():
    coder = sd.PDCoder(0.1, 1.0, 5, adaptive=True, adaptation_rate=0.01)
    fixed = sd.PDCoder(0.1, 1.0, 5, adaptive=False)
    k0 = coder.k_beta
    for t in range(3000):
        x = np.full(5, 0.2) * (1 if t % 2 else -1)
        for c in (coder, fixed):
            c.encode(x)
            c.adapt()
    assert coder.running_mag == pytest.approx(0.2, rel=1e-3)
    assert coder.k_beta == pytest.approx(k0 * 0.2, rel=1e-2)
    assert fixed.k_beta == k0
    assert coder.k_alpha == fixed.k_alpha           # only k_beta adapts
    assert coder.kp_now / coder.kd_now == pytest.approx(0.1)


def test_coder_spikes_match_sequence_functions():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(50, 6))
    coder = sd.PDCoder(0.2, 2.0, 6, adaptive=False)
    s_step = np.array([coder.encode(x[t]) for t in range(50)])
    s_seq, _ = sd.sigma_delta(sd.pd_encode(x, coder.k_alpha, coder.k_beta))
    assert np.array_equal(s_step, s_seq), "seed 5"


# ------------------------------------------------------------------------------------------------
# fixed point
# ------------------------------------------------------------------------------------------------

FMT = sdf.SDFixedFormat.from_float(1 / 1.1, 0.12, ka_frac=10, gain_frac=8, kb_frac=12)


@pytest.mark.parametrize("seed", SEEDS)
def test_fixed_encoder_within_half_lsb(seed):
    rng = np.random.default_rng(seed)
    lo, hi = signed_range(FMT.x_width)
    x = rng.integers(0, 1 << FMT.x_frac, size=(200,))            # activations in [0, 1)
    xp = rng.integers(0, 1 << FMT.x_frac, size=(200,))
    a = sdf.encode_fx(x, xp, FMT)
    xf, xpf = x / (1 << FMT.x_frac), xp / (1 << FMT.x_frac)
    ref = (xf - FMT.k_alpha * xpf) * FMT.enc_gain
    err = np.abs(a / (1 << FMT.phi_frac) - ref)
    assert err.max() <= 2.0 ** -(FMT.phi_frac + 1) + 1e-12, f"seed {seed}: encoder error {err.max()}"
    assert lo < x.max() < hi


def test_fixed_encoder_saturates():
    fmt = sdf.SDFixedFormat.from_float(0.5, 1 / 64, a_width=12)
    hi = (1 << (fmt.x_width - 1)) - 1
    a = sdf.encode_fx(np.array([hi, -hi - 1, 0]), np.array([0, 0, 0]), fmt)
    assert a.tolist() == [2047, -2048, 0]


@pytest.mark.parametrize("seed", SEEDS)
def test_fixed_quantizer_equals_float_quantizer(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-3 << FMT.phi_frac, 3 << FMT.phi_frac, size=(300, 10))
    a[::5] = (rng.integers(-3, 3, size=a[::5].shape) << FMT.phi_frac) + (1 << (FMT.phi_frac - 1))  # ties
    phi = np.zeros(10, dtype=np.int64)
    s_fx = np.empty_like(a)
    for t in range(len(a)):
        s_fx[t], phi = sdf.quantize_fx(a[t], phi, FMT)
    s_fl, phi_fl = sd.sigma_delta(a / (1 << FMT.phi_frac))
    bad = np.argwhere(s_fx != s_fl)
    assert bad.size == 0, f"seed {seed}: first mismatch at (t, unit) {tuple(bad[0])}"
    assert np.array_equal(phi / (1 << FMT.phi_frac), phi_fl), f"seed {seed}"


def test_fixed_quantizer_saturates_and_keeps_the_excess():
    fmt = sdf.SDFixedFormat.from_float(0.5, 0.5, spike_width=4, phi_frac=4, phi_width=12, a_width=12)
    big = np.array([20 << 4])                                  # 20 spikes, but s saturates at 7
    s1, phi = sdf.quantize_fx(big, np.array([0]), fmt)
    assert s1.tolist() == [7] and phi.tolist() == [13 << 4]
    s2, phi = sdf.quantize_fx(np.array([0]), phi, fmt)
    s3, phi = sdf.quantize_fx(np.array([0]), phi, fmt)
    assert (s2 + s3).tolist() == [13] and phi.tolist() == [0]      # the excess is sent later
    s, _ = sdf.quantize_fx(np.array([-(20 << 4)]), np.array([0]), fmt)
    assert s.tolist() == [-8]
    # phi itself saturates at phi_width
    fmt2 = sdf.SDFixedFormat.from_float(0.5, 0.5, spike_width=4, phi_frac=4, phi_width=6, a_width=12)
    _, phi = sdf.quantize_fx(big, np.array([0]), fmt2)
    assert phi.tolist() == [31]


@pytest.mark.parametrize("seed", SEEDS)
def test_fixed_accumulate_exact_and_saturating(seed):
    rng = np.random.default_rng(seed)
    s = rng.choice([-2, -1, 0, 0, 0, 1, 3], size=50)
    w = rng.integers(-128, 128, size=(50, 12))
    u, n = sdf.accumulate_fx(s, w, FMT)
    assert n == int(np.abs(s).sum())
    assert np.array_equal(u, s @ w), f"seed {seed}"
    # narrow accumulator: compare with the literal event loop
    fmt = sdf.SDFixedFormat.from_float(0.5, 0.5, acc_width=9)
    u, _ = sdf.accumulate_fx(s, w, fmt)
    lo, hi = signed_range(9)
    acc = np.zeros(12, dtype=np.int64)
    for i in np.flatnonzero(s):
        for _ in range(abs(int(s[i]))):
            acc = np.clip(acc + np.sign(s[i]) * w[i], lo, hi)
    assert np.array_equal(u, acc), f"seed {seed}: saturating accumulation differs from the event loop"
    assert u.max() <= hi and u.min() >= lo


@pytest.mark.parametrize("seed", SEEDS)
def test_fixed_decoder_error_bound(seed):
    rng = np.random.default_rng(seed)
    u = rng.integers(-2000, 2000, size=(400, 16))
    y = np.zeros(16, dtype=np.int64)
    y_fl = np.zeros(16)
    bound = 2.0 ** -FMT.y_frac / (1 - FMT.k_alpha)
    worst = 0.0
    for t in range(len(u)):
        y = sdf.decode_fx(u[t], y, FMT)
        y_fl = FMT.k_alpha * y_fl + FMT.k_beta * u[t] / (1 << FMT.w_frac)
        worst = max(worst, np.abs(y / (1 << FMT.y_frac) - y_fl).max())
    assert worst <= bound + 1e-12, f"seed {seed}: decoder error {worst} > bound {bound}"


def test_fixed_decoder_saturates():
    fmt = sdf.SDFixedFormat.from_float(0.5, 1.0, y_width=10)
    y = sdf.decode_fx(np.array([1 << 20, -(1 << 20)]), np.array([0, 0]), fmt)
    assert y.tolist() == [511, -512]


def test_fixed_layer_step_tracks_float_layer():
    rng = np.random.default_rng(7)
    n_in, n_out, T = 30, 8, 60
    w = rng.integers(-60, 60, size=(n_in, n_out))
    x = rng.integers(0, 1 << FMT.x_frac, size=(T, n_in))
    state = {"x_prev": np.zeros(n_in, dtype=np.int64), "phi": np.zeros(n_in, dtype=np.int64),
             "y": np.zeros(n_out, dtype=np.int64)}
    ys = []
    for t in range(T):
        y, s, n = sdf.layer_step_fx(x[t], state, w, FMT)
        ys.append(y / (1 << FMT.y_frac))
    # the float layer with the same quantized constants, fed the fixed encoder's spikes' source
    xf = x / (1 << FMT.x_frac)
    a = (xf - FMT.k_alpha * np.concatenate([np.zeros((1, n_in)), xf[:-1]])) * FMT.enc_gain
    s_fl, _ = sd.sigma_delta(a)
    y_fl = sd.pd_decode(s_fl @ (w / (1 << FMT.w_frac)), FMT.k_alpha, FMT.k_beta)
    # the layer output is a smoothed reconstruction of x @ w: both must track it
    target = xf @ (w / (1 << FMT.w_frac))
    scale = np.abs(target).max()
    assert np.abs(np.array(ys) - target)[10:].max() < 0.2 * scale, "seed 7: fixed layer does not track x @ w"
    assert np.abs(y_fl - target)[10:].max() < 0.2 * scale, "seed 7: float layer does not track x @ w"


def test_fixed_format_validation():
    with pytest.raises(ValueError, match="ka"):
        sdf.SDFixedFormat(ka=2000, ka_frac=10, gain=1, gain_frac=0, kb=1, kb_frac=10)
    with pytest.raises(ValueError, match="phi_width"):
        sdf.SDFixedFormat.from_float(0.5, 0.5, phi_width=4, phi_frac=8)
    with pytest.raises(ValueError, match="k_alpha"):
        sdf.SDFixedFormat.from_float(1.5, 0.5)
    assert sdf.to_fixed([0.5, -2.0, 1e9], 4, 8).tolist() == [8, -32, 127]
