"""Popcount as generated Verilog, under cocotb, against the golden reference.

The cocotb tests (``popcount_*``) and the pytest functions that run them sit in this one
module: pytest builds the design with :func:`spikegate.sim.runner.run_cocotb` and hands
the vectors over as ``test_args``; the simulator imports this module and runs the
``@cocotb.test`` functions.
"""

import numpy as np
import pytest

import cocotb
from cocotb.triggers import ClockCycles

from spikegate.golden.popcount import pipeline_latency, popcount
from spikegate.hdl.popcount import Popcount
from spikegate.sim.runner import run_cocotb, test_args
from spikegate.sim.stream import StreamDriver, StreamMonitor, start_clock_and_reset

PERIOD_NS = 10


def _words(bits):
    """Each row of a 0/1 matrix as an int, bit ``i`` = column ``i``."""
    packed = np.packbits(bits.astype(np.uint8), axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def _check(dut_name, got, expected, bits, seed):
    got = np.asarray(got, dtype=np.int64)
    if got.shape == expected.shape and np.array_equal(got, expected):
        return
    if got.shape != expected.shape:
        raise AssertionError(f"{dut_name}: {got.size} counts received, {expected.size} "
                             f"expected (seed {seed})")
    i = int(np.flatnonzero(got != expected)[0])
    ones = np.flatnonzero(bits[i]).tolist()
    raise AssertionError(f"{dut_name}: vector {i} (ones at {ones[:20]}{'...' if len(ones) > 20 else ''}) "
                         f"counted {got[i]}, golden {expected[i]} (seed {seed})")


# --- cocotb side -------------------------------------------------------------------------

@cocotb.test()
async def popcount_matches_golden_under_stalls(dut):
    """Every vector, random stalls on both streams: counts in order, equal to golden."""
    args = test_args()
    bits, expected, seed = args["bits"], args["expected"], args["seed"]
    await start_clock_and_reset(dut, PERIOD_NS)
    source = StreamDriver(dut, "i_stream", stall=0.3, seed=seed + 1)
    sink = StreamMonitor(dut, "o_stream", stall=0.3, seed=seed + 2)
    source.send_all(_words(bits))
    await sink.wait_for(len(bits), timeout_cycles=10 * len(bits) + 100)
    await ClockCycles(dut.clk, 2 * args["latency"] + 2)
    _check(f"popcount({args['width']})", [p for p, _ in sink.received], expected, bits, seed)


@cocotb.test()
async def popcount_latency_and_throughput(dut):
    """No stalls: one count per cycle, each ``latency`` cycles after its vector."""
    args = test_args()
    bits, expected, seed, latency = args["bits"], args["expected"], args["seed"], args["latency"]
    await start_clock_and_reset(dut, PERIOD_NS)
    source = StreamDriver(dut, "i_stream")
    sink = StreamMonitor(dut, "o_stream")
    source.send_all(_words(bits))
    await sink.wait_for(len(bits), timeout_cycles=len(bits) + latency + 10)
    _check(f"popcount({args['width']})", [p for p, _ in sink.received], expected, bits, seed)
    t_in = np.array([t for _, t in source.sent])
    t_out = np.array([t for _, t in sink.received])
    delays = np.rint((t_out - t_in) / PERIOD_NS).astype(int)
    assert np.all(delays == latency), (
        f"latency {sorted(set(delays.tolist()))} cycles, expected {latency} (seed {seed})")
    gaps = np.rint(np.diff(t_out) / PERIOD_NS).astype(int)
    assert np.all(gaps == 1), f"output gaps {sorted(set(gaps.tolist()))} cycles, expected 1"


# --- pytest side -------------------------------------------------------------------------

def vectors(width, seed, n_random=200):
    """Random vectors (densities 0.5, 0.1, 0.9), all zeros, all ones, and every single-bit one."""
    rng = np.random.default_rng(seed)
    density = np.repeat([0.5, 0.1, 0.9], -(-n_random // 3))[:n_random]
    rand = rng.random((n_random, width)) < density[:, None]
    return np.concatenate([
        np.zeros((1, width), bool), np.ones((1, width), bool),
        np.eye(width, dtype=bool), rand,
    ]).astype(np.uint8)


# Widths: the degenerate one, one below a radix-4 boundary, a power of 4, and the
# on-chip learning unit's mask width (600, not a power of 2).
# ``sim``: verilator, and icarus when installed (tests/conftest.py).
@pytest.mark.parametrize("width", [1, 7, 64, 600])
def test_popcount_verilog(sim, width):
    seed = 1000 + width
    bits = vectors(width, seed)
    run_cocotb(Popcount, params={"width": width}, module=__name__, sim=sim,
               test_args={"width": width, "seed": seed, "bits": bits,
                          "expected": popcount(bits), "latency": pipeline_latency(width)})
