"""Board bitstreams with the YoWASP tools, their resource/Fmax report, PLLs and fit checks.

The two bitstream builds (``@pytest.mark.synth``, a few minutes each on 2 cores) guard the
capability of building for both boards; the report they return is checked against nextpnr's
log, parsed independently. The rest is fast: PLL settings against ``icepll`` / ``ecppll``,
the fit check, and the log parser on a canned log.
"""

import json
import re

import numpy as np
import pytest

from spikegate.boards.fit import ResourceError, check_fit, weight_block_rams
from spikegate.boards.icebreaker import ice40_pll
from spikegate.boards.synth import (_fail_on_overflow, format_markdown, make_design, parse_log,
                                    parse_report, synthesize, write_reports)
from spikegate.boards.ulx3s import ecp5_pll
from spikegate.golden.ttfs_discrete import DiscreteNetwork

SEED = 0


def _network(sizes, seed=SEED):
    rng = np.random.default_rng(seed)
    return DiscreteNetwork.from_float([rng.normal(0, 0.3, (a, b))
                                       for a, b in zip(sizes[:-1], sizes[1:])])


# --- PLLs ------------------------------------------------------------------------------------

# (f_in, f_out) -> what icepll prints (DIVR, DIVF, DIVQ, FILTER_RANGE).
@pytest.mark.parametrize("f_in, f_out, expect", [
    (12e6, 30e6, (0, 79, 5, 1)),
    (12e6, 48e6, (0, 63, 4, 1)),
])
def test_ice40_pll_matches_icepll(f_in, f_out, expect):
    p = ice40_pll(f_in, f_out)
    assert (p["DIVR"], p["DIVF"], p["DIVQ"], p["FILTER_RANGE"]) == expect, p
    assert p["f_out_hz"] == pytest.approx(f_in * (p["DIVF"] + 1) / (p["DIVR"] + 1) / 2 ** p["DIVQ"])


@pytest.mark.parametrize("f_out", [40e6, 50e6, 80e6, 100e6])
def test_ecp5_pll_in_range(f_out):
    p = ecp5_pll(25e6, f_out)
    assert p["f_out_hz"] == pytest.approx(25e6 / p["CLKI_DIV"] * p["CLKFB_DIV"])
    assert abs(p["f_out_hz"] - f_out) <= 0.01 * f_out, p
    assert 400e6 <= p["f_out_hz"] * p["CLKOP_DIV"] <= 800e6, p


def test_pll_refuses_unreachable():
    with pytest.raises(ValueError, match="iCE40 PLL output must be 16 to 275 MHz"):
        ice40_pll(12e6, 5e6)
    with pytest.raises(ValueError, match="ECP5 PLL output must be"):
        ecp5_pll(25e6, 500e6)


# --- fit ---------------------------------------------------------------------------------

def test_fit_names_the_resource():
    # MNIST 784-128-10: 100k weight bytes; the UP5K has 30 x 512 bytes of block RAM...
    with pytest.raises(ResourceError, match="ICESTORM_RAM") as e:
        check_fit((784, 128, 10), (3, 1), "iCE40UP5K", "ebr")
    assert e.value.used > e.value.available == 30
    # ... and 4 SPRAMs of 16k x 16 bits: 24-bit words take 2 side by side, 3 deep.
    with pytest.raises(ResourceError, match="6 ICESTORM_SPRAM but the device has 4"):
        check_fit((784, 128, 10), (3, 1), "iCE40UP5K")
    # 4 lanes per layer: 16 multipliers, the UP5K has 8 DSPs.
    with pytest.raises(ResourceError, match="16 ICESTORM_DSP but the device has 8"):
        check_fit((64, 64, 10), 4, "iCE40UP5K")
    check_fit((64, 64, 10), (3, 1), "iCE40UP5K")
    check_fit((784, 128, 10), 8, "LFE5U-85F")


def test_design_refuses_before_building():
    with pytest.raises(ResourceError, match="MULT18X18D"):
        make_design("ulx3s", _network((64, 64, 10)), 8, variant="25F", shim=True)
    with pytest.raises(ValueError, match="board must be one of"):
        make_design("icestick", _network((64, 64, 10)))


def test_ulx3s_mnist_board_top_has_weight_banks():
    """The ULX3S board top of a network whose weight memory spans more than one bank of 4096
    words (520-64-10 at lanes 8: 4160 words) takes boards.timing.ULX3S_BANKED and the Yosys
    script that hides the field wires; the digits 64-64-10 keeps ULX3S and the default script."""
    from amaranth.back import rtlil
    from spikegate.boards.synth import ECP5_HIDE_FIELD_WIRES
    from spikegate.boards.timing import ULX3S, ULX3S_BANKED
    banked, _ = make_design("ulx3s", _network((520, 64, 10)), 8)
    digits, _ = make_design("ulx3s", _network((64, 64, 10)), 8)
    assert banked.top.classifier.timing is ULX3S_BANKED
    assert banked.top.engine._timing is ULX3S_BANKED          # READ_WEIGHTS waits rb_latency 4
    assert banked.synth_overrides == ECP5_HIDE_FIELD_WIRES
    assert [layer.lookup.bank_depth for layer in banked.top.classifier.layers] == [4096, 4096]
    assert digits.top.classifier.timing is ULX3S and not hasattr(digits, "synth_overrides")
    for design in (banked, digits):
        rtlil.convert(design.top)        # and each top elaborates
        design._MustUse__silence = True  # the board wrapper needs a platform: not built here


def test_weight_block_rams():
    # 64 x ceil(64/3) = 1408 words of 24 bits: as 512x8 blocks, 3 deep x 3 wide = 9.
    assert weight_block_rams((64, 64), 3, "iCE40UP5K") == 9
    # 16-bit words (2 lanes), 64*32 = 2048 deep -> 8 blocks of 256x16.
    assert weight_block_rams((64, 64), 2, "iCE40UP5K") == 8


_LOG = """\
Info: Device utilisation:
Info: 	         ICESTORM_LC:  3000/ 5280    56%
Info: 	        ICESTORM_RAM:    12/   30    40%
Info: 	               SB_IO:     4/   96     4%
Info: 	         ICESTORM_DSP:    10/    8   125%
Info: Max frequency for clock 'clk': 21.47 MHz (FAIL at 30.00 MHz)
Info: Max frequency for clock 'clk': 31.02 MHz (PASS at 30.00 MHz)
"""


def test_parse_log_and_overflow():
    res, fmax = parse_log(_LOG, "iCE40UP5K")
    assert res["ICESTORM_LC"] == {"used": 3000, "available": 5280}
    assert "SB_IO" not in res
    assert fmax == {"clk": (31.02, 30.0)}  # the last line of each clock
    with pytest.raises(ResourceError, match="10 ICESTORM_DSP but the device has 8"):
        _fail_on_overflow(_LOG, "iCE40UP5K")
    _fail_on_overflow(_LOG.replace("10/    8", " 8/    8"), "iCE40UP5K")


# --- bitstreams --------------------------------------------------------------------------

def _check_report_against_log(report, build_dir):
    """The JSON report's numbers and the log's, parsed independently, agree."""
    log = (build_dir / "top.tim").read_text()
    from_log, fmax_log = parse_log(log, report.device)
    from_json, fmax_json, _ = parse_report(build_dir / "top_report.json", report.device)
    assert from_log == from_json == report.resources, (from_log, from_json)
    assert set(fmax_log) == set(fmax_json)
    for clk, (got, want) in fmax_json.items():
        assert fmax_log[clk][0] == pytest.approx(got, abs=0.006), (clk, fmax_log, fmax_json)
        assert fmax_log[clk][1] == pytest.approx(want, abs=0.006)
    assert report.fmax_mhz == pytest.approx(min(v[0] for v in fmax_json.values()))
    assert report.target_mhz == pytest.approx(min(v[1] for v in fmax_json.values()), abs=0.01)
    assert report.ffs > 0
    for cell, r in report.resources.items():
        assert 0 <= r["used"] <= r["available"], (cell, r)
        assert re.search(rf"{cell}:\s+{r['used']}/", log), cell


@pytest.mark.synth
@pytest.mark.slow
@pytest.mark.parametrize("board, variant, cells", [
    ("icebreaker", None, ("ICESTORM_LC", "ICESTORM_RAM", "ICESTORM_DSP", "ICESTORM_PLL")),
    ("ulx3s", "25F", ("TRELLIS_COMB", "TRELLIS_FF", "DP16KD", "MULT18X18D", "EHXPLLL")),
])
def test_board_bitstream_builds(board, variant, cells, tmp_path):
    """The board top (UART protocol + digits-sized classifier) builds to a bitstream; timing is
    reported, not required here (the Fmax targets are benchmarks: scripts/bench_boards.py)."""
    net = _network((64, 64, 10))
    design, plat = make_design(board, net, variant=variant or "85F")
    # Two placement seeds on the iCE40 (the second from the same netlist): the build directory
    # keeps the better one, and the report and nextpnr's log below are that seed's.
    seeds = [1, 2] if board == "icebreaker" else 1
    report = synthesize(design, plat, tmp_path / "build", seed=seeds, check_timing=False)
    assert sorted(report.seed_fmax_mhz) == ([1, 2] if board == "icebreaker" else [1])
    assert report.fmax_mhz == pytest.approx(max(report.seed_fmax_mhz.values()))
    assert report.seed_fmax_mhz[report.seed] == report.fmax_mhz
    if board == "icebreaker":
        assert (tmp_path / "build" / "seed2" / "top.json").exists()
    assert report.bitstream and (tmp_path / "build" / report.bitstream.split("/")[-1]).stat().st_size > 10000
    for cell in cells:
        assert cell in report.resources, (cell, report.resources)
    assert report.resources[cells[-1]]["used"] >= 1  # the PLL is there
    _check_report_against_log(report, tmp_path / "build")
    j, md = write_reports(report, tmp_path)
    assert json.loads(j.read_text())["fmax_mhz"] == pytest.approx(report.fmax_mhz)
    assert md.read_text() == format_markdown(report) and "Fmax" in md.read_text()
    print(f"{board}: build {report.seconds:.0f} s, Fmax {report.fmax_mhz:.2f} MHz")


def test_cli_refuses_too_large_design(capsys):
    from spikegate.scripts.cli import main
    assert main(["synth", "--board", "icebreaker", "--lanes", "4", "--out", "/nonexistent"]) == 1
    err = capsys.readouterr().err
    assert "does not fit" in err and "ICESTORM_DSP" in err, err
    assert main(["synth", "--board", "icebreaker", "--lanes", "x"]) == 2
    assert "argument --lanes: must be an integer from 1 to 64" in capsys.readouterr().err


def test_fit_refuses_bad_lanes():
    with pytest.raises(ValueError, match="lanes must be an integer from 1 to 64, or 2 of them"):
        check_fit((64, 64, 10), (3, 1, 2), "iCE40UP5K")
    with pytest.raises(ValueError, match="lanes must be"):
        check_fit((64, 64, 10), 0, "iCE40UP5K")


def test_cli_seed_lists():
    import argparse
    from spikegate.boards.synth import _seed_list
    from spikegate.scripts.synth import parse_seeds
    assert parse_seeds("3") == [3]
    assert parse_seeds("1,2,5") == [1, 2, 5]
    assert parse_seeds("1-4") == [1, 2, 3, 4]
    assert parse_seeds("0, 7-8") == [0, 7, 8]
    for bad in ("", "x", "4-2", "-1", "1,1", "1-2,2", "0-64"):
        with pytest.raises(argparse.ArgumentTypeError, match="seeds"):
            parse_seeds(bad)
    assert _seed_list(5) == [5] and _seed_list((2, 1)) == [2, 1]
    for bad in ([], [1, 1], [-1], [True], 1.5):
        with pytest.raises((ValueError, TypeError)):
            _seed_list(bad)


@pytest.mark.parametrize("device, lanes, overhead", [
    ("iCE40UP5K", (2, 1), 0),      # the first layer's weights in the four SPRAMs
    ("LFE5U-85F", 8, 0),           # all weights in EBR
    ("LFE5U-85F", 8, 40),          # 40 EBR taken by the rest of the design
    ("LFE5U-25F", (2, 2), 3),
])
def test_largest_mnist_hidden_is_the_boundary(device, lanes, overhead):
    """The benchmark's largest ``784-h-10``: ``h`` fits (weights, multipliers, block RAM with
    ``overhead``, on MNIST's time grid) and ``h + 1`` does not."""
    from spikegate.boards.fit import DEVICES
    from spikegate.scripts.bench_boards import (_random_net, estimate_block_rams,
                                                largest_hidden, mnist_grid)
    grid = mnist_grid("icebreaker" if device == "iCE40UP5K" else None)
    h = largest_hidden(device, lanes, overhead, config=grid)
    assert h > 0
    have = DEVICES[device].resources[DEVICES[device].bram]

    def fits(n):
        try:
            check_fit((784, n, 10), lanes, device, config=grid)
        except ResourceError:
            return False
        net = _random_net((784, n, 10), config=grid)
        return estimate_block_rams(net, lanes, device) + overhead <= have

    assert fits(h) and not fits(h + 1), h


def test_largest_mnist_hidden_counts_the_grids_multipliers():
    """MNIST's default grid (64 steps of 1/8, horizon 8) has a 20-bit ``z``: on the UP5K no
    ``784-h-10`` fits its DSPs even with lanes (1, 1); the iCEBreaker's MNIST grid (32 steps,
    horizon 4, 14-bit ``z``) fits with lanes (2, 1), the SPRAM bound (h = 166) first."""
    from spikegate.scripts.bench_boards import largest_hidden, mnist_grid
    assert mnist_grid().timesteps == 64 and mnist_grid("icebreaker").timesteps == 32
    assert largest_hidden("iCE40UP5K", (1, 1), 0) == 0
    assert largest_hidden("iCE40UP5K", (2, 1), 0, config=mnist_grid("icebreaker")) == 166


def test_bench_boards_tables_show_every_mnist_measure():
    """The benchmark's MNIST table carries each measured figure of a row (its cycles, rate and
    hardware-vs-golden count) and a row that did not build shows its error."""
    from spikegate.scripts.bench_boards import _tables
    row = {"h": 166, "grid": "32 x 0.125", "lanes": [2, 1], "fmax_mhz": 26.58, "seed": 3,
           "seed_fmax_mhz": {1: 25.04, 2: 26.11, 3: 26.58},
           "resources": {"LC": {"used": 5093, "available": 5280}},
           "weight_memories": ["spram", "ebr"], "weights": "mnist-166-T32.npz",
           "accuracy": 0.9635, "cycles_mean": 8413.2, "cycles_max": 17876,
           "cls_per_s": 3159.3, "hw_matches_golden": True,
           "synaptic_ops": {"ac": 9000.0, "mac": 9000.0, "dense_ac": 131800.0,
                            "dense_mac": 131800.0},
           "energy_estimate": {"total_uj": 1.2345, "low_uj": 0.5, "high_uj": 4.0}}
    text = _tables([], {"icebreaker": row, "ulx3s-25F": {"h": None, "error": "no fit: EBR"}})
    lines = text.splitlines()
    head = next(l for l in lines if l.startswith("| board | h |"))
    (mnist,) = [l for l in lines if l.startswith("| icebreaker |")]
    (failed,) = [l for l in lines if l.startswith("| ulx3s-25F |")]
    assert mnist.count("|") == head.count("|") == failed.count("|")
    for want in ("SPRAM/EBR", "26.6 (seed 3; 25.0 / 26.1 / 26.6)", "0.9635", "8413 (17876)", "3,159", "| True |",
                 "18,000 / 263,600", "1.234 (0.500 .. 4.000)"):
        assert want in mnist, (want, mnist)
    assert "no fit: EBR" in failed
    assert lines[0] == "## Largest MNIST 784-h-10 on chip", "no digits rows: no digits table"


def test_failed_seed_is_reported(tmp_path, monkeypatch):
    """A seed whose place and route fails is named in the report, with its log, and the
    others' Fmax is kept."""
    import json
    import sys
    from spikegate.boards.synth import SynthReport, _more_seeds, format_markdown
    fake = tmp_path / "fake_nextpnr.py"
    fake.write_text(
        "import json, sys\n"
        "seed = int(sys.argv[sys.argv.index('--seed') + 1])\n"
        "if seed == 3:\n"
        "    print('ERROR: placement failed for seed 3'); sys.exit(1)\n"
        "json.dump({'utilization': {'ICESTORM_LC': {'used': 100, 'available': 5280}},\n"
        "           'fmax': {'clk': {'achieved': 30.0 + seed, 'constraint': 30.0}}},\n"
        "          open(sys.argv[sys.argv.index('--report') + 1], 'w'))\n")
    tool = tmp_path / "nextpnr-ice40"
    tool.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{fake}" "$@"\n')
    tool.chmod(0o755)
    monkeypatch.setenv("NEXTPNR_ICE40", str(tool))
    build = tmp_path / "build"
    build.mkdir()
    (build / "top.json").write_text("{}")
    (build / "build_top.sh").write_text(
        '"$YOSYS" -q top.ys\n'
        '"$NEXTPNR_ICE40" --json top.json --report top_report.json --seed 1\n')
    fmax, failed = _more_seeds(build, [2, 3, 4], "iCE40UP5K")
    assert fmax == {2: 32.0, 4: 34.0} and failed == [3]
    assert "placement failed for seed 3" in (build / "seed3" / "seed.log").read_text()
    rep = SynthReport(board="icebreaker", device="iCE40UP5K", sizes=[64, 64, 10],
                      lanes=[2, 1], target_mhz=30.0, fmax_mhz=34.0, resources={}, ffs=1,
                      seed=4, seed_fmax_mhz={1: 31.0, **fmax}, seeds_failed=failed)
    assert "seed 3 failed (log in seed3/seed.log)" in format_markdown(rep)
    assert json.loads(json.dumps(rep.to_dict()))["seeds_failed"] == [3]


def test_bench_boards_metrics_use_the_board_and_its_logic_cells():
    """The benchmark's synaptic operations and energy estimate: the board's energy model, the
    build's logic cells, the clock it runs at."""
    from spikegate.scripts.bench_boards import _metrics
    from spikegate.sim.energy import estimate
    res = {"ICESTORM_LC": {"used": 4000, "available": 5280}}
    m = _metrics("icebreaker", (64, 64, 10), 500.0, 900.0, 30.0, res, "iCE40UP5K")
    assert m["synaptic_ops"]["mac"] == 500.0 and m["synaptic_ops"]["dense_mac"] == 64 * 64 + 64 * 10
    want = estimate("icebreaker", cycles=900.0, weight_reads=500.0, clock_mhz=30.0, luts=4000)
    assert m["energy_estimate"] == want
    e85 = _metrics("ulx3s-85F", (64, 64, 10), 500.0, 900.0, 80.0,
                   {"TRELLIS_COMB": {"used": 9000, "available": 83640}}, "LFE5U-85F")
    assert e85["energy_estimate"]["static_uj"] > want["static_uj"]     # the ECP5's static power
