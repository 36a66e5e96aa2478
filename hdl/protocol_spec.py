"""The board protocol, version 1: the one definition that the host client
(:mod:`spikegate.boards.client`) and the gateware decoder (:mod:`spikegate.hdl.protocol`)
are both built from. Constants, enums and payload layouts live here and nowhere else.

Physical layer
--------------
UART, 8 data bits, no parity, 1 stop bit (8N1), least significant bit first; :data:`DEFAULT_BAUD`
(1 Mbaud) by default (:class:`~spikegate.boards.top.BoardTop` ``baud``, the host client's
``baud``): a rate both boards' USB bridges make exactly (the iCEBreaker's FT2232H divides
12 MHz by 12, the ULX3S's FT231X 3 MHz by 3; :mod:`spikegate.boards.link`), and one that
the boards' clocks divide to within 2 % from 25 MHz up. Request/response: the host sends one
request frame and waits for its reply frame before sending the next.

Frames
------
All multi-byte integers are little-endian. A request (host to device)::

    SYNC (0xA5) | CMD u8 | LEN u16 | PAYLOAD (LEN bytes) | CRC u16

a reply (device to host)::

    REPLY_SYNC (0x5A) | CMD u8 | STATUS u8 | LEN u16 | PAYLOAD (LEN bytes) | CRC u16

CRC is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final
XOR; ``crc16(b"123456789") == 0x29B1``) over every byte after the sync byte and before the
CRC (``CMD .. PAYLOAD`` of a request, ``CMD .. PAYLOAD`` of a reply). :func:`crc16_update`
is written once for both Python ints and Amaranth values, so the gateware and the host use
the same function. A reply echoes the request's command (0 when none was received).

Commands (:class:`Command`; payload layouts below)
-------------------------------------------------
``IDENTIFY`` (LEN 0)
    Reply: :func:`encode_identify` bytes: protocol version, neurons per layer, lanes per
    weight layer, clock (Hz), timesteps, ``dt`` (units of ``2**-16``), ``z_frac_bits``,
    learning present, the largest payload and weight chunk the device takes.
``LOAD_WEIGHTS`` (LEN ``7 + count``)
    :class:`ChunkHeader` (layer, src, dst, count) then ``count`` signed weight bytes, written
    from ``(src, dst)`` on in row-major order (``dst`` wraps to 0 and ``src`` increments at the
    end of a row). Reply: empty. ``1 <= count <= max_chunk``.
``READ_WEIGHTS`` (LEN 7)
    :class:`ChunkHeader`; reply: ``count`` weight bytes in the same order.
``LOAD_THETA`` (LEN 3)
    :class:`ThetaPayload` (layer, theta with ``1 <= theta <= 4095``). Reply: empty.
``CLASSIFY`` (LEN ``3 * n_events``)
    The image as :class:`Event` records (index u16, step u8) in non-decreasing step order (the
    order of :func:`~spikegate.golden.ttfs_discrete.spike_events`), at most ``n_inputs`` of
    them; a pixel that never spikes is left out. A 784-pixel image with every pixel spiking
    is 2352 bytes; typically far fewer. Reply: :class:`ClassifyReply`.
``TRAIN`` (LEN ``3 + 3 * n_events``)
    :class:`TrainHeader` (label u16; one byte: weight step ``2**lr_shift`` with ``lr_shift``
    0 to 6 in bits 0-2, ``errors_only`` in bit 3, stochastic rounding with ``lfsr_k`` bits
    per candidate write, 0 to 8, in bits 4-7; see :mod:`spikegate.golden.sign_backprop`;
    the update LFSR restarts at its seed whenever weights are loaded) then the events, as
    ``CLASSIFY``; the classifier
    learns from the image with its label (only when built with the learning unit, otherwise
    ``UNSUPPORTED``). Reply: :class:`ClassifyReply` of the image (``flags`` bit 1: label
    refused; ``learn_cycles``: cycles of the learning phase).
``CLASSIFY_BATCH`` (LEN ``3 * records``, at least 3)
    Many images in one frame: each image's events (as ``CLASSIFY``) followed by
    :data:`BATCH_MARKER` (an :class:`Event` with index 0xFFFF and step 0xFF, which no input
    has), the last record a marker (:func:`encode_batch`). Every record is checked before
    the first image is sent; then the images are classified one after the other, each with
    the watchdog's full bound (a batch whose image is given up on is answered ``TIMEOUT``).
    Reply: one :class:`BatchResult` (3 bytes) per image, in order. As many images fit as
    records fit the buffer (``max_payload // 3`` empty images).
``STATS`` (LEN 0)
    Reply: :class:`StatsReply` (images classified or trained, error replies sent).
``RESET_STATS`` (LEN 0)
    Zero the counters of ``STATS``. Reply: empty.

Errors (:class:`Status`)
------------------------
Every request gets exactly one reply. A request that is not carried out gets a reply with an
error status and an empty payload, and changes nothing (weights and thresholds are written
only after the whole frame has arrived and passed every check). Checks in this order:

1. ``TIMEOUT``: no byte for :data:`FRAME_TIMEOUT_MS` (default; ``BoardTop(timeout_cycles=)``)
   inside a frame; the device drops the frame and replies.
2. ``BAD_CRC``: the CRC does not match.
3. ``BAD_COMMAND``: unknown command code.
4. ``BAD_LENGTH``: LEN is not what the command takes, or larger than the device's buffer
   (``max_payload`` of IDENTIFY; such a payload is received and dropped).
5. ``UNSUPPORTED``: ``TRAIN`` without the learning unit.
6. ``OUT_OF_RANGE``: a layer, neuron, count, threshold, label, lr_shift, lfsr_k, event index or step out of
   range, or events out of step order (within each image of a batch), or a batch whose last
   record is not a marker.

``BUSY``: bytes arrived while the device was carrying out a request or sending its reply;
they are dropped, and once the reply is sent the device sends one more reply with status
``BUSY`` (command 0). ``MODEL_MISMATCH`` is raised by the host client before it sends a
model whose shape or time grid differs from the device's.

Bytes outside a frame that are not ``SYNC`` are dropped without a reply. To resynchronize
(e.g. after an error or a reply that did not arrive), the host waits until the line has been
quiet for longer than the frame timeout, discards what it received, and sends again: the
device is then always hunting for ``SYNC`` and answers the next good request.
"""

import math

from amaranth.hdl import unsigned
from amaranth.lib import data, enum

from spikegate.golden.sign_backprop import MAX_LFSR_K, MAX_LR_SHIFT

__all__ = [
    "VERSION", "SYNC", "REPLY_SYNC", "CRC_INIT", "CRC_POLY", "FRAME_TIMEOUT_MS", "MAX_CHUNK",
    "Command", "Status", "ChunkHeader", "TrainHeader", "MAX_LR_SHIFT", "MAX_LFSR_K", "ThetaPayload", "Event", "ClassifyReply", "StatsReply",
    "crc16_update", "crc16", "encode_request", "encode_reply", "max_payload",
    "DeviceInfo", "encode_identify", "decode_identify", "pack", "unpack", "encode_events",
    "DT_FRAC_BITS", "dt_units", "REQUEST_OVERHEAD", "DEFAULT_BAUD", "BATCH_MARKER",
    "BatchResult", "encode_batch",
    "REPLY_OVERHEAD",
]

#: Protocol version (IDENTIFY's first byte).
VERSION = 1
SYNC = 0xA5
REPLY_SYNC = 0x5A
CRC_POLY = 0x1021
CRC_INIT = 0xFFFF
#: Default UART rate of the device and the host client (baud).
DEFAULT_BAUD = 1_000_000
#: Default frame timeout of the device.
FRAME_TIMEOUT_MS = 50
# The largest ``lfsr_k`` and ``lr_shift`` of TRAIN are the golden model's
# (:data:`spikegate.golden.sign_backprop.MAX_LFSR_K`, ``MAX_LR_SHIFT``), imported above.
#: Largest ``count`` of a LOAD_WEIGHTS / READ_WEIGHTS chunk.
MAX_CHUNK = 256
#: ``dt`` travels as an unsigned integer in units of ``2**-DT_FRAC_BITS``.
DT_FRAC_BITS = 16
#: Frame bytes around the payload: request SYNC CMD LEN(2) CRC(2); reply one more (STATUS).
REQUEST_OVERHEAD = 6
REPLY_OVERHEAD = 7


class Command(enum.Enum, shape=8):
    """Request command codes."""
    IDENTIFY = 0x01
    LOAD_WEIGHTS = 0x02
    READ_WEIGHTS = 0x03
    LOAD_THETA = 0x04
    CLASSIFY = 0x05
    TRAIN = 0x06
    STATS = 0x07
    RESET_STATS = 0x08
    CLASSIFY_BATCH = 0x09


class Status(enum.Enum, shape=8):
    """Reply status codes (0 = OK)."""
    OK = 0x00
    BAD_COMMAND = 0x01
    BAD_LENGTH = 0x02
    BAD_CRC = 0x03
    TIMEOUT = 0x04
    BUSY = 0x05
    OUT_OF_RANGE = 0x06
    UNSUPPORTED = 0x07
    MODEL_MISMATCH = 0x08


class ChunkHeader(data.StructLayout):
    """LOAD_WEIGHTS / READ_WEIGHTS header (7 bytes): weight layer, first source neuron, first
    destination neuron, number of weights."""
    def __init__(self):
        super().__init__({"layer": unsigned(8), "src": unsigned(16), "dst": unsigned(16),
                          "count": unsigned(16)})


class ThetaPayload(data.StructLayout):
    """LOAD_THETA payload (3 bytes)."""
    def __init__(self):
        super().__init__({"layer": unsigned(8), "theta": unsigned(16)})


class Event(data.StructLayout):
    """One input spike of CLASSIFY / TRAIN (3 bytes): input neuron and its step."""
    def __init__(self):
        super().__init__({"index": unsigned(16), "step": unsigned(8)})


#: The record that ends an image of CLASSIFY_BATCH: an :class:`Event` of index 0xFFFF and
#: step 0xFF (no input has index 0xFFFF: layers have at most 65535 neurons).
BATCH_MARKER = b"\xff\xff\xff"


class BatchResult(data.StructLayout):
    """One image's result in a CLASSIFY_BATCH reply (3 bytes): the class and ``flags``
    (bit 0: decided, an output neuron fired, else ``klass`` is 0; bit 1: the classifier
    dropped an event, as ``ClassifyReply.flags`` bit 0)."""
    def __init__(self):
        super().__init__({"klass": unsigned(16), "flags": unsigned(8)})


class TrainHeader(data.StructLayout):
    """The first 3 bytes of a TRAIN payload: the label (u16), then one byte of learning
    options: ``lr_shift`` (bits 0-2, 0 to 6), ``errors_only`` (bit 3) and ``lfsr_k``
    (bits 4-7, 0 to 8; see :mod:`spikegate.golden.sign_backprop`). A byte holding only
    ``lr_shift`` (the other bits 0) is the plain rule."""
    def __init__(self):
        super().__init__({"label": unsigned(16), "lr_shift": unsigned(3),
                          "errors_only": unsigned(1), "lfsr_k": unsigned(4)})


class ClassifyReply(data.StructLayout):
    """CLASSIFY / TRAIN reply (``14 + 4 * (2 * n_layers - 1)`` bytes). (The classifier's
    scan-cycle count is left out: one 32-bit field costs about 32 LUTs of reply mux.)

    Members
    -------
    decided : u8
        1 when an output neuron fired, else 0 (``klass`` 0, ``decision_step`` = timesteps).
    klass : u16
    decision_step : u16
    flags : u8
        bit 0: the classifier dropped an event (cannot happen after the device's checks);
        bit 1: the training label was refused.
    cycles : u32
        Clock cycles from the image's first event to the result.
    spikes : u32 per neuron layer (input first)
    lookups : u32 per weight layer
    learn_cycles : u32
        Cycles of the learning phase (0 for CLASSIFY).
    """
    def __init__(self, n_layers):
        super().__init__({
            "decided": unsigned(8), "klass": unsigned(16), "decision_step": unsigned(16),
            "flags": unsigned(8), "cycles": unsigned(32),
            "spikes": data.ArrayLayout(unsigned(32), n_layers),
            "lookups": data.ArrayLayout(unsigned(32), n_layers - 1),
            "learn_cycles": unsigned(32),
        })


class StatsReply(data.StructLayout):
    """STATS reply (8 bytes): images classified or trained, error replies sent (each wraps
    at 2**32)."""
    def __init__(self):
        super().__init__({"images": unsigned(32), "errors": unsigned(32)})


def crc16_update(crc, byte):
    """CRC-16/CCITT-FALSE of one more byte. Works on Python ints (returns an int in
    ``[0, 0xFFFF]``) and on Amaranth values (returns a value whose low 16 bits are the CRC;
    assign it to a 16-bit signal)."""
    crc = crc ^ (byte << 8)
    for _ in range(8):
        crc = ((crc << 1) & 0xFFFF) ^ (((crc >> 15) & 1) * CRC_POLY)
    return crc


def crc16(data_bytes, crc=CRC_INIT):
    """CRC-16/CCITT-FALSE of a byte string."""
    for b in bytes(data_bytes):
        crc = crc16_update(crc, b)
    return crc


def _u16(n, what):
    if not 0 <= n <= 0xFFFF:
        raise ValueError(f"{what} must fit 16 bits, not {n!r}")
    return int(n).to_bytes(2, "little")


def encode_request(cmd, payload=b""):
    """A complete request frame (bytes). ``cmd``: a :class:`Command` or an int (tests send
    unknown codes)."""
    code = int(cmd.value if isinstance(cmd, Command) else cmd)
    if not 0 <= code <= 0xFF:
        raise ValueError(f"command must be a byte, not {code!r}")
    body = bytes([code]) + _u16(len(payload), "payload length") + bytes(payload)
    return bytes([SYNC]) + body + crc16(body).to_bytes(2, "little")


def encode_reply(cmd, status, payload=b""):
    """A complete reply frame (the fake device of the tests builds its replies with this)."""
    code = int(cmd.value if isinstance(cmd, Command) else cmd)
    st = int(status.value if isinstance(status, Status) else status)
    body = bytes([code, st]) + _u16(len(payload), "payload length") + bytes(payload)
    return bytes([REPLY_SYNC]) + body + crc16(body).to_bytes(2, "little")


def max_payload(n_inputs, max_chunk=MAX_CHUNK):
    """Bytes of the device's frame buffer: a full weight chunk, or a TRAIN request with one
    event per input."""
    return max(ChunkHeader().size // 8 + max_chunk, TrainHeader().size // 8 + 3 * n_inputs)


def pack(layout, values):
    """Bytes of a struct layout (whole bytes, little-endian) from a dict of its fields."""
    return layout.const(values).as_value().value.to_bytes(layout.size // 8, "little")


def unpack(layout, raw):
    """The :class:`~amaranth.lib.data.Const` view of ``raw`` bytes under ``layout``."""
    if len(raw) != layout.size // 8:
        raise ValueError(f"expected {layout.size // 8} bytes, not {len(raw)}")
    return layout.from_bits(int.from_bytes(raw, "little"))


def encode_batch(images):
    """CLASSIFY_BATCH payload of ``images`` (a sequence of CLASSIFY payloads, e.g. from
    :func:`encode_events`): each followed by :data:`BATCH_MARKER`."""
    out = []
    for events in images:
        events = bytes(events)
        if len(events) % 3:
            raise ValueError(f"an image's events are 3 bytes each, not {len(events)} bytes")
        out.append(events + BATCH_MARKER)
    if not out:
        raise ValueError("a batch needs at least one image")
    return b"".join(out)


def encode_events(steps, timesteps):
    """CLASSIFY payload of one image: ``steps`` per input (NO_SPIKE = -1 for none), as
    :class:`Event` records in the order of
    :func:`~spikegate.golden.ttfs_discrete.spike_events`."""
    from spikegate.golden.ttfs_discrete import spike_events
    idx, st = spike_events(steps)
    if len(st) and (st.min() < 0 or st.max() >= min(timesteps, 256)):
        raise ValueError(f"input steps must be in [0, {timesteps - 1}] or -1 (no spike)")
    if len(idx) and idx.max() > 0xFFFF:
        raise ValueError("input index does not fit 16 bits")
    lay = Event()
    return b"".join(pack(lay, {"index": int(i), "step": int(s)}) for i, s in zip(idx, st))


class DeviceInfo:
    """What IDENTIFY reports (see :func:`encode_identify`)."""

    def __init__(self, version, sizes, lanes, clk_freq_hz, timesteps, dt, z_frac_bits, learning,
                 max_payload, max_chunk):
        self.version = int(version)
        self.sizes = tuple(int(s) for s in sizes)
        self.lanes = tuple(int(x) for x in lanes)
        self.clk_freq_hz = int(clk_freq_hz)
        self.timesteps = int(timesteps)
        self.dt = float(dt)
        self.z_frac_bits = int(z_frac_bits)
        self.learning = bool(learning)
        self.max_payload = int(max_payload)
        self.max_chunk = int(max_chunk)

    def as_dict(self):
        return dict(vars(self))

    def __eq__(self, other):
        return isinstance(other, DeviceInfo) and self.as_dict() == other.as_dict()

    def __repr__(self):
        return f"DeviceInfo({', '.join(f'{k}={v!r}' for k, v in self.as_dict().items())})"

    def mismatch(self, sizes, config):
        """Why a network of ``sizes`` on the time grid ``config`` does not fit this device
        (a string), or None when it does."""
        sizes = tuple(int(s) for s in sizes)
        if sizes != self.sizes:
            return f"model layers {sizes} differ from the device's {self.sizes}"
        dev = (self.timesteps, dt_units(self.dt), self.z_frac_bits)
        mod = (config.timesteps, dt_units(config.dt), config.z_frac_bits)
        if dev != mod:
            return (f"model time grid (timesteps, dt, z_frac_bits) = ({config.timesteps}, "
                    f"{config.dt}, {config.z_frac_bits}) differs from the device's "
                    f"({self.timesteps}, {self.dt}, {self.z_frac_bits})")
        return None


def dt_units(dt):
    """``dt`` in units of ``2**-16``, exactly; ValueError when it is not a multiple."""
    u = dt * (1 << DT_FRAC_BITS)
    if not (math.isfinite(u) and u == int(u) and 0 < u < 2 ** 32):
        raise ValueError(f"dt must be a positive multiple of 2**-{DT_FRAC_BITS} below 65536, "
                         f"not {dt!r}")
    return int(u)


def encode_identify(info):
    """IDENTIFY reply payload: version u8, n_layers u8, sizes u16 each, lanes u8 per weight
    layer, clk_freq_hz u32, timesteps u16, dt u32 (units of ``2**-16``), z_frac_bits u8,
    learning u8, max_payload u16, max_chunk u16."""
    out = bytes([info.version, len(info.sizes)])
    out += b"".join(_u16(s, "layer size") for s in info.sizes)
    out += bytes(info.lanes)
    out += info.clk_freq_hz.to_bytes(4, "little") + _u16(info.timesteps, "timesteps")
    out += dt_units(info.dt).to_bytes(4, "little")
    out += bytes([info.z_frac_bits, int(info.learning)])
    out += _u16(info.max_payload, "max_payload") + _u16(info.max_chunk, "max_chunk")
    return out


def decode_identify(raw):
    """:class:`DeviceInfo` of an IDENTIFY reply payload; ValueError if malformed."""
    raw = bytes(raw)
    if len(raw) < 2:
        raise ValueError(f"IDENTIFY reply too short ({len(raw)} bytes)")
    n = raw[1]
    need = 2 + 2 * n + (n - 1) + 4 + 2 + 4 + 2 + 4
    if n < 2 or len(raw) != need:
        raise ValueError(f"IDENTIFY reply of {len(raw)} bytes for {n} layers (expected {need})")
    p = 2
    sizes = [int.from_bytes(raw[p + 2 * i:p + 2 * i + 2], "little") for i in range(n)]
    p += 2 * n
    lanes = list(raw[p:p + n - 1])
    p += n - 1
    clk = int.from_bytes(raw[p:p + 4], "little")
    T = int.from_bytes(raw[p + 4:p + 6], "little")
    dt = int.from_bytes(raw[p + 6:p + 10], "little") / (1 << DT_FRAC_BITS)
    zf, learning = raw[p + 10], raw[p + 11]
    mp = int.from_bytes(raw[p + 12:p + 14], "little")
    mc = int.from_bytes(raw[p + 14:p + 16], "little")
    return DeviceInfo(raw[0], sizes, lanes, clk, T, dt, zf, learning, mp, mc)
