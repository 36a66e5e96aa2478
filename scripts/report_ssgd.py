"""The report of ``spikegate run --algorithm ssgd``: Markdown and JSON in one folder.

Written like the TTFS and PD reports (:mod:`spikegate.scripts.report`): into a temporary
folder next to the destination, renamed into place at the end.

What it says
    accuracy of the float forward of the model's weights, of the float counterpart of the
    training (when this run trained it), of the fixed-point network (both on the whole test
    set) and of the hardware (on the simulated images); how many images the forward hardware
    equals the golden model on, bit for bit, and whether its cycles equal the timing model;
    the active fraction per layer (active events over the hidden layer's ``(T - 1) H``
    entries; the readout is a leaky integrator without threshold: no events) and the spikes;
    forward cycles against the spikes (least squares, from the hardware's counters); the
    on-chip training run: hardware = golden (classes, active events, sampled weights after
    every image, every weight at the end), forward and backward cycles per image, the backward
    against the active events, and the dense backward on the same datapath (every ``(t >= 1,
    j)`` an event: the hardware's cycles minus the gradient engine's model plus the model's
    dense walk); synaptic operations (:func:`~spikegate.scripts.report.metrics`, algorithm
    ``ssgd``); per board the trainer's synthesis (resources against the device, Fmax against
    the target; a build that does not fit names the resource and nextpnr's count) and the
    energy estimate at a built board's Fmax and logic cells and the forward's cycles at its
    lanes (the other boards, and every board with ``--no-synth``: at the default clock and the
    whole device, see :func:`~spikegate.scripts.report.energy_estimates`).
"""

import json
import shutil
from pathlib import Path

import numpy as np

from spikegate.golden import atomic

from .flow_ssgd import TRAIN_SAMPLES
from .report import metrics, publish, stage_rows, synth_lines

__all__ = ["agreement", "write_ssgd_report", "backward_summary", "SYNTH_TOP"]

SYNTH_TOP = ("SSGDTrainerShim: the trainer's ports through a shift register (no UART protocol "
             "for on-chip training yet): resources and Fmax, it trains nothing")


def agreement(hw, golden):
    """Per image: does the forward hardware equal the golden trace in class, logits, and every
    hidden membrane, spike, active flag and surrogate value and readout membrane?"""
    B = len(golden.klass)
    if len(hw.klass) != B:
        return np.zeros(B, bool)
    ok = (np.asarray(hw.klass) == golden.klass) & (np.asarray(hw.z) == golden.z).all(1)
    pairs = [(hw.v, golden.hidden.v), (hw.spike, golden.hidden.spike),
             (hw.act, golden.hidden.active), (hw.g, golden.hidden.g), (hw.o, golden.readout.v)]
    for a, b in pairs:
        a = np.asarray(a)
        ok &= (a == b).all(axis=(1, 2)) if a.shape == b.shape else False
    return ok


def _fit(x, y):
    from spikegate.sim.pd_bench import fit
    a, b, r2, worst = fit(x, y)
    return {"a": a, "b": b, "r2": r2, "max_residual": worst}


def backward_summary(train_hw, train_golden, sizes, timesteps):
    """The on-chip training run's cycles: forward and backward per image, the backward against
    the active events, and the dense backward on the same datapath (JSON-able dict)."""
    from spikegate.hdl import ssgd_backward
    n_in, H, _ = sizes
    bwd = np.asarray(train_hw["backward_cycles"], np.float64)
    fwd = np.asarray(train_hw["forward_cycles"], np.float64)
    active = np.asarray(train_hw["active"], np.float64)
    grad = np.asarray(train_golden["grad_cycles"], np.float64)
    dense_grad = ssgd_backward.expected_cycles(np.repeat(np.arange(H), timesteps - 1), n_in)
    dense = bwd - grad + dense_grad
    return {"images": int(len(bwd)), "forward_cycles_mean": float(fwd.mean()),
            "backward_cycles_mean": float(bwd.mean()), "backward_cycles_min": float(bwd.min()),
            "backward_cycles_max": float(bwd.max()), "active_events_mean": float(active.mean()),
            "dense_events": int((timesteps - 1) * H),
            "dense_backward_cycles_mean": float(dense.mean()),
            "dense_over_sparse": float(dense.mean() / bwd.mean()),
            "fit_backward_events": _fit(active, bwd)}


def write_ssgd_report(dest, *, model, dataset, eval_summary, y_sample, golden, hw, mismatch,
                      cycles_mismatch, train_hw, train_golden, train_mismatch, stages, lanes,
                      synth):
    """Render the report of an SSGD run into the folder ``dest``. ``hw`` is the sim stage's
    :class:`~spikegate.sim.ssgd_run.SSGDHardwareResult`, ``golden`` the golden trace of the
    same images; ``train_hw`` / ``train_golden`` the on-chip training run and its golden
    (:mod:`spikegate.sim.ssgd_train_run`); ``synth`` the synth stage's ``{board: dict}`` or
    ``None`` (``--no-synth``)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic.temp_dir(dest)
    try:
        sizes = [int(v) for v in model.sizes]
        n_in, H, C = sizes
        T = model.fmt.n_steps
        n = len(y_sample)
        ok = agreement(hw, golden)
        hw_acc = float(np.mean(hw.klass == y_sample))
        g_acc = float(np.mean(golden.klass == y_sample))
        spikes = np.asarray(hw.in_spikes) + np.asarray(hw.spikes)
        reads = np.asarray(hw.lookups).sum(1)
        fwd_fit = _fit(spikes, hw.cycles)
        bwd = backward_summary(train_hw, train_golden, sizes, T)
        tr = model.training or {}
        ev = eval_summary
        data = {
            "algorithm": "ssgd", "dataset": dataset, "sizes": sizes, "lanes": list(lanes),
            "timesteps": T, "training": tr,
            "accuracy": {"float_forward": ev["float_accuracy"],
                         "float_trained": tr.get("float_trained_test_acc"),
                         "fixed": ev["fixed_accuracy"],
                         "float_fixed_agreement": ev["float_fixed_agreement"],
                         "fixed_sample": g_acc, "hardware_sample": hw_acc,
                         "test_images": ev["samples"], "sample_images": n},
            "agreement": {"images": n, "agree": int(ok.sum()), "first_mismatch": mismatch,
                          "cycles_equal_timing_model": cycles_mismatch is None,
                          "cycles_mismatch": cycles_mismatch},
            "activity": {"hidden_active_fraction": ev["hidden_active_fraction"],
                         "hidden_active_fraction_sample": float(np.mean(hw.active) / ((T - 1) * H)),
                         "active_events_mean": ev["active_events_mean"],
                         "active_events_mean_sample": float(np.mean(hw.active)),
                         "hidden_spike_fraction": ev["hidden_spike_fraction"],
                         "input_spikes_mean": ev["input_spikes_mean"],
                         "hidden_spikes_mean": ev["hidden_spikes_mean"],
                         "readout_active_fraction": None},
            "forward_cycles": {"mean": float(np.mean(hw.cycles)),
                               "min": int(np.min(hw.cycles)), "max": int(np.max(hw.cycles)),
                               "spikes_mean": float(spikes.mean()), "fit_spikes": fwd_fit},
            "on_chip_training": {**bwd, "equal_golden": train_mismatch is None,
                                 "first_mismatch": train_mismatch,
                                 "weights_changed": [int((train_golden[f"w_final{l}"]
                                                          != model.weights[l]).sum())
                                                     for l in range(2)]},
            "synth": synth, "synth_top": SYNTH_TOP,
            "stages": stages,
        }
        acc, act, oc = data["accuracy"], data["activity"], data["on_chip_training"]
        ft = (f"{100 * acc['float_trained']:.2f} %" if acc["float_trained"] is not None
              else "n/a (model file not trained by this run)")
        lines = [
            f"# spikegate run: SSGD network, {dataset}, network {'-'.join(map(str, sizes))}",
            "",
            f"LIF hidden layer and leaky-integrator readout, 8-bit weights, T = {T} steps, "
            f"lanes {tuple(lanes)}; forward simulated as Verilog (Verilator) on the first {n} "
            f"test images, on-chip training (forward, sparse backward, update) on the first "
            f"{oc['images']} training images from the model's weights.",
            "",
            "| quantity | value | reference |",
            "|---|---|---|",
            f"| accuracy, float forward of the weights | {100 * acc['float_forward']:.2f} % "
            f"({acc['test_images']} test images) | float training, same algorithm: {ft} |",
            f"| accuracy, fixed point (golden) | {100 * acc['fixed']:.2f} % "
            f"({acc['test_images']} test images) | same class as float on "
            f"{100 * acc['float_fixed_agreement']:.1f} % |",
            f"| accuracy, hardware | {100 * hw_acc:.2f} % ({n} images) | fixed point on the "
            f"same: {100 * g_acc:.2f} % |",
            f"| forward hardware = golden (class, logits, every membrane, spike, active flag, "
            f"surrogate, active event, counter) | {int(ok.sum())}/{n} images "
            f"({100 * ok.mean():.1f} %){'' if mismatch is None else ' FIRST MISMATCH below'} "
            f"| must be 100 % |",
            f"| forward cycles = timing model (expected_cycles) | "
            f"{'every image' if cycles_mismatch is None else cycles_mismatch} | |",
            f"| active fraction, hidden layer | {100 * act['hidden_active_fraction']:.2f} % of "
            f"(T-1) H = {(T - 1) * H} entries (test set) | sample: "
            f"{100 * act['hidden_active_fraction_sample']:.2f} % |",
            "| active fraction, readout | none: leaky integrators without threshold (their "
            f"gradient is one {H} x {C} outer product per image) | |",
            f"| active events per image | {act['active_events_mean']:.1f} (test set) | sample: "
            f"{act['active_events_mean_sample']:.1f} |",
            f"| spikes per image | inputs {act['input_spikes_mean']:.1f}, hidden "
            f"{act['hidden_spikes_mean']:.1f} ({100 * act['hidden_spike_fraction']:.2f} % of "
            f"T H) | |",
            f"| forward cycles per image | mean {data['forward_cycles']['mean']:.0f} (min "
            f"{data['forward_cycles']['min']}, max {data['forward_cycles']['max']}) | |",
            f"| forward cycles against spikes (input + hidden) | cycles = {fwd_fit['a']:.0f} + "
            f"{fwd_fit['b']:.2f} spikes, R^2 {fwd_fit['r2']:.3f} | spikes mean "
            f"{spikes.mean():.1f} |",
            f"| on-chip training = golden (classes, active events, {TRAIN_SAMPLES} weights of each matrix "
            f"after every image, every weight at the end) | "
            f"{'yes' if train_mismatch is None else 'NO: ' + train_mismatch} "
            f"({oc['images']} images; {oc['weights_changed'][0]} W1 and "
            f"{oc['weights_changed'][1]} W2 weights changed) | must be yes |",
            f"| on-chip training: forward / backward cycles per image | "
            f"{oc['forward_cycles_mean']:.0f} / {oc['backward_cycles_mean']:.0f} (backward min "
            f"{oc['backward_cycles_min']:.0f}, max {oc['backward_cycles_max']:.0f}) | |",
            f"| backward cycles against active events | cycles = "
            f"{oc['fit_backward_events']['a']:.0f} + {oc['fit_backward_events']['b']:.2f} "
            f"events, R^2 {oc['fit_backward_events']['r2']:.3f} | events mean "
            f"{oc['active_events_mean']:.1f} |",
            f"| dense backward on the same datapath ({oc['dense_events']} events) | "
            f"{oc['dense_backward_cycles_mean']:.0f} cycles per image | "
            f"{oc['dense_over_sparse']:.1f}x the sparse backward |",
        ]
        lines += synth_lines(synth)
        if synth:
            lines += ["", "## Synthesis", "",
                      f"The synthesized top is the trainer alone behind a shift register "
                      f"(`{SYNTH_TOP.split(':')[0]}`): there is no UART protocol for on-chip "
                      f"training yet, so the bitstream measures resources and Fmax and trains "
                      f"nothing. The model's weights are the block RAMs' initial contents.", ""]
            for name, s in synth.items():
                bf = s["board_forward"]
                if not s.get("fits", True):
                    lines.append(f"- {name}: does not fit ({s['error']}); forward at lanes "
                                 f"{tuple(bf['lanes'])}: {bf['cycles_mean']:.0f} cycles per "
                                 f"image (timing model)")
                    continue
                cp = s.get("critical_path") or []
                path = f"`{cp[0]}` -> `{cp[-1]}` ({len(cp)} nets)" if cp else "n/a"
                lines.append(f"- {name}: Fmax {s['fmax_mhz']:.1f} MHz (target "
                             f"{s['target_mhz']:.1f}), critical path {path}, build "
                             f"{s['seconds']:.0f} s, seed {s['seed']}; forward at lanes "
                             f"{tuple(bf['lanes'])}: {bf['cycles_mean']:.0f} cycles per image "
                             f"(timing model, {bf['images']} images)")
        # Energy: a built board at its Fmax, logic cells and the forward's cycles at its lanes;
        # the others at the simulated forward's cycles.
        built = {b: (s, s["board_forward"]["cycles_mean"]) for b, s in (synth or {}).items()
                 if s.get("fits", True)}
        mdata, mlines = metrics(sizes, float(reads.mean()), algorithm="ssgd", board_runs=built,
                                unbuilt_cycles=data["forward_cycles"]["mean"],
                                cycles_note="the simulated forward's")
        data.update(mdata)
        (tmp / "report.json").write_text(json.dumps(data, indent=1, default=str))
        lines += mlines
        lines += ["", "Synaptic operations: the forward's weight reads on the simulated images "
                  "(each input spike reads a row of H weights, each hidden spike a row of C; "
                  "every read one accumulate into a membrane); the training's backward is not "
                  "counted."]
        for title, m in (("First disagreement (forward)", mismatch or cycles_mismatch),
                         ("First disagreement (on-chip training)", train_mismatch)):
            if m:
                lines += ["", f"## {title}", "", "```", str(m), "```"]
        lines += stage_rows(stages)
        return publish(tmp, dest, lines)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
