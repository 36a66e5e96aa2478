"""The host client of the board protocol (:mod:`spikegate.hdl.protocol_spec`).

The client is synchronous and transport-agnostic: a transport has ``write(data)``,
``read(n)`` (up to ``n`` bytes; fewer when its timeout passes) and ``reset_input()``.
:class:`SerialTransport` talks to a board over a serial port (pyserial);
:class:`spikegate.sim.bridge.SimTransport` talks to the simulated
:class:`~spikegate.boards.top.BoardTop` through its UART pins, so the tests run the code
that users run on hardware.
"""

from pathlib import Path

import numpy as np

from spikegate.hdl import protocol_spec as P

__all__ = ["Client", "SerialTransport", "ProtocolError", "DeviceError", "ModelMismatch"]


class ProtocolError(IOError):
    """No reply, or a reply that is not a well-formed frame for the request."""


class DeviceError(RuntimeError):
    """The device answered with an error status.

    Members
    -------
    status : Status
    command : int
        The command the reply echoes.
    """

    def __init__(self, status, command):
        self.status = status
        self.command = command
        name = P.Command(command).name if command in {c.value for c in P.Command} else command
        super().__init__(f"device replied {status.name} to {name}")


class ModelMismatch(ValueError):
    """The model does not have the device's shape or time grid (nothing was sent)."""

    status = P.Status.MODEL_MISMATCH


class SerialTransport:
    """A serial port (pyserial, imported here so that the rest works without it).

    Parameters
    ----------
    port : str
        E.g. ``/dev/ttyUSB1`` (the iCEBreaker's and the ULX3S's FTDI expose the UART on the
        second interface).
    baud : int
        Default :data:`~spikegate.hdl.protocol_spec.DEFAULT_BAUD` (the device's default).
    timeout : float
        Seconds a read waits for more bytes; longer than the device's frame timeout.
    """

    def __init__(self, port, baud=P.DEFAULT_BAUD, timeout=0.5):
        import serial
        self._port = serial.Serial(port, baud, timeout=timeout)

    def write(self, data):
        self._port.write(bytes(data))
        self._port.flush()

    def read(self, n):
        return self._port.read(n)

    def reset_input(self):
        self._port.reset_input_buffer()

    def close(self):
        self._port.close()


def _result(view):
    flags = int(view.flags)
    decided = int(view.decided)
    return {
        "decided": decided, "klass": int(view.klass),
        "decision": int(view.klass) if decided else -1,
        "decision_step": int(view.decision_step),
        "error": flags & 1, "label_error": (flags >> 1) & 1,
        "cycles": int(view.cycles),
        "spikes": [int(view.spikes[i]) for i in range(len(view.spikes))],
        "lookups": [int(view.lookups[i]) for i in range(len(view.lookups))],
        "learn_cycles": int(view.learn_cycles),
    }


class Client:
    """Requests to a spikegate board, one at a time.

    Parameters
    ----------
    transport
        An object with ``write``, ``read`` and ``reset_input`` (see the module docstring).
    """

    def __init__(self, transport):
        self.transport = transport
        self.info = None

    # ---- framing

    def request(self, cmd, payload=b""):
        """Send one request and return the reply's payload.

        Raises
        ------
        DeviceError
            On an error status.
        ProtocolError
            On no reply, a bad CRC, or a reply to another command.
        """
        cmd = P.Command(cmd)
        self.transport.write(P.encode_request(cmd, payload))
        status, echo, data = self.read_reply()
        if echo != cmd.value and status != P.Status.BUSY:
            raise ProtocolError(f"reply to command {echo:#04x}, expected {cmd.name}")
        if status != P.Status.OK:
            raise DeviceError(status, echo)
        return data

    def _read_exact(self, n, what):
        data = b""
        while len(data) < n:
            chunk = self.transport.read(n - len(data))
            if not chunk:
                raise ProtocolError(f"no reply ({what}: {len(data)} of {n} bytes)")
            data += chunk
        return data

    def read_reply(self):
        """``(status, command echoed, payload)`` of the next reply frame."""
        first = self._read_exact(1, "sync")
        if first[0] != P.REPLY_SYNC:
            raise ProtocolError(f"reply starts with {first[0]:#04x}, not {P.REPLY_SYNC:#04x}")
        head = self._read_exact(4, "header")
        n = int.from_bytes(head[2:4], "little")
        rest = self._read_exact(n + 2, "payload")
        data, crc = rest[:n], int.from_bytes(rest[n:], "little")
        if P.crc16(head + data) != crc:
            raise ProtocolError("reply CRC mismatch")
        try:
            status = P.Status(head[1])
        except ValueError:
            raise ProtocolError(f"unknown status {head[1]:#04x}") from None
        return status, head[0], data

    def resync(self):
        """Drop whatever arrives until the line is quiet for one transport timeout."""
        while self.transport.read(4096):
            pass
        self.transport.reset_input()

    # ---- commands

    def identify(self):
        """The device's :class:`~spikegate.hdl.protocol_spec.DeviceInfo` (kept in ``info``)."""
        info = P.decode_identify(self.request(P.Command.IDENTIFY))
        if info.version != P.VERSION:
            raise ProtocolError(f"device speaks protocol version {info.version}, this client "
                                f"{P.VERSION}")
        self.info = info
        return info

    def _need_info(self):
        if self.info is None:
            self.identify()
        return self.info

    def check_model(self, sizes, config):
        """Raise :class:`ModelMismatch` when a model does not fit the device."""
        why = self._need_info().mismatch(sizes, config)
        if why is not None:
            raise ModelMismatch(why)

    def load(self, model, *, progress=None):
        """Load a model (a model file path, a
        :class:`~spikegate.golden.model_file.TTFSModelFile` or a
        :class:`~spikegate.golden.ttfs_discrete.DiscreteNetwork`): thresholds, then weights
        in chunks. Checks the shape and time grid first (:class:`ModelMismatch`).
        ``progress(done, total)`` is called after each chunk. Returns the bytes sent."""
        from spikegate.golden.model_file import TTFSModelFile, load_model
        from spikegate.golden.ttfs_discrete import DiscreteNetwork
        if isinstance(model, (str, Path)):
            model = load_model(model)
        if isinstance(model, TTFSModelFile):
            model = model.network()
        if not isinstance(model, DiscreteNetwork):
            raise TypeError(f"model must be a model file path, TTFSModelFile or DiscreteNetwork, "
                            f"not {model!r}")
        self.check_model(model.sizes, model.config)
        chunk = self.info.max_chunk
        sent = 0
        total = sum(w.size for w in model.weights)
        for l, th in enumerate(model.thetas):
            sent += self.load_theta(l, th)
        done = 0
        for l, w in enumerate(model.weights):
            flat = np.asarray(w, dtype=np.int8).ravel()
            n_out = w.shape[1]
            for start in range(0, flat.size, chunk):
                part = flat[start:start + chunk]
                sent += self.load_weights(l, start // n_out, start % n_out, part)
                done += part.size
                if progress is not None:
                    progress(done, total)
        return sent

    def load_theta(self, layer, theta):
        payload = P.pack(P.ThetaPayload(), {"layer": layer, "theta": theta})
        self.request(P.Command.LOAD_THETA, payload)
        return len(payload) + P.REQUEST_OVERHEAD

    def load_weights(self, layer, src, dst, weights):
        """Write ``weights`` (signed bytes) from ``(src, dst)`` on, row-major."""
        w = np.asarray(weights)
        if w.ndim != 1 or w.size == 0 or w.min() < -128 or w.max() > 127:
            raise ValueError("weights must be a non-empty 1-D array of values in [-128, 127]")
        head = P.pack(P.ChunkHeader(), {"layer": layer, "src": src, "dst": dst, "count": w.size})
        payload = head + w.astype(np.int8).tobytes()
        self.request(P.Command.LOAD_WEIGHTS, payload)
        return len(payload) + P.REQUEST_OVERHEAD

    def read_weights(self, layer, src=0, dst=0, count=None):
        """Read weights back: ``count`` from ``(src, dst)`` on (int8 array), or, with
        ``count=None``, the whole layer as a ``(n_in, n_out)`` array."""
        if count is not None:
            head = P.pack(P.ChunkHeader(), {"layer": layer, "src": src, "dst": dst, "count": count})
            raw = self.request(P.Command.READ_WEIGHTS, head)
            if len(raw) != count:
                raise ProtocolError(f"asked for {count} weights, got {len(raw)}")
            return np.frombuffer(raw, dtype=np.int8).copy()
        info = self._need_info()
        if not 0 <= layer < len(info.sizes) - 1:
            raise ValueError(f"layer must be in [0, {len(info.sizes) - 2}], not {layer!r}")
        n_in, n_out = info.sizes[layer], info.sizes[layer + 1]
        out = np.empty(n_in * n_out, dtype=np.int8)
        for start in range(0, out.size, info.max_chunk):
            n = min(info.max_chunk, out.size - start)
            out[start:start + n] = self.read_weights(layer, start // n_out, start % n_out, n)
        return out.reshape(n_in, n_out)

    def _image(self, steps):
        info = self._need_info()
        steps = np.asarray(steps)
        if steps.shape != (info.sizes[0],):
            raise ValueError(f"steps must have shape ({info.sizes[0]},), not {steps.shape}")
        return P.encode_events(steps, info.timesteps)

    def classify(self, steps):
        """Classify one image given as input steps (``NO_SPIKE`` = -1 for none). Returns a
        dict: decided, klass, decision (-1 = none), decision_step, error, label_error,
        cycles, spikes (per layer, input first), lookups (per weight layer)."""
        raw = self.request(P.Command.CLASSIFY, self._image(steps))
        return _result(P.unpack(P.ClassifyReply(len(self.info.sizes)), raw))

    def classify_batch(self, steps_list):
        """Classify many images (each input steps, as :meth:`classify`) with as few
        CLASSIFY_BATCH exchanges as the device's buffer allows: as many images per frame
        as fit ``max_payload``. Returns a list of dicts, one per image: decided, klass,
        decision (-1 = none), error."""
        info = self._need_info()
        images = [self._image(s) for s in steps_list]
        out, batch, size = [], [], 0
        for ev in images + [None]:
            if ev is not None and len(ev) + 3 > info.max_payload:
                raise ValueError(f"an image of {len(ev) // 3} events does not fit the device's "
                                 f"{info.max_payload}-byte buffer with its batch marker")
            if batch and (ev is None or size + len(ev) + 3 > info.max_payload):
                raw = self.request(P.Command.CLASSIFY_BATCH, P.encode_batch(batch))
                if len(raw) != 3 * len(batch):
                    raise ProtocolError(f"CLASSIFY_BATCH of {len(batch)} images answered "
                                        f"{len(raw)} bytes, expected {3 * len(batch)}")
                for i in range(len(batch)):
                    r = P.unpack(P.BatchResult(), raw[3 * i:3 * i + 3])
                    decided = int(r.flags) & 1
                    out.append({"decided": decided, "klass": int(r.klass),
                                "decision": int(r.klass) if decided else -1,
                                "error": (int(r.flags) >> 1) & 1})
                batch, size = [], 0
            if ev is not None:
                batch.append(ev)
                size += len(ev) + 3
        return out

    def train(self, steps, label, lr_shift=0, *, lfsr_k=0, errors_only=False):
        """Learn from one image and its label with weight step ``2**lr_shift`` (devices with
        the learning unit), stochastic rounding with ``lfsr_k`` LFSR bits per write (0 = off)
        and, with ``errors_only``, only when the decision is wrong
        (:mod:`spikegate.golden.sign_backprop`); the result of the image as :meth:`classify`,
        plus ``learn_cycles``."""
        if not isinstance(label, (int, np.integer)) or not 0 <= label <= 0xFFFF:
            raise ValueError(f"label must be an integer from 0 to 65535, not {label!r}")
        if not isinstance(lr_shift, (int, np.integer)) or not 0 <= lr_shift <= P.MAX_LR_SHIFT:
            raise ValueError(f"lr_shift must be an integer from 0 to {P.MAX_LR_SHIFT}, "
                             f"not {lr_shift!r}")
        if not isinstance(lfsr_k, (int, np.integer)) or not 0 <= lfsr_k <= P.MAX_LFSR_K:
            raise ValueError(f"lfsr_k must be an integer from 0 to {P.MAX_LFSR_K}, not {lfsr_k!r}")
        payload = P.pack(P.TrainHeader(), {"label": int(label), "lr_shift": int(lr_shift),
                                           "errors_only": int(bool(errors_only)),
                                           "lfsr_k": int(lfsr_k)})
        payload += self._image(steps)
        raw = self.request(P.Command.TRAIN, payload)
        return _result(P.unpack(P.ClassifyReply(len(self.info.sizes)), raw))

    def stats(self):
        """``{"images": ..., "errors": ...}`` counted by the device."""
        v = P.unpack(P.StatsReply(), self.request(P.Command.STATS))
        return {"images": int(v.images), "errors": int(v.errors)}

    def reset_stats(self):
        self.request(P.Command.RESET_STATS)
