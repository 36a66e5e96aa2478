"""cocotb models for Amaranth streams (``amaranth.lib.stream``): a driver, a monitor, a clock.

``verilog.convert`` names the members of a stream port ``<port>__valid``,
``<port>__ready`` and ``<port>__payload``; a struct payload stays one flat vector
(``<port>__payload``), packed and unpacked by the layout's ``.const()`` / ``.from_bits()``
on the test side. The component's ``sync`` domain becomes the ports ``clk`` and ``rst``.

Handshakes are sampled at the rising clock edge, and the models drive new values right
after it, the scheme of the cocotbext-axi benches. Both models obey Amaranth's rules: the
driver never waits for ``ready`` to raise ``valid`` and holds the payload until the
transfer; the monitor checks that the design under test does the same.

Random stalls (the driver idling, the monitor dropping ``ready``) come from an explicitly
seeded generator: ``stall=0.3, seed=1`` or any iterable of booleans.
"""

import collections
import itertools
import random

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, Event, FallingEdge, RisingEdge

__all__ = ["start_clock_and_reset", "StreamDriver", "StreamMonitor", "StreamProtocolError",
           "read_weight_port"]


class StreamProtocolError(AssertionError):
    """The design under test broke a stream rule (valid dropped or payload changed before the
    transfer)."""


async def start_clock_and_reset(dut, period_ns=10, *, reset_cycles=2, clk="clk", rst="rst"):
    """Start a ``period_ns`` clock on ``dut.<clk>`` and hold ``dut.<rst>`` for
    ``reset_cycles`` cycles; returns after the first rising edge out of reset.

    Returns the :class:`cocotb.clock.Clock`.
    """
    if reset_cycles < 1:
        raise ValueError(f"reset_cycles must be at least 1, not {reset_cycles!r}")
    clock_signal = getattr(dut, clk)
    clock = Clock(clock_signal, period_ns, unit="ns")
    clock.start()
    reset = getattr(dut, rst, None)
    if reset is not None:
        reset.value = 1
    await ClockCycles(clock_signal, reset_cycles)
    if reset is not None:
        reset.value = 0
    await RisingEdge(clock_signal)
    return clock


def _stall_source(stall, seed, who):
    if stall is None or stall == 0:
        return itertools.repeat(False)
    if isinstance(stall, (int, float)) and not isinstance(stall, bool):
        if not 0 <= stall < 1:
            raise ValueError(f"{who}: stall probability must be in [0, 1), not {stall!r}")
        if seed is None:
            raise ValueError(f"{who}: a random stall needs an explicit seed")
        rng = random.Random(seed)
        return (rng.random() < stall for _ in itertools.count())
    try:
        return iter(stall)
    except TypeError:
        raise TypeError(f"{who}: stall must be a probability or an iterable of booleans, "
                        f"not {stall!r}") from None


def _unsigned(value, where, allow_x):
    """A port's value as an int. A one-bit port reads as a Logic, wider ones as a
    LogicArray; X or Z bits raise :class:`StreamProtocolError` naming ``where``, or read as
    0 with ``allow_x``."""
    if value.is_resolvable:
        return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)
    if allow_x:
        return int("0" + "".join("1" if c == "1" else "0" for c in str(value)), 2)
    raise StreamProtocolError(f"{where}: payload {value} has X/Z bits while valid, at "
                              f"{get_sim_time(unit='ns')} ns (allow_x=True reads them as 0)")


class StreamDriver:
    """Sends payloads into the stream port ``dut.<prefix>__*`` (the design's input stream).

    Parameters
    ----------
    dut : cocotb handle
    prefix : str
        The port's name, e.g. ``"i_stream"``.
    clk : str
        The clock port (default ``"clk"``).
    stall : float or iterable of bool, optional
        Probability of idling one cycle before each payload (needs ``seed``), or a pattern:
        ``True`` means idle this cycle.
    seed : int, optional
        Seed of the random stalls.

    Members
    -------
    sent : list of (int, float)
        ``(payload, time_ns)`` of each completed transfer.
    """

    def __init__(self, dut, prefix, *, clk="clk", stall=None, seed=None):
        self.name = prefix
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.clock = getattr(dut, clk)
        self._stall = _stall_source(stall, seed, f"StreamDriver({prefix})")
        self._queue = collections.deque()
        self._current = None
        self.sent = []
        self.valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def send(self, payload):
        """Queue one payload (an int, or anything ``int()`` takes)."""
        self._queue.append(int(payload))

    def send_all(self, payloads):
        """Queue each of ``payloads``."""
        for p in payloads:
            self.send(p)

    def empty(self):
        """True when every queued payload has been transferred."""
        return not self._queue and self._current is None

    async def wait_idle(self):
        """Return once every queued payload has been transferred."""
        while not self.empty():
            await RisingEdge(self.clock)

    async def _run(self):
        while True:
            await RisingEdge(self.clock)
            if self._current is not None and self.valid.value == 1 and self.ready.value == 1:
                self.sent.append((self._current, get_sim_time(unit="ns")))
                self._current = None
            if self._current is None:
                if self._queue and not next(self._stall):
                    self._current = self._queue.popleft()
                    self.payload.value = self._current
                    self.valid.value = 1
                else:
                    self.valid.value = 0

    def kill(self):
        """Stop driving (``valid`` stays as it is)."""
        self._task.cancel()


class StreamMonitor:
    """Receives from the stream port ``dut.<prefix>__*`` (the design's output stream): drives
    ``ready``, records each transfer and checks the stream rules.

    Parameters
    ----------
    dut : cocotb handle
    prefix : str
        The port's name, e.g. ``"o_stream"``.
    clk : str
        The clock port (default ``"clk"``).
    stall : float or iterable of bool, optional
        Probability of holding ``ready`` low for a cycle (needs ``seed``), or a pattern:
        ``True`` means not ready this cycle.
    seed : int, optional
        Seed of the random stalls.
    check_rules : bool
        Raise :class:`StreamProtocolError` (failing the test) if ``valid`` falls or the
        payload changes while a transfer is pending.
    allow_x : bool
        Read X/Z payload bits as 0 instead of raising :class:`StreamProtocolError` (for
        payloads with don't-care fields; Icarus shows uninitialised bits as X, Verilator
        as 0).

    Members
    -------
    received : list of (int, float)
        ``(payload, time_ns)`` of each transfer, in order.
    """

    def __init__(self, dut, prefix, *, clk="clk", stall=None, seed=None, check_rules=True,
                 allow_x=False):
        self.name = prefix
        self.valid = getattr(dut, f"{prefix}__valid")
        self.ready = getattr(dut, f"{prefix}__ready")
        self.payload = getattr(dut, f"{prefix}__payload")
        self.clock = getattr(dut, clk)
        self._stall = _stall_source(stall, seed, f"StreamMonitor({prefix})")
        self.check_rules = check_rules
        self.allow_x = allow_x
        self.received = []
        self._new = Event()
        self._taken = 0
        self.ready.value = 0 if next(self._stall) else 1
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        pending = None   # payload offered but not taken at the previous edge
        while True:
            await RisingEdge(self.clock)
            valid = self.valid.value == 1
            ready = self.ready.value == 1
            if valid:
                payload = _unsigned(self.payload.value, self.name, self.allow_x)
            if self.check_rules and pending is not None:
                if not valid:
                    raise StreamProtocolError(
                        f"{self.name}: valid fell at {get_sim_time(unit='ns')} ns before the "
                        f"transfer of payload {pending:#x}")
                if payload != pending:
                    raise StreamProtocolError(
                        f"{self.name}: payload changed from {pending:#x} to {payload:#x} at "
                        f"{get_sim_time(unit='ns')} ns before the transfer")
            if valid and ready:
                self.received.append((payload, get_sim_time(unit="ns")))
                self._new.set()
                pending = None
            else:
                pending = payload if valid else None
            self.ready.value = 0 if next(self._stall) else 1

    def __len__(self):
        return len(self.received)

    def empty(self):
        """True when every received payload has been taken by :meth:`recv`."""
        return self._taken >= len(self.received)

    async def recv(self):
        """The next received payload (waits for it)."""
        while self._taken >= len(self.received):
            self._new.clear()
            await self._new.wait()
        self._taken += 1
        return self.received[self._taken - 1][0]

    async def wait_for(self, count, *, timeout_cycles=None):
        """Wait until ``count`` payloads have been received; with ``timeout_cycles``, raise
        ``TimeoutError`` after that many cycles."""
        cycles = 0
        while len(self.received) < count:
            await RisingEdge(self.clock)
            cycles += 1
            if timeout_cycles is not None and cycles > timeout_cycles:
                raise TimeoutError(f"{self.name}: {len(self.received)} of {count} payloads "
                                   f"after {timeout_cycles} cycles")

    def kill(self):
        """Stop (``ready`` stays as it is)."""
        self._task.cancel()


async def read_weight_port(dut, port, positions, *, settle=2, latency=1):
    """Read the weights at ``positions`` (``(src, dst)`` pairs) back through the weight port
    whose signals start with ``port`` (``rb_en``, ``rb_src``, ``rb_dst``, ``rb_data``; one
    weight per cycle, each ``rb_data`` ``latency`` cycles after its ``rb_en``: 1, or 3 for a
    PD layer with weight banks, :attr:`~spikegate.hdl.lookup.WeightLookup.rb_latency`), once
    the design is idle, after ``settle`` falling edges; returns them as signed integers."""
    latency = int(latency)
    if latency < 1:
        raise ValueError(f"latency must be >= 1, not {latency!r}")
    for _ in range(settle):
        await FallingEdge(dut.clk)
    positions = list(positions)
    out = []
    for n in range(len(positions) + latency - 1):
        if n < len(positions):
            i, j = positions[n]
            getattr(dut, port + "rb_en").value = 1
            getattr(dut, port + "rb_src").value = int(i)
            getattr(dut, port + "rb_dst").value = int(j)
        else:
            getattr(dut, port + "rb_en").value = 0
        await FallingEdge(dut.clk)
        if n >= latency - 1:
            out.append(getattr(dut, port + "rb_data").value.to_signed())
    getattr(dut, port + "rb_en").value = 0
    return out
