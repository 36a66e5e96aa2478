"""``spikegate train pdnn`` end to end on digits with a tiny network."""

import json

import pytest

from spikegate.scripts.cli import main


def test_train_pdnn_digits_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "pdnn", "--hidden", "16", "--epochs", "1", "--train-limit", "600",
                 "--evals-per-epoch", "2", "--temporal", "--smoothing-steps", "50", "--quiet",
                 "--seed", "5", "--out", str(out)])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    res = results["temporal-digits"]
    assert res["sizes"] == [64, 16, 10]
    for name in ("mlp", "pdnn"):
        run = res["runs"][name]
        assert len(run["history"]) == 3                      # start + 2 evaluation points
        assert 0.0 <= run["final"]["test_acc"] <= 1.0
        assert run["ops"]["samples"] == 600
    assert res["runs"]["mlp"]["ops"]["kind"] == "madd" and res["runs"]["pdnn"]["ops"]["kind"] == "add"
    png = (out / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert list(out.glob("temporal_digits_train_600_50.npy")), "temporal order not cached"
    text = capsys.readouterr().out
    assert "temporal-digits" in text and "pdnn" in text and "mlp" in text


def test_train_pdnn_no_baseline_and_rules(tmp_path):
    out = tmp_path / "run"
    code = main(["train", "pdnn", "--hidden", "8,8", "--epochs", "0.5", "--train-limit", "300",
                 "--test-limit", "100", "--rule", "future", "--no-baseline", "--no-adapt", "--quiet",
                 "--out", str(out)])
    assert code == 0
    res = json.loads((out / "results.json").read_text())["digits"]
    assert list(res["runs"]) == ["pdnn"] and res["sizes"] == [64, 8, 8, 10]
    assert res["rule"] == "future" and res["adaptive"] is False


@pytest.mark.parametrize("argv, message", [
    (["--hidden", "0"], "--hidden"),
    (["--hidden", "a,b"], "--hidden"),
    (["--epochs", "0"], "--epochs"),
    (["--data-set", "mnist", "--data", "/nonexistent/dir"], "mnist"),
])
def test_train_pdnn_bad_arguments_exit_2(tmp_path, capsys, argv, message):
    code = main(["train", "pdnn", "--quiet", "--out", str(tmp_path / "x")] + argv)
    assert code == 2
    assert message in capsys.readouterr().err
