"""Bad command-line input is refused before any work starts, with the value and what was
expected, and nothing is written.

Each case runs ``spikegate ARGS`` (or a ``bench_*`` script's ``main``) in an empty directory
holding only a few prepared files. The entry points of the work (training, evaluation,
simulation, synthesis of the default network, the serial port) are replaced by a function
that raises :class:`WorkStarted`, so a refusal that comes after the work has begun fails the
test; afterwards the directory must hold nothing new. README.md ("Bad input") lists the same
cases.
"""

import importlib
import os

import numpy as np
import pytest

from spikegate.golden.model_file import TTFSModelFile, save_model
from spikegate.scripts import args as A
from spikegate.scripts.cli import main

# Files every case finds in its directory: a 64-16-10 model, a corrupt model, a plain file
# and an empty directory.
PREPARED = ("m.npz", "bad.npz", "file.txt", "dir")

LANES = "must be an integer from 1 to 64, or one per weight layer separated by commas"

# (arguments, exit code, a part of the message on stderr); one block per command.
CASES = [
    # spikegate run
    (["run", "--lanes", "0"], 2, f"argument --lanes: {LANES} (e.g. 2,1), not '0'"),
    (["run", "--lanes", "8,x"], 2, f"argument --lanes: {LANES}"),
    (["run", "--lanes", "2,2,2"], 2,
     "--lanes 2,2,2 gives 3 layers but the network 64-64-10 has 2 weight layers"),
    (["run", "--board-lanes", "1,1,1"], 2, "--board-lanes 1,1,1 gives 3 layers"),
    (["run", "--board-lanes", "16"], 2,
     "does not fit the iCE40UP5K: it needs 64 ICESTORM_DSP but the device has 8"),
    (["run", "--epochs", "0"], 2, "argument --epochs: must be a positive integer, not '0'"),
    (["run", "--epochs", "1.5"], 2, "argument --epochs: must be a positive integer, not '1.5'"),
    (["run", "--images", "0"], 2, "argument --images: must be a positive integer, not '0'"),
    (["run", "--images", "361"], 2, "--images 361: digits has 360 test images"),
    (["run", "--hidden", "64,0"], 2,
     "argument --hidden: must be positive integers separated by commas, not '64,0'"),
    (["run", "--seed", "-1"], 2, "argument --seed: must be a non-negative integer, not '-1'"),
    (["run", "--board", "de10"], 2, "argument --board: invalid choice: 'de10'"),
    (["run", "--model", "missing.npz"], 2, "argument --model: file 'missing.npz' does not exist"),
    (["run", "--model", "bad.npz"], 2, "model file 'bad.npz': truncated or corrupt"),
    (["run", "--model", "m.npz", "--lanes", "1,1,1"], 2,
     "--lanes 1,1,1 gives 3 layers but the network 64-16-10 has 2 weight layers"),
    (["run", "--data", "nowhere"], 2, "argument --data: directory 'nowhere' does not exist"),
    (["run", "--dataset", "mnist", "--data", "dir"], 2, "mnist"),
    (["run", "--out", "file.txt"], 2, "argument --out: 'file.txt' is a file, not a directory"),
    (["run", "--out", "file.txt/run"], 2, "directory 'file.txt/run' cannot be created"),
    # spikegate sim / compare
    (["sim", "missing.npz"], 2, "argument model: file 'missing.npz' does not exist"),
    (["sim", "dir"], 2, "argument model: 'dir' is a directory, not a file"),
    (["sim", "m.npz", "--lanes", "65"], 2, f"argument --lanes: {LANES}"),
    (["compare", "m.npz", "--images", "0"], 2, "argument --images: must be a positive integer"),
    (["compare", "m.npz", "--lanes", "4,4,4"], 2, "--lanes 4,4,4 gives 3 layers"),
    # spikegate train ttfs
    (["train", "ttfs", "--epochs", "0"], 2, "argument --epochs: must be a positive integer, not '0'"),
    (["train", "ttfs", "--hidden", "0"], 2, "argument --hidden: must be positive integers"),
    (["train", "ttfs", "--hidden", "8,x"], 2, "argument --hidden: must be positive integers"),
    (["train", "ttfs", "--batch-size", "0"], 2, "argument --batch-size: must be a positive integer"),
    (["train", "ttfs", "--lr", "0"], 2, "argument --lr: must be a positive number, not '0'"),
    (["train", "ttfs", "--lr", "nan"], 2, "argument --lr: must be a positive number, not 'nan'"),
    (["train", "ttfs", "--lr-decay", "1.5"], 2, "argument --lr-decay: must be a number in (0, 1]"),
    (["train", "ttfs", "--dropout", "1"], 2, "argument --dropout: must be a number in [0, 1)"),
    (["train", "ttfs", "--late", "-1"], 2, "argument --late: must be a non-negative number"),
    (["train", "ttfs", "--threshold", "1"], 2, "argument --threshold: must be a number in [0, 1)"),
    (["train", "ttfs", "--timesteps", "0"], 2, "argument --timesteps: must be a positive integer"),
    (["train", "ttfs", "--timesteps", "5000"], 2, "timesteps must be an integer from 1 to 4096"),
    (["train", "ttfs", "--dt", "0"], 2, "argument --dt: must be a positive number"),
    (["train", "ttfs", "--softmax-scale", "0"], 2, "argument --softmax-scale: must be a positive number"),
    (["train", "ttfs", "--train-limit", "0"], 2, "argument --train-limit: must be a positive integer"),
    (["train", "ttfs", "--threads", "0"], 2, "argument --threads: must be a positive integer"),
    (["train", "ttfs", "--seed", "-1"], 2, "argument --seed: must be a non-negative integer"),
    (["train", "ttfs", "--rotate", "200"], 2,
     "argument --rotate: must be a number in [0, 180], not '200'"),
    (["train", "ttfs", "--scale", "1"], 2, "argument --scale: must be a number in [0, 1), not '1'"),
    (["train", "ttfs", "--data", "nowhere"], 2, "argument --data: directory 'nowhere' does not exist"),
    (["train", "ttfs", "-o", "dir"], 2, "argument -o/--output: 'dir' is a directory, not a file"),
    (["train", "ttfs", "-o", "no/m.npz"], 2, "argument -o/--output: output directory 'no' does not exist"),
    # spikegate train ttfs --rule sign
    (["train", "ttfs", "--rule", "sign", "--epochs", "0"], 2, "argument --epochs: must be a positive integer"),
    (["train", "ttfs", "--rule", "sign", "--lr-shift", "7"], 2,
     "argument --lr-shift: must be an integer from 0 to 6, not '7'"),
    (["train", "ttfs", "--rule", "sign", "--theta", "0"], 2,
     "argument --theta: must be an integer from 1 to 4095, not '0'"),
    (["train", "ttfs", "--rule", "sign", "--theta-scale", "0"], 2,
     "argument --theta-scale: a theta scale must be a positive number, not 0.0"),
    (["train", "ttfs", "--rule", "sign", "--theta-scale", "2,x"], 2,
     "argument --theta-scale: --theta-scale must be numbers separated by commas, not '2,x'"),
    (["train", "ttfs", "--rule", "sign", "--stochastic-k", "9"], 2,
     "argument --stochastic-k: must be an integer from 0 to 8, not '9'"),
    (["train", "ttfs", "--rule", "sign", "--val-split", "1"], 2,
     "argument --val-split: must be a number in [0, 1), not '1'"),
    (["train", "ttfs", "--rule", "sign", "--t-max", "0"], 2, "argument --t-max: must be a positive number"),
    (["train", "ttfs", "--rule", "sign", "--init", "missing.npz"], 2,
     "argument --init: file 'missing.npz' does not exist (give a model file, or 'random')"),
    # spikegate train pdnn
    (["train", "pdnn", "--epochs", "0"], 2, "argument --epochs: must be a positive number, not '0'"),
    (["train", "pdnn", "--hidden", "0"], 2, "argument --hidden: must be positive integers"),
    (["train", "pdnn", "--kp", "-1"], 2, "argument --kp: must be a non-negative number, not '-1'"),
    (["train", "pdnn", "--kp", "0"], 2, "the past/future/STDP rules need rx * re < 1 (kp > 0)"),
    (["train", "pdnn", "--adaptation-rate", "2"], 2, "argument --adaptation-rate: must be a number in [0, 1]"),
    (["train", "pdnn", "--evals-per-epoch", "0"], 2, "argument --evals-per-epoch: must be a positive integer"),
    (["train", "pdnn", "--smoothing-steps", "0"], 2, "argument --smoothing-steps: must be a positive integer"),
    (["train", "pdnn", "--test-limit", "0"], 2, "argument --test-limit: must be a positive integer"),
    (["train", "pdnn", "--seed", "-5"], 2, "argument --seed: must be a non-negative integer"),
    (["train", "pdnn", "--out", "file.txt"], 2, "argument --out: 'file.txt' is a file, not a directory"),
    # spikegate train ssgd
    (["train", "ssgd", "--epochs", "0"], 2, "argument --epochs: must be a positive integer, not '0'"),
    (["train", "ssgd", "--hidden", "16", "0"], 2, "argument --hidden: must be a positive integer, not '0'"),
    (["train", "ssgd", "--steps", "1"], 2, "argument --steps: must be an integer >= 2, not '1'"),
    (["train", "ssgd", "--b-th", "-1"], 2, "argument --b-th: must be a positive number, not '-1'"),
    (["train", "ssgd", "--batch-size", "0"], 2, "argument --batch-size: must be a positive integer"),
    (["train", "ssgd", "--limit-test", "0"], 2, "argument --limit-test: must be a positive integer"),
    (["train", "ssgd", "--limit-train", "10", "--batch-size", "64"], 2,
     "10 training samples is fewer than one batch (--batch-size 64)"),
    # spikegate eval
    (["eval", "missing.npz"], 2, "argument MODEL: file 'missing.npz' does not exist"),
    (["eval", "bad.npz"], 2, "model file 'bad.npz': truncated or corrupt"),
    (["eval", "m.npz", "--limit", "0"], 2, "argument --limit: must be a positive integer, not '0'"),
    (["eval", "m.npz", "--out", "file.txt"], 2, "argument --out: 'file.txt' is a file, not a directory"),
    (["eval", "m.npz", "--data", "nowhere"], 2, "argument --data: directory 'nowhere' does not exist"),
    # spikegate synth
    (["synth", "--board", "icebreaker", "--lanes", "0"], 2, f"argument --lanes: {LANES}"),
    (["synth", "--board", "icebreaker", "--clock-mhz", "0"], 2,
     "argument --clock-mhz: must be a positive number, not '0'"),
    (["synth", "--board", "icebreaker", "--model", "missing.npz"], 2,
     "argument --model: file 'missing.npz' does not exist"),
    (["synth", "--board", "icebreaker", "--seed", "3-1"], 2, "argument --seed: seeds must be"),
    (["synth", "--board", "icebreaker", "--lanes", "16"], 1,
     "does not fit: the design does not fit the iCE40UP5K"),
    (["synth", "--board", "icebreaker", "--model", "m.npz", "--lanes", "1,1,1"], 2,
     "lanes must be an integer from 1 to 64, or 2 of them (one per weight layer), not (1, 1, 1)"),
    (["synth", "--board", "icebreaker", "--out", "file.txt"], 2, "argument --out: 'file.txt' is a file"),
    # spikegate board
    (["board", "--baud", "0", "identify"], 2, "argument --baud: must be a positive integer, not '0'"),
    (["board", "--timeout", "0", "identify"], 2, "argument --timeout: must be a positive number"),
    (["board", "load", "missing.npz"], 2, "argument MODEL: file 'missing.npz' does not exist"),
    (["board", "classify", "--model", "m.npz"], 2, "give --image FILE or --dataset NAME"),
    (["board", "classify", "--model", "m.npz", "--image", "missing.png"], 2,
     "argument --image: file 'missing.png' does not exist"),
    (["board", "classify", "--model", "m.npz", "--dataset", "digits", "--range", "5:5"], 2,
     "argument --range: must be A:B with integers 0 <= A < B (either may be left out), not '5:5'"),
    (["board", "classify", "--model", "m.npz", "--dataset", "digits", "--range=-1:3"], 2,
     "argument --range: must be A:B"),
    (["board", "classify", "--model", "m.npz", "--dataset", "digits", "--range", "400:500"], 2,
     "--range 400:500 selects no test image of digits (360 test images)"),
    (["board", "train", "--model", "m.npz", "--dataset", "digits", "--epochs", "0"], 2,
     "argument --epochs: must be a positive integer, not '0'"),
    (["board", "train", "--model", "m.npz", "--dataset", "digits", "--lr-shift", "7"], 2,
     "argument --lr-shift: must be an integer from 0 to 6"),
    (["board", "train", "--model", "m.npz", "--dataset", "digits", "--lfsr-k", "9"], 2,
     "argument --lfsr-k: must be an integer from 0 to 8"),
]

# (module of spikegate.scripts, arguments, a part of the message); argparse exits with 2.
BENCH_CASES = [
    ("bench_hw", ["--lanes", "0"], "argument --lanes: must be an integer from 1 to 64"),
    ("bench_hw", ["--lanes", "4;8,65"], "argument --lanes: must be an integer from 1 to 64"),
    ("bench_hw", ["--images", "0"], "argument --images: must be a positive integer"),
    ("bench_hw", ["--sim", "modelsim"], "argument --sim: invalid choice: 'modelsim'"),
    ("bench_ttfs", ["--epochs", "0"], "argument --epochs: must be a positive integer"),
    ("bench_ttfs", ["--only", "cifar"], "unknown bench 'cifar'"),
    ("bench_sign", ["--seeds", "0,-1"], "argument --seeds: must be non-negative integers"),
    ("bench_sign", ["--only", "exact,fast"], "argument --only: unknown run 'fast'"),
    ("bench_sign", ["--ft-epochs", "0"], "argument --ft-epochs: must be a positive integer"),
    ("bench_ssgd", ["--epochs", "0"], "argument --epochs: must be a positive integer"),
    ("bench_ssgd", ["--json", "no/r.json"], "argument --json: output directory 'no' does not exist"),
    ("bench_pdnn", ["--data", "dir", "--depths", "1,0"], "argument --depths: must be positive integers"),
    ("bench_pdnn", ["--data", "dir", "--epochs", "0"], "argument --epochs: must be a positive number"),
    ("bench_pdnn", ["--data", "dir", "--rule", "x"], "argument --rule: invalid choice: 'x'"),
    ("bench_boards", ["--digits-epochs", "0"], "argument --digits-epochs: must be a positive integer"),
    ("bench_boards", ["--boards", "icebreaker,de10"], "unknown board 'de10'"),
]


class WorkStarted(BaseException):
    """Raised by the stand-ins of the work; not an Exception, so nothing catches it."""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty directory (the current one) with the :data:`PREPARED` files; the work's
    entry points raise :class:`WorkStarted`."""
    rng = np.random.default_rng(0)
    save_model(tmp_path / "m.npz", TTFSModelFile.from_float([rng.normal(0.1, 0.3, (64, 16)),
                                                             rng.normal(0.1, 0.4, (16, 10))]))
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 this is not a model")
    (tmp_path / "file.txt").write_text("a file\n")
    (tmp_path / "dir").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPIKEGATE_DATA", raising=False)

    def started(*args, **kwargs):
        raise WorkStarted("the work started before the input was refused")

    from spikegate.scripts import (board, eval_ttfs, flow, synth, train_pdnn, train_sign,
                                   train_ssgd, train_ttfs)
    for module, name in ((train_ttfs, "train_model"), (train_sign, "train_sign_model"),
                         (train_pdnn, "prepare_data"), (train_pdnn, "run_pair"),
                         (train_ssgd, "train_run"), (eval_ttfs, "evaluate"),
                         (synth, "default_network"), (board, "open_transport")):
        monkeypatch.setattr(module, name, started)
    for stage in ("train", "eval", "sim", "synth"):
        monkeypatch.setattr(flow.Flow, stage, started)
    return tmp_path


def _ids(cases):
    return [" ".join(c[0] if isinstance(c[0], list) else [c[0]] + c[1]) for c in cases]


@pytest.mark.parametrize("argv, code, message", CASES, ids=_ids(CASES))
def test_bad_input_is_refused_before_work(workdir, capsys, argv, code, message):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert message in err, err
    assert len(err.strip().splitlines()[-1]) < 300, "the reason is one readable line"
    assert sorted(os.listdir(workdir)) == sorted(PREPARED), "a refused command wrote a file"


@pytest.mark.parametrize("module, argv, message", BENCH_CASES, ids=_ids(BENCH_CASES))
def test_bad_bench_input_is_refused_before_work(workdir, capsys, module, argv, message):
    bench = importlib.import_module(f"spikegate.scripts.{module}")
    with pytest.raises(SystemExit) as e:
        bench.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert sorted(os.listdir(workdir)) == sorted(PREPARED), "a refused command wrote a file"


def test_good_input_passes():
    """The same types accept what the commands document."""
    assert A.positive_int(" 7") == 7 and A.non_negative_int("0") == 0
    assert A.at_least(2)("2") == 2 and A.int_range(0, 6)("6") == 6
    assert A.positive_float("1e-3") == 1e-3 and A.non_negative_float("0") == 0.0
    assert A.number_in("(0, 1]")("1") == 1.0 and A.number_in("[0, 1)")("0") == 0.0
    assert A.positive_ints("128,64") == [128, 64] and A.int_list(1, allow_empty=True)("") == []
    assert A.lanes("8") == 8 and A.lanes("2,1") == (2, 1) and A.lanes("16") == 16


@pytest.mark.parametrize("type_, text", [
    (A.positive_int, ""), (A.positive_int, "-3"), (A.non_negative_int, "-1"),
    (A.int_range(0, 6), "7"), (A.int_range(0, 6), "x"), (A.positive_float, "inf"),
    (A.positive_float, "-0.5"), (A.number_in("(0, 1]"), "0"), (A.number_in("[0, 1)"), "1"),
    (A.positive_ints, ""), (A.positive_ints, "4,,4"), (A.lanes, "0"), (A.lanes, "1,65"),
])
def test_bad_values_name_the_value_and_are_value_errors(type_, text):
    with pytest.raises(ValueError, match="must be") as e:
        type_(text)
    assert isinstance(e.value, A.BadArgument) and repr(text) in str(e.value)


def test_check_names_the_option():
    with pytest.raises(A.BadArgument, match="^-o: output directory 'no' does not exist$"):
        A.check("-o", A.output_file, "no/m.npz")


def test_max_lanes_is_the_hardware_bound():
    from spikegate.boards.fit import check_fit
    # One weight layer: MAX_LANES (64) lanes take 128 of the 85F's 156 multipliers.
    check_fit((4, 2), A.MAX_LANES, "LFE5U-85F")
    with pytest.raises(ValueError, match="lanes must be an integer from 1 to 64"):
        check_fit((4, 2), A.MAX_LANES + 1, "LFE5U-85F")


def test_help_exits_zero(capsys):
    assert main(["run", "--help"]) == 0
    assert "--board-lanes" in capsys.readouterr().out
