"""``spikegate run --algorithm ssgd`` and ``sim`` / ``compare`` of SSGD model files.

One real run (digits 64-16-10, one epoch of the golden fixed-point training, 3 test images
through the forward Verilog and 2 training images through the on-chip trainer, Verilator)
checks that the report's numbers are this run's: the model is the golden training's from
``init_weights``, the accuracies are the golden model's on the same data, the hardware equals
golden; ``compare`` then takes the model file. The others check that bad options are refused
before anything is trained or written, and the synth stage: the boards' trainer designs
elaborate (no tools), a run with ``synthesize`` replaced reports a build that fits (Fmax,
resources, the energy at that build) and one that does not (the resource named, no crash), and
``spikegate synth --model SSGD_FILE``; one real build (marked ``synth``: the iCEBreaker,
64-8-10, one nextpnr seed, the simulations replaced by the golden model).
"""

import json

import numpy as np
import pytest

from spikegate.golden import ssgd_train_fixed as stf
from spikegate.golden.data import load_dataset
from spikegate.golden.ssgd_model_file import SSGDModelFile, load_ssgd_model, save_ssgd_model
from spikegate.scripts.cli import main
from spikegate.scripts.flow_ssgd import DECAY_EVERY
from spikegate.sim.ssgd_run import SSGDHardwareResult

TINY = ["--hidden", "16", "--epochs", "1", "--images", "3", "--train-images", "2",
        "--lanes", "4,10"]


def test_run_ssgd_end_to_end_in_verilator(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--algorithm", "ssgd", "--out", str(out), *TINY, "--no-synth"]) == 0
    rep = json.loads((out / "report" / "report.json").read_text())
    md = (out / "report" / "report.md").read_text()
    assert rep["algorithm"] == "ssgd" and rep["sizes"] == [64, 16, 10]
    # The model is the golden fixed-point training's, from init_weights(seed 0), one epoch.
    ds = load_dataset("digits")
    tfmt = stf.TrainFormat()
    w0 = stf.init_weights((64, 16, 10), tfmt, seed=0)
    w, _ = stf.train_fixed(w0, stf.encode(ds.x_train, tfmt), ds.y_train, tfmt, epochs=1,
                           seed=0, decay_every=DECAY_EVERY)
    model = load_ssgd_model(out / "model.npz")
    for a, b in zip(model.weights, w):
        np.testing.assert_array_equal(a, b)
    # Accuracies: the golden model's on the same data.
    xte = stf.encode(ds.x_test, tfmt)
    assert rep["accuracy"]["fixed"] == pytest.approx(stf.accuracy_fixed(w, xte, ds.y_test, tfmt))
    fwd = stf.forward_fixed(w, xte[:3], tfmt)
    klass = np.argmax(fwd.z, axis=1)
    assert rep["accuracy"]["hardware_sample"] == pytest.approx(float(np.mean(klass == ds.y_test[:3])))
    hw = SSGDHardwareResult.load(out / "sim.npz")
    np.testing.assert_array_equal(hw.klass, klass)
    np.testing.assert_array_equal(hw.active, np.bincount(fwd.events.b, minlength=3))
    assert rep["agreement"]["agree"] == 3 and rep["agreement"]["first_mismatch"] is None
    assert rep["agreement"]["cycles_equal_timing_model"]
    assert "3/3 images (100.0 %)" in md
    # Synaptic ops: the forward's weight reads (input spikes x H + hidden spikes x C), ACs.
    s = np.swapaxes(fwd.s, 0, 1)
    x = np.swapaxes(fwd.x, 0, 1)
    reads = x[:, :-1].sum(axis=(1, 2)) * 16 + s[:, :-1].sum(axis=(1, 2)) * 10
    assert rep["synaptic_ops"]["ac"] == pytest.approx(float(reads.mean()))
    assert rep["synaptic_ops"]["mac"] == 0 and rep["synaptic_ops"]["dense_mac"] == 64 * 16 + 160
    # Energy (no synthesis): both boards, at the simulated forward's cycles per image.
    assert set(rep["energy_estimate"]) == {"icebreaker", "ulx3s"}
    for e in rep["energy_estimate"].values():
        assert e["cycles"] == pytest.approx(float(hw.cycles.mean())) and e["macs_uj"] == 0
        assert e["basis"].startswith("no build")
    # On-chip training: the trainer's final weights are golden train_step's on 2 images.
    params = w
    for b in range(2):
        params, _, _ = stf.train_step(params, stf.encode(ds.x_train[b:b + 1], tfmt)[0],
                                      ds.y_train[b], tfmt, image_index=b)
    with np.load(out / "train_sim.npz") as z:
        np.testing.assert_array_equal(z["w_final0"], params[0])
        np.testing.assert_array_equal(z["w_final1"], params[1])
        assert rep["on_chip_training"]["backward_cycles_mean"] == pytest.approx(
            float(z["backward_cycles"].mean()))
    oc = rep["on_chip_training"]
    assert oc["equal_golden"] and oc["images"] == 2 and sum(oc["weights_changed"]) > 0
    assert oc["dense_over_sparse"] > 1
    assert "skipped (--no-synth)" in md and rep["synth"] is None
    # A second run reuses every stage; the model file's algorithm is enough.
    assert main(["run", "--model", str(out / "model.npz"), "--out", str(out), *TINY[4:],
                 "--no-synth"]) == 0
    rep2 = json.loads((out / "report" / "report.json").read_text())
    assert all(st["cached"] for st in rep2["stages"].values()), rep2["stages"]
    assert rep2["accuracy"] == rep["accuracy"]
    # compare takes the SSGD model file (the algorithm from its meta).
    capsys.readouterr()
    assert main(["compare", str(out / "model.npz"), "--images", "3", "--lanes", "4,10",
                 "--out", str(tmp_path / "c")]) == 0
    assert "hardware = golden on all 3 images" in capsys.readouterr().out


def _ssgd_model(path, sizes=(64, 8, 10)):
    tfmt = stf.TrainFormat()
    save_ssgd_model(path, SSGDModelFile(stf.init_weights(sizes, tfmt, seed=1), tfmt))
    return path


@pytest.mark.parametrize("argv, message", [
    (["--images", "100000"], "--images 100000"),
    (["--train-images", "100000"], "--train-images 100000"),
    (["--lanes", "1,2,3"], "--lanes 1,2,3"),
    (["--hidden", "8,8"], "--hidden 8,8"),
    (["--board-lanes", "1,2,3"], "--board-lanes 1,2,3"),
    (["--temporal"], "--temporal is for --algorithm pdnn"),
    (["--dataset", "mnist", "--data", "/nonexistent/dir"], "/nonexistent/dir"),
])
def test_run_ssgd_bad_options_refused_before_work(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    assert main(["run", "--algorithm", "ssgd", "--out", str(out), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_model_files_of_the_wrong_kind_or_shape_are_refused(tmp_path, capsys):
    out = tmp_path / "run"
    model = _ssgd_model(tmp_path / "ssgd.npz")
    assert main(["run", "--algorithm", "pdnn", "--model", str(model), "--out", str(out)]) == 2
    assert "is a ssgd model" in capsys.readouterr().err
    assert main(["run", "--model", str(model), "--epochs", "2", "--out", str(out)]) == 2
    assert "--epochs" in capsys.readouterr().err
    assert main(["run", "--train-images", "3", "--out", str(out)]) == 2
    assert "--train-images 3 is for --algorithm ssgd" in capsys.readouterr().err
    small = _ssgd_model(tmp_path / "small.npz", sizes=(30, 8, 10))
    assert main(["run", "--model", str(small), "--out", str(out)]) == 2
    assert "30 inputs" in capsys.readouterr().err
    assert main(["compare", str(small), "--out", str(out)]) == 2
    assert "30 inputs" in capsys.readouterr().err
    assert not out.exists()


def test_training_and_cycle_mismatches_are_named():
    from spikegate.scripts.flow_ssgd import mismatch_cycles, training_mismatch
    from spikegate.sim.ssgd_train_run import golden_training, sample_positions
    tfmt = stf.TrainFormat()
    w = stf.init_weights((64, 8, 10), tfmt, seed=2)
    ds = load_dataset("digits")
    times, labels = stf.encode(ds.x_train[:2], tfmt), ds.y_train[:2]
    rng = np.random.default_rng(0)
    samples = [np.stack([sample_positions(rng, s, 4) for _ in range(2)]) for s in ((64, 8), (8, 10))]
    g = golden_training(tfmt, w, times, labels, samples)
    assert training_mismatch({k: v.copy() for k, v in g.items()}, g) is None
    bad = {k: v.copy() for k, v in g.items()}
    bad["w_final1"][3, 4] += 1
    assert training_mismatch(bad, g) == (f"training: final W2[3, 4] = {g['w_final1'][3, 4] + 1}, "
                                         f"golden {g['w_final1'][3, 4]}")
    bad = {k: v.copy() for k, v in g.items()}
    bad["active"][1] += 1
    assert training_mismatch(bad, g).startswith("training: image 1: active")
    assert mismatch_cycles([5, 6, 7], [5, 6, 7]) is None
    assert mismatch_cycles([5, 9, 7], [5, 6, 7]) == "image 1: 9 cycles, the timing model 6"


def _fake_simulations(monkeypatch):
    """The forward and training simulations replaced by the golden model (and the forward's
    timing model): the synth stage's tests build no Verilator model."""
    from spikegate.hdl.ssgd_network import expected_cycles
    from spikegate.sim.ssgd_run import expected_run
    from spikegate.sim.ssgd_train_run import golden_training

    def forward(tfmt, weights, images, lanes, **kwargs):
        x = np.asarray(images).astype(bool)
        g = expected_run(x, weights, tfmt)
        H, C = g.hidden.v.shape[2], g.readout.v.shape[2]
        b, t, j = np.nonzero(g.hidden.active)
        order = np.lexsort((j, t, b))
        ins, hs = x[:, :-1].sum(axis=(1, 2)), g.hidden.spike[:, :-1].sum(axis=(1, 2))
        return SSGDHardwareResult(
            klass=g.klass, cycles=expected_cycles(x, g.hidden.spike, (x.shape[2], H, C), lanes,
                                                  tfmt.n_steps),
            in_spikes=ins, spikes=g.hidden.spike.sum(axis=(1, 2)),
            active=g.hidden.active.sum(axis=(1, 2)), time_ns=np.zeros(len(x)), z=g.z,
            lookups=np.column_stack([ins * H, hs * C]), v=g.hidden.v, spike=g.hidden.spike,
            act=g.hidden.active, g=g.hidden.g, o=g.readout.v,
            events=np.column_stack([b, j, t, g.hidden.g[b, t, j]])[order])

    def training(tfmt, weights, times, labels, lanes, samples, **kwargs):
        g = golden_training(tfmt, weights, times, labels, samples)
        hw = {k: g[k] for k in ("klass", "active", "w_sample0", "w_sample1", "w_final0",
                                "w_final1")}
        hw["forward_cycles"] = np.full(len(labels), 1000) + np.arange(len(labels))
        hw["backward_cycles"] = g["grad_cycles"] + 1300
        return hw

    monkeypatch.setattr("spikegate.sim.ssgd_run.simulate_ssgd_hardware", forward)
    monkeypatch.setattr("spikegate.sim.ssgd_train_run.simulate_ssgd_training", training)


def test_ssgd_designs_build_for_both_boards(tmp_path):
    """The boards' SSGD trainer designs (shim top, the model's sizes, the boards' lanes)
    elaborate into the platforms' build plans (no tools run)."""
    from spikegate.boards.synth import SSGD_LANES, SSGDTrainerShim, make_ssgd_design
    model = load_ssgd_model(_ssgd_model(tmp_path / "ssgd.npz"))
    for board in ("icebreaker", "ulx3s"):
        design, platform = make_ssgd_design(board, model)
        assert design.lanes == SSGD_LANES[board] and design.net.sizes == (64, 8, 10)
        assert isinstance(design.top, SSGDTrainerShim)
        plan = platform.prepare(design, name="top")
        assert any("trainer" in str(text) for text in plan.files.values())


def _report(board, device, lanes, fmax, lcs):
    from spikegate.boards.fit import DEVICES
    from spikegate.boards.synth import SynthReport
    d = DEVICES[device]
    return SynthReport(board=board, device=device, sizes=[64, 8, 10], lanes=list(lanes),
                       target_mhz=30.0, fmax_mhz=fmax,
                       resources={d.logic: {"used": lcs, "available": d.resources[d.logic]}},
                       ffs=7)


def test_run_ssgd_synth_stage_reports_fits_and_overflows(tmp_path, monkeypatch):
    """The synth stage with ``synthesize`` replaced: the ULX3S build fits (its Fmax and cells
    in the report and in its energy estimate), the iCEBreaker's does not (the resource and
    nextpnr's count in the report, its energy at the board's defaults, exit 0: not a
    disagreement); both reused by a second run; ``--board-lanes`` reaches the designs."""
    from spikegate.boards.fit import ResourceError
    built = []

    def fake(design, platform, build_dir, **kwargs):
        built.append((design.board, design.lanes))
        platform.prepare(design, name="top")          # elaborated, as the tools would
        if design.board == "icebreaker":
            raise ResourceError("ICESTORM_LC", 5632, 5280, "iCE40UP5K")
        return _report("ulx3s-85F", "LFE5U-85F", design.lanes, 91.5, 2345)

    monkeypatch.setattr("spikegate.boards.synth.synthesize", fake)
    _fake_simulations(monkeypatch)
    model = _ssgd_model(tmp_path / "ssgd.npz")
    out = tmp_path / "run"
    argv = ["run", "--model", str(model), "--out", str(out), "--images", "3",
            "--train-images", "2", "--lanes", "4,10", "--board-lanes", "2,1"]
    assert main(argv) == 0
    assert built == [("icebreaker", (2, 1)), ("ulx3s", (2, 1))]
    rep = json.loads((out / "report" / "report.json").read_text())
    md = (out / "report" / "report.md").read_text()
    ice, ecp = rep["synth"]["icebreaker"], rep["synth"]["ulx3s-85F"]
    assert ice["fits"] is False and (ice["resource"], ice["used"], ice["available"]) == (
        "ICESTORM_LC", 5632, 5280)
    assert ("| synthesis, icebreaker (iCE40UP5K) | DOES NOT FIT: needs 5632 ICESTORM_LC, the "
            "device has 5280 |") in md
    assert ecp["fits"] is True and ecp["fmax_mhz"] == 91.5 and "| Fmax, ulx3s-85F" in md
    # The board's forward cycles: the timing model at the board's lanes on the sample.
    from spikegate.hdl.ssgd_network import expected_cycles
    from spikegate.sim.ssgd_run import expected_run
    m = load_ssgd_model(model)
    ds = load_dataset("digits")
    x = np.swapaxes(stf.input_raster(stf.encode(ds.x_test[:3], m.fmt), m.fmt), 0, 1)
    cyc = expected_cycles(x, expected_run(x, m.weights, m.fmt).hidden.spike, m.sizes, (2, 1),
                          m.fmt.n_steps)
    assert ecp["board_forward"]["cycles_mean"] == pytest.approx(float(cyc.mean()))
    e = rep["energy_estimate"]
    assert e["ulx3s"]["basis"].startswith("this build") and e["ulx3s"]["luts"] == 2345
    assert e["ulx3s"]["clock_mhz"] == 91.5 and e["ulx3s"]["cycles"] == pytest.approx(cyc.mean())
    assert e["icebreaker"]["basis"].startswith("no build")
    assert "SSGDTrainerShim" in md
    built.clear()
    assert main(argv) == 0
    assert built == []                                 # both boards' results reused
    rep2 = json.loads((out / "report" / "report.json").read_text())
    assert rep2["synth"] == rep["synth"]


def test_synth_takes_an_ssgd_model_file(tmp_path, monkeypatch, capsys):
    """``spikegate synth --model SSGD_FILE`` builds the trainer design (the tools replaced
    here); a build that does not fit is named, exit 1; lanes for three layers are refused."""
    from spikegate.boards.fit import ResourceError
    built = []

    def fake(design, platform, build_dir, **kwargs):
        built.append((type(design).__name__, design.lanes, design.net.sizes))
        platform.prepare(design, name="top")          # elaborated, as the tools would
        if design.lanes == (1, 1):
            raise ResourceError("ICESTORM_LC", 5632, 5280, "iCE40UP5K")
        return _report(design.board, design.device.name, design.lanes, 31.5, 4000)

    monkeypatch.setattr("spikegate.boards.synth.synthesize", fake)
    model = _ssgd_model(tmp_path / "ssgd.npz")
    assert main(["synth", "--board", "icebreaker", "--model", str(model), "--lanes", "2,1",
                 "--out", str(tmp_path / "s")]) == 0
    assert built == [("SSGDICEBreakerDesign", (2, 1), (64, 8, 10))]
    assert "SSGDTrainerShim" in capsys.readouterr().out
    assert main(["synth", "--board", "icebreaker", "--model", str(model),
                 "--out", str(tmp_path / "s")]) == 1
    assert "does not fit the iCE40UP5K: it needs 5632 ICESTORM_LC" in capsys.readouterr().err
    assert main(["synth", "--board", "ulx3s", "--model", str(model), "--lanes", "1,2,3",
                 "--out", str(tmp_path / "s")]) == 2
    assert "--lanes 1,2,3" in capsys.readouterr().err


@pytest.mark.synth
def test_run_ssgd_with_synthesis(tmp_path, monkeypatch):
    """The synth stage with the tools, at CI's size: 64-8-10 on the iCEBreaker alone, one
    nextpnr seed (the ULX3S design is elaborated above; its build is the same code path)."""
    monkeypatch.setattr("spikegate.boards.synth.DEFAULT_SEEDS", (1,))
    monkeypatch.setattr("spikegate.scripts.flow_ssgd.SSGD_BOARDS", (("icebreaker", None),))
    _fake_simulations(monkeypatch)
    model = _ssgd_model(tmp_path / "ssgd.npz")
    out = tmp_path / "run"
    assert main(["run", "--model", str(model), "--out", str(out), "--images", "3",
                 "--train-images", "2", "--lanes", "4,10"]) == 0
    rep = json.loads((out / "report" / "report.json").read_text())
    s = rep["synth"]["icebreaker"]
    assert s["fits"] and s["fmax_mhz"] > 0 and s["resources"]["ICESTORM_LC"]["used"] > 500
    assert s["sizes"] == [64, 8, 10] and s["lanes"] == [1, 1]
    e = rep["energy_estimate"]["icebreaker"]
    assert e["basis"].startswith("this build") and e["luts"] < 5280
    assert "| Fmax, icebreaker" in (out / "report" / "report.md").read_text()
