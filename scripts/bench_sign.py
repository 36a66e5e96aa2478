"""Benchmark of the on-chip sign rule (:mod:`spikegate.golden.sign_backprop`) on digits.

Prints one table row per run (targets, not tests), for each seed of ``--seeds``:

* ``exact``: the golden float model trained with exact gradients with spikegate's digits
  defaults (``spikegate train ttfs``: :func:`~spikegate.scripts.train_ttfs.configs_for`;
  graded ``t_max = 2``, 64 steps of 1/16), quantized; its float and 8-bit test accuracies are
  the reference;
* ``sign fine-tune``: that network trained further with the sign rule, with the settings of
  :data:`~spikegate.scripts.train_sign.SIGN_DEFAULTS` (the first layer's threshold doubled and
  the float weights requantized; only the images the network gets wrong are trained);
  target: loses no more than 1 point of 8-bit test accuracy against the exact network's
  8-bit accuracy, judged after the last epoch (the change after every epoch is printed,
  and the worst of them);
* ``sign random``: the sign rule from random initial int8 weights
  (:func:`~spikegate.golden.sign_backprop.random_discrete_network`, threshold ``--theta``,
  graded ``t_max = 3``, 32 steps of 1/8), errors only, with ``--val-split`` of the training
  images held out; target: >= 90 % 8-bit test accuracy, after the last epoch and in the
  epoch the validation images choose (both printed);
* ``rule alone`` rows (``--baseline``, default on): the same runs with the rule as the
  hardware's TRAIN applies it to every image, without requantizing or a validation split
  (what the settings above buy);
* the speed of each in training images/s (the sign rule: one image at a time, one thread).

Measured (2026-11-23, 64-64-10, default options: 20 epochs from random, 3 fine-tuning
epochs, seeds 0 / 1 / 2; 5.4 min on this shared 2-core machine with the exact model cached,
about 4 min more to train it). The exact-gradient reference: float 97.2 %, 8-bit 96.7 %.

======================================  =================================  ==================
run (seeds 0 / 1 / 2)                   8-bit test % after the last epoch  target
======================================  =================================  ==================
fine-tune: theta x 2, errors only       96.7 / 96.1 / 94.2                 loss <= 1 point:
(the hardware as it is)                 (+0.0 / -0.6 / -2.5 points)        met, met, MISSED
same + LFSR k = 2 (hardware change)     97.2 / 96.9 / 96.9                 met x 3 (no epoch
                                        (+0.6 / +0.3 / +0.3 points)        below 96.7)
fine-tune: rule alone                   86.7 / 92.5 / 87.2                 MISSED x 3
                                        (-10.0 / -4.2 / -9.4 points)
random: errors only, val 0.2            92.8 / 91.7 / 94.7; the epoch the  >= 90: met x 3
                                        validation keeps: 93.3 / 93.6 /    (last 5 epochs
                                        94.7                               >= 90.3)
random: rule alone                      91.9 / 90.3 / 88.9                 met, met, MISSED
======================================  =================================  ==================

With 5 fine-tuning epochs on seeds 3 / 4 / 5 (``--seeds 3,4,5 --ft-epochs 5 --no-baseline``,
1.7 min): theta x 2 and errors only 96.9 / 97.2 / 96.4 % after the last epoch (+0.3 / +0.6 /
-0.3 points, met; the worst epochs -1.7 / -0.8 / -0.8); with the LFSR 97.2 / 96.9 / 97.8 %
(+0.6 / +0.3 / +1.1; worst epochs +0.3 / +0.3 / -0.8). Over the six seeds: without the LFSR
the target is met after the last epoch on 5 of 6 and in 21 of 24 epochs; with it in every
epoch of every seed.

How the settings were chosen, on validation images only (an exact-gradient network trained
with the same defaults on 80 % of the training split, fine-tuned on it, judged on the other
20 %, 287 images; seeds 0-2, 5 epochs; the worst change over all epochs and seeds, in
points): rule alone -11.1; errors only -1.0; errors only with the first layer's threshold
x 1.5 / 2 / 3: -1.4 / 0.0 / -0.3 (x 2 on both layers -0.3); with x 2 and the LFSR, k = 1 / 2
/ 3: -0.3 / +0.3 / +0.3; x 1 with k = 2 / 3: 0.0 / -0.3. From random weights (20 % of the
training split held out, 20 epochs): validation accuracy after the last epoch 91.6 / 94.4 /
94.8 % with errors only against 92.3 / 89.9 / 83.3 % for the rule alone; a learning-rate
schedule (``lr_shift`` 1 for 5 epochs, then 0) gained nothing that held on every seed.

Why: the rule moves every causal weight of almost every hidden neuron by 1/theta on each
update. A correct decision that other outputs tie at the decision step (frequent on a
time grid of 1/8 or 1/16) is still an update (the others are pushed later), and on a
well-trained network those updates are most of them; training only the wrong images (the
host classifies first, then sends ``TRAIN``) removes them. Doubling the first layer's
threshold halves its step relative to the threshold; it saturates the largest first-layer
weights (the requantized network starts at 95.8 % instead of 96.7 %), which fine-tuning
wins back (95.8-97.5 % after the first epoch). What remains is the size of a step: a
handful of updates per epoch still swing the test accuracy by 1-3 points from epoch to
epoch; the LFSR (:class:`~spikegate.golden.sign_backprop.UpdateLFSR`, an expected step of
1/4) keeps every measured epoch within 1 point.

The exact model is written to ``--out`` and reused when present (``--retrain``)::

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
from spikegate.golden.sign_backprop import MAX_LFSR_K, MAX_LR_SHIFT
from spikegate.golden.ttfs_discrete import THETA_MAX, DiscreteConfig

from .args import int_list, int_range, number_in, output_dir, positive_float, positive_int
from .eval_ttfs import evaluate
from .train_sign import SIGN_DEFAULTS, theta_scale, train_sign_model
from .train_ttfs import configs_for, train_model

__all__ = ["main"]

#: The runs of ``--only``.
RUNS = ("exact", "sign-finetune", "sign-random")


def _pct(v):
    return f"{100 * v:.1f}"


def _points(change):
    """A change of accuracy in points, ``+0.00`` for none (no ``-0.00``)."""
    v = round(100 * change, 2)
    return f"{v + 0.0:+.2f}"


def _print_table(rows):
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    print("  ".join(f"{c:<{widths[c]}}" for c in cols))
    for r in rows:
        print("  ".join(f"{r[c]:<{widths[c]}}" for c in cols))


def _exact(ds, args):
    """The exact-gradient network with the digits defaults (trained, or loaded from --out)."""
    enc, cfg, disc = configs_for("digits")
    path = Path(args.out) / f"exact-digits-h{args.hidden}-seed{cfg.seed}.npz"
    if path.exists() and not args.retrain:
        exact = load_model(path)
        summary, _ = evaluate(exact, ds.x_test, ds.y_test)
    else:
        exact, summary, _ = train_model(ds, [args.hidden], enc, cfg, quiet=args.quiet,
                                        discrete=disc)
        save_model(path, exact)
    return exact, summary


def _finetune_row(name, exact_acc, model, hist, seed):
    drops = [h["test_accuracy"] - exact_acc for h in hist]
    final, worst = drops[-1], min(drops)
    return {
        "run": f"{name}, seed {seed}",
        "epochs": str(len(hist)),
        "8-bit % (final)": _pct(hist[-1]["test_accuracy"]),
        "curve (8-bit %, start -> per epoch)":
            f"{_pct(model.training['initial_discrete_accuracy'])} -> "
            + " ".join(_pct(h["test_accuracy"]) for h in hist),
        "images/s": f"{model.training['images_per_s']:.0f}",
        "target": f"loss <= 1 point: last epoch {_points(final)} "
                  f"{'met' if final >= -0.01 - 1e-9 else 'MISSED'} (worst epoch {_points(worst)})",
    }


def _random_row(name, model, hist, seed):
    final = hist[-1]["test_accuracy"]
    t = model.training
    kept = model.training["discrete_accuracy"]
    verdict = f">= 90: final {'met' if final >= 0.90 else 'MISSED'}"
    if t["val_samples"]:
        verdict += f", kept {'met' if kept >= 0.90 else 'MISSED'}"
    last5 = [h["test_accuracy"] for h in hist[-5:]]
    return {
        "run": f"{name}, seed {seed}",
        "epochs": str(len(hist)),
        "8-bit % (final)": _pct(final) + (f" (kept e{t['selected_epoch']}: {_pct(kept)})"
                                          if t["val_samples"] else ""),
        "curve (8-bit %, start -> per epoch)": " ".join(_pct(h["test_accuracy"]) for h in hist),
        "images/s": f"{t['images_per_s']:.0f}",
        "target": verdict + f" (last 5: mean {100 * np.mean(last5):.1f}, min {100 * min(last5):.1f})",
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=output_dir, default="bench_sign_out",
                   help="directory of the trained models")
    p.add_argument("--retrain", action="store_true", help="train the exact model even if present")
    p.add_argument("--hidden", type=positive_int, default=64, help="hidden neurons (default: 64)")
    p.add_argument("--epochs", type=positive_int, default=SIGN_DEFAULTS["epochs_random"],
                   help="sign rule epochs from random weights")
    p.add_argument("--ft-epochs", type=positive_int, default=SIGN_DEFAULTS["epochs_finetune"],
                   help="sign rule epochs when fine-tuning")
    p.add_argument("--theta", type=int_range(1, THETA_MAX), default=SIGN_DEFAULTS["theta"],
                   help="threshold of the random init")
    p.add_argument("--theta-scale", type=theta_scale,
                   default=",".join(f"{v:g}" for v in SIGN_DEFAULTS["theta_scale"]),
                   help="fine-tuning: threshold factor per layer (requantized)")
    p.add_argument("--lr-shift", type=int_range(0, MAX_LR_SHIFT), default=SIGN_DEFAULTS["lr_shift"],
                   help="sign rule step 2**K")
    p.add_argument("--t-max", type=positive_float, default=SIGN_DEFAULTS["t_max"],
                   help="random init: graded encoding t_max")
    p.add_argument("--timesteps", type=positive_int, default=32, help="random init: discrete steps T")
    p.add_argument("--dt", type=positive_float, default=1 / 8, help="random init: time units per step")
    p.add_argument("--stochastic-k", type=int_range(0, MAX_LFSR_K), default=2,
                   help="fine-tuning: also run with stochastic rounding (the update LFSR, k bits; "
                        "a hardware change; 0: skip; default: 2)")
    p.add_argument("--val-split", type=number_in("[0, 1)"), default=0.2,
                   help="random init: fraction of the training images held out to choose the "
                        "epoch (default: 0.2)")
    p.add_argument("--seeds", type=int_list(0), default="0,1,2",
                   help="seeds (init and order) of the sign runs, comma separated (default: 0,1,2)")
    p.add_argument("--only", default=",".join(RUNS),
                   help="comma-separated runs (default: all three)")
    p.add_argument("--baseline", default=True, action=argparse.BooleanOptionalAction,
                   help="also run the rule alone (every image, no requantizing, no validation)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    runs = [r.strip() for r in args.only.split(",")]
    for r in runs:
        if r not in RUNS:
            p.error(f"argument --only: unknown run {r!r}; expected some of {', '.join(RUNS)}")
    seeds = args.seeds
    # The random init's encoding and time grid, checked before anything is trained.
    enc = EncodingConfig("graded", t_max=args.t_max)
    disc = DiscreteConfig(timesteps=args.timesteps, dt=args.dt)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    ds = load_dataset("digits")
    common = dict(lr_shift=args.lr_shift, quiet=args.quiet)
    rows = []

    def log(text):
        print(text, file=sys.stderr, flush=True)

    if "exact" in runs or "sign-finetune" in runs:
        exact, summary = _exact(ds, args)
        t = exact.training
        rows.append({
            "run": f"exact (float, Adam), graded t_max={exact.encoding.t_max:g}, "
                   f"T={exact.discrete.timesteps}, dt={exact.discrete.dt:g}",
            "epochs": str(t["config"]["epochs"]),
            "8-bit % (final)": _pct(summary["discrete_accuracy"]),
            "curve (8-bit %, start -> per epoch)": f"float {_pct(summary['float_accuracy'])}",
            "images/s": f"{t['train_samples'] / t['seconds_per_epoch']:.0f}",
            "target": "reference",
        })
        log(f"exact: float {summary['float_accuracy']:.4f}, 8-bit {summary['discrete_accuracy']:.4f}")
    if "sign-finetune" in runs:
        base = summary["discrete_accuracy"]
        variants = [(f"sign fine-tune (theta x {args.theta_scale} (first layers), errors only)",
                     dict(theta_scale=args.theta_scale, errors_only=True))]
        if args.stochastic_k:
            variants.append((f"sign fine-tune (theta x {args.theta_scale} (first layers), errors "
                             f"only, LFSR k={args.stochastic_k}: NEEDS HARDWARE)",
                             dict(theta_scale=args.theta_scale, errors_only=True,
                                  stochastic_k=args.stochastic_k)))
        if args.baseline:
            variants.append(("sign fine-tune, rule alone", dict(theta_scale=None, errors_only=False)))
        for name, kw in variants:
            for seed in seeds:
                model, s, hist = train_sign_model(ds, init=exact, epochs=args.ft_epochs,
                                                  seed=seed, **kw, **common)
                rows.append(_finetune_row(name, base, model, hist, seed))
                log(f"{name} seed {seed}: " + " ".join(_pct(h["test_accuracy"]) for h in hist))
    if "sign-random" in runs:
        grid = f"t_max={args.t_max:g}, T={args.timesteps}, dt={args.dt:g}, theta={args.theta}"
        variants = [(f"sign random ({grid}, errors only, val {args.val_split:g})",
                     dict(errors_only=True, val_split=args.val_split), "random")]
        if args.baseline:
            variants.append((f"sign random ({grid}), rule alone",
                             dict(errors_only=False, val_split=0.0), "random-alone"))
        for name, kw, tag in variants:
            for seed in seeds:
                model, s, hist = train_sign_model(
                    ds, hidden=[args.hidden], encoding=enc, init="random", epochs=args.epochs,
                    theta=args.theta, seed=seed, discrete=disc, **kw, **common)
                save_model(Path(args.out) / f"sign-{tag}-seed{seed}.npz", model)
                rows.append(_random_row(name, model, hist, seed))
                log(f"{name} seed {seed}: " + " ".join(_pct(h["test_accuracy"]) for h in hist))
    _print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
