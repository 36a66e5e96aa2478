"""The whole PD network (hdl/pd_classifier.py) in Amaranth's simulator against the golden
network (golden/pdnn_fixed.py) on a short stretch of the stress sequence, every layer traced,
with stalls; the longer runs are the cocotb tests (tests/cocotb/test_pd_classifier.py)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from spikegate.golden.pdnn_fixed import first_mismatch
from spikegate.hdl.pd_classifier import PDClassifier, expected_cycles
from spikegate.sim.amaranth_tb import stream_get
from spikegate.sim.pd_amaranth_tb import monitor_trace, put_frames
from spikegate.sim.pd_cases import stress_case, stress_formats
from spikegate.sim.pd_trace import LayerTraceRecorder


class _HW:
    def __init__(self, results, recs):
        self.klass = np.array([r["klass"] for r in results])
        self.events = np.array([r["events"] for r in results])
        self.spikes = np.array([r["spikes"] for r in results])
        self.cycles = np.array([r["cycles"] for r in results])
        arrays = [r.arrays(len(results)) for r in recs]
        for k in ("s", "u", "y", "act"):
            setattr(self, k, [a[k] for a in arrays])


def run_classifier(dut, frames, *, seed, p_stall):
    sizes = dut.sizes
    recs = [LayerTraceRecorder(a, b, f"layer {l}") for l, (a, b) in
            enumerate(zip(sizes[:-1], sizes[1:]))]
    results = []
    rng = np.random.default_rng(seed)

    async def producer(ctx):
        await put_frames(ctx, dut.i_stream, frames, rng=rng, p_stall=p_stall)

    async def consumer(ctx):
        crng = np.random.default_rng(seed + 1)
        for _ in frames:
            r = await stream_get(ctx, dut.o_stream, rng=crng, p_stall=p_stall)
            results.append({"klass": int(r.klass), "cycles": int(r.cycles),
                            "events": [int(r.events[l]) for l in range(len(recs))],
                            "spikes": [int(r.spikes[l]) for l in range(len(recs))]})

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    for l, rec in enumerate(recs):
        async def monitor(ctx, trace=getattr(dut, f"trace{l}"), rec=rec):
            await monitor_trace(ctx, trace, rec)
        sim.add_testbench(monitor, background=True)
    sim.run()
    return _HW(results, recs)


# Lanes: dividing neither layer, and one lane group per row in the last layer; each also with
# the ECP5 build's registers after the weight memories (out_register, banks of 8 words: several
# banks per layer, a partial last one; and each bank as memories of 4 bits, the ECP5 build's
# DP16KD 4096 x 4 layout at a small size).
@pytest.mark.parametrize("banks", [None, 8, (8, 4)])
@pytest.mark.parametrize("lanes, p_stall", [((3, 4), 0.3), ((4, 8), 0.0)])
def test_classifier_matches_golden(lanes, p_stall, banks):
    seed = 9
    net, frames = stress_case(seed, T=240)
    pick = np.r_[0:6, 60:66, 90:96, 150:156]       # random, zero, saturating, slow stretches
    frames = frames[pick]
    g = net.run(frames)
    depth, width = banks if isinstance(banks, tuple) else (banks, None)
    kw = {} if banks is None else {"weight_out_register": True, "weight_bank_depth": depth,
                                   "weight_bank_width": width}
    dut = PDClassifier.from_network(net, lanes, **kw)
    assert dut.drain == (3 if banks is None else 4)
    hw = run_classifier(dut, frames, seed=seed, p_stall=p_stall)
    bad = first_mismatch(hw, g, f"stress seed {seed}, lanes {lanes}, banks {banks}")
    assert bad is None, bad
    if p_stall == 0:
        exp = expected_cycles(g, net.sizes, lanes, drain=dut.drain)
        assert np.array_equal(hw.cycles, exp), f"cycles {hw.cycles} vs the model's {exp}"


def test_classifier_checks():
    fmts = stress_formats()
    with pytest.raises(ValueError, match="lanes"):
        PDClassifier((12, 10, 6), fmts, (3, 0))
    with pytest.raises(ValueError, match="lanes"):
        PDClassifier((12, 10, 6), fmts, (3, 3, 3))
    with pytest.raises(TypeError, match="formats"):
        PDClassifier((12, 10, 6), fmts[:1], 2)
    with pytest.raises(TypeError, match="sizes"):
        PDClassifier((12,), fmts, 2)
    with pytest.raises(TypeError, match="PDFixedNetwork"):
        PDClassifier.from_network(None, 2)
