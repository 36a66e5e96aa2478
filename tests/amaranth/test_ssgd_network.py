"""The SSGD network (hdl/ssgd_network.py, a hidden LIF layer and a readout) in Amaranth's
simulator on a few images: every result's class and counters and every neuron of both layers
equal the golden model (sim/ssgd_reference.py), and every image's cycles equal the timing model
(hdl.ssgd_network.expected_cycles). The long runs are the cocotb tests
(tests/cocotb/test_ssgd_network.py)."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from spikegate.golden.ssgd_train_fixed import TrainFormat
from spikegate.hdl.ssgd_network import SSGDNetwork, expected_cycles
from spikegate.sim.amaranth_tb import stream_get, stream_put
from spikegate.sim.lif_trace import LIFTraceRecorder
from spikegate.sim.ssgd_reference import expected_network, raster_events

TRACE = ("valid", "step", "index", "v", "spike", "active", "g")


def once_per_image(rng, B, T, n_in, p):
    """Rasters where each input spikes at most once (at a random step), as the encoder's."""
    x = np.zeros((B, T, n_in), bool)
    on = rng.random((B, n_in)) < p
    t = rng.integers(0, T - 1, (B, n_in))
    b, i = np.nonzero(on)
    x[b, t[b, i], i] = True
    return x


@pytest.mark.parametrize("lanes", [(4, 10), (3, 4)])
def test_network_matches_golden_and_cycles(lanes):
    seed = 900 + lanes[0]
    rng = np.random.default_rng(seed)
    sizes, T, B = (12, 9, 3), 12, 4
    tfmt = TrainFormat(n_steps=T, b_th=0.3, tau_readout=6.0)
    x = once_per_image(rng, B, T, sizes[0], 0.8)
    w0 = rng.integers(-40, 110, (sizes[0], sizes[1]))
    w1 = rng.integers(-128, 128, (sizes[1], sizes[2]))
    net = SSGDNetwork(sizes, lanes, tfmt, weights=(w0, w1))
    g = expected_network(x, w0, w1, tfmt)
    recs = [LIFTraceRecorder(sizes[1], T, "hidden"), LIFTraceRecorder(sizes[2], T, "readout")]
    results, actives = [], []

    async def producer(ctx):
        for img in x:
            for beat in raster_events(img):
                await stream_put(ctx, net.i_stream, beat)

    async def consumer(ctx):
        ctx.set(net.a_stream.ready, 1)
        for _ in range(B):
            results.append(await stream_get(ctx, net.o_stream))

    async def monitor(ctx):
        ports = [getattr(net.trace0, k) for k in TRACE] + [getattr(net.trace1, k) for k in TRACE]
        async for vals in ctx.tick().sample(*ports, net.a_stream.valid, net.a_stream.payload):
            vals = vals[2:]
            for rec, v in zip(recs, (vals[:7], vals[7:14])):
                if v[0]:
                    rec.record(*v[1:])
            if vals[14]:
                p = vals[15]
                actives.append((p.index, p.step, p.g))

    sim = Simulator(net)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.add_testbench(monitor, background=True)
    sim.run()

    for rec, layer in zip(recs, (g.hidden, g.readout)):
        hw = rec.arrays()
        for k in ("v", "spike", "active", "g"):
            bad = np.argwhere(hw[k] != getattr(layer, k))
            assert not bad.size, f"seed {seed}: {rec.name} {k} differs at (image, step, neuron) " \
                                 f"{tuple(bad[0])}"
    exp_act = [(j, t, g.hidden.g[b, t, j]) for b in range(B) for t in range(T)
               for j in np.flatnonzero(g.hidden.active[b, t])]
    assert [tuple(map(int, a)) for a in actives] == [tuple(map(int, a)) for a in exp_act]
    assert [int(r.klass) for r in results] == g.klass.tolist(), f"seed {seed}: classes"
    assert [[int(r.z[c]) for c in range(sizes[2])] for r in results] == g.z.tolist()
    assert [int(r.spikes) for r in results] == g.hidden.spike.sum(axis=(1, 2)).tolist()
    assert [int(r.active) for r in results] == g.hidden.active.sum(axis=(1, 2)).tolist()
    assert [int(r.in_spikes) for r in results] == x[:, :-1].sum(axis=(1, 2)).tolist()
    look0 = x[:, :-1].sum(axis=(1, 2)) * sizes[1]
    look1 = g.hidden.spike[:, :-1].sum(axis=(1, 2)) * sizes[2]
    assert [int(r.lookups[0]) for r in results] == look0.tolist()
    assert [int(r.lookups[1]) for r in results] == look1.tolist()
    exp = expected_cycles(x, g.hidden.spike, sizes, lanes, T)
    got = np.array([int(r.cycles) for r in results])
    assert np.array_equal(got, exp), f"seed {seed}: cycles {got.tolist()}, model {exp.tolist()}"
