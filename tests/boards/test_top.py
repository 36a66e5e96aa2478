# amaranth: UnusedElaboratable=no
"""BoardTop's parameters and what IDENTIFY will report (no simulation: the cocotb test
drives the whole top through its pins)."""

import numpy as np
import pytest
from amaranth.hdl import Fragment

from spikegate.hdl import protocol_spec as P
from spikegate.hdl.lookup import MAX_LANES
from spikegate.boards.top import BoardTop
from spikegate.golden.ttfs_discrete import DiscreteConfig, DiscreteNetwork


def _net(config=None):
    rng = np.random.default_rng(0)
    return DiscreteNetwork([rng.integers(-50, 80, (16, 8)).astype(np.int8),
                            rng.integers(-50, 80, (8, 4)).astype(np.int8)], [40, 40],
                           config or DiscreteConfig())


def test_info_and_divisor():
    top = BoardTop(_net(), (2, 1), clk_freq_hz=12_000_000)
    assert top.divisor == 12        # 1 Mbaud by default (protocol_spec.DEFAULT_BAUD)
    slow = BoardTop(_net(), (2, 1), clk_freq_hz=12_000_000, baud=115200)
    assert slow.divisor == 104
    info = top.info
    assert (info.version, info.sizes, info.lanes, info.clk_freq_hz) == (P.VERSION, (16, 8, 4), (2, 1), 12_000_000)
    assert (info.timesteps, info.dt, info.z_frac_bits, info.learning) == (32, 0.125, 8, False)
    assert info.max_payload == P.max_payload(16) and info.max_chunk == P.MAX_CHUNK
    learning = BoardTop(_net(), 2, clk_freq_hz=12_000_000, learning=True)
    assert learning.info.learning
    for t in (top, slow, learning):     # elaborate: the tops and their parts are used
        Fragment.get(t, None)


def test_parameter_checks():
    with pytest.raises(TypeError, match="DiscreteNetwork"):
        BoardTop("net", 2, clk_freq_hz=12_000_000)
    with pytest.raises(ValueError, match="clk_freq_hz"):
        BoardTop(_net(), 2, clk_freq_hz=0)
    with pytest.raises(ValueError, match="off by"):
        BoardTop(_net(), 2, clk_freq_hz=1_000_000, baud=115200)
    with pytest.raises(ValueError, match="at least 4"):
        BoardTop(_net(), 2, clk_freq_hz=12_000_000, baud=6_000_000)
    with pytest.raises(ValueError, match="256 timesteps"):
        BoardTop(_net(DiscreteConfig(timesteps=300, dt=1 / 128)), 2, clk_freq_hz=12_000_000)
    with pytest.raises(ValueError, match="lanes"):
        BoardTop(_net(), MAX_LANES + 1, clk_freq_hz=12_000_000)
