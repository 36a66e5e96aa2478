"""The whole board top (UART, protocol engine, classifier) as Verilog under cocotb, driven
through its ``rx`` / ``tx`` pins by the host client itself (:mod:`spikegate.sim.bridge`).

* A digits network trained by the golden model is loaded over the UART into a board built
  with other weights, read back, and every image's class, decision step, spikes and lookups
  must equal :func:`spikegate.golden.ttfs_discrete.simulate`.
* A fuzz test sends thousands of random and mutated frames (seeded), back to back, then
  checks that the device answers IDENTIFY, that every stored weight is unchanged, and that a
  classification is still right.
"""

import time

import numpy as np
import pytest

import cocotb

from spikegate.hdl import protocol_spec as P
from spikegate.boards.client import Client, DeviceError
from spikegate.boards.icebreaker import DEFAULT_LANES
from spikegate.boards.timing import board_timing
from spikegate.boards.top import BoardTop
from spikegate.golden.ttfs_discrete import DiscreteConfig, DiscreteNetwork, simulate
from spikegate.sim.bridge import SimTransport, UARTModel, run_client
from spikegate.sim.runner import run_cocotb, test_args
from spikegate.sim.stream import start_clock_and_reset

CLK_NS = 10
DIVISOR = 4                      # baud = clock / 4: the fewest cycles per bit the UART takes
TIMEOUT_CYCLES = 400             # the device's frame timeout (10 byte times)
LANES = (3, 1)


def make_top(weights, thetas, config, lanes, timeout_cycles, board="ulx3s"):
    """BoardTop from plain parameters (the build directory is named from them), with the
    timing of ``board``'s builds."""
    net = DiscreteNetwork(list(weights), list(thetas), DiscreteConfig.from_dict(config))
    clk = 1_000_000_000 // CLK_NS
    return BoardTop(net, tuple(lanes), clk_freq_hz=clk, baud=clk // DIVISOR,
                    timeout_cycles=timeout_cycles, timing=board_timing(board))


# --- cocotb side -------------------------------------------------------------------------

async def _start(dut):
    dut.rx.value = 1
    await start_clock_and_reset(dut, CLK_NS)
    uart = UARTModel(dut, bit_ns=DIVISOR * CLK_NS)
    # a read waits this long for the next byte: well over a frame timeout and a classification
    client = Client(SimTransport(uart, timeout_ns=30 * TIMEOUT_CYCLES * CLK_NS))
    a = test_args()
    net = DiscreteNetwork(list(a["weights"]), list(a["thetas"]), DiscreteConfig.from_dict(a["config"]))
    return a, net, uart, client


def check_results(results, g, context):
    for b, r in enumerate(results):
        msg = f"{context}, image {b}"
        assert r["error"] == 0, f"{msg}: error flag"
        assert r["decision"] == g.decision[b], f"{msg}: class {r['decision']} vs {g.decision[b]}"
        if g.decision[b] >= 0:
            assert r["decision_step"] == g.decision_step[b], f"{msg}: decision step"
        assert r["spikes"] == g.spikes[b].tolist(), f"{msg}: spikes {r['spikes']} vs {g.spikes[b]}"
        assert r["lookups"] == g.lookups[b].tolist(), f"{msg}: lookups"
        assert r["cycles"] > 0, msg


@cocotb.test()
async def board_loads_and_classifies_like_golden(dut):
    a, net, uart, client = await _start(dut)
    steps = a["steps"]

    def host():
        info = client.identify()
        assert info.sizes == net.sizes and info.lanes == tuple(a["lanes"]), info
        sent = client.load(net)
        # Read back the last layer whole and the first and last chunk of the others (the
        # fuzz test reads back everything).
        weights = []
        for l, w in enumerate(net.weights[:-1]):
            n = info.max_chunk
            weights.append((client.read_weights(l, 0, 0, n),
                            client.read_weights(l, (w.size - n) // w.shape[1], (w.size - n) % w.shape[1], n)))
        weights.append(client.read_weights(len(net.weights) - 1))
        client.reset_stats()
        results = [client.classify(s) for s in steps]
        return sent, weights, results, client.stats()

    t0 = time.perf_counter()
    sent, weights, results, stats = await run_client(host)
    for l, (first, last) in enumerate(weights[:-1]):
        flat = net.weights[l].ravel()
        assert np.array_equal(first, flat[:len(first)]), f"layer {l}: first chunk reads back wrong"
        assert np.array_equal(last, flat[-len(last):]), f"layer {l}: last chunk reads back wrong"
    bad = np.argwhere(weights[-1] != net.weights[-1])
    assert not len(bad), f"last layer: weight {tuple(bad[0])} reads {weights[-1][tuple(bad[0])]}"
    check_results(results, simulate(net, steps), a["context"])
    assert stats == {"images": len(steps), "errors": 0}, stats
    assert uart.framing_errors == 0
    cycles = [r["cycles"] for r in results]
    dut._log.info(f"loaded {sent} bytes; {len(steps)} images, cycles per classification "
                  f"mean {np.mean(cycles):.0f} max {max(cycles)}; {time.perf_counter() - t0:.1f} s")


def fuzz_frames(rng, net, n):
    """``n`` random or mutated requests (bytes each). Valid requests that write only write
    the values already stored, so the model must come out unchanged whatever gets through."""
    T = net.config.timesteps
    frames = []

    def valid():
        k = rng.integers(0, 7)
        if k == 0:
            return P.encode_request(P.Command.IDENTIFY)
        if k == 1:
            return P.encode_request(P.Command.STATS)
        l = int(rng.integers(0, len(net.weights)))
        w = net.weights[l]
        n_out = w.shape[1]
        start = int(rng.integers(0, w.size))
        count = int(rng.integers(1, min(32, w.size - start) + 1))
        head = {"layer": l, "src": start // n_out, "dst": start % n_out, "count": count}
        if k == 2:
            return P.encode_request(P.Command.READ_WEIGHTS, P.pack(P.ChunkHeader(), head))
        if k == 3:
            data = w.ravel()[start:start + count].tobytes()
            return P.encode_request(P.Command.LOAD_WEIGHTS, P.pack(P.ChunkHeader(), head) + data)
        if k == 4:
            return P.encode_request(P.Command.LOAD_THETA, P.pack(P.ThetaPayload(),
                                    {"layer": l, "theta": net.thetas[l]}))
        steps = np.where(rng.random(net.sizes[0]) < 0.1, rng.integers(0, T, net.sizes[0]), -1)
        return P.encode_request(P.Command.CLASSIFY, P.encode_events(steps, T))

    for _ in range(n):
        kind = rng.integers(0, 8)
        if kind == 0:              # noise, sometimes with a sync byte in front
            f = rng.integers(0, 256, int(rng.integers(1, 12))).astype(np.uint8).tobytes()
            frames.append(bytes([P.SYNC]) + f if rng.random() < 0.5 else f)
            continue
        f = bytearray(valid())
        if kind == 1:              # flip one bit after the sync byte
            i = int(rng.integers(1, len(f)))
            f[i] ^= 1 << int(rng.integers(0, 8))
        elif kind == 2:            # replace a byte
            i = int(rng.integers(1, len(f)))
            f[i] = (f[i] + int(rng.integers(1, 256))) & 0xFF
        elif kind == 3:            # truncate
            f = f[:int(rng.integers(1, len(f)))]
        elif kind == 4:            # a well-formed frame with an unknown command
            f = bytearray(P.encode_request(int(rng.choice([0, 9, 0x42, 0xFF])), bytes(f[4:-2])))
        elif kind == 5:            # well-formed, wrong length
            payload = bytes(f[4:-2])
            payload = payload + b"\x00" if rng.random() < 0.5 or not payload else payload[:-1]
            f = bytearray(P.encode_request(f[1], payload))
        elif kind == 6:            # well-formed, an index out of range
            f = bytearray(P.encode_request(P.Command.READ_WEIGHTS, P.pack(P.ChunkHeader(), {
                "layer": int(rng.integers(0, 4)), "src": int(rng.integers(0, 1 << 16)),
                "dst": int(rng.integers(0, 1 << 16)), "count": int(rng.integers(0, 300))})))
        # kind 7: the valid frame as it is
        frames.append(bytes(f))
    return frames


@cocotb.test()
async def board_survives_fuzzing(dut):
    a, net, uart, client = await _start(dut)
    seed, n_frames, budget_s = a["seed"], a["n_frames"], a["budget_s"]
    rng = np.random.default_rng(seed)
    ctx = f"fuzz seed {seed}"

    # The device starts with the network of the build; load it once more to be sure.
    await run_client(client.load, net)
    frames = fuzz_frames(rng, net, n_frames)
    t0 = time.perf_counter()
    sent = 0
    for f in frames:
        await uart.send(f)
        sent += 1
        if rng.random() < 0.2:     # sometimes let the device answer (or time out)
            await uart.idle(int(rng.integers(1, 3)) * TIMEOUT_CYCLES * CLK_NS)
        uart.received.clear()
        if time.perf_counter() - t0 > budget_s:
            break
    fuzz_s = time.perf_counter() - t0
    assert sent >= min(n_frames, 1000), f"{ctx}: only {sent} frames in {budget_s} s"

    steps = a["steps"][:4]

    def host():
        client.resync()
        info = client.identify()
        weights = [client.read_weights(l) for l in range(len(net.weights))]
        results = [client.classify(s) for s in steps]
        try:
            client.request(P.Command.TRAIN, b"\x00\x00\x00")
            train = None
        except DeviceError as e:
            train = e.status
        return info, weights, results, train

    info, weights, results, train = await run_client(host)
    assert info.sizes == net.sizes, f"{ctx}: identify after fuzzing"
    for l, w in enumerate(net.weights):
        bad = np.argwhere(weights[l] != w)
        assert not len(bad), f"{ctx}: layer {l} weight {tuple(bad[0])} changed"
    check_results(results, simulate(net, steps), ctx)
    assert train == P.Status.UNSUPPORTED, f"{ctx}: {train}"
    dut._log.info(f"{ctx}: {sent} frames ({sum(map(len, frames[:sent]))} bytes) in {fuzz_s:.1f} s")


# --- pytest side -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_network():
    """A 64-64-10 network trained on digits by the golden model (seeded, a few seconds)."""
    from spikegate.sim.ttfs_run import small_digits_network
    dnet, steps, _ = small_digits_network()
    return dnet, steps


def _run(dnet, steps, testcase, lanes=LANES, board="ulx3s", **extra):
    # The bitstream's initial weights differ from the model: loading over the UART matters.
    rng = np.random.default_rng(5)
    initial = [rng.integers(-60, 100, w.shape).astype(np.int8) for w in dnet.weights]
    run_cocotb(make_top, module=__name__, testcase=testcase, name="board_top",
               params={"weights": initial, "thetas": [t + 1 for t in dnet.thetas],
                       "config": dnet.config.to_dict(), "lanes": lanes,
                       "timeout_cycles": TIMEOUT_CYCLES, "board": board},
               test_args={"config": dnet.config.to_dict(), "weights": dnet.weights,
                          "thetas": dnet.thetas, "steps": steps,
                          "lanes": list(lanes), "context": f"board top, {'-'.join(map(str, dnet.sizes))}, "
                          f"lanes {lanes}, {board} options", **extra})


def test_board_top_digits(digits_network):
    """Load over the UART, read back, classify 16 test images: same as golden."""
    dnet, steps = digits_network
    g = simulate(dnet, steps[:16])
    assert (g.decision >= 0).mean() > 0.9, "the trained network should decide"
    _run(dnet, steps[:16], "board_loads_and_classifies_like_golden")


def test_board_top_digits_icebreaker(digits_network):
    """The same with the iCEBreaker build's timing and lanes (boards.timing.ICEBREAKER)."""
    dnet, steps = digits_network
    _run(dnet, steps[:16], "board_loads_and_classifies_like_golden",
         lanes=DEFAULT_LANES, board="icebreaker")


@pytest.mark.slow
def test_board_top_fuzz():
    """2000 random and mutated frames (seed 2024, at most 180 s of fuzzing, at least 1000
    frames), then the device answers, its weights are unchanged and it classifies right.
    The time bound keeps a slow machine from stalling CI; at 90 s a machine loaded three
    processes per core sent only 964 frames.
    The protocol engine does not depend on the network's size: a small random 24-12-4
    network keeps the simulation fast."""
    rng = np.random.default_rng(2024)
    net = DiscreteNetwork([rng.integers(-30, 90, (24, 12)).astype(np.int8),
                           rng.integers(-30, 90, (12, 4)).astype(np.int8)], [150, 120])
    steps = np.where(rng.random((4, 24)) < 0.5, rng.integers(0, 32, (4, 24)), -1)
    assert (simulate(net, steps).decision >= 0).all(), "the network should decide"
    _run(net, steps, "board_survives_fuzzing", lanes=(2, 1), seed=2024, n_frames=2000,
         budget_s=180)
