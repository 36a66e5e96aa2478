"""``spikegate reproduce [pdnn|ssgd|ttfs|all]``: the three papers' headline tables at their own
settings, one table: the paper's number, ours and the difference, per row.

A benchmark: the full settings take hours on two cores (``--quick`` runs every row in seconds,
on the digits data set, at tiny sizes: it exercises the pipeline, its numbers are not the
papers'; CI runs it). Each paper's runs:

* ``pdnn`` -- O'Connor, Gavves, Reisser, Welling, "Temporally efficient deep learning with
  spikes", ICLR 2018, Appendix F: 784-200-10, online SGD (minibatch 1), lr 0.01, kp 0.1, kd 1,
  the past rule, 50 epochs, on MNIST and on Temporal MNIST (the greedy nearest-neighbour order
  of :mod:`spikegate.golden.temporal`, 1000-image buffer); the MLP baseline from the same
  initial weights; kOps per sample (forward, backward, update) as counted by
  :class:`spikegate.golden.pdnn.OpCounter`; the depth sweep (1-4 hidden layers of 200).
* ``ssgd`` -- Perez-Nieves & Goodman, "Sparse spiking gradient descent", NeurIPS 2021: the
  authors' Fashion-MNIST configuration (784-200-200-10 LIF, T = 100, batch 256, Adam 2e-4,
  B_th 0.2, 100 epochs: ``main.py``'s ``--nb_epochs`` default, which overrides
  ``config.py``'s 10, and the 23,400 losses (100 x 234 batches) stored with the runs their
  figure plots, ``plotting/results_data/RUN_FMNIST_FINAL/NB_HIDDEN200/{ORIG,S3GD}_seed1``,
  test accuracy 0.81851 / 0.82813 after the last epoch), trained twice from the same initial
  weights, dense and sparse backward (:mod:`spikegate.golden.ssgd`): test accuracy, the mean
  training loss of the last epoch against the authors' stored curve (known at epochs 10, 20,
  50 and 100), active fraction per layer (theirs: the stored run's training means),
  backward speed-up (our CPU, theirs a GPU) and memory kept for the backward pass.
* ``ttfs`` -- Mostafa, "Supervised learning based on temporal coding in spiking neural
  networks", IEEE TNNLS 2017, and its FPGA prototype: MNIST 784-600-10 with ``train ttfs``'s
  defaults (50 epochs), 6,000 training images held out as validation to choose the epoch
  kept; float and 8-bit accuracy, spikes and timesteps to the decision, the fraction of each
  layer's weights looked up.

Every run states its seed, writes its curves (PNG) and its weights (``OUT/<paper>/``), and the
whole table goes to ``OUT/reproduce.json`` and ``OUT/reproduce.md`` after each paper, so
``--resume`` re-uses the papers already done. The PD paper's twelve runs (days of CPU at the
full settings) are stored one by one as they finish (``OUT/pdnn/runs/``: the run's key, its
curve and operation counts in JSON, its weights in ``.npz``), and a run is re-used, not trained
again, while its settings and the sources it depends on (:data:`PD_CODE`, by hash) are the
same; the one-hidden-layer run of the depth sweep is the PD run itself. The accuracy rows'
note gives, beside our last evaluation, the best of the run's evaluations, which is what the
authors' code reports (``np.max``; chosen on their validation split, ours on the test set:
for comparison only). A choice made from data (the TTFS epoch kept)
uses a validation split, never the test set; the PD and SSGD runs make no choice (their
epochs are the papers') and report the last epoch. Where the paper's number is not known to
us the row says so instead of inventing one.
"""

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from spikegate.golden import atomic

from .args import existing_dir, output_dir, positive_int

__all__ = ["add_parser", "run", "PD_CODE", "pd_code_hash", "PAPERS", "SETTINGS",
           "SSGD_PAPER_LOSS", "settings_for", "table_lines", "ttfs_configs"]

#: Debian's ``dataset-fashion-mnist`` directory, ``--fashion-mnist``'s default.
FASHION_DEFAULT = "/usr/share/datasets/fashion-mnist"

PAPERS = {
    "pdnn": "O'Connor et al., ICLR 2018 (arXiv 1706.04159), Appendix F, Fig. 5",
    "ssgd": "Perez-Nieves & Goodman, NeurIPS 2021, Fig. 1-2 (GPU)",
    "ttfs": "Mostafa, IEEE TNNLS 2017; its FPGA prototype (784-600-10, 8-bit weights)",
}

#: The settings per paper: ``full`` (the paper's) and ``quick`` (seconds, digits, for CI).
SETTINGS = {
    "pdnn": {
        "full": dict(dataset="mnist", hidden=[200], epochs=50.0, lr=0.01, kp=0.1, kd=1.0,
                     rule="past", seed=1234, depths=[1, 2, 3, 4], depth_epochs=50.0,
                     smoothing_steps=1000, train_limit=None, test_limit=None),
        "quick": dict(dataset="digits", hidden=[16], epochs=1.0, lr=0.01, kp=0.1, kd=1.0,
                      rule="past", seed=1234, depths=[1, 2], depth_epochs=0.5,
                      smoothing_steps=100, train_limit=300, test_limit=100),
    },
    "ssgd": {
        "full": dict(dataset="fashion-mnist", hidden=[200, 200], steps=100, batch_size=256,
                     lr=2e-4, b_th=0.2, epochs=100, seed=0, limit_train=None, limit_test=None),
        "quick": dict(dataset="digits", hidden=[16, 16], steps=20, batch_size=64, lr=2e-3,
                      b_th=0.2, epochs=1, seed=0, limit_train=256, limit_test=100),
    },
    "ttfs": {
        "full": dict(dataset="mnist", hidden=[600], epochs=None, val=6000, seed=0),
        "quick": dict(dataset="digits", hidden=[16], epochs=2, val=100, seed=0),
    },
}

#: The papers' numbers (None: not known to us; the row says so). Accuracies in %.
PAPER_VALUES = {
    ("pdnn", "mnist mlp accuracy"): 98.25,
    ("pdnn", "mnist pd accuracy"): 98.36,
    ("pdnn", "temporal/shuffled pd kops"): 0.5,        # "about 2x fewer operations"
    ("ssgd", "dense accuracy"): 81.9,
    ("ssgd", "sparse accuracy"): 82.8,
    ("ssgd", "active fraction layer 1"): 1.06,          # the authors' stored S3GD_seed1 run,
    ("ssgd", "active fraction layer 2"): 0.87,          # count / (B T N), training mean
    ("ssgd", "memory saved"): 85.0,                     # "up to 85 % less"
    ("ttfs", "8-bit accuracy"): 97.0,
    ("ttfs", "spikes to decision"): 139.0,
    ("ttfs", "timesteps to decision"): 167.0,
    ("ttfs", "lookups layer 0"): 13.0,
    ("ttfs", "lookups layer 1"): 5.0,
}


#: The authors' stored SSGD training loss (mean cross-entropy of an epoch's batches), by epoch:
#: ``(sparse, dense)``, from the runs of :data:`PAPER_VALUES`' accuracies (None: not read).
SSGD_PAPER_LOSS = {10: (0.619, 0.621), 20: (0.508, None), 50: (0.387, None),
                   100: (0.284, 0.284)}


def add_parser(subparsers):
    p = subparsers.add_parser(
        "reproduce", help="the papers' headline tables at their own settings (hours; --quick: "
                          "seconds)", description=__doc__.split("\n\n")[0])
    p.add_argument("papers", nargs="?", default="all", choices=("pdnn", "ssgd", "ttfs", "all"))
    p.add_argument("--mnist", type=existing_dir, default=None, metavar="DIR",
                   help="MNIST IDX directory (default: $SPIKEGATE_DATA)")
    p.add_argument("--fashion-mnist", type=existing_dir, default=None, metavar="DIR",
                   help="Fashion-MNIST IDX directory (default: the Debian package's "
                        f"{FASHION_DEFAULT} where it exists, else $SPIKEGATE_DATA)")
    p.add_argument("--out", type=output_dir, default="reproduce", metavar="DIR",
                   help="output directory (default: ./reproduce)")
    p.add_argument("--epochs", type=positive_int, default=None, metavar="N",
                   help="train every run N epochs instead of the paper's (the table says so; "
                        "for a first look at full size in less time)")
    p.add_argument("--quick", action="store_true",
                   help="seconds-sized runs on digits (checks the pipeline, not the papers)")
    p.add_argument("--resume", action="store_true",
                   help="keep the papers already in OUT/reproduce.json")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


def _row(paper, key, quantity, ours, unit="%", note=""):
    """One table row: the paper's value (or None), ours, the difference."""
    ref = PAPER_VALUES.get((paper, key))
    ours = None if ours is None else float(ours)
    diff = None if ref is None or ours is None or not np.isfinite(ours) else ours - ref
    return {"paper": paper, "key": key, "quantity": quantity, "paper_value": ref,
            "ours": ours, "diff": diff, "unit": unit, "note": note}


def _data_root(name, args):
    if name == "mnist":
        return args.mnist or os.environ.get("SPIKEGATE_DATA")
    if name == "fashion-mnist":
        # Not $SPIKEGATE_DATA: in a full run that is MNIST's directory (same file names).
        if args.fashion_mnist is None and Path(FASHION_DEFAULT).is_dir():
            return FASHION_DEFAULT
        return args.fashion_mnist
    return None


# --- PD networks --------------------------------------------------------------------------

#: The sources a PD run's numbers depend on (``golden/`` and the data preparation): a stored
#: run (:func:`_pd_train`) is re-used only while they are byte for byte the same.
PD_CODE = ("golden/pdnn.py", "golden/pd_updates.py", "golden/sigma_delta.py",
           "golden/temporal.py", "golden/data.py", "scripts/train_pdnn.py")


def pd_code_hash():
    """SHA-256 (first 16 hex digits) of the files of :data:`PD_CODE`."""
    import hashlib
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for name in PD_CODE:
        h.update(name.encode() + b"\0" + (root / name).read_bytes())
    return h.hexdigest()[:16]


def _pd_key(net_cls, sizes, s, epochs, label, kw):
    """Everything a PD run's result depends on, JSON-able (the store's key)."""
    return {"net": net_cls.__name__, "sizes": list(map(int, sizes)), "epochs": float(epochs),
            "lr": s["lr"], "seed": s["seed"], "dataset": s["dataset"], "order": label,
            "smoothing_steps": s["smoothing_steps"], "train_limit": s["train_limit"],
            "test_limit": s["test_limit"], "evals_per_epoch": 2,
            "kw": {k: v for k, v in sorted(kw.items())}, "code": pd_code_hash()}


def _pd_stored(store, key):
    """((result dict, weights) of the run stored in ``store`` under ``key``, or None; the
    run's two paths)."""
    import hashlib
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    paths = store / f"{name}.json", store / f"{name}.npz"
    if paths[0].is_file() and paths[1].is_file():
        rec = json.loads(paths[0].read_text())
        if rec.get("key") == key:
            with np.load(paths[1]) as z:
                return (rec["result"], [z[f"w{i}"] for i in range(len(z.files))]), paths
    return None, paths


def _pd_train(net_cls, sizes, data, s, *, epochs, quiet, desc, label, store=None, **kw):
    """Train one PD or MLP run, or re-use the same run stored in ``store`` (a directory: one
    JSON and one ``.npz`` of weights per run, named by a hash of :func:`_pd_key`; a run is
    stored once it has finished, so an interrupted reproduction loses only the run in
    progress). Returns (result, weights)."""
    from spikegate.golden.pdnn import train_online
    from spikegate.golden.progress import Progress
    key = _pd_key(net_cls, sizes, s, epochs, label, kw)
    if store is not None:
        found, paths = _pd_stored(store, key)
        if found is not None:
            print(f"{desc}: re-using the stored run {paths[0]}", file=sys.stderr)
            return found
    net = net_cls(sizes, seed=s["seed"], **kw)
    xtr, ytr, xte, yte = data
    t0 = time.perf_counter()
    res = train_online(net, xtr, ytr, xte, yte, epochs=epochs, lr=s["lr"], evals_per_epoch=2,
                       progress=lambda total, d: Progress(total, d, enabled=not quiet),
                       desc=desc)
    weights = ([l.w for l in net.layers] if hasattr(net, "layers") else list(net.w))
    result = {"history": res.history, "ops": res.ops, "final": res.history[-1],
              "diverged": res.diverged, "seconds": time.perf_counter() - t0}
    if store is not None:
        store.mkdir(parents=True, exist_ok=True)
        with atomic.replacing(paths[1]) as tmp:
            np.savez(tmp, **{f"w{i}": w for i, w in enumerate(weights)})
        atomic.write_text(paths[0], json.dumps({"desc": desc, "key": key, "result": result},
                                               indent=1, default=float))
    return result, weights


def reproduce_pdnn(s, root, out, quiet):
    """The PD paper's rows; writes ``out/curves.png`` and the weights of every run."""
    from spikegate.golden.pdnn import MLP, PDNetwork
    from .train_pdnn import plot_curves, prepare_data
    out.mkdir(parents=True, exist_ok=True)
    sets = {}
    for label, temporal in (("shuffled", False), ("temporal", True)):
        sets[label] = prepare_data(s["dataset"], root, temporal=temporal,
                                   smoothing_steps=s["smoothing_steps"],
                                   train_limit=s["train_limit"], test_limit=s["test_limit"],
                                   cache_dir=out, quiet=quiet)
    n_in = sets["shuffled"][0].shape[1]
    sizes = [n_in] + list(s["hidden"]) + [10]
    runs, weights = {}, {}
    pd_kw = dict(rule=s["rule"], kp=s["kp"], kd=s["kd"])
    for label, data in sets.items():
        for name, cls, kw in (("mlp", MLP, {}), ("pdnn", PDNetwork, pd_kw)):
            runs[f"{label}/{name}"], w = _pd_train(cls, sizes, data, s, epochs=s["epochs"],
                                                   quiet=quiet, desc=f"{label} {name}",
                                                   label=label, store=out / "runs", **kw)
            weights.update({f"{label}_{name}_w{i}": a for i, a in enumerate(w)})
    for depth in s["depths"]:
        for label, data in sets.items():
            dsizes = [n_in] + [s["hidden"][0]] * depth + [10]
            runs[f"{label}/depth{depth}"], w = _pd_train(
                PDNetwork, dsizes, data, s, epochs=s["depth_epochs"], quiet=quiet,
                desc=f"{label} depth {depth}", label=label, store=out / "runs", **pd_kw)
            weights.update({f"{label}_depth{depth}_w{i}": a for i, a in enumerate(w)})
    with atomic.replacing(out / "weights.npz") as tmp:
        np.savez(tmp, **weights)
    plot_curves({label: {"runs": {n.split("/")[1]: r for n, r in runs.items()
                                  if n.startswith(label + "/") and "depth" not in n}}
                 for label in sets}, out / "curves.png",
                title=f"{'-'.join(map(str, sizes))}, online SGD, {s['rule']} rule")

    def acc(r):
        return 100 * r["final"]["test_acc"]

    def best_note(r):
        # The authors' pdnn reports the best of its evaluations (np.max over the run); ours is
        # the last, and the best is shown beside it (a choice made on the test set: for
        # comparison only).
        accs = [h["test_acc"] for h in r["history"] if np.isfinite(h["test_acc"])]
        return (f"best of its {len(accs)} evaluations (the authors' np.max): "
                f"{100 * max(accs):.2f} %" if accs else "")

    name = {"shuffled": s["dataset"], "temporal": f"temporal {s['dataset']}"}
    rows = []
    for label in sets:
        for net in ("mlp", "pdnn"):
            key = f"{'mnist' if label == 'shuffled' else label} {net.replace('pdnn', 'pd')} accuracy"
            rows.append(_row("pdnn", key, f"{name[label]}, {net.upper()} test accuracy "
                             f"({s['epochs']:g} epochs)", acc(runs[f"{label}/{net}"]),
                             note=best_note(runs[f"{label}/{net}"])))
    for label in sets:
        for net in ("mlp", "pdnn"):
            o = runs[f"{label}/{net}"]["ops"]
            rows.append(_row("pdnn", f"{label} {net} kops", f"{name[label]}, {net.upper()} kOps "
                             f"per sample: forward {o['fwd_kops']:.1f}, backward "
                             f"{o['back_kops']:.1f}, update {o['update_kops']:.1f}",
                             o["total_kops"], unit="kOps"))
    ratio = (runs["temporal/pdnn"]["ops"]["total_kops"]
             / runs["shuffled/pdnn"]["ops"]["total_kops"])
    rows.append(_row("pdnn", "temporal/shuffled pd kops", f"PD kOps per sample, {name['temporal']}"
                     f" / {name['shuffled']}", ratio, unit="x"))
    for depth in s["depths"]:
        for label in sets:
            r = runs[f"{label}/depth{depth}"]
            note = (f"DIVERGED at sample {r['diverged'].get('sample')}: "
                    f"{r['diverged'].get('reason')}" if r["diverged"] else "")
            rows.append(_row("pdnn", f"{label} depth {depth}", f"{name[label]}, PD with {depth} hidden "
                             f"layer{'s' if depth > 1 else ''} ({s['depth_epochs']:g} epochs)",
                             acc(r), note=note))
    return rows, {k: {"final": r["final"], "ops": r["ops"], "diverged": r["diverged"],
                      "seconds": r["seconds"]} for k, r in runs.items()}


# --- SSGD ----------------------------------------------------------------------------------

def _reusable_ssgd(path, s):
    """The finished ``bench_ssgd`` run in ``path`` if it was made at the settings ``s``
    (re-checking the rows without training again), else None."""
    try:
        r = json.loads(Path(path).read_text())
        a = r["args"]
    except (OSError, ValueError, KeyError):
        return None
    same = (a.get("dataset") == s["dataset"] and a.get("epochs") == s["epochs"]
            and list(a.get("hidden", ())) == list(s["hidden"]) and a.get("steps") == s["steps"]
            and a.get("batch_size") == s["batch_size"] and a.get("lr") == s["lr"]
            and a.get("b_th") == s["b_th"] and a.get("seed") == s["seed"]
            and a.get("limit_train") == s["limit_train"]
            and a.get("limit_test") == s["limit_test"])
    if same:
        print(f"reproduce ssgd: re-using the finished run {path} (same settings)",
              file=sys.stderr)
    return r if same else None


def reproduce_ssgd(s, root, out, quiet):
    """The SSGD paper's rows, by :mod:`spikegate.scripts.bench_ssgd` at the settings ``s``."""
    from .bench_ssgd import main as bench
    out.mkdir(parents=True, exist_ok=True)
    argv = ["--dataset", s["dataset"], "--epochs", str(s["epochs"]), "--hidden",
            *map(str, s["hidden"]), "--steps", str(s["steps"]), "--batch-size",
            str(s["batch_size"]), "--lr", str(s["lr"]), "--b-th", str(s["b_th"]), "--seed",
            str(s["seed"]), "--json", str(out / "bench_ssgd.json"), "--png",
            str(out / "curves.png"), "--params", str(out / "weights.npz"),
            "--ab-batches", "2" if s["limit_train"] else "8"]
    if root:
        argv += ["--data", str(root)]
    for flag, key in (("--limit-train", "limit_train"), ("--limit-test", "limit_test")):
        if s[key]:
            argv += [flag, str(s[key])]
    if quiet:
        argv.append("--no-progress")
    r = _reusable_ssgd(out / "bench_ssgd.json", s)
    if r is None:
        code = bench(argv)
        if code:
            raise RuntimeError(f"bench_ssgd exited with {code}")
        r = json.loads((out / "bench_ssgd.json").read_text())
    d, sp = r["dense"], r["sparse"]
    act = np.mean(np.asarray(sp["active"]), axis=0) * 100
    med = {m: {k: float(np.median(v)) for k, v in r["ab"][m].items()} for m in r["ab"]}
    batches = len(sp["loss"]) // s["epochs"]
    ep_loss = {m: float(np.mean(r["loss"][-batches:])) for m, r in (("sparse", sp), ("dense", d))}
    ref_loss = SSGD_PAPER_LOSS.get(s["epochs"], (None, None))
    note = "" if s["epochs"] == 100 else "the paper's runs: 100 epochs"
    rows = [
        _row("ssgd", "dense accuracy", f"{s['dataset']}, dense backward, test accuracy "
             f"({s['epochs']} epochs)", 100 * d["test_acc"][-1], note=note),
        _row("ssgd", "sparse accuracy", f"{s['dataset']}, sparse backward, test accuracy",
             100 * sp["test_acc"][-1], note=note),
    ]
    for mode, ref in zip(("sparse", "dense"), ref_loss):
        rows.append({**_row("ssgd", f"{mode} loss", f"{mode} backward, mean training loss of "
                            f"epoch {s['epochs']}", ep_loss[mode], unit=""),
                     **({} if ref is None else {"paper_value": ref,
                                                 "diff": ep_loss[mode] - ref}),
                     "note": "the authors' stored curve at this epoch"
                     if ref is not None else "the authors' curve not read at this epoch"})
    for i, a in enumerate(act):
        rows.append(_row("ssgd", f"active fraction layer {i + 1}", f"active entries, hidden "
                         f"layer {i + 1} (training mean)", a,
                         note="" if s["epochs"] == 100 else "theirs: mean over 100 epochs"))
    rows += [
        _row("ssgd", "backward speed-up", "backward of all hidden layers, dense / sparse time "
             "(A/B median, CPU)", med["dense"]["bwd"] / med["sparse"]["bwd"], unit="x",
             note="paper: 6x-40x on a GPU (not like for like)"),
        _row("ssgd", "memory saved", "memory kept for the backward pass, saved (A/B median)",
             100 * (1 - med["sparse"]["saved"] / med["dense"]["saved"]),
             note="paper: 'up to 85 %'"),
    ]
    return rows, {"dense_final": d["test_acc"][-1], "sparse_final": sp["test_acc"][-1]}


# --- TTFS ----------------------------------------------------------------------------------

def _plot_validation(curve, path, title=""):
    """Loss and validation accuracy (float, 8-bit) against epochs (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ep = [r["epoch"] for r in curve]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(ep, [r["loss"] for r in curve], marker=".")
    a.set_xlabel("epoch")
    a.set_ylabel("training loss")
    for key, label in (("float_accuracy", "float"), ("discrete_accuracy", "8-bit")):
        b.plot(ep, [100 * r[key] for r in curve], marker=".", label=label)
    b.set_xlabel("epoch")
    b.set_ylabel("validation accuracy (%)")
    b.legend()
    for ax in (a, b):
        ax.grid(True, alpha=0.4)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic.replacing(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def ttfs_configs(s):
    """``train ttfs``'s configs for the settings ``s`` (``epochs`` None: the data set's
    default, 50 for MNIST)."""
    from .train_ttfs import configs_for
    train_kw = {"seed": s["seed"]}
    if s["epochs"] is not None:
        train_kw["epochs"] = s["epochs"]
    return configs_for(s["dataset"], **train_kw)


def reproduce_ttfs(s, root, out, quiet):
    """The TTFS paper's rows: ``train ttfs``'s defaults with a validation split."""
    from spikegate.golden.data import load_dataset
    from spikegate.golden.model_file import save_model
    from .train_ttfs import train_model
    out.mkdir(parents=True, exist_ok=True)
    ds = load_dataset(s["dataset"], root)
    enc, cfg, discrete = ttfs_configs(s)
    model, summary, _ = train_model(ds, s["hidden"], enc, cfg, discrete=discrete, quiet=quiet,
                                    val=s["val"], val_seed=s["seed"])
    save_model(out / "model.npz", model)
    _plot_validation(model.training["validation"]["curve"], out / "curves.png",
                          title=f"TTFS {'-'.join(map(str, model.sizes))} on {s['dataset']}")
    lk = [100 * v["mean"] for v in summary["lookup_fraction"]]
    rows = [
        _row("ttfs", "float accuracy", f"{'-'.join(map(str, model.sizes))}, float test accuracy",
             100 * summary["float_accuracy"],
             note="the paper's float figure is not in this repository"),
        _row("ttfs", "8-bit accuracy", "8-bit test accuracy (prototype: 8-bit weights)",
             100 * summary["discrete_accuracy"]),
        _row("ttfs", "spikes to decision", "spikes to the decision (mean)",
             summary["total_spikes"]["mean"], unit="spikes"),
        _row("ttfs", "timesteps to decision", f"timesteps to the decision (mean; our grid "
             f"{model.discrete.timesteps} x {model.discrete.dt:g})", summary["timesteps"]["mean"],
             unit="steps", note="different time grids: the prototype's step is not ours"),
    ]
    for l, v in enumerate(lk):
        rows.append(_row("ttfs", f"lookups layer {l}", f"weights looked up, layer {l}->{l + 1}",
                         v))
    return rows, {"best_epoch": model.training["validation"].get("best_epoch"),
                  "seed": s["seed"]}


def settings_for(paper, kind, epochs=None):
    """``SETTINGS[paper][kind]``, every run's epochs set to ``epochs`` if given."""
    s = dict(SETTINGS[paper][kind])
    if epochs is not None:
        for key in ("epochs", "depth_epochs"):
            if key in s:
                s[key] = float(epochs) if paper == "pdnn" else int(epochs)
    return s


_RUNNERS = {"pdnn": reproduce_pdnn, "ssgd": reproduce_ssgd, "ttfs": reproduce_ttfs}


def table_lines(report):
    """The Markdown table of every paper in ``report``."""
    lines = ["| paper | quantity | paper | ours | ours - paper | note |", "|---|---|---|---|---|---|"]

    def num(v, unit):
        if v is None:
            return "not known to us"
        digits = 3 if not unit else 2           # a loss: three decimals
        return f"{v:.{digits}f} {unit}".strip()

    for paper, r in report["papers"].items():
        for row in r["rows"]:
            digits = 3 if not row["unit"] else 2
            diff = "" if row["diff"] is None else f"{row['diff']:+.{digits}f}"
            lines.append(f"| {paper} | {row['quantity']} | {num(row['paper_value'], row['unit'])} "
                         f"| {num(row['ours'], row['unit'])} | {diff} | {row['note']} |")
    return lines


def run(args):
    papers = list(_RUNNERS) if args.papers == "all" else [args.papers]
    kind = "quick" if args.quick else "full"
    out = Path(args.out)
    epochs = getattr(args, "epochs", None)
    report = {"settings": kind, "epochs": epochs, "papers": {}}
    if args.resume and (out / "reproduce.json").is_file():
        old = json.loads((out / "reproduce.json").read_text())
        if (old.get("settings"), old.get("epochs")) != (kind, epochs):
            raise ValueError(f"--resume: {out / 'reproduce.json'} holds {old.get('settings')!r} "
                             f"runs with --epochs {old.get('epochs')}, not {kind!r} with "
                             f"--epochs {epochs}")
        report = old
    # Refuse missing data before hours of work.
    from spikegate.golden.data import load_dataset
    for paper in papers:
        name = SETTINGS[paper][kind]["dataset"]
        if name != "digits":
            load_dataset(name, _data_root(name, args))     # verifies the files; raises clearly
    out.mkdir(parents=True, exist_ok=True)
    for paper in papers:
        if paper in report["papers"]:
            continue
        s = settings_for(paper, kind, epochs)
        t0 = time.perf_counter()
        rows, extra = _RUNNERS[paper](s, _data_root(s["dataset"], args), out / paper, args.quiet)
        report["papers"][paper] = {"reference": PAPERS[paper], "settings": s, "rows": rows,
                                   "extra": extra, "seconds": time.perf_counter() - t0}
        atomic.write_text(out / "reproduce.json", json.dumps(report, indent=1, default=str))
        md = [f"# Reproduction ({kind} settings"
              + (f", every run {epochs} epochs instead of the paper's" if epochs else "") + ")",
              ""] + table_lines(report)
        atomic.write_text(out / "reproduce.md", "\n".join(md) + "\n")
    print("\n".join(table_lines(report)))
    print(f"wrote {out / 'reproduce.json'} and {out / 'reproduce.md'}", file=sys.stderr)
    return 0
