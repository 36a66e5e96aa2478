"""The report of ``spikegate run --algorithm pdnn``: Markdown and JSON in one folder.

Written like the TTFS report (:mod:`spikegate.scripts.report`): into a temporary folder next
to the destination, renamed into place at the end (:func:`spikegate.golden.atomic.replace_dir`).

What it says
    accuracy of the float PD network, the fixed-point network (both on the whole test
    sequence) and the hardware (on the simulated frames); how many frames the hardware equals
    the golden model on, bit for bit; operations per frame and layer (row additions, and the
    weight additions they cost, ``row additions * n_out``) against the dense MLP's
    multiply-accumulates (``n_in * n_out``); cycles per frame against the spike events, with the
    least-squares fit ``cycles = a + b * walk`` of :mod:`spikegate.sim.pd_bench` (``walk``: the
    cycles of the frame's row walks, ``sum_l spikes_l * ceil(n_{l+1} / lanes_l)``); the
    timesteps (one per frame: the state carries over); and per board the resources and Fmax.
"""

import json
import shutil
from pathlib import Path

import numpy as np

from spikegate.golden import atomic

from .report import metrics, publish, stage_rows, synth_lines

__all__ = ["agreement", "write_pd_report", "cycle_summary", "ops_summary"]


def agreement(hw, golden):
    """Per frame: does the hardware equal the golden trace in class, events and row additions
    per layer and every neuron's ``s``, ``u``, ``y`` and ``act`` (what
    :func:`~spikegate.golden.pdnn_fixed.first_mismatch` compares)?"""
    T = len(golden.klass)
    if len(hw.klass) != T:
        return np.zeros(T, bool)
    ok = (np.asarray(hw.klass) == golden.klass)
    ok &= (np.asarray(hw.events) == golden.events).all(1) & (np.asarray(hw.spikes) == golden.spikes).all(1)
    for name in ("s", "u", "y", "act"):
        for a, b in zip(getattr(hw, name), getattr(golden, name)):
            a = np.asarray(a)
            ok &= (a == b).all(1) if a.shape == b.shape else False
    return ok


def ops_summary(sizes, row_additions_mean):
    """Per weight layer: mean row additions, weight additions (``* n_out``), the dense MLP's
    multiply-accumulates (``n_in * n_out``) and the ratio of the two."""
    rows = []
    for l, r in enumerate(row_additions_mean):
        n_in, n_out = sizes[l], sizes[l + 1]
        adds = r * n_out
        rows.append({"layer": l, "row_additions": r, "weight_additions": adds,
                     "dense_macs": n_in * n_out, "fraction": adds / (n_in * n_out)})
    return rows


def cycle_summary(sizes, lanes, golden, cycles):
    """Cycles per frame against the frame's spike events and row walks (lists, JSON-able)."""
    from spikegate.sim.pd_bench import fit
    sizes = np.asarray(sizes)
    L = len(sizes) - 1
    lanes_t = np.asarray((lanes,) * L if isinstance(lanes, int) else lanes)
    G = -(-sizes[1:] // lanes_t)
    walk = golden.spikes @ G
    events = golden.events.sum(1)
    cycles = np.asarray(cycles, np.float64)
    a, b, r2, worst = fit(walk, cycles)
    ea, eb, er2, _ = fit(events, cycles)
    return {"cycles_mean": float(cycles.mean()), "cycles_median": float(np.median(cycles)),
            "cycles_min": float(cycles.min()), "cycles_max": float(cycles.max()),
            "events_mean": float(events.mean()), "walk_mean": float(walk.mean()),
            "dense_walk": int((sizes[:-1] * G).sum()),
            "fit_walk": {"a": a, "b": b, "r2": r2, "max_residual": worst},
            "fit_events": {"a": ea, "b": eb, "r2": er2}}


def write_pd_report(dest, *, model, dataset, temporal, eval_summary, y_sample, golden, hw,
                    mismatch, cycles_mismatch, synth, stages, lanes):
    """Render the report of a PD run into the folder ``dest``. ``hw`` is the sim stage's
    :class:`~spikegate.sim.pd_run.PDHardwareResult`, ``golden`` the fixed-point trace of the
    same frames; ``synth`` is ``None`` (skipped) or ``{board: SynthReport dict}``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic.temp_dir(dest)
    try:
        sizes = list(model.sizes)
        n = len(y_sample)
        ok = agreement(hw, golden)
        hw_acc = float(np.mean(hw.klass == y_sample))
        g_acc = float(np.mean(golden.klass == y_sample))
        ops = ops_summary(sizes, eval_summary["row_additions_mean"])
        cyc = cycle_summary(sizes, lanes, golden, hw.cycles)
        data_name = ("temporal " if temporal else "") + dataset
        data = {
            "algorithm": "pdnn", "dataset": dataset, "temporal": temporal, "sizes": sizes,
            "lanes": lanes, "formats": [f.__dict__ for f in model.network.formats],
            "training": model.training,
            "accuracy": {"float": eval_summary["float_accuracy"],
                         "float_noise_free": eval_summary["float_noise_free_accuracy"],
                         "fixed": eval_summary["fixed_accuracy"],
                         "float_fixed_agreement": eval_summary["float_fixed_agreement"],
                         "fixed_sample": g_acc, "hardware_sample": hw_acc,
                         "test_frames": eval_summary["samples"], "sample_frames": n},
            "agreement": {"frames": n, "agree": int(ok.sum()), "first_mismatch": mismatch,
                          "cycles_equal_timing_model": cycles_mismatch is None,
                          "cycles_mismatch": cycles_mismatch},
            "operations_per_frame": ops,
            "events_per_frame": eval_summary["events_mean"],
            "cycles_per_frame": cyc,
            "timesteps": {"per_frame": 1, "sample_frames": n,
                          "test_frames": eval_summary["samples"]},
            "synth": synth,
            "synth_top": "PDClassifierShim: the classifier's ports through a shift register "
                         "(no UART protocol for PD frames yet)",
            "stages": stages,
        }
        (tmp / "report.json").write_text(json.dumps(data, indent=1, default=str))
        acc = data["accuracy"]
        fit_w, fit_e = cyc["fit_walk"], cyc["fit_events"]
        lines = [
            f"# spikegate run: PD network, {data_name}, network {'-'.join(map(str, sizes))}",
            "",
            f"PD classifier (sigma-delta spikes), 8-bit weights, lanes {lanes}; one timestep per "
            f"frame, the state carried from frame to frame (the test set is one sequence from the "
            f"zero state); hardware simulated as Verilog (Verilator) on the first {n} test frames.",
            "",
            "| quantity | value | reference |",
            "|---|---|---|",
            f"| accuracy, float PD network | {100 * acc['float']:.2f} % ({acc['test_frames']} test "
            f"frames) | noise free {100 * acc['float_noise_free']:.2f} % |",
            f"| accuracy, fixed-point network | {100 * acc['fixed']:.2f} % ({acc['test_frames']} "
            f"test frames) | same class as float on {100 * acc['float_fixed_agreement']:.1f} % |",
            f"| accuracy, hardware | {100 * hw_acc:.2f} % ({n} frames) | fixed point on the same: "
            f"{100 * g_acc:.2f} % |",
            f"| hardware = golden (class, events, row additions, every neuron's s, u, y, act) | "
            f"{int(ok.sum())}/{n} frames ({100 * ok.mean():.1f} %) | must be 100 % |",
            f"| cycles = timing model (expected_cycles) | "
            f"{'every frame' if cycles_mismatch is None else cycles_mismatch} | |",
        ]
        for o in ops:
            lines.append(f"| operations per frame, layer {o['layer']} ({sizes[o['layer']]}-"
                         f"{sizes[o['layer'] + 1]}) | {o['row_additions']:.1f} row additions = "
                         f"{o['weight_additions']:.0f} weight additions | dense MLP "
                         f"{o['dense_macs']} multiply-accumulates ({100 * o['fraction']:.1f} %) |")
        tot_add = sum(o["weight_additions"] for o in ops)
        tot_mac = sum(o["dense_macs"] for o in ops)
        lines += [
            f"| operations per frame, all layers | {tot_add:.0f} weight additions | dense MLP "
            f"{tot_mac} multiply-accumulates ({100 * tot_add / tot_mac:.1f} %) |",
            f"| spike events per frame (per layer) | "
            f"{' / '.join(f'{v:.1f}' for v in eval_summary['events_mean'])} | inputs "
            f"{' / '.join(map(str, sizes[:-1]))} |",
            f"| cycles per frame | mean {cyc['cycles_mean']:.0f}, median "
            f"{cyc['cycles_median']:.0f} (min {cyc['cycles_min']:.0f}, max "
            f"{cyc['cycles_max']:.0f}) | dense walk {cyc['dense_walk']} |",
            f"| cycles against row walks | cycles = {fit_w['a']:.0f} + {fit_w['b']:.2f} walk, "
            f"R^2 {fit_w['r2']:.3f} | walk mean {cyc['walk_mean']:.0f} |",
            f"| cycles against spike events | cycles = {fit_e['a']:.0f} + {fit_e['b']:.2f} "
            f"events, R^2 {fit_e['r2']:.3f} | events mean {cyc['events_mean']:.1f} |",
            f"| timesteps | 1 per frame ({n} simulated, {acc['test_frames']} evaluated) | |",
        ]
        lines += synth_lines(synth)
        if synth:
            lines += ["", "## Synthesis", "",
                      "The synthesized top is the classifier alone behind a shift register "
                      "(`PDClassifierShim`): there is no UART protocol for PD frames yet, so the "
                      "bitstream measures resources and Fmax and classifies nothing.", ""]
            for name, s in synth.items():
                if not s.get("fits", True):
                    lines.append(f"- {name}: does not fit ({s['error']})")
                    continue
                cp = s.get("critical_path") or []
                path = f"`{cp[0]}` -> `{cp[-1]}` ({len(cp)} nets)" if cp else "n/a"
                lines.append(f"- {name}: Fmax {s['fmax_mhz']:.1f} MHz (target "
                             f"{s['target_mhz']:.1f}), critical path {path}, build "
                             f"{s['seconds']:.0f} s, seed {s['seed']}")
        # Energy at the simulated lanes' cycles (the boards' own lanes may differ).
        mdata, mlines = metrics(sizes, tot_add, algorithm="pdnn",
                                board_runs={b.split("-")[0]: (s, cyc["cycles_mean"])
                                            for b, s in (synth or {}).items()
                                            if s.get("fits", True)},
                                unbuilt_cycles=cyc["cycles_mean"],
                                cycles_note="the simulation's (its lanes)")
        data.update(mdata)
        (tmp / "report.json").write_text(json.dumps(data, indent=1, default=str))
        lines += mlines
        if mismatch or cycles_mismatch:
            lines += ["", "## First disagreement", "", "```", str(mismatch or cycles_mismatch),
                      "```"]
        lines += stage_rows(stages)
        return publish(tmp, dest, lines)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
