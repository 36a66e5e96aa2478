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
