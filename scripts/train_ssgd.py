"""``spikegate train ssgd``: train an LIF network with sparse (or dense) spiking gradient descent.

The golden model is :mod:`spikegate.golden.ssgd`. Inputs are spike-time encoded as in the
paper (``encode_spike_times``: one spike per pixel brighter than 0.2, bright pixels first).
Writes, into ``--out``: ``history.json`` (losses, active fractions, timings, accuracies),
``params.npz`` (the weights) and ``curves.png`` (loss, active fraction, accuracy).

Defaults follow the authors' Fashion-MNIST configuration (``config.py``: 100 steps, batch
256, Adam 2e-4, B_th 0.2) except for the embedded ``digits`` set (64 inputs, 1437 training
samples), which defaults to batch 64 and learning rate 2e-3 so that a few epochs learn.
"""

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from spikegate.golden import atomic
from .args import (at_least, existing_dir, non_negative_int, output_dir, positive_float,
                   positive_int)

__all__ = ["add_parser", "run", "prepare_data", "train_run", "plot_curves"]

_DIGITS_DEFAULTS = {"batch_size": 64, "lr": 2e-3, "epochs": 20}
_IDX_DEFAULTS = {"batch_size": 256, "lr": 2e-4, "epochs": 10}


def add_parser(subparsers):
    p = subparsers.add_parser(
        "ssgd", help="sparse spiking gradient descent (Perez-Nieves & Goodman 2021)",
        description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="digits", choices=("digits", "mnist", "fashion-mnist"))
    p.add_argument("--data", type=existing_dir, default=None, metavar="DIR",
                   help="IDX directory (default: env SPIKEGATE_DATA, or the Debian "
                        "Fashion-MNIST location)")
    p.add_argument("--backward", default="sparse", choices=("sparse", "dense"),
                   help="backward pass (default: sparse)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="epochs (default: 20 on digits, 10 otherwise)")
    p.add_argument("--hidden", type=positive_int, nargs="+", default=[200, 200], metavar="N",
                   help="hidden layer sizes (default: 200 200)")
    p.add_argument("--steps", type=at_least(2), default=100, help="time steps per sample (>= 2)")
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--lr", type=positive_float, default=None, help="Adam learning rate")
    p.add_argument("--b-th", type=positive_float, default=0.2, help="active band half-width B_th")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--limit-train", type=positive_int, default=None, metavar="N",
                   help="use only the first N training samples")
    p.add_argument("--limit-test", type=positive_int, default=None, metavar="N",
                   help="use only the first N test samples")
    p.add_argument("--out", type=output_dir, default="runs/ssgd", metavar="DIR",
                   help="output directory (default: runs/ssgd)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


def prepare_data(dataset, root=None, n_steps=100, limit_train=None, limit_test=None):
    """Load a data set and encode it: ``(train_times, y_train, test_times, y_test, n_in)``."""
    from spikegate.golden.data import load_dataset
    from spikegate.golden.ssgd import encode_spike_times
    for name, v in (("limit_train", limit_train), ("limit_test", limit_test)):
        if v is not None and v < 1:
            raise ValueError(f"{name} must be >= 1, not {v!r}")
    d = load_dataset(dataset, root)
    xtr, ytr = d.x_train[:limit_train], d.y_train[:limit_train]
    xte, yte = d.x_test[:limit_test], d.y_test[:limit_test]
    return (encode_spike_times(xtr, n_steps), ytr, encode_spike_times(xte, n_steps), yte,
            d.n_inputs)


def train_run(data, hidden, cfg, backward_mode, epochs, seed=0, progress=True, desc=""):
    """Initialise (seed ``seed``) and train; return ``(params, history)``."""
    from spikegate.golden.progress import Progress
    from spikegate.golden.ssgd import init_params, train
    tr, ytr, te, yte, n_in = data
    params = init_params([n_in] + list(hidden) + [10], cfg, seed=seed)
    bars = {}

    def on_batch(ep, bi, nb, rec):
        if bi == 0:
            bars[ep] = Progress(nb, f"{desc}epoch {ep + 1}/{epochs}", enabled=progress)
        act = "/".join(f"{100 * a:.2f}" for a in rec["active"])
        bars[ep].update(1, loss=rec["loss"], active_pct=act, bwd_ms=1e3 * rec["bwd_time"])

    def on_epoch(ep, hist):
        if ep in bars:
            bars[ep].close()
        msg = f"{desc}epoch {ep + 1}: train acc {100 * hist['train_acc'][-1]:.2f}%"
        if hist["test_acc"]:
            msg += f", test acc {100 * hist['test_acc'][-1]:.2f}%"
        msg += f" ({hist['epoch_time'][-1]:.0f} s)"
        print(msg, file=sys.stderr, flush=True)

    hist = train(params, tr, ytr, cfg, backward_mode=backward_mode, epochs=epochs, seed=seed,
                 test=(te, yte) if len(te) else None, on_batch=on_batch, on_epoch=on_epoch)
    return params, hist


def plot_curves(histories, path, title=""):
    """Loss, active fraction per hidden layer and test accuracy, one line per history.

    ``histories`` maps a label to a history dict from :func:`spikegate.golden.ssgd.train`.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for label, h in histories.items():
        axes[0].plot(h["loss"], label=label, lw=0.8)
        act = np.asarray(h["active"]) * 100
        for li in range(act.shape[1] if act.ndim == 2 else 0):
            axes[1].plot(act[:, li], label=f"{label} layer {li + 1}", lw=0.8)
        if h["test_acc"]:
            ep = np.arange(1, len(h["test_acc"]) + 1)
            axes[2].plot(ep, 100 * np.asarray(h["test_acc"]), "o-", label=f"{label} test")
        ep = np.arange(1, len(h["train_acc"]) + 1)
        axes[2].plot(ep, 100 * np.asarray(h["train_acc"]), "x--", label=f"{label} train")
    axes[0].set(xlabel="gradient step", ylabel="cross-entropy", title="loss")
    axes[1].set(xlabel="gradient step", ylabel="active entries (%)",
                title="active fraction |V - V_th| < B_th")
    axes[2].set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic.replacing(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def _jsonable(h):
    return {k: (np.asarray(v).tolist() if isinstance(v, (list, np.ndarray)) else v)
            for k, v in h.items()}


def run(args):
    from spikegate.golden.ssgd import SSGDConfig
    defaults = _DIGITS_DEFAULTS if args.dataset == "digits" else _IDX_DEFAULTS
    epochs = defaults["epochs"] if args.epochs is None else args.epochs
    batch = defaults["batch_size"] if args.batch_size is None else args.batch_size
    lr = defaults["lr"] if args.lr is None else args.lr
    cfg = SSGDConfig(n_steps=args.steps, batch_size=batch, lr=lr, b_th=args.b_th)
    data = prepare_data(args.dataset, args.data, cfg.n_steps, args.limit_train,
                        args.limit_test)
    if len(data[0]) < batch:
        raise ValueError(f"{len(data[0])} training samples is fewer than one batch "
                         f"(--batch-size {batch})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    params, hist = train_run(data, args.hidden, cfg, args.backward, epochs, args.seed,
                             progress=not args.no_progress)
    elapsed = time.perf_counter() - t0
    with atomic.replacing(out / "params.npz") as tmp:
        np.savez(tmp, **{f"w{i}": w for i, w in enumerate(params)})
    summary = {
        "dataset": args.dataset, "backward": args.backward, "epochs": epochs,
        "hidden": args.hidden, "config": {k: v for k, v in cfg.__dict__.items()},
        "seed": args.seed, "elapsed_s": elapsed, "history": _jsonable(hist),
    }
    atomic.write_text(out / "history.json", json.dumps(summary, indent=1, default=float))
    plot_curves({args.backward: hist}, out / "curves.png",
                f"{args.dataset}, {args.backward} backward, hidden {args.hidden}")
    act = np.mean(np.asarray(hist["active"]), axis=0) * 100
    test = f"{100 * hist['test_acc'][-1]:.2f}%" if hist["test_acc"] else "n/a"
    print(f"ssgd {args.backward} on {args.dataset}: test accuracy {test}, train accuracy "
          f"{100 * hist['train_acc'][-1]:.2f}%, active entries per hidden layer "
          f"{', '.join(f'{a:.2f}%' for a in act)}, mean backward "
          f"{1e3 * np.mean(hist['bwd_time']):.1f} ms/batch, {elapsed:.0f} s; "
          f"wrote {os.fspath(out)}/{{history.json,params.npz,curves.png}}")
    return 0
