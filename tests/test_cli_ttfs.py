"""End to end: ``spikegate train ttfs`` then ``spikegate eval`` on digits with a tiny network."""

import json

import numpy as np
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
    # Synaptic operations: the weights read (lookup fraction x layer size), against dense.
    reads = sum(summary["lookup_fraction"][l]["mean"] * a * b
                for l, (a, b) in enumerate(zip(m.sizes[:-1], m.sizes[1:])))
    ops = summary["synaptic_ops"]
    assert ops["mac"] == pytest.approx(reads) and ops["dense_mac"] == 64 * 8 + 8 * 10
    assert "synaptic ops (AC + MAC)" in out
    # The energy estimate without a build: each layer's weights read over the board's default
    # lanes (the lookup bound) at its default clock, all its device's logic cells.
    from spikegate.boards import icebreaker, ulx3s
    from spikegate.golden.data import load_dataset
    from spikegate.golden.ttfs_discrete import simulate
    from spikegate.sim.energy import estimate
    lk = simulate(m.network(), m.encode(load_dataset("digits").x_test)).lookups
    for board, lanes, clk, cells in (
            ("icebreaker", icebreaker.default_lanes(m.sizes), icebreaker.DEFAULT_CLK_HZ, 5280),
            ("ulx3s", (8, 8), ulx3s.DEFAULT_CLK_HZ, 83640)):
        e = summary["energy_estimate"][board]
        bound = float((lk / np.asarray(lanes, dtype=float)).sum(1).mean())
        assert e["cycles"] == pytest.approx(bound) and e["lanes"] == list(lanes)
        want = estimate(board, cycles=bound, weight_reads=reads, clock_mhz=clk / 1e6, luts=cells)
        assert e["total_uj"] == pytest.approx(want["total_uj"])
        assert "no build" in e["basis"] and "lower bound" in e["basis"]
    assert "energy ESTIMATE icebreaker" in out and "energy ESTIMATE ulx3s" in out


def test_bad_arguments(tmp_path, capsys):
    assert main(["train", "ttfs", "--hidden", "8,x", "-o", str(tmp_path / "m.npz")]) == 2
    assert "--hidden" in capsys.readouterr().err
    assert main(["train", "ttfs", "--hidden", "4", "-o", str(tmp_path / "no" / "m.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_checkpoint_writes_the_model_after_every_epoch(tmp_path, capsys):
    model = tmp_path / "ck.npz"
    code = main(["train", "ttfs", "--dataset", "digits", "--hidden", "6", "--epochs", "2",
                 "--seed", "1", "-o", str(model), "--quiet", "--checkpoint",
                 "--late", "0.01", "--late-target", "3"])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    lines = [l for l in captured.err.splitlines() if l.startswith("epoch ")]
    assert [l.split(":")[0] for l in lines] == ["epoch 1", "epoch 2"], captured.err
    assert all("8-bit" in l and f"wrote {model}" in l for l in lines), lines
    m = load_model(model)
    assert m.training["epochs_done"] == 2
    assert len(m.training["late_history"]) == len(m.training["hidden_before_history"]) == 2
    assert m.training["config"]["late_target"] == 3.0
    assert not [p for p in tmp_path.iterdir() if p.name != model.name], "temporary files left"


def test_per_dataset_defaults():
    from spikegate.scripts.train_ttfs import configs_for
    enc, cfg, disc = configs_for("mnist")
    assert (enc.mode, enc.threshold) == ("binary", 0.55)
    assert cfg.late_target == 25 and cfg.grid_dt == disc.dt and cfg.grid_steps == disc.timesteps
    enc, cfg, _ = configs_for("mnist", threshold=0.5, late_target=0.0)
    assert enc.threshold == 0.5 and cfg.late_target == 0
    # digits: the network the hardware tests use is unchanged
    enc, cfg, disc = configs_for("digits")
    assert (enc.mode, enc.t_max, cfg.late, cfg.epochs) == ("graded", 2.0, 0.0, 100)
    assert (disc.timesteps, disc.dt) == (64, 1 / 16)


def test_validation_split_chooses_the_epoch_and_leaves_the_test_split_to_the_end(tmp_path, capsys):
    from spikegate.scripts.train_ttfs import split_validation
    tr, va = split_validation(100, 30, seed=4)
    assert len(va) == 30 and len(tr) == 70 and not set(tr) & set(va)
    assert sorted(np.concatenate([tr, va])) == list(range(100))
    assert np.array_equal(va, split_validation(100, 30, seed=4)[1])
    assert not np.array_equal(va, split_validation(100, 30, seed=5)[1])
    with pytest.raises(ValueError, match="validation split"):
        split_validation(100, 100)

    model = tmp_path / "v.npz"
    code = main(["train", "ttfs", "--dataset", "digits", "--hidden", "8", "--epochs", "3",
                 "--val", "300", "--val-seed", "2", "--shift", "1", "--rotate", "10",
                 "--scale", "0.1", "-o", str(model), "--quiet", "--checkpoint"])
    captured = capsys.readouterr()
    assert code == 0, captured.out + captured.err
    lines = [l for l in captured.err.splitlines() if l.startswith("epoch ")]
    assert len(lines) == 3 and all("validation float" in l and "test float" not in l and f"wrote {model}" in l
                                   for l in lines), lines
    m = load_model(model)
    v = m.training["validation"]
    assert (v["samples"], v["seed"], v["keep"]) == (300, 2, "best")
    assert m.training["train_samples"] == 1437 - 300
    assert m.training["config"]["shift"] == 1
    assert (m.training["config"]["rotate"], m.training["config"]["scale"]) == (10.0, 0.1)
    accs = [row["discrete_accuracy"] for row in v["curve"]]
    assert [row["epoch"] for row in v["curve"]] == [1, 2, 3]
    assert v["best_epoch"] == 1 + int(np.argmax(accs)) == v["epochs_kept"]
    # the kept weights are the best epoch's: their validation accuracy is the curve's best
    from spikegate.golden.data import load_dataset
    from spikegate.scripts.eval_ttfs import evaluate
    ds = load_dataset("digits")
    _, va = split_validation(1437, 300, seed=2)
    s, _ = evaluate(m, ds.x_train[va], ds.y_train[va])
    assert s["discrete_accuracy"] == max(accs)
    assert main(["train", "ttfs", "--dataset", "digits", "--hidden", "8", "--epochs", "1",
                 "--val", "1437", "-o", str(tmp_path / "w.npz"), "--quiet"]) == 2
    assert "validation split" in capsys.readouterr().err


def test_init_starts_from_a_model_files_weights(tmp_path, capsys):
    first = tmp_path / "a.npz"
    assert main(["train", "ttfs", "--dataset", "digits", "--hidden", "8", "--epochs", "2",
                 "-o", str(first), "--quiet"]) == 0
    again = tmp_path / "b.npz"
    # a learning rate too small to move a weight: the result is the initial model's
    assert main(["train", "ttfs", "--dataset", "digits", "--hidden", "8", "--epochs", "1",
                 "--lr", "1e-12", "--init", str(first), "-o", str(again), "--quiet"]) == 0
    a, b = load_model(first), load_model(again)
    for wa, wb in zip(a.float_weights, b.float_weights):
        np.testing.assert_allclose(wb, wa, atol=1e-6)
    assert b.training["init"] == str(first)
    assert b.training["discrete_accuracy"] == pytest.approx(a.training["discrete_accuracy"], abs=0.01)
    capsys.readouterr()
    assert main(["train", "ttfs", "--dataset", "digits", "--hidden", "9", "--epochs", "1",
                 "--init", str(first), "-o", str(tmp_path / "c.npz"), "--quiet"]) == 2
    assert "64-8-10, not 64-9-10" in capsys.readouterr().err
