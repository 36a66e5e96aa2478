"""cocotb module that runs a sequence of images through the SSGD network's Verilog and saves
every result, every active event and both layers' traces
(:class:`~spikegate.sim.ssgd_run.SSGDHardwareResult`) in the file the arguments name. Driven by
:func:`spikegate.sim.ssgd_run.simulate_ssgd_hardware`.

Arguments (``test_args``): ``sizes``, ``timesteps``, ``step_bits``, ``g_bits``, ``z_bits``,
``images`` ``(B, T, n_in)``, ``stall_in``, ``stall_out``, ``stall_act`` (from image
``stall_from`` on, default 0), ``seed``, ``out``, and
``actions``: ``{image: {"reset": bool, "load": bool}}`` (keys are strings): before image ``k``,
a reset in the middle of that image (half its beats sent, then the reset; the image is sent
whole afterwards) and / or loading the weights ``weights2`` through the ports (and reading a
sample back).
"""

import cocotb
import numpy as np

from spikegate.sim.runner import test_args
from spikegate.sim.ssgd_run import SSGDHardwareResult
from spikegate.sim.ssgd_tb import SSGDNetworkTB


@cocotb.test()
async def run_images(dut):
    a = test_args()
    tb = SSGDNetworkTB(dut, a["sizes"], a["timesteps"], a["step_bits"], a["g_bits"],
                       a["z_bits"], stall_in=a.get("stall_in", 0.0),
                       stall_out=a.get("stall_out", 0.0), stall_act=a.get("stall_act", 0.0),
                       seed=a.get("seed"))
    await tb.start()
    actions = a.get("actions") or {}
    results = []
    rng = np.random.default_rng(a.get("seed") or 0)
    stall_from = int(a.get("stall_from", 0))
    for k, raster in enumerate(a["images"]):
        if k == stall_from:
            tb.stalls_on()
        act = actions.get(str(k), {})
        if act.get("reset"):
            await tb.reset_mid_image(raster)
        if act.get("load"):
            ws = a["weights2"]
            await tb.load(ws)
            for l, w in enumerate(ws):
                pos = [(int(i), int(j)) for i, j in zip(rng.integers(0, w.shape[0], 20),
                                                        rng.integers(0, w.shape[1], 20))]
                got = await tb.read_weights(l, pos)
                want = [int(w[i, j]) for i, j in pos]
                assert got == want, f"layer {l} weights read back {got}, loaded {want}"
        results.append(await tb.classify(raster))
    assert tb.source.empty()
    assert len(tb.act.received) == tb._act_taken, (
        f"{len(tb.act.received) - tb._act_taken} active events beyond the results' counts")
    SSGDHardwareResult.from_run(results, tb.recorders, tb.events).save(a["out"])
