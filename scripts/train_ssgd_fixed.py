"""``spikegate train ssgd-fixed``: on-chip-style SSGD training in fixed point, image by image.

The bit-exact training the hardware of issue 21 runs (:mod:`spikegate.golden.ssgd_train_fixed`:
a 64-H-10 LIF network, sparse backward through the active events only, shift-rate SGD on 8-bit
weights), beside its float counterpart (the same algorithm without rounding, from the same
initial weights and the same image order). Digits by default: spikegate's fixed 80/20
split, whose training part is split again into the first ``n - val`` images for training and
the last ``--val`` (287) for the choices (learning rates, epochs, encoding); the test set is
only reported.

Prints a table (float and fixed: validation and test accuracy, active fraction of the hidden
layer, active events against neurons x timesteps, seconds per epoch) and writes, into
``--out``: ``model.npz`` (the SSGD model file, :mod:`spikegate.golden.ssgd_model_file`) and
``history.json``.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

from spikegate.golden import atomic
from .args import existing_dir, non_negative_int, output_dir, positive_int

__all__ = ["add_parser", "run", "train_both", "format_table"]


def add_parser(subparsers):
    p = subparsers.add_parser(
        "ssgd-fixed", help="SSGD in bit-exact fixed point, image by image (issue 21's hardware)",
        description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="digits", choices=("digits", "mnist", "fashion-mnist"))
    p.add_argument("--data", type=existing_dir, default=None, metavar="DIR",
                   help="IDX directory for mnist / fashion-mnist")
    p.add_argument("--hidden", type=positive_int, default=64, metavar="H",
                   help="hidden LIF neurons (default 64)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="epochs (default 20)")
    p.add_argument("--decay-every", type=non_negative_int, default=None, metavar="E",
                   help="halve both learning rates every E epochs (0: never; default 4)")
    p.add_argument("--lr1-shift", type=non_negative_int, default=None)
    p.add_argument("--lr2-shift", type=non_negative_int, default=None)
    p.add_argument("--val", type=non_negative_int, default=287,
                   help="validation images taken from the end of the training set (287)")
    p.add_argument("--seed", type=non_negative_int, default=0,
                   help="initial weights and image order (default 0)")
    p.add_argument("--no-float", action="store_true", help="skip the float counterpart")
    p.add_argument("--limit-train", type=positive_int, default=None, metavar="N")
    p.add_argument("--limit-test", type=positive_int, default=None, metavar="N")
    p.add_argument("--out", type=output_dir, default="runs/ssgd_fixed", metavar="DIR")
    p.set_defaults(func=run)
    return p


DEFAULT_EPOCHS = 20
DEFAULT_DECAY_EVERY = 4


def _split(dataset, root, fmt, val, limit_train, limit_test):
    from spikegate.golden.data import load_dataset
    from spikegate.golden.ssgd_train_fixed import encode
    d = load_dataset(dataset, root)
    xtr, ytr = d.x_train[:limit_train], d.y_train[:limit_train]
    xte, yte = d.x_test[:limit_test], d.y_test[:limit_test]
    if d.n_inputs != 64 and dataset == "digits":
        raise ValueError(f"digits has {d.n_inputs} inputs, expected 64")
    if val >= len(xtr):
        raise ValueError(f"--val {val} leaves no training images (of {len(xtr)})")
    n = len(xtr) - val
    tr, te = encode(xtr, fmt), encode(xte, fmt)
    return (tr[:n], ytr[:n]), (tr[n:], ytr[n:]), (te, yte), d.n_inputs


def train_both(fmt, hidden, epochs, decay_every, seed, train, val, test, n_in, run_float=True,
               log=sys.stderr):
    """Train fixed (and float) from the same initial weights; returns a dict of results."""
    from spikegate.golden import ssgd_train_fixed as F
    w0 = F.init_weights((n_in, hidden, 10), fmt, seed=seed)
    evals = {"val": val} if len(val[0]) else {}

    def on_epoch(tag):
        def f(ep, h):
            acc = f", val {100 * h['acc_val'][-1]:.2f}%" if "acc_val" in h else ""
            print(f"{tag} epoch {ep + 1}/{epochs}: loss {h['loss'][-1]:.4f}{acc} "
                  f"({h['epoch_time'][-1]:.1f} s)", file=log, flush=True)
        return f

    out = {}
    w, h = F.train_fixed(w0, train[0], train[1], fmt, epochs=epochs, seed=seed, evals=evals,
                         on_epoch=on_epoch("fixed"), decay_every=decay_every)
    steps = (fmt.n_steps - 1) * hidden
    out["fixed"] = {
        "weights": w, "history": h,
        "val_acc": h["acc_val"][-1] if evals else None,
        "test_acc": F.accuracy_fixed(w, test[0], test[1], fmt) if len(test[0]) else None,
        "active_fraction": float(np.sum(h["events"]) / np.sum(h["entries"])),
        "events_per_image": float(np.sum(h["events"]) / (epochs * len(train[0]))),
        "spikes_per_image": float(np.sum(h["spikes"]) / (epochs * len(train[0]))),
        "entries_per_image": steps,
        "s_per_epoch": float(np.median(h["epoch_time"])),
    }
    if run_float:
        wf, hf = F.train_float(tuple(a / (1 << fmt.lif.frac_bits) for a in w0), train[0],
                               train[1], fmt, epochs=epochs, seed=seed, evals=evals,
                               on_epoch=on_epoch("float"), decay_every=decay_every)
        pred = F.predict_float(wf, test[0], fmt) if len(test[0]) else None
        out["float"] = {
            "history": hf, "val_acc": hf["acc_val"][-1] if evals else None,
            "test_acc": float(np.mean(pred == test[1])) if pred is not None else None,
            "s_per_epoch": float(np.median(hf["epoch_time"])),
        }
    return out


def _pct(x):
    return "n/a" if x is None else f"{100 * x:.2f}%"


def format_table(res, fmt, hidden):
    """The summary table (text)."""
    fx = res["fixed"]
    rows = [("model", "val acc", "test acc", "hidden active", "events / image",
             "events / (T-1)H", "s / epoch")]
    if "float" in res:
        fl = res["float"]
        rows.append(("float (same algorithm)", _pct(fl["val_acc"]), _pct(fl["test_acc"]),
                     "-", "-", "-", f"{fl['s_per_epoch']:.1f}"))
    rows.append(("fixed (bit-exact)", _pct(fx["val_acc"]), _pct(fx["test_acc"]),
                 f"{100 * fx['active_fraction']:.2f}%", f"{fx['events_per_image']:.1f}",
                 f"{fx['events_per_image']:.1f} / {fx['entries_per_image']}",
                 f"{fx['s_per_epoch']:.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    dense = fx["entries_per_image"]
    lines.append(f"network 64-{hidden}-10, T = {fmt.n_steps}; readout: leaky integrators (no "
                 f"events: one {hidden} x 10 outer product per image); hidden spikes / image "
                 f"{fx['spikes_per_image']:.1f}; backward work sparse / dense = "
                 f"{fx['events_per_image']:.1f} / {dense} = "
                 f"1 / {dense / max(fx['events_per_image'], 1e-9):.0f}")
    return "\n".join(lines)


def _jsonable(h):
    return {k: (np.asarray(v).tolist() if isinstance(v, (list, np.ndarray)) else v)
            for k, v in h.items()}


def run(args):
    from spikegate.golden.ssgd_model_file import SSGDModelFile, save_ssgd_model
    from spikegate.golden.ssgd_train_fixed import TrainFormat
    fmt = TrainFormat()
    changes = {k: getattr(args, k) for k in ("lr1_shift", "lr2_shift")
               if getattr(args, k) is not None}
    fmt = fmt.with_(**changes)
    epochs = DEFAULT_EPOCHS if args.epochs is None else args.epochs
    decay = DEFAULT_DECAY_EVERY if args.decay_every is None else args.decay_every
    train, val, test, n_in = _split(args.dataset, args.data, fmt, args.val, args.limit_train,
                                    args.limit_test)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    res = train_both(fmt, args.hidden, epochs, decay, args.seed, train, val, test, n_in,
                     run_float=not args.no_float)
    elapsed = time.perf_counter() - t0
    fx = res["fixed"]
    info = {"dataset": args.dataset, "seed": args.seed, "epochs": epochs,
            "decay_every": decay, "hidden": args.hidden, "n_train": len(train[0]),
            "n_val": len(val[0]), "n_test": len(test[0]),
            "images_trained": epochs * len(train[0]),
            "val_acc": fx["val_acc"], "test_acc": fx["test_acc"],
            "active_fraction": fx["active_fraction"],
            "events_per_image": fx["events_per_image"], "s_per_epoch": fx["s_per_epoch"]}
    save_ssgd_model(out / "model.npz", SSGDModelFile(fx["weights"], fmt, info))
    summary = {"info": info, "fixed": _jsonable(fx["history"])}
    if "float" in res:
        summary["float"] = _jsonable(res["float"]["history"])
        summary["float_test_acc"] = res["float"]["test_acc"]
    atomic.write_text(out / "history.json",
                      json.dumps(summary, indent=1, default=float, allow_nan=False))
    print(format_table(res, fmt, args.hidden))
    print(f"seed {args.seed}, {epochs} epochs (rates halved every {decay}), "
          f"{elapsed:.0f} s; wrote {out}/model.npz and history.json")
    return 0
