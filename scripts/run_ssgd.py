"""``spikegate run --algorithm ssgd`` and ``spikegate sim`` / ``compare`` of an SSGD model file.

The SSGD network's flow (:mod:`spikegate.scripts.flow_ssgd`): train (the bit-exact fixed-point
training, or ``--model``), eval (fixed point and float on the whole test set), sim (the first
``--images`` test images through the forward hardware, Verilator), compare (bit for bit, image
by image, and the cycles against the timing model), train-sim (``--train-images`` training
images through the on-chip trainer, the weights against the golden training), synth (the
trainer on the iCEBreaker and the ULX3S-85F, unless ``--no-synth``: resources, Fmax, or which
resource a build that does not fit lacks), report (:mod:`spikegate.scripts.report_ssgd`). Every
option is checked by :func:`check_inputs` before anything is trained or written.
"""

import time
from pathlib import Path

__all__ = ["check_inputs", "run", "run_sim", "run_compare", "DEFAULT_TRAIN_IMAGES"]

#: Training images through the on-chip trainer when ``--train-images`` is not given.
DEFAULT_TRAIN_IMAGES = 4


def check_inputs(args):
    """Refuse what can be refused before any work: the model file (an SSGD one, with the data
    set's inputs and classes), the data set, ``--images`` against its test images,
    ``--train-images`` against its training images, ``--hidden`` (one layer), ``--epochs``
    with ``--model``, the lanes and ``--board-lanes`` against the network's two weight layers;
    returns the :class:`~spikegate.scripts.flow_ssgd.SSGDFlow`."""
    from .flow_ssgd import SSGDFlow
    from .run import _check_lanes
    train_images = getattr(args, "train_images", None)
    flow = SSGDFlow(args.out, dataset=args.dataset, data=args.data, images=args.images,
                    lanes=args.lanes, board_lanes=getattr(args, "board_lanes", None),
                    waves=args.waves, force=getattr(args, "force", False),
                    train_images=DEFAULT_TRAIN_IMAGES if train_images is None else train_images)
    hidden = getattr(args, "hidden", None)
    if hidden is not None and len(hidden) != 1:
        raise ValueError(f"--hidden {','.join(map(str, hidden))}: the SSGD network has one "
                         f"hidden layer, give one size")
    model = flow.model(args.model) if getattr(args, "model", None) is not None else None
    ds = flow.ds
    if args.images > len(ds.y_test):
        raise ValueError(f"--images {args.images}: {args.dataset} has {len(ds.y_test)} test "
                         f"images")
    if flow.train_images > len(ds.y_train):
        raise ValueError(f"--train-images {flow.train_images}: {args.dataset} has "
                         f"{len(ds.y_train)} training images")
    if model is not None:
        if (model.sizes[0], model.sizes[-1]) != (ds.n_inputs, ds.n_classes):
            raise ValueError(f"model {args.model!r} has {model.sizes[0]} inputs and "
                             f"{model.sizes[-1]} outputs but {args.dataset} has {ds.n_inputs} "
                             f"pixels and {ds.n_classes} classes")
        sizes = model.sizes
    else:
        sizes = (ds.n_inputs, *(hidden or (64,)), ds.n_classes)
    if getattr(args, "epochs", None) is not None and model is not None:
        raise ValueError("--epochs trains a network: give it or --model, not both")
    _check_lanes("--lanes", args.lanes, sizes)
    if getattr(args, "board_lanes", None) is not None:
        _check_lanes("--board-lanes", args.board_lanes, sizes)
    return flow


def _print_mismatch(*mismatches):
    for m in mismatches:
        if m:
            print(f"DISAGREEMENT at {m}")


def run(args):
    from .report_ssgd import write_ssgd_report
    t0 = time.perf_counter()
    flow = check_inputs(args)
    flow.out.mkdir(parents=True, exist_ok=True)
    model_path = flow.train(args.model, hidden=args.hidden[0], epochs=args.epochs,
                            seed=args.seed)
    model = flow.model(model_path)
    summary = flow.eval(model_path)
    hw = flow.sim(model_path)
    mismatch, cycles_mismatch, golden, model_cycles = flow.compare(model_path, hw)
    thw, tg, train_mismatch = flow.train_sim(model_path)
    synth = None if args.no_synth else flow.synth(model_path)
    _, y = flow.sample(model.fmt)
    report = write_ssgd_report(flow.out / "report", model=model, dataset=args.dataset,
                               eval_summary=summary, y_sample=y, golden=golden, hw=hw,
                               mismatch=mismatch, cycles_mismatch=cycles_mismatch,
                               train_hw=thw, train_golden=tg, train_mismatch=train_mismatch,
                               stages=flow.stages, lanes=flow._lanes(),
                               synth=synth)
    print((report / "report.md").read_text())
    print(f"report: {report}/report.md  ({time.perf_counter() - t0:.0f} s)")
    if mismatch or cycles_mismatch or train_mismatch:
        _print_mismatch(mismatch, cycles_mismatch, train_mismatch)
        return 1
    return 0


def _simulate_and_compare(args):
    flow = check_inputs(args)
    flow.out.mkdir(parents=True, exist_ok=True)
    hw = flow.sim(Path(args.model))
    mismatch, cycles_mismatch, golden, _ = flow.compare(Path(args.model), hw)
    return flow, hw, mismatch, cycles_mismatch, golden


def run_sim(args):
    from .report_ssgd import agreement
    flow, hw, mismatch, cycles_mismatch, golden = _simulate_and_compare(args)
    _, y = flow.sample(flow.model(args.model).fmt)
    ok = agreement(hw, golden)
    print(f"{len(y)} images: hardware accuracy {100 * (hw.klass == y).mean():.2f} %, equals "
          f"golden on {int(ok.sum())}/{len(ok)}, forward cycles per image mean "
          f"{hw.cycles.mean():.0f}, active events per image mean {hw.active.mean():.1f}")
    if mismatch or cycles_mismatch:
        _print_mismatch(mismatch, cycles_mismatch)
        return 1
    return 0


def run_compare(args):
    _, _, mismatch, cycles_mismatch, golden = _simulate_and_compare(args)
    if mismatch or cycles_mismatch:
        _print_mismatch(mismatch, cycles_mismatch)
        return 1
    print(f"hardware = golden on all {len(golden.klass)} images (every hidden membrane, spike, "
          f"active flag and surrogate value, readout membranes, active events, logits, class, "
          f"counters); cycles = the timing model")
    return 0
