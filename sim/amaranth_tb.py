"""Helpers for Amaranth-simulator test benches (async ``add_testbench`` functions).

``stream_put`` / ``stream_get`` move one payload over an ``amaranth.lib.stream`` interface
following its rules (valid never waits for ready; the payload holds until the transfer),
optionally idling a random number of cycles first (seeded by the caller's ``rng``).
"""

import numpy as np
from amaranth.lib import enum

from spikegate.golden.ttfs_discrete import (NO_SPIKE, DiscreteConfig, DiscreteNetwork, simulate,
                                            spike_events)

__all__ = ["stream_put", "stream_get", "image_beats", "random_ttfs_case", "read_weights",
           "read_trace", "check_against_golden", "LookupTestOp", "LOOKUP_TEST_OPS"]


class LookupTestOp(enum.IntEnum, shape=2):
    """Op codes for testing the weight lookup on its own: it knows them only through the
    sets it is given (:data:`LOOKUP_TEST_OPS`), as it knows a layer's."""
    #: read the row's weights and count them
    READ = 0
    #: walk the groups without reading
    VISIT = 1
    #: walk the groups without reading (a second op that reads nothing)
    RESET = 2


#: The :class:`~spikegate.hdl.lookup.WeightLookup` op parameters of the lookup tests.
LOOKUP_TEST_OPS = {"op_shape": LookupTestOp, "read_ops": (LookupTestOp.READ,),
                   "count_ops": (LookupTestOp.READ,)}


async def _idle(ctx, rng, p_stall, max_stall):
    if rng is not None and p_stall > 0 and rng.random() < p_stall:
        await ctx.tick().repeat(int(rng.integers(1, max_stall + 1)))


async def stream_put(ctx, s, payload, *, rng=None, p_stall=0.0, max_stall=4):
    """Send ``payload`` (a const-castable value or dict) on stream ``s`` (its producer side)."""
    await _idle(ctx, rng, p_stall, max_stall)
    ctx.set(s.payload, payload)
    ctx.set(s.valid, 1)
    await ctx.tick().until(s.ready)
    ctx.set(s.valid, 0)


async def stream_get(ctx, s, *, rng=None, p_stall=0.0, max_stall=4):
    """Receive one payload from stream ``s`` (its consumer side)."""
    await _idle(ctx, rng, p_stall, max_stall)
    ctx.set(s.ready, 1)
    payload, = await ctx.tick().sample(s.payload).until(s.valid)
    ctx.set(s.ready, 0)
    return payload


def image_beats(steps):
    """One image's input stream as ``SpikeEventLayout`` dicts: its spikes in the hardware's
    order, then the end marker."""
    idx, st = spike_events(steps)
    return [{"index": int(i), "step": int(s), "end": 0} for i, s in zip(idx, st)] + \
           [{"index": 0, "step": 0, "end": 1}]


def random_ttfs_case(seed, sizes, n_images=8, timesteps=32, dt=1 / 8):
    """A random discrete network that fires and decides, and random input steps (test data).

    Weights uniform in [-40, 100), thresholds scaled to the fan-in (4 to 12 times it), 60 %
    of the inputs spiking at steps 0 .. 11."""
    rng = np.random.default_rng(seed)
    ws = [rng.integers(-40, 100, (a, b)).astype(np.int8) for a, b in zip(sizes[:-1], sizes[1:])]
    thetas = [max(10, int(a * rng.uniform(4, 12))) for a in sizes[:-1]]
    net = DiscreteNetwork(ws, thetas, DiscreteConfig(timesteps=timesteps, dt=dt))
    x = rng.integers(0, 12, (n_images, sizes[0])).astype(np.int32)
    x[rng.random(x.shape) > 0.6] = NO_SPIKE
    return net, list(x)


async def read_weights(ctx, dut, shapes):
    """Every weight of a classifier through its read-back port, one at a time (while idle),
    each read ``dut.rb_latency`` cycles after its ``rb_en`` (the address held meanwhile): a
    list of int64 arrays of ``shapes`` (one ``(n_in, n_out)`` per weight layer)."""
    out = []
    for l, shape in enumerate(shapes):
        vals = np.zeros(shape, np.int64)
        for i, j in np.ndindex(*shape):
            ctx.set(dut.model.w_layer, l)
            ctx.set(dut.model.w_src, i)
            ctx.set(dut.model.w_dst, j)
            ctx.set(dut.model.rb_en, 1)
            await ctx.tick()
            ctx.set(dut.model.rb_en, 0)
            if dut.rb_latency > 1:
                await ctx.tick().repeat(dut.rb_latency - 1)
            vals[i, j] = ctx.get(dut.model.rb_data)
        out.append(np.where(vals > 127, vals - 256, vals))
    return out


async def read_trace(ctx, dut, sizes):
    """Every neuron's spike step after an image, through a TTFS classifier's ``trace`` port:
    one array per layer after the input (``timesteps`` for a neuron that did not fire)."""
    out = []
    for layer in range(1, len(sizes)):
        vals = []
        for j in range(sizes[layer]):
            ctx.set(dut.trace.layer, layer)
            ctx.set(dut.trace.addr, j)
            await ctx.tick()
            vals.append(ctx.get(dut.trace.step))
        out.append(np.array(vals))
    return out


def check_against_golden(net, images, results, traces, context):
    """Assert that a TTFS classifier's ``results`` (dicts with ``error``, ``decided``,
    ``klass``, ``step``, ``spikes``, ``lookups``) and ``traces`` (:func:`read_trace`, or
    none) equal the discrete golden model's on ``images``, bit for bit; ``context`` starts
    each message. Returns the golden result."""
    g = simulate(net, np.asarray(images))
    T = net.config.timesteps
    assert len(results) == len(images), context
    for b, r in enumerate(results):
        msg = f"{context}, image {b}"
        assert r["error"] == 0, msg
        assert r["decided"] == (g.decision[b] >= 0), msg
        if g.decision[b] >= 0:
            assert r["klass"] == g.decision[b], msg
            assert r["step"] == g.decision_step[b], msg
        else:
            assert r["step"] == T, msg
        assert r["spikes"] == list(g.spikes[b]), msg
        assert r["lookups"] == list(g.lookups[b]), msg
        for l, tr in enumerate(traces[b] if traces else []):
            hw = np.where(tr == T, NO_SPIKE, tr)
            bad = np.nonzero(hw != g.spike_steps[l + 1][b])[0]
            assert not len(bad), (f"{msg}: layer {l + 1} neuron {bad[0]}: hardware step "
                                  f"{hw[bad[0]]}, golden {g.spike_steps[l + 1][b][bad[0]]}")
    return g
