"""``bench_exact``: a test set through the classifier's Verilog in chunks, against golden (a
CI-sized sample; the full MNIST test set is the benchmark's run, README)."""

import os
from pathlib import Path

import numpy as np
import pytest

from spikegate.golden.data import load_dataset
from spikegate.golden.model_file import load_model
from spikegate.golden.ttfs_discrete import simulate
from spikegate.scripts.bench_exact import main, run_exact
from spikegate.scripts.cli import main as cli_main
from spikegate.sim.ttfs_run import HardwareResult


def small_net():
    from spikegate.golden.sign_backprop import random_discrete_network
    return random_discrete_network((6, 4, 3), seed=0, input_rate=0.5)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.npz"
    assert cli_main(["train", "ttfs", "--dataset", "digits", "--hidden", "8", "--epochs", "2",
                     "--quiet", "-o", str(path)]) == 0
    return path


def test_chunks_saved_reused_and_checked(tiny_model, tmp_path):
    model = load_model(tiny_model)
    ds = load_dataset("digits")
    steps, labels, net = model.encode(ds.x_test[:10]), ds.y_test[:10], model.network()
    logs = []
    first = run_exact(net, steps, labels, 4, chunk=4, out=tmp_path, log=logs.append)
    assert (first["images"], first["agree"], first["first_mismatch"]) == (10, 10, None)
    assert first["simulated_images"] == 10 and len(logs) == 3          # chunks 4 + 4 + 2
    want = np.mean(simulate(net, steps).decision == labels)
    assert first["golden_accuracy"] == first["hardware_accuracy"] == want
    folder = tmp_path / first["key"]
    assert sorted(p.name for p in folder.iterdir()) == ["0-4.npz", "4-8.npz", "8-10.npz"]

    again = run_exact(net, steps, labels, 4, chunk=4, out=tmp_path, log=logs.append)
    assert again["simulated_images"] == 0                              # every chunk reused
    assert {k: again[k] for k in ("agree", "cycles_mean", "cycles_max", "hardware_accuracy")} \
        == {k: first[k] for k in ("agree", "cycles_mean", "cycles_max", "hardware_accuracy")}

    # A saved chunk that disagrees with golden is reported: the image, the quantity
    hw = HardwareResult.load(folder / "4-8.npz")
    hw.decision_step[1] += 1
    hw.save(folder / "4-8.npz")
    bad = run_exact(net, steps, labels, 4, chunk=4, out=tmp_path, log=logs.append)
    assert bad["agree"] == 9
    assert (bad["first_mismatch"]["image"], bad["first_mismatch"]["quantity"]) == \
        (5, "decision_step")

    # A truncated chunk file is simulated again (and the disagreement is gone)
    (folder / "4-8.npz").write_bytes(b"PK\x03\x04 truncated")
    logs.clear()
    mended = run_exact(net, steps, labels, 4, chunk=4, out=tmp_path, log=logs.append)
    assert mended["simulated_images"] == 4 and mended["agree"] == 10
    assert any("4-8.npz" in line and "simulating again" in line for line in logs), logs

    # Other lanes are another key: nothing reused
    other = run_exact(net, steps[:3], labels[:3], 2, chunk=4, out=tmp_path, log=logs.append)
    assert other["key"] != first["key"] and other["simulated_images"] == 3


def test_key_follows_the_hardware_sources(monkeypatch):
    from spikegate.scripts import bench_exact
    net = small_net()
    key = bench_exact._key(net, 4, None, None)
    assert key == bench_exact._key(net, 4, None, None)
    assert key != bench_exact._key(net, (4, 2), None, None)
    assert key == bench_exact._key(net, 4, None, None, False)
    assert key != bench_exact._key(net, 4, None, None, True)
    monkeypatch.setattr(bench_exact, "rtl_hash", lambda: "another hdl/")
    assert key != bench_exact._key(net, 4, None, None)


# A model of binary input encoding runs on the binary-input first layer (no multipliers), as
# spikegate synth builds it; --multiply builds the multiplying one. Both = golden.
def test_binary_model_runs_the_binary_input_layer(tmp_path, capsys):
    path = tmp_path / "binary.npz"
    assert cli_main(["train", "ttfs", "--dataset", "digits", "--hidden", "8", "--epochs", "2",
                     "--encoding", "binary", "--quiet", "-o", str(path)]) == 0
    keys = []
    for extra, label in (([], "binary-input layer 0"), (["--multiply"], None)):
        assert main([str(path), "--dataset", "digits", "--images", "6", "--lanes", "3",
                     "--out", str(tmp_path / "out")] + extra) == 0
        out = capsys.readouterr().out
        assert "6 of 6" in out, out
        assert (label in out) if label else ("binary-input" not in out), out
        keys.append(sorted(p.name for p in (tmp_path / "out").iterdir()))
    assert len(keys[1]) == 2, keys          # another key: another build


def test_cli_table_and_errors(tiny_model, tmp_path, capsys):
    assert main([str(tiny_model), "--dataset", "digits", "--images", "5", "--chunk", "3",
                 "--lanes", "4", "--board", "ulx3s", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "hardware = golden" in out and "5 of 5" in out
    assert "first disagreement                    | none" in out
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "missing.npz"), "--dataset", "digits"])
    assert e.value.code == 2
    assert "file" in capsys.readouterr().err
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        run_exact(load_model(tiny_model).network(), np.zeros((1, 64), np.int64), [0], 4, chunk=0)


@pytest.mark.bench
def test_mnist_test_set_bit_exact_on_the_ulx3s_build(tmp_path):
    """The ECP5-85F network (docs/models/mnist-456-T64.npz) on all 10,000 MNIST test images,
    as the ULX3S builds it (registered weight banks, lanes (8, 8)): hardware = golden on
    every image. ``SPIKEGATE_BENCH_OUT`` keeps its chunks between runs (it resumes)."""
    data = os.environ.get("SPIKEGATE_DATA")
    if not data:
        pytest.skip("needs the MNIST IDX files: SPIKEGATE_DATA")
    model = Path(__file__).resolve().parent.parent / "docs" / "models" / "mnist-456-T64.npz"
    out = os.environ.get("SPIKEGATE_BENCH_OUT") or str(tmp_path)
    assert main([str(model), "--board", "ulx3s", "--lanes", "8,8", "--dataset", "mnist",
                 "--data", data, "--out", out]) == 0
