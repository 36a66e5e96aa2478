"""``spikegate reproduce --quick``: every paper's rows at CI's size, numbers from the saved runs."""

import json

import numpy as np
import pytest

from spikegate.scripts.cli import main
from spikegate.scripts.reproduce import PAPER_VALUES


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    assert main(["reproduce", "all", "--quick", "--quiet", "--out", str(out)]) == 0
    return out, json.loads((out / "reproduce.json").read_text())


def test_every_paper_has_its_rows_files_and_paper_values(quick):
    out, rep = quick
    assert rep["settings"] == "quick" and set(rep["papers"]) == {"pdnn", "ssgd", "ttfs"}
    md = (out / "reproduce.md").read_text()
    for paper, r in rep["papers"].items():
        assert r["rows"], paper
        for name in ("curves.png", "weights.npz" if paper != "ttfs" else "model.npz"):
            assert (out / paper / name).stat().st_size > 100, (paper, name)
        for row in r["rows"]:
            assert row["quantity"] in md
            want = PAPER_VALUES.get((paper, row["key"]))
            assert row["paper_value"] == want
            if want is not None and row["ours"] is not None:
                assert row["diff"] == pytest.approx(row["ours"] - want)
    keys = {(p, row["key"]) for p, r in rep["papers"].items() for row in r["rows"]}
    assert set(PAPER_VALUES) <= keys      # every number we know of the papers has its row


def test_ttfs_rows_are_the_saved_model_on_the_test_split(quick):
    from spikegate.golden.data import load_dataset
    from spikegate.golden.model_file import load_model
    from spikegate.scripts.eval_ttfs import evaluate
    out, rep = quick
    model = load_model(out / "ttfs" / "model.npz")
    # The epoch kept was chosen on the validation split (100 training images), not the test set.
    assert model.training["validation"]["samples"] == 100
    ds = load_dataset("digits")
    s, _ = evaluate(model, ds.x_test, ds.y_test)
    rows = {row["key"]: row["ours"] for row in rep["papers"]["ttfs"]["rows"]}
    assert rows["8-bit accuracy"] == pytest.approx(100 * s["discrete_accuracy"])
    assert rows["spikes to decision"] == pytest.approx(s["total_spikes"]["mean"])
    assert rows["lookups layer 1"] == pytest.approx(100 * s["lookup_fraction"][1]["mean"])


def test_pd_rows_and_weights(quick):
    from spikegate.golden.data import load_dataset
    from spikegate.golden.pdnn import MLP
    out, rep = quick
    r = rep["papers"]["pdnn"]
    rows = {row["key"]: row["ours"] for row in r["rows"]}
    ex = r["extra"]
    assert rows["temporal/shuffled pd kops"] == pytest.approx(
        ex["temporal/pdnn"]["ops"]["total_kops"] / ex["shuffled/pdnn"]["ops"]["total_kops"])
    assert rows["mnist pd accuracy"] == pytest.approx(100 * ex["shuffled/pdnn"]["final"]["test_acc"])
    # Every run's weights are saved: the depth sweep's and the trained MLP's.
    with np.load(out / "pdnn" / "weights.npz") as z:
        names = sorted(k for k in z.files if k.startswith("temporal_depth2_w"))
        assert len(names) == 3                     # 2 hidden layers: three weight matrices
        w = [z[f"shuffled_mlp_w{i}"] for i in range(2)]
    assert w[0].shape == (64, 16) and w[1].shape == (16, 10)
    assert not np.allclose(w[0], MLP((64, 16, 10), seed=1234).w[0])    # it was trained
    assert load_dataset("digits").n_inputs == 64


def test_missing_data_is_refused_before_work(tmp_path, capsys):
    out = tmp_path / "r"
    code = main(["reproduce", "ttfs", "--mnist", str(tmp_path), "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err
    assert not (out / "reproduce.json").exists()


def test_resume_refuses_other_settings(quick, tmp_path, capsys):
    out, _ = quick
    code = main(["reproduce", "ttfs", "--resume", "--out", str(out), "--mnist", str(tmp_path)])
    assert code == 2 and "'quick'" in capsys.readouterr().err


def test_full_settings_resolve_without_data():
    """The full runs' configurations build (a None left in them failed only hours in)."""
    from spikegate.scripts.reproduce import SETTINGS, ttfs_configs
    enc, cfg, discrete = ttfs_configs(SETTINGS["ttfs"]["full"])
    assert cfg.epochs == 50 and cfg.seed == 0 and discrete.timesteps == 64
    assert ttfs_configs(SETTINGS["ttfs"]["quick"])[1].epochs == 2


def test_fashion_mnist_is_not_read_from_the_mnist_directory(tmp_path, monkeypatch):
    """A full run sets $SPIKEGATE_DATA to MNIST's directory: Fashion-MNIST must come from its
    own (the Debian package's, else --fashion-mnist), not from there."""
    import argparse
    from spikegate.scripts import reproduce
    monkeypatch.setenv("SPIKEGATE_DATA", str(tmp_path / "mnist"))
    deb = tmp_path / "fashion"
    deb.mkdir()
    monkeypatch.setattr(reproduce, "FASHION_DEFAULT", str(deb))
    args = argparse.Namespace(mnist=None, fashion_mnist=None)
    assert reproduce._data_root("fashion-mnist", args) == str(deb)
    assert reproduce._data_root("mnist", args) == str(tmp_path / "mnist")
    args.fashion_mnist = tmp_path / "mine"
    assert reproduce._data_root("fashion-mnist", args) == tmp_path / "mine"
    monkeypatch.setattr(reproduce, "FASHION_DEFAULT", str(tmp_path / "absent"))
    args.fashion_mnist = None
    assert reproduce._data_root("fashion-mnist", args) is None    # the loader's own search


def test_ssgd_rows_loss_and_layers(quick):
    out, rep = quick
    r = json.loads((out / "ssgd" / "bench_ssgd.json").read_text())
    rows = {row["key"]: row for row in rep["papers"]["ssgd"]["rows"]}
    batches = len(r["sparse"]["loss"]) // rep["papers"]["ssgd"]["settings"]["epochs"]
    assert rows["sparse loss"]["ours"] == pytest.approx(np.mean(r["sparse"]["loss"][-batches:]))
    assert rows["dense loss"]["ours"] == pytest.approx(np.mean(r["dense"]["loss"][-batches:]))
    act = np.mean(np.asarray(r["sparse"]["active"]), axis=0) * 100
    assert [rows[f"active fraction layer {i}"]["ours"] for i in (1, 2)] == pytest.approx(act)


def test_settings_for_overrides_every_runs_epochs():
    from spikegate.scripts.reproduce import SETTINGS, settings_for
    assert settings_for("ssgd", "full") == SETTINGS["ssgd"]["full"]
    assert SETTINGS["ssgd"]["full"]["epochs"] == 100       # the authors' main.py default
    s = settings_for("pdnn", "full", 3)
    assert (s["epochs"], s["depth_epochs"]) == (3.0, 3.0)
    assert SETTINGS["pdnn"]["full"]["epochs"] == 50.0      # not changed in place
    assert settings_for("ttfs", "full", 4)["epochs"] == 4


def test_a_finished_ssgd_run_is_reused_only_at_its_settings(quick, tmp_path, capsys):
    """A row can be re-checked without training again: the saved run is read back when, and
    only when, it was made at the same settings."""
    import shutil
    from spikegate.scripts import reproduce
    out, rep = quick
    shutil.copy(out / "ssgd" / "bench_ssgd.json", tmp_path / "bench_ssgd.json")
    s = reproduce.settings_for("ssgd", "quick")
    assert reproduce._reusable_ssgd(tmp_path / "bench_ssgd.json", s) is not None
    assert "re-using" in capsys.readouterr().err
    for key, value in (("epochs", 2), ("lr", 1e-3), ("hidden", [16]), ("seed", 1)):
        assert reproduce._reusable_ssgd(tmp_path / "bench_ssgd.json", {**s, key: value}) is None
    assert reproduce._reusable_ssgd(tmp_path / "absent.json", s) is None
    rows, _ = reproduce.reproduce_ssgd(s, None, tmp_path, quiet=True)     # no training: fast
    assert [r["ours"] for r in rows] == [r["ours"] for r in rep["papers"]["ssgd"]["rows"]]


def test_resume_refuses_other_epochs(quick, tmp_path, capsys):
    import shutil
    out, _ = quick
    shutil.copy(out / "reproduce.json", tmp_path / "reproduce.json")
    before = (tmp_path / "reproduce.json").read_bytes()
    assert main(["reproduce", "ttfs", "--quick", "--quiet", "--resume", "--epochs", "3",
                 "--out", str(tmp_path)]) != 0
    assert "--epochs None, not 'quick' with --epochs 3" in capsys.readouterr().err
    assert (tmp_path / "reproduce.json").read_bytes() == before      # nothing overwritten


def _counting_train_online(monkeypatch):
    """Count (and still run) the PD trainings."""
    import spikegate.golden.pdnn as pdnn
    calls = []
    real = pdnn.train_online

    def counted(*a, **kw):
        calls.append(kw.get("desc"))
        return real(*a, **kw)
    monkeypatch.setattr(pdnn, "train_online", counted)
    return calls


def test_pd_runs_are_stored_and_reused_only_for_the_same_run_and_code(quick, tmp_path, monkeypatch):
    import shutil
    import spikegate.scripts.reproduce as rp
    out, rep = quick
    store = out / "pdnn" / "runs"
    assert len(list(store.glob("*.json"))) == len(list(store.glob("*.npz"))) == 8
    again = tmp_path / "again"
    shutil.copytree(store, again / "pdnn" / "runs")
    calls = _counting_train_online(monkeypatch)
    assert main(["reproduce", "pdnn", "--quick", "--quiet", "--out", str(again)]) == 0
    assert calls == []                               # every run came from the store
    rep2 = json.loads((again / "reproduce.json").read_text())
    assert rep2["papers"]["pdnn"]["rows"] == rep["papers"]["pdnn"]["rows"]
    with np.load(out / "pdnn" / "weights.npz") as a, np.load(again / "pdnn" / "weights.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        assert all(np.array_equal(a[k], b[k]) for k in a.files)
    # Other code (the hash of the PD sources) or other settings: trained again.
    monkeypatch.setattr(rp, "pd_code_hash", lambda: "0" * 16)
    assert main(["reproduce", "pdnn", "--quick", "--quiet", "--out", str(tmp_path / "c")]) == 0
    assert len(calls) == 8


def test_one_hidden_layer_depth_run_is_the_pd_run(tmp_path, monkeypatch):
    from spikegate.scripts.reproduce import reproduce_pdnn, settings_for
    s = settings_for("pdnn", "quick")
    s.update(depths=[1], depth_epochs=s["epochs"], train_limit=60, test_limit=20)
    calls = _counting_train_online(monkeypatch)
    rows, extra = reproduce_pdnn(s, None, tmp_path, quiet=True)
    assert sorted(calls) == sorted(["shuffled mlp", "shuffled pdnn", "temporal mlp",
                                    "temporal pdnn"])
    assert extra["shuffled/depth1"]["final"] == extra["shuffled/pdnn"]["final"]
    # The accuracy row's note gives the best of the run's evaluations (the authors' np.max).
    stored = [json.loads(f.read_text()) for f in (tmp_path / "runs").glob("*.json")]
    hist = [r["result"]["history"] for r in stored if r["desc"] == "shuffled pdnn"][0]
    best = [r for r in rows if r["key"] == "mnist pd accuracy"][0]
    assert len(hist) == 3 and "best of its 3 evaluations" in best["note"]
    assert f"{100 * max(h['test_acc'] for h in hist):.2f} %" in best["note"]
