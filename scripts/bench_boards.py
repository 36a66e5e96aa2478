"""Per-board benchmark: Fmax, resources, cycles per classification, classifications per
second and digits accuracy; and the largest MNIST network that fits each board on chip.

For each board, the board top (UART protocol + classifier, :class:`spikegate.boards.top.BoardTop`)
is built with the YoWASP tools at the board's target clock (iCE40 UP5K 30 MHz, ECP5 80 MHz);
cycles per classification come from the classifier's Verilog in Verilator
(:func:`spikegate.sim.ttfs_run.simulate_hardware`) on the digits test set, checked against the
golden model; classifications per second are the board clock (and the reached Fmax) over
the mean cycles, excluding the UART transfer of the image. Accuracy is the golden discrete
model's (the hardware matches it bit for bit).

The largest MNIST network ``784-h-10``, on the board's MNIST time grid (:data:`MNIST_GRIDS`:
the grid sets the multipliers' widths): ``h`` is the largest that passes the fit check
(:func:`spikegate.boards.fit.check_fit`: weights, multipliers; on the iCEBreaker the first
weight layer goes to the four SPRAMs, so ``h <= 166``) with the block RAM the memories in
block RAM need (weights, neuron state) plus the overhead measured on the digits build, then
confirmed by building it (stepping ``h`` down while nextpnr says it does not fit; when it is
the logic cells, by the cells over the device divided by :data:`LC_PER_HIDDEN`). A SPRAM
design starts with zero weights in SPRAM (no initial contents): on the board,
``spikegate board load``. Its accuracy is the golden model's: from ``--mnist-models
DIR/mnist-<h>-T<timesteps>.npz`` when it exists (it must be on the board's grid), else from a
network trained here with the MNIST defaults of ``spikegate train ttfs`` on that grid
(``--mnist-epochs``, default their 50, on all 60,000 training images: about 14 s per epoch at
h = 166, 43 s at h = 464 on 2 shared cores) and saved there. Its cycles per classification
are measured in Verilator on ``--mnist-sim`` MNIST test images, checked against the golden
model. Without MNIST data, the table gives the size only.

Every build places and routes with each of ``--seed`` (default ``1-3``, as ``spikegate
synth``: the README's "best of seeds 1-3") and reports the fastest, with each seed's Fmax.

Run: ``python -m spikegate.scripts.bench_boards --data DIR`` (about 50 minutes on 2 shared
cores, most of it the 85F builds, plus the MNIST training when no model is given).
"""

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from spikegate.boards.fit import (DEVICES, ResourceError, block_count, check_fit,
                                  weight_block_rams, weight_memory_plan)
from spikegate.boards.synth import (DEFAULT_SEEDS, SynthError, format_markdown, format_table,
                                    make_design, synthesize, write_reports)
from spikegate.golden.data import DataError, load_dataset
from spikegate.golden.encoding import EncodingConfig
from spikegate.scripts.synth import parse_seeds
from spikegate.golden.model_file import load_model, save_model
from spikegate.golden.ttfs_discrete import DiscreteNetwork, simulate

from spikegate.golden import atomic
from .args import existing_dir, output_dir, positive_int

__all__ = ["main", "estimate_block_rams", "largest_hidden"]

#: board key -> (board, variant, Fmax target MHz)
TARGETS = {"icebreaker": ("icebreaker", None, 30.0), "ulx3s-85F": ("ulx3s", "85F", 80.0),
           "ulx3s-25F": ("ulx3s", "25F", 80.0)}
#: Lanes of the MNIST 784-h-10 search per board (weights per block RAM word).
MNIST_LANES = {"icebreaker": (2, 1), "ulx3s-85F": 8, "ulx3s-25F": (2, 2)}
#: The MNIST time grid per board (``timesteps``, ``dt``; None: ``spikegate train ttfs``'s
#: MNIST default, 64 steps of 1/8). The horizon sets ``z``'s width: up to t = 8 it is 20
#: bits, two SB_MAC16 per product on the UP5K, so even lanes (1, 1) count 10 of its 8 DSPs;
#: 32 steps of 1/8 (horizon 4, 14-bit ``z``) take one per product, 8 with lanes (2, 1).
MNIST_GRIDS = {"icebreaker": (32, 1 / 8)}
#: Logic cells per hidden neuron of 784-h-10 on the UP5K, used to step ``h`` down when nextpnr
#: runs out of them: 13.4 was measured on an older pipeline (3: 5161 LCs at h = 64, 5589 at
#: h = 96; most of it the fire-mask FIFO between the layers, in flip-flops). At pipeline 5 the
#: SPRAM bound comes first: 784-166-10 takes 5059 of the 5280 LCs (bc44471), so no step is
#: taken.
LC_PER_HIDDEN = {"icebreaker": 13.4}


def estimate_block_rams(net, lanes, device):
    """Block RAMs of the weight memories in block RAM (the others are in SPRAM,
    :func:`~spikegate.boards.fit.weight_memory_plan`) and of the neuron-state memories (a
    lower bound of the design's)."""
    from spikegate.hdl.ttfs_layer import neuron_state_layout
    dev = DEVICES[device]
    n_w = len(net.sizes) - 1
    lanes = [lanes] * n_w if isinstance(lanes, int) else list(lanes)
    total = weight_block_rams(net.sizes, lanes, dev, weight_memory_plan(net.sizes, lanes, dev))
    for l in range(n_w):
        width = neuron_state_layout(net.widths(l), net.config.step_bits).size * lanes[l]
        total += block_count(-(-net.sizes[l + 1] // lanes[l]), width, dev.bram_shapes)
    return total


def _random_net(sizes, seed=0, config=None):
    rng = np.random.default_rng(seed)
    return DiscreteNetwork.from_float([rng.normal(0, 1.5 / np.sqrt(a), (a, b))
                                       for a, b in zip(sizes[:-1], sizes[1:])], config)


def mnist_grid(key=None):
    """The time grid of board ``key``'s MNIST model (:data:`MNIST_GRIDS`, else
    ``spikegate train ttfs --dataset mnist``'s default): the widths of the hardware's
    multipliers and neuron state depend on it."""
    from .train_ttfs import configs_for
    steps, dt = MNIST_GRIDS.get(key, (None, None))
    return configs_for("mnist", timesteps=steps, dt=dt)[2]


def _fits(h, device, lanes, overhead, config):
    try:
        check_fit((784, h, 10), lanes, device, config=config)
    except ResourceError:
        return False
    have = DEVICES[device].resources[DEVICES[device].bram]
    net = _random_net((784, h, 10), config=config)
    return estimate_block_rams(net, lanes, device) + overhead <= have


def largest_hidden(device, lanes, overhead, h_max=2048, config=None):
    """Largest ``h`` whose ``784-h-10`` on the time grid ``config`` (default
    :func:`mnist_grid`) passes :func:`~spikegate.boards.fit.check_fit` (weights in SPRAM
    where the device has it, multipliers) and whose block RAM estimate plus ``overhead``
    fits ``device`` (bisection: the fit is monotone in ``h``); 0 when none does."""
    config = config or mnist_grid()
    lo, hi = 0, h_max
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _fits(mid, device, lanes, overhead, config):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _digits_model(out, epochs):
    from spikegate.golden import ttfs
    from .train_ttfs import train_model
    path = out / "digits-64.npz"
    if path.exists():
        return load_model(path)
    ds = load_dataset("digits")
    cfg = ttfs.TrainConfig(seed=0, epochs=epochs, lr_decay=0.97, dropout=0.1)
    model, _, _ = train_model(ds, [64], EncodingConfig("graded"), cfg, quiet=True)
    save_model(path, model)
    return model


def _cycles(net, steps, lanes, board):
    """Mean / max cycles per classification in Verilator, and the hardware against golden:
    ``True`` when every image agrees bit for bit (decision, its step, spikes and lookups per
    layer, every neuron's spike step), else :func:`~spikegate.sim.ttfs_run.first_mismatch`."""
    from spikegate.boards.timing import board_timing
    from spikegate.sim.ttfs_run import first_mismatch, simulate_hardware
    # The classifier as the board top builds it (its timing, registered weight banks for an
    # MNIST network on the ULX3S); the weight memory's kind (block RAM here, SPRAM on the
    # board) changes no cycle.
    hw = simulate_hardware(net, steps, lanes, trace=True,
                           timing=board_timing(board, net.sizes, lanes))
    bad = first_mismatch(hw, simulate(net, steps))
    return (float(np.mean(hw.cycles)), int(np.max(hw.cycles)), True if bad is None else bad,
            float(hw.lookups.sum(1).mean()))


def _metrics(key, sizes, reads, cycles, fmax_mhz, resources, device):
    """Synaptic operations per classification and the energy estimate at ``fmax_mhz``
    (:mod:`spikegate.sim.energy`; an estimate, labelled so)."""
    from spikegate.sim.energy import estimate, synaptic_ops
    used = resources.get(DEVICES[device].logic, {}).get("used")
    ops = synaptic_ops(sizes, reads)
    energy = None if used is None else estimate(
        TARGETS[key][0], cycles=cycles, weight_reads=reads, clock_mhz=fmax_mhz, luts=used)
    return {"synaptic_ops": ops, "energy_estimate": energy}


def _synth(key, net, lanes, out, seed=1):
    board, variant, target = TARGETS[key]
    design, plat = make_design(board, net, lanes, variant=variant or "85F",
                               clk_freq_hz=int(target * 1e6))
    return synthesize(design, plat, out / f"build_{key}" / "-".join(map(str, net.sizes)),
                      seed=seed, check_timing=False), design.lanes


def _res(resources):
    return ", ".join(f"{r['used']}/{r['available']} {n}" for n, r in resources.items())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--boards", default="icebreaker,ulx3s-85F",
                   help=f"comma-separated, of {', '.join(TARGETS)}")
    p.add_argument("--out", type=output_dir, default="bench_boards_out")
    p.add_argument("--digits-epochs", type=positive_int, default=60)
    p.add_argument("--n-sim", type=positive_int, default=None,
                   help="digits test images in Verilator (all)")
    p.add_argument("--digits", action=argparse.BooleanOptionalAction, default=True,
                   help="the digits builds (--no-digits: only the MNIST search, with no block "
                        "RAM overhead over the estimate, and the digits rows of an earlier "
                        "bench_boards.json in --out kept)")
    p.add_argument("--mnist", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--mnist-models", type=output_dir, default="bench_ttfs_out",
                   help="directory of mnist-<h>-T<timesteps>.npz (read, and written when trained)")
    p.add_argument("--mnist-epochs", type=positive_int, default=None,
                   help="epochs of an MNIST model trained here (default: train ttfs's, 50)")
    p.add_argument("--mnist-train-limit", type=positive_int, default=None,
                   help="training images of an MNIST model trained here (default: all)")
    p.add_argument("--seed", type=parse_seeds, default=list(DEFAULT_SEEDS),
                   help="nextpnr seeds of every build, e.g. 1-3 or 1,4 (default 1-3); "
                        "each build keeps the fastest")
    p.add_argument("--mnist-sim", type=positive_int, default=100, help="MNIST test images in Verilator")
    p.add_argument("--data", type=existing_dir, default=None,
                   help="MNIST IDX directory (default $SPIKEGATE_DATA)")
    args = p.parse_args(argv)
    keys = [k.strip() for k in args.boards.split(",")]
    for k in keys:
        if k not in TARGETS:
            p.error(f"unknown board {k!r}; expected some of {', '.join(TARGETS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    rows, results = [], {"digits": {}, "mnist": {}}
    overhead = {key: 0 for key in keys}
    if not args.digits and (out / "bench_boards.json").exists():
        results["digits"] = json.loads((out / "bench_boards.json").read_text()).get("digits", {})
        rows = list(results["digits"].values())
    if args.digits:
        model = _digits_model(out, args.digits_epochs)
        net = model.network()
        ds = load_dataset("digits")
        steps = model.encode(ds.x_test)
        acc = float(np.mean(simulate(net, steps).decision == ds.y_test))
        n_sim = len(steps) if args.n_sim is None else args.n_sim
    for key in keys if args.digits else []:
        t0 = time.monotonic()
        rep, lanes = _synth(key, net, None, out, seed=args.seed)
        write_reports(rep, out)
        print(format_table(rep), flush=True)
        overhead[key] = rep.resources[DEVICES[rep.device].bram]["used"] - \
            estimate_block_rams(net, lanes, rep.device)
        mean, worst, agree, reads = _cycles(net, steps[:n_sim], lanes, key)
        target = TARGETS[key][2]
        row = {"board": key, "device": rep.device, "lanes": list(rep.lanes),
               "fmax_mhz": rep.fmax_mhz, "target_mhz": target, "seed": rep.seed,
               "seed_fmax_mhz": rep.seed_fmax_mhz,
               "met": rep.fmax_mhz >= target, "resources": rep.resources, "ffs": rep.ffs,
               "cycles_mean": mean, "cycles_max": worst, "hw_matches_golden": agree,
               "cls_per_s_at_clock": rep.target_mhz * 1e6 / mean,
               "cls_per_s_at_fmax": min(rep.fmax_mhz, rep.target_mhz) * 1e6 / mean,
               "accuracy": acc, "build_s": rep.seconds, "critical_path": rep.critical_path[:1]
               + rep.critical_path[-1:], "bench_s": time.monotonic() - t0,
               **_metrics(key, net.sizes, reads, mean, min(rep.fmax_mhz, target), rep.resources,
                          rep.device)}
        rows.append(row)
        results["digits"][key] = row
        atomic.write_text(out / "bench_boards.json", json.dumps(results, indent=2) + "\n")

    if args.mnist:
        root = args.data or os.environ.get("SPIKEGATE_DATA")
        try:
            mnist = load_dataset("mnist", root)
        except (DataError, FileNotFoundError) as e:
            mnist = None
            print(f"MNIST: not available ({e}); sizes from random weights only", file=sys.stderr)
        for key in keys:
            results["mnist"][key] = _largest_mnist(key, overhead[key], mnist, args, out)
            atomic.write_text(out / "bench_boards.json", json.dumps(results, indent=2) + "\n")

    text = _tables(rows, results["mnist"])
    print(text)
    atomic.write_text(out / "bench_boards.md", text + "\n")
    return 0


def _mnist_model(key, h, grid, mnist, args):
    """The trained ``784-h-10`` of ``--mnist-models`` on ``grid``, trained and saved there
    first when missing; returns ``(model, path)``."""
    path = Path(args.mnist_models) / f"mnist-{h}-T{grid.timesteps}.npz"
    if path.exists():
        model = load_model(path)
        if model.network().config != grid:
            raise SystemExit(f"{path}: its time grid {model.network().config} is not the "
                             f"{key} MNIST grid {grid}, which the build was sized for")
        return model, path
    from .train_ttfs import configs_for, train_model
    kw = {} if args.mnist_epochs is None else {"epochs": args.mnist_epochs}
    enc, cfg, discrete = configs_for("mnist", seed=0, timesteps=grid.timesteps, dt=grid.dt, **kw)
    print(f"{key}: training 784-{h}-10 on MNIST ({cfg.epochs} epochs, {grid}) -> {path}",
          flush=True)
    model, _, _ = train_model(mnist, [h], enc, cfg, discrete=discrete, quiet=True,
                              train_limit=args.mnist_train_limit)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(path, model)
    return model, path


def _largest_mnist(key, overhead, mnist, args, out):
    board, variant, target = TARGETS[key]
    lanes = MNIST_LANES[key]
    device = DEVICES["iCE40UP5K" if board == "icebreaker" else f"LFE5U-{variant}"].name
    grid = mnist_grid(key)
    h = largest_hidden(device, lanes, max(overhead, 0), config=grid)
    # The model of the estimated size trains (one thread) while the tools build.
    pool = ThreadPoolExecutor(max_workers=1)
    training = None if mnist is None or h == 0 else \
        (h, pool.submit(_mnist_model, key, h, grid, mnist, args))
    try:
        return _build_and_measure(key, h, lanes, device, grid, training, mnist, args, out)
    finally:
        pool.shutdown(wait=True)


def _build_and_measure(key, h, lanes, device, grid, training, mnist, args, out):
    target = TARGETS[key][2]
    rep = None
    while h > 0:
        net = _random_net((784, h, 10), config=grid)
        try:
            rep, _ = _synth(key, net, lanes, out, seed=args.seed)
            break
        except ResourceError as e:
            print(f"{key}: 784-{h}-10 does not fit ({e})", flush=True)
            dev = DEVICES[device]
            per = LC_PER_HIDDEN.get(key)
            if e.resource == dev.logic and per and isinstance(e.used, int):
                # Down by the cells over the device (plus 2 % for placement), even for 2 lanes.
                over = e.used - 0.98 * e.available
                h = min(int(h * 0.98), int(h - over / per)) // 2 * 2
            else:
                h = int(h * 0.9)
        except SynthError as e:
            print(f"{key}: 784-{h}-10 failed: {e}", flush=True)
            return {"h": None, "error": str(e)}
    if rep is None:
        return {"h": None, "error": f"no 784-h-10 fits the {device} with lanes {lanes}"}
    print(format_table(rep), flush=True)
    atomic.write_text(out / f"{key}_mnist_synth.md", format_markdown(rep))
    res = {"h": h, "grid": f"{grid.timesteps} x {grid.dt:g}", "lanes": rep.lanes,
           "fmax_mhz": rep.fmax_mhz, "seed": rep.seed, "seed_fmax_mhz": rep.seed_fmax_mhz,
           "resources": rep.resources,
           "weight_memories": rep.weight_memories, "accuracy": None, "weights": "random"}
    if mnist is None:
        return res
    if training is not None and training[0] == h:
        model, path = training[1].result()
    else:
        model, path = _mnist_model(key, h, grid, mnist, args)
    info = model.training
    res["weights"] = (f"{path.name}: {info.get('epochs_done', '?')} epochs on "
                      f"{info.get('train_samples', '?')} images")
    net = model.network()
    steps = model.encode(mnist.x_test)
    res["accuracy"] = float(np.mean(simulate(net, steps).decision == mnist.y_test))
    mean, worst, agree, reads = _cycles(net, steps[:args.mnist_sim], rep.lanes, key)
    res.update(cycles_mean=mean, cycles_max=worst, hw_matches_golden=agree,
               cls_per_s=min(rep.fmax_mhz, target) * 1e6 / mean,
               **_metrics(key, net.sizes, reads, mean, min(rep.fmax_mhz, target), rep.resources,
                          device))
    return res


def _tables(rows, mnist):
    lines = [] if not rows else [
        "## Digits 64-64-10 per board", "",
        "| board | lanes | Fmax MHz (target) | resources | cycles/cls mean (max) | "
        "cls/s at clock | cls/s at min(Fmax, clock) | digits acc (golden) | HW = golden | "
        "synaptic ops / dense | energy uJ per cls (ESTIMATE) |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['board']} ({r['device']}) | {tuple(r['lanes'])} | {r['fmax_mhz']:.1f} "
            f"({r['target_mhz']:.0f}, {'met' if r['met'] else 'MISSED'}) | "
            f"{_res(r['resources'])}, {r['ffs']} FFs | {r['cycles_mean']:.0f} ({r['cycles_max']}) | "
            f"{r['cls_per_s_at_clock']:,.0f} | {r['cls_per_s_at_fmax']:,.0f} | "
            f"{r['accuracy']:.4f} | {r['hw_matches_golden']} | {_ops_cell(r)} | {_energy_cell(r)} |")
    if mnist:
        lines += ([""] if lines else []) + ["## Largest MNIST 784-h-10 on chip", "",
                  "| board | h | grid (steps x dt) | lanes | weights in | Fmax MHz | resources | "
                  "weights | accuracy (golden) | cycles/cls mean (max) | "
                  "cls/s at min(Fmax, clock) | HW = golden | synaptic ops / dense | "
                  "energy uJ per cls (ESTIMATE) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for key, m in mnist.items():
            if m.get("h") is None:
                lines.append(f"| {key} | - | | | | | {m.get('error', '')} | | | | | | | |")
                continue
            acc = "n/a" if m["accuracy"] is None else f"{m['accuracy']:.4f}"
            cyc = f"{m['cycles_mean']:.0f} ({m['cycles_max']})" if "cycles_mean" in m else "n/a"
            rate = f"{m['cls_per_s']:,.0f}" if "cls_per_s" in m else "n/a"
            seeds = m.get("seed_fmax_mhz") or {}
            fmax = f"{m['fmax_mhz']:.1f}" + (
                f" (seed {m['seed']}; {' / '.join(f'{f:.1f}' for f in seeds.values())})"
                if len(seeds) > 1 else "")
            lines.append(
                f"| {key} | {m['h']} | {m.get('grid', '')} | {tuple(m['lanes'])} | "
                f"{'/'.join(m.get('weight_memories') or ['ebr']).upper()} | {fmax} | "
                f"{_res(m['resources'])} | {m['weights']} | {acc} | {cyc} | {rate} | "
                f"{m.get('hw_matches_golden', 'n/a')} | {_ops_cell(m)} | {_energy_cell(m)} |")
    if lines:
        lines += ["", "Synaptic operations: one accumulate and one multiply-accumulate per weight "
                  "read, against the dense network's. The energy is an estimate from the "
                  "simulation's activity (spikegate.sim.energy: its model, sources and the "
                  "terms no vendor publishes, the range x0.25..x4 of those)."]
    return "\n".join(lines)


def _ops_cell(r):
    ops = r.get("synaptic_ops")
    return "n/a" if not ops else f"{ops['ac'] + ops['mac']:,.0f} / {ops['dense_ac'] + ops['dense_mac']:,.0f}"


def _energy_cell(r):
    e = r.get("energy_estimate")
    return "n/a" if not e else f"{e['total_uj']:.3f} ({e['low_uj']:.3f} .. {e['high_uj']:.3f})"


if __name__ == "__main__":
    from .train_ttfs import _blas_threads
    with _blas_threads(1):
        sys.exit(main())
