"""``spikegate train ttfs``: train a TTFS network (Mostafa 2017), quantize it, write a model file.

Digits by default; MNIST / Fashion-MNIST from their IDX directory (``--data`` or
``SPIKEGATE_DATA``). After training, the weights are quantized to signed 8 bits per layer,
the float and the 8-bit discrete model are evaluated on the test split, and the model file
(:mod:`spikegate.golden.model_file`) is written with those accuracies in its training info.
``--val N`` holds N random training images out (seeded by ``--val-seed``): every epoch is
evaluated on them, the epoch with the best 8-bit validation accuracy is kept (``--keep``),
and the test split is evaluated once, at the end. ``--init MODEL`` starts from a model
file's float weights instead of random ones.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from spikegate.golden.data import DATASETS, load_dataset
from spikegate.golden.encoding import ENCODING_MODES, EncodingConfig, encode
from spikegate.golden.model_file import TTFSModelFile, load_model, save_model
from spikegate.golden.progress import Progress
from spikegate.golden import ttfs
from spikegate.golden.ttfs_discrete import DiscreteConfig

from .args import (check, existing_dir, non_negative_float, non_negative_int,
                   number_in, output_file, positive_float, positive_int, positive_ints)
from .eval_ttfs import evaluate, format_table
from .train_sign import add_sign_arguments, run_sign

__all__ = ["add_parser", "run", "train_model", "configs_for", "split_validation", "DEFAULTS"]

# Per data set defaults (chosen by the runs of scripts/bench_ttfs.py): the encoding, the
# training hyper-parameters that differ from TrainConfig's, the encoding's parameters and the
# discrete time grid (None: DiscreteConfig's default). digits: inputs over t in [0, 2] on a
# 1/16 grid. MNIST (the FPGA prototype's network): binary pixels above 0.55 (12.6 % of the
# training pixels, 12.8 % of the test pixels spike: at most the prototype's 13 % of
# input-to-hidden weights looked up; 0.5 gives 13.2 / 13.4 %), 64 steps of 1/8 (horizon t = 8,
# so that late decisions still land inside the grid), the sparsity cost adapted towards 25
# hidden spikes before the decision (the prototype's 5 % of 600 is 30; the float count misses
# the spikes of the decision step itself), and the silent-label cost (without it, samples whose
# label neuron fell silent under the sparsity cost never recovered: test accuracy fell from
# 95.7 % at epoch 9 to 90 % at epoch 22, 7 % of the test images without a decision), and spike
# dropout 0.1 (without it: 99.4 % training, 96.5 % test accuracy at epoch 25; with it about
# 97 % test from epoch 20 on). Digits and MNIST train aware of their grid (GRID_AWARE).
DEFAULTS = {
    "digits": ("graded", dict(epochs=100, lr_decay=0.98, dropout=0.1, softmax_scale=3.0),
               dict(t_max=2.0), dict(timesteps=64, dt=1 / 16)),
    "mnist": ("binary", dict(epochs=50, lr_decay=0.94, dropout=0.1, late=0.01,
                             late_target=25.0, silent_cost=1.0),
              dict(threshold=0.55), dict(timesteps=64, dt=1 / 8)),
    "fashion-mnist": ("binary", dict(epochs=8, lr_decay=0.8, late=0.003), {}, None),
}
GRID_AWARE = ("digits", "mnist")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "ttfs", help="time-to-first-spike network (Mostafa 2017), exact gradients",
        description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="digits", choices=DATASETS, help="data set (default: digits)")
    p.add_argument("--data", type=existing_dir, default=None, metavar="DIR",
                   help="IDX directory for mnist / fashion-mnist (default: $SPIKEGATE_DATA)")
    p.add_argument("--hidden", type=positive_ints, default="64",
                   help="hidden layer sizes, comma separated (default: 64)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="training epochs (default: digits 100, mnist 50, fashion-mnist 8; "
                        "--rule sign: 20 from random weights, 3 when fine-tuning)")
    p.add_argument("--batch-size", type=positive_int, default=32, help="minibatch size (default: 32)")
    p.add_argument("--lr", type=positive_float, default=1e-3,
                   help="Adam learning rate (default: 1e-3)")
    p.add_argument("--lr-decay", type=number_in("(0, 1]"), default=None,
                   help="learning rate factor per epoch (default: digits 0.98, mnist 0.94, "
                        "otherwise 0.8)")
    p.add_argument("--dropout", type=number_in("[0, 1)"), default=None,
                   help="spike dropout probability while training (default: digits and mnist "
                        "0.1, otherwise 0)")
    p.add_argument("--late", type=non_negative_float, default=None,
                   help="weight of the cost on hidden spikes before the decision (sparsity; "
                        "default: digits 0, mnist 0.01 (start of --late-target), otherwise 0.003)")
    p.add_argument("--late-target", type=non_negative_float, default=None,
                   help="adapt --late (its starting value) after every minibatch so that the "
                        "mean number of hidden spikes before the decision approaches this "
                        "(default: mnist 25, otherwise 0 = fixed --late)")
    p.add_argument("--softmax-scale", type=positive_float, default=None,
                   help="softmax over -scale * z_out (default: digits 3, otherwise 1)")
    p.add_argument("--seed", type=non_negative_int, default=0,
                   help="seed of initialization and shuffling (default: 0)")
    p.add_argument("--encoding", default=None, choices=ENCODING_MODES,
                   help="pixel to spike time rule (default: graded for digits, binary otherwise)")
    p.add_argument("--threshold", type=number_in("[0, 1)"), default=None,
                   help="binary encoding: pixels above it spike at t=0 (default: mnist 0.55, "
                        "otherwise 0.5)")
    p.add_argument("--timesteps", type=positive_int, default=None,
                   help="discrete model: time steps (default: digits and mnist 64, otherwise 32)")
    p.add_argument("--dt", type=positive_float, default=None,
                   help="discrete model: time units per step (default: digits 1/16, otherwise 1/8)")
    p.add_argument("--grid-aware", default=None, action=argparse.BooleanOptionalAction,
                   help="train with hidden spikes on the discrete time grid (default: on for "
                        "digits and mnist)")
    p.add_argument("--train-limit", type=positive_int, default=None,
                   help="use the first N training samples")
    p.add_argument("--val", type=non_negative_int, default=0, metavar="N",
                   help="hold N random training samples out as a validation split: evaluated "
                        "after every epoch (one line on stderr), the test split only at the end "
                        "(default: 0, none)")
    p.add_argument("--val-seed", type=non_negative_int, default=0,
                   help="seed of the validation split (default: 0)")
    p.add_argument("--keep", choices=("best", "last"), default="best",
                   help="with --val: keep the epoch of the best 8-bit validation accuracy "
                        "(default) or the last")
    p.add_argument("--shift", type=non_negative_int, default=None,
                   help="augmentation: move every training image by up to this many pixels "
                        "along each axis (default: 0)")
    p.add_argument("--rotate", type=number_in("[0, 180]"), default=None, metavar="DEG",
                   help="augmentation: turn every training image about its centre by a random "
                        "angle in [-DEG, DEG] degrees (nearest pixel; default: 0)")
    p.add_argument("--scale", type=number_in("[0, 1)"), default=None, metavar="FRAC",
                   help="augmentation: scale every training image about its centre by a random "
                        "factor in [1 - FRAC, 1 + FRAC] (default: 0)")
    p.add_argument("--checkpoint", action="store_true",
                   help="after every epoch, write the model file so far (atomically) to the "
                        "output file (with --val: the weights --keep chooses so far); without "
                        "--val also evaluate it on the test split (one line on stderr)")
    p.add_argument("-o", "--output", type=output_file, default=None, metavar="FILE",
                   help="model file to write (default: ttfs-<dataset>.npz)")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="BLAS threads (default: 1; the small products here run slower on more)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_sign_arguments(p)
    p.set_defaults(func=run)
    return p


def _blas_threads(n):
    """Limit BLAS threads (threadpoolctl ships with scikit-learn); a no-op without it."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def configs_for(dataset, *, encoding=None, threshold=None, timesteps=None, dt=None,
                grid_aware=None, **train):
    """``(EncodingConfig, TrainConfig, DiscreteConfig)`` for ``dataset`` from :data:`DEFAULTS`,
    with ``None`` meaning "the default" and ``train`` overriding TrainConfig fields."""
    mode, kw, enc_kw, grid = DEFAULTS[dataset]
    enc_kw = dict(enc_kw)
    if threshold is not None:
        enc_kw["threshold"] = threshold
    enc = EncodingConfig(mode=encoding or mode, **enc_kw)
    grid = dict(grid or DiscreteConfig().to_dict())
    if timesteps is not None:
        grid["timesteps"] = timesteps
    if dt is not None:
        grid["dt"] = dt
    discrete = DiscreteConfig(**grid)
    if grid_aware is None:
        grid_aware = dataset in GRID_AWARE
    kw = dict(kw, **train)
    if grid_aware:
        kw.update(grid_dt=discrete.dt, grid_steps=discrete.timesteps)
    return enc, ttfs.TrainConfig(**kw), discrete


def split_validation(n, val, seed=0):
    """``(train_idx, val_idx)``: ``val`` of the ``n`` training samples held out at random
    (``numpy.random.default_rng(seed)``), each index list sorted. ``val = 0``: none."""
    if not isinstance(val, (int, np.integer)) or isinstance(val, bool) or not 0 <= val < n:
        raise ValueError(f"the validation split must be an integer in [0, {n}) (training "
                         f"samples: {n}), not {val!r}")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[val:]), np.sort(perm[:val])


def train_model(ds, hidden, encoding, cfg, *, train_limit=None, quiet=False, discrete=None,
                epoch_callback=None, checkpoint=None, val=0, val_seed=0, keep="best",
                init=None):
    """Train on data set ``ds``; returns ``(TTFSModelFile, summary, seconds_per_epoch)``.

    ``summary`` is :func:`spikegate.scripts.eval_ttfs.evaluate`'s on the test split; the model
    file's training info holds the data set, sizes, hyper-parameters, timing and accuracies.
    ``epoch_callback(epoch, net, loss)`` is passed to :func:`spikegate.golden.ttfs.train`.
    ``checkpoint``: a path; after every epoch the model so far is evaluated on the test split
    (one line on stderr: loss, float and 8-bit accuracy, lookups, spikes to decision) and
    written there atomically (its training info says how many epochs it has seen).

    ``val > 0`` holds that many of the training samples out (:func:`split_validation`, seed
    ``val_seed``; after ``train_limit``): after every epoch the float and 8-bit models are
    evaluated on them, the curve goes into the training info (``validation``), and the
    checkpoint line reports validation, not test, accuracy. ``keep = "best"`` then returns the
    weights of the epoch with the highest 8-bit validation accuracy (the earliest on ties),
    ``"last"`` those of the last epoch. The test split is evaluated once, at the end.

    ``init``: float weights to start from (one ``(n_in, n_out)`` array per layer, the sizes
    ``hidden`` gives) instead of random ones; Adam's moments start from zero.
    """
    if keep not in ("best", "last"):
        raise ValueError(f"keep must be 'best' or 'last', not {keep!r}")
    x, y = ds.x_train, ds.y_train
    if train_limit is not None:
        if train_limit < 1:
            raise ValueError(f"--train-limit must be >= 1, not {train_limit!r}")
        x, y = x[:train_limit], y[:train_limit]
    tr, va = split_validation(len(y), val, val_seed)
    x_val, y_val = x[va], y[va]
    x, y = x[tr], y[tr]
    times = encode(x, encoding)
    if cfg.grid_dt:
        # inputs as the discrete model sees them (times_to_steps rounds half up)
        k = np.floor(times / cfg.grid_dt + 0.5)
        times = np.where(np.isfinite(k) & ((k < cfg.grid_steps) | (cfg.grid_steps == 0)),
                         k * cfg.grid_dt, np.inf)
    rate = float(np.mean(np.isfinite(times)))
    if rate == 0:
        raise ValueError(f"no input pixel spikes with encoding {encoding}")
    sizes = [ds.n_inputs] + list(hidden) + [ds.n_classes]
    if init is None:
        net = ttfs.TTFSNetwork.create(sizes, seed=cfg.seed, input_rate=rate)
    else:
        net = ttfs.TTFSNetwork([np.asarray(w, dtype=np.float64) for w in init])
        if net.sizes != tuple(sizes):
            raise ValueError(f"the initial weights have sizes {'-'.join(map(str, net.sizes))}, "
                             f"not {'-'.join(map(str, sizes))}")
    z = ttfs.times_to_z(times)
    bar = None

    def callback(epoch, batch, nb, loss, acc):
        nonlocal bar
        if quiet:
            return
        if batch == 1:
            bar = Progress(nb, desc=f"epoch {epoch + 1}/{cfg.epochs}")
        bar.update(1, loss=loss, acc=acc)
        if batch == nb and sys.stderr.isatty():
            bar.close()         # end the line (a log already has the final update's line)

    def model_file(history, seconds):
        epochs = len(history)
        model = TTFSModelFile.from_float(net.weights, discrete=discrete or DiscreteConfig(),
                                         encoding=encoding)
        summary, _ = evaluate(model, ds.x_test, ds.y_test)
        model.training = {
            "dataset": ds.name,
            "sizes": sizes,
            "train_samples": int(len(y)),
            "input_rate": rate,
            "config": cfg.to_dict(),
            "epochs_done": epochs,
            "loss_history": [float(h) for h in history],
            "late_history": [float(v) for v in info.get("late", [])],
            "hidden_before_history": [float(v) for v in info.get("hidden_before", [])],
            "train_seconds": seconds,
            "seconds_per_epoch": seconds / epochs if epochs else 0.0,
            "float_accuracy": summary["float_accuracy"],
            "discrete_accuracy": summary["discrete_accuracy"],
        }
        if val:
            model.training["validation"] = dict(
                samples=int(len(y_val)), seed=int(val_seed), keep=keep, curve=list(curve),
                best_epoch=best["epoch"], epochs_kept=best["epoch"] if keep == "best" else epochs)
        return model, summary

    losses, info, curve = [], {}, []
    best = {"epoch": 0, "acc": -1.0, "weights": None}

    def validate(epoch, loss):
        model = TTFSModelFile.from_float(net.weights, discrete=discrete or DiscreteConfig(),
                                         encoding=encoding)
        s, _ = evaluate(model, x_val, y_val)
        row = {"epoch": epoch + 1, "loss": float(loss), "float_accuracy": s["float_accuracy"],
               "discrete_accuracy": s["discrete_accuracy"], "no_decision": s["no_decision"],
               "lookup_fraction": [v["mean"] for v in s["lookup_fraction"]],
               "spikes_to_decision": s["total_spikes"]["mean"]}
        curve.append(row)
        if s["discrete_accuracy"] > best["acc"]:
            best.update(epoch=epoch + 1, acc=s["discrete_accuracy"],
                        weights=[w.copy() for w in net.weights])
        return s

    def on_epoch(epoch, net_, loss):
        losses.append(loss)
        t1 = time.perf_counter()
        seconds = t1 - t0 - eval_seconds[0]
        if val:
            s = validate(epoch, loss)
            where = "validation"
        if checkpoint is not None:
            model, st = model_file(losses, seconds) if not val else (None, None)
            if val:
                # the test split is not looked at before the end: the checkpoint holds the
                # weights training would return if it stopped now (--keep) with the
                # validation figures only
                kept = best if keep == "best" else {"epoch": len(losses), "weights": net.weights}
                model = TTFSModelFile.from_float(
                    kept["weights"], discrete=discrete or DiscreteConfig(), encoding=encoding)
                model.training = {"dataset": ds.name, "sizes": sizes, "config": cfg.to_dict(),
                                  "epochs_done": len(losses), "epoch_kept": kept["epoch"],
                                  "validation_curve": list(curve)}
            else:
                s, where = st, "test"
            save_model(checkpoint, model)
        if val or checkpoint is not None:
            eval_seconds[0] += time.perf_counter() - t1
            lk = "/".join(f"{100 * v['mean']:.1f}" for v in s["lookup_fraction"])
            print(f"epoch {epoch + 1}: loss {loss:.4f}, {where} float "
                  f"{100 * s['float_accuracy']:.2f} %, 8-bit {100 * s['discrete_accuracy']:.2f} % "
                  f"(no decision {100 * s['no_decision']:.2f} %), lookups {lk} %, spikes to "
                  f"decision {s['total_spikes']['mean']:.1f}, {seconds:.0f} s"
                  + (f"; wrote {checkpoint}" if checkpoint is not None else ""),
                  file=sys.stderr, flush=True)
        if epoch_callback is not None:
            epoch_callback(epoch, net_, loss)

    eval_seconds = [0.0]          # per-epoch evaluations, not counted as training time
    t0 = time.perf_counter()
    history = ttfs.train(net, z, y, cfg, callback=callback, epoch_callback=on_epoch, info=info)
    seconds = time.perf_counter() - t0 - eval_seconds[0]
    if val and keep == "best" and best["weights"] is not None:
        net.weights = best["weights"]
    model, summary = model_file(history, seconds)
    return model, summary, model.training["seconds_per_epoch"]


def run(args):
    if args.rule == "sign":
        return run_sign(args, default_encoding=DEFAULTS[args.dataset][0])
    overrides = {name: getattr(args, name) for name in
                 ("epochs", "lr_decay", "dropout", "late", "late_target", "softmax_scale",
                  "shift", "rotate", "scale")
                 if getattr(args, name) is not None}
    encoding, cfg, discrete = configs_for(
        args.dataset, encoding=args.encoding, threshold=args.threshold, timesteps=args.timesteps,
        dt=args.dt, grid_aware=args.grid_aware, batch_size=args.batch_size, lr=args.lr,
        seed=args.seed, **overrides)
    output = Path(check("-o", output_file, args.output or f"ttfs-{args.dataset}.npz"))
    ds = load_dataset(args.dataset, args.data)
    # --init (add_sign_arguments): with the exact rule, a model file's float weights to start
    # from (e.g. to train on with the same --val split)
    init = None if args.init == "random" else load_model(args.init).float_weights
    with _blas_threads(args.threads):
        model, summary, per_epoch = train_model(ds, args.hidden, encoding, cfg, discrete=discrete,
                                                train_limit=args.train_limit, quiet=args.quiet,
                                                checkpoint=output if args.checkpoint else None,
                                                val=args.val, val_seed=args.val_seed,
                                                keep=args.keep, init=init)
    if init is not None:
        model.training["init"] = str(args.init)
    save_model(output, model)
    print(format_table(summary, f"{args.dataset} test, sizes {'-'.join(map(str, model.sizes))}, "
                                f"{per_epoch:.1f} s/epoch"))
    print(f"wrote {output}")
    return 0
