"""``spikegate run``, ``spikegate sim`` and ``spikegate compare``: the main job and its stages.

``spikegate run`` (no argument: the embedded digits data) trains a TTFS network (or takes
``--model``), evaluates the float and 8-bit golden models, generates the Verilog and
simulates it under cocotb + Verilator on a sample of test images, compares hardware and
golden image by image, synthesizes for the default board and writes a report (Markdown,
JSON, PNG) into ``--out``. Stages already up to date are reused.
"""

import time
from pathlib import Path

from spikegate.golden.data import DATASETS
from spikegate.golden.model_file import load_model

from .flow import PROTOTYPE, Flow
from .train_ttfs import parse_hidden

__all__ = ["add_parser"]


def _lanes(text):
    vals = [int(v) for v in str(text).split(",")]
    return vals[0] if len(vals) == 1 else tuple(vals)


def _common(p, *, images_default):
    p.add_argument("--dataset", default="digits", choices=DATASETS, help="data set (default: digits)")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="IDX directory for mnist / fashion-mnist (default: $SPIKEGATE_DATA)")
    p.add_argument("--images", type=int, default=images_default,
                   help=f"test images to simulate (default: {images_default})")
    p.add_argument("--lanes", type=_lanes, default=8,
                   help="weights read per cycle: one number, or one per layer (default: 8)")
    p.add_argument("--waves", action="store_true", help="record an FST waveform of the simulation")


def add_parser(subparsers):
    p = subparsers.add_parser("run", help="the whole flow: train, eval, sim, compare, synth, report")
    p.add_argument("--model", default=None, help="use this model file instead of training")
    p.add_argument("--out", default="spikegate-run", help="run directory (default: spikegate-run)")
    p.add_argument("--hidden", default="64", help="hidden layer sizes when training (default: 64)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the benchmark's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--board", default="icebreaker", choices=("icebreaker", "ulx3s"))
    p.add_argument("--board-lanes", type=_lanes, default=None,
                   help="lanes of the synthesized design (default: the board's)")
    p.add_argument("--no-synth", action="store_true", help="skip synthesis")
    p.add_argument("--force", action="store_true", help="redo every stage")
    _common(p, images_default=100)
    p.set_defaults(func=run)

    s = subparsers.add_parser("sim", help="simulate a model's hardware on test images")
    s.add_argument("model")
    s.add_argument("--out", default="spikegate-sim")
    _common(s, images_default=100)
    s.set_defaults(func=run_sim)

    c = subparsers.add_parser("compare", help="hardware against golden; non-zero exit on the first disagreement")
    c.add_argument("model")
    c.add_argument("--out", default="spikegate-compare")
    _common(c, images_default=100)
    c.set_defaults(func=run_compare)


def _check_inputs(args):
    """Everything that can be refused is refused here, before a file is written."""
    if getattr(args, "model", None) is not None:
        if not Path(args.model).is_file():
            raise FileNotFoundError(f"model file {args.model!r} does not exist")
        model = load_model(args.model)
    else:
        model = None
    flow = Flow(args.out, dataset=args.dataset, data=args.data, images=args.images,
                lanes=args.lanes, board=getattr(args, "board", "icebreaker"),
                board_lanes=getattr(args, "board_lanes", None), waves=args.waves,
                force=getattr(args, "force", False))
    flow.ds                                   # loads (and checks) the data set
    if model is not None and model.sizes[0] != flow.ds.n_inputs:
        raise ValueError(f"model {args.model!r} has {model.sizes[0]} inputs but {args.dataset} "
                         f"images have {flow.ds.n_inputs}")
    return flow


def _print_mismatch(mm):
    where = ", ".join(f"{k} {v}" for k, v in mm.items() if k not in ("hardware", "golden"))
    print(f"DISAGREEMENT at {where}: hardware {mm['hardware']}, golden {mm['golden']}")


def run(args):
    from .report import write_report
    t0 = time.perf_counter()
    flow = _check_inputs(args)
    hidden = tuple(parse_hidden(args.hidden))
    flow.out.mkdir(parents=True, exist_ok=True)
    model_path = flow.train(args.model, hidden=hidden, epochs=args.epochs, seed=args.seed)
    model = load_model(model_path)
    summary = flow.eval(model_path)
    sim = flow.sim(model_path)
    mismatch, golden = flow.compare(model_path, sim)
    synth = None if args.no_synth else flow.synth(model_path)
    x, y = flow.sample()
    report = write_report(flow.out / "report", model=model, dataset=args.dataset,
                          eval_summary=summary, y_sample=y, steps_sample=model.encode(x),
                          golden=golden, sim=sim, mismatch=mismatch, synth=synth,
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
    sim = flow.sim(Path(args.model))
    mismatch, golden = flow.compare(Path(args.model), sim)
    return flow, sim, mismatch, golden


def run_sim(args):
    flow, sim, mismatch, golden = _simulate_and_compare(args)
    from .report import agreement
    ok = agreement(sim, golden)
    x, y = flow.sample()
    print(f"{len(y)} images: hardware accuracy {100 * (sim['decision'] == y).mean():.2f} %, "
          f"agrees with golden on {ok.sum()}/{len(ok)}, cycles per classification "
          f"mean {sim['cycles'].mean():.0f}")
    if mismatch:
        _print_mismatch(mismatch)
        return 1
    return 0


def run_compare(args):
    _, _, mismatch, golden = _simulate_and_compare(args)
    if mismatch:
        _print_mismatch(mismatch)
        return 1
    print(f"hardware = golden on all {len(golden.decision)} images "
          f"(class, decision step, spikes and lookups per layer, every neuron's spike step)")
    return 0
