"""``spikegate train ttfs --rule sign``: from random weights, then fine-tuning that file (digits)."""

import numpy as np
import pytest

from spikegate.golden.model_file import load_model
from spikegate.golden.sign_backprop import requantize, train_sign
from spikegate.golden.ttfs_discrete import DiscreteNetwork
from spikegate.scripts.cli import main
from spikegate.scripts.train_sign import scaled_thetas, split_validation


def test_train_sign_random_then_finetune(tmp_path, capsys):
    model = tmp_path / "sign.npz"
    code = main(["train", "ttfs", "--rule", "sign", "--dataset", "digits", "--hidden", "8",
                 "--epochs", "1", "--train-limit", "200", "--seed", "5", "--theta", "40",
                 "-o", str(model), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "8-bit discrete accuracy" in out and f"wrote {model}" in out
    m = load_model(model)
    assert m.sizes == (64, 8, 10) and m.thetas == [40, 40]
    t = m.training
    assert t["rule"] == "sign" and t["init"] == "random" and t["config"]["seed"] == 5
    assert len(t["test_accuracy_history"]) == 1
    assert t["discrete_accuracy"] == t["test_accuracy_history"][-1]
    for q, f, th in zip(m.int_weights, m.float_weights, m.thetas):
        assert np.array_equal(f, q.astype(np.float32) / np.float32(th))

    tuned = tmp_path / "tuned.npz"
    code = main(["train", "ttfs", "--rule", "sign", "--init", str(model), "--epochs", "1",
                 "--train-limit", "50", "--lr-shift", "2", "--seed", "7", "-o", str(tuned),
                 "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    m2 = load_model(tuned)
    assert m2.training["init"] == "model (sign rule)"
    # the CLI's fine-tuning (defaults: first layer's threshold doubled, errors only) is
    # train_sign on the requantized network with seed + epoch
    assert m2.thetas == [80, 40] and m2.training["config"]["errors_only"] is True
    net = requantize(m.float_weights, [80, 40], m.discrete)
    from spikegate.golden.data import load_dataset
    ds = load_dataset("digits")
    train_sign(net, m.encode(ds.x_train[:50]), ds.y_train[:50], epochs=1, lr_shift=2, seed=7,
               errors_only=True)
    for l, (a, b) in enumerate(zip(net.weights, m2.int_weights)):
        assert np.array_equal(a, b), f"seed 7: layer {l} differs from the library's training"
    assert not np.array_equal(m2.int_weights[0], np.clip(2 * m.int_weights[0].astype(int), -128, 127))

    # the rule as the hardware runs it by itself: no requantizing, every image
    plain = tmp_path / "plain.npz"
    code = main(["train", "ttfs", "--rule", "sign", "--init", str(model), "--epochs", "1",
                 "--train-limit", "50", "--lr-shift", "2", "--seed", "7", "-o", str(plain),
                 "--theta-scale", "1", "--no-errors-only", "--quiet"])
    assert code == 0, capsys.readouterr().out
    m3 = load_model(plain)
    net = DiscreteNetwork(list(m.int_weights), list(m.thetas), m.discrete)
    train_sign(net, m.encode(ds.x_train[:50]), ds.y_train[:50], epochs=1, lr_shift=2, seed=7)
    for l, (a, b) in enumerate(zip(net.weights, m3.int_weights)):
        assert np.array_equal(a, b), f"seed 7: layer {l} differs from the library's training"
    assert any(not np.array_equal(a, b) for a, b in zip(m.int_weights, m3.int_weights))


def test_train_sign_validation_split(tmp_path, capsys):
    """--val-split: the kept epoch is the best on the held-out images (seed 3)."""
    model = tmp_path / "sign.npz"
    code = main(["train", "ttfs", "--rule", "sign", "--dataset", "digits", "--hidden", "8",
                 "--epochs", "3", "--train-limit", "300", "--seed", "3", "--theta", "40",
                 "--val-split", "0.25", "-o", str(model), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    t = load_model(model).training
    assert t["val_samples"] == 75 and t["train_samples"] == 225
    val = t["val_accuracy_history"]
    assert len(val) == 3 and t["selected_epoch"] == 1 + int(np.argmax(val)), val
    assert t["discrete_accuracy"] == t["test_accuracy_history"][t["selected_epoch"] - 1]
    assert t["final_test_accuracy"] == t["test_accuracy_history"][-1]
    assert f"kept epoch {t['selected_epoch']}" in out


def test_train_sign_stochastic(tmp_path, capsys):
    """--stochastic-k: train_sign with one UpdateLFSR for the run (seed 4)."""
    from spikegate.golden.data import load_dataset
    from spikegate.golden.sign_backprop import UpdateLFSR, random_discrete_network

    model = tmp_path / "st.npz"
    code = main(["train", "ttfs", "--rule", "sign", "--dataset", "digits", "--hidden", "8",
                 "--epochs", "2", "--train-limit", "100", "--seed", "4", "--theta", "40",
                 "--stochastic-k", "2", "--no-errors-only", "-o", str(model), "--quiet"])
    assert code == 0, capsys.readouterr().out
    m = load_model(model)
    assert m.training["config"]["stochastic_k"] == 2
    ds = load_dataset("digits")
    steps = m.encode(ds.x_train[:100])
    net = random_discrete_network((64, 8, 10), seed=4, theta=40, config=m.discrete,
                                  input_rate=float(np.mean(steps >= 0)))
    lf = UpdateLFSR(2)
    for epoch in range(2):
        train_sign(net, steps, ds.y_train[:100], epochs=1, seed=4 + epoch, lfsr=lf)
    for l, (a, b) in enumerate(zip(net.weights, m.int_weights)):
        assert np.array_equal(a, b), f"seed 4: layer {l} differs from the library's training"


def test_split_validation_and_scaled_thetas():
    tr, va = split_validation(100, 0.2)
    assert len(tr) == 80 and len(va) == 20 and not set(tr) & set(va)
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(100))
    tr2, va2 = split_validation(100, 0.2)
    assert np.array_equal(va, va2)                       # fixed (VAL_SEED)
    assert len(split_validation(100, 0.0)[1]) == 0
    for bad in (-0.1, 1.0, "0.2"):
        with pytest.raises(ValueError, match="val-split"):
            split_validation(100, bad)
    assert scaled_thetas([150, 300], (2, 1)) == [300, 300]
    assert scaled_thetas([150, 300], "1.5") == [225, 300]       # first layer only
    assert scaled_thetas([150, 300], "1.5,2") == [225, 600]
    assert scaled_thetas([3000, 1], (2, 2)) == [4095, 2]  # at most THETA_MAX
    for bad in ("2,x", (1, 2, 3), 0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="theta.scale"):
            scaled_thetas([150, 300], bad)


def test_train_sign_bad_arguments(tmp_path, capsys):
    out = tmp_path / "m.npz"
    assert main(["train", "ttfs", "--rule", "sign", "--lr-shift", "7", "-o", str(out)]) == 2
    assert "--lr-shift" in capsys.readouterr().err
    assert main(["train", "ttfs", "--rule", "sign", "--init", str(tmp_path / "none.npz"),
                 "-o", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "ttfs", "--rule", "sign", "--theta", "0", "-o", str(out)]) == 2
    assert "--theta" in capsys.readouterr().err
    assert main(["train", "ttfs", "--rule", "sign", "--theta-scale", "0", "-o", str(out)]) == 2
    assert "theta scale" in capsys.readouterr().err.replace("-", " ")
    assert main(["train", "ttfs", "--rule", "sign", "--val-split", "1", "-o", str(out)]) == 2
    assert "--val-split" in capsys.readouterr().err
    assert main(["train", "ttfs", "--rule", "sign", "--stochastic-k", "9", "-o", str(out)]) == 2
    assert "--stochastic-k: must be an integer from 0 to 8, not '9'" in capsys.readouterr().err
    assert main(["train", "ttfs", "--rule", "sign", "--epochs", "0", "-o", str(out)]) == 2
    assert "--epochs: must be a positive integer, not '0'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
