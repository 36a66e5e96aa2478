"""Tests of the SSGD model file (spikegate.golden.ssgd_model_file): round trip and refusals."""

import json

import numpy as np
import pytest

from spikegate.golden import ssgd_train_fixed as F
from spikegate.golden.model_file import ModelFileError, read_npz, write_container
from spikegate.golden.ssgd_model_file import SSGDModelFile, load_ssgd_model, save_ssgd_model

FMT = F.TrainFormat(n_steps=24, lr1_shift=19)


def _model():
    return SSGDModelFile(F.init_weights((64, 12, 10), FMT, seed=1), FMT, {"seed": 1})


def test_round_trip(tmp_path):
    m = _model()
    save_ssgd_model(tmp_path / "m.npz", m)
    r = load_ssgd_model(tmp_path / "m.npz")
    assert r.fmt == FMT and r.training == {"seed": 1} and r.sizes == [64, 12, 10]
    for a, b in zip(r.weights, m.weights):
        assert np.array_equal(a, b)


def _rewrite(tmp_path, change_meta=None, change_arrays=None):
    save_ssgd_model(tmp_path / "m.npz", _model())
    arrays = read_npz(tmp_path / "m.npz", pytest.fail)
    meta = json.loads(str(arrays.pop("meta")))
    if change_meta:
        change_meta(meta)
    if change_arrays:
        change_arrays(arrays)
    write_container(tmp_path / "m.npz", meta, arrays)
    return tmp_path / "m.npz"


@pytest.mark.parametrize("change_meta, change_arrays, match", [
    (lambda m: m.update(version=2), None, "SSGD format version is 2, expected 1"),
    (lambda m: m.update(algorithm="pdnn"), None, "algorithm is 'pdnn', expected 'ssgd'"),
    (lambda m: m.update(sizes=[64, 12]), None, "sizes is"),
    (lambda m: m["train_format"].pop("d_shift"), None, "expected the fields"),
    (lambda m: m["train_format"].update(n_steps=1), None, "bad train_format"),
    (None, lambda a: a.update(w_int_1=a["w_int_1"].astype(np.int16)), "w_int_1 has dtype int16"),
    (None, lambda a: a.update(w_int_0=a["w_int_0"][:5]), "w_int_0 has shape"),
    (None, lambda a: a.update(extra=np.zeros(1)), "arrays are"),
])
def test_bad_files_are_refused(tmp_path, change_meta, change_arrays, match):
    path = _rewrite(tmp_path, change_meta, change_arrays)
    with pytest.raises(ModelFileError, match=match):
        load_ssgd_model(path)


def test_bad_models_are_not_written(tmp_path):
    w1, w2 = _model().weights
    bad = w1.copy()
    bad[0, 0], bad[0, 1] = 200, -128
    with pytest.raises(ModelFileError, match=r"w_int_0 holds values in \[-128, 200\]"):
        save_ssgd_model(tmp_path / "m.npz", SSGDModelFile((bad, w2), FMT))
    with pytest.raises(ModelFileError, match="do not chain"):
        save_ssgd_model(tmp_path / "m.npz", SSGDModelFile((w1, w2[:3]), FMT))
    assert not (tmp_path / "m.npz").exists()
    with pytest.raises(FileNotFoundError):
        load_ssgd_model(tmp_path / "m.npz")
