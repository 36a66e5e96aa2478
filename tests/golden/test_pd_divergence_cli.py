"""The backward coders' gains on the command line (``--kp-back`` / ``--kd-back``), the setting
that keeps deep PD networks from diverging (tests/golden/test_pd_divergence.py)."""

import json

import pytest

from spikegate.scripts.cli import main


def _train(tmp_path, *extra):
    out = tmp_path / "run"
    code = main(["train", "pdnn", "--hidden", "8", "--epochs", "0.2", "--train-limit", "200",
                 "--test-limit", "50", "--no-baseline", "--quiet", "--evals-per-epoch", "1",
                 "--out", str(out), *extra])
    assert code == 0
    return json.loads((out / "results.json").read_text())["digits"]


def test_backward_gains_reach_the_backward_coders_only(tmp_path):
    default = _train(tmp_path / "a")
    small = _train(tmp_path / "b", "--kp-back", "1", "--kd-back", "10")
    assert (default["kp_back"], default["kd_back"]) == (0.1, 1.0)
    assert (small["kp_back"], small["kd_back"]) == (1.0, 10.0)
    for (f_def, b_def), (f_small, b_small) in zip(default["runs"]["pdnn"]["k_beta"],
                                                   small["runs"]["pdnn"]["k_beta"]):
        # 40 samples of adaptation at rate 1e-3 move k_beta by a few per cent at most
        assert 0.85 < b_def <= 1 / 1.1 and 0.085 < b_small <= 1 / 11, (b_def, b_small)
        assert 0.85 < f_small <= 1 / 1.1 and 0.85 < f_def <= 1 / 1.1, (f_def, f_small)


def test_backward_gains_are_checked_before_the_data(tmp_path, capsys):
    code = main(["train", "pdnn", "--kp-back", "0", "--kd-back", "0", "--quiet",
                 "--out", str(tmp_path / "x")])
    assert code == 2
    err = capsys.readouterr().err
    assert "kp" in err and "kd" in err
    assert not (tmp_path / "x" / "results.json").exists()


@pytest.mark.parametrize("flag", ["--kp-back", "--kd-back"])
def test_negative_backward_gain_is_refused(tmp_path, capsys, flag):
    code = main(["train", "pdnn", flag, "-1", "--quiet", "--out", str(tmp_path / "x")])
    assert code == 2
    assert flag in capsys.readouterr().err
