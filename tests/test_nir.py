"""``spikegate export`` / ``import``: NIR graphs of TTFS and PD model files, round trips to the
identical model file, the NIR primitives a reader sees, and the refusals."""

import json

import nir
import numpy as np
import pytest

from spikegate.golden.model_file import TTFSModelFile, load_model, save_model
from spikegate.golden.pd_model_file import PDModelFile, save_pd_model
from spikegate.scripts.cli import main
from spikegate.scripts.nir_io import NIRFileError, from_nir, to_nir


def _ttfs(rng):
    return TTFSModelFile.from_float([rng.normal(0.1, 0.3, (64, 12)), rng.normal(0.1, 0.3, (12, 10))],
                                    training={"seed": 3})


def _pd(rng):
    return PDModelFile.from_float([rng.normal(0, 0.3, (64, 12)), rng.normal(0, 0.3, (12, 10))],
                                  [rng.normal(0, 0.1, 12), rng.normal(0, 0.1, 10)],
                                  [0.5, 0.25], [1.0, 2.0], training={"seed": 4})


def _contents(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _same_file(a, b):
    za, zb = _contents(a), _contents(b)
    assert sorted(za) == sorted(zb)
    for k in za:
        assert za[k].dtype == zb[k].dtype, k
        assert np.array_equal(za[k], zb[k]), k


@pytest.mark.parametrize("kind", ["ttfs", "pdnn"])
def test_round_trip_gives_the_identical_model_file(tmp_path, kind):
    rng = np.random.default_rng(7)
    src = tmp_path / "model.npz"
    if kind == "ttfs":
        save_model(src, _ttfs(rng))
    else:
        save_pd_model(src, _pd(rng))
    assert main(["export", str(src), str(tmp_path / "net.nir")]) == 0
    assert main(["import", str(tmp_path / "net.nir"), "-o", str(tmp_path / "back.npz")]) == 0
    _same_file(src, tmp_path / "back.npz")
    # The default output name: the NIR file's, with .npz.
    assert main(["import", str(tmp_path / "net.nir")]) == 0
    _same_file(src, tmp_path / "net.npz")


def test_ttfs_graph_uses_nir_primitives_with_the_float_weights(tmp_path):
    model = _ttfs(np.random.default_rng(1))
    graph = to_nir(model)
    kinds = [type(graph.nodes[n]).__name__ for n in
             ("input", "linear_0", "synapse_0", "neuron_0", "linear_1", "synapse_1", "neuron_1",
              "output")]
    assert kinds == ["Input", "Linear", "LI", "IF", "Linear", "LI", "IF", "Output"]
    for l in range(2):
        np.testing.assert_array_equal(graph.nodes[f"linear_{l}"].weight, model.float_weights[l].T)
        np.testing.assert_array_equal(graph.nodes[f"synapse_{l}"].tau, 1.0)
        np.testing.assert_array_equal(graph.nodes[f"neuron_{l}"].v_threshold, 1.0)
        assert graph.nodes[f"neuron_{l}"].metadata["fire_once"]
    assert ("neuron_0", "linear_1") in graph.edges
    assert "first output neuron" in graph.metadata["decoding"]
    # What a NIR reader sees after the file round trip.
    nir.write(tmp_path / "g.nir", graph)
    back = nir.read(tmp_path / "g.nir")
    np.testing.assert_array_equal(back.nodes["linear_1"].weight, model.float_weights[1].T)


def test_pd_graph_uses_affine_nodes_with_the_biases():
    model = _pd(np.random.default_rng(2))
    graph = to_nir(model)
    for l in range(2):
        node = graph.nodes[f"affine_{l}"]
        assert type(node).__name__ == "Affine"
        np.testing.assert_array_equal(node.bias, model.float_biases[l])
        np.testing.assert_array_equal(node.metadata["b_int32"], model.network.biases[l])
        assert graph.nodes[f"neuron_{l}"].metadata["reset"] == "subtract"
    assert [graph.nodes[f"affine_{l}"].metadata["k_alpha"] for l in range(2)] == [0.5, 0.25]


def test_imported_model_evaluates(tmp_path, capsys):
    save_model(tmp_path / "m.npz", _ttfs(np.random.default_rng(5)))
    assert main(["export", str(tmp_path / "m.npz"), str(tmp_path / "m.nir")]) == 0
    assert main(["import", str(tmp_path / "m.nir"), "-o", str(tmp_path / "i.npz")]) == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "i.npz"), "--limit", "20"]) == 0
    assert "accuracy" in capsys.readouterr().out.lower()


def _tampered(graph, tmp_path, name="bad.nir"):
    nir.write(tmp_path / name, graph)
    return tmp_path / name


def _refused(tmp_path, capsys, path, *needles):
    out = tmp_path / "out.npz"
    assert main(["import", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err, err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.npz")]


def test_refuses_a_missing_or_unreadable_file(tmp_path, capsys):
    _refused(tmp_path, capsys, tmp_path / "none.nir", "none.nir")
    (tmp_path / "junk.nir").write_bytes(b"not hdf5 at all")
    _refused(tmp_path, capsys, tmp_path / "junk.nir", "cannot be read as a NIR graph")


def test_refuses_a_foreign_graph_it_cannot_represent(tmp_path, capsys):
    # A graph without spikegate's metadata is read as a LIF network (tests/test_nir_lif.py);
    # this one has no readout layer.
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([3])),
               "fc": nir.Affine(weight=np.ones((2, 3)), bias=np.zeros(2)),
               "lif": nir.LIF(tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2),
                              v_threshold=np.ones(2)),
               "output": nir.Output(output_type=np.array([2]))},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])
    _refused(tmp_path, capsys, _tampered(graph, tmp_path), "one weight layer (fc, lif)",
             "readout")


@pytest.mark.parametrize("damage, needles", [
    (lambda g: g.nodes.pop("synapse_1"), ["'synapse_1'"]),                  # nir.read refuses
    (lambda g: (g.nodes.pop("synapse_1"), g.edges.remove(("linear_1", "synapse_1")),
                g.edges.remove(("synapse_1", "neuron_1"))), ["'synapse_1'", "missing"]),
    (lambda g: g.nodes["linear_0"].metadata.pop("w_int8"), ["'linear_0'", "'w_int8'"]),
    (lambda g: g.nodes["linear_0"].metadata.update(w_int8=np.zeros((64, 12), np.int16)),
     ["'linear_0'", "int16"]),
    (lambda g: g.nodes["linear_1"].metadata.update(theta=99999), ["'linear_1'", "theta"]),
    (lambda g: setattr(g.nodes["linear_0"], "weight", np.ones((12, 63))),
     ["linear_0", "63"]),                                                 # nir.read's type check
    (lambda g: g.metadata.update(spikegate_meta=json.dumps(
        {**json.loads(g.metadata["spikegate_meta"]), "version": 9})), ["version", "9"]),
    (lambda g: g.metadata.update(spikegate_meta=json.dumps(
        {**json.loads(g.metadata["spikegate_meta"]), "discrete": {"timesteps": 0}})),
     ["discrete"]),
])
def test_refuses_a_damaged_spikegate_graph(tmp_path, capsys, damage, needles):
    graph = to_nir(_ttfs(np.random.default_rng(9)))
    damage(graph)
    _refused(tmp_path, capsys, _tampered(graph, tmp_path), *needles)


def test_from_nir_error_type():
    graph = to_nir(_ttfs(np.random.default_rng(9)))
    graph.nodes.pop("neuron_0")
    with pytest.raises(NIRFileError, match="neuron_0"):
        from_nir(graph, "g.nir")


def test_export_refuses_a_bad_model_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    assert main(["export", str(tmp_path / "bad.npz"), str(tmp_path / "x.nir")]) == 2
    assert "bad.npz" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [tmp_path / "bad.npz"]
    # And a good one still loads after the refusal (nothing shared was damaged).
    save_model(tmp_path / "good.npz", _ttfs(np.random.default_rng(0)))
    assert load_model(tmp_path / "good.npz").sizes == (64, 12, 10)
