"""Benchmarks of the TTFS golden model: accuracy, sparsity, training time, throughput.

Prints one table row per network (targets, not tests):

* ``digits``, hidden 64: float >= 97 %, 8-bit discrete >= 96 % (test split);
* MNIST 784-600-10 (the FPGA prototype): 8-bit discrete >= 97.0 %, <= 13 % input-to-hidden
  and <= 5 % hidden-to-output weights looked up, <= 139 mean spikes to decision;
* MNIST 784-500-10 (fits an ECP5-85F: 426k 8-bit weights) and 784-128-10 (fits an iCE40
  UP5K's SPRAM: 131k), their accuracies;
* training seconds per epoch (column ``s/epoch``, wall clock of the run, so it includes
  whatever else the machine was doing) and the discrete model's evaluation throughput
  (``eval/s``, samples per second over the test set).

The hyper-parameters are ``spikegate train ttfs``'s defaults
(:func:`spikegate.scripts.train_ttfs.configs_for`), seed 0. Every trained model is written
to ``--out`` (``<name>.npz``) and reused on the next run when present (``--retrain`` trains
again), so the long MNIST runs can be done one at a time::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 nice -n 10 \\
        python -m spikegate.scripts.bench_ttfs --only mnist-600 --data /path/to/mnist

MNIST comes from ``--data`` or ``SPIKEGATE_DATA``; without it the MNIST rows are skipped.

Measured (seed 0; README, "MNIST 784-600-10"): mnist-600 with the defaults (50 epochs,
1191 s of training on one core): float 97.29 %, 8-bit 97.23 %, lookups 12.8 / 2.6 %, 116.8
spikes to decision (100.4 of them input spikes), every target met. With the same defaults
mnist-500 (ECP5-85F): 8-bit 96.99 %, lookups 12.8 / 2.8 %, 17.5 s/epoch; mnist-128 (UP5K
SPRAM): 8-bit 96.55 %, lookups 12.8 / 6.0 %, 5.1 s/epoch.
"""

import argparse
import os
import sys
from pathlib import Path

from spikegate.golden.data import DataError, load_dataset
from spikegate.golden.encoding import encode
from spikegate.golden.model_file import load_model, save_model
from spikegate.golden import ttfs

from .args import existing_dir, output_dir, positive_int
from .eval_ttfs import evaluate
from .train_ttfs import _blas_threads, configs_for, train_model

# name: (data set, hidden, training overrides of train_ttfs.DEFAULTS, targets)
BENCHES = {
    "digits-64": ("digits", [64], dict(), dict(float=0.97, discrete=0.96)),
    "mnist-600": ("mnist", [600], dict(), dict(discrete=0.970, lookups=(0.13, 0.05), spikes=139)),
    "mnist-500": ("mnist", [500], dict(), dict()),
    "mnist-128": ("mnist", [128], dict(), dict()),
}


def _row(name, model, summary, targets):
    lk = [s["mean"] for s in summary["lookup_fraction"]]
    lk_med = [s["median"] for s in summary["lookup_fraction"]]
    cells = {
        "net": name,
        "sizes": "-".join(map(str, model.sizes)),
        "weights": f"{sum(w.size for w in model.int_weights) / 1000:.0f}k",
        "enc": model.encoding.mode,
        "grid": f"{model.discrete.timesteps}x{model.discrete.dt:g}",
        "float %": f"{100 * summary['float_accuracy']:.2f}",
        "8-bit %": f"{100 * summary['discrete_accuracy']:.2f}",
        "lookups % mean (median)": ("/".join(f"{100 * v:.1f}" for v in lk) + " ("
                                    + "/".join(f"{100 * v:.1f}" for v in lk_med) + ")"),
        "spikes mean/med": f"{summary['total_spikes']['mean']:.0f}/{summary['total_spikes']['median']:.0f}",
        "steps mean/med": f"{summary['timesteps']['mean']:.1f}/{summary['timesteps']['median']:.0f}",
        "s/epoch": f"{model.training.get('seconds_per_epoch', float('nan')):.1f}",
        "epochs": str(model.training.get("config", {}).get("epochs", "?")),
        "eval/s": f"{summary['discrete_samples_per_s']:.0f}",
    }
    verdict = []
    if "float" in targets:
        verdict.append(("float", summary["float_accuracy"] >= targets["float"]))
    if "discrete" in targets:
        verdict.append(("8-bit", summary["discrete_accuracy"] >= targets["discrete"]))
    if "lookups" in targets:
        verdict.append(("lookups", all(v <= t for v, t in zip(lk, targets["lookups"]))))
    if "spikes" in targets:
        verdict.append(("spikes", summary["total_spikes"]["mean"] <= targets["spikes"]))
    cells["targets"] = " ".join(f"{k}:{'met' if ok else 'MISSED'}" for k, ok in verdict) or "-"
    return cells


def _print_table(rows):
    if not rows:
        print("no results")
        return
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    print("  ".join(f"{c:<{widths[c]}}" for c in cols))
    for r in rows:
        print("  ".join(f"{r[c]:<{widths[c]}}" for c in cols))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=existing_dir, default=None,
                   help="MNIST IDX directory (default: $SPIKEGATE_DATA)")
    p.add_argument("--out", type=output_dir, default="bench_ttfs_out",
                   help="directory of the trained models")
    p.add_argument("--only", default=None, help="comma-separated bench names: " + ", ".join(BENCHES))
    p.add_argument("--epochs", type=positive_int, default=None, help="override the epochs of every run")
    p.add_argument("--retrain", action="store_true", help="train even when the model file exists")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    names = list(BENCHES) if args.only is None else [n.strip() for n in args.only.split(",")]
    for n in names:
        if n not in BENCHES:
            p.error(f"unknown bench {n!r}; expected some of {', '.join(BENCHES)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root = args.data or os.environ.get("SPIKEGATE_DATA")
    datasets, rows = {}, []
    for name in names:
        dname, hidden, train_kw, targets = BENCHES[name]
        if dname not in datasets:
            try:
                datasets[dname] = load_dataset(dname, root)
            except DataError as e:
                print(f"{name}: skipped ({e})", file=sys.stderr)
                continue
        ds = datasets[dname]
        path = out / f"{name}.npz"
        if path.exists() and not args.retrain:
            model = load_model(path)
            summary, _ = evaluate(model, ds.x_test, ds.y_test)
        else:
            kw = dict(train_kw)
            if args.epochs is not None:
                kw["epochs"] = args.epochs
            enc, cfg, discrete = configs_for(dname, seed=0, **kw)
            z_test = ttfs.times_to_z(encode(ds.x_test, enc))

            def report(epoch, net, loss, name=name, z_test=z_test, y_test=ds.y_test):
                acc = ttfs.accuracy(net, z_test, y_test)
                print(f"{name}: epoch {epoch + 1} loss {loss:.4f} float test {acc:.4f}",
                      file=sys.stderr, flush=True)

            model, summary, _ = train_model(ds, hidden, enc, cfg, discrete=discrete,
                                            quiet=args.quiet, epoch_callback=report)
            save_model(path, model)
        rows.append(_row(name, model, summary, targets))
        print(f"{name}: float {summary['float_accuracy']:.4f} 8-bit {summary['discrete_accuracy']:.4f}",
              file=sys.stderr, flush=True)
    _print_table(rows)
    return 0


if __name__ == "__main__":
    with _blas_threads(1):
        sys.exit(main())
