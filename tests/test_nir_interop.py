"""Interop: a LIF network built and exported to NIR by snnTorch (``export_to_nir``), imported
by ``spikegate import``, run by both on the same input spikes and compared spike for spike.
The hidden layer is a ``Leaky`` or a ``Synaptic`` with ``alpha = 0`` (a ``CubaLIF`` with
``tau_syn = dt``: the same neuron); a ``Synaptic`` with a synaptic current is refused.

Needs the ``[interop]`` extra (torch, snntorch, nirtorch) and is marked ``interop``. Outside
CI a missing package skips the tests (with the reason); under CI (``CI`` set, as
``requires_iverilog`` in ``tests/conftest.py``) it fails them.

The discretisation (``spikegate.scripts.nir_io``): snnTorch's ``Leaky`` is ``mem[t] = beta
mem[t-1] + W x[t] - thr spk[t-1]``, ``spk[t] = mem[t] > thr``, exported as ``tau = dt / (1 -
beta)``, ``r = tau / dt``; spikegate's import takes ``beta = 1 - dt / tau`` with the same
``dt`` and scales ``W`` by ``r dt / tau / thr``, so its float golden model
(:func:`spikegate.golden.ssgd.lif_forward`) is the same recursion with the membrane one step
later (``v[t+1] = mem[t] / thr``). They differ only by the float32 rounding of ``tau`` and
``r`` in the NIR file (about ``1e-7`` relative): the hidden spikes are identical and the
membranes agree within ``1e-5`` threshold. The fixed-point network the hardware runs
(:func:`spikegate.golden.ssgd_train_fixed.hidden_forward`) uses ``beta_q / 256`` and int8
weights (``w_q / 256``): against the float model with those quantised parameters its
membrane errs by at most ``0.5 / (1 - beta_q / 256)`` LSB while the spikes agree
(:mod:`spikegate.golden.ssgd_fixed`), and a spike flips only where the float membrane is
within that bound of the threshold (measured: 94 % of the 256 spike trains identical over 41
steps, the error at most 2.6 LSB up to the first flip); against snnTorch's unquantised
network (beta 0.9 -> 230/256, weights to 1/256) 97.2 % of the spikes are equal and the
class (argmax of the summed readout) agrees on all 32 samples.
"""

import importlib
import math
import os

import numpy as np
import pytest

from spikegate.golden.ssgd import SSGDConfig, lif_forward, readout_forward
from spikegate.golden.ssgd_model_file import load_ssgd_model
from spikegate.golden.ssgd_train_fixed import hidden_forward, readout_forward_fixed
from spikegate.scripts.cli import main
from spikegate.scripts.nir_io import lif_from_nir

pytestmark = [pytest.mark.interop,
              pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]

_INSTALL = 'pip install -e ".[interop]" (torch from https://download.pytorch.org/whl/cpu)'


def _in_ci():
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _require(name):
    """The module ``name``: skipped when missing, except under CI, where that fails."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        if _in_ci():
            pytest.fail(f"{name} is not installed ({e}): CI (CI={os.environ['CI']!r}) runs the "
                        f"interop tests; {_INSTALL}", pytrace=False)
        pytest.skip(f"{name} not installed: {_INSTALL}")


N_IN, H, C, T, B = 16, 8, 3, 40, 32
BETA, BETA_R, THR = 0.9, 0.8, 1.25


def _hidden_layer(snn, torch, hidden):
    kw = dict(beta=torch.full((H,), BETA), threshold=torch.full((H,), THR), init_hidden=True)
    if hidden == "leaky":
        return snn.Leaky(**kw)
    # Synaptic with alpha = 0 (exported as CubaLIF with tau_syn = dt): the same neuron.
    alpha = 0.0 if hidden == "synaptic" else float(hidden.split("=")[1])
    return snn.Synaptic(alpha=torch.full((H,), alpha), **kw)


def _snntorch_run(tmp_path, hidden="leaky"):
    """Build, export and run the snnTorch network; returns the NIR file and
    ``(x, spk1, mem1, mem2)`` (``(T, B, ...)`` NumPy arrays)."""
    torch = _require("torch")
    snn = _require("snntorch")
    _require("nirtorch")
    export_nir = _require("snntorch.export_nir")
    nir = _require("nir")
    torch.manual_seed(0)
    fc1 = torch.nn.Linear(N_IN, H, bias=False)
    fc2 = torch.nn.Linear(H, C, bias=False)
    with torch.no_grad():
        fc1.weight.uniform_(-0.3, 0.6)                 # 0.48 threshold at most: fits int8
        fc2.weight.uniform_(-0.45, 0.45)
    # Per-neuron beta and threshold: snnTorch 1.0's export of a scalar beta writes a 0-d
    # tau that nir's type inference refuses.
    lif1 = _hidden_layer(snn, torch, hidden)
    lif2 = snn.Leaky(beta=torch.full((C,), BETA_R), threshold=torch.ones(C), init_hidden=True,
                     output=True, reset_mechanism="none")
    net = torch.nn.Sequential(fc1, lif1, fc2, lif2)
    graph = export_nir.export_to_nir(net, torch.zeros(N_IN))
    path = tmp_path / "snntorch.nir"
    nir.write(path, graph)
    rng = np.random.default_rng(1)
    x = (rng.random((T, B, N_IN)) < 0.3).astype(np.float32)
    lif1.reset_mem()
    lif2.reset_mem()
    spk1, mem1, mem2 = [], [], []
    with torch.no_grad():
        for t in range(T):
            s = lif1(fc1(torch.from_numpy(x[t])))
            spk1.append(s.numpy().copy())
            mem1.append(lif1.mem.numpy().copy())
            _, m2 = lif2(fc2(s))
            mem2.append(m2.numpy().copy())
    return path, x, np.array(spk1).astype(bool), np.array(mem1), np.array(mem2)


@pytest.mark.parametrize("hidden", ["leaky", "synaptic"])
def test_snntorch_network_through_nir_matches_the_golden_model_spike_for_spike(tmp_path,
                                                                               capsys, hidden):
    path, x, spk1, mem1, mem2 = _snntorch_run(tmp_path, hidden)
    nir = _require("nir")
    assert spk1.mean() > 0.05, "the test network must spike"
    # Import with the CLI (snnTorch's readout is a Leaky: its membrane, --lif-readout).
    assert main(["import", str(path), "-o", str(tmp_path / "m.npz"), "--lif-readout"]) == 0
    assert "sizes 16-8-3" in capsys.readouterr().out
    model = load_ssgd_model(tmp_path / "m.npz")
    imp = lif_from_nir(nir.read(path), lif_readout=True)
    np.testing.assert_array_equal(model.weights[0], imp.model.weights[0])
    assert abs(imp.beta - BETA) < 1e-6 and abs(imp.beta_readout - BETA_R) < 1e-6

    # Float golden model, one step later than snnTorch (its x[T] unused: pad one step).
    xs = np.concatenate([x, np.zeros((1, B, N_IN), np.float32)]).astype(np.float64)
    cfg = SSGDConfig(n_steps=T + 1, tau_mem=-1 / math.log(imp.beta),
                     tau_readout=-1 / math.log(imp.beta_readout))
    v, s = lif_forward(xs, imp.w_float[0], cfg)
    np.testing.assert_array_equal(s[1:].astype(bool), spk1)              # spike for spike
    np.testing.assert_allclose(v[1:], mem1 / THR, rtol=0, atol=1e-5)
    # The readout (snnTorch's mem2 has no (1 - beta_r) factor: undo golden's).
    o, _, _ = readout_forward(np.concatenate([s, s[-1:] * 0]),
                              imp.w_float[1] / (1 - imp.beta_readout), cfg.with_(n_steps=T + 2))
    np.testing.assert_allclose(o[2:], mem2, rtol=0, atol=1e-5)

    # The fixed-point network the hardware runs, against the float model with the same
    # quantised parameters: the same spikes, membranes within 0.5 / (1 - beta_q / 256) LSB.
    fmt = model.fmt.with_(n_steps=T + 1)
    vq, sq = hidden_forward(xs.astype(bool), model.weights[0], fmt)
    cfg_q = cfg.with_(tau_mem=-1 / math.log(fmt.beta_q / 256))
    vf, sf = lif_forward(xs, model.weights[0] / 256.0, cfg_q)
    bound = 0.5 / (1 - fmt.beta_q / 256) / 256 + 1e-12
    err = np.abs(vq / 256.0 - vf)
    differ = sq != sf.astype(bool)
    first = np.where(differ.any(axis=0), differ.argmax(axis=0), T + 1)     # (B, H)
    upto = np.arange(T + 1)[:, None, None] <= first[None]
    assert err[upto].max() <= bound
    # A spike that flips is one whose float membrane was within the bound of the threshold.
    bj = np.nonzero(first <= T)
    assert np.all(np.abs(vf[first[bj], *bj] - 1.0) <= bound)
    print(f"fixed vs float (quantised parameters): {1 - len(bj[0]) / first.size:.3f} of the "
          f"spike trains identical, membrane error <= {err[upto].max() * 256:.2f} LSB "
          f"(bound {bound * 256:.2f}) up to the first flip")
    # Against snnTorch's unquantised network (beta 0.9 -> 230/256, weights to 1/256).
    frac = (sq[1:] == spk1).mean()
    print(f"fixed vs snnTorch: {frac:.4f} of the (step, sample, neuron) spikes equal, "
          f"{np.all(sq[1:] == spk1, axis=0).mean():.3f} of the trains identical")
    assert frac >= 0.95, frac                                 # measured 0.972
    # The fixed readout from the fixed spikes: the class agrees with snnTorch's summed membrane.
    _, z = readout_forward_fixed(np.concatenate([sq, sq[-1:] & False]), model.weights[1],
                                 model.fmt.with_(n_steps=T + 2))
    same_class = (np.argmax(z, axis=1) == np.argmax(mem2.sum(axis=0), axis=1)).mean()
    print(f"fixed-point class = snnTorch's: {same_class:.3f}")
    assert same_class >= 0.8, same_class                      # measured 1.0


def test_snntorch_synaptic_current_is_refused_naming_the_node_and_field(tmp_path, capsys):
    path, *_ = _snntorch_run(tmp_path, "synaptic alpha=0.5")
    assert main(["import", str(path), "-o", str(tmp_path / "m.npz"), "--lif-readout"]) == 2
    err = capsys.readouterr().err
    assert "node '1'" in err and "tau_syn = 0.0002" in err and "synaptic current" in err, err
    assert not (tmp_path / "m.npz").exists()
