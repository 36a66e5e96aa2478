"""The serial link between the host and a board: the rates the boards' USB bridges make,
the rate a board's clock divides to, and what the link carries per classification.

Both boards' UARTs reach the host through an FTDI bridge: the iCEBreaker's FT2232H (a
Hi-Speed part, its UART clock 120 MHz sampled ten times per bit: a 12 MHz baud base, at
most 12 Mbaud) and the ULX3S's FT231X (a Full-Speed X-series part: 48 MHz sampled sixteen
times, a 3 MHz baud base, at most 3 Mbaud). Each divides its base by ``n + k / 8`` (the
sub-integer divisors of FTDI's application notes AN232B-05 and AN_120), with two special
divisors below 2: 1 (the base itself) and 1.5. The board divides its own clock by an
integer (:func:`~spikegate.hdl.uart.uart_divisor`). A rate works when both ends are close
to it; :data:`~spikegate.hdl.protocol_spec.DEFAULT_BAUD` (1 Mbaud) is exact on both bridges
(12 MHz / 12 and 3 MHz / 3).
"""

from dataclasses import dataclass

from spikegate.hdl import protocol_spec as P
from spikegate.hdl.uart import uart_divisor

__all__ = ["Bridge", "BRIDGES", "BOARD_BRIDGE", "bridge_rate", "board_rate", "BITS_PER_BYTE",
           "classify_bytes", "link_images_per_s"]

#: Bits on the line per byte (8N1: start, eight data bits, stop).
BITS_PER_BYTE = 10


@dataclass(frozen=True)
class Bridge:
    """A USB-UART bridge: its name, baud base (Hz) and the largest divisor it takes."""

    name: str
    base_hz: int
    max_divisor: int = 2 ** 14 - 1


#: The boards' bridges.
BRIDGES = {"FT2232H": Bridge("FT2232H", 12_000_000), "FT231X": Bridge("FT231X", 3_000_000)}
#: Which bridge each board has.
BOARD_BRIDGE = {"icebreaker": "FT2232H", "ulx3s": "FT231X"}


def bridge_rate(bridge, baud):
    """The rate (baud, a float) that ``bridge`` (a :class:`Bridge` or a name of
    :data:`BRIDGES`) makes when asked for ``baud``: its base over the nearest divisor it has
    (1, 1.5, or ``n + k / 8`` from 2 up).

    Raises
    ------
    ValueError
        If the bridge is unknown, ``baud`` is not positive or is above the bridge's base.
    """
    if isinstance(bridge, str):
        if bridge not in BRIDGES:
            raise ValueError(f"bridge must be one of {', '.join(BRIDGES)}, not {bridge!r}")
        bridge = BRIDGES[bridge]
    if not isinstance(baud, (int, float)) or not baud > 0:
        raise ValueError(f"baud must be a positive number, not {baud!r}")
    if baud > bridge.base_hz * 1.03:
        raise ValueError(f"the {bridge.name} makes at most {bridge.base_hz} baud, not {baud}")
    want = bridge.base_hz / baud
    candidates = [1.0, 1.5] + [max(2.0, min(bridge.max_divisor, round(want * 8) / 8))]
    best = min(candidates, key=lambda d: abs(bridge.base_hz / d - baud))
    return bridge.base_hz / best


def board_rate(clk_freq_hz, baud):
    """``(divisor, rate)``: the board's UART divisor for ``baud`` from a ``clk_freq_hz`` clock
    (:func:`~spikegate.hdl.uart.uart_divisor`, which refuses more than 2 % off) and the rate
    it makes."""
    divisor = uart_divisor(clk_freq_hz, baud)
    return divisor, clk_freq_hz / divisor


def classify_bytes(n_events, n_layers):
    """``(request, reply)`` bytes on the line for one CLASSIFY of an image of ``n_events``
    events on a network of ``n_layers`` neuron layers: the frames' overhead, three bytes per
    event and the :class:`~spikegate.hdl.protocol_spec.ClassifyReply`."""
    if n_events < 0 or n_layers < 2:
        raise ValueError(f"need n_events >= 0 and n_layers >= 2, not ({n_events}, {n_layers})")
    request = P.REQUEST_OVERHEAD + 3 * n_events
    reply = P.REPLY_OVERHEAD + P.ClassifyReply(n_layers).size // 8
    return request, reply


def link_images_per_s(n_events, n_layers, baud, *, classify_s=0.0, turnaround_s=0.0):
    """Classifications per second over the link, one request and its reply at a time
    (half duplex): ``1 / (bytes * 10 / baud + classify_s + turnaround_s)``, ``bytes`` both
    frames (:func:`classify_bytes`), ``classify_s`` the device's time from the request's
    last byte to the reply's first, ``turnaround_s`` the host's (USB latency)."""
    request, reply = classify_bytes(n_events, n_layers)
    return 1.0 / ((request + reply) * BITS_PER_BYTE / baud + classify_s + turnaround_s)
