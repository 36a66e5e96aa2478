"""On-chip training (hdl/ssgd_trainer.py) in Amaranth's simulator against
golden/ssgd_train_fixed.train_step, image after image: both weight matrices in the memories
after every image, and every image's class and active events. The long run is the cocotb test
(tests/cocotb/test_ssgd_trainer.py)."""

import numpy as np
from amaranth.sim import Simulator

from spikegate.golden import ssgd_train_fixed as stf
from spikegate.hdl.ssgd_trainer import SSGDTrainer
from spikegate.sim.amaranth_tb import stream_get, stream_put
from spikegate.sim.ssgd_cases import digits_network
from spikegate.sim.ssgd_reference import raster_events


def memory_weights(ctx, lookup):
    n_src, n_dst, L, G = lookup.n_src, lookup.n_dst, lookup.lanes, lookup.groups
    w = np.zeros((n_src, n_dst), np.int64)
    for i in range(n_src):
        for g in range(G):
            row = ctx.get(lookup.weight_data[i * G + g])
            for l in range(L):
                if g * L + l < n_dst:
                    w[i, g * L + l] = row[l]
    return w


def test_training_matches_golden_after_every_image():
    from spikegate.golden.data import load_dataset
    tfmt0, w = digits_network(16)
    tfmt = tfmt0.with_(lr1_shift=14, lr2_shift=12)        # visible changes in a few images
    d = load_dataset("digits")
    n = 4
    times = stf.encode(d.x_train[:n], tfmt)
    labels = d.y_train[:n]
    x = np.swapaxes(stf.input_raster(times, tfmt), 0, 1)
    dut = SSGDTrainer((64, 16, 10), (4, 5), tfmt, weights=w)
    lk0, lk1 = dut.network.hidden.lookup, dut.network.readout.lookup
    got, results = [], []

    async def bench(ctx):
        ctx.set(dut.o_stream.ready, 1)
        for b in range(n):
            await stream_put(ctx, dut.l_stream, {"label": int(labels[b]), "learn": 1})
            for beat in raster_events(x[b]):
                await stream_put(ctx, dut.i_stream, beat)
            r = await stream_get(ctx, dut.o_stream)
            results.append((int(r.klass), int(r.active), int(r.backward_cycles)))
            await ctx.tick().repeat(3)
            got.append((memory_weights(ctx, lk0), memory_weights(ctx, lk1)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    params = tuple(np.asarray(a, np.int64) for a in w)
    for b in range(n):
        params, fwd, gr = stf.train_step(params, times[b], labels[b], tfmt, image_index=b)
        assert results[b][0] == int(np.argmax(fwd.z[0])), f"image {b}: class"
        assert results[b][1] == len(fwd.events), f"image {b}: active events"
        for l in range(2):
            bad = np.argwhere(got[b][l] != params[l])
            assert not bad.size, (f"after image {b}: W{l + 1}{list(bad[0])} = "
                                  f"{got[b][l][tuple(bad[0])]}, golden {params[l][tuple(bad[0])]}")
    assert (params[0] != w[0]).sum() > 10 and (params[1] != w[1]).sum() > 10
