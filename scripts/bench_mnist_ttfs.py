"""MNIST accuracy of TTFS model files trained with a validation split (issue 22, item 4).

For every model file given (written by ``spikegate train ttfs --dataset mnist --val N``),
prints one table row and writes ``--json``: the network and its weight count, the training
settings, the validation curve (float and 8-bit accuracy per epoch on the held-out training
images; the epoch kept is the one with the best 8-bit validation accuracy) and, for the kept
weights, the test split's figures: float and 8-bit discrete accuracy, the fraction of each
layer's weights looked up and the spikes to the decision (means over the 10,000 images).

The test accuracy printed is the one ``train ttfs`` measured once, at the end of training
(its training info); this script evaluates the test split again only for the lookups and
spikes and checks that the 8-bit accuracy is the same (it is deterministic). A model file
written by ``--checkpoint`` before training ended (no test figures in its info) is
evaluated here, once.

Targets (issue 22): ECP5-85F (at most about 426k weights) >= 97.5 % 8-bit; UP5K (784-166-10
on 32 steps of 1/8) >= 96 % 8-bit.

Run: ``python -m spikegate.scripts.bench_mnist_ttfs --data DIR MODEL.npz ... --json out.json``.
"""

import argparse
import json
import sys
from pathlib import Path

from spikegate.golden import atomic
from spikegate.golden.data import load_dataset
from spikegate.golden.model_file import load_model

from .args import existing_dir, existing_file
from .eval_ttfs import evaluate

__all__ = ["main", "model_row"]

#: Largest 8-bit weight count that fits an ECP5-85F on chip (issue 22).
ECP5_85F_WEIGHTS = 426_000
SETTINGS = ("epochs", "batch_size", "lr", "lr_decay", "dropout", "shift", "rotate", "scale",
            "late_target",
            "silent_cost", "softmax_scale", "grid_steps", "grid_dt")


def model_row(path, ds):
    """The JSON-able figures of model file ``path`` on data set ``ds`` (see the module
    docstring)."""
    model = load_model(path)
    info = model.training or {}
    val = info.get("validation")
    curve = val["curve"] if val else info.get("validation_curve", [])
    if not curve:
        raise ValueError(f"{path}: no validation curve in its training info; train it with "
                         f"'spikegate train ttfs --val N'")
    summary, _ = evaluate(model, ds.x_test, ds.y_test)
    if "discrete_accuracy" in info and info["discrete_accuracy"] != summary["discrete_accuracy"]:
        raise ValueError(f"{path}: 8-bit test accuracy {summary['discrete_accuracy']} differs "
                         f"from the one measured at the end of training, "
                         f"{info['discrete_accuracy']}")
    best = max(curve, key=lambda r: (r["discrete_accuracy"], -r["epoch"]))
    kept = val["epochs_kept"] if val else info.get("epoch_kept", curve[-1]["epoch"])
    row_kept = next(r for r in curve if r["epoch"] == kept)
    cfg = info.get("config", {})
    return {
        "file": str(path),
        "sizes": [int(s) for s in model.sizes],
        "weights": int(sum(w.size for w in model.int_weights)),
        "settings": {k: cfg.get(k) for k in SETTINGS},
        "encoding": model.encoding.to_dict(),
        "train_samples": info.get("train_samples"),
        "validation_samples": val["samples"] if val else None,
        "validation_seed": val["seed"] if val else None,
        "epochs_done": len(curve),
        "epoch_kept": kept,
        "best_validation_epoch": best["epoch"],
        "validation_kept": {k: row_kept[k] for k in ("float_accuracy", "discrete_accuracy")},
        "validation_curve": curve,
        "seconds_per_epoch": info.get("seconds_per_epoch"),
        "test": {
            "float_accuracy": info.get("float_accuracy", summary["float_accuracy"]),
            "discrete_accuracy": summary["discrete_accuracy"],
            "no_decision": summary["no_decision"],
            "lookup_fraction": [s["mean"] for s in summary["lookup_fraction"]],
            "spikes_to_decision": summary["total_spikes"]["mean"],
            "timesteps_to_decision": summary["timesteps"]["mean"],
        },
    }


def _curve_summary(curve, every=5):
    pts = [r for r in curve if r["epoch"] % every == 0 or r["epoch"] == curve[-1]["epoch"]]
    return ", ".join(f"{r['epoch']}: {100 * r['discrete_accuracy']:.2f}" for r in pts)


def format_table(rows):
    head = ("network", "weights", "settings", "val 8-bit (float) at kept epoch",
            "test float", "test 8-bit", "lookups per layer", "spikes to decision", "s/epoch")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        s = r["settings"]
        spe = r["seconds_per_epoch"]
        lines.append("| " + " | ".join([
            "-".join(map(str, r["sizes"])) + f" ({Path(r['file']).name})",
            f"{r['weights'] / 1000:.0f}k" + (" (over 85F)" if r["weights"] > ECP5_85F_WEIGHTS else ""),
            f"{r['epochs_done']} ep, batch {s['batch_size']}, lr decay {s['lr_decay']}, dropout "
            f"{s['dropout']}, shift {s['shift'] or 0}"
            + (f", turn {s['rotate']:g} deg, scale {s['scale']:g}" if s["rotate"] or s["scale"] else "")
            + f", {s['grid_steps']} steps of {s['grid_dt']}",
            f"{100 * r['validation_kept']['discrete_accuracy']:.2f} % "
            f"({100 * r['validation_kept']['float_accuracy']:.2f} %), epoch {r['epoch_kept']}",
            f"{100 * r['test']['float_accuracy']:.2f} %",
            f"**{100 * r['test']['discrete_accuracy']:.2f} %**",
            " / ".join(f"{100 * v:.2f} %" for v in r["test"]["lookup_fraction"]),
            f"{r['test']['spikes_to_decision']:.1f}",
            f"{spe:.0f}" if spe else "-"]) + " |")
    lines.append("")
    for r in rows:
        lines.append(f"{Path(r['file']).name}: validation 8-bit % by epoch: "
                     + _curve_summary(r["validation_curve"]))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", type=existing_file, metavar="MODEL")
    p.add_argument("--data", type=existing_dir, default=None,
                   help="MNIST IDX directory (default: $SPIKEGATE_DATA)")
    p.add_argument("--json", type=Path, default=None, help="write the rows here as JSON")
    args = p.parse_args(argv)
    ds = load_dataset("mnist", args.data)
    rows = [model_row(m, ds) for m in args.models]
    print(format_table(rows))
    if args.json:
        atomic.write_text(args.json, json.dumps(rows, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
