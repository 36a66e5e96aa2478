"""``spikegate run`` end to end on a tiny configuration, and its refusals.

The run trains a small digits network for one epoch, simulates 12 test images as Verilog,
and (marked ``synth``) builds the iCEBreaker bitstream. The report's numbers must come from
the run: 100 % agreement, and counts equal to the golden model's on the same images.
"""

import json

import numpy as np
import pytest

from spikegate.golden.data import load_dataset
from spikegate.golden.model_file import load_model
from spikegate.golden.ttfs_discrete import simulate
from spikegate.scripts.cli import main
from spikegate.sim.ttfs_run import HardwareResult


def _run(tmp_path, *extra):
    out = tmp_path / "run"
    code = main(["run", "--out", str(out), "--images", "12", "--epochs", "1", "--hidden", "16",
                 "--lanes", "4", *extra])
    return code, out


def test_run_end_to_end_without_synthesis(tmp_path, capsys):
    code, out = _run(tmp_path, "--no-synth")
    assert code == 0
    rep = json.loads((out / "report" / "report.json").read_text())
    for f in ("report.md", "histograms.png", "raster.png"):
        assert (out / "report" / f).stat().st_size > 100, f
    assert rep["agreement"] == {"images": 12, "agree": 12, "fraction": 1.0, "first_mismatch": None}
    # The numbers come from this run's model and images.
    model = load_model(out / "model.npz")
    ds = load_dataset("digits")
    g = simulate(model.network(), model.encode(ds.x_test))
    assert rep["accuracy"]["golden_8bit"] == pytest.approx(float(np.mean(g.decision == ds.y_test)))
    g12 = simulate(model.network(), model.encode(ds.x_test[:12]))
    assert rep["accuracy"]["hardware_sample"] == pytest.approx(float(np.mean(g12.decision == ds.y_test[:12])))
    frac = g.lookup_fraction(model.network()).mean(axis=0)
    assert rep["lookup_fraction"] == pytest.approx(frac.tolist())
    hw = HardwareResult.load(out / "sim.npz")
    np.testing.assert_array_equal(hw.lookups, g12.lookups)
    for l, steps in enumerate(hw.spike_steps, 1):
        np.testing.assert_array_equal(steps, g12.spike_steps[l])
    assert "12/12 images (100.0 %)" in (out / "report" / "report.md").read_text()
    # Synaptic operations: one AC and one MAC per weight read, against the dense network.
    ops = rep["synaptic_ops"]
    assert ops["mac"] == ops["ac"] == pytest.approx(float(g12.lookups.sum(1).mean()))
    sizes = model.sizes
    assert ops["dense_mac"] == sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    # No synthesis: the estimate at each board's default clock with all its device's logic
    # cells, at the simulated cycles, and says so.
    from spikegate.boards import icebreaker, ulx3s
    from spikegate.sim.energy import estimate
    hw_cycles = float(np.mean(HardwareResult.load(out / "sim.npz").cycles))
    for board, clk, cells in (("icebreaker", icebreaker.DEFAULT_CLK_HZ / 1e6, 5280),
                              ("ulx3s", ulx3s.DEFAULT_CLK_HZ / 1e6, 83640)):
        e = rep["energy_estimate"][board]
        want = estimate(board, cycles=hw_cycles, weight_reads=ops["memory_reads"],
                        clock_mhz=clk, luts=cells, macs=ops["mac"])
        assert e["total_uj"] == pytest.approx(want["total_uj"]) and e["cycles"] == hw_cycles
        assert e["basis"].startswith("no build") and e["luts"] == cells
    assert "ESTIMATE; no build" in (out / "report" / "report.md").read_text()
    # A second run reuses every stage.
    code, _ = _run(tmp_path, "--no-synth")
    assert code == 0
    rep2 = json.loads((out / "report" / "report.json").read_text())
    assert all(s["cached"] for s in rep2["stages"].values()), rep2["stages"]


@pytest.mark.synth
def test_run_with_synthesis(tmp_path):
    code, out = _run(tmp_path)
    assert code == 0
    rep = json.loads((out / "report" / "report.json").read_text())
    assert rep["synth"]["fmax_mhz"] > 0 and rep["classifications_per_s_at_fmax"] > 0
    # The best of the default placement seeds is kept.
    seeds = {int(s): f for s, f in rep["synth"]["seed_fmax_mhz"].items()}
    assert sorted(seeds) == [1, 2, 3], seeds
    assert rep["synth"]["fmax_mhz"] == max(seeds.values()) == seeds[rep["synth"]["seed"]]
    assert "Fmax" in (out / "report" / "report.md").read_text()
    # Classifications per second come from the board's own lanes and cycles: the UP5K
    # builds fewer lanes than the sim stage's 4, so it needs more cycles.
    board = rep["synth"]["board_classifier"]
    assert board["lanes"] == [2, 1] and board["images"] == 12
    assert board["cycles_mean"] > rep["cycles_per_classification"]["mean"]
    assert rep["classifications_per_s_at_fmax"] == pytest.approx(
        rep["synth"]["fmax_mhz"] * 1e6 / board["cycles_mean"])
    e = rep["energy_estimate"]["icebreaker"]
    assert e["low_uj"] < e["total_uj"] < e["high_uj"] and "ESTIMATE" in (out / "report" / "report.md").read_text()


def test_corrupt_model_is_refused_and_no_report(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 this is not a model")
    out = tmp_path / "run"
    code = main(["run", "--model", str(bad), "--out", str(out), "--no-synth"])
    assert code == 2
    err = capsys.readouterr().err
    assert "bad.npz" in err
    assert not (out / "report").exists()


def test_missing_data_directory_is_refused_and_no_report(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SPIKEGATE_DATA", raising=False)
    out = tmp_path / "run"
    code = main(["run", "--dataset", "mnist", "--data", str(tmp_path / "nowhere"), "--out", str(out),
                 "--no-synth"])
    assert code == 2
    assert "nowhere" in capsys.readouterr().err
    assert not out.exists()


def test_compare_exits_nonzero_on_disagreement(tmp_path, capsys, monkeypatch):
    # Break the hardware on purpose: the compare stage must name the image, neuron and step.
    code, out = _run(tmp_path, "--no-synth")
    assert code == 0
    sim_path = out / "sim.npz"
    hw = HardwareResult.load(sim_path)
    hw.spike_steps[0][3, 5] += 1
    hw.save(sim_path)
    from spikegate.scripts.flow import Flow
    flow = Flow(out, images=12, lanes=4)
    mm, _ = flow.compare(out / "model.npz", HardwareResult.load(sim_path))
    assert mm["image"] == 3 and mm["layer"] == 1 and mm["neuron"] == 5


def test_train_stage_retrains_when_the_data_set_defaults_change(tmp_path, monkeypatch):
    # The cache key holds the resolved settings, not only the command line: a new default
    # (here the digits learning rate) must not reuse the model trained with the old one.
    from spikegate.scripts import train_ttfs
    from spikegate.scripts.flow import Flow
    flow = Flow(tmp_path, images=1)
    path = flow.train(hidden=(4,), epochs=1)
    first = path.read_bytes()
    assert not flow.stages["train"]["cached"]
    flow.train(hidden=(4,), epochs=1)
    assert flow.stages["train"]["cached"]
    mode, kw, enc_kw, grid = train_ttfs.DEFAULTS["digits"]
    monkeypatch.setitem(train_ttfs.DEFAULTS, "digits", (mode, dict(kw, lr=0.5), enc_kw, grid))
    flow.train(hidden=(4,), epochs=1)
    assert not flow.stages["train"]["cached"]
    assert path.read_bytes() != first
