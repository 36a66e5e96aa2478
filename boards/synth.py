"""Bitstreams with the YoWASP tools, and the resource and timing report of nextpnr.

:func:`synthesize` builds a board design (:class:`~spikegate.boards.icebreaker.ICEBreakerDesign`
or :class:`~spikegate.boards.ulx3s.ULX3SDesign`) through its Amaranth platform: Yosys
(``synth_ice40 -dsp`` / ``synth_ecp5``), nextpnr (``--report``, ``--timing-allow-fail`` so that a
missed clock is reported rather than aborted), then icepack / ecppack. The
:class:`SynthReport` holds the resources used against what the device has, and the Fmax of
the ``sync`` clock against its target, read from nextpnr's JSON report; :func:`parse_log`
reads the same numbers from nextpnr's log, so each can be checked against the other.

A design that does not fit raises :class:`~spikegate.boards.fit.ResourceError` naming the
resource; one that misses its clock raises :class:`TimingError` with the critical path.
"""

import json
import os
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .fit import DEVICES, ResourceError
from .toolchain import apply_yowasp_env

__all__ = ["SynthReport", "SynthError", "TimingError", "synthesize", "DEFAULT_SEEDS",
           "parse_log", "parse_report", "ClassifierShim", "make_design", "BOARDS", "format_markdown",
           "format_table", "write_reports", "PDClassifierShim", "make_pd_design", "PD_LANES",
           "PD_WEIGHT_BANKS", "PD_WEIGHT_BANK_WIDTH", "pd_weight_kwargs", "pd_classifier_kwargs",
           "ECP5_HIDE_FIELD_WIRES"]

#: Boards :func:`make_design` knows.
BOARDS = ("icebreaker", "ulx3s")

_NAME = "top"


class SynthError(RuntimeError):
    """A tool failed for a reason other than fit; the message ends with its log's last lines."""


class TimingError(RuntimeError):
    """The ``sync`` clock's Fmax is below its target; ``report`` holds the whole report."""

    def __init__(self, report):
        self.report = report
        path = " -> ".join(report.critical_path[:1] + report.critical_path[-1:])
        super().__init__(
            f"{report.board}: Fmax {report.fmax_mhz:.2f} MHz misses the {report.target_mhz:.2f} MHz "
            f"target; critical path {path} ({len(report.critical_path)} nets; full path in "
            f"{report.build_dir}/{_NAME}.tim and {_NAME}_report.json)")


@dataclass
class SynthReport:
    """Resources and timing of one build.

    ``resources`` maps nextpnr's cell name to ``{"used": n, "available": n}`` (only the cells
    that matter: logic, flip-flops, block RAM, SPRAM, multipliers, PLL). ``ffs`` is the
    flip-flop count from Yosys's statistics (on the iCE40 flip-flops share the logic cells).
    ``critical_path`` lists the path's nets, source first. ``weight_memories`` says where
    each weight layer's memory is (``"ebr"`` / ``"spram"``).
    """
    board: str
    device: str
    sizes: list
    lanes: list
    target_mhz: float
    fmax_mhz: float
    resources: dict
    ffs: int
    critical_path: list = field(default_factory=list)
    seconds: float = 0.0
    build_dir: str = ""
    bitstream: str = ""
    weight_memories: list = field(default_factory=list)
    seed: int = 1
    seed_fmax_mhz: dict = field(default_factory=dict)
    seeds_failed: list = field(default_factory=list)

    @property
    def timing_met(self):
        return self.fmax_mhz >= self.target_mhz

    def to_dict(self):
        d = asdict(self)
        d["timing_met"] = self.timing_met
        return d


def _cells(device):
    dev = DEVICES[device]
    names = [dev.logic, dev.ff, dev.bram, dev.spram, dev.dsp,
             "ICESTORM_PLL" if dev.family == "ice40" else "EHXPLLL",
             None if dev.family == "ice40" else "TRELLIS_RAMW"]
    return [n for i, n in enumerate(names) if n and n not in names[:i]]


def parse_report(path, device):
    """``(resources, fmax_by_clock, critical_path)`` from nextpnr's ``--report`` JSON.

    ``fmax_by_clock`` maps each clock net to ``(achieved_mhz, target_mhz)``; the critical path
    is the list of net names of the first (worst) path.
    """
    rep = json.loads(Path(path).read_text())
    util = rep.get("utilization", {})
    resources = {c: {"used": int(util[c]["used"]), "available": int(util[c]["available"])}
                 for c in _cells(device) if c in util}
    fmax = {clk: (float(v["achieved"]), float(v["constraint"]))
            for clk, v in rep.get("fmax", {}).items()}
    path = []
    for cp in rep.get("critical_paths", [])[:1]:
        for seg in cp.get("path", []):
            if seg.get("type") == "routing" and seg.get("net"):
                path.append(seg["net"])
    return resources, fmax, path


_UTIL_RE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.M)
_FMAX_RE = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((PASS|FAIL) at ([\d.]+) MHz\)")


def parse_log(text, device):
    """``(resources, fmax_by_clock)`` from nextpnr's log: its last "Device utilisation" table and
    its last "Max frequency for clock" line of each clock (as :func:`parse_report`)."""
    resources = {}
    for name, used, avail in _UTIL_RE.findall(text):
        resources[name] = {"used": int(used), "available": int(avail)}
    resources = {c: resources[c] for c in _cells(device) if c in resources}
    fmax = {}
    for clk, got, _, want in _FMAX_RE.findall(text):
        fmax[clk] = (float(got), float(want))
    return resources, fmax


def _yosys_ffs(text, family):
    """Flip-flops in Yosys's last statistics table (``SB_DFF*`` / ``TRELLIS_FF``)."""
    stats = text.rsplit("=== design hierarchy ===", 1)[-1] if "=== design hierarchy ===" in text \
        else text.rsplit("Printing statistics.", 1)[-1]
    pat = r"^\s+(\d+)\s+\S*\s*(SB_DFF\w*)\s*$|^\s+(SB_DFF\w*)\s+(\d+)\s*$" if family == "ice40" \
        else r"^\s+(\d+)\s+\S*\s*(TRELLIS_FF)\s*$|^\s+(TRELLIS_FF)\s+(\d+)\s*$"
    total = 0
    for a, b, c, d in re.findall(pat, stats, re.M):
        total += int(a or d)
    return total


def _fail_on_overflow(log, device):
    """Raise :class:`ResourceError` for the first cell of nextpnr's utilisation (or its
    "unable to place" error) beyond the device."""
    resources, _ = parse_log(log, device)
    for name, r in resources.items():
        if r["used"] > r["available"]:
            raise ResourceError(name, r["used"], r["available"], device)
    for name, used, avail in _UTIL_RE.findall(log):
        if int(used) > int(avail):
            raise ResourceError(name, int(used), int(avail), device)
    m = re.search(r"no (?:BELs|Bels) remaining to implement cell type '(\w+)'", log)
    if m:
        raise ResourceError(m.group(1), "more", DEVICES[device].resources.get(m.group(1), "fewer"),
                            device)


#: nextpnr placement seeds of ``spikegate synth`` and of ``spikegate run``'s synth stage: both
#: boards sit within a few MHz of their target, and placement alone moves Fmax that much (the
#: ECP5 85F digits network: 78.8 / 82.3 / 78.8 MHz at seeds 1 / 2 / 3), so the tools build the
#: best of three placements (Yosys once; the extra seeds two at a time).
DEFAULT_SEEDS = (1, 2, 3)


def synthesize(design, platform, build_dir, *, seed=1, check_timing=True):
    """Build ``design`` on ``platform`` in ``build_dir``; return a :class:`SynthReport`.

    ``seed`` is nextpnr's placement seed, or a sequence of seeds: the design is synthesized
    once (Yosys), placed and routed with each seed (the first through the platform's build
    script, the others from its netlist, two at a time), and the build directory keeps the
    bitstream and logs of the seed with the highest Fmax (the report's ``seed``; every
    seed's Fmax in ``seed_fmax_mhz``).

    Raises
    ------
    ResourceError
        The design does not fit (the resource named, from nextpnr).
    TimingError
        ``check_timing`` and the ``sync`` clock misses its target.
    SynthError
        A tool failed otherwise.
    """
    apply_yowasp_env()
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    device = design.device.name
    family = design.device.family
    seeds = _seed_list(seed)
    nextpnr_opts = f"--report {_NAME}_report.json --timing-allow-fail --seed {seeds[0]}"
    overrides = {"nextpnr_opts": nextpnr_opts}
    if family == "ice40":
        overrides["synth_opts"] = "-dsp"
    overrides.update(getattr(design, "synth_overrides", {}))
    for f in build_dir.glob(f"{_NAME}*"):
        f.unlink()
    t0 = time.monotonic()
    try:
        platform.build(design, name=_NAME, build_dir=str(build_dir), do_program=False,
                       **overrides)
    except subprocess.CalledProcessError as e:
        log_path = build_dir / f"{_NAME}.tim"
        log = log_path.read_text(errors="replace") if log_path.exists() else ""
        _fail_on_overflow(log, device)
        rpt = build_dir / f"{_NAME}.rpt"
        tail = "\n".join((log or (rpt.read_text(errors="replace") if rpt.exists() else ""))
                         .splitlines()[-15:])
        raise SynthError(f"{design.board}: {e.cmd if isinstance(e.cmd, str) else 'build'} failed "
                         f"(exit {e.returncode}); logs in {build_dir}:\n{tail}") from None
    seed_fmax = {seeds[0]: _sync_fmax(parse_report(build_dir / f"{_NAME}_report.json",
                                                   device)[1])}
    failed = []
    if len(seeds) > 1:
        more, failed = _more_seeds(build_dir, seeds[1:], device)
        seed_fmax.update(more)
        best = max(seed_fmax, key=lambda s: (seed_fmax[s], -seeds.index(s)))
        if best != seeds[0]:
            for f in (build_dir / f"seed{best}").iterdir():
                if f.suffix not in (".json", ".pcf", ".lpf") or f.name == f"{_NAME}_report.json":
                    f.replace(build_dir / f.name)
    else:
        best = seeds[0]
    seconds = time.monotonic() - t0
    resources, fmax, path = parse_report(build_dir / f"{_NAME}_report.json", device)
    for name, r in resources.items():
        if r["used"] > r["available"]:
            raise ResourceError(name, r["used"], r["available"], device)
    target = design.clk_freq_hz / 1e6
    achieved = _sync_fmax(fmax)
    rpt = (build_dir / f"{_NAME}.rpt").read_text(errors="replace")
    bit = build_dir / (f"{_NAME}.bin" if family == "ice40" else f"{_NAME}.bit")
    n_w = len(design.net.sizes) - 1
    lanes = [design.lanes] * n_w if isinstance(design.lanes, int) else list(design.lanes)
    report = SynthReport(
        board=design.board + (f"-{design.variant}" if hasattr(design, "variant") else ""),
        device=device, sizes=list(design.net.sizes), lanes=list(lanes),
        target_mhz=target, fmax_mhz=achieved, resources=resources,
        ffs=_yosys_ffs(rpt, family), critical_path=path, seconds=seconds,
        build_dir=str(build_dir), bitstream=str(bit) if bit.exists() else "",
        weight_memories=list(getattr(design, "weight_memories", None) or ["ebr"] * n_w),
        seed=best, seed_fmax_mhz=seed_fmax, seeds_failed=failed)
    if check_timing and not report.timing_met:
        raise TimingError(report)
    return report


def _seed_list(seed):
    """``seed`` (an int or a sequence of ints) as a list of distinct seeds, in order."""
    seeds = [seed] if isinstance(seed, int) else list(seed)
    if not seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
        raise ValueError(f"seed must be a non-negative integer or a sequence of them, not {seed!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, not {seeds!r}")
    return seeds


def _sync_fmax(fmax):
    """The ``sync`` clock's achieved Fmax (MHz) in :func:`parse_report`'s ``fmax_by_clock``."""
    sync = [v for k, v in fmax.items() if "sync" in k or "pll" in k.lower() or "clk" in k.lower()]
    return min(v[0] for v in sync) if sync else float("nan")


def _more_seeds(build_dir, seeds, device):
    """Place and route the netlist of ``build_dir`` again with each of ``seeds``, each in
    ``build_dir/seed<N>`` (the build script's nextpnr and pack commands, other seed), two at
    a time; return ``({seed: Fmax}, failed)``: a seed whose run failed is left out of the
    first and listed in the second, its log kept in ``seed<N>/seed.log``."""
    script = (build_dir / f"build_{_NAME}.sh").read_text()
    lines = [ln for ln in script.splitlines() if ln.startswith('"$')]
    pnr = [ln for ln in lines if ln.startswith('"$NEXTPNR')]
    if len(pnr) != 1:
        raise SynthError(f"cannot find the nextpnr command in {build_dir}/build_{_NAME}.sh")
    cmds = lines[lines.index(pnr[0]):]      # nextpnr, then the packer

    def run(s):
        d = build_dir / f"seed{s}"
        d.mkdir(exist_ok=True)
        for f in build_dir.glob(f"{_NAME}.*"):
            if f.suffix in (".json", ".pcf", ".lpf"):      # copies: YoWASP's tools run in a
                shutil.copyfile(f, d / f.name)             # sandbox that refuses symlinks
        body = "set -e\n" + "\n".join(re.sub(r"--seed \d+", f"--seed {s}", c) for c in cmds)
        r = subprocess.run(["sh", "-c", body], cwd=d, env=os.environ.copy(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        rep = d / f"{_NAME}_report.json"
        if r.returncode != 0 or not rep.exists():
            (d / "seed.log").write_text(r.stdout)
            return s, None
        return s, _sync_fmax(parse_report(rep, device)[1])

    with ThreadPoolExecutor(max_workers=min(2, len(seeds))) as pool:
        done = list(pool.map(run, seeds))
    return {s: f for s, f in done if f is not None}, [s for s, f in done if f is None]


# --- reports ---------------------------------------------------------------------------

_LABELS = {"ICESTORM_LC": "LCs", "ICESTORM_RAM": "EBR", "ICESTORM_SPRAM": "SPRAM",
           "ICESTORM_DSP": "DSP", "ICESTORM_PLL": "PLL", "TRELLIS_COMB": "LUT4",
           "TRELLIS_FF": "FFs", "DP16KD": "EBR", "MULT18X18D": "MULT18", "EHXPLLL": "PLL",
           "TRELLIS_RAMW": "LUT RAM"}


def _rows(report):
    rows = []
    for name, r in report.resources.items():
        pct = 100.0 * r["used"] / r["available"] if r["available"] else 0.0
        rows.append((f"{_LABELS.get(name, name)} ({name})", f"{r['used']}", f"{r['available']}",
                     f"{pct:.0f}%"))
    if DEVICES[report.device].family == "ice40":
        rows.append(("FFs (SB_DFF*, in LCs)", str(report.ffs), "5280", f"{100 * report.ffs / 5280:.0f}%"))
    status = "PASS" if report.timing_met else "FAIL"
    rows.append(("Fmax (MHz)", f"{report.fmax_mhz:.2f}", f"{report.target_mhz:.2f} target", status))
    return rows


def _weights_in(report):
    """``", weights in SPRAM/EBR"`` when some layer's weights are in SPRAM, else ``""``."""
    kinds = report.weight_memories
    if "spram" not in kinds:
        return ""
    return ", weights in " + "/".join(k.upper() for k in kinds)


def format_table(report):
    """Plain-text table of a :class:`SynthReport`."""
    head = (f"{report.board} ({report.device}), network {'-'.join(map(str, report.sizes))}, "
            f"lanes {tuple(report.lanes)}{_weights_in(report)}, build {report.seconds:.0f} s")
    rows = [("resource", "used", "available", "%")] + _rows(report)
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [head] + ["  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i])
                                for i, c in enumerate(r)) for r in rows]
    if report.critical_path:
        lines.append(f"critical path: {report.critical_path[0]} -> {report.critical_path[-1]}")
    lines.append(_seed_line(report))
    return "\n".join(lines)


def _seed_line(report):
    """Which nextpnr seed the bitstream is from, and each seed's Fmax when several ran."""
    failed = report.seeds_failed
    why = "" if not failed else \
        (f"; seed{'s' * (len(failed) > 1)} {', '.join(map(str, failed))} failed (log in "
         f"{', '.join(f'seed{s}/seed.log' for s in failed)})")
    if len(report.seed_fmax_mhz) <= 1:
        return f"nextpnr seed {report.seed}{why}"
    each = ", ".join(f"{s}: {f:.2f}" for s, f in report.seed_fmax_mhz.items())
    return (f"nextpnr seed {report.seed} kept, the best of {len(report.seed_fmax_mhz)} "
            f"(Fmax MHz by seed: {each}){why}")


def format_markdown(report):
    """Markdown table of a :class:`SynthReport`."""
    lines = [f"### {report.board} ({report.device})", "",
             f"Network {'-'.join(map(str, report.sizes))}, lanes {tuple(report.lanes)}"
             f"{_weights_in(report)}, build {report.seconds:.0f} s; {_seed_line(report)}.", "",
             "| resource | used | available | % |", "|---|---:|---:|---:|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in _rows(report)]
    if report.critical_path:
        cp = report.critical_path
        lines += ["", f"Critical path: `{cp[0]}` -> `{cp[-1]}` ({len(cp)} nets; the whole path "
                  f"is in `{_NAME}_report.json` of the build directory)"]
    return "\n".join(lines) + "\n"


def write_reports(report, out_dir):
    """Write ``<board>_synth.json`` and ``<board>_synth.md`` in ``out_dir``; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    j = out / f"{report.board}_synth.json"
    md = out / f"{report.board}_synth.md"
    j.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    md.write_text(format_markdown(report))
    return j, md


# --- designs -----------------------------------------------------------------------------

class ClassifierShim(wiring.Component):
    """The classifier alone behind two pins, for synthesis without the UART protocol.

    ``rx`` shifts into a register that feeds every input of the classifier (spike events,
    weight writes, read-back and trace addresses); every output is XOR-reduced into ``tx``
    through a register, so nothing is optimized away. Not a functional top.
    """
    rx: In(1)
    tx: Out(1)

    def __init__(self, net, lanes, *, clk_freq_hz, binary_input=False):
        from spikegate.hdl.classifier import TTFSClassifier
        self.classifier = TTFSClassifier.from_network(net, lanes, binary_input=binary_input)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.classifier = c = self.classifier
        p = c.model
        ins = [c.i_stream.payload, c.i_stream.valid, c.o_stream.ready, p.w_en, p.w_layer,
               p.w_src, p.w_dst, p.w_data, p.rb_en, p.theta_en, p.theta_data, c.trace.layer,
               c.trace.addr]
        width = sum(len(v.as_value() if hasattr(v, "as_value") else v) for v in ins)
        sr = Signal(width)
        m.d.sync += sr.eq(Cat(self.rx, sr[:-1]))
        m.d.comb += Cat(*[v.as_value() if hasattr(v, "as_value") else v for v in ins]).eq(sr)
        outs = Cat(c.o_stream.payload.as_value(), c.o_stream.valid, c.i_stream.ready, p.idle,
                   p.rb_data, c.trace.step)
        m.d.sync += self.tx.eq(outs.xor())
        return m


def make_design(board, net, lanes=None, *, variant="85F", clk_freq_hz=None, shim=False,
                weight_memory="auto", binary_input=False):
    """The board design and its platform: ``(design, platform)``.

    ``shim`` puts :class:`ClassifierShim` in place of the board top (the classifier alone).
    The ULX3S board top takes :func:`~spikegate.boards.timing.board_timing` of the network:
    registered weight banks for a network whose weight memory spans more than one bank (the
    MNIST builds; with them the Yosys script of :data:`ECP5_HIDE_FIELD_WIRES`).
    ``weight_memory`` (iCEBreaker only; ``"auto"``, ``"ebr"``, ``"spram"`` or one per weight
    layer) places the weights (:func:`spikegate.boards.fit.weight_memory_plan`); the ECP5
    has no SPRAM and keeps them in block RAM. ``binary_input`` (a model of binary input
    encoding) builds the first layer without multipliers
    (:class:`~spikegate.hdl.classifier.TTFSClassifier`'s ``binary_input``).
    """
    if board == "icebreaker":
        from . import icebreaker as b
        kw = {"weight_memory": weight_memory}
    elif board == "ulx3s":
        from . import ulx3s as b
        kw = {"variant": variant}
        if weight_memory not in ("auto", "ebr"):
            raise ValueError(f"the ULX3S (ECP5) has no SPRAM: weight_memory must be 'auto' or "
                             f"'ebr', not {weight_memory!r}")
    else:
        raise ValueError(f"board must be one of {', '.join(BOARDS)}, not {board!r}")
    design_cls = b.ICEBreakerDesign if board == "icebreaker" else b.ULX3SDesign
    make_top = ClassifierShim if shim else (_ulx3s_top if board == "ulx3s" else None)
    design = design_cls(net, lanes, clk_freq_hz=clk_freq_hz or b.DEFAULT_CLK_HZ,
                        make_top=make_top, binary_input=binary_input, **kw)
    if board == "ulx3s" and not shim and design.top.classifier.timing.weight_bank_depth:
        # The banked build's Yosys script (abc9's assertion on Amaranth's field wires).
        design.synth_overrides = dict(ECP5_HIDE_FIELD_WIRES)
    plat = b.platform() if board == "icebreaker" else b.platform(variant)
    return design, plat


def _ulx3s_top(net, lanes, *, clk_freq_hz, **options):
    """The ULX3S board top of ``net`` at ``lanes``: :class:`~spikegate.boards.top.BoardTop`
    with :func:`~spikegate.boards.timing.board_timing` of the network (registered weight
    banks, :data:`~spikegate.boards.timing.ULX3S_BANKED`, when a weight memory spans more
    than one bank: the MNIST builds)."""
    from .timing import board_timing
    from .top import default_top
    return default_top(net, lanes, clk_freq_hz=clk_freq_hz,
                       timing=board_timing("ulx3s", net.sizes, lanes), **options)


# --- PD designs ----------------------------------------------------------------------------

#: Lanes per weight layer of a PD network on each board. A PD layer adds rows (no
#: multipliers): its lanes cost logic cells (a saturating adder each) and block RAM, not DSPs.
#: The digits 64-64-10 network on the UP5K (shim top, nextpnr seed 1): lanes 8 need 8012 logic
#: cells of 5280 (and 40 block RAMs), lanes (2, 1) 31 block RAMs of 30, lanes (1, 1) fit (4578
#: logic cells, 30 block RAMs; 4983 with the pipelined datapath). The ECP5 85F takes lanes 8
#: with room to spare.
PD_LANES = {"icebreaker": (1, 1), "ulx3s": 8}

#: Weight-memory banks of the PD build on each board (:class:`~spikegate.hdl.lookup.WeightLookup`'s
#: ``bank_depth``, with its ``out_register``), or None: on the ECP5 the MNIST network's weights
#: spread over ~80 DP16KD, and their 5.8 ns clock-to-out with the multiplexer over them was the
#: critical path (issue 20); banks register each block's output before the multiplexer, one
#: cycle more per layer and frame. Banks of 4096 words, each 16 memories of 4 bits
#: (:data:`PD_WEIGHT_BANK_WIDTH`, the DP16KD's 4096 x 4 shape): a 5-input multiplexer per
#: weight bit for 784-200-10 (banks of 512 words of 64 bits, the DP16KD's 512 x 36, needed 39
#: inputs: 42 MHz after placement and a congested route, seed 1). With banks a weight's
#: read-back (``rb_data``) comes three cycles after ``rb_en``.
PD_WEIGHT_BANKS = {"icebreaker": None, "ulx3s": 4096}

#: Bits per memory of a weight bank (:class:`~spikegate.hdl.lookup.WeightLookup`'s
#: ``bank_width``), or None (one memory per bank).
PD_WEIGHT_BANK_WIDTH = {"icebreaker": None, "ulx3s": 4}


def pd_weight_kwargs(bank_depth=None, bank_width=None):
    """The :class:`~spikegate.hdl.pd_classifier.PDClassifier` keywords of weight banks of
    ``bank_depth`` words of memories ``bank_width`` bits wide (``weight_out_register``,
    ``weight_bank_depth``, ``weight_bank_width``), or none without banks."""
    if bank_depth is None:
        return {}
    return {"weight_out_register": True, "weight_bank_depth": bank_depth,
            "weight_bank_width": bank_width}


def pd_classifier_kwargs(board):
    """The keywords (besides the network and :data:`PD_LANES`) with which ``board``'s PD build
    makes its :class:`~spikegate.hdl.pd_classifier.PDClassifier` (through
    :class:`PDClassifierShim`): its weight banks (:data:`PD_WEIGHT_BANKS`,
    :data:`PD_WEIGHT_BANK_WIDTH`). Simulations of the board's build take them from here."""
    if board not in PD_WEIGHT_BANKS:
        raise ValueError(f"board must be one of {', '.join(PD_WEIGHT_BANKS)}, not {board!r}")
    return pd_weight_kwargs(PD_WEIGHT_BANKS[board], PD_WEIGHT_BANK_WIDTH[board])


def _pin_shim(shim, name, core):
    """The two-pin synthesis top of ``shim`` around ``core`` (a Component, its submodule
    ``name``): ``shim.rx`` shifts into a register that drives every input port of ``core``;
    every output port but the trace ports is registered and XOR-reduced into ``shim.tx``
    through a register, so nothing of ``core`` is optimized away."""
    from amaranth.hdl import Value
    m = Module()
    m.submodules[name] = core
    ins, outs = [], []
    for path, member, value in core.signature.flatten(core):
        if member.flow == In:
            ins.append(Value.cast(value))
        elif not str(path[0]).startswith("trace"):
            outs.append(Value.cast(value))
    sr = Signal(sum(len(v) for v in ins))
    m.d.sync += sr.eq(Cat(shim.rx, sr[:-1]))
    m.d.comb += Cat(*ins).eq(sr)
    taken = Signal(len(Cat(*outs)))
    m.d.sync += [taken.eq(Cat(*outs)), shim.tx.eq(taken.xor())]
    return m


def _board_clock(design, mod, pll, clk_freq_hz, variant):
    """Set ``design``'s ULX3S ``variant`` (if given; checked) and its clock: the board's
    oscillator when ``clk_freq_hz`` is it, else the PLL (``pll``'s parameters) nearest to
    ``clk_freq_hz`` (``design.pll``, ``design.clk_freq_hz``)."""
    from spikegate.hdl.params import checking
    if variant is not None:
        from .ulx3s import VARIANTS
        if variant not in VARIANTS:
            raise ValueError(f"ULX3S variant must be one of {', '.join(VARIANTS)}, "
                             f"not {variant!r}")
        design.variant = variant
        design.device = DEVICES[VARIANTS[variant]]
    with checking(design):
        if clk_freq_hz == mod.OSC_HZ:
            design.pll, design.clk_freq_hz = None, float(mod.OSC_HZ)
        else:
            design.pll = pll(mod.OSC_HZ, clk_freq_hz)
            design.clk_freq_hz = design.pll["f_out_hz"]


class PDClassifierShim(wiring.Component):
    """A PD classifier (:class:`~spikegate.hdl.pd_classifier.PDClassifier`) alone behind two
    pins, for synthesis: there is no UART protocol for PD frames yet.

    ``rx`` shifts into a register that drives every input port of the classifier (the frame
    stream, the result's ready, the weight and bias ports); every output port but the trace
    ports (result, ready, read-back data, ``idle``) is registered (as a top that uses them
    would: the read-back data and ``ready`` are combinational) and XOR-reduced into ``tx``
    through a register, so nothing of the classifier's function is optimized away. The trace ports are
    for test benches (a board top leaves them open, and so does the shim: the registers that
    carry ``u`` and ``y`` down the decoder's pipeline to its trace go). Not a functional top:
    it measures resources and Fmax.
    """
    rx: In(1)
    tx: Out(1)

    def __init__(self, net, lanes, *, clk_freq_hz, weight_bank_depth=None,
                 weight_bank_width=None):
        from spikegate.hdl.pd_classifier import PDClassifier
        self.classifier = PDClassifier.from_network(
            net, lanes, **pd_weight_kwargs(weight_bank_depth, weight_bank_width))
        super().__init__()

    def elaborate(self, platform):
        return _pin_shim(self, "classifier", self.classifier)


#: Yosys script overrides of the banked ECP5 builds (PD, and the TTFS MNIST board top): Yosys 0.70's ``abc9`` fails an assertion
#: (``GetSize(conn.first) == GetSize(conn.second)`` in ``abc_ops_reintegrate``) when the bits it
#: renames back belong to a wire ``X`` and to Amaranth's field wires ``X[i]`` of the same
#: ArrayLayout signal (``acc_rp__data`` and ``acc_rp__data[2]``): which bits cross ABC's boundary
#: decides it, and the banked 784-200-10 build hits it (the unbanked one did not). Between
#: ``synth_ecp5``'s ``flatten`` and its ``map_luts`` (``abc9``) the field wires ``*]`` get
#: private names (``rename -hide``); the rest of the script is ``synth_ecp5``'s own.
ECP5_HIDE_FIELD_WIRES = {
    "synth_opts": "-run begin:map_luts",
    "script_after_synth": "rename -hide w:*]\nsynth_ecp5 -top top -run map_luts:",
}


def _pd_design_class(base, mod, pll, banks=None, family=None, bank_width=None):
    """``base`` (a board design class of module ``mod``, whose PLL parameters ``pll`` computes)
    for a PD network: no fit check of the TTFS classifier's
    multipliers (a PD layer has none) and the PD shim as its top, with weight-memory banks of
    ``banks`` words (:data:`PD_WEIGHT_BANKS`) of memories ``bank_width`` bits wide; with banks
    on the ``family`` ``"ecp5"``, the Yosys script of :data:`ECP5_HIDE_FIELD_WIRES`
    (``synth_overrides``, which :func:`synthesize` passes to the build)."""

    class PDDesign(base):
        def __init__(self, net, lanes, *, clk_freq_hz, variant=None):
            self.net = net
            self.lanes = lanes
            self.weight_memories = ["ebr"] * (len(net.sizes) - 1)
            _board_clock(self, mod, pll, clk_freq_hz, variant)
            self.top = PDClassifierShim(net, lanes, clk_freq_hz=int(round(self.clk_freq_hz)),
                                        weight_bank_depth=banks,
                                        weight_bank_width=bank_width)
            if banks is not None and family == "ecp5":
                self.synth_overrides = dict(ECP5_HIDE_FIELD_WIRES)

    PDDesign.__name__ = PDDesign.__qualname__ = f"PD{base.__name__}"
    return PDDesign


def make_pd_design(board, net, lanes=None, *, variant="85F", clk_freq_hz=None):
    """The board design of a PD network (a
    :class:`~spikegate.golden.pdnn_fixed.PDFixedNetwork`) and its platform: ``(design,
    platform)``. The top is :class:`PDClassifierShim`; the clock is the board's default target
    (30 MHz on the iCEBreaker, 80 MHz on the ULX3S) unless ``clk_freq_hz`` is given; ``lanes``
    default to :data:`PD_LANES`."""
    from spikegate.golden.pdnn_fixed import PDFixedNetwork
    if not isinstance(net, PDFixedNetwork):
        raise TypeError(f"net must be a PDFixedNetwork, not {net!r}")
    if board == "icebreaker":
        from . import icebreaker as b
        cls = _pd_design_class(b.ICEBreakerDesign, b, b.ice40_pll)
        kw, plat = {}, b.platform()
    elif board == "ulx3s":
        from . import ulx3s as b
        cls = _pd_design_class(b.ULX3SDesign, b, b.ecp5_pll, PD_WEIGHT_BANKS["ulx3s"], "ecp5",
                               PD_WEIGHT_BANK_WIDTH["ulx3s"])
        kw, plat = {"variant": variant}, b.platform(variant)
    else:
        raise ValueError(f"board must be one of {', '.join(BOARDS)}, not {board!r}")
    lanes = PD_LANES[board] if lanes is None else lanes
    design = cls(net, lanes, clk_freq_hz=clk_freq_hz or b.DEFAULT_CLK_HZ, **kw)
    return design, plat


# --- SSGD trainer designs ------------------------------------------------------------------

#: Hidden neurons of the digits SSGD trainer on each board (64-H-10). 64-64-10 with lanes
#: (1, 1), the events in SPRAM, fits the UP5K: 4548 logic cells of 5280, 29 of 30 EBR, 2 SPRAM,
#: 5 DSP, Fmax 32.27 / 30.47 / 30.73 MHz at seeds 1-3 against 30 (nextpnr, commit a5e1fc6;
#: 5632 LCs before the cuts of 99b2e90; README, SSGD synthesis table). 64-32-10
#: trains to 90.56 % (digits, fixed point, seed 0, 20 epochs).
SSGD_HIDDEN = {"icebreaker": 64, "ulx3s": 64}

#: Lanes (hidden, readout) of the SSGD trainer on each board (not tuned).
SSGD_LANES = {"icebreaker": (1, 1), "ulx3s": (1, 1)}


class _SSGDNet:
    """What :func:`synthesize` reads of a design's network: its sizes."""

    def __init__(self, sizes):
        self.sizes = tuple(int(s) for s in sizes)


class SSGDTrainerShim(wiring.Component):
    """The SSGD trainer (:class:`~spikegate.hdl.ssgd_trainer.SSGDTrainer`) alone behind two
    pins, for synthesis: there is no UART protocol for on-chip training yet.

    As :class:`PDClassifierShim`: ``rx`` shifts into a register that drives every input port
    (label and image streams, the result's ready, both host weight ports); every output port
    but the trace ports is registered and XOR-reduced into ``tx`` through a register, so
    nothing of the trainer is optimized away (the hidden trace feeds the readout's backward
    inside the trainer). Not a functional top: it measures resources and Fmax.
    """
    rx: In(1)
    tx: Out(1)

    def __init__(self, sizes, lanes, tfmt=None, *, weights=None, clk_freq_hz=None):
        from spikegate.hdl.ssgd_trainer import SSGDTrainer
        self.trainer = SSGDTrainer(sizes, lanes, tfmt, weights=weights)
        super().__init__()

    def elaborate(self, platform):
        return _pin_shim(self, "trainer", self.trainer)


def _ssgd_design_class(base, mod, pll):
    """``base`` (a board design class of module ``mod``) for the SSGD trainer behind
    :class:`SSGDTrainerShim`."""

    class SSGDDesign(base):
        def __init__(self, sizes, lanes, tfmt, weights, *, clk_freq_hz, variant=None):
            self.net = _SSGDNet(sizes)
            self.lanes = tuple(lanes)
            self.weight_memories = ["ebr", "ebr"]
            _board_clock(self, mod, pll, clk_freq_hz, variant)
            self.top = SSGDTrainerShim(sizes, lanes, tfmt, weights=weights)

    SSGDDesign.__name__ = SSGDDesign.__qualname__ = f"SSGD{base.__name__}"
    return SSGDDesign


def make_ssgd_design(board, model=None, lanes=None, *, variant="85F", clk_freq_hz=None):
    """The board design of the SSGD trainer and its platform: ``(design, platform)``.

    ``model`` is an :class:`~spikegate.golden.ssgd_model_file.SSGDModelFile` (its sizes,
    format and weights, the block RAMs' initial contents) or ``None``: digits
    ``64-H-10`` with :data:`SSGD_HIDDEN` ``[board]`` and the default
    :class:`~spikegate.golden.ssgd_train_fixed.TrainFormat`, zero weights. The top is
    :class:`SSGDTrainerShim`; the clock is the board's default target (30 MHz on the
    iCEBreaker, 80 MHz on the ULX3S) unless ``clk_freq_hz`` is given; ``lanes`` default to
    :data:`SSGD_LANES`."""
    from spikegate.golden.ssgd_model_file import SSGDModelFile
    from spikegate.golden.ssgd_train_fixed import TrainFormat
    if board == "icebreaker":
        from . import icebreaker as b
        cls = _ssgd_design_class(b.ICEBreakerDesign, b, b.ice40_pll)
        kw, plat = {}, b.platform()
    elif board == "ulx3s":
        from . import ulx3s as b
        cls = _ssgd_design_class(b.ULX3SDesign, b, b.ecp5_pll)
        kw, plat = {"variant": variant}, b.platform(variant)
    else:
        raise ValueError(f"board must be one of {', '.join(BOARDS)}, not {board!r}")
    if model is None:
        sizes, tfmt, weights = (64, SSGD_HIDDEN[board], 10), TrainFormat(), None
    elif isinstance(model, SSGDModelFile):
        sizes, tfmt, weights = model.sizes, model.fmt, model.weights
    else:
        raise TypeError(f"model must be an SSGDModelFile or None, not {model!r}")
    lanes = SSGD_LANES[board] if lanes is None else lanes
    lanes = (lanes,) * 2 if isinstance(lanes, int) else tuple(lanes)
    design = cls(sizes, lanes, tfmt, weights, clk_freq_hz=clk_freq_hz or b.DEFAULT_CLK_HZ, **kw)
    return design, plat
