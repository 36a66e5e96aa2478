"""``spikegate eval MODEL``: accuracy and sparsity of a TTFS model file.

Evaluates the float model and the 8-bit discrete model (the hardware reference) on a data
set's test split, prints a table (accuracies; per sample, as mean and median: the fraction of
each layer's weights looked up, the spikes of each layer and in total up to the decision, and
the timesteps to the decision) and writes PNG histograms of spikes and timesteps to decision
to ``--out``. :func:`evaluate` is the library entry point (no printing, no plotting).
"""

import json
import time
from pathlib import Path

import numpy as np

from spikegate.sim.energy import synaptic_ops

from spikegate.golden.data import DATASETS, load_dataset
from spikegate.golden.model_file import load_model
from spikegate.golden import ttfs
from spikegate.golden.ttfs_discrete import simulate

from spikegate.golden import atomic
from .args import existing_dir, existing_file, output_dir, positive_int

__all__ = ["add_parser", "run", "evaluate", "format_table", "plot_histograms"]


def add_parser(subparsers):
    p = subparsers.add_parser(
        "eval", help="evaluate a TTFS model file (float and 8-bit discrete, sparsity)",
        description=__doc__.split("\n\n")[0])
    p.add_argument("model", metavar="MODEL", type=existing_file,
                   help="model file (.npz) written by 'spikegate train ttfs'")
    p.add_argument("--dataset", default=None, choices=DATASETS,
                   help="data set (default: the one the model was trained on, else digits)")
    p.add_argument("--data", type=existing_dir, default=None, metavar="DIR",
                   help="IDX directory for mnist / fashion-mnist (default: $SPIKEGATE_DATA)")
    p.add_argument("--out", type=output_dir, default=None, metavar="DIR",
                   help="directory for the PNG histograms and eval.json (default: no files)")
    p.add_argument("--limit", type=positive_int, default=None, help="use the first N test samples")
    p.set_defaults(func=run)
    return p


def _stats(values):
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"mean": float("nan"), "median": float("nan")}
    return {"mean": float(np.mean(v)), "median": float(np.median(v))}


def evaluate(model, x, y, *, float_model=True):
    """Evaluate a :class:`~spikegate.golden.model_file.TTFSModelFile` on images ``x``, labels ``y``.

    Returns ``(summary, per_sample)``: ``summary`` is a JSON-able dict (accuracies; for each
    weight layer the lookup fraction, for each layer the spikes up to the decision, the total
    spikes and the timesteps to decision, each as ``{"mean", "median"}`` over all samples;
    timesteps over decided samples only; the discrete model's throughput in samples/s);
    ``per_sample`` holds the arrays behind them (``decision``, ``timesteps``, ``spikes``,
    ``lookup_fraction``).
    """
    y = np.asarray(y)
    net = model.network()
    steps = model.encode(x)
    t0 = time.perf_counter()
    res = simulate(net, steps)
    seconds = time.perf_counter() - t0
    decided = res.decision >= 0
    frac = res.lookup_fraction(net)
    timesteps = res.timesteps_to_decision
    total_spikes = res.spikes.sum(axis=1)
    summary = {
        "samples": int(len(y)),
        "sizes": [int(s) for s in net.sizes],
        "discrete_accuracy": float(np.mean(res.decision == y)) if len(y) else float("nan"),
        "no_decision": float(np.mean(~decided)) if len(y) else float("nan"),
        "lookup_fraction": [_stats(frac[:, l]) for l in range(frac.shape[1])],
        "spikes": [_stats(res.spikes[:, l]) for l in range(res.spikes.shape[1])],
        "total_spikes": _stats(total_spikes),
        "timesteps": _stats(timesteps[decided]),
        # One AC and one MAC per weight read (spikegate.sim.energy.synaptic_ops).
        "synaptic_ops": synaptic_ops(net.sizes, float(res.lookups.sum(1).mean()) if len(y) else 0.0),
        "energy_estimate": _energy(net.sizes, res.lookups, net.config,
                                   model.encoding.mode == "binary") if len(y) else {},
        "discrete_seconds": seconds,
        "discrete_samples_per_s": len(y) / seconds if seconds > 0 else float("inf"),
    }
    if float_model:
        fnet = ttfs.TTFSNetwork([np.asarray(w, dtype=np.float64) for w in model.float_weights])
        z = ttfs.times_to_z(model.encode_times(x))
        summary["float_accuracy"] = ttfs.accuracy(fnet, z, y)
    per_sample = {"decision": res.decision, "timesteps": timesteps, "spikes": res.spikes,
                  "total_spikes": total_spikes, "lookup_fraction": frac}
    return summary, per_sample


def board_lanes(sizes, config=None, binary_input=False):
    """The lanes each board's build of ``sizes`` (time grid ``config``; a model of binary input
    encoding with ``binary_input``) uses by default (``spikegate synth``): a tuple per weight
    layer, for the iCEBreaker and the ULX3S 85F."""
    from spikegate.boards import icebreaker, ulx3s
    L = len(sizes) - 1
    out = {}
    ice = icebreaker.default_lanes(sizes, config=config, binary_input=binary_input)
    for board, lanes in (("icebreaker", ice),
                         ("ulx3s", ulx3s.DEFAULT_LANES["85F"])):
        out[board] = (lanes,) * L if isinstance(lanes, int) else tuple(lanes)
    return out


def _energy(sizes, lookups, config=None, binary_input=False):
    """The energy estimate per board without simulating the hardware: cycles per inference at
    the lookup bound (each layer's weights read over its lanes at the board's default lanes, a
    lower bound of the hardware's cycles), the board's default clock and all its logic cells
    (:func:`spikegate.scripts.report.energy_estimates`)."""
    from .report import energy_estimates
    lookups = np.asarray(lookups, dtype=np.float64)
    reads = float(lookups.sum(1).mean())
    bound = {b: float((lookups / np.asarray(lanes, dtype=np.float64)).sum(1).mean())
             for b, lanes in board_lanes(sizes, config, binary_input).items()}
    est = energy_estimates(reads, reads, {}, bound,
                           cycles_note="lookup-bound (a lower bound; spikegate run simulates them)")
    for b, e in est.items():
        e["lanes"] = list(board_lanes(sizes, config, binary_input)[b])
    return est


def format_table(summary, title=""):
    """The evaluation as an aligned text table."""
    rows = []
    if "float_accuracy" in summary:
        rows.append(("float accuracy", f"{100 * summary['float_accuracy']:.2f} %", ""))
    rows.append(("8-bit discrete accuracy", f"{100 * summary['discrete_accuracy']:.2f} %", ""))
    rows.append(("no decision", f"{100 * summary['no_decision']:.2f} %", ""))
    for l, s in enumerate(summary["lookup_fraction"]):
        rows.append((f"lookups layer {l}->{l + 1}", f"{100 * s['mean']:.2f} %", f"{100 * s['median']:.2f} %"))
    for l, s in enumerate(summary["spikes"]):
        name = "input" if l == 0 else ("output" if l == len(summary["spikes"]) - 1 else f"hidden {l}")
        rows.append((f"spikes {name}", f"{s['mean']:.1f}", f"{s['median']:.1f}"))
    s = summary["total_spikes"]
    rows.append(("spikes to decision", f"{s['mean']:.1f}", f"{s['median']:.1f}"))
    s = summary["timesteps"]
    rows.append(("timesteps to decision", f"{s['mean']:.1f}", f"{s['median']:.1f}"))
    ops = summary.get("synaptic_ops")
    if ops:
        rows.append(("synaptic ops (AC + MAC)", f"{ops['ac'] + ops['mac']:,.0f}",
                     f"dense {ops['dense_ac'] + ops['dense_mac']:,.0f} ({100 * ops['ratio']:.1f} %)"))
        rows.append(("weight memory reads", f"{ops['memory_reads']:,.0f}", ""))
    for board, e in (summary.get("energy_estimate") or {}).items():
        rows.append((f"energy ESTIMATE {board}", f"{e['total_uj']:.3f} uJ",
                     f"{e['low_uj']:.3f} .. {e['high_uj']:.3f} uJ, {e['cycles']:,.0f} cycles "
                     f"(lookup bound, lanes {tuple(e['lanes'])}), {e['clock_mhz']:.0f} MHz"))
    if summary.get("energy_estimate"):
        rows.append(("", "", "energy: an estimate (spikegate.sim.energy); eval.json has its basis"))
    rows.append(("discrete throughput", f"{summary['discrete_samples_per_s']:.0f} samples/s", ""))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows + [("", "mean", "")])
    lines = []
    if title:
        lines.append(title)
    lines.append(f"{'':<{w0}}  {'value / mean':>{max(w1, 12)}}  {'median':>8}")
    for a, b, c in rows:
        lines.append(f"{a:<{w0}}  {b:>{max(w1, 12)}}  {c:>8}")
    return "\n".join(lines)


def plot_histograms(per_sample, out_dir, title=""):
    """Write ``spikes_to_decision.png`` and ``timesteps_to_decision.png`` (each atomically);
    returns the paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    decided = per_sample["decision"] >= 0
    paths = []
    for name, values, xlabel in (
            ("spikes_to_decision", per_sample["total_spikes"], "spikes until classification"),
            ("timesteps_to_decision", per_sample["timesteps"][decided], "timesteps until classification")):
        fig, ax = plt.subplots(figsize=(6, 4))
        v = np.asarray(values)
        if v.size:
            bins = min(50, max(1, int(v.max() - v.min() + 1)))
            ax.hist(v, bins=bins, color="tab:blue", edgecolor="white")
            ax.axvline(np.mean(v), color="tab:red", label=f"mean {np.mean(v):.1f}")
            ax.axvline(np.median(v), color="tab:orange", linestyle="--",
                       label=f"median {np.median(v):.1f}")
            ax.legend()
        ax.set_xlabel(xlabel)
        ax.set_ylabel("samples")
        ax.set_title(f"{title} {xlabel}".strip())
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        with atomic.replacing(path) as tmp:
            fig.savefig(tmp, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def run(args):
    model = load_model(args.model)
    name = args.dataset or model.training.get("dataset", "digits")
    if name not in DATASETS:
        raise ValueError(f"the model's data set {name!r} is unknown; pass --dataset")
    ds = load_dataset(name, args.data)
    if ds.n_inputs != model.sizes[0]:
        raise ValueError(f"the model has {model.sizes[0]} inputs but data set {name!r} has "
                         f"{ds.n_inputs} pixels")
    x, y = ds.x_test, ds.y_test
    if args.limit is not None:
        x, y = x[:args.limit], y[:args.limit]
    summary, per_sample = evaluate(model, x, y)
    title = f"{Path(args.model).name} on {name} test ({len(y)} samples), sizes {'-'.join(map(str, model.sizes))}"
    print(format_table(summary, title))
    if args.out:
        paths = plot_histograms(per_sample, args.out, title=name)
        atomic.write_text(Path(args.out) / "eval.json", json.dumps(summary, indent=2) + "\n")
        for p in paths:
            print(f"wrote {p}")
    return 0
