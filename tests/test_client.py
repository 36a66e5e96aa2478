"""The host client against a pure-Python fake device: framing, CRC, error statuses, model
checks, chunked loads and read-back, classification results (golden model)."""

import numpy as np
import pytest

from spikegate.hdl import protocol_spec as P
from spikegate.boards.client import Client, DeviceError, ModelMismatch, ProtocolError
from spikegate.boards.fake import FakeDevice
from spikegate.golden.ttfs_discrete import DiscreteConfig, DiscreteNetwork, simulate


def test_crc16_check_value():
    assert P.crc16(b"123456789") == 0x29B1
    assert P.crc16(b"") == P.CRC_INIT


def test_request_frame_layout():
    frame = P.encode_request(P.Command.LOAD_THETA, b"\x01\x02\x03")
    assert frame[0] == P.SYNC and frame[1] == P.Command.LOAD_THETA.value
    assert frame[2:4] == (3).to_bytes(2, "little") and frame[4:7] == b"\x01\x02\x03"
    assert int.from_bytes(frame[7:], "little") == P.crc16(frame[1:7])


def test_identify_round_trip():
    info = P.DeviceInfo(1, (784, 600, 10), (8, 1), 48_000_000, 32, 0.125, 8, True, 2354, 256)
    assert P.decode_identify(P.encode_identify(info)) == info
    with pytest.raises(ValueError):
        P.decode_identify(P.encode_identify(info)[:-1])


@pytest.fixture
def net():
    rng = np.random.default_rng(3)
    ws = [rng.integers(-40, 90, (12, 8)).astype(np.int8), rng.integers(-40, 90, (8, 3)).astype(np.int8)]
    return DiscreteNetwork(ws, [60, 50], DiscreteConfig(timesteps=16))


def test_load_read_back_and_classify(net):
    dev = FakeDevice(DiscreteNetwork([np.zeros_like(w) for w in net.weights], [1, 1], net.config))
    c = Client(dev)
    info = c.identify()
    assert info.sizes == net.sizes and info.max_chunk == 16
    calls = []
    c.load(net, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (sum(w.size for w in net.weights),) * 2
    for l, w in enumerate(net.weights):
        assert np.array_equal(c.read_weights(l), w), f"layer {l}"
    assert dev.net.thetas == net.thetas
    # chunks wrap rows: 12*8 = 96 weights in chunks of 16, rows of 8
    loads = [q for q in dev.requests if q[0] == P.Command.LOAD_WEIGHTS.value]
    assert len(loads) == 6 + 2
    rng = np.random.default_rng(4)
    steps = np.where(rng.random((6, 12)) < 0.6, rng.integers(0, 16, (6, 12)), -1)
    g = simulate(net, steps)
    for b in range(len(steps)):
        r = c.classify(steps[b])
        assert r["decision"] == g.decision[b], f"image {b}"
        assert r["spikes"] == g.spikes[b].tolist() and r["lookups"] == g.lookups[b].tolist()


def test_model_mismatch_sends_nothing(net):
    dev = FakeDevice(net)
    c = Client(dev)
    c.identify()
    n = len(dev.requests)
    other = DiscreteNetwork(net.weights, net.thetas, DiscreteConfig(timesteps=32))
    with pytest.raises(ModelMismatch, match="time grid"):
        c.load(other)
    bigger = DiscreteNetwork([np.zeros((13, 8), np.int8), net.weights[1]], net.thetas, net.config)
    with pytest.raises(ModelMismatch, match="layers"):
        c.load(bigger)
    assert len(dev.requests) == n


def test_error_statuses_raise(net):
    c = Client(FakeDevice(net))
    with pytest.raises(DeviceError) as e:
        c.load_theta(5, 10)
    assert e.value.status == P.Status.OUT_OF_RANGE
    with pytest.raises(DeviceError) as e:
        c.train(np.full(12, -1), 1)
    assert e.value.status == P.Status.UNSUPPORTED
    with pytest.raises(DeviceError) as e:
        c.read_weights(1, 7, 0, 4)          # 7 * 3 + 4 > 24
    assert e.value.status == P.Status.OUT_OF_RANGE


@pytest.mark.parametrize("fault", ["crc", "echo", "sync", "silent"])
def test_bad_replies_raise_protocol_error(net, fault):
    dev = FakeDevice(net)
    c = Client(dev)
    dev.fault = fault
    with pytest.raises(ProtocolError):
        c.identify()
    c.resync()
    assert c.identify().sizes == net.sizes    # the next request works


def test_bad_arguments(net):
    c = Client(FakeDevice(net))
    with pytest.raises(ValueError, match="shape"):
        c.classify(np.zeros(11, np.int64))
    with pytest.raises(ValueError, match="steps"):
        c.classify(np.full(12, 16))
    with pytest.raises(TypeError):
        c.load(42)


def test_classify_batch(net):
    """classify_batch splits the images into as few CLASSIFY_BATCH frames as the buffer
    (max_payload) takes and answers each image as golden; the fake device refuses what the
    engine refuses."""
    dev = FakeDevice(net)
    c = Client(dev)
    c.identify()
    rng = np.random.default_rng(5)
    steps = np.where(rng.random((40, 12)) < 0.6, rng.integers(0, 16, (40, 12)), -1)
    steps[7] = -1
    got = c.classify_batch(steps)
    frames = [p for cmd, p in dev.requests if cmd == P.Command.CLASSIFY_BATCH.value]
    assert all(len(p) <= c.info.max_payload for p in frames)
    # as few frames as fit: each but the last could not take the next image
    assert len(frames) >= 2 and b"".join(frames) == P.encode_batch(
        [P.encode_events(s, 16) for s in steps])
    n = [p.count(P.BATCH_MARKER) for p in frames]
    firsts = np.cumsum(n)[:-1]        # the image each later frame starts with
    for p, k in zip(frames, firsts):
        assert len(p) + 3 * int((steps[k] >= 0).sum()) + 3 > c.info.max_payload
    g = simulate(net, steps)
    assert [r["decision"] for r in got] == g.decision.tolist()
    assert got == [{"decided": int(d >= 0), "klass": max(int(d), 0), "decision": int(d),
                    "error": 0} for d in g.decision]
    bad = [(b"", P.Status.BAD_LENGTH), (P.BATCH_MARKER * 40, P.Status.BAD_LENGTH),
           (P.BATCH_MARKER + b"\x01\x00\x00", P.Status.OUT_OF_RANGE),
           (b"\x01\x00\x05\x02\x00\x04" + P.BATCH_MARKER, P.Status.OUT_OF_RANGE)]
    for payload, want in bad:
        with pytest.raises(DeviceError, match=want.name):
            c.request(P.Command.CLASSIFY_BATCH, payload)
