"""Benchmark of the on-chip sign rule (:mod:`spikegate.golden.sign_backprop`) on digits.

Prints one table row per run (targets, not tests), for each graded-encoding ``t_max``
(``--t-max``, default 1 and 3: the time of the faintest pixel; 3 spreads the inputs over 24
of the 32 steps and makes the causal sets more selective):

* ``exact``: the golden float model trained with exact gradients (Adam, as ``bench_ttfs``'
  digits-64), quantized; its float and 8-bit discrete test accuracies (the reference);
* ``sign fine-tune``: that 8-bit network trained further with the sign rule; target: loses
  no more than 1 point of 8-bit test accuracy (judged after the first and the last epoch);
* ``sign random``: the sign rule from random initial int8 weights
  (:func:`~spikegate.golden.sign_backprop.random_discrete_network`, threshold ``--theta``)
  for each of ``--seeds``; target: >= 90 % 8-bit test accuracy after the last epoch (the
  test accuracy after every epoch is printed: it swings by several points from epoch to
  epoch, so the mean and minimum of the last 5 epochs are shown too);
* the speed of each in training images/s (the sign rule: one image at a time, one thread).

Measured (2026-11, 64-64-10, T = 32, dt = 1/8, 20 sign epochs, seeds 0 / 1 / 2):

==========================  ==========================  ===========================
run                          t_max = 1                   t_max = 3
==========================  ==========================  ===========================
exact, float / 8-bit         96.1 / 93.6 %               95.6 / 94.7 %
sign from random             83.6 / 81.7 / 89.4 %        91.9 / 90.3 / 88.9 %
sign fine-tune, 1 epoch      -9.7 / -6.7 / -9.4 points   -1.4 / -2.8 / -5.8 points
==========================  ==========================  ===========================

The sign rule's test accuracy swings by 3-8 points from one epoch to the next (one update
moves every causal weight of every hidden neuron with a non-zero delta by 1/theta, and a
correct decision with no other output at ``k_d`` is never reinforced: no margin), and its
equilibrium (about 88-92 %) lies below the exact-gradient network's, so fine-tuning drifts
down to it; the 1-point fine-tuning target is missed.

The exact models are written to ``--out`` and reused when present (``--retrain``)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 nice -n 10 \\
        python -m spikegate.scripts.bench_sign
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from spikegate.golden.data import load_dataset
from spikegate.golden.encoding import EncodingConfig
from spikegate.golden.model_file import load_model, save_model
from spikegate.golden import ttfs
from spikegate.golden.ttfs_discrete import DiscreteConfig

from .eval_ttfs import evaluate
from .train_sign import train_sign_model
from .train_ttfs import train_model

__all__ = ["main"]

EXACT_CONFIG = dict(epochs=60, lr_decay=0.97, dropout=0.1)    # bench_ttfs' digits-64


def _curve(history):
    return " ".join(f"{100 * h['test_accuracy']:.1f}" for h in history)


def _print_table(rows):
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    print("  ".join(f"{c:<{widths[c]}}" for c in cols))
    for r in rows:
        print("  ".join(f"{r[c]:<{widths[c]}}" for c in cols))


def _exact_row(name, model, summary):
    return {
        "run": name, "sizes": "-".join(map(str, model.sizes)),
        "epochs": str(model.training["config"]["epochs"]),
        "float %": f"{100 * summary['float_accuracy']:.2f}",
        "8-bit %": f"{100 * summary['discrete_accuracy']:.2f}",
        "curve (8-bit % per epoch)": "-",
        "images/s": f"{model.training['train_samples'] / model.training['seconds_per_epoch']:.0f}",
        "target": "reference",
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="bench_sign_out", help="directory of the trained models")
    p.add_argument("--retrain", action="store_true", help="train the exact models even if present")
    p.add_argument("--hidden", type=int, default=64, help="hidden neurons (default: 64)")
    p.add_argument("--epochs", type=int, default=20, help="sign rule epochs from random weights")
    p.add_argument("--ft-epochs", type=int, default=3, help="sign rule epochs when fine-tuning")
    p.add_argument("--theta", type=int, default=256, help="threshold of the random init")
    p.add_argument("--lr-shift", type=int, default=0, help="sign rule step 2**K")
    p.add_argument("--timesteps", type=int, default=32, help="discrete steps T")
    p.add_argument("--dt", type=float, default=1 / 8, help="time units per step")
    p.add_argument("--t-max", default="1,3",
                   help="graded encoding t_max values, comma separated (default: 1,3); every "
                        "run is done for each")
    p.add_argument("--seeds", default="0,1,2",
                   help="seeds (init and order) of the sign runs, comma separated (default: 0,1,2)")
    p.add_argument("--only", default="exact,sign-finetune,sign-random",
                   help="comma-separated runs (default: all three)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    runs = [r.strip() for r in args.only.split(",")]
    t_maxes = [float(v) for v in args.t_max.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ds = load_dataset("digits")
    disc = DiscreteConfig(timesteps=args.timesteps, dt=args.dt)
    rows = []
    for t_max in t_maxes:
        enc = EncodingConfig("graded", t_max=t_max)
        tag = f"h{args.hidden}-tmax{t_max:g}-T{args.timesteps}-dt{args.dt:g}"
        if "exact" in runs or "sign-finetune" in runs:
            path = out / f"exact-{tag}.npz"
            if path.exists() and not args.retrain:
                exact = load_model(path)
                summary, _ = evaluate(exact, ds.x_test, ds.y_test)
            else:
                cfg = ttfs.TrainConfig(seed=0, **EXACT_CONFIG)
                exact, summary, _ = train_model(ds, [args.hidden], enc, cfg, quiet=args.quiet,
                                                discrete=disc)
                save_model(path, exact)
            rows.append(_exact_row(f"exact (float, Adam), t_max={t_max:g}", exact, summary))
            print(f"exact t_max={t_max:g}: 8-bit {summary['discrete_accuracy']:.4f}",
                  file=sys.stderr, flush=True)
        if "sign-finetune" in runs:
            base = summary["discrete_accuracy"]
            for seed in seeds:
                model, s, hist = train_sign_model(ds, init=exact, epochs=args.ft_epochs,
                                                  lr_shift=args.lr_shift, seed=seed,
                                                  quiet=args.quiet)
                save_model(out / f"sign-finetune-{tag}-seed{seed}.npz", model)
                drops = [base - h["test_accuracy"] for h in hist]
                verdict = ", ".join(
                    f"after {e + 1}: {100 * d:+.2f} {'met' if d <= 0.01 else 'MISSED'}"
                    for e, d in enumerate(drops) if e in (0, len(drops) - 1))
                rows.append({
                    "run": f"sign fine-tune (K={args.lr_shift}, seed {seed}), t_max={t_max:g}",
                    "sizes": "-".join(map(str, model.sizes)), "epochs": str(args.ft_epochs),
                    "float %": f"{100 * s['float_accuracy']:.2f}",
                    "8-bit %": f"{100 * s['discrete_accuracy']:.2f}",
                    "curve (8-bit % per epoch)": f"{100 * base:.1f} -> " + _curve(hist),
                    "images/s": f"{model.training['images_per_s']:.0f}",
                    "target": f"drop <= 1.0: {verdict}",
                })
                print(f"sign-finetune t_max={t_max:g} seed {seed}: {_curve(hist)}",
                      file=sys.stderr, flush=True)
        if "sign-random" in runs:
            for seed in seeds:
                model, s, hist = train_sign_model(
                    ds, hidden=[args.hidden], encoding=enc, init="random", epochs=args.epochs,
                    lr_shift=args.lr_shift, theta=args.theta, seed=seed, discrete=disc,
                    quiet=args.quiet)
                save_model(out / f"sign-random-{tag}-theta{args.theta}-seed{seed}.npz", model)
                acc = s["discrete_accuracy"]
                last5 = [h["test_accuracy"] for h in hist[-5:]]
                rows.append({
                    "run": f"sign random (theta={args.theta}, K={args.lr_shift}, seed {seed}), "
                           f"t_max={t_max:g}",
                    "sizes": "-".join(map(str, model.sizes)), "epochs": str(args.epochs),
                    "float %": f"{100 * s['float_accuracy']:.2f}",
                    "8-bit %": f"{100 * acc:.2f}",
                    "curve (8-bit % per epoch)": _curve(hist),
                    "images/s": f"{model.training['images_per_s']:.0f}",
                    "target": f">= 90: {'met' if acc >= 0.90 else 'MISSED'} (last 5 epochs: "
                              f"mean {100 * np.mean(last5):.1f}, min {100 * min(last5):.1f})",
                })
                print(f"sign-random t_max={t_max:g} seed {seed}: {_curve(hist)}",
                      file=sys.stderr, flush=True)
    _print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
