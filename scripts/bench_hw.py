"""Hardware benchmark of the TTFS classifier (simulated Verilog, Verilator): cycles per
classification against the physical bound, lookups against golden, scaling, learning.

Prints tables (targets, not tests):

1. Digits test set (all 360 images), lanes 4 and 8 (``--lanes``: lane settings separated by
   ``;``, each one number up to 64 or one per weight layer, e.g. ``4;8;8,10``), the benchmark
   network (hidden 64): cycles per classification against the bound ``weights looked up /
   lanes`` (target <= 1.25x, issue 22), with the breakdown: row-pass cycles (each spike's row, ``ceil(n / lanes)``
   cycles per layer), scan cycles (fire checks with no input), and the rest (control,
   pipeline latency, image start and end; layers overlap within a step, so the parts can
   add up to more than the total). Every image is compared with the golden model (class,
   decision step, spikes and lookups per layer, every neuron's spike step).
2. MNIST sizes: the same parameterized design elaborated at 784-600-10 (Verilog size and
   time) and simulated at 784-128-10 on MNIST-like images against golden.
3. On-chip learning: cycles per training image (forward + learning) on digits.
4. With ``--mnist-model FILE``: table 1 for a trained MNIST model on the first
   ``--mnist-images`` MNIST test images (``--data`` or ``$SPIKEGATE_DATA``), at each of
   ``--mnist-lanes`` (lane settings separated by ``;``, each one number or one per weight
   layer, e.g. ``8;32,5``) and each ``--timing``.

The network is ``--model FILE`` (a ``spikegate train ttfs`` model file), else the digits
benchmark network of ``bench_ttfs`` (trained here, cached in ``--out``).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from spikegate.golden.data import load_dataset
from spikegate.golden.model_file import load_model, save_model
from spikegate.golden.sign_backprop import random_discrete_network
from spikegate.golden.ttfs_discrete import NO_SPIKE, simulate
from spikegate.sim.tools import SIMULATORS
from spikegate.sim.ttfs_run import first_mismatch, simulate_hardware

from .args import BadArgument, existing_dir, existing_file, lanes, output_dir, positive_int


def table(rows, cols):
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
    line = " | ".join(c.ljust(w) for c, w in zip(cols, widths))
    out = [line, "-|-".join("-" * w for w in widths)]
    out += [" | ".join(str(r[c]).ljust(w) for c, w in zip(cols, widths)) for r in rows]
    return "\n".join(out)


def benchmark_network(args):
    if args.model:
        return load_model(args.model)
    path = Path(args.out) / "digits-64.npz"
    if path.is_file():
        return load_model(path)
    from .train_ttfs import configs_for, train_model
    enc, cfg, discrete = configs_for("digits")
    print("training the digits benchmark network (spikegate train ttfs defaults, hidden 64) ...",
          file=sys.stderr)
    model, _, _ = train_model(load_dataset("digits"), [64], enc, cfg, quiet=True,
                              discrete=discrete)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(path, model)
    return model


def timing_preset(text):
    """``--timing`` item: a level 0-5 (:meth:`Timing.preset`) or a board name."""
    from spikegate.boards.timing import BOARD_NAMES, board_timing
    from spikegate.hdl.timing import PRESET_LEVELS, Timing
    text = text.strip()
    if text in BOARD_NAMES:
        return text, board_timing(text)
    if text.isdigit() and int(text) in PRESET_LEVELS:
        return text, Timing.preset(int(text))
    raise BadArgument(f"must be timing levels {PRESET_LEVELS[0]}-{PRESET_LEVELS[-1]} or board "
                      f"names ({', '.join(BOARD_NAMES)}), comma separated, not {text!r}")


def timing_list(text):
    return [timing_preset(t) for t in str(text).split(",")]


def lanes_settings(text):
    """``--mnist-lanes``: lane settings separated by ``;`` (each :func:`~.args.lanes`)."""
    return [lanes(t) for t in str(text).split(";")]


def cycles_table(model, steps, lanes_list, sim, timings=(("0", None),)):
    net = model.network()
    g = simulate(net, steps)
    rows = []
    for lanes, (name, timing) in [(a, b) for b in timings for a in lanes_list]:
        t0 = time.perf_counter()
        hw = simulate_hardware(net, steps, lanes, trace=True, sim=sim, timing=timing)
        secs = time.perf_counter() - t0
        bad = first_mismatch(hw, g)
        per = [lanes] * len(net.weights) if isinstance(lanes, int) else list(lanes)
        groups = [-(-n // L) for n, L in zip(net.sizes[1:], per)]
        row_cycles = sum(hw.spikes[:, l] * groups[l] for l in range(len(groups)))
        bound = sum(g.lookups[:, l] / per[l] for l in range(len(per)))
        rows.append({
            "lanes": lanes, "timing": name, "images": len(steps),
            "agree": "100 %" if bad is None else f"NO: {bad}",
            "cycles": f"{hw.cycles.mean():.0f}",
            "bound": f"{bound.mean():.0f}",
            "ratio": f"{hw.cycles.sum() / bound.sum():.2f}",
            "row passes": f"{row_cycles.mean():.0f}",
            "scans": f"{hw.scan_cycles.mean():.0f}",
            "rest": f"{(hw.cycles - row_cycles - hw.scan_cycles).mean():.0f}",
            "lookups/layer": "/".join(f"{x:.0f}" for x in hw.lookups.mean(0)),
            "sim s": f"{secs:.0f}",
        })
        if bad is not None:
            print(f"MISMATCH lanes {lanes} timing {name}: {bad}", file=sys.stderr)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(prog="bench_hw", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=existing_file, default=None,
                   help="TTFS model file (default: train digits-64)")
    p.add_argument("--out", type=output_dir, default="bench-out",
                   help="cache directory (default: bench-out)")
    p.add_argument("--lanes", type=lanes_settings, default="4;8",
                   help="lane settings separated by ';', each one number or one per weight "
                        "layer (e.g. 4;8;8,10; default: 4;8)")
    p.add_argument("--images", type=positive_int, default=None, help="limit the test images")
    p.add_argument("--timing", type=timing_list, default="0",
                   help="timing presets, comma separated: levels 0-5 (hdl.timing.Timing.preset) "
                        "or board names (icebreaker, ulx3s: boards.timing); default: 0")
    p.add_argument("--sim", default=None, choices=SIMULATORS, help="verilator (default) or icarus")
    p.add_argument("--skip-mnist-scale", action="store_true")
    p.add_argument("--skip-learning", action="store_true")
    p.add_argument("--mnist-model", type=existing_file, default=None,
                   help="a trained MNIST TTFS model file: table 1 on MNIST test images")
    p.add_argument("--mnist-lanes", type=lanes_settings, default="8",
                   help="lane settings for --mnist-model, separated by ';' (e.g. 8;32,5)")
    p.add_argument("--mnist-images", type=positive_int, default=30,
                   help="MNIST test images for --mnist-model (default 30)")
    p.add_argument("--data", type=existing_dir, default=None,
                   help="MNIST IDX directory (default $SPIKEGATE_DATA)")
    args = p.parse_args(argv)

    model = benchmark_network(args)
    ds = load_dataset("digits")
    x = ds.x_test if args.images is None else ds.x_test[:args.images]
    steps = model.encode(x)
    lanes_list = args.lanes
    print(f"\n## Cycles per classification, digits test set, network {'-'.join(map(str, model.sizes))}, "
          f"{model.discrete.timesteps} steps of {model.discrete.dt}\n")
    cols = ["lanes", "timing", "images", "agree", "cycles", "bound", "ratio", "row passes", "scans", "rest",
            "lookups/layer", "sim s"]
    print(table(cycles_table(model, steps, lanes_list, args.sim, args.timing), cols))
    print("\ntarget: ratio <= 1.25 at every lane count (issue 22); agree = 100 % of images (class, "
          "step, spikes, lookups, every neuron's spike step)")

    if not args.skip_mnist_scale:
        from amaranth.back import verilog
        from spikegate.hdl.classifier import TTFSClassifier
        print("\n## MNIST sizes (same design, parameters only)\n")
        rows = []
        big = random_discrete_network((784, 600, 10), seed=1, input_rate=0.13)
        t0 = time.perf_counter()
        v = verilog.convert(TTFSClassifier.from_network(big, 8), name="top")
        rows.append({"net": "784-600-10", "what": "Verilog generated",
                     "result": f"{len(v) / 1e6:.1f} MB in {time.perf_counter() - t0:.0f} s"})
        rng = np.random.default_rng(2)
        net = random_discrete_network((784, 128, 10), seed=2, input_rate=0.13)
        xs = (rng.random((20, 784)) < 0.13)
        st = np.where(xs, 0, NO_SPIKE).astype(np.int32)
        g = simulate(net, st)
        hw = simulate_hardware(net, st, 8, trace=True, sim=args.sim)
        bad = first_mismatch(hw, g)
        bound = (g.lookups / 8).sum(1)
        rows.append({"net": "784-128-10", "what": "20 random binary images, 8 lanes",
                     "result": f"agree {'100 %' if bad is None else bad}, cycles {hw.cycles.mean():.0f}, "
                               f"bound {bound.mean():.0f}, ratio {hw.cycles.sum() / bound.sum():.2f}"})
        print(table(rows, ["net", "what", "result"]))

    if args.mnist_model:
        import os
        mnist_model = load_model(args.mnist_model)
        mnist = load_dataset("mnist", args.data or os.environ.get("SPIKEGATE_DATA"))
        m_steps = mnist_model.encode(mnist.x_test[:args.mnist_images])
        print(f"\n## Cycles per classification, MNIST test images, network "
              f"{'-'.join(map(str, mnist_model.sizes))}, {mnist_model.discrete.timesteps} steps "
              f"of {mnist_model.discrete.dt}\n")
        print(table(cycles_table(mnist_model, m_steps, args.mnist_lanes, args.sim, args.timing),
                    cols))

    if not args.skip_learning:
        print("\n## On-chip learning, digits training images\n")
        net = model.network()
        st = model.encode(ds.x_train[:50])
        rows = []
        for lanes in lanes_list:
            hw = simulate_hardware(net, st, lanes, trace=False, labels=ds.y_train[:50], sim=args.sim)
            rows.append({"lanes": lanes, "images": 50,
                         "forward cycles": f"{(hw.cycles - hw.learn_cycles).mean():.0f}",
                         "learning cycles": f"{hw.learn_cycles.mean():.0f}",
                         "total per image": f"{hw.cycles.mean():.0f}"})
        print(table(rows, ["lanes", "images", "forward cycles", "learning cycles", "total per image"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
