"""End to end: ``spikegate train ttfs`` then ``spikegate eval`` on digits with a tiny network."""

import json

import pytest

from spikegate.golden.model_file import load_model
from spikegate.scripts.cli import main


def test_train_then_eval(tmp_path, capsys):
    model = tmp_path / "tiny.npz"
    code = main(["train", "ttfs", "--dataset", "digits", "--hidden", "8", "--epochs", "1",
                 "--seed", "3", "-o", str(model), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "8-bit discrete accuracy" in out and f"wrote {model}" in out
    m = load_model(model)
    assert m.sizes == (64, 8, 10)
    assert m.training["dataset"] == "digits" and m.training["config"]["seed"] == 3
    assert 0 <= m.training["discrete_accuracy"] <= 1

    out_dir = tmp_path / "eval"
    code = main(["eval", str(model), "--out", str(out_dir)])
    out = capsys.readouterr().out
    assert code == 0, out
    for row in ("float accuracy", "8-bit discrete accuracy", "lookups layer 0->1",
                "lookups layer 1->2", "spikes to decision", "timesteps to decision"):
        assert row in out, f"missing row {row!r} in:\n{out}"
    for name in ("spikes_to_decision.png", "timesteps_to_decision.png"):
        data = (out_dir / name).read_bytes()
        assert data.startswith(b"\x89PNG"), name
    summary = json.loads((out_dir / "eval.json").read_text())
    assert summary["samples"] == 360
    assert summary["discrete_accuracy"] == pytest.approx(m.training["discrete_accuracy"])


def test_bad_arguments(tmp_path, capsys):
    assert main(["train", "ttfs", "--hidden", "8,x", "-o", str(tmp_path / "m.npz")]) == 2
    assert "--hidden" in capsys.readouterr().err
    assert main(["train", "ttfs", "--hidden", "4", "-o", str(tmp_path / "no" / "m.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
