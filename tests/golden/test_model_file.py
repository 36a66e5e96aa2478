"""Tests of spikegate.golden.model_file: round trip, atomic writes, every bad-file error."""

import io
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from spikegate.golden import model_file as mf
from spikegate.golden.encoding import EncodingConfig, encode
from spikegate.golden.model_file import (FORMAT_VERSION, ModelFileError, TTFSModelFile,
                                         load_model, save_model)
from spikegate.golden.ttfs_discrete import (DiscreteConfig, DiscreteNetwork, quantize_layer,
                                            times_to_steps)


def _model(seed=0, sizes=(12, 7, 3)):
    rng = np.random.default_rng(seed)
    ws = [rng.normal(0.1, 0.3, (a, b)) for a, b in zip(sizes[:-1], sizes[1:])]
    return TTFSModelFile.from_float(
        ws, discrete=DiscreteConfig(timesteps=48, dt=1 / 12, z_frac_bits=10),
        encoding=EncodingConfig("binary", threshold=0.25),
        training={"dataset": "digits", "seed": seed, "float_accuracy": 0.5})


def _arrays(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _write_raw(path, arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_round_trip(tmp_path):
    m = _model()
    path = tmp_path / "m.npz"
    save_model(path, m)
    r = load_model(path)
    assert r.sizes == (12, 7, 3)
    assert r.thetas == m.thetas and all(isinstance(t, int) for t in r.thetas)
    assert r.discrete == m.discrete and r.encoding == m.encoding and r.training == m.training
    for a, b in zip(r.int_weights, m.int_weights):
        assert a.dtype == np.int8
        np.testing.assert_array_equal(a, b)
    for a, b in zip(r.float_weights, m.float_weights):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    net = r.network()
    assert isinstance(net, DiscreteNetwork) and net.config == m.discrete
    for l, w in enumerate(m.float_weights):
        q, theta = quantize_layer(w)
        np.testing.assert_array_equal(net.weights[l], q)
        assert net.thetas[l] == theta
    x = np.random.default_rng(1).random((4, 12))
    np.testing.assert_array_equal(r.encode(x), times_to_steps(encode(x, m.encoding), m.discrete))
    meta = json.loads(str(_arrays(path)["meta"]))
    assert meta["version"] == FORMAT_VERSION and meta["algorithm"] == "ttfs"
    assert meta["sizes"] == [12, 7, 3]


def test_overwrite_is_atomic_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    save_model(path, _model(seed=0))
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"PK partial")
        raise OSError("disk full")

    monkeypatch.setattr(mf.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_model(path, _model(seed=1))
    assert path.read_bytes() == before              # the old file is intact
    assert os.listdir(tmp_path) == ["m.npz"]        # no temporary file left behind
    with pytest.raises(OSError):
        save_model(tmp_path / "new.npz", _model(seed=1))
    assert os.listdir(tmp_path) == ["m.npz"]        # no partial new file


def test_file_has_the_usual_permissions(tmp_path):
    """0o666 less the umask, like any file the user writes (not mkstemp's 0o600)."""
    old = os.umask(0o027)
    try:
        save_model(tmp_path / "m.npz", _model())
    finally:
        os.umask(old)
    assert oct((tmp_path / "m.npz").stat().st_mode & 0o777) == oct(0o640)


# Saves a model over the file argv[1]; np.savez kills the process (SIGKILL) part way.
_KILLED_SAVE = r'''
import os, signal, sys
import numpy as np
from spikegate.golden import model_file as mf

def dying_savez(f, **arrays):
    f.write(b"PK\x03\x04 part of an archive")
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)

rng = np.random.default_rng(1)
model = mf.TTFSModelFile.from_float([rng.normal(0.1, 0.3, (12, 7)), rng.normal(0.1, 0.3, (7, 3))])
mf.np.savez = dying_savez
mf.save_model(sys.argv[1], model)
print("saved")
'''


def test_killed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "m.npz"
    save_model(path, _model(seed=0))
    before = path.read_bytes()
    r = subprocess.run([sys.executable, "-c", _KILLED_SAVE, str(path)], capture_output=True,
                       text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == -signal.SIGKILL, r.stdout + r.stderr
    assert path.read_bytes() == before                  # the old file, complete
    assert load_model(path).sizes == (12, 7, 3)
    left = [p.name for p in tmp_path.iterdir() if p.name != "m.npz"]
    assert len(left) == 1 and left[0].startswith(".m.npz.") and left[0].endswith(".tmp.npz"), left


def test_save_rejects_inconsistent_model(tmp_path):
    m = _model()
    m.int_weights[0] = m.int_weights[0].astype(np.int16) * 3
    m.int_weights[0][0, 0] = 300
    with pytest.raises(ModelFileError, match=r"\[-128, 127\]"):
        save_model(tmp_path / "m.npz", m)
    assert not (tmp_path / "m.npz").exists()
    m = _model()
    m.thetas[1] = 0
    with pytest.raises(ModelFileError, match="theta"):
        save_model(tmp_path / "m.npz", m)
    with pytest.raises(ModelFileError, match="does not exist"):
        save_model(tmp_path / "nodir" / "m.npz", _model())
    with pytest.raises(TypeError, match="TTFSModelFile"):
        save_model(tmp_path / "m.npz", {"weights": []})


def _bad(tmp_path, edit_meta=None, edit_arrays=None):
    path = tmp_path / "good.npz"
    save_model(path, _model())
    arrays = _arrays(path)
    meta = json.loads(str(arrays["meta"]))
    if edit_meta:
        edit_meta(meta)
    arrays["meta"] = np.array(json.dumps(meta))
    if edit_arrays:
        edit_arrays(arrays)
    bad = tmp_path / "bad.npz"
    _write_raw(bad, arrays)
    return bad


@pytest.mark.parametrize("edit_meta, edit_arrays, match", [
    (lambda m: m.update(version=2), None, r"version is 2, expected 1"),
    (lambda m: m.update(algorithm="sigma-delta"), None, r"algorithm is 'sigma-delta', expected 'ttfs'"),
    (lambda m: m.update(format="other"), None, r"format is 'other'"),
    (lambda m: m.update(sizes=[12, 8, 3]), None, r"w_float_0 has shape \(12, 7\), expected \(12, 8\)"),
    (lambda m: m.update(sizes=[12, 7]), None, r"thetas is .*expected a list of 1"),
    (lambda m: m.update(sizes="12-7-3"), None, r"sizes is '12-7-3'"),
    (lambda m: m.update(thetas=[10, 0]), None, r"theta of layer 1 is 0"),
    (lambda m: m["encoding"].update(mode="poisson"), None, r"bad encoding.*'poisson'"),
    (lambda m: m["discrete"].update(timesteps=0), None, r"bad discrete config"),
    (lambda m: m.update(training=[1]), None, r"training is \[1\]"),
    (None, lambda a: a.update(w_int8_1=a["w_int8_1"].astype(np.int16) * 0 + 200),
     r"w_int8_1 has values in \[200, 200\], expected \[-128, 127\]"),
    (None, lambda a: a.update(w_int8_0=a["w_int8_0"].astype(np.int16)), r"w_int8_0 has dtype int16, expected int8"),
    (None, lambda a: a.update(w_float_1=a["w_float_1"].astype(np.float64)), r"dtype float64, expected float32"),
    (None, lambda a: a.pop("w_float_1"), r"missing arrays \['w_float_1'\]"),
    (None, lambda a: a.update(extra=np.zeros(3)), r"unexpected arrays \['extra'\]"),
    (None, lambda a: a.update(w_int8_1=a["w_int8_1"][:, :2]), r"w_int8_1 has shape \(7, 2\), expected \(7, 3\)"),
    (None, lambda a: a.update(w_float_0=np.full((12, 7), np.nan, np.float32)), r"w_float_0 must be finite"),
])
def test_bad_contents(tmp_path, edit_meta, edit_arrays, match):
    bad = _bad(tmp_path, edit_meta, edit_arrays)
    with pytest.raises(ModelFileError, match=match) as e:
        load_model(bad)
    assert "bad.npz" in str(e.value)


def test_no_meta(tmp_path):
    bad = _bad(tmp_path, edit_arrays=lambda a: a.pop("meta"))
    with pytest.raises(ModelFileError, match="no 'meta'"):
        load_model(bad)


def test_meta_not_json(tmp_path):
    bad = _bad(tmp_path, edit_arrays=lambda a: a.update(meta=np.array("{not json")))
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_model(bad)


@pytest.mark.parametrize("cut", [10, 200, -30])
def test_truncated(tmp_path, cut):
    path = tmp_path / "m.npz"
    save_model(path, _model())
    raw = path.read_bytes()
    path.write_bytes(raw[:cut])
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        load_model(path)


def test_corrupt_and_not_npz(tmp_path):
    path = tmp_path / "m.npz"
    path.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        load_model(path)
    npy = tmp_path / "w.npz"
    buf = io.BytesIO()
    np.save(buf, np.zeros(4))
    npy.write_bytes(buf.getvalue())
    with pytest.raises(ModelFileError, match="not an .npz"):
        load_model(npy)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "nothing.npz")
