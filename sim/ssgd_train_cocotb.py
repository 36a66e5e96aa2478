"""cocotb module that trains the SSGD trainer's Verilog on a sequence of labelled images
(:func:`spikegate.sim.ssgd_train_run.simulate_ssgd_training`): per image its label, its beats
(random idle cycles on the input), its result (random back-pressure), then a sample of both
weight matrices read back through the ports; at the end every weight. Saves the arrays in the
file the arguments name."""

import cocotb
import numpy as np
from cocotb.triggers import RisingEdge

from spikegate.hdl.ssgd_trainer import LabelLayout, TrainResultLayout
from spikegate.sim.runner import test_args
from spikegate.sim.ssgd_tb import image_payloads
from spikegate.sim.stream import (StreamDriver, StreamMonitor, read_weight_port,
                                  start_clock_and_reset)


async def _read(dut, layer, positions):
    return await read_weight_port(dut, f"weights{layer}__", positions, settle=1)


@cocotb.test()
async def train(dut):
    a = test_args()
    n_in, H, C = (int(s) for s in a["sizes"])
    for l in range(2):
        for port in ("w_en", "rb_en", "w_src", "w_dst", "w_data", "rb_src", "rb_dst"):
            getattr(dut, f"weights{l}__{port}").value = 0
    dut.i_stream__valid.value = 0
    dut.l_stream__valid.value = 0
    dut.o_stream__ready.value = 0
    await start_clock_and_reset(dut)
    seed = a.get("seed")
    s_in, s_out = a.get("stall_in", 0.0), a.get("stall_out", 0.0)
    src = StreamDriver(dut, "i_stream", stall=s_in or None, seed=None if seed is None else seed + 1)
    lab = StreamDriver(dut, "l_stream")
    sink = StreamMonitor(dut, "o_stream", stall=s_out or None,
                         seed=None if seed is None else seed + 2)
    llay, rlay = LabelLayout(C), TrainResultLayout(C)
    out = {"klass": [], "active": [], "forward_cycles": [], "backward_cycles": [],
           "w_sample0": [], "w_sample1": []}
    for b, raster in enumerate(a["images"]):
        lab.send(llay.const({"label": int(a["labels"][b]), "learn": 1}).as_value().value)
        src.send_all(image_payloads(raster, n_in))
        await sink.wait_for(b + 1, timeout_cycles=200_000)
        r = rlay.from_bits(sink.received[b][0])
        for k in ("klass", "active", "forward_cycles", "backward_cycles"):
            out[k].append(int(getattr(r, k)))
        while dut.idle.value != 1:
            await RisingEdge(dut.clk)
        for l in range(2):
            out[f"w_sample{l}"].append(await _read(dut, l, a[f"sample{l}"][b]))
    assert src.empty() and lab.empty()
    for l, shape in ((0, (n_in, H)), (1, (H, C))):
        pos = [(i, j) for i in range(shape[0]) for j in range(shape[1])]
        out[f"w_final{l}"] = np.array(await _read(dut, l, pos)).reshape(shape)
    np.savez(a["out"], **{k: np.asarray(v) for k, v in out.items()})
