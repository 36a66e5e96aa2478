"""cocotb module that trains the SSGD trainer's Verilog on a sequence of labelled images
(:func:`spikegate.sim.ssgd_train_run.simulate_ssgd_training`): per image its label, its beats
(random idle cycles on the input), its result (random back-pressure), then a sample of both
weight matrices read back through the ports; at the end every weight. Saves the arrays in the
file the arguments name.

``actions`` (``{image: {"reset": "forward" | "backward", "delay": cycles}}``, keys strings):
before image ``k`` is trained, it is started (label and beats) and the reset pulsed in the
middle of it: ``"forward"`` after half its beats are taken (and 20 cycles more),
``"backward"`` ``delay`` cycles after the hidden layer's last trace entry of the image (the
forward's end; the cycles after it do not depend on the stalls). Then every weight is read back
(``w_reset0`` / ``w_reset1``, one row per reset) and image ``k`` is trained from the start.
"""

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


async def _read_all(dut, sizes):
    n_in, H, C = sizes
    out = []
    for l, shape in ((0, (n_in, H)), (1, (H, C))):
        pos = [(i, j) for i in range(shape[0]) for j in range(shape[1])]
        out.append(np.array(await _read(dut, l, pos)).reshape(shape))
    return out


async def _idle(dut):
    while dut.idle.value != 1:
        await RisingEdge(dut.clk)


async def _reset_in_image(dut, act, label, beats, src, lab, sink, T, H, cycles=2):
    """Start an image and pulse the reset in it (see the module's docstring)."""
    lab.send(label)
    if act["reset"] == "forward":
        src.send_all(beats[: len(beats) // 2])
        await src.wait_idle()
        for _ in range(20):
            await RisingEdge(dut.clk)
    elif act["reset"] == "backward":
        src.send_all(beats)
        while not (dut.trace0__valid.value == 1 and dut.trace0__step.value.to_unsigned() == T - 1
                   and dut.trace0__index.value.to_unsigned() == H - 1):
            await RisingEdge(dut.clk)
        for _ in range(int(act["delay"])):
            await RisingEdge(dut.clk)
        assert src.empty(), "beats left at the backward's reset"
    else:
        raise ValueError(f"reset must be forward or backward, not {act['reset']!r}")
    n = len(sink.received)
    sink.check_rules = False              # a result on offer may vanish with the reset
    dut.rst.value = 1
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    sink.check_rules = True
    assert len(sink.received) == n, "a result of the image reset in the middle came out"
    assert lab.empty(), "the label was not taken before the reset"


@cocotb.test()
async def train(dut):
    a = test_args()
    n_in, H, C = sizes = tuple(int(s) for s in a["sizes"])
    T = int(a.get("timesteps", 0))     # needed by backward resets only
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
    actions = a.get("actions") or {}
    out = {"klass": [], "active": [], "forward_cycles": [], "backward_cycles": [],
           "w_sample0": [], "w_sample1": [], "w_reset0": [], "w_reset1": []}
    for b, raster in enumerate(a["images"]):
        label = llay.const({"label": int(a["labels"][b]), "learn": 1}).as_value().value
        beats = image_payloads(raster, n_in)
        act = actions.get(str(b))
        if act:
            await _reset_in_image(dut, act, label, beats, src, lab, sink, T, H)
            await _idle(dut)
            for l, w in enumerate(await _read_all(dut, sizes)):
                out[f"w_reset{l}"].append(w)
        lab.send(label)
        src.send_all(beats)
        await sink.wait_for(b + 1, timeout_cycles=200_000)
        r = rlay.from_bits(sink.received[b][0])
        for k in ("klass", "active", "forward_cycles", "backward_cycles"):
            out[k].append(int(getattr(r, k)))
        await _idle(dut)
        for l in range(2):
            out[f"w_sample{l}"].append(await _read(dut, l, a[f"sample{l}"][b]))
    assert src.empty() and lab.empty()
    out["w_final0"], out["w_final1"] = await _read_all(dut, sizes)
    for l, shape in ((0, (n_in, H)), (1, (H, C))):
        if not out[f"w_reset{l}"]:
            out[f"w_reset{l}"] = np.zeros((0,) + shape, np.int64)
    np.savez(a["out"], **{k: np.asarray(v) for k, v in out.items()})
