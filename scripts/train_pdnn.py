"""``spikegate train pdnn``: train a PD network (sigma-delta spikes) and its MLP baseline.

Digits by default; MNIST / Fashion-MNIST from their IDX directory (``--data`` or
``SPIKEGATE_DATA``); ``--temporal`` reorders training and test sets by the greedy
nearest-neighbour walk (Temporal MNIST). Writes ``results.json`` and ``curves.png`` (accuracy
against epochs and against training GOps, as in the paper's Figure 5) to ``--out``.
"""

import json
import os
import time
from pathlib import Path

import numpy as np

from spikegate.golden.data import DATASETS, load_dataset
from spikegate.golden.pd_updates import ONLINE_RULES
from spikegate.golden.pdnn import MLP, PDNetwork, train_online
from spikegate.golden.progress import Progress
from spikegate.golden.temporal import smoothness, temporal_order

from spikegate.golden import atomic
from .args import (existing_dir, non_negative_float, non_negative_int, number_in, output_dir,
                   positive_float, positive_int, positive_ints)

__all__ = ["add_parser", "run", "prepare_data", "run_pair", "plot_curves"]


def add_parser(subparsers):
    p = subparsers.add_parser(
        "pdnn", help="PD network with sigma-delta spikes (O'Connor et al. 2018) and an MLP baseline",
        description=__doc__.split("\n\n")[0])
    p.add_argument("--data-set", default="digits", choices=DATASETS, help="data set (default: digits)")
    p.add_argument("--data", type=existing_dir, default=None, metavar="DIR",
                   help="IDX directory for mnist / fashion-mnist (default: $SPIKEGATE_DATA)")
    p.add_argument("--temporal", action="store_true",
                   help="reorder train and test sets so neighbouring samples are similar")
    p.add_argument("--smoothing-steps", type=positive_int, default=1000,
                   help="look-ahead buffer of the temporal reordering (default: 1000, as pdnn)")
    p.add_argument("--hidden", type=positive_ints, default="200",
                   help="hidden layer sizes, comma separated (default: 200)")
    p.add_argument("--epochs", type=positive_float, default=5.0, help="training epochs (default: 5)")
    p.add_argument("--lr", type=positive_float, default=0.01, help="SGD learning rate (default: 0.01)")
    p.add_argument("--kp", type=non_negative_float, default=0.1,
                   help="k_p (default: 0.1; > 0 for the past and future rules)")
    p.add_argument("--kd", type=non_negative_float, default=1.0, help="k_d (default: 1.0)")
    p.add_argument("--kp-back", type=non_negative_float, default=None,
                   help="k_p of the backward (error) coders (default: --kp)")
    p.add_argument("--kd-back", type=non_negative_float, default=None,
                   help="k_d of the backward coders (default: --kd); --kp-back 1 --kd-back 10 keeps "
                        "their decay and makes an error spike 10x smaller (README, 'Why a deep PD "
                        "network diverges')")
    p.add_argument("--rule", default="past", choices=ONLINE_RULES, help="weight-update rule (default: past)")
    p.add_argument("--no-adapt", action="store_true", help="keep k_beta fixed")
    p.add_argument("--adaptation-rate", type=number_in("[0, 1]"), default=1e-3,
                   help="k_beta adaptation rate (default: 1e-3)")
    p.add_argument("--no-baseline", action="store_true", help="skip the MLP baseline")
    p.add_argument("--evals-per-epoch", type=positive_int, default=2,
                   help="evaluation points per epoch (default: 2)")
    p.add_argument("--train-limit", type=positive_int, default=None,
                   help="use the first N training samples")
    p.add_argument("--test-limit", type=positive_int, default=None, help="use the first N test samples")
    p.add_argument("--seed", type=non_negative_int, default=1234,
                   help="weight-initialization seed (default: 1234)")
    p.add_argument("--out", type=output_dir, default="pdnn_out",
                   help="output directory (default: ./pdnn_out)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


def prepare_data(name, root=None, *, temporal=False, smoothing_steps=1000, train_limit=None,
                 test_limit=None, cache_dir=None, quiet=False):
    """Load a data set, optionally limited and temporally reordered (order cached in ``cache_dir``)."""
    ds = load_dataset(name, root)
    xtr, ytr, xte, yte = ds.x_train, ds.y_train, ds.x_test, ds.y_test
    for label, lim in (("--train-limit", train_limit), ("--test-limit", test_limit)):
        if lim is not None and lim < 1:
            raise ValueError(f"{label} must be >= 1, not {lim!r}")
    if train_limit is not None:
        xtr, ytr = xtr[:train_limit], ytr[:train_limit]
    if test_limit is not None:
        xte, yte = xte[:test_limit], yte[:test_limit]
    if temporal:
        orders = []
        for split, x in (("train", xtr), ("test", xte)):
            path = None
            if cache_dir is not None:
                path = Path(cache_dir) / f"temporal_{name}_{split}_{len(x)}_{smoothing_steps}.npy"
            if path is not None and path.is_file():
                order = np.load(path)            # written atomically: complete or absent
            else:
                bar = Progress(len(x), f"temporal order ({split})", enabled=not quiet)
                last = [0]

                def tick(n, bar=bar, last=last):
                    bar.update(n - last[0])
                    last[0] = n
                order = temporal_order(x, smoothing_steps=smoothing_steps, progress=tick)
                bar.update(len(x) - last[0])
                bar.close()
                if path is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with atomic.replacing(path) as tmp:
                        np.save(tmp, order)
            orders.append(order)
        xtr, ytr = xtr[orders[0]], ytr[orders[0]]
        xte, yte = xte[orders[1]], yte[orders[1]]
    return xtr, ytr, xte, yte


def run_pair(data, sizes, *, epochs, lr=0.01, kp=0.1, kd=1.0, rule="past", adaptive=True,
             adaptation_rate=1e-3, baseline=True, evals_per_epoch=2, seed=1234, quiet=False, tag="",
             kp_back=None, kd_back=None):
    """Train the PD network (and the MLP baseline) on ``data``; returns a dict of results."""
    xtr, ytr, xte, yte = data
    runs = {}
    nets = [("pdnn", PDNetwork(sizes, seed=seed, rule=rule, kp=kp, kd=kd, kp_back=kp_back,
                               kd_back=kd_back, adaptive=adaptive, adaptation_rate=adaptation_rate))]
    if baseline:
        nets.insert(0, ("mlp", MLP(sizes, seed=seed)))
    for name, net in nets:
        def factory(total, desc, name=name):
            return Progress(total, desc, enabled=not quiet)
        t0 = time.perf_counter()
        res = train_online(net, xtr, ytr, xte, yte, epochs=epochs, lr=lr, evals_per_epoch=evals_per_epoch,
                           progress=factory, desc=f"{tag}{name}")
        runs[name] = {"history": res.history, "seconds_per_epoch": res.seconds_per_epoch,
                      "wall_seconds": time.perf_counter() - t0, "ops": res.ops,
                      "final": res.history[-1], "diverged": res.diverged}
        if name == "pdnn":
            runs[name]["k_beta"] = [[layer.fwd.k_beta, layer.back.k_beta] for layer in net.layers]
    return {"sizes": list(sizes), "epochs": epochs, "lr": lr, "kp": kp, "kd": kd,
            "kp_back": kp if kp_back is None else kp_back, "kd_back": kd if kd_back is None else kd_back,
            "rule": rule,
            "adaptive": adaptive, "adaptation_rate": adaptation_rate, "seed": seed,
            "train_smoothness": smoothness(xtr[:5000]), "runs": runs}


def plot_curves(results, path, title=""):
    """Accuracy against epochs and against training GOps (PNG), one line per run and data set."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for k, (label, res) in enumerate(results.items()):
        color = f"C{k}"
        for name, run in res["runs"].items():
            h = run["history"][1:]
            if not h:
                continue
            ep = [r["epoch"] for r in h]
            acc = [100 * r["test_acc"] for r in h]
            gops = [r["gops"] for r in h]
            style = "-" if name == "pdnn" else "--"
            axes[0].plot(ep, acc, style, color=color, marker=".", label=f"{label} {name.upper()}")
            axes[1].semilogx(gops, acc, style, color=color, marker=".", label=f"{label} {name.upper()}")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("test accuracy (%)")
    axes[1].set_xlabel("training GOps (PD: additions; MLP: multiply-adds)")
    for ax in axes:
        ax.grid(True, alpha=0.4)
    axes[1].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic.replacing(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def _table(results):
    lines = [f"{'data':<16}{'net':<6}{'train %':>9}{'test %':>9}{'noise-free %':>14}"
             f"{'kOps/sample':>13}{'fwd':>9}{'back':>8}{'update':>9}{'s/epoch':>9}"]
    for label, res in results.items():
        for name, run in res["runs"].items():
            f, o = run["final"], run["ops"]
            nf = f"{100 * f['test_acc_noise_free']:.2f}" if "test_acc_noise_free" in f else "-"
            lines.append(f"{label:<16}{name:<6}{100 * f['train_acc']:>9.2f}{100 * f['test_acc']:>9.2f}"
                         f"{nf:>14}{o['total_kops']:>13.1f}{o['fwd_kops']:>9.1f}{o['back_kops']:>8.1f}"
                         f"{o['update_kops']:>9.1f}{run['seconds_per_epoch']:>9.1f}")
            if run.get("diverged"):
                lines.append(f"  {name} diverged at sample {run['diverged']['sample']}: "
                             f"{run['diverged']['reason']} (deep networks: try --lr 0.003 or --adaptation-rate 0.01; "
                             f"README, 'Why a deep PD network diverges')")
    return "\n".join(lines)


def run(args):
    # The gains, rule and adaptation rate together, on a tiny network, before the data
    # (the past and future rules need kp > 0).
    PDNetwork([1, 1], rule=args.rule, kp=args.kp, kd=args.kd, kp_back=args.kp_back,
              kd_back=args.kd_back, adaptive=not args.no_adapt,
              adaptation_rate=args.adaptation_rate)
    out = Path(args.out)
    root = args.data if args.data is not None else os.environ.get("SPIKEGATE_DATA")
    data = prepare_data(args.data_set, root, temporal=args.temporal, smoothing_steps=args.smoothing_steps,
                        train_limit=args.train_limit, test_limit=args.test_limit, cache_dir=out,
                        quiet=args.quiet)
    sizes = [data[0].shape[1]] + args.hidden + [10]
    label = ("temporal-" if args.temporal else "") + args.data_set
    res = run_pair(data, sizes, epochs=args.epochs, lr=args.lr, kp=args.kp, kd=args.kd,
                   kp_back=args.kp_back, kd_back=args.kd_back, rule=args.rule,
                   adaptive=not args.no_adapt, adaptation_rate=args.adaptation_rate,
                   baseline=not args.no_baseline, evals_per_epoch=args.evals_per_epoch, seed=args.seed,
                   quiet=args.quiet, tag=f"{label} ")
    results = {label: res}
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out / "results.json", json.dumps(results, indent=1))
    plot_curves(results, out / "curves.png", title=f"{label} {'-'.join(map(str, sizes))}")
    print(_table(results))
    print(f"wrote {out / 'results.json'} and {out / 'curves.png'}")
    return 0
