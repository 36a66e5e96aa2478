"""The report of ``spikegate run``: Markdown, JSON and PNG in one folder.

:func:`write_report` renders into a temporary folder next to the destination and renames it
into place (:func:`spikegate.golden.atomic.replace_dir`), so a report is either complete or
absent.
"""

import json
import shutil
from pathlib import Path

import numpy as np

from spikegate.golden.ttfs_discrete import NO_SPIKE

from spikegate.golden import atomic

__all__ = ["agreement", "write_report", "stage_rows", "publish", "metrics", "energy_estimates",
           "not_fitting_row", "synth_lines", "unbuilt_basis", "ENERGY_BOARDS"]


def _used(synth, kind):
    """Cells of ``kind`` (``logic``, ...) a synth report dict uses, or ``None``."""
    from spikegate.boards.fit import DEVICES
    name = getattr(DEVICES[synth["device"]], kind, None)
    r = synth.get("resources", {}).get(name) if name else None
    return r["used"] if r else None


#: The boards every report estimates energy for, with the device assumed when nothing was built.
ENERGY_BOARDS = {"icebreaker": "iCE40UP5K", "ulx3s": "LFE5U-85F"}


def unbuilt_basis(board):
    """What an energy estimate assumes for ``board`` when no design was synthesized: its
    default ``sync`` clock (the Fmax target the board builds are made for), all logic cells of
    its device (an upper bound of the logic term) and the device. Returns ``(clock_mhz, luts,
    device)``."""
    from spikegate.boards import icebreaker, ulx3s
    from spikegate.boards.fit import DEVICES
    if board not in ENERGY_BOARDS:
        raise ValueError(f"board must be one of {', '.join(ENERGY_BOARDS)}, not {board!r}")
    d = DEVICES[ENERGY_BOARDS[board]]
    clk = {"icebreaker": icebreaker.DEFAULT_CLK_HZ, "ulx3s": ulx3s.DEFAULT_CLK_HZ}[board]
    return clk / 1e6, d.resources[d.logic], d.name


def not_fitting_row(name, s):
    """The report table's row of a synth stage's build that does not fit (the record of
    :func:`spikegate.scripts.flow.not_fitting`)."""
    return (f"| synthesis, {name} ({s['device']}) | DOES NOT FIT: needs {s['used']} "
            f"{s['resource']}, the device has {s['available']} | no bitstream, no Fmax |")


def synth_lines(synth):
    """The report table's rows of a PD or SSGD synth stage (``{board: dict}`` of
    :meth:`~spikegate.scripts.flow.Flow._synth_boards`; ``None``: skipped)."""
    if not synth:
        return ["| synthesis | skipped (--no-synth) | |"]
    lines = []
    for name, s in synth.items():
        if not s.get("fits", True):
            lines.append(not_fitting_row(name, s))
            continue
        status = "met" if s["fmax_mhz"] >= s["target_mhz"] else "missed"
        lines.append(f"| Fmax, {name} ({s['device']}, lanes {tuple(s['lanes'])}) | "
                     f"{s['fmax_mhz']:.1f} MHz | target {s['target_mhz']:.1f} MHz ({status}) |")
        for res, r in s["resources"].items():
            lines.append(f"| {name}: {res} | {r['used']} / {r['available']} | |")
        if s.get("ffs"):
            lines.append(f"| {name}: flip-flops (Yosys) | {s['ffs']} | |")
    return lines


def energy_estimates(weights_read, macs, board_runs, unbuilt_cycles=None, cycles_note="simulated"):
    """The energy estimate per board (:func:`spikegate.sim.energy.estimate`), each with its
    ``basis``: at a synthesized board's Fmax and logic cells when ``board_runs`` (``{board:
    (synth report dict, cycles per inference)}``) has it, else, given ``unbuilt_cycles`` (cycles
    per inference: a number, or ``{board: number}``; ``cycles_note`` says where they come from),
    at the board's default clock with all its device's logic cells (:func:`unbuilt_basis`)."""
    from spikegate.sim.energy import estimate
    runs = {str(k).split("-")[0]: v for k, v in board_runs.items()}
    out = {}
    for board in ENERGY_BOARDS:
        synth, cycles = runs.get(board, (None, None))
        luts = _used(synth, "logic") if synth else None
        if synth and synth.get("fmax_mhz") and luts is not None and cycles is not None:
            clk = synth["fmax_mhz"]
            basis = (f"this build: {synth['device']} at its Fmax {clk:.1f} MHz, {luts} logic "
                     f"cells used, the board's cycles")
        elif unbuilt_cycles is not None:
            cycles = unbuilt_cycles[board] if isinstance(unbuilt_cycles, dict) else unbuilt_cycles
            clk, luts, device = unbuilt_basis(board)
            basis = (f"no build: {device} at the board's default clock {clk:.0f} MHz, all {luts} "
                     f"logic cells (an upper bound of the logic term), {cycles_note} cycles")
        else:
            continue
        e = estimate(board, cycles=float(cycles), weight_reads=weights_read, clock_mhz=clk,
                     luts=luts, macs=macs)
        out[board] = {**e, "basis": basis, "cycles": float(cycles), "clock_mhz": float(clk),
                      "luts": int(luts)}
    return out


def metrics(sizes, weights_read, *, algorithm, board_runs, unbuilt_cycles=None,
            cycles_note="simulated"):
    """Synaptic operations of one inference (``weights_read``: the mean weights read per
    image, all layers) and the energy estimate per board (:func:`energy_estimates`: at the
    build of the boards in ``board_runs``, ``{board: (synth report dict, cycles per
    inference)}``; for the others, at ``unbuilt_cycles``). Returns ``(data, Markdown lines)``."""
    from spikegate.sim.energy import synaptic_ops
    ops = synaptic_ops(sizes, weights_read, algorithm=algorithm)
    energy = energy_estimates(weights_read, ops["mac"], board_runs, unbuilt_cycles, cycles_note)
    data = {"synaptic_ops": ops, "energy_estimate": energy}
    lines = ["", "## Synaptic operations and energy per inference (estimate)", "",
             "| quantity | per inference | dense network |", "|---|---|---|",
             f"| accumulates (AC) | {ops['ac']:,.0f} | {ops['dense_ac']:,.0f} |",
             f"| multiply-accumulates (MAC) | {ops['mac']:,.0f} | {ops['dense_mac']:,.0f} |",
             f"| synaptic operations, sparse / dense | {100 * ops['ratio']:.1f} % | 100 % |",
             f"| weight memory reads | {ops['memory_reads']:,.0f} | {ops['dense_mac']:,.0f} |"]
    for board, e in energy.items():
        lines.append(f"| energy per inference, {board} (ESTIMATE; {e['basis']}) | "
                     f"{e['total_uj']:.3f} uJ (range {e['low_uj']:.3f} .. {e['high_uj']:.3f}) | "
                     f"static {e['static_uj']:.3f}, clock {e['clock_uj']:.3f}, reads "
                     f"{e['reads_uj']:.3f}, MACs {e['macs_uj']:.3f}, logic {e['logic_uj']:.3f} |")
    if not energy:
        lines.append("| energy per inference | needs cycles: a simulation or a build | |")
    lines += ["", "The energy is an estimate, not a measurement: activity counts from the "
              "simulation times per-operation energies; the model, its sources and the terms no "
              "vendor publishes are in `spikegate.sim.energy`. Published FPGA SNN figures on "
              "MNIST: Spiker+ about 140 uJ per image (780 us, 180 mW), Skydiver 42.4 uJ."]
    return data, lines


def stage_rows(stages):
    """The report's table of the flow's stages (seconds, reused), as Markdown lines."""
    return (["", "## Stages", "", "| stage | seconds | reused |", "|---|---|---|"] +
            [f"| {name} | {st['seconds']} | {'yes' if st['cached'] else 'no'} |"
             for name, st in stages.items()])


def publish(tmp, dest, lines):
    """Write ``report.md`` (``lines``) into the report folder ``tmp`` being built and move the
    folder into place over ``dest`` (never half-replaced); returns ``dest``."""
    (tmp / "report.md").write_text("\n".join(lines) + "\n")
    atomic.replace_dir(tmp, dest)
    return dest


def agreement(hw, golden):
    """Per image: does the hardware (a :class:`~spikegate.sim.ttfs_run.HardwareResult`,
    traced) equal golden in class, step, spikes, lookups and every neuron's spike step?"""
    ok = (hw.decision == golden.decision) & (hw.decision_step == golden.decision_step)
    ok &= (hw.error == 0)
    ok &= (hw.spikes == golden.spikes).all(axis=1) & (hw.lookups == golden.lookups).all(axis=1)
    for l in range(1, len(golden.spike_steps)):
        ok &= (hw.spike_steps[l - 1] == golden.spike_steps[l]).all(axis=1)
    return ok


def _plots(tmp, golden, hw, steps0, sizes, label0):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    paths = {}
    decided = golden.decision >= 0
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    total = golden.spikes.sum(axis=1)
    ax[0].hist(total, bins=30, color="#3b6ea5")
    ax[0].axvline(total.mean(), color="k", ls="--", label=f"mean {total.mean():.0f}")
    ax[0].set_xlabel("spikes until the decision (all layers)")
    ax[0].set_ylabel("images")
    ax[0].legend()
    ts = golden.decision_step[decided] + 1
    ax[1].hist(ts, bins=np.arange(0.5, max(ts.max() if len(ts) else 1, 1) + 1.5), color="#a5583b")
    if len(ts):
        ax[1].axvline(ts.mean(), color="k", ls="--", label=f"mean {ts.mean():.1f}")
        ax[1].legend()
    ax[1].set_xlabel("timesteps until the decision")
    fig.tight_layout()
    paths["histograms"] = "histograms.png"
    fig.savefig(tmp / paths["histograms"], dpi=110)
    plt.close(fig)

    # Spike raster of image 0 (hardware trace; identical to golden when they agree).
    layers = [steps0] + [s[0] for s in hw.spike_steps]
    names = ["input"] + [f"hidden {l}" for l in range(1, len(sizes) - 1)] + ["output"]
    fig, axes = plt.subplots(len(layers), 1, figsize=(8, 2 + 1.6 * len(layers)), sharex=True,
                             gridspec_kw={"height_ratios": [max(2, min(s, 60) / 10) for s in sizes]})
    k_d = int(hw.decision_step[0])
    for ax, st, name, n in zip(axes, layers, names, sizes):
        idx = np.flatnonzero(st != NO_SPIKE)
        ax.scatter(st[idx], idx, s=6, color="#222")
        ax.set_ylabel(f"{name}\n({n})")
        ax.set_ylim(-1, n)
        if k_d >= 0:
            ax.axvline(k_d, color="#c33", lw=1)
    if k_d >= 0:
        win = int(hw.decision[0])
        axes[-1].scatter([k_d], [win], s=80, facecolors="none", edgecolors="#c33",
                         label=f"decision: class {win} at step {k_d} (label {label0})")
        axes[-1].legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("timestep")
    fig.suptitle("spike raster of test image 0 (hardware trace)")
    fig.tight_layout()
    paths["raster"] = "raster.png"
    fig.savefig(tmp / paths["raster"], dpi=110)
    plt.close(fig)
    return paths


def write_report(dest, *, model, dataset, eval_summary, y_sample, steps_sample, golden, hw,
                 mismatch, synth, stages, lanes, prototype):
    """Render the report of a run into the folder ``dest``; ``hw`` is the sim stage's
    :class:`~spikegate.sim.ttfs_run.HardwareResult` (traced), ``golden`` the golden model's
    result on the same images."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic.temp_dir(dest)
    try:
        ok = agreement(hw, golden)
        n = len(y_sample)
        hw_acc = float(np.mean(hw.decision == y_sample))
        g_acc_sample = float(np.mean(golden.decision == y_sample))
        cycles = hw.cycles.astype(float)
        fmax = synth.get("fmax_mhz") if synth else None
        board = (synth or {}).get("board_classifier")
        board_cycles = board["cycles_mean"] if board else None
        target = synth.get("target_mhz") if synth else None
        data = {
            "dataset": dataset, "sizes": list(model.sizes), "lanes": lanes,
            "timesteps": model.discrete.timesteps, "dt": model.discrete.dt,
            "encoding": model.encoding.to_dict(),
            "accuracy": {"float": eval_summary.get("float_accuracy"),
                         "golden_8bit": eval_summary["discrete_accuracy"],
                         "golden_8bit_sample": g_acc_sample, "hardware_sample": hw_acc,
                         "test_images": eval_summary["samples"], "sample_images": n},
            "agreement": {"images": n, "agree": int(ok.sum()), "fraction": float(ok.mean()),
                          "first_mismatch": mismatch},
            "lookup_fraction": [s["mean"] for s in eval_summary["lookup_fraction"]],
            "lookup_fraction_prototype": prototype["lookup_fraction"],
            "spikes_to_decision": eval_summary["total_spikes"],
            "spikes_prototype": prototype["spikes"],
            "timesteps_to_decision": eval_summary["timesteps"],
            "cycles_per_classification": {"mean": float(cycles.mean()),
                                          "median": float(np.median(cycles))},
            "lookup_bound_cycles": float((golden.lookups / np.asarray(
                [lanes] * golden.lookups.shape[1] if isinstance(lanes, int) else lanes)).sum(1).mean()),
            # At the board's own cycles (its lanes and options), not the sim stage's.
            "board_cycles_per_classification": board_cycles,
            "classifications_per_s_at_fmax": (fmax * 1e6 / board_cycles) if fmax and board_cycles
            else None,
            "synth": synth,
            "stages": stages,
        }
        paths = _plots(tmp, golden, hw, steps_sample[0], model.sizes, int(y_sample[0]))
        (tmp / "report.json").write_text(json.dumps(data, indent=1, default=str))
        acc = data["accuracy"]
        lines = [
            f"# spikegate run: {dataset}, network {'-'.join(map(str, model.sizes))}",
            "",
            f"TTFS classifier, 8-bit weights, {model.discrete.timesteps} timesteps of "
            f"{model.discrete.dt:g}, {model.encoding.mode} input encoding; hardware simulated "
            f"as Verilog (Verilator) with {lanes} lane(s) on the first {n} test images.",
            "",
            "| quantity | value | reference |",
            "|---|---|---|",
            f"| accuracy, float model | {100 * acc['float']:.2f} % ({acc['test_images']} test images) | |"
            if acc["float"] is not None else "| accuracy, float model | n/a | |",
            f"| accuracy, 8-bit golden model | {100 * acc['golden_8bit']:.2f} % ({acc['test_images']} test images) | |",
            f"| accuracy, hardware | {100 * hw_acc:.2f} % ({n} images; golden on the same: {100 * g_acc_sample:.2f} %) | |",
            f"| hardware = golden (class, step, spikes, lookups, every neuron's spike step) | "
            f"{int(ok.sum())}/{n} images ({100 * ok.mean():.1f} %) | must be 100 % |",
        ]
        for l, (f, pf) in enumerate(zip(data["lookup_fraction"], prototype["lookup_fraction"] + [None] * 9)):
            ref = f"prototype {100 * pf:.0f} %" if pf is not None else ""
            lines.append(f"| weights looked up, layer {l} | {100 * f:.1f} % | {ref} |")
        sp, ts = data["spikes_to_decision"], data["timesteps_to_decision"]
        lines += [
            f"| spikes until the decision | mean {sp['mean']:.1f}, median {sp['median']:.0f} | prototype 139 (MNIST) |",
            f"| timesteps until the decision | mean {ts['mean']:.1f}, median {ts['median']:.0f} | of {model.discrete.timesteps} |",
            f"| cycles per classification | mean {cycles.mean():.0f}, median {np.median(cycles):.0f} | "
            f"lookup bound {data['lookup_bound_cycles']:.0f} |",
        ]
        if synth:
            lines.append(f"| Fmax ({synth['board']}, {synth['device']}) | {fmax:.1f} MHz | target {target:.1f} MHz |")
            if board:
                lines.append(f"| cycles per classification on the board (lanes {board['lanes']}) | "
                             f"mean {board['cycles_mean']:.0f}, median {board['cycles_median']:.0f} "
                             f"| {board['images']} images |")
                lines.append(f"| classifications per second at Fmax | "
                             f"{data['classifications_per_s_at_fmax']:,.0f} | board cycles |")
            for name, r in synth["resources"].items():
                lines.append(f"| {name} | {r['used']} / {r['available']} | |")
        else:
            lines.append("| synthesis | skipped (--no-synth) | |")
        if mismatch:
            lines += ["", "## First disagreement", "", "```", json.dumps(mismatch, indent=1), "```"]
        weights_read = float(golden.lookups.sum(1).mean())
        mdata, mlines = metrics(model.sizes, weights_read, algorithm="ttfs",
                                board_runs={synth["board"]: (synth, board_cycles)} if synth else {},
                                unbuilt_cycles=float(cycles.mean()),
                                cycles_note=f"the simulation's (lanes {lanes})")
        data.update(mdata)
        (tmp / "report.json").write_text(json.dumps(data, indent=1, default=str))
        lines += mlines
        lines += ["", "## Spikes and timesteps until the decision (golden model, sample)", "",
                  f"![histograms]({paths['histograms']})", "",
                  "## Spike raster of test image 0", "", f"![raster]({paths['raster']})"]
        lines += stage_rows(stages)
        return publish(tmp, dest, lines)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
