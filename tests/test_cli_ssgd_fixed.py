"""``spikegate train ssgd-fixed`` end to end on a slice of the embedded digits set."""

import json

import numpy as np
import pytest

from spikegate.golden import ssgd_train_fixed as F
from spikegate.golden.data import load_dataset
from spikegate.golden.ssgd_model_file import load_ssgd_model
from spikegate.scripts import cli


@pytest.fixture
def fixed_only_cli(monkeypatch):
    """The CLI with only this command registered."""
    assert "train_ssgd_fixed" in cli._TRAIN_COMMANDS, "train_ssgd_fixed is not registered"
    monkeypatch.setattr(cli, "_COMMANDS", ())
    monkeypatch.setattr(cli, "_TRAIN_COMMANDS", ("train_ssgd_fixed",))
    return cli


def test_trains_prints_the_table_and_saves_the_golden_weights(fixed_only_cli, tmp_path,
                                                               capsys):
    out = tmp_path / "run"
    code = fixed_only_cli.main([
        "train", "ssgd-fixed", "--limit-train", "150", "--val", "50", "--limit-test", "60",
        "--hidden", "16", "--epochs", "2", "--seed", "3", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "fixed (bit-exact)" in printed and "float (same algorithm)" in printed
    model = load_ssgd_model(out / "model.npz")
    assert model.sizes == [64, 16, 10] and model.fmt == F.TrainFormat()
    # the saved weights are the golden training's, image by image from the same seed
    d = load_dataset("digits")
    times = F.encode(d.x_train[:100], model.fmt)
    w, _ = F.train_fixed(F.init_weights((64, 16, 10), model.fmt, seed=3), times,
                         d.y_train[:100], model.fmt, epochs=2, seed=3, decay_every=4)
    assert all(np.array_equal(a, b) for a, b in zip(model.weights, w))
    summary = json.loads((out / "history.json").read_text())
    info = summary["info"]
    assert (info["n_train"], info["n_val"], info["n_test"]) == (100, 50, 60)
    assert 0 < info["active_fraction"] < 0.2 and info["events_per_image"] > 0
    assert len(summary["fixed"]["loss"]) == 2 and len(summary["float"]["loss"]) == 2


def test_a_validation_split_that_leaves_nothing_is_refused(fixed_only_cli, tmp_path, capsys):
    code = fixed_only_cli.main(["train", "ssgd-fixed", "--limit-train", "50", "--val", "50",
                                "--out", str(tmp_path / "o")])
    assert code == 2
    assert "--val 50 leaves no training images (of 50)" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
