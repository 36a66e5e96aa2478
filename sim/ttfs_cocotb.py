"""cocotb module that runs a batch of images through the classifier's Verilog and saves
every result (and optionally every neuron's spike step and every weight after each image) as
a :class:`~spikegate.sim.ttfs_run.HardwareResult` in the file the arguments name. Driven by
:func:`spikegate.sim.ttfs_run.simulate_hardware`."""

import cocotb

from spikegate.golden.ttfs_discrete import DiscreteConfig
from spikegate.sim.runner import test_args
from spikegate.sim.ttfs_run import HardwareResult
from spikegate.sim.ttfs_tb import ClassifierTB


@cocotb.test()
async def run_images(dut):
    a = test_args()
    config = DiscreteConfig.from_dict(a["config"])
    sizes = tuple(int(s) for s in a["sizes"])
    tb = ClassifierTB(dut, sizes, config, stall_in=a.get("stall_in", 0.0),
                      stall_out=a.get("stall_out", 0.0), seed=a.get("seed"))
    await tb.start()
    labels = a.get("labels")
    results, traces, weights = [], [], []
    for b, steps in enumerate(a["steps"]):
        results.append(await tb.classify(steps, label=None if labels is None else int(labels[b]),
                                         lr_shift=int(a.get("lr_shift", 0))))
        if a.get("read_weights"):
            weights.append(await tb.read_weights(int(a.get("rb_latency", 1))))
        if a.get("trace"):
            traces.append(await tb.read_trace())
    HardwareResult.from_images(results, config.timesteps, traces=traces or None,
                               weights=weights or None).save(a["out"])
