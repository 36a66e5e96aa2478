"""``spikegate import`` of feed-forward LIF graphs from other libraries into SSGD model files,
``spikegate export`` of SSGD model files (round trip to the identical file), and every
refusal of what the SSGD model cannot represent."""

import math

import nir
import numpy as np
import pytest

from spikegate.golden.ssgd import SSGDConfig, lif_forward
from spikegate.golden.ssgd_model_file import SSGDModelFile, load_ssgd_model, save_ssgd_model
from spikegate.golden.ssgd_train_fixed import TrainFormat, hidden_forward
from spikegate.scripts.cli import main
from spikegate.scripts.nir_io import DEFAULT_DT, NIRFileError, lif_from_nir, to_nir

DT = DEFAULT_DT


def _lif(n, beta=0.9, thr=1.0, **kw):
    tau = DT / (1.0 - np.full(n, beta))
    fields = dict(tau=tau, r=tau / DT, v_leak=np.zeros(n), v_threshold=np.full(n, thr),
                  v_reset=np.zeros(n))
    fields.update(kw)
    return nir.LIF(**fields)


def _li(n, beta=0.8, **kw):
    tau = DT / (1.0 - np.full(n, beta))
    fields = dict(tau=tau, r=tau / DT, v_leak=np.zeros(n))
    fields.update(kw)
    return nir.LI(**fields)


def _graph(w0, w1, hidden=None, readout=None, extra_edges=(), type_check=True, **nodes):
    """``input -> fc1 -> lif -> fc2 -> li -> output`` (NIR weights ``(n_out, n_in)``)."""
    H, n_in = w0.shape
    C = w1.shape[0]
    g = {"input": nir.Input(input_type=np.array([n_in])),
         "fc1": nir.Linear(weight=np.asarray(w0, np.float32)),
         "lif": hidden if hidden is not None else _lif(H),
         "fc2": nir.Linear(weight=np.asarray(w1, np.float32)),
         "li": readout if readout is not None else _li(C),
         "output": nir.Output(output_type=np.array([C]))}
    g.update(nodes)
    edges = [("input", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("fc2", "li"), ("li", "output")]
    return nir.NIRGraph(nodes=g, edges=edges + list(extra_edges), type_check=type_check)


def _random_weights(rng, n_in=6, H=5, C=3, scale=0.3):
    return rng.uniform(-scale, scale, (H, n_in)), rng.uniform(-scale, scale, (C, H))


def _nir_reference(w0, tau, r, thr, x, dt=DT):
    """NIR's LIF, ``tau dv/dt = -v + r I``, by forward Euler, reset by subtraction of the
    threshold: written here from the NIR definition, not from spikegate's code."""
    T, n_in = x.shape
    v = np.zeros(w0.shape[0])
    spikes = np.zeros((T, w0.shape[0]), dtype=bool)
    for t in range(T):
        reset = v > thr                                 # the previous step's spike
        v = v + dt / tau * (-v + r * (w0 @ x[t])) - reset * thr
        spikes[t] = v > thr
    return spikes


# ------------------------------------------------------------------------ the mapping

def test_hand_built_graph_gives_the_expected_spikes():
    # Neuron 0 gets 1.6 per step of input 0 against a threshold of 4: 0.4 V_th, beta 0.9:
    # v = 0.4, 0.76, 1.084 -> its first spike is the third step after the input starts.
    w0 = np.array([[1.6, 0.0], [0.0, -0.8], [0.8, 0.8]])
    w1 = np.array([[0.25, 0.0, 0.125], [0.0, 0.25, -0.125]])
    imp = lif_from_nir(_graph(w0, w1, hidden=_lif(3, thr=4.0)))
    np.testing.assert_allclose(imp.w_float[0], (w0 / 4.0).T, rtol=1e-6)   # r dt / tau = 1
    np.testing.assert_allclose(imp.w_float[1], w1.T, rtol=1e-6)
    assert imp.beta == pytest.approx(0.9, abs=1e-9)
    assert imp.beta_readout == pytest.approx(0.8, abs=1e-9)
    m = imp.model
    assert m.sizes == [2, 3, 2]
    assert (m.fmt.beta_q, m.fmt.beta_r_q) == (230, 205)          # round(0.9 256), round(0.8 256)
    np.testing.assert_array_equal(m.weights[0], [[102, 0, 51], [0, -51, 51]])  # rint(256 w / 4)
    np.testing.assert_array_equal(m.weights[1], [[64, 0], [0, 64], [32, -32]])
    T = 12
    x = np.zeros((T, 1, 2))
    x[:, 0, 0] = 1.0
    x[3:, 0, 1] = 1.0
    cfg = SSGDConfig(n_steps=T, tau_mem=-1 / math.log(imp.beta))
    v, s = lif_forward(x, imp.w_float[0], cfg)
    # spikegate's step t + 1 is the NIR (snnTorch) step t.
    ref = _nir_reference(w0, DT / 0.1, 10.0, 4.0, x[:, 0])
    np.testing.assert_array_equal(s[1:, 0].astype(bool), ref[:T - 1])
    assert s[1:4, 0, 0].tolist() == [0, 0, 1]                  # 0.4, 0.76, 1.084
    assert not s[:, 0, 1].any()                                # negative weight only
    # The fixed-point network the hardware runs: the same spikes here (margins > 5 LSB).
    fmt = m.fmt.with_(n_steps=T)
    _, s_fixed = hidden_forward(x.astype(bool), m.weights[0], fmt)
    np.testing.assert_array_equal(s_fixed, s.astype(bool))


def test_weights_scale_by_r_dt_over_tau_and_the_threshold():
    rng = np.random.default_rng(3)
    w0, w1 = _random_weights(rng, scale=0.2)
    tau = np.full(5, 2e-3)                                     # beta = 1 - 1e-4 / 2e-3 = 0.95
    r = np.array([5.0, 10.0, 20.0, 30.0, 40.0])               # per-neuron r and thresholds
    thr = np.array([0.5, 1.0, 2.0, 4.0, 8.0])
    hidden = nir.LIF(tau=tau, r=r, v_leak=np.zeros(5), v_threshold=thr, v_reset=np.zeros(5))
    imp = lif_from_nir(_graph(w0, w1, hidden=hidden))
    expected = (w0 * (r * DT / tau / thr)[:, None]).T
    np.testing.assert_allclose(imp.w_float[0], expected, rtol=1e-6)
    assert imp.beta == pytest.approx(0.95)
    assert imp.model.fmt.beta_q == round(0.95 * 256)
    np.testing.assert_array_equal(imp.model.weights[0], np.rint(imp.w_float[0] * 256))
    # An Affine with a zero bias is the Linear.
    imp_a = lif_from_nir(_graph(w0, w1, hidden=hidden, fc1=nir.Affine(weight=w0,
                                                                      bias=np.zeros(5))))
    np.testing.assert_array_equal(imp_a.model.weights[0], imp.model.weights[0])
    # Another dt: the same graph is another discretisation.
    imp2 = lif_from_nir(_graph(w0, w1, hidden=hidden), dt=2e-4)
    assert imp2.beta == pytest.approx(0.9)
    np.testing.assert_allclose(imp2.w_float[0], 2 * expected, rtol=1e-6)


def test_cubalif_with_an_instantaneous_synapse_is_a_lif_scaled_by_w_in():
    rng = np.random.default_rng(4)
    w0, w1 = _random_weights(rng, scale=0.1)
    tau = np.full(5, DT / 0.1)
    hidden = nir.CubaLIF(tau_syn=np.full(5, DT), tau_mem=tau, r=tau / DT, v_leak=np.zeros(5),
                         v_threshold=np.ones(5), v_reset=np.zeros(5), w_in=np.full(5, 2.0))
    imp = lif_from_nir(_graph(w0, w1, hidden=hidden))
    np.testing.assert_allclose(imp.w_float[0], 2.0 * w0.T, rtol=1e-6)
    assert imp.beta == pytest.approx(0.9)


def test_lif_readout_only_with_the_option_and_saturation_only_with_its_option(tmp_path, capsys):
    rng = np.random.default_rng(5)
    w0, w1 = _random_weights(rng)
    graph = _graph(w0, w1, readout=_lif(3, beta=0.8, thr=7.0))
    with pytest.raises(NIRFileError, match="'li'.*LIF readout.*--lif-readout"):
        lif_from_nir(graph)
    imp = lif_from_nir(graph, lif_readout=True)
    np.testing.assert_allclose(imp.w_float[1], w1.T, rtol=1e-6)    # its threshold ignored
    assert imp.model.training["readout"].startswith("LIF membrane")
    big = w0.copy()
    big[1, 2] = 0.75                                              # 192 LSB > 127
    with pytest.raises(NIRFileError, match=r"'fc1'.*1 of the weight's 30.*0\.75.*--saturate"):
        lif_from_nir(_graph(big, w1))
    imp = lif_from_nir(_graph(big, w1), saturate=True)
    assert imp.n_saturated == 1 and imp.model.weights[0][2, 1] == 127


def test_cli_imports_a_lif_graph(tmp_path, capsys):
    rng = np.random.default_rng(6)
    w0, w1 = _random_weights(rng, scale=0.2)
    nir.write(tmp_path / "lif.nir", _graph(w0, w1))
    assert main(["import", str(tmp_path / "lif.nir"), "-o", str(tmp_path / "m.npz")]) == 0
    out = capsys.readouterr().out
    assert "ssgd model, sizes 6-5-3" in out and "230/256" in out and "205/256" in out
    m = load_ssgd_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(m.weights[0], np.rint(w0.T.astype(np.float32) * 256))
    assert m.fmt.beta_q == 230 and m.training["dt"] == DT
    assert main(["import", str(tmp_path / "lif.nir"), "-o", str(tmp_path / "m2.npz"),
                 "--dt", "2e-4"]) == 0
    assert load_ssgd_model(tmp_path / "m2.npz").fmt.beta_q == round(0.8 * 256)


# ------------------------------------------------------------------------ export, round trip

def _ssgd(rng, fmt=None):
    fmt = fmt or TrainFormat(tau_mem=7.5, tau_readout=12.0, n_steps=40)
    return SSGDModelFile((rng.integers(-128, 128, (16, 8)), rng.integers(-128, 128, (8, 4))),
                         fmt, {"seed": 11, "note": "test"})


def _same_file(a, b):
    with np.load(a, allow_pickle=False) as za, np.load(b, allow_pickle=False) as zb:
        assert sorted(za.files) == sorted(zb.files)
        for k in za.files:
            assert za[k].dtype == zb[k].dtype and np.array_equal(za[k], zb[k]), k


def test_ssgd_round_trip_gives_the_identical_model_file(tmp_path):
    src = tmp_path / "ssgd.npz"
    save_ssgd_model(src, _ssgd(np.random.default_rng(8)))
    assert main(["export", str(src), str(tmp_path / "net.nir")]) == 0
    assert main(["import", str(tmp_path / "net.nir"), "-o", str(tmp_path / "back.npz")]) == 0
    _same_file(src, tmp_path / "back.npz")


def test_ssgd_graph_is_lif_and_li_with_the_hardware_parameters():
    model = _ssgd(np.random.default_rng(9))
    graph = to_nir(model)
    kinds = [type(graph.nodes[n]).__name__ for n in
             ("input", "linear_0", "neuron_0", "linear_1", "readout_1", "output")]
    assert kinds == ["Input", "Linear", "LIF", "Linear", "LI", "Output"]
    np.testing.assert_array_equal(graph.nodes["linear_0"].weight, model.weights[0].T / 256)
    np.testing.assert_array_equal(graph.nodes["linear_0"].metadata["w_int8"], model.weights[0])
    lif = graph.nodes["neuron_0"]
    np.testing.assert_allclose(1 - DT / lif.tau, model.fmt.beta_q / 256, rtol=1e-12)
    np.testing.assert_allclose(lif.r * DT / lif.tau, 1.0, rtol=1e-12)
    np.testing.assert_array_equal(lif.v_threshold, 1.0)
    li = graph.nodes["readout_1"]
    np.testing.assert_allclose(1 - DT / li.tau, model.fmt.beta_r_q / 256, rtol=1e-12)
    # A reader without spikegate's metadata gets the same network back: the foreign path
    # reads the hardware's decays and weights.
    graph.metadata.pop("spikegate_meta")
    imp = lif_from_nir(graph)
    np.testing.assert_array_equal(imp.model.weights[0], model.weights[0])
    np.testing.assert_array_equal(imp.model.weights[1], model.weights[1])
    assert (imp.model.fmt.beta_q, imp.model.fmt.beta_r_q) == (model.fmt.beta_q,
                                                              model.fmt.beta_r_q)


def test_a_damaged_ssgd_graph_is_refused():
    graph = to_nir(_ssgd(np.random.default_rng(10)))
    graph.nodes["linear_1"].weight = graph.nodes["linear_1"].weight * 2
    from spikegate.scripts.nir_io import from_nir
    with pytest.raises(NIRFileError, match="'linear_1'.*disagrees with its metadata w_int8"):
        from_nir(graph)


# ------------------------------------------------------------------------ refusals

def _w(rng=None):
    return _random_weights(rng or np.random.default_rng(12))


def _two_hidden():
    w0, w1 = _w()
    g = _graph(w0, np.ones((5, 5)) * 0.1, type_check=False,
               fc3=nir.Linear(weight=np.full((3, 5), 0.1, np.float32)), lif2=_lif(5),
               li=_li(3))
    g.edges[:] = [("input", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("fc2", "lif2"),
                  ("lif2", "fc3"), ("fc3", "li"), ("li", "output")]
    return g


def _recurrent():
    w0, w1 = _w()
    return _graph(w0, w1, type_check=False,
                  rec=nir.Linear(weight=np.eye(5, dtype=np.float32)),
                  extra_edges=[("lif", "rec"), ("rec", "lif")])


def _subgraph():
    w0, w1 = _w()
    sub = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([5])), "lif": _lif(5),
                              "output": nir.Output(output_type=np.array([5]))},
                       edges=[("input", "lif"), ("lif", "output")])
    return _graph(w0, w1, hidden=sub, type_check=False)


REFUSALS = [
    ("taus differ", lambda w0, w1: _graph(w0, w1, hidden=_lif(
        5, tau=np.array([1e-3, 1e-3, 1e-3, 1e-3, 2e-3]))), ["'lif'", "tau differs", "one beta"]),
    ("v_leak", lambda w0, w1: _graph(w0, w1, hidden=_lif(5, v_leak=np.full(5, 0.1))),
     ["'lif'", "v_leak = 0.1"]),
    ("readout v_leak", lambda w0, w1: _graph(w0, w1, readout=_li(3, v_leak=np.full(3, -0.2))),
     ["'li'", "v_leak = -0.2"]),
    ("bias", lambda w0, w1: _graph(w0, w1, fc1=nir.Affine(weight=w0, bias=np.full(5, 0.25))),
     ["'fc1'", "bias is not zero", "0.25"]),
    ("v_reset", lambda w0, w1: _graph(w0, w1, hidden=_lif(5, v_reset=np.full(5, -1.0))),
     ["'lif'", "v_reset = -1", "subtracting the threshold"]),
    ("v_threshold", lambda w0, w1: _graph(w0, w1, hidden=_lif(5, v_threshold=np.zeros(5))),
     ["'lif'", "v_threshold = 0"]),
    ("beta quantises to 0", lambda w0, w1: _graph(w0, w1, hidden=_lif(5, beta=0.001)),
     ["'lif'", "tau", "quantises to 0/256"]),
    ("beta quantises to 1", lambda w0, w1: _graph(w0, w1, readout=_li(3, beta=0.999)),
     ["'li'", "tau", "quantises to 256/256"]),
    ("dt >= tau", lambda w0, w1: _graph(w0, w1, hidden=_lif(5, tau=np.full(5, 5e-5))),
     ["'lif'", "1 - dt/tau = -1", "not in (0, 1)"]),
    ("IF", lambda w0, w1: _graph(w0, w1, hidden=nir.IF(r=np.ones(5), v_threshold=np.ones(5))),
     ["'lif'", "IF", "beta = 1"]),
    ("LI hidden", lambda w0, w1: _graph(w0, w1, hidden=_li(5)), ["'lif'", "LI", "hidden"]),
    ("CubaLIF synapse", lambda w0, w1: _graph(w0, w1, hidden=nir.CubaLIF(
        tau_syn=np.full(5, 5e-4), tau_mem=np.full(5, 1e-3), r=np.full(5, 10.0),
        v_leak=np.zeros(5), v_threshold=np.ones(5))), ["'lif'", "tau_syn = 0.0005", "0.8"]),
    ("unsupported node", lambda w0, w1: _graph(w0, w1, type_check=False, fc1=nir.Conv1d(
        input_shape=6, weight=np.ones((5, 1, 1)), stride=1, padding=0, dilation=1, groups=1,
        bias=np.zeros(5))), ["'fc1'", "Conv1d", "unsupported node type"]),
    ("two hidden layers", lambda w0, w1: _two_hidden(), ["2 hidden layers", "'lif2'",
                                                         "one hidden layer"]),
    ("recurrent edge", lambda w0, w1: _recurrent(), ["recurrent edge", "'rec'"]),
    ("subgraph", lambda w0, w1: _subgraph(), ["'lif'", "NIRGraph", "RLeaky"]),
    ("no readout", lambda w0, w1: nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([6])),
               "fc1": nir.Linear(weight=np.asarray(w0, np.float32)), "lif": _lif(5),
               "output": nir.Output(output_type=np.array([5]))},
        edges=[("input", "fc1"), ("fc1", "lif"), ("lif", "output")]),
     ["one weight layer", "readout"]),
    ("weight shapes", lambda w0, w1: _graph(w0, np.ones((3, 4)) * 0.1, type_check=False),
     ["'fc2'", "(3, 4)", "(3, 5)"]),
    ("input size", lambda w0, w1: _graph(w0, w1, type_check=False,
                                         input=nir.Input(input_type=np.array([7]))),
     ["'input'", "[7]", "expected [6]"]),
    ("output size", lambda w0, w1: _graph(w0, w1, type_check=False,
                                          output=nir.Output(output_type=np.array([4]))),
     ["'output'", "[4]", "expected [3]"]),
]


@pytest.mark.parametrize("make, needles", [r[1:] for r in REFUSALS],
                         ids=[r[0] for r in REFUSALS])
def test_refuses_what_the_ssgd_model_cannot_represent(make, needles):
    w0, w1 = _w()
    with pytest.raises(NIRFileError) as e:
        lif_from_nir(make(w0, w1), "g.nir")
    for needle in needles:
        assert needle in str(e.value), str(e.value)


def test_refusal_through_the_cli_writes_nothing(tmp_path, capsys):
    w0, w1 = _w()
    nir.write(tmp_path / "g.nir", _graph(w0, w1, hidden=_lif(5, v_leak=np.full(5, 0.1))))
    assert main(["import", str(tmp_path / "g.nir"), "-o", str(tmp_path / "out.npz")]) == 2
    err = capsys.readouterr().err
    assert "'lif'" in err and "v_leak" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.nir"]
    assert main(["import", str(tmp_path / "g.nir"), "--dt", "0"]) == 2
    assert "--dt" in capsys.readouterr().err
