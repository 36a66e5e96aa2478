"""Benchmark: sparse vs dense spiking gradient descent, next to the paper's numbers.

Trains the same network (784-200-200-10 on Fashion-MNIST by default, the authors' config)
twice from the same initial weights and batch order, once with the dense BPTT backward and
once with the sparse one (:mod:`spikegate.golden.ssgd`), then, on the sparse-trained
weights, times both backward passes on identical batches (interleaved, median), measures the
memory each keeps for and allocates during the backward pass (``tracemalloc``, which sees
NumPy's buffers), and compares the two gradients (cosine similarity).

Usage::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 nice -n 10 \\
        python -m spikegate.scripts.bench_ssgd --epochs 10 --json runs/bench_ssgd.json

The paper's column is Perez-Nieves & Goodman (NeurIPS 2021) on a GPU (their Fig. 1-2);
it is there for orientation, not as a like-for-like comparison.
"""

import argparse
import json
import os
import sys
import time
import tracemalloc

import numpy as np

from spikegate.golden import atomic
from spikegate.scripts.args import (at_least, existing_dir, non_negative_int, output_file,
                                    positive_float, positive_int)

__all__ = ["main"]

PAPER = {
    "active": "~1% (Fig. 1A)",
    "accuracy": "sparse = dense or better (Fig. 1D)",
    "speedup_l2": "6x - 40x on GPU (issue text; up to 150x in the abstract)",
    "memory": "up to 85% less (abstract)",
    "cosine": "dW nearly identical (Fig. 1B)",
}


def _uptime():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def _ab_measure(params, times, labels, cfg, n_batches, seed, repeats):
    """Interleaved timing, memory and gradient similarity on identical batches."""
    from spikegate.golden import ssgd as S
    rng = np.random.default_rng(seed)
    bs = cfg.batch_size
    res = {m: {"fwd": [], "bwd": [], "l2": [], "l1": [], "peak": [], "saved": []}
           for m in ("dense", "sparse")}
    cos = []
    active = []
    rows = []
    per_step = []
    for _ in range(n_batches):
        idx = rng.choice(len(times), bs, replace=False)
        xb, yb = times[idx], labels[idx]
        grads = {}
        for _r in range(repeats):
            for mode in ("dense", "sparse"):
                t0 = time.perf_counter()
                f = S.forward(params, xb, cfg, mode)
                t1 = time.perf_counter()
                g = S.backward(params, f, yb, cfg)
                t2 = time.perf_counter()
                r = res[mode]
                r["fwd"].append(t1 - t0)
                r["bwd"].append(t2 - t1)
                r["l1"].append(g.layer_times[0])
                r["l2"].append(g.layer_times[-1])
                grads[mode] = g.grads
                if mode == "sparse":
                    n_rows = f.layers[0].spikes.shape[0] * f.layers[0].spikes.shape[1]
                    rows.append([[len(c.active.urows) / n_rows for c in f.layers],
                                 [len(c.plan.anchors) / n_rows for c in f.layers],
                                 [len(c.prop.anchors) / n_rows if c.prop is not None
                                  else np.nan for c in f.layers],
                                 [len(c.plan.pair_ent) + (len(c.prop.pair_ent) if c.prop
                                                          is not None else 0)
                                  for c in f.layers]])
                if mode == "dense":
                    active.append([S.active_fraction(c.v, cfg) for c in f.layers])
                    per_step.append([S.active_fraction_per_step(c.v, cfg) for c in f.layers])
                del f, g
        cos.append([S.cosine_similarity(a, b) for a, b in zip(grads["dense"], grads["sparse"])])
        for mode in ("dense", "sparse"):
            f = S.forward(params, xb, cfg, mode)
            saved = sum(c.saved_nbytes() for c in f.layers)
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
            g = S.backward(params, f, yb, cfg)
            peak = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.stop()
            res[mode]["peak"].append(peak)
            res[mode]["saved"].append(saved)
            del f, g
    return (res, np.asarray(cos), np.asarray(active), np.mean(per_step, axis=0),
            np.asarray(rows))


def _row(name, dense, sparse, ratio, paper):
    return f"| {name} | {dense} | {sparse} | {ratio} | {paper} |"


def main(argv=None):
    p = argparse.ArgumentParser(prog="bench_ssgd", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="fashion-mnist",
                   choices=("digits", "mnist", "fashion-mnist"))
    p.add_argument("--data", type=existing_dir, default=None, metavar="DIR",
                   help="IDX directory (default: env SPIKEGATE_DATA or the Debian location)")
    p.add_argument("--epochs", type=positive_int, default=10,
                   help="epochs per run (the authors' code: 100, main.py's --nb_epochs)")
    p.add_argument("--hidden", type=positive_int, nargs="+", default=[200, 200])
    p.add_argument("--steps", type=at_least(2), default=100)
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.add_argument("--lr", type=positive_float, default=2e-4)
    p.add_argument("--b-th", type=positive_float, default=0.2)
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--limit-train", type=positive_int, default=None)
    p.add_argument("--limit-test", type=positive_int, default=None)
    p.add_argument("--ab-batches", type=positive_int, default=8,
                   help="batches for the interleaved timing / memory comparison")
    p.add_argument("--repeats", type=positive_int, default=2, help="timing repeats per batch")
    p.add_argument("--json", type=output_file, default=None, metavar="FILE",
                   help="write all results here")
    p.add_argument("--png", type=output_file, default=None, metavar="FILE", help="training curves")
    p.add_argument("--params", type=output_file, default=None, metavar="FILE",
                   help="save both trained networks here (.npz)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    from spikegate.golden.ssgd import SSGDConfig
    from spikegate.scripts.train_ssgd import _jsonable, plot_curves, prepare_data, train_run

    cfg = SSGDConfig(n_steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                     b_th=args.b_th)
    load_start = _uptime()
    threads = {k: os.environ.get(k, "unset") for k in ("OMP_NUM_THREADS",
                                                         "OPENBLAS_NUM_THREADS")}
    data = prepare_data(args.dataset, args.data, cfg.n_steps, args.limit_train,
                        args.limit_test)
    runs = {}
    params = {}
    for mode in ("sparse", "dense"):
        t0 = time.perf_counter()
        params[mode], runs[mode] = train_run(data, args.hidden, cfg, mode, args.epochs,
                                             args.seed, progress=not args.no_progress,
                                             desc=f"{mode} ")
        runs[mode]["wall_s"] = time.perf_counter() - t0
        if args.json:
            atomic.write_text(args.json + f".{mode}.partial", json.dumps(_jsonable(runs[mode])))
    load_mid = _uptime()
    if args.params:
        # the name np.savez would give it (".npz" appended when missing)
        params_path = args.params if args.params.endswith(".npz") else args.params + ".npz"
        with atomic.replacing(params_path) as tmp:
            np.savez(tmp, **{f"{m}_w{i}": w for m in params for i, w in enumerate(params[m])})
    ab, cos, active_ab, per_step, rows_ab = _ab_measure(params["sparse"], data[0], data[1], cfg,
                                     args.ab_batches, args.seed + 1, args.repeats)
    load_end = _uptime()

    hs, hd = runs["sparse"], runs["dense"]
    nl = len(args.hidden)
    acc_s = 100 * hs["test_acc"][-1]
    acc_d = 100 * hd["test_acc"][-1]
    act_train = np.mean(np.asarray(hs["active"]), axis=0) * 100
    act_last = np.mean(np.asarray(hs["active"])[-20:], axis=0) * 100
    tr_l2_d = np.mean([t[-1] for t in hd["hidden_bwd_time"]])
    tr_l2_s = np.mean([t[-1] for t in hs["hidden_bwd_time"]])
    tr_all_d = np.mean([sum(t) for t in hd["hidden_bwd_time"]])
    tr_all_s = np.mean([sum(t) for t in hs["hidden_bwd_time"]])
    tr_bwd_d, tr_bwd_s = np.mean(hd["bwd_time"]), np.mean(hs["bwd_time"])
    tr_fb_d = np.mean(np.add(hd["fwd_time"], hd["bwd_time"]))
    tr_fb_s = np.mean(np.add(hs["fwd_time"], hs["bwd_time"]))
    med = {m: {k: float(np.median(v)) for k, v in ab[m].items()} for m in ab}
    ms = lambda x: f"{1e3 * x:.1f} ms"  # noqa: E731
    mb = lambda x: f"{x / 2**20:.1f} MiB"  # noqa: E731

    lines = [
        f"# SSGD benchmark: {args.dataset}, hidden {args.hidden}, T={cfg.n_steps}, "
        f"batch {cfg.batch_size}, B_th={cfg.b_th}, {args.epochs} epochs, seed {args.seed}",
        f"load average (1/5/15 min): start {load_start}, after training {load_mid}, "
        f"end {load_end}; threads {threads}",
        "",
        "| metric | dense | sparse | sparse vs dense | paper (GPU) |",
        "|---|---|---|---|---|",
        _row("test accuracy (final epoch)", f"{acc_d:.2f}%", f"{acc_s:.2f}%",
             f"{acc_s - acc_d:+.2f} points", PAPER["accuracy"]),
        _row("train accuracy (last epoch, running)", f"{100 * hd['train_acc'][-1]:.2f}%",
             f"{100 * hs['train_acc'][-1]:.2f}%", "", ""),
    ]
    for li in range(nl):
        lines.append(_row(f"active entries, layer {li + 1} (mean over training / last 20 "
                          "steps)", "", f"{act_train[li]:.2f}% / {act_last[li]:.2f}%", "",
                          PAPER["active"] if li == 0 else ""))
    lines += [
        _row(f"backward of hidden layer {nl} (training mean)", ms(tr_l2_d), ms(tr_l2_s),
             f"{tr_l2_d / tr_l2_s:.1f}x faster", PAPER["speedup_l2"]),
        _row(f"backward of hidden layer {nl} (A/B median)", ms(med['dense']['l2']),
             ms(med['sparse']['l2']), f"{med['dense']['l2'] / med['sparse']['l2']:.1f}x faster",
             ""),
        _row("backward of hidden layer 1 (A/B median)", ms(med['dense']['l1']),
             ms(med['sparse']['l1']), f"{med['dense']['l1'] / med['sparse']['l1']:.1f}x faster",
             ""),
        _row("backward of all hidden layers (training mean)", ms(tr_all_d), ms(tr_all_s),
             f"{tr_all_d / tr_all_s:.1f}x faster", ""),
        _row("whole backward incl. readout and loss (training mean)", ms(tr_bwd_d),
             ms(tr_bwd_s), f"{tr_bwd_d / tr_bwd_s:.1f}x faster", ""),
        _row("whole backward incl. readout and loss (A/B median)", ms(med['dense']['bwd']),
             ms(med['sparse']['bwd']),
             f"{med['dense']['bwd'] / med['sparse']['bwd']:.1f}x faster", ""),
        _row("forward + backward per batch (training mean)", ms(tr_fb_d), ms(tr_fb_s),
             f"{tr_fb_d / tr_fb_s:.1f}x faster", ""),
        _row("forward per batch (A/B median; sparse also builds index + trace)",
             ms(med['dense']['fwd']), ms(med['sparse']['fwd']),
             f"{med['dense']['fwd'] / med['sparse']['fwd']:.2f}x", ""),
        _row("kept for backward (saved tensors, A/B median)", mb(med['dense']['saved']),
             mb(med['sparse']['saved']),
             f"{100 * (1 - med['sparse']['saved'] / med['dense']['saved']):.0f}% less",
             PAPER["memory"]),
        _row("allocated during backward (tracemalloc peak, A/B median)",
             mb(med['dense']['peak']), mb(med['sparse']['peak']),
             f"{100 * (1 - med['sparse']['peak'] / med['dense']['peak']):.0f}% less", ""),
        _row("training wall time", f"{hd['wall_s']:.0f} s", f"{hs['wall_s']:.0f} s",
             f"{hd['wall_s'] / hs['wall_s']:.2f}x", ""),
    ]
    cm = cos.mean(axis=0)
    names = [f"W{i + 1}" for i in range(len(cm))]
    lines.append(_row("gradient cosine sparse vs dense (A/B mean)", "", ", ".join(
        f"{n} {c:.4f}" for n, c in zip(names, cm)), "", PAPER["cosine"]))
    lines.append(_row("active entries at trained weights (A/B)", "", ", ".join(
        f"{100 * a:.2f}%" for a in active_ab.mean(axis=0)), "", ""))
    rows_m = rows_ab.mean(axis=0)          # (4, layers): rows, dW anchors, prop anchors, pairs
    lines.append(_row("(t, b) rows holding an active entry (A/B)", "",
                      ", ".join(f"{100 * a:.1f}%" for a in rows_m[0]), "", ""))
    lines.append(_row("rows in the dW products after merging (anchors, A/B)", "",
                      ", ".join(f"{100 * a:.1f}%" for a in rows_m[1]), "", ""))
    lines.append(_row("rows in the projection to the layer below (anchors, A/B)", "",
                      ", ".join(f"{100 * a:.1f}%" for a in rows_m[2][1:]) + " (layers 2+)",
                      "", ""))
    lines.append(_row("scalar corrections per batch (dW + projection, A/B)", "",
                      ", ".join(f"{a / 1e3:.1f}k" for a in rows_m[3]), "", ""))
    edges = np.linspace(0, cfg.n_steps, 11).astype(int)
    lines += ["", "active entries by time step at the trained weights (A/B batches), %:",
              "| layer | " + " | ".join(f"t {a}-{b - 1}" for a, b in zip(edges[:-1], edges[1:]))
              + " |", "|---" * 11 + "|"]
    for li, ps in enumerate(per_step):
        lines.append(f"| {li + 1} | " + " | ".join(
            f"{100 * ps[a:b].mean():.2f}" for a, b in zip(edges[:-1], edges[1:])) + " |")
    print("\n".join(lines))

    if args.png:
        plot_curves({"dense": hd, "sparse": hs}, args.png,
                    f"{args.dataset}: dense vs sparse backward, hidden {args.hidden}")
    if args.json:
        out = {"args": vars(args), "load": [load_start, load_mid, load_end],
               "threads": threads, "dense": _jsonable(hd), "sparse": _jsonable(hs),
               "ab": {m: {k: list(map(float, v)) for k, v in ab[m].items()} for m in ab},
               "cosine": cos.tolist(), "active_ab": active_ab.tolist(),
               "active_rows_ab": rows_ab.tolist(),
               "active_per_step": per_step.tolist(),
               "table": lines}
        atomic.write_text(args.json, json.dumps(out, indent=1))
        for mode in ("sparse", "dense"):
            try:
                os.remove(args.json + f".{mode}.partial")
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
