"""A pure-Python device that speaks the board protocol: a transport for the host client
(:mod:`spikegate.boards.client`) in tests and for trying the ``spikegate board`` commands
without a board (``--port fake``). Classification uses the golden model
(:func:`spikegate.golden.ttfs_discrete.simulate`); cycle counts are 0. It checks what the
gateware checks, except the timeout and BUSY (it answers each request as a whole).
"""

import numpy as np

from spikegate.golden.ttfs_discrete import DiscreteNetwork, simulate
from spikegate.hdl import protocol_spec as P

__all__ = ["FakeDevice"]


class FakeDevice:
    """The protocol in Python over a :class:`DiscreteNetwork`; a transport (``write``,
    ``read``, ``reset_input``).

    Parameters
    ----------
    net : DiscreteNetwork
        Shape, time grid and initial weights (copied).
    max_chunk : int
    learning : bool
        Reported by IDENTIFY (TRAIN is answered UNSUPPORTED either way).

    Members
    -------
    fault : str or None
        Spoil the next reply: ``"crc"``, ``"echo"``, ``"sync"`` or ``"silent"``.
    requests : list of (command, payload)
    """

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
        if cmd == C.CLASSIFY_BATCH.value:
            if not (len(p) >= 3 and len(p) % 3 == 0 and len(p) <= self.info.max_payload):
                return S.BAD_LENGTH, b""
            images, cur = [], np.full(sizes[0], -1, np.int64)
            prev = 0
            for i in range(0, len(p), 3):
                if p[i:i + 3] == P.BATCH_MARKER:
                    images.append(cur)
                    cur, prev = np.full(sizes[0], -1, np.int64), 0
                    continue
                e = P.unpack(P.Event(), p[i:i + 3])
                if not (e.index < sizes[0] and e.step < self.net.config.timesteps
                        and e.step >= prev):
                    return S.OUT_OF_RANGE, b""
                cur[int(e.index)], prev = int(e.step), int(e.step)
            if p[-3:] != P.BATCH_MARKER:
                return S.OUT_OF_RANGE, b""
            g = simulate(self.net, np.array(images))
            return S.OK, b"".join(P.pack(P.BatchResult(), {"klass": max(int(d), 0),
                                                           "flags": int(d >= 0)})
                                  for d in g.decision)
        if cmd == C.TRAIN.value:
            return S.UNSUPPORTED, b""
        return S.BAD_COMMAND, b""
