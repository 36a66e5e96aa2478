"""Amaranth-simulator helpers for the PD blocks (async testbenches): a frame producer, an
activation consumer and a trace monitor, each with the seeded random stalls of
:func:`~spikegate.sim.amaranth_tb.stream_put` / :func:`~spikegate.sim.amaranth_tb.stream_get`."""

from .amaranth_tb import stream_get, stream_put

__all__ = ["put_frames", "get_values", "monitor_trace"]


async def put_frames(ctx, s, frames, *, rng=None, p_stall=0.0):
    """Send every activation of ``frames`` (``(T, n)``) on ``s``, frame after frame."""
    for frame in frames:
        for v in frame:
            await stream_put(ctx, s, {"x": int(v)}, rng=rng, p_stall=p_stall)


async def get_values(ctx, s, count, out, *, field="x", rng=None, p_stall=0.0):
    """Receive ``count`` payloads from ``s``, appending their ``field`` to ``out``."""
    for _ in range(count):
        p = await stream_get(ctx, s, rng=rng, p_stall=p_stall)
        out.append(int(getattr(p, field)))


async def monitor_trace(ctx, trace, recorder):
    """Feed a :class:`~spikegate.hdl.signatures.PDTracePort` into a
    :class:`~spikegate.sim.pd_trace.LayerTraceRecorder`, every cycle (run it in the
    background)."""
    async for vals in ctx.tick().sample(trace.s_valid, trace.s_index, trace.s_count, trace.s_end,
                                        trace.d_valid, trace.d_index, trace.d_u, trace.d_y,
                                        trace.d_act):
        sv, si, sc, se, dv, di, du, dy, da = vals[2:]      # clk hit and reset first
        if sv:
            recorder.event(si, sc, se)
        if dv:
            recorder.decoded(di, du, dy, da)
