"""Fit checks and board designs of networks with binary input encoding: the first layer
has no multipliers (:class:`~spikegate.hdl.ttfs_layer.TTFSLayer`'s ``binary_input``)."""

import numpy as np
import pytest
from amaranth.back import rtlil

from spikegate.boards.fit import ResourceError, check_fit, multiplier_cells
from spikegate.golden.ttfs_discrete import DiscreteConfig, DiscreteNetwork
from spikegate.boards.synth import make_design


def test_layer_0_of_binary_input_counts_no_multipliers():
    both = multiplier_cells((784, 160, 10), (8, 1), "iCE40UP5K")
    out = multiplier_cells((784, 160, 10), (8, 1), "iCE40UP5K", binary_input=True)
    assert out == multiplier_cells((160, 10), 1, "iCE40UP5K") == 2
    assert both > 8
    # 784 x 20 words of 64 bits = 15,680 <= 16,384 in the four SPRAMs; 2 DSPs for layer 1.
    assert check_fit((784, 160, 10), (8, 1), "iCE40UP5K", binary_input=True) == ("spram", "ebr")
    with pytest.raises(ResourceError, match="ICESTORM_DSP"):
        check_fit((784, 160, 10), (8, 1), "iCE40UP5K")
    # The SPRAM still bounds it: 784 x 21 words of 64 bits do not fit.
    with pytest.raises(ResourceError, match="SPRAM"):
        check_fit((784, 168, 10), (8, 1), "iCE40UP5K", binary_input=True)


@pytest.mark.parametrize("board", ["icebreaker", "ulx3s"])
@pytest.mark.parametrize("shim", [False, True])
def test_designs_build_the_binary_first_layer(board, shim):
    rng = np.random.default_rng(3)
    net = DiscreteNetwork([rng.integers(-40, 100, (20, 12)).astype(np.int8),
                           rng.integers(-40, 100, (12, 5)).astype(np.int8)], [100, 50],
                          DiscreteConfig())
    design, _ = make_design(board, net, (3, 1), shim=shim, binary_input=True)
    clf = design.top.classifier
    assert clf.binary_input and clf.layers[0].binary_input and not clf.layers[1].binary_input
    plain, _ = make_design(board, net, (3, 1), shim=shim)
    assert not plain.top.classifier.binary_input
    for d in (design, plain):
        rtlil.convert(d.top)            # each top elaborates
        d._MustUse__silence = True      # the board wrapper needs a platform: not built here
    with pytest.raises(TypeError, match="binary_input must be a bool, not 1"):
        make_design(board, net, (3, 1), shim=shim, binary_input=1)


@pytest.mark.parametrize("mode", ["binary", "graded"])
def test_synth_command_turns_binary_input_on_from_the_model(tmp_path, monkeypatch, mode):
    """``spikegate synth --model FILE``: a binary-encoding model's design has the
    multiplier-free first layer (and lanes (8, 1) pass the fit check); a graded one not."""
    import argparse
    from spikegate.golden.encoding import EncodingConfig
    from spikegate.golden.model_file import TTFSModelFile, save_model
    from spikegate.scripts import synth
    rng = np.random.default_rng(5)
    model = TTFSModelFile.from_float([rng.normal(0.1, 0.3, (784, 160)),
                                      rng.normal(0.1, 0.4, (160, 10))],
                                     encoding=EncodingConfig(mode=mode))
    save_model(tmp_path / "m.npz", model)
    built = []

    def fake_build(args, out, make, note=None):
        design, _ = make()
        design._MustUse__silence = True
        built.append(design)
        return 0

    monkeypatch.setattr(synth, "_build", fake_build)
    parser = argparse.ArgumentParser()
    synth.add_parser(parser.add_subparsers())
    args = parser.parse_args(["synth", "--board", "icebreaker", "--model",
                              str(tmp_path / "m.npz"), "--lanes", "8,1" if mode == "binary"
                              else "2,1", "--out", str(tmp_path / "out")])
    assert synth.run(args) == 0
    clf = built[0].top.classifier
    assert clf.binary_input == (mode == "binary")
    for c in [built[0].top, clf, clf.scheduler, built[0].top.engine, *clf.layers,
              *(l.lookup for l in clf.layers)]:
        c._MustUse__silence = True      # inspected, not elaborated
