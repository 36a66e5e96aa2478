"""The synaptic-operation counts and the energy estimate of :mod:`spikegate.sim.energy`."""

import pytest

from spikegate.sim.energy import BOARDS, estimate, synaptic_ops


def test_synaptic_ops_against_the_dense_network():
    ops = synaptic_ops((64, 32, 10), 500)
    assert ops["dense_mac"] == 64 * 32 + 32 * 10 == ops["dense_ac"]
    assert ops["ac"] == ops["mac"] == ops["memory_reads"] == 500
    assert ops["ratio"] == pytest.approx(500 / 2368)
    pd = synaptic_ops((64, 32, 10), 500, algorithm="pdnn")
    assert pd["ac"] == 0 and pd["mac"] == 500
    # SSGD: a LIF layer adds weight rows into membranes, ACs only; dense: the MLP's MACs.
    lif = synaptic_ops((64, 32, 10), 500, algorithm="ssgd")
    assert lif["ac"] == lif["memory_reads"] == 500 and lif["mac"] == 0
    assert lif["dense_ac"] == 0 and lif["dense_mac"] == 2368
    assert lif["ratio"] == pytest.approx(500 / 2368)
    with pytest.raises(ValueError, match="algorithm"):
        synaptic_ops((64, 10), 5, algorithm="ssgd-dense")
    with pytest.raises(ValueError, match="weights_read"):
        synaptic_ops((64, 10), -1)


def test_terms_follow_the_model():
    b = BOARDS["icebreaker"]
    e = estimate("icebreaker", cycles=1000, weight_reads=2000, clock_mhz=30.0, luts=4000)
    assert e["reads_uj"] == pytest.approx(2000 * b.e_read_pj * 1e-6)
    assert e["macs_uj"] == pytest.approx(2000 * b.e_mac_pj * 1e-6)
    assert e["clock_uj"] == pytest.approx(1000 * b.e_clk_pj * 1e-6)
    assert e["logic_uj"] == pytest.approx(1000 * 4000 * b.e_lc_pj * 1e-6)
    assert e["static_uj"] == pytest.approx((b.p_static_w + b.p_pll_w) * 1000 / 30e6 * 1e6)
    assert e["total_uj"] == pytest.approx(sum(e[k] for k in
                                              ("reads_uj", "macs_uj", "clock_uj", "logic_uj", "static_uj")))
    assert e["low_uj"] < e["total_uj"] < e["high_uj"]
    assert "estimate" in e["label"]
    # Twice the clock: the same dynamic energy, half the static.
    f = estimate("icebreaker", cycles=1000, weight_reads=2000, clock_mhz=60.0, luts=4000)
    assert f["static_uj"] == pytest.approx(e["static_uj"] / 2)
    assert f["clock_uj"] == e["clock_uj"]


def test_ecp5_static_power_dominates():
    e = estimate("ulx3s", cycles=6000, weight_reads=40000, clock_mhz=80.0, luts=20000)
    assert e["static_uj"] > 0.5 * e["total_uj"]
    i = estimate("icebreaker", cycles=6000, weight_reads=40000, clock_mhz=30.0, luts=4000)
    assert i["static_uj"] < 0.1 * i["total_uj"]


@pytest.mark.parametrize("kw, needle", [
    ({"board": "arty"}, "board"), ({"cycles": -1}, "cycles"), ({"clock_mhz": 0}, "clock_mhz"),
    ({"luts": None}, "luts"),
])
def test_refuses_bad_values(kw, needle):
    args = {"board": "icebreaker", "cycles": 10, "weight_reads": 10, "clock_mhz": 30.0, "luts": 1}
    args.update(kw)
    board = args.pop("board")
    with pytest.raises(ValueError, match=needle):
        estimate(board, **args)
