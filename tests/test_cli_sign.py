"""``spikegate train ttfs --rule sign``: from random weights, then fine-tuning that file (digits)."""

import numpy as np

from spikegate.golden.model_file import load_model
from spikegate.golden.sign_backprop import train_sign
from spikegate.golden.ttfs_discrete import DiscreteNetwork
from spikegate.scripts.cli import main


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
    assert m2.training["init"] == "model (sign rule)" and m2.thetas == m.thetas
    # the CLI's fine-tuning is train_sign on the loaded network with seed + epoch
    net = DiscreteNetwork(list(m.int_weights), list(m.thetas), m.discrete)
    from spikegate.golden.data import load_dataset
    ds = load_dataset("digits")
    train_sign(net, m.encode(ds.x_train[:50]), ds.y_train[:50], epochs=1, lr_shift=2, seed=7)
    for l, (a, b) in enumerate(zip(net.weights, m2.int_weights)):
        assert np.array_equal(a, b), f"seed 7: layer {l} differs from the library's training"
    assert any(not np.array_equal(a, b) for a, b in zip(m.int_weights, m2.int_weights))


def test_train_sign_bad_arguments(tmp_path, capsys):
    out = tmp_path / "m.npz"
    assert main(["train", "ttfs", "--rule", "sign", "--lr-shift", "7", "-o", str(out)]) == 2
    assert "--lr-shift" in capsys.readouterr().err
    assert main(["train", "ttfs", "--rule", "sign", "--init", str(tmp_path / "none.npz"),
                 "-o", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "ttfs", "--rule", "sign", "--theta", "0", "-o", str(out)]) == 2
    assert "--theta" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
