"""boards/link.py: the bridges' rates, the boards' divisors, the bytes of an exchange."""

import pytest

from spikegate.boards import icebreaker, ulx3s
from spikegate.boards.link import (BOARD_BRIDGE, board_rate, bridge_rate, classify_bytes,
                                   link_images_per_s)
from spikegate.hdl import protocol_spec as P


def test_default_baud_is_exact_on_both_bridges_and_clocks():
    for board, clk in (("icebreaker", icebreaker.DEFAULT_CLK_HZ), ("ulx3s", ulx3s.DEFAULT_CLK_HZ)):
        assert bridge_rate(BOARD_BRIDGE[board], P.DEFAULT_BAUD) == P.DEFAULT_BAUD
        divisor, rate = board_rate(clk, P.DEFAULT_BAUD)
        assert rate == P.DEFAULT_BAUD and divisor == clk // P.DEFAULT_BAUD
    assert P.DEFAULT_BAUD >= 1_000_000


@pytest.mark.parametrize("bridge,baud,rate", [
    ("FT2232H", 12_000_000, 12_000_000),     # divisor 1
    ("FT2232H", 8_000_000, 8_000_000),       # divisor 1.5
    ("FT2232H", 115_200, 12e6 / 104.125),    # sub-integer eighths
    ("FT231X", 3_000_000, 3_000_000),
    ("FT231X", 2_000_000, 2_000_000),
    ("FT231X", 2_400_000, 2_000_000),        # nothing between divisors 1 and 1.5
    ("FT231X", 921_600, 3e6 / 3.25),
])
def test_bridge_rates(bridge, baud, rate):
    assert bridge_rate(bridge, baud) == pytest.approx(rate)


def test_bridge_refusals():
    with pytest.raises(ValueError, match="at most 3000000 baud, not 4000000"):
        bridge_rate("FT231X", 4_000_000)
    with pytest.raises(ValueError, match="bridge must be one of"):
        bridge_rate("CH340", 1_000_000)
    with pytest.raises(ValueError, match="baud must be a positive number"):
        bridge_rate("FT2232H", 0)


def test_board_rate():
    assert board_rate(80_000_000, 3_000_000) == (27, 80e6 / 27)
    with pytest.raises(ValueError, match="off by"):
        board_rate(1_000_000, 115_200)


def test_classify_bytes_and_rate():
    # 10 events: SYNC CMD LEN(2) 30 bytes CRC(2); the reply of a 3-layer network: 7 + 34.
    assert classify_bytes(10, 3) == (36, 41)
    assert link_images_per_s(10, 3, 1_000_000) == pytest.approx(1e6 / 770)
    assert link_images_per_s(10, 3, 1_000_000, turnaround_s=1e-3) == pytest.approx(1 / 1.77e-3)
    with pytest.raises(ValueError, match="n_layers"):
        classify_bytes(1, 1)
