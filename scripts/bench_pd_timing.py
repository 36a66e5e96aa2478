"""Benchmark: the PD network on the boards (issue 20): Fmax per nextpnr seed and resources, read
from ``spikegate synth`` reports, cycles per frame on temporally ordered and shuffled frames, and
frames per second at Fmax, before and after the PD datapath was pipelined.

Usage::

    python -m spikegate.scripts.bench_pd_timing \\
        --synth before=synth_before_ice --synth after=synth_after_ice \\
        --synth before=synth_before_ecp5 --synth after=synth_after_ecp5 \\
        --model icebreaker=digits.npz --model ulx3s=mnist.npz --data /work/shared/data/mnist

Each ``--synth LABEL=DIR`` names a ``spikegate synth --out DIR`` folder (its
``<board>_synth.json``: Fmax of every seed it placed, resources, lanes); a label may come once per
board. ``--model BOARD=FILE`` is the PD model file that board's reports were built from: its
cycles per frame are computed on ``--frames`` frames in the greedy nearest-neighbour order of
:mod:`spikegate.golden.temporal` ("temporal") and in a random order ("shuffled") -- digits test
images for a 64-input network, MNIST test images (``--data``) for a 784-input one -- by the timing
model :func:`~spikegate.hdl.pd_classifier.expected_cycles` on the fixed-point golden trace. The
model is exact: the cocotb tests (``tests/cocotb/test_pd_classifier.py``) and ``sim/pd_bench``
check it frame by frame against the hardware under Verilator; ``--verilator`` also runs the
digits frames through the Verilog here (``sim.pd_bench.measure``) and refuses to print if any
frame's cycles differ. The label ``before`` is given the latencies of the unpipelined design
(commit fdfa031: queue latency 3, decoder latency 1, decode 2 cycles after the last issue);
every other label those of the current one. Frames per second at Fmax: ``Fmax / (mean cycles +
1)`` (one frame in the network at a time; the next frame's first beat is taken the cycle after
the result's transfer). ``--banked LABEL`` marks a label whose builds have the weight-bank
registers (:data:`~spikegate.boards.synth.PD_WEIGHT_BANKS`, issue 20): on a board with banks its
cycles are the model's with ``drain`` 4 (:attr:`~spikegate.hdl.pd_classifier.PDClassifier.drain`).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

__all__ = ["main", "BEFORE", "frame_cycles"]

#: expected_cycles' keywords for the unpipelined design (commit fdfa031).
BEFORE = {"queue_latency": 3, "decoder_latency": 1, "drain": 2}

_RES = {  # board -> (logic cells / LUTs, block RAM, DSP) keys of nextpnr's utilisation
    "icebreaker": ("ICESTORM_LC", "ICESTORM_RAM", "ICESTORM_DSP"),
    "ulx3s": ("TRELLIS_COMB", "DP16KD", "MULT18X18D"),
}


def _pair(text, what):
    key, sep, value = str(text).partition("=")
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"{what} must be KEY=VALUE, not {text!r}")
    return key, value


def _frames(fixed, kind, n, data, seed=0):
    """``n`` frames of the network's input size in layer 0's format: digits or MNIST test images,
    temporal or shuffled order."""
    from spikegate.golden.data import load_dataset
    from spikegate.golden.temporal import temporal_order
    n_in = fixed.sizes[0]
    if n_in == 64:
        ds = load_dataset("digits")
    elif n_in == 784:
        if data is None:
            raise SystemExit("bench_pd_timing: a 784-input model needs --data (the MNIST folder)")
        ds = load_dataset("mnist", data)
    else:
        raise SystemExit(f"bench_pd_timing: no test images of {n_in} inputs (64: digits, 784: MNIST)")
    x = ds.x_test[:max(n, 1000)]
    order = temporal_order(x, 1000) if kind == "temporal" else \
        np.random.default_rng(seed).permutation(len(x))
    return fixed.quantize_input(x[order[:n]])


def frame_cycles(fixed, lanes, frames, **latencies):
    """Cycles per frame (the timing model) of ``frames`` through ``fixed`` with ``lanes``."""
    from spikegate.hdl.pd_classifier import expected_cycles
    return expected_cycles(fixed.run(frames), fixed.sizes, lanes, **latencies)


def main(argv=None):
    p = argparse.ArgumentParser(prog="bench_pd_timing", description=__doc__.split("\n\n")[0])
    p.add_argument("--synth", action="append", default=[],
                   type=lambda t: _pair(t, "--synth"), help="LABEL=DIR of a spikegate synth report")
    p.add_argument("--model", action="append", default=[],
                   type=lambda t: _pair(t, "--model"), help="BOARD=PD model file of its reports")
    p.add_argument("--data", default=None, help="MNIST IDX folder (784-input models)")
    p.add_argument("--frames", type=int, default=500, help="frames per order (default 500)")
    p.add_argument("--verilator", action="store_true",
                   help="also run the digits frames through the Verilog and check the model")
    p.add_argument("--banked", action="append", default=[], metavar="LABEL",
                   help="a label built with the weight-bank registers (PD_WEIGHT_BANKS)")
    p.add_argument("--json", default=None, help="also write the numbers to this file")
    args = p.parse_args(argv)
    if args.frames < 2:
        p.error(f"--frames must be at least 2, not {args.frames}")
    from spikegate.golden.pd_model_file import load_pd_model

    reports = []
    for label, d in args.synth:
        files = sorted(Path(d).glob("*_synth.json"))
        if not files:
            p.error(f"--synth {label}={d}: no *_synth.json in that folder")
        for f in files:
            reports.append((label, json.loads(f.read_text())))
    models = {}
    for board, path in args.model:
        if board not in _RES:
            p.error(f"--model: board must be one of {', '.join(_RES)}, not {board!r}")
        models[board] = load_pd_model(path).network

    cycles = {}            # (board, label, kind) -> mean cycles
    for label, r in reports:
        board = r["board"].split("-")[0]            # "ulx3s-85F": the ULX3S
        net = models.get(board)
        if net is None:
            continue
        if list(net.sizes) != list(r["sizes"]):
            p.error(f"--model {board}: sizes {net.sizes} but the {label} report built {r['sizes']}")
        lat = BEFORE if label == "before" else {}
        if label in args.banked:
            from spikegate.boards.synth import PD_WEIGHT_BANKS
            if PD_WEIGHT_BANKS.get(board) is not None:
                lat = {"drain": 4}
        for kind in ("temporal", "shuffled"):
            key = (board, label, kind)
            if key not in cycles:
                if args.verilator and label in args.banked and lat:
                    p.error("--verilator checks the unbanked design only")
                frames = _frames(net, kind, args.frames, args.data)
                c = frame_cycles(net, tuple(r["lanes"]), frames, **lat)
                cycles[key] = float(c.mean())
                if args.verilator and label != "before" and net.sizes[0] == 64:
                    _check_verilator(net, tuple(r["lanes"]), frames, c, kind)

    rows = []
    head = ("| design | board | network | lanes | Fmax MHz per seed (target) | best | LUT / LC | FF | "
            "BRAM | DSP | cycles/frame temporal | shuffled | frames/s at best Fmax (temporal, "
            "shuffled) |")
    rows += [head, "|" + "---|" * 13]
    out = []
    for label, r in reports:
        board = r["board"].split("-")[0]
        lc, ram, dsp = _RES[board]
        res = r["resources"]
        seeds = r.get("seed_fmax_mhz") or {str(r.get("seed")): r["fmax_mhz"]}
        best = max(seeds.values())
        ct, cs = cycles.get((board, label, "temporal")), cycles.get((board, label, "shuffled"))
        fps = [best * 1e6 / (c + 1) if c else None for c in (ct, cs)]
        seed_txt = ", ".join(f"{v:.1f} (s{k})" for k, v in sorted(seeds.items()))
        rows.append(
            f"| {label} | {r['device']} | {'-'.join(map(str, r['sizes']))} | "
            f"{','.join(map(str, r['lanes']))} | {seed_txt} ({r['target_mhz']:.0f}) | {best:.1f} | "
            f"{res[lc]['used']} / {res[lc]['available']} | {r.get('ffs', '-')} | "
            f"{res[ram]['used']} / {res[ram]['available']} | {res[dsp]['used']} | "
            f"{f'{ct:.0f}' if ct else '-'} | {f'{cs:.0f}' if cs else '-'} | "
            f"{' / '.join(f'{v:,.0f}' if v else '-' for v in fps)} |")
        out.append({"label": label, "board": board, "sizes": r["sizes"], "lanes": r["lanes"],
                    "seed_fmax_mhz": seeds, "target_mhz": r["target_mhz"], "resources": res,
                    "ffs": r.get("ffs"), "cycles_temporal": ct, "cycles_shuffled": cs,
                    "frames_per_s": fps, "critical_path": r.get("critical_path", [])[:1] +
                    r.get("critical_path", [])[-1:]})
    print(f"PD network timing: {args.frames} frames per order; cycles by the timing model "
          f"(expected_cycles){', checked under Verilator' if args.verilator else ''}\n")
    print("\n".join(rows))
    for o in out:
        if o["critical_path"]:
            print(f"\n{o['label']} {o['board']}: critical path {' -> '.join(o['critical_path'])}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


def _check_verilator(net, lanes, frames, model, kind):
    from spikegate.golden.pdnn_fixed import first_mismatch
    from spikegate.sim.pd_run import simulate_pd_hardware
    hw = simulate_pd_hardware(net, frames, lanes, name="pd_timing_l" + "_".join(map(str, lanes)))
    bad = first_mismatch(hw, net.run(frames), kind)
    if bad is not None:
        raise SystemExit(f"bench_pd_timing: hardware differs from golden: {bad}")
    if not np.array_equal(hw.cycles, model):
        k = int(np.flatnonzero(hw.cycles != model)[0])
        raise SystemExit(f"bench_pd_timing: {kind} frame {k}: {hw.cycles[k]} cycles, the model "
                         f"{model[k]}")


if __name__ == "__main__":
    sys.exit(main())
