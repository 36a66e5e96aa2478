"""The whole board top (UART, protocol engine, classifier) as Verilog under cocotb, driven
through its ``rx`` / ``tx`` pins by the host client itself (:mod:`spikegate.sim.bridge`).

* A digits network trained by the golden model is loaded over the UART into a board built
  with other weights, read back, and every image's class, decision step, spikes and lookups
  must equal :func:`spikegate.golden.ttfs_discrete.simulate`.
* A fuzz test sends 10,000 frames (seeded; a fixed count, no time budget) in bursts:
  random bytes, corrupted frames, bad CRCs, wrong lengths, oversized and unknown-command
  frames, values out of range, frames cut short (back to back, or by silence), and valid
  requests, among them loads of new weights and thresholds (confirmed by their replies;
  the reference model follows them). After each burst the device answers IDENTIFY,
  classifies a known image as the golden model does on the reference, and reads back the
  reference's weights.

The clock is cocotb's C++ one (``impl="gpi"``): its default here, a Python coroutine,
costs two awaits per cycle, more than the UART model and the client together.
"""

import collections
import time

import numpy as np
import pytest

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, RisingEdge, Timer

from spikegate.hdl import protocol_spec as P
from spikegate.boards.client import Client
from spikegate.boards.icebreaker import DEFAULT_LANES
from spikegate.boards.timing import ULX3S_BANKED, board_timing
from spikegate.boards.top import BoardTop
from spikegate.golden.ttfs_discrete import DiscreteConfig, DiscreteNetwork, simulate
from spikegate.hdl.protocol import result_bound
from spikegate.sim.bridge import SimTransport, UARTModel, run_client
from spikegate.sim.runner import run_cocotb, test_args

CLK_NS = 10
DIVISOR = 4                      # baud = clock / 4: the fewest cycles per bit the UART takes
TIMEOUT_CYCLES = 400             # the device's frame timeout (10 byte times)
BYTE_CYCLES = 10 * DIVISOR + 1   # one byte on the line, with the transmitter's idle cycle
LANES = (3, 1)


def make_top(weights, thetas, config, lanes, timeout_cycles, board="ulx3s", max_chunk=None,
             bank_depth=None):
    """BoardTop from plain parameters (the build directory is named from them), with the
    timing of ``board``'s builds; ``bank_depth``: the ULX3S MNIST builds' timing
    (:data:`~spikegate.boards.timing.ULX3S_BANKED`) with banks of that many words."""
    net = DiscreteNetwork(list(weights), list(thetas), DiscreteConfig.from_dict(config))
    clk = 1_000_000_000 // CLK_NS
    timing = board_timing(board) if bank_depth is None else \
        ULX3S_BANKED.replace(weight_bank_depth=bank_depth)
    return BoardTop(net, tuple(lanes), clk_freq_hz=clk, baud=clk // DIVISOR,
                    timeout_cycles=timeout_cycles, timing=timing,
                    max_chunk=P.MAX_CHUNK if max_chunk is None else max_chunk)


# --- cocotb side -------------------------------------------------------------------------

async def _start(dut):
    dut.rx.value = 1
    # The C++ clock: the default (a Python coroutine, as start_clock_and_reset starts it)
    # takes two awaits per cycle, about 60 % more time than the design's model.
    Clock(dut.clk, CLK_NS, unit="ns", impl="gpi").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
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
    info = client.info
    bound = result_bound(info.sizes, info.lanes, info.timesteps, info.max_payload // 3)
    assert 2 * max(cycles) <= bound, f"the watchdog's bound {bound} is too tight: {max(cycles)} cycles"
    dut._log.info(f"loaded {sent} bytes; {len(steps)} images, cycles per classification "
                  f"mean {np.mean(cycles):.0f} max {max(cycles)}; {time.perf_counter() - t0:.1f} s")


#: The kinds of fuzz frames, with their weights in the mix (see :class:`Fuzzer`).
FUZZ_MIX = {
    "noise": 10,            # random bytes, half of them after a SYNC byte
    "corrupt": 12,          # a valid frame with a bit flipped or a byte replaced (not its CRC)
    "bad_crc": 8,           # a valid frame with a wrong CRC
    "wrong_length": 8,      # well-formed, LEN not what the command takes
    "oversized": 2,         # well-formed, LEN larger than the device's buffer
    "unknown_command": 6,   # well-formed, a command code the protocol does not have
    "out_of_range": 8,      # well-formed, a layer, neuron, count, threshold or event out of range
    "unsupported": 2,       # TRAIN on a device without the learning unit
    "truncated": 8,         # a valid frame cut short, the next frame right behind it
    "cut_by_silence": 4,    # a valid frame cut short, then silence beyond the frame timeout
    "valid": 29,            # a valid request that changes nothing, back to back
    "valid_load": 3,        # new weights or a new threshold, confirmed by the reply
}


class Fuzzer:
    """Fuzz frames from a seeded generator, made from the reference model ``ref`` as it is
    when each frame is drawn.

    Mutated frames never write new values: the valid frames they start from write only what
    the reference already holds. Only a frame cut short can swallow the bytes behind it (as
    its payload and CRC); so only frames that cannot write are cut short back to back
    (``truncated``), and any frame cut short before silence (``cut_by_silence``). New
    values arrive only by ``valid_load``, one request at a time with its reply checked.
    """

    def __init__(self, rng, ref, buffer_bytes, max_chunk):
        self.rng, self.ref = rng, ref
        self.buffer_bytes, self.max_chunk = buffer_bytes, max_chunk
        self.kinds = list(FUZZ_MIX)
        w = np.array(list(FUZZ_MIX.values()), float)
        self.p = w / w.sum()
        self.counts = collections.Counter()      # per kind, and "valid <command>" per command

    def _int(self, lo, hi):
        return int(self.rng.integers(lo, hi))

    def kind(self):
        return self.kinds[self.rng.choice(len(self.kinds), p=self.p)]

    def _chunk(self, count_max=None):
        """A random in-range chunk ``(layer, src, dst, count)`` of the reference."""
        l = self._int(0, len(self.ref.weights))
        w = self.ref.weights[l]
        start = self._int(0, w.size)
        count = self._int(1, min(count_max or self.max_chunk, w.size - start) + 1)
        return l, start // w.shape[1], start % w.shape[1], count, start

    def image(self, density=0.1):
        n, T = self.ref.sizes[0], self.ref.config.timesteps
        return np.where(self.rng.random(n) < density, self.rng.integers(0, T, n), -1)

    def valid(self, writes=True):
        """A valid request (bytes) that changes nothing, and its command."""
        cmds = [P.Command.IDENTIFY, P.Command.STATS, P.Command.RESET_STATS, P.Command.READ_WEIGHTS,
                P.Command.CLASSIFY] + ([P.Command.LOAD_WEIGHTS, P.Command.LOAD_THETA] if writes else [])
        cmd = cmds[self._int(0, len(cmds))]
        if cmd in (P.Command.READ_WEIGHTS, P.Command.LOAD_WEIGHTS):
            l, src, dst, count, start = self._chunk(count_max=8)     # short frames, more of them
            payload = P.pack(P.ChunkHeader(), {"layer": l, "src": src, "dst": dst, "count": count})
            if cmd == P.Command.LOAD_WEIGHTS:
                payload += self.ref.weights[l].ravel()[start:start + count].tobytes()
        elif cmd == P.Command.LOAD_THETA:
            l = self._int(0, len(self.ref.thetas))
            payload = P.pack(P.ThetaPayload(), {"layer": l, "theta": int(self.ref.thetas[l])})
        elif cmd == P.Command.CLASSIFY:
            payload = P.encode_events(self.image(), self.ref.config.timesteps)
        else:
            payload = b""
        return P.encode_request(cmd, payload), cmd

    def frame(self, kind):
        """``(frame bytes, idle cycles after it)`` of a fuzz kind (not ``valid_load``)."""
        rng = self.rng
        gap = 0 if rng.random() < 0.85 else self._int(1, 4) * BYTE_CYCLES
        if kind == "noise":
            f = rng.integers(0, 256, self._int(1, 12)).astype(np.uint8).tobytes()
            return (bytes([P.SYNC]) + f if rng.random() < 0.5 else f), gap
        if kind == "valid":
            f, cmd = self.valid()
            self.counts[f"valid {cmd.name}"] += 1
            return f, gap
        if kind in ("corrupt", "bad_crc"):
            f = bytearray(self.valid()[0])
            if kind == "bad_crc":
                crc = int.from_bytes(f[-2:], "little") ^ self._int(1, 1 << 16)
                f[-2:] = crc.to_bytes(2, "little")
            elif rng.random() < 0.5:
                f[self._int(1, len(f) - 2)] ^= 1 << self._int(0, 8)
            else:
                i = self._int(1, len(f) - 2)
                f[i] = (f[i] + self._int(1, 256)) & 0xFF
            return bytes(f), gap
        if kind == "wrong_length":
            f = self.valid()[0]
            cmd, payload = f[1], f[4:-2]
            delta = [-2, -1, 1, 2][self._int(0, 4)]
            if len(payload) + delta < 0:
                delta = -delta
            payload = payload[:delta] if delta < 0 else payload + bytes(rng.integers(0, 256, delta).astype(np.uint8))
            return P.encode_request(cmd, payload), gap
        if kind == "oversized":
            cmd = list(P.Command)[self._int(0, len(P.Command))]
            n = self.buffer_bytes + self._int(1, 13)
            return P.encode_request(cmd, rng.integers(0, 256, n).astype(np.uint8).tobytes()), gap
        if kind == "unknown_command":
            code = int(rng.choice([0] + list(range(len(P.Command) + 1, 256))))
            return P.encode_request(code, rng.integers(0, 256, self._int(0, 9)).astype(np.uint8).tobytes()), gap
        if kind == "out_of_range":
            return self._out_of_range(), gap
        if kind == "unsupported":
            head = P.pack(P.TrainHeader(), {"label": self._int(0, self.ref.sizes[-1]), "lr_shift": 0})
            return P.encode_request(P.Command.TRAIN, head + P.encode_events(
                self.image(), self.ref.config.timesteps)), gap
        if kind == "truncated":
            f = self.valid(writes=False)[0]
            return f[:self._int(1, len(f))], gap
        if kind == "cut_by_silence":
            f = self.valid()[0]
            return f[:self._int(1, len(f))], TIMEOUT_CYCLES + self._int(1, 2 * BYTE_CYCLES)
        raise ValueError(f"unknown fuzz kind {kind!r}")

    def _out_of_range(self):
        """A well-formed request with one value out of range."""
        ref, T = self.ref, self.ref.config.timesteps
        what = self._int(0, 4)
        if what < 2:            # a chunk of READ_WEIGHTS (0) or LOAD_WEIGHTS (1)
            l, src, dst, count, _ = self._chunk()
            n_in, n_out = ref.weights[l].shape
            bad = self._int(0, 5)
            if bad == 0:
                l = self._int(len(ref.weights), 256)
            elif bad == 1:
                src = self._int(n_in, 1 << 16)
            elif bad == 2:
                dst = self._int(n_out, 1 << 16)
            elif bad == 3:      # count 0, or more than max_chunk (still in the buffer)
                count = 0 if self.rng.random() < 0.5 else \
                    self._int(self.max_chunk + 1, self.buffer_bytes - 7 + 1)
            else:               # past the layer's end
                src, dst = n_in - 1, n_out - 1
                count = self._int(2, self.max_chunk + 1)
            payload = P.pack(P.ChunkHeader(), {"layer": l, "src": src, "dst": dst, "count": count})
            if what == 1:
                payload += self.rng.integers(-128, 128, count).astype(np.int8).tobytes()
                return P.encode_request(P.Command.LOAD_WEIGHTS, payload)
            return P.encode_request(P.Command.READ_WEIGHTS, payload)
        if what == 2:           # LOAD_THETA: layer, or theta 0 or above 4095
            bad = self._int(0, 3)
            layer = self._int(len(ref.thetas), 256) if bad == 0 else 0
            theta = (0 if bad == 1 else self._int(4096, 1 << 16)) if bad else 5
            return P.encode_request(P.Command.LOAD_THETA, P.pack(P.ThetaPayload(),
                                                                 {"layer": layer, "theta": theta}))
        # CLASSIFY: one event's index or step out of range, or two events out of order
        events = [(self._int(0, ref.sizes[0]), self._int(0, T)) for _ in range(self._int(2, 6))]
        events.sort(key=lambda e: e[1])
        i, bad = self._int(0, len(events)), self._int(0, 3)
        if bad == 0:
            events[i] = (self._int(ref.sizes[0], 1 << 16), events[i][1])
        elif bad == 1:
            events[i] = (events[i][0], self._int(T, 256))
        else:
            events[0], events[-1] = (events[0][0], T - 1), (events[-1][0], 0)
        return P.encode_request(P.Command.CLASSIFY, b"".join(
            P.pack(P.Event(), {"index": i, "step": t}) for i, t in events))

    def load(self):
        """A valid load of new values: ``("weights", layer, src, dst, values, start)`` or
        ``("theta", layer, theta)``."""
        if self.rng.random() < 0.75:
            l, src, dst, count, start = self._chunk(count_max=16)
            return "weights", l, src, dst, self.rng.integers(-30, 90, count).astype(np.int8), start
        l = self._int(0, len(self.ref.thetas))
        t0 = int(self.ref.thetas[l])
        return "theta", l, self._int(max(1, t0 - 30), t0 + 31)


async def _quiesce(dut, uart):
    """Let the device finish: the line quiet past the frame timeout (a frame in progress is
    given up), the engine back to hunting (``leds[0]`` low), its last reply byte out; then
    forget what was received."""
    await Timer((TIMEOUT_CYCLES + 2 * BYTE_CYCLES) * CLK_NS, unit="ns")
    while int(dut.leds.value) & 1:
        await Timer(BYTE_CYCLES * CLK_NS, unit="ns")
    await Timer(2 * BYTE_CYCLES * CLK_NS, unit="ns")
    uart.received.clear()


@cocotb.test()
async def board_survives_fuzzing(dut):
    a, net, uart, client = await _start(dut)
    seed, bursts, burst_frames = a["seed"], a["bursts"], a["burst_frames"]
    rng = np.random.default_rng(seed)
    ref = DiscreteNetwork([w.copy() for w in net.weights], list(net.thetas), net.config)
    steps = a["steps"]

    # The device starts with other weights and thresholds: load the network once.
    await run_client(client.load, ref)
    info0 = await run_client(client.identify)
    fuzz = Fuzzer(rng, ref, info0.max_payload, info0.max_chunk)
    t0, cpu0, c0 = time.perf_counter(), time.process_time(), get_sim_time("ns")
    sent_bytes = 0

    def checks(image):
        info = client.identify()
        result = client.classify(image)
        weights = [client.read_weights(l) for l in range(len(ref.weights))]
        return info, result, weights

    for burst in range(bursts):
        ctx = f"fuzz seed {seed}, burst {burst}"
        for _ in range(burst_frames):
            kind = fuzz.kind()
            fuzz.counts[kind] += 1
            if kind == "valid_load":
                load = fuzz.load()
                await _quiesce(dut, uart)
                try:
                    if load[0] == "weights":
                        _, l, src, dst, values, start = load
                        await run_client(client.load_weights, l, src, dst, values)
                        ref.weights[l].reshape(-1)[start:start + len(values)] = values
                    else:
                        _, l, theta = load
                        await run_client(client.load_theta, l, theta)
                        ref.thetas[l] = theta
                except (IOError, RuntimeError) as e:
                    raise AssertionError(f"{ctx}: a valid load {load[:3]} failed: {e}") from e
                fuzz.counts[f"valid_load {load[0]}"] += 1
                continue
            frame, gap = fuzz.frame(kind)
            await uart.send(frame)
            sent_bytes += len(frame)
            if gap:
                await uart.idle(gap * CLK_NS)
            uart.received.clear()
        # After the burst: the device answers, classifies as golden, holds the reference.
        await _quiesce(dut, uart)
        image = steps[burst % len(steps)]
        info, result, weights = await run_client(checks, image)
        assert info == info0, f"{ctx}: IDENTIFY {info} after fuzzing, {info0} before"
        check_results([result], simulate(ref, image[None]), ctx)
        for l, w in enumerate(ref.weights):
            bad = np.argwhere(weights[l] != w)
            assert not len(bad), (f"{ctx}: layer {l} weight {tuple(bad[0])} reads "
                                  f"{weights[l][tuple(bad[0])]}, the reference holds {w[tuple(bad[0])]}")
    total = sum(fuzz.counts[k] for k in FUZZ_MIX)
    assert total == bursts * burst_frames
    missing = [k for k in FUZZ_MIX if fuzz.counts[k] == 0]
    missing += [k for k in ("valid_load weights", "valid_load theta", "valid CLASSIFY",
                            "valid LOAD_WEIGHTS") if fuzz.counts[k] == 0]
    assert not missing, f"fuzz seed {seed}: no frame of kind {missing}"
    assert uart.framing_errors == 0
    cycles = (get_sim_time("ns") - c0) // CLK_NS
    dut._log.info(f"fuzz seed {seed}: {total} frames in {bursts} bursts ({sent_bytes} bytes "
                  f"besides the loads), {cycles} cycles in {time.perf_counter() - t0:.1f} s "
                  f"({time.process_time() - cpu0:.1f} s of CPU); "
                  f"frames per kind: {dict(sorted(fuzz.counts.items()))}")


# --- pytest side -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_network():
    """A 64-64-10 network trained on digits by the golden model (seeded, a few seconds)."""
    from spikegate.sim.ttfs_run import small_digits_network
    dnet, steps, _ = small_digits_network()
    return dnet, steps


def _run(dnet, steps, testcase, lanes=LANES, board="ulx3s", top=None, **extra):
    # The bitstream's initial weights differ from the model: loading over the UART matters.
    # ``top``: more parameters of make_top.
    rng = np.random.default_rng(5)
    initial = [rng.integers(-60, 100, w.shape).astype(np.int8) for w in dnet.weights]
    run_cocotb(make_top, module=__name__, testcase=testcase, name="board_top",
               params={"weights": initial, "thetas": [t + 1 for t in dnet.thetas],
                       "config": dnet.config.to_dict(), "lanes": lanes,
                       "timeout_cycles": TIMEOUT_CYCLES, "board": board, **(top or {})},
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


def test_board_top_digits_ulx3s_weight_banks(digits_network):
    """The same with the ULX3S MNIST builds' timing (registered weight banks of 4-bit
    memories, here 64 words deep so that the digits network spans 22 and 10 banks at lanes
    (3, 1)): READ_WEIGHTS waits the classifier's read-back latency of 4 cycles."""
    dnet, steps = digits_network
    _run(dnet, steps[:16], "board_loads_and_classifies_like_golden", top={"bank_depth": 64})


#: The fuzz test's frames: bursts of frames, then the checks.
FUZZ_SEED, FUZZ_BURSTS, FUZZ_BURST_FRAMES = 2024, 20, 500
#: Its devices' largest weight chunk: a buffer of 75 bytes (an image of all 24 inputs)
#: instead of 263, so that oversized frames are short.
FUZZ_MAX_CHUNK = 32


@pytest.mark.slow
def test_board_top_fuzz():
    """FUZZ_BURSTS * FUZZ_BURST_FRAMES = 10,000 fuzz frames of every kind of
    :data:`FUZZ_MIX` (seed 2024; a fixed count, no time budget), interleaved with valid
    requests and loads; after each burst the device answers IDENTIFY, classifies a known
    image as the golden model on the reference, and holds the reference's weights.
    The protocol engine does not depend on the network's size: a small random 24-12-4
    network keeps the simulation fast."""
    rng = np.random.default_rng(FUZZ_SEED)
    net = DiscreteNetwork([rng.integers(-30, 90, (24, 12)).astype(np.int8),
                           rng.integers(-30, 90, (12, 4)).astype(np.int8)], [150, 120])
    steps = np.where(rng.random((4, 24)) < 0.5, rng.integers(0, 32, (4, 24)), -1)
    assert (simulate(net, steps).decision >= 0).all(), "the network should decide"
    _run(net, steps, "board_survives_fuzzing", lanes=(2, 1), top={"max_chunk": FUZZ_MAX_CHUNK},
         seed=FUZZ_SEED, bursts=FUZZ_BURSTS, burst_frames=FUZZ_BURST_FRAMES)
