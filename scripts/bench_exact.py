"""Hardware = golden on a whole test set: a TTFS model's classifier, as a board builds it, run
image by image in Verilator (or Icarus) and compared with the discrete golden model, bit for
bit (the decision and its step, spikes and lookups per layer, every neuron's spike step).

    python -m spikegate.scripts.bench_exact MODEL --board ulx3s --lanes 8,8 \\
        --dataset mnist --data DIR --out bench_exact_out

The images run in chunks (``--chunk``, one simulation each); every finished chunk's results
are saved in ``OUT/<key>/<first>-<end>.npz`` (``key``: a hash of the network, lanes, timing,
simulator and the hardware's sources, :func:`rtl_hash`), so an interrupted run picks up where it stopped, and a finished one prints
its table again without simulating. Prints one line per chunk and a table: images, images
where hardware = golden, the first disagreement (image, quantity, layer, neuron, values),
the hardware's and the golden model's accuracy, cycles per classification (mean, max) and
the simulation time. Exit code 1 when any image disagrees (a benchmark, not a test: CI runs
a small sample, ``tests/test_bench_exact.py``).
"""

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from spikegate.golden import atomic
from spikegate.golden.data import DATASETS, load_dataset
from spikegate.golden.model_file import load_model
from spikegate.golden.ttfs_discrete import simulate
from spikegate.sim.tools import SIMULATORS

from .args import existing_dir, existing_file, lanes as lanes_type, output_dir, positive_int

__all__ = ["run_exact", "images_agree", "main"]

BOARDS = ("none", "icebreaker", "ulx3s")


def images_agree(hw, golden):
    """Per image: does the hardware agree with golden on everything
    :func:`~spikegate.sim.ttfs_run.first_mismatch` compares (error flag, decision, its step,
    spikes and lookups per layer, every traced neuron's spike step)?"""
    ok = (hw.error == 0) & (hw.decision == golden.decision) & \
        (hw.decision_step == golden.decision_step)
    ok &= np.all(hw.spikes == golden.spikes, axis=1) & np.all(hw.lookups == golden.lookups, axis=1)
    if hw.spike_steps is not None:
        for l, tr in enumerate(hw.spike_steps):
            ok &= np.all(tr == golden.spike_steps[l + 1], axis=1)
    return ok


def rtl_hash():
    """SHA-256 (first 16 hex digits) of the sources the simulated results depend on: every
    module of ``spikegate.hdl`` and the TTFS test bench (``sim/ttfs_cocotb.py``,
    ``sim/ttfs_tb.py``). Saved chunks are reused only while these are byte for byte the same."""
    import spikegate.hdl
    import spikegate.sim
    files = sorted(Path(spikegate.hdl.__file__).parent.glob("*.py"))
    files += [Path(spikegate.sim.__file__).parent / n for n in ("ttfs_cocotb.py", "ttfs_tb.py")]
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def _key(net, lanes, timing, sim, binary_input=False):
    h = hashlib.sha256(rtl_hash().encode())
    for w in net.weights:
        h.update(np.ascontiguousarray(w, dtype=np.int64).tobytes())
    what = {"sizes": list(net.sizes), "thetas": [int(t) for t in net.thetas],
            "config": net.config.to_dict(), "lanes": lanes,
            "timing": None if timing is None else timing.key(), "sim": sim or "verilator"}
    if binary_input:
        what["binary_input"] = True
    h.update(json.dumps(what, sort_keys=True).encode())
    return h.hexdigest()[:16]


def run_exact(net, steps, labels, lanes, *, timing=None, sim=None, chunk=500, out=None,
              log=print, binary_input=False):
    """Simulate ``steps`` (``(n, n_in)`` input steps) in chunks of ``chunk`` images on the
    Verilog of ``TTFSClassifier.from_network(net, lanes, timing=timing,
    binary_input=binary_input)`` and compare every
    image with golden. ``out``: a directory for the chunks' results (reused when present).
    Returns a summary dict (``first_mismatch`` is ``None`` when every image agrees)."""
    from spikegate.sim.ttfs_run import HardwareResult, HardwareResultError, first_mismatch, \
        simulate_hardware
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, not {chunk!r}")
    steps = np.asarray(steps, dtype=np.int64)
    n = len(steps)
    if n == 0 or len(labels) != n:
        raise ValueError(f"need n >= 1 images and as many labels, not {n} and {len(labels)}")
    key = _key(net, lanes, timing, sim, binary_input)
    folder = None if out is None else Path(out) / key
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    agree = np.zeros(n, bool)
    decisions, golden_decisions = np.full(n, -1), np.full(n, -1)
    cycles = np.zeros(n, np.int64)
    first, seconds, simulated = None, 0.0, 0
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        golden = simulate(net, steps[a:b])
        path = None if folder is None else folder / f"{a}-{b}.npz"
        hw = None
        if path is not None and path.exists():
            try:
                hw = HardwareResult.load(path)
                if len(hw.decision) != b - a:
                    raise HardwareResultError(f"{path} holds {len(hw.decision)} images, not {b - a}")
                how = "saved"
            except HardwareResultError as e:
                log(f"images {a}-{b}: {e}; simulating again")
                hw = None
        if hw is None:
            t0 = time.perf_counter()
            hw = simulate_hardware(net, steps[a:b], lanes, trace=True, sim=sim, timing=timing,
                                   binary_input=binary_input)
            dt = time.perf_counter() - t0
            seconds += dt
            simulated += b - a
            how = f"{dt:.0f} s"
            if path is not None:
                hw.save(path)
        ok = images_agree(hw, golden)
        bad = first_mismatch(hw, golden)
        if (bad is None) != bool(ok.all()):
            raise AssertionError(f"images {a}-{b}: images_agree and first_mismatch disagree")
        if bad is not None and first is None:
            first = dict(bad, image=a + bad["image"])
        agree[a:b], cycles[a:b] = ok, hw.cycles
        decisions[a:b], golden_decisions[a:b] = hw.decision, golden.decision
        log(f"images {a}-{b}: {int(ok.sum())} of {b - a} agree, cycles mean "
            f"{hw.cycles.mean():.0f}, {how}")
    labels = np.asarray(labels)
    return {"key": key, "images": n, "agree": int(agree.sum()), "first_mismatch": first,
            "hardware_accuracy": float(np.mean(decisions == labels)),
            "golden_accuracy": float(np.mean(golden_decisions == labels)),
            "cycles_mean": float(cycles.mean()), "cycles_max": int(cycles.max()),
            "simulated_images": simulated, "simulation_seconds": seconds}


def format_table(s, what):
    rows = [("network", what), ("images", f"{s['images']:,}"),
            ("hardware = golden", f"{s['agree']:,} of {s['images']:,}"),
            ("first disagreement", "none" if s["first_mismatch"] is None
             else json.dumps(s["first_mismatch"])),
            ("accuracy, hardware (golden)", f"{100 * s['hardware_accuracy']:.2f} % "
                                            f"({100 * s['golden_accuracy']:.2f} %)"),
            ("cycles per classification, mean (max)",
             f"{s['cycles_mean']:.0f} ({s['cycles_max']})"),
            ("simulated this run", f"{s['simulated_images']:,} images in "
                                   f"{s['simulation_seconds']:.0f} s")]
    w = max(len(r[0]) for r in rows)
    return "\n".join(f"{a.ljust(w)} | {b}" for a, b in rows)


def main(argv=None):
    p = argparse.ArgumentParser(prog="bench_exact", description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=existing_file, help="TTFS model file (spikegate train ttfs)")
    p.add_argument("--board", choices=BOARDS, default="none",
                   help="build the classifier with this board's timing (boards.timing."
                        "board_timing: the ULX3S's registered weight banks for MNIST sizes); "
                        "default none (hdl.timing.Timing())")
    p.add_argument("--lanes", type=lanes_type, default=8,
                   help="weights read per cycle, one number or one per weight layer (default 8)")
    p.add_argument("--dataset", choices=DATASETS, default="mnist")
    p.add_argument("--data", type=existing_dir, default=None,
                   help="IDX directory (default $SPIKEGATE_DATA)")
    p.add_argument("--images", type=positive_int, default=None,
                   help="the first N test images (default: all)")
    p.add_argument("--chunk", type=positive_int, default=500, help="images per simulation")
    p.add_argument("--sim", choices=SIMULATORS, default=None,
                   help="simulator (default verilator)")
    p.add_argument("--out", type=output_dir, default="bench_exact_out",
                   help="chunk results and summary.json (default bench_exact_out)")
    p.add_argument("--multiply", action="store_true",
                   help="a model of binary input encoding: build its first layer with the "
                        "multipliers (default: without, as spikegate synth)")
    args = p.parse_args(argv)

    model = load_model(args.model)
    ds = load_dataset(args.dataset, args.data or os.environ.get("SPIKEGATE_DATA"))
    net = model.network()
    if net.sizes[0] != ds.n_inputs:
        p.error(f"the model has {net.sizes[0]} inputs, {args.dataset} images {ds.n_inputs}")
    x, y = ds.x_test, ds.y_test
    if args.images is not None:
        x, y = x[:args.images], y[:args.images]
    timing = None
    if args.board != "none":
        from spikegate.boards.timing import board_timing
        timing = board_timing(args.board, net.sizes, args.lanes)
    binary = model.encoding.mode == "binary" and not args.multiply
    s = run_exact(net, model.encode(x), y, args.lanes, timing=timing, sim=args.sim,
                  chunk=args.chunk, out=args.out, log=lambda m: print(m, flush=True),
                  binary_input=binary)
    what = (f"{'-'.join(map(str, net.sizes))} ({Path(args.model).name}), lanes {args.lanes}, "
            f"board {args.board}, {args.sim or 'verilator'}"
            f"{', binary-input layer 0' if binary else ''}")
    s.update(model=str(args.model), board=args.board, binary_input=binary,
             lanes=args.lanes if isinstance(args.lanes, int) else list(args.lanes),
             dataset=args.dataset)
    atomic.write_text(Path(args.out) / s["key"] / "summary.json", json.dumps(s, indent=1))
    print()
    print(format_table(s, what))
    return 0 if s["agree"] == s["images"] else 1


if __name__ == "__main__":
    sys.exit(main())
