"""``spikegate board`` against the pure-Python fake device: identify, load (with
verification), classify a data set range (accuracy equal to the golden model's) and an
image file, refusal of a mismatched model, and train on a device without learning."""

import numpy as np
import pytest

from spikegate.boards.fake import FakeDevice
from spikegate.golden.data import load_dataset
from spikegate.golden.model_file import TTFSModelFile, save_model
from spikegate.golden.ttfs_discrete import DiscreteNetwork, simulate
from spikegate.scripts import board
from spikegate.scripts.cli import build_parser, main


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    rng = np.random.default_rng(0)
    model = TTFSModelFile.from_float([rng.normal(0.1, 0.3, (64, 16)), rng.normal(0.1, 0.4, (16, 10))])
    path = tmp_path_factory.mktemp("m") / "model.npz"
    save_model(path, model)
    return path, model


def _device(model):
    net = model.network()
    return FakeDevice(DiscreteNetwork([np.zeros_like(w) for w in net.weights],
                                      [1] * len(net.weights), net.config))


def _run(argv, dev):
    return board.run(build_parser().parse_args(["board", *argv]), transport=dev)


def test_identify_load_classify(model_path, capsys):
    path, model = model_path
    dev = _device(model)
    assert _run(["identify"], dev) == 0
    assert "network 64-16-10" in capsys.readouterr().out
    assert _run(["load", str(path), "--verify"], dev) == 0
    assert "every weight reads back" in capsys.readouterr().out
    assert _run(["classify", "--model", str(path), "--dataset", "digits", "--range", "0:40"], dev) == 0
    out = capsys.readouterr().out
    d = load_dataset("digits")
    g = simulate(model.network(), model.encode(d.x_test[:40]))
    acc = np.mean(g.decision == d.y_test[:40])
    assert f"accuracy: {acc:.2%} (40 images)" in out, out
    assert "spikes layer 1" in out and "lookups layer 0" in out


def test_classify_image_file(model_path, tmp_path, capsys):
    path, model = model_path
    dev = _device(model)
    _run(["load", str(path)], dev)
    x = load_dataset("digits").x_test[3]
    np.save(tmp_path / "img.npy", (x * 255).reshape(8, 8))
    assert _run(["classify", "--model", str(path), "--image", str(tmp_path / "img.npy")], dev) == 0
    g = simulate(model.network(), model.encode(x[None]))
    assert f"class {g.decision[0]} at step" in capsys.readouterr().out


def test_mismatched_model_and_no_learning(model_path, tmp_path, capsys):
    path, model = model_path
    rng = np.random.default_rng(1)
    other = TTFSModelFile.from_float([rng.normal(0, 0.3, (64, 12)), rng.normal(0, 0.3, (12, 10))])
    save_model(tmp_path / "other.npz", other)
    dev = _device(model)
    n = len(dev.requests)
    with pytest.raises(ValueError, match="layers"):
        _run(["load", str(tmp_path / "other.npz")], dev)
    assert len(dev.requests) == n + 1        # only IDENTIFY went out
    with pytest.raises(ValueError, match="learning"):
        _run(["train", "--model", str(path), "--dataset", "digits", "--range", "0:4"], dev)


def test_main_reports_bad_range(model_path, capsys):
    path, _ = model_path
    code = main(["board", "--port", f"fake:{path}", "classify", "--model", str(path),
                 "--dataset", "digits", "--range", "x"])
    assert code == 2 and "--range" in capsys.readouterr().err
