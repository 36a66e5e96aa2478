"""``spikegate synth --board NAME``: build a bitstream with the YoWASP tools and report the
resources used against the device and nextpnr's Fmax against the target clock.

Without ``--model`` the network is a digits 64-64-10 TTFS network trained for a few epochs
(seed 0): the weights are only the bitstream's initial contents (the board loads a model at
run time), its shape is what is built. A PD model file (``spikegate run --algorithm pdnn``) builds
the PD classifier behind :class:`~spikegate.boards.synth.PDClassifierShim` (there is no UART
protocol for PD frames yet): resources and Fmax only. An SSGD model file (``spikegate run
--algorithm ssgd``, ``spikegate train ssgd-fixed``) builds the on-chip trainer behind
:class:`~spikegate.boards.synth.SSGDTrainerShim` (no UART protocol for training yet), the
model's weights as the block RAMs' initial contents, lanes (hidden, readout) the board's
:data:`~spikegate.boards.synth.SSGD_LANES` unless ``--lanes``: resources and Fmax only; a build
that does not fit names the resource (exit 1).
"""

import sys
from pathlib import Path

from .args import existing_file, lanes, output_dir, positive_float

__all__ = ["add_parser", "run", "default_network", "parse_seeds"]


def add_parser(subparsers):
    p = subparsers.add_parser("synth", help="build a bitstream (YoWASP) and report resources and Fmax",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--board", required=True, choices=("icebreaker", "ulx3s"))
    p.add_argument("--variant", default="85F", choices=("25F", "45F", "85F"),
                   help="ULX3S ECP5 size (default 85F)")
    p.add_argument("--model", type=existing_file, default=None,
                   help="model file (.npz); default: digits 64-64-10")
    p.add_argument("--lanes", type=lanes, default=None,
                   help="lanes per weight layer: one number or comma-separated, one per layer "
                        "(default: the board's)")
    p.add_argument("--clock-mhz", type=positive_float, default=None,
                   help="sync clock in MHz (default: the board's target, through the PLL)")
    p.add_argument("--shim", action="store_true",
                   help="build the classifier alone (no UART protocol), to measure it")
    p.add_argument("--seed", type=parse_seeds, default=None,
                   help="nextpnr placement seed, or several (\"1,2,5\" or \"1-4\"): each "
                        "placed and routed, the one with the highest Fmax kept (default 1-3)")
    p.add_argument("--out", type=output_dir, default="synth_out", help="build and report directory")
    p.set_defaults(func=run)
    return p


def parse_seeds(text):
    """``"3"`` -> ``[3]``, ``"1,2,5"`` -> ``[1, 2, 5]``, ``"1-4"`` -> ``[1, 2, 3, 4]``."""
    import argparse
    from spikegate.boards.synth import _seed_list
    seeds = []
    try:
        for part in str(text).split(","):
            a, sep, b = part.strip().partition("-")
            lo, hi = int(a), int(b) if sep else int(a)
            if hi < lo:
                raise ValueError
            seeds.extend(range(lo, hi + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seeds must be non-negative integers, comma-separated or as a range lo-hi, "
            f"not {text!r}") from None
    try:
        _seed_list(seeds)             # the one check of synthesize(): distinct, non-negative
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{e} (from {text!r})") from None
    if len(seeds) > 64:
        raise argparse.ArgumentTypeError(f"at most 64 seeds, not {len(seeds)} ({text!r})")
    return seeds


def default_network(epochs=2, seed=0):
    """A digits 64-64-10 :class:`DiscreteNetwork` (golden training, ``epochs``, ``seed``)."""
    from spikegate.golden import ttfs
    from spikegate.golden.data import load_dataset
    from spikegate.golden.encoding import EncodingConfig, encode
    from spikegate.golden.ttfs_discrete import DiscreteNetwork
    d = load_dataset("digits")
    net = ttfs.TTFSNetwork.create((64, 64, 10), seed=seed)
    ttfs.train(net, ttfs.times_to_z(encode(d.x_train, EncodingConfig(mode="graded"))), d.y_train,
               ttfs.TrainConfig(epochs=epochs, seed=seed))
    return DiscreteNetwork.from_float(net.weights)


def run(args):
    from spikegate.boards.fit import ResourceError
    from spikegate.boards.synth import make_design
    lanes = args.lanes
    model = None
    if args.model:
        from .run_pdnn import model_algorithm
        algorithm = model_algorithm(args.model)
        if algorithm == "pdnn":
            return _run_pd(args)
        if algorithm == "ssgd":
            return _run_ssgd(args)
        from spikegate.golden.model_file import load_model
        model = load_model(args.model)
    # A model of binary input encoding: the first layer without multipliers.
    binary = model is not None and model.encoding.mode == "binary"
    if lanes is not None:
        # Refuse a design that cannot fit before training the default network or building.
        from spikegate.boards.fit import check_fit
        from spikegate.boards.ulx3s import VARIANTS
        device = "iCE40UP5K" if args.board == "icebreaker" else VARIANTS[args.variant]
        try:
            if model is None:
                check_fit((64, 64, 10), lanes, device)
            else:
                check_fit(model.sizes, lanes, device, config=model.discrete,
                          binary_input=binary)
        except ResourceError as e:
            print(f"spikegate synth: does not fit: {e}", file=sys.stderr)
            return 1
    net = default_network() if model is None else model.network()
    clk = None if args.clock_mhz is None else int(round(args.clock_mhz * 1e6))
    out = Path(args.out)
    return _build(args, out, lambda: make_design(args.board, net, lanes, variant=args.variant,
                                                 clk_freq_hz=clk, shim=args.shim,
                                                 binary_input=binary))


def _build(args, out, make, note=None):
    """Build the design ``make()`` returns (seeds as ``--seed`` says), print and write its
    report; the exit code (1 when it does not fit, a tool fails or timing is missed)."""
    from spikegate.boards.fit import ResourceError
    from spikegate.boards.synth import (DEFAULT_SEEDS, SynthError, TimingError, format_table,
                                        synthesize, write_reports)
    try:
        design, plat = make()
        name = design.board + (f"-{design.variant}" if hasattr(design, "variant") else "")
        report = synthesize(design, plat, out / f"build_{name}",
                            seed=DEFAULT_SEEDS if args.seed is None else args.seed,
                            check_timing=False)
    except ResourceError as e:
        print(f"spikegate synth: does not fit: {e}", file=sys.stderr)
        return 1
    except SynthError as e:
        print(f"spikegate synth: {e}", file=sys.stderr)
        return 1
    print(format_table(report))
    if note:
        print(note)
    j, md = write_reports(report, out)
    print(f"wrote {j} and {md}; bitstream {report.bitstream}")
    if not report.timing_met:
        print(f"spikegate synth: {TimingError(report)}", file=sys.stderr)
        return 1
    return 0


def _run_pd(args):
    """``spikegate synth --model PD_FILE``: the PD classifier behind its shim."""
    from spikegate.boards.synth import make_pd_design
    from spikegate.golden.pd_model_file import load_pd_model
    net = load_pd_model(args.model).network
    return _build_shim(args, net.sizes, make_pd_design, net,
                       note="PD classifier behind PDClassifierShim (no UART protocol for PD "
                            "frames yet)")


def _run_ssgd(args):
    """``spikegate synth --model SSGD_FILE``: the SSGD trainer behind its shim."""
    from spikegate.boards.synth import make_ssgd_design
    from spikegate.golden.ssgd_model_file import load_ssgd_model
    model = load_ssgd_model(args.model)
    return _build_shim(args, model.sizes, make_ssgd_design, model,
                       note="SSGD trainer behind SSGDTrainerShim (no UART protocol for on-chip "
                            "training yet): resources and Fmax only")


def _build_shim(args, sizes, make_design, net, note):
    """``spikegate synth`` of a shim-top design: ``make_design(board, net, lanes, variant=,
    clk_freq_hz=)`` with ``--lanes`` checked against ``sizes``."""
    from .run import _check_lanes
    if args.lanes is not None:
        _check_lanes("--lanes", args.lanes, sizes)
    clk = None if args.clock_mhz is None else int(round(args.clock_mhz * 1e6))
    return _build(args, Path(args.out), lambda: make_design(args.board, net, args.lanes,
                                                            variant=args.variant,
                                                            clk_freq_hz=clk), note=note)
