"""Cycles per frame of the PD network's hardware against its spike events, on temporally
redundant and on shuffled frames.

``python -m spikegate.sim.pd_bench [--model PD.npz] [--lanes 8] [--frames 360] [--json FILE]``

Runs the digits test images through the Verilog of
:class:`~spikegate.hdl.pd_classifier.PDClassifier` (Verilator, no stalls) twice, in the greedy
nearest-neighbour order of :mod:`spikegate.golden.temporal` and shuffled, checks every frame
against the golden model bit for bit, and fits ``cycles = a + b * walk`` per order, where
``walk = sum_l spikes_l * ceil(n_{l+1} / lanes_l)`` are the cycles of the frame's row walks
(``spikes_l``: row additions of layer ``l``), and checks every frame's cycles against the timing
model (:func:`~spikegate.hdl.pd_classifier.expected_cycles`). Without ``--model`` the digits 64-64-10 network
is trained by the float model first (a few seconds). Prints a Markdown table.
"""

import argparse
import json
import sys

import numpy as np

from spikegate.golden.pdnn_fixed import first_mismatch
from spikegate.hdl.pd_classifier import expected_cycles
from .pd_cases import digits_frames, digits_network
from .pd_run import simulate_pd_hardware

__all__ = ["fit", "measure", "main"]

CLOCK_NS = 10      # the cocotb bench's clock (sim.stream.start_clock_and_reset)


def fit(x, y):
    """Least squares ``y = a + b x``: ``(a, b, r2, max |residual|)``."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    A = np.column_stack([np.ones_like(x), x])
    (a, b), *_ = np.linalg.lstsq(A, y, rcond=None)
    res = y - (a + b * x)
    ss = ((y - y.mean()) ** 2).sum()
    return float(a), float(b), float(1 - (res ** 2).sum() / ss) if ss else 1.0, float(np.abs(res).max())


def measure(fixed, lanes, kinds=("temporal", "shuffled"), n=360):
    """Per order: the hardware's cycles and counters, checked against the golden model."""
    sizes = np.array(fixed.sizes)
    lanes_t = np.array((lanes,) * fixed.n_layers if isinstance(lanes, int) else lanes)
    G = -(-sizes[1:] // lanes_t)
    dense = int((sizes[:-1] * G).sum())          # every input's row walked once per frame
    out, walks, cycles = {}, [], []
    for kind in kinds:
        frames, labels = digits_frames(fixed, kind, n)
        hw = simulate_pd_hardware(fixed, frames, tuple(int(v) for v in lanes_t),
                                  name="pd_bench_l" + "_".join(map(str, lanes_t)))
        g = fixed.run(frames)
        bad = first_mismatch(hw, g, kind)
        if bad is not None:
            raise AssertionError(f"hardware differs from golden: {bad}")
        walk = g.spikes @ G
        model = expected_cycles(g, fixed.sizes, tuple(int(v) for v in lanes_t))
        if not np.array_equal(model, hw.cycles):
            k = int(np.flatnonzero(model != hw.cycles)[0])
            raise AssertionError(f"{kind} frame {k}: {hw.cycles[k]} cycles, the model {model[k]}")
        a, b, r2, worst = fit(walk, hw.cycles)
        interval = np.diff(hw.time_ns) / CLOCK_NS
        walks.append(walk)
        cycles.append(hw.cycles)
        out[kind] = {
            "frames": int(n), "accuracy": float((g.klass == labels).mean()),
            "cycles_mean": float(hw.cycles.mean()), "cycles_median": float(np.median(hw.cycles)),
            "interval_mean": float(interval.mean()),
            "events_mean": [float(v) for v in g.events.mean(0)],
            "spikes_mean": [float(v) for v in g.spikes.mean(0)],
            "walk_mean": float(walk.mean()),
            "fit_a": a, "fit_b": b, "fit_r2": r2, "fit_max_residual": worst,
            "dense_walk": dense,
        }
    a, b, r2, worst = fit(np.concatenate(walks), np.concatenate(cycles))
    out["all"] = {"fit_a": a, "fit_b": b, "fit_r2": r2, "fit_max_residual": worst}
    return out


def _table(res, sizes, lanes):
    rows = ["| frames | accuracy | events / frame (per layer) | row additions / frame | walk cycles "
            "| cycles / frame mean (median) | result interval | fit cycles = a + b walk | R^2 | "
            "dense walk |", "|" + "---|" * 10]
    for kind, r in res.items():
        if kind == "all":
            continue
        rows.append(
            f"| {kind} ({r['frames']}) | {100 * r['accuracy']:.1f} % | "
            f"{' / '.join(f'{v:.1f}' for v in r['events_mean'])} | "
            f"{' / '.join(f'{v:.1f}' for v in r['spikes_mean'])} | {r['walk_mean']:.0f} | "
            f"{r['cycles_mean']:.0f} ({r['cycles_median']:.0f}) | {r['interval_mean']:.0f} | "
            f"{r['fit_a']:.0f} + {r['fit_b']:.2f} walk | {r['fit_r2']:.3f} | {r['dense_walk']} |")
    r = res["all"]
    rows.append(f"\nAll frames: cycles = {r['fit_a']:.0f} + {r['fit_b']:.2f} walk, R^2 "
                f"{r['fit_r2']:.3f}, largest residual {r['fit_max_residual']:.0f} cycles")
    return (f"PD network {'-'.join(map(str, sizes))}, lanes {lanes}; hardware = golden and cycles = "
            f"the timing model on every frame\n\n" + "\n".join(rows))


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m spikegate.sim.pd_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="a PD model file (default: train the digits network)")
    p.add_argument("--lanes", default="8", help="lanes, one number or one per layer (default 8)")
    p.add_argument("--frames", type=int, default=360, help="frames per order (default 360)")
    p.add_argument("--json", default=None, help="also write the numbers to this file")
    args = p.parse_args(argv)
    try:
        lanes = tuple(int(v) for v in args.lanes.split(","))
    except ValueError:
        p.error(f"argument --lanes: must be integers separated by commas, not {args.lanes!r}")
    if not all(1 <= v <= 16 for v in lanes) or args.frames < 2:
        p.error("--lanes must be from 1 to 16 and --frames at least 2")
    if args.model:
        from spikegate.golden.pd_model_file import load_pd_model
        fixed = load_pd_model(args.model).network
    else:
        fixed, _ = digits_network()
    if fixed.sizes[0] != 64:
        p.error(f"the model has {fixed.sizes[0]} inputs; the benchmark feeds digits (64)")
    lanes = lanes[0] if len(lanes) == 1 else lanes
    res = measure(fixed, lanes, n=args.frames)
    print(_table(res, fixed.sizes, lanes))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"sizes": list(fixed.sizes), "lanes": lanes, "results": res}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
