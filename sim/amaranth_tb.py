"""Helpers for Amaranth-simulator test benches (async ``add_testbench`` functions).

``stream_put`` / ``stream_get`` move one payload over an ``amaranth.lib.stream`` interface
following its rules (valid never waits for ready; the payload holds until the transfer),
optionally idling a random number of cycles first (seeded by the caller's ``rng``).
"""

__all__ = ["stream_put", "stream_get"]


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
