"""Benchmark: the 784-200-10 PD network on MNIST, float, fixed point and in hardware (issue 20).

``python -m spikegate.scripts.bench_pd_mnist --data DIR`` (or ``SPIKEGATE_DATA``), in this order:

1. train (unless ``--model``): a PD network (:mod:`spikegate.golden.pdnn`, the paper's settings,
   weight seed ``--seed``) online on the first 54,000 training images in the published order,
   ``--epochs`` epochs; after each epoch the float network (herded, from the zero state) is
   evaluated on the last 6,000 (``--validation``, never the test set) and the most accurate
   epoch is kept, quantized and written as ``OUT/model.npz``
   (:mod:`spikegate.golden.pd_model_file`);
2. eval: all 10,000 test images in two orders, ``shuffled`` (a permutation drawn with
   ``numpy.random.default_rng(--shuffle-seed)``) and ``temporal`` (Temporal MNIST, the greedy
   nearest-neighbour walk of :mod:`spikegate.golden.temporal`, buffer 1000, cached in OUT):
   the float network (herded; and noise free), the fixed-point network
   (:class:`~spikegate.golden.pdnn_fixed.PDFixedNetwork`), their agreement, spike events and
   row additions per frame, and the cycles the timing model
   (:func:`~spikegate.hdl.pd_classifier.expected_cycles`) gives each frame;
3. hardware: the first ``--hw-frames`` frames of each order through the Verilog of
   :class:`~spikegate.hdl.pd_classifier.PDClassifier` (cocotb + Verilator, ``--lanes``),
   every frame compared bit for bit with the golden model (class, events and row additions per
   layer, every neuron's ``s``, ``u``, ``y``, ``act``) and its cycles with the timing model.
   The timing model's cycles over the whole 10,000 are reported only when it equals the
   hardware on every simulated frame.

Cycles against events: least squares ``cycles = a + b * events`` per order, ``events`` the
frame's spike events summed over the layers (inputs with ``s != 0``), on the hardware's frames
and on all 10,000 (timing model); also against the row walks ``sum_l spikes_l * ceil(n_{l+1} /
lanes_l)`` (the cycles the datapath spends adding rows), as :mod:`spikegate.sim.pd_bench`.

Writes ``OUT/bench_pd_mnist.json`` (every number of the table, the options, the commit) and
``OUT/hw_<order>.npz`` (the hardware's results), prints one Markdown table and the targets.
Re-check a row without retraining: ``--model OUT/model.npz``. Exit code 1 when a hardware
frame differs from the golden model.

Usage::

    OMP_NUM_THREADS=1 nice -n 10 python -m spikegate.scripts.bench_pd_mnist --data /work/shared/data/mnist
"""

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from spikegate.golden import atomic
from spikegate.golden.data import DataError, load_dataset
from spikegate.scripts.args import (existing_file, lanes as lanes_type, non_negative_int,
                                    output_dir, positive_int)

__all__ = ["main", "train", "orders", "evaluate", "exact_frames", "fit", "walk_cycles"]

#: Target: hardware accuracy within this many points of the float PD network.
FLOAT_GAP_POINTS = 0.5
#: The paper's ratio of operations, temporal / shuffled MNIST ("about half").
PAPER_RATIO = 0.5


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def train(sizes, x_fit, y_fit, x_val, y_val, *, epochs, seed, log=_log, on_best=None):
    """Train a :class:`~spikegate.golden.pdnn.PDNetwork` of ``sizes`` online (weight seed
    ``seed``) for ``epochs`` epochs; returns ``(net, info)``: the network of the epoch most
    accurate on the validation set (float, herded from the zero state) and a dict with the
    validation curve, the best epoch and the seconds per epoch. ``on_best(net, info)`` is
    called whenever an epoch is the best so far (a checkpoint)."""
    from spikegate.golden.pdnn import PDNetwork, train_online
    net = PDNetwork(sizes, seed=seed)
    best, curve, seconds = None, [], []

    def info(acc, epoch):
        return {"epochs": epochs, "best_epoch": epoch, "validation_accuracy": acc,
                "validation_curve": list(curve), "seconds_per_epoch": list(seconds),
                "seed": seed, "train_samples": len(y_fit), "validation_samples": len(y_val)}
    for epoch in range(1, epochs + 1):
        res = train_online(net, x_fit, y_fit, x_val, y_val, epochs=1.0, evals_per_epoch=1,
                           train_eval_size=1)
        if res.diverged:
            log(f"   epoch {epoch} diverged ({res.diverged['reason']}); stopping")
            break
        acc = res.history[-1]["test_acc"]
        curve.append(acc)
        seconds.append(res.seconds_per_epoch)
        log(f"   epoch {epoch}: validation {100 * acc:.2f} %, {res.seconds_per_epoch:.0f} s")
        if best is None or acc > best[0]:
            best = (acc, epoch, copy.deepcopy(net))
            if on_best is not None:
                on_best(best[2], info(acc, epoch))
    if best is None:
        raise ValueError(f"training diverged in the first epoch (seed {seed})")
    acc, epoch, net = best
    return net, info(acc, epoch)


def orders(x, *, shuffle_seed=0, smoothing_steps=1000, cache_dir=None):
    """``{"shuffled": permutation, "temporal": permutation}`` of the test set; the temporal
    order is cached in ``cache_dir`` (keyed by the set's size and the buffer)."""
    from spikegate.golden.temporal import temporal_order
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"temporal_test_{len(x)}_{smoothing_steps}.npy"
    if path is not None and path.is_file():
        temporal = np.load(path)
    else:
        temporal = temporal_order(x, smoothing_steps=smoothing_steps)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic.replacing(path) as tmp:
                np.save(tmp, temporal)
    if sorted(temporal.tolist()) != list(range(len(x))):
        raise ValueError(f"{path}: not a permutation of the {len(x)} test images")
    return {"shuffled": np.random.default_rng(shuffle_seed).permutation(len(x)),
            "temporal": temporal}


def walk_cycles(spikes, sizes, lanes):
    """``sum_l spikes_l * ceil(n_{l+1} / lanes_l)`` per frame: the cycles of its row walks."""
    sizes = np.asarray(sizes)
    L = len(sizes) - 1
    lanes_t = np.array((lanes,) * L if isinstance(lanes, (int, np.integer)) else lanes)
    return np.asarray(spikes) @ (-(-sizes[1:] // lanes_t))


def fit(x, y):
    """Least squares ``y = a + b x``: ``{"intercept", "slope", "r2"}``."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 2 or np.ptp(x) == 0:
        return {"intercept": float(np.mean(y)) if len(y) else float("nan"), "slope": float("nan"),
                "r2": float("nan")}
    b, a = np.polyfit(x, y, 1)
    res = y - (a + b * x)
    ss = ((y - y.mean()) ** 2).sum()
    return {"intercept": float(a), "slope": float(b),
            "r2": float(1 - (res ** 2).sum() / ss) if ss else 1.0}


def exact_frames(hw, g):
    """Per frame, True where the hardware equals the golden trace ``g`` bit for bit: class,
    events and row additions per layer, and every neuron's ``s``, ``u``, ``y``, ``act``."""
    ok = np.asarray(hw.klass) == np.asarray(g.klass)
    ok &= (np.asarray(hw.events) == np.asarray(g.events)).all(axis=1)
    ok &= (np.asarray(hw.spikes) == np.asarray(g.spikes)).all(axis=1)
    for name in ("s", "u", "y", "act"):
        for a, b in zip(getattr(hw, name), getattr(g, name)):
            ok &= (np.asarray(a) == np.asarray(b)).all(axis=1)
    return ok


def evaluate(model, x, y, lanes):
    """Float and fixed point on the sequence ``x`` from the zero state: ``(summary, trace)``."""
    from spikegate.hdl.pd_classifier import expected_cycles
    from .flow_pdnn import float_network
    fnet = float_network(model)
    pred, _ = fnet.predict(x)
    fixed = model.network
    g = fixed.run(fixed.quantize_input(x))
    sizes = fixed.sizes
    dense = int(sum(a * b for a, b in zip(sizes[:-1], sizes[1:])))
    adds = g.spikes @ np.array(sizes[1:])
    cycles = expected_cycles(g, sizes, lanes)
    events = g.events.sum(axis=1)
    return {
        "frames": len(y),
        "float_accuracy": float(np.mean(pred == y)),
        "float_noise_free_accuracy": float(np.mean(fnet.predict_noise_free(x) == y)),
        "fixed_accuracy": float(np.mean(g.klass == y)),
        "float_fixed_agreement": float(np.mean(g.klass == pred)),
        "events_mean": [float(v) for v in g.events.mean(0)],
        "row_additions_mean": [float(v) for v in g.spikes.mean(0)],
        "weight_additions_mean": float(adds.mean()),
        "dense_macs": dense,
        "model_cycles_mean": float(cycles.mean()),
        "model_fit_events": fit(events, cycles),
        "model_fit_walk": fit(walk_cycles(g.spikes, sizes, lanes), cycles),
    }, g, pred, cycles


def _simulate(fixed, frames, lanes, name):
    from spikegate.sim import pd_run          # looked up at call time: tests substitute it
    return pd_run.simulate_pd_hardware(fixed, frames, lanes, name=name)


def hardware(model, x, y, g, pred, model_cycles, lanes, n, out, order):
    """The first ``n`` frames of the sequence through the Verilog; the summary of the check."""
    from spikegate.golden.pdnn_fixed import first_mismatch
    fixed = model.network
    n = min(n, len(y))
    t0 = time.perf_counter()
    hw = _simulate(fixed, fixed.quantize_input(x[:n]), lanes, "pd_bench_mnist")
    seconds = time.perf_counter() - t0
    with atomic.replacing(Path(out) / f"hw_{order}.npz") as tmp:
        with open(tmp, "wb") as f:
            hw.save(f)
    gs = g.frames(0, n)
    exact = exact_frames(hw, gs)
    cycles = np.asarray(hw.cycles)
    events = gs.events.sum(axis=1)
    same_cycles = np.asarray(model_cycles[:n]) == cycles
    return {
        "frames": n, "seconds": seconds,
        "accuracy": float(np.mean(hw.klass == y[:n])),
        "fixed_accuracy_same_frames": float(np.mean(gs.klass == y[:n])),
        "float_accuracy_same_frames": float(np.mean(pred[:n] == y[:n])),
        "exact_frames": int(exact.sum()), "first_mismatch": first_mismatch(hw, gs, order),
        "cycles_equal_model": int(same_cycles.sum()),
        "cycles_mean": float(cycles.mean()), "cycles_median": float(np.median(cycles)),
        "events_mean": float(events.mean()),
        "fit_events": fit(events, cycles),
        "fit_walk": fit(walk_cycles(gs.spikes, fixed.sizes, lanes), cycles),
    }


def _commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=Path(__file__).parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _pct(v):
    return f"{100 * v:.2f} %"


def _fit_text(f):
    return f"{f['intercept']:.0f} + {f['slope']:.2f} x, R² {f['r2']:.3f}"


def table(report):
    """The Markdown table and the targets' lines of a report (as written to the JSON)."""
    ev, hw = report["eval"], report.get("hardware", {})
    names = [k for k in ("shuffled", "temporal") if k in ev]
    sizes = "-".join(map(str, report["sizes"]))
    rows = [f"| {sizes}, lanes {report['lanes']} | " + " | ".join(f"{k} MNIST" for k in names)
            + " |", "|---|" + "---|" * len(names)]

    def row(label, f):
        rows.append(f"| {label} | " + " | ".join(f(k) for k in names) + " |")
    n_test = ev[names[0]]["frames"]
    row(f"float PD accuracy ({n_test:,} frames)", lambda k: _pct(ev[k]["float_accuracy"]))
    row("float, noise free (plain MLP, same weights)",
        lambda k: _pct(ev[k]["float_noise_free_accuracy"]))
    row(f"fixed-point accuracy ({n_test:,} frames)", lambda k: _pct(ev[k]["fixed_accuracy"]))
    row("fixed = float class", lambda k: _pct(ev[k]["float_fixed_agreement"]))
    if hw:
        row("hardware accuracy (first N frames)", lambda k: (
            f"{_pct(hw[k]['accuracy'])} (N = {hw[k]['frames']}; fixed {_pct(hw[k]['fixed_accuracy_same_frames'])}, "
            f"float {_pct(hw[k]['float_accuracy_same_frames'])})"))
        row("hardware = golden, bit for bit", lambda k: f"{hw[k]['exact_frames']} / {hw[k]['frames']} frames")
        row("hardware cycles = timing model", lambda k: f"{hw[k]['cycles_equal_model']} / {hw[k]['frames']} frames")
    row("spike events / frame (layer 0 / 1)", lambda k: " / ".join(f"{v:.1f}" for v in ev[k]["events_mean"]))
    row("row additions / frame (layer 0 / 1)",
        lambda k: " / ".join(f"{v:.1f}" for v in ev[k]["row_additions_mean"]))
    row("weight additions / frame vs dense MLP", lambda k: (
        f"{ev[k]['weight_additions_mean']:,.0f} ({100 * ev[k]['weight_additions_mean'] / ev[k]['dense_macs']:.1f} % "
        f"of {ev[k]['dense_macs']:,} MACs)"))
    if hw:
        row("hardware cycles / frame, mean (median)",
            lambda k: f"{hw[k]['cycles_mean']:,.0f} ({hw[k]['cycles_median']:,.0f})")
        row("fit cycles = a + b events (hardware frames)", lambda k: _fit_text(hw[k]["fit_events"]))
        row("fit cycles = a + b walk (hardware frames)", lambda k: _fit_text(hw[k]["fit_walk"]))
    if report.get("model_checked"):
        row(f"cycles / frame, all {n_test:,} (timing model)", lambda k: f"{ev[k]['model_cycles_mean']:,.0f}")
        row(f"fit cycles = a + b events (all {n_test:,})", lambda k: _fit_text(ev[k]["model_fit_events"]))
    lines = ["\n".join(rows), ""]
    t = report.get("targets", {})
    if "ratio_hw" in t:
        lines.append(f"temporal / shuffled cycles per frame: {t['ratio_hw']:.3f} on the hardware's "
                     f"frames" + (f", {t['ratio_model']:.3f} on all {n_test:,} (timing model)"
                                  if "ratio_model" in t else "")
                     + f"; weight additions {t['ratio_adds']:.3f} (paper: about {PAPER_RATIO})")
    for k in names:
        if k in hw:
            gap = 100 * (hw[k]["accuracy"] - hw[k]["float_accuracy_same_frames"])
            lines.append(f"{k}: hardware - float PD accuracy {gap:+.2f} points on the hardware's "
                         f"{hw[k]['frames']} frames; fixed - float on all {n_test:,}: "
                         f"{100 * (ev[k]['fixed_accuracy'] - ev[k]['float_accuracy']):+.2f} points "
                         f"(target: within {FLOAT_GAP_POINTS}; hardware = fixed point bit for bit)")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m spikegate.scripts.bench_pd_mnist",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.environ.get("SPIKEGATE_DATA"), metavar="DIR",
                   help="MNIST IDX directory (default: $SPIKEGATE_DATA)")
    p.add_argument("--dataset", default="mnist", choices=("mnist", "digits"),
                   help="mnist (the benchmark) or digits (a quick check of the script)")
    p.add_argument("--model", type=existing_file, default=None,
                   help="a PD model file: skip training (re-check a report)")
    p.add_argument("--hidden", type=positive_int, default=200, help="hidden units (default 200)")
    p.add_argument("--epochs", type=positive_int, default=10, help="training epochs (default 10)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="weight seed (default 0)")
    p.add_argument("--validation", type=positive_int, default=6000,
                   help="training images held out (the last ones) to pick the epoch (default 6000)")
    p.add_argument("--shuffle-seed", type=non_negative_int, default=0,
                   help="seed of the shuffled test order (default 0)")
    p.add_argument("--smoothing-steps", type=positive_int, default=1000,
                   help="buffer of the temporal order (default 1000, as pdnn)")
    p.add_argument("--test-limit", type=positive_int, default=None,
                   help="use the first N test images (default: all)")
    p.add_argument("--lanes", type=lanes_type, default=8, help="hardware lanes (default 8)")
    p.add_argument("--hw-frames", type=non_negative_int, default=500,
                   help="frames of each order through the Verilog (default 500; 0: none)")
    p.add_argument("--out", type=output_dir, default="bench_pd_mnist_out",
                   help="output directory (default ./bench_pd_mnist_out)")
    args = p.parse_args(argv)

    try:
        ds = load_dataset(args.dataset, args.data if args.dataset == "mnist" else None)
    except DataError as e:
        p.error(f"{e} (the benchmark reads MNIST from --data DIR or $SPIKEGATE_DATA)")
    out = Path(args.out)
    if args.validation >= len(ds.y_train):
        p.error(f"argument --validation: must be below the {len(ds.y_train)} training images, "
                f"not {args.validation}")
    from spikegate.golden.pd_model_file import PDModelFile, load_pd_model, save_pd_model
    from spikegate.golden.model_file import ModelFileError
    try:
        model = load_pd_model(args.model) if args.model else None
    except ModelFileError as e:
        p.error(f"argument --model: {e}")
    if model is not None and model.sizes[0] != ds.x_train.shape[1]:
        p.error(f"the model has {model.sizes[0]} inputs; {args.dataset} has "
                f"{ds.x_train.shape[1]}")
    n_layers = 2 if model is None else model.network.n_layers
    if not isinstance(args.lanes, int) and len(args.lanes) != n_layers:
        p.error(f"argument --lanes: {len(args.lanes)} values for {n_layers} weight layers")
    out.mkdir(parents=True, exist_ok=True)
    report = {"dataset": args.dataset, "commit": _commit(), "lanes": args.lanes,
              "options": {k: v for k, v in vars(args).items() if k != "data"}}
    if model is not None:
        model_path = Path(args.model)
    else:
        sizes = (ds.x_train.shape[1], args.hidden, 10)
        n_val = args.validation
        _log(f"== train: PD network {'-'.join(map(str, sizes))} on {args.dataset}, seed "
             f"{args.seed}, {args.epochs} epochs of {len(ds.y_train) - n_val} images, "
             f"validation the last {n_val}")
        xtr, ytr = ds.x_train, ds.y_train
        model_path = out / "model.npz"

        def checkpoint(net, info):
            info["dataset"] = args.dataset
            save_pd_model(model_path, PDModelFile.from_pdnetwork(net, training=info))
        net, info = train(sizes, xtr[:-n_val], ytr[:-n_val], xtr[-n_val:], ytr[-n_val:],
                          epochs=args.epochs, seed=args.seed, on_best=checkpoint)
        info["dataset"] = args.dataset
        model = PDModelFile.from_pdnetwork(net, training=info)
        save_pd_model(model_path, model)
        _log(f"   kept epoch {info['best_epoch']} (validation {_pct(info['validation_accuracy'])}); "
             f"wrote {model_path}")
    report["model"] = str(model_path)
    report["training"] = model.training
    report["sizes"] = [int(s) for s in model.sizes]

    x, y = ds.x_test, ds.y_test
    if args.test_limit is not None:
        x, y = x[:args.test_limit], y[:args.test_limit]
    _log(f"== eval: {len(y)} test images, shuffled (seed {args.shuffle_seed}) and temporal")
    perms = orders(x, shuffle_seed=args.shuffle_seed, smoothing_steps=args.smoothing_steps,
                   cache_dir=out)
    report["eval"], report["hardware"] = {}, {}
    traces = {}
    for k, perm in perms.items():
        t0 = time.perf_counter()
        summary, g, pred, cycles = evaluate(model, x[perm], y[perm], args.lanes)
        summary["seconds"] = time.perf_counter() - t0
        report["eval"][k] = summary
        traces[k] = (g, pred, cycles)
        _log(f"   {k}: float {_pct(summary['float_accuracy'])}, fixed "
             f"{_pct(summary['fixed_accuracy'])}, {summary['model_cycles_mean']:.0f} cycles/frame "
             f"(model), {summary['seconds']:.0f} s")
    if args.hw_frames:
        for k, perm in perms.items():
            _log(f"== hardware: {min(args.hw_frames, len(y))} {k} frames in Verilator "
                 f"(lanes {args.lanes})")
            g, pred, cycles = traces[k]
            h = hardware(model, x[perm], y[perm], g, pred, cycles, args.lanes, args.hw_frames,
                         out, k)
            report["hardware"][k] = h
            _log(f"   {h['exact_frames']} / {h['frames']} frames bit exact, cycles = model on "
                 f"{h['cycles_equal_model']}, {h['seconds']:.0f} s")
    hw = report["hardware"]
    report["model_checked"] = bool(hw) and all(
        h["cycles_equal_model"] == h["frames"] for h in hw.values())
    ev = report["eval"]
    t = report["targets"] = {"ratio_adds": ev["temporal"]["weight_additions_mean"]
                             / ev["shuffled"]["weight_additions_mean"]}
    if hw:
        t["ratio_hw"] = hw["temporal"]["cycles_mean"] / hw["shuffled"]["cycles_mean"]
        t["hardware_exact"] = all(h["exact_frames"] == h["frames"] for h in hw.values())
    if report["model_checked"]:
        t["ratio_model"] = ev["temporal"]["model_cycles_mean"] / ev["shuffled"]["model_cycles_mean"]
    atomic.write_text(out / "bench_pd_mnist.json", json.dumps(report, indent=1))
    print(table(report))
    print(f"wrote {out / 'bench_pd_mnist.json'}")
    if hw and not t["hardware_exact"]:
        for h in hw.values():
            if h["first_mismatch"]:
                print(f"hardware differs from the golden model: {h['first_mismatch']}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
