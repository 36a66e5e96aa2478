# amaranth: UnusedElaboratable=no
"""The protocol engine (gateware decoder/encoder) in Amaranth's simulator, driven byte by
byte with a real (small) classifier behind it: every error case gets its error reply and
leaves the weights and thresholds intact; loads, read-back, classification against the
golden model; the timeout; bytes arriving mid-request (BUSY); statistics. The watchdog on
the classifier's result, with a stand-in classifier that answers late, never, or does not
take events, and with the real one on the slowest images the buffer takes."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from spikegate.hdl import protocol_spec as P
from spikegate.boards.client import Client
from spikegate.boards.top import connect_classifier
from spikegate.golden.ttfs_discrete import DiscreteConfig, DiscreteNetwork, simulate
from spikegate.hdl.classifier import TTFSClassifier
from spikegate.hdl.timing import Timing
from spikegate.hdl.layouts import ClassifierResultLayout
from spikegate.hdl.protocol import ProtocolEngine, crc16_network, result_bound

C, S = P.Command, P.Status
TIMEOUT = 200
REPLY_LIMIT = 20_000     # cycles: any request of these tests is answered well within
SEED = 11


def small_net(seed=SEED):
    rng = np.random.default_rng(seed)
    ws = [rng.integers(-30, 90, (10, 6)).astype(np.int8), rng.integers(-30, 90, (6, 3)).astype(np.int8)]
    return DiscreteNetwork(ws, [70, 60], DiscreteConfig(timesteps=12))


class _Bytes:
    """A transport over bytes already received (for :meth:`Client.read_reply`)."""
    def __init__(self, data):
        self.data = bytearray(data)

    def read(self, n):
        out, self.data[:n] = bytes(self.data[:n]), b""
        return out


def replies(raw):
    """Parse every reply frame in ``raw`` with the client's parser: [(status, cmd, payload)]."""
    t = _Bytes(raw)
    c = Client(t)
    out = []
    while t.data:
        out.append(c.read_reply())
    return out


async def send_pieces(ctx, eng, pieces, *, rng=None, sent=None):
    """Send ``pieces`` (bytes, or an int: that many idle cycles) into the engine, each after
    the reply to the one before (request/response), with 0 to 2 idle cycles between bytes
    when ``rng`` is given; ``sent()`` is called after each request's last byte."""
    for p in pieces:
        if isinstance(p, int):
            await ctx.tick().repeat(p)
            continue
        for b in p:
            ctx.set(eng.i_stream.payload, b)
            ctx.set(eng.i_stream.valid, 1)
            await ctx.tick()
            ctx.set(eng.i_stream.valid, 0)
            gap = 0 if rng is None else int(rng.integers(0, 3))
            if gap:
                await ctx.tick().repeat(gap)
        if sent is not None:
            sent()
        # wait for the reply (or the timeout) before the next piece
        for _ in range(REPLY_LIMIT):
            *_, busy = await ctx.tick().sample(eng.busy)
            if not busy:
                break
        else:
            raise AssertionError(f"no reply within {REPLY_LIMIT} cycles to {bytes(p).hex()}")
    await ctx.tick().repeat(3 * TIMEOUT)


def run(net, pieces, *, learning=False, max_chunk=8, seed=SEED, stall=0.3, pipeline=0):
    """Send ``pieces`` (bytes, or an int: that many idle cycles) into the engine, each after
    the reply to the one before; return the reply bytes. The reply stream is back-pressured at random (seeded).
    ``pipeline``: the timing level of the classifier and the engine, from 4 with a
    registered read-back (as the boards' timings)."""
    m = Module()
    timing = Timing.preset(pipeline, rb_register=pipeline >= 4)
    clf = TTFSClassifier.from_network(net, (2, 1), learning=learning, timing=timing)
    eng = ProtocolEngine(net.sizes, clf.lanes, net.config, clk_freq_hz=1_000_000,
                         timeout_cycles=TIMEOUT, learning=learning, max_chunk=max_chunk,
                         result_layout=clf.o_stream.payload.shape(), timing=timing)
    m.submodules.clf, m.submodules.eng = clf, eng
    connect_classifier(m, eng, clf)
    sim = Simulator(m)
    sim.add_clock(1e-6)
    out = bytearray()
    rng = np.random.default_rng(seed)

    async def sender(ctx):
        await send_pieces(ctx, eng, pieces, rng=rng)

    async def receiver(ctx):
        pending = None
        async for _, _, valid, ready, byte in ctx.tick().sample(eng.o_stream.valid,
                                                               eng.o_stream.ready,
                                                               eng.o_stream.payload):
            if pending is not None:
                assert valid and byte == pending, "o_stream: payload changed before transfer"
            if valid and ready:
                out.append(byte)
                pending = None
            else:
                pending = byte if valid else None
            ctx.set(eng.o_stream.ready, int(rng.random() >= stall))

    sim.add_testbench(sender)
    sim.add_testbench(receiver, background=True)
    sim.run()
    return bytes(out), eng


def req(cmd, payload=b""):
    return P.encode_request(cmd, payload)


def chunk(layer, src, dst, count, data=None):
    h = P.pack(P.ChunkHeader(), {"layer": layer, "src": src, "dst": dst, "count": count})
    return h if data is None else h + bytes(np.asarray(data, np.int8).tobytes())


def read_all(net):
    """Requests that read every weight back, in chunks of 8."""
    out = []
    for l, w in enumerate(net.weights):
        n_out = w.shape[1]
        for s in range(0, w.size, 8):
            out.append(req(C.READ_WEIGHTS, chunk(l, s // n_out, s % n_out, min(8, w.size - s))))
    return out


def weights_from(reps, net):
    flat = b"".join(p for st, _, p in reps)
    ws, i = [], 0
    for w in net.weights:
        ws.append(np.frombuffer(flat[i:i + w.size], np.int8).reshape(w.shape))
        i += w.size
    return ws


def test_crc16_network_is_crc16_update():
    """The engine's XOR network against the protocol's crc16_update, on random values and
    the unit vectors."""
    crc, byte, out = Signal(16), Signal(8), Signal(16)
    m = Module()
    m.d.comb += out.eq(crc16_network(crc, byte))
    sim = Simulator(m)
    rng = np.random.default_rng(SEED)
    cases = [(1 << i, 0) for i in range(16)] + [(0, 1 << i) for i in range(8)] + \
        [(int(c), int(b)) for c, b in zip(rng.integers(0, 1 << 16, 500), rng.integers(0, 256, 500))]

    async def bench(ctx):
        for c, b in cases:
            ctx.set(crc, c)
            ctx.set(byte, b)
            assert ctx.get(out) == P.crc16_update(c, b), f"crc {c:#06x}, byte {b:#04x} (seed {SEED})"

    sim.add_testbench(bench)
    sim.run()


def test_identify():
    net = small_net()
    raw, eng = run(net, [req(C.IDENTIFY)])
    (st, cmd, payload), = replies(raw)
    assert (st, cmd) == (S.OK, C.IDENTIFY.value)
    info = P.decode_identify(payload)
    assert info == eng.info and info.sizes == net.sizes and info.timesteps == 12


def _bad_crc():
    f = bytearray(req(C.IDENTIFY))
    f[-1] ^= 0x10
    return bytes(f)


def _bad_length_frame(cmd, payload):
    body = bytes([cmd.value]) + len(payload).to_bytes(2, "little") + payload
    return bytes([P.SYNC]) + body + P.crc16(body).to_bytes(2, "little")


# every malformed request: (name, frame, expected status)
BAD = [
    ("bad crc", _bad_crc(), S.BAD_CRC),
    ("bad crc in payload", req(C.LOAD_THETA, b"\x00\x05\x00")[:-2] + b"\x00\x00", S.BAD_CRC),
    ("unknown command 0x00", req(0x00), S.BAD_COMMAND),
    ("unknown command 0x7f", req(0x7F, b"\x01\x02"), S.BAD_COMMAND),
    ("identify with payload", req(C.IDENTIFY, b"\x00"), S.BAD_LENGTH),
    ("theta 2 bytes", req(C.LOAD_THETA, b"\x00\x05"), S.BAD_LENGTH),
    ("load length != 7 + count", req(C.LOAD_WEIGHTS, chunk(0, 0, 0, 3, [1, 2])), S.BAD_LENGTH),
    ("load header cut", req(C.LOAD_WEIGHTS, b"\x00\x00\x00"), S.BAD_LENGTH),
    ("read 8 bytes", req(C.READ_WEIGHTS, chunk(0, 0, 0, 1) + b"\x00"), S.BAD_LENGTH),
    ("classify 4 bytes", req(C.CLASSIFY, b"\x00\x00\x00\x00"), S.BAD_LENGTH),
    ("longer than the buffer", req(C.CLASSIFY, bytes(3 * 20)), S.BAD_LENGTH),
    ("train unsupported", req(C.TRAIN, b"\x00\x00\x00"), S.UNSUPPORTED),
    ("theta layer 2", req(C.LOAD_THETA, b"\x02\x05\x00"), S.OUT_OF_RANGE),
    ("theta 0", req(C.LOAD_THETA, b"\x00\x00\x00"), S.OUT_OF_RANGE),
    ("theta 4096", req(C.LOAD_THETA, b"\x00\x00\x10"), S.OUT_OF_RANGE),
    ("load layer 2", req(C.LOAD_WEIGHTS, chunk(2, 0, 0, 1, [5])), S.OUT_OF_RANGE),
    ("load src 10", req(C.LOAD_WEIGHTS, chunk(0, 10, 0, 1, [5])), S.OUT_OF_RANGE),
    ("load dst 6", req(C.LOAD_WEIGHTS, chunk(0, 0, 6, 1, [5])), S.OUT_OF_RANGE),
    ("load past the layer", req(C.LOAD_WEIGHTS, chunk(1, 5, 1, 3, [5, 5, 5])), S.OUT_OF_RANGE),
    ("read count 0", req(C.READ_WEIGHTS, chunk(0, 0, 0, 0)), S.OUT_OF_RANGE),
    ("read count > max_chunk", req(C.READ_WEIGHTS, chunk(0, 0, 0, 9)), S.OUT_OF_RANGE),
    ("read past the layer", req(C.READ_WEIGHTS, chunk(0, 9, 4, 3)), S.OUT_OF_RANGE),
    ("event index 10", req(C.CLASSIFY, P.pack(P.Event(), {"index": 10, "step": 0})), S.OUT_OF_RANGE),
    ("event step 12", req(C.CLASSIFY, P.pack(P.Event(), {"index": 1, "step": 12})), S.OUT_OF_RANGE),
    ("events out of order", req(C.CLASSIFY, P.pack(P.Event(), {"index": 1, "step": 5})
                                + P.pack(P.Event(), {"index": 2, "step": 4})), S.OUT_OF_RANGE),
    ("batch empty", req(C.CLASSIFY_BATCH), S.BAD_LENGTH),
    ("batch 4 bytes", req(C.CLASSIFY_BATCH, P.BATCH_MARKER + b"\x00"), S.BAD_LENGTH),
    # 12 empty images: 36 bytes, past the 33-byte buffer
    ("batch over the buffer", req(C.CLASSIFY_BATCH, P.BATCH_MARKER * 12), S.BAD_LENGTH),
    ("batch without its last marker", req(C.CLASSIFY_BATCH, P.BATCH_MARKER + P.pack(
        P.Event(), {"index": 1, "step": 0})), S.OUT_OF_RANGE),
    ("batch marker of step 0", req(C.CLASSIFY_BATCH, b"\xff\xff\x00"), S.OUT_OF_RANGE),
    ("batch event index 10 in image 2", req(C.CLASSIFY_BATCH, P.encode_batch(
        [b"", P.pack(P.Event(), {"index": 10, "step": 0})])), S.OUT_OF_RANGE),
    ("batch events out of order in image 1", req(C.CLASSIFY_BATCH, P.encode_batch(
        [P.pack(P.Event(), {"index": 1, "step": 5}) + P.pack(P.Event(), {"index": 2, "step": 4})])),
     S.OUT_OF_RANGE),
    ("markers in a CLASSIFY", req(C.CLASSIFY, P.BATCH_MARKER), S.OUT_OF_RANGE),
]


def test_every_error_gets_its_reply_and_changes_nothing():
    net = small_net()
    frames = [f for _, f, _ in BAD]
    raw, eng = run(net, frames + [req(C.STATS)] + read_all(net) + [req(C.LOAD_THETA, b"\x00\x01\x00")])
    reps = replies(raw)
    assert len(reps) == len(BAD) + 1 + len(read_all(net)) + 1, f"{len(reps)} replies"
    for (name, frame, want), (st, cmd, payload) in zip(BAD, reps):
        assert st == want, f"{name}: {st.name}, expected {want.name}"
        assert payload == b"", name
    st, _, payload = reps[len(BAD)]
    stats = P.unpack(P.StatsReply(), payload)
    assert (int(stats.images), int(stats.errors)) == (0, len(BAD))
    got = weights_from(reps[len(BAD) + 1:-1], net)
    for l, w in enumerate(net.weights):
        assert np.array_equal(got[l], w), f"layer {l} changed"
    assert reps[-1][0] == S.OK


@pytest.mark.parametrize("pipeline", [0, 4])
def test_load_read_back_wraps_rows_and_classifies_like_golden(pipeline):
    net = small_net()
    new = small_net(seed=99)
    frames = [req(C.LOAD_THETA, P.pack(P.ThetaPayload(), {"layer": l, "theta": t}))
              for l, t in enumerate(new.thetas)]
    for l, w in enumerate(new.weights):
        flat = w.ravel()
        n_out = w.shape[1]
        for s in range(0, flat.size, 7):        # chunks of 7 cross row ends
            part = flat[s:s + 7]
            frames.append(req(C.LOAD_WEIGHTS, chunk(l, s // n_out, s % n_out, len(part), part)))
    frames += read_all(net)
    rng = np.random.default_rng(SEED)
    steps = np.where(rng.random((5, 10)) < 0.7, rng.integers(0, 12, (5, 10)), -1)
    frames += [req(C.CLASSIFY, P.encode_events(s, 12)) for s in steps]
    frames += [req(C.STATS), req(C.RESET_STATS), req(C.STATS)]
    raw, _ = run(net, frames, pipeline=pipeline)
    reps = replies(raw)
    n_load = len(frames) - len(read_all(net)) - len(steps) - 3
    assert all(st == S.OK for st, _, _ in reps), [st.name for st, _, _ in reps]
    got = weights_from(reps[n_load:n_load + len(read_all(net))], net)
    for l, w in enumerate(new.weights):
        assert np.array_equal(got[l], w), f"layer {l} read back differs"
    g = simulate(new, steps)
    results = reps[n_load + len(read_all(net)):]
    for b in range(len(steps)):
        r = P.unpack(P.ClassifyReply(3), results[b][2])
        d = int(g.decision[b])
        assert int(r.decided) == int(d >= 0), f"image {b}"
        if d >= 0:
            assert (int(r.klass), int(r.decision_step)) == (d, int(g.decision_step[b])), f"image {b}"
        assert [int(r.spikes[i]) for i in range(3)] == g.spikes[b].tolist(), f"image {b}"
        assert [int(r.lookups[i]) for i in range(2)] == g.lookups[b].tolist(), f"image {b}"
        assert int(r.flags) == 0 and int(r.cycles) > 0
    s1 = P.unpack(P.StatsReply(), results[-3][2])
    s2 = P.unpack(P.StatsReply(), results[-1][2])
    assert int(s1.images) == len(steps) and int(s1.errors) == 0
    assert int(s2.images) == 0


def test_timeout_then_next_request_answered():
    net = small_net()
    frame = req(C.LOAD_WEIGHTS, chunk(0, 0, 0, 4, [1, 2, 3, 4]))
    # a frame that stops after 6 bytes, a long silence, then a good request
    raw, _ = run(net, [frame[:6], 2 * TIMEOUT, req(C.READ_WEIGHTS, chunk(0, 0, 0, 4))])
    (st1, _, _), (st2, _, data) = replies(raw)
    assert st1 == S.TIMEOUT
    assert st2 == S.OK and data == net.weights[0].ravel()[:4].tobytes(), "weights changed"


def test_bytes_during_a_request_get_busy():
    net = small_net()
    steps = np.arange(10) % 12
    # the second frame arrives while the first is carried out and answered
    raw, _ = run(net, [req(C.CLASSIFY, P.encode_events(steps, 12)) + req(C.IDENTIFY),
                       2 * TIMEOUT, req(C.IDENTIFY)])
    sts = [st for st, _, _ in replies(raw)]
    assert sts[0] == S.OK and S.BUSY in sts[1:-1] and sts[-1] == S.OK, [s.name for s in sts]


def test_garbage_between_frames_is_dropped():
    net = small_net()
    raw, _ = run(net, [b"\x00\x13\x37", req(C.IDENTIFY)])
    (st, cmd, _), = replies(raw)
    assert (st, cmd) == (S.OK, C.IDENTIFY.value)


def test_train_with_learning_unit():
    net = small_net()
    steps = np.arange(10) % 12
    payload = P.pack(P.TrainHeader(), {"label": 1, "lr_shift": 2}) + P.encode_events(steps, 12)
    bad_label = P.pack(P.TrainHeader(), {"label": 3, "lr_shift": 0})
    bad_shift = P.pack(P.TrainHeader(), {"label": 0, "lr_shift": 7})
    bad_k = P.pack(P.TrainHeader(), {"label": 0, "lr_shift": 0, "lfsr_k": 9})
    # Then stochastic rounding (k = 1; the LFSR has drawn nothing yet, so it is at its seed).
    steps2 = (np.arange(10) * 7) % 12
    stochastic = P.pack(P.TrainHeader(), {"label": 2, "lr_shift": 1, "lfsr_k": 1}) + \
        P.encode_events(steps2, 12)
    raw, _ = run(net, [req(C.TRAIN, payload), req(C.TRAIN, bad_label), req(C.TRAIN, bad_shift),
                       req(C.TRAIN, bad_k), req(C.TRAIN, stochastic),
                       req(C.IDENTIFY)] + read_all(net), learning=True)
    reps = replies(raw)
    assert [st for st, _, _ in reps[:6]] == [S.OK, S.OUT_OF_RANGE, S.OUT_OF_RANGE,
                                             S.OUT_OF_RANGE, S.OK, S.OK]
    r = P.unpack(P.ClassifyReply(3), reps[0][2])
    assert int(r.learn_cycles) > 0 and int(r.flags) == 0
    assert P.decode_identify(reps[5][2]).learning
    # The weights read back are the golden sign-backprop update of the two steps (the
    # refused requests changed nothing).
    from spikegate.golden.sign_backprop import UpdateLFSR, sign_backprop_step
    ref = DiscreteNetwork([w.copy() for w in net.weights], list(net.thetas), net.config)
    info = sign_backprop_step(ref, steps, 1, lr_shift=2)
    assert sum(info.changed) > 0, "the golden step should change some weight"
    sign_backprop_step(ref, steps2, 2, lr_shift=1, lfsr=UpdateLFSR(1))
    got = weights_from(reps[6:], net)
    for l, w in enumerate(ref.weights):
        bad = np.argwhere(got[l] != w)
        assert not len(bad), f"layer {l}: weight {tuple(bad[0])} is {got[l][tuple(bad[0])]}, golden {w[tuple(bad[0])]}"


def test_parameter_checks():
    cfg = DiscreteConfig(timesteps=12)
    with pytest.raises(ValueError, match="256 timesteps"):
        ProtocolEngine((4, 2), (1,), DiscreteConfig(timesteps=300, dt=1 / 128), clk_freq_hz=1, timeout_cycles=10)
    with pytest.raises(ValueError, match="timeout_cycles"):
        ProtocolEngine((4, 2), (1,), cfg, clk_freq_hz=1, timeout_cycles=1)
    with pytest.raises(ValueError, match="sizes"):
        ProtocolEngine((70000, 2), (1,), cfg, clk_freq_hz=1, timeout_cycles=10)
    with pytest.raises(TypeError, match="DiscreteConfig"):
        ProtocolEngine((4, 2), (1,), None, clk_freq_hz=1, timeout_cycles=10)


# --- the watchdog on the classifier's result ----------------------------------------------

WATCHDOG = 600       # cycles: the stand-in tests' result_timeout_cycles


def run_standin(net, pieces, *, delays, take_from=0, seed=SEED):
    """The engine alone, with a testbench as its classifier: it takes events from cycle
    ``take_from`` on (``ev_stream.ready`` low before), is not ``idle`` from an image's first
    beat to its result, and answers image ``i`` (``klass`` = i mod 4) ``delays[i]`` cycles
    after its end marker (None: never). Checks the stream rules on ``ev_stream``.
    Returns the reply bytes with the cycle each was taken, the request pieces' last cycles,
    the beats of each image and the cycles at which results were taken."""
    eng = ProtocolEngine(net.sizes, (2, 1), net.config, clk_freq_hz=1_000_000,
                         timeout_cycles=TIMEOUT, max_chunk=8, result_timeout_cycles=WATCHDOG)
    return _run_standin_engine(eng, net, pieces, delays=delays, take_from=take_from, seed=seed)


def _run_standin_engine(eng, net, pieces, *, delays, take_from=0, seed=SEED):
    """:func:`run_standin` on a given engine."""
    sim = Simulator(eng)
    sim.add_clock(1e-6)
    now = [0]
    out, sent_at, images, taken = [], [], [[]], []
    rng = np.random.default_rng(seed)
    result = ClassifierResultLayout(net.sizes, net.config.step_bits)

    async def clock(ctx):
        async for _ in ctx.tick():
            now[0] += 1

    async def sender(ctx):
        await send_pieces(ctx, eng, pieces, sent=lambda: sent_at.append(now[0]))

    async def receiver(ctx):
        async for _, _, valid, ready, byte in ctx.tick().sample(eng.o_stream.valid,
                                                               eng.o_stream.ready,
                                                               eng.o_stream.payload):
            if valid and ready:
                out.append((now[0], byte))
            ctx.set(eng.o_stream.ready, int(rng.random() >= 0.3))

    async def classifier(ctx):
        held, due, idle, ready = None, None, 1, 0
        ctx.set(eng.model.idle, 1)
        async for _, _, valid, beat, res_valid, res_ready in ctx.tick().sample(
                eng.ev_stream.valid, eng.ev_stream.payload, eng.res_stream.valid,
                eng.res_stream.ready):
            beat = (int(beat.index), int(beat.step), int(beat.end)) if valid else None
            if held is not None:
                assert beat == held, f"ev_stream: {held} withdrawn or changed to {beat} before transfer"
            held = None     # ``ready`` is the one set after the edge before: in force now
            if valid and ready:
                images[-1].append(beat)
                idle = 0
                if beat[2]:
                    i = len(images) - 1
                    due = None if delays[i] is None else now[0] + delays[i]
                    images.append([])
            elif valid:
                held = beat
            if res_valid and res_ready:
                taken.append(now[0])
                ctx.set(eng.res_stream.valid, 0)
                idle = 1
            if due is not None and now[0] >= due:
                ctx.set(eng.res_stream.payload, {"decided": 1, "klass": (len(images) - 2) % 4,
                                                 "cycles": delays[len(images) - 2]})
                ctx.set(eng.res_stream.valid, 1)
                due = None
            ready = now[0] >= take_from
            ctx.set(eng.ev_stream.ready, int(ready))
            ctx.set(eng.model.idle, idle)

    sim.add_testbench(sender)
    for tb in (clock, receiver, classifier):
        sim.add_testbench(tb, background=True)
    sim.run()
    assert result.size == len(eng.res_stream.payload.as_value())
    return out, sent_at, images[:-1] if not images[-1] else images, taken


def _first_bytes(out, reps):
    """The cycle of each reply's first byte."""
    firsts, i = [], 0
    for st, _, payload in reps:
        firsts.append(out[i][0])
        i += P.REPLY_OVERHEAD + len(payload)
    return firsts


def _image(n):
    """CLASSIFY payload of ``n`` events of input 1 at step 2."""
    return b"".join(P.pack(P.Event(), {"index": 1, "step": 2}) for _ in range(n))


def test_watchdog_default_bound():
    """The default bound is result_bound of the design and grows with it."""
    net = small_net()
    eng = ProtocolEngine(net.sizes, (2, 1), net.config, clk_freq_hz=1, timeout_cycles=10,
                         max_chunk=8)
    assert eng.result_timeout_cycles == result_bound(net.sizes, (2, 1), 12, eng.buffer_bytes // 3)
    learning = ProtocolEngine(net.sizes, (2, 1), net.config, clk_freq_hz=1, timeout_cycles=10,
                              max_chunk=8, learning=True)
    one_lane = ProtocolEngine(net.sizes, (1, 1), net.config, clk_freq_hz=1, timeout_cycles=10,
                              max_chunk=8)
    assert learning.result_timeout_cycles > eng.result_timeout_cycles
    assert one_lane.result_timeout_cycles > eng.result_timeout_cycles
    with pytest.raises(ValueError, match="result_timeout_cycles"):
        ProtocolEngine(net.sizes, (2, 1), net.config, clk_freq_hz=1, timeout_cycles=10,
                       result_timeout_cycles=1)
    with pytest.raises(ValueError, match="lanes"):
        ProtocolEngine(net.sizes, (2,), net.config, clk_freq_hz=1, timeout_cycles=10)


def test_watchdog_classifier_never_answers():
    """TIMEOUT within the bound, then IDENTIFY and STATS answered; requests that need the
    classifier (still in its image) get BUSY and change nothing."""
    net = small_net()
    frames = [req(C.CLASSIFY, _image(4)), req(C.IDENTIFY), req(C.CLASSIFY, _image(1)),
              req(C.LOAD_WEIGHTS, chunk(0, 0, 0, 1, [5])), req(C.READ_WEIGHTS, chunk(0, 0, 0, 1)),
              req(C.LOAD_THETA, b"\x00\x05\x00"), req(C.STATS)]
    out, sent_at, images, taken = run_standin(net, frames, delays=[None])
    reps = replies(bytes(b for _, b in out))
    assert [st for st, _, _ in reps] == [S.TIMEOUT, S.OK, S.BUSY, S.BUSY, S.BUSY, S.BUSY, S.OK]
    assert reps[0][1] == C.CLASSIFY.value and P.decode_identify(reps[1][2]).sizes == net.sizes
    stats = P.unpack(P.StatsReply(), reps[-1][2])
    assert (int(stats.images), int(stats.errors)) == (0, 5)
    # the watchdog starts after the check pass (7 cycles per event) and fires at the bound
    wait = _first_bytes(out, reps)[0] - sent_at[0]
    assert WATCHDOG <= wait <= WATCHDOG + 8 * 4 + 20, f"TIMEOUT {wait} cycles after the request"
    assert images == [[(1, 2, 0)] * 4 + [(0, 0, 1)]], images
    assert taken == []


def test_watchdog_late_result_is_dropped():
    """A result that comes after the watchdog fired is taken and dropped: the next
    CLASSIFY gets its own result, not the stale one."""
    net = small_net()
    late = 3 * WATCHDOG
    frames = [req(C.CLASSIFY, _image(2)), req(C.IDENTIFY), req(C.CLASSIFY, _image(1)),
              2 * late, req(C.CLASSIFY, _image(3)), req(C.STATS)]
    out, sent_at, images, taken = run_standin(net, frames, delays=[late, 5])
    reps = replies(bytes(b for _, b in out))
    assert [st for st, _, _ in reps] == [S.TIMEOUT, S.OK, S.BUSY, S.OK, S.OK]
    r = P.unpack(P.ClassifyReply(3), reps[3][2])
    assert (int(r.decided), int(r.klass), int(r.cycles)) == (1, 1, 5), "the stale result answered"
    stats = P.unpack(P.StatsReply(), reps[-1][2])
    assert (int(stats.images), int(stats.errors)) == (1, 2)
    assert [len(i) for i in images] == [3, 4], images
    firsts = _first_bytes(out, reps)
    assert len(taken) == 2 and firsts[2] < taken[0] < sent_at[3], "stale result not dropped in time"


def test_watchdog_classifier_takes_no_events():
    """A classifier that takes no event: TIMEOUT; the event on offer stays on offer (the
    stream rules) until taken, then the end marker follows; the late result is dropped."""
    net = small_net()
    frames = [req(C.CLASSIFY, _image(3)), req(C.IDENTIFY), 4 * WATCHDOG,
              req(C.CLASSIFY, _image(2)), req(C.IDENTIFY)]
    out, sent_at, images, taken = run_standin(net, frames, delays=[50, 5], take_from=3 * WATCHDOG)
    reps = replies(bytes(b for _, b in out))
    assert [st for st, _, _ in reps] == [S.TIMEOUT, S.OK, S.OK, S.OK]
    assert images == [[(1, 2, 0), (0, 0, 1)], [(1, 2, 0)] * 2 + [(0, 0, 1)]], images
    r = P.unpack(P.ClassifyReply(3), reps[2][2])
    assert int(r.klass) == 1 and len(taken) == 2


def _slow_net(seed=SEED):
    """10-6-3: every input excites the hidden layer a little (its neurons fire one by one
    over the image), the output layer is inhibited (it never decides)."""
    rng = np.random.default_rng(seed)
    ws = [rng.integers(1, 12, (10, 6)).astype(np.int8), rng.integers(-60, -1, (6, 3)).astype(np.int8)]
    return DiscreteNetwork(ws, [30, 60], DiscreteConfig(timesteps=12))


@pytest.mark.parametrize("pipeline", [0, 5])        # no cut, and every cut
@pytest.mark.parametrize("learning", [False, True])
def test_watchdog_does_not_fire_on_slow_images(pipeline, learning):
    """The slowest images the buffer takes (as many events as fit, spread over the steps,
    duplicates, no decision) classify and train normally, in under half the default bound."""
    net = _slow_net()
    n_events = (P.max_payload(10, 8) - 3 * learning) // 3
    rng = np.random.default_rng(SEED)
    cmd, head = (C.TRAIN, P.pack(P.TrainHeader(), {"label": 2, "lr_shift": 0})) if learning \
        else (C.CLASSIFY, b"")
    frames = []
    for _ in range(3):
        steps = np.sort(rng.integers(0, 12, n_events))
        events = b"".join(P.pack(P.Event(), {"index": int(i), "step": int(t)})
                          for i, t in zip(rng.integers(0, 10, n_events), steps))
        frames.append(req(cmd, head + events))
    raw, eng = run(net, frames, learning=learning, pipeline=pipeline)
    reps = replies(raw)
    assert [st for st, _, _ in reps] == [S.OK] * 3
    bound = eng.result_timeout_cycles
    for b, (st, _, payload) in enumerate(reps):
        r = P.unpack(P.ClassifyReply(3), payload)
        # (training may silence the hidden layer for the later images)
        assert int(r.decided) == 0 and (b or int(r.spikes[1]) > 0), "not the slow case"
        assert learning == (int(r.learn_cycles) > 0)
        assert 2 * (int(r.cycles) + 8 * n_events) <= bound, \
            f"{int(r.cycles)} cycles for {n_events} events: bound {bound} too tight"


# --- CLASSIFY_BATCH ---------------------------------------------------------------------


def _batches(steps, sizes):
    """CLASSIFY_BATCH payloads of ``steps`` (one image a row), cut where the next image
    would not fit ``buffer`` bytes."""
    out, cur = [], []
    for s in steps:
        ev = P.encode_events(s, 12)
        if cur and sum(len(e) + 3 for e in cur) + len(ev) + 3 > sizes:
            out.append(cur)
            cur = []
        cur.append(ev)
    return [P.encode_batch(c) for c in out + [cur]]


@pytest.mark.parametrize("pipeline", [0, 4])
def test_classify_batch_like_golden(pipeline):
    """Batches of images (empty ones too, step order restarting per image) classify as
    golden, one 3-byte result per image; STATS counts every image; a CLASSIFY after a batch
    is unaffected by the results written into the buffer."""
    net = small_net()
    rng = np.random.default_rng(SEED)
    steps = np.where(rng.random((9, 10)) < 0.25, rng.integers(0, 12, (9, 10)), -1)
    steps[3] = -1                               # an empty image
    buf = P.max_payload(10, 8)
    batches = _batches(steps, buf)
    assert len(batches) >= 2 and all(len(b) <= buf for b in batches)
    frames = [req(C.CLASSIFY_BATCH, b) for b in batches]
    frames += [req(C.CLASSIFY, P.encode_events(steps[0], 12)), req(C.STATS)]
    raw, _ = run(net, frames, pipeline=pipeline)
    reps = replies(raw)
    assert all(st == S.OK for st, _, _ in reps), [st.name for st, _, _ in reps]
    got = b"".join(p for _, _, p in reps[:len(batches)])
    assert len(got) == 3 * len(steps)
    g = simulate(net, steps)
    for b in range(len(steps)):
        r = P.unpack(P.BatchResult(), got[3 * b:3 * b + 3])
        d = int(g.decision[b])
        assert int(r.flags) == int(d >= 0), f"image {b}: flags {int(r.flags)}"
        if d >= 0:
            assert int(r.klass) == d, f"image {b}"
    r = P.unpack(P.ClassifyReply(3), reps[-2][2])
    assert int(r.decided) == int(g.decision[0] >= 0) and int(r.klass) == max(int(g.decision[0]), 0)
    stats = P.unpack(P.StatsReply(), reps[-1][2])
    assert (int(stats.images), int(stats.errors)) == (len(steps) + 1, 0)


def test_classify_batch_watchdog():
    """The watchdog inside a batch: image 1 answered, image 2 never: TIMEOUT (within the
    watchdog of image 2's start), the classifier's image finished in the background, then
    IDENTIFY answered, the next batch BUSY until the late image's result... never comes:
    BUSY; STATS counts the one image stored."""
    net = small_net()
    batch = P.encode_batch([_image(2), _image(1), _image(3)])
    frames = [req(C.CLASSIFY_BATCH, batch), req(C.IDENTIFY),
              req(C.CLASSIFY_BATCH, P.encode_batch([_image(1)])), req(C.STATS)]
    out, sent_at, images, taken = run_standin(net, frames, delays=[5, None])
    reps = replies(bytes(b for _, b in out))
    assert [st for st, _, _ in reps] == [S.TIMEOUT, S.OK, S.BUSY, S.OK]
    assert reps[0][1] == C.CLASSIFY_BATCH.value and reps[0][2] == b""
    assert images == [[(1, 2, 0)] * 2 + [(0, 0, 1)], [(1, 2, 0), (0, 0, 1)]], images
    assert len(taken) == 1
    stats = P.unpack(P.StatsReply(), reps[-1][2])
    assert (int(stats.images), int(stats.errors)) == (1, 2)
    wait = _first_bytes(out, reps)[0] - sent_at[0]
    # check pass (7 cycles per record), image 1 (its events, 5 cycles, 3 to store), then
    # image 2 given up on after the watchdog
    assert WATCHDOG < wait <= WATCHDOG + 7 * 9 + 4 * 7 + 20 + 40, f"TIMEOUT after {wait} cycles"


def test_classify_batch_each_image_has_its_watchdog():
    """Images each just under the watchdog: a batch of three takes nearly three bounds
    and is answered OK (the count restarts per image)."""
    net = small_net()
    batch = P.encode_batch([_image(1)] * 3)
    out, sent_at, images, taken = run_standin(net, [req(C.CLASSIFY_BATCH, batch)],
                                              delays=[WATCHDOG - 40] * 3)
    (st, _, payload), = replies(bytes(b for _, b in out))
    assert st == S.OK and len(taken) == 3
    assert [int(P.unpack(P.BatchResult(), payload[3 * i:3 * i + 3]).klass) for i in range(3)] \
        == [0, 1, 2]
    assert _first_bytes(out, [(st, 0, payload)])[0] - sent_at[0] > 3 * (WATCHDOG - 40)


def test_buffer_bytes():
    """A larger payload buffer is reported by IDENTIFY and takes a batch that the least one
    refuses; less than max_payload is refused."""
    net = small_net()
    least = P.max_payload(10, 8)
    with pytest.raises(ValueError, match=f"buffer_bytes must be an integer from {least}"):
        ProtocolEngine(net.sizes, (2, 1), net.config, clk_freq_hz=1, timeout_cycles=10,
                       max_chunk=8, buffer_bytes=least - 1)
    eng = ProtocolEngine(net.sizes, (2, 1), net.config, clk_freq_hz=1, timeout_cycles=10,
                         max_chunk=8, buffer_bytes=60)
    assert eng.info.max_payload == eng.buffer_bytes == 60
    assert eng.result_timeout_cycles == result_bound(net.sizes, (2, 1), 12, 20)
    batch = P.encode_batch([_image(2)] * 5)           # 45 bytes: over 33, under 60
    for size, want in ((None, [S.BAD_LENGTH]), (60, [S.OK])):
        e = ProtocolEngine(net.sizes, (2, 1), net.config, clk_freq_hz=1_000_000,
                           timeout_cycles=TIMEOUT, max_chunk=8, result_timeout_cycles=WATCHDOG,
                           buffer_bytes=size)
        out, _, images, taken = _run_standin_engine(e, net, [req(C.CLASSIFY_BATCH, batch)],
                                                    delays=[3] * 5)
        reps = replies(bytes(b for _, b in out))
        assert [st for st, _, _ in reps] == want, size
        if size:
            assert [int(P.unpack(P.BatchResult(), reps[0][2][3 * i:3 * i + 3]).klass)
                    for i in range(5)] == [0, 1, 2, 3, 0]
