"""Link benchmark: the UART rates both boards' USB bridges and clocks make, and the
classifications per second over the link, computed from the bytes per image and measured
in simulation.

Two tables (markdown, printed); the second also for CLASSIFY_BATCH (as many images per
exchange as the buffer takes, simulated as one exchange):

1. Rates: per board (its bridge, its default clock as its PLL makes it) and baud rate, the
   board's UART divisor and how far the rate it makes is from the one asked for, and the
   same for the bridge (:mod:`spikegate.boards.link`).
2. Over the link, at ``--baud`` (default :data:`~spikegate.hdl.protocol_spec.DEFAULT_BAUD`),
   one CLASSIFY request and its reply at a time: per board, the digits test images' mean
   events (graded encoding, the bench's digits model's), the bytes per image on the line
   (request and reply), the images per second the bytes allow and with a 1 ms USB
   turnaround per exchange (an FTDI latency timer of 1 ms; the default is 16 ms), and,
   measured in simulation (Amaranth's simulator, the :class:`~spikegate.boards.top.BoardTop`
   of a 64-64-10 network with random weights, its UART pins driven and read bit by bit at
   the board's divisor for ``--images`` digits test images): the cycles per exchange (first
   start bit of the request to the last stop bit of the reply), the images per second they
   give at the board's clock, and the classifier's own rate (the reply's ``cycles``).

Run: ``python -m spikegate.scripts.bench_link [--images 3] [--baud 1000000]``. Each
simulated image takes about 15 s of CPU.
"""

import argparse
import sys

import numpy as np

from spikegate.boards import icebreaker, ulx3s
from spikegate.boards.link import (BITS_PER_BYTE, BOARD_BRIDGE, board_rate, bridge_rate,
                                   classify_bytes, link_images_per_s)
from spikegate.golden.data import load_dataset
from spikegate.golden.encoding import EncodingConfig, encode
from spikegate.golden.ttfs_discrete import DiscreteConfig, DiscreteNetwork, times_to_steps
from spikegate.hdl import protocol_spec as P

#: Baud rates of the rates table.
RATES = (115_200, 1_000_000, 2_000_000, 3_000_000)
SIZES = (64, 64, 10)
LANES = {"icebreaker": (2, 1), "ulx3s": (8, 8)}
TURNAROUND_S = 1e-3


def board_clocks():
    """``{board: clock in Hz}``: each board's default clock as its PLL makes it."""
    return {"icebreaker": icebreaker.ice40_pll(icebreaker.OSC_HZ,
                                               icebreaker.DEFAULT_CLK_HZ)["f_out_hz"],
            "ulx3s": ulx3s.DEFAULT_CLK_HZ}


def rates_table(clocks, rates=RATES):
    lines = ["| board | bridge | clock MHz | baud | board divisor | board off by | "
             "bridge rate | bridge off by |", "|---|---|---|---|---|---|---|---|"]
    for board, clk in clocks.items():
        bridge = BOARD_BRIDGE[board]
        for baud in rates:
            try:
                div, got = board_rate(int(round(clk)), baud)
                board_txt = f"{div} | {100 * (got / baud - 1):+.2f} %"
            except ValueError as err:
                board_txt = f"- | refused ({err})"
            try:
                b = bridge_rate(bridge, baud)
                bridge_txt = f"{b:,.0f} | {100 * (b / baud - 1):+.2f} %"
            except ValueError as err:
                bridge_txt = f"- | {err}"
            lines.append(f"| {board} | {bridge} | {clk / 1e6:.3f} | {baud:,} | {board_txt} | "
                         f"{bridge_txt} |")
    return "\n".join(lines)


def digits_steps(config):
    """Input steps of the digits test images under the bench's graded encoding."""
    ds = load_dataset("digits")
    return times_to_steps(encode(ds.x_test, EncodingConfig("graded")), config)


def simulate_exchanges(board, clk, baud, steps_list, seed=0, *, batch=False,
                       buffer_bytes=None):
    """Cycles of one CLASSIFY exchange per image on a simulated board top, and the
    classifier's cycles from each reply; with ``batch``, of one CLASSIFY_BATCH exchange
    of all the images (one entry, the classifier's cycles 0: a batch reply has none)."""
    from amaranth.sim import Simulator
    from spikegate.boards.top import default_top
    from spikegate.boards.timing import board_timing
    rng = np.random.default_rng(seed)
    net = DiscreteNetwork.from_float([rng.normal(0, 1.5 / np.sqrt(a), (a, b))
                                      for a, b in zip(SIZES[:-1], SIZES[1:])], DiscreteConfig())
    top = default_top(net, LANES[board], clk_freq_hz=int(round(clk)), baud=baud,
                      timing=board_timing(board), buffer_bytes=buffer_bytes)
    div, T = top.divisor, net.config.timesteps
    out = []

    async def bench(ctx):
        ctx.set(top.rx, 1)
        await ctx.tick().repeat(4 * div)
        if batch:
            requests = [P.encode_request(P.Command.CLASSIFY_BATCH, P.encode_batch(
                [P.encode_events(s, T) for s in steps_list]))]
        else:
            requests = [P.encode_request(P.Command.CLASSIFY, P.encode_events(s, T))
                        for s in steps_list]
        for request in requests:
            cycles = 0
            for byte in request:
                for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                    ctx.set(top.rx, bit)
                    await ctx.tick().repeat(div)
                    cycles += div
            reply, prev = [], 1
            while len(reply) < 5 or len(reply) < P.REPLY_OVERHEAD + (reply[3] | reply[4] << 8):
                await ctx.tick()
                cycles += 1
                now = ctx.get(top.tx)
                if prev and not now:            # a start bit: sample each bit mid-period
                    await ctx.tick().repeat(div // 2)
                    value = 0
                    for i in range(8):
                        await ctx.tick().repeat(div)
                        value |= ctx.get(top.tx) << i
                    await ctx.tick().repeat(div)    # to the middle of the stop bit
                    cycles += div // 2 + 9 * div
                    reply.append(value)
                    now = 1
                prev = now
            await ctx.tick().repeat(div // 2)       # the stop bit's second half
            cycles += div // 2
            if reply[2] != P.Status.OK.value:
                raise RuntimeError(f"{board}: request {reply[1]} answered status {reply[2]}")
            payload = bytes(reply[5:-2])
            if batch:
                out.append((cycles, 0))
            else:
                res = P.unpack(P.ClassifyReply(len(SIZES)), payload)
                out.append((cycles, int(res.cycles)))

    sim = Simulator(top)
    sim.add_clock(1 / clk)
    sim.add_testbench(bench)
    sim.run()
    return out


def batch_images(steps, buffer_bytes):
    """How many of the first images of ``steps`` one CLASSIFY_BATCH frame takes."""
    size = 0
    for k, s in enumerate(steps):
        size += 3 * int((s >= 0).sum()) + 3
        if size > buffer_bytes:
            return k
    return len(steps)


def link_table(clocks, baud, n_images, buffer_bytes):
    config = DiscreteConfig()
    steps = digits_steps(config)
    events = (steps >= 0).sum(axis=1)
    mean_events = float(events.mean())
    request, reply = classify_bytes(mean_events, len(SIZES))
    buffer_bytes = buffer_bytes or P.max_payload(SIZES[0])
    n_batch = batch_images(steps, buffer_bytes)
    # a batch: 3 bytes per event, a marker and a 3-byte result per image, one frame each way
    batch_bytes = (P.REQUEST_OVERHEAD + P.REPLY_OVERHEAD) / n_batch + 3 * mean_events + 6
    lines = [f"At {baud:,} baud; digits test set: {len(steps)} images, {mean_events:.1f} events "
             f"per image on average; simulated: the first {n_images} test images.", "",
             "| board | clock MHz | bytes/image (request + reply) | images/s by bytes | "
             "with 1 ms turnaround | simulated cycles/exchange | images/s simulated | "
             "classifier cycles/image | classifier images/s | batch: bytes/image | "
             "batch: images/s by bytes (1 ms turnaround) | batch: images/s simulated |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for board, clk in clocks.items():
        by_bytes = link_images_per_s(mean_events, len(SIZES), baud)
        with_usb = link_images_per_s(mean_events, len(SIZES), baud, turnaround_s=TURNAROUND_S)
        runs = simulate_exchanges(board, clk, baud, steps[:n_images])
        exch = float(np.mean([c for c, _ in runs]))
        clf = float(np.mean([c for _, c in runs]))
        (batch_cycles, _), = simulate_exchanges(board, clk, baud, steps[:n_batch], batch=True,
                                                buffer_bytes=buffer_bytes)
        b_rate = baud / (BITS_PER_BYTE * batch_bytes)
        b_usb = 1 / (1 / b_rate + TURNAROUND_S / n_batch)
        lines.append(f"| {board} | {clk / 1e6:.3f} | {request + reply:.1f} ({request:.1f} + "
                     f"{reply}) | {by_bytes:,.0f} | {with_usb:,.0f} | {exch:,.0f} | "
                     f"{clk / exch:,.0f} | {clf:,.0f} | {clk / clf:,.0f} | {batch_bytes:.1f} | "
                     f"{b_rate:,.0f} ({b_usb:,.0f}) | {n_batch * clk / batch_cycles:,.0f} |")
    bits = (request + reply) * BITS_PER_BYTE
    lines += ["", f"Bytes bound: {bits:.0f} bits per exchange at {baud:,} baud. The simulated "
              "exchange adds the device's time from the request's last byte to the reply's "
              "first (the event check, the classification, the reply's start). A batch: "
              f"{n_batch} test images (as many as the {buffer_bytes}-byte buffer takes) in "
              "one CLASSIFY_BATCH exchange, simulated whole."]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baud", type=int, default=P.DEFAULT_BAUD,
                   help=f"baud rate of the link table (default {P.DEFAULT_BAUD})")
    p.add_argument("--buffer", type=int, default=2048,
                   help="the board top's payload buffer for the batch columns (default 2048 "
                        "bytes: one ECP5 DP16KD, four iCE40 EBRs; 0: the least, 263)")
    p.add_argument("--images", type=int, default=3,
                   help="digits test images simulated per board (default 3; 0: none)")
    args = p.parse_args(argv)
    if args.baud <= 0:
        p.error(f"--baud must be positive, not {args.baud}")
    if args.buffer and args.buffer < P.max_payload(SIZES[0]):
        p.error(f"--buffer must be 0 or at least {P.max_payload(SIZES[0])}, not {args.buffer}")
    if args.images < 0:
        p.error(f"--images must be >= 0, not {args.images}")
    clocks = board_clocks()
    print("## UART rates per board\n")
    print(rates_table(clocks))
    if args.images:
        print("\n## Classifications per second over the link\n")
        print(link_table(clocks, args.baud, args.images, args.buffer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
