"""``spikegate train ssgd`` end to end on the embedded digits set."""

import json

import pytest

from spikegate.scripts import cli


@pytest.fixture
def ssgd_only_cli(monkeypatch):
    """The CLI with only this command registered, so that the test does not depend on the
    other subcommands' modules (which are tested on their own)."""
    assert "train_ssgd" in cli._TRAIN_COMMANDS, "train_ssgd is not registered in scripts/cli.py"
    monkeypatch.setattr(cli, "_COMMANDS", ())
    monkeypatch.setattr(cli, "_TRAIN_COMMANDS", ("train_ssgd",))
    return cli


@pytest.mark.parametrize("backward", ["sparse", "dense"])
def test_train_ssgd_on_digits_writes_curves_and_learns(ssgd_only_cli, tmp_path, capsys,
                                                       backward):
    out = tmp_path / "run"
    code = ssgd_only_cli.main([
        "train", "ssgd", "--dataset", "digits", "--backward", backward, "--epochs", "4",
        "--hidden", "48", "48", "--steps", "40", "--lr", "1e-2", "--seed", "0",
        "--out", str(out), "--no-progress"])
    assert code == 0
    png = (out / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert (out / "params.npz").is_file()
    summary = json.loads((out / "history.json").read_text())
    hist = summary["history"]
    assert summary["backward"] == backward and summary["epochs"] == 4
    assert len(hist["test_acc"]) == 4 and len(hist["active"][0]) == 2
    assert hist["test_acc"][-1] > 0.5, f"seed 0, {backward}: test accuracy {hist['test_acc']}"
    assert all(0 < a < 0.2 for a in hist["active"][-1]), hist["active"][-1]
    printed = capsys.readouterr().out
    assert f"ssgd {backward} on digits: test accuracy" in printed


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "argument --epochs: must be a positive integer, not '0'"),
    (["--hidden", "16", "0"], "argument --hidden: must be a positive integer, not '0'"),
    (["--steps", "1"], "argument --steps: must be an integer >= 2, not '1'"),
    (["--limit-train", "10", "--batch-size", "64"], "fewer than one batch"),
    (["--b-th", "-1"], "argument --b-th: must be a positive number, not '-1'"),
])
def test_train_ssgd_reports_bad_arguments(ssgd_only_cli, tmp_path, capsys, argv, message):
    code = ssgd_only_cli.main(["train", "ssgd", "--out", str(tmp_path / "o"),
                               "--no-progress"] + argv)
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists(), "nothing is written for a bad command line"


def test_train_ssgd_missing_idx_directory_is_an_error(ssgd_only_cli, tmp_path, capsys):
    code = ssgd_only_cli.main(["train", "ssgd", "--dataset", "mnist", "--data",
                               str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "mnist" in capsys.readouterr().err
