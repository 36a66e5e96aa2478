"""cocotb module that runs a batch of images through the classifier's Verilog and saves
every result (and optionally every neuron's spike step) to ``results.npz`` in the run
directory. Driven by :func:`spikegate.sim.ttfs_run.simulate_hardware`."""

from pathlib import Path

import numpy as np

import cocotb

from spikegate.golden.ttfs_discrete import DiscreteConfig
from spikegate.sim.runner import test_args
from spikegate.sim.ttfs_tb import ClassifierTB

_FIELDS = ("decided", "klass", "decision_step", "error", "cycles", "scan_cycles", "label_error",
           "learn_cycles")


@cocotb.test()
async def run_images(dut):
    a = test_args()
    config = DiscreteConfig.from_dict(a["config"])
    sizes = tuple(int(s) for s in a["sizes"])
    tb = ClassifierTB(dut, sizes, config, stall_in=a.get("stall_in", 0.0),
                      stall_out=a.get("stall_out", 0.0), seed=a.get("seed"))
    await tb.start()
    steps = a["steps"]
    n = len(steps)
    out = {f: np.zeros(n, np.int64) for f in _FIELDS}
    out["spikes"] = np.zeros((n, len(sizes)), np.int64)
    out["lookups"] = np.zeros((n, len(sizes) - 1), np.int64)
    traces = [np.zeros((n, s), np.int64) for s in sizes[1:]] if a.get("trace") else None
    labels = a.get("labels")
    weights = [np.zeros((n, x, y), np.int8) for x, y in zip(sizes[:-1], sizes[1:])] \
        if a.get("read_weights") else None
    for b in range(n):
        r = await tb.classify(steps[b], label=None if labels is None else int(labels[b]),
                              lr_shift=int(a.get("lr_shift", 0)))
        if weights is not None:
            for l, w in enumerate(await tb.read_weights()):
                weights[l][b] = w
        for f in _FIELDS:
            out[f][b] = r[f]
        out["spikes"][b] = r["spikes"]
        out["lookups"][b] = r["lookups"]
        if traces is not None:
            for l, tr in enumerate(await tb.read_trace()):
                traces[l][b] = tr
    if traces is not None:
        for l, tr in enumerate(traces):
            out[f"trace{l + 1}"] = tr
    if weights is not None:
        for l, w in enumerate(weights):
            out[f"weights{l}"] = w
    tmp = Path(a["out"]).with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.replace(a["out"])
