"""Tests of the fixed-point PD network (golden/pdnn_fixed.py) and its model file
(golden/pd_model_file.py): the forward pass is the steps of golden/sigma_delta_fixed.py
composed, frame after frame, with its state; the conversion of a trained float network tracks
the float network; the file format round-trips and refuses bad files naming what is wrong."""

import copy
import json
import time

import numpy as np
import pytest

from spikegate.golden import sigma_delta_fixed as sdf
from spikegate.golden.fixed import signed_range
from spikegate.golden.model_file import ModelFileError
from spikegate.golden.pd_model_file import (PD_FORMAT_VERSION, PDModelFile, load_pd_model,
                                            save_pd_model)
from spikegate.golden.pdnn_fixed import (STEPS, PDFixedNetwork, activate_fx, first_mismatch,
                                         from_float, weight_frac)
from spikegate.sim.pd_cases import digits_frames, digits_network, stress_case
from spikegate.sim.pd_mutants import MUTANTS

SEEDS = [0, 1, 2]
F = sdf.SDFixedFormat


def random_network(seed, sizes=(9, 7, 5, 4)):
    rng = np.random.default_rng(seed)
    fmts = [F.from_float(rng.uniform(0.5, 1.0), rng.uniform(0.1, 1.0), w_frac=6)
            for _ in sizes[1:]]
    ws = [rng.integers(-128, 128, (a, b)) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [rng.integers(-(1 << 14), 1 << 14, b) for b in sizes[1:]]
    return rng, PDFixedNetwork(ws, bs, fmts)


def literal_run(net, frames):
    """The network frame by frame with layer_step_fx and activate_fx: the obvious loop."""
    L = net.n_layers
    state = net.initial_state()
    rec = {k: [[] for _ in range(L)] for k in ("s", "u", "y", "z", "act")}
    klass = []
    for x in frames:
        for l, (w, b, fmt) in enumerate(zip(net.weights, net.biases, net.formats)):
            st = state[l]
            y, s, n = sdf.layer_step_fx(x, st, w, fmt)
            u, _ = sdf.accumulate_fx(s, w, fmt)
            z, act = activate_fx(y, b, fmt, net.formats[l + 1] if l + 1 < L else None)
            for k, v in (("s", s), ("u", u), ("y", y), ("z", z), ("act", act)):
                rec[k][l].append(v)
            x = act
        klass.append(int(np.argmax(z)))
    return {k: [np.array(v) for v in vs] for k, vs in rec.items()}, np.array(klass)


@pytest.mark.parametrize("seed", SEEDS)
def test_run_is_the_composed_steps(seed):
    rng, net = random_network(seed)
    frames = rng.integers(-(1 << 9), 1 << 9, (60, net.sizes[0]))
    frames[10] = 0
    frames[20:25] = frames[19]                     # repeated frames: few events
    g = net.run(frames)
    ref, klass = literal_run(net, frames)
    for k in ("s", "u", "y", "z", "act"):
        for l in range(net.n_layers):
            bad = np.argwhere(getattr(g, k)[l] != ref[k][l])
            assert not bad.size, f"seed {seed}: layer {l} {k} differs at (frame, unit) {tuple(bad[0])}"
    assert np.array_equal(g.klass, klass), f"seed {seed}: classes"
    for l in range(net.n_layers):
        assert np.array_equal(g.events[:, l], (ref["s"][l] != 0).sum(1)), f"seed {seed}"
        assert np.array_equal(g.spikes[:, l], np.abs(ref["s"][l]).sum(1)), f"seed {seed}"
    assert g.events[20:25].sum() < g.events[:5].sum(), f"seed {seed}: repeated frames send as much"


@pytest.mark.parametrize("seed", SEEDS)
def test_run_in_pieces_equals_the_whole(seed):
    rng, net = random_network(seed)
    frames = rng.integers(-(1 << 9), 1 << 9, (40, net.sizes[0]))
    whole = net.run(frames)
    a = net.run(frames[:17])
    saved = [{k: v.copy() for k, v in st.items()} for st in a.state]
    b = net.run(frames[17:], state=a.state)
    for st, sv in zip(a.state, saved):
        assert all(np.array_equal(st[k], sv[k]) for k in st), f"seed {seed}: run changed its state"
    joined = type(whole).concatenate([a, b])
    assert first_mismatch(joined, whole, f"seed {seed}") is None
    assert first_mismatch(whole.frames(17), b, f"seed {seed}") is None
    empty = net.run(frames[:0])
    assert len(empty) == 0 and empty.state[0]["y"].shape == (net.sizes[1],)


def test_activate_rounds_half_up_and_saturates():
    fmt = F.from_float(0.5, 0.5, y_frac=4, y_width=12)
    nxt = F.from_float(0.5, 0.5, x_frac=2, x_width=6)
    y = np.array([0, 2, 1, 6, -3, 10 << 4, 3])      # shift by 2: 2 -> 0.5 -> 1, 6 -> 1.5 -> 2
    b = np.array([0, 0, 0, 0, 0, 0, -20])
    z, act = activate_fx(y, b, fmt, nxt)
    assert z.tolist() == [0, 2, 1, 6, -3, 160, -17]
    assert act.tolist() == [0, 1, 0, 2, 0, 31, 0]          # 160 >> 2 = 40 saturates at 31
    z2, act2 = activate_fx(y, b, fmt, None)
    assert act2.tolist() == z2.tolist() == z.tolist()


def test_weight_frac():
    assert weight_frac(np.array([0.5, -0.99])) == 7        # 0.99 * 128 = 126.7 -> 127
    assert weight_frac(np.array([1.0])) == 6               # 128 does not fit, 64 does
    assert weight_frac(np.array([-1.0])) == 7              # -128 fits
    assert weight_frac(np.array([300.0])) == 0             # saturates at the lowest
    assert weight_frac(np.array([300.0]), lowest=2) == 2
    assert weight_frac(np.zeros(3)) == 16


def test_network_checks():
    fmt = F.from_float(0.5, 0.5)
    w, b = np.zeros((3, 2), np.int64), np.zeros(2, np.int64)
    with pytest.raises(ValueError, match="at least one"):
        PDFixedNetwork([], [], [])
    with pytest.raises(ValueError, match="2 bias vectors"):
        PDFixedNetwork([w], [b, b], [fmt])
    with pytest.raises(ValueError, match=r"weights\[0\] has values in \[0, 200\]"):
        PDFixedNetwork([w + np.array([0, 200])], [b], [fmt])
    with pytest.raises(ValueError, match="layer 1 has 3 inputs, expected 2"):
        PDFixedNetwork([w, w], [b, b], [fmt, fmt])
    with pytest.raises(TypeError, match="integers"):
        PDFixedNetwork([w * 0.5], [b], [fmt])
    with pytest.raises(ValueError, match="y_frac 2 is below layer 1's x_frac 8"):
        PDFixedNetwork([w, np.zeros((2, 2), np.int64)], [b, b],
                       [F.from_float(0.5, 0.5, y_frac=2, kb_frac=12), fmt])
    net = PDFixedNetwork([w], [b], [fmt])
    with pytest.raises(ValueError, match=r"values in \[0, 40000\]"):
        net.run(np.array([[0, 40000, 0]]))
    with pytest.raises(ValueError, match="shape"):
        net.run(np.zeros((4, 2), np.int64))


def test_first_mismatch_names_frame_layer_quantity_neuron():
    net, frames = stress_case(3, T=30)
    g = net.run(frames)
    h = net.run(frames)
    h.u[1] = h.u[1].copy()
    h.u[1][12, 4] += 1
    h.act[0] = h.act[0].copy()
    h.act[0][20, 0] += 1
    assert first_mismatch(h, g, "ctx") == f"ctx: frame 12: layer 1 u[4] {g.u[1][12, 4] + 1}, expected {g.u[1][12, 4]}"
    h.klass = h.klass.copy()
    h.klass[5] += 1
    assert first_mismatch(h, g).startswith("frame 5: klass")
    assert "frames" in first_mismatch(g.frames(0, 10), g)


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_stress_case_exposes_every_mutant(name):
    """The stress sequence (which the hardware tests run) tells each mutant from the
    specification: a hardware that equals the specification there is not that mutant."""
    net, frames = stress_case(7)
    assert first_mismatch(net.run(frames, steps=MUTANTS[name]), net.run(frames)) is not None, \
        f"seed 7: the mutant '{name}' computes the same trace"


def test_stress_case_saturates_every_register():
    net, frames = stress_case(7)
    g = net.run(frames)
    for l, fmt in enumerate(net.formats):
        for name, vals, width in (("u", g.u[l], fmt.acc_width), ("y", g.y[l], fmt.y_width),
                                  ("s", g.s[l], fmt.spike_width)):
            assert np.isin(signed_range(width), vals).all(), f"seed 7: layer {l} {name} never saturates"
    assert signed_range(net.formats[1].x_width)[1] in g.act[0], "seed 7: activation never saturates"
    assert (g.events == 0).any(axis=1).any(), "seed 7: no frame without events in some layer"


# ------------------------------------------------------------------------------------------
# conversion from the trained float network
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    return digits_network()


def test_converted_network_tracks_the_float_network(digits):
    fixed, fnet = digits
    frames, labels = digits_frames(fixed, "shuffled", 360)
    g = fixed.run(frames)
    from spikegate.golden.data import load_dataset
    ds = load_dataset("digits")
    order = np.random.default_rng(0).permutation(360)        # digits_frames' shuffled order
    pred, _ = fnet.predict(ds.x_test[order])
    acc_fx, acc_fl = (g.klass == labels).mean(), (pred == labels).mean()
    assert acc_fl > 0.85, f"seed 1: the float network is not trained ({acc_fl:.3f})"
    assert abs(acc_fx - acc_fl) <= 0.02, f"seed 1: fixed {acc_fx:.3f} vs float {acc_fl:.3f}"
    assert (g.klass == pred).mean() >= 0.93, "seed 1: fixed and float classes disagree"
    # the pre-activations z of both, frame by frame from the same zero state (the float
    # network's own spikes: the two spike trains differ where a rounding tips a spike)
    run = copy.deepcopy(fnet)
    for layer in run.layers:
        layer.reset_state()
    z_float = [[], []]
    for x in ds.x_test[order]:
        for l, z in enumerate(run.forward(x)[0]):
            z_float[l].append(z)
    for l in range(2):
        zf, zx = np.array(z_float[l]), g.z[l] / (1 << fixed.formats[l].y_frac)
        r = np.corrcoef(zf.ravel(), zx.ravel())[0, 1]
        assert r > 0.97, f"seed 1: layer {l}: fixed and float z correlate by {r:.4f}"
        assert np.abs(zf - zx).mean() < 0.25 * np.abs(zf).mean(), f"seed 1: layer {l} z"
    # the quantized gains and weights are the float ones within their rounding
    for l, (fmt, layer) in enumerate(zip(fixed.formats, fnet.layers)):
        assert abs(fmt.k_alpha - layer.fwd.k_alpha) <= 2.0 ** -(fmt.ka_frac + 1)
        assert abs(fmt.k_beta - layer.fwd.k_beta) <= 2.0 ** -(fmt.kb_frac + 1)
        assert np.abs(fixed.weights[l] / (1 << fmt.w_frac) - layer.w).max() <= 2.0 ** -(fmt.w_frac + 1)
        assert np.abs(fixed.weights[l]).max() >= 64, f"layer {l}: weights use less than 7 bits"


def test_temporal_frames_send_fewer_spikes(digits):
    fixed, _ = digits
    temporal = fixed.run(digits_frames(fixed, "temporal", 360)[0])
    shuffled = fixed.run(digits_frames(fixed, "shuffled", 360)[0])
    assert temporal.spikes.sum() < 0.7 * shuffled.spikes.sum(), (
        f"temporal {temporal.spikes.sum()} vs shuffled {shuffled.spikes.sum()} row additions")


def test_run_is_fast():
    """Vectorized over units and frames where the state allows: 784-200-10 on 200 frames."""
    rng = np.random.default_rng(4)
    fmt = F.from_float(1 / 1.1, 0.3)
    net = PDFixedNetwork([rng.integers(-40, 40, (784, 200)), rng.integers(-40, 40, (200, 10))],
                         [np.zeros(200, np.int64), np.zeros(10, np.int64)], [fmt, fmt])
    x = rng.integers(0, 256, (200, 784))
    t = time.perf_counter()
    net.run(x)
    assert time.perf_counter() - t < 10.0


# ------------------------------------------------------------------------------------------
# model file
# ------------------------------------------------------------------------------------------

def _model(seed=0):
    rng = np.random.default_rng(seed)
    ws = [rng.normal(0, 0.3, (6, 5)), rng.normal(0, 0.3, (5, 3))]
    bs = [rng.normal(0, 0.1, 5), rng.normal(0, 0.1, 3)]
    return PDModelFile.from_float(ws, bs, [0.9, 0.8], [0.4, 0.3], training={"seed": seed})


def test_model_file_round_trip(tmp_path):
    m = _model()
    save_pd_model(tmp_path / "pd.npz", m)
    r = load_pd_model(tmp_path / "pd.npz")
    assert r.sizes == (6, 5, 3) and r.training == {"seed": 0}
    assert r.network.formats == m.network.formats
    for a, b in zip(r.network.weights + r.network.biases, m.network.weights + m.network.biases):
        assert np.array_equal(a, b)
    assert r.k_betas == m.k_betas
    x = m.network.quantize_input(np.random.default_rng(1).random((20, 6)))
    assert first_mismatch(r.network.run(x), m.network.run(x)) is None
    assert m.network.formats[0].k_alpha == pytest.approx(0.9, abs=1e-3)
    with np.load(tmp_path / "pd.npz") as z:
        meta = json.loads(str(z["meta"]))
    assert meta["algorithm"] == "pdnn" and meta["version"] == PD_FORMAT_VERSION


def _rewrite(path, out, meta_change=None, drop=(), add=None, arrays_change=None):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    if meta_change:
        meta_change(meta)
    arrays["meta"] = np.array(json.dumps(meta))
    for k in drop:
        arrays.pop(k)
    arrays.update(add or {})
    arrays.update(arrays_change or {})
    np.savez(out, **arrays)
    return out


@pytest.mark.parametrize("change, message", [
    (dict(meta_change=lambda m: m.update(version=2)), "PD format version is 2, expected 1"),
    (dict(meta_change=lambda m: m.update(algorithm="ttfs")), "a TTFS model"),
    (dict(meta_change=lambda m: m.update(format="other")), "format is 'other'"),
    (dict(meta_change=lambda m: m.update(sizes=[6, 0, 3])), "sizes is"),
    (dict(meta_change=lambda m: m["formats"][0].pop("ka")), "format of layer 0"),
    (dict(meta_change=lambda m: m["formats"][1].update(ka=5000)), "bad format of layer 1: ka"),
    (dict(meta_change=lambda m: m.update(gains=[])), "gains is"),
    (dict(drop=["w_int_1"]), r"missing arrays \['w_int_1'\]"),
    (dict(add={"extra": np.zeros(2)}), r"unexpected arrays \['extra'\]"),
    (dict(arrays_change={"w_int_0": np.zeros((5, 5), np.int8)}), "w_int_0 has shape"),
    (dict(arrays_change={"b_int_0": np.zeros(5, np.int64)}), "b_int_0 has dtype int64"),
    (dict(arrays_change={"b_int_1": np.full(3, 1 << 30, np.int32)}), r"biases\[1\] has values"),
    (dict(arrays_change={"w_float_0": np.full((6, 5), np.nan, np.float32)}), "finite"),
])
def test_model_file_refuses_bad_files(tmp_path, change, message):
    save_pd_model(tmp_path / "ok.npz", _model())
    bad = _rewrite(tmp_path / "ok.npz", tmp_path / "bad.npz", **change)
    with pytest.raises(ModelFileError, match=message) as e:
        load_pd_model(bad)
    assert "bad.npz" in str(e.value)


def test_model_file_refuses_corrupt_and_missing(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_pd_model(tmp_path / "none.npz")
    (tmp_path / "t.npz").write_bytes(b"hello")
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        load_pd_model(tmp_path / "t.npz")
    save_pd_model(tmp_path / "ok.npz", _model())
    raw = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        load_pd_model(tmp_path / "cut.npz")


def test_ttfs_reader_refuses_a_pd_file(tmp_path):
    from spikegate.golden.model_file import load_model
    save_pd_model(tmp_path / "pd.npz", _model())
    with pytest.raises(ModelFileError, match="algorithm is 'pdnn', expected 'ttfs'"):
        load_model(tmp_path / "pd.npz")


def test_save_refuses_inconsistent_models(tmp_path):
    m = _model()
    m.k_betas = m.k_betas[:1]
    with pytest.raises(ModelFileError, match="k_betas"):
        save_pd_model(tmp_path / "x.npz", m)
    with pytest.raises(ModelFileError, match="does not exist"):
        save_pd_model(tmp_path / "no" / "x.npz", _model())
    m = _model()
    m.training = {"bad": object()}
    with pytest.raises(ModelFileError, match="JSON"):
        save_pd_model(tmp_path / "x.npz", m)
    assert not list(tmp_path.iterdir())
    with pytest.raises(TypeError, match="PDModelFile"):
        save_pd_model(tmp_path / "x.npz", m.network)


def test_from_float_checks():
    with pytest.raises(ValueError, match="k_betas"):
        from_float([np.zeros((2, 2))], [np.zeros(2)], [0.5], [])
    with pytest.raises(TypeError, match="w_frac"):
        from_float([np.zeros((2, 2))], [np.zeros(2)], [0.5], [0.5], w_frac=3)
    assert STEPS.encode is sdf.encode_fx
