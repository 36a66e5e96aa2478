"""``spikegate run --algorithm ssgd`` and ``sim`` / ``compare`` of SSGD model files.

One real run (digits 64-16-10, one epoch of the golden fixed-point training, 3 test images
through the forward Verilog and 2 training images through the on-chip trainer, Verilator)
checks that the report's numbers are this run's: the model is the golden training's from
``init_weights``, the accuracies are the golden model's on the same data, the hardware equals
golden; ``compare`` then takes the model file. The others check that bad options are refused
before anything is trained or written.
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
    assert "not done" in md and rep["synth"] is None
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
    (["--board-lanes", "2,2"], "--board-lanes"),
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
