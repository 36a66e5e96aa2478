"""``spikegate run --algorithm pdnn`` and ``sim`` / ``compare`` of PD model files.

One real run (a tiny digits network, 12 frames through Verilator) checks the report's numbers
against the golden model on the same frames; the others replace the hardware simulation by the
golden model (``simulate_pd_hardware`` patched), so they check the flow's refusals, its reuse
of stages and its exit codes in seconds. The synth stage (marked ``synth``) builds both boards.
"""

import json

import numpy as np
import pytest

from spikegate.golden.data import load_dataset
from spikegate.golden.pd_model_file import PDModelFile, load_pd_model, save_pd_model
from spikegate.hdl.pd_classifier import expected_cycles
from spikegate.scripts.cli import main
from spikegate.sim.pd_run import PDHardwareResult

TINY = ["--hidden", "8", "--epochs", "1", "--images", "12", "--lanes", "4"]


def _run(out, *extra):
    return main(["run", "--algorithm", "pdnn", "--out", str(out), *TINY, *extra])


def _fake_simulation(monkeypatch, corrupt_frame=None):
    """``simulate_pd_hardware`` replaced by the golden model (and its timing model); with
    ``corrupt_frame``, that frame's class is wrong."""
    calls = []

    def fake(net, frames, lanes, **kwargs):
        calls.append(len(frames))
        g = net.run(frames)
        klass = g.klass.copy()
        if corrupt_frame is not None:
            klass[corrupt_frame] = (klass[corrupt_frame] + 1) % net.sizes[-1]
        return PDHardwareResult(klass=klass, cycles=expected_cycles(g, net.sizes, lanes),
                                events=g.events, spikes=g.spikes,
                                time_ns=np.arange(len(frames), dtype=np.float64),
                                s=g.s, u=g.u, y=g.y, act=g.act)
    monkeypatch.setattr("spikegate.sim.pd_run.simulate_pd_hardware", fake)
    return calls


def _tiny_model(path, sizes=(64, 8, 10), seed=3):
    rng = np.random.default_rng(seed)
    ws = [rng.normal(0, 0.3, (a, b)) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [rng.normal(0, 0.1, b) for b in sizes[1:]]
    save_pd_model(path, PDModelFile.from_float(ws, bs, [0.9] * len(ws), [0.1] * len(ws)))
    return path


def test_run_pdnn_end_to_end_in_verilator(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(out, "--no-synth") == 0
    rep = json.loads((out / "report" / "report.json").read_text())
    md = (out / "report" / "report.md").read_text()
    assert rep["algorithm"] == "pdnn" and rep["sizes"] == [64, 8, 10]
    assert rep["agreement"]["agree"] == 12 and rep["agreement"]["first_mismatch"] is None
    assert rep["agreement"]["cycles_equal_timing_model"]
    assert "12/12 frames (100.0 %)" in md and "skipped (--no-synth)" in md
    # The numbers come from this run's model and frames.
    model = load_pd_model(out / "model.npz")
    assert model.training["best_epoch"] == 1 and model.training["validation_samples"] > 0
    ds = load_dataset("digits")
    fixed = model.network
    g = fixed.run(fixed.quantize_input(ds.x_test))
    assert rep["accuracy"]["fixed"] == pytest.approx(float(np.mean(g.klass == ds.y_test)))
    g12 = fixed.run(fixed.quantize_input(ds.x_test[:12]))
    assert rep["accuracy"]["hardware_sample"] == pytest.approx(float(np.mean(g12.klass == ds.y_test[:12])))
    hw = PDHardwareResult.load(out / "sim.npz")
    np.testing.assert_array_equal(hw.klass, g12.klass)
    np.testing.assert_array_equal(hw.cycles, expected_cycles(g12, fixed.sizes, 4))
    ops = rep["operations_per_frame"]
    assert [o["dense_macs"] for o in ops] == [64 * 8, 8 * 10]
    assert ops[0]["row_additions"] == pytest.approx(float(g.spikes[:, 0].mean()))
    assert rep["cycles_per_frame"]["cycles_mean"] == pytest.approx(float(hw.cycles.mean()))
    assert rep["synaptic_ops"]["mac"] == pytest.approx(sum(o["weight_additions"] for o in ops))
    assert rep["synaptic_ops"]["dense_mac"] == 64 * 8 + 8 * 10
    # No synthesis: the energy estimate of both boards at the simulated cycles per frame.
    assert set(rep["energy_estimate"]) == {"icebreaker", "ulx3s"}
    for e in rep["energy_estimate"].values():
        assert e["cycles"] == pytest.approx(float(hw.cycles.mean()))
        assert e["basis"].startswith("no build") and e["low_uj"] < e["total_uj"] < e["high_uj"]
    # compare takes the PD model file (told by its algorithm) and agrees.
    capsys.readouterr()
    assert main(["compare", str(out / "model.npz"), "--images", "12", "--lanes", "4",
                 "--out", str(tmp_path / "cmp")]) == 0
    assert "hardware = golden on all 12 frames" in capsys.readouterr().out


def test_run_pdnn_reuses_stages_and_retrains_for_new_settings(tmp_path, monkeypatch):
    calls = _fake_simulation(monkeypatch)
    out = tmp_path / "run"
    assert _run(out, "--no-synth") == 0
    assert calls == [12]
    assert _run(out, "--no-synth") == 0
    rep = json.loads((out / "report" / "report.json").read_text())
    assert all(s["cached"] for s in rep["stages"].values()), rep["stages"]
    assert calls == [12]
    assert _run(out, "--no-synth", "--seed", "1") == 0          # a new model: every stage again
    rep = json.loads((out / "report" / "report.json").read_text())
    assert not any(s["cached"] for s in rep["stages"].values()), rep["stages"]
    assert calls == [12, 12]


def test_run_pdnn_with_a_model_file_and_an_unreadable_sim_result(tmp_path, monkeypatch):
    calls = _fake_simulation(monkeypatch)
    model = _tiny_model(tmp_path / "pd.npz")
    out = tmp_path / "run"
    # The algorithm comes from the file.
    assert main(["run", "--model", str(model), "--out", str(out), "--images", "12",
                 "--no-synth"]) == 0
    (out / "sim.npz").write_bytes(b"PK-truncated")
    assert main(["run", "--model", str(model), "--out", str(out), "--images", "12",
                 "--no-synth"]) == 0
    assert calls == [12, 12]


def test_compare_pd_exits_nonzero_on_disagreement(tmp_path, monkeypatch, capsys):
    _fake_simulation(monkeypatch, corrupt_frame=5)
    model = _tiny_model(tmp_path / "pd.npz")
    assert main(["compare", str(model), "--images", "12", "--out", str(tmp_path / "c")]) == 1
    assert "DISAGREEMENT at frame 5: klass" in capsys.readouterr().out
    assert main(["sim", str(model), "--images", "12", "--out", str(tmp_path / "s")]) == 1
    text = capsys.readouterr().out
    assert "equals golden on 11/12" in text and "DISAGREEMENT at frame 5" in text


@pytest.mark.parametrize("argv, message", [
    (["--images", "100000"], "--images 100000"),
    (["--lanes", "1,2,3"], "--lanes 1,2,3"),
    (["--board-lanes", "2,2,2"], "--board-lanes"),
    (["--hidden", "0"], "--hidden"),
    (["--algorithm", "spiking"], "--algorithm"),
    (["--dataset", "mnist", "--data", "/nonexistent/dir"], "/nonexistent/dir"),
])
def test_run_pdnn_bad_options_refused_before_work(tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    assert main(["run", "--algorithm", "pdnn", "--out", str(out), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_model_files_of_the_wrong_kind_or_shape_are_refused(tmp_path, capsys):
    out = tmp_path / "run"
    pd = _tiny_model(tmp_path / "pd.npz")
    assert main(["run", "--algorithm", "ttfs", "--model", str(pd), "--out", str(out)]) == 2
    assert "is a pdnn model" in capsys.readouterr().err
    assert main(["run", "--temporal", "--out", str(out)]) == 2
    assert "--temporal is for --algorithm pdnn" in capsys.readouterr().err
    assert main(["run", "--model", str(pd), "--epochs", "3", "--out", str(out)]) == 2
    assert "--epochs" in capsys.readouterr().err
    wide = _tiny_model(tmp_path / "wide.npz", sizes=(30, 8, 10))
    assert main(["compare", str(wide), "--out", str(out)]) == 2
    assert "30 inputs" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_bytes(pd.read_bytes()[:100])
    assert main(["run", "--algorithm", "pdnn", "--model", str(bad), "--out", str(out)]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err
    assert not out.exists()


def test_pd_designs_build_for_both_boards(tmp_path):
    """The boards' PD designs (shim top) elaborate into the platforms' build plans (no
    tools run); synthesis itself is marked ``synth``."""
    from spikegate.boards.synth import PD_LANES, PDClassifierShim, make_pd_design
    fixed = load_pd_model(_tiny_model(tmp_path / "pd.npz")).network
    for board in ("icebreaker", "ulx3s"):
        design, platform = make_pd_design(board, fixed)
        assert design.lanes == PD_LANES[board] and design.board == board
        assert isinstance(design.top, PDClassifierShim)
        overrides = getattr(design, "synth_overrides", {})
        plan = platform.prepare(design, name="top", **overrides)
        assert any("classifier" in str(text) for text in plan.files.values())
        # The banked ECP5 build hides Amaranth's field wires between flatten and abc9 (the
        # Yosys 0.70 abc9 assertion, boards.synth.ECP5_HIDE_FIELD_WIRES); the iCE40's script
        # is the platform's own.
        ys = str(plan.files["top.ys"])
        if board == "ulx3s":
            assert ys.index("synth_ecp5 -run begin:map_luts") < ys.index("rename -hide w:*]") \
                < ys.index("synth_ecp5 -top top -run map_luts:") < ys.index("write_json")
        else:
            assert overrides == {} and "rename" not in ys
    with pytest.raises(TypeError, match="PDFixedNetwork"):
        make_pd_design("icebreaker", object())
    with pytest.raises(ValueError, match="board must be"):
        make_pd_design("arty", fixed)


@pytest.mark.synth
def test_run_pdnn_with_synthesis(tmp_path, monkeypatch):
    # One nextpnr seed per board (the flow's default is three): the capability, at CI's size.
    monkeypatch.setattr("spikegate.boards.synth.DEFAULT_SEEDS", (1,))
    _fake_simulation(monkeypatch)
    out = tmp_path / "run"
    assert _run(out) == 0
    rep = json.loads((out / "report" / "report.json").read_text())
    assert set(rep["synth"]) == {"icebreaker", "ulx3s-85F"}
    for s in rep["synth"].values():
        assert s["fmax_mhz"] > 0 and s["resources"]
    assert "PDClassifierShim" in (out / "report" / "report.md").read_text()
    assert set(rep["energy_estimate"]) == {"icebreaker", "ulx3s"}
    for e in rep["energy_estimate"].values():     # both boards were built: their Fmax and cells
        assert e["basis"].startswith("this build") and e["luts"] < 83640


def test_synth_takes_a_pd_model_file(tmp_path, monkeypatch, capsys):
    """``spikegate synth --model PD_FILE`` builds the PD design (the tools replaced here)."""
    from spikegate.boards.synth import SynthReport
    built = []

    def fake(design, platform, build_dir, **kwargs):
        built.append((type(design).__name__, design.lanes))
        platform.prepare(design, name="top")          # elaborated, as the tools would
        return SynthReport(board=design.board, device=design.device.name,
                           sizes=list(design.net.sizes), lanes=[1, 1], target_mhz=30.0,
                           fmax_mhz=31.5, resources={"ICESTORM_LC": {"used": 9, "available": 5280}},
                           ffs=3)
    monkeypatch.setattr("spikegate.boards.synth.synthesize", fake)
    model = _tiny_model(tmp_path / "pd.npz")
    assert main(["synth", "--board", "icebreaker", "--model", str(model),
                 "--out", str(tmp_path / "s")]) == 0
    assert built == [("PDICEBreakerDesign", (1, 1))]
    assert "PDClassifierShim" in capsys.readouterr().out
    assert main(["synth", "--board", "ulx3s", "--model", str(model), "--lanes", "1,2,3",
                 "--out", str(tmp_path / "s")]) == 2
    assert "--lanes 1,2,3" in capsys.readouterr().err


def test_run_pdnn_synth_stage_records_a_build_that_does_not_fit(tmp_path, monkeypatch):
    """With the tools replaced: the iCEBreaker build overflows (a row naming the resource, its
    energy at the board's defaults), the ULX3S's is built all the same (its Fmax), exit 0."""
    from spikegate.boards.fit import ResourceError
    from spikegate.boards.synth import SynthReport
    built = []

    def fake(design, platform, build_dir, **kwargs):
        built.append(design.board)
        platform.prepare(design, name="top")          # elaborated, as the tools would
        if design.board == "icebreaker":
            raise ResourceError("ICESTORM_LC", 6040, 5280, "iCE40UP5K")
        return SynthReport(board=design.board, device=design.device.name,
                           sizes=list(design.net.sizes), lanes=[8, 8],
                           target_mhz=80.0, fmax_mhz=88.5,
                           resources={"TRELLIS_COMB": {"used": 1234, "available": 83640}}, ffs=5)
    monkeypatch.setattr("spikegate.boards.synth.synthesize", fake)
    _fake_simulation(monkeypatch)
    out = tmp_path / "run"
    assert _run(out) == 0
    assert built == ["icebreaker", "ulx3s"]
    rep = json.loads((out / "report" / "report.json").read_text())
    md = (out / "report" / "report.md").read_text()
    ice, ecp = rep["synth"]["icebreaker"], rep["synth"]["ulx3s-85F"]
    assert ice["fits"] is False and (ice["used"], ice["available"]) == (6040, 5280)
    assert ("| synthesis, icebreaker (iCE40UP5K) | DOES NOT FIT: needs 6040 ICESTORM_LC, the "
            "device has 5280 |") in md
    assert ecp["fits"] is True and ecp["fmax_mhz"] == 88.5 and "| Fmax, ulx3s-85F" in md
    e = rep["energy_estimate"]
    assert e["icebreaker"]["basis"].startswith("no build")
    assert e["ulx3s"]["basis"].startswith("this build") and e["ulx3s"]["clock_mhz"] == 88.5
