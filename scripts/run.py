"""``spikegate run``, ``spikegate sim`` and ``spikegate compare``: the main job and its stages.

``spikegate run`` (no argument: the embedded digits data) trains a TTFS network (or takes
``--model``), evaluates the float and 8-bit golden models, generates the Verilog and
simulates it under cocotb + Verilator on a sample of test images, compares hardware and
golden image by image, synthesizes for the default board and writes a report (Markdown,
JSON, PNG) into ``--out``. Stages already up to date are reused. The model file is parsed
once per command (:meth:`~spikegate.scripts.flow.Flow.model`).

``spikegate run --algorithm pdnn`` runs the PD network's flow instead
(:mod:`spikegate.scripts.run_pdnn`), ``--algorithm ssgd`` the SSGD network's
(:mod:`spikegate.scripts.run_ssgd`); ``sim`` and ``compare`` take any kind of model file,
told apart by the algorithm its ``meta`` names.
"""

import time
from pathlib import Path

from spikegate.golden.data import DATASETS

from .args import (existing_dir, existing_file, lanes, non_negative_int, output_dir,
                   positive_int, positive_ints)
from .flow import PROTOTYPE, Flow
from . import run_pdnn, run_ssgd

#: ``--algorithm`` choices of ``spikegate run``.
ALGORITHMS = ("ttfs", "pdnn", "ssgd")

__all__ = ["add_parser"]


def _common(p, *, images_default):
    p.add_argument("--dataset", default="digits", choices=DATASETS, help="data set (default: digits)")
    p.add_argument("--data", type=existing_dir, default=None, metavar="DIR",
                   help="IDX directory for mnist / fashion-mnist (default: $SPIKEGATE_DATA)")
    p.add_argument("--images", type=positive_int, default=images_default,
                   help=f"test images to simulate (default: {images_default})")
    p.add_argument("--lanes", type=lanes, default=8,
                   help="weights read per cycle: one number, or one per layer (default: 8)")
    p.add_argument("--waves", action="store_true", help="record an FST waveform of the simulation")


def add_parser(subparsers):
    p = subparsers.add_parser("run", help="the whole flow: train, eval, sim, compare, synth, report")
    p.add_argument("--algorithm", default=None, choices=ALGORITHMS,
                   help="ttfs, pdnn or ssgd (default: the --model file's, else ttfs)")
    p.add_argument("--temporal", action="store_true",
                   help="pdnn: reorder training and test sets so neighbouring frames are "
                        "similar (temporal MNIST)")
    p.add_argument("--smoothing-steps", type=positive_int, default=1000,
                   help="pdnn --temporal: look-ahead of the reordering (default: 1000)")
    p.add_argument("--train-images", type=positive_int, default=None,
                   help="ssgd: training images through the on-chip trainer (default: "
                        f"{run_ssgd.DEFAULT_TRAIN_IMAGES})")
    p.add_argument("--model", type=existing_file, default=None,
                   help="use this model file instead of training")
    p.add_argument("--out", type=output_dir, default="spikegate-run",
                   help="run directory (default: spikegate-run)")
    p.add_argument("--hidden", type=positive_ints, default="64",
                   help="hidden layer sizes when training (default: 64)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="training epochs (default: the benchmark's)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--board", default="icebreaker", choices=("icebreaker", "ulx3s"),
                   help="ttfs: the board to synthesize for (pdnn, ssgd: both)")
    p.add_argument("--board-lanes", type=lanes, default=None,
                   help="lanes of the synthesized design (default: the board's)")
    p.add_argument("--no-synth", action="store_true", help="skip synthesis")
    p.add_argument("--force", action="store_true", help="redo every stage")
    _common(p, images_default=100)
    p.set_defaults(func=run)

    s = subparsers.add_parser("sim", help="simulate a model's hardware on test images")
    s.add_argument("model", type=existing_file)
    s.add_argument("--out", type=output_dir, default="spikegate-sim")
    _common(s, images_default=100)
    s.set_defaults(func=run_sim)

    c = subparsers.add_parser("compare", help="hardware against golden; non-zero exit on the first disagreement")
    c.add_argument("model", type=existing_file)
    c.add_argument("--out", type=output_dir, default="spikegate-compare")
    _common(c, images_default=100)
    c.set_defaults(func=run_compare)


def _check_lanes(option, value, sizes):
    """Refuse lanes given per layer whose count differs from the network's weight layers."""
    n_w = len(sizes) - 1
    if not isinstance(value, int) and len(value) != n_w:
        raise ValueError(f"{option} {','.join(map(str, value))} gives {len(value)} layers but the "
                         f"network {'-'.join(map(str, sizes))} has {n_w} weight layers: give one "
                         f"number, or {n_w} separated by commas")


def _check_inputs(args):
    """Everything that can be refused is refused here, before a model is trained or a file
    is written: the model file, the data set, the training settings, the images, the lanes
    against the network's layers and (``run`` with ``--board-lanes``) the board's fit."""
    flow = Flow(args.out, dataset=args.dataset, data=args.data, images=args.images,
                lanes=args.lanes, board=getattr(args, "board", "icebreaker"),
                board_lanes=getattr(args, "board_lanes", None), waves=args.waves,
                force=getattr(args, "force", False))
    # Parsed here once; the stages reuse it (flow.model).
    model = flow.model(args.model) if getattr(args, "model", None) is not None else None
    ds = flow.ds                              # loads (and checks) the data set
    n_test = len(ds.y_test)
    if args.images > n_test:
        raise ValueError(f"--images {args.images}: {args.dataset} has {n_test} test images")
    if model is not None:
        if (model.sizes[0], model.sizes[-1]) != (ds.n_inputs, ds.n_classes):
            raise ValueError(f"model {args.model!r} has {model.sizes[0]} inputs and "
                             f"{model.sizes[-1]} outputs but {args.dataset} has {ds.n_inputs} "
                             f"pixels and {ds.n_classes} classes")
        sizes, discrete = model.sizes, model.discrete
    else:
        from .train_ttfs import configs_for
        sizes = (ds.n_inputs, *args.hidden, ds.n_classes)
        overrides = {} if args.epochs is None else {"epochs": args.epochs}
        _, _, discrete = configs_for(args.dataset, seed=args.seed, **overrides)
    _check_lanes("--lanes", args.lanes, sizes)
    if getattr(args, "board_lanes", None) is not None:
        _check_lanes("--board-lanes", args.board_lanes, sizes)
        if not args.no_synth:
            from spikegate.boards.fit import check_fit
            if args.board == "icebreaker":
                device = "iCE40UP5K"
            else:
                from spikegate.boards.ulx3s import VARIANTS
                device = VARIANTS["85F"]          # make_design's default variant
            check_fit(tuple(sizes), args.board_lanes, device, config=discrete)
    return flow


def _print_mismatch(mm):
    where = ", ".join(f"{k} {v}" for k, v in mm.items() if k not in ("hardware", "golden"))
    print(f"DISAGREEMENT at {where}: hardware {mm['hardware']}, golden {mm['golden']}")


def _algorithm(args):
    """The algorithm of ``run`` / ``sim`` / ``compare``: ``--algorithm``, else the model
    file's, else ``ttfs``; a model file of another algorithm than ``--algorithm`` is refused."""
    given = getattr(args, "algorithm", None)
    model = getattr(args, "model", None)
    in_file = run_pdnn.model_algorithm(model) if model is not None else None
    if given is not None and in_file is not None and in_file != given:
        raise ValueError(f"--algorithm {given} but model {model!r} is a {in_file} model")
    algorithm = given or in_file or "ttfs"
    if algorithm != "pdnn" and getattr(args, "temporal", False):
        raise ValueError("--temporal is for --algorithm pdnn")
    if algorithm != "ssgd" and getattr(args, "train_images", None) is not None:
        raise ValueError(f"--train-images {args.train_images} is for --algorithm ssgd")
    return algorithm


def run(args):
    algorithm = _algorithm(args)
    if algorithm == "pdnn":
        return run_pdnn.run(args)
    if algorithm == "ssgd":
        return run_ssgd.run(args)
    from .report import write_report
    t0 = time.perf_counter()
    flow = _check_inputs(args)
    flow.out.mkdir(parents=True, exist_ok=True)
    model_path = flow.train(args.model, hidden=tuple(args.hidden), epochs=args.epochs,
                            seed=args.seed)
    model = flow.model(model_path)
    summary = flow.eval(model_path)
    hw = flow.sim(model_path)
    mismatch, golden = flow.compare(model_path, hw)
    synth = None if args.no_synth else flow.synth(model_path)
    x, y = flow.sample()
    report = write_report(flow.out / "report", model=model, dataset=args.dataset,
                          eval_summary=summary, y_sample=y, steps_sample=model.encode(x),
                          golden=golden, hw=hw, mismatch=mismatch, synth=synth,
                          stages=flow.stages, lanes=args.lanes, prototype=PROTOTYPE)
    print((report / "report.md").read_text())
    print(f"report: {report}/report.md  ({time.perf_counter() - t0:.0f} s)")
    if mismatch:
        _print_mismatch(mismatch)
        return 1
    return 0


def _simulate_and_compare(args):
    """``sim`` and ``compare``: check the inputs, simulate (or reuse), compare with golden."""
    flow = _check_inputs(args)
    flow.out.mkdir(parents=True, exist_ok=True)
    hw = flow.sim(Path(args.model))
    mismatch, golden = flow.compare(Path(args.model), hw)
    return flow, hw, mismatch, golden


def run_sim(args):
    algorithm = _algorithm(args)
    if algorithm == "pdnn":
        return run_pdnn.run_sim(args)
    if algorithm == "ssgd":
        return run_ssgd.run_sim(args)
    flow, hw, mismatch, golden = _simulate_and_compare(args)
    from .report import agreement
    ok = agreement(hw, golden)
    x, y = flow.sample()
    print(f"{len(y)} images: hardware accuracy {100 * (hw.decision == y).mean():.2f} %, "
          f"agrees with golden on {ok.sum()}/{len(ok)}, cycles per classification "
          f"mean {hw.cycles.mean():.0f}")
    if mismatch:
        _print_mismatch(mismatch)
        return 1
    return 0


def run_compare(args):
    algorithm = _algorithm(args)
    if algorithm == "pdnn":
        return run_pdnn.run_compare(args)
    if algorithm == "ssgd":
        return run_ssgd.run_compare(args)
    _, _, mismatch, golden = _simulate_and_compare(args)
    if mismatch:
        _print_mismatch(mismatch)
        return 1
    print(f"hardware = golden on all {len(golden.decision)} images "
          f"(class, decision step, spikes and lookups per layer, every neuron's spike step)")
    return 0
