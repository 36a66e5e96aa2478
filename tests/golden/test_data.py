"""The IDX loader refuses missing, truncated, corrupt and foreign data files, naming the file
and the problem (files made here: the tests never read /work/shared or the network)."""

import gzip
import hashlib

import numpy as np
import pytest

from spikegate.golden.data import DataError, load_dataset, read_idx

STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte")


def _idx(array, dtype_code=0x08):
    a = np.ascontiguousarray(array, dtype=np.uint8)
    head = bytes([0, 0, dtype_code, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    return head + a.tobytes()


def _write_set(d, *, n=6, gz=True):
    rng = np.random.default_rng(0)
    raws = {"train-images-idx3-ubyte": _idx(rng.integers(0, 256, (n, 28, 28))),
            "train-labels-idx1-ubyte": _idx(rng.integers(0, 10, n)),
            "t10k-images-idx3-ubyte": _idx(rng.integers(0, 256, (n, 28, 28))),
            "t10k-labels-idx1-ubyte": _idx(rng.integers(0, 10, n))}
    for stem, raw in raws.items():
        if gz:
            (d / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (d / stem).write_bytes(raw)
    return raws


def test_reads_raw_and_gzip_and_checks_the_md5(tmp_path):
    raw = _idx(np.arange(24).reshape(2, 3, 4))
    (tmp_path / "a").write_bytes(raw)
    (tmp_path / "a.gz").write_bytes(gzip.compress(raw))
    md5 = hashlib.md5(raw).hexdigest()
    for name in ("a", "a.gz"):
        np.testing.assert_array_equal(read_idx(tmp_path / name, expected_md5=md5),
                                      np.arange(24).reshape(2, 3, 4))
    with pytest.raises(DataError, match=r"MD5 .* expected 0+: corrupt or a different data set"):
        read_idx(tmp_path / "a", expected_md5="0" * 32)


@pytest.mark.parametrize("content, needle", [
    (lambda raw: raw[:-5], "has 35 bytes, expected 40"),                  # truncated data
    (lambda raw: raw[:6], "truncated in its header"),
    (lambda raw: b"\x01\x02" + raw[2:], "no IDX magic number"),
    (lambda raw: raw[:2] + b"\x07" + raw[3:], "unknown element type 0x07"),
    (lambda raw: b"", "no IDX magic number"),
])
def test_refuses_a_malformed_file(tmp_path, content, needle):
    raw = _idx(np.arange(24).reshape(2, 3, 4))
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(content(raw))
    with pytest.raises(DataError, match=needle) as e:
        read_idx(path)
    assert "bad-idx3-ubyte" in str(e.value)


def test_refuses_a_corrupt_or_cut_gzip(tmp_path):
    raw = gzip.compress(_idx(np.arange(240).reshape(10, 24)))
    (tmp_path / "cut.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="cut.gz' is corrupt or truncated"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "noise.gz").write_bytes(b"\x1f\x8b" + bytes(range(50)))
    with pytest.raises(DataError, match="noise.gz' is corrupt or truncated"):
        read_idx(tmp_path / "noise.gz")
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "none.gz")


def test_load_dataset_refuses_missing_files_and_foreign_data(tmp_path, monkeypatch):
    monkeypatch.delenv("SPIKEGATE_DATA", raising=False)
    with pytest.raises(DataError, match="no mnist IDX files"):
        load_dataset("mnist", tmp_path)
    _write_set(tmp_path)
    (tmp_path / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\[.gz\] is missing"):
        load_dataset("mnist", tmp_path)
    # Well-formed IDX files that are not MNIST: refused by their MD5, naming the file.
    _write_set(tmp_path, gz=False)
    with pytest.raises(DataError, match="train-images-idx3-ubyte.* corrupt or a different data set"):
        load_dataset("mnist", tmp_path)
    # SPIKEGATE_DATA is where it looks when no directory is given.
    monkeypatch.setenv("SPIKEGATE_DATA", str(tmp_path / "elsewhere"))
    with pytest.raises(DataError, match="elsewhere"):
        load_dataset("mnist")
    with pytest.raises(DataError, match="unknown|data set"):
        load_dataset("cifar", tmp_path)
