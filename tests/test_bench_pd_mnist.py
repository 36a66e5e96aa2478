"""``scripts/bench_pd_mnist``: the MNIST benchmark of the PD network, on digits and in seconds.

The hardware simulation is replaced by the golden model and its timing model
(``simulate_pd_hardware`` patched; the Verilator path is the one ``tests/test_run_pdnn.py``
runs for real), so the tests check the script's own logic: training with a validation split,
the two test orders, the frame-by-frame comparison, the cycle fits and when the timing model's
cycles are reported, the exit code and the refusals.
"""

import json

import numpy as np
import pytest

from spikegate.golden.data import load_dataset
from spikegate.golden.pd_model_file import load_pd_model
from spikegate.golden.temporal import temporal_order
from spikegate.hdl.pd_classifier import expected_cycles
from spikegate.scripts import bench_pd_mnist as bench
from spikegate.sim.pd_run import PDHardwareResult

TINY = ["--dataset", "digits", "--hidden", "8", "--epochs", "2", "--validation", "200",
        "--test-limit", "40", "--hw-frames", "12", "--lanes", "4"]


def _fake_simulation(monkeypatch, corrupt=None, slow=None):
    """The golden model as the hardware; ``corrupt = (frame, layer)`` changes one accumulator
    of that frame, ``slow`` adds a cycle to that frame."""
    calls = []

    def fake(net, frames, lanes, **kwargs):
        calls.append(len(frames))
        g = net.run(frames)
        cycles = expected_cycles(g, net.sizes, lanes)
        u = [a.copy() for a in g.u]
        if corrupt is not None and len(calls) == 1:
            t, l = corrupt
            u[l][t, 1] += 1
        if slow is not None and len(calls) == 1:
            cycles[slow] += 1
        return PDHardwareResult(klass=g.klass, cycles=cycles, events=g.events, spikes=g.spikes,
                                time_ns=np.arange(len(frames), dtype=np.float64),
                                s=g.s, u=u, y=g.y, act=g.act)
    monkeypatch.setattr("spikegate.sim.pd_run.simulate_pd_hardware", fake)
    return calls


def test_bench_on_digits(tmp_path, monkeypatch, capsys):
    calls = _fake_simulation(monkeypatch)
    out = tmp_path / "out"
    assert bench.main([*TINY, "--out", str(out)]) == 0
    assert calls == [12, 12]
    rep = json.loads((out / "bench_pd_mnist.json").read_text())
    model = load_pd_model(out / "model.npz")
    assert rep["sizes"] == [64, 8, 10] == list(model.sizes)
    tr = rep["training"]
    assert tr["train_samples"] == 1437 - 200 and tr["validation_samples"] == 200
    assert len(tr["validation_curve"]) == 2 and tr["best_epoch"] in (1, 2)
    assert tr["validation_accuracy"] == max(tr["validation_curve"])
    # The numbers, recomputed from the model file on the same orders.
    ds = load_dataset("digits")
    x, y = ds.x_test[:40], ds.y_test[:40]
    perms = {"shuffled": np.random.default_rng(0).permutation(40),
             "temporal": temporal_order(x, 1000)}
    fixed = model.network
    for k, perm in perms.items():
        g = fixed.run(fixed.quantize_input(x[perm]))
        ev, hw = rep["eval"][k], rep["hardware"][k]
        assert ev["frames"] == 40
        assert ev["fixed_accuracy"] == pytest.approx(np.mean(g.klass == y[perm]))
        assert ev["weight_additions_mean"] == pytest.approx((g.spikes @ [8, 10]).mean())
        assert ev["model_cycles_mean"] == pytest.approx(expected_cycles(g, fixed.sizes, 4).mean())
        assert hw["exact_frames"] == hw["cycles_equal_model"] == hw["frames"] == 12
        assert hw["first_mismatch"] is None
        assert hw["accuracy"] == pytest.approx(np.mean(g.klass[:12] == y[perm][:12]))
    assert rep["model_checked"] and rep["targets"]["hardware_exact"]
    assert rep["targets"]["ratio_model"] == pytest.approx(
        rep["eval"]["temporal"]["model_cycles_mean"] / rep["eval"]["shuffled"]["model_cycles_mean"])
    text = capsys.readouterr().out
    assert "| 12 / 12 frames |" in text and "cycles / frame, all 40 (timing model)" in text

    # Re-checked from the model file without training: the same numbers.
    out2 = tmp_path / "again"
    assert bench.main([*TINY, "--model", str(out / "model.npz"), "--out", str(out2)]) == 0
    rep2 = json.loads((out2 / "bench_pd_mnist.json").read_text())
    for k in ("shuffled", "temporal"):
        for d in (rep["eval"][k], rep2["eval"][k]):
            del d["seconds"]
    assert rep2["eval"] == rep["eval"]


def test_bench_reports_a_wrong_frame(tmp_path, monkeypatch, capsys):
    _fake_simulation(monkeypatch, corrupt=(5, 0))
    assert bench.main([*TINY, "--epochs", "1", "--out", str(tmp_path)]) == 1
    rep = json.loads((tmp_path / "bench_pd_mnist.json").read_text())
    hw = rep["hardware"]["shuffled"]
    assert hw["exact_frames"] == 11 and hw["cycles_equal_model"] == 12
    assert hw["first_mismatch"].startswith("shuffled: frame 5: layer 0 u[1]")
    assert rep["hardware"]["temporal"]["exact_frames"] == 12
    assert "hardware differs from the golden model: shuffled: frame 5" in capsys.readouterr().out


def test_bench_leaves_out_the_timing_model_when_it_differs(tmp_path, monkeypatch, capsys):
    _fake_simulation(monkeypatch, slow=3)
    assert bench.main([*TINY, "--epochs", "1", "--out", str(tmp_path)]) == 0
    rep = json.loads((tmp_path / "bench_pd_mnist.json").read_text())
    assert rep["hardware"]["shuffled"]["cycles_equal_model"] == 11
    assert not rep["model_checked"] and "ratio_model" not in rep["targets"]
    assert "timing model)" not in capsys.readouterr().out


def test_exact_frames_names_the_frame():
    ds = load_dataset("digits")
    rng = np.random.default_rng(4)
    from spikegate.golden.pd_model_file import PDModelFile
    ws = [rng.normal(0, 0.3, (64, 8)), rng.normal(0, 0.3, (8, 10))]
    fixed = PDModelFile.from_float(ws, [np.zeros(8), np.zeros(10)], [0.9, 0.9], [0.1, 0.1]).network
    g = fixed.run(fixed.quantize_input(ds.x_test[:10]))
    assert bench.exact_frames(g, g).all()
    for name, l in (("s", 1), ("u", 0), ("y", 1), ("act", 0)):
        arrays = [a.copy() for a in getattr(g, name)]
        arrays[l][7, 2] += 1
        bad = g.frames(0)
        setattr(bad, name, arrays)
        assert np.flatnonzero(~bench.exact_frames(bad, g)).tolist() == [7], name
    bad = g.frames(0)
    bad.klass = g.klass.copy()
    bad.klass[2] += 1
    assert np.flatnonzero(~bench.exact_frames(bad, g)).tolist() == [2]


def test_fit_and_walk_cycles():
    f = bench.fit([1, 2, 3, 5], [13, 16, 19, 25])
    assert f["intercept"] == pytest.approx(10) and f["slope"] == pytest.approx(3)
    assert f["r2"] == pytest.approx(1.0)
    assert bench.fit([1, 2, 3, 4], [1, 3, 2, 4])["r2"] == pytest.approx(0.64)
    # 784-200-10 with 8 lanes: 25 and 2 cycles per row addition.
    assert bench.walk_cycles([[3, 1], [0, 5]], (784, 200, 10), 8).tolist() == [77, 10]
    assert bench.walk_cycles([[3, 1]], (784, 200, 10), (4, 1)).tolist() == [160]


def test_bench_refusals(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SPIKEGATE_DATA", raising=False)
    with pytest.raises(SystemExit) as e:
        bench.main(["--out", str(tmp_path)])
    assert e.value.code == 2
    assert "no directory given for data set 'mnist'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--data", str(tmp_path), "--out", str(tmp_path / "o")])
    assert "no mnist IDX files" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--dataset", "digits", "--out", str(tmp_path / "o")])
    assert "--validation: must be below the 1437 training images, not 6000" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--dataset", "digits", "--lanes", "4,4,4", "--validation", "100",
                    "--epochs", "1", "--out", str(tmp_path / "o")])
    assert "--lanes: 3 values for 2 weight layers" in capsys.readouterr().err
