"""The host client against a pure-Python fake device: framing, CRC, error statuses, model
checks, chunked loads and read-back, classification results (golden model)."""

import numpy as np
import pytest

from spikegate.boards import protocol as P
from spikegate.boards.client import Client, DeviceError, ModelMismatch, ProtocolError
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


class FakeDevice:
    """The protocol in Python over a DiscreteNetwork: a transport the client writes to."""

    def __init__(self, net, *, max_chunk=16, learning=False):
        self.net = DiscreteNetwork([w.copy() for w in net.weights], list(net.thetas), net.config)
        self.info = P.DeviceInfo(P.VERSION, net.sizes, (1,) * (len(net.sizes) - 1), 1_000_000,
                                 net.config.timesteps, net.config.dt, net.config.z_frac_bits,
                                 learning, P.max_payload(net.sizes[0], max_chunk), max_chunk)
        self.out = bytearray()
        self.fault = None        # "crc", "echo", "silent", "sync": spoil the next reply
        self.requests = []

    def write(self, data):
        data = bytes(data)
        assert data[0] == P.SYNC and P.crc16(data[1:-2]) == int.from_bytes(data[-2:], "little")
        cmd, n = data[1], int.from_bytes(data[2:4], "little")
        payload = data[4:4 + n]
        assert len(payload) == n
        self.requests.append((cmd, payload))
        status, reply = self._execute(cmd, payload)
        frame = bytearray(P.encode_reply(cmd, status, reply))
        fault, self.fault = self.fault, None
        if fault == "crc":
            frame[-1] ^= 1
        elif fault == "echo":
            frame = bytearray(P.encode_reply(cmd ^ 0x40, status, reply))
        elif fault == "sync":
            frame[0] = 0
        elif fault == "silent":
            frame = frame[:3]
        self.out += frame

    def read(self, n):
        data, self.out = bytes(self.out[:n]), self.out[n:]
        return data

    def reset_input(self):
        self.out.clear()

    def _execute(self, cmd, p):
        C, S = P.Command, P.Status
        sizes, n_w = self.net.sizes, len(self.net.sizes) - 1
        if cmd == C.IDENTIFY.value:
            return S.OK, P.encode_identify(self.info)
        if cmd == C.LOAD_THETA.value:
            v = P.unpack(P.ThetaPayload(), p)
            if not (v.layer < n_w and 1 <= v.theta <= 4095):
                return S.OUT_OF_RANGE, b""
            self.net.thetas[int(v.layer)] = int(v.theta)
            return S.OK, b""
        if cmd in (C.LOAD_WEIGHTS.value, C.READ_WEIGHTS.value):
            h = P.unpack(P.ChunkHeader(), p[:7])
            layer, start = int(h.layer), None
            if layer < n_w and h.src < sizes[layer] and h.dst < sizes[layer + 1]:
                start = int(h.src) * sizes[layer + 1] + int(h.dst)
            if (start is None or not 1 <= h.count <= self.info.max_chunk
                    or start + h.count > self.net.weights[layer].size):
                return S.OUT_OF_RANGE, b""
            flat = self.net.weights[layer].reshape(-1)
            if cmd == C.READ_WEIGHTS.value:
                return S.OK, flat[start:start + int(h.count)].tobytes()
            flat[start:start + int(h.count)] = np.frombuffer(p[7:], np.int8)
            return S.OK, b""
        if cmd == C.CLASSIFY.value:
            steps = np.full(sizes[0], -1, np.int64)
            for i in range(0, len(p), 3):
                e = P.unpack(P.Event(), p[i:i + 3])
                steps[int(e.index)] = int(e.step)
            g = simulate(self.net, steps[None])
            d = int(g.decision[0])
            return S.OK, P.pack(P.ClassifyReply(len(sizes)), {
                "decided": int(d >= 0), "klass": max(d, 0),
                "decision_step": int(g.decision_step[0]) if d >= 0 else self.net.config.timesteps,
                "spikes": g.spikes[0].tolist(), "lookups": g.lookups[0].tolist()})
        if cmd == C.TRAIN.value:
            return S.UNSUPPORTED, b""
        return S.BAD_COMMAND, b""


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
