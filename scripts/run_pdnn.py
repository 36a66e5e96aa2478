"""``spikegate run --algorithm pdnn`` and ``spikegate sim`` / ``compare`` of a PD model file.

The PD network's flow (:mod:`spikegate.scripts.flow_pdnn`): train (or ``--model``), eval
(float and fixed point on the whole test sequence), sim (the first ``--images`` test frames on
the hardware, Verilator), compare (bit for bit, frame by frame), synth (iCEBreaker and
ULX3S-85F, unless ``--no-synth``), report (:mod:`spikegate.scripts.report_pdnn`). Every option
is checked by :func:`check_inputs` before anything is trained or written.
"""

import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["model_algorithm", "check_inputs", "run", "run_sim", "run_compare"]


def model_algorithm(path):
    """The ``algorithm`` of a spikegate model file's ``meta`` (``"ttfs"`` when it names none),
    or ``None`` when the file cannot be read as one (its loader then says why)."""
    try:
        raw = Path(path).read_bytes()
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            meta = json.loads(str(z["meta"])) if "meta" in z.files else None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if not isinstance(meta, dict):
        return None
    return meta.get("algorithm", "ttfs")


def _check_lanes(option, value, sizes):
    from .run import _check_lanes as check
    check(option, value, sizes)


def check_inputs(args):
    """Refuse what can be refused before any work: the model file (a PD one, with the data
    set's inputs and classes), the data set, ``--images`` against its test frames, the lanes
    against the network's weight layers; returns the :class:`~spikegate.scripts.flow_pdnn.PDFlow`."""
    from .flow_pdnn import PDFlow
    flow = PDFlow(args.out, dataset=args.dataset, data=args.data, images=args.images,
                  lanes=args.lanes, board_lanes=getattr(args, "board_lanes", None),
                  waves=args.waves, force=getattr(args, "force", False),
                  temporal=getattr(args, "temporal", False),
                  smoothing_steps=getattr(args, "smoothing_steps", 1000))
    model = flow.model(args.model) if getattr(args, "model", None) is not None else None
    ds = flow.ds
    n_test = len(ds.y_test)
    if args.images > n_test:
        raise ValueError(f"--images {args.images}: {args.dataset} has {n_test} test frames")
    if model is not None:
        if (model.sizes[0], model.sizes[-1]) != (ds.n_inputs, ds.n_classes):
            raise ValueError(f"model {args.model!r} has {model.sizes[0]} inputs and "
                             f"{model.sizes[-1]} outputs but {args.dataset} has {ds.n_inputs} "
                             f"pixels and {ds.n_classes} classes")
        sizes = model.sizes
    else:
        sizes = (ds.n_inputs, *args.hidden, ds.n_classes)
    if getattr(args, "epochs", None) is not None and model is not None:
        raise ValueError("--epochs trains a network: give it or --model, not both")
    _check_lanes("--lanes", args.lanes, sizes)
    if getattr(args, "board_lanes", None) is not None:
        _check_lanes("--board-lanes", args.board_lanes, sizes)
    return flow


def _hardware_line(n, hw, y, ok):
    return (f"{n} frames: hardware accuracy {100 * (hw.klass == y).mean():.2f} %, equals golden "
            f"on {int(ok.sum())}/{len(ok)}, cycles per frame mean {hw.cycles.mean():.0f}")


def _print_mismatch(mismatch, cycles_mismatch):
    if mismatch:
        print(f"DISAGREEMENT at {mismatch}")
    if cycles_mismatch:
        print(f"CYCLES differ from the timing model at {cycles_mismatch}")


def run(args):
    from .report_pdnn import write_pd_report
    t0 = time.perf_counter()
    flow = check_inputs(args)
    flow.out.mkdir(parents=True, exist_ok=True)
    model_path = flow.train(args.model, hidden=tuple(args.hidden), epochs=args.epochs,
                            seed=args.seed)
    model = flow.model(model_path)
    summary = flow.eval(model_path)
    hw = flow.sim(model_path)
    mismatch, cycles_mismatch, golden, _ = flow.compare(model_path, hw)
    synth = None if args.no_synth else flow.synth(model_path)
    _, y = flow.sample()
    report = write_pd_report(flow.out / "report", model=model, dataset=args.dataset,
                             temporal=flow.temporal, eval_summary=summary, y_sample=y,
                             golden=golden, hw=hw, mismatch=mismatch,
                             cycles_mismatch=cycles_mismatch, synth=synth, stages=flow.stages,
                             lanes=args.lanes)
    print((report / "report.md").read_text())
    print(f"report: {report}/report.md  ({time.perf_counter() - t0:.0f} s)")
    if mismatch or cycles_mismatch:
        _print_mismatch(mismatch, cycles_mismatch)
        return 1
    return 0


def _simulate_and_compare(args):
    flow = check_inputs(args)
    flow.out.mkdir(parents=True, exist_ok=True)
    hw = flow.sim(Path(args.model))
    mismatch, cycles_mismatch, golden, _ = flow.compare(Path(args.model), hw)
    return flow, hw, mismatch, cycles_mismatch, golden


def run_sim(args):
    from .report_pdnn import agreement
    flow, hw, mismatch, cycles_mismatch, golden = _simulate_and_compare(args)
    _, y = flow.sample()
    print(_hardware_line(len(y), hw, y, agreement(hw, golden)))
    if mismatch or cycles_mismatch:
        _print_mismatch(mismatch, cycles_mismatch)
        return 1
    return 0


def run_compare(args):
    _, _, mismatch, cycles_mismatch, golden = _simulate_and_compare(args)
    if mismatch or cycles_mismatch:
        _print_mismatch(mismatch, cycles_mismatch)
        return 1
    print(f"hardware = golden on all {len(golden.klass)} frames (class, events and row additions "
          f"per layer, every neuron's s, u, y and act); cycles = the timing model")
    return 0
