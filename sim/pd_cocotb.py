"""cocotb module that runs a sequence of frames through the PD network's Verilog and saves every
result and every layer's trace (:class:`~spikegate.sim.pd_run.PDHardwareResult`) in the file
the arguments name. Driven by :func:`spikegate.sim.pd_run.simulate_pd_hardware`.

Arguments (``test_args``): ``sizes``, ``x_width``, ``frames`` ``(T, n_in)``, ``stall_in``,
``stall_out``, ``seed``, ``out``, and ``actions``: ``{frame: {"reset": bool, "load": bool}}``
(keys are strings): before frame ``k``, a reset in the middle of that frame (its first half
sent, then the reset; the frame is sent whole afterwards) and / or loading the weights and
biases ``weights2`` / ``biases2`` through the ports (and reading a sample back), and / or
``"read"``: reading a sample of the weights back (20 random positions per layer and each
layer's first and last weight) and comparing them with the weights loaded last (``weights``,
the memories' initial image, before any load). ``rb_latency``: each layer's read-back
latency (default 1).
"""

import cocotb
import numpy as np

from spikegate.sim.pd_run import PDHardwareResult
from spikegate.sim.pd_tb import PDClassifierTB
from spikegate.sim.runner import test_args


@cocotb.test()
async def run_frames(dut):
    a = test_args()
    sizes = tuple(int(s) for s in a["sizes"])
    tb = PDClassifierTB(dut, sizes, a["x_width"], stall_in=a.get("stall_in", 0.0),
                        stall_out=a.get("stall_out", 0.0), seed=a.get("seed"),
                        rb_latency=a.get("rb_latency"))
    await tb.start()
    actions = a.get("actions") or {}
    results = []
    rng = np.random.default_rng(a.get("seed") or 0)
    current = a.get("weights")
    for k, frame in enumerate(a["frames"]):
        act = actions.get(str(k), {})
        if act.get("reset"):
            await tb.reset_mid_frame(frame)
        if act.get("load"):
            current = a["weights2"]
            await tb.load(current, a["biases2"])
        if act.get("load") or act.get("read"):
            assert current is not None, "a read action needs the weights (test_args 'weights')"
            for l, w in enumerate(current):
                pos = [(int(i), int(j)) for i, j in zip(rng.integers(0, w.shape[0], 20),
                                                        rng.integers(0, w.shape[1], 20))]
                if act.get("read"):
                    pos = [(0, 0)] + pos + [(w.shape[0] - 1, w.shape[1] - 1)]
                got = await tb.read_weights(l, pos)
                want = [int(w[i, j]) for i, j in pos]
                assert got == want, (f"before frame {k}: layer {l} weights at {pos} read back "
                                     f"{got}, loaded {want}")
        results.append(await tb.classify(frame))
    assert tb.source.empty()
    PDHardwareResult.from_run(results, tb.recorders).save(a["out"])
